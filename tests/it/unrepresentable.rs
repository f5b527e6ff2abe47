//! Values a destination cannot hold (DESIGN §10), other than zero dates and
//! too-long strings (see `zero_dates.rs`, `quarantine.rs`): each change
//! holding one lands in the destination's `tandem.quarantine` with its column
//! and error while the rest of its source transaction applies, and the stream
//! goes on. Postgres → MariaDB: a numeric wider than the DECIMAL column, a
//! timestamptz before TIMESTAMP's range, an `infinity` timestamp, a double
//! `Infinity`, a numeric `NaN`. MariaDB → Postgres: text holding NUL, and
//! VARBINARY bytes that are not UTF-8 bound for a `text` column.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

fn pair(db: &support::TestDb, table: &str) -> String {
    format!("[[pairs]]\nname = \"{table}\"\npostgres = \"public.{table}\"\nmysql = \"{}.{table}\"\n", db.name)
}

/// Polls `query` until its first column lists `want`.
async fn wait_ids<F, Fut>(mut query: F, want: &[&str]) -> Rows
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Rows>,
{
    let t0 = Instant::now();
    loop {
        let rows = query().await;
        if rows.iter().map(|r| r[0].as_deref().unwrap_or("")).collect::<Vec<_>>() == want {
            return rows;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "rows {want:?} did not arrive: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_mariadb_cannot_hold_are_quarantined_and_the_rest_applies() {
    let db = support::fresh_db("unrep_pg").await;
    // `amount` is deliberately narrower in MariaDB (validate reports that pairing).
    db.pg()
        .await
        .batch_execute("CREATE TABLE vals (id int PRIMARY KEY, amount numeric(12,2), at timestamptz, at_local timestamp, ratio float8, price numeric(12,2))")
        .await
        .unwrap();
    db.my()
        .await
        .query_drop(
            "CREATE TABLE vals (id INT PRIMARY KEY, amount DECIMAL(5,2), at TIMESTAMP(6) NULL DEFAULT NULL, at_local DATETIME(6), \
             ratio DOUBLE, price DECIMAL(12,2))",
        )
        .await
        .unwrap();
    let run = InProcess::start(&db.write_config(&pair(&db, "vals"))).await;
    let pg = db.pg().await;
    pg.batch_execute(
        "BEGIN;
         INSERT INTO vals VALUES (1, 1.50, '2024-01-02 03:04:05+00', '2024-01-02 03:04:05', 0.5, 2.25);
         INSERT INTO vals (id, amount) VALUES (2, 1234567.89);
         INSERT INTO vals (id, at) VALUES (3, '0500-01-01 00:00:00+00');
         INSERT INTO vals (id, at_local) VALUES (4, 'infinity');
         INSERT INTO vals (id, ratio) VALUES (5, 'Infinity');
         INSERT INTO vals (id, price) VALUES (6, 'NaN');
         INSERT INTO vals VALUES (7, -3.00, NULL, '1999-12-31 23:59:59', -1e300, 0);
         COMMIT;",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    let sql = "SELECT id, amount, at, at_local, ratio, price FROM vals ORDER BY id";
    let url = db.my_url.clone();
    let read = || {
        let url = url.clone();
        async move {
            let mut c = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
            let r = my_rows(&mut c, sql).await;
            let _ = c.disconnect().await;
            r
        }
    };
    let rows = wait_ids(read, &["1", "7"]).await;
    assert_eq!(rows[0][1].as_deref(), Some("1.50"));
    assert_eq!(rows[1][3].as_deref(), Some("1999-12-31 23:59:59.000000"));

    // The MariaDB state database is shared by every test's pipeline.
    let q = my_rows(&mut my, &format!("SELECT key_json, column_name, value_text, error, direction, position FROM tandem.quarantine WHERE pipeline = '{}' ORDER BY id", db.name)).await;
    let got: Vec<(&str, &str)> = q.iter().map(|r| (r[0].as_deref().unwrap(), r[1].as_deref().unwrap_or("?"))).collect();
    assert_eq!(
        got,
        vec![
            (r#"{"id":"2"}"#, "amount"),
            (r#"{"id":"3"}"#, "at"),
            (r#"{"id":"4"}"#, "at_local"),
            (r#"{"id":"5"}"#, "ratio"),
            (r#"{"id":"6"}"#, "price"),
        ],
        "{q:#?}"
    );
    let value = |i: usize| q[i][2].as_deref().unwrap_or("");
    let error = |i: usize| q[i][3].as_deref().unwrap_or("").to_lowercase();
    assert_eq!(value(0), "1234567.89");
    assert!(error(0).contains("1264") || error(0).contains("out of range"), "{}", error(0));
    assert!(value(1).starts_with("0500-01-01"), "{}", value(1));
    assert!(error(1).contains("1292") || error(1).contains("incorrect datetime"), "{}", error(1));
    assert_eq!(value(2), "infinity");
    assert!(error(2).contains("infinite"), "{}", error(2));
    assert!(error(3).contains("nan or infinity"), "{}", error(3));
    assert_eq!(value(4), "NaN");
    assert!(error(4).contains("not a finite decimal"), "{}", error(4));
    assert!(q.iter().all(|r| r[4].as_deref() == Some("postgres_to_mysql") && r[5] == q[0][5]), "{q:#?}");

    // The stream goes on.
    pg.batch_execute("INSERT INTO vals (id) VALUES (8)").await.unwrap();
    wait_ids(read, &["1", "7", "8"]).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_text_postgres_cannot_hold_is_quarantined_and_the_rest_applies() {
    let db = support::fresh_db("unrep_my").await;
    db.pg().await.batch_execute("CREATE TABLE texts (id int PRIMARY KEY, s text, raw text)").await.unwrap();
    // `raw` is deliberately VARBINARY (validate reports bytes ↔ text).
    db.my()
        .await
        .query_drop("CREATE TABLE texts (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET utf8mb4, raw VARBINARY(8))")
        .await
        .unwrap();
    let run = InProcess::start(&db.write_config(&pair(&db, "texts"))).await;
    let mut my = db.my().await;
    my.query_drop(
        "START TRANSACTION;
         INSERT INTO texts VALUES (1, 'ok', 'abc');
         INSERT INTO texts VALUES (2, CONCAT('a', CHAR(0 USING utf8mb4), 'b'), NULL);
         INSERT INTO texts VALUES (3, 'x', X'61FF62');
         INSERT INTO texts VALUES (4, 'fine é', NULL);
         COMMIT;",
    )
    .await
    .unwrap();
    let pg = db.pg().await;
    let sql = "SELECT id, s, raw FROM texts ORDER BY id";
    let rows = wait_ids(|| pg_rows(&pg, sql), &["1", "4"]).await;
    assert_eq!(rows[0], vec![Some("1".into()), Some("ok".into()), Some("abc".into())]);
    assert_eq!(rows[1][1].as_deref(), Some("fine é"));

    let q = pg_rows(&pg, "SELECT key_json, column_name, value_text, error, direction FROM tandem.quarantine ORDER BY id").await;
    let got: Vec<(&str, &str)> = q.iter().map(|r| (r[0].as_deref().unwrap(), r[1].as_deref().unwrap_or("?"))).collect();
    assert_eq!(got, vec![(r#"{"id":"2"}"#, "s"), (r#"{"id":"3"}"#, "raw")], "{q:#?}");
    assert!(q[0][3].as_deref().unwrap().contains("NUL"), "{q:?}");
    assert_eq!(q[1][2].as_deref(), Some("\\x61ff62"));
    assert!(q[1][3].as_deref().unwrap().contains("UTF-8"), "{q:?}");
    assert!(q.iter().all(|r| r[4].as_deref() == Some("mysql_to_postgres")));

    my.query_drop("INSERT INTO texts VALUES (5, 'later', NULL)").await.unwrap();
    wait_ids(|| pg_rows(&pg, sql), &["1", "4", "5"]).await;
    run.stop().await;
}
