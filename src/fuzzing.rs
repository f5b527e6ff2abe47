//! Entry points for the fuzz targets (`fuzz/`) and the decoders' property
//! tests: each feeds arbitrary bytes to one decoder of external input —
//! pgoutput messages, pgoutput text values, binlog rows events (with their
//! TABLE_MAP), MariaDB's raw GTID / GTID_LIST / BINLOG_CHECKPOINT / ROTATE /
//! QUERY parsing — and reports whether it decoded.
//!
//! Invariant: these functions must return for every input; a panic here is a
//! decoder bug (the binlog decoder catches mysql_common's own panics and turns
//! them into errors, as the service does). Not part of tandem's API.

use bytes::Bytes;
use mysql_async::binlog::events::{Event, EventData, FormatDescriptionEvent, TableMapEvent};
use mysql_async::binlog::BinlogVersion;
use mysql_async::consts::ColumnType;

use crate::config::{Owner, TableName};
use crate::model::Change;
use crate::schema::{ColumnSchema, PairSchema, ValueKind};
use crate::source::mysql::columns::{Charset, Codec, SourceColumn, TableColumns};
use crate::source::mysql::events;
use crate::source::mysql::rows::TableDecoder;
use crate::source::mysql::rows_event::decode_rows_event;
use crate::{Error, Result};

/// One pgoutput message (the XLogData payload).
pub fn pgoutput(data: &[u8]) -> bool {
    crate::source::postgres::pgoutput::decode(&Bytes::copy_from_slice(data)).is_ok()
}

/// The OIDs `pg_text_value` picks from by its first byte (plus one unknown).
pub const PG_TEXT_OIDS: [u32; 21] = [16, 17, 19, 20, 21, 23, 25, 26, 114, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1700, 2950, 3802, 99_999];

/// One pgoutput text value: the first byte picks the type OID, the rest is the text.
pub fn pg_text_value(data: &[u8]) -> bool {
    let Some((&pick, text)) = data.split_first() else { return false };
    let oid = PG_TEXT_OIDS[pick as usize % PG_TEXT_OIDS.len()];
    crate::codec::pg_text::decode_text(oid, text).is_ok()
}

/// MariaDB raw event parsing: the first byte picks the parser, the rest is the event body.
pub fn mariadb_event(data: &[u8]) -> bool {
    let Some((&pick, body)) = data.split_first() else { return false };
    match pick % 7 {
        0 => events::parse_maria_gtid(body).is_ok(),
        1 => events::parse_maria_gtid_list(body).is_ok(),
        2 => events::parse_binlog_checkpoint(body).is_ok(),
        3 => events::rotate_file_name(body, true).is_ok(),
        4 => events::rotate_file_name(body, false).is_ok(),
        5 => {
            let _ = events::classify_query(body);
            true
        }
        _ => events::truncated_table(body, "db").is_some(),
    }
}

/// Rows event types tried by `binlog_rows` (v1 and v2 write/update/delete, partial update).
pub const ROWS_EVENT_TYPES: [u8; 7] = [23, 24, 25, 30, 31, 32, 39];

/// A binlog rows event with its TABLE_MAP, packed as
/// `[table map body length: u16 LE][table map body][rows type pick][rows body]`.
pub fn binlog_rows(data: &[u8]) -> bool {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return false };
    let len = u16::from_le_bytes(*len) as usize;
    if rest.len() <= len {
        return false;
    }
    let (tme_body, rest) = rest.split_at(len);
    let Some((&pick, rows_body)) = rest.split_first() else { return false };
    let kind = ROWS_EVENT_TYPES[pick as usize % ROWS_EVENT_TYPES.len()];
    decode_binlog_rows(tme_body, kind, rows_body).is_ok()
}

/// Decodes a rows event of type `kind` (`rows_body`: post-header and body,
/// no checksum) against the TABLE_MAP body `tme_body`, with a decoder whose
/// columns take their codec from the table map's column types.
pub fn decode_binlog_rows(tme_body: &[u8], kind: u8, rows_body: &[u8]) -> Result<Vec<Change>> {
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let tme_event = event(&fde, 19, tme_body)?;
    let tme: TableMapEvent<'_> = tme_event.read_event().map_err(|e| Error::Decode(format!("TABLE_MAP: {e}")))?;
    let n = tme.columns_count() as usize;
    let columns: Vec<SourceColumn> = (0..n)
        .map(|i| SourceColumn {
            name: format!("c{i}"),
            column_type: String::new(),
            codec: codec_of(tme.get_column_type(i).ok().flatten(), i),
            generated: false,
        })
        .collect();
    let table = TableColumns { db: "db".into(), table: "t".into(), columns };
    let dec = TableDecoder::new(&pair_of(&table), &table)?;
    let colmap = dec.column_map(None, n).map_err(Error::Decode)?;
    let rows_event = event(&fde, kind, rows_body)?;
    let data = rows_event.read_data().map_err(|e| Error::Decode(format!("rows event: {e}")))?;
    let Some(EventData::RowsEvent(re)) = data else { return Err(Error::Decode("not a rows event".into())) };
    decode_rows_event(&re, &tme, &dec, &colmap)
}

/// An event of `kind` with `body`, behind a binlog v4 header of the right size.
fn event(fde: &FormatDescriptionEvent<'_>, kind: u8, body: &[u8]) -> Result<Event> {
    let size = u32::try_from(19 + body.len()).map_err(|_| Error::Decode("event too large".into()))?;
    let mut raw = Vec::with_capacity(size as usize);
    raw.extend_from_slice(&0u32.to_le_bytes()); // timestamp
    raw.push(kind);
    raw.extend_from_slice(&1u32.to_le_bytes()); // server id
    raw.extend_from_slice(&size.to_le_bytes());
    raw.extend_from_slice(&0u32.to_le_bytes()); // log pos
    raw.extend_from_slice(&0u16.to_le_bytes()); // flags
    raw.extend_from_slice(body);
    Event::read(fde, &raw[..]).map_err(|e| Error::Decode(format!("event: {e}")))
}

/// A plausible codec for a binlog column type (ENUM/SET with labels a, b, c).
fn codec_of(ty: Option<ColumnType>, i: usize) -> Codec {
    use ColumnType::*;
    let labels = || vec!["a".to_string(), "b".to_string(), "c".to_string()];
    match ty {
        Some(MYSQL_TYPE_TINY) => Codec::Int { bits: 8, unsigned: i % 2 == 1 },
        Some(MYSQL_TYPE_SHORT) => Codec::Int { bits: 16, unsigned: i % 2 == 1 },
        Some(MYSQL_TYPE_INT24) => Codec::Int { bits: 24, unsigned: i % 2 == 1 },
        Some(MYSQL_TYPE_LONG) => Codec::Int { bits: 32, unsigned: i % 2 == 1 },
        Some(MYSQL_TYPE_LONGLONG) => Codec::Int { bits: 64, unsigned: i % 2 == 1 },
        Some(MYSQL_TYPE_FLOAT) => Codec::Float,
        Some(MYSQL_TYPE_DOUBLE) => Codec::Double,
        Some(MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL) => Codec::Decimal,
        Some(MYSQL_TYPE_YEAR) => Codec::Year,
        Some(MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE) => Codec::Date,
        Some(MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2) => Codec::DateTime,
        Some(MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2) => Codec::Timestamp,
        Some(MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2) => Codec::Time,
        Some(MYSQL_TYPE_ENUM) => Codec::Enum(labels()),
        Some(MYSQL_TYPE_SET) => Codec::Set(labels()),
        Some(MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_STRING) => {
            Codec::Text(if i % 2 == 0 { Charset::Utf8 } else { Charset::Latin1 })
        }
        Some(MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB) => Codec::Bytes,
        Some(MYSQL_TYPE_BIT) => Codec::Bit,
        Some(MYSQL_TYPE_JSON) => Codec::Json(Charset::Utf8),
        other => Codec::Unsupported(format!("{other:?}")),
    }
}

/// A pair mapping every column of `table` by name, keyed by its first column.
fn pair_of(table: &TableColumns) -> PairSchema {
    let t = TableName { schema: table.db.clone(), name: table.table.clone() };
    let columns = table
        .columns
        .iter()
        .map(|c| ColumnSchema {
            name: c.name.clone(),
            pg_name: c.name.clone(),
            my_name: c.name.clone(),
            owner: Owner::Both,
            pg_type: String::new(),
            my_type: String::new(),
            pg_kind: ValueKind::Text,
            my_kind: ValueKind::Text,
            pg_generated: false,
            pg_identity_always: false,
            my_generated: false,
            my_on_update: false,
        })
        .collect::<Vec<_>>();
    let key = if columns.is_empty() { vec![] } else { vec![0] };
    PairSchema { pair: 0, name: "fuzz".into(), pg_table: t.clone(), my_table: t, columns, key }
}
