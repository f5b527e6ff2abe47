//! The pipeline lease (DESIGN.md §7, HA): of several `tandem run` with the
//! same pipeline, only the holder of the lease streams and applies.
//!
//! The lease is a Postgres session advisory lock (`pg_try_advisory_lock` on
//! `lease_key(pipeline)`) held on a dedicated connection whose
//! `application_name` is `tandem <pipeline> <host>:<pid>`, so a standby can
//! name the holder (pg_locks + pg_stat_activity). TCP keepalives and
//! `tcp_user_timeout` on both ends of that connection make a dead peer
//! noticed within seconds: the server then ends the holder's session and
//! frees the lock; the holder sees its lease lost (`Lease::lost`) and must
//! stop applying at once.
//!
//! Fencing: losing the lock does not stop a stale holder's applier sessions
//! by itself. So each new holder increments an epoch in the `lease` state row
//! of both destinations (`bump_epochs`) before it streams, and every
//! checkpoint write of an applier is conditional on its destination's epoch
//! being the one its holder got (read with a share lock inside the batch
//! transaction): a stale batch either commits before the bump (the bump
//! waits for its share lock, and the new holder reads the checkpoint after
//! it) or is refused with `Error::Fenced`. Nothing here ever applies rows.

use crate::config::Config;
use crate::state::mysql::MyPipelineState;
use crate::state::postgres::PgPipelineState;
use crate::{Error, Result};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a standby tries to take the lease.
pub const POLL: Duration = Duration::from_secs(2);
/// How often the holder checks its lease connection, and how long an answer may take.
const PING_EVERY: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key of a pipeline: FNV-1a (64 bit) of `tandem:<pipeline>`,
/// the same in every tandem build and on every host.
pub fn lease_key(pipeline: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "tandem:".bytes().chain(pipeline.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// `tandem <pipeline> <host>:<pid>`: the lease connection's application_name.
pub fn holder_name(pipeline: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("tandem {pipeline} {host}:{}", std::process::id())
}

/// The destinations' lease epochs this holder got; checkpoint writes are
/// conditional on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    /// Of the Postgres state row (fences the mysql→postgres applier).
    pub postgres: i64,
    /// Of the MySQL state row (fences the postgres→mysql applier).
    pub mysql: i64,
}

/// A held lease. Dropping it closes the lease connection, which frees the lock.
pub struct Lease {
    client: std::sync::Arc<tokio_postgres::Client>,
    lost: CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
    pub epochs: Epochs,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Lease {
    /// Resolves when the lease connection failed or stopped answering: the
    /// lock may be someone else's by now.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }

    /// Frees the lock at once (clean shutdown); the connection closes with it.
    pub async fn release(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.batch_execute("SELECT pg_advisory_unlock_all()")).await;
    }
}

/// Opens the lease connection: keepalives both ways, `application_name` naming this process.
async fn connect(cfg: &Config) -> Result<(tokio_postgres::Client, CancellationToken)> {
    let name = holder_name(&cfg.pipeline);
    let (client, closed) = crate::db::connect_pg_tuned(&cfg.postgres.endpoint, |pc| {
        pc.application_name(&name)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
    })
    .await?;
    // The server side notices a dead holder as fast (it frees the lock then).
    client
        .batch_execute("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000")
        .await?;
    Ok((client, closed))
}

/// Who holds the lease of `key` in the current database, for the standby's log.
pub async fn holder(client: &tokio_postgres::Client, key: i64) -> Result<Option<String>> {
    let hi = (key as u64 >> 32) as i64;
    let lo = (key as u64 & 0xffff_ffff) as i64;
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), a.client_addr::text
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::int8 = $1 AND l.objid::int8 = $2
             LIMIT 1",
            &[&hi, &lo],
        )
        .await?;
    Ok(row.map(|r| {
        let pid: Option<i32> = r.get(0);
        let app: String = r.get(1);
        let addr: Option<String> = r.get(2);
        let who = if app.is_empty() { "an unnamed session".to_string() } else { format!("\"{app}\"") };
        let from = addr.map(|a| format!(" from {a}")).unwrap_or_else(|| " (local socket)".into());
        format!("{who}, backend pid {}{from}", pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()))
    }))
}

/// Increments both destinations' lease epochs (creating the rows and tables
/// if needed) and returns them. Waits for a stale holder's batch commit that
/// holds the epoch row (its share lock), so that commit is visible to the
/// checkpoint reads that follow.
pub async fn bump_epochs(cfg: &Config, holder: &str) -> Result<Epochs> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let postgres = PgPipelineState::new(cfg).bump_lease_epoch(&pg, holder).await?;
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let mysql = MyPipelineState::new(cfg).bump_lease_epoch(&mut my, holder).await?;
    let _ = my.disconnect().await;
    let mysql = mysql.ok_or_else(|| Error::Lease("the MySQL lease row vanished".into()))?;
    Ok(Epochs { postgres, mysql })
}

/// Waits until this process holds the pipeline lease, then fences the
/// previous holder (`bump_epochs`). `None` when `shutdown` is cancelled first.
/// While waiting, logs (and reports) who holds it. Connection problems are
/// retried every `POLL`; only a definite error (e.g. no privilege) ends it.
pub async fn acquire(cfg: &Config, shutdown: &CancellationToken) -> Result<Option<Lease>> {
    let key = lease_key(&cfg.pipeline);
    let me = holder_name(&cfg.pipeline);
    let state = crate::service::state::global();
    let mut conn: Option<(tokio_postgres::Client, CancellationToken)> = None;
    let mut last_holder: Option<String> = None;
    loop {
        let attempt: Result<bool> = async {
            if conn.as_ref().map_or(true, |(c, closed)| closed.is_cancelled() || c.is_closed()) {
                conn = Some(connect(cfg).await?);
            }
            let Some((client, _)) = conn.as_ref() else { return Ok(false) };
            let got: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await?.get(0);
            if got {
                return Ok(true);
            }
            let who = holder(client, key).await?.unwrap_or_else(|| "(released meanwhile)".into());
            if last_holder.as_deref() != Some(who.as_str()) {
                tracing::info!(pipeline = %cfg.pipeline, holder = %who, "standby: waiting for the lease held by {who}");
                last_holder = Some(who.clone());
            }
            state.standby(Some(who));
            Ok(false)
        }
        .await;
        match attempt {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) if e.classify() == crate::error::ErrorClass::Transient => {
                tracing::warn!(error = %e, "lease: cannot reach Postgres; retrying");
                conn = None;
                state.lease_unknown(format!("cannot ask Postgres for the pipeline lease: {e}"));
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    let Some((client, closed)) = conn else { return Err(Error::Lease("lease connection missing".into())) };
    let epochs = loop {
        match bump_epochs(cfg, &me).await {
            Ok(e) => break e,
            Err(e) if e.classify() == crate::error::ErrorClass::Transient && !closed.is_cancelled() => {
                tracing::warn!(error = %e, "lease: cannot fence the previous holder yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            Err(e) => return Err(e),
        }
    };
    tracing::info!(pipeline = %cfg.pipeline, holder = %me, postgres_epoch = epochs.postgres, mysql_epoch = epochs.mysql, "active: holding the pipeline lease");
    let lost = CancellationToken::new();
    let client = std::sync::Arc::new(client);
    let watcher = tokio::spawn(watch(std::sync::Arc::clone(&client), closed, lost.clone()));
    Ok(Some(Lease { client, lost, watcher, epochs }))
}

/// Cancels `lost` when the lease connection ends or a ping fails or times out.
async fn watch(client: std::sync::Arc<tokio_postgres::Client>, closed: CancellationToken, lost: CancellationToken) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = closed.cancelled() => break,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease connection failed");
                break;
            }
            Err(_) => {
                tracing::warn!("lease connection did not answer within {PING_TIMEOUT:?}");
                break;
            }
        }
    }
    lost.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_and_differs_by_pipeline() {
        assert_eq!(lease_key("crm"), lease_key("crm"));
        assert_ne!(lease_key("crm"), lease_key("crm2"));
        // Pinned: every build and host must compute the same key.
        assert_eq!(lease_key(""), 0xed12_89be_e735_8250_u64 as i64, "{:x}", lease_key(""));
    }

    #[test]
    fn the_holder_name_says_pipeline_host_and_pid() {
        let n = holder_name("crm");
        assert!(n.starts_with("tandem crm ") && n.ends_with(&format!(":{}", std::process::id())), "{n}");
    }
}
