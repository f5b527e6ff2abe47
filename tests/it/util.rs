//! Helpers shared by the replication tests: running tandem (in-process or as
//! the real binary), dumping tables of both databases as text, and waiting
//! for both sides to converge.

use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tandem::config::Config;
use tokio_util::sync::CancellationToken;

pub type Rows = Vec<Vec<Option<String>>>;

/// `tandem init` + `tandem run` in this process; stop with `stop()`.
pub struct InProcess {
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<tandem::Result<()>>,
}

impl InProcess {
    pub async fn start(config: &Path) -> InProcess {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let cfg: Config = tandem::config::load(config).expect("config");
        tandem::ops::init::init(&cfg).await.expect("init");
        let token = CancellationToken::new();
        let t = token.clone();
        let task = tokio::spawn(async move { tandem::run::run(&cfg, t).await });
        InProcess { token, task }
    }

    pub async fn stop(self) {
        self.token.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("run stops within 10 s");
        r.expect("run task").expect("run ends cleanly");
    }
}

/// The real `tandem` binary.
pub fn tandem_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem"))
}

/// Runs `tandem init` and waits for it.
pub fn init_cli(config: &Path) {
    let out = Command::new(tandem_bin()).arg("init").arg("-c").arg(config).output().expect("spawn tandem init");
    assert!(out.status.success(), "tandem init failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Spawns `tandem run`, its stderr going to `log`.
pub fn spawn_run(config: &Path, log: &Path, envs: &[(&str, &str)], extra_args: &[&str]) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(tandem_bin());
    cmd.arg("run").arg("-c").arg(config).args(extra_args).stdout(Stdio::null()).stderr(file);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn tandem run")
}

/// Sends `sig` to `child`. A SIGTERM or SIGINT waits (up to 30 s) until the
/// child catches it: sent in the first milliseconds after spawn, before
/// `tandem run` has installed its handlers (under a loaded CI machine that
/// can take a while), it would kill the process instead of testing the
/// clean stop.
pub fn signal(child: &Child, sig: i32) {
    if sig == libc::SIGTERM || sig == libc::SIGINT {
        let t0 = Instant::now();
        while !catches(child.id(), sig) && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Does process `pid` catch signal `sig` (`SigCgt` of /proc/PID/status)?
/// A process that is gone counts as catching it (nothing to wait for).
pub fn catches(pid: u32, sig: i32) -> bool {
    if proc_status_field(pid, "State").map_or(true, |s| s.contains("zombie")) {
        return true;
    }
    proc_status_field(pid, "SigCgt").and_then(|m| u64::from_str_radix(&m, 16).ok()).map_or(true, |m| m & (1u64 << (sig - 1)) != 0)
}

/// The value of field `name` in /proc/PID/status (None: no such process or field).
fn proc_status_field(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// Waits for a child to exit, up to `limit`; returns its exit code and the time it took.
pub fn wait_exit(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return (st.code(), t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tandem did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Peak resident set size (VmHWM) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_field(pid, "VmHWM").and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// All rows of a Postgres query, every value as text.
pub async fn pg_rows(pg: &tokio_postgres::Client, sql: &str) -> Rows {
    let msgs = pg.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// All rows of a MySQL query (text protocol), every value as text.
pub async fn my_rows(my: &mut mysql_async::Conn, sql: &str) -> Rows {
    let rows: Vec<mysql_async::Row> = my.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(other.as_sql(true).trim_matches('\'').to_string()),
                })
                .collect()
        })
        .collect()
}

/// Polls until the two queries return the same rows; panics with both dumps after `limit`.
pub async fn wait_equal(pg: &tokio_postgres::Client, pg_sql: &str, my: &mut mysql_async::Conn, my_sql: &str, limit: Duration) -> Rows {
    let t0 = Instant::now();
    loop {
        let a = pg_rows(pg, pg_sql).await;
        let b = my_rows(my, my_sql).await;
        if a == b {
            return a;
        }
        if t0.elapsed() > limit {
            let show = |r: &Rows| r.iter().take(20).map(|x| format!("{x:?}")).collect::<Vec<_>>().join("\n  ");
            panic!(
                "sides differ after {limit:?}: postgres {} rows, mysql {} rows\npostgres:\n  {}\nmysql:\n  {}",
                a.len(),
                b.len(),
                show(&a),
                show(&b)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
