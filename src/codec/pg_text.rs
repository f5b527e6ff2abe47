//! Text output of Postgres types → canonical `Value`: what pgoutput sends as
//! tuple values, and what the applier and commands read back as `::text`.
//!
//! tandem's sessions run with `DateStyle=ISO`, `TimeZone=UTC`,
//! `bytea_output=hex`, `extra_float_digits=3` and `client_encoding=UTF8` (see
//! `source::postgres::conn` and `db`), so the text forms parsed here are the ISO ones; timestamptz
//! offsets are parsed anyway. The choice is by type OID only: user types
//! (enums, domains) and anything not listed become `Text`; the applier converts
//! by destination type. Never panics; a value that does not parse is an
//! `Error::Decode` naming the type and the (truncated) value. Values Postgres
//! can hold but the model cannot (`infinity` dates and timestamps) become
//! `Value::Unrepresentable` markers, which the applier quarantines (or stops
//! on): never silently altered, and never a decode error that stops the
//! direction.

use crate::model::value::{parse_date, parse_time, parse_timestamp, UnrepresentableKind};
use crate::model::Value;
use crate::{Error, Result};

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const NAME: u32 = 19;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const JSON: u32 = 114;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const DATE: u32 = 1082;
pub const TIME: u32 = 1083;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const NUMERIC: u32 = 1700;
pub const UUID: u32 = 2950;
pub const JSONB: u32 = 3802;
pub const TEXT_ARRAY: u32 = 1009;
pub const VARCHAR_ARRAY: u32 = 1015;

/// The OID of a built-in type tandem decodes, by the name `format_type`
/// prints (modifiers ignored): what a domain's values are decoded as, since
/// pgoutput names a domain column by the domain's own OID.
pub fn builtin_oid(pg_type: &str) -> Option<u32> {
    let base = crate::sql::pg::base_type(pg_type);
    Some(match base.as_str() {
        "boolean" => BOOL,
        "bytea" => BYTEA,
        "bigint" => INT8,
        "smallint" => INT2,
        "integer" => INT4,
        "text" => TEXT,
        "json" => JSON,
        "real" => FLOAT4,
        "double precision" => FLOAT8,
        "character" => BPCHAR,
        "character varying" => VARCHAR,
        "date" => DATE,
        "time without time zone" => TIME,
        "timestamp without time zone" => TIMESTAMP,
        "timestamp with time zone" => TIMESTAMPTZ,
        "numeric" => NUMERIC,
        "uuid" => UUID,
        "jsonb" => JSONB,
        "text[]" => TEXT_ARRAY,
        "character varying[]" => VARCHAR_ARRAY,
        _ => return None,
    })
}

/// A readable name for a type OID, for error messages.
pub fn type_name(oid: u32) -> String {
    let known = match oid {
        BOOL => "boolean",
        BYTEA => "bytea",
        NAME => "name",
        INT8 => "bigint",
        INT2 => "smallint",
        INT4 => "integer",
        TEXT => "text",
        OID => "oid",
        JSON => "json",
        FLOAT4 => "real",
        FLOAT8 => "double precision",
        BPCHAR => "character",
        VARCHAR => "character varying",
        DATE => "date",
        TIME => "time",
        TIMESTAMP => "timestamp",
        TIMESTAMPTZ => "timestamptz",
        NUMERIC => "numeric",
        UUID => "uuid",
        JSONB => "jsonb",
        TEXT_ARRAY => "text[]",
        VARCHAR_ARRAY => "character varying[]",
        _ => return format!("type oid {oid}"),
    };
    known.to_string()
}

fn bad(oid: u32, text: &str, reason: &str) -> Error {
    let shown: String = text.chars().take(64).collect();
    let ellipsis = if text.chars().count() > 64 { "…" } else { "" };
    Error::Decode(format!("{} value {shown:?}{ellipsis}: {reason}", type_name(oid)))
}

/// Turns the text form of a value of type `oid` into a `Value`.
pub fn decode_text(oid: u32, raw: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        let lossy = String::from_utf8_lossy(raw);
        bad(oid, &lossy, "not valid UTF-8")
    })?;
    Ok(match oid {
        BOOL => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(bad(oid, text, "expected t or f")),
        },
        INT2 | INT4 | INT8 | OID => Value::Int(text.parse().map_err(|_| bad(oid, text, "not an integer"))?),
        NUMERIC => {
            if text.is_empty() {
                return Err(bad(oid, text, "empty"));
            }
            Value::Decimal(text.to_string())
        }
        FLOAT4 | FLOAT8 => Value::Float(parse_float(text).ok_or_else(|| bad(oid, text, "not a number"))?),
        BYTEA => Value::Bytes(parse_bytea(text).map_err(|reason| bad(oid, text, reason))?),
        DATE => {
            if let Some(marker) = infinity(text) {
                return Ok(marker);
            }
            Value::Date(parse_date(text).map_err(|_| bad(oid, text, "not an ISO date"))?)
        }
        TIME => Value::Time(parse_time(text).map_err(|_| bad(oid, text, "not an ISO time"))?),
        TIMESTAMP | TIMESTAMPTZ => {
            if let Some(marker) = infinity(text) {
                return Ok(marker);
            }
            Value::Timestamp(parse_timestamp(text).map_err(|_| bad(oid, text, "not an ISO timestamp"))?)
        }
        JSON | JSONB => Value::Json(text.to_string()),
        // Arrays of text pair with a MySQL SET (`ValueKind::Set`).
        TEXT_ARRAY | VARCHAR_ARRAY => crate::codec::pg_array::set_from_array(text),
        // char(n): trailing blanks are padding, not data (as Postgres' own bpchar → text cast
        // and MySQL CHAR treat them); keeping them made every update look like a conflict.
        BPCHAR => Value::Text(text.trim_end_matches(' ').to_string()),
        // text, varchar, name, uuid, enums, user types, anything else.
        _ => Value::Text(text.to_string()),
    })
}

/// The marker for an infinite date or timestamp, which MySQL has no value for.
fn infinity(text: &str) -> Option<Value> {
    (text == "infinity" || text == "-infinity").then(|| {
        Value::unrepresentable(UnrepresentableKind::Infinite, text, "Postgres infinite dates and timestamps have no value in MySQL")
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// Parses bytea output: hex (`\x0a0b`) or, for robustness, the escape format.
pub fn parse_bytea(text: &str) -> std::result::Result<Vec<u8>, &'static str> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits = hex.as_bytes();
        if digits.len() % 2 != 0 {
            return Err("odd number of hex digits");
        }
        return digits
            .chunks_exact(2)
            .map(|pair| match pair {
                [h, l] => Ok(hex_digit(*h)? << 4 | hex_digit(*l)?),
                _ => Err("odd number of hex digits"),
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1..i + 4) {
            Some([b'\\', ..]) => {
                out.push(b'\\');
                i += 2;
            }
            Some(&[a, b, c]) if is_octal(a) && is_octal(b) && is_octal(c) => {
                let v = u16::from(a - b'0') << 6 | u16::from(b - b'0') << 3 | u16::from(c - b'0');
                out.push(u8::try_from(v).map_err(|_| "octal escape out of range")?);
                i += 4;
            }
            _ if bytes.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            _ => return Err("bad escape sequence"),
        }
    }
    Ok(out)
}

fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

fn hex_digit(b: u8) -> std::result::Result<u8, &'static str> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err("bad hex digit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(oid: u32, s: &str) -> Value {
        decode_text(oid, s.as_bytes()).unwrap()
    }

    #[test]
    fn scalars_by_oid() {
        assert_eq!(d(BOOL, "t"), Value::Bool(true));
        assert_eq!(d(BOOL, "f"), Value::Bool(false));
        assert_eq!(d(INT2, "-32768"), Value::Int(-32768));
        assert_eq!(d(INT4, "42"), Value::Int(42));
        assert_eq!(d(INT8, "-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(d(OID, "4294967295"), Value::Int(4_294_967_295));
        assert_eq!(d(NUMERIC, "-12.50"), Value::Decimal("-12.50".into()));
        assert_eq!(d(NUMERIC, "18446744073709551615"), Value::Decimal("18446744073709551615".into()));
        assert_eq!(d(NUMERIC, "NaN"), Value::Decimal("NaN".into()));
        assert_eq!(d(NUMERIC, "Infinity"), Value::Decimal("Infinity".into()));
        assert_eq!(d(FLOAT8, "1.5"), Value::Float(1.5));
        assert_eq!(d(FLOAT4, "Infinity"), Value::Float(f64::INFINITY));
        assert_eq!(d(FLOAT8, "-Infinity"), Value::Float(f64::NEG_INFINITY));
        assert!(matches!(d(FLOAT8, "NaN"), Value::Float(x) if x.is_nan()));
        assert_eq!(d(FLOAT8, "0.30000000000000004"), Value::Float(0.1 + 0.2));
        for oid in [TEXT, VARCHAR, NAME] {
            assert_eq!(d(oid, "héllo "), Value::Text("héllo ".into()));
        }
        // char(n): the blank padding is not data.
        assert_eq!(d(BPCHAR, "héllo     "), Value::Text("héllo".into()));
        assert_eq!(
            d(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
        );
        assert_eq!(d(JSON, r#"{"a": 1}"#), Value::Json(r#"{"a": 1}"#.into()));
        assert_eq!(d(JSONB, r#"{"a": 1}"#), Value::Json(r#"{"a": 1}"#.into()));
        assert_eq!(d(99_999, "happy"), Value::Text("happy".into()), "enums and user types are text");
    }

    #[test]
    fn dates_times_timestamps() {
        assert_eq!(d(DATE, "1970-01-02"), Value::Date(1));
        assert_eq!(d(DATE, "0044-03-15 BC"), Value::Date(parse_date("0044-03-15 BC").unwrap()));
        assert_eq!(d(TIME, "13:14:15.5"), Value::Time(((13 * 60 + 14) * 60 + 15) * 1_000_000 + 500_000));
        let utc = parse_timestamp("2024-05-06 07:08:09.123456").unwrap();
        assert_eq!(d(TIMESTAMP, "2024-05-06 07:08:09.123456"), Value::Timestamp(utc));
        assert_eq!(d(TIMESTAMPTZ, "2024-05-06 07:08:09.123456+00"), Value::Timestamp(utc));
        assert_eq!(d(TIMESTAMPTZ, "2024-05-06 09:08:09.123456+02"), Value::Timestamp(utc));
        assert_eq!(d(TIMESTAMPTZ, "2024-05-06 01:38:09.123456-05:30"), Value::Timestamp(utc));
    }

    #[test]
    fn infinities_are_unrepresentable_markers_not_errors() {
        for (oid, text) in [(DATE, "infinity"), (TIMESTAMP, "-infinity"), (TIMESTAMPTZ, "infinity")] {
            let v = decode_text(oid, text.as_bytes()).unwrap();
            let u = v.as_unrepresentable().expect("a marker");
            assert_eq!((u.kind, u.text.as_str()), (UnrepresentableKind::Infinite, text));
            assert_eq!(v.to_string(), text);
        }
    }

    #[test]
    fn garbage_is_an_error_naming_type_and_value() {
        for (oid, text, needle) in [
            (INT4, "4x", "integer value \"4x\""),
            (BOOL, "yes", "boolean"),
            (FLOAT8, "fast", "double precision"),
            (BYTEA, "\\x0", "odd number"),
            (BYTEA, "\\xzz", "bad hex"),
            (DATE, "2024-02-30x", "date"),
        ] {
            let err = decode_text(oid, text.as_bytes()).expect_err(text).to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
        let long = "9".repeat(500) + "x";
        let err = decode_text(INT8, long.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 200 && err.contains('…'), "long values are truncated: {err}");
        assert!(decode_text(TEXT, b"\xff\xfe").unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn bytea_hex_and_escape_formats() {
        assert_eq!(d(BYTEA, "\\x"), Value::Bytes(vec![]));
        assert_eq!(d(BYTEA, "\\x00ff7Fa0"), Value::Bytes(vec![0, 0xff, 0x7f, 0xa0]));
        assert_eq!(d(BYTEA, "ab\\\\c\\000\\377"), Value::Bytes(b"ab\\c\x00\xff".to_vec()));
        assert!(decode_text(BYTEA, b"\\400").is_err(), "octal escape above 255");
        assert!(decode_text(BYTEA, b"a\\").is_err(), "dangling backslash");
    }

    use crate::source::{decoder_config, returns};

    proptest! {
        #![proptest_config(decoder_config(500))]
        #[test]
        fn never_panics(raw in prop::collection::vec(any::<u8>(), 1..40)) {
            let _ = returns(|| crate::fuzzing::pg_text_value(&raw))?;
        }
    }

    proptest! {
        #![proptest_config(decoder_config(500))]
        #[test]
        fn never_panics_on_plausible_text(oid in prop::sample::select(vec![BYTEA, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, NUMERIC, FLOAT8, INT2]),
                                          s in "[-+0-9:. \\\\xBCa-fnNIiy]{0,40}") {
            let _ = returns(|| decode_text(oid, s.as_bytes()))?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn bytea_hex_round_trip(v in prop::collection::vec(any::<u8>(), 0..64)) {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(d(BYTEA, &format!("\\x{hex}")), Value::Bytes(v));
        }

        #[test]
        fn integers_round_trip(i in any::<i64>()) {
            prop_assert_eq!(d(INT8, &i.to_string()), Value::Int(i));
        }

        #[test]
        fn floats_round_trip(x in any::<f64>().prop_filter("not NaN", |x| !x.is_nan())) {
            prop_assert_eq!(d(FLOAT8, &x.to_string()), Value::Float(x));
        }
    }
}
