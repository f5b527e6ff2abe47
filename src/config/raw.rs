//! The config file as written: serde structs that mirror DESIGN.md §5 exactly.
//!
//! Every struct denies unknown keys. Nothing here is interpreted; `validate`
//! turns these into the typed `Config`. Values that are enums in the typed
//! config stay strings here so that a bad value is reported with its key path.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub pipeline: Option<RawPipeline>,
    pub postgres: Option<RawPostgres>,
    pub mysql: Option<RawMysql>,
    pub apply: Option<RawApply>,
    pub metrics: Option<RawMetrics>,
    pub timeouts: Option<RawTimeouts>,
    #[serde(default)]
    pub pairs: Vec<RawPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: Option<String>,
    pub state_schema: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub slot: Option<String>,
    pub publication: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMysql {
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub server_id: Option<i64>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub echo_tag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApply {
    pub max_batch_rows: Option<i64>,
    pub max_batch_delay_ms: Option<i64>,
    pub on_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
    pub max_healthy_lag_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub statement_seconds: Option<f64>,
    pub lock_seconds: Option<f64>,
    pub read_seconds: Option<f64>,
    pub connect_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPair {
    pub name: Option<String>,
    pub postgres: Option<String>,
    pub mysql: Option<String>,
    pub key: Option<Vec<String>>,
    pub default_owner: Option<String>,
    pub on_conflict: Option<String>,
    pub timestamp_column: Option<String>,
    pub tie_breaker: Option<String>,
    pub deletes: Option<String>,
    pub missing_row: Option<String>,
    pub zero_dates: Option<String>,
    pub direction: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, RawColumn>,
}

/// A column entry: either just an owner (`email = "postgres"`) or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawColumn {
    Owner(String),
    Full(RawColumnFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumnFull {
    pub owner: Option<String>,
    pub postgres: Option<String>,
    pub mysql: Option<String>,
}
