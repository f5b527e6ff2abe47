//! Telling replication lag from drift: positions of both servers, and
//! waiting until the running pipeline has applied everything up to them (the
//! check rereads differing rows after it; backfill waits for it before its
//! first chunk). It only reads.
//!
//! - postgres→mysql has caught up with a Postgres WAL position `P` when the
//!   checkpoint tandem commits in MySQL `tandem.checkpoints`, or the slot's
//!   `confirmed_flush_lsn` (acknowledged only after the MySQL commit, and
//!   moved on by keepalives when nothing is pending), is at or past `P`.
//!   `P` is the WAL *insert* position, never `pg_current_wal_lsn()`: that is
//!   the write position, and with `synchronous_commit = off` a transaction
//!   is visible to readers before its commit record is written (for up to
//!   about 3 × `wal_writer_delay`), so a target taken from it can precede
//!   changes the check has already read. Logical decoding streams only
//!   flushed WAL, so when the insert position is not reached (a tail of
//!   non-commit records may stay unwritten while Postgres is idle), the
//!   forward direction has also caught up once it has applied everything
//!   flushed at a moment at least `3 × wal_writer_delay` after `P` was read:
//!   every commit before `P` has been flushed by then.
//! - mysql→postgres has caught up with a binlog position `B` when the
//!   checkpoint in Postgres `tandem.checkpoints` is at or past `B`. That
//!   checkpoint only moves with applied transactions, while the binlog also
//!   holds transactions tandem drops (its own echoes, other tables); so it is
//!   also caught up once every binlog dump thread reports having sent all of
//!   the binlog and the checkpoint then stays put for a settle period.
//! - The pipeline runs when the replication slot is active (one `tandem run`
//!   process holds both directions). When it does not run, nothing moves.

use super::sides::{MySide, PgSide};
use crate::config::{Config, Direction};
use crate::model::{BinlogPos, Lsn};
use crate::state::mysql::MyState;
use crate::state::postgres::PgState;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// Slack on top of 3 × `wal_writer_delay` for a WAL writer slowed by load.
const ASYNC_FLUSH_MARGIN: Duration = Duration::from_millis(500);

/// Positions of both servers at one moment.
#[derive(Debug, Clone)]
pub struct Positions {
    /// The WAL insert position: at or past the end of every commit visible then.
    pub pg: Lsn,
    /// When `pg` was read, and how long asynchronous commits may then stay
    /// unflushed (3 × `wal_writer_delay`, plus a margin).
    pub read_at: Instant,
    pub async_flush: Duration,
    /// In the form of the stored mysql→postgres checkpoint; `None` when there is none.
    pub binlog: Option<BinlogPos>,
}

/// How waiting for the pipeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    CaughtUp,
    /// The slot is not active: `tandem run` is not running.
    NotRunning,
    TimedOut,
}

/// Reads positions and checkpoints of one pipeline.
pub struct LagProbe {
    slot: String,
    /// Where each direction's checkpoint is stored.
    pg_state: PgState,
    my_state: MyState,
    settle: Duration,
}

fn lsn(text: &str) -> Result<Lsn> {
    text.parse().map_err(|e| Error::Decode(format!("{e}")))
}

impl LagProbe {
    pub fn new(cfg: &Config) -> LagProbe {
        LagProbe {
            slot: cfg.postgres.slot.clone(),
            pg_state: PgState::new(&cfg.state_schema, &cfg.pipeline, Direction::MysqlToPostgres),
            my_state: MyState::new(&cfg.state_schema, &cfg.pipeline, Direction::PostgresToMysql),
            settle: cfg.apply.max_batch_delay + Duration::from_millis(500),
        }
    }

    /// The mysql→postgres checkpoint text stored in Postgres.
    async fn pg_checkpoint(&self, pg: &PgSide) -> Result<Option<String>> {
        self.pg_state.checkpoint_if_initialized(&pg.client).await
    }

    /// The postgres→mysql checkpoint stored in MySQL.
    async fn my_checkpoint(&self, my: &mut MySide) -> Result<Option<Lsn>> {
        self.my_state.checkpoint_if_initialized(&mut my.conn).await?.as_deref().map(lsn).transpose()
    }

    /// `(active, confirmed_flush_lsn)` of the slot; `None` when it does not exist.
    async fn slot(&self, pg: &PgSide) -> Result<Option<(bool, Option<Lsn>)>> {
        let row = pg
            .client
            .query_opt("SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&self.slot])
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let confirmed: Option<String> = r.get(1);
                Ok(Some((r.get(0), confirmed.as_deref().map(lsn).transpose()?)))
            }
        }
    }

    /// Is `tandem run` connected (the slot is active)?
    pub async fn running(&self, pg: &PgSide) -> Result<bool> {
        Ok(self.slot(pg).await?.is_some_and(|(active, _)| active))
    }

    /// The MySQL server's position in the form of `like`.
    async fn binlog_position(my: &mut MySide, like: &BinlogPos) -> Result<BinlogPos> {
        match like {
            BinlogPos::MariaGtids(_) => {
                let pos: Option<String> = my.conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?;
                format!("mariadb-gtid:{}", pos.unwrap_or_default()).parse().map_err(|e| Error::Decode(format!("{e}")))
            }
            BinlogPos::MysqlGtidSet(_) => {
                let set: Option<String> = my.conn.query_first("SELECT @@GLOBAL.gtid_executed").await?;
                Ok(BinlogPos::MysqlGtidSet(set.unwrap_or_default().replace('\n', "")))
            }
            BinlogPos::File { .. } => {
                let row: Option<mysql_async::Row> = match my.conn.query_first("SHOW MASTER STATUS").await {
                    Ok(r) => r,
                    Err(_) => my.conn.query_first("SHOW BINARY LOG STATUS").await?,
                };
                let row = row.ok_or_else(|| Error::Setup("mysql: SHOW MASTER STATUS is empty".into()))?;
                match (row.get::<String, _>(0), row.get::<u64, _>(1)) {
                    (Some(file), Some(pos)) => Ok(BinlogPos::File { file, pos }),
                    _ => Err(Error::Decode("mysql: unexpected SHOW MASTER STATUS row".into())),
                }
            }
        }
    }

    /// Both servers' current positions, read after the rows they must cover.
    pub async fn positions(&self, pg: &PgSide, my: &mut MySide) -> Result<Positions> {
        let row = pg
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text, (SELECT setting FROM pg_settings WHERE name = 'wal_writer_delay')", &[])
            .await?;
        let read_at = Instant::now();
        let wal: String = row.get(0);
        let delay: Option<String> = row.get(1);
        let delay_ms = delay.as_deref().and_then(|d| d.parse::<u64>().ok()).unwrap_or(200);
        let stored = self.pg_checkpoint(pg).await?;
        let binlog = match stored.as_deref().map(str::parse::<BinlogPos>) {
            Some(Ok(like)) => Some(Self::binlog_position(my, &like).await?),
            _ => None,
        };
        Ok(Positions { pg: lsn(&wal)?, read_at, async_flush: Duration::from_millis(delay_ms.saturating_mul(3)) + ASYNC_FLUSH_MARGIN, binlog })
    }

    async fn mysql_applied(my: &mut MySide, target: &Option<BinlogPos>, stored: Option<&str>) -> Result<bool> {
        let (Some(target), Some(stored)) = (target, stored) else { return Ok(false) };
        let Ok(stored) = stored.parse::<BinlogPos>() else { return Ok(false) };
        if let (BinlogPos::MysqlGtidSet(t), BinlogPos::MysqlGtidSet(s)) = (target, &stored) {
            let subset: Option<i64> = my.conn.exec_first("SELECT GTID_SUBSET(?, ?)", (t, s)).await?;
            return Ok(subset == Some(1));
        }
        Ok(matches!(stored.try_cmp(target), Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)))
    }

    /// Have all binlog dump threads sent everything? `false` when none is visible.
    async fn binlog_sent(my: &mut MySide) -> Result<bool> {
        let row: Option<(i64, Option<i64>)> = my
            .conn
            .query_first(
                "SELECT COUNT(*), SUM(STATE LIKE '%has sent all binlog%') FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
            )
            .await?;
        Ok(matches!(row, Some((n, Some(idle))) if n > 0 && idle == n))
    }

    /// Has postgres→mysql applied all WAL flushed now, late enough that every
    /// commit before `p.pg` is flushed (see module doc)?
    async fn flushed_applied(&self, pg: &PgSide, p: &Positions, applied: Option<Lsn>) -> Result<bool> {
        let Some(applied) = applied else { return Ok(false) };
        if p.read_at.elapsed() < p.async_flush {
            return Ok(false);
        }
        let flushed: String = pg.client.query_one("SELECT pg_current_wal_flush_lsn()::text", &[]).await?.get(0);
        Ok(applied >= lsn(&flushed)?)
    }

    /// Waits until both directions have applied everything up to `p`.
    pub async fn wait(&self, pg: &PgSide, my: &mut MySide, p: &Positions, deadline: Instant) -> Result<CatchUp> {
        let mut quiet_since: Option<(Instant, Option<String>)> = None;
        loop {
            let Some((true, confirmed)) = self.slot(pg).await? else { return Ok(CatchUp::NotRunning) };
            let applied = self.my_checkpoint(my).await?.max(confirmed);
            let forward = applied.is_some_and(|l| l >= p.pg) || self.flushed_applied(pg, p, applied).await?;
            let stored = self.pg_checkpoint(pg).await?;
            let mut backward = Self::mysql_applied(my, &p.binlog, stored.as_deref()).await?;
            if !backward && Self::binlog_sent(my).await? {
                match &quiet_since {
                    Some((since, seen)) if *seen == stored => backward = since.elapsed() >= self.settle,
                    _ => quiet_since = Some((Instant::now(), stored)),
                }
            } else {
                quiet_since = None;
            }
            if forward && backward {
                return Ok(CatchUp::CaughtUp);
            }
            if Instant::now() >= deadline {
                tracing::debug!(forward, backward, "pipeline did not catch up before the deadline");
                return Ok(CatchUp::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
