//! Postgres over rustls: a `MakeTlsConnect` for tokio-postgres sessions and
//! `start_tls` for tandem's own replication connection, both built from
//! `super::client_config` so every Postgres connection verifies alike.
//!
//! Invariants: `start_tls` sends SSLRequest and reads exactly the one-byte
//! answer before the handshake, so no plain-text byte is ever mixed into the
//! TLS stream; a refusal ('N') falls back to plain text only for `prefer`.
//! Channel binding is not offered (SCRAM then runs without `-PLUS`).

use crate::config::{Endpoint, TlsMode};
use crate::{Error, Result};
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::TlsConnector;

/// tokio-postgres TLS connector over rustls.
#[derive(Clone)]
pub struct PgTls {
    connector: TlsConnector,
}

impl PgTls {
    pub fn new(config: Arc<rustls::ClientConfig>) -> Self {
        PgTls { connector: TlsConnector::from(config) }
    }
}

/// The tokio-postgres `sslmode` for a tls mode.
pub fn ssl_mode(mode: TlsMode) -> tokio_postgres::config::SslMode {
    use tokio_postgres::config::SslMode;
    match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyFull => SslMode::Require,
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<PgTlsConnect> {
        Ok(PgTlsConnect { connector: self.connector.clone(), name: super::server_name(domain)? })
    }
}

/// One pending handshake to a named server.
pub struct PgTlsConnect {
    connector: TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move { Ok(PgTlsStream(self.connector.connect(self.name, stream).await?)) })
    }
}

/// An established TLS session under a tokio-postgres connection.
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// The outcome of `start_tls`.
pub enum Upgraded<S> {
    Tls(tokio_rustls::client::TlsStream<S>),
    /// The server refused TLS and the mode (`prefer`) allows plain text.
    Plain(S),
}

/// Asks the server for TLS on a fresh connection (SSLRequest) and performs
/// the handshake. `Ok(Plain)` only for `prefer` against a server without
/// TLS; must not be called for `disable`.
pub async fn start_tls<S>(ep: &Endpoint, config: Arc<rustls::ClientConfig>, mut stream: S) -> Result<Upgraded<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await?;
    stream.flush().await?;
    let answer = stream.read_u8().await?;
    match answer {
        b'S' => {}
        b'N' if ep.tls == TlsMode::Prefer => return Ok(Upgraded::Plain(stream)),
        b'N' => {
            return Err(Error::Tls(format!(
                "{}: the server does not accept TLS connections (SSLRequest refused) but tls = \"{}\" requires TLS",
                ep.describe(),
                ep.tls.as_str()
            )))
        }
        other => {
            return Err(Error::Protocol(format!(
                "{}: unexpected answer {:?} to SSLRequest",
                ep.describe(),
                other as char
            )))
        }
    }
    let name = super::server_name(&ep.host)?;
    match TlsConnector::from(config).connect(name, stream).await {
        Ok(tls) => Ok(Upgraded::Tls(tls)),
        Err(e) => Err(super::handshake_error(ep, &e).unwrap_or(Error::Io(e))),
    }
}
