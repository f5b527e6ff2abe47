//! `tandem run`: the long-running service core — the pipeline of both
//! directions, their supervision, and the HA lease around them.
//!
//! Runs both directions side by side, each as source task → bounded channel
//! → echo stage → batcher → applier (`direction`), with its own checkpoint.
//! A shutdown token stops both: the sources stop reading, the batchers
//! commit the complete transactions in flight, acknowledge, and `run`
//! returns. If one direction fails, the other is stopped cleanly (its own
//! batch committed) and the error is returned. The bounded channel is the
//! backpressure that keeps memory flat when a destination is slower than its
//! source. The two directions share one row-incarnation registry
//! (`crate::echo`); it is the only state they share.
//!
//! HA (`lease`): `run` first waits for the pipeline lease (standby),
//! then runs both directions with their appliers fenced by the lease epochs.
//! When the lease connection fails, both directions are dropped at once —
//! the batches in flight are abandoned, not committed; the fence refuses any
//! commit that reaches the server after a new holder took over — and `run`
//! goes back to waiting for the lease. A direction fenced by a newer holder
//! does the same.

pub mod backoff;
pub mod barrier;
pub mod batcher;
pub mod bounded;
pub mod direction;
pub mod lease;
mod monitor;
pub mod oneway;
mod supervise;

use supervise::supervise;

use crate::apply::mysql::MysqlApplier;
use crate::apply::postgres::PostgresApplier;
use crate::apply::BatchApplier;
use crate::config::{Config, Direction, Side};
use crate::echo::Incarnations;
use crate::model::{BinlogPos, Lsn, SourcePos};
use crate::schema::PairSchema;
use crate::source::mysql::{MysqlSource, MysqlSourceOptions, StateTables};
use crate::source::postgres::{PostgresSource, PostgresSourceOptions};
use crate::state::mysql::MyState;
use crate::state::postgres::PgState;
use crate::{Error, Result};
use batcher::{BatchSettings, BatcherStats};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most changes per `SourceEvent::Changes` from a source.
const SOURCE_CHUNK_ROWS: usize = 64;
/// The batcher writes buffered changes to the open destination transaction at this size.
const CHUNK_ROWS: usize = 2000;

pub fn batch_settings(cfg: &Config) -> BatchSettings {
    BatchSettings { max_rows: cfg.apply.max_batch_rows, max_delay: cfg.apply.max_batch_delay, chunk_rows: CHUNK_ROWS.min(cfg.apply.max_batch_rows).max(1) }
}

/// How long connecting and the first statements on a new session may take.
fn connecting(cfg: &Config) -> Duration {
    cfg.timeouts.connect + cfg.timeouts.apply_call()
}

/// `fut` (a connect) within `connecting(cfg)`, the direction checking in meanwhile.
async fn connect_bounded<T>(cfg: &Config, direction: Direction, what: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let clock = crate::service::state::global().clock(direction);
    bounded::bounded(clock, &format!("{direction}: {what} ([timeouts] connect_seconds)"), connecting(cfg), fut).await
}

/// Resolves the pair schemas against both live databases.
pub async fn load_schemas(cfg: &Config) -> Result<Arc<Vec<PairSchema>>> {
    let after = connecting(cfg) * 2;
    tokio::time::timeout(after, load_schemas_unbounded(cfg))
        .await
        .map_err(|_| Error::Timeout { what: "connecting to both databases and reading the pairs' schemas".into(), after })?
}

async fn load_schemas_unbounded(cfg: &Config) -> Result<Arc<Vec<PairSchema>>> {
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
        let Some(lease) = lease::acquire(cfg, &shutdown).await? else { return Ok(()) };
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
pub async fn run_active(cfg: &Config, epochs: Option<lease::Epochs>, shutdown: &CancellationToken) -> Result<()> {
    let schemas = load_schemas(cfg).await?;
    tracing::info!(pipeline = %cfg.pipeline, pairs = schemas.len(), "starting both directions");
    let pg_token = shutdown.child_token();
    let my_token = shutdown.child_token();
    let reg = Arc::new(Incarnations::default());
    // Read before either direction applies anything: each is the other side's
    // position applied where its source resumes.
    let after = connecting(cfg);
    let late = |what: &str| Error::Timeout { what: format!("reading the {what} checkpoint"), after };
    reg.set_resume_seen(Side::Postgres, tokio::time::timeout(after, pg_stored_mysql_checkpoint(cfg)).await.map_err(|_| late("mysql→postgres"))??);
    reg.set_resume_seen(Side::Mysql, tokio::time::timeout(after, my_stored_pg_checkpoint(cfg)).await.map_err(|_| late("postgres→mysql"))??);
    let (pg_fence, my_fence) = (epochs.map(|e| e.mysql), epochs.map(|e| e.postgres));
    let forward = async {
        let r = supervise(Direction::PostgresToMysql, &pg_token, || crate::service::state::global().track(Direction::PostgresToMysql, run_postgres_to_mysql(cfg, Arc::clone(&schemas), pg_fence, Some(Arc::clone(&reg)), pg_token.clone()))).await;
        let r = halt_alone(Direction::PostgresToMysql, r, &pg_token).await;
        if r.is_err() {
            my_token.cancel();
        }
        r
    };
    let backward = async {
        let r = supervise(Direction::MysqlToPostgres, &my_token, || crate::service::state::global().track(Direction::MysqlToPostgres, run_mysql_to_postgres(cfg, Arc::clone(&schemas), my_fence, Some(Arc::clone(&reg)), my_token.clone()))).await;
        let r = halt_alone(Direction::MysqlToPostgres, r, &my_token).await;
        if r.is_err() {
            pg_token.cancel();
        }
        r
    };
    let monitor = tokio::spawn(monitor::run(cfg.clone(), shutdown.child_token()));
    // Every log line of this run names its pipeline (several may share a host or a test).
    use tracing::Instrument;
    let span = tracing::info_span!("pipeline", name = %cfg.pipeline);
    let (a, b) = async { tokio::join!(forward, backward) }.instrument(span).await;
    monitor.abort();
    // A fenced direction explains why the other stopped: report it first.
    match (a, b) {
        (Err(e @ Error::Fenced { .. }), _) | (_, Err(e @ Error::Fenced { .. })) => Err(e),
        (a, b) => {
            a?;
            b
        }
    }
}

/// A direction that stopped at a change it cannot replicate faithfully
/// (`Error::halts_direction`) halts alone: its checkpoint stays before that
/// change, `/health/ready` names it, and the other direction and the
/// service go on until `token` is cancelled. Any other outcome passes.
async fn halt_alone(direction: Direction, outcome: Result<()>, token: &CancellationToken) -> Result<()> {
    match outcome {
        Err(e) if e.halts_direction() => {
            crate::service::state::global().halted(direction, &e);
            tracing::error!(%direction, error = %e,
                "direction halted: nothing after this change is applied; fix the cause and restart `tandem run` (the other direction goes on)");
            token.cancelled().await;
            Ok(())
        }
        other => other,
    }
}

/// The postgres→mysql direction, until shutdown or error; `reg` shares
/// row incarnations with the other direction when both run.
pub async fn run_postgres_to_mysql(cfg: &Config, schemas: Arc<Vec<PairSchema>>, fence: Option<i64>, reg: Option<Arc<Incarnations>>, shutdown: CancellationToken) -> Result<BatcherStats> {
    let d = Direction::PostgresToMysql;
    let mut applier = connect_bounded(cfg, d, "connecting the mysql applier", MysqlApplier::connect(cfg, Arc::clone(&schemas))).await?;
    if let Some(epoch) = fence {
        applier.set_fence(epoch);
    }
    let opts = PostgresSourceOptions {
        slot: cfg.postgres.slot.clone(),
        publication: cfg.postgres.publication.clone(),
        origin: cfg.origin_name(),
        chunk_rows: SOURCE_CHUNK_ROWS,
        status_interval: Duration::from_secs(10),
        own_rows: reg.as_ref().map(|r| r.own_rows(Side::Postgres)).unwrap_or_default(),
        heartbeat: cfg.timeouts.heartbeat(),
        read_timeout: cfg.timeouts.read,
    };
    let source = connect_bounded(cfg, d, "connecting the replication stream", PostgresSource::connect(&cfg.postgres.endpoint, opts, schemas.as_ref().clone())).await?;
    direction::run_direction(cfg, Direction::PostgresToMysql, source, applier, reg, schemas, shutdown).await
}

/// Options of the binlog reader for this pipeline.
fn mysql_source_options(cfg: &Config, reg: Option<&Incarnations>) -> MysqlSourceOptions {
    MysqlSourceOptions {
        server_id: cfg.mysql.server_id,
        chunk_rows: SOURCE_CHUNK_ROWS,
        // The applier may tag its transactions with this id (echo_tag = auto | server-id).
        own_server_ids: vec![cfg.mysql.server_id],
        heartbeat: cfg.timeouts.heartbeat(),
        read_timeout: cfg.timeouts.read,
        state: Some(StateTables { db: cfg.state_schema.clone(), pipeline: cfg.pipeline.clone() }),
        own_rows: reg.map(|r| r.own_rows(Side::Mysql)).unwrap_or_default(),
        coordinates: monitor::binlog_coordinates(),
    }
}

/// The `mysql→postgres` checkpoint stored in Postgres: the MySQL position
/// applied there, the `seen` of the Postgres stream's first transactions.
async fn pg_stored_mysql_checkpoint(cfg: &Config) -> Result<Option<SourcePos>> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let text = PgState::new(&cfg.state_schema, &cfg.pipeline, Direction::MysqlToPostgres).checkpoint(&pg).await?;
    Ok(text.and_then(|t| t.parse::<BinlogPos>().ok()).map(SourcePos::Mysql))
}

/// The `postgres→mysql` checkpoint stored in MySQL (see `pg_stored_mysql_checkpoint`).
async fn my_stored_pg_checkpoint(cfg: &Config) -> Result<Option<SourcePos>> {
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let text = MyState::new(&cfg.state_schema, &cfg.pipeline, Direction::PostgresToMysql).checkpoint(&mut my).await?;
    let _ = my.disconnect().await;
    Ok(text.and_then(|t| t.parse::<Lsn>().ok()).map(SourcePos::Postgres))
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
    let mut source = MysqlSource::connect(&cfg.mysql.endpoint, mysql_source_options(cfg, None), schemas.as_ref().clone()).await?;
    let pos = source.current_position().await?;
    applier.set_source_identity(source.server_identity().await?.to_string());
    Ok(applier.store_initial_checkpoint(&SourcePos::Mysql(pos.clone())).await?.then_some(pos))
}

/// The mysql→postgres direction, until shutdown or error (see `run_postgres_to_mysql`).
pub async fn run_mysql_to_postgres(cfg: &Config, schemas: Arc<Vec<PairSchema>>, fence: Option<i64>, reg: Option<Arc<Incarnations>>, shutdown: CancellationToken) -> Result<BatcherStats> {
    let d = Direction::MysqlToPostgres;
    let mut applier = connect_bounded(cfg, d, "connecting the postgres applier", PostgresApplier::connect(cfg, Arc::clone(&schemas))).await?;
    if let Some(epoch) = fence {
        applier.set_fence(epoch);
    }
    let opts = mysql_source_options(cfg, reg.as_deref());
    let source = connect_bounded(cfg, d, "connecting the binlog reader", MysqlSource::connect(&cfg.mysql.endpoint, opts, schemas.as_ref().clone())).await?;
    direction::run_direction(cfg, Direction::MysqlToPostgres, source, applier, reg, schemas, shutdown).await
}
