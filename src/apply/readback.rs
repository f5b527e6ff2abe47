//! What a destination's own triggers did to the rows tandem wrote.
//!
//! MySQL triggers always fire, and Postgres ones do where the session may
//! not run as a replica or a trigger is `ENABLE ALWAYS`: a trigger that
//! stamps `last_update = now()` or sets a date on insert changes replicated
//! rows inside tandem's own transaction, whose echo is dropped — so the
//! other side would never learn the values the destination now holds. For
//! pairs with such triggers the driver reads the rows back after writing
//! them (in the same transaction) and compares them with what the merge
//! wrote (`trigger_outcomes`); every row that differs becomes an update made
//! on the destination's side: before-image = the row as tandem wrote it,
//! after-image = the row as the destination holds it. They are committed
//! with the batch and forwarded to the other side as the destination's
//! outcome by the echo stage (`crate::echo`), where the field-level merge
//! adopts the changed columns (a column changed there meanwhile is a
//! conflict decided by the pair's policy).
//!
//! Invariant: columns the destination computes (generated) are not compared;
//! rows the triggers deleted or created elsewhere are not forwarded (only
//! keys tandem wrote are read back). Pure.

use super::merge::Current;
use crate::config::Side;
use crate::conflict::compare::{key_text, same_value};
use crate::model::{Change, Op, Row, Value};
use crate::schema::PairSchema;

/// The rows of `schema`'s pair that the destination `dest` holds (`actual`,
/// read back after the writes) differently from what was written
/// (`expected`, the merge's view after its writes), as changes of `dest`.
pub fn trigger_outcomes(schema: &PairSchema, keys: &[Row], expected: &Current, actual: &Current, dest: Side) -> Vec<Change> {
    let mut out = Vec::new();
    for key in keys {
        let k = (schema.pair, key_text(key));
        let (Some(Some(wrote)), Some(Some(holds))) = (expected.get(&k), actual.get(&k)) else { continue };
        let differs = schema.columns.iter().enumerate().any(|(i, c)| {
            let generated = match dest {
                Side::Mysql => c.my_generated,
                Side::Postgres => c.pg_generated,
            };
            !generated && !matches!(wrote.get(i), Some(Value::Unchanged)) && !same_value(&wrote[i], &holds[i])
        });
        if differs {
            out.push(Change { pair: schema.pair, op: Op::Update, key: key.clone(), before: Some(wrote.clone()), after: Some(holds.clone()) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Owner;
    use crate::schema::ColumnSchema;

    fn schema() -> PairSchema {
        let mut g = ColumnSchema::for_tests("g", Owner::Both, "integer", "int(11)");
        g.my_generated = true;
        PairSchema {
            pair: 3,
            name: "film".into(),
            pg_table: crate::config::TableName { schema: "public".into(), name: "film".into() },
            my_table: crate::config::TableName { schema: "app".into(), name: "film".into() },
            columns: vec![
                ColumnSchema::for_tests("id", Owner::Both, "integer", "int(11)"),
                ColumnSchema::for_tests("title", Owner::Both, "text", "varchar(50)"),
                ColumnSchema::for_tests("last_update", Owner::Both, "timestamp(0) without time zone", "timestamp"),
                g,
            ],
            key: vec![0],
        }
    }

    fn cur(rows: &[Row]) -> Current {
        rows.iter().map(|r| ((3, key_text(&r[..1])), Some(r.clone()))).collect()
    }

    #[test]
    fn rows_a_trigger_changed_become_changes_of_the_destination() {
        let s = schema();
        let wrote = vec![Value::Int(1), Value::Text("A".into()), Value::Timestamp(1_000_000), Value::Int(2)];
        let stamped = vec![Value::Int(1), Value::Text("A".into()), Value::Timestamp(9_000_000), Value::Int(2)];
        let same = vec![Value::Int(2), Value::Text("B".into()), Value::Timestamp(5), Value::Int(4)];
        let keys = vec![vec![Value::Int(1)], vec![Value::Int(2)]];
        let out = trigger_outcomes(&s, &keys, &cur(&[wrote.clone(), same.clone()]), &cur(&[stamped.clone(), same]), Side::Mysql);
        assert_eq!(out, vec![Change { pair: 3, op: Op::Update, key: vec![Value::Int(1)], before: Some(wrote), after: Some(stamped) }]);
    }

    #[test]
    fn generated_columns_and_absent_rows_are_not_outcomes() {
        let s = schema();
        let wrote = vec![Value::Int(1), Value::Text("A".into()), Value::Timestamp(1), Value::Int(2)];
        let recomputed = vec![Value::Int(1), Value::Text("A".into()), Value::Timestamp(1), Value::Int(7)];
        let keys = vec![vec![Value::Int(1)], vec![Value::Int(9)]];
        assert!(trigger_outcomes(&s, &keys, &cur(&[wrote.clone()]), &cur(&[recomputed.clone()]), Side::Mysql).is_empty());
        assert_eq!(trigger_outcomes(&s, &keys, &cur(&[wrote]), &cur(&[recomputed]), Side::Postgres).len(), 1, "g is computed in MySQL only");
        let gone: Current = [((3, key_text(&[Value::Int(1)])), None)].into_iter().collect();
        assert!(trigger_outcomes(&s, &keys, &cur(&[vec![Value::Int(1), Value::Null, Value::Null, Value::Null]]), &gone, Side::Mysql).is_empty());
    }
}
