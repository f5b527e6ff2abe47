//! The pipeline's side of a backfill chunk: what changed between its low
//! and high watermark.
//!
//! Between the watermarks of a pair's chunk the batcher shows every change of
//! that pair to `Windows::observe`. At the high watermark, `Windows::high`
//! says how to correct the staged chunk: the staged copy of every key that
//! changed is dropped (the snapshot may predate or follow the change), and
//! the key's last full row image from the stream is staged instead — unless
//! its last change was a delete. A truncate in the window drops the whole
//! staged chunk. Invariant: at the high watermark, the corrected chunk equals
//! the source's rows of the chunk's key range at that position, except for
//! rows whose last image still lacks an unsent (TOAST) value, which are left
//! to the stream and counted in `ChunkFix::incomplete`.

use super::Signal;
use crate::model::{Change, Op, Row, Value};
use std::collections::HashMap;

/// How to correct a staged chunk at its high watermark.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChunkFix {
    /// A truncate ran in the window: every staged row goes.
    pub truncated: bool,
    /// Keys whose staged copy is dropped.
    pub dropped: Vec<Row>,
    /// Full row images (the stream's last) staged in their place.
    pub rows: Vec<Row>,
    /// Keys whose last image lacks an unsent value: dropped, not restaged.
    pub incomplete: usize,
}

#[derive(Debug)]
struct Window {
    run: String,
    chunk: u64,
    key_cols: Vec<usize>,
    truncated: bool,
    /// Debug text of the key → (key, last image or `None` after a delete), in first-seen order.
    keys: HashMap<String, (Row, Option<Row>)>,
}

/// Open windows, at most one per pair (a backfill copies one chunk of a pair at a time).
#[derive(Debug, Default)]
pub struct Windows {
    open: HashMap<usize, Window>,
}

fn key_text(key: &[Value]) -> String {
    format!("{key:?}")
}

impl Windows {
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// A low watermark of `pair`; `key_cols` are the pair's key columns.
    /// Replaces a window left open by an earlier, interrupted run.
    pub fn low(&mut self, pair: usize, key_cols: &[usize], s: &Signal) {
        self.open.insert(pair, Window { run: s.run.clone(), chunk: s.chunk, key_cols: key_cols.to_vec(), truncated: false, keys: HashMap::new() });
    }

    /// A change the stream delivered (in order).
    pub fn observe(&mut self, c: &Change) {
        let Some(w) = self.open.get_mut(&c.pair) else { return };
        match c.op {
            Op::Truncate => {
                w.truncated = true;
                w.keys.clear();
            }
            Op::Delete => {
                w.keys.insert(key_text(&c.key), (c.key.clone(), None));
            }
            Op::Insert | Op::Update => {
                if let Some(before) = &c.before {
                    let old: Row = w.key_cols.iter().filter_map(|&i| before.get(i).cloned()).collect();
                    if old.len() == c.key.len() && old != c.key {
                        w.keys.insert(key_text(&old), (old, None));
                    }
                }
                let Some(after) = &c.after else { return };
                let text = key_text(&c.key);
                let mut row = after.clone();
                // An unsent value keeps what the previous image (or the before-image) had.
                let prev = w.keys.get(&text).and_then(|(_, r)| r.clone()).or_else(|| c.before.clone());
                if let Some(prev) = prev {
                    for (v, p) in row.iter_mut().zip(prev) {
                        if matches!(v, Value::Unchanged) {
                            *v = p;
                        }
                    }
                }
                w.keys.insert(text, (c.key.clone(), Some(row)));
            }
        }
    }

    /// The high watermark of `pair`: the correction of its staged chunk, or
    /// `None` when the matching low watermark was not seen.
    pub fn high(&mut self, pair: usize, s: &Signal) -> Option<ChunkFix> {
        match self.open.get(&pair) {
            Some(w) if w.run == s.run && w.chunk == s.chunk => {}
            _ => return None,
        }
        let w = self.open.remove(&pair)?;
        let mut fix = ChunkFix { truncated: w.truncated, ..ChunkFix::default() };
        for (_, (key, last)) in w.keys {
            fix.dropped.push(key);
            match last {
                Some(row) if row.iter().any(|v| matches!(v, Value::Unchanged)) => fix.incomplete += 1,
                Some(row) => fix.rows.push(row),
                None => {}
            }
        }
        Some(fix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::SignalKind;

    fn sig(kind: SignalKind, chunk: u64) -> Signal {
        Signal { pipeline: "p".into(), kind, pair: "t".into(), run: "r".into(), chunk, staging: "s".into(), rows: 0, last_key: vec![], after_key: vec![] }
    }

    fn change(op: Op, id: i64, after: Option<Vec<Value>>, before: Option<Vec<Value>>) -> Change {
        Change { pair: 0, op, key: vec![Value::Int(id)], before, after }
    }

    #[test]
    fn changed_keys_are_dropped_and_restaged_with_their_last_image() {
        let mut w = Windows::default();
        w.low(0, &[0], &sig(SignalKind::Low, 1));
        w.observe(&change(Op::Update, 1, Some(vec![Value::Int(1), Value::Text("a".into())]), None));
        w.observe(&change(Op::Update, 1, Some(vec![Value::Int(1), Value::Text("b".into())]), None));
        w.observe(&change(Op::Insert, 2, Some(vec![Value::Int(2), Value::Text("c".into())]), None));
        w.observe(&change(Op::Delete, 2, None, None));
        w.observe(&Change { pair: 1, ..change(Op::Delete, 9, None, None) });
        let mut fix = w.high(0, &sig(SignalKind::High, 1)).expect("window");
        fix.dropped.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(fix.dropped, vec![vec![Value::Int(1)], vec![Value::Int(2)]]);
        assert_eq!(fix.rows, vec![vec![Value::Int(1), Value::Text("b".into())]], "the last image only; the deleted key is not restaged");
        assert!(w.is_empty());
    }

    #[test]
    fn unsent_values_are_filled_from_earlier_images_or_left_to_the_stream() {
        let mut w = Windows::default();
        w.low(0, &[0], &sig(SignalKind::Low, 1));
        w.observe(&change(Op::Update, 1, Some(vec![Value::Int(1), Value::Unchanged]), Some(vec![Value::Int(1), Value::Text("toast".into())])));
        w.observe(&change(Op::Update, 2, Some(vec![Value::Int(2), Value::Unchanged]), None));
        let fix = w.high(0, &sig(SignalKind::High, 1)).unwrap();
        assert_eq!(fix.rows, vec![vec![Value::Int(1), Value::Text("toast".into())]]);
        assert_eq!((fix.dropped.len(), fix.incomplete), (2, 1));
    }

    #[test]
    fn a_key_change_deletes_the_old_key_and_truncate_drops_everything_before_it() {
        let mut w = Windows::default();
        w.low(0, &[0], &sig(SignalKind::Low, 1));
        w.observe(&change(Op::Update, 5, Some(vec![Value::Int(5)]), Some(vec![Value::Int(4)])));
        let fix = w.high(0, &sig(SignalKind::High, 1)).unwrap();
        assert_eq!(fix.dropped.len(), 2);
        assert_eq!(fix.rows, vec![vec![Value::Int(5)]]);
        w.low(0, &[0], &sig(SignalKind::Low, 2));
        w.observe(&change(Op::Insert, 7, Some(vec![Value::Int(7)]), None));
        w.observe(&Change { pair: 0, op: Op::Truncate, key: vec![], before: None, after: None });
        w.observe(&change(Op::Insert, 8, Some(vec![Value::Int(8)]), None));
        let fix = w.high(0, &sig(SignalKind::High, 2)).unwrap();
        assert!(fix.truncated);
        assert_eq!(fix.rows, vec![vec![Value::Int(8)]]);
    }

    #[test]
    fn a_high_watermark_without_its_low_one_is_not_applied() {
        let mut w = Windows::default();
        assert_eq!(w.high(0, &sig(SignalKind::High, 1)), None);
        w.low(0, &[0], &sig(SignalKind::Low, 1));
        assert_eq!(w.high(0, &sig(SignalKind::High, 2)), None, "another chunk's high watermark");
        assert!(w.high(0, &sig(SignalKind::High, 1)).is_some());
    }
}
