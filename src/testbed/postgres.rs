//! A throwaway PostgreSQL cluster: `initdb` into a fresh directory, then the
//! `postgres` binary run directly as our child on a free 127.0.0.1 port.
//!
//! Settings: wal_level=logical, track_commit_timestamp=on, 32 slots and WAL
//! senders, 200 connections; fsync/synchronous_commit/full_page_writes follow
//! `PgOptions::durable`. Authentication: trust on 127.0.0.1 and the unix
//! socket in the cluster directory, except `scram-sha-256` for the optional
//! `scram_user` (databases `all` and `replication`). With `PgOptions::tls`
//! the server has ssl=on and TCP logins need TLS (`hostssl` lines only);
//! the testbed itself then talks to it over the unix socket.
//!
//! When running as root, `initdb` and `postgres` run as the OS user
//! `postgres` (Postgres refuses root); the database superuser is always
//! named `postgres`. Dropping a `PgCluster` stops it and removes its files.

use super::process::{ServerKind, ServerProcess};
use super::{free_port, looks_like_port_clash, sql_literal, TestbedError, READY_TIMEOUT};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SUPERUSER: &str = "postgres";
const HOST: &str = "127.0.0.1";
const PORT_ATTEMPTS: usize = 3;

/// How to set up a `PgCluster`.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// fsync, synchronous_commit and full_page_writes on (benchmarks) or
    /// off (tests, the default).
    pub durable: bool,
    /// `(user, password)`: a SUPERUSER REPLICATION role that must log in
    /// with SCRAM-SHA-256 over TCP (everyone else is trusted).
    pub scram_user: Option<(String, String)>,
    /// Serve TLS and accept TCP logins only over TLS (`hostssl`). The
    /// certificate and key are copied into the cluster directory (0600,
    /// owned by the server's OS user).
    pub tls: Option<super::ServerTls>,
    /// Extra `-c name=value` server settings, applied last.
    pub settings: Vec<(String, String)>,
    /// Directory holding `initdb` and `postgres`. Default: `$TANDEM_PG_BINDIR`,
    /// else the newest `/usr/lib/postgresql/<version>/bin`, else `$PATH`.
    pub bin_dir: Option<PathBuf>,
}

/// A running throwaway PostgreSQL server.
pub struct PgCluster {
    process: ServerProcess,
    opts: PgOptions,
    bin_dir: Option<PathBuf>,
    /// (uid, gid) to run as when we are root.
    run_as: Option<(u32, u32)>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster").field("server", &self.process.name()).field("dir", &self.process.dir()).finish()
    }
}

impl PgCluster {
    /// Create, start and wait for a new cluster (at most `READY_TIMEOUT`).
    pub async fn start(opts: PgOptions) -> Result<PgCluster, TestbedError> {
        let port = free_port().map_err(|e| TestbedError::new("postgres", format!("no free port: {e}")))?;
        let process = ServerProcess::create(ServerKind::Postgres, port, "postgres.log")?;
        let bin_dir = opts.bin_dir.clone().or_else(default_bin_dir);
        let run_as = postgres_os_user().map_err(|m| process.error(m))?;
        let cluster = PgCluster { process, opts, bin_dir, run_as };
        cluster.initdb().await?;
        let mut attempt = 1;
        loop {
            match cluster.launch().await {
                Ok(()) => break,
                Err(e) if attempt < PORT_ATTEMPTS && looks_like_port_clash(&e.log_tail) => {
                    attempt += 1;
                    let port = free_port().map_err(|e| cluster.process.error(format!("no free port: {e}")))?;
                    cluster.process.set_port(port);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some((user, password)) = &cluster.opts.scram_user {
            cluster.create_scram_role(user, password).await?;
        }
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn host(&self) -> &str {
        HOST
    }

    /// The database superuser (and, when run as root, the OS user): `postgres`.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// `postgresql://postgres@127.0.0.1:PORT/db`
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://{SUPERUSER}@{HOST}:{}/{db}", self.port())
    }

    /// The cluster's data directory (PGDATA).
    pub fn data_dir(&self) -> PathBuf {
        self.process.dir().join("data")
    }

    /// The directory holding the data dir, the log and the unix socket.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Connect as the superuser; the connection task is spawned on the
    /// current tokio runtime.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, TestbedError> {
        connect_as(&self.admin_host(), self.port(), SUPERUSER, db)
            .await
            .map_err(|e| TestbedError::new(self.process.name(), format!("connect to {db}: {e}")))
    }

    pub async fn create_database(&self, name: &str) -> Result<(), TestbedError> {
        self.execute_admin(&format!("CREATE DATABASE {}", quote_ident(name))).await
    }

    /// Drop a database, terminating its sessions (`WITH (FORCE)`); no error
    /// if it does not exist.
    pub async fn drop_database(&self, name: &str) -> Result<(), TestbedError> {
        self.execute_admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name))).await
    }

    /// Fast shutdown (SIGINT), SIGKILL after `STOP_TIMEOUT`. No-op when stopped.
    pub fn stop(&self) -> Result<(), TestbedError> {
        self.process.stop()
    }

    /// Crash the server: immediate shutdown (SIGQUIT), no checkpoint; the
    /// next start runs crash recovery. No-op when stopped.
    pub fn crash(&self) -> Result<(), TestbedError> {
        self.process.stop_with(libc::SIGQUIT, Duration::from_secs(10))
    }

    /// Stop (if running) and start again on the same port and data dir.
    pub async fn restart(&self) -> Result<(), TestbedError> {
        self.stop()?;
        self.launch().await
    }

    async fn execute_admin(&self, sql: &str) -> Result<(), TestbedError> {
        let client = self.connect(SUPERUSER).await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| TestbedError::new(self.process.name(), format!("{sql}: {}", pg_error_text(&e))))
    }

    /// Where the testbed connects: 127.0.0.1, or the unix socket directory
    /// when TCP needs TLS.
    fn admin_host(&self) -> String {
        match self.opts.tls {
            Some(_) => self.process.dir().display().to_string(),
            None => HOST.to_string(),
        }
    }

    /// Copies the server certificate and key into the cluster directory.
    fn install_tls(&self, tls: &super::ServerTls) -> Result<Vec<(String, String)>, TestbedError> {
        use std::os::unix::fs::PermissionsExt;
        let mut settings = vec![("ssl".to_string(), "on".to_string())];
        for (from, name, setting) in [
            (&tls.cert_file, "server.crt", "ssl_cert_file"),
            (&tls.key_file, "server.key", "ssl_key_file"),
            (&tls.ca_file, "root.crt", "ssl_ca_file"),
        ] {
            let to = self.process.dir().join(name);
            let fail = |e: std::io::Error| self.process.error(format!("installing {} as {}: {e}", from.display(), to.display()));
            std::fs::copy(from, &to).map_err(fail)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
            if let Some((uid, gid)) = self.run_as {
                nix::unistd::chown(&to, Some(uid.into()), Some(gid.into()))
                    .map_err(|e| self.process.error(format!("chown {}: {e}", to.display())))?;
            }
            settings.push((setting.to_string(), to.display().to_string()));
        }
        Ok(settings)
    }

    fn command(&self, program: &str) -> Command {
        let path = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut cmd = Command::new(path);
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        cmd.current_dir(self.process.dir());
        cmd
    }

    /// `initdb` and our pg_hba.conf.
    async fn initdb(&self) -> Result<(), TestbedError> {
        let dir = self.process.dir().to_path_buf();
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()))
                .map_err(|e| self.process.error(format!("chown {}: {e}", dir.display())))?;
        }
        let mut cmd = tokio::process::Command::from(self.command("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            .kill_on_drop(true);
        let out = cmd.output().await.map_err(|e| self.process.error(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return Err(self.process.error(format!("initdb failed ({}):\n{}", out.status, text.trim_end())));
        }
        let hba = self.data_dir().join("pg_hba.conf");
        std::fs::write(&hba, self.hba_conf()?)
            .map_err(|e| self.process.error(format!("cannot write {}: {e}", hba.display())))?;
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(&hba, Some(uid.into()), Some(gid.into()))
                .map_err(|e| self.process.error(format!("chown {}: {e}", hba.display())))?;
        }
        Ok(())
    }

    fn hba_conf(&self) -> Result<String, TestbedError> {
        let mut hba = String::from("# written by tandem's testbed\nlocal all all trust\nlocal replication all trust\n");
        let host = if self.opts.tls.is_some() { "hostssl" } else { "host" };
        if let Some((user, _)) = &self.opts.scram_user {
            if user.is_empty() || user.contains(['"', ' ', '\t', '\n', ',', '#']) {
                return Err(self.process.error(format!("unusable scram user name {user:?}")));
            }
            hba.push_str(&format!("{host} all \"{user}\" {HOST}/32 scram-sha-256\n"));
            hba.push_str(&format!("{host} replication \"{user}\" {HOST}/32 scram-sha-256\n"));
        }
        hba.push_str(&format!("{host} all all {HOST}/32 trust\n{host} replication all {HOST}/32 trust\n"));
        Ok(hba)
    }

    /// Spawn the postmaster and wait until it accepts connections.
    async fn launch(&self) -> Result<(), TestbedError> {
        let onoff = |b: bool| if b { "on" } else { "off" };
        let durable = onoff(self.opts.durable);
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), HOST.into()),
            ("unix_socket_directories".into(), self.process.dir().display().to_string()),
            ("wal_level".into(), "logical".into()),
            ("track_commit_timestamp".into(), "on".into()),
            ("max_replication_slots".into(), "400".into()),
            ("max_wal_senders".into(), "100".into()),
            ("max_connections".into(), "400".into()),
            ("password_encryption".into(), "scram-sha-256".into()),
            ("fsync".into(), durable.into()),
            ("synchronous_commit".into(), durable.into()),
            ("full_page_writes".into(), durable.into()),
            // Files in the data dir instead of /dev/shm: nothing leaks on SIGKILL.
            ("dynamic_shared_memory_type".into(), "mmap".into()),
            ("logging_collector".into(), "off".into()),
        ];
        if let Some(tls) = &self.opts.tls {
            settings.extend(self.install_tls(tls)?);
        }
        settings.extend(self.opts.settings.iter().cloned());
        let mut cmd = self.command("postgres");
        cmd.arg("-D").arg(self.data_dir()).arg("-p").arg(self.port().to_string());
        for (name, value) in &settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        self.process.spawn(cmd)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.process.check_running()?;
            let attempt =
                tokio::time::timeout(Duration::from_secs(5), connect_as(&self.admin_host(), self.port(), SUPERUSER, SUPERUSER))
                    .await;
            if let Ok(Ok(_client)) = attempt {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.process.stop_with(libc::SIGQUIT, Duration::from_secs(5));
                return Err(self.process.error(format!("not accepting connections after {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create_scram_role(&self, user: &str, password: &str) -> Result<(), TestbedError> {
        let sql = format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE {} LOGIN SUPERUSER REPLICATION PASSWORD {}",
            quote_ident(user),
            sql_literal(password, false)
        );
        let client = self.connect(SUPERUSER).await?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| self.process.error(format!("creating role {user}: {}", pg_error_text(&e))))
    }
}

/// Connect as `user` without password (TCP to `host`, or the unix socket in
/// the directory `host`); spawn the connection task.
async fn connect_as(host: &str, port: u16, user: &str, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host(host).port(port).user(user).dbname(db).connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The server's message when there is one (tokio_postgres' Display of a
/// `db error` hides it).
fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn quote_ident(name: &str) -> String {
    crate::sql::pg::ident(name)
}

/// `Some((uid, gid))` of the OS user `postgres` when we run as root.
fn postgres_os_user() -> Result<Option<(u32, u32)>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name(SUPERUSER) {
        Ok(Some(user)) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        Ok(None) => Err("running as root needs an OS user `postgres` to run the server as".into()),
        Err(e) => Err(format!("looking up the OS user postgres: {e}")),
    }
}

/// `$TANDEM_PG_BINDIR`, else the newest `/usr/lib/postgresql/<v>/bin`.
fn default_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TANDEM_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("t_a"), "\"t_a\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
