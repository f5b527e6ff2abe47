//! `tandem check` against the throwaway servers: equal tables of every kind
//! of value compare equal; drift injected behind tandem's back is reported
//! exactly and `--repair` fixes it by ownership; a steady write load through
//! tandem is not drift; and a 100,000-row table with 10 differences is
//! checked reading a small fraction of it.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::ops::check::{check, CheckOptions, CheckReport};

const WAIT: Duration = Duration::from_secs(30);

/// One pair: `pg_note` owned by Postgres, `my_note` by MySQL, the rest `both`.
const PAIR: &str = r#"
[[pairs]]
name = "items"
postgres = "public.items"
mysql = "{db}.items"
default_owner = "both"
on_conflict = "postgres-wins"

[pairs.columns]
pg_note = "postgres"
my_note = "mysql"
"#;

const PG_TABLE: &str = "CREATE TABLE items (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamp(6), tz timestamptz,
    flag boolean, data bytea, ratio float8, small real, doc jsonb, born date, t time, code char(4),
    pg_note text, my_note text, shared text)";
const MY_TABLE: &str = "CREATE TABLE items (id INT PRIMARY KEY, name TEXT, amount DECIMAL(12,2), at DATETIME(6), tz TIMESTAMP(6) NULL,
    flag TINYINT(1), data BLOB, ratio DOUBLE, small FLOAT, doc JSON, born DATE, t TIME(6), code CHAR(4),
    pg_note TEXT, my_note TEXT, shared TEXT)";
const COLS: &str = "id, name, amount, at, tz, flag, data, ratio, small, doc, born, t, code, pg_note, my_note, shared";

async fn tables(db: &support::TestDb) -> std::path::PathBuf {
    db.pg().await.batch_execute(PG_TABLE).await.unwrap();
    db.my().await.query_drop(MY_TABLE).await.unwrap();
    db.write_config(&PAIR.replace("{db}", &db.name))
}

fn load(cfg: &std::path::Path) -> tandem::config::Config {
    tandem::config::load(cfg).unwrap()
}

async fn run_check(cfg: &std::path::Path, repair: bool) -> CheckReport {
    let opts = CheckOptions { repair, ..CheckOptions::default() };
    check(&load(cfg), &opts).await.unwrap_or_else(|e| panic!("check failed: {e}"))
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = list.as_array().unwrap().iter().map(|x| x["key"]["id"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

/// `(id, [columns])` of the `different` entries, sorted by id.
fn diffs(list: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let cols = x["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
            (x["key"]["id"].as_str().unwrap().to_string(), cols)
        })
        .collect();
    v.sort();
    v
}

/// `tandem check -c cfg --format json`: exit code and parsed report.
fn check_binary(cfg: &std::path::Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(tandem_bin()).arg("check").arg("-c").arg(cfg).args(["--format", "json"]).args(extra).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_rows_of_every_type_written_on_each_side_compare_equal() {
    let db = support::fresh_db("check_equal").await;
    let cfg = tables(&db).await;
    // The same values written independently on both servers (no pipeline):
    // NULLs, '' vs NULL, decimals of the declared scale, µs timestamps,
    // bytes, floats both servers print differently, JSON with another key order.
    db.pg()
        .await
        .batch_execute(&format!(
            "INSERT INTO items ({COLS}) VALUES
             (1, 'Ada', 10.50, '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+00', true, '\\x00ff10', 0.1, 0.1,
              '{{\"b\": 1, \"aa\": [1, 2.5, {{\"x\": null}}]}}', '2024-02-29', '12:34:56.789', 'ab', 'p', 'm', 's'),
             (2, '', 0, '1999-12-31 23:59:59', '1970-01-02 00:00:00+00', false, '', 1e300, 3.14159, '{{}}', '0099-01-01', '00:00:00', '', '', NULL, ''),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (4, 'it''s é 😀 \\ back', -3.25, '2038-01-19 03:14:08', '2038-01-19 03:14:07.999999+00', true, '\\x27', 1e-7, 16777217, '[1, \"x\", null, true]', '2000-01-01', '23:59:59.999999', 'abcd', 'a', 'bc', NULL),
             (5, 'floats', 99999999.99, '2024-06-30 12:00:00.000001', NULL, false, '\\xdeadbeef', 0.30000000000000004, 1e-7, '\"str\"', NULL, NULL, NULL, 'ab', 'c', NULL),
             (6, 'more', -0.01, NULL, NULL, NULL, NULL, 123456789.123, 0.000123, '12.50', NULL, NULL, NULL, NULL, NULL, NULL),
             (7, 'neg', 1, NULL, NULL, NULL, NULL, -1.5e-5, -2.5, '{{\"k\": \"é\\\\n\"}}', NULL, NULL, NULL, NULL, NULL, NULL),
             (8, 'big', 2, NULL, NULL, NULL, NULL, 1e15, 1e16, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (9, 'huge', 3, NULL, NULL, NULL, NULL, 1e16, 1e21, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (10, 'zero', 4, NULL, NULL, NULL, NULL, -0.0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (11, 'tiny', 5, NULL, NULL, NULL, NULL, 2.5e-310, 1.17549435e-38, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (12, 'third', 6, NULL, NULL, NULL, NULL, 0.3333333333333333, 0.33333334, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ))
        .await
        .unwrap();
    let mut my = db.my().await;
    my.query_drop("SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')").await.unwrap();
    my.query_drop(format!(
        "INSERT INTO items ({COLS}) VALUES
         (1, 'Ada', 10.5, '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5', 1, X'00FF10', 0.1, 0.1,
          '{{\"aa\":[1,2.5,{{\"x\":null}}],\"b\":1}}', '2024-02-29', '12:34:56.789', 'ab', 'p', 'm', 's'),
         (2, '', 0.00, '1999-12-31 23:59:59', '1970-01-02 00:00:00', 0, '', 1e300, 3.14159, '{{}}', '0099-01-01', '00:00:00', '', '', NULL, ''),
         (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (4, 'it''s é 😀 \\ back', -3.25, '2038-01-19 03:14:08', '2038-01-19 03:14:07.999999', 1, X'27', 1e-7, 16777217, '[1,\"x\",null,true]', '2000-01-01', '23:59:59.999999', 'abcd', 'a', 'bc', NULL),
         (5, 'floats', 99999999.99, '2024-06-30 12:00:00.000001', NULL, 0, X'DEADBEEF', 0.1e0 + 0.2e0, 1e-7, '\"str\"', NULL, NULL, NULL, 'ab', 'c', NULL),
         (6, 'more', -0.01, NULL, NULL, NULL, NULL, 123456789.123e0, 0.000123, '12.50', NULL, NULL, NULL, NULL, NULL, NULL),
         (7, 'neg', 1, NULL, NULL, NULL, NULL, -1.5e-5, -2.5, '{{\"k\":\"é\\\\n\"}}', NULL, NULL, NULL, NULL, NULL, NULL),
         (8, 'big', 2, NULL, NULL, NULL, NULL, 1e15, 1e16, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (9, 'huge', 3, NULL, NULL, NULL, NULL, 1e16, 1e21, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (10, 'zero', 4, NULL, NULL, NULL, NULL, -0e0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (11, 'tiny', 5, NULL, NULL, NULL, NULL, 2.5e-310, 1.17549435e-38, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (12, 'third', 6, NULL, NULL, NULL, NULL, 1e0/3, 1e0/3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    ))
    .await
    .unwrap();
    let report = run_check(&cfg, false).await;
    let json = serde_json::to_value(&report).unwrap();
    assert!(report.in_sync, "equal tables reported as drift: {json:#}");
    assert!(!report.pipeline_running);

    // Each kind of difference is still seen: NULL vs '', a value split
    // differently across columns, one microsecond, one cent, one float ulp,
    // one JSON value.
    my.query_drop(
        "UPDATE items SET shared = NULL WHERE id = 2;
         UPDATE items SET pg_note = 'ab', my_note = 'c' WHERE id = 4;
         UPDATE items SET at = '2024-06-30 12:00:00.000002' WHERE id = 5;
         UPDATE items SET amount = -0.02 WHERE id = 6;
         UPDATE items SET ratio = 0.33333333333333337 WHERE id = 12;
         UPDATE items SET doc = '{\"aa\":[1,2.5,{\"x\":0}],\"b\":1}' WHERE id = 1;",
    )
    .await
    .unwrap();
    let json = serde_json::to_value(run_check(&cfg, false).await).unwrap();
    assert_eq!(json["in_sync"], false);
    let found = diffs(&json["pairs"][0]["different"]);
    let expect: Vec<(String, Vec<String>)> = vec![
        ("1".into(), vec!["doc".into()]),
        ("12".into(), vec!["ratio".into()]),
        ("2".into(), vec!["shared".into()]),
        ("4".into(), vec!["pg_note".into(), "my_note".into()]),
        ("5".into(), vec!["at".into()]),
        ("6".into(), vec!["amount".into()]),
    ];
    assert_eq!(found, expect, "{json:#}");
    let row2 = json["pairs"][0]["different"].as_array().unwrap().iter().find(|d| d["key"]["id"] == "2").unwrap().clone();
    assert_eq!(row2["postgres"]["shared"], "");
    assert!(row2["mysql"]["shared"].is_null());
    assert!(json["notes"][0].as_str().unwrap().contains("not running"), "{json:#}");
}

/// Inserts `n` rows in Postgres through the running pipeline and waits for MariaDB.
async fn seed(db: &support::TestDb, n: i32) {
    let pg = db.pg().await;
    pg.batch_execute(&format!(
        "INSERT INTO items (id, name, amount, at, flag, pg_note, my_note, shared)
         SELECT g, 'name ' || g, g * 1.25, '2024-01-01'::timestamp + g * interval '1 second', g % 2 = 0, 'pg', 'my', 'both'
         FROM generate_series(1, {n}) g"
    ))
    .await
    .unwrap();
    let sql = "SELECT id, name, amount, pg_note, my_note, shared FROM items ORDER BY id";
    wait_equal(&pg, sql, &mut db.my().await, sql, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_behind_tandems_back_is_reported_exactly_and_repaired_by_ownership() {
    let db = support::fresh_db("check_drift").await;
    let cfg = tables(&db).await;
    let run = InProcess::start(&cfg).await;
    seed(&db, 20).await;
    // Postgres 15 lets one session at a time use the origin, and the running
    // applier holds it: write under it while tandem is stopped, so the stream
    // drops these transactions as tandem's own when it starts again.
    run.stop().await;
    let pg = db.pg().await;
    let t0 = Instant::now();
    // The stopped applier's session may take a moment to end and free the origin.
    while let Err(e) = pg.batch_execute(&format!("SELECT pg_replication_origin_session_setup('tandem_{}')", db.name)).await {
        assert!(t0.elapsed() < WAIT, "the origin stays busy: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.batch_execute(
        "INSERT INTO items (id, name, pg_note, my_note, shared) VALUES (100, 'only in postgres', 'pg', 'my', 'both');
         UPDATE items SET my_note = 'changed in postgres' WHERE id = 3;",
    )
    .await
    .unwrap();
    // Not in the same batch: the origin must still be set when the writes commit.
    pg.batch_execute("SELECT pg_replication_origin_session_reset()").await.unwrap();
    let run = InProcess::start(&cfg).await;
    slot_active(&pg, &db.name).await;
    let mut my = db.my().await;
    my.query_drop(
        "SET SESSION sql_log_bin = 0;
         INSERT INTO items (id, name, pg_note, my_note, shared) VALUES (200, 'only in mysql', 'pg', 'my', 'both');
         UPDATE items SET pg_note = 'changed in mysql' WHERE id = 4;
         UPDATE items SET shared = 'changed in mysql' WHERE id = 5;
         SET SESSION sql_log_bin = 1;",
    )
    .await
    .unwrap();
    // Ordinary replicated traffic at the same time is not drift.
    db.pg().await.batch_execute("UPDATE items SET name = 'renamed' WHERE id = 7").await.unwrap();

    let report = run_check(&cfg, false).await;
    let json = serde_json::to_value(&report).unwrap();
    assert!(report.pipeline_running);
    let p = &json["pairs"][0];
    assert_eq!(json["in_sync"], false);
    assert_eq!(ids(&p["missing_in_mysql"]), vec!["100"], "{json:#}");
    assert_eq!(ids(&p["missing_in_postgres"]), vec!["200"], "{json:#}");
    let expect: Vec<(String, Vec<String>)> =
        vec![("3".into(), vec!["my_note".into()]), ("4".into(), vec!["pg_note".into()]), ("5".into(), vec!["shared".into()])];
    assert_eq!(diffs(&p["different"]), expect, "{json:#}");
    let d3 = p["different"].as_array().unwrap().iter().find(|d| d["key"]["id"] == "3").unwrap();
    assert_eq!(d3["postgres"]["my_note"], "changed in postgres");
    assert_eq!(d3["mysql"]["my_note"], "my");

    let (code, bin) = check_binary(&cfg, &[]);
    assert_eq!(code, Some(1), "{bin:#}");
    assert_eq!(diffs(&bin["pairs"][0]["different"]), expect);
    assert_eq!(ids(&bin["pairs"][0]["missing_in_mysql"]), vec!["100"]);

    let fixed = run_check(&cfg, true).await;
    let fixed_json = serde_json::to_value(&fixed).unwrap();
    assert_eq!(fixed.repaired, Some(true), "{fixed_json:#}");
    assert_eq!(fixed_json["pairs"][0]["repairs"].as_array().unwrap().len(), 5, "{fixed_json:#}");
    eprintln!("repair: {} ms, notes {}", fixed.elapsed_ms, fixed_json["notes"]);
    // Each column ended with its owner's value; rows owned by both sides were copied.
    let q = |id: i32, col: &str| format!("SELECT {col} FROM items WHERE id = {id}");
    let pg_val = |rows: Rows| rows.first().and_then(|r| r[0].clone());
    for (id, col, want) in [
        (3, "my_note", Some("my")),
        (4, "pg_note", Some("pg")),
        (5, "shared", Some("both")),
        (100, "name", Some("only in postgres")),
        (200, "name", Some("only in mysql")),
    ] {
        assert_eq!(pg_val(pg_rows(&pg, &q(id, col)).await).as_deref(), want, "postgres {col} of {id}");
        assert_eq!(pg_val(my_rows(&mut my, &q(id, col)).await).as_deref(), want, "mysql {col} of {id}");
    }
    let (code, bin) = check_binary(&cfg, &[]);
    assert_eq!(code, Some(0), "{bin:#}");
    let again = run_check(&cfg, false).await;
    assert!(again.in_sync, "{:#}", serde_json::to_value(&again).unwrap());
    run.stop().await;
}

/// Updates random rows (`ids` with the given parity) for as long as `go`
/// holds, at most about 300 a second (a pace the pipeline keeps up with).
async fn writer(db: support::TestDb, postgres: bool, parity: i32, go: Arc<AtomicBool>) -> u64 {
    use rand::Rng;
    let mut n = 0u64;
    if postgres {
        let pg = db.pg().await;
        while go.load(Ordering::Relaxed) {
            let id = rand::thread_rng().gen_range(0..500) * 2 + parity;
            pg.execute("UPDATE items SET shared = $2, pg_note = $2, at = now() WHERE id = $1", &[&id, &format!("pg {n}")]).await.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    } else {
        let mut my = db.my().await;
        while go.load(Ordering::Relaxed) {
            let id = rand::thread_rng().gen_range(0..500) * 2 + parity;
            my.exec_drop("UPDATE items SET shared = ?, my_note = ?, amount = amount + 1 WHERE id = ?", (format!("my {n}"), format!("my {n}"), id))
                .await
                .unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_steady_write_load_on_both_sides_is_not_reported_as_drift() {
    let db = support::fresh_db("check_load").await;
    let cfg = tables(&db).await;
    let run = InProcess::start(&cfg).await;
    seed(&db, 1001).await;
    let go = Arc::new(AtomicBool::new(true));
    let writers = vec![
        tokio::spawn(writer(db.clone(), true, 0, Arc::clone(&go))),
        tokio::spawn(writer(db.clone(), false, 1, Arc::clone(&go))),
    ];
    let t0 = Instant::now();
    let opts = CheckOptions { chunk_rows: 100, ..CheckOptions::default() };
    let mut checks = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        let report = check(&load(&cfg), &opts).await.unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert!(report.in_sync, "false drift under load: {json:#}");
        checks += 1;
        eprintln!("check under load: {} of {} chunks differed at first read, {} bytes, {} ms", json["pairs"][0]["chunks_mismatched"], json["pairs"][0]["chunks"], report.bytes_read, report.elapsed_ms);
    }
    go.store(false, Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    assert!(writes > 500, "the load was too light to mean anything: {writes} writes");
    eprintln!("{checks} checks during {writes} writes");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_differences_in_100000_rows_are_found_reading_a_small_fraction() {
    let db = support::fresh_db("check_100k").await;
    db.pg()
        .await
        .batch_execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamp(6), flag boolean, note text);
             INSERT INTO big SELECT g, 'customer number ' || g, g / 100.0, '2024-01-01'::timestamp + g * interval '1 minute',
                                    g % 3 = 0, repeat('x', (g % 40)::int) FROM generate_series(1, 100000) g;",
        )
        .await
        .unwrap();
    let mut my = db.my().await;
    my.query_drop(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, name TEXT, amount DECIMAL(12,2), at DATETIME(6), flag TINYINT(1), note TEXT);
         INSERT INTO big SELECT seq, CONCAT('customer number ', seq), seq / 100, '2024-01-01' + INTERVAL seq MINUTE,
                                seq % 3 = 0, REPEAT('x', seq % 40) FROM seq_1_to_100000;
         UPDATE big SET name = 'changed' WHERE id IN (17, 25000, 50001, 99999);
         UPDATE big SET amount = amount + 0.01 WHERE id = 70000;
         DELETE FROM big WHERE id IN (1, 33333, 100000);
         INSERT INTO big VALUES (100001, 'extra', 1, NULL, 0, NULL), (0, 'zero', 0, NULL, 1, '');",
    )
    .await
    .unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"big\"\npostgres = \"public.big\"\nmysql = \"{}.big\"\n", db.name));
    let full: i64 = db.pg().await.query_one("SELECT sum(length(b::text))::bigint FROM big b", &[]).await.unwrap().get(0);

    let t0 = Instant::now();
    let report = run_check(&cfg, false).await;
    let took = t0.elapsed();
    let json = serde_json::to_value(&report).unwrap();
    let p = &json["pairs"][0];
    assert_eq!(ids(&p["missing_in_mysql"]), vec!["1", "100000", "33333"]);
    assert_eq!(ids(&p["missing_in_postgres"]), vec!["0", "100001"]);
    let d = diffs(&p["different"]);
    assert_eq!(d.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), vec!["17", "25000", "50001", "70000", "99999"]);
    eprintln!(
        "100k rows, 10 differences: read {} bytes ({:.2}% of a {full}-byte dump) in {took:?}; {} chunks, {} differed",
        report.bytes_read,
        report.bytes_read as f64 * 100.0 / full as f64,
        p["chunks"],
        p["chunks_mismatched"]
    );
    assert!((report.bytes_read as f64) < full as f64 * 0.05, "read {} of {full} bytes", report.bytes_read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_text_keys_are_chunked_in_the_same_binary_order_on_both_servers() {
    let db = support::fresh_db("check_keys").await;
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE codes (tenant int, code varchar(20), val text, PRIMARY KEY (tenant, code))").await.unwrap();
    let mut my = db.my().await;
    // A case- and accent-insensitive collation orders these keys unlike bytes do.
    my.query_drop(
        "CREATE TABLE codes (tenant INT, code VARCHAR(20) COLLATE utf8mb4_general_ci, val TEXT, PRIMARY KEY (tenant, code))",
    )
    .await
    .unwrap();
    let words = ["apple", "Banana", "cherry", "Äpfel", "zebra", "Zulu", "_x", "1a", " sp", "émile", "Ørsted", "b2", "ß", "~", "a b", "Apricot"];
    let mut values = Vec::new();
    for tenant in 1..=3 {
        for (i, w) in words.iter().enumerate() {
            values.push(format!("({tenant}, '{w}', 'v{tenant}-{i}')"));
        }
    }
    let insert = format!("INSERT INTO codes VALUES {}", values.join(", "));
    pg.batch_execute(&insert).await.unwrap();
    my.query_drop(&insert).await.unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"codes\"\npostgres = \"public.codes\"\nmysql = \"{}.codes\"\n", db.name));
    let opts = CheckOptions { chunk_rows: 5, ..CheckOptions::default() };
    let report = check(&load(&cfg), &opts).await.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert!(report.in_sync, "{json:#}");
    assert_eq!(json["pairs"][0]["chunks_mismatched"], 0, "chunk boundaries cut both sides alike: {json:#}");

    my.query_drop("UPDATE codes SET val = 'changed' WHERE tenant = 2 AND code = 'Äpfel'; DELETE FROM codes WHERE tenant = 3 AND code = '~'")
        .await
        .unwrap();
    pg.batch_execute("INSERT INTO codes VALUES (1, 'Zz', 'pg only'); UPDATE codes SET val = NULL WHERE tenant = 1 AND code = ' sp'")
        .await
        .unwrap();
    let json = serde_json::to_value(check(&load(&cfg), &opts).await.unwrap()).unwrap();
    let p = &json["pairs"][0];
    let keys = |list: &serde_json::Value| -> Vec<(String, String)> {
        list.as_array().unwrap().iter().map(|x| (x["key"]["tenant"].as_str().unwrap().into(), x["key"]["code"].as_str().unwrap().into())).collect()
    };
    assert_eq!(keys(&p["missing_in_mysql"]), vec![("1".to_string(), "Zz".to_string()), ("3".into(), "~".into())], "{json:#}");
    assert_eq!(keys(&p["missing_in_postgres"]), Vec::<(String, String)>::new());
    assert_eq!(keys(&p["different"]), vec![("1".to_string(), " sp".to_string()), ("2".into(), "Äpfel".into())], "{json:#}");
}

/// Two pairs over the same shape: `lww` (rows owned by Postgres,
/// last-writer-wins on `updated_at`) and `manual`.
const POLICY_PAIRS: &str = r#"
[[pairs]]
name = "lww"
postgres = "public.lww"
mysql = "{db}.lww"
default_owner = "postgres"
on_conflict = "last-writer-wins"
timestamp_column = "updated_at"

[pairs.columns]
note = "both"
updated_at = "both"

[[pairs]]
name = "manual"
postgres = "public.manual"
mysql = "{db}.manual"
on_conflict = "manual"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_follows_last_writer_wins_row_ownership_and_leaves_manual_conflicts() {
    let db = support::fresh_db("check_policies").await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    for t in ["lww", "manual"] {
        pg.batch_execute(&format!("CREATE TABLE {t} (id int PRIMARY KEY, note text, updated_at timestamp(6))")).await.unwrap();
        my.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY, note TEXT, updated_at DATETIME(6))")).await.unwrap();
    }
    pg.batch_execute(
        "INSERT INTO lww VALUES (1, 'pg newer', '2024-01-02 00:00:00'), (2, 'pg older', '2024-01-01 00:00:00'), (4, 'only pg', NULL);
         INSERT INTO manual VALUES (1, 'pg', '2024-01-01 00:00:00');",
    )
    .await
    .unwrap();
    my.query_drop(
        "INSERT INTO lww VALUES (1, 'my older', '2024-01-01 00:00:00'), (2, 'my newer', '2024-01-03 00:00:00'), (3, 'only mysql', NULL);
         INSERT INTO manual VALUES (1, 'my', '2024-01-01 00:00:00');",
    )
    .await
    .unwrap();
    let cfg = db.write_config(&POLICY_PAIRS.replace("{db}", &db.name));
    tandem::ops::init::init(&load(&cfg)).await.unwrap(); // the replication origin repairs run under

    let (code, _) = check_binary(&cfg, &["--pair", "lww"]);
    assert_eq!(code, Some(1));
    let (code, json) = check_binary(&cfg, &["--repair"]);
    assert_eq!(code, Some(1), "a manual conflict stays: {json:#}");
    assert_eq!(json["repaired"], false);
    let manual = &json["pairs"][1];
    assert_eq!(manual["not_repaired"][0]["columns"][0], "note", "{json:#}");
    assert!(manual["not_repaired"][0]["reason"].as_str().unwrap().contains("manual"));
    assert_eq!(json["pairs"][0]["not_repaired"].as_array().unwrap().len(), 0, "{json:#}");

    let sql = "SELECT id, note, updated_at FROM lww ORDER BY id";
    let expect: Rows = vec![
        vec![Some("1".into()), Some("pg newer".into()), Some("2024-01-02 00:00:00".into())],
        vec![Some("2".into()), Some("my newer".into()), Some("2024-01-03 00:00:00".into())],
        vec![Some("4".into()), Some("only pg".into()), None],
    ];
    assert_eq!(pg_rows(&pg, sql).await, expect);
    let my_sql = "SELECT id, note, DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s') FROM lww ORDER BY id";
    assert_eq!(my_rows(&mut my, my_sql).await, expect);
    let (code, json) = check_binary(&cfg, &["--pair", "lww"]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["pairs"].as_array().unwrap().len(), 1);
}

/// Waits (≤ 30 s) until `tandem run` streams from the pipeline's slot: the
/// check reports whether the pipeline runs by that.
async fn slot_active(pg: &tokio_postgres::Client, pipeline: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = pg.query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&format!("tandem_{pipeline}")]).await.unwrap();
        if row.is_some_and(|r| r.get::<_, bool>(0)) {
            return;
        }
        assert!(Instant::now() < deadline, "the slot of tandem_{pipeline} is not active after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
