//! Metric names and descriptions, declared once (DESIGN.md §8), and the
//! process-wide recorder that `tandem run` installs.
//!
//! Labels are bounded: direction, pair, op, side, policy, winner — never a key
//! or a value. `install()` sets one global recorder that feeds two sinks: the
//! Prometheus registry (rendered on demand by `/metrics` in `service::http`;
//! tandem runs no listener of the exporter's own) and `Totals`, plain running
//! sums per metric key that `/status` and `/health` read without parsing the
//! exposition text. Nothing here blocks or fails on a metric update.

use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub const CHANGES_READ: &str = "tandem_changes_read_total";
pub const CHANGES_APPLIED: &str = "tandem_changes_applied_total";
pub const ECHO_SUPPRESSED: &str = "tandem_echo_suppressed_total";
pub const ECHO_FORWARDED: &str = "tandem_echo_forwarded_total";
pub const CONFLICTS: &str = "tandem_conflicts_total";
pub const OWNERSHIP_VIOLATIONS: &str = "tandem_ownership_violations_total";
pub const QUARANTINED: &str = "tandem_quarantined_total";
pub const LAG_SECONDS: &str = "tandem_lag_seconds";
pub const BATCH_ROWS: &str = "tandem_batch_rows";
pub const APPLY_SECONDS: &str = "tandem_apply_seconds";
pub const RECONNECTS: &str = "tandem_reconnects_total";
pub const PARKED: &str = "tandem_parked_total";
pub const PAIR_PAUSED: &str = "tandem_pair_paused";
pub const LEASE_HELD: &str = "tandem_lease_held";
pub const BACKFILL_ROWS: &str = "tandem_backfill_rows_total";
pub const LAST_APPLIED_COMMIT: &str = "tandem_last_applied_commit_timestamp_seconds";
pub const SOURCE_BYTES_BEHIND: &str = "tandem_source_bytes_behind";
pub const SLOT_RETAINED_WAL: &str = "tandem_slot_retained_wal_bytes";
pub const QUARANTINE_ROWS: &str = "tandem_quarantine_rows";
pub const CONFLICTS_OPEN: &str = "tandem_conflicts_open";
pub const PARKED_ROWS: &str = "tandem_parked_rows";
pub const DIRECTION_UP: &str = "tandem_direction_up";
pub const BUILD_INFO: &str = "tandem_build_info";
pub const APPLY_RETRIES: &str = "tandem_apply_retries_total";
pub const ONE_WAY_SKIPPED: &str = "tandem_one_way_skipped_total";

/// The metrics of `ALL` that are gauges (the rest are counters, `_total`, or histograms).
const GAUGES: &[&str] = &[
    LAG_SECONDS,
    PAIR_PAUSED,
    LEASE_HELD,
    LAST_APPLIED_COMMIT,
    SOURCE_BYTES_BEHIND,
    SLOT_RETAINED_WAL,
    QUARANTINE_ROWS,
    CONFLICTS_OPEN,
    PARKED_ROWS,
    DIRECTION_UP,
    BUILD_INFO,
];

/// Every metric with its description, for `describe` and for documentation.
pub const ALL: &[(&str, &str)] = &[
    (CHANGES_READ, "Row changes read from the source stream, by direction."),
    (CHANGES_APPLIED, "Row changes applied to the destination, by direction, pair and op."),
    (ECHO_SUPPRESSED, "Source transactions dropped because tandem itself wrote them, by direction."),
    (ECHO_FORWARDED, "Row writes of tandem sent back to the other side because they met a row this side deleted and re-created concurrently, by direction."),
    (CONFLICTS, "Column conflicts decided, by pair, policy and winner."),
    (OWNERSHIP_VIOLATIONS, "Changes to a column by the side that does not own it, by pair and side."),
    (QUARANTINED, "Changes the destination rejected and that were quarantined, by direction and pair."),
    (LAG_SECONDS, "Seconds between now and the source commit of the oldest transaction read but not yet applied (0 when caught up; grows during any stall), by direction."),
    (BATCH_ROWS, "Rows per applied destination transaction, by direction."),
    (APPLY_SECONDS, "Seconds spent applying one destination transaction, by direction."),
    (RECONNECTS, "Reconnections after a lost connection, by side."),
    (PARKED, "Row changes of a paused pair set aside until it resumes, by direction and pair."),
    (PAIR_PAUSED, "1 while a pair is paused in a direction (a mapped column missing at the source), by direction and pair."),
    (LEASE_HELD, "1 while this instance holds the pipeline's HA lease (active), 0 on standby."),
    (BACKFILL_ROWS, "Rows of backfill chunks merged into the destination, by direction and pair."),
    (LAST_APPLIED_COMMIT, "Source commit time (Unix seconds) of the newest transaction applied at the destination, by direction."),
    (SOURCE_BYTES_BEHIND, "Bytes of the source's log written but not yet applied (Postgres: current WAL position − slot's confirmed position; MySQL: binlog end − applied position), by direction."),
    (SLOT_RETAINED_WAL, "Bytes of WAL the Postgres server keeps for tandem's replication slot (current WAL position − restart_lsn)."),
    (QUARANTINE_ROWS, "Changes in the quarantine now (not yet retried or dropped), by direction and pair."),
    (CONFLICTS_OPEN, "Open (unresolved) conflicts in the conflict log now, by pair."),
    (PARKED_ROWS, "Changes parked now while their pair is paused, by direction and pair."),
    (DIRECTION_UP, "1 while the direction streams, 0 while it starts, retries, is halted or stopped, by direction."),
    (BUILD_INFO, "Always 1; the version label is tandem's version."),
    (ONE_WAY_SKIPPED, "Row changes read but not applied because their pair replicates only the other way ([[pairs]] direction), by direction and pair."),
    (APPLY_RETRIES, "Attempts of a direction that ended with a transient error and were retried from the checkpoint, by direction and reason (connection, timeout, lock_timeout, statement_timeout, deadlock, serialization, server_busy)."),
];

/// Bucket upper bounds of the two histograms (rendered as Prometheus histograms, not summaries).
const BATCH_ROWS_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];
const APPLY_SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The Prometheus type of a metric of `ALL`.
pub fn kind(name: &str) -> &'static str {
    if name.ends_with("_total") {
        "counter"
    } else if GAUGES.contains(&name) {
        "gauge"
    } else {
        "histogram"
    }
}

/// Registers the descriptions with the current recorder.
pub fn describe() {
    for &(name, help) in ALL {
        match kind(name) {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

/// Installs the process recorder (Prometheus + totals) and describes every
/// metric. Fails if a recorder is already installed.
pub fn install() -> Result<MetricsHandle, String> {
    let (handle, recorder) = build()?;
    metrics::set_global_recorder(recorder).map_err(|e| format!("a metrics recorder is already installed: {e}"))?;
    describe();
    Ok(handle)
}

/// A recorder and its handle, not installed (`install` does that; tests use
/// it with `metrics::with_local_recorder`).
pub fn build() -> Result<(MetricsHandle, impl Recorder + Send + Sync + 'static), String> {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BATCH_ROWS.into()), BATCH_ROWS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(APPLY_SECONDS.into()), APPLY_SECONDS_BUCKETS))
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = MetricsHandle { prometheus: prometheus.handle(), totals: Arc::new(Totals::default()) };
    let recorder = TeeRecorder { prometheus, totals: Arc::clone(&handle.totals) };
    Ok((handle, recorder))
}

/// Read access to the installed recorder.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    prometheus: PrometheusHandle,
    totals: Arc<Totals>,
}

impl MetricsHandle {
    /// The Prometheus text exposition of every metric of `ALL`: the ones not
    /// recorded yet appear with their `# HELP` and `# TYPE` lines only.
    pub fn render(&self) -> String {
        let mut out = self.prometheus.render();
        for &(name, help) in ALL {
            let present = out.lines().any(|l| l.strip_prefix("# TYPE ").and_then(|r| r.split(' ').next()) == Some(name));
            if !present {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {}\n\n", kind(name)));
            }
        }
        out
    }

    /// Drains histogram samples into the registry; call every few seconds.
    pub fn run_upkeep(&self) {
        self.prometheus.run_upkeep();
    }

    /// Sum of a counter over every label set that has `label = value` (all label sets when `None`).
    pub fn counter_sum(&self, name: &str, label: Option<(&str, &str)>) -> u64 {
        self.totals.counter_sum(name, label)
    }

    /// Per value of `group_by`, the sum of a counter (e.g. conflicts by pair).
    pub fn counter_by(&self, name: &str, group_by: &str) -> std::collections::BTreeMap<String, u64> {
        self.totals.counter_by(name, group_by)
    }

    /// The current value of a gauge with `label = value`, if it was ever set.
    pub fn gauge(&self, name: &str, label: (&str, &str)) -> Option<f64> {
        self.totals.gauge(name, label)
    }
}

/// Running values per metric key, next to the Prometheus registry.
#[derive(Debug, Default)]
struct Totals {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    /// f64 bits, as `metrics` stores gauges.
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
}

fn has_label(key: &Key, label: Option<(&str, &str)>) -> bool {
    match label {
        None => true,
        Some((k, v)) => key.labels().any(|l| l.key() == k && l.value() == v),
    }
}

impl Totals {
    /// The cell of `key` (`counter!` registers on every call: look up before cloning the key).
    fn cell(map: &Mutex<HashMap<Key, Arc<AtomicU64>>>, key: &Key) -> Arc<AtomicU64> {
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            Some(cell) => Arc::clone(cell),
            None => Arc::clone(map.entry(key.clone()).or_default()),
        }
    }

    fn counter(&self, key: &Key) -> Arc<AtomicU64> {
        Self::cell(&self.counters, key)
    }

    fn gauge_cell(&self, key: &Key) -> Arc<AtomicU64> {
        Self::cell(&self.gauges, key)
    }

    fn counter_sum(&self, name: &str, label: Option<(&str, &str)>) -> u64 {
        let map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().filter(|(k, _)| k.name() == name && has_label(k, label)).map(|(_, v)| v.load(Ordering::Relaxed)).sum()
    }

    fn counter_by(&self, name: &str, group_by: &str) -> std::collections::BTreeMap<String, u64> {
        let map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in map.iter().filter(|(k, _)| k.name() == name) {
            let group = k.labels().find(|l| l.key() == group_by).map(|l| l.value().to_string()).unwrap_or_default();
            *out.entry(group).or_insert(0) += v.load(Ordering::Relaxed);
        }
        out
    }

    fn gauge(&self, name: &str, label: (&str, &str)) -> Option<f64> {
        let map = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().find(|(k, _)| k.name() == name && has_label(k, Some(label))).map(|(_, v)| f64::from_bits(v.load(Ordering::Relaxed)))
    }
}

/// Feeds every counter and gauge update to both the Prometheus registry and `Totals`.
struct TeeRecorder {
    prometheus: PrometheusRecorder,
    totals: Arc<Totals>,
}

struct TeeCounter(Counter, Arc<AtomicU64>);

impl CounterFn for TeeCounter {
    fn increment(&self, value: u64) {
        self.0.increment(value);
        self.1.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.absolute(value);
        self.1.fetch_max(value, Ordering::Relaxed);
    }
}

struct TeeGauge(Gauge, Arc<AtomicU64>);

impl GaugeFn for TeeGauge {
    fn increment(&self, value: f64) {
        self.0.increment(value);
        GaugeFn::increment(&*self.1, value);
    }
    fn decrement(&self, value: f64) {
        self.0.decrement(value);
        GaugeFn::decrement(&*self.1, value);
    }
    fn set(&self, value: f64) {
        self.0.set(value);
        GaugeFn::set(&*self.1, value);
    }
}

impl Recorder for TeeRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let inner = self.prometheus.register_counter(key, metadata);
        Counter::from_arc(Arc::new(TeeCounter(inner, self.totals.counter(key))))
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let inner = self.prometheus.register_gauge(key, metadata);
        Gauge::from_arc(Arc::new(TeeGauge(inner, self.totals.gauge_cell(key))))
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.prometheus.register_histogram(key, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for &(name, help) in ALL {
            assert!(name.starts_with("tandem_"), "{name}");
            // Counters end in _total, measures in their unit; a unitless state gauge (0/1) in neither.
            assert!(name.ends_with("_total") || name.ends_with("_seconds") || name.ends_with("_rows") || kind(name) == "gauge", "{name}");
            assert!(!help.is_empty());
        }
    }

    #[test]
    fn the_tee_feeds_both_the_exposition_and_the_totals() {
        let (handle, recorder) = build().unwrap();
        metrics::with_local_recorder(&recorder, || {
            describe();
            metrics::counter!(CHANGES_APPLIED, "direction" => "postgres_to_mysql", "pair" => "a", "op" => "insert").increment(3);
            metrics::counter!(CHANGES_APPLIED, "direction" => "postgres_to_mysql", "pair" => "b", "op" => "update").increment(2);
            metrics::counter!(CHANGES_APPLIED, "direction" => "mysql_to_postgres", "pair" => "a", "op" => "insert").increment(7);
            metrics::gauge!(LAG_SECONDS, "direction" => "mysql_to_postgres").set(1.5);
        });
        assert_eq!(handle.counter_sum(CHANGES_APPLIED, Some(("direction", "postgres_to_mysql"))), 5);
        assert_eq!(handle.counter_sum(CHANGES_APPLIED, None), 12);
        assert_eq!(handle.counter_by(CHANGES_APPLIED, "pair").get("a"), Some(&10));
        assert_eq!(handle.gauge(LAG_SECONDS, ("direction", "mysql_to_postgres")), Some(1.5));
        assert_eq!(handle.gauge(LAG_SECONDS, ("direction", "postgres_to_mysql")), None);
        let text = handle.render();
        assert!(text.contains("tandem_changes_applied_total{direction=\"mysql_to_postgres\",pair=\"a\",op=\"insert\"} 7"), "{text}");
        for &(name, _) in ALL {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} is described: {text}");
            assert!(text.contains(&format!("# TYPE {name} {}", kind(name))), "{name} has its type: {text}");
        }
    }
}
