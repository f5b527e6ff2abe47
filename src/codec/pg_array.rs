//! Postgres one-dimensional text arrays (`text[]`, `varchar[]`) as the
//! canonical value of a set of labels (`ValueKind::Set`, paired with a MySQL
//! `SET`): `Value::Text` of the members joined by commas, `''` for the empty
//! array — the way MySQL prints a SET.
//!
//! `set_from_array` reads Postgres' array output; an array that has no such
//! form (a NULL member, an empty member, a member holding a comma, several
//! dimensions or explicit bounds) becomes a `Value::Unrepresentable` marker,
//! which the applier quarantines: never silently altered. `array_from_set`
//! writes the canonical text as an array literal, every member quoted.
//! Whether the members are labels of the destination SET, distinct and in
//! its declared order is the MySQL applier's check (`apply::mysql_sql`).
//! Pure; never panics.

use crate::model::value::UnrepresentableKind;
use crate::model::Value;

fn not_a_set(text: &str, why: &str) -> Value {
    Value::unrepresentable(UnrepresentableKind::NotASet, text, format!("a Postgres array with {why} has no MySQL SET value"))
}

/// The members of Postgres' output of a one-dimensional text array; `Err`
/// names why it is not a list of plain members.
fn members(text: &str) -> Result<Vec<String>, &'static str> {
    let body = match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        Some(b) => b,
        None if text.starts_with('[') => return Err("explicit bounds"),
        None => return Err("an unreadable text form"),
    };
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let mut m = String::new();
        match chars.peek() {
            Some('"') => {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => m.push(chars.next().ok_or("an unreadable text form")?),
                        Some(c) => m.push(c),
                        None => return Err("an unreadable text form"),
                    }
                }
            }
            Some('{') => return Err("several dimensions"),
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    m.push(c);
                    chars.next();
                }
                if m.eq_ignore_ascii_case("NULL") {
                    return Err("a NULL member");
                }
            }
        }
        if m.is_empty() {
            return Err("an empty member");
        }
        if m.contains(',') {
            return Err("a member holding a comma");
        }
        out.push(m);
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(_) => return Err("an unreadable text form"),
        }
    }
}

/// Postgres' text output of a `text[]` value → the canonical set text (or a
/// marker when it has none).
pub fn set_from_array(text: &str) -> Value {
    match members(text) {
        Ok(m) => Value::Text(m.join(",")),
        Err(why) => not_a_set(text, why),
    }
}

/// The canonical set text as a Postgres array literal (`'' → {}`).
pub fn array_from_set(set: &str) -> String {
    if set.is_empty() {
        return "{}".to_string();
    }
    let mut out = String::with_capacity(set.len() + 8);
    out.push('{');
    for (n, m) in set.split(',').enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        for c in m.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(v: &Value) -> bool {
        v.as_unrepresentable().is_some_and(|u| u.kind == UnrepresentableKind::NotASet)
    }

    #[test]
    fn arrays_read_as_comma_joined_members() {
        assert_eq!(set_from_array("{}"), Value::Text(String::new()));
        assert_eq!(set_from_array("{a}"), Value::Text("a".into()));
        assert_eq!(set_from_array("{Trailers,\"Deleted Scenes\"}"), Value::Text("Trailers,Deleted Scenes".into()));
        assert_eq!(set_from_array(r#"{"say \"hi\"","back\\slash",é}"#), Value::Text(r#"say "hi",back\slash,é"#.into()));
        assert_eq!(set_from_array("{\"NULL\"}"), Value::Text("NULL".into()), "a quoted NULL is the text NULL");
    }

    #[test]
    fn arrays_without_a_set_form_are_markers() {
        for bad in ["{NULL}", "{a,NULL}", "{\"\"}", "{\"a,b\"}", "{{a},{b}}", "[2:3]={a,b}", "a,b", "{\"a}"] {
            assert!(marker(&set_from_array(bad)), "{bad}");
        }
    }

    #[test]
    fn sets_write_as_quoted_array_literals() {
        assert_eq!(array_from_set(""), "{}");
        assert_eq!(array_from_set("a,Deleted Scenes"), "{\"a\",\"Deleted Scenes\"}");
        assert_eq!(array_from_set(r#"say "hi",back\slash"#), r#"{"say \"hi\"","back\\slash"}"#);
        for set in ["", "a", "x y,z", r#"q"uote,b\s"#] {
            assert_eq!(set_from_array(&array_from_set(set)), Value::Text(set.to_string()), "{set}");
        }
    }
}
