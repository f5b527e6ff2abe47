//! `Applier`: the one applier driver. How a batch of changes becomes
//! destination writes is the same for every database — screening values
//! with no canonical form, plain inserts of rows expected absent, guarded
//! updates, the locking read and the field-level merge, finding the changes
//! the destination rejects by savepoint bisection, the quarantine (or a
//! stop), parking and replaying the changes of paused pairs, and the commit
//! that writes the state rows and the checkpoint with the rows, and reading
//! back rows of tables whose triggers fire on tandem's writes (`readback`).
//! Each database supplies only its dialect (`Destination`).
//!
//! Invariants: nothing partial is ever committed — every chunk runs under a
//! savepoint, and any error the caller does not set aside is returned with
//! the transaction left for the caller to roll back; a change is set aside
//! only when the destination rejects it (`Error::is_rejection`, decided
//! here and nowhere else); conflicts and rejections of a rolled-back
//! attempt are forgotten with it.

use super::destination::{Commit, Destination, Guarded};
use super::merge::{assumed_current, conflict_rows, fresh_inserts, keys_needed, merge_chunk, report, Current};
use super::plan::RowOp;
use super::screen::Segment;
use super::BatchApplier;
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::config::{Config, Direction, OnError, PairConfig};
use crate::conflict::ConflictRecord;
use crate::error::ErrorClass;
use crate::model::{Change, Origin, SourcePos, TxnMeta};
use crate::schema::PairSchema;
use crate::state::QuarantineRow;
use crate::Result;
use std::sync::Arc;

/// After a chunk's guarded updates met changed rows, this many chunks are
/// merged against the current rows before guarded updates are tried again.
const GUARD_BACKOFF: u32 = 8;

/// Savepoints of the driver.
const CHUNK: &str = "tandem_chunk";
const ROW: &str = "tandem_row";
const FRESH: &str = "tandem_fresh";

/// An applier writing one direction's changes into the database `D`.
pub struct Applier<D> {
    pub(super) db: D,
    schemas: Arc<Vec<PairSchema>>,
    pairs: Vec<PairConfig>,
    direction: Direction,
    on_error: OnError,
    /// Conflicts decided in the open transaction, written with its commit.
    conflicts: Vec<ConflictRecord>,
    /// Changes rejected in the open transaction, quarantined with its commit.
    rejected: Vec<QuarantineRow>,
    /// The changes being written are an outcome the destination adopts
    /// (`Origin::Outcome`).
    outcome: bool,
    /// Chunks left to merge against read rows before trying guarded updates.
    guard_backoff: u32,
    /// Pairs whose destination table has triggers that fire on our writes
    /// (`None`: not read since the schemas were set).
    firing: Option<Vec<usize>>,
    /// What those triggers changed in the open transaction (`readback`).
    outcomes: Vec<Change>,
}

impl<D: Destination> Applier<D> {
    /// The driver around a connected destination, for `cfg`'s pairs.
    pub fn new(db: D, cfg: &Config, schemas: Arc<Vec<PairSchema>>) -> Self {
        Applier {
            db,
            schemas,
            pairs: cfg.pairs.clone(),
            direction: Direction::from_source(D::SIDE.other()),
            on_error: cfg.apply.on_error,
            conflicts: Vec::new(),
            rejected: Vec::new(),
            outcome: false,
            guard_backoff: 0,
            firing: None,
            outcomes: Vec::new(),
        }
    }

    /// Replaces the pair schemas (after DDL).
    pub fn set_schemas(&mut self, schemas: Arc<Vec<PairSchema>>) {
        self.db.schemas_changed();
        self.schemas = schemas;
        self.firing = None;
    }

    fn schema(&self, pair: usize) -> Option<&PairSchema> {
        self.schemas.iter().find(|s| s.pair == pair)
    }

    /// Applies one quarantined change again and removes quarantine row `id`,
    /// in one transaction that does not move the checkpoint. `Ok(Some(error))`
    /// when the destination still rejects it (nothing changed).
    pub async fn retry_quarantined(&mut self, change: &Change, id: i64) -> Result<Option<String>> {
        let on_error = self.on_error;
        self.on_error = OnError::Quarantine;
        self.begin().await?;
        let r = self.write(Origin::Client, std::slice::from_ref(change)).await;
        self.on_error = on_error;
        if let Err(e) = r {
            let _ = self.rollback().await;
            return Err(e);
        }
        if let Some(still) = self.rejected.pop() {
            self.rollback().await?;
            return Ok(Some(still.error));
        }
        self.db.unquarantine_and_commit(id).await?;
        self.conflicts.clear();
        Ok(None)
    }

    /// Sets a rejected change aside, or stops with it (`on_error = "stop"`).
    fn reject(&mut self, c: &Change, e: crate::Error) -> Result<()> {
        let Some(schema) = self.schema(c.pair) else { return Err(e) };
        let column = self.db.rejected_column(&e, schema);
        let r = super::quarantine::handle_rejection(schema, c, column, &e, self.on_error, self.direction)?;
        self.rejected.push(r);
        Ok(())
    }

    /// Applies a screened run of changes under a savepoint; when the
    /// destination rejects it, finds the rejected change(s) one at a time,
    /// each under its own savepoint, and sets them aside.
    async fn write_screened(&mut self, changes: &[Change]) -> Result<()> {
        self.db.savepoint(CHUNK).await?;
        let conflicts_before = self.conflicts.len();
        let outcomes_before = self.outcomes.len();
        let Err(e) = self.write_chunk(changes).await else { return Ok(()) };
        if !e.is_rejection() {
            return Err(e);
        }
        self.conflicts.truncate(conflicts_before);
        self.outcomes.truncate(outcomes_before);
        self.db.rollback_to(CHUNK).await?;
        for c in changes {
            let before = self.conflicts.len();
            let outcomes_before = self.outcomes.len();
            self.db.savepoint(ROW).await?;
            if let Err(e) = self.write_chunk(std::slice::from_ref(c)).await {
                if !e.is_rejection() {
                    return Err(e);
                }
                self.conflicts.truncate(before);
                self.outcomes.truncate(outcomes_before);
                self.db.rollback_to(ROW).await?;
                self.reject(c, e)?;
            }
        }
        Ok(())
    }

    /// Writes one chunk: as plain inserts when it only inserts rows the
    /// destination should not have, as guarded updates when it only updates,
    /// and otherwise merged against the current rows it reads and locks.
    async fn write_chunk(&mut self, changes: &[Change]) -> Result<()> {
        let schemas = Arc::clone(&self.schemas);
        let firing = self.firing.as_deref().unwrap_or(&[]);
        if changes.iter().any(|c| firing.contains(&c.pair)) {
            // Triggers change what is written: merge against read rows, then read them back.
            return self.write_merged(changes, true).await;
        }
        if let Some(fresh) = fresh_inserts(changes, &schemas, &self.pairs).and_then(|runs| self.db.fresh(&schemas, &runs)) {
            self.db.savepoint(FRESH).await?;
            match self.db.insert_fresh(fresh).await {
                Ok(()) => return self.db.flush().await,
                // A key exists at the destination or repeats in the chunk (or the
                // server refuses a value): undo, and merge against the current rows,
                // which also finds any refused change.
                Err(e) if e.classify() == ErrorClass::Definite && e.server_code().is_some() => self.db.rollback_to(FRESH).await?,
                Err(e) => return Err(e),
            }
        }
        if self.write_guarded(changes).await? {
            return Ok(());
        }
        self.write_merged(changes, false).await
    }

    /// Merges a chunk against the current rows it reads and locks, and
    /// writes the result; with `read_back`, reads the rows of pairs with
    /// firing triggers again and keeps what the triggers changed (`readback`).
    async fn write_merged(&mut self, changes: &[Change], read_back: bool) -> Result<()> {
        let schemas = Arc::clone(&self.schemas);
        let mut current = Current::new();
        for (pair, keys) in keys_needed(changes, &schemas) {
            if let Some(schema) = schemas.iter().find(|s| s.pair == pair) {
                self.db.read_current(schema, &keys, &mut current).await?;
            }
        }
        let source = self.direction.source();
        let (runs, outcome) = merge_chunk(changes, &schemas, &self.pairs, source, self.outcome, &mut current);
        report(&outcome, &schemas, source);
        self.conflicts.extend(outcome.conflicts);
        self.db.write_runs(&schemas, runs).await?;
        self.db.flush().await?;
        if !read_back {
            return Ok(());
        }
        let firing = self.firing.clone().unwrap_or_default();
        for (pair, keys) in keys_needed(changes, &schemas) {
            let Some(schema) = schemas.iter().find(|s| s.pair == pair).filter(|_| firing.contains(&pair)) else { continue };
            let mut now = Current::new();
            self.db.read_current(schema, &keys, &mut now).await?;
            let changed = super::readback::trigger_outcomes(schema, &keys, &current, &now, D::SIDE);
            if changed.is_empty() {
                continue;
            }
            if self.outcome {
                // Applying the other side's outcome: sending this one back would ping-pong.
                tracing::warn!(pair = %schema.name, rows = changed.len(), side = %D::SIDE,
                    "triggers changed rows of an outcome being applied; not sent back (triggers fire on both sides: see tandem validate)");
                continue;
            }
            tracing::debug!(pair = %schema.name, rows = changed.len(), side = %D::SIDE, "triggers changed replicated rows: sent back as this side's outcome");
            self.outcomes.extend(changed);
        }
        Ok(())
    }

    /// Writes a chunk of plain updates without reading the rows first, each
    /// row guarded by its before-image (`merge::assumed_current`), where the
    /// destination can (`Destination::write_guarded`). `Ok(false)` when
    /// nothing of the chunk is written: it does not qualify, or a guard
    /// missed (a row changed at the destination since the source read it, or
    /// is gone) and the destination undid it, to be merged against the
    /// current rows; the next few chunks then skip the attempt.
    async fn write_guarded(&mut self, changes: &[Change]) -> Result<bool> {
        if !D::GUARDED_UPDATES {
            return Ok(false);
        }
        if self.guard_backoff > 0 {
            self.guard_backoff -= 1;
            return Ok(false);
        }
        let schemas = Arc::clone(&self.schemas);
        let Some(befores) = assumed_current(changes, &schemas, &self.pairs) else { return Ok(false) };
        let mut current: Current = befores.iter().map(|(k, &b)| (k.clone(), Some(b.clone()))).collect();
        let source = self.direction.source();
        let (runs, outcome) = merge_chunk(changes, &schemas, &self.pairs, source, self.outcome, &mut current);
        if !outcome.conflicts.is_empty() || runs.iter().any(|r| r.ops.iter().any(|op| !matches!(op, RowOp::PartialUpdate { .. }))) {
            return Ok(false);
        }
        match self.db.write_guarded(&schemas, &self.pairs, &runs, &befores).await? {
            Guarded::NotTried => Ok(false),
            Guarded::Applied => {
                report(&outcome, &schemas, source);
                Ok(true)
            }
            Guarded::Missed => {
                self.guard_backoff = GUARD_BACKOFF;
                Ok(false)
            }
        }
    }
}

impl<D: Destination> BatchApplier for Applier<D> {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        self.db.checkpoint().await
    }

    async fn source_identity(&mut self) -> Result<Option<String>> {
        self.db.source_identity().await
    }

    fn set_source_identity(&mut self, identity: String) {
        self.db.set_source_identity(identity)
    }

    async fn begin(&mut self) -> Result<()> {
        if self.firing.is_none() {
            let firing = self.db.firing_triggers(&self.schemas).await?;
            if !firing.is_empty() {
                tracing::info!(side = %D::SIDE, pairs = ?firing, "triggers fire on replicated rows of these pairs: their changes are read back and sent to the other side");
            }
            self.firing = Some(firing);
        }
        self.db.begin().await
    }

    fn destination_outcomes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.outcomes)
    }

    async fn write(&mut self, origin: Origin, changes: &[Change]) -> Result<()> {
        self.outcome = origin == Origin::Outcome;
        // Changes holding a source value with no canonical form never reach the database.
        for segment in super::screen::screen(changes, &self.pairs, &self.schemas) {
            match segment {
                Segment::Apply(cs) => self.write_screened(&cs).await?,
                Segment::Hold(c, e) => self.reject(&c, e)?,
            }
        }
        Ok(())
    }

    async fn commit(&mut self, last: &TxnMeta) -> Result<()> {
        let quarantine = std::mem::take(&mut self.rejected);
        let conflicts = conflict_rows(&std::mem::take(&mut self.conflicts), &self.schemas);
        self.db.commit(Commit { last, quarantine, conflicts }).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.conflicts.clear();
        self.rejected.clear();
        self.outcomes.clear();
        self.db.rollback().await
    }

    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        let names = self.db.parked_pairs().await?;
        Ok(super::park::pair_indices(&self.schemas, &names, self.direction))
    }

    async fn park(&mut self, changes: &[Change], reason: &str) -> Result<()> {
        let (pairs, texts) = super::park::rows(&self.schemas, changes);
        self.db.park(&pairs, &texts, reason).await
    }

    async fn unpark(&mut self, pair: usize) -> Result<u64> {
        let Some(schema) = self.schema(pair).cloned() else { return Ok(0) };
        let mut total = 0;
        loop {
            let rows = self.db.parked(&schema.name, super::park::REPLAY_CHUNK).await?;
            if rows.is_empty() {
                return Ok(total);
            }
            let mut apply = Vec::with_capacity(rows.len());
            for (_, text) in &rows {
                match super::park::replay(&schema, text)? {
                    super::park::Replay::Apply(c) => apply.push(c),
                    super::park::Replay::Reject(c, e) => self.reject(&c, e)?,
                }
            }
            self.write(Origin::Client, &apply).await?;
            let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
            self.db.unpark(&ids).await?;
            total += ids.len() as u64;
        }
    }

    fn pair_key(&self, pair: usize) -> Option<Vec<usize>> {
        self.schema(pair).map(|s| s.key.clone())
    }

    async fn apply_chunk(&mut self, job: &ChunkJob) -> Result<ChunkOutcome> {
        let Some(schema) = self.schema(job.pair).cloned() else {
            return Ok(ChunkOutcome::Abandoned(format!("pair #{} has no schema", job.pair)));
        };
        self.db.merge_backfill_chunk(&schema, job).await
    }
}
