//! The pipeline's lifecycle with the real binary: `init --print-sql` creates
//! nothing and prints SQL that sets the pipeline up when a DBA runs it;
//! `teardown` refuses while `tandem run` holds the lease (and without a
//! terminal or `--yes`), asks on a terminal, removes slot, publication, origins and state
//! (keeping them with `--keep-state`, and keeping another pipeline's rows),
//! and is harmless twice; `barrier` returns only after marker rows written
//! on both sides just before the call are on the other side, under
//! continuous writes, and exits 1 on timeout.
//!
//! Every test here names its own state schema: teardown drops it, and the
//! shared MariaDB's default `tandem` database belongs to every test.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A state schema of this test only.
pub fn own_state_schema(db: &TestDb) -> String {
    let mut s = format!("s{}", db.name);
    s.truncate(48);
    s
}

/// `db.write_config(extra)` with `[pipeline] state_schema` set (and the
/// pipeline named `pipeline` when given).
pub fn config_with_state(db: &TestDb, state: &str, pipeline: Option<&str>, extra: &str) -> PathBuf {
    let mut text = db.config_toml(extra).replacen("[pipeline]\n", &format!("[pipeline]\nstate_schema = \"{state}\"\n"), 1);
    if let Some(p) = pipeline {
        text = text.replacen(&format!("name = \"{}\"", db.name), &format!("name = \"{p}\""), 1);
    }
    let path = db.write_config("");
    std::fs::write(&path, text).unwrap();
    path
}

fn pair(db: &TestDb) -> String {
    format!("[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\n", db.name)
}

async fn items(db: &TestDb) {
    db.pg().await.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, side text, n bigint)").await.unwrap();
    db.my().await.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, side TEXT, n BIGINT)").await.unwrap();
}

/// `tandem <args> -c cfg` with stdin closed.
pub fn tandem(cfg: &Path, args: &[&str]) -> Output {
    Command::new(tandem_bin()).args(args).arg("-c").arg(cfg).stdin(Stdio::null()).output().expect("spawn tandem")
}

fn text(o: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `tandem <args> -c cfg` on a terminal (util-linux `script` gives it a
/// pty) that gets `answer` typed: (exit code, everything it wrote).
fn on_terminal(cfg: &Path, args: &str, answer: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let command = format!("{} {args} -c {}", tandem_bin().display(), cfg.display());
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Which of the pipeline's objects exist: slot, publication, origin, PG state schema, MySQL state database.
#[derive(Debug, PartialEq, Eq)]
pub struct Objects {
    pub slot: bool,
    pub publication: bool,
    pub origin: bool,
    pub pg_state: bool,
    pub my_state: bool,
}

pub async fn objects(db: &TestDb, pipeline: &str, state: &str) -> Objects {
    let pg = db.pg().await;
    let name = format!("tandem_{pipeline}");
    let one = |sql: &'static str| {
        let pg = &pg;
        let name = name.clone();
        async move { pg.query_opt(sql, &[&name]).await.unwrap().is_some() }
    };
    let slot = one("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1").await;
    let publication = one("SELECT 1 FROM pg_publication WHERE pubname = $1").await;
    let origin = one("SELECT 1 FROM pg_replication_origin WHERE roname = $1").await;
    let pg_state = pg.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&state]).await.unwrap().is_some();
    let mut my = db.my().await;
    let found: Option<String> = my.exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (state,)).await.unwrap();
    Objects { slot, publication, origin, pg_state, my_state: found.is_some() }
}

const ALL: Objects = Objects { slot: true, publication: true, origin: true, pg_state: true, my_state: true };
const NONE: Objects = Objects { slot: false, publication: false, origin: false, pg_state: false, my_state: false };

/// The statements of one side's section of `init --print-sql` output.
fn section(script: &str, side: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut current = String::new();
    for line in script.lines() {
        if line.starts_with("-- postgres ") || line.starts_with("-- mysql ") {
            inside = line.starts_with(&format!("-- {side} "));
            continue;
        }
        if !inside || line.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_print_sql_creates_nothing_and_a_dba_can_run_what_it_prints() {
    let db = support::fresh_db("print_sql").await;
    items(&db).await;
    let state = own_state_schema(&db);
    let cfg = config_with_state(&db, &state, None, &pair(&db));

    let out = tandem(&cfg, &["init", "--print-sql"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    for expected in [
        format!("SELECT pg_create_logical_replication_slot('tandem_{}', 'pgoutput');", db.name),
        format!("CREATE PUBLICATION \"tandem_{}\" FOR TABLE ONLY \"public\".\"items\" WITH (publish_via_partition_root = true);", db.name),
        format!("SELECT pg_replication_origin_create('tandem_{}');", db.name),
        "ALTER TABLE \"public\".\"items\" REPLICA IDENTITY FULL;".into(),
        format!("CREATE SCHEMA IF NOT EXISTS {state};"),
        format!("CREATE DATABASE IF NOT EXISTS `{state}` CHARACTER SET utf8mb4;"),
        "retains WAL until `tandem run` consumes it".into(),
    ] {
        assert!(script.contains(&expected), "missing {expected:?}:\n{script}");
    }
    assert_eq!(objects(&db, &db.name, &state).await, NONE, "--print-sql created something");
    let pg = db.pg().await;
    let ident: String = pg.query_one("SELECT relreplident::text FROM pg_class WHERE relname = 'items'", &[]).await.unwrap().get(0);
    assert_eq!(ident, "d", "--print-sql altered the table");

    // A DBA runs the printed statements (one at a time: a slot cannot be
    // created in a transaction that wrote), then `tandem init` finds it all in place.
    for st in section(&script, "postgres") {
        pg.batch_execute(&st).await.unwrap_or_else(|e| panic!("{st}: {e}"));
    }
    let mut my = db.my().await;
    let mysql = section(&script, "mysql");
    assert!(!mysql.is_empty(), "{script}");
    for st in mysql {
        my.query_drop(&st).await.unwrap_or_else(|e| panic!("{st}: {e}"));
    }
    assert_eq!(objects(&db, &db.name, &state).await, ALL);
    let out = tandem(&cfg, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!said.contains("created") && !said.contains("REPLICA IDENTITY FULL"), "init found something missing:\n{said}");
    assert!(said.contains("starting point recorded"), "{said}");
    let out = tandem(&cfg, &["teardown", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_says_the_slot_retains_wal_until_run_consumes_it() {
    let db = support::fresh_db("init_wal").await;
    items(&db).await;
    let state = own_state_schema(&db);
    let cfg = config_with_state(&db, &state, None, &pair(&db));
    let out = tandem(&cfg, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains(&format!("logical slot tandem_{} created", db.name)) && said.contains("retains WAL until `tandem run` consumes it"), "{said}");
    let out = tandem(&cfg, &["teardown", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Waits until a row written on Postgres arrives in MariaDB (the run streams).
async fn streaming(db: &TestDb, id: i64) {
    let pg = db.pg().await;
    pg.execute("INSERT INTO items VALUES ($1, 'probe', 0)", &[&id]).await.unwrap();
    let mut my = db.my().await;
    let sql = format!("SELECT 1 FROM items WHERE id = {id}");
    let t0 = Instant::now();
    while my_rows(&mut my, &sql).await.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "tandem run does not stream");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_refuses_while_run_holds_the_lease_then_removes_everything_and_is_harmless_twice() {
    let db = support::fresh_db("teardown").await;
    items(&db).await;
    let state = own_state_schema(&db);
    let cfg = config_with_state(&db, &state, None, &pair(&db));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_run(&cfg, &dir.path().join("run.log"), &[], &[]);
    streaming(&db, 1).await;

    let out = tandem(&cfg, &["teardown", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("holds the lease") && err.contains(&format!("tandem {}", db.name)), "{err}");
    assert_eq!(objects(&db, &db.name, &state).await, ALL, "a refused teardown dropped something");

    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(30)).0, Some(0));
    // Without a terminal and without --yes: refused, nothing dropped.
    let out = tandem(&cfg, &["teardown"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"), "{}", text(&out));
    assert_eq!(objects(&db, &db.name, &state).await, ALL);

    // --keep-state: the slot, publication and origin go, the state stays.
    let out = tandem(&cfg, &["teardown", "--yes", "--keep-state"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(objects(&db, &db.name, &state).await, Objects { pg_state: true, my_state: true, ..NONE });

    init_cli(&cfg);
    // On a terminal it asks: anything but yes drops nothing; yes drops it all.
    let (code, said) = on_terminal(&cfg, "teardown", "no\n");
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("Type yes to drop them") && said.contains(&format!("logical slot tandem_{}", db.name)) && said.contains("not confirmed"), "{said}");
    assert_eq!(objects(&db, &db.name, &state).await, ALL);
    let (code, said) = on_terminal(&cfg, "teardown", "yes\n");
    assert_eq!(code, Some(0), "{said}");
    for line in [
        format!("postgres: logical slot tandem_{} dropped", db.name),
        format!("postgres: publication tandem_{} dropped", db.name),
        format!("postgres: replication origin tandem_{} dropped", db.name),
        format!("postgres: state schema {state} dropped"),
        format!("mysql: state database {state} dropped"),
    ] {
        assert!(said.contains(&line), "missing {line:?}:\n{said}");
    }
    assert_eq!(objects(&db, &db.name, &state).await, NONE);

    let out = tandem(&cfg, &["teardown", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "a second teardown: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("logical slot tandem_{} not present", db.name)), "{}", text(&out));
    // The paired tables are untouched.
    assert_eq!(pg_rows(&db.pg().await, "SELECT id FROM items").await, vec![vec![Some("1".to_string())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_of_one_pipeline_keeps_a_shared_state_schema_and_the_other_pipelines_rows() {
    let db = support::fresh_db("teardown_shared").await;
    items(&db).await;
    let state = own_state_schema(&db);
    let a = config_with_state(&db, &state, None, &pair(&db));
    let other = format!("{}_b", db.name);
    let b = config_with_state(&db, &state, Some(&other), &pair(&db));
    init_cli(&a);
    init_cli(&b);
    let out = tandem(&a, &["teardown", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains(&format!("postgres: state schema {state} kept: pipelines {other} use it too")), "{said}");
    assert!(said.contains(&format!("mysql: state database {state} kept: pipelines {other} use it too")), "{said}");
    assert_eq!(objects(&db, &db.name, &state).await, Objects { pg_state: true, my_state: true, ..NONE });
    assert_eq!(objects(&db, &other, &state).await, ALL, "the other pipeline lost its objects");
    let pg = db.pg().await;
    let left = pg_rows(&pg, &format!("SELECT DISTINCT pipeline FROM {state}.checkpoints")).await;
    assert_eq!(left, vec![vec![Some(other.clone())]]);
    let out = tandem(&b, &["teardown", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(objects(&db, &other, &state).await, NONE);
}

/// Inserts rows on one side until `stop`: ids from `base` up.
async fn writer(db: TestDb, on_pg: bool, base: i64, stop: Arc<AtomicBool>, written: Arc<AtomicI64>) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let mut id = base;
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        if on_pg {
            pg.execute("INSERT INTO items VALUES ($1, 'pg', 0)", &[&id]).await.unwrap();
        } else {
            my.exec_drop("INSERT INTO items VALUES (?, 'my', 0)", (id,)).await.unwrap();
        }
        written.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_returns_once_markers_written_on_both_sides_before_it_are_on_the_other_side_and_times_out_with_1() {
    let db = support::fresh_db("barrier").await;
    items(&db).await;
    let cfg = db.write_config(&pair(&db));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("hold");
    let mut run = spawn_run(&cfg, &dir.path().join("run.log"), &[("TANDEM_TEST_HOLD_FILE", hold.to_str().unwrap())], &[]);
    streaming(&db, 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let writers = [
        tokio::spawn(writer(db.clone(), true, 1_000_000, Arc::clone(&stop), Arc::clone(&written))),
        tokio::spawn(writer(db.clone(), false, 2_000_000, Arc::clone(&stop), Arc::clone(&written))),
    ];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    for round in 0..3i64 {
        // Both directions are held for a while: the barrier must wait for them.
        std::fs::write(&hold, "postgres_to_mysql mysql_to_postgres").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (pg_marker, my_marker) = (10 + round * 2, 11 + round * 2);
        pg.execute("INSERT INTO items VALUES ($1, 'pg marker', 0)", &[&pg_marker]).await.unwrap();
        my.exec_drop("INSERT INTO items VALUES (?, 'my marker', 0)", (my_marker,)).await.unwrap();
        let mut barrier = Command::new(tandem_bin())
            .args(["barrier", "--timeout", "60", "-c"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(barrier.try_wait().unwrap().is_none(), "the barrier returned while both directions were held");
        std::fs::remove_file(&hold).unwrap();
        let out = tokio::task::spawn_blocking(move || barrier.wait_with_output().unwrap()).await.unwrap();
        // Right after it returns, before anything else: both markers are across.
        let on_my = my_rows(&mut my, &format!("SELECT side FROM items WHERE id = {pg_marker}")).await;
        let on_pg = pg_rows(&pg, &format!("SELECT side FROM items WHERE id = {my_marker}")).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(on_my, vec![vec![Some("pg marker".to_string())]], "round {round}: the Postgres marker is not in MariaDB after the barrier:\n{}", text(&out));
        assert_eq!(on_pg, vec![vec![Some("my marker".to_string())]], "round {round}: the MariaDB marker is not in Postgres after the barrier:\n{}", text(&out));
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(said.contains("barrier: waiting until postgres position") && said.contains("barrier: waiting until mysql position mariadb-gtid:"), "{said}");
        assert!(said.contains("barrier: reached"), "{said}");
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(written.load(Ordering::Relaxed) > 100, "the writers wrote {}", written.load(Ordering::Relaxed));

    // Nothing applies: the barrier times out with exit 1, naming the positions.
    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(30)).0, Some(0));
    pg.execute("INSERT INTO items VALUES (5, 'late', 0)", &[]).await.unwrap();
    let t0 = Instant::now();
    let out = tandem(&cfg, &["barrier", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("timed out") && said.contains("postgres→mysql: waiting"), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `tandem run` holds the lease"), "{}", text(&out));
}

/// The last transactions on MariaDB before the call are tandem's own (the
/// rows it applied from Postgres): no client transaction moves the
/// mysql→postgres checkpoint past them, the barrier's mark does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_is_reached_when_the_last_transactions_on_a_side_were_tandems_own() {
    let db = support::fresh_db("barrier_idle").await;
    items(&db).await;
    let cfg = db.write_config(&pair(&db));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_run(&cfg, &dir.path().join("run.log"), &[], &[]);
    streaming(&db, 1).await;
    streaming(&db, 2).await;
    let t0 = Instant::now();
    let out = tandem(&cfg, &["barrier", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(30)).0, Some(0));
}
