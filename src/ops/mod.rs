//! Operator commands (init, validate, demo, ...).
pub mod backfill;
pub mod init;
pub mod validate;
pub mod demo;
pub mod check;
pub mod conflicts;
pub mod status;
pub mod quarantine;
