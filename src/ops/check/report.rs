//! What `tandem check` tells the operator: the structured report (its JSON
//! field names are a stable interface) and its text rendering.
//!
//! Values are the canonical texts both servers rendered (see `crate::tables::canonical`):
//! numbers without trailing fraction zeros, timestamps `YYYY-MM-DD
//! HH:MM:SS.ffffff` UTC, booleans `1`/`0`, bytes as lower-case hex; NULL is
//! JSON `null`. Keys are objects `{column: value}` in key order.

use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt::Write;

/// Column → value pairs in a fixed order, serialized as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for Fields<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A key: key column → value.
pub type Key = Fields<String>;

impl Key {
    /// `a=1, b=x` for logs and text output.
    pub fn display(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }
}

/// A row present on one side only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MissingRow {
    pub key: Key,
}

/// A row whose columns differ.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowDiff {
    pub key: Key,
    /// Canonical names of the differing columns.
    pub columns: Vec<String>,
    /// The differing columns' values on each side.
    pub postgres: Fields<Option<String>>,
    pub mysql: Fields<Option<String>>,
}

/// One repair written by `--repair`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepairRecord {
    pub key: Key,
    /// `update`, `insert` or `delete`.
    pub action: &'static str,
    /// The side that was written.
    pub side: &'static str,
    pub columns: Vec<String>,
    /// The side whose value was kept.
    pub winner: &'static str,
}

/// A difference `--repair` left as it is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotRepaired {
    pub key: Key,
    pub columns: Vec<String>,
    pub reason: String,
}

/// The outcome for one pair.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PairReport {
    pub pair: String,
    /// Key-range chunks compared, and how many of them differed at first read.
    pub chunks: u64,
    pub chunks_mismatched: u64,
    pub missing_in_mysql: Vec<MissingRow>,
    pub missing_in_postgres: Vec<MissingRow>,
    pub different: Vec<RowDiff>,
    pub repairs: Vec<RepairRecord>,
    pub not_repaired: Vec<NotRepaired>,
}

impl PairReport {
    pub fn drift_rows(&self) -> usize {
        self.missing_in_mysql.len() + self.missing_in_postgres.len() + self.different.len()
    }
}

/// The whole check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub pairs: Vec<PairReport>,
    /// No difference was found (before any repair).
    pub in_sync: bool,
    /// With `--repair`: every difference was repaired and verified; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<bool>,
    /// Bytes of values received from both servers (approximate).
    pub bytes_read: u64,
    pub elapsed_ms: u64,
    /// Was `tandem run` connected (replication slot active) during the check?
    pub pipeline_running: bool,
    pub notes: Vec<String>,
}

impl CheckReport {
    /// The exit status of `tandem check`: 0 in sync (or all repaired), 1 drift left.
    pub fn clean(&self) -> bool {
        self.in_sync || self.repaired == Some(true)
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) => {
            let short: String = s.chars().take(80).collect();
            let more = if s.chars().count() > 80 { "…" } else { "" };
            format!("'{}{more}'", short.replace('\'', "''"))
        }
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// The report as text for a terminal.
pub fn render_text(r: &CheckReport) -> String {
    let mut out = String::new();
    for p in &r.pairs {
        let _ = writeln!(
            out,
            "pair {}: {} chunks, {} differed at first read; {} missing in mysql, {} missing in postgres, {} different",
            p.pair,
            p.chunks,
            p.chunks_mismatched,
            p.missing_in_mysql.len(),
            p.missing_in_postgres.len(),
            p.different.len()
        );
        for m in &p.missing_in_mysql {
            let _ = writeln!(out, "  missing in mysql: {}", m.key.display());
        }
        for m in &p.missing_in_postgres {
            let _ = writeln!(out, "  missing in postgres: {}", m.key.display());
        }
        for d in &p.different {
            let _ = writeln!(out, "  different {}:", d.key.display());
            for ((c, a), (_, b)) in d.postgres.0.iter().zip(&d.mysql.0) {
                let _ = writeln!(out, "    {c}: postgres {} / mysql {}", show(a), show(b));
            }
        }
        for x in &p.repairs {
            let what = match x.action {
                "insert" => format!("copied from {} to {}", x.winner, x.side),
                "delete" => format!("deleted from {} (its rows are owned by {})", x.side, x.winner),
                _ => format!("{} [{}] set to the {} values", x.side, x.columns.join(", "), x.winner),
            };
            let _ = writeln!(out, "  repaired {}: {what}", x.key.display());
        }
        for x in &p.not_repaired {
            let _ = writeln!(out, "  NOT repaired {} [{}]: {}", x.key.display(), x.columns.join(", "), x.reason);
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let rows: usize = r.pairs.iter().map(PairReport::drift_rows).sum();
    let verdict = match (r.in_sync, r.repaired) {
        (true, _) => "in sync".to_string(),
        (false, Some(true)) => format!("drift found in {rows} rows, all repaired"),
        (false, Some(false)) => format!("drift found in {rows} rows, not all repaired"),
        (false, None) => format!("drift found in {rows} rows"),
    };
    let _ = writeln!(out, "{verdict} (read {} in {:.1} s)", human_bytes(r.bytes_read), r.elapsed_ms as f64 / 1000.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_names_are_stable() {
        let key = Fields(vec![("id".to_string(), "7".to_string())]);
        let r = CheckReport {
            pairs: vec![PairReport {
                pair: "p".into(),
                different: vec![RowDiff {
                    key: key.clone(),
                    columns: vec!["email".into()],
                    postgres: Fields(vec![("email".into(), Some("a".into()))]),
                    mysql: Fields(vec![("email".into(), None)]),
                }],
                missing_in_mysql: vec![MissingRow { key }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["pairs"][0]["missing_in_mysql"][0]["key"]["id"], "7");
        assert_eq!(v["pairs"][0]["different"][0]["postgres"]["email"], "a");
        assert!(v["pairs"][0]["different"][0]["mysql"]["email"].is_null());
        assert_eq!(v["in_sync"], false);
        assert!(v.get("repaired").is_none());
        assert!(render_text(&r).contains("email: postgres 'a' / mysql NULL"));
    }
}
