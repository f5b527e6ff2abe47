//! Change sources: each turns one database's replication stream into ordered
//! `SourceEvent`s of normalized changes (see `crate::model::change`).
//!
//! A source only normalizes. It recognises tandem's own transactions by
//! their origin tag and delivers them as `Origin::Tandem` transactions (with
//! the checkpoint they recorded, and their rows only when asked: `OwnRows`);
//! it recognises tandem's control records (backfill watermarks) and delivers
//! their payload. What to do with either is decided downstream (`crate::echo`,
//! the batcher): a source never drops, forwards or interprets them.

pub mod mysql;
pub mod postgres;

use crate::model::{SourceEvent, SourcePos};
use crate::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Whether a source delivers the row changes of tandem's own transactions
/// (their checkpoint always comes). Off by default, and for good: decoding
/// echoes costs time nobody needs. A consumer that must tell a row its side
/// re-created from the one tandem's write met (`crate::echo`) needs them
/// from the first row that side's clients removed on: `after_removals`
/// makes the source turn them on itself, in stream order, at the commit of
/// the first client transaction that removes a row (a delete, a truncate, a
/// key change), so no later echo is delivered without them. Shared: it
/// stays on across the source's restarts when the consumer keeps the handle.
#[derive(Debug, Clone, Default)]
pub struct OwnRows(Arc<OwnRowsState>);

#[derive(Debug, Default)]
struct OwnRowsState {
    after_removals: bool,
    on: AtomicBool,
}

impl OwnRows {
    /// Rows of tandem's transactions once a client transaction removed a row.
    pub fn after_removals() -> Self {
        OwnRows(Arc::new(OwnRowsState { after_removals: true, on: AtomicBool::new(false) }))
    }

    /// The source delivered a client transaction that removes a row.
    pub fn removed(&self) {
        if self.0.after_removals {
            self.0.on.store(true, Ordering::Release);
        }
    }

    pub fn wanted(&self) -> bool {
        self.0.on.load(Ordering::Acquire)
    }
}

/// A stream of `SourceEvent`s as its consumer reads it: a source's channel,
/// or a stage between a source and the batcher (`crate::echo`).
#[allow(async_fn_in_trait)]
pub trait EventStream {
    /// The next event; `None` once the stream ended. Cancel-safe: a call
    /// dropped before it returns loses nothing.
    async fn next(&mut self) -> Option<SourceEvent>;
    /// Is no event ready to be read without waiting?
    fn is_empty(&self) -> bool;
}

impl EventStream for mpsc::Receiver<SourceEvent> {
    async fn next(&mut self) -> Option<SourceEvent> {
        self.recv().await
    }

    fn is_empty(&self) -> bool {
        mpsc::Receiver::is_empty(self)
    }
}

/// Where a source starts streaming (`Source::resume`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// The position after which transactions are streamed.
    pub start: SourcePos,
    /// The source server's identity, to store with later checkpoints
    /// (MySQL: a file:position means nothing on another server).
    pub identity: Option<String>,
}

/// One database's replication stream as ordered transactions.
///
/// Contract: `run` delivers every transaction committed after `start`, in
/// commit order, as `Begin`, `Changes` chunks (bounded: no transaction is
/// held whole in memory), `Commit` with the position after it; nothing is
/// skipped silently (an event it cannot decode faithfully is an error, and
/// nothing after it is delivered). `Idle(p)` says there is nothing more to
/// replicate up to `p`. `acked` carries the last position the consumer made
/// durable at the destination ("committed up to X"): a source may confirm
/// that much to its server (the Postgres slot), never more. A lost
/// connection ends `run` with a transient error; the caller resumes from
/// its checkpoint, and a transaction delivered without its `Commit` is
/// discarded by the caller.
#[allow(async_fn_in_trait)]
pub trait Source: Send + Sized + 'static {
    /// Whether a position acknowledged through `acked` is never streamed
    /// again, even after a restart (Postgres: the slot's confirmed
    /// position), rather than the stream resuming from the checkpoint.
    const ACK_IS_DURABLE: bool;

    /// Where to stream from, given the direction's checkpoint (`None` before
    /// its first commit) and the source identity stored with it; refuses a
    /// checkpoint that does not fit this server.
    async fn resume(&mut self, checkpoint: Option<&SourcePos>, stored_identity: Option<&str>) -> Result<Resume>;

    /// Streams from `start` into `out` until `shutdown` is cancelled or the
    /// receiver is gone (`Ok`), or the stream fails (`Err`).
    fn run(
        self,
        start: SourcePos,
        out: mpsc::Sender<SourceEvent>,
        acked: watch::Receiver<SourcePos>,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

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
