//! Binlog row images → canonical `Value`s in a pair's column order.
//!
//! mysql_common decodes each cell into a `BinlogValue` using only what the
//! binlog says (type codes, no signedness, no charset, ENUM as an index); the
//! `Codec` from information_schema (`columns.rs`) gives it its meaning here.
//! Invariants: DECIMAL stays exact text (never through a float); timestamps are
//! UTC µs; text is decoded by the column's charset. Values with no canonical
//! form — MySQL zero dates (`0000-00-00`, `2022-11-00`, zero DATETIME and
//! TIMESTAMP) and text whose bytes are invalid in its charset — become
//! `Value::Unrepresentable` carrying the value as MySQL shows it (the applier
//! quarantines the change, or writes NULL for zero dates when the pair says
//! `zero_dates = "null"`), never a made-up date and never a decode error that
//! stops the direction; a row image lacking a mapped,
//! non-generated column (binlog_row_image=MINIMAL) is an error naming the table.
//! Choices: `tinyint(1)` stays `Int` (it can hold -128..127; the applier turns
//! it into a boolean by destination type); unsigned integers narrower than
//! BIGINT are `Int`, BIGINT UNSIGNED is `UInt`; latin1 is decoded as MySQL's
//! cp1252; ENUM/SET become their label text; YEAR is `Int`; BIT is big-endian
//! `Bytes`; a generated column missing from the image is `Unchanged`.

use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value as MyValue;

use super::columns::{Charset, Codec, SourceColumn, TableColumns};
use crate::model::value::{days_from_civil, UnrepresentableKind};
use crate::model::{Row, Value};
use crate::schema::PairSchema;
use crate::{Error, Result};

const MICROS: i64 = 1_000_000;

/// Decodes rows of one MySQL table into rows of one pair.
#[derive(Debug, Clone)]
pub struct TableDecoder {
    pub pair: usize,
    pub pair_name: String,
    pub db: String,
    pub table: String,
    /// Binlog column `i` (ordinal `i + 1`).
    pub columns: Vec<SourceColumn>,
    /// Binlog column `i` → index in the pair's columns (`None`: not replicated).
    slots: Vec<Option<usize>>,
    /// Pair column `j` is generated on the MySQL side.
    generated: Vec<bool>,
    /// Names of pair columns, for errors.
    pair_columns: Vec<String>,
    pub key: Vec<usize>,
    /// MySQL columns the pair does not map (for the once-per-version warning).
    pub unmapped: Vec<String>,
    /// Pair column `j` cannot be read from this table version.
    missing: Vec<bool>,
    /// Why the pair is paused (a mapped column missing or retyped), if it is.
    pub paused: Option<String>,
}

impl TableDecoder {
    /// Maps the table's columns onto the pair. A pair column missing in MySQL,
    /// or now of an unsupported or different kind of type, pauses the pair
    /// (`paused` names it); its rows still decode, the missing column as
    /// `Value::Unchanged`.
    pub fn new(pair: &PairSchema, table: &TableColumns) -> Result<TableDecoder> {
        let mut slots = vec![None; table.columns.len()];
        let mut generated = vec![false; pair.columns.len()];
        let mut unmapped = Vec::new();
        let mut problems = Vec::new();
        for (i, col) in table.columns.iter().enumerate() {
            match pair.my_index(&col.name) {
                Some(j) => {
                    let was = &pair.columns[j].my_type;
                    if col.column_type != *was && crate::schema::my_kind(&col.column_type) != crate::schema::my_kind(was) {
                        problems.push(format!(
                            "column {} of mysql table {}.{} changed type to {} (was {}); it is not replicated until fixed",
                            col.name, table.db, table.table, col.column_type, pair.columns[j].my_type
                        ));
                        continue;
                    }
                    slots[i] = Some(j);
                    generated[j] = col.generated;
                }
                None => unmapped.push(col.name.clone()),
            }
        }
        let mut missing = vec![false; pair.columns.len()];
        for (j, pc) in pair.columns.iter().enumerate() {
            if !slots.contains(&Some(j)) {
                missing[j] = true;
                if !problems.iter().any(|p| p.starts_with(&format!("column {} ", pc.my_name))) {
                    problems.push(format!("column {} is missing from mysql table {}.{}", pc.my_name, table.db, table.table));
                }
            }
        }
        if pair.key.iter().any(|&k| missing[k]) {
            return Err(Error::Schema { pair: pair.name.clone(), message: format!("a key column cannot be decoded: {}", problems.join("; ")) });
        }
        Ok(TableDecoder {
            pair: pair.pair,
            pair_name: pair.name.clone(),
            db: table.db.clone(),
            table: table.table.clone(),
            columns: table.columns.clone(),
            slots,
            generated,
            missing,
            pair_columns: pair.columns.iter().map(|c| c.my_name.clone()).collect(),
            key: pair.key.clone(),
            unmapped,
            paused: (!problems.is_empty()).then(|| problems.join("; ")),
        })
    }

    /// Maps binlog column `i` to an index in `columns`: by name when the table
    /// map carries names (`binlog_row_metadata=FULL`, survives later DDL), else
    /// by ordinal, which needs the column counts to agree.
    pub fn column_map(&self, binlog_names: Option<Vec<String>>, binlog_count: usize) -> Result<Vec<Option<usize>>, String> {
        match binlog_names {
            Some(names) if names.len() == binlog_count => Ok(names
                .iter()
                .map(|n| self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(n)))
                .collect()),
            _ if binlog_count == self.columns.len() => Ok((0..binlog_count).map(Some).collect()),
            _ => Err(format!(
                "{}.{}: the binlog has {binlog_count} columns but information_schema has {} (the table changed after \
                 this event; binlog_row_metadata=FULL lets tandem decode across such changes)",
                self.db,
                self.table,
                self.columns.len()
            )),
        }
    }

    /// Decodes one row image. `present[i]` says whether binlog column `i` is in
    /// the image; `row` holds the present columns' values in order; `colmap`
    /// comes from `column_map`.
    pub fn decode(
        &self,
        mut row: mysql_async::binlog::row::BinlogRow,
        present: &[bool],
        colmap: &[Option<usize>],
    ) -> Result<Row> {
        let present_count = present.iter().filter(|p| **p).count();
        if present.len() != colmap.len() || row.len() != present_count {
            return Err(Error::Decode(format!(
                "{}.{}: row image has {} values for {} present of {} columns (table map has {})",
                self.db,
                self.table,
                row.len(),
                present_count,
                present.len(),
                colmap.len()
            )));
        }
        let mut out: Vec<Option<Value>> = vec![None; self.pair_columns.len()];
        let mut image_idx = 0usize;
        for (i, &is_present) in present.iter().enumerate() {
            if !is_present {
                continue;
            }
            let idx = image_idx;
            image_idx += 1;
            let Some(Some(ci)) = colmap.get(i).copied() else { continue };
            let (Some(Some(slot)), Some(col)) = (self.slots.get(ci).copied(), self.columns.get(ci)) else {
                continue;
            };
            let bv = row.take(idx).ok_or_else(|| self.err(col, "value missing from row image"))?;
            let v = to_value(bv, &col.codec).map_err(|e| self.err(col, &e))?;
            if let Some(cell) = out.get_mut(slot) {
                *cell = Some(v);
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(j, v)| match v {
                Some(v) => Ok(v),
                None if self.generated.get(j).copied().unwrap_or(false) || self.missing.get(j).copied().unwrap_or(false) => Ok(Value::Unchanged),
                None => Err(Error::Decode(format!(
                    "{}.{}: column {} is not in the row image (tandem needs binlog_row_image=FULL; or the column \
                     was added after this event)",
                    self.db,
                    self.table,
                    self.pair_columns.get(j).map(String::as_str).unwrap_or("?")
                ))),
            })
            .collect()
    }

    fn err(&self, col: &SourceColumn, msg: &str) -> Error {
        Error::Decode(format!("{}.{} column {} ({}): {msg}", self.db, self.table, col.name, col.column_type))
    }
}

/// Converts one binlog cell by its column's codec. Errors are plain messages;
/// the caller adds table and column.
pub fn to_value(bv: BinlogValue<'_>, codec: &Codec) -> Result<Value, String> {
    let v = MyValue::try_from(bv).map_err(|e| format!("cannot read value: {e}"))?;
    if matches!(v, MyValue::NULL) {
        return Ok(Value::Null);
    }
    match (codec, v) {
        (Codec::Int { bits, unsigned }, MyValue::Int(i)) => Ok(int_value(i, *bits, *unsigned)),
        (Codec::Int { bits, unsigned: true }, MyValue::UInt(u)) if *bits == 64 => Ok(Value::UInt(u)),
        (Codec::Int { .. }, MyValue::UInt(u)) => i64::try_from(u).map(Value::Int).map_err(|_| format!("{u} out of range")),
        (Codec::Year, MyValue::Bytes(b)) => {
            // mysql_common renders the stored byte y as 1900 + y; y = 0 is YEAR 0000.
            let y: i64 = std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()).ok_or("bad YEAR")?;
            Ok(Value::Int(if y == 1900 { 0 } else { y }))
        }
        (Codec::Year, MyValue::Int(i)) => Ok(Value::Int(i)),
        (Codec::Decimal, MyValue::Bytes(b)) => normalize_decimal(&b).map(Value::Decimal),
        (Codec::Float, MyValue::Float(f)) => Ok(Value::Float(float_to_f64(f))),
        (Codec::Float | Codec::Double, MyValue::Double(d)) => Ok(Value::Float(d)),
        (Codec::Text(cs), MyValue::Bytes(b)) => Ok(text_value(b, *cs, Value::Text)),
        (Codec::Json(cs), MyValue::Bytes(b)) => Ok(text_value(b, *cs, Value::Json)),
        (Codec::Bytes | Codec::Bit, MyValue::Bytes(b)) => Ok(Value::Bytes(b)),
        (Codec::Date, MyValue::Date(y, m, d, ..)) => {
            if m == 0 || d == 0 {
                return Ok(zero_date(format!("{y:04}-{m:02}-{d:02}")));
            }
            check_date(y, m, d)?;
            i32::try_from(days_from_civil(y as i64, m as u32, d as u32)).map(Value::Date).map_err(|_| "date out of range".into())
        }
        (Codec::DateTime, MyValue::Date(y, m, d, h, mi, s, us)) => {
            if m == 0 || d == 0 {
                let frac = if us == 0 { String::new() } else { format!(".{us:06}") };
                return Ok(zero_date(format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}{frac}")));
            }
            check_date(y, m, d)?;
            let days = days_from_civil(y as i64, m as u32, d as u32);
            Ok(Value::Timestamp(
                ((days * 24 + h as i64) * 60 + mi as i64) * 60 * MICROS + s as i64 * MICROS + us as i64,
            ))
        }
        (Codec::Timestamp, MyValue::Bytes(b)) => parse_epoch(&b),
        (Codec::Timestamp, MyValue::Int(secs)) => {
            if secs == 0 {
                Ok(zero_date(ZERO_TIMESTAMP.to_string()))
            } else {
                Ok(Value::Timestamp(secs * MICROS))
            }
        }
        (Codec::Time, MyValue::Time(neg, days, h, m, s, us)) => {
            let v = (((days as i64 * 24 + h as i64) * 60 + m as i64) * 60 + s as i64) * MICROS + us as i64;
            Ok(Value::Time(if neg { -v } else { v }))
        }
        (Codec::Enum(labels), MyValue::Int(i)) => match i {
            0 => Ok(Value::Text(String::new())),
            i => usize::try_from(i - 1)
                .ok()
                .and_then(|k| labels.get(k))
                .map(|l| Value::Text(l.clone()))
                .ok_or_else(|| format!("ENUM index {i} outside the {} labels", labels.len())),
        },
        (Codec::Set(labels), MyValue::Bytes(b)) => set_labels(&b, labels).map(Value::Text),
        (Codec::Unsupported(t), _) => Err(format!("type {t} is not supported")),
        (codec, v) => Err(format!("unexpected binlog value {v:?} for {codec:?} (schema changed?)")),
    }
}

/// Reinterprets a sign-extended integer of `bits` width as unsigned when needed.
fn int_value(i: i64, bits: u32, unsigned: bool) -> Value {
    if !unsigned {
        // mysql_common reads 24-bit MEDIUMINT without sign extension: extend by width.
        if bits < 64 {
            let shift = 64 - bits;
            return Value::Int((i << shift) >> shift);
        }
        return Value::Int(i);
    }
    if bits >= 64 {
        return Value::UInt(i as u64);
    }
    let mask = (1u64 << bits) - 1;
    Value::Int((i as u64 & mask) as i64)
}

/// An f32 as the f64 with the same shortest decimal text (0.1f32 → 0.1).
fn float_to_f64(f: f32) -> f64 {
    if !f.is_finite() {
        return f as f64;
    }
    f.to_string().parse().unwrap_or(f as f64)
}

const ZERO_TIMESTAMP: &str = "0000-00-00 00:00:00";

/// The marker for a MySQL zero date, shown as MySQL prints it.
fn zero_date(shown: String) -> Value {
    Value::unrepresentable(UnrepresentableKind::ZeroDate, shown, "MySQL zero dates have no value in Postgres")
}

/// Text of a character column, or the marker for bytes invalid in its charset
/// (shown as hex, `\x…`, since they are not text).
fn text_value(b: Vec<u8>, cs: Charset, wrap: fn(String) -> Value) -> Value {
    match decode_text(b, cs) {
        Ok(s) => wrap(s),
        Err((reason, bytes)) => {
            Value::unrepresentable(UnrepresentableKind::BadEncoding, Value::Bytes(bytes).to_string(), reason)
        }
    }
}

/// A date with month and day set (zero dates are handled before).
fn check_date(y: u16, m: u8, d: u8) -> Result<(), String> {
    if m > 12 || d > 31 {
        return Err(format!("invalid date {y:04}-{m:02}-{d:02}"));
    }
    Ok(())
}

/// TIMESTAMP(n) arrives as text `secs[.micros]`; 0 is MySQL's zero timestamp
/// (a marker).
fn parse_epoch(b: &[u8]) -> Result<Value, String> {
    let s = std::str::from_utf8(b).map_err(|_| "TIMESTAMP text is not UTF-8".to_string())?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| format!("bad TIMESTAMP text {s:?}"))?;
    if frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad TIMESTAMP fraction {s:?}"));
    }
    let mut us: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| format!("bad TIMESTAMP text {s:?}"))? };
    for _ in frac.len()..6 {
        us *= 10;
    }
    if secs == 0 && us == 0 {
        let frac = if frac.is_empty() { String::new() } else { format!(".{frac}") };
        return Ok(zero_date(format!("{ZERO_TIMESTAMP}{frac}")));
    }
    Ok(Value::Timestamp(secs * MICROS + us))
}

/// Validates DECIMAL text and strips redundant leading zeros (`-0000012.50` →
/// `-12.50`, `-0.00` → `0.00`); the scale is kept.
pub fn normalize_decimal(b: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(b).map_err(|_| "DECIMAL text is not UTF-8".to_string())?;
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return Err(format!("bad DECIMAL text {s:?}"));
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.bytes().all(|c| c == b'0');
    let mut out = String::with_capacity(s.len());
    if neg && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Ok(out)
}

/// Windows-1252 code points for bytes 0x80..=0x9F; MySQL keeps the five bytes
/// Windows leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) as C1 controls.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}',
    '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}',
    '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}',
    '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// Decodes a character column's bytes by its charset; `Err((reason, bytes))`
/// gives the bytes back when they are not valid in it.
pub fn decode_text(b: Vec<u8>, cs: Charset) -> Result<String, (String, Vec<u8>)> {
    match cs {
        Charset::Utf8 | Charset::Binary => String::from_utf8(b).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            (format!("invalid UTF-8 at byte {at}"), e.into_bytes())
        }),
        Charset::Ascii => {
            if let Some(at) = b.iter().position(|c| !c.is_ascii()) {
                return Err((format!("non-ASCII byte at {at} in an ascii column"), b));
            }
            String::from_utf8(b).map_err(|e| ("invalid ASCII".to_string(), e.into_bytes()))
        }
        Charset::Latin1 => Ok(b
            .iter()
            .map(|&c| match c {
                0x80..=0x9F => CP1252_HIGH.get((c - 0x80) as usize).copied().unwrap_or('\u{FFFD}'),
                c => c as char,
            })
            .collect()),
    }
}

/// A SET bitmask (little-endian bytes) → comma-joined labels in label order.
fn set_labels(mask: &[u8], labels: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for (byte_i, byte) in mask.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) == 0 {
                continue;
            }
            let k = byte_i * 8 + bit;
            let label = labels.get(k).ok_or_else(|| format!("SET bit {k} outside the {} labels", labels.len()))?;
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(label);
        }
    }
    Ok(out)
}

/// Column names from the table map's optional metadata (`binlog_row_metadata=FULL`).
pub fn binlog_column_names(tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> Option<Vec<String>> {
    let meta = mysql_async::binlog::events::OptionalMetaExtractor::new(tme.iter_optional_meta()).ok()?;
    let names = meta.iter_column_name().map(|n| n.map(|n| n.name().into_owned())).collect::<std::io::Result<Vec<_>>>().ok()?;
    (!names.is_empty()).then_some(names)
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
