//! The canonical text of a row, rendered by each server in its own SQL, and
//! the statements built on it: the key-range hashes and row reads the drift
//! check runs on both sides, and the key-ordered chunk reads of backfill.
//! Pure: it builds SQL text and parameters, it runs nothing.
//!
//! Invariant: for equal values the two servers produce byte-identical text,
//! so hashes computed server-side agree. Per kind:
//! - NULL is `N,`; any other value is `<char length>:<text>,` (so NULL ≠ '' and
//!   `'a','bc'` ≠ `'ab','c'`).
//! - booleans / integers: decimal digits (`tinyint(1)` as its number, so a 2
//!   in MySQL differs from `true`).
//! - decimals: the value as printed, trailing fraction zeros and a bare `.`
//!   removed (`10.50` and `10.5` are equal, `-0.00` is `0`).
//! - floats (float4 as its exact double): the shortest round-trip digits both
//!   servers print (Postgres with `extra_float_digits > 0`), re-laid out as
//!   `[-]d[.ddd]e<exp>` because Postgres writes `1e+15`/`1e-07` where MariaDB
//!   writes `1e15`/`0.0000001`.
//! - timestamps `YYYY-MM-DD HH:MM:SS.ffffff` in UTC (both sessions are UTC),
//!   dates `YYYY-MM-DD`, times `HH:MM:SS.ffffff`, bytes lower-case hex.
//! - sets of labels (MySQL SET, Postgres text[]): the members joined by
//!   commas (`array_to_string` in Postgres, a NULL member as `\N`; an array
//!   member holding a comma reads like two members, but such an array is
//!   never replicated: it has no SET value and is quarantined).
//! - JSON: Postgres `::jsonb::text`, MariaDB `JSON_LOOSE(JSON_COMPACT(..))`
//!   (same spacing; key order and number spelling may still differ, e.g. for
//!   documents written in MariaDB). Unequal JSON text is therefore confirmed
//!   client-side on the few rows that are fetched: equal documents are not
//!   reported.
//!
//! Keys are compared and ordered in binary order on both sides (`COLLATE "C"`,
//! `CAST(.. AS BINARY)`), numbers and times natively. Values travel as text
//! parameters cast back to the column's type on the server; nothing here
//! interpolates data into SQL.

use crate::sql::pg::ident as pg_ident;
use crate::schema::{ColumnSchema, PairSchema, ValueKind};

/// Which SQL dialect a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mariadb,
    Mysql,
}

/// Canonical key values, in key order.
pub type KeyText = Vec<String>;

/// A key range `(lo, hi]`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub lo: Option<KeyText>,
    pub hi: Option<KeyText>,
}

/// Collects statement parameters in the order their placeholders appear.
#[derive(Debug)]
pub struct Binder {
    dialect: Dialect,
    pub values: Vec<String>,
}

impl Binder {
    pub fn new(dialect: Dialect) -> Self {
        Binder { dialect, values: Vec::new() }
    }
    pub fn ph(&mut self, v: &str) -> String {
        self.values.push(v.to_string());
        match self.dialect {
            Dialect::Postgres => format!("${}", self.values.len()),
            _ => "?".to_string(),
        }
    }
}

pub fn my_ident(s: &str) -> String {
    crate::sql::my::ident(s)
}


/// The Postgres kind of a column. `schema::pg_kind` does not know type names
/// with a modifier inside (`timestamp(6) without time zone`), so those are
/// looked up again without it.
pub fn pg_kind_of(c: &ColumnSchema) -> ValueKind {
    match c.pg_kind {
        ValueKind::Unsupported => crate::schema::pg_kind(&crate::sql::pg::base_type(&c.pg_type)),
        k => k,
    }
}

fn kind(d: Dialect, c: &ColumnSchema) -> ValueKind {
    match d {
        Dialect::Postgres => pg_kind_of(c),
        _ => c.my_kind,
    }
}

fn ident(d: Dialect, c: &ColumnSchema) -> String {
    match d {
        Dialect::Postgres => pg_ident(&c.pg_name),
        _ => my_ident(&c.my_name),
    }
}

/// `x` with trailing fraction zeros and a bare point removed; `-0` → `0`.
fn norm_decimal(t: &str) -> String {
    let trimmed = format!("(CASE WHEN POSITION('.' IN {t}) > 0 THEN TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {t})) ELSE {t} END)");
    format!("(CASE WHEN {trimmed} = '-0' THEN '0' ELSE {trimmed} END)")
}

/// Re-lays out a float's shortest digits as `[-]d[.ddd]e<exp>` (see module doc).
fn norm_float(d: Dialect, s: &str) -> String {
    let int = |x: &str| match d {
        Dialect::Postgres => format!("CAST({x} AS integer)"),
        _ => format!("CAST({x} AS SIGNED)"),
    };
    let neg = format!("(SUBSTRING({s} FROM 1 FOR 1) = '-')");
    let u = format!("(CASE WHEN {neg} THEN SUBSTRING({s} FROM 2) ELSE {s} END)");
    let sign = format!("(CASE WHEN {neg} THEN '-' ELSE '' END)");
    let pe = format!("POSITION('e' IN {u})");
    let sci_digits = format!("TRIM(TRAILING '0' FROM REPLACE(SUBSTRING({u} FROM 1 FOR {pe} - 1), '.', ''))");
    let sci_exp = int(&format!("SUBSTRING({u} FROM {pe} + 1)"));
    let pd = format!("POSITION('.' IN {u})");
    let ip = format!("(CASE WHEN {pd} > 0 THEN SUBSTRING({u} FROM 1 FOR {pd} - 1) ELSE {u} END)");
    let fp = format!("(CASE WHEN {pd} > 0 THEN SUBSTRING({u} FROM {pd} + 1) ELSE '' END)");
    let ipz = format!("TRIM(LEADING '0' FROM {ip})");
    let fpz = format!("TRIM(LEADING '0' FROM {fp})");
    let big_digits = format!("TRIM(TRAILING '0' FROM CONCAT({ipz}, {fp}))");
    let big_exp = format!("(CHAR_LENGTH({ipz}) - 1)");
    let small_digits = format!("TRIM(TRAILING '0' FROM {fpz})");
    let small_exp = format!("(CHAR_LENGTH({fpz}) - CHAR_LENGTH({fp}) - 1)");
    let render = |digits: &str, exp: &str| {
        format!(
            "CONCAT({sign}, SUBSTRING({digits} FROM 1 FOR 1), \
             CASE WHEN CHAR_LENGTH({digits}) > 1 THEN CONCAT('.', SUBSTRING({digits} FROM 2)) ELSE '' END, 'e', {exp})"
        )
    };
    format!(
        "(CASE WHEN {s} IS NULL THEN NULL WHEN {u} IN ('NaN', 'Infinity', 'inf', 'nan') THEN {s} \
         WHEN {pe} > 0 THEN {} WHEN {ipz} <> '' THEN {} WHEN {small_digits} <> '' THEN {} ELSE '0' END)",
        render(&sci_digits, &sci_exp),
        render(&big_digits, &big_exp),
        render(&small_digits, &small_exp),
    )
}

/// The canonical text of one column on one side (NULL stays NULL).
pub fn text_expr(d: Dialect, c: &ColumnSchema) -> String {
    let col = ident(d, c);
    match d {
        Dialect::Postgres => match pg_kind_of(c) {
            ValueKind::Bool => format!("({col})::int::text"),
            ValueKind::Int | ValueKind::UInt => format!("({col})::text"),
            ValueKind::Decimal => norm_decimal(&format!("({col})::text")),
            ValueKind::Float => norm_float(d, &format!("(({col})::float8::text)")),
            ValueKind::Bytes => format!("encode({col}, 'hex')"),
            ValueKind::Date => format!("to_char({col}, 'YYYY-MM-DD')"),
            ValueKind::Time => format!("to_char({col}, 'HH24:MI:SS.US')"),
            ValueKind::Timestamp | ValueKind::TimestampTz => format!("to_char({col}, 'YYYY-MM-DD HH24:MI:SS.US')"),
            ValueKind::Json => format!("({col})::jsonb::text"),
            ValueKind::Set => format!("array_to_string({col}, ',', '\\N')"),
            ValueKind::Text | ValueKind::Uuid | ValueKind::Enum | ValueKind::Unsupported => format!("({col})::text"),
        },
        Dialect::Mariadb | Dialect::Mysql => match c.my_kind {
            // YEAR prints 0 as `0000`: its number is what Postgres holds.
            ValueKind::Int if c.my_type.to_ascii_lowercase().starts_with("year") => format!("CAST(CAST({col} AS UNSIGNED) AS CHAR)"),
            ValueKind::Bool | ValueKind::Int | ValueKind::UInt => format!("CAST({col} AS CHAR)"),
            ValueKind::Decimal => norm_decimal(&format!("CAST({col} AS CHAR)")),
            ValueKind::Float => {
                let t = if c.my_type.to_ascii_lowercase().starts_with("float") {
                    format!("CAST(CAST({col} AS DOUBLE) AS CHAR)")
                } else {
                    format!("CAST({col} AS CHAR)")
                };
                norm_float(d, &format!("({t})"))
            }
            ValueKind::Bytes => format!("LOWER(HEX({col}))"),
            ValueKind::Date => format!("DATE_FORMAT({col}, '%Y-%m-%d')"),
            ValueKind::Time => format!("TIME_FORMAT({col}, '%H:%i:%s.%f')"),
            ValueKind::Timestamp | ValueKind::TimestampTz => format!("DATE_FORMAT({col}, '%Y-%m-%d %H:%i:%s.%f')"),
            ValueKind::Json if d == Dialect::Mariadb => format!("JSON_LOOSE(JSON_COMPACT({col}))"),
            ValueKind::Json => format!("CAST({col} AS CHAR)"),
            ValueKind::Uuid => format!("LOWER(CONVERT({col} USING utf8mb4))"),
            ValueKind::Text | ValueKind::Enum | ValueKind::Set | ValueKind::Unsupported => format!("CONVERT({col} USING utf8mb4)"),
        },
    }
}

/// A parameter converted to the column's type, for equality and for writes.
pub fn value_param(d: Dialect, c: &ColumnSchema, ph: &str) -> String {
    match d {
        Dialect::Postgres => match pg_kind_of(c) {
            ValueKind::Bytes => format!("decode({ph}::text, 'hex')"),
            ValueKind::Text => format!("{ph}::text"),
            ValueKind::Set => format!("string_to_array({ph}::text, ',')::{}", crate::sql::pg::cast_type(&c.pg_type)),
            _ => format!("{ph}::text::{}", crate::sql::pg::cast_type(&c.pg_type)),
        },
        _ => match c.my_kind {
            ValueKind::Bool | ValueKind::Int => format!("CAST({ph} AS SIGNED)"),
            ValueKind::UInt => format!("CAST({ph} AS UNSIGNED)"),
            ValueKind::Decimal => format!("CAST({ph} AS DECIMAL(65,30))"),
            ValueKind::Float => format!("CAST({ph} AS DOUBLE)"),
            ValueKind::Date => format!("CAST({ph} AS DATE)"),
            ValueKind::Time => format!("CAST({ph} AS TIME(6))"),
            ValueKind::Timestamp | ValueKind::TimestampTz => format!("CAST({ph} AS DATETIME(6))"),
            ValueKind::Bytes => format!("UNHEX({ph})"),
            _ => ph.to_string(),
        },
    }
}

/// One key column: how to order it and how to compare it with a parameter.
#[derive(Debug, Clone)]
struct KeyCol {
    dialect: Dialect,
    column: ColumnSchema,
    /// Expression ordered in the shared (binary / numeric) order.
    order: String,
    /// The plain column, for index-friendly equality.
    eq: String,
}

impl KeyCol {
    fn new(d: Dialect, c: &ColumnSchema) -> Result<KeyCol, String> {
        let col = ident(d, c);
        let order = match (d, kind(d, c)) {
            (_, ValueKind::Json) => return Err(format!("key column {} is JSON: cannot order it", c.name)),
            (_, ValueKind::Set) => return Err(format!("key column {} is a set of labels: cannot order it", c.name)),
            (Dialect::Postgres, ValueKind::Text | ValueKind::Enum | ValueKind::Unsupported) => format!("(({col})::text COLLATE \"C\")"),
            (Dialect::Postgres, _) => col.clone(),
            (_, ValueKind::Text | ValueKind::Enum | ValueKind::Unsupported) => format!("CAST(CONVERT({col} USING utf8mb4) AS BINARY)"),
            (_, ValueKind::Uuid) => format!("CAST(LOWER(CONVERT({col} USING utf8mb4)) AS BINARY)"),
            (_, _) => col.clone(),
        };
        Ok(KeyCol { dialect: d, column: c.clone(), order, eq: col })
    }

    /// A parameter in the ordering domain of `order`.
    fn cmp_param(&self, b: &mut Binder, v: &str) -> String {
        let ph = b.ph(v);
        match (self.dialect, kind(self.dialect, &self.column)) {
            (Dialect::Postgres, ValueKind::Text | ValueKind::Enum | ValueKind::Unsupported) => format!("({ph}::text COLLATE \"C\")"),
            (Dialect::Postgres, _) => value_param(self.dialect, &self.column, &ph),
            (_, ValueKind::Text | ValueKind::Enum | ValueKind::Unsupported | ValueKind::Uuid) => format!("CAST({ph} AS BINARY)"),
            _ => value_param(self.dialect, &self.column, &ph),
        }
    }
}

/// Everything check and backfill need to query one side of one pair.
#[derive(Debug, Clone)]
pub struct SideSql {
    pub dialect: Dialect,
    pub table: String,
    /// Canonical text per pair column, in `PairSchema::columns` order.
    pub texts: Vec<String>,
    keys: Vec<KeyCol>,
    /// md5 hex of the canonical row text.
    hash: String,
}

impl SideSql {
    pub fn new(d: Dialect, schema: &PairSchema) -> Result<SideSql, String> {
        let table = match d {
            Dialect::Postgres => format!("{}.{}", pg_ident(&schema.pg_table.schema), pg_ident(&schema.pg_table.name)),
            _ => format!("{}.{}", my_ident(&schema.my_table.schema), my_ident(&schema.my_table.name)),
        };
        if schema.key.is_empty() {
            return Err("the pair has no key".to_string());
        }
        let texts: Vec<String> = schema.columns.iter().map(|c| text_expr(d, c)).collect();
        let keys = schema.key.iter().map(|&i| KeyCol::new(d, &schema.columns[i])).collect::<Result<Vec<_>, _>>()?;
        let items: Vec<String> = texts
            .iter()
            .map(|t| format!("CASE WHEN {t} IS NULL THEN 'N,' ELSE CONCAT(CHAR_LENGTH({t}), ':', {t}, ',') END"))
            .collect();
        // Postgres functions take at most 100 arguments: nest in groups.
        let row = items.chunks(50).map(|g| format!("CONCAT({})", g.join(", "))).collect::<Vec<_>>();
        let row = if row.len() == 1 { row.concat() } else { format!("CONCAT({})", row.join(", ")) };
        let hash = match d {
            Dialect::Postgres => format!("md5(convert_to({row}, 'UTF8'))"),
            _ => format!("MD5(CONVERT({row} USING utf8mb4))"),
        };
        Ok(SideSql { dialect: d, table, texts, keys, hash })
    }

    fn key_texts(&self, schema_key: &[usize]) -> Vec<String> {
        schema_key.iter().map(|&i| self.texts[i].clone()).collect()
    }

    /// The 60-bit integer summed per range.
    fn hash_part(&self) -> String {
        match self.dialect {
            Dialect::Postgres => format!("('x' || substr({}, 1, 15))::bit(60)::bigint", self.hash),
            _ => format!("CAST(CONV(SUBSTRING({} FROM 1 FOR 15), 16, 10) AS UNSIGNED)", self.hash),
        }
    }

    fn as_text(&self, expr: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("({expr})::text"),
            _ => format!("CAST({expr} AS CHAR)"),
        }
    }

    /// Lexicographic comparison of the key with `vals`: `strict` for the
    /// leading columns (`>` or `<`), `last` for the final one (`>` or `<=`).
    fn lex(&self, b: &mut Binder, vals: &[String], strict: &str, last: &str) -> String {
        let n = self.keys.len();
        let mut terms = Vec::with_capacity(n);
        for i in 0..n {
            let mut conj = Vec::with_capacity(i + 1);
            for (kc, v) in self.keys.iter().zip(vals).take(i) {
                let p = kc.cmp_param(b, v);
                conj.push(format!("{} = {p}", kc.order));
            }
            let op = if i + 1 == n { last } else { strict };
            let p = self.keys[i].cmp_param(b, &vals[i]);
            conj.push(format!("{} {op} {p}", self.keys[i].order));
            terms.push(format!("({})", conj.join(" AND ")));
        }
        format!("({})", terms.join(" OR "))
    }

    fn range_where(&self, b: &mut Binder, r: &KeyRange) -> String {
        let mut conds = Vec::new();
        if let Some(lo) = &r.lo {
            conds.push(self.lex(b, lo, ">", ">"));
        }
        if let Some(hi) = &r.hi {
            conds.push(self.lex(b, hi, "<", "<="));
        }
        if conds.is_empty() {
            "1 = 1".to_string()
        } else {
            conds.join(" AND ")
        }
    }

    fn order_by(&self) -> String {
        self.keys.iter().map(|k| k.order.clone()).collect::<Vec<_>>().join(", ")
    }

    /// Every `step`-th key of the range in key order (the split points).
    pub fn splits_sql(&self, b: &mut Binder, key: &[usize], r: &KeyRange, step: u64) -> String {
        let inner: Vec<String> = self.key_texts(key).iter().enumerate().map(|(i, t)| format!("{t} AS k{i}")).collect();
        let outer: Vec<String> = (0..key.len()).map(|i| format!("x.k{i}")).collect();
        let cond = self.range_where(b, r);
        format!(
            "SELECT {} FROM (SELECT {}, ROW_NUMBER() OVER (ORDER BY {}) AS tandem_rn FROM {} WHERE {cond}) x \
             WHERE MOD(x.tandem_rn, {step}) = 0 ORDER BY x.tandem_rn",
            outer.join(", "),
            inner.join(", "),
            self.order_by(),
            self.table
        )
    }

    /// `(bucket, count, hash sum)` of the range split at `splits` (bucket i =
    /// keys up to and including `splits[i]`; the last bucket is the rest).
    pub fn summaries_sql(&self, b: &mut Binder, r: &KeyRange, splits: &[KeyText]) -> String {
        let bucket = if splits.is_empty() {
            "0".to_string()
        } else {
            let mut case = String::from("CASE");
            for (i, s) in splits.iter().enumerate() {
                let le = self.lex(b, s, "<", "<=");
                case.push_str(&format!(" WHEN {le} THEN {i}"));
            }
            case.push_str(&format!(" ELSE {} END", splits.len()));
            case
        };
        let cond = self.range_where(b, r);
        format!(
            "SELECT {}, {}, {} FROM (SELECT {bucket} AS b, {} AS h FROM {} WHERE {cond}) x GROUP BY x.b",
            self.as_text("x.b"),
            self.as_text("COUNT(*)"),
            self.as_text("COALESCE(SUM(x.h), 0)"),
            self.hash_part(),
            self.table
        )
    }

    /// `(key..., 16 hex digits of the row hash)` for every row of the range.
    pub fn row_hashes_sql(&self, b: &mut Binder, key: &[usize], r: &KeyRange) -> String {
        let short = match self.dialect {
            Dialect::Postgres => format!("substr({}, 1, 16)", self.hash),
            _ => format!("SUBSTRING({} FROM 1 FOR 16)", self.hash),
        };
        let cond = self.range_where(b, r);
        format!("SELECT {}, {short} FROM {} WHERE {cond}", self.key_texts(key).join(", "), self.table)
    }

    /// Every column's text of the next `limit` rows after `after` (from the
    /// start when `None`), in key order: one backfill chunk.
    pub fn chunk_sql(&self, b: &mut Binder, after: Option<&KeyText>, limit: u64) -> String {
        let cond = self.range_where(b, &KeyRange { lo: after.cloned(), hi: None });
        // Aliased: an output column named like a key column would be what ORDER BY sorts by.
        let cols: Vec<String> = self.texts.iter().enumerate().map(|(i, t)| format!("{t} AS tandem_c{i}")).collect();
        format!("SELECT {} FROM {} WHERE {cond} ORDER BY {} LIMIT {limit}", cols.join(", "), self.table, self.order_by())
    }

    /// The row count, as text.
    pub fn count_sql(&self) -> String {
        format!("SELECT {} FROM {}", self.as_text("COUNT(*)"), self.table)
    }

    /// `(key..., every column's text)` of the rows with these keys.
    pub fn rows_sql(&self, b: &mut Binder, key: &[usize], keys: &[KeyText]) -> String {
        let cond = if self.keys.len() == 1 {
            let ps: Vec<String> =
                keys.iter().map(|k| value_param(self.dialect, &self.keys[0].column, &b.ph(&k[0]))).collect();
            format!("{} IN ({})", self.keys[0].eq, ps.join(", "))
        } else {
            let terms: Vec<String> = keys
                .iter()
                .map(|k| {
                    let conj: Vec<String> = self
                        .keys
                        .iter()
                        .zip(k)
                        .map(|(kc, v)| format!("{} = {}", kc.eq, value_param(self.dialect, &kc.column, &b.ph(v))))
                        .collect();
                    format!("({})", conj.join(" AND "))
                })
                .collect();
            terms.join(" OR ")
        };
        format!("SELECT {}, {} FROM {} WHERE {cond}", self.key_texts(key).join(", "), self.texts.join(", "), self.table)
    }

    /// `WHERE` clause matching one key exactly (for repairs), binding its values.
    pub fn key_match(&self, b: &mut Binder, key: &[String]) -> String {
        self.keys
            .iter()
            .zip(key)
            .map(|(kc, v)| format!("{} = {}", kc.eq, value_param(self.dialect, &kc.column, &b.ph(v))))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `column i still has the canonical text v` (NULL-safe, byte-exact), for
    /// writes that must not overwrite a value changed since it was read.
    pub fn still(&self, b: &mut Binder, i: usize, v: Option<&str>) -> String {
        let t = &self.texts[i];
        match (self.dialect, v) {
            (_, None) => format!("{t} IS NULL"),
            (Dialect::Postgres, Some(v)) => format!("{t} = {}::text", b.ph(v)),
            (_, Some(v)) => format!("CAST({t} AS BINARY) = CAST({} AS BINARY)", b.ph(v)),
        }
    }

    /// A bound parameter for writing `v` into column `c`.
    pub fn write_param(&self, b: &mut Binder, c: &ColumnSchema, v: Option<&str>) -> String {
        match v {
            None => "NULL".to_string(),
            Some(v) => value_param(self.dialect, c, &b.ph(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, pg: &str, my: &str) -> ColumnSchema {
        ColumnSchema::for_tests(name, crate::config::Owner::Both, pg, my)
    }

    fn schema(cols: Vec<ColumnSchema>, key: Vec<usize>) -> PairSchema {
        let t = |s: &str| crate::config::TableName { schema: "s".into(), name: s.into() };
        PairSchema { pair: 0, name: "p".into(), pg_table: t("t"), my_table: t("t"), columns: cols, key }
    }

    #[test]
    fn composite_ranges_bind_in_placeholder_order() {
        let s = schema(vec![col("a", "text", "varchar(10)"), col("b", "integer", "int(11)")], vec![0, 1]);
        let pg = SideSql::new(Dialect::Postgres, &s).unwrap();
        let mut b = Binder::new(Dialect::Postgres);
        let r = KeyRange { lo: Some(vec!["x".into(), "1".into()]), hi: None };
        let sql = pg.row_hashes_sql(&mut b, &s.key, &r);
        assert!(sql.contains(r#"(("a")::text COLLATE "C") > ($1::text COLLATE "C")"#), "{sql}");
        assert!(sql.contains(r#""b" > $3::text::integer"#), "{sql}");
        assert_eq!(b.values, vec!["x", "x", "1"]);
        let my = SideSql::new(Dialect::Mariadb, &s).unwrap();
        let mut b = Binder::new(Dialect::Mariadb);
        let sql = my.summaries_sql(&mut b, &r, &[vec!["y".into(), "2".into()]]);
        assert_eq!(sql.matches('?').count(), b.values.len());
        assert_eq!(b.values, vec!["y", "y", "2", "x", "x", "1"]);
    }

    #[test]
    fn json_keys_are_refused_and_types_lose_modifiers() {
        let s = schema(vec![col("j", "jsonb", "json")], vec![0]);
        assert!(SideSql::new(Dialect::Postgres, &s).is_err());
        assert_eq!(crate::sql::pg::cast_type("timestamp(6) without time zone"), "timestamp without time zone");
        assert_eq!(crate::sql::pg::cast_type("numeric(12,2)"), "numeric");
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn backfill_chunks_are_read_in_key_order_after_the_last_key() {
        let c = ColumnSchema::for_tests("id", crate::config::Owner::Both, "bigint", "bigint(20)");
        let schema = PairSchema {
            pair: 0,
            name: "t".into(),
            pg_table: crate::config::TableName { schema: "public".into(), name: "t".into() },
            my_table: crate::config::TableName { schema: "db".into(), name: "t".into() },
            columns: vec![c],
            key: vec![0],
        };
        let side = SideSql::new(Dialect::Postgres, &schema).unwrap();
        let mut b = Binder::new(Dialect::Postgres);
        let sql = side.chunk_sql(&mut b, Some(&vec!["42".to_string()]), 10);
        assert_eq!(sql, "SELECT (\"id\")::text AS tandem_c0 FROM \"public\".\"t\" WHERE ((\"id\" > $1::text::bigint)) ORDER BY \"id\" LIMIT 10");
        assert_eq!(b.values, vec!["42".to_string()]);
    }
}
