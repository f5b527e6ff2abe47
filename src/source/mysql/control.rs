//! tandem's control rows as the binlog carries them: the checkpoint row an
//! applier writes in each of its transactions (the Postgres position that
//! transaction applied) and the backfill watermarks written to
//! `tandem.signals`. Only the rows of this pipeline are read; their values
//! are handed on as text, uninterpreted. Pure: decodes one rows event.

use crate::config::Direction;
use crate::{Error, Result};
use mysql_async::binlog::events::TableMapEvent;

/// The Postgres position in `pipeline`'s `postgres_to_mysql` row written by
/// one rows event on `tandem.checkpoints` (columns: pipeline, direction,
/// position, server_identity, updated_at).
pub(super) fn applied_in(re: &mysql_async::binlog::events::RowsEventData<'_>, tme: &TableMapEvent<'_>, pipeline: &str) -> Result<Option<String>> {
    use mysql_async::binlog::value::BinlogValue;
    let mut found = None;
    for row in re.rows(tme) {
        let (_, after) = row.map_err(|e| Error::Decode(format!("tandem.checkpoints row: {e}")))?;
        let Some(after) = after else { continue };
        let text = |i: usize| match after.as_ref(i) {
            Some(BinlogValue::Value(mysql_async::Value::Bytes(b))) => Some(b.clone()),
            _ => None,
        };
        if text(0).as_deref() != Some(pipeline.as_bytes()) || text(1).as_deref() != Some(Direction::PostgresToMysql.key().as_bytes()) {
            continue;
        }
        found = text(2).and_then(|p| String::from_utf8(p).ok());
    }
    Ok(found)
}

/// The payloads of `pipeline`'s watermarks inserted by one rows event on
/// `tandem.signals` (columns: id, pipeline, kind, payload, created_at).
pub(super) fn signals_in(re: &mysql_async::binlog::events::RowsEventData<'_>, tme: &TableMapEvent<'_>, pipeline: &str) -> Result<Vec<String>> {
    use mysql_async::binlog::value::BinlogValue;
    if !matches!(re, mysql_async::binlog::events::RowsEventData::WriteRowsEvent(_) | mysql_async::binlog::events::RowsEventData::WriteRowsEventV1(_)) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for row in re.rows(tme) {
        let (_, after) = row.map_err(|e| Error::Decode(format!("tandem.signals row: {e}")))?;
        let Some(after) = after else { continue };
        let text = |i: usize| match after.as_ref(i) {
            Some(BinlogValue::Value(mysql_async::Value::Bytes(b))) => Some(b.clone()),
            _ => None,
        };
        if text(1).as_deref() != Some(pipeline.as_bytes()) {
            continue;
        }
        match text(3).map(String::from_utf8) {
            Some(Ok(payload)) => out.push(payload),
            _ => tracing::warn!("unreadable backfill watermark in tandem.signals ignored"),
        }
    }
    Ok(out)
}
