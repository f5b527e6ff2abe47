//! TABLE_MAP and rows events of the binlog stream (part of `Streamer`):
//! which table a TABLE_MAP maps (a paired table, one of tandem's state
//! tables, or another), and the rows events of paired tables decoded into
//! the open transaction's buffer.
//!
//! Invariants: a rows event is decoded only against the TABLE_MAP it
//! names, with the column metadata current at that point of the stream; a
//! rows event that does not decode faithfully (a missing image column,
//! bytes that do not parse, a panic inside mysql_common) is an error, never
//! skipped; tandem's own rows are decoded only while `OwnRows` asks.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use mysql_async::binlog::events::{Event, EventData, TableMapEvent};

use super::super::control::{applied_in, signals_in};
use super::super::rows::TableDecoder;
use super::Streamer;
use crate::model::Change;
use crate::{Error, Result};

/// What a TABLE_MAP's table is to tandem.
pub(super) enum Route {
    Paired(std::result::Result<Arc<TableDecoder>, String>),
    Marker,
    /// `tandem.signals`: backfill watermarks.
    Signals,
    /// `tandem.checkpoints`: the positions tandem's transactions applied.
    Checkpoints,
    Other,
}

pub(super) struct TableEntry {
    /// The TABLE_MAP event's body: an identical one maps the same way.
    pub(super) raw: Vec<u8>,
    pub(super) tme: TableMapEvent<'static>,
    pub(super) route: Route,
    /// Binlog column → information_schema column (paired tables only).
    pub(super) colmap: std::result::Result<Vec<Option<usize>>, String>,
}

impl Streamer {
    pub(super) fn on_table_map(&mut self, ev: &Event) -> Result<()> {
        // Every transaction maps its tables again; the map of a table whose id
        // and definition did not change since (same bytes; the cache is dropped
        // at ROTATE and after DDL) needs no decoding.
        let raw = ev.data();
        if let Some(id) = raw.get(..6).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0])) {
            if self.tables.get(&id).is_some_and(|e| e.raw == raw) {
                return Ok(());
            }
        }
        let tme = ev.read_event::<TableMapEvent<'_>>().map_err(|e| Error::Decode(format!("TABLE_MAP: {e}")))?.into_owned();
        let key = (tme.database_name().into_owned(), tme.table_name().into_owned());
        let state = |table: &str| self.opts.state.as_ref().is_some_and(|st| st.db == key.0 && key.1 == table);
        let route = if state(crate::state::names::ORIGIN_MARKER) {
            Route::Marker
        } else if state(crate::state::names::SIGNALS) {
            Route::Signals
        } else if state(crate::state::names::CHECKPOINTS) {
            Route::Checkpoints
        } else {
            match self.decoders.get(&key) {
                Some(d) => Route::Paired(d.clone()),
                None => Route::Other,
            }
        };
        let colmap = match &route {
            Route::Paired(Ok(dec)) => dec.column_map(super::super::rows::binlog_column_names(&tme), tme.columns_count() as usize),
            _ => Ok(Vec::new()),
        };
        self.tables.insert(tme.table_id(), Arc::new(TableEntry { raw: raw.to_vec(), tme, route, colmap }));
        Ok(())
    }

    pub(super) async fn on_rows(&mut self, ev: &Event) -> Result<bool> {
        // mysql_common indexes column metadata while decoding cells: a malformed
        // table map must not panic the service.
        let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| self.decode_rows(ev)))
            .map_err(|_| Error::Decode("malformed rows event (mysql_common panicked decoding it)".into()))??;
        let Some(changes) = decoded else { return Ok(true) };
        for change in changes {
            let full = {
                let Some(txn) = self.txn.as_mut() else { return Ok(true) };
                txn.buf.push(change);
                txn.buf.len() >= self.opts.chunk_rows
            };
            if full && !self.flush().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Decodes one rows event of the open transaction (opening one if the
    /// stream started inside a group); `None` when it is not to be delivered.
    /// One event is bounded by the server's rows-event size, so collecting it
    /// keeps memory bounded.
    fn decode_rows(&mut self, ev: &Event) -> Result<Option<Vec<Change>>> {
        let data = ev.read_data().map_err(|e| Error::Decode(format!("rows event: {e}")))?;
        let Some(EventData::RowsEvent(re)) = data else {
            return Err(Error::Decode("unreadable rows event".into()));
        };
        let entry = self
            .tables
            .get(&re.table_id())
            .cloned()
            .ok_or_else(|| Error::Decode(format!("rows event for table id {} without a TABLE_MAP", re.table_id())))?;
        if self.txn.is_none() {
            self.open(ev, None); // stream started inside a group
        }
        let Some(txn) = self.txn.as_mut() else { return Ok(None) };
        txn.echo |= self.opts.own_server_ids.contains(&ev.header().server_id());
        if !txn.seen_rows {
            txn.seen_rows = true;
            txn.echo |= matches!(entry.route, Route::Marker);
        }
        let pipeline = self.opts.state.as_ref().map(|st| st.pipeline.as_str()).unwrap_or_default();
        let dec = match &entry.route {
            Route::Paired(Ok(_)) if txn.echo && !self.opts.own_rows.wanted() => return Ok(None),
            Route::Paired(Ok(d)) => d.clone(),
            Route::Paired(Err(_)) if txn.echo => return Ok(None),
            Route::Paired(Err(e)) => {
                let pair = self.pairs.get(&(entry.tme.database_name().into_owned(), entry.tme.table_name().into_owned()));
                return Err(Error::Schema { pair: pair.map(|p| p.name.clone()).unwrap_or_default(), message: e.clone() });
            }
            Route::Checkpoints if txn.echo => {
                if let Some(position) = applied_in(&re, &entry.tme, pipeline)? {
                    txn.applied = Some(position);
                }
                return Ok(None);
            }
            Route::Signals if !txn.echo => {
                txn.watermarks.extend(signals_in(&re, &entry.tme, pipeline)?);
                return Ok(None);
            }
            Route::Signals | Route::Marker | Route::Checkpoints | Route::Other => return Ok(None),
        };
        let colmap = match &entry.colmap {
            Ok(m) => m,
            Err(e) => return Err(Error::Schema { pair: dec.pair_name.clone(), message: e.clone() }),
        };
        if txn.xa {
            return Err(Error::Unsupported(format!("XA transaction on {}.{}: XA is not supported", dec.db, dec.table)));
        }
        super::super::rows_event::decode_rows_event(&re, &entry.tme, &dec, colmap).map(Some)
    }
}
