//! Outages under a steady write load on both sides (issue: run it as a
//! service): a restart of each server, and network cuts made by a small
//! in-test TCP proxy in front of both servers. tandem must reconnect by
//! itself and end with both sides equal, nothing applied twice.
//!
//! Exactly once, measured: Postgres increments rows 1–50 and MariaDB rows
//! 51–100 of a counter table; each writer counts its committed increments
//! (and, across a server restart, the ones whose outcome it could not know).
//! At the end both sides hold the same rows and each half's sum equals its
//! writer's count.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const SQL: &str = "SELECT id, n FROM counters ORDER BY id";
const HALF: i64 = 50;

fn pair(db: &str) -> String {
    format!("[[pairs]]\nname = \"counters\"\npostgres = \"public.counters\"\nmysql = \"{db}.counters\"\n")
}

async fn counters(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn) {
    pg.batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL); INSERT INTO counters SELECT g, 0 FROM generate_series(1, 100) g")
        .await
        .unwrap();
    my.query_drop("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL)").await.unwrap();
    my.query_drop("INSERT INTO counters SELECT seq, 0 FROM seq_1_to_100").await.unwrap();
}

/// Increments committed by a writer, and those whose outcome is unknown
/// (the connection broke while the statement ran).
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    done: i64,
    unknown: i64,
}

async fn pg_writer(url: String, stop: CancellationToken) -> Count {
    let mut c = Count::default();
    while !stop.is_cancelled() {
        let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        tokio::spawn(conn);
        while !stop.is_cancelled() {
            let id = (c.done + c.unknown) % HALF + 1;
            match client.execute("UPDATE counters SET n = n + 1 WHERE id = $1", &[&(id as i32)]).await {
                Ok(_) => c.done += 1,
                Err(_) => {
                    c.unknown += 1;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    c
}

async fn my_writer(url: String, stop: CancellationToken) -> Count {
    let mut c = Count::default();
    while !stop.is_cancelled() {
        let Ok(mut my) = mysql_async::Conn::from_url(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while !stop.is_cancelled() {
            let id = HALF + (c.done + c.unknown) % HALF + 1;
            match my.exec_drop("UPDATE counters SET n = n + 1 WHERE id = ?", (id,)).await {
                Ok(()) => c.done += 1,
                Err(_) => {
                    c.unknown += 1;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    c
}

/// Waits until both sides are equal and checks each half's sum against its writer.
async fn assert_exactly_once(pg_url: &str, my_url: &str, pg_count: Count, my_count: Count) {
    let (pg, conn) = tokio_postgres::connect(pg_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut my = mysql_async::Conn::from_url(my_url).await.unwrap();
    let rows = wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(120)).await;
    let sum = |from: i64, to: i64| -> i64 {
        rows.iter()
            .map(|r| (r[0].as_deref().unwrap().parse::<i64>().unwrap(), r[1].as_deref().unwrap().parse::<i64>().unwrap()))
            .filter(|(id, _)| (from..=to).contains(id))
            .map(|(_, n)| n)
            .sum()
    };
    let (pg_sum, my_sum) = (sum(1, HALF), sum(HALF + 1, 2 * HALF));
    assert!(pg_count.done > 0 && my_count.done > 0, "both writers made progress: {pg_count:?} {my_count:?}");
    assert!(
        (pg_count.done..=pg_count.done + pg_count.unknown).contains(&pg_sum),
        "postgres increments: sum {pg_sum}, writer {pg_count:?}"
    );
    assert!(
        (my_count.done..=my_count.done + my_count.unknown).contains(&my_sum),
        "mariadb increments: sum {my_sum}, writer {my_count:?}"
    );
}

fn outage_warnings(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("connection problem; retrying").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_postgres_then_mariadb_under_load_is_survived_exactly_once() {
    let (pg_srv, my_srv) = tokio::join!(PgCluster::start(PgOptions::default()), MariaDb::start(MariaOptions::default()));
    let (pg_srv, my_srv) = (pg_srv.unwrap_or_else(|e| panic!("{e}")), my_srv.unwrap_or_else(|e| panic!("{e}")));
    let db = support::fresh_db("outage_restart").await;
    pg_srv.create_database(&db.name).await.unwrap();
    my_srv.create_database(&db.name).await.unwrap();
    let (pg_url, my_url) = (pg_srv.url(&db.name), my_srv.url(&db.name));
    counters(&pg_srv.connect(&db.name).await.unwrap(), &mut my_srv.connect(&db.name).await.unwrap()).await;
    let text = db.config_toml(&pair(&db.name)).replace(&db.pg_url, &pg_url).replace(&db.my_url, &my_url);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("restart.toml");
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);

    let stop = CancellationToken::new();
    let pg_load = tokio::spawn(pg_writer(pg_url.clone(), stop.clone()));
    let my_load = tokio::spawn(my_writer(my_url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg_srv.restart().await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    my_srv.restart().await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.cancel();
    let (pg_count, my_count) = (pg_load.await.unwrap(), my_load.await.unwrap());
    assert!(child.try_wait().unwrap().is_none(), "tandem kept running: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_exactly_once(&pg_url, &my_url, pg_count, my_count).await;
    let warned = outage_warnings(&log);
    assert!((1..=8).contains(&warned), "one warning per direction and outage, not per retry: {warned}");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// A TCP proxy to a local port whose `cut` drops every open connection.
struct Proxy {
    port: u16,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let conns = Arc::clone(&open);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut conns = conns.lock().unwrap();
                conns.retain(|h| !h.is_finished());
                conns.push(pipe);
            }
        });
        Proxy { port, open, accept }
    }

    /// Drops every open connection (both ends see it closed); returns how many.
    fn cut(&self) -> usize {
        let conns: Vec<_> = self.open.lock().unwrap().drain(..).collect();
        let n = conns.iter().filter(|h| !h.is_finished()).count();
        for h in conns {
            h.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cuts_every_few_seconds_for_a_minute_under_load_leave_both_sides_equal_exactly_once() {
    let db = support::fresh_db("outage_cuts").await;
    counters(&db.pg().await, &mut db.my().await).await;
    let servers = support::servers();
    let (pg_proxy, my_proxy) = (Proxy::start(servers.pg.port()).await, Proxy::start(servers.my.port()).await);
    let text = db
        .config_toml(&pair(&db.name))
        .replace(&format!(":{}/", servers.pg.port()), &format!(":{}/", pg_proxy.port))
        .replace(&format!(":{}/", servers.my.port()), &format!(":{}/", my_proxy.port));
    assert!(text.contains(&pg_proxy.port.to_string()) && text.contains(&my_proxy.port.to_string()), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cuts.toml");
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);

    // The writers go straight to the servers: their commits are never ambiguous.
    let stop = CancellationToken::new();
    let pg_load = tokio::spawn(pg_writer(db.pg_url.clone(), stop.clone()));
    let my_load = tokio::spawn(my_writer(db.my_url.clone(), stop.clone()));
    let minutes = std::env::var("TANDEM_CUT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60u64);
    let t0 = std::time::Instant::now();
    let mut cuts = 0;
    let mut dropped = 0;
    let mut wait_ms = 2_000;
    while t0.elapsed() < Duration::from_secs(minutes) {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        dropped += pg_proxy.cut() + my_proxy.cut();
        cuts += 1;
        wait_ms = 2_000 + (wait_ms * 7919) % 4_000; // 2–6 s, varied
    }
    stop.cancel();
    let (pg_count, my_count) = (pg_load.await.unwrap(), my_load.await.unwrap());
    assert!(dropped >= cuts, "the cuts hit tandem's connections: {dropped} over {cuts} cuts");
    assert_eq!((pg_count.unknown, my_count.unknown), (0, 0), "direct writers are never cut");
    assert!(child.try_wait().unwrap().is_none(), "tandem kept running: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_exactly_once(&db.pg_url, &db.my_url, pg_count, my_count).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    let pg = db.pg().await;
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
        .await
        .unwrap();
}
