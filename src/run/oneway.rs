//! The one-way filter of a direction (`[[pairs]] direction`): the stage
//! between the echo stage and the batcher that drops the row changes of
//! pairs that do not replicate this way, so they stay on the side where
//! they were made.
//!
//! Invariants: only `Changes` of a one-way pair read against its direction
//! are dropped (counted in `tandem_one_way_skipped_total`, the first of each
//! pair logged); transaction boundaries, positions and every other event
//! pass unchanged, so the direction's checkpoint moves on as if the changes
//! had been applied and switching the pair to `both` later needs only a
//! restart. A backfill watermark of such a pair becomes an `Idle` at its
//! position: no chunk of it is applied this way. The other direction is
//! never affected.

use crate::backfill::Signal;
use crate::config::{Direction, PairConfig};
use crate::metrics as m;
use crate::model::SourceEvent;
use crate::source::EventStream;

/// A direction's event stream without the changes of pairs that replicate only the other way.
pub struct OneWay<E> {
    inner: E,
    direction: Direction,
    /// By pair index: is this pair's change dropped here?
    skip: Vec<bool>,
    names: Vec<String>,
    /// By pair index: was a skip logged already?
    logged: Vec<bool>,
}

impl<E: EventStream> OneWay<E> {
    pub fn new(inner: E, direction: Direction, pairs: &[PairConfig]) -> Self {
        let skip: Vec<bool> = pairs.iter().map(|p| !p.direction.flows(direction)).collect();
        for p in pairs.iter().filter(|p| !p.direction.flows(direction)) {
            tracing::info!(%direction, pair = %p.name, "pair replicates only {}: its changes read here are not applied", p.direction.as_str());
        }
        OneWay { inner, direction, logged: vec![false; pairs.len()], names: pairs.iter().map(|p| p.name.clone()).collect(), skip }
    }

    fn skipped(&self, pair: usize) -> bool {
        self.skip.get(pair).copied().unwrap_or(false)
    }

    fn count(&mut self, pair: usize, n: u64) {
        let name = self.names.get(pair).cloned().unwrap_or_default();
        metrics::counter!(m::ONE_WAY_SKIPPED, "direction" => self.direction.key(), "pair" => name.clone()).increment(n);
        if let Some(logged) = self.logged.get_mut(pair).filter(|l| !**l) {
            *logged = true;
            tracing::info!(direction = %self.direction, pair = %name, "changes of a one-way pair not applied in this direction (counted in {})", m::ONE_WAY_SKIPPED);
        }
    }
}

impl<E: EventStream> EventStream for OneWay<E> {
    async fn next(&mut self) -> Option<SourceEvent> {
        if !self.skip.contains(&true) {
            return self.inner.next().await;
        }
        loop {
            match self.inner.next().await? {
                SourceEvent::Changes(changes) => {
                    let mut kept = Vec::with_capacity(changes.len());
                    let mut dropped: Vec<(usize, u64)> = Vec::new();
                    for c in changes {
                        if !self.skipped(c.pair) {
                            kept.push(c);
                        } else if let Some(d) = dropped.iter_mut().find(|d| d.0 == c.pair) {
                            d.1 += 1;
                        } else {
                            dropped.push((c.pair, 1));
                        }
                    }
                    for (pair, n) in dropped {
                        self.count(pair, n);
                    }
                    if !kept.is_empty() {
                        return Some(SourceEvent::Changes(kept));
                    }
                }
                SourceEvent::Watermark { position, payload } => {
                    let pair = serde_json::from_str::<Signal>(&payload).ok().and_then(|s| self.names.iter().position(|n| *n == s.pair));
                    return Some(match pair {
                        Some(p) if self.skipped(p) => SourceEvent::Idle(position),
                        _ => SourceEvent::Watermark { position, payload },
                    });
                }
                other => return Some(other),
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, Lsn, Op, Origin, SourcePos, TxnMeta, Value};
    use tokio::sync::mpsc;

    fn change(pair: usize, id: i64) -> Change {
        Change { pair, op: Op::Insert, key: vec![Value::Int(id)], before: None, after: Some(vec![Value::Int(id)]) }
    }

    #[tokio::test]
    async fn only_the_changes_of_pairs_replicating_the_other_way_are_dropped() {
        let text = r#"
            [pipeline]
            name = "crm"
            [postgres]
            url = "postgresql://tandem@127.0.0.1:5432/app"
            [mysql]
            url = "mysql://tandem@127.0.0.1:3306/app"
            server_id = 4001
            [[pairs]]
            name = "both"
            postgres = "public.a"
            mysql = "app.a"
            [[pairs]]
            name = "back"
            postgres = "public.b"
            mysql = "app.b"
            direction = "mysql-to-postgres"
        "#;
        let env = |_: &str| None;
        let read = |p: &std::path::Path| std::fs::read_to_string(p);
        let cfg = crate::config::parse(text, std::path::Path::new("t.toml"), &crate::config::Inputs { env: &env, read_file: &read }).unwrap();
        let commit = SourceEvent::Commit(TxnMeta { position: SourcePos::Postgres(Lsn(10)), commit_ts: 0, origin: None, txn_seq: 1 });
        let events = vec![
            SourceEvent::Begin { txn_seq: 1, origin: Origin::Client, commit_ts: 0 },
            SourceEvent::Changes(vec![change(0, 1), change(1, 2), change(0, 3)]),
            SourceEvent::Changes(vec![change(1, 4)]),
            commit.clone(),
        ];
        let run = |direction: Direction| {
            let (tx, rx) = mpsc::channel(10);
            for e in events.clone() {
                tx.try_send(e).unwrap();
            }
            drop(tx);
            let mut s = OneWay::new(rx, direction, &cfg.pairs);
            async move {
                let mut out = Vec::new();
                while let Some(e) = s.next().await {
                    out.push(e);
                }
                out
            }
        };
        let forward = run(Direction::PostgresToMysql).await;
        assert_eq!(
            forward,
            vec![
                SourceEvent::Begin { txn_seq: 1, origin: Origin::Client, commit_ts: 0 },
                SourceEvent::Changes(vec![change(0, 1), change(0, 3)]),
                commit.clone(),
            ],
            "the transaction and its position pass; pair back's changes do not"
        );
        assert_eq!(run(Direction::MysqlToPostgres).await, events, "the other direction is untouched");
    }
}
