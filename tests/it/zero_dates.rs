//! MySQL zero dates (`0000-00-00`, partial `2022-11-00`, zero DATETIME and
//! TIMESTAMP) written by a MariaDB session with `sql_mode=''`: by default the
//! changes holding one land in Postgres' `tandem.quarantine` with column and
//! value while the rest of their transaction applies and the stream goes on;
//! `zero_dates = "null"` writes NULL; `on_error = "stop"` exits 1 naming them;
//! `quarantine retry` keeps failing for such an entry, `drop` removes it.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::process::Command;
use std::time::{Duration, Instant};

fn pair(db: &support::TestDb, extra: &str) -> String {
    format!("[[pairs]]\nname = \"events\"\npostgres = \"public.events\"\nmysql = \"{}.events\"\n{extra}", db.name)
}

async fn tables(db: &support::TestDb) {
    db.pg().await.batch_execute("CREATE TABLE events (id int PRIMARY KEY, d date, dt timestamp, ts timestamptz, note text)").await.unwrap();
    db.my()
        .await
        .query_drop("CREATE TABLE events (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL DEFAULT NULL, note VARCHAR(20))")
        .await
        .unwrap();
}

/// One MariaDB transaction: good rows 1 and 6 around a zero DATE (2), a
/// partial zero DATE (3), a zero DATETIME (4) and a zero TIMESTAMP (5).
async fn insert_zero_dates(db: &support::TestDb) {
    let mut my = db.my().await;
    my.query_drop("SET SESSION sql_mode = '', time_zone = '+00:00'").await.unwrap();
    my.query_drop(
        "START TRANSACTION;
         INSERT INTO events VALUES (1, '2024-01-02', '2024-01-02 03:04:05', '2024-01-02 03:04:05', 'good');
         INSERT INTO events VALUES (2, '0000-00-00', NULL, NULL, 'zero date');
         INSERT INTO events VALUES (3, '2022-11-00', NULL, NULL, 'partial');
         INSERT INTO events VALUES (4, NULL, '0000-00-00 00:00:00', NULL, 'zero datetime');
         INSERT INTO events VALUES (5, NULL, NULL, '0000-00-00 00:00:00', 'zero timestamp');
         INSERT INTO events VALUES (6, '1999-12-31', NULL, NULL, 'good too');
         COMMIT;",
    )
    .await
    .unwrap();
}

async fn wait_ids(pg: &tokio_postgres::Client, want: &[&str]) -> Rows {
    let sql = "SELECT id, d::text, dt::text, ts::text, note FROM events ORDER BY id";
    let t0 = Instant::now();
    loop {
        let rows = pg_rows(pg, sql).await;
        if rows.iter().map(|r| r[0].as_deref().unwrap_or("")).collect::<Vec<_>>() == want {
            return rows;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "rows {want:?} did not arrive: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_dates_are_quarantined_with_column_and_value_and_the_stream_goes_on() {
    let db = support::fresh_db("zero_dates_q").await;
    tables(&db).await;
    let cfg_path = db.write_config(&pair(&db, ""));
    let run = InProcess::start(&cfg_path).await;
    insert_zero_dates(&db).await;
    let pg = db.pg().await;
    let rows = wait_ids(&pg, &["1", "6"]).await;
    assert_eq!(rows[0][1].as_deref(), Some("2024-01-02"));
    assert_eq!(rows[1][4].as_deref(), Some("good too"));

    let q = pg_rows(
        &pg,
        "SELECT direction, pair, key_json, column_name, value_text, error, position, created_at::text FROM tandem.quarantine ORDER BY id",
    )
    .await;
    let got: Vec<[&str; 4]> = q
        .iter()
        .map(|r| [r[1].as_deref().unwrap(), r[2].as_deref().unwrap(), r[3].as_deref().unwrap_or("?"), r[4].as_deref().unwrap_or("?")])
        .collect();
    assert_eq!(
        got,
        vec![
            ["events", r#"{"id":"2"}"#, "d", "0000-00-00"],
            ["events", r#"{"id":"3"}"#, "d", "2022-11-00"],
            ["events", r#"{"id":"4"}"#, "dt", "0000-00-00 00:00:00"],
            ["events", r#"{"id":"5"}"#, "ts", "0000-00-00 00:00:00"],
        ]
    );
    for r in &q {
        assert_eq!(r[0].as_deref(), Some("mysql_to_postgres"), "{r:?}");
        assert!(r[5].as_deref().unwrap().contains("zero date"), "error names the cause: {r:?}");
        assert!(!r[6].as_deref().unwrap_or("").is_empty() && r[7].is_some(), "position and time: {r:?}");
    }
    // Quarantined in the transaction that applied rows 1 and 6: one source position.
    assert!(q.iter().all(|r| r[6] == q[0][6]), "{q:?}");

    // The stream goes on.
    db.my().await.query_drop("INSERT INTO events VALUES (7, '2025-05-05', NULL, NULL, 'later')").await.unwrap();
    wait_ids(&pg, &["1", "6", "7"]).await;

    // Retry cannot succeed while the value is a zero date: it names the entry and keeps it.
    let cfg = tandem::config::load(&cfg_path).unwrap();
    let entries = tandem::ops::quarantine::list(&cfg).await.unwrap();
    assert_eq!(entries.len(), 4);
    let id = entries[0].id.clone();
    assert!(id.starts_with("pg:"), "{id}");
    let still = tandem::ops::quarantine::retry(&cfg, &id).await.unwrap().expect("retry must fail");
    assert!(still.contains("0000-00-00") && still.contains("column d"), "{still}");
    let out = Command::new(tandem_bin()).args(["quarantine", "retry", &id, "-c"]).arg(&cfg_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&id) && stderr.contains("0000-00-00"), "{stderr}");
    assert_eq!(tandem::ops::quarantine::list(&cfg).await.unwrap().len(), 4, "the entry stays");
    assert_eq!(pg_rows(&pg, "SELECT count(*) FROM events WHERE id = 2").await[0][0].as_deref(), Some("0"));

    // Drop works.
    assert!(tandem::ops::quarantine::drop_entry(&cfg, &id).await.unwrap());
    let left: Vec<String> = tandem::ops::quarantine::list(&cfg).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&id));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_dates_null_writes_null_for_every_zero_date() {
    let db = support::fresh_db("zero_dates_null").await;
    tables(&db).await;
    let run = InProcess::start(&db.write_config(&pair(&db, "zero_dates = \"null\"\n"))).await;
    insert_zero_dates(&db).await;
    let pg = db.pg().await;
    let rows = wait_ids(&pg, &["1", "2", "3", "4", "5", "6"]).await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(rows[1], vec![s("2"), None, None, None, s("zero date")]);
    assert_eq!(rows[2], vec![s("3"), None, None, None, s("partial")]);
    assert_eq!(rows[3], vec![s("4"), None, None, None, s("zero datetime")]);
    assert_eq!(rows[4], vec![s("5"), None, None, None, s("zero timestamp")]);
    assert_eq!(rows[0][2].as_deref(), Some("2024-01-02 03:04:05"));
    assert_eq!(pg_rows(&pg, "SELECT count(*) FROM tandem.quarantine").await[0][0].as_deref(), Some("0"));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_date_with_on_error_stop_exits_1_naming_pair_key_column_and_value() {
    let db = support::fresh_db("zero_dates_stop").await;
    tables(&db).await;
    let text = db.config_toml(&pair(&db, "")).replace("[apply]\n", "[apply]\non_error = \"stop\"\n");
    let cfg = tandem::testbed::scratch_dir().unwrap().join(format!("{}-stop.toml", db.name));
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    let mut my = db.my().await;
    my.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    my.query_drop("INSERT INTO events VALUES (9, '2022-11-00', NULL, NULL, 'partial')").await.unwrap();
    let (code, _) = wait_exit(&mut child, Duration::from_secs(30));
    let out = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(1), "{out}");
    for needle in ["events", r#"{"id":"9"}"#, "column d", "2022-11-00"] {
        assert!(out.contains(needle), "the error names {needle}: {out}");
    }
    assert_eq!(pg_rows(&db.pg().await, "SELECT count(*) FROM events").await[0][0].as_deref(), Some("0"));
}
