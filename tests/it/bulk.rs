//! The commands an operator repeats, through the real binary:
//! `quarantine retry|drop --pair P --all`, `conflicts resolve --pair P --all`
//! and `--limit` on both list commands.

use super::conflicts::{both_rows, manual_conflicts, my_conflicts, pg_conflicts, row};
use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn tandem(cfg: &Path, args: &[&str]) -> Output {
    std::process::Command::new(tandem_bin()).args(args).arg("-c").arg(cfg).output().expect("spawn tandem")
}

fn text(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn quarantined(cfg: &Path) -> Vec<tandem::ops::quarantine::QuarantineEntry> {
    tandem::ops::quarantine::list(&tandem::config::load(cfg).unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_retry_and_drop_take_every_entry_of_a_pair_with_all() {
    let db = support::fresh_db("bulk_quarantine").await;
    db.pg().await.batch_execute("CREATE TABLE notes (id int PRIMARY KEY, note text)").await.unwrap();
    db.my().await.query_drop("CREATE TABLE notes (id INT PRIMARY KEY, note VARCHAR(5))").await.unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"notes\"\npostgres = \"public.notes\"\nmysql = \"{}.notes\"\n", db.name));
    let run = InProcess::start(&cfg).await;
    db.pg()
        .await
        .batch_execute("INSERT INTO notes VALUES (1, 'ok'), (2, 'too long 2'), (3, 'too long 3'), (4, 'far far far too long for twenty')")
        .await
        .unwrap();
    let t0 = Instant::now();
    while quarantined(&cfg).await.len() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(30), "three changes were not quarantined: {:?}", quarantined(&cfg).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = tandem(&cfg, &["quarantine", "list", "--limit", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "--limit 2 shows two of three: {}", text(&out));

    let out = tandem(&cfg, &["quarantine", "retry", "--pair", "nope", "--all"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pair named \"nope\""), "{}", text(&out));

    // Wide enough for rows 2 and 3, not for row 4.
    db.my().await.query_drop("ALTER TABLE notes MODIFY note VARCHAR(20)").await.unwrap();
    let out = tandem(&cfg, &["quarantine", "retry", "--pair", "notes", "--all"]);
    assert_eq!(out.status.code(), Some(2), "one change is still rejected: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pair notes: 2 applied, 1 still rejected"), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("is still rejected").count(), 1, "{}", text(&out));
    let mut my = db.my().await;
    assert_eq!(my_rows(&mut my, "SELECT id, note FROM notes ORDER BY id").await, vec![
        vec![Some("1".into()), Some("ok".into())],
        vec![Some("2".into()), Some("too long 2".into())],
        vec![Some("3".into()), Some("too long 3".into())],
    ]);
    let left = quarantined(&cfg).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].key, r#"{"id":"4"}"#);

    let out = tandem(&cfg, &["quarantine", "drop", "--pair", "notes", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{}: dropped", left[0].id)), "{}", text(&out));
    assert!(quarantined(&cfg).await.is_empty());
    let out = tandem(&cfg, &["quarantine", "drop", "--pair", "notes", "--all"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pair notes: 0 dropped"), "{}", text(&out));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_resolve_all_of_a_pair_takes_one_side_for_every_open_conflict() {
    let (db, cfg, run) = manual_conflicts("bulk_resolve").await;
    let out = tandem(&cfg, &["conflicts", "list", "--pair", "items", "--limit", "3", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["conflicts"].as_array().map(Vec::len), Some(3), "--limit 3 of 4: {listed}");

    let out = tandem(&cfg, &["conflicts", "resolve", "--pair", "items", "--all", "--take", "mysql"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pair items: 2 conflict(s) resolved, 0 not"), "one per row (twins close together): {}", text(&out));
    let ts = Some("2024-01-01 00:00:00");
    let want = vec![row(1, "a0", "b0", "my", ts), row(2, "a0", "b0", "my", ts)];
    let t0 = Instant::now();
    while both_rows(&db).await != (want.clone(), want.clone()) {
        assert!(t0.elapsed() < Duration::from_secs(30), "both sides take mysql's value: {:?}", both_rows(&db).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = tandem::config::load(&cfg).unwrap();
    assert!(tandem::ops::conflicts::list(&config, Some("items"), false).await.unwrap().is_empty(), "no open conflict is left");
    let all = pg_conflicts(&db).await.into_iter().chain(my_conflicts(&db).await).collect::<Vec<_>>();
    assert_eq!(all.len(), 4, "resolving adds no conflict rows: {all:?}");
    assert!(all.iter().all(|c| c[6].as_deref() == Some("mysql") && c[7].as_deref() == Some("1")), "every record closed, mysql taken: {all:?}");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_max_rows_per_sec_paces_the_comparison() {
    let db = support::fresh_db("check_pace").await;
    db.pg().await.batch_execute("CREATE TABLE nums (id int PRIMARY KEY, v int); INSERT INTO nums SELECT g, g FROM generate_series(1, 300) g").await.unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE nums (id INT PRIMARY KEY, v INT)").await.unwrap();
    let values: Vec<String> = (1..=300).map(|i| format!("({i}, {i})")).collect();
    my.query_drop(format!("INSERT INTO nums VALUES {}", values.join(","))).await.unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"nums\"\npostgres = \"public.nums\"\nmysql = \"{}.nums\"\n", db.name));
    tandem::ops::init::init(&tandem::config::load(&cfg).unwrap()).await.unwrap();
    let timed = |args: &[&str]| {
        let t0 = Instant::now();
        let out = tandem(&cfg, args);
        (out, t0.elapsed())
    };
    let (out, free) = timed(&["check", "--chunk-rows", "50"]);
    assert_eq!(out.status.code(), Some(0), "in sync: {}", text(&out));
    // 300 rows at 100 rows/s: the last chunk is due 3 s after the start.
    let (out, paced) = timed(&["check", "--chunk-rows", "50", "--max-rows-per-sec", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(paced >= Duration::from_millis(2900), "paced check took {paced:?} (unpaced {free:?})");
}
