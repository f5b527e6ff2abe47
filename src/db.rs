//! Ordinary (non-replication) connections to both databases from an `Endpoint`.
//!
//! Every Postgres session and every MySQL connection (sessions and the binlog
//! dump) is opened here, with the endpoint's TLS mode applied through
//! `crate::tls`, so all of them encrypt and verify alike. The password is
//! handed to the drivers only here. Connection failures caused by TLS (a
//! certificate that does not verify, a server that insists on TLS under
//! `disable`) become messages naming the endpoint and what to change.

use crate::config::{Endpoint, TlsMode};
use crate::{Error, Result};

/// Opens a Postgres session; the connection task runs in the background.
pub async fn connect_pg(ep: &Endpoint) -> Result<tokio_postgres::Client> {
    connect_pg_tuned(ep, |_| {}).await.map(|(client, _)| client)
}

/// Opens a Postgres session with extra driver settings (`tune` runs after
/// the endpoint's); the token is cancelled when the connection ends.
pub async fn connect_pg_tuned(
    ep: &Endpoint,
    tune: impl FnOnce(&mut tokio_postgres::Config),
) -> Result<(tokio_postgres::Client, tokio_util::sync::CancellationToken)> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&ep.host).port(ep.port).user(&ep.user).dbname(&ep.database).application_name("tandem");
    cfg.connect_timeout(std::time::Duration::from_secs(10));
    // A unix socket (a host starting with /) never carries TLS, as in libpq.
    let socket = ep.host.starts_with('/');
    cfg.ssl_mode(if socket { tokio_postgres::config::SslMode::Disable } else { crate::tls::pg::ssl_mode(ep.tls) });
    if let Some(pw) = &ep.password {
        cfg.password(pw.expose());
    }
    tune(&mut cfg);
    let ended = tokio_util::sync::CancellationToken::new();
    let tls = if socket { None } else { crate::tls::client_config(ep)? };
    let client = match tls {
        None => {
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| pg_connect_error(ep, e))?;
            spawn_pg_connection(conn, ended.clone());
            client
        }
        Some(tls) => {
            let (client, conn) =
                cfg.connect(crate::tls::pg::PgTls::new(tls)).await.map_err(|e| pg_connect_error(ep, e))?;
            spawn_pg_connection(conn, ended.clone());
            client
        }
    };
    client.batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 3").await?;
    Ok((client, ended))
}

fn spawn_pg_connection<S, T>(conn: tokio_postgres::Connection<S, T>, ended: tokio_util::sync::CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
        ended.cancel();
    });
}

/// A TLS failure or a plain-text refusal as a clear error; anything else as is.
fn pg_connect_error(ep: &Endpoint, e: tokio_postgres::Error) -> Error {
    if let Some(tls) = crate::tls::handshake_error(ep, &e) {
        return tls;
    }
    // tokio-postgres reports a refused SSLRequest only as text; match it to
    // name the endpoint and the setting (a hint, not a classification).
    if matches!(ep.tls, TlsMode::Require | TlsMode::VerifyFull) && chain_mentions(&e, "server does not support TLS") {
        return Error::Tls(format!(
            "{}: the server does not accept TLS connections but tls = \"{}\" requires TLS",
            ep.describe(),
            ep.tls.as_str()
        ));
    }
    if ep.tls == TlsMode::Disable {
        if let Some(db) = e.as_db_error() {
            if crate::tls::pg_refused_plaintext(db.code().code(), db.message()) {
                return crate::tls::requires_tls_error(ep, db.message());
            }
        }
    }
    Error::Postgres(e)
}

/// Does any error in `e`'s source chain display `text`?
fn chain_mentions(e: &(dyn std::error::Error + 'static), text: &str) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains(text) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// mysql_async options for an endpoint without TLS (no database selected
/// unless `with_db`).
fn mysql_opts(ep: &Endpoint, with_db: bool) -> mysql_async::OptsBuilder {
    let mut b = mysql_async::OptsBuilder::default()
        .ip_or_hostname(ep.host.clone())
        .tcp_port(ep.port)
        .user(Some(ep.user.clone()))
        .prefer_socket(false)
        .pass(ep.password.as_ref().map(|p| p.expose().to_string()));
    if with_db {
        b = b.db_name(Some(ep.database.clone()));
    }
    b
}

/// Opens a bare MySQL connection with the endpoint's TLS mode (`prefer`
/// falls back to plain text when the server has no TLS); no session
/// settings. The binlog reader uses this directly.
pub async fn open_mysql(ep: &Endpoint, with_db: bool) -> Result<mysql_async::Conn> {
    use mysql_async::{DriverError, Error as MyError};
    let plain = mysql_opts(ep, with_db);
    let result = match crate::tls::mysql_ssl_opts(ep)? {
        None => mysql_async::Conn::new(plain).await,
        Some(ssl) => match mysql_async::Conn::new(plain.clone().ssl_opts(ssl)).await {
            Err(MyError::Driver(DriverError::NoClientSslFlagFromServer)) if ep.tls == TlsMode::Prefer => {
                mysql_async::Conn::new(plain).await
            }
            Err(MyError::Driver(DriverError::NoClientSslFlagFromServer)) => {
                return Err(Error::Tls(format!(
                    "{}: the server does not offer TLS but tls = \"{}\" requires it",
                    ep.describe(),
                    ep.tls.as_str()
                )))
            }
            other => other,
        },
    };
    result.map_err(|e| mysql_connect_error(ep, e))
}

fn mysql_connect_error(ep: &Endpoint, e: mysql_async::Error) -> Error {
    if let Some(tls) = crate::tls::handshake_error(ep, &e) {
        return match (ep.tls, crate::tls::find_rustls_error(&e)) {
            (TlsMode::Require, Some(r)) if crate::tls::is_name_mismatch(r) => Error::Tls(format!(
                "{}: the server's certificate does not name host {:?}; with this MySQL driver tls = \"require\" \
                 plus ca_file checks the host name too: connect by a name the certificate carries, or drop ca_file ({r})",
                ep.describe(),
                ep.host
            )),
            _ => tls,
        };
    }
    if let (TlsMode::Disable, mysql_async::Error::Server(s)) = (ep.tls, &e) {
        if crate::tls::mysql_refused_plaintext(s.code) {
            return crate::tls::requires_tls_error(ep, &s.message);
        }
        if s.code == crate::tls::MYSQL_ACCESS_DENIED {
            return Error::Tls(format!(
                "{}: mysql: {e} (tls = \"disable\": if the server requires TLS (require_secure_transport, or an account \
                 created with REQUIRE SSL), set tls = \"require\" or \"verify-full\")",
                ep.describe()
            ));
        }
    }
    Error::Mysql(e)
}

/// Opens a MySQL session with tandem's session settings: UTC, utf8mb4, strict mode.
pub async fn connect_mysql(ep: &Endpoint) -> Result<mysql_async::Conn> {
    use mysql_async::prelude::Queryable;
    let mut conn = open_mysql(ep, true).await?;
    conn.query_drop(
        "SET NAMES utf8mb4, time_zone = '+00:00', \
         sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    )
    .await?;
    Ok(conn)
}
