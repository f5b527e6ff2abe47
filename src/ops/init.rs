//! `tandem init`: creates what the pipeline needs on both servers, idempotently.
//!
//! Postgres: the state schema, REPLICA IDENTITY FULL on paired tables (where
//! the role may alter them; otherwise a warning that `validate` repeats; for
//! a partitioned table, on every leaf partition), the publication (its table
//! list is brought in line with the config: `ONLY` the paired tables, never
//! inheritance children; `publish_via_partition_root`, so a partitioned
//! table's changes come as its root's), the
//! logical slot and the replication origin. MySQL: the state database.
//! Running it twice changes nothing the second time. A paired table
//! `validate` refuses (inheritance children, rules:
//! `schema::partitions::TableShape::refusal`) stops it before it changes
//! anything, with the same reason and remedy.

use crate::state::ddl::{mysql_state_ddl, postgres_state_ddl};
use crate::config::Config;
use crate::sql::pg::ident as pg_ident;
use crate::Result;
use mysql_async::prelude::Queryable;

/// What `init` did, one line per action, for the operator.
pub type Report = Vec<String>;

pub async fn init(cfg: &Config) -> Result<Report> {
    let mut report = Vec::new();
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    for ddl in postgres_state_ddl(&cfg.state_schema) {
        pg.batch_execute(&ddl).await?;
    }
    report.push(format!("postgres: state schema {} ready", cfg.state_schema));

    let mut tables = Vec::new();
    // Refused tables first: nothing is changed for a config validate will refuse.
    let mut shapes = Vec::new();
    for pair in &cfg.pairs {
        let shape = crate::schema::partitions::pg_table_shape(&pg, &pair.postgres)
            .await?
            .ok_or_else(|| crate::Error::Setup(format!("pair {}: table {} does not exist in Postgres", pair.name, pair.postgres)))?;
        if let Some(why) = shape.refusal(&pair.postgres) {
            return Err(crate::Error::Setup(format!("pair {}: Postgres table {} {why}", pair.name, pair.postgres)));
        }
        shapes.push(shape);
    }
    for (pair, shape) in cfg.pairs.iter().zip(&shapes) {
        let t = format!("{}.{}", pg_ident(&pair.postgres.schema), pg_ident(&pair.postgres.name));
        // Changes of a partitioned table come from its leaves, with their replica identity.
        for leaf in &shape.quoted_not_full {
            if let Err(e) = pg.batch_execute(&format!("ALTER TABLE {leaf} REPLICA IDENTITY FULL")).await {
                report.push(format!("postgres: WARNING cannot set REPLICA IDENTITY FULL on partition {leaf}: {e}"));
            }
        }
        if !shape.partitions_not_full.is_empty() {
            report.push(format!("postgres: partitions of {} set to REPLICA IDENTITY FULL: {}", pair.postgres, shape.partitions_not_full.join(", ")));
        }
        let ident: Option<String> = pg
            .query_opt(
                "SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                &[&pair.postgres.schema, &pair.postgres.name],
            )
            .await?
            .map(|r| r.get(0));
        match ident.as_deref() {
            None => return Err(crate::Error::Setup(format!("pair {}: table {} does not exist in Postgres", pair.name, pair.postgres))),
            Some("f") => {}
            Some(_) => match pg.batch_execute(&format!("ALTER TABLE {t} REPLICA IDENTITY FULL")).await {
                Ok(()) => report.push(format!("postgres: {} set to REPLICA IDENTITY FULL", pair.postgres)),
                Err(e) => {
                    tracing::warn!(table = %pair.postgres, error = %e, "cannot set REPLICA IDENTITY FULL");
                    report.push(format!("postgres: WARNING cannot set REPLICA IDENTITY FULL on {}: {e}", pair.postgres));
                }
            },
        }
        // ONLY: never the inheritance children (a partitioned table always brings its partitions).
        tables.push(if shape.partitioned() { t } else { format!("ONLY {t}") });
    }
    let publication = pg_ident(&cfg.postgres.publication);
    let exists = pg.query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&cfg.postgres.publication]).await?.is_some();
    // Partitioned tables publish their changes as the root's (the pairs name roots).
    if exists {
        pg.batch_execute(&format!(
            "ALTER PUBLICATION {publication} SET TABLE {}; ALTER PUBLICATION {publication} SET (publish_via_partition_root = true)",
            tables.join(", ")
        ))
        .await?;
        report.push(format!("postgres: publication {} tables set", cfg.postgres.publication));
    } else {
        pg.batch_execute(&format!("CREATE PUBLICATION {publication} FOR TABLE {} WITH (publish_via_partition_root = true)", tables.join(", "))).await?;
        report.push(format!("postgres: publication {} created", cfg.postgres.publication));
    }
    let slot = pg.query_opt("SELECT plugin, wal_status FROM pg_replication_slots WHERE slot_name = $1", &[&cfg.postgres.slot]).await?;
    match slot {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            let wal_status: Option<String> = row.get(1);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(crate::Error::Setup(format!(
                    "replication slot {} exists but is not a pgoutput logical slot; drop it or set [postgres] slot",
                    cfg.postgres.slot
                )));
            }
            if wal_status.as_deref() == Some("lost") {
                // The server removed WAL the slot needed: it can never stream again.
                pg.query("SELECT pg_drop_replication_slot($1)", &[&cfg.postgres.slot]).await?;
                pg.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&cfg.postgres.slot]).await?;
                report.push(format!(
                    "postgres: logical slot {} was invalidated (wal_status = lost) and is recreated; changes made while it was lost \
                     were not replicated: run `tandem backfill --pair <pair> --from postgres` for each pair (or `tandem check --repair`)",
                    cfg.postgres.slot
                ));
            }
        }
        None => {
            pg.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&cfg.postgres.slot]).await?;
            report.push(format!("postgres: logical slot {} created", cfg.postgres.slot));
        }
    }
    let origin = cfg.origin_name();
    if pg.query_opt("SELECT 1 FROM pg_replication_origin WHERE roname = $1", &[&origin]).await?.is_none() {
        pg.query("SELECT pg_replication_origin_create($1)", &[&origin]).await?;
        report.push(format!("postgres: replication origin {origin} created"));
    }

    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    for ddl in mysql_state_ddl(&cfg.state_schema) {
        my.query_drop(ddl).await?;
    }
    report.push(format!("mysql: state database {} ready", cfg.state_schema));
    let _ = my.disconnect().await;
    if let Some(pos) = crate::run::record_mysql_start(cfg).await? {
        report.push(format!("mysql→postgres: starting point recorded at {pos}"));
    }
    Ok(report)
}
