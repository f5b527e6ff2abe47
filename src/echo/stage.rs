//! `EchoStage`: the stage between one side's source and its batcher that
//! decides what becomes of tandem's own transactions (drop them, or forward
//! tandem's write as that side's outcome) and keeps the row-incarnation
//! bookkeeping of that side's own changes (see `crate::echo`).
//!
//! It is a synchronous transformer of `SourceEvent`s (`process`: no I/O;
//! it records into the shared registry and counts echoes), read through
//! `EchoEvents`, which the batcher pulls from. Invariants:
//! every `Origin::Tandem` transaction leaves as one `Idle` at its commit
//! position, or as one `Origin::Outcome` transaction with that position;
//! `Client` transactions pass unchanged; a `Barrier` precedes a transaction
//! whose `seen` differs from the transaction before it, so a batch never
//! holds two; `seen` is handed to the applier's bookkeeping exactly when
//! its transaction's `Begin` reaches the batcher. Without a registry (one
//! direction only) nothing is forwarded and no `Barrier` is sent.

use super::registry::{deleted_key, note_echo_write, Incarnations, KeyRef, MAX_TOMBSTONES};
use crate::config::{Direction, Side};
use crate::metrics as m;
use crate::model::{BinlogPos, Change, Lsn, Op, Origin, SourceEvent, SourcePos, TxnMeta};
use crate::schema::PairSchema;
use crate::source::EventStream;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The `seen` of the transactions the batcher is writing, shared by the
/// stage (which sets it as each `Begin` is handed out) and the applier's
/// bookkeeping (which registers batches with it).
#[derive(Debug, Clone, Default)]
pub struct SeenNow(Arc<Mutex<Option<SourcePos>>>);

impl SeenNow {
    pub fn get(&self) -> Option<SourcePos> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, seen: Option<SourcePos>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }
}

/// The transaction being read.
enum Open {
    /// The side's own: the keys it deletes and the pairs it truncates.
    Client { deleted: Vec<KeyRef>, truncated: Vec<usize> },
    /// tandem's: the other side's position it applied, and its writes to
    /// keys this side deleted (the candidates to forward).
    Tandem { applied: Option<SourcePos>, candidates: Vec<Change> },
}

/// The echo stage of the direction reading `side` (see the module doc).
pub struct EchoStage {
    side: Side,
    reg: Option<Arc<Incarnations>>,
    schemas: Arc<Vec<PairSchema>>,
    /// The other side's position applied on this side as of the stream so far.
    seen: Option<SourcePos>,
    /// The `seen` of the last transaction sent on (`None` before the first).
    sent_seen: Option<Option<SourcePos>>,
    open: Option<Open>,
    /// Events to hand out; a `Begin` carries its transaction's `seen`.
    out: VecDeque<(SourceEvent, Option<Option<SourcePos>>)>,
    now: SeenNow,
}

impl EchoStage {
    /// The stage reading `side`; with `reg`, row incarnations are tracked
    /// (both directions run), starting from the `seen` the registry holds
    /// for where that side's source resumes.
    pub fn new(side: Side, reg: Option<Arc<Incarnations>>, schemas: Arc<Vec<PairSchema>>) -> Self {
        let seen = reg.as_ref().and_then(|r| r.resume_seen(side));
        EchoStage { side, reg, schemas, seen, sent_seen: None, open: None, out: VecDeque::new(), now: SeenNow::default() }
    }

    /// Reads the source's channel through this stage.
    pub fn events(self, rx: mpsc::Receiver<SourceEvent>) -> EchoEvents {
        EchoEvents { rx, stage: self }
    }

    /// The handle the applier's bookkeeping reads the current `seen` from.
    pub fn seen_now(&self) -> SeenNow {
        self.now.clone()
    }

    fn direction(&self) -> Direction {
        Direction::from_source(self.side)
    }

    fn send(&mut self, ev: SourceEvent) {
        self.out.push_back((ev, None));
    }

    /// Sends a `Begin`, after a `Barrier` when its `seen` differs from the
    /// transaction before it.
    fn send_begin(&mut self, txn_seq: u64, origin: Origin, commit_ts: i64) {
        if self.reg.is_some() {
            if self.sent_seen.as_ref().is_some_and(|s| *s != self.seen) {
                self.send(SourceEvent::Barrier);
            }
            self.sent_seen = Some(self.seen.clone());
        }
        self.out.push_back((SourceEvent::Begin { txn_seq, origin, commit_ts }, Some(self.seen.clone())));
    }

    /// The other side's position, as text in tandem's transaction.
    fn parse_applied(&self, text: &str) -> Option<SourcePos> {
        let parsed = match self.side.other() {
            Side::Postgres => text.parse::<Lsn>().ok().map(SourcePos::Postgres),
            Side::Mysql => text.parse::<BinlogPos>().ok().map(SourcePos::Mysql),
        };
        if parsed.is_none() {
            tracing::warn!(side = %self.side.as_str(), text, "unreadable applied position in tandem's own transaction ignored");
        }
        parsed
    }

    fn schema(&self, pair: usize) -> Option<&PairSchema> {
        self.schemas.get(pair).filter(|p| p.pair == pair).or_else(|| self.schemas.iter().find(|p| p.pair == pair))
    }

    /// Handles one event from the source, queueing what to hand out.
    pub fn process(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Begin { txn_seq, origin: Origin::Tandem, .. } => {
                self.open = Some(Open::Tandem { applied: None, candidates: Vec::new() });
                // Nothing goes on before its commit decides what it is.
                let _ = txn_seq;
            }
            SourceEvent::Begin { txn_seq, origin, commit_ts } => {
                self.open = Some(Open::Client { deleted: Vec::new(), truncated: Vec::new() });
                self.send_begin(txn_seq, origin, commit_ts);
            }
            SourceEvent::Applied(text) => {
                let parsed = self.parse_applied(&text);
                if let Some(Open::Tandem { applied, .. }) = self.open.as_mut() {
                    *applied = parsed;
                }
            }
            SourceEvent::Changes(changes) => match self.open.take() {
                Some(Open::Tandem { applied, mut candidates }) => {
                    if let Some(reg) = self.reg.as_ref().filter(|r| r.tracks_deletes(self.side)) {
                        for c in changes {
                            let removed = self.schema(c.pair).and_then(|p| deleted_key(&c, p));
                            note_echo_write(&mut candidates, c, removed, |k| reg.tombstoned(self.side, k));
                        }
                    }
                    self.open = Some(Open::Tandem { applied, candidates });
                }
                Some(Open::Client { mut deleted, mut truncated }) => {
                    if self.reg.is_some() {
                        for c in &changes {
                            if c.op == Op::Truncate {
                                truncated.push(c.pair);
                            } else if deleted.len() < MAX_TOMBSTONES {
                                deleted.extend(self.schema(c.pair).and_then(|p| deleted_key(c, p)));
                            }
                        }
                    }
                    self.open = Some(Open::Client { deleted, truncated });
                    self.send(SourceEvent::Changes(changes));
                }
                None => self.send(SourceEvent::Changes(changes)),
            },
            SourceEvent::Commit(meta) => match self.open.take() {
                Some(Open::Tandem { applied, candidates }) => self.tandem_commit(meta, applied, candidates),
                Some(Open::Client { deleted, truncated }) => {
                    if let Some(reg) = &self.reg {
                        reg.record_deletes(self.side, deleted, &truncated, &meta.position);
                    }
                    self.send(SourceEvent::Commit(meta));
                }
                None => self.send(SourceEvent::Commit(meta)),
            },
            other => self.send(other),
        }
    }

    /// tandem's own transaction committed at `meta.position`: an `Idle`, or
    /// the writes that met rows this side re-created, as this side's outcome.
    fn tandem_commit(&mut self, meta: TxnMeta, applied: Option<SourcePos>, candidates: Vec<Change>) {
        let direction = self.direction().key();
        metrics::counter!(m::ECHO_SUPPRESSED, "direction" => direction).increment(1);
        let Some(reg) = self.reg.clone() else {
            self.send(SourceEvent::Idle(meta.position));
            return;
        };
        let forward = reg.forwardable(self.side, applied.as_ref(), &meta.position, candidates);
        if let Some(applied) = applied {
            self.seen = Some(applied);
        }
        if forward.is_empty() {
            self.send(SourceEvent::Idle(meta.position));
            return;
        }
        metrics::counter!(m::ECHO_FORWARDED, "direction" => direction).increment(forward.len() as u64);
        self.send_begin(meta.txn_seq, Origin::Outcome, meta.commit_ts);
        self.send(SourceEvent::Changes(forward));
        self.send(SourceEvent::Commit(TxnMeta { origin: None, ..meta }));
    }
}

/// A source's channel read through its echo stage: what the batcher pulls.
pub struct EchoEvents {
    rx: mpsc::Receiver<SourceEvent>,
    stage: EchoStage,
}

impl EventStream for EchoEvents {
    async fn next(&mut self) -> Option<SourceEvent> {
        loop {
            if let Some((ev, seen)) = self.stage.out.pop_front() {
                if let Some(seen) = seen {
                    self.stage.now.set(seen);
                }
                return Some(ev);
            }
            // Cancel-safe: `recv` loses nothing when dropped, and the rest is synchronous.
            let ev = self.rx.recv().await?;
            self.stage.process(ev);
        }
    }

    fn is_empty(&self) -> bool {
        self.stage.out.is_empty() && self.rx.is_empty()
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
