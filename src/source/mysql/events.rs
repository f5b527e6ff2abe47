//! Raw parsers for the binlog events mysql_async does not decode, and the
//! classification of QUERY events.
//!
//! MariaDB's GTID (162), GTID_LIST (163) and BINLOG_CHECKPOINT (161) events are
//! unknown to mysql_common (`event_type()` errs, `read_data()` is `Ok(None)`),
//! so their bodies (`Event::data()`: after the 19-byte common header, checksum
//! already removed) are parsed here. Invariants: every parser is total — it
//! returns an `EventError` for short or inconsistent input and never panics or
//! allocates in proportion to an untrusted count before checking the length.

use crate::model::MariaGtid;

/// Binlog event type codes tandem dispatches on (MySQL and MariaDB).
pub mod code {
    pub const QUERY: u8 = 2;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const HEARTBEAT: u8 = 27;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const MYSQL_GTID: u8 = 33;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub const MYSQL_PREVIOUS_GTIDS: u8 = 35;
    pub const MYSQL_XA_PREPARE: u8 = 38;
    pub const MYSQL_PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const MYSQL_HEARTBEAT_V2: u8 = 41;
    pub const MYSQL_GTID_TAGGED: u8 = 42;
    pub const MARIA_ANNOTATE_ROWS: u8 = 160;
    pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIA_GTID: u8 = 162;
    pub const MARIA_GTID_LIST: u8 = 163;
    pub const MARIA_START_ENCRYPTION: u8 = 164;
    pub const MARIA_QUERY_COMPRESSED: u8 = 165;
    /// 166..=171: compressed rows events (`log_bin_compress=ON`).
    pub const MARIA_ROWS_COMPRESSED_FIRST: u8 = 166;
    pub const MARIA_ROWS_COMPRESSED_LAST: u8 = 171;
}

/// A raw event body that does not have the layout its type promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {event} event: {reason} ({len} bytes)")]
pub struct EventError {
    pub event: &'static str,
    pub reason: &'static str,
    pub len: usize,
}

fn err(event: &'static str, reason: &'static str, data: &[u8]) -> EventError {
    EventError { event, reason, len: data.len() }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// MariaDB GTID event flags (`flags2`).
pub mod gtid_flags {
    /// No BEGIN/COMMIT follows: a single statement (DDL or non-transactional).
    pub const STANDALONE: u8 = 0x01;
    pub const GROUP_COMMIT_ID: u8 = 0x02;
    pub const TRANSACTIONAL: u8 = 0x04;
    pub const DDL: u8 = 0x20;
    pub const PREPARED_XA: u8 = 0x40;
    pub const COMPLETED_XA: u8 = 0x80;
}

/// A MariaDB GTID event (type 162): opens an event group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtidEvent {
    pub seq: u64,
    pub domain: u32,
    pub flags: u8,
}

impl MariaGtidEvent {
    /// The GTID, given the server id from the event header.
    pub fn gtid(&self, server_id: u32) -> MariaGtid {
        MariaGtid { domain: self.domain, server: server_id, seq: self.seq }
    }
    pub fn standalone(&self) -> bool {
        self.flags & gtid_flags::STANDALONE != 0
    }
    /// Part of an XA transaction (prepare or commit/rollback of one).
    pub fn xa(&self) -> bool {
        self.flags & (gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA) != 0
    }
}

/// Body: seq_no u64 LE, domain_id u32 LE, flags2 u8, then optional parts
/// (commit id, XA xid, extra flags) that tandem does not need.
pub fn parse_maria_gtid(data: &[u8]) -> Result<MariaGtidEvent, EventError> {
    let seq = u64_at(data, 0).ok_or_else(|| err("GTID", "shorter than 13 bytes", data))?;
    let domain = u32_at(data, 8).ok_or_else(|| err("GTID", "shorter than 13 bytes", data))?;
    let flags = *data.get(12).ok_or_else(|| err("GTID", "shorter than 13 bytes", data))?;
    Ok(MariaGtidEvent { seq, domain, flags })
}

/// Body: count u32 LE (low 28 bits; the high 4 bits are flags), then `count`
/// entries of domain u32, server u32, seq u64 (all LE).
pub fn parse_maria_gtid_list(data: &[u8]) -> Result<Vec<MariaGtid>, EventError> {
    let raw = u32_at(data, 0).ok_or_else(|| err("GTID_LIST", "no count", data))?;
    let count = (raw & 0x0FFF_FFFF) as usize;
    let need = count.checked_mul(16).and_then(|n| n.checked_add(4));
    if need.map_or(true, |n| n > data.len()) {
        return Err(err("GTID_LIST", "count exceeds the event body", data));
    }
    let mut list = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * 16;
        let bad = || err("GTID_LIST", "truncated entry", data);
        let domain = u32_at(data, at).ok_or_else(bad)?;
        let server = u32_at(data, at + 4).ok_or_else(bad)?;
        let seq = u64_at(data, at + 8).ok_or_else(bad)?;
        list.push(MariaGtid { domain, server, seq });
    }
    Ok(list)
}

/// Body: name length u32 LE, then the binlog file name.
pub fn parse_binlog_checkpoint(data: &[u8]) -> Result<String, EventError> {
    let len = u32_at(data, 0).ok_or_else(|| err("BINLOG_CHECKPOINT", "no length", data))? as usize;
    let name = data
        .get(4..4usize.saturating_add(len))
        .ok_or_else(|| err("BINLOG_CHECKPOINT", "name longer than the body", data))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// The file name of a ROTATE event. The fake ROTATE that opens a dump arrives
/// before the FORMAT_DESCRIPTION, so mysql_common cannot know that it carries a
/// CRC32 and leaves the 4 checksum bytes glued to the name: strip them.
pub fn rotate_file_name(raw: &[u8], crc_glued: bool) -> Result<String, EventError> {
    let name = if crc_glued {
        raw.get(..raw.len().saturating_sub(4)).unwrap_or_default()
    } else {
        raw
    };
    if name.is_empty() {
        return Err(err("ROTATE", "empty file name", raw));
    }
    let name = std::str::from_utf8(name).map_err(|_| err("ROTATE", "file name is not UTF-8", raw))?;
    if name.chars().any(|c| c.is_control()) {
        return Err(err("ROTATE", "file name has control characters (checksum not stripped?)", raw));
    }
    Ok(name.to_string())
}

/// What a QUERY event means to the transaction state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT`, `ROLLBACK TO`, `RELEASE SAVEPOINT`: inside a transaction.
    Savepoint,
    /// `XA START/END/PREPARE/COMMIT/ROLLBACK`.
    Xa,
    /// A DML statement logged as text (statement-based binlog): its rows are
    /// not in the stream.
    Dml,
    /// Anything else: DDL and administrative statements.
    Ddl,
}

/// Classifies a QUERY event's text by its leading keywords.
pub fn classify_query(sql: &[u8]) -> QueryKind {
    let mut words = keywords(sql);
    let first = words.next().unwrap_or_default();
    match first.as_str() {
        "BEGIN" => QueryKind::Begin,
        "START" if words.next().as_deref() == Some("TRANSACTION") => QueryKind::Begin,
        "COMMIT" => QueryKind::Commit,
        "ROLLBACK" => match words.next().as_deref() {
            Some("TO") => QueryKind::Savepoint,
            _ => QueryKind::Rollback,
        },
        "SAVEPOINT" => QueryKind::Savepoint,
        "RELEASE" => QueryKind::Savepoint,
        "XA" => QueryKind::Xa,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" => QueryKind::Dml,
        _ => QueryKind::Ddl,
    }
}

/// `(db, table)` of a `TRUNCATE [TABLE] [db.]table` statement, with `default_db`
/// for an unqualified name; `None` for any other statement.
pub fn truncated_table(sql: &[u8], default_db: &str) -> Option<(String, String)> {
    let text = std::str::from_utf8(sql).ok()?;
    let mut words = text.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("TRUNCATE") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("TABLE") {
        name = words.next()?;
    }
    if words.next().is_some() {
        return None;
    }
    let name = name.trim_end_matches(';');
    let parts: Vec<String> = name.split('.').map(|p| p.trim_matches('`').to_string()).collect();
    match parts.as_slice() {
        [t] if !default_db.is_empty() => Some((default_db.to_string(), t.clone())),
        [d, t] => Some((d.clone(), t.clone())),
        _ => None,
    }
}

/// Upper-cased leading words of a statement, skipping whitespace and
/// `/* ... */` comments (but not `/*! ... */` executable comments' bodies).
fn keywords(sql: &[u8]) -> impl Iterator<Item = String> + '_ {
    let mut i = 0usize;
    std::iter::from_fn(move || {
        loop {
            while sql.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
                i += 1;
            }
            if sql.get(i..i + 2) == Some(b"/*") {
                if sql.get(i + 2) == Some(&b'!') {
                    // executable comment: its body is the statement
                    i += 3;
                    while sql.get(i).is_some_and(|b| b.is_ascii_digit()) {
                        i += 1;
                    }
                    continue;
                }
                match sql.get(i + 2..).and_then(|rest| rest.windows(2).position(|w| w == b"*/")) {
                    Some(end) => i += 2 + end + 2,
                    None => return None,
                }
                continue;
            }
            break;
        }
        let start = i;
        while sql.get(i).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
            i += 1;
        }
        if i == start {
            return None;
        }
        Some(String::from_utf8_lossy(&sql[start..i]).to_ascii_uppercase())
    })
}

/// Does `sql` (lower-cased) name `table` as a whole identifier?
pub fn mentions(sql: &str, table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
    sql.match_indices(&t).any(|(i, _)| !ident(sql[..i].chars().next_back()) && !ident(sql[i + t.len()..].chars().next()))
}

#[cfg(test)]
mod truncate_tests {
    use super::truncated_table;

    #[test]
    fn truncate_statements_name_their_table() {
        let t = |db: &str, tb: &str| Some((db.to_string(), tb.to_string()));
        assert_eq!(truncated_table(b"TRUNCATE accounts", "app"), t("app", "accounts"));
        assert_eq!(truncated_table(b"truncate table `x`.`y`", "app"), t("x", "y"));
        assert_eq!(truncated_table(b"TRUNCATE TABLE a WAIT 5", "app"), None);
        assert_eq!(truncated_table(b"DROP TABLE a", "app"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gtid_body(seq: u64, domain: u32, flags: u8) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&domain.to_le_bytes());
        b.push(flags);
        b.extend_from_slice(&[0u8; 6]); // padding to the 19-byte post-header
        b
    }

    #[test]
    fn maria_gtid_event_fields() {
        let ev = parse_maria_gtid(&gtid_body(0x0102_0304_0506_0708, 7, 0x0D)).unwrap();
        assert_eq!(ev, MariaGtidEvent { seq: 0x0102_0304_0506_0708, domain: 7, flags: 0x0D });
        assert!(ev.standalone());
        assert!(!ev.xa());
        assert_eq!(ev.gtid(42).to_string(), "7-42-72623859790382856");
        let txn = parse_maria_gtid(&gtid_body(5, 0, gtid_flags::TRANSACTIONAL)).unwrap();
        assert!(!txn.standalone());
        // Only the first 13 bytes are required.
        assert!(parse_maria_gtid(&gtid_body(1, 0, 0)[..13]).is_ok());
        assert!(parse_maria_gtid(&gtid_body(1, 0, 0)[..12]).is_err());
        assert!(parse_maria_gtid(&[]).is_err());
    }

    #[test]
    fn maria_gtid_list_entries() {
        let mut b = Vec::new();
        b.extend_from_slice(&(2u32 | 0x1000_0000).to_le_bytes()); // a flag in the high bits
        for (d, s, n) in [(0u32, 1u32, 100u64), (3, 9, u64::MAX)] {
            b.extend_from_slice(&d.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&n.to_le_bytes());
        }
        let list = parse_maria_gtid_list(&b).unwrap();
        assert_eq!(
            list,
            vec![
                MariaGtid { domain: 0, server: 1, seq: 100 },
                MariaGtid { domain: 3, server: 9, seq: u64::MAX }
            ]
        );
        assert_eq!(parse_maria_gtid_list(&0u32.to_le_bytes()).unwrap(), vec![]);
        assert!(parse_maria_gtid_list(&b[..b.len() - 1]).is_err(), "truncated");
        assert!(parse_maria_gtid_list(&0x0FFF_FFFFu32.to_le_bytes()).is_err(), "huge count");
    }

    #[test]
    fn binlog_checkpoint_name() {
        let mut b = 18u32.to_le_bytes().to_vec();
        b.extend_from_slice(b"mariadb-bin.000007");
        assert_eq!(parse_binlog_checkpoint(&b).unwrap(), "mariadb-bin.000007");
        assert!(parse_binlog_checkpoint(&b[..10]).is_err());
    }

    #[test]
    fn fake_rotate_name_loses_its_glued_crc() {
        let mut raw = b"mariadb-bin.000001".to_vec();
        raw.extend_from_slice(&[0x9c, 0x01, 0xfe, 0x12]);
        assert_eq!(rotate_file_name(&raw, true).unwrap(), "mariadb-bin.000001");
        assert_eq!(rotate_file_name(b"mariadb-bin.000002", false).unwrap(), "mariadb-bin.000002");
        assert!(rotate_file_name(&raw, false).is_err(), "control bytes left in the name");
        assert!(rotate_file_name(b"abc", true).is_err());
    }

    #[test]
    fn query_kinds() {
        use QueryKind::*;
        for (q, k) in [
            ("BEGIN", Begin),
            ("  begin", Begin),
            ("START TRANSACTION", Begin),
            ("COMMIT", Commit),
            ("ROLLBACK", Rollback),
            ("ROLLBACK TO `sp1`", Savepoint),
            ("SAVEPOINT `sp1`", Savepoint),
            ("RELEASE SAVEPOINT sp1", Savepoint),
            ("XA END X'31',X'',1", Xa),
            ("insert into t values (1)", Dml),
            ("/* tandem */ UPDATE t SET a=1", Dml),
            ("ALTER TABLE t ADD c int", Ddl),
            ("/*!40000 ALTER TABLE t DISABLE KEYS */", Ddl),
            ("/*!40101 INSERT INTO t VALUES (1) */", Dml),
            ("", Ddl),
            ("/* unterminated", Ddl),
        ] {
            assert_eq!(classify_query(q.as_bytes()), k, "{q}");
        }
    }

    use crate::source::{decoder_config, returns};

    proptest! {
        #![proptest_config(decoder_config(800))]
        #[test]
        fn raw_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 1..128)) {
            let _ = returns(|| crate::fuzzing::mariadb_event(&data))?;
        }
    }

    proptest! {
        #![proptest_config(decoder_config(200))]
        #[test]
        fn gtid_list_round_trips(entries in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u64>()), 0..20)) {
            let mut b = (entries.len() as u32).to_le_bytes().to_vec();
            for (d, s, n) in &entries {
                b.extend_from_slice(&d.to_le_bytes());
                b.extend_from_slice(&s.to_le_bytes());
                b.extend_from_slice(&n.to_le_bytes());
            }
            let list = parse_maria_gtid_list(&b).unwrap();
            let back: Vec<_> = list.iter().map(|g| (g.domain, g.server, g.seq)).collect();
            prop_assert_eq!(back, entries);
        }
    }
}
