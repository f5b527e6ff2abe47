//! Issue 23, item 5: partitioned tables.
//! - A declaratively partitioned Postgres table replicates through its root
//!   (`publish_via_partition_root`, every partition REPLICA IDENTITY FULL,
//!   set by `init`): rows in any partition, updates that move a row to
//!   another partition, deletes, and MySQL rows routed into partitions.
//! - A table partitioned by inheritance with INSERT rules (and a table with
//!   rules only) is refused by `validate` with the remedy; `init` refuses it
//!   too and publishes nothing (no child tables), so the two agree.

use super::type_ranges::validate;
use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn pairs(db: &TestDb, names: &[&str]) -> String {
    names.iter().map(|n| format!("[[pairs]]\nname = \"{n}\"\npostgres = \"public.{n}\"\nmysql = \"{}.{n}\"\n\n", db.name)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaratively_partitioned_table_replicates_through_its_root() {
    let db = support::fresh_db("part_decl").await;
    let pg = db.pg().await;
    pg.batch_execute(
        "CREATE TABLE rental (id int NOT NULL, rental_date timestamp(0) NOT NULL, note text, PRIMARY KEY (id, rental_date)) PARTITION BY RANGE (rental_date);
         CREATE TABLE rental_2005 PARTITION OF rental FOR VALUES FROM ('2005-01-01') TO ('2006-01-01');
         CREATE TABLE rental_2006 PARTITION OF rental FOR VALUES FROM ('2006-01-01') TO ('2007-01-01')",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    my.query_drop("CREATE TABLE rental (id INT NOT NULL, rental_date DATETIME NOT NULL, note VARCHAR(50), PRIMARY KEY (id, rental_date)) DEFAULT CHARSET = utf8mb4")
        .await
        .unwrap();
    let cfg = db.write_config(&pairs(&db, &["rental"]));
    init_cli(&cfg);
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("INFO postgres table public.rental: is partitioned: replicated through its root"), "{said}");
    let idents = pg_rows(&pg, "SELECT relname::text, relreplident::text FROM pg_class WHERE relname LIKE 'rental%' AND relkind IN ('r', 'p') ORDER BY 1").await;
    assert!(idents.iter().all(|r| r[1].as_deref() == Some("f")), "init set REPLICA IDENTITY FULL on the root and every partition: {idents:?}");
    let via_root = pg_rows(&pg, &format!("SELECT pubviaroot::text FROM pg_publication WHERE pubname = 'tandem_{}'", db.name)).await;
    assert_eq!(via_root, vec![vec![Some("true".to_string())]]);
    // Partitioning an existing table's config again changes nothing: init twice, validate still clean.
    init_cli(&cfg);
    assert_eq!(validate(&cfg).0, Some(0));

    let run = InProcess::start(&cfg).await;
    let pg_sql = "SELECT id::text, to_char(rental_date, 'YYYY-MM-DD HH24:MI:SS'), note FROM rental ORDER BY id, rental_date";
    let my_sql = "SELECT CAST(id AS CHAR), DATE_FORMAT(rental_date, '%Y-%m-%d %H:%i:%s'), note FROM rental ORDER BY id, rental_date";
    pg.batch_execute("INSERT INTO rental VALUES (1, '2005-05-24 22:53:30', 'a'), (2, '2006-02-14 15:16:03', 'b'), (3, '2005-06-01 00:00:00', 'c')").await.unwrap();
    wait_equal(&pg, pg_sql, &mut my, my_sql, Duration::from_secs(60)).await;
    pg.batch_execute("UPDATE rental SET note = 'a2' WHERE id = 1").await.unwrap();
    // Moves row 3 from rental_2005 to rental_2006 (its key changes too).
    pg.batch_execute("UPDATE rental SET rental_date = '2006-06-01 00:00:00' WHERE id = 3").await.unwrap();
    pg.batch_execute("DELETE FROM rental WHERE id = 2").await.unwrap();
    let rows = wait_equal(&pg, pg_sql, &mut my, my_sql, Duration::from_secs(60)).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][1].as_deref(), Some("2006-06-01 00:00:00"));
    // MySQL rows are routed to their partitions.
    my.query_drop("INSERT INTO rental VALUES (4, '2005-12-31 23:59:59', 'd'), (5, '2006-01-01 00:00:00', 'e')").await.unwrap();
    my.query_drop("UPDATE rental SET note = 'a3' WHERE id = 1").await.unwrap();
    wait_equal(&pg, pg_sql, &mut my, my_sql, Duration::from_secs(60)).await;
    let where_rows = pg_rows(&pg, "SELECT tableoid::regclass::text, id::text FROM rental ORDER BY id").await;
    assert_eq!(where_rows[2], vec![Some("rental_2005".to_string()), Some("4".to_string())]);
    assert_eq!(where_rows[3], vec![Some("rental_2006".to_string()), Some("5".to_string())]);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inheritance_children_and_rules_are_refused_alike_by_validate_and_init() {
    let db = support::fresh_db("part_inherit").await;
    let pg = db.pg().await;
    pg.batch_execute(
        "CREATE TABLE payment (id int PRIMARY KEY, amount numeric(5,2), payment_date timestamp(0) NOT NULL);
         CREATE TABLE payment_p2007_01 (CHECK (payment_date >= '2007-01-01' AND payment_date < '2007-02-01')) INHERITS (payment);
         CREATE TABLE payment_p2007_02 (CHECK (payment_date >= '2007-02-01' AND payment_date < '2007-03-01')) INHERITS (payment);
         CREATE RULE payment_insert_p2007_01 AS ON INSERT TO payment WHERE new.payment_date >= '2007-01-01' AND new.payment_date < '2007-02-01'
           DO INSTEAD INSERT INTO payment_p2007_01 VALUES (new.*);
         CREATE TABLE ruled (id int PRIMARY KEY, v text);
         CREATE TABLE ruled_log (id int, v text);
         CREATE RULE ruled_log AS ON UPDATE TO ruled DO ALSO INSERT INTO ruled_log VALUES (new.id, new.v);
         CREATE TABLE fine (id int PRIMARY KEY)",
    )
    .await
    .unwrap();
    let mut my = db.my().await;
    for sql in [
        "CREATE TABLE payment (id INT PRIMARY KEY, amount DECIMAL(5,2), payment_date DATETIME NOT NULL)",
        "CREATE TABLE ruled (id INT PRIMARY KEY, v TEXT)",
        "CREATE TABLE fine (id INT PRIMARY KEY)",
    ] {
        my.query_drop(sql).await.unwrap();
    }
    let cfg = db.write_config(&pairs(&db, &["payment", "ruled", "fine"]));
    let (code, said) = validate(&cfg);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("PROBLEM postgres table public.payment: has inheritance children (public.payment_p2007_01, public.payment_p2007_02): their rows reach the replication stream as changes of the children"),
        "{said}"
    );
    assert!(said.contains("convert it to a declaratively partitioned table"), "{said}");
    assert!(said.contains("PROBLEM postgres table public.ruled: has rules (ruled_log (ON UPDATE))"), "{said}");
    // The publication check does not send the operator to `init` for them.
    let publication = said.lines().filter(|l| l.starts_with("PROBLEM postgres publication")).collect::<Vec<_>>();
    assert!(publication.iter().all(|l| !l.contains("payment") && !l.contains("ruled")), "{publication:?}");

    let out = std::process::Command::new(tandem_bin()).args(["init", "-c"]).arg(&cfg).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("pair payment: Postgres table public.payment has inheritance children"), "{text}");
    let published = pg_rows(&pg, &format!("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'tandem_{}'", db.name)).await;
    assert!(published.is_empty(), "init published nothing: {published:?}");

    // Without the refused pairs, init publishes only the table named, never children.
    let fine = db.write_config(&pairs(&db, &["fine"]));
    init_cli(&fine);
    let (code, said) = validate(&fine);
    assert_eq!(code, Some(0), "{said}");
    pg.batch_execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active").await.unwrap();
}
