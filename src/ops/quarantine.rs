//! `tandem quarantine list|retry|drop`: the changes a destination rejected.
//!
//! A rejected change lives in the `quarantine` table of the database that
//! rejected it: ids are `pg:N` (Postgres rejected a MySQL change) and `my:N`
//! (MySQL rejected a Postgres change). `retry` applies the stored change again
//! through the normal applier (field merge, origin tags) and removes it in the
//! same transaction; `drop` discards it. An entry holding a source value with
//! no canonical form (a MySQL zero date, a Postgres infinity) is refused by
//! `retry` before any destination is touched, and stays.
//!
//! `retry_pair` / `drop_pair` do the same for every entry of one pair, in
//! the order `list` gives (each database's entries oldest first), so the
//! changes of one key are replayed in the order they were rejected; one
//! entry still rejected does not stop the others.

use crate::apply::quarantine::change_from_json;
use crate::config::Config;
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::state::StoredQuarantine;
use crate::{Error, Result};
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

/// The entry of quarantine row `r` stored in the database `prefix` names.
fn entry(prefix: &str, r: StoredQuarantine) -> QuarantineEntry {
    QuarantineEntry {
        id: format!("{prefix}:{}", r.id),
        direction: r.direction,
        pair: r.pair,
        key: r.key_json,
        column: r.column,
        value: r.value,
        error: r.error,
        position: r.position,
        created_at: r.created_at,
        change_json: r.change_json,
    }
}

pub async fn list(cfg: &Config) -> Result<Vec<QuarantineEntry>> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let mut out: Vec<QuarantineEntry> = PgPipelineState::new(cfg).list_quarantine(&pg).await?.into_iter().map(|r| entry("pg", r)).collect();
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    out.extend(MyPipelineState::new(cfg).list_quarantine(&mut my).await?.into_iter().map(|r| entry("my", r)));
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
    Retrier { cfg, schemas, pg: None, my: None }.retry(&entry).await
}

/// The appliers a retry writes through, opened on first use and kept for
/// the next entry.
struct Retrier<'a> {
    cfg: &'a Config,
    schemas: Arc<Vec<crate::schema::PairSchema>>,
    pg: Option<crate::apply::postgres::PostgresApplier>,
    my: Option<crate::apply::mysql::MysqlApplier>,
}

impl Retrier<'_> {
    async fn retry(&mut self, entry: &QuarantineEntry) -> Result<Option<String>> {
        let (id, cfg) = (&entry.id, self.cfg);
        let (place, n) = parse_id(id)?;
        let change = change_from_json(&entry.change_json, &self.schemas)
            .ok_or_else(|| Error::Request(format!("{id}: stored change cannot be read (pair {} still configured?)", entry.pair)))?;
        // A source value with no canonical form (a MySQL zero date under
        // zero_dates = "quarantine", a Postgres infinity) can never be applied as
        // stored: say so without touching the destination.
        if let Some(e) = crate::apply::screen::first_held(crate::apply::screen::screen(std::slice::from_ref(&change), &cfg.pairs, &self.schemas)) {
            return Ok(Some(format!("{e}; this value cannot be replicated as it is: fix the row at the source, or drop this entry")));
        }
        if place == "pg" {
            let mut applier = match self.pg.take() {
                Some(a) => a,
                None => crate::apply::postgres::PostgresApplier::connect(cfg, Arc::clone(&self.schemas)).await?,
            };
            let r = applier.retry_quarantined(&change, n).await;
            self.pg = Some(applier);
            r
        } else {
            let mut applier = match self.my.take() {
                Some(a) => a,
                None => crate::apply::mysql::MysqlApplier::connect(cfg, Arc::clone(&self.schemas)).await?,
            };
            let r = applier.retry_quarantined(&change, n).await;
            self.my = Some(applier);
            r
        }
    }
}

/// What happened to one entry of a bulk retry: `None` applied and removed,
/// `Some(error)` still rejected (it stays).
pub type RetryOutcome = (String, Option<String>);

fn known_pair(cfg: &Config, pair: &str) -> Result<()> {
    match cfg.pair_index(pair) {
        Some(_) => Ok(()),
        None => Err(Error::Request(format!("no pair named {pair:?} in {}", cfg.path.display()))),
    }
}

/// Retries every quarantined change of `pair`; one outcome per entry.
pub async fn retry_pair(cfg: &Config, pair: &str) -> Result<Vec<RetryOutcome>> {
    known_pair(cfg, pair)?;
    let entries: Vec<QuarantineEntry> = list(cfg).await?.into_iter().filter(|e| e.pair == pair).collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut retrier = Retrier { cfg, schemas: crate::run::load_schemas(cfg).await?, pg: None, my: None };
    let mut out = Vec::with_capacity(entries.len());
    for e in &entries {
        out.push((e.id.clone(), retrier.retry(e).await?));
    }
    Ok(out)
}

/// Discards every quarantined change of `pair`; the ids dropped.
pub async fn drop_pair(cfg: &Config, pair: &str) -> Result<Vec<String>> {
    known_pair(cfg, pair)?;
    let entries: Vec<QuarantineEntry> = list(cfg).await?.into_iter().filter(|e| e.pair == pair).collect();
    let mut dropped = Vec::new();
    if entries.iter().any(|e| e.id.starts_with("pg:")) {
        let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        for e in entries.iter().filter(|e| e.id.starts_with("pg:")) {
            if PgPipelineState::new(cfg).drop_quarantined(&pg, parse_id(&e.id)?.1).await? {
                dropped.push(e.id.clone());
            }
        }
    }
    if entries.iter().any(|e| e.id.starts_with("my:")) {
        let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        for e in entries.iter().filter(|e| e.id.starts_with("my:")) {
            if MyPipelineState::new(cfg).drop_quarantined(&mut my, parse_id(&e.id)?.1).await? {
                dropped.push(e.id.clone());
            }
        }
        let _ = my.disconnect().await;
    }
    Ok(dropped)
}

pub async fn drop_entry(cfg: &Config, id: &str) -> Result<bool> {
    let (place, n) = parse_id(id)?;
    if place == "pg" {
        let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        PgPipelineState::new(cfg).drop_quarantined(&pg, n).await
    } else {
        let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        MyPipelineState::new(cfg).drop_quarantined(&mut my, n).await
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
