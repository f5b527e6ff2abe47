//! `tandem explain` through the real binary: a row in conflict (each side
//! kept its own value under `on_conflict = "manual"`) shows the differing
//! column, the owners and the open conflicts recorded on both sides, and
//! exits 1; an equal row shows every column equal and no entries, and
//! exits 0; a key of the wrong width is refused with exit 2.

use super::conflicts::manual_conflicts;
use super::util::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn explain(cfg: &Path, args: &[&str]) -> Output {
    std::process::Command::new(tandem_bin()).arg("explain").args(args).arg("-c").arg(cfg).output().expect("spawn tandem")
}

fn shown(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_a_conflicted_row_column_by_column_with_its_conflicts_and_an_equal_row_as_equal() {
    let (db, cfg, run) = manual_conflicts("explain").await;
    let pg = db.pg().await;
    pg.batch_execute("INSERT INTO items (id, a, b, v, updated_at) VALUES (3, 'a3', 'b3', 'same', '2024-01-01 00:00:00')").await.unwrap();
    let mut my = db.my().await;
    let t0 = Instant::now();
    while my_rows(&mut my, "SELECT id FROM items WHERE id = 3").await.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "row 3 did not replicate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = explain(&cfg, &["--pair", "items", "--key", "1"]);
    let said = shown(&out);
    assert_eq!(out.status.code(), Some(1), "a differing row exits 1: {said}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("postgres present, mysql present; DIFFERENT"), "{said}");
    assert!(text.lines().any(|l| l.contains("v (owner both): postgres pg ≠ mysql my")), "{said}");
    assert!(text.lines().any(|l| l.contains("a (owner") && l.contains("a0 = mysql a0")), "{said}");
    assert!(text.contains("conflict pg:") && text.contains("conflict my:") && text.contains("policy manual, open"), "{said}");
    let json = explain(&cfg, &["--pair", "items", "--key", "1", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", shown(&json)));
    assert_eq!(v["equal"], false);
    assert_eq!(v["conflicts"].as_array().map(Vec::len), Some(2), "{v}");
    let col_v = v["columns"].as_array().unwrap().iter().find(|c| c["column"] == "v").cloned().unwrap();
    assert_eq!((col_v["postgres"].as_str(), col_v["mysql"].as_str(), col_v["equal"].as_bool()), (Some("pg"), Some("my"), Some(false)));

    let out = explain(&cfg, &["--pair", "items", "--key", "3"]);
    let said = shown(&out);
    assert_eq!(out.status.code(), Some(0), "an equal row exits 0: {said}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("equal") && !text.contains("DIFFERENT") && !text.contains('≠'), "{said}");
    assert!(text.contains("conflicts: none") && text.contains("quarantine: none") && text.contains("parked: none"), "{said}");

    let out = explain(&cfg, &["--pair", "items", "--key", "1", "--key", "2"]);
    assert_eq!(out.status.code(), Some(2), "a key of the wrong width: {}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give one --key per column"), "{}", shown(&out));
    run.stop().await;
}
