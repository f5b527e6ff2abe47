//! Echo suppression, column ownership and conflict handling (DESIGN §2, §3),
//! end to end against the throwaway servers: every test writes on one or
//! both sides (often with the pipeline stopped, so that both writes are
//! concurrent from tandem's point of view), restarts it, and asserts on both
//! databases' contents and on both `tandem.conflicts` tables.
//!
//! Conflicts decided by the postgres→mysql applier live in MariaDB's
//! `tandem.conflicts` (shared by every test on the server: filtered by
//! pipeline), those of the mysql→postgres applier in the Postgres database's
//! `tandem.conflicts`.

use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tandem::config::Side;

pub(super) const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `SELECT` of the first cell of the first row (None: no row or NULL).
fn first(rows: &Rows) -> Option<String> {
    rows.first().and_then(|r| r.first().cloned()).flatten()
}

/// Polls a Postgres query until its first cell is `want`.
async fn pg_wait(pg: &tokio_postgres::Client, sql: &str, want: Option<&str>, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let got = first(&pg_rows(pg, sql).await);
        if got.as_deref() == want {
            return;
        }
        assert!(t0.elapsed() < limit, "postgres: {sql} gave {got:?}, expected {want:?} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a MariaDB query until its first cell is `want`.
pub(super) async fn my_wait(my: &mut mysql_async::Conn, sql: &str, want: Option<&str>, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let got = first(&my_rows(my, sql).await);
        if got.as_deref() == want {
            return;
        }
        assert!(t0.elapsed() < limit, "mariadb: {sql} gave {got:?}, expected {want:?} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `[[pairs]]` table named `items`, with extra scalar settings and an
/// optional `[pairs.columns]` body.
fn items_pair(db: &TestDb, settings: &str, columns: &str) -> String {
    let mut s = format!("[[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{}.items\"\n{settings}\n", db.name);
    if !columns.is_empty() {
        s.push_str("\n[pairs.columns]\n");
        s.push_str(columns);
        s.push('\n');
    }
    s
}

/// `items (id, a, b, v, updated_at)` on both sides.
async fn items_tables(db: &TestDb) {
    db.pg()
        .await
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, a text, b text, v text, updated_at timestamp(6))")
        .await
        .unwrap();
    db.my()
        .await
        .query_drop("CREATE TABLE items (id INT PRIMARY KEY, a TEXT, b TEXT, v TEXT, updated_at DATETIME(6))")
        .await
        .unwrap();
}

/// Rows below the barrier ids, every value as text, timestamps with microseconds.
const PG_ITEMS: &str = "SELECT id::text, a, b, v, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US') FROM items WHERE id < 900 ORDER BY items.id";
const MY_ITEMS: &str = "SELECT id, a, b, v, DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM items WHERE id < 900 ORDER BY items.id";

pub(super) fn row(id: i32, a: &str, b: &str, v: &str, ts: Option<&str>) -> Vec<Option<String>> {
    vec![Some(id.to_string()), Some(a.into()), Some(b.into()), Some(v.into()), ts.map(|t| format!("{t}.000000"))]
}

/// Both directions have processed everything written before this call: a
/// row inserted on each side (ids ≥ 900, outside `PG_ITEMS`/`MY_ITEMS`)
/// arrived on the other side, and each source delivers in commit order.
pub(super) async fn barrier(db: &TestDb, n: i32) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let (from_pg, from_my) = (900 + 2 * n, 901 + 2 * n);
    pg.execute("INSERT INTO items (id, v) VALUES ($1, 'barrier')", &[&from_pg]).await.unwrap();
    my.exec_drop("INSERT INTO items (id, v) VALUES (?, 'barrier')", (from_my,)).await.unwrap();
    my_wait(&mut my, &format!("SELECT COUNT(*) FROM items WHERE id = {from_pg}"), Some("1"), WAIT).await;
    pg_wait(&pg, &format!("SELECT count(*) FROM items WHERE id = {from_my}"), Some("1"), WAIT).await;
}

/// Conflict rows of this pipeline in Postgres: pair, key, column, postgres
/// value, mysql value, policy, winner, resolved (0/1).
pub(super) async fn pg_conflicts(db: &TestDb) -> Rows {
    let pg = db.pg().await;
    pg_rows(
        &pg,
        &format!(
            "SELECT pair, key_json, column_name, postgres_value, mysql_value, policy, winner, (resolved_at IS NOT NULL)::int::text
             FROM tandem.conflicts WHERE pipeline = '{}' ORDER BY key_json, column_name, id",
            db.name
        ),
    )
    .await
}

/// The same from MariaDB's `tandem.conflicts`.
pub(super) async fn my_conflicts(db: &TestDb) -> Rows {
    let mut my = db.my().await;
    my_rows(
        &mut my,
        &format!(
            "SELECT pair, key_json, column_name, postgres_value, mysql_value, policy, winner, CAST(resolved_at IS NOT NULL AS CHAR)
             FROM tandem.conflicts WHERE pipeline = '{}' ORDER BY key_json, column_name, id",
            db.name
        ),
    )
    .await
}

/// A conflict row as `pg_conflicts`/`my_conflicts` return it.
fn conflict(id: i32, column: &str, pg: Option<&str>, my: Option<&str>, policy: &str, winner: Option<&str>) -> Vec<Option<String>> {
    let resolved = if winner.is_some() { "1" } else { "0" };
    vec![
        Some("items".into()),
        Some(format!("{{\"id\":\"{id}\"}}")),
        Some(column.into()),
        pg.map(str::to_string),
        my.map(str::to_string),
        Some(policy.into()),
        winner.map(str::to_string),
        Some(resolved.into()),
    ]
}

/// Only the column, the postgres/mysql values of `v` and the winner: for
/// conflicts whose timestamp values' text form is not the point.
fn brief(rows: &Rows) -> Vec<(String, Option<String>, Option<String>, Option<String>)> {
    rows.iter()
        .map(|r| {
            let col = r[2].clone().unwrap_or_default();
            let (pg, my) = if col == "v" { (r[3].clone(), r[4].clone()) } else { (None, None) };
            (col, pg, my, r[6].clone())
        })
        .collect()
}

/// Runs `f` in a Postgres session set up with tandem's replication origin,
/// so its writes are not replicated (the pipeline must be stopped: the
/// applier holds the origin while it runs).
pub(super) async fn pg_behind_tandems_back(db: &TestDb, sql: &str) {
    let pg = db.pg().await;
    let origin = format!("tandem_{}", db.name);
    let t0 = Instant::now();
    loop {
        match pg.query("SELECT pg_replication_origin_session_setup($1)", &[&origin]).await {
            Ok(_) => break,
            // The stopped applier's session may still be closing.
            Err(e) if e.code().map(|c| c.code()) == Some("55006") && t0.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("pg_replication_origin_session_setup({origin}): {e}"),
        }
    }
    pg.batch_execute(sql).await.unwrap();
    pg.query("SELECT pg_replication_origin_session_reset()", &[]).await.unwrap();
}

/// Creates `items`, writes the config, starts the pipeline, seeds rows
/// `1..=n` from Postgres (`a0`, `b0`, `v0`, updated_at 2024-01-01 00:00:00)
/// and waits until MariaDB has them.
pub(super) async fn seeded(test: &str, settings: &str, columns: &str, n: i32) -> (TestDb, PathBuf, InProcess) {
    let db = support::fresh_db(test).await;
    items_tables(&db).await;
    let cfg = db.write_config(&items_pair(&db, settings, columns));
    let run = InProcess::start(&cfg).await;
    let pg = db.pg().await;
    pg.execute(
        "INSERT INTO items SELECT g, 'a0', 'b0', 'v0', '2024-01-01 00:00:00' FROM generate_series(1, $1) g",
        &[&n],
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    let rows = wait_equal(&pg, PG_ITEMS, &mut my, MY_ITEMS, WAIT).await;
    assert_eq!(rows.len(), n as usize);
    (db, cfg, run)
}

/// Pipeline stopped: `pg_sql` runs in Postgres and `my_sql` in MariaDB; then
/// the pipeline restarts and both directions catch up (barrier).
pub(super) async fn concurrently(db: &TestDb, cfg: &PathBuf, run: InProcess, pg_sql: &str, my_sql: &str) -> InProcess {
    run.stop().await;
    db.pg().await.batch_execute(pg_sql).await.unwrap();
    db.my().await.query_drop(my_sql).await.unwrap();
    let run = InProcess::start(cfg).await;
    barrier(db, 0).await;
    run
}

/// Both sides' rows once they are equal, or after `WAIT`: a write forwarded
/// back (`echo`) takes one more trip than the barrier.
pub(super) async fn converged(db: &TestDb) -> (Rows, Rows) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (pg, my) = both_rows(db).await;
        if pg == my || std::time::Instant::now() > deadline {
            return (pg, my);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub(super) async fn both_rows(db: &TestDb) -> (Rows, Rows) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    (pg_rows(&pg, PG_ITEMS).await, my_rows(&mut my, MY_ITEMS).await)
}

// ---------------------------------------------------------------------------
// 1. No echo
// ---------------------------------------------------------------------------

/// `hits` on both sides, with an AFTER UPDATE trigger on each side counting
/// the updates of each row in `upd_count` (not replicated).
async fn hits_tables(db: &TestDb) -> PathBuf {
    db.pg()
        .await
        .batch_execute(
            "CREATE TABLE hits (id int PRIMARY KEY, n int NOT NULL, note text);
             CREATE TABLE upd_count (id int PRIMARY KEY, n int NOT NULL);
             CREATE FUNCTION count_upd() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 INSERT INTO upd_count VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = upd_count.n + 1;
                 RETURN NULL;
               END $$;
             CREATE TRIGGER hits_au AFTER UPDATE ON hits FOR EACH ROW EXECUTE FUNCTION count_upd();
             -- tandem's sessions run as replica (issue 23): the counter must fire on replicated rows too.
             ALTER TABLE hits ENABLE ALWAYS TRIGGER hits_au;",
        )
        .await
        .unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE hits (id INT PRIMARY KEY, n INT NOT NULL, note TEXT)").await.unwrap();
    my.query_drop("CREATE TABLE upd_count (id INT PRIMARY KEY, n INT NOT NULL)").await.unwrap();
    my.query_drop(
        "CREATE TRIGGER hits_au AFTER UPDATE ON hits FOR EACH ROW
         INSERT INTO upd_count VALUES (NEW.id, 1) ON DUPLICATE KEY UPDATE n = n + 1",
    )
    .await
    .unwrap();
    db.write_config(&format!("[[pairs]]\nname = \"hits\"\npostgres = \"public.hits\"\nmysql = \"{}.hits\"\n", db.name))
}

/// `n_tup_upd` of `hits`, read from a fresh stats snapshot.
async fn pg_n_tup_upd(pg: &tokio_postgres::Client) -> i64 {
    pg.batch_execute("SELECT pg_stat_clear_snapshot()").await.unwrap();
    pg.query_one("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'public.hits'::regclass", &[]).await.unwrap().get(0)
}

/// Polls `n_tup_upd` of `hits` until it reaches `want` (PG 15 flushes a
/// backend's table stats up to ~10 s after its last commit), then waits
/// past the flush interval and checks it stayed there.
async fn pg_updates_settle_at(pg: &tokio_postgres::Client, want: i64) {
    let t0 = Instant::now();
    loop {
        let n = pg_n_tup_upd(pg).await;
        if n >= want {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(40), "n_tup_upd of hits is {n}, expected {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(pg_n_tup_upd(pg).await, want, "Postgres got writes to hits beyond the {want} expected");
}

async fn pg_trigger_count(pg: &tokio_postgres::Client, id: i32) -> Option<String> {
    first(&pg_rows(pg, &format!("SELECT n::text FROM upd_count WHERE id = {id}")).await)
}

async fn my_trigger_count(my: &mut mysql_async::Conn, id: i32) -> Option<String> {
    first(&my_rows(my, &format!("SELECT n FROM upd_count WHERE id = {id}")).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_100_postgres_updates_are_applied_100_times_in_mariadb_and_never_come_back() {
    let db = support::fresh_db("echo_pg").await;
    let cfg = hits_tables(&db).await;
    let run = InProcess::start(&cfg).await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    pg.batch_execute("INSERT INTO hits VALUES (1, 0, 'start')").await.unwrap();
    my_wait(&mut my, "SELECT n FROM hits WHERE id = 1", Some("0"), WAIT).await;

    // One at a time: each update reaches MariaDB before the next, so no batch
    // may coalesce two of them and the count is exact.
    for i in 1..=100 {
        pg.execute("UPDATE hits SET n = $1::int, note = $2::text WHERE id = 1", &[&i, &format!("pg {i}")]).await.unwrap();
        my_wait(&mut my, "SELECT n FROM hits WHERE id = 1", Some(&i.to_string()), WAIT).await;
    }
    let sql = "SELECT id, n, note FROM hits ORDER BY id";
    wait_equal(&pg, sql, &mut my, sql, WAIT).await;
    assert_eq!(my_trigger_count(&mut my, 1).await.as_deref(), Some("100"), "MariaDB applied exactly 100 updates");
    pg.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    pg_updates_settle_at(&pg, 100).await;
    assert_eq!(pg_trigger_count(&pg, 1).await.as_deref(), Some("100"), "no update came back to Postgres");
    assert_eq!(my_trigger_count(&mut my, 1).await.as_deref(), Some("100"), "MariaDB got no further writes");
    assert!(pg_conflicts(&db).await.is_empty() && my_conflicts(&db).await.is_empty(), "an echo is never a conflict");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_100_mariadb_updates_are_applied_100_times_in_postgres_and_never_come_back() {
    let db = support::fresh_db("echo_my").await;
    let cfg = hits_tables(&db).await;
    let run = InProcess::start(&cfg).await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    my.query_drop("INSERT INTO hits VALUES (1, 0, 'start')").await.unwrap();
    pg_wait(&pg, "SELECT n::text FROM hits WHERE id = 1", Some("0"), WAIT).await;

    for i in 1..=100 {
        my.exec_drop("UPDATE hits SET n = ?, note = CONCAT('my ', ?) WHERE id = 1", (i, i)).await.unwrap();
        pg_wait(&pg, "SELECT n::text FROM hits WHERE id = 1", Some(&i.to_string()), WAIT).await;
    }
    let sql = "SELECT id, n, note FROM hits ORDER BY id";
    wait_equal(&pg, sql, &mut my, sql, WAIT).await;
    assert_eq!(pg_trigger_count(&pg, 1).await.as_deref(), Some("100"), "Postgres applied exactly 100 updates");
    pg_updates_settle_at(&pg, 100).await;
    assert_eq!(my_trigger_count(&mut my, 1).await.as_deref(), Some("100"), "no update came back to MariaDB");
    assert_eq!(pg_trigger_count(&pg, 1).await.as_deref(), Some("100"));
    assert!(pg_conflicts(&db).await.is_empty() && my_conflicts(&db).await.is_empty(), "an echo is never a conflict");
    run.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Ownership
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_change_of_a_postgres_owned_column_does_not_reach_postgres() {
    let db = support::fresh_db("owner").await;
    db.pg().await.batch_execute("CREATE TABLE people (id int PRIMARY KEY, name text, email text)").await.unwrap();
    db.my().await.query_drop("CREATE TABLE people (id INT PRIMARY KEY, name TEXT, email TEXT)").await.unwrap();
    let cfg = db.write_config(&format!(
        "[[pairs]]\nname = \"people\"\npostgres = \"public.people\"\nmysql = \"{}.people\"\n\n[pairs.columns]\nemail = \"postgres\"\n",
        db.name
    ));
    let run = InProcess::start(&cfg).await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    let sql = "SELECT id, name, email FROM people ORDER BY id";
    pg.batch_execute("INSERT INTO people VALUES (1, 'Ann', 'ann@pg'), (2, 'Bob', 'bob@pg')").await.unwrap();
    wait_equal(&pg, sql, &mut my, sql, WAIT).await;

    // One MariaDB transaction changes the owned column and a `both` column.
    my.query_drop("UPDATE people SET email = 'ann@my', name = 'Ann M' WHERE id = 1").await.unwrap();
    my.query_drop("UPDATE people SET email = 'bob@my' WHERE id = 2").await.unwrap();
    pg_wait(&pg, "SELECT name FROM people WHERE id = 1", Some("Ann M"), WAIT).await;
    barrier_people(&db).await;
    assert_eq!(
        pg_rows(&pg, sql).await,
        vec![
            vec![Some("1".into()), Some("Ann M".into()), Some("ann@pg".into())],
            vec![Some("2".into()), Some("Bob".into()), Some("bob@pg".into())]
        ],
        "the `both` column arrived, the postgres-owned one did not"
    );
    assert_eq!(
        my_rows(&mut my, sql).await,
        vec![
            vec![Some("1".into()), Some("Ann M".into()), Some("ann@my".into())],
            vec![Some("2".into()), Some("Bob".into()), Some("bob@my".into())]
        ],
        "MariaDB keeps its own value until Postgres changes the column"
    );
    assert!(pg_conflicts(&db).await.is_empty(), "a non-owner's change is a violation, not a conflict: {:?}", pg_conflicts(&db).await);

    // The owner changes it: its value overwrites MariaDB's.
    pg.batch_execute("UPDATE people SET email = 'ann@pg2' WHERE id = 1").await.unwrap();
    my_wait(&mut my, "SELECT email FROM people WHERE id = 1", Some("ann@pg2"), WAIT).await;
    barrier_people(&db).await;
    assert_eq!(first(&pg_rows(&pg, "SELECT email FROM people WHERE id = 2").await).as_deref(), Some("bob@pg"));
    assert_eq!(first(&my_rows(&mut my, "SELECT email FROM people WHERE id = 2").await).as_deref(), Some("bob@my"));
    // If the applier records the owner's overwrite as a conflict, the owner won it.
    for c in my_conflicts(&db).await {
        assert_eq!((c[2].as_deref(), c[6].as_deref()), (Some("email"), Some("postgres")), "{c:?}");
    }
    run.stop().await;
}

/// `barrier` for the `people` table.
async fn barrier_people(db: &TestDb) {
    static N: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let pg = db.pg().await;
    let mut my = db.my().await;
    let (from_pg, from_my) = (9000 + 2 * n, 9001 + 2 * n);
    pg.execute("INSERT INTO people (id, name) VALUES ($1, 'barrier')", &[&from_pg]).await.unwrap();
    my.exec_drop("INSERT INTO people (id, name) VALUES (?, 'barrier')", (from_my,)).await.unwrap();
    my_wait(&mut my, &format!("SELECT COUNT(*) FROM people WHERE id = {from_pg}"), Some("1"), WAIT).await;
    pg_wait(&pg, &format!("SELECT count(*) FROM people WHERE id = {from_my}"), Some("1"), WAIT).await;
    pg.execute("DELETE FROM people WHERE id >= 9000", &[]).await.unwrap();
    pg_wait(&pg, "SELECT count(*) FROM people WHERE id >= 9000", Some("0"), WAIT).await;
    my_wait(&mut my, "SELECT COUNT(*) FROM people WHERE id >= 9000", Some("0"), WAIT).await;
}

// ---------------------------------------------------------------------------
// 3. Field-level merge
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_of_different_columns_merge_without_conflict() {
    let (db, cfg, run) = seeded("merge", "", "", 2).await;
    let run = concurrently(
        &db,
        &cfg,
        run,
        "UPDATE items SET a = 'a-pg' WHERE id = 1; UPDATE items SET v = 'v-pg' WHERE id = 2",
        "UPDATE items SET b = 'b-my' WHERE id = 1; UPDATE items SET a = 'a-my', b = 'b-my' WHERE id = 2",
    )
    .await;
    let (pg, my) = both_rows(&db).await;
    let want = vec![
        row(1, "a-pg", "b-my", "v0", Some("2024-01-01 00:00:00")),
        row(2, "a-my", "b-my", "v-pg", Some("2024-01-01 00:00:00")),
    ];
    assert_eq!(pg, want, "postgres has both changes");
    assert_eq!(my, want, "mariadb has both changes");
    assert_eq!(pg_conflicts(&db).await, Rows::new(), "no conflict recorded in postgres");
    assert_eq!(my_conflicts(&db).await, Rows::new(), "no conflict recorded in mariadb");
    run.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Same-column conflicts under each policy
// ---------------------------------------------------------------------------

/// Row 1's `v` changed on both sides while the pipeline was stopped; both
/// sides end with `want` in `v`, and each side's conflicts table holds
/// exactly `expected` (brief form).
async fn policy_case(
    test: &str,
    settings: &str,
    pg_sql: &str,
    my_sql: &str,
    want_v: &str,
    want_ts: &str,
    expected: &[(&str, Option<&str>)],
) {
    let (db, cfg, run) = seeded(test, settings, "", 1).await;
    let run = concurrently(&db, &cfg, run, pg_sql, my_sql).await;
    let (pg, my) = both_rows(&db).await;
    let want = vec![row(1, "a0", "b0", want_v, Some(want_ts))];
    assert_eq!(pg, want, "postgres");
    assert_eq!(my, want, "mariadb");
    let expect: Vec<_> = expected
        .iter()
        .map(|(col, winner)| {
            let (p, m) = if *col == "v" { (Some("pg".to_string()), Some("my".to_string())) } else { (None, None) };
            (col.to_string(), p, m, winner.map(str::to_string))
        })
        .collect();
    let (pc, mc) = (pg_conflicts(&db).await, my_conflicts(&db).await);
    assert_eq!(brief(&pc), expect, "conflicts decided by the mysql→postgres applier (Postgres): {pc:?}");
    assert_eq!(brief(&mc), expect, "conflicts decided by the postgres→mysql applier (MariaDB): {mc:?}");
    let policy = settings.split('"').nth(1).unwrap_or("postgres-wins");
    for c in pc.iter().chain(&mc) {
        assert_eq!(c[0].as_deref(), Some("items"));
        assert_eq!(c[1].as_deref(), Some("{\"id\":\"1\"}"));
        assert_eq!(c[5].as_deref(), Some(policy), "{c:?}");
        assert_eq!(c[7].as_deref(), Some("1"), "a decided conflict is closed: {c:?}");
    }
    // Stays that way: nothing ping-pongs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(both_rows(&db).await, (want.clone(), want));
    run.stop().await;
}

const PG_V: &str = "UPDATE items SET v = 'pg' WHERE id = 1";
const MY_V: &str = "UPDATE items SET v = 'my' WHERE id = 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wins_decides_a_same_column_conflict_on_both_sides() {
    policy_case("pol_pg", "on_conflict = \"postgres-wins\"", PG_V, MY_V, "pg", "2024-01-01 00:00:00", &[("v", Some("postgres"))]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_wins_decides_a_same_column_conflict_on_both_sides() {
    policy_case("pol_my", "on_conflict = \"mysql-wins\"", PG_V, MY_V, "my", "2024-01-01 00:00:00", &[("v", Some("mysql"))]).await;
}

/// One Postgres transaction updates 20 rows, one of which MariaDB changed
/// meanwhile: the MariaDB applier's guarded multi-row update (written without
/// reading the rows first) misses that row, so the chunk is undone and merged
/// against the current rows — the conflict is decided and recorded, and the
/// other 19 rows are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_row_in_a_chunk_of_updates_is_decided_and_the_others_applied() {
    let (db, cfg, run) = seeded("pol_chunk", "on_conflict = \"postgres-wins\"", "", 20).await;
    let run = concurrently(&db, &cfg, run, "UPDATE items SET v = 'pg'", "UPDATE items SET v = 'my' WHERE id = 7").await;
    let (pg, my) = both_rows(&db).await;
    let want: Rows = (1..=20).map(|id| row(id, "a0", "b0", "pg", Some("2024-01-01 00:00:00"))).collect();
    assert_eq!(pg, want, "postgres");
    assert_eq!(my, want, "mariadb");
    let expect = vec![("v".to_string(), Some("pg".to_string()), Some("my".to_string()), Some("postgres".to_string()))];
    let (pc, mc) = (pg_conflicts(&db).await, my_conflicts(&db).await);
    assert_eq!(brief(&mc), expect, "the postgres→mysql applier decided row 7's conflict: {mc:?}");
    assert_eq!(mc[0][1].as_deref(), Some("{\"id\":\"7\"}"), "{mc:?}");
    assert_eq!(brief(&pc), expect, "and so did the mysql→postgres applier: {pc:?}");
    run.stop().await;
}

const LWW: &str = "on_conflict = \"last-writer-wins\"\ntimestamp_column = \"updated_at\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_takes_the_newer_postgres_change() {
    policy_case(
        "lww_pg",
        LWW,
        "UPDATE items SET v = 'pg', updated_at = '2024-01-01 00:00:02' WHERE id = 1",
        "UPDATE items SET v = 'my', updated_at = '2024-01-01 00:00:01' WHERE id = 1",
        "pg",
        "2024-01-01 00:00:02",
        &[("updated_at", Some("postgres")), ("v", Some("postgres"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_takes_the_newer_mariadb_change() {
    policy_case(
        "lww_my",
        LWW,
        "UPDATE items SET v = 'pg', updated_at = '2024-01-01 00:00:01' WHERE id = 1",
        "UPDATE items SET v = 'my', updated_at = '2024-01-01 00:00:02' WHERE id = 1",
        "my",
        "2024-01-01 00:00:02",
        &[("updated_at", Some("mysql")), ("v", Some("mysql"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_tie_goes_to_the_default_tie_breaker_postgres() {
    policy_case(
        "lww_tie_pg",
        LWW,
        "UPDATE items SET v = 'pg', updated_at = '2024-01-01 00:00:05' WHERE id = 1",
        "UPDATE items SET v = 'my', updated_at = '2024-01-01 00:00:05' WHERE id = 1",
        "pg",
        "2024-01-01 00:00:05",
        // Both set the same timestamp: that column is no conflict.
        &[("v", Some("postgres"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_tie_goes_to_tie_breaker_mysql() {
    policy_case(
        "lww_tie_my",
        &format!("{LWW}\ntie_breaker = \"mysql\""),
        "UPDATE items SET v = 'pg', updated_at = '2024-01-01 00:00:05' WHERE id = 1",
        "UPDATE items SET v = 'my', updated_at = '2024-01-01 00:00:05' WHERE id = 1",
        "my",
        "2024-01-01 00:00:05",
        &[("v", Some("mysql"))],
    )
    .await;
}

/// Last-writer-wins across two Postgres transactions: Postgres changes `v`
/// at t=1 and then only `a` at t=3; MariaDB concurrently changes `v` at
/// t=2. The timestamp is the row's, not the column's: the newest row
/// version (Postgres', t=3) wins as a whole on both sides. (Deciding column
/// by column against the destination's current timestamp made the sides
/// diverge here: MariaDB kept 'my', Postgres kept 'pg'.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_converges_when_a_later_write_of_another_column_moves_the_timestamp() {
    let (db, cfg, run) = seeded("lww_later", LWW, "", 1).await;
    let run = concurrently(
        &db,
        &cfg,
        run,
        "UPDATE items SET v = 'pg', updated_at = '2024-01-01 00:00:01' WHERE id = 1;
         UPDATE items SET a = 'a-pg', updated_at = '2024-01-01 00:00:03' WHERE id = 1",
        "UPDATE items SET v = 'my', updated_at = '2024-01-01 00:00:02' WHERE id = 1",
    )
    .await;
    let (pg, my) = both_rows(&db).await;
    assert_eq!(pg, my, "the sides converge");
    assert_eq!(pg, vec![row(1, "a-pg", "b0", "pg", Some("2024-01-01 00:00:03"))]);
    run.stop().await;
}

/// `manual` pair, rows 1 and 2 with `v` changed on both sides while the
/// pipeline was stopped; returns with the pipeline running again and the
/// four open conflicts checked.
pub(super) async fn manual_conflicts(test: &str) -> (TestDb, PathBuf, InProcess) {
    let (db, cfg, run) = seeded(test, "on_conflict = \"manual\"", "", 2).await;
    let run = concurrently(
        &db,
        &cfg,
        run,
        "UPDATE items SET v = 'pg' WHERE id IN (1, 2)",
        "UPDATE items SET v = 'my' WHERE id IN (1, 2)",
    )
    .await;
    let ts = Some("2024-01-01 00:00:00");
    assert_eq!(
        both_rows(&db).await,
        (vec![row(1, "a0", "b0", "pg", ts), row(2, "a0", "b0", "pg", ts)], vec![row(1, "a0", "b0", "my", ts), row(2, "a0", "b0", "my", ts)]),
        "each side keeps its own value"
    );
    let open = |id| conflict(id, "v", Some("pg"), Some("my"), "manual", None);
    assert_eq!(pg_conflicts(&db).await, vec![open(1), open(2)], "open conflicts in Postgres (mysql→postgres applier)");
    assert_eq!(my_conflicts(&db).await, vec![open(1), open(2)], "open conflicts in MariaDB (postgres→mysql applier)");
    (db, cfg, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_keeps_both_values_and_records_open_conflicts_on_both_sides() {
    let (db, _cfg, run) = manual_conflicts("pol_manual").await;
    // Nothing moves afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ts = Some("2024-01-01 00:00:00");
    assert_eq!(
        both_rows(&db).await,
        (vec![row(1, "a0", "b0", "pg", ts), row(2, "a0", "b0", "pg", ts)], vec![row(1, "a0", "b0", "my", ts), row(2, "a0", "b0", "my", ts)]),
    );
    assert_eq!(pg_conflicts(&db).await.len() + my_conflicts(&db).await.len(), 4);
    run.stop().await;
}

/// Waits until no session holds tandem's replication origin (a stopped
/// applier's session may still be closing).
async fn origin_released(db: &TestDb) {
    pg_behind_tandems_back(db, "SELECT 1").await;
}

/// Resolves row 1 with the library taking Postgres' value and row 2 with
/// the CLI taking MariaDB's value; checks the values and the records.
async fn resolve_and_check(db: &TestDb, cfg: &PathBuf) {
    let config = tandem::config::load(cfg).unwrap();
    let listed = tandem::ops::conflicts::list(&config, Some("items"), false).await.unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    let row1: Vec<_> = listed.iter().filter(|c| c.key["id"] == "1").collect();
    let taken = tandem::ops::conflicts::resolve(&config, &row1[0].id, Side::Postgres).await.unwrap();
    assert_eq!(taken, "pg");
    let mut my = db.my().await;
    my_wait(&mut my, "SELECT v FROM items WHERE id = 1", Some("pg"), WAIT).await;

    let out = std::process::Command::new(tandem_bin())
        .args(["conflicts", "list", "--pair", "items", "--format", "json", "-c"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<String> = json["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["key"]["id"] == "2")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "row 2 has one open conflict on each side: {json}");
    let out = std::process::Command::new(tandem_bin()).args(["conflicts", "resolve", &ids[0], "--take", "mysql", "-c"]).arg(cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pg = db.pg().await;
    pg_wait(&pg, "SELECT v FROM items WHERE id = 2", Some("my"), WAIT).await;

    let all = pg_conflicts(db).await.into_iter().chain(my_conflicts(db).await).collect::<Vec<_>>();
    assert_eq!(all.len(), 4, "resolving adds no conflict rows: {all:?}");
    // The resolved records name the side taken (the twin record of the same conflict on the other
    // side may stay open or be closed along with it).
    let resolved: Vec<_> = all.iter().filter(|c| c[7].as_deref() == Some("1")).map(|c| (c[1].clone(), c[6].clone())).collect();
    assert!(resolved.contains(&(Some("{\"id\":\"1\"}".into()), Some("postgres".into()))), "{all:?}");
    assert!(resolved.contains(&(Some("{\"id\":\"2\"}".into()), Some("mysql".into()))), "{all:?}");
    for (key, winner) in &resolved {
        let want = if key.as_deref() == Some("{\"id\":\"1\"}") { "postgres" } else { "mysql" };
        assert_eq!(winner.as_deref(), Some(want), "{all:?}");
    }
}

/// Both sides hold the resolved values, now and 2 s later (the resolving
/// writes are origin-tagged: no echo, no new conflict).
async fn resolved_values_stay(db: &TestDb) {
    barrier(db, 1).await;
    let ts = Some("2024-01-01 00:00:00");
    let want = vec![row(1, "a0", "b0", "pg", ts), row(2, "a0", "b0", "my", ts)];
    assert_eq!(both_rows(db).await, (want.clone(), want.clone()), "both sides hold the chosen values");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(both_rows(db).await, (want.clone(), want));
    assert_eq!(pg_conflicts(db).await.len() + my_conflicts(db).await.len(), 4, "no new conflict rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_resolve_with_the_pipeline_stopped_makes_both_sides_equal() {
    let (db, cfg, run) = manual_conflicts("resolve_stopped").await;
    run.stop().await;
    origin_released(&db).await;
    resolve_and_check(&db, &cfg).await;
    let run = InProcess::start(&cfg).await;
    resolved_values_stay(&db).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_resolve_while_the_pipeline_runs_makes_both_sides_equal() {
    let (db, cfg, run) = manual_conflicts("resolve_running").await;
    resolve_and_check(&db, &cfg).await;
    resolved_values_stay(&db).await;
    run.stop().await;
}
