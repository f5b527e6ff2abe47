//! What tandem's apply sessions do about destination triggers and foreign
//! keys, as `tandem validate` reports it (DESIGN §2, issue 23):
//! - Postgres: whether the role may run its sessions with
//!   `session_replication_role = replica` (superuser, or `GRANT SET ON
//!   PARAMETER` on PG 15+), so user triggers and foreign-key checks do not
//!   fire for replicated rows as on a native subscriber — tried on this
//!   session and reset;
//! - MySQL: the sessions set `foreign_key_checks = 0`; triggers always fire;
//! - every trigger on a mapped table, whether it fires on replicated rows,
//!   and the consequence: its changes to the rows tandem writes are read
//!   back and sent to the other side as that side's outcome, so the sides
//!   agree; changes it makes to other rows or tables are not replicated.
//!   A pair whose triggers fire on both sides is a problem: the outcome of
//!   one side's trigger would fire the other side's again.

use super::{my_err, pg_err, Report};
use crate::config::Config;
use crate::schema::triggers::{my_triggers, pg_triggers, Trigger};

fn consequence(t: &Trigger, side: &str, other: &str, two_way: bool) -> String {
    let then = if two_way {
        format!("what it changes in those rows is read back and sent to {other} as {side}'s outcome, so both sides keep its values; what it changes elsewhere is not replicated")
    } else {
        format!("what it changes stays in {side} (the pair replicates only {other}→{side})")
    };
    format!(
        "trigger {} ({}{}) fires on the rows tandem writes here: {then}",
        t.name,
        t.when,
        if side == "postgres" { format!(", {}", t.mode_name()) } else { String::new() }
    )
}

pub(super) async fn check(cfg: &Config, pg: &tokio_postgres::Client, my: &mut mysql_async::Conn, r: &mut Report) {
    let replica = match crate::schema::triggers::pg_may_run_as_replica(pg).await.map_err(pg_err) {
        Ok(true) => {
            r.info(
                "postgres apply sessions",
                "run with session_replication_role = replica: user triggers (except ENABLE ALWAYS / ENABLE REPLICA ones) and foreign-key checks do not fire for replicated rows, as on a native subscriber",
            );
            true
        }
        Ok(false) => {
            let user = pg.query_one("SELECT current_user::text", &[]).await.map(|row| row.get::<_, String>(0)).unwrap_or_else(|_| "?".into());
            r.warning(
                "postgres apply sessions",
                format!(
                    "role {user} may not set session_replication_role, so triggers and foreign-key checks fire for replicated rows (backfill --all then copies parents first): \
                     GRANT SET ON PARAMETER session_replication_role TO {} (PG 15+), or make the role superuser",
                    crate::sql::pg::ident(&user)
                ),
            );
            false
        }
        Err(e) => {
            r.could_not("postgres apply sessions", e);
            false
        }
    };
    r.info("mysql apply sessions", "set foreign_key_checks = 0 (rows of a batch may arrive in any order); MySQL triggers always fire");
    for pair in &cfg.pairs {
        let object = format!("pair {}", pair.name);
        let two_way = pair.direction == crate::config::PairDirection::Both;
        let (into_pg, into_my) = (
            pair.direction.flows(crate::config::Direction::MysqlToPostgres),
            pair.direction.flows(crate::config::Direction::PostgresToMysql),
        );
        let pg_fire: Vec<Trigger> = match pg_triggers(pg, &pair.postgres).await {
            Ok(ts) => {
                for t in ts.iter().filter(|t| !t.fires(replica)) {
                    r.info(format!("postgres table {}", pair.postgres), format!("trigger {} ({}, {}) does not fire on replicated rows", t.name, t.when, t.mode_name()));
                }
                ts.into_iter().filter(|t| t.fires(replica)).collect()
            }
            Err(e) => {
                r.could_not(format!("postgres triggers of {}", pair.postgres), pg_err(e));
                Vec::new()
            }
        };
        // Only triggers of a side tandem writes to fire on replicated rows.
        let pg_fire: Vec<Trigger> = if into_pg { pg_fire } else { Vec::new() };
        for t in &pg_fire {
            r.warning(format!("postgres table {}", pair.postgres), consequence(t, "postgres", "mysql", two_way));
        }
        let my_fire = match my_triggers(my, &pair.mysql).await {
            Ok(ts) => ts,
            Err(e) => {
                r.could_not(format!("mysql triggers of {}", pair.mysql), my_err(e));
                Vec::new()
            }
        };
        let my_fire: Vec<Trigger> = if into_my { my_fire } else { Vec::new() };
        for t in &my_fire {
            r.warning(format!("mysql table {}", pair.mysql), consequence(t, "mysql", "postgres", two_way));
        }
        if !pg_fire.is_empty() && !my_fire.is_empty() {
            let names = |ts: &[Trigger]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ");
            r.problem(
                &object,
                format!(
                    "triggers fire on replicated rows on both sides (postgres: {}; mysql: {}): what one side's trigger changes is sent to the other, where its triggers fire again, and the sides can end up different; \
                     let tandem's Postgres role set session_replication_role (GRANT SET ON PARAMETER session_replication_role), or ALTER TABLE {} DISABLE TRIGGER for tandem's changes",
                    names(&pg_fire),
                    names(&my_fire),
                    pair.postgres
                ),
            );
        }
    }
}
