//! Postgres server checks of `tandem validate`: wal_level, free replication
//! slots and WAL senders, the role's REPLICATION attribute, the publication
//! (exists, lists exactly the paired tables, publishes every operation), the
//! slot (a pgoutput logical slot of this database), `publish_via_partition_root`
//! when a paired table is partitioned, the replication origin
//! and the functions echo suppression calls, and the state schema.
//!
//! Objects `tandem init` creates are problems while missing (the remedy says
//! so) unless the check is informational (the origin, the state schema when
//! the role may create it). Every query failure becomes a finding.

use super::{pg_err, Report};
use crate::config::Config;
use tokio_postgres::Client;

/// What the pair checks need to know about the Postgres session.
#[derive(Debug, Clone, Default)]
pub(super) struct PgFacts {
    pub user: String,
    pub superuser: bool,
    /// The pipeline's slot exists and a walsender streams from it (tandem runs).
    pub slot_active: bool,
}

type Res<T> = Result<T, String>;

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Res<T> {
    row.try_get(i).map_err(pg_err)
}

/// Double-quotes an identifier for the remedies shown to the operator.
fn q(s: &str) -> String {
    crate::sql::pg::ident(s)
}

pub(super) async fn check(pg: &Client, cfg: &Config, r: &mut Report) -> PgFacts {
    let mut facts = PgFacts::default();
    let database = cfg.postgres.endpoint.database.clone();
    match role(pg).await {
        Ok((user, superuser, replication)) => {
            if !superuser && !replication {
                r.problem(
                    format!("postgres role {user}"),
                    format!("has neither REPLICATION nor SUPERUSER, so it cannot stream the WAL: ALTER ROLE {} REPLICATION", q(&user)),
                );
            }
            facts.user = user;
            facts.superuser = superuser;
        }
        Err(e) => r.could_not("postgres role", e),
    }
    if let Err(e) = wal_level(pg, r).await {
        r.could_not("postgres wal_level", e);
    }
    match slot(pg, cfg, &database, r).await {
        Ok(active) => facts.slot_active = active,
        Err(e) => r.could_not(format!("postgres slot {}", cfg.postgres.slot), e),
    }
    if let Err(e) = publication(pg, cfg, &facts, &database, r).await {
        r.could_not(format!("postgres publication {}", cfg.postgres.publication), e);
    }
    if let Err(e) = origin(pg, cfg, &facts, r).await {
        r.could_not(format!("postgres replication origin {}", cfg.origin_name()), e);
    }
    if let Err(e) = state_schema(pg, cfg, &facts, &database, r).await {
        r.could_not(format!("postgres schema {}", cfg.state_schema), e);
    }
    facts
}

async fn role(pg: &Client) -> Res<(String, bool, bool)> {
    let row = pg
        .query_one("SELECT current_user::text, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(pg_err)?;
    Ok((get(&row, 0)?, get(&row, 1)?, get(&row, 2)?))
}

async fn wal_level(pg: &Client, r: &mut Report) -> Res<()> {
    let row = pg.query_one("SELECT current_setting('wal_level'), current_setting('max_slot_wal_keep_size')", &[]).await.map_err(pg_err)?;
    let wal: String = get(&row, 0)?;
    if wal != "logical" {
        r.problem("postgres wal_level", format!("is {wal}; logical decoding needs wal_level = logical (postgresql.conf), then restart Postgres"));
    }
    let keep: String = get(&row, 1)?;
    if keep == "-1" {
        r.info(
            "postgres max_slot_wal_keep_size",
            "warning: is -1 (unlimited): while tandem is stopped its slot keeps every WAL segment until the disk fills; \
             set a limit (a slot past it is invalidated, and `tandem run` then stops and says so) and alert on tandem_slot_retained_wal_bytes",
        );
    } else {
        r.info("postgres max_slot_wal_keep_size", format!("is {keep}: a slot retaining more WAL is invalidated (then run `tandem init` and backfill)"));
    }
    Ok(())
}

/// The slot itself, free slots and WAL senders. Returns whether the slot is active.
async fn slot(pg: &Client, cfg: &Config, database: &str, r: &mut Report) -> Res<bool> {
    let name = &cfg.postgres.slot;
    let object = format!("postgres slot {name}");
    let row = pg
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*) FROM pg_replication_slots)::int,
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int",
            &[],
        )
        .await
        .map_err(pg_err)?;
    let (max_slots, used_slots, max_senders, used_senders): (i32, i32, i32, i32) = (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?, get(&row, 3)?);
    // Version-independent: wal_status exists from PG13 on.
    let slot = pg
        .query_opt(
            "SELECT j->>'slot_type', j->>'plugin', j->>'database', (j->>'active')::bool, j->>'wal_status',
                    CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END
             FROM pg_replication_slots s, to_jsonb(s) j WHERE s.slot_name = $1",
            &[name],
        )
        .await
        .map_err(pg_err)?;
    let mut active = false;
    match slot {
        None => {
            r.problem(&object, "does not exist yet: run `tandem init` (creates it)");
            if used_slots >= max_slots {
                r.problem(
                    "postgres max_replication_slots",
                    format!(
                        "all {max_slots} replication slots are in use, none is free for slot {name}: raise max_replication_slots (restart) or drop an unused slot"
                    ),
                );
            }
        }
        Some(row) => {
            let slot_type: Option<String> = get(&row, 0)?;
            let plugin: Option<String> = get(&row, 1)?;
            let db: Option<String> = get(&row, 2)?;
            active = get::<Option<bool>>(&row, 3)?.unwrap_or(false);
            let wal_status: Option<String> = get(&row, 4)?;
            if slot_type.as_deref() != Some("logical") || plugin.as_deref() != Some("pgoutput") {
                r.problem(
                    &object,
                    format!(
                        "is a {} slot with plugin {}, tandem needs a pgoutput logical slot: drop it (SELECT pg_drop_replication_slot('{name}')) and run `tandem init`, or set [postgres] slot",
                        slot_type.as_deref().unwrap_or("?"),
                        plugin.as_deref().unwrap_or("none")
                    ),
                );
            } else if db.as_deref() != Some(database) {
                r.problem(
                    &object,
                    format!(
                        "belongs to database {}, not {database}: set [postgres] slot to another name, or drop it and run `tandem init`",
                        db.as_deref().unwrap_or("?")
                    ),
                );
            }
            if wal_status.as_deref() == Some("lost") {
                r.problem(
                    &object,
                    "was invalidated (wal_status = lost, usually max_slot_wal_keep_size): the WAL it needed is gone; \
                     run `tandem init` (it recreates the slot), then `tandem backfill --pair <pair> --from postgres` for each pair",
                );
            }
            if let Some(retained) = get::<Option<i64>>(&row, 5)? {
                r.info(&object, format!("retains {} MiB of WAL ({retained} bytes; tandem_slot_retained_wal_bytes)", retained / (1 << 20)));
            }
            if active {
                r.info(&object, "is active: a walsender streams from it (tandem run?)");
            }
        }
    }
    if max_senders <= 0 {
        r.problem("postgres max_wal_senders", "is 0: set max_wal_senders to at least 1 (restart)");
    } else if !active && used_senders >= max_senders {
        r.problem(
            "postgres max_wal_senders",
            format!("all {max_senders} WAL senders are in use, none is free for tandem's stream: raise max_wal_senders (restart)"),
        );
    }
    Ok(active)
}

/// The paired Postgres tables that exist, as (schema, name).
/// The paired tables that exist and that tandem can replicate (those the
/// pair checks refuse are left out here: `init` would not publish them),
/// with whether the role owns them; and whether any is partitioned.
async fn existing_tables(pg: &Client, cfg: &Config) -> Res<(Vec<(String, String, bool)>, bool)> {
    let mut out = Vec::new();
    let mut partitioned = false;
    for pair in &cfg.pairs {
        match crate::schema::partitions::pg_table_shape(pg, &pair.postgres).await.map_err(pg_err)? {
            Some(shape) if shape.refusal(&pair.postgres).is_some() => continue,
            Some(shape) => partitioned |= shape.partitioned(),
            None => {}
        }
        let row = pg
            .query_opt(
                "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&pair.postgres.schema, &pair.postgres.name],
            )
            .await
            .map_err(pg_err)?;
        if let Some(row) = row {
            let t = (pair.postgres.schema.clone(), pair.postgres.name.clone(), get(&row, 0)?);
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    Ok((out, partitioned))
}

async fn publication(pg: &Client, cfg: &Config, facts: &PgFacts, database: &str, r: &mut Report) -> Res<()> {
    let name = &cfg.postgres.publication;
    let object = format!("postgres publication {name}");
    let (tables, partitioned) = existing_tables(pg, cfg).await?;
    let not_owned: Vec<String> = tables.iter().filter(|(_, _, owned)| !owned).map(|(s, t, _)| format!("{s}.{t}")).collect();
    let row = pg
        .query_opt("SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication WHERE pubname = $1", &[name])
        .await
        .map_err(pg_err)?;
    let Some(row) = row else {
        let mut cannot = Vec::new();
        if !facts.superuser {
            let create: bool = get(&pg.query_one("SELECT has_database_privilege(current_database(), 'CREATE')", &[]).await.map_err(pg_err)?, 0)?;
            if !create {
                cannot.push(format!("GRANT CREATE ON DATABASE {} TO {}", q(database), q(&facts.user)));
            }
            if !not_owned.is_empty() {
                cannot.push(format!("the role must own {} (ALTER TABLE … OWNER TO {})", not_owned.join(", "), q(&facts.user)));
            }
        }
        if cannot.is_empty() {
            r.problem(&object, "does not exist yet: run `tandem init` (creates it)");
        } else {
            r.problem(&object, format!("does not exist, and `tandem init` cannot create it as {}: {}", facts.user, cannot.join("; ")));
        }
        return Ok(());
    };
    let all: bool = get(&row, 0)?;
    let ops = [("insert", get::<bool>(&row, 1)?), ("update", get(&row, 2)?), ("delete", get(&row, 3)?), ("truncate", get(&row, 4)?)];
    if all {
        r.problem(
            &object,
            format!("is FOR ALL TABLES, tandem needs exactly the paired tables: DROP PUBLICATION {} and run `tandem init`", q(name)),
        );
    } else {
        let rows = pg
            .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[name])
            .await
            .map_err(pg_err)?;
        let mut published = Vec::new();
        for row in &rows {
            published.push((get::<String>(row, 0)?, get::<String>(row, 1)?));
        }
        let missing: Vec<String> = tables
            .iter()
            .filter(|(s, t, _)| !published.iter().any(|(ps, pt)| ps == s && pt == t))
            .map(|(s, t, _)| format!("{s}.{t}"))
            .collect();
        let extra: Vec<String> = published
            .iter()
            .filter(|(s, t)| !cfg.pairs.iter().any(|p| &p.postgres.schema == s && &p.postgres.name == t))
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        if !missing.is_empty() {
            r.problem(
                &object,
                format!(
                    "does not publish {}: run `tandem init` (sets its table list) or ALTER PUBLICATION {} ADD TABLE {}",
                    missing.join(", "),
                    q(name),
                    missing.join(", ")
                ),
            );
        }
        if !extra.is_empty() {
            r.problem(
                &object,
                format!(
                    "also publishes {}, which no pair names: run `tandem init` (sets its table list) or ALTER PUBLICATION {} DROP TABLE {}",
                    extra.join(", "),
                    q(name),
                    extra.join(", ")
                ),
            );
        }
    }
    let via_root: bool = get(&row, 5)?;
    if partitioned && !via_root {
        r.problem(
            &object,
            format!(
                "publishes the changes of partitioned tables under their partitions' names, which no pair names: run `tandem init` (sets it) or ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
                q(name)
            ),
        );
    }
    let off: Vec<&str> = ops.iter().filter(|(_, on)| !on).map(|(op, _)| *op).collect();
    if !off.is_empty() {
        r.problem(
            &object,
            format!(
                "does not publish {}: ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate')",
                off.join(", "),
                q(name)
            ),
        );
    }
    Ok(())
}

/// The replication origin (info) and the origin functions the appliers call.
async fn origin(pg: &Client, cfg: &Config, facts: &PgFacts, r: &mut Report) -> Res<()> {
    let name = cfg.origin_name();
    let object = format!("postgres replication origin {name}");
    let exists = pg.query_opt("SELECT 1 FROM pg_replication_origin WHERE roname = $1", &[&name]).await.map_err(pg_err)?.is_some();
    let mut needed = vec![
        "pg_replication_origin_session_setup(text)",
        "pg_replication_origin_session_reset()",
        "pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)",
        "pg_logical_emit_message(boolean, text, text)",
    ];
    if exists {
        r.info(&object, "exists (marks tandem's own writes into Postgres)");
    } else {
        r.info(&object, "does not exist yet: `tandem init` creates it");
        needed.push("pg_replication_origin_create(text)");
    }
    if facts.superuser {
        return Ok(());
    }
    let mut denied = Vec::new();
    for f in needed {
        let row = pg
            .query_one(
                "SELECT CASE WHEN to_regprocedure($1) IS NULL THEN NULL ELSE has_function_privilege($1, 'EXECUTE') END",
                &[&f],
            )
            .await
            .map_err(pg_err)?;
        if get::<Option<bool>>(&row, 0)? == Some(false) {
            denied.push(f);
        }
    }
    if !denied.is_empty() {
        r.problem(
            format!("postgres role {}", facts.user),
            format!(
                "cannot execute {} (echo suppression marks tandem's writes with origin {name}): {}",
                denied.join(", "),
                denied.iter().map(|f| format!("GRANT EXECUTE ON FUNCTION {f} TO {}", q(&facts.user))).collect::<Vec<_>>().join("; ")
            ),
        );
    }
    Ok(())
}

const STATE_TABLES: [&str; 4] = ["checkpoints", "conflicts", "quarantine", "signals"];

async fn state_schema(pg: &Client, cfg: &Config, facts: &PgFacts, database: &str, r: &mut Report) -> Res<()> {
    let schema = &cfg.state_schema;
    let object = format!("postgres schema {schema}");
    let user = q(&facts.user);
    let row = pg
        .query_opt(
            "SELECT has_schema_privilege(n.oid, 'USAGE'), has_schema_privilege(n.oid, 'CREATE') FROM pg_namespace n WHERE n.nspname = $1",
            &[schema],
        )
        .await
        .map_err(pg_err)?;
    let Some(row) = row else {
        let create: bool = get(&pg.query_one("SELECT has_database_privilege(current_database(), 'CREATE')", &[]).await.map_err(pg_err)?, 0)?;
        if create {
            r.info(&object, "does not exist yet: `tandem init` creates it");
        } else {
            r.problem(
                &object,
                format!(
                    "does not exist, and role {} may not create it: GRANT CREATE ON DATABASE {} TO {user}, or CREATE SCHEMA {} AUTHORIZATION {user}",
                    facts.user,
                    q(database),
                    q(schema)
                ),
            );
        }
        return Ok(());
    };
    let (usage, create): (bool, bool) = (get(&row, 0)?, get(&row, 1)?);
    let lacking: Vec<&str> = [("USAGE", usage), ("CREATE", create)].iter().filter(|(_, ok)| !ok).map(|(p, _)| *p).collect();
    if !lacking.is_empty() {
        r.problem(
            &object,
            format!("role {} lacks {} on it: GRANT {} ON SCHEMA {} TO {user}", facts.user, lacking.join(", "), lacking.join(", "), q(schema)),
        );
        if !usage {
            return Ok(());
        }
    }
    for table in STATE_TABLES {
        let row = pg
            .query_opt(
                "SELECT has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'),
                        has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE')
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                &[schema, &table],
            )
            .await
            .map_err(pg_err)?;
        let Some(row) = row else { continue };
        let privs = [("SELECT", get::<bool>(&row, 0)?), ("INSERT", get(&row, 1)?), ("UPDATE", get(&row, 2)?), ("DELETE", get(&row, 3)?)];
        let lacking: Vec<&str> = privs.iter().filter(|(_, ok)| !ok).map(|(p, _)| *p).collect();
        if !lacking.is_empty() {
            r.problem(
                format!("postgres table {schema}.{table}"),
                format!(
                    "role {} lacks {}: GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {user}",
                    facts.user,
                    lacking.join(", "),
                    q(schema),
                    q(table)
                ),
            );
        }
    }
    Ok(())
}
