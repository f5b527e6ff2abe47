//! The quarantine (DESIGN §7): a change the destination rejects — a value it
//! cannot hold, a constraint it violates — is set aside in `tandem.quarantine`
//! with the error, in the same destination transaction that applies the rest
//! of its batch, and the stream goes on (`on_error = "quarantine"`); or the
//! pipeline stops with an error naming pair, key, column and value
//! (`on_error = "stop"`). Nothing is ever altered to make it fit.
//!
//! Finding the culprit: each chunk of changes is applied under a savepoint;
//! when it fails with a definite error, the chunk is rolled back to the
//! savepoint and applied again one change at a time, each under its own
//! savepoint, so that exactly the changes the destination rejects are set
//! aside. The stored change (`change_json`) can be applied again later with
//! `tandem quarantine retry` once the schema is fixed.

use crate::model::value::UnrepresentableKind;
use crate::model::{Change, Op, Value};
use crate::schema::PairSchema;
use serde_json::{json, Value as Json};

/// A rejected change, ready to be written to a `quarantine` table.
pub type Rejected = crate::state::QuarantineRow;

/// A value as JSON `[tag, text]`, exact for every variant (floats included);
/// an unrepresentable source value is `["unrepresentable", text, kind, reason]`.
pub fn value_json(v: &Value) -> Json {
    let (tag, text) = match v {
        Value::Unrepresentable(u) => return json!(["unrepresentable", u.text, u.kind.as_str(), u.reason]),
        Value::Null => ("null", String::new()),
        Value::Bool(b) => ("bool", b.to_string()),
        Value::Int(i) => ("int", i.to_string()),
        Value::UInt(u) => ("uint", u.to_string()),
        Value::Decimal(s) => ("decimal", s.clone()),
        Value::Float(f) => ("float", format!("{f:?}")),
        Value::Text(s) => ("text", s.clone()),
        Value::Bytes(b) => ("bytes", b.iter().map(|x| format!("{x:02x}")).collect()),
        Value::Date(d) => ("date", d.to_string()),
        Value::Time(t) => ("time", t.to_string()),
        Value::Timestamp(t) => ("timestamp", t.to_string()),
        Value::Json(s) => ("json", s.clone()),
        Value::Unchanged => ("unchanged", String::new()),
    };
    json!([tag, text])
}

/// Inverse of `value_json`.
pub fn value_from_json(j: &Json) -> Option<Value> {
    let arr = j.as_array()?;
    let tag = arr.first()?.as_str()?;
    let text = arr.get(1)?.as_str()?;
    Some(match tag {
        "null" => Value::Null,
        "bool" => Value::Bool(text.parse().ok()?),
        "int" => Value::Int(text.parse().ok()?),
        "uint" => Value::UInt(text.parse().ok()?),
        "decimal" => Value::Decimal(text.to_string()),
        "float" => Value::Float(text.parse().ok()?),
        "text" => Value::Text(text.to_string()),
        "bytes" => Value::Bytes((0..text.len() / 2).map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()?),
        "date" => Value::Date(text.parse().ok()?),
        "time" => Value::Time(text.parse().ok()?),
        "timestamp" => Value::Timestamp(text.parse().ok()?),
        "json" => Value::Json(text.to_string()),
        "unchanged" => Value::Unchanged,
        "unrepresentable" => {
            let kind = UnrepresentableKind::parse_name(arr.get(2)?.as_str()?)?;
            Value::unrepresentable(kind, text, arr.get(3)?.as_str()?)
        }
        _ => return None,
    })
}

fn row_json(r: &Option<Vec<Value>>) -> Json {
    match r {
        None => Json::Null,
        Some(r) => Json::Array(r.iter().map(value_json).collect()),
    }
}

fn row_from_json(j: &Json) -> Option<Option<Vec<Value>>> {
    if j.is_null() {
        return Some(None);
    }
    Some(Some(j.as_array()?.iter().map(value_from_json).collect::<Option<Vec<_>>>()?))
}

/// A change as JSON, for `change_json`; the pair is stored by name.
pub fn change_json(schema: &PairSchema, c: &Change) -> String {
    json!({
        "pair": schema.name,
        "op": c.op.as_str(),
        "key": c.key.iter().map(value_json).collect::<Vec<_>>(),
        "before": row_json(&c.before),
        "after": row_json(&c.after),
    })
    .to_string()
}

/// Inverse of `change_json`, resolving the pair name against `schemas`.
pub fn change_from_json(text: &str, schemas: &[PairSchema]) -> Option<Change> {
    let j: Json = serde_json::from_str(text).ok()?;
    let pair_name = j.get("pair")?.as_str()?;
    let pair = schemas.iter().find(|s| s.name == pair_name)?.pair;
    let op = match j.get("op")?.as_str()? {
        "insert" => Op::Insert,
        "update" => Op::Update,
        "delete" => Op::Delete,
        "truncate" => Op::Truncate,
        _ => return None,
    };
    let key = j.get("key")?.as_array()?.iter().map(value_from_json).collect::<Option<Vec<_>>>()?;
    Some(Change { pair, op, key, before: row_from_json(j.get("before")?)?, after: row_from_json(j.get("after")?)? })
}

/// The column a server error message names, if any (MySQL: "for column 'x'",
/// "Incorrect … value: '…' for column `db`.`t`.`x`").
pub fn column_in_message(msg: &str) -> Option<String> {
    let idx = msg.find("for column ")?;
    let rest = &msg[idx + "for column ".len()..];
    let name: String = rest.split_whitespace().next()?.to_string();
    let last = name.rsplit('.').next().unwrap_or(&name);
    Some(last.trim_matches(|c| c == '\'' || c == '`' || c == '"').to_string())
}

/// Text for people (`value_text`, `error`) with NUL shown as `\0`: Postgres
/// text cannot hold NUL, and a quarantine row must always be writable. The
/// exact change is in `change_json` (JSON escapes NUL).
fn readable(s: &str) -> String {
    s.replace('\0', "\\0")
}

/// Builds the quarantine record of a rejected change. `column` is the
/// canonical column when known; otherwise it is looked up from the message.
pub fn rejected(schema: &PairSchema, c: &Change, column: Option<String>, error: String) -> Rejected {
    let column = column.or_else(|| {
        let named = column_in_message(&error)?;
        schema.columns.iter().find(|col| col.my_name == named || col.pg_name == named).map(|col| col.name.clone())
    });
    let value = column.as_ref().and_then(|name| {
        let i = schema.column_index(name)?;
        c.after.as_ref().or(c.before.as_ref()).and_then(|r| r.get(i)).map(|v| readable(&v.to_string().chars().take(1000).collect::<String>()))
    });
    Rejected {
        pair: schema.name.clone(),
        key_json: super::merge::key_json(schema, &c.key),
        column,
        value,
        error: readable(&error),
        change_json: change_json(schema, c),
    }
}

/// Applies `on_error` to a change the destination rejected with `error`:
/// `Stop` → an error naming pair, key, column and value; `Quarantine` → the
/// record to write with the batch (logged and counted here). `column` is the
/// canonical column when the applier knows it.
pub fn handle_rejection(
    schema: &PairSchema,
    c: &Change,
    column: Option<String>,
    error: &crate::Error,
    on_error: crate::config::OnError,
    direction: crate::config::Direction,
) -> crate::Result<Rejected> {
    let column = column.or_else(|| match error {
        crate::Error::Value { column, .. } => Some(column.clone()),
        _ => None,
    });
    let r = rejected(schema, c, column, error.to_string());
    if on_error == crate::config::OnError::Stop {
        return Err(crate::Error::Rejected(format!(
            "pair {}, key {}, column {}, value {}: {}",
            r.pair,
            r.key_json,
            r.column.as_deref().unwrap_or("?"),
            r.value.as_deref().unwrap_or("?"),
            r.error
        )));
    }
    tracing::warn!(direction = %direction, pair = %r.pair, key = %r.key_json, column = ?r.column, error = %r.error, "change quarantined");
    metrics::counter!(crate::metrics::QUARANTINED, "direction" => direction.key(), "pair" => r.pair.clone()).increment(1);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::UInt),
            "-?[0-9]{1,20}\\.[0-9]{0,10}".prop_map(Value::Decimal),
            any::<f64>().prop_map(Value::Float),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            any::<i32>().prop_map(Value::Date),
            any::<i64>().prop_map(Value::Time),
            any::<i64>().prop_map(Value::Timestamp),
            Just(Value::Unchanged),
            (".*", ".*").prop_map(|(t, r)| Value::unrepresentable(UnrepresentableKind::ZeroDate, t, r)),
        ]
    }

    proptest! {
        #[test]
        fn values_round_trip_through_json(v in arb_value()) {
            let back = value_from_json(&value_json(&v)).unwrap();
            match (&v, &back) {
                (Value::Float(a), Value::Float(b)) if a.is_nan() => prop_assert!(b.is_nan()),
                _ => prop_assert_eq!(back, v),
            }
        }
    }

    #[test]
    fn nul_is_shown_escaped_so_the_quarantine_row_is_writable() {
        assert_eq!(readable("a\0b"), "a\\0b");
        assert_eq!(readable("plain"), "plain");
    }

    #[test]
    fn server_messages_name_their_column() {
        assert_eq!(column_in_message("Data too long for column 'note' at row 1").as_deref(), Some("note"));
        assert_eq!(column_in_message("Out of range value for column 'qty' at row 3").as_deref(), Some("qty"));
        assert_eq!(column_in_message("Incorrect datetime value: '0000-00-00' for column `app`.`t`.`d` at row 1").as_deref(), Some("d"));
        assert_eq!(column_in_message("Duplicate entry '1' for key 'PRIMARY'"), None);
    }
}
