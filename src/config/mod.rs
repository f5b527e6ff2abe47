//! Configuration: the TOML file (DESIGN.md §5) parsed into raw serde structs,
//! then validated into the typed `Config` used everywhere else.
//!
//! Errors name the file, the key path and what is expected. Passwords come from
//! the URL, `TANDEM_POSTGRES_PASSWORD` / `TANDEM_MYSQL_PASSWORD`, or
//! `password_file` (the first set wins; `endpoint` says why), and live only
//! inside `Secret`.

mod endpoint;
mod raw;
mod secret;
mod types;
mod validate;

pub use secret::Secret;
pub use types::*;
pub use validate::{listen_address, validate, ConfigProblem, Inputs};

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config {}:", self.file.display())?;
        for pr in &self.problems {
            write!(f, "\n  {}: {}", pr.key, pr.message)?;
        }
        Ok(())
    }
}

/// Parses and validates TOML text (no file access except `password_file`).
pub fn parse(text: &str, path: &Path, inputs: &Inputs) -> Result<Config, ConfigError> {
    let err = |problems| ConfigError { file: path.to_path_buf(), problems };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let key = e.span().map(|s| key_at(text, s.start)).unwrap_or_default();
        err(vec![ConfigProblem { key, message: e.message().to_string() }])
    })?;
    validate(raw, path, inputs).map_err(err)
}

/// Reads, parses and validates a config file from disk with the real
/// environment, and logs its warnings.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let cfg = read(path)?;
    for w in &cfg.warnings {
        tracing::warn!(file = %path.display(), key = %w.key, "{}", w.message);
    }
    Ok(cfg)
}

/// Like `load`, without logging the warnings (the caller shows them).
pub fn read(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![ConfigProblem { key: String::new(), message: format!("cannot read file: {e}") }],
    })?;
    let env = |k: &str| std::env::var(k).ok();
    let read = |p: &Path| std::fs::read_to_string(p);
    parse(&text, path, &Inputs { env: &env, read_file: &read })
}

/// Best-effort key path (`section.key`) for a byte offset in TOML text, for
/// serde errors that only carry a span.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let mut section = String::new();
    for line in before.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']']).to_string();
        }
    }
    let line = text[before.rfind('\n').map_or(0, |i| i + 1)..].lines().next().unwrap_or("");
    let key = line.split('=').next().unwrap_or("").trim();
    match (section.is_empty(), key.is_empty() || key.starts_with('[')) {
        (true, _) => key.to_string(),
        (false, true) => section,
        (false, false) => format!("{section}.{key}"),
    }
}

#[cfg(test)]
mod tests;
