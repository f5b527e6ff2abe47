//! Tests of row incarnations: tombstones, batch registration, which echo
//! writes are forwarded and which forwarded writes an applier drops.

use super::*;
use crate::model::{Lsn, Op, Value};

fn pos(n: u64) -> SourcePos {
    SourcePos::Postgres(Lsn(n))
}

fn k(s: &str) -> KeyRef {
    (0, s.to_string())
}

fn write(key: i64) -> Change {
    Change { pair: 0, op: Op::Insert, key: vec![Value::Int(key)], before: None, after: Some(vec![Value::Int(key)]) }
}

/// Where the echo of the batch that applied up to `applied` is read.
fn echo(applied: u64) -> SourcePos {
    pos(10_000 + applied)
}

fn key_of(n: i64) -> KeyRef {
    (0, crate::conflict::compare::key_text(&[Value::Int(n)]))
}

#[test]
fn writes_of_a_batch_concurrent_with_a_delete_are_forwarded() {
    let reg = Incarnations::default();
    assert!(!reg.tracks_deletes(Side::Postgres));
    reg.record_deletes(Side::Postgres, vec![key_of(1), key_of(2)], &[], &pos(20));
    assert!(reg.tracks_deletes(Side::Postgres));
    assert!(!reg.tracks_deletes(Side::Mysql), "tombstones are per side");
    assert!(reg.tombstoned(Side::Postgres, &key_of(1)) && !reg.tombstoned(Side::Postgres, &key_of(3)));
    reg.batch_committing(Side::Postgres, &pos(100), Some(&pos(10)), Vec::new());
    reg.batch_committing(Side::Postgres, &pos(200), Some(&pos(20)), Vec::new());
    let fwd = reg.forwardable(Side::Postgres, Some(&pos(100)), &echo(100), vec![write(1), write(3)]);
    assert_eq!(fwd, vec![write(1)], "key 1 was deleted (at 20) after the batch's seen (10); key 3 never");
    let fwd = reg.forwardable(Side::Postgres, Some(&pos(200)), &echo(200), vec![write(1), write(2)]);
    assert!(fwd.is_empty(), "the second batch had seen the delete (seen == 20)");
}

#[test]
fn an_echo_keeps_writes_to_deleted_keys_unless_it_removes_them_again() {
    let tombstoned = |k: &KeyRef| k.1 != key_of(3).1;
    let note = |cands: &mut Vec<Change>, c: Change, removed: Option<KeyRef>| note_echo_write(cands, c, removed, tombstoned);
    let delete = |key: i64| Change { op: Op::Delete, after: None, ..write(key) };
    let mut cands = Vec::new();
    note(&mut cands, write(1), None);
    note(&mut cands, write(2), None);
    note(&mut cands, write(3), None);
    assert_eq!(cands, vec![write(1), write(2)], "key 3 was never deleted on this side");
    note(&mut cands, delete(1), Some(key_of(1)));
    assert_eq!(cands, vec![write(2)], "the echo re-created key 1 and deleted it again: nothing to forward for it, and deletes are never forwarded");
    note(&mut cands, write(1), None);
    assert_eq!(cands, vec![write(2), write(1)], "a write after the delete is the echo's outcome again");
    // A key move from 2 to 4 removes 2.
    let moved = Change { op: Op::Update, key: vec![Value::Int(4)], before: Some(vec![Value::Int(2)]), after: Some(vec![Value::Int(4)]), pair: 0 };
    note(&mut cands, moved.clone(), Some(key_of(2)));
    assert_eq!(cands, vec![write(1), moved]);
    let other_pair = Change { pair: 1, ..write(9) };
    note(&mut cands, other_pair.clone(), None);
    note(&mut cands, Change { op: Op::Truncate, key: Vec::new(), before: None, after: None, pair: 0 }, None);
    assert_eq!(cands, vec![other_pair], "a truncate removes every key of its pair");
}

#[test]
fn an_echo_finds_its_batch_again_until_the_reading_direction_has_passed_it() {
    let reg = Incarnations::default();
    reg.record_deletes(Side::Mysql, vec![key_of(1)], &[], &pos(20));
    reg.batch_committing(Side::Mysql, &pos(100), Some(&pos(25)), Vec::new());
    reg.batch_committing(Side::Mysql, &pos(200), Some(&pos(10)), Vec::new());
    reg.batch_committing(Side::Mysql, &pos(300), Some(&pos(10)), Vec::new());
    // The echo of the batch at 100 was skipped (or wrote nothing): the one at 200 is found.
    assert_eq!(reg.forwardable(Side::Mysql, Some(&pos(200)), &echo(200), vec![write(1)]), vec![write(1)]);
    assert!(reg.forwardable(Side::Mysql, None, &echo(0), vec![write(1)]).is_empty(), "an echo without a position forwards nothing");
    // The direction reading MySQL restarts before committing past that echo: read again, it forwards again.
    reg.echoes_passed(Side::Mysql, &pos(10_199));
    assert_eq!(reg.forwardable(Side::Mysql, Some(&pos(200)), &echo(200), vec![write(1)]), vec![write(1)]);
    // Once it has passed the echo, the batch (and the one before it) is forgotten; later ones are kept.
    reg.echoes_passed(Side::Mysql, &echo(200));
    assert!(reg.forwardable(Side::Mysql, Some(&pos(200)), &echo(200), vec![write(1)]).is_empty());
    assert!(reg.forwardable(Side::Mysql, Some(&pos(100)), &echo(100), vec![write(1)]).is_empty());
    assert_eq!(reg.forwardable(Side::Mysql, Some(&pos(300)), &echo(300), vec![write(1)]), vec![write(1)]);
    // A batch whose echo was not read yet is kept, whatever the position passed.
    reg.batch_committing(Side::Mysql, &pos(400), Some(&pos(10)), Vec::new());
    reg.echoes_passed(Side::Mysql, &pos(99_999));
    assert_eq!(reg.forwardable(Side::Mysql, Some(&pos(400)), &echo(400), vec![write(1)]), vec![write(1)]);
}

#[test]
fn a_failed_batch_is_withdrawn_and_a_batch_without_seen_forwards_any_tombstoned_key() {
    let reg = Incarnations::default();
    reg.record_deletes(Side::Mysql, vec![key_of(1)], &[], &pos(20));
    reg.batch_committing(Side::Mysql, &pos(100), Some(&pos(10)), Vec::new());
    reg.batch_failed(Side::Mysql, &pos(100));
    assert!(reg.forwardable(Side::Mysql, Some(&pos(100)), &echo(100), vec![write(1)]).is_empty());
    reg.batch_committing(Side::Mysql, &pos(100), None, Vec::new());
    assert_eq!(reg.forwardable(Side::Mysql, Some(&pos(100)), &echo(100), vec![write(1)]), vec![write(1)]);
}

#[test]
fn the_batch_log_registers_with_its_seen_and_sets_resume() {
    let reg = std::sync::Arc::new(Incarnations::default());
    reg.record_deletes(Side::Mysql, vec![key_of(1)], &[], &pos(20));
    let mut log = BatchLog::new(Side::Mysql);
    log.attach(reg.clone());
    log.set_seen(Some(pos(10)));
    log.committing(&pos(300), Vec::new());
    log.committed(&pos(300));
    assert_eq!(reg.resume_seen(Side::Postgres), Some(pos(10)), "the source of the other side resumes with this seen");
    let fwd = |at: u64| reg.forwardable(Side::Mysql, Some(&pos(at)), &echo(at), vec![write(1)]).len();
    assert_eq!(fwd(300), 1, "seen 10: the delete at 20 came after");
    log.committing(&pos(400), Vec::new());
    assert_eq!(fwd(400), 1, "still seen 10");
    log.set_seen(Some(pos(30)));
    log.committing(&pos(500), Vec::new());
    assert_eq!(fwd(500), 0, "seen 30: the delete at 20 was seen; nothing to forward");
}

#[test]
fn a_forwarded_write_to_a_key_this_side_deleted_after_its_seen_is_dropped() {
    use crate::config::{ConflictPolicy, DeleteSides, PairConfig};
    let reg = std::sync::Arc::new(Incarnations::default());
    let mut log = BatchLog::new(Side::Mysql);
    log.attach(reg.clone());
    let pairs = vec![crate::conflict::merge::tests::pair(ConflictPolicy::PostgresWins)];
    let batch = vec![write(1), write(2)];
    log.set_seen(Some(pos(10)));
    assert_eq!(log.without_superseded(&batch, true, &pairs).len(), 2, "nothing deleted on this side");
    reg.record_deletes(Side::Mysql, vec![key_of(1)], &[], &pos(20));
    assert_eq!(log.without_superseded(&batch, true, &pairs).as_ref(), &[write(2)], "key 1 deleted at 20, after seen 10");
    assert_eq!(log.without_superseded(&batch, false, &pairs).len(), 2, "only forwarded outcomes");
    let pg_only = vec![PairConfig { deletes: DeleteSides::Postgres, ..pairs[0].clone() }];
    assert_eq!(log.without_superseded(&batch, true, &pg_only).len(), 2, "this side's delete does not reach the other side");
    log.set_seen(Some(pos(20)));
    assert_eq!(log.without_superseded(&batch, true, &pairs).len(), 2, "the forward had seen the delete");
}

#[test]
fn batches_stay_bounded() {
    let reg = Incarnations::default();
    for n in 0..(MAX_BATCHES as u64 + 5) {
        reg.batch_committing(Side::Postgres, &pos(n), None, Vec::new());
    }
    assert_eq!(lock(&reg.batches[0]).len(), MAX_BATCHES);
    assert_eq!(lock(&reg.batches[0]).front().map(|b| b.applied.clone()), Some(pos(5)));
}

#[test]
fn a_truncate_is_a_delete_of_every_key_of_the_pair() {
    let mut t = Tombstones::default();
    t.record(Vec::new(), &[0], &pos(30));
    assert!(t.deleted_after(&k("7"), &pos(29)));
    assert!(t.any(&k("7")));
    assert!(!t.deleted_after(&(1, "7".into()), &pos(29)));
    assert!(!t.any(&(1, "7".into())));
}

#[test]
fn tombstones_stay_bounded() {
    let mut t = Tombstones::default();
    t.record((0..MAX_TOMBSTONES + 10).map(|i| k(&i.to_string())).collect(), &[], &pos(5));
    assert_eq!(t.keys.len(), MAX_TOMBSTONES);
    assert!(!t.deleted_after(&k("0"), &pos(1)), "the oldest are forgotten first");
    assert!(t.deleted_after(&k(&(MAX_TOMBSTONES + 9).to_string()), &pos(1)));
}
