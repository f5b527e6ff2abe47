//! Per-pair `direction`: a `mysql-to-postgres` pair brings MariaDB's changes
//! to Postgres while Postgres changes to that table stay in Postgres (and a
//! `both` pair beside it still replicates both ways); `validate` says so;
//! `check --repair` brings Postgres back to MariaDB's rows;
//! switching the pair to `both` with a restart replicates new changes both
//! ways with no backfill, and what Postgres changed before stays unsent.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn config(db: &TestDb, direction: &str) -> PathBuf {
    let pairs = format!(
        "[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{db}.items\"\ndirection = \"{direction}\"\n\n\
         [[pairs]]\nname = \"notes\"\npostgres = \"public.notes\"\nmysql = \"{db}.notes\"\n",
        db = db.name
    );
    db.write_config(&pairs)
}

async fn row(my: &mut mysql_async::Conn, sql: &str) -> Rows {
    my_rows(my, sql).await
}

/// Waits until `sql` returns `want` in MariaDB.
async fn my_until(my: &mut mysql_async::Conn, sql: &str, want: &Rows) {
    let t0 = Instant::now();
    loop {
        let got = row(my, sql).await;
        if &got == want {
            return;
        }
        assert!(t0.elapsed() < WAIT, "{sql}: {got:?}, waiting for {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `sql` returns `want` in Postgres.
async fn pg_until(pg: &tokio_postgres::Client, sql: &str, want: &Rows) {
    let t0 = Instant::now();
    loop {
        let got = pg_rows(pg, sql).await;
        if &got == want {
            return;
        }
        assert!(t0.elapsed() < WAIT, "{sql}: {got:?}, waiting for {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rows(cells: &[&[&str]]) -> Rows {
    cells.iter().map(|r| r.iter().map(|c| Some(c.to_string())).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_to_postgres_pair_brings_mariadb_changes_and_keeps_postgres_changes_in_postgres() {
    let db = support::fresh_db("one_way").await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    pg.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v text, n int); CREATE TABLE notes (id int PRIMARY KEY, t text)").await.unwrap();
    my.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v TEXT, n INT); CREATE TABLE notes (id INT PRIMARY KEY, t TEXT)").await.unwrap();
    let cfg = config(&db, "mysql-to-postgres");
    let out = std::process::Command::new(tandem_bin()).args(["validate", "-c"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("INFO pair items: replicates only mysql→postgres (direction = \"mysql-to-postgres\"): changes made in postgres stay there"), "{said}");

    let run = InProcess::start(&cfg).await;
    // MariaDB's inserts, updates and deletes arrive in Postgres.
    my.query_drop("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)").await.unwrap();
    my.query_drop("UPDATE items SET n = 20 WHERE id = 2").await.unwrap();
    my.query_drop("DELETE FROM items WHERE id = 3").await.unwrap();
    let items = "SELECT id, v, n FROM items ORDER BY id";
    pg_until(&pg, items, &rows(&[&["1", "a", "1"], &["2", "b", "20"]])).await;

    // Postgres changes to that table stay in Postgres; the both-ways pair beside it still flows.
    pg.batch_execute("INSERT INTO items VALUES (100, 'pg only', 0); UPDATE items SET v = 'pg edit' WHERE id = 1; DELETE FROM items WHERE id = 2").await.unwrap();
    pg.batch_execute("INSERT INTO notes VALUES (1, 'after the items changes')").await.unwrap();
    my_until(&mut my, "SELECT id, t FROM notes", &rows(&[&["1", "after the items changes"]])).await;
    // The notes row came through the same stream after the items changes: those were read and not applied.
    assert_eq!(row(&mut my, items).await, rows(&[&["1", "a", "1"], &["2", "b", "20"]]), "Postgres changes of a mysql-to-postgres pair reached MariaDB");
    assert_eq!(pg_rows(&pg, items).await, rows(&[&["1", "pg edit", "1"], &["100", "pg only", "0"]]));
    // MariaDB goes on arriving.
    my.query_drop("INSERT INTO items VALUES (4, 'd', 4)").await.unwrap();
    my.query_drop("INSERT INTO notes VALUES (2, 'from mariadb')").await.unwrap();
    pg_until(&pg, "SELECT id, t FROM notes ORDER BY id", &rows(&[&["1", "after the items changes"], &["2", "from mariadb"]])).await;
    pg_until(&pg, items, &rows(&[&["1", "pg edit", "1"], &["4", "d", "4"], &["100", "pg only", "0"]])).await;
    run.stop().await;
    for table in ["quarantine", "conflicts"] {
        let sql = format!("SELECT count(*) FROM tandem.{table} WHERE pipeline = '{}'", db.name);
        assert_eq!(pg_rows(&pg, &sql).await, rows(&[&["0"]]), "postgres {table}");
        assert_eq!(row(&mut my, &sql).await, rows(&[&["0"]]), "mariadb {table}");
    }

    // `check --repair` brings the destination of a one-way pair back to its source.
    let out = std::process::Command::new(tandem_bin()).args(["check", "--pair", "items", "--repair", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(pg_rows(&pg, items).await, rows(&[&["1", "a", "1"], &["2", "b", "20"], &["4", "d", "4"]]), "postgres follows mariadb after the repair");
    assert_eq!(row(&mut my, items).await, rows(&[&["1", "a", "1"], &["2", "b", "20"], &["4", "d", "4"]]), "the repair changed the source");

    // Both ways from a restart on: no backfill, and nothing Postgres changed before is sent.
    let cfg = config(&db, "both");
    let run = InProcess::start(&cfg).await;
    pg.batch_execute("INSERT INTO items VALUES (200, 'pg later', 0)").await.unwrap();
    my.query_drop("UPDATE items SET n = 44 WHERE id = 4").await.unwrap();
    my_until(&mut my, "SELECT id, v FROM items WHERE id = 200", &rows(&[&["200", "pg later"]])).await;
    pg_until(&pg, "SELECT n FROM items WHERE id = 4", &rows(&[&["44"]])).await;
    run.stop().await;
    assert_eq!(row(&mut my, "SELECT id FROM items WHERE id = 100").await, Rows::new(), "a change from the one-way time was sent");
}
