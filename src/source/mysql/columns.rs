//! Column metadata of MySQL/MariaDB tables from information_schema, and the
//! per-column decoding rule (`Codec`) derived from it.
//!
//! Binlog row images name columns only by position (`@0..@n` unless
//! `binlog_row_metadata=FULL`): binlog column `i` is the column with
//! `ORDINAL_POSITION = i + 1`. Signedness, charset, ENUM/SET labels and JSON-ness
//! are not in the row image either, so they are read here, at connect and after
//! every DDL. Invariant: a `TableColumns` describes one table version; callers
//! check that the binlog's column count matches before decoding with it.

use mysql_async::prelude::Queryable;

use crate::{Error, Result};

/// How a character column's bytes are turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4 / utf8mb3 / utf8: must be valid UTF-8.
    Utf8,
    /// MySQL `latin1` is Windows-1252 (with the five undefined bytes kept as C1 controls).
    Latin1,
    /// `ascii`: must be 7-bit.
    Ascii,
    /// `binary` (BINARY/VARBINARY/BLOB): bytes.
    Binary,
}

impl Charset {
    /// `None` for a character set tandem cannot decode.
    pub fn from_name(name: Option<&str>) -> Option<Charset> {
        match name.map(|n| n.to_ascii_lowercase()).as_deref() {
            None | Some("binary") => Some(Charset::Binary),
            Some("utf8mb4" | "utf8mb3" | "utf8") => Some(Charset::Utf8),
            Some("latin1") => Some(Charset::Latin1),
            Some("ascii") => Some(Charset::Ascii),
            Some(_) => None,
        }
    }
}

/// The decoding rule of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Codec {
    /// Integer of `bits` width; `unsigned` values arrive sign-extended unless the
    /// server logged signedness metadata.
    Int { bits: u32, unsigned: bool },
    Year,
    Decimal,
    Float,
    Double,
    Text(Charset),
    Bytes,
    Bit,
    Date,
    /// DATETIME: naive, read as UTC wall clock.
    DateTime,
    /// TIMESTAMP: seconds since the epoch in the binlog.
    Timestamp,
    Time,
    /// MySQL JSON (binary) or MariaDB LONGTEXT with a `json_valid` check.
    Json(Charset),
    Enum(Vec<String>),
    Set(Vec<String>),
    /// A type tandem does not replicate (spatial, vector, ...); decoding a value
    /// of it is an error naming the column.
    Unsupported(String),
}

/// One column as information_schema describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    pub column_type: String,
    pub codec: Codec,
    /// VIRTUAL or STORED generated column.
    pub generated: bool,
}

/// The columns of one table, in ordinal order (index `i` = binlog column `i`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumns {
    pub db: String,
    pub table: String,
    pub columns: Vec<SourceColumn>,
}

/// Decoding rule from information_schema's `DATA_TYPE`, `COLUMN_TYPE` and
/// `CHARACTER_SET_NAME`, and whether a `json_valid` check covers the column.
pub fn codec_for(data_type: &str, column_type: &str, charset: Option<&str>, json_check: bool) -> Codec {
    let dt = data_type.to_ascii_lowercase();
    let ct = column_type.to_ascii_lowercase();
    let unsigned = ct.contains("unsigned");
    let cs = Charset::from_name(charset);
    let text = |cs: Option<Charset>| match cs {
        Some(Charset::Binary) => Codec::Bytes,
        Some(c) => Codec::Text(c),
        None => Codec::Unsupported(format!("{column_type} CHARACTER SET {}", charset.unwrap_or("?"))),
    };
    match dt.as_str() {
        "tinyint" => Codec::Int { bits: 8, unsigned },
        "smallint" => Codec::Int { bits: 16, unsigned },
        "mediumint" => Codec::Int { bits: 24, unsigned },
        "int" | "integer" => Codec::Int { bits: 32, unsigned },
        "bigint" => Codec::Int { bits: 64, unsigned },
        "year" => Codec::Year,
        "decimal" | "numeric" => Codec::Decimal,
        "float" => Codec::Float,
        "double" | "real" | "double precision" => Codec::Double,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            if json_check {
                match cs {
                    Some(Charset::Binary) | None => text(cs),
                    Some(c) => Codec::Json(c),
                }
            } else {
                text(cs)
            }
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Codec::Bytes,
        "bit" => Codec::Bit,
        "date" => Codec::Date,
        "datetime" => Codec::DateTime,
        "timestamp" => Codec::Timestamp,
        "time" => Codec::Time,
        "json" => Codec::Json(Charset::Utf8),
        "enum" => Codec::Enum(parse_labels(column_type)),
        "set" => Codec::Set(parse_labels(column_type)),
        _ => Codec::Unsupported(column_type.to_string()),
    }
}

/// Labels of `enum('a','b''c','d\\e')` / `set(...)` as information_schema
/// prints them: quotes doubled, backslashes escaped.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let body = match (column_type.find('('), column_type.rfind(')')) {
        (Some(a), Some(b)) if a < b => &column_type[a + 1..b],
        _ => return Vec::new(),
    };
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue; // separators
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => match chars.next() {
                    Some('n') => label.push('\n'),
                    Some('t') => label.push('\t'),
                    Some('0') => label.push('\0'),
                    Some(other) => label.push(other),
                    None => label.push('\\'),
                },
                other => label.push(other),
            }
        }
        labels.push(label);
    }
    labels
}

/// `true` when a CHECK clause is exactly `json_valid(`col`)`.
fn is_json_check(clause: &str, column: &str) -> bool {
    let c: String = clause.chars().filter(|c| !c.is_whitespace() && *c != '`').collect();
    c.eq_ignore_ascii_case(&format!("json_valid({column})"))
}

/// Reads the columns of `db.table` (empty `columns` when the table does not exist).
pub async fn load_table(conn: &mut mysql_async::Conn, db: &str, table: &str, mariadb: bool) -> Result<TableColumns> {
    let rows: Vec<(String, String, String, Option<String>, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, CHARACTER_SET_NAME, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let checks: Vec<String> = if mariadb {
        conn.exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await?
    } else {
        Vec::new()
    };
    let columns = rows
        .into_iter()
        .map(|(name, column_type, data_type, charset, extra)| {
            let json_check = checks.iter().any(|c| is_json_check(c, &name));
            let extra = extra.to_ascii_uppercase();
            SourceColumn {
                codec: codec_for(&data_type, &column_type, charset.as_deref(), json_check),
                generated: extra.contains("VIRTUAL GENERATED") || extra.contains("STORED GENERATED") || extra.contains("PERSISTENT"),
                name,
                column_type,
            }
        })
        .collect();
    Ok(TableColumns { db: db.to_string(), table: table.to_string(), columns })
}

/// Reads the columns of every table in `tables`.
pub async fn load_tables(
    conn: &mut mysql_async::Conn,
    tables: impl IntoIterator<Item = (String, String)>,
    mariadb: bool,
) -> Result<Vec<TableColumns>> {
    let mut out = Vec::new();
    for (db, table) in tables {
        let t = load_table(conn, &db, &table, mariadb).await?;
        if t.columns.is_empty() {
            return Err(Error::Other(format!("mysql table {db}.{table} not found in information_schema")));
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_and_set_labels_unescape() {
        assert_eq!(parse_labels("enum('x','y''q','z\\\\w')"), vec!["x", "y'q", "z\\w"]);
        assert_eq!(parse_labels("set('a','b,c','')"), vec!["a", "b,c", ""]);
        assert_eq!(parse_labels("enum('(',')')"), vec!["(", ")"]);
        assert!(parse_labels("int(11)").is_empty());
        assert!(parse_labels("garbage").is_empty());
    }

    #[test]
    fn codecs_from_information_schema() {
        assert_eq!(codec_for("bigint", "bigint(20) unsigned", None, false), Codec::Int { bits: 64, unsigned: true });
        assert_eq!(codec_for("int", "int(10) unsigned", None, false), Codec::Int { bits: 32, unsigned: true });
        assert_eq!(codec_for("tinyint", "tinyint(1)", None, false), Codec::Int { bits: 8, unsigned: false });
        assert_eq!(codec_for("varchar", "varchar(10)", Some("utf8mb4"), false), Codec::Text(Charset::Utf8));
        assert_eq!(codec_for("varchar", "varchar(10)", Some("latin1"), false), Codec::Text(Charset::Latin1));
        assert!(matches!(codec_for("varchar", "varchar(10)", Some("ucs2"), false), Codec::Unsupported(_)));
        assert_eq!(codec_for("longtext", "longtext", Some("utf8mb4"), true), Codec::Json(Charset::Utf8));
        assert_eq!(codec_for("json", "json", None, false), Codec::Json(Charset::Utf8));
        assert_eq!(codec_for("varbinary", "varbinary(8)", None, false), Codec::Bytes);
        assert_eq!(codec_for("enum", "enum('a','b')", Some("utf8mb4"), false), Codec::Enum(vec!["a".into(), "b".into()]));
        assert!(matches!(codec_for("geometry", "geometry", None, false), Codec::Unsupported(_)));
    }

    #[test]
    fn json_check_clause_matches_only_its_column() {
        assert!(is_json_check("json_valid(`j`)", "j"));
        assert!(is_json_check("JSON_VALID(`j`)", "j"));
        assert!(!is_json_check("json_valid(`j`)", "k"));
        assert!(!is_json_check("json_valid(`j`) and j > 1", "j"));
    }
}
