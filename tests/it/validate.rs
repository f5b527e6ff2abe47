//! `tandem validate` with the real binary: exit 0 on a correct setup (every
//! supported type pair, a renamed column, generated columns reported as INFO),
//! exit 1 with exactly one `PROBLEM` line per problem (an array column, a
//! missing table, tables without primary key, a mapped column missing on one
//! side, an unsupported type pair, missing privileges; binlog_row_image=MINIMAL
//! and wal_level=replica on private servers), exit 2 when it cannot run
//! (unreadable config, a closed port), and `--format json` carrying the same
//! problems as the text.
//!
//! Shared servers (`support::fresh_db`) for the normal cases; a private
//! MariaDB or Postgres where a server setting is the problem. Each test that
//! runs `tandem init` drops its slot at the end.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::path::Path;
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};

/// `tandem validate [--format F] -c cfg`: (exit code, stdout, stderr).
fn validate(cfg: &Path, format: &str) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(tandem_bin()).args(["validate", "--format", format, "-c"]).arg(cfg).output().expect("spawn tandem validate");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `PROBLEM` lines of a text report.
fn problems(stdout: &str) -> Vec<String> {
    stdout.lines().filter(|l| l.starts_with("PROBLEM ")).map(str::to_string).collect()
}

/// Runs validate (text and JSON), checks that both report the same problems
/// and returns the exit code and the PROBLEM lines.
fn run(cfg: &Path) -> (Option<i32>, Vec<String>, String) {
    let (code, stdout, stderr) = validate(cfg, "text");
    let lines = problems(&stdout);
    let (json_code, json_out, json_err) = validate(cfg, "json");
    assert_eq!(json_code, code, "json exit code; stderr: {json_err}");
    let doc: serde_json::Value = serde_json::from_str(json_out.trim()).unwrap_or_else(|e| panic!("json output: {e}\n{json_out}"));
    let objects = doc["problems"].as_array().unwrap_or_else(|| panic!("no problems array: {json_out}"));
    let from_json: Vec<String> = objects
        .iter()
        .map(|p| {
            let object = p["object"].as_str().expect("object");
            let problem = p["problem"].as_str().expect("problem").split_whitespace().collect::<Vec<_>>().join(" ");
            format!("PROBLEM {object}: {problem}")
        })
        .collect();
    assert_eq!(from_json, lines, "json problems = text problem lines");
    assert_eq!(doc["ok"], serde_json::Value::Bool(lines.is_empty()));
    (code, lines, format!("{stdout}{stderr}"))
}

/// Creates the same table on both sides.
async fn tables(db: &TestDb, pg_ddl: &str, my_ddl: &str) {
    if !pg_ddl.is_empty() {
        db.pg().await.batch_execute(pg_ddl).await.unwrap_or_else(|e| panic!("{pg_ddl}: {e}"));
    }
    if !my_ddl.is_empty() {
        db.my().await.query_drop(my_ddl).await.unwrap_or_else(|e| panic!("{my_ddl}: {e}"));
    }
}

fn pair(db: &TestDb, name: &str, extra: &str) -> String {
    format!("[[pairs]]\nname = \"{name}\"\npostgres = \"public.{name}\"\nmysql = \"{}.{name}\"\n{extra}\n", db.name)
}

/// Drops this database's inactive slots (init created one).
async fn release_slot(pg: &tokio_postgres::Client) {
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
        .await
        .unwrap_or_else(|e| panic!("dropping the slot: {e}"));
}

/// Asserts exit 1 and exactly `expected.len()` problem lines, each starting with one of `expected`.
fn assert_problems(code: Option<i32>, lines: &[String], expected: &[&str], said: &str) {
    assert_eq!(code, Some(1), "{said}");
    assert_eq!(lines.len(), expected.len(), "one line per problem:\n{said}");
    for e in expected {
        assert!(lines.iter().any(|l| l.starts_with(e)), "expected a line starting with {e:?}:\n{said}");
    }
}

const MOOD: &str = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'é joy', '😀 joy', 'it''s')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_setup_passes_after_init_and_reports_generated_columns() {
    let db = support::fresh_db("validate_ok").await;
    let pg_cols = [
        "id bigint PRIMARY KEY",
        "c_bool boolean",
        "c_i8 smallint",
        "c_u8 smallint",
        "c_i16 smallint",
        "c_u16 integer",
        "c_i24 integer",
        "c_i32 integer",
        "c_u32 bigint",
        "c_u64 numeric(20,0)",
        "c_dec numeric(38,10)",
        "c_f32 real",
        "c_f64 double precision",
        "c_vc varchar(100)",
        "c_text text",
        "c_ltext text",
        "c_char char(10)",
        "c_blob bytea",
        "c_vbin bytea",
        "c_date date",
        "c_time time(6)",
        "c_dt timestamp(6)",
        "c_ts timestamptz(6)",
        "c_dttz timestamptz",
        "c_json jsonb",
        "c_json2 json",
        "c_enum mood",
        "c_enum_t text",
        "c_uuid uuid",
        "phone text",
        "g_pg integer GENERATED ALWAYS AS (c_i32 * 2) STORED",
        "g_my integer",
    ];
    let my_cols = [
        "id BIGINT PRIMARY KEY",
        "c_bool TINYINT(1)",
        "c_i8 TINYINT",
        "c_u8 TINYINT UNSIGNED",
        "c_i16 SMALLINT",
        "c_u16 SMALLINT UNSIGNED",
        "c_i24 MEDIUMINT",
        "c_i32 INT",
        "c_u32 INT UNSIGNED",
        "c_u64 BIGINT UNSIGNED",
        "c_dec DECIMAL(38,10)",
        "c_f32 FLOAT",
        "c_f64 DOUBLE",
        "c_vc VARCHAR(100)",
        "c_text TEXT",
        "c_ltext LONGTEXT",
        "c_char CHAR(10)",
        "c_blob BLOB",
        "c_vbin VARBINARY(300)",
        "c_date DATE",
        "c_time TIME(6)",
        "c_dt DATETIME(6)",
        "c_ts TIMESTAMP(6) NULL",
        "c_dttz DATETIME(6)",
        "c_json JSON",
        "c_json2 JSON",
        "c_enum ENUM('sad','ok','é joy','😀 joy','it''s')",
        "c_enum_t ENUM('a','b')",
        "c_uuid CHAR(36)",
        "phone_number VARCHAR(32)",
        "g_pg INT",
        "g_my INT AS (c_i32 * 3) VIRTUAL",
        "only_my INT",
    ];
    tables(
        &db,
        &format!("{MOOD}; CREATE TABLE everything ({})", pg_cols.join(", ")),
        &format!("CREATE TABLE everything ({}) DEFAULT CHARSET=utf8mb4", my_cols.join(", ")),
    )
    .await;
    let cfg = db.write_config(&pair(&db, "everything", "[pairs.columns]\nphone = { mysql = \"phone_number\" }\n"));
    init_cli(&cfg);
    let (code, lines, said) = run(&cfg);
    assert_eq!(code, Some(0), "{said}");
    assert!(lines.is_empty(), "{said}");
    assert!(said.contains("validate: all checks passed"), "{said}");
    assert!(said.contains("INFO pair everything column g_pg: skipped: generated on postgres"), "{said}");
    assert!(said.contains("INFO pair everything column g_my: skipped: generated on mysql"), "{said}");
    assert!(said.contains("only_my"), "a MySQL-only column is mentioned: {said}");
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_column_is_one_problem_naming_pair_column_and_types() {
    let db = support::fresh_db("validate_array").await;
    tables(&db, "CREATE TABLE items (id int PRIMARY KEY, tags int[])", "CREATE TABLE items (id INT PRIMARY KEY, tags TEXT)").await;
    let cfg = db.write_config(&pair(&db, "items", ""));
    init_cli(&cfg);
    let (code, lines, said) = run(&cfg);
    assert_problems(code, &lines, &["PROBLEM pair items column tags: postgres integer[] ↔ mysql text: Postgres arrays"], &said);
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tables_are_named_per_side() {
    let db = support::fresh_db("validate_missing").await;
    tables(&db, "CREATE TABLE items (id int PRIMARY KEY)", "CREATE TABLE items (id INT PRIMARY KEY)").await;
    let cfg = db.write_config(&pair(&db, "items", ""));
    init_cli(&cfg);
    // After init: the MySQL table goes away, and the config gains a pair whose tables never existed.
    db.my().await.query_drop("DROP TABLE items").await.unwrap();
    let cfg = db.write_config(&format!("{}{}", pair(&db, "items", ""), pair(&db, "ghost", "")));
    let (code, lines, said) = run(&cfg);
    assert_problems(
        code,
        &lines,
        &[
            &format!("PROBLEM pair items: MySQL table {}.items does not exist", db.name),
            "PROBLEM pair ghost: Postgres table public.ghost does not exist",
            &format!("PROBLEM pair ghost: MySQL table {}.ghost does not exist", db.name),
        ],
        &said,
    );
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_without_primary_key_are_one_problem_per_side() {
    let db = support::fresh_db("validate_nokey").await;
    tables(&db, "CREATE TABLE items (id int PRIMARY KEY, v text)", "CREATE TABLE items (id INT PRIMARY KEY, v TEXT)").await;
    let cfg = db.write_config(&pair(&db, "items", ""));
    init_cli(&cfg);
    // init refuses tables without a key: drop the keys afterwards.
    tables(&db, "ALTER TABLE items DROP CONSTRAINT items_pkey", "ALTER TABLE items DROP PRIMARY KEY").await;
    let (code, lines, said) = run(&cfg);
    assert_problems(
        code,
        &lines,
        &[
            "PROBLEM pair items: Postgres table public.items has no primary key",
            &format!("PROBLEM pair items: MySQL table {}.items has no primary key", db.name),
        ],
        &said,
    );
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_column_missing_on_one_side_is_one_problem() {
    let db = support::fresh_db("validate_mapped").await;
    tables(&db, "CREATE TABLE items (id int PRIMARY KEY, phone text)", "CREATE TABLE items (id INT PRIMARY KEY, phone TEXT)").await;
    init_cli(&db.write_config(&pair(&db, "items", "")));
    // init refuses the mapping; validate names it.
    let cfg = db.write_config(&pair(&db, "items", "[pairs.columns]\nphone = { owner = \"mysql\", mysql = \"phone_number\" }\n"));
    let (code, lines, said) = run(&cfg);
    assert_problems(
        code,
        &lines,
        &[&format!(
            "PROBLEM pair items column phone: is configured in [pairs.columns] but MySQL table {}.items has no column phone_number",
            db.name
        )],
        &said,
    );
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_type_pair_is_one_problem() {
    let db = support::fresh_db("validate_textint").await;
    tables(&db, "CREATE TABLE items (id int PRIMARY KEY, n text)", "CREATE TABLE items (id INT PRIMARY KEY, n INT)").await;
    let cfg = db.write_config(&pair(&db, "items", ""));
    init_cli(&cfg);
    let (code, lines, said) = run(&cfg);
    assert_problems(code, &lines, &["PROBLEM pair items column n: postgres text ↔ mysql int(11): not a supported type pair"], &said);
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_of_a_bad_setup_is_reported_at_once() {
    let db = support::fresh_db("validate_many").await;
    tables(
        &db,
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY, v text)",
        "CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY, v TEXT)",
    )
    .await;
    let cfg = db.write_config(&format!("{}{}", pair(&db, "a", ""), pair(&db, "b", "")));
    init_cli(&cfg);
    tables(
        &db,
        "ALTER TABLE a ADD tags int[], ADD n text, ADD ts timestamp(6); ALTER TABLE b DROP CONSTRAINT b_pkey",
        "ALTER TABLE a ADD tags TEXT, ADD n INT, ADD ts DATETIME; ALTER TABLE b DROP PRIMARY KEY, MODIFY v TEXT CHARACTER SET latin1",
    )
    .await;
    let (code, lines, said) = run(&cfg);
    assert_problems(
        code,
        &lines,
        &[
            "PROBLEM pair a column tags: postgres integer[] ↔ mysql text",
            "PROBLEM pair a column n: postgres text ↔ mysql int(11)",
            "PROBLEM pair a column ts: postgres timestamp(6) without time zone ↔ mysql datetime: Postgres values written to MySQL change: fractional seconds differ",
            "PROBLEM pair b: Postgres table public.b has no primary key",
            "PROBLEM pair b: MySQL table",
            "PROBLEM pair b column v: postgres text ↔ mysql text: MySQL column character set latin1",
        ],
        &said,
    );
    release_slot(&db.pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_privileges_are_named_with_the_grant_to_run() {
    let db = support::fresh_db("validate_privs").await;
    tables(&db, "CREATE TABLE items (id int PRIMARY KEY, v text)", "CREATE TABLE items (id INT PRIMARY KEY, v TEXT)").await;
    let cfg = db.write_config(&pair(&db, "items", ""));
    init_cli(&cfg);
    // A read-only role and account, no replication rights.
    let user = format!("{}_ro", db.name);
    let pg = db.pg().await;
    pg.batch_execute(&format!("CREATE ROLE \"{user}\" LOGIN; GRANT SELECT ON items TO \"{user}\"")).await.unwrap();
    let mut my = db.my().await;
    my.query_drop(format!("CREATE USER '{user}'@'%'; GRANT SELECT ON `{}`.* TO '{user}'@'%'", db.name)).await.unwrap();
    let servers = support::servers();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&db.pg_url, &format!("postgresql://{user}@127.0.0.1:{}/{}", servers.pg.port(), db.name))
        .replace(&db.my_url, &format!("mysql://{user}@127.0.0.1:{}/{}", servers.my.port(), db.name));
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro.toml");
    std::fs::write(&ro, text).unwrap();
    let (code, lines, said) = run(&ro);
    assert_eq!(code, Some(1), "{said}");
    for expected in [
        format!("PROBLEM postgres role {user}: has neither REPLICATION nor SUPERUSER"),
        format!("PROBLEM postgres role {user}: cannot execute pg_replication_origin_session_setup(text)"),
        format!("PROBLEM postgres schema tandem: role {user} lacks USAGE, CREATE"),
        format!("PROBLEM postgres table public.items: role {user} lacks INSERT, UPDATE, DELETE: GRANT SELECT, INSERT, UPDATE, DELETE ON \"public\".\"items\""),
        format!("PROBLEM mysql account '{user}'@'%': lacks REPLICATION SLAVE and BINLOG MONITOR on *.*"),
        format!("PROBLEM mysql table {}.items: the account '{user}'@'%' lacks INSERT, UPDATE, DELETE", db.name),
        "PROBLEM mysql database tandem: does not exist (or is invisible".to_string(),
    ] {
        assert!(lines.iter().any(|l| l.starts_with(&expected)), "expected {expected:?}:\n{said}");
    }
    let _ = my.query_drop(format!("DROP USER '{user}'@'%'")).await;
    release_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_row_image_minimal_is_one_problem() {
    let db = support::fresh_db("validate_minimal").await;
    let maria = MariaDb::start(MariaOptions { extra_args: vec!["--binlog-row-image=MINIMAL".into()], ..MariaOptions::default() }).await.unwrap();
    maria.create_database(&db.name).await.unwrap();
    db.pg().await.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v text)").await.unwrap();
    maria.connect(&db.name).await.unwrap().query_drop("CREATE TABLE items (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    let text = db.config_toml(&pair(&db, "items", "")).replace(&db.my_url, &maria.url(&db.name));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("minimal.toml");
    std::fs::write(&cfg, text).unwrap();
    // `tandem init` refuses MINIMAL: do its Postgres part by hand (the MySQL
    // state database is created by init only, and validate takes its absence
    // as information when the account may create it).
    let pg = db.pg().await;
    pg.batch_execute(&format!("ALTER TABLE items REPLICA IDENTITY FULL; CREATE PUBLICATION \"tandem_{}\" FOR TABLE items", db.name))
        .await
        .unwrap();
    pg.batch_execute(&format!("SELECT pg_create_logical_replication_slot('tandem_{}', 'pgoutput')", db.name)).await.unwrap();
    let (code, lines, said) = run(&cfg);
    assert_problems(code, &lines, &["PROBLEM mysql binlog_row_image: is MINIMAL; before-images need binlog_row_image = FULL"], &said);
    release_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_replica_is_reported() {
    let db = support::fresh_db("validate_replica").await;
    let pg = PgCluster::start(PgOptions { settings: vec![("wal_level".into(), "replica".into())], ..PgOptions::default() }).await.unwrap();
    pg.create_database(&db.name).await.unwrap();
    // What `tandem init` would do, except the slot, which wal_level = replica forbids.
    pg.connect(&db.name)
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v text); ALTER TABLE items REPLICA IDENTITY FULL; CREATE PUBLICATION \"tandem_{}\" FOR TABLE items",
            db.name
        ))
        .await
        .unwrap();
    db.my().await.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    let text = db.config_toml(&pair(&db, "items", "")).replace(&db.pg_url, &pg.url(&db.name));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("replica.toml");
    std::fs::write(&cfg, text).unwrap();
    let (code, lines, said) = run(&cfg);
    assert_problems(
        code,
        &lines,
        &[
            "PROBLEM postgres wal_level: is replica; logical decoding needs wal_level = logical",
            &format!("PROBLEM postgres slot tandem_{}: does not exist yet", db.name),
        ],
        &said,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_exits_2_when_it_cannot_run() {
    let db = support::fresh_db("validate_cannot").await;
    let dir = tempfile::tempdir().unwrap();
    // Unreadable config: missing file, and a directory.
    for path in [dir.path().join("nope.toml"), dir.path().to_path_buf()] {
        let (code, _, stderr) = validate(&path, "text");
        assert_eq!(code, Some(2), "{}: {stderr}", path.display());
        assert!(!stderr.is_empty());
    }
    // A closed port on either side.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let good = db.config_toml(&pair(&db, "items", ""));
    let servers = support::servers();
    for (side, text) in [
        ("postgres", good.replace(&format!("127.0.0.1:{}", servers.pg.port()), &format!("127.0.0.1:{closed}"))),
        ("mysql", good.replace(&format!("127.0.0.1:{}", servers.my.port()), &format!("127.0.0.1:{closed}"))),
    ] {
        assert_ne!(text, good);
        let cfg = dir.path().join(format!("closed-{side}.toml"));
        std::fs::write(&cfg, text).unwrap();
        for format in ["text", "json"] {
            let t0 = std::time::Instant::now();
            let (code, stdout, stderr) = validate(&cfg, format);
            assert_eq!(code, Some(2), "{side} unreachable ({format}): {stdout}{stderr}");
            assert!(stderr.contains(&format!("cannot connect to {side}")), "{stderr}");
            assert!(t0.elapsed() < std::time::Duration::from_secs(15));
        }
    }
}
