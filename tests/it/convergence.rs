//! Convergence under random concurrent load (DESIGN §3: "whatever the order
//! in which the two directions apply, both sides must end up equal for every
//! column").
//!
//! For `TANDEM_CONVERGENCE_SECS` seconds (default 60) two writers per side
//! make random inserts, updates and deletes, in transactions of 1–3
//! statements, on 200 overlapping keys of one pair with mixed column owners:
//! `a` owned by Postgres, `b` by MySQL, `c` and `d` by both, `updated_at`
//! (both) set by the writer to its local now on every write. Each side's
//! writers only write the columns their side may write (Postgres: a, c, d,
//! updated_at; MariaDB: b, c, d, updated_at); inserts write whole rows with
//! `ON CONFLICT DO NOTHING` / `INSERT IGNORE`. Deadlocks and lock timeouts
//! are skipped. The random choices come from `TANDEM_SEED` (default fixed);
//! the interleaving of course does not.
//!
//! Then the writes stop; within 30 s both sides must be equal in every
//! column, stay equal (no ping-pong: Postgres' row counters of the table stay
//! put), and every row of both `tandem.conflicts` tables must be sound.
//! On divergence the differing rows are printed with every writer statement
//! and every recorded conflict that touched their keys.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const KEYS: i32 = 200;
const DEFAULT_SEED: u64 = 0x7a4d_3e11;
const DEFAULT_SECS: u64 = 60;

const PG_TABLE: &str = "CREATE TABLE conv (id int PRIMARY KEY, a text, b text, c int, d text, updated_at timestamp(6))";
const MY_TABLE: &str = "CREATE TABLE conv (id INT PRIMARY KEY, a TEXT, b TEXT, c INT, d TEXT, updated_at DATETIME(6))";
const PG_ROWS: &str = "SELECT id::text, a, b, c::text, d, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US') FROM conv ORDER BY conv.id";
const MY_ROWS: &str = "SELECT id, a, b, c, d, DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM conv ORDER BY conv.id";
const COLUMNS: [&str; 5] = ["a", "b", "c", "d", "updated_at"];

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Pg,
    My,
}

/// One statement (or transaction) a writer sent.
#[derive(Debug, Clone)]
struct Logged {
    at_ms: f64,
    writer: String,
    keys: Vec<i32>,
    sql: String,
    outcome: String,
}

fn now_text() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// One random statement of `side`'s writer; returns (key, sql).
fn statement(side: Side, rng: &mut StdRng, tag: &str, n: u64, deletes: bool) -> (i32, String) {
    let k = rng.gen_range(1..=KEYS);
    let ts = now_text();
    let s = |col: &str| format!("{col}-{tag}-{n}");
    let c: i32 = rng.gen_range(0..1_000_000);
    let roll = rng.gen_range(0..100);
    let sql = if roll < 25 {
        match side {
            Side::Pg => format!("INSERT INTO conv VALUES ({k}, '{}', '{}', {c}, '{}', '{ts}') ON CONFLICT (id) DO NOTHING", s("a"), s("b"), s("d")),
            Side::My => format!("INSERT IGNORE INTO conv VALUES ({k}, '{}', '{}', {c}, '{}', '{ts}')", s("a"), s("b"), s("d")),
        }
    } else if roll < 88 || !deletes {
        // A random non-empty subset of the columns this side may write, plus updated_at.
        let own = match side {
            Side::Pg => "a",
            Side::My => "b",
        };
        let mut sets = Vec::new();
        loop {
            if rng.gen_bool(0.4) {
                sets.push(format!("{own} = '{}'", s(own)));
            }
            if rng.gen_bool(0.5) {
                sets.push(format!("c = {c}"));
            }
            if rng.gen_bool(0.5) {
                sets.push(format!("d = '{}'", s("d")));
            }
            if !sets.is_empty() {
                break;
            }
        }
        sets.push(format!("updated_at = '{ts}'"));
        format!("UPDATE conv SET {} WHERE id = {k}", sets.join(", "))
    } else {
        format!("DELETE FROM conv WHERE id = {k}")
    };
    (k, sql)
}

/// A transaction of 1–3 random statements.
fn transaction(side: Side, rng: &mut StdRng, tag: &str, n: &mut u64, deletes: bool) -> (Vec<i32>, String) {
    let count = match rng.gen_range(0..10) {
        0..=6 => 1,
        7..=8 => 2,
        _ => 3,
    };
    let mut keys = Vec::new();
    let mut sql = String::from(match side {
        Side::Pg => "BEGIN;",
        Side::My => "START TRANSACTION;",
    });
    for _ in 0..count {
        *n += 1;
        let (k, s) = statement(side, rng, tag, *n, deletes);
        keys.push(k);
        sql.push(' ');
        sql.push_str(&s);
        sql.push(';');
    }
    sql.push_str(" COMMIT");
    (keys, sql)
}

fn pg_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("40P01" | "40001" | "55P03"))
}

fn my_retryable(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205)
}

async fn pg_writer(db: TestDb, seed: u64, tag: String, until: Instant, deletes: bool, t0: Instant) -> (u64, u64, Vec<Logged>) {
    let pg = db.pg().await;
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut n, mut done, mut skipped, mut log) = (0u64, 0u64, 0u64, Vec::new());
    while Instant::now() < until {
        let (keys, sql) = transaction(Side::Pg, &mut rng, &tag, &mut n, deletes);
        let at_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let outcome = match pg.batch_execute(&sql).await {
            Ok(()) => {
                done += 1;
                "ok".to_string()
            }
            Err(e) if pg_retryable(&e) => {
                skipped += 1;
                pg.batch_execute("ROLLBACK").await.unwrap();
                format!("skipped: {e}")
            }
            Err(e) => panic!("{tag}: {sql}: {e}"),
        };
        log.push(Logged { at_ms, writer: tag.clone(), keys, sql, outcome });
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..4000))).await;
    }
    (done, skipped, log)
}

async fn my_writer(db: TestDb, seed: u64, tag: String, until: Instant, deletes: bool, t0: Instant) -> (u64, u64, Vec<Logged>) {
    let mut my = db.my().await;
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut n, mut done, mut skipped, mut log) = (0u64, 0u64, 0u64, Vec::new());
    while Instant::now() < until {
        let (keys, sql) = transaction(Side::My, &mut rng, &tag, &mut n, deletes);
        let at_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let outcome = match my.query_drop(&sql).await {
            Ok(()) => {
                done += 1;
                "ok".to_string()
            }
            Err(e) if my_retryable(&e) => {
                skipped += 1;
                my.query_drop("ROLLBACK").await.unwrap();
                format!("skipped: {e}")
            }
            Err(e) => panic!("{tag}: {sql}: {e}"),
        };
        log.push(Logged { at_ms, writer: tag.clone(), keys, sql, outcome });
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..4000))).await;
    }
    (done, skipped, log)
}

fn by_key(rows: Rows) -> BTreeMap<String, Vec<Option<String>>> {
    rows.into_iter().map(|r| (r[0].clone().unwrap_or_default(), r)).collect()
}

/// Keys whose rows differ (or exist on one side only).
fn differing(pg: &Rows, my: &Rows) -> Vec<String> {
    let (p, m) = (by_key(pg.clone()), by_key(my.clone()));
    let keys: BTreeSet<&String> = p.keys().chain(m.keys()).collect();
    keys.into_iter().filter(|k| p.get(*k) != m.get(*k)).cloned().collect()
}

/// Conflict rows of this pipeline from one side: id, pair, key_json, column, pg value, my value, policy, winner, resolved, decided_at.
async fn conflicts(db: &TestDb) -> (Rows, Rows) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let cols = "pair, key_json, column_name, postgres_value, mysql_value, policy, winner";
    let p = pg_rows(
        &pg,
        &format!("SELECT {cols}, (resolved_at IS NOT NULL)::int::text, to_char(decided_at, 'HH24:MI:SS.US') FROM tandem.conflicts WHERE pipeline = '{}' ORDER BY id", db.name),
    )
    .await;
    let m = my_rows(
        &mut my,
        &format!("SELECT {cols}, CAST(resolved_at IS NOT NULL AS CHAR), DATE_FORMAT(decided_at, '%H:%i:%s.%f') FROM tandem.conflicts WHERE pipeline = '{}' ORDER BY id", db.name),
    )
    .await;
    (p, m)
}

/// A report of the differing rows with the statements and conflicts that touched them.
async fn divergence_report(db: &TestDb, pg: &Rows, my: &Rows, log: &[Logged]) -> String {
    let diff = differing(pg, my);
    let (p, m) = (by_key(pg.clone()), by_key(my.clone()));
    let (pc, mc) = conflicts(db).await;
    let mut out = format!("{} of {} keys differ: {:?}\n", diff.len(), KEYS, diff);
    for k in diff.iter().take(8) {
        let _ = writeln!(out, "\n== id {k}\n   postgres: {:?}\n   mariadb:  {:?}", p.get(k), m.get(k));
        let id: i32 = k.parse().unwrap_or(-1);
        let touching: Vec<&Logged> = log.iter().filter(|l| l.keys.contains(&id)).collect();
        let _ = writeln!(out, "   last writer statements touching it ({} in all):", touching.len());
        for l in touching.iter().rev().take(12).rev() {
            let _ = writeln!(out, "     {:>10.1} ms {} [{}] {}", l.at_ms, l.writer, l.outcome, l.sql);
        }
        let key_json = format!("{{\"id\":\"{k}\"}}");
        for (side, rows) in [("postgres", &pc), ("mariadb", &mc)] {
            let mine: Vec<_> = rows.iter().filter(|r| r[1].as_deref() == Some(key_json.as_str())).collect();
            let _ = writeln!(out, "   conflicts recorded in {side} ({}):", mine.len());
            for r in mine.iter().rev().take(8).rev() {
                let _ = writeln!(out, "     {r:?}");
            }
        }
    }
    out
}

/// Sum of Postgres' insert/update/delete counters for `conv` (fresh snapshot).
async fn pg_row_writes(pg: &tokio_postgres::Client) -> i64 {
    let r = pg_rows(
        pg,
        "SELECT (n_tup_ins + n_tup_upd + n_tup_del)::text FROM pg_stat_user_tables WHERE relid = 'public.conv'::regclass",
    )
    .await;
    r[0][0].as_deref().unwrap().parse().unwrap()
}

async fn random_load_converges(test: &str, settings: &str, deletes: bool) {
    let seed = env_u64("TANDEM_SEED", DEFAULT_SEED);
    let secs = env_u64("TANDEM_CONVERGENCE_SECS", DEFAULT_SECS);
    eprintln!("{test}: TANDEM_SEED={seed} TANDEM_CONVERGENCE_SECS={secs}");
    let db = support::fresh_db(test).await;
    db.pg().await.batch_execute(PG_TABLE).await.unwrap();
    db.my().await.query_drop(MY_TABLE).await.unwrap();
    let cfg = db.write_config(&format!(
        "[[pairs]]\nname = \"conv\"\npostgres = \"public.conv\"\nmysql = \"{}.conv\"\ndefault_owner = \"both\"\n{settings}\n\n\
         [pairs.columns]\na = \"postgres\"\nb = \"mysql\"\n",
        db.name
    ));
    let run = InProcess::start(&cfg).await;

    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..2u64 {
        tasks.push(tokio::spawn(pg_writer(db.clone(), seed.wrapping_mul(31).wrapping_add(w), format!("pg{w}"), until, deletes, t0)));
        tasks.push(tokio::spawn(my_writer(db.clone(), seed.wrapping_mul(31).wrapping_add(10 + w), format!("my{w}"), until, deletes, t0)));
    }
    let mut log = Vec::new();
    let mut summary = Vec::new();
    for t in tasks {
        let (done, skipped, l) = t.await.expect("writer");
        summary.push(format!("{}: {done} txns, {skipped} skipped", l.first().map(|x| x.writer.clone()).unwrap_or_default()));
        log.extend(l);
    }
    log.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    eprintln!("{test}: writes stopped after {:?}: {}", t0.elapsed(), summary.join("; "));
    assert!(!run.task.is_finished(), "tandem stopped during the load");

    // Converged within 30 s.
    let pg = db.pg().await;
    let mut my = db.my().await;
    let stop = Instant::now();
    let (mut p, mut m);
    loop {
        p = pg_rows(&pg, PG_ROWS).await;
        m = my_rows(&mut my, MY_ROWS).await;
        if p == m || stop.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if p != m {
        let report = divergence_report(&db, &p, &m, &log).await;
        panic!("{test}: the sides did not converge within 30 s after the writes stopped (seed {seed}):\n{report}");
    }
    eprintln!("{test}: converged {:?} after the writes stopped, {} rows", stop.elapsed(), p.len());

    // And stay so: no ping-pong. Postgres' counters for the table include every write tandem makes
    // there; they are flushed up to ~10 s after a backend's last commit, so wait that out first.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let writes = pg_row_writes(&pg).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (p2, m2) = (pg_rows(&pg, PG_ROWS).await, my_rows(&mut my, MY_ROWS).await);
    if p2 != p || m2 != m {
        let report = divergence_report(&db, &p2, &m2, &log).await;
        panic!("{test}: the tables changed after converging (ping-pong?)\n{report}");
    }
    assert_eq!(pg_row_writes(&pg).await, writes, "Postgres' conv table is still being written after convergence");

    // Every recorded conflict is sound.
    let (pc, mc) = conflicts(&db).await;
    eprintln!("{test}: {} conflicts recorded in Postgres, {} in MariaDB", pc.len(), mc.len());
    assert!(!pc.is_empty() || !mc.is_empty(), "concurrent same-column writes on 200 keys for {secs} s must have produced conflicts");
    let policy = settings.split('"').nth(1).unwrap();
    for (side, rows) in [("postgres", &pc), ("mariadb", &mc)] {
        for r in rows.iter() {
            assert_eq!(r[0].as_deref(), Some("conv"), "{side}: {r:?}");
            let key: serde_json::Value = serde_json::from_str(r[1].as_deref().unwrap()).unwrap();
            let id: i32 = key["id"].as_str().unwrap().parse().unwrap();
            assert!((1..=KEYS).contains(&id), "{side}: {r:?}");
            let column = r[2].as_deref().unwrap();
            assert!(COLUMNS.contains(&column), "{side}: unknown column: {r:?}");
            assert!(matches!(r[6].as_deref(), Some("postgres" | "mysql")), "{side}: decided conflicts name a winner: {r:?}");
            assert_eq!(r[7].as_deref(), Some("1"), "{side}: decided conflicts are closed: {r:?}");
            match column {
                "a" => assert_eq!(r[6].as_deref(), Some("postgres"), "{side}: the owner wins: {r:?}"),
                "b" => assert_eq!(r[6].as_deref(), Some("mysql"), "{side}: the owner wins: {r:?}"),
                _ => assert_eq!(r[5].as_deref(), Some(policy), "{side}: {r:?}"),
            }
        }
    }
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_load_with_mixed_owners_and_last_writer_wins_converges() {
    random_load_converges("conv_lww", "on_conflict = \"last-writer-wins\"\ntimestamp_column = \"updated_at\"", true).await;
}

/// Isolates last-writer-wins from the delete races: no deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_load_without_deletes_and_last_writer_wins_converges() {
    random_load_converges("conv_lww_nodel", "on_conflict = \"last-writer-wins\"\ntimestamp_column = \"updated_at\"", false).await;
}

/// Baseline: fixed priority, no deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_load_without_deletes_and_postgres_wins_converges() {
    random_load_converges("conv_pgw_nodel", "on_conflict = \"postgres-wins\"", false).await;
}

/// Fixed priority with deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_load_with_deletes_and_postgres_wins_converges() {
    random_load_converges("conv_pgw", "on_conflict = \"postgres-wins\"", true).await;
}
