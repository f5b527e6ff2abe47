//! Renders row operations as MySQL/MariaDB SQL text.
//!
//! The session runs with `NO_BACKSLASH_ESCAPES` and `time_zone = '+00:00'`
//! (see `crate::db::connect_mysql`), so a string literal needs only its quotes
//! doubled and timestamps are written as UTC text. Bytes are hex literals.
//! A value the destination column cannot hold exactly (NaN, infinity, a
//! non-numeric decimal) is a `RenderError` naming the column, never altered
//! (`super::fit` checks what the server would alter without refusing).
//! An `ON UPDATE CURRENT_TIMESTAMP` column is assigned by every UPDATE
//! (`keep_on_update`), so the server's clock never replaces a replicated value.

use super::plan::{update_groups, RowOp, UpdateGroup};
use crate::model::value::{format_date, format_time, format_timestamp};
use crate::model::{Row, Value};
use crate::schema::{PairSchema, ValueKind};
use std::fmt::Write;

/// A value that cannot be written to its destination column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pair {pair}, column {column}: {reason} (value {value})")]
pub struct RenderError {
    pub pair: String,
    pub column: String,
    pub value: String,
    pub reason: String,
}

/// A change's value its destination column cannot hold: the change fails
/// with the pair, the column and the value named.
impl From<RenderError> for crate::Error {
    fn from(e: RenderError) -> Self {
        crate::Error::Value { pair: e.pair, column: e.column, message: format!("{} (value {})", e.reason, e.value) }
    }
}

use crate::sql::my::{push_ident, push_literal};

fn hex(out: &mut String, b: &[u8]) {
    out.push_str("X'");
    for byte in b {
        let _ = write!(out, "{byte:02X}");
    }
    out.push('\'');
}

fn is_decimal_text(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().filter(|&b| b == b'.').count() <= 1
        && body.bytes().any(|b| b.is_ascii_digit())
}

/// Appends the literal for `v` in a column of `kind`; `Err(reason)` if impossible.
pub fn literal(out: &mut String, v: &Value, kind: ValueKind) -> Result<(), String> {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push_str(if *b { "1" } else { "0" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Decimal(s) => {
            if !is_decimal_text(s) {
                return Err(format!("{s} is not a finite decimal number"));
            }
            out.push_str(s);
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err("MySQL cannot store NaN or infinity".to_string());
            }
            // `{:?}` is the shortest text that reads back as the same f64.
            let _ = write!(out, "{f:?}");
        }
        Value::Text(s) | Value::Json(s) => {
            if kind == ValueKind::Bytes {
                hex(out, s.as_bytes())
            } else if s.contains('\0') {
                out.push_str("CONVERT(");
                hex(out, s.as_bytes());
                out.push_str(" USING utf8mb4)");
            } else {
                push_literal(out, s)
            }
        }
        Value::Bytes(b) => hex(out, b),
        Value::Date(d) => push_literal(out, &format_date(*d)),
        Value::Time(t) => push_literal(out, &format_time(*t)),
        Value::Timestamp(t) => {
            if kind == ValueKind::Date {
                push_literal(out, &format_timestamp(*t)[..10])
            } else {
                push_literal(out, &format_timestamp(*t))
            }
        }
        Value::Unchanged => return Err("an unsent TOAST value cannot be written".to_string()),
        Value::Unrepresentable(u) => return Err(u.reason.clone()),
    }
    Ok(())
}

/// Is a MySQL `COLUMN_TYPE` single precision (`float`, `float(m,d)`, `float
/// unsigned`)? MySQL turns `FLOAT(p)` with p > 24 into `double`.
pub fn is_single_float(my_type: &str) -> bool {
    my_type.trim_start().get(..5).is_some_and(|p| p.eq_ignore_ascii_case("float"))
}

/// The literal for `v` in a column of MySQL type `my_type` and kind `kind`.
///
/// A float bound for a single-precision `FLOAT` column is written as the exact
/// value of the nearest f32: the shortest text of an f32 may lie outside
/// FLOAT's range although it denotes a value inside it (`3.4028235e38`, the
/// text Postgres prints for the largest `real`, is above FLT_MAX =
/// 3.4028234663852886e38 and MySQL refuses it as out of range). A value with
/// no finite f32 is an error, never clamped.
pub fn column_literal(out: &mut String, v: &Value, kind: ValueKind, my_type: &str) -> Result<(), String> {
    super::fit::my_fits(v, kind, my_type)?;
    if let Value::Float(f) = v {
        if is_single_float(my_type) && f.is_finite() {
            let single = *f as f32;
            if !single.is_finite() {
                return Err(format!("{f:?} is out of range for {my_type}"));
            }
            let _ = write!(out, "{:?}", f64::from(single));
            return Ok(());
        }
    }
    literal(out, v, kind)
}

pub fn render_value(out: &mut String, schema: &PairSchema, col: usize, v: &Value) -> Result<(), RenderError> {
    let c = &schema.columns[col];
    column_literal(out, v, c.my_kind, &c.my_type).map_err(|reason| RenderError {
        pair: schema.name.clone(),
        column: c.name.clone(),
        value: v.to_string().chars().take(200).collect(),
        reason,
    })
}

pub fn table(out: &mut String, schema: &PairSchema) {
    push_ident(out, &schema.my_table.schema);
    out.push('.');
    push_ident(out, &schema.my_table.name);
}

pub fn key_predicate(out: &mut String, schema: &PairSchema, key: &[Value]) -> Result<(), RenderError> {
    out.push('(');
    for (n, (&ci, v)) in schema.key.iter().zip(key).enumerate() {
        if n > 0 {
            out.push_str(" AND ");
        }
        push_ident(out, &schema.columns[ci].my_name);
        out.push('=');
        render_value(out, schema, ci, v)?;
    }
    out.push(')');
    Ok(())
}

/// Columns written at the destination (generated columns are the server's).
fn writable(schema: &PairSchema) -> impl Iterator<Item = usize> + '_ {
    (0..schema.columns.len()).filter(|&i| !schema.columns[i].my_generated)
}

/// A run of `Upsert`s as one plain multi-row `INSERT` (no update of an
/// existing key: the server refuses the statement instead). For rows whose
/// keys are absent at the destination (`merge::fresh_inserts`).
pub fn render_plain_insert(out: &mut String, schema: &PairSchema, rows: &[&Row]) -> Result<(), RenderError> {
    insert_values(out, schema, rows.iter().copied())?;
    out.push_str(";\n");
    Ok(())
}

/// `INSERT INTO t (writable columns) VALUES (…),(…)` for `rows`.
fn insert_values<'a>(out: &mut String, schema: &PairSchema, rows: impl Iterator<Item = &'a Row>) -> Result<(), RenderError> {
    out.push_str("INSERT INTO ");
    table(out, schema);
    out.push_str(" (");
    for (n, i) in writable(schema).enumerate() {
        if n > 0 {
            out.push(',');
        }
        push_ident(out, &schema.columns[i].my_name);
    }
    out.push_str(") VALUES ");
    let mut first = true;
    for row in rows {
        out.push_str(if first { "(" } else { ",(" });
        first = false;
        for (n, i) in writable(schema).enumerate() {
            if n > 0 {
                out.push(',');
            }
            render_value(out, schema, i, &row[i])?;
        }
        out.push(')');
    }
    Ok(())
}

/// How a statement spells a list of literal rows (the new values a
/// multi-row `UPDATE … JOIN` reads). The first row is always a `SELECT`,
/// which names the columns; the forms differ in the rows after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowList {
    /// `UNION ALL SELECT …` per row: every server, but each row is a query
    /// block of its own to parse and plan (about half of the statement's time
    /// for 1,000 rows on MariaDB 10.11).
    UnionAll,
    /// `UNION ALL VALUES (…), (…)`: MariaDB ≥ 10.3.3 table value constructor.
    Values,
    /// `UNION ALL VALUES ROW(…), ROW(…)`: MySQL ≥ 8.0.19 (not tested here).
    ValuesRow,
}

impl RowList {
    /// The fastest form the server with this `SELECT VERSION()` text accepts.
    pub fn for_server(version: &str) -> Self {
        let mut parts = version.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
        let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if version.to_ascii_lowercase().contains("mariadb") {
            if v >= (10, 3, 3) { RowList::Values } else { RowList::UnionAll }
        } else if v >= (8, 0, 19) {
            RowList::ValuesRow
        } else {
            RowList::UnionAll
        }
    }

    /// Text before row `r` (≥ 1) of the list, and after it.
    fn row_affixes(self, r: usize) -> (&'static str, &'static str) {
        match (self, r) {
            (RowList::UnionAll, _) => (" UNION ALL SELECT ", ""),
            (RowList::Values, 1) => (" UNION ALL VALUES (", ")"),
            (RowList::Values, _) => (",(", ")"),
            (RowList::ValuesRow, 1) => (" UNION ALL VALUES ROW(", ")"),
            (RowList::ValuesRow, _) => (",ROW(", ")"),
        }
    }
}

/// Appends statements (each ending in `;\n`) for a run of one kind;
/// multi-row updates list their rows as `rows` says.
pub fn render_run(out: &mut String, schema: &PairSchema, ops: &[RowOp], rows: RowList) -> Result<(), RenderError> {
    let Some(first) = ops.first() else { return Ok(()) };
    match first {
        RowOp::Upsert(_) => {
            insert_values(out, schema, ops.iter().filter_map(|op| if let RowOp::Upsert(row) = op { Some(row) } else { None }))?;
            out.push_str(" ON DUPLICATE KEY UPDATE ");
            let mut n = 0;
            for i in writable(schema).filter(|i| !schema.key.contains(i)) {
                if n > 0 {
                    out.push(',');
                }
                n += 1;
                let name = &schema.columns[i].my_name;
                push_ident(out, name);
                out.push_str("=VALUES(");
                push_ident(out, name);
                out.push(')');
            }
            if n == 0 {
                // Key-only table: a no-op update keeps the statement valid.
                let k = &schema.columns[schema.key[0]].my_name;
                push_ident(out, k);
                out.push('=');
                push_ident(out, k);
            }
            out.push_str(";\n");
        }
        RowOp::Delete(_) => {
            out.push_str("DELETE FROM ");
            table(out, schema);
            out.push_str(" WHERE ");
            for (r, op) in ops.iter().enumerate() {
                let RowOp::Delete(key) = op else { continue };
                if r > 0 {
                    out.push_str(" OR ");
                }
                key_predicate(out, schema, key)?;
            }
            out.push_str(";\n");
        }
        RowOp::PartialUpdate { .. } => {
            for g in update_groups(ops, |i| !schema.columns[i].my_generated) {
                if g.rows.len() == 1 {
                    let (key, row) = g.rows[0];
                    out.push_str("UPDATE ");
                    table(out, schema);
                    out.push_str(" SET ");
                    for (n, &i) in g.columns.iter().enumerate() {
                        if n > 0 {
                            out.push(',');
                        }
                        push_ident(out, &schema.columns[i].my_name);
                        out.push('=');
                        render_value(out, schema, i, &row[i])?;
                    }
                    keep_on_update(out, schema, &g.columns, "");
                    out.push_str(" WHERE ");
                    key_predicate(out, schema, key)?;
                    out.push_str(";\n");
                    continue;
                }
                // Many rows, one statement: join the table with the new values.
                update_join(out, schema, &g, &[], |_| None, rows)?;
                out.push_str(";\n");
            }
        }
        RowOp::Truncate => {
            // TRUNCATE commits implicitly in MySQL; DELETE keeps the batch atomic.
            out.push_str("DELETE FROM ");
            table(out, schema);
            out.push_str(";\n");
        }
    }
    Ok(())
}

/// Appends values of one row of a row list: `(column, value)` pairs, each
/// after a comma when `lead` (or not first), named `{prefix}{n}` when given.
fn row_values<'v>(
    out: &mut String,
    schema: &PairSchema,
    prefix: Option<char>,
    lead: bool,
    values: impl Iterator<Item = (usize, &'v Value)>,
) -> Result<(), RenderError> {
    for (n, (i, v)) in values.enumerate() {
        if lead || n > 0 {
            out.push(',');
        }
        render_value(out, schema, i, v)?;
        if let Some(p) = prefix {
            let _ = write!(out, " AS {p}{n}");
        }
    }
    Ok(())
}

/// Appends `UPDATE table AS t JOIN (rows) AS u ON key SET columns` for an
/// update group; with `guarded` columns, the join also requires each of them
/// to still hold `before(key)`'s value (strings compared as bytes). `false`
/// (the statement is incomplete) when a guarded row has no before-image.
fn update_join<'a>(
    out: &mut String,
    schema: &PairSchema,
    g: &UpdateGroup<'_>,
    guarded: &[usize],
    before: impl Fn(&Row) -> Option<&'a Row>,
    rows: RowList,
) -> Result<bool, RenderError> {
    out.push_str("UPDATE ");
    table(out, schema);
    out.push_str(" AS t JOIN (");
    for (r, (key, row)) in g.rows.iter().enumerate() {
        let b = if guarded.is_empty() { None } else { before(key) };
        if b.is_none() && !guarded.is_empty() {
            return Ok(false);
        }
        let (open, close) = if r == 0 { ("SELECT ", "") } else { rows.row_affixes(r) };
        out.push_str(open);
        let name = |prefix| (r == 0).then_some(prefix);
        row_values(out, schema, name('k'), false, schema.key.iter().copied().zip(key.iter()))?;
        row_values(out, schema, name('v'), true, g.columns.iter().map(|&i| (i, &row[i])))?;
        if let Some(b) = b {
            row_values(out, schema, name('b'), true, guarded.iter().map(|&i| (i, &b[i])))?;
        }
        out.push_str(close);
    }
    out.push_str(") AS u ON ");
    joined_columns(out, schema, &schema.key, " AND ", 'k');
    for (n, &i) in guarded.iter().enumerate() {
        let bytes = matches!(schema.columns[i].my_kind, ValueKind::Text | ValueKind::Bytes | ValueKind::Json | ValueKind::Uuid | ValueKind::Enum);
        // CAST(… AS BINARY), not the BINARY operator MySQL 8.0.27 deprecates.
        out.push_str(if bytes { " AND CAST(t." } else { " AND t." });
        push_ident(out, &schema.columns[i].my_name);
        let _ = if bytes { write!(out, " AS BINARY) <=> CAST(u.b{n} AS BINARY)") } else { write!(out, " <=> u.b{n}") };
    }
    out.push_str(" SET ");
    joined_columns(out, schema, &g.columns, ",", 'v');
    keep_on_update(out, schema, &g.columns, "t.");
    Ok(true)
}

/// Appends `,col=col` for each `ON UPDATE CURRENT_TIMESTAMP` column not in
/// `set`: assigned explicitly, the column keeps the value the row holds
/// (the source's, on converged sides) instead of taking the server's clock.
fn keep_on_update(out: &mut String, schema: &PairSchema, set: &[usize], alias: &str) {
    for (i, c) in schema.columns.iter().enumerate() {
        if c.my_on_update && !c.my_generated && !set.contains(&i) {
            out.push(',');
            out.push_str(alias);
            push_ident(out, &c.my_name);
            out.push('=');
            out.push_str(alias);
            push_ident(out, &c.my_name);
        }
    }
}

/// Appends `t.col = u.{prefix}{n}` for each of `columns`, separated by `sep`.
fn joined_columns(out: &mut String, schema: &PairSchema, columns: &[usize], sep: &str, prefix: char) {
    for (n, &i) in columns.iter().enumerate() {
        if n > 0 {
            out.push_str(sep);
        }
        out.push_str("t.");
        push_ident(out, &schema.columns[i].my_name);
        let _ = write!(out, " = u.{prefix}{n}");
    }
}

/// Appends guarded updates for a run of `PartialUpdate`s (see
/// `merge::assumed_current`): one `UPDATE … JOIN` per group of rows setting
/// the same columns, which changes a row only while it still holds the values
/// of `before(key)` in the columns set and in `also`, each followed by adding
/// its `ROW_COUNT()` to `@tandem_rows`. Returns how many rows the statements
/// must change, or `None` (nothing appended) when a guarded column cannot be
/// compared exactly in SQL (floating point) or a before-image is missing.
/// Strings compare as bytes (`CAST(… AS BINARY)`): a guard may fail where tandem's own
/// comparison would call the values equal, never the other way round.
pub fn render_guarded<'a>(
    out: &mut String,
    schema: &PairSchema,
    ops: &'a [RowOp],
    before: impl Fn(&Row) -> Option<&'a Row>,
    also: Option<usize>,
    rows: RowList,
) -> Result<Option<u64>, RenderError> {
    let mark = out.len();
    let mut expected = 0u64;
    for g in update_groups(ops, |i| !schema.columns[i].my_generated) {
        let mut guarded = g.columns.clone();
        if let Some(t) = also.filter(|t| !guarded.contains(t)) {
            guarded.push(t);
        }
        if guarded.iter().any(|&i| matches!(schema.columns[i].my_kind, ValueKind::Float | ValueKind::Unsupported)) {
            out.truncate(mark);
            return Ok(None);
        }
        if !update_join(out, schema, &g, &guarded, &before, rows)? {
            out.truncate(mark);
            return Ok(None);
        }
        out.push_str(";\nSET @tandem_rows = @tandem_rows + ROW_COUNT();\n");
        expected += g.rows.len() as u64;
    }
    Ok(Some(expected))
}

#[cfg(test)]
#[path = "mysql_sql_tests.rs"]
mod tests;
