//! Tests of the echo stage: tandem's own transactions become `Idle`s or
//! outcomes, the side's own deletes become tombstones, a `Barrier` keeps one
//! `seen` per batch, and `seen` reaches the bookkeeping with its `Begin`.

use super::*;
use crate::config::{Owner, TableName};
use crate::model::Value;
use crate::schema::{ColumnSchema, ValueKind};

fn schemas() -> Arc<Vec<PairSchema>> {
    let col = |name: &str| ColumnSchema {
        name: name.into(),
        pg_name: name.into(),
        my_name: name.into(),
        owner: Owner::Both,
        pg_type: "bigint".into(),
        my_type: "bigint".into(),
        pg_kind: ValueKind::Int,
        my_kind: ValueKind::Int,
        pg_generated: false,
        pg_identity_always: false,
        my_generated: false,
        my_on_update: false,
    };
    Arc::new(vec![PairSchema {
        pair: 0,
        name: "t".into(),
        pg_table: TableName { schema: "public".into(), name: "t".into() },
        my_table: TableName { schema: "app".into(), name: "t".into() },
        columns: vec![col("id"), col("v")],
        key: vec![0],
    }])
}

fn pg(n: u64) -> SourcePos {
    SourcePos::Postgres(Lsn(n))
}

fn binlog(n: u64) -> SourcePos {
    SourcePos::Mysql(BinlogPos::File { file: "b.000001".into(), pos: n })
}

fn insert(id: i64) -> Change {
    Change { pair: 0, op: Op::Insert, key: vec![Value::Int(id)], before: None, after: Some(vec![Value::Int(id), Value::Int(0)]) }
}

fn delete(id: i64) -> Change {
    Change { pair: 0, op: Op::Delete, key: vec![Value::Int(id)], before: Some(vec![Value::Int(id), Value::Int(0)]), after: None }
}

fn meta(seq: u64, at: SourcePos) -> TxnMeta {
    TxnMeta { position: at, commit_ts: 0, origin: None, txn_seq: seq }
}

/// A transaction of `origin` as a Postgres source delivers it.
fn txn(seq: u64, origin: Origin, applied: Option<u64>, changes: Vec<Change>, at: u64) -> Vec<SourceEvent> {
    let mut v = vec![SourceEvent::Begin { txn_seq: seq, origin, commit_ts: 0 }];
    if !changes.is_empty() {
        v.push(SourceEvent::Changes(changes));
    }
    if let Some(a) = applied {
        v.push(SourceEvent::Applied(format!("file:b.000001:{a}")));
    }
    v.push(SourceEvent::Commit(meta(seq, pg(at))));
    v
}

/// Feeds `events` through `stage` and returns what it hands out, each
/// `Begin` with the `seen` the bookkeeping sees at that moment.
async fn through(stage: EchoStage, events: Vec<SourceEvent>) -> Vec<(SourceEvent, Option<SourcePos>)> {
    let now = stage.seen_now();
    let (tx, rx) = mpsc::channel(events.len() + 1);
    for e in events {
        tx.send(e).await.unwrap();
    }
    drop(tx);
    let mut events = stage.events(rx);
    let mut out = Vec::new();
    while let Some(ev) = events.next().await {
        out.push((ev, now.get()));
    }
    out
}

fn kinds(out: &[(SourceEvent, Option<SourcePos>)]) -> Vec<String> {
    out.iter()
        .map(|(e, _)| match e {
            SourceEvent::Begin { origin, .. } => format!("begin {}", origin.as_str()),
            SourceEvent::Changes(c) => format!("changes {}", c.len()),
            SourceEvent::Commit(m) => format!("commit {}", m.position),
            SourceEvent::Idle(p) => format!("idle {p}"),
            SourceEvent::Barrier => "barrier".into(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn without_a_registry_tandems_transactions_become_idle_and_clients_pass() {
    let stage = EchoStage::new(Side::Postgres, None, schemas());
    let mut ev = txn(1, Origin::Client, None, vec![insert(1)], 0x10);
    ev.extend(txn(2, Origin::Tandem, Some(500), vec![insert(2)], 0x20));
    ev.extend(txn(3, Origin::Client, None, vec![insert(3)], 0x30));
    let out = through(stage, ev).await;
    assert_eq!(kinds(&out), ["begin client", "changes 1", "commit 0/10", "idle 0/20", "begin client", "changes 1", "commit 0/30"]);
}

/// Row incarnations: an echo's write to a key Postgres deleted after the
/// batch's `seen` is forwarded to MySQL as Postgres' outcome — unless the
/// same echo deleted the key again. (Was a normalizer test before the echo
/// stage existed.)
#[tokio::test]
async fn an_echo_forwards_writes_to_keys_deleted_meanwhile_but_not_ones_it_deleted_again() {
    let reg = Arc::new(Incarnations::default());
    let stage = EchoStage::new(Side::Postgres, Some(Arc::clone(&reg)), schemas());
    // Postgres deletes keys 1 and 2 itself.
    let mut ev = txn(1, Origin::Client, None, vec![delete(1), delete(2)], 0x130);
    // Two batches the applier wrote, both from MySQL changes that had not seen that delete.
    reg.batch_committing(Side::Postgres, &binlog(500), Some(&pg(0x50)), Vec::new());
    reg.batch_committing(Side::Postgres, &binlog(600), Some(&pg(0x50)), Vec::new());
    // The first re-created key 1 (and wrote key 3, never deleted here): key 1 is forwarded.
    ev.extend(txn(2, Origin::Tandem, Some(500), vec![insert(1), insert(3)], 0x230));
    // The second re-created key 2 and then applied MySQL's delete of it: both sides lack it, nothing to forward.
    ev.extend(txn(3, Origin::Tandem, Some(600), vec![insert(2), delete(2)], 0x330));
    let out = through(stage, ev).await;
    assert_eq!(
        kinds(&out),
        ["begin client", "changes 2", "commit 0/130", "barrier", "begin outcome", "changes 1", "commit 0/230", "idle 0/330"],
        "a forward of key 2 would re-create it in MySQL only"
    );
    let SourceEvent::Changes(fwd) = &out[5].0 else { panic!("{out:?}") };
    assert_eq!(fwd, &vec![insert(1)]);
    assert_eq!(out[4].1, Some(binlog(500)), "the outcome carries the seen its echo recorded");
    assert!(reg.tracks_deletes(Side::Postgres), "Postgres' deletes are tracked");
}

#[tokio::test]
async fn a_barrier_precedes_a_transaction_with_another_seen_and_the_seen_arrives_with_its_begin() {
    let reg = Arc::new(Incarnations::default());
    reg.set_resume_seen(Side::Postgres, Some(binlog(100)));
    let stage = EchoStage::new(Side::Postgres, Some(reg), schemas());
    let mut ev = txn(1, Origin::Client, None, vec![insert(1)], 0x10);
    ev.extend(txn(2, Origin::Client, None, vec![insert(2)], 0x20));
    // tandem's transaction that applied MySQL up to 200: later Postgres transactions have seen it.
    ev.extend(txn(3, Origin::Tandem, Some(200), vec![], 0x30));
    ev.extend(txn(4, Origin::Client, None, vec![insert(4)], 0x40));
    ev.extend(txn(5, Origin::Tandem, Some(200), vec![], 0x50));
    ev.extend(txn(6, Origin::Client, None, vec![insert(6)], 0x60));
    let out = through(stage, ev).await;
    assert_eq!(
        kinds(&out),
        [
            "begin client", "changes 1", "commit 0/10", "begin client", "changes 1", "commit 0/20", "idle 0/30",
            "barrier", "begin client", "changes 1", "commit 0/40", "idle 0/50", "begin client", "changes 1", "commit 0/60",
        ],
        "one barrier, where the seen changed"
    );
    let seen_at = |i: usize| out[i].1.clone();
    assert_eq!((seen_at(0), seen_at(3)), (Some(binlog(100)), Some(binlog(100))), "resumed with the registry's seen");
    assert_eq!(seen_at(7), Some(binlog(100)), "the barrier still belongs to the batch before");
    assert_eq!(seen_at(8), Some(binlog(200)));
}

#[tokio::test]
async fn an_echo_of_an_unknown_batch_forwards_nothing_and_truncates_are_tombstones_of_their_pair() {
    let reg = Arc::new(Incarnations::default());
    let stage = EchoStage::new(Side::Mysql, Some(Arc::clone(&reg)), schemas());
    let truncate = Change { pair: 0, op: Op::Truncate, key: vec![], before: None, after: None };
    let mut ev = txn(1, Origin::Client, None, vec![truncate], 0x10);
    // MySQL's echo names the Postgres position it applied: no batch was registered with it.
    ev.extend([
        SourceEvent::Begin { txn_seq: 2, origin: Origin::Tandem, commit_ts: 0 },
        SourceEvent::Changes(vec![insert(7)]),
        SourceEvent::Applied("0/3E7".into()),
        SourceEvent::Commit(meta(2, pg(0x20))),
    ]);
    let out = through(stage, ev).await;
    assert_eq!(kinds(&out).last().map(String::as_str), Some("idle 0/20"));
    assert!(reg.tombstoned(Side::Mysql, &(0, crate::conflict::compare::key_text(&[Value::Int(7)]))), "every key of a truncated pair");
}

/// A batch whose rows the destination's triggers changed (`apply::readback`)
/// is registered with those changes; its echo forwards them as that side's
/// outcome, though nothing was deleted; a batch without any yields an `Idle`.
#[tokio::test]
async fn an_echo_forwards_what_the_destination_triggers_changed() {
    let reg = Arc::new(Incarnations::default());
    let stage = EchoStage::new(Side::Mysql, Some(Arc::clone(&reg)), schemas());
    let stamped = Change { pair: 0, op: Op::Update, key: vec![Value::Int(4)], before: Some(vec![Value::Int(4)]), after: Some(vec![Value::Int(4)]) };
    reg.batch_committing(Side::Mysql, &pg(0x100), Some(&binlog(10)), vec![stamped.clone()]);
    reg.batch_committing(Side::Mysql, &pg(0x200), Some(&binlog(10)), Vec::new());
    let mut ev = vec![
        SourceEvent::Begin { txn_seq: 1, origin: Origin::Tandem, commit_ts: 0 },
        SourceEvent::Applied(pg(0x100).to_string()),
        SourceEvent::Commit(meta(1, binlog(20))),
    ];
    ev.extend([
        SourceEvent::Begin { txn_seq: 2, origin: Origin::Tandem, commit_ts: 0 },
        SourceEvent::Applied(pg(0x200).to_string()),
        SourceEvent::Commit(meta(2, binlog(30))),
    ]);
    let out = through(stage, ev).await;
    let k = kinds(&out);
    assert_eq!(k.iter().filter(|k| k.starts_with("begin outcome")).count(), 1, "{k:?}");
    assert!(k.contains(&"changes 1".to_string()) && k.last().is_some_and(|l| l.starts_with("idle")), "{k:?}");
    let fwd = out.iter().find_map(|(e, _)| if let SourceEvent::Changes(c) = e { Some(c.clone()) } else { None });
    assert_eq!(fwd, Some(vec![stamped]));
}
