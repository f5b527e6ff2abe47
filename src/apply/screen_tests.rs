//! Unit tests of screening changes for unrepresentable source values.

use super::*;
use crate::config::*;
use crate::model::Op;
use crate::schema::{ColumnSchema, ValueKind};
use std::collections::BTreeMap;

fn pair(zero_dates: ZeroDates) -> PairConfig {
    let t = TableName { schema: "s".into(), name: "t".into() };
    PairConfig {
        name: "events".into(),
        postgres: t.clone(),
        mysql: t,
        key: None,
        default_owner: Owner::Both,
        on_conflict: ConflictPolicy::PostgresWins,
        timestamp_column: None,
        tie_breaker: Side::Postgres,
        deletes: DeleteSides::Both,
        missing_row: MissingRow::Ignore,
        zero_dates,
        direction: crate::config::PairDirection::Both,
        columns: BTreeMap::new(),
    }
}

fn schema() -> PairSchema {
    let col = |n: &str, kind| ColumnSchema {
        name: n.into(),
        pg_name: n.into(),
        my_name: n.into(),
        owner: Owner::Both,
        pg_type: "date".into(),
        my_type: "date".into(),
        pg_kind: kind,
        my_kind: kind,
        pg_generated: false,
        my_generated: false,
        my_on_update: false,
                    pg_identity_always: false,
    };
    let t = TableName { schema: "s".into(), name: "t".into() };
    PairSchema {
        pair: 0,
        name: "events".into(),
        pg_table: t.clone(),
        my_table: t,
        columns: vec![col("id", ValueKind::Int), col("d", ValueKind::Date)],
        key: vec![0],
    }
}

fn zero(text: &str) -> Value {
    Value::unrepresentable(UnrepresentableKind::ZeroDate, text, "MySQL zero dates have no value in Postgres")
}

fn insert(id: i64, d: Value) -> Change {
    Change { pair: 0, op: Op::Insert, key: vec![Value::Int(id)], before: None, after: Some(vec![Value::Int(id), d]) }
}

/// (changes to apply, changes held) in order, and the segment kinds (`A`/`H`).
fn split(segments: Vec<Segment<'_>>) -> (Vec<Change>, Vec<(Change, Error)>, String) {
    let (mut apply, mut held, mut kinds) = (Vec::new(), Vec::new(), String::new());
    for s in segments {
        match s {
            Segment::Apply(cs) => {
                kinds.push('A');
                apply.extend(cs.iter().cloned());
            }
            Segment::Hold(c, e) => {
                kinds.push('H');
                held.push((c, e));
            }
        }
    }
    (apply, held, kinds)
}

#[test]
fn clean_chunks_are_borrowed_untouched() {
    let cs = vec![insert(1, Value::Date(3)), insert(2, Value::Null)];
    let s = screen(&cs, &[pair(ZeroDates::Quarantine)], &[schema()]);
    assert!(matches!(s.as_slice(), [Segment::Apply(Cow::Borrowed(_))]));
}

#[test]
fn zero_date_is_held_naming_column_and_value_and_the_rest_keeps_its_order() {
    let cs = vec![insert(1, Value::Date(3)), insert(2, zero("0000-00-00")), insert(3, Value::Date(4))];
    let (apply, held, kinds) = split(screen(&cs, &[pair(ZeroDates::Quarantine)], &[schema()]));
    assert_eq!(kinds, "AHA", "source order is kept");
    assert_eq!(apply.iter().map(|c| c.key[0].clone()).collect::<Vec<_>>(), vec![Value::Int(1), Value::Int(3)]);
    assert_eq!(held.len(), 1);
    let (c, e) = &held[0];
    assert_eq!(c, &cs[1], "the held change is kept as the source sent it");
    let Error::Value { pair, column, message } = e else { panic!("{e:?}") };
    assert_eq!((pair.as_str(), column.as_str()), ("events", "d"));
    assert!(message.contains("0000-00-00") && message.contains("zero date"), "{message}");
    assert!(e.is_rejection());
}

#[test]
fn zero_dates_null_writes_null_everywhere_but_keeps_other_markers() {
    let mut upd = insert(2, zero("2022-11-00"));
    upd.op = Op::Update;
    upd.before = Some(vec![Value::Int(2), zero("0000-00-00")]);
    let cs = [upd];
    let (apply, held, _) = split(screen(&cs, &[pair(ZeroDates::Null)], &[schema()]));
    assert!(held.is_empty());
    assert_eq!(apply[0].after, Some(vec![Value::Int(2), Value::Null]));
    assert_eq!(apply[0].before, Some(vec![Value::Int(2), Value::Null]));

    let inf = Value::unrepresentable(UnrepresentableKind::Infinite, "infinity", "no value in MySQL");
    let cs = [insert(1, inf)];
    let (_, held, _) = split(screen(&cs, &[pair(ZeroDates::Null)], &[schema()]));
    assert_eq!(held.len(), 1, "zero_dates = null concerns zero dates only");
}

#[test]
fn marker_in_key_is_held_and_marker_only_in_before_image_is_left_to_merge() {
    let del = Change { pair: 0, op: Op::Delete, key: vec![zero("0000-00-00")], before: None, after: None };
    let cs = [del];
    let (_, held, _) = split(screen(&cs, &[pair(ZeroDates::Quarantine)], &[schema()]));
    assert!(matches!(&held[0].1, Error::Value { column, .. } if column == "id"));

    let mut fix = insert(5, Value::Date(7));
    fix.op = Op::Update;
    fix.before = Some(vec![Value::Int(5), zero("0000-00-00")]);
    let (apply, held, _) = split(screen(std::slice::from_ref(&fix), &[pair(ZeroDates::Quarantine)], &[schema()]));
    assert!(held.is_empty());
    assert_eq!(apply, vec![fix]);
}

#[test]
fn first_held_names_the_error_for_retry() {
    let cs = [insert(1, Value::Date(1)), insert(2, zero("0000-00-00"))];
    let e = first_held(screen(&cs, &[pair(ZeroDates::Quarantine)], &[schema()])).expect("held");
    assert!(e.to_string().contains("column d") && e.to_string().contains("0000-00-00"), "{e}");
    assert!(first_held(screen(&cs[..1], &[pair(ZeroDates::Quarantine)], &[schema()])).is_none());
}
