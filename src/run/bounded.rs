//! Bounded waits on a database: `bounded()` awaits a future under a
//! deadline and checks the direction in (`DirectionClock::check_in`) every
//! second while it waits, and `Bounded` puts every call of a `BatchApplier`
//! under such a bound.
//!
//! Invariants: a wait that passes its bound ends with `Error::Timeout`
//! (transient: the direction reconnects and resumes from its checkpoint, so
//! nothing is lost or reordered) and the future is dropped; a bounded wait
//! keeps the systemd watchdog fed (it will end), an unbounded one anywhere
//! in a direction's loop does not. The server-side statement and lock
//! timeouts (set on the applier sessions) end most stalls first, with the
//! server's own error; these bounds catch a server or network that sends
//! nothing at all.

use crate::apply::BatchApplier;
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::config::Timeouts;
use crate::model::{Change, Origin, SourcePos, TxnMeta};
use crate::service::liveness::DirectionClock;
use crate::{Error, Result};
use std::future::Future;
use std::time::Duration;

/// How often a bounded wait checks its direction in.
const CHECK_IN_EVERY: Duration = Duration::from_secs(1);

/// Awaits `fut` for at most `after`, checking `clock` in every second.
pub async fn bounded<T>(clock: &DirectionClock, what: &str, after: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + after;
    tokio::pin!(fut);
    loop {
        clock.check_in();
        let tick = (tokio::time::Instant::now() + CHECK_IN_EVERY).min(deadline);
        match tokio::time::timeout_at(tick, &mut fut).await {
            Ok(r) => return r,
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(Error::Timeout { what: what.to_string(), after });
            }
            Err(_) => {}
        }
    }
}

/// A `BatchApplier` whose every call is bounded: single statements by
/// `Timeouts::apply_call`, writes (several statements: merge read, writes,
/// bisection of a rejected chunk) by four times that.
pub struct Bounded<'c, A> {
    inner: A,
    clock: &'c DirectionClock,
    call: Duration,
    write: Duration,
    /// Names the destination in timeout errors ("mysql applier").
    name: &'static str,
}

impl<'c, A: BatchApplier> Bounded<'c, A> {
    pub fn new(inner: A, clock: &'c DirectionClock, timeouts: &Timeouts, name: &'static str) -> Self {
        let call = timeouts.apply_call();
        Bounded { inner, clock, call, write: call * 4, name }
    }

    fn what(&self, call: &str) -> String {
        format!("{} {call} (the destination did not answer; [timeouts] statement_seconds)", self.name)
    }
}

impl<A: BatchApplier> BatchApplier for Bounded<'_, A> {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        let what = self.what("checkpoint read");
        bounded(self.clock, &what, self.call, self.inner.checkpoint()).await
    }
    async fn source_identity(&mut self) -> Result<Option<String>> {
        let what = self.what("source identity read");
        bounded(self.clock, &what, self.call, self.inner.source_identity()).await
    }
    fn set_source_identity(&mut self, identity: String) {
        self.inner.set_source_identity(identity)
    }
    async fn begin(&mut self) -> Result<()> {
        let what = self.what("begin");
        bounded(self.clock, &what, self.call, self.inner.begin()).await
    }
    async fn write(&mut self, origin: Origin, changes: &[Change]) -> Result<()> {
        let what = self.what("write");
        bounded(self.clock, &what, self.write, self.inner.write(origin, changes)).await
    }
    async fn commit(&mut self, last: &TxnMeta) -> Result<()> {
        let what = self.what("commit");
        bounded(self.clock, &what, self.write, self.inner.commit(last)).await
    }
    async fn rollback(&mut self) -> Result<()> {
        let what = self.what("rollback");
        bounded(self.clock, &what, self.call, self.inner.rollback()).await
    }
    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        let what = self.what("parked-pairs read");
        bounded(self.clock, &what, self.call, self.inner.parked_pairs()).await
    }
    async fn park(&mut self, changes: &[Change], reason: &str) -> Result<()> {
        let what = self.what("park");
        bounded(self.clock, &what, self.write, self.inner.park(changes, reason)).await
    }
    async fn unpark(&mut self, pair: usize) -> Result<u64> {
        let what = self.what("unpark");
        bounded(self.clock, &what, self.write, self.inner.unpark(pair)).await
    }
    fn pair_key(&self, pair: usize) -> Option<Vec<usize>> {
        self.inner.pair_key(pair)
    }
    fn destination_outcomes(&mut self) -> Vec<Change> {
        self.inner.destination_outcomes()
    }
    async fn apply_chunk(&mut self, job: &ChunkJob) -> Result<ChunkOutcome> {
        let what = self.what("backfill chunk merge");
        bounded(self.clock, &what, self.write, self.inner.apply_chunk(job)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_its_bound_is_a_transient_timeout_and_checks_in_while_it_waits() {
        let clock = DirectionClock::default();
        let started = tokio::time::Instant::now();
        let never = std::future::pending::<Result<()>>();
        let watcher = async {
            tokio::time::sleep(Duration::from_millis(4500)).await;
            clock.since_check_in()
        };
        let (r, since) = tokio::join!(bounded(&clock, "mysql applier commit", Duration::from_secs(10), never), watcher);
        assert!(since.is_some_and(|s| s <= CHECK_IN_EVERY), "checked in every second while waiting: {since:?}");
        match r {
            Err(e @ Error::Timeout { .. }) => {
                assert_eq!(e.classify(), crate::error::ErrorClass::Transient);
                assert!(e.to_string().contains("mysql applier commit"), "{e}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::from_secs(10), "ends at the bound, not later");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_within_its_bound_returns_the_result() {
        let clock = DirectionClock::default();
        let r = bounded(&clock, "x", Duration::from_secs(10), async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(7)
        })
        .await;
        assert_eq!(r.ok(), Some(7));
    }
}
