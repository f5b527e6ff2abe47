//! The `parked` table in MySQL: changes of a paused pair, kept in arrival
//! order (`id`) until the pair resumes and they are applied; and the
//! operator's view of them (`tandem status`).

use super::{i64_at, text_at, MyPipelineState, MyState};
use crate::sql::my::push_literal;
use crate::state::ParkedCount;
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyState {
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
}

impl MyPipelineState {
    /// The pipeline's parked changes counted by direction and pair, in that order.
    pub async fn parked_by_pair(&self, conn: &mut Conn) -> Result<Vec<ParkedCount>> {
        let sql = format!("SELECT direction, pair, COUNT(*), MAX(reason) FROM {} WHERE pipeline = ? GROUP BY 1, 2 ORDER BY 1, 2", self.table("parked"));
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (&self.pipeline,)).await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some(ParkedCount { direction: text_at(r, 0)?, pair: text_at(r, 1)?, changes: i64_at(r, 2)?, reason: text_at(r, 3).unwrap_or_default() }))
            .collect())
    }
}
