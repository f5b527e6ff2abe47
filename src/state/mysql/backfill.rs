//! The `backfills` table in MySQL, as the pipeline uses it: a pair's
//! progress row, locked while a chunk is merged and updated in the same
//! transaction (see `crate::backfill::progress`).

use super::MyState;
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
