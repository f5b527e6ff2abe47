//! Raw config → typed `Config`, as one pure function.
//!
//! `validate` reports every problem it finds, each naming the key path and what
//! is expected; the caller adds the file name. It reads nothing itself: the
//! environment and password files come in through `Inputs`, so it is testable.

use super::endpoint::{endpoint, RawEndpoint};
use super::raw::*;
use super::types::*;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

/// What validation may look up outside the file.
pub struct Inputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub read_file: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

/// Problems (errors) and warnings found so far.
pub(super) struct Problems(Vec<ConfigProblem>, Vec<ConfigProblem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem { key: key.into(), message: message.into() });
    }

    /// Something that works but is probably not meant (`Config::warnings`).
    pub(super) fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.1.push(ConfigProblem { key: key.into(), message: message.into() });
    }

    pub(super) fn choice<T: Copy>(&mut self, key: &str, value: Option<&str>, default: T, options: &[(&str, T)]) -> T {
        let Some(v) = value else { return default };
        match options.iter().find(|(name, _)| *name == v) {
            Some((_, t)) => *t,
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.add(key, format!("{v:?} is not one of: {}", names.join(", ")));
                default
            }
        }
    }
}

const OWNERS: &[(&str, Owner)] = &[("postgres", Owner::Postgres), ("mysql", Owner::Mysql), ("both", Owner::Both)];

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 48 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Validates a parsed config file. `path` is used only to resolve relative files.
pub fn validate(raw: RawConfig, path: &Path, inputs: &Inputs) -> Result<Config, Vec<ConfigProblem>> {
    let mut p = Problems(Vec::new(), Vec::new());

    let (name, state_schema) = match raw.pipeline {
        Some(pl) => (pl.name, pl.state_schema),
        None => (None, None),
    };
    let pipeline = match name {
        Some(n) if is_identifier(&n) => n,
        Some(n) => {
            p.add("pipeline.name", format!("{n:?} must be 1-48 characters of a-z, 0-9 and _"));
            n
        }
        None => {
            p.add("pipeline.name", "missing: a name for the pipeline is required");
            String::new()
        }
    };
    let state_schema = state_schema.unwrap_or_else(|| "tandem".to_string());
    if !is_identifier(&state_schema) {
        p.add("pipeline.state_schema", format!("{state_schema:?} must be a-z, 0-9 and _"));
    }

    let base = path.parent().unwrap_or(Path::new("."));
    let postgres = match raw.postgres {
        None => {
            p.add("postgres", "missing section [postgres] (with url)");
            None
        }
        Some(pg) => {
            let raw = RawEndpoint { url: pg.url, password_file: pg.password_file, tls: pg.tls, ca_file: pg.ca_file, client_cert: pg.client_cert, client_key: pg.client_key };
            let ep = endpoint(&mut p, "postgres", raw, base, inputs);
            let default_name = format!("tandem_{pipeline}");
            if let Some(slot) = pg.slot.as_deref().filter(|s| !is_identifier(s)) {
                p.add("postgres.slot", format!("{slot:?} must be a-z, 0-9 and _ (a replication slot name)"));
            }
            let slot = pg.slot.unwrap_or_else(|| default_name.clone());
            let publication = pg.publication.unwrap_or(default_name);
            ep.map(|endpoint| PostgresConfig { endpoint, slot, publication })
        }
    };
    let mysql = match raw.mysql {
        None => {
            p.add("mysql", "missing section [mysql] (with url and server_id)");
            None
        }
        Some(my) => {
            let raw = RawEndpoint { url: my.url, password_file: my.password_file, tls: my.tls, ca_file: my.ca_file, client_cert: my.client_cert, client_key: my.client_key };
            let ep = endpoint(&mut p, "mysql", raw, base, inputs);
            let server_id = match my.server_id {
                Some(id) if (1..=u32::MAX as i64).contains(&id) => id as u32,
                Some(id) => {
                    p.add("mysql.server_id", format!("{id} must be between 1 and 4294967295"));
                    0
                }
                None => {
                    p.add("mysql.server_id", "missing: a binlog client id unique among the server's replicas is required");
                    0
                }
            };
            let echo_tag = p.choice(
                "mysql.echo_tag",
                my.echo_tag.as_deref(),
                EchoTag::Auto,
                &[("auto", EchoTag::Auto), ("marker-row", EchoTag::MarkerRow), ("server-id", EchoTag::ServerId)],
            );
            ep.map(|endpoint| MysqlConfig { endpoint, server_id, echo_tag })
        }
    };

    let apply = {
        let a = raw.apply.unwrap_or(RawApply { max_batch_rows: None, max_batch_delay_ms: None, on_error: None });
        let max_batch_rows = match a.max_batch_rows {
            None => 10_000,
            Some(n) if (1..=1_000_000).contains(&n) => n as usize,
            Some(n) => {
                p.add("apply.max_batch_rows", format!("{n} must be between 1 and 1000000"));
                10_000
            }
        };
        let delay = match a.max_batch_delay_ms {
            None => 100,
            Some(n) if (0..=60_000).contains(&n) => n as u64,
            Some(n) => {
                p.add("apply.max_batch_delay_ms", format!("{n} must be between 0 and 60000"));
                100
            }
        };
        let on_error = p.choice("apply.on_error", a.on_error.as_deref(), OnError::Quarantine, &[("quarantine", OnError::Quarantine), ("stop", OnError::Stop)]);
        ApplyConfig { max_batch_rows, max_batch_delay: Duration::from_millis(delay), on_error }
    };

    let metrics = {
        let m = raw.metrics.unwrap_or(RawMetrics { listen: None, max_healthy_lag_seconds: None });
        let listen = m.listen.and_then(|l| match listen_address(&l) {
            Some(a) => Some(a),
            None => {
                p.add("metrics.listen", format!("{l:?} is not an address like 127.0.0.1:9187, localhost:9187 or :9187"));
                None
            }
        });
        let lag = m.max_healthy_lag_seconds.unwrap_or(60.0);
        if !(lag > 0.0 && lag.is_finite()) {
            p.add("metrics.max_healthy_lag_seconds", "must be a positive number of seconds");
        }
        MetricsConfig { listen, max_healthy_lag: Duration::from_secs_f64(lag.clamp(0.001, 1e9)) }
    };

    let timeouts = {
        let t = raw.timeouts.unwrap_or_default();
        let d = Timeouts::default();
        let mut secs = |key: &str, v: Option<f64>, default: Duration, max: f64| match v {
            None => default,
            Some(s) if s > 0.0 && s <= max => Duration::from_secs_f64(s),
            Some(s) => {
                p.add(format!("timeouts.{key}"), format!("{s} must be a number of seconds above 0 and at most {max}"));
                default
            }
        };
        Timeouts {
            statement: secs("statement_seconds", t.statement_seconds, d.statement, 86_400.0),
            lock: secs("lock_seconds", t.lock_seconds, d.lock, 86_400.0),
            read: secs("read_seconds", t.read_seconds, d.read, 3_600.0),
            connect: secs("connect_seconds", t.connect_seconds, d.connect, 600.0),
        }
    };

    if raw.pairs.is_empty() {
        p.add("pairs", "at least one [[pairs]] table is required");
    }
    let mut pairs = Vec::new();
    for (i, rp) in raw.pairs.into_iter().enumerate() {
        if let Some(pair) = pair(&mut p, i, rp) {
            if pairs.iter().any(|q: &PairConfig| q.name == pair.name) {
                p.add(format!("pairs[{i}].name"), format!("{:?} is used by another pair", pair.name));
            }
            pairs.push(pair);
        }
    }

    match (postgres, mysql) {
        (Some(postgres), Some(mysql)) if p.0.is_empty() => Ok(Config {
            path: path.to_path_buf(),
            pipeline,
            state_schema,
            postgres,
            mysql,
            apply,
            metrics,
            timeouts,
            pairs,
            warnings: p.1,
        }),
        _ => Err(p.0),
    }
}

/// `metrics.listen`: an IP address and port, `localhost:PORT` (127.0.0.1)
/// or `:PORT` (every IPv4 interface, 0.0.0.0). Host names are not looked up.
pub fn listen_address(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let (ip, port) = match s.rsplit_once(':')? {
        ("localhost", port) => (Ipv4Addr::LOCALHOST, port),
        ("", port) => (Ipv4Addr::UNSPECIFIED, port),
        _ => return None,
    };
    Some(SocketAddr::from((ip, port.parse::<u16>().ok()?)))
}

fn table(p: &mut Problems, key: String, value: Option<String>) -> Option<TableName> {
    match value {
        None => {
            p.add(key, "missing: a schema-qualified table name like public.customers");
            None
        }
        Some(v) => match v.split_once('.') {
            Some((s, n)) if !s.is_empty() && !n.is_empty() && !n.contains('.') => {
                Some(TableName { schema: s.to_string(), name: n.to_string() })
            }
            _ => {
                p.add(key, format!("{v:?} must be schema.table"));
                None
            }
        },
    }
}

fn pair(p: &mut Problems, i: usize, rp: RawPair) -> Option<PairConfig> {
    let at = |k: &str| format!("pairs[{i}].{k}");
    let name = rp.name.unwrap_or_default();
    if !is_identifier(&name) {
        p.add(at("name"), format!("{name:?} must be 1-48 characters of a-z, 0-9 and _"));
    }
    let postgres = table(p, at("postgres"), rp.postgres);
    let mysql = table(p, at("mysql"), rp.mysql);
    let default_owner = p.choice(&at("default_owner"), rp.default_owner.as_deref(), Owner::Both, OWNERS);
    let on_conflict = p.choice(
        &at("on_conflict"),
        rp.on_conflict.as_deref(),
        ConflictPolicy::PostgresWins,
        &[
            ("postgres-wins", ConflictPolicy::PostgresWins),
            ("mysql-wins", ConflictPolicy::MysqlWins),
            ("last-writer-wins", ConflictPolicy::LastWriterWins),
            ("manual", ConflictPolicy::Manual),
        ],
    );
    if on_conflict == ConflictPolicy::LastWriterWins && rp.timestamp_column.is_none() {
        p.add(at("timestamp_column"), "required when on_conflict = \"last-writer-wins\": the column that holds each row's last change time");
    }
    let tie_breaker = p.choice(&at("tie_breaker"), rp.tie_breaker.as_deref(), Side::Postgres, &[("postgres", Side::Postgres), ("mysql", Side::Mysql)]);
    let deletes = p.choice(
        &at("deletes"),
        rp.deletes.as_deref(),
        DeleteSides::Both,
        &[("postgres", DeleteSides::Postgres), ("mysql", DeleteSides::Mysql), ("both", DeleteSides::Both), ("none", DeleteSides::None)],
    );
    let missing_row = p.choice(&at("missing_row"), rp.missing_row.as_deref(), MissingRow::Ignore, &[("ignore", MissingRow::Ignore), ("insert", MissingRow::Insert)]);
    let zero_dates = p.choice(&at("zero_dates"), rp.zero_dates.as_deref(), ZeroDates::Quarantine, &[("quarantine", ZeroDates::Quarantine), ("null", ZeroDates::Null)]);
    let direction = p.choice(
        &at("direction"),
        rp.direction.as_deref(),
        PairDirection::Both,
        &[("both", PairDirection::Both), ("postgres-to-mysql", PairDirection::PostgresToMysql), ("mysql-to-postgres", PairDirection::MysqlToPostgres)],
    );
    if let Some(k) = &rp.key {
        if k.is_empty() {
            p.add(at("key"), "must list at least one column");
        }
    }
    let mut columns = BTreeMap::new();
    for (col, rc) in rp.columns {
        let key = format!("pairs[{i}].columns.{col}");
        let cc = match rc {
            RawColumn::Owner(o) => ColumnConfig { owner: Some(p.choice(&key, Some(&o), Owner::Both, OWNERS)), postgres: None, mysql: None },
            RawColumn::Full(f) => ColumnConfig {
                owner: f.owner.as_deref().map(|o| p.choice(&format!("{key}.owner"), Some(o), Owner::Both, OWNERS)),
                postgres: f.postgres,
                mysql: f.mysql,
            },
        };
        columns.insert(col, cc);
    }
    if let Some(source) = direction.only_source() {
        // An owner on the side whose changes are never applied: that column (or row) would reach no side.
        let other = match source.other() {
            Side::Postgres => Owner::Postgres,
            Side::Mysql => Owner::Mysql,
        };
        let why = |what: &str| {
            format!(
                "{what} owned by {} cannot replicate in a pair with direction = \"{}\" ({} changes are not applied): make it {source} or both, or set direction = \"both\"",
                source.other(),
                direction.as_str(),
                source.other()
            )
        };
        if default_owner == other {
            p.add(at("default_owner"), why("rows"));
        }
        for (col, cc) in &columns {
            if cc.owner == Some(other) {
                p.add(format!("pairs[{i}].columns.{col}"), why("a column"));
            }
        }
    }
    Some(PairConfig {
        name,
        postgres: postgres?,
        mysql: mysql?,
        key: rp.key,
        default_owner,
        on_conflict,
        timestamp_column: rp.timestamp_column,
        tie_breaker,
        deletes,
        missing_row,
        zero_dates,
        direction,
        columns,
    })
}
