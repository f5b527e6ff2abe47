//! The Postgres source against the shared throwaway PG 15: pgoutput events for
//! inserts/updates/deletes/truncate (TOAST values untouched by an update come
//! as `Unchanged`), echo suppression of our own origin (the source delivers
//! it as tandem's, read here through the echo stage), transactions without
//! paired changes as `Idle`, chunking of a large transaction, the slot's
//! `confirmed_flush_lsn` moving only to what was acknowledged (and a restart
//! resuming after it), keepalive `Idle`s letting an idle slot advance, the
//! text form of every supported type as the server sends it, backpressure
//! with a clean shutdown, and SCRAM login.

use crate::support;
use std::time::Duration;
use tandem::config::{Endpoint, Owner, Secret, TableName, TlsMode};
use tandem::model::{Lsn, Op, SourceEvent, SourcePos, Value};
use tandem::schema::{ColumnSchema, PairSchema, ValueKind};
use tandem::echo::{EchoEvents, EchoStage};
use tandem::source::postgres::{identify_system, PostgresSource, PostgresSourceOptions, ReplicationConn};
use tandem::source::EventStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

fn endpoint(db: &str, user: &str, password: Option<&str>) -> Endpoint {
    let pg = &support::servers().pg;
    Endpoint {
        host: pg.host().to_string(),
        port: pg.port(),
        user: user.into(),
        password: password.map(Secret::new),
        database: db.into(),
        tls: TlsMode::Disable,
        ca_file: None,
        client_cert: None,
        client_key: None,
    }
}

fn column(name: &str, kind: ValueKind) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        pg_name: name.into(),
        my_name: name.into(),
        owner: Owner::Both,
        pg_type: String::new(),
        my_type: String::new(),
        pg_kind: kind,
        my_kind: kind,
        pg_generated: false,
        pg_identity_always: false,
        my_generated: false,
        my_on_update: false,
    }
}

/// Pair 0: `public.items (id, body, n)`; the table's column `extra` is not mapped.
fn items_pair() -> PairSchema {
    PairSchema {
        pair: 0,
        name: "items".into(),
        pg_table: TableName { schema: "public".into(), name: "items".into() },
        my_table: TableName { schema: "x".into(), name: "items".into() },
        columns: vec![column("id", ValueKind::Int), column("body", ValueKind::Text), column("n", ValueKind::Int)],
        key: vec![0],
    }
}

/// Table `items` (REPLICA IDENTITY FULL, `body` stored out of line), table
/// `other` (published, not paired), publication and slot named after the db.
async fn setup(db: &support::TestDb) -> tokio_postgres::Client {
    let pg = db.pg().await;
    pg.batch_execute(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, body text, n int, extra int);
         ALTER TABLE items REPLICA IDENTITY FULL;
         ALTER TABLE items ALTER COLUMN body SET STORAGE EXTERNAL;
         CREATE TABLE other (id int PRIMARY KEY);
         CREATE PUBLICATION {0} FOR TABLE items, other;",
        db.name
    ))
    .await
    .unwrap();
    pg
}

fn options(db: &support::TestDb, chunk_rows: usize, status_interval: Duration) -> PostgresSourceOptions {
    PostgresSourceOptions {
        slot: db.name.clone(),
        publication: db.name.clone(),
        origin: format!("tandem_{}", db.name),
        chunk_rows,
        status_interval,
        own_rows: Default::default(),
        heartbeat: Duration::from_secs(1),
        read_timeout: Duration::from_secs(30),
    }
}

struct Running {
    /// The source's channel read through an echo stage of one direction
    /// (no registry): tandem's own transactions come out as `Idle`.
    rx: EchoEvents,
    acked: watch::Sender<SourcePos>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<tandem::Result<()>>,
}

async fn start(db: &support::TestDb, opts: PostgresSourceOptions, start: Lsn, capacity: usize) -> Running {
    start_with(db, opts, start, capacity, vec![items_pair()]).await
}

async fn start_with(
    db: &support::TestDb,
    opts: PostgresSourceOptions,
    start: Lsn,
    capacity: usize,
    pairs: Vec<PairSchema>,
) -> Running {
    let stage = EchoStage::new(tandem::config::Side::Postgres, None, std::sync::Arc::new(pairs.clone()));
    let source = PostgresSource::connect(&endpoint(&db.name, "postgres", None), opts, pairs).await.unwrap();
    let (tx, rx) = mpsc::channel(capacity);
    let (acked, acked_rx) = watch::channel(SourcePos::Postgres(Lsn(0)));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(start, tx, acked_rx, shutdown.clone()));
    Running { rx: stage.events(rx), acked, shutdown, task }
}

impl Running {
    /// Receives events until `commits` Commit events have arrived.
    async fn until_commits(&mut self, commits: usize) -> Vec<SourceEvent> {
        let mut events = Vec::new();
        let mut seen = 0;
        while seen < commits {
            let ev = tokio::time::timeout(WAIT, self.rx.next()).await.expect("events in time").expect("source alive");
            seen += usize::from(matches!(ev, SourceEvent::Commit(_)));
            events.push(ev);
        }
        events
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("stops within 5 s");
        r.expect("task").expect("run ends cleanly");
    }
}

fn commit_lsns(events: &[SourceEvent]) -> Vec<Lsn> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Commit(m) => match m.position {
                SourcePos::Postgres(l) => Some(l),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

async fn current_lsn(pg: &tokio_postgres::Client) -> Lsn {
    let row = pg.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

#[tokio::test]
async fn pg_source_streams_changes_unchanged_toast_truncate_and_skips_own_origin() {
    let db = support::fresh_db("pg_source_stream").await;
    let pg = setup(&db).await;
    let mut conn = ReplicationConn::connect(&endpoint(&db.name, "postgres", None)).await.unwrap();
    let created =
        conn.simple_query(&format!("CREATE_REPLICATION_SLOT \"{}\" LOGICAL pgoutput", db.name)).await.unwrap();
    assert_eq!(created.len(), 1, "{created:?}");
    conn.close().await.unwrap();

    let big: String = (0..2500).map(|i| format!("{i:04}")).collect();
    pg.execute("INSERT INTO items VALUES (1, 'a', 1, 0), (2, $1, 2, 0)", &[&big]).await.unwrap();
    pg.execute("UPDATE items SET n = 20 WHERE id = 2", &[]).await.unwrap();
    pg.execute("DELETE FROM items WHERE id = 1", &[]).await.unwrap();
    let before_unpaired = current_lsn(&pg).await;
    pg.execute("INSERT INTO other VALUES (1)", &[]).await.unwrap();
    let after_unpaired = current_lsn(&pg).await;
    let origin = format!("tandem_{}", db.name);
    pg.execute("SELECT pg_replication_origin_create($1)", &[&origin]).await.unwrap();
    pg.execute("SELECT pg_replication_origin_session_setup($1)", &[&origin]).await.unwrap();
    pg.execute("INSERT INTO items VALUES (3, 'echo', 3, 0)", &[]).await.unwrap();
    pg.execute("SELECT pg_replication_origin_session_reset()", &[]).await.unwrap();
    let after_echo = current_lsn(&pg).await;
    pg.execute("TRUNCATE items", &[]).await.unwrap();

    let mut run = start(&db, options(&db, 100, Duration::from_secs(10)), Lsn(0), 64).await;
    let events = run.until_commits(4).await;
    run.stop().await;

    let txns: Vec<&SourceEvent> = events.iter().filter(|e| !matches!(e, SourceEvent::Idle(_))).collect();
    let changes = |i: usize| match txns.get(i) {
        Some(SourceEvent::Changes(c)) => c.clone(),
        other => panic!("expected Changes at {i}, got {other:?}\nall: {events:#?}"),
    };
    assert_eq!(txns.len(), 12, "4 transactions of Begin, Changes, Commit: {events:#?}");
    let inserts = changes(1);
    assert_eq!(inserts.len(), 2);
    assert_eq!(inserts[0].op, Op::Insert);
    assert_eq!(inserts[0].after, Some(vec![Value::Int(1), Value::Text("a".into()), Value::Int(1)]));
    assert_eq!(inserts[1].key, vec![Value::Int(2)]);

    let update = &changes(4)[0];
    assert_eq!(update.op, Op::Update);
    assert_eq!(update.key, vec![Value::Int(2)]);
    assert_eq!(update.after, Some(vec![Value::Int(2), Value::Unchanged, Value::Int(20)]), "TOAST value not sent");
    assert_eq!(update.before, Some(vec![Value::Int(2), Value::Text(big.clone()), Value::Int(2)]), "FULL old row");

    let delete = &changes(7)[0];
    assert_eq!(delete.op, Op::Delete);
    assert_eq!(delete.key, vec![Value::Int(1)]);
    assert_eq!(delete.before, Some(vec![Value::Int(1), Value::Text("a".into()), Value::Int(1)]));

    let truncate = changes(10);
    assert_eq!(truncate.len(), 1);
    assert_eq!((truncate[0].op, truncate[0].key.is_empty()), (Op::Truncate, true));

    // The echo was numbered 4 by the source (its transaction went on as an Idle).
    for (i, seq) in [(0, 1), (3, 2), (6, 3), (9, 5)] {
        assert!(matches!(txns[i], SourceEvent::Begin { txn_seq, .. } if *txn_seq == seq));
        let SourceEvent::Commit(meta) = txns[i + 2] else { panic!("commit expected: {events:#?}") };
        assert_eq!((meta.txn_seq, meta.origin.as_deref()), (seq, None));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        assert!((now - meta.commit_ts).abs() < 600_000_000, "commit_ts is µs since 1970: {}", meta.commit_ts);
    }
    // The unpaired and the echoed transactions come as Idle at their commit end.
    let idles: Vec<Lsn> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Idle(SourcePos::Postgres(l)) => Some(*l),
            _ => None,
        })
        .collect();
    assert!(idles.iter().any(|l| *l > before_unpaired && *l <= after_unpaired), "unpaired txn idle: {idles:?}");
    assert!(idles.iter().any(|l| *l > after_unpaired && *l <= after_echo), "echo txn idle: {idles:?}");
    let lsns = commit_lsns(&events);
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "{lsns:?}");
}

async fn confirmed_flush(pg: &tokio_postgres::Client, slot: &str) -> Lsn {
    let row = pg
        .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

async fn wait_confirmed(pg: &tokio_postgres::Client, slot: &str, want: Lsn) {
    let t0 = std::time::Instant::now();
    loop {
        let got = confirmed_flush(pg, slot).await;
        assert!(got <= want, "confirmed_flush_lsn {got} went beyond the acknowledged {want}");
        if got == want {
            return;
        }
        assert!(t0.elapsed() < WAIT, "confirmed_flush_lsn stuck at {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pg_source_confirms_only_what_was_acknowledged_and_resumes_after_it() {
    let db = support::fresh_db("pg_source_ack").await;
    let pg = setup(&db).await;
    pg.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&db.name]).await.unwrap();
    let initial = confirmed_flush(&pg, &db.name).await;
    for i in 1..=3i64 {
        pg.execute("INSERT INTO items VALUES ($1, 'x', 0, 0)", &[&i]).await.unwrap();
    }

    let opts = options(&db, 100, Duration::from_millis(100));
    let mut run = start(&db, opts.clone(), Lsn(0), 64).await;
    let lsns = commit_lsns(&run.until_commits(3).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(confirmed_flush(&pg, &db.name).await, initial, "nothing acknowledged yet");
    run.acked.send(SourcePos::Postgres(lsns[0])).unwrap();
    wait_confirmed(&pg, &db.name, lsns[0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(confirmed_flush(&pg, &db.name).await, lsns[0], "status updates never go beyond the ack");
    run.stop().await;

    // A restart from the checkpoint delivers the two unacknowledged transactions.
    let mut run = start(&db, opts, lsns[0], 64).await;
    let again = commit_lsns(&run.until_commits(2).await);
    assert_eq!(again, lsns[1..].to_vec());
    run.acked.send(SourcePos::Postgres(lsns[2])).unwrap();
    wait_confirmed(&pg, &db.name, lsns[2]).await;
    run.stop().await;
}

#[tokio::test]
async fn pg_source_chunks_large_transactions_and_stops_cleanly_when_backpressured() {
    let db = support::fresh_db("pg_source_chunks").await;
    let pg = setup(&db).await;
    pg.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&db.name]).await.unwrap();
    pg.execute("INSERT INTO items SELECT g, 'r', g, 0 FROM generate_series(1, 2500) g", &[]).await.unwrap();

    let mut run = start(&db, options(&db, 1000, Duration::from_millis(100)), Lsn(0), 1).await;
    let events = run.until_commits(1).await;
    let sizes: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Changes(c) => Some(c.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);

    // Fill the channel and stop while the source waits for room.
    pg.execute("INSERT INTO items SELECT g, 'r', g, 0 FROM generate_series(3001, 6000) g", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;
}

#[tokio::test]
async fn pg_source_scram_login() {
    let db = support::fresh_db("pg_source_scram").await;
    let ep = endpoint(&db.name, support::SCRAM_USER, Some(support::SCRAM_PASSWORD));
    let mut conn = ReplicationConn::connect(&ep).await.unwrap();
    let id = identify_system(&mut conn).await.unwrap();
    assert_eq!(id.database.as_deref(), Some(db.name.as_str()));
    conn.close().await.unwrap();

    let wrong = endpoint(&db.name, support::SCRAM_USER, Some("wrong"));
    match ReplicationConn::connect(&wrong).await {
        Err(tandem::Error::PgServer { code, .. }) => assert_eq!(code, "28P01"),
        other => panic!("expected a password failure, got {other:?}"),
    }
    let missing = endpoint(&db.name, support::SCRAM_USER, None);
    let err = ReplicationConn::connect(&missing).await.unwrap_err().to_string();
    assert!(err.contains("password"), "{err}");
}

#[tokio::test]
async fn pg_source_idle_keepalives_let_the_slot_advance_past_unpublished_writes() {
    let db = support::fresh_db("pg_source_idle").await;
    let pg = setup(&db).await;
    pg.batch_execute("CREATE TABLE quiet (id int PRIMARY KEY)").await.unwrap();
    pg.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&db.name]).await.unwrap();
    for i in 0..3 {
        pg.execute("INSERT INTO quiet VALUES ($1)", &[&i]).await.unwrap();
    }
    let target = current_lsn(&pg).await;

    let mut run = start(&db, options(&db, 100, Duration::from_millis(100)), Lsn(0), 64).await;
    let idle = loop {
        let ev = tokio::time::timeout(WAIT, run.rx.next()).await.expect("an Idle in time").expect("source alive");
        match ev {
            SourceEvent::Idle(SourcePos::Postgres(l)) if l >= target => break l,
            SourceEvent::Idle(_) => {}
            other => panic!("only Idle expected for unpublished writes, got {other:?}"),
        }
    };
    run.acked.send(SourcePos::Postgres(idle)).unwrap();
    wait_confirmed(&pg, &db.name, idle).await;
    run.stop().await;
}

fn all_types_pair() -> PairSchema {
    let names = [
        "id", "b", "i2", "i8", "o", "n", "u", "f4", "f8", "t", "vc", "c", "by", "d", "tm", "ts", "tz", "j", "jb", "uu",
        "m",
    ];
    PairSchema {
        pair: 5,
        name: "alltypes".into(),
        pg_table: TableName { schema: "public".into(), name: "alltypes".into() },
        my_table: TableName { schema: "x".into(), name: "alltypes".into() },
        columns: names.iter().map(|n| column(n, ValueKind::Text)).collect(),
        key: vec![0],
    }
}

#[tokio::test]
async fn pg_source_decodes_every_supported_type_as_the_server_prints_it() {
    let db = support::fresh_db("pg_source_types").await;
    let pg = setup(&db).await;
    pg.batch_execute(&format!(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE alltypes (id int PRIMARY KEY, b boolean, i2 smallint, i8 bigint, o oid, n numeric(12,2),
             u numeric(20,0), f4 real, f8 double precision, t text, vc varchar(10), c char(4), by bytea, d date,
             tm time, ts timestamp(6), tz timestamptz, j json, jb jsonb, uu uuid, m mood);
         ALTER PUBLICATION {} ADD TABLE alltypes;",
        db.name
    ))
    .await
    .unwrap();
    pg.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&db.name]).await.unwrap();
    // The writer's own time zone must not matter.
    pg.batch_execute(
        r#"SET TimeZone = 'Asia/Kolkata';
           INSERT INTO alltypes VALUES (1, true, -32768, 9223372036854775807, 4294967295, -12.50,
             18446744073709551615, 1.5, 'NaN', 'héllo', 'v', 'ab', '\x00ff', '2024-02-29', '13:14:15.5',
             '2024-05-06 07:08:09.123456', '2024-05-06 12:38:09.123456+05:30', '{"a": 1}', '{"b":2}',
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy');
           INSERT INTO alltypes (id) VALUES (2);"#,
    )
    .await
    .unwrap();

    let mut run = start_with(&db, options(&db, 100, Duration::from_secs(10)), Lsn(0), 64, vec![all_types_pair()]).await;
    let events = run.until_commits(1).await;
    run.stop().await;
    let rows: Vec<Vec<Value>> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Changes(c) => Some(c.iter().filter_map(|c| c.after.clone()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(rows.len(), 2, "{events:#?}");
    let ts = tandem::model::value::parse_timestamp("2024-05-06 07:08:09.123456").unwrap();
    let expected = vec![
        Value::Int(1),
        Value::Bool(true),
        Value::Int(-32768),
        Value::Int(i64::MAX),
        Value::Int(4_294_967_295),
        Value::Decimal("-12.50".into()),
        Value::Decimal("18446744073709551615".into()),
        Value::Float(1.5),
        Value::Float(f64::NAN),
        Value::Text("héllo".into()),
        Value::Text("v".into()),
        Value::Text("ab".into()), // char(4): the blank padding is not data
        Value::Bytes(vec![0, 0xff]),
        Value::Date(tandem::model::value::parse_date("2024-02-29").unwrap()),
        Value::Time(((13 * 60 + 14) * 60 + 15) * 1_000_000 + 500_000),
        Value::Timestamp(ts),
        Value::Timestamp(ts),
        Value::Json(r#"{"a": 1}"#.into()),
        Value::Json(r#"{"b": 2}"#.into()),
        Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        Value::Text("happy".into()),
    ];
    for (i, (got, want)) in rows[0].iter().zip(&expected).enumerate() {
        match (got, want) {
            (Value::Float(g), Value::Float(w)) if w.is_nan() => assert!(g.is_nan(), "column {i}: {got:?}"),
            _ => assert_eq!(got, want, "column {i}"),
        }
    }
    assert_eq!(rows[0].len(), expected.len());
    assert_eq!(rows[1][0], Value::Int(2));
    assert!(rows[1][1..].iter().all(|v| *v == Value::Null), "{:?}", rows[1]);
}
