//! Fail loud, never skip, on MariaDB 10.11 with the real binary: a row
//! event tandem cannot replicate faithfully — a client session's
//! `binlog_row_image = MINIMAL` or `NOBLOB` update, a `binlog_format =
//! STATEMENT` update of a mapped table, a compressed event
//! (`log_bin_compress = ON`) — halts the mysql→postgres direction with the
//! cause and the setting named in `/health/ready` (503); neither that change
//! nor any later one is applied, while the process and the other direction
//! go on. These settings can change while tandem runs (session or global),
//! so the stream itself is what catches them.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem::testbed::{free_port, MariaDb, MariaOptions};

const ITEMS: &str = "SELECT id, n, body FROM items ORDER BY id";

/// How the bad change is made.
enum Case {
    /// `SET SESSION <setting>` in the writing session, then `UPDATE … SET n = 2`.
    Session(&'static str),
    /// `SET GLOBAL log_bin_compress = ON` (a private server), then a large row.
    Compressed,
}

async fn halts_mysql_to_postgres(tag: &str, case: Case, cause: &str) {
    let db = support::fresh_db(tag).await;
    let maria = match case {
        Case::Compressed => Some(MariaDb::start(MariaOptions::default()).await.unwrap_or_else(|e| panic!("{e}"))),
        Case::Session(_) => None,
    };
    let my_url = match &maria {
        Some(m) => {
            m.create_database(&db.name).await.unwrap();
            m.url(&db.name)
        }
        None => db.my_url.clone(),
    };
    let connect_my = || async {
        match &maria {
            Some(m) => m.connect(&db.name).await.unwrap(),
            None => db.my().await,
        }
    };
    let pg = db.pg().await;
    let mut my = connect_my().await;
    pg.batch_execute("CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL, body text NOT NULL)").await.unwrap();
    my.query_drop("CREATE TABLE items (id INT PRIMARY KEY, n INT NOT NULL, body TEXT NOT NULL)").await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let extra = format!(
        "[metrics]\nlisten = \"{addr}\"\n\n[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\n",
        db.name
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("skip.toml");
    std::fs::write(&cfg, db.config_toml(&extra).replace(&db.my_url, &my_url)).unwrap();
    init_cli(&cfg);
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    let get = |path: &'static str| async move { tandem::service::http::get(addr, path, Duration::from_secs(3)).await.ok() };
    let t0 = Instant::now();
    while get("/health/ready").await.map(|r| r.0) != Some(200) {
        assert!(t0.elapsed() < Duration::from_secs(60), "not ready: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    my.query_drop("INSERT INTO items VALUES (1, 1, 'short')").await.unwrap();
    wait_equal(&pg, ITEMS, &mut my, ITEMS, Duration::from_secs(30)).await;

    match case {
        Case::Session(setting) => {
            let mut odd = connect_my().await;
            odd.query_drop(format!("SET SESSION {setting}")).await.unwrap();
            odd.query_drop("UPDATE items SET n = 2 WHERE id = 1").await.unwrap();
        }
        Case::Compressed => {
            my.query_drop("SET GLOBAL log_bin_compress = ON").await.unwrap();
            // validate sees the setting too (and, on the shared Postgres, the unlimited slot WAL).
            let out = std::process::Command::new(tandem_bin()).args(["validate", "-c"]).arg(&cfg).output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out.status.code(), Some(1), "{said}");
            assert!(said.contains("PROBLEM mysql log_bin_compress"), "{said}");
            assert!(said.contains("max_slot_wal_keep_size: warning: is -1 (unlimited)"), "{said}");
            assert!(said.contains("of WAL"), "validate reports the WAL the slot retains: {said}");
            let mut fresh = connect_my().await;
            fresh.query_drop(format!("UPDATE items SET n = 2, body = '{}' WHERE id = 1", "x".repeat(2000))).await.unwrap();
        }
    }
    // A later, ordinary change: it must not be applied past the one that halted.
    let mut plain = connect_my().await;
    plain.query_drop("SET SESSION binlog_row_image = FULL, binlog_format = ROW").await.unwrap();
    plain.query_drop("INSERT INTO items VALUES (2, 2, 'later')").await.unwrap();

    let t0 = Instant::now();
    let body = loop {
        if let Some((503, body)) = get("/health/ready").await {
            if body.contains("mysql→postgres is halted") {
                break body;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no halt: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains(cause), "the reason names {cause}: {body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_pg = pg_rows(&pg, ITEMS).await;
    assert_eq!(at_pg, vec![vec![Some("1".into()), Some("1".into()), Some("short".into())]], "nothing at or after the halt applied");
    let (code, alive) = get("/health/live").await.expect("live answers");
    assert_eq!(code, 200, "{alive}");
    assert!(child.try_wait().unwrap().is_none(), "the process goes on");

    // The other direction still flows.
    pg.batch_execute("INSERT INTO items VALUES (100, 100, 'from postgres')").await.unwrap();
    let t0 = Instant::now();
    while my_rows(&mut plain, "SELECT id FROM items WHERE id = 100").await.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "postgres→mysql stopped too: {}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)).0, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("direction halted"), "{logged}");
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimal_row_image_update_halts_mysql_to_postgres_naming_binlog_row_image_and_applies_nothing_after_it() {
    halts_mysql_to_postgres("skip_minimal", Case::Session("binlog_row_image = MINIMAL"), "binlog_row_image").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noblob_row_image_update_halts_mysql_to_postgres_naming_binlog_row_image_and_applies_nothing_after_it() {
    halts_mysql_to_postgres("skip_noblob", Case::Session("binlog_row_image = NOBLOB"), "binlog_row_image").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_based_update_of_a_mapped_table_halts_mysql_to_postgres_naming_binlog_format() {
    halts_mysql_to_postgres("skip_statement", Case::Session("binlog_format = STATEMENT"), "binlog_format=ROW").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_binlog_event_halts_mysql_to_postgres_naming_log_bin_compress() {
    halts_mysql_to_postgres("skip_compressed", Case::Compressed, "log_bin_compress").await;
}
