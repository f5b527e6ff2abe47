//! Key spaces of paired tables: which key columns each side generates
//! (Postgres identity/serial sequences, MySQL AUTO_INCREMENT), the values
//! each generator will produce next, and whether they can meet — what
//! `validate` reports (`ops::validate::keys`) and `sequences sync` moves.
//!
//! A Postgres sequence produces `next, next + increment, …` up to its
//! MAXVALUE; MySQL produces the values `≡ auto_increment_offset (mod
//! auto_increment_increment)` from the table's AUTO_INCREMENT counter up
//! (the offset is ignored when it exceeds the increment, as MySQL does).
//! Two generators collide when their progressions share a value both will
//! still reach (`first_common`). Pure except for `read`, which only reads.

use crate::config::{Config, PairConfig};
use crate::sql::{my, pg};
use crate::Result;
use crate::state::mysql::text_at as my_text;
use mysql_async::prelude::Queryable;

/// A Postgres sequence behind a key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgGenerator {
    /// The sequence, schema-qualified and quoted where needed (`public.items_id_seq`).
    pub sequence: String,
    pub increment: i128,
    pub min: i128,
    pub max: i128,
    /// What `nextval` returns next.
    pub next: i128,
}

/// A MySQL AUTO_INCREMENT key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyGenerator {
    /// The table's AUTO_INCREMENT counter.
    pub counter: i128,
    pub increment: i128,
    pub offset: i128,
    /// The column type's largest value.
    pub max: i128,
}

impl MyGenerator {
    /// The residue of the values MySQL generates, modulo `increment`.
    fn residue(&self) -> i128 {
        let offset = if self.offset > self.increment { 1 } else { self.offset };
        offset.rem_euclid(self.increment.max(1))
    }

    /// The next value MySQL generates: the first of its series at or above the counter.
    pub fn next(&self) -> i128 {
        first_at_or_above(self.residue(), self.increment.max(1), self.counter.max(1))
    }
}

/// One key column of a pair, with what generates it on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub pair: String,
    /// Column names on each side.
    pub pg_column: String,
    pub my_column: String,
    /// `"schema"."table"` / `` `db`.`table` ``.
    pub pg_table: String,
    pub my_table: String,
    pub pg: Option<PgGenerator>,
    pub my: Option<MyGenerator>,
}

/// The smallest `v ≥ from` with `v ≡ residue (mod step)`.
fn first_at_or_above(residue: i128, step: i128, from: i128) -> i128 {
    from + (residue - from).rem_euclid(step)
}

/// The first value both generators will still produce, if any (both below
/// their maxima). `None`: their ranges or residues are disjoint. A
/// descending Postgres sequence is compared over what it still produces too.
pub fn first_common(pg: &PgGenerator, my: &MyGenerator) -> Option<i128> {
    let (a, b) = (pg.increment.abs().max(1), my.increment.max(1));
    let (lo, hi) = if pg.increment > 0 { (pg.next.max(my.next()), pg.max.min(my.max)) } else { (my.next().max(pg.min), pg.next.min(my.max)) };
    if lo > hi {
        return None;
    }
    // Values of the sequence are ≡ next (mod a); of MySQL ≡ residue (mod b).
    let mut x = first_at_or_above(pg.next.rem_euclid(a), a, lo);
    let period = b / gcd(a, b);
    for _ in 0..period.min(10_000_000) {
        if x > hi {
            return None;
        }
        if (x - my.residue()).rem_euclid(b) == 0 {
            return Some(x);
        }
        x += a;
    }
    None
}

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// The value `setval(seq, v, false)` should set so that the sequence next
/// produces the first value of its progression above `highest`; `None` when
/// it already will, or when that value is past its MAXVALUE.
pub fn pg_sync_target(g: &PgGenerator, highest: i128) -> Option<i128> {
    if g.increment <= 0 || g.next > highest {
        return None;
    }
    let v = first_at_or_above(g.next.rem_euclid(g.increment), g.increment, highest + 1);
    (v <= g.max).then_some(v)
}

/// The largest value of a MySQL integer column type (`COLUMN_TYPE`).
fn my_type_max(column_type: &str) -> i128 {
    let t = column_type.to_ascii_lowercase();
    let unsigned = t.contains("unsigned");
    let bits = match t.split(['(', ' ']).next().unwrap_or_default() {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    };
    if unsigned {
        (1i128 << bits) - 1
    } else {
        (1i128 << (bits - 1)) - 1
    }
}

/// Text of an integer-ish value as i128.
fn int(text: Option<String>) -> Option<i128> {
    text.and_then(|t| t.trim().parse::<i128>().ok())
}


/// The pair's key columns on the Postgres side: `key` from the config, else the primary key.
async fn pg_key(pgc: &tokio_postgres::Client, pair: &PairConfig, table: &str) -> Result<Vec<String>> {
    if let Some(key) = &pair.key {
        return Ok(key.iter().map(|k| pair.columns.get(k).and_then(|c| c.postgres.clone()).unwrap_or_else(|| k.clone())).collect());
    }
    let rows = pgc
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
}

/// Reads every key column of `pair` and what generates it on each side.
pub async fn read(pgc: &tokio_postgres::Client, myc: &mut mysql_async::Conn, pair: &PairConfig) -> Result<Vec<KeyColumn>> {
    // MySQL 8 caches information_schema.TABLES.AUTO_INCREMENT; MariaDB has no such setting.
    let _ = myc.query_drop("SET SESSION information_schema_stats_expiry = 0").await;
    let globals: Option<(Option<String>, Option<String>)> =
        myc.query_first("SELECT CAST(@@GLOBAL.auto_increment_increment AS CHAR), CAST(@@GLOBAL.auto_increment_offset AS CHAR)").await?;
    let (my_inc, my_off) = globals.map(|(a, b)| (int(a).unwrap_or(1), int(b).unwrap_or(1))).unwrap_or((1, 1));
    let pg_table = pg::qualified(&pair.postgres.schema, &pair.postgres.name);
    let my_table = my::qualified(&pair.mysql.schema, &pair.mysql.name);
    let mut out = Vec::new();
    for pg_column in pg_key(pgc, pair, &pg_table).await? {
        let canonical = pair.canonical_from_postgres(&pg_column);
        let my_column = pair.columns.get(&canonical).and_then(|c| c.mysql.clone()).unwrap_or(canonical);
        let seq = pgc
            .query_opt(
                "SELECT format('%I.%I', n.nspname, c.relname), q.increment_by::text, q.min_value::text, q.max_value::text
                 FROM (SELECT pg_get_serial_sequence($1, $2)::regclass AS seq) s
                 JOIN pg_class c ON c.oid = s.seq JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_sequences q ON q.schemaname = n.nspname AND q.sequencename = c.relname",
                &[&pg_table, &pg_column],
            )
            .await?;
        let pg = match seq {
            Some(r) => {
                let sequence: String = r.try_get(0)?;
                let increment = int(r.try_get(1)?).unwrap_or(1);
                // pg_sequences shows no last_value after setval(…, false): read the sequence itself.
                let state = pgc.query_one(&format!("SELECT last_value::text, is_called FROM {sequence}"), &[]).await?;
                let last = int(state.try_get(0)?).unwrap_or(1);
                let next = if state.try_get::<_, bool>(1)? { last + increment } else { last };
                Some(PgGenerator { sequence, increment, min: int(r.try_get(2)?).unwrap_or(1), max: int(r.try_get(3)?).unwrap_or(i64::MAX as i128), next })
            }
            None => None,
        };
        let row: Option<mysql_async::Row> = myc
            .exec_first(
                "SELECT c.EXTRA, CAST(t.AUTO_INCREMENT AS CHAR), c.COLUMN_TYPE FROM information_schema.COLUMNS c
                 JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
                 WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? AND c.COLUMN_NAME = ?",
                (pair.mysql.schema.as_str(), pair.mysql.name.as_str(), my_column.as_str()),
            )
            .await?;
        let my = row.and_then(|r| {
            let extra = my_text(&r, 0).unwrap_or_default().to_ascii_lowercase();
            extra.contains("auto_increment").then(|| MyGenerator {
                counter: int(my_text(&r, 1)).unwrap_or(1),
                increment: my_inc,
                offset: my_off,
                max: my_type_max(&my_text(&r, 2).unwrap_or_default()),
            })
        });
        out.push(KeyColumn { pair: pair.name.clone(), pg_column, my_column, pg_table: pg_table.clone(), my_table: my_table.clone(), pg, my });
    }
    Ok(out)
}

/// The highest key of `k` on both sides, at most `below` (when given): (postgres, mysql).
pub async fn highest(pgc: &tokio_postgres::Client, myc: &mut mysql_async::Conn, k: &KeyColumn, below: Option<i128>) -> Result<(Option<i128>, Option<i128>)> {
    let (pcol, mcol) = (pg::ident(&k.pg_column), my::ident(&k.my_column));
    let (pw, mw) = match below {
        Some(b) => (format!(" WHERE {pcol} <= {b}"), format!(" WHERE {mcol} <= {b}")),
        None => (String::new(), String::new()),
    };
    let p: Option<String> = pgc.query_one(&format!("SELECT max({pcol})::text FROM {}{pw}", k.pg_table), &[]).await?.try_get(0)?;
    let m: Option<mysql_async::Row> = myc.query_first(format!("SELECT CAST(MAX({mcol}) AS CHAR) FROM {}{mw}", k.my_table)).await?;
    Ok((int(p), int(m.and_then(|r| my_text(&r, 0)))))
}

/// Is a key that `next, next + step, …, max` produces present on either side?
pub async fn taken(pgc: &tokio_postgres::Client, myc: &mut mysql_async::Conn, k: &KeyColumn, next: i128, step: i128, max: i128) -> Result<bool> {
    let (pcol, mcol) = (pg::ident(&k.pg_column), my::ident(&k.my_column));
    let step = step.max(1);
    let p = pgc
        .query_opt(&format!("SELECT 1 FROM {} WHERE {pcol} BETWEEN {next} AND {max} AND mod({pcol} - {next}, {step}) = 0 LIMIT 1", k.pg_table), &[])
        .await?;
    if p.is_some() {
        return Ok(true);
    }
    let m: Option<mysql_async::Row> = myc
        .query_first(format!("SELECT 1 FROM {} WHERE {mcol} BETWEEN {next} AND {max} AND MOD({mcol} - {next}, {step}) = 0 LIMIT 1", k.my_table))
        .await?;
    Ok(m.is_some())
}

/// The pairs `--pair` names (all without it); an unknown name is an error.
pub fn selected<'a>(cfg: &'a Config, only: Option<&str>) -> Result<Vec<&'a PairConfig>> {
    match only {
        None => Ok(cfg.pairs.iter().collect()),
        Some(name) => cfg
            .pairs
            .iter()
            .find(|p| p.name == name)
            .map(|p| vec![p])
            .ok_or_else(|| crate::Error::Request(format!("no pair named {name} in the config"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(next: i128, increment: i128, max: i128) -> PgGenerator {
        PgGenerator { sequence: "s".into(), increment, min: 1, max, next }
    }

    fn ai(counter: i128, increment: i128, offset: i128) -> MyGenerator {
        MyGenerator { counter, increment, offset, max: i64::MAX as i128 }
    }

    #[test]
    fn generators_collide_unless_their_ranges_or_residues_are_disjoint() {
        // Both from 1 by 1: the first value both reach is the larger next.
        assert_eq!(first_common(&seq(4, 1, i64::MAX as i128), &ai(11, 1, 1)), Some(11));
        // Odd and even: never.
        assert_eq!(first_common(&seq(5, 2, i64::MAX as i128), &ai(10, 2, 2)), None);
        // Odd and odd: yes.
        assert_eq!(first_common(&seq(5, 2, i64::MAX as i128), &ai(10, 2, 1)), Some(11));
        // Increments 3 and 2 meet every 6.
        assert_eq!(first_common(&seq(1, 3, i64::MAX as i128), &ai(1, 2, 2)), Some(4));
        // Postgres capped below where MySQL starts: disjoint ranges.
        assert_eq!(first_common(&seq(4, 1, 999_999), &ai(1_000_000, 1, 1)), None);
        assert_eq!(first_common(&seq(4, 1, 1_000_000), &ai(1_000_000, 1, 1)), Some(1_000_000));
        // MySQL ignores an offset above the increment.
        assert_eq!(ai(1, 2, 5).next(), 1);
        assert_eq!(ai(10, 10, 3).next(), 13);
        // A descending sequence meets MySQL's rising values when it is above them.
        assert_eq!(first_common(&seq(100, -1, i64::MAX as i128), &ai(50, 1, 1)), Some(50));
        assert_eq!(first_common(&seq(40, -1, i64::MAX as i128), &ai(50, 1, 1)), None);
    }

    #[test]
    fn a_synced_sequence_next_produces_the_first_value_of_its_progression_above_the_highest_key() {
        assert_eq!(pg_sync_target(&seq(4, 1, 1000), 10), Some(11));
        assert_eq!(pg_sync_target(&seq(5, 2, 1000), 100), Some(101), "stays odd");
        assert_eq!(pg_sync_target(&seq(6, 2, 1000), 100), Some(102), "stays even");
        assert_eq!(pg_sync_target(&seq(12, 1, 1000), 10), None, "already past");
        assert_eq!(pg_sync_target(&seq(4, 1, 10), 10), None, "past its MAXVALUE");
    }

    #[test]
    fn mysql_integer_types_have_their_ranges() {
        assert_eq!(my_type_max("int(11)"), i32::MAX as i128);
        assert_eq!(my_type_max("int(10) unsigned"), u32::MAX as i128);
        assert_eq!(my_type_max("bigint(20) unsigned"), u64::MAX as i128);
        assert_eq!(my_type_max("bigint"), i64::MAX as i128);
        assert_eq!(my_type_max("smallint(6)"), i16::MAX as i128);
    }
}
