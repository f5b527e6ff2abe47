//! The `conflicts` table in MySQL: the column conflicts a batch decided
//! (closed at once) or left open (`manual`), written with the batch; and the
//! operator's view of them (`tandem status`, `tandem conflicts`).

use super::{i64_at, push_opt, text_at, MyPipelineState, MyState};
use crate::sql::my::push_literal;
use crate::state::{ConflictRow, ConflictTarget, StoredConflict};
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyState {
    /// Records the conflicts a batch decided (closed at once) or left open
    /// (`manual`); `postgres_commit_ts` is the source transaction's commit
    /// time as text, when known.
    pub fn push_conflicts(&self, out: &mut String, rows: &[ConflictRow], postgres_commit_ts: Option<&str>) {
        let table = self.table("conflicts");
        for r in rows {
            out.push_str("INSERT INTO ");
            out.push_str(&table);
            out.push_str(
                " (pipeline, pair, key_json, column_name, postgres_value, mysql_value, policy, winner, postgres_commit_ts, decided_at, resolved_at) VALUES (",
            );
            push_literal(out, &self.pipeline);
            for v in [
                Some(r.pair.as_str()),
                Some(r.key_json.as_str()),
                Some(r.column.as_str()),
                r.postgres_value.as_deref(),
                r.mysql_value.as_deref(),
                Some(r.policy.as_str()),
                r.winner.as_deref(),
                postgres_commit_ts,
            ] {
                out.push(',');
                push_opt(out, v);
            }
            // Decided conflicts are closed at once; manual ones (no winner) stay open.
            out.push_str(if r.winner.is_none() { ", UTC_TIMESTAMP(6), NULL);\n" } else { ", UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));\n" });
        }
    }
}

impl MyPipelineState {
    /// The pipeline's open conflicts (`resolved_at IS NULL`), counted.
    pub async fn open_conflicts(&self, conn: &mut Conn) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE pipeline = ? AND resolved_at IS NULL", self.table("conflicts"));
        let row: Option<mysql_async::Row> = conn.exec_first(sql, (&self.pipeline,)).await?;
        Ok(row.and_then(|r| i64_at(&r, 0)).unwrap_or(0))
    }

    /// Open conflicts now, by pair: `tandem_conflicts_open`.
    pub async fn open_conflicts_by_pair(&self, conn: &mut Conn) -> Result<Vec<(String, i64)>> {
        let sql = format!("SELECT pair, COUNT(*) FROM {} WHERE pipeline = ? AND resolved_at IS NULL GROUP BY pair", self.table("conflicts"));
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (&self.pipeline,)).await?;
        Ok(rows.iter().filter_map(|r| Some((text_at(r, 0)?, i64_at(r, 1)?))).collect())
    }

    /// The pipeline's conflicts, open ones only unless `all`, oldest first
    /// (`decided_at`, then `id`).
    pub async fn list_conflicts(&self, conn: &mut Conn, all: bool) -> Result<Vec<StoredConflict>> {
        let open = if all { "" } else { " AND resolved_at IS NULL" };
        let sql = format!(
            "SELECT id, pair, key_json, column_name, postgres_value, mysql_value, policy, winner,
                    CAST(decided_at AS CHAR), CAST(resolved_at AS CHAR)
             FROM {} WHERE pipeline = ?{open} ORDER BY decided_at, id",
            self.table("conflicts")
        );
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (&self.pipeline,)).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let get = |i: usize| -> Option<String> { r.get::<Option<String>, usize>(i).flatten() };
                let id: u64 = r.get::<u64, usize>(0).unwrap_or(0);
                StoredConflict {
                    id: id as i64,
                    pair: get(1).unwrap_or_default(),
                    key_json: get(2).unwrap_or_default(),
                    column: get(3).unwrap_or_default(),
                    postgres_value: get(4),
                    mysql_value: get(5),
                    policy: get(6).unwrap_or_default(),
                    winner: get(7),
                    decided_at: get(8).unwrap_or_default(),
                    resolved_at: get(9),
                }
            })
            .collect())
    }

    /// Closes the still open rows of `target` with `winner` (`postgres` / `mysql`).
    pub async fn close_conflicts(&self, conn: &mut Conn, target: &ConflictTarget<'_>, winner: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET winner = ?, resolved_at = UTC_TIMESTAMP(6)
             WHERE pipeline = ? AND resolved_at IS NULL AND ((id = ? AND ? = 'my') OR (pair = ? AND key_json = ? AND column_name = ?))",
            self.table("conflicts")
        );
        conn.exec_drop(sql, (winner, &self.pipeline, target.id, target.place, target.pair, target.key_json, target.column)).await?;
        Ok(())
    }
}
