//! MySQL/MariaDB server checks of `tandem validate`: log_bin, binlog_format,
//! binlog_row_image, a non-zero server_id, the configured `[mysql] server_id`
//! unused by the server and its connected replicas, GTID settings, the
//! account's global replication privileges (from `SHOW GRANTS`) and the state
//! database. Grant lines may hold password hashes: they are never printed.

use super::grants::Grants;
use super::postgres::PgFacts;
use super::{my_err, Report};
use crate::config::Config;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

/// What the pair checks need to know about the MySQL session.
#[derive(Debug, Clone, Default)]
pub(super) struct MyFacts {
    pub mariadb: bool,
    /// `'user'@'host'` as CURRENT_USER() names it.
    pub account: String,
    /// `None` when SHOW GRANTS could not be read (already reported).
    pub grants: Option<Grants>,
}

type Res<T> = Result<T, String>;

/// Column `i` of a row as text (`None` for NULL or a missing column).
pub(super) use crate::state::mysql::text_at as text;

/// The column named `name` (case-insensitive) as text.
fn named(row: &Row, name: &str) -> Option<String> {
    let i = row.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name))?;
    text(row, i)
}

/// `'user'@'host'` from CURRENT_USER()'s `user@host`.
fn account(current_user: &str) -> String {
    match current_user.rsplit_once('@') {
        Some((u, h)) => format!("'{u}'@'{h}'"),
        None => format!("'{current_user}'"),
    }
}

/// Backquotes an identifier for the remedies shown to the operator.
pub(super) fn bq(s: &str) -> String {
    crate::sql::my::ident(s)
}

pub(super) async fn check(my: &mut Conn, cfg: &Config, pg: &PgFacts, r: &mut Report) -> MyFacts {
    let mut facts = MyFacts::default();
    match my.query::<Row, _>("SELECT @@version, CURRENT_USER()").await {
        Ok(rows) => {
            if let Some(row) = rows.first() {
                facts.mariadb = text(row, 0).is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"));
                facts.account = account(&text(row, 1).unwrap_or_default());
            }
        }
        Err(e) => r.could_not("mysql server", my_err(e)),
    }
    if let Err(e) = settings(my, cfg, &facts, pg, r).await {
        r.could_not("mysql server settings", e);
    }
    match my.query::<Row, _>("SHOW GRANTS").await {
        Ok(rows) => {
            let lines: Vec<String> = rows.iter().filter_map(|row| text(row, 0)).collect();
            let grants = Grants::parse(&lines);
            replication_privileges(&grants, &facts, r);
            facts.grants = Some(grants);
        }
        Err(e) => r.could_not(format!("mysql account {}", facts.account), my_err(e)),
    }
    if let Err(e) = state_database(my, cfg, &facts, r).await {
        r.could_not(format!("mysql database {}", cfg.state_schema), e);
    }
    facts
}

async fn settings(my: &mut Conn, cfg: &Config, facts: &MyFacts, pg: &PgFacts, r: &mut Report) -> Res<()> {
    let rows: Vec<Row> = my
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin','binlog_format','binlog_row_image','server_id','gtid_mode','enforce_gtid_consistency','gtid_strict_mode','gtid_domain_id',\
             'binlog_row_value_options','log_bin_compress')",
        )
        .await
        .map_err(my_err)?;
    let vars: Vec<(String, String)> = rows.iter().filter_map(|row| Some((text(row, 0)?.to_ascii_lowercase(), text(row, 1).unwrap_or_default()))).collect();
    let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_ascii_uppercase());
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".into());

    let log_bin = get("log_bin");
    if log_bin.as_deref() != Some("ON") && log_bin.as_deref() != Some("1") {
        r.problem("mysql log_bin", "binary logging is off: start the server with log-bin (log_bin = ON) in its config");
    }
    let format = get("binlog_format");
    if format.as_deref() != Some("ROW") {
        r.problem("mysql binlog_format", format!("is {}; set binlog_format = ROW (SET GLOBAL binlog_format = 'ROW' and in the server config)", shown(&format)));
    }
    let image = get("binlog_row_image");
    if image.as_deref() != Some("FULL") {
        r.problem(
            "mysql binlog_row_image",
            format!("is {}; before-images need binlog_row_image = FULL (SET GLOBAL binlog_row_image = 'FULL' and in the server config)", shown(&image)),
        );
    }
    // These can change while tandem runs: the stream also stops at such an event, never skips it.
    if get("binlog_row_value_options").is_some_and(|v| v.contains("PARTIAL_JSON")) {
        r.problem(
            "mysql binlog_row_value_options",
            "is PARTIAL_JSON: JSON updates are logged as partial diffs tandem cannot apply faithfully; \
             SET GLOBAL binlog_row_value_options = '' (and in the server config)",
        );
    }
    if get("log_bin_compress").is_some_and(|v| v == "ON" || v == "1") {
        r.problem(
            "mysql log_bin_compress",
            "is ON: compressed binlog events are not decoded by tandem (its direction would stop at the first one); \
             SET GLOBAL log_bin_compress = OFF (and in the server config)",
        );
    }
    let server_id: u64 = get("server_id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let ours = u64::from(cfg.mysql.server_id);
    if server_id == 0 {
        r.problem("mysql server_id", "the server's server_id is 0, so it serves no binlog clients: set server_id to a non-zero value in the server config");
    }
    if server_id == ours {
        r.problem(
            "mysql server_id",
            format!("[mysql] server_id = {ours} is the server's own @@server_id: choose another id in the config (unique among its replicas)"),
        );
    }
    replicas(my, facts, ours, pg, r).await;
    if facts.mariadb {
        let strict = shown(&get("gtid_strict_mode"));
        let domain = get("gtid_domain_id").unwrap_or_else(|| "?".into());
        r.info("mysql gtid_strict_mode", format!("is {strict} (gtid_domain_id {domain}); tandem tracks its position by GTID"));
    } else {
        match get("gtid_mode").as_deref() {
            Some("ON") => r.info("mysql gtid_mode", "is ON: tandem tracks its position by GTID set"),
            Some(m @ ("OFF_PERMISSIVE" | "ON_PERMISSIVE")) => r.problem(
                "mysql gtid_mode",
                format!("is {m}, a transition state: finish the change to gtid_mode = ON (or back to OFF)"),
            ),
            other => r.info("mysql gtid_mode", format!("is {}: tandem tracks its position by binlog file and offset", other.unwrap_or("OFF"))),
        }
    }
    Ok(())
}

/// The configured id must not be used by a connected replica.
async fn replicas(my: &mut Conn, facts: &MyFacts, ours: u64, pg: &PgFacts, r: &mut Report) {
    let statements: &[&str] = if facts.mariadb { &["SHOW SLAVE HOSTS"] } else { &["SHOW REPLICAS", "SHOW SLAVE HOSTS"] };
    let mut last_error = String::new();
    for sql in statements {
        match my.query::<Row, _>(*sql).await {
            Ok(rows) => {
                for row in &rows {
                    let id: Option<u64> = named(row, "Server_id").and_then(|v| v.parse().ok());
                    if id != Some(ours) {
                        continue;
                    }
                    let host = named(row, "Host").filter(|h| !h.is_empty()).unwrap_or_else(|| "?".into());
                    let port = named(row, "Port").unwrap_or_else(|| "?".into());
                    if pg.slot_active {
                        r.info(
                            "mysql server_id",
                            format!("a connected binlog client ({host}:{port}) uses server_id {ours}: this pipeline's running tandem, as its Postgres slot is active"),
                        );
                    } else {
                        r.problem(
                            "mysql server_id",
                            format!("[mysql] server_id = {ours} is used by a connected replica ({host}:{port}): choose an id no replica or other tandem pipeline uses"),
                        );
                    }
                }
                return;
            }
            Err(e) => last_error = my_err(e),
        }
    }
    r.info(
        "mysql replicas",
        format!("cannot list connected replicas ({}): make sure no replica uses server_id {ours}", last_error.trim()),
    );
}

fn replication_privileges(g: &Grants, facts: &MyFacts, r: &mut Report) {
    let mut lacking = Vec::new();
    if !(g.global("REPLICATION SLAVE") || g.global("REPLICATION REPLICA")) {
        lacking.push("REPLICATION SLAVE");
    }
    if !(g.global("REPLICATION CLIENT") || g.global("BINLOG MONITOR") || g.global("SUPER")) {
        lacking.push(if facts.mariadb { "BINLOG MONITOR" } else { "REPLICATION CLIENT" });
    }
    if lacking.is_empty() {
        return;
    }
    let roles = if g.roles.is_empty() { String::new() } else { " (privileges of granted roles are not counted)".to_string() };
    r.problem(
        format!("mysql account {}", facts.account),
        format!(
            "lacks {} on *.* (reading the binlog){roles}: GRANT {} ON *.* TO {}",
            lacking.join(" and "),
            lacking.join(", "),
            facts.account
        ),
    );
}

/// The tables `tandem init` creates in the state database.
const STATE_TABLES: [&str; 5] = ["checkpoints", "origin_marker", "conflicts", "quarantine", "signals"];

async fn state_database(my: &mut Conn, cfg: &Config, facts: &MyFacts, r: &mut Report) -> Res<()> {
    let db = &cfg.state_schema;
    let object = format!("mysql database {db}");
    let Some(g) = &facts.grants else { return Ok(()) };
    let exists = !my
        .exec::<Row, _, _>("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
        .await
        .map_err(my_err)?
        .is_empty();
    let can_create = g.on_db("CREATE", db);
    let grant = format!("GRANT ALL PRIVILEGES ON {}.* TO {}", bq(db), facts.account);
    if !exists {
        if can_create {
            r.info(&object, "does not exist yet: `tandem init` creates it");
        } else {
            r.problem(&object, format!("does not exist (or is invisible to {}), and the account may not create it: {grant}", facts.account));
        }
        return Ok(());
    }
    let tables: Vec<String> = my
        .exec::<Row, _, _>("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,))
        .await
        .map_err(my_err)?
        .iter()
        .filter_map(|row| text(row, 0))
        .collect();
    let missing: Vec<&str> = STATE_TABLES.iter().copied().filter(|t| !tables.iter().any(|x| x == t)).collect();
    if !missing.is_empty() && !can_create {
        r.problem(&object, format!("lacks tables {} and the account may not create them: {grant}", missing.join(", ")));
    }
    let mut lacking = Vec::new();
    for p in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
        if STATE_TABLES.iter().any(|t| !g.on_table(p, db, t)) {
            lacking.push(p);
        }
    }
    if !lacking.is_empty() {
        r.problem(&object, format!("the account {} lacks {} on its tables: {grant}", facts.account, lacking.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_quoted_like_grant_statements() {
        assert_eq!(account("tandem@%"), "'tandem'@'%'");
        assert_eq!(account("root@127.0.0.1"), "'root'@'127.0.0.1'");
        assert_eq!(bq("we`ird"), "`we``ird`");
    }
}
