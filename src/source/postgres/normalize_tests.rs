//! Tests of the pgoutput → `SourceEvent` normalization: column mapping by
//! name, keys, before/after images, TOAST `Unchanged`, chunking, echo and
//! already-applied skipping, `Idle` positions.

use super::*;
use crate::config::{Owner, TableName};
use crate::schema::{ColumnSchema, ValueKind};
use crate::source::postgres::pgoutput::{
    Begin, Commit, Delete, Insert, Origin, RelationColumn, ReplicaIdentity, Truncate, Update,
};
use bytes::Bytes;

fn col(name: &str, pg_name: &str, kind: ValueKind) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        pg_name: pg_name.into(),
        my_name: name.into(),
        owner: Owner::Both,
        pg_type: match kind {
            ValueKind::Int => "bigint",
            ValueKind::Text => "text",
            _ => "",
        }
        .into(),
        my_type: String::new(),
        pg_kind: kind,
        my_kind: kind,
        pg_generated: false,
        pg_identity_always: false,
        my_generated: false,
        my_on_update: false,
    }
}

/// Pair 3 `customers`: columns id, email (pg name `mail`), note.
fn pairs() -> Vec<PairSchema> {
    vec![PairSchema {
        pair: 3,
        name: "customers".into(),
        pg_table: TableName { schema: "public".into(), name: "customers".into() },
        my_table: TableName { schema: "app".into(), name: "customers".into() },
        columns: vec![
            col("id", "id", ValueKind::Int),
            col("email", "mail", ValueKind::Text),
            col("note", "note", ValueKind::Text),
        ],
        key: vec![0],
    }]
}

/// Relation 7 = public.customers with an extra column and a different order.
fn relation() -> PgOutputMessage {
    let c = |flags, name: &str, type_oid| RelationColumn { flags, name: name.into(), type_oid, type_modifier: -1 };
    PgOutputMessage::Relation(Relation {
        id: 7,
        namespace: "public".into(),
        name: "customers".into(),
        replica_identity: ReplicaIdentity::Full,
        columns: vec![c(0, "note", 25), c(1, "id", 20), c(0, "extra", 23), c(0, "mail", 1043)],
    })
}

fn other_relation() -> PgOutputMessage {
    PgOutputMessage::Relation(Relation {
        id: 8,
        namespace: "public".into(),
        name: "unpaired".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![RelationColumn { flags: 1, name: "id".into(), type_oid: 23, type_modifier: -1 }],
    })
}

fn t(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

/// Relation-ordered tuple (note, id, extra, mail).
fn tup(note: TupleValue, id: &str, mail: TupleValue) -> Tuple {
    vec![note, t(id), t("0"), mail]
}

/// `begin()`'s commit time as a Begin event carries it (µs since the Unix epoch).
const BEGIN_TS: i64 = 1_000_000 + 946_684_800_000_000;

fn begin(final_lsn: u64) -> PgOutputMessage {
    PgOutputMessage::Begin(Begin { final_lsn: Lsn(final_lsn), commit_ts: 1_000_000, xid: 1 })
}

fn commit(final_lsn: u64, end_lsn: u64) -> PgOutputMessage {
    PgOutputMessage::Commit(Commit {
        flags: 0,
        commit_lsn: Lsn(final_lsn),
        end_lsn: Lsn(end_lsn),
        commit_ts: 1_000_000,
    })
}

fn insert(rel: u32, id: &str) -> PgOutputMessage {
    PgOutputMessage::Insert(Insert { relation: rel, new: tup(t("n"), id, t("a@x")) })
}

fn run(n: &mut Normalizer, msgs: Vec<PgOutputMessage>) -> Vec<SourceEvent> {
    let mut out = Vec::new();
    for m in msgs {
        n.handle(m, &mut out).unwrap();
    }
    out
}

fn normalizer(chunk_rows: usize, start: u64) -> Normalizer {
    Normalizer::new(pairs(), "tandem_crm".into(), chunk_rows, Lsn(start))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn insert_update_delete_map_columns_by_pg_name() {
    let mut n = normalizer(100, 0);
    let update = PgOutputMessage::Update(Update {
        relation: 7,
        old: Some(OldTuple::Full(tup(t("n"), "1", t("a@x")))),
        new: tup(TupleValue::Unchanged, "1", t("b@x")),
    });
    let delete =
        PgOutputMessage::Delete(Delete { relation: 7, old: OldTuple::Full(tup(TupleValue::Null, "1", t("b@x"))) });
    let ev = run(&mut n, vec![relation(), begin(0x100), insert(7, "1"), update, delete, commit(0x100, 0x130)]);
    let row = |id: i64, mail: &str, note: Value| vec![Value::Int(id), text(mail), note];
    assert_eq!(
        ev,
        vec![
            SourceEvent::Begin { txn_seq: 1, origin: crate::model::Origin::Client, commit_ts: BEGIN_TS },
            SourceEvent::Changes(vec![
                Change {
                    pair: 3,
                    op: Op::Insert,
                    key: vec![Value::Int(1)],
                    before: None,
                    after: Some(row(1, "a@x", text("n")))
                },
                Change {
                    pair: 3,
                    op: Op::Update,
                    key: vec![Value::Int(1)],
                    before: Some(row(1, "a@x", text("n"))),
                    after: Some(row(1, "b@x", Value::Unchanged)),
                },
                Change {
                    pair: 3,
                    op: Op::Delete,
                    key: vec![Value::Int(1)],
                    before: Some(row(1, "b@x", Value::Null)),
                    after: None
                },
            ]),
            SourceEvent::Commit(TxnMeta {
                position: SourcePos::Postgres(Lsn(0x130)),
                commit_ts: 1_000_000 + 946_684_800_000_000,
                origin: None,
                txn_seq: 1,
            }),
        ]
    );
}

#[test]
fn key_only_old_tuples_give_no_before_image() {
    let mut n = normalizer(100, 0);
    let key_only = tup(TupleValue::Null, "5", TupleValue::Null);
    let update = PgOutputMessage::Update(Update {
        relation: 7,
        old: Some(OldTuple::Key(key_only.clone())),
        new: tup(t("n"), "6", t("m")),
    });
    let delete = PgOutputMessage::Delete(Delete { relation: 7, old: OldTuple::Key(key_only) });
    let ev = run(&mut n, vec![relation(), begin(0x100), update, delete, commit(0x100, 0x130)]);
    let SourceEvent::Changes(changes) = &ev[1] else { panic!("{ev:?}") };
    assert_eq!(changes[0].key, vec![Value::Int(6)], "update key comes from the new tuple");
    assert_eq!(changes[0].before, None);
    assert_eq!(changes[1].key, vec![Value::Int(5)]);
    assert_eq!(changes[1].before, None);
}

#[test]
fn unchanged_key_in_new_tuple_is_taken_from_old() {
    let mut n = normalizer(100, 0);
    let mut new = tup(t("n"), "1", t("m"));
    new[1] = TupleValue::Unchanged;
    let update =
        PgOutputMessage::Update(Update { relation: 7, old: Some(OldTuple::Full(tup(t("n"), "9", t("m")))), new });
    let ev = run(&mut n, vec![relation(), begin(0x100), update, commit(0x100, 0x130)]);
    let SourceEvent::Changes(changes) = &ev[1] else { panic!("{ev:?}") };
    assert_eq!(changes[0].key, vec![Value::Int(9)]);
}

#[test]
fn delete_with_key_tuple_missing_pair_key_is_schema_error() {
    let mut n = normalizer(100, 0);
    let mut out = Vec::new();
    for m in [relation(), begin(0x100)] {
        n.handle(m, &mut out).unwrap();
    }
    let old = OldTuple::Key(vec![TupleValue::Null, TupleValue::Null, TupleValue::Null, TupleValue::Null]);
    let err = n.handle(PgOutputMessage::Delete(Delete { relation: 7, old }), &mut out).unwrap_err();
    assert!(
        matches!(&err, Error::Schema { pair, message } if pair == "customers" && message.contains("REPLICA IDENTITY FULL")),
        "{err}"
    );
}

#[test]
fn a_missing_pair_column_pauses_the_pair_and_its_return_resumes_it() {
    let mut n = normalizer(100, 0);
    let PgOutputMessage::Relation(mut rel) = relation() else { unreachable!() };
    rel.columns.retain(|c| c.name != "mail");
    let short = PgOutputMessage::Insert(Insert { relation: 7, new: vec![t("n"), t("1"), t("0")] });
    let ev = run(&mut n, vec![begin(0x100), PgOutputMessage::Relation(rel.clone()), short, commit(0x100, 0x130)]);
    let SourceEvent::PairState { pair: 0, paused: Some(reason) } = &ev[0] else { panic!("{ev:?}") };
    assert!(reason.contains("\"mail\"") && reason.contains("public.customers"), "{reason}");
    let SourceEvent::Changes(c) = &ev[2] else { panic!("{ev:?}") };
    assert_eq!(c[0].after, Some(vec![Value::Int(1), Value::Unchanged, text("n")]));
    // The same relation again: no new state; the column back: resumed.
    let ev = run(&mut n, vec![PgOutputMessage::Relation(rel), relation()]);
    assert_eq!(ev, vec![SourceEvent::PairState { pair: 0, paused: None }]);
    // A mapped column retyped to another kind pauses too (varchar → int4); back to text resumes.
    let PgOutputMessage::Relation(mut retyped) = relation() else { unreachable!() };
    retyped.columns.iter_mut().filter(|c| c.name == "mail").for_each(|c| c.type_oid = 23);
    let ev = run(&mut n, vec![PgOutputMessage::Relation(retyped)]);
    let [SourceEvent::PairState { pair: 0, paused: Some(reason) }] = ev.as_slice() else { panic!("{ev:?}") };
    assert!(reason.contains("\"mail\" changed type"), "{reason}");
    let PgOutputMessage::Relation(mut as_text) = relation() else { unreachable!() };
    as_text.columns.iter_mut().filter(|c| c.name == "mail").for_each(|c| c.type_oid = 25);
    assert_eq!(run(&mut n, vec![PgOutputMessage::Relation(as_text)]), vec![SourceEvent::PairState { pair: 0, paused: None }]);
    // A key column cannot be missing.
    let PgOutputMessage::Relation(mut keyless) = relation() else { unreachable!() };
    keyless.columns.retain(|c| c.name != "id");
    let err = n.handle(PgOutputMessage::Relation(keyless), &mut Vec::new()).unwrap_err();
    assert!(matches!(&err, Error::Schema { pair, message } if pair == "customers" && message.contains("\"id\"")), "{err}");
}

#[test]
fn generated_column_left_out_of_the_stream_reads_as_unchanged() {
    // PG 15's pgoutput does not publish GENERATED ALWAYS … STORED columns.
    let mut pairs = pairs();
    pairs[0].columns[2].pg_generated = true;
    let mut n = Normalizer::new(pairs, "tandem_crm".into(), 100, Lsn(0));
    let PgOutputMessage::Relation(mut rel) = relation() else { unreachable!() };
    rel.columns.retain(|c| c.name != "note");
    let ins = PgOutputMessage::Insert(Insert { relation: 7, new: vec![t("4"), t("0"), t("g@x")] });
    let ev = run(&mut n, vec![PgOutputMessage::Relation(rel), begin(0x100), ins, commit(0x100, 0x130)]);
    let SourceEvent::Changes(changes) = &ev[1] else { panic!("{ev:?}") };
    assert_eq!(changes[0].after, Some(vec![Value::Int(4), text("g@x"), Value::Unchanged]));
}

#[test]
fn bad_values_name_table_column_and_type() {
    let mut n = normalizer(100, 0);
    let mut out = Vec::new();
    run(&mut n, vec![relation(), begin(0x100)]);
    let bad = PgOutputMessage::Insert(Insert { relation: 7, new: tup(t("n"), "x1", t("m")) });
    let err = n.handle(bad, &mut out).unwrap_err().to_string();
    assert!(err.contains("public.customers.id") && err.contains("bigint value \"x1\""), "{err}");
    let short = PgOutputMessage::Insert(Insert { relation: 7, new: vec![t("n")] });
    assert!(n.handle(short, &mut out).is_err());
}

#[test]
fn relation_messages_replace_the_cached_mapping() {
    let mut n = normalizer(100, 0);
    let renamed = PgOutputMessage::Relation(Relation {
        id: 7,
        namespace: "public".into(),
        name: "customers_old".into(),
        replica_identity: ReplicaIdentity::Full,
        columns: vec![],
    });
    let ev = run(&mut n, vec![relation(), renamed, begin(0x100), insert(7, "1"), commit(0x100, 0x130)]);
    assert_eq!(ev, vec![SourceEvent::Idle(SourcePos::Postgres(Lsn(0x130)))], "no longer paired");
}

#[test]
fn transactions_without_paired_changes_become_idle() {
    let mut n = normalizer(100, 0);
    let ev = run(&mut n, vec![relation(), other_relation(), begin(0x100), insert(8, "1"), commit(0x100, 0x130)]);
    assert_eq!(ev, vec![SourceEvent::Idle(SourcePos::Postgres(Lsn(0x130)))]);
}

#[test]
fn own_origin_is_delivered_as_tandems_with_its_applied_position_other_origins_as_clients() {
    let mut n = normalizer(100, 0);
    let origin = |name: &str| PgOutputMessage::Origin(Origin { origin_lsn: Lsn(0), name: name.into() });
    let applied = message("tandem_crm_applied", true, "file:b.000001:500");
    let ev = run(&mut n, vec![relation(), begin(0x100), origin("tandem_crm"), insert(7, "1"), applied, commit(0x100, 0x130)]);
    assert!(matches!(ev.as_slice(), [
        SourceEvent::Begin { txn_seq: 1, origin: crate::model::Origin::Tandem, commit_ts: BEGIN_TS },
        SourceEvent::Applied(p),
        SourceEvent::Commit(m),
    ] if p == "file:b.000001:500" && m.position == SourcePos::Postgres(Lsn(0x130))), "no rows unless asked: {ev:?}");
    // `check --repair`'s origin is tandem's too; an unpaired own transaction is still delivered.
    let ev = run(&mut n, vec![other_relation(), begin(0x140), origin("tandem_crm_repair"), insert(8, "1"), commit(0x140, 0x150)]);
    assert!(matches!(ev.as_slice(), [SourceEvent::Begin { origin: crate::model::Origin::Tandem, .. }, SourceEvent::Commit(_)]), "{ev:?}");
    let ev = run(&mut n, vec![begin(0x200), origin("sub_x"), insert(7, "2"), commit(0x200, 0x230)]);
    assert_eq!(ev.len(), 3);
    assert!(matches!(&ev[0], SourceEvent::Begin { origin: crate::model::Origin::Client, .. }));
    assert!(matches!(&ev[2], SourceEvent::Commit(m) if m.origin.as_deref() == Some("sub_x") && m.txn_seq == 3));
}

#[test]
fn rows_of_own_transactions_come_from_the_first_removal_by_a_client_on() {
    let own_rows = crate::source::OwnRows::after_removals();
    let mut n = normalizer(100, 0).with_own_rows(own_rows.clone());
    let origin = PgOutputMessage::Origin(Origin { origin_lsn: Lsn(0), name: "tandem_crm".into() });
    let ev = run(&mut n, vec![relation(), begin(0x100), origin.clone(), insert(7, "1"), commit(0x100, 0x130)]);
    assert!(!ev.iter().any(|e| matches!(e, SourceEvent::Changes(_))), "{ev:?}");
    // A client transaction that inserts removes nothing; one that deletes does.
    run(&mut n, vec![begin(0x140), insert(7, "9"), commit(0x140, 0x150)]);
    assert!(!own_rows.wanted());
    let delete = PgOutputMessage::Delete(Delete { relation: 7, old: OldTuple::Full(tup(t("n"), "9", t("a@x"))) });
    run(&mut n, vec![begin(0x160), delete, commit(0x160, 0x170)]);
    assert!(own_rows.wanted(), "turned on at the commit of the first removal, before any later echo");
    let ev = run(&mut n, vec![begin(0x200), origin, insert(7, "2"), commit(0x200, 0x230)]);
    assert!(matches!(ev.as_slice(), [
        SourceEvent::Begin { origin: crate::model::Origin::Tandem, .. },
        SourceEvent::Changes(c),
        SourceEvent::Commit(_),
    ] if c.len() == 1 && c[0].key == vec![Value::Int(2)]), "{ev:?}");
}

#[test]
fn already_applied_transactions_yield_nothing() {
    let mut n = normalizer(100, 0x200);
    let ev = run(&mut n, vec![relation(), begin(0x100), insert(7, "1"), commit(0x100, 0x130)]);
    assert!(ev.is_empty(), "{ev:?}");
    let ev = run(&mut n, vec![begin(0x1F0), insert(7, "1"), commit(0x1F0, 0x200)]);
    assert!(ev.is_empty(), "commit end == start is applied: {ev:?}");
    let ev = run(&mut n, vec![begin(0x200), insert(7, "2"), commit(0x200, 0x230)]);
    assert_eq!(ev.len(), 3, "{ev:?}");
}

#[test]
fn large_transactions_stream_in_chunks() {
    let mut n = normalizer(2, 0);
    let mut msgs = vec![relation(), begin(0x100)];
    let mut out = Vec::new();
    for m in msgs.drain(..) {
        n.handle(m, &mut out).unwrap();
    }
    assert!(out.is_empty(), "Begin waits for the first paired change");
    n.handle(insert(7, "1"), &mut out).unwrap();
    assert!(out.is_empty(), "one change is buffered");
    n.handle(insert(7, "2"), &mut out).unwrap();
    assert!(matches!(out.as_slice(), [SourceEvent::Begin { txn_seq: 1, origin: crate::model::Origin::Client, commit_ts: BEGIN_TS }, SourceEvent::Changes(c)] if c.len() == 2));
    out.clear();
    for i in 3..=5 {
        n.handle(insert(7, &i.to_string()), &mut out).unwrap();
    }
    assert!(matches!(out.as_slice(), [SourceEvent::Changes(c)] if c.len() == 2));
    out.clear();
    n.handle(commit(0x100, 0x130), &mut out).unwrap();
    assert!(
        matches!(out.as_slice(), [SourceEvent::Changes(c), SourceEvent::Commit(m)] if c.len() == 1 && m.txn_seq == 1)
    );
    // A chunk boundary exactly at commit: no empty Changes.
    out.clear();
    for m in [begin(0x200), insert(7, "6"), insert(7, "7"), commit(0x200, 0x230)] {
        n.handle(m, &mut out).unwrap();
    }
    assert!(
        matches!(out.as_slice(), [SourceEvent::Begin { txn_seq: 2, origin: crate::model::Origin::Client, commit_ts: BEGIN_TS }, SourceEvent::Changes(c), SourceEvent::Commit(_)] if c.len() == 2)
    );
}

#[test]
fn truncate_yields_one_change_per_paired_relation() {
    let mut n = normalizer(100, 0);
    let tr = PgOutputMessage::Truncate(Truncate { options: 0, relations: vec![8, 7] });
    let ev = run(&mut n, vec![relation(), other_relation(), begin(0x100), tr, commit(0x100, 0x130)]);
    assert_eq!(
        ev[1],
        SourceEvent::Changes(vec![Change { pair: 3, op: Op::Truncate, key: vec![], before: None, after: None }])
    );
}

#[test]
fn keepalive_idle_only_between_transactions_and_forwards() {
    let mut n = normalizer(100, 0x100);
    assert_eq!(n.keepalive(Lsn(0x80)), None, "not beyond start");
    assert_eq!(n.keepalive(Lsn(0x180)), Some(SourceEvent::Idle(SourcePos::Postgres(Lsn(0x180)))));
    assert_eq!(n.keepalive(Lsn(0x180)), None, "only forwards");
    run(&mut n, vec![relation(), begin(0x200), insert(7, "1")]);
    assert_eq!(n.keepalive(Lsn(0x300)), None, "inside a transaction");
    run(&mut n, vec![commit(0x200, 0x230)]);
    assert_eq!(n.keepalive(Lsn(0x230)), None, "the commit already reported it");
    assert_eq!(n.keepalive(Lsn(0x240)), Some(SourceEvent::Idle(SourcePos::Postgres(Lsn(0x240)))));
}

#[test]
fn protocol_violations_are_errors() {
    let mut n = normalizer(100, 0);
    let mut out = Vec::new();
    assert!(n.handle(commit(1, 2), &mut out).is_err(), "Commit without Begin");
    assert!(n.handle(insert(7, "1"), &mut out).is_err(), "change outside a transaction");
    n.handle(begin(0x100), &mut out).unwrap();
    assert!(n.handle(insert(7, "1"), &mut out).is_err(), "unknown relation");
    assert!(n.handle(begin(0x100), &mut out).is_err(), "nested Begin");
}

fn message(prefix: &str, transactional: bool, content: &str) -> PgOutputMessage {
    PgOutputMessage::Message(super::super::pgoutput::LogicalMessage {
        flags: transactional as u8,
        lsn: Lsn(150),
        prefix: prefix.into(),
        content: bytes::Bytes::from(content.to_string()),
    })
}

#[test]
fn backfill_watermarks_of_this_pipeline_follow_their_transaction() {
    let mut n = normalizer(100, 100);
    let s = crate::backfill::Signal {
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
    let json = s.to_json();
    let out = run(
        &mut n,
        vec![
            begin(200),
            message("tandem_crm_signal", true, &json),
            message("tandem_other_signal", true, &json),
            message("tandem_crm_signal", false, &json),
            commit(200, 210),
        ],
    );
    assert_eq!(out, vec![SourceEvent::Watermark { position: SourcePos::Postgres(Lsn(210)), payload: json.clone() }], "no Idle that could be acknowledged first");
    // A watermark at or before the start position was dealt with before the restart.
    let mut n = normalizer(100, 300);
    assert!(run(&mut n, vec![begin(200), message("tandem_crm_signal", true, &json), commit(200, 210)]).is_empty());
}
