//! What to change when a column pair does not fit: for each side, the type
//! that holds every value of the other side's type (`suggest_my`,
//! `suggest_pg`), named in the problems and warnings of `types`. Pure.

use super::types::{my_base, my_digits, my_len, my_mods, pg_base, pg_digits, pg_mods, quoted_labels, MyType, PgType};
use crate::schema::ValueKind;

pub(super) fn kind_name(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Bool => "boolean",
        ValueKind::Int => "integer",
        ValueKind::UInt => "unsigned 64-bit integer",
        ValueKind::Decimal => "decimal",
        ValueKind::Float => "floating point",
        ValueKind::Text => "text",
        ValueKind::Bytes => "binary",
        ValueKind::Date => "date",
        ValueKind::Time => "time",
        ValueKind::Timestamp => "timestamp without time zone",
        ValueKind::TimestampTz => "timestamp with time zone",
        ValueKind::Json => "JSON",
        ValueKind::Uuid => "uuid",
        ValueKind::Enum => "enum",
        ValueKind::Set => "set of labels",
        ValueKind::Unsupported => "unsupported",
    }
}

/// The MySQL type that holds every value of a Postgres type.
pub(super) fn suggest_my(pg: &PgType, pk: ValueKind) -> String {
    let name = pg.name.as_str();
    match pk {
        ValueKind::Bool => "TINYINT(1)".into(),
        ValueKind::Int => match pg_base(name).as_str() {
            "smallint" => "SMALLINT".into(),
            "integer" => "INT".into(),
            _ => "BIGINT".into(),
        },
        ValueKind::UInt => "DECIMAL(20,0)".into(),
        ValueKind::Decimal => match pg_mods(name) {
            Some((p, s)) => format!("DECIMAL({p},{})", s.unwrap_or(0)),
            None => "DECIMAL(p,s) (and numeric(p,s) in Postgres)".into(),
        },
        ValueKind::Float => {
            if pg_base(name) == "real" { "FLOAT".into() } else { "DOUBLE".into() }
        }
        ValueKind::Text => match pg_base(name).as_str() {
            "character" => format!("CHAR({}) CHARACTER SET utf8mb4", pg_mods(name).map(|(p, _)| p).unwrap_or(1)),
            "character varying" => match pg_mods(name) {
                Some((n, _)) => format!("VARCHAR({n}) CHARACTER SET utf8mb4"),
                None => "LONGTEXT CHARACTER SET utf8mb4".into(),
            },
            _ => "LONGTEXT CHARACTER SET utf8mb4".into(),
        },
        ValueKind::Bytes => "LONGBLOB".into(),
        ValueKind::Date => "DATE".into(),
        ValueKind::Time => format!("TIME({})", pg_digits(name)),
        ValueKind::Timestamp => format!("DATETIME({})", pg_digits(name)),
        ValueKind::TimestampTz => format!("DATETIME({0}) or TIMESTAMP({0})", pg_digits(name)),
        ValueKind::Json => "JSON".into(),
        ValueKind::Uuid => "CHAR(36)".into(),
        ValueKind::Enum => format!("ENUM({})", quoted_labels(&pg.labels)),
        ValueKind::Set => "SET(…) of every label the arrays hold".into(),
        ValueKind::Unsupported => "a supported type".into(),
    }
}

/// The Postgres type that holds every value of a MySQL type.
pub(super) fn suggest_pg(my: &MyType) -> String {
    let name = my.column_type.as_str();
    let base = my_base(name);
    let unsigned = name.to_ascii_lowercase().contains("unsigned");
    let ints = |bits: u32| match bits {
        b if b <= 16 => "smallint",
        b if b <= 32 => "integer",
        _ => "bigint",
    };
    let bits = |b: u32| if unsigned { b + 1 } else { b };
    match base.as_str() {
        "tinyint" if name.to_ascii_lowercase().starts_with("tinyint(1)") => "boolean (or smallint)".into(),
        "tinyint" => ints(bits(8)).into(),
        "smallint" => ints(bits(16)).into(),
        "mediumint" => ints(bits(24)).into(),
        "int" | "integer" => ints(bits(32)).into(),
        "bigint" if unsigned => "numeric(20,0)".into(),
        "bigint" => "bigint".into(),
        "year" => "smallint".into(),
        "decimal" | "numeric" => {
            let m = my_mods(name);
            format!("numeric({},{})", m.first().copied().unwrap_or(10), m.get(1).copied().unwrap_or(0))
        }
        "float" => "real".into(),
        "double" | "real" => "double precision".into(),
        "char" => format!("character({})", my_len(name).unwrap_or(1)),
        "varchar" => format!("varchar({})", my_len(name).unwrap_or(1)),
        "enum" => "an enum type of the same labels (or text)".into(),
        "set" => "text[]".into(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => "bytea".into(),
        "date" => "date".into(),
        "time" => format!("time({})", my_digits(name)),
        "datetime" => format!("timestamp({})", my_digits(name)),
        "timestamp" => format!("timestamptz({0}) or timestamp({0})", my_digits(name)),
        "json" => "jsonb".into(),
        _ if my.json_check => "jsonb".into(),
        _ => "text".into(),
    }
}

