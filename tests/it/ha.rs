//! HA (DESIGN.md §7): two `tandem run` on one pipeline — one active, one on
//! standby naming the holder; after `kill -9` of the active one the standby
//! takes over within 15 s and every increment made on either side during the
//! whole run is applied exactly once. And the epoch fence: a stale holder's
//! applier cannot commit a batch after a new holder bumped the epoch.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::apply::BatchApplier;
use tandem::model::{Change, Lsn, Op, SourcePos, TxnMeta, Value};

const SQL: &str = "SELECT id, n FROM counters ORDER BY id";
const ROWS: i64 = 100;

fn pair(db: &str) -> String {
    format!("[[pairs]]\nname = \"counters\"\npostgres = \"public.counters\"\nmysql = \"{db}.counters\"\n")
}

/// The same `ROWS` counters on both sides, before the pipeline exists.
async fn counters(db: &support::TestDb) {
    let pg = db.pg().await;
    pg.batch_execute(&format!("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL); INSERT INTO counters SELECT g, 0 FROM generate_series(1, {ROWS}) g"))
        .await
        .unwrap();
    let mut my = db.my().await;
    my.query_drop(format!("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO counters SELECT seq, 0 FROM seq_1_to_{ROWS}"))
        .await
        .unwrap();
}

/// Waits until `log` contains `needle`; panics with the log after `limit`.
fn wait_log(log: &Path, needle: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{needle:?} not in {} after {limit:?}:\n{text}", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Single-row increments of rows `first..first+50` in Postgres until `stop`; returns how many.
async fn pg_increments(url: String, first: i32, stop: Arc<AtomicBool>) -> i64 {
    let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let st = pg.prepare("UPDATE counters SET n = n + 1 WHERE id = $1").await.unwrap();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        pg.execute(&st, &[&(first + (i % 50) as i32)]).await.unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    i
}

/// Single-row increments of rows `first..first+50` in MariaDB until `stop`; returns how many.
async fn my_increments(url: String, first: i64, stop: Arc<AtomicBool>) -> i64 {
    let mut my = mysql_async::Conn::from_url(url).await.unwrap();
    let st = my.prep("UPDATE counters SET n = n + 1 WHERE id = ?").await.unwrap();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        my.exec_drop(&st, (first + i % 50,)).await.unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_active_instance_hands_over_to_the_standby_within_15_s_exactly_once() {
    let db = support::fresh_db("ha_takeover").await;
    counters(&db).await;
    let cfg = db.write_config(&pair(&db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn_run(&cfg, &log_a, &[], &[]);
    wait_log(&log_a, "active: holding the pipeline lease", Duration::from_secs(30));
    let mut b = spawn_run(&cfg, &log_b, &[], &[]);
    wait_log(&log_b, "standby: waiting for the lease held by", Duration::from_secs(30));
    let b_log = std::fs::read_to_string(&log_b).unwrap();
    assert!(b_log.contains(&format!("tandem {} ", db.name)) && b_log.contains(&format!(":{}", a.id())), "names the holder: {b_log}");
    assert!(!b_log.contains("streaming"), "the standby does not stream: {b_log}");
    let status = std::process::Command::new(tandem_bin()).arg("status").arg("-c").arg(&cfg).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("lease     held by \"tandem {} ", db.name)), "{text}");

    // Postgres owns rows 1..50, MariaDB rows 51..100: no conflicts, every increment counts.
    let stop = Arc::new(AtomicBool::new(false));
    let pg_writer = tokio::spawn(pg_increments(db.pg_url.clone(), 1, Arc::clone(&stop)));
    let my_writer = tokio::spawn(my_increments(db.my_url.clone(), 51, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&a, libc::SIGKILL);
    let killed = Instant::now();
    let _ = a.wait();
    let took = wait_log(&log_b, "active: holding the pipeline lease", Duration::from_secs(20));
    wait_log(&log_b, "streaming", Duration::from_secs(20));
    let streaming = killed.elapsed();
    eprintln!("takeover: lease after {took:?}, streaming after {streaming:?}");
    assert!(streaming < Duration::from_secs(15), "standby took over after {streaming:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let total = pg_writer.await.unwrap() + my_writer.await.unwrap();
    assert!(total > 100, "the load ran: {total}");

    let pg = db.pg().await;
    let mut my = db.my().await;
    let rows = wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(60)).await;
    let sum: i64 = rows.iter().map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(sum, total, "every increment applied exactly once");
    let epochs = pg_rows(&pg, "SELECT epoch FROM tandem.lease").await;
    assert_eq!(epochs, vec![vec![Some("2".to_string())]], "two holders so far");
    signal(&b, libc::SIGTERM);
    assert_eq!(wait_exit(&mut b, Duration::from_secs(10)).0, Some(0));
}

fn insert(id: i64) -> Change {
    Change { pair: 0, op: Op::Insert, key: vec![Value::Int(id)], before: None, after: Some(vec![Value::Int(id), Value::Int(id)]) }
}

fn meta(pos: SourcePos) -> TxnMeta {
    TxnMeta { position: pos, commit_ts: 0, origin: None, txn_seq: 1 }
}

/// Applies one insert in one batch; the commit's result.
async fn batch<A: BatchApplier>(applier: &mut A, id: i64, pos: SourcePos) -> tandem::Result<()> {
    applier.begin().await.unwrap();
    applier.write(tandem::model::Origin::Client, &[insert(id)]).await.unwrap();
    let r = applier.commit(&meta(pos)).await;
    if r.is_err() {
        applier.rollback().await.unwrap();
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holders_batch_is_refused_by_the_epoch_fence_on_both_sides() {
    let db = support::fresh_db("ha_fence").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL)").await.unwrap();
    let path = db.write_config(&pair(&db.name));
    let cfg = tandem::config::load(&path).unwrap();
    tandem::ops::init::init(&cfg).await.unwrap();
    let schemas = tandem::run::load_schemas(&cfg).await.unwrap();
    let old = tandem::run::lease::bump_epochs(&cfg, "old").await.unwrap();
    let mut to_my = tandem::apply::mysql::MysqlApplier::connect(&cfg, Arc::clone(&schemas)).await.unwrap();
    to_my.set_fence(old.mysql);
    let mut to_pg = tandem::apply::postgres::PostgresApplier::connect(&cfg, Arc::clone(&schemas)).await.unwrap();
    to_pg.set_fence(old.postgres);
    let my_pos = |n: u64| SourcePos::Mysql(format!("file:binlog.000001:{n}").parse().unwrap());
    batch(&mut to_my, 1, SourcePos::Postgres(Lsn(100))).await.expect("the holder commits");
    batch(&mut to_pg, 1, my_pos(100)).await.expect("the holder commits");

    let new = tandem::run::lease::bump_epochs(&cfg, "new").await.unwrap();
    assert!(new.postgres > old.postgres && new.mysql > old.mysql, "{old:?} → {new:?}");
    let e = batch(&mut to_my, 2, SourcePos::Postgres(Lsn(200))).await.expect_err("fenced");
    assert!(matches!(e, tandem::Error::Fenced { side: "mysql", .. }), "{e}");
    let e = batch(&mut to_pg, 2, my_pos(200)).await.expect_err("fenced");
    assert!(matches!(e, tandem::Error::Fenced { side: "postgres", .. }), "{e}");
    assert_eq!(my_rows(&mut my, SQL).await, vec![vec![Some("1".into()), Some("1".into())]], "the stale batch left no row");
    assert_eq!(pg_rows(&pg, SQL).await, vec![vec![Some("1".into()), Some("1".into())]], "the stale batch left no row");
    assert_eq!(to_my.checkpoint().await.unwrap(), Some(SourcePos::Postgres(Lsn(100))));
    assert_eq!(to_pg.checkpoint().await.unwrap(), Some(my_pos(100)));

    // The new holder's appliers commit.
    to_my.set_fence(new.mysql);
    to_pg.set_fence(new.postgres);
    batch(&mut to_my, 3, SourcePos::Postgres(Lsn(300))).await.expect("the new holder commits");
    batch(&mut to_pg, 3, my_pos(300)).await.expect("the new holder commits");
    assert_eq!(to_pg.checkpoint().await.unwrap(), Some(my_pos(300)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lease_connection_is_killed_stops_and_takes_the_lease_again_exactly_once() {
    let db = support::fresh_db("ha_lost").await;
    counters(&db).await;
    let cfg = db.write_config(&pair(&db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    wait_log(&log, "active: holding the pipeline lease", Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let pg_writer = tokio::spawn(pg_increments(db.pg_url.clone(), 1, Arc::clone(&stop)));
    let my_writer = tokio::spawn(my_increments(db.my_url.clone(), 51, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A server-side cut of the lease session only (the appliers' sessions live on).
    let pg = db.pg().await;
    let cut = pg_rows(&pg, &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'tandem {} %'", db.name)).await;
    assert_eq!(cut, vec![vec![Some("t".to_string())]], "one lease session");
    wait_log(&log, "lost the pipeline lease", Duration::from_secs(10));
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("active: holding the pipeline lease").count() == 2 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "lease not taken again:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let total = pg_writer.await.unwrap() + my_writer.await.unwrap();
    let mut my = db.my().await;
    let rows = wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(60)).await;
    let sum: i64 = rows.iter().map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(sum, total, "every increment applied exactly once");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
}
