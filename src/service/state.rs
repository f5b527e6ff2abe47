//! `ServiceState`: what `tandem run` reports about each direction — its
//! phase (starting / streaming / retrying / stopped / failed), the last
//! acknowledged source position and the last error — for `/health`,
//! `/status` and the systemd notifications.
//!
//! `run` writes it through three hooks (`track` around each attempt of
//! a direction, `streaming` once its applier is connected and its source
//! streams, `acknowledged` after each destination commit); readers take
//! `snapshot()`s and may wait for `changed()`. One process-wide instance
//! (`global()`), like the metrics recorder: a process runs one pipeline.
//! Error texts are stored with every configured password blanked out, so a
//! secret cannot reach a status document even if a driver echoed it.
//! The HA role (`run::lease`): `standby` while another instance holds the
//! pipeline lease (both directions then report `Phase::Standby`), `active`
//! while this one holds it.

use super::liveness::DirectionClock;
use crate::config::Direction;
use crate::model::SourcePos;
use std::sync::{Mutex, OnceLock, PoisonError};
use tokio::sync::watch;

/// Where a direction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Connecting, reading the checkpoint, loading schemas.
    Starting,
    /// The source streams into a connected applier.
    Streaming,
    /// The last attempt failed with a transient error; waiting to reconnect.
    Retrying,
    /// Ended cleanly (shutdown).
    Stopped,
    /// Ended with a definite error; the service is stopping.
    Failed,
    /// Stopped at a change it cannot replicate faithfully (the error names
    /// it); the other direction and the service go on until an operator acts.
    Halted,
    /// Not running: another instance holds the pipeline lease.
    Standby,
}

/// This instance's part in the HA pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Role {
    /// Not yet asked for the lease.
    Starting,
    /// Waiting for the lease; the holder as Postgres reports it, when known.
    Standby { holder: Option<String> },
    /// Holding the lease: streaming and applying.
    Active,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Standby { .. } => "standby",
            Role::Active => "active",
        }
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Streaming => "streaming",
            Phase::Retrying => "retrying",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
            Phase::Halted => "halted",
            Phase::Standby => "standby",
        }
    }
}

/// The last error of a direction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorNote {
    pub message: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// One direction as last reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DirectionSnapshot {
    pub phase: Phase,
    /// Last source position acknowledged after a destination commit (display form).
    pub position: Option<String>,
    /// When the current streaming session began (RFC 3339, UTC).
    pub streaming_since: Option<String>,
    pub last_error: Option<ErrorNote>,
    /// Attempts that ended with an error since the process started.
    pub failed_attempts: u64,
    /// Pairs paused by a schema problem at the source: pair → reason.
    pub paused: std::collections::BTreeMap<String, String>,
}

impl Default for DirectionSnapshot {
    fn default() -> Self {
        DirectionSnapshot {
            phase: Phase::Starting,
            position: None,
            streaming_since: None,
            last_error: None,
            failed_attempts: 0,
            paused: Default::default(),
        }
    }
}

/// Both directions, in the order `[postgres→mysql, mysql→postgres]`.
#[derive(Debug)]
pub struct ServiceState {
    directions: [Mutex<DirectionSnapshot>; 2],
    secrets: Mutex<Vec<String>>,
    role: Mutex<Role>,
    version: watch::Sender<u64>,
    clocks: [DirectionClock; 2],
}

impl Default for ServiceState {
    fn default() -> Self {
        ServiceState {
            directions: [Mutex::new(DirectionSnapshot::default()), Mutex::new(DirectionSnapshot::default())],
            secrets: Mutex::new(Vec::new()),
            role: Mutex::new(Role::Starting),
            version: watch::channel(0).0,
            clocks: [DirectionClock::default(), DirectionClock::default()],
        }
    }
}

/// The two directions, in report order.
pub const DIRECTIONS: [Direction; 2] = [Direction::PostgresToMysql, Direction::MysqlToPostgres];

fn slot(d: Direction) -> usize {
    match d {
        Direction::PostgresToMysql => 0,
        Direction::MysqlToPostgres => 1,
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The state `run` reports to in this process.
pub fn global() -> &'static ServiceState {
    static STATE: OnceLock<ServiceState> = OnceLock::new();
    STATE.get_or_init(ServiceState::default)
}

impl ServiceState {
    fn update(&self, d: Direction, f: impl FnOnce(&mut DirectionSnapshot)) {
        let up = {
            let mut s = self.directions[slot(d)].lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut s);
            s.phase == Phase::Streaming
        };
        metrics::gauge!(crate::metrics::DIRECTION_UP, "direction" => d.key()).set(if up { 1.0 } else { 0.0 });
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The lag and liveness clock of a direction.
    pub fn clock(&self, d: Direction) -> &DirectionClock {
        &self.clocks[slot(d)]
    }

    /// Has every direction that is meant to be running (starting, streaming
    /// or retrying) checked in within `within`? A halted, stopped or standby
    /// direction runs no loop and does not count.
    pub fn loops_alive(&self, within: std::time::Duration) -> bool {
        DIRECTIONS.iter().all(|&d| match self.snapshot(d).phase {
            Phase::Starting | Phase::Streaming | Phase::Retrying => self.clock(d).since_check_in().is_some_and(|t| t <= within),
            Phase::Stopped | Phase::Failed | Phase::Halted | Phase::Standby => true,
        })
    }

    /// The direction stopped at a change it cannot replicate (`error`): it
    /// stays halted, with the error shown, until the process stops.
    pub fn halted(&self, d: Direction, error: &crate::Error) {
        let message = self.redact(error.to_string());
        self.update(d, |s| {
            s.phase = Phase::Halted;
            s.streaming_since = None;
            s.last_error = Some(ErrorNote { message, at: now() });
        });
    }

    /// Texts that must never appear in a stored error (the configured passwords).
    pub fn set_secrets(&self, secrets: Vec<String>) {
        *self.secrets.lock().unwrap_or_else(PoisonError::into_inner) = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    }

    fn redact(&self, text: String) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets.iter().fold(text, |t, s| t.replace(s.as_str(), "***"))
    }

    /// Runs one attempt of a direction, recording its start and how it ended.
    pub async fn track<T>(&self, d: Direction, attempt: impl std::future::Future<Output = crate::Result<T>>) -> crate::Result<T> {
        self.clock(d).check_in();
        self.update(d, |s| {
            s.phase = Phase::Starting;
            s.streaming_since = None;
        });
        let result = attempt.await;
        match &result {
            Ok(_) => self.update(d, |s| {
                s.phase = Phase::Stopped;
                s.streaming_since = None;
            }),
            Err(e) => {
                let phase = if e.classify() == crate::error::ErrorClass::Transient {
                    Phase::Retrying
                } else if e.halts_direction() {
                    Phase::Halted
                } else {
                    Phase::Failed
                };
                let message = self.redact(e.to_string());
                self.update(d, |s| {
                    s.phase = phase;
                    s.streaming_since = None;
                    s.failed_attempts += 1;
                    s.last_error = Some(ErrorNote { message, at: now() });
                });
            }
        }
        result
    }

    /// The direction's applier is connected and its source streams.
    pub fn streaming(&self, d: Direction) {
        self.update(d, |s| {
            s.phase = Phase::Streaming;
            s.streaming_since = Some(now());
        });
    }

    /// A position the destination has committed (and the source is told).
    pub fn acknowledged(&self, d: Direction, pos: &SourcePos) {
        let text = pos.to_string();
        self.update(d, |s| s.position = Some(text));
    }

    /// A pair of the direction paused (`Some(reason)`) or resumed (`None`).
    pub fn pair_paused(&self, d: Direction, pair: &str, reason: Option<&str>) {
        let reason = reason.map(|r| self.redact(r.to_string()));
        self.update(d, |s| match reason {
            Some(r) => {
                s.paused.insert(pair.to_string(), r);
            }
            None => {
                s.paused.remove(pair);
            }
        });
    }

    /// Waiting for the lease held by `holder`: both directions are on standby.
    pub fn standby(&self, holder: Option<String>) {
        let role = Role::Standby { holder };
        if *self.role.lock().unwrap_or_else(PoisonError::into_inner) == role {
            return;
        }
        *self.role.lock().unwrap_or_else(PoisonError::into_inner) = role;
        metrics::gauge!(crate::metrics::LEASE_HELD).set(0.0);
        for d in DIRECTIONS {
            self.update(d, |s| {
                s.phase = Phase::Standby;
                s.streaming_since = None;
            });
        }
    }

    /// Neither holding the lease nor sure who does (lease lost, Postgres
    /// unreachable): both directions are retrying with `why`.
    pub fn lease_unknown(&self, why: String) {
        *self.role.lock().unwrap_or_else(PoisonError::into_inner) = Role::Starting;
        metrics::gauge!(crate::metrics::LEASE_HELD).set(0.0);
        let message = self.redact(why);
        for d in DIRECTIONS {
            let note = ErrorNote { message: message.clone(), at: now() };
            self.update(d, |s| {
                s.phase = Phase::Retrying;
                s.streaming_since = None;
                s.last_error = Some(note);
            });
        }
    }

    /// Holding the lease: the directions start.
    pub fn active(&self) {
        *self.role.lock().unwrap_or_else(PoisonError::into_inner) = Role::Active;
        metrics::gauge!(crate::metrics::LEASE_HELD).set(1.0);
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The HA role now.
    pub fn role(&self) -> Role {
        self.role.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The direction as last reported.
    pub fn snapshot(&self, d: Direction) -> DirectionSnapshot {
        self.directions[slot(d)].lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// True when both directions stream.
    pub fn all_streaming(&self) -> bool {
        DIRECTIONS.iter().all(|&d| self.snapshot(d).phase == Phase::Streaming)
    }

    /// A receiver that wakes on every change.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lsn;

    #[tokio::test]
    async fn a_direction_goes_from_starting_to_streaming_to_retrying_with_the_error_redacted() {
        let st = ServiceState::default();
        st.set_secrets(vec!["hunter2".into(), String::new()]);
        let d = Direction::PostgresToMysql;
        assert_eq!(st.snapshot(d).phase, Phase::Starting);
        let rx = st.changed();
        let r: crate::Result<()> = st
            .track(d, async {
                st.streaming(d);
                assert!(!st.all_streaming(), "only one direction streams");
                st.acknowledged(d, &SourcePos::Postgres(Lsn(0x16B3748)));
                Err(crate::Error::Auth("login with hunter2 failed".into()))
            })
            .await;
        assert!(r.is_err());
        assert!(rx.has_changed().unwrap_or(false));
        let s = st.snapshot(d);
        assert_ne!(s.phase, Phase::Streaming);
        assert_eq!(s.position.as_deref(), Some(SourcePos::Postgres(Lsn(0x16B3748)).to_string().as_str()));
        let err = s.last_error.map(|e| e.message).unwrap_or_default();
        assert!(err.contains("***") && !err.contains("hunter2"), "{err}");
        assert_eq!(s.failed_attempts, 1);
    }

    #[tokio::test]
    async fn both_directions_streaming_is_all_streaming() {
        let st = ServiceState::default();
        for d in DIRECTIONS {
            st.streaming(d);
        }
        assert!(st.all_streaming());
        let _ = st.track(Direction::MysqlToPostgres, async { Ok::<_, crate::Error>(()) }).await;
        assert!(!st.all_streaming());
        assert_eq!(st.snapshot(Direction::MysqlToPostgres).phase, Phase::Stopped);
    }

    #[test]
    fn standby_puts_both_directions_on_standby_and_names_the_holder() {
        let st = ServiceState::default();
        assert_eq!(st.role(), Role::Starting);
        st.standby(Some("tandem crm a:1".into()));
        assert_eq!(st.role(), Role::Standby { holder: Some("tandem crm a:1".into()) });
        assert!(DIRECTIONS.iter().all(|&d| st.snapshot(d).phase == Phase::Standby));
        st.active();
        assert_eq!(st.role().as_str(), "active");
        st.lease_unknown("lease connection lost".into());
        assert!(DIRECTIONS.iter().all(|&d| st.snapshot(d).phase == Phase::Retrying), "not a healthy standby");
    }

    #[tokio::test(start_paused = true)]
    async fn loops_are_alive_only_while_every_running_direction_checks_in() {
        let st = ServiceState::default();
        let within = std::time::Duration::from_secs(2);
        assert!(!st.loops_alive(within), "starting directions that never checked in are not alive");
        for d in DIRECTIONS {
            st.streaming(d);
            st.clock(d).check_in();
        }
        assert!(st.loops_alive(within));
        tokio::time::advance(std::time::Duration::from_secs(3)).await;
        st.clock(Direction::PostgresToMysql).check_in();
        assert!(!st.loops_alive(within), "mysql→postgres stopped checking in");
        st.halted(Direction::MysqlToPostgres, &crate::Error::Unsupported("compressed binlog events".into()));
        assert!(st.loops_alive(within), "a halted direction runs no loop");
        assert_eq!(st.snapshot(Direction::MysqlToPostgres).phase, Phase::Halted);
    }
}
