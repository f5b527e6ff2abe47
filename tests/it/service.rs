//! `tandem run` as a service, with the real binary: systemd notifications
//! (READY=1 once both directions stream, WATCHDOG=1, STOPPING=1 on SIGTERM),
//! the HTTP endpoint (`/metrics` as Prometheus text with the applied counts,
//! `/health`, `/status`), `tandem status` with and without a running service
//! (positions, quarantined counts), no password in any output, `/health`
//! turning 503 while MariaDB is down, and the docker sample's SQL and config.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tandem::testbed::{free_port, MariaDb, MariaOptions};

const SQL: &str = "SELECT id, n, note FROM counters ORDER BY id";

fn pair(db: &str) -> String {
    format!("[[pairs]]\nname = \"counters\"\npostgres = \"public.counters\"\nmysql = \"{db}.counters\"\n")
}

async fn counters_table(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn) {
    pg.batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL, note text)").await.unwrap();
    my.query_drop("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)").await.unwrap();
}

fn metrics_section(addr: SocketAddr) -> String {
    format!("[metrics]\nlisten = \"{addr}\"\n")
}

fn local_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()))
}

async fn http(addr: SocketAddr, path: &str) -> (u16, String) {
    tandem::service::http::get(addr, path, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls `GET path` until `ok(status, body)`, panicking with the last answer after `limit`.
async fn http_until(addr: SocketAddr, path: &str, limit: Duration, ok: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let t0 = Instant::now();
    let mut last = (0, String::from("no answer"));
    while t0.elapsed() < limit {
        if let Ok(r) = tandem::service::http::get(addr, path, Duration::from_secs(5)).await {
            if ok(r.0, &r.1) {
                return r;
            }
            last = r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("GET {path} did not get there in {limit:?}; last answer {}: {}", last.0, last.1);
}

/// A Prometheus sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks the Prometheus text format: every line is a comment, blank, or
/// `name{label="value",...} value`. Returns the samples.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}"))),
            None => (series, ""),
        };
        let mut chars = name.chars();
        assert!(
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut parsed = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
            assert!(!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name in {line:?}");
            let mut v = String::new();
            let mut it = after.char_indices();
            let end = loop {
                match it.next() {
                    Some((_, '\\')) => v.push(it.next().map(|(_, c)| c).unwrap_or('\\')),
                    Some((i, '"')) => break i,
                    Some((_, c)) => v.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            parsed.push((k.to_string(), v));
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        samples.push((name.to_string(), parsed, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, ls, _)| n == name && labels.iter().all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.2)
}

/// Reads the notify socket continuously, as systemd does (its queue holds
/// only a few datagrams), into a channel.
fn drain(sock: tokio::net::UnixDatagram) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf).await {
            if tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Receives notifications until one contains `needle`; keeps all received so far in `got`.
async fn notified(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, got: &mut Vec<String>, needle: &str, limit: Duration, log: &Path) {
    let t0 = Instant::now();
    while !got.iter().any(|m| m.lines().any(|l| l == needle)) {
        let left = limit.checked_sub(t0.elapsed()).unwrap_or_default();
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => panic!("notify socket closed"),
            Err(_) => panic!("no {needle} within {limit:?}; got {got:?}; log:\n{}", std::fs::read_to_string(log).unwrap_or_default()),
        }
    }
}

/// Drops the test's replication slot once tandem has exited: the shared
/// Postgres has a limited number of slots for the whole test process.
async fn release_slot(pg: &tokio_postgres::Client) {
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
        .await
        .unwrap_or_else(|e| panic!("dropping the slot: {e}"));
}

/// `tandem status` with the real binary: (exit code, stdout, stderr).
fn status_cli(cfg: &Path, format: &str, envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(tandem_bin()).args(["status", "--format", format, "-c"]).arg(cfg).envs(envs.iter().copied()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_once_both_directions_stream_and_stopping_on_sigterm_and_exit_is_0_within_5s() {
    let db = support::fresh_db("sd_notify").await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    counters_table(&pg, &mut my).await;
    let cfg = db.write_config(&pair(&db.name));
    init_cli(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let mut sock = drain(tokio::net::UnixDatagram::bind(&sock_path).unwrap());
    let log = dir.path().join("run.log");
    let notify_socket = sock_path.to_str().unwrap().to_string();
    let mut child = spawn_run(&cfg, &log, &[("NOTIFY_SOCKET", &notify_socket), ("WATCHDOG_USEC", "1000000")], &[]);

    let mut got = Vec::new();
    notified(&mut sock, &mut got, "READY=1", Duration::from_secs(60), &log).await;
    let ready = got.iter().find(|m| m.lines().any(|l| l == "READY=1")).unwrap();
    assert!(ready.contains("STATUS=postgres→mysql: streaming") && ready.contains("mysql→postgres: streaming"), "{ready}");
    // Streaming for real: a row from each side arrives on the other.
    pg.batch_execute("INSERT INTO counters VALUES (1, 0, 'from postgres')").await.unwrap();
    my.query_drop("INSERT INTO counters VALUES (2, 0, 'from mariadb')").await.unwrap();
    wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(30)).await;
    notified(&mut sock, &mut got, "WATCHDOG=1", Duration::from_secs(5), &log).await;

    // A light write load while SIGTERM arrives.
    let pg_url = db.pg_url.clone();
    let writer = tokio::spawn(async move {
        let (c, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        for i in 0..300 {
            let _ = c.execute("INSERT INTO counters VALUES ($1, 0, 'load')", &[&(100 + i)]).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(&child, libc::SIGTERM);
    let t0 = Instant::now();
    notified(&mut sock, &mut got, "STOPPING=1", Duration::from_secs(5), &log).await;
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    let took = took.max(t0.elapsed());
    assert_eq!(code, Some(0), "log: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let ready_at = got.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping_at = got.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(ready_at < stopping_at && got.iter().filter(|m| m.contains("READY=1")).count() == 1, "{got:?}");
    writer.await.unwrap();
    release_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_status_and_the_status_command_report_both_directions_and_never_a_password() {
    let db = support::fresh_db("svc_http").await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    counters_table(&pg, &mut my).await;
    my.query_drop("ALTER TABLE counters MODIFY note VARCHAR(8)").await.unwrap();
    let servers = support::servers();
    let addr = local_addr();
    // Log in as the SCRAM-only role and the MariaDB password user, passwords in the environment only.
    let text = db
        .config_toml(&format!("{}\n{}", metrics_section(addr), pair(&db.name)))
        .replace(&db.pg_url, &format!("postgresql://{}@127.0.0.1:{}/{}", support::SCRAM_USER, servers.pg.port(), db.name))
        .replace(&db.my_url, &format!("mysql://{}@127.0.0.1:{}/{}", support::MY_PASSWORD_USER, servers.my.port(), db.name));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("svc.toml");
    std::fs::write(&cfg, text).unwrap();
    let env = [("TANDEM_POSTGRES_PASSWORD", support::SCRAM_PASSWORD), ("TANDEM_MYSQL_PASSWORD", support::MY_PASSWORD)];
    let init = std::process::Command::new(tandem_bin()).args(["init", "-c"]).arg(&cfg).envs(env).output().unwrap();
    assert!(init.status.success(), "init: {}", String::from_utf8_lossy(&init.stderr));

    // Before `run`: the databases alone, the live endpoint not answering.
    let (code, before, err) = status_cli(&cfg, "json", &env);
    assert_eq!(code, Some(0), "{before}{err}");
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert!(before["live"]["status"].is_null() && before["live"]["error"].is_string(), "{before}");
    assert!(before["directions"][1]["checkpoint"].is_string(), "init records the mysql→postgres start: {before}");

    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &env, &["--log-level", "debug"]);
    http_until(addr, "/health", Duration::from_secs(60), |c, _| c == 200).await;

    const FROM_PG: i64 = 137;
    const FROM_MY: i64 = 41;
    pg.batch_execute(&format!("INSERT INTO counters SELECT g, 0, 'pg' FROM generate_series(1, {FROM_PG}) g")).await.unwrap();
    for i in 0..FROM_MY {
        my.query_drop(format!("INSERT INTO counters VALUES ({}, 0, 'my')", 10_000 + i)).await.unwrap();
    }
    let rows = wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(60)).await;
    assert_eq!(rows.len() as i64, FROM_PG + FROM_MY);

    let applied = |body: &str, direction: &str| {
        sample(&parse_prometheus(body), "tandem_changes_applied_total", &[("direction", direction), ("pair", "counters"), ("op", "insert")])
    };
    let (_, metrics) = http_until(addr, "/metrics", Duration::from_secs(10), |c, b| {
        // Each side's stream also carries tandem's writes of the other direction, read a moment later.
        let echoes = |d| sample(&parse_prometheus(b), "tandem_echo_suppressed_total", &[("direction", d)]).unwrap_or(0.0);
        c == 200
            && applied(b, "postgres_to_mysql") == Some(FROM_PG as f64)
            && applied(b, "mysql_to_postgres") == Some(FROM_MY as f64)
            && echoes("postgres_to_mysql") >= 1.0
            && echoes("mysql_to_postgres") >= 1.0
    })
    .await;
    let samples = parse_prometheus(&metrics);
    for &(name, _) in tandem::metrics::ALL {
        assert!(metrics.contains(&format!("# HELP {name} ")), "{name} is described:\n{metrics}");
    }
    for d in ["mysql_to_postgres", "postgres_to_mysql"] {
        // Each side's stream carries tandem's writes of the other direction: dropped and counted.
        assert!(sample(&samples, "tandem_echo_suppressed_total", &[("direction", d)]).is_some_and(|n| n >= 1.0), "echoes counted for {d}: {metrics}");
        assert_eq!(sample(&samples, "tandem_direction_up", &[("direction", d)]), Some(1.0), "{metrics}");
        assert!(sample(&samples, "tandem_last_applied_commit_timestamp_seconds", &[("direction", d)]).is_some_and(|t| t > 1.7e9), "{metrics}");
        assert!(sample(&samples, "tandem_lag_seconds", &[("direction", d)]).is_some_and(|l| (0.0..30.0).contains(&l)), "{metrics}");
    }
    assert_eq!(sample(&samples, "tandem_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0), "{metrics}");
    let (code, alive) = http(addr, "/health/live").await;
    assert_eq!(code, 200, "{alive}");
    let (code, ready) = http(addr, "/health/ready").await;
    assert_eq!(code, 200, "{ready}");
    let check = std::process::Command::new(tandem_bin()).args(["status", "--check", "-c"]).arg(&cfg).envs(env).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "ready: {}", String::from_utf8_lossy(&check.stdout));
    assert!(samples.iter().any(|s| s.0 == "tandem_apply_seconds_count"), "{metrics}");

    let (code, health) = http(addr, "/health").await;
    assert_eq!(code, 200, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");

    let (code, live) = http(addr, "/status").await;
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(doc["healthy"], true, "{live}");
    for (i, (key, n)) in [("postgres_to_mysql", FROM_PG), ("mysql_to_postgres", FROM_MY)].into_iter().enumerate() {
        let d = &doc["directions"][i];
        assert_eq!(d["direction"], key);
        assert_eq!(d["state"], "streaming");
        assert_eq!(d["applied"], n, "{live}");
        assert!(d["position"].is_string(), "{live}");
        assert!(d["lag_seconds"].is_number(), "{live}");
        assert_eq!(d["paused_pairs"], serde_json::json!([]));
        assert!(d["last_error"].is_null(), "{live}");
    }

    let (code, json, err) = status_cli(&cfg, "json", &env);
    assert_eq!(code, Some(0), "{json}{err}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    for d in report["directions"].as_array().unwrap() {
        assert!(d["checkpoint"].is_string() && d["source_position"].is_string(), "{json}");
        assert!(d["approx_lag_seconds"].is_number() && d["open_conflicts"] == 0 && d["quarantined"] == 0, "{json}");
    }
    assert!(report["postgres"]["slot"]["active"] == true && report["postgres"]["slot"]["retained_wal_bytes"].is_number(), "{json}");
    assert_eq!(report["live"]["status"]["directions"][0]["applied"], FROM_PG, "{json}");
    let (code, text, err) = status_cli(&cfg, "text", &env);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(text.contains("postgres→mysql") && text.contains("mysql→postgres") && text.contains("healthy"), "{text}");

    // A change MariaDB rejects is quarantined: counted live and in the table.
    pg.batch_execute("INSERT INTO counters VALUES (5000, 0, 'much too long for VARCHAR(8)')").await.unwrap();
    http_until(addr, "/status", Duration::from_secs(30), |_, b| {
        serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| v["directions"][0]["quarantined"] == 1)
    })
    .await;
    let (code, json_q, err) = status_cli(&cfg, "json", &env);
    assert_eq!(code, Some(0), "{json_q}{err}");
    let report: serde_json::Value = serde_json::from_str(&json_q).unwrap();
    assert_eq!(report["directions"][0]["quarantined"], 1, "{json_q}");
    assert_eq!(report["directions"][1]["quarantined"], 0, "{json_q}");
    // The gauges of what needs an operator: current sizes, per pair.
    let gauges = |b: &str| {
        let s = parse_prometheus(b);
        (
            sample(&s, "tandem_quarantine_rows", &[("direction", "postgres_to_mysql"), ("pair", "counters")]),
            sample(&s, "tandem_quarantine_rows", &[("direction", "mysql_to_postgres"), ("pair", "counters")]),
            sample(&s, "tandem_conflicts_open", &[("pair", "counters")]),
            sample(&s, "tandem_parked_rows", &[("direction", "postgres_to_mysql"), ("pair", "counters")]),
            sample(&s, "tandem_source_bytes_behind", &[("direction", "postgres_to_mysql")]),
            sample(&s, "tandem_source_bytes_behind", &[("direction", "mysql_to_postgres")]),
            sample(&s, "tandem_slot_retained_wal_bytes", &[]),
        )
    };
    let sized = |b: &str| {
        let g = gauges(b);
        g.0 == Some(1.0) && g.1 == Some(0.0) && g.2 == Some(0.0) && g.3 == Some(0.0) && g.4.is_some() && g.5.is_some() && g.6.is_some()
    };
    http_until(addr, "/metrics", Duration::from_secs(30), |c, b| c == 200 && sized(b)).await;

    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
    let check = std::process::Command::new(tandem_bin()).args(["status", "--check", "-c"]).arg(&cfg).envs(env).output().unwrap();
    assert_eq!(check.status.code(), Some(1), "not running is not ready: {}", String::from_utf8_lossy(&check.stdout));
    // Right after a restart, before anything new happens, the sizes are back.
    let mut child = spawn_run(&cfg, &log, &env, &[]);
    http_until(addr, "/metrics", Duration::from_secs(30), |c, b| c == 200 && sized(b)).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
    let (code, after, err) = status_cli(&cfg, "text", &env);
    assert_eq!(code, Some(0), "status works without a running service: {after}{err}");

    let logged = std::fs::read_to_string(&log).unwrap() + &String::from_utf8_lossy(&init.stderr) + &String::from_utf8_lossy(&init.stdout);
    assert!(logged.contains("streaming"), "{logged}");
    let everything = [logged, metrics, live, json, json_q, text, after, err].join("\n");
    for secret in [support::SCRAM_PASSWORD, support::MY_PASSWORD] {
        assert!(!everything.contains(secret), "a password appears in a log line, /metrics, /status or `tandem status`");
    }
    release_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_naming_the_direction_while_mariadb_is_down_and_200_after_it_returns() {
    let db = support::fresh_db("svc_health").await;
    let maria = MariaDb::start(MariaOptions::default()).await.unwrap_or_else(|e| panic!("{e}"));
    maria.create_database(&db.name).await.unwrap();
    let pg = db.pg().await;
    let mut my = maria.connect(&db.name).await.unwrap();
    counters_table(&pg, &mut my).await;
    let addr = local_addr();
    let text = db.config_toml(&format!("{}\n{}", metrics_section(addr), pair(&db.name))).replace(&db.my_url, &maria.url(&db.name));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("health.toml");
    std::fs::write(&cfg, text).unwrap();
    init_cli(&cfg);
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &[], &[]);
    http_until(addr, "/health", Duration::from_secs(60), |c, _| c == 200).await;
    drop(my);

    maria.stop().unwrap();
    let (_, body) = http_until(addr, "/health", Duration::from_secs(30), |c, _| c == 503).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("mysql→postgres") || reason.contains("postgres→mysql"), "the reason names a direction: {body}");
    let (code, status) = http(addr, "/status").await;
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(doc["directions"].as_array().unwrap().iter().any(|d| d["last_error"]["message"].is_string()), "{status}");
    assert!(child.try_wait().unwrap().is_none(), "tandem keeps running through the outage");

    maria.restart().await.unwrap();
    http_until(addr, "/health", Duration::from_secs(90), |c, _| c == 200).await;
    pg.batch_execute("INSERT INTO counters VALUES (7, 7, 'after the outage')").await.unwrap();
    let mut my = maria.connect(&db.name).await.unwrap();
    wait_equal(&pg, SQL, &mut my, SQL, Duration::from_secs(60)).await;
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    release_slot(&pg).await;
}

/// The docker sample (docker/init/*.sql, docker/tandem.toml) with its
/// least-privilege accounts, on the throwaway servers: validate, init, and
/// both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_sample_config_and_accounts_replicate_both_ways() {
    const DEMO_PASSWORD: &str = "tandem-demo-pw";
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker");
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("docker/{f}: {e}"));
    let compose = read("compose.yaml");
    assert_eq!(compose.matches(DEMO_PASSWORD).count(), 2, "compose.yaml passes the init scripts' password to tandem");
    let db = support::fresh_db("docker_sample").await;
    let pg = db.pg().await;
    pg.batch_execute(&read("init/postgres.sql")).await.unwrap_or_else(|e| panic!("init/postgres.sql: {e}"));
    let mut my = db.my().await;
    my.query_drop(read("init/mariadb.sql").replace("`app`", &format!("`{}`", db.name))).await.unwrap_or_else(|e| panic!("init/mariadb.sql: {e}"));

    let servers = support::servers();
    let addr = local_addr();
    let text = read("tandem.toml")
        .replace("name = \"demo\"", &format!("name = \"{}\"", db.name))
        .replace("postgres:5432/app", &format!("127.0.0.1:{}/{}", servers.pg.port(), db.name))
        .replace("mariadb:3306/app", &format!("127.0.0.1:{}/{}", servers.my.port(), db.name))
        .replace("server_id = 4001", &format!("server_id = {}", db.server_id))
        .replace("\"app.customers\"", &format!("\"{}.customers\"", db.name))
        .replace("0.0.0.0:9187", &addr.to_string());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tandem.toml");
    std::fs::write(&cfg, text).unwrap();
    let env = [("TANDEM_POSTGRES_PASSWORD", DEMO_PASSWORD), ("TANDEM_MYSQL_PASSWORD", DEMO_PASSWORD)];
    for cmd in ["init", "validate"] {
        let out = std::process::Command::new(tandem_bin()).args([cmd, "-c"]).arg(&cfg).envs(env).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "tandem {cmd}: {said}");
    }
    let log = dir.path().join("run.log");
    let mut child = spawn_run(&cfg, &log, &env, &[]);
    http_until(addr, "/health", Duration::from_secs(60), |c, _| c == 200).await;
    let sql = "SELECT id, name, email, loyalty_points FROM customers ORDER BY id";
    pg.batch_execute("INSERT INTO customers (id, name, email) VALUES (4, 'Barbara Liskov', 'barbara@example.com')").await.unwrap();
    my.query_drop("UPDATE customers SET loyalty_points = loyalty_points + 5, updated_at = UTC_TIMESTAMP(6) WHERE id = 2").await.unwrap();
    let rows = wait_equal(&pg, sql, &mut my, sql, Duration::from_secs(30)).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][3].as_deref(), Some("85"));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    release_slot(&pg).await;
}
