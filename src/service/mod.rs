//! The service face of `tandem run` (DESIGN.md §7, §8): the metrics
//! recorder, the HTTP endpoint at `[metrics] listen` (`/metrics`, `/health`,
//! `/status`) and the systemd notifications (READY=1 once both directions
//! stream, WATCHDOG=1, STATUS=, STOPPING=1).
//!
//! `start()` is called by the CLI before `run::run`; `Service::finish()`
//! after it returns. The replication itself knows nothing of this module
//! beyond the three `state::ServiceState` hooks. Everything served here is
//! built from `state` and the metric totals, never from the config's
//! connection settings, so no URL or password can be served; `state` also
//! blanks the configured passwords out of error texts.

pub mod http;
pub mod liveness;
pub mod notify;
pub mod state;

use crate::config::{Config, Direction, Side};
use crate::metrics::{self as m, MetricsHandle};
use state::{DirectionSnapshot, ErrorNote, Phase, ServiceState, DIRECTIONS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the endpoints and notifications read: the run state and the metrics.
#[derive(Debug, Clone)]
pub struct Observed {
    pub pipeline: String,
    pub max_healthy_lag: Duration,
    pub state: &'static ServiceState,
    pub metrics: MetricsHandle,
}

/// One direction in `/status` (and, nested, in `tandem status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DirectionStatus {
    /// `postgres_to_mysql` | `mysql_to_postgres`.
    pub direction: String,
    /// starting | streaming | retrying | stopped | failed
    pub state: String,
    /// Last source position acknowledged after a destination commit.
    pub position: Option<String>,
    /// Now − source commit time of the oldest transaction read but not yet
    /// applied (0 when caught up); grows during a stall.
    pub lag_seconds: Option<f64>,
    pub streaming_since: Option<String>,
    pub changes_read: u64,
    pub applied: u64,
    pub echo_suppressed: u64,
    pub quarantined: u64,
    pub last_error: Option<ErrorText>,
    pub failed_attempts: u64,
    /// Pairs paused in this direction because a mapped column is missing or
    /// unsupported at the source; their changes are parked until it is fixed.
    pub paused_pairs: Vec<String>,
    /// Why each paused pair is paused (pair → reason naming the column).
    #[serde(default)]
    pub pause_reasons: std::collections::BTreeMap<String, String>,
}

/// An error message with its time (RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorText {
    pub message: String,
    pub at: String,
}

impl From<ErrorNote> for ErrorText {
    fn from(e: ErrorNote) -> Self {
        ErrorText { message: e.message, at: e.at }
    }
}

/// The `/status` document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatusDoc {
    pub pipeline: String,
    /// HA role: `active` (holds the pipeline lease), `standby` or `starting`.
    #[serde(default)]
    pub role: String,
    /// While on standby: who holds the lease (application_name, backend pid, address).
    #[serde(default)]
    pub lease_holder: Option<String>,
    pub healthy: bool,
    /// Why not healthy (null when healthy).
    pub reason: Option<String>,
    pub directions: Vec<DirectionStatus>,
    /// Column conflicts decided since start, by pair (the metric has no direction label).
    pub conflicts_total: u64,
    pub conflicts_by_pair: BTreeMap<String, u64>,
    pub reconnects_by_side: BTreeMap<String, u64>,
}

/// Is the service healthy? `Err` names the first direction that is not.
/// A standby (another instance holds the lease) is healthy.
pub fn health_of(directions: &[DirectionStatus], max_lag: Duration) -> Result<(), String> {
    for d in directions {
        let name = direction_display(&d.direction);
        if d.state == Phase::Standby.as_str() {
            continue;
        }
        if d.state != Phase::Streaming.as_str() {
            let why = d.last_error.as_ref().map(|e| format!(": {}", e.message)).unwrap_or_default();
            return Err(format!("{name} is {}{why}", d.state));
        }
        if let Some(lag) = d.lag_seconds {
            if lag > max_lag.as_secs_f64() {
                return Err(format!("{name} lags {lag:.1} s, more than max_healthy_lag_seconds = {}", max_lag.as_secs_f64()));
            }
        }
    }
    Ok(())
}

fn direction_display(key: &str) -> &str {
    DIRECTIONS.iter().find(|d| d.key() == key).map(|d| d.as_str()).unwrap_or(key)
}

impl Observed {
    fn direction(&self, d: Direction, snap: DirectionSnapshot) -> DirectionStatus {
        let label = Some(("direction", d.key()));
        DirectionStatus {
            direction: d.key().to_string(),
            state: snap.phase.as_str().to_string(),
            position: snap.position,
            lag_seconds: self.state.clock(d).lag_seconds(),
            streaming_since: snap.streaming_since,
            changes_read: self.metrics.counter_sum(m::CHANGES_READ, label),
            applied: self.metrics.counter_sum(m::CHANGES_APPLIED, label),
            echo_suppressed: self.metrics.counter_sum(m::ECHO_SUPPRESSED, label),
            quarantined: self.metrics.counter_sum(m::QUARANTINED, label),
            last_error: snap.last_error.map(ErrorText::from),
            failed_attempts: snap.failed_attempts,
            paused_pairs: snap.paused.keys().cloned().collect(),
            pause_reasons: snap.paused,
        }
    }

    /// Sets the gauges that are computed when read (lag, last applied
    /// commit) to their value now: called before `/metrics` is rendered.
    pub fn refresh_gauges(&self) {
        for d in DIRECTIONS {
            let clock = self.state.clock(d);
            if let Some(lag) = clock.lag_seconds() {
                metrics::gauge!(m::LAG_SECONDS, "direction" => d.key()).set(lag);
            }
            if let Some(ts) = clock.last_applied_seconds() {
                metrics::gauge!(m::LAST_APPLIED_COMMIT, "direction" => d.key()).set(ts);
            }
        }
    }

    /// The `/status` document now.
    pub fn status(&self) -> StatusDoc {
        let directions: Vec<DirectionStatus> = DIRECTIONS.iter().map(|&d| self.direction(d, self.state.snapshot(d))).collect();
        let health = health_of(&directions, self.max_healthy_lag);
        let role = self.state.role();
        StatusDoc {
            pipeline: self.pipeline.clone(),
            role: role.as_str().to_string(),
            lease_holder: match role {
                state::Role::Standby { holder } => holder,
                _ => None,
            },
            healthy: health.is_ok(),
            reason: health.err(),
            directions,
            conflicts_total: self.metrics.counter_sum(m::CONFLICTS, None),
            conflicts_by_pair: self.metrics.counter_by(m::CONFLICTS, "pair"),
            reconnects_by_side: self.metrics.counter_by(m::RECONNECTS, "side"),
        }
    }

    /// One line for systemd's STATUS=: phase and lag per direction.
    pub fn status_line(&self) -> String {
        if let state::Role::Standby { holder } = self.state.role() {
            return format!("standby: lease held by {}", holder.as_deref().unwrap_or("another instance"));
        }
        self.status()
            .directions
            .iter()
            .map(|d| {
                let lag = d.lag_seconds.map(|l| format!(", lag {l:.1} s")).unwrap_or_default();
                format!("{}: {}{lag}", direction_display(&d.direction), d.state)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The running service face; `finish()` it when `run` has returned.
pub struct Service {
    observed: Arc<Observed>,
    notifier: Option<Arc<notify::Notifier>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where the HTTP endpoint listens (the bound address, useful with port 0).
    pub http_addr: Option<std::net::SocketAddr>,
}

/// Installs the metrics recorder, binds `[metrics] listen` and starts the
/// systemd notifier (when `NOTIFY_SOCKET` is set). `shutdown` is the
/// service's shutdown token: its cancellation sends STOPPING=1 at once.
pub async fn start(cfg: &Config, shutdown: CancellationToken) -> Result<Service, String> {
    let metrics = m::install()?;
    let state = state::global();
    let secrets = [&cfg.postgres.endpoint.password, &cfg.mysql.endpoint.password];
    state.set_secrets(secrets.iter().filter_map(|p| p.as_ref().map(|s| s.expose().to_string())).collect());
    // Series with bounded, known labels start at zero so dashboards see them before the first event.
    for d in DIRECTIONS {
        metrics::counter!(m::CHANGES_READ, "direction" => d.key()).increment(0);
        metrics::counter!(m::ECHO_SUPPRESSED, "direction" => d.key()).increment(0);
    }
    for side in [Side::Postgres, Side::Mysql] {
        metrics::counter!(m::RECONNECTS, "side" => side.as_str()).increment(0);
    }
    for d in DIRECTIONS {
        metrics::gauge!(m::DIRECTION_UP, "direction" => d.key()).set(0.0);
        state.clock(d).set_heartbeat(cfg.timeouts.heartbeat());
    }
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let observed = Arc::new(Observed { pipeline: cfg.pipeline.clone(), max_healthy_lag: cfg.metrics.max_healthy_lag, state, metrics });
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let upkeep = observed.metrics.clone();
    let upkeep_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = upkeep_stop.cancelled() => return,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    }));
    let mut http_addr = None;
    if let Some(addr) = cfg.metrics.listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} ([metrics] listen): {e}"))?;
        http_addr = listener.local_addr().ok();
        tracing::info!(%addr, "serving /metrics, /health and /status");
        tasks.push(tokio::spawn(http::serve(listener, Arc::clone(&observed), stop.clone())));
    }
    let notifier = match notify::Notifier::from_env() {
        Ok(n) => n.map(Arc::new),
        Err(e) => {
            tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; no systemd notifications");
            None
        }
    };
    if let Some(n) = &notifier {
        tasks.push(tokio::spawn(notify::run(Arc::clone(n), Arc::clone(&observed), shutdown, stop.clone())));
    }
    Ok(Service { observed, notifier, stop, tasks, http_addr })
}

impl Service {
    /// What the endpoints serve.
    pub fn observed(&self) -> &Arc<Observed> {
        &self.observed
    }

    /// Sends STOPPING=1 (if not sent yet) and stops the endpoint and timers.
    pub async fn finish(self) {
        if let Some(n) = &self.notifier {
            n.stopping();
        }
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(key: &str, state: &str, lag: Option<f64>) -> DirectionStatus {
        DirectionStatus {
            direction: key.into(),
            state: state.into(),
            position: None,
            lag_seconds: lag,
            streaming_since: None,
            changes_read: 0,
            applied: 0,
            echo_suppressed: 0,
            quarantined: 0,
            last_error: None,
            failed_attempts: 0,
            paused_pairs: vec![],
            pause_reasons: Default::default(),
        }
    }

    #[test]
    fn healthy_only_when_both_stream_within_the_lag_limit() {
        let max = Duration::from_secs(60);
        let ok = [dir("postgres_to_mysql", "streaming", Some(0.5)), dir("mysql_to_postgres", "streaming", None)];
        assert_eq!(health_of(&ok, max), Ok(()));
        let mut down = ok.clone();
        down[1].state = "retrying".into();
        down[1].last_error = Some(ErrorText { message: "connection refused".into(), at: String::new() });
        let why = health_of(&down, max).unwrap_err();
        assert!(why.contains("mysql→postgres is retrying: connection refused"), "{why}");
        let mut slow = ok.clone();
        slow[0].lag_seconds = Some(61.0);
        let why = health_of(&slow, max).unwrap_err();
        assert!(why.contains("postgres→mysql lags 61.0 s"), "{why}");
        let standby = [dir("postgres_to_mysql", "standby", None), dir("mysql_to_postgres", "standby", None)];
        assert_eq!(health_of(&standby, max), Ok(()), "a standby is healthy");
    }
}
