//! Column metadata of MySQL/MariaDB tables from information_schema, and the
//! per-column decoding rule (`Codec`) derived from it.
//!
//! Binlog row images name columns only by position (`@0..@n` unless
//! `binlog_row_metadata=FULL`): binlog column `i` is the column with
//! `ORDINAL_POSITION = i + 1`. Signedness, charset, ENUM/SET labels and JSON-ness
//! are not in the row image either, so they are read here, at connect and after
//! every DDL. Invariant: a `TableColumns` describes one table version; callers
//! check that the binlog's column count matches before decoding with it.
//!
//! ENUM/SET labels are exact, never as printed: MariaDB prints type definitions
//! (COLUMN_TYPE, SHOW CREATE TABLE, SHOW COLUMNS) through utf8mb3, so a 4-byte
//! character (emoji) shows as `?`. When a label parsed from COLUMN_TYPE holds a
//! `?`, `labels` reads the stored ones back as values of the column's type
//! (`stored_labels`). MySQL 8 has no anonymous blocks: there the printed
//! labels are used as they are.

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

pub use crate::codec::my_text::parse_labels;

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
    let mut columns: Vec<SourceColumn> = rows
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
    for col in &mut columns {
        if let Codec::Enum(l) | Codec::Set(l) = &mut col.codec {
            *l = labels(conn, db, table, &col.name, &col.column_type, mariadb).await?;
        }
    }
    Ok(TableColumns { db: db.to_string(), table: table.to_string(), columns })
}

/// The exact labels of ENUM/SET column `column` of `db.table`, whose
/// COLUMN_TYPE is `column_type` (empty for any other type): parsed from it,
/// or on MariaDB read back with `stored_labels` when one of them shows a `?`
/// (maybe a character MariaDB could not print, maybe a real `?`: the stored
/// labels tell).
pub async fn labels(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    column: &str,
    column_type: &str,
    mariadb: bool,
) -> Result<Vec<String>> {
    let starts = |p: &str| column_type.trim_start().get(..p.len()).is_some_and(|t| t.eq_ignore_ascii_case(p));
    let set = starts("set(");
    if !set && !starts("enum(") {
        return Ok(Vec::new());
    }
    let printed = parse_labels(column_type);
    if !mariadb || !printed.iter().any(|l| l.contains('?')) {
        return Ok(printed);
    }
    stored_labels(conn, db, table, column, set, printed.len()).await
}

/// The `count` labels of ENUM (`set == false`) or SET column `column` of
/// `db.table` as stored: a MariaDB anonymous block declares a variable
/// `TYPE OF` the column, assigns it each label's number (ENUM index from 1,
/// SET bit) and selects it; the value reaches the utf8mb4 session unprinted.
/// MariaDB 10.3+. Reads only the table definition, never its rows.
async fn stored_labels(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    column: &str,
    set: bool,
    count: usize,
) -> Result<Vec<String>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    use crate::sql::my::ident;
    let number = if set { "1 << (i - 1)" } else { "i" };
    let sql = format!(
        "BEGIN NOT ATOMIC DECLARE v TYPE OF {}.{}.{}; FOR i IN 1..{count} DO SET v = {number}; SELECT v; END FOR; END",
        ident(db),
        ident(table),
        ident(column)
    );
    let context = |msg: String| Error::Decode(format!("labels of {db}.{table} column {column}: {msg}"));
    let mut result = conn.query_iter(sql).await?;
    let mut labels = Vec::with_capacity(count);
    while !result.is_empty() {
        let rows: Vec<mysql_async::Row> = result.collect().await?;
        for row in rows {
            match mysql_async::Row::unwrap(row).into_iter().next() {
                Some(mysql_async::Value::Bytes(b)) => {
                    labels.push(String::from_utf8(b).map_err(|e| context(format!("not UTF-8: {e}")))?)
                }
                other => return Err(context(format!("unexpected value {other:?}"))),
            }
        }
    }
    if labels.len() != count {
        return Err(context(format!("{} labels read back, {count} in COLUMN_TYPE", labels.len())));
    }
    Ok(labels)
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
            return Err(Error::Setup(format!("mysql table {db}.{table} not found in information_schema")));
        }
        out.push(t);
    }
    Ok(out)
}

/// A decoder per paired MySQL table (by `(db, table)`) for the tables as
/// `information_schema` shows them now; a table that cannot be decoded
/// (missing, or a mapped column gone) gets the reason instead.
pub(super) async fn decoders(
    meta: &mut mysql_async::Conn,
    pairs: &std::collections::HashMap<(String, String), crate::schema::PairSchema>,
    mariadb: bool,
) -> Result<std::collections::HashMap<(String, String), std::result::Result<std::sync::Arc<super::rows::TableDecoder>, String>>> {
    let mut decoders = std::collections::HashMap::new();
    for (key, pair) in pairs {
        let cols = load_table(meta, &key.0, &key.1, mariadb).await?;
        let dec = if cols.columns.is_empty() {
            Err(format!("mysql table {}.{} does not exist", key.0, key.1))
        } else {
            super::rows::TableDecoder::new(pair, &cols).map(std::sync::Arc::new).map_err(|e| e.to_string())
        };
        match &dec {
            Ok(d) if !d.unmapped.is_empty() => tracing::warn!(
                pair = %pair.name, table = %format!("{}.{}", key.0, key.1), columns = ?d.unmapped,
                "mysql columns not mapped by the pair are ignored"
            ),
            Err(e) => tracing::warn!(pair = %pair.name, error = %e, "pair cannot be decoded until its schema is fixed"),
            _ => {}
        }
        decoders.insert(key.clone(), dec);
    }
    Ok(decoders)
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

    /// Every escape MariaDB 10.11 prints in COLUMN_TYPE (checked by hex dump).
    #[test]
    fn labels_parse_as_mariadb_prints_them() {
        // Doubled quotes alone, inside, and next to separators.
        assert_eq!(parse_labels(r"enum('''','it''s','''a'',''b''')"), vec!["'", "it's", "'a','b'"]);
        // Commas, parentheses (a lone `)` too) and quotes inside a label are text.
        assert_eq!(parse_labels(r"set('a,b','(x)','f(1,2)',')''')"), vec!["a,b", "(x)", "f(1,2)", ")'"]);
        // Backslash escapes; a tab and 0x1A are printed raw.
        assert_eq!(
            parse_labels("enum('b\\\\s','a\\nb','cr\\rx','nul\\0y','tab\there','z\u{1a}y','\\\\','\\\\''')"),
            vec!["b\\s", "a\nb", "cr\rx", "nul\0y", "tab\there", "z\u{1a}y", "\\", "\\'"]
        );
        // MariaDB's `?` for a 4-byte character parses as `?` (`labels` reads those back).
        assert_eq!(parse_labels("ENUM('? joy','é','plain')"), vec!["? joy", "é", "plain"]);
        // A truncated definition yields its complete labels and never panics.
        assert!(parse_labels("enum('a','b").is_empty());
        assert_eq!(parse_labels("enum('a','b)"), vec!["a"]);
        assert!(parse_labels("enum('a\\')").is_empty());
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
