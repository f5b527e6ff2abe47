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
//!   paired changes yields only `Idle(end_lsn)`; one already applied (commit
//!   at or before `start`) yields nothing;
//! - a transaction tagged with tandem's own replication origin is delivered as
//!   an `Origin::Tandem` transaction whatever it touched: `Begin`, its rows
//!   only while `OwnRows` asks for them, `Applied` with the position named by
//!   the applier's logical message, `Commit`;
//! - a transactional logical message with this pipeline's watermark prefix
//!   becomes a `Watermark` after its transaction's `Commit` (instead of it
//!   when the transaction has nothing else to deliver);
//! - positions come only from Commit's `end_lsn` and keepalive `wal_end`, and
//!   `Idle` from a keepalive is emitted only between transactions, when
//!   everything committed before it has been delivered, and only forwards;
//! - a pair column Postgres generates (`GENERATED ALWAYS AS … STORED`), which
//!   pgoutput before PG 18 leaves out of the stream, reads as
//!   `Value::Unchanged` (the destination computes or keeps it); any other
//!   mapped column missing from a Relation is a schema error.

use super::pgoutput::{OldTuple, PgOutputMessage, Relation, Tuple, TupleValue, TypeInfo};
use crate::codec::pg_text::decode_text;
use crate::model::{Change, Lsn, Op, Origin, Row, SourceEvent, SourcePos, TxnMeta, Value};
use crate::source::OwnRows;
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
    /// tandem's own write coming back: delivered as `Origin::Tandem`.
    Own,
    /// Committed at or before the start position: nothing at all.
    AlreadyApplied,
}

#[derive(Debug)]
struct OpenTxn {
    final_lsn: Lsn,
    /// Commit time from Begin, µs since the epoch (0 when unknown).
    commit_ts: i64,
    origin: Option<String>,
    mode: TxnMode,
    /// `Some` once `Begin` was emitted.
    seq: Option<u64>,
    pending: Vec<Change>,
    /// Backfill watermark payloads carried by the transaction (logical messages).
    watermarks: Vec<String>,
    /// tandem's own transaction: the position its applied-position message names.
    applied: Option<String>,
    /// A client transaction that removes a row (`OwnRows::removed` at its commit).
    removes: bool,
}

impl OpenTxn {
    fn new(final_lsn: Lsn, commit_ts: i64, mode: TxnMode) -> Self {
        OpenTxn {
            final_lsn,
            commit_ts,
            origin: None,
            mode,
            seq: None,
            pending: Vec::new(),
            watermarks: Vec::new(),
            applied: None,
            removes: false,
        }
    }
}

/// The pgoutput → `SourceEvent` state machine.
#[derive(Debug)]
pub struct Normalizer {
    pairs: Vec<PairSchema>,
    relations: HashMap<u32, RelationEntry>,
    types: HashMap<u32, TypeInfo>,
    /// This pipeline's replication origin: its transactions are tandem's own.
    origin: String,
    /// Prefix of this pipeline's backfill watermark messages.
    signal_prefix: String,
    /// Prefix of the appliers' applied-position messages.
    applied_prefix: String,
    chunk_rows: usize,
    start: Lsn,
    last_seq: u64,
    /// Highest position reported by a `Commit` or `Idle`.
    last_pos: Lsn,
    txn: Option<OpenTxn>,
    /// Pause state last sent per pair (`SourceEvent::PairState`).
    announced: HashMap<usize, Option<String>>,
    own_rows: OwnRows,
}

impl Normalizer {
    /// `origin`: the pipeline's replication origin (`tandem_<pipeline>`).
    pub fn new(pairs: Vec<PairSchema>, origin: String, chunk_rows: usize, start: Lsn) -> Self {
        Normalizer {
            pairs,
            relations: HashMap::new(),
            types: HashMap::new(),
            signal_prefix: crate::state::names::pg_signal_prefix(&origin),
            applied_prefix: crate::state::names::pg_applied_prefix(&origin),
            origin,
            chunk_rows: chunk_rows.max(1),
            start,
            last_seq: 0,
            last_pos: start,
            txn: None,
            announced: HashMap::new(),
            own_rows: OwnRows::default(),
        }
    }

    /// Delivers the rows of tandem's own transactions while `own_rows` asks.
    pub fn with_own_rows(mut self, own_rows: OwnRows) -> Self {
        self.own_rows = own_rows;
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

    /// A keepalive at `wal_end` that moved nothing forward (`keepalive`
    /// returned `None`): between transactions, with everything up to the
    /// last position delivered, it proves the stream is caught up — an
    /// `Idle` at the last position (already delivered; acknowledging it again
    /// changes nothing) that keeps the lag clock fresh while nothing happens.
    pub fn caught_up(&self, wal_end: Lsn) -> Option<SourceEvent> {
        (self.txn.is_none() && wal_end <= self.last_pos).then(|| SourceEvent::Idle(SourcePos::Postgres(self.last_pos)))
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
                self.txn = Some(OpenTxn::new(b.final_lsn, super::pgoutput::pg_time_to_unix_micros(b.commit_ts), mode));
            }
            PgOutputMessage::Origin(o) => {
                let txn = self.txn.as_mut().ok_or_else(|| outside("Origin"))?;
                if txn.seq.is_some() || !txn.pending.is_empty() {
                    return Err(Error::Decode(format!("pgoutput Origin {:?} after changes", o.name)));
                }
                if crate::state::names::is_own_origin(&o.name, &self.origin) && txn.mode == TxnMode::Deliver {
                    txn.mode = TxnMode::Own;
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
                // Transactional messages only: a non-transactional one has no place in the stream.
                let applied = m.prefix == self.applied_prefix;
                if m.flags & 1 == 1 && (applied || m.prefix == self.signal_prefix) {
                    let txn = self.txn.as_mut().ok_or_else(|| outside("Message"))?;
                    match String::from_utf8(m.content.to_vec()) {
                        Ok(text) if applied => txn.applied = Some(text),
                        Ok(text) => txn.watermarks.push(text),
                        Err(_) => tracing::warn!(prefix = %m.prefix, "logical message of this pipeline that is not UTF-8 ignored"),
                    }
                }
            }
            PgOutputMessage::Commit(c) => {
                let mut txn = self.txn.take().ok_or_else(|| outside("Commit"))?;
                if c.commit_lsn != txn.final_lsn {
                    tracing::debug!(begin = %txn.final_lsn, commit = %c.commit_lsn, "pgoutput commit LSN differs from Begin's");
                }
                let pos = SourcePos::Postgres(c.end_lsn);
                let watermarks = if txn.mode == TxnMode::AlreadyApplied { Vec::new() } else { std::mem::take(&mut txn.watermarks) };
                let meta = |txn_seq, origin| TxnMeta {
                    position: pos.clone(),
                    commit_ts: super::pgoutput::pg_time_to_unix_micros(c.commit_ts),
                    origin,
                    txn_seq,
                };
                match txn.mode {
                    TxnMode::AlreadyApplied => {}
                    TxnMode::Deliver if txn.seq.is_none() && txn.pending.is_empty() => {
                        // A watermark carries its own position: an Idle first could be
                        // acknowledged before the watermark's work is done.
                        if c.end_lsn > self.start && watermarks.is_empty() {
                            self.last_pos = self.last_pos.max(c.end_lsn);
                            out.push(SourceEvent::Idle(pos.clone()));
                        }
                    }
                    TxnMode::Deliver | TxnMode::Own => {
                        let origin = if txn.mode == TxnMode::Own { Origin::Tandem } else { Origin::Client };
                        let txn_seq = match txn.seq {
                            Some(seq) => seq,
                            None => self.begin(out, origin, txn.commit_ts),
                        };
                        if !txn.pending.is_empty() {
                            out.push(SourceEvent::Changes(txn.pending));
                        }
                        if let Some(applied) = txn.applied {
                            out.push(SourceEvent::Applied(applied));
                        }
                        if txn.removes {
                            // Before the next transaction: an echo after this one comes with its rows.
                            self.own_rows.removed();
                        }
                        self.last_pos = self.last_pos.max(c.end_lsn);
                        out.push(SourceEvent::Commit(meta(txn_seq, txn.origin)));
                    }
                }
                for payload in watermarks {
                    out.push(SourceEvent::Watermark { position: pos.clone(), payload });
                }
            }
        }
        Ok(())
    }

    fn begin(&mut self, out: &mut Vec<SourceEvent>, origin: Origin, commit_ts: i64) -> u64 {
        self.last_seq += 1;
        out.push(SourceEvent::Begin { txn_seq: self.last_seq, origin, commit_ts });
        self.last_seq
    }

    /// Queues a change of the open transaction; emits a chunk when full.
    fn push(&mut self, change: Change, out: &mut Vec<SourceEvent>) {
        let removes = self.pairs.iter().find(|p| p.pair == change.pair).is_some_and(|p| p.removes_row(&change));
        let Some(txn) = self.txn.as_mut() else { return };
        txn.removes |= removes && txn.mode == TxnMode::Deliver;
        txn.pending.push(change);
        if txn.pending.len() < self.chunk_rows {
            return;
        }
        let origin = if txn.mode == TxnMode::Own { Origin::Tandem } else { Origin::Client };
        if txn.seq.is_none() {
            let commit_ts = txn.commit_ts;
            let seq = self.begin(out, origin, commit_ts);
            if let Some(txn) = self.txn.as_mut() {
                txn.seq = Some(seq);
            }
        }
        if let Some(txn) = self.txn.as_mut() {
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
        match (&entry.mapping, txn.mode) {
            (Some(map), TxnMode::Deliver) => build(self, map).map(Some),
            (Some(map), TxnMode::Own) if self.own_rows.wanted() => build(self, map).map(Some),
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
            // A domain column arrives under the domain's OID: decode it as its
            // base type, which the pair schema names (`schema::introspect::pg_domain`).
            let oid = match oid_kind(oid) {
                None => crate::codec::pg_text::builtin_oid(&col.pg_type).unwrap_or(oid),
                Some(_) => oid,
            };
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
