//! Value equality across the two databases, and reading a destination's
//! current column text back into a canonical `Value`.
//!
//! The same logical value may arrive as different variants from the two sides
//! (a Postgres boolean vs a MySQL `tinyint(1)` integer; `numeric(20,0)` text vs
//! an unsigned integer; `1.50` vs `1.5`). `same_value` compares them by their
//! meaning, never through floating point for exact numbers.

use crate::model::Value;

/// Normalizes an exact number's text: sign, no leading zeros, no trailing fraction zeros.
fn norm_number(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.') || body.matches('.').count() > 1 {
        return None;
    }
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int == "0" && frac.is_empty() {
        return Some("0".to_string());
    }
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

fn exact_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Decimal(s) => norm_number(s),
        _ => None,
    }
}

/// Do two canonical values mean the same thing?
pub fn same_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Unchanged, _) | (_, Value::Unchanged) => false,
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        // JSON documents are compared as documents when either side is JSON
        // (a MariaDB JSON column reads back as text); plain text never is.
        (Value::Json(x), Value::Text(y) | Value::Json(y)) | (Value::Text(x), Value::Json(y)) => x == y || json_equal(x, y),
        (Value::Text(x), Value::Text(y)) => same_uuid(x, y),
        (Value::Text(x), Value::Bytes(y)) | (Value::Bytes(y), Value::Text(x)) => x.as_bytes() == y.as_slice(),
        (Value::Date(d), Value::Timestamp(t)) | (Value::Timestamp(t), Value::Date(d)) => (*d as i64) * 86_400_000_000 == *t,
        _ => match (exact_text(a), exact_text(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Two UUIDs in the 8-4-4-4-12 hex form that differ only in letter case: a
/// `char(36)` written `A0EEBC99-…` in MySQL reads back from a Postgres `uuid`
/// as `a0eebc99-…`. Any other text compares exactly.
fn same_uuid(a: &str, b: &str) -> bool {
    fn is_uuid(s: &str) -> bool {
        s.len() == 36
            && s.bytes().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == b'-' } else { c.is_ascii_hexdigit() })
    }
    is_uuid(a) && is_uuid(b) && a.eq_ignore_ascii_case(b)
}

/// Do two JSON texts hold the same document? Object key order, white space,
/// string escapes and the spelling of numbers do not matter (`1e2`, `100` and
/// `100.0` are one number: Postgres' jsonb re-spells numbers, MySQL keeps the
/// text); numbers are compared exactly, never through a float. Duplicate keys:
/// the last one counts, as in jsonb. Not JSON on either side: `false`.
pub fn json_equal(a: &str, b: &str) -> bool {
    match (JsonDoc::parse(a), JsonDoc::parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A parsed JSON document whose numbers are kept as exact canonical text.
#[derive(Debug, PartialEq)]
enum JsonDoc {
    Null,
    Bool(bool),
    /// `[-]digits e exponent`, digits without leading or trailing zeros; `0` for zero.
    Num(String),
    Str(String),
    Arr(Vec<JsonDoc>),
    Obj(std::collections::BTreeMap<String, JsonDoc>),
}

impl JsonDoc {
    const MAX_DEPTH: usize = 512;

    fn parse(text: &str) -> Option<JsonDoc> {
        let mut p = JsonParser { s: text.as_bytes(), text, i: 0 };
        let doc = p.value(0)?;
        p.ws();
        (p.i == p.s.len()).then_some(doc)
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, word: &str) -> Option<()> {
        let end = self.i + word.len();
        (self.s.get(self.i..end)? == word.as_bytes()).then(|| self.i = end)
    }

    fn value(&mut self, depth: usize) -> Option<JsonDoc> {
        if depth > JsonDoc::MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'n' => self.eat("null").map(|_| JsonDoc::Null),
            b't' => self.eat("true").map(|_| JsonDoc::Bool(true)),
            b'f' => self.eat("false").map(|_| JsonDoc::Bool(false)),
            b'"' => self.string().map(JsonDoc::Str),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(JsonDoc::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match *self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(JsonDoc::Arr(items));
                        }
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.i += 1;
                let mut map = std::collections::BTreeMap::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(JsonDoc::Obj(map));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    let v = self.value(depth + 1)?;
                    map.insert(key, v);
                    self.ws();
                    match *self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(JsonDoc::Obj(map));
                        }
                        _ => return None,
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number().map(JsonDoc::Num),
            _ => None,
        }
    }

    /// A string token, unescaped by serde_json (which also validates it).
    fn string(&mut self) -> Option<String> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i;
        let mut j = start + 1;
        loop {
            match *self.s.get(j)? {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        self.i = j + 1;
        serde_json::from_str(self.text.get(start..=j)?).ok()
    }

    /// A number token (JSON grammar) as exact canonical text.
    fn number(&mut self) -> Option<String> {
        let digits_from = |p: &mut Self| {
            let from = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.text.get(from..p.i)
        };
        let neg = self.s.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let int = digits_from(self)?;
        if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
            return None;
        }
        let mut frac = "";
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            frac = digits_from(self)?;
            if frac.is_empty() {
                return None;
            }
        }
        let mut exp: i64 = 0;
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            let eneg = match self.s.get(self.i) {
                Some(b'-') => {
                    self.i += 1;
                    true
                }
                Some(b'+') => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            let e = digits_from(self)?;
            if e.is_empty() {
                return None;
            }
            let e: i64 = e.parse().ok()?;
            exp = if eneg { -e } else { e };
        }
        let all = format!("{int}{frac}");
        let mut exp = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
        let trimmed = all.trim_start_matches('0');
        let digits = trimmed.trim_end_matches('0');
        if digits.is_empty() {
            return Some("0".to_string());
        }
        exp = exp.checked_add(i64::try_from(trimmed.len() - digits.len()).ok()?)?;
        Some(format!("{}{digits}e{exp}", if neg { "-" } else { "" }))
    }
}

/// Orders two values of a timestamp column for last-writer-wins: `None` when
/// either is NULL or they are not comparable.
pub fn newer(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        _ => None,
    }
}

/// A text form of key values that is equal for keys meaning the same row on
/// both sides (numbers normalized), used to match source keys with fetched
/// destination rows.
pub fn key_text(key: &[Value]) -> String {
    let mut s = String::new();
    for (i, v) in key.iter().enumerate() {
        if i > 0 {
            s.push('\u{1f}');
        }
        match exact_text(v) {
            Some(t) => s.push_str(&t),
            None => s.push_str(&v.to_string()),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cross_side_equalities() {
        assert!(same_value(&Value::Bool(true), &Value::Int(1)));
        assert!(!same_value(&Value::Bool(true), &Value::Int(0)));
        assert!(same_value(&Value::Decimal("10.50".into()), &Value::Decimal("10.5".into())));
        assert!(same_value(&Value::Decimal("18446744073709551615".into()), &Value::UInt(u64::MAX)));
        assert!(same_value(&Value::Decimal("-0.00".into()), &Value::Int(0)));
        assert!(!same_value(&Value::Null, &Value::Text(String::new())), "NULL is not the empty string");
        assert!(same_value(&Value::Json("{\"a\": 1, \"b\": [1,2]}".into()), &Value::Json("{\"b\":[1,2],\"a\":1}".into())));
        assert!(!same_value(&Value::Text("a".into()), &Value::Text("A".into())));
        assert!(same_value(&Value::Null, &Value::Null));
    }

    #[test]
    fn json_numbers_compare_by_value_not_spelling() {
        // jsonb re-spells numbers; MySQL keeps the text it was given.
        let j = |s: &str| Value::Json(s.into());
        assert!(same_value(&j(r#"{"n": 1e2, "m": 1.50}"#), &j(r#"{"m": 1.5, "n": 100}"#)));
        assert!(same_value(&j("[1E+2, 0.0, -0]"), &j("[100.000, 0, 0e7]")));
        assert!(same_value(&j("12345678901234567890123456789"), &j("1.2345678901234567890123456789e28")));
        assert!(!same_value(&j("12345678901234567890123456789"), &j("12345678901234567890123456788")), "no float rounding");
        assert!(!same_value(&j("[1, 2]"), &j("[2, 1]")));
        assert!(!same_value(&j(r#"{"a": 1}"#), &j(r#"{"a": "1"}"#)));
        assert!(same_value(&j(r#"{"é": "\u00e9😀", "a": {"b": [null, true]}}"#), &j(r#"{"a":{"b":[null,true]},"\u00e9":"é\ud83d\ude00"}"#)));
        assert!(same_value(&j(r#"{"d": 1, "d": 2}"#), &j(r#"{"d": 2}"#)), "the last duplicate key counts, as in jsonb");
        // A MariaDB JSON column reads back as text.
        assert!(same_value(&Value::Text(r#"{"n":1e2}"#.into()), &j(r#"{"n": 100}"#)));
        // Not JSON, or trailing garbage: never equal to a different text.
        assert!(!same_value(&j("{"), &j("{ ")));
        assert!(!same_value(&j("1 2"), &j("1")));
        assert!(!same_value(&j("01"), &j("1")));
        assert!(!same_value(&j("1."), &j("1")));
        assert!(same_value(&j("1e99999999999"), &j("10e99999999998")), "huge exponents stay exact");
        assert!(!same_value(&j("1e99999999999999999999"), &j("1e99999999999999999999 ")), "exponent overflow: not parsed");
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(!json_equal(&deep, &format!(" {deep}")), "too deep: not parsed, no stack overflow");
    }

    #[test]
    fn plain_text_is_never_compared_as_json() {
        let t = |s: &str| Value::Text(s.into());
        assert!(!same_value(&t("[1,2]"), &t("[1, 2]")));
        assert!(!same_value(&t("1e2"), &t("100")));
    }

    #[test]
    fn uuids_compare_without_letter_case() {
        let t = |s: &str| Value::Text(s.into());
        assert!(same_value(&t("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), &t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")));
        assert!(!same_value(&t("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), &t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12")));
        assert!(!same_value(&t("ABC"), &t("abc")), "other text keeps its case");
        assert!(!same_value(&t("A0EEBC99_9C0B-4EF8-BB6D-6BB9BD380A11"), &t("a0eebc99_9c0b-4ef8-bb6d-6bb9bd380a11")));
    }

    proptest! {
        #[test]
        fn json_equal_never_panics_and_is_reflexive(s in ".{0,40}") {
            let _ = json_equal(&s, &s);
            if serde_json::from_str::<serde_json::Value>(&s).is_ok() {
                prop_assert!(json_equal(&s, &s), "{s:?}");
            }
        }

        #[test]
        fn json_equal_agrees_with_serde_on_integers_and_strings(a in any::<i64>(), b in any::<i64>(), k in "[a-zé😀]{0,5}") {
            let x = format!("{{\"{k}\": [{a}, \"{k}\"]}}");
            let y = format!("{{ \"{k}\" : [ {b} , \"{k}\" ] }}");
            prop_assert_eq!(json_equal(&x, &y), a == b);
        }

        #[test]
        fn same_value_is_symmetric_on_numbers(a in any::<i64>(), b in any::<i64>()) {
            let x = Value::Int(a);
            let y = Value::Decimal(format!("{b}.000"));
            prop_assert_eq!(same_value(&x, &y), same_value(&y, &x));
            prop_assert_eq!(same_value(&x, &y), a == b);
        }
    }
}
