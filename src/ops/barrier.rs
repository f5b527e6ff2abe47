//! `tandem barrier`: waits until every transaction committed on either side
//! before the call has been applied on the other side — the cut-over point
//! of a migration (stop the writes on the old side, barrier, move the
//! applications).
//!
//! How: `targets` reads each source's current position at call time
//! (Postgres `pg_current_wal_insert_lsn()`, which no committed transaction's
//! commit record ends after; MariaDB `@@gtid_binlog_pos`, MySQL
//! `gtid_executed` or the binlog file position), then writes a barrier mark
//! at both sources (`crate::run::barrier`), so that each direction's
//! checkpoint moves past its target even when the last transactions before
//! it were tandem's own echoes. `wait` then polls the checkpoint each
//! destination holds until it covers the target (`SourcePos::covers`).
//!
//! Invariants: it reads positions and writes only its marks (a `signals`
//! row on each side); a checkpoint covers its target only after the
//! destination commit that contains everything before it (DESIGN §4), so
//! "reached" never comes early. Positions that cannot be compared (another
//! kind of position, another server's binlog) are an error, never a guess.

use crate::config::{Config, Direction};
use crate::model::{BinlogPos, Lsn, SourcePos};
use crate::run::barrier::{BarrierMark, KIND};
use crate::source::mysql::{MysqlSource, MysqlSourceOptions};
use crate::state::mysql::{MyPipelineState, MyState};
use crate::state::postgres::{PgPipelineState, PgState};
use crate::state::BackfillStatements;
use crate::tables::sides::{MySide, PgSide, TextQuery};
use crate::{Error, Result};
use std::time::{Duration, Instant};

/// How often the checkpoints are read.
const POLL: Duration = Duration::from_millis(200);

/// One direction's wait: the source position at call time and the checkpoint so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub direction: Direction,
    pub target: SourcePos,
    /// The destination's checkpoint at the last look (`None`: none yet).
    pub checkpoint: Option<SourcePos>,
    pub reached: bool,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (src, dst) = (self.direction.source(), self.direction.source().other());
        let cp = self.checkpoint.as_ref().map_or_else(|| "none".to_string(), |c| c.to_string());
        let state = if self.reached { "applied" } else { "waiting" };
        write!(f, "{}: {state}: {src} position {} on {dst} (checkpoint {cp})", self.direction, self.target)
    }
}

/// A barrier in progress.
pub struct Barrier {
    pub waits: Vec<Wait>,
    /// Who holds the pipeline lease at call time (`None`: no `tandem run`
    /// is active, so the barrier can be reached only once one runs).
    pub lease_holder: Option<String>,
    pg: PgSide,
    my: MySide,
}

/// Reads both sources' positions and writes the barrier marks.
pub async fn targets(cfg: &Config) -> Result<Barrier> {
    let mut pg = PgSide::connect(cfg).await?;
    let mut my = MySide::connect(cfg).await?;
    let lsn: String = pg.client.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await?.try_get(0)?;
    let pg_target = SourcePos::Postgres(lsn.parse::<Lsn>().map_err(|e| Error::Decode(format!("postgres pg_current_wal_insert_lsn(): {e}")))?);
    let mut source = MysqlSource::connect(&cfg.mysql.endpoint, MysqlSourceOptions::new(cfg.mysql.server_id), Vec::new()).await?;
    let my_target = SourcePos::Mysql(source.current_position().await?);
    drop(source);
    let key = crate::run::lease::lease_key(&cfg.pipeline);
    let lease_holder = crate::run::lease::holder(&pg.client, key).await?;
    let id = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let payload = BarrierMark::new(&cfg.pipeline, &id).to_json();
    let st = PgPipelineState::new(cfg).watermark(KIND, &payload);
    pg.rows(&st.sql, st.params).await?;
    let st = MyPipelineState::new(cfg).watermark(KIND, &payload);
    my.rows(&st.sql, st.params).await?;
    let waits = vec![
        Wait { direction: Direction::PostgresToMysql, target: pg_target, checkpoint: None, reached: false },
        Wait { direction: Direction::MysqlToPostgres, target: my_target, checkpoint: None, reached: false },
    ];
    Ok(Barrier { waits, lease_holder, pg, my })
}

/// The checkpoint of `direction` as its destination holds it.
async fn checkpoint(cfg: &Config, b: &mut Barrier, direction: Direction) -> Result<Option<SourcePos>> {
    let text = match direction {
        Direction::PostgresToMysql => MyState::new(&cfg.state_schema, &cfg.pipeline, direction).checkpoint(&mut b.my.conn).await?,
        Direction::MysqlToPostgres => PgState::new(&cfg.state_schema, &cfg.pipeline, direction).checkpoint_if_initialized(&b.pg.client).await?,
    };
    let Some(text) = text else { return Ok(None) };
    let parsed = match direction {
        Direction::PostgresToMysql => text.parse::<Lsn>().map(SourcePos::Postgres),
        Direction::MysqlToPostgres => text.parse::<BinlogPos>().map(SourcePos::Mysql),
    };
    parsed.map(Some).map_err(|e| Error::Checkpoint(format!("{direction} checkpoint of pipeline {}: {e}", cfg.pipeline)))
}

/// Reads both checkpoints once; `true` when both cover their targets.
pub async fn check(cfg: &Config, b: &mut Barrier) -> Result<bool> {
    for i in 0..b.waits.len() {
        if b.waits[i].reached {
            continue;
        }
        let direction = b.waits[i].direction;
        let cp = checkpoint(cfg, b, direction).await?;
        let w = &mut b.waits[i];
        w.reached = match &cp {
            None => false,
            Some(c) => c.covers(&w.target).ok_or_else(|| {
                Error::Checkpoint(format!(
                    "{direction} checkpoint {c} and the {} position {} do not compare (another kind of position, or another server?)",
                    direction.source(),
                    w.target
                ))
            })?,
        };
        w.checkpoint = cp;
    }
    Ok(b.waits.iter().all(|w| w.reached))
}

/// Polls until both checkpoints cover their targets (`true`) or `timeout`
/// passes (`false`).
pub async fn wait(cfg: &Config, b: &mut Barrier, timeout: Duration) -> Result<bool> {
    let t0 = Instant::now();
    loop {
        if check(cfg, b).await? {
            return Ok(true);
        }
        if t0.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(POLL.min(timeout.saturating_sub(t0.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_names_both_positions() {
        let w = Wait {
            direction: Direction::MysqlToPostgres,
            target: SourcePos::Mysql("mariadb-gtid:0-1-9".parse().expect("position")),
            checkpoint: None,
            reached: false,
        };
        assert_eq!(w.to_string(), "mysql→postgres: waiting: mysql position mariadb-gtid:0-1-9 on postgres (checkpoint none)");
    }
}
