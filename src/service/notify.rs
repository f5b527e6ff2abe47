//! systemd notifications (`sd_notify(3)` protocol, `Type=notify` units):
//! newline-separated `KEY=VALUE` assignments in one datagram to the unix
//! socket named by `$NOTIFY_SOCKET` (a path, or an abstract name when it
//! starts with '@').
//!
//! `run` sends READY=1 once both directions stream or the instance is a
//! standby waiting for the HA lease (once per process),
//! WATCHDOG=1 every `$WATCHDOG_USEC`/2 — but only while every running
//! direction's loop checked in within that period — when the watchdog is enabled for this
//! process, STATUS=<phase and lag per direction> every few seconds and on
//! changes (at most one per second, identical lines only on the periodic
//! refresh), and STOPPING=1 as soon as shutdown begins. Sending never fails
//! the service. STATUS and WATCHDOG never block: one lost because the
//! manager's queue is full is logged at debug. READY=1 and STOPPING=1 must
//! not be lost that way (the socket's queue holds only ~10 datagrams), so
//! on a full queue they wait up to `IMPORTANT_SEND_WAIT` for room.

use super::Observed;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often STATUS= is refreshed without a state change.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// The least time between two STATUS= lines.
const STATUS_MIN_GAP: Duration = Duration::from_secs(1);
/// How long READY=1 / STOPPING=1 wait for room in a full queue.
const IMPORTANT_SEND_WAIT: Duration = Duration::from_secs(2);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    ready_sent: AtomicBool,
    stopping_sent: AtomicBool,
    /// The last STATUS= text sent, and when.
    last_status: Mutex<Option<(String, Instant)>>,
}

/// The address `$NOTIFY_SOCKET` names.
pub fn socket_addr(value: &str) -> io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("NOTIFY_SOCKET {value:?} is neither a path nor an abstract name")))
    }
}

/// The watchdog period systemd expects pings within (`$WATCHDOG_USEC`), if
/// the watchdog is enabled for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_timeout() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

impl Notifier {
    /// The notifier of `$NOTIFY_SOCKET`, or `None` when it is not set.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(v) if !v.is_empty() => Notifier::to(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier sending to the socket named like `$NOTIFY_SOCKET`.
    pub fn to(value: &str) -> io::Result<Notifier> {
        let addr = socket_addr(value)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            addr,
            ready_sent: AtomicBool::new(false),
            stopping_sent: AtomicBool::new(false),
            last_status: Mutex::new(None),
        })
    }

    /// Sends one notification (lines of `KEY=VALUE`).
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.addr).map(|_| ())
    }

    fn send_logged(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::debug!(error = %e, "systemd notification not sent");
        }
    }

    /// Sends a notification that must not be dropped: on a full queue it
    /// waits (bounded) on a blocking socket of its own.
    fn send_important(&self, message: &str) {
        let result = match self.send(message) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => UnixDatagram::unbound()
                .and_then(|s| s.set_write_timeout(Some(IMPORTANT_SEND_WAIT)).map(|_| s))
                .and_then(|s| s.send_to_addr(message.as_bytes(), &self.addr).map(|_| ())),
            other => other,
        };
        if let Err(e) = result {
            let first = message.lines().next().unwrap_or_default();
            tracing::warn!(error = %e, notification = first, "systemd notification not sent");
        }
    }

    /// READY=1, once.
    pub fn ready(&self, status: &str) {
        if !self.ready_sent.swap(true, Ordering::SeqCst) {
            tracing::info!("both directions stream; notifying READY=1");
            self.send_important(&format!("READY=1\nSTATUS={}", one_line(status)));
        }
    }

    /// STOPPING=1, once.
    pub fn stopping(&self) {
        if !self.stopping_sent.swap(true, Ordering::SeqCst) {
            self.send_important("STOPPING=1\nSTATUS=stopping: committing the batches in flight");
        }
    }

    /// STATUS=, unless one was sent less than a second ago, or the same
    /// text less than half of `STATUS_EVERY` ago.
    pub fn status(&self, status: &str) {
        let line = one_line(status);
        let mut last = self.last_status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((text, at)) = last.as_ref() {
            let gap = at.elapsed();
            if gap < STATUS_MIN_GAP || (*text == line && gap < STATUS_EVERY / 2) {
                return;
            }
        }
        self.send_logged(&format!("STATUS={line}"));
        *last = Some((line, Instant::now()));
    }

    pub fn watchdog(&self) {
        self.send_logged("WATCHDOG=1");
    }
}

/// STATUS= takes one line; keep it short too.
fn one_line(s: &str) -> String {
    let mut line: String = s.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    if line.len() > 400 {
        let mut cut = 400;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sends WATCHDOG=1 only while every running direction's loop checked in
/// within `period` (half the watchdog timeout): a loop stuck anywhere lets
/// systemd's watchdog fire. `starved` remembers that it said so once.
fn feed(notifier: &Notifier, observed: &Observed, period: Duration, starved: &mut bool) {
    if observed.state.loops_alive(period) {
        if *starved {
            tracing::info!("every direction checks in again; feeding the systemd watchdog");
        }
        *starved = false;
        notifier.watchdog();
    } else if !*starved {
        *starved = true;
        tracing::error!(status = %observed.status_line(), "a direction's loop has not checked in for {period:?}; no longer feeding the systemd watchdog");
    }
}

/// Notifies until `shutdown` (STOPPING=1) or `stop` (the service ended).
pub async fn run(notifier: Arc<Notifier>, observed: Arc<Observed>, shutdown: CancellationToken, stop: CancellationToken) {
    let mut changed = observed.state.changed();
    let period = watchdog_timeout().map(|t| (t / 2).max(Duration::from_millis(100))).unwrap_or(Duration::MAX);
    let mut starved = false;
    let mut watchdog = watchdog_timeout().map(|t| {
        let mut i = tokio::time::interval((t / 2).max(Duration::from_millis(100)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut status = tokio::time::interval(STATUS_EVERY);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watching_changes = true;
    notifier.status(&format!("starting: {}", observed.status_line()));
    loop {
        if observed.state.all_streaming() || observed.state.role().as_str() == "standby" {
            notifier.ready(&observed.status_line());
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                notifier.stopping();
                break;
            }
            _ = stop.cancelled() => break,
            r = changed.changed(), if watching_changes => {
                if r.is_err() {
                    watching_changes = false;
                }
                notifier.status(&observed.status_line());
            }
            _ = tick(&mut watchdog) => feed(&notifier, &observed, period, &mut starved),
            _ = status.tick() => notifier.status(&observed.status_line()),
        }
    }
    // Keep the watchdog fed while the batches in flight commit.
    while watchdog.is_some() {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick(&mut watchdog) => feed(&notifier, &observed, period, &mut starved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_names_a_path_or_an_abstract_socket() {
        assert!(socket_addr("/run/systemd/notify").is_ok_and(|a| a.as_pathname().is_some()));
        use std::os::linux::net::SocketAddrExt;
        assert!(socket_addr("@sd-notify-1").is_ok_and(|a| a.as_abstract_name() == Some(&b"sd-notify-1"[..])));
        assert!(socket_addr("relative").is_err());
    }

    #[test]
    fn messages_arrive_as_datagrams_and_ready_and_stopping_are_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        n.ready("a\nb");
        n.ready("again");
        n.stopping();
        n.stopping();
        n.watchdog();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        for _ in 0..3 {
            let len = server.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(got[0], "READY=1\nSTATUS=a b");
        assert!(got[1].starts_with("STOPPING=1\n"), "{got:?}");
        assert_eq!(got[2], "WATCHDOG=1");
    }

    #[test]
    fn status_lines_are_rate_limited_and_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        n.status("lag 0.1 s");
        n.status("lag 0.2 s");
        n.status("lag 0.1 s");
        let mut buf = [0u8; 1024];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=lag 0.1 s");
        assert!(server.recv(&mut buf).is_err(), "a second STATUS within a second");
    }

    #[test]
    fn stopping_waits_for_room_when_the_managers_queue_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        let mut queued = 0;
        while n.send("STATUS=filler").is_ok() {
            queued += 1;
            assert!(queued < 100_000, "the queue never filled");
        }
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            while let Ok(len) = server.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
            got
        });
        n.stopping();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), queued + 1);
        assert!(got.last().unwrap().starts_with("STOPPING=1\n"), "{:?}", got.last());
    }
}
