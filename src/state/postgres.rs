//! Every read and write of tandem's state tables in Postgres (the `tandem`
//! schema, or `state_schema`): the `mysql_to_postgres` checkpoint with its
//! source identity and lease fence, conflicts, quarantine, parked changes,
//! backfill progress. The applier writes its rows inside its batch
//! transaction, so they commit or roll back with the batch.
//!
//! Every statement names the pipeline (and direction where the table has
//! one): several pipelines may share the state schema.

use super::{ConflictRow, QuarantineRow};
use crate::config::Direction;
use crate::sql::pg::ident;
use crate::Result;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// The state tables of one pipeline and direction in one Postgres database.
#[derive(Debug, Clone)]
pub struct PgState {
    /// The quoted state schema.
    schema: String,
    /// Its name as configured.
    schema_name: String,
    pipeline: String,
    direction: &'static str,
}

impl PgState {
    pub fn new(state_schema: &str, pipeline: &str, direction: Direction) -> Self {
        PgState { schema: ident(state_schema), schema_name: state_schema.to_string(), pipeline: pipeline.to_string(), direction: direction.key() }
    }

    /// The state schema's name (unquoted).
    pub fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// `"schema".table`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    /// The direction's checkpoint (position text), if one was written.
    pub async fn checkpoint(&self, client: &Client) -> Result<Option<String>> {
        let sql = format!("SELECT position FROM {} WHERE pipeline = $1 AND direction = $2", self.table("checkpoints"));
        let row = client.query_opt(&sql, &[&self.pipeline, &self.direction]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
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

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn direction(&self) -> &'static str {
        self.direction
    }

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

    /// Names of the pairs with parked changes of this direction.
    pub async fn parked_pairs(&self, client: &Client) -> Result<Vec<String>> {
        let sql = format!("SELECT DISTINCT pair FROM {} WHERE pipeline = $1 AND direction = $2", self.table("parked"));
        let rows = client.query(&sql, &[&self.pipeline, &self.direction]).await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?)
    }

    /// Parks changes (pair name, change JSON), in order, in the open transaction.
    pub async fn park(&self, client: &Client, pairs: &[String], changes: &[String], reason: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipeline, direction, pair, reason, change_json)
             SELECT $1, $2, p, $3, c FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS t(p, c, n) ORDER BY n",
            self.table("parked")
        );
        client.execute(&sql, &[&self.pipeline, &self.direction, &reason, &pairs, &changes]).await?;
        Ok(())
    }

    /// The oldest `limit` parked changes of `pair`: (id, change JSON).
    pub async fn parked(&self, client: &Client, pair: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        let sql = format!(
            "SELECT id, change_json FROM {} WHERE pipeline = $1 AND direction = $2 AND pair = $3 ORDER BY id LIMIT {limit}",
            self.table("parked")
        );
        let rows = client.query(&sql, &[&self.pipeline, &self.direction, &pair]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Deletes parked changes by id, in the open transaction.
    pub async fn unpark(&self, client: &Client, ids: &[i64]) -> Result<()> {
        client.execute(&format!("DELETE FROM {} WHERE id = ANY($1::int8[])", self.table("parked")), &[&ids]).await?;
        Ok(())
    }

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
