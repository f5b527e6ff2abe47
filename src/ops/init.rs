//! `tandem init`: creates what the pipeline needs on both servers, idempotently;
//! `tandem init --print-sql` (`setup_sql`): the same statements as text, run nowhere.
//!
//! Postgres: the state schema (with the pipeline registered in it: a lease
//! row of epoch 0), REPLICA IDENTITY FULL on paired tables (where
//! the role may alter them; otherwise a warning that `validate` repeats; for
//! a partitioned table, on every leaf partition), the publication (its table
//! list is brought in line with the config: `ONLY` the paired tables, never
//! inheritance children; `publish_via_partition_root`, so a partitioned
//! table's changes come as its root's), the
//! logical slot and the replication origin. MySQL: the state database (the
//! pipeline registered the same way).
//! Running it twice changes nothing the second time. A paired table
//! `validate` refuses (inheritance children, rules:
//! `schema::partitions::TableShape::refusal`) stops it before it changes
//! anything, with the same reason and remedy.
//!
//! Invariants: every statement `init` runs is built by the functions below,
//! which `setup_sql` prints, so the printed SQL cannot drift from what init
//! does; `setup_sql` connects to nothing. Objects that already exist are left
//! as they are (a DBA may have created them with another role from the
//! printed SQL): the state DDL runs only when a state table is missing, the
//! publication is altered only when its table list differs. Once the slot
//! exists it retains WAL until `tandem run` consumes it: init says so.

use crate::config::{Config, PairConfig, Side};
use crate::sql::pg::{ident as pg_ident, literal as pg_literal};
use crate::state::ddl::{mysql_state_ddl, postgres_state_ddl, STATE_TABLES};
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;

/// What `init` did, one line per action, for the operator.
pub type Report = Vec<String>;

/// What the slot means for the server once it exists (init's report and `--print-sql`).
pub const SLOT_RETAINS_WAL: &str = "from now on the slot retains WAL until `tandem run` consumes it: start `tandem run` soon, \
     or remove the slot with `tandem teardown` if this pipeline will not run";

/// One statement of the setup and why init runs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetupStatement {
    /// What it is for, and when init skips or replaces it.
    pub purpose: String,
    pub sql: String,
}

/// Every statement `init` runs, per side (`tandem init --print-sql`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetupSql {
    pub pipeline: String,
    /// `user@host:port/db` of each side (never a password).
    pub postgres_endpoint: String,
    pub mysql_endpoint: String,
    pub postgres: Vec<SetupStatement>,
    pub mysql: Vec<SetupStatement>,
    /// What init does beyond these statements.
    pub notes: Vec<String>,
}

/// `"schema"."table"` of a pair's Postgres table.
fn pg_table(pair: &PairConfig) -> String {
    format!("{}.{}", pg_ident(&pair.postgres.schema), pg_ident(&pair.postgres.name))
}

/// `ALTER TABLE … REPLICA IDENTITY FULL` of a pair's Postgres table.
pub fn replica_identity_sql(pair: &PairConfig) -> String {
    format!("ALTER TABLE {} REPLICA IDENTITY FULL", pg_table(pair))
}

/// `ONLY` each paired table: never inheritance children (a partitioned
/// table always brings its partitions).
fn publication_tables(cfg: &Config) -> String {
    cfg.pairs.iter().map(|p| format!("ONLY {}", pg_table(p))).collect::<Vec<_>>().join(", ")
}

/// `CREATE PUBLICATION` for every paired table; a partitioned table's
/// changes are published as its root's (the pair names the root).
pub fn create_publication_sql(cfg: &Config) -> String {
    format!("CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)", pg_ident(&cfg.postgres.publication), publication_tables(cfg))
}

/// `ALTER PUBLICATION … SET TABLE` to the paired tables.
pub fn set_publication_sql(cfg: &Config) -> String {
    format!("ALTER PUBLICATION {} SET TABLE {}", pg_ident(&cfg.postgres.publication), publication_tables(cfg))
}

/// `ALTER PUBLICATION … SET (publish_via_partition_root = true)`.
pub fn publish_via_root_sql(cfg: &Config) -> String {
    format!("ALTER PUBLICATION {} SET (publish_via_partition_root = true)", pg_ident(&cfg.postgres.publication))
}

/// Creates the pipeline's logical slot (pgoutput).
pub fn create_slot_sql(slot: &str) -> String {
    format!("SELECT pg_create_logical_replication_slot({}, 'pgoutput')", pg_literal(slot))
}

/// Drops a slot (init drops one whose WAL was removed; `teardown` drops the pipeline's).
pub fn drop_slot_sql(slot: &str) -> String {
    format!("SELECT pg_drop_replication_slot({})", pg_literal(slot))
}

/// Creates the replication origin that marks tandem's Postgres writes.
pub fn create_origin_sql(origin: &str) -> String {
    format!("SELECT pg_replication_origin_create({})", pg_literal(origin))
}

/// Every statement init runs, without connecting (`tandem init --print-sql`).
pub fn setup_sql(cfg: &Config) -> SetupSql {
    let st = |purpose: String, sql: String| SetupStatement { purpose, sql };
    let mut postgres: Vec<SetupStatement> = postgres_state_ddl(&cfg.state_schema)
        .into_iter()
        .enumerate()
        .map(|(i, sql)| {
            let purpose = if i == 0 { format!("state schema {} (init skips these when every state table exists)", cfg.state_schema) } else { String::new() };
            st(purpose, sql)
        })
        .collect();
    postgres.push(st(format!("pipeline {} registered in the state schema (a lease row of epoch 0)", cfg.pipeline), PgPipelineState::new(cfg).register_sql()));
    for pair in &cfg.pairs {
        postgres.push(st(
            format!("before-images of pair {} (init skips it when {} is already REPLICA IDENTITY FULL)", pair.name, pair.postgres),
            replica_identity_sql(pair),
        ));
    }
    postgres.push(st(
        format!(
            "publication of the paired tables (when it exists, init runs instead: {}; and {} when it is not set); a partitioned table also gets REPLICA IDENTITY FULL on every partition",
            set_publication_sql(cfg),
            publish_via_root_sql(cfg)
        ),
        create_publication_sql(cfg),
    ));
    postgres.push(st(
        format!("logical slot (init skips it when it exists, and recreates it when its wal_status is lost); {SLOT_RETAINS_WAL}"),
        create_slot_sql(&cfg.postgres.slot),
    ));
    postgres.push(st("replication origin that marks tandem's own writes (init skips it when it exists)".into(), create_origin_sql(&cfg.origin_name())));
    let mut mysql: Vec<SetupStatement> = mysql_state_ddl(&cfg.state_schema)
        .into_iter()
        .enumerate()
        .map(|(i, sql)| {
            let purpose = if i == 0 { format!("state database {} (init skips these when every state table exists)", cfg.state_schema) } else { String::new() };
            st(purpose, sql)
        })
        .collect();
    mysql.push(st(format!("pipeline {} registered in the state database (a lease row of epoch 0)", cfg.pipeline), MyPipelineState::new(cfg).register_sql()));
    let notes = vec![format!(
        "mysql→postgres starting point: when {}.checkpoints in Postgres holds none for pipeline {}, `tandem init` records the MySQL \
         server's current position there (@@gtid_binlog_pos on MariaDB, gtid_executed or SHOW MASTER STATUS on MySQL). After running \
         the statements above, run `tandem init` once: it finds everything else in place and records only that row.",
        cfg.state_schema, cfg.pipeline
    )];
    SetupSql {
        pipeline: cfg.pipeline.clone(),
        postgres_endpoint: cfg.postgres.endpoint.describe(),
        mysql_endpoint: cfg.mysql.endpoint.describe(),
        postgres,
        mysql,
        notes,
    }
}

/// The setup as a script: `-- ` comments, one statement per entry ending in `;`.
pub fn render_sql(s: &SetupSql) -> String {
    let mut out = format!("-- tandem init --print-sql, pipeline {}: the statements `tandem init` runs. Nothing was run.\n", s.pipeline);
    for (side, endpoint, statements) in [(Side::Postgres, &s.postgres_endpoint, &s.postgres), (Side::Mysql, &s.mysql_endpoint, &s.mysql)] {
        out.push_str(&format!("\n-- {side} {endpoint}\n"));
        for stmt in statements {
            if !stmt.purpose.is_empty() {
                out.push_str(&format!("-- {}\n", stmt.purpose));
            }
            out.push_str(&format!("{};\n", stmt.sql.trim_end()));
        }
    }
    for n in &s.notes {
        out.push_str(&format!("\n-- {n}\n"));
    }
    out
}

pub async fn init(cfg: &Config) -> Result<Report> {
    let mut report = Vec::new();
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    // Refused tables first: nothing is changed for a config validate refuses.
    let mut shapes = Vec::new();
    for pair in &cfg.pairs {
        let shape = crate::schema::partitions::pg_table_shape(&pg, &pair.postgres)
            .await?
            .ok_or_else(|| Error::Setup(format!("pair {}: table {} does not exist in Postgres", pair.name, pair.postgres)))?;
        if let Some(why) = shape.refusal(&pair.postgres) {
            return Err(Error::Setup(format!("pair {}: Postgres table {} {why}", pair.name, pair.postgres)));
        }
        shapes.push(shape);
    }
    let present: i64 = pg
        .query_one(
            "SELECT count(*) FROM unnest($2::text[]) t WHERE to_regclass(format('%I.%I', $1::text, t)) IS NOT NULL",
            &[&cfg.state_schema, &STATE_TABLES],
        )
        .await?
        .get(0);
    if present == STATE_TABLES.len() as i64 {
        report.push(format!("postgres: state schema {} ready (already there)", cfg.state_schema));
    } else {
        for ddl in postgres_state_ddl(&cfg.state_schema) {
            pg.batch_execute(&ddl).await?;
        }
        report.push(format!("postgres: state schema {} ready", cfg.state_schema));
    }
    pg.batch_execute(&PgPipelineState::new(cfg).register_sql()).await?;

    for (pair, shape) in cfg.pairs.iter().zip(&shapes) {
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
            None => return Err(Error::Setup(format!("pair {}: table {} does not exist in Postgres", pair.name, pair.postgres))),
            Some("f") => {}
            Some(_) => match pg.batch_execute(&replica_identity_sql(pair)).await {
                Ok(()) => report.push(format!("postgres: {} set to REPLICA IDENTITY FULL", pair.postgres)),
                Err(e) => {
                    tracing::warn!(table = %pair.postgres, error = %e, "cannot set REPLICA IDENTITY FULL");
                    report.push(format!("postgres: WARNING cannot set REPLICA IDENTITY FULL on {}: {e}", pair.postgres));
                }
            },
        }
    }
    publication(cfg, &pg, &mut report).await?;
    slot(cfg, &pg, &mut report).await?;
    let origin = cfg.origin_name();
    if pg.query_opt("SELECT 1 FROM pg_replication_origin WHERE roname = $1", &[&origin]).await?.is_none() {
        pg.batch_execute(&create_origin_sql(&origin)).await?;
        report.push(format!("postgres: replication origin {origin} created"));
    }

    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let tables: Vec<&str> = STATE_TABLES.iter().copied().chain([crate::state::names::ORIGIN_MARKER]).collect();
    let present: Option<i64> = my
        .exec_first(
            format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({})",
                tables.iter().map(|_| "?").collect::<Vec<_>>().join(", ")
            ),
            std::iter::once(cfg.state_schema.as_str()).chain(tables.iter().copied()).collect::<Vec<_>>(),
        )
        .await?;
    if present == Some(tables.len() as i64) {
        report.push(format!("mysql: state database {} ready (already there)", cfg.state_schema));
    } else {
        for ddl in mysql_state_ddl(&cfg.state_schema) {
            my.query_drop(ddl).await?;
        }
        report.push(format!("mysql: state database {} ready", cfg.state_schema));
    }
    my.query_drop(MyPipelineState::new(cfg).register_sql()).await?;
    let _ = my.disconnect().await;
    if let Some(pos) = crate::run::record_mysql_start(cfg).await? {
        report.push(format!("mysql→postgres: starting point recorded at {pos}"));
    }
    Ok(report)
}

/// Creates the publication, or brings its table list in line with the pairs.
async fn publication(cfg: &Config, pg: &tokio_postgres::Client, report: &mut Report) -> Result<()> {
    let name = &cfg.postgres.publication;
    if pg.query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[name]).await?.is_none() {
        pg.batch_execute(&create_publication_sql(cfg)).await?;
        report.push(format!("postgres: publication {name} created"));
        return Ok(());
    }
    let rows = pg.query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[name]).await?;
    let mut have: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut want: Vec<(String, String)> = cfg.pairs.iter().map(|p| (p.postgres.schema.clone(), p.postgres.name.clone())).collect();
    have.sort();
    want.sort();
    want.dedup();
    let via_root: bool = pg.query_one("SELECT pubviaroot FROM pg_publication WHERE pubname = $1", &[name]).await?.get(0);
    if !via_root {
        pg.batch_execute(&publish_via_root_sql(cfg)).await?;
        report.push(format!("postgres: publication {name} publishes partitioned tables through their root"));
        // The table list as the publication shows it changes with that setting.
        let rows = pg.query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[name]).await?;
        have = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        have.sort();
    }
    if have == want {
        report.push(format!("postgres: publication {name} lists the paired tables (already there)"));
    } else {
        pg.batch_execute(&set_publication_sql(cfg)).await?;
        report.push(format!("postgres: publication {name} tables set"));
    }
    Ok(())
}

/// Creates the logical slot, or recreates one whose WAL the server removed.
async fn slot(cfg: &Config, pg: &tokio_postgres::Client, report: &mut Report) -> Result<()> {
    let name = &cfg.postgres.slot;
    let slot = pg.query_opt("SELECT plugin, wal_status FROM pg_replication_slots WHERE slot_name = $1", &[name]).await?;
    match slot {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            let wal_status: Option<String> = row.get(1);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(Error::Setup(format!("replication slot {name} exists but is not a pgoutput logical slot; drop it or set [postgres] slot")));
            }
            if wal_status.as_deref() == Some("lost") {
                // The server removed WAL the slot needed: it can never stream again.
                pg.batch_execute(&drop_slot_sql(name)).await?;
                pg.batch_execute(&create_slot_sql(name)).await?;
                report.push(format!(
                    "postgres: logical slot {name} was invalidated (wal_status = lost) and is recreated; changes made while it was lost \
                     were not replicated: run `tandem backfill --pair <pair> --from postgres` for each pair (or `tandem check --repair`)"
                ));
                report.push(format!("postgres: {SLOT_RETAINS_WAL}"));
            }
        }
        None => {
            pg.batch_execute(&create_slot_sql(name)).await?;
            report.push(format!("postgres: logical slot {name} created; {SLOT_RETAINS_WAL}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = r#"
            [pipeline]
            name = "crm"
            [postgres]
            url = "postgresql://tandem:secret@127.0.0.1:5432/app"
            [mysql]
            url = "mysql://tandem:secret@127.0.0.1:3306/app"
            server_id = 4001
            [[pairs]]
            name = "customers"
            postgres = "public.customers"
            mysql = "app.customers"
            [[pairs]]
            name = "orders"
            postgres = "sales.Orders"
            mysql = "app.orders"
        "#;
        let env = |_: &str| None;
        let read = |p: &std::path::Path| std::fs::read_to_string(p);
        crate::config::parse(text, std::path::Path::new("t.toml"), &crate::config::Inputs { env: &env, read_file: &read }).expect("test config")
    }

    #[test]
    fn the_printed_setup_names_every_object_init_creates_and_no_password() {
        let cfg = config();
        let text = render_sql(&setup_sql(&cfg));
        for expected in [
            "CREATE SCHEMA IF NOT EXISTS tandem;",
            "ALTER TABLE \"public\".\"customers\" REPLICA IDENTITY FULL;",
            "ALTER TABLE \"sales\".\"Orders\" REPLICA IDENTITY FULL;",
            "CREATE PUBLICATION \"tandem_crm\" FOR TABLE ONLY \"public\".\"customers\", ONLY \"sales\".\"Orders\" WITH (publish_via_partition_root = true);",
            "SELECT pg_create_logical_replication_slot('tandem_crm', 'pgoutput');",
            "SELECT pg_replication_origin_create('tandem_crm');",
            "CREATE DATABASE IF NOT EXISTS `tandem` CHARACTER SET utf8mb4;",
            "retains WAL until `tandem run` consumes it",
            "-- postgres tandem@127.0.0.1:5432/app",
            "-- mysql tandem@127.0.0.1:3306/app",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains("secret"), "{text}");
        // Every state table of both sides is in the script.
        for t in STATE_TABLES {
            assert!(text.contains(&format!("tandem.{t} (")), "postgres {t}");
            assert!(text.contains(&format!("`tandem`.{t} (")), "mysql {t}");
        }
    }
}
