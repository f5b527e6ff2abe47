//! Batcher invariants, pinned with a recording applier.

use super::*;
use crate::model::{Lsn, Op, TxnMeta, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Begin,
    Write(usize),
    /// A write of an `Origin::Outcome` transaction's changes.
    WriteOutcome(usize),
    Commit(SourcePos),
    Rollback,
    /// Parked (pair, keys).
    Park(usize, Vec<i64>),
    Unpark(usize),
    /// A backfill chunk: (chunk, keys dropped, rows restaged; `None` without a window).
    Chunk(u64, Option<(usize, usize)>),
}

#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
    /// Pairs with parked changes when the batcher starts.
    backlog: Vec<usize>,
}

impl BatchApplier for Recorder {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        Ok(None)
    }
    async fn begin(&mut self) -> Result<()> {
        self.calls.push(Call::Begin);
        Ok(())
    }
    async fn write(&mut self, origin: Origin, changes: &[Change]) -> Result<()> {
        self.calls.push(match origin {
            Origin::Outcome => Call::WriteOutcome(changes.len()),
            _ => Call::Write(changes.len()),
        });
        Ok(())
    }
    async fn commit(&mut self, last: &TxnMeta) -> Result<()> {
        self.calls.push(Call::Commit(last.position.clone()));
        Ok(())
    }
    async fn rollback(&mut self) -> Result<()> {
        self.calls.push(Call::Rollback);
        Ok(())
    }
    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        Ok(self.backlog.clone())
    }
    async fn park(&mut self, changes: &[Change], _reason: &str) -> Result<()> {
        let keys = changes.iter().map(|c| if let Value::Int(i) = c.key[0] { i } else { -1 }).collect();
        self.calls.push(Call::Park(changes[0].pair, keys));
        Ok(())
    }
    async fn unpark(&mut self, pair: usize) -> Result<u64> {
        self.calls.push(Call::Unpark(pair));
        Ok(1)
    }
    fn pair_key(&self, _pair: usize) -> Option<Vec<usize>> {
        Some(vec![0])
    }
    async fn apply_chunk(&mut self, job: &crate::backfill::ChunkJob) -> Result<ChunkOutcome> {
        self.calls.push(Call::Chunk(job.signal.chunk, job.fix.as_ref().map(|f| (f.dropped.len(), f.rows.len()))));
        Ok(ChunkOutcome::Applied { rows: job.signal.rows })
    }
}

fn change(i: i64) -> Change {
    Change { pair: 0, op: Op::Insert, key: vec![Value::Int(i)], before: None, after: Some(vec![Value::Int(i)]) }
}

fn txn(seq: u64, lsn: u64, rows: usize) -> Vec<SourceEvent> {
    let mut v = vec![SourceEvent::Begin { txn_seq: seq, origin: Origin::Client, commit_ts: 0 }];
    v.push(SourceEvent::Changes((0..rows as i64).map(change).collect()));
    v.push(SourceEvent::Commit(TxnMeta { position: SourcePos::Postgres(Lsn(lsn)), commit_ts: 0, origin: None, txn_seq: seq }));
    v
}

async fn drive(events: Vec<SourceEvent>, settings: BatchSettings) -> (Vec<Call>, Vec<SourcePos>) {
    drive_with(events, settings, Vec::new()).await
}

async fn drive_with(events: Vec<SourceEvent>, settings: BatchSettings, backlog: Vec<usize>) -> (Vec<Call>, Vec<SourcePos>) {
    let (tx, mut rx) = mpsc::channel(events.len() + 1);
    for e in events {
        tx.send(e).await.unwrap();
    }
    drop(tx);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let a2 = Arc::clone(&acks);
    let mut rec = Recorder { calls: Vec::new(), backlog };
    run_batcher(Direction::PostgresToMysql, &mut rec, &mut rx, move |p| a2.lock().unwrap().push(p.clone()), &settings, &["p".into(), "q".into()])
        .await
        .unwrap();
    let acks = acks.lock().unwrap().clone();
    (rec.calls, acks)
}

fn settings(max_rows: usize, chunk_rows: usize) -> BatchSettings {
    BatchSettings { max_rows, max_delay: Duration::from_secs(60), chunk_rows }
}

#[tokio::test]
async fn queued_transactions_share_one_destination_commit() {
    let mut ev = txn(1, 10, 2);
    ev.extend(txn(2, 20, 2));
    ev.extend(txn(3, 30, 2));
    let (calls, acks) = drive(ev, settings(100, 100)).await;
    assert_eq!(calls, vec![Call::Begin, Call::Write(6), Call::Commit(SourcePos::Postgres(Lsn(30)))]);
    assert_eq!(acks, vec![SourcePos::Postgres(Lsn(30))]);
}

/// A `Barrier` (the echo stage sends one before a transaction with another
/// `seen`) commits the open batch; transactions without one between them share it.
#[tokio::test]
async fn a_barrier_starts_a_new_batch() {
    let mut ev = txn(1, 10, 1);
    ev.extend(txn(2, 20, 1));
    ev.push(SourceEvent::Barrier);
    ev.extend(txn(3, 30, 1));
    let (calls, _) = drive(ev, settings(100, 100)).await;
    assert_eq!(
        calls,
        vec![
            Call::Begin,
            Call::Write(2),
            Call::Commit(SourcePos::Postgres(Lsn(20))),
            Call::Begin,
            Call::Write(1),
            Call::Commit(SourcePos::Postgres(Lsn(30)))
        ]
    );
}

/// One `write` holds changes of one origin: an outcome's changes are
/// written apart from the clients' before and after them, in one batch.
#[tokio::test]
async fn changes_of_another_origin_are_written_apart_in_the_same_batch() {
    let mut ev = txn(1, 10, 2);
    let mut outcome = txn(2, 20, 1);
    outcome[0] = SourceEvent::Begin { txn_seq: 2, origin: Origin::Outcome, commit_ts: 0 };
    ev.extend(outcome);
    ev.extend(txn(3, 30, 3));
    let (calls, _) = drive(ev, settings(100, 100)).await;
    assert_eq!(
        calls,
        vec![Call::Begin, Call::Write(2), Call::WriteOutcome(1), Call::Write(3), Call::Commit(SourcePos::Postgres(Lsn(30)))]
    );
}

#[tokio::test]
async fn batches_close_at_max_rows_but_only_on_a_transaction_boundary() {
    let mut ev = txn(1, 10, 3);
    ev.extend(txn(2, 20, 3));
    ev.extend(txn(3, 30, 3));
    let (calls, _) = drive(ev, settings(5, 100)).await;
    // The batch passes 5 rows inside txn 2; it commits after txn 2, never inside it.
    assert_eq!(
        calls,
        vec![
            Call::Begin,
            Call::Write(6),
            Call::Commit(SourcePos::Postgres(Lsn(20))),
            Call::Begin,
            Call::Write(3),
            Call::Commit(SourcePos::Postgres(Lsn(30)))
        ]
    );
}

#[tokio::test]
async fn large_transaction_is_written_in_chunks_and_committed_once() {
    let mut ev = vec![SourceEvent::Begin { txn_seq: 1, origin: Origin::Client, commit_ts: 0 }];
    for _ in 0..5 {
        ev.push(SourceEvent::Changes((0..4).map(change).collect()));
    }
    ev.push(SourceEvent::Commit(TxnMeta { position: SourcePos::Postgres(Lsn(99)), commit_ts: 0, origin: None, txn_seq: 1 }));
    let (calls, acks) = drive(ev, settings(1000, 8)).await;
    assert_eq!(
        calls,
        vec![Call::Begin, Call::Write(8), Call::Write(8), Call::Write(4), Call::Commit(SourcePos::Postgres(Lsn(99)))]
    );
    assert_eq!(acks.len(), 1);
}

#[tokio::test]
async fn stream_ending_mid_transaction_commits_only_complete_ones() {
    let mut ev = txn(1, 10, 2);
    ev.push(SourceEvent::Begin { txn_seq: 2, origin: Origin::Client, commit_ts: 0 });
    ev.push(SourceEvent::Changes(vec![change(7)]));
    let (calls, acks) = drive(ev, settings(100, 100)).await;
    assert_eq!(calls, vec![Call::Begin, Call::Write(2), Call::Commit(SourcePos::Postgres(Lsn(10)))]);
    assert_eq!(acks, vec![SourcePos::Postgres(Lsn(10))]);
}

#[tokio::test]
async fn stream_ending_inside_a_partly_written_transaction_rolls_back() {
    let mut ev = txn(1, 10, 2);
    ev.push(SourceEvent::Begin { txn_seq: 2, origin: Origin::Client, commit_ts: 0 });
    ev.push(SourceEvent::Changes((0..10).map(change).collect()));
    let (calls, acks) = drive(ev, settings(100, 4)).await;
    assert_eq!(calls.last(), Some(&Call::Rollback));
    assert!(!calls.iter().any(|c| matches!(c, Call::Commit(_))));
    assert!(acks.is_empty(), "nothing may be acknowledged that was not committed");
}

#[tokio::test]
async fn idle_positions_are_acknowledged_after_the_open_batch_commits() {
    let mut ev = txn(1, 10, 1);
    ev.push(SourceEvent::Idle(SourcePos::Postgres(Lsn(15))));
    ev.extend(txn(2, 20, 1));
    ev.push(SourceEvent::Idle(SourcePos::Postgres(Lsn(25))));
    let (_, acks) = drive(ev, settings(100, 100)).await;
    assert_eq!(acks, vec![SourcePos::Postgres(Lsn(20)), SourcePos::Postgres(Lsn(25))]);
}

fn on(pair: usize, i: i64) -> Change {
    Change { pair, ..change(i) }
}

fn txn_of(seq: u64, lsn: u64, changes: Vec<Change>) -> Vec<SourceEvent> {
    vec![
        SourceEvent::Begin { txn_seq: seq, origin: Origin::Client, commit_ts: 0 },
        SourceEvent::Changes(changes),
        SourceEvent::Commit(TxnMeta { position: SourcePos::Postgres(Lsn(lsn)), commit_ts: 0, origin: None, txn_seq: seq }),
    ]
}

fn pause(pair: usize, paused: bool) -> SourceEvent {
    SourceEvent::PairState { pair, paused: paused.then(|| "column x is missing".to_string()) }
}

#[tokio::test]
async fn a_paused_pair_is_parked_while_others_apply_and_its_backlog_replays_before_its_next_change() {
    let mut ev = vec![pause(1, true)];
    ev.extend(txn_of(1, 10, vec![on(0, 1), on(1, 2), on(1, 3), on(0, 4)]));
    ev.push(pause(1, false));
    ev.extend(txn_of(2, 20, vec![on(0, 5), on(1, 6)]));
    let (calls, acks) = drive(ev, settings(100, 100)).await;
    assert_eq!(
        calls,
        vec![
            Call::Begin,
            Call::Park(1, vec![2, 3]),
            // The resume replays at once inside the open batch, after the older buffered rows.
            Call::Write(2),
            Call::Unpark(1),
            Call::Write(2),
            Call::Commit(SourcePos::Postgres(Lsn(20))),
        ]
    );
    assert_eq!(acks, vec![SourcePos::Postgres(Lsn(20))]);
}

#[tokio::test]
async fn a_backlog_found_at_start_replays_before_the_pairs_first_change_or_at_the_first_commit() {
    let ev = txn_of(1, 10, vec![on(0, 1), on(1, 2)]);
    let (calls, _) = drive_with(ev, settings(100, 100), vec![1]).await;
    assert_eq!(calls, vec![Call::Begin, Call::Write(1), Call::Unpark(1), Call::Write(1), Call::Commit(SourcePos::Postgres(Lsn(10)))]);
    let ev = txn_of(1, 10, vec![on(0, 1)]);
    let (calls, _) = drive_with(ev, settings(100, 100), vec![1]).await;
    assert_eq!(calls, vec![Call::Begin, Call::Write(1), Call::Unpark(1), Call::Commit(SourcePos::Postgres(Lsn(10)))]);
}

#[tokio::test]
async fn a_pair_still_paused_at_start_keeps_parking_and_a_resume_between_batches_replays_at_the_last_position() {
    let mut ev = vec![pause(1, true)];
    ev.extend(txn_of(1, 10, vec![on(1, 1)]));
    ev.push(pause(1, false));
    // One transaction per batch: the resume arrives between batches.
    let (calls, acks) = drive_with(ev, settings(1, 100), vec![1]).await;
    assert_eq!(
        calls,
        vec![
            Call::Begin,
            Call::Park(1, vec![1]),
            Call::Commit(SourcePos::Postgres(Lsn(10))),
            Call::Begin,
            Call::Unpark(1),
            Call::Commit(SourcePos::Postgres(Lsn(10))),
        ]
    );
    assert_eq!(acks, vec![SourcePos::Postgres(Lsn(10))]);
}

fn watermark(kind: SignalKind, chunk: u64, lsn: u64) -> SourceEvent {
    let signal = crate::backfill::Signal {
        pipeline: "p".into(),
        kind,
        pair: "p".into(),
        run: "r".into(),
        chunk,
        staging: "s".into(),
        rows: 10,
        last_key: vec![],
        after_key: vec![],
    };
    SourceEvent::Watermark { position: SourcePos::Postgres(Lsn(lsn)), payload: signal.to_json() }
}

#[tokio::test]
async fn a_chunk_is_merged_at_its_high_watermark_after_the_batch_before_it_with_the_keys_changed_in_between() {
    let mut events = vec![watermark(SignalKind::Low, 1, 10)];
    events.extend(txn_of(1, 20, vec![on(0, 1), on(0, 2), on(1, 3)]));
    events.push(watermark(SignalKind::High, 1, 30));
    events.extend(txn_of(2, 40, vec![on(0, 4)]));
    events.push(watermark(SignalKind::High, 2, 50));
    let (calls, acks) = drive(events, settings(100, 100)).await;
    assert_eq!(
        calls,
        vec![
            Call::Begin,
            Call::Write(3),
            Call::Commit(SourcePos::Postgres(Lsn(20))),
            Call::Begin,
            Call::Chunk(1, Some((2, 2))),
            Call::Commit(SourcePos::Postgres(Lsn(30))),
            Call::Begin,
            Call::Write(1),
            Call::Commit(SourcePos::Postgres(Lsn(40))),
            Call::Begin,
            Call::Chunk(2, None),
            Call::Commit(SourcePos::Postgres(Lsn(50))),
        ],
        "pair 1's change is not in pair 0's window; chunk 2's low watermark was never seen"
    );
    assert_eq!(acks.last(), Some(&SourcePos::Postgres(Lsn(50))));
}

/// Records, on tokio's clock, when each batch committed and how many rows it had.
#[derive(Clone, Default)]
struct Clocked {
    t0: Option<Instant>,
    rows: usize,
    commits: Arc<Mutex<Vec<(Duration, usize)>>>,
}

impl BatchApplier for Clocked {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        Ok(None)
    }
    async fn begin(&mut self) -> Result<()> {
        Ok(())
    }
    async fn write(&mut self, _origin: Origin, changes: &[Change]) -> Result<()> {
        self.rows += changes.len();
        Ok(())
    }
    async fn commit(&mut self, _last: &TxnMeta) -> Result<()> {
        let at = self.t0.map(|t| t.elapsed()).unwrap_or_default();
        self.commits.lock().unwrap().push((at, std::mem::take(&mut self.rows)));
        Ok(())
    }
    async fn rollback(&mut self) -> Result<()> {
        Ok(())
    }
    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        Ok(Vec::new())
    }
    async fn park(&mut self, _changes: &[Change], _reason: &str) -> Result<()> {
        Ok(())
    }
    async fn unpark(&mut self, _pair: usize) -> Result<u64> {
        Ok(0)
    }
}

/// Sends one single-row transaction at each of `at` (ms after the start, on
/// tokio's paused clock) and returns when each batch committed, with its rows.
async fn timed(at: &[u64], max_delay: Duration) -> Vec<(Duration, usize)> {
    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::channel(1024);
    let mut applier = Clocked { t0: Some(t0), ..Clocked::default() };
    let commits = Arc::clone(&applier.commits);
    let settings = BatchSettings { max_rows: 10_000, max_delay, chunk_rows: 2000 };
    let batcher = tokio::spawn(async move {
        run_batcher(Direction::PostgresToMysql, &mut applier, &mut rx, |_| {}, &settings, &["p".into()]).await.unwrap();
    });
    for (seq, &ms) in at.iter().enumerate() {
        tokio::time::sleep_until(t0 + Duration::from_millis(ms)).await;
        for e in txn(seq as u64 + 1, 100 + seq as u64, 1) {
            tx.send(e).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(tx);
    batcher.await.unwrap();
    let c = commits.lock().unwrap().clone();
    c
}

/// An idle stream's transaction commits at once; one that follows a commit
/// closely lingers up to `LINGER` for company (within `max_batch_delay`).
#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_more_transactions_only_while_the_stream_is_busy() {
    let commits = timed(&[0, 1, 4, 500], Duration::from_millis(100)).await;
    let ms = |d: Duration| d.as_millis() as u64;
    assert_eq!(
        commits.iter().map(|&(t, n)| (ms(t), n)).collect::<Vec<_>>(),
        vec![(0, 1), (1 + LINGER.as_millis() as u64, 2), (500, 1)],
        "the first and the last (nothing for 50 ms before) commit at once; the two in between share one batch"
    );
}

/// Under a steady stream, no batch stays open past `max_batch_delay`.
#[tokio::test(start_paused = true)]
async fn no_batch_stays_open_past_max_batch_delay() {
    let max_delay = Duration::from_millis(4);
    let every_ms: Vec<u64> = (0..60).collect();
    let commits = timed(&every_ms, max_delay).await;
    assert_eq!(commits.iter().map(|c| c.1).sum::<usize>(), 60, "every transaction committed once");
    assert!(commits.len() > 6 && commits.len() < 60, "batched, but not into one: {commits:?}");
    // A batch opens at the first transaction after the previous commit (1 ms later at most).
    let mut opened = Duration::ZERO;
    for &(at, _) in &commits {
        assert!(at - opened <= max_delay, "a batch open from {opened:?} to {at:?}: {commits:?}");
        opened = at + Duration::from_millis(1);
    }
}

/// A `tandem barrier` mark after transactions that were all dropped (echoes:
/// `Idle`) still moves the checkpoint: committed in a transaction of its
/// own, after the open batch, at the mark's position.
#[tokio::test]
async fn a_barrier_mark_commits_its_position_as_the_checkpoint() {
    let mark = |lsn: u64| SourceEvent::Watermark {
        position: SourcePos::Postgres(Lsn(lsn)),
        payload: crate::run::barrier::BarrierMark::new("p", "b1").to_json(),
    };
    let mut ev = txn(1, 10, 2);
    ev.push(SourceEvent::Idle(SourcePos::Postgres(Lsn(20))));
    ev.push(mark(30));
    let (calls, acks) = drive(ev, settings(100, 100)).await;
    assert_eq!(
        calls,
        vec![
            Call::Begin,
            Call::Write(2),
            Call::Commit(SourcePos::Postgres(Lsn(10))),
            Call::Begin,
            Call::Commit(SourcePos::Postgres(Lsn(30))),
        ]
    );
    assert_eq!(acks.last(), Some(&SourcePos::Postgres(Lsn(30))));
    // Alone, between batches.
    let (calls, _) = drive(vec![SourceEvent::Idle(SourcePos::Postgres(Lsn(5))), mark(7)], settings(100, 100)).await;
    assert_eq!(calls, vec![Call::Begin, Call::Commit(SourcePos::Postgres(Lsn(7)))]);
}
