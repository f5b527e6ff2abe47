//! The MariaDB binlog source against the shared throwaway MariaDB: whole
//! transactions in chunks, values of every supported type, binlog rotation,
//! echo suppression (session server_id and marker row: the source delivers
//! such transactions as tandem's, read here through the echo stage), DDL, and resuming from
//! a saved GTID position delivers exactly the transactions after it.

use crate::support::{fresh_db, servers, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;
use tandem::config::{Endpoint, Owner, TableName, TlsMode};
use tandem::model::{BinlogPos, Change, Op, SourceEvent, SourcePos, TxnMeta, Value};
use tandem::schema::{my_kind, ColumnSchema, PairSchema, ValueKind};
use tandem::echo::{EchoEvents, EchoStage};
use tandem::source::mysql::{MysqlSource, MysqlSourceOptions, StateTables};
use tandem::source::EventStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ECHO_SERVER_ID: u32 = 4242;

fn endpoint(db: &TestDb) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: servers().my.port(),
        user: "root".into(),
        password: None,
        database: db.name.clone(),
        tls: TlsMode::Disable,
        ca_file: None,
        client_cert: None,
        client_key: None,
    }
}

/// A pair over `db.table` with the given MySQL columns (name, COLUMN_TYPE); key = first column.
fn pair(index: usize, db: &str, table: &str, cols: &[(&str, &str)]) -> PairSchema {
    let columns = cols
        .iter()
        .map(|(name, ty)| ColumnSchema {
            name: name.to_string(),
            pg_name: name.to_string(),
            my_name: name.to_string(),
            owner: Owner::Both,
            pg_type: "text".into(),
            my_type: ty.to_string(),
            pg_kind: ValueKind::Text,
            my_kind: my_kind(ty),
            pg_generated: false,
            pg_identity_always: false,
            my_generated: false,
            my_on_update: false,
        })
        .collect();
    PairSchema {
        pair: index,
        name: table.to_string(),
        pg_table: TableName { schema: "public".into(), name: table.into() },
        my_table: TableName { schema: db.into(), name: table.into() },
        columns,
        key: vec![0],
    }
}

fn options(db: &TestDb) -> MysqlSourceOptions {
    MysqlSourceOptions {
        server_id: db.server_id,
        chunk_rows: 3,
        own_server_ids: vec![ECHO_SERVER_ID],
        heartbeat: Duration::from_millis(500),
        read_timeout: Duration::from_secs(30),
        coordinates: Default::default(),
        // The test's own database plays tandem's state database: its `origin_marker` tags echoes.
        state: Some(StateTables { db: db.name.clone(), pipeline: "p".into() }),
        own_rows: Default::default(),
    }
}

/// One delivered transaction.
#[derive(Debug)]
struct Txn {
    chunks: Vec<Vec<Change>>,
    meta: TxnMeta,
}

impl Txn {
    fn changes(&self) -> Vec<&Change> {
        self.chunks.iter().flatten().collect()
    }
    fn ops_keys(&self) -> Vec<(Op, Value)> {
        self.changes().iter().map(|c| (c.op, c.key[0].clone())).collect()
    }
}

struct Running {
    /// `PairState` events seen by `txns`, in order.
    states: Vec<(usize, Option<String>)>,
    /// The source's channel read through an echo stage of one direction
    /// (no registry): tandem's own transactions come out as `Idle`.
    rx: EchoEvents,
    token: CancellationToken,
    task: tokio::task::JoinHandle<tandem::Result<()>>,
}

async fn start(db: &TestDb, pairs: Vec<PairSchema>, from: Option<BinlogPos>) -> (Running, BinlogPos) {
    let stage = EchoStage::new(tandem::config::Side::Mysql, None, std::sync::Arc::new(pairs.clone()));
    let mut src = MysqlSource::connect(&endpoint(db), options(db), pairs).await.expect("connect");
    let pos = match from {
        Some(p) => p,
        None => src.current_position().await.expect("current position"),
    };
    let (tx, rx) = mpsc::channel(16);
    let token = CancellationToken::new();
    let task = tokio::spawn(src.run(pos.clone(), tx, token.clone()));
    (Running { states: Vec::new(), rx: stage.events(rx), token, task }, pos)
}

impl Running {
    /// The next `n` committed transactions (Idle events skipped), 20 s at most.
    async fn txns(&mut self, n: usize) -> Vec<Txn> {
        let mut out = Vec::new();
        let mut open: Option<Vec<Vec<Change>>> = None;
        while out.len() < n {
            let ev = match tokio::time::timeout(Duration::from_secs(20), self.rx.next()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => panic!("source ended: {:?}", (&mut self.task).await),
                Err(_) => panic!("timed out after {} of {n} transactions: {out:#?}", out.len()),
            };
            match ev {
                SourceEvent::Begin { .. } => {
                    assert!(open.is_none(), "Begin inside a transaction");
                    open = Some(Vec::new());
                }
                SourceEvent::Changes(c) => open.as_mut().expect("Changes outside a transaction").push(c),
                SourceEvent::Commit(meta) => out.push(Txn { chunks: open.take().expect("Commit without Begin"), meta }),
                SourceEvent::Idle(_) => assert!(open.is_none(), "Idle inside a transaction"),
                SourceEvent::PairState { pair, paused } => self.states.push((pair, paused)),
                SourceEvent::Watermark { .. } => assert!(open.is_none(), "Watermark inside a transaction"),
                SourceEvent::Barrier => assert!(open.is_none(), "Barrier inside a transaction"),
                SourceEvent::Applied(_) => panic!("tandem's own transaction passed the echo stage"),
            }
        }
        out
    }

    /// Asserts no transaction is delivered within `wait`.
    async fn quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.rx.next()).await {
            assert!(matches!(ev, SourceEvent::Idle(_)), "unexpected {ev:?}");
        }
    }

    /// Drains events until the source fails; Changes are not expected.
    async fn until_error(&mut self) -> tandem::Error {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match self.rx.next().await {
                    Some(SourceEvent::Changes(c)) => panic!("unexpected changes: {c:?}"),
                    Some(_) => continue,
                    None => break (&mut self.task).await.expect("joins").expect_err("the stream fails"),
                }
            }
        })
        .await
        .expect("the stream stops")
    }

    async fn stop(self) -> tandem::Result<()> {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("stops").expect("joins")
    }
}

async fn exec(conn: &mut mysql_async::Conn, sql: &str) {
    conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_transactions_in_chunks_and_drops_echoes() {
    let db = fresh_db("mysql_source_stream").await;
    let mut my = db.my().await;
    exec(&mut my, "CREATE TABLE items (id int PRIMARY KEY, name varchar(50), qty int, note text)").await;
    exec(&mut my, "CREATE TABLE other (id int PRIMARY KEY)").await;
    exec(&mut my, "CREATE TABLE origin_marker (id int AUTO_INCREMENT PRIMARY KEY, pipeline varchar(64))").await;
    let items = pair(0, &db.name, "items", &[("id", "int(11)"), ("name", "varchar(50)"), ("qty", "int(11)")]);
    let (mut src, _) = start(&db, vec![items], None).await;

    exec(&mut my, "INSERT INTO items VALUES (1, 'a😀', 10, 'not mapped')").await;
    exec(&mut my, "UPDATE items SET name = 'b', qty = 11 WHERE id = 1").await;
    exec(
        &mut my,
        "BEGIN; INSERT INTO items VALUES (2,'x',1,''),(3,'x',1,''),(4,'x',1,''),(5,'x',1,''),(6,'x',1,''); \
         INSERT INTO other VALUES (1); COMMIT",
    )
    .await;
    exec(&mut my, "FLUSH BINARY LOGS").await;
    // Echoes: a session tagged with the echo server id, and a marker-first transaction.
    exec(&mut my, &format!("SET SESSION server_id = {ECHO_SERVER_ID}")).await;
    exec(&mut my, "INSERT INTO items VALUES (100, 'echo', 0, '')").await;
    exec(&mut my, "SET SESSION server_id = @@GLOBAL.server_id").await;
    exec(&mut my, "BEGIN; INSERT INTO origin_marker (pipeline) VALUES ('p'); INSERT INTO items VALUES (101, 'echo', 0, ''); COMMIT").await;
    exec(&mut my, "INSERT INTO other VALUES (2)").await; // nothing paired: Idle
    exec(&mut my, "DELETE FROM items WHERE id = 2").await;
    exec(&mut my, "ALTER TABLE items ADD COLUMN extra int").await;
    exec(&mut my, "INSERT INTO items (id, name, qty, extra) VALUES (7, 'after ddl', 7, 99)").await;

    let txns = src.txns(5).await;
    let insert = &txns[0].changes()[0];
    assert_eq!(insert.op, Op::Insert);
    assert_eq!(insert.key, vec![int(1)]);
    assert_eq!(insert.before, None);
    assert_eq!(insert.after, Some(vec![int(1), Value::Text("a😀".into()), int(10)]), "unmapped `note` dropped");
    let update = &txns[1].changes()[0];
    assert_eq!(update.op, Op::Update);
    assert_eq!(update.before, Some(vec![int(1), Value::Text("a😀".into()), int(10)]));
    assert_eq!(update.after, Some(vec![int(1), Value::Text("b".into()), int(11)]));

    let sizes: Vec<usize> = txns[2].chunks.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 2], "5 rows in chunks of at most 3, `other` not delivered");
    assert_eq!(txns[2].ops_keys(), (2..=6).map(|i| (Op::Insert, int(i))).collect::<Vec<_>>());

    assert_eq!(txns[3].ops_keys(), vec![(Op::Delete, int(2))], "echo transactions dropped, rotation survived");
    assert_eq!(txns[3].changes()[0].before, Some(vec![int(2), Value::Text("x".into()), int(1)]));
    assert_eq!(txns[3].changes()[0].after, None);
    assert_eq!(txns[4].ops_keys(), vec![(Op::Insert, int(7))], "decoded after DDL");
    assert_eq!(txns[4].changes()[0].after, Some(vec![int(7), Value::Text("after ddl".into()), int(7)]));

    let seqs: Vec<u64> = txns.iter().map(|t| t.meta.txn_seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let positions: Vec<&SourcePos> = txns.iter().map(|t| &t.meta.position).collect();
    for w in positions.windows(2) {
        assert_eq!(w[0].try_cmp(w[1]), Some(std::cmp::Ordering::Less), "{positions:?}");
    }
    assert!(matches!(positions[0], SourcePos::Mysql(BinlogPos::MariaGtids(_))));
    let now = chrono::Utc::now().timestamp_micros();
    assert!((now - txns[4].meta.commit_ts).abs() < 120_000_000, "commit_ts is the commit time");
    src.quiet(Duration::from_millis(800)).await;
    src.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_saved_gtid_position() {
    let db = fresh_db("mysql_source_resume").await;
    let mut my = db.my().await;
    exec(&mut my, "CREATE TABLE r (id int PRIMARY KEY, v varchar(10))").await;
    let pairs = vec![pair(0, &db.name, "r", &[("id", "int(11)"), ("v", "varchar(10)")])];
    let (mut src, _) = start(&db, pairs.clone(), None).await;
    exec(&mut my, "INSERT INTO r VALUES (1, 'a')").await;
    let first = src.txns(1).await;
    let SourcePos::Mysql(saved) = first[0].meta.position.clone() else { panic!("not a MySQL position") };
    // Round-trip through the checkpoint text form.
    let saved: BinlogPos = saved.to_string().parse().unwrap();
    exec(&mut my, "INSERT INTO r VALUES (2, 'b')").await;
    exec(&mut my, "UPDATE r SET v = 'c' WHERE id = 1").await;
    let _ = src.txns(2).await;
    src.stop().await.expect("clean stop");

    let (mut again, _) = start(&db, pairs, Some(saved)).await;
    let txns = again.txns(2).await;
    assert_eq!(txns[0].ops_keys(), vec![(Op::Insert, int(2))]);
    assert_eq!(txns[1].ops_keys(), vec![(Op::Update, int(1))]);
    again.quiet(Duration::from_millis(800)).await;
    again.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_every_supported_mariadb_type() {
    let db = fresh_db("mysql_source_types").await;
    let mut my = db.my().await;
    let cols: &[(&str, &str)] = &[
        ("id", "bigint(20) unsigned"),
        ("ti", "tinyint(4)"),
        ("flag", "tinyint(1)"),
        ("u32", "int(10) unsigned"),
        ("dec", "decimal(38,10)"),
        ("f", "float"),
        ("d", "double"),
        ("s", "varchar(20)"),
        ("l1", "varchar(20)"),
        ("c", "char(5)"),
        ("b", "varbinary(8)"),
        ("bl", "blob"),
        ("dt", "datetime(6)"),
        ("ts", "timestamp(6)"),
        ("da", "date"),
        ("tm", "time(6)"),
        ("y", "year(4)"),
        ("j", "longtext"),
        ("e", "enum('small','it''s','large')"),
        ("st", "set('a','b','c')"),
        ("bt", "bit(12)"),
        ("n", "int(11)"),
    ];
    exec(
        &mut my,
        "CREATE TABLE kinds (id bigint unsigned PRIMARY KEY, ti tinyint, flag tinyint(1), u32 int unsigned, \
         `dec` decimal(38,10), f float, d double, s varchar(20), l1 varchar(20) CHARACTER SET latin1, c char(5), \
         b varbinary(8), bl blob, dt datetime(6), ts timestamp(6) NULL, da date, tm time(6), y year, j json, \
         e enum('small','it''s','large'), st set('a','b','c'), bt bit(12), n int)",
    )
    .await;
    let (mut src, _) = start(&db, vec![pair(0, &db.name, "kinds", cols)], None).await;
    exec(&mut my, "SET time_zone = '+00:00'").await;
    exec(
        &mut my,
        "INSERT INTO kinds VALUES (18446744073709551615, -128, 1, 4294967295, \
         -9999999999999999999999999999.9999999999, 0.1, -1.5e300, '𝄞 4-byte', '€é', 'ab', X'00FF', X'DEADBEEF', \
         '2024-02-29 23:59:58.999999', '2024-05-06 07:08:09.123456', '1000-01-01', '-838:59:59.000000', 2155, \
         '{\"a\": [1, \"é\"]}', 'it''s', 'a,c', b'101000000001', NULL)",
    )
    .await;
    let txns = src.txns(1).await;
    let row = txns[0].changes()[0].after.clone().expect("after image");
    let ts = |t: &str| Value::Timestamp(tandem::model::value::parse_timestamp(t).unwrap());
    let expected = vec![
        Value::UInt(u64::MAX),
        int(-128),
        int(1),
        int(4_294_967_295),
        Value::Decimal("-9999999999999999999999999999.9999999999".into()),
        Value::Float(0.1),
        Value::Float(-1.5e300),
        Value::Text("𝄞 4-byte".into()),
        Value::Text("€é".into()),
        Value::Text("ab".into()),
        Value::Bytes(vec![0x00, 0xFF]),
        Value::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF]),
        ts("2024-02-29 23:59:58.999999"),
        ts("2024-05-06 07:08:09.123456"),
        Value::Date(tandem::model::value::parse_date("1000-01-01").unwrap()),
        Value::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000),
        int(2155),
        Value::Json("{\"a\": [1, \"é\"]}".into()),
        Value::Text("it's".into()),
        Value::Text("a,c".into()),
        Value::Bytes(vec![0x0A, 0x01]),
        Value::Null,
    ];
    for (i, (got, want)) in row.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "column {}", cols[i].0);
    }
    assert_eq!(row.len(), expected.len());

    // A zero date is a marker holding the value as MariaDB shows it, never a made-up
    // value, and the stream goes on (the applier quarantines the change).
    exec(&mut my, "SET SESSION sql_mode = ''").await;
    exec(&mut my, "INSERT INTO kinds (id, dt, da) VALUES (1, '0000-00-00 00:00:00', '2022-11-00')").await;
    exec(&mut my, "INSERT INTO kinds (id) VALUES (2)").await;
    let txns = src.txns(2).await;
    let row = txns[0].changes()[0].after.clone().expect("after image");
    let shown = |v: &Value| v.as_unrepresentable().map(|u| u.text.clone());
    assert_eq!(shown(&row[12]).as_deref(), Some("0000-00-00 00:00:00"), "dt: {:?}", row[12]);
    assert_eq!(shown(&row[14]).as_deref(), Some("2022-11-00"), "da: {:?}", row[14]);
    assert_eq!(txns[1].ops_keys(), vec![(Op::Insert, Value::UInt(2))]);
}

/// A dropped mapped column pauses the pair (its rows still arrive, the
/// column `Unchanged`); restoring it resumes the pair; a key column cannot go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_paired_column_pauses_the_pair_and_restoring_it_resumes() {
    let db = fresh_db("mysql_source_drop").await;
    let mut my = db.my().await;
    exec(&mut my, "CREATE TABLE g (id int PRIMARY KEY, gone int, other int)").await;
    let cols = [("id", "int(11)"), ("gone", "int(11)"), ("other", "int(11)")];
    let (mut src, _) = start(&db, vec![pair(0, &db.name, "g", &cols)], None).await;
    exec(&mut my, "INSERT INTO g VALUES (1, 1, 1)").await;
    assert_eq!(src.txns(1).await[0].ops_keys(), vec![(Op::Insert, int(1))]);
    assert!(src.states.is_empty());

    exec(&mut my, "ALTER TABLE g DROP COLUMN gone").await;
    exec(&mut my, "INSERT INTO g VALUES (2, 20)").await;
    let t = src.txns(1).await;
    assert_eq!(t[0].changes()[0].after, Some(vec![int(2), Value::Unchanged, int(20)]));
    let (pair, reason) = src.states.last().cloned().expect("a pause");
    assert_eq!(pair, 0);
    let reason = reason.expect("paused");
    assert!(reason.contains("gone") && reason.contains(".g"), "{reason}");

    exec(&mut my, "ALTER TABLE g ADD COLUMN gone int AFTER id").await;
    exec(&mut my, "INSERT INTO g VALUES (3, 3, 30)").await;
    let t = src.txns(1).await;
    assert_eq!(t[0].changes()[0].after, Some(vec![int(3), int(3), int(30)]));
    assert_eq!(src.states.last(), Some(&(0, None)), "resumed: {:?}", src.states);
    assert_eq!(src.states.len(), 2);

    exec(&mut my, "ALTER TABLE g DROP PRIMARY KEY, DROP COLUMN id").await;
    exec(&mut my, "INSERT INTO g VALUES (4, 40)").await;
    match src.until_error().await {
        tandem::Error::Schema { pair, message } => {
            assert_eq!(pair, "g");
            assert!(message.contains("key column") && message.contains("id"), "{message}");
        }
        other => panic!("expected a schema error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_positions_follow_rotation_and_resume() {
    let db = fresh_db("mysql_source_file").await;
    let mut my = db.my().await;
    exec(&mut my, "CREATE TABLE f (id int PRIMARY KEY)").await;
    let pairs = vec![pair(0, &db.name, "f", &[("id", "int(11)")])];
    let status: mysql_async::Row = my.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let start_pos = BinlogPos::File { file: status.get(0).unwrap(), pos: status.get(1).unwrap() };
    let (mut src, _) = start(&db, pairs.clone(), Some(start_pos.clone())).await;
    exec(&mut my, "INSERT INTO f VALUES (1)").await;
    exec(&mut my, "FLUSH BINARY LOGS").await;
    exec(&mut my, "INSERT INTO f VALUES (2)").await;
    let status: mysql_async::Row = my.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let file_after_flush: String = status.get(0).unwrap();
    let txns = src.txns(2).await;
    let file_of = |t: &Txn| match &t.meta.position {
        SourcePos::Mysql(BinlogPos::File { file, pos }) => (file.clone(), *pos),
        other => panic!("not a file position: {other:?}"),
    };
    let (f1, p1) = file_of(&txns[0]);
    let (f2, _) = file_of(&txns[1]);
    let BinlogPos::File { file: f0, pos: p0 } = &start_pos else { unreachable!() };
    assert!(f1 == *f0 && p1 > *p0, "{f1}:{p1} after {f0}:{p0}");
    assert_ne!(f1, f2, "the second transaction is in the next binlog file");
    // Parallel tests may flush too: the file is at most the current one, and well-formed.
    assert!(f2.starts_with("binlog.") && f2 <= file_after_flush, "{f2} vs {file_after_flush}");
    assert_eq!(txns[1].meta.position.try_cmp(&txns[0].meta.position), Some(std::cmp::Ordering::Greater));
    // Heartbeats keep an idle stream talking.
    let idle = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(SourceEvent::Idle(p)) = src.rx.next().await {
                break p;
            }
        }
    })
    .await
    .expect("an Idle within 5 s on an idle stream");
    let order = idle.try_cmp(&txns[1].meta.position);
    assert!(matches!(order, Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)), "{idle} vs {}", txns[1].meta.position);
    src.stop().await.expect("clean stop");

    let SourcePos::Mysql(after_first) = txns[0].meta.position.clone() else { unreachable!() };
    let (mut again, _) = start(&db, pairs, Some(after_first)).await;
    assert_eq!(again.txns(1).await[0].ops_keys(), vec![(Op::Insert, int(2))]);
    again.quiet(Duration::from_millis(800)).await;
    again.stop().await.expect("clean stop");
}

/// With `binlog_row_metadata=FULL` (a private server) the table map names its
/// columns, so rows written before a later `ADD COLUMN` still decode when the
/// stream is replayed after it, and BIGINT UNSIGNED arrives with its sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_metadata_full_decodes_across_later_ddl() {
    use tandem::testbed::{MariaDb, MariaOptions};
    let server = MariaDb::start(MariaOptions { extra_args: vec!["--binlog-row-metadata=FULL".into()], ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server.create_database("app").await.unwrap_or_else(|e| panic!("{e}"));
    let mut my = server.connect("app").await.unwrap_or_else(|e| panic!("{e}"));
    exec(&mut my, "CREATE TABLE m (id bigint unsigned PRIMARY KEY, v varchar(10))").await;
    let ep = Endpoint { port: server.port(), database: "app".into(), ..endpoint_template() };
    let opts = MysqlSourceOptions { server_id: 77, ..MysqlSourceOptions::new(77) };
    let pairs = vec![pair(0, "app", "m", &[("id", "bigint(20) unsigned"), ("v", "varchar(10)")])];
    let mut src = MysqlSource::connect(&ep, opts.clone(), pairs.clone()).await.expect("connect");
    let before = src.current_position().await.expect("position");
    exec(&mut my, "INSERT INTO m VALUES (18446744073709551615, 'old')").await;
    exec(&mut my, "ALTER TABLE m ADD COLUMN w int FIRST").await;
    exec(&mut my, "INSERT INTO m VALUES (5, 1, 'new')").await;

    // information_schema now has 3 columns in a new order; the first row event has 2.
    let stage = EchoStage::new(tandem::config::Side::Mysql, None, std::sync::Arc::new(pairs.clone()));
    let src = MysqlSource::connect(&ep, opts, pairs).await.expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let token = CancellationToken::new();
    let task = tokio::spawn(src.run(before, tx, token.clone()));
    let mut running = Running { states: Vec::new(), rx: stage.events(rx), token, task };
    let txns = running.txns(2).await;
    assert_eq!(txns[0].changes()[0].after, Some(vec![Value::UInt(u64::MAX), Value::Text("old".into())]));
    assert_eq!(txns[1].changes()[0].after, Some(vec![Value::UInt(1), Value::Text("new".into())]), "w = 5 is not paired");
    running.stop().await.expect("clean stop");
}

fn endpoint_template() -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: 0,
        user: "root".into(),
        password: None,
        database: String::new(),
        tls: TlsMode::Disable,
        ca_file: None,
        client_cert: None,
        client_key: None,
    }
}

/// MariaDB prints a 4-byte character of an ENUM/SET definition as `?`
/// (information_schema, SHOW CREATE TABLE): the labels are read back as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_and_set_labels_with_4_byte_characters_are_read_as_stored() {
    use tandem::source::mysql::columns::{load_table, Codec};
    let db = fresh_db("mysql_source_labels").await;
    let mut my = db.my().await;
    exec(
        &mut my,
        r"CREATE TABLE labels (id INT PRIMARY KEY,
            e ENUM('😀 joy','it''s','a,b','(x)','b\\s','?','𝄞 clef','plain') CHARACTER SET utf8mb4,
            s SET('😀','x''y','p(q)') CHARACTER SET utf8mb4,
            `we``ird` ENUM('é?','😀') CHARACTER SET utf8mb4,
            l ENUM('é','?') CHARACTER SET latin1,
            p ENUM('a','b'))",
    )
    .await;
    // tandem's own session settings (utf8mb4, NO_BACKSLASH_ESCAPES).
    let mut meta = tandem::db::connect_mysql(&endpoint(&db)).await.expect("connect");
    let table = load_table(&mut meta, &db.name, "labels", true).await.expect("load_table");
    let codecs: Vec<(&str, &Codec)> = table.columns.iter().map(|c| (c.name.as_str(), &c.codec)).collect();
    let labels = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert_eq!(
        codecs[1..],
        [
            ("e", &Codec::Enum(labels(&["😀 joy", "it's", "a,b", "(x)", "b\\s", "?", "𝄞 clef", "plain"]))),
            ("s", &Codec::Set(labels(&["😀", "x'y", "p(q)"]))),
            ("we`ird", &Codec::Enum(labels(&["é?", "😀"]))),
            ("l", &Codec::Enum(labels(&["é", "?"]))),
            ("p", &Codec::Enum(labels(&["a", "b"]))),
        ]
    );
}
