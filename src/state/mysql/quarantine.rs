//! The `quarantine` table in MySQL: changes this server rejected (written
//! with the batch) and their removal once a retry applied them.

use super::{push_opt, MyState};
use crate::state::QuarantineRow;

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
