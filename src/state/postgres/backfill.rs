//! The `backfills` and `signals` tables in Postgres. The pipeline locks a
//! pair's progress row while it merges a chunk and updates it in the same
//! transaction (see `crate::backfill::progress`); `tandem backfill` writes
//! the watermarks and registers, reads and finishes the progress row
//! (`BackfillStatements`; every parameter is bound as text, integers cast
//! from it).

use super::{PgPipelineState, PgState};
use crate::state::names::pg_signal_prefix;
use crate::state::{BackfillStatements, TextStatement};
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

impl BackfillStatements for PgPipelineState {
    fn watermark(&self, kind: &str, payload: &str) -> TextStatement {
        let sql = format!(
            "WITH s AS (INSERT INTO {} (pipeline, kind, payload) VALUES ($1, $2, $3) RETURNING id) \
             SELECT pg_logical_emit_message(true, $4, $3)::text FROM s",
            self.table("signals")
        );
        TextStatement { sql, params: vec![self.pipeline.clone(), kind.into(), payload.into(), pg_signal_prefix(&self.origin)] }
    }

    fn read_backfill(&self, pair: &str) -> TextStatement {
        let sql = format!(
            "SELECT run, (chunk)::text, outcome, (rows_applied)::text, (rows_total)::text, last_key, status, source FROM {} WHERE pipeline = $1 AND pair = $2",
            self.table("backfills")
        );
        TextStatement { sql, params: vec![self.pipeline.clone(), pair.into()] }
    }

    fn start_backfill(&self, pair: &str, source: &str, run: &str, total: u64) -> [TextStatement; 2] {
        let table = self.table("backfills");
        [
            TextStatement { sql: format!("DELETE FROM {table} WHERE pipeline = $1 AND pair = $2"), params: vec![self.pipeline.clone(), pair.into()] },
            TextStatement {
                sql: format!(
                    "INSERT INTO {table} (pipeline, pair, source, run, chunk, outcome, rows_applied, rows_total, last_key, status, started_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 0, 'none', 0, $5::text::bigint, NULL, 'running', now(), now())"
                ),
                params: vec![self.pipeline.clone(), pair.into(), source.into(), run.into(), total.to_string()],
            },
        ]
    }

    fn resume_backfill(&self, pair: &str, run: &str, total: u64) -> TextStatement {
        let sql = format!(
            "UPDATE {} SET run = $1, chunk = 0, outcome = 'none', status = 'running', rows_total = $2::text::bigint WHERE pipeline = $3 AND pair = $4",
            self.table("backfills")
        );
        TextStatement { sql, params: vec![run.into(), total.to_string(), self.pipeline.clone(), pair.into()] }
    }

    fn finish_backfill(&self, pair: &str) -> TextStatement {
        let sql = format!("UPDATE {} SET status = 'done' WHERE pipeline = $1 AND pair = $2", self.table("backfills"));
        TextStatement { sql, params: vec![self.pipeline.clone(), pair.into()] }
    }
}
