//! The `lease` table in MySQL: one row per pipeline whose epoch each new
//! lease holder increments (`run::lease`). The applier's checkpoint write is
//! conditional on it and share-locks the row (`MyState::push_checkpoint`),
//! so a bump waits for a stale holder's batch commit in flight.

use super::{MyPipelineState, MyState};
use crate::state::ddl::mysql_lease_ddl;
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The epoch of pipeline `?` in `table`.
fn epoch_sql(table: &str) -> String {
    format!("SELECT epoch FROM {table} WHERE pipeline = ?")
}

impl MyState {
    /// The pipeline's lease epoch in this database.
    pub async fn lease_epoch(&self, conn: &mut Conn) -> Result<Option<i64>> {
        Ok(conn.exec_first(epoch_sql(&self.table("lease")), (&self.pipeline,)).await?)
    }
}

impl MyPipelineState {
    /// Registers the pipeline with a lease row of epoch 0 unless it has one
    /// (`tandem init`): the row says the state database is in use by it
    /// before any `tandem run` (see `retire`). Literal SQL, so that
    /// `init --print-sql` prints what init runs.
    pub fn register_sql(&self) -> String {
        format!(
            "INSERT IGNORE INTO {} (pipeline, epoch, holder, acquired_at) VALUES ({}, 0, NULL, UTC_TIMESTAMP(6))",
            self.table("lease"),
            crate::sql::my::literal(&self.pipeline)
        )
    }

    /// Increments the pipeline's lease epoch, creating the table and the row
    /// if needed, records `holder`, and returns the new epoch (`None` if the
    /// row is not there to read back), in one transaction.
    pub async fn bump_lease_epoch(&self, conn: &mut Conn, holder: &str) -> Result<Option<i64>> {
        conn.query_drop(mysql_lease_ddl(&self.db_name)).await?;
        let table = self.table("lease");
        conn.query_drop("START TRANSACTION").await?;
        conn.exec_drop(
            format!(
                "INSERT INTO {table} (pipeline, epoch, holder, acquired_at) VALUES (?, 1, ?, UTC_TIMESTAMP(6))
                 ON DUPLICATE KEY UPDATE epoch = epoch + 1, holder = VALUES(holder), acquired_at = VALUES(acquired_at)"
            ),
            (&self.pipeline, holder),
        )
        .await?;
        let epoch: Option<i64> = conn.exec_first(epoch_sql(&table), (&self.pipeline,)).await?;
        conn.query_drop("COMMIT").await?;
        Ok(epoch)
    }
}
