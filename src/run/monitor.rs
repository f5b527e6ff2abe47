//! The monitor of a running pipeline: every `EVERY`, on connections of its
//! own, the gauges an operator alerts on that only the servers know —
//! `tandem_source_bytes_behind` (Postgres: current WAL position − the slot's
//! confirmed position; MySQL: binlog end − the applied coordinate),
//! `tandem_slot_retained_wal_bytes`, and the current sizes of the
//! quarantine, the parked changes and the open conflicts, per pair (0 for
//! a pair with none, so a series exists from the first scrape after a
//! restart).
//!
//! Invariants: it only reads; nothing it does can stop or slow
//! replication (each round is bounded by `ROUND`, an error is logged at
//! debug and the connections are opened again next round); it ends when
//! its token is cancelled or its task aborted.

use crate::config::{Config, Direction};
use crate::metrics as m;
use crate::service::state::DIRECTIONS;
use crate::source::mysql::coordinates::{bytes_behind, BinlogCoordinates};
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::Result;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(5);
const ROUND: Duration = Duration::from_secs(10);

/// The binlog coordinates of this process's mysql→postgres stream (one
/// pipeline per process), shared by the stream across its restarts.
pub fn binlog_coordinates() -> Arc<BinlogCoordinates> {
    static C: OnceLock<Arc<BinlogCoordinates>> = OnceLock::new();
    Arc::clone(C.get_or_init(Default::default))
}

#[derive(Default)]
struct Conns {
    pg: Option<tokio_postgres::Client>,
    my: Option<mysql_async::Conn>,
}

/// Runs rounds until `stop` is cancelled.
pub async fn run(cfg: Config, stop: CancellationToken) {
    let mut conns = Conns::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(ROUND, round(&cfg, &mut conns)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "monitor round failed; reconnecting next round");
                conns = Conns::default();
            }
            Err(_) => {
                tracing::debug!("monitor round took longer than {ROUND:?}; reconnecting next round");
                conns = Conns::default();
            }
        }
    }
    if let Some(my) = conns.my.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), my.disconnect()).await;
    }
}

async fn round(cfg: &Config, conns: &mut Conns) -> Result<()> {
    if conns.pg.is_none() {
        conns.pg = Some(crate::db::connect_pg(&cfg.postgres.endpoint).await?);
    }
    if conns.my.is_none() {
        conns.my = Some(crate::db::connect_mysql(&cfg.mysql.endpoint).await?);
    }
    let (Some(pg), Some(my)) = (conns.pg.as_ref(), conns.my.as_mut()) else { return Ok(()) };

    let slot_sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
                           pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
                    FROM pg_replication_slots WHERE slot_name = $1";
    if let Some(row) = pg.query_opt(slot_sql, &[&cfg.postgres.slot]).await? {
        if let Some(behind) = row.try_get::<_, Option<i64>>(0)? {
            metrics::gauge!(m::SOURCE_BYTES_BEHIND, "direction" => Direction::PostgresToMysql.key()).set(behind.max(0) as f64);
        }
        if let Some(retained) = row.try_get::<_, Option<i64>>(1)? {
            metrics::gauge!(m::SLOT_RETAINED_WAL).set(retained.max(0) as f64);
        }
    }
    if let Some(applied) = binlog_coordinates().applied() {
        let rows: Vec<mysql_async::Row> = my.query("SHOW BINARY LOGS").await?;
        let files: Vec<(String, u64)> = rows.iter().filter_map(|r| Some((r.get_opt::<String, _>(0)?.ok()?, r.get_opt::<u64, _>(1)?.ok()?))).collect();
        if let Some(behind) = bytes_behind(&files, &applied) {
            metrics::gauge!(m::SOURCE_BYTES_BEHIND, "direction" => Direction::MysqlToPostgres.key()).set(behind as f64);
        }
    }

    let (pg_state, my_state) = (PgPipelineState::new(cfg), MyPipelineState::new(cfg));
    let mut quarantine: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut parked: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut conflicts: BTreeMap<String, i64> = BTreeMap::new();
    for p in &cfg.pairs {
        conflicts.insert(p.name.clone(), 0);
        for d in DIRECTIONS {
            quarantine.insert((d.key().to_string(), p.name.clone()), 0);
            parked.insert((d.key().to_string(), p.name.clone()), 0);
        }
    }
    let mut q = pg_state.quarantined_by_pair(pg).await?;
    q.extend(my_state.quarantined_by_pair(my).await?);
    for (direction, pair, n) in q {
        *quarantine.entry((direction, pair)).or_default() += n;
    }
    let mut k = pg_state.parked_by_pair(pg).await?;
    k.extend(my_state.parked_by_pair(my).await?);
    for c in k {
        *parked.entry((c.direction, c.pair)).or_default() += c.changes;
    }
    let mut o = pg_state.open_conflicts_by_pair(pg).await?;
    o.extend(my_state.open_conflicts_by_pair(my).await?);
    for (pair, n) in o {
        *conflicts.entry(pair).or_default() += n;
    }
    for ((direction, pair), n) in quarantine {
        metrics::gauge!(m::QUARANTINE_ROWS, "direction" => direction, "pair" => pair).set(n as f64);
    }
    for ((direction, pair), n) in parked {
        metrics::gauge!(m::PARKED_ROWS, "direction" => direction, "pair" => pair).set(n as f64);
    }
    for (pair, n) in conflicts {
        metrics::gauge!(m::CONFLICTS_OPEN, "pair" => pair).set(n as f64);
    }
    Ok(())
}
