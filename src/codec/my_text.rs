//! MySQL's text protocol → canonical `Value`: how the applier and the
//! commands read rows back from MySQL/MariaDB (tandem's sessions run with
//! `time_zone = '+00:00'`, so timestamps read as UTC), and the labels of an
//! ENUM/SET type as `COLUMN_TYPE` prints them. Pure; never panics.

use crate::model::value::{parse_date, parse_time, parse_timestamp};
use crate::model::Value;
use crate::schema::ValueKind;

/// A MySQL column's text-protocol bytes as a canonical value of `kind`.
pub fn mysql_text_value(raw: Option<&[u8]>, kind: ValueKind) -> Result<Value, String> {
    let Some(raw) = raw else { return Ok(Value::Null) };
    let text = || std::str::from_utf8(raw).map_err(|_| "not valid UTF-8".to_string());
    Ok(match kind {
        ValueKind::Bool | ValueKind::Int => Value::Int(text()?.parse().map_err(|e| format!("integer: {e}"))?),
        ValueKind::UInt => Value::UInt(text()?.parse().map_err(|e| format!("unsigned integer: {e}"))?),
        ValueKind::Decimal => Value::Decimal(text()?.to_string()),
        ValueKind::Float => Value::Float(text()?.parse().map_err(|e| format!("float: {e}"))?),
        ValueKind::Bytes => Value::Bytes(raw.to_vec()),
        ValueKind::Date => Value::Date(parse_date(text()?).map_err(|e| e.to_string())?),
        ValueKind::Time => Value::Time(parse_time(text()?).map_err(|e| e.to_string())?),
        ValueKind::Timestamp | ValueKind::TimestampTz => Value::Timestamp(parse_timestamp(text()?).map_err(|e| e.to_string())?),
        ValueKind::Json => Value::Json(text()?.to_string()),
        ValueKind::Text | ValueKind::Uuid | ValueKind::Enum | ValueKind::Set | ValueKind::Unsupported => Value::Text(text()?.to_string()),
    })
}

/// Labels of `enum('a','b''c','d\\e')` / `set(...)` as information_schema
/// prints them: quotes doubled; backslash, newline, carriage return and NUL
/// escaped as `\\`, `\n`, `\r`, `\0`; commas and parentheses inside quotes
/// are label text. Characters MariaDB could not print are `?` (see `labels`).
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let body = match (column_type.find('('), column_type.rfind(')')) {
        (Some(a), Some(b)) if a < b => &column_type[a + 1..b],
        _ => return Vec::new(),
    };
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue; // separators
        }
        let mut label = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => {
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some('n') => label.push('\n'),
                    Some('r') => label.push('\r'),
                    Some('t') => label.push('\t'),
                    Some('Z') => label.push('\x1a'),
                    Some('0') => label.push('\0'),
                    Some(other) => label.push(other),
                    None => label.push('\\'),
                },
                other => label.push(other),
            }
        }
        if closed {
            labels.push(label);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_text_reads_back() {
        assert_eq!(mysql_text_value(Some(b"18446744073709551615"), ValueKind::UInt).unwrap(), Value::UInt(u64::MAX));
        assert_eq!(mysql_text_value(Some(b"2024-01-02 03:04:05.000006"), ValueKind::Timestamp).unwrap(), Value::Timestamp(parse_timestamp("2024-01-02 03:04:05.000006").unwrap()));
        assert_eq!(mysql_text_value(None, ValueKind::Text).unwrap(), Value::Null);
        assert!(mysql_text_value(Some(b"x"), ValueKind::Int).is_err());
    }
}
