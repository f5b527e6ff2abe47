//! A Postgres replication connection (`replication=database`) built on
//! postgres-protocol's frontend encoders and our own backend framing.
//!
//! tokio-postgres has no replication API and postgres-protocol's backend parser
//! rejects CopyBothResponse, so backend messages are framed here (tag byte +
//! i32 length) from an internal read buffer: only complete frames are parsed,
//! and the only await while reading is `read_buf` into that buffer, so
//! `ReplicationStream::next` is cancellation-safe (a frame half-read when a
//! `select!` branch is dropped stays in the buffer). Never panics on server
//! bytes; errors and notices carry SQLSTATE and message (`Error::PgServer`).
//! The password is exposed only to the authentication exchange and never
//! logged. The session runs with `TimeZone=UTC`, `DateStyle=ISO`,
//! `bytea_output=hex`, `extra_float_digits=3`, `client_encoding=UTF8`, which
//! `values.rs` relies on. The transport is boxed: plain TCP, a unix socket,
//! or TLS set up by `crate::tls::pg::start_tls` (SSLRequest first).

use super::pgoutput::PG_EPOCH_OFFSET_MICROS;
use crate::config::{Endpoint, TlsMode};
use crate::model::Lsn;
use crate::{Error, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Any byte stream the connection can run over (plain TCP, Unix socket, TLS).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Read at most this much more per wake-up when a frame is incomplete, so a
/// bogus length cannot make us reserve gigabytes up front.
const READ_CHUNK: usize = 8 * 1024 * 1024;

/// One backend message: tag and body (without the length).
#[derive(Debug)]
struct Frame {
    tag: u8,
    body: Bytes,
}

/// Buffered, framed transport.
struct Wire {
    io: Box<dyn Transport>,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Wire {
    /// Takes one complete frame out of the read buffer, if there is one.
    fn take_frame(&mut self) -> Result<Option<Frame>> {
        let Some(header) = self.rbuf.get(..5) else { return Ok(None) };
        let tag = header[0];
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l >= 4)
            .ok_or_else(|| Error::Protocol(format!("backend message {:?} with invalid length {len}", tag as char)))?;
        let total = len + 1;
        if self.rbuf.len() < total {
            let missing = total - self.rbuf.len();
            self.rbuf.reserve(missing.min(READ_CHUNK));
            return Ok(None);
        }
        let mut frame = self.rbuf.split_to(total).freeze();
        frame.advance(5);
        Ok(Some(Frame { tag, body: frame }))
    }

    /// The next backend frame. Cancellation-safe: only `read_buf` awaits.
    async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(frame);
            }
            if self.rbuf.capacity() - self.rbuf.len() < 8192 {
                self.rbuf.reserve(64 * 1024);
            }
            let n = self.io.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "postgres closed the replication connection",
                )));
            }
        }
    }

    /// Writes out everything queued in `wbuf`.
    async fn flush(&mut self) -> Result<()> {
        self.io.write_all(&self.wbuf).await?;
        self.io.flush().await?;
        self.wbuf.clear();
        Ok(())
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Protocol(format!("encoding a frontend message: {e}"))
}

/// Error or notice fields → `Error::PgServer` (SQLSTATE 'C', message 'M', detail 'D').
fn server_error(body: &[u8]) -> Error {
    let (mut code, mut message, mut detail) = (String::new(), String::new(), String::new());
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(tail.get(..end).unwrap_or_default()).into_owned();
        match field {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    if !detail.is_empty() {
        message = format!("{message} ({detail})");
    }
    Error::PgServer { code, message }
}

fn log_notice(body: &[u8]) {
    if let Error::PgServer { code, message } = server_error(body) {
        tracing::info!(code = %code, "postgres notice: {message}");
    }
}

/// A big-endian reader over a frame body that fails instead of panicking.
struct Body<'a>(&'a [u8], &'static str);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Protocol(format!("truncated {} message", self.1)));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn i16(&mut self) -> Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(i32::from_be_bytes(a))
    }
    fn i64(&mut self) -> Result<i64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
}

use crate::sql::pg::{ident as quote_ident, literal as quote_literal};

/// The `START_REPLICATION` command for a pgoutput slot, protocol version 1,
/// with logical messages (backfill watermarks; Postgres 14 and later).
pub fn start_replication_sql(slot: &str, start: Lsn, publication: &str) -> String {
    format!(
        "START_REPLICATION SLOT {} LOGICAL {start} (proto_version '1', publication_names {}, messages 'true')",
        quote_ident(slot),
        quote_literal(&quote_ident(publication))
    )
}

/// A connection in `replication=database` mode, ready for commands.
pub struct ReplicationConn {
    wire: Wire,
    describe: String,
}

impl std::fmt::Debug for ReplicationConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplicationConn({})", self.describe)
    }
}

impl ReplicationConn {
    /// Connects and authenticates (trust, cleartext, MD5, SCRAM-SHA-256),
    /// over TLS as the endpoint's `tls` mode says (never on a unix socket).
    pub async fn connect(endpoint: &Endpoint) -> Result<Self> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_inner(endpoint)).await.map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{}: replication connection timed out", endpoint.describe()),
            ))
        })?
    }

    async fn connect_inner(endpoint: &Endpoint) -> Result<Self> {
        let result = Self::connect_and_login(endpoint).await;
        match result {
            Err(Error::PgServer { code, message })
                if endpoint.tls == TlsMode::Disable && crate::tls::pg_refused_plaintext(&code, &message) =>
            {
                Err(crate::tls::requires_tls_error(endpoint, message))
            }
            other => other,
        }
    }

    async fn connect_and_login(endpoint: &Endpoint) -> Result<Self> {
        let io: Box<dyn Transport> = if endpoint.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", endpoint.host, endpoint.port);
            Box::new(tokio::net::UnixStream::connect(path).await?)
        } else {
            let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
            tcp.set_nodelay(true)?;
            match crate::tls::client_config(endpoint)? {
                None => Box::new(tcp),
                Some(config) => match crate::tls::pg::start_tls(endpoint, config, tcp).await? {
                    crate::tls::pg::Upgraded::Tls(tls) => Box::new(tls),
                    crate::tls::pg::Upgraded::Plain(tcp) => Box::new(tcp),
                },
            }
        };
        let mut conn = ReplicationConn {
            wire: Wire { io, rbuf: BytesMut::with_capacity(64 * 1024), wbuf: BytesMut::new() },
            describe: endpoint.describe(),
        };
        let params = [
            ("user", endpoint.user.as_str()),
            ("database", endpoint.database.as_str()),
            ("replication", "database"),
            ("application_name", "tandem"),
            ("client_encoding", "UTF8"),
            ("TimeZone", "UTC"),
            ("DateStyle", "ISO"),
            ("bytea_output", "hex"),
            ("extra_float_digits", "3"),
        ];
        frontend::startup_message(params.iter().copied(), &mut conn.wire.wbuf).map_err(io_err)?;
        conn.wire.flush().await?;
        conn.authenticate(endpoint).await?;
        Ok(conn)
    }

    fn password<'e>(&self, endpoint: &'e Endpoint) -> Result<&'e str> {
        endpoint.password.as_ref().map(|p| p.expose()).ok_or_else(|| {
            Error::Auth(format!("{}: the server asks for a password but none is configured", self.describe))
        })
    }

    async fn authenticate(&mut self, endpoint: &Endpoint) -> Result<()> {
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let frame = self.wire.next_frame().await?;
            match frame.tag {
                b'R' => {
                    let mut b = Body(&frame.body, "authentication");
                    match b.i32()? {
                        0 => {}
                        3 => {
                            let pw = self.password(endpoint)?;
                            frontend::password_message(pw.as_bytes(), &mut self.wire.wbuf).map_err(io_err)?;
                            self.wire.flush().await?;
                        }
                        5 => {
                            let salt: [u8; 4] =
                                b.take(4)?.try_into().map_err(|_| Error::Protocol("bad MD5 salt".into()))?;
                            let pw = self.password(endpoint)?;
                            let hash = md5_hash(endpoint.user.as_bytes(), pw.as_bytes(), salt);
                            frontend::password_message(hash.as_bytes(), &mut self.wire.wbuf).map_err(io_err)?;
                            self.wire.flush().await?;
                        }
                        10 => {
                            let offered = b.0.split(|&c| c == 0).any(|m| m == b"SCRAM-SHA-256");
                            if !offered {
                                let list = String::from_utf8_lossy(b.0).replace('\0', " ");
                                return Err(Error::Auth(format!(
                                    "{}: no supported SASL mechanism offered ({})",
                                    self.describe,
                                    list.trim()
                                )));
                            }
                            let pw = self.password(endpoint)?;
                            let s = sasl::ScramSha256::new(pw.as_bytes(), sasl::ChannelBinding::unsupported());
                            frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut self.wire.wbuf)
                                .map_err(io_err)?;
                            self.wire.flush().await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| Error::Protocol("SASL continue without SASL start".into()))?;
                            s.update(b.0).map_err(|e| Error::Auth(format!("{}: SCRAM: {e}", self.describe)))?;
                            frontend::sasl_response(s.message(), &mut self.wire.wbuf).map_err(io_err)?;
                            self.wire.flush().await?;
                        }
                        12 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| Error::Protocol("SASL final without SASL start".into()))?;
                            s.finish(b.0).map_err(|e| Error::Auth(format!("{}: SCRAM: {e}", self.describe)))?;
                        }
                        other => {
                            return Err(Error::Auth(format!(
                                "{}: unsupported authentication method {other}",
                                self.describe
                            )))
                        }
                    }
                }
                b'E' => return Err(server_error(&frame.body)),
                b'N' => log_notice(&frame.body),
                b'S' | b'K' | b'v' => {}
                b'Z' => return Ok(()),
                other => return Err(Error::Protocol(format!("unexpected message {:?} during startup", other as char))),
            }
        }
    }

    /// Runs a simple-protocol command (replication or SQL) and returns all rows
    /// of all its result sets as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        frontend::query(sql, &mut self.wire.wbuf).map_err(io_err)?;
        self.wire.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.wire.next_frame().await?;
            match frame.tag {
                b'D' => rows.push(data_row(&frame.body)?),
                b'T' | b'C' | b'I' | b'S' => {}
                b'N' => log_notice(&frame.body),
                b'E' => error = Some(server_error(&frame.body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                // COPY is not something tandem issues on this connection.
                other => {
                    return Err(Error::Protocol(format!("unexpected message {:?} in a simple query", other as char)))
                }
            }
        }
    }

    /// Starts streaming a logical slot (pgoutput, protocol version 1).
    pub async fn start_replication(mut self, slot: &str, start: Lsn, publication: &str) -> Result<ReplicationStream> {
        let sql = start_replication_sql(slot, start, publication);
        frontend::query(&sql, &mut self.wire.wbuf).map_err(io_err)?;
        self.wire.flush().await?;
        loop {
            let frame = self.wire.next_frame().await?;
            match frame.tag {
                b'W' => return Ok(ReplicationStream { wire: self.wire, describe: self.describe }),
                b'N' => log_notice(&frame.body),
                b'S' => {}
                b'E' => return Err(server_error(&frame.body)),
                other => {
                    return Err(Error::Protocol(format!(
                        "unexpected message {:?} after START_REPLICATION",
                        other as char
                    )))
                }
            }
        }
    }

    /// Ends the session politely.
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.wire.wbuf);
        self.wire.flush().await
    }
}

fn data_row(body: &[u8]) -> Result<Vec<Option<String>>> {
    let mut b = Body(body, "DataRow");
    let n = usize::try_from(b.i16()?).map_err(|_| Error::Protocol("negative DataRow column count".into()))?;
    let mut row = Vec::with_capacity(n.min(body.len() / 4));
    for _ in 0..n {
        let len = b.i32()?;
        row.push(match usize::try_from(len) {
            Err(_) => None,
            Ok(len) => Some(
                String::from_utf8(b.take(len)?.to_vec())
                    .map_err(|_| Error::Decode("query result is not valid UTF-8".into()))?,
            ),
        });
    }
    Ok(row)
}

/// One message of the replication stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicationMessage {
    /// WAL data: one pgoutput message. Times are µs since 2000-01-01.
    XLogData { wal_start: Lsn, wal_end: Lsn, server_time: i64, data: Bytes },
    /// Primary keepalive.
    Keepalive { wal_end: Lsn, server_time: i64, reply_requested: bool },
}

/// A connection in CopyBoth mode, streaming a slot.
pub struct ReplicationStream {
    wire: Wire,
    describe: String,
}

impl std::fmt::Debug for ReplicationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplicationStream({})", self.describe)
    }
}

/// µs since 2000-01-01 now, for standby status updates.
fn pg_now() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    unix - PG_EPOCH_OFFSET_MICROS
}

impl ReplicationStream {
    /// The next XLogData or keepalive; `None` once the server ended the stream
    /// (CopyDone). Cancellation-safe.
    pub async fn next(&mut self) -> Result<Option<ReplicationMessage>> {
        loop {
            let frame = self.wire.next_frame().await?;
            match frame.tag {
                b'd' => return parse_copy_data(frame.body).map(Some),
                b'c' => return Ok(None),
                b'N' => log_notice(&frame.body),
                b'S' => {}
                b'E' => return Err(server_error(&frame.body)),
                other => {
                    return Err(Error::Protocol(format!(
                        "unexpected message {:?} in the replication stream",
                        other as char
                    )))
                }
            }
        }
    }

    /// Sends a standby status update. Not cancellation-safe: await it to the end.
    pub async fn send_status(&mut self, written: Lsn, flushed: Lsn, applied: Lsn, reply_requested: bool) -> Result<()> {
        let w = &mut self.wire.wbuf;
        w.put_u8(b'd');
        w.put_i32(4 + 1 + 8 * 4 + 1);
        w.put_u8(b'r');
        w.put_u64(written.0);
        w.put_u64(flushed.0);
        w.put_u64(applied.0);
        w.put_i64(pg_now());
        w.put_u8(u8::from(reply_requested));
        self.wire.flush().await
    }

    /// Ends the session: CopyDone, then Terminate. Best effort.
    pub async fn close(mut self) -> Result<()> {
        frontend::copy_done(&mut self.wire.wbuf);
        frontend::terminate(&mut self.wire.wbuf);
        self.wire.flush().await
    }
}

/// Parses the payload of one CopyData of the replication stream.
pub fn parse_copy_data(body: Bytes) -> Result<ReplicationMessage> {
    let mut b = Body(&body, "replication CopyData");
    match b.u8()? {
        b'w' => {
            let wal_start = Lsn(b.i64()? as u64);
            let wal_end = Lsn(b.i64()? as u64);
            let server_time = b.i64()?;
            let data = body.slice(25..);
            Ok(ReplicationMessage::XLogData { wal_start, wal_end, server_time, data })
        }
        b'k' => {
            let wal_end = Lsn(b.i64()? as u64);
            let server_time = b.i64()?;
            let reply_requested = b.u8()? != 0;
            Ok(ReplicationMessage::Keepalive { wal_end, server_time, reply_requested })
        }
        other => Err(Error::Protocol(format!("unknown replication message {:?}", other as char))),
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
