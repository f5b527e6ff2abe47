//! `tandem validate`: the preflight. Reports every problem at once, each
//! naming the object and what to change — one `PROBLEM <object>: <change>`
//! line each (`--format json`: the same findings as objects), plus
//! `WARNING` lines (accepted, but values may be quarantined at run time) and
//! `INFO` lines that need no action. The CLI exits 0 when all hold (`Report::ok`),
//! 1 when problems were found, 2 when it could not run (config unreadable,
//! a server unreachable: `report` returns `Err`).
//!
//! Submodules: `postgres` (wal_level, slots and WAL senders, the role's
//! REPLICATION attribute, publication, slot, replication origin, state
//! schema), `mysql` (binlog settings, server ids, GTID settings, the
//! account's grants, state database), `pairs` (tables, keys, mapped columns,
//! generated columns, table privileges, and every column's type pair),
//! `keys` (key generators of both sides that can collide, or that would
//! produce keys already present), with `types::judge` (DESIGN.md §10, by
//! value range: `ranges`, `fixes`) and `grants` (SHOW GRANTS parsing);
//! `sessions` (what the apply sessions do about destination triggers and
//! foreign keys, and the triggers of every mapped table).
//! A check whose query fails is itself reported as a problem, so one denied
//! catalog read never hides the other findings. `offline` (`--offline`)
//! checks the config and its files without connecting.

mod fixes;
pub mod grants;
mod keys;
mod mysql;
pub mod offline;
mod pairs;
mod postgres;
pub mod ranges;
mod sessions;
pub mod types;

pub use types::{supported, MyType, PgType};

/// One problem found by the preflight: `object` names what is wrong
/// (`postgres wal_level`, `pair customers column email`, ...), `problem`
/// says what is wrong and what to change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub object: String,
    pub problem: String,
}

/// Something worth knowing that needs no action (generated columns that are
/// skipped, objects `tandem init` will create, GTID settings, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    pub object: String,
    pub info: String,
}

/// Something accepted that may still cost the operator data at run time
/// (values of a narrowing type pair that go to the quarantine, triggers
/// that fire on replicated rows): no action needed for validate to pass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub object: String,
    pub warning: String,
}

/// Everything the preflight found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub problems: Vec<Finding>,
    pub warnings: Vec<Warning>,
    pub info: Vec<Note>,
}

impl Report {
    pub fn problem(&mut self, object: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(Finding { object: object.into(), problem: problem.into() });
    }
    pub fn warning(&mut self, object: impl Into<String>, warning: impl Into<String>) {
        self.warnings.push(Warning { object: object.into(), warning: warning.into() });
    }
    pub fn info(&mut self, object: impl Into<String>, info: impl Into<String>) {
        self.info.push(Note { object: object.into(), info: info.into() });
    }
    /// A check that could not run is a problem: it names the check and the error.
    fn could_not(&mut self, object: impl Into<String>, error: impl std::fmt::Display) {
        self.problem(object, format!("could not be checked: {error}"));
    }
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> String {
    crate::Error::from(e).to_string()
}

pub(crate) fn my_err(e: mysql_async::Error) -> String {
    crate::Error::from(e).to_string()
}

/// How long a server may take to accept the login before validate gives up (exit 2).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs every check; `Err` means the preflight could not run at all (a
/// server unreachable or refusing the login).
pub async fn report(cfg: &crate::config::Config) -> Result<Report, String> {
    let (pg_ep, my_ep) = (&cfg.postgres.endpoint, &cfg.mysql.endpoint);
    let no_answer = |side: &str, ep: &crate::config::Endpoint| {
        format!("cannot connect to {side} {}: no answer within {} s", ep.describe(), CONNECT_TIMEOUT.as_secs())
    };
    let pg = tokio::time::timeout(CONNECT_TIMEOUT, crate::db::connect_pg(pg_ep))
        .await
        .map_err(|_| no_answer("postgres", pg_ep))?
        .map_err(|e| format!("cannot connect to postgres {}: {e}", pg_ep.describe()))?;
    let mut my = tokio::time::timeout(CONNECT_TIMEOUT, crate::db::connect_mysql(my_ep))
        .await
        .map_err(|_| no_answer("mysql", my_ep))?
        .map_err(|e| format!("cannot connect to mysql {}: {e}", my_ep.describe()))?;
    let mut report = Report::default();
    let pg_facts = postgres::check(&pg, cfg, &mut report).await;
    let my_facts = mysql::check(&mut my, cfg, &pg_facts, &mut report).await;
    pairs::check(cfg, &pg, &mut my, &pg_facts, &my_facts, &mut report).await;
    sessions::check(cfg, &pg, &mut my, &mut report).await;
    keys::check(cfg, &pg, &mut my, &mut report).await;
    let _ = my.disconnect().await;
    Ok(report)
}

/// The problems only (empty = all checks hold); `Err` when the preflight
/// could not run.
pub async fn findings(cfg: &crate::config::Config) -> Result<Vec<Finding>, String> {
    Ok(report(cfg).await?.problems)
}

/// How tandem recognises its own writes on each side (DESIGN §2).
pub async fn echo_mechanism(cfg: &crate::config::Config) -> String {
    let mysql = match crate::db::connect_mysql(&cfg.mysql.endpoint).await {
        Ok(mut conn) => {
            let s = match crate::apply::mysql::choose_echo(&mut conn, cfg).await {
                Ok(crate::apply::mysql::EchoMark::MarkerRow) => format!("marker row {}.origin_marker first in every transaction", cfg.state_schema),
                Ok(crate::apply::mysql::EchoMark::ServerId(id)) => format!("session server_id {id} on every binlog event"),
                Err(e) => format!("unavailable: {e}"),
            };
            let _ = conn.disconnect().await;
            s
        }
        Err(e) => format!("unknown (cannot connect: {e})"),
    };
    format!("postgres: replication origin {} (pgoutput Origin message); mysql: {mysql}", cfg.origin_name())
}

/// The text report: INFO lines, WARNING lines, one PROBLEM line per problem, a summary.
pub fn render_text(report: &Report, echo: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("INFO echo suppression: {echo}\n"));
    for n in &report.info {
        out.push_str(&format!("INFO {}: {}\n", n.object, one_line(&n.info)));
    }
    for w in &report.warnings {
        out.push_str(&format!("WARNING {}: {}\n", w.object, one_line(&w.warning)));
    }
    for f in &report.problems {
        out.push_str(&format!("PROBLEM {}: {}\n", f.object, one_line(&f.problem)));
    }
    let w = report.warnings.len();
    let warned = if w == 0 { String::new() } else { format!(" ({w} warning{})", if w == 1 { "" } else { "s" }) };
    if report.ok() {
        out.push_str(&format!("validate: all checks passed{warned}\n"));
    } else {
        let n = report.problems.len();
        out.push_str(&format!("validate: {n} problem{} found{warned}\n", if n == 1 { "" } else { "s" }));
    }
    out
}

/// The JSON report: `{"ok", "problems": [{object, problem}], "warnings": [{object, warning}], "info": [{object, info}], "echo"}`.
pub fn render_json(report: &Report, echo: &str) -> serde_json::Value {
    serde_json::json!({ "ok": report.ok(), "problems": report.problems, "warnings": report.warnings, "info": report.info, "echo": echo })
}

/// Server error texts may span lines; a finding is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_carry_the_same_problems() {
        let mut r = Report::default();
        r.problem("postgres wal_level", "is replica;\n  set wal_level = logical and restart");
        r.problem("pair p column c", "postgres integer[] ↔ mysql text: arrays are not supported");
        r.info("pair p column g", "skipped: generated on mysql");
        r.warning("pair p column n", "MySQL refuses Postgres values outside 0 to 255");
        let text = render_text(&r, "x");
        assert!(text.contains("WARNING pair p column n: MySQL refuses"), "{text}");
        let problem_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("PROBLEM ")).collect();
        assert_eq!(problem_lines, vec![
            "PROBLEM postgres wal_level: is replica; set wal_level = logical and restart",
            "PROBLEM pair p column c: postgres integer[] ↔ mysql text: arrays are not supported",
        ]);
        assert!(text.contains("INFO pair p column g: skipped: generated on mysql"));
        assert!(text.ends_with("validate: 2 problems found (1 warning)\n"), "{text}");
        assert_eq!(render_json(&r, "x")["warnings"][0]["object"], "pair p column n");
        let json = render_json(&r, "x");
        assert_eq!(json["ok"], false);
        assert_eq!(json["problems"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["problems"][1]["object"], "pair p column c");
        assert_eq!(json["info"][0]["info"], "skipped: generated on mysql");
        assert!(render_text(&Report::default(), "x").ends_with("validate: all checks passed\n"));
    }
}
