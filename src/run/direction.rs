//! One direction of the pipeline, whatever its databases: a `Source`
//! streaming into a bounded channel, the echo stage, the one-way filter
//! (`super::oneway`), the batcher and an applier wrapped in the echo
//! bookkeeping (DESIGN §1).
//!
//! Invariants: the stream starts where the destination's checkpoint says
//! (`Source::resume`); the source is told "committed up to X" only after the
//! destination commit that contains X (the batcher's `ack`); on any exit the
//! source task is stopped and awaited, and the first error is returned.
//! Every wait on a database is bounded (`super::bounded`): the applier's
//! calls, the source's resume, and the source task's stop.

use super::batcher::{run_batcher, BatcherStats};
use super::bounded::{bounded, Bounded};
use crate::apply::BatchApplier;
use crate::config::{Config, Direction};
use crate::echo::{Bookkept, EchoStage, Incarnations};
use crate::model::SourcePos;
use crate::schema::PairSchema;
use crate::source::Source;
use crate::{Error, Result};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Events buffered between a source and its batcher. Small transactions take
/// three events each (Begin, Changes, Commit): the channel must hold enough
/// of them for the batcher to group a backlog into large destination
/// transactions, and for the source to keep reading (so the server's sender
/// keeps sending) while a batch commits. Memory stays bounded: at most
/// CHANNEL_EVENTS × the source's chunk size changes (131,072).
const CHANNEL_EVENTS: usize = 2048;
/// How long a stopped source task may take to end (it closes its stream).
const SOURCE_STOP: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `direction` from `source` into `applier` until `shutdown` or an error.
pub async fn run_direction<S: Source, A: BatchApplier>(
    cfg: &Config,
    direction: Direction,
    mut source: S,
    applier: A,
    reg: Option<Arc<Incarnations>>,
    schemas: Arc<Vec<PairSchema>>,
    shutdown: CancellationToken,
) -> Result<BatcherStats> {
    let side = direction.source();
    let state = crate::service::state::global();
    let clock = state.clock(direction);
    let name = match side.other() {
        crate::config::Side::Postgres => "postgres applier",
        crate::config::Side::Mysql => "mysql applier",
    };
    let mut applier = Bounded::new(applier, clock, &cfg.timeouts, name);
    let checkpoint = applier.checkpoint().await?;
    let stored = applier.source_identity().await?;
    let what = format!("{} source: finding where to resume", side.as_str());
    let resume = bounded(clock, &what, cfg.timeouts.apply_call(), source.resume(checkpoint.as_ref(), stored.as_deref())).await?;
    if let Some(identity) = resume.identity {
        applier.set_source_identity(identity);
    }
    tracing::info!(%direction, checkpoint = %resume.start, "resuming");
    let (tx, rx) = mpsc::channel(CHANNEL_EVENTS);
    let (ack_tx, ack_rx) = watch::channel(resume.start.clone());
    let source_token = shutdown.child_token();
    let mut source_task = tokio::spawn(tracing::Instrument::in_current_span(source.run(resume.start, tx, ack_rx, source_token.clone())));
    state.streaming(direction);

    let stage = EchoStage::new(side, reg.clone(), schemas);
    let mut applier = Bookkept::new(applier, side.other(), reg.clone(), stage.seen_now(), cfg.pairs.clone());
    let mut events = super::oneway::OneWay::new(stage.events(rx), direction, &cfg.pairs);
    let ack = move |pos: &SourcePos| {
        state.acknowledged(direction, pos);
        if S::ACK_IS_DURABLE {
            // The source will not stream again what is acknowledged: echoes up to here are past.
            if let Some(reg) = &reg {
                reg.echoes_passed(side, pos);
            }
        }
        ack_tx.send_if_modified(|cur| {
            let newer = pos.try_cmp(cur) == Some(std::cmp::Ordering::Greater);
            if newer {
                *cur = pos.clone();
            }
            newer
        });
    };
    let names: Vec<String> = cfg.pairs.iter().map(|p| p.name.clone()).collect();
    let batched = run_batcher(direction, &mut applier, &mut events, ack, &super::batch_settings(cfg), &names).await;
    source_token.cancel();
    let sourced = match tokio::time::timeout(SOURCE_STOP, &mut source_task).await {
        Ok(joined) => joined.map_err(|e| Error::Task(format!("{} source task: {e}", side.as_str())))?,
        Err(_) => {
            source_task.abort();
            tracing::warn!(%direction, "the source did not stop within {SOURCE_STOP:?}; abandoned its connection");
            Ok(())
        }
    };
    let stats = batched?;
    sourced?;
    Ok(stats)
}
