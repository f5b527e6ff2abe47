//! The two pairs most replication tests use — one with a composite key, one
//! with a column renamed on the MySQL side — created on both sides, and a
//! check that both sides hold the same rows.

use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(30);

/// Two pairs: a composite key, and a column renamed on the MySQL side.
pub const PAIRS: &str = r#"
[[pairs]]
name = "accounts"
postgres = "public.accounts"
mysql = "{db}.accounts"

[[pairs]]
name = "people"
postgres = "public.people"
mysql = "{db}.people"

[pairs.columns]
phone = { mysql = "phone_number" }
"#;

pub async fn create_tables(db: &support::TestDb) {
    db.pg()
        .await
        .batch_execute(
            "CREATE TABLE accounts (tenant int, id int, name text NOT NULL, balance numeric(12,2), opened date,
                                    PRIMARY KEY (tenant, id));
             CREATE TABLE people (id bigint PRIMARY KEY, full_name varchar(100), phone text, active boolean,
                                  counter int NOT NULL DEFAULT 0);",
        )
        .await
        .unwrap();
    let mut my = db.my().await;
    my.query_drop(
        "CREATE TABLE accounts (tenant INT, id INT, name TEXT NOT NULL, balance DECIMAL(12,2), opened DATE,
                                PRIMARY KEY (tenant, id))",
    )
    .await
    .unwrap();
    my.query_drop(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, full_name VARCHAR(100), phone_number TEXT, active TINYINT(1),
                              counter INT NOT NULL DEFAULT 0)",
    )
    .await
    .unwrap();
}

pub const PG_ACCOUNTS: &str = "SELECT tenant, id, name, balance, opened FROM accounts ORDER BY 1, 2";
pub const MY_ACCOUNTS: &str = "SELECT tenant, id, name, balance, opened FROM accounts ORDER BY 1, 2";
pub const PG_PEOPLE: &str = "SELECT id, full_name, phone, CASE WHEN active THEN 1 WHEN NOT active THEN 0 END, counter FROM people ORDER BY 1";
pub const MY_PEOPLE: &str = "SELECT id, full_name, phone_number, active, counter FROM people ORDER BY 1";

pub async fn both_equal(db: &support::TestDb) -> (usize, usize) {
    let pg = db.pg().await;
    let mut my = db.my().await;
    let a = wait_equal(&pg, PG_ACCOUNTS, &mut my, MY_ACCOUNTS, WAIT).await;
    let p = wait_equal(&pg, PG_PEOPLE, &mut my, MY_PEOPLE, WAIT).await;
    (a.len(), p.len())
}

/// The pairs' config for this test's databases.
pub fn pairs(db: &support::TestDb) -> String {
    PAIRS.replace("{db}", &db.name)
}
