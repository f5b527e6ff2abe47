//! Drives the field-level merge for an applier: which destination rows to
//! read (and lock) for a chunk of changes, the merge itself, and the runs of
//! row operations to write.
//!
//! Invariants: every key a change touches is read from the destination with
//! `FOR UPDATE` inside the batch's transaction before it is decided, so a
//! concurrent local write cannot slip between compare and write — or, for a
//! chunk of plain updates (`assumed_current`), written by guarded UPDATEs
//! that change a row only while it still holds the before-image the merge
//! assumed, a compare-and-write the destination does atomically under the
//! row's lock; a guard that misses undoes the chunk, which is then read and
//! merged. The cache of current rows lives for one `write` call only (later
//! chunks re-read the rows, which then include this transaction's own
//! writes), so memory stays bounded on huge transactions.

use super::plan::{group, RowOp, Run};
use crate::config::{PairConfig, Side};
use crate::conflict::compare::key_text;
use crate::conflict::{merge_change, ConflictRecord, MergeContext, MergedOp, Outcome, Verdict};
use crate::metrics as m;
use crate::model::{Change, Op, Row, Value};
use crate::schema::PairSchema;
use std::collections::{BTreeMap, HashMap};

/// Current destination rows of the keys in a chunk, by (pair, key text).
pub type Current = HashMap<(usize, String), Option<Row>>;

/// The keys (per pair) a chunk of changes needs from the destination.
pub fn keys_needed(changes: &[Change], schemas: &[PairSchema]) -> BTreeMap<usize, Vec<Row>> {
    let mut seen = std::collections::HashSet::new();
    let mut out: BTreeMap<usize, Vec<Row>> = BTreeMap::new();
    for c in changes {
        if c.op == Op::Truncate {
            continue;
        }
        let Some(schema) = schemas.iter().find(|s| s.pair == c.pair) else { continue };
        let mut keys = vec![c.key.clone()];
        if let Some(b) = &c.before {
            keys.push(schema.key_of(b));
        }
        for k in keys {
            if k.iter().any(|v| matches!(v, Value::Unchanged)) {
                continue;
            }
            if seen.insert((c.pair, key_text(&k))) {
                out.entry(c.pair).or_default().push(k);
            }
        }
    }
    out
}

/// The runs of a chunk whose keys are all absent at the destination, or
/// `None` unless every change is an insert of a complete row (bulk loads).
/// Merged against absent rows, such a chunk inserts each row as it came, with
/// no conflict, violation or ignored change; so an applier may first write
/// these runs as plain inserts, which the destination refuses (undoing the
/// statement) when a key exists after all or repeats, and only then read the
/// current rows and merge. The plain insert locks what it writes, as the
/// locking read would, so nothing can slip in between.
pub fn fresh_inserts<'a>(changes: &'a [Change], schemas: &[PairSchema], pairs: &[PairConfig]) -> Option<Vec<InsertRun<'a>>> {
    let mut runs: Vec<InsertRun<'a>> = Vec::new();
    for c in changes {
        if c.op != Op::Insert || pairs.get(c.pair).is_none() || !schemas.iter().any(|s| s.pair == c.pair) {
            return None;
        }
        let row = c.after.as_ref()?;
        if row.iter().any(|v| matches!(v, Value::Unchanged)) {
            return None;
        }
        match runs.last_mut() {
            Some(run) if run.pair == c.pair => run.rows.push(row),
            _ => runs.push(InsertRun { pair: c.pair, rows: vec![row] }),
        }
    }
    (!runs.is_empty()).then_some(runs)
}

/// Consecutive inserted rows of one pair, in source order (`fresh_inserts`).
#[derive(Debug, Clone, PartialEq)]
pub struct InsertRun<'a> {
    pub pair: usize,
    pub rows: Vec<&'a Row>,
}

/// The rows a chunk of plain updates expects at the destination — each
/// change's before-image, by (pair, key text) — or `None` unless every change
/// updates a key that stays put, has a before-image, and no key repeats in
/// the chunk. Merged against these rows a chunk has no conflict, so an
/// applier may write its updates without reading first, each row guarded by
/// the before-image of the columns it sets (and of `guard_also`): where a
/// guard fails, the destination row differs from the expectation, and the
/// applier must undo the chunk and merge it against the current rows. The
/// merge reads nothing else of a row it updates: `merge_columns` compares the
/// set columns, and the last-writer-wins timestamp, which `guard_also` names.
pub fn assumed_current<'a>(changes: &'a [Change], schemas: &[PairSchema], pairs: &[PairConfig]) -> Option<HashMap<(usize, String), &'a Row>> {
    let mut current = HashMap::with_capacity(changes.len());
    for c in changes {
        let schema = schemas.iter().find(|s| s.pair == c.pair)?;
        let before = c.before.as_ref()?;
        if c.op != Op::Update || c.after.is_none() || schema.key_of(before) != c.key || c.key.iter().any(|v| matches!(v, Value::Unchanged)) {
            return None;
        }
        if guard_also(schema, pairs.get(c.pair)?).is_some_and(|t| matches!(before[t], Value::Unchanged)) {
            return None;
        }
        if current.insert((c.pair, key_text(&c.key)), before).is_some() {
            return None;
        }
    }
    Some(current)
}

/// The column a guarded update must also find unchanged: the timestamp of a
/// last-writer-wins pair (a newer destination row changes the verdict).
pub fn guard_also(schema: &PairSchema, pair: &PairConfig) -> Option<usize> {
    match pair.on_conflict {
        crate::config::ConflictPolicy::LastWriterWins => pair.timestamp_column.as_deref().and_then(|t| schema.column_index(t)),
        _ => None,
    }
}

/// Merges a chunk against `current` (the fetched rows; keys not fetched are
/// absent at the destination). Returns the runs to write and the outcome.
pub fn merge_chunk(changes: &[Change], schemas: &[PairSchema], pairs: &[PairConfig], source: Side, forwarded: bool, current: &mut Current) -> (Vec<Run>, Outcome) {
    let mut out = Outcome::default();
    for c in changes {
        let (Some(schema), Some(pair)) = (schemas.iter().find(|s| s.pair == c.pair), pairs.get(c.pair)) else { continue };
        let ctx = MergeContext { pair, schema, source, forwarded };
        if c.op == Op::Truncate {
            for ((p, _), row) in current.iter_mut() {
                if *p == c.pair {
                    *row = None;
                }
            }
            merge_change(&ctx, c, &mut None, None, &mut out);
            continue;
        }
        let k = key_text(&c.key);
        let mut cur = current.remove(&(c.pair, k.clone())).flatten();
        tracing::trace!(?source, forwarded, op = ?c.op, key = %k, before = ?c.before, after = ?c.after, current = ?cur, "merging");
        let old_key = c.before.as_ref().map(|b| key_text(&schema.key_of(b))).filter(|ok| *ok != k);
        match old_key {
            Some(ok) => {
                let mut old = current.remove(&(c.pair, ok.clone())).flatten();
                merge_change(&ctx, c, &mut cur, Some(&mut old), &mut out);
                current.insert((c.pair, ok), old);
            }
            None => merge_change(&ctx, c, &mut cur, None, &mut out),
        }
        current.insert((c.pair, k), cur);
    }
    let ops = out.ops.drain(..).map(|(pair, op)| {
        let width = schemas.iter().find(|s| s.pair == pair).map_or(0, |s| s.columns.len());
        let row_op = match op {
            MergedOp::Insert(row) => RowOp::Upsert(row),
            MergedOp::Delete(key) => RowOp::Delete(key),
            MergedOp::Truncate => RowOp::Truncate,
            MergedOp::Update { key, columns } => {
                let mut row = vec![Value::Unchanged; width];
                for (i, v) in columns {
                    row[i] = v;
                }
                RowOp::PartialUpdate { key, row }
            }
        };
        (pair, row_op)
    });
    let runs = group(ops);
    (runs, out)
}

/// Counts and logs what a merge saw (violations, conflicts, ignored changes).
pub fn report(outcome: &Outcome, schemas: &[PairSchema], source: Side) {
    let name = |p: usize| schemas.iter().find(|s| s.pair == p).map(|s| s.name.clone()).unwrap_or_default();
    for (pair, key, col) in &outcome.violations {
        let column = schemas.iter().find(|s| s.pair == *pair).map(|s| s.columns[*col].name.clone()).unwrap_or_default();
        metrics::counter!(m::OWNERSHIP_VIOLATIONS, "pair" => name(*pair), "side" => source.as_str()).increment(1);
        tracing::warn!(pair = %name(*pair), key = %key_text(key).replace('\u{1f}', ","), column = %column, side = %source,
            "ownership violation: {source} changed a column it does not own; not propagated");
    }
    for c in &outcome.conflicts {
        let winner = match c.verdict {
            Verdict::Wins(s) => s.as_str(),
            Verdict::Open => "open",
        };
        metrics::counter!(m::CONFLICTS, "pair" => name(c.pair), "policy" => crate::conflict::policy_name(c.policy), "winner" => winner).increment(1);
    }
    if outcome.missing_updates > 0 {
        tracing::info!(count = outcome.missing_updates, side = %source, "updates of rows missing at the destination ignored (deleted there; missing_row = \"ignore\")");
    }
}

/// JSON object of a key, `{"col": "value"}`, for state tables and logs.
pub fn key_json(schema: &PairSchema, key: &[Value]) -> String {
    let mut map = serde_json::Map::new();
    for (&i, v) in schema.key.iter().zip(key) {
        map.insert(schema.columns[i].name.clone(), serde_json::Value::String(v.to_string()));
    }
    serde_json::Value::Object(map).to_string()
}

/// The conflict records of a batch, ready for a destination's `conflicts` table.
pub fn conflict_rows(conflicts: &[ConflictRecord], schemas: &[PairSchema]) -> Vec<crate::state::ConflictRow> {
    conflicts
        .iter()
        .filter_map(|c| {
            let schema = schemas.iter().find(|s| s.pair == c.pair)?;
            let text = |v: &Value| if v.is_null() { None } else { Some(v.to_string()) };
            let (pg, my) = match c.source {
                Side::Postgres => (text(&c.source_value), text(&c.dest_value)),
                Side::Mysql => (text(&c.dest_value), text(&c.source_value)),
            };
            let winner = match c.verdict {
                Verdict::Wins(s) => Some(s.as_str().to_string()),
                Verdict::Open => None,
            };
            Some(crate::state::ConflictRow {
                pair: schema.name.clone(),
                key_json: key_json(schema, &c.key),
                column: schema.columns[c.column].name.clone(),
                postgres_value: pg,
                mysql_value: my,
                policy: crate::conflict::policy_name(c.policy).to_string(),
                winner,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Owner, TableName};
    use crate::schema::ColumnSchema;

    fn schemas() -> Vec<PairSchema> {
        let col = |n: &str| ColumnSchema::for_tests(n, Owner::Both, "text", "text");
        let t = TableName { schema: "s".into(), name: "t".into() };
        (0..2).map(|pair| PairSchema { pair, name: format!("p{pair}"), pg_table: t.clone(), my_table: t.clone(), columns: vec![col("id"), col("v")], key: vec![0] }).collect()
    }

    fn change(pair: usize, op: Op, id: i64, v: Value) -> Change {
        let row = vec![Value::Int(id), v];
        Change { pair, op, key: vec![Value::Int(id)], before: (op == Op::Update).then(|| row.clone()), after: Some(row) }
    }

    fn pair(name: &str, on_conflict: crate::config::ConflictPolicy, timestamp_column: Option<&str>) -> PairConfig {
        PairConfig {
            name: name.into(),
            timestamp_column: timestamp_column.map(String::from),
            columns: Default::default(),
            ..crate::conflict::merge::tests::pair(on_conflict)
        }
    }

    #[test]
    fn only_chunks_of_plain_updates_of_distinct_keys_may_assume_their_before_images() {
        use crate::config::ConflictPolicy;
        let s = schemas();
        let pairs = vec![pair("p0", ConflictPolicy::PostgresWins, None), pair("p1", ConflictPolicy::LastWriterWins, Some("v"))];
        let upd = |pair, id, before: Value, after: Value| Change {
            pair,
            op: Op::Update,
            key: vec![Value::Int(id)],
            before: Some(vec![Value::Int(id), before]),
            after: Some(vec![Value::Int(id), after]),
        };
        let chunk = [upd(0, 1, Value::Int(1), Value::Int(2)), upd(0, 2, Value::Null, Value::Int(3)), upd(1, 1, Value::Int(1), Value::Int(2))];
        let cur = assumed_current(&chunk, &s, &pairs).unwrap();
        assert_eq!(cur.len(), 3);
        assert_eq!(cur[&(0, key_text(&[Value::Int(2)]))], &vec![Value::Int(2), Value::Null]);
        let no = |chunk: &[Change], why: &str| assert!(assumed_current(chunk, &s, &pairs).is_none(), "{why}");
        no(&[upd(0, 1, Value::Int(1), Value::Int(2)), upd(0, 1, Value::Int(2), Value::Int(3))], "a key twice: the second update's row is the first one's outcome");
        no(&[change(0, Op::Insert, 1, Value::Null)], "an insert may meet an existing row");
        no(&[change(0, Op::Delete, 1, Value::Null)], "a delete is not an update");
        let mut moved = upd(0, 1, Value::Int(1), Value::Int(2));
        moved.key = vec![Value::Int(9)];
        no(&[moved], "a row that moves to a new key");
        let mut no_before = upd(0, 1, Value::Int(1), Value::Int(2));
        no_before.before = None;
        no(&[no_before], "no before-image to guard with");
        no(&[upd(1, 1, Value::Unchanged, Value::Int(2))], "last-writer-wins needs the before-image's timestamp");
        assert!(assumed_current(&[upd(0, 1, Value::Unchanged, Value::Int(2))], &s, &pairs).is_some(), "other pairs do not");
        no(&[upd(5, 1, Value::Int(1), Value::Int(2))], "an unknown pair");
        assert_eq!(guard_also(&s[1], &pairs[1]), Some(1));
        assert_eq!(guard_also(&s[0], &pair("p0", ConflictPolicy::PostgresWins, Some("v"))), None, "the timestamp decides only last-writer-wins");
    }

    #[test]
    fn only_chunks_of_complete_inserts_are_fresh_and_runs_keep_order_by_pair() {
        use crate::config::ConflictPolicy;
        let pairs = vec![pair("p0", ConflictPolicy::PostgresWins, None), pair("p1", ConflictPolicy::PostgresWins, None)];
        let s = schemas();
        let ins = |pair, id| change(pair, Op::Insert, id, Value::Null);
        let chunk = [ins(0, 1), ins(0, 2), ins(1, 3), ins(0, 4)];
        let runs = fresh_inserts(&chunk, &s, &pairs).unwrap();
        let shape: Vec<(usize, Vec<&Value>)> = runs.iter().map(|r| (r.pair, r.rows.iter().map(|row| &row[0]).collect())).collect();
        assert_eq!(shape, vec![(0, vec![&Value::Int(1), &Value::Int(2)]), (1, vec![&Value::Int(3)]), (0, vec![&Value::Int(4)])]);
        assert!(fresh_inserts(&[ins(0, 1), change(0, Op::Update, 1, Value::Null)], &s, &pairs).is_none(), "an update needs the current row");
        assert!(fresh_inserts(&[change(0, Op::Insert, 1, Value::Unchanged)], &s, &pairs).is_none(), "an incomplete row goes through the merge");
        assert!(fresh_inserts(&[ins(5, 1)], &s, &pairs).is_none(), "an unknown pair goes through the merge");
        assert!(fresh_inserts(&[], &s, &pairs).is_none());
    }
}
