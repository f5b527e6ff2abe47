//! tandem's state tables (DESIGN.md §4) on both databases: their DDL
//! (`ddl`), the names the change streams know some of them by (`names`),
//! and every read and write of them, one module per dialect (`postgres`,
//! `mysql`, one file per table inside), with the row types both share.
//!
//! Both databases hold a `tandem` schema/database (configurable with
//! `state_schema`). The checkpoint of a direction lives in its destination
//! and is written in the same transaction as the rows it covers, so it
//! moves only with a destination commit.
//!
//! Invariants: no SQL naming a state table is written outside this module
//! (a command that runs its statements on a text session of
//! `tables::sides` takes them from here as `TextStatement`s); this module
//! decides nothing about what to write, and it sits low: it uses `config`,
//! `sql`, `error` and the drivers, never the pipeline or the commands.

pub mod ddl;
pub mod mysql;
pub mod names;
pub mod postgres;

/// A change the destination rejected, as its `quarantine` row stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    pub pair: String,
    pub key_json: String,
    pub column: Option<String>,
    pub value: Option<String>,
    pub error: String,
    pub change_json: String,
}

/// A decided (or, without a winner, open) conflict, as its `conflicts` row
/// stores it; values are `None` for SQL NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    pub pair: String,
    pub key_json: String,
    pub column: String,
    pub postgres_value: Option<String>,
    pub mysql_value: Option<String>,
    pub policy: String,
    /// `postgres` / `mysql`; `None` while a `manual` conflict is open.
    pub winner: Option<String>,
}

/// A direction's checkpoint row, as `tandem status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRow {
    pub position: String,
    /// When it last moved (UTC, ISO 8601 with microseconds).
    pub updated_at: Option<String>,
    /// Seconds since it last moved, by the database's clock.
    pub age_seconds: Option<f64>,
}

/// The parked changes of one pair in one direction, counted.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedCount {
    pub direction: String,
    pub pair: String,
    pub changes: i64,
    /// Why the pair was paused (one of the rows' reasons).
    pub reason: String,
}

/// A `conflicts` row as `tandem conflicts list` shows it; timestamps as
/// the database renders them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConflict {
    pub id: i64,
    pub pair: String,
    pub key_json: String,
    pub column: String,
    pub postgres_value: Option<String>,
    pub mysql_value: Option<String>,
    pub policy: String,
    pub winner: Option<String>,
    pub decided_at: String,
    pub resolved_at: Option<String>,
}

/// The conflict rows a resolution closes in one database: the row `id`
/// when the conflict's id names this database (`place`: the id's prefix,
/// `pg` or `my`), and every open row of the same pair, key and column (a
/// manual conflict is recorded by both appliers, one row in each database).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConflictTarget<'a> {
    pub place: &'a str,
    pub id: i64,
    pub pair: &'a str,
    pub key_json: &'a str,
    pub column: &'a str,
}

/// A `quarantine` row as `tandem quarantine list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredQuarantine {
    pub id: i64,
    pub direction: String,
    pub pair: String,
    pub key_json: String,
    pub column: Option<String>,
    pub value: Option<String>,
    pub error: String,
    pub position: String,
    pub created_at: String,
    pub change_json: String,
}

/// A statement for a session that binds every parameter as text
/// (`tables::sides`): its SQL and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct TextStatement {
    pub sql: String,
    pub params: Vec<String>,
}

/// The statements `tandem backfill` runs on one database's `signals` and
/// `backfills` tables, for a text-parameter session (`PgPipelineState`,
/// `MyPipelineState`). The pipeline merges the chunks and moves the
/// progress row on (`PgState` / `MyState::backfill_chunk_done`); the
/// command only registers a run, reads the row and marks it done.
pub trait BackfillStatements {
    /// Writes a watermark at the source: a `signals` row of `kind`
    /// (`backfill-low` / `backfill-high`) with the watermark's JSON
    /// `payload`, in one transaction. On Postgres the same statement emits
    /// the payload as the transactional logical message that the source
    /// reads; the row documents it.
    fn watermark(&self, kind: &str, payload: &str) -> TextStatement;
    /// `pair`'s progress row, every column as text: run, chunk, outcome,
    /// rows_applied, rows_total, last_key, status, source.
    fn read_backfill(&self, pair: &str) -> TextStatement;
    /// Registers a fresh run of `pair` copying `total` rows from `source`:
    /// deletes its progress row, then inserts one with the progress reset.
    fn start_backfill(&self, pair: &str, source: &str, run: &str, total: u64) -> [TextStatement; 2];
    /// Registers a resumed run: the same progress under run id `run`.
    fn resume_backfill(&self, pair: &str, run: &str, total: u64) -> TextStatement;
    /// Marks `pair`'s backfill done.
    fn finish_backfill(&self, pair: &str) -> TextStatement;
}

#[cfg(test)]
mod tests {
    use super::mysql::MyPipelineState;
    use super::postgres::PgPipelineState;
    use super::*;
    use std::path::Path;

    fn config() -> crate::config::Config {
        let text = r#"
            [pipeline]
            name = "crm"
            [postgres]
            url = "postgresql://tandem@127.0.0.1:5432/app"
            [mysql]
            url = "mysql://tandem@127.0.0.1:3306/app"
            server_id = 4001
            [[pairs]]
            name = "customers"
            postgres = "public.customers"
            mysql = "app.customers"
        "#;
        let env = |_: &str| None;
        let read = |p: &Path| std::fs::read_to_string(p);
        crate::config::parse(text, Path::new("t.toml"), &crate::config::Inputs { env: &env, read_file: &read }).expect("test config")
    }

    fn statements(s: &dyn BackfillStatements) -> Vec<TextStatement> {
        let mut all = vec![s.watermark("backfill-low", "{}"), s.read_backfill("customers"), s.resume_backfill("customers", "r1", 7), s.finish_backfill("customers")];
        all.extend(s.start_backfill("customers", "postgres", "r1", 7));
        all
    }

    #[test]
    fn backfill_statements_bind_one_parameter_per_placeholder() {
        let cfg = config();
        for st in statements(&PgPipelineState::new(&cfg)) {
            let highest = (1..=9).filter(|n| st.sql.contains(&format!("${n}"))).max().unwrap_or(0);
            assert_eq!(highest, st.params.len(), "{st:?}");
            assert!(st.sql.contains("\"tandem\"."), "{}", st.sql);
        }
        for st in statements(&MyPipelineState::new(&cfg)) {
            assert_eq!(st.sql.matches('?').count(), st.params.len(), "{st:?}");
            assert!(st.sql.contains("`tandem`."), "{}", st.sql);
        }
    }
}
