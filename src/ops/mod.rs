//! Operator commands (DESIGN.md §6): init, validate, backfill, check,
//! status, conflicts, quarantine, demo, teardown, barrier, sequences. Each is a library function that
//! returns a typed report or result (text renderers, where a command has
//! one, sit next to its report as pure `fn -> String`); none prints a result
//! or picks an exit code, and none imports `crate::cli`, which alone maps
//! reports to output and exit codes.

pub mod backfill;
pub mod barrier;
pub mod check;
pub mod conflicts;
pub mod demo;
pub mod explain;
pub mod init;
pub mod keyspace;
pub mod quarantine;
pub mod sequences;
pub mod status;
pub mod teardown;
pub mod validate;
pub mod wait;
