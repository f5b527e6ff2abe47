//! Pair checks of `tandem validate`: both tables exist (and are tables),
//! REPLICA IDENTITY FULL and the role's privileges on the Postgres table, a
//! transactional engine and the account's privileges on the MySQL table,
//! matching primary keys (or a configured `key` present on both sides),
//! every `[pairs.columns]` column present on both sides, `timestamp_column`
//! present, and every column pair's types judged in the directions its
//! values flow (`types::judge`: fine, a warning, or a problem); a Postgres
//! domain is judged as its base type, with its checks noted.
//!
//! Columns the server computes (MySQL VIRTUAL/STORED generated, Postgres
//! GENERATED ALWAYS … STORED) are INFO lines: tandem does not write them on
//! that side. Their types are still checked when the other side writes them,
//! since values flow from the computing side. A Postgres identity ALWAYS
//! column (key or not) is an INFO line too: inserts from MySQL keep their
//! value (OVERRIDING SYSTEM VALUE), updates from MySQL never change it.
//! Column matching follows `schema::introspect::resolve_pair` (canonical names,
//! renames from `[pairs.columns]`).

use super::mysql::{bq, text, MyFacts};
use super::postgres::PgFacts;
use super::types::{judge, notes, Flows, MyType, PgType, Verdict};
use super::{my_err, pg_err, Report};
use crate::config::{Config, PairConfig, TableName};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tokio_postgres::Client;

type Res<T> = Result<T, String>;

#[derive(Debug, Clone)]
struct PgColumn {
    name: String,
    /// The column's type; for a domain, its base type (`domain` names it).
    ty: PgType,
    domain: Option<crate::schema::introspect::PgDomain>,
    /// What makes the server compute it, if it does.
    generated: Option<&'static str>,
    /// `GENERATED ALWAYS AS IDENTITY`.
    identity_always: bool,
}

#[derive(Debug, Clone)]
struct PgTable {
    relkind: String,
    replident: String,
    owned: bool,
    privileges: [(&'static str, bool); 4],
    columns: Vec<PgColumn>,
    primary_key: Vec<String>,
}

#[derive(Debug, Clone)]
struct MyColumn {
    name: String,
    ty: MyType,
    generated: bool,
}

#[derive(Debug, Clone)]
struct MyTable {
    table_type: String,
    engine: Option<String>,
    columns: Vec<MyColumn>,
    primary_key: Vec<String>,
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Res<T> {
    row.try_get(i).map_err(pg_err)
}

async fn read_pg(pg: &Client, t: &TableName) -> Res<Option<PgTable>> {
    let rel = pg
        .query_opt(
            "SELECT c.oid, c.relkind::text, c.relreplident::text, pg_has_role(c.relowner, 'USAGE'),
                    has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'),
                    has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&t.schema, &t.name],
        )
        .await
        .map_err(pg_err)?;
    let Some(rel) = rel else { return Ok(None) };
    let oid: u32 = get(&rel, 0)?;
    let cols = pg
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typtype::text, a.attgenerated::text, a.attidentity::text,
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = a.atttypid ORDER BY e.enumsortorder), a.atttypid
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(pg_err)?;
    let mut columns = Vec::new();
    for c in &cols {
        let typtype: String = get(c, 2)?;
        let attgenerated: String = get(c, 3)?;
        let attidentity: String = get(c, 4)?;
        let generated = (attgenerated == "s").then_some("GENERATED ALWAYS AS … STORED");
        let mut ty = PgType { name: get(c, 1)?, typtype: typtype.chars().next().unwrap_or('b'), labels: get(c, 5)? };
        let domain = if ty.typtype == 'd' { crate::schema::introspect::pg_domain(pg, get(c, 6)?).await.map_err(pg_err)? } else { None };
        if let Some(d) = &domain {
            let labels: Vec<String> = if d.base_typtype == 'e' {
                let rows = pg
                    .query("SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder", &[&d.base_oid])
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| r.get(0)).collect()
            } else {
                Vec::new()
            };
            ty = PgType { name: d.base_type.clone(), typtype: d.base_typtype, labels };
        }
        columns.push(PgColumn {
            name: get(c, 0)?,
            ty,
            domain,
            generated,
            identity_always: attidentity == "a",
        });
    }
    let pk = pg
        .query(
            crate::schema::introspect::PG_PRIMARY_KEY_SQL,
            &[&oid],
        )
        .await
        .map_err(pg_err)?;
    let mut primary_key = Vec::new();
    for row in &pk {
        primary_key.push(get(row, 0)?);
    }
    Ok(Some(PgTable {
        relkind: get(&rel, 1)?,
        replident: get(&rel, 2)?,
        owned: get(&rel, 3)?,
        privileges: [("SELECT", get(&rel, 4)?), ("INSERT", get(&rel, 5)?), ("UPDATE", get(&rel, 6)?), ("DELETE", get(&rel, 7)?)],
        columns,
        primary_key,
    }))
}

/// `true` when a CHECK clause is exactly `json_valid(`col`)` (MariaDB JSON).
fn is_json_check(clause: &str, column: &str) -> bool {
    let c: String = clause.chars().filter(|c| !c.is_whitespace() && *c != '`').collect();
    c.eq_ignore_ascii_case(&format!("json_valid({column})"))
}

async fn read_my(my: &mut Conn, t: &TableName, mariadb: bool) -> Res<Option<MyTable>> {
    let rel: Vec<Row> = my
        .exec("SELECT TABLE_TYPE, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
        .await
        .map_err(my_err)?;
    let Some(rel) = rel.first() else { return Ok(None) };
    let cols: Vec<Row> = my
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, EXTRA FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&t.schema, &t.name),
        )
        .await
        .map_err(my_err)?;
    let checks: Vec<String> = if mariadb {
        let rows: Vec<Row> = my
            .exec("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?", (&t.schema, &t.name))
            .await
            .map_err(my_err)?;
        rows.iter().filter_map(|r| text(r, 0)).collect()
    } else {
        Vec::new()
    };
    let pk: Vec<Row> = my
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (&t.schema, &t.name),
        )
        .await
        .map_err(my_err)?;
    let mut columns = Vec::with_capacity(cols.len());
    for row in &cols {
        let name = text(row, 0).unwrap_or_default();
        let extra = text(row, 3).unwrap_or_default().to_ascii_uppercase();
        let column_type = text(row, 1).unwrap_or_default();
        let labels = crate::source::mysql::columns::labels(my, &t.schema, &t.name, &name, &column_type, mariadb)
            .await
            .map_err(|e| e.to_string())?;
        columns.push(MyColumn {
            ty: MyType { charset: text(row, 2), json_check: checks.iter().any(|c| is_json_check(c, &name)), labels, column_type },
            generated: extra.contains("VIRTUAL GENERATED") || extra.contains("STORED GENERATED") || extra.contains("PERSISTENT"),
            name,
        });
    }
    Ok(Some(MyTable {
        table_type: text(rel, 0).unwrap_or_default(),
        engine: text(rel, 1),
        columns,
        primary_key: pk.iter().filter_map(|r| text(r, 0)).collect(),
    }))
}

pub(super) async fn check(cfg: &Config, pg: &Client, my: &mut Conn, pgf: &PgFacts, myf: &MyFacts, r: &mut Report) {
    for pair in &cfg.pairs {
        let object = format!("pair {}", pair.name);
        if let Some(source) = pair.direction.only_source() {
            r.info(
                &object,
                format!(
                    "replicates only {source}→{} (direction = \"{}\"): changes made in {} stay there and are never applied to {source}; \
                     set direction = \"both\" and restart to replicate both ways from then on (no new backfill; what was changed in {} \
                     before is not sent: `tandem check --pair {}` shows it)",
                    source.other(),
                    pair.direction.as_str(),
                    source.other(),
                    source.other(),
                    pair.name
                ),
            );
        }
        let pgt = match read_pg(pg, &pair.postgres).await {
            Ok(t) => t,
            Err(e) => {
                r.could_not(format!("postgres table {}", pair.postgres), e);
                continue;
            }
        };
        let myt = match read_my(my, &pair.mysql, myf.mariadb).await {
            Ok(t) => t,
            Err(e) => {
                r.could_not(format!("mysql table {}", pair.mysql), e);
                continue;
            }
        };
        match &pgt {
            None => r.problem(
                &object,
                format!("Postgres table {} does not exist: create it, or correct `postgres` of the pair", pair.postgres),
            ),
            Some(t) => {
                // A refused table's problem says what to do; `init` would not touch it.
                if !shape(pg, pair, r).await {
                    pg_table(pair, t, pgf, r);
                }
            }
        }
        match &myt {
            None => r.problem(
                &object,
                format!(
                    "MySQL table {} does not exist (or the account has no privilege on it): create it, or correct `mysql` of the pair",
                    pair.mysql
                ),
            ),
            Some(t) => my_table(pair, t, myf, r),
        }
        if let (Some(a), Some(b)) = (&pgt, &myt) {
            columns(pair, a, b, r);
        }
    }
}

/// Partitioned tables (replicated through their root), and tables tandem
/// cannot replicate as one table (`schema::partitions`): `true` when refused.
async fn shape(pg: &Client, pair: &PairConfig, r: &mut Report) -> bool {
    let object = format!("postgres table {}", pair.postgres);
    let shape = match crate::schema::partitions::pg_table_shape(pg, &pair.postgres).await {
        Ok(Some(s)) => s,
        Ok(None) => return false,
        Err(e) => {
            r.could_not(&object, pg_err(e));
            return false;
        }
    };
    if let Some(why) = shape.refusal(&pair.postgres) {
        r.problem(&object, why);
        return true;
    }
    if shape.partitioned() {
        r.info(&object, "is partitioned: replicated through its root (the publication has publish_via_partition_root)");
        if !shape.partitions_not_full.is_empty() {
            r.problem(
                &object,
                format!(
                    "partitions {} do not have REPLICA IDENTITY FULL (each partition's own setting decides its before-images): run `tandem init` (sets it) or ALTER TABLE … REPLICA IDENTITY FULL on each",
                    shape.partitions_not_full.join(", ")
                ),
            );
        }
    }
    false
}

fn pg_table(pair: &PairConfig, t: &PgTable, facts: &PgFacts, r: &mut Report) {
    let object = format!("postgres table {}", pair.postgres);
    let quoted = format!("{}.{}", crate::sql::pg::ident(&pair.postgres.schema), crate::sql::pg::ident(&pair.postgres.name));
    let what = match t.relkind.as_str() {
        "r" | "p" => None,
        "v" => Some("a view"),
        "m" => Some("a materialized view"),
        "f" => Some("a foreign table"),
        _ => Some("not a table"),
    };
    if let Some(what) = what {
        r.problem(&object, format!("is {what}; tandem replicates ordinary tables: point `postgres` of pair {} at a table", pair.name));
        return;
    }
    if t.replident != "f" {
        let now = match t.replident.as_str() {
            "d" => "DEFAULT",
            "n" => "NOTHING",
            "i" => "USING INDEX",
            _ => "not FULL",
        };
        let fix = if t.owned || facts.superuser {
            format!("run `tandem init` (sets it) or ALTER TABLE {quoted} REPLICA IDENTITY FULL")
        } else {
            format!("its owner must run ALTER TABLE {quoted} REPLICA IDENTITY FULL (role {} does not own it, so `tandem init` cannot)", facts.user)
        };
        r.problem(&object, format!("has REPLICA IDENTITY {now}; tandem needs FULL (whole before-images for conflict checks): {fix}"));
    }
    let lacking: Vec<&str> = t.privileges.iter().filter(|(_, ok)| !ok).map(|(p, _)| *p).collect();
    if !lacking.is_empty() {
        r.problem(
            &object,
            format!(
                "role {} lacks {}: GRANT SELECT, INSERT, UPDATE, DELETE ON {quoted} TO {}",
                facts.user,
                lacking.join(", "),
                crate::sql::pg::ident(&facts.user)
            ),
        );
    }
}

fn my_table(pair: &PairConfig, t: &MyTable, facts: &MyFacts, r: &mut Report) {
    let object = format!("mysql table {}", pair.mysql);
    let quoted = format!("{}.{}", bq(&pair.mysql.schema), bq(&pair.mysql.name));
    if !t.table_type.eq_ignore_ascii_case("BASE TABLE") {
        r.problem(&object, format!("is a {}; tandem replicates base tables: point `mysql` of pair {} at a table", t.table_type, pair.name));
        return;
    }
    if let Some(engine) = &t.engine {
        const NOT_TRANSACTIONAL: [&str; 7] = ["MYISAM", "MEMORY", "CSV", "ARCHIVE", "ARIA", "MRG_MYISAM", "BLACKHOLE"];
        if NOT_TRANSACTIONAL.contains(&engine.to_ascii_uppercase().as_str()) {
            r.problem(&object, format!("uses engine {engine}, which has no transactions (exactly-once apply needs them): ALTER TABLE {quoted} ENGINE = InnoDB"));
        }
    }
    let Some(g) = &facts.grants else { return };
    let lacking: Vec<&str> =
        ["SELECT", "INSERT", "UPDATE", "DELETE"].into_iter().filter(|p| !g.on_table(p, &pair.mysql.schema, &pair.mysql.name)).collect();
    if !lacking.is_empty() {
        let roles = if g.roles.is_empty() { "" } else { " (privileges of granted roles are not counted)" };
        r.problem(
            &object,
            format!(
                "the account {} lacks {}{roles}: GRANT SELECT, INSERT, UPDATE, DELETE ON {quoted} TO {}",
                facts.account,
                lacking.join(", "),
                facts.account
            ),
        );
    }
}

/// Columns, keys, timestamp column and type pairs of a pair whose tables both exist.
fn columns(pair: &PairConfig, pg: &PgTable, my: &MyTable, r: &mut Report) {
    let object = format!("pair {}", pair.name);
    let col_object = |c: &str| format!("pair {} column {c}", pair.name);
    // (canonical, pg column, my column)
    let mut matched: Vec<(String, &PgColumn, &MyColumn)> = Vec::new();
    let mut pg_only: Vec<&str> = Vec::new();
    for pc in &pg.columns {
        let canonical = pair.canonical_from_postgres(&pc.name);
        let my_name = pair.columns.get(&canonical).and_then(|c| c.mysql.clone()).unwrap_or_else(|| canonical.clone());
        match my.columns.iter().find(|m| m.name == my_name) {
            Some(mc) => matched.push((canonical, pc, mc)),
            None if pair.columns.contains_key(&canonical) => r.problem(
                col_object(&canonical),
                format!(
                    "is configured in [pairs.columns] but MySQL table {} has no column {my_name}: add it, or correct the mapping",
                    pair.mysql
                ),
            ),
            None => pg_only.push(pc.name.as_str()),
        }
    }
    if !pg_only.is_empty() {
        r.info(&object, format!("not replicated, only in Postgres table {}: {}", pair.postgres, pg_only.join(", ")));
    }
    for (canonical, cc) in &pair.columns {
        let pg_name = cc.postgres.clone().unwrap_or_else(|| canonical.clone());
        if pg.columns.iter().any(|c| c.name == pg_name) {
            continue;
        }
        let my_name = cc.mysql.clone().unwrap_or_else(|| canonical.clone());
        let on_my = my.columns.iter().any(|c| c.name == my_name);
        let problem = if on_my {
            format!("is configured in [pairs.columns] but Postgres table {} has no column {pg_name}: add it, or correct the mapping", pair.postgres)
        } else {
            format!(
                "is configured in [pairs.columns] but neither Postgres table {} nor MySQL table {} has it: add the columns, or remove the entry",
                pair.postgres, pair.mysql
            )
        };
        r.problem(col_object(canonical), problem);
    }
    let my_only: Vec<&str> = my
        .columns
        .iter()
        .filter(|mc| {
            !matched.iter().any(|(_, _, m)| m.name == mc.name)
                && !pair.columns.iter().any(|(k, c)| c.mysql.as_deref() == Some(&mc.name) || (c.mysql.is_none() && k == &mc.name))
        })
        .map(|mc| mc.name.as_str())
        .collect();
    if !my_only.is_empty() {
        r.info(&object, format!("not replicated, only in MySQL table {}: {}", pair.mysql, my_only.join(", ")));
    }

    // Keys.
    let pg_key: Vec<String> = pg.primary_key.iter().map(|k| pair.canonical_from_postgres(k)).collect();
    let my_key: Vec<String> = my.primary_key.iter().map(|k| pair.canonical_from_mysql(k)).collect();
    let key: Vec<String> = match &pair.key {
        Some(k) => k.clone(),
        None => {
            if pg_key.is_empty() {
                r.problem(&object, format!("Postgres table {} has no primary key: add one (the same as in MySQL), or set `key` for the pair", pair.postgres));
            }
            if my_key.is_empty() {
                r.problem(&object, format!("MySQL table {} has no primary key: add one (the same as in Postgres), or set `key` for the pair", pair.mysql));
            }
            if !pg_key.is_empty() && !my_key.is_empty() && pg_key != my_key {
                r.problem(
                    &object,
                    format!(
                        "primary keys differ: Postgres ({}) vs MySQL ({}): make them the same columns in the same order, or set `key` for the pair",
                        pg_key.join(", "),
                        my_key.join(", ")
                    ),
                );
            }
            if pg_key.is_empty() { my_key.clone() } else { pg_key.clone() }
        }
    };
    for k in &key {
        match matched.iter().find(|(c, _, _)| c == k) {
            None if pair.key.is_some() || (!pg_key.is_empty() && !my_key.is_empty() && pg_key == my_key) => {
                r.problem(&object, format!("key column {k} is not a column of both tables: add it on both sides, or correct `key`"))
            }
            None => {}
            Some((_, pc, mc)) => {
                if let Some(how) = pc.generated {
                    r.problem(col_object(k), format!("is a key column but Postgres computes it ({how}), so rows from MySQL cannot keep their key: make it an ordinary column"));
                }
                if mc.generated {
                    r.problem(col_object(k), "is a key column but MySQL computes it (generated column), so rows from Postgres cannot keep their key: make it an ordinary column");
                }
            }
        }
    }
    if let Some(ts) = &pair.timestamp_column {
        if !matched.iter().any(|(c, _, _)| c == ts) {
            r.problem(&object, format!("timestamp_column {ts} is not a column of both tables: add it on both sides, or correct `timestamp_column`"));
        }
    }

    // Generated columns and types.
    for (canonical, pc, mc) in &matched {
        if pc.generated.is_some() {
            r.info(col_object(canonical), "skipped: generated on postgres (the server computes it; tandem does not write it there)");
        }
        if pc.identity_always {
            r.info(col_object(canonical), "identity ALWAYS on postgres: rows inserted from mysql keep their value (OVERRIDING SYSTEM VALUE); updates from mysql do not change it");
        }
        if mc.generated {
            r.info(col_object(canonical), "skipped: generated on mysql (the server computes it; tandem does not write it there)");
        }
        if pc.generated.is_some() && mc.generated {
            continue;
        }
        if let Some(d) = &pc.domain {
            let checks = if d.checks.is_empty() { "no checks".to_string() } else { format!("checks {}", d.checks.join(", ")) };
            let not_null = if d.not_null { ", NOT NULL" } else { "" };
            r.info(
                col_object(canonical),
                format!("postgres domain {} is judged and replicated as its base type {} ({checks}{not_null}; Postgres applies them to values from mysql: a value they refuse is quarantined)", d.name, d.base_type),
            );
        }
        // A column one side computes only flows from that side.
        // So does a one-way pair's (`direction`).
        let flows = Flows {
            to_mysql: !mc.generated && pair.direction.flows(crate::config::Direction::PostgresToMysql),
            to_postgres: pc.generated.is_none() && pair.direction.flows(crate::config::Direction::MysqlToPostgres),
        };
        let types = format!("postgres {} ↔ mysql {}", pc.ty.name, mc.ty.column_type);
        match judge(&pc.ty, &mc.ty, flows) {
            Verdict::Ok => {}
            Verdict::Warn(why) => r.warning(col_object(canonical), format!("{types}: {why}")),
            Verdict::Problem(why) => r.problem(col_object(canonical), format!("{types}: {why}")),
        }
        for note in notes(&pc.ty, &mc.ty) {
            r.info(col_object(canonical), format!("{types}: {note}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_json_checks_are_recognised() {
        assert!(is_json_check("json_valid(`doc`)", "doc"));
        assert!(is_json_check("JSON_VALID( `doc` )", "doc"));
        assert!(!is_json_check("json_valid(`doc`) and 1", "doc"));
        assert!(!is_json_check("json_valid(`other`)", "doc"));
    }
}
