//! `tandem backfill` against the real binaries: 200,000 rows each way while
//! four clients update, insert and delete on both sides the whole time, and a
//! kill -9 halfway that the next run resumes from.
//!
//! The clients own disjoint key classes (id mod 4) so that every row has one
//! writer: the test then knows each row's latest value, and concurrent writes
//! to one row from both sides (the conflict rules' business, tested
//! elsewhere) do not blur what the backfill itself must get right.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAIR: &str = "[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{db}.items\"\n";
const PG_SQL: &str = "SELECT id, n, note, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US') FROM items ORDER BY id";
const MY_SQL: &str = "SELECT id, n, note, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f') FROM items ORDER BY id";
/// New rows get ids from here on (above every seeded id).
const NEW_IDS: i64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Postgres,
    Mysql,
}

/// `items` on both sides, `rows` seeded on the `from` side only.
async fn tables(db: &support::TestDb, from: From, rows: i64) -> std::path::PathBuf {
    let pg = db.pg().await;
    pg.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, n bigint NOT NULL, note text, at timestamp(6))").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, note TEXT, at DATETIME(6))").await.unwrap();
    match from {
        From::Postgres => pg
            .batch_execute(&format!(
                "INSERT INTO items SELECT g, 0, 'seed ' || g, '1969-12-31'::timestamp + g * interval '1.000001 second' FROM generate_series(1, {rows}) g"
            ))
            .await
            .unwrap(),
        From::Mysql => my
            .query_drop(format!(
                "INSERT INTO items SELECT seq, 0, CONCAT('seed ', seq), '1969-12-31' + INTERVAL seq * 1000001 MICROSECOND FROM seq_1_to_{rows}"
            ))
            .await
            .unwrap(),
    }
    let cfg = db.write_config(&PAIR.replace("{db}", &db.name));
    init_cli(&cfg);
    cfg
}

/// One client: updates, deletes and inserts rows whose id ≡ `class` (mod 4)
/// on one side until `stop`; returns each touched id's latest note (`None`: deleted).
async fn client(db: support::TestDb, class: i64, seeded: i64, stop: Arc<AtomicBool>) -> HashMap<i64, Option<String>> {
    let mut last = HashMap::new();
    let on_pg = class % 2 == 0;
    let pg = db.pg().await;
    let mut my = db.my().await;
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let (op, id) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(0..10), rng.gen_range(0..seeded / 4) * 4 + class)
        };
        let id = if id == 0 { 4 } else { id };
        let note = format!("client {class} write {seq}");
        let (id, after, sql_pg, sql_my) = match op {
            0..=5 => (id, Some(note.clone()), "UPDATE items SET n = n + 1, note = $2 WHERE id = $1", "UPDATE items SET n = n + 1, note = ? WHERE id = ?"),
            6..=7 => (id, None, "DELETE FROM items WHERE id = $1 AND $2::text IS NOT NULL", "DELETE FROM items WHERE ? IS NOT NULL AND id = ?"),
            _ => {
                let new = NEW_IDS + seq * 4 + class;
                (new, Some(note.clone()), "INSERT INTO items VALUES ($1, 0, $2, now())", "INSERT INTO items VALUES (?, 0, ?, UTC_TIMESTAMP(6))")
            }
        };
        let n = if on_pg {
            pg.execute(sql_pg, &[&id, &note]).await.unwrap()
        } else if op >= 8 {
            my.exec_iter(sql_my, (id, &note)).await.unwrap().affected_rows()
        } else {
            my.exec_iter(sql_my, (&note, id)).await.unwrap().affected_rows()
        };
        if n == 1 {
            last.insert(id, after);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    last
}

fn backfill(cfg: &Path, from: From, args: &[&str]) -> std::process::Child {
    let from = if from == From::Postgres { "postgres" } else { "mysql" };
    Command::new(tandem_bin())
        .env("RUST_LOG", "info,tandem::backfill=debug,tandem::ops::backfill=debug")
        .args(["backfill", "-c"])
        .arg(cfg)
        .args(["--pair", "items", "--from", from])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tandem backfill")
}

fn finished(child: std::process::Child) -> (Output, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

/// Both sides equal row by row, within `limit`; the rows.
async fn converged(db: &support::TestDb, limit: Duration) -> Rows {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let t0 = Instant::now();
    loop {
        let a = pg_rows(&pg, PG_SQL).await;
        let b = my_rows(&mut my, MY_SQL).await;
        if a == b {
            return a;
        }
        if t0.elapsed() > limit {
            let bm: HashMap<_, _> = b.iter().map(|r| (r[0].clone(), r.clone())).collect();
            let am: HashMap<_, _> = a.iter().map(|r| (r[0].clone(), r.clone())).collect();
            let mut diffs: Vec<String> = a.iter().filter(|r| bm.get(&r[0]) != Some(r)).map(|r| format!("pg {r:?} / my {:?}", bm.get(&r[0]))).collect();
            diffs.extend(b.iter().filter(|r| !am.contains_key(&r[0])).map(|r| format!("only in mysql: {r:?}")));
            panic!("sides differ after {limit:?} ({} vs {} rows), {} differences:\n{}", a.len(), b.len(), diffs.len(), diffs.iter().take(30).cloned().collect::<Vec<_>>().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every row a client touched holds that client's latest write, or is gone if it deleted it.
fn assert_latest(rows: &Rows, latest: &HashMap<i64, Option<String>>) {
    let by_id: HashMap<i64, Option<String>> = rows.iter().map(|r| (r[0].as_deref().unwrap().parse().unwrap(), r[2].clone())).collect();
    let mut wrong = Vec::new();
    for (id, want) in latest {
        let have = by_id.get(id);
        let ok = match want {
            None => have.is_none(),
            Some(note) => have == Some(&Some(note.clone())),
        };
        if !ok {
            wrong.push(format!("id {id}: latest write {want:?}, both sides hold {have:?}"));
        }
    }
    wrong.sort();
    assert!(wrong.is_empty(), "{} rows lost their latest write or came back after a delete:\n{}", wrong.len(), wrong.iter().take(30).cloned().collect::<Vec<_>>().join("\n"));
}

async fn copy_while_four_clients_write(from: From, name: &str) {
    const ROWS: i64 = 200_000;
    let db = support::fresh_db(name).await;
    let cfg = tables(&db, from, ROWS).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut run = spawn_run(&cfg, &log, &[], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4).map(|c| tokio::spawn(client(db.clone(), c, ROWS, Arc::clone(&stop)))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let (out, text) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || finished(backfill(&cfg, from, &["--chunk-rows", "5000"]))
    })
    .await
    .unwrap();
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(0), "backfill failed:\n{text}\nrun log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(text.contains("backfill items: "), "reports what it did: {text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latest = HashMap::new();
    for c in clients {
        latest.extend(c.await.unwrap());
    }
    let rows = converged(&db, Duration::from_secs(90)).await;
    assert!(rows.len() as i64 > ROWS / 2, "the copy holds the table: {} rows", rows.len());
    assert!(latest.len() > 200, "the clients wrote during the whole backfill: {} rows touched", latest.len());
    assert_latest(&rows, &latest);
    eprintln!("backfill of {ROWS} rows with 4 writing clients took {took:?}: {}", text.lines().find(|l| l.starts_with("backfill items")).unwrap_or_default());
    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(10)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_200000_postgres_rows_while_four_clients_write_on_both_sides() {
    copy_while_four_clients_write(From::Postgres, "bf_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_200000_mariadb_rows_while_four_clients_write_on_both_sides() {
    copy_while_four_clients_write(From::Mysql, "bf_my").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_halfway_resumes_where_it_stopped() {
    const ROWS: i64 = 100_000;
    let db = support::fresh_db("bf_resume").await;
    let cfg = tables(&db, From::Postgres, ROWS).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut run = spawn_run(&cfg, &log, &[], &[]);
    let mut first = backfill(&cfg, From::Postgres, &["--chunk-rows", "2000", "--max-rows-per-sec", "20000"]);
    // Kill it once a good part, but not all, has been merged.
    let mut my = db.my().await;
    let t0 = Instant::now();
    loop {
        let applied: Option<i64> = my
            .exec_first("SELECT rows_applied FROM tandem.backfills WHERE pipeline = ? AND pair = 'items'", (&db.name,))
            .await
            .unwrap();
        if applied.unwrap_or(0) >= ROWS / 3 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            signal(&first, libc::SIGKILL);
            panic!("no progress: {applied:?}\n{}", finished(first).1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&first, libc::SIGKILL);
    let _ = first.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let applied: i64 =
        my.exec_first("SELECT rows_applied FROM tandem.backfills WHERE pipeline = ? AND pair = 'items'", (&db.name,)).await.unwrap().unwrap();
    assert!(applied < ROWS, "killed before the end: {applied} rows applied");
    // Rows changed on the source in between are not lost either.
    db.pg().await.batch_execute("UPDATE items SET note = 'changed while stopped' WHERE id IN (7, 99999)").await.unwrap();
    let (out, text) = finished(backfill(&cfg, From::Postgres, &["--chunk-rows", "2000"]));
    assert_eq!(out.status.code(), Some(0), "{text}\nrun log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(!text.contains("did not merge"), "the resumed run merges every chunk: {text}");
    let line = text.lines().find(|l| l.starts_with("backfill items:")).unwrap_or_default().to_string();
    assert!(line.contains(&format!("resumed after {applied} rows")), "resumes after the merged rows: {line}");
    let copied: i64 = line.trim_start_matches("backfill items: ").split(' ').next().unwrap().parse().unwrap();
    assert!(copied <= ROWS - applied, "copies only the rest: {line}");
    let rows = converged(&db, Duration::from_secs(60)).await;
    assert_eq!(rows.len() as i64, ROWS);
    assert_eq!(rows[6][2].as_deref(), Some("changed while stopped"));
    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(10)).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_needs_the_running_pipeline_and_exits_2_without_it() {
    let db = support::fresh_db("bf_norun").await;
    let cfg = tables(&db, From::Postgres, 10).await;
    let (out, text) = finished(backfill(&cfg, From::Postgres, &[]));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("`tandem run` is not running"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_killed_during_a_backfill_loses_no_chunk() {
    const ROWS: i64 = 60_000;
    let db = support::fresh_db("bf_runkill").await;
    let cfg = tables(&db, From::Mysql, ROWS).await;
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_run(&cfg, &dir.path().join("run1.log"), &[], &[]);
    let copy = backfill(&cfg, From::Mysql, &["--chunk-rows", "1000", "--max-rows-per-sec", "15000"]);
    let pg = db.pg().await;
    let t0 = Instant::now();
    loop {
        let applied: Option<i64> = pg
            .query_opt("SELECT rows_applied FROM tandem.backfills WHERE pipeline = $1 AND pair = 'items'", &[&db.name])
            .await
            .unwrap()
            .map(|r| r.get(0));
        if applied.unwrap_or(0) >= ROWS / 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress: {applied:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // kill -9 of `tandem run` between (or inside) chunk merges, then a restart.
    signal(&run, libc::SIGKILL);
    let _ = run.wait();
    run = spawn_run(&cfg, &dir.path().join("run2.log"), &[], &[]);
    let (out, text) = tokio::task::spawn_blocking(move || finished(copy)).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}\nrun log:\n{}", std::fs::read_to_string(dir.path().join("run2.log")).unwrap_or_default());
    let rows = converged(&db, Duration::from_secs(60)).await;
    assert_eq!(rows.len() as i64, ROWS);
    signal(&run, libc::SIGTERM);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(10)).0, Some(0));
}
