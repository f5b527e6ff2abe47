//! Value ranges of column types, and whether every value of one fits
//! another (`Fit`): the numeric domains (integer bounds, decimal digits and
//! scale) and text/binary lengths that `types` compares in each direction a
//! pair replicates.
//!
//! `Fit::Narrowing` means some source values are outside the destination's
//! range and the destination refuses them (both servers run strict: an
//! out-of-range number, a too long string, an unknown label is an error),
//! so they are quarantined, never altered. `Fit::Lossy` means the
//! destination would alter values without refusing them (rounding the
//! fraction of a number): such a direction is always a problem. Pure.

/// How the values of a source column fit a destination column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Every value fits unchanged.
    Exact,
    /// Some values do not fit and are refused (then quarantined): the text names them.
    Narrowing(String),
    /// Some values would be altered by the destination: the text says how.
    Lossy(String),
}

/// The values a numeric column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    /// Integers in `min..=max`.
    Int { min: i128, max: i128 },
    /// Up to `digits` digits before the point and `scale` after.
    Dec { digits: u32, scale: u32, unsigned: bool },
    /// Postgres `numeric` without precision: any number.
    Any,
}

impl Num {
    fn scale(self) -> Option<u32> {
        match self {
            Num::Int { .. } => Some(0),
            Num::Dec { scale, .. } => Some(scale),
            Num::Any => None,
        }
    }

    /// Inclusive bounds of the integer part (`None`: unbounded).
    fn bounds(self) -> Option<(i128, i128)> {
        match self {
            Num::Int { min, max } => Some((min, max)),
            Num::Dec { digits, unsigned, .. } => {
                let top = 10i128.checked_pow(digits).map_or(i128::MAX, |p| p - 1);
                Some((if unsigned { 0 } else { -top }, top))
            }
            Num::Any => None,
        }
    }

    /// The range in words, for messages.
    pub fn describe(self) -> String {
        match self {
            Num::Int { min, max } => format!("{min} to {max}"),
            Num::Dec { digits, scale, unsigned } => {
                let sign = if unsigned { "non-negative numbers" } else { "numbers" };
                format!("{sign} of up to {digits} digits before the point and {scale} after")
            }
            Num::Any => "any number".into(),
        }
    }
}

/// Integer range of a signed/unsigned integer of `bits`.
pub fn int_range(bits: u32, unsigned: bool) -> Num {
    if unsigned {
        Num::Int { min: 0, max: (1i128 << bits) - 1 }
    } else {
        Num::Int { min: -(1i128 << (bits - 1)), max: (1i128 << (bits - 1)) - 1 }
    }
}

/// Does every value of `src` fit `dst`?
pub fn fit_num(src: Num, dst: Num) -> Fit {
    match (src.scale(), dst.scale()) {
        (None, Some(d)) => return Fit::Lossy(format!("values with more than {d} decimal places would be rounded")),
        (Some(s), Some(d)) if s > d => return Fit::Lossy(format!("values with more than {d} decimal places would be rounded")),
        _ => {}
    }
    if let (Num::Dec { digits: a, unsigned: ua, .. }, Num::Dec { digits: b, unsigned: ub, .. }) = (src, dst) {
        // Compared as digit counts: 10^digits overflows any integer for wide decimals.
        return if a <= b && (ua || !ub) { Fit::Exact } else { Fit::Narrowing(format!("values outside {}", dst.describe())) };
    }
    match (src.bounds(), dst.bounds()) {
        (_, None) => Fit::Exact,
        (None, Some(_)) => Fit::Narrowing(format!("values outside {}", dst.describe())),
        (Some((smin, smax)), Some((dmin, dmax))) if smin >= dmin && smax <= dmax => Fit::Exact,
        (Some(_), Some(_)) => Fit::Narrowing(format!("values outside {}", dst.describe())),
    }
}

/// How long a text or binary value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    Chars(u64),
    Bytes(u64),
    /// Postgres `text`/`bytea`/`varchar`, MySQL LONGTEXT/LONGBLOB/JSON.
    Unbounded,
}

/// Does every text (`text = true`: at most 4 UTF-8 bytes a character) or
/// binary value of length `src` fit `dst`?
pub fn fit_len(src: Len, dst: Len, text: bool) -> Fit {
    let bytes_per_char = if text { 4 } else { 1 };
    let fits = match (src, dst) {
        (_, Len::Unbounded) => true,
        (Len::Unbounded, _) => false,
        (Len::Chars(a), Len::Chars(b)) | (Len::Bytes(a), Len::Bytes(b)) => a <= b,
        (Len::Chars(a), Len::Bytes(b)) => a.saturating_mul(bytes_per_char) <= b,
        (Len::Bytes(a), Len::Chars(b)) => a <= b,
    };
    if fits {
        return Fit::Exact;
    }
    Fit::Narrowing(match dst {
        Len::Chars(n) => format!("values longer than {n} characters"),
        Len::Bytes(n) if text => format!("values longer than {n} bytes in UTF-8"),
        Len::Bytes(n) => format!("values longer than {n} bytes"),
        Len::Unbounded => "no values".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_fit_by_range() {
        let (i8_, u8_, i16_, u16_, i32_) = (int_range(8, false), int_range(8, true), int_range(16, false), int_range(16, true), int_range(32, false));
        assert_eq!(fit_num(u8_, i16_), Fit::Exact);
        assert_eq!(fit_num(i8_, i16_), Fit::Exact);
        assert_eq!(fit_num(u16_, i32_), Fit::Exact);
        assert_eq!(fit_num(i16_, u8_), Fit::Narrowing("values outside 0 to 255".into()));
        assert_eq!(fit_num(u16_, i16_), Fit::Narrowing("values outside -32768 to 32767".into()));
        assert_eq!(fit_num(int_range(64, true), int_range(64, false)), Fit::Narrowing("values outside -9223372036854775808 to 9223372036854775807".into()));
    }

    #[test]
    fn decimals_fit_by_digits_and_scale() {
        let dec = |digits, scale| Num::Dec { digits, scale, unsigned: false };
        assert_eq!(fit_num(dec(10, 2), dec(12, 2)), Fit::Exact);
        assert!(matches!(fit_num(dec(12, 2), dec(10, 2)), Fit::Narrowing(_)));
        assert!(matches!(fit_num(dec(10, 3), dec(12, 2)), Fit::Lossy(_)));
        assert_eq!(fit_num(int_range(32, false), dec(10, 0)), Fit::Exact, "2147483647 has 10 digits");
        assert!(matches!(fit_num(int_range(32, false), dec(9, 0)), Fit::Narrowing(_)));
        assert_eq!(fit_num(dec(4, 0), int_range(16, false)), Fit::Exact, "9999 fits smallint");
        assert!(matches!(fit_num(dec(5, 0), int_range(16, false)), Fit::Narrowing(_)));
        assert!(matches!(fit_num(dec(5, 2), int_range(64, false)), Fit::Lossy(_)));
        assert_eq!(fit_num(int_range(64, true), dec(20, 0)), Fit::Exact);
        assert!(matches!(fit_num(Num::Any, dec(38, 10)), Fit::Lossy(_)));
        assert_eq!(fit_num(dec(38, 10), Num::Any), Fit::Exact);
        assert!(matches!(fit_num(dec(5, 0), Num::Dec { digits: 5, scale: 0, unsigned: true }), Fit::Narrowing(_)));
        assert_eq!(fit_num(dec(70, 0), dec(65, 0)), Fit::Narrowing("values outside numbers of up to 65 digits before the point and 0 after".into()));
    }

    #[test]
    fn lengths_fit_in_characters_or_bytes() {
        assert_eq!(fit_len(Len::Chars(50), Len::Chars(50), true), Fit::Exact);
        assert!(matches!(fit_len(Len::Chars(51), Len::Chars(50), true), Fit::Narrowing(_)));
        assert_eq!(fit_len(Len::Chars(255), Len::Bytes(65_535), true), Fit::Exact);
        assert!(matches!(fit_len(Len::Unbounded, Len::Bytes(65_535), true), Fit::Narrowing(_)));
        assert_eq!(fit_len(Len::Bytes(65_535), Len::Unbounded, true), Fit::Exact);
        assert_eq!(fit_len(Len::Chars(100), Len::Bytes(255), true), Fit::Narrowing("values longer than 255 bytes in UTF-8".into()));
        assert_eq!(fit_len(Len::Bytes(16), Len::Bytes(16), false), Fit::Exact);
    }
}
