//! MySQL/MariaDB binlog source: a replica connection that turns ROW binlog
//! events into ordered `SourceEvent`s of normalized changes.
//!
//! `MysqlSource::connect` opens an ordinary session (server checks, column
//! metadata); `run` opens the dump connection and streams whole transactions:
//! `Begin`, `Changes` chunks of at most `chunk_rows`, `Commit` with the
//! position after the transaction — or one `Idle(position)` for a transaction
//! with nothing to replicate (unpaired tables, DDL, tandem's own echo).
//! Invariants: transactions are never interleaved or split across `Commit`s;
//! no transaction is buffered whole; a malformed event or value is an `Error`
//! with context, never a panic or a silently dropped row; positions only move at
//! transaction boundaries. Streaming from position P delivers the transactions
//! after P. A lost connection ends `run` with a transient error: the caller
//! restarts from its checkpoint (a half-sent transaction has no `Commit` and
//! must be discarded by the caller).
//!
//! Submodules: `events` (raw MariaDB events, QUERY classification), `columns`
//! (information_schema), `rows` (row images → `Value`), `rows_event` (one rows
//! event → `Change`s, pure), `control` (tandem's checkpoint and watermark
//! rows, pure), `gtid_set` (MySQL GTID sets), `position` (where the stream
//! is), `dump` (the dump connection), `stream` (the event state machine).

pub mod columns;
mod control;
pub mod coordinates;
mod dump;
pub mod events;
pub mod gtid_set;
mod position;
pub mod rows;
pub mod rows_event;
mod stream;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::config::Endpoint;
use crate::model::{BinlogPos, MariaGtid, SourceEvent, SourcePos};
use crate::schema::PairSchema;
use crate::{Error, Result};

/// Settings of the binlog reader.
#[derive(Debug, Clone)]
pub struct MysqlSourceOptions {
    /// Replica server id of the dump connection (unique among replicas).
    pub server_id: u32,
    /// Maximum changes per `SourceEvent::Changes` chunk.
    pub chunk_rows: usize,
    /// Echo tags: transactions whose events carry one of these server ids
    /// are tandem's own (`Origin::Tandem`).
    pub own_server_ids: Vec<u32>,
    /// Heartbeat period the server is asked for; idle streams still emit
    /// `Idle` (which proves the stream caught up).
    pub heartbeat: Duration,
    /// Silence on the dump connection past this (no event, no heartbeat)
    /// counts as a lost connection (`Error::Timeout`).
    pub read_timeout: Duration,
    /// tandem's state tables on this server, read from the stream: a
    /// transaction whose first row event touches the origin marker is
    /// tandem's own; the pipeline's `checkpoints` row in it names the
    /// position it applied; its rows inserted into `signals` are backfill
    /// watermarks.
    pub state: Option<StateTables>,
    /// Whether to deliver the rows of tandem's own transactions too.
    pub own_rows: crate::source::OwnRows,
    /// Where the delivered and acknowledged positions lie in the binlog files.
    pub coordinates: std::sync::Arc<coordinates::BinlogCoordinates>,
}

/// Where tandem's state tables live on the source server, and whose rows
/// in them this source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTables {
    pub db: String,
    pub pipeline: String,
}

impl MysqlSourceOptions {
    pub fn new(server_id: u32) -> Self {
        MysqlSourceOptions {
            server_id,
            chunk_rows: 1000,
            own_server_ids: Vec::new(),
            heartbeat: Duration::from_secs(1),
            read_timeout: Duration::from_secs(30),
            state: None,
            own_rows: crate::source::OwnRows::default(),
            coordinates: Default::default(),
        }
    }
}

/// Which server family is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    Mysql,
}

/// Identity of the binlog's server, stored with checkpoints so that a
/// checkpoint is never applied to another server's binlog.
/// Text form: `mariadb/server_id=1/gtid_domain=0` or
/// `mysql/server_id=1/server_uuid=3e11fa47-...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    pub flavor: Flavor,
    pub server_id: u32,
    /// MySQL `@@server_uuid`.
    pub server_uuid: Option<String>,
    /// MariaDB `@@gtid_domain_id`.
    pub gtid_domain: Option<u32>,
}

impl fmt::Display for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.flavor {
            Flavor::MariaDb => write!(f, "mariadb/server_id={}", self.server_id)?,
            Flavor::Mysql => write!(f, "mysql/server_id={}", self.server_id)?,
        }
        if let Some(u) = &self.server_uuid {
            write!(f, "/server_uuid={u}")?;
        }
        if let Some(d) = self.gtid_domain {
            write!(f, "/gtid_domain={d}")?;
        }
        Ok(())
    }
}

impl FromStr for ServerIdentity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid server identity {s:?}: {why}");
        let mut parts = s.split('/');
        let flavor = match parts.next() {
            Some("mariadb") => Flavor::MariaDb,
            Some("mysql") => Flavor::Mysql,
            _ => return Err(bad("expected mariadb/ or mysql/")),
        };
        let mut id = ServerIdentity { flavor, server_id: 0, server_uuid: None, gtid_domain: None };
        let mut have_id = false;
        for p in parts {
            match p.split_once('=') {
                Some(("server_id", v)) => {
                    id.server_id = v.parse().map_err(|_| bad("bad server_id"))?;
                    have_id = true;
                }
                Some(("server_uuid", v)) => id.server_uuid = Some(v.to_string()),
                Some(("gtid_domain", v)) => id.gtid_domain = Some(v.parse().map_err(|_| bad("bad gtid_domain"))?),
                _ => return Err(bad("unknown field")),
            }
        }
        if !have_id {
            return Err(bad("no server_id"));
        }
        Ok(id)
    }
}

/// A connected binlog source (not yet streaming).
pub struct MysqlSource {
    endpoint: Endpoint,
    opts: MysqlSourceOptions,
    pairs: Vec<PairSchema>,
    conn: mysql_async::Conn,
    flavor: Flavor,
}

impl MysqlSource {
    /// Opens a session, checks the binlog settings tandem needs
    /// (`log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL`).
    pub async fn connect(endpoint: &Endpoint, opts: MysqlSourceOptions, pairs: Vec<PairSchema>) -> Result<Self> {
        if opts.chunk_rows == 0 {
            return Err(Error::Setup("mysql source: chunk_rows must be at least 1".into()));
        }
        let mut conn = crate::db::connect_mysql(endpoint).await?;
        let row: Option<(String, i64, String, String)> = conn
            .query_first("SELECT VERSION(), @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image")
            .await?;
        let (version, log_bin, format, image) =
            row.ok_or_else(|| Error::Setup("mysql: server settings query returned no row".into()))?;
        let flavor = if version.to_ascii_lowercase().contains("mariadb") { Flavor::MariaDb } else { Flavor::Mysql };
        let mut problems = Vec::new();
        if log_bin != 1 {
            problems.push("binary logging is off (log_bin)".to_string());
        }
        if !format.eq_ignore_ascii_case("ROW") {
            problems.push(format!("binlog_format is {format}, tandem needs ROW"));
        }
        if !image.eq_ignore_ascii_case("FULL") {
            problems.push(format!("binlog_row_image is {image}, tandem needs FULL"));
        }
        if !problems.is_empty() {
            return Err(Error::Setup(format!("mysql {}: {}", endpoint.describe(), problems.join("; "))));
        }
        Ok(MysqlSource { endpoint: endpoint.clone(), opts, pairs, conn, flavor })
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The server's current position: MariaDB `@@gtid_binlog_pos`; MySQL
    /// `@@gtid_executed` when `gtid_mode=ON`, else `SHOW MASTER STATUS`.
    pub async fn current_position(&mut self) -> Result<BinlogPos> {
        match self.flavor {
            Flavor::MariaDb => {
                let pos: Option<String> = self.conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?;
                parse_maria_list(pos.as_deref().unwrap_or_default())
            }
            Flavor::Mysql => {
                let mode: Option<String> = self.conn.query_first("SELECT @@GLOBAL.gtid_mode").await?;
                if mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("ON")) {
                    let set: Option<String> = self.conn.query_first("SELECT @@GLOBAL.gtid_executed").await?;
                    let set = gtid_set::GtidSet::parse(set.as_deref().unwrap_or_default()).map_err(Error::Decode)?;
                    return Ok(BinlogPos::MysqlGtidSet(set.to_string()));
                }
                self.file_position().await
            }
        }
    }

    async fn file_position(&mut self) -> Result<BinlogPos> {
        let row: Option<mysql_async::Row> = match self.conn.query_first("SHOW MASTER STATUS").await {
            Ok(r) => r,
            Err(_) => self.conn.query_first("SHOW BINARY LOG STATUS").await?,
        };
        let row = row.ok_or_else(|| Error::Setup("mysql: SHOW MASTER STATUS is empty: binary logging is off".into()))?;
        let file: Option<String> = row.get(0);
        let pos: Option<u64> = row.get(1);
        match (file, pos) {
            (Some(file), Some(pos)) => Ok(BinlogPos::File { file, pos }),
            _ => Err(Error::Decode("mysql: unexpected SHOW MASTER STATUS row".into())),
        }
    }

    /// Server identity for the checkpoint guard.
    pub async fn server_identity(&mut self) -> Result<ServerIdentity> {
        let server_id: Option<u32> = self.conn.query_first("SELECT @@GLOBAL.server_id").await?;
        let server_id = server_id.ok_or_else(|| Error::Setup("mysql: no @@server_id".into()))?;
        match self.flavor {
            Flavor::MariaDb => {
                let domain: Option<u32> = self.conn.query_first("SELECT @@GLOBAL.gtid_domain_id").await?;
                Ok(ServerIdentity { flavor: self.flavor, server_id, server_uuid: None, gtid_domain: domain })
            }
            Flavor::Mysql => {
                let uuid: Option<String> = self.conn.query_first("SELECT @@GLOBAL.server_uuid").await?;
                Ok(ServerIdentity { flavor: self.flavor, server_id, server_uuid: uuid, gtid_domain: None })
            }
        }
    }

    /// Streams from `start` into `tx` until `shutdown` is cancelled (Ok) or
    /// the stream fails (Err; transient for connection loss).
    pub async fn run(
        self,
        start: BinlogPos,
        tx: tokio::sync::mpsc::Sender<SourceEvent>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<()> {
        let mut tables = HashMap::new();
        for p in &self.pairs {
            tables.insert((p.my_table.schema.clone(), p.my_table.name.clone()), p.clone());
        }
        let streamer = stream::Streamer::new(self.endpoint, self.opts, tables, self.conn, self.flavor, &start, tx, shutdown)?;
        streamer.run(start).await
    }
}

impl crate::source::Source for MysqlSource {
    /// Nothing is confirmed to a binlog server: the stream resumes from the checkpoint.
    const ACK_IS_DURABLE: bool = false;

    async fn resume(&mut self, checkpoint: Option<&SourcePos>, stored_identity: Option<&str>) -> Result<crate::source::Resume> {
        let identity = self.server_identity().await?;
        let start = match checkpoint {
            Some(SourcePos::Mysql(p)) => {
                check_identity(p, stored_identity, &identity)?;
                p.clone()
            }
            Some(other) => return Err(Error::Checkpoint(format!("{other} is not a binlog position"))),
            None => {
                let p = self.current_position().await?;
                tracing::warn!(position = %p, "no checkpoint (run `tandem init`); starting at the server's current position");
                p
            }
        };
        Ok(crate::source::Resume { start: SourcePos::Mysql(start), identity: Some(identity.to_string()) })
    }

    async fn run(
        self,
        start: SourcePos,
        out: tokio::sync::mpsc::Sender<SourceEvent>,
        mut acked: tokio::sync::watch::Receiver<SourcePos>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<()> {
        let SourcePos::Mysql(start) = start else {
            return Err(Error::Checkpoint(format!("{start} is not a binlog position")));
        };
        // Acknowledged positions locate the applied coordinate (nothing is confirmed to the server).
        let coordinates = std::sync::Arc::clone(&self.opts.coordinates);
        let watch_acks = async move {
            while acked.changed().await.is_ok() {
                let pos = acked.borrow_and_update().clone();
                coordinates.acknowledged(&pos);
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            r = MysqlSource::run(self, start, out, shutdown) => r,
            _ = watch_acks => Ok(()),
        }
    }
}

/// Refuses a file:position checkpoint taken on another server (after a
/// failover the same file name and offset mean something else).
pub fn check_identity(start: &BinlogPos, stored: Option<&str>, current: &ServerIdentity) -> Result<()> {
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

/// Parses `@@gtid_binlog_pos` text (`0-1-5,1-2-7`) into a sorted GTID list.
fn parse_maria_list(text: &str) -> Result<BinlogPos> {
    let mut list = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(MariaGtid::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Decode(e.to_string()))?;
    list.sort_by_key(|g| g.domain);
    Ok(BinlogPos::MariaGtids(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_identity_round_trips() {
        for id in [
            ServerIdentity { flavor: Flavor::MariaDb, server_id: 1, server_uuid: None, gtid_domain: Some(0) },
            ServerIdentity {
                flavor: Flavor::Mysql,
                server_id: 4001,
                server_uuid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562".into()),
                gtid_domain: None,
            },
        ] {
            let text = id.to_string();
            assert_eq!(text.parse::<ServerIdentity>().unwrap(), id, "{text}");
        }
        assert_eq!(
            ServerIdentity { flavor: Flavor::MariaDb, server_id: 7, server_uuid: None, gtid_domain: Some(2) }.to_string(),
            "mariadb/server_id=7/gtid_domain=2"
        );
        assert!("postgres/server_id=1".parse::<ServerIdentity>().is_err());
        assert!("mariadb/gtid_domain=1".parse::<ServerIdentity>().is_err());
    }

    #[test]
    fn gtid_binlog_pos_text() {
        assert_eq!(parse_maria_list("").unwrap(), BinlogPos::MariaGtids(vec![]));
        let p = parse_maria_list("1-2-7,0-1-5").unwrap();
        assert_eq!(p.to_string(), "mariadb-gtid:0-1-5,1-2-7");
        assert!(parse_maria_list("0-1").is_err());
    }
}
