//! MySQL GTID sets (`uuid:1-5:7,uuid2:1-9`) as the binlog source keeps them:
//! parsed from `@@gtid_executed` or a checkpoint, extended by each streamed
//! transaction's GTID, printed back in MySQL's canonical form.
//!
//! Invariant: intervals per source id are sorted, disjoint and non-adjacent
//! (merged), so the text form is canonical and comparable by equality.

use std::collections::BTreeMap;
use std::fmt;

/// Closed intervals of transaction numbers per source id (uuid, or `uuid:tag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sets: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// Parses MySQL's text form (whitespace and newlines allowed).
    pub fn parse(text: &str) -> Result<GtidSet, String> {
        let mut set = GtidSet::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let mut sid = fields.next().unwrap_or_default().trim().to_ascii_lowercase();
            if sid.len() != 36 || !sid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Err(format!("bad GTID source id in {part:?}"));
            }
            for f in fields {
                let f = f.trim();
                if f.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
                    // MySQL 8.4 tag: applies to the intervals that follow
                    sid = format!("{}:{f}", &sid[..36]);
                    continue;
                }
                let (a, b) = f.split_once('-').unwrap_or((f, f));
                let a: u64 = a.parse().map_err(|_| format!("bad GTID interval in {part:?}"))?;
                let b: u64 = b.parse().map_err(|_| format!("bad GTID interval in {part:?}"))?;
                if a == 0 || b < a {
                    return Err(format!("bad GTID interval in {part:?}"));
                }
                set.add_range(&sid, a, b);
            }
        }
        Ok(set)
    }

    /// Adds one transaction.
    pub fn add(&mut self, sid: &str, gno: u64) {
        self.add_range(sid, gno, gno);
    }

    fn add_range(&mut self, sid: &str, a: u64, b: u64) {
        let v = self.sets.entry(sid.to_string()).or_default();
        v.push((a, b));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(s, e) in v.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *v = merged;
    }

    /// `true` when the transaction is in the set.
    pub fn contains(&self, sid: &str, gno: u64) -> bool {
        self.sets.get(sid).is_some_and(|v| v.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    /// The set as `mysql_async` dump request entries.
    pub fn to_sids(&self) -> Result<Vec<mysql_async::Sid<'static>>, String> {
        self.to_string()
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<mysql_async::Sid<'static>>().map_err(|e| e.to_string()))
            .collect()
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (sid, ivs)) in self.sets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(sid)?;
            for &(a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// Hyphenated lower-case text of a 16-byte server uuid.
pub fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn parse_add_and_print() {
        let mut s = GtidSet::parse(&format!("{U2}:1-3,\n{U1}:1-5:7")).unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-5:7,{U2}:1-3"));
        s.add(U1, 6);
        assert_eq!(s.to_string(), format!("{U1}:1-7,{U2}:1-3"));
        s.add(U2, 10);
        assert!(s.contains(U2, 10) && !s.contains(U2, 9));
        assert_eq!(s.to_string(), format!("{U1}:1-7,{U2}:1-3:10"));
        assert_eq!(GtidSet::parse("").unwrap().to_string(), "");
        assert!(GtidSet::parse("nonsense:1").is_err());
        assert!(GtidSet::parse(&format!("{U1}:5-1")).is_err());
        assert_eq!(s.to_sids().unwrap().len(), 2);
    }

    #[test]
    fn uuid_bytes_to_text() {
        let b = [0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62];
        assert_eq!(uuid_text(&b), U1);
    }
}
