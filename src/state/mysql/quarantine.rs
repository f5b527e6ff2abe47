//! The `quarantine` table in MySQL: changes this server rejected (written
//! with the batch) and their removal once a retry applied them; and the
//! operator's view of them (`tandem status`, `tandem quarantine`).

use super::{i64_at, push_opt, text_at, MyPipelineState, MyState};
use crate::state::{QuarantineRow, StoredQuarantine};
use crate::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

impl MyState {
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
}

impl MyPipelineState {
    /// The pipeline's quarantined changes counted by direction: (direction, count).
    pub async fn quarantined_by_direction(&self, conn: &mut Conn) -> Result<Vec<(String, i64)>> {
        let sql = format!("SELECT direction, COUNT(*) FROM {} WHERE pipeline = ? GROUP BY direction", self.table("quarantine"));
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (&self.pipeline,)).await?;
        Ok(rows.iter().filter_map(|r| Some((text_at(r, 0)?, i64_at(r, 1)?))).collect())
    }

    /// Quarantined changes now, by (direction, pair): `tandem_quarantine_rows`.
    pub async fn quarantined_by_pair(&self, conn: &mut Conn) -> Result<Vec<(String, String, i64)>> {
        let sql = format!("SELECT direction, pair, COUNT(*) FROM {} WHERE pipeline = ? GROUP BY direction, pair", self.table("quarantine"));
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (&self.pipeline,)).await?;
        Ok(rows.iter().filter_map(|r| Some((text_at(r, 0)?, text_at(r, 1)?, i64_at(r, 2)?))).collect())
    }

    /// The pipeline's quarantined changes, in the order they were recorded.
    pub async fn list_quarantine(&self, conn: &mut Conn) -> Result<Vec<StoredQuarantine>> {
        let sql = format!(
            "SELECT id, direction, pair, key_json, column_name, value_text, error, position, CAST(created_at AS CHAR), change_json
             FROM {} WHERE pipeline = ? ORDER BY id",
            self.table("quarantine")
        );
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (&self.pipeline,)).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let s = |i: usize| r.get::<Option<String>, usize>(i).flatten();
                StoredQuarantine {
                    id: r.get::<u64, usize>(0).unwrap_or(0) as i64,
                    direction: s(1).unwrap_or_default(),
                    pair: s(2).unwrap_or_default(),
                    key_json: s(3).unwrap_or_default(),
                    column: s(4),
                    value: s(5),
                    error: s(6).unwrap_or_default(),
                    position: s(7).unwrap_or_default(),
                    created_at: s(8).unwrap_or_default(),
                    change_json: s(9).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Discards the pipeline's quarantined change `id`; `false` when there is none.
    pub async fn drop_quarantined(&self, conn: &mut Conn, id: i64) -> Result<bool> {
        let sql = format!("DELETE FROM {} WHERE pipeline = ? AND id = ?", self.table("quarantine"));
        conn.exec_drop(sql, (&self.pipeline, id)).await?;
        Ok(conn.affected_rows() == 1)
    }
}
