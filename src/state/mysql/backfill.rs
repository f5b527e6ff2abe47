//! The `backfills` and `signals` tables in MySQL. The pipeline locks a
//! pair's progress row while it merges a chunk and updates it in the same
//! transaction (see `crate::backfill::progress`); `tandem backfill` writes
//! the watermarks and registers, reads and finishes the progress row
//! (`BackfillStatements`; every parameter is bound as text, integers cast
//! from it).

use super::{MyPipelineState, MyState};
use crate::state::{BackfillStatements, TextStatement};
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyState {
    /// A pair's backfill progress (run, last key), locked for the chunk's merge.
    pub async fn backfill_progress(&self, conn: &mut Conn, pair: &str) -> Result<Option<(String, Option<String>)>> {
        let sql = format!("SELECT run, last_key FROM {} WHERE pipeline = ? AND pair = ? FOR UPDATE", self.table("backfills"));
        Ok(conn.exec_first(sql, (&self.pipeline, pair)).await?)
    }

    /// Records a merged chunk (`applied`: rows added) or an abandoned one (`None`).
    pub async fn backfill_chunk_done(&self, conn: &mut Conn, pair: &str, run: &str, chunk: u64, applied: Option<(u64, Option<String>)>) -> Result<()> {
        let table = self.table("backfills");
        match applied {
            Some((rows, last_key)) => {
                let sql = format!(
                    "UPDATE {table} SET run = ?, chunk = ?, outcome = 'applied', rows_applied = rows_applied + ?,
                     last_key = ?, updated_at = UTC_TIMESTAMP(6) WHERE pipeline = ? AND pair = ?"
                );
                conn.exec_drop(sql, (run, chunk, rows, last_key, &self.pipeline, pair)).await?;
            }
            None => {
                let sql = format!("UPDATE {table} SET run = ?, chunk = ?, outcome = 'abandoned', updated_at = UTC_TIMESTAMP(6) WHERE pipeline = ? AND pair = ?");
                conn.exec_drop(sql, (run, chunk, &self.pipeline, pair)).await?;
            }
        }
        Ok(())
    }
}

impl BackfillStatements for MyPipelineState {
    fn watermark(&self, kind: &str, payload: &str) -> TextStatement {
        let sql = format!("INSERT INTO {} (pipeline, kind, payload, created_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))", self.table("signals"));
        TextStatement { sql, params: vec![self.pipeline.clone(), kind.into(), payload.into()] }
    }

    fn read_backfill(&self, pair: &str) -> TextStatement {
        let sql = format!(
            "SELECT run, CAST(chunk AS CHAR), outcome, CAST(rows_applied AS CHAR), CAST(rows_total AS CHAR), last_key, status, source FROM {} WHERE pipeline = ? AND pair = ?",
            self.table("backfills")
        );
        TextStatement { sql, params: vec![self.pipeline.clone(), pair.into()] }
    }

    fn start_backfill(&self, pair: &str, source: &str, run: &str, total: u64) -> [TextStatement; 2] {
        let table = self.table("backfills");
        [
            TextStatement { sql: format!("DELETE FROM {table} WHERE pipeline = ? AND pair = ?"), params: vec![self.pipeline.clone(), pair.into()] },
            TextStatement {
                sql: format!(
                    "INSERT INTO {table} (pipeline, pair, source, run, chunk, outcome, rows_applied, rows_total, last_key, status, started_at, updated_at) \
                     VALUES (?, ?, ?, ?, 0, 'none', 0, CAST(? AS SIGNED), NULL, 'running', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                ),
                params: vec![self.pipeline.clone(), pair.into(), source.into(), run.into(), total.to_string()],
            },
        ]
    }

    fn resume_backfill(&self, pair: &str, run: &str, total: u64) -> TextStatement {
        let sql = format!(
            "UPDATE {} SET run = ?, chunk = 0, outcome = 'none', status = 'running', rows_total = CAST(? AS SIGNED) WHERE pipeline = ? AND pair = ?",
            self.table("backfills")
        );
        TextStatement { sql, params: vec![run.into(), total.to_string(), self.pipeline.clone(), pair.into()] }
    }

    fn finish_backfill(&self, pair: &str) -> TextStatement {
        let sql = format!("UPDATE {} SET status = 'done' WHERE pipeline = ? AND pair = ?", self.table("backfills"));
        TextStatement { sql, params: vec![self.pipeline.clone(), pair.into()] }
    }
}
