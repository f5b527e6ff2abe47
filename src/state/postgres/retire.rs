//! Retiring a pipeline's state in Postgres (`tandem teardown`): which other
//! pipelines still keep rows in the state schema, dropping the schema when
//! none does, and otherwise deleting only this pipeline's rows and staging
//! tables.
//!
//! Invariant: another pipeline's rows are never touched; the schema is
//! dropped only when no other pipeline has a row in any state table.

use super::PgPipelineState;
use crate::state::ddl::STATE_TABLES;
use crate::sql::pg::ident;
use crate::Result;
use tokio_postgres::Client;

impl PgPipelineState {
    /// The state tables that exist.
    async fn existing_tables(&self, client: &Client) -> Result<Vec<String>> {
        let rows = client
            .query(
                "SELECT t FROM unnest($2::text[]) t WHERE to_regclass(format('%I.%I', $1::text, t)) IS NOT NULL",
                &[&self.schema_name, &STATE_TABLES],
            )
            .await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    /// Does the state schema exist?
    pub async fn schema_exists(&self, client: &Client) -> Result<bool> {
        Ok(client.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&self.schema_name]).await?.is_some())
    }

    /// The other pipelines with a row in any state table, sorted.
    pub async fn other_pipelines(&self, client: &Client) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in self.existing_tables(client).await? {
            let sql = format!("SELECT DISTINCT pipeline FROM {} WHERE pipeline <> $1", self.table(&t));
            for r in client.query(&sql, &[&self.pipeline]).await? {
                out.push(r.try_get::<_, String>(0)?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Drops the state schema with everything in it.
    pub async fn drop_schema(&self, client: &Client) -> Result<()> {
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)).await?;
        Ok(())
    }

    /// Deletes this pipeline's rows from every state table and drops its
    /// `staging` tables, in one transaction.
    pub async fn forget_pipeline(&self, client: &Client, staging: &[String]) -> Result<()> {
        client.batch_execute("BEGIN").await?;
        let done: Result<()> = async {
            for t in self.existing_tables(client).await? {
                client.execute(&format!("DELETE FROM {} WHERE pipeline = $1", self.table(&t)), &[&self.pipeline]).await?;
            }
            for s in staging {
                client.batch_execute(&format!("DROP TABLE IF EXISTS {}.{}", self.schema, ident(s))).await?;
            }
            Ok(())
        }
        .await;
        match done {
            Ok(()) => Ok(client.batch_execute("COMMIT").await?),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}
