//! Loading a chunk of canonical-text rows into a staging table, fast: COPY
//! on Postgres, multi-row text INSERTs of at most `MAX_STATEMENT` bytes on
//! MySQL. Either way the server's own text input of each column's type does
//! the conversion, exactly as a cast from text would (`tables::canonical::
//! value_param`): Postgres COPY calls the type's input function, MySQL
//! converts a string literal stored into a typed column; bytes travel as
//! hex (`\x…` for bytea, `X'…'` for MySQL), a set of labels (MySQL SET,
//! canonically `a,b`) as a Postgres array literal. Values MySQL would
//! store altered instead of refusing them (`apply::fit`: a YEAR of 1–99, a
//! SET out of its declared order, excess trailing spaces) are refused
//! before staging (`my_fit_check`), naming the row and column: the pair's
//! backfill fails rather than copy them changed.

use crate::tables::sides::{MySide, PgSide, TextRow};
use crate::schema::ValueKind;
use crate::{Error, Result};
use futures_util::SinkExt;
use mysql_async::prelude::Queryable;

/// Bytes of SQL per MySQL INSERT (well under the default max_allowed_packet).
const MAX_STATEMENT: usize = 4 << 20;

/// Where the rows go: staging `table` (quoted), its column `idents` (quoted,
/// then the chunk column last), the kinds of those columns and, per column,
/// its index in the rows.
pub struct Target<'a> {
    pub table: &'a str,
    pub idents: &'a [String],
    pub kinds: &'a [ValueKind],
    pub cols: &'a [usize],
}

/// A destination session that can load staged rows.
#[allow(async_fn_in_trait)]
pub trait Load {
    async fn load(&mut self, t: &Target<'_>, rows: &[TextRow], chunk: u64) -> Result<()>;
}

/// One COPY text-format field.
fn copy_field(out: &mut String, v: Option<&str>, kind: ValueKind) {
    let Some(v) = v else {
        out.push_str("\\N");
        return;
    };
    if kind == ValueKind::Bytes {
        out.push_str("\\\\x");
    }
    if kind == ValueKind::Set {
        return crate::apply::postgres_sql::copy_escape(out, &crate::codec::pg_array::array_from_set(v));
    }
    crate::apply::postgres_sql::copy_escape(out, v);
}

/// Refuses rows with a value MySQL would store altered (see the module doc).
pub fn my_fit_check(schema: &crate::schema::PairSchema, cols: &[usize], rows: &[TextRow]) -> Result<()> {
    use crate::model::Value;
    for row in rows {
        for &i in cols {
            let c = &schema.columns[i];
            let Some(text) = row[i].as_deref() else { continue };
            let value = match text.parse::<i64>() {
                Ok(n) if c.my_kind == ValueKind::Int => Value::Int(n),
                _ => Value::Text(text.to_string()),
            };
            if let Err(why) = crate::apply::fit::my_fits(&value, c.my_kind, &c.my_type) {
                let key: Vec<&str> = schema.key.iter().map(|&k| row[k].as_deref().unwrap_or("NULL")).collect();
                return Err(Error::Value {
                    pair: schema.name.clone(),
                    column: c.name.clone(),
                    message: format!("row with key {key:?}: {why} (value {text}); change the value at the source or widen the MySQL column, then run the backfill again"),
                });
            }
        }
    }
    Ok(())
}

/// The COPY text-format data of `rows`.
pub fn copy_data(t: &Target<'_>, rows: &[TextRow], chunk: u64) -> String {
    let mut out = String::with_capacity(rows.len() * 64);
    for row in rows {
        for (n, &i) in t.cols.iter().enumerate() {
            copy_field(&mut out, row[i].as_deref(), t.kinds[n]);
            out.push('\t');
        }
        out.push_str(&chunk.to_string());
        out.push('\n');
    }
    out
}

/// MySQL INSERT statements for `rows`, each at most about `MAX_STATEMENT` bytes.
pub fn my_inserts(t: &Target<'_>, rows: &[TextRow], chunk: u64) -> Vec<String> {
    let head = format!("INSERT INTO {} ({}) VALUES ", t.table, t.idents.join(", "));
    let mut out = Vec::new();
    let mut sql = head.clone();
    for row in rows {
        if sql.len() > head.len() {
            sql.push(',');
        }
        sql.push('(');
        for (n, &i) in t.cols.iter().enumerate() {
            match (row[i].as_deref(), t.kinds[n]) {
                (None, _) => sql.push_str("NULL"),
                (Some(v), ValueKind::Bytes) => {
                    sql.push_str("X'");
                    sql.push_str(v);
                    sql.push('\'');
                }
                (Some(v), _) => crate::sql::my::push_literal(&mut sql, v),
            }
            sql.push(',');
        }
        sql.push_str(&chunk.to_string());
        sql.push(')');
        if sql.len() >= MAX_STATEMENT {
            out.push(std::mem::replace(&mut sql, head.clone()));
        }
    }
    if sql.len() > head.len() {
        out.push(sql);
    }
    out
}

impl Load for PgSide {
    async fn load(&mut self, t: &Target<'_>, rows: &[TextRow], chunk: u64) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let data = copy_data(t, rows, chunk);
        let sink = self.client.copy_in::<_, bytes::Bytes>(&format!("COPY {} ({}) FROM STDIN", t.table, t.idents.join(", "))).await?;
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(data)).await?;
        sink.finish().await?;
        Ok(())
    }
}

impl Load for MySide {
    async fn load(&mut self, t: &Target<'_>, rows: &[TextRow], chunk: u64) -> Result<()> {
        for sql in my_inserts(t, rows, chunk) {
            self.conn.query_drop(sql).await.map_err(Error::from)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(idents: &'a [String], kinds: &'a [ValueKind], cols: &'a [usize]) -> Target<'a> {
        Target { table: "s.t", idents, kinds, cols }
    }

    #[test]
    fn copy_escapes_text_and_marks_nulls_and_bytes() {
        let idents = vec!["a".to_string(), "b".into(), "c".into(), "tandem_bf_chunk".into()];
        let kinds = [ValueKind::Text, ValueKind::Bytes, ValueKind::Int];
        let t = target(&idents, &kinds, &[0, 1, 2]);
        let rows = vec![vec![Some("tab\there\\ line\nend".to_string()), Some("00ff".into()), None]];
        assert_eq!(copy_data(&t, &rows, 7), "tab\\there\\\\ line\\nend\t\\\\x00ff\t\\N\t7\n");
    }

    #[test]
    fn sets_are_staged_in_postgres_as_array_literals_and_refused_in_mysql_out_of_order() {
        let idents = vec!["f".to_string(), "tandem_bf_chunk".into()];
        let kinds = [ValueKind::Set];
        let t = target(&idents, &kinds, &[0]);
        let rows = vec![vec![Some("Trailers,Deleted Scenes".to_string())], vec![Some(String::new())]];
        assert_eq!(copy_data(&t, &rows, 2), "{\"Trailers\",\"Deleted Scenes\"}\t2\n{}\t2\n");
        use crate::config::Owner;
        use crate::schema::{ColumnSchema, PairSchema};
        let table = crate::config::TableName { schema: "s".into(), name: "film".into() };
        let schema = PairSchema {
            pair: 0,
            name: "film".into(),
            pg_table: table.clone(),
            my_table: table,
            columns: vec![
                ColumnSchema::for_tests("id", Owner::Both, "integer", "int(11)"),
                ColumnSchema::for_tests("f", Owner::Both, "text[]", "set('Trailers','Deleted Scenes')"),
                ColumnSchema::for_tests("y", Owner::Both, "integer", "year(4)"),
            ],
            key: vec![0],
        };
        let row = |f: &str, y: &str| vec![Some("7".to_string()), Some(f.to_string()), Some(y.to_string())];
        assert!(my_fit_check(&schema, &[0, 1, 2], &[row("Trailers,Deleted Scenes", "2006")]).is_ok());
        let e = my_fit_check(&schema, &[0, 1, 2], &[row("Deleted Scenes,Trailers", "2006")]).unwrap_err().to_string();
        assert!(e.contains("film") && e.contains("[\"7\"]") && e.contains("declared order"), "{e}");
        assert!(my_fit_check(&schema, &[0, 1, 2], &[row("", "5")]).unwrap_err().to_string().contains("YEAR"));
    }

    #[test]
    fn mysql_inserts_quote_literals_and_split_by_size() {
        let idents = vec!["a".to_string(), "b".into(), "tandem_bf_chunk".into()];
        let kinds = [ValueKind::Text, ValueKind::Bytes];
        let t = target(&idents, &kinds, &[0, 1]);
        let rows = vec![vec![Some("it's".to_string()), Some("00ff".into())], vec![None, None]];
        assert_eq!(my_inserts(&t, &rows, 3), vec!["INSERT INTO s.t (a, b, tandem_bf_chunk) VALUES ('it''s',X'00ff',3),(NULL,NULL,3)".to_string()]);
        let big: Vec<TextRow> = (0..3000).map(|_| vec![Some("x".repeat(4000)), None]).collect();
        let parts = my_inserts(&t, &big, 1);
        assert!(parts.len() >= 3 && parts.iter().all(|p| p.len() < MAX_STATEMENT + 5000), "{}", parts.len());
    }
}
