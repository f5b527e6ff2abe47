//! Honest liveness with the real binary: a destination frozen with SIGSTOP
//! (both directions) turns `/health/ready` 503 while `/health/live` stays
//! 200, the frozen direction's `tandem_lag_seconds` grows between scrapes,
//! `tandem status --check` exits 1, and after SIGCONT the same process
//! catches up with every row written exactly once (destination triggers
//! count the writes per row); a row lock held past the lock timeout is
//! retried (counted) until it is released; a direction loop held by the
//! test hook stops WATCHDOG=1 within the watchdog interval; a slot the
//! server invalidated makes `tandem run` exit 1 at once, naming it.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::testbed::{free_port, MariaDb, MariaOptions, PgCluster, PgOptions};

const LEDGER: &str = "SELECT id, note FROM ledger ORDER BY id";
/// `[timeouts]` of these tests: short, so a stall is seen in seconds.
const READ_SECONDS: u64 = 3;
const MAX_LAG_SECONDS: u64 = 2;

fn settings(addr: SocketAddr, db: &str) -> String {
    format!(
        "[metrics]\nlisten = \"{addr}\"\nmax_healthy_lag_seconds = {MAX_LAG_SECONDS}\n\n\
         [timeouts]\nread_seconds = {READ_SECONDS}\nstatement_seconds = 2\nlock_seconds = 1\nconnect_seconds = 2\n\n\
         [[pairs]]\nname = \"ledger\"\npostgres = \"public.ledger\"\nmysql = \"{db}.ledger\"\n"
    )
}

fn local_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()))
}

async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    tandem::service::http::get(addr, path, Duration::from_secs(3)).await.ok()
}

/// Polls `path` until `ok`; the answer and when it came, or a panic after `limit`.
async fn until(addr: SocketAddr, path: &str, limit: Duration, ok: impl Fn(u16, &str) -> bool, log: &Path) -> (u16, String) {
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < limit {
        if let Some(r) = get(addr, path).await {
            if ok(r.0, &r.1) {
                return r;
            }
            last = Some(r);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("GET {path}: not there within {limit:?}; last {last:?}\nlog:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// The value of `name{direction="…"}` (and other labels) in a scrape.
fn gauge(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))).then(|| value.parse().ok()).flatten()
    })
}

/// `tandem status --check`'s exit code.
fn check_code(cfg: &Path) -> Option<i32> {
    std::process::Command::new(tandem_bin()).args(["status", "--check", "-c"]).arg(cfg).output().unwrap().status.code()
}

/// `pid` and all its descendants (a Postgres postmaster and its backends).
fn process_tree(pid: u32) -> Vec<i32> {
    let mut all = vec![pid as i32];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            if ppid == Some(parent) && !all.contains(&child) {
                all.push(child);
            }
        }
        i += 1;
    }
    all
}

fn signal_all(pids: &[i32], sig: i32) {
    for &p in pids {
        // SAFETY: kill(2) with a pid we read from /proc and a valid signal; failure is ignored.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

/// Which server the test freezes: the destination of one direction.
#[derive(Clone, Copy, PartialEq)]
enum Frozen {
    MariaDb,
    Postgres,
}

/// The ledger table on both sides, and at the destination a trigger that
/// counts every write of a row into `ledger_writes` (unpaired).
async fn ledger_tables(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn, counted_at: Frozen) {
    pg.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)").await.unwrap();
    my.query_drop("CREATE TABLE ledger (id INT PRIMARY KEY, note TEXT NOT NULL)").await.unwrap();
    match counted_at {
        Frozen::MariaDb => {
            my.query_drop("CREATE TABLE ledger_writes (id INT NOT NULL)").await.unwrap();
            my.query_drop("CREATE TRIGGER ledger_ins AFTER INSERT ON ledger FOR EACH ROW INSERT INTO ledger_writes VALUES (NEW.id)").await.unwrap();
            my.query_drop("CREATE TRIGGER ledger_upd AFTER UPDATE ON ledger FOR EACH ROW INSERT INTO ledger_writes VALUES (NEW.id)").await.unwrap();
        }
        Frozen::Postgres => {
            pg.batch_execute(
                "CREATE TABLE ledger_writes (id int NOT NULL);
                 CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN INSERT INTO ledger_writes VALUES (NEW.id); RETURN NULL; END $$;
                 CREATE TRIGGER ledger_writes AFTER INSERT OR UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION count_write();
                 ALTER TABLE ledger ENABLE ALWAYS TRIGGER ledger_writes;",
            )
            .await
            .unwrap();
        }
    }
}

const WRITES_NOT_ONCE: &str = "SELECT id, count(*) FROM ledger_writes GROUP BY id HAVING count(*) <> 1 ORDER BY id";

/// A destination frozen with SIGSTOP for 2× the read timeout while the
/// source keeps writing (see the module docs); `frozen` picks the server.
async fn frozen_destination_is_seen_and_survived(frozen: Frozen) {
    let tag = if frozen == Frozen::MariaDb { "stall_maria" } else { "stall_pg" };
    let db = support::fresh_db(tag).await;
    // The frozen server is a private one: SIGSTOP must not stall other tests.
    let (maria, cluster) = match frozen {
        Frozen::MariaDb => (Some(MariaDb::start(MariaOptions::default()).await.unwrap_or_else(|e| panic!("{e}"))), None),
        Frozen::Postgres => (None, Some(PgCluster::start(PgOptions::default()).await.unwrap_or_else(|e| panic!("{e}")))),
    };
    let (pg_url, my_url) = match (&maria, &cluster) {
        (Some(m), _) => {
            m.create_database(&db.name).await.unwrap();
            (db.pg_url.clone(), m.url(&db.name))
        }
        (_, Some(c)) => {
            c.create_database(&db.name).await.unwrap();
            (c.url(&db.name), db.my_url.clone())
        }
        _ => unreachable!(),
    };
    let pg = match &cluster {
        Some(c) => c.connect(&db.name).await.unwrap(),
        None => db.pg().await,
    };
    let mut my = match &maria {
        Some(m) => m.connect(&db.name).await.unwrap(),
        None => db.my().await,
    };
    ledger_tables(&pg, &mut my, frozen).await;
    let addr = local_addr();
    let text = db.config_toml(&settings(addr, &db.name)).replace(&db.pg_url, &pg_url).replace(&db.my_url, &my_url);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stall.toml");
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    until(addr, "/health/ready", Duration::from_secs(60), |c, _| c == 200, &log).await;

    // The source side keeps writing, one insert every 100 ms, through the freeze.
    let (into_frozen, source_url) = match frozen {
        Frozen::MariaDb => ("postgres_to_mysql", pg_url.clone()),
        Frozen::Postgres => ("mysql_to_postgres", my_url.clone()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        tokio::spawn(async move {
            let mut n = 0i64;
            if frozen == Frozen::MariaDb {
                let (c, conn) = tokio_postgres::connect(&source_url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    c.execute("INSERT INTO ledger VALUES ($1, $2)", &[&(n as i32), &format!("row {n}")]).await.unwrap();
                    written.store(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            } else {
                let mut c = mysql_async::Conn::from_url(source_url.as_str()).await.unwrap();
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    c.exec_drop("INSERT INTO ledger VALUES (?, CONCAT('row ', ?))", (n, n)).await.unwrap();
                    written.store(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    };
    let applied = |body: &str| gauge(body, "tandem_changes_applied_total", &[("direction", into_frozen)]).unwrap_or(0.0);
    until(addr, "/metrics", Duration::from_secs(30), |c, b| c == 200 && applied(b) >= 5.0, &log).await;

    let server_pid = match (&maria, &cluster) {
        (Some(m), _) => m.pid(),
        (_, Some(c)) => c.pid(),
        _ => None,
    }
    .expect("the private server's pid");
    let tree = process_tree(server_pid);
    let frozen_at = Instant::now();
    signal_all(&tree, libc::SIGSTOP);

    let limit = Duration::from_secs(MAX_LAG_SECONDS + READ_SECONDS + 5);
    let (_, why) = until(addr, "/health/ready", limit, |c, _| c == 503, &log).await;
    let turned = frozen_at.elapsed();
    assert!(turned <= limit, "ready turned 503 after {turned:?}");
    let live = get(addr, "/health/live").await.expect("live answers during the freeze");
    assert_eq!(live.0, 200, "{}", live.1);
    let lag = |b: &str| gauge(b, "tandem_lag_seconds", &[("direction", into_frozen)]).unwrap_or(-1.0);
    let first = lag(&get(addr, "/metrics").await.expect("metrics during the freeze").1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = lag(&get(addr, "/metrics").await.expect("metrics during the freeze").1);
    assert!(first > 0.0 && second > first + 1.0, "the lag of {into_frozen} grows during the stall: {first} then {second} ({why})");
    assert_eq!(check_code(&cfg), Some(1), "tandem status --check says not ready: {why}");
    let hold = Duration::from_secs(2 * READ_SECONDS);
    if let Some(left) = hold.checked_sub(frozen_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    signal_all(&tree, libc::SIGCONT);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let n = written.load(Ordering::SeqCst);

    until(addr, "/health/ready", Duration::from_secs(90), |c, _| c == 200, &log).await;
    let rows = wait_equal(&pg, LEDGER, &mut my, LEDGER, Duration::from_secs(60)).await;
    assert_eq!(rows.len() as i64, n, "every row written during the stall arrived");
    let (not_once, counted) = match frozen {
        Frozen::MariaDb => (my_rows(&mut my, WRITES_NOT_ONCE).await, my_rows(&mut my, "SELECT COUNT(DISTINCT id) FROM ledger_writes").await),
        Frozen::Postgres => (pg_rows(&pg, WRITES_NOT_ONCE).await, pg_rows(&pg, "SELECT count(DISTINCT id) FROM ledger_writes").await),
    };
    assert!(not_once.is_empty(), "rows written other than once at the destination: {not_once:?}");
    assert_eq!(counted[0][0].as_deref(), Some(n.to_string().as_str()));
    assert!(child.try_wait().unwrap().is_none(), "the same process caught up");
    assert_eq!(check_code(&cfg), Some(0), "ready again");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)).0, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    if cluster.is_none() {
        drop_slot(&pg).await;
    }
}

async fn drop_slot(pg: &tokio_postgres::Client) {
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_mariadb_destination_is_not_ready_lags_more_each_scrape_and_catches_up_exactly_once_after_sigcont() {
    frozen_destination_is_seen_and_survived(Frozen::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postgres_destination_is_not_ready_lags_more_each_scrape_and_catches_up_exactly_once_after_sigcont() {
    frozen_destination_is_seen_and_survived(Frozen::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_lock_held_past_the_lock_timeout_is_retried_and_counted_and_the_change_applies_once_it_is_released() {
    let db = support::fresh_db("stall_lock").await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    ledger_tables(&pg, &mut my, Frozen::MariaDb).await;
    pg.batch_execute("INSERT INTO ledger VALUES (1, 'before')").await.unwrap();
    my.query_drop("INSERT INTO ledger VALUES (1, 'before')").await.unwrap();
    my.query_drop("DELETE FROM ledger_writes").await.unwrap();
    let addr = local_addr();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lock.toml");
    std::fs::write(&cfg, db.config_toml(&settings(addr, &db.name))).unwrap();
    init_cli(&cfg);
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    until(addr, "/health/ready", Duration::from_secs(60), |c, _| c == 200, &log).await;

    // A client holds the row's lock in MariaDB, far longer than lock_seconds = 1.
    let mut holder = db.my().await;
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder.query_drop("SELECT * FROM ledger WHERE id = 1 FOR UPDATE").await.unwrap();
    pg.batch_execute("UPDATE ledger SET note = 'after' WHERE id = 1").await.unwrap();
    let retries = |b: &str| gauge(b, "tandem_apply_retries_total", &[("direction", "postgres_to_mysql"), ("reason", "lock_timeout")]).unwrap_or(0.0);
    let (_, body) = until(addr, "/metrics", Duration::from_secs(30), |c, b| c == 200 && retries(b) >= 2.0, &log).await;
    let lag = gauge(&body, "tandem_lag_seconds", &[("direction", "postgres_to_mysql")]).unwrap_or(0.0);
    assert!(lag > 1.0, "the lag grows while the lock is held: {lag}");
    assert_eq!(my_rows(&mut my, "SELECT note FROM ledger WHERE id = 1").await[0][0].as_deref(), Some("before"));
    holder.query_drop("COMMIT").await.unwrap();
    wait_equal(&pg, LEDGER, &mut my, LEDGER, Duration::from_secs(60)).await;
    assert_eq!(my_rows(&mut my, "SELECT note FROM ledger WHERE id = 1").await[0][0].as_deref(), Some("after"));
    let writes = my_rows(&mut my, "SELECT COUNT(*) FROM ledger_writes WHERE id = 1").await;
    assert_eq!(writes[0][0].as_deref(), Some("1"), "the retried update was written once");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)).0, Some(0));
    drop_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direction_loop_held_by_the_test_hook_stops_watchdog_pings_within_the_watchdog_interval() {
    let db = support::fresh_db("stall_watchdog").await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    ledger_tables(&pg, &mut my, Frozen::MariaDb).await;
    let addr = local_addr();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("watchdog.toml");
    std::fs::write(&cfg, db.config_toml(&settings(addr, &db.name))).unwrap();
    init_cli(&cfg);
    let sock_path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let hold = dir.path().join("hold");
    let log = dir.path().join("run.log");
    let envs = [
        ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "4000000"),
        ("TANDEM_TEST_HOLD_FILE", hold.to_str().unwrap()),
    ];
    let mut child = spawn_run(&cfg, &log, &envs, &[]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf).await {
            if tx.send((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned())).is_err() {
                return;
            }
        }
    });
    let pings_until = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, String)>, deadline: Instant| {
        let mut pings = Vec::new();
        while let Ok((at, m)) = rx.try_recv() {
            if at <= deadline && m.lines().any(|l| l == "WATCHDOG=1") {
                pings.push(at);
            }
        }
        pings
    };
    until(addr, "/health/ready", Duration::from_secs(60), |c, _| c == 200, &log).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!pings_until(&mut rx, Instant::now()).is_empty(), "WATCHDOG=1 while every loop checks in");

    std::fs::write(&hold, "mysql_to_postgres").unwrap();
    let held_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let late: Vec<Duration> = pings_until(&mut rx, Instant::now()).into_iter().filter_map(|t| t.checked_duration_since(held_at)).collect();
    assert!(late.iter().all(|d| *d <= Duration::from_secs(4)), "WATCHDOG=1 stopped within the 4 s interval of the hold: pings at {late:?}");
    assert!(child.try_wait().unwrap().is_none());

    std::fs::remove_file(&hold).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!pings_until(&mut rx, Instant::now()).is_empty(), "WATCHDOG=1 again once the loop checks in");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)).0, Some(0));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("no longer feeding the systemd watchdog"), "{logged}");
    drop_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_invalidated_while_tandem_was_down_makes_run_exit_1_at_once_naming_the_slot_and_the_remedy() {
    let db = support::fresh_db("stall_slot").await;
    let settings_ = [("max_slot_wal_keep_size", "1MB"), ("wal_keep_size", "0"), ("max_wal_size", "64MB"), ("min_wal_size", "32MB")];
    let cluster = PgCluster::start(PgOptions { settings: settings_.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cluster.create_database(&db.name).await.unwrap();
    let pg = cluster.connect(&db.name).await.unwrap();
    let mut my = db.my().await;
    ledger_tables(&pg, &mut my, Frozen::MariaDb).await;
    let addr = local_addr();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("slot.toml");
    std::fs::write(&cfg, db.config_toml(&settings(addr, &db.name)).replace(&db.pg_url, &cluster.url(&db.name))).unwrap();
    init_cli(&cfg);
    let slot = format!("tandem_{}", db.name);

    // While tandem is down, more WAL than max_slot_wal_keep_size keeps is written and checkpointed away.
    pg.batch_execute("CREATE TABLE filler (x text)").await.unwrap();
    let t0 = Instant::now();
    loop {
        pg.batch_execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000); SELECT pg_switch_wal(); CHECKPOINT;")
            .await
            .unwrap();
        let status = pg_rows(&pg, &format!("SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'")).await;
        if status.first().and_then(|r| r[0].as_deref()) == Some("lost") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the slot was not invalidated: {status:?}\n{}", cluster.log_tail(30));
    }

    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    let (code, took) = wait_exit(&mut child, Duration::from_secs(30));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(1), "{logged}");
    assert!(took < Duration::from_secs(20), "exited after {took:?}, not after a retry loop");
    assert!(logged.contains(&slot) && logged.contains("wal_status = lost") && logged.contains("tandem init") && logged.contains("backfill"), "{logged}");

    let out = std::process::Command::new(tandem_bin()).args(["validate", "-c"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&slot) && said.contains("invalidated"), "{said}");
    let out = std::process::Command::new(tandem_bin()).args(["init", "-c"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && said.contains("invalidated") && said.contains("recreated"), "{said}{}", String::from_utf8_lossy(&out.stderr));
    // With the slot recreated, the pipeline runs again.
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    until(addr, "/health/ready", Duration::from_secs(60), |c, _| c == 200, &log).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)).0, Some(0));
}
