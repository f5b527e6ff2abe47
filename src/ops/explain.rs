//! `tandem explain --pair P --key K…`: one row's story — its current value on
//! both sides, column by column with the column's owner and whether the two
//! agree, and every conflict, quarantine and parked entry recorded for that
//! key (on either side).
//!
//! Invariants: it only reads. Values are compared in the canonical text
//! that `tandem check` compares (`tables::canonical`: equal values render
//! byte-identically on both servers), so "equal" here means what check
//! means. The key is given as text, one value per key column in the pair's
//! key order, as `tandem check` and `tandem conflicts list` print it.

use crate::config::{Config, Direction, Owner};
use crate::model::Value;
use crate::schema::PairSchema;
use crate::state::mysql::{MyPipelineState, MyState};
use crate::state::postgres::{PgPipelineState, PgState};
use crate::tables::canonical::{Binder, Dialect, SideSql};
use crate::tables::sides::{MySide, PgSide, TextQuery, TextRow};
use crate::{Error, Result};

/// One column of the row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnStory {
    pub column: String,
    /// `postgres` | `mysql` | `both`.
    pub owner: String,
    /// Canonical text on each side (`None`: NULL, or the row is absent there).
    pub postgres: Option<String>,
    pub mysql: Option<String>,
    pub equal: bool,
}

/// A recorded entry that names this key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    /// `conflict pg:12`, `quarantine my:3`, `parked postgres_to_mysql #7`.
    pub what: String,
    pub detail: String,
}

/// The whole story of one row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub pair: String,
    /// Key column → value, in key order.
    pub key: Vec<(String, String)>,
    pub in_postgres: bool,
    pub in_mysql: bool,
    /// True when the row is absent on both sides or equal in every column.
    pub equal: bool,
    pub columns: Vec<ColumnStory>,
    pub conflicts: Vec<Entry>,
    pub quarantine: Vec<Entry>,
    pub parked: Vec<Entry>,
}

fn owner_text(o: Owner) -> &'static str {
    match o {
        Owner::Postgres => "postgres",
        Owner::Mysql => "mysql",
        Owner::Both => "both",
    }
}

/// Does a stored `key_json` (`{"id": "7"}`) name exactly `key`?
fn names_key(key_json: &str, key: &[(String, String)]) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(key_json) else { return false };
    map.len() == key.len() && key.iter().all(|(c, v)| map.get(c).and_then(|x| x.as_str()) == Some(v.as_str()))
}

async fn read_row<Q: TextQuery>(q: &mut Q, sql: &SideSql, schema: &PairSchema, key: &[String]) -> Result<Option<TextRow>> {
    let mut b = Binder::new(q.dialect());
    let text = sql.rows_sql(&mut b, &schema.key, &[key.to_vec()]);
    let mut rows = q.rows(&text, b.values).await?;
    // (key texts…, every column's text): keep the columns.
    Ok(rows.pop().map(|r| r.into_iter().skip(schema.key.len()).collect()))
}

/// The story of the row of `pair` with key `key` (one text per key column).
pub async fn explain(cfg: &Config, pair: &str, key: &[String]) -> Result<Explanation> {
    let index = cfg.pair_index(pair).ok_or_else(|| Error::Request(format!("no pair named {pair:?} in {}", cfg.path.display())))?;
    let schemas = crate::run::load_schemas(cfg).await?;
    let schema = schemas.iter().find(|s| s.pair == index).ok_or_else(|| Error::Request(format!("pair {pair} has no schema")))?;
    if key.len() != schema.key.len() {
        let names: Vec<&str> = schema.key.iter().map(|&i| schema.columns[i].name.as_str()).collect();
        return Err(Error::Request(format!("pair {pair} has the key ({}): give one --key per column, in that order", names.join(", "))));
    }
    let named: Vec<(String, String)> = schema.key.iter().zip(key).map(|(&i, v)| (schema.columns[i].name.clone(), v.clone())).collect();
    let schema_error = |e: String| Error::Schema { pair: pair.to_string(), message: e };
    let mut pg = PgSide::connect(cfg).await?;
    let mut my = MySide::connect(cfg).await?;
    let pg_sql = SideSql::new(Dialect::Postgres, schema).map_err(schema_error)?;
    let my_sql = SideSql::new(my.dialect(), schema).map_err(schema_error)?;
    let at_pg = read_row(&mut pg, &pg_sql, schema, key).await?;
    let at_my = read_row(&mut my, &my_sql, schema, key).await?;
    let cell = |r: &Option<TextRow>, i: usize| r.as_ref().and_then(|r| r.get(i).cloned().flatten());
    let columns: Vec<ColumnStory> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (p, m) = (cell(&at_pg, i), cell(&at_my, i));
            ColumnStory { column: c.name.clone(), owner: owner_text(c.owner).into(), equal: at_pg.is_some() == at_my.is_some() && p == m, postgres: p, mysql: m }
        })
        .collect();

    let (pg_state, my_state) = (PgPipelineState::new(cfg), MyPipelineState::new(cfg));
    let mut conflicts = Vec::new();
    for (place, stored) in [("pg", pg_state.list_conflicts(&pg.client, true).await?), ("my", my_state.list_conflicts(&mut my.conn, true).await?)] {
        for c in stored.into_iter().filter(|c| c.pair == pair && names_key(&c.key_json, &named)) {
            let state = c.resolved_at.as_deref().map(|at| format!("resolved {at}, winner {}", c.winner.as_deref().unwrap_or("-"))).unwrap_or_else(|| "open".into());
            conflicts.push(Entry {
                what: format!("conflict {place}:{}", c.id),
                detail: format!(
                    "column {}: postgres {:?}, mysql {:?}, policy {}, {state} (decided {})",
                    c.column, c.postgres_value, c.mysql_value, c.policy, c.decided_at
                ),
            });
        }
    }
    let mut quarantine = Vec::new();
    for (place, stored) in [("pg", pg_state.list_quarantine(&pg.client).await?), ("my", my_state.list_quarantine(&mut my.conn).await?)] {
        for q in stored.into_iter().filter(|q| q.pair == pair && names_key(&q.key_json, &named)) {
            let column = q.column.as_deref().map(|c| format!("column {c}: ")).unwrap_or_default();
            quarantine.push(Entry { what: format!("quarantine {place}:{}", q.id), detail: format!("{} {column}{} (at {})", q.direction, q.error, q.created_at) });
        }
    }
    let mut parked = Vec::new();
    let key_values = |c: &crate::model::Change| c.key.iter().map(Value::to_string).collect::<Vec<_>>() == key;
    let into_pg = PgState::new(&cfg.state_schema, &cfg.pipeline, Direction::MysqlToPostgres).parked(&pg.client, pair, 100_000).await?;
    let into_my = MyState::new(&cfg.state_schema, &cfg.pipeline, Direction::PostgresToMysql).parked(&mut my.conn, pair, 100_000).await?;
    for (direction, rows) in [(Direction::MysqlToPostgres, into_pg), (Direction::PostgresToMysql, into_my)] {
        for (id, text) in rows {
            if let Ok(change) = crate::apply::park::change_from_park_json(&text, schema) {
                if key_values(&change) {
                    parked.push(Entry { what: format!("parked {} #{id}", direction.key()), detail: format!("{} waiting for the pair to resume", change.op.as_str()) });
                }
            }
        }
    }
    let _ = my.conn.disconnect().await;
    let equal = columns.iter().all(|c| c.equal);
    Ok(Explanation { pair: pair.to_string(), key: named, in_postgres: at_pg.is_some(), in_mysql: at_my.is_some(), equal, columns, conflicts, quarantine, parked })
}

/// The story as text, one line per column and entry.
pub fn render_text(e: &Explanation) -> String {
    let key: Vec<String> = e.key.iter().map(|(c, v)| format!("{c}={v}")).collect();
    let presence = |b: bool| if b { "present" } else { "absent" };
    let mut out = format!(
        "pair {} key {}: postgres {}, mysql {}; {}\n",
        e.pair,
        key.join(","),
        presence(e.in_postgres),
        presence(e.in_mysql),
        if e.equal { "equal" } else { "DIFFERENT" }
    );
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
    for c in &e.columns {
        let mark = if c.equal { "=" } else { "≠" };
        out.push_str(&format!("  {} (owner {}): postgres {} {mark} mysql {}\n", c.column, c.owner, show(&c.postgres), show(&c.mysql)));
    }
    for (title, entries) in [("conflicts", &e.conflicts), ("quarantine", &e.quarantine), ("parked", &e.parked)] {
        if entries.is_empty() {
            out.push_str(&format!("{title}: none\n"));
        }
        for x in entries {
            out.push_str(&format!("{}: {}\n", x.what, x.detail));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_key_names_the_row_only_when_every_key_column_matches() {
        let key = vec![("id".to_string(), "7".to_string())];
        assert!(names_key(r#"{"id":"7"}"#, &key));
        assert!(!names_key(r#"{"id":"70"}"#, &key));
        assert!(!names_key(r#"{"id":"7","k":"x"}"#, &key), "a wider key is another row");
        assert!(!names_key("not json", &key));
    }
}
