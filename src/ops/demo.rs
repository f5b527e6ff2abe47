//! `tandem demo`: a self-contained tour on throwaway local servers.
//!
//! Starts a PostgreSQL cluster and a MariaDB server from `crate::testbed`,
//! creates sample tables on both, writes a config, runs `init` and the
//! pipeline in-process, makes sample changes and tells, in plain words, what
//! arrived on the other side. With `--duration` it keeps making changes until
//! the time is up; without it, until Ctrl-C. The servers and their
//! directories are removed on exit.
//!
//! It never writes to stdout itself: every line of the story goes to the
//! sink the caller passes (the CLI prints them as they come), and the end is
//! a `DemoOutcome` (or the error that stopped it) for the caller to map to an
//! exit code.

use crate::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const DB: &str = "demo";

const PG_SCHEMA: &str = "
CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL, email text, loyalty_points int NOT NULL DEFAULT 0,
                               updated_at timestamp(6) NOT NULL DEFAULT now());
CREATE TABLE public.orders (customer_id bigint, order_no int, amount numeric(12,2) NOT NULL, note text,
                            PRIMARY KEY (customer_id, order_no));";

const MY_SCHEMA: &[&str] = &[
    "CREATE TABLE demo.customers (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, email VARCHAR(200), \
     loyalty_points INT NOT NULL DEFAULT 0, updated_at DATETIME(6) NOT NULL)",
    "CREATE TABLE demo.orders (customer_id BIGINT, order_no INT, amount DECIMAL(12,2) NOT NULL, note TEXT, \
     PRIMARY KEY (customer_id, order_no))",
];

/// Whatever stopped the demo (a server that did not start, a failed query,
/// a change that did not arrive in time); its text names what.
pub type DemoError = Box<dyn std::error::Error>;

/// How the demo ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOutcome {
    /// Conflicts the pipeline recorded (step 4 makes one).
    pub conflicts: usize,
    /// Customers both sides held at the end, when a duration was given.
    pub customers: Option<i64>,
}

/// Where the story goes, one line at a time.
struct Story<'a>(&'a mut dyn FnMut(&str));

impl Story<'_> {
    fn say(&mut self, line: impl AsRef<str>) {
        (self.0)(line.as_ref());
    }
}

/// Runs the demo, telling each step to `lines` as it happens; `duration`:
/// see the module doc.
pub async fn demo(duration: Option<Duration>, lines: &mut dyn FnMut(&str)) -> Result<DemoOutcome, DemoError> {
    let mut story = Story(lines);
    let started = Instant::now();
    story.say("Starting a throwaway PostgreSQL 15 cluster and a throwaway MariaDB server on free local ports…");
    let pg = PgCluster::start(PgOptions::default()).await?;
    let maria = MariaDb::start(MariaOptions::default()).await?;
    story.say(format!("  PostgreSQL on 127.0.0.1:{}   MariaDB on 127.0.0.1:{}", pg.port(), maria.port()));

    pg.create_database(DB).await?;
    maria.create_database(DB).await?;
    let pgc = pg.connect(DB).await?;
    pgc.batch_execute(PG_SCHEMA).await?;
    let mut my = maria.connect(DB).await?;
    for ddl in MY_SCHEMA {
        my.query_drop(*ddl).await?;
    }
    story.say("Created tables customers and orders (composite key) on both sides.");

    let dir = tempfile::tempdir()?;
    let cfg_path = dir.path().join("tandem.toml");
    std::fs::write(&cfg_path, config_text(&pg.url(DB), &maria.url(DB)))?;
    let cfg = crate::config::load(&cfg_path)?;
    for line in crate::ops::init::init(&cfg).await? {
        story.say(format!("init: {line}"));
    }

    let token = CancellationToken::new();
    crate::shutdown::on_signals(token.clone());
    let mut service = Service::start(&cfg, &token);
    story.say("tandem run started: postgres→mysql and mysql→postgres.\n");

    story.say("1. In PostgreSQL: inserting 3 customers and 2 orders in one transaction…");
    pgc.batch_execute(
        "BEGIN;
         INSERT INTO customers (id, name, email) VALUES (1, 'Ada Lovelace', 'ada@example.com'),
                (2, 'Grace Hopper', 'grace@example.com'), (3, 'Edsger Dijkstra', NULL);
         INSERT INTO orders VALUES (1, 1, 19.99, 'first order'), (2, 1, 250.00, NULL);
         COMMIT;",
    )
    .await?;
    wait_for(&mut my, "SELECT COUNT(*) FROM customers", 3).await?;
    show_mysql(&mut story, &mut my).await?;

    story.say("\n2. In MariaDB: Grace earns 100 loyalty points (a column MariaDB owns), a customer signs up there, Edsger is deleted…");
    my.query_drop(
        "UPDATE customers SET loyalty_points = loyalty_points + 100, updated_at = UTC_TIMESTAMP(6) WHERE id = 2;
         INSERT INTO customers (id, name, email, loyalty_points, updated_at) VALUES (4, 'Barbara Liskov', 'barbara@example.com', 5, UTC_TIMESTAMP(6));
         DELETE FROM customers WHERE id = 3;",
    )
    .await?;
    wait_for_pg(&pgc, "SELECT count(*) FROM customers WHERE id = 4 OR (id = 2 AND loyalty_points = 100)", 2).await?;
    wait_for_pg(&pgc, "SELECT count(*) FROM customers WHERE id = 3", 0).await?;
    show_pg(&mut story, &pgc).await?;

    story.say("\n3. Ownership: email belongs to PostgreSQL. MariaDB changes Ada's email anyway…");
    my.query_drop("UPDATE customers SET email = 'ada@hacked.example' WHERE id = 1").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pg_email: Option<String> = pgc.query_one("SELECT email FROM customers WHERE id = 1", &[]).await?.get(0);
    story.say(format!("   PostgreSQL still has {:?}: the change was not propagated (counted as an ownership violation and logged).", pg_email.unwrap_or_default()));
    story.say("   PostgreSQL then sets it again, and its value wins on both sides:");
    pgc.batch_execute("UPDATE customers SET email = 'ada@lovelace.example', updated_at = now() WHERE id = 1").await?;
    wait_for(&mut my, "SELECT COUNT(*) FROM customers WHERE email = 'ada@lovelace.example'", 1).await?;
    story.say("   MariaDB: email = ada@lovelace.example");

    story.say("\n4. A conflict: with tandem paused, both sides rename customer 2 at different times…");
    service.stop().await?;
    pgc.batch_execute("UPDATE customers SET name = 'Grace B. Hopper (pg)', updated_at = now() - interval '1 minute' WHERE id = 2").await?;
    my.query_drop("UPDATE customers SET name = 'Rear Admiral Grace Hopper (mysql)', updated_at = UTC_TIMESTAMP(6) WHERE id = 2").await?;
    service = Service::start(&cfg, &token);
    wait_for_pg(&pgc, "SELECT count(*) FROM customers WHERE name LIKE '%(mysql)'", 1).await?;
    wait_for(&mut my, "SELECT COUNT(*) FROM customers WHERE name LIKE '%(mysql)'", 1).await?;
    story.say("   last-writer-wins: the MariaDB rename is newer, so both sides now say 'Rear Admiral Grace Hopper (mysql)'.");
    let conflicts = crate::ops::conflicts::list(&cfg, None, true).await?;
    let recorded = conflicts.len();
    for c in conflicts {
        story.say(format!(
            "   recorded conflict {}: pair {} key {} column {}: postgres={:?} mysql={:?} → {} wins",
            c.id,
            c.pair,
            c.key,
            c.column,
            c.postgres_value.unwrap_or_default(),
            c.mysql_value.unwrap_or_default(),
            c.winner.unwrap_or_else(|| "nobody yet".into())
        ));
    }

    let mut n = 10i64;
    let mut customers = None;
    if let Some(limit) = duration {
        story.say(format!("\n5. Until {}s have passed: a new customer every second, alternating sides…", limit.as_secs()));
        while (started.elapsed() < limit || n < 12) && !token.is_cancelled() {
            if n % 2 == 0 {
                pgc.execute("INSERT INTO customers (id, name) VALUES ($1, $2)", &[&n, &format!("Customer {n} (from postgres)")]).await?;
            } else {
                my.exec_drop("INSERT INTO customers (id, name, updated_at) VALUES (?, ?, UTC_TIMESTAMP(6))", (n, format!("Customer {n} (from mysql)"))).await?;
            }
            n += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let total: i64 = pgc.query_one("SELECT count(*) FROM customers", &[]).await?.get(0);
        wait_for(&mut my, "SELECT COUNT(*) FROM customers", total).await?;
        story.say(format!("Both sides now have the same {total} customers."));
        customers = Some(total);
        token.cancel();
    } else {
        story.say("\nThe pipeline keeps running: change rows on either side and watch them arrive; Ctrl-C stops.");
        story.say(format!("  psql {}", pg.url(DB)));
        story.say(format!("  mariadb -h 127.0.0.1 -P {} -u root {DB}", maria.port()));
    }
    service.stop().await?;
    story.say("Stopped cleanly; the throwaway servers are being removed.");
    Ok(DemoOutcome { conflicts: recorded, customers })
}

/// The pipeline running in this process.
struct Service {
    token: CancellationToken,
    task: tokio::task::JoinHandle<crate::Result<()>>,
}

impl Service {
    fn start(cfg: &crate::config::Config, parent: &CancellationToken) -> Service {
        let token = parent.child_token();
        let (c, t) = (cfg.clone(), token.clone());
        Service { token, task: tokio::spawn(async move { crate::run::run(&c, t).await }) }
    }

    async fn stop(self) -> Result<(), DemoError> {
        self.token.cancel();
        self.task.await??;
        Ok(())
    }
}

fn config_text(pg_url: &str, my_url: &str) -> String {
    format!(
        r#"[pipeline]
name = "demo"

[postgres]
url = "{pg_url}"

[mysql]
url = "{my_url}"
server_id = 4242

[apply]
max_batch_delay_ms = 20

[[pairs]]
name = "customers"
postgres = "public.customers"
mysql = "demo.customers"
default_owner = "both"
on_conflict = "last-writer-wins"
timestamp_column = "updated_at"

[pairs.columns]
email = "postgres"
loyalty_points = "mysql"

[[pairs]]
name = "orders"
postgres = "public.orders"
mysql = "demo.orders"
"#
    )
}

async fn wait_for(my: &mut mysql_async::Conn, sql: &str, want: i64) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Option<i64> = my.query_first(sql).await?;
        if got == Some(want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for `{sql}` = {want} in MariaDB (got {got:?})").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_pg(pg: &tokio_postgres::Client, sql: &str, want: i64) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: i64 = pg.query_one(sql, &[]).await?.get(0);
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for `{sql}` = {want} in PostgreSQL (got {got})").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn show_pg(story: &mut Story<'_>, pg: &tokio_postgres::Client) -> Result<(), DemoError> {
    story.say("  PostgreSQL customers now:");
    for r in pg.query("SELECT id, name, email, loyalty_points FROM customers ORDER BY id", &[]).await? {
        let (id, name, email, points): (i64, String, Option<String>, i32) = (r.get(0), r.get(1), r.get(2), r.get(3));
        story.say(format!("    {id:>3}  {name:<18} {:<20} {points} points", email.unwrap_or_else(|| "-".into())));
    }
    Ok(())
}

async fn show_mysql(story: &mut Story<'_>, my: &mut mysql_async::Conn) -> Result<(), DemoError> {
    let rows: Vec<(i64, String, Option<String>, i32)> =
        my.query("SELECT id, name, email, loyalty_points FROM customers ORDER BY id").await?;
    story.say("  MariaDB customers now:");
    for (id, name, email, points) in rows {
        story.say(format!("    {id:>3}  {name:<18} {:<20} {points} points", email.unwrap_or_else(|| "-".into())));
    }
    let orders: Vec<(i64, i32, String)> = my.query("SELECT customer_id, order_no, CAST(amount AS CHAR) FROM orders ORDER BY 1, 2").await?;
    story.say("  MariaDB orders now:");
    for (c, o, amount) in orders {
        story.say(format!("    customer {c} order {o}: {amount}"));
    }
    Ok(())
}
