//! `tandem quarantine list|retry|drop`: the changes a destination rejected.
//!
//! A rejected change lives in the `quarantine` table of the database that
//! rejected it: ids are `pg:N` (Postgres rejected a MySQL change) and `my:N`
//! (MySQL rejected a Postgres change). `retry` applies the stored change again
//! through the normal applier (field merge, origin tags) and removes it in the
//! same transaction; `drop` discards it. An entry holding a source value with
//! no canonical form (a MySQL zero date, a Postgres infinity) is refused by
//! `retry` before any destination is touched, and stays.

use crate::apply::quarantine::change_from_json;
use crate::config::Config;
use crate::sql::pg::ident as pg_ident;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use std::sync::Arc;

/// One quarantined change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QuarantineEntry {
    pub id: String,
    pub direction: String,
    pub pair: String,
    pub key: String,
    pub column: Option<String>,
    pub value: Option<String>,
    pub error: String,
    pub position: String,
    pub created_at: String,
    #[serde(skip)]
    pub change_json: String,
}

pub async fn list(cfg: &Config) -> Result<Vec<QuarantineEntry>> {
    let mut out = Vec::new();
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let sql = format!(
        "SELECT id, direction, pair, key_json, column_name, value_text, error, position, created_at::text, change_json
         FROM {}.quarantine WHERE pipeline = $1 ORDER BY id",
        pg_ident(&cfg.state_schema)
    );
    for r in pg.query(&sql, &[&cfg.pipeline]).await? {
        out.push(QuarantineEntry {
            id: format!("pg:{}", r.get::<_, i64>(0)),
            direction: r.get(1),
            pair: r.get(2),
            key: r.get(3),
            column: r.get(4),
            value: r.get(5),
            error: r.get(6),
            position: r.get(7),
            created_at: r.get(8),
            change_json: r.get(9),
        });
    }
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let sql = format!(
        "SELECT id, direction, pair, key_json, column_name, value_text, error, position, CAST(created_at AS CHAR), change_json
         FROM `{}`.quarantine WHERE pipeline = ? ORDER BY id",
        cfg.state_schema
    );
    let rows: Vec<mysql_async::Row> = my.exec(sql, (&cfg.pipeline,)).await?;
    for r in rows {
        let s = |i: usize| r.get::<Option<String>, usize>(i).flatten();
        out.push(QuarantineEntry {
            id: format!("my:{}", r.get::<u64, usize>(0).unwrap_or(0)),
            direction: s(1).unwrap_or_default(),
            pair: s(2).unwrap_or_default(),
            key: s(3).unwrap_or_default(),
            column: s(4),
            value: s(5),
            error: s(6).unwrap_or_default(),
            position: s(7).unwrap_or_default(),
            created_at: s(8).unwrap_or_default(),
            change_json: s(9).unwrap_or_default(),
        });
    }
    let _ = my.disconnect().await;
    Ok(out)
}

fn parse_id(id: &str) -> Result<(&str, i64)> {
    let (place, n) = id.split_once(':').ok_or_else(|| Error::Request(format!("quarantine id {id:?} must look like pg:3 or my:7")))?;
    let n: i64 = n.parse().map_err(|_| Error::Request(format!("quarantine id {id:?}: bad number")))?;
    match place {
        "pg" | "my" => Ok((place, n)),
        _ => Err(Error::Request(format!("quarantine id {id:?} must start with pg: or my:"))),
    }
}

/// Applies a quarantined change again; `Ok(None)` when applied, `Ok(Some(error))` when still rejected.
pub async fn retry(cfg: &Config, id: &str) -> Result<Option<String>> {
    let (place, n) = parse_id(id)?;
    let entry = list(cfg).await?.into_iter().find(|e| e.id == format!("{place}:{n}")).ok_or_else(|| Error::Request(format!("no quarantined change {id}")))?;
    let schemas = crate::run::load_schemas(cfg).await?;
    let change = change_from_json(&entry.change_json, &schemas).ok_or_else(|| Error::Request(format!("{id}: stored change cannot be read (pair {} still configured?)", entry.pair)))?;
    // A source value with no canonical form (a MySQL zero date under
    // zero_dates = "quarantine", a Postgres infinity) can never be applied as
    // stored: say so without touching the destination.
    if let Some(e) = crate::apply::screen::first_held(crate::apply::screen::screen(std::slice::from_ref(&change), &cfg.pairs, &schemas)) {
        return Ok(Some(format!("{e}; this value cannot be replicated as it is: fix the row at the source, or drop this entry")));
    }
    if place == "pg" {
        let mut applier = crate::apply::postgres::PostgresApplier::connect(cfg, Arc::clone(&schemas)).await?;
        applier.retry_quarantined(&change, n).await
    } else {
        let mut applier = crate::apply::mysql::MysqlApplier::connect(cfg, Arc::clone(&schemas)).await?;
        applier.retry_quarantined(&change, n).await
    }
}

pub async fn drop_entry(cfg: &Config, id: &str) -> Result<bool> {
    let (place, n) = parse_id(id)?;
    if place == "pg" {
        let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        let sql = format!("DELETE FROM {}.quarantine WHERE pipeline = $1 AND id = $2", pg_ident(&cfg.state_schema));
        Ok(pg.execute(&sql, &[&cfg.pipeline, &n]).await? == 1)
    } else {
        let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        my.exec_drop(format!("DELETE FROM `{}`.quarantine WHERE pipeline = ? AND id = ?", cfg.state_schema), (&cfg.pipeline, n)).await?;
        Ok(my.affected_rows() == 1)
    }
}

/// The text listing: one line per entry (`list`'s order), or one line
/// saying the quarantine is empty.
pub fn render_text(entries: &[QuarantineEntry]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if entries.is_empty() {
        let _ = writeln!(out, "quarantine is empty");
    }
    for e in entries {
        let _ = writeln!(
            out,
            "{:<7} {} pair {} key {} column {} value {}: {} (position {}, {})",
            e.id,
            e.direction,
            e.pair,
            e.key,
            e.column.as_deref().unwrap_or("?"),
            e.value.as_deref().unwrap_or("?"),
            e.error,
            e.position,
            e.created_at
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_each_entry_on_one_line_or_says_it_is_empty() {
        assert_eq!(render_text(&[]), "quarantine is empty\n");
        let e = QuarantineEntry {
            id: "my:4".into(),
            direction: "postgres_to_mysql".into(),
            pair: "items".into(),
            key: "{\"id\":\"1\"}".into(),
            column: Some("d".into()),
            value: None,
            error: "out of range".into(),
            position: "0/16B3748".into(),
            created_at: "2026-12-01 10:00:00".into(),
            change_json: String::new(),
        };
        assert_eq!(
            render_text(&[e]),
            "my:4    postgres_to_mysql pair items key {\"id\":\"1\"} column d value ?: out of range (position 0/16B3748, 2026-12-01 10:00:00)\n"
        );
    }
}
