//! Generated and identity columns in both directions (issue 6): a pair whose
//! tables compute columns on both servers — MariaDB `VIRTUAL` and `STORED`
//! generated columns, Postgres `GENERATED ALWAYS AS (…) STORED` columns, and a
//! Postgres `GENERATED ALWAYS AS IDENTITY` key paired with a MariaDB
//! `AUTO_INCREMENT` key — all mapped by the pair.
//!
//! With `tandem run` (both directions in one process), inserts, updates
//! (including of the generated columns' inputs) and deletes on each side
//! replicate without errors, every computed value is the one its own server
//! computed (the appliers never write a generated column), identity keys
//! keep their values on the other side (written with OVERRIDING SYSTEM
//! VALUE), and both sides — and `tandem check` — end equal.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::Duration;
use tandem::ops::check::{check, CheckOptions};

const WAIT: Duration = Duration::from_secs(30);

const PG_TABLE: &str = "CREATE TABLE gen (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qty int NOT NULL,
    price numeric(10,2) NOT NULL,
    total numeric(12,2) GENERATED ALWAYS AS (qty * price) STORED,
    label varchar(40) GENERATED ALWAYS AS ('item-' || qty::text) STORED,
    note text
)";

const MY_TABLE: &str = "CREATE TABLE gen (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    qty INT NOT NULL,
    price DECIMAL(10,2) NOT NULL,
    total DECIMAL(12,2) AS (qty * price) VIRTUAL,
    label VARCHAR(40) AS (CONCAT('item-', qty)) STORED,
    note TEXT
) AUTO_INCREMENT = 1000001";

const PG_ROWS: &str = "SELECT id, qty, price, total, label, note FROM gen ORDER BY id";
const MY_ROWS: &str = "SELECT id, qty, price, total, label, note FROM gen ORDER BY id";

fn pair(db: &support::TestDb) -> String {
    format!("[[pairs]]\nname = \"gen\"\npostgres = \"public.gen\"\nmysql = \"{}.gen\"\n", db.name)
}

fn row(cells: &[&str]) -> Vec<Option<String>> {
    cells.iter().map(|c| (*c != "NULL").then(|| c.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_and_identity_columns_replicate_both_ways_computed_by_each_server() {
    let db = support::fresh_db("generated_both").await;
    let pg = db.pg().await;
    pg.batch_execute(PG_TABLE).await.unwrap();
    let mut my = db.my().await;
    my.query_drop(MY_TABLE).await.unwrap();
    let cfg = db.write_config(&pair(&db));
    let run = InProcess::start(&cfg).await;

    // Inserts on both sides: each server assigns its own key and computes its columns.
    pg.batch_execute("INSERT INTO gen (qty, price, note) VALUES (2, 1.50, 'pg one'), (3, 10.00, NULL)").await.unwrap();
    my.query_drop("INSERT INTO gen (qty, price, note) VALUES (4, 2.25, 'my one'), (5, 1.00, 'my two')").await.unwrap();
    let rows = wait_equal(&pg, PG_ROWS, &mut my, MY_ROWS, WAIT).await;
    assert_eq!(
        rows,
        vec![
            row(&["1", "2", "1.50", "3.00", "item-2", "pg one"]),
            row(&["2", "3", "10.00", "30.00", "item-3", "NULL"]),
            row(&["1000001", "4", "2.25", "9.00", "item-4", "my one"]),
            row(&["1000002", "5", "1.00", "5.00", "item-5", "my two"]),
        ]
    );

    // Updates of the inputs (recomputed at the destination), of a plain column
    // only, and multi-row updates, on both sides; a delete on each side.
    pg.batch_execute(
        "UPDATE gen SET qty = 7 WHERE id = 1000001;
         UPDATE gen SET note = 'pg note' WHERE id = 2;
         UPDATE gen SET price = price + 1 WHERE id IN (1, 1000002);
         DELETE FROM gen WHERE id = 2",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    my.query_drop("UPDATE gen SET qty = qty * 10, note = 'my note' WHERE id = 1").await.unwrap();
    my.query_drop("UPDATE gen SET price = 0.50 WHERE id = 1000001").await.unwrap();
    my.query_drop("INSERT INTO gen (qty, price, note) VALUES (6, 3.00, 'my three')").await.unwrap();
    my.query_drop("DELETE FROM gen WHERE id = 1000002").await.unwrap();
    pg.batch_execute("INSERT INTO gen (qty, price) VALUES (8, 0.25)").await.unwrap();
    let rows = wait_equal(&pg, PG_ROWS, &mut my, MY_ROWS, WAIT).await;
    assert_eq!(
        rows,
        vec![
            row(&["1", "20", "2.50", "50.00", "item-20", "my note"]),
            row(&["3", "8", "0.25", "2.00", "item-8", "NULL"]),
            row(&["1000001", "7", "0.50", "3.50", "item-7", "my one"]),
            row(&["1000003", "6", "3.00", "18.00", "item-6", "my three"]),
        ]
    );

    run.stop().await;
    let report = check(&tandem::config::load(&cfg).unwrap(), &CheckOptions::default()).await.unwrap_or_else(|e| panic!("check: {e}"));
    assert!(report.in_sync, "tandem check finds the sides equal: {:?}", report.pairs);
    // No conflict and nothing quarantined on either side.
    for table in ["conflicts", "quarantine"] {
        let sql = format!("SELECT count(*) FROM tandem.{table} WHERE pipeline = '{}'", db.name);
        assert_eq!(pg_rows(&pg, &sql).await, vec![row(&["0"])], "postgres tandem.{table}");
        assert_eq!(my_rows(&mut my, &sql).await, vec![row(&["0"])], "mariadb tandem.{table}");
    }
}
