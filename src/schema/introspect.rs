//! Reads both databases' catalogs and resolves each configured pair into a
//! `PairSchema`: which columns are replicated, under which names and types,
//! who owns them, and the key.
//!
//! A column is part of a pair when it exists on both sides (after renames from
//! `[pairs.columns]`). A column on one side only is ignored with a warning; a
//! column named in `[pairs.columns]` but missing on a side is a problem; the key
//! must be the same on both sides. Every problem names pair, table and column.

use crate::config::{Config, PairConfig, TableName};
use crate::schema::{my_kind, pg_kind, ColumnSchema, PairSchema};
use mysql_async::prelude::Queryable;

/// The primary key columns of the table with OID `$1`, in key order.
pub const PG_PRIMARY_KEY_SQL: &str = "SELECT a.attname::text FROM pg_index i
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indrelid = $1 AND i.indisprimary
     ORDER BY array_position(i.indkey::int2[], a.attnum)";

/// One catalog column.
#[derive(Debug, Clone)]
pub struct CatalogColumn {
    pub name: String,
    pub type_name: String,
    /// The server computes it (Postgres `GENERATED ALWAYS AS … STORED`,
    /// MySQL VIRTUAL/STORED generated).
    pub generated: bool,
    /// Postgres `GENERATED ALWAYS AS IDENTITY`.
    pub identity_always: bool,
    pub nullable: bool,
}

/// One table as a catalog describes it.
#[derive(Debug, Clone, Default)]
pub struct CatalogTable {
    pub columns: Vec<CatalogColumn>,
    pub primary_key: Vec<String>,
    /// Postgres only: `f` when REPLICA IDENTITY FULL.
    pub replica_identity: Option<char>,
}

/// Reads a Postgres table's columns and primary key; `None` when it does not exist.
pub async fn pg_table(client: &tokio_postgres::Client, t: &TableName) -> Result<Option<CatalogTable>, tokio_postgres::Error> {
    let rel = client
        .query_opt(
            "SELECT c.oid, c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')",
            &[&t.schema, &t.name],
        )
        .await?;
    let Some(rel) = rel else { return Ok(None) };
    let oid: u32 = rel.get(0);
    let ident: String = rel.get(1);
    let cols = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated::text <> '', NOT a.attnotnull, a.attidentity::text = 'a'
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let pk = client
        .query(
            PG_PRIMARY_KEY_SQL,
            &[&oid],
        )
        .await?;
    Ok(Some(CatalogTable {
        columns: cols
            .iter()
            .map(|r| CatalogColumn { name: r.get(0), type_name: r.get(1), generated: r.get(2), nullable: r.get(3), identity_always: r.get(4) })
            .collect(),
        primary_key: pk.iter().map(|r| r.get(0)).collect(),
        replica_identity: ident.chars().next(),
    }))
}

/// Reads a MySQL table's columns and primary key; `None` when it does not exist.
pub async fn my_table(conn: &mut mysql_async::Conn, t: &TableName) -> Result<Option<CatalogTable>, mysql_async::Error> {
    let cols: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, EXTRA, IS_NULLABLE FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&t.schema, &t.name),
        )
        .await?;
    if cols.is_empty() {
        return Ok(None);
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (&t.schema, &t.name),
        )
        .await?;
    Ok(Some(CatalogTable {
        columns: cols
            .into_iter()
            .map(|(name, ty, extra, nullable)| {
                let e = extra.to_ascii_uppercase();
                CatalogColumn { name, type_name: ty, generated: e.contains("VIRTUAL GENERATED") || e.contains("STORED GENERATED") || e == "VIRTUAL" || e == "PERSISTENT", identity_always: false, nullable: nullable == "YES" }
            })
            .collect(),
        primary_key: pk,
        replica_identity: None,
    }))
}

/// Resolves one pair from both catalogs. Problems are returned as messages
/// naming the pair, table and column.
pub fn resolve_pair(index: usize, pair: &PairConfig, pg: &CatalogTable, my: &CatalogTable) -> Result<PairSchema, Vec<String>> {
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    for pc in &pg.columns {
        let canonical = pair.canonical_from_postgres(&pc.name);
        let my_name = pair.columns.get(&canonical).and_then(|c| c.mysql.clone()).unwrap_or_else(|| canonical.clone());
        match my.columns.iter().find(|m| m.name == my_name) {
            Some(mc) => columns.push(ColumnSchema {
                owner: pair.owner_of(&canonical),
                name: canonical,
                pg_name: pc.name.clone(),
                my_name: mc.name.clone(),
                pg_kind: pg_kind(&pc.type_name),
                my_kind: my_kind(&mc.type_name),
                pg_type: pc.type_name.clone(),
                my_type: mc.type_name.clone(),
                pg_generated: pc.generated,
                pg_identity_always: pc.identity_always,
                my_generated: mc.generated,
            }),
            None if pair.columns.contains_key(&canonical) => problems.push(format!(
                "pair {}: column {canonical} is configured but {}.{my_name} does not exist in MySQL",
                pair.name, pair.mysql
            )),
            None => tracing::warn!(pair = %pair.name, column = %pc.name, "column exists only in postgres table {}; not replicated", pair.postgres),
        }
    }
    for (canonical, cc) in &pair.columns {
        let pg_name = cc.postgres.clone().unwrap_or_else(|| canonical.clone());
        if !pg.columns.iter().any(|c| c.name == pg_name) {
            problems.push(format!("pair {}: column {canonical} is configured but {}.{pg_name} does not exist in Postgres", pair.name, pair.postgres));
        }
    }
    for mc in &my.columns {
        if !columns.iter().any(|c| c.my_name == mc.name) && !pair.columns.values().any(|c| c.mysql.as_deref() == Some(&mc.name)) {
            tracing::warn!(pair = %pair.name, column = %mc.name, "column exists only in mysql table {}; not replicated", pair.mysql);
        }
    }
    let pg_key: Vec<String> = pg.primary_key.iter().map(|k| pair.canonical_from_postgres(k)).collect();
    let my_key: Vec<String> = my.primary_key.iter().map(|k| pair.canonical_from_mysql(k)).collect();
    let key_names = match &pair.key {
        Some(k) => k.clone(),
        None => {
            if pg_key.is_empty() {
                problems.push(format!("pair {}: table {} has no primary key (set `key` or add one)", pair.name, pair.postgres));
            }
            if my_key.is_empty() {
                problems.push(format!("pair {}: table {} has no primary key (set `key` or add one)", pair.name, pair.mysql));
            }
            if !pg_key.is_empty() && !my_key.is_empty() && pg_key != my_key {
                problems.push(format!(
                    "pair {}: primary keys differ: postgres ({}) vs mysql ({})",
                    pair.name,
                    pg_key.join(", "),
                    my_key.join(", ")
                ));
            }
            pg_key
        }
    };
    let mut key = Vec::new();
    for k in &key_names {
        match columns.iter().position(|c| &c.name == k) {
            Some(i) => key.push(i),
            None => problems.push(format!("pair {}: key column {k} is not a column on both sides", pair.name)),
        }
    }
    if let Some(ts) = &pair.timestamp_column {
        if !columns.iter().any(|c| &c.name == ts) {
            problems.push(format!("pair {}: timestamp_column {ts} is not a column on both sides", pair.name));
        }
    }
    if problems.is_empty() {
        Ok(PairSchema { pair: index, name: pair.name.clone(), pg_table: pair.postgres.clone(), my_table: pair.mysql.clone(), columns, key })
    } else {
        Err(problems)
    }
}

/// Resolves every pair of the config against both live databases.
pub async fn resolve_all(cfg: &Config, pg: &tokio_postgres::Client, my: &mut mysql_async::Conn) -> crate::Result<Vec<PairSchema>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, pair) in cfg.pairs.iter().enumerate() {
        let pgt = pg_table(pg, &pair.postgres).await?;
        let myt = my_table(my, &pair.mysql).await?;
        match (pgt, myt) {
            (None, _) => problems.push(format!("pair {}: table {} does not exist in Postgres", pair.name, pair.postgres)),
            (_, None) => problems.push(format!("pair {}: table {} does not exist in MySQL", pair.name, pair.mysql)),
            (Some(a), Some(b)) => match resolve_pair(i, pair, &a, &b) {
                Ok(s) => out.push(s),
                Err(p) => problems.extend(p),
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(crate::Error::Schema { pair: "(all)".into(), message: problems.join("; ") })
    }
}
