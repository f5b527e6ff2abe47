//! The replication systems under test, behind one trait: `Tandem` (the
//! `tandem` binary as a subprocess: `init`, then `run`; both directions, so
//! the same system serves Postgres → MariaDB and MariaDB → Postgres),
//! `NativePg` (Postgres publication → subscription on a second cluster) and
//! `NativeMariaDb` (MariaDB row-based replication to a second MariaDB).
//!
//! A system is started after both `items` tables exist and are empty, and is
//! ready when it streams from the source; `stop` releases everything it holds
//! on the servers (slot, binlog dump threads, replica threads), so the next
//! system runs on a quiet server.

use crate::sql::{Conn, Ctx, Endpoint, Res};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a system may take to start streaming.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[allow(async_fn_in_trait)]
pub trait Replicator {
    /// Short name for the report: `tandem`, `native`.
    fn name(&self) -> &'static str;
    /// Its own OS process (CPU and RSS are measured there), if it has one.
    fn pid(&self) -> Option<u32>;
    /// The Postgres replication slot it streams from, when the source is Postgres.
    fn slot(&self) -> Option<String>;
    /// Set up and start; returns once it streams from the source.
    async fn start(&mut self) -> Res<()>;
    /// An error (with its log) if it died. Called every ~100 ms while a
    /// workload runs: must be cheap.
    async fn check_alive(&mut self) -> Res<()>;
    /// Stop and release what it holds on the servers.
    async fn stop(&mut self) -> Res<()>;
}

/// `tandem` as a subprocess, Postgres ↔ MariaDB, one pair `items`.
pub struct Tandem {
    pub bin: PathBuf,
    pub pg: Endpoint,
    pub my: Endpoint,
    pub pipeline: String,
    pub batch_delay_ms: u64,
    pub log_level: String,
    pub work_dir: PathBuf,
    child: Option<Child>,
}

impl Tandem {
    pub fn new(bin: PathBuf, pg: Endpoint, my: Endpoint, batch_delay_ms: u64, log_level: String, work_dir: PathBuf) -> Tandem {
        Tandem { bin, pg, my, pipeline: "bench".into(), batch_delay_ms, log_level, work_dir, child: None }
    }

    pub fn config_path(&self) -> PathBuf {
        self.work_dir.join("tandem.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.work_dir.join("tandem-run.log")
    }

    /// The config: defaults everywhere except the batch delay; TLS off (the
    /// throwaway servers have none).
    fn config_toml(&self) -> String {
        format!(
            "[pipeline]\nname = \"{name}\"\n\n\
             [postgres]\nurl = \"postgresql://postgres@127.0.0.1:{pg_port}/{pg_db}\"\ntls = \"disable\"\n\n\
             [mysql]\nurl = \"mysql://root@127.0.0.1:{my_port}/{my_db}\"\nserver_id = 4001\ntls = \"disable\"\n\n\
             [apply]\nmax_batch_delay_ms = {delay}\n\n\
             [[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{my_db}.items\"\n",
            name = self.pipeline,
            pg_port = self.pg.port,
            pg_db = self.pg.db,
            my_port = self.my.port,
            my_db = self.my.db,
            delay = self.batch_delay_ms,
        )
    }

    /// An error (with its log) if the subprocess exited.
    fn child_alive(&mut self) -> Res<()> {
        let Some(child) = self.child.as_mut() else { return Err("tandem is not running".into()) };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("tandem run exited ({status}); log {}:\n{}", self.log_path().display(), self.log_tail())),
            Err(e) => Err(format!("waiting on tandem: {e}")),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Polls `sql` (one integer) on `conn` until it returns ≥ 1, checking `alive`.
async fn wait_until(conn: &mut Conn, sql: &str, what: &str, mut alive: impl FnMut() -> Res<()>) -> Res<()> {
    let t0 = Instant::now();
    loop {
        alive()?;
        if conn.int(sql).await?.unwrap_or(0) >= 1 {
            return Ok(());
        }
        if t0.elapsed() > READY_TIMEOUT {
            return Err(format!("{what}: not ready after {READY_TIMEOUT:?} (waited on: {sql})"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn slot_active_sql(slot: &str) -> String {
    format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active")
}

/// MariaDB: the number of binlog dump threads (connected replication readers).
const BINLOG_DUMPS_SQL: &str = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'";

/// MariaDB: kills every binlog dump thread. A dump thread whose reader went
/// away lingers until it next has something to send; the next system's
/// sender state should not include it.
async fn kill_binlog_dumps(my: &Endpoint) -> Res<()> {
    let mut conn = my.connect().await?;
    let ids = conn.ints("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'").await?;
    for id in ids.into_iter().flatten() {
        // It may have ended meanwhile (ER_NO_SUCH_THREAD): fine.
        let _ = conn.exec(&format!("KILL CONNECTION {id}")).await;
    }
    Ok(())
}

impl Replicator for Tandem {
    fn name(&self) -> &'static str {
        "tandem"
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn slot(&self) -> Option<String> {
        Some(format!("tandem_{}", self.pipeline))
    }

    async fn start(&mut self) -> Res<()> {
        std::fs::create_dir_all(&self.work_dir).ctx(|| format!("create {}", self.work_dir.display()))?;
        let cfg = self.config_path();
        std::fs::write(&cfg, self.config_toml()).ctx(|| format!("write {}", cfg.display()))?;
        let init = Command::new(&self.bin)
            .args(["init", "--log-level", &self.log_level, "-c"])
            .arg(&cfg)
            .output()
            .ctx(|| format!("run {} init", self.bin.display()))?;
        std::fs::write(self.work_dir.join("tandem-init.log"), &init.stderr).ctx(|| "write the init log".into())?;
        if !init.status.success() {
            return Err(format!("tandem init failed ({}):\n{}", init.status, String::from_utf8_lossy(&init.stderr)));
        }
        let log = std::fs::File::create(self.log_path()).ctx(|| format!("create {}", self.log_path().display()))?;
        let child = Command::new(&self.bin)
            .args(["run", "--log-level", &self.log_level, "-c"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .ctx(|| format!("spawn {} run", self.bin.display()))?;
        self.child = Some(child);
        // Both directions run: ready when it streams from both servers
        // (a direction still connecting would otherwise land in W1).
        let mut pg = self.pg.connect().await?;
        let sql = slot_active_sql(&self.slot().unwrap_or_default());
        wait_until(&mut pg, &sql, "tandem (postgres slot)", || self.child_alive()).await?;
        let mut my = self.my.connect().await?;
        wait_until(&mut my, BINLOG_DUMPS_SQL, "tandem (mariadb binlog dump)", || self.child_alive()).await
    }

    async fn check_alive(&mut self) -> Res<()> {
        self.child_alive()
    }

    async fn stop(&mut self) -> Res<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().ctx(|| "waiting on tandem".into())? {
                break st;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("tandem did not exit within 30 s of SIGTERM; log {}", self.log_path().display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !status.success() {
            eprintln!("warning: tandem exited with {status} after SIGTERM; log {}", self.log_path().display());
        }
        // Release the slot so later runs on this cluster do not decode for it.
        let mut pg = self.pg.connect().await?;
        let slot = self.slot().unwrap_or_default();
        pg.exec(&format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}'")).await?;
        kill_binlog_dumps(&self.my).await
    }
}

/// Postgres native logical replication: a publication on the source
/// database, a subscription on a database of a second cluster.
pub struct NativePg {
    pub source: Endpoint,
    pub dest: Endpoint,
    /// The subscription's `synchronous_commit` (its default is `off`).
    pub synchronous_commit: bool,
}

impl NativePg {
    const NAME: &'static str = "bench_sub";
}

impl Replicator for NativePg {
    fn name(&self) -> &'static str {
        "native"
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn slot(&self) -> Option<String> {
        Some(Self::NAME.into())
    }

    async fn start(&mut self) -> Res<()> {
        let mut src = self.source.connect().await?;
        src.exec("CREATE PUBLICATION bench_pub FOR TABLE items").await?;
        let mut dst = self.dest.connect().await?;
        let sync = if self.synchronous_commit { "on" } else { "off" };
        dst.exec(&format!(
            "CREATE SUBSCRIPTION {} CONNECTION 'host=127.0.0.1 port={} user=postgres dbname={}' \
             PUBLICATION bench_pub WITH (connect = true, synchronous_commit = '{sync}')",
            Self::NAME,
            self.source.port,
            self.source.db
        ))
        .await?;
        let synced = "SELECT (count(*) > 0 AND bool_and(srsubstate IN ('r', 's')))::int FROM pg_subscription_rel";
        wait_until(&mut dst, synced, "subscription initial sync", || Ok(())).await?;
        let worker = format!("SELECT count(*) FROM pg_stat_subscription WHERE subname = '{}' AND relid IS NULL AND pid IS NOT NULL", Self::NAME);
        wait_until(&mut dst, &worker, "subscription apply worker", || Ok(())).await?;
        wait_until(&mut src, &slot_active_sql(Self::NAME), "subscription slot", || Ok(())).await
    }

    async fn check_alive(&mut self) -> Res<()> {
        Ok(())
    }

    async fn stop(&mut self) -> Res<()> {
        let mut dst = self.dest.connect().await?;
        dst.exec(&format!("DROP SUBSCRIPTION IF EXISTS {}", Self::NAME)).await?;
        let mut src = self.source.connect().await?;
        src.exec("DROP PUBLICATION IF EXISTS bench_pub").await
    }
}

/// MariaDB native row-based replication: the destination server is a
/// replica (`CHANGE MASTER TO … MASTER_USE_GTID=slave_pos`, `START SLAVE`)
/// of the source server with default settings (one SQL thread, no parallel
/// apply). It starts at the source's current GTID position, so, like the
/// subscription, it replicates only what follows: both `items` tables exist
/// already (the destination's with its extra trailing `applied_at`, which
/// row-based replication allows) and DDL never flows. Only the source
/// database is replicated (`replicate_do_db`).
///
/// Triggers do not fire for row events on a replica unless
/// `slave_run_triggers_for_rbr=YES`, which `start` sets; without it
/// `applied_at` would stay NULL. And `start` replaces the destination's
/// trigger with one that reads the real clock: in the SQL thread
/// `UTC_TIMESTAMP()` is frozen at the replicated event's time
/// (`Dialect::replica_applied_trigger`).
pub struct NativeMariaDb {
    pub source: Endpoint,
    pub dest: Endpoint,
    /// A session on the replica for `check_alive`, and when it last looked.
    watch: Option<(Conn, Instant)>,
}

impl NativeMariaDb {
    pub fn new(source: Endpoint, dest: Endpoint) -> NativeMariaDb {
        NativeMariaDb { source, dest, watch: None }
    }

    /// `Ok(true)` when both replica threads run, `Ok(false)` while the IO
    /// thread is still starting, an error (with the server's) when a
    /// thread stopped.
    async fn replica_running(conn: &mut Conn) -> Res<bool> {
        let status = conn.named_row("SHOW SLAVE STATUS").await?.ok_or("replica: SHOW SLAVE STATUS is empty")?;
        let get = |k: &str| status.get(k).cloned().flatten().unwrap_or_default();
        let (io, sql) = (get("Slave_IO_Running"), get("Slave_SQL_Running"));
        // The IO thread passes through `Preparing` and `Connecting` before `Yes`.
        if sql != "Yes" || io == "No" || io.is_empty() {
            return Err(format!(
                "replica stopped: Slave_IO_Running={io}, Slave_SQL_Running={sql}; last IO error: {}; last SQL error: {}",
                get("Last_IO_Error"),
                get("Last_SQL_Error")
            ));
        }
        Ok(io == "Yes")
    }
}

impl Replicator for NativeMariaDb {
    fn name(&self) -> &'static str {
        "native"
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn slot(&self) -> Option<String> {
        None
    }

    async fn start(&mut self) -> Res<()> {
        let mut src = self.source.connect().await?;
        let pos = src
            .named_row("SELECT @@GLOBAL.gtid_binlog_pos AS pos")
            .await?
            .and_then(|r| r.get("pos").cloned().flatten())
            .unwrap_or_default();
        if pos.is_empty() {
            // An empty slave_pos would replay the source's whole binlog.
            return Err("native: the source has no GTID position yet".into());
        }
        let mut dst = self.dest.connect().await?;
        if let Some(trigger) = self.dest.dialect.replica_applied_trigger() {
            dst.exec(trigger).await?;
        }
        for sql in [
            "SET GLOBAL slave_run_triggers_for_rbr = YES".to_string(),
            format!("SET GLOBAL replicate_do_db = '{}'", self.source.db),
            format!("SET GLOBAL gtid_slave_pos = '{pos}'"),
            format!(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', MASTER_USE_GTID = slave_pos",
                self.source.port
            ),
            "START SLAVE".to_string(),
        ] {
            dst.exec(&sql).await?;
        }
        let t0 = Instant::now();
        while !Self::replica_running(&mut dst).await? {
            if t0.elapsed() > READY_TIMEOUT {
                return Err(format!("native: the replica's IO thread is not connected after {READY_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_until(&mut src, BINLOG_DUMPS_SQL, "native (binlog dump on the source)", || Ok(())).await?;
        self.watch = Some((dst, Instant::now()));
        Ok(())
    }

    /// Looks at the replica threads at most once a second (a query on the
    /// destination server, which is being measured).
    async fn check_alive(&mut self) -> Res<()> {
        let Some((conn, last)) = self.watch.as_mut() else { return Err("native replication is not running".into()) };
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            Self::replica_running(conn).await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Res<()> {
        self.watch = None;
        let mut dst = self.dest.connect().await?;
        dst.exec("STOP SLAVE").await?;
        dst.exec("RESET SLAVE ALL").await?;
        kill_binlog_dumps(&self.source).await
    }
}

/// The `tandem` binary next to this executable, or an error saying how to build it.
pub fn tandem_binary() -> Res<PathBuf> {
    let exe = std::env::current_exe().ctx(|| "locate the running executable".into())?;
    let bin = exe.with_file_name("tandem");
    if bin.is_file() {
        // `cargo run --bin tandem-bench` rebuilds only this binary: warn when `tandem` may be stale.
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(b), Some(e)) = (modified(&bin), modified(&exe)) {
            if e.duration_since(b).is_ok_and(|d| d > std::time::Duration::from_secs(60)) {
                eprintln!(
                    "warning: {} is older than {}; if the crate changed, run `cargo build --release --bins` first",
                    bin.display(),
                    exe.display()
                );
            }
        }
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build both binaries first with `cargo build --release --bins`, then run {}",
            bin.display(),
            exe.display()
        ))
    }
}

/// `<dir of this executable>/tandem-bench-logs`, fresh for this run.
pub fn logs_dir() -> Res<PathBuf> {
    let exe = std::env::current_exe().ctx(|| "locate the running executable".into())?;
    let dir = exe.parent().unwrap_or(Path::new(".")).join("tandem-bench-logs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
