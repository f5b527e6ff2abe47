//! The MySQL/MariaDB destination: the dialect the applier driver
//! (`super::driver`) writes through — statements rendered as SQL text
//! (`mysql_sql`) and sent over one session in multi-statement round trips
//! of bounded size, inside one transaction that also writes the
//! `postgres→mysql` checkpoint row; a small batch costs one round trip.
//!
//! Every transaction is tagged for the binlog reader (DESIGN §2): the
//! session `server_id` set to the pipeline's id where the account may, or a
//! `tandem.origin_marker` row written first. A chunk of plain updates can
//! be written unread, as UPDATEs guarded by the before-images that count
//! the rows they changed (`write_guarded`). With a lease fence
//! (`set_fence`), the checkpoint row is written only while the `lease` row
//! still has this holder's epoch (`state::mysql::MyState::push_checkpoint`):
//! otherwise COMMIT never runs and the batch fails with `Error::Fenced`.

use super::destination::{Commit, Destination, Guarded};
use super::driver::Applier;
use super::merge::{guard_also, Current, InsertRun};
use super::mysql_sql::{is_single_float, key_predicate, render_guarded, render_plain_insert, render_run, render_value, table, RowList};
use super::plan::{RowOp, Run};
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::codec::my_text::mysql_text_value;
use crate::config::{Config, Direction, PairConfig, Side};
use crate::conflict::compare::key_text;
use crate::model::{Row, SourcePos, Value};
use crate::schema::PairSchema;
use crate::sql::my::push_ident;
use crate::state::mysql::MyState;
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;

/// Flush the statement buffer once it holds this many bytes.
const FLUSH_BYTES: usize = 4 << 20;

/// The applier of the postgres→mysql direction.
pub type MysqlApplier = Applier<MysqlDest>;

impl MysqlApplier {
    pub async fn connect(cfg: &Config, schemas: Arc<Vec<PairSchema>>) -> Result<Self> {
        let mut conn = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        let echo = choose_echo(&mut conn, cfg).await?;
        let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
        let row_list = RowList::for_server(version.as_deref().unwrap_or(""));
        // Every lock wait and statement of this session is bounded ([timeouts]);
        // one that fires is a transient error: the direction retries from its checkpoint.
        let t = &cfg.timeouts;
        let lock = t.lock.as_secs().max(1);
        let statement = if version.as_deref().is_some_and(|v| v.contains("MariaDB")) {
            format!("max_statement_time = {:.3}", t.statement.as_secs_f64())
        } else {
            format!("max_execution_time = {}", t.statement.as_millis().max(1))
        };
        // foreign_key_checks = 0: rows of a batch may come in any order (as for
        // a native replica); triggers still fire (MySQL cannot turn them off).
        conn.query_drop(format!(
            "SET SESSION innodb_lock_wait_timeout = {lock}, lock_wait_timeout = {lock}, {statement}, foreign_key_checks = 0"
        ))
        .await?;
        tracing::info!(echo = %echo, ?row_list, "mysql applier connected: own transactions tagged by echo, multi-row updates list rows by row_list");
        let db = MysqlDest {
            conn,
            state: MyState::new(&cfg.state_schema, &cfg.pipeline, Direction::PostgresToMysql),
            pending: String::with_capacity(FLUSH_BYTES + (1 << 20)),
            echo,
            row_list,
            fence: None,
        };
        Ok(Applier::new(db, cfg, schemas))
    }

    /// Makes every checkpoint write conditional on the `lease` row having `epoch`.
    pub fn set_fence(&mut self, epoch: i64) {
        self.db.fence = Some(epoch);
    }

    pub fn echo(&self) -> EchoMark {
        self.db.echo
    }
}

/// One MySQL session as a destination.
pub struct MysqlDest {
    conn: mysql_async::Conn,
    state: MyState,
    /// Statements not sent yet.
    pending: String,
    /// How this session's transactions are tagged for the binlog reader.
    echo: EchoMark,
    /// How multi-row updates list their rows on this server.
    row_list: RowList,
    /// The lease epoch every checkpoint write is conditional on (`run::lease`).
    fence: Option<i64>,
}

/// The echo tag in use on the MySQL side (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoMark {
    /// A `tandem.origin_marker` row first in every transaction.
    MarkerRow,
    /// The session `server_id` (MariaDB, needs SUPER/BINLOG ADMIN): every event carries it.
    ServerId(u32),
}

impl std::fmt::Display for EchoMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EchoMark::MarkerRow => f.write_str("marker-row"),
            EchoMark::ServerId(id) => write!(f, "server-id {id}"),
        }
    }
}

/// Picks the echo tag: `server-id` (the pipeline's binlog client id as the
/// session server_id) when configured or, with `auto`, when the account may set
/// it; otherwise the marker row.
pub async fn choose_echo(conn: &mut mysql_async::Conn, cfg: &Config) -> Result<EchoMark> {
    use crate::config::EchoTag;
    if cfg.mysql.echo_tag == EchoTag::MarkerRow {
        return Ok(EchoMark::MarkerRow);
    }
    let id = cfg.mysql.server_id;
    let own: Option<u64> = conn.query_first("SELECT @@GLOBAL.server_id").await?;
    if own == Some(id as u64) {
        return Err(Error::Setup(format!("[mysql] server_id = {id} is the server's own server_id; choose another id for tandem")));
    }
    match conn.query_drop(format!("SET SESSION server_id = {id}")).await {
        Ok(()) => Ok(EchoMark::ServerId(id)),
        Err(e) if cfg.mysql.echo_tag == EchoTag::Auto => {
            tracing::info!(error = %e, "cannot set the session server_id; using the origin marker row instead");
            Ok(EchoMark::MarkerRow)
        }
        Err(e) => Err(Error::Setup(format!("echo_tag = \"server-id\" needs SUPER or BINLOG ADMIN to set the session server_id: {e}"))),
    }
}

impl MysqlDest {
    async fn send(&mut self, sql: &str) -> Result<()> {
        self.conn.query_drop(sql).await.map_err(Error::from)
    }

    /// Sends `pending` once it is big.
    async fn flush_if_big(&mut self) -> Result<()> {
        if self.pending.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// After a failed commit: `Fenced` when the lease epoch moved on, else `e`.
    async fn fenced_or(&mut self, e: Error) -> Error {
        let Some(epoch) = self.fence else { return e };
        self.pending.clear();
        if self.conn.query_drop("ROLLBACK").await.is_err() {
            return e;
        }
        match self.state.lease_epoch(&mut self.conn).await {
            Ok(now) if now != Some(epoch) => Error::Fenced { side: "mysql", epoch },
            _ => e,
        }
    }

    /// Runs `sql` (statements ending in a one-number SELECT) and returns that number.
    async fn last_number(&mut self, sql: &str) -> Result<Option<u64>> {
        let mut result = self.conn.query_iter(sql).await?;
        let mut last: Option<u64> = None;
        while !result.is_empty() {
            let set: Vec<Option<u64>> = result.collect().await?;
            if let Some(v) = set.into_iter().next() {
                last = v;
            }
        }
        Ok(last)
    }

    /// The locking read of one chunk of keys, after the pending statements.
    fn select_current(&mut self, schema: &PairSchema, keys: &[Row]) -> Result<String> {
        let mut sql = std::mem::take(&mut self.pending);
        sql.push_str("SELECT ");
        for (n, c) in schema.columns.iter().enumerate() {
            if n > 0 {
                sql.push(',');
            }
            // FLOAT prints only 6 digits over the text protocol: read its exact double.
            if is_single_float(&c.my_type) {
                sql.push_str("CAST(");
                push_ident(&mut sql, &c.my_name);
                sql.push_str(" AS DOUBLE)");
            } else {
                push_ident(&mut sql, &c.my_name);
            }
        }
        sql.push_str(" FROM ");
        table(&mut sql, schema);
        sql.push_str(" WHERE ");
        if schema.key.len() == 1 {
            push_ident(&mut sql, &schema.columns[schema.key[0]].my_name);
            sql.push_str(" IN (");
            for (n, k) in keys.iter().enumerate() {
                if n > 0 {
                    sql.push(',');
                }
                render_value(&mut sql, schema, schema.key[0], &k[0])?;
            }
            sql.push(')');
        } else {
            for (n, k) in keys.iter().enumerate() {
                if n > 0 {
                    sql.push_str(" OR ");
                }
                key_predicate(&mut sql, schema, k)?;
            }
        }
        sql.push_str(" FOR UPDATE");
        Ok(sql)
    }
}

/// A row read back over the text protocol, in canonical values.
fn row_from_text(schema: &PairSchema, raw: Vec<mysql_async::Value>) -> Result<Row> {
    let mut row = Vec::with_capacity(schema.columns.len());
    for (c, v) in schema.columns.iter().zip(raw) {
        let bytes = match &v {
            mysql_async::Value::NULL => None,
            mysql_async::Value::Bytes(b) => Some(b.as_slice()),
            _ => return Err(Error::Decode(format!("pair {}: unexpected binary value for {}", schema.name, c.name))),
        };
        let mut v = mysql_text_value(bytes, c.my_kind)
            .map_err(|e| Error::Decode(format!("pair {}, column {} (read back from {}): {e}", schema.name, c.name, schema.my_table)))?;
        if let (Value::Float(f), true) = (&v, is_single_float(&c.my_type)) {
            // The f32 the column holds, as the f64 with its shortest text (what sources produce).
            v = Value::Float(format!("{}", *f as f32).parse().unwrap_or(*f));
        }
        row.push(v);
    }
    Ok(row)
}

impl Destination for MysqlDest {
    async fn firing_triggers(&mut self, schemas: &[PairSchema]) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for s in schemas {
            if !crate::schema::triggers::my_triggers(&mut self.conn, &s.my_table).await?.is_empty() {
                out.push(s.pair);
            }
        }
        Ok(out)
    }

    const SIDE: Side = Side::Mysql;
    const GUARDED_UPDATES: bool = true;
    /// Multi-row INSERT statements.
    type Fresh = Vec<String>;

    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        match self.state.checkpoint(&mut self.conn).await? {
            None => Ok(None),
            Some(p) => p
                .parse()
                .map(|l| Some(SourcePos::Postgres(l)))
                .map_err(|e| Error::Checkpoint(format!("in {}: {e}", self.state.table("checkpoints")))),
        }
    }

    async fn begin(&mut self) -> Result<()> {
        self.pending.clear();
        self.pending.push_str("START TRANSACTION;\n");
        if self.echo == EchoMark::MarkerRow {
            self.state.push_origin_marker(&mut self.pending);
        }
        Ok(())
    }

    async fn savepoint(&mut self, name: &str) -> Result<()> {
        self.pending.push_str("SAVEPOINT ");
        self.pending.push_str(name);
        self.pending.push_str(";\n");
        Ok(())
    }

    async fn rollback_to(&mut self, name: &str) -> Result<()> {
        // Not sent yet (a statement failed to render before anything went
        // out): drop what follows it; what precedes it still has to be sent.
        let unsent = format!("SAVEPOINT {name};\n");
        if let Some(at) = self.pending.rfind(&unsent) {
            self.pending.truncate(at + unsent.len());
            return Ok(());
        }
        self.pending.clear();
        self.send(&format!("ROLLBACK TO SAVEPOINT {name}")).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        self.send("ROLLBACK").await
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.pending);
        let result = self.conn.query_drop(sql.as_str()).await;
        self.pending = sql;
        self.pending.clear();
        result.map_err(Error::from)
    }

    /// Sends the pending statements followed by a locking read of `keys`.
    async fn read_current(&mut self, schema: &PairSchema, keys: &[Row], current: &mut Current) -> Result<()> {
        for chunk in keys.chunks(1000) {
            for k in chunk {
                current.insert((schema.pair, key_text(k)), None);
            }
            let sql = self.select_current(schema, chunk)?;
            let mut result = self.conn.query_iter(sql).await?;
            let mut rows: Vec<mysql_async::Row> = Vec::new();
            while !result.is_empty() {
                let set: Vec<mysql_async::Row> = result.collect().await?;
                if !set.is_empty() {
                    rows = set;
                }
            }
            drop(result);
            for r in rows {
                let row = row_from_text(schema, mysql_async::Row::unwrap(r))?;
                current.insert((schema.pair, key_text(&schema.key_of(&row))), Some(row));
            }
        }
        Ok(())
    }

    fn fresh(&self, schemas: &[PairSchema], runs: &[InsertRun<'_>]) -> Option<Vec<String>> {
        let mut statements = Vec::new();
        for run in runs {
            let schema = schemas.iter().find(|s| s.pair == run.pair)?;
            // Several statements keep each well under max_allowed_packet.
            for rows in run.rows.chunks(2000) {
                let mut sql = String::new();
                render_plain_insert(&mut sql, schema, rows).ok()?;
                statements.push(sql);
            }
        }
        Some(statements)
    }

    async fn insert_fresh(&mut self, statements: Vec<String>) -> Result<()> {
        for sql in &statements {
            self.pending.push_str(sql);
            self.flush_if_big().await?;
        }
        self.flush().await
    }

    /// `UPDATE … JOIN` statements guarded by the before-images, each adding
    /// `ROW_COUNT()` to `@tandem_rows`, and `SELECT @tandem_rows`, in one
    /// round trip under a savepoint, rolled back to when fewer rows changed.
    async fn write_guarded(&mut self, schemas: &[PairSchema], pairs: &[PairConfig], runs: &[Run], befores: &HashMap<(usize, String), &Row>) -> Result<Guarded> {
        let mark = self.pending.len();
        self.pending.push_str("SAVEPOINT tandem_guarded;\nSET @tandem_rows = 0;\n");
        let mut expected = 0;
        for run in runs {
            let (Some(schema), Some(pair)) = (schemas.iter().find(|s| s.pair == run.pair), pairs.get(run.pair)) else { continue };
            for ops in run.ops.chunks(2000) {
                let before = |key: &Row| befores.get(&(run.pair, key_text(key))).copied();
                match render_guarded(&mut self.pending, schema, ops, before, guard_also(schema, pair), self.row_list) {
                    Ok(Some(n)) => expected += n,
                    Ok(None) => {
                        self.pending.truncate(mark);
                        return Ok(Guarded::NotTried);
                    }
                    Err(e) => {
                        self.pending.truncate(mark);
                        return Err(e.into());
                    }
                }
            }
        }
        self.pending.push_str("SELECT @tandem_rows");
        let sql = std::mem::take(&mut self.pending);
        let changed = self.last_number(&sql).await;
        self.pending = sql;
        self.pending.clear();
        let changed = changed?;
        if changed == Some(expected) {
            tracing::debug!(rows = expected, "guarded updates applied without reading the rows");
            return Ok(Guarded::Applied);
        }
        tracing::debug!(expected, ?changed, "guarded updates met rows changed at the destination; merging against the current rows");
        self.send("ROLLBACK TO SAVEPOINT tandem_guarded").await?;
        Ok(Guarded::Missed)
    }

    async fn write_runs(&mut self, schemas: &[PairSchema], runs: Vec<Run>) -> Result<()> {
        for run in runs {
            let Some(schema) = schemas.iter().find(|s| s.pair == run.pair) else { continue };
            // Split long runs so one statement stays well under max_allowed_packet.
            for ops in run.ops.chunks(2000) {
                render_run(&mut self.pending, schema, ops, self.row_list)?;
                self.flush_if_big().await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, c: Commit<'_>) -> Result<()> {
        let position = c.last.position.to_string();
        self.state.push_quarantine(&mut self.pending, &c.quarantine, &position);
        let source_ts = (c.last.commit_ts > 0).then(|| crate::model::value::format_timestamp(c.last.commit_ts));
        self.state.push_conflicts(&mut self.pending, &c.conflicts, source_ts.as_deref());
        self.state.push_checkpoint(&mut self.pending, &position, self.fence);
        self.pending.push_str("COMMIT");
        match self.flush().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fenced_or(e).await),
        }
    }

    async fn unquarantine_and_commit(&mut self, id: i64) -> Result<()> {
        self.state.push_unquarantine(&mut self.pending, id as u64);
        self.pending.push_str("COMMIT");
        self.flush().await
    }

    async fn parked_pairs(&mut self) -> Result<Vec<String>> {
        self.state.parked_pairs(&mut self.conn).await
    }

    async fn park(&mut self, pairs: &[String], changes: &[String], reason: &str) -> Result<()> {
        self.state.push_park(&mut self.pending, pairs, changes, reason);
        self.flush_if_big().await
    }

    async fn parked(&mut self, pair: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        self.flush().await?;
        self.state.parked(&mut self.conn, pair, limit).await
    }

    async fn unpark(&mut self, ids: &[i64]) -> Result<()> {
        self.state.push_unpark(&mut self.pending, ids);
        Ok(())
    }

    /// Corrects the staged chunk by the window, merges it and records the
    /// progress (see `crate::backfill`).
    async fn merge_backfill_chunk(&mut self, schema: &PairSchema, job: &ChunkJob) -> Result<ChunkOutcome> {
        use crate::backfill::{progress, staging};
        let s = &job.signal;
        self.flush().await?;
        let stored = self.state.backfill_progress(&mut self.conn, &schema.name).await?;
        let fix = match progress::verdict(stored.as_ref().map(|(r, k)| (r.as_str(), k.as_deref())), job) {
            progress::Verdict::Merge(fix) => fix.clone(),
            progress::Verdict::Stale => return Ok(ChunkOutcome::Abandoned("a chunk of an earlier backfill run".into())),
            progress::Verdict::Abandon(reason) => {
                let clear = staging::clear_chunk_sql(Side::Mysql, self.state_db(), &s.staging, s.chunk);
                self.send(&clear).await?;
                self.state.backfill_chunk_done(&mut self.conn, &schema.name, &s.run, s.chunk, None).await?;
                return Ok(ChunkOutcome::Abandoned(reason));
            }
        };
        let staged = staging::staged_schema(schema, self.state_db(), &s.staging);
        if fix.truncated {
            self.pending.push_str(&staging::clear_chunk_sql(Side::Mysql, self.state_db(), &s.staging, s.chunk));
            self.pending.push_str(";\n");
        }
        for keys in fix.dropped.chunks(1000) {
            let ops: Vec<RowOp> = keys.iter().map(|k| RowOp::Delete(k.clone())).collect();
            render_run(&mut self.pending, &staged, &ops, self.row_list).map_err(|e| Error::Value { pair: e.pair, column: e.column, message: e.reason })?;
        }
        let mut restaged = Vec::new();
        for row in &fix.rows {
            let op = RowOp::Upsert(row.clone());
            match render_run(&mut String::new(), &staged, std::slice::from_ref(&op), self.row_list) {
                Ok(()) => restaged.push(op),
                Err(e) => tracing::warn!(pair = %schema.name, column = %e.column, error = %e.reason,
                    "backfill: a row changed during its chunk cannot be staged; the stream's changes decide it"),
            }
        }
        for ops in restaged.chunks(1000) {
            render_run(&mut self.pending, &staged, ops, self.row_list).map_err(|e| Error::Value { pair: e.pair, column: e.column, message: e.reason })?;
        }
        self.pending.push_str(&staging::my_merge_sql(schema, self.state_db(), &s.staging, s.chunk));
        self.flush().await?;
        let last_key = progress::key_json(&s.last_key);
        self.state.backfill_chunk_done(&mut self.conn, &schema.name, &s.run, s.chunk, Some((s.rows, last_key))).await?;
        Ok(ChunkOutcome::Applied { rows: s.rows })
    }
}

impl MysqlDest {
    fn state_db(&self) -> &str {
        self.state.db_name()
    }
}
