//! The `checkpoints` table in MySQL: the `postgres_to_mysql` checkpoint and
//! its batch write, fenced by the pipeline's `lease` row when the applier
//! holds a lease epoch; and that epoch.
//!
//! Invariant: the batch write travels with the batch's COMMIT, so the
//! checkpoint moves only with a destination commit (DESIGN §4).

use super::MyState;
use crate::sql::my::push_literal;
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyState {
    /// The direction's checkpoint (position text), if one was written.
    pub async fn checkpoint(&self, conn: &mut Conn) -> Result<Option<String>> {
        let sql = format!("SELECT position FROM {} WHERE pipeline = ? AND direction = ?", self.table("checkpoints"));
        Ok(conn.exec_first(sql, (&self.pipeline, self.direction)).await?)
    }

    /// The checkpoint write of a batch. With `fence`, the lease row's epoch
    /// is read with a share lock first (a new holder's epoch bump waits for
    /// this commit) and the position becomes NULL unless the epoch is still
    /// `fence` — which strict mode refuses, so the batch's COMMIT never runs.
    pub fn push_checkpoint(&self, out: &mut String, position: &str, fence: Option<i64>) {
        if fence.is_some() {
            out.push_str("SET @tandem_lease_epoch = NULL;\nSELECT epoch INTO @tandem_lease_epoch FROM ");
            out.push_str(&self.table("lease"));
            out.push_str(" WHERE pipeline = ");
            push_literal(out, &self.pipeline);
            out.push_str(" LOCK IN SHARE MODE;\n");
        }
        out.push_str("INSERT INTO ");
        out.push_str(&self.table("checkpoints"));
        out.push_str(" (pipeline, direction, position, updated_at) VALUES (");
        push_literal(out, &self.pipeline);
        out.push(',');
        push_literal(out, self.direction);
        out.push(',');
        match fence {
            None => push_literal(out, position),
            Some(epoch) => {
                out.push_str(&format!("IF(@tandem_lease_epoch <=> {epoch}, "));
                push_literal(out, position);
                out.push_str(", NULL)");
            }
        }
        out.push_str(", UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at);\n");
    }

    /// The pipeline's lease epoch in this database.
    pub async fn lease_epoch(&self, conn: &mut Conn) -> Result<Option<i64>> {
        let sql = format!("SELECT epoch FROM {} WHERE pipeline = ?", self.table("lease"));
        Ok(conn.exec_first(sql, (&self.pipeline,)).await?)
    }
}
