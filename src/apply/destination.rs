//! `Destination`: what a database must provide for the applier driver
//! (`driver::Applier`) to write a direction's changes into it — its dialect
//! of a few operations, nothing of the batching, merging, bisection or
//! quarantine logic, which the driver owns.
//!
//! Contract: every operation acts inside the transaction `begin` opened.
//! A destination may buffer statements and send them with the next `flush`
//! (or the next operation that reads); whatever it buffered is sent, in
//! order, before `commit` returns, and a failure of any of it is returned
//! by the call that sent it. After any error the driver calls `rollback`.

use super::merge::{Current, InsertRun};
use super::plan::Run;
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::config::{PairConfig, Side};
use crate::model::{Row, SourcePos, TxnMeta};
use crate::schema::PairSchema;
use crate::state::{ConflictRow, QuarantineRow};
use crate::{Error, Result};
use std::collections::HashMap;

/// What a batch commits besides its rows.
pub struct Commit<'a> {
    /// The batch's last source transaction: its position is the checkpoint.
    pub last: &'a TxnMeta,
    pub quarantine: Vec<QuarantineRow>,
    pub conflicts: Vec<ConflictRow>,
}

/// What became of a chunk written as guarded updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// Not attempted (this chunk cannot be written that way); nothing sent.
    NotTried,
    /// Every guarded row changed: the chunk is written.
    Applied,
    /// A guard missed: the destination undid the chunk.
    Missed,
}

/// One database as the destination of a direction (see the module doc).
#[allow(async_fn_in_trait)]
pub trait Destination {
    /// The side this database is.
    const SIDE: Side;
    /// Whether `write_guarded` can write chunks of plain updates unread.
    const GUARDED_UPDATES: bool;
    /// A chunk of fresh inserts, rendered before anything of it is sent.
    type Fresh;

    /// The direction's checkpoint stored here, if any.
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>>;
    /// The source server identity stored with the checkpoint, if kept here.
    async fn source_identity(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
    /// The source server identity to store with later checkpoints.
    fn set_source_identity(&mut self, _identity: String) {}
    /// The pair schemas changed: drop what was prepared for the old ones.
    fn schemas_changed(&mut self) {}

    async fn begin(&mut self) -> Result<()>;
    async fn savepoint(&mut self, name: &str) -> Result<()>;
    /// Rolls back to `name`, dropping whatever is buffered.
    async fn rollback_to(&mut self, name: &str) -> Result<()>;
    async fn rollback(&mut self) -> Result<()>;
    /// Sends what is buffered.
    async fn flush(&mut self) -> Result<()>;

    /// Pairs whose table here has triggers that fire on this session's
    /// writes: the driver reads their rows back after writing them.
    async fn firing_triggers(&mut self, _schemas: &[PairSchema]) -> Result<Vec<usize>> {
        Ok(Vec::new())
    }
    /// Reads, and locks, the current rows of `keys`; absent keys become `None`.
    async fn read_current(&mut self, schema: &PairSchema, keys: &[Row], current: &mut Current) -> Result<()>;
    /// Renders plain inserts of rows the destination should not have;
    /// `None` when a value cannot be rendered (the merge path reports it).
    fn fresh(&self, schemas: &[PairSchema], runs: &[InsertRun<'_>]) -> Option<Self::Fresh>;
    /// Writes rendered fresh inserts; the destination refuses the statement
    /// when a key exists after all.
    async fn insert_fresh(&mut self, fresh: Self::Fresh) -> Result<()>;
    /// Writes runs of partial updates, each row guarded by its before-image
    /// in `befores` (by pair and key text), in one step that tells whether
    /// every row changed (see `merge::assumed_current`).
    async fn write_guarded(&mut self, _schemas: &[PairSchema], _pairs: &[PairConfig], _runs: &[Run], _befores: &HashMap<(usize, String), &Row>) -> Result<Guarded> {
        Ok(Guarded::NotTried)
    }
    /// Writes the merged row operations, in order.
    async fn write_runs(&mut self, schemas: &[PairSchema], runs: Vec<Run>) -> Result<()>;
    /// The canonical column a rejection names, when the server says which.
    fn rejected_column(&self, _error: &Error, _schema: &PairSchema) -> Option<String> {
        None
    }
    /// Writes the batch's quarantine and conflict rows and the checkpoint
    /// (fenced by the lease where set), and commits.
    async fn commit(&mut self, commit: Commit<'_>) -> Result<()>;
    /// Removes quarantine row `id` and commits (a retry applied its change).
    async fn unquarantine_and_commit(&mut self, id: i64) -> Result<()>;

    /// Names of pairs with parked changes of this direction.
    async fn parked_pairs(&mut self) -> Result<Vec<String>>;
    /// Parks changes (pair name, change JSON) in order.
    async fn park(&mut self, pairs: &[String], changes: &[String], reason: &str) -> Result<()>;
    /// The oldest `limit` parked changes of a pair: (id, change JSON).
    async fn parked(&mut self, pair: &str, limit: usize) -> Result<Vec<(i64, String)>>;
    /// Deletes parked changes by id.
    async fn unpark(&mut self, ids: &[i64]) -> Result<()>;

    /// Merges a staged backfill chunk of `schema`'s pair (or abandons it)
    /// and records the pair's progress (`crate::backfill`).
    async fn merge_backfill_chunk(&mut self, schema: &PairSchema, job: &ChunkJob) -> Result<ChunkOutcome>;
}
