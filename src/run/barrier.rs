//! The mark `tandem barrier` writes at both sources (a `signals` row; on
//! Postgres also the transactional logical message the source reads), and
//! what the pipeline does with it: the batcher commits the mark's position
//! as the direction's checkpoint, in a destination transaction of its own.
//!
//! Why: a checkpoint otherwise moves only with applied client transactions.
//! When the last transactions before the barrier were tandem's own echoes or
//! touched unpaired tables, the checkpoint would stay before the barrier's
//! target although nothing is left to apply; the mark, written after the
//! target was read, moves it past. The mark is told apart from backfill
//! watermarks by its `kind`; it never carries rows.

use serde::{Deserialize, Serialize};

/// The `signals.kind` of a barrier mark.
pub const KIND: &str = "barrier";

/// A barrier mark, as JSON in the signal's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarrierMark {
    pub pipeline: String,
    /// Always `KIND`.
    pub kind: String,
    /// Tells one `tandem barrier` call from another (for the log).
    pub id: String,
}

impl BarrierMark {
    pub fn new(pipeline: &str, id: &str) -> Self {
        BarrierMark { pipeline: pipeline.to_string(), kind: KIND.to_string(), id: id.to_string() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The mark in `payload`, when it is one (a backfill watermark is not).
    pub fn parse(payload: &str) -> Option<BarrierMark> {
        serde_json::from_str::<BarrierMark>(payload).ok().filter(|m| m.kind == KIND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_watermarks_are_not_marks() {
        let m = BarrierMark::new("crm", "b1");
        assert_eq!(BarrierMark::parse(&m.to_json()), Some(m));
        let watermark = crate::backfill::Signal {
            pipeline: "crm".into(),
            kind: crate::backfill::SignalKind::Low,
            pair: "customers".into(),
            run: "r".into(),
            chunk: 1,
            staging: "s".into(),
            rows: 0,
            last_key: vec![],
            after_key: vec![],
        };
        assert_eq!(BarrierMark::parse(&watermark.to_json()), None);
        assert_eq!(BarrierMark::parse(r#"{"pipeline":"crm","kind":"low","id":"x"}"#), None);
        assert_eq!(BarrierMark::parse("not json"), None);
    }
}
