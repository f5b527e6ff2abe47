//! Change sources: each turns one database's replication stream into ordered
//! `SourceEvent`s of normalized changes (see `crate::model::change`).

pub mod postgres;
pub mod mysql;

/// Property-test cases for one share of a wire decoder's budget: every
/// decoder of external bytes (pgoutput messages, pgoutput text values, binlog
/// rows events, MariaDB raw events) must survive `TANDEM_PROPTEST_CASES`
/// cases in total — 1,000,000 by default in release builds, 20,000 with
/// debug assertions — split among its property tests by `per_mille`.
#[cfg(test)]
pub(crate) fn decoder_cases(per_mille: u32) -> u32 {
    let default = if cfg!(debug_assertions) { 20_000 } else { 1_000_000 };
    let total: u64 = std::env::var("TANDEM_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    u32::try_from(total * u64::from(per_mille) / 1000).unwrap_or(u32::MAX).max(1)
}

/// A proptest config running `decoder_cases(per_mille)` cases from a fixed
/// seed, so a CI run is repeatable; `TANDEM_PROPTEST_SEED=<n>` picks another
/// seed and `TANDEM_PROPTEST_SEED=random` explores (run it when changing a decoder).
#[cfg(test)]
pub(crate) fn decoder_config(per_mille: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::RngSeed;
    let rng_seed = match std::env::var("TANDEM_PROPTEST_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().unwrap_or_else(|_| panic!("TANDEM_PROPTEST_SEED={n:?}: a number or `random`"))),
        None => RngSeed::Fixed(0x7a6e_6465_6d00_0001),
    };
    proptest::test_runner::Config { cases: decoder_cases(per_mille), rng_seed, ..Default::default() }
}

/// Runs `decode` and fails the property test if it panicked: a decoder of
/// external bytes returns `Ok` or `Err`, never panics.
#[cfg(test)]
pub(crate) fn returns<T>(decode: impl FnOnce() -> T) -> Result<T, proptest::test_runner::TestCaseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|_| proptest::test_runner::TestCaseError::fail("the decoder panicked"))
}
