//! The crate's error type and the one place that classifies errors as
//! transient (retry the connection with backoff) or definite (this change or
//! table is broken: quarantine or stop).
//!
//! Classification is by SQLSTATE (Postgres) and error number (MySQL), never by
//! message text.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("postgres: {}", pg_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    /// The replication connection broke the protocol at the connection
    /// level (an unexpected or truncated frame, the stream ended): reconnecting helps.
    #[error("postgres replication protocol: {0}")]
    Protocol(String),
    #[error("postgres server error {code}: {message}")]
    PgServer { code: String, message: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes of a change stream or a stored record that do not decode: the
    /// same bytes fail again, so this is never retried.
    #[error("decode: {0}")]
    Decode(String),
    /// The change stream carries something tandem cannot replicate
    /// faithfully (a statement-based event of a mapped table, a compressed
    /// or partial event, XA): the direction stops with the cause named.
    #[error("unsupported in the change stream: {0}")]
    Unsupported(String),
    /// A value the destination cannot hold exactly (found before sending it).
    #[error("pair {pair}, column {column}: {message}")]
    Value { pair: String, column: String, message: String },
    #[error("schema of pair {pair}: {message}")]
    Schema { pair: String, message: String },
    /// A server setting, object or privilege tandem needs is missing or
    /// wrong (binary log off, a slot of another plugin, a replication origin
    /// the role may not use); the message says what to change.
    #[error("{0}")]
    Setup(String),
    /// The server asks for a login tandem cannot give (no password
    /// configured, an unsupported authentication method, a failed SCRAM exchange).
    #[error("authentication: {0}")]
    Auth(String),
    /// A stored checkpoint that cannot be resumed from (another kind of
    /// position, another server's binlog); the message says what to do.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A change the destination rejected while `on_error = "stop"`.
    #[error("the destination rejected a change (on_error = \"stop\"): {0}")]
    Rejected(String),
    /// An operator's request that names something that does not exist or
    /// cannot be done (an unknown pair, a malformed or unknown id).
    #[error("{0}")]
    Request(String),
    /// A backfill that cannot go on (the pipeline is not running or does
    /// not merge its chunks); the message says why.
    #[error("backfill: {0}")]
    Backfill(String),
    /// The pipeline lease's bookkeeping is not as tandem left it.
    #[error("lease: {0}")]
    Lease(String),
    /// A task of tandem's own ended abnormally (it panicked or was aborted).
    #[error("{0}")]
    Task(String),
    /// The destination's lease epoch is no longer this holder's: another
    /// instance took the pipeline lease, and the batch was not committed.
    #[error("fenced: the {side} lease epoch is no longer {epoch}; another instance holds the pipeline lease (batch not committed)")]
    Fenced { side: &'static str, epoch: i64 },
    /// A TLS setup or handshake failure (bad certificate, unreadable key
    /// file, server without TLS): the message names the endpoint.
    #[error("tls: {0}")]
    Tls(String),
    /// A command refused because something still uses the pipeline (a
    /// `tandem run` holding its lease, a session streaming from its slot):
    /// nothing was changed.
    #[error("{what}, held by {by}: stop it first; nothing was changed")]
    InUse { what: String, by: String },
    /// A wait on a database passed its bound (`[timeouts]`): the server or
    /// the network is stalled. Transient: the direction reconnects and
    /// resumes from its checkpoint, so nothing is lost or reordered.
    #[error("timed out after {after:?}: {what}")]
    Timeout { what: String, after: std::time::Duration },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `tokio_postgres::Error` displays only "db error" for server errors: show
/// the SQLSTATE, message, detail and hint the server sent.
fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (hint: {h})"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection lost, deadlock, lock timeout, serialization failure: retry.
    Transient,
    /// The data or schema is wrong: retrying the same thing fails again.
    Definite,
}

/// Postgres SQLSTATEs that are worth retrying.
fn pg_state_transient(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // operator intervention (admin shutdown, crash)
        || code.starts_with("53") // insufficient resources
        || matches!(code, "40001" | "40P01" | "55P03" | "55006" | "58030" | "57014")
}

/// MySQL error numbers that are worth retrying.
fn mysql_code_transient(code: u16) -> bool {
    // 1969: MariaDB max_statement_time; 3024: MySQL max_execution_time.
    matches!(code, 1205 | 1213 | 1040 | 1053 | 1077 | 1078 | 1079 | 1080 | 2002 | 2003 | 2006 | 2013 | 1927 | 4031 | 1969 | 3024)
}

impl Error {
    pub fn classify(&self) -> ErrorClass {
        use ErrorClass::*;
        match self {
            Error::Config(_)
            | Error::Tls(_)
            | Error::Decode(_)
            | Error::Unsupported(_)
            | Error::Schema { .. }
            | Error::Value { .. }
            | Error::Setup(_)
            | Error::Auth(_)
            | Error::Checkpoint(_)
            | Error::Rejected(_)
            | Error::Request(_)
            | Error::Backfill(_)
            | Error::Lease(_)
            | Error::Task(_)
            | Error::Fenced { .. }
            | Error::InUse { .. } => Definite,
            Error::Io(_) | Error::Protocol(_) | Error::Timeout { .. } => Transient,
            Error::PgServer { code, .. } => if pg_state_transient(code) { Transient } else { Definite },
            Error::Postgres(e) => match e.code() {
                Some(state) => if pg_state_transient(state.code()) { Transient } else { Definite },
                None => Transient, // closed connection, io
            },
            Error::Mysql(e) => match e {
                mysql_async::Error::Server(s) => if mysql_code_transient(s.code) { Transient } else { Definite },
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Transient,
                _ => Definite,
            },
        }
    }

    /// Does this error stop its direction for good, while the rest of the
    /// service goes on? A change stream tandem cannot decode or replicate
    /// faithfully fails again the same way at every retry: the direction
    /// halts at the event (its checkpoint stays before it) and says why.
    pub fn halts_direction(&self) -> bool {
        matches!(self, Error::Decode(_) | Error::Unsupported(_))
    }

    /// The `reason` label of `tandem_apply_retries_total` for a transient error.
    pub fn retry_reason(&self) -> &'static str {
        let code = self.server_code();
        match code.as_deref() {
            Some("40P01" | "1213") => "deadlock",
            Some("55P03" | "1205") => "lock_timeout",
            Some("57014" | "1969" | "3024") => "statement_timeout",
            Some("40001") => "serialization",
            Some(c) if c.starts_with("53") || c == "1040" => "server_busy",
            _ => match self {
                Error::Timeout { .. } => "timeout",
                _ => "connection",
            },
        }
    }

    /// May the destination's rejection of this change be set aside in the
    /// quarantine? (Data and constraint errors: yes; connection, schema and
    /// privilege problems: no — they concern every change.)
    pub fn is_rejection(&self) -> bool {
        match self {
            Error::Value { .. } => true,
            Error::Postgres(e) => e.code().is_some_and(|c| {
                let c = c.code();
                c.starts_with("22") || c.starts_with("23")
            }),
            Error::Mysql(mysql_async::Error::Server(s)) => matches!(
                s.code,
                1048 | 1062 | 1136 | 1264 | 1265 | 1292 | 1366 | 1367 | 1406 | 1416 | 1451 | 1452 | 1690 | 3140 | 4025 | 1411 | 1525 | 4078
            ),
            _ => false,
        }
    }

    /// The SQLSTATE or MySQL error number, when the server sent one.
    pub fn server_code(&self) -> Option<String> {
        match self {
            Error::PgServer { code, .. } => Some(code.clone()),
            Error::Postgres(e) => e.code().map(|c| c.code().to_string()),
            Error::Mysql(mysql_async::Error::Server(s)) => Some(s.code.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let pg = |c: &str| Error::PgServer { code: c.into(), message: String::new() }.classify();
        assert_eq!(pg("40001"), ErrorClass::Transient, "serialization failure");
        assert_eq!(pg("40P01"), ErrorClass::Transient, "deadlock");
        assert_eq!(pg("08006"), ErrorClass::Transient, "connection failure");
        assert_eq!(pg("57P01"), ErrorClass::Transient, "admin shutdown");
        assert_eq!(pg("23505"), ErrorClass::Definite, "unique violation");
        assert_eq!(pg("22003"), ErrorClass::Definite, "numeric out of range");
        assert_eq!(pg("22021"), ErrorClass::Definite, "bad encoding");
        assert!(mysql_code_transient(1213), "deadlock");
        assert!(mysql_code_transient(1205), "lock wait timeout");
        assert!(mysql_code_transient(2013), "lost connection");
        assert!(!mysql_code_transient(1062), "duplicate key");
        assert!(!mysql_code_transient(1264), "out of range");
        assert!(!mysql_code_transient(1406), "data too long");
        assert_eq!(Error::Io(std::io::Error::other("x")).classify(), ErrorClass::Transient);
        assert_eq!(Error::Decode("x".into()).classify(), ErrorClass::Definite);
        assert_eq!(Error::Tls("certificate verify failed".into()).classify(), ErrorClass::Definite);
        // A stream tandem cannot decode or replicate fails again the same way: never retried.
        assert_eq!(Error::Decode("pgoutput Begin inside an open transaction".into()).classify(), ErrorClass::Definite);
        assert_eq!(Error::Unsupported("compressed binlog events".into()).classify(), ErrorClass::Definite);
        assert_eq!(Error::Protocol("the server ended the replication stream".into()).classify(), ErrorClass::Transient);
        // A stalled server or a statement/lock bound that fired: retried, never quarantined.
        let timeout = Error::Timeout { what: "mysql applier commit".into(), after: std::time::Duration::from_secs(65) };
        assert_eq!(timeout.classify(), ErrorClass::Transient);
        assert!(!timeout.is_rejection());
        assert_eq!(pg("57014"), ErrorClass::Transient, "statement_timeout");
        assert!(mysql_code_transient(1969), "MariaDB max_statement_time");
        for definite in [
            Error::Setup("binary logging is off".into()),
            Error::Auth("no password configured".into()),
            Error::Checkpoint("taken on another server".into()),
            Error::Rejected("duplicate key".into()),
            Error::Request("no pair named x".into()),
            Error::Backfill("tandem run is not running".into()),
            Error::Lease("the lease row vanished".into()),
            Error::Task("source task panicked".into()),
            Error::Fenced { side: "mysql", epoch: 3 },
            Error::InUse { what: "a `tandem run` holds the lease of pipeline crm".into(), by: "\"tandem crm h:1\"".into() },
            Error::Schema { pair: "p".into(), message: "column missing".into() },
            Error::Value { pair: "p".into(), column: "c".into(), message: "out of range".into() },
        ] {
            assert_eq!(definite.classify(), ErrorClass::Definite, "{definite}");
        }
    }

    #[test]
    fn retries_are_labelled_by_their_cause_and_only_stream_errors_halt_a_direction() {
        let pg = |c: &str| Error::PgServer { code: c.into(), message: String::new() };
        assert_eq!(pg("55P03").retry_reason(), "lock_timeout");
        assert_eq!(pg("57014").retry_reason(), "statement_timeout");
        assert_eq!(pg("40P01").retry_reason(), "deadlock");
        assert_eq!(pg("08006").retry_reason(), "connection");
        assert_eq!(Error::Timeout { what: "x".into(), after: std::time::Duration::from_secs(1) }.retry_reason(), "timeout");
        assert_eq!(Error::Io(std::io::Error::other("reset")).retry_reason(), "connection");
        assert!(Error::Decode("x".into()).halts_direction());
        assert!(Error::Unsupported("statement-based event".into()).halts_direction());
        assert!(!Error::Setup("slot lost".into()).halts_direction(), "a setup problem stops the service");
        assert!(!pg("08006").halts_direction());
    }
}
