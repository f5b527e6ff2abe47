//! Parked changes: while a pair is paused in one direction (its source lost
//! a mapped column, DESIGN §10), its changes are set aside in the `parked`
//! state table of the destination, in the same transaction as the batch and
//! checkpoint, so nothing is lost while the other pairs go on. When the pair
//! resumes they are applied in their original order before any newer change
//! of that pair.
//!
//! A parked change records its column names next to the values, so it is
//! applied by name: the DBA may fix the pause by restoring the column or by
//! unmapping it from the pair (a config change), and either way each stored
//! value goes to the column it belongs to. Columns the change did not carry
//! (the missing one) stay `Unchanged`: an update leaves them alone at the
//! destination; an insert that lacks one cannot be applied faithfully and is
//! quarantined by the applier like any rejected change.

use super::quarantine::{value_from_json, value_json};
use crate::model::{Change, Op, Row, Value};
use crate::schema::PairSchema;
use serde_json::{json, Value as Json};

/// A change as JSON with its column names (canonical pair names).
pub fn park_json(schema: &PairSchema, c: &Change) -> String {
    let row = |r: &Option<Row>| match r {
        None => Json::Null,
        Some(r) => Json::Array(r.iter().map(value_json).collect()),
    };
    json!({
        "pair": schema.name,
        "op": c.op.as_str(),
        "columns": schema.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        "key": c.key.iter().map(value_json).collect::<Vec<_>>(),
        "before": row(&c.before),
        "after": row(&c.after),
    })
    .to_string()
}

/// Inverse of `park_json` against the current pair schema: values go to the
/// columns of the same name; columns not stored are `Unchanged`.
pub fn change_from_park_json(text: &str, schema: &PairSchema) -> Result<Change, String> {
    let j: Json = serde_json::from_str(text).map_err(|e| format!("parked change is not JSON: {e}"))?;
    let op = match j.get("op").and_then(Json::as_str) {
        Some("insert") => Op::Insert,
        Some("update") => Op::Update,
        Some("delete") => Op::Delete,
        Some("truncate") => Op::Truncate,
        other => return Err(format!("parked change has an unknown op {other:?}")),
    };
    let names: Vec<&str> = j.get("columns").and_then(Json::as_array).map(|a| a.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
    let slots: Vec<Option<usize>> = names.iter().map(|n| schema.columns.iter().position(|c| c.name == *n)).collect();
    let row = |field: &str| -> Result<Option<Row>, String> {
        match j.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Array(values)) => {
                let mut row = vec![Value::Unchanged; schema.columns.len()];
                for (v, slot) in values.iter().zip(&slots) {
                    let v = value_from_json(v).ok_or_else(|| format!("parked change has a bad {field} value {v}"))?;
                    if let Some(i) = slot {
                        row[*i] = v;
                    }
                }
                Ok(Some(row))
            }
            Some(other) => Err(format!("parked change has a bad {field}: {other}")),
        }
    };
    let before = row("before")?;
    let after = row("after")?;
    let key = match (&after, &before) {
        _ if op == Op::Truncate => Vec::new(),
        (Some(a), _) if op != Op::Delete => schema.key_of(a),
        (_, Some(b)) => schema.key_of(b),
        _ => j
            .get("key")
            .and_then(Json::as_array)
            .ok_or("parked change has no key")?
            .iter()
            .map(|v| value_from_json(v).ok_or_else(|| format!("parked change has a bad key value {v}")))
            .collect::<Result<Row, String>>()?,
    };
    if key.iter().any(|v| matches!(v, Value::Unchanged)) {
        return Err(format!("parked change of pair {} lacks a key column", schema.name));
    }
    Ok(Change { pair: schema.pair, op, key, before, after })
}

/// What to do with one parked change when its pair resumes.
#[derive(Debug)]
pub enum Replay {
    Apply(Change),
    /// Quarantine (or stop, by `on_error`) with this error.
    Reject(Change, crate::Error),
}

/// Decodes a parked change for replay; an insert that lacks a column is
/// rejected with an error naming it. An undecodable entry is an error.
pub fn replay(schema: &PairSchema, text: &str) -> crate::Result<Replay> {
    let c = change_from_park_json(text, schema).map_err(|e| crate::Error::Decode(format!("pair {}: {e}", schema.name)))?;
    Ok(match insert_lacking(schema, &c) {
        Some(column) => Replay::Reject(
            c,
            crate::Error::Value {
                pair: schema.name.clone(),
                column,
                message: "the row was inserted while this column was missing at the source (pair paused); its value is unknown".into(),
            },
        ),
        None => Replay::Apply(c),
    })
}

/// Rows parked per replay step.
pub const REPLAY_CHUNK: usize = 2000;

/// (pair name, change JSON) columns for a `parked` insert, in order.
pub fn rows(schemas: &[PairSchema], changes: &[Change]) -> (Vec<String>, Vec<String>) {
    changes
        .iter()
        .filter_map(|c| schemas.iter().find(|s| s.pair == c.pair).map(|s| (s.name.clone(), park_json(s, c))))
        .unzip()
}

/// Pair indices of parked pair names; names no longer configured are logged
/// (their parked changes stay in the table for the operator).
pub fn pair_indices(schemas: &[PairSchema], names: &[String], direction: crate::config::Direction) -> Vec<usize> {
    names
        .iter()
        .filter_map(|n| {
            let found = schemas.iter().find(|s| s.name == *n).map(|s| s.pair);
            if found.is_none() {
                tracing::warn!(%direction, pair = %n, "parked changes of a pair that is no longer configured are left in the parked table");
            }
            found
        })
        .collect()
}

/// The column an insert lacks (it cannot be applied faithfully), if any.
pub fn insert_lacking(schema: &PairSchema, c: &Change) -> Option<String> {
    if c.op != Op::Insert {
        return None;
    }
    let after = c.after.as_ref()?;
    // Generated columns are computed by the servers (and not streamed by pgoutput): never lacking.
    after
        .iter()
        .zip(&schema.columns)
        .find(|(v, col)| matches!(v, Value::Unchanged) && !col.pg_generated && !col.my_generated)
        .map(|(_, col)| col.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Owner, TableName};
    use crate::schema::{ColumnSchema, ValueKind};

    fn schema(cols: &[&str]) -> PairSchema {
        PairSchema {
            pair: 3,
            name: "items".into(),
            pg_table: TableName { schema: "public".into(), name: "items".into() },
            my_table: TableName { schema: "shop".into(), name: "items".into() },
            columns: cols
                .iter()
                .map(|n| ColumnSchema {
                    name: n.to_string(),
                    pg_name: n.to_string(),
                    my_name: n.to_string(),
                    pg_type: "text".into(),
                    my_type: "text".into(),
                    pg_kind: ValueKind::Text,
                    my_kind: ValueKind::Text,
                    owner: Owner::Both,
                    pg_generated: false,
                    my_generated: false,
                    my_on_update: false,
                    pg_identity_always: false,
                })
                .collect(),
            key: vec![0],
        }
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn a_parked_update_applies_by_column_name_after_the_pair_changed() {
        let old = schema(&["id", "note", "gone"]);
        let c = Change {
            pair: 3,
            op: Op::Update,
            key: vec![t("1")],
            before: Some(vec![t("1"), t("a"), Value::Unchanged]),
            after: Some(vec![t("1"), t("b"), Value::Unchanged]),
        };
        let text = park_json(&old, &c);
        // The same pair: exactly the change back.
        assert_eq!(change_from_park_json(&text, &old).unwrap(), c);
        // The DBA unmapped `gone` and mapped a new column `extra` first.
        let new = schema(&["extra", "id", "note"]);
        let mut new = new;
        new.key = vec![1];
        let back = change_from_park_json(&text, &new).unwrap();
        assert_eq!(back.key, vec![t("1")]);
        assert_eq!(back.after, Some(vec![Value::Unchanged, t("1"), t("b")]));
        assert_eq!(insert_lacking(&new, &back), None);
    }

    #[test]
    fn an_insert_without_a_column_is_named_and_a_missing_key_is_an_error() {
        let s = schema(&["id", "note"]);
        let c = Change { pair: 3, op: Op::Insert, key: vec![t("1")], before: None, after: Some(vec![t("1"), Value::Unchanged]) };
        let back = change_from_park_json(&park_json(&s, &c), &s).unwrap();
        assert_eq!(insert_lacking(&s, &back).as_deref(), Some("note"));
        let mut other = schema(&["ident", "note"]);
        other.key = vec![0];
        assert!(change_from_park_json(&park_json(&s, &c), &other).unwrap_err().contains("lacks a key column"));
        assert!(change_from_park_json("{", &s).is_err());
    }
}
