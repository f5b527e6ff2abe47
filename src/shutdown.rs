//! Stopping on SIGTERM or SIGINT: the first of either cancels a
//! `CancellationToken` that the caller hands to the tasks it starts, so a
//! signal means "finish the batch in flight and stop", never a kill.
//!
//! Invariant: the handlers are installed before `on_signals` returns (not in
//! the task it spawns), so a signal that arrives during start-up still means
//! a clean stop instead of the default kill. It needs a Tokio runtime; it
//! never exits the process itself.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGTERM or SIGINT (see the module doc).
pub fn on_signals(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing the batch in flight"),
            _ = int.recv() => tracing::info!("SIGINT: finishing the batch in flight"),
        }
        token.cancel();
    });
}
