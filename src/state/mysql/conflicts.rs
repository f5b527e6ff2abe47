//! The `conflicts` table in MySQL: the column conflicts a batch decided
//! (closed at once) or left open (`manual`), written with the batch; and the
//! operator's view of them (`tandem status`).

use super::{i64_at, push_opt, MyPipelineState, MyState};
use crate::sql::my::push_literal;
use crate::state::ConflictRow;
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
}
