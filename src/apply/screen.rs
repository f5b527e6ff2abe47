//! Screens a chunk of changes for source values with no canonical form
//! (`Value::Unrepresentable`: MySQL zero dates, Postgres infinities, text
//! invalid in its charset) before anything of it is sent to the destination.
//!
//! A MySQL zero date becomes NULL — in key, before- and after-image alike —
//! only when its pair says `zero_dates = "null"`, the explicit choice to write
//! NULL. Otherwise a change whose key or after-image still holds a marker is
//! held, with the column of its first marker and an `Error::Value`, for the
//! quarantine (or `on_error = "stop"`); the rest of the chunk goes on. The
//! result is a list of segments in source order, so the applier applies and
//! holds changes in the order the source made them. Invariant: a marker never
//! reaches a destination statement
//! (the SQL renderers refuse one as a second line of defence). A marker only
//! in a before-image (a zero date being fixed at the source) is left to the
//! merge rules: it equals no destination value.

use crate::config::{PairConfig, ZeroDates};
use crate::model::value::UnrepresentableKind;
use crate::model::{Change, Row, Value};
use crate::schema::PairSchema;
use crate::Error;
use std::borrow::Cow;

/// A piece of a screened chunk; a chunk's segments are in source order.
#[derive(Debug)]
pub enum Segment<'a> {
    /// Changes to apply (borrowed when none of the chunk was rewritten or held).
    Apply(Cow<'a, [Change]>),
    /// A change set apart, with the error naming its column and value.
    Hold(Change, Error),
}

fn has_marker(row: &[Value]) -> bool {
    row.iter().any(|v| matches!(v, Value::Unrepresentable(_)))
}

fn touches_marker(c: &Change) -> bool {
    has_marker(&c.key) || c.before.as_deref().is_some_and(has_marker) || c.after.as_deref().is_some_and(has_marker)
}

/// Replaces zero-date markers with NULL.
fn null_zero_dates(row: &mut Row) {
    for v in row.iter_mut() {
        if v.as_unrepresentable().is_some_and(|u| u.kind == UnrepresentableKind::ZeroDate) {
            *v = Value::Null;
        }
    }
}

/// The error for the first marker in `c`'s after-image (else its key).
fn held_error(c: &Change, schema: Option<&PairSchema>, pair_name: &str) -> Option<Error> {
    let (column, u) = match c.after.as_deref().and_then(|r| r.iter().enumerate().find_map(|(i, v)| Some((i, v.as_unrepresentable()?)))) {
        Some((i, u)) => (schema.and_then(|s| s.columns.get(i)).map(|col| col.name.clone()), u),
        None => {
            let (slot, u) = c.key.iter().enumerate().find_map(|(slot, v)| Some((slot, v.as_unrepresentable()?)))?;
            let col = schema.and_then(|s| s.key.get(slot).and_then(|&i| s.columns.get(i))).map(|col| col.name.clone());
            (col, u)
        }
    };
    Some(Error::Value {
        pair: pair_name.to_string(),
        column: column.unwrap_or_else(|| "?".to_string()),
        message: format!("{} (value {})", u.reason, u.text),
    })
}

/// Splits `changes` into segments (see the module doc). `pairs` is
/// `Config::pairs` (a change's `pair` indexes it); `schemas` name the columns.
pub fn screen<'a>(changes: &'a [Change], pairs: &[PairConfig], schemas: &[PairSchema]) -> Vec<Segment<'a>> {
    if !changes.iter().any(touches_marker) {
        return vec![Segment::Apply(Cow::Borrowed(changes))];
    }
    let mut out = Vec::new();
    let mut apply: Vec<Change> = Vec::new();
    for c in changes {
        if !touches_marker(c) {
            apply.push(c.clone());
            continue;
        }
        let mut c = c.clone();
        let config = pairs.get(c.pair);
        if config.is_some_and(|p| p.zero_dates == ZeroDates::Null) {
            null_zero_dates(&mut c.key);
            for row in [c.before.as_mut(), c.after.as_mut()].into_iter().flatten() {
                null_zero_dates(row);
            }
        }
        let schema = schemas.iter().find(|s| s.pair == c.pair);
        let name = config.map(|p| p.name.as_str()).or(schema.map(|s| s.name.as_str())).unwrap_or("?");
        match held_error(&c, schema, name) {
            Some(e) => {
                if !apply.is_empty() {
                    out.push(Segment::Apply(Cow::Owned(std::mem::take(&mut apply))));
                }
                out.push(Segment::Hold(c, e));
            }
            None => apply.push(c),
        }
    }
    if !apply.is_empty() {
        out.push(Segment::Apply(Cow::Owned(apply)));
    }
    out
}

/// The first held change's error, if any (for `quarantine retry`).
pub fn first_held(segments: Vec<Segment<'_>>) -> Option<Error> {
    segments.into_iter().find_map(|s| match s {
        Segment::Hold(_, e) => Some(e),
        Segment::Apply(_) => None,
    })
}

#[cfg(test)]
#[path = "screen_tests.rs"]
mod tests;
