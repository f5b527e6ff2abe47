//! `tandem validate --offline`: what can be checked without a database —
//! usable as `ExecStartPre=` or in CI before a config is deployed.
//!
//! It parses and validates the config file exactly as every command does
//! (every problem at once, each naming its key), reads the password file of
//! the source in use and the TLS files (`ca_file`, `client_cert`,
//! `client_key`) as a connection would, and lists the config's warnings.
//! Invariants: it never opens a connection or resolves a host name; an
//! unreadable config file is `Err` (the CLI's 2, as for `validate`), a config
//! with problems is a `Report` with problems (1), a good one an empty one (0).

use super::Report;
use crate::config::{self, Inputs};
use std::path::Path;

/// Checks the config at `path` without connecting; `Err` when the file
/// cannot be read at all.
pub fn report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let env = |k: &str| std::env::var(k).ok();
    let read = |p: &Path| std::fs::read_to_string(p);
    Ok(check_text(&text, path, &Inputs { env: &env, read_file: &read }))
}

/// The offline checks of config text (`path` names it and resolves relative files).
pub fn check_text(text: &str, path: &Path, inputs: &Inputs) -> Report {
    let mut report = Report::default();
    let cfg = match config::parse(text, path, inputs) {
        Ok(cfg) => cfg,
        Err(e) => {
            for p in e.problems {
                let key = if p.key.is_empty() { "(file)".to_string() } else { p.key };
                report.problem(format!("config {} {key}", path.display()), p.message);
            }
            return report;
        }
    };
    for w in &cfg.warnings {
        report.info(format!("config {} {}", path.display(), w.key), format!("warning: {}", w.message));
    }
    for (side, ep) in [("postgres", &cfg.postgres.endpoint), ("mysql", &cfg.mysql.endpoint)] {
        // Builds the TLS settings a connection would use: reads and parses
        // ca_file, client_cert and client_key; connects nowhere.
        if let Err(e) = crate::tls::client_config(ep) {
            report.problem(format!("{side} tls"), e.to_string());
        }
        if ep.password.is_none() {
            report.info(format!("{side} password"), "none configured (url, environment or password_file): fine only if the server needs none");
        }
    }
    report.info(
        "offline",
        format!(
            "config valid ({} pair{}); servers, privileges, tables and types are not checked: run tandem validate without --offline for those",
            cfg.pairs.len(),
            if cfg.pairs.len() == 1 { "" } else { "s" }
        ),
    );
    report
}
