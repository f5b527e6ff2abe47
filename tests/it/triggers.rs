//! Issue 23, items 2 and 3: triggers and `ON UPDATE CURRENT_TIMESTAMP` at
//! the destination.
//! - Postgres: the apply sessions run as `session_replication_role =
//!   replica`, so an ordinary `BEFORE UPDATE` trigger does not restamp
//!   replicated rows; an `ENABLE ALWAYS` one does, and what it changed is sent
//!   back to MySQL as Postgres' outcome.
//! - MySQL: triggers always fire; what they change in the rows tandem
//!   writes is sent back to Postgres as MySQL's outcome.
//! - An `ON UPDATE CURRENT_TIMESTAMP` column keeps the replicated value.
//!
//! In every case both sides end equal and then stay still: no ping-pong
//! (Postgres rows keep their `xmin`, MySQL rows their values, for a while).
//! `validate` reports what the sessions do and lists the triggers; a pair
//! whose triggers fire on both sides is a problem.

use super::type_ranges::validate;
use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn pairs(db: &TestDb, names: &[&str]) -> String {
    names.iter().map(|n| format!("[[pairs]]\nname = \"{n}\"\npostgres = \"public.{n}\"\nmysql = \"{}.{n}\"\n\n", db.name)).collect()
}

const STAMP: &str = "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.last_update = now(); RETURN NEW; END $$";

/// Waits for equal rows, then checks that nothing moves for `still`:
/// Postgres rows keep their xmin (no further write), MySQL rows their values.
async fn settle(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn, table: &str, pg_cols: &str, my_cols: &str, still: Duration) -> Rows {
    let pg_sql = format!("SELECT {pg_cols} FROM {table} ORDER BY 1");
    let my_sql = format!("SELECT {my_cols} FROM {table} ORDER BY 1");
    let rows = wait_equal(pg, &pg_sql, my, &my_sql, WAIT).await;
    let xmin_sql = format!("SELECT id::text, xmin::text FROM {table} ORDER BY 1");
    let xmins = pg_rows(pg, &xmin_sql).await;
    tokio::time::sleep(still).await;
    assert_eq!(pg_rows(pg, &xmin_sql).await, xmins, "{table}: Postgres rows were written again (ping-pong)");
    assert_eq!(pg_rows(pg, &pg_sql).await, rows, "{table}: Postgres rows changed after settling");
    assert_eq!(my_rows(my, &my_sql).await, rows, "{table}: MySQL rows changed after settling");
    rows
}

const PG_TS: &str = "id::text, name, to_char(last_update, 'YYYY-MM-DD HH24:MI:SS')";
const MY_TS: &str = "CAST(id AS CHAR), name, DATE_FORMAT(last_update, '%Y-%m-%d %H:%i:%s')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_triggers_do_not_fire_on_replicated_rows_unless_enabled_always() {
    let db = support::fresh_db("trig_pg").await;
    let pg = db.pg().await;
    pg.batch_execute(&format!(
        "{STAMP};
         CREATE TABLE actor (id int PRIMARY KEY, name text, last_update timestamp(0) NOT NULL DEFAULT now());
         CREATE TRIGGER actor_stamp BEFORE UPDATE ON actor FOR EACH ROW EXECUTE FUNCTION stamp();
         CREATE TABLE staff (id int PRIMARY KEY, name text, last_update timestamp(0) NOT NULL DEFAULT now());
         CREATE TRIGGER staff_stamp BEFORE INSERT OR UPDATE ON staff FOR EACH ROW EXECUTE FUNCTION stamp();
         ALTER TABLE staff ENABLE ALWAYS TRIGGER staff_stamp"
    ))
    .await
    .unwrap();
    let mut my = db.my().await;
    for t in ["actor", "staff"] {
        my.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(45), last_update DATETIME NOT NULL)")).await.unwrap();
    }
    let cfg = db.write_config(&pairs(&db, &["actor", "staff"]));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("INFO postgres apply sessions: run with session_replication_role = replica"), "{said}");
    assert!(said.contains("INFO mysql apply sessions: set foreign_key_checks = 0"), "{said}");
    assert!(said.contains("INFO postgres table public.actor: trigger actor_stamp (BEFORE UPDATE, ENABLE) does not fire on replicated rows"), "{said}");
    assert!(said.contains("WARNING postgres table public.staff: trigger staff_stamp (BEFORE INSERT OR UPDATE, ENABLE ALWAYS) fires on the rows tandem writes here"), "{said}");
    let run = InProcess::start(&cfg).await;

    // actor: the trigger does not restamp rows written from MySQL ...
    my.query_drop("INSERT INTO actor VALUES (1, 'PENELOPE', '2006-02-15 04:34:33')").await.unwrap();
    my.query_drop("UPDATE actor SET name = 'NICK', last_update = '2006-02-15 04:34:34' WHERE id = 1").await.unwrap();
    let rows = settle(&pg, &mut my, "actor", PG_TS, MY_TS, Duration::from_secs(2)).await;
    assert_eq!(rows[0][2].as_deref(), Some("2006-02-15 04:34:34"), "replicated value kept in Postgres");
    // ... but does restamp Postgres' own updates, which replicate as any change.
    pg.batch_execute("UPDATE actor SET name = 'ED' WHERE id = 1").await.unwrap();
    let rows = settle(&pg, &mut my, "actor", PG_TS, MY_TS, Duration::from_secs(1)).await;
    assert_ne!(rows[0][2].as_deref(), Some("2006-02-15 04:34:34"), "Postgres' own update is stamped");

    // staff: ENABLE ALWAYS fires on replicated rows; its stamp goes back to MySQL.
    my.query_drop("INSERT INTO staff VALUES (1, 'MIKE', '2006-02-15 03:57:16')").await.unwrap();
    let rows = settle(&pg, &mut my, "staff", PG_TS, MY_TS, Duration::from_secs(2)).await;
    assert_ne!(rows[0][2].as_deref(), Some("2006-02-15 03:57:16"), "the ALWAYS trigger stamped the row, and MySQL has its stamp");
    my.query_drop("UPDATE staff SET name = 'JON' WHERE id = 1").await.unwrap();
    let rows = settle(&pg, &mut my, "staff", PG_TS, MY_TS, Duration::from_secs(2)).await;
    assert_eq!(rows[0][1].as_deref(), Some("JON"));
    assert!(!run.task.is_finished());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_trigger_changes_to_replicated_rows_are_sent_back_to_postgres() {
    let db = support::fresh_db("trig_my").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE customer (id int PRIMARY KEY, name text, create_date timestamp(0) NOT NULL, last_update timestamp(0))").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(45), create_date DATETIME NOT NULL, last_update DATETIME NULL) DEFAULT CHARSET = utf8mb4")
        .await
        .unwrap();
    my.query_drop("CREATE TRIGGER customer_create_date BEFORE INSERT ON customer FOR EACH ROW SET NEW.create_date = NOW()").await.unwrap();
    my.query_drop("CREATE TRIGGER customer_touch BEFORE UPDATE ON customer FOR EACH ROW SET NEW.last_update = NOW()").await.unwrap();
    let cfg = db.write_config(&pairs(&db, &["customer"]));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "{said}");
    for t in ["customer_create_date (BEFORE INSERT)", "customer_touch (BEFORE UPDATE)"] {
        assert!(said.contains(&format!("WARNING mysql table {}.customer: trigger {t} fires on the rows tandem writes here", db.name)), "{said}");
    }
    let run = InProcess::start(&cfg).await;
    let pg_cols = "id::text, name, to_char(create_date, 'YYYY-MM-DD HH24:MI:SS'), to_char(last_update, 'YYYY-MM-DD HH24:MI:SS')";
    let my_cols = "CAST(id AS CHAR), name, DATE_FORMAT(create_date, '%Y-%m-%d %H:%i:%s'), DATE_FORMAT(last_update, '%Y-%m-%d %H:%i:%s')";

    // Postgres → MySQL: the insert trigger sets the date in MySQL; Postgres gets it back.
    pg.batch_execute("INSERT INTO customer VALUES (1, 'MARY', '2000-01-01 00:00:00', NULL), (2, 'PATRICIA', '2000-01-01 00:00:00', NULL)").await.unwrap();
    let rows = settle(&pg, &mut my, "customer", pg_cols, my_cols, Duration::from_secs(2)).await;
    assert!(rows.iter().all(|r| r[2].as_deref() != Some("2000-01-01 00:00:00")), "MySQL's trigger value on both sides: {rows:?}");
    // Postgres → MySQL update: the update trigger stamps last_update; Postgres gets it back.
    pg.batch_execute("UPDATE customer SET name = 'MARIA' WHERE id = 1").await.unwrap();
    let rows = settle(&pg, &mut my, "customer", pg_cols, my_cols, Duration::from_secs(2)).await;
    assert!(rows[0][3].is_some(), "stamped by MySQL: {rows:?}");
    assert!(rows[1][3].is_none());
    // MySQL's own writes fire the triggers too and replicate as usual.
    my.query_drop("INSERT INTO customer VALUES (3, 'LINDA', '1999-01-01 00:00:00', NULL)").await.unwrap();
    my.query_drop("UPDATE customer SET name = 'PAT' WHERE id = 2").await.unwrap();
    let rows = settle(&pg, &mut my, "customer", pg_cols, my_cols, Duration::from_secs(2)).await;
    assert!(rows[1][3].is_some() && rows[2][2].as_deref() != Some("1999-01-01 00:00:00"), "{rows:?}");
    let conflicts = pg_rows(&pg, &format!("SELECT count(*)::text FROM tandem.conflicts WHERE pipeline = '{}'", db.name)).await;
    assert_eq!(conflicts, vec![vec![Some("0".to_string())]], "a trigger's outcome is no conflict");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_update_current_timestamp_keeps_the_replicated_value() {
    let db = support::fresh_db("trig_onupdate").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE film (id int PRIMARY KEY, name text, last_update timestamp(0) NOT NULL)").await.unwrap();
    let mut my = db.my().await;
    my.query_drop(
        "CREATE TABLE film (id INT PRIMARY KEY, name VARCHAR(50),
           last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) DEFAULT CHARSET = utf8mb4",
    )
    .await
    .unwrap();
    my.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let cfg = db.write_config(&pairs(&db, &["film"]));
    let run = InProcess::start(&cfg).await;
    pg.batch_execute("INSERT INTO film SELECT g, 'F' || g, '2006-02-15 05:03:42' FROM generate_series(1, 4) g").await.unwrap();
    settle(&pg, &mut my, "film", PG_TS, MY_TS, Duration::ZERO).await;
    // One row alone, then several in one statement (one multi-row UPDATE at MySQL).
    pg.batch_execute("UPDATE film SET name = 'ACADEMY' WHERE id = 1").await.unwrap();
    pg.batch_execute("UPDATE film SET name = name || '!' WHERE id IN (2, 3, 4)").await.unwrap();
    let rows = settle(&pg, &mut my, "film", PG_TS, MY_TS, Duration::from_secs(1)).await;
    assert!(rows.iter().all(|r| r[2].as_deref() == Some("2006-02-15 05:03:42")), "MySQL kept the replicated value: {rows:?}");
    assert_eq!(rows[1][1].as_deref(), Some("F2!"));
    // MySQL's own update is stamped by the server and replicates.
    my.query_drop("UPDATE film SET name = 'ZORRO' WHERE id = 4").await.unwrap();
    let rows = settle(&pg, &mut my, "film", PG_TS, MY_TS, Duration::from_secs(1)).await;
    assert_ne!(rows[3][2].as_deref(), Some("2006-02-15 05:03:42"));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_triggers_firing_on_both_sides_and_a_role_that_cannot_be_a_replica() {
    let db = support::fresh_db("trig_validate").await;
    let pg = db.pg().await;
    pg.batch_execute(&format!(
        "{STAMP}; CREATE TABLE t (id int PRIMARY KEY, last_update timestamp(0));
         CREATE TRIGGER t_stamp BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION stamp();
         ALTER TABLE t ENABLE ALWAYS TRIGGER t_stamp"
    ))
    .await
    .unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE t (id INT PRIMARY KEY, last_update DATETIME)").await.unwrap();
    my.query_drop("CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW SET NEW.last_update = NOW()").await.unwrap();
    let cfg = db.write_config(&pairs(&db, &["t"]));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("PROBLEM pair t: triggers fire on replicated rows on both sides (postgres: t_stamp; mysql: t_touch)"), "{said}");

    // A role that may not set session_replication_role: a warning with the grant; with the grant, INFO.
    let user = format!("{}_plain", db.name);
    pg.batch_execute(&format!("CREATE ROLE \"{user}\" LOGIN REPLICATION")).await.unwrap();
    let servers = support::servers();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(&db.pg_url, &format!("postgresql://{user}@127.0.0.1:{}/{}", servers.pg.port(), db.name));
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, text).unwrap();
    let (_, said) = validate(&plain);
    assert!(said.contains(&format!("WARNING postgres apply sessions: role {user} may not set session_replication_role")), "{said}");
    assert!(said.contains("GRANT SET ON PARAMETER session_replication_role TO"), "{said}");
    pg.batch_execute(&format!("GRANT SET ON PARAMETER session_replication_role TO \"{user}\"")).await.unwrap();
    let (_, said) = validate(&plain);
    assert!(said.contains("INFO postgres apply sessions: run with session_replication_role = replica"), "{said}");
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active").await.unwrap();
}
