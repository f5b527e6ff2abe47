//! Starting beside the databases, as containers and units do: `tandem init
//! --wait SECONDS` waits out a database that is not up yet (and says so),
//! and gives up after the wait with exit 2 naming it; and a Postgres
//! without `track_commit_timestamp` (the common case) replicates both ways
//! and checks equal — tandem does not need it.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_wait_waits_for_a_database_that_comes_up_late_and_gives_up_naming_it() {
    let db = support::fresh_db("init_wait").await;
    let maria = MariaDb::start(MariaOptions::default()).await.unwrap_or_else(|e| panic!("{e}"));
    maria.create_database(&db.name).await.unwrap();
    let pg = db.pg().await;
    let mut my = maria.connect(&db.name).await.unwrap();
    pg.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v text)").await.unwrap();
    my.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    drop(my);
    let pair = format!("[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\n", db.name);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wait.toml");
    std::fs::write(&cfg, db.config_toml(&pair).replace(&db.my_url, &maria.url(&db.name))).unwrap();

    maria.stop().unwrap();
    let t0 = Instant::now();
    let out = std::process::Command::new(tandem_bin()).args(["init", "--wait", "2", "-c"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(15), "gave up after {:?}", t0.elapsed());
    assert!(err.contains("mysql did not accept a login"), "names the database: {err}");
    assert!(err.contains("waiting for mysql"), "said it was waiting: {err}");

    let waiting = std::process::Command::new(tandem_bin()).args(["init", "--wait", "90", "-c"]).arg(&cfg).stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    maria.restart().await.unwrap();
    let out = tokio::task::spawn_blocking(move || waiting.wait_with_output()).await.unwrap().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("waiting for mysql") && said.contains("init: done"), "{said}");
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_track_commit_timestamp_both_directions_replicate_and_check_is_equal() {
    let db = support::fresh_db("no_commit_ts").await;
    let off = vec![("track_commit_timestamp".to_string(), "off".to_string())];
    let cluster = PgCluster::start(PgOptions { settings: off, ..Default::default() }).await.unwrap_or_else(|e| panic!("{e}"));
    cluster.create_database(&db.name).await.unwrap();
    let pg = cluster.connect(&db.name).await.unwrap();
    let setting = pg_rows(&pg, "SHOW track_commit_timestamp").await;
    assert_eq!(setting[0][0].as_deref(), Some("off"));
    let mut my = db.my().await;
    pg.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v text, updated_at timestamp(6) NOT NULL)").await.unwrap();
    my.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v TEXT, updated_at DATETIME(6) NOT NULL)").await.unwrap();
    let pair = format!(
        "[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\non_conflict = \"last-writer-wins\"\ntimestamp_column = \"updated_at\"\n",
        db.name
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nots.toml");
    std::fs::write(&cfg, db.config_toml(&pair).replace(&db.pg_url, &cluster.url(&db.name))).unwrap();
    let out = std::process::Command::new(tandem_bin()).args(["validate", "-c"]).arg(&cfg).output().unwrap();
    init_cli(&cfg);
    let run = InProcess::start(&cfg).await;
    pg.batch_execute("INSERT INTO items VALUES (1, 'pg', '2024-01-01 00:00:01'), (2, 'pg', '2024-01-01 00:00:01')").await.unwrap();
    my.query_drop("INSERT INTO items VALUES (3, 'my', '2024-01-01 00:00:01')").await.unwrap();
    my.query_drop("UPDATE items SET v = 'my later', updated_at = '2024-01-01 00:00:09' WHERE id = 3").await.unwrap();
    const PG: &str = "SELECT id, v, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US') FROM items ORDER BY id";
    const MY: &str = "SELECT id, v, DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM items ORDER BY id";
    let rows = wait_equal(&pg, PG, &mut my, MY, Duration::from_secs(60)).await;
    assert_eq!(rows.len(), 3);
    let check = std::process::Command::new(tandem_bin()).args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
    run.stop().await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("track_commit_timestamp"), "validate does not ask for it: {said}");
}
