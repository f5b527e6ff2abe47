//! Unit tests of binlog cell → `Value` conversion (edge values per type).

use super::*;
use proptest::prelude::*;

fn cell(v: MyValue) -> BinlogValue<'static> {
    BinlogValue::Value(v)
}

fn conv(v: MyValue, codec: Codec) -> Result<Value, String> {
    to_value(cell(v), &codec)
}

fn ts(text: &str) -> Value {
    Value::Timestamp(crate::model::value::parse_timestamp(text).unwrap())
}

#[test]
fn unsigned_integers_from_sign_extended_ints() {
    let big = Codec::Int { bits: 64, unsigned: true };
    assert_eq!(conv(MyValue::Int(-1), big.clone()), Ok(Value::UInt(u64::MAX)));
    assert_eq!(conv(MyValue::UInt(u64::MAX), big), Ok(Value::UInt(u64::MAX)));
    assert_eq!(conv(MyValue::Int(-1), Codec::Int { bits: 32, unsigned: true }), Ok(Value::Int(4_294_967_295)));
    assert_eq!(conv(MyValue::Int(-1), Codec::Int { bits: 24, unsigned: true }), Ok(Value::Int(16_777_215)));
    assert_eq!(conv(MyValue::Int(-1), Codec::Int { bits: 8, unsigned: true }), Ok(Value::Int(255)));
    assert_eq!(conv(MyValue::Int(-128), Codec::Int { bits: 8, unsigned: false }), Ok(Value::Int(-128)));
    assert_eq!(conv(MyValue::Int(i64::MIN), Codec::Int { bits: 64, unsigned: false }), Ok(Value::Int(i64::MIN)));
    assert_eq!(conv(MyValue::NULL, Codec::Int { bits: 64, unsigned: false }), Ok(Value::Null));
}

#[test]
fn decimals_stay_exact_text() {
    let d = |s: &str| conv(MyValue::Bytes(s.as_bytes().to_vec()), Codec::Decimal);
    let max = "9999999999999999999999999999.9999999999"; // DECIMAL(38,10)
    assert_eq!(d(max), Ok(Value::Decimal(max.into())));
    assert_eq!(d(&format!("-{max}")), Ok(Value::Decimal(format!("-{max}"))));
    assert_eq!(d("0000000000000000000123.4500000000"), Ok(Value::Decimal("123.4500000000".into())));
    assert_eq!(d("-0.0000000001"), Ok(Value::Decimal("-0.0000000001".into())));
    assert_eq!(d("-0.00"), Ok(Value::Decimal("0.00".into())));
    assert_eq!(d("000"), Ok(Value::Decimal("0".into())));
    assert!(d("1e5").is_err());
    assert!(d("").is_err());
    assert!(d("-").is_err());
}

#[test]
fn text_by_charset() {
    let utf8 = Codec::Text(Charset::Utf8);
    let s = "emoji 😀 ünïcödé 𝄞";
    assert_eq!(conv(MyValue::Bytes(s.as_bytes().to_vec()), utf8.clone()), Ok(Value::Text(s.into())));
    let bad = conv(MyValue::Bytes(vec![b'a', 0xF0, 0x28, 0x8C, 0x28]), utf8).unwrap();
    let u = bad.as_unrepresentable().expect("invalid UTF-8 is a marker, not an error");
    assert_eq!(u.kind, UnrepresentableKind::BadEncoding);
    assert_eq!(u.text, "\\x61f0288c28", "the bytes, shown as hex");
    assert!(u.reason.contains("invalid UTF-8 at byte 1"), "{}", u.reason);
    // latin1 is cp1252: 0x80 is the euro sign, 0xE9 is é, 0x81 stays a C1 control.
    let l1 = conv(MyValue::Bytes(vec![0x80, 0xE9, 0x81, b'z', 0xFF]), Codec::Text(Charset::Latin1));
    assert_eq!(l1, Ok(Value::Text("€é\u{81}zÿ".into())));
    let ascii = conv(MyValue::Bytes(vec![0xC3]), Codec::Text(Charset::Ascii)).unwrap();
    assert!(ascii.as_unrepresentable().is_some_and(|u| u.reason.contains("non-ASCII")), "{ascii:?}");
    let json = conv(MyValue::Bytes(vec![b'"', 0xFF, b'"']), Codec::Json(Charset::Utf8)).unwrap();
    assert_eq!(json.as_unrepresentable().map(|u| u.kind), Some(UnrepresentableKind::BadEncoding));
    assert_eq!(conv(MyValue::Bytes(vec![0, 255]), Codec::Bytes), Ok(Value::Bytes(vec![0, 255])));
    assert_eq!(conv(MyValue::Bytes(vec![1, 2]), Codec::Bit), Ok(Value::Bytes(vec![1, 2])));
    let json = conv(MyValue::Bytes(br#"{"a": [1, "\u00e9"]}"#.to_vec()), Codec::Json(Charset::Utf8));
    assert_eq!(json, Ok(Value::Json(r#"{"a": [1, "\u00e9"]}"#.into())));
}

#[test]
fn dates_times_and_timestamps() {
    let dt = conv(MyValue::Date(2024, 2, 29, 23, 59, 58, 999_999), Codec::DateTime);
    assert_eq!(dt, Ok(ts("2024-02-29 23:59:58.999999")));
    assert_eq!(conv(MyValue::Date(1000, 1, 1, 0, 0, 0, 0), Codec::DateTime), Ok(ts("1000-01-01 00:00:00")));
    assert_eq!(conv(MyValue::Date(9999, 12, 31, 0, 0, 0, 0), Codec::Date), Ok(Value::Date(2_932_896)));
    assert_eq!(conv(MyValue::Date(1970, 1, 1, 0, 0, 0, 0), Codec::Date), Ok(Value::Date(0)));
    let epoch = |s: &str| conv(MyValue::Bytes(s.as_bytes().to_vec()), Codec::Timestamp);
    assert_eq!(epoch("1714979289.123456"), Ok(ts("2024-05-06 07:08:09.123456")));
    assert_eq!(epoch("1714979289"), Ok(ts("2024-05-06 07:08:09")));
    assert_eq!(epoch("1.5"), Ok(Value::Timestamp(1_500_000)));
    assert_eq!(epoch("0").unwrap().to_string(), "0000-00-00 00:00:00");
    assert!(epoch("1.1234567").is_err());
    assert!(epoch("x").is_err());
    let t = |neg, d, h, m, s, us| conv(MyValue::Time(neg, d, h, m, s, us), Codec::Time);
    assert_eq!(t(true, 34, 22, 59, 59, 0), Ok(Value::Time(-(838 * 3600 + 59 * 60 + 59) * MICROS)));
    assert_eq!(t(false, 0, 0, 0, 0, 1), Ok(Value::Time(1)));
}

fn zero_date_text(v: Result<Value, String>) -> String {
    let v = v.expect("a zero date is a marker, not an error");
    let u = v.as_unrepresentable().unwrap_or_else(|| panic!("{v:?} should be a marker"));
    assert_eq!(u.kind, UnrepresentableKind::ZeroDate);
    assert!(u.reason.contains("zero date"), "{}", u.reason);
    u.text.clone()
}

#[test]
fn zero_dates_are_markers_shown_as_mysql_shows_them() {
    let date = |y, m, d| zero_date_text(conv(MyValue::Date(y, m, d, 0, 0, 0, 0), Codec::Date));
    assert_eq!(date(0, 0, 0), "0000-00-00");
    assert_eq!(date(2022, 11, 0), "2022-11-00");
    assert_eq!(date(2024, 0, 1), "2024-00-01");
    let dt = |y, m, d, us| zero_date_text(conv(MyValue::Date(y, m, d, 10, 20, 30, us), Codec::DateTime));
    assert_eq!(dt(0, 0, 0, 0), "0000-00-00 10:20:30");
    assert_eq!(dt(2022, 11, 0, 5), "2022-11-00 10:20:30.000005");
    assert_eq!(zero_date_text(conv(MyValue::Int(0), Codec::Timestamp)), "0000-00-00 00:00:00");
    let epoch = |s: &str| conv(MyValue::Bytes(s.as_bytes().to_vec()), Codec::Timestamp);
    assert_eq!(zero_date_text(epoch("0.000000")), "0000-00-00 00:00:00.000000");
    assert!(conv(MyValue::Date(2024, 13, 1, 0, 0, 0, 0), Codec::Date).is_err(), "month 13 is not a zero date");
}

#[test]
fn enum_set_year_float() {
    let labels = vec!["small".to_string(), "it's".to_string(), "large".to_string()];
    assert_eq!(conv(MyValue::Int(2), Codec::Enum(labels.clone())), Ok(Value::Text("it's".into())));
    assert_eq!(conv(MyValue::Int(0), Codec::Enum(labels.clone())), Ok(Value::Text(String::new())));
    assert!(conv(MyValue::Int(4), Codec::Enum(labels.clone())).is_err());
    assert_eq!(conv(MyValue::Bytes(vec![0b101]), Codec::Set(labels.clone())), Ok(Value::Text("small,large".into())));
    assert_eq!(conv(MyValue::Bytes(vec![0]), Codec::Set(labels.clone())), Ok(Value::Text(String::new())));
    assert!(conv(MyValue::Bytes(vec![0b1000]), Codec::Set(labels)).is_err());
    assert_eq!(conv(MyValue::Bytes(b"2155".to_vec()), Codec::Year), Ok(Value::Int(2155)));
    assert_eq!(conv(MyValue::Bytes(b"1900".to_vec()), Codec::Year), Ok(Value::Int(0)));
    assert_eq!(conv(MyValue::Float(0.1), Codec::Float), Ok(Value::Float(0.1)));
    assert_eq!(conv(MyValue::Double(-1.5e300), Codec::Double), Ok(Value::Float(-1.5e300)));
}

#[test]
fn type_mismatch_is_an_error() {
    assert!(conv(MyValue::Bytes(b"abc".to_vec()), Codec::Int { bits: 32, unsigned: false }).is_err());
    assert!(conv(MyValue::Int(1), Codec::Unsupported("geometry".into())).is_err());
}

proptest! {
    #[test]
    fn text_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for cs in [Charset::Utf8, Charset::Latin1, Charset::Ascii, Charset::Binary] {
            let _ = decode_text(bytes.clone(), cs);
        }
        let _ = normalize_decimal(&bytes);
        let _ = parse_epoch(&bytes);
        let _ = set_labels(&bytes, &["a".to_string()]);
    }

    #[test]
    fn latin1_decodes_every_byte(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let s = decode_text(bytes.clone(), Charset::Latin1).unwrap();
        prop_assert_eq!(s.chars().count(), bytes.len());
    }

    #[test]
    fn decimal_normalization_keeps_the_value(neg in any::<bool>(), int in "[0-9]{1,30}", frac in "[0-9]{0,10}") {
        let text = format!("{}{}{}{}", if neg { "-" } else { "" }, int, if frac.is_empty() { "" } else { "." }, frac);
        let n = normalize_decimal(text.as_bytes()).unwrap();
        let strip = |s: &str| s.trim_start_matches('-').trim_start_matches('0').replace('.', "").trim_start_matches('0').to_string();
        prop_assert_eq!(strip(&n), strip(&text));
    }
}
