//! SQL text shared by every layer: identifiers and string literals of both
//! dialects, quoted here and nowhere else.
//!
//! `pg` quotes the way Postgres reads SQL with `standard_conforming_strings`
//! on (identifiers in double quotes, literals in single quotes, a quote
//! doubled inside either). `my` quotes the way tandem's MySQL/MariaDB
//! sessions read SQL: identifiers in backquotes, literals in single quotes
//! with the quote doubled; those sessions run with `NO_BACKSLASH_ESCAPES`
//! (`crate::db`), so a backslash is an ordinary character. Nothing here
//! knows a table, a pair or a change: it only turns text into SQL text.

pub mod my;
pub mod pg;
