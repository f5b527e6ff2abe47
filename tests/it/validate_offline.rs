//! `tandem validate --offline` through the binary, with both databases
//! unreachable (ports nobody listens on): 0 on a valid config, 1 naming
//! every problem of a bad one, 2 when the file cannot be read; and
//! `TANDEM_CONFIG` in place of `-c`.

use super::util::tandem_bin;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn good_config() -> String {
    format!(
        "[pipeline]\nname = \"offline\"\n\
         [postgres]\nurl = \"postgresql://tandem@127.0.0.1:{}/app\"\n\
         [mysql]\nurl = \"mysql://tandem@127.0.0.1:{}/app\"\nserver_id = 4001\n\
         [[pairs]]\nname = \"customers\"\npostgres = \"public.customers\"\nmysql = \"app.customers\"\n",
        closed_port(),
        closed_port()
    )
}

fn validate_offline(cfg: &Path, extra: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = Command::new(tandem_bin()).args(["validate", "--offline"]).args(extra).arg("-c").arg(cfg).env_remove("TANDEM_CONFIG").output().unwrap();
    (out, t0.elapsed())
}

fn show(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn validate_offline_passes_a_good_config_with_both_databases_down() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("good.toml");
    std::fs::write(&cfg, good_config()).unwrap();
    let (out, took) = validate_offline(&cfg, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("validate: all checks passed") && stdout.contains("INFO offline: config valid (1 pair)"), "{}", show(&out));
    assert!(took < Duration::from_secs(5), "no connection is tried: took {took:?}");
    // Without --offline the same config cannot run: nothing listens (exit 2).
    let online = Command::new(tandem_bin()).arg("validate").arg("-c").arg(&cfg).output().unwrap();
    assert_eq!(online.status.code(), Some(2), "{}", show(&online));

    let (out, _) = validate_offline(&cfg, &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    assert_eq!((json["ok"].as_bool(), out.status.code()), (Some(true), Some(0)), "{json}");
}

#[test]
fn validate_offline_exits_1_naming_every_problem_of_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    let text = good_config()
        .replace("server_id = 4001\n", "server_id = 4001\ntls = \"verify-full\"\nca_file = \"missing-ca.pem\"\n")
        .replace("name = \"customers\"", "name = \"customers\"\ndefault_owner = \"everyone\"\non_conflict = \"last-writer-wins\"");
    std::fs::write(&cfg, text).unwrap();
    let (out, _) = validate_offline(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in ["pairs[0].default_owner", "pairs[0].timestamp_column"] {
        assert!(stdout.lines().any(|l| l.starts_with("PROBLEM config ") && l.contains(key)), "{key} named: {}", show(&out));
    }
    // A config that loads but names a TLS file that is not there.
    let cfg2 = dir.path().join("bad-tls.toml");
    std::fs::write(&cfg2, good_config().replace("server_id = 4001\n", "server_id = 4001\ntls = \"verify-full\"\nca_file = \"missing-ca.pem\"\n")).unwrap();
    let (out, _) = validate_offline(&cfg2, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("PROBLEM mysql tls:") && l.contains("missing-ca.pem")), "{}", show(&out));
}

#[test]
fn validate_offline_exits_2_when_the_file_cannot_be_read_and_takes_tandem_config() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = validate_offline(&dir.path().join("absent.toml"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("tandem validate: cannot read "), "{}", show(&out));

    let bad = dir.path().join("env-bad.toml");
    std::fs::write(&bad, "[pipeline]\nname = \"Bad Name\"\n").unwrap();
    let out = Command::new(tandem_bin()).args(["validate", "--offline"]).env("TANDEM_CONFIG", &bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("PROBLEM config {} pipeline.name", bad.display())), "{}", show(&out));
    let good = dir.path().join("env-good.toml");
    std::fs::write(&good, good_config()).unwrap();
    let out = Command::new(tandem_bin()).args(["validate", "--offline", "-c"]).arg(&good).env("TANDEM_CONFIG", &bad).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "-c wins over TANDEM_CONFIG: {}", show(&out));
}
