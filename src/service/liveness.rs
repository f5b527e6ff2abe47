//! `DirectionClock`: what makes a direction's lag and liveness true at the
//! moment they are read, not at the moment of the last commit.
//!
//! The batcher tells the clock when it reads a transaction's `Begin`
//! (`began`, with the source commit time), when a destination commit made
//! everything read so far durable (`applied`), and when the source proved
//! there is nothing more to read (`caught_up`, from heartbeats and
//! keepalives). Lag at any instant is then: now − the source commit time of
//! the oldest transaction read but not yet applied; with nothing pending, 0
//! while the last proof of being caught up is younger than the grace
//! (a few heartbeats), and the age of that proof after it — so a stall
//! anywhere (a frozen destination, a silent source, a stuck loop) makes the
//! lag grow between two scrapes instead of freezing at its last value.
//!
//! Every direction's loop also `check_in`s at least every second while it
//! runs, including while it waits on a database under a bound
//! (`crate::run::bounded`); the systemd watchdog is fed only while every
//! running direction has checked in recently (`ServiceState::loops_alive`).
//! Wall-clock time (µs since the epoch) is used for lag, as the sources'
//! commit times are wall-clock; tokio's clock for check-ins, so they are
//! tested under paused time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Inner {
    /// Source commit time (µs) of the oldest transaction read but not applied.
    oldest_pending: Option<i64>,
    /// When (µs) the direction last knew it had applied all the source had.
    caught_up_at: Option<i64>,
    /// Source commit time (µs) of the newest transaction applied.
    last_applied: Option<i64>,
    last_check_in: Option<Instant>,
}

/// The lag and liveness clock of one direction (see the module docs).
#[derive(Debug)]
pub struct DirectionClock {
    inner: Mutex<Inner>,
    /// How long "caught up" stays true without a fresh proof, in ms.
    grace_ms: AtomicU64,
}

impl Default for DirectionClock {
    fn default() -> Self {
        DirectionClock { inner: Mutex::new(Inner::default()), grace_ms: AtomicU64::new(3_000) }
    }
}

/// Now, µs since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl DirectionClock {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sets how long "caught up" holds without a new heartbeat: a few
    /// heartbeat periods, so one late heartbeat does not raise the lag.
    pub fn set_heartbeat(&self, heartbeat: Duration) {
        let grace = heartbeat * 3 + Duration::from_secs(1);
        self.grace_ms.store(grace.as_millis() as u64, Ordering::Relaxed);
    }

    fn grace_micros(&self) -> i64 {
        self.grace_ms.load(Ordering::Relaxed) as i64 * 1000
    }

    /// A transaction committed at `commit_ts` (µs; 0 = unknown, counted from
    /// now) was read. Only the oldest pending one counts.
    pub fn began(&self, commit_ts: i64) {
        let at = if commit_ts > 0 { commit_ts } else { now_micros() };
        self.with(|s| {
            if s.oldest_pending.is_none() {
                s.oldest_pending = Some(at);
            }
            s.last_check_in = Some(Instant::now());
        });
    }

    /// Everything read so far is durable at the destination; the newest of
    /// it committed at the source at `commit_ts` (µs; 0 = unknown).
    pub fn applied(&self, commit_ts: i64) {
        let now = now_micros();
        self.with(|s| {
            s.oldest_pending = None;
            s.caught_up_at = Some(now);
            if commit_ts > 0 {
                s.last_applied = Some(s.last_applied.map_or(commit_ts, |l| l.max(commit_ts)));
            }
            s.last_check_in = Some(Instant::now());
        });
    }

    /// The source said there is nothing more up to its current position,
    /// and nothing read is pending: caught up now.
    pub fn caught_up(&self) {
        let now = now_micros();
        self.with(|s| {
            if s.oldest_pending.is_none() {
                s.caught_up_at = Some(now);
            }
            s.last_check_in = Some(Instant::now());
        });
    }

    /// The direction's loop is alive (it passed a point where it does not wait unbounded).
    pub fn check_in(&self) {
        self.with(|s| s.last_check_in = Some(Instant::now()));
    }

    /// Time since the last check-in (`None` before the first).
    pub fn since_check_in(&self) -> Option<Duration> {
        self.with(|s| s.last_check_in.map(|t| t.elapsed()))
    }

    /// The lag at `now` (µs since the epoch); `None` before the direction
    /// read or applied anything.
    pub fn lag_seconds_at(&self, now: i64) -> Option<f64> {
        let grace = self.grace_micros();
        self.with(|s| match (s.oldest_pending, s.caught_up_at) {
            (Some(oldest), _) => Some((now - oldest).max(0) as f64 / 1e6),
            (None, Some(at)) if now - at <= grace => Some(0.0),
            (None, Some(at)) => Some((now - at) as f64 / 1e6),
            (None, None) => None,
        })
    }

    /// The lag now.
    pub fn lag_seconds(&self) -> Option<f64> {
        self.lag_seconds_at(now_micros())
    }

    /// Source commit time of the newest applied transaction, in seconds since the epoch.
    pub fn last_applied_seconds(&self) -> Option<f64> {
        self.with(|s| s.last_applied.map(|t| t as f64 / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn lag_counts_from_the_oldest_unapplied_commit_and_keeps_growing_until_it_is_applied() {
        let c = DirectionClock::default();
        assert_eq!(c.lag_seconds_at(100 * S), None, "nothing known yet");
        c.began(100 * S);
        c.began(105 * S);
        assert_eq!(c.lag_seconds_at(110 * S), Some(10.0), "the oldest pending transaction counts");
        assert_eq!(c.lag_seconds_at(130 * S), Some(30.0), "a stall makes it grow");
        c.applied(105 * S);
        assert_eq!(c.last_applied_seconds(), Some(105.0));
        let now = now_micros();
        assert_eq!(c.lag_seconds_at(now), Some(0.0), "caught up right after the commit");
    }

    #[test]
    fn without_a_fresh_heartbeat_caught_up_expires_and_the_lag_grows_with_the_silence() {
        let c = DirectionClock::default();
        c.set_heartbeat(Duration::from_secs(1));
        c.caught_up();
        let t = now_micros();
        assert_eq!(c.lag_seconds_at(t + 3 * S), Some(0.0), "within the grace of 3 heartbeats + 1 s");
        let lag = c.lag_seconds_at(t + 10 * S).unwrap();
        assert!((9.9..=10.1).contains(&lag), "{lag}");
        c.caught_up();
        assert_eq!(c.lag_seconds_at(now_micros()), Some(0.0), "a heartbeat makes it fresh again");
    }

    #[test]
    fn a_heartbeat_does_not_hide_a_transaction_read_but_not_applied() {
        let c = DirectionClock::default();
        c.began(50 * S);
        c.caught_up();
        assert_eq!(c.lag_seconds_at(60 * S), Some(10.0));
        c.began(0);
        assert_eq!(c.lag_seconds_at(60 * S), Some(10.0), "a later transaction does not reset the oldest");
    }

    #[tokio::test(start_paused = true)]
    async fn check_ins_age_with_tokio_time() {
        let c = DirectionClock::default();
        assert_eq!(c.since_check_in(), None);
        c.check_in();
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(c.since_check_in(), Some(Duration::from_secs(7)));
        c.began(0);
        assert_eq!(c.since_check_in(), Some(Duration::ZERO), "reading a transaction is a check-in");
    }
}
