//! Postgres identifiers and literals (see the module above).

/// `"a""b"`: a Postgres identifier, exactly as written (no case folding).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A type name as `format_type` prints it without its modifiers, wherever
/// they stand (`timestamp(6) without time zone` → `timestamp without time
/// zone`, `numeric(12,2)` → `numeric`), white space collapsed.
pub fn base_type(pg_type: &str) -> String {
    let mut out = String::with_capacity(pg_type.len());
    let mut depth = 0i32;
    for ch in pg_type.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The type to cast a text value to before it is assigned to a column of
/// `pg_type`: without the modifier, so that the assignment to the column
/// (not the cast, which would round a numeric or truncate a varchar)
/// enforces lengths; `character(n)` becomes `bpchar`, the blank-padded type
/// without a length: a bare `character` means `character(1)`, and a cast to
/// it would keep only the first character.
pub fn cast_type(pg_type: &str) -> String {
    let base = base_type(pg_type);
    match base.strip_prefix("character") {
        Some(rest) if rest.is_empty() || rest.starts_with('[') => format!("bpchar{rest}"),
        _ => base,
    }
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

    #[test]
    fn types_lose_their_modifiers_and_character_casts_keep_every_character() {
        assert_eq!(base_type("timestamp(6) without time zone"), "timestamp without time zone");
        assert_eq!(base_type("numeric(12,2)"), "numeric");
        assert_eq!(cast_type("character varying(64)"), "character varying");
        assert_eq!(cast_type("character(10)"), "bpchar");
        assert_eq!(cast_type("character(10)[]"), "bpchar[]");
        assert_eq!(cast_type("bigint"), "bigint");
    }
}
