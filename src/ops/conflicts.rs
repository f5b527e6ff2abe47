//! `tandem conflicts list|resolve`: the operator's view of `tandem.conflicts`.
//!
//! Conflicts are recorded by the applier that decided them, in its
//! destination: ids are prefixed with where they live (`pg:12` in Postgres,
//! `my:7` in MySQL). `list` shows open (manual) conflicts, or all with
//! `--all`. `resolve ID --take postgres|mysql` copies the chosen side's
//! *current* value of the column to the other side — written with tandem's
//! origin tags, so it does not echo — and marks the conflict resolved.

use crate::apply::mysql_sql::column_literal;
use crate::sql::my::{push_ident, push_literal};
use crate::apply::postgres_sql::{cast_type, text};
use crate::config::{Config, Side};
use crate::codec::my_text::mysql_text_value;
use crate::model::Value;
use crate::sql::pg::ident as pg_ident;
use crate::schema::PairSchema;
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::state::{ConflictTarget, StoredConflict};
use crate::{Error, Result};
use mysql_async::prelude::Queryable;

/// One row of a conflicts table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConflictEntry {
    pub id: String,
    pub pair: String,
    pub key: serde_json::Value,
    pub column: String,
    pub postgres_value: Option<String>,
    pub mysql_value: Option<String>,
    pub policy: String,
    pub winner: Option<String>,
    pub decided_at: String,
    pub resolved_at: Option<String>,
}

/// The entry of conflict row `r` stored in the database `prefix` names.
fn entry(prefix: &str, r: StoredConflict) -> ConflictEntry {
    ConflictEntry {
        id: format!("{prefix}:{}", r.id),
        pair: r.pair,
        key: serde_json::from_str(&r.key_json).unwrap_or(serde_json::Value::String(r.key_json.clone())),
        column: r.column,
        postgres_value: r.postgres_value,
        mysql_value: r.mysql_value,
        policy: r.policy,
        winner: r.winner,
        decided_at: r.decided_at,
        resolved_at: r.resolved_at,
    }
}

/// Conflicts of this pipeline from both sides, oldest first.
pub async fn list(cfg: &Config, pair: Option<&str>, all: bool) -> Result<Vec<ConflictEntry>> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let mut out: Vec<ConflictEntry> = PgPipelineState::new(cfg).list_conflicts(&pg, all).await?.into_iter().map(|r| entry("pg", r)).collect();
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    out.extend(MyPipelineState::new(cfg).list_conflicts(&mut my, all).await?.into_iter().map(|r| entry("my", r)));
    let _ = my.disconnect().await;
    if let Some(p) = pair {
        out.retain(|c| c.pair == p);
    }
    out.sort_by(|a, b| a.decided_at.cmp(&b.decided_at));
    Ok(out)
}

/// Key values (canonical column → text) of a conflict's `key_json`.
fn key_values(schema: &PairSchema, key: &serde_json::Value) -> Result<Vec<(usize, String)>> {
    let obj = key.as_object().ok_or_else(|| Error::Decode(format!("conflict key {key} is not an object")))?;
    schema
        .key
        .iter()
        .map(|&i| {
            let name = &schema.columns[i].name;
            obj.get(name)
                .and_then(|v| v.as_str())
                .map(|s| (i, s.to_string()))
                .ok_or_else(|| Error::Decode(format!("conflict key has no value for key column {name}")))
        })
        .collect()
}

async fn read_pg(pg: &tokio_postgres::Client, schema: &PairSchema, key: &[(usize, String)], col: usize) -> Result<Option<Value>> {
    let c = &schema.columns[col];
    let probe = pg.prepare(&format!("SELECT {} FROM {}.{} LIMIT 0", pg_ident(&c.pg_name), pg_ident(&schema.pg_table.schema), pg_ident(&schema.pg_table.name))).await?;
    let oid = probe.columns().first().map(|x| x.type_().oid()).unwrap_or(25);
    let conds: Vec<String> = key.iter().enumerate().map(|(n, (i, _))| format!("{} = ${}::text::{}", pg_ident(&schema.columns[*i].pg_name), n + 1, cast_type(&schema.columns[*i].pg_type))).collect();
    let sql = format!("SELECT {}::text FROM {}.{} WHERE {}", pg_ident(&c.pg_name), pg_ident(&schema.pg_table.schema), pg_ident(&schema.pg_table.name), conds.join(" AND "));
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = key.iter().map(|(_, v)| v as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let Some(row) = pg.query_opt(&sql, &params).await? else { return Ok(None) };
    let raw: Option<String> = row.get(0);
    Ok(Some(match raw {
        None => Value::Null,
        Some(t) => crate::codec::pg_text::decode_text(oid, t.as_bytes())?,
    }))
}

fn my_where(schema: &PairSchema, key: &[(usize, String)]) -> String {
    let mut sql = String::new();
    for (n, (i, v)) in key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        push_ident(&mut sql, &schema.columns[*i].my_name);
        sql.push('=');
        push_literal(&mut sql, v);
    }
    sql
}

fn my_table(schema: &PairSchema) -> String {
    let mut t = String::new();
    push_ident(&mut t, &schema.my_table.schema);
    t.push('.');
    push_ident(&mut t, &schema.my_table.name);
    t
}

/// Resolves conflict `id` by taking `take`'s current value; returns the value written.
pub async fn resolve(cfg: &Config, id: &str, take: Side) -> Result<String> {
    let (place, num) = id.split_once(':').ok_or_else(|| Error::Request(format!("conflict id {id:?} must look like pg:12 or my:7 (see `tandem conflicts list`)")))?;
    let num: i64 = num.parse().map_err(|_| Error::Request(format!("conflict id {id:?}: bad number")))?;
    let all = list(cfg, None, true).await?;
    let c = all.into_iter().find(|c| c.id == format!("{place}:{num}")).ok_or_else(|| Error::Request(format!("no conflict {id} in pipeline {}", cfg.pipeline)))?;
    if c.resolved_at.is_some() {
        return Err(Error::Request(format!("conflict {id} is already resolved")));
    }
    let mut resolver = Resolver::connect(cfg).await?;
    let written = resolver.resolve(&c, take).await;
    let _ = resolver.my.disconnect().await;
    written
}

/// What happened to one conflict of a bulk resolve: the value written, or why not.
pub type ResolveOutcome = (String, Result<String>);

/// Resolves every open conflict of `pair` by taking `take`'s current value,
/// oldest first. A conflict's twin (the same pair, key and column recorded
/// by the other database) is closed with it and not resolved twice.
pub async fn resolve_pair(cfg: &Config, pair: &str, take: Side) -> Result<Vec<ResolveOutcome>> {
    if cfg.pair_index(pair).is_none() {
        return Err(Error::Request(format!("no pair named {pair:?} in {}", cfg.path.display())));
    }
    let open = list(cfg, Some(pair), false).await?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let mut resolver = Resolver::connect(cfg).await?;
    let mut done: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for c in &open {
        let twin = (c.key.to_string(), c.column.clone());
        if done.contains(&twin) {
            continue;
        }
        let r = resolver.resolve(c, take).await;
        if r.is_ok() {
            done.push(twin);
        }
        out.push((c.id.clone(), r));
    }
    let _ = resolver.my.disconnect().await;
    Ok(out)
}

/// The sessions a resolve writes through: Postgres under the pipeline's
/// repair origin, MySQL with the origin marker.
struct Resolver<'a> {
    cfg: &'a Config,
    schemas: std::sync::Arc<Vec<PairSchema>>,
    pg: tokio_postgres::Client,
    my: mysql_async::Conn,
}

impl<'a> Resolver<'a> {
    async fn connect(cfg: &'a Config) -> Result<Resolver<'a>> {
        let schemas = crate::run::load_schemas(cfg).await?;
        let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        // The running applier holds the pipeline's origin (one session per origin on PG ≤ 15):
        // write under `<origin>_repair`, which the Postgres source also recognises as tandem's own.
        let origin = format!("{}_repair", cfg.origin_name());
        if pg.query_opt("SELECT 1 FROM pg_replication_origin WHERE roname = $1", &[&origin]).await?.is_none() {
            pg.query("SELECT pg_replication_origin_create($1)", &[&origin]).await?;
        }
        pg.query("SELECT pg_replication_origin_session_setup($1)", &[&origin]).await?;
        let my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        Ok(Resolver { cfg, schemas, pg, my })
    }

    async fn resolve(&mut self, c: &ConflictEntry, take: Side) -> Result<String> {
        let (cfg, pg, my, id) = (self.cfg, &self.pg, &mut self.my, &c.id);
        let (place, num) = id.split_once(':').ok_or_else(|| Error::Request(format!("conflict id {id:?} must look like pg:12 or my:7")))?;
        let num: i64 = num.parse().map_err(|_| Error::Request(format!("conflict id {id:?}: bad number")))?;
        let schema = self.schemas.iter().find(|s| s.name == c.pair).ok_or_else(|| Error::Request(format!("pair {} is not in the config", c.pair)))?;
        let col = schema.column_index(&c.column).ok_or_else(|| Error::Request(format!("pair {}: no column {}", c.pair, c.column)))?;
        let key = key_values(schema, &c.key)?;
        let value = match take {
            Side::Postgres => read_pg(pg, schema, &key, col).await?,
            Side::Mysql => {
                let mut sql = String::from("SELECT ");
                push_ident(&mut sql, &schema.columns[col].my_name);
                sql.push_str(&format!(" FROM {} WHERE {}", my_table(schema), my_where(schema, &key)));
                let row: Option<mysql_async::Row> = my.query_first(sql).await?;
                match row {
                    None => None,
                    Some(r) => {
                        let raw = mysql_async::Row::unwrap(r).into_iter().next();
                        let bytes = match &raw {
                            Some(mysql_async::Value::Bytes(b)) => Some(b.as_slice()),
                            _ => None,
                        };
                        Some(mysql_text_value(bytes, schema.columns[col].my_kind).map_err(Error::Decode)?)
                    }
                }
            }
        };
        let value = value.ok_or_else(|| Error::Request(format!("conflict {id}: the row is gone on the {take} side; nothing to take (drop it with a delete or resolve the other way)")))?;
        // Write the chosen value to the other side, origin-tagged, and close the conflict where it lives.
        match take {
            Side::Postgres => {
                let mut sql = String::from("START TRANSACTION;\n");
                MyPipelineState::new(cfg).push_origin_marker(&mut sql);
                sql.push_str("UPDATE ");
                sql.push_str(&my_table(schema));
                sql.push_str(" SET ");
                push_ident(&mut sql, &schema.columns[col].my_name);
                sql.push('=');
                column_literal(&mut sql, &value, schema.columns[col].my_kind, &schema.columns[col].my_type).map_err(|e| Error::Value { pair: c.pair.clone(), column: c.column.clone(), message: e.to_string() })?;
                sql.push_str(&format!(" WHERE {};\nCOMMIT", my_where(schema, &key)));
                my.query_drop(sql).await?;
            }
            Side::Mysql => {
                let t = text(&value, schema.columns[col].pg_kind).map_err(|e| Error::Value { pair: c.pair.clone(), column: c.column.clone(), message: e.to_string() })?;
                let conds: Vec<String> = key.iter().enumerate().map(|(n, (i, _))| format!("{} = ${}::text::{}", pg_ident(&schema.columns[*i].pg_name), n + 2, cast_type(&schema.columns[*i].pg_type))).collect();
                let sql = format!(
                    "UPDATE {}.{} SET {} = $1::text::{} WHERE {}",
                    pg_ident(&schema.pg_table.schema),
                    pg_ident(&schema.pg_table.name),
                    pg_ident(&schema.columns[col].pg_name),
                    cast_type(&schema.columns[col].pg_type),
                    conds.join(" AND ")
                );
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&t];
                params.extend(key.iter().map(|(_, v)| v as &(dyn tokio_postgres::types::ToSql + Sync)));
                pg.execute(&sql, &params).await?;
            }
        }
        // Close this conflict and its twin: a manual conflict is recorded by both
        // appliers (each side saw the other's change), one row in each database.
        let key_text = c.key.to_string();
        let target = ConflictTarget { place, id: num, pair: &c.pair, key_json: &key_text, column: &c.column };
        PgPipelineState::new(cfg).close_conflicts(pg, &target, take.as_str()).await?;
        MyPipelineState::new(cfg).close_conflicts(my, &target, take.as_str()).await?;
        tracing::info!(conflict = %id, pair = %c.pair, column = %c.column, take = %take, "conflict resolved");
        Ok(value.to_string())
    }
}

/// The text listing: one line per conflict (`list`'s order), or one line
/// saying there is none (`all`: decided ones were asked for too).
pub fn render_text(entries: &[ConflictEntry], all: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if entries.is_empty() {
        let _ = writeln!(out, "no {}conflicts", if all { "" } else { "open " });
    }
    for c in entries {
        let _ = writeln!(
            out,
            "{:<8} pair {} key {} column {}: postgres={} mysql={} policy={} winner={} decided {}{}",
            c.id,
            c.pair,
            c.key,
            c.column,
            c.postgres_value.as_deref().unwrap_or("NULL"),
            c.mysql_value.as_deref().unwrap_or("NULL"),
            c.policy,
            c.winner.as_deref().unwrap_or("(open)"),
            c.decided_at,
            c.resolved_at.as_ref().map(|r| format!(", resolved {r}")).unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_each_conflict_on_one_line_or_says_there_is_none() {
        assert_eq!(render_text(&[], false), "no open conflicts\n");
        assert_eq!(render_text(&[], true), "no conflicts\n");
        let c = ConflictEntry {
            id: "pg:3".into(),
            pair: "customers".into(),
            key: serde_json::json!({ "id": "7" }),
            column: "email".into(),
            postgres_value: Some("a@x".into()),
            mysql_value: None,
            policy: "manual".into(),
            winner: None,
            decided_at: "2026-12-01 10:00:00".into(),
            resolved_at: None,
        };
        assert_eq!(
            render_text(std::slice::from_ref(&c), false),
            "pg:3     pair customers key {\"id\":\"7\"} column email: postgres=a@x mysql=NULL policy=manual winner=(open) decided 2026-12-01 10:00:00\n"
        );
        let done = ConflictEntry { winner: Some("postgres".into()), resolved_at: Some("2026-12-02".into()), ..c };
        assert!(render_text(&[done], true).ends_with("winner=postgres decided 2026-12-01 10:00:00, resolved 2026-12-02\n"));
    }
}
