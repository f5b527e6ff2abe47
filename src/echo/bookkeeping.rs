//! `Bookkept`: the applier side of the echo stage. It wraps a direction's
//! applier and registers each batch it commits, with the `seen` of its
//! transactions, in the row-incarnation registry (so the other direction's
//! echo stage can look the batch up when it reads the batch's echo), and
//! drops the writes of forwarded outcomes that this side's own later delete
//! supersedes (`BatchLog::without_superseded`). A batch is registered with
//! the changes the destination's own triggers made to its rows
//! (`apply::readback`), which the echo stage reading that side forwards.
//!
//! Everything else passes to the wrapped applier unchanged; with no
//! registry it registers nothing and drops nothing.

use super::registry::{BatchLog, Incarnations};
use super::stage::SeenNow;
use crate::apply::BatchApplier;
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::config::{PairConfig, Side};
use crate::model::{Change, Origin, SourcePos, TxnMeta};
use crate::Result;
use std::sync::Arc;

/// An applier writing to `dest`, with the echo bookkeeping around it.
pub struct Bookkept<A> {
    inner: A,
    log: BatchLog,
    seen: SeenNow,
    pairs: Vec<PairConfig>,
}

impl<A: BatchApplier> Bookkept<A> {
    /// Wraps `inner` (writing to `dest`); `seen` comes from the echo stage
    /// feeding the same batcher.
    pub fn new(inner: A, dest: Side, reg: Option<Arc<Incarnations>>, seen: SeenNow, pairs: Vec<PairConfig>) -> Self {
        let mut log = BatchLog::new(dest);
        if let Some(reg) = reg {
            log.attach(reg);
        }
        Bookkept { inner, log, seen, pairs }
    }

    pub fn inner(&mut self) -> &mut A {
        &mut self.inner
    }
}

impl<A: BatchApplier> BatchApplier for Bookkept<A> {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        self.inner.checkpoint().await
    }

    async fn source_identity(&mut self) -> Result<Option<String>> {
        self.inner.source_identity().await
    }

    fn set_source_identity(&mut self, identity: String) {
        self.inner.set_source_identity(identity)
    }

    async fn begin(&mut self) -> Result<()> {
        self.inner.begin().await
    }

    async fn write(&mut self, origin: Origin, changes: &[Change]) -> Result<()> {
        self.log.set_seen(self.seen.get());
        if origin == Origin::Outcome {
            let kept = self.log.without_superseded(changes, true, &self.pairs);
            return self.inner.write(origin, &kept).await;
        }
        self.inner.write(origin, changes).await
    }

    async fn commit(&mut self, last: &TxnMeta) -> Result<()> {
        self.log.set_seen(self.seen.get());
        // Registered before COMMIT is sent: its echo cannot be read earlier.
        // With it, what the destination's triggers changed in the batch: its
        // echo stage forwards them as that side's outcome.
        let outcomes = self.inner.destination_outcomes();
        self.log.committing(&last.position, outcomes);
        match self.inner.commit(last).await {
            Ok(()) => {
                self.log.committed(&last.position);
                Ok(())
            }
            Err(e) => {
                self.log.failed(&last.position);
                Err(e)
            }
        }
    }

    async fn rollback(&mut self) -> Result<()> {
        self.inner.rollback().await
    }

    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        self.inner.parked_pairs().await
    }

    async fn park(&mut self, changes: &[Change], reason: &str) -> Result<()> {
        self.inner.park(changes, reason).await
    }

    async fn unpark(&mut self, pair: usize) -> Result<u64> {
        self.inner.unpark(pair).await
    }

    fn pair_key(&self, pair: usize) -> Option<Vec<usize>> {
        self.inner.pair_key(pair)
    }

    async fn apply_chunk(&mut self, job: &ChunkJob) -> Result<ChunkOutcome> {
        self.inner.apply_chunk(job).await
    }
}
