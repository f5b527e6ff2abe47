//! Online backfill (DESIGN.md §9): copying the rows a table already holds on
//! one side to the other while `tandem run` streams and both sides take writes.
//!
//! The method is DBLog's watermarks, with the chunk applied by the running
//! pipeline so that it lands at one exact point of the change stream:
//!
//! 1. `tandem backfill` (`crate::ops::backfill`) writes a **low** watermark
//!    to the source (`tandem.signals` row; on Postgres also a transactional
//!    logical message, which is what pgoutput carries), reads the next key-ordered
//!    chunk of rows in canonical text form, writes them to a staging table in
//!    the destination's state schema (tagged with the chunk number), and
//!    writes a **high** watermark naming the chunk.
//! 2. The pipeline's source delivers both watermarks in stream order
//!    (`SourceEvent::Watermark`). Between them, the batcher records every key of
//!    that pair that changed (`window`): the chunk's snapshot may be older or
//!    newer than those changes, so the chunk's copy of them is dropped, and the
//!    last full row image the stream saw takes its place (or nothing, when the
//!    last change was a delete).
//! 3. At the high watermark the applier merges the staged chunk into the
//!    destination table in one transaction together with the checkpoint of the
//!    high watermark's position: a missing row is inserted whole, an existing
//!    row gets only the columns the source side owns alone (`both` columns of
//!    rows both sides hold are the conflict rules' business). The same
//!    transaction records the progress (`tandem.backfills`), so a chunk is
//!    applied exactly once and an interrupted backfill resumes after the last
//!    applied chunk.
//!
//! Everything in the chunk then equals the source at the high watermark, and
//! every later change arrives through the stream after it: no newer value is
//! overwritten by an older one and no row deleted meanwhile comes back. A
//! high watermark whose low one the pipeline did not see (it restarted from a
//! checkpoint between them) is not applied: the chunk is marked abandoned and
//! `tandem backfill` copies it again.
//!
//! This module is the pipeline's side only: the watermark `Signal` and the
//! `ChunkJob`/`ChunkOutcome` the batcher hands its applier, the `window` of
//! changes between watermarks, the `staging` tables and their merge SQL, and
//! the `progress` rows. The command that copies (step 1) is
//! `crate::ops::backfill`, which uses this module and never the other way.

pub mod progress;
pub mod staging;
pub mod window;

use serde::{Deserialize, Serialize};

/// Which watermark a signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Low,
    High,
}

/// A watermark, as JSON in `tandem.signals.payload` (and the Postgres logical message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub pipeline: String,
    pub kind: SignalKind,
    /// Pair name (`[[pairs]] name`).
    pub pair: String,
    /// One `tandem backfill` invocation: chunks of an earlier run are told apart.
    pub run: String,
    /// Chunk number within the run, from 1.
    pub chunk: u64,
    /// Staging table in the destination's state schema.
    pub staging: String,
    /// Rows staged (high watermark).
    #[serde(default)]
    pub rows: u64,
    /// Canonical text of the chunk's last key (high watermark); resume point.
    #[serde(default)]
    pub last_key: Vec<String>,
    /// The key the chunk starts after (high watermark; empty: the table's
    /// start). A chunk is applied only right after the one that ended there.
    #[serde(default)]
    pub after_key: Vec<String>,
}

impl Signal {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a payload; `None` when it is not a watermark of `pipeline`.
    pub fn parse_for(payload: &[u8], pipeline: &str) -> Option<Signal> {
        let s: Signal = serde_json::from_slice(payload).ok()?;
        (s.pipeline == pipeline).then_some(s)
    }
}

/// What the pipeline asks its applier to do at a high watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkJob {
    pub pair: usize,
    pub signal: Signal,
    /// The window's correction; `None` when the low watermark was not seen.
    pub fix: Option<window::ChunkFix>,
}

/// What became of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    Applied { rows: u64 },
    /// Not applied (the reason); `tandem backfill` copies the chunk again.
    Abandoned(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_are_filtered_by_pipeline() {
        let s = Signal {
            pipeline: "crm".into(),
            kind: SignalKind::High,
            pair: "customers".into(),
            run: "r1".into(),
            chunk: 3,
            staging: "bf_1".into(),
            rows: 10,
            last_key: vec!["42".into()],
            after_key: vec![],
        };
        let json = s.to_json();
        assert_eq!(Signal::parse_for(json.as_bytes(), "crm"), Some(s));
        assert_eq!(Signal::parse_for(json.as_bytes(), "other"), None);
        assert_eq!(Signal::parse_for(b"not json", "crm"), None);
    }
}
