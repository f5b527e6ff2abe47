//! Typed source positions and their fallible ordering.
//!
//! A Postgres position is a WAL LSN; a MySQL/MariaDB position is a binlog
//! file+offset, a MariaDB GTID list or a MySQL GTID set. Positions of different
//! kinds (or GTID sets that are not ordered) do not compare: `try_cmp` returns
//! `None` instead of pretending both are integers. Checkpoints store positions
//! in their text form (`Display` / `FromStr` round-trip).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A Postgres WAL position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position {text:?}: {reason}")]
pub struct PositionParseError {
    pub text: String,
    pub reason: &'static str,
}

fn perr(text: &str, reason: &'static str) -> PositionParseError {
    PositionParseError { text: text.to_string(), reason }
}

impl FromStr for Lsn {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s.split_once('/').ok_or_else(|| perr(s, "expected HI/LO hex"))?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| perr(s, "bad high half"))?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| perr(s, "bad low half"))?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

/// One MariaDB GTID `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariaGtid {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.trim().splitn(3, '-');
        let mut next = || it.next().ok_or_else(|| perr(s, "expected domain-server-seq"));
        let domain = next()?.parse().map_err(|_| perr(s, "bad domain"))?;
        let server = next()?.parse().map_err(|_| perr(s, "bad server id"))?;
        let seq = next()?.parse().map_err(|_| perr(s, "bad sequence"))?;
        Ok(MariaGtid { domain, server, seq })
    }
}

/// A MySQL/MariaDB binlog position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinlogPos {
    /// `file:offset`, only meaningful on the server that wrote the file.
    File { file: String, pos: u64 },
    /// MariaDB GTID list, one entry per domain (`gtid_slave_pos` style), sorted by domain.
    MariaGtids(Vec<MariaGtid>),
    /// MySQL executed GTID set text (`uuid:1-5,uuid2:1-9`).
    MysqlGtidSet(String),
}

impl BinlogPos {
    /// Orders two positions when that is meaningful; `None` when it is not.
    pub fn try_cmp(&self, other: &BinlogPos) -> Option<Ordering> {
        match (self, other) {
            (BinlogPos::File { file: f1, pos: p1 }, BinlogPos::File { file: f2, pos: p2 }) => {
                Some(binlog_file_cmp(f1, f2).then(p1.cmp(p2)))
            }
            (BinlogPos::MariaGtids(a), BinlogPos::MariaGtids(b)) => {
                // Ordered only if every domain moves the same way.
                let mut result = Ordering::Equal;
                let domains: std::collections::BTreeSet<u32> =
                    a.iter().chain(b.iter()).map(|g| g.domain).collect();
                for d in domains {
                    let sa = a.iter().find(|g| g.domain == d).map(|g| g.seq).unwrap_or(0);
                    let sb = b.iter().find(|g| g.domain == d).map(|g| g.seq).unwrap_or(0);
                    match (result, sa.cmp(&sb)) {
                        (_, Ordering::Equal) => {}
                        (Ordering::Equal, o) => result = o,
                        (r, o) if r == o => {}
                        _ => return None,
                    }
                }
                Some(result)
            }
            (BinlogPos::MysqlGtidSet(a), BinlogPos::MysqlGtidSet(b)) if a == b => Some(Ordering::Equal),
            _ => None,
        }
    }
}

/// Binlog files are `base.NNNNNN`; compare the numeric suffix, then the name.
fn binlog_file_cmp(a: &str, b: &str) -> Ordering {
    let num = |s: &str| s.rsplit('.').next().and_then(|n| n.parse::<u64>().ok());
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinlogPos::File { file, pos } => write!(f, "file:{file}:{pos}"),
            BinlogPos::MariaGtids(list) => {
                f.write_str("mariadb-gtid:")?;
                for (i, g) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{g}")?;
                }
                Ok(())
            }
            BinlogPos::MysqlGtidSet(s) => write!(f, "mysql-gtid:{s}"),
        }
    }
}

impl FromStr for BinlogPos {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("file:") {
            let (file, pos) = rest.rsplit_once(':').ok_or_else(|| perr(s, "expected file:NAME:POS"))?;
            let pos = pos.parse().map_err(|_| perr(s, "bad offset"))?;
            return Ok(BinlogPos::File { file: file.to_string(), pos });
        }
        if let Some(rest) = s.strip_prefix("mariadb-gtid:") {
            let mut list = rest
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(MariaGtid::from_str)
                .collect::<Result<Vec<_>, _>>()?;
            list.sort_by_key(|g| g.domain);
            return Ok(BinlogPos::MariaGtids(list));
        }
        if let Some(rest) = s.strip_prefix("mysql-gtid:") {
            return Ok(BinlogPos::MysqlGtidSet(rest.to_string()));
        }
        Err(perr(s, "expected file:, mariadb-gtid: or mysql-gtid: prefix"))
    }
}

/// The position of a source transaction, whichever side it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePos {
    Postgres(Lsn),
    Mysql(BinlogPos),
}

impl SourcePos {
    pub fn try_cmp(&self, other: &SourcePos) -> Option<Ordering> {
        match (self, other) {
            (SourcePos::Postgres(a), SourcePos::Postgres(b)) => Some(a.cmp(b)),
            (SourcePos::Mysql(a), SourcePos::Mysql(b)) => a.try_cmp(b),
            _ => None,
        }
    }
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePos::Postgres(l) => write!(f, "{l}"),
            SourcePos::Mysql(p) => write!(f, "{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trip() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert!("nonsense".parse::<Lsn>().is_err());
    }

    #[test]
    fn binlog_positions_round_trip_and_compare() {
        let a: BinlogPos = "file:mariadb-bin.000002:400".parse().unwrap();
        let b: BinlogPos = "file:mariadb-bin.000010:4".parse().unwrap();
        assert_eq!(a.try_cmp(&b), Some(Ordering::Less));
        assert_eq!(a.to_string(), "file:mariadb-bin.000002:400");
        let g1: BinlogPos = "mariadb-gtid:0-1-5,1-1-7".parse().unwrap();
        let g2: BinlogPos = "mariadb-gtid:0-1-6,1-1-7".parse().unwrap();
        let g3: BinlogPos = "mariadb-gtid:0-1-4,1-1-9".parse().unwrap();
        assert_eq!(g1.try_cmp(&g2), Some(Ordering::Less));
        assert_eq!(g2.try_cmp(&g3), None, "domains moving in opposite directions are unordered");
        assert_eq!(a.try_cmp(&g1), None, "file positions and GTIDs do not compare");
        assert_eq!(g1.to_string().parse::<BinlogPos>().unwrap(), g1);
    }
}
