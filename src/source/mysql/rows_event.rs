//! One binlog rows event (WRITE/UPDATE/DELETE, v1 or v2) → `Change`s of one
//! pair, given the TABLE_MAP event it refers to (pure, no I/O).
//!
//! Invariants: never panics on malformed bytes. The table map is checked
//! first (every column has a known type and its metadata), so the common
//! malformations are plain errors; mysql_common still indexes metadata while
//! decoding cells, so any panic it raises is caught here and becomes a
//! decode error naming the table. Partial JSON updates are refused, never
//! half-applied. A row without the image its operation needs is an error, and
//! so is an event whose width differs from its table map's or whose image
//! holds no column (each row would then take no bytes and never end).

use std::panic::AssertUnwindSafe;

use mysql_async::binlog::events::{RowsEventData, TableMapEvent};

use super::rows::TableDecoder;
use crate::model::{Change, Op, Value};
use crate::{Error, Result};

/// Checks that the table map describes every column (type and metadata), so
/// that decoding rows against it does not index past its metadata.
pub fn check_table_map(tme: &TableMapEvent<'_>) -> Result<()> {
    let n = tme.columns_count() as usize;
    for i in 0..n {
        match tme.get_column_type(i) {
            Ok(Some(_)) => {}
            _ => return Err(Error::Decode(format!("TABLE_MAP {}: column {i} has an unknown type", table_name(tme)))),
        }
    }
    // Reaching the last column's metadata walks (and bounds-checks) every column's.
    if n > 0 && tme.get_column_metadata(n - 1).is_none() {
        return Err(Error::Decode(format!("TABLE_MAP {}: column metadata is truncated", table_name(tme))));
    }
    // mysql_common sizes a DECIMAL's buffer from precision − scale: a scale above
    // the precision (or an absurd precision) would ask for exabytes and abort.
    for i in 0..n {
        if let (Ok(Some(mysql_async::consts::ColumnType::MYSQL_TYPE_NEWDECIMAL)), Some(meta)) = (tme.get_column_type(i), tme.get_column_metadata(i)) {
            let (precision, scale) = (meta.first().copied().unwrap_or(0), meta.get(1).copied().unwrap_or(0));
            if precision == 0 || precision > 65 || scale > precision || scale > 38 {
                return Err(Error::Decode(format!(
                    "TABLE_MAP {}: column {i} is DECIMAL({precision},{scale}), which no server writes",
                    table_name(tme)
                )));
            }
        }
    }
    Ok(())
}

fn table_name(tme: &TableMapEvent<'_>) -> String {
    format!("{}.{}", tme.database_name(), tme.table_name())
}

/// Decodes every row of `re` (whose table map is `tme`) by `dec`; `colmap`
/// comes from `TableDecoder::column_map`.
pub fn decode_rows_event(
    re: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    dec: &TableDecoder,
    colmap: &[Option<usize>],
) -> Result<Vec<Change>> {
    check_table_map(tme)?;
    std::panic::catch_unwind(AssertUnwindSafe(|| decode_unchecked(re, tme, dec, colmap))).unwrap_or_else(|_| {
        Err(Error::Decode(format!("{}.{}: malformed rows event (mysql_common panicked decoding it)", dec.db, dec.table)))
    })
}

fn decode_unchecked(
    re: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    dec: &TableDecoder,
    colmap: &[Option<usize>],
) -> Result<Vec<Change>> {
    let op = match re {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Insert,
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => Op::Update,
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
        RowsEventData::PartialUpdateRowsEvent(_) => {
            return Err(Error::Unsupported("partial JSON updates are not supported".into()));
        }
    };
    if re.num_columns() != tme.columns_count() {
        return Err(Error::Decode(format!(
            "{}.{}: rows event has {} columns, its TABLE_MAP {}",
            dec.db,
            dec.table,
            re.num_columns(),
            tme.columns_count()
        )));
    }
    let before_bits: Option<Vec<bool>> = re.columns_before_image().map(|b| b.iter().map(|x| *x).collect());
    let after_bits: Option<Vec<bool>> = re.columns_after_image().map(|b| b.iter().map(|x| *x).collect());
    // An image of no column takes no bytes: mysql_common would yield empty
    // rows for ever from the event's remaining bytes.
    if [&before_bits, &after_bits].iter().any(|b| b.as_ref().is_some_and(|b| !b.contains(&true))) {
        return Err(Error::Decode(format!("{}.{}: rows event whose image has no column", dec.db, dec.table)));
    }
    let mut out = Vec::new();
    for row in re.rows(tme) {
        let (b, a) = row.map_err(|e| Error::Decode(format!("{}.{}: bad row image: {e}", dec.db, dec.table)))?;
        let before = match (b, &before_bits) {
            (Some(r), Some(bits)) => Some(dec.decode(r, bits, colmap)?),
            _ => None,
        };
        let after = match (a, &after_bits) {
            (Some(r), Some(bits)) => Some(dec.decode(r, bits, colmap)?),
            _ => None,
        };
        let key_src = if op == Op::Delete { before.as_ref() } else { after.as_ref() };
        let key = key_src
            .map(|r| dec.key.iter().map(|&i| r.get(i).cloned().unwrap_or(Value::Null)).collect())
            .ok_or_else(|| Error::Decode(format!("{}.{}: {:?} row without its image", dec.db, dec.table, op)))?;
        out.push(Change { pair: dec.pair, op, key, before, after });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "rows_event_tests.rs"]
mod tests;
