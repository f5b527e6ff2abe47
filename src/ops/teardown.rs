//! `tandem teardown`: removes what `tandem init` created, so that a retired
//! pipeline leaves no logical slot retaining WAL until the disk fills.
//!
//! Postgres: the logical slot, the publication, the replication origins
//! (`tandem_<pipeline>` and the `_repair` one of `check --repair`) and,
//! unless `keep_state`, the state schema; MySQL: the state database. A state
//! schema/database that other pipelines still keep rows in is not dropped:
//! only this pipeline's rows and staging tables are removed from it.
//!
//! Invariants: nothing is dropped while a `tandem run` holds the pipeline
//! lease or a session streams from the slot (`Error::InUse`); teardown takes
//! the lease itself for its duration, so no `tandem run` starts streaming
//! meanwhile. Every step is idempotent: a second teardown finds nothing and
//! says so. It never touches the paired tables (their REPLICA IDENTITY
//! stays as it is) nor another pipeline's objects.

use crate::config::{Config, Side};
use crate::run::lease::{holder, lease_key};
use crate::sql::pg::{ident as pg_ident, literal as pg_literal};
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::{Error, Result};

/// What teardown does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeardownOptions {
    /// Keep the state schema/database (checkpoints, conflicts, quarantine).
    pub keep_state: bool,
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Dropped,
    /// There was nothing to drop.
    Absent,
    /// Left in place, and why.
    Kept(String),
}

/// One object teardown handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub side: Side,
    /// `logical slot tandem_crm`, `state schema tandem`, …
    pub object: String,
    pub outcome: Outcome,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Dropped => write!(f, "{}: {} dropped", self.side, self.object),
            Outcome::Absent => write!(f, "{}: {} not present (nothing to drop)", self.side, self.object),
            Outcome::Kept(why) => write!(f, "{}: {} kept: {why}", self.side, self.object),
        }
    }
}

/// The replication origins of a pipeline: the appliers' and `check --repair`'s.
fn origins(cfg: &Config) -> [String; 2] {
    let origin = cfg.origin_name();
    [format!("{origin}_repair"), origin]
}

/// What teardown will drop, for the confirmation question (pure).
pub fn plan(cfg: &Config, opts: TeardownOptions) -> Vec<String> {
    let [repair, origin] = origins(cfg);
    let mut out = vec![
        format!("postgres {}: logical slot {} (changes it has not streamed yet are lost with it)", cfg.postgres.endpoint.describe(), cfg.postgres.slot),
        format!("postgres: publication {}", cfg.postgres.publication),
        format!("postgres: replication origins {origin} and {repair}"),
    ];
    if !opts.keep_state {
        let shared = "or only this pipeline's rows in it, when other pipelines use it too";
        out.push(format!("postgres: state schema {} with checkpoints, conflicts and quarantine ({shared})", cfg.state_schema));
        out.push(format!("mysql {}: state database {} ({shared})", cfg.mysql.endpoint.describe(), cfg.state_schema));
    }
    out
}

/// Drops what `plan` lists; refuses (`Error::InUse`, nothing dropped) while
/// the pipeline is in use.
pub async fn teardown(cfg: &Config, opts: TeardownOptions) -> Result<Vec<Action>> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    // Held until this session ends: no `tandem run` takes over meanwhile.
    let key = lease_key(&cfg.pipeline);
    let got: bool = pg.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await?.get(0);
    if !got {
        let by = holder(&pg, key).await?.unwrap_or_else(|| "a session that released it meanwhile".into());
        return Err(Error::InUse { what: format!("a `tandem run` holds the lease of pipeline {}", cfg.pipeline), by });
    }
    let slot = pg.query_opt("SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&cfg.postgres.slot]).await?;
    if let Some(row) = &slot {
        let active: bool = row.try_get(0)?;
        let pid: Option<i32> = row.try_get(1)?;
        if active {
            let by = pid.map_or_else(|| "a backend".to_string(), |p| format!("backend pid {p}"));
            return Err(Error::InUse { what: format!("logical slot {} is streaming", cfg.postgres.slot), by });
        }
    }

    let mut actions = Vec::new();
    let mut act = |side: Side, object: String, outcome: Outcome| actions.push(Action { side, object, outcome });
    let object = format!("logical slot {}", cfg.postgres.slot);
    if slot.is_some() {
        pg.batch_execute(&crate::ops::init::drop_slot_sql(&cfg.postgres.slot)).await?;
        act(Side::Postgres, object, Outcome::Dropped);
    } else {
        act(Side::Postgres, object, Outcome::Absent);
    }
    let publication = &cfg.postgres.publication;
    let exists = pg.query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[publication]).await?.is_some();
    if exists {
        pg.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", pg_ident(publication))).await?;
    }
    act(Side::Postgres, format!("publication {publication}"), if exists { Outcome::Dropped } else { Outcome::Absent });
    for origin in origins(cfg) {
        let exists = pg.query_opt("SELECT 1 FROM pg_replication_origin WHERE roname = $1", &[&origin]).await?.is_some();
        if exists {
            pg.batch_execute(&format!("SELECT pg_replication_origin_drop({})", pg_literal(&origin))).await?;
        }
        act(Side::Postgres, format!("replication origin {origin}"), if exists { Outcome::Dropped } else { Outcome::Absent });
    }

    let staging: Vec<String> = cfg.pairs.iter().map(|p| crate::backfill::staging::staging_name(&cfg.pipeline, &p.name)).collect();
    let pg_state = PgPipelineState::new(cfg);
    let object = format!("state schema {}", cfg.state_schema);
    if opts.keep_state {
        act(Side::Postgres, object, Outcome::Kept("--keep-state".into()));
    } else if !pg_state.schema_exists(&pg).await? {
        act(Side::Postgres, object, Outcome::Absent);
    } else {
        let others = pg_state.other_pipelines(&pg).await?;
        if others.is_empty() {
            pg_state.drop_schema(&pg).await?;
            act(Side::Postgres, object, Outcome::Dropped);
        } else {
            pg_state.forget_pipeline(&pg, &staging).await?;
            act(Side::Postgres, object, Outcome::Kept(format!("pipelines {} use it too; pipeline {}'s rows were removed from it", others.join(", "), cfg.pipeline)));
        }
    }

    let object = format!("state database {}", cfg.state_schema);
    if opts.keep_state {
        act(Side::Mysql, object, Outcome::Kept("--keep-state".into()));
    } else {
        let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        let my_state = MyPipelineState::new(cfg);
        if !my_state.database_exists(&mut my).await? {
            act(Side::Mysql, object, Outcome::Absent);
        } else {
            let others = my_state.other_pipelines(&mut my).await?;
            if others.is_empty() {
                my_state.drop_database(&mut my).await?;
                act(Side::Mysql, object, Outcome::Dropped);
            } else {
                my_state.forget_pipeline(&mut my, &staging).await?;
                act(Side::Mysql, object, Outcome::Kept(format!("pipelines {} use it too; pipeline {}'s rows were removed from it", others.join(", "), cfg.pipeline)));
            }
        }
        let _ = my.disconnect().await;
    }
    let _ = pg.batch_execute("SELECT pg_advisory_unlock_all()").await;
    Ok(actions)
}

/// Is `answer` (a line typed at the confirmation question) a yes?
pub fn confirmed(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_confirms() {
        assert!(confirmed("yes\n"));
        assert!(confirmed(" Y "));
        assert!(!confirmed(""));
        assert!(!confirmed("no"));
        assert!(!confirmed("yes please"));
    }

    #[test]
    fn actions_read_as_sentences() {
        let a = Action { side: Side::Postgres, object: "logical slot tandem_crm".into(), outcome: Outcome::Dropped };
        assert_eq!(a.to_string(), "postgres: logical slot tandem_crm dropped");
        let a = Action { side: Side::Mysql, object: "state database tandem".into(), outcome: Outcome::Absent };
        assert_eq!(a.to_string(), "mysql: state database tandem not present (nothing to drop)");
    }
}
