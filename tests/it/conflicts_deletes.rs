//! Deletes, missing rows and re-created rows between the two directions
//! (DESIGN §3): a delete against a concurrent update, an update of a row the
//! destination deleted (`missing_row`), `deletes = "postgres"`, and a key
//! deleted and inserted again on one side while the other side still
//! changes the old row (`tandem::echo`). Helpers come from
//! `conflicts`.

use super::conflicts::*;
use super::util::*;
use crate::support::TestDb;
use mysql_async::prelude::Queryable;


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_wins_over_a_concurrent_update() {
    let (db, cfg, run) = seeded("del_upd", "", "", 3).await;
    let run = concurrently(
        &db,
        &cfg,
        run,
        "DELETE FROM items WHERE id = 1; UPDATE items SET v = 'pg' WHERE id = 3",
        "UPDATE items SET v = 'my' WHERE id = 1; DELETE FROM items WHERE id = 3",
    )
    .await;
    let ts = Some("2024-01-01 00:00:00");
    let want = vec![row(2, "a0", "b0", "v0", ts)];
    assert_eq!(both_rows(&db).await, (want.clone(), want), "rows 1 and 3 are gone on both sides");
    assert!(pg_conflicts(&db).await.is_empty() && my_conflicts(&db).await.is_empty());
    run.stop().await;
}

/// Postgres deletes row 1 and inserts it again (a new row with the same
/// key) while MariaDB deletes the old row 1. Whatever is decided, both sides
/// must end up equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinsert_concurrent_with_a_delete_of_the_old_row_converges() {
    converges_after_concurrent(
        "reinsert_del",
        "",
        "DELETE FROM items WHERE id = 1; INSERT INTO items VALUES (1, 'a-pg', 'b-pg', 'v-pg', '2024-01-01 00:00:01')",
        "DELETE FROM items WHERE id = 1",
    )
    .await;
}

/// Seeds two rows, runs `pg_sql` and `my_sql` with the pipeline stopped,
/// resumes it and asserts that both sides end equal.
async fn converges_after_concurrent(test: &str, settings: &str, pg_sql: &str, my_sql: &str) {
    let (db, cfg, run) = seeded(test, settings, "", 2).await;
    let run = concurrently(&db, &cfg, run, pg_sql, my_sql).await;
    let (pg, my) = converged(&db).await;
    assert_eq!(pg, my, "the sides converge");
    run.stop().await;
}

/// Postgres deletes row 1 and inserts it again while MariaDB updates the old
/// row 1 (mysql-wins, so MariaDB wins column conflicts). The update was
/// concurrent with the delete (delete wins); whatever is decided, both sides
/// must end up equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinsert_concurrent_with_an_update_of_the_old_row_converges() {
    converges_after_concurrent(
        "reinsert_upd",
        "on_conflict = \"mysql-wins\"",
        "DELETE FROM items WHERE id = 1; INSERT INTO items VALUES (1, 'a-pg', 'b-pg', 'v-pg', '2024-01-01 00:00:01')",
        "UPDATE items SET v = 'v-my' WHERE id = 1",
    )
    .await;
}

/// The mirror image: MariaDB deletes row 1 and inserts it again while
/// Postgres updates the old row 1 (postgres-wins). Pins that the binlog
/// source remembers MariaDB's own deletes even in a transaction too small to
/// be sent in chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_reinsert_concurrent_with_a_postgres_update_of_the_old_row_converges() {
    converges_after_concurrent(
        "my_reinsert_upd",
        "on_conflict = \"postgres-wins\"",
        "UPDATE items SET v = 'v-pg' WHERE id = 1",
        "DELETE FROM items WHERE id = 1; INSERT INTO items VALUES (1, 'a-my', 'b-my', 'v-my', '2024-01-01 00:00:01')",
    )
    .await;
}

/// Postgres deletes row 1 while MariaDB updates it and then deletes it too,
/// in two transactions (`missing_row = "insert"`: the update brings row 1
/// back in Postgres, where MariaDB's delete then removes it again). Both
/// sides deleted the row, so it stays gone: the short-lived re-creation in
/// Postgres is not forwarded to MariaDB (`echo`), where it
/// would bring back a row neither side has any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_both_sides_delete_stays_deleted_when_mysql_updated_it_first() {
    stays_deleted("del_upd_del", "DELETE FROM items WHERE id = 1", "UPDATE items SET v = 'my' WHERE id = 1; DELETE FROM items WHERE id = 1").await;
}

/// The mirror image, through the binlog source's echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_both_sides_delete_stays_deleted_when_postgres_updated_it_first() {
    stays_deleted(
        "my_del_upd_del",
        "BEGIN; UPDATE items SET v = 'pg' WHERE id = 1; COMMIT; BEGIN; DELETE FROM items WHERE id = 1; COMMIT",
        "DELETE FROM items WHERE id = 1",
    )
    .await;
}

/// Runs `pg_sql` and `my_sql` with the pipeline stopped (`concurrently`),
/// both of which delete row 1, and asserts that row 1 is gone on both sides
/// once every forward has had its trip.
async fn stays_deleted(test: &str, pg_sql: &str, my_sql: &str) {
    let (db, cfg, run) = seeded(test, "missing_row = \"insert\"", "", 2).await;
    let run = concurrently(&db, &cfg, run, pg_sql, my_sql).await;
    // A forward of what one side's echo wrote leaves after it (barrier 1) and any
    // forward back after that (barrier 2).
    barrier(&db, 1).await;
    barrier(&db, 2).await;
    let (pg, my) = both_rows(&db).await;
    let ids = |rows: &Rows| rows.iter().filter_map(|r| r[0].clone()).filter(|id| id.parse::<i32>().is_ok_and(|n| n < 900)).collect::<Vec<_>>();
    assert_eq!((ids(&pg), ids(&my)), (vec!["2".to_string()], vec!["2".to_string()]), "row 1 is gone on both sides");
    assert_eq!(pg, my, "the sides are equal");
    run.stop().await;
}

/// Row 1 deleted in Postgres behind tandem's back, then updated in MariaDB.
async fn missing_row_case(test: &str, settings: &str) -> (TestDb, InProcess) {
    let (db, cfg, run) = seeded(test, settings, "", 2).await;
    run.stop().await;
    pg_behind_tandems_back(&db, "DELETE FROM items WHERE id = 1").await;
    db.my().await.query_drop("UPDATE items SET v = 'my' WHERE id = 1").await.unwrap();
    let run = InProcess::start(&cfg).await;
    barrier(&db, 0).await;
    (db, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_row_ignore_drops_an_update_of_a_row_deleted_at_the_destination() {
    let (db, run) = missing_row_case("missing_ignore", "missing_row = \"ignore\"").await;
    let ts = Some("2024-01-01 00:00:00");
    let (pg, my) = both_rows(&db).await;
    assert_eq!(pg, vec![row(2, "a0", "b0", "v0", ts)], "Postgres still has no row 1");
    assert_eq!(my, vec![row(1, "a0", "b0", "my", ts), row(2, "a0", "b0", "v0", ts)], "the delete never reached MariaDB");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_row_insert_brings_back_a_row_deleted_at_the_destination() {
    let (db, run) = missing_row_case("missing_insert", "missing_row = \"insert\"").await;
    let ts = Some("2024-01-01 00:00:00");
    let want = vec![row(1, "a0", "b0", "my", ts), row(2, "a0", "b0", "v0", ts)];
    assert_eq!(both_rows(&db).await, (want.clone(), want), "Postgres got row 1 back, whole");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_postgres_propagates_only_postgres_deletes() {
    let (db, _cfg, run) = seeded("deletes_pg", "deletes = \"postgres\"", "", 3).await;
    let pg = db.pg().await;
    let mut my = db.my().await;
    my.query_drop("DELETE FROM items WHERE id = 1").await.unwrap();
    barrier(&db, 0).await;
    let ts = Some("2024-01-01 00:00:00");
    let (p, m) = both_rows(&db).await;
    assert_eq!(p, vec![row(1, "a0", "b0", "v0", ts), row(2, "a0", "b0", "v0", ts), row(3, "a0", "b0", "v0", ts)], "Postgres keeps row 1");
    assert_eq!(m, vec![row(2, "a0", "b0", "v0", ts), row(3, "a0", "b0", "v0", ts)]);

    pg.batch_execute("DELETE FROM items WHERE id = 2").await.unwrap();
    my_wait(&mut my, "SELECT COUNT(*) FROM items WHERE id = 2", Some("0"), WAIT).await;
    barrier(&db, 1).await;
    let (p, m) = both_rows(&db).await;
    assert_eq!(p, vec![row(1, "a0", "b0", "v0", ts), row(3, "a0", "b0", "v0", ts)]);
    assert_eq!(m, vec![row(3, "a0", "b0", "v0", ts)], "a Postgres delete reaches MariaDB");
    run.stop().await;
}
