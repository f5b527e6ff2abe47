//! Shared fixtures for the integration tests: one throwaway PostgreSQL and
//! one MariaDB server per test process, and a fresh pair of databases per
//! test.
//!
//! Invariants:
//! - The servers start lazily, once per process (`servers()`), on a thread
//!   of their own with its own tokio runtime, so no test's runtime owns them;
//!   they are killed and their files removed at process exit by
//!   `tandem::testbed`'s exit handler (statics are never dropped).
//! - `fresh_db` never hands out a name twice in a process: `t_<test>_<n>`,
//!   the same name on both servers; pipeline name and MySQL `server_id`
//!   (from 1000) are unique per call too, so tests can run in parallel.
//! - The shared Postgres has a SCRAM-only role `SCRAM_USER`/`SCRAM_PASSWORD`
//!   (SUPERUSER REPLICATION); the shared MariaDB has a password user
//!   `MY_PASSWORD_USER`/`MY_PASSWORD`. Everyone else (`postgres`, `root`)
//!   logs in without a password.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};

/// Postgres role that must authenticate with SCRAM-SHA-256 (TCP).
pub const SCRAM_USER: &str = "tandem_scram";
pub const SCRAM_PASSWORD: &str = "scram-Secret-1";
/// MariaDB user with a password and all privileges.
pub const MY_PASSWORD_USER: &str = "tandem_pw";
pub const MY_PASSWORD: &str = "my-Secret-1";

/// The process-wide servers.
pub struct Servers {
    pub pg: PgCluster,
    pub my: MariaDb,
}

/// The shared servers, started on first use. Panics (in every caller) if
/// they could not be started, with the servers' log tails.
pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Result<Servers, String>> = OnceLock::new();
    let started = SERVERS.get_or_init(|| {
        std::thread::Builder::new()
            .name("test-servers".into())
            .spawn(start_servers)
            .map_err(|e| format!("cannot spawn a thread: {e}"))
            .and_then(|h| h.join().unwrap_or_else(|_| Err("starting the servers panicked".into())))
    });
    match started {
        Ok(servers) => servers,
        Err(e) => panic!("test servers are not available:\n{e}"),
    }
}

fn start_servers() -> Result<Servers, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let pg_opts = PgOptions {
            scram_user: Some((SCRAM_USER.into(), SCRAM_PASSWORD.into())),
            ..PgOptions::default()
        };
        let my_opts = MariaOptions {
            password_user: Some((MY_PASSWORD_USER.into(), MY_PASSWORD.into())),
            ..MariaOptions::default()
        };
        let (pg, my) = tokio::join!(PgCluster::start(pg_opts), MariaDb::start(my_opts));
        match (pg, my) {
            (Ok(pg), Ok(my)) => Ok(Servers { pg, my }),
            (pg, my) => {
                let mut msg = String::new();
                if let Err(e) = pg {
                    msg.push_str(&e.to_string());
                }
                if let Err(e) = my {
                    msg.push_str(&format!("\n{e}"));
                }
                Err(msg)
            }
        }
    })
}

static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// A Postgres database and a MariaDB database of the same name, made for
/// one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name on both servers; also the pipeline name.
    pub name: String,
    pub pg_url: String,
    pub my_url: String,
    /// Binlog client id for this test's pipeline (unique, from 1000).
    pub server_id: u32,
}

/// Create `t_<test_name>_<n>` on both shared servers.
pub async fn fresh_db(test_name: &str) -> TestDb {
    let servers = servers();
    let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
    let mut base: String = test_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    base.truncate(40);
    let name = format!("t_{base}_{n}");
    servers.pg.create_database(&name).await.unwrap_or_else(|e| panic!("{e}"));
    servers.my.create_database(&name).await.unwrap_or_else(|e| panic!("{e}"));
    TestDb {
        pg_url: servers.pg.url(&name),
        my_url: servers.my.url(&name),
        server_id: 1000 + n,
        name,
    }
}

impl TestDb {
    /// A superuser connection to this test's Postgres database.
    pub async fn pg(&self) -> tokio_postgres::Client {
        servers().pg.connect(&self.name).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A root connection to this test's MariaDB database.
    pub async fn my(&self) -> mysql_async::Conn {
        servers().my.connect(&self.name).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `public.<table>`: a table of this test on the Postgres side.
    pub fn pg_table(&self, table: &str) -> String {
        format!("public.{table}")
    }

    /// `<db>.<table>`: a table of this test on the MariaDB side.
    pub fn my_table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }

    /// A tandem config for this test's databases: `[pipeline]`, `[postgres]`,
    /// `[mysql]` (TLS off: the throwaway servers have none) and `[apply]`
    /// (short batch delay), then `extra` (typically `[[pairs]]` tables; it
    /// must not repeat those four sections).
    pub fn config_toml(&self, extra: &str) -> String {
        format!(
            "[pipeline]\nname = \"{name}\"\n\n\
             [postgres]\nurl = \"{pg}\"\ntls = \"disable\"\n\n\
             [mysql]\nurl = \"{my}\"\nserver_id = {id}\ntls = \"disable\"\n\n\
             [apply]\nmax_batch_delay_ms = 20\n\n\
             {extra}\n",
            name = self.name,
            pg = self.pg_url,
            my = self.my_url,
            id = self.server_id,
        )
    }

    /// Write `config_toml(extra)` to a new file in the testbed's scratch
    /// directory (removed at process exit) and return its path.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        static NEXT_FILE: AtomicU32 = AtomicU32::new(1);
        let dir = tandem::testbed::scratch_dir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(format!("{}-{}.toml", self.name, NEXT_FILE.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, self.config_toml(extra)).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Drop both databases (optional: the servers vanish at exit anyway).
    pub async fn drop_databases(&self) {
        let servers = servers();
        servers.pg.drop_database(&self.name).await.unwrap_or_else(|e| panic!("{e}"));
        servers.my.drop_database(&self.name).await.unwrap_or_else(|e| panic!("{e}"));
    }
}
