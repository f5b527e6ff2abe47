//! Postgres → MariaDB, end to end against the throwaway servers: every test
//! writes in Postgres and asserts on both databases' contents.

use super::two_pairs::*;
use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_updates_deletes_and_truncate_arrive_on_composite_and_renamed_pairs() {
    let db = support::fresh_db("dml").await;
    create_tables(&db).await;
    let run = InProcess::start(&db.write_config(&pairs(&db))).await;
    let pg = db.pg().await;

    pg.batch_execute(
        "INSERT INTO accounts VALUES (1, 1, 'one', 10.50, '2024-01-31'), (1, 2, 'two', NULL, NULL), (2, 1, 'it''s', -3.25, '1999-12-31');
         INSERT INTO people VALUES (1, 'Ada', '+44 1', true, 0), (2, 'Grace', NULL, false, 0), (3, 'Émile 😀', '555', NULL, 0);",
    )
    .await
    .unwrap();
    assert_eq!(both_equal(&db).await, (3, 3));

    pg.batch_execute(
        "UPDATE accounts SET balance = balance * 2, name = 'ONE' WHERE tenant = 1 AND id = 1;
         UPDATE accounts SET id = 3 WHERE tenant = 1 AND id = 2;
         UPDATE people SET phone = '+1 555', active = NULL, counter = counter + 1 WHERE id = 2;",
    )
    .await
    .unwrap();
    assert_eq!(both_equal(&db).await, (3, 3));
    let mut my = db.my().await;
    let moved: Option<String> = my.query_first("SELECT name FROM accounts WHERE tenant = 1 AND id = 3").await.unwrap();
    assert_eq!(moved.as_deref(), Some("two"), "a key update moves the row");

    pg.batch_execute("DELETE FROM accounts WHERE tenant = 2; DELETE FROM people WHERE id IN (1, 3);").await.unwrap();
    assert_eq!(both_equal(&db).await, (2, 1));

    pg.batch_execute("TRUNCATE accounts").await.unwrap();
    assert_eq!(both_equal(&db).await, (0, 1));

    pg.batch_execute("INSERT INTO accounts VALUES (5, 5, 'after truncate', 1, NULL)").await.unwrap();
    assert_eq!(both_equal(&db).await, (1, 1));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_row_transaction_becomes_visible_all_at_once() {
    let db = support::fresh_db("atomic").await;
    create_tables(&db).await;
    let run = InProcess::start(&db.write_config(&pairs(&db))).await;
    let pg = db.pg().await;
    const N: i64 = 20_000;

    // A reader polls MariaDB while the transaction is applied.
    let my_url = db.my_url.clone();
    let poller = tokio::spawn(async move {
        let mut my = mysql_async::Conn::from_url(my_url).await.unwrap();
        let mut seen = Vec::new();
        let t0 = std::time::Instant::now();
        loop {
            let n: i64 = my.query_first("SELECT COUNT(*) FROM people").await.unwrap().unwrap();
            seen.push(n);
            if n == N || t0.elapsed() > WAIT {
                return seen;
            }
        }
    });
    pg.batch_execute(&format!(
        "INSERT INTO people (id, full_name, phone) SELECT g, 'person ' || g, NULL FROM generate_series(1, {N}) g"
    ))
    .await
    .unwrap();
    let seen = poller.await.unwrap();
    assert_eq!(seen.last(), Some(&N), "the transaction arrived");
    assert!(seen.iter().all(|&n| n == 0 || n == N), "a reader saw part of the transaction: {:?}", seen.iter().filter(|&&n| n != 0 && n != N).take(5).collect::<Vec<_>>());
    assert_eq!(both_equal(&db).await.1, N as usize);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_does_not_touch_a_toasted_column_keeps_its_value() {
    let db = support::fresh_db("toast").await;
    let pg = db.pg().await;
    pg.batch_execute(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body LONGTEXT)").await.unwrap();
    let cfg = db.write_config(&format!("[[pairs]]\nname = \"docs\"\npostgres = \"public.docs\"\nmysql = \"{}.docs\"\n", db.name));
    let run = InProcess::start(&cfg).await;

    // 200 KB, stored out of line and uncompressed: a TOAST value.
    pg.batch_execute("INSERT INTO docs SELECT 1, 'v1', string_agg(md5(g::text), '') FROM generate_series(1, 6250) g").await.unwrap();
    let sql = "SELECT id, title, md5(body), length(body) FROM docs ORDER BY id";
    let before = wait_equal(&pg, sql, &mut my, sql, WAIT).await;
    assert_eq!(before[0][3].as_deref(), Some("200000"));

    pg.batch_execute("UPDATE docs SET title = 'v2' WHERE id = 1").await.unwrap();
    let after = wait_equal(&pg, sql, &mut my, sql, WAIT).await;
    assert_eq!(after[0][1].as_deref(), Some("v2"));
    assert_eq!(after[0][2], before[0][2], "the untouched TOAST column keeps its value in MariaDB");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_is_idempotent() {
    let db = support::fresh_db("init_twice").await;
    create_tables(&db).await;
    let cfg = db.write_config(&pairs(&db));
    init_cli(&cfg);
    init_cli(&cfg);
    let pg = db.pg().await;
    let rows = pg_rows(&pg, "SELECT count(*) FROM pg_publication_tables WHERE pubname LIKE 'tandem_%' AND schemaname = 'public'").await;
    assert_eq!(rows[0][0].as_deref(), Some("2"));
    let ident = pg_rows(&pg, "SELECT relreplident FROM pg_class WHERE relname IN ('accounts', 'people')").await;
    assert!(ident.iter().all(|r| r[0].as_deref() == Some("f")), "REPLICA IDENTITY FULL: {ident:?}");
}
