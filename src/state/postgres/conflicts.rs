//! The `conflicts` table in Postgres: the column conflicts a batch decided
//! (closed at once) or left open (`manual`), written in its transaction;
//! and the operator's view of them (`tandem status`).

use super::{PgPipelineState, PgState};
use crate::state::ConflictRow;
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
}
