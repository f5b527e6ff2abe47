//! Issue 23, acceptance: a schema in the style of a typical MySQL
//! application (a small film-rental database) with its hand-ported Postgres
//! twin: unsigned and small integer kinds, `YEAR` against a domain,
//! `tinyint(1)`, `TIMESTAMP … ON UPDATE CURRENT_TIMESTAMP`, `SET`, `ENUM`,
//! foreign keys with a cycle (store ↔ staff), a `last_update` trigger on
//! every Postgres table, a MySQL insert trigger that sets a date, a Postgres
//! table partitioned by inheritance with rules (payment) and one
//! partitioned declaratively (rental).
//!
//! `validate` reports only the payment table (it cannot be replicated as one
//! table) as a problem; without it, `init` and `validate` pass,
//! `backfill --all --from mysql` copies every table, changes on both sides
//! replicate (the triggers' values included), `tandem check` exits 0 and
//! both quarantines are empty.

use super::type_ranges::validate;
use super::util::*;
use crate::support::{self, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

const ACCEPTED: [&str; 7] = ["language", "film", "store", "staff", "customer", "rental", "inventory"];

const MY_SCHEMA: &[&str] = &[
    "CREATE TABLE language (language_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, name CHAR(20) NOT NULL,
       last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE film (film_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, title VARCHAR(128) NOT NULL, description TEXT,
       release_year YEAR, language_id TINYINT UNSIGNED NOT NULL, rental_duration TINYINT UNSIGNED NOT NULL DEFAULT 3,
       rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99, length SMALLINT UNSIGNED, rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',
       special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),
       last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
       FOREIGN KEY (language_id) REFERENCES language (language_id))",
    "CREATE TABLE store (store_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, manager_staff_id TINYINT UNSIGNED NOT NULL,
       last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE staff (staff_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(45) NOT NULL,
       store_id TINYINT UNSIGNED NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE,
       last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, FOREIGN KEY (store_id) REFERENCES store (store_id))",
    "ALTER TABLE store ADD FOREIGN KEY (manager_staff_id) REFERENCES staff (staff_id)",
    "CREATE TABLE customer (customer_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, store_id TINYINT UNSIGNED NOT NULL,
       first_name VARCHAR(45) NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE, create_date DATETIME NOT NULL,
       last_update TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, FOREIGN KEY (store_id) REFERENCES store (store_id))",
    "CREATE TRIGGER customer_create_date BEFORE INSERT ON customer FOR EACH ROW SET NEW.create_date = NOW()",
    "CREATE TABLE inventory (inventory_id MEDIUMINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, film_id SMALLINT UNSIGNED NOT NULL,
       store_id TINYINT UNSIGNED NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
       FOREIGN KEY (film_id) REFERENCES film (film_id), FOREIGN KEY (store_id) REFERENCES store (store_id))",
    "CREATE TABLE rental (rental_id INT NOT NULL AUTO_INCREMENT, rental_date DATETIME NOT NULL, inventory_id MEDIUMINT UNSIGNED NOT NULL,
       customer_id SMALLINT UNSIGNED NOT NULL, return_date DATETIME, staff_id TINYINT UNSIGNED NOT NULL,
       last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (rental_id, rental_date),
       FOREIGN KEY (inventory_id) REFERENCES inventory (inventory_id), FOREIGN KEY (customer_id) REFERENCES customer (customer_id),
       FOREIGN KEY (staff_id) REFERENCES staff (staff_id))",
    "CREATE TABLE payment (payment_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id SMALLINT UNSIGNED NOT NULL,
       staff_id TINYINT UNSIGNED NOT NULL, amount DECIMAL(5,2) NOT NULL, payment_date DATETIME NOT NULL)",
    "CREATE TRIGGER payment_date BEFORE INSERT ON payment FOR EACH ROW SET NEW.payment_date = NOW()",
];

const MY_DATA: &[&str] = &[
    "SET foreign_key_checks = 0",
    "INSERT INTO language (language_id, name, last_update) VALUES (1, 'English', '2006-02-15 05:02:19'), (2, 'Italian', '2006-02-15 05:02:19')",
    "INSERT INTO film VALUES
       (1, 'ACADEMY DINOSAUR', 'A Epic Drama of a Feminist', 2006, 1, 6, 0.99, 86, 'PG', 'Deleted Scenes,Behind the Scenes', '2006-02-15 05:03:42'),
       (2, 'ACE GOLDFINGER', NULL, 2006, 1, 3, 4.99, 48, 'G', 'Trailers,Deleted Scenes', '2006-02-15 05:03:42'),
       (3, 'ADAPTATION HOLES', 'A Astounding Reflection', NULL, 2, 7, 2.99, 50, 'NC-17', '', '2006-02-15 05:03:42')",
    "INSERT INTO store VALUES (1, 1, '2006-02-15 04:57:12'), (2, 2, '2006-02-15 04:57:12')",
    "INSERT INTO staff VALUES (1, 'Mike', 1, TRUE, '2006-02-15 03:57:16'), (2, 'Jon', 2, FALSE, '2006-02-15 03:57:16')",
    "INSERT INTO customer (customer_id, store_id, first_name, active, create_date, last_update) VALUES
       (1, 1, 'MARY', TRUE, NOW(), '2006-02-15 04:57:20'), (2, 1, 'PATRICIA', TRUE, NOW(), NULL), (3, 2, 'LINDA', FALSE, NOW(), '2006-02-15 04:57:20')",
    "INSERT INTO inventory VALUES (1, 1, 1, '2006-02-15 05:09:17'), (2, 2, 2, '2006-02-15 05:09:17'), (3, 3, 2, '2006-02-15 05:09:17')",
    "INSERT INTO rental VALUES
       (1, '2005-05-24 22:53:30', 1, 1, '2005-05-26 22:04:30', 1, '2006-02-15 21:30:53'),
       (2, '2005-05-24 22:54:33', 2, 2, NULL, 1, '2006-02-15 21:30:53'),
       (3, '2006-02-14 15:16:03', 3, 3, NULL, 2, '2006-02-16 02:30:53')",
    "INSERT INTO payment VALUES (1, 1, 1, 2.99, '2005-05-25 11:30:37')",
];

const PG_SCHEMA: &str = "
    CREATE DOMAIN year AS integer CONSTRAINT year_check CHECK (VALUE >= 1901 AND VALUE <= 2155);
    CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
    CREATE FUNCTION last_updated() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.last_update = CURRENT_TIMESTAMP; RETURN NEW; END $$;
    CREATE TABLE language (language_id integer PRIMARY KEY, name character(20) NOT NULL, last_update timestamp(0) NOT NULL DEFAULT now());
    CREATE TABLE film (film_id integer PRIMARY KEY, title varchar(128) NOT NULL, description text, release_year year,
      language_id smallint NOT NULL REFERENCES language, rental_duration smallint NOT NULL DEFAULT 3, rental_rate numeric(4,2) NOT NULL DEFAULT 4.99,
      length integer, rating mpaa_rating DEFAULT 'G', special_features text[], last_update timestamp(0) NOT NULL DEFAULT now());
    CREATE TABLE store (store_id integer PRIMARY KEY, manager_staff_id smallint NOT NULL, last_update timestamp(0) NOT NULL DEFAULT now());
    CREATE TABLE staff (staff_id integer PRIMARY KEY, first_name varchar(45) NOT NULL, store_id smallint NOT NULL REFERENCES store,
      active boolean NOT NULL DEFAULT true, last_update timestamp(0) NOT NULL DEFAULT now());
    ALTER TABLE store ADD FOREIGN KEY (manager_staff_id) REFERENCES staff;
    CREATE TABLE customer (customer_id integer PRIMARY KEY, store_id smallint NOT NULL REFERENCES store, first_name varchar(45) NOT NULL,
      active boolean NOT NULL DEFAULT true, create_date timestamp(0) NOT NULL DEFAULT now(), last_update timestamp(0) DEFAULT now());
    CREATE TABLE inventory (inventory_id integer PRIMARY KEY, film_id integer NOT NULL REFERENCES film, store_id smallint NOT NULL REFERENCES store,
      last_update timestamp(0) NOT NULL DEFAULT now());
    CREATE TABLE rental (rental_id integer NOT NULL, rental_date timestamp(0) NOT NULL, inventory_id integer NOT NULL REFERENCES inventory,
      customer_id integer NOT NULL REFERENCES customer, return_date timestamp(0), staff_id smallint NOT NULL REFERENCES staff,
      last_update timestamp(0) NOT NULL DEFAULT now(), PRIMARY KEY (rental_id, rental_date)) PARTITION BY RANGE (rental_date);
    CREATE TABLE rental_2005 PARTITION OF rental FOR VALUES FROM ('2005-01-01') TO ('2006-01-01');
    CREATE TABLE rental_2006 PARTITION OF rental FOR VALUES FROM ('2006-01-01') TO ('2007-01-01');
    CREATE TABLE payment (payment_id integer PRIMARY KEY, customer_id integer NOT NULL, staff_id smallint NOT NULL,
      amount numeric(5,2) NOT NULL, payment_date timestamp(0) NOT NULL);
    CREATE TABLE payment_p2005_05 (CHECK (payment_date >= '2005-05-01' AND payment_date < '2005-06-01')) INHERITS (payment);
    CREATE TABLE payment_p2005_06 (CHECK (payment_date >= '2005-06-01' AND payment_date < '2005-07-01')) INHERITS (payment);
    CREATE RULE payment_insert_p2005_05 AS ON INSERT TO payment WHERE new.payment_date >= '2005-05-01' AND new.payment_date < '2005-06-01'
      DO INSTEAD INSERT INTO payment_p2005_05 VALUES (new.*);
    CREATE RULE payment_insert_p2005_06 AS ON INSERT TO payment WHERE new.payment_date >= '2005-06-01' AND new.payment_date < '2005-07-01'
      DO INSTEAD INSERT INTO payment_p2005_06 VALUES (new.*);";

fn pairs(db: &TestDb, names: &[&str]) -> String {
    names.iter().map(|n| format!("[[pairs]]\nname = \"{n}\"\npostgres = \"public.{n}\"\nmysql = \"{}.{n}\"\n\n", db.name)).collect()
}

fn tandem(cfg: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(tandem_bin()).args(args).arg("-c").arg(cfg).output().expect("spawn tandem");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Canonical text of every column of a table on both sides, compared until equal.
async fn same(db: &TestDb, table: &str, pg_cols: &str, my_cols: &str) -> Rows {
    let pg = db.pg().await;
    let mut my = db.my().await;
    my.query_drop("SET time_zone = '+00:00'").await.unwrap();
    wait_equal(&pg, &format!("SELECT {pg_cols} FROM {table} ORDER BY 1"), &mut my, &format!("SELECT {my_cols} FROM {table} ORDER BY 1"), Duration::from_secs(60)).await
}

const FILM_PG: &str = "film_id::text, title, release_year::text, rating::text, array_to_string(special_features, ','), rental_rate::text, to_char(last_update, 'YYYY-MM-DD HH24:MI:SS')";
const FILM_MY: &str = "CAST(film_id AS CHAR), title, CAST(release_year + 0 AS CHAR), rating, special_features, CAST(rental_rate AS CHAR), DATE_FORMAT(last_update, '%Y-%m-%d %H:%i:%s')";
const CUSTOMER_PG: &str = "customer_id::text, first_name, active::int::text, to_char(create_date, 'YYYY-MM-DD HH24:MI:SS'), to_char(last_update, 'YYYY-MM-DD HH24:MI:SS')";
const CUSTOMER_MY: &str = "CAST(customer_id AS CHAR), first_name, CAST(active AS CHAR), DATE_FORMAT(create_date, '%Y-%m-%d %H:%i:%s'), DATE_FORMAT(last_update, '%Y-%m-%d %H:%i:%s')";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_typical_mysql_application_schema_and_its_postgres_twin_replicate() {
    let db = support::fresh_db("acceptance").await;
    let pg = db.pg().await;
    pg.batch_execute(PG_SCHEMA).await.unwrap();
    for t in ACCEPTED.iter().chain(["payment"].iter()) {
        pg.batch_execute(&format!("CREATE TRIGGER last_updated BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION last_updated()")).await.unwrap_or(());
    }
    let mut my = db.my().await;
    my.query_drop("ALTER DATABASE CHARACTER SET utf8mb4").await.unwrap();
    for sql in MY_SCHEMA.iter().chain(MY_DATA) {
        my.query_drop(*sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let mut all = ACCEPTED.to_vec();
    all.push("payment");
    let full = db.write_config(&pairs(&db, &all));
    let accepted = db.write_config(&pairs(&db, &ACCEPTED));

    // init refuses the payment table (as validate does) and changes nothing; without it, init runs.
    let (code, said) = tandem(&full, &["init"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("pair payment: Postgres table public.payment has inheritance children"), "{said}");
    init_cli(&accepted);
    let (code, said) = validate(&full);
    assert_eq!(code, Some(1), "{said}");
    let problems: Vec<&str> = said.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    assert_eq!(problems.len(), 1, "only what cannot be replicated is a problem:\n{said}");
    assert!(problems[0].starts_with("PROBLEM postgres table public.payment: has inheritance children (public.payment_p2005_05, public.payment_p2005_06)"), "{said}");
    let (code, said) = validate(&accepted);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("WARNING mysql table") && said.contains("customer_create_date"), "{said}");
    assert!(said.contains("postgres domain year is judged and replicated as its base type integer"), "{said}");

    let run = InProcess::start(&accepted).await;
    let (code, said) = tokio::task::spawn_blocking({
        let cfg = accepted.clone();
        move || tandem(&cfg, &["backfill", "--all", "--from", "mysql", "--chunk-rows", "2"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{said}");
    for t in ACCEPTED {
        assert!(said.contains(&format!("backfill {t}: ")) && !said.contains(&format!("backfill {t}: FAILED")), "{t}: {said}");
    }
    let films = same(&db, "film", FILM_PG, FILM_MY).await;
    assert_eq!(films[0][4].as_deref(), Some("Deleted Scenes,Behind the Scenes"));
    same(&db, "customer", CUSTOMER_PG, CUSTOMER_MY).await;
    same(&db, "rental", "rental_id::text, to_char(rental_date, 'YYYY-MM-DD HH24:MI:SS')", "CAST(rental_id AS CHAR), DATE_FORMAT(rental_date, '%Y-%m-%d %H:%i:%s')").await;

    // Changes on both sides.
    pg.batch_execute(
        "UPDATE film SET title = 'ACADEMY DINOSAURS', special_features = ARRAY['Trailers', 'Commentaries'] WHERE film_id = 1;
         INSERT INTO customer VALUES (4, 2, 'BARBARA', true, '2001-01-01 00:00:00', now());
         UPDATE staff SET active = true WHERE staff_id = 2;
         INSERT INTO rental VALUES (4, '2006-01-02 10:00:00', 3, 4, NULL, 2, now());",
    )
    .await
    .unwrap();
    my.query_drop("UPDATE film SET rental_rate = 1.99, rating = 'R', special_features = 'Commentaries,Behind the Scenes' WHERE film_id = 2").await.unwrap();
    my.query_drop("INSERT INTO film (film_id, title, release_year, language_id, rating) VALUES (4, 'AFFAIR PREJUDICE', 2005, 2, 'PG-13')").await.unwrap();
    my.query_drop("UPDATE customer SET first_name = 'PAT' WHERE customer_id = 2").await.unwrap();
    my.query_drop("DELETE FROM rental WHERE rental_id = 2").await.unwrap();
    let films = same(&db, "film", FILM_PG, FILM_MY).await;
    assert_eq!(films[0][1].as_deref(), Some("ACADEMY DINOSAURS"));
    assert_eq!(films[3][2].as_deref(), Some("2005"));
    let customers = same(&db, "customer", CUSTOMER_PG, CUSTOMER_MY).await;
    assert_ne!(customers[3][3].as_deref(), Some("2001-01-01 00:00:00"), "MySQL's insert trigger set the date, on both sides");
    same(&db, "staff", "staff_id::text, active::int::text", "CAST(staff_id AS CHAR), CAST(active AS CHAR)").await;
    let rentals = same(&db, "rental", "rental_id::text, to_char(rental_date, 'YYYY-MM-DD HH24:MI:SS')", "CAST(rental_id AS CHAR), DATE_FORMAT(rental_date, '%Y-%m-%d %H:%i:%s')").await;
    assert_eq!(rentals.len(), 3);

    let (code, said) = tokio::task::spawn_blocking({
        let cfg = accepted.clone();
        move || tandem(&cfg, &["check"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "tandem check: {said}");
    let q = format!("SELECT count(*) FROM tandem.quarantine WHERE pipeline = '{}'", db.name);
    assert_eq!(pg_rows(&pg, &format!("SELECT ({q})::text")).await, vec![vec![Some("0".to_string())]], "Postgres quarantine");
    assert_eq!(my_rows(&mut my, &format!("SELECT CAST(({q}) AS CHAR)")).await, vec![vec![Some("0".to_string())]], "MySQL quarantine");
    run.stop().await;
}
