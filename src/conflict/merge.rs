//! Field-level merge: one source change + the destination's current row →
//! the destination writes, the conflicts decided, and the ownership
//! violations seen (DESIGN §3).
//!
//! Invariants: only columns the source changed (before ≠ after) and may write
//! (owner is the source side or `both`) are written; a column whose
//! destination value differs from the source's before-image is a conflict,
//! decided by `decide`; `current` is updated to what the destination holds
//! after the writes, so later changes of the same key in the batch see it.
//! Unsent TOAST values are never written; destination-generated columns are
//! never written (an insert may lack their value: the source may not send
//! its own generated columns), and a Postgres identity ALWAYS column only by
//! an insert.

use super::compare::same_value;
use super::decide::{decide, Verdict};
use crate::config::{ConflictPolicy, MissingRow, Owner, PairConfig, Side};
use crate::model::{Change, Op, Row, Value};
use crate::schema::PairSchema;

/// What the merge needs to know about a pair and the change's origin.
pub struct MergeContext<'a> {
    pub pair: &'a PairConfig,
    pub schema: &'a PairSchema,
    /// The side the change was made on.
    pub source: Side,
    /// The change is an outcome `source` forwards (`SourceEvent::Begin`):
    /// columns `source` does not own are adopted where the destination has
    /// not changed them since the before-image, instead of counting as
    /// ownership violations.
    pub forwarded: bool,
}

impl MergeContext<'_> {
    fn dest_generated(&self, i: usize) -> bool {
        let c = &self.schema.columns[i];
        match self.source {
            Side::Postgres => c.my_generated,
            Side::Mysql => c.pg_generated,
        }
    }
    /// An UPDATE at the destination cannot set column `i`.
    fn dest_not_updatable(&self, i: usize) -> bool {
        self.dest_generated(i) || (self.source == Side::Mysql && self.schema.columns[i].pg_identity_always)
    }
    fn ts_index(&self) -> Option<usize> {
        self.pair.timestamp_column.as_deref().and_then(|t| self.schema.column_index(t))
    }
}

/// A destination write.
#[derive(Debug, Clone, PartialEq)]
pub enum MergedOp {
    /// Insert the whole row (the destination had no row with this key).
    Insert(Row),
    /// Set these columns of the existing row with this key.
    Update { key: Row, columns: Vec<(usize, Value)> },
    Delete(Row),
    Truncate,
}

/// One decided column conflict, for `tandem.conflicts`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRecord {
    pub pair: usize,
    pub key: Row,
    pub column: usize,
    pub source: Side,
    pub source_value: Value,
    pub dest_value: Value,
    pub policy: ConflictPolicy,
    pub verdict: Verdict,
}

impl ConflictRecord {
    fn new(ctx: &MergeContext, change: &Change, column: usize, source_value: &Value, dest_value: &Value, verdict: Verdict) -> Self {
        ConflictRecord {
            pair: ctx.schema.pair,
            key: change.key.clone(),
            column,
            source: ctx.source,
            source_value: source_value.clone(),
            dest_value: dest_value.clone(),
            policy: ctx.pair.on_conflict,
            verdict,
        }
    }
}

/// Everything one merge produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub ops: Vec<(usize, MergedOp)>,
    pub conflicts: Vec<ConflictRecord>,
    /// (pair, key, column) changed by a side that does not own the column.
    pub violations: Vec<(usize, Row, usize)>,
    /// Updates of keys missing at the destination, ignored (`missing_row = "ignore"`).
    pub missing_updates: u64,
    /// Deletes from a side not listed in `deletes`.
    pub skipped_deletes: u64,
}

/// Merges `change` into the destination whose current row for the change's
/// key is `current` (None: no such row). `old_current` is the destination row
/// of the before-image's key when an update moves a row to a new key.
pub fn merge_change(ctx: &MergeContext, change: &Change, current: &mut Option<Row>, old_current: Option<&mut Option<Row>>, out: &mut Outcome) {
    let pair = ctx.schema.pair;
    match change.op {
        Op::Truncate => {
            if ctx.pair.deletes.allows(ctx.source) {
                out.ops.push((pair, MergedOp::Truncate));
            } else {
                out.skipped_deletes += 1;
            }
        }
        Op::Delete => {
            if !ctx.pair.deletes.allows(ctx.source) {
                out.skipped_deletes += 1;
            } else if current.is_some() {
                out.ops.push((pair, MergedOp::Delete(change.key.clone())));
                *current = None;
            }
        }
        Op::Insert | Op::Update => {
            let Some(after) = &change.after else { return };
            let mut before = change.before.as_ref();
            let mut moved = false;
            if let (Some(b), Some(old)) = (before, old_current) {
                let old_key = ctx.schema.key_of(b);
                if old_key != change.key {
                    // The row moved to a new key: delete the old one, then merge as an insert.
                    if old.is_some() && ctx.pair.deletes.allows(ctx.source) {
                        out.ops.push((pair, MergedOp::Delete(old_key)));
                        *old = None;
                    }
                    before = None;
                    moved = true;
                }
            }
            match current {
                None => {
                    if change.op == Op::Update && !moved && ctx.pair.missing_row == MissingRow::Ignore {
                        out.missing_updates += 1;
                        return;
                    }
                    let mut row = after.clone();
                    if let Some(b) = before {
                        for (v, old) in row.iter_mut().zip(b) {
                            if matches!(v, Value::Unchanged) {
                                *v = old.clone();
                            }
                        }
                    }
                    if row.iter().enumerate().any(|(i, v)| matches!(v, Value::Unchanged) && !ctx.dest_generated(i)) {
                        out.missing_updates += 1;
                        return;
                    }
                    *current = Some(row.clone());
                    out.ops.push((pair, MergedOp::Insert(row)));
                }
                Some(cur) => {
                    let columns = merge_columns(ctx, change, before, after, cur, out);
                    if !columns.is_empty() {
                        for (i, v) in &columns {
                            cur[*i] = v.clone();
                        }
                        out.ops.push((pair, MergedOp::Update { key: change.key.clone(), columns }));
                    }
                }
            }
        }
    }
}

fn merge_columns(ctx: &MergeContext, change: &Change, before: Option<&Row>, after: &Row, cur: &Row, out: &mut Outcome) -> Vec<(usize, Value)> {
    let ts = ctx.ts_index();
    // Last-writer-wins when the destination row changed since the source's
    // before-image (its timestamp moved): the newer row version wins as a whole
    // for the shared columns. Deciding column by column against the destination's
    // *current* timestamp would let a later write of another column flip the
    // verdict on one side only, and the sides would diverge.
    if let (ConflictPolicy::LastWriterWins, Some(t), Some(b)) = (ctx.pair.on_conflict, ts, before) {
        if !matches!(b[t], Value::Unchanged) && !same_value(&b[t], &cur[t]) {
            return merge_row_lww(ctx, change, b, after, cur, t, out);
        }
    }
    let mut set = Vec::new();
    for (i, a) in after.iter().enumerate() {
        if ctx.schema.key.contains(&i) || matches!(a, Value::Unchanged) || ctx.dest_not_updatable(i) {
            continue;
        }
        let d = &cur[i];
        let changed = match before {
            Some(b) => !matches!(b[i], Value::Unchanged) && !same_value(&b[i], a),
            None => !same_value(d, a),
        };
        if !changed {
            continue;
        }
        let owner = ctx.schema.columns[i].owner;
        if !owner.allows(ctx.source) && !ctx.forwarded {
            out.violations.push((ctx.schema.pair, change.key.clone(), i));
            continue;
        }
        if same_value(d, a) {
            continue;
        }
        if let Some(b) = before {
            if same_value(&b[i], d) {
                set.push((i, a.clone()));
                continue;
            }
        }
        // Both sides changed this column: decide.
        let (src_ts, dst_ts) = match ts {
            Some(t) => (&after[t], &cur[t]),
            None => (&Value::Null, &Value::Null),
        };
        let verdict = decide(owner, ctx.pair.on_conflict, ctx.pair.tie_breaker, ctx.source, src_ts, dst_ts);
        out.conflicts.push(ConflictRecord::new(ctx, change, i, a, d, verdict));
        if verdict == Verdict::Wins(ctx.source) {
            set.push((i, a.clone()));
        }
    }
    set
}

/// Row-level last-writer-wins for a concurrently changed row (see `merge_columns`).
fn merge_row_lww(ctx: &MergeContext, change: &Change, before: &Row, after: &Row, cur: &Row, t: usize, out: &mut Outcome) -> Vec<(usize, Value)> {
    let verdict = decide(Owner::Both, ConflictPolicy::LastWriterWins, ctx.pair.tie_breaker, ctx.source, &after[t], &cur[t]);
    let source_wins = verdict == Verdict::Wins(ctx.source);
    let mut set = Vec::new();
    for (i, a) in after.iter().enumerate() {
        if ctx.schema.key.contains(&i) || matches!(a, Value::Unchanged) || ctx.dest_not_updatable(i) {
            continue;
        }
        let d = &cur[i];
        let changed_here = !matches!(before[i], Value::Unchanged) && !same_value(&before[i], a);
        let owner = ctx.schema.columns[i].owner;
        if !owner.allows(ctx.source) {
            if ctx.forwarded && changed_here && same_value(&before[i], d) {
                set.push((i, a.clone()));
            } else if changed_here && !ctx.forwarded {
                out.violations.push((ctx.schema.pair, change.key.clone(), i));
            }
            continue;
        }
        if same_value(d, a) {
            continue;
        }
        let changed_there = !same_value(&before[i], d);
        let wins = owner != Owner::Both || source_wins;
        if changed_here && changed_there {
            let verdict = if wins { Verdict::Wins(ctx.source) } else { Verdict::Wins(ctx.source.other()) };
            out.conflicts.push(ConflictRecord::new(ctx, change, i, a, d, verdict));
        }
        if wins && (changed_here || owner == Owner::Both) {
            set.push((i, a.clone()));
        }
    }
    set
}

#[cfg(test)]
#[path = "merge_tests.rs"]
pub(crate) mod tests;
