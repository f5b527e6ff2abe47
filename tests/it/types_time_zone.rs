//! A MariaDB server whose default time zone is not UTC: TIMESTAMP values
//! still arrive as the same instants, DATETIME and the other local types
//! unchanged (DESIGN §10). Its own throwaway MariaDB; helpers from `types`.

use super::types::*;
use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Instant;
use tandem::testbed::{MariaDb, MariaOptions};


const TZ_COLS: &[Col] = &[
    col("c_dt", "timestamp(6)", "DATETIME(6)", Canon::Ts),
    col("c_ts", "timestamptz", "TIMESTAMP(6) NULL", Canon::TsTz),
    col("c_dttz", "timestamptz", "DATETIME(6)", Canon::TsTz),
    col("c_date", "date", "DATE", Canon::Date),
    col("c_time", "time(6)", "TIME(6)", Canon::Time),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_server_time_zone_does_not_shift_timestamps() {
    let t0 = Instant::now();
    let server = MariaDb::start(MariaOptions { extra_args: vec!["--default-time-zone=+05:30".into()], ..MariaOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shared = support::fresh_db("types_tz").await;
    server.create_database(&shared.name).await.unwrap();
    // This test's Postgres database, and the private MariaDB.
    let db = TestDb { my_url: server.url(&shared.name), ..shared.clone() };
    let pg = db.pg().await;
    pg.batch_execute(&pg_create(TZ_COLS)).await.unwrap();
    let mut my = server.connect(&db.name).await.unwrap();
    let zone: Option<String> = my.query_first("SELECT @@session.time_zone").await.unwrap();
    assert_eq!(zone.as_deref(), Some("+05:30"), "sessions start in the server's zone");
    my.query_drop(my_create(TZ_COLS)).await.unwrap();
    let mut run = InProcess::start(&db.write_config(&pair_config(&db, ""))).await;

    // Written in MariaDB in the server's default zone (+05:30).
    my.query_drop(
        "INSERT INTO types VALUES
           (1, '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012', '2024-02-29', '12:34:56.789012'),
           (2, '1970-01-01 00:00:00', FROM_UNIXTIME(1700000000.123456), '1970-01-01 00:00:00', '1970-01-01', '00:00:00')",
    )
    .await
    .unwrap();
    // Written in Postgres.
    pg.batch_execute(
        "SET TimeZone = 'UTC';
         INSERT INTO types VALUES (101, '2024-07-04 16:00:00.5', '2024-07-04 16:00:00.5+00', '2024-07-04 16:00:00.5+00', '2024-07-04', '16:00:00.5')",
    )
    .await
    .unwrap();
    let mut reader = my_reader(server.connect(&db.name).await.unwrap()).await;
    let (p, m) = converge(&pg, &mut reader, &mut run, TZ_COLS, false, "after the inserts").await;
    assert_eq!(cell(&p, TZ_COLS, 1, "c_ts"), Some("2024-02-29 07:04:56.789012"), "TIMESTAMP is the instant written at +05:30");
    assert_eq!(cell(&p, TZ_COLS, 1, "c_dt"), Some("2024-02-29 12:34:56.789012"), "DATETIME is naive");
    assert_eq!(cell(&p, TZ_COLS, 1, "c_dttz"), Some("2024-02-29 12:34:56.789012"), "DATETIME is read as UTC");
    assert_eq!(cell(&p, TZ_COLS, 2, "c_ts"), Some("2023-11-14 22:13:20.123456"), "FROM_UNIXTIME(1700000000.123456)");
    assert_eq!(cell(&m, TZ_COLS, 101, "c_ts"), Some("2024-07-04 16:00:00.500000"));
    assert_eq!(cell(&m, TZ_COLS, 101, "c_dt"), Some("2024-07-04 16:00:00.500000"));
    // Read in the server's own zone, the Postgres instant shows at +05:30.
    let local: Option<String> =
        my.query_first("SELECT DATE_FORMAT(c_ts, '%Y-%m-%d %H:%i:%s.%f') FROM types WHERE id = 101").await.unwrap();
    assert_eq!(local.as_deref(), Some("2024-07-04 21:30:00.500000"));

    // Updates both ways: each destination reads its row back to merge.
    my.query_drop("UPDATE types SET c_ts = '2024-03-01 00:00:00', c_dt = '2024-03-01 00:00:00' WHERE id = 1").await.unwrap();
    pg.batch_execute("UPDATE types SET c_ts = '2030-01-01 00:00:00+00', c_dttz = '2030-01-01 00:00:00+00' WHERE id = 101")
        .await
        .unwrap();
    let (p, m) = converge(&pg, &mut reader, &mut run, TZ_COLS, false, "after the updates").await;
    assert_eq!(cell(&p, TZ_COLS, 1, "c_ts"), Some("2024-02-29 18:30:00.000000"));
    assert_eq!(cell(&p, TZ_COLS, 1, "c_dt"), Some("2024-03-01 00:00:00.000000"));
    assert_eq!(cell(&m, TZ_COLS, 101, "c_ts"), Some("2030-01-01 00:00:00.000000"));
    assert_eq!(cell(&m, TZ_COLS, 101, "c_dttz"), Some("2030-01-01 00:00:00.000000"));
    let c = conflicts(&pg, &mut reader, &db.name).await;
    assert!(c.is_empty(), "spurious conflicts: {c:?}");
    run.stop().await;
    release_slot(&pg).await;
    eprintln!("mariadb at +05:30: done after {:?} (private server start included)", t0.elapsed());
}

