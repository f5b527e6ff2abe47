//! `tandem sequences sync`: moves each pair's Postgres key sequence and
//! MySQL AUTO_INCREMENT past the highest key present on either side — the
//! step a cut-over needs, since rows that arrive by replication carry their
//! keys and a Postgres sequence does not move for them.
//!
//! A sequence is set so that its next value is the first of its own
//! progression (increment, current residue) above the highest key, so odd/
//! even schemes stay odd/even; a sequence whose MAXVALUE lies below the
//! highest key (disjoint ranges) is moved past the highest key within its
//! range instead. AUTO_INCREMENT is set to the highest key + 1 (MySQL then
//! generates the next value of its own series at or above it). Nothing ever
//! moves backwards; a generator already past is reported as such.

use crate::config::{Config, Side};
use crate::ops::keyspace::{self, pg_sync_target};
use crate::sql::pg::literal as pg_literal;
use crate::Result;
use mysql_async::prelude::Queryable;

/// What became of one generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub pair: String,
    pub side: Side,
    /// `postgres sequence public.items_id_seq`, `MySQL AUTO_INCREMENT of app.items`.
    pub generator: String,
    /// The highest key it had to pass (within its range).
    pub highest: Option<i128>,
    /// Its next value before.
    pub before: i128,
    /// Its next value after, when it moved.
    pub after: Option<i128>,
}

impl std::fmt::Display for Move {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let highest = self.highest.map_or_else(|| "no rows".to_string(), |h| format!("highest key {h}"));
        match self.after {
            Some(after) => write!(f, "pair {}: {} moved from {} to {after} ({highest})", self.pair, self.generator, self.before),
            None => write!(f, "pair {}: {} already past (next {}, {highest})", self.pair, self.generator, self.before),
        }
    }
}

/// Syncs every generator of the selected pairs (`only`: one pair).
pub async fn sync(cfg: &Config, only: Option<&str>) -> Result<Vec<Move>> {
    let pairs = keyspace::selected(cfg, only)?;
    let pg = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
    let mut my = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
    let mut out = Vec::new();
    for pair in pairs {
        for k in keyspace::read(&pg, &mut my, pair).await? {
            if let Some(g) = k.pg.as_ref().filter(|g| g.increment > 0) {
                let (a, b) = keyspace::highest(&pg, &mut my, &k, None).await?;
                let mut highest = a.max(b);
                let mut target = highest.and_then(|h| pg_sync_target(g, h));
                if highest.is_some_and(|h| h >= g.max) {
                    // Disjoint ranges: the other side's keys lie above this sequence's range.
                    let (a, b) = keyspace::highest(&pg, &mut my, &k, Some(g.max)).await?;
                    highest = a.max(b);
                    target = highest.and_then(|h| pg_sync_target(g, h));
                }
                if let Some(v) = target {
                    pg.batch_execute(&format!("SELECT setval({}::regclass, {v}, false)", pg_literal(&g.sequence))).await?;
                }
                out.push(Move { pair: pair.name.clone(), side: Side::Postgres, generator: format!("postgres sequence {}", g.sequence), highest, before: g.next, after: target });
            }
            if let Some(m) = &k.my {
                let (a, b) = keyspace::highest(&pg, &mut my, &k, None).await?;
                let highest = a.max(b);
                let target = highest.filter(|h| *h >= m.next()).map(|h| h + 1);
                let mut after = None;
                if let Some(v) = target {
                    my.query_drop(format!("ALTER TABLE {} AUTO_INCREMENT = {v}", k.my_table)).await?;
                    // Read back what MySQL will generate (its series at or above the counter).
                    let moved = keyspace::read(&pg, &mut my, pair).await?;
                    after = moved.iter().find(|c| c.my_column == k.my_column).and_then(|c| c.my.as_ref()).map(|g| g.next()).or(Some(v));
                }
                out.push(Move {
                    pair: pair.name.clone(),
                    side: Side::Mysql,
                    generator: format!("MySQL AUTO_INCREMENT of {}", k.my_table),
                    highest,
                    before: m.next(),
                    after,
                });
            }
        }
    }
    let _ = my.disconnect().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_read_as_sentences() {
        let m = Move { pair: "items".into(), side: Side::Postgres, generator: "postgres sequence public.items_id_seq".into(), highest: Some(10), before: 4, after: Some(11) };
        assert_eq!(m.to_string(), "pair items: postgres sequence public.items_id_seq moved from 4 to 11 (highest key 10)");
        let m = Move { after: None, before: 12, ..m };
        assert_eq!(m.to_string(), "pair items: postgres sequence public.items_id_seq already past (next 12, highest key 10)");
    }
}
