//! The binlog event state machine: dump connection setup, transaction
//! boundaries, echo suppression, chunked emission and position tracking.
//!
//! Invariants: a transaction is `Begin`…`Commit` or a single `Idle`; `Begin` is
//! sent lazily with the first chunk, after the origin decision (a server id
//! of tandem's in the group's events, or a first row event on the origin
//! marker: `Origin::Tandem`, delivered whatever it touched, its rows only
//! while `OwnRows` asks, its `tandem.checkpoints` row as `Applied`); rows
//! of this pipeline inserted into `tandem.signals` outside tandem's own
//! transactions are delivered as `Watermark`s after their commit; the position in
//! a `Commit`/`Idle` is the position after that transaction (MariaDB GTID list,
//! MySQL GTID set, or file:end-of-commit-event, by the kind of the start
//! position); after DDL the column metadata is re-read before any later row is
//! decoded. Panics inside mysql_common's event reader are caught and become
//! errors.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use mysql_async::binlog::events::{Event, EventData};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use super::events::{self, code, QueryKind};
use super::gtid_set::{uuid_text, GtidSet};
use super::position::{Tracker, TxnGtid};
use tables::TableEntry;

#[path = "stream_tables.rs"]
mod tables;
use super::rows::TableDecoder;
use super::{Flavor, MysqlSourceOptions};
use crate::config::Endpoint;
use crate::model::{BinlogPos, Change, Op, Origin, SourceEvent, SourcePos, TxnMeta};
use crate::schema::PairSchema;
use crate::{Error, Result};

/// The transaction being read.
#[derive(Default)]
struct OpenTxn {
    gtid: Option<TxnGtid>,
    /// tandem wrote it (`Origin::Tandem`).
    echo: bool,
    seen_rows: bool,
    /// Part of an XA transaction: tandem cannot replicate its rows.
    xa: bool,
    /// `txn_seq` once `Begin` was sent.
    begun: Option<u64>,
    buf: Vec<Change>,
    /// Exact commit time when the server logged one (MySQL 8 GTID event), µs.
    commit_ts: Option<i64>,
    /// The header time of the event that opened it (GTID / BEGIN), µs: the
    /// commit time as far as it is known at `Begin`.
    started: i64,
    /// Payloads of this pipeline's backfill watermarks written in this transaction.
    watermarks: Vec<String>,
    /// tandem's own transaction: the position its checkpoint row names.
    applied: Option<String>,
    /// A client transaction that removes a row (`OwnRows::removed` at its commit).
    removes: bool,
}

pub(super) struct Streamer {
    endpoint: Endpoint,
    opts: MysqlSourceOptions,
    flavor: Flavor,
    /// Paired MySQL tables by (db, table).
    pairs: HashMap<(String, String), PairSchema>,
    /// Decoders per paired table for the current table versions.
    decoders: HashMap<(String, String), std::result::Result<Arc<TableDecoder>, String>>,
    /// Pause state last sent per pair (`SourceEvent::PairState`).
    announced: HashMap<usize, Option<String>>,
    meta: mysql_async::Conn,
    tables: HashMap<u64, Arc<TableEntry>>,
    tracker: Tracker,
    file: String,
    txn: Option<OpenTxn>,
    txn_seq: u64,
    crc_on: bool,
    fde_seen: bool,
    /// Offset after the last event read in `file` (0 until one was read).
    at: u64,
    /// When the last `Idle` was sent; filtered transactions report at most
    /// every `IDLE_EVERY` (the next `Idle`/`Commit` carries a later position).
    last_idle: std::time::Instant,
    tx: Sender<SourceEvent>,
    shutdown: CancellationToken,
}

/// Minimum spacing of `Idle` events for filtered transactions under load.
const IDLE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl Streamer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        endpoint: Endpoint,
        opts: MysqlSourceOptions,
        pairs: HashMap<(String, String), PairSchema>,
        meta: mysql_async::Conn,
        flavor: Flavor,
        start: &BinlogPos,
        tx: Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> Result<Streamer> {
        let tracker = match (start, flavor) {
            (BinlogPos::MariaGtids(list), Flavor::MariaDb) => Tracker::Maria(list.iter().map(|g| (g.domain, *g)).collect()),
            (BinlogPos::MysqlGtidSet(text), Flavor::Mysql) => Tracker::Mysql(GtidSet::parse(text).map_err(Error::Decode)?),
            (BinlogPos::File { file, pos }, _) => Tracker::File { file: file.clone(), pos: *pos },
            (other, _) => {
                return Err(Error::Checkpoint(format!("start position {other} does not fit a {flavor:?} server")));
            }
        };
        Ok(Streamer {
            endpoint,
            opts,
            flavor,
            pairs,
            decoders: HashMap::new(),
            announced: HashMap::new(),
            meta,
            tables: HashMap::new(),
            tracker,
            file: String::new(),
            txn: None,
            txn_seq: 0,
            crc_on: true,
            fde_seen: false,
            at: 0,
            last_idle: std::time::Instant::now(),
            tx,
            shutdown,
        })
    }

    pub(super) async fn run(mut self, start: BinlogPos) -> Result<()> {
        self.reload_columns().await?;
        if !self.announce_pair_states().await? {
            return Ok(());
        }
        let mut stream = self.open_stream(&start).await?;
        tracing::info!(position = %start, server = %self.endpoint.describe(), "binlog stream started");
        loop {
            // The server sends a heartbeat every `heartbeat` while idle: silence
            // past the read timeout means a stalled server or network.
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                ev = tokio::time::timeout(self.opts.read_timeout, AssertUnwindSafe(stream.next()).catch_unwind()) => ev,
            };
            let ev = match next {
                Ok(Ok(Some(Ok(ev)))) => ev,
                Ok(Ok(Some(Err(e)))) => return Err(e.into()),
                Ok(Ok(None)) => return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "binlog stream ended"))),
                Ok(Err(_)) => return Err(Error::Decode("malformed binlog event (mysql_common panicked while reading it)".into())),
                Err(_) => {
                    return Err(Error::Timeout {
                        what: "binlog connection sent nothing, not even a heartbeat ([timeouts] read_seconds)".into(),
                        after: self.opts.read_timeout,
                    })
                }
            };
            if !self.handle(&ev).await? {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.close()).await;
        Ok(())
    }

    async fn open_stream(&mut self, start: &BinlogPos) -> Result<mysql_async::BinlogStream> {
        let opening = super::dump::open(&self.endpoint, &self.opts, self.flavor, start);
        let after = self.opts.read_timeout;
        let dump = tokio::time::timeout(after, opening)
            .await
            .map_err(|_| Error::Timeout { what: "opening the binlog dump connection".into(), after })??;
        self.crc_on = dump.crc_on;
        if let Some(file) = dump.file {
            self.file = file;
        }
        Ok(dump.stream)
    }

    /// Re-reads information_schema for every paired table and rebuilds decoders.
    async fn reload_columns(&mut self) -> Result<()> {
        match self.load_decoders().await {
            Err(Error::Mysql(e)) if matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)) => {
                // The metadata session may have idled out (wait_timeout): reconnect once.
                tracing::debug!(error = %e, "metadata session lost; reconnecting");
                self.meta = crate::db::connect_mysql(&self.endpoint).await?;
                self.load_decoders().await
            }
            r => r,
        }
    }

    async fn load_decoders(&mut self) -> Result<()> {
        self.decoders = super::columns::decoders(&mut self.meta, &self.pairs, self.flavor == Flavor::MariaDb).await?;
        self.tables.clear();
        Ok(())
    }

    /// Sends `PairState` for every pair whose pause state changed with the
    /// current decoders (at start: the paused ones).
    async fn announce_pair_states(&mut self) -> Result<bool> {
        let mut states: Vec<(usize, Option<String>)> =
            self.decoders.values().filter_map(|d| d.as_ref().ok()).map(|d| (d.pair, d.paused.clone())).collect();
        states.sort();
        for (pair, paused) in states {
            let changed = match self.announced.get(&pair) {
                Some(prev) => *prev != paused,
                None => paused.is_some(),
            };
            if changed {
                self.announced.insert(pair, paused.clone());
                if !self.emit(SourceEvent::PairState { pair, paused }).await? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Handles one event; `false` when the consumer is gone or shutdown began.
    async fn handle(&mut self, ev: &Event) -> Result<bool> {
        let header = ev.header();
        if header.log_pos() != 0 && !matches!(header.event_type_raw(), code::ROTATE | code::HEARTBEAT | code::MYSQL_HEARTBEAT_V2) {
            self.at = u64::from(header.log_pos());
        }
        let ty = header.event_type_raw();
        match ty {
            code::FORMAT_DESCRIPTION => self.fde_seen = true,
            code::ROTATE => self.on_rotate(ev)?,
            code::MARIA_GTID => {
                let g = events::parse_maria_gtid(ev.data()).map_err(|e| Error::Decode(e.to_string()))?;
                let ok = self.finish_open(ev, Finish::Commit).await?;
                let txn = self.open(ev, Some(TxnGtid::Maria(g.gtid(header.server_id()))));
                txn.xa = g.flags & events::gtid_flags::PREPARED_XA != 0;
                return Ok(ok);
            }
            code::MYSQL_GTID | code::MYSQL_GTID_TAGGED | code::MYSQL_ANONYMOUS_GTID => {
                let ok = self.finish_open(ev, Finish::Commit).await?;
                let (gtid, ts) = match ev.read_data() {
                    Ok(Some(EventData::GtidEvent(g))) => {
                        let mut sid = uuid_text(&g.sid());
                        if let Some(tag) = g.tag() {
                            sid = format!("{sid}:{tag}");
                        }
                        (Some(TxnGtid::Mysql { sid, gno: g.gno() }), g.immediate_commit_timestamp() as i64)
                    }
                    Ok(_) => (None, 0),
                    Err(e) => return Err(Error::Decode(format!("MySQL GTID event: {e}"))),
                };
                let txn = self.open(ev, gtid);
                txn.commit_ts = (ts > 0).then_some(ts);
                return Ok(ok);
            }
            code::QUERY => return self.on_query(ev).await,
            code::XID => return self.finish_open(ev, Finish::Commit).await,
            code::MYSQL_XA_PREPARE => return self.finish_open(ev, Finish::Idle).await,
            code::TABLE_MAP => self.on_table_map(ev)?,
            code::WRITE_ROWS_V1 | code::UPDATE_ROWS_V1 | code::DELETE_ROWS_V1 | code::WRITE_ROWS_V2
            | code::UPDATE_ROWS_V2 | code::DELETE_ROWS_V2 => return self.on_rows(ev).await,
            code::MYSQL_PARTIAL_UPDATE_ROWS => {
                return Err(Error::Unsupported("binlog_row_value_options=PARTIAL_JSON is not supported".into()));
            }
            code::MARIA_QUERY_COMPRESSED | code::MARIA_ROWS_COMPRESSED_FIRST..=code::MARIA_ROWS_COMPRESSED_LAST => {
                return Err(Error::Unsupported("compressed binlog events (log_bin_compress=ON) are not supported".into()));
            }
            code::HEARTBEAT | code::MYSQL_HEARTBEAT_V2 if self.txn.is_none() => return self.idle(true).await,
            code::MARIA_GTID_LIST => {
                let list = events::parse_maria_gtid_list(ev.data()).map_err(|e| Error::Decode(e.to_string()))?;
                tracing::debug!(?list, "GTID_LIST");
            }
            _ => {} // ANNOTATE_ROWS, BINLOG_CHECKPOINT, PREVIOUS_GTIDS, INTVAR, ...: nothing to do
        }
        Ok(true)
    }

    fn on_rotate(&mut self, ev: &Event) -> Result<()> {
        let Ok(Some(EventData::RotateEvent(r))) = ev.read_data() else {
            return Err(Error::Decode("unreadable ROTATE event".into()));
        };
        let glued = self.crc_on && !self.fde_seen && ev.header().log_pos() == 0;
        let name = events::rotate_file_name(r.name_raw(), glued).map_err(|e| Error::Decode(e.to_string()))?;
        tracing::debug!(file = %name, pos = r.position(), fake = ev.header().log_pos() == 0, "ROTATE");
        if ev.header().log_pos() != 0 {
            // Every transaction maps its tables again: dropping the cache keeps it bounded.
            self.tables.clear();
        }
        if let Tracker::File { file, pos } = &mut self.tracker {
            // A real ROTATE ends a file: the next transaction starts in the new one.
            if self.txn.is_none() && ev.header().log_pos() != 0 {
                *file = name.clone();
                *pos = r.position();
            }
        }
        self.file = name;
        self.at = r.position();
        Ok(())
    }

    /// Opens a transaction (event group).
    fn open(&mut self, ev: &Event, gtid: Option<TxnGtid>) -> &mut OpenTxn {
        let echo = self.opts.own_server_ids.contains(&ev.header().server_id());
        let started = i64::from(ev.header().timestamp()) * 1_000_000;
        self.txn.insert(OpenTxn { gtid, echo, started, ..Default::default() })
    }

    async fn on_query(&mut self, ev: &Event) -> Result<bool> {
        let Ok(Some(EventData::QueryEvent(q))) = ev.read_data() else {
            return Err(Error::Decode("unreadable QUERY event".into()));
        };
        match events::classify_query(q.query_raw()) {
            QueryKind::Begin => {
                if self.txn.is_none() {
                    self.open(ev, None);
                }
                Ok(true)
            }
            QueryKind::Commit => self.finish_open(ev, Finish::Commit).await,
            QueryKind::Rollback => self.finish_open(ev, Finish::Rollback).await,
            QueryKind::Savepoint => Ok(true),
            QueryKind::Xa => {
                let sql = q.query().to_ascii_uppercase();
                if sql.contains("XA PREPARE") || sql.contains("XA COMMIT") || sql.contains("XA ROLLBACK") {
                    return self.finish_open(ev, Finish::Idle).await;
                }
                if let Some(t) = self.txn.as_mut() {
                    t.xa = true;
                }
                Ok(true)
            }
            QueryKind::Dml => {
                let sql = q.query().to_ascii_lowercase();
                if let Some(((db, table), _)) = self.pairs.keys().map(|k| (k, ())).find(|((_, t), _)| events::mentions(&sql, t)) {
                    return Err(Error::Unsupported(format!(
                        "statement-based binlog event may touch paired table {db}.{table}; tandem needs binlog_format=ROW: {}",
                        sql.chars().take(200).collect::<String>()
                    )));
                }
                tracing::warn!(statement = %sql.chars().take(200).collect::<String>(), "statement-based DML in the binlog ignored");
                Ok(true)
            }
            QueryKind::Ddl => {
                // TRUNCATE is logged as a statement: turn it into a Truncate change of its pair.
                if let Some(table) = events::truncated_table(q.query_raw(), &q.schema()) {
                    if let Some(pair) = self.pairs.get(&table).map(|p| p.pair) {
                        let own_rows = self.opts.own_rows.wanted();
                        let txn = match self.txn.as_mut() {
                            Some(t) => t,
                            None => self.open(ev, None),
                        };
                        if !txn.echo || own_rows {
                            txn.buf.push(Change { pair, op: Op::Truncate, key: Vec::new(), before: None, after: None });
                        }
                        return self.finish_open(ev, Finish::Commit).await;
                    }
                }
                let ok = self.finish_open(ev, Finish::Commit).await?;
                tracing::info!(statement = %q.query().chars().take(200).collect::<String>(), "DDL: re-reading column metadata");
                self.reload_columns().await?;
                Ok(ok && self.announce_pair_states().await?)
            }
        }
    }

    /// Sends `Begin` (once) and the buffered changes of the open transaction.
    async fn flush(&mut self) -> Result<bool> {
        let Some(txn) = self.txn.as_mut() else { return Ok(true) };
        let mut out = Vec::with_capacity(2);
        if txn.begun.is_none() {
            self.txn_seq += 1;
            txn.begun = Some(self.txn_seq);
            let origin = if txn.echo { Origin::Tandem } else { Origin::Client };
            let commit_ts = txn.commit_ts.unwrap_or(txn.started);
            out.push(SourceEvent::Begin { txn_seq: self.txn_seq, origin, commit_ts });
        }
        if !txn.buf.is_empty() {
            if !txn.echo && !txn.removes {
                txn.removes = txn.buf.iter().any(|c| self.pairs.values().any(|p| p.pair == c.pair && p.removes_row(c)));
            }
            out.push(SourceEvent::Changes(std::mem::take(&mut txn.buf)));
        }
        for ev in out {
            if !self.emit(ev).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Ends the open transaction (if any) at event `ev`.
    async fn finish_open(&mut self, ev: &Event, how: Finish) -> Result<bool> {
        let Some(mut txn) = self.txn.take() else {
            if let Tracker::File { pos, .. } = &mut self.tracker {
                if ev.header().log_pos() != 0 {
                    *pos = ev.header().log_pos() as u64;
                }
            }
            return Ok(true);
        };
        // Position after this transaction.
        match (&mut self.tracker, &txn.gtid) {
            (Tracker::Maria(m), Some(TxnGtid::Maria(g))) => {
                m.insert(g.domain, *g);
            }
            (Tracker::Mysql(s), Some(TxnGtid::Mysql { sid, gno })) => s.add(sid, *gno),
            (Tracker::File { file, pos }, _) => {
                if ev.header().log_pos() != 0 {
                    *file = self.file.clone();
                    *pos = ev.header().log_pos() as u64;
                }
            }
            _ => tracing::warn!(gtid = ?txn.gtid, "transaction without a usable GTID: position not advanced"),
        }
        let position = SourcePos::Mysql(self.tracker.position());
        let watermarks = if how == Finish::Commit { std::mem::take(&mut txn.watermarks) } else { Vec::new() };
        let watermark_only = !watermarks.is_empty() && !txn.echo && txn.begun.is_none() && txn.buf.is_empty();
        // A watermark carries its own position: an Idle first could be acknowledged
        // before the watermark's work is done.
        let ok = if watermark_only { true } else { self.finish_txn(ev, txn, how, position.clone()).await? };
        if ok {
            for payload in watermarks {
                if !self.emit(SourceEvent::Watermark { position: position.clone(), payload }).await? {
                    return Ok(false);
                }
            }
        }
        Ok(ok)
    }

    /// Delivers a finished transaction ending at `position` (or reports the
    /// position when it has nothing to deliver).
    async fn finish_txn(&mut self, ev: &Event, txn: OpenTxn, how: Finish, position: SourcePos) -> Result<bool> {
        let delivered = txn.echo || txn.begun.is_some() || !txn.buf.is_empty();
        match how {
            Finish::Rollback if txn.begun.is_some() => Err(Error::Unsupported(
                "a streamed transaction was rolled back in the binlog (mixed-engine rollback): cannot retract sent chunks".into(),
            )),
            Finish::Rollback | Finish::Idle => {
                if !txn.buf.is_empty() {
                    tracing::warn!(rows = txn.buf.len(), "rolled-back binlog transaction discarded");
                }
                self.idle(false).await
            }
            Finish::Commit if !delivered => self.idle(false).await,
            Finish::Commit => {
                let commit_ts = txn.commit_ts.unwrap_or(ev.header().timestamp() as i64 * 1_000_000);
                let applied = txn.applied.clone();
                self.txn = Some(txn);
                if !self.flush().await? {
                    return Ok(false);
                }
                let Some(txn) = self.txn.take() else { return Ok(true) };
                if let Some(applied) = applied {
                    if !self.emit(SourceEvent::Applied(applied)).await? {
                        return Ok(false);
                    }
                }
                if txn.removes {
                    // Before the next transaction: an echo after this one comes with its rows.
                    self.opts.own_rows.removed();
                }
                let txn_seq = txn.begun.unwrap_or(self.txn_seq);
                self.emit(SourceEvent::Commit(TxnMeta { position, commit_ts, origin: None, txn_seq })).await
            }
        }
    }

    /// Reports the current position with nothing to replicate; unless `now`,
    /// at most every `IDLE_EVERY`.
    async fn idle(&mut self, now: bool) -> Result<bool> {
        if !now && self.last_idle.elapsed() < IDLE_EVERY {
            return Ok(true);
        }
        self.last_idle = std::time::Instant::now();
        self.emit(SourceEvent::Idle(SourcePos::Mysql(self.tracker.position()))).await
    }

    /// Sends one event; `false` when the consumer is gone or shutdown began.
    /// A delivered position is noted with the binlog file and offset after it.
    async fn emit(&self, ev: SourceEvent) -> Result<bool> {
        if let SourceEvent::Commit(TxnMeta { position, .. }) | SourceEvent::Idle(position) = &ev {
            if self.at > 0 && !self.file.is_empty() {
                self.opts.coordinates.delivered(position, super::coordinates::Coordinate { file: self.file.clone(), offset: self.at });
            }
        }
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Ok(false),
            r = self.tx.send(ev) => Ok(r.is_ok()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Commit,
    Rollback,
    /// The group ends without anything to replicate (XA prepare/commit).
    Idle,
}
