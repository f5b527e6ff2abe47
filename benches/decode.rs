//! Micro-benchmarks (criterion) of tandem's hot pure functions on the
//! benchmark's `items` row (7 columns: bigint, int, varchar, int,
//! numeric(12,2), text, timestamp(6)):
//! - `pgoutput::decode` of one Insert message;
//! - `values::decode_text` of the row's 7 text values;
//! - `Normalizer::handle` of one decoded Insert (pgoutput tuple → `Change`);
//! - `plan::plan` of 1000 upserts (changes → row operations).
//!
//! The MySQL SQL rendering (`apply::mysql_sql::render_run`) is private to the
//! crate, so it is not measured here; exporting it would let one bench add it.
//! Run: `cargo bench --bench decode` (add `-- --quick` for a short run).

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tandem::config::{Owner, TableName};
use tandem::model::{Change, Lsn, Op, Value};
use tandem::schema::{pg_kind, ColumnSchema, PairSchema};
use tandem::source::postgres::pgoutput::{self, PgOutputMessage};
use tandem::codec::pg_text as values;
use tandem::source::postgres::Normalizer;

const REL_ID: u32 = 16384;

/// (name, Postgres type name, type oid, typmod) of the `items` columns.
const COLUMNS: [(&str, &str, u32, i32); 7] = [
    ("id", "bigint", values::INT8, -1),
    ("account_id", "integer", values::INT4, -1),
    ("sku", "character varying(64)", values::VARCHAR, 68),
    ("qty", "integer", values::INT4, -1),
    ("price", "numeric(12,2)", values::NUMERIC, (12 << 16 | 2) + 4),
    ("note", "text", values::TEXT, -1),
    ("updated_at", "timestamp(6) without time zone", values::TIMESTAMP, 6),
];

/// The text values of row `g`, as W1 of the end-to-end benchmark writes them.
fn row_text(g: u64) -> [String; 7] {
    [
        g.to_string(),
        (g % 1000).to_string(),
        format!("SKU-{g}"),
        (g % 7).to_string(),
        format!("{}.{:02}", (g % 10000) / 100, g % 100),
        format!("note {g}"),
        "2024-01-12 13:46:40.123456".to_string(),
    ]
}

fn cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn relation_message() -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'R');
    b.put_u32(REL_ID);
    cstr(&mut b, "public");
    cstr(&mut b, "items");
    b.put_u8(b'f'); // REPLICA IDENTITY FULL
    b.put_i16(COLUMNS.len() as i16);
    for (i, (name, _, oid, typmod)) in COLUMNS.iter().enumerate() {
        b.put_u8(u8::from(i == 0));
        cstr(&mut b, name);
        b.put_u32(*oid);
        b.put_i32(*typmod);
    }
    b.freeze()
}

fn begin_message() -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'B');
    b.put_u64(0x1_0000_0000);
    b.put_i64(0);
    b.put_u32(1000);
    b.freeze()
}

fn insert_message(g: u64) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'I');
    b.put_u32(REL_ID);
    b.put_u8(b'N');
    b.put_i16(COLUMNS.len() as i16);
    for v in row_text(g) {
        b.put_u8(b't');
        b.put_i32(v.len() as i32);
        b.put_slice(v.as_bytes());
    }
    b.freeze()
}

fn items_schema() -> PairSchema {
    let my_types = ["bigint(20)", "int(11)", "varchar(64)", "int(11)", "decimal(12,2)", "text", "datetime(6)"];
    let columns = COLUMNS
        .iter()
        .zip(my_types)
        .map(|((name, pg_type, _, _), my_type)| ColumnSchema {
            name: name.to_string(),
            pg_name: name.to_string(),
            my_name: name.to_string(),
            owner: Owner::Both,
            pg_type: pg_type.to_string(),
            my_type: my_type.to_string(),
            pg_kind: pg_kind(pg_type),
            my_kind: tandem::schema::my_kind(my_type),
            pg_generated: false,
            pg_identity_always: false,
            my_generated: false,
        })
        .collect();
    PairSchema {
        pair: 0,
        name: "items".into(),
        pg_table: TableName { schema: "public".into(), name: "items".into() },
        my_table: TableName { schema: "bench".into(), name: "items".into() },
        columns,
        key: vec![0],
    }
}

/// The row's values as the normalizer produces them.
fn row_values(g: u64) -> Vec<Value> {
    row_text(g).iter().zip(COLUMNS).map(|(t, (_, _, oid, _))| values::decode_text(oid, t.as_bytes()).expect("valid text")).collect()
}

fn bench_pgoutput(c: &mut Criterion) {
    let msg = insert_message(123_456);
    let mut g = c.benchmark_group("pgoutput");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode Insert, 7 columns", |b| b.iter(|| pgoutput::decode(black_box(&msg)).expect("decodes")));
    g.finish();
}

fn bench_values(c: &mut Criterion) {
    let texts = row_text(123_456);
    let mut g = c.benchmark_group("values");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_text, one 7-column row", |b| {
        b.iter(|| {
            for (t, (_, _, oid, _)) in texts.iter().zip(COLUMNS) {
                black_box(values::decode_text(oid, black_box(t.as_bytes())).expect("valid"));
            }
        })
    });
    g.bench_function("decode_text numeric", |b| b.iter(|| values::decode_text(values::NUMERIC, black_box(b"1234.56"))));
    g.bench_function("decode_text timestamp", |b| {
        b.iter(|| values::decode_text(values::TIMESTAMP, black_box(b"2024-01-12 13:46:40.123456")))
    });
    g.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let mut n = Normalizer::new(vec![items_schema()], "tandem_bench".into(), 2000, Lsn(0));
    let mut out = Vec::new();
    for m in [relation_message(), begin_message()] {
        n.handle(pgoutput::decode(&m).expect("decodes"), &mut out).expect("handled");
    }
    let msg = insert_message(123_456);
    let decoded = pgoutput::decode(&msg).expect("decodes");
    assert!(matches!(decoded, PgOutputMessage::Insert(_)));
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(1));
    g.bench_function("Insert → Change, 7 columns", |b| {
        b.iter_batched(
            || decoded.clone(),
            |m| {
                n.handle(m, &mut out).expect("handled");
                // The normalizer emits a chunk every 2000 rows: keep `out` small.
                if out.len() > 16 {
                    out.clear();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("wire bytes → Change (decode + normalize)", |b| {
        b.iter(|| {
            n.handle(pgoutput::decode(black_box(&msg)).expect("decodes"), &mut out).expect("handled");
            if out.len() > 16 {
                out.clear();
            }
        })
    });
    g.finish();
}

fn bench_plan(c: &mut Criterion) {
    let schemas = vec![items_schema()];
    let changes: Vec<Change> = (1..=1000u64)
        .map(|g| {
            let row = row_values(g);
            Change { pair: 0, op: Op::Insert, key: vec![row[0].clone()], before: None, after: Some(row) }
        })
        .collect();
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(changes.len() as u64));
    g.bench_function("plan 1000 upserts", |b| b.iter(|| tandem::apply::plan::plan(black_box(&changes), &schemas)));
    g.finish();
}

criterion_group!(benches, bench_pgoutput, bench_values, bench_normalize, bench_plan);
criterion_main!(benches);
