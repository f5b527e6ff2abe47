//! `tandem check`: the drift check of both sides of every pair (DESIGN §9),
//! and `--repair`.
//!
//! Steps: (1) per pair, `scan` narrows mismatched key ranges down to
//! candidate keys by server-side hashes and fetches just those rows;
//! (2) `settle` tells lag from drift: it waits until the running pipeline has
//! applied everything up to the positions read after the previous read
//! (`crate::tables::lag`), rereads the candidate rows, and confirms a row
//! only when it still differs with the same values on both sides, so rows in
//! flight are never reported; (3) the report names pair, key and columns with both values;
//! (4) `--repair` writes each difference by ownership (`repair`) and rereads
//! the repaired rows.
//!
//! Invariants: the check only reads, except `--repair`, whose writes carry
//! tandem's origin tags. `bytes_read` counts every value received.
//! `CheckReport::clean` is what the CLI turns into its exit code: 0 in sync
//! (with `--repair`: everything repaired), 1 drift found; an `Err` (the check
//! could not run) is 2. `max_rows_per_sec` paces the chunk reads (`pace`).

mod pace;
mod repair;
mod report;
mod scan;

pub use report::{render_text, CheckReport, Fields, MissingRow, NotRepaired, PairReport, RepairRecord, RowDiff};

use crate::config::Config;
use crate::tables::canonical::{Dialect, KeyText, SideSql};
use crate::tables::lag::{CatchUp, LagProbe};
use crate::tables::sides::{MySide, PgSide, TextQuery};
use crate::{Error, Result};
use scan::{classify, observe, Finding, Observed, PairCtx};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Only this pair (by name); all pairs when `None`.
    pub pair: Option<String>,
    pub repair: bool,
    /// Keys per top-level chunk.
    pub chunk_rows: u64,
    /// Average rows compared per second at most (a chunk counts its larger side); `None`: no limit.
    pub max_rows_per_sec: Option<u64>,
    /// How long to wait for the running pipeline to catch up before
    /// reporting what still differs.
    pub catch_up_timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { pair: None, repair: false, chunk_rows: 10_000, max_rows_per_sec: None, catch_up_timeout: Duration::from_secs(30) }
    }
}

/// One pair in progress.
struct PairWork {
    ctx: PairCtx,
    chunks: u64,
    chunks_mismatched: u64,
    /// Rows that differed at the last read but are not confirmed yet.
    pending: BTreeMap<KeyText, Observed>,
    /// Rows that still differ after the pipeline caught up.
    confirmed: BTreeMap<KeyText, Observed>,
}

impl PairWork {
    fn key_fields(&self, key: &KeyText) -> Fields<String> {
        let names = self.ctx.schema.key.iter().map(|&i| self.ctx.schema.columns[i].name.clone());
        Fields(names.zip(key.iter().cloned()).collect())
    }

    /// The confirmed differences with what differs in each.
    fn findings(&self) -> Vec<(KeyText, Observed, Finding)> {
        self.confirmed
            .iter()
            .filter_map(|(k, o)| classify(&self.ctx.schema, o).map(|f| (k.clone(), o.clone(), f)))
            .collect()
    }

    fn report(&self) -> PairReport {
        let mut r = PairReport {
            pair: self.ctx.schema.name.clone(),
            chunks: self.chunks,
            chunks_mismatched: self.chunks_mismatched,
            ..Default::default()
        };
        for (key, o, f) in self.findings() {
            let key = self.key_fields(&key);
            match f {
                Finding::MissingInMysql => r.missing_in_mysql.push(MissingRow { key }),
                Finding::MissingInPostgres => r.missing_in_postgres.push(MissingRow { key }),
                Finding::Different(cols) => {
                    let pick = |row: &Option<Vec<Option<String>>>| {
                        Fields(
                            cols.iter()
                                .map(|&i| (self.ctx.schema.columns[i].name.clone(), row.as_ref().and_then(|r| r.get(i).cloned().flatten())))
                                .collect(),
                        )
                    };
                    r.different.push(RowDiff {
                        key,
                        columns: cols.iter().map(|&i| self.ctx.schema.columns[i].name.clone()).collect(),
                        postgres: pick(&o.pg),
                        mysql: pick(&o.my),
                    });
                }
            }
        }
        r
    }
}

/// How the lag phase ended.
struct Settled {
    running: bool,
    outcome: Option<CatchUp>,
    /// Rows still changing when the deadline passed.
    unsettled: usize,
}

/// Rereads pending rows until each is equal or confirmed (see module doc).
async fn settle(pg: &mut PgSide, my: &mut MySide, probe: &LagProbe, works: &mut [PairWork], timeout: Duration) -> Result<Settled> {
    let running = probe.running(pg).await?;
    if works.iter().all(|w| w.pending.is_empty()) {
        return Ok(Settled { running, outcome: None, unsettled: 0 });
    }
    let deadline = Instant::now() + timeout;
    let mut positions = probe.positions(pg, my).await?;
    loop {
        let status = probe.wait(pg, my, &positions, deadline).await?;
        if status == CatchUp::NotRunning {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut fresh = Vec::with_capacity(works.len());
        for w in works.iter() {
            fresh.push(observe(pg, my, &w.ctx, w.pending.keys().cloned()).await?);
        }
        positions = probe.positions(pg, my).await?;
        let mut unsettled = 0;
        for (w, rows) in works.iter_mut().zip(fresh) {
            for (key, now) in rows {
                let before = w.pending.remove(&key);
                if classify(&w.ctx.schema, &now).is_none() {
                    continue;
                }
                if status == CatchUp::CaughtUp && before.as_ref() != Some(&now) {
                    w.pending.insert(key, now);
                } else {
                    if before.as_ref() != Some(&now) {
                        unsettled += 1;
                    }
                    w.confirmed.insert(key, now);
                }
            }
        }
        if works.iter().all(|w| w.pending.is_empty()) {
            return Ok(Settled { running: status != CatchUp::NotRunning, outcome: Some(status), unsettled });
        }
        tracing::debug!(pending = works.iter().map(|w| w.pending.len()).sum::<usize>(), "rows changed while rechecking; again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe(f: &Finding) -> &'static str {
    match f {
        Finding::MissingInMysql => "missing in mysql",
        Finding::MissingInPostgres => "missing in postgres",
        Finding::Different(_) => "columns differ",
    }
}

fn schema_error(pair: &str, message: String) -> Error {
    Error::Schema { pair: pair.to_string(), message }
}

/// Runs the check (and `--repair`) and returns the report.
pub async fn check(cfg: &Config, opts: &CheckOptions) -> Result<CheckReport> {
    let started = Instant::now();
    if let Some(p) = &opts.pair {
        if cfg.pair_index(p).is_none() {
            return Err(Error::Request(format!("no pair named {p:?} in {}", cfg.path.display())));
        }
    }
    let schemas = crate::run::load_schemas(cfg).await?;
    let mut pg = PgSide::connect(cfg).await?;
    let mut my = MySide::connect(cfg).await?;
    let probe = LagProbe::new(cfg);
    let mut works = Vec::new();
    let mut pace = pace::Pace::new(opts.max_rows_per_sec);
    for schema in schemas.iter().filter(|s| opts.pair.as_ref().map_or(true, |p| *p == s.name)) {
        let ctx = PairCtx {
            schema: schema.clone(),
            pg: SideSql::new(Dialect::Postgres, schema).map_err(|m| schema_error(&schema.name, m))?,
            my: SideSql::new(my.dialect(), schema).map_err(|m| schema_error(&schema.name, m))?,
        };
        let found = scan::scan(&mut pg, &mut my, &ctx, opts.chunk_rows.max(1), &mut pace).await?;
        let rows = observe(&mut pg, &mut my, &ctx, found.candidates).await?;
        let pending = rows.into_iter().filter(|(_, o)| classify(&ctx.schema, o).is_some()).collect();
        works.push(PairWork { ctx, chunks: found.chunks, chunks_mismatched: found.chunks_mismatched, pending, confirmed: BTreeMap::new() });
    }
    let settled = settle(&mut pg, &mut my, &probe, &mut works, opts.catch_up_timeout).await?;
    let mut report = CheckReport { pipeline_running: settled.running, ..Default::default() };
    match settled.outcome {
        Some(CatchUp::NotRunning) => report.notes.push(format!(
            "tandem run is not running (replication slot {} inactive): differing rows were rechecked once after 1 s; \
             changes not yet replicated would show as drift",
            cfg.postgres.slot
        )),
        Some(CatchUp::TimedOut) => report.notes.push(format!(
            "the pipeline did not catch up within {} s; {} of the reported rows were still changing and may be in flight",
            opts.catch_up_timeout.as_secs(),
            settled.unsettled
        )),
        _ => {}
    }
    report.pairs = works.iter().map(PairWork::report).collect();
    report.in_sync = report.pairs.iter().all(|p| p.drift_rows() == 0);
    if opts.repair && !report.in_sync {
        report.repaired = Some(repair_all(cfg, &mut pg, &mut my, &works, &mut report).await?);
    } else if opts.repair {
        report.repaired = Some(true);
    }
    report.bytes_read = pg.bytes() + my.bytes();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Repairs every pair's confirmed differences, then rereads the rows.
async fn repair_all(cfg: &Config, pg: &mut PgSide, my: &mut MySide, works: &[PairWork], report: &mut CheckReport) -> Result<bool> {
    let mut writer = repair::Writer::connect(cfg).await?;
    if let repair::PgOrigin::Repair(name) = &writer.origin {
        report.notes.push(format!(
            "the pipeline's replication origin {} is in use by tandem run; Postgres repairs were written under origin {name}",
            cfg.origin_name()
        ));
    }
    let mut all = true;
    for (w, pr) in works.iter().zip(report.pairs.iter_mut()) {
        let findings = w.findings();
        if findings.is_empty() {
            continue;
        }
        let pair = &cfg.pairs[w.ctx.schema.pair];
        let (done, mut left) = repair::repair_pair(&mut writer, pair, &w.ctx, &findings, |k| w.key_fields(k)).await;
        let after = observe(pg, my, &w.ctx, findings.iter().map(|(k, _, _)| k.clone())).await?;
        for (key, o) in &after {
            let Some(f) = classify(&w.ctx.schema, o) else { continue };
            let fields = w.key_fields(key);
            if left.iter().any(|l| l.key == fields) {
                continue;
            }
            let columns = match &f {
                Finding::Different(cols) => cols.iter().map(|&i| w.ctx.schema.columns[i].name.clone()).collect(),
                _ => Vec::new(),
            };
            left.push(NotRepaired { key: fields, columns, reason: format!("still differs after the repair: {}", describe(&f)) });
        }
        all &= left.is_empty();
        pr.repairs = done;
        pr.not_repaired = left;
    }
    Ok(all)
}
