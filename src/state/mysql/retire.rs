//! Retiring a pipeline's state in MySQL (`tandem teardown`): which other
//! pipelines still keep rows in the state database, dropping the database
//! when none does, and otherwise deleting only this pipeline's rows and
//! staging tables.
//!
//! Invariant: another pipeline's rows are never touched; the database is
//! dropped only when no other pipeline has a row in any state table.

use super::{text_at, MyPipelineState};
use crate::state::ddl::STATE_TABLES;
use crate::state::names::ORIGIN_MARKER;
use crate::sql::my::ident;
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyPipelineState {
    /// The state tables that exist.
    async fn existing_tables(&self, conn: &mut Conn) -> Result<Vec<String>> {
        let names: Vec<&str> = STATE_TABLES.iter().copied().chain([ORIGIN_MARKER]).collect();
        let sql = format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({})",
            names.iter().map(|_| "?").collect::<Vec<_>>().join(", ")
        );
        let params: Vec<&str> = std::iter::once(self.db_name.as_str()).chain(names).collect();
        let rows: Vec<mysql_async::Row> = conn.exec(sql, params).await?;
        Ok(rows.iter().filter_map(|r| text_at(r, 0)).collect())
    }

    /// Does the state database exist?
    pub async fn database_exists(&self, conn: &mut Conn) -> Result<bool> {
        let row: Option<String> = conn.exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (self.db_name.as_str(),)).await?;
        Ok(row.is_some())
    }

    /// The other pipelines with a row in any state table, sorted.
    pub async fn other_pipelines(&self, conn: &mut Conn) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in self.existing_tables(conn).await? {
            let sql = format!("SELECT DISTINCT pipeline FROM {} WHERE pipeline <> ?", self.table(&t));
            let rows: Vec<mysql_async::Row> = conn.exec(sql, (self.pipeline.as_str(),)).await?;
            out.extend(rows.iter().filter_map(|r| text_at(r, 0)));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Drops the state database with everything in it.
    pub async fn drop_database(&self, conn: &mut Conn) -> Result<()> {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.db)).await?;
        Ok(())
    }

    /// Deletes this pipeline's rows from every state table and drops its
    /// `staging` tables.
    pub async fn forget_pipeline(&self, conn: &mut Conn, staging: &[String]) -> Result<()> {
        for t in self.existing_tables(conn).await? {
            conn.exec_drop(format!("DELETE FROM {} WHERE pipeline = ?", self.table(&t)), (self.pipeline.as_str(),)).await?;
        }
        for s in staging {
            conn.query_drop(format!("DROP TABLE IF EXISTS {}.{}", self.db, ident(s))).await?;
        }
        Ok(())
    }
}
