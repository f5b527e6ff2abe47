//! Turns a sequence of changes into row operations, keeping source order.
//!
//! Consecutive operations of the same kind on the same pair form one `Run`, so
//! a dialect can write them as one multi-row statement; a run never reorders
//! changes of one key (an upsert run applies rows in order, the last wins).
//! An update that changes the key becomes a delete of the old key followed by
//! an upsert of the new one. `Value::Unchanged` (unsent TOAST) is filled from
//! the before-image when it has the value; otherwise the row becomes a partial
//! update that leaves those columns alone — it is never written as NULL.

use crate::conflict::compare::key_text;
use crate::model::{Change, Op, Row, Value};
use crate::schema::PairSchema;
use std::collections::HashMap;

/// One destination row operation.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp {
    /// Insert the full row, or overwrite every column of the existing key.
    Upsert(Row),
    /// Delete by key values (pair key order).
    Delete(Row),
    /// Update the columns that are not `Unchanged`, by key.
    PartialUpdate { key: Row, row: Row },
    /// Remove every row of the pair's table.
    Truncate,
}

impl RowOp {
    fn kind(&self) -> u8 {
        match self {
            RowOp::Upsert(_) => 0,
            RowOp::Delete(_) => 1,
            RowOp::PartialUpdate { .. } => 2,
            RowOp::Truncate => 3,
        }
    }
}

/// Consecutive operations of one kind on one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub pair: usize,
    pub ops: Vec<RowOp>,
}

/// Consecutive partial updates that set the same columns, with each key's
/// last row only (applying an earlier row of a key and then a later one that
/// sets the same columns leaves what the later one alone leaves).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateGroup<'a> {
    /// Indices of the columns set.
    pub columns: Vec<usize>,
    /// (key, row) pairs, in order of each key's last occurrence.
    pub rows: Vec<(&'a Row, &'a Row)>,
}

/// Splits a run of `PartialUpdate`s into groups of the same column set.
/// `writable(i)` tells which columns may be written at the destination.
pub fn update_groups<'a>(ops: &'a [RowOp], writable: impl Fn(usize) -> bool) -> Vec<UpdateGroup<'a>> {
    // Per group: its rows so far (a superseded one becomes None) and each key's slot.
    type Building<'a> = (Vec<usize>, Vec<Option<(&'a Row, &'a Row)>>, HashMap<String, usize>);
    let mut groups: Vec<Building<'a>> = Vec::new();
    for op in ops {
        let RowOp::PartialUpdate { key, row } = op else { continue };
        let cols: Vec<usize> = (0..row.len()).filter(|&i| writable(i) && !matches!(row[i], Value::Unchanged)).collect();
        if cols.is_empty() {
            continue;
        }
        if groups.last().map_or(true, |g| g.0 != cols) {
            groups.push((cols, Vec::new(), HashMap::new()));
        }
        let Some((_, rows, slots)) = groups.last_mut() else { continue };
        if let Some(old) = slots.insert(key_text(key), rows.len()) {
            rows[old] = None;
        }
        rows.push(Some((key, row)));
    }
    groups.into_iter().map(|(columns, rows, _)| UpdateGroup { columns, rows: rows.into_iter().flatten().collect() }).collect()
}

/// Groups row operations, in order, into runs of one kind on one pair.
pub fn group(ops: impl IntoIterator<Item = (usize, RowOp)>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (pair, op) in ops {
        match runs.last_mut() {
            Some(r) if r.pair == pair && r.ops.last().map(RowOp::kind) == Some(op.kind()) && op.kind() != 3 => r.ops.push(op),
            _ => runs.push(Run { pair, ops: vec![op] }),
        }
    }
    runs
}

/// Plans `changes` into runs without reading the destination (whole-row
/// upserts); `schemas[i].pair == i` is not required, the schema is looked up
/// by pair index.
pub fn plan(changes: &[Change], schemas: &[PairSchema]) -> Vec<Run> {
    let mut ops: Vec<(usize, RowOp)> = Vec::new();
    let mut push = |pair: usize, op: RowOp| ops.push((pair, op));
    for c in changes {
        let Some(schema) = schemas.iter().find(|s| s.pair == c.pair) else { continue };
        match c.op {
            Op::Truncate => push(c.pair, RowOp::Truncate),
            Op::Delete => push(c.pair, RowOp::Delete(c.key.clone())),
            Op::Insert | Op::Update => {
                let Some(after) = &c.after else { continue };
                if let Some(before) = &c.before {
                    let old_key = schema.key_of(before);
                    if old_key.iter().all(|v| !matches!(v, Value::Unchanged)) && old_key != c.key {
                        push(c.pair, RowOp::Delete(old_key));
                    }
                }
                let mut row = after.clone();
                if let Some(before) = &c.before {
                    for (v, b) in row.iter_mut().zip(before) {
                        if matches!(v, Value::Unchanged) && !matches!(b, Value::Unchanged) {
                            *v = b.clone();
                        }
                    }
                }
                if row.iter().any(|v| matches!(v, Value::Unchanged)) {
                    push(c.pair, RowOp::PartialUpdate { key: c.key.clone(), row });
                } else {
                    push(c.pair, RowOp::Upsert(row));
                }
            }
        }
    }
    group(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Owner, TableName};
    use crate::schema::ColumnSchema;

    fn schema() -> PairSchema {
        let col = |n: &str| ColumnSchema::for_tests(n, Owner::Both, "text", "text");
        let t = TableName { schema: "s".into(), name: "t".into() };
        PairSchema { pair: 0, name: "p".into(), pg_table: t.clone(), my_table: t, columns: vec![col("id"), col("v")], key: vec![0] }
    }

    fn upd(before: (i64, Value), after: (i64, Value)) -> Change {
        Change {
            pair: 0,
            op: Op::Update,
            key: vec![Value::Int(after.0)],
            before: Some(vec![Value::Int(before.0), before.1]),
            after: Some(vec![Value::Int(after.0), after.1]),
        }
    }

    #[test]
    fn unchanged_toast_is_filled_from_before_image() {
        let c = upd((1, Value::Text("big".into())), (1, Value::Unchanged));
        let runs = plan(&[c], &[schema()]);
        assert_eq!(runs[0].ops, vec![RowOp::Upsert(vec![Value::Int(1), Value::Text("big".into())])]);
    }

    #[test]
    fn unchanged_without_before_becomes_partial_update() {
        let mut c = upd((1, Value::Null), (1, Value::Unchanged));
        c.before = None;
        let runs = plan(&[c], &[schema()]);
        assert!(matches!(runs[0].ops[0], RowOp::PartialUpdate { .. }));
    }

    #[test]
    fn key_change_is_delete_then_upsert_in_order() {
        let c = upd((1, Value::Null), (2, Value::Null));
        let runs = plan(&[c], &[schema()]);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].ops, vec![RowOp::Delete(vec![Value::Int(1)])]);
        assert!(matches!(runs[1].ops[0], RowOp::Upsert(_)));
    }

    #[test]
    fn partial_updates_group_by_column_set_and_keep_each_keys_last_row() {
        let pu = |k: i64, a: Value, b: Value| RowOp::PartialUpdate { key: vec![Value::Int(k)], row: vec![Value::Int(k), a, b] };
        let ops = vec![
            pu(1, Value::Int(10), Value::Unchanged),
            pu(2, Value::Int(20), Value::Unchanged),
            pu(1, Value::Int(11), Value::Unchanged),
            pu(3, Value::Unchanged, Value::Int(30)),
        ];
        let groups = update_groups(&ops, |i| i != 0);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].columns, vec![1]);
        let firsts: Vec<&Value> = groups[0].rows.iter().map(|(_, r)| &r[1]).collect();
        assert_eq!(firsts, vec![&Value::Int(20), &Value::Int(11)], "key 1 keeps its last row, after key 2");
        assert_eq!(groups[1].columns, vec![2]);
    }

    #[test]
    fn same_kind_changes_share_a_run() {
        let cs: Vec<Change> = (0..3).map(|i| upd((i, Value::Null), (i, Value::Null))).collect();
        assert_eq!(plan(&cs, &[schema()]).len(), 1);
    }
}
