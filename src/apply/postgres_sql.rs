//! Renders row operations for Postgres as set-based statements over text
//! arrays: `INSERT … SELECT FROM unnest($1::text[], …) ON CONFLICT … DO
//! UPDATE`, `DELETE … USING unnest(…)`. Every value travels as text and is
//! cast by the server to the column's declared type, so the server — not
//! tandem — decides what a type accepts; nothing is converted through floats.
//!
//! Generated columns (`GENERATED ALWAYS AS … STORED`) are never written: the
//! server computes them. Identity ALWAYS columns are written by inserts only,
//! with `OVERRIDING SYSTEM VALUE` (the row keeps the value it has on the other
//! side), and never by updates, which Postgres refuses for them.
//!
//! One upsert statement may not touch a key twice (Postgres refuses), so a
//! run is de-duplicated keeping each key's last row, which is what applying
//! the run in order would leave.

use super::plan::RowOp;
use crate::model::value::{format_date, format_time, format_timestamp};
use crate::model::{Row, Value};
use crate::sql::pg::ident as pg_ident;
use crate::schema::{PairSchema, ValueKind};
use std::collections::HashMap;
use std::fmt::Write;

/// Text form of a value for a Postgres column of `kind`; `Err(reason)` if impossible.
pub fn text(v: &Value, kind: ValueKind) -> Result<Option<String>, String> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(s) => s.clone(),
        Value::Float(f) => {
            if f.is_nan() {
                "NaN".to_string()
            } else if f.is_infinite() {
                (if *f > 0.0 { "Infinity" } else { "-Infinity" }).to_string()
            } else {
                format!("{f:?}")
            }
        }
        Value::Text(s) | Value::Json(s) => {
            if kind == ValueKind::Bytes {
                hex(s.as_bytes())
            } else if kind == ValueKind::Set {
                crate::codec::pg_array::array_from_set(s)
            } else if s.contains('\0') {
                return Err("Postgres text cannot contain the NUL character".to_string());
            } else {
                s.clone()
            }
        }
        Value::Bytes(b) => {
            if kind == ValueKind::Bytes {
                hex(b)
            } else {
                match std::str::from_utf8(b) {
                    Ok(s) if !s.contains('\0') => s.to_string(),
                    _ => return Err("bytes are not valid UTF-8 text".to_string()),
                }
            }
        }
        Value::Date(d) => format_date(*d),
        Value::Time(t) => format_time(*t),
        Value::Timestamp(t) => {
            let s = format_timestamp(*t);
            match kind {
                ValueKind::TimestampTz => s + "+00",
                ValueKind::Date => s[..10].to_string(),
                _ => s,
            }
        }
        Value::Unchanged => return Err("an unsent TOAST value cannot be written".to_string()),
        Value::Unrepresentable(u) => return Err(u.reason.clone()),
    }))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("\\x");
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

pub use crate::sql::pg::cast_type;

/// Columns an insert writes (generated columns are the server's).
pub fn writable(schema: &PairSchema) -> Vec<usize> {
    (0..schema.columns.len()).filter(|&i| !schema.columns[i].pg_generated).collect()
}

/// Can an UPDATE set column `i`? Not a generated nor an identity ALWAYS column.
pub fn updatable(schema: &PairSchema, i: usize) -> bool {
    let c = &schema.columns[i];
    !c.pg_generated && !c.pg_identity_always
}

pub fn table(schema: &PairSchema) -> String {
    format!("{}.{}", pg_ident(&schema.pg_table.schema), pg_ident(&schema.pg_table.name))
}

/// `INSERT … SELECT … FROM unnest($1::text[], …) ON CONFLICT (key) DO UPDATE …`
pub fn upsert_sql(schema: &PairSchema) -> String {
    insert_select_sql(schema, true)
}

/// The same `INSERT … SELECT … FROM unnest(…)` without `ON CONFLICT`: for
/// rows the merge found missing, so that a row a local transaction inserts
/// meanwhile (no row lock can guard a missing key in Postgres) fails the
/// statement with a unique violation — and the change is merged again
/// against that row — instead of being overwritten.
pub fn insert_sql(schema: &PairSchema) -> String {
    insert_select_sql(schema, false)
}

fn insert_select_sql(schema: &PairSchema, on_conflict: bool) -> String {
    let cols = writable(schema);
    let names: Vec<String> = cols.iter().map(|&i| pg_ident(&schema.columns[i].pg_name)).collect();
    let params: Vec<String> = (1..=cols.len()).map(|n| format!("${n}::text[]")).collect();
    let casts: Vec<String> = cols.iter().enumerate().map(|(n, &i)| format!("u.c{n}::{}", cast_type(&schema.columns[i].pg_type))).collect();
    let aliases: Vec<String> = (0..cols.len()).map(|n| format!("c{n}")).collect();
    let key: Vec<String> = schema.key.iter().map(|&i| pg_ident(&schema.columns[i].pg_name)).collect();
    let updates: Vec<String> = cols
        .iter()
        .filter(|&&i| !schema.key.contains(&i) && updatable(schema, i))
        .map(|&i| {
            let n = pg_ident(&schema.columns[i].pg_name);
            format!("{n} = EXCLUDED.{n}")
        })
        .collect();
    let action = if updates.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", updates.join(", ")) };
    let overriding = if cols.iter().any(|&i| schema.columns[i].pg_identity_always) { " OVERRIDING SYSTEM VALUE" } else { "" };
    let insert = format!(
        "INSERT INTO {} ({}){overriding} SELECT {} FROM unnest({}) AS u({})",
        table(schema),
        names.join(", "),
        casts.join(", "),
        params.join(", "),
        aliases.join(", ")
    );
    if on_conflict {
        format!("{insert} ON CONFLICT ({}) DO {action}", key.join(", "))
    } else {
        insert
    }
}

/// `COPY t (writable columns) FROM STDIN` (text format) for rows whose keys
/// are absent at the destination (`merge::fresh_inserts`); `None` for a
/// table with an identity ALWAYS column, which only an INSERT with
/// `OVERRIDING SYSTEM VALUE` may write.
pub fn copy_sql(schema: &PairSchema) -> Option<String> {
    let cols = writable(schema);
    if cols.iter().any(|&i| schema.columns[i].pg_identity_always) {
        return None;
    }
    let names: Vec<String> = cols.iter().map(|&i| pg_ident(&schema.columns[i].pg_name)).collect();
    Some(format!("COPY {} ({}) FROM STDIN", table(schema), names.join(", ")))
}

/// The COPY text-format data of `rows`: each value's text form
/// (as `text` gives it, which the column's input function reads exactly as
/// the cast of the upsert would), escaped; NULL as `\N`.
pub fn copy_rows(schema: &PairSchema, rows: &[&Row]) -> Result<String, PgRenderError> {
    let cols = writable(schema);
    let mut out = String::with_capacity(rows.len() * 96);
    for row in rows {
        for (n, &i) in cols.iter().enumerate() {
            if n > 0 {
                out.push('\t');
            }
            match cell(schema, i, &row[i])? {
                None => out.push_str("\\N"),
                Some(v) => copy_escape(&mut out, &v),
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// Escapes `v` as one field of COPY's text format (without its NULL marker).
pub(crate) fn copy_escape(out: &mut String, v: &str) {
    if !v.contains(['\\', '\n', '\r', '\t']) {
        out.push_str(v);
        return;
    }
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// The set-based key join shared by the locking read, deletes and grouped
/// updates: `unnest($1::text[], …) AS u(k0, …, v0, …)` (key columns, then
/// `values` more columns named v0…) and the condition `t.key = u.k0::type AND …`.
pub fn unnest_keys(schema: &PairSchema, values: usize) -> (String, String) {
    let nk = schema.key.len();
    let params: Vec<String> = (1..=nk + values).map(|n| format!("${n}::text[]")).collect();
    let aliases: Vec<String> = (0..nk).map(|n| format!("k{n}")).chain((0..values).map(|n| format!("v{n}"))).collect();
    let conds: Vec<String> = schema
        .key
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("t.{} = u.k{n}::{}", pg_ident(&schema.columns[i].pg_name), cast_type(&schema.columns[i].pg_type)))
        .collect();
    (format!("unnest({}) AS u({})", params.join(", "), aliases.join(", ")), conds.join(" AND "))
}

/// `DELETE FROM t USING unnest($1::text[], …) AS u(k0, …) WHERE t.key = u.k::type …`
pub fn delete_sql(schema: &PairSchema) -> String {
    let (from, on) = unnest_keys(schema, 0);
    format!("DELETE FROM {} AS t USING {from} WHERE {on}", table(schema))
}

/// A value that cannot be written, with the column it belongs to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pair {pair}, column {column}: {reason} (value {value})")]
pub struct PgRenderError {
    pub pair: String,
    pub column: String,
    pub value: String,
    pub reason: String,
}

fn cell(schema: &PairSchema, i: usize, v: &Value) -> Result<Option<String>, PgRenderError> {
    let c = &schema.columns[i];
    super::fit::pg_fits(v, &c.pg_type).and_then(|()| text(v, c.pg_kind)).map_err(|reason| PgRenderError {
        pair: schema.name.clone(),
        column: c.name.clone(),
        value: v.to_string().chars().take(200).collect(),
        reason,
    })
}

/// Column-major text arrays for an upsert run, de-duplicated by key (last row wins).
pub fn upsert_params(schema: &PairSchema, ops: &[RowOp]) -> Result<Vec<Vec<Option<String>>>, PgRenderError> {
    let cols = writable(schema);
    let mut last: HashMap<Vec<String>, usize> = HashMap::with_capacity(ops.len());
    let rows: Vec<&Vec<Value>> = ops.iter().filter_map(|op| if let RowOp::Upsert(r) = op { Some(r) } else { None }).collect();
    for (n, row) in rows.iter().enumerate() {
        let key: Vec<String> = schema.key.iter().map(|&i| row[i].to_string()).collect();
        last.insert(key, n);
    }
    let mut out = vec![Vec::with_capacity(last.len()); cols.len()];
    for (n, row) in rows.iter().enumerate() {
        let key: Vec<String> = schema.key.iter().map(|&i| row[i].to_string()).collect();
        if last.get(&key) != Some(&n) {
            continue;
        }
        for (slot, &i) in cols.iter().enumerate() {
            out[slot].push(cell(schema, i, &row[i])?);
        }
    }
    Ok(out)
}

/// Column-major text arrays of the keys of a delete run.
pub fn delete_params(schema: &PairSchema, ops: &[RowOp]) -> Result<Vec<Vec<Option<String>>>, PgRenderError> {
    let mut out = vec![Vec::with_capacity(ops.len()); schema.key.len()];
    for op in ops {
        if let RowOp::Delete(key) = op {
            for (slot, (&i, v)) in schema.key.iter().zip(key).enumerate() {
                out[slot].push(cell(schema, i, v)?);
            }
        }
    }
    Ok(out)
}

/// One statement for many rows that set the same columns:
/// `UPDATE t SET c = u.v0::type … FROM unnest($1::text[], …) AS u(k0, …, v0, …) WHERE t.key = u.k0::type …`.
pub fn grouped_update(schema: &PairSchema, g: &super::plan::UpdateGroup) -> Result<(String, Vec<Vec<Option<String>>>), PgRenderError> {
    let nk = schema.key.len();
    let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(g.rows.len()); nk + g.columns.len()];
    for (key, row) in &g.rows {
        for (slot, (&i, v)) in schema.key.iter().zip(key.iter()).enumerate() {
            arrays[slot].push(cell(schema, i, v)?);
        }
        for (slot, &i) in g.columns.iter().enumerate() {
            arrays[nk + slot].push(cell(schema, i, &row[i])?);
        }
    }
    let sets: Vec<String> = g
        .columns
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{} = u.v{n}::{}", pg_ident(&schema.columns[i].pg_name), cast_type(&schema.columns[i].pg_type)))
        .collect();
    let (from, on) = unnest_keys(schema, g.columns.len());
    let sql = format!("UPDATE {} AS t SET {} FROM {from} WHERE {on}", table(schema), sets.join(", "));
    Ok((sql, arrays))
}

/// `UPDATE t SET a = $1::type, … WHERE key = $n::type …` for the columns that are not `Unchanged`.
pub fn partial_update(schema: &PairSchema, key: &[Value], row: &[Value]) -> Result<Option<(String, Vec<Option<String>>)>, PgRenderError> {
    let mut sets = Vec::new();
    let mut params = Vec::new();
    for i in (0..schema.columns.len()).filter(|&i| updatable(schema, i)) {
        if matches!(row[i], Value::Unchanged) {
            continue;
        }
        params.push(cell(schema, i, &row[i])?);
        sets.push(format!("{} = ${}::text::{}", pg_ident(&schema.columns[i].pg_name), params.len(), cast_type(&schema.columns[i].pg_type)));
    }
    if sets.is_empty() {
        return Ok(None);
    }
    let mut conds = Vec::new();
    for (&i, v) in schema.key.iter().zip(key) {
        params.push(cell(schema, i, v)?);
        conds.push(format!("{} = ${}::text::{}", pg_ident(&schema.columns[i].pg_name), params.len(), cast_type(&schema.columns[i].pg_type)));
    }
    Ok(Some((format!("UPDATE {} SET {} WHERE {}", table(schema), sets.join(", "), conds.join(" AND ")), params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_are_exact() {
        assert_eq!(text(&Value::Float(f64::NAN), ValueKind::Float).unwrap().unwrap(), "NaN");
        assert_eq!(text(&Value::Float(-0.0), ValueKind::Float).unwrap().unwrap(), "-0.0");
        assert_eq!(text(&Value::Bytes(vec![0, 0xab]), ValueKind::Bytes).unwrap().unwrap(), "\\x00ab");
        assert_eq!(text(&Value::Timestamp(0), ValueKind::TimestampTz).unwrap().unwrap(), "1970-01-01 00:00:00+00");
        assert_eq!(text(&Value::Null, ValueKind::Text).unwrap(), None);
        assert!(text(&Value::Text("a\0b".into()), ValueKind::Text).is_err());
        assert!(text(&Value::Bytes(vec![0xff]), ValueKind::Text).is_err());
        assert!(text(&Value::Unchanged, ValueKind::Text).is_err());
    }

    #[test]
    fn casts_drop_type_modifiers() {
        assert_eq!(cast_type("character varying(64)"), "character varying");
        assert_eq!(cast_type("timestamp(6) without time zone"), "timestamp without time zone");
        assert_eq!(cast_type("numeric(12,2)"), "numeric");
        assert_eq!(cast_type("bigint"), "bigint");
        assert_eq!(cast_type("timestamp(6) with time zone"), "timestamp with time zone");
    }

    #[test]
    fn fixed_length_characters_cast_to_bpchar_not_to_character_1() {
        // `'abcdefghij'::character` is 'a': the assignment to char(n) must check the length instead.
        assert_eq!(cast_type("character(10)"), "bpchar");
        assert_eq!(cast_type("character"), "bpchar");
        assert_eq!(cast_type("character(10)[]"), "bpchar[]");
        assert_eq!(cast_type("character varying(10)"), "character varying");
        assert_eq!(cast_type("character varying"), "character varying");
    }

    /// `t (id identity ALWAYS, v, g generated, n identity ALWAYS)`, key id.
    fn computed_schema() -> PairSchema {
        use crate::config::{Owner, TableName};
        use crate::schema::ColumnSchema;
        let col = |n: &str, generated: bool, identity: bool| ColumnSchema {
            name: n.into(),
            pg_name: n.into(),
            my_name: n.into(),
            owner: Owner::Both,
            pg_type: "bigint".into(),
            my_type: "bigint".into(),
            pg_kind: ValueKind::Int,
            my_kind: ValueKind::Int,
            pg_generated: generated,
            pg_identity_always: identity,
            my_generated: false,
            my_on_update: false,
        };
        let t = TableName { schema: "s".into(), name: "t".into() };
        let columns = vec![col("id", false, true), col("v", false, false), col("g", true, false), col("n", false, true)];
        PairSchema { pair: 0, name: "p".into(), pg_table: t.clone(), my_table: t, columns, key: vec![0] }
    }

    #[test]
    fn identity_always_columns_are_inserted_overriding_and_never_updated_generated_never_written() {
        let s = computed_schema();
        assert_eq!(
            upsert_sql(&s),
            "INSERT INTO \"s\".\"t\" (\"id\", \"v\", \"n\") OVERRIDING SYSTEM VALUE SELECT u.c0::bigint, u.c1::bigint, \
             u.c2::bigint FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c0, c1, c2) ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""
        );
        let row = vec![Value::Int(1), Value::Int(2), Value::Unchanged, Value::Int(3)];
        let params = upsert_params(&s, &[RowOp::Upsert(row.clone())]).unwrap();
        assert_eq!(params, vec![vec![Some("1".to_string())], vec![Some("2".to_string())], vec![Some("3".to_string())]]);
        let (sql, params) = partial_update(&s, &[Value::Int(1)], &row).unwrap().unwrap();
        assert_eq!(sql, "UPDATE \"s\".\"t\" SET \"v\" = $1::text::bigint WHERE \"id\" = $2::text::bigint");
        assert_eq!(params, vec![Some("2".to_string()), Some("1".to_string())]);
        assert!(!updatable(&s, 0) && updatable(&s, 1) && !updatable(&s, 2) && !updatable(&s, 3));
        assert_eq!(copy_sql(&s), None, "COPY cannot write identity ALWAYS columns");
    }

    #[test]
    fn copy_rows_escape_text_and_mark_nulls() {
        let mut s = computed_schema();
        s.columns.retain(|c| c.name == "id" || c.name == "v");
        s.columns[0].pg_identity_always = false;
        s.columns[1].pg_kind = ValueKind::Text;
        assert_eq!(copy_sql(&s).unwrap(), "COPY \"s\".\"t\" (\"id\", \"v\") FROM STDIN");
        let a = vec![Value::Int(1), Value::Text("tab\there \\ line\nend\r".into())];
        let b = vec![Value::Int(2), Value::Null];
        assert_eq!(copy_rows(&s, &[&a, &b]).unwrap(), "1\ttab\\there \\\\ line\\nend\\r\n2\t\\N\n");
        let bad = vec![Value::Int(3), Value::Text("nul\0".into())];
        assert!(copy_rows(&s, &[&bad]).is_err());
    }

}
