//! The sessions that read paired tables on both databases (`check`,
//! `backfill`). Every statement returns text columns only, and each session
//! counts the bytes of the values it received (`bytes`), which is what the
//! check's report calls `bytes_read`.
//!
//! Sessions are ordinary ones from `crate::db` (Postgres: UTC, shortest float
//! output; MySQL: UTC, NO_BACKSLASH_ESCAPES), so the canonical text SQL of
//! `canonical` renders the same on both. A session runs whatever statement its
//! caller passes: the check only reads through them, while backfill also
//! writes its watermarks, progress rows and staged chunks with them.

use super::canonical::Dialect;
use crate::config::Config;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use tokio_postgres::types::ToSql;

/// One result row, every column as text (NULL as `None`).
pub type TextRow = Vec<Option<String>>;

/// A session that runs text-only statements with text parameters.
#[allow(async_fn_in_trait)]
pub trait TextQuery {
    fn dialect(&self) -> Dialect;
    async fn rows(&mut self, sql: &str, params: Vec<String>) -> Result<Vec<TextRow>>;
    /// Bytes of values received so far.
    fn bytes(&self) -> u64;
}

fn count(rows: &[TextRow]) -> u64 {
    rows.iter().flatten().map(|v| v.as_ref().map_or(1, |s| s.len() as u64)).sum()
}

/// The Postgres read session.
pub struct PgSide {
    pub client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
    bytes: u64,
}

impl PgSide {
    pub async fn connect(cfg: &Config) -> Result<PgSide> {
        let client = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        // The canonical float text needs the shortest round-trip output.
        client.batch_execute("SET extra_float_digits = 3; SET TimeZone = 'UTC'").await?;
        Ok(PgSide { client, statements: HashMap::new(), bytes: 0 })
    }
}

impl TextQuery for PgSide {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn rows(&mut self, sql: &str, params: Vec<String>) -> Result<Vec<TextRow>> {
        let st = match self.statements.get(sql) {
            Some(st) => st.clone(),
            None => {
                if self.statements.len() >= 64 {
                    self.statements.clear();
                }
                let st = self.client.prepare(sql).await?;
                self.statements.insert(sql.to_string(), st.clone());
                st
            }
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&st, &refs).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut r = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                r.push(row.try_get::<_, Option<String>>(i)?);
            }
            out.push(r);
        }
        self.bytes += count(&out);
        Ok(out)
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The MySQL/MariaDB read session.
pub struct MySide {
    pub conn: mysql_async::Conn,
    dialect: Dialect,
    bytes: u64,
}

impl MySide {
    pub async fn connect(cfg: &Config) -> Result<MySide> {
        let mut conn = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
        let dialect = if version.unwrap_or_default().to_ascii_lowercase().contains("mariadb") { Dialect::Mariadb } else { Dialect::Mysql };
        Ok(MySide { conn, dialect, bytes: 0 })
    }
}

fn my_text(v: mysql_async::Value) -> Option<String> {
    use mysql_async::Value as V;
    match v {
        V::NULL => None,
        V::Bytes(b) => Some(String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        V::Int(i) => Some(i.to_string()),
        V::UInt(u) => Some(u.to_string()),
        V::Float(f) => Some(f.to_string()),
        V::Double(f) => Some(f.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

impl TextQuery for MySide {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn rows(&mut self, sql: &str, params: Vec<String>) -> Result<Vec<TextRow>> {
        let params = if params.is_empty() {
            mysql_async::Params::Empty
        } else {
            mysql_async::Params::Positional(params.into_iter().map(|p| mysql_async::Value::Bytes(p.into_bytes())).collect())
        };
        let rows: Vec<mysql_async::Row> = self.conn.exec(sql, params).await.map_err(Error::from)?;
        let out: Vec<TextRow> = rows.into_iter().map(|r| r.unwrap_raw().into_iter().map(|v| v.and_then(my_text)).collect()).collect();
        self.bytes += count(&out);
        Ok(out)
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }
}
