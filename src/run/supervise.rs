//! Supervision of one direction: restart it from its checkpoint after a
//! transient error (lost connection, deadlock, lock timeout) with capped,
//! jittered exponential backoff; stop at a definite error or at shutdown.
//!
//! Time is tokio's, so the backoff is tested under paused time. An attempt
//! that ran for `HEALTHY_RUN` before failing starts the backoff over. Every
//! retry is counted in `tandem_apply_retries_total{direction,reason}`, and
//! the direction checks in while it waits for the next attempt.

use super::backoff::Backoff;
use super::batcher::BatcherStats;
use crate::config::Direction;
use crate::{Error, Result};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first reconnect waits up to this long (full jitter)…
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// …doubling up to this cap.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// An attempt that ran this long was healthy: its failure is a new outage.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs one direction, restarting it from its checkpoint after transient
/// errors (lost connections, deadlocks) with capped exponential backoff and
/// full jitter; a definite error ends it. The other direction is unaffected
/// by a restart: each has its own connections and checkpoint.
pub(super) async fn supervise<F, Fut>(direction: Direction, token: &CancellationToken, mut attempt: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<BatcherStats>>,
{
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut outage_logged = false;
    loop {
        let started = Instant::now();
        match attempt().await {
            Ok(s) => {
                tracing::info!(%direction, transactions = s.transactions, changes = s.changes, batches = s.batches, "stopped");
                return Ok(());
            }
            Err(e) if token.is_cancelled() => {
                tracing::info!(%direction, error = %e, "stopped during shutdown");
                return Ok(());
            }
            Err(e) if e.classify() == crate::error::ErrorClass::Transient => {
                if started.elapsed() > HEALTHY_RUN {
                    backoff.reset();
                    outage_logged = false;
                }
                let side = match (&e, direction) {
                    (Error::Mysql(_), _) => "mysql",
                    (Error::Postgres(_) | Error::PgServer { .. }, _) => "postgres",
                    (_, Direction::PostgresToMysql) => "postgres",
                    (_, Direction::MysqlToPostgres) => "mysql",
                };
                metrics::counter!(crate::metrics::RECONNECTS, "side" => side).increment(1);
                metrics::counter!(crate::metrics::APPLY_RETRIES, "direction" => direction.key(), "reason" => e.retry_reason()).increment(1);
                if !outage_logged {
                    tracing::warn!(%direction, error = %e, "connection problem; retrying from the checkpoint with backoff");
                    outage_logged = true;
                } else {
                    tracing::debug!(%direction, error = %e, "retry failed");
                }
                let wait = backoff.next_delay();
                // The loop is alive while it waits: it checks in every second.
                let clock = crate::service::state::global().clock(direction);
                let until = Instant::now() + wait;
                while Instant::now() < until {
                    clock.check_in();
                    tokio::select! {
                        _ = token.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until(until.min(Instant::now() + Duration::from_secs(1))) => {}
                    }
                }
            }
            Err(e) => {
                // The error itself is printed once, as `tandem run` exits.
                tracing::error!(%direction, "direction failed; stopping the pipeline");
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn lost() -> Error {
        Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset"))
    }

    /// Runs `supervise` over attempts that fail with the given errors in
    /// turn (then succeed); returns the result and when each attempt began.
    async fn attempts(errors: Vec<Error>, token: CancellationToken) -> (Result<()>, Vec<Duration>) {
        let t0 = Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(errors.into_iter()));
        let (s, e) = (Arc::clone(&starts), Arc::clone(&errors));
        let r = supervise(Direction::PostgresToMysql, &token, move || {
            s.lock().unwrap().push(t0.elapsed());
            let next = e.lock().unwrap().next();
            async move {
                match next {
                    Some(err) => Err(err),
                    None => Ok(BatcherStats::default()),
                }
            }
        })
        .await;
        let starts = starts.lock().unwrap().clone();
        (r, starts)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_growing_jittered_delays_under_the_cap() {
        let (r, starts) = attempts((0..8).map(|_| lost()).collect(), CancellationToken::new()).await;
        assert!(r.is_ok());
        assert_eq!(starts.len(), 9, "eight failures, then the attempt that ran");
        let mut ceiling = BACKOFF_BASE;
        for w in starts.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap <= ceiling, "a retry waited {gap:?}, more than its ceiling {ceiling:?}");
            ceiling = (ceiling * 2).min(BACKOFF_CAP);
        }
        assert!(*starts.last().unwrap() > Duration::ZERO, "the retries did wait");
    }

    #[tokio::test(start_paused = true)]
    async fn a_definite_error_is_not_retried() {
        let (r, starts) = attempts(vec![Error::Decode("bad bytes".into()), lost()], CancellationToken::new()).await;
        assert!(matches!(r, Err(Error::Decode(_))), "{r:?}");
        assert_eq!(starts, vec![Duration::ZERO]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait_for_the_next_retry_at_once() {
        let token = CancellationToken::new();
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            cancel.cancel();
        });
        // Long after the first retry's ceiling: the cancelled wait returns first.
        let before = Instant::now();
        let (r, starts) = attempts((0..20).map(|_| lost()).collect(), token).await;
        assert!(r.is_ok(), "a shutdown is a clean stop");
        assert!(before.elapsed() < BACKOFF_CAP, "waited {:?}", before.elapsed());
        assert!(starts.len() < 20, "{starts:?}");
    }
}
