//! Where a binlog stream is, in the vocabulary of the position it started
//! from: a MariaDB GTID list, a MySQL GTID set, or a file and offset. The
//! streamer moves it only at transaction boundaries. Pure.

use super::gtid_set::GtidSet;
use crate::model::{BinlogPos, MariaGtid};
use std::collections::BTreeMap;

/// Where the stream is, in the vocabulary of its start position.
pub(super) enum Tracker {
    Maria(BTreeMap<u32, MariaGtid>),
    Mysql(GtidSet),
    File { file: String, pos: u64 },
}

impl Tracker {
    pub(super) fn position(&self) -> BinlogPos {
        match self {
            Tracker::Maria(m) => BinlogPos::MariaGtids(m.values().copied().collect()),
            Tracker::Mysql(s) => BinlogPos::MysqlGtidSet(s.to_string()),
            Tracker::File { file, pos } => BinlogPos::File { file: file.clone(), pos: *pos },
        }
    }
}

/// The GTID that names an event group.
#[derive(Debug, Clone)]
pub(super) enum TxnGtid {
    Maria(MariaGtid),
    Mysql { sid: String, gno: u64 },
}
