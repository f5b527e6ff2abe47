//! The `quarantine` table in Postgres: changes this database rejected
//! (written in the batch's transaction) and their removal once a retry
//! applied them; and the operator's view of them (`tandem status`,
//! `tandem quarantine`).

use super::{PgPipelineState, PgState};
use crate::state::{QuarantineRow, StoredQuarantine};
use crate::Result;
use tokio_postgres::Client;

impl PgState {
    /// Records rejected changes, in the open transaction.
    pub async fn quarantine(&self, client: &Client, rows: &[QuarantineRow], position: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipeline, direction, pair, key_json, column_name, value_text, error, change_json, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            self.table("quarantine")
        );
        for r in rows {
            client
                .execute(&sql, &[&self.pipeline, &self.direction, &r.pair, &r.key_json, &r.column, &r.value, &r.error, &r.change_json, &position])
                .await?;
        }
        Ok(())
    }

    /// Removes one quarantined change (its retry applied it).
    pub async fn unquarantine(&self, client: &Client, id: i64) -> Result<()> {
        client.execute(&format!("DELETE FROM {} WHERE id = $1", self.table("quarantine")), &[&id]).await?;
        Ok(())
    }
}

impl PgPipelineState {
    /// The pipeline's quarantined changes counted by direction: (direction, count).
    pub async fn quarantined_by_direction(&self, client: &Client) -> Result<Vec<(String, i64)>> {
        let sql = format!("SELECT direction, count(*) FROM {} WHERE pipeline = $1 GROUP BY direction", self.table("quarantine"));
        let mut out = Vec::new();
        for row in client.query(&sql, &[&self.pipeline]).await? {
            out.push((row.try_get(0)?, row.try_get(1)?));
        }
        Ok(out)
    }

    /// Quarantined changes now, by (direction, pair): `tandem_quarantine_rows`.
    pub async fn quarantined_by_pair(&self, client: &Client) -> Result<Vec<(String, String, i64)>> {
        let sql = format!("SELECT direction, pair, count(*) FROM {} WHERE pipeline = $1 GROUP BY 1, 2", self.table("quarantine"));
        let mut out = Vec::new();
        for row in client.query(&sql, &[&self.pipeline]).await? {
            out.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
        Ok(out)
    }

    /// The pipeline's quarantined changes, in the order they were recorded.
    pub async fn list_quarantine(&self, client: &Client) -> Result<Vec<StoredQuarantine>> {
        let sql = format!(
            "SELECT id, direction, pair, key_json, column_name, value_text, error, position, created_at::text, change_json
             FROM {} WHERE pipeline = $1 ORDER BY id",
            self.table("quarantine")
        );
        let mut out = Vec::new();
        for r in client.query(&sql, &[&self.pipeline]).await? {
            out.push(StoredQuarantine {
                id: r.try_get(0)?,
                direction: r.try_get(1)?,
                pair: r.try_get(2)?,
                key_json: r.try_get(3)?,
                column: r.try_get(4)?,
                value: r.try_get(5)?,
                error: r.try_get(6)?,
                position: r.try_get(7)?,
                created_at: r.try_get(8)?,
                change_json: r.try_get(9)?,
            });
        }
        Ok(out)
    }

    /// Discards the pipeline's quarantined change `id`; `false` when there is none.
    pub async fn drop_quarantined(&self, client: &Client, id: i64) -> Result<bool> {
        let sql = format!("DELETE FROM {} WHERE pipeline = $1 AND id = $2", self.table("quarantine"));
        Ok(client.execute(&sql, &[&self.pipeline, &id]).await? == 1)
    }
}
