//! Type compatibility of one column pair (DESIGN.md §10): `supported` says
//! whether a Postgres column type and a MySQL/MariaDB column type can be
//! replicated into each other, and if not, why and what to change.
//!
//! Replication runs both ways, so each side is the destination of the other:
//! a pair is supported only when every value of either side fits the other
//! unchanged (same integer class, same numeric precision and scale, same
//! fractional-second digits, utf8mb4 text). The broad kinds come from
//! `crate::schema::{pg_kind, my_kind}` (what the pipeline uses at run time);
//! the details (widths, precision, charset, MariaDB JSON) are checked here
//! from the full type text, enum labels from `MyType::labels` (as stored, not
//! as COLUMN_TYPE prints them).

use crate::schema::{my_kind, pg_kind, ValueKind};

/// A Postgres column type as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `format_type(atttypid, atttypmod)`, e.g. `numeric(12,2)`,
    /// `timestamp(3) without time zone`, `integer[]`.
    pub name: String,
    /// `pg_type.typtype`: `b` base, `e` enum, `d` domain, `c` composite, `r` range, ...
    pub typtype: char,
    /// Enum labels in sort order (empty unless an enum).
    pub labels: Vec<String>,
}

impl PgType {
    /// A base type (`typtype = 'b'`).
    pub fn base(name: &str) -> PgType {
        PgType { name: name.to_string(), typtype: 'b', labels: Vec::new() }
    }
}

/// A MySQL/MariaDB column type as information_schema describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyType {
    /// `COLUMN_TYPE`, e.g. `bigint(20) unsigned`, `enum('a','b')`, `datetime(6)`.
    pub column_type: String,
    /// `CHARACTER_SET_NAME`; `None` for non-character columns.
    pub charset: Option<String>,
    /// MariaDB JSON (a `LONGTEXT` alias): a `CHECK (json_valid(col))` covers the column.
    pub json_check: bool,
    /// ENUM/SET labels as stored (`source::mysql::columns::labels`: exact even
    /// where COLUMN_TYPE shows a 4-byte character as `?`); empty otherwise.
    pub labels: Vec<String>,
}

impl MyType {
    /// A column without character set or JSON check.
    pub fn plain(column_type: &str) -> MyType {
        MyType { column_type: column_type.to_string(), charset: None, json_check: false, labels: Vec::new() }
    }
    /// A character column of `charset`; ENUM/SET labels as `column_type` prints them.
    pub fn text(column_type: &str, charset: &str) -> MyType {
        MyType {
            column_type: column_type.to_string(),
            charset: Some(charset.to_string()),
            json_check: false,
            labels: crate::source::mysql::columns::parse_labels(column_type),
        }
    }
}

/// The kind tandem reads a Postgres column as (enums by `typtype`, which
/// `pg_kind` cannot see from the type name).
pub fn pg_value_kind(t: &PgType) -> ValueKind {
    if t.typtype == 'e' {
        ValueKind::Enum
    } else {
        pg_kind(&t.name)
    }
}

/// The kind tandem reads a MySQL column as (MariaDB JSON is a checked LONGTEXT).
pub fn my_value_kind(t: &MyType) -> ValueKind {
    match my_kind(&t.column_type) {
        ValueKind::Text if t.json_check => ValueKind::Json,
        k => k,
    }
}

/// Can `pg` and `my` be a column pair? `Err` says why not and what to change.
pub fn supported(pg: &PgType, my: &MyType) -> Result<(), String> {
    let pk = pg_value_kind(pg);
    let mk = my_value_kind(my);
    let pg_name = pg.name.as_str();
    let my_name = my.column_type.as_str();
    let pbase = pg_base(pg_name);
    let mbase = my_base(my_name);
    let unsigned = my_name.to_ascii_lowercase().contains("unsigned");
    if pk == ValueKind::Unsupported {
        return Err(pg_unsupported(pg));
    }
    if mbase == "set" {
        return Err("MySQL SET is not supported: use ENUM (one label) or VARCHAR".into());
    }
    if mbase == "year" {
        return Err("MySQL YEAR is not supported: use SMALLINT in MySQL".into());
    }
    if mbase == "bit" {
        return Err("MySQL BIT is not supported: use VARBINARY/BLOB (bytea) or TINYINT(1) (boolean)".into());
    }
    if mk == ValueKind::Unsupported {
        return Err(format!("MySQL type {my_name} is not supported: use {}", suggest_my(pg, pk)));
    }
    match (pk, mk) {
        (ValueKind::Int, ValueKind::Int) => ints(pg_name, &pbase, my_name, &mbase, unsigned),
        (ValueKind::UInt, ValueKind::UInt) => Ok(()),
        (ValueKind::Int, ValueKind::UInt) => Err(format!(
            "MySQL {my_name} holds 0 to 18446744073709551615, Postgres {pg_name} does not: use numeric(20,0) in Postgres"
        )),
        (ValueKind::Decimal, ValueKind::UInt) => Err(format!("MySQL {my_name} pairs with numeric(20,0): change Postgres {pg_name} to numeric(20,0)")),
        (ValueKind::UInt | ValueKind::Decimal, ValueKind::Decimal) => decimals(pg_name, my_name, unsigned),
        (ValueKind::UInt | ValueKind::Decimal, ValueKind::Int) => Err(format!(
            "Postgres numeric and MySQL integers differ in range and scale: use DECIMAL{} in MySQL, or {} in Postgres",
            pg_mods(pg_name).map(|(p, s)| format!("({p},{})", s.unwrap_or(0))).unwrap_or_else(|| "(p,s)".into()),
            pg_int_for(my_int_class(&mbase, unsigned).unwrap_or(64))
        )),
        (ValueKind::Float, ValueKind::Float) => floats(&pbase, my_name, &mbase, unsigned),
        (ValueKind::Bool, ValueKind::Bool) => Ok(()),
        (ValueKind::Bool, _) => Err("Postgres boolean pairs with MySQL TINYINT(1) (BOOLEAN): change the MySQL column to TINYINT(1)".into()),
        (_, ValueKind::Bool) => Err(format!(
            "MySQL {my_name} is read as boolean: use boolean in Postgres, or TINYINT(4)/SMALLINT in MySQL for numbers"
        )),
        (ValueKind::Text, ValueKind::Text) => texts(pg_name, &pbase, my),
        (ValueKind::Text, ValueKind::Enum) => {
            if pbase == "character" {
                Err(format!("Postgres {pg_name} pads with spaces: use text or varchar (or an enum type) for a MySQL ENUM"))
            } else {
                Ok(())
            }
        }
        (ValueKind::Enum, ValueKind::Enum) => enums(pg, my),
        (ValueKind::Enum, _) => Err(format!(
            "a Postgres enum pairs with a MySQL ENUM of the same labels: change MySQL {my_name} to ENUM({})",
            quoted_labels(&pg.labels)
        )),
        (ValueKind::Text, ValueKind::Json) => Err(format!(
            "MySQL {my_name} is a JSON column (json_valid check): use json or jsonb in Postgres"
        )),
        (ValueKind::Json, ValueKind::Json) => Ok(()),
        (ValueKind::Json, ValueKind::Text) => Err(format!(
            "MySQL {my_name} is not JSON: declare it JSON (on MariaDB, LONGTEXT with CHECK (json_valid(column)))"
        )),
        (ValueKind::Uuid, ValueKind::Text) if mbase == "char" && my_len(my_name) == Some(36) => Ok(()),
        (ValueKind::Uuid, _) => Err(format!("Postgres uuid pairs with MySQL CHAR(36): change MySQL {my_name} to CHAR(36)")),
        (ValueKind::Bytes, ValueKind::Bytes) => Ok(()),
        (ValueKind::Date, ValueKind::Date) => Ok(()),
        (ValueKind::Time, ValueKind::Time) => fractions(pg_name, my_name, "TIME"),
        (ValueKind::Timestamp, ValueKind::Timestamp) => fractions(pg_name, my_name, "DATETIME"),
        (ValueKind::TimestampTz, ValueKind::Timestamp) => fractions(pg_name, my_name, "DATETIME"),
        (ValueKind::TimestampTz, ValueKind::TimestampTz) => fractions(pg_name, my_name, "TIMESTAMP"),
        (ValueKind::Timestamp, ValueKind::TimestampTz) => Err(format!(
            "MySQL TIMESTAMP is an instant, Postgres {pg_name} a wall-clock time: use DATETIME({}) in MySQL or timestamptz in Postgres",
            pg_precision(pg_name)
        )),
        _ => Err(format!(
            "not a supported type pair ({} vs {}): for Postgres {pg_name} use {} in MySQL",
            kind_name(pk),
            kind_name(mk),
            suggest_my(pg, pk)
        )),
    }
}

fn pg_unsupported(pg: &PgType) -> String {
    let name = &pg.name;
    if name.trim_end().ends_with("[]") {
        return format!("Postgres arrays ({name}) are not supported: use json/jsonb ↔ JSON, or a separate table");
    }
    match pg.typtype {
        'd' => format!("Postgres domain {name} is not supported: use its base type"),
        'c' => format!("Postgres composite type {name} is not supported: use json/jsonb ↔ JSON or separate columns"),
        'r' | 'm' => format!("Postgres range type {name} is not supported: use two columns for the bounds"),
        _ => format!("Postgres type {name} is not supported (see the supported pairs in DESIGN §10)"),
    }
}

/// Integer pairs: the MySQL type's class (the smallest Postgres integer that
/// holds all its values) must be the Postgres type.
fn ints(pg_name: &str, pbase: &str, my_name: &str, mbase: &str, unsigned: bool) -> Result<(), String> {
    let pg_bits = match pbase {
        "smallint" => 16,
        "integer" => 32,
        _ => 64,
    };
    let Some(class) = my_int_class(mbase, unsigned) else {
        return Err(format!("MySQL {my_name} is not a supported integer type"));
    };
    if class == pg_bits {
        return Ok(());
    }
    let (narrow, change) = if class < pg_bits {
        (format!("MySQL {my_name} is narrower than Postgres {pg_name}"), format!("use {} in MySQL or {} in Postgres", my_int_for(pg_bits), pg_int_for(class)))
    } else {
        (format!("Postgres {pg_name} is narrower than MySQL {my_name}"), format!("use {} in Postgres or {} in MySQL", pg_int_for(class), my_int_for(pg_bits)))
    };
    Err(format!("{narrow}: values from the other side may not fit; {change}"))
}

/// Smallest Postgres integer width (16/32/64) holding every value of a MySQL integer type.
fn my_int_class(mbase: &str, unsigned: bool) -> Option<u32> {
    let bits = match mbase {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        "bigint" => 64,
        _ => return None,
    };
    let needed = if unsigned { bits + 1 } else { bits };
    Some(match needed {
        n if n <= 16 => 16,
        n if n <= 32 => 32,
        _ => 64,
    })
}

fn pg_int_for(bits: u32) -> &'static str {
    match bits {
        16 => "smallint",
        32 => "integer",
        _ => "bigint",
    }
}

fn my_int_for(bits: u32) -> &'static str {
    match bits {
        16 => "SMALLINT",
        32 => "INT",
        _ => "BIGINT",
    }
}

fn decimals(pg_name: &str, my_name: &str, unsigned: bool) -> Result<(), String> {
    let my = my_mods(my_name);
    let (mp, ms) = (my.first().copied().unwrap_or(10), my.get(1).copied().unwrap_or(0));
    let Some((pp, ps)) = pg_mods(pg_name) else {
        return Err(format!("Postgres numeric without precision holds values MySQL {my_name} cannot: declare numeric({mp},{ms})"));
    };
    let ps = ps.unwrap_or(0);
    if (pp, ps) != (mp, ms) {
        return Err(format!(
            "precision and scale differ: Postgres numeric({pp},{ps}) vs MySQL DECIMAL({mp},{ms}); declare the same on both sides"
        ));
    }
    if unsigned {
        return Err(format!("MySQL {my_name} is UNSIGNED: negative values from Postgres do not fit; drop UNSIGNED"));
    }
    Ok(())
}

fn floats(pbase: &str, my_name: &str, mbase: &str, unsigned: bool) -> Result<(), String> {
    if !my_mods(my_name).is_empty() {
        return Err(format!("MySQL {my_name} rounds to fixed digits: declare it {} without (M,D)", mbase.to_ascii_uppercase()));
    }
    if unsigned {
        return Err(format!("MySQL {my_name} is UNSIGNED: negative values from Postgres do not fit; drop UNSIGNED"));
    }
    match (pbase, mbase) {
        ("real", "float") | ("double precision", "double" | "real") => Ok(()),
        ("real", _) => Err(format!("Postgres real (4 bytes) vs MySQL {my_name} (8 bytes): use FLOAT in MySQL or double precision in Postgres")),
        _ => Err(format!("Postgres double precision (8 bytes) vs MySQL {my_name} (4 bytes): use DOUBLE in MySQL or real in Postgres")),
    }
}

fn texts(pg_name: &str, pbase: &str, my: &MyType) -> Result<(), String> {
    let my_name = my.column_type.as_str();
    let mbase = my_base(my_name);
    match (pbase == "character", mbase == "char") {
        (true, true) => {
            let (n, m) = (pg_mods(pg_name).map(|(p, _)| p).unwrap_or(1), my_len(my_name).unwrap_or(1));
            if n != m {
                return Err(format!("lengths differ: Postgres character({n}) vs MySQL CHAR({m}); declare the same length"));
            }
        }
        (true, false) => {
            return Err(format!("Postgres {pg_name} pads with spaces, MySQL {my_name} keeps them: use CHAR(n) in MySQL or varchar/text in Postgres"))
        }
        (false, true) => {
            return Err(format!("MySQL {my_name} drops trailing spaces: use VARCHAR in MySQL or character(n) in Postgres"))
        }
        (false, false) => {}
    }
    charset(my)
}

/// Text from Postgres is any Unicode: the MySQL column must be utf8mb4.
fn charset(my: &MyType) -> Result<(), String> {
    let Some(cs) = my.charset.as_deref() else { return Ok(()) };
    let lower = cs.to_ascii_lowercase();
    if lower == "utf8mb4" {
        return Ok(());
    }
    let why = match lower.as_str() {
        "utf8" | "utf8mb3" => "cannot hold 4-byte characters (emoji, rare CJK) from Postgres".to_string(),
        "binary" => "holds bytes, not text".to_string(),
        _ => format!("cannot hold every character of Postgres text ({cs})"),
    };
    Err(format!(
        "MySQL column character set {cs} {why}: convert it, e.g. ALTER TABLE … MODIFY … {} CHARACTER SET utf8mb4",
        my.column_type.to_ascii_uppercase()
    ))
}

fn enums(pg: &PgType, my: &MyType) -> Result<(), String> {
    if my_base(&my.column_type) != "enum" {
        return Err(format!("MySQL {} is not an ENUM", my.column_type));
    }
    let only_pg: Vec<&String> = pg.labels.iter().filter(|l| !my.labels.contains(l)).collect();
    let only_my: Vec<&String> = my.labels.iter().filter(|m| !pg.labels.contains(m)).collect();
    if only_pg.is_empty() && only_my.is_empty() {
        return Ok(());
    }
    let list = |v: &[&String]| v.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if !only_pg.is_empty() {
        parts.push(format!("only in Postgres: {}", list(&only_pg)));
    }
    if !only_my.is_empty() {
        parts.push(format!("only in MySQL: {}", list(&only_my)));
    }
    Err(format!("enum labels differ ({}): give both types the same labels", parts.join("; ")))
}

fn quoted_labels(labels: &[String]) -> String {
    labels.iter().map(|l| format!("'{}'", l.replace('\'', "''"))).collect::<Vec<_>>().join(",")
}

/// Fractional-second digits must be equal: either side would round the other's values.
fn fractions(pg_name: &str, my_name: &str, my_type: &str) -> Result<(), String> {
    let p = pg_precision(pg_name);
    let f = my_mods(my_name).first().copied().unwrap_or(0);
    if p == f {
        return Ok(());
    }
    Err(format!(
        "fractional seconds differ: Postgres keeps {p} digits, MySQL {my_name} keeps {f}, so values would be rounded; declare {my_type}({p}) in MySQL (or precision {f} in Postgres)"
    ))
}

/// Postgres time/timestamp precision (6 when not declared).
fn pg_precision(pg_name: &str) -> u32 {
    pg_mods(pg_name).map(|(p, _)| p).unwrap_or(6)
}

/// The Postgres type name without modifiers, whitespace collapsed.
fn pg_base(ty: &str) -> String {
    crate::sql::pg::base_type(ty)
}

/// `(p, s)` of the first parenthesised modifier of a Postgres type.
fn pg_mods(ty: &str) -> Option<(u32, Option<u32>)> {
    let nums = paren_numbers(ty);
    nums.first().map(|&p| (p, nums.get(1).copied()))
}

/// Lower-case MySQL base type: `bigint(20) unsigned` → `bigint`.
fn my_base(ct: &str) -> String {
    ct.to_ascii_lowercase().split(['(', ' ']).next().unwrap_or("").to_string()
}

/// Numbers in the first parentheses of a MySQL type (not for enum/set).
fn my_mods(ct: &str) -> Vec<u32> {
    let base = my_base(ct);
    if base == "enum" || base == "set" {
        return Vec::new();
    }
    paren_numbers(ct)
}

fn my_len(ct: &str) -> Option<u32> {
    my_mods(ct).first().copied()
}

fn paren_numbers(ty: &str) -> Vec<u32> {
    let (Some(a), Some(b)) = (ty.find('('), ty.find(')')) else { return Vec::new() };
    if a >= b {
        return Vec::new();
    }
    ty[a + 1..b].split(',').filter_map(|n| n.trim().parse().ok()).collect()
}

fn kind_name(k: ValueKind) -> &'static str {
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
        ValueKind::Unsupported => "unsupported",
    }
}

/// The MySQL type that pairs with a Postgres type.
fn suggest_my(pg: &PgType, pk: ValueKind) -> String {
    let name = pg.name.as_str();
    match pk {
        ValueKind::Bool => "TINYINT(1)".into(),
        ValueKind::Int => match pg_base(name).as_str() {
            "smallint" => "SMALLINT".into(),
            "integer" => "INT".into(),
            _ => "BIGINT".into(),
        },
        ValueKind::UInt => "BIGINT UNSIGNED".into(),
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
                None => "TEXT CHARACTER SET utf8mb4".into(),
            },
            _ => "TEXT (or VARCHAR) CHARACTER SET utf8mb4".into(),
        },
        ValueKind::Bytes => "BLOB/VARBINARY".into(),
        ValueKind::Date => "DATE".into(),
        ValueKind::Time => format!("TIME({})", pg_precision(name)),
        ValueKind::Timestamp => format!("DATETIME({})", pg_precision(name)),
        ValueKind::TimestampTz => format!("DATETIME({0}) or TIMESTAMP({0})", pg_precision(name)),
        ValueKind::Json => "JSON".into(),
        ValueKind::Uuid => "CHAR(36)".into(),
        ValueKind::Enum => format!("ENUM({})", quoted_labels(&pg.labels)),
        ValueKind::Unsupported => "a supported type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pg: &str, my: &str) {
        let my_t = if ["char", "varchar", "text", "tinytext", "mediumtext", "longtext", "enum"].contains(&my_base(my).as_str()) {
            MyType::text(my, "utf8mb4")
        } else {
            MyType::plain(my)
        };
        assert_eq!(supported(&PgType::base(pg), &my_t), Ok(()), "{pg} ↔ {my}");
    }

    fn bad(pg: &str, my: &str, needle: &str) {
        let my_t = if ["char", "varchar", "text", "tinytext", "mediumtext", "longtext", "enum"].contains(&my_base(my).as_str()) {
            MyType::text(my, "utf8mb4")
        } else {
            MyType::plain(my)
        };
        match supported(&PgType::base(pg), &my_t) {
            Ok(()) => panic!("{pg} ↔ {my} should be rejected"),
            Err(e) => assert!(e.contains(needle), "{pg} ↔ {my}: {e:?} should mention {needle:?}"),
        }
    }

    #[test]
    fn the_design_pairs_are_supported() {
        for (pg, my) in [
            ("smallint", "smallint(6)"),
            ("smallint", "tinyint(4)"),
            ("smallint", "tinyint(3) unsigned"),
            ("integer", "int(11)"),
            ("integer", "mediumint(9)"),
            ("integer", "smallint(5) unsigned"),
            ("bigint", "bigint(20)"),
            ("bigint", "int(10) unsigned"),
            ("numeric(20,0)", "bigint(20) unsigned"),
            ("numeric(12,2)", "decimal(12,2)"),
            ("numeric(20,0)", "decimal(20,0)"),
            ("real", "float"),
            ("double precision", "double"),
            ("boolean", "tinyint(1)"),
            ("text", "text"),
            ("text", "longtext"),
            ("character varying(64)", "varchar(64)"),
            ("text", "varchar(255)"),
            ("character(3)", "char(3)"),
            ("bytea", "blob"),
            ("bytea", "varbinary(16)"),
            ("bytea", "binary(16)"),
            ("date", "date"),
            ("time without time zone", "time(6)"),
            ("time(0) without time zone", "time"),
            ("timestamp without time zone", "datetime(6)"),
            ("timestamp(3) without time zone", "datetime(3)"),
            ("timestamp with time zone", "timestamp(6)"),
            ("timestamp(0) with time zone", "datetime"),
            ("json", "json"),
            ("jsonb", "json"),
            ("uuid", "char(36)"),
            ("text", "enum('a','b')"),
            ("character varying(8)", "enum('a','b')"),
        ] {
            ok(pg, my);
        }
    }

    #[test]
    fn mariadb_json_is_a_checked_longtext() {
        let checked = MyType { json_check: true, ..MyType::text("longtext", "utf8mb4") };
        assert_eq!(supported(&PgType::base("jsonb"), &checked), Ok(()));
        let plain = MyType::text("longtext", "utf8mb4");
        assert!(supported(&PgType::base("jsonb"), &plain).unwrap_err().contains("JSON"));
        assert!(supported(&PgType::base("text"), &checked).unwrap_err().contains("json"));
    }

    #[test]
    fn postgres_enums_need_the_same_labels() {
        let pg = PgType { name: "mood".into(), typtype: 'e', labels: vec!["happy".into(), "sad".into()] };
        assert_eq!(supported(&pg, &MyType::text("enum('happy','sad')", "utf8mb4")), Ok(()));
        let e = supported(&pg, &MyType::text("enum('happy','ok')", "utf8mb4")).unwrap_err();
        assert!(e.contains("only in Postgres: 'sad'") && e.contains("only in MySQL: 'ok'"), "{e}");
        assert!(supported(&pg, &MyType::text("varchar(10)", "utf8mb4")).unwrap_err().contains("ENUM('happy','sad')"));
        // Labels compare exactly: the MySQL ones are read as stored, so a `?`
        // (how MariaDB prints an emoji in COLUMN_TYPE) is a different label.
        let emoji = PgType { name: "mood".into(), typtype: 'e', labels: vec!["😀 joy".into(), "it's".into()] };
        assert_eq!(supported(&emoji, &MyType::text("enum('😀 joy','it''s')", "utf8mb4")), Ok(()));
        let printed = supported(&emoji, &MyType::text("enum('? joy','it''s')", "utf8mb4")).unwrap_err();
        assert!(printed.contains("only in Postgres: '😀 joy'") && printed.contains("only in MySQL: '? joy'"), "{printed}");
        // pg_kind alone cannot see an enum by its name.
        assert_eq!(pg_kind("mood"), ValueKind::Unsupported);
        assert_eq!(pg_value_kind(&pg), ValueKind::Enum);
    }

    #[test]
    fn narrower_integers_are_rejected_both_ways() {
        bad("bigint", "int(11)", "MySQL int(11) is narrower than Postgres bigint");
        bad("integer", "smallint(6)", "narrower");
        bad("smallint", "int(11)", "Postgres smallint is narrower");
        bad("integer", "bigint(20)", "use bigint in Postgres");
        bad("integer", "int(10) unsigned", "Postgres integer is narrower");
        bad("bigint", "bigint(20) unsigned", "numeric(20,0)");
        bad("smallint", "year(4)", "YEAR");
    }

    #[test]
    fn precision_scale_and_fractions_must_match() {
        bad("numeric(12,2)", "decimal(12,3)", "precision and scale differ");
        bad("numeric", "decimal(10,0)", "without precision");
        bad("numeric(12,2)", "decimal(12,2) unsigned", "UNSIGNED");
        bad("numeric(10,0)", "bigint(20) unsigned", "numeric(20,0)");
        bad("timestamp without time zone", "datetime", "fractional seconds");
        bad("time without time zone", "time", "TIME(6)");
        bad("timestamp with time zone", "timestamp(3)", "fractional seconds");
        bad("timestamp without time zone", "timestamp(6)", "DATETIME(6)");
        bad("real", "double", "FLOAT");
        bad("double precision", "float", "DOUBLE");
        bad("double precision", "double(10,2)", "without (M,D)");
    }

    #[test]
    fn other_pairs_name_what_to_change() {
        bad("integer[]", "text", "arrays");
        bad("text", "int(11)", "TEXT");
        bad("integer", "varchar(10)", "INT");
        bad("boolean", "tinyint(4)", "TINYINT(1)");
        bad("smallint", "tinyint(1)", "boolean");
        bad("uuid", "varchar(36)", "CHAR(36)");
        bad("uuid", "binary(16)", "CHAR(36)");
        bad("character(3)", "varchar(3)", "pads");
        bad("text", "char(3)", "trailing spaces");
        bad("character(3)", "char(4)", "lengths differ");
        bad("interval", "time", "interval");
        bad("text", "set('a')", "SET");
        bad("bytea", "bit(8)", "BIT");
        bad("text", "geometry", "geometry");
        bad("character(2)", "enum('a','b')", "pads");
        bad("date", "datetime", "not a supported type pair");
        assert!(supported(&PgType { name: "posint".into(), typtype: 'd', labels: vec![] }, &MyType::plain("int(11)"))
            .unwrap_err()
            .contains("domain"));
    }

    #[test]
    fn mysql_text_must_be_utf8mb4() {
        let latin = MyType::text("varchar(10)", "latin1");
        assert!(supported(&PgType::base("text"), &latin).unwrap_err().contains("latin1"));
        let mb3 = MyType::text("text", "utf8mb3");
        assert!(supported(&PgType::base("text"), &mb3).unwrap_err().contains("4-byte"));
        // A uuid is ASCII: any charset holds it.
        assert_eq!(supported(&PgType::base("uuid"), &MyType::text("char(36)", "latin1")), Ok(()));
    }
}
