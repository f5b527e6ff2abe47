//! Reading paired tables on both sides, shared by `tandem check` and
//! `tandem backfill`: the canonical row text each server renders in its own
//! SQL and the key-range / key-ordered chunk statements built on it
//! (`canonical`), the sessions that run them and count what they receive
//! (`sides`), and the probe that waits until the running pipeline has caught
//! up with both servers' positions (`lag`).
//!
//! Invariants: equal values render as byte-identical text on both servers,
//! and every statement here binds its values as text parameters (no data is
//! interpolated into SQL). This module knows no command: it never prints,
//! and it imports nothing from `ops`, so both commands can stand on it.

pub(crate) mod canonical;
pub(crate) mod lag;
pub(crate) mod sides;
