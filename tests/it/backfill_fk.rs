//! Issue 23, item 4: `backfill --all` into tables with foreign keys.
//! The pairs are configured children first and two tables reference each
//! other (store ↔ staff): with the pipeline's sessions (Postgres
//! `session_replication_role = replica`, MySQL `foreign_key_checks = 0`)
//! the order does not matter, both ways. A pair the destination refuses
//! (a CHECK constraint) fails alone: the others are copied, its failure is
//! reported and the exit code is 2.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::time::Duration;

/// Children first, the store/staff cycle in the middle.
const TABLES: [&str; 5] = ["payment", "customer", "staff", "store", "country"];

fn pairs(db: &TestDb) -> String {
    TABLES.iter().map(|n| format!("[[pairs]]\nname = \"{n}\"\npostgres = \"public.{n}\"\nmysql = \"{}.{n}\"\n\n", db.name)).collect()
}

const PG_DDL: &str = "
    CREATE TABLE country (id int PRIMARY KEY, name text NOT NULL);
    CREATE TABLE store (id int PRIMARY KEY, manager int NOT NULL, country int NOT NULL REFERENCES country);
    CREATE TABLE staff (id int PRIMARY KEY, store int NOT NULL REFERENCES store, name text);
    ALTER TABLE store ADD FOREIGN KEY (manager) REFERENCES staff;
    CREATE TABLE customer (id int PRIMARY KEY, store int NOT NULL REFERENCES store, name text);
    CREATE TABLE payment (id int PRIMARY KEY, customer int NOT NULL REFERENCES customer, staff int NOT NULL REFERENCES staff, amount numeric(5,2));";

const MY_DDL: &[&str] = &[
    "CREATE TABLE country (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL)",
    "CREATE TABLE store (id INT PRIMARY KEY, manager INT NOT NULL, country INT NOT NULL, FOREIGN KEY (country) REFERENCES country (id))",
    "CREATE TABLE staff (id INT PRIMARY KEY, store INT NOT NULL, name VARCHAR(50), FOREIGN KEY (store) REFERENCES store (id))",
    "ALTER TABLE store ADD FOREIGN KEY (manager) REFERENCES staff (id)",
    "CREATE TABLE customer (id INT PRIMARY KEY, store INT NOT NULL, name VARCHAR(50), FOREIGN KEY (store) REFERENCES store (id))",
    "CREATE TABLE payment (id INT PRIMARY KEY, customer INT NOT NULL, staff INT NOT NULL, amount DECIMAL(5,2),
       FOREIGN KEY (customer) REFERENCES customer (id), FOREIGN KEY (staff) REFERENCES staff (id))",
];

/// Rows with every reference pointing at rows of the other tables (and
/// forward: the parents have higher keys than some children).
const ROWS: &[&str] = &[
    "INSERT INTO country VALUES (1, 'Japan'), (2, 'Chile')",
    "INSERT INTO store SELECT s, 100 + s, 1 + s % 2 FROM (SELECT 1 s UNION ALL SELECT 2) x",
    "INSERT INTO staff VALUES (101, 1, 'Mike'), (102, 2, 'Jon')",
    "INSERT INTO customer VALUES (1, 2, 'Mary'), (2, 1, 'Patricia'), (3, 2, 'Linda')",
    "INSERT INTO payment VALUES (1, 3, 102, 2.99), (2, 1, 101, 0.99), (3, 2, 101, 5.99)",
];

async fn setup(db: &TestDb, seed_mysql: bool) -> std::path::PathBuf {
    let pg = db.pg().await;
    pg.batch_execute(PG_DDL).await.unwrap();
    let mut my = db.my().await;
    for sql in MY_DDL {
        my.query_drop(*sql).await.unwrap();
    }
    if seed_mysql {
        my.query_drop("SET foreign_key_checks = 0").await.unwrap();
        for sql in ROWS {
            my.query_drop(*sql).await.unwrap();
        }
    } else {
        pg.batch_execute(&format!("BEGIN; SET CONSTRAINTS ALL DEFERRED; SET session_replication_role = replica; {}; COMMIT", ROWS.join("; "))).await.unwrap();
    }
    let cfg = db.write_config(&pairs(db));
    init_cli(&cfg);
    cfg
}

fn backfill_all(cfg: &Path, from: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(tandem_bin())
        .args(["backfill", "--all", "--from", from, "--chunk-rows", "2", "-c"])
        .arg(cfg)
        .output()
        .expect("spawn tandem backfill");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn assert_copied(db: &TestDb, tables: &[&str]) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    for t in tables {
        let n = pg_rows(&pg, &format!("SELECT count(*)::text FROM {t}")).await;
        let m = my_rows(&mut my, &format!("SELECT CAST(count(*) AS CHAR) FROM {t}")).await;
        assert_eq!(n, m, "{t}: row counts");
        assert_ne!(n, vec![vec![Some("0".to_string())]], "{t} was copied");
        let a = pg_rows(&pg, &format!("SELECT id::text FROM {t} ORDER BY id")).await;
        let b = my_rows(&mut my, &format!("SELECT CAST(id AS CHAR) FROM {t} ORDER BY id")).await;
        assert_eq!(a, b, "{t}: keys");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_all_copies_tables_with_foreign_keys_and_a_cycle_in_any_order_both_ways() {
    for (from, seed_mysql) in [("mysql", true), ("postgres", false)] {
        let db = support::fresh_db(&format!("bf_fk_{from}")).await;
        let cfg = setup(&db, seed_mysql).await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let mut run = spawn_run(&cfg, &log, &[], &[]);
        let (code, said) = backfill_all(&cfg, from);
        assert_eq!(code, Some(0), "--from {from}: {said}\nrun log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        for t in TABLES {
            assert!(said.contains(&format!("backfill {t}: ")), "{said}");
        }
        assert_copied(&db, &TABLES).await;
        signal(&run, libc::SIGTERM);
        assert_eq!(wait_exit(&mut run, Duration::from_secs(15)).0, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_the_destination_refuses_fails_alone_and_the_backfill_exits_2() {
    let db = support::fresh_db("bf_fk_fail").await;
    let pg = db.pg().await;
    let cfg = {
        // customer refuses Patricia in Postgres.
        let cfg = setup(&db, true).await;
        pg.batch_execute("ALTER TABLE customer ADD CHECK (name <> 'Patricia')").await.unwrap();
        cfg
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut run = spawn_run(&cfg, &log, &[], &[]);
    let (code, said) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || backfill_all(&cfg, "mysql")
    })
    .await
    .unwrap();
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("backfill customer: FAILED: "), "{said}");
    assert!(said.contains("1 of 5 pairs failed: customer"), "{said}");
    for t in ["payment", "staff", "store", "country"] {
        assert!(said.contains(&format!("backfill {t}: ")) && !said.contains(&format!("backfill {t}: FAILED")), "{t} is copied: {said}");
    }
    assert_copied(&db, &["payment", "staff", "store", "country"]).await;
    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(15)).0, Some(0));
}

/// With tandem's Postgres sessions as replica, Postgres' foreign keys do not
/// act on replicated rows, and MariaDB does not write the rows its own
/// ON DELETE CASCADE / SET NULL change into the binlog: the deletes of
/// referenced rows therefore run with Postgres' actions on. Postgres'
/// cascades are in its WAL and reach MySQL as deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletes_and_set_null_reach_the_other_side_both_ways() {
    let db = support::fresh_db("bf_fk_cascade").await;
    let pg = db.pg().await;
    pg.batch_execute(
        "CREATE TABLE parent (id int PRIMARY KEY, name text);
         CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent ON DELETE CASCADE, name text);
         CREATE TABLE note (id int PRIMARY KEY, parent int REFERENCES parent ON DELETE SET NULL)",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    for sql in [
        "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE child (id INT PRIMARY KEY, parent INT, name VARCHAR(20), FOREIGN KEY (parent) REFERENCES parent (id) ON DELETE CASCADE)",
        "CREATE TABLE note (id INT PRIMARY KEY, parent INT, FOREIGN KEY (parent) REFERENCES parent (id) ON DELETE SET NULL)",
    ] {
        my.query_drop(sql).await.unwrap();
    }
    let cfg = db.write_config(
        &["parent", "child", "note"].iter().map(|n| format!("[[pairs]]\nname = \"{n}\"\npostgres = \"public.{n}\"\nmysql = \"{}.{n}\"\n\n", db.name)).collect::<String>(),
    );
    let run = InProcess::start(&cfg).await;
    my.query_drop("INSERT INTO parent VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')").await.unwrap();
    my.query_drop("INSERT INTO child VALUES (10, 1, 'x'), (11, 1, 'y'), (20, 2, 'z'), (30, 3, 'w'), (40, 4, 'v')").await.unwrap();
    my.query_drop("INSERT INTO note VALUES (100, 1), (200, 2), (300, 3), (400, 4)").await.unwrap();
    let sql = |t: &str| format!("SELECT id, parent FROM {t} ORDER BY id");
    wait_equal(&pg, &sql("child"), &mut my, &sql("child"), Duration::from_secs(60)).await;
    wait_equal(&pg, &sql("note"), &mut my, &sql("note"), Duration::from_secs(60)).await;
    // MySQL cascades (not in its binlog); Postgres must do the same.
    my.query_drop("DELETE FROM parent WHERE id = 1").await.unwrap();
    // Postgres cascades (in its WAL): MySQL gets the child deletes.
    pg.batch_execute("DELETE FROM parent WHERE id = 3").await.unwrap();
    let children = wait_equal(&pg, &sql("child"), &mut my, &sql("child"), Duration::from_secs(60)).await;
    let ids: Vec<_> = children.iter().map(|r| r[0].clone().unwrap_or_default()).collect();
    assert_eq!(ids, ["20", "40"]);
    let notes = wait_equal(&pg, &sql("note"), &mut my, &sql("note"), Duration::from_secs(60)).await;
    assert_eq!(notes.iter().map(|r| r[1].clone()).collect::<Vec<_>>(), vec![None, Some("2".into()), None, Some("4".into())]);
    let parents = "SELECT id, name FROM parent ORDER BY id";
    wait_equal(&pg, parents, &mut my, parents, Duration::from_secs(60)).await;
    run.stop().await;
}
