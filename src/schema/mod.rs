//! The resolved shape of each table pair: canonical columns, their names and
//! types on both sides, owners and key.
//!
//! Built at start (and after DDL) by introspecting both databases
//! (`introspect`). A `Row` is positional over `PairSchema::columns`.
//! Columns present on one side only are not part of the pair (they are ignored
//! with a warning); a mapped column missing on a side is an error naming it.


pub mod introspect;
pub mod partitions;
pub mod triggers;

use crate::config::{Owner, TableName};

/// The broad kind of a column's values, shared by both sides' type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Bool,
    Int,
    UInt,
    Decimal,
    Float,
    Text,
    Bytes,
    Date,
    Time,
    /// Naive timestamp (Postgres `timestamp`, MySQL `datetime`).
    Timestamp,
    /// Instant (Postgres `timestamptz`, MySQL `timestamp`).
    TimestampTz,
    Json,
    Uuid,
    Enum,
    /// A set of labels: MySQL `SET`, Postgres `text[]` / `varchar[]`. The
    /// canonical value is `Value::Text` of the members joined by commas in
    /// the SET's declared order (as MySQL prints a SET); `''` is the empty set.
    Set,
    /// A type tandem does not support; `validate` names it.
    Unsupported,
}

/// One column of a pair.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    /// Canonical name (the `[pairs.columns]` key, or the shared name).
    pub name: String,
    pub pg_name: String,
    pub my_name: String,
    pub owner: Owner,
    /// Postgres type as `format_type` prints it, e.g. `numeric(12,2)`.
    pub pg_type: String,
    /// MySQL `COLUMN_TYPE`, e.g. `bigint(20) unsigned`.
    pub my_type: String,
    pub pg_kind: ValueKind,
    pub my_kind: ValueKind,
    /// The server computes this column on the Postgres side (never written there).
    pub pg_generated: bool,
    /// Postgres `GENERATED ALWAYS AS IDENTITY`: written only by inserts (with
    /// `OVERRIDING SYSTEM VALUE`, so a row keeps its value on both sides),
    /// never by updates (Postgres refuses them).
    pub pg_identity_always: bool,
    /// The server computes this column on the MySQL side (never written there).
    pub my_generated: bool,
    /// MySQL `ON UPDATE CURRENT_TIMESTAMP`: the server stamps it on every
    /// update that does not assign it, so tandem's updates always assign it
    /// (to the value the row holds) — the server's clock never replaces a
    /// replicated value.
    pub my_on_update: bool,
}

/// A table pair as both databases currently define it.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSchema {
    /// Index in `Config::pairs`.
    pub pair: usize,
    pub name: String,
    pub pg_table: TableName,
    pub my_table: TableName,
    pub columns: Vec<ColumnSchema>,
    /// Indices into `columns` of the key, in key order.
    pub key: Vec<usize>,
}

#[cfg(test)]
impl ColumnSchema {
    /// A plain column for unit tests: same name on both sides, `pg`/`my` types.
    pub fn for_tests(name: &str, owner: Owner, pg: &str, my: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            pg_name: name.into(),
            my_name: name.into(),
            owner,
            pg_type: pg.into(),
            my_type: my.into(),
            pg_kind: pair_kinds(pg, my).0,
            my_kind: pair_kinds(pg, my).1,
            pg_generated: false,
            pg_identity_always: false,
            my_generated: false,
            my_on_update: false,
        }
    }
}

impl PairSchema {
    pub fn column_index(&self, canonical: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == canonical)
    }
    pub fn pg_index(&self, pg_name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.pg_name == pg_name)
    }
    pub fn my_index(&self, my_name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.my_name == my_name)
    }
    /// Extracts the key values from a full row.
    pub fn key_of(&self, row: &[crate::model::Value]) -> Vec<crate::model::Value> {
        self.key.iter().map(|&i| row.get(i).cloned().unwrap_or(crate::model::Value::Null)).collect()
    }

    /// Does `change` (of this pair) remove a row from its side: a delete, a
    /// truncate, or an update that moves the row to another key?
    pub fn removes_row(&self, change: &crate::model::Change) -> bool {
        use crate::model::Op;
        match change.op {
            Op::Delete | Op::Truncate => true,
            Op::Update => change.before.as_ref().is_some_and(|b| self.key_of(b) != change.key),
            Op::Insert => false,
        }
    }
}

/// Kind of a Postgres type name as `format_type` prints it.
///
/// Type modifiers are ignored wherever they stand: `format_type` prints
/// `timestamp(6) without time zone` and `time(3) without time zone` with the
/// precision inside the name.
pub fn pg_kind(ty: &str) -> ValueKind {
    if let Some(element) = ty.trim_end().strip_suffix("[]") {
        return match crate::sql::pg::base_type(element).as_str() {
            "text" | "character varying" if !element.trim_end().ends_with("[]") => ValueKind::Set,
            _ => ValueKind::Unsupported,
        };
    }
    let base = crate::sql::pg::base_type(ty);
    match base.as_str() {
        "boolean" => ValueKind::Bool,
        "smallint" | "integer" | "bigint" => ValueKind::Int,
        "numeric" => {
            if ty.replace(' ', "") == "numeric(20,0)" { ValueKind::UInt } else { ValueKind::Decimal }
        }
        "real" | "double precision" => ValueKind::Float,
        "text" | "character varying" | "character" => ValueKind::Text,
        "bytea" => ValueKind::Bytes,
        "date" => ValueKind::Date,
        "time without time zone" => ValueKind::Time,
        "timestamp without time zone" => ValueKind::Timestamp,
        "timestamp with time zone" => ValueKind::TimestampTz,
        "json" | "jsonb" => ValueKind::Json,
        "uuid" => ValueKind::Uuid,
        _ => ValueKind::Unsupported,
    }
}

/// The kinds one column is read and written as on each side, given both
/// types: a MySQL `tinyint(1)` is a boolean only against a Postgres
/// `boolean`; against a Postgres number it is the small integer it holds.
pub fn pair_kinds(pg_type: &str, my_type: &str) -> (ValueKind, ValueKind) {
    let (p, m) = (pg_kind(pg_type), my_kind(my_type));
    match (p, m) {
        (ValueKind::Int | ValueKind::UInt | ValueKind::Decimal, ValueKind::Bool) => (p, ValueKind::Int),
        _ => (p, m),
    }
}

/// Kind of a MySQL `COLUMN_TYPE`.
pub fn my_kind(column_type: &str) -> ValueKind {
    let t = column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let unsigned = t.contains("unsigned");
    match base {
        "tinyint" if t.starts_with("tinyint(1)") => ValueKind::Bool,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
            if unsigned && base == "bigint" { ValueKind::UInt } else { ValueKind::Int }
        }
        "decimal" | "numeric" => ValueKind::Decimal,
        "float" | "double" | "real" => ValueKind::Float,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ValueKind::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => ValueKind::Bytes,
        "date" => ValueKind::Date,
        "time" => ValueKind::Time,
        "datetime" => ValueKind::Timestamp,
        "timestamp" => ValueKind::TimestampTz,
        "json" => ValueKind::Json,
        "enum" => ValueKind::Enum,
        "set" => ValueKind::Set,
        _ => ValueKind::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_map_to_kinds() {
        assert_eq!(pg_kind("numeric(20,0)"), ValueKind::UInt);
        assert_eq!(pg_kind("numeric(12,2)"), ValueKind::Decimal);
        assert_eq!(pg_kind("integer[]"), ValueKind::Unsupported);
        assert_eq!(pg_kind("character varying(64)"), ValueKind::Text);
        assert_eq!(my_kind("bigint(20) unsigned"), ValueKind::UInt);
        assert_eq!(my_kind("tinyint(1)"), ValueKind::Bool);
        assert_eq!(my_kind("tinyint(4)"), ValueKind::Int);
        assert_eq!(my_kind("datetime(6)"), ValueKind::Timestamp);
        assert_eq!(my_kind("enum('a','b')"), ValueKind::Enum);
        assert_eq!(my_kind("set('a','b')"), ValueKind::Set);
        assert_eq!(pg_kind("text[]"), ValueKind::Set);
        assert_eq!(pg_kind("character varying(20)[]"), ValueKind::Set);
        assert_eq!(pg_kind("text[][]"), ValueKind::Unsupported);
        assert_eq!(pair_kinds("integer", "tinyint(1)"), (ValueKind::Int, ValueKind::Int));
        assert_eq!(pair_kinds("boolean", "tinyint(1)"), (ValueKind::Bool, ValueKind::Bool));
        assert_eq!(pair_kinds("smallint", "year(4)"), (ValueKind::Int, ValueKind::Int));
    }

    #[test]
    fn postgres_type_modifiers_inside_the_name_are_ignored() {
        assert_eq!(pg_kind("timestamp(6) without time zone"), ValueKind::Timestamp);
        assert_eq!(pg_kind("timestamp(0) with time zone"), ValueKind::TimestampTz);
        assert_eq!(pg_kind("time(6) without time zone"), ValueKind::Time);
        assert_eq!(pg_kind("timestamp without time zone"), ValueKind::Timestamp);
        assert_eq!(pg_kind("character(10)"), ValueKind::Text);
        assert_eq!(pg_kind("numeric(38,10)"), ValueKind::Decimal);
        assert_eq!(pg_kind("numeric(20,0)"), ValueKind::UInt);
        assert_eq!(pg_kind("timestamp(6) without time zone[]"), ValueKind::Unsupported);
        assert_eq!(pg_kind("time(6) with time zone"), ValueKind::Unsupported, "timetz is not a supported type");
    }
}
