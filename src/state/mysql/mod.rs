//! Every read and write of tandem's state tables in MySQL/MariaDB (the
//! `tandem` database, or `state_schema`), one file per table: the
//! `postgres_to_mysql` checkpoint with its lease fence (`checkpoints`), the
//! lease epoch, the origin marker, conflicts, quarantine, parked changes,
//! backfill progress (`backfill`); and, across every table, retiring a
//! pipeline's state for `tandem teardown` (`retire`).
//!
//! `MyState` is one pipeline and direction (the applier's view);
//! `MyPipelineState` is the whole pipeline, for what is not tied to one
//! direction: the lease row, the origin marker of the commands' writes, and
//! the commands that read or tidy both directions' rows (`status`,
//! `conflicts`, `quarantine`, `backfill`).
//!
//! The applier sends its statements in multi-statement round trips, so the
//! writes of a batch are rendered into its statement buffer (`push_*`) and
//! travel with the batch's COMMIT; reads run at once. Every statement names
//! the pipeline (and direction where the table has one): several pipelines
//! may share the state database. Literals are quoted for tandem's sessions
//! (`NO_BACKSLASH_ESCAPES`). Nothing here decides anything: callers choose
//! what to write, this module only says how.

mod backfill;
mod checkpoints;
mod conflicts;
mod lease;
mod origin_marker;
mod parked;
mod quarantine;
mod retire;

use crate::config::{Config, Direction};
use crate::sql::my::{ident, push_literal};

/// The state tables of one pipeline and direction in one MySQL server.
#[derive(Debug, Clone)]
pub struct MyState {
    /// The quoted state database.
    db: String,
    /// Its name as configured.
    db_name: String,
    pipeline: String,
    direction: &'static str,
}

/// Appends a literal, or `NULL` for `None`.
fn push_opt(out: &mut String, v: Option<&str>) {
    match v {
        Some(t) => push_literal(out, t),
        None => out.push_str("NULL"),
    }
}

/// Column `i` of `row` as text, whatever its type (NULL → `None`).
pub(crate) fn text_at(row: &mysql_async::Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        mysql_async::Value::Int(n) => Some(n.to_string()),
        mysql_async::Value::UInt(n) => Some(n.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// Column `i` of `row` as an integer, whatever its type.
fn i64_at(row: &mysql_async::Row, i: usize) -> Option<i64> {
    text_at(row, i).and_then(|t| t.parse().ok())
}

impl MyState {
    pub fn new(state_db: &str, pipeline: &str, direction: Direction) -> Self {
        MyState { db: ident(state_db), db_name: state_db.to_string(), pipeline: pipeline.to_string(), direction: direction.key() }
    }

    /// The state database's name (unquoted).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// `` `db`.table ``.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.db)
    }
}

/// The state tables of one pipeline in one MySQL server, whatever the
/// direction.
#[derive(Debug, Clone)]
pub struct MyPipelineState {
    /// The quoted state database.
    db: String,
    /// Its name as configured.
    db_name: String,
    pipeline: String,
}

impl MyPipelineState {
    pub fn new(cfg: &Config) -> Self {
        MyPipelineState { db: ident(&cfg.state_schema), db_name: cfg.state_schema.clone(), pipeline: cfg.pipeline.clone() }
    }

    /// `` `db`.table ``.
    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.db)
    }
}
