//! The dump connection of the binlog source: a replica session that asks
//! the server for its binlog from a position, with the heartbeat period and
//! checksum setting the streamer relies on.

use super::gtid_set::GtidSet;
use super::{Flavor, MysqlSourceOptions};
use crate::config::Endpoint;
use crate::model::BinlogPos;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;

/// An open dump connection and what the streamer needs to know of it.
pub(super) struct Dump {
    pub stream: mysql_async::BinlogStream,
    /// Events end in a CRC32 (`binlog_checksum` is not NONE).
    pub crc_on: bool,
    /// The file the stream starts in, when it starts by file name.
    pub file: Option<String>,
}

/// Opens the dump connection from `start`: MariaDB by GTID list (with the
/// capability that makes it send its GTID events as such) or file:offset,
/// MySQL by GTID set or file:offset.
pub(super) async fn open(endpoint: &Endpoint, opts: &MysqlSourceOptions, flavor: Flavor, start: &BinlogPos) -> Result<Dump> {
        let mut conn = crate::db::open_mysql(endpoint, false).await?;
        let checksum: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_checksum").await?;
        let crc_on = checksum.as_deref().is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        let heartbeat_ns = opts.heartbeat.as_nanos().clamp(1_000_000, 4_294_967_000_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}")).await?;
        let server_id = opts.server_id;
        match (flavor, start) {
            (Flavor::MariaDb, BinlogPos::MariaGtids(list)) => {
                let state = list.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",");
                conn.query_drop("SET @mariadb_slave_capability = 4").await?;
                conn.exec_drop("SET @slave_connect_state = ?", (state,)).await?;
                conn.query_drop("SET @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0").await?;
                let req = BinlogStreamRequest::new(server_id).with_filename(b"").with_pos(4u64);
                Ok(Dump { stream: conn.get_binlog_stream(req).await?, crc_on, file: None })
            }
            (Flavor::MariaDb, BinlogPos::File { file, pos }) => {
                conn.query_drop("SET @mariadb_slave_capability = 4").await?;
                let req = BinlogStreamRequest::new(server_id).with_filename(file.as_bytes()).with_pos(*pos);
                Ok(Dump { stream: conn.get_binlog_stream(req).await?, crc_on, file: Some(file.clone()) })
            }
            (Flavor::Mysql, BinlogPos::MysqlGtidSet(text)) => {
                let sids = GtidSet::parse(text).and_then(|s| s.to_sids()).map_err(Error::Decode)?;
                let req = BinlogStreamRequest::new(server_id).with_gtid().with_gtid_set(sids).with_filename(b"").with_pos(4u64);
                Ok(Dump { stream: conn.get_binlog_stream(req).await?, crc_on, file: None })
            }
            (Flavor::Mysql, BinlogPos::File { file, pos }) => {
                let req = BinlogStreamRequest::new(server_id).with_filename(file.as_bytes()).with_pos(*pos);
                Ok(Dump { stream: conn.get_binlog_stream(req).await?, crc_on, file: Some(file.clone()) })
            }
            (flavor, other) => Err(Error::Checkpoint(format!("start position {other} does not fit a {flavor:?} server"))),
        }
    }
