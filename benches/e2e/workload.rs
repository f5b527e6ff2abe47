//! The two workloads, written once for any source/destination pair and any
//! `Replicator`: W1 (one transaction inserting `rows` rows) and W2 (`updates`
//! single-row autocommit UPDATEs from `clients` connections, each row once).
//!
//! Measurement: W1 runs from the moment the INSERT's COMMIT returns until the
//! destination shows the last id (the transaction is applied atomically, so
//! that is all rows; the count is then verified). W2 runs from the first
//! update's start (bench wall clock) to the latest `applied_at` at the
//! destination; per-row lag is `applied_at − updated_at`, both UTC wall time
//! on the same machine clock. While a workload runs, a monitor samples every
//! 100 ms the CPU of the replicator and of both servers, the destination's
//! rows-written counter (MariaDB only) and how far the source's sender is
//! behind (Postgres: bytes; MariaDB: only whether it has sent everything);
//! those samples locate where the time goes.

use crate::procstat::{percentile, CpuSnapshot};
use crate::sql::{Conn, Ctx, Endpoint, Res};
use crate::systems::Replicator;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rows: u64,
    pub updates: u64,
    pub clients: u64,
    /// Per workload.
    pub timeout: Duration,
}

/// Where: the source database and the destination database.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub source: Endpoint,
    pub dest: Endpoint,
}

/// One monitor sample; times and CPU seconds since the workload started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub cpu: CpuSnapshot,
    /// Rows the destination has written (committed or not) since the start.
    pub dest_rows_written: Option<i64>,
    /// Bytes of source log the replication sender has not sent yet (Postgres).
    pub sender_behind_bytes: Option<i64>,
    /// Every binlog sender has sent all the binlog (MariaDB, which does not
    /// expose how far behind a sender is).
    pub sender_idle: Option<bool>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct W1Result {
    pub rows: u64,
    /// The INSERT … SELECT itself, until its commit returned.
    pub source_insert_s: f64,
    /// From the source commit until all rows are visible at the destination.
    pub apply_s: f64,
    pub rows_per_s: f64,
    /// Phases, seconds after the source commit (None when not observable).
    pub sender_done_s: Option<f64>,
    pub dest_first_row_s: Option<f64>,
    pub dest_all_written_s: Option<f64>,
    /// CPU seconds from the INSERT's start until the rows were visible.
    pub cpu: CpuSnapshot,
    pub timeline: Vec<Sample>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct W2Result {
    pub updates: u64,
    pub clients: u64,
    /// Until the last client's last update returned.
    pub source_s: f64,
    pub source_rows_per_s: f64,
    /// From the first update's start to the last row applied.
    pub total_s: f64,
    pub rows_per_s: f64,
    pub lag_min_ms: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    pub cpu: CpuSnapshot,
    pub timeline: Vec<Sample>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemResult {
    pub name: String,
    pub w1: W1Result,
    pub w2: W2Result,
    /// The replicator process's VmHWM at the end (None without a process).
    pub peak_rss_mib: Option<f64>,
    pub warnings: Vec<String>,
}

/// Creates the tables, starts `sys`, runs W1 then W2, stops `sys` (also on error).
pub async fn run_system<R: Replicator>(sys: &mut R, sc: &Scenario, st: &Settings) -> Res<SystemResult> {
    let mut src = sc.source.connect().await?;
    src.exec(sc.source.dialect.create_source_items()).await?;
    let mut dst = sc.dest.connect().await?;
    dst.exec(sc.dest.dialect.create_dest_items()).await?;
    eprintln!("[{}] starting", sys.name());
    sys.start().await?;
    let result = async {
        let mut warnings = Vec::new();
        settle(sc).await?;
        eprintln!("[{}] W1: one transaction of {} rows", sys.name(), st.rows);
        let w1 = w1(sys, sc, st).await?;
        eprintln!("[{}] W1: {:.0} rows/s ({:.2} s after the commit)", sys.name(), w1.rows_per_s, w1.apply_s);
        settle(sc).await?;
        eprintln!("[{}] W2: {} single-row updates from {} clients", sys.name(), st.updates, st.clients);
        let w2 = w2(sys, sc, st, &mut warnings).await?;
        eprintln!("[{}] W2: {:.0} rows/s, lag p50 {:.1} ms, p99 {:.1} ms", sys.name(), w2.rows_per_s, w2.lag_p50_ms, w2.lag_p99_ms);
        let peak_rss_mib = sys.pid().and_then(crate::procstat::peak_rss_mib);
        Ok::<_, String>(SystemResult { name: sys.name().into(), w1, w2, peak_rss_mib, warnings })
    }
    .await;
    let stopped = sys.stop().await;
    let result = result?;
    stopped?;
    Ok(result)
}

/// How long `settle` waits for the replication senders.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Keeps background work out of the next workload: waits until every
/// replication sender on both servers has sent all of its log, then
/// vacuums/checkpoints both sides (and waits for the senders to pass that).
///
/// The wait matters for tandem, which runs both directions: the rows it
/// applied in a workload come back to it through the destination's log (as
/// echoes it drops), and decoding a 1M-row transaction there takes seconds
/// of CPU that would otherwise land in the next workload.
async fn settle(sc: &Scenario) -> Res<()> {
    senders_caught_up(sc).await?;
    for ep in [&sc.source, &sc.dest] {
        let mut c = ep.connect().await?;
        for sql in ep.dialect.settle() {
            c.exec(sql).await?;
        }
    }
    senders_caught_up(sc).await
}

async fn senders_caught_up(sc: &Scenario) -> Res<()> {
    let t0 = Instant::now();
    for ep in [&sc.source, &sc.dest] {
        let mut c = ep.connect().await?;
        let sql = ep.dialect.senders_caught_up();
        while c.int(sql).await?.unwrap_or(0) < 1 {
            if t0.elapsed() > SETTLE_TIMEOUT {
                return Err(format!("settle: the replication senders of {} did not catch up within {SETTLE_TIMEOUT:?}", ep.describe()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if t0.elapsed() > Duration::from_millis(500) {
        eprintln!("  settle: waited {:.1} s for the replication senders to catch up", t0.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Samples CPU, destination progress and sender backlog over one workload.
struct Monitor {
    t0: Instant,
    pids: (Option<u32>, Option<u32>, Option<u32>),
    cpu0: CpuSnapshot,
    src: Conn,
    dst: Conn,
    sender_sql: Option<String>,
    idle_sql: Option<&'static str>,
    counter_sql: Option<&'static str>,
    counter0: Option<i64>,
    samples: Vec<Sample>,
}

impl Monitor {
    async fn start<R: Replicator>(sys: &R, sc: &Scenario) -> Res<Monitor> {
        let src = sc.source.connect().await?;
        let mut dst = sc.dest.connect().await?;
        let counter_sql = sc.dest.dialect.rows_written_counter();
        let counter0 = match counter_sql {
            Some(sql) => dst.int(sql).await?,
            None => None,
        };
        let pids = (sys.pid(), sc.source.server_pid, sc.dest.server_pid);
        Ok(Monitor {
            t0: Instant::now(),
            pids,
            cpu0: CpuSnapshot::take(pids.0, pids.1, pids.2),
            src,
            dst,
            sender_sql: sys.slot().and_then(|slot| sc.source.dialect.sender_progress(&slot)),
            idle_sql: sc.source.dialect.senders_idle(),
            counter_sql,
            counter0,
            samples: Vec::new(),
        })
    }

    fn secs(&self, at: Instant) -> f64 {
        at.duration_since(self.t0).as_secs_f64()
    }

    fn cpu_so_far(&self) -> CpuSnapshot {
        self.cpu0.until(&CpuSnapshot::take(self.pids.0, self.pids.1, self.pids.2))
    }

    async fn sample(&mut self) -> Res<&Sample> {
        let t_s = self.secs(Instant::now());
        let cpu = self.cpu_so_far();
        let dest_rows_written = match (self.counter_sql, self.counter0) {
            (Some(sql), Some(c0)) => self.dst.int(sql).await?.map(|c| c - c0),
            _ => None,
        };
        let sender_behind_bytes = match &self.sender_sql {
            Some(sql) => self.src.rows(sql).await?.first().and_then(|r| Some(r.get(1).copied()?? - r.first().copied()??)),
            None => None,
        };
        let sender_idle = match self.idle_sql {
            Some(sql) => self.src.rows(sql).await?.first().and_then(|r| Some(r.first().copied()?? == r.get(1).copied()?? && r[1]? > 0)),
            None => None,
        };
        self.samples.push(Sample { t_s, cpu, dest_rows_written, sender_behind_bytes, sender_idle });
        Ok(self.samples.last().expect("just pushed"))
    }

    /// First sample time (seconds since start) matching `f`, at or after `from_s`.
    fn first(&self, from_s: f64, f: impl Fn(&Sample) -> bool) -> Option<f64> {
        self.samples.iter().find(|s| s.t_s >= from_s && f(s)).map(|s| s.t_s)
    }
}

/// What `poll_until` waits for.
enum Until<'a> {
    /// Every task has finished.
    TasksDone(&'a [tokio::task::JoinHandle<Res<Instant>>]),
    /// The integer query on the destination returns at least this.
    DestAtLeast(&'a str, i64),
}

/// Checks `until` every 25 ms (sampling every 100 ms) until it holds;
/// returns when it was seen to hold.
async fn poll_until<R: Replicator>(sys: &mut R, mon: &mut Monitor, what: &str, timeout: Duration, until: Until<'_>) -> Res<Instant> {
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let done = match &until {
            Until::TasksDone(tasks) => tasks.iter().all(|t| t.is_finished()),
            Until::DestAtLeast(sql, want) => mon.dst.int(sql).await?.unwrap_or(0) >= *want,
        };
        if done {
            return Ok(Instant::now());
        }
        if n % 4 == 0 {
            sys.check_alive().await?;
            mon.sample().await?;
        }
        n += 1;
        if mon.t0.elapsed() > timeout {
            return Err(format!("{}: {what} did not happen within {timeout:?}", sys.name()));
        }
    }
}

/// Joins tasks that return when they finished; the latest such instant.
async fn join_all(tasks: Vec<tokio::task::JoinHandle<Res<Instant>>>, what: &str) -> Res<Option<Instant>> {
    let mut latest = None;
    for t in tasks {
        let at = t.await.ctx(|| format!("{what} task"))?.map_err(|e| format!("{what}: {e}"))?;
        latest = latest.max(Some(at));
    }
    Ok(latest)
}

async fn w1<R: Replicator>(sys: &mut R, sc: &Scenario, st: &Settings) -> Res<W1Result> {
    let n = st.rows;
    let mut mon = Monitor::start(sys, sc).await?;
    let mut writer = sc.source.connect().await?;
    let insert = sc.source.dialect.insert_series(n);
    let insert_task = vec![tokio::spawn(async move {
        writer.exec(&insert).await?;
        Ok::<_, String>(Instant::now())
    })];
    // Sample while the INSERT runs (the sender decodes concurrently).
    let seen = poll_until(sys, &mut mon, "the source INSERT", st.timeout, Until::TasksDone(&insert_task)).await?;
    let committed = join_all(insert_task, "W1 insert").await?.unwrap_or(seen);
    let commit_s = mon.secs(committed);
    let last = format!("SELECT count(*) FROM items WHERE id = {n}");
    let done = poll_until(sys, &mut mon, "W1 (all rows at the destination)", st.timeout, Until::DestAtLeast(&last, 1)).await?;
    let cpu = mon.cpu_so_far();
    mon.sample().await?;
    verify_same_rows(sc, n).await?;
    let apply_s = done.duration_since(committed).as_secs_f64();
    // Samples are 100 ms apart: clamp phases into [commit, visible].
    let after = |t: Option<f64>| t.map(|t| (t - commit_s).clamp(0.0, apply_s));
    let n_i = n as i64;
    // A counter that moves only at commit says nothing about the phases of one transaction.
    let written = |f: fn(i64, i64) -> bool| {
        if sc.dest.dialect.counter_moves_before_commit() {
            after(mon.first(0.0, |s| s.dest_rows_written.is_some_and(|r| f(r, n_i))))
        } else {
            None
        }
    };
    Ok(W1Result {
        rows: n,
        source_insert_s: commit_s,
        apply_s,
        rows_per_s: n as f64 / apply_s,
        sender_done_s: after(mon.first(commit_s, |s| s.sender_behind_bytes.is_some_and(|b| b <= 0) || s.sender_idle == Some(true))),
        dest_first_row_s: written(|r, _| r > 0),
        dest_all_written_s: written(|r, n| r >= n),
        cpu,
        timeline: mon.samples,
    })
}

/// Same row count and integer sums on both sides.
async fn verify_same_rows(sc: &Scenario, n: u64) -> Res<()> {
    let sql = "SELECT COUNT(*), SUM(qty), SUM(account_id) FROM items";
    let a = sc.source.connect().await?.rows(sql).await?;
    let b = sc.dest.connect().await?.rows(sql).await?;
    if a != b || a.first().and_then(|r| r[0]) != Some(n as i64) {
        return Err(format!("W1: source and destination differ after apply: {a:?} vs {b:?} (expected {n} rows)"));
    }
    Ok(())
}

/// Ids of client `k` of `clients`: k+1, k+1+clients, … (`count` of them).
fn client_ids(k: u64, clients: u64, updates: u64) -> (u64, impl Iterator<Item = i64>) {
    let count = updates / clients + u64::from(k < updates % clients);
    (count, (0..count).map(move |j| (k + 1 + j * clients) as i64))
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

async fn w2<R: Replicator>(sys: &mut R, sc: &Scenario, st: &Settings, warnings: &mut Vec<String>) -> Res<W2Result> {
    let (updates, clients) = (st.updates, st.clients.clamp(1, st.updates.max(1)));
    if updates > st.rows {
        return Err(format!("--updates {updates} exceeds --rows {}: every update must hit a distinct row", st.rows));
    }
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(sc.source.connect().await?);
    }
    let mut lasts = Vec::new();
    let mut mon = Monitor::start(sys, sc).await?;
    let wall_start = now_micros();
    let sql = sc.source.dialect.update_one();
    let mut tasks = Vec::new();
    for (k, mut conn) in conns.into_iter().enumerate() {
        let (count, ids) = client_ids(k as u64, clients, updates);
        if count == 0 {
            continue;
        }
        lasts.push((k as u64 + 1 + (count - 1) * clients).to_string());
        let ids: Vec<i64> = ids.collect();
        tasks.push(tokio::spawn(async move {
            conn.update_each(sql, ids.into_iter()).await?;
            Ok::<_, String>(Instant::now())
        }));
    }
    let seen = poll_until(sys, &mut mon, "the W2 updates at the source", st.timeout, Until::TasksDone(&tasks)).await?;
    let source_done = join_all(tasks, "W2 updates").await?.unwrap_or(seen);
    let source_s = source_done.duration_since(mon.t0).as_secs_f64();
    // Commit order is kept, so each client's last row applied means all of its rows are.
    let last_rows = format!("SELECT count(*) FROM items WHERE applied_at IS NOT NULL AND id IN ({})", lasts.join(","));
    let want = lasts.len() as i64;
    poll_until(sys, &mut mon, "W2 (last updates at the destination)", st.timeout, Until::DestAtLeast(&last_rows, want)).await?;
    let all = "SELECT count(*) FROM items WHERE applied_at IS NOT NULL";
    poll_until(sys, &mut mon, "W2 (all updates at the destination)", st.timeout, Until::DestAtLeast(all, updates as i64)).await?;
    let cpu = mon.cpu_so_far();
    mon.sample().await?;
    let mut dst = sc.dest.connect().await?;
    let mut lags: Vec<i64> = dst.ints(sc.dest.dialect.lags_micros()).await?.into_iter().flatten().collect();
    lags.sort_unstable();
    let last_applied = dst.int(sc.dest.dialect.max_applied_micros()).await?.ok_or("W2: no applied_at at the destination")?;
    let ms = |p: f64| percentile(&lags, p).unwrap_or(0) as f64 / 1000.0;
    let (lag_min_ms, lag_max_ms) = (ms(0.0), ms(100.0));
    if lag_min_ms < -1.0 || lag_max_ms > 3_600_000.0 {
        warnings.push(format!(
            "{}: W2 lags range {lag_min_ms:.1} ms .. {lag_max_ms:.1} ms: updated_at and applied_at are not on the same clock/time zone",
            sys.name()
        ));
    }
    if lags.len() as u64 != updates {
        warnings.push(format!("{}: {} rows with applied_at, expected {updates}", sys.name(), lags.len()));
    }
    let total_s = (last_applied - wall_start) as f64 / 1e6;
    Ok(W2Result {
        updates,
        clients,
        source_s,
        source_rows_per_s: updates as f64 / source_s,
        total_s,
        rows_per_s: updates as f64 / total_s,
        lag_min_ms,
        lag_p50_ms: ms(50.0),
        lag_p99_ms: ms(99.0),
        lag_max_ms,
        cpu,
        timeline: mon.samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    #[test]
    fn clients_cover_every_id_once() {
        let mut all: Vec<i64> = (0..4).flat_map(|k| client_ids(k, 4, 10).1).collect();
        all.sort();
        assert_eq!(all, (1..=10).collect::<Vec<_>>());
        assert_eq!(client_ids(1, 4, 10).1.collect::<Vec<_>>(), vec![2, 6, 10]);
        assert_eq!(client_ids(3, 4, 10).0, 2);
    }

    #[test]
    fn dialects_differ_only_in_sql() {
        assert!(Dialect::Postgres.update_one().contains("$1"));
        assert!(Dialect::MariaDb.update_one().contains('?'));
        assert!(Dialect::MariaDb.insert_series(5).contains("seq_1_to_5"));
    }
}
