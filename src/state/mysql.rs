//! Every read and write of tandem's state tables in MySQL/MariaDB (the
//! `tandem` database, or `state_schema`): the `postgres_to_mysql`
//! checkpoint with its lease fence, the origin marker, conflicts,
//! quarantine, parked changes, backfill progress.
//!
//! The applier sends its statements in multi-statement round trips, so the
//! writes of a batch are rendered into its statement buffer (`push_*`) and
//! travel with the batch's COMMIT; reads run at once. Every statement names
//! the pipeline (and direction where the table has one): several pipelines
//! may share the state database. Literals are quoted for tandem's sessions
//! (`NO_BACKSLASH_ESCAPES`).

use super::{ConflictRow, QuarantineRow};
use crate::config::Direction;
use crate::sql::my::{ident, push_literal};
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The state tables of one pipeline and direction in one MySQL server.
#[derive(Debug, Clone)]
pub struct MyState {
    /// The quoted state database.
    db: String,
    /// Its name as configured.
    db_name: String,
    pipeline: String,
    direction: &'static str,
}

fn push_opt(out: &mut String, v: Option<&str>) {
    match v {
        Some(t) => push_literal(out, t),
        None => out.push_str("NULL"),
    }
}

impl MyState {
    pub fn new(state_db: &str, pipeline: &str, direction: Direction) -> Self {
        MyState { db: ident(state_db), db_name: state_db.to_string(), pipeline: pipeline.to_string(), direction: direction.key() }
    }

    /// The state database's name (unquoted).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// `` `db`.table ``.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.db)
    }

    /// The direction's checkpoint (position text), if one was written.
    pub async fn checkpoint(&self, conn: &mut Conn) -> Result<Option<String>> {
        let sql = format!("SELECT position FROM {} WHERE pipeline = ? AND direction = ?", self.table("checkpoints"));
        Ok(conn.exec_first(sql, (&self.pipeline, self.direction)).await?)
    }

    /// The first statement of every transaction when the session cannot tag
    /// its events with a server id: the binlog reader knows tandem's
    /// transactions by this row (DESIGN §2).
    pub fn push_origin_marker(&self, out: &mut String) {
        out.push_str("INSERT INTO ");
        out.push_str(&self.table("origin_marker"));
        out.push_str(" (pipeline, txn) VALUES (");
        push_literal(out, &self.pipeline);
        out.push_str(", 1) ON DUPLICATE KEY UPDATE txn = txn + 1;\n");
    }

    /// Records rejected changes (written with the batch).
    pub fn push_quarantine(&self, out: &mut String, rows: &[QuarantineRow], position: &str) {
        for r in rows {
            out.push_str(&format!(
                "INSERT INTO {} (pipeline, direction, pair, key_json, column_name, value_text, error, change_json, position, created_at) VALUES (",
                self.table("quarantine")
            ));
            let fields = [
                Some(self.pipeline.as_str()),
                Some(self.direction),
                Some(r.pair.as_str()),
                Some(r.key_json.as_str()),
                r.column.as_deref(),
                r.value.as_deref(),
                Some(r.error.as_str()),
                Some(r.change_json.as_str()),
                Some(position),
            ];
            for (n, f) in fields.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                push_opt(out, f);
            }
            out.push_str(", UTC_TIMESTAMP(6));\n");
        }
    }

    /// Removes one quarantined change (its retry applied it).
    pub fn push_unquarantine(&self, out: &mut String, id: u64) {
        out.push_str(&format!("DELETE FROM {} WHERE id = {id};\n", self.table("quarantine")));
    }

    /// Records the conflicts a batch decided (closed at once) or left open
    /// (`manual`); `postgres_commit_ts` is the source transaction's commit
    /// time as text, when known.
    pub fn push_conflicts(&self, out: &mut String, rows: &[ConflictRow], postgres_commit_ts: Option<&str>) {
        let table = self.table("conflicts");
        for r in rows {
            out.push_str("INSERT INTO ");
            out.push_str(&table);
            out.push_str(
                " (pipeline, pair, key_json, column_name, postgres_value, mysql_value, policy, winner, postgres_commit_ts, decided_at, resolved_at) VALUES (",
            );
            push_literal(out, &self.pipeline);
            for v in [
                Some(r.pair.as_str()),
                Some(r.key_json.as_str()),
                Some(r.column.as_str()),
                r.postgres_value.as_deref(),
                r.mysql_value.as_deref(),
                Some(r.policy.as_str()),
                r.winner.as_deref(),
                postgres_commit_ts,
            ] {
                out.push(',');
                push_opt(out, v);
            }
            // Decided conflicts are closed at once; manual ones (no winner) stay open.
            out.push_str(if r.winner.is_none() { ", UTC_TIMESTAMP(6), NULL);\n" } else { ", UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));\n" });
        }
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

    /// Names of the pairs with parked changes of this direction.
    pub async fn parked_pairs(&self, conn: &mut Conn) -> Result<Vec<String>> {
        let sql = format!("SELECT DISTINCT pair FROM {} WHERE pipeline = ? AND direction = ?", self.table("parked"));
        Ok(conn.exec(sql, (&self.pipeline, self.direction)).await?)
    }

    /// Parks changes (pair name, change JSON), in order (written with the batch).
    pub fn push_park(&self, out: &mut String, pairs: &[String], changes: &[String], reason: &str) {
        if pairs.is_empty() {
            return;
        }
        out.push_str(&format!("INSERT INTO {} (pipeline, direction, pair, reason, change_json, created_at) VALUES ", self.table("parked")));
        for (n, (pair, text)) in pairs.iter().zip(changes).enumerate() {
            out.push_str(if n == 0 { "(" } else { ",(" });
            for f in [self.pipeline.as_str(), self.direction, pair, reason, text] {
                push_literal(out, f);
                out.push(',');
            }
            out.push_str("UTC_TIMESTAMP(6))");
        }
        out.push_str(";\n");
    }

    /// The oldest `limit` parked changes of `pair`: (id, change JSON).
    pub async fn parked(&self, conn: &mut Conn, pair: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        let sql = format!("SELECT id, change_json FROM {} WHERE pipeline = ? AND direction = ? AND pair = ? ORDER BY id LIMIT {limit}", self.table("parked"));
        let rows: Vec<(u64, String)> = conn.exec(sql, (&self.pipeline, self.direction, pair)).await?;
        Ok(rows.into_iter().map(|(id, text)| (id as i64, text)).collect())
    }

    /// Deletes parked changes by id (written with the batch).
    pub fn push_unpark(&self, out: &mut String, ids: &[i64]) {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        out.push_str(&format!("DELETE FROM {} WHERE id IN ({});\n", self.table("parked"), ids.join(",")));
    }

    /// A pair's backfill progress (run, last key), locked for the chunk's merge.
    pub async fn backfill_progress(&self, conn: &mut Conn, pair: &str) -> Result<Option<(String, Option<String>)>> {
        let sql = format!("SELECT run, last_key FROM {} WHERE pipeline = ? AND pair = ? FOR UPDATE", self.table("backfills"));
        Ok(conn.exec_first(sql, (&self.pipeline, pair)).await?)
    }

    /// Records a merged chunk (`applied`: rows added) or an abandoned one (`None`).
    pub async fn backfill_chunk_done(&self, conn: &mut Conn, pair: &str, run: &str, chunk: u64, applied: Option<(u64, Option<String>)>) -> Result<()> {
        let table = self.table("backfills");
        match applied {
            Some((rows, last_key)) => {
                let sql = format!(
                    "UPDATE {table} SET run = ?, chunk = ?, outcome = 'applied', rows_applied = rows_applied + ?,
                     last_key = ?, updated_at = UTC_TIMESTAMP(6) WHERE pipeline = ? AND pair = ?"
                );
                conn.exec_drop(sql, (run, chunk, rows, last_key, &self.pipeline, pair)).await?;
            }
            None => {
                let sql = format!("UPDATE {table} SET run = ?, chunk = ?, outcome = 'abandoned', updated_at = UTC_TIMESTAMP(6) WHERE pipeline = ? AND pair = ?");
                conn.exec_drop(sql, (run, chunk, &self.pipeline, pair)).await?;
            }
        }
        Ok(())
    }
}
