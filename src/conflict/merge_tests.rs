//! Merge rules of DESIGN §3, one test per rule.

use super::*;
use crate::config::*;
use crate::schema::{ColumnSchema, ValueKind};
use std::collections::BTreeMap;

/// A pair with `email` owned by Postgres, the others by both.
pub(crate) fn pair(policy: ConflictPolicy) -> PairConfig {
    let mut columns = BTreeMap::new();
    columns.insert("email".to_string(), ColumnConfig { owner: Some(Owner::Postgres), postgres: None, mysql: None });
    let t = TableName { schema: "s".into(), name: "t".into() };
    PairConfig {
        name: "p".into(),
        postgres: t.clone(),
        mysql: t,
        key: None,
        default_owner: Owner::Both,
        on_conflict: policy,
        timestamp_column: Some("ts".into()),
        tie_breaker: Side::Postgres,
        deletes: DeleteSides::Both,
        missing_row: MissingRow::Ignore,
        zero_dates: ZeroDates::Quarantine,
        direction: crate::config::PairDirection::Both,
        columns,
    }
}

fn schema(p: &PairConfig) -> PairSchema {
    let col = |n: &str| ColumnSchema {
        name: n.into(),
        pg_name: n.into(),
        my_name: n.into(),
        owner: p.owner_of(n),
        pg_type: "text".into(),
        my_type: "text".into(),
        pg_kind: ValueKind::Text,
        my_kind: ValueKind::Text,
        pg_generated: false,
        pg_identity_always: false,
        my_generated: false,
        my_on_update: false,
    };
    PairSchema {
        pair: 0,
        name: "p".into(),
        pg_table: p.postgres.clone(),
        my_table: p.mysql.clone(),
        columns: vec![col("id"), col("a"), col("b"), col("email"), col("ts")],
        key: vec![0],
    }
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

fn row(a: &str, b: &str, email: &str, ts: i64) -> Row {
    vec![Value::Int(1), t(a), t(b), t(email), Value::Timestamp(ts)]
}

fn update(before: Row, after: Row) -> Change {
    Change { pair: 0, op: Op::Update, key: vec![Value::Int(1)], before: Some(before), after: Some(after) }
}

fn run(policy: ConflictPolicy, source: Side, change: &Change, dest: Option<Row>) -> (Outcome, Option<Row>) {
    let p = pair(policy);
    let s = schema(&p);
    let ctx = MergeContext { pair: &p, schema: &s, source, forwarded: false };
    let mut cur = dest;
    let mut out = Outcome::default();
    merge_change(&ctx, change, &mut cur, None, &mut out);
    (out, cur)
}

#[test]
fn only_changed_columns_are_written_and_concurrent_other_columns_survive() {
    // Source changed a; destination concurrently changed b.
    let c = update(row("a0", "b0", "e", 1), row("a1", "b0", "e", 1));
    let (out, cur) = run(ConflictPolicy::PostgresWins, Side::Mysql, &c, Some(row("a0", "b9", "e", 1)));
    assert_eq!(out.ops, vec![(0, MergedOp::Update { key: vec![Value::Int(1)], columns: vec![(1, t("a1"))] })]);
    assert!(out.conflicts.is_empty());
    assert_eq!(cur.unwrap(), row("a1", "b9", "e", 1));
}

#[test]
fn non_owner_changes_are_violations_and_not_written() {
    let c = update(row("a", "b", "e0", 1), row("a", "b", "e1", 1));
    let (out, _) = run(ConflictPolicy::MysqlWins, Side::Mysql, &c, Some(row("a", "b", "e0", 1)));
    assert!(out.ops.is_empty());
    assert_eq!(out.violations, vec![(0, vec![Value::Int(1)], 3)]);
}

#[test]
fn owner_wins_a_conflict_on_its_column_whatever_the_policy() {
    let c = update(row("a", "b", "e0", 1), row("a", "b", "e1", 1));
    let (out, cur) = run(ConflictPolicy::MysqlWins, Side::Postgres, &c, Some(row("a", "b", "e-mysql", 1)));
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(out.conflicts[0].verdict, Verdict::Wins(Side::Postgres));
    assert_eq!(cur.unwrap()[3], t("e1"));
}

#[test]
fn fixed_priority_and_manual_policies() {
    let c = update(row("a0", "b", "e", 1), row("a1", "b", "e", 1));
    let dest = Some(row("a-dest", "b", "e", 1));
    let (out, cur) = run(ConflictPolicy::PostgresWins, Side::Mysql, &c, dest.clone());
    assert_eq!(out.conflicts[0].verdict, Verdict::Wins(Side::Postgres));
    assert_eq!(cur.unwrap()[1], t("a-dest"), "destination (postgres) keeps its value");
    let (out, cur) = run(ConflictPolicy::MysqlWins, Side::Mysql, &c, dest.clone());
    assert_eq!(cur.unwrap()[1], t("a1"));
    assert_eq!(out.conflicts[0].dest_value, t("a-dest"));
    let (out, cur) = run(ConflictPolicy::Manual, Side::Mysql, &c, dest);
    assert_eq!(out.conflicts[0].verdict, Verdict::Open);
    assert_eq!(cur.unwrap()[1], t("a-dest"), "manual: destination keeps its value");
}

#[test]
fn last_writer_wins_by_timestamp_column() {
    let c = update(row("a0", "b", "e", 1), row("a1", "b", "e", 5));
    let (out, cur) = run(ConflictPolicy::LastWriterWins, Side::Mysql, &c, Some(row("a-dest", "b", "e", 3)));
    assert!(out.conflicts.iter().all(|c| c.verdict == Verdict::Wins(Side::Mysql)));
    assert_eq!(cur.unwrap(), row("a1", "b", "e", 5));
    let (_, cur) = run(ConflictPolicy::LastWriterWins, Side::Mysql, &c, Some(row("a-dest", "b", "e", 9)));
    assert_eq!(cur.unwrap(), row("a-dest", "b", "e", 9), "the newer destination row wins");
}

#[test]
fn missing_rows_deletes_and_inserts() {
    let c = update(row("a0", "b", "e", 1), row("a1", "b", "e", 1));
    let (out, cur) = run(ConflictPolicy::PostgresWins, Side::Mysql, &c, None);
    assert_eq!((out.missing_updates, cur), (1, None), "update of a missing row is ignored by default");

    let p = PairConfig { missing_row: MissingRow::Insert, ..pair(ConflictPolicy::PostgresWins) };
    let s = schema(&p);
    let mut cur = None;
    let mut out = Outcome::default();
    merge_change(&MergeContext { pair: &p, schema: &s, source: Side::Mysql, forwarded: false }, &c, &mut cur, None, &mut out);
    assert_eq!(out.ops, vec![(0, MergedOp::Insert(row("a1", "b", "e", 1)))]);

    let del = Change { pair: 0, op: Op::Delete, key: vec![Value::Int(1)], before: Some(row("a", "b", "e", 1)), after: None };
    let (out, cur) = run(ConflictPolicy::PostgresWins, Side::Mysql, &del, Some(row("a", "b", "e", 1)));
    assert_eq!((out.ops.len(), cur), (1, None));
    let (out, _) = run(ConflictPolicy::PostgresWins, Side::Mysql, &del, None);
    assert!(out.ops.is_empty(), "delete of a missing key is a no-op");

    let p = PairConfig { deletes: DeleteSides::Postgres, ..pair(ConflictPolicy::PostgresWins) };
    let s = schema(&p);
    let mut cur = Some(row("a", "b", "e", 1));
    let mut out = Outcome::default();
    merge_change(&MergeContext { pair: &p, schema: &s, source: Side::Mysql, forwarded: false }, &del, &mut cur, None, &mut out);
    assert!(out.ops.is_empty() && cur.is_some() && out.skipped_deletes == 1, "deletes = postgres: a MySQL delete is not propagated");
}

#[test]
fn insert_of_an_existing_key_merges_like_an_update() {
    let ins = Change { pair: 0, op: Op::Insert, key: vec![Value::Int(1)], before: None, after: Some(row("a1", "b", "e", 1)) };
    let (out, cur) = run(ConflictPolicy::MysqlWins, Side::Mysql, &ins, Some(row("a0", "b", "e", 1)));
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(cur.unwrap()[1], t("a1"));
}

#[test]
fn unchanged_toast_values_are_never_written() {
    let mut after = row("a1", "b", "e", 1);
    after[2] = Value::Unchanged;
    let c = update(row("a0", "b", "e", 1), after);
    let (out, cur) = run(ConflictPolicy::PostgresWins, Side::Postgres, &c, Some(row("a0", "b-dest", "e", 1)));
    assert_eq!(out.ops, vec![(0, MergedOp::Update { key: vec![Value::Int(1)], columns: vec![(1, t("a1"))] })]);
    assert_eq!(cur.unwrap()[2], t("b-dest"));
}

#[test]
fn an_update_that_moves_a_row_to_a_new_key_deletes_and_inserts() {
    let mut after = row("a", "b", "e", 1);
    after[0] = Value::Int(2);
    let c = Change { pair: 0, op: Op::Update, key: vec![Value::Int(2)], before: Some(row("a", "b", "e", 1)), after: Some(after.clone()) };
    let p = pair(ConflictPolicy::PostgresWins);
    let s = schema(&p);
    let mut new = None;
    let mut old = Some(row("a", "b", "e", 1));
    let mut out = Outcome::default();
    merge_change(&MergeContext { pair: &p, schema: &s, source: Side::Mysql, forwarded: false }, &c, &mut new, Some(&mut old), &mut out);
    assert_eq!(out.ops, vec![(0, MergedOp::Delete(vec![Value::Int(1)])), (0, MergedOp::Insert(after))]);
    assert_eq!(old, None);
}

#[test]
fn last_writer_wins_takes_the_newer_row_version_when_the_destination_moved_on() {
    // Postgres: v=pg @1 then a=x @3; MariaDB concurrently v=my @2 (column b plays v here).
    let p = pair(ConflictPolicy::LastWriterWins);
    let s = schema(&p);
    let run_one = |source, change: &Change, dest: Row| {
        let mut cur = Some(dest);
        let mut out = Outcome::default();
        merge_change(&MergeContext { pair: &p, schema: &s, source, forwarded: false }, change, &mut cur, None, &mut out);
        cur.unwrap()
    };
    // At MariaDB (row b=my @2): Postgres' first change (b: 0 → pg, ts 0 → 1) loses, its second (a, ts 1 → 3) wins whole.
    let my = run_one(Side::Postgres, &update(row("a0", "b0", "e", 0), row("a0", "pg", "e", 1)), row("a0", "my", "e", 2));
    assert_eq!(my, row("a0", "my", "e", 2));
    let my = run_one(Side::Postgres, &update(row("a0", "pg", "e", 1), row("x", "pg", "e", 3)), my);
    assert_eq!(my, row("x", "pg", "e", 3));
    // At Postgres (row a=x, b=pg @3): MariaDB's change (b: 0 → my, ts 0 → 2) loses.
    let pg = run_one(Side::Mysql, &update(row("a0", "b0", "e", 0), row("a0", "my", "e", 2)), row("x", "pg", "e", 3));
    assert_eq!(pg, my, "both sides converge on the newest row version");
}

/// `run` with column `b` generated at the destination and `a` a Postgres identity ALWAYS column.
fn run_computed(source: Side, change: &Change, dest: Option<Row>) -> (Outcome, Option<Row>) {
    let p = pair(ConflictPolicy::PostgresWins);
    let mut s = schema(&p);
    s.columns[2].pg_generated = true;
    s.columns[2].my_generated = true;
    s.columns[1].pg_identity_always = true;
    let ctx = MergeContext { pair: &p, schema: &s, source, forwarded: false };
    let (mut cur, mut out) = (dest, Outcome::default());
    merge_change(&ctx, change, &mut cur, None, &mut out);
    (out, cur)
}

#[test]
fn an_insert_lacking_a_generated_column_the_source_did_not_send_is_still_inserted() {
    // pgoutput (PG 15) leaves GENERATED … STORED columns out: they arrive Unchanged.
    let after = vec![Value::Int(1), t("a"), Value::Unchanged, t("e"), Value::Timestamp(1)];
    let c = Change { pair: 0, op: Op::Insert, key: vec![Value::Int(1)], before: None, after: Some(after.clone()) };
    let (out, cur) = run_computed(Side::Postgres, &c, None);
    assert_eq!(out.ops, vec![(0, MergedOp::Insert(after.clone()))]);
    assert_eq!(out.missing_updates, 0);
    assert_eq!(cur, Some(after));
}

#[test]
fn generated_and_identity_always_columns_are_never_updated() {
    // MySQL changed a (identity ALWAYS in Postgres), b (generated) and email.
    let c = update(row("a0", "b0", "e0", 1), row("a1", "b1", "e1", 1));
    let (out, _) = run_computed(Side::Mysql, &c, Some(row("a0", "b0", "e0", 1)));
    assert!(out.ops.is_empty(), "{:?}", out.ops);
    assert_eq!(out.violations.len(), 1, "email is owned by postgres");
    // The same change from Postgres: a is an ordinary column in MySQL, b is generated there.
    let (out, _) = run_computed(Side::Postgres, &c, Some(row("a0", "b0", "e0", 1)));
    assert_eq!(out.ops, vec![(0, MergedOp::Update { key: vec![Value::Int(1)], columns: vec![(1, t("a1")), (3, t("e1"))] })]);
    assert!(out.conflicts.is_empty());
}

#[test]
fn a_forwarded_outcome_is_adopted_in_columns_its_side_does_not_own_unless_changed_here() {
    // email is owned by Postgres; MySQL forwards the outcome its row holds.
    let p = pair(ConflictPolicy::MysqlWins);
    let s = schema(&p);
    let c = update(row("a0", "b0", "e0", 1), row("a0", "b0", "e1", 1));
    for policy_ts in [false, true] {
        let mut p = p.clone();
        if policy_ts {
            p.on_conflict = ConflictPolicy::LastWriterWins;
        }
        let ctx = MergeContext { pair: &p, schema: &s, source: Side::Mysql, forwarded: true };
        let (mut cur, mut out) = (Some(row("a0", "b0", "e0", 1)), Outcome::default());
        merge_change(&ctx, &c, &mut cur, None, &mut out);
        assert_eq!(cur, Some(row("a0", "b0", "e1", 1)), "unchanged here since: adopted");
        assert!(out.violations.is_empty());
        // Postgres changed email itself since (and its timestamp): the owner keeps it.
        let (mut cur, mut out) = (Some(row("a0", "b0", "e9", 2)), Outcome::default());
        merge_change(&ctx, &c, &mut cur, None, &mut out);
        assert_eq!(cur.map(|r| r[3].clone()), Some(t("e9")), "changed here since: the owner's value stays");
        assert!(out.violations.is_empty());
    }
    // Not forwarded: a violation, not applied.
    let (out, cur) = run(ConflictPolicy::MysqlWins, Side::Mysql, &c, Some(row("a0", "b0", "e0", 1)));
    assert_eq!(cur, Some(row("a0", "b0", "e0", 1)));
    assert_eq!(out.violations.len(), 1);
}
