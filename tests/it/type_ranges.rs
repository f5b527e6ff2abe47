//! Issue 23, item 1: type pairs judged by value range replicate end to end,
//! one test per conversion family — widened integers (unsigned and small
//! kinds, `YEAR`, `tinyint(1)` against Postgres integers, a decimal against
//! `bigint`), Postgres domains (as their base type, checks applied), MySQL
//! `TIMESTAMP` against Postgres `timestamp` (the UTC rule), `SET` against
//! `text[]` and `ENUM` against a Postgres enum. Each writes in-range values
//! on both sides (the sides must agree) and values the narrower side cannot
//! hold (they must be quarantined there, never altered, while the rest goes
//! on); `validate` accepts each fixture with warnings only.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn pair(db: &TestDb, name: &str) -> String {
    format!("[[pairs]]\nname = \"{name}\"\npostgres = \"public.{name}\"\nmysql = \"{}.{name}\"\n", db.name)
}

/// Keys (as text) quarantined on each side: (postgres, mysql).
pub(super) async fn quarantined(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn, pipeline: &str) -> (Vec<String>, Vec<String>) {
    let sql = format!("SELECT key_json FROM tandem.quarantine WHERE pipeline = '{pipeline}' ORDER BY key_json");
    let flat = |rows: Rows| rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect::<Vec<_>>();
    (flat(pg_rows(pg, &sql).await), flat(my_rows(my, &sql).await))
}

/// Waits until `side` has quarantined exactly `keys` (key_json texts).
pub(super) async fn wait_quarantined(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn, run: &mut InProcess, pipeline: &str, on_mysql: bool, keys: &[&str]) {
    let t0 = Instant::now();
    loop {
        if run.task.is_finished() {
            panic!("tandem run ended: {:?}", (&mut run.task).await);
        }
        let (p, m) = quarantined(pg, my, pipeline).await;
        let got = if on_mysql { &m } else { &p };
        if got.iter().map(String::as_str).collect::<Vec<_>>() == keys {
            return;
        }
        assert!(t0.elapsed() < WAIT, "quarantine on {}: {got:?}, expected {keys:?} (other side: {:?})", if on_mysql { "mysql" } else { "postgres" }, if on_mysql { &p } else { &m });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `tandem validate`'s exit code and stdout.
pub(super) fn validate(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(tandem_bin()).args(["validate", "-c"]).arg(cfg).output().expect("spawn tandem validate");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widened_integers_replicate_and_values_the_narrow_side_cannot_hold_are_quarantined() {
    let db = support::fresh_db("ranges_int").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE nums (id int PRIMARY KEY, u8 smallint, u16 integer, flag integer, yr smallint, d bigint)").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE nums (id INT PRIMARY KEY, u8 TINYINT UNSIGNED, u16 SMALLINT UNSIGNED, flag TINYINT(1), yr YEAR, d DECIMAL(12,0))")
        .await
        .unwrap();
    let cfg = db.write_config(&pair(&db, "nums"));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "widenings are accepted: {said}");
    for col in ["u8", "u16", "flag", "yr", "d"] {
        assert!(said.contains(&format!("WARNING pair nums column {col}: ")), "{col} narrows towards MySQL: {said}");
    }
    assert!(said.contains("numbers other than 0 and 1901 to 2155"), "{said}");
    let mut run = InProcess::start(&cfg).await;
    let pg_sql = "SELECT id::text, u8::text, u16::text, flag::text, yr::text, d::text FROM nums ORDER BY id";
    let my_sql = "SELECT CAST(id AS CHAR), CAST(u8 AS CHAR), CAST(u16 AS CHAR), CAST(flag AS CHAR), CAST(yr + 0 AS CHAR), CAST(d AS CHAR) FROM nums ORDER BY id";
    // Every MySQL value fits Postgres.
    my.query_drop("INSERT INTO nums VALUES (1, 255, 65535, -128, 2155, 999999999999), (2, 0, 0, 127, 0, -999999999999), (3, NULL, NULL, 1, 1901, NULL)")
        .await
        .unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    assert_eq!(rows[0], ["1", "255", "65535", "-128", "2155", "999999999999"].map(|s| Some(s.to_string())).to_vec());
    // Postgres values inside the MySQL ranges replicate.
    pg.batch_execute("UPDATE nums SET u8 = 7, u16 = 300, flag = 5, yr = 1999, d = 42 WHERE id = 1").await.unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    assert_eq!(rows[0], ["1", "7", "300", "5", "1999", "42"].map(|s| Some(s.to_string())).to_vec());
    // Values outside them are quarantined at MySQL (YEAR would turn 5 into 2005), the rest goes on.
    pg.batch_execute(
        "INSERT INTO nums VALUES (10, 256, 1, 0, 2000, 0); INSERT INTO nums VALUES (11, 1, -1, 0, 2000, 0);
         INSERT INTO nums VALUES (12, 1, 1, 128, 2000, 0); INSERT INTO nums VALUES (13, 1, 1, 0, 5, 0);
         INSERT INTO nums VALUES (14, 1, 1, 0, 2000, 1000000000000); INSERT INTO nums VALUES (15, 1, 1, 1, 2024, 7)",
    )
    .await
    .unwrap();
    wait_quarantined(&pg, &mut my, &mut run, &db.name, true, &[r#"{"id":"10"}"#, r#"{"id":"11"}"#, r#"{"id":"12"}"#, r#"{"id":"13"}"#, r#"{"id":"14"}"#]).await;
    let t0 = Instant::now();
    loop {
        let ids = my_rows(&mut my, "SELECT CAST(id AS CHAR) FROM nums ORDER BY id").await;
        if ids.len() == 4 {
            assert_eq!(ids.last().and_then(|r| r[0].as_deref()), Some("15"), "only the row that fits arrived: {ids:?}");
            break;
        }
        assert!(t0.elapsed() < WAIT && ids.len() < 5, "MySQL rows: {ids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (p, _) = quarantined(&pg, &mut my, &db.name).await;
    assert!(p.is_empty(), "nothing from MySQL was refused: {p:?}");
    assert!(!run.task.is_finished());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_replicate_as_their_base_type_and_their_checks_hold() {
    let db = support::fresh_db("ranges_domain").await;
    let pg = db.pg().await;
    pg.batch_execute(
        "CREATE DOMAIN release_year AS integer CHECK (VALUE BETWEEN 1901 AND 2155);
         CREATE DOMAIN short_name AS varchar(20) NOT NULL;
         CREATE DOMAIN title_name AS short_name;
         CREATE DOMAIN blob_t AS bytea;
         CREATE TABLE films (id int PRIMARY KEY, released release_year, name title_name, data blob_t)",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE films (id INT PRIMARY KEY, released YEAR, name VARCHAR(20) NOT NULL, data BLOB) DEFAULT CHARSET = utf8mb4").await.unwrap();
    let cfg = db.write_config(&pair(&db, "films"));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("INFO pair films column released: postgres domain release_year is judged and replicated as its base type integer (checks CHECK"), "{said}");
    assert!(said.contains("domain title_name is judged and replicated as its base type character varying(20) (no checks, NOT NULL"), "{said}");
    assert!(!said.contains("PROBLEM"), "{said}");
    let mut run = InProcess::start(&cfg).await;
    let pg_sql = "SELECT id::text, released::text, name::text, encode(data, 'hex') FROM films ORDER BY id";
    let my_sql = "SELECT CAST(id AS CHAR), CAST(released + 0 AS CHAR), name, LOWER(HEX(data)) FROM films ORDER BY id";
    pg.batch_execute("INSERT INTO films VALUES (1, 2006, 'ACADEMY DINOSAUR', '\\x00ff10')").await.unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    assert_eq!(rows[0][3].as_deref(), Some("00ff10"), "a bytea domain travels as bytes");
    my.query_drop("INSERT INTO films VALUES (2, 1999, 'ACE GOLDFINGER', x'01')").await.unwrap();
    my.query_drop("UPDATE films SET name = 'ACADEMY' WHERE id = 1").await.unwrap();
    wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    // YEAR 0 breaks the domain's check: quarantined in Postgres, the rest goes on.
    my.query_drop("INSERT INTO films VALUES (3, 0, 'ZERO', NULL)").await.unwrap();
    my.query_drop("INSERT INTO films VALUES (4, 2001, 'AFTER', NULL)").await.unwrap();
    wait_quarantined(&pg, &mut my, &mut run, &db.name, false, &[r#"{"id":"3"}"#]).await;
    let t0 = Instant::now();
    while pg_rows(&pg, "SELECT id FROM films WHERE id = 4").await.is_empty() {
        assert!(t0.elapsed() < WAIT, "row 4 never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_timestamp_pairs_with_postgres_timestamp_as_utc_wall_clock() {
    let db = support::fresh_db("ranges_ts").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE events (id int PRIMARY KEY, at timestamp(0), at6 timestamp(6))").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE events (id INT PRIMARY KEY, at TIMESTAMP NULL, at6 TIMESTAMP(6) NULL)").await.unwrap();
    let cfg = db.write_config(&pair(&db, "events"));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("the Postgres value is the instant's UTC time"), "{said}");
    assert!(said.contains("2038-01-19 03:14:07 UTC"), "{said}");
    let mut run = InProcess::start(&cfg).await;
    let pg_sql = "SELECT id::text, to_char(at, 'YYYY-MM-DD HH24:MI:SS'), to_char(at6, 'YYYY-MM-DD HH24:MI:SS.US') FROM events ORDER BY id";
    let my_sql = "SELECT CAST(id AS CHAR), DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s'), DATE_FORMAT(at6, '%Y-%m-%d %H:%i:%s.%f') FROM events ORDER BY id";
    let mut reader = db.my().await;
    reader.query_drop("SET time_zone = '+00:00'").await.unwrap();
    // Written in MySQL at +05:30: Postgres holds the instant's UTC time.
    my.query_drop("SET time_zone = '+05:30'").await.unwrap();
    my.query_drop("INSERT INTO events VALUES (1, '2024-02-29 12:34:56', '2024-02-29 12:34:56.123456')").await.unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut reader, my_sql, WAIT).await;
    assert_eq!(rows[0][1].as_deref(), Some("2024-02-29 07:04:56"));
    // Written in Postgres (any session time zone: the column is naive).
    pg.batch_execute("SET TimeZone = 'America/New_York'; INSERT INTO events VALUES (2, '2030-01-01 00:00:00', '2037-12-31 23:59:59.5')").await.unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut reader, my_sql, WAIT).await;
    assert_eq!(rows[1][1].as_deref(), Some("2030-01-01 00:00:00"));
    // Outside TIMESTAMP's range: quarantined in MySQL.
    pg.batch_execute("INSERT INTO events VALUES (3, '2040-01-01 00:00:00', NULL); INSERT INTO events VALUES (4, '1969-12-31 23:00:00', NULL)").await.unwrap();
    wait_quarantined(&pg, &mut reader, &mut run, &db.name, true, &[r#"{"id":"3"}"#, r#"{"id":"4"}"#]).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_pair_with_text_arrays_in_declared_order_and_enums_with_enum_types() {
    let db = support::fresh_db("ranges_set").await;
    let pg = db.pg().await;
    pg.batch_execute(
        "CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
         CREATE TABLE film (id int PRIMARY KEY, rating mpaa_rating, features text[])",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    my.query_drop(
        "CREATE TABLE film (id INT PRIMARY KEY, rating ENUM('G','PG','PG-13','R','NC-17'),
           features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes')) DEFAULT CHARSET = utf8mb4",
    )
    .await
    .unwrap();
    let cfg = db.write_config(&pair(&db, "film"));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("WARNING pair film column features: postgres text[] ↔ mysql set("), "{said}");
    assert!(!said.contains("column rating"), "the enums hold the same labels: {said}");
    let mut run = InProcess::start(&cfg).await;
    let pg_sql = "SELECT id::text, rating::text, array_to_string(features, ',') FROM film ORDER BY id";
    let my_sql = "SELECT CAST(id AS CHAR), rating, features FROM film ORDER BY id";
    my.query_drop("INSERT INTO film VALUES (1, 'PG-13', 'Deleted Scenes,Trailers'), (2, 'G', ''), (3, NULL, NULL)").await.unwrap();
    wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    let arrays = pg_rows(&pg, "SELECT features::text FROM film ORDER BY id").await;
    assert_eq!(arrays, vec![vec![Some("{Trailers,\"Deleted Scenes\"}".to_string())], vec![Some("{}".to_string())], vec![None]], "members in declared order");
    pg.batch_execute("UPDATE film SET features = ARRAY['Commentaries', 'Behind the Scenes'], rating = 'R' WHERE id = 1").await.unwrap();
    pg.batch_execute("INSERT INTO film VALUES (4, 'NC-17', '{Trailers}')").await.unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    assert_eq!(rows[0][2].as_deref(), Some("Commentaries,Behind the Scenes"));
    // A MySQL update after that merges against the array Postgres holds: no conflict.
    my.query_drop("UPDATE film SET features = 'Trailers,Behind the Scenes' WHERE id = 1").await.unwrap();
    wait_equal(&pg, pg_sql, &mut my, my_sql, WAIT).await;
    // Arrays MySQL would store reordered or de-duplicated are quarantined there.
    pg.batch_execute("UPDATE film SET features = ARRAY['Behind the Scenes', 'Trailers'] WHERE id = 2").await.unwrap();
    pg.batch_execute("UPDATE film SET features = ARRAY['Trailers', 'Trailers'] WHERE id = 3").await.unwrap();
    pg.batch_execute("INSERT INTO film VALUES (5, 'G', ARRAY['Trailers', NULL])").await.unwrap();
    pg.batch_execute("INSERT INTO film VALUES (6, 'G', ARRAY['Commentaries'])").await.unwrap();
    wait_quarantined(&pg, &mut my, &mut run, &db.name, true, &[r#"{"id":"2"}"#, r#"{"id":"3"}"#, r#"{"id":"5"}"#]).await;
    let t0 = Instant::now();
    loop {
        let rows = my_rows(&mut my, my_sql).await;
        if rows.len() == 5 {
            assert_eq!(rows[1][2].as_deref(), Some(""), "row 2 keeps its value: {rows:?}");
            assert_eq!(rows[4][2].as_deref(), Some("Commentaries"));
            break;
        }
        assert!(t0.elapsed() < WAIT, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let conflicts = pg_rows(&pg, &format!("SELECT count(*)::text FROM tandem.conflicts WHERE pipeline = '{}'", db.name)).await;
    assert_eq!(conflicts, vec![vec![Some("0".to_string())]]);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_keeps_lossy_pairs_problems_naming_both_fixes() {
    let db = support::fresh_db("ranges_lossy").await;
    db.pg().await.batch_execute("CREATE TABLE t (id int PRIMARY KEY, price numeric(10,3), at timestamp, n integer)").await.unwrap();
    db.my().await.query_drop("CREATE TABLE t (id INT PRIMARY KEY, price DECIMAL(10,2), at TIMESTAMP NULL, n INT UNSIGNED)").await.unwrap();
    let cfg = db.write_config(&pair(&db, "t"));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(1), "{said}");
    let problems: Vec<&str> = said.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    assert_eq!(problems.len(), 3, "{said}");
    assert!(said.contains("PROBLEM pair t column price: postgres numeric(10,3) ↔ mysql decimal(10,2): Postgres values written to MySQL change: values with more than 2 decimal places would be rounded; use DECIMAL(10,3) in MySQL or use numeric(10,2) in Postgres"), "{said}");
    assert!(said.contains("PROBLEM pair t column at: postgres timestamp without time zone ↔ mysql timestamp: Postgres values written to MySQL change: fractional seconds differ"), "{said}");
    assert!(said.contains("use DATETIME(6) in MySQL or use timestamptz(0) or timestamp(0) in Postgres"), "{said}");
    assert!(said.contains("PROBLEM pair t column n: postgres integer ↔ mysql int(10) unsigned: neither type holds every value of the other"), "{said}");
}
