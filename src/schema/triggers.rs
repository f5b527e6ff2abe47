//! Triggers on a mapped table, as each catalog describes them, and whether
//! they fire on tandem's writes.
//!
//! Postgres: tandem's apply sessions run with `session_replication_role =
//! replica` where the role may set it (as a native subscriber's do); then
//! only triggers `ENABLE ALWAYS` or `ENABLE REPLICA` fire, otherwise those
//! of the default `ENABLE` (origin) mode and `ENABLE ALWAYS`. Internal
//! triggers (foreign keys) are not listed. MySQL/MariaDB triggers always
//! fire; information_schema lists only those of tables the account has
//! the TRIGGER privilege on. Read by `validate` (what it reports) and by the
//! appliers (which pairs' rows they read back after writing).

use crate::config::TableName;
use mysql_async::prelude::Queryable;

/// One trigger on a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    /// When and on what it fires, e.g. `BEFORE UPDATE`.
    pub when: String,
    /// Postgres `pg_trigger.tgenabled` (`O`, `A`, `R`, `D`); `A` for MySQL.
    pub mode: char,
}

impl Trigger {
    /// Does it fire in a session whose `session_replication_role` is replica (`replica`) or origin?
    pub fn fires(&self, replica: bool) -> bool {
        match self.mode {
            'A' => true,
            'R' => replica,
            'O' => !replica,
            _ => false,
        }
    }

    /// The mode in words (`ENABLE ALWAYS`, ...).
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            'A' => "ENABLE ALWAYS",
            'R' => "ENABLE REPLICA",
            'O' => "ENABLE",
            _ => "DISABLE",
        }
    }
}

/// May this Postgres session's role set `session_replication_role =
/// replica` (as tandem's apply sessions try to)? Tried, then reset.
pub async fn pg_may_run_as_replica(client: &tokio_postgres::Client) -> Result<bool, tokio_postgres::Error> {
    match client.batch_execute("SET session_replication_role = replica").await {
        Ok(()) => {
            client.batch_execute("RESET session_replication_role").await?;
            Ok(true)
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The user triggers on a Postgres table.
pub async fn pg_triggers(client: &tokio_postgres::Client, t: &TableName) -> Result<Vec<Trigger>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT tr.tgname::text, tr.tgenabled::text, tr.tgtype::int
             FROM pg_trigger tr JOIN pg_class c ON c.oid = tr.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND NOT tr.tgisinternal ORDER BY 1",
            &[&t.schema, &t.name],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mode: String = r.get(1);
            Trigger { name: r.get(0), when: pg_when(r.get(2)), mode: mode.chars().next().unwrap_or('O') }
        })
        .collect())
}

/// `tgtype` bits (pg_trigger.h): 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate, 64 instead.
fn pg_when(tgtype: i32) -> String {
    let timing = if tgtype & 64 != 0 {
        "INSTEAD OF"
    } else if tgtype & 2 != 0 {
        "BEFORE"
    } else {
        "AFTER"
    };
    let events: Vec<&str> = [(4, "INSERT"), (16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE")]
        .into_iter()
        .filter(|(bit, _)| tgtype & bit != 0)
        .map(|(_, e)| e)
        .collect();
    format!("{timing} {}", events.join(" OR "))
}

/// The triggers on a MySQL table (those the account may see).
pub async fn my_triggers(conn: &mut mysql_async::Conn, t: &TableName) -> Result<Vec<Trigger>, mysql_async::Error> {
    let rows: Vec<(String, String, String)> = conn
        .exec(
            "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION FROM information_schema.TRIGGERS
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME",
            (&t.schema, &t.name),
        )
        .await?;
    Ok(rows.into_iter().map(|(name, timing, event)| Trigger { name, when: format!("{timing} {event}"), mode: 'A' }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_fire_as_the_session_role_says() {
        let t = |mode| Trigger { name: "t".into(), when: "BEFORE UPDATE".into(), mode };
        assert!(t('O').fires(false) && !t('O').fires(true));
        assert!(t('A').fires(false) && t('A').fires(true));
        assert!(!t('R').fires(false) && t('R').fires(true));
        assert!(!t('D').fires(false) && !t('D').fires(true));
    }

    #[test]
    fn trigger_types_read_as_timing_and_events() {
        assert_eq!(pg_when(1 | 2 | 16), "BEFORE UPDATE");
        assert_eq!(pg_when(1 | 4 | 16), "AFTER INSERT OR UPDATE");
        assert_eq!(pg_when(64 | 4), "INSTEAD OF INSERT");
    }
}
