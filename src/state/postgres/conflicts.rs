//! The `conflicts` table in Postgres: the column conflicts a batch decided
//! (closed at once) or left open (`manual`), written in its transaction;
//! and the operator's view of them (`tandem status`, `tandem conflicts`).

use super::{PgPipelineState, PgState};
use crate::state::{ConflictRow, ConflictTarget, StoredConflict};
use crate::Result;
use tokio_postgres::Client;

impl PgState {
    /// Records the conflicts a batch decided (closed at once) or left open
    /// (`manual`), in the open transaction; `mysql_commit_ts` is the source
    /// transaction's commit time (µs), when known.
    pub async fn conflicts(&self, client: &Client, rows: &[ConflictRow], mysql_commit_ts: Option<i64>) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipeline, pair, key_json, column_name, postgres_value, mysql_value, policy, winner,
                 mysql_commit_ts, decided_at, resolved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text, to_timestamp($9::float8 / 1e6), now(), CASE WHEN $8::text IS NULL THEN NULL ELSE now() END)",
            self.table("conflicts")
        );
        let source_ts = mysql_commit_ts.map(|t| t as f64);
        for r in rows {
            client
                .execute(&sql, &[&self.pipeline, &r.pair, &r.key_json, &r.column, &r.postgres_value, &r.mysql_value, &r.policy, &r.winner, &source_ts])
                .await?;
        }
        Ok(())
    }
}

impl PgPipelineState {
    /// The pipeline's open conflicts (`resolved_at IS NULL`), counted.
    pub async fn open_conflicts(&self, client: &Client) -> Result<i64> {
        let sql = format!("SELECT count(*) FROM {} WHERE pipeline = $1 AND resolved_at IS NULL", self.table("conflicts"));
        Ok(client.query_one(&sql, &[&self.pipeline]).await?.try_get(0)?)
    }

    /// Open conflicts now, by pair: `tandem_conflicts_open`.
    pub async fn open_conflicts_by_pair(&self, client: &Client) -> Result<Vec<(String, i64)>> {
        let sql = format!("SELECT pair, count(*) FROM {} WHERE pipeline = $1 AND resolved_at IS NULL GROUP BY pair", self.table("conflicts"));
        let mut out = Vec::new();
        for row in client.query(&sql, &[&self.pipeline]).await? {
            out.push((row.try_get(0)?, row.try_get(1)?));
        }
        Ok(out)
    }

    /// The pipeline's conflicts, open ones only unless `all`, oldest first
    /// (`decided_at`, then `id`).
    pub async fn list_conflicts(&self, client: &Client, all: bool) -> Result<Vec<StoredConflict>> {
        let open = if all { "" } else { " AND resolved_at IS NULL" };
        let sql = format!(
            "SELECT id, pair, key_json, column_name, postgres_value, mysql_value, policy, winner, decided_at::text, resolved_at::text
             FROM {} WHERE pipeline = $1{open} ORDER BY decided_at, id",
            self.table("conflicts")
        );
        let mut out = Vec::new();
        for r in client.query(&sql, &[&self.pipeline]).await? {
            out.push(StoredConflict {
                id: r.try_get(0)?,
                pair: r.try_get(1)?,
                key_json: r.try_get(2)?,
                column: r.try_get(3)?,
                postgres_value: r.try_get(4)?,
                mysql_value: r.try_get(5)?,
                policy: r.try_get(6)?,
                winner: r.try_get(7)?,
                decided_at: r.try_get(8)?,
                resolved_at: r.try_get(9)?,
            });
        }
        Ok(out)
    }

    /// Closes the still open rows of `target` with `winner` (`postgres` / `mysql`).
    pub async fn close_conflicts(&self, client: &Client, target: &ConflictTarget<'_>, winner: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET winner = $1, resolved_at = now()
             WHERE pipeline = $2 AND resolved_at IS NULL AND (id = $3 AND $4 = 'pg' OR (pair = $5 AND key_json = $6 AND column_name = $7))",
            self.table("conflicts")
        );
        client.execute(&sql, &[&winner, &self.pipeline, &target.id, &target.place, &target.pair, &target.key_json, &target.column]).await?;
        Ok(())
    }
}
