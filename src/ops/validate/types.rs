//! Type compatibility of one column pair (DESIGN.md §10), by value range:
//! `compat` says, for each direction, whether every value of one side's
//! column fits the other's (`ranges::Fit`), and `judge` turns that into a
//! verdict for the directions the column's values flow.
//!
//! The rule: a direction is fine when every source value fits unchanged
//! (widenings: a smaller integer kind, an unsigned kind into a wider signed
//! one, `YEAR` into an integer, `tinyint(1)` into any integer, shorter text
//! into longer, fewer fraction digits into more). A *narrowing* direction
//! (some values out of the destination's range, which the destination
//! refuses, so they are quarantined) is accepted with a warning when the
//! other direction of a two-way column is fine; when both directions
//! narrow, or a one-way column narrows, it is a problem. A *lossy* direction
//! (the destination would round or pad values instead of refusing them) is
//! always a problem. Problems and warnings name both fixes (either side).
//! Pairs of different kinds that tandem cannot convert at all are problems
//! naming the type to use. Postgres domains are judged by their base type
//! (the caller resolves them); MySQL `SET` pairs with Postgres `text[]`
//! (members in the SET's declared order), `ENUM` with a Postgres enum or text.
//! The broad kinds come from `crate::schema::{pg_kind, my_kind}` (what the
//! pipeline uses at run time); widths, precision, charset, labels and
//! MariaDB JSON are read here from the full type text.

use super::fixes::{kind_name, suggest_my, suggest_pg};
use super::ranges::{fit_len, fit_num, int_range, Fit, Len, Num};
use crate::schema::{my_kind, pg_kind, ValueKind};

/// A Postgres column type as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `format_type(atttypid, atttypmod)`, e.g. `numeric(12,2)`,
    /// `timestamp(3) without time zone`, `text[]` (a domain's base type).
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
            labels: crate::codec::my_text::parse_labels(column_type),
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

/// How the values of each side fit the other side's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compat {
    /// Postgres values written into the MySQL column.
    pub to_mysql: Fit,
    /// MySQL values written into the Postgres column.
    pub to_postgres: Fit,
}

impl Compat {
    fn exact() -> Compat {
        Compat { to_mysql: Fit::Exact, to_postgres: Fit::Exact }
    }
}

/// Which ways a column's values flow (a column one side computes flows only
/// from that side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flows {
    pub to_mysql: bool,
    pub to_postgres: bool,
}

impl Flows {
    pub const BOTH: Flows = Flows { to_mysql: true, to_postgres: true };
}

/// What `validate` says about a column pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Accepted; some values of one direction are quarantined (the text says which and how to avoid it).
    Warn(String),
    /// Not accepted: the text says why and what to change.
    Problem(String),
}

/// Can `pg` and `my` be a two-way column pair? `Err` says why not and what
/// to change; narrowing with a warning is `Ok`.
pub fn supported(pg: &PgType, my: &MyType) -> Result<(), String> {
    match judge(pg, my, Flows::BOTH) {
        Verdict::Problem(why) => Err(why),
        Verdict::Ok | Verdict::Warn(_) => Ok(()),
    }
}

/// The verdict for a column pair whose values flow as `flows` says.
pub fn judge(pg: &PgType, my: &MyType, flows: Flows) -> Verdict {
    let c = match compat(pg, my) {
        Ok(c) => c,
        Err(why) => return Verdict::Problem(why),
    };
    let fix_my = format!("use {} in MySQL", suggest_my(pg, pg_value_kind(pg)));
    let fix_pg = format!("use {} in Postgres", suggest_pg(my));
    let to_my = if flows.to_mysql { c.to_mysql } else { Fit::Exact };
    let to_pg = if flows.to_postgres { c.to_postgres } else { Fit::Exact };
    let two_way = flows.to_mysql && flows.to_postgres;
    match (&to_my, &to_pg) {
        (Fit::Lossy(why), _) => Verdict::Problem(format!("Postgres values written to MySQL change: {why}; {fix_my} or {fix_pg}")),
        (_, Fit::Lossy(why)) => Verdict::Problem(format!("MySQL values written to Postgres change: {why}; {fix_pg} or {fix_my}")),
        (Fit::Narrowing(a), Fit::Narrowing(b)) => Verdict::Problem(format!(
            "neither type holds every value of the other (Postgres {a} do not fit MySQL, MySQL {b} do not fit Postgres); {fix_my} or {fix_pg}"
        )),
        (Fit::Narrowing(a), Fit::Exact) if two_way => Verdict::Warn(format!(
            "MySQL refuses Postgres {a}: such changes are quarantined; every MySQL value fits Postgres; to replicate them all, {fix_my}"
        )),
        (Fit::Exact, Fit::Narrowing(b)) if two_way => Verdict::Warn(format!(
            "Postgres refuses MySQL {b}: such changes are quarantined; every Postgres value fits MySQL; to replicate them all, {fix_pg}"
        )),
        (Fit::Narrowing(a), Fit::Exact) => Verdict::Problem(format!("MySQL refuses Postgres {a}, and values flow only that way; {fix_my}")),
        (Fit::Exact, Fit::Narrowing(b)) => Verdict::Problem(format!("Postgres refuses MySQL {b}, and values flow only that way; {fix_pg}")),
        (Fit::Exact, Fit::Exact) => Verdict::Ok,
    }
}

/// Things worth knowing about a column pair that needs no action.
pub fn notes(pg: &PgType, my: &MyType) -> Vec<String> {
    let mut out = Vec::new();
    if pg_value_kind(pg) == ValueKind::Timestamp && my_value_kind(my) == ValueKind::TimestampTz {
        out.push(format!(
            "MySQL {} is an instant, Postgres {} a wall-clock time: tandem's sessions use UTC, so the Postgres value is the instant's UTC time",
            my.column_type, pg.name
        ));
    }
    out
}

/// Each direction's fit; `Err` when the types do not pair at all.
pub fn compat(pg: &PgType, my: &MyType) -> Result<Compat, String> {
    let pk = pg_value_kind(pg);
    let mk = my_value_kind(my);
    let pg_name = pg.name.as_str();
    let my_name = my.column_type.as_str();
    let pbase = pg_base(pg_name);
    let mbase = my_base(my_name);
    if pk == ValueKind::Unsupported {
        return Err(pg_unsupported(pg));
    }
    if mbase == "bit" {
        return Err("MySQL BIT is not supported: use VARBINARY/BLOB (bytea) or TINYINT(1) (boolean)".into());
    }
    if mk == ValueKind::Unsupported {
        return Err(format!("MySQL type {my_name} is not supported: use {}", suggest_my(pg, pk)));
    }
    match (pk, mk) {
        (ValueKind::Int | ValueKind::UInt | ValueKind::Decimal, ValueKind::Int | ValueKind::UInt | ValueKind::Decimal | ValueKind::Bool) => numbers(pg, my),
        (ValueKind::Float, ValueKind::Float) => floats(&pbase, my_name, &mbase),
        (ValueKind::Bool, ValueKind::Bool) => Ok(Compat::exact()),
        (ValueKind::Bool, _) => Err("Postgres boolean pairs with MySQL TINYINT(1) (BOOLEAN): change the MySQL column to TINYINT(1)".into()),
        (_, ValueKind::Bool) => Err(format!(
            "MySQL {my_name} is read as boolean: use boolean (or an integer type) in Postgres, or TINYINT(4)/SMALLINT in MySQL for numbers"
        )),
        (ValueKind::Text, ValueKind::Text) => texts(pg_name, &pbase, my),
        (ValueKind::Text, ValueKind::Enum) => {
            if pbase == "character" {
                return Err(format!("Postgres {pg_name} pads with spaces: use text or varchar (or an enum type) for a MySQL ENUM"));
            }
            let longest = my.labels.iter().map(|l| l.chars().count() as u64).max().unwrap_or(0);
            Ok(Compat {
                to_mysql: Fit::Narrowing("texts that are not one of the ENUM's labels".into()),
                to_postgres: fit_len(Len::Chars(longest), pg_len(pg_name), true),
            })
        }
        (ValueKind::Enum, ValueKind::Enum) => enums(pg, my),
        (ValueKind::Enum, _) => Err(format!(
            "a Postgres enum pairs with a MySQL ENUM of the same labels: change MySQL {my_name} to ENUM({})",
            quoted_labels(&pg.labels)
        )),
        (ValueKind::Set, ValueKind::Set) => {
            let longest = my.labels.iter().map(|l| l.chars().count() as u64).max().unwrap_or(0);
            let element = pg_name.trim_end().trim_end_matches("[]");
            Ok(Compat {
                to_mysql: Fit::Narrowing("arrays that are not distinct labels of the SET in its declared order".into()),
                to_postgres: match fit_len(Len::Chars(longest), pg_len(element), true) {
                    Fit::Exact => Fit::Exact,
                    _ => Fit::Narrowing(format!("SET labels longer than {element} holds")),
                },
            })
        }
        (_, ValueKind::Set) => Err(format!(
            "MySQL {my_name} pairs with a Postgres text[] (members in the SET's declared order): change Postgres {pg_name} to text[], or MySQL to VARCHAR"
        )),
        (ValueKind::Set, _) => Err(format!(
            "Postgres {pg_name} pairs with a MySQL SET of the labels it may hold: change MySQL {my_name} to SET(…), or Postgres to text or json"
        )),
        (ValueKind::Text, ValueKind::Json) => Err(format!("MySQL {my_name} is a JSON column (json_valid check): use json or jsonb in Postgres")),
        (ValueKind::Json, ValueKind::Json) => Ok(Compat::exact()),
        (ValueKind::Json, ValueKind::Text) => Err(format!(
            "MySQL {my_name} is not JSON: declare it JSON (on MariaDB, LONGTEXT with CHECK (json_valid(column)))"
        )),
        (ValueKind::Uuid, ValueKind::Text) if mbase == "char" && my_len(my_name) == Some(36) => Ok(Compat::exact()),
        (ValueKind::Uuid, _) => Err(format!("Postgres uuid pairs with MySQL CHAR(36): change MySQL {my_name} to CHAR(36)")),
        (ValueKind::Bytes, ValueKind::Bytes) => {
            let (p, m) = (Len::Unbounded, my_bytes_len(&mbase, my_name));
            Ok(Compat { to_mysql: fit_len(p, m, false), to_postgres: fit_len(m, p, false) })
        }
        (ValueKind::Date, ValueKind::Date) => Ok(Compat::exact()),
        (ValueKind::Time | ValueKind::Timestamp | ValueKind::TimestampTz, ValueKind::Time | ValueKind::Timestamp | ValueKind::TimestampTz)
            if (pk == ValueKind::Time) == (mk == ValueKind::Time) =>
        {
            let (p, m) = (pg_digits(pg_name), my_digits(my_name));
            let (to_my_range, to_pg_range) = match mk {
                ValueKind::Time => (None, Some("times outside 00:00:00 to 24:00:00 (MySQL TIME holds -838:59:59 to 838:59:59)")),
                ValueKind::TimestampTz => (Some("times outside 1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC (MySQL TIMESTAMP's range)"), None),
                _ => (None, None),
            };
            Ok(Compat {
                to_mysql: fractions(p, m, &format!("Postgres {pg_name}"), &format!("MySQL {my_name}"), to_my_range),
                to_postgres: fractions(m, p, &format!("MySQL {my_name}"), &format!("Postgres {pg_name}"), to_pg_range),
            })
        }
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
        return format!("Postgres arrays ({name}) are not supported (only text[] ↔ MySQL SET): use json/jsonb ↔ JSON, or a separate table");
    }
    match pg.typtype {
        'd' => format!("Postgres domain {name} over an unsupported type: use a supported base type"),
        'c' => format!("Postgres composite type {name} is not supported: use json/jsonb ↔ JSON or separate columns"),
        'r' | 'm' => format!("Postgres range type {name} is not supported: use two columns for the bounds"),
        _ => format!("Postgres type {name} is not supported (see the supported pairs in DESIGN §10)"),
    }
}

/// The values a Postgres numeric type holds.
fn pg_num(name: &str) -> Num {
    match pg_base(name).as_str() {
        "smallint" => int_range(16, false),
        "integer" => int_range(32, false),
        "bigint" => int_range(64, false),
        _ => match pg_mods(name) {
            Some((p, s)) => Num::Dec { digits: p.saturating_sub(s.unwrap_or(0)), scale: s.unwrap_or(0), unsigned: false },
            None => Num::Any,
        },
    }
}

/// The values a MySQL numeric type holds as a source (YEAR: 0 to 2155).
fn my_num(name: &str) -> Num {
    let base = my_base(name);
    let unsigned = name.to_ascii_lowercase().contains("unsigned");
    match base.as_str() {
        "tinyint" => int_range(8, unsigned),
        "smallint" => int_range(16, unsigned),
        "mediumint" => int_range(24, unsigned),
        "int" | "integer" => int_range(32, unsigned),
        "bigint" => int_range(64, unsigned),
        "year" => Num::Int { min: 0, max: 2155 },
        _ => {
            let m = my_mods(name);
            let (p, s) = (m.first().copied().unwrap_or(10), m.get(1).copied().unwrap_or(0));
            Num::Dec { digits: p.saturating_sub(s), scale: s, unsigned }
        }
    }
}

/// Integers and exact decimals of any width on either side.
fn numbers(pg: &PgType, my: &MyType) -> Result<Compat, String> {
    let (p, m) = (pg_num(&pg.name), my_num(&my.column_type));
    let to_mysql = if my_base(&my.column_type) == "year" {
        match fit_num(p, Num::Int { min: 0, max: 0 }) {
            Fit::Lossy(why) => Fit::Lossy(why),
            _ => Fit::Narrowing("numbers other than 0 and 1901 to 2155 (MySQL YEAR's range)".into()),
        }
    } else {
        fit_num(p, m)
    };
    Ok(Compat { to_mysql, to_postgres: fit_num(m, p) })
}

fn floats(pbase: &str, my_name: &str, mbase: &str) -> Result<Compat, String> {
    if !my_mods(my_name).is_empty() {
        return Err(format!("MySQL {my_name} rounds to fixed digits: declare it {} without (M,D)", mbase.to_ascii_uppercase()));
    }
    let pg_single = pbase == "real";
    let my_single = mbase == "float";
    let narrow = |single: bool, into: &str| {
        if single {
            Fit::Exact
        } else {
            Fit::Lossy(format!("double-precision values would be rounded to single precision ({into})"))
        }
    };
    let mut to_mysql = if my_single { narrow(pg_single, my_name) } else { Fit::Exact };
    let to_postgres = if pg_single { narrow(my_single, pbase) } else { Fit::Exact };
    if to_mysql == Fit::Exact && my_name.to_ascii_lowercase().contains("unsigned") {
        to_mysql = Fit::Narrowing("negative numbers (MySQL UNSIGNED)".into());
    }
    Ok(Compat { to_mysql, to_postgres })
}

fn texts(pg_name: &str, pbase: &str, my: &MyType) -> Result<Compat, String> {
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
        (false, true) => return Err(format!("MySQL {my_name} drops trailing spaces: use VARCHAR in MySQL or character(n) in Postgres")),
        (false, false) => {}
    }
    charset(my)?;
    let (p, m) = (pg_len(pg_name), my_text_len(&mbase, my_name));
    Ok(Compat { to_mysql: fit_len(p, m, true), to_postgres: fit_len(m, p, true) })
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

/// The length a Postgres character type holds (`character(n)`, `varchar(n)` in characters).
fn pg_len(pg_name: &str) -> Len {
    match (pg_base(pg_name).as_str(), pg_mods(pg_name)) {
        ("character varying" | "character", Some((n, _))) => Len::Chars(u64::from(n)),
        ("character", None) => Len::Chars(1),
        _ => Len::Unbounded,
    }
}

fn my_text_len(mbase: &str, my_name: &str) -> Len {
    match mbase {
        "char" | "varchar" => Len::Chars(u64::from(my_len(my_name).unwrap_or(1))),
        "tinytext" => Len::Bytes(255),
        "text" => Len::Bytes(65_535),
        "mediumtext" => Len::Bytes(16_777_215),
        _ => Len::Unbounded,
    }
}

fn my_bytes_len(mbase: &str, my_name: &str) -> Len {
    match mbase {
        "binary" | "varbinary" => Len::Bytes(u64::from(my_len(my_name).unwrap_or(1))),
        "tinyblob" => Len::Bytes(255),
        "blob" => Len::Bytes(65_535),
        "mediumblob" => Len::Bytes(16_777_215),
        _ => Len::Unbounded,
    }
}

fn enums(pg: &PgType, my: &MyType) -> Result<Compat, String> {
    if my_base(&my.column_type) != "enum" {
        return Err(format!("MySQL {} is not an ENUM", my.column_type));
    }
    let only_pg: Vec<&String> = pg.labels.iter().filter(|l| !my.labels.contains(l)).collect();
    let only_my: Vec<&String> = my.labels.iter().filter(|m| !pg.labels.contains(m)).collect();
    let list = |v: &[&String]| v.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", ");
    if !only_pg.is_empty() && !only_my.is_empty() {
        return Err(format!(
            "enum labels differ (only in Postgres: {}; only in MySQL: {}): give both types the same labels",
            list(&only_pg),
            list(&only_my)
        ));
    }
    let fit = |only: &[&String]| if only.is_empty() { Fit::Exact } else { Fit::Narrowing(format!("labels {}", list(only))) };
    Ok(Compat { to_mysql: fit(&only_pg), to_postgres: fit(&only_my) })
}

pub(super) fn quoted_labels(labels: &[String]) -> String {
    labels.iter().map(|l| format!("'{}'", l.replace('\'', "''"))).collect::<Vec<_>>().join(",")
}

/// Fraction digits of a Postgres time type (6 when not declared).
pub(super) fn pg_digits(name: &str) -> u32 {
    pg_mods(name).map(|(p, _)| p).unwrap_or(6)
}

/// Fraction digits of a MySQL time type (0 when not declared).
pub(super) fn my_digits(name: &str) -> u32 {
    my_mods(name).first().copied().unwrap_or(0)
}

/// Writing values with `s` fraction digits into a type keeping `d`: more
/// digits are rounded (lossy); `range` names the values the destination
/// refuses, if any.
fn fractions(s: u32, d: u32, src: &str, dst: &str, range: Option<&str>) -> Fit {
    if s > d {
        return Fit::Lossy(format!("fractional seconds differ: {src} keeps {s} digits, {dst} keeps {d}, so values would be rounded"));
    }
    match range {
        Some(r) => Fit::Narrowing(r.to_string()),
        None => Fit::Exact,
    }
}

/// The Postgres type name without modifiers, whitespace collapsed.
pub(super) fn pg_base(ty: &str) -> String {
    crate::sql::pg::base_type(ty)
}

/// `(p, s)` of the first parenthesised modifier of a Postgres type.
pub(super) fn pg_mods(ty: &str) -> Option<(u32, Option<u32>)> {
    let nums = paren_numbers(ty);
    nums.first().map(|&p| (p, nums.get(1).copied()))
}

/// Lower-case MySQL base type: `bigint(20) unsigned` → `bigint`.
pub(super) fn my_base(ct: &str) -> String {
    ct.to_ascii_lowercase().split(['(', ' ']).next().unwrap_or("").to_string()
}

/// Numbers in the first parentheses of a MySQL type (not for enum/set).
pub(super) fn my_mods(ct: &str) -> Vec<u32> {
    let base = my_base(ct);
    if base == "enum" || base == "set" {
        return Vec::new();
    }
    paren_numbers(ct)
}

pub(super) fn my_len(ct: &str) -> Option<u32> {
    my_mods(ct).first().copied()
}

fn paren_numbers(ty: &str) -> Vec<u32> {
    let (Some(a), Some(b)) = (ty.find('('), ty.find(')')) else { return Vec::new() };
    if a >= b {
        return Vec::new();
    }
    ty[a + 1..b].split(',').filter_map(|n| n.trim().parse().ok()).collect()
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
