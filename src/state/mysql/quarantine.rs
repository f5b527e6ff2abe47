//! The `quarantine` table in MySQL: changes this server rejected (written
//! with the batch) and their removal once a retry applied them; and the
//! operator's view of them (`tandem status`).

use super::{i64_at, push_opt, text_at, MyPipelineState, MyState};
use crate::state::QuarantineRow;
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
}
