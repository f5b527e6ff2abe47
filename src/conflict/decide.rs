//! The one function that decides who wins a column conflict (DESIGN §3).
//!
//! A conflict exists when the destination's current value differs from the
//! source's before-image: both sides changed the column concurrently. The
//! decision depends only on the column's owner, the pair's policy and the two
//! values of the timestamp column, never on which direction asks — so both
//! directions reach the same verdict and the sides converge.

use crate::config::{ConflictPolicy, Owner, Side};
use crate::model::Value;
use std::cmp::Ordering;

/// The verdict on one column conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This side's value is kept on both sides.
    Wins(Side),
    /// `manual`: the destination keeps its value until an operator resolves it.
    Open,
}

/// Who wins a conflict on a column owned by `owner` between `source` (the side
/// whose change is being applied) and the destination. For last-writer-wins,
/// `source_ts` / `dest_ts` are the rows' `timestamp_column` values.
pub fn decide(owner: Owner, policy: ConflictPolicy, tie_breaker: Side, source: Side, source_ts: &Value, dest_ts: &Value) -> Verdict {
    match owner {
        Owner::Postgres => return Verdict::Wins(Side::Postgres),
        Owner::Mysql => return Verdict::Wins(Side::Mysql),
        Owner::Both => {}
    }
    match policy {
        ConflictPolicy::PostgresWins => Verdict::Wins(Side::Postgres),
        ConflictPolicy::MysqlWins => Verdict::Wins(Side::Mysql),
        ConflictPolicy::Manual => Verdict::Open,
        ConflictPolicy::LastWriterWins => {
            let (pg_ts, my_ts) = if source == Side::Postgres { (source_ts, dest_ts) } else { (dest_ts, source_ts) };
            match super::compare::newer(pg_ts, my_ts) {
                Some(Ordering::Greater) => Verdict::Wins(Side::Postgres),
                Some(Ordering::Less) => Verdict::Wins(Side::Mysql),
                // Equal, or a NULL / incomparable timestamp: the tie breaker decides.
                _ => Verdict::Wins(tie_breaker),
            }
        }
    }
}

pub fn policy_name(p: ConflictPolicy) -> &'static str {
    match p {
        ConflictPolicy::PostgresWins => "postgres-wins",
        ConflictPolicy::MysqlWins => "mysql-wins",
        ConflictPolicy::LastWriterWins => "last-writer-wins",
        ConflictPolicy::Manual => "manual",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T1: Value = Value::Timestamp(1);
    const T2: Value = Value::Timestamp(2);

    #[test]
    fn decision_table() {
        use ConflictPolicy::*;
        use Side::*;
        let d = |owner, policy, source, s_ts: &Value, d_ts: &Value| decide(owner, policy, Postgres, source, s_ts, d_ts);
        assert_eq!(d(Owner::Postgres, MysqlWins, Mysql, &T2, &T1), Verdict::Wins(Postgres), "owner beats policy");
        assert_eq!(d(Owner::Mysql, PostgresWins, Postgres, &T2, &T1), Verdict::Wins(Mysql));
        assert_eq!(d(Owner::Both, PostgresWins, Mysql, &T2, &T1), Verdict::Wins(Postgres));
        assert_eq!(d(Owner::Both, MysqlWins, Postgres, &T2, &T1), Verdict::Wins(Mysql));
        assert_eq!(d(Owner::Both, Manual, Postgres, &T2, &T1), Verdict::Open);
        assert_eq!(d(Owner::Both, LastWriterWins, Postgres, &T2, &T1), Verdict::Wins(Postgres), "newer source wins");
        assert_eq!(d(Owner::Both, LastWriterWins, Postgres, &T1, &T2), Verdict::Wins(Mysql), "newer destination wins");
        assert_eq!(d(Owner::Both, LastWriterWins, Mysql, &T2, &T1), Verdict::Wins(Mysql));
        assert_eq!(d(Owner::Both, LastWriterWins, Mysql, &T1, &T1), Verdict::Wins(Postgres), "tie → tie_breaker");
        assert_eq!(decide(Owner::Both, LastWriterWins, Mysql, Postgres, &T1, &T1), Verdict::Wins(Mysql));
        assert_eq!(d(Owner::Both, LastWriterWins, Mysql, &Value::Null, &T1), Verdict::Wins(Postgres), "NULL timestamp → tie_breaker");
    }

    fn owner() -> impl Strategy<Value = Owner> {
        prop_oneof![Just(Owner::Postgres), Just(Owner::Mysql), Just(Owner::Both)]
    }
    fn policy() -> impl Strategy<Value = ConflictPolicy> {
        prop_oneof![
            Just(ConflictPolicy::PostgresWins),
            Just(ConflictPolicy::MysqlWins),
            Just(ConflictPolicy::LastWriterWins),
            Just(ConflictPolicy::Manual)
        ]
    }
    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Postgres), Just(Side::Mysql)]
    }

    proptest! {
        /// Convergence: the Postgres→MySQL applier and the MySQL→Postgres
        /// applier, each seeing the other's value as the destination's, agree.
        #[test]
        fn both_directions_reach_the_same_verdict(o in owner(), p in policy(), tie in side(), pg in proptest::option::of(any::<i64>()), my in proptest::option::of(any::<i64>())) {
            let v = |x: Option<i64>| x.map(Value::Timestamp).unwrap_or(Value::Null);
            let from_pg = decide(o, p, tie, Side::Postgres, &v(pg), &v(my));
            let from_my = decide(o, p, tie, Side::Mysql, &v(my), &v(pg));
            prop_assert_eq!(from_pg, from_my);
        }
    }
}
