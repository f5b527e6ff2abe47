//! Integration test modules; declare each new file here.

mod harness;
mod pg_to_mysql;
mod pg_to_mysql_process;
mod util;
mod mysql_to_pg;
mod pg_source;
mod mysql_source;
mod check;
mod types;
mod conflicts;
mod convergence;
mod service;
mod quarantine;
mod demo;
mod validate;
mod two_pairs;
mod types_regressions;
mod schema_changes;
mod outages;
mod ha;
mod heartbeat;
mod tls;
mod zero_dates;
mod unrepresentable;
mod generated;
mod backfill;
