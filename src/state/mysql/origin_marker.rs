//! The `origin_marker` table in MySQL: the row tandem's sessions write first
//! in every transaction when they cannot tag their events with a server id,
//! so the binlog reader knows tandem's own transactions (DESIGN §2). The
//! applier's batches and the commands that write user rows (`conflicts
//! resolve`, `check --repair`) write the same row.

use super::{MyPipelineState, MyState};
use crate::sql::my::push_literal;
use crate::Result;
use mysql_async::prelude::Queryable;

/// Appends the marker upsert of `pipeline` into `table`.
fn push_marker(out: &mut String, table: &str, pipeline: &str) {
    out.push_str("INSERT INTO ");
    out.push_str(table);
    out.push_str(" (pipeline, txn) VALUES (");
    push_literal(out, pipeline);
    out.push_str(", 1) ON DUPLICATE KEY UPDATE txn = txn + 1;\n");
}

impl MyState {
    /// The first statement of every transaction when the session cannot tag
    /// its events with a server id: the binlog reader knows tandem's
    /// transactions by this row (DESIGN §2).
    pub fn push_origin_marker(&self, out: &mut String) {
        push_marker(out, &self.table("origin_marker"), &self.pipeline);
    }
}

impl MyPipelineState {
    /// `MyState::push_origin_marker`, for a command's multi-statement transaction.
    pub fn push_origin_marker(&self, out: &mut String) {
        push_marker(out, &self.table("origin_marker"), &self.pipeline);
    }

    /// Writes the marker row in the open transaction `tx`, as its first statement.
    pub async fn write_origin_marker(&self, tx: &mut mysql_async::Transaction<'_>) -> Result<()> {
        let sql = format!("INSERT INTO {} (pipeline, txn) VALUES (?, 1) ON DUPLICATE KEY UPDATE txn = txn + 1", self.table("origin_marker"));
        tx.exec_drop(sql, (&self.pipeline,)).await?;
        Ok(())
    }
}
