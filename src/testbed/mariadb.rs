//! A throwaway MariaDB server: `mariadb-install-db` into a fresh directory,
//! then `mariadbd` run directly as our child on a free 127.0.0.1 port.
//!
//! Settings: binary log in the server directory, binlog_format=ROW,
//! binlog_row_image=FULL, `server_id` from the options, utf8mb4 as the server
//! character set (`--no-defaults` would otherwise leave latin1),
//! skip-name-resolve, 256M buffer pool, 300 connections; commit flushing
//! follows `MariaOptions::durable`; `extra_args` come last and win.
//! `root` has no password and all privileges WITH GRANT OPTION from
//! `127.0.0.1` (TCP) and `localhost` (the socket in the server directory).
//! With `MariaOptions::tls` the server offers TLS and requires it on TCP
//! (`require_secure_transport`); the testbed then uses the unix socket.
//!
//! When running as root, `mariadbd` runs as root (`--user=root`), which it
//! otherwise refuses. Dropping a `MariaDb` stops it and removes its files.

use super::process::{ServerKind, ServerProcess};
use super::{free_port, looks_like_port_clash, sql_literal, TestbedError, READY_TIMEOUT};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HOST: &str = "127.0.0.1";
const PORT_ATTEMPTS: usize = 3;

/// How to set up a `MariaDb`.
#[derive(Debug, Clone)]
pub struct MariaOptions {
    /// Flush the InnoDB log and sync the binlog at every commit (benchmarks);
    /// off by default (`innodb_flush_log_at_trx_commit=2`, `sync_binlog=0`).
    pub durable: bool,
    /// The server's `server_id` (default 1).
    pub server_id: u32,
    /// Extra `mariadbd` arguments, e.g. `--default-time-zone=+05:30` or
    /// `--log-slave-updates`.
    pub extra_args: Vec<String>,
    /// `(user, password)`: a user `'user'@'%'` with that password and all
    /// privileges.
    pub password_user: Option<(String, String)>,
    /// Serve TLS (`--ssl-cert/--ssl-key/--ssl-ca`) and refuse plain TCP.
    pub tls: Option<super::ServerTls>,
}

impl Default for MariaOptions {
    fn default() -> Self {
        MariaOptions { durable: false, server_id: 1, extra_args: Vec::new(), password_user: None, tls: None }
    }
}

/// A running throwaway MariaDB server.
pub struct MariaDb {
    process: ServerProcess,
    opts: MariaOptions,
    as_root: bool,
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb").field("server", &self.process.name()).field("dir", &self.process.dir()).finish()
    }
}

impl MariaDb {
    /// Install, start and wait for a new server (at most `READY_TIMEOUT`).
    pub async fn start(opts: MariaOptions) -> Result<MariaDb, TestbedError> {
        let port = free_port().map_err(|e| TestbedError::new("mariadb", format!("no free port: {e}")))?;
        let process = ServerProcess::create(ServerKind::MariaDb, port, "error.log")?;
        let as_root = nix::unistd::geteuid().is_root();
        let server = MariaDb { process, opts, as_root };
        server.install().await?;
        let mut attempt = 1;
        loop {
            match server.launch().await {
                Ok(()) => break,
                Err(e) if attempt < PORT_ATTEMPTS && looks_like_port_clash(&e.log_tail) => {
                    attempt += 1;
                    let port = free_port().map_err(|e| server.process.error(format!("no free port: {e}")))?;
                    server.process.set_port(port);
                }
                Err(e) => return Err(e),
            }
        }
        server.create_accounts().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn host(&self) -> &str {
        HOST
    }

    /// The administrative user: `root`, no password.
    pub fn superuser(&self) -> &str {
        "root"
    }

    /// `mysql://root@127.0.0.1:PORT/db` (`db` may be empty).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@{HOST}:{}/{db}", self.port())
    }

    /// The server's `server_id`.
    pub fn server_id(&self) -> u32 {
        self.opts.server_id
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.process.dir().join("data")
    }

    /// The directory holding the data dir, binlogs, log, socket and pid file.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The unix socket.
    pub fn socket_path(&self) -> PathBuf {
        self.process.dir().join("mysqld.sock")
    }

    /// The error log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The last `lines` lines of the error log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Connect as root over TCP (`db` may be empty for none).
    pub async fn connect(&self, db: &str) -> Result<mysql_async::Conn, TestbedError> {
        mysql_async::Conn::new(self.opts_for(db))
            .await
            .map_err(|e| TestbedError::new(self.process.name(), format!("connect to {db:?}: {e}")))
    }

    pub async fn create_database(&self, name: &str) -> Result<(), TestbedError> {
        self.execute_admin(&format!("CREATE DATABASE {}", quote_ident(name))).await
    }

    /// Drop a database; no error if it does not exist.
    pub async fn drop_database(&self, name: &str) -> Result<(), TestbedError> {
        self.execute_admin(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name))).await
    }

    /// Graceful shutdown (SIGTERM), SIGKILL after `STOP_TIMEOUT`. No-op when stopped.
    pub fn stop(&self) -> Result<(), TestbedError> {
        self.process.stop()
    }

    /// Crash the server (SIGKILL); the next start runs InnoDB recovery.
    pub fn crash(&self) -> Result<(), TestbedError> {
        self.process.stop_with(libc::SIGKILL, Duration::from_secs(10))
    }

    /// Stop (if running) and start again on the same port and data dir.
    pub async fn restart(&self) -> Result<(), TestbedError> {
        self.stop()?;
        self.launch().await
    }

    /// Root over TCP, or over the unix socket when TCP needs TLS.
    fn opts_for(&self, db: &str) -> mysql_async::Opts {
        let b = mysql_async::OptsBuilder::default().user(Some("root")).db_name((!db.is_empty()).then(|| db.to_string()));
        match self.opts.tls {
            Some(_) => b.socket(Some(self.socket_path().display().to_string())).into(),
            None => b.ip_or_hostname(HOST).tcp_port(self.port()).prefer_socket(false).into(),
        }
    }

    async fn execute_admin(&self, sql: &str) -> Result<(), TestbedError> {
        let mut conn = self.connect("").await?;
        let result = conn.query_drop(sql).await;
        let _ = conn.disconnect().await;
        result.map_err(|e| TestbedError::new(self.process.name(), format!("{sql}: {e}")))
    }

    /// `mariadb-install-db` (root without password, from any local address).
    async fn install(&self) -> Result<(), TestbedError> {
        let dir = self.process.dir();
        let mut cmd = tokio::process::Command::new(install_db_binary());
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve")
            // The bootstrap server's temporary tables go to its own directory: in /tmp, a
            // leftover of an earlier server killed with the same pid made it abort
            // ("Could not remove temporary table '/tmp/#sql-temptable-…'").
            .arg(format!("--tmpdir={}", dir.display()))
            .current_dir(dir)
            .kill_on_drop(true);
        if self.as_root {
            cmd.arg("--user=root");
        }
        let out = cmd.output().await.map_err(|e| self.process.error(format!("cannot run mariadb-install-db: {e}")))?;
        if !out.status.success() {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return Err(self.process.error(format!("mariadb-install-db failed ({}):\n{}", out.status, text.trim_end())));
        }
        Ok(())
    }

    /// Make sure root can log in over TCP with all privileges (with
    /// --skip-name-resolve, 'root'@'localhost' matches the socket only) and
    /// create the password user. Runs over the unix socket as root@localhost,
    /// because account statements are refused during mariadb-install-db's
    /// bootstrap (it runs with --skip-grant-tables).
    async fn create_accounts(&self) -> Result<(), TestbedError> {
        let mut sql = String::from(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
        );
        if let Some((user, password)) = &self.opts.password_user {
            let account = format!("{}@'%'", sql_literal(user, true));
            sql.push_str(&format!(
                "CREATE USER {account} IDENTIFIED BY {};\nGRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;\n",
                sql_literal(password, true)
            ));
        }
        let opts = mysql_async::OptsBuilder::default().user(Some("root")).socket(Some(self.socket_path().display().to_string()));
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| self.process.error(format!("connect as root@localhost over the socket: {e}")))?;
        let result = conn.query_drop(sql).await;
        let _ = conn.disconnect().await;
        result.map_err(|e| self.process.error(format!("creating accounts: {e}")))
    }

    /// Spawn `mariadbd` and wait until it accepts connections.
    async fn launch(&self) -> Result<(), TestbedError> {
        let dir = self.process.dir();
        let d = |name: &str| dir.join(name).display().to_string();
        let mut cmd = Command::new(server_binary());
        // --no-defaults must come first.
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--port={}", self.port()))
            .arg(format!("--bind-address={HOST}"))
            .arg(format!("--socket={}", d("mysqld.sock")))
            .arg(format!("--pid-file={}", d("mysqld.pid")))
            .arg(format!("--log-error={}", self.process.log_path().display()))
            .arg(format!("--log-bin={}", d("binlog")))
            .arg(format!("--relay-log={}", d("relay-bin")))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg("--binlog-format=ROW")
            .arg("--binlog-row-image=FULL")
            .arg(format!("--server-id={}", self.opts.server_id))
            .arg("--skip-name-resolve")
            .arg("--innodb-buffer-pool-size=256M")
            .arg("--max-connections=300")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_general_ci");
        if self.as_root {
            cmd.arg("--user=root");
        }
        if self.opts.durable {
            cmd.args(["--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"]);
        } else {
            cmd.args(["--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-doublewrite=0"]);
        }
        if let Some(tls) = &self.opts.tls {
            cmd.arg(format!("--ssl-cert={}", tls.cert_file.display()))
                .arg(format!("--ssl-key={}", tls.key_file.display()))
                .arg(format!("--ssl-ca={}", tls.ca_file.display()))
                .arg("--require-secure-transport=ON");
        }
        cmd.args(&self.opts.extra_args);
        self.process.spawn(cmd)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.process.check_running()?;
            let attempt = tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(self.opts_for(""))).await;
            if let Ok(Ok(conn)) = attempt {
                let _ = conn.disconnect().await;
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.process.stop_with(libc::SIGKILL, Duration::from_secs(5));
                return Err(self.process.error(format!("not accepting connections after {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn quote_ident(name: &str) -> String {
    crate::sql::my::ident(name)
}

fn install_db_binary() -> PathBuf {
    std::env::var_os("TANDEM_MARIADB_INSTALL_DB").map(PathBuf::from).unwrap_or_else(|| "mariadb-install-db".into())
}

/// `$TANDEM_MARIADBD`, else `/usr/sbin/mariadbd`, else `mariadbd` on `$PATH`.
fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANDEM_MARIADBD") {
        return PathBuf::from(path);
    }
    let sbin = Path::new("/usr/sbin/mariadbd");
    if sbin.exists() {
        sbin.to_path_buf()
    } else {
        PathBuf::from("mariadbd")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("t_a"), "`t_a`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
