//! `tandem status`: where each direction stands, read from the databases —
//! so it works whether or not `tandem run` is running — plus the live
//! `/status` of a running service when `[metrics] listen` answers.
//!
//! Per direction: the checkpoint (in the destination's `checkpoints` table)
//! and its age (an approximate lag while changes flow), the source server's
//! current position (Postgres `pg_current_wal_lsn()` and the slot from
//! `pg_replication_slots`; MySQL/MariaDB GTID and binlog file position), open
//! conflicts (`resolved_at IS NULL`) and quarantined changes. It only reads.
//! One side being unreachable is reported and the other is still shown; any
//! database error is recorded in `StatusReport::errors` (the CLI then exits 2). No URL or password is ever printed:
//! endpoints are shown as `user@host:port/db` and error texts are stripped of
//! the configured passwords.

use crate::config::{Config, Direction};
use crate::model::{BinlogPos, Lsn};
use crate::service::StatusDoc;
use crate::state::mysql::{MyPipelineState, MyState};
use crate::state::postgres::{PgPipelineState, PgState};
use crate::state::{CheckpointRow, ParkedCount};
use crate::Result;
use crate::state::mysql::text_at as my_text;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one database may take to answer all of status's queries.
const DB_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the live endpoint may take.
const LIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StatusReport {
    pub pipeline: String,
    pub directions: Vec<DirectionReport>,
    pub postgres: ServerReport,
    pub mysql: ServerReport,
    /// The running service's `/status`, when `[metrics] listen` is set.
    pub live: Option<LiveReport>,
    /// Who holds the pipeline's HA lease (Postgres session), if anyone.
    pub lease_holder: Option<String>,
    /// Problems reading the databases; non-empty means exit code 2.
    pub errors: Vec<String>,
}

/// One direction, from its checkpoint row and the source server.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DirectionReport {
    /// `postgres_to_mysql` | `mysql_to_postgres`.
    pub direction: String,
    /// The database holding this direction's checkpoint, conflicts and quarantine.
    pub destination: String,
    /// The last committed source position (checkpoint), if any.
    pub checkpoint: Option<String>,
    /// When the checkpoint last moved (UTC).
    pub checkpoint_updated_at: Option<String>,
    /// Seconds since the checkpoint last moved: the lag while changes flow,
    /// the idle time when there are none.
    pub approx_lag_seconds: Option<f64>,
    /// The source server's current position.
    pub source_position: Option<String>,
    /// WAL bytes between what the slot confirmed (else the checkpoint) and the
    /// server's current LSN (postgres→mysql only).
    pub bytes_behind: Option<i64>,
    /// Conflicts recorded in the destination with `resolved_at IS NULL`.
    pub open_conflicts: Option<i64>,
    /// Rows of this direction in the `quarantine` tables.
    pub quarantined: Option<i64>,
    /// Pairs with changes parked because the pair is (or was) paused by a
    /// schema change at the source; applied when it resumes.
    pub parked: Vec<ParkedReport>,
}

/// Parked changes of one pair in one direction.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ParkedReport {
    pub pair: String,
    pub changes: i64,
    /// Why the pair was paused (names the column).
    pub reason: String,
}

/// What one server says about itself.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ServerReport {
    /// `user@host:port/db` (never a password).
    pub endpoint: String,
    pub reachable: bool,
    /// Postgres: `pg_current_wal_lsn()`; MySQL: the GTID position.
    pub position: Option<String>,
    /// MySQL: `file:offset` of the binary log.
    pub binlog_file_position: Option<String>,
    /// Postgres: the pipeline's replication slot.
    pub slot: Option<SlotReport>,
}

/// A row of `pg_replication_slots`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SlotReport {
    pub name: String,
    pub active: bool,
    pub confirmed_flush_lsn: Option<String>,
    pub restart_lsn: Option<String>,
    /// WAL the slot keeps on the server (current LSN − restart_lsn).
    pub retained_wal_bytes: Option<i64>,
}

/// The live service, if configured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LiveReport {
    pub address: String,
    /// The `/status` document, when the service answered.
    pub status: Option<StatusDoc>,
    pub error: Option<String>,
}

/// Strips the configured passwords from a text.
fn redact(cfg: &Config, text: String) -> String {
    [&cfg.postgres.endpoint.password, &cfg.mysql.endpoint.password]
        .into_iter()
        .flatten()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty())
        .fold(text, |t, s| t.replace(s, "***"))
}

fn direction_index(d: Direction) -> usize {
    match d {
        Direction::PostgresToMysql => 0,
        Direction::MysqlToPostgres => 1,
    }
}

/// Gathers the report; database problems are recorded in `errors`.
pub async fn status(cfg: &Config) -> StatusReport {
    let mut r = StatusReport {
        pipeline: cfg.pipeline.clone(),
        directions: crate::service::state::DIRECTIONS
            .iter()
            .map(|&d| DirectionReport {
                direction: d.key().to_string(),
                destination: d.source().other().as_str().to_string(),
                ..DirectionReport::default()
            })
            .collect(),
        postgres: ServerReport { endpoint: cfg.postgres.endpoint.describe(), ..ServerReport::default() },
        mysql: ServerReport { endpoint: cfg.mysql.endpoint.describe(), ..ServerReport::default() },
        ..StatusReport::default()
    };
    let mut quarantine: BTreeMap<String, i64> = BTreeMap::new();
    let (pg, my) = tokio::join!(
        tokio::time::timeout(DB_TIMEOUT, read_postgres(cfg)),
        tokio::time::timeout(DB_TIMEOUT, read_mysql(cfg)),
    );
    match pg {
        Ok(Ok(side)) => {
            r.postgres = ServerReport { reachable: true, ..side.server };
            r.postgres.endpoint = cfg.postgres.endpoint.describe();
            apply_side(&mut r.directions[direction_index(Direction::MysqlToPostgres)], side.checkpoint, side.open_conflicts);
            merge_counts(&mut quarantine, side.quarantine);
            add_parked(&mut r.directions, side.parked);
            r.lease_holder = side.lease_holder;
        }
        Ok(Err(e)) => r.errors.push(redact(cfg, format!("postgres {}: {e}", cfg.postgres.endpoint.describe()))),
        Err(_) => r.errors.push(format!("postgres {}: no answer within {DB_TIMEOUT:?}", cfg.postgres.endpoint.describe())),
    }
    match my {
        Ok(Ok(side)) => {
            r.mysql = ServerReport { reachable: true, ..side.server };
            r.mysql.endpoint = cfg.mysql.endpoint.describe();
            apply_side(&mut r.directions[direction_index(Direction::PostgresToMysql)], side.checkpoint, side.open_conflicts);
            merge_counts(&mut quarantine, side.quarantine);
            add_parked(&mut r.directions, side.parked);
        }
        Ok(Err(e)) => r.errors.push(redact(cfg, format!("mysql {}: {e}", cfg.mysql.endpoint.describe()))),
        Err(_) => r.errors.push(format!("mysql {}: no answer within {DB_TIMEOUT:?}", cfg.mysql.endpoint.describe())),
    }
    if r.postgres.reachable && r.mysql.reachable {
        for d in &mut r.directions {
            d.quarantined = Some(quarantine.get(&d.direction).copied().unwrap_or(0));
        }
    }
    let forward = &mut r.directions[direction_index(Direction::PostgresToMysql)];
    forward.source_position = r.postgres.position.clone();
    // Behind = WAL the slot has not had confirmed yet (idle acknowledgements
    // move the slot past the last checkpoint); the checkpoint when there is no slot.
    let confirmed = r.postgres.slot.as_ref().and_then(|s| s.confirmed_flush_lsn.clone()).or_else(|| forward.checkpoint.clone());
    if let (Some(now), Some(done)) = (r.postgres.position.as_deref(), confirmed.as_deref()) {
        if let (Ok(now), Ok(done)) = (now.parse::<Lsn>(), done.parse::<Lsn>()) {
            forward.bytes_behind = Some(now.0.saturating_sub(done.0) as i64);
        }
    }
    r.directions[direction_index(Direction::MysqlToPostgres)].source_position = r.mysql.position.clone();
    if let Some(addr) = cfg.metrics.listen {
        r.live = Some(live(addr).await);
    }
    r
}

fn apply_side(d: &mut DirectionReport, cp: Option<CheckpointRow>, open_conflicts: i64) {
    if let Some(cp) = cp {
        d.checkpoint = Some(cp.position);
        d.checkpoint_updated_at = cp.updated_at;
        d.approx_lag_seconds = cp.age_seconds.map(|a| a.max(0.0));
    }
    d.open_conflicts = Some(open_conflicts);
}

fn add_parked(directions: &mut [DirectionReport], parked: Vec<(String, ParkedReport)>) {
    for (direction, p) in parked {
        if let Some(d) = directions.iter_mut().find(|d| d.direction == direction) {
            d.parked.push(p);
        }
    }
}

/// A parked count as the report shows it: (direction, report).
fn parked_report(p: ParkedCount) -> (String, ParkedReport) {
    (p.direction, ParkedReport { pair: p.pair, changes: p.changes, reason: p.reason })
}

fn merge_counts(into: &mut BTreeMap<String, i64>, from: Vec<(String, i64)>) {
    for (k, n) in from {
        *into.entry(k).or_insert(0) += n;
    }
}

/// What one database holds for the report.
struct SideRead {
    server: ServerReport,
    checkpoint: Option<CheckpointRow>,
    open_conflicts: i64,
    /// Quarantined rows by direction.
    quarantine: Vec<(String, i64)>,
    /// Parked rows: (direction, report).
    parked: Vec<(String, ParkedReport)>,
    /// Postgres only: the HA lease holder.
    lease_holder: Option<String>,
}

async fn read_postgres(cfg: &Config) -> Result<SideRead> {
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let mut server = ServerReport::default();
    // Fails on a standby (no current WAL position there): then it stays unknown.
    if let Ok(row) = pg.query_one("SELECT pg_current_wal_lsn()::text", &[]).await {
        server.position = row.try_get::<_, Option<String>>(0).ok().flatten();
    }
    let slot_sql = "SELECT slot_name::text, active, confirmed_flush_lsn::text, restart_lsn::text,
                           CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END
                    FROM pg_replication_slots WHERE slot_name = $1";
    if let Some(row) = pg.query_opt(slot_sql, &[&cfg.postgres.slot]).await?.as_ref() {
        server.slot = Some(SlotReport {
            name: row.try_get(0)?,
            active: row.try_get(1)?,
            confirmed_flush_lsn: row.try_get(2)?,
            restart_lsn: row.try_get(3)?,
            retained_wal_bytes: row.try_get(4)?,
        });
    }
    let checkpoint = PgState::new(&cfg.state_schema, &cfg.pipeline, Direction::MysqlToPostgres).checkpoint_row(&pg).await?;
    let state = PgPipelineState::new(cfg);
    let open_conflicts = state.open_conflicts(&pg).await?;
    let quarantine = state.quarantined_by_direction(&pg).await?;
    let parked = state.parked_by_pair(&pg).await?.into_iter().map(parked_report).collect();
    let lease_holder = crate::run::lease::holder(&pg, crate::run::lease::lease_key(&cfg.pipeline)).await?;
    Ok(SideRead { server, checkpoint, open_conflicts, quarantine, parked, lease_holder })
}


async fn read_mysql(cfg: &Config) -> Result<SideRead> {
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let mut server = ServerReport::default();
    // MariaDB's GTID position, else MySQL's executed GTID set, written like checkpoints are.
    for (sql, prefix) in [("SELECT @@global.gtid_binlog_pos", "mariadb-gtid:"), ("SELECT @@global.gtid_executed", "mysql-gtid:")] {
        if let Ok(Some(row)) = my.query_first::<mysql_async::Row, _>(sql).await {
            let text: String = my_text(&row, 0).unwrap_or_default().split_whitespace().collect();
            if !text.is_empty() {
                let pos = format!("{prefix}{text}");
                server.position = Some(pos.parse::<BinlogPos>().map(|p| p.to_string()).unwrap_or(pos));
            }
            break;
        }
    }
    for sql in ["SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"] {
        if let Ok(Some(row)) = my.query_first::<mysql_async::Row, _>(sql).await {
            if let (Some(file), Some(pos)) = (my_text(&row, 0), my_text(&row, 1)) {
                server.binlog_file_position = Some(format!("file:{file}:{pos}"));
            }
            break;
        }
    }
    if server.position.is_none() {
        server.position = server.binlog_file_position.clone();
    }
    let checkpoint = MyState::new(&cfg.state_schema, &cfg.pipeline, Direction::PostgresToMysql).checkpoint_row(&mut my).await?;
    let state = MyPipelineState::new(cfg);
    let open_conflicts = state.open_conflicts(&mut my).await?;
    let quarantine = state.quarantined_by_direction(&mut my).await?;
    let parked = state.parked_by_pair(&mut my).await?.into_iter().map(parked_report).collect();
    let _ = my.disconnect().await;
    Ok(SideRead { server, checkpoint, open_conflicts, quarantine, parked, lease_holder: None })
}

/// Is the running service ready (`tandem status --check`)?
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "ready", content = "reason", rename_all = "snake_case")]
pub enum Readiness {
    /// `/health/ready` answered 200.
    Yes(String),
    /// It answered 503 (the reason names the direction), or nothing listens: `tandem run` is not running.
    No(String),
    /// No answer in time, no `[metrics] listen`, or an answer that is not the service's.
    Unknown(String),
}

/// Asks `/health/ready` of the running service.
pub async fn readiness(cfg: &Config) -> Readiness {
    let Some(listen) = cfg.metrics.listen else {
        return Readiness::Unknown("[metrics] listen is not set, so the running service cannot be asked".into());
    };
    let addr = loopback(listen);
    match crate::service::http::get(addr, "/health/ready", LIVE_TIMEOUT).await {
        Ok((200, body)) => Readiness::Yes(health_reason(&body).unwrap_or_else(|| "ready".into())),
        Ok((503, body)) => Readiness::No(health_reason(&body).unwrap_or_else(|| "not ready".into())),
        Ok((code, _)) => Readiness::Unknown(format!("{addr} /health/ready answered HTTP {code}: is it tandem?")),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Readiness::No(format!("nothing listens on {addr}: `tandem run` is not running")),
        Err(e) => Readiness::Unknown(format!("{addr} did not answer /health/ready: {e}")),
    }
}

/// The `reason` (or `status`) of a `/health` document.
fn health_reason(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["reason"].as_str().or(v["status"].as_str()).map(str::to_string)
}

/// A wildcard listen address is asked on loopback.
fn loopback(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    addr
}

/// `GET /status` of the running service (a wildcard listen address is asked on loopback).
async fn live(listen: std::net::SocketAddr) -> LiveReport {
    let addr = loopback(listen);
    let address = addr.to_string();
    match crate::service::http::get(addr, "/status", LIVE_TIMEOUT).await {
        Ok((200, body)) => match serde_json::from_str::<StatusDoc>(&body) {
            Ok(doc) => LiveReport { address, status: Some(doc), error: None },
            Err(e) => LiveReport { address, status: None, error: Some(format!("unexpected /status answer: {e}")) },
        },
        Ok((code, _)) => LiveReport { address, status: None, error: Some(format!("/status answered HTTP {code}")) },
        Err(e) => LiveReport { address, status: None, error: Some(format!("not answering ({e}); is `tandem run` running?")) },
    }
}

fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The report for a terminal.
pub fn render_text(r: &StatusReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "pipeline {}", r.pipeline);
    let live_doc = r.live.as_ref().and_then(|l| l.status.as_ref());
    match &r.live {
        None => {
            let _ = writeln!(o, "service   no [metrics] listen configured; showing the databases only");
        }
        Some(l) => match (&l.status, &l.error) {
            (Some(doc), _) => {
                let health = if doc.healthy { "healthy".to_string() } else { format!("unhealthy: {}", doc.reason.as_deref().unwrap_or("?")) };
                let _ = writeln!(o, "service   running at {}, {}, {health}", l.address, if doc.role.is_empty() { "?" } else { doc.role.as_str() });
            }
            (None, e) => {
                let _ = writeln!(o, "service   {}: {}", l.address, e.as_deref().unwrap_or("no answer"));
            }
        },
    }
    if r.postgres.reachable {
        let _ = writeln!(o, "lease     {}", r.lease_holder.as_deref().map(|h| format!("held by {h}")).unwrap_or_else(|| "not held (no instance running)".into()));
    }
    for d in &r.directions {
        let name = crate::service::state::DIRECTIONS.iter().find(|x| x.key() == d.direction).map(|x| x.as_str()).unwrap_or(&d.direction);
        let _ = writeln!(o, "\n{name}");
        let live_dir = live_doc.and_then(|doc| doc.directions.iter().find(|x| x.direction == d.direction));
        if let Some(l) = live_dir {
            let lag = l.lag_seconds.map(|s| format!(", lag {s:.1} s")).unwrap_or_default();
            let _ = writeln!(o, "  state            {}{lag}", l.state);
        }
        let age = d.approx_lag_seconds.map(|a| format!(" ({a:.1} s ago)")).unwrap_or_default();
        let _ = writeln!(o, "  checkpoint       {}  updated {}{age}  [in {}]", show(&d.checkpoint), show(&d.checkpoint_updated_at), d.destination);
        let behind = d.bytes_behind.map(|b| format!("  ({} of WAL not yet confirmed)", bytes(b))).unwrap_or_default();
        let _ = writeln!(o, "  source now       {}{behind}", show(&d.source_position));
        if d.direction == Direction::PostgresToMysql.key() {
            match &r.postgres.slot {
                Some(s) => {
                    let retained = s.retained_wal_bytes.map(|b| format!(", {} of WAL retained", bytes(b))).unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "  slot             {} {}, confirmed {}{retained}",
                        s.name,
                        if s.active { "active" } else { "inactive" },
                        show(&s.confirmed_flush_lsn)
                    );
                }
                None if r.postgres.reachable => {
                    let _ = writeln!(o, "  slot             missing (run `tandem init`)");
                }
                None => {}
            }
        } else if let Some(f) = &r.mysql.binlog_file_position {
            let _ = writeln!(o, "  binlog now       {f}");
        }
        if let Some(l) = live_dir {
            let _ = writeln!(
                o,
                "  since start      {} read, {} applied, {} echo-suppressed, {} quarantined",
                l.changes_read, l.applied, l.echo_suppressed, l.quarantined
            );
            if let Some(e) = &l.last_error {
                let _ = writeln!(o, "  last error       {} ({})", e.message, e.at);
            }
        }
        let _ = writeln!(o, "  open conflicts   {}", show(&d.open_conflicts));
        let _ = writeln!(o, "  quarantined      {}", show(&d.quarantined));
        for p in &d.parked {
            let _ = writeln!(o, "  PAUSED/parked    {}: {} changes waiting; {}", p.pair, p.changes, p.reason);
        }
    }
    if let Some(doc) = live_doc {
        if doc.conflicts_total > 0 {
            let by: Vec<String> = doc.conflicts_by_pair.iter().map(|(p, n)| format!("{p} {n}")).collect();
            let _ = writeln!(o, "\nconflicts decided since start: {} ({})", doc.conflicts_total, by.join(", "));
        }
    }
    for e in &r.errors {
        let _ = writeln!(o, "\nerror: {e}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_both_directions_and_what_could_not_be_read() {
        let r = StatusReport {
            pipeline: "crm".into(),
            directions: vec![
                DirectionReport {
                    direction: "postgres_to_mysql".into(),
                    destination: "mysql".into(),
                    checkpoint: Some("0/16B3748".into()),
                    approx_lag_seconds: Some(1.25),
                    bytes_behind: Some(2048),
                    ..Default::default()
                },
                DirectionReport { direction: "mysql_to_postgres".into(), destination: "postgres".into(), ..Default::default() },
            ],
            errors: vec!["mysql tandem@db:3306/app: connection refused".into()],
            ..Default::default()
        };
        let text = render_text(&r);
        assert!(text.contains("postgres→mysql\n  checkpoint       0/16B3748"), "{text}");
        assert!(text.contains("(1.2 s ago)") || text.contains("(1.3 s ago)"), "{text}");
        assert!(text.contains("2.0 KiB of WAL not yet confirmed"), "{text}");
        assert!(text.contains("mysql→postgres"), "{text}");
        assert!(text.contains("error: mysql tandem@db:3306/app: connection refused"), "{text}");
    }
}
