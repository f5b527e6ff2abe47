//! MySQL/MariaDB identifiers and literals (see the module above).

/// `` `a``b` ``: a MySQL identifier.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_ident(&mut out, name);
    out
}

/// `` `db`.`table` ``.
pub fn qualified(db: &str, name: &str) -> String {
    let mut out = ident(db);
    out.push('.');
    push_ident(&mut out, name);
    out
}

/// Appends `ident(name)` to `out`.
pub fn push_ident(out: &mut String, name: &str) {
    out.push('`');
    for ch in name.chars() {
        if ch == '`' {
            out.push('`');
        }
        out.push(ch);
    }
    out.push('`');
}

/// `'it''s'`: a string literal for tandem's sessions (`NO_BACKSLASH_ESCAPES`).
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_literal(&mut out, text);
    out
}

/// Appends `literal(text)` to `out`.
pub fn push_literal(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('\'');
    for ch in text.chars() {
        if ch == '\'' {
            out.push('\'');
        }
        out.push(ch);
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("tandem", "lease"), "`tandem`.`lease`");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
