//! Postgres identifiers and literals (see the module above).

/// `"a""b"`: a Postgres identifier, exactly as written (no case folding).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// `'it''s'`: a Postgres string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_and_case_is_kept() {
        assert_eq!(ident("Order \"x\""), "\"Order \"\"x\"\"\"");
        assert_eq!(qualified("tandem", "checkpoints"), "\"tandem\".\"checkpoints\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b"), "'a\\b'", "a backslash is an ordinary character");
    }
}
