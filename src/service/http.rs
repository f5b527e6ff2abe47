//! A minimal HTTP/1.1 server for `[metrics] listen`: `GET /metrics`
//! (Prometheus text, lag computed at the scrape), `GET /health/live` (200
//! whenever the process and its runtime answer), `GET /health/ready` (200
//! only while both directions stream within `max_healthy_lag_seconds`, else
//! 503 naming the direction and the reason; `/health` and `/healthz` are
//! aliases), `GET /status` (JSON). One request per connection, closed after the response; GET and
//! HEAD only; request heads larger than 8 KiB or slower than 5 s are
//! dropped; at most 64 connections are served at once. Nothing it does can
//! stop replication: every error ends only its own connection.

use super::Observed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 64;

/// A response before serialization.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let body = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")) + "\n";
        Response { status, content_type: "application/json", body }
    }
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The response to `method path` (the query string is ignored).
pub fn route(method: &str, target: &str, observed: &Observed) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "only GET and HEAD\n");
    }
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => {
            observed.refresh_gauges();
            Response { status: 200, content_type: "text/plain; version=0.0.4; charset=utf-8", body: observed.metrics.render() }
        }
        "/health/live" => Response::json(200, &serde_json::json!({ "status": "alive", "pipeline": observed.pipeline })),
        "/health" | "/healthz" | "/health/ready" => {
            let doc = observed.status();
            let body = serde_json::json!({
                "status": if doc.healthy { "ok" } else { "unhealthy" },
                "reason": doc.reason,
                "pipeline": doc.pipeline,
                "directions": doc.directions.iter().map(|d| serde_json::json!({
                    "direction": d.direction, "state": d.state, "lag_seconds": d.lag_seconds,
                })).collect::<Vec<_>>(),
            });
            Response::json(if doc.healthy { 200 } else { 503 }, &body)
        }
        "/status" => Response::json(200, &observed.status()),
        "/" => Response::text(200, "tandem: /metrics /health/live /health/ready /status\n"),
        _ => Response::text(404, "not found; try /metrics, /health/live, /health/ready or /status\n"),
    }
}

/// Accepts connections until `stop` is cancelled.
pub async fn serve(listener: TcpListener, observed: Arc<Observed>, stop: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "too many http connections; dropping one");
            continue;
        };
        let observed = Arc::clone(&observed);
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &observed).await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Reads one request head, writes one response, closes.
async fn handle(mut stream: TcpStream, observed: &Observed) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return write(&mut stream, &Response::text(400, "bad request\n"), false).await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if target.is_empty() { Response::text(400, "bad request\n") } else { route(method, target, observed) };
    write(&mut stream, &response, method != "HEAD").await
}

/// The request head up to the blank line, or `None` when it is too large or not text.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
    Ok(String::from_utf8(buf).ok())
}

async fn write(stream: &mut TcpStream, r: &Response, with_body: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(r.body.as_bytes()).await?;
    }
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// `GET path` against `addr` with a timeout: (status, body). Used by `tandem status`.
pub async fn get(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))?;
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(timeout, fetch).await.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Direction;
    use crate::service::state::ServiceState;

    fn observed() -> Arc<Observed> {
        let (metrics, recorder) = crate::metrics::build().unwrap();
        let state: &'static ServiceState = Box::leak(Box::default());
        metrics::with_local_recorder(&recorder, || {
            crate::metrics::describe();
            metrics::counter!(crate::metrics::CHANGES_APPLIED, "direction" => "postgres_to_mysql", "pair" => "p", "op" => "insert").increment(4);
        });
        Arc::new(Observed { pipeline: "crm".into(), max_healthy_lag: Duration::from_secs(60), state, metrics })
    }

    #[tokio::test]
    async fn endpoints_answer_over_tcp_and_health_follows_the_directions() {
        let obs = observed();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Arc::clone(&obs), stop.clone()));
        let t = Duration::from_secs(5);

        let (code, body) = get(addr, "/health", t).await.unwrap();
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("postgres→mysql is starting"), "{body}");
        for d in crate::service::state::DIRECTIONS {
            obs.state.streaming(d);
        }
        let (code, body) = get(addr, "/health?verbose", t).await.unwrap();
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "ok");

        let (code, body) = get(addr, "/status", t).await.unwrap();
        assert_eq!(code, 200);
        let doc: crate::service::StatusDoc = serde_json::from_str(&body).unwrap();
        assert_eq!(doc.directions[0].direction, Direction::PostgresToMysql.key());
        assert_eq!(doc.directions[0].applied, 4);
        assert_eq!(doc.directions[1].applied, 0);
        assert!(doc.directions.iter().all(|d| d.paused_pairs.is_empty()));

        let (code, body) = get(addr, "/metrics", t).await.unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("tandem_changes_applied_total{direction=\"postgres_to_mysql\",pair=\"p\",op=\"insert\"} 4"), "{body}");
        assert_eq!(get(addr, "/nope", t).await.unwrap().0, 404);

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /status HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 405 "), "{out}");

        stop.cancel();
        tokio::time::timeout(t, server).await.unwrap().unwrap();
    }

    #[test]
    fn live_stays_200_while_ready_turns_503_naming_the_direction_whose_lag_passed_the_limit() {
        let obs = observed();
        for d in crate::service::state::DIRECTIONS {
            obs.state.streaming(d);
            obs.state.clock(d).caught_up();
        }
        assert_eq!(route("GET", "/health/ready", &obs).status, 200);
        // A transaction read 2 minutes ago and still not applied: a stalled destination.
        let two_minutes_ago = crate::service::liveness::now_micros() - 120_000_000;
        obs.state.clock(Direction::MysqlToPostgres).began(two_minutes_ago);
        let ready = route("GET", "/health/ready", &obs);
        assert_eq!(ready.status, 503, "{}", ready.body);
        assert!(ready.body.contains("mysql→postgres lags 12"), "{}", ready.body);
        assert_eq!(route("GET", "/health", &obs).status, 503, "/health is ready's alias");
        let live = route("GET", "/health/live", &obs);
        assert_eq!(live.status, 200, "{}", live.body);
        obs.state.halted(Direction::PostgresToMysql, &crate::Error::Unsupported("compressed binlog events".into()));
        let ready = route("GET", "/health/ready", &obs);
        assert!(ready.body.contains("postgres→mysql is halted: unsupported in the change stream: compressed binlog events"), "{}", ready.body);
    }
}
