//! Every read and write of tandem's state tables in Postgres (the `tandem`
//! schema, or `state_schema`), one file per table: the `mysql_to_postgres`
//! checkpoint with its source identity and lease fence (`checkpoints`), the
//! lease epoch, conflicts, quarantine, parked changes, backfill progress
//! (`backfill`); and, across every table, retiring a pipeline's state for
//! `tandem teardown` (`retire`). The applier writes its rows inside its batch transaction,
//! so they commit or roll back with the batch.
//!
//! `PgState` is one pipeline and direction (the applier's view);
//! `PgPipelineState` is the whole pipeline, for what is not tied to one
//! direction: the lease row, and the commands that read or tidy both
//! directions' rows (`status`, `conflicts`, `quarantine`, `backfill`).
//!
//! Every statement names the pipeline (and direction where the table has
//! one): several pipelines may share the state schema. Nothing here decides
//! anything: callers choose what to write, this module only says how.

mod backfill;
mod checkpoints;
mod conflicts;
mod lease;
mod parked;
mod quarantine;
mod retire;

use crate::config::{Config, Direction};
use crate::sql::pg::ident;

/// The state tables of one pipeline and direction in one Postgres database.
#[derive(Debug, Clone)]
pub struct PgState {
    /// The quoted state schema.
    schema: String,
    /// Its name as configured.
    schema_name: String,
    pipeline: String,
    direction: &'static str,
}

impl PgState {
    pub fn new(state_schema: &str, pipeline: &str, direction: Direction) -> Self {
        PgState { schema: ident(state_schema), schema_name: state_schema.to_string(), pipeline: pipeline.to_string(), direction: direction.key() }
    }

    /// The state schema's name (unquoted).
    pub fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// `"schema".table`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn direction(&self) -> &'static str {
        self.direction
    }
}

/// The state tables of one pipeline in one Postgres database, whatever the
/// direction.
#[derive(Debug, Clone)]
pub struct PgPipelineState {
    /// The quoted state schema.
    schema: String,
    /// Its name as configured.
    schema_name: String,
    pipeline: String,
    /// The replication origin of the pipeline's sessions (`tandem_<pipeline>`).
    origin: String,
}

impl PgPipelineState {
    pub fn new(cfg: &Config) -> Self {
        PgPipelineState {
            schema: ident(&cfg.state_schema),
            schema_name: cfg.state_schema.clone(),
            pipeline: cfg.pipeline.clone(),
            origin: cfg.origin_name(),
        }
    }

    /// `"schema".table`.
    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }
}
