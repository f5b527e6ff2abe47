//! The `checkpoints` table in Postgres: the `mysql_to_postgres` checkpoint,
//! the MySQL server identity stored with it, its batch upsert, fenced by
//! the pipeline's `lease` row when the applier holds a lease epoch, and its
//! age for `tandem status`.
//!
//! Invariant: the batch upsert runs in the batch's transaction, so the
//! checkpoint moves only with a destination commit (DESIGN §4).

use super::PgState;
use crate::state::CheckpointRow;
use crate::Result;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

impl PgState {
    /// `$1` pipeline, `$2` direction: the checkpoint's position.
    fn checkpoint_query(&self) -> String {
        format!("SELECT position FROM {} WHERE pipeline = $1 AND direction = $2", self.table("checkpoints"))
    }

    /// The direction's checkpoint (position text), if one was written.
    pub async fn checkpoint(&self, client: &Client) -> Result<Option<String>> {
        let row = client.query_opt(&self.checkpoint_query(), &[&self.pipeline, &self.direction]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Like `checkpoint`, but also `None` when the state table does not
    /// exist (before `tandem init`).
    pub async fn checkpoint_if_initialized(&self, client: &Client) -> Result<Option<String>> {
        match client.query_opt(&self.checkpoint_query(), &[&self.pipeline, &self.direction]).await {
            Ok(row) => Ok(row.map(|r| r.try_get(0)).transpose()?),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The direction's checkpoint row with its age, if one was written.
    pub async fn checkpoint_row(&self, client: &Client) -> Result<Option<CheckpointRow>> {
        let sql = format!(
            "SELECT position, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), EXTRACT(EPOCH FROM (now() - updated_at))::float8
             FROM {} WHERE pipeline = $1 AND direction = $2",
            self.table("checkpoints")
        );
        match client.query_opt(&sql, &[&self.pipeline, &self.direction]).await?.as_ref() {
            Some(row) => Ok(Some(CheckpointRow { position: row.try_get(0)?, updated_at: row.try_get(1)?, age_seconds: row.try_get(2)? })),
            None => Ok(None),
        }
    }

    /// The source server identity stored with the checkpoint, if any.
    pub async fn source_identity(&self, client: &Client) -> Result<Option<String>> {
        let sql = format!("SELECT server_identity FROM {} WHERE pipeline = $1 AND direction = $2", self.table("checkpoints"));
        let row = client.query_opt(&sql, &[&self.pipeline, &self.direction]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
    }

    /// Writes the checkpoint outside any batch unless one exists (`init`'s
    /// start position); `true` when it was written.
    pub async fn store_initial_checkpoint(&self, client: &Client, position: &str, identity: Option<&str>) -> Result<bool> {
        let sql = format!(
            "INSERT INTO {} (pipeline, direction, position, server_identity, updated_at) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (pipeline, direction) DO NOTHING",
            self.table("checkpoints")
        );
        let n = client.execute(&sql, &[&self.pipeline, &self.direction, &position, &identity]).await?;
        Ok(n == 1)
    }

    /// The checkpoint upsert of a batch: `$1` pipeline, `$2` direction, `$3`
    /// position, `$4` source identity and, when `fenced`, `$5` the lease
    /// epoch the write is conditional on (no row is written when the lease
    /// row has another epoch).
    pub fn checkpoint_sql(&self, fenced: bool) -> String {
        let upsert = "ON CONFLICT (pipeline, direction) DO UPDATE SET position = EXCLUDED.position,
                 server_identity = EXCLUDED.server_identity, updated_at = EXCLUDED.updated_at";
        let table = self.table("checkpoints");
        if fenced {
            // The share lock on the lease row makes a new holder's epoch bump wait for this commit.
            format!(
                "INSERT INTO {table} (pipeline, direction, position, server_identity, updated_at)
                 SELECT $1::text, $2::text, $3::text, $4::text, now() FROM {} WHERE pipeline = $1::text AND epoch = $5 FOR SHARE
                 {upsert}",
                self.table("lease")
            )
        } else {
            format!("INSERT INTO {table} (pipeline, direction, position, server_identity, updated_at) VALUES ($1, $2, $3, $4, now()) {upsert}")
        }
    }
}
