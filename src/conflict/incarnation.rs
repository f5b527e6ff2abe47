//! Row incarnations: telling a change of an old row from a change of a new
//! row with the same key (a delete followed by a re-insert), so that both
//! sides converge when one side re-creates a key while the other side still
//! changes or deletes the old row (DESIGN §3, convergence).
//!
//! The destination D cannot tell, when it applies a change X made on side S,
//! whether D's row with X's key is the row X saw or a new one D created after
//! deleting it; D's own replication stream can, in stream order. So:
//! - every source transaction carries `seen`: the other side's position that
//!   had been applied on its side when it committed (read from the appliers'
//!   own transactions in the stream: the checkpoint they write);
//! - an applier that writes X to a row which is not the row X saw (missing,
//!   or different from X's before-image) registers a *suspect*
//!   `(pair, key, X.seen)` in the shared `Incarnations` before it commits;
//! - D's source remembers the keys D itself deleted, with the position of the
//!   deleting transaction (`Tombstones`); when it reads tandem's own write of
//!   a suspect key back (an echo, normally dropped) and D deleted that key
//!   after X.seen — D's delete and X were concurrent — it forwards that write
//!   to S as a change of D, so S applies the same outcome D has.
//!
//! Invariants: a suspect is consumed by the first echo of its key or expires
//! after `SUSPECT_TTL`; tombstones are bounded (`MAX_TOMBSTONES`, oldest
//! forgotten first); both live in memory only, so a restart that re-reads the
//! stream from a checkpoint forgets deletes read before it (README: known
//! limits). With one direction running no registry exists and nothing changes.

use crate::config::Side;
use crate::model::SourcePos;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a registered suspect waits for its echo.
pub const SUSPECT_TTL: Duration = Duration::from_secs(120);
/// Deleted keys a source remembers.
pub const MAX_TOMBSTONES: usize = 200_000;

/// (pair index, key text of `conflict::compare::key_text`).
pub type KeyRef = (usize, String);

#[derive(Debug, Default)]
struct Book {
    suspects: HashMap<KeyRef, VecDeque<(SourcePos, Instant)>>,
}

/// Suspects per destination side, shared by the two directions of one run.
#[derive(Debug, Default)]
pub struct Incarnations {
    books: [Mutex<Book>; 2],
    pending: [AtomicUsize; 2],
    /// Per side: the keys that side deleted itself, recorded by its source.
    tombstones: [Mutex<Tombstones>; 2],
    /// Per source side: `seen` of the last transaction its direction
    /// committed — where that source resumes (`resume_seen`).
    resume: Mutex<[Option<SourcePos>; 2]>,
}

fn slot(side: Side) -> usize {
    match side {
        Side::Postgres => 0,
        Side::Mysql => 1,
    }
}

impl Incarnations {
    /// `seen` of the first transactions a source of `side` reads when it
    /// resumes at its checkpoint.
    pub fn resume_seen(&self, side: Side) -> Option<SourcePos> {
        self.resume.lock().unwrap_or_else(|e| e.into_inner())[slot(side)].clone()
    }

    /// Sets `resume_seen(side)`: at start, from the other direction's
    /// checkpoint; then from every commit of the direction reading `side`.
    pub fn set_resume_seen(&self, side: Side, seen: Option<SourcePos>) {
        self.resume.lock().unwrap_or_else(|e| e.into_inner())[slot(side)] = seen;
    }

    /// Records deletes of `side` (its source, at the deleting transaction's commit).
    pub fn record_deletes(&self, side: Side, keys: Vec<KeyRef>, truncated: &[usize], at: &SourcePos) {
        if keys.is_empty() && truncated.is_empty() {
            return;
        }
        self.tombstones[slot(side)].lock().unwrap_or_else(|e| e.into_inner()).record(keys, truncated, at);
    }

    /// Has `side`'s source read a delete of `key` made after `seen`?
    pub fn deleted_after(&self, side: Side, key: &KeyRef, seen: &SourcePos) -> bool {
        self.tombstones[slot(side)].lock().unwrap_or_else(|e| e.into_inner()).deleted_after(key, seen)
    }

    /// Should the echo of tandem's write to `key` on `side` be forwarded:
    /// was the write a suspect whose change was concurrent with a delete of
    /// `side`? Consumes the key's suspects.
    pub fn forward(&self, side: Side, key: &KeyRef) -> bool {
        let seens = self.take(side, key);
        if seens.is_empty() {
            return false;
        }
        let t = self.tombstones[slot(side)].lock().unwrap_or_else(|e| e.into_inner());
        seens.iter().any(|seen| t.deleted_after(key, seen))
    }

    /// Registers suspects written to `dest` in a transaction about to commit.
    pub fn register(&self, dest: Side, suspects: &[(KeyRef, SourcePos)]) {
        if suspects.is_empty() {
            return;
        }
        let mut book = self.books[slot(dest)].lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (k, seen) in suspects {
            book.suspects.entry(k.clone()).or_default().push_back((seen.clone(), now));
        }
        self.pending[slot(dest)].store(book.suspects.len(), Ordering::Release);
    }

    /// Takes back suspects whose transaction did not commit.
    pub fn withdraw(&self, dest: Side, suspects: &[(KeyRef, SourcePos)]) {
        if suspects.is_empty() {
            return;
        }
        let mut book = self.books[slot(dest)].lock().unwrap_or_else(|e| e.into_inner());
        for (k, seen) in suspects {
            if let Some(q) = book.suspects.get_mut(k) {
                if let Some(i) = q.iter().rposition(|(s, _)| s == seen) {
                    q.remove(i);
                }
                if q.is_empty() {
                    book.suspects.remove(k);
                }
            }
        }
        self.pending[slot(dest)].store(book.suspects.len(), Ordering::Release);
    }

    /// Are suspects waiting for an echo on `side`? (cheap: sources ask per echo)
    pub fn pending(&self, side: Side) -> bool {
        self.pending[slot(side)].load(Ordering::Acquire) > 0
    }

    /// Removes and returns the `seen` positions of the suspects of `key`
    /// written to `side` (expired ones are dropped).
    pub fn take(&self, side: Side, key: &KeyRef) -> Vec<SourcePos> {
        let mut book = self.books[slot(side)].lock().unwrap_or_else(|e| e.into_inner());
        let found = book.suspects.remove(key).unwrap_or_default();
        let now = Instant::now();
        book.suspects.retain(|_, q| {
            q.retain(|(_, at)| now.duration_since(*at) < SUSPECT_TTL);
            !q.is_empty()
        });
        self.pending[slot(side)].store(book.suspects.len(), Ordering::Release);
        found.into_iter().map(|(s, _)| s).collect()
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

}

/// What a source needs to track row incarnations of its side.
#[derive(Debug, Clone)]
pub struct Tracking {
    pub reg: std::sync::Arc<Incarnations>,
    /// The other side's position applied on this side where the stream starts.
    pub seen: Option<SourcePos>,
}

impl PartialEq for Tracking {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.reg, &other.reg) && self.seen == other.seen
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

/// Prefix of the transactional logical message in which the Postgres
/// applier names the MySQL position each of its transactions applied.
pub fn pg_applied_prefix(origin: &str) -> String {
    format!("{origin}_applied")
}

/// An applier's suspects of its open transaction.
pub struct SuspectLog {
    reg: Option<std::sync::Arc<Incarnations>>,
    dest: Side,
    seen: Option<SourcePos>,
    open: Vec<(KeyRef, SourcePos)>,
}

impl SuspectLog {
    pub fn new(dest: Side) -> Self {
        SuspectLog { reg: None, dest, seen: None, open: Vec::new() }
    }

    pub fn attach(&mut self, reg: std::sync::Arc<Incarnations>) {
        self.reg = Some(reg);
    }

    pub fn set_seen(&mut self, seen: Option<SourcePos>) {
        self.seen = seen;
    }

    /// Notes the writes of one merge that may have met a new row (kept only
    /// with a registry and a known `seen`): those that met another row for
    /// sure, and the others whose key the destination's source has seen
    /// deleted after `seen`.
    pub fn note(&mut self, suspects: Vec<(KeyRef, bool)>) {
        let (Some(reg), Some(seen)) = (&self.reg, &self.seen) else { return };
        for (k, sure) in suspects {
            if sure || reg.deleted_after(self.dest, &k, seen) {
                self.open.push((k, seen.clone()));
            }
        }
    }

    /// Notes inserts written without a merge (all into missing rows).
    pub fn note_fresh(&mut self, changes: &[crate::model::Change]) {
        if self.reg.is_some() && self.seen.is_some() {
            let keys = changes.iter().map(|c| ((c.pair, crate::conflict::compare::key_text(&c.key)), false)).collect();
            self.note(keys);
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Forgets suspects noted after the first `n` (rolled back to a savepoint).
    pub fn truncate(&mut self, n: usize) {
        self.open.truncate(n);
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }

    /// Registers the open transaction's suspects just before its COMMIT is
    /// sent (its echo cannot be read earlier); returns them for `failed`.
    pub fn committing(&mut self) -> Vec<(KeyRef, SourcePos)> {
        let open = std::mem::take(&mut self.open);
        if let Some(reg) = &self.reg {
            reg.register(self.dest, &open);
        }
        open
    }

    /// The COMMIT of suspects from `committing` failed.
    pub fn failed(&self, suspects: &[(KeyRef, SourcePos)]) {
        if let Some(reg) = &self.reg {
            reg.withdraw(self.dest, suspects);
        }
    }

    /// The transaction committed: its source resumes after it with its `seen`.
    pub fn committed(&self) {
        if let (Some(reg), Some(seen)) = (&self.reg, &self.seen) {
            reg.set_resume_seen(self.dest.other(), Some(seen.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lsn;

    fn pos(n: u64) -> SourcePos {
        SourcePos::Postgres(Lsn(n))
    }

    fn k(s: &str) -> KeyRef {
        (0, s.to_string())
    }

    #[test]
    fn a_suspect_concurrent_with_a_delete_is_forwarded_once() {
        let reg = Incarnations::default();
        reg.record_deletes(Side::Postgres, vec![k("1")], &[], &pos(20));
        reg.register(Side::Postgres, &[(k("1"), pos(10))]);
        assert!(reg.pending(Side::Postgres));
        assert!(!reg.pending(Side::Mysql));
        assert!(reg.forward(Side::Postgres, &k("1")));
        assert!(!reg.pending(Side::Postgres));
        assert!(!reg.forward(Side::Postgres, &k("1")), "consumed by its echo");
        assert!(!reg.forward(Side::Mysql, &k("1")), "tombstones are per side");
    }

    #[test]
    fn a_suspect_that_saw_the_delete_is_not_forwarded() {
        let reg = Incarnations::default();
        reg.record_deletes(Side::Postgres, vec![k("1")], &[], &pos(20));
        reg.register(Side::Postgres, &[(k("1"), pos(20)), (k("2"), pos(5))]);
        assert!(!reg.forward(Side::Postgres, &k("1")), "seen == delete position: the change saw the delete");
        assert!(!reg.forward(Side::Postgres, &k("2")), "key 2 was never deleted here");
    }

    #[test]
    fn an_insert_into_a_missing_row_is_a_suspect_only_after_a_known_delete() {
        let reg = std::sync::Arc::new(Incarnations::default());
        reg.record_deletes(Side::Mysql, vec![k("1")], &[], &pos(20));
        let mut log = SuspectLog::new(Side::Mysql);
        log.attach(reg.clone());
        log.note(vec![(k("1"), false)]);
        assert!(log.is_empty(), "no seen yet: nothing to compare with");
        log.set_seen(Some(pos(10)));
        log.note(vec![(k("1"), false), (k("2"), false), (k("3"), true)]);
        let open = log.committing();
        assert_eq!(open, vec![(k("1"), pos(10)), (k("3"), pos(10))]);
        log.committed();
        assert_eq!(reg.resume_seen(Side::Postgres), Some(pos(10)), "the source of the other side resumes with this seen");
    }

    #[test]
    fn a_truncate_is_a_delete_of_every_key_of_the_pair() {
        let mut t = Tombstones::default();
        t.record(Vec::new(), &[0], &pos(30));
        assert!(t.deleted_after(&k("7"), &pos(29)));
        assert!(!t.deleted_after(&(1, "7".into()), &pos(29)));
    }

    #[test]
    fn withdrawn_suspects_are_gone_and_tombstones_stay_bounded() {
        let reg = Incarnations::default();
        reg.register(Side::Mysql, &[(k("1"), pos(1))]);
        reg.withdraw(Side::Mysql, &[(k("1"), pos(1))]);
        assert!(!reg.pending(Side::Mysql));
        let mut t = Tombstones::default();
        t.record((0..MAX_TOMBSTONES + 10).map(|i| k(&i.to_string())).collect(), &[], &pos(5));
        assert_eq!(t.keys.len(), MAX_TOMBSTONES);
        assert!(!t.deleted_after(&k("0"), &pos(1)), "the oldest are forgotten first");
        assert!(t.deleted_after(&k(&(MAX_TOMBSTONES + 9).to_string()), &pos(1)));
    }
}
