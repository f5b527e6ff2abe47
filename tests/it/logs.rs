//! What `tandem` writes on stderr when it is not a terminal (a file, the
//! journal): no ANSI colour codes; with `--log-format json` every line is a
//! JSON object, the command's closing error included; that error printed once.

use super::util::*;
use crate::support;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `tandem run` against a Postgres port nobody listens on, stderr to a
/// file, until it has logged `lines` lines; then SIGTERM. Returns the log.
fn run_unreachable(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = dir.join("unreachable.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pipeline]\nname = \"logs\"\n[postgres]\nurl = \"postgresql://tandem@127.0.0.1:{port}/app\"\ntls = \"disable\"\n\
             [mysql]\nurl = \"mysql://tandem@127.0.0.1:{port}/app\"\nserver_id = 4001\ntls = \"disable\"\n\
             [[pairs]]\nname = \"t\"\npostgres = \"public.t\"\nmysql = \"app.t\"\n"
        ),
    )
    .unwrap();
    let log = dir.join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(tandem_bin());
    cmd.arg("run").arg("-c").arg(&cfg).args(extra).stdout(std::process::Stdio::null()).stderr(file).env_remove("NO_COLOR").env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(&log).unwrap_or_default().lines().count() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "tandem run logged nothing: {}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).0, Some(0));
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn a_log_redirected_to_a_file_holds_no_ansi_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_unreachable(dir.path(), &["--log-level", "debug"], &[]);
    assert!(log.contains("DEBUG") || log.contains("INFO") || log.contains("WARN"), "the log has level words: {log}");
    assert!(!log.contains('\x1b'), "escape codes in a redirected log:\n{log:?}");
}

#[test]
fn with_log_format_json_every_line_of_a_redirected_log_is_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_unreachable(dir.path(), &["--log-format", "json", "--log-level", "debug"], &[]);
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(v["level"].is_string(), "{line}");
    }
    assert!(!log.contains('\x1b'), "{log:?}");
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect()
}

#[test]
fn a_command_error_is_one_json_object_with_log_format_json_and_one_line_without() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.toml");
    let out = Command::new(tandem_bin()).args(["--log-format", "json", "validate", "-c"]).arg(&absent).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["command"], "tandem validate");
    assert!(v["error"].as_str().unwrap().contains("absent.toml"), "{v}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[pipeline]\nname = \"Bad Name\"\n").unwrap();
    let out = Command::new(tandem_bin()).args(["run", "--log-format", "json", "-c"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "a multi-line config error is one JSON line: {lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(v["error"].as_str().unwrap().contains("pipeline.name"), "{v}");

    let out = Command::new(tandem_bin()).args(["validate", "-c"]).arg(&absent).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.starts_with("tandem validate: invalid config ") && !text.contains('{'), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_of_tandem_run_is_printed_once() {
    let db = support::fresh_db("fatal_once").await;
    // Never initialised: run stops at once, the state schema does not exist.
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"t\"\npostgres = \"public.t\"\nmysql = \"{}.t\"\n", db.name));
    for format in ["text", "json"] {
        let out = Command::new(tandem_bin()).args(["run", "--log-format", format, "-c"]).arg(&cfg).env_remove("RUST_LOG").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("does not exist")).collect();
        assert_eq!(lines.len(), 1, "the fatal error is printed once ({format}):\n{stderr}");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
            assert_eq!((v["level"].as_str(), v["command"].as_str()), (Some("ERROR"), Some("tandem")), "{v}");
            assert!(stderr.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "every line is JSON:\n{stderr}");
        } else {
            assert!(lines[0].starts_with("tandem: "), "{stderr}");
        }
    }
}
