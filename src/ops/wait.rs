//! Waiting for both databases to accept tandem's logins (`tandem init
//! --wait SECONDS`, for containers and units that start together with
//! their databases).
//!
//! Invariants: only errors that a starting server gives (connection
//! refused or reset, the server starting up or shutting down, too many
//! connections — `Error::classify` says transient) are waited out; a
//! definite error (a wrong password, a TLS failure, a bad database name)
//! ends the wait at once, since waiting cannot fix it. Progress is reported
//! through `progress` at most every 5 s, naming the database and the error.

use crate::config::Config;
use crate::error::ErrorClass;
use crate::{Error, Result};
use std::time::Duration;
use tokio::time::Instant;

const RETRY_EVERY: Duration = Duration::from_millis(500);
const SAY_EVERY: Duration = Duration::from_secs(5);

/// Waits up to `within` until a login to Postgres and one to MySQL both succeed.
pub async fn databases(cfg: &Config, within: Duration, mut progress: impl FnMut(&str)) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut said = None::<Instant>;
    for name in ["postgres", "mysql"] {
        loop {
            let attempt = async {
                if name == "postgres" {
                    crate::db::connect_pg(&cfg.postgres.endpoint).await.map(drop)
                } else {
                    crate::db::connect_mysql(&cfg.mysql.endpoint).await.map(|c| drop(tokio::spawn(c.disconnect())))
                }
            };
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let outcome = tokio::time::timeout(left, attempt).await.unwrap_or_else(|_| Err(Error::Timeout { what: format!("logging in to {name}"), after: left }));
            match outcome {
                Ok(()) => break,
                Err(e) if e.classify() != ErrorClass::Transient => return Err(e),
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Timeout { what: format!("{name} did not accept a login ({e})"), after: within });
                }
                Err(e) => {
                    if said.map_or(true, |t| t.elapsed() >= SAY_EVERY) {
                        progress(&format!("waiting for {name}: {e}"));
                        said = Some(Instant::now());
                    }
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        }
    }
    Ok(())
}
