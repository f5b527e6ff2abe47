//! `check --repair`: makes both sides equal by ownership (DESIGN §3, §9).
//!
//! - A differing column takes its owner's value; a `both` column the pair's
//!   `on_conflict` side (`last-writer-wins`: the side whose
//!   `timestamp_column` is newer, ties to `tie_breaker`; `manual`: left as is
//!   and reported as not repaired).
//! - A row present on one side only is copied to the other when that side
//!   owns rows (`default_owner` = that side or `both`), else deleted.
//! - A one-way pair (`direction`) is repaired toward its source: every
//!   differing column takes the source's value, a row only on the source is
//!   copied, a row only on the destination is deleted.
//! - Writes carry tandem's origin tags so they do not echo: Postgres writes
//!   run in a session set up with the replication origin, each MySQL repair
//!   transaction first writes `origin_marker`. PostgreSQL lets only one
//!   session use an origin at a time (before 16); while `tandem run` holds it
//!   the repair session uses `<origin>_repair` instead (see `PgOrigin`).
//! - Values are the winner's canonical texts, cast back by the server to the
//!   column's type; generated columns are never written. An update applies
//!   only if the loser's columns still hold what the check read, so a change
//!   made meanwhile is not overwritten (it is reported as not repaired).

use super::report::{Fields, NotRepaired, RepairRecord};
use super::scan::{Finding, Observed, PairCtx};
use crate::config::{Config, ConflictPolicy, Owner, PairConfig, Side};
use crate::schema::ValueKind;
use crate::sql::pg::ident as pg_ident;
use crate::state::mysql::MyPipelineState;
use crate::tables::canonical::{Binder, Dialect, KeyText};
use crate::tables::sides::TextRow;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use std::cmp::Ordering;
use tokio_postgres::types::ToSql;

/// Which replication origin the Postgres repair session runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOrigin {
    /// `tandem_<pipeline>`: the running pipeline drops these as its own.
    Pipeline(String),
    /// `tandem_<pipeline>_repair`, used while the pipeline holds its origin.
    Repair(String),
}

/// The repair sessions on both databases.
pub struct Writer {
    pg: tokio_postgres::Client,
    my: mysql_async::Conn,
    /// Where each MySQL repair transaction writes its origin marker first.
    my_state: MyPipelineState,
    pub origin: PgOrigin,
}

impl Writer {
    pub async fn connect(cfg: &Config) -> Result<Writer> {
        let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        let origin = cfg.origin_name();
        let setup = "SELECT pg_replication_origin_session_setup($1)";
        let origin = match pg.query(setup, &[&origin]).await {
            Ok(_) => PgOrigin::Pipeline(origin),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) => {
                let spare = format!("{origin}_repair");
                pg.query(
                    "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                    &[&spare],
                )
                .await?;
                pg.query(setup, &[&spare]).await?;
                PgOrigin::Repair(spare)
            }
            Err(e) => {
                return Err(Error::Setup(format!(
                    "cannot set up replication origin {origin} for repairs (run `tandem init`; the role needs superuser or EXECUTE on pg_replication_origin_session_setup): {e}"
                )))
            }
        };
        let my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        Ok(Writer { pg, my, my_state: MyPipelineState::new(cfg), origin })
    }

    async fn write_pg(&mut self, sql: &str, params: &[String]) -> Result<u64> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.pg.execute(sql, &refs).await?)
    }

    async fn write_my(&mut self, sql: &str, params: Vec<String>) -> Result<u64> {
        let mut tx = self.my.start_transaction(mysql_async::TxOpts::default()).await?;
        self.my_state.write_origin_marker(&mut tx).await?;
        let params = if params.is_empty() {
            mysql_async::Params::Empty
        } else {
            mysql_async::Params::Positional(params.into_iter().map(|p| mysql_async::Value::Bytes(p.into_bytes())).collect())
        };
        tx.exec_drop(sql, params).await?;
        let n = tx.affected_rows();
        tx.commit().await?;
        Ok(n)
    }
}

/// One write that makes a row equal.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// Set `columns` on `target` to the other side's values.
    Update { target: Side, columns: Vec<usize> },
    /// Copy the whole row to `target`.
    Insert { target: Side },
    /// Delete the row from `target`.
    Delete { target: Side },
}

/// Orders two canonical texts of the `timestamp_column` (NULL is oldest).
fn newer(kind: ValueKind, a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match kind {
            ValueKind::Int | ValueKind::UInt | ValueKind::Decimal | ValueKind::Float => {
                match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(p), Ok(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
                    _ => x.cmp(y),
                }
            }
            // Fixed-width `YYYY-MM-DD HH:MM:SS.ffffff` texts order as times.
            _ => x.cmp(y),
        },
    }
}

/// Which side's value a differing column takes, or why it is left alone.
fn winner(pair: &PairConfig, ctx: &PairCtx, col: usize, pg: &TextRow, my: &TextRow) -> std::result::Result<Side, String> {
    // A one-way pair's destination follows its source, whoever owns the column.
    if let Some(source) = pair.direction.only_source() {
        return Ok(source);
    }
    match ctx.schema.columns[col].owner {
        Owner::Postgres => Ok(Side::Postgres),
        Owner::Mysql => Ok(Side::Mysql),
        Owner::Both => match pair.on_conflict {
            ConflictPolicy::PostgresWins => Ok(Side::Postgres),
            ConflictPolicy::MysqlWins => Ok(Side::Mysql),
            ConflictPolicy::Manual => Err("on_conflict = manual: decide with `tandem conflicts resolve` or by hand".to_string()),
            ConflictPolicy::LastWriterWins => {
                let ts = pair.timestamp_column.as_deref().and_then(|t| ctx.schema.column_index(t));
                let Some(ts) = ts else { return Err("last-writer-wins without a usable timestamp_column".to_string()) };
                let get = |r: &TextRow| r.get(ts).cloned().flatten();
                match newer(crate::tables::canonical::pg_kind_of(&ctx.schema.columns[ts]), get(pg).as_deref(), get(my).as_deref()) {
                    Ordering::Greater => Ok(Side::Postgres),
                    Ordering::Less => Ok(Side::Mysql),
                    Ordering::Equal => Ok(pair.tie_breaker),
                }
            }
        },
    }
}

fn generated(ctx: &PairCtx, side: Side, col: usize) -> bool {
    let c = &ctx.schema.columns[col];
    match side {
        Side::Postgres => c.pg_generated,
        Side::Mysql => c.my_generated,
    }
}

/// The column cannot be set by an UPDATE on `side` (generated, or a Postgres identity ALWAYS).
fn not_updatable(ctx: &PairCtx, side: Side, col: usize) -> bool {
    generated(ctx, side, col) || (side == Side::Postgres && ctx.schema.columns[col].pg_identity_always)
}

/// The actions for one confirmed difference, and what is left unrepaired (with why).
fn plan(pair: &PairConfig, ctx: &PairCtx, o: &Observed, f: &Finding) -> (Vec<Action>, Vec<(Vec<usize>, String)>) {
    let owns_rows = |s: Side| match pair.direction.only_source() {
        Some(source) => s == source,
        None => pair.default_owner == Owner::Both || pair.default_owner == if s == Side::Postgres { Owner::Postgres } else { Owner::Mysql },
    };
    match (f, &o.pg, &o.my) {
        (Finding::MissingInMysql, _, _) if owns_rows(Side::Postgres) => (vec![Action::Insert { target: Side::Mysql }], vec![]),
        (Finding::MissingInMysql, _, _) => (vec![Action::Delete { target: Side::Postgres }], vec![]),
        (Finding::MissingInPostgres, _, _) if owns_rows(Side::Mysql) => (vec![Action::Insert { target: Side::Postgres }], vec![]),
        (Finding::MissingInPostgres, _, _) => (vec![Action::Delete { target: Side::Mysql }], vec![]),
        (Finding::Different(cols), Some(pg), Some(my)) => {
            let (mut to_pg, mut to_my, mut left) = (Vec::new(), Vec::new(), Vec::new());
            for &c in cols {
                match winner(pair, ctx, c, pg, my) {
                    Err(why) => left.push((vec![c], why)),
                    Ok(w) if not_updatable(ctx, w.other(), c) => {
                        left.push((vec![c], format!("generated on the {} side; cannot be written", w.other())))
                    }
                    Ok(Side::Postgres) => to_my.push(c),
                    Ok(Side::Mysql) => to_pg.push(c),
                }
            }
            let mut actions = Vec::new();
            if !to_pg.is_empty() {
                actions.push(Action::Update { target: Side::Postgres, columns: to_pg });
            }
            if !to_my.is_empty() {
                actions.push(Action::Update { target: Side::Mysql, columns: to_my });
            }
            (actions, left)
        }
        (Finding::Different(cols), _, _) => (vec![], vec![(cols.clone(), "the row changed while repairing".to_string())]),
    }
}

/// SQL and parameters of one action.
fn render(ctx: &PairCtx, key: &KeyText, o: &Observed, a: &Action) -> Option<(String, Vec<String>)> {
    let (target, sql, source) = match a {
        Action::Update { target, .. } | Action::Insert { target } | Action::Delete { target } => match target {
            Side::Postgres => (*target, &ctx.pg, o.my.as_ref()),
            Side::Mysql => (*target, &ctx.my, o.pg.as_ref()),
        },
    };
    let name = |i: usize| {
        let c = &ctx.schema.columns[i];
        match sql.dialect {
            Dialect::Postgres => pg_ident(&c.pg_name),
            _ => crate::tables::canonical::my_ident(&c.my_name),
        }
    };
    let value = |row: &TextRow, i: usize| row.get(i).cloned().flatten();
    let mut b = Binder::new(sql.dialect);
    let text = match a {
        Action::Delete { .. } => format!("DELETE FROM {} WHERE {}", sql.table, sql.key_match(&mut b, key)),
        Action::Update { columns, .. } => {
            let row = source?;
            let current = if target == Side::Postgres { o.pg.as_ref()? } else { o.my.as_ref()? };
            let sets: Vec<String> = columns
                .iter()
                .map(|&i| format!("{} = {}", name(i), sql.write_param(&mut b, &ctx.schema.columns[i], value(row, i).as_deref())))
                .collect();
            let mut cond = vec![sql.key_match(&mut b, key)];
            cond.extend(columns.iter().map(|&i| sql.still(&mut b, i, value(current, i).as_deref())));
            format!("UPDATE {} SET {} WHERE {}", sql.table, sets.join(", "), cond.join(" AND "))
        }
        Action::Insert { .. } => {
            let row = source?;
            // Key columns are always written: the copy must keep its key (an
            // identity key needs OVERRIDING SYSTEM VALUE in Postgres).
            let key_cols = &ctx.schema.key;
            let cols: Vec<usize> =
                (0..ctx.schema.columns.len()).filter(|&i| key_cols.contains(&i) || !generated(ctx, target, i)).collect();
            let overriding = target == Side::Postgres
                && cols.iter().any(|&i| generated(ctx, target, i) || ctx.schema.columns[i].pg_identity_always);
            let names: Vec<String> = cols.iter().map(|&i| name(i)).collect();
            let vals: Vec<String> =
                cols.iter().map(|&i| sql.write_param(&mut b, &ctx.schema.columns[i], value(row, i).as_deref())).collect();
            format!(
                "INSERT INTO {} ({}){} VALUES ({})",
                sql.table,
                names.join(", "),
                if overriding { " OVERRIDING SYSTEM VALUE" } else { "" },
                vals.join(", ")
            )
        }
    };
    Some((text, b.values))
}

/// Repairs every confirmed difference of one pair; returns what was written
/// and what was left.
pub async fn repair_pair(
    w: &mut Writer,
    pair: &PairConfig,
    ctx: &PairCtx,
    rows: &[(KeyText, Observed, Finding)],
    key_fields: impl Fn(&KeyText) -> Fields<String>,
) -> (Vec<RepairRecord>, Vec<NotRepaired>) {
    let (mut done, mut left) = (Vec::new(), Vec::new());
    let names = |cols: &[usize]| cols.iter().map(|&i| ctx.schema.columns[i].name.clone()).collect::<Vec<_>>();
    for (key, o, f) in rows {
        let (actions, unrepairable) = plan(pair, ctx, o, f);
        for (cols, reason) in unrepairable {
            left.push(NotRepaired { key: key_fields(key), columns: names(&cols), reason });
        }
        for a in actions {
            let (action, target, cols) = match &a {
                Action::Update { target, columns } => ("update", *target, columns.clone()),
                Action::Insert { target } => ("insert", *target, (0..ctx.schema.columns.len()).collect()),
                Action::Delete { target } => ("delete", *target, Vec::new()),
            };
            // Copies and updates take the other side's row; a delete follows the side without it.
            let winner = target.other();
            let Some((sql, params)) = render(ctx, key, o, &a) else { continue };
            let written = match target {
                Side::Postgres => w.write_pg(&sql, &params).await,
                Side::Mysql => w.write_my(&sql, params).await,
            };
            match written {
                Ok(0) if action != "insert" => {
                    left.push(NotRepaired { key: key_fields(key), columns: names(&cols), reason: format!("the row changed on {target} since it was read") });
                }
                Ok(_) => {
                    tracing::info!(pair = %pair.name, key = %key_fields(key).display(), action, side = %target, columns = ?names(&cols), winner = %winner, "repaired");
                    done.push(RepairRecord {
                        key: key_fields(key),
                        action,
                        side: target.as_str(),
                        columns: names(&cols),
                        winner: winner.as_str(),
                    });
                }
                Err(e) => {
                    tracing::warn!(pair = %pair.name, key = %key_fields(key).display(), action, side = %target, error = %e, "repair failed");
                    left.push(NotRepaired { key: key_fields(key), columns: names(&cols), reason: format!("{action} on {target} failed: {e}") });
                }
            }
        }
    }
    (done, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_orders_times_numbers_and_nulls() {
        assert_eq!(newer(ValueKind::Timestamp, Some("2024-01-02 00:00:00.000000"), Some("2023-12-31 23:59:59.999999")), Ordering::Greater);
        assert_eq!(newer(ValueKind::Int, Some("9"), Some("10")), Ordering::Less);
        assert_eq!(newer(ValueKind::Timestamp, None, Some("2024-01-01 00:00:00.000000")), Ordering::Less);
        assert_eq!(newer(ValueKind::Timestamp, None, None), Ordering::Equal);
    }
}
