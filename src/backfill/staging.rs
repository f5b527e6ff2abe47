//! Staging tables of a backfill and the SQL that merges a staged chunk into
//! its destination table.
//!
//! A pair's staging table lives in the destination's state schema, has the
//! destination table's mapped columns with their types (created from it by
//! `CREATE TABLE … AS SELECT`, so values convert exactly as they would into
//! the table itself), the pair's key as primary key, and `tandem_bf_chunk`,
//! the chunk a row belongs to (0 while the pipeline restages a row, see
//! `window`). It holds at most two chunks at a time, so `tandem_bf_chunk`
//! has no index: scanning two chunks costs less than maintaining one for
//! every staged row. On Postgres it is UNLOGGED: staging is scratch space, lost rows
//! only mean a chunk is copied again.
//!
//! The merge inserts missing rows whole and, for rows the destination already
//! holds, sets only the columns the source side owns alone; generated columns
//! are never written.

use crate::config::{Owner, Side};
use crate::sql::my::ident as my_ident;
use crate::sql::pg::ident as pg_ident;
use crate::schema::PairSchema;

/// The chunk column of every staging table.
pub const CHUNK_COL: &str = "tandem_bf_chunk";

/// Name of the staging table of `pair` in `pipeline` (≤ 63 bytes, identifier-safe).
pub fn staging_name(pipeline: &str, pair: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pipeline.bytes().chain([0]).chain(pair.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = pair.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect::<String>().to_ascii_lowercase();
    format!("backfill_{readable}_{:08x}", h as u32)
}

/// The pair's schema with both tables replaced by the staging table, for
/// rendering row operations on it.
pub fn staged_schema(schema: &PairSchema, state_schema: &str, staging: &str) -> PairSchema {
    let mut s = schema.clone();
    s.pg_table.schema = state_schema.to_string();
    s.pg_table.name = staging.to_string();
    s.my_table.schema = state_schema.to_string();
    s.my_table.name = staging.to_string();
    s
}

/// Non-key columns the `source` side owns alone: what a chunk may overwrite
/// in a row the destination already holds.
pub fn source_owned(schema: &PairSchema, source: Side) -> Vec<usize> {
    let owner = match source {
        Side::Postgres => Owner::Postgres,
        Side::Mysql => Owner::Mysql,
    };
    (0..schema.columns.len()).filter(|i| !schema.key.contains(i) && schema.columns[*i].owner == owner).collect()
}

fn pg_staging(state_schema: &str, staging: &str) -> String {
    format!("{}.{}", pg_ident(state_schema), pg_ident(staging))
}

fn my_staging(state_schema: &str, staging: &str) -> String {
    format!("{}.{}", my_ident(state_schema), my_ident(staging))
}

/// Statements that (re)create the Postgres staging table of a pair.
pub fn pg_create_sql(schema: &PairSchema, state_schema: &str, staging: &str) -> Vec<String> {
    let t = pg_staging(state_schema, staging);
    let cols: Vec<String> = schema.columns.iter().map(|c| pg_ident(&c.pg_name)).collect();
    let key: Vec<String> = schema.key.iter().map(|&i| pg_ident(&schema.columns[i].pg_name)).collect();
    let dest = format!("{}.{}", pg_ident(&schema.pg_table.schema), pg_ident(&schema.pg_table.name));
    vec![
        format!("DROP TABLE IF EXISTS {t}"),
        format!("CREATE UNLOGGED TABLE {t} AS SELECT {} FROM {dest} WITH NO DATA", cols.join(", ")),
        format!("ALTER TABLE {t} ADD COLUMN {CHUNK_COL} bigint NOT NULL DEFAULT 0, ADD PRIMARY KEY ({})", key.join(", ")),
    ]
}

/// Statements that (re)create the MySQL staging table of a pair.
pub fn my_create_sql(schema: &PairSchema, state_schema: &str, staging: &str) -> Vec<String> {
    let t = my_staging(state_schema, staging);
    let cols: Vec<String> = schema.columns.iter().map(|c| my_ident(&c.my_name)).collect();
    let key: Vec<String> = schema.key.iter().map(|&i| my_ident(&schema.columns[i].my_name)).collect();
    let dest = format!("{}.{}", my_ident(&schema.my_table.schema), my_ident(&schema.my_table.name));
    vec![
        format!("DROP TABLE IF EXISTS {t}"),
        format!(
            "CREATE TABLE {t} ({CHUNK_COL} BIGINT NOT NULL DEFAULT 0, PRIMARY KEY ({})) ENGINE=InnoDB \
             SELECT {} FROM {dest} WHERE 1 = 0",
            key.join(", "),
            cols.join(", ")
        ),
    ]
}

/// Drops the staging table (the backfill is done).
pub fn drop_sql(dest: Side, state_schema: &str, staging: &str) -> String {
    match dest {
        Side::Postgres => format!("DROP TABLE IF EXISTS {}", pg_staging(state_schema, staging)),
        Side::Mysql => format!("DROP TABLE IF EXISTS {}", my_staging(state_schema, staging)),
    }
}

/// Postgres statements, in order, with `$1` = the chunk: relabel restaged
/// rows, merge the chunk into the table, empty it from staging.
pub fn pg_merge_sql(schema: &PairSchema, state_schema: &str, staging: &str) -> [String; 3] {
    let t = pg_staging(state_schema, staging);
    let writable: Vec<usize> = (0..schema.columns.len()).filter(|&i| !schema.columns[i].pg_generated).collect();
    let cols: Vec<String> = writable.iter().map(|&i| pg_ident(&schema.columns[i].pg_name)).collect();
    let key: Vec<String> = schema.key.iter().map(|&i| pg_ident(&schema.columns[i].pg_name)).collect();
    let sets: Vec<String> = source_owned(schema, Side::Mysql)
        .into_iter()
        .filter(|&i| !schema.columns[i].pg_generated && !schema.columns[i].pg_identity_always)
        .map(|i| {
            let n = pg_ident(&schema.columns[i].pg_name);
            format!("{n} = EXCLUDED.{n}")
        })
        .collect();
    let action = if sets.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", sets.join(", ")) };
    let overriding = if writable.iter().any(|&i| schema.columns[i].pg_identity_always) { " OVERRIDING SYSTEM VALUE" } else { "" };
    let dest = format!("{}.{}", pg_ident(&schema.pg_table.schema), pg_ident(&schema.pg_table.name));
    [
        format!("UPDATE {t} SET {CHUNK_COL} = $1 WHERE {CHUNK_COL} = 0"),
        format!(
            "INSERT INTO {dest} ({cols}){overriding} SELECT {cols} FROM {t} WHERE {CHUNK_COL} = $1 ON CONFLICT ({}) DO {action}",
            key.join(", "),
            cols = cols.join(", ")
        ),
        format!("DELETE FROM {t} WHERE {CHUNK_COL} = $1"),
    ]
}

/// MySQL statements (each ending in `;\n`) that relabel restaged rows,
/// merge chunk `chunk` into the table and empty it from staging.
pub fn my_merge_sql(schema: &PairSchema, state_schema: &str, staging: &str, chunk: u64) -> String {
    let t = my_staging(state_schema, staging);
    let cols: Vec<String> =
        (0..schema.columns.len()).filter(|&i| !schema.columns[i].my_generated).map(|i| my_ident(&schema.columns[i].my_name)).collect();
    let dest = format!("{}.{}", my_ident(&schema.my_table.schema), my_ident(&schema.my_table.name));
    // Qualified: both tables of INSERT … SELECT have these columns.
    let sets: Vec<String> = source_owned(schema, Side::Postgres)
        .into_iter()
        .filter(|&i| !schema.columns[i].my_generated)
        .map(|i| {
            let n = my_ident(&schema.columns[i].my_name);
            format!("{dest}.{n} = VALUES({n})")
        })
        .collect();
    // A no-op assignment: keep the row the destination holds.
    let first_key = format!("{dest}.{}", my_ident(&schema.columns[schema.key[0]].my_name));
    let action = if sets.is_empty() { format!("{first_key} = {first_key}") } else { sets.join(", ") };
    let cols = cols.join(", ");
    // Emptied in the same transaction: a staged copy of a key must never
    // outlive its merge (the next chunk may stage that key again).
    format!(
        "UPDATE {t} SET {CHUNK_COL} = {chunk} WHERE {CHUNK_COL} = 0;\n\
         INSERT INTO {dest} ({cols}) SELECT {cols} FROM {t} WHERE {CHUNK_COL} = {chunk} ON DUPLICATE KEY UPDATE {action};\n\
         DELETE FROM {t} WHERE {CHUNK_COL} = {chunk};\n"
    )
}

/// Deletes every row of `chunk` from staging (a truncate in the window, or an abandoned chunk).
pub fn clear_chunk_sql(dest: Side, state_schema: &str, staging: &str, chunk: u64) -> String {
    match dest {
        Side::Postgres => format!("DELETE FROM {} WHERE {CHUNK_COL} = {chunk}", pg_staging(state_schema, staging)),
        Side::Mysql => format!("DELETE FROM {} WHERE {CHUNK_COL} = {chunk}", my_staging(state_schema, staging)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableName;
    use crate::schema::ColumnSchema;

    fn col(name: &str, owner: Owner) -> ColumnSchema {
        ColumnSchema::for_tests(name, owner, "text", "text")
    }

    fn schema() -> PairSchema {
        PairSchema {
            pair: 0,
            name: "t".into(),
            pg_table: TableName { schema: "public".into(), name: "t".into() },
            my_table: TableName { schema: "shop".into(), name: "t".into() },
            columns: vec![col("id", Owner::Both), col("pg_only", Owner::Postgres), col("my_only", Owner::Mysql), col("shared", Owner::Both)],
            key: vec![0],
        }
    }

    #[test]
    fn names_are_short_safe_and_distinct_per_pipeline() {
        let a = staging_name("crm", "customers; drop");
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{a}");
        assert_ne!(a, staging_name("billing", "customers; drop"));
        assert_eq!(a, staging_name("crm", "customers; drop"));
    }

    #[test]
    fn existing_rows_get_only_the_columns_the_source_owns_alone() {
        let s = schema();
        let my = my_merge_sql(&s, "tandem", "st", 7);
        assert!(my.contains("ON DUPLICATE KEY UPDATE `shop`.`t`.`pg_only` = VALUES(`pg_only`);"), "{my}");
        assert!(my.contains("WHERE tandem_bf_chunk = 7"), "{my}");
        let pg = pg_merge_sql(&s, "tandem", "st");
        assert!(pg[1].ends_with("ON CONFLICT (\"id\") DO UPDATE SET \"my_only\" = EXCLUDED.\"my_only\""), "{}", pg[1]);
        let mut both = s.clone();
        for c in &mut both.columns {
            c.owner = Owner::Both;
        }
        assert!(pg_merge_sql(&both, "tandem", "st")[1].ends_with("DO NOTHING"));
        assert!(my_merge_sql(&both, "tandem", "st", 1).contains("UPDATE `shop`.`t`.`id` = `shop`.`t`.`id`;"));
    }

    #[test]
    fn generated_columns_are_never_written() {
        let mut s = schema();
        s.columns[1].my_generated = true;
        s.columns[2].pg_generated = true;
        assert!(!my_merge_sql(&s, "tandem", "st", 1).contains("`pg_only`"));
        assert!(!pg_merge_sql(&s, "tandem", "st")[1].contains("my_only"));
    }
}
