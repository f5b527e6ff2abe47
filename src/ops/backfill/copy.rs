//! `tandem backfill`: copies a pair's existing rows from one side to the
//! other in key-ordered chunks while `tandem run` streams (see the module
//! doc of `crate::backfill` for the method and why it is safe).
//!
//! Per chunk: low watermark at the source, read the chunk (canonical text),
//! stage it at the destination, high watermark. The next chunk is read and
//! staged while the pipeline merges the previous one, so reading and merging
//! overlap; at most two chunks are staged at once. Rows never pass through a
//! float or a client-side type conversion: the destination casts canonical
//! text into the staging table, whose columns have the table's own types.
//!
//! Invariants: every low watermark is followed by its high watermark (an
//! empty or doomed chunk still closes its window); `last_key` in the
//! `backfills` row, written by the pipeline, is the only resume point.

use super::load::{Load, Target};
use crate::backfill::progress::{key_json, parse_key_json, Progress};
use crate::backfill::{staging, Signal, SignalKind};
use crate::config::{Config, Side};
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::state::BackfillStatements;
use crate::tables::canonical::{pg_kind_of, Binder, Dialect, KeyText, SideSql};
use crate::tables::lag::{CatchUp, LagProbe};
use crate::tables::sides::{MySide, PgSide, TextQuery, TextRow};
use crate::sql::pg::ident as pg_ident;
use crate::schema::{PairSchema, ValueKind};
use crate::{Error, Result};
use std::time::{Duration, Instant};

/// Chunks the pipeline may abandon in a row before the backfill gives up.
/// A pipeline restart (a deadlock under load) abandons the chunk in flight,
/// and a busy destination can deadlock again: retries back off (`retry_pause`).
const MAX_ABANDONED: u32 = 12;

/// The pause before copying again after `n` abandoned chunks in a row.
fn retry_pause(n: u32) -> Duration {
    Duration::from_millis(200 * u64::from(n)).min(Duration::from_secs(3))
}

/// What to copy and how fast.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// The pairs to copy (`--pair`); empty with `all`.
    pub pairs: Vec<String>,
    /// Every pair whose destination table is empty (or whose backfill was interrupted).
    pub all: bool,
    pub from: Side,
    pub chunk_rows: u64,
    pub max_rows_per_sec: Option<u64>,
    /// How long to wait for the pipeline to merge a chunk before giving up.
    pub merge_timeout: Duration,
    /// How long to wait for `tandem run` to be streaming before giving up.
    pub start_wait: Duration,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions { pairs: Vec::new(), all: false, from: Side::Postgres, chunk_rows: 10_000, max_rows_per_sec: None, merge_timeout: Duration::from_secs(120), start_wait: Duration::from_secs(10) }
    }
}

/// What happened to one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairResult {
    pub pair: String,
    /// Rows copied by this invocation.
    pub rows: u64,
    /// Rows applied before this invocation (a resumed backfill), else 0.
    pub resumed_at: u64,
    pub chunks: u64,
    pub seconds: f64,
    /// Why the pair was not copied (`--all` skips non-empty destinations).
    pub skipped: Option<String>,
    /// Why copying the pair failed (the other pairs were still copied).
    pub failed: Option<String>,
}

impl PairResult {
    /// A pair that was not copied because of `error`.
    pub fn failed(pair: &str, error: String) -> PairResult {
        PairResult { pair: pair.to_string(), rows: 0, resumed_at: 0, chunks: 0, seconds: 0.0, skipped: None, failed: Some(error) }
    }
}

/// Receives progress: `display::Console` draws a bar on a TTY (log lines
/// otherwise) and has the CLI print one result line per pair; `Silent` says nothing.
pub trait Report {
    fn start(&mut self, pair: &str, total: u64, done: u64);
    fn chunk(&mut self, pair: &str, done: u64);
    fn finish(&mut self, result: &PairResult);
}

/// A report that says nothing.
pub struct Silent;

impl Report for Silent {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn chunk(&mut self, _: &str, _: u64) {}
    fn finish(&mut self, _: &PairResult) {}
}

/// Runs the backfill of the selected pairs, one after the other. A pair
/// that fails is reported (`PairResult::failed`) and the others go on; with
/// `--all` into a Postgres that checks foreign keys on the pipeline's writes,
/// parents are copied before children and pairs in a cycle are not copied
/// (`order`). `Err` only when nothing could be copied at all.
pub async fn backfill(cfg: &Config, opts: &BackfillOptions, report: &mut dyn Report) -> Result<Vec<PairResult>> {
    let mut pg = PgSide::connect(cfg).await?;
    let mut my = MySide::connect(cfg).await?;
    let probe = LagProbe::new(cfg);
    // `tandem run` may have been started a moment ago.
    let since = Instant::now();
    while !probe.running(&pg).await? && since.elapsed() < opts.start_wait {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !probe.running(&pg).await? {
        return Err(Error::Backfill(format!(
            "`tandem run` is not running for pipeline {} (its replication slot {} is not active): the backfill's chunks are merged by the \
             running pipeline, start it first",
            cfg.pipeline, cfg.postgres.slot
        )));
    }
    let schemas = crate::schema::introspect::resolve_all(cfg, &pg.client, &mut my.conn).await?;
    // A one-way pair is copied only the way it replicates (`--all` leaves it out).
    let flows = |name: &str| cfg.pairs.iter().find(|p| p.name == name).map_or(true, |p| p.direction.flows(crate::config::Direction::from_source(opts.from)));
    let selected: Vec<&PairSchema> = if opts.all {
        schemas.iter().filter(|s| flows(&s.name)).collect()
    } else {
        let mut out = Vec::new();
        for name in &opts.pairs {
            out.push(schemas.iter().find(|s| &s.name == name).ok_or_else(|| Error::Request(format!("no pair named {name} in the config")))?);
            if !flows(name) {
                return Err(Error::Request(format!(
                    "pair {name} does not replicate from {} (its direction is one-way the other way): backfill it --from {}",
                    opts.from,
                    opts.from.other()
                )));
            }
        }
        out
    };
    // Chunks of an earlier, interrupted run are merged or abandoned once the
    // pipeline has caught up with everything written so far.
    let positions = probe.positions(&pg, &mut my).await?;
    match probe.wait(&pg, &mut my, &positions, Instant::now() + opts.merge_timeout).await? {
        CatchUp::CaughtUp => {}
        CatchUp::NotRunning => return Err(Error::Backfill("`tandem run` stopped while the backfill waited for it".into())),
        CatchUp::TimedOut => return Err(Error::Backfill(format!("the pipeline did not catch up within {:?}; is it stuck or far behind?", opts.merge_timeout))),
    }
    let (pg_state, my_state) = (PgPipelineState::new(cfg), MyPipelineState::new(cfg));
    let mut results = Vec::new();
    let (selected, stuck) = ordered(&pg.client, opts, selected).await?;
    for (schema, cycle) in stuck {
        let result = PairResult::failed(&schema.name, cycle);
        report.finish(&result);
        results.push(result);
    }
    for schema in selected {
        let ctx = Ctx { cfg, opts, schema, pg_state: &pg_state, my_state: &my_state };
        let copied = match opts.from {
            Side::Postgres => copy_pair(&ctx, &mut pg, &mut my, report).await,
            Side::Mysql => copy_pair(&ctx, &mut my, &mut pg, report).await,
        };
        let result = copied.unwrap_or_else(|e| {
            tracing::error!(pair = %schema.name, error = %e, "backfill of the pair failed; the other pairs go on");
            PairResult::failed(&schema.name, e.to_string())
        });
        report.finish(&result);
        results.push(result);
    }
    Ok(results)
}

/// The pairs in the order to copy them, and those that cannot be copied
/// (with why): parents first where the Postgres destination checks foreign
/// keys on the pipeline's writes, else as selected.
async fn ordered<'a>(
    pg: &tokio_postgres::Client,
    opts: &BackfillOptions,
    selected: Vec<&'a PairSchema>,
) -> Result<(Vec<&'a PairSchema>, Vec<(&'a PairSchema, String)>)> {
    if opts.from != Side::Mysql || crate::schema::triggers::pg_may_run_as_replica(pg).await? {
        return Ok((selected, Vec::new()));
    }
    let fks = super::order::pg_foreign_keys(pg).await?;
    let index = |t: &crate::config::TableName| selected.iter().position(|s| s.pg_table == *t);
    let edges: Vec<(usize, usize)> = fks.iter().filter_map(|(child, parent)| Some((index(child)?, index(parent)?))).collect();
    let nodes: Vec<usize> = (0..selected.len()).collect();
    let (order, stuck) = super::order::order(&nodes, &edges);
    let names = |v: &[usize]| v.iter().map(|&i| selected[i].name.clone()).collect::<Vec<_>>().join(" → ");
    let stuck = stuck
        .into_iter()
        .map(|(n, cycle)| {
            let mut around = cycle.clone();
            around.extend(cycle.first());
            (
                selected[n],
                format!(
                    "foreign keys between the Postgres tables form a cycle ({}) and the Postgres role may not run tandem's sessions with                      session_replication_role = replica, so no copy order satisfies them: GRANT SET ON PARAMETER session_replication_role                      TO the role (PG 15+; then restart tandem run), or make one of the foreign keys DEFERRABLE INITIALLY DEFERRED",
                    names(&around)
                ),
            )
        })
        .collect();
    if !edges.is_empty() {
        tracing::info!(order = %names(&order), "foreign keys are checked on the pipeline's Postgres writes: parents are copied first");
    }
    Ok((order.into_iter().map(|i| selected[i]).collect(), stuck))
}

struct Ctx<'a> {
    cfg: &'a Config,
    opts: &'a BackfillOptions,
    schema: &'a PairSchema,
    pg_state: &'a PgPipelineState,
    my_state: &'a MyPipelineState,
}

impl Ctx<'_> {
    /// The state tables of the database a `d` session talks to.
    fn state(&self, d: Dialect) -> &dyn BackfillStatements {
        match d {
            Dialect::Postgres => self.pg_state,
            _ => self.my_state,
        }
    }

    fn signal(&self, kind: SignalKind, run: &str, chunk: u64) -> Signal {
        Signal {
            pipeline: self.cfg.pipeline.clone(),
            kind,
            pair: self.schema.name.clone(),
            run: run.to_string(),
            chunk,
            staging: staging::staging_name(&self.cfg.pipeline, &self.schema.name),
            rows: 0,
            last_key: Vec::new(),
            after_key: Vec::new(),
        }
    }
}

/// Writes a watermark at the source, in one transaction.
async fn write_signal<Q: TextQuery>(ctx: &Ctx<'_>, src: &mut Q, s: &Signal) -> Result<()> {
    let kind = match s.kind {
        SignalKind::Low => "backfill-low",
        SignalKind::High => "backfill-high",
    };
    let st = ctx.state(src.dialect()).watermark(kind, &s.to_json());
    src.rows(&st.sql, st.params).await?;
    Ok(())
}

async fn read_progress<Q: TextQuery>(ctx: &Ctx<'_>, dst: &mut Q) -> Result<Option<Progress>> {
    let st = ctx.state(dst.dialect()).read_backfill(&ctx.schema.name);
    let rows = dst.rows(&st.sql, st.params).await?;
    let Some(r) = rows.into_iter().next() else { return Ok(None) };
    let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u64>().ok());
    Ok(Some(Progress {
        run: r[0].clone().unwrap_or_default(),
        chunk: num(&r[1]).unwrap_or(0),
        outcome: r[2].clone().unwrap_or_default(),
        rows_applied: num(&r[3]).unwrap_or(0),
        rows_total: num(&r[4]),
        last_key: parse_key_json(r[5].as_deref()),
        status: r[6].clone().unwrap_or_default(),
        source: r[7].clone().unwrap_or_default(),
    }))
}

/// Registers this run in the `backfills` row: a fresh start (progress reset)
/// or, with `resume`, the same progress under a new run id.
async fn register<Q: TextQuery>(ctx: &Ctx<'_>, dst: &mut Q, run: &str, total: u64, resume: bool) -> Result<()> {
    let state = ctx.state(dst.dialect());
    let pair = &ctx.schema.name;
    let statements = if resume { vec![state.resume_backfill(pair, run, total)] } else { state.start_backfill(pair, ctx.opts.from.as_str(), run, total).to_vec() };
    for st in statements {
        dst.rows(&st.sql, st.params).await?;
    }
    Ok(())
}

async fn finish<Q: TextQuery>(ctx: &Ctx<'_>, dst: &mut Q) -> Result<()> {
    let d = dst.dialect();
    let st = ctx.state(d).finish_backfill(&ctx.schema.name);
    dst.rows(&st.sql, st.params).await?;
    let side = if d == Dialect::Postgres { Side::Postgres } else { Side::Mysql };
    dst.rows(&staging::drop_sql(side, &ctx.cfg.state_schema, &staging::staging_name(&ctx.cfg.pipeline, &ctx.schema.name)), vec![]).await?;
    Ok(())
}

/// Stages `rows` (canonical text, pair column order) as chunk `chunk`.
async fn stage<Q: TextQuery + Load>(ctx: &Ctx<'_>, dst: &mut Q, rows: &[TextRow], chunk: u64) -> Result<()> {
    let d = dst.dialect();
    let s = ctx.schema;
    let generated = |i: usize| if d == Dialect::Postgres { s.columns[i].pg_generated } else { s.columns[i].my_generated };
    let cols: Vec<usize> = (0..s.columns.len()).filter(|&i| !generated(i)).collect();
    let name = staging::staging_name(&ctx.cfg.pipeline, &s.name);
    let (table, mut idents, kinds): (String, Vec<String>, Vec<ValueKind>) = if d == Dialect::Postgres {
        (
            format!("{}.{}", pg_ident(&ctx.cfg.state_schema), pg_ident(&name)),
            cols.iter().map(|&i| pg_ident(&s.columns[i].pg_name)).collect(),
            cols.iter().map(|&i| pg_kind_of(&s.columns[i])).collect(),
        )
    } else {
        let q = crate::sql::my::ident;
        (
            format!("{}.{}", q(&ctx.cfg.state_schema), q(&name)),
            cols.iter().map(|&i| q(&s.columns[i].my_name)).collect(),
            cols.iter().map(|&i| s.columns[i].my_kind).collect(),
        )
    };
    idents.push(staging::CHUNK_COL.to_string());
    let target = Target { table: &table, idents: &idents, kinds: &kinds, cols: &cols };
    if d != Dialect::Postgres {
        super::load::my_fit_check(s, &cols, rows)?;
    }
    // The pipeline merges the previous chunk meanwhile: a deadlock with it is retried.
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match dst.load(&target, rows, chunk).await {
            Err(e) if attempt < 10 && e.classify() == crate::error::ErrorClass::Transient => {
                tracing::debug!(error = %e, attempt, "staging retried");
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => break other,
        }
    };
    result.map_err(|e| {
        let keys = |r: Option<&TextRow>| r.map(|r| key_of(s, r)).unwrap_or_default();
        Error::Backfill(format!(
            "backfill of pair {}: staging chunk {chunk} (keys {:?} to {:?}) at the destination failed: {e}",
            s.name,
            keys(rows.first()),
            keys(rows.last())
        ))
    })
}

/// Waits until the pipeline has merged or abandoned `chunk` of `run`.
async fn wait_merged<Q: TextQuery>(ctx: &Ctx<'_>, dst: &mut Q, run: &str, chunk: u64) -> Result<Progress> {
    let started = Instant::now();
    let mut poll = Duration::from_millis(2);
    loop {
        if let Some(p) = read_progress(ctx, dst).await? {
            if p.run == run && p.chunk >= chunk {
                return Ok(p);
            }
        }
        if started.elapsed() > ctx.opts.merge_timeout {
            return Err(Error::Backfill(format!(
                "the pipeline did not merge chunk {chunk} of pair {} within {:?}: is `tandem run` running and keeping up?",
                ctx.schema.name, ctx.opts.merge_timeout
            )));
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(Duration::from_millis(20));
    }
}

/// The canonical key of a chunk row.
fn key_of(schema: &PairSchema, row: &TextRow) -> KeyText {
    schema.key.iter().map(|&i| row[i].clone().unwrap_or_default()).collect()
}

async fn copy_pair<S: TextQuery, D: TextQuery + Load>(ctx: &Ctx<'_>, src: &mut S, dst: &mut D, report: &mut dyn Report) -> Result<PairResult> {
    let s = ctx.schema;
    let started = Instant::now();
    let src_sql = SideSql::new(src.dialect(), s).map_err(|e| Error::Schema { pair: s.name.clone(), message: e })?;
    let dst_side = if dst.dialect() == Dialect::Postgres { Side::Postgres } else { Side::Mysql };
    let progress = read_progress(ctx, dst).await?;
    let resume = progress.as_ref().is_some_and(|p| p.status == "running" && p.source == ctx.opts.from.as_str() && !p.last_key.is_empty());
    if ctx.opts.all && !resume {
        let dest_sql = SideSql::new(dst.dialect(), s).map_err(|e| Error::Schema { pair: s.name.clone(), message: e })?;
        let mut b = Binder::new(dst.dialect());
        let sql = dest_sql.chunk_sql(&mut b, None, 1);
        let any = dst.rows(&sql, b.values).await?;
        if !any.is_empty() {
            return Ok(PairResult { pair: s.name.clone(), rows: 0, resumed_at: 0, chunks: 0, seconds: 0.0, skipped: Some("the destination table is not empty".into()), failed: None });
        }
    }
    let total: u64 = src.rows(&src_sql.count_sql(), vec![]).await?.first().and_then(|r| r[0].as_deref()).and_then(|t| t.parse().ok()).unwrap_or(0);
    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    register(ctx, dst, &run, total, resume).await?;
    let staging_name = staging::staging_name(&ctx.cfg.pipeline, &s.name);
    let create = match dst_side {
        Side::Postgres => staging::pg_create_sql(s, &ctx.cfg.state_schema, &staging_name),
        Side::Mysql => staging::my_create_sql(s, &ctx.cfg.state_schema, &staging_name),
    };
    for sql in create {
        dst.rows(&sql, vec![]).await?;
    }
    if src.dialect() == Dialect::Postgres {
        // With synchronous_commit off the walsender would see each watermark only
        // after the WAL writer's next cycle (up to 200 ms per chunk); on, at once.
        src.rows("SET synchronous_commit = on", vec![]).await?;
    }
    if dst_side == Side::Mysql {
        // Staging rows need not reach the binlog; without the privilege they are just ignored by the reader.
        let _ = dst.rows("SET SESSION sql_log_bin = 0", vec![]).await;
    }
    let (mut after, resumed_at) = match (&progress, resume) {
        (Some(p), true) => (p.last_key.clone(), p.rows_applied),
        _ => (Vec::new(), 0),
    };
    if resume {
        tracing::info!(pair = %s.name, rows_applied = resumed_at, after = ?after, "resuming an interrupted backfill");
    }
    report.start(&s.name, total, resumed_at);
    let mut chunk = 0u64;
    let mut copied = 0u64;
    let mut outstanding: Option<(u64, u64)> = None; // (chunk, rows)
    let mut abandoned_in_a_row = 0;
    // Where the time goes: reading the source, staging, waiting for merges.
    let (mut t_read, mut t_stage, mut t_wait) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    loop {
        if abandoned_in_a_row >= MAX_ABANDONED {
            return Err(Error::Backfill(format!(
                "the pipeline abandoned {MAX_ABANDONED} chunks of pair {} in a row after key {after:?}; the `tandem run` log says why",
                s.name
            )));
        }
        chunk += 1;
        let mut low = ctx.signal(SignalKind::Low, &run, chunk);
        write_signal(ctx, src, &low).await?;
        let mut b = Binder::new(src.dialect());
        let after_opt = (!after.is_empty()).then_some(&after);
        let sql = src_sql.chunk_sql(&mut b, after_opt, ctx.opts.chunk_rows.max(1));
        let t = Instant::now();
        let rows = src.rows(&sql, b.values).await?;
        t_read += t.elapsed();
        tracing::debug!(pair = %s.name, chunk, after = ?after, rows = rows.len(), first = ?rows.first().map(|r| key_of(s, r)), last = ?rows.last().map(|r| key_of(s, r)), "chunk read");
        let t = Instant::now();
        stage(ctx, dst, &rows, chunk).await?;
        t_stage += t.elapsed();
        let mut doomed = false;
        if let Some((prev, prev_rows)) = outstanding.take() {
            let t = Instant::now();
            let p = wait_merged(ctx, dst, &run, prev).await?;
            t_wait += t.elapsed();
            if p.chunk == prev && p.outcome == "applied" {
                copied += prev_rows;
                abandoned_in_a_row = 0;
                report.chunk(&s.name, p.rows_applied);
            } else {
                abandoned_in_a_row += 1;
                tracing::warn!(pair = %s.name, chunk = prev, "the pipeline did not merge a chunk (it restarted between its watermarks?); copying again from the last merged key");
                after = p.last_key.clone();
                doomed = true;
            }
        }
        // Close the window in every case; a doomed chunk is abandoned by the pipeline.
        low.kind = SignalKind::High;
        low.rows = rows.len() as u64;
        low.after_key = if doomed { vec!["(abandoned)".into()] } else { after.clone() };
        low.last_key = rows.last().map(|r| key_of(s, r)).unwrap_or_else(|| after.clone());
        write_signal(ctx, src, &low).await?;
        if doomed {
            wait_merged(ctx, dst, &run, chunk).await?;
            tokio::time::sleep(retry_pause(abandoned_in_a_row)).await;
            continue;
        }
        if rows.is_empty() {
            let p = wait_merged(ctx, dst, &run, chunk).await?;
            if p.chunk == chunk && p.outcome == "applied" {
                break;
            }
            abandoned_in_a_row += 1;
            after = p.last_key.clone();
            tokio::time::sleep(retry_pause(abandoned_in_a_row)).await;
            continue;
        }
        after = low.last_key.clone();
        outstanding = Some((chunk, rows.len() as u64));
        if let Some(rate) = ctx.opts.max_rows_per_sec.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64((copied + rows.len() as u64) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    finish(ctx, dst).await?;
    let key = key_json(&after).unwrap_or_default();
    tracing::info!(
        pair = %s.name, rows = copied, last_key = %key,
        read_s = t_read.as_secs_f64(), stage_s = t_stage.as_secs_f64(), wait_s = t_wait.as_secs_f64(),
        "backfill done"
    );
    Ok(PairResult { pair: s.name.clone(), rows: copied, resumed_at, chunks: chunk, seconds: started.elapsed().as_secs_f64(), skipped: None, failed: None })
}
