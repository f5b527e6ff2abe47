//! The first pass of a pair: find the keys whose rows may differ, reading
//! as little as possible over the network.
//!
//! 1. Split the key space into chunks of about `chunk_rows` keys, taking
//!    every Nth key of the Postgres side (only keys travel).
//! 2. Per chunk, both servers compute `count` and the sum of 60-bit prefixes
//!    of each row's md5 (order-independent, so identical when the canonical
//!    row texts are). Equal chunks are done.
//! 3. A mismatched range is split again into up to `FANOUT` sub-ranges at
//!    keys of the side holding more rows, and both sides sum per sub-range
//!    in one statement; only mismatched sub-ranges go on.
//! 4. A range of at most `LEAF_ROWS` rows (or empty on one side) is compared
//!    row by row: `(key, 16 hex digits of the row md5)` from both sides.
//!
//! Then `observe` fetches the full canonical rows of just the candidate keys,
//! and `classify` decides what differs (JSON by value, see
//! `crate::tables::canonical`).
//! Both sides are queried concurrently; each query is bounded by one chunk.

use crate::schema::{PairSchema, ValueKind};
use crate::tables::canonical::{Binder, KeyRange, KeyText, SideSql};
use crate::tables::sides::{TextQuery, TextRow};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Sub-ranges per split of a mismatched range.
const FANOUT: u64 = 16;
/// Ranges this small are compared row by row.
const LEAF_ROWS: u64 = 64;
/// Splits below a chunk before comparing row by row regardless.
const MAX_DEPTH: u32 = 8;
/// Keys per row-fetch statement.
const FETCH_BATCH: usize = 200;

/// A pair with the SQL for both sides.
#[derive(Debug, Clone)]
pub struct PairCtx {
    pub schema: PairSchema,
    pub pg: SideSql,
    pub my: SideSql,
}

/// Row count and hash sum of a range on one side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Summary {
    count: u64,
    sum: String,
}

/// What the first pass found for one pair.
#[derive(Debug, Default)]
pub struct Scan {
    pub chunks: u64,
    pub chunks_mismatched: u64,
    /// Keys whose row differs or is missing on one side at the time of reading.
    pub candidates: BTreeSet<KeyText>,
}

/// A row as read from both sides at one moment (canonical text per column).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub pg: Option<TextRow>,
    pub my: Option<TextRow>,
}

/// How a row differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    MissingInMysql,
    MissingInPostgres,
    /// Indices of the differing columns.
    Different(Vec<usize>),
}

fn bad(sql: &SideSql, what: &str) -> Error {
    Error::Decode(format!("drift check on {}: unexpected {what}", sql.table))
}

fn key_of(row: &mut TextRow, n: usize, sql: &SideSql) -> Result<KeyText> {
    row.drain(..n).map(|v| v.ok_or_else(|| bad(sql, "NULL key"))).collect()
}

async fn splits<Q: TextQuery>(q: &mut Q, sql: &SideSql, key: &[usize], r: &KeyRange, step: u64) -> Result<Vec<KeyText>> {
    let mut b = Binder::new(q.dialect());
    let text = sql.splits_sql(&mut b, key, r, step.max(1));
    let mut out = Vec::new();
    for mut row in q.rows(&text, b.values).await? {
        out.push(key_of(&mut row, key.len(), sql)?);
    }
    Ok(out)
}

async fn summaries<Q: TextQuery>(q: &mut Q, sql: &SideSql, r: &KeyRange, cuts: &[KeyText]) -> Result<Vec<Summary>> {
    let mut b = Binder::new(q.dialect());
    let text = sql.summaries_sql(&mut b, r, cuts);
    let mut out = vec![Summary { count: 0, sum: "0".into() }; cuts.len() + 1];
    for row in q.rows(&text, b.values).await? {
        let [Some(bucket), Some(count), Some(sum)] = row.as_slice() else { return Err(bad(sql, "summary row")) };
        let bucket: usize = bucket.parse().map_err(|_| bad(sql, "bucket"))?;
        let count: u64 = count.parse().map_err(|_| bad(sql, "count"))?;
        let slot = out.get_mut(bucket).ok_or_else(|| bad(sql, "bucket"))?;
        *slot = Summary { count, sum: sum.clone() };
    }
    Ok(out)
}

async fn row_hashes<Q: TextQuery>(q: &mut Q, sql: &SideSql, key: &[usize], r: &KeyRange, rows: u64) -> Result<HashMap<KeyText, String>> {
    if rows == 0 {
        return Ok(HashMap::new());
    }
    let mut b = Binder::new(q.dialect());
    let text = sql.row_hashes_sql(&mut b, key, r);
    let mut out = HashMap::new();
    for mut row in q.rows(&text, b.values).await? {
        let k = key_of(&mut row, key.len(), sql)?;
        out.insert(k, row.pop().flatten().unwrap_or_default());
    }
    Ok(out)
}

/// Sub-ranges of `r` cut at `cuts` (ascending).
fn cut(r: &KeyRange, cuts: &[KeyText]) -> Vec<KeyRange> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut lo = r.lo.clone();
    for c in cuts {
        out.push(KeyRange { lo: lo.clone(), hi: Some(c.clone()) });
        lo = Some(c.clone());
    }
    out.push(KeyRange { lo, hi: r.hi.clone() });
    out
}

/// The first pass over one pair.
pub async fn scan<P: TextQuery, M: TextQuery>(pg: &mut P, my: &mut M, ctx: &PairCtx, chunk_rows: u64, pace: &mut super::pace::Pace) -> Result<Scan> {
    let key = &ctx.schema.key;
    let top = splits(pg, &ctx.pg, key, &KeyRange::default(), chunk_rows).await?;
    let mut found = Scan::default();
    for range in cut(&KeyRange::default(), &top) {
        let (a, b) = tokio::join!(summaries(pg, &ctx.pg, &range, &[]), summaries(my, &ctx.my, &range, &[]));
        let (a, b) = (a?.remove(0), b?.remove(0));
        found.chunks += 1;
        pace.after(a.count.max(b.count)).await;
        if a == b {
            continue;
        }
        found.chunks_mismatched += 1;
        tracing::debug!(pair = %ctx.schema.name, ?range, postgres_rows = a.count, mysql_rows = b.count, "chunk differs");
        drill(pg, my, ctx, range, a.count, b.count, &mut found.candidates).await?;
    }
    Ok(found)
}

/// Narrows one mismatched range down to candidate keys.
async fn drill<P: TextQuery, M: TextQuery>(
    pg: &mut P,
    my: &mut M,
    ctx: &PairCtx,
    range: KeyRange,
    pg_rows: u64,
    my_rows: u64,
    out: &mut BTreeSet<KeyText>,
) -> Result<()> {
    let key = &ctx.schema.key;
    let mut stack = vec![(range, pg_rows, my_rows, 0u32)];
    while let Some((r, a, b, depth)) = stack.pop() {
        let big = a.max(b);
        let cuts = if a == 0 || b == 0 || big <= LEAF_ROWS || depth >= MAX_DEPTH {
            Vec::new()
        } else if a >= b {
            splits(pg, &ctx.pg, key, &r, big.div_ceil(FANOUT)).await?
        } else {
            splits(my, &ctx.my, key, &r, big.div_ceil(FANOUT)).await?
        };
        if cuts.is_empty() {
            let (ha, hb) = tokio::join!(row_hashes(pg, &ctx.pg, key, &r, a), row_hashes(my, &ctx.my, key, &r, b));
            let (ha, hb) = (ha?, hb?);
            for k in ha.keys().chain(hb.keys()) {
                if ha.get(k) != hb.get(k) {
                    out.insert(k.clone());
                }
            }
            continue;
        }
        let (sa, sb) = tokio::join!(summaries(pg, &ctx.pg, &r, &cuts), summaries(my, &ctx.my, &r, &cuts));
        let (sa, sb) = (sa?, sb?);
        for ((sub, x), y) in cut(&r, &cuts).into_iter().zip(sa).zip(sb) {
            if x != y {
                stack.push((sub, x.count, y.count, depth + 1));
            }
        }
    }
    Ok(())
}

async fn fetch<Q: TextQuery>(q: &mut Q, sql: &SideSql, key: &[usize], keys: &[KeyText]) -> Result<HashMap<KeyText, TextRow>> {
    let mut out = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(out);
    }
    let mut b = Binder::new(q.dialect());
    let text = sql.rows_sql(&mut b, key, keys);
    for mut row in q.rows(&text, b.values).await? {
        let k = key_of(&mut row, key.len(), sql)?;
        out.insert(k, row);
    }
    Ok(out)
}

/// Reads the current rows of `keys` from both sides.
pub async fn observe<P: TextQuery, M: TextQuery>(
    pg: &mut P,
    my: &mut M,
    ctx: &PairCtx,
    keys: impl IntoIterator<Item = KeyText>,
) -> Result<BTreeMap<KeyText, Observed>> {
    let keys: Vec<KeyText> = keys.into_iter().collect();
    let mut out = BTreeMap::new();
    for batch in keys.chunks(FETCH_BATCH) {
        let (a, b) = tokio::join!(fetch(pg, &ctx.pg, &ctx.schema.key, batch), fetch(my, &ctx.my, &ctx.schema.key, batch));
        let (mut a, mut b) = (a?, b?);
        for k in batch {
            out.insert(k.clone(), Observed { pg: a.remove(k), my: b.remove(k) });
        }
    }
    Ok(out)
}

fn json_equal(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Indices of the columns whose values differ between two rows.
pub fn differing_columns(schema: &PairSchema, pg: &TextRow, my: &TextRow) -> Vec<usize> {
    (0..schema.columns.len())
        .filter(|&i| {
            let (a, b) = (pg.get(i).cloned().flatten(), my.get(i).cloned().flatten());
            if a == b {
                return false;
            }
            let c = &schema.columns[i];
            let json = crate::tables::canonical::pg_kind_of(c) == ValueKind::Json || c.my_kind == ValueKind::Json;
            !matches!((json, a, b), (true, Some(x), Some(y)) if json_equal(&x, &y))
        })
        .collect()
}

/// What differs in an observed row; `None` when both sides agree (or neither has it).
pub fn classify(schema: &PairSchema, o: &Observed) -> Option<Finding> {
    match (&o.pg, &o.my) {
        (None, None) => None,
        (Some(_), None) => Some(Finding::MissingInMysql),
        (None, Some(_)) => Some(Finding::MissingInPostgres),
        (Some(a), Some(b)) => {
            let cols = differing_columns(schema, a, b);
            (!cols.is_empty()).then_some(Finding::Different(cols))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_cover_the_range_without_overlap() {
        let r = KeyRange { lo: Some(vec!["1".into()]), hi: None };
        let parts = cut(&r, &[vec!["5".into()], vec!["9".into()]]);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], KeyRange { lo: Some(vec!["1".into()]), hi: Some(vec!["5".into()]) });
        assert_eq!(parts[2], KeyRange { lo: Some(vec!["9".into()]), hi: None });
    }

    #[test]
    fn json_is_compared_by_value() {
        assert!(json_equal(r#"{"b": 1, "aa": [1, 2]}"#, r#"{"aa":[1,2],"b":1}"#));
        assert!(!json_equal(r#"{"a": 1}"#, r#"{"a": 2}"#));
    }
}
