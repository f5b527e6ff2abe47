//! Key spaces in `tandem validate` (`crate::ops::keyspace`): a pair whose
//! key both sides generate in ranges that can meet (Postgres identity or
//! serial sequence, MySQL AUTO_INCREMENT: increments, offsets and next
//! values compared) is a problem naming the pair, the first shared value and
//! the fixes; so is a generator whose next values hit keys already present
//! on either side (the state right after a copy or a cut-over), which
//! `tandem sequences sync` fixes.
//!
//! For a one-way pair the side whose changes are not replicated inserts only
//! for itself: what its generator would meet is an INFO line (it matters at
//! the cut-over), not a problem.

use super::Report;
use crate::config::{Config, Direction, PairDirection, Side};
use crate::ops::keyspace::{self, first_common, KeyColumn};
use mysql_async::Conn;
use tokio_postgres::Client;

pub(super) async fn check(cfg: &Config, pg: &Client, my: &mut Conn, r: &mut Report) {
    for pair in &cfg.pairs {
        let keys = match keyspace::read(pg, my, pair).await {
            Ok(k) => k,
            Err(e) => {
                r.could_not(format!("pair {} key generators", pair.name), e);
                continue;
            }
        };
        for k in keys {
            let object = format!("pair {} key {}", pair.name, k.pg_column);
            if let (Some(p), Some(m)) = (&k.pg, &k.my) {
                if let Some(x) = first_common(p, m) {
                    let text = format!(
                        "both sides generate keys that can collide: postgres sequence {} (next {}, increment {}) and MySQL AUTO_INCREMENT of {} \
                         (next {}, increment {}, offset {}) both produce {x}. Fix: give them disjoint ranges (odd/even: ALTER SEQUENCE {} INCREMENT BY 2 \
                         RESTART WITH an odd value, and auto_increment_increment = 2, auto_increment_offset = 2 on MySQL; or a sequence MAXVALUE below \
                         MySQL's next value), or let one side insert only (direction = \"postgres-to-mysql\" or \"mysql-to-postgres\", or explicit keys \
                         on the other side); then `tandem sequences sync --pair {}`",
                        p.sequence, p.next, p.increment, k.my_table, m.next(), m.increment, m.offset, p.sequence, pair.name
                    );
                    if pair.direction == PairDirection::Both {
                        r.problem(&object, text);
                    } else {
                        r.info(&object, format!("{text} (only a problem once the pair replicates both ways)"));
                    }
                }
            }
            behind(pg, my, pair.name.as_str(), pair.direction, &k, &object, r).await;
        }
    }
}

/// A generator whose next values are keys already present.
async fn behind(pg: &Client, my: &mut Conn, pair: &str, direction: PairDirection, k: &KeyColumn, object: &str, r: &mut Report) {
    let gens = [
        (Side::Postgres, k.pg.as_ref().filter(|p| p.increment > 0).map(|p| (format!("postgres sequence {}", p.sequence), p.next, p.increment, p.max))),
        (Side::Mysql, k.my.as_ref().map(|m| (format!("MySQL AUTO_INCREMENT of {}", k.my_table), m.next(), m.increment, m.max))),
    ];
    for (side, g) in gens {
        let Some((what, next, step, max)) = g else { continue };
        match keyspace::taken(pg, my, k, next, step, max).await {
            Ok(false) => {}
            Ok(true) => {
                let text = format!(
                    "{what} would produce keys already present (next {next}, increment {step}): an insert in {side} without an explicit key \
                     would fail or collide; run `tandem sequences sync --pair {pair}`"
                );
                if direction.flows(Direction::from_source(side)) {
                    r.problem(object, text);
                } else {
                    r.info(object, format!("{text} before applications write to {side}"));
                }
            }
            Err(e) => r.could_not(format!("{object} ({what})"), e),
        }
    }
}
