//! The `origin_marker` table in MySQL: the row tandem's sessions write first
//! in every transaction when they cannot tag their events with a server id,
//! so the binlog reader knows tandem's own transactions (DESIGN §2).

use super::MyState;
use crate::sql::my::push_literal;

impl MyState {
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
}
