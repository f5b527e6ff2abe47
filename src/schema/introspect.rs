//! Reads both databases' catalogs and resolves each configured pair into a
//! `PairSchema`: which columns are replicated, under which names and types,
//! who owns them, and the key.
//!
//! A column is part of a pair when it exists on both sides (after renames from
//! `[pairs.columns]`). A column on one side only is ignored with a warning; a
//! column named in `[pairs.columns]` but missing on a side is a problem; the key
//! must be the same on both sides. Every problem names pair, table and column.
//! A Postgres column of a domain type is read as the domain's base type
//! (`pg_domain`): values travel as the base type's, and Postgres applies the
//! domain's checks when tandem writes them.

use crate::config::{Config, PairConfig, TableName};
use crate::schema::{pair_kinds, ColumnSchema, PairSchema};
use mysql_async::prelude::Queryable;

/// The primary key columns of the table with OID `$1`, in key order.
pub const PG_PRIMARY_KEY_SQL: &str = "SELECT a.attname::text FROM pg_index i
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indrelid = $1 AND i.indisprimary
     ORDER BY array_position(i.indkey::int2[], a.attnum)";

/// A Postgres domain resolved to the base type it is built on (through
/// domains over domains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgDomain {
    /// The domain as `format_type` names it.
    pub name: String,
    /// The base type with the modifier the domain gives it, e.g. `character varying(20)`.
    pub base_type: String,
    pub base_oid: u32,
    /// `pg_type.typtype` of the base type (`b`, `e` for an enum, ...).
    pub base_typtype: char,
    /// The CHECK constraints of the domain and of the domains it is built on.
    pub checks: Vec<String>,
    /// The domain (or one below it) is NOT NULL.
    pub not_null: bool,
}

/// Resolves type `oid` when it is a domain; `None` for any other type.
pub async fn pg_domain(client: &tokio_postgres::Client, oid: u32) -> Result<Option<PgDomain>, tokio_postgres::Error> {
    let mut current = oid;
    let mut found: Option<PgDomain> = None;
    for _ in 0..32 {
        let row = client
            .query_opt(
                "SELECT t.typtype::text, t.typbasetype, format_type(t.typbasetype, t.typtypmod), format_type(t.oid, NULL), t.typnotnull,
                        b.typtype::text,
                        ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname)
                 FROM pg_type t LEFT JOIN pg_type b ON b.oid = t.typbasetype WHERE t.oid = $1",
                &[&current],
            )
            .await?;
        let Some(row) = row else { break };
        let typtype: String = row.get(0);
        if typtype != "d" {
            break;
        }
        let base: u32 = row.get(1);
        let base_typtype: Option<String> = row.get(5);
        let checks: Vec<String> = row.get(6);
        let d = found.get_or_insert_with(|| PgDomain {
            name: row.get(3),
            base_type: String::new(),
            base_oid: 0,
            base_typtype: 'b',
            checks: Vec::new(),
            not_null: false,
        });
        d.base_type = row.get(2);
        d.base_oid = base;
        d.base_typtype = base_typtype.and_then(|t| t.chars().next()).unwrap_or('b');
        d.checks.extend(checks);
        d.not_null |= row.get::<_, bool>(4);
        current = base;
    }
    Ok(found)
}

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
    /// MySQL `ON UPDATE CURRENT_TIMESTAMP`.
    pub on_update: bool,
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
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated::text <> '', NOT a.attnotnull, a.attidentity::text = 'a',
                    a.atttypid, t.typtype::text = 'd'
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let pk = client
        .query(
            PG_PRIMARY_KEY_SQL,
            &[&oid],
        )
        .await?;
    let mut columns = Vec::with_capacity(cols.len());
    for r in &cols {
        let mut type_name: String = r.get(1);
        if r.get::<_, bool>(6) {
            if let Some(d) = pg_domain(client, r.get(5)).await? {
                type_name = d.base_type;
            }
        }
        columns.push(CatalogColumn { name: r.get(0), type_name, generated: r.get(2), nullable: r.get(3), identity_always: r.get(4), on_update: false });
    }
    Ok(Some(CatalogTable {
        columns,
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
                CatalogColumn { name, type_name: ty, generated: e.contains("VIRTUAL GENERATED") || e.contains("STORED GENERATED") || e == "VIRTUAL" || e == "PERSISTENT", identity_always: false, nullable: nullable == "YES", on_update: e.contains("ON UPDATE") }
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
                pg_kind: pair_kinds(&pc.type_name, &mc.type_name).0,
                my_kind: pair_kinds(&pc.type_name, &mc.type_name).1,
                owner: pair.owner_of(&canonical),
                name: canonical,
                pg_name: pc.name.clone(),
                my_name: mc.name.clone(),
                pg_type: pc.type_name.clone(),
                my_type: mc.type_name.clone(),
                pg_generated: pc.generated,
                pg_identity_always: pc.identity_always,
                my_generated: mc.generated,
                my_on_update: mc.on_update,
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
