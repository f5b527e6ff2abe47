//! The benchmark's database access, dialect by dialect: where a database is
//! (`Endpoint`), one connection to it (`Conn`), and every SQL text of the
//! `items` workload (`Dialect`), so the workloads in `workload.rs` are written
//! once for any source/destination pair.
//!
//! Time zones: every timestamp the benchmark compares is UTC wall time in a
//! naive column. The source writes `updated_at` as UTC (`clock_timestamp() AT
//! TIME ZONE 'UTC'` on Postgres, `UTC_TIMESTAMP(6)` on MariaDB); the
//! destination triggers write `applied_at` the same way, whatever the session
//! time zone of the applying session is. Bench sessions on MariaDB run with
//! `time_zone = '+00:00'` so `UNIX_TIMESTAMP` reads those columns as UTC.

use mysql_async::prelude::Queryable;
use std::time::Duration;

pub type Res<T> = Result<T, String>;

/// Attach a description to any displayable error.
pub trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Res<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Res<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

/// The SQL dialect of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Dialect {
    Postgres,
    MariaDb,
}

/// A database on one of the throwaway servers (superuser, no password).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub dialect: Dialect,
    pub port: u16,
    pub db: String,
    /// The server's main pid (postmaster / mariadbd), for CPU accounting.
    pub server_pid: Option<u32>,
}

impl Endpoint {
    pub fn describe(&self) -> String {
        format!("{:?} 127.0.0.1:{}/{}", self.dialect, self.port, self.db)
    }

    pub async fn connect(&self) -> Res<Conn> {
        match self.dialect {
            Dialect::Postgres => {
                let mut cfg = tokio_postgres::Config::new();
                cfg.host("127.0.0.1").port(self.port).user("postgres").dbname(&self.db);
                cfg.connect_timeout(Duration::from_secs(10));
                let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.ctx(|| format!("connect to {}", self.describe()))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Conn::Pg(client))
            }
            Dialect::MariaDb => {
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname("127.0.0.1")
                    .tcp_port(self.port)
                    .user(Some("root"))
                    .db_name((!self.db.is_empty()).then(|| self.db.clone()))
                    .prefer_socket(false)
                    .init(vec!["SET time_zone = '+00:00'"]);
                let conn = mysql_async::Conn::new(opts).await.ctx(|| format!("connect to {}", self.describe()))?;
                Ok(Conn::My(conn))
            }
        }
    }
}

/// One session.
pub enum Conn {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Conn {
    /// Run one or more statements.
    pub async fn exec(&mut self, sql: &str) -> Res<()> {
        let r = match self {
            Conn::Pg(c) => c.batch_execute(sql).await.map_err(pg_err),
            Conn::My(c) => c.query_drop(sql).await.map_err(|e| e.to_string()),
        };
        r.map_err(|e| format!("{}: {e}", short(sql)))
    }

    /// Every row of `sql`, every column as an integer (NULL → None).
    pub async fn rows(&mut self, sql: &str) -> Res<Vec<Vec<Option<i64>>>> {
        let parse = |s: &str| s.trim().parse::<i64>().map_err(|_| format!("{}: not an integer: {s:?}", short(sql)));
        let mut out = Vec::new();
        match self {
            Conn::Pg(c) => {
                let msgs = c.simple_query(sql).await.map_err(|e| format!("{}: {}", short(sql), pg_err(e)))?;
                for m in msgs {
                    if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                        out.push((0..r.len()).map(|i| r.get(i).map(parse).transpose()).collect::<Res<Vec<_>>>()?);
                    }
                }
            }
            Conn::My(c) => {
                let rows: Vec<mysql_async::Row> = c.query(sql).await.ctx(|| short(sql))?;
                for row in rows {
                    let mut vals = Vec::with_capacity(row.len());
                    for i in 0..row.len() {
                        vals.push(match row.as_ref(i) {
                            None | Some(mysql_async::Value::NULL) => None,
                            Some(mysql_async::Value::Int(i)) => Some(*i),
                            Some(mysql_async::Value::UInt(u)) => Some(*u as i64),
                            Some(mysql_async::Value::Bytes(b)) => Some(parse(&String::from_utf8_lossy(b))?),
                            Some(other) => return Err(format!("{}: unexpected value {other:?}", short(sql))),
                        });
                    }
                    out.push(vals);
                }
            }
        }
        Ok(out)
    }

    /// The first row of `sql` by column name, every value as text (NULL →
    /// None); None when there is no row. For `SHOW` statements whose columns
    /// are text.
    pub async fn named_row(&mut self, sql: &str) -> Res<Option<std::collections::HashMap<String, Option<String>>>> {
        let mut out = std::collections::HashMap::new();
        match self {
            Conn::Pg(c) => {
                let msgs = c.simple_query(sql).await.map_err(|e| format!("{}: {}", short(sql), pg_err(e)))?;
                let Some(r) = msgs.into_iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                }) else {
                    return Ok(None);
                };
                for (i, col) in r.columns().iter().enumerate() {
                    out.insert(col.name().to_string(), r.get(i).map(str::to_string));
                }
            }
            Conn::My(c) => {
                let Some(row): Option<mysql_async::Row> = c.query_first(sql).await.ctx(|| short(sql))? else { return Ok(None) };
                for (i, col) in row.columns_ref().iter().enumerate() {
                    let v = match row.as_ref(i) {
                        None | Some(mysql_async::Value::NULL) => None,
                        Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                        Some(other) => Some(other.as_sql(true)),
                    };
                    out.insert(col.name_str().into_owned(), v);
                }
            }
        }
        Ok(Some(out))
    }

    /// The first column of every row.
    pub async fn ints(&mut self, sql: &str) -> Res<Vec<Option<i64>>> {
        Ok(self.rows(sql).await?.into_iter().map(|r| r.into_iter().next().flatten()).collect())
    }

    /// The first column of the first row (None when NULL or no row).
    pub async fn int(&mut self, sql: &str) -> Res<Option<i64>> {
        Ok(self.ints(sql).await?.into_iter().next().flatten())
    }

    /// Runs `sql` (one `id` parameter) once per id, each in its own
    /// autocommit transaction, as a prepared statement.
    pub async fn update_each(&mut self, sql: &str, ids: impl Iterator<Item = i64>) -> Res<u64> {
        let mut n = 0;
        match self {
            Conn::Pg(c) => {
                let stmt = c.prepare(sql).await.map_err(|e| format!("prepare {}: {}", short(sql), pg_err(e)))?;
                for id in ids {
                    c.execute(&stmt, &[&id]).await.map_err(|e| format!("{} ({id}): {}", short(sql), pg_err(e)))?;
                    n += 1;
                }
            }
            Conn::My(c) => {
                let stmt = c.prep(sql).await.ctx(|| format!("prepare {}", short(sql)))?;
                for id in ids {
                    c.exec_drop(&stmt, (id,)).await.ctx(|| format!("{} ({id})", short(sql)))?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

/// The server's message when there is one (tokio_postgres' Display hides it).
pub fn pg_err(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn short(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(120).collect::<String>())
    } else {
        one_line
    }
}

impl Dialect {
    /// `items` as a source table (no destination-only columns).
    pub fn create_source_items(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "CREATE TABLE items (id bigint PRIMARY KEY, account_id int, sku varchar(64), qty int, \
                 price numeric(12,2), note text, updated_at timestamp(6))"
            }
            Dialect::MariaDb => {
                "CREATE TABLE items (id BIGINT PRIMARY KEY, account_id INT, sku VARCHAR(64), qty INT, \
                 price DECIMAL(12,2), note TEXT, updated_at DATETIME(6))"
            }
        }
    }

    /// `items` as a destination table: the source columns plus `applied_at`,
    /// set to the UTC wall time by a BEFORE UPDATE trigger that also fires
    /// in replication apply sessions.
    pub fn create_dest_items(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "CREATE TABLE items (id bigint PRIMARY KEY, account_id int, sku varchar(64), qty int, \
                 price numeric(12,2), note text, updated_at timestamp(6), applied_at timestamp(6));
                 CREATE FUNCTION items_set_applied_at() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN NEW.applied_at := clock_timestamp() AT TIME ZONE 'UTC'; RETURN NEW; END $$;
                 CREATE TRIGGER items_applied BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_set_applied_at();
                 ALTER TABLE items ENABLE ALWAYS TRIGGER items_applied;"
            }
            Dialect::MariaDb => {
                "CREATE TABLE items (id BIGINT PRIMARY KEY, account_id INT, sku VARCHAR(64), qty INT, \
                 price DECIMAL(12,2), note TEXT, updated_at DATETIME(6), applied_at DATETIME(6) NULL);
                 CREATE TRIGGER items_applied BEFORE UPDATE ON items FOR EACH ROW SET NEW.applied_at = UTC_TIMESTAMP(6);"
            }
        }
    }

    /// MariaDB replica only: `applied_at` from the real clock. In the
    /// replica's SQL thread `UTC_TIMESTAMP()`/`NOW()` return the time the
    /// thread set for the replicated event (measured: the same value, +1 µs,
    /// for updates applied 0.3 s apart), so the trigger of
    /// `create_dest_items` would measure nothing there. `SYSDATE(6)` reads
    /// the clock at each row (like Postgres' `clock_timestamp()`), in the
    /// applying session's time zone (`SYSTEM` or the source session's).
    pub fn replica_applied_trigger(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => None,
            Dialect::MariaDb => Some(
                "DROP TRIGGER items_applied;
                 CREATE TRIGGER items_applied BEFORE UPDATE ON items FOR EACH ROW \
                 SET NEW.applied_at = CONVERT_TZ(SYSDATE(6), @@session.time_zone, '+00:00');",
            ),
        }
    }

    /// W1: one statement (one transaction) inserting ids 1..=n.
    pub fn insert_series(self, n: u64) -> String {
        match self {
            Dialect::Postgres => format!(
                "INSERT INTO items SELECT g, g % 1000, 'SKU-' || g, g % 7, (g % 10000) / 100.0, 'note ' || g, \
                 '2024-01-01'::timestamp + g * interval '1 second' FROM generate_series(1, {n}) g"
            ),
            Dialect::MariaDb => format!(
                "INSERT INTO items SELECT seq, seq % 1000, CONCAT('SKU-', seq), seq % 7, (seq % 10000) / 100.0, \
                 CONCAT('note ', seq), TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{n}"
            ),
        }
    }

    /// W2: one single-row update stamping the source commit time (UTC).
    pub fn update_one(self) -> &'static str {
        match self {
            Dialect::Postgres => "UPDATE items SET updated_at = clock_timestamp() AT TIME ZONE 'UTC' WHERE id = $1",
            Dialect::MariaDb => "UPDATE items SET updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
        }
    }

    /// Destination: apply lag of every updated row, in µs.
    pub fn lags_micros(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "SELECT (EXTRACT(EPOCH FROM (applied_at - updated_at)) * 1000000)::bigint FROM items WHERE applied_at IS NOT NULL"
            }
            Dialect::MariaDb => "SELECT TIMESTAMPDIFF(MICROSECOND, updated_at, applied_at) FROM items WHERE applied_at IS NOT NULL",
        }
    }

    /// Destination: the latest apply time as µs since the Unix epoch.
    pub fn max_applied_micros(self) -> &'static str {
        match self {
            Dialect::Postgres => "SELECT (EXTRACT(EPOCH FROM MAX(applied_at)) * 1000000)::bigint FROM items",
            Dialect::MariaDb => "SELECT CAST(UNIX_TIMESTAMP(MAX(applied_at)) * 1000000 AS SIGNED) FROM items",
        }
    }

    /// Destination: a cheap counter of row writes so far. MariaDB
    /// `Handler_write`, server-wide and moving before commit (inserts,
    /// including the insert attempt of an upsert, and a replica's row in
    /// `mysql.gtid_slave_pos` per transaction); Postgres inserted + updated
    /// rows of `items` from the statistics, which a backend reports only
    /// between transactions and at most once a second (an idle backend's
    /// last ones up to 10 s late): committed rows, coarse and late.
    pub fn rows_written_counter(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("SELECT COALESCE(SUM(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = 'items'"),
            Dialect::MariaDb => Some(
                "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'HANDLER_WRITE'",
            ),
        }
    }

    /// Source: (position the replication sender has sent up to, current end
    /// of log) for the sender of `slot`.
    pub fn sender_progress(self, slot: &str) -> Option<String> {
        match self {
            Dialect::Postgres => Some(format!(
                "SELECT (r.sent_lsn - '0/0')::bigint, (pg_current_wal_lsn() - '0/0')::bigint \
                 FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = '{slot}'"
            )),
            Dialect::MariaDb => None,
        }
    }

    /// Source: whether every binlog sender is idle (1) or some is still
    /// sending (0), as (idle senders, senders); MariaDB only, where the dump
    /// thread's state says it has sent everything (positions are not exposed).
    pub fn senders_idle(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => None,
            Dialect::MariaDb => Some(
                "SELECT CAST(COALESCE(SUM(STATE LIKE 'Master has sent all binlog%'), 0) AS SIGNED), COUNT(*) \
                 FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
            ),
        }
    }

    /// Whether `rows_written_counter` moves before commit (then it shows
    /// when a destination starts and finishes writing a big transaction).
    pub fn counter_moves_before_commit(self) -> bool {
        match self {
            Dialect::Postgres => false,
            Dialect::MariaDb => true,
        }
    }

    /// 1 when every replication sender on the server has sent all of its
    /// log (or there is none), else 0: Postgres walsenders past the flushed
    /// WAL, MariaDB binlog dump threads in their "sent all binlog" state.
    pub fn senders_caught_up(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "SELECT (COUNT(*) FILTER (WHERE sent_lsn IS NULL OR sent_lsn < pg_current_wal_flush_lsn()) = 0)::int FROM pg_stat_replication"
            }
            Dialect::MariaDb => {
                "SELECT CAST(COALESCE(SUM(STATE NOT LIKE 'Master has sent all binlog%'), 0) = 0 AS SIGNED) \
                 FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"
            }
        }
    }

    /// Statements (run one by one) that leave the table vacuumed and the
    /// server checkpointed before a workload, so background work does not
    /// land in the measurement.
    pub fn settle(self) -> &'static [&'static str] {
        match self {
            Dialect::Postgres => &["VACUUM (ANALYZE) items", "CHECKPOINT"],
            // Nothing: ANALYZE/FLUSH would show up in the binlog as DDL.
            Dialect::MariaDb => &[],
        }
    }
}
