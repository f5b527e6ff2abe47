//! Backfill progress, kept in the `backfills` state table of the destination.
//!
//! One row per (pipeline, pair). `tandem backfill` creates or resets it and
//! marks it done; the pipeline updates it in the same transaction as each
//! chunk it merges (`outcome = 'applied'`, `rows_applied`, `last_key`) or
//! abandons (`outcome = 'abandoned'`). So `last_key` is exactly where the
//! applied rows end, which is where an interrupted backfill resumes. A chunk
//! is merged only if it starts where the last applied one ended
//! (`Signal::after_key`), which keeps the applied ranges contiguous whatever
//! was lost in between.
//!
//! The statements that read and write the row are in `crate::state`
//! (`PgState` / `MyState::backfill_*` for the pipeline,
//! `state::BackfillStatements` for the command); this file only decides.

use super::window::ChunkFix;
use super::ChunkJob;

/// The `backfills` row of a pair, as `tandem backfill` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    pub run: String,
    pub chunk: u64,
    pub outcome: String,
    pub rows_applied: u64,
    pub rows_total: Option<u64>,
    pub last_key: Vec<String>,
    pub status: String,
    pub source: String,
}

/// JSON text of a key (`NULL` for the table's start).
pub fn key_json(key: &[String]) -> Option<String> {
    (!key.is_empty()).then(|| serde_json::to_string(key).unwrap_or_default())
}

/// The key stored by `key_json` (empty for `NULL` or unreadable text).
pub fn parse_key_json(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// What the pipeline does with a chunk at its high watermark.
#[derive(Debug, PartialEq)]
pub enum Verdict<'a> {
    Merge(&'a ChunkFix),
    /// Not merged; its staged rows are removed and the abandonment recorded.
    Abandon(String),
    /// A chunk of an earlier `tandem backfill` run than the registered one:
    /// ignored altogether (its staging rows are gone, and its chunk number
    /// may be reused by the current run).
    Stale,
}

/// Decides about `job`, given the pair's stored `(run, last_key)` (`None`:
/// no progress row).
pub fn verdict<'a>(stored: Option<(&str, Option<&str>)>, job: &'a ChunkJob) -> Verdict<'a> {
    let Some((run, last_key)) = stored else {
        return Verdict::Abandon(format!("no backfill of pair {} is registered in the backfills table", job.signal.pair));
    };
    if run != job.signal.run {
        return Verdict::Stale;
    }
    let Some(fix) = job.fix.as_ref() else {
        return Verdict::Abandon("the pipeline restarted between the chunk's watermarks".into());
    };
    if parse_key_json(last_key) != job.signal.after_key {
        return Verdict::Abandon(format!(
            "the chunk starts after key {:?} but the applied rows end at {:?}",
            job.signal.after_key,
            parse_key_json(last_key)
        ));
    }
    Verdict::Merge(fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::{Signal, SignalKind};

    fn job(after: &[&str], fix: bool) -> ChunkJob {
        ChunkJob {
            pair: 0,
            signal: Signal {
                pipeline: "p".into(),
                kind: SignalKind::High,
                pair: "t".into(),
                run: "r".into(),
                chunk: 2,
                staging: "s".into(),
                rows: 5,
                last_key: vec!["9".into()],
                after_key: after.iter().map(|s| s.to_string()).collect(),
            },
            fix: fix.then(ChunkFix::default),
        }
    }

    #[test]
    fn a_chunk_is_merged_only_right_after_the_last_applied_one_of_the_same_run() {
        let merge = |v: Verdict| matches!(v, Verdict::Merge(_));
        let abandon = |v: Verdict, why: &str| matches!(v, Verdict::Abandon(r) if r.contains(why));
        assert!(merge(verdict(Some(("r", None)), &job(&[], true))), "the first chunk after a reset");
        assert!(merge(verdict(Some(("r", Some("[\"4\"]"))), &job(&["4"], true))));
        assert!(abandon(verdict(Some(("r", Some("[\"4\"]"))), &job(&["3"], true)), "end at"));
        assert!(abandon(verdict(Some(("r", None)), &job(&[], false)), "restarted"));
        assert!(abandon(verdict(None, &job(&[], true)), "registered"));
        assert_eq!(verdict(Some(("newer", None)), &job(&[], true)), Verdict::Stale, "an earlier run's chunk");
    }

    #[test]
    fn keys_round_trip_through_json() {
        let k = vec!["a \"quoted\"".to_string(), "2".to_string()];
        assert_eq!(parse_key_json(key_json(&k).as_deref()), k);
        assert_eq!(key_json(&[]), None);
        assert!(parse_key_json(None).is_empty());
    }
}
