//! Tests of connection URLs and password sources: percent-decoding (not
//! form-decoding), unix-socket hosts, which password source wins and the
//! warning when two are set, and `metrics.listen` forms.

use super::*;
use crate::config::{parse, Config, ConfigError};
use std::net::SocketAddr;

fn config(pg_url: &str, my_url: &str, extra_pg: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let text = format!(
        "[pipeline]\nname = \"crm\"\n[postgres]\nurl = \"{pg_url}\"\n{extra_pg}\n[mysql]\nurl = \"{my_url}\"\nserver_id = 1\n\
         [[pairs]]\nname = \"t\"\npostgres = \"public.t\"\nmysql = \"app.t\"\n"
    );
    let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    let read = |p: &Path| {
        files.iter().find(|(n, _)| Path::new(n) == p).map(|(_, v)| v.to_string()).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    parse(&text, Path::new("/etc/tandem/t.toml"), &Inputs { env: &lookup, read_file: &read })
}

const MY: &str = "mysql://tandem@127.0.0.1/app";

fn pg_password(pg_url: &str) -> String {
    config(pg_url, MY, "", &[], &[]).unwrap().postgres.endpoint.password.expect("a password").expose().to_string()
}

#[test]
fn percent_decoding_keeps_plus_and_decodes_reserved_characters() {
    assert_eq!(percent_decode("a+b").unwrap(), "a+b");
    assert_eq!(percent_decode("a%2Bb%20c%26d%40e%3Af%25").unwrap(), "a+b c&d@e:f%");
    assert!(percent_decode("%FF").is_err());
}

#[test]
fn a_url_password_with_plus_ampersand_at_and_colon_is_taken_literally() {
    // The bug: form-decoding made `a+b` log in as `a b`.
    assert_eq!(pg_password("postgresql://tandem:a+b@127.0.0.1/app"), "a+b");
    assert_eq!(pg_password("postgresql://tandem:p%2Bq%26r%40s%3At@127.0.0.1/app"), "p+q&r@s:t");
    assert_eq!(pg_password("postgresql://tandem:%25%20x@127.0.0.1/app"), "% x");
    let c = config("postgresql://tan%40dem:x@127.0.0.1/app", "mysql://u%2Bv:a+b%26c@127.0.0.1/app", "", &[], &[]).unwrap();
    assert_eq!(c.postgres.endpoint.user, "tan@dem");
    assert_eq!((c.mysql.endpoint.user.as_str(), c.mysql.endpoint.password.unwrap().expose()), ("u+v", "a+b&c"));
}

#[test]
fn a_password_that_is_not_utf8_once_decoded_is_named_without_echoing_it() {
    let err = config("postgresql://tandem:zz%FFzz@127.0.0.1/app", MY, "", &[], &[]).unwrap_err();
    assert_eq!(err.problems.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["postgres.url"]);
    assert!(!err.to_string().contains("zz"), "{err}");
}

#[test]
fn a_postgres_unix_socket_directory_is_a_host_in_either_spelling() {
    for url in ["postgresql://tandem@%2Fvar%2Frun%2Fpostgresql:5433/app", "postgresql://tandem@/app?host=/var/run/postgresql"] {
        let c = config(url, MY, "", &[], &[]).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.postgres.endpoint.host, "/var/run/postgresql", "{url}");
        assert_eq!(c.postgres.endpoint.database, "app", "{url}");
    }
    assert_eq!(config("postgresql://tandem@%2Ftmp:5433/app", MY, "", &[], &[]).unwrap().postgres.endpoint.port, 5433);
    let c = config("postgresql://tandem:pw@:5433/app?host=/tmp", MY, "", &[], &[]).unwrap();
    assert_eq!((c.postgres.endpoint.host.as_str(), c.postgres.endpoint.port), ("/tmp", 5433));
    let c = config("postgresql://tandem@/app?host=/tmp&port=6000", MY, "", &[], &[]).unwrap();
    assert_eq!((c.postgres.endpoint.host.as_str(), c.postgres.endpoint.port), ("/tmp", 6000));
    let err = config("postgresql://tandem@/app", MY, "", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("has no host"), "{err}");
    let err = config("postgresql://tandem@127.0.0.1/app?sslmode=require", MY, "", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("\"sslmode\" is not supported"), "{err}");
    let err = config("postgresql://tandem@/app?host=relative", MY, "", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("postgres.url"), "{err}");
    let err = config("postgresql://tandem@127.0.0.1/app", "mysql://tandem@%2Frun%2Fmysqld/app", "", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("mysql.url") && err.to_string().contains("[postgres] only"), "{err}");
}

#[test]
fn the_url_password_wins_then_the_environment_then_the_file_and_two_sources_warn() {
    let env = [("TANDEM_POSTGRES_PASSWORD", "from-env")];
    let file = [("/etc/tandem/pw", "from-file\n")];
    let pf = "password_file = \"pw\"";
    let pick = |url: &str, extra: &str, env: &[(&str, &str)]| {
        let c = config(url, MY, extra, env, &file).unwrap();
        let warned: Vec<String> = c.warnings.iter().map(|w| format!("{}: {}", w.key, w.message)).collect();
        (c.postgres.endpoint.password.map(|p| p.expose().to_string()), warned)
    };
    let (pw, warned) = pick("postgresql://tandem:from-url@h/app", pf, &env);
    assert_eq!(pw.as_deref(), Some("from-url"));
    assert_eq!(warned, ["postgres.url: the password is set in the url and TANDEM_POSTGRES_PASSWORD and postgres.password_file; the url is used (order: url, then TANDEM_POSTGRES_PASSWORD, then password_file)"]);
    let (pw, warned) = pick("postgresql://tandem@h/app", pf, &env);
    assert_eq!(pw.as_deref(), Some("from-env"));
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("TANDEM_POSTGRES_PASSWORD is used"), "{warned:?}");
    let (pw, warned) = pick("postgresql://tandem@h/app", pf, &[]);
    assert_eq!((pw.as_deref(), warned.len()), (Some("from-file"), 0));
    let (pw, warned) = pick("postgresql://tandem:u@h/app", "", &[]);
    assert_eq!((pw.as_deref(), warned.len()), (Some("u"), 0), "one source: no warning");
    // The file of a source not used is not read: a missing one is no error.
    let c = config("postgresql://tandem:u@h/app", MY, "password_file = \"missing\"", &[], &file).unwrap();
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn metrics_listen_takes_an_address_localhost_port_or_just_a_port() {
    use crate::config::listen_address;
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(listen_address("127.0.0.1:9187"), Some(addr("127.0.0.1:9187")));
    assert_eq!(listen_address("[::1]:9187"), Some(addr("[::1]:9187")));
    assert_eq!(listen_address("localhost:9187"), Some(addr("127.0.0.1:9187")));
    assert_eq!(listen_address(":9187"), Some(addr("0.0.0.0:9187")));
    for bad in ["9187", "example.com:9187", "localhost:", ":99999", "localhost"] {
        assert_eq!(listen_address(bad), None, "{bad}");
    }
}
