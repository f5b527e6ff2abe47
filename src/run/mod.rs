//! `tandem run`: the long-running service.
//!
//! Runs both directions side by side, each as source task → bounded channel
//! → batcher/applier, with its own checkpoint. A shutdown token stops both:
//! the sources stop reading, the batchers commit the complete transactions in
//! flight, acknowledge, and `run` returns. If one direction fails, the other
//! is stopped cleanly (its own batch committed) and the error is returned.
//! The bounded channel is the backpressure that keeps memory flat when a
//! destination is slower than its source.
//!
//! HA (`ops::lease`): `run` first waits for the pipeline lease (standby),
//! then runs both directions with their appliers fenced by the lease epochs.
//! When the lease connection fails, both directions are dropped at once —
//! the batches in flight are abandoned, not committed; the fence refuses any
//! commit that reaches the server after a new holder took over — and `run`
//! goes back to waiting for the lease. A direction fenced by a newer holder
//! does the same.

pub mod backoff;
pub mod batcher;
pub mod lease;

use crate::apply::mysql::MysqlApplier;
use crate::apply::postgres::PostgresApplier;
use crate::apply::BatchApplier;
use crate::config::{Config, Direction};
use crate::conflict::incarnation::{Incarnations, Tracking};
use crate::model::{BinlogPos, Lsn, SourcePos};
use crate::run::batcher::{run_batcher, BatchSettings, BatcherStats};
use crate::schema::PairSchema;
use crate::source::mysql::{MysqlSource, MysqlSourceOptions, ServerIdentity};
use crate::source::postgres::{PostgresSource, PostgresSourceOptions};
use crate::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Events buffered between a source and its batcher. Small transactions take
/// three events each (Begin, Changes, Commit): the channel must hold enough
/// of them for the batcher to group a backlog into large destination
/// transactions, and for the source to keep reading (so the server's sender
/// keeps sending) while a batch commits. Memory stays bounded: at most
/// CHANNEL_EVENTS × SOURCE_CHUNK_ROWS changes (131,072).
const CHANNEL_EVENTS: usize = 2048;
/// Most changes per `SourceEvent::Changes` from a source.
const SOURCE_CHUNK_ROWS: usize = 64;
/// The batcher writes buffered changes to the open destination transaction at this size.
const CHUNK_ROWS: usize = 2000;

pub fn batch_settings(cfg: &Config) -> BatchSettings {
    BatchSettings { max_rows: cfg.apply.max_batch_rows, max_delay: cfg.apply.max_batch_delay, chunk_rows: CHUNK_ROWS.min(cfg.apply.max_batch_rows).max(1) }
}

/// Resolves the pair schemas against both live databases.
pub async fn load_schemas(cfg: &Config) -> Result<Arc<Vec<PairSchema>>> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let schemas = crate::schema::introspect::resolve_all(cfg, &pg, &mut my).await?;
    let _ = my.disconnect().await;
    Ok(Arc::new(schemas))
}

/// Runs the pipeline until `shutdown` is cancelled or a fatal error occurs:
/// standby until this process holds the pipeline lease, then both directions.
pub async fn run(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let state = crate::service::state::global();
    loop {
        let Some(lease) = crate::run::lease::acquire(cfg, &shutdown).await? else { return Ok(()) };
        state.active();
        let active = shutdown.child_token();
        let outcome = tokio::select! {
            r = run_active(cfg, Some(lease.epochs), &active) => Some(r),
            _ = lease.lost() => None,
        };
        // Stops the sources of an abandoned attempt (their tasks outlive the dropped batchers).
        active.cancel();
        match outcome {
            Some(Ok(())) => {
                lease.release().await;
                return Ok(());
            }
            None if shutdown.is_cancelled() => return Ok(()),
            None => tracing::warn!(pipeline = %cfg.pipeline, "lost the pipeline lease; stopped applying, waiting for it again"),
            Some(Err(e @ Error::Fenced { .. })) => tracing::warn!(pipeline = %cfg.pipeline, error = %e, "another instance took the lease; waiting for it again"),
            Some(Err(e)) => return Err(e),
        }
        drop(lease);
        state.lease_unknown("lost the pipeline lease".into());
    }
}

/// Both directions until `shutdown` or a fatal error; with `epochs`, every
/// checkpoint write is fenced by the lease.
pub async fn run_active(cfg: &Config, epochs: Option<crate::run::lease::Epochs>, shutdown: &CancellationToken) -> Result<()> {
    let schemas = load_schemas(cfg).await?;
    tracing::info!(pipeline = %cfg.pipeline, pairs = schemas.len(), "starting both directions");
    let pg_token = shutdown.child_token();
    let my_token = shutdown.child_token();
    let reg = Arc::new(Incarnations::default());
    // Read before either direction applies anything: each is the other side's
    // position applied where its source resumes.
    reg.set_resume_seen(crate::config::Side::Postgres, pg_stored_mysql_checkpoint(cfg).await?);
    reg.set_resume_seen(crate::config::Side::Mysql, my_stored_pg_checkpoint(cfg).await?);
    let (pg_fence, my_fence) = (epochs.map(|e| e.mysql), epochs.map(|e| e.postgres));
    let forward = async {
        let r = supervise(Direction::PostgresToMysql, &pg_token, || crate::service::state::global().track(Direction::PostgresToMysql, run_postgres_to_mysql(cfg, Arc::clone(&schemas), pg_fence, Arc::clone(&reg), pg_token.clone()))).await;
        if r.is_err() {
            my_token.cancel();
        }
        r
    };
    let backward = async {
        let r = supervise(Direction::MysqlToPostgres, &my_token, || crate::service::state::global().track(Direction::MysqlToPostgres, run_mysql_to_postgres(cfg, Arc::clone(&schemas), my_fence, Arc::clone(&reg), my_token.clone()))).await;
        if r.is_err() {
            pg_token.cancel();
        }
        r
    };
    // Every log line of this run names its pipeline (several may share a host or a test).
    use tracing::Instrument;
    let span = tracing::info_span!("pipeline", name = %cfg.pipeline);
    let (a, b) = async { tokio::join!(forward, backward) }.instrument(span).await;
    // A fenced direction explains why the other stopped: report it first.
    match (a, b) {
        (Err(e @ Error::Fenced { .. }), _) | (_, Err(e @ Error::Fenced { .. })) => Err(e),
        (a, b) => {
            a?;
            b
        }
    }
}

/// Runs one direction, restarting it from its checkpoint after transient
/// errors (lost connections, deadlocks) with capped exponential backoff and
/// full jitter; a definite error ends it. The other direction is unaffected
/// by a restart: each has its own connections and checkpoint.
async fn supervise<F, Fut>(direction: Direction, token: &CancellationToken, mut attempt: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<BatcherStats>>,
{
    let mut backoff = crate::run::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut outage_logged = false;
    loop {
        let started = std::time::Instant::now();
        match attempt().await {
            Ok(s) => {
                tracing::info!(%direction, transactions = s.transactions, changes = s.changes, batches = s.batches, "stopped");
                return Ok(());
            }
            Err(e) if token.is_cancelled() => {
                tracing::info!(%direction, error = %e, "stopped during shutdown");
                return Ok(());
            }
            Err(e) if e.classify() == crate::error::ErrorClass::Transient => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff.reset();
                    outage_logged = false;
                }
                let side = match (&e, direction) {
                    (Error::Mysql(_), _) => "mysql",
                    (Error::Postgres(_) | Error::PgServer { .. }, _) => "postgres",
                    (_, Direction::PostgresToMysql) => "postgres",
                    (_, Direction::MysqlToPostgres) => "mysql",
                };
                metrics::counter!(crate::metrics::RECONNECTS, "side" => side).increment(1);
                if !outage_logged {
                    tracing::warn!(%direction, error = %e, "connection problem; retrying from the checkpoint with backoff");
                    outage_logged = true;
                } else {
                    tracing::debug!(%direction, error = %e, "retry failed");
                }
                let wait = backoff.next_delay();
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                tracing::error!(%direction, error = %e, "direction failed; stopping");
                return Err(e);
            }
        }
    }
}

/// The postgres→mysql direction, until shutdown or error.
pub async fn run_postgres_to_mysql(cfg: &Config, schemas: Arc<Vec<PairSchema>>, fence: Option<i64>, reg: Arc<Incarnations>, shutdown: CancellationToken) -> Result<BatcherStats> {
    let direction = Direction::PostgresToMysql;
    let mut applier = MysqlApplier::connect(cfg, Arc::clone(&schemas)).await?;
    applier.set_incarnations(Arc::clone(&reg));
    let seen = reg.resume_seen(crate::config::Side::Postgres);
    if let Some(epoch) = fence {
        applier.set_fence(epoch);
    }
    let start = match applier.checkpoint().await? {
        Some(SourcePos::Postgres(l)) => l,
        Some(other) => return Err(Error::Checkpoint(format!("{other} is not a Postgres LSN"))),
        None => Lsn(0),
    };
    tracing::info!(direction = %direction, checkpoint = %start, "resuming");
    let opts = PostgresSourceOptions {
        slot: cfg.postgres.slot.clone(),
        publication: cfg.postgres.publication.clone(),
        origin_to_skip: cfg.origin_name(),
        chunk_rows: SOURCE_CHUNK_ROWS,
        status_interval: Duration::from_secs(10),
        incarnations: Some(Tracking { reg: Arc::clone(&reg), seen }),
    };
    let source = PostgresSource::connect(&cfg.postgres.endpoint, opts, schemas.as_ref().clone()).await?;
    let (tx, rx) = mpsc::channel(CHANNEL_EVENTS);
    let (ack_tx, ack_rx) = watch::channel(start);
    let source_token = shutdown.child_token();
    let source_task = tokio::spawn(tracing::Instrument::in_current_span(source.run(start, tx, ack_rx, source_token.clone())));
    crate::service::state::global().streaming(direction);
    let ack = move |pos: &SourcePos| {
        crate::service::state::global().acknowledged(direction, pos);
        // The slot will not send again what is acknowledged: echoes up to here are past.
        reg.echoes_passed(crate::config::Side::Postgres, pos);
        if let SourcePos::Postgres(l) = pos {
            ack_tx.send_if_modified(|cur| {
                let newer = *l > *cur;
                if newer {
                    *cur = *l;
                }
                newer
            });
        }
    };
    let names: Vec<String> = cfg.pairs.iter().map(|p| p.name.clone()).collect();
    let batched = run_batcher(direction, &mut applier, rx, ack, &batch_settings(cfg), &names).await;
    source_token.cancel();
    let sourced = source_task.await.map_err(|e| Error::Task(format!("postgres source task: {e}")))?;
    let stats = batched?;
    sourced?;
    Ok(stats)
}

/// Options of the binlog reader for this pipeline.
fn mysql_source_options(cfg: &Config) -> MysqlSourceOptions {
    MysqlSourceOptions {
        server_id: cfg.mysql.server_id,
        chunk_rows: SOURCE_CHUNK_ROWS,
        // The applier may tag its transactions with this id (echo_tag = auto | server-id).
        skip_server_ids: vec![cfg.mysql.server_id],
        marker_table: Some((cfg.state_schema.clone(), "origin_marker".to_string())),
        heartbeat: Duration::from_secs(5),
        signals: Some((cfg.state_schema.clone(), "signals".to_string(), cfg.pipeline.clone())),
        incarnations: None,
    }
}

/// The `mysql→postgres` checkpoint stored in Postgres: the MySQL position
/// applied there, the `seen` of the Postgres stream's first transactions.
async fn pg_stored_mysql_checkpoint(cfg: &Config) -> Result<Option<SourcePos>> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let sql = format!("SELECT position FROM {}.checkpoints WHERE pipeline = $1 AND direction = $2", crate::sql::pg::ident(&cfg.state_schema));
    let row = pg.query_opt(&sql, &[&cfg.pipeline, &Direction::MysqlToPostgres.key()]).await?;
    let text: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
    Ok(text.and_then(|t| t.parse::<BinlogPos>().ok()).map(SourcePos::Mysql))
}

/// The `postgres→mysql` checkpoint stored in MySQL (see `pg_stored_mysql_checkpoint`).
async fn my_stored_pg_checkpoint(cfg: &Config) -> Result<Option<SourcePos>> {
    use mysql_async::prelude::Queryable;
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let sql = format!("SELECT position FROM {}.checkpoints WHERE pipeline = ? AND direction = ?", crate::sql::my::ident(&cfg.state_schema));
    let text: Option<String> = my.exec_first(sql, (&cfg.pipeline, Direction::PostgresToMysql.key())).await?;
    let _ = my.disconnect().await;
    Ok(text.and_then(|t| t.parse::<Lsn>().ok()).map(SourcePos::Postgres))
}

/// Refuses a file:position checkpoint taken on another server (after a
/// failover the same file name and offset mean something else).
fn check_identity(start: &BinlogPos, stored: Option<&str>, current: &ServerIdentity) -> Result<()> {
    let Some(stored) = stored else { return Ok(()) };
    if stored == current.to_string() {
        return Ok(());
    }
    match start {
        BinlogPos::File { .. } => Err(Error::Checkpoint(format!(
            "the mysql→postgres checkpoint {start} was taken on server {stored}, but the server now is {current}; \
             a binlog file position means nothing on another server. If this is a failover to a replica with the same data, \
             enable GTIDs and run `tandem init` again, or delete the checkpoint row (direction 'mysql_to_postgres' in the \
             Postgres state table checkpoints) and backfill; nothing was applied."
        ))),
        _ => {
            tracing::warn!(stored, %current, "binlog server changed; resuming by GTID position");
            Ok(())
        }
    }
}

/// Records the MySQL server's current position as the mysql→postgres start
/// point when no checkpoint exists (used by `init`). Returns the position if
/// it was written.
pub async fn record_mysql_start(cfg: &Config) -> Result<Option<BinlogPos>> {
    let schemas = load_schemas(cfg).await?;
    let mut applier = PostgresApplier::connect(cfg, Arc::clone(&schemas)).await?;
    if applier.checkpoint().await?.is_some() {
        return Ok(None);
    }
    let mut source = MysqlSource::connect(&cfg.mysql.endpoint, mysql_source_options(cfg), schemas.as_ref().clone()).await?;
    let pos = source.current_position().await?;
    applier.set_server_identity(source.server_identity().await?.to_string());
    Ok(applier.store_initial_checkpoint(&SourcePos::Mysql(pos.clone())).await?.then_some(pos))
}

/// The mysql→postgres direction, until shutdown or error.
pub async fn run_mysql_to_postgres(cfg: &Config, schemas: Arc<Vec<PairSchema>>, fence: Option<i64>, reg: Arc<Incarnations>, shutdown: CancellationToken) -> Result<BatcherStats> {
    let direction = Direction::MysqlToPostgres;
    let mut applier = PostgresApplier::connect(cfg, Arc::clone(&schemas)).await?;
    applier.set_incarnations(Arc::clone(&reg));
    let seen = reg.resume_seen(crate::config::Side::Mysql);
    let mut opts = mysql_source_options(cfg);
    opts.incarnations = Some((Tracking { reg, seen }, (cfg.state_schema.clone(), "checkpoints".to_string())));
    if let Some(epoch) = fence {
        applier.set_fence(epoch);
    }
    let mut source = MysqlSource::connect(&cfg.mysql.endpoint, opts, schemas.as_ref().clone()).await?;
    let identity = source.server_identity().await?;
    let start = match applier.checkpoint().await? {
        Some(SourcePos::Mysql(p)) => {
            check_identity(&p, applier.stored_server_identity().await?.as_deref(), &identity)?;
            p
        }
        Some(other) => return Err(Error::Checkpoint(format!("{other} is not a binlog position"))),
        None => {
            let p = source.current_position().await?;
            tracing::warn!(direction = %direction, position = %p, "no checkpoint (run `tandem init`); starting at the server's current position");
            p
        }
    };
    applier.set_server_identity(identity.to_string());
    tracing::info!(direction = %direction, checkpoint = %start, "resuming");
    let (tx, rx) = mpsc::channel(CHANNEL_EVENTS);
    let source_token = shutdown.child_token();
    let source_task = tokio::spawn(tracing::Instrument::in_current_span(source.run(start, tx, source_token.clone())));
    crate::service::state::global().streaming(direction);
    let names: Vec<String> = cfg.pairs.iter().map(|p| p.name.clone()).collect();
    let batched = run_batcher(direction, &mut applier, rx, |p: &SourcePos| crate::service::state::global().acknowledged(direction, p), &batch_settings(cfg), &names).await;
    source_token.cancel();
    let sourced = source_task.await.map_err(|e| Error::Task(format!("mysql source task: {e}")))?;
    let stats = batched?;
    sourced?;
    Ok(stats)
}
