//! Tests of rows-event decoding from raw bytes: a test-side encoder of
//! TABLE_MAP and rows events (v1 and v2; written from the binlog format
//! documentation) for integer, double, VARCHAR, BLOB, DATETIME2, ENUM and
//! YEAR columns; valid events decode to the encoded values; and the property
//! tests (arbitrary bytes, valid table maps with arbitrary row bytes, mutated
//! valid events) run the decoder budget of `source::decoder_cases` and must
//! return `Ok` or `Err`, never panic.

use crate::fuzzing::{binlog_rows, decode_binlog_rows};
use crate::model::{Op, Value};
use crate::source::{decoder_config, returns};
use proptest::prelude::*;

/// A column type the encoder knows, with its TABLE_MAP metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Tiny,
    Long,
    LongLong,
    Double,
    /// VARCHAR(n): 1-byte length prefix below 256, else 2.
    Varchar(u16),
    /// BLOB with an n-byte length prefix.
    Blob(u8),
    /// DATETIME2 with fractional-second precision.
    DateTime2(u8),
    /// ENUM('a','b','c') as STRING with real type ENUM.
    Enum,
    Year,
}

impl Col {
    fn type_code(self) -> u8 {
        match self {
            Col::Tiny => 1,
            Col::Long => 3,
            Col::LongLong => 8,
            Col::Double => 5,
            Col::Varchar(_) => 15,
            Col::Blob(_) => 252,
            Col::DateTime2(_) => 18,
            Col::Enum => 254,
            Col::Year => 13,
        }
    }
    fn meta(self, out: &mut Vec<u8>) {
        match self {
            Col::Double => out.push(8),
            Col::Varchar(n) => out.extend_from_slice(&n.to_le_bytes()),
            Col::Blob(n) => out.push(n),
            Col::DateTime2(fsp) => out.push(fsp),
            Col::Enum => out.extend_from_slice(&[247, 1]),
            _ => {}
        }
    }
}

/// A value of a column, as the encoder writes it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    /// (year, month, day, hour, minute, second, micros)
    DateTime(u16, u8, u8, u8, u8, u8, u32),
    EnumIndex(u8),
    Year(u8),
}

fn lenenc(out: &mut Vec<u8>, n: usize) {
    assert!(n < 251);
    out.push(n as u8);
}

fn bitmap(bits: &[bool]) -> Vec<u8> {
    let mut b = vec![0u8; bits.len().div_ceil(8)];
    for (i, &on) in bits.iter().enumerate() {
        if on {
            b[i / 8] |= 1 << (i % 8);
        }
    }
    b
}

fn table_map(cols: &[Col]) -> Vec<u8> {
    let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0]; // table id, flags
    for name in ["db", "t"] {
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.push(0);
    }
    lenenc(&mut b, cols.len());
    b.extend(cols.iter().map(|c| c.type_code()));
    let mut meta = Vec::new();
    for c in cols {
        c.meta(&mut meta);
    }
    lenenc(&mut b, meta.len());
    b.extend_from_slice(&meta);
    b.extend(bitmap(&vec![true; cols.len()]));
    b
}

fn cell(out: &mut Vec<u8>, col: Col, v: &Cell) {
    match (col, v) {
        (Col::Tiny, Cell::Int(i)) => out.push(*i as u8),
        (Col::Long, Cell::Int(i)) => out.extend_from_slice(&(*i as i32).to_le_bytes()),
        (Col::LongLong, Cell::Int(i)) => out.extend_from_slice(&i.to_le_bytes()),
        (Col::Double, Cell::Double(d)) => out.extend_from_slice(&d.to_le_bytes()),
        (Col::Varchar(n), Cell::Bytes(s)) => {
            if n < 256 {
                out.push(s.len() as u8);
            } else {
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            }
            out.extend_from_slice(s);
        }
        (Col::Blob(n), Cell::Bytes(s)) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes()[..n as usize]);
            out.extend_from_slice(s);
        }
        (Col::DateTime2(fsp), &Cell::DateTime(y, mo, d, h, mi, s, us)) => {
            // 1 sign bit, 17 bits year*13+month, 5 day, 5 hour, 6 minute, 6 second; big-endian.
            let ym = y as u64 * 13 + mo as u64;
            let packed = (1u64 << 39) | (ym << 22) | ((d as u64) << 17) | ((h as u64) << 12) | ((mi as u64) << 6) | s as u64;
            out.extend_from_slice(&packed.to_be_bytes()[3..]);
            let bytes = fsp.div_ceil(2) as usize;
            let frac = us / 10u32.pow(6 - 2 * bytes as u32);
            out.extend_from_slice(&frac.to_be_bytes()[4 - bytes..]);
        }
        (Col::Enum, Cell::EnumIndex(i)) => out.push(*i),
        (Col::Year, Cell::Year(y)) => out.push(*y),
        (c, v) => panic!("encoder: {v:?} in a {c:?} column"),
    }
}

fn image(out: &mut Vec<u8>, cols: &[Col], row: &[Cell]) {
    out.extend(bitmap(&row.iter().map(|v| *v == Cell::Null).collect::<Vec<_>>()));
    for (c, v) in cols.iter().zip(row) {
        if *v != Cell::Null {
            cell(out, *c, v);
        }
    }
}

/// A rows event body: `kind` 23/24/25 (v1) or 30/31/32 (v2); update rows are (before, after).
fn rows_event(kind: u8, cols: &[Col], rows: &[Vec<Cell>]) -> Vec<u8> {
    let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0];
    if kind >= 30 {
        b.extend_from_slice(&2u16.to_le_bytes()); // no extra data
    }
    lenenc(&mut b, cols.len());
    let all = bitmap(&vec![true; cols.len()]);
    b.extend_from_slice(&all);
    let update = kind == 24 || kind == 31;
    if update {
        b.extend_from_slice(&all);
    }
    for pair in rows.chunks(if update { 2 } else { 1 }) {
        for r in pair {
            image(&mut b, cols, r);
        }
    }
    b
}

fn arb_col() -> impl Strategy<Value = Col> {
    prop_oneof![
        Just(Col::Tiny),
        Just(Col::Long),
        Just(Col::LongLong),
        Just(Col::Double),
        prop_oneof![Just(20u16), Just(255), Just(300)].prop_map(Col::Varchar),
        (1u8..=4).prop_map(Col::Blob),
        (0u8..=6).prop_map(Col::DateTime2),
        Just(Col::Enum),
        Just(Col::Year),
    ]
}

fn arb_cell(col: Col, nullable: bool) -> BoxedStrategy<Cell> {
    let value = match col {
        Col::Tiny => (-128i64..128).prop_map(Cell::Int).boxed(),
        Col::Long => any::<i32>().prop_map(|i| Cell::Int(i as i64)).boxed(),
        Col::LongLong => any::<i64>().prop_map(Cell::Int).boxed(),
        Col::Double => any::<f64>().prop_map(|d| Cell::Double(if d.is_nan() { 0.5 } else { d })).boxed(),
        Col::Varchar(n) => "[a-zé😀]{0,5}".prop_map(move |s| Cell::Bytes(s.into_bytes()[..].iter().copied().take(n.min(20) as usize).collect())).boxed(),
        Col::Blob(_) => prop::collection::vec(any::<u8>(), 0..20).prop_map(Cell::Bytes).boxed(),
        Col::DateTime2(fsp) => (1000u16..=9999, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60, 0u32..1_000_000)
            .prop_map(move |(y, mo, d, h, mi, s, us)| {
                let keep = 10u32.pow(6 - fsp as u32);
                Cell::DateTime(y, mo, d, h, mi, s, us / keep * keep)
            })
            .boxed(),
        Col::Enum => (1u8..=3).prop_map(Cell::EnumIndex).boxed(),
        Col::Year => (1u8..=255).prop_map(Cell::Year).boxed(),
    };
    if nullable {
        prop_oneof![1 => Just(Cell::Null), 6 => value].boxed()
    } else {
        value
    }
}

/// (event kind, columns, rows): the first column is the key and never NULL.
fn arb_event() -> impl Strategy<Value = (u8, Vec<Col>, Vec<Vec<Cell>>)> {
    (prop::sample::select(vec![23u8, 24, 25, 30, 31, 32]), prop::collection::vec(arb_col(), 1..6)).prop_flat_map(|(kind, cols)| {
        let row = cols
            .iter()
            .enumerate()
            .map(|(i, &c)| arb_cell(c, i > 0))
            .collect::<Vec<_>>();
        let n = if kind == 24 || kind == 31 { 2 } else { 1 };
        (Just(kind), Just(cols), prop::collection::vec(row, n..=n * 3).prop_map(move |mut rows| {
            rows.truncate(rows.len() / n * n);
            rows
        }))
    })
}

/// What the decoder should give for a cell (codecs as in `fuzzing::codec_of`).
fn expected(col: Col, i: usize, v: &Cell) -> Option<Value> {
    Some(match (col, v) {
        (_, Cell::Null) => Value::Null,
        (Col::Tiny, Cell::Int(x)) if i % 2 == 1 => Value::Int(*x as u8 as i64),
        (Col::Long, Cell::Int(x)) if i % 2 == 1 => Value::Int(*x as u32 as i64),
        (Col::LongLong, Cell::Int(x)) if i % 2 == 1 => Value::UInt(*x as u64),
        (_, Cell::Int(x)) => Value::Int(*x),
        (_, Cell::Double(d)) => Value::Float(*d),
        (Col::Blob(_), Cell::Bytes(b)) => Value::Bytes(b.clone()),
        (Col::Varchar(_), Cell::Bytes(b)) if i % 2 == 0 => Value::Text(String::from_utf8(b.clone()).ok()?),
        (Col::Enum, Cell::EnumIndex(k)) => Value::Text(["a", "b", "c"][*k as usize - 1].to_string()),
        _ => return None,
    })
}

#[test]
fn valid_events_decode_to_their_values() {
    let cols = [Col::LongLong, Col::Long, Col::Varchar(300), Col::Blob(2), Col::Enum];
    let r1 = vec![Cell::Int(7), Cell::Int(-1), Cell::Bytes(b"x".to_vec()), Cell::Bytes(vec![0, 255]), Cell::EnumIndex(2)];
    let r2 = vec![Cell::Int(7), Cell::Null, Cell::Null, Cell::Bytes(vec![]), Cell::EnumIndex(3)];
    let changes = decode_binlog_rows(&table_map(&cols), 31, &rows_event(31, &cols, &[r1, r2])).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].op, Op::Update);
    assert_eq!(changes[0].key, vec![Value::Int(7)]);
    let before = changes[0].before.as_ref().unwrap();
    assert_eq!(before[1], Value::Int(4_294_967_295), "column 1 decodes as unsigned");
    assert_eq!(before[4], Value::Text("b".into()));
    assert_eq!(changes[0].after.as_ref().unwrap()[2], Value::Null);
}

#[test]
fn truncated_table_map_metadata_is_an_error_not_a_panic() {
    let cols = [Col::LongLong, Col::Varchar(300)];
    let mut tme = table_map(&cols);
    // Drop the VARCHAR's 2 metadata bytes: metadata length 0, then the null bitmap.
    let at = tme.len() - 1 - 3;
    tme.splice(at..at + 3, [0u8]);
    let rows = rows_event(30, &cols, &[vec![Cell::Int(1), Cell::Bytes(b"a".to_vec())]]);
    let err = decode_binlog_rows(&tme, 30, &rows).unwrap_err().to_string();
    assert!(err.contains("metadata"), "{err}");
}

#[test]
fn an_image_of_no_column_is_an_error_not_endless_empty_rows() {
    // Found by the property tests: a zero columns-present bitmap made every row
    // take no bytes, and decoding yielded empty rows until memory ran out.
    let cols = [Col::Tiny];
    let mut body = vec![42, 0, 0, 0, 0, 0, 1, 0, 1, 0];
    body.extend_from_slice(&[0, 0, 0, 0]);
    let err = decode_binlog_rows(&table_map(&cols), 23, &body).unwrap_err().to_string();
    assert!(err.contains("no column"), "{err}");
    let err = decode_binlog_rows(&table_map(&cols), 23, &[42, 0, 0, 0, 0, 0, 1, 0, 2, 3, 0]).unwrap_err().to_string();
    assert!(err.contains("rows event has 2 columns"), "{err}");
}

#[test]
fn a_decimal_whose_scale_exceeds_its_precision_is_an_error_not_an_abort() {
    // Found by the property tests: mysql_common sizes a DECIMAL from precision − scale
    // and asked for exabytes (an allocation failure aborts the process).
    let mut tme = vec![42, 0, 0, 0, 0, 0, 1, 0];
    for name in ["db", "t"] {
        tme.push(name.len() as u8);
        tme.extend_from_slice(name.as_bytes());
        tme.push(0);
    }
    tme.extend_from_slice(&[1, 246, 2, 10, 20]);
    tme.extend(bitmap(&[true]));
    let body = [42, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    let err = decode_binlog_rows(&tme, 23, &body).unwrap_err().to_string();
    assert!(err.contains("DECIMAL(10,20)"), "{err}");
}

proptest! {
    #![proptest_config(decoder_config(100))]
    #[test]
    fn valid_events_round_trip((kind, cols, rows) in arb_event()) {
        let changes = returns(|| decode_binlog_rows(&table_map(&cols), kind, &rows_event(kind, &cols, &rows)))?;
        let changes = changes.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let per = if kind == 24 || kind == 31 { 2 } else { 1 };
        prop_assert_eq!(changes.len(), rows.len() / per);
        for (c, chunk) in changes.iter().zip(rows.chunks(per)) {
            let image = if kind == 25 || kind == 32 { c.before.as_ref() } else { c.after.as_ref() };
            let image = image.expect("image");
            let source = chunk.last().expect("row");
            for (i, (col, v)) in cols.iter().zip(source).enumerate() {
                if let Some(want) = expected(*col, i, v) {
                    prop_assert_eq!(&image[i], &want, "column {} ({:?})", i, col);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(decoder_config(300))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let _ = returns(|| binlog_rows(&bytes))?;
    }
}

proptest! {
    #![proptest_config(decoder_config(250))]
    #[test]
    fn valid_table_maps_with_arbitrary_row_bytes_never_panic(
        cols in prop::collection::vec(arb_col(), 1..6),
        kind in prop::sample::select(crate::fuzzing::ROWS_EVENT_TYPES.to_vec()),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut rows = vec![42, 0, 0, 0, 0, 0, 1, 0];
        if kind >= 30 {
            rows.extend_from_slice(&2u16.to_le_bytes());
        }
        rows.extend(tail);
        let _ = returns(|| decode_binlog_rows(&table_map(&cols), kind, &rows))?;
    }
}

proptest! {
    #![proptest_config(decoder_config(350))]
    #[test]
    fn mutated_valid_events_never_panic(
        (kind, cols, rows) in arb_event(),
        muts in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut tme = table_map(&cols);
        let mut body = rows_event(kind, &cols, &rows);
        for (in_tme, at, byte, how) in muts {
            let target = if in_tme { &mut tme } else { &mut body };
            if target.is_empty() {
                continue;
            }
            let i = at.index(target.len());
            match how {
                0 => target[i] = byte,
                1 => target.truncate(i),
                _ => target.insert(i, byte),
            }
        }
        let _ = returns(|| decode_binlog_rows(&tme, kind, &body))?;
    }
}

#[test]
fn a_mysql_8_partial_json_update_event_stops_the_direction_instead_of_being_half_applied() {
    // PARTIAL_UPDATE_ROWS_EVENT (39, binlog_row_value_options = PARTIAL_JSON): the v2 update
    // layout, whose after-images carry JSON diffs tandem cannot apply faithfully.
    let cols = [Col::LongLong, Col::Blob(2)];
    let body = rows_event(31, &cols, &[vec![Cell::Int(1), Cell::Bytes(b"{}".to_vec())], vec![Cell::Int(1), Cell::Bytes(b"{}".to_vec())]]);
    match decode_binlog_rows(&table_map(&cols), 39, &body) {
        Err(e @ crate::Error::Unsupported(_)) => {
            assert!(e.halts_direction(), "{e}");
            assert!(e.to_string().contains("partial JSON"), "{e}");
        }
        other => panic!("a partial JSON update must stop the direction, got {other:?}"),
    }
}
