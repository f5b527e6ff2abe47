//! DDL of the state tables (DESIGN.md §4), idempotent (`IF NOT EXISTS`).
//!
//! Both databases hold a `tandem` schema/database (configurable with
//! `state_schema`): `checkpoints`, `conflicts`, `quarantine`, `parked`, `signals`, `backfills`
//! (see `crate::backfill::progress`), and on
//! MySQL also `origin_marker`. The checkpoint of a direction lives in its
//! destination and is written in the same transaction as the rows it covers,
//! so it moves only with a destination commit. Both also hold a `lease` row
//! per pipeline whose epoch each new lease holder increments: checkpoint
//! writes are conditional on it (see `run::lease`). The reads and writes of
//! these tables are in `state::postgres` and `state::mysql`.

use crate::config::Direction;

/// The state tables both databases hold (MySQL also `origin_marker`), as the DDL below creates them.
pub const STATE_TABLES: &[&str] = &["checkpoints", "conflicts", "quarantine", "parked", "signals", "backfills", "lease"];

/// DDL for the Postgres state schema (idempotent).
pub fn postgres_state_ddl(schema: &str) -> Vec<String> {
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
                pipeline text NOT NULL, direction text NOT NULL, position text NOT NULL,
                server_identity text, updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (pipeline, direction))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.conflicts (
                id bigserial PRIMARY KEY, pipeline text NOT NULL, pair text NOT NULL, key_json text NOT NULL,
                column_name text NOT NULL, postgres_value text, mysql_value text,
                postgres_commit_ts timestamptz, mysql_commit_ts timestamptz, policy text NOT NULL,
                winner text, decided_at timestamptz NOT NULL DEFAULT now(), resolved_at timestamptz)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.quarantine (
                id bigserial PRIMARY KEY, pipeline text NOT NULL, direction text NOT NULL, pair text NOT NULL,
                key_json text NOT NULL, column_name text, value_text text, error text NOT NULL,
                change_json text NOT NULL, position text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.parked (
                id bigserial PRIMARY KEY, pipeline text NOT NULL, direction text NOT NULL, pair text NOT NULL,
                reason text NOT NULL, change_json text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.signals (
                id bigserial PRIMARY KEY, pipeline text NOT NULL, kind text NOT NULL, payload text,
                created_at timestamptz NOT NULL DEFAULT now())"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.backfills (
                pipeline text NOT NULL, pair text NOT NULL, source text NOT NULL, run text NOT NULL,
                chunk bigint NOT NULL DEFAULT 0, outcome text NOT NULL DEFAULT 'none', rows_applied bigint NOT NULL DEFAULT 0,
                rows_total bigint, last_key text, status text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, pair))"
        ),
        postgres_lease_ddl(schema),
    ]
}

/// The Postgres `lease` table: one row per pipeline, its epoch bumped by each new holder.
pub fn postgres_lease_ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.lease (
            pipeline text PRIMARY KEY, epoch bigint NOT NULL, holder text, acquired_at timestamptz NOT NULL DEFAULT now())"
    )
}

/// The MySQL `lease` table: one row per pipeline, its epoch bumped by each new holder.
pub fn mysql_lease_ddl(db: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{db}`.lease (
            pipeline VARCHAR(64) NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL, holder VARCHAR(255) NULL,
            acquired_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
    )
}

/// DDL for the MySQL state database (idempotent).
pub fn mysql_state_ddl(db: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.checkpoints (
                pipeline VARCHAR(64) NOT NULL, direction VARCHAR(32) NOT NULL, position TEXT NOT NULL,
                server_identity VARCHAR(255) NULL, updated_at DATETIME(6) NOT NULL,
                PRIMARY KEY (pipeline, direction)) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.origin_marker (
                pipeline VARCHAR(64) NOT NULL PRIMARY KEY, txn BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.conflicts (
                id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, pipeline VARCHAR(64) NOT NULL, pair VARCHAR(64) NOT NULL,
                key_json TEXT NOT NULL, column_name VARCHAR(64) NOT NULL, postgres_value LONGTEXT, mysql_value LONGTEXT,
                postgres_commit_ts DATETIME(6), mysql_commit_ts DATETIME(6), policy VARCHAR(32) NOT NULL,
                winner VARCHAR(16), decided_at DATETIME(6) NOT NULL, resolved_at DATETIME(6)) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.quarantine (
                id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, pipeline VARCHAR(64) NOT NULL, direction VARCHAR(32) NOT NULL,
                pair VARCHAR(64) NOT NULL, key_json TEXT NOT NULL, column_name VARCHAR(64), value_text LONGTEXT,
                error TEXT NOT NULL, change_json LONGTEXT NOT NULL, position TEXT NOT NULL, created_at DATETIME(6) NOT NULL)
                ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.parked (
                id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, pipeline VARCHAR(64) NOT NULL, direction VARCHAR(32) NOT NULL,
                pair VARCHAR(64) NOT NULL, reason TEXT NOT NULL, change_json LONGTEXT NOT NULL, created_at DATETIME(6) NOT NULL,
                KEY parked_pair (pipeline, direction, pair, id)) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.signals (
                id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, pipeline VARCHAR(64) NOT NULL, kind VARCHAR(32) NOT NULL,
                payload TEXT, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.backfills (
                pipeline VARCHAR(64) NOT NULL, pair VARCHAR(64) NOT NULL, source VARCHAR(16) NOT NULL, run VARCHAR(64) NOT NULL,
                chunk BIGINT NOT NULL DEFAULT 0, outcome VARCHAR(16) NOT NULL DEFAULT 'none', rows_applied BIGINT NOT NULL DEFAULT 0,
                rows_total BIGINT NULL, last_key TEXT NULL, status VARCHAR(16) NOT NULL, started_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL, PRIMARY KEY (pipeline, pair)) ENGINE=InnoDB"
        ),
        mysql_lease_ddl(db),
    ]
}

/// The state-table key of a direction's checkpoint row.
pub fn direction_key(d: Direction) -> &'static str {
    d.key()
}
