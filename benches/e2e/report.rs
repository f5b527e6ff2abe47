//! Output of `tandem-bench`: per direction, a text table (tandem vs native,
//! ratios, the direction's targets with PASS/MISS, CPU, RSS and the W1
//! phases) or a JSON document (an array of them when both directions ran).

use crate::procstat::CpuSnapshot;
use crate::workload::{Sample, SystemResult};

/// Reads one number of a system's results.
type Metric = fn(&SystemResult) -> Option<f64>;

/// tandem's targets in one direction.
#[derive(Debug, Clone, Copy)]
pub struct Goals {
    /// W1 throughput, rows/s (at least).
    pub w1_rows_per_s: f64,
    /// W2 lag p99, ms (at most).
    pub w2_lag_p99_ms: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub direction: String,
    pub rows: u64,
    pub updates: u64,
    pub clients: u64,
    pub durability: String,
    pub batch_delay_ms: u64,
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,
    pub logs: String,
    pub systems: Vec<SystemResult>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub value: Option<f64>,
    pub pass: bool,
}

impl Report {
    fn system(&self, name: &str) -> Option<&SystemResult> {
        self.systems.iter().find(|s| s.name == name)
    }

    /// Fills `targets` from tandem's results.
    pub fn judge(&mut self, goals: Goals) {
        let t = self.system("tandem");
        let w1 = t.map(|t| t.w1.rows_per_s);
        let p99 = t.map(|t| t.w2.lag_p99_ms);
        self.targets = vec![
            Target {
                name: "W1 rows/s".into(),
                goal: format!("≥ {}", thousands(goals.w1_rows_per_s)),
                value: w1,
                pass: w1.is_some_and(|v| v >= goals.w1_rows_per_s),
            },
            Target {
                name: "W2 lag p99 ms".into(),
                goal: format!("≤ {}", thousands(goals.w2_lag_p99_ms)),
                value: p99,
                pass: p99.is_some_and(|v| v <= goals.w2_lag_p99_ms),
            },
        ];
    }

    /// One report as a JSON document; several (both directions) as an array.
    pub fn json(reports: &[Report], with_timeline: bool) -> String {
        let mut copies = reports.to_vec();
        for r in &mut copies {
            if !with_timeline {
                for s in &mut r.systems {
                    s.w1.timeline.clear();
                    s.w2.timeline.clear();
                }
            }
        }
        let doc = match copies.as_slice() {
            [one] => serde_json::to_string_pretty(one),
            many => serde_json::to_string_pretty(many),
        };
        doc.unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn text(&self) -> String {
        let mut o = String::new();
        let line = |o: &mut String, s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line(&mut o, format!("\ntandem-bench: {}", self.direction));
        line(
            &mut o,
            format!(
                "  W1 = one transaction of {} rows; W2 = {} single-row updates from {} clients",
                thousands(self.rows as f64),
                thousands(self.updates as f64),
                self.clients
            ),
        );
        line(&mut o, format!("  servers: {}; tandem max_batch_delay_ms = {}", self.durability, self.batch_delay_ms));
        let la = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
        line(&mut o, format!("  load average (1 min): {} at start, {} at end; logs: {}", la(self.load_average_start), la(self.load_average_end), self.logs));
        line(&mut o, String::new());
        let t = self.system("tandem");
        let n = self.system("native");
        line(&mut o, format!("  {:<34}{:>12}{:>12}{:>15}   {}", "", "tandem", "native", "tandem/native", "target (tandem)"));
        let target = |name: &str| {
            self.targets
                .iter()
                .find(|x| x.name == name)
                .map(|x| format!("{} {}", x.goal, if x.pass { "PASS" } else { "MISS" }))
                .unwrap_or_default()
        };
        let rows: Vec<(&str, Metric, &str)> = vec![
            ("W1 rows/s", |s| Some(s.w1.rows_per_s), "W1 rows/s"),
            ("W1 apply s (after source commit)", |s| Some(s.w1.apply_s), ""),
            ("W2 rows/s", |s| Some(s.w2.rows_per_s), ""),
            ("W2 lag min ms", |s| Some(s.w2.lag_min_ms), ""),
            ("W2 lag p50 ms", |s| Some(s.w2.lag_p50_ms), ""),
            ("W2 lag p99 ms", |s| Some(s.w2.lag_p99_ms), "W2 lag p99 ms"),
            ("W2 lag max ms", |s| Some(s.w2.lag_max_ms), ""),
            ("W2 source rows/s (clients alone)", |s| Some(s.w2.source_rows_per_s), ""),
            ("W1 source INSERT s", |s| Some(s.w1.source_insert_s), ""),
        ];
        for (label, get, tname) in &rows {
            let a = t.and_then(get);
            let b = n.and_then(get);
            let ratio = match (a, b) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            line(&mut o, format!("  {:<34}{:>12}{:>12}{:>15}   {}", label, num(a), num(b), ratio, if tname.is_empty() { String::new() } else { target(tname) }));
        }
        let rss = t.and_then(|t| t.peak_rss_mib);
        line(&mut o, format!("  {:<34}{:>12}", "tandem peak RSS MiB", num(rss)));
        line(&mut o, String::new());
        line(&mut o, "  CPU seconds per workload          replicator   source srv     dest srv".into());
        for s in &self.systems {
            for (w, cpu) in [("W1", &s.w1.cpu), ("W2", &s.w2.cpu)] {
                line(&mut o, format!("    {:<32}{}", format!("{} {}", s.name, w), cpu_cols(cpu)));
            }
        }
        line(&mut o, String::new());
        line(&mut o, "  W1 phases, s after the source commit:  sender done   first dest row   all rows written   visible".into());
        for s in &self.systems {
            line(
                &mut o,
                format!(
                    "    {:<36}{:>12}{:>17}{:>19}{:>10}",
                    s.name,
                    num(s.w1.sender_done_s),
                    num(s.w1.dest_first_row_s),
                    num(s.w1.dest_all_written_s),
                    num(Some(s.w1.apply_s))
                ),
            );
        }
        for s in &self.systems {
            for w in &s.warnings {
                line(&mut o, format!("  warning: {w}"));
            }
        }
        o
    }

    /// Per-second timeline of every workload (stderr with `--timeline`).
    pub fn timelines(&self) -> String {
        let mut o = String::new();
        for s in &self.systems {
            for (w, samples) in [("W1", &s.w1.timeline), ("W2", &s.w2.timeline)] {
                o.push_str(&format!(
                    "\n{} ({}) {w}: t s | CPU s: replicator source dest | dest rows written | sender behind MiB (or idle/busy)\n",
                    s.name, self.direction
                ));
                // At most ~50 rows: every sample of a short run, evenly spaced ones of a long one.
                let span = samples.last().map_or(0.0, |x| x.t_s);
                let step = (span / 50.0).max(0.0);
                let mut next = 0.0;
                for (i, x) in samples.iter().enumerate() {
                    if x.t_s + 1e-9 >= next || i + 1 == samples.len() {
                        o.push_str(&timeline_row(x));
                        next = x.t_s + step;
                    }
                }
            }
        }
        o
    }
}

fn timeline_row(x: &Sample) -> String {
    let mib = x.sender_behind_bytes.map(|b| b as f64 / (1024.0 * 1024.0));
    let sender = match (mib, x.sender_idle) {
        (Some(_), _) | (None, None) => num(mib),
        (None, Some(idle)) => (if idle { "idle" } else { "busy" }).to_string(),
    };
    format!(
        "  {:>7.1} | {} | {:>12} | {:>8}\n",
        x.t_s,
        cpu_cols(&x.cpu),
        x.dest_rows_written.map_or("-".into(), |r| r.to_string()),
        sender
    )
}

fn cpu_cols(c: &CpuSnapshot) -> String {
    format!("{:>10}{:>13}{:>13}", num(c.replicator_s), num(c.source_server_s), num(c.dest_server_s))
}

/// Numbers for humans: thousands separators from 1000 up, 2 decimals below 100.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 1000.0 => thousands(v),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(num(Some(80_000.0)), "80,000");
        assert_eq!(num(Some(12.345)), "12.35");
        assert_eq!(num(None), "-");
    }
}
