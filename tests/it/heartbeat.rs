//! Idle pipelines (DESIGN.md §7): with no writes to replicated tables but a
//! steady load on unpublished ones, `tandem run` keeps the Postgres slot's
//! `confirmed_flush_lsn` moving (keepalive positions acknowledged once
//! everything before them is applied), so retained WAL stays bounded; and the
//! binlog side's reported position moves with filtered transactions too.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem::testbed::free_port;

async fn lsn(pg: &tokio_postgres::Client, sql: &str) -> u64 {
    let text: String = pg.query_one(sql, &[]).await.unwrap().get(0);
    text.parse::<tandem::model::Lsn>().unwrap().0
}

/// The mysql→postgres position `/status` reports.
async fn my_position(addr: SocketAddr) -> Option<String> {
    let (_, body) = tandem::service::http::get(addr, "/status", Duration::from_secs(5)).await.ok()?;
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    doc["directions"].as_array()?.iter().find(|d| d["direction"] == "mysql_to_postgres")?["position"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_unpublished_tables_only_still_advance_the_slot_and_the_binlog_position() {
    let db = support::fresh_db("heartbeat").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL); CREATE TABLE noise (id bigserial PRIMARY KEY, pad text)")
        .await
        .unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL); CREATE TABLE noise (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad TEXT)")
        .await
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let pairs = format!("[[pairs]]\nname = \"counters\"\npostgres = \"public.counters\"\nmysql = \"{}.counters\"\n\n[metrics]\nlisten = \"{addr}\"\n", db.name);
    let cfg = db.write_config(&pairs);
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    let slot = format!("tandem_{}", db.name);
    let confirmed = format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'");
    let t0 = Instant::now();
    while my_position(addr).await.is_none() && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let my_start = my_position(addr).await;
    let start = lsn(&pg, "SELECT pg_current_wal_lsn()::text").await;
    // ~15 s of unpublished writes, ~1 KiB each, on both sides.
    let pad = "x".repeat(1000);
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(15) {
        pg.execute("INSERT INTO noise (pad) SELECT $1 FROM generate_series(1, 20)", &[&pad]).await.unwrap();
        my.exec_drop("INSERT INTO noise (pad) VALUES (?)", (&pad,)).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "tandem died: {}", std::fs::read_to_string(&log).unwrap_or_default());
    let end = lsn(&pg, "SELECT pg_current_wal_lsn()::text").await;
    // The slot catches up with what was written while nothing was replicated.
    let t1 = Instant::now();
    let done = loop {
        let c = lsn(&pg, &confirmed).await;
        if c >= end || t1.elapsed() > Duration::from_secs(20) {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("{n} rounds; WAL {start:X} → {end:X} ({} KiB); confirmed {done:X}", (end - start) / 1024);
    assert!(end - start > 4 << 20, "the load wrote WAL: {} bytes", end - start);
    assert!(done > start, "confirmed_flush_lsn {done:X} did not pass {start:X}");
    assert!(done >= end, "confirmed_flush_lsn {done:X} stays behind {end:X}");
    let retained: i64 = pg
        .query_one(&format!("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = '{slot}'"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(retained < 16 << 20, "unconfirmed WAL stays small: {retained} bytes");
    let my_end = my_position(addr).await;
    assert!(my_end.is_some() && my_end != my_start, "the mysql→postgres position moves with filtered transactions: {my_start:?} → {my_end:?}");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
}
