//! The normalized row change that both sources emit and both appliers consume.
//!
//! A `Row` is positional: value `i` belongs to column `i` of the pair's
//! `PairSchema` (see `crate::schema`), in canonical column names, so no wire
//! format or SQL dialect leaks past the source edge. Sources deliver changes as
//! an ordered stream of `SourceEvent`s: `Begin`, one or more `Changes` chunks,
//! `Commit` — a transaction is never interleaved with another, and a large
//! transaction arrives in bounded chunks so memory stays bounded.

use super::position::SourcePos;
use super::value::Value;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }
}

/// Values in the pair's canonical column order.
pub type Row = Vec<Value>;

/// One row change, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Index of the pair in `Config::pairs`.
    pub pair: usize,
    pub op: Op,
    /// Key values (pair key column order). Empty for `Truncate`.
    pub key: Row,
    /// Full before-image (updates and deletes, when the source sent one).
    pub before: Option<Row>,
    /// Full after-image (inserts and updates); may contain `Value::Unchanged`.
    pub after: Option<Row>,
}

impl Change {
    pub fn weight(&self) -> usize {
        let row = |r: &Option<Row>| r.as_ref().map_or(0, |r| r.iter().map(Value::weight).sum());
        64 + row(&self.before) + row(&self.after)
    }
}

/// Metadata of one source transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnMeta {
    /// Position that marks this transaction as applied once committed
    /// (Postgres: commit end LSN; MySQL: GTID / file:pos after the commit event).
    pub position: SourcePos,
    /// Source commit time, µs since the epoch (0 when the source did not say).
    pub commit_ts: i64,
    /// Origin tag of the transaction, if any (echo suppression).
    pub origin: Option<String>,
    /// Monotonic sequence number of the transaction within this stream run.
    pub txn_seq: u64,
}

/// What a source yields, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A transaction begins. `seen`: the other side's position that had
    /// been applied on this side when the transaction committed, when known
    /// (`crate::conflict::incarnation`). `forwarded`: the transaction is not
    /// this side's own but tandem's write that this side's source forwards
    /// (the outcome of a change that met a re-created row): the destination
    /// adopts it also in columns this side does not own, unless it changed
    /// them itself since.
    Begin { txn_seq: u64, seen: Option<SourcePos>, forwarded: bool },
    /// A chunk of changes of the open transaction, in source order.
    Changes(Vec<Change>),
    /// The open transaction committed.
    Commit(TxnMeta),
    /// Nothing to replicate up to this position (keepalive / filtered transaction):
    /// may be acknowledged once everything before it is durable.
    Idle(SourcePos),
    /// The source can (`paused: None`) or cannot fully decode a pair any
    /// more: a mapped column is missing or changed to an unsupported type
    /// (the reason names it). Sent in stream order when the state changes
    /// and, for paused pairs, when the stream starts. Changes of a paused pair
    /// still follow, with the columns it lacks as `Value::Unchanged`.
    PairState { pair: usize, paused: Option<String> },
    /// A backfill watermark of this pipeline, committed at `position`; sent
    /// after the events of the transaction that carried it.
    Signal { position: SourcePos, signal: crate::backfill::Signal },
}
