//! Names of tandem's control channels, shared by the writers (appliers,
//! backfill) and the readers (sources) of each: state tables that show up
//! in a change stream, and the Postgres logical-message prefixes. Pure.

/// The state table every checkpoint is written to (both databases).
pub const CHECKPOINTS: &str = "checkpoints";
/// MySQL: the table tandem's first write of every transaction goes to, when
/// the session cannot tag its events with a server id (DESIGN §2).
pub const ORIGIN_MARKER: &str = "origin_marker";
/// The table backfill watermarks are written to (both databases).
pub const SIGNALS: &str = "signals";

/// Prefix of the transactional logical message in which the Postgres
/// applier names the MySQL position each of its transactions applied
/// (`origin` is the pipeline's replication origin, `tandem_<pipeline>`).
pub fn pg_applied_prefix(origin: &str) -> String {
    format!("{origin}_applied")
}

/// Prefix of the Postgres logical messages carrying a pipeline's backfill
/// watermarks.
pub fn pg_signal_prefix(origin: &str) -> String {
    format!("{origin}_signal")
}

/// Is `name` one of the replication origins tandem's own Postgres sessions
/// use for pipeline origin `origin`: the appliers', or the one `check
/// --repair` uses while the applier holds the first (one session per origin
/// on PG ≤ 15)?
pub fn is_own_origin(name: &str, origin: &str) -> bool {
    name == origin || name.strip_suffix("_repair") == Some(origin)
}
