//! The typed, validated configuration every other module uses.

use super::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One side of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Postgres,
    Mysql,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Postgres => "postgres",
            Side::Mysql => "mysql",
        }
    }
    pub fn other(self) -> Side {
        match self {
            Side::Postgres => Side::Mysql,
            Side::Mysql => Side::Postgres,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replication direction, named by its source side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    PostgresToMysql,
    MysqlToPostgres,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::PostgresToMysql => "postgres→mysql",
            Direction::MysqlToPostgres => "mysql→postgres",
        }
    }
    /// ASCII form used in state tables and metric labels.
    pub fn key(self) -> &'static str {
        match self {
            Direction::PostgresToMysql => "postgres_to_mysql",
            Direction::MysqlToPostgres => "mysql_to_postgres",
        }
    }
    pub fn source(self) -> Side {
        match self {
            Direction::PostgresToMysql => Side::Postgres,
            Direction::MysqlToPostgres => Side::Mysql,
        }
    }
    /// The direction that reads `side`'s changes.
    pub fn from_source(side: Side) -> Direction {
        match side {
            Side::Postgres => Direction::PostgresToMysql,
            Side::Mysql => Direction::MysqlToPostgres,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who owns a column (or, as `default_owner`, the rows of a pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Postgres,
    Mysql,
    Both,
}

impl Owner {
    /// May a change made on `side` be propagated for this column?
    pub fn allows(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Owner::Both, _) | (Owner::Postgres, Side::Postgres) | (Owner::Mysql, Side::Mysql)
        )
    }
}

/// Which way a pair replicates (`[[pairs]] direction`): a one-way pair's
/// changes on the other side are never applied (they stay where they were
/// made), while both directions keep running and checkpointing, so
/// switching the pair to `both` later needs only a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairDirection {
    Both,
    PostgresToMysql,
    MysqlToPostgres,
}

impl PairDirection {
    /// Are this pair's changes applied in `d`?
    pub fn flows(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (PairDirection::Both, _) | (PairDirection::PostgresToMysql, Direction::PostgresToMysql) | (PairDirection::MysqlToPostgres, Direction::MysqlToPostgres)
        )
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PairDirection::Both => "both",
            PairDirection::PostgresToMysql => "postgres-to-mysql",
            PairDirection::MysqlToPostgres => "mysql-to-postgres",
        }
    }

    /// The only side whose changes are applied, for a one-way pair.
    pub fn only_source(self) -> Option<Side> {
        match self {
            PairDirection::Both => None,
            PairDirection::PostgresToMysql => Some(Side::Postgres),
            PairDirection::MysqlToPostgres => Some(Side::Mysql),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    PostgresWins,
    MysqlWins,
    LastWriterWins,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteSides {
    Postgres,
    Mysql,
    Both,
    None,
}

impl DeleteSides {
    pub fn allows(self, side: Side) -> bool {
        matches!(
            (self, side),
            (DeleteSides::Both, _) | (DeleteSides::Postgres, Side::Postgres) | (DeleteSides::Mysql, Side::Mysql)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingRow {
    Ignore,
    Insert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroDates {
    Quarantine,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Quarantine,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl TlsMode {
    /// The config spelling (`disable`, `prefer`, `require`, `verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// How tandem marks its own MySQL writes (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoTag {
    /// Pick the session `server_id` tag where permitted, else the marker row.
    Auto,
    /// Always write a `tandem.origin_marker` row first in each transaction.
    MarkerRow,
    /// MariaDB session `server_id` (needs SUPER / BINLOG ADMIN).
    ServerId,
}

/// Connection settings shared by both databases.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub database: String,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Endpoint {
    /// `user@host:port/db`, safe for logs.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    pub endpoint: Endpoint,
    pub slot: String,
    pub publication: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MysqlConfig {
    pub endpoint: Endpoint,
    pub server_id: u32,
    pub echo_tag: EchoTag,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApplyConfig {
    pub max_batch_rows: usize,
    pub max_batch_delay: Duration,
    pub on_error: OnError,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
    pub max_healthy_lag: Duration,
}

/// `[timeouts]`: every wait on a database is bounded by one of these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// One statement on an applier session (server-side `statement_timeout` /
    /// `max_statement_time`), and a bound on each applier call.
    pub statement: Duration,
    /// Waiting for a row or table lock on an applier session.
    pub lock: Duration,
    /// Silence on a replication / binlog connection before it counts as lost.
    pub read: Duration,
    /// Establishing a connection (TCP, TLS, login).
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            statement: Duration::from_secs(60),
            lock: Duration::from_secs(10),
            read: Duration::from_secs(30),
            connect: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// How often a replication connection is asked for a sign of life
    /// (Postgres keepalive request, MySQL heartbeat): a quarter of the read
    /// timeout, between 100 ms and 1 s, so a caught-up stream proves it is
    /// caught up every second.
    pub fn heartbeat(&self) -> Duration {
        (self.read / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// The bound of one applier call from tandem's side: the server's own
    /// statement timeout plus room for the error to come back (a frozen
    /// server never sends one).
    pub fn apply_call(&self) -> Duration {
        self.statement + self.statement.min(Duration::from_secs(5))
    }
}

/// A schema-qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Per-column settings from `[pairs.columns]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnConfig {
    pub owner: Option<Owner>,
    /// Name on the Postgres side when it differs from the canonical name.
    pub postgres: Option<String>,
    /// Name on the MySQL side when it differs from the canonical name.
    pub mysql: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PairConfig {
    pub name: String,
    pub postgres: TableName,
    pub mysql: TableName,
    pub key: Option<Vec<String>>,
    pub default_owner: Owner,
    pub on_conflict: ConflictPolicy,
    pub timestamp_column: Option<String>,
    pub tie_breaker: Side,
    pub deletes: DeleteSides,
    pub missing_row: MissingRow,
    pub zero_dates: ZeroDates,
    /// Which way the pair replicates (default both).
    pub direction: PairDirection,
    /// Keyed by canonical column name.
    pub columns: BTreeMap<String, ColumnConfig>,
}

impl PairConfig {
    /// Owner of a canonical column.
    pub fn owner_of(&self, column: &str) -> Owner {
        self.columns.get(column).and_then(|c| c.owner).unwrap_or(self.default_owner)
    }
    /// Canonical column name for a Postgres column name.
    pub fn canonical_from_postgres(&self, pg: &str) -> String {
        self.columns
            .iter()
            .find(|(_, c)| c.postgres.as_deref() == Some(pg))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| pg.to_string())
    }
    /// Canonical column name for a MySQL column name.
    pub fn canonical_from_mysql(&self, my: &str) -> String {
        self.columns
            .iter()
            .find(|(_, c)| c.mysql.as_deref() == Some(my))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| my.to_string())
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub pipeline: String,
    pub state_schema: String,
    pub postgres: PostgresConfig,
    pub mysql: MysqlConfig,
    pub apply: ApplyConfig,
    pub metrics: MetricsConfig,
    pub timeouts: Timeouts,
    pub pairs: Vec<PairConfig>,
    /// What loads but is probably not meant (two password sources set);
    /// `config::load` logs each, `validate --offline` lists them.
    pub warnings: Vec<super::ConfigProblem>,
}

impl Config {
    /// The Postgres replication origin that marks tandem's own writes.
    pub fn origin_name(&self) -> String {
        format!("tandem_{}", self.pipeline)
    }
    pub fn pair_index(&self, name: &str) -> Option<usize> {
        self.pairs.iter().position(|p| p.name == name)
    }
}
