//! MariaDB → Postgres, end to end against the throwaway servers: every test
//! writes in MariaDB and asserts on both databases' contents.

use super::two_pairs::*;
use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_inserts_updates_deletes_and_truncate_arrive_in_postgres() {
    let db = support::fresh_db("my_dml").await;
    create_tables(&db).await;
    let run = InProcess::start(&db.write_config(&pairs(&db))).await;
    let mut my = db.my().await;
    my.query_drop(
        "INSERT INTO accounts VALUES (1, 1, 'one', 10.50, '2024-01-31'), (1, 2, 'two', NULL, NULL), (2, 1, 'it''s', -3.25, '1999-12-31');
         INSERT INTO people VALUES (1, 'Ada', '+44 1', 1, 0), (2, 'Grace', NULL, 0, 0), (3, 'Émile 😀', '555', NULL, 0);",
    )
    .await
    .unwrap();
    assert_eq!(both_equal(&db).await, (3, 3));

    my.query_drop(
        "UPDATE accounts SET balance = balance * 2, name = 'ONE' WHERE tenant = 1 AND id = 1;
         UPDATE accounts SET id = 3 WHERE tenant = 1 AND id = 2;
         UPDATE people SET phone_number = '+1 555', active = NULL, counter = counter + 1 WHERE id = 2;",
    )
    .await
    .unwrap();
    assert_eq!(both_equal(&db).await, (3, 3));

    my.query_drop("DELETE FROM accounts WHERE tenant = 2; DELETE FROM people WHERE id IN (1, 3);").await.unwrap();
    assert_eq!(both_equal(&db).await, (2, 1));

    my.query_drop("TRUNCATE accounts").await.unwrap();
    my.query_drop("INSERT INTO accounts VALUES (5, 5, 'after truncate', 1, NULL)").await.unwrap();
    assert_eq!(both_equal(&db).await, (1, 1));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_row_mariadb_transaction_becomes_visible_all_at_once() {
    let db = support::fresh_db("my_atomic").await;
    create_tables(&db).await;
    let run = InProcess::start(&db.write_config(&pairs(&db))).await;
    const N: i64 = 20_000;
    let pg_url = db.pg_url.clone();
    let poller = tokio::spawn(async move {
        let (pg, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let mut seen = Vec::new();
        let t0 = Instant::now();
        loop {
            let n: i64 = pg.query_one("SELECT count(*) FROM people", &[]).await.unwrap().get(0);
            seen.push(n);
            if n == N || t0.elapsed() > WAIT {
                return seen;
            }
        }
    });
    let mut my = db.my().await;
    my.query_drop(format!("INSERT INTO people (id, full_name) SELECT seq, CONCAT('person ', seq) FROM seq_1_to_{N}"))
    .await
    .unwrap();
    let seen = poller.await.unwrap();
    assert_eq!(seen.last(), Some(&N));
    assert!(seen.iter().all(|&n| n == 0 || n == N), "a reader saw part of the transaction");
    assert_eq!(both_equal(&db).await.1, N as usize);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_binary_logs_between_and_inside_a_burst_loses_nothing() {
    let db = support::fresh_db("my_flush").await;
    create_tables(&db).await;
    let run = InProcess::start(&db.write_config(&pairs(&db))).await;
    let mut my = db.my().await;
    let mut id = 0;
    for burst in 0..4 {
        for _ in 0..50 {
            id += 1;
            my.exec_drop("INSERT INTO people (id, full_name) VALUES (?, ?)", (id, format!("p{id}"))).await.unwrap();
            if id % 17 == 0 {
                my.query_drop("FLUSH BINARY LOGS").await.unwrap();
            }
        }
        // Inside an open transaction, then between bursts.
        my.query_drop("START TRANSACTION").await.unwrap();
        id += 1;
        my.exec_drop("INSERT INTO people (id, full_name) VALUES (?, ?)", (id, format!("txn{burst}"))).await.unwrap();
        let mut other = db.my().await;
        other.query_drop("FLUSH BINARY LOGS").await.unwrap();
        id += 1;
        my.exec_drop("INSERT INTO people (id, full_name) VALUES (?, ?)", (id, format!("txn{burst}b"))).await.unwrap();
        my.query_drop("COMMIT").await.unwrap();
        my.query_drop("FLUSH BINARY LOGS").await.unwrap();
    }
    assert_eq!(both_equal(&db).await.1, id as usize);
    run.stop().await;
}

const COUNTERS: &str = "[[pairs]]\nname = \"counters\"\npostgres = \"public.counters\"\nmysql = \"{db}.counters\"\n";
const SQL: &str = "SELECT id, n, note FROM counters ORDER BY id";

async fn counters_table(db: &support::TestDb) {
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL, note text)").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)").await.unwrap();
}

/// Inserts the counter rows in MariaDB (tandem running) and waits until Postgres has them.
async fn seed(db: &support::TestDb, rows: i64) {
    let mut my = db.my().await;
    my.query_drop(format!("INSERT INTO counters SELECT seq, 0, 'start' FROM seq_1_to_{rows}")).await.unwrap();
    let pg = db.pg().await;
    wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(30)).await;
}

async fn increment(my_url: String, count: i64, rows: i64) -> i64 {
    let mut my = mysql_async::Conn::from_url(my_url).await.unwrap();
    let stmt = my.prep("UPDATE counters SET n = n + 1, note = ? WHERE id = ?").await.unwrap();
    for i in 0..count {
        my.exec_drop(&stmt, (format!("txn {i}"), i % rows + 1)).await.unwrap();
    }
    count
}

async fn assert_exactly_once(db: &support::TestDb, total: i64) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let rows = wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(60)).await;
    let sum: i64 = rows.iter().map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(sum, total, "every increment applied exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_kill_9_during_20000_mariadb_transactions_then_restart_is_exactly_once() {
    let db = support::fresh_db("my_kill").await;
    counters_table(&db).await;
    // This test also covers the marker-row echo tag (the others use the session server_id).
    let text = db.config_toml(&COUNTERS.replace("{db}", &db.name)).replace(&format!("server_id = {}", db.server_id), &format!("server_id = {}\necho_tag = \"marker-row\"", db.server_id));
    let cfg = tandem::testbed::scratch_dir().unwrap().join(format!("{}-marker.toml", db.name));
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(&cfg, &dir.path().join("run1.log"), &[], &[]);
    seed(&db, 100).await;
    let writer = tokio::spawn(increment(db.my_url.clone(), 20_000, 100));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, libc::SIGTERM);
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", std::fs::read_to_string(dir.path().join("run1.log")).unwrap_or_default());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    child = spawn_run(&cfg, &dir.path().join("run2.log"), &[], &[]);
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        child = spawn_run(&cfg, &dir.path().join(format!("run{}.log", round + 3)), &[], &[]);
    }
    let total = writer.await.unwrap();
    assert_exactly_once(&db, total).await;
    // The last restart may be only milliseconds old here (the writer can finish
    // before it): a SIGTERM during start-up must still be a clean stop.
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", std::fs::read_to_string(dir.path().join("run4.log")).unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_position_checkpoint_from_another_server_is_refused() {
    let db = support::fresh_db("my_identity").await;
    counters_table(&db).await;
    let cfg = db.write_config(&COUNTERS.replace("{db}", &db.name));
    init_cli(&cfg);
    // A checkpoint taken by file:position on a server with another identity.
    let pg = db.pg().await;
    pg.execute(
        "UPDATE tandem.checkpoints SET position = 'file:mariadb-bin.000001:328', server_identity = 'mariadb/server_id=77/gtid_domain=0'
         WHERE direction = 'mysql_to_postgres'",
        &[],
    )
    .await
    .unwrap();
    let out = std::process::Command::new(tandem_bin()).arg("run").arg("-c").arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("server_id=77") && err.contains("another server"), "explains the refusal: {err}");
    let pos = pg_rows(&pg, "SELECT position FROM tandem.checkpoints WHERE direction = 'mysql_to_postgres'").await;
    assert_eq!(pos[0][0].as_deref(), Some("file:mariadb-bin.000001:328"), "nothing was applied or moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500000_row_mariadb_transaction_arrives_with_peak_rss_under_256_mib() {
    let db = support::fresh_db("my_big").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, account_id int, sku varchar(64), qty int, price numeric(12,2), note text, updated_at timestamp(6))").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, account_id INT, sku VARCHAR(64), qty INT, price DECIMAL(12,2), note TEXT, updated_at DATETIME(6))").await.unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\n", db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    const N: i64 = 500_000;
    my.query_drop(format!(
        "INSERT INTO items SELECT seq, seq % 1000, CONCAT('SKU-', seq), seq % 7, (seq % 10000) / 100, CONCAT('note ', seq),
                TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_{N}"
    ))
    .await
    .unwrap();
    let t0 = Instant::now();
    loop {
        let n: i64 = pg.query_one("SELECT count(*) FROM items", &[]).await.unwrap().get(0);
        if n == N {
            break;
        }
        assert!(n == 0, "partial transaction visible: {n} rows");
        assert!(t0.elapsed() < Duration::from_secs(600), "500k rows did not arrive in 10 minutes");
        assert!(child.try_wait().unwrap().is_none(), "tandem died: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss = peak_rss_kib(child.id());
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
    assert!(rss > 0 && rss <= 256 * 1024, "peak RSS {rss} KiB");
    let pg_sums = "SELECT count(*), sum(qty), sum(price), max(sku), min(note), to_char(max(updated_at), 'YYYY-MM-DD HH24:MI:SS') FROM items";
    let my_sums = "SELECT COUNT(*), SUM(qty), SUM(price), MAX(sku), MIN(note), DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s') FROM items";
    wait_equal(&pg, pg_sums, &mut my, my_sums, Duration::from_secs(10)).await;
}
