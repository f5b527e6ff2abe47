//! `tandem backfill`, the command: it copies the rows a pair already holds on
//! one side to the other in key-ordered chunks (`copy`), loads each chunk
//! into the destination's staging table (`load`) and reports progress
//! through `copy::Report` (`display::Console`: a bar on a terminal, log lines
//! otherwise). The chunks are merged by the running pipeline; the method,
//! and why it never overwrites a newer value or brings a deleted row back,
//! is in `crate::backfill`, which holds the pipeline's side (watermark
//! signals, windows, staging SQL, progress rows) and knows nothing of this
//! command.
//!
//! With `--all`, a pair that fails does not stop the others (each pair's
//! result is reported), and where the Postgres destination checks foreign
//! keys, `order` copies parents first and reports cycles.
//!
//! Invariant: nothing here prints results; the CLI gives `Console` the sink
//! for its result lines and maps the outcome to the exit code.

pub mod copy;
pub mod display;
mod load;
pub mod order;
