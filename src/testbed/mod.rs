//! Throwaway local database servers for tests, the demo and benchmarks.
//!
//! `PgCluster` (PostgreSQL) and `MariaDb` each `initdb`/`mariadb-install-db`
//! into a fresh directory `<temp>/tandem-testbed-<pid>-<n>`, start the server
//! binary directly as a child process on a free 127.0.0.1 port with the
//! settings tandem needs (logical WAL, commit timestamps; ROW binlog with full
//! row images), and wait until it accepts connections.
//!
//! Invariants:
//! - No fixed paths or ports: any number of instances can run side by side.
//! - A server never outlives the process that started it: children are spawned
//!   from one long-lived thread with `PR_SET_PDEATHSIG=SIGKILL`, an `atexit`
//!   handler kills every registered server and removes its directory, and
//!   `Drop` stops the server and removes its directory. Directories left by a
//!   process that was killed with SIGKILL are removed (and their servers
//!   killed) the next time any testbed server starts.
//! - Never touches the system services on 5432/3306.
//! - Errors carry the server's name and the tail of its log.

mod certs;
mod mariadb;
mod postgres;
mod process;

pub use certs::{ServerTls, TestCerts};
pub use mariadb::{MariaDb, MariaOptions};
pub use postgres::{PgCluster, PgOptions};
pub use process::scratch_dir;

use std::time::Duration;

/// How long `start`/`restart` wait for a server to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `stop` waits for a graceful shutdown before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Number of log lines attached to errors.
const ERROR_LOG_LINES: usize = 40;

/// A testbed server failed to install, start, answer or stop.
///
/// `message` already contains the text of the underlying error; `log_tail`
/// holds the last lines of the server's log (empty when there is none yet).
#[derive(Debug, thiserror::Error)]
#[error("{server}: {message}{}", tail_suffix(.log_tail))]
pub struct TestbedError {
    /// e.g. `postgres@127.0.0.1:40211` or `mariadb@127.0.0.1:40213`.
    pub server: String,
    pub message: String,
    pub log_tail: String,
}

impl TestbedError {
    pub(crate) fn new(server: impl Into<String>, message: impl Into<String>) -> Self {
        TestbedError { server: server.into(), message: message.into(), log_tail: String::new() }
    }

    pub(crate) fn with_log(mut self, log_tail: String) -> Self {
        self.log_tail = log_tail;
        self
    }
}

fn tail_suffix(log_tail: &str) -> String {
    if log_tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- server log (tail) ---\n{log_tail}")
    }
}

/// Find a currently free TCP port on 127.0.0.1 (bind to port 0, read it back).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Last `lines` lines of a text file, lossily decoded; empty if unreadable.
pub(crate) fn file_tail(path: &std::path::Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else { return String::new() };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Did the server fail because its port was taken meanwhile? (Then a retry on
/// another port is worth it.)
pub(crate) fn looks_like_port_clash(log_tail: &str) -> bool {
    log_tail.contains("Address already in use")
        || log_tail.contains("could not bind")
        || log_tail.contains("Bind on TCP/IP port")
}

/// Quote a SQL string literal (both dialects, standard_conforming_strings on
/// for Postgres; for MariaDB backslashes are doubled too).
pub(crate) fn sql_literal(s: &str, backslash_escapes: bool) -> String {
    let mut out = s.replace('\'', "''");
    if backslash_escapes {
        out = out.replace('\\', "\\\\");
    }
    format!("'{out}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_has_server_and_tail() {
        let e = TestbedError::new("postgres@127.0.0.1:1", "did not start").with_log("FATAL: x".into());
        let s = e.to_string();
        assert!(s.starts_with("postgres@127.0.0.1:1: did not start"));
        assert!(s.contains("FATAL: x"));
        assert_eq!(TestbedError::new("m", "x").to_string(), "m: x");
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(sql_literal("it's", false), "'it''s'");
        assert_eq!(sql_literal("a\\b'", true), "'a\\\\b'''");
    }

    #[test]
    fn port_clash_detection() {
        assert!(looks_like_port_clash("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"));
        assert!(looks_like_port_clash("[ERROR] Can't start server: Bind on TCP/IP port. Got error: 98"));
        assert!(!looks_like_port_clash("FATAL: data directory has wrong ownership"));
    }
}
