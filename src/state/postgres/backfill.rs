//! The `backfills` table in Postgres, as the pipeline uses it: a pair's
//! progress row, locked while a chunk is merged and updated in the same
//! transaction (see `crate::backfill::progress`).

use super::PgState;
use crate::Result;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

impl PgState {
    /// A pair's backfill progress (run, last key), locked for the chunk's merge.
    pub async fn backfill_progress(&self, client: &Client, pair: &str) -> Result<Option<(String, Option<String>)>> {
        let sql = format!("SELECT run, last_key FROM {} WHERE pipeline = $1 AND pair = $2 FOR UPDATE", self.table("backfills"));
        let row = client.query_opt(&sql, &[&self.pipeline, &pair]).await?;
        Ok(row.map(|r| Ok::<_, tokio_postgres::Error>((r.try_get(0)?, r.try_get(1)?))).transpose()?)
    }

    /// Records a merged chunk (`applied`: rows added) or an abandoned one (`None`).
    pub async fn backfill_chunk_done(&self, client: &Client, pair: &str, run: &str, chunk: u64, applied: Option<(u64, Option<String>)>) -> Result<()> {
        let table = self.table("backfills");
        let chunk = chunk as i64;
        match applied {
            Some((rows, last_key)) => {
                let sql = format!(
                    "UPDATE {table} SET run = $1, chunk = $2, outcome = 'applied', rows_applied = rows_applied + $3,
                     last_key = $4, updated_at = now() WHERE pipeline = $5 AND pair = $6"
                );
                let params: [&(dyn ToSql + Sync); 6] = [&run, &chunk, &(rows as i64), &last_key, &self.pipeline, &pair];
                client.execute(&sql, &params).await?;
            }
            None => {
                let sql = format!("UPDATE {table} SET run = $1, chunk = $2, outcome = 'abandoned', updated_at = now() WHERE pipeline = $3 AND pair = $4");
                client.execute(&sql, &[&run, &chunk, &self.pipeline, &pair]).await?;
            }
        }
        Ok(())
    }
}
