//! The batcher of one direction: consumes a source's ordered `SourceEvent`s
//! (through the echo stage) and drives a `BatchApplier`.
//!
//! Invariants: a source transaction is never split across destination
//! commits — a destination transaction commits only at a source commit
//! boundary; several source transactions may share one destination
//! transaction (up to `max_batch_rows` rows or `max_batch_delay`, and sooner
//! when no further event is waiting, which keeps latency low when idle and
//! batches large under load; a `Barrier` closes the open batch). Under a steady stream of small transactions
//! (the previous batch committed moments ago) a batch stays open up to
//! `LINGER` for the next one: a source that trickles transactions out one at
//! a time would otherwise cost one destination commit each, and the
//! destination's per-commit work would bound the throughput. The source is
//! acknowledged only after the destination commit that contains its position. A large transaction is
//! written to the open destination transaction in chunks of `chunk_rows`, so
//! memory stays bounded. When the stream ends mid-transaction (shutdown), the
//! complete transactions are committed if none of the partial one was
//! written yet; otherwise the whole batch is rolled back and replayed later.
//!
//! A barrier mark (`tandem barrier`, `super::barrier`) commits the open
//! batch and then its own position as the checkpoint, in a destination
//! transaction of its own, so the checkpoint passes it even when nothing
//! before it needed applying.
//!
//! Paused pairs (`SourceEvent::PairState`, a mapped column missing at the
//! source): their changes are parked at the destination, in the same
//! transaction as everything else, while the other pairs go on. A pair with
//! parked changes (its backlog, also found at start) keeps parking while
//! paused; once it is not paused, its backlog is applied in order before any
//! newer change of that pair — when the resume arrives inside an open batch,
//! at the next commit, or before its next change, whichever comes first.

use crate::apply::BatchApplier;
use crate::backfill::window::Windows;
use crate::backfill::{ChunkJob, ChunkOutcome, Signal, SignalKind};
use crate::config::Direction;
use crate::metrics as m;
use crate::model::{Change, Origin, SourceEvent, SourcePos, TxnMeta};
use crate::source::EventStream;
use crate::Result;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// How long a batch may wait for more transactions while the stream is busy
/// (capped by `max_batch_delay`).
const LINGER: Duration = Duration::from_millis(10);
/// The stream counts as busy when the previous batch committed this recently.
const BUSY: Duration = Duration::from_millis(50);
/// The loop checks in (`DirectionClock::check_in`) at least this often while it waits for events.
const CHECK_IN: Duration = Duration::from_secs(1);

/// Test hook: while the file named by `TANDEM_TEST_HOLD_FILE` holds this
/// direction's key (`postgres_to_mysql`), its loop stops here without
/// checking in — a loop stuck anywhere, as the watchdog must see it.
async fn hold_if_asked(direction: Direction) {
    static FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(path) = FILE.get_or_init(|| std::env::var_os("TANDEM_TEST_HOLD_FILE").map(Into::into)) else { return };
    let held = || std::fs::read_to_string(path).is_ok_and(|t| t.contains(direction.key()));
    if held() {
        tracing::warn!(%direction, "held by TANDEM_TEST_HOLD_FILE (test hook)");
        while held() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Batch limits for one direction.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub max_rows: usize,
    pub max_delay: Duration,
    /// Buffered changes are written to the open destination transaction at this size.
    pub chunk_rows: usize,
}

/// Counters of one batcher run, for tests, the demo and status output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatcherStats {
    pub transactions: u64,
    pub changes: u64,
    pub batches: u64,
    pub last_position: Option<SourcePos>,
}

struct Batch {
    open: bool,
    started: Instant,
    rows: usize,
    last: Option<TxnMeta>,
    idle: Option<SourcePos>,
    in_txn: bool,
    txn_written: bool,
    txn_rows: usize,
    buffer: Vec<Change>,
    applied: HashMap<(usize, &'static str), u64>,
    /// Pairs the source cannot fully decode: pair → reason.
    paused: HashMap<usize, String>,
    /// Pairs with parked changes at the destination.
    backlog: HashSet<usize>,
    /// The last position acknowledged in this run.
    acked: Option<SourcePos>,
    /// Backfill chunks between their watermarks (`crate::backfill`).
    windows: Windows,
    /// The origin of the transactions whose changes are in `buffer`.
    origin: Origin,
    /// The open batch waits (up to `LINGER` from its start) for more transactions.
    lingering: bool,
    /// When the last batch committed.
    last_commit: Option<Instant>,
}

impl Batch {
    /// Nothing to apply up to `pos`: acknowledged now, or with the open batch.
    fn nothing_until(&mut self, pos: SourcePos, ack: &impl Fn(&SourcePos)) {
        if self.open {
            self.idle = Some(pos);
        } else {
            ack(&pos);
            self.acked = Some(pos);
        }
    }

    fn note_write(&mut self) {
        if self.in_txn {
            self.txn_written = true;
        }
    }
}

/// Runs until the event stream ends; returns what was applied.
pub async fn run_batcher<A: BatchApplier, E: EventStream>(
    direction: Direction,
    applier: &mut A,
    rx: &mut E,
    ack: impl Fn(&SourcePos),
    settings: &BatchSettings,
    pair_names: &[String],
) -> Result<BatcherStats> {
    let mut stats = BatcherStats::default();
    let mut b = Batch {
        open: false,
        started: Instant::now(),
        rows: 0,
        last: None,
        idle: None,
        in_txn: false,
        txn_written: false,
        txn_rows: 0,
        buffer: Vec::with_capacity(settings.chunk_rows),
        applied: HashMap::new(),
        paused: HashMap::new(),
        backlog: applier.parked_pairs().await?.into_iter().collect(),
        acked: None,
        windows: Windows::default(),
        origin: Origin::Client,
        lingering: false,
        last_commit: None,
    };
    for &pair in &b.backlog {
        tracing::warn!(%direction, pair = %name_of(pair_names, pair), "pair has parked changes from a pause; they are applied once its source schema is fixed");
    }
    let dir = direction.key();
    let clock = crate::service::state::global().clock(direction);
    let result: Result<()> = async {
        loop {
            clock.check_in();
            hold_if_asked(direction).await;
            // Waits end at least every CHECK_IN so the loop checks in while idle.
            let batch_deadline = (b.open && !b.in_txn).then(|| b.started + if b.lingering { settings.max_delay.min(LINGER) } else { settings.max_delay });
            let wake = batch_deadline.map_or(Instant::now() + CHECK_IN, |d| d.min(Instant::now() + CHECK_IN));
            let event = match tokio::time::timeout_at(wake, rx.next()).await {
                Ok(e) => e,
                Err(_) if batch_deadline.is_some_and(|d| Instant::now() >= d) => {
                    commit(direction, applier, &mut b, &mut stats, &ack, pair_names).await?;
                    continue;
                }
                Err(_) => continue,
            };
            let Some(event) = event else { break };
            match event {
                SourceEvent::Begin { origin, commit_ts, .. } => {
                    clock.began(commit_ts);
                    if origin != b.origin {
                        // One `write` holds changes of one origin only.
                        if !b.buffer.is_empty() {
                            applier.write(b.origin, &b.buffer).await?;
                            b.buffer.clear();
                        }
                        b.origin = origin;
                    }
                    if !b.open {
                        applier.begin().await?;
                        b.open = true;
                        b.started = Instant::now();
                    }
                    b.in_txn = true;
                    b.txn_written = false;
                    b.txn_rows = 0;
                }
                SourceEvent::Changes(changes) => {
                    metrics::counter!(m::CHANGES_READ, "direction" => dir).increment(changes.len() as u64);
                    b.txn_rows += changes.len();
                    if !b.windows.is_empty() {
                        changes.iter().for_each(|c| b.windows.observe(c));
                    }
                    let mut parked: Vec<Change> = Vec::new();
                    for c in changes {
                        if b.paused.contains_key(&c.pair) {
                            parked.push(c);
                            continue;
                        }
                        if b.backlog.contains(&c.pair) {
                            unpark(direction, applier, &mut b, c.pair, pair_names).await?;
                        }
                        *b.applied.entry((c.pair, c.op.as_str())).or_default() += 1;
                        b.buffer.push(c);
                    }
                    if !parked.is_empty() {
                        park(direction, applier, &mut b, parked, pair_names).await?;
                    }
                    if b.buffer.len() >= settings.chunk_rows {
                        applier.write(b.origin, &b.buffer).await?;
                        b.buffer.clear();
                        b.txn_written = true;
                    }
                }
                SourceEvent::Commit(meta) => {
                    b.in_txn = false;
                    b.rows += b.txn_rows;
                    stats.transactions += 1;
                    stats.changes += b.txn_rows as u64;
                    b.last = Some(meta);
                    let age = b.started.elapsed();
                    let busy = b.last_commit.is_some_and(|t| t.elapsed() < BUSY);
                    if b.rows >= settings.max_rows || age >= settings.max_delay {
                        commit(direction, applier, &mut b, &mut stats, &ack, pair_names).await?;
                    } else if rx.is_empty() {
                        if busy && age < settings.max_delay.min(LINGER) {
                            b.lingering = true;
                        } else {
                            commit(direction, applier, &mut b, &mut stats, &ack, pair_names).await?;
                        }
                    }
                }
                SourceEvent::Idle(pos) => {
                    if !b.open {
                        clock.caught_up();
                    }
                    b.nothing_until(pos, &ack)
                }
                SourceEvent::Barrier => {
                    if b.open && !b.in_txn && b.last.is_some() {
                        commit(direction, applier, &mut b, &mut stats, &ack, pair_names).await?;
                    }
                }
                // Only tandem's own transactions carry one; the echo stage consumes them.
                SourceEvent::Applied(_) => {}
                SourceEvent::Watermark { position, payload } if super::barrier::BarrierMark::parse(&payload).is_some() => {
                    checkpoint_mark(direction, applier, &mut b, &mut stats, &ack, pair_names, position).await?;
                }
                SourceEvent::Watermark { position, payload } => {
                    let signal: Signal = match serde_json::from_str(&payload) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(%direction, error = %e, "unreadable backfill watermark ignored");
                            continue;
                        }
                    };
                    let Some(pair) = pair_names.iter().position(|n| *n == signal.pair) else {
                        tracing::warn!(%direction, pair = %signal.pair, "backfill watermark for a pair this config does not have; ignored");
                        continue;
                    };
                    match signal.kind {
                        SignalKind::Low => {
                            let key = applier.pair_key(pair).unwrap_or_default();
                            b.windows.low(pair, &key, &signal);
                            b.nothing_until(position, &ack);
                        }
                        SignalKind::High => {
                            let fix = b.windows.high(pair, &signal);
                            let job = ChunkJob { pair, signal, fix };
                            apply_chunk(direction, applier, &mut b, &mut stats, &ack, pair_names, job, position).await?;
                        }
                    }
                }
                SourceEvent::PairState { pair, paused } => {
                    let name = name_of(pair_names, pair);
                    crate::service::state::global().pair_paused(direction, &name, paused.as_deref());
                    metrics::gauge!(m::PAIR_PAUSED, "direction" => dir, "pair" => name.clone()).set(if paused.is_some() { 1.0 } else { 0.0 });
                    match paused {
                        Some(reason) => {
                            tracing::error!(%direction, pair = %name, %reason,
                                "pair paused: its changes are parked at the destination until the schema is fixed; the other pairs go on");
                            b.paused.insert(pair, reason);
                        }
                        None => {
                            if b.paused.remove(&pair).is_some() {
                                tracing::info!(%direction, pair = %name, "pair resumed: its source schema is complete again");
                            }
                            if b.backlog.contains(&pair) {
                                replay_backlog_now(direction, applier, &mut b, pair, pair_names).await?;
                            }
                        }
                    }
                }
            }
        }
        // The stream ended (shutdown or source error).
        if b.open {
            if b.in_txn && b.txn_written {
                tracing::info!(direction = %direction, "stream ended inside a large transaction; rolling back the batch, it will be replayed");
                applier.rollback().await?;
            } else if b.last.is_some() {
                if b.in_txn {
                    // Drop the buffered part of the unfinished transaction.
                    let keep = b.buffer.len().saturating_sub(b.txn_rows);
                    b.buffer.truncate(keep);
                }
                commit(direction, applier, &mut b, &mut stats, &ack, pair_names).await?;
            } else {
                applier.rollback().await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        if b.open {
            let _ = applier.rollback().await;
        }
        return Err(e);
    }
    Ok(stats)
}

async fn commit<A: BatchApplier>(
    direction: Direction,
    applier: &mut A,
    b: &mut Batch,
    stats: &mut BatcherStats,
    ack: &impl Fn(&SourcePos),
    pair_names: &[String],
) -> Result<()> {
    let dir = direction.key();
    let Some(last) = b.last.take() else {
        // Nothing complete in the batch (only Begin seen so far): keep waiting.
        b.started = Instant::now();
        b.lingering = false;
        return Ok(());
    };
    let t0 = Instant::now();
    if !b.buffer.is_empty() {
        applier.write(b.origin, &b.buffer).await?;
        b.buffer.clear();
    }
    let ready: Vec<usize> = b.backlog.iter().copied().filter(|p| !b.paused.contains_key(p)).collect();
    for pair in ready {
        unpark(direction, applier, b, pair, pair_names).await?;
    }
    applier.commit(&last).await?;
    metrics::histogram!(m::APPLY_SECONDS, "direction" => dir).record(t0.elapsed().as_secs_f64());
    tracing::debug!(%direction, rows = b.rows, open_ms = b.started.elapsed().as_millis() as u64, commit_ms = t0.elapsed().as_millis() as u64, "batch committed");
    metrics::histogram!(m::BATCH_ROWS, "direction" => dir).record(b.rows as f64);
    // Everything read so far is in this commit (it happens between source transactions).
    crate::service::state::global().clock(direction).applied(last.commit_ts);
    for ((pair, op), n) in b.applied.drain() {
        let name = pair_names.get(pair).cloned().unwrap_or_default();
        metrics::counter!(m::CHANGES_APPLIED, "direction" => dir, "pair" => name, "op" => op).increment(n);
    }
    ack(&last.position);
    b.acked = Some(last.position.clone());
    if let Some(idle) = b.idle.take() {
        if idle.try_cmp(&last.position) == Some(std::cmp::Ordering::Greater) {
            ack(&idle);
            b.acked = Some(idle);
        }
    }
    stats.batches += 1;
    stats.last_position = Some(last.position);
    b.open = false;
    b.rows = 0;
    b.lingering = false;
    b.last_commit = Some(Instant::now());
    Ok(())
}

/// Commits the open batch (everything before `position`), then opens a
/// destination transaction unless one is open.
async fn close_batch_at_signal<A: BatchApplier>(
    direction: Direction,
    applier: &mut A,
    b: &mut Batch,
    stats: &mut BatcherStats,
    ack: &impl Fn(&SourcePos),
    pair_names: &[String],
) -> Result<()> {
    if b.open && b.last.is_some() {
        commit(direction, applier, b, stats, ack, pair_names).await?;
    }
    if !b.open {
        applier.begin().await?;
        b.open = true;
    }
    if !b.buffer.is_empty() {
        applier.write(b.origin, &b.buffer).await?;
        b.buffer.clear();
    }
    Ok(())
}

/// The open transaction, committed with `position` as the checkpoint; the
/// source acknowledged up to it.
async fn commit_signal<A: BatchApplier>(applier: &mut A, b: &mut Batch, ack: &impl Fn(&SourcePos), position: SourcePos) -> Result<()> {
    applier.commit(&TxnMeta { position: position.clone(), commit_ts: 0, origin: None, txn_seq: 0 }).await?;
    b.open = false;
    b.rows = 0;
    b.lingering = false;
    if b.idle.as_ref().is_some_and(|i| i.try_cmp(&position) != Some(std::cmp::Ordering::Greater)) {
        b.idle = None;
    }
    ack(&position);
    b.acked = Some(position);
    Ok(())
}

/// A barrier mark (`super::barrier`): commits the open batch, then the
/// mark's position as the checkpoint in a transaction of its own.
async fn checkpoint_mark<A: BatchApplier>(
    direction: Direction,
    applier: &mut A,
    b: &mut Batch,
    stats: &mut BatcherStats,
    ack: &impl Fn(&SourcePos),
    pair_names: &[String],
    position: SourcePos,
) -> Result<()> {
    close_batch_at_signal(direction, applier, b, stats, ack, pair_names).await?;
    tracing::debug!(%direction, %position, "barrier mark: checkpoint moved to it");
    commit_signal(applier, b, ack, position).await
}

/// A backfill chunk's high watermark: commits the open batch (everything
/// before the watermark), then merges the chunk in a transaction of its own
/// that commits the watermark's position as the checkpoint.
#[allow(clippy::too_many_arguments)]
async fn apply_chunk<A: BatchApplier>(
    direction: Direction,
    applier: &mut A,
    b: &mut Batch,
    stats: &mut BatcherStats,
    ack: &impl Fn(&SourcePos),
    pair_names: &[String],
    job: ChunkJob,
    position: SourcePos,
) -> Result<()> {
    close_batch_at_signal(direction, applier, b, stats, ack, pair_names).await?;
    let name = name_of(pair_names, job.pair);
    let outcome = match applier.apply_chunk(&job).await {
        Ok(o) => o,
        Err(e) if e.classify() == crate::error::ErrorClass::Transient => return Err(e),
        Err(e) => {
            // A chunk the destination refuses must not stop replication: abandon it
            // (the window is dropped, so the abandonment path runs) and say why.
            tracing::error!(%direction, pair = %name, chunk = job.signal.chunk, error = %e, "backfill chunk cannot be merged; abandoned");
            applier.rollback().await?;
            applier.begin().await?;
            applier.apply_chunk(&ChunkJob { fix: None, ..job.clone() }).await?
        }
    };
    commit_signal(applier, b, ack, position).await?;
    match outcome {
        ChunkOutcome::Applied { rows } => {
            metrics::counter!(m::BACKFILL_ROWS, "direction" => direction.key(), "pair" => name.clone()).increment(rows);
            tracing::debug!(%direction, pair = %name, chunk = job.signal.chunk, rows, "backfill chunk merged");
        }
        ChunkOutcome::Abandoned(reason) => {
            tracing::info!(%direction, pair = %name, chunk = job.signal.chunk, %reason, "backfill chunk not merged; tandem backfill copies it again");
        }
    }
    Ok(())
}

fn name_of(pair_names: &[String], pair: usize) -> String {
    pair_names.get(pair).cloned().unwrap_or_else(|| format!("#{pair}"))
}

/// Parks changes of paused pairs in the open transaction.
async fn park<A: BatchApplier>(direction: Direction, applier: &mut A, b: &mut Batch, changes: Vec<Change>, pair_names: &[String]) -> Result<()> {
    let mut by_pair: Vec<(usize, Vec<Change>)> = Vec::new();
    for c in changes {
        match by_pair.iter_mut().find(|(p, _)| *p == c.pair) {
            Some((_, v)) => v.push(c),
            None => by_pair.push((c.pair, vec![c])),
        }
    }
    for (pair, changes) in by_pair {
        let reason = b.paused.get(&pair).cloned().unwrap_or_default();
        applier.park(&changes, &reason).await?;
        metrics::counter!(m::PARKED, "direction" => direction.key(), "pair" => name_of(pair_names, pair)).increment(changes.len() as u64);
        b.backlog.insert(pair);
        b.note_write();
    }
    Ok(())
}

/// Applies the parked changes of a pair that is no longer paused, after the
/// buffered changes (which are older), in the open transaction.
async fn unpark<A: BatchApplier>(direction: Direction, applier: &mut A, b: &mut Batch, pair: usize, pair_names: &[String]) -> Result<()> {
    if !b.buffer.is_empty() {
        applier.write(b.origin, &b.buffer).await?;
        b.buffer.clear();
    }
    let n = applier.unpark(pair).await?;
    b.backlog.remove(&pair);
    b.note_write();
    tracing::info!(%direction, pair = %name_of(pair_names, pair), changes = n, "applied the changes parked while the pair was paused");
    Ok(())
}

/// A pair resumed: replays its backlog in the open batch, or — between
/// batches — in a transaction of its own that re-commits the last
/// acknowledged position (nothing newer is in it). Before anything was
/// acknowledged in this run, the next commit replays it.
async fn replay_backlog_now<A: BatchApplier>(direction: Direction, applier: &mut A, b: &mut Batch, pair: usize, pair_names: &[String]) -> Result<()> {
    if b.open {
        return unpark(direction, applier, b, pair, pair_names).await;
    }
    let Some(position) = b.acked.clone() else { return Ok(()) };
    applier.begin().await?;
    b.open = true;
    unpark(direction, applier, b, pair, pair_names).await?;
    applier.commit(&TxnMeta { position, commit_ts: 0, origin: None, txn_seq: 0 }).await?;
    b.open = false;
    Ok(())
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
