//! The canonical column value shared by both sources and both appliers.
//!
//! Every value read from pgoutput text or a binlog row image is turned into one
//! `Value` variant at the source edge; appliers render a `Value` into their own
//! SQL dialect. Invariants: `Decimal` keeps the exact decimal text (never an f64);
//! `Timestamp` is microseconds since the Unix epoch in UTC (naive timestamps are
//! read as UTC wall-clock); `Unchanged` is a Postgres TOAST value that was not
//! sent and must never be written as NULL; `Unrepresentable` is a source value
//! with no canonical form (a MySQL zero date, a Postgres `infinity`, text that
//! is not valid in its charset): it carries the value as the source shows it,
//! and a change holding one is quarantined (or stops the pipeline) by the
//! applier — it is never written, altered or compared equal to a real value.

use std::fmt;

/// One column value in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// Exact decimal text, e.g. `-12.50`; never converted through a float.
    Decimal(String),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01 (proleptic Gregorian).
    Date(i32),
    /// Microseconds since midnight (MySQL TIME may be negative or exceed 24h).
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    Timestamp(i64),
    /// JSON document text.
    Json(String),
    /// A Postgres TOAST value that was not sent: keep the destination's value.
    Unchanged,
    /// A source value the model cannot hold (boxed: rare, and keeps `Value` small).
    Unrepresentable(Box<Unrepresentable>),
}

/// Why a source value has no canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnrepresentableKind {
    /// MySQL `0000-00-00` or a partial zero date (`2022-11-00`), in DATE,
    /// DATETIME or TIMESTAMP; the pair's `zero_dates` decides what happens.
    ZeroDate,
    /// Postgres `infinity` / `-infinity` dates and timestamps.
    Infinite,
    /// Bytes that are not valid in the column's character set.
    BadEncoding,
    /// A Postgres array with no MySQL SET form (a NULL, empty or
    /// comma-holding member, several dimensions).
    NotASet,
}

impl UnrepresentableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnrepresentableKind::ZeroDate => "zero_date",
            UnrepresentableKind::Infinite => "infinite",
            UnrepresentableKind::BadEncoding => "bad_encoding",
            UnrepresentableKind::NotASet => "not_a_set",
        }
    }

    pub fn parse_name(s: &str) -> Option<Self> {
        [UnrepresentableKind::ZeroDate, UnrepresentableKind::Infinite, UnrepresentableKind::BadEncoding, UnrepresentableKind::NotASet]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A source value with no canonical form, kept as the source shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unrepresentable {
    pub kind: UnrepresentableKind,
    /// The value as the source database prints it, e.g. `0000-00-00`.
    pub text: String,
    /// Why it cannot be replicated, e.g. `MySQL zero date`.
    pub reason: String,
}

impl Value {
    /// A marker for a source value with no canonical form.
    pub fn unrepresentable(kind: UnrepresentableKind, text: impl Into<String>, reason: impl Into<String>) -> Value {
        Value::Unrepresentable(Box::new(Unrepresentable { kind, text: text.into(), reason: reason.into() }))
    }

    /// The marker, if this is one.
    pub fn as_unrepresentable(&self) -> Option<&Unrepresentable> {
        match self {
            Value::Unrepresentable(u) => Some(u),
            _ => None,
        }
    }
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Approximate heap + inline size, used to bound batch memory.
    pub fn weight(&self) -> usize {
        32 + match self {
            Value::Decimal(s) | Value::Text(s) | Value::Json(s) => s.len(),
            Value::Bytes(b) => b.len(),
            _ => 0,
        }
    }
}

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

/// `YYYY-MM-DD` for days since the epoch.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    if y < 0 {
        format!("-{:04}-{:02}-{:02}", -y, m, d)
    } else {
        format!("{:04}-{:02}-{:02}", y, m, d)
    }
}

/// `[-]HH:MM:SS[.ffffff]` for microseconds since midnight.
pub fn format_time(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    let frac = m % 1_000_000;
    let (h, mi, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if frac == 0 {
        format!("{sign}{h:02}:{mi:02}:{s:02}")
    } else {
        format!("{sign}{h:02}:{mi:02}:{s:02}.{frac:06}")
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) for microseconds since the epoch.
pub fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    format!("{} {}", format_date(days as i32), format_time(rem))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Error for a value text that does not parse as its declared type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot parse {what} from {text:?}")]
pub struct ParseValueError {
    pub what: &'static str,
    pub text: String,
}

fn bad(what: &'static str, text: &str) -> ParseValueError {
    ParseValueError { what, text: text.chars().take(64).collect() }
}

impl From<ParseValueError> for crate::Error {
    fn from(e: ParseValueError) -> Self {
        crate::Error::Decode(e.to_string())
    }
}

/// Parses `YYYY-MM-DD` (an optional ` BC` suffix as Postgres prints it).
pub fn parse_date(text: &str) -> Result<i32, ParseValueError> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let mut it = body.splitn(3, '-');
    let y: i64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("date", text))?;
    let m: u32 = it.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("date", text))?;
    let d: u32 = it.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("date", text))?;
    // Postgres dates end in 5874897 AD; the bound keeps the day arithmetic in range.
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(-10_000_000..=10_000_000).contains(&y) {
        return Err(bad("date", text));
    }
    let y = if bc { 1 - y } else { y };
    let days = days_from_civil(y, m, d);
    i32::try_from(days).map_err(|_| bad("date", text))
}

/// Parses `[-]HH:MM:SS[.f{1,6}]` into microseconds.
pub fn parse_time(text: &str) -> Result<i64, ParseValueError> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (hms, frac) = match body.split_once('.') {
        Some((a, b)) => (a, b),
        None => (body, ""),
    };
    let mut it = hms.splitn(3, ':');
    let h: i64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("time", text))?;
    let m: i64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("time", text))?;
    let s: i64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("time", text))?;
    if h < 0 || !(0..=59).contains(&m) || !(0..=60).contains(&s) || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("time", text));
    }
    let mut f: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad("time", text))? };
    for _ in frac.len()..6 {
        f *= 10;
    }
    let v = h
        .checked_mul(3_600 * MICROS_PER_SEC)
        .and_then(|hv| hv.checked_add((m * 60 + s) * MICROS_PER_SEC + f))
        .ok_or_else(|| bad("time", text))?;
    Ok(if neg { -v } else { v })
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]]` (also with `T`) into UTC µs.
/// Without an offset the text is read as UTC.
pub fn parse_timestamp(text: &str) -> Result<i64, ParseValueError> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let sep = body.find([' ', 'T']).ok_or_else(|| bad("timestamp", text))?;
    let (date, rest) = (&body[..sep], &body[sep + 1..]);
    // Offset starts at the first '+' or '-' after the time part.
    let (time, offset) = match rest.find(['+', '-']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest.trim_end_matches('Z'), None),
    };
    let date_text = if bc { format!("{date} BC") } else { date.to_string() };
    let days = parse_date(&date_text).map_err(|_| bad("timestamp", text))? as i64;
    let t = parse_time(time).map_err(|_| bad("timestamp", text))?;
    let overflow = || bad("timestamp", text);
    let mut micros = days.checked_mul(MICROS_PER_DAY).and_then(|x| x.checked_add(t)).ok_or_else(overflow)?;
    if let Some(off) = offset {
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let mut parts = off[1..].split(':');
        let oh: i64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("timestamp", text))?;
        let om: i64 = parts.next().map(|s| s.parse().map_err(|_| bad("timestamp", text))).transpose()?.unwrap_or(0);
        let os: i64 = parts.next().map(|s| s.parse().map_err(|_| bad("timestamp", text))).transpose()?.unwrap_or(0);
        if !(0..=99).contains(&oh) || !(0..=59).contains(&om) || !(0..=59).contains(&os) {
            return Err(overflow());
        }
        micros = micros.checked_sub(sign * ((oh * 60 + om) * 60 + os) * MICROS_PER_SEC).ok_or_else(overflow)?;
    }
    Ok(micros)
}

impl fmt::Display for Value {
    /// A human-readable rendering for logs, conflict records and reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Decimal(s) | Value::Text(s) | Value::Json(s) => f.write_str(s),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bytes(b) => {
                f.write_str("\\x")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Time(t) => f.write_str(&format_time(*t)),
            Value::Timestamp(t) => f.write_str(&format_timestamp(*t)),
            Value::Unchanged => f.write_str("<unchanged>"),
            Value::Unrepresentable(u) => f.write_str(&u.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_round_trip_known_values() {
        assert_eq!(parse_date("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date("2000-03-01").unwrap(), 11017);
        assert_eq!(format_date(parse_date("0001-01-01").unwrap()), "0001-01-01");
        assert_eq!(format_date(parse_date("9999-12-31").unwrap()), "9999-12-31");
        assert!(parse_date("2022-13-01").is_err());
        assert!(parse_date("garbage").is_err());
    }

    #[test]
    fn timestamps_with_offsets_become_utc() {
        let utc = parse_timestamp("2024-05-06 07:08:09.123456").unwrap();
        assert_eq!(parse_timestamp("2024-05-06 12:38:09.123456+05:30").unwrap(), utc);
        assert_eq!(parse_timestamp("2024-05-06 02:08:09.123456-05").unwrap(), utc);
        assert_eq!(format_timestamp(utc), "2024-05-06 07:08:09.123456");
        assert_eq!(format_timestamp(parse_timestamp("1969-12-31 23:59:59.5").unwrap()), "1969-12-31 23:59:59.500000");
    }

    #[test]
    fn times_keep_microseconds_and_sign() {
        assert_eq!(parse_time("00:00:00.000001").unwrap(), 1);
        assert_eq!(format_time(parse_time("-838:59:59").unwrap()), "-838:59:59");
        assert_eq!(format_time(parse_time("24:00:00").unwrap()), "24:00:00");
    }

    #[test]
    fn time_with_negative_or_huge_parts_is_an_error_not_an_overflow() {
        // Found by `cargo fuzz run pg_values`: this overflowed the µs arithmetic.
        assert!(parse_time("6:27:-39999999999933376").is_err());
        assert!(parse_time("99999999999:00:00").is_err());
        assert!(parse_time("1:-5:00").is_err());
        assert!(parse_time("-1:00:00").is_ok(), "a leading sign is still allowed");
        // Also found by the fuzzer: a huge year overflowed the day arithmetic.
        assert!(parse_date("5555555522222222222-7-7").is_err());
        assert!(parse_timestamp("200000-01-01 00:00:00").is_ok());
        assert!(parse_timestamp("5874897-12-31 23:59:59").is_err(), "a date Postgres holds, beyond timestamps");
        assert!(parse_timestamp("2000000000-01-01 00:00:00").is_err());
        assert!(parse_timestamp("2024-01-01 00:00:00+99999999999999").is_err());
    }

    proptest! {
        #[test]
        fn date_round_trip(days in -719_162i32..2_932_896) {
            prop_assert_eq!(parse_date(&format_date(days)).unwrap(), days);
        }

        #[test]
        fn timestamp_round_trip(us in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            prop_assert_eq!(parse_timestamp(&format_timestamp(us)).unwrap(), us);
        }

        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_date(&s);
            let _ = parse_time(&s);
            let _ = parse_timestamp(&s);
        }
    }
}
