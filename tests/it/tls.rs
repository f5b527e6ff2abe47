//! TLS to both databases against a private Postgres and MariaDB that accept
//! TCP logins only over TLS (`hostssl`, `require_secure_transport`), with a
//! CA and certificates made for the test (server certificate for the DNS
//! name `localhost` only). Covers: verify-full replicating both ways with
//! every tandem connection encrypted (pg_stat_ssl incl. the walsender;
//! per-thread Ssl_cipher incl. the binlog dump), `tandem validate` over TLS,
//! a wrong CA and `disable` failing with clear errors, host-name checking
//! (verify-full vs. require + ca_file), client certificates, and `prefer`
//! falling back to plain text against the shared servers without TLS.

use super::util::*;
use crate::support::{self, MY_PASSWORD, MY_PASSWORD_USER, SCRAM_PASSWORD, SCRAM_USER};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tandem::config::{Endpoint, Secret, TlsMode};
use tandem::source::postgres::ReplicationConn;
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions, TestCerts};

/// MariaDB account that must present a client certificate.
const X509_USER: &str = "tandem_x509";

struct TlsServers {
    certs: TestCerts,
    pg: PgCluster,
    my: MariaDb,
}

/// The TLS-only servers, started once per process on their own runtime.
fn tls_servers() -> &'static TlsServers {
    static SERVERS: OnceLock<Result<TlsServers, String>> = OnceLock::new();
    let started = SERVERS.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(start_tls_servers())
        })
        .join()
        .unwrap_or_else(|_| Err("starting the TLS servers panicked".into()))
    });
    started.as_ref().unwrap_or_else(|e| panic!("TLS test servers are not available:\n{e}"))
}

async fn start_tls_servers() -> Result<TlsServers, String> {
    let dir = tandem::testbed::scratch_dir().map_err(|e| e.to_string())?.join(format!("tls-certs-{}", std::process::id()));
    let certs = TestCerts::generate(&dir).map_err(|e| e.to_string())?;
    let pg_opts = PgOptions {
        tls: Some(certs.server()),
        scram_user: Some((SCRAM_USER.into(), SCRAM_PASSWORD.into())),
        ..PgOptions::default()
    };
    let my_opts = MariaOptions {
        tls: Some(certs.server()),
        password_user: Some((MY_PASSWORD_USER.into(), MY_PASSWORD.into())),
        extra_args: vec!["--performance-schema=ON".into()],
        ..MariaOptions::default()
    };
    let (pg, my) = tokio::join!(PgCluster::start(pg_opts), MariaDb::start(my_opts));
    let (pg, my) = (pg.map_err(|e| e.to_string())?, my.map_err(|e| e.to_string())?);
    let mut admin = my.connect("").await.map_err(|e| e.to_string())?;
    admin
        .query_drop(format!(
            "ALTER USER '{MY_PASSWORD_USER}'@'%' REQUIRE SSL; \
             CREATE USER '{X509_USER}'@'%' REQUIRE X509; GRANT ALL PRIVILEGES ON *.* TO '{X509_USER}'@'%'"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let _ = admin.disconnect().await;
    Ok(TlsServers { certs, pg, my })
}

/// A database of this name on both TLS servers.
async fn fresh(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let name = format!("tls_{test}_{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let s = tls_servers();
    s.pg.create_database(&name).await.unwrap_or_else(|e| panic!("{e}"));
    s.my.create_database(&name).await.unwrap_or_else(|e| panic!("{e}"));
    name
}

fn pg_ep(host: &str, db: &str, tls: TlsMode, ca: Option<&Path>) -> Endpoint {
    Endpoint {
        host: host.into(),
        port: tls_servers().pg.port(),
        user: SCRAM_USER.into(),
        password: Some(Secret::new(SCRAM_PASSWORD)),
        database: db.into(),
        tls,
        ca_file: ca.map(Path::to_path_buf),
        client_cert: None,
        client_key: None,
    }
}

fn my_ep(host: &str, db: &str, tls: TlsMode, ca: Option<&Path>) -> Endpoint {
    Endpoint {
        port: tls_servers().my.port(),
        user: MY_PASSWORD_USER.into(),
        password: Some(Secret::new(MY_PASSWORD)),
        ..pg_ep(host, db, tls, ca)
    }
}

fn ca() -> Option<&'static Path> {
    Some(tls_servers().certs.ca_cert.as_path())
}

/// `Ssl_cipher` of a MySQL session ("" when not encrypted).
async fn my_cipher(conn: &mut mysql_async::Conn) -> String {
    let row: Option<(String, String)> = conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.unwrap();
    row.map(|r| r.1).unwrap_or_default()
}

/// Is this Postgres session encrypted?
async fn pg_ssl(client: &tokio_postgres::Client) -> bool {
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

/// A full tandem config for the TLS servers (host `localhost`, verify-full).
fn write_config(db: &str, ca_file: &Path) -> PathBuf {
    let s = tls_servers();
    let text = format!(
        "[pipeline]\nname = \"{db}\"\n\n\
         [postgres]\nurl = \"postgresql://{SCRAM_USER}:{SCRAM_PASSWORD}@localhost:{pg}/{db}\"\n\
         tls = \"verify-full\"\nca_file = \"{ca}\"\n\n\
         [mysql]\nurl = \"mysql://{MY_PASSWORD_USER}:{MY_PASSWORD}@localhost:{my}/{db}\"\nserver_id = 4999\n\
         tls = \"verify-full\"\nca_file = \"{ca}\"\n\n\
         [apply]\nmax_batch_delay_ms = 20\n\n\
         [[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{db}.items\"\n\
         default_owner = \"both\"\non_conflict = \"postgres-wins\"\n",
        pg = s.pg.port(),
        my = s.my.port(),
        ca = ca_file.display(),
    );
    let path = tandem::testbed::scratch_dir().unwrap().join(format!("{db}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `tandem validate -c cfg`: (exit code, stdout + stderr).
fn validate_cli(cfg: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(tandem_bin()).args(["validate", "-c"]).arg(cfg).output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_replicates_both_ways_with_every_connection_encrypted() {
    let db = fresh("both_ways").await;
    let s = tls_servers();
    let pg = s.pg.connect(&db).await.unwrap();
    pg.batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text)").await.unwrap();
    let mut my = s.my.connect(&db).await.unwrap();
    my.query_drop("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100))").await.unwrap();
    let cfg = write_config(&db, &s.certs.ca_cert);

    let (code, out) = validate_cli(&cfg);
    assert!(code != Some(2) && !out.contains("cannot connect"), "validate connects over TLS: {code:?}\n{out}");

    let run = InProcess::start(&cfg).await;
    pg.batch_execute("INSERT INTO items VALUES (1, 'from postgres')").await.unwrap();
    my.query_drop("INSERT INTO items VALUES (2, 'from mariadb')").await.unwrap();
    let sql = "SELECT id, name FROM items ORDER BY id";
    let rows = wait_equal(&pg, sql, &mut my, sql, Duration::from_secs(60)).await;
    assert_eq!(rows.len(), 2, "{rows:?}");

    // Every tandem session on Postgres, the walsender included, is TLS.
    let sessions = pg
        .query(
            "SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.usename = $1 AND a.datname = $2",
            &[&SCRAM_USER, &db],
        )
        .await
        .unwrap();
    let sessions: Vec<(String, bool)> = sessions.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(sessions.iter().any(|(kind, _)| kind == "walsender"), "{sessions:?}");
    assert!(sessions.iter().all(|(_, ssl)| *ssl), "all encrypted: {sessions:?}");

    // Every tandem connection on MariaDB, the binlog dump included, is TLS.
    let threads: Vec<(Option<String>, String)> = my
        .exec(
            "SELECT t.PROCESSLIST_COMMAND, s.VARIABLE_VALUE FROM performance_schema.threads t \
             JOIN performance_schema.status_by_thread s USING (THREAD_ID) \
             WHERE t.PROCESSLIST_USER = ? AND s.VARIABLE_NAME = 'Ssl_cipher'",
            (MY_PASSWORD_USER,),
        )
        .await
        .unwrap();
    assert!(threads.iter().any(|(cmd, _)| cmd.as_deref() == Some("Binlog Dump")), "{threads:?}");
    assert!(threads.iter().all(|(_, cipher)| !cipher.is_empty()), "all encrypted: {threads:?}");
    let mut session = tandem::db::connect_mysql(&my_ep("localhost", &db, TlsMode::VerifyFull, ca())).await.unwrap();
    assert!(!my_cipher(&mut session).await.is_empty());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_and_plain_text_fail_with_clear_errors() {
    let db = fresh("refused").await;
    let wrong = tls_servers().certs.other_ca_cert.clone();
    let wrong_ca = Some(wrong.as_path());
    let expect_verify_failed = |what: &str, err: String| {
        assert!(err.contains("certificate verify failed"), "{what}: {err}");
        assert!(err.contains("\"localhost\"") && err.contains(&wrong.display().to_string()), "{what} names host and ca_file: {err}");
    };
    let pg = pg_ep("localhost", &db, TlsMode::VerifyFull, wrong_ca);
    expect_verify_failed("session", tandem::db::connect_pg(&pg).await.unwrap_err().to_string());
    expect_verify_failed("replication", ReplicationConn::connect(&pg).await.unwrap_err().to_string());
    let my = my_ep("localhost", &db, TlsMode::VerifyFull, wrong_ca);
    let err = tandem::db::connect_mysql(&my).await.unwrap_err();
    assert_eq!(err.classify(), tandem::error::ErrorClass::Definite, "no retrying a bad certificate");
    expect_verify_failed("mysql", err.to_string());

    let cfg = write_config(&db, &wrong);
    let (code, out) = validate_cli(&cfg);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("certificate verify failed"), "{out}");

    let expect_requires_tls = |what: &str, err: String| {
        assert!(err.contains("requires TLS") && err.contains("tls = \"require\" or \"verify-full\""), "{what}: {err}");
    };
    let pg = pg_ep("localhost", &db, TlsMode::Disable, None);
    expect_requires_tls("session", tandem::db::connect_pg(&pg).await.unwrap_err().to_string());
    expect_requires_tls("replication", ReplicationConn::connect(&pg).await.unwrap_err().to_string());
    // MariaDB 10.11 answers plain text under require_secure_transport (root)
    // and for a REQUIRE SSL account alike with 1045 "Access denied" (newer
    // servers: 3159); the message says that TLS may be what is missing.
    let root = Endpoint { user: "root".into(), password: None, ..my_ep("localhost", &db, TlsMode::Disable, None) };
    for ep in [root, my_ep("localhost", &db, TlsMode::Disable, None)] {
        expect_requires_tls("mysql", tandem::db::connect_mysql(&ep).await.unwrap_err().to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name_and_require_with_ca_checks_the_chain_only() {
    let db = fresh("modes").await;
    // The certificate names `localhost`, not 127.0.0.1.
    let pg = pg_ep("127.0.0.1", &db, TlsMode::VerifyFull, ca());
    let err = tandem::db::connect_pg(&pg).await.unwrap_err().to_string();
    assert!(err.contains("does not name host \"127.0.0.1\""), "{err}");
    let err = ReplicationConn::connect(&pg).await.unwrap_err().to_string();
    assert!(err.contains("does not name host \"127.0.0.1\""), "{err}");
    let err = tandem::db::connect_mysql(&my_ep("127.0.0.1", &db, TlsMode::VerifyFull, ca())).await.unwrap_err().to_string();
    assert!(err.contains("does not name host \"127.0.0.1\""), "{err}");

    // require + ca_file (verify-ca), require alone and prefer all connect encrypted.
    for (tls, ca_file) in [(TlsMode::Require, ca()), (TlsMode::Require, None), (TlsMode::Prefer, None)] {
        let pg = pg_ep("127.0.0.1", &db, tls, ca_file);
        let client = tandem::db::connect_pg(&pg).await.unwrap_or_else(|e| panic!("{tls:?} {ca_file:?}: {e}"));
        assert!(pg_ssl(&client).await, "{tls:?}");
        let mut repl = ReplicationConn::connect(&pg).await.unwrap_or_else(|e| panic!("replication {tls:?}: {e}"));
        assert_eq!(repl.simple_query("IDENTIFY_SYSTEM").await.unwrap().len(), 1);
        repl.close().await.unwrap();
        // (verify-ca to MySQL checks the name too: see db.rs; so `localhost`.)
        let my = my_ep(if ca_file.is_some() { "localhost" } else { "127.0.0.1" }, &db, tls, ca_file);
        let mut conn = tandem::db::connect_mysql(&my).await.unwrap_or_else(|e| panic!("mysql {tls:?} {ca_file:?}: {e}"));
        assert!(!my_cipher(&mut conn).await.is_empty(), "{tls:?}");
    }

    let err = tandem::db::connect_mysql(&my_ep("127.0.0.1", &db, TlsMode::Require, ca())).await.unwrap_err().to_string();
    assert!(err.contains("with this MySQL driver"), "{err}");

    // A wrong CA still fails under require + ca_file (the chain is checked).
    let wrong = Some(tls_servers().certs.other_ca_cert.as_path());
    let err = tandem::db::connect_pg(&pg_ep("127.0.0.1", &db, TlsMode::Require, wrong)).await.unwrap_err().to_string();
    assert!(err.contains("certificate verify failed"), "{err}");
    let err = tandem::db::connect_mysql(&my_ep("127.0.0.1", &db, TlsMode::Require, wrong)).await.unwrap_err().to_string();
    assert!(err.contains("certificate verify failed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_presented() {
    let db = fresh("client_cert").await;
    let certs = &tls_servers().certs;
    let with_cert = |mut ep: Endpoint| {
        ep.client_cert = Some(certs.client_cert.clone());
        ep.client_key = Some(certs.client_key.clone());
        ep
    };
    let client = tandem::db::connect_pg(&with_cert(pg_ep("localhost", &db, TlsMode::VerifyFull, ca()))).await.unwrap();
    let dn: Option<String> =
        client.query_one("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(dn.as_deref(), Some("/CN=tandem"));

    let x509 = |ep: Endpoint| Endpoint { user: X509_USER.into(), password: None, ..ep };
    let base = my_ep("localhost", &db, TlsMode::VerifyFull, ca());
    let mut conn = tandem::db::connect_mysql(&with_cert(x509(base.clone()))).await.unwrap();
    assert!(!my_cipher(&mut conn).await.is_empty());
    let err = tandem::db::connect_mysql(&x509(base)).await.unwrap_err().to_string();
    assert!(err.contains("1045"), "REQUIRE X509 without a certificate: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_falls_back_to_plain_text_and_require_fails_without_server_tls() {
    let db = support::fresh_db("tls_prefer").await;
    let s = support::servers();
    let ep = |port: u16, user: &str, tls: TlsMode| Endpoint {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        password: None,
        database: db.name.clone(),
        tls,
        ca_file: None,
        client_cert: None,
        client_key: None,
    };
    let pg = ep(s.pg.port(), "postgres", TlsMode::Prefer);
    let client = tandem::db::connect_pg(&pg).await.unwrap();
    assert!(!pg_ssl(&client).await);
    let mut repl = ReplicationConn::connect(&pg).await.unwrap();
    assert_eq!(repl.simple_query("IDENTIFY_SYSTEM").await.unwrap().len(), 1);
    repl.close().await.unwrap();
    let mut conn = tandem::db::connect_mysql(&ep(s.my.port(), "root", TlsMode::Prefer)).await.unwrap();
    assert_eq!(my_cipher(&mut conn).await, "");

    let pg = ep(s.pg.port(), "postgres", TlsMode::Require);
    let err = tandem::db::connect_pg(&pg).await.unwrap_err().to_string();
    assert!(err.contains("does not accept TLS") && err.contains("127.0.0.1"), "{err}");
    let err = ReplicationConn::connect(&pg).await.unwrap_err().to_string();
    assert!(err.contains("does not accept TLS"), "{err}");
    let err = tandem::db::connect_mysql(&ep(s.my.port(), "root", TlsMode::Require)).await.unwrap_err().to_string();
    assert!(err.contains("does not offer TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_without_ca_file_trusts_the_operating_system_certificate_store() {
    let db = fresh("system_roots").await;
    let s = tls_servers();
    let with_ca = std::fs::read_to_string(write_config(&db, &s.certs.ca_cert)).unwrap();
    let text: String = with_ca.lines().filter(|l| !l.starts_with("ca_file")).map(|l| format!("{l}\n")).collect();
    assert!(!text.contains("ca_file") && text.matches("verify-full").count() == 2, "{text}");
    let cfg = tandem::testbed::scratch_dir().unwrap().join(format!("{db}-system.toml"));
    std::fs::write(&cfg, text).unwrap();
    let validate = |store: Option<&Path>| {
        let mut cmd = std::process::Command::new(tandem_bin());
        cmd.args(["validate", "-c"]).arg(&cfg).env_remove("SSL_CERT_DIR").env_remove("SSL_CERT_FILE");
        if let Some(file) = store {
            // rustls-native-certs reads the system store from here when it is set.
            cmd.env("SSL_CERT_FILE", file);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    // The test CA is in no system store: both connections fail verification.
    let (code, out) = validate(None);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("certificate verify failed") && out.contains("operating system's certificate store"), "{out}");
    // With the test CA as the system store, both verify (host name included).
    let (code, out) = validate(Some(&s.certs.ca_cert));
    assert!(code != Some(2) && !out.contains("cannot connect"), "validate connects with verify-full and no ca_file: {code:?}\n{out}");
}
