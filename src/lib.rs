//! tandem: live, bidirectional replication between PostgreSQL and MySQL/MariaDB.
//!
//! Data flow (DESIGN.md §1): a source (`source::postgres`, `source::mysql`)
//! turns wire bytes into normalized `model::Change`s grouped in transactions;
//! the pipeline batches whole source transactions and an applier (`apply`)
//! writes each batch to the other database together with its checkpoint, in
//! one destination transaction; only then is the source acknowledged.

pub mod apply;
pub mod backfill;
pub mod cli;
pub mod codec;
pub mod config;
pub mod conflict;
pub mod db;
pub mod echo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod run;
pub mod schema;
pub mod service;
pub mod shutdown;
pub mod source;
pub mod sql;
pub mod state;
pub mod tables;
pub mod testbed;
pub mod tls;

pub use error::{Error, Result};
