//! Where in the server's binlog files the applied position lies, for
//! `tandem_source_bytes_behind{direction="mysql_to_postgres"}`.
//!
//! A GTID position says which transactions were applied, not how many
//! bytes of binlog follow them. The stream knows both as it reads: each
//! position it delivers (a `Commit` or an `Idle`) is noted with the file
//! and offset after it (`delivered`); when the consumer acknowledges a
//! position ("committed up to X"), its file and offset become the applied
//! coordinate (`acknowledged`). Invariant: memory stays bounded (at most
//! `MAX_NOTED` noted positions; the oldest are dropped, which only delays
//! the coordinate until a later acknowledged position is found).

use crate::model::SourcePos;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

const MAX_NOTED: usize = 65_536;

/// A binlog file and the offset after an event in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinate {
    pub file: String,
    pub offset: u64,
}

/// Shared between a binlog stream (across its restarts) and the monitor.
#[derive(Debug, Default)]
pub struct BinlogCoordinates {
    delivered: Mutex<VecDeque<(SourcePos, Coordinate)>>,
    applied: Mutex<Option<Coordinate>>,
}

impl BinlogCoordinates {
    /// The stream delivered `pos`, which ends at `at`.
    pub fn delivered(&self, pos: &SourcePos, at: Coordinate) {
        let mut d = self.delivered.lock().unwrap_or_else(PoisonError::into_inner);
        if d.back().is_some_and(|(p, _)| p == pos) {
            return;
        }
        if d.len() >= MAX_NOTED {
            d.pop_front();
        }
        d.push_back((pos.clone(), at));
    }

    /// The consumer made everything up to `pos` durable.
    pub fn acknowledged(&self, pos: &SourcePos) {
        let mut d = self.delivered.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(i) = d.iter().rposition(|(p, _)| p == pos) else { return };
        let at = d[i].1.clone();
        d.drain(..=i);
        *self.applied.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    /// The file and offset of the last acknowledged position, once known.
    pub fn applied(&self) -> Option<Coordinate> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Bytes of binlog after `applied`, given the server's files and sizes in
/// order (`SHOW BINARY LOGS`); `None` when its file is no longer listed.
pub fn bytes_behind(files: &[(String, u64)], applied: &Coordinate) -> Option<u64> {
    let i = files.iter().position(|(name, _)| *name == applied.file)?;
    let rest: u64 = files[i + 1..].iter().map(|(_, size)| size).sum();
    Some(files[i].1.saturating_sub(applied.offset) + rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BinlogPos;

    fn pos(n: u64) -> SourcePos {
        SourcePos::Mysql(BinlogPos::File { file: "b.000001".into(), pos: n })
    }

    fn at(file: &str, offset: u64) -> Coordinate {
        Coordinate { file: file.into(), offset }
    }

    #[test]
    fn an_acknowledged_position_becomes_the_applied_coordinate_and_older_notes_are_dropped() {
        let c = BinlogCoordinates::default();
        c.delivered(&pos(1), at("b.000001", 100));
        c.delivered(&pos(2), at("b.000001", 250));
        c.delivered(&pos(3), at("b.000002", 40));
        assert_eq!(c.applied(), None);
        c.acknowledged(&pos(2));
        assert_eq!(c.applied(), Some(at("b.000001", 250)));
        c.acknowledged(&pos(1));
        assert_eq!(c.applied(), Some(at("b.000001", 250)), "an older note is gone; the coordinate does not move back");
        c.acknowledged(&pos(3));
        assert_eq!(c.applied(), Some(at("b.000002", 40)));
    }

    #[test]
    fn bytes_behind_counts_the_rest_of_the_applied_file_and_every_later_file() {
        let files = vec![("b.000001".to_string(), 1000), ("b.000002".to_string(), 500), ("b.000003".to_string(), 70)];
        assert_eq!(bytes_behind(&files, &at("b.000002", 400)), Some(170));
        assert_eq!(bytes_behind(&files, &at("b.000003", 70)), Some(0));
        assert_eq!(bytes_behind(&files, &at("b.000009", 1)), None, "a purged file");
    }
}
