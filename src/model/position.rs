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

impl BinlogPos {
    /// Does a stream that reached `self` include everything up to `target`?
    /// `None` when the two cannot be compared (other kinds of position, an
    /// unreadable GTID set). Unlike `try_cmp`, GTID positions need not be
    /// ordered: every domain (MariaDB) or every transaction (MySQL) of
    /// `target` must be in `self`.
    pub fn covers(&self, target: &BinlogPos) -> Option<bool> {
        match (self, target) {
            (BinlogPos::File { .. }, BinlogPos::File { .. }) => self.try_cmp(target).map(|o| o != Ordering::Less),
            (BinlogPos::MariaGtids(have), BinlogPos::MariaGtids(want)) => {
                Some(want.iter().all(|w| have.iter().any(|h| h.domain == w.domain && h.seq >= w.seq)))
            }
            (BinlogPos::MysqlGtidSet(have), BinlogPos::MysqlGtidSet(want)) => {
                let (have, want) = (gtid_intervals(have)?, gtid_intervals(want)?);
                Some(want.iter().all(|(sid, lo, hi)| covered(&have, sid, *lo, *hi)))
            }
            _ => None,
        }
    }
}

/// A MySQL GTID set's text (`uuid:1-5:7,uuid2:3`) as (source id, first, last)
/// intervals; `None` when it does not read as one.
fn gtid_intervals(text: &str) -> Option<Vec<(String, u64, u64)>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut fields = part.split(':');
        let sid = fields.next()?.trim().to_ascii_lowercase();
        for range in fields {
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                None => {
                    let n = range.trim().parse().ok()?;
                    (n, n)
                }
            };
            out.push((sid.clone(), lo, hi));
        }
    }
    Some(out)
}

/// Is [lo, hi] of `sid` inside the intervals of `have` (one, or adjacent ones together)?
fn covered(have: &[(String, u64, u64)], sid: &str, lo: u64, hi: u64) -> bool {
    let mut ranges: Vec<(u64, u64)> = have.iter().filter(|(s, ..)| s == sid).map(|(_, a, b)| (*a, *b)).collect();
    ranges.sort_unstable();
    let mut next = lo;
    for (a, b) in ranges {
        if a > next {
            break;
        }
        if b >= next {
            if b >= hi {
                return true;
            }
            next = b + 1;
        }
    }
    false
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

impl SourcePos {
    /// Does a stream that reached `self` include everything up to `target`?
    /// (`BinlogPos::covers`; `None` for positions of different sides.)
    pub fn covers(&self, target: &SourcePos) -> Option<bool> {
        match (self, target) {
            (SourcePos::Postgres(a), SourcePos::Postgres(b)) => Some(a >= b),
            (SourcePos::Mysql(a), SourcePos::Mysql(b)) => a.covers(b),
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

    #[test]
    fn a_position_covers_a_target_when_every_domain_or_transaction_of_it_is_in() {
        let p = |s: &str| s.parse::<BinlogPos>().unwrap();
        // MariaDB: per domain, whatever the server id; a domain missing from the stream is not covered.
        assert_eq!(p("mariadb-gtid:0-1-10,1-1-3").covers(&p("mariadb-gtid:0-7-10,1-1-2")), Some(true));
        assert_eq!(p("mariadb-gtid:0-1-10,1-1-3").covers(&p("mariadb-gtid:0-1-11")), Some(false));
        assert_eq!(p("mariadb-gtid:0-1-10").covers(&p("mariadb-gtid:0-1-9,2-1-1")), Some(false));
        assert_eq!(p("mariadb-gtid:0-1-10,2-1-1").covers(&p("mariadb-gtid:")), Some(true), "an empty binlog is covered");
        // Unordered for try_cmp, yet covered.
        assert_eq!(p("mariadb-gtid:0-1-10,1-1-2").try_cmp(&p("mariadb-gtid:0-1-9,1-1-5")), None);
        assert_eq!(p("mariadb-gtid:0-1-10,1-1-5").covers(&p("mariadb-gtid:0-1-9,1-1-5")), Some(true));
        // Files: by file number, then offset.
        assert_eq!(p("file:b.000002:4").covers(&p("file:b.000001:900")), Some(true));
        assert_eq!(p("file:b.000002:4").covers(&p("file:b.000002:5")), Some(false));
        // MySQL GTID sets: containment, also across adjacent intervals.
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let b = "4f22fa47-71ca-11e1-9e33-c80aa9429562";
        let set = |s: String| p(&format!("mysql-gtid:{s}"));
        assert_eq!(set(format!("{a}:1-10:12,{b}:1-3")).covers(&set(format!("{a}:1-9,{b}:2"))), Some(true));
        assert_eq!(set(format!("{a}:1-10")).covers(&set(format!("{a}:1-11"))), Some(false));
        assert_eq!(set(format!("{a}:1-5:6-10")).covers(&set(format!("{a}:3-8"))), Some(true));
        assert_eq!(set(format!("{a}:1-10")).covers(&set(format!("{b}:1"))), Some(false));
        assert_eq!(set(format!("{a}:x")).covers(&set(format!("{a}:1"))), None, "unreadable");
        assert_eq!(p("file:b.000002:4").covers(&p("mariadb-gtid:0-1-1")), None, "other kinds");
        assert_eq!(SourcePos::Postgres(Lsn(10)).covers(&SourcePos::Postgres(Lsn(10))), Some(true));
        assert_eq!(SourcePos::Postgres(Lsn(9)).covers(&SourcePos::Postgres(Lsn(10))), Some(false));
    }
}
