//! Appliers write batches of normalized changes to a destination database,
//! atomically with the checkpoint of the last source transaction they contain.
//!
//! One driver (`driver::Applier`) does the work for both databases:
//! `screen` sets apart the changes holding a source value with no canonical
//! form (quarantine / stop); `merge` decides which rows to read and merges
//! each change field by field (`crate::conflict`); `plan` turns the result
//! into destination-neutral row operations (upsert, keyed delete, partial
//! update, truncate) in source order; `quarantine` and `park` set changes
//! aside. Each database is only a dialect (`destination::Destination`):
//! `postgres` with `postgres_sql`, `mysql` with `mysql_sql`; their state
//! rows are written through `crate::state`.

pub mod destination;
pub mod driver;
pub mod fit;
pub mod merge;
pub mod mysql;
pub mod mysql_sql;
pub mod park;
pub mod plan;
pub mod postgres;
pub mod postgres_sql;
pub mod quarantine;
pub mod readback;
pub mod screen;

use crate::model::{Change, Origin, SourcePos, TxnMeta};
use crate::Result;

/// A destination that applies batches exactly once.
///
/// Contract: `begin` opens a destination transaction; `write` adds changes, in
/// source order, to that open transaction (it may be called many times: a
/// large source transaction arrives in chunks; the changes of one call come
/// from transactions of one `origin`); `commit(last)` writes the position of
/// `last` (the batch's last source transaction) as the direction's
/// checkpoint in the same transaction and commits — when it returns `Ok`,
/// the rows and the checkpoint are durable together, and never one without
/// the other. `rollback` discards everything since `begin`. Writes are
/// idempotent (upserts and keyed deletes), so replaying source transactions
/// after the checkpoint is harmless. After any error the caller must
/// `rollback` (or drop the applier) before using it again.
#[allow(async_fn_in_trait)]
pub trait BatchApplier {
    /// The checkpoint stored at the destination, if any.
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>>;
    /// The source server identity stored with the checkpoint, where this
    /// destination keeps one.
    async fn source_identity(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
    /// The source server identity to store with every later checkpoint.
    fn set_source_identity(&mut self, _identity: String) {}
    async fn begin(&mut self) -> Result<()>;
    /// Adds `changes` of transactions of `origin` (`Client`, or an
    /// `Outcome` the destination adopts also in columns its source side
    /// does not own) to the open transaction.
    async fn write(&mut self, origin: Origin, changes: &[Change]) -> Result<()>;
    async fn commit(&mut self, last: &TxnMeta) -> Result<()>;
    async fn rollback(&mut self) -> Result<()>;
    /// Pairs with parked changes of this direction (`park`), by pair index.
    async fn parked_pairs(&mut self) -> Result<Vec<usize>>;
    /// Sets changes of a paused pair aside, in order, in the open transaction.
    async fn park(&mut self, changes: &[Change], reason: &str) -> Result<()>;
    /// Applies the parked changes of `pair` in order and removes them, in the
    /// open transaction; returns how many there were.
    async fn unpark(&mut self, pair: usize) -> Result<u64>;
    /// Key column indices of `pair` (backfill windows track keys that move).
    fn pair_key(&self, _pair: usize) -> Option<Vec<usize>> {
        None
    }
    /// The changes the destination's own triggers made to the rows written
    /// in the open transaction (`readback`), taken: the destination's
    /// outcome, for the other direction to apply once this commits.
    fn destination_outcomes(&mut self) -> Vec<Change> {
        Vec::new()
    }
    /// Merges a staged backfill chunk (or abandons it) and records the
    /// pair's backfill progress, in the open transaction
    /// (`crate::backfill`).
    async fn apply_chunk(&mut self, job: &crate::backfill::ChunkJob) -> Result<crate::backfill::ChunkOutcome> {
        Ok(crate::backfill::ChunkOutcome::Abandoned(format!("this destination cannot merge backfill chunks (pair #{})", job.pair)))
    }
}
