//! The `lease` table in Postgres: one row per pipeline whose epoch each new
//! lease holder increments (`run::lease`). The applier's checkpoint upsert
//! is conditional on it and share-locks the row (`PgState::checkpoint_sql`),
//! so a bump waits for a stale holder's batch commit in flight.

use super::PgPipelineState;
use crate::state::ddl::postgres_lease_ddl;
use crate::Result;
use tokio_postgres::Client;

impl PgPipelineState {
    /// Registers the pipeline with a lease row of epoch 0 unless it has one
    /// (`tandem init`): the row says the state schema is in use by it before
    /// any `tandem run` (see `retire`). Literal SQL, so that `init
    /// --print-sql` prints what init runs.
    pub fn register_sql(&self) -> String {
        format!(
            "INSERT INTO {} (pipeline, epoch, holder, acquired_at) VALUES ({}, 0, NULL, now()) ON CONFLICT (pipeline) DO NOTHING",
            self.table("lease"),
            crate::sql::pg::literal(&self.pipeline)
        )
    }

    /// Increments the pipeline's lease epoch, creating the table and the row
    /// if needed, records `holder`, and returns the new epoch.
    pub async fn bump_lease_epoch(&self, client: &Client, holder: &str) -> Result<i64> {
        client.batch_execute(&postgres_lease_ddl(&self.schema_name)).await?;
        let sql = format!(
            "INSERT INTO {} (pipeline, epoch, holder, acquired_at) VALUES ($1, 1, $2, now())
             ON CONFLICT (pipeline) DO UPDATE SET epoch = lease.epoch + 1, holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at
             RETURNING epoch",
            self.table("lease")
        );
        let row = client.query_one(&sql, &[&self.pipeline, &holder]).await?;
        Ok(row.try_get(0)?)
    }
}
