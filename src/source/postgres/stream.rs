//! `PostgresSource`: streams a pgoutput slot into `SourceEvent`s and
//! acknowledges only what the applier has made durable.
//!
//! One task owns the replication connection and does three things in one
//! `select!` loop: read the next replication message (cancellation-safe),
//! report the acknowledged LSN (on every change of `acked`, every
//! `status_interval`, and at once when a keepalive asks for a reply), and stop
//! when `shutdown` is cancelled. Events go into a bounded channel: a full
//! channel is the backpressure, and while waiting for room the loop keeps
//! sending status updates so the server's `wal_sender_timeout` never fires.
//! The flush/write/apply positions reported are never beyond what the applier
//! acknowledged (or the checkpoint `start`, which is durable by definition).
//! Nothing buffers a whole transaction: see `normalize.rs`.
//! Every wait is bounded: after `heartbeat` of silence a status update asks
//! the server for a keepalive (whose position, even unchanged, proves the
//! stream caught up), and after `read_timeout` of silence the connection
//! counts as lost (`Error::Timeout`, transient). A slot the server
//! invalidated (`wal_status = lost`) is refused at `resume`: the WAL it
//! needed is gone, and only a new slot and a backfill can recover.

use super::conn::{ReplicationConn, ReplicationMessage, ReplicationStream};
use super::normalize::Normalizer;
use super::pgoutput;
use crate::config::Endpoint;
use crate::model::{Lsn, SourceEvent, SourcePos};
use crate::schema::PairSchema;
use crate::{Error, Result};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Settings of one Postgres source.
#[derive(Debug, Clone)]
pub struct PostgresSourceOptions {
    pub slot: String,
    pub publication: String,
    /// The pipeline's replication origin (`tandem_<pipeline>`): its
    /// transactions are tandem's own (delivered as `Origin::Tandem`).
    pub origin: String,
    /// Most changes per `SourceEvent::Changes`.
    pub chunk_rows: usize,
    /// How often to send a standby status update when nothing else triggers one.
    pub status_interval: Duration,
    /// Whether to deliver the rows of tandem's own transactions too.
    pub own_rows: crate::source::OwnRows,
    /// After this long without a message, a status update asks the server
    /// for a keepalive (a caught-up stream proves it every heartbeat).
    pub heartbeat: Duration,
    /// After this long without any message the connection counts as lost
    /// (`Error::Timeout`): the server or the network is stalled.
    pub read_timeout: Duration,
}

impl PostgresSourceOptions {
    /// Defaults for a pipeline: slot, publication and origin `tandem_<pipeline>`.
    pub fn for_pipeline(pipeline: &str) -> Self {
        let name = format!("tandem_{pipeline}");
        PostgresSourceOptions {
            slot: name.clone(),
            publication: name.clone(),
            origin: name,
            chunk_rows: 1000,
            status_interval: Duration::from_secs(10),
            own_rows: crate::source::OwnRows::default(),
            heartbeat: Duration::from_secs(1),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// A connected, not yet streaming, Postgres source.
#[derive(Debug)]
pub struct PostgresSource {
    conn: ReplicationConn,
    opts: PostgresSourceOptions,
    pairs: Vec<PairSchema>,
    describe: String,
}

/// The server's answer to `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    pub system_id: String,
    pub timeline: String,
    pub xlog_pos: Lsn,
    pub database: Option<String>,
}

impl PostgresSource {
    /// Opens the replication connection and checks it with `IDENTIFY_SYSTEM`.
    pub async fn connect(endpoint: &Endpoint, opts: PostgresSourceOptions, pairs: Vec<PairSchema>) -> Result<Self> {
        let mut conn = ReplicationConn::connect(endpoint).await?;
        let id = identify_system(&mut conn).await?;
        tracing::debug!(endpoint = %endpoint.describe(), system = %id.system_id, wal = %id.xlog_pos, "replication connection ready");
        Ok(PostgresSource { conn, opts, pairs, describe: endpoint.describe() })
    }

    /// Streams from `start` (the checkpoint: transactions whose commit end LSN
    /// is <= `start` are skipped client-side too) until `shutdown` is cancelled
    /// (Ok), the receiver of `tx` is dropped (Ok) or an error occurs. Sends
    /// standby status updates with flush = write = apply = max(`acked`, `start`).
    pub async fn run(
        self,
        start: Lsn,
        tx: mpsc::Sender<SourceEvent>,
        acked: watch::Receiver<SourcePos>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let PostgresSource { conn, opts, pairs, describe } = self;
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            s = conn.start_replication(&opts.slot, start, &opts.publication) => s?,
        };
        tracing::info!(source = %describe, slot = %opts.slot, publication = %opts.publication, %start, "streaming");
        let mut ticker = tokio::time::interval(opts.status_interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pulse = tokio::time::interval(opts.heartbeat.max(Duration::from_millis(10)));
        pulse.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (heartbeat, read_timeout) = (opts.heartbeat, opts.read_timeout);
        let mut session = Session { stream, acked, acked_open: true, ticker, pulse, heartbeat, read_timeout, heard: Instant::now(), shutdown, tx, start };
        let mut normalizer = Normalizer::new(pairs, opts.origin.clone(), opts.chunk_rows, start).with_own_rows(opts.own_rows.clone());
        let result = session.pump(&mut normalizer).await;
        match result {
            Ok(()) => session.finish().await,
            Err(e) => Err(e),
        }
    }
}

impl crate::source::Source for PostgresSource {
    /// The slot never sends again what was confirmed.
    const ACK_IS_DURABLE: bool = true;

    async fn resume(&mut self, checkpoint: Option<&SourcePos>, _stored_identity: Option<&str>) -> Result<crate::source::Resume> {
        check_slot(&mut self.conn, &self.opts.slot).await?;
        let start = match checkpoint {
            Some(SourcePos::Postgres(l)) => *l,
            Some(other) => return Err(Error::Checkpoint(format!("{other} is not a Postgres LSN"))),
            // The slot starts where `tandem init` created it.
            None => Lsn(0),
        };
        Ok(crate::source::Resume { start: SourcePos::Postgres(start), identity: None })
    }

    async fn run(self, start: SourcePos, out: mpsc::Sender<SourceEvent>, acked: watch::Receiver<SourcePos>, shutdown: CancellationToken) -> Result<()> {
        let SourcePos::Postgres(start) = start else {
            return Err(Error::Checkpoint(format!("{start} is not a Postgres LSN")));
        };
        PostgresSource::run(self, start, out, acked, shutdown).await
    }
}

/// Refuses a slot that is missing or that the server invalidated
/// (`wal_status = 'lost'`, e.g. by `max_slot_wal_keep_size`): streaming from
/// it would skip the changes whose WAL was removed.
pub async fn check_slot(conn: &mut ReplicationConn, slot: &str) -> Result<()> {
    let sql = format!("SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = {}", crate::sql::pg::literal(slot));
    let rows = conn.simple_query(&sql).await?;
    let Some(row) = rows.into_iter().next() else {
        return Err(Error::Setup(format!("replication slot {slot} does not exist on the Postgres server; run `tandem init` to create it")));
    };
    if row.into_iter().next().flatten().as_deref() == Some("lost") {
        return Err(Error::Setup(format!(
            "replication slot {slot} was invalidated by the Postgres server (wal_status = lost, usually max_slot_wal_keep_size): \
             the WAL it needed is gone, so the changes in it cannot be replicated. Run `tandem init` again (it recreates the slot), \
             then `tandem backfill --pair <pair> --from postgres` for each pair (or `tandem check --repair`) to copy what was missed"
        )));
    }
    Ok(())
}

/// Runs `IDENTIFY_SYSTEM` on a replication connection.
pub async fn identify_system(conn: &mut ReplicationConn) -> Result<SystemIdentity> {
    let rows = conn.simple_query("IDENTIFY_SYSTEM").await?;
    let row = rows.into_iter().next().ok_or_else(|| Error::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
    let mut cols = row.into_iter();
    let mut next = || cols.next().flatten();
    let system_id = next().unwrap_or_default();
    let timeline = next().unwrap_or_default();
    let pos = next().unwrap_or_default();
    let xlog_pos = pos.parse().map_err(|e| Error::Protocol(format!("IDENTIFY_SYSTEM xlogpos: {e}")))?;
    Ok(SystemIdentity { system_id, timeline, xlog_pos, database: next() })
}

enum Wake {
    Acked(bool),
    Tick,
    Pulse,
    Message(Option<ReplicationMessage>),
}

enum Flow {
    Continue,
    Stop,
}

struct Session {
    stream: ReplicationStream,
    acked: watch::Receiver<SourcePos>,
    /// False once the applier dropped its `acked` sender.
    acked_open: bool,
    ticker: tokio::time::Interval,
    /// Checks for silence every `heartbeat`.
    pulse: tokio::time::Interval,
    heartbeat: Duration,
    read_timeout: Duration,
    /// When the server last sent anything (or we last stopped reading to wait for room).
    heard: Instant,
    shutdown: CancellationToken,
    tx: mpsc::Sender<SourceEvent>,
    start: Lsn,
}

impl Session {
    /// Reads, normalizes and delivers until shutdown or the receiver goes away.
    async fn pump(&mut self, normalizer: &mut Normalizer) -> Result<()> {
        let mut out = Vec::new();
        loop {
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(()),
                r = self.acked.changed(), if self.acked_open => Wake::Acked(r.is_ok()),
                _ = self.ticker.tick() => Wake::Tick,
                _ = self.pulse.tick() => Wake::Pulse,
                m = self.stream.next() => Wake::Message(m?),
            };
            let msg = match wake {
                Wake::Acked(still_open) => {
                    self.on_acked(still_open).await?;
                    continue;
                }
                Wake::Tick => {
                    self.report(false).await?;
                    continue;
                }
                Wake::Pulse => {
                    let silent = self.heard.elapsed();
                    if silent >= self.read_timeout {
                        return Err(Error::Timeout {
                            what: "postgres replication connection sent nothing, not even a keepalive ([timeouts] read_seconds)".into(),
                            after: silent,
                        });
                    }
                    if silent >= self.heartbeat {
                        self.report(true).await?;
                    }
                    continue;
                }
                Wake::Message(m) => m,
            };
            self.heard = Instant::now();
            match msg {
                None => return Err(Error::Protocol("the server ended the replication stream".into())),
                Some(ReplicationMessage::XLogData { wal_start, data, .. }) => {
                    let decoded = pgoutput::decode(&data).map_err(|e| match e {
                        Error::Decode(m) => Error::Decode(format!("{m} (XLogData at {wal_start})")),
                        other => other,
                    })?;
                    normalizer.handle(decoded, &mut out)?;
                    for ev in out.drain(..) {
                        if let Flow::Stop = self.deliver(ev).await? {
                            return Ok(());
                        }
                    }
                }
                Some(ReplicationMessage::Keepalive { wal_end, reply_requested, .. }) => {
                    if reply_requested {
                        self.report(false).await?;
                    }
                    if let Some(ev) = normalizer.keepalive(wal_end).or_else(|| normalizer.caught_up(wal_end)) {
                        if let Flow::Stop = self.deliver(ev).await? {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// The position we may confirm: what the applier acknowledged, or the
    /// checkpoint we started from, whichever is later.
    fn confirmable(&self) -> Lsn {
        match *self.acked.borrow() {
            SourcePos::Postgres(l) => l.max(self.start),
            SourcePos::Mysql(_) => self.start,
        }
    }

    /// Sends a standby status update; a send that cannot complete within
    /// the read timeout (a stalled server or network) is a lost connection.
    async fn report(&mut self, reply_requested: bool) -> Result<()> {
        let lsn = self.confirmable();
        tracing::trace!(%lsn, reply_requested, "standby status update");
        match tokio::time::timeout(self.read_timeout, self.stream.send_status(lsn, lsn, lsn, reply_requested)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { what: "postgres replication connection: sending a status update".into(), after: self.read_timeout }),
        }
    }

    async fn on_acked(&mut self, still_open: bool) -> Result<()> {
        if still_open {
            self.report(false).await
        } else {
            self.acked_open = false;
            Ok(())
        }
    }

    /// Sends one event, waiting for room in the channel while keeping the
    /// connection alive with status updates.
    async fn deliver(&mut self, ev: SourceEvent) -> Result<Flow> {
        loop {
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(Flow::Stop),
                permit = self.tx.reserve() => {
                    return match permit {
                        Ok(permit) => {
                            permit.send(ev);
                            Ok(Flow::Continue)
                        }
                        Err(_) => Ok(Flow::Stop),
                    };
                }
                r = self.acked.changed(), if self.acked_open => Some(r.is_ok()),
                _ = self.ticker.tick() => None,
            };
            // Not reading while waiting for room: the server's silence does not count.
            self.heard = Instant::now();
            match wake {
                Some(still_open) => self.on_acked(still_open).await?,
                None => self.report(false).await?,
            }
        }
    }

    /// Clean stop: a last status update with what is acknowledged, then close.
    async fn finish(mut self) -> Result<()> {
        self.report(false).await?;
        match tokio::time::timeout(self.read_timeout, self.stream.close()).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
}
