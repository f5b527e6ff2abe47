//! One `[postgres]` or `[mysql]` section's connection settings: the URL
//! (user, password, host, port, database), where the password comes from,
//! and the TLS files.
//!
//! Invariants:
//! - User names and passwords in the URL are percent-decoded as RFC 3986
//!   says (`%26` is `&`, `%40` is `@`, `%3A` is `:`), never form-decoded: a
//!   `+` stays a `+`.
//! - A Postgres host that is a directory (`%2Fvar%2Frun%2Fpostgresql`, or
//!   libpq's `?host=/var/run/postgresql&port=5432`) is a unix-socket
//!   connection; no other query parameter is accepted.
//! - The password comes from the first source set, in libpq's order: the
//!   URL, then `TANDEM_<SIDE>_PASSWORD`, then `password_file`; a second
//!   source set as well is a warning naming both, never an error, and the
//!   file of a source not used is not read.
//! - No message echoes the URL or a password.

use super::secret::Secret;
use super::types::{Endpoint, TlsMode};
use super::validate::Problems;
use super::Inputs;
use std::path::{Path, PathBuf};

const TLS: &[(&str, TlsMode)] = &[
    ("disable", TlsMode::Disable),
    ("prefer", TlsMode::Prefer),
    ("require", TlsMode::Require),
    ("verify-full", TlsMode::VerifyFull),
];

/// The keys of one section that `endpoint` reads.
pub(super) struct RawEndpoint {
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// `section` is `postgres` or `mysql`; relative files resolve against `base`.
pub(super) fn endpoint(p: &mut Problems, section: &str, raw: RawEndpoint, base: &Path, inputs: &Inputs) -> Option<Endpoint> {
    let postgres = section == "postgres";
    let (env_var, default_port) = if postgres { ("TANDEM_POSTGRES_PASSWORD", 5432) } else { ("TANDEM_MYSQL_PASSWORD", 3306) };
    let key = |k: &str| format!("{section}.{k}");
    let tls = p.choice(&key("tls"), raw.tls.as_deref(), TlsMode::Prefer, TLS);
    let resolve = |f: String| {
        let f = PathBuf::from(f);
        if f.is_absolute() { f } else { base.join(f) }
    };
    if raw.client_cert.is_some() != raw.client_key.is_some() {
        let missing = if raw.client_cert.is_some() { "client_key" } else { "client_cert" };
        p.add(key(missing), "missing: client_cert and client_key must be set together");
    }
    let Some(url) = raw.url else {
        p.add(key("url"), format!("missing: the {section} connection URL is required"));
        return None;
    };
    let scheme = if postgres { &["postgresql", "postgres"][..] } else { &["mysql", "mariadb"][..] };
    let (url, empty_host) = with_placeholder_host(&url);
    let parsed = match url::Url::parse(&url) {
        Ok(u) if scheme.contains(&u.scheme()) => u,
        Ok(u) => {
            p.add(key("url"), format!("scheme {:?} is not one of {}", u.scheme(), scheme.join(", ")));
            return None;
        }
        Err(e) => {
            // Never echo the URL: it may hold a password.
            p.add(key("url"), format!("not a valid URL ({e}); expected {}://user@host:port/database", scheme[0]));
            return None;
        }
    };
    let mut host = match percent_decode(if empty_host { "" } else { parsed.host_str().unwrap_or("") }) {
        Ok(h) => h,
        Err(()) => {
            p.add(key("url"), "the host is not valid UTF-8 once percent-decoded");
            String::new()
        }
    };
    let mut port = parsed.port();
    for (name, value) in parsed.query_pairs() {
        match (postgres, name.as_ref()) {
            (true, "host") if value.starts_with('/') && host.is_empty() => host = value.into_owned(),
            (true, "host") => p.add(key("url"), "?host= must be a unix-socket directory (starting with /), with no host before the path"),
            (true, "port") if port.is_none() => match value.parse() {
                Ok(n) => port = Some(n),
                Err(_) => p.add(key("url"), format!("?port={value:?} is not a port number")),
            },
            _ => p.add(key("url"), format!("query parameter {name:?} is not supported; use the tls/ca_file keys (postgres also takes ?host=/socket/dir&port=N)")),
        }
    }
    if host.is_empty() {
        p.add(key("url"), "has no host");
    } else if host.starts_with('/') && !postgres {
        p.add(key("url"), "a unix-socket host is supported for [postgres] only; use host:port");
    }
    let database = parsed.path().trim_start_matches('/').to_string();
    if database.is_empty() {
        p.add(key("url"), "has no database name (…/database)");
    }
    let user = match percent_decode(parsed.username()) {
        Ok(u) => u,
        Err(()) => {
            p.add(key("url"), "the user name is not valid UTF-8 once percent-decoded");
            String::new()
        }
    };
    if parsed.username().is_empty() {
        p.add(key("url"), "has no user name (user@host)");
    }
    let in_url = parsed.password().map(percent_decode);
    if let Some(Err(())) = in_url {
        p.add(key("url"), "the password is not valid UTF-8 once percent-decoded (encode each byte of it as %XX of its UTF-8 form)");
    }
    let from_env = (inputs.env)(env_var);
    let sources: Vec<String> = [
        in_url.is_some().then(|| "the url".to_string()),
        from_env.is_some().then(|| env_var.to_string()),
        raw.password_file.is_some().then(|| key("password_file")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.len() > 1 {
        p.warn(
            key("url"),
            format!(
                "the password is set in {}; {} is used (order: url, then {env_var}, then password_file)",
                sources.join(" and "),
                sources[0]
            ),
        );
    }
    let password = match (in_url, from_env, raw.password_file) {
        (Some(pw), _, _) => pw.ok().map(Secret::new),
        (None, Some(pw), _) => Some(Secret::new(pw)),
        (None, None, Some(f)) => {
            let f = resolve(f);
            match (inputs.read_file)(&f) {
                Ok(s) => Some(Secret::new(s.trim_end_matches(['\n', '\r']).to_string())),
                Err(e) => {
                    p.add(key("password_file"), format!("cannot read {}: {e}", f.display()));
                    None
                }
            }
        }
        (None, None, None) => None,
    };
    Some(Endpoint {
        host,
        port: port.unwrap_or(default_port),
        user,
        password,
        database,
        tls,
        ca_file: raw.ca_file.map(resolve),
        client_cert: raw.client_cert.map(resolve),
        client_key: raw.client_key.map(resolve),
    })
}

/// libpq's `postgresql://user@/db?host=/dir` has an empty host, which the
/// URL parser refuses: such a URL is parsed with a placeholder host
/// (`true`: the host is really empty).
fn with_placeholder_host(url: &str) -> (std::borrow::Cow<'_, str>, bool) {
    let Some(start) = url.find("://").map(|i| i + 3) else { return (url.into(), false) };
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let host_at = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    if host_at == end || url[host_at..end].starts_with(':') {
        (format!("{}placeholder.invalid{}", &url[..host_at], &url[host_at..]).into(), true)
    } else {
        (url.into(), false)
    }
}

/// RFC 3986 percent-decoding (`+` is a plus sign); `Err` when the bytes are
/// not UTF-8.
fn percent_decode(s: &str) -> Result<String, ()> {
    percent_encoding::percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| ())
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
