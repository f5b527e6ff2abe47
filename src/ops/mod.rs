//! Operator commands (init, validate, demo, ...).
pub mod introspect;
pub mod init;
pub mod run;
pub mod lease;
pub mod validate;
pub mod demo;
pub mod check;
pub mod conflicts;
pub mod backoff;
pub mod status;
pub mod quarantine;
