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

/// Who made a transaction, as its source shows it (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The side's own clients: a change to replicate.
    Client,
    /// tandem itself (an applier or a repair of this pipeline), recognised
    /// by its origin tag: an echo of what tandem wrote, never replicated as
    /// such. Its rows follow only when the consumer asked for them
    /// (`source::OwnRows`); its checkpoint arrives as `SourceEvent::Applied`.
    Tandem,
    /// tandem's write as this side shows it, sent on as this side's change:
    /// the outcome of a change that met a row this side had re-created
    /// (`crate::echo`). The destination adopts it also in columns this side
    /// does not own, unless it changed them itself since.
    Outcome,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Tandem => "tandem",
            Origin::Outcome => "outcome",
        }
    }
}

/// What a source yields, in order.
///
/// A transaction is `Begin`, then `Changes` chunks (and, in tandem's own
/// transactions, `Applied`), then `Commit`; transactions never interleave.
/// The other events come between transactions.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A transaction begins. `commit_ts` is its source commit time, µs
    /// since the epoch, as far as the source knows it at the start (0 when
    /// it does not say): the lag clock counts from it while the transaction
    /// is read but not yet applied (`crate::service::liveness`).
    Begin { txn_seq: u64, origin: Origin, commit_ts: i64 },
    /// A chunk of changes of the open transaction, in source order.
    Changes(Vec<Change>),
    /// Inside a transaction of tandem's own: the other side's position it
    /// recorded as applied (its checkpoint), as text.
    Applied(String),
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
    /// A backfill watermark of this pipeline (its payload as stored),
    /// committed at `position`; sent after the transaction that carried it,
    /// which yields no `Idle` of its own.
    Watermark { position: SourcePos, payload: String },
    /// The transactions before and after must not share a destination
    /// transaction (sent by a stage between source and batcher, between transactions).
    Barrier,
}
