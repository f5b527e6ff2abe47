//! Does a value fit its destination column exactly? The checks the servers
//! themselves do not make, or make by altering the value instead of
//! refusing it (DESIGN §10: a value that does not fit is quarantined, never
//! altered):
//! - a MySQL `SET` holds each label once, in its declared order: a Postgres
//!   array that lists labels in another order or twice would be stored
//!   reordered or de-duplicated, so it is refused (an unknown label MySQL's
//!   strict mode refuses itself);
//! - a MySQL `YEAR` turns 1–99 into 1970–2069 and holds 0 and 1901–2155:
//!   any other integer is refused;
//! - a `VARCHAR(n)` (both servers) trims excess trailing spaces silently:
//!   text longer than `n` characters is refused.
//!
//! Invoked by the SQL renderers (`mysql_sql`, `postgres_sql`) before a
//! value is written; an `Err` names what does not fit and becomes an
//! `Error::Value`, which the driver quarantines. Pure.

use crate::model::Value;
use crate::schema::ValueKind;

/// The `n` of a `varchar(n)` / `character varying(n)` type, if it is one.
fn varchar_len(ty: &str, mysql: bool) -> Option<usize> {
    let t = ty.trim().to_ascii_lowercase();
    let rest = if mysql { t.strip_prefix("varchar(")? } else { t.strip_prefix("character varying(")? };
    rest.split(')').next()?.trim().parse().ok()
}

fn length(s: &str, n: usize, ty: &str) -> Result<(), String> {
    let chars = s.chars().count();
    if chars > n {
        return Err(format!("{chars} characters do not fit {ty}"));
    }
    Ok(())
}

/// Checks `v` against the MySQL column of type `my_type` (read as `kind`).
pub fn my_fits(v: &Value, kind: ValueKind, my_type: &str) -> Result<(), String> {
    let lower = my_type.trim_start().to_ascii_lowercase();
    match (kind, v) {
        (ValueKind::Set, Value::Text(s)) => set_order(s, my_type),
        (_, Value::Int(y)) if lower.starts_with("year") => {
            if *y == 0 || (1901..=2155).contains(y) {
                Ok(())
            } else {
                Err(format!("{y} is not a year MySQL YEAR holds (0 and 1901-2155; it would turn 1-99 into 1970-2069)"))
            }
        }
        (_, Value::Text(s)) => match varchar_len(&lower, true) {
            Some(n) => length(s, n, my_type),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Checks `v` against the Postgres column of type `pg_type`.
pub fn pg_fits(v: &Value, pg_type: &str) -> Result<(), String> {
    match (v, varchar_len(pg_type, false)) {
        (Value::Text(s), Some(n)) => length(s, n, pg_type),
        _ => Ok(()),
    }
}

/// A set's members must be distinct labels of `my_type` in declared order.
/// Labels MariaDB prints as `?` (4-byte characters) cannot be told apart
/// here: then only the server's own check applies.
fn set_order(set: &str, my_type: &str) -> Result<(), String> {
    if set.is_empty() {
        return Ok(());
    }
    let labels = crate::codec::my_text::parse_labels(my_type);
    if labels.iter().any(|l| l.contains('?')) {
        return Ok(());
    }
    let mut last: Option<usize> = None;
    for m in set.split(',') {
        let Some(i) = labels.iter().position(|l| l == m) else {
            return Err(format!("{m:?} is not a member of {my_type}"));
        };
        if last.is_some_and(|l| l >= i) {
            return Err(format!(
                "the members are not distinct and in the declared order of {my_type}, so MySQL would store them reordered or de-duplicated"
            ));
        }
        last = Some(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = "set('Trailers','Commentaries','Deleted Scenes','Behind the Scenes')";

    #[test]
    fn sets_take_distinct_labels_in_declared_order() {
        let t = |s: &str| my_fits(&Value::Text(s.into()), ValueKind::Set, SET);
        assert_eq!(t(""), Ok(()));
        assert_eq!(t("Trailers,Deleted Scenes"), Ok(()));
        assert!(t("Deleted Scenes,Trailers").unwrap_err().contains("declared order"));
        assert!(t("Trailers,Trailers").unwrap_err().contains("distinct"));
        assert!(t("Bloopers").unwrap_err().contains("not a member"));
        assert_eq!(my_fits(&Value::Text("b,a".into()), ValueKind::Set, "set('?','a','b')"), Ok(()), "unreadable labels: the server decides");
    }

    #[test]
    fn years_are_those_mysql_keeps() {
        for (y, ok) in [(0, true), (1901, true), (2155, true), (2006, true), (5, false), (99, false), (1900, false), (2156, false), (-1, false)] {
            assert_eq!(my_fits(&Value::Int(y), ValueKind::Int, "year(4)").is_ok(), ok, "{y}");
        }
        assert_eq!(my_fits(&Value::Int(5), ValueKind::Int, "smallint(6)"), Ok(()));
    }

    #[test]
    fn varchar_lengths_count_characters() {
        assert_eq!(my_fits(&Value::Text("ééé".into()), ValueKind::Text, "varchar(3)"), Ok(()));
        assert!(my_fits(&Value::Text("abc ".into()), ValueKind::Text, "varchar(3)").unwrap_err().contains("4 characters"));
        assert_eq!(my_fits(&Value::Text("abcd".into()), ValueKind::Text, "text"), Ok(()));
        assert_eq!(pg_fits(&Value::Text("ab".into()), "character varying(2)"), Ok(()));
        assert!(pg_fits(&Value::Text("ab ".into()), "character varying(2)").is_err());
        assert_eq!(pg_fits(&Value::Text("ab ".into()), "text"), Ok(()));
    }
}
