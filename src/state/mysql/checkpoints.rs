//! The `checkpoints` table in MySQL: the `postgres_to_mysql` checkpoint and
//! its batch write, fenced by the pipeline's `lease` row when the applier
//! holds a lease epoch; and its age for `tandem status`.
//!
//! Invariant: the batch write travels with the batch's COMMIT, so the
//! checkpoint moves only with a destination commit (DESIGN §4).

use super::{i64_at, text_at, MyState};
use crate::sql::my::push_literal;
use crate::state::CheckpointRow;
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyState {
    /// `?` pipeline, `?` direction: the checkpoint's position.
    fn checkpoint_query(&self) -> String {
        format!("SELECT position FROM {} WHERE pipeline = ? AND direction = ?", self.table("checkpoints"))
    }

    /// The direction's checkpoint (position text), if one was written.
    pub async fn checkpoint(&self, conn: &mut Conn) -> Result<Option<String>> {
        Ok(conn.exec_first(self.checkpoint_query(), (&self.pipeline, self.direction)).await?)
    }

    /// Like `checkpoint`, but also `None` when the state table or database
    /// does not exist (before `tandem init`).
    pub async fn checkpoint_if_initialized(&self, conn: &mut Conn) -> Result<Option<String>> {
        match conn.exec_first::<String, _, _>(self.checkpoint_query(), (&self.pipeline, self.direction)).await {
            Ok(p) => Ok(p),
            // ER_NO_SUCH_TABLE, ER_BAD_DB_ERROR.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The direction's checkpoint row with its age, if one was written.
    pub async fn checkpoint_row(&self, conn: &mut Conn) -> Result<Option<CheckpointRow>> {
        let sql = format!(
            "SELECT position, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%fZ'), TIMESTAMPDIFF(MICROSECOND, updated_at, UTC_TIMESTAMP(6))
             FROM {} WHERE pipeline = ? AND direction = ?",
            self.table("checkpoints")
        );
        let row: Option<mysql_async::Row> = conn.exec_first(sql, (&self.pipeline, self.direction)).await?;
        Ok(row.and_then(|row| {
            Some(CheckpointRow {
                position: text_at(&row, 0)?,
                updated_at: text_at(&row, 1),
                age_seconds: i64_at(&row, 2).map(|us| us as f64 / 1e6),
            })
        }))
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
}
