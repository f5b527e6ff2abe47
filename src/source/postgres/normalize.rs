//! Turns decoded pgoutput messages into the normalized `SourceEvent` stream.
//!
//! `Normalizer` is a pure state machine (no I/O, no clock): the stream feeds it
//! one `PgOutputMessage` or keepalive at a time and sends what it returns. It
//! keeps the relation cache (relation id → pair column mapping, replaced when a
//! new Relation message arrives) and the open transaction. Invariants:
//! - a transaction is delivered as `Begin`, `Changes` chunks of at most
//!   `chunk_rows` changes, `Commit`; at most one chunk is held in memory, never
//!   a whole transaction;
//! - `Begin` is emitted only once a paired change exists; a transaction without
//!   paired changes, or tagged with our own origin (echo), yields only
//!   `Idle(end_lsn)`; one already applied (commit at or before `start`) yields
//!   nothing;
//! - positions come only from Commit's `end_lsn` and keepalive `wal_end`, and
//!   `Idle` from a keepalive is emitted only between transactions, when
//!   everything committed before it has been delivered, and only forwards;
//! - a pair column Postgres generates (`GENERATED ALWAYS AS … STORED`), which
//!   pgoutput before PG 18 leaves out of the stream, reads as
//!   `Value::Unchanged` (the destination computes or keeps it); any other
//!   mapped column missing from a Relation is a schema error.

use super::pgoutput::{OldTuple, PgOutputMessage, Relation, Tuple, TupleValue, TypeInfo};
use super::values::decode_text;
use crate::config::Side;
use crate::conflict::incarnation::{deleted_key, note_echo_write, Incarnations, KeyRef};
use crate::model::{Change, Lsn, Op, Row, SourceEvent, SourcePos, TxnMeta, Value};
use crate::schema::{PairSchema, ValueKind};
use crate::{Error, Result};
use std::collections::HashMap;

/// How a relation's columns feed a pair's row.
#[derive(Debug)]
struct PairMapping {
    /// Index into `Normalizer::pairs`.
    pair: usize,
    /// For pair column i: (relation column index, type OID); `None` when the
    /// relation lacks it — a generated column (PG 15 does not stream
    /// those) or a dropped one (the pair is paused) — read as `Unchanged`.
    columns: Vec<Option<(usize, u32)>>,
    /// Why the pair is paused with this relation version, if it is.
    paused: Option<String>,
}

#[derive(Debug)]
struct RelationEntry {
    relation: Relation,
    mapping: Option<PairMapping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnMode {
    Deliver,
    /// Our own write coming back: only an `Idle` at commit.
    EchoSkip,
    /// Committed at or before the start position: nothing at all.
    AlreadyApplied,
}

#[derive(Debug)]
struct OpenTxn {
    final_lsn: Lsn,
    origin: Option<String>,
    mode: TxnMode,
    /// `Some` once `Begin` was emitted.
    seq: Option<u64>,
    pending: Vec<Change>,
    /// Backfill watermarks carried by the transaction (logical messages).
    signals: Vec<crate::backfill::Signal>,
    /// Echo: the MySQL position tandem's transaction applied.
    applied: Option<SourcePos>,
    /// Keys this transaction deleted, and pairs it truncated (tombstones).
    deleted: Vec<KeyRef>,
    truncated: Vec<usize>,
    /// Echo: tandem's writes to forward (`crate::conflict::incarnation`).
    forward: Vec<Change>,
}

impl OpenTxn {
    fn new(final_lsn: Lsn, mode: TxnMode) -> Self {
        OpenTxn {
            final_lsn,
            origin: None,
            mode,
            seq: None,
            pending: Vec::new(),
            signals: Vec::new(),
            applied: None,
            deleted: Vec::new(),
            truncated: Vec::new(),
            forward: Vec::new(),
        }
    }
}

/// The schema of pair `pair` (at that index when the pairs are in order).
fn schema_of(pairs: &[PairSchema], pair: usize) -> Option<&PairSchema> {
    pairs.get(pair).filter(|p| p.pair == pair).or_else(|| pairs.iter().find(|p| p.pair == pair))
}

/// Row incarnation bookkeeping (`crate::conflict::incarnation`), when both
/// directions run.
#[derive(Debug)]
struct Incarnation {
    reg: std::sync::Arc<Incarnations>,
    /// The MySQL position applied on this side as of the stream so far.
    seen: Option<SourcePos>,
    /// Prefix of the appliers' "applied position" messages.
    applied_prefix: String,
}

/// The pgoutput → `SourceEvent` state machine.
#[derive(Debug)]
pub struct Normalizer {
    pairs: Vec<PairSchema>,
    relations: HashMap<u32, RelationEntry>,
    types: HashMap<u32, TypeInfo>,
    origin_to_skip: String,
    /// Prefix of this pipeline's backfill watermark messages.
    signal_prefix: String,
    chunk_rows: usize,
    start: Lsn,
    last_seq: u64,
    /// Highest position reported by a `Commit` or `Idle`.
    last_pos: Lsn,
    txn: Option<OpenTxn>,
    /// Pause state last sent per pair (`SourceEvent::PairState`).
    announced: HashMap<usize, Option<String>>,
    incarnation: Option<Incarnation>,
}

impl Normalizer {
    pub fn new(pairs: Vec<PairSchema>, origin_to_skip: String, chunk_rows: usize, start: Lsn) -> Self {
        Normalizer {
            pairs,
            relations: HashMap::new(),
            types: HashMap::new(),
            signal_prefix: crate::backfill::pg_message_prefix(&origin_to_skip),
            origin_to_skip,
            chunk_rows: chunk_rows.max(1),
            start,
            last_seq: 0,
            last_pos: start,
            txn: None,
            announced: HashMap::new(),
            incarnation: None,
        }
    }

    /// Tracks row incarnations with `reg`, shared with the applier writing to
    /// Postgres; `seen` is the MySQL position applied on Postgres at `start`.
    pub fn with_incarnations(mut self, reg: std::sync::Arc<Incarnations>, seen: Option<SourcePos>) -> Self {
        let applied_prefix = crate::conflict::incarnation::pg_applied_prefix(&self.origin_to_skip);
        self.incarnation = Some(Incarnation { reg, seen, applied_prefix });
        self
    }

    /// Is a transaction open (Begin seen, Commit not yet)?
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// The cached Relation message for `id`, if any.
    pub fn relation(&self, id: u32) -> Option<&Relation> {
        self.relations.get(&id).map(|e| &e.relation)
    }

    /// The user type announced for `oid`, if any.
    pub fn user_type(&self, oid: u32) -> Option<&TypeInfo> {
        self.types.get(&oid)
    }

    /// A keepalive reported `wal_end`: between transactions everything committed
    /// before it has been delivered, so it may be acknowledged once the events
    /// before it are durable.
    pub fn keepalive(&mut self, wal_end: Lsn) -> Option<SourceEvent> {
        if self.txn.is_some() || wal_end <= self.last_pos {
            return None;
        }
        self.last_pos = wal_end;
        Some(SourceEvent::Idle(SourcePos::Postgres(wal_end)))
    }

    /// Handles one message, appending the events to send to `out`.
    pub fn handle(&mut self, msg: PgOutputMessage, out: &mut Vec<SourceEvent>) -> Result<()> {
        match msg {
            PgOutputMessage::Begin(b) => {
                if self.txn.is_some() {
                    return Err(Error::Decode("pgoutput Begin inside an open transaction".into()));
                }
                // `start` is always the end of a record (a commit end or a keepalive
                // wal_end), and end_lsn > final_lsn: final_lsn < start ⇔ end_lsn <= start.
                let mode = if b.final_lsn < self.start { TxnMode::AlreadyApplied } else { TxnMode::Deliver };
                self.txn = Some(OpenTxn::new(b.final_lsn, mode));
            }
            PgOutputMessage::Origin(o) => {
                let txn = self.txn.as_mut().ok_or_else(|| outside("Origin"))?;
                if txn.seq.is_some() || !txn.pending.is_empty() {
                    return Err(Error::Decode(format!("pgoutput Origin {:?} after changes", o.name)));
                }
                // tandem's own writes: the appliers' origin, and the one `check --repair`
                // uses while the applier holds the first (one session per origin on PG ≤ 15).
                let ours = o.name == self.origin_to_skip || o.name.strip_suffix("_repair") == Some(self.origin_to_skip.as_str());
                if ours && txn.mode == TxnMode::Deliver {
                    txn.mode = TxnMode::EchoSkip;
                }
                txn.origin = Some(o.name);
            }
            PgOutputMessage::Relation(rel) => {
                let mapping = self.map_relation(&rel)?;
                if let Some(m) = &mapping {
                    let changed = match self.announced.get(&m.pair) {
                        Some(prev) => *prev != m.paused,
                        None => m.paused.is_some(),
                    };
                    if changed {
                        self.announced.insert(m.pair, m.paused.clone());
                        out.push(SourceEvent::PairState { pair: m.pair, paused: m.paused.clone() });
                    }
                }
                self.relations.insert(rel.id, RelationEntry { relation: rel, mapping });
            }
            PgOutputMessage::Type(t) => {
                self.types.insert(t.id, t);
            }
            PgOutputMessage::Insert(m) => {
                if let Some(change) = self.row_change(m.relation, "Insert", |n, map| n.insert(map, &m.new))? {
                    self.push(change, out);
                }
            }
            PgOutputMessage::Update(m) => {
                let change = self.row_change(m.relation, "Update", |n, map| n.update(map, m.old.as_ref(), &m.new))?;
                if let Some(change) = change {
                    self.push(change, out);
                }
            }
            PgOutputMessage::Delete(m) => {
                if let Some(change) = self.row_change(m.relation, "Delete", |n, map| n.delete(map, &m.old))? {
                    self.push(change, out);
                }
            }
            PgOutputMessage::Truncate(t) => {
                for rel in t.relations {
                    let change = self.row_change(rel, "Truncate", |n, map| {
                        Ok(Change {
                            pair: n.pair_schema(map)?.pair,
                            op: Op::Truncate,
                            key: vec![],
                            before: None,
                            after: None,
                        })
                    })?;
                    if let Some(change) = change {
                        self.push(change, out);
                    }
                }
            }
            PgOutputMessage::Message(m) => {
                if let Some(inc) = self.incarnation.as_ref().filter(|i| m.flags & 1 == 1 && m.prefix == i.applied_prefix) {
                    let txn = self.txn.as_mut().ok_or_else(|| outside("Message"))?;
                    match std::str::from_utf8(&m.content).ok().and_then(|t| t.parse::<crate::model::BinlogPos>().ok()) {
                        Some(p) => txn.applied = Some(SourcePos::Mysql(p)),
                        None => tracing::warn!(prefix = %inc.applied_prefix, "unreadable applied-position message ignored"),
                    }
                }
                // Transactional messages of this pipeline's prefix are backfill watermarks.
                if m.flags & 1 == 1 && m.prefix == self.signal_prefix {
                    let txn = self.txn.as_mut().ok_or_else(|| outside("Message"))?;
                    match serde_json::from_slice::<crate::backfill::Signal>(&m.content) {
                        Ok(signal) => txn.signals.push(signal),
                        Err(e) => tracing::warn!(error = %e, "unreadable backfill watermark ignored"),
                    }
                }
            }
            PgOutputMessage::Commit(c) => {
                let txn = self.txn.take().ok_or_else(|| outside("Commit"))?;
                if c.commit_lsn != txn.final_lsn {
                    tracing::debug!(begin = %txn.final_lsn, commit = %c.commit_lsn, "pgoutput commit LSN differs from Begin's");
                }
                let pos = SourcePos::Postgres(c.end_lsn);
                let mut txn = txn;
                let signals = if txn.mode == TxnMode::AlreadyApplied { Vec::new() } else { std::mem::take(&mut txn.signals) };
                if let Some(inc) = self.incarnation.as_mut() {
                    let applied = txn.applied.take();
                    if txn.mode == TxnMode::EchoSkip {
                        txn.forward = inc.reg.forwardable(Side::Postgres, applied.as_ref(), &pos, std::mem::take(&mut txn.forward));
                    }
                    if let Some(applied) = applied {
                        inc.seen = Some(applied);
                    }
                    if txn.mode == TxnMode::Deliver {
                        inc.reg.record_deletes(Side::Postgres, std::mem::take(&mut txn.deleted), &txn.truncated, &pos);
                    }
                }
                match txn.mode {
                    TxnMode::AlreadyApplied => {}
                    TxnMode::EchoSkip if !txn.forward.is_empty() => {
                        // tandem's writes that met a row Postgres re-created: Postgres' outcome goes to MySQL.
                        ::metrics::counter!(crate::metrics::ECHO_FORWARDED, "direction" => crate::config::Direction::PostgresToMysql.key())
                            .increment(txn.forward.len() as u64);
                        let txn_seq = self.begin(out, true);
                        out.push(SourceEvent::Changes(txn.forward));
                        self.last_pos = self.last_pos.max(c.end_lsn);
                        out.push(SourceEvent::Commit(TxnMeta {
                            position: pos.clone(),
                            commit_ts: super::pgoutput::pg_time_to_unix_micros(c.commit_ts),
                            origin: None,
                            txn_seq,
                        }));
                    }
                    TxnMode::EchoSkip => {
                        self.last_pos = self.last_pos.max(c.end_lsn);
                        out.push(SourceEvent::Idle(pos.clone()));
                    }
                    TxnMode::Deliver if txn.seq.is_none() && txn.pending.is_empty() => {
                        // A watermark carries its own position: an Idle first could be
                        // acknowledged before the watermark's work is done.
                        if c.end_lsn > self.start && signals.is_empty() {
                            self.last_pos = self.last_pos.max(c.end_lsn);
                            out.push(SourceEvent::Idle(pos.clone()));
                        }
                    }
                    TxnMode::Deliver => {
                        let txn_seq = match txn.seq {
                            Some(seq) => seq,
                            None => self.begin(out, false),
                        };
                        if !txn.pending.is_empty() {
                            out.push(SourceEvent::Changes(txn.pending));
                        }
                        self.last_pos = self.last_pos.max(c.end_lsn);
                        out.push(SourceEvent::Commit(TxnMeta {
                            position: pos.clone(),
                            commit_ts: super::pgoutput::pg_time_to_unix_micros(c.commit_ts),
                            origin: txn.origin,
                            txn_seq,
                        }));
                    }
                }
                for signal in signals {
                    out.push(SourceEvent::Signal { position: pos.clone(), signal });
                }
            }
        }
        Ok(())
    }

    fn begin(&mut self, out: &mut Vec<SourceEvent>, forwarded: bool) -> u64 {
        self.last_seq += 1;
        let seen = self.incarnation.as_ref().and_then(|i| i.seen.clone());
        out.push(SourceEvent::Begin { txn_seq: self.last_seq, seen, forwarded });
        self.last_seq
    }

    /// Queues a change of the open transaction; emits a chunk when full.
    /// In an echo (decoded once this side deleted something), keeps the
    /// writes to deleted keys: the candidates to forward at its commit.
    fn push(&mut self, change: Change, out: &mut Vec<SourceEvent>) {
        if let (Some(inc), Some(txn)) = (self.incarnation.as_ref(), self.txn.as_mut()) {
            if txn.mode == TxnMode::EchoSkip {
                let removed = schema_of(&self.pairs, change.pair).and_then(|p| deleted_key(&change, p));
                note_echo_write(&mut txn.forward, change, removed, |k| inc.reg.tombstoned(Side::Postgres, k));
                return;
            }
            if change.op == Op::Truncate {
                txn.truncated.push(change.pair);
            } else if txn.deleted.len() < crate::conflict::incarnation::MAX_TOMBSTONES {
                txn.deleted.extend(schema_of(&self.pairs, change.pair).and_then(|p| deleted_key(&change, p)));
            }
        }
        let full = match self.txn.as_mut() {
            Some(txn) => {
                txn.pending.push(change);
                txn.pending.len() >= self.chunk_rows
            }
            None => false,
        };
        if !full {
            return;
        }
        let needs_begin = self.txn.as_ref().is_some_and(|t| t.seq.is_none());
        let seq = if needs_begin { Some(self.begin(out, false)) } else { None };
        if let Some(txn) = self.txn.as_mut() {
            if seq.is_some() {
                txn.seq = seq;
            }
            out.push(SourceEvent::Changes(std::mem::take(&mut txn.pending)));
        }
    }

    /// Builds the change for a row message of a paired relation; `None` when the
    /// relation is not paired or the transaction is not delivered.
    fn row_change(
        &self,
        rel_id: u32,
        what: &str,
        build: impl FnOnce(&Self, &PairMapping) -> Result<Change>,
    ) -> Result<Option<Change>> {
        let txn = self.txn.as_ref().ok_or_else(|| outside(what))?;
        let entry = self.relations.get(&rel_id).ok_or_else(|| {
            Error::Decode(format!("pgoutput {what} for relation {rel_id} before its Relation message"))
        })?;
        let forwarding = txn.mode == TxnMode::EchoSkip && self.incarnation.as_ref().is_some_and(|i| i.reg.tracks_deletes(Side::Postgres));
        match (&entry.mapping, txn.mode) {
            (Some(map), TxnMode::Deliver) => build(self, map).map(Some),
            (Some(map), TxnMode::EchoSkip) if forwarding => build(self, map).map(Some),
            _ => Ok(None),
        }
    }

    fn pair_schema(&self, map: &PairMapping) -> Result<&PairSchema> {
        self.pairs.get(map.pair).ok_or_else(|| Error::Decode(format!("pair mapping {} out of range", map.pair)))
    }

    fn map_relation(&self, rel: &Relation) -> Result<Option<PairMapping>> {
        let Some(pair_idx) =
            self.pairs.iter().position(|p| p.pg_table.schema == rel.namespace && p.pg_table.name == rel.name)
        else {
            return Ok(None);
        };
        let pair = self.pairs.get(pair_idx).ok_or_else(|| Error::Decode(format!("pair {pair_idx} out of range")))?;
        let mut columns = Vec::with_capacity(pair.columns.len());
        let mut missing = Vec::new();
        for (j, col) in pair.columns.iter().enumerate() {
            let Some(i) = rel.columns.iter().position(|c| c.name == col.pg_name) else {
                if col.pg_generated {
                    columns.push(None);
                    continue;
                }
                if pair.key.contains(&j) {
                    return Err(Error::Schema {
                        pair: pair.name.clone(),
                        message: format!("key column {:?} is missing from {}.{} in the replication stream", col.pg_name, rel.namespace, rel.name),
                    });
                }
                missing.push(format!("column {:?} is missing from {}.{}", col.pg_name, rel.namespace, rel.name));
                columns.push(None);
                continue;
            };
            let oid = rel.columns.get(i).map_or(0, |c| c.type_oid);
            if let Some(problem) = retyped(col, oid) {
                if pair.key.contains(&j) {
                    return Err(Error::Schema { pair: pair.name.clone(), message: format!("key {problem} in {}.{}", rel.namespace, rel.name) });
                }
                missing.push(format!("{problem} in {}.{}; it is not replicated until fixed", rel.namespace, rel.name));
                columns.push(None);
                continue;
            }
            columns.push(Some((i, oid)));
        }
        for c in &rel.columns {
            if pair.pg_index(&c.name).is_none() {
                tracing::warn!(pair = %pair.name, table = %format!("{}.{}", rel.namespace, rel.name), column = %c.name,
                    "column not mapped by the pair is ignored");
            }
        }
        let paused = (!missing.is_empty()).then(|| missing.join("; "));
        Ok(Some(PairMapping { pair: pair_idx, columns, paused }))
    }

    fn map_tuple(&self, map: &PairMapping, tuple: &Tuple) -> Result<Row> {
        let pair = self.pair_schema(map)?;
        let mut row = Vec::with_capacity(map.columns.len());
        for (col, slot) in pair.columns.iter().zip(&map.columns) {
            let Some((i, oid)) = *slot else {
                row.push(Value::Unchanged);
                continue;
            };
            let value = match tuple.get(i) {
                None => {
                    return Err(Error::Decode(format!(
                        "{}: tuple has {} columns, the relation has more (column {:?})",
                        pair.pg_table,
                        tuple.len(),
                        col.pg_name
                    )))
                }
                Some(TupleValue::Null) => Value::Null,
                Some(TupleValue::Unchanged) => Value::Unchanged,
                Some(TupleValue::Text(raw)) => decode_text(oid, raw).map_err(|e| match e {
                    Error::Decode(m) => Error::Decode(format!("{}.{}: {m}", pair.pg_table, col.pg_name)),
                    other => other,
                })?,
            };
            row.push(value);
        }
        Ok(row)
    }

    fn insert(&self, map: &PairMapping, new: &Tuple) -> Result<Change> {
        let pair = self.pair_schema(map)?;
        let after = self.map_tuple(map, new)?;
        let key = pair.key_of(&after);
        Ok(Change { pair: pair.pair, op: Op::Insert, key, before: None, after: Some(after) })
    }

    fn update(&self, map: &PairMapping, old: Option<&OldTuple>, new: &Tuple) -> Result<Change> {
        let pair = self.pair_schema(map)?;
        let after = self.map_tuple(map, new)?;
        let old_row = old.map(|o| self.map_tuple(map, o.tuple())).transpose()?;
        let mut key = pair.key_of(&after);
        for (k, &col) in key.iter_mut().zip(&pair.key) {
            if *k == Value::Unchanged {
                match old_row.as_ref().and_then(|r| r.get(col)) {
                    Some(v) if *v != Value::Unchanged => *k = v.clone(),
                    _ => return Err(key_error(pair, col, "is an unchanged TOAST value and no old key was sent")),
                }
            }
        }
        let before = match old {
            Some(OldTuple::Full(_)) => old_row,
            _ => None,
        };
        Ok(Change { pair: pair.pair, op: Op::Update, key, before, after: Some(after) })
    }

    fn delete(&self, map: &PairMapping, old: &OldTuple) -> Result<Change> {
        let pair = self.pair_schema(map)?;
        let old_row = self.map_tuple(map, old.tuple())?;
        let key = pair.key_of(&old_row);
        if let OldTuple::Key(_) = old {
            if let Some(pos) = key.iter().position(|v| matches!(v, Value::Null | Value::Unchanged)) {
                let col = pair.key.get(pos).copied().unwrap_or(0);
                return Err(key_error(pair, col, "is not part of the replica identity; set REPLICA IDENTITY FULL"));
            }
        }
        let before = match old {
            OldTuple::Full(_) => Some(old_row),
            OldTuple::Key(_) => None,
        };
        Ok(Change { pair: pair.pair, op: Op::Delete, key, before, after: None })
    }
}

/// The kind of a built-in type OID's values (`None` for other types: user
/// types such as enums are not judged here).
fn oid_kind(oid: u32) -> Option<ValueKind> {
    Some(match oid {
        16 => ValueKind::Bool,
        20 | 21 | 23 => ValueKind::Int,
        1700 => ValueKind::Decimal,
        700 | 701 => ValueKind::Float,
        25 | 1042 | 1043 => ValueKind::Text,
        17 => ValueKind::Bytes,
        1082 => ValueKind::Date,
        1083 => ValueKind::Time,
        1114 => ValueKind::Timestamp,
        1184 => ValueKind::TimestampTz,
        114 | 3802 => ValueKind::Json,
        2950 => ValueKind::Uuid,
        _ => return None,
    })
}

/// Names a mapped column whose type changed to another kind than the pair
/// was resolved with (ALTER COLUMN … TYPE while running).
fn retyped(col: &crate::schema::ColumnSchema, oid: u32) -> Option<String> {
    let now = oid_kind(oid)?;
    let was = crate::schema::pg_kind(&col.pg_type);
    let same = now == was || (now == ValueKind::Decimal && was == ValueKind::UInt) || was == ValueKind::Unsupported;
    (!same).then(|| format!("column {:?} changed type (now type OID {oid}, was {})", col.pg_name, col.pg_type))
}

fn outside(what: &str) -> Error {
    Error::Decode(format!("pgoutput {what} outside a transaction"))
}

fn key_error(pair: &PairSchema, col: usize, what: &str) -> Error {
    let name = pair.columns.get(col).map_or("?", |c| c.pg_name.as_str());
    Error::Schema { pair: pair.name.clone(), message: format!("key column {name:?} {what}") }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
