//! The row-incarnation registry shared by the two directions of one run:
//! the keys each side deleted itself (`Tombstones`), and the batches each
//! applier committed with the `seen` of their transactions, so that the echo
//! stage reading a side can tell which of tandem's writes met a row that side
//! had re-created (see `crate::echo` for the whole rule).
//!
//! Invariants: echoes are read in commit order, so looking a batch up marks
//! it and every batch registered before it as echoed there; a batch is
//! forgotten once the direction reading its echo has committed or
//! acknowledged past that echo (`Incarnations::echoes_passed`) — until then
//! a retry of that direction re-reads the echo and finds its batch again, so
//! a forward that was lost with the failure is sent again. Batches and
//! tombstones are bounded (`MAX_BATCHES`, `MAX_TOMBSTONES`, oldest forgotten
//! first) and shared by the directions' retries, but live in the process's
//! memory only: restarting the process forgets them (README: known limits).
//! Each side's source delivers the rows of tandem's own transactions (the
//! candidates to forward) from the first row its clients removed on
//! (`OwnRows::after_removals`, the handle kept here so that it outlives the
//! source's restarts); before, echoes are not decoded at all.

use crate::config::Side;
use crate::model::{Change, SourcePos};
use crate::source::OwnRows;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Deleted keys a source remembers.
pub const MAX_TOMBSTONES: usize = 200_000;
/// Batches remembered per side: those whose echo has not been read yet, and
/// those whose echo the reading direction has not committed past (a MySQL
/// side that only ever shows tandem's own writes keeps this many, a few MiB).
pub const MAX_BATCHES: usize = 65_536;

/// (pair index, key text of `conflict::compare::key_text`).
pub type KeyRef = (usize, String);

/// One applier batch.
#[derive(Debug)]
struct BatchEntry {
    /// The source position it applied (its last source transaction's).
    applied: SourcePos,
    seen: Option<SourcePos>,
    /// Where its echo (or a later one) was read in its side's stream.
    echo_at: Option<SourcePos>,
    /// What the destination's own triggers changed in the rows it wrote
    /// (`apply::readback`): forwarded at its echo as that side's outcome.
    outcomes: Vec<Change>,
}

/// Shared by the two directions of one run; every array is indexed by side.
#[derive(Debug)]
pub struct Incarnations {
    /// The keys each side deleted itself, recorded by its echo stage.
    tombstones: [Mutex<Tombstones>; 2],
    /// Per side: the rows-of-echoes switch its source turns on at the first
    /// row its clients remove (`OwnRows::after_removals`).
    own_rows: [OwnRows; 2],
    /// Per side: has the echo stage recorded any delete?
    deleted_any: [AtomicBool; 2],
    /// Batches written to each side, in commit order.
    batches: [Mutex<VecDeque<BatchEntry>>; 2],
    /// Per source side: `seen` of the last transaction its direction
    /// committed — where that source resumes (`resume_seen`).
    resume: Mutex<[Option<SourcePos>; 2]>,
}

impl Default for Incarnations {
    fn default() -> Self {
        Incarnations {
            tombstones: Default::default(),
            own_rows: [OwnRows::after_removals(), OwnRows::after_removals()],
            deleted_any: Default::default(),
            batches: Default::default(),
            resume: Default::default(),
        }
    }
}

fn slot(side: Side) -> usize {
    match side {
        Side::Postgres => 0,
        Side::Mysql => 1,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Incarnations {
    /// `seen` of the first transactions a source of `side` reads when it
    /// resumes at its checkpoint.
    pub fn resume_seen(&self, side: Side) -> Option<SourcePos> {
        lock(&self.resume)[slot(side)].clone()
    }

    /// Sets `resume_seen(side)`: at start, from the other direction's
    /// checkpoint; then from every commit of the direction reading `side`.
    pub fn set_resume_seen(&self, side: Side, seen: Option<SourcePos>) {
        lock(&self.resume)[slot(side)] = seen;
    }

    /// Records deletes of `side` (its source, at the deleting transaction's commit).
    pub fn record_deletes(&self, side: Side, keys: Vec<KeyRef>, truncated: &[usize], at: &SourcePos) {
        if keys.is_empty() && truncated.is_empty() {
            return;
        }
        tracing::debug!(?side, at = %at, keys = ?keys.iter().map(|k| &k.1).collect::<Vec<_>>(), ?truncated, "deletes recorded");
        lock(&self.tombstones[slot(side)]).record(keys, truncated, at);
        self.deleted_any[slot(side)].store(true, Ordering::Release);
    }

    /// Has a delete of `side` been recorded (are there tombstones to check)?
    pub fn tracks_deletes(&self, side: Side) -> bool {
        self.deleted_any[slot(side)].load(Ordering::Acquire)
    }

    /// The handle `side`'s source turns on at the first row its clients
    /// remove, to deliver the rows of tandem's own transactions from then on.
    pub fn own_rows(&self, side: Side) -> OwnRows {
        self.own_rows[slot(side)].clone()
    }

    /// Has `side`'s source read a delete of `key` (at any position)?
    pub fn tombstoned(&self, side: Side, key: &KeyRef) -> bool {
        lock(&self.tombstones[slot(side)]).any(key)
    }

    /// An applier writing to `dest` is about to commit the batch that applied
    /// source transactions up to `applied`, all with `seen`.
    pub fn batch_committing(&self, dest: Side, applied: &SourcePos, seen: Option<&SourcePos>, outcomes: Vec<Change>) {
        let mut q = lock(&self.batches[slot(dest)]);
        q.push_back(BatchEntry { applied: applied.clone(), seen: seen.cloned(), echo_at: None, outcomes });
        while q.len() > MAX_BATCHES {
            q.pop_front();
        }
    }

    /// The COMMIT of the batch registered with `applied` failed.
    pub fn batch_failed(&self, dest: Side, applied: &SourcePos) {
        let mut q = lock(&self.batches[slot(dest)]);
        if let Some(i) = q.iter().rposition(|b| b.applied == *applied) {
            q.remove(i);
        }
    }

    /// The batch whose echo on `side`, read at `echo_at`, records `applied`:
    /// `Some((seen, trigger outcomes))` when it is registered. It and the
    /// batches before it are marked as echoed (their echoes are at or before `echo_at`).
    fn batch_seen(&self, side: Side, applied: &SourcePos, echo_at: &SourcePos) -> Option<(Option<SourcePos>, Vec<Change>)> {
        let mut q = lock(&self.batches[slot(side)]);
        // The echoed batches come first (marking covers a prefix): a new echo's
        // batch is after them, so the search starts there; only an echo read
        // again after a restart looks among them.
        let fresh = q.partition_point(|b| b.echo_at.is_some());
        let i = match q.range(fresh..).position(|b| b.applied == *applied) {
            Some(i) => fresh + i,
            None => q.range(..fresh).position(|b| b.applied == *applied)?,
        };
        for b in q.range_mut(fresh..).take((i + 1).saturating_sub(fresh)) {
            b.echo_at = Some(echo_at.clone());
        }
        Some((q[i].seen.clone(), q[i].outcomes.clone()))
    }

    /// The direction reading `side`'s stream will not read it again up to
    /// `upto` (it committed or acknowledged that far): batches written to
    /// `side` whose echo was read at or before it are forgotten.
    pub fn echoes_passed(&self, side: Side, upto: &SourcePos) {
        use std::cmp::Ordering::{Equal, Less};
        let mut q = lock(&self.batches[slot(side)]);
        while q.front().is_some_and(|b| b.echo_at.as_ref().is_some_and(|e| matches!(e.try_cmp(upto), Some(Less | Equal)))) {
            q.pop_front();
        }
    }

    /// At the commit, at `echo_at`, of an echo on `side` that records `applied`: which of
    /// `candidates` (its writes to tombstoned keys, `note_echo_write`) to
    /// forward — those to keys `side` deleted after the batch's `seen` (any
    /// delete when the batch had no `seen`) — followed by what `side`'s
    /// triggers changed in the batch's rows. Nothing when the batch is unknown.
    pub fn forwardable(&self, side: Side, applied: Option<&SourcePos>, echo_at: &SourcePos, mut candidates: Vec<Change>) -> Vec<Change> {
        let Some((seen, outcomes)) = applied.and_then(|a| self.batch_seen(side, a, echo_at)) else {
            if !candidates.is_empty() {
                tracing::debug!(?side, applied = ?applied.map(|a| a.to_string()), candidates = candidates.len(), "echo of an unknown batch: nothing forwarded");
            }
            return Vec::new();
        };
        if candidates.is_empty() {
            return outcomes;
        }
        let before = candidates.len();
        let t = lock(&self.tombstones[slot(side)]);
        candidates.retain(|c| {
            let key = (c.pair, crate::conflict::compare::key_text(&c.key));
            match &seen {
                Some(seen) => t.deleted_after(&key, seen),
                None => t.any(&key),
            }
        });
        tracing::debug!(?side, seen = ?seen.as_ref().map(|s| s.to_string()), candidates = before,
            forwarded = ?candidates.iter().map(|c| (c.op, crate::conflict::compare::key_text(&c.key))).collect::<Vec<_>>(), "echo writes to deleted keys");
        candidates.extend(outcomes);
        candidates
    }
}

/// Keys one side deleted itself (not tandem's writes), with the position of
/// the deleting transaction; kept by that side's source.
#[derive(Debug, Default)]
pub struct Tombstones {
    keys: HashMap<KeyRef, SourcePos>,
    order: VecDeque<KeyRef>,
    truncated: HashMap<usize, SourcePos>,
}

impl Tombstones {
    /// Records deletes of `keys` (and truncates of `pairs`) committed at `at`.
    pub fn record(&mut self, keys: Vec<KeyRef>, truncated: &[usize], at: &SourcePos) {
        for pair in truncated {
            self.truncated.insert(*pair, at.clone());
        }
        for k in keys {
            if self.keys.insert(k.clone(), at.clone()).is_none() {
                self.order.push_back(k);
            }
        }
        while self.order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }

    /// Was `key` deleted on this side after `seen` (so a change that had only
    /// seen this side up to `seen` may have met a newer row of that key)?
    pub fn deleted_after(&self, key: &KeyRef, seen: &SourcePos) -> bool {
        let after = |at: &SourcePos| at.try_cmp(seen) == Some(std::cmp::Ordering::Greater);
        self.keys.get(key).is_some_and(after) || self.truncated.get(&key.0).is_some_and(after)
    }

    /// Was `key` deleted on this side at all (as far as remembered)?
    pub fn any(&self, key: &KeyRef) -> bool {
        self.keys.contains_key(key) || self.truncated.contains_key(&key.0)
    }
}

/// The key a change removes from its side: a delete's key, or the old key of
/// an update that moved the row to a new key.
pub fn deleted_key(change: &crate::model::Change, schema: &crate::schema::PairSchema) -> Option<KeyRef> {
    use crate::conflict::compare::key_text;
    use crate::model::Op;
    match change.op {
        Op::Delete => Some((change.pair, key_text(&change.key))),
        Op::Update => {
            let old = schema.key_of(change.before.as_ref()?);
            (old != change.key).then(|| (change.pair, key_text(&old)))
        }
        Op::Insert | Op::Truncate => None,
    }
}

/// Notes one row change of tandem's own transaction (an echo) read by a
/// source that tracks deletes: an insert or update of a key `tombstoned` on
/// this side becomes a candidate to forward (`Incarnations::forwardable`).
/// `removed` is the key the change removes (`deleted_key`).
///
/// Deletes are never forwarded: a delete that met a row this side had
/// re-created removed a newer row than the one it meant; the other side has
/// that newer row (the re-insert reached it) and forwards it back when it
/// reads its own echo, so the row lives on both. Forwarding the delete as
/// well would cross that forward and leave one side without it.
///
/// A delete, key move or truncate drops the candidates before it of what it
/// removed: the echo's outcome for that key is then its absence, which the
/// other side has already (the delete came from there). Forwarding the
/// earlier write would re-create there a row both sides deleted — a batch
/// that applied the other side's re-insert and its later delete of a key
/// this side had deleted meanwhile.
pub fn note_echo_write(candidates: &mut Vec<Change>, change: Change, removed: Option<KeyRef>, tombstoned: impl FnOnce(&KeyRef) -> bool) {
    use crate::conflict::compare::key_text;
    use crate::model::Op;
    if change.op == Op::Truncate {
        candidates.retain(|c| c.pair != change.pair);
        return;
    }
    if let Some((pair, key)) = &removed {
        candidates.retain(|c| c.pair != *pair || key_text(&c.key) != *key);
    }
    if change.op != Op::Delete && tombstoned(&(change.pair, key_text(&change.key))) {
        candidates.push(change);
    }
}

/// An applier's side of the registry: the `seen` of the batch it is
/// writing, registered with the batch's applied position at COMMIT.
pub struct BatchLog {
    reg: Option<std::sync::Arc<Incarnations>>,
    dest: Side,
    /// The `seen` of every transaction in the open batch: the echo stage
    /// puts a `Barrier` before a transaction with another `seen`, so a batch
    /// never holds two. (An earlier
    /// `seen` than the true one is not safe: it forwards writes to keys the
    /// other side deleted before the change, and such a forward carries
    /// older values that can win a conflict there on one side only.)
    seen: Option<SourcePos>,
}

impl BatchLog {
    pub fn new(dest: Side) -> Self {
        BatchLog { reg: None, dest, seen: None }
    }

    pub fn attach(&mut self, reg: std::sync::Arc<Incarnations>) {
        self.reg = Some(reg);
    }

    /// The `seen` of the transactions being written (set from the echo
    /// stage as each transaction reaches the batcher).
    pub fn set_seen(&mut self, seen: Option<SourcePos>) {
        self.seen = seen;
    }

    /// Registers the batch that applied up to `applied` just before its
    /// COMMIT is sent (its echo cannot be read earlier).
    /// `outcomes`: what the destination's triggers changed in the batch's rows.
    pub fn committing(&mut self, applied: &SourcePos, outcomes: Vec<Change>) {
        if let Some(reg) = &self.reg {
            reg.batch_committing(self.dest, applied, self.seen.as_ref(), outcomes);
        }
    }

    /// The COMMIT of the batch from `committing(applied)` failed.
    pub fn failed(&self, applied: &SourcePos) {
        if let Some(reg) = &self.reg {
            reg.batch_failed(self.dest, applied);
        }
    }

    /// `changes` without the writes of a forwarded batch
    /// (`Origin::Outcome`) to keys this side deleted itself
    /// after the batch's `seen`, where the pair's deletes propagate from this
    /// side. That delete had not reached the other side when it forwarded its
    /// outcome, so it reaches it after and removes that outcome there too:
    /// applying the forward here would re-create a row both sides end up
    /// without. (Where this side's source has not read that delete yet, the
    /// write is applied and this side's echo forwards it back: both keep it.)
    pub fn without_superseded<'a>(&self, changes: &'a [Change], forwarded: bool, pairs: &[crate::config::PairConfig]) -> std::borrow::Cow<'a, [Change]> {
        use crate::conflict::compare::key_text;
        let (Some(reg), Some(seen), true) = (&self.reg, &self.seen, forwarded) else { return changes.into() };
        if !reg.tracks_deletes(self.dest) {
            return changes.into();
        }
        let t = lock(&reg.tombstones[slot(self.dest)]);
        let superseded = |c: &Change| {
            c.op != crate::model::Op::Delete
                && pairs.get(c.pair).is_some_and(|p| p.deletes.allows(self.dest))
                && t.deleted_after(&(c.pair, key_text(&c.key)), seen)
        };
        let (dropped, kept): (Vec<&Change>, Vec<&Change>) = changes.iter().partition(|c| superseded(c));
        if dropped.is_empty() {
            return changes.into();
        }
        tracing::debug!(dest = ?self.dest, seen = %seen, keys = ?dropped.iter().map(|c| key_text(&c.key)).collect::<Vec<_>>(),
            "forwarded writes dropped: this side deleted those keys after the forward's seen");
        kept.into_iter().cloned().collect::<Vec<_>>().into()
    }

    /// The batch that applied up to `applied` committed: its source resumes
    /// after it, with its `seen`, and the batches written to the source's
    /// side whose echoes it has passed are forgotten.
    pub fn committed(&self, applied: &SourcePos) {
        let Some(reg) = &self.reg else { return };
        if let Some(seen) = &self.seen {
            reg.set_resume_seen(self.dest.other(), Some(seen.clone()));
        }
        reg.echoes_passed(self.dest.other(), applied);
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
