//! The quarantine: a change the destination rejects is set aside with its
//! error while the rest of its batch applies; `on_error = "stop"` stops the
//! pipeline naming it; `quarantine retry` applies it once the schema is fixed.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn pair(db: &support::TestDb) -> String {
    format!("[[pairs]]\nname = \"notes\"\npostgres = \"public.notes\"\nmysql = \"{}.notes\"\n", db.name)
}

async fn tables(db: &support::TestDb) {
    db.pg().await.batch_execute("CREATE TABLE notes (id int PRIMARY KEY, note text)").await.unwrap();
    db.my().await.query_drop("CREATE TABLE notes (id INT PRIMARY KEY, note VARCHAR(5))").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_long_string_is_quarantined_the_rest_applies_and_retry_applies_it_after_widening() {
    let db = support::fresh_db("quarantine").await;
    tables(&db).await;
    let cfg_path = db.write_config(&pair(&db));
    let run = InProcess::start(&cfg_path).await;
    let pg = db.pg().await;
    pg.batch_execute("INSERT INTO notes VALUES (1, 'ok'), (2, 'much too long'), (3, 'fine')").await.unwrap();
    pg.batch_execute("INSERT INTO notes VALUES (4, 'next')").await.unwrap();
    let mut my = db.my().await;
    let sql = "SELECT id, note FROM notes ORDER BY id";
    let t0 = std::time::Instant::now();
    loop {
        let rows = my_rows(&mut my, sql).await;
        if rows.len() == 3 {
            assert_eq!(rows.iter().map(|r| r[0].clone().unwrap()).collect::<Vec<_>>(), vec!["1", "3", "4"]);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "rows 1, 3, 4 did not arrive: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let q: Vec<(String, Option<String>, Option<String>, String)> =
        my.exec("SELECT key_json, column_name, value_text, error FROM tandem.quarantine WHERE pipeline = ?", (&db.name,)).await.unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].0, r#"{"id":"2"}"#);
    assert_eq!(q[0].1.as_deref(), Some("note"));
    assert_eq!(q[0].2.as_deref(), Some("much too long"));
    assert!(q[0].3.contains("1406") || q[0].3.to_lowercase().contains("too long"), "{}", q[0].3);

    let cfg = tandem::config::load(&cfg_path).unwrap();
    let entries = tandem::ops::quarantine::list(&cfg).await.unwrap();
    assert_eq!(entries.len(), 1);
    let id = entries[0].id.clone();
    assert!(id.starts_with("my:"));
    // Still too narrow: retry reports it and keeps it.
    assert!(tandem::ops::quarantine::retry(&cfg, &id).await.unwrap().is_some());
    my.query_drop("ALTER TABLE notes MODIFY note VARCHAR(50)").await.unwrap();
    assert_eq!(tandem::ops::quarantine::retry(&cfg, &id).await.unwrap(), None);
    wait_equal(&pg, sql, &mut my, sql, Duration::from_secs(10)).await;
    assert!(tandem::ops::quarantine::list(&cfg).await.unwrap().is_empty());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_stop_exits_1_naming_pair_key_column_and_value() {
    let db = support::fresh_db("quarantine_stop").await;
    tables(&db).await;
    let text = db.config_toml(&pair(&db)).replace("[apply]\n", "[apply]\non_error = \"stop\"\n");
    let cfg = tandem::testbed::scratch_dir().unwrap().join(format!("{}-stop.toml", db.name));
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    db.pg().await.batch_execute("INSERT INTO notes VALUES (7, 'much too long')").await.unwrap();
    let (code, _) = wait_exit(&mut child, Duration::from_secs(30));
    let out = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(1), "{out}");
    for needle in ["notes", r#"{"id":"7"}"#, "note", "much too long"] {
        assert!(out.contains(needle), "the error names {needle}: {out}");
    }
    let n: Option<i64> = db.my().await.query_first("SELECT COUNT(*) FROM notes").await.unwrap();
    assert_eq!(n, Some(0));
}
