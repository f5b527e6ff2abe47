//! Postgres → MariaDB with the real `tandem` binary: shutdown by SIGTERM,
//! kill -9 and restart (exactly once), memory on a huge transaction, SCRAM
//! login without leaking the password, and config errors.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

const PAIR: &str = "[[pairs]]\nname = \"counters\"\npostgres = \"public.counters\"\nmysql = \"{db}.counters\"\n";
const SQL: &str = "SELECT id, n, note FROM counters ORDER BY id";

async fn counters_table(db: &support::TestDb) {
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL, note text)").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)").await.unwrap();
}

/// Inserts the counter rows in Postgres (tandem running) and waits until MariaDB has them.
async fn seed(db: &support::TestDb, rows: i64) {
    let pg = db.pg().await;
    pg.batch_execute(&format!("INSERT INTO counters SELECT g, 0, 'start' FROM generate_series(1, {rows}) g")).await.unwrap();
    let mut my = db.my().await;
    wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(30)).await;
}

/// `count` single-row transactions, each incrementing one counter by one.
async fn increment(pg_url: String, count: i64, rows: i64) -> i64 {
    let (pg, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let stmt = pg.prepare("UPDATE counters SET n = n + 1, note = $2 WHERE id = $1").await.unwrap();
    for i in 0..count {
        let id = (i % rows + 1) as i32;
        pg.execute(&stmt, &[&id, &format!("txn {i}")]).await.unwrap();
    }
    count
}

async fn assert_exactly_once(db: &support::TestDb, total_increments: i64) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let rows = wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(60)).await;
    let sum: i64 = rows.iter().map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(sum, total_increments, "every increment applied exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_exits_0_quickly_and_a_restart_loses_and_repeats_nothing() {
    let db = support::fresh_db("sigterm").await;
    counters_table(&db).await;
    let cfg = db.write_config(&PAIR.replace("{db}", &db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(&cfg, &dir.path().join("run1.log"), &[], &[]);
    seed(&db, 50).await;
    let writer = tokio::spawn(increment(db.pg_url.clone(), 6_000, 50));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, libc::SIGTERM);
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "log: {}", std::fs::read_to_string(dir.path().join("run1.log")).unwrap_or_default());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let mut child = spawn_run(&cfg, &dir.path().join("run2.log"), &[], &[]);
    let total = writer.await.unwrap();
    assert_exactly_once(&db, total).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_20000_transactions_then_restart_is_exactly_once() {
    let db = support::fresh_db("kill9").await;
    counters_table(&db).await;
    let cfg = db.write_config(&PAIR.replace("{db}", &db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(&cfg, &dir.path().join("run1.log"), &[], &[]);
    seed(&db, 100).await;
    let writer = tokio::spawn(increment(db.pg_url.clone(), 20_000, 100));
    // Kill it twice while the writes stream in.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        child = spawn_run(&cfg, &dir.path().join(format!("run{}.log", round + 2)), &[], &[]);
    }
    let total = writer.await.unwrap();
    assert_exactly_once(&db, total).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_arrives_with_peak_rss_under_256_mib() {
    let db = support::fresh_db("million").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, account_id int, sku varchar(64), qty int, price numeric(12,2), note text, updated_at timestamp(6))").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, account_id INT, sku VARCHAR(64), qty INT, price DECIMAL(12,2), note TEXT, updated_at DATETIME(6))").await.unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\n", db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    const N: i64 = 1_000_000;
    pg.batch_execute(&format!(
        "INSERT INTO items SELECT g, g % 1000, 'SKU-' || g, g % 7, (g % 10000) / 100.0, 'note ' || g, '2024-01-01'::timestamp + g * interval '1 second'
         FROM generate_series(1, {N}) g"
    ))
    .await
    .unwrap();
    let t0 = Instant::now();
    loop {
        let n: i64 = my.query_first("SELECT COUNT(*) FROM items").await.unwrap().unwrap();
        if n == N {
            break;
        }
        assert!(n == 0, "partial transaction visible: {n} rows");
        assert!(t0.elapsed() < Duration::from_secs(600), "1M rows did not arrive in 10 minutes");
        assert!(child.try_wait().unwrap().is_none(), "tandem died: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss = peak_rss_kib(child.id());
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
    assert!(rss > 0 && rss <= 256 * 1024, "peak RSS {rss} KiB");
    let sums = "SELECT COUNT(*), SUM(qty), SUM(price), MAX(sku), MIN(note) FROM items";
    wait_equal(&pg, sums, &mut my, sums, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_exit_2_and_name_the_key() {
    let db = support::fresh_db("badcfg").await;
    let good = std::fs::read_to_string(db.write_config(&PAIR.replace("{db}", &db.name))).unwrap();
    let cases = [
        (good.replace("[apply]", "[apply]\nmax_batch_rowz = 5"), "max_batch_rowz"),
        (format!("{good}\n[pairs.columns]\nn = \"pg\"\n"), "pairs[0].columns.n"),
        (good.lines().filter(|l| !l.starts_with("url = \"postgres")).collect::<Vec<_>>().join("\n"), "postgres.url"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for cmd in ["run", "validate", "init"] {
            let out = std::process::Command::new(tandem_bin()).arg(cmd).arg("-c").arg(&path).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} with bad key {key}: {err}");
            assert!(err.contains(key), "{cmd}: message names {key}: {err}");
            assert!(err.contains(&format!("bad{i}.toml")), "{cmd}: message names the file: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_login_from_the_environment_works_and_no_log_line_shows_a_password() {
    let db = support::fresh_db("scram").await;
    counters_table(&db).await;
    let servers = support::servers();
    // Same databases, but log in as the SCRAM-only role and the MariaDB password user,
    // with the passwords in the environment only.
    let text = db
        .config_toml(&PAIR.replace("{db}", &db.name))
        .replace(&db.pg_url, &format!("postgresql://{}@127.0.0.1:{}/{}", support::SCRAM_USER, servers.pg.port(), db.name))
        .replace(&db.my_url, &format!("mysql://{}@127.0.0.1:{}/{}", support::MY_PASSWORD_USER, servers.my.port(), db.name));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("scram.toml");
    std::fs::write(&cfg, text).unwrap();
    let env = [("TANDEM_POSTGRES_PASSWORD", support::SCRAM_PASSWORD), ("TANDEM_MYSQL_PASSWORD", support::MY_PASSWORD)];

    let init = std::process::Command::new(tandem_bin()).args(["init", "--log-level", "trace", "-c"]).arg(&cfg).envs(env).output().unwrap();
    assert!(init.status.success(), "init: {}", String::from_utf8_lossy(&init.stderr));
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &env, &["--log-level", "trace"]);
    seed(&db, 10).await;
    let total = increment(db.pg_url.clone(), 200, 10).await;
    assert_exactly_once(&db, total).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));

    let logged = std::fs::read_to_string(&log).unwrap() + &String::from_utf8_lossy(&init.stderr) + &String::from_utf8_lossy(&init.stdout);
    assert!(logged.lines().count() > 10, "trace logging is on: {logged}");
    assert!(logged.contains("streaming"), "the SCRAM login reached streaming: {logged}");
    for secret in [support::SCRAM_PASSWORD, support::MY_PASSWORD] {
        assert!(!logged.contains(secret), "a password appears in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_start_up_while_postgres_is_unreachable_exits_0() {
    let db = support::fresh_db("sigterm_start").await;
    // A port nobody listens on: start-up keeps retrying the lease connection.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let pg_url = db.pg_url.replacen(&format!(":{}/", support::servers().pg.port()), &format!(":{port}/"), 1);
    assert_ne!(pg_url, db.pg_url, "the test must point Postgres at the closed port");
    let text = db.config_toml(&PAIR.replace("{db}", &db.name)).replace(&db.pg_url, &pg_url);
    let cfg = tandem::testbed::scratch_dir().unwrap().join(format!("{}-unreachable.toml", db.name));
    std::fs::write(&cfg, text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    let t0 = Instant::now();
    while !catches(child.id(), libc::SIGTERM) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no SIGTERM handler after 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let start-up reach the retry loop, then stop it there.
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, libc::SIGTERM);
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "log: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}
