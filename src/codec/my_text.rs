//! MySQL's text protocol → canonical `Value`: how the applier and the
//! commands read rows back from MySQL/MariaDB (tandem's sessions run with
//! `time_zone = '+00:00'`, so timestamps read as UTC). Pure; never panics.

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
        ValueKind::Text | ValueKind::Uuid | ValueKind::Enum | ValueKind::Unsupported => Value::Text(text()?.to_string()),
    })
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
