//! Tests of the test harness itself: the shared servers have the settings
//! tandem relies on, fresh databases are independent, the SCRAM role needs
//! its password, and a private server can restart and disappears on drop.

use crate::support::{self, fresh_db, servers};
use mysql_async::prelude::Queryable;
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_ready_for_logical_replication() {
    let db = fresh_db("pg_logical").await;
    let pg = db.pg().await;
    for (setting, expected) in [("wal_level", "logical"), ("track_commit_timestamp", "on"), ("max_replication_slots", "400")] {
        let row = pg.query_one(&format!("SHOW {setting}"), &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), expected, "{setting}");
    }
    let slot = format!("slot_{}", db.name);
    let row = pg
        .query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot])
        .await
        .unwrap();
    assert!(row.get::<_, String>(0).contains('/'));
    pg.execute("SELECT pg_drop_replication_slot($1)", &[&slot]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_writes_a_full_row_binlog() {
    let db = fresh_db("my_binlog").await;
    let mut my = db.my().await;
    let row: (i64, String, String, String) = my
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@character_set_server")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, (1, "ROW".into(), "FULL".into(), "utf8mb4".into()));
    let grants: Vec<String> = my.query("SHOW GRANTS").await.unwrap();
    assert!(grants.iter().any(|g| g.contains("`root`@`127.0.0.1`") && g.contains("WITH GRANT OPTION")), "{grants:?}");

    // The password user needs its password.
    let port = servers().my.port();
    let as_user = |password: &str| {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some(support::MY_PASSWORD_USER))
            .pass(Some(password.to_string()))
            .prefer_socket(false)
    };
    let mut conn = mysql_async::Conn::new(as_user(support::MY_PASSWORD)).await.unwrap();
    let me: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(me.as_deref(), Some("tandem_pw@%"));
    conn.disconnect().await.unwrap();
    assert!(mysql_async::Conn::new(as_user("wrong")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_user_needs_its_password() {
    let pg = &servers().pg;
    let connect = |password: Option<&str>| {
        let mut config = tokio_postgres::Config::new();
        config.host(pg.host()).port(pg.port()).user(support::SCRAM_USER).dbname("postgres");
        if let Some(p) = password {
            config.password(p);
        }
        async move { config.connect(tokio_postgres::NoTls).await }
    };
    let (client, conn) = connect(Some(support::SCRAM_PASSWORD)).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT rolsuper, rolreplication, rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, bool>(1), row.get::<_, bool>(2)), (true, true, true));

    let wrong = connect(Some("wrong")).await.err().expect("a wrong password must fail");
    assert_eq!(wrong.code(), Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD), "{wrong}");
    assert!(connect(None).await.is_err(), "no password must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_databases_are_independent() {
    let a = fresh_db("independent").await;
    let b = fresh_db("independent").await;
    assert_ne!(a.name, b.name);
    assert_ne!(a.server_id, b.server_id);

    a.pg().await.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await.unwrap();
    let rows = b.pg().await.query("SELECT 1 FROM pg_tables WHERE tablename = 't'", &[]).await.unwrap();
    assert!(rows.is_empty(), "table of test a is visible in b's Postgres database");

    a.my().await.query_drop("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let tables: Vec<String> = b.my().await.query("SHOW TABLES").await.unwrap();
    assert!(tables.is_empty(), "b's MariaDB database has {tables:?}");

    // The generated config is one tandem accepts.
    let pair = format!(
        "[[pairs]]\nname = \"t\"\npostgres = \"{}\"\nmysql = \"{}\"\ndefault_owner = \"both\"\non_conflict = \"postgres-wins\"\n",
        a.pg_table("t"),
        a.my_table("t")
    );
    let path = a.write_config(&pair);
    let config = tandem::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", a.config_toml(&pair)));
    assert_eq!(config.pipeline, a.name);
    assert_eq!(config.mysql.server_id, a.server_id);
    assert_eq!(config.postgres.endpoint.port, servers().pg.port());
    assert_eq!(config.mysql.endpoint.database, a.name);

    a.drop_databases().await;
    b.drop_databases().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_servers_restart_and_vanish_on_drop() {
    let (pg, my) = tokio::join!(
        PgCluster::start(PgOptions::default()),
        MariaDb::start(MariaOptions {
            server_id: 2,
            extra_args: vec!["--default-time-zone=+05:30".into()],
            ..MariaOptions::default()
        })
    );
    let (pg, my) = (pg.unwrap(), my.unwrap());
    assert_ne!(pg.port(), servers().pg.port());
    assert_ne!(my.port(), servers().my.port());

    pg.create_database("keep").await.unwrap();
    pg.connect("keep").await.unwrap().batch_execute("CREATE TABLE k AS SELECT 42 AS v").await.unwrap();
    my.create_database("keep").await.unwrap();
    my.connect("keep").await.unwrap().query_drop("CREATE TABLE k AS SELECT 42 AS v").await.unwrap();
    let tz: Option<(String, i64)> = my.connect("").await.unwrap().query_first("SELECT @@time_zone, @@server_id").await.unwrap();
    assert_eq!(tz, Some(("+05:30".to_string(), 2)));

    let (pg_port, my_port) = (pg.port(), my.port());
    let old_pids = (pg.pid().unwrap(), my.pid().unwrap());
    pg.restart().await.unwrap();
    my.restart().await.unwrap();
    assert_eq!((pg.port(), my.port()), (pg_port, my_port));
    assert_ne!((pg.pid().unwrap(), my.pid().unwrap()), old_pids);
    let v: i32 = pg.connect("keep").await.unwrap().query_one("SELECT v FROM k", &[]).await.unwrap().get(0);
    assert_eq!(v, 42);
    let v: Option<i64> = my.connect("keep").await.unwrap().query_first("SELECT v FROM k").await.unwrap();
    assert_eq!(v, Some(42));

    // A crash (immediate shutdown / SIGKILL) is recovered from on restart.
    pg.crash().unwrap();
    my.crash().unwrap();
    assert!(pg.connect("keep").await.is_err());
    pg.restart().await.unwrap();
    my.restart().await.unwrap();
    pg.connect("keep").await.unwrap().query_one("SELECT v FROM k", &[]).await.unwrap();

    let dirs = [pg.dir().to_path_buf(), my.dir().to_path_buf()];
    let pids = [pg.pid().unwrap(), my.pid().unwrap()];
    drop(pg);
    drop(my);
    for dir in dirs {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "server {pid} still runs");
    }
}
