//! Tests of config parsing and validation: every key of DESIGN §5, errors that
//! name the file, the key and what is expected, and secrets redacted.

use super::*;
use std::path::Path;

const GOOD: &str = r#"
[pipeline]
name = "crm"

[postgres]
url = "postgresql://tandem@127.0.0.1:5432/app"

[mysql]
url = "mysql://tandem:s3cr%40t@127.0.0.1:3306/app"
server_id = 4001

[[pairs]]
name = "customers"
postgres = "public.customers"
mysql = "app.customers"
default_owner = "both"
on_conflict = "last-writer-wins"
timestamp_column = "updated_at"

[pairs.columns]
email = "postgres"
phone = { owner = "mysql", mysql = "phone_number" }
"#;

fn parse_with_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    let read = |p: &Path| std::fs::read_to_string(p);
    parse(text, Path::new("/etc/tandem/t.toml"), &Inputs { env: &lookup, read_file: &read })
}

fn problem_keys(text: &str) -> Vec<String> {
    let err = parse_with_env(text, &[]).unwrap_err();
    err.problems.into_iter().map(|p| p.key).collect()
}

#[test]
fn good_config_parses_with_defaults() {
    let c = parse_with_env(GOOD, &[("TANDEM_POSTGRES_PASSWORD", "pgpw")]).unwrap();
    assert_eq!(c.pipeline, "crm");
    assert_eq!(c.postgres.slot, "tandem_crm");
    assert_eq!(c.postgres.publication, "tandem_crm");
    assert_eq!(c.postgres.endpoint.password.as_ref().unwrap().expose(), "pgpw");
    assert_eq!(c.mysql.endpoint.password.as_ref().unwrap().expose(), "s3cr@t");
    assert_eq!(c.mysql.server_id, 4001);
    assert_eq!(c.apply.max_batch_rows, 10_000);
    assert_eq!(c.pairs[0].owner_of("email"), Owner::Postgres);
    assert_eq!(c.pairs[0].owner_of("phone"), Owner::Mysql);
    assert_eq!(c.pairs[0].owner_of("name"), Owner::Both);
    assert_eq!(c.pairs[0].canonical_from_mysql("phone_number"), "phone");
    assert_eq!(c.state_schema, "tandem");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let c = parse_with_env(GOOD, &[("TANDEM_POSTGRES_PASSWORD", "pgpw-very-secret")]).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("pgpw-very-secret"));
    assert!(!dbg.contains("s3cr@t"));
}

#[test]
fn unknown_key_is_named() {
    let text = GOOD.replace("server_id = 4001", "server_id = 4001\nserverid = 2");
    let err = parse_with_env(&text, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("serverid"), "{msg}");
    assert!(msg.contains("t.toml"), "{msg}");
}

#[test]
fn tls_keys_parse_and_a_client_cert_needs_its_key() {
    let text = GOOD.replace("server_id = 4001", "server_id = 4001\ntls = \"verify-full\"\nca_file = \"certs/ca.pem\"");
    let cfg = parse_with_env(&text, &[]).unwrap();
    assert_eq!(cfg.mysql.endpoint.tls, TlsMode::VerifyFull);
    assert_eq!(cfg.mysql.endpoint.ca_file.as_deref(), Some(Path::new("/etc/tandem/certs/ca.pem")));
    assert_eq!(cfg.postgres.endpoint.tls, TlsMode::Prefer, "default");
    let text = GOOD.replace("server_id = 4001", "server_id = 4001\nclient_cert = \"c.pem\"");
    assert_eq!(problem_keys(&text), vec!["mysql.client_key"]);
}

#[test]
fn bad_owner_value_is_named() {
    let text = GOOD.replace("email = \"postgres\"", "email = \"pg\"");
    assert_eq!(problem_keys(&text), vec!["pairs[0].columns.email"]);
}

#[test]
fn missing_postgres_url_is_named() {
    let text = GOOD.replace("url = \"postgresql://tandem@127.0.0.1:5432/app\"", "");
    assert_eq!(problem_keys(&text), vec!["postgres.url"]);
}

#[test]
fn last_writer_wins_requires_timestamp_column() {
    let text = GOOD.replace("timestamp_column = \"updated_at\"", "");
    assert_eq!(problem_keys(&text), vec!["pairs[0].timestamp_column"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = GOOD
        .replace("server_id = 4001", "server_id = 0")
        .replace("default_owner = \"both\"", "default_owner = \"everyone\"")
        .replace("name = \"crm\"", "name = \"Bad Name\"");
    let keys = problem_keys(&text);
    assert_eq!(keys, vec!["pipeline.name", "mysql.server_id", "pairs[0].default_owner"]);
}

#[test]
fn bad_url_message_does_not_echo_the_password() {
    let text = GOOD.replace("mysql://tandem:s3cr%40t@127.0.0.1:3306/app", "ftp://tandem:s3cr%40t@h/app");
    let err = parse_with_env(&text, &[]).unwrap_err().to_string();
    assert!(err.contains("mysql.url"), "{err}");
    assert!(!err.contains("s3cr"), "{err}");
}

#[test]
fn password_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "from-file\n").unwrap();
    let text = GOOD.replace(
        "url = \"postgresql://tandem@127.0.0.1:5432/app\"",
        &format!("url = \"postgresql://tandem@127.0.0.1:5432/app\"\npassword_file = {:?}", f.display().to_string()),
    );
    let c = parse_with_env(&text, &[]).unwrap();
    assert_eq!(c.postgres.endpoint.password.unwrap().expose(), "from-file");
}

#[test]
fn example_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml")).unwrap();
    parse_with_env(&text, &[]).unwrap();
}

#[test]
fn zero_dates_defaults_to_quarantine_accepts_null_and_names_a_bad_value() {
    let c = parse_with_env(GOOD, &[]).unwrap();
    assert_eq!(c.pairs[0].zero_dates, ZeroDates::Quarantine);
    let with = |v: &str| GOOD.replace("timestamp_column = \"updated_at\"", &format!("timestamp_column = \"updated_at\"\nzero_dates = \"{v}\""));
    assert_eq!(parse_with_env(&with("null"), &[]).unwrap().pairs[0].zero_dates, ZeroDates::Null);
    let err = parse_with_env(&with("zero"), &[]).unwrap_err();
    assert_eq!(err.problems.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), vec!["pairs[0].zero_dates"]);
    assert!(err.to_string().contains("quarantine, null"), "{err}");
}

#[test]
fn timeouts_default_sanely_parse_from_the_timeouts_table_and_refuse_a_zero() {
    let cfg = parse_with_env(GOOD, &[]).unwrap();
    assert_eq!(cfg.timeouts, Timeouts::default());
    assert_eq!(cfg.timeouts.heartbeat(), std::time::Duration::from_secs(1), "a quarter of 30 s, at most 1 s");
    let text = GOOD.replace("[[pairs]]", "[timeouts]\nstatement_seconds = 5\nlock_seconds = 0.5\nread_seconds = 2\nconnect_seconds = 3\n\n[[pairs]]");
    let t = parse_with_env(&text, &[]).unwrap().timeouts;
    assert_eq!((t.statement.as_secs_f64(), t.lock.as_secs_f64(), t.read.as_secs_f64(), t.connect.as_secs_f64()), (5.0, 0.5, 2.0, 3.0));
    assert_eq!(t.heartbeat(), std::time::Duration::from_millis(500));
    assert_eq!(t.apply_call(), std::time::Duration::from_secs(10), "statement + min(statement, 5 s)");
    let bad = GOOD.replace("[[pairs]]", "[timeouts]\nlock_seconds = 0\n\n[[pairs]]");
    assert_eq!(problem_keys(&bad), vec!["timeouts.lock_seconds".to_string()]);
    let unknown = GOOD.replace("[[pairs]]", "[timeouts]\nlock = 3\n\n[[pairs]]");
    assert!(parse_with_env(&unknown, &[]).is_err(), "unknown keys are refused");
}

#[test]
fn a_pair_replicates_both_ways_unless_direction_says_one_and_owners_on_the_silent_side_are_errors() {
    let c = parse_with_env(GOOD, &[]).unwrap();
    assert_eq!(c.pairs[0].direction, PairDirection::Both);
    assert!(c.pairs[0].direction.flows(Direction::PostgresToMysql) && c.pairs[0].direction.flows(Direction::MysqlToPostgres));
    let one_way = GOOD.replace("[pairs.columns]\nemail = \"postgres\"\n", "direction = \"mysql-to-postgres\"\n[pairs.columns]\n");
    let c = parse_with_env(&one_way, &[]).unwrap();
    assert_eq!(c.pairs[0].direction, PairDirection::MysqlToPostgres);
    assert!(c.pairs[0].direction.flows(Direction::MysqlToPostgres) && !c.pairs[0].direction.flows(Direction::PostgresToMysql));
    // A column owned by postgres would reach no side in a mysql-to-postgres pair.
    let contradictory = GOOD.replace("default_owner = \"both\"", "default_owner = \"both\"\ndirection = \"mysql-to-postgres\"");
    assert_eq!(problem_keys(&contradictory), vec!["pairs[0].columns.email".to_string()]);
    let rows = GOOD.replace("default_owner = \"both\"", "default_owner = \"mysql\"\ndirection = \"postgres-to-mysql\"");
    assert_eq!(problem_keys(&rows), vec!["pairs[0].default_owner".to_string(), "pairs[0].columns.phone".to_string()]);
    assert_eq!(problem_keys(&GOOD.replace("default_owner = \"both\"", "direction = \"sideways\"")), vec!["pairs[0].direction".to_string()]);
}
