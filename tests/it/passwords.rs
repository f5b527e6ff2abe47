//! Connection URLs as a DBA writes them, against real servers: a password
//! holding `+ & @ : % /`, percent-encoded (with `+` left as is), logs in
//! with SCRAM-SHA-256 on Postgres and with a password on MariaDB; a
//! Postgres unix-socket directory as the host connects over the socket.

use crate::support;
use mysql_async::prelude::Queryable;
use std::path::Path;
use tandem::config::{Config, Inputs};
use tandem::testbed::{PgCluster, PgOptions};

/// The password as the server knows it, and as it is written in a URL:
/// `+` stays raw (the old form-decoding turned it into a space), the rest
/// percent-encoded.
const ODD: &str = "p+q&r@s:t%u/v";
const ODD_IN_URL: &str = "p+q%26r%40s%3At%25u%2Fv";

fn config(pg_url: &str, my_url: &str) -> Config {
    let text = format!(
        "[pipeline]\nname = \"pw\"\n[postgres]\nurl = \"{pg_url}\"\ntls = \"disable\"\n[mysql]\nurl = \"{my_url}\"\nserver_id = 1\ntls = \"disable\"\n\
         [[pairs]]\nname = \"t\"\npostgres = \"public.t\"\nmysql = \"app.t\"\n"
    );
    let no_env = |_: &str| None;
    let read = |p: &Path| std::fs::read_to_string(p);
    tandem::config::parse(&text, Path::new("/tmp/pw.toml"), &Inputs { env: &no_env, read_file: &read }).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_password_with_plus_ampersand_at_and_colon_logs_in_with_scram_and_on_mariadb() {
    let user = "tandem_odd_pw";
    let pg = PgCluster::start(PgOptions { scram_user: Some((user.into(), ODD.into())), ..PgOptions::default() }).await.unwrap_or_else(|e| panic!("{e}"));
    let db = support::fresh_db("odd_password").await;
    let my_user = format!("odd_{}", db.server_id);
    let mut root = db.my().await;
    root.query_drop(format!("CREATE USER '{my_user}'@'%' IDENTIFIED BY '{ODD}'")).await.unwrap();
    root.query_drop(format!("GRANT ALL PRIVILEGES ON `{}`.* TO '{my_user}'@'%'", db.name)).await.unwrap();
    let my_port = support::servers().my.port();

    let cfg = config(
        &format!("postgresql://{user}:{ODD_IN_URL}@127.0.0.1:{}/postgres", pg.port()),
        &format!("mysql://{my_user}:{ODD_IN_URL}@127.0.0.1:{my_port}/{}", db.name),
    );
    assert_eq!(cfg.postgres.endpoint.password.as_ref().map(|p| p.expose()), Some(ODD));
    let client = tandem::db::connect_pg(&cfg.postgres.endpoint).await.unwrap_or_else(|e| panic!("SCRAM login with the decoded password: {e}"));
    let row = client.query_one("SELECT current_user::text, (SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user)", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0).as_str(), row.get::<_, bool>(1)), (user, true), "logged in as the SCRAM role");
    let mut conn = tandem::db::connect_mysql(&cfg.mysql.endpoint).await.unwrap_or_else(|e| panic!("MariaDB login with the decoded password: {e}"));
    let who: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(who, Some(format!("{my_user}@%")));
    let _ = conn.disconnect().await;

    // The servers do check the password: the form-decoded one (`+` as a space) is refused by both.
    let wrong = config(
        &format!("postgresql://{user}:p%20q%26r%40s%3At%25u%2Fv@127.0.0.1:{}/postgres", pg.port()),
        &format!("mysql://{my_user}:p%20q%26r%40s%3At%25u%2Fv@127.0.0.1:{my_port}/{}", db.name),
    );
    assert!(tandem::db::connect_pg(&wrong.postgres.endpoint).await.is_err(), "postgres accepted a wrong password");
    assert!(tandem::db::connect_mysql(&wrong.mysql.endpoint).await.is_err(), "mariadb accepted a wrong password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_unix_socket_directory_in_the_url_connects_over_the_socket() {
    let db = support::fresh_db("unix_socket").await;
    let servers = support::servers();
    let dir = servers.pg.dir().display().to_string();
    let encoded: String = dir.replace('/', "%2F");
    let (port, su, my) = (servers.pg.port(), servers.pg.superuser(), &db.my_url);
    for url in [format!("postgresql://{su}@{encoded}:{port}/{}", db.name), format!("postgresql://{su}@/{}?host={dir}&port={port}", db.name)] {
        let cfg = config(&url, my);
        assert_eq!(cfg.postgres.endpoint.host, dir, "{url}");
        let client = tandem::db::connect_pg(&cfg.postgres.endpoint).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let row = client.query_one("SELECT inet_server_addr() IS NULL, current_database()::text", &[]).await.unwrap();
        assert!(row.get::<_, bool>(0), "{url}: the session runs over the unix socket (no server address)");
        assert_eq!(row.get::<_, String>(1), db.name);
    }
}
