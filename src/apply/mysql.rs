//! The MySQL/MariaDB applier: batches of changes become multi-statement SQL
//! sent over one session, inside one transaction that also writes the
//! `postgres→mysql` checkpoint row.
//!
//! Every transaction starts with a write to `tandem.origin_marker` so the
//! binlog reader can recognise (and drop) tandem's own writes (DESIGN §2).
//! Statements are buffered and sent in multi-statement round trips of bounded
//! size; a small batch costs one round trip in total. A chunk of inserts whose
//! keys the destination does not have is sent as plain INSERTs under a
//! savepoint, without reading current rows first; when a key exists after
//! all, the savepoint is rolled back and the chunk merged
//! (`merge::fresh_inserts`). A chunk of plain updates is first written
//! without reading the rows, as UPDATEs guarded by the before-images, in one
//! round trip that returns how many rows they changed; fewer than expected
//! means a row changed at the destination meanwhile, and the chunk is rolled
//! back to its savepoint and merged against the current rows (a read and a
//! write round trip, as for every other chunk). On any error the session
//! is rolled back by the caller; nothing partial is ever committed.
//! With a lease fence (`set_fence`), the checkpoint row is written only while
//! the `lease` row still has this holder's epoch (read with a share lock in
//! the same round trip as COMMIT; a different epoch makes the checkpoint
//! position NULL, which strict mode refuses, so COMMIT never runs): the batch
//! then fails with `Error::Fenced`.

use super::merge::{assumed_current, conflict_rows, fresh_inserts, guard_also, keys_needed, merge_chunk, report, Current};
use super::mysql_sql::{key_predicate, render_guarded, render_plain_insert, render_run, render_value, table, RowList};
use super::plan::RowOp;
use super::quarantine::{handle_rejection, Rejected};
use super::screen::Segment;
use super::BatchApplier;
use crate::config::{Config, Direction, PairConfig, Side};
use crate::conflict::compare::{key_text, mysql_text_value};
use crate::conflict::ConflictRecord;
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::model::{Change, Origin, SourcePos, TxnMeta};
use crate::model::{Row, Value};
use crate::schema::PairSchema;
use crate::sql::my::{push_ident, push_literal};
use crate::{Error, Result};
use mysql_async::prelude::Queryable;
use std::sync::Arc;

/// Flush the statement buffer once it holds this many bytes.
const FLUSH_BYTES: usize = 4 << 20;
/// After a chunk's guarded updates met changed rows, this many chunks are
/// merged against the current rows before guarded updates are tried again.
const GUARD_BACKOFF: u32 = 8;

pub struct MysqlApplier {
    conn: mysql_async::Conn,
    schemas: Arc<Vec<PairSchema>>,
    pipeline: String,
    state_db: String,
    direction: Direction,
    pending: String,
    pairs: Vec<PairConfig>,
    /// Conflicts decided in the open transaction, written with its commit.
    conflicts: Vec<ConflictRecord>,
    /// The changes being written are an outcome the destination adopts
    /// (`Origin::Outcome`).
    forwarded: bool,
    /// How this session's transactions are tagged for the binlog reader.
    echo: EchoMark,
    /// How multi-row updates list their rows on this server.
    row_list: RowList,
    /// Chunks left to merge against read rows before trying guarded updates.
    guard_backoff: u32,
    on_error: crate::config::OnError,
    /// Changes rejected in the open transaction, quarantined with its commit.
    rejected: Vec<Rejected>,
    /// The lease epoch every checkpoint write is conditional on (`ops::lease`).
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

impl MysqlApplier {
    pub async fn connect(cfg: &Config, schemas: Arc<Vec<PairSchema>>) -> Result<Self> {
        let mut conn = crate::db::connect_mysql(&cfg.mysql.endpoint).await?;
        let echo = choose_echo(&mut conn, cfg).await?;
        let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
        let row_list = RowList::for_server(version.as_deref().unwrap_or(""));
        tracing::info!(echo = %echo, ?row_list, "mysql applier connected: own transactions tagged by echo, multi-row updates list rows by row_list");
        Ok(MysqlApplier {
            conn,
            schemas,
            pipeline: cfg.pipeline.clone(),
            state_db: cfg.state_schema.clone(),
            direction: Direction::PostgresToMysql,
            pending: String::with_capacity(FLUSH_BYTES + (1 << 20)),
            pairs: cfg.pairs.clone(),
            conflicts: Vec::new(),
            forwarded: false,
            echo,
            row_list,
            guard_backoff: 0,
            on_error: cfg.apply.on_error,
            rejected: Vec::new(),
            fence: None,
        })
    }

    /// Makes every checkpoint write conditional on the `lease` row having `epoch`.
    pub fn set_fence(&mut self, epoch: i64) {
        self.fence = Some(epoch);
    }

    /// After a failed commit: `Fenced` when the lease epoch moved on, else `e`.
    async fn fenced_or(&mut self, e: Error) -> Error {
        let Some(epoch) = self.fence else { return e };
        self.pending.clear();
        if self.conn.query_drop("ROLLBACK").await.is_err() {
            return e;
        }
        let sql = format!("SELECT epoch FROM {} WHERE pipeline = ?", self.state_table("lease"));
        match self.conn.exec_first::<i64, _, _>(sql, (&self.pipeline,)).await {
            Ok(now) if now != Some(epoch) => Error::Fenced { side: "mysql", epoch },
            _ => e,
        }
    }

    pub fn echo(&self) -> EchoMark {
        self.echo
    }

    /// Replaces the pair schemas (after DDL).
    pub fn set_schemas(&mut self, schemas: Arc<Vec<PairSchema>>) {
        self.schemas = schemas;
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

    /// Sends the pending statements followed by a locking read of `keys`, and
    /// records every key's current row (absent keys as `None`) in `current`.
    async fn fetch_current(&mut self, schema: &PairSchema, keys: &[Row], current: &mut Current) -> Result<()> {
        for chunk in keys.chunks(1000) {
            for k in chunk {
                current.insert((schema.pair, key_text(k)), None);
            }
            let mut sql = std::mem::take(&mut self.pending);
            sql.push_str("SELECT ");
            for (n, c) in schema.columns.iter().enumerate() {
                if n > 0 {
                    sql.push(',');
                }
                // FLOAT prints only 6 digits over the text protocol: read its exact double.
                if super::mysql_sql::is_single_float(&c.my_type) {
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
                for (n, k) in chunk.iter().enumerate() {
                    if n > 0 {
                        sql.push(',');
                    }
                    render_value(&mut sql, schema, schema.key[0], &k[0]).map_err(Error::from)?;
                }
                sql.push(')');
            } else {
                for (n, k) in chunk.iter().enumerate() {
                    if n > 0 {
                        sql.push_str(" OR ");
                    }
                    key_predicate(&mut sql, schema, k).map_err(Error::from)?;
                }
            }
            sql.push_str(" FOR UPDATE");
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
                let raw = mysql_async::Row::unwrap(r);
                let mut row = Vec::with_capacity(schema.columns.len());
                for (c, v) in schema.columns.iter().zip(raw) {
                    let bytes = match &v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(b.as_slice()),
                        _ => return Err(Error::Decode(format!("pair {}: unexpected binary value for {}", schema.name, c.name))),
                    };
                    let mut v = mysql_text_value(bytes, c.my_kind).map_err(|e| {
                        Error::Decode(format!("pair {}, column {} (read back from {}): {e}", schema.name, c.name, schema.my_table))
                    })?;
                    if let (Value::Float(f), true) = (&v, super::mysql_sql::is_single_float(&c.my_type)) {
                        // The f32 the column holds, as the f64 with its shortest text (what sources produce).
                        v = Value::Float(format!("{}", *f as f32).parse().unwrap_or(*f));
                    }
                    row.push(v);
                }
                let k = key_text(&schema.key_of(&row));
                current.insert((schema.pair, k), Some(row));
            }
        }
        Ok(())
    }

    fn state_table(&self, name: &str) -> String {
        let mut s = String::new();
        push_ident(&mut s, &self.state_db);
        s.push('.');
        s.push_str(name);
        s
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

/// Plain multi-row inserts of runs whose keys should be absent at the
/// destination (`merge::fresh_inserts`); `None` when a value cannot be
/// rendered (the merge path reports it).
fn plain_inserts(schemas: &[PairSchema], runs: &[super::merge::InsertRun<'_>]) -> Option<Vec<String>> {
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

impl BatchApplier for MysqlApplier {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        let sql = format!("SELECT position FROM {} WHERE pipeline = ? AND direction = ?", self.state_table("checkpoints"));
        let pos: Option<String> = self.conn.exec_first(sql, (&self.pipeline, self.direction.key())).await?;
        match pos {
            None => Ok(None),
            Some(p) => match self.direction {
                Direction::PostgresToMysql => p
                    .parse()
                    .map(|l| Some(SourcePos::Postgres(l)))
                    .map_err(|e| Error::Checkpoint(format!("in {}: {e}", self.state_table("checkpoints")))),
                Direction::MysqlToPostgres => Err(Error::Checkpoint("MySQL holds only the postgres→mysql checkpoint".into())),
            },
        }
    }

    async fn begin(&mut self) -> Result<()> {
        self.pending.clear();
        if let EchoMark::ServerId(_) = self.echo {
            self.pending.push_str("START TRANSACTION;\n");
            return Ok(());
        }
        let marker = self.state_table("origin_marker");
        self.pending.push_str("START TRANSACTION;\nINSERT INTO ");
        self.pending.push_str(&marker);
        self.pending.push_str(" (pipeline, txn) VALUES (");
        push_literal(&mut self.pending, &self.pipeline);
        self.pending.push_str(", 1) ON DUPLICATE KEY UPDATE txn = txn + 1;\n");
        Ok(())
    }

    async fn write(&mut self, origin: Origin, changes: &[Change]) -> Result<()> {
        self.forwarded = origin == Origin::Outcome;
        // Changes holding a source value with no canonical form never reach the database.
        for segment in super::screen::screen(changes, &self.pairs, &self.schemas) {
            match segment {
                Segment::Apply(cs) => self.write_screened(&cs).await?,
                Segment::Hold(c, e) => self.reject(&c, e)?,
            }
        }
        Ok(())
    }

    async fn commit(&mut self, last: &TxnMeta) -> Result<()> {
        self.commit_inner(last).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        self.conflicts.clear();
        self.rejected.clear();
        self.conn.query_drop("ROLLBACK").await.map_err(Error::from)
    }
    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        let sql = format!("SELECT DISTINCT pair FROM {} WHERE pipeline = ? AND direction = ?", self.state_table("parked"));
        let names: Vec<String> = self.conn.exec(sql, (&self.pipeline, self.direction.key())).await?;
        Ok(super::park::pair_indices(&self.schemas, &names, self.direction))
    }

    async fn park(&mut self, changes: &[Change], reason: &str) -> Result<()> {
        let (pairs, texts) = super::park::rows(&self.schemas, changes);
        if pairs.is_empty() {
            return Ok(());
        }
        self.pending.push_str(&format!("INSERT INTO {} (pipeline, direction, pair, reason, change_json, created_at) VALUES ", self.state_table("parked")));
        for (n, (pair, text)) in pairs.iter().zip(&texts).enumerate() {
            self.pending.push_str(if n == 0 { "(" } else { ",(" });
            for f in [self.pipeline.as_str(), self.direction.key(), pair, reason, text] {
                push_literal(&mut self.pending, f);
                self.pending.push(',');
            }
            self.pending.push_str("UTC_TIMESTAMP(6))");
        }
        self.pending.push_str(";\n");
        if self.pending.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    fn pair_key(&self, pair: usize) -> Option<Vec<usize>> {
        self.schemas.iter().find(|s| s.pair == pair).map(|s| s.key.clone())
    }

    async fn apply_chunk(&mut self, job: &ChunkJob) -> Result<ChunkOutcome> {
        self.merge_chunk(job).await
    }

    async fn unpark(&mut self, pair: usize) -> Result<u64> {
        let Some(schema) = self.schemas.iter().find(|s| s.pair == pair).cloned() else { return Ok(0) };
        let table = self.state_table("parked");
        let select = format!("SELECT id, change_json FROM {table} WHERE pipeline = ? AND direction = ? AND pair = ? ORDER BY id LIMIT {}", super::park::REPLAY_CHUNK);
        let mut total = 0;
        loop {
            self.flush().await?;
            let rows: Vec<(u64, String)> = self.conn.exec(select.as_str(), (&self.pipeline, self.direction.key(), &schema.name)).await?;
            if rows.is_empty() {
                return Ok(total);
            }
            let mut apply = Vec::with_capacity(rows.len());
            for (_, text) in &rows {
                match super::park::replay(&schema, text)? {
                    super::park::Replay::Apply(c) => apply.push(c),
                    super::park::Replay::Reject(c, e) => self.reject(&c, e)?,
                }
            }
            self.write(Origin::Client, &apply).await?;
            let ids: Vec<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
            self.pending.push_str(&format!("DELETE FROM {table} WHERE id IN ({});\n", ids.join(",")));
            total += rows.len() as u64;
        }
    }
}

impl MysqlApplier {
    /// Applies a screened run of changes under a savepoint; when the destination
    /// rejects it, finds the rejected change(s) one at a time and sets them aside.
    async fn write_screened(&mut self, changes: &[Change]) -> Result<()> {
        self.pending.push_str("SAVEPOINT tandem_chunk;\n");
        let conflicts_before = self.conflicts.len();
        let first = match self.write_inner(changes).await {
            Ok(()) => self.flush().await,
            Err(e) => Err(e),
        };
        let Err(e) = first else { return Ok(()) };
        if !e.is_rejection() {
            return Err(e);
        }
        // Find the change(s) the destination rejects: one at a time, each under a savepoint.
        self.pending.clear();
        self.conflicts.truncate(conflicts_before);
        self.conn.query_drop("ROLLBACK TO SAVEPOINT tandem_chunk").await?;
        for c in changes {
            let before = self.conflicts.len();
            self.pending.push_str("SAVEPOINT tandem_row;\n");
            let r = match self.write_inner(std::slice::from_ref(c)).await {
                Ok(()) => self.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                if !e.is_rejection() {
                    return Err(e);
                }
                self.pending.clear();
                self.conflicts.truncate(before);
                self.conn.query_drop("ROLLBACK TO SAVEPOINT tandem_row").await?;
                self.reject(c, e)?;
            }
        }
        Ok(())
    }

}

impl MysqlApplier {
    /// Applies one quarantined change again and deletes quarantine row `id`, in
    /// one transaction that does not move the checkpoint. `Ok(Some(error))` when
    /// the destination still rejects it (nothing changed).
    pub async fn retry_quarantined(&mut self, change: &Change, id: u64) -> Result<Option<String>> {
        let on_error = self.on_error;
        self.on_error = crate::config::OnError::Quarantine;
        self.begin().await?;
        let r = self.write(Origin::Client, std::slice::from_ref(change)).await;
        self.on_error = on_error;
        if let Err(e) = r {
            let _ = self.rollback().await;
            return Err(e);
        }
        if let Some(still) = self.rejected.pop() {
            self.rollback().await?;
            return Ok(Some(still.error));
        }
        self.pending.push_str(&format!("DELETE FROM {} WHERE id = {id};\nCOMMIT", self.state_table("quarantine")));
        self.flush().await?;
        self.conflicts.clear();
        Ok(None)
    }

    /// Sets a rejected change aside, or stops with it (`on_error = "stop"`).
    fn reject(&mut self, c: &Change, e: Error) -> Result<()> {
        let Some(schema) = self.schemas.iter().find(|s| s.pair == c.pair) else { return Err(e) };
        let r = handle_rejection(schema, c, None, &e, self.on_error, self.direction)?;
        self.rejected.push(r);
        Ok(())
    }

    async fn write_inner(&mut self, changes: &[Change]) -> Result<()> {
        let schemas = Arc::clone(&self.schemas);
        if let Some(statements) = fresh_inserts(changes, &schemas, &self.pairs).and_then(|runs| plain_inserts(&schemas, &runs)) {
            self.pending.push_str("SAVEPOINT tandem_fresh;\n");
            match self.send_all(&statements).await {
                Ok(()) => return Ok(()),
                // A key exists at the destination or repeats in the chunk (or a value
                // is refused): undo, and merge against the current rows, which also
                // finds any refused change.
                Err(e) if e.is_rejection() => {
                    self.pending.clear();
                    self.conn.query_drop("ROLLBACK TO SAVEPOINT tandem_fresh").await?;
                }
                Err(e) => return Err(e),
            }
        }
        if self.write_guarded(changes).await? {
            return Ok(());
        }
        let mut current = Current::new();
        for (pair, keys) in keys_needed(changes, &schemas) {
            if let Some(schema) = schemas.iter().find(|s| s.pair == pair) {
                self.fetch_current(schema, &keys, &mut current).await?;
            }
        }
        let (runs, outcome) = merge_chunk(changes, &schemas, &self.pairs, Side::Postgres, self.forwarded, &mut current);
        report(&outcome, &schemas, Side::Postgres);
        self.conflicts.extend(outcome.conflicts);
        for run in runs {
            let Some(schema) = schemas.iter().find(|s| s.pair == run.pair) else { continue };
            // Split long runs so one statement stays well under max_allowed_packet.
            let mut start = 0;
            while start < run.ops.len() {
                let end = (start + 2000).min(run.ops.len());
                render_run(&mut self.pending, schema, &run.ops[start..end], self.row_list)?;
                start = end;
                if self.pending.len() >= FLUSH_BYTES {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Writes a chunk of plain updates without reading the rows first, each
    /// row guarded by its before-image (`merge::assumed_current`), in one
    /// round trip that also counts the rows changed. `Ok(false)` when nothing
    /// of the chunk is written: it does not qualify, or a guard failed (a row
    /// changed at the destination since the source read it, or is gone) and
    /// the chunk was rolled back, to be merged against the current rows.
    async fn write_guarded(&mut self, changes: &[Change]) -> Result<bool> {
        if self.guard_backoff > 0 {
            self.guard_backoff -= 1;
            return Ok(false);
        }
        let schemas = Arc::clone(&self.schemas);
        let Some(befores) = assumed_current(changes, &schemas, &self.pairs) else { return Ok(false) };
        let mut current: Current = befores.iter().map(|(k, &b)| (k.clone(), Some(b.clone()))).collect();
        let (runs, outcome) = merge_chunk(changes, &schemas, &self.pairs, Side::Postgres, self.forwarded, &mut current);
        if !outcome.conflicts.is_empty() || runs.iter().any(|r| r.ops.iter().any(|op| !matches!(op, RowOp::PartialUpdate { .. }))) {
            return Ok(false);
        }
        let mark = self.pending.len();
        self.pending.push_str("SAVEPOINT tandem_guarded;\nSET @tandem_rows = 0;\n");
        let mut expected = 0;
        for run in &runs {
            let (Some(schema), Some(pair)) = (schemas.iter().find(|s| s.pair == run.pair), self.pairs.get(run.pair)) else { continue };
            for ops in run.ops.chunks(2000) {
                let before = |key: &Row| befores.get(&(run.pair, key_text(key))).copied();
                match render_guarded(&mut self.pending, schema, ops, before, guard_also(schema, pair), self.row_list) {
                    Ok(Some(n)) => expected += n,
                    Ok(None) => {
                        self.pending.truncate(mark);
                        return Ok(false);
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
            report(&outcome, &schemas, Side::Postgres);
            return Ok(true);
        }
        tracing::debug!(expected, ?changed, "guarded updates met rows changed at the destination; merging against the current rows");
        self.conn.query_drop("ROLLBACK TO SAVEPOINT tandem_guarded").await?;
        self.guard_backoff = GUARD_BACKOFF;
        Ok(false)
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

    /// Sends the pending statements and `statements`, in round trips of bounded size.
    async fn send_all(&mut self, statements: &[String]) -> Result<()> {
        for sql in statements {
            self.pending.push_str(sql);
            if self.pending.len() >= FLUSH_BYTES {
                self.flush().await?;
            }
        }
        self.flush().await
    }

    async fn commit_inner(&mut self, last: &TxnMeta) -> Result<()> {
        let position = &last.position;
        for r in std::mem::take(&mut self.rejected) {
            self.pending.push_str(&format!("INSERT INTO {} (pipeline, direction, pair, key_json, column_name, value_text, error, change_json, position, created_at) VALUES (", self.state_table("quarantine")));
            let fields = [Some(self.pipeline.clone()), Some(self.direction.key().to_string()), Some(r.pair), Some(r.key_json), r.column, r.value, Some(r.error), Some(r.change_json), Some(position.to_string())];
            for (n, f) in fields.iter().enumerate() {
                if n > 0 {
                    self.pending.push(',');
                }
                match f {
                    Some(t) => push_literal(&mut self.pending, t),
                    None => self.pending.push_str("NULL"),
                }
            }
            self.pending.push_str(", UTC_TIMESTAMP(6));\n");
        }
        let conflicts = std::mem::take(&mut self.conflicts);
        if !conflicts.is_empty() {
            let source_ts = (last.commit_ts > 0).then(|| crate::model::value::format_timestamp(last.commit_ts));
            let table = self.state_table("conflicts");
            for row in conflict_rows(&conflicts, &self.schemas) {
                self.pending.push_str("INSERT INTO ");
                self.pending.push_str(&table);
                self.pending.push_str(
                    " (pipeline, pair, key_json, column_name, postgres_value, mysql_value, policy, winner, postgres_commit_ts, decided_at, resolved_at) VALUES (",
                );
                push_literal(&mut self.pending, &self.pipeline);
                for v in row.iter().chain(std::iter::once(&source_ts)) {
                    self.pending.push(',');
                    match v {
                        Some(t) => push_literal(&mut self.pending, t),
                        None => self.pending.push_str("NULL"),
                    }
                }
                // Decided conflicts are closed at once; manual ones (no winner) stay open.
                let open = row[6].is_none();
                self.pending.push_str(if open { ", UTC_TIMESTAMP(6), NULL);\n" } else { ", UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));\n" });
            }
        }
        if self.fence.is_some() {
            // The share lock makes a new holder's epoch bump wait for this commit.
            let lease = self.state_table("lease");
            self.pending.push_str("SET @tandem_lease_epoch = NULL;\nSELECT epoch INTO @tandem_lease_epoch FROM ");
            self.pending.push_str(&lease);
            self.pending.push_str(" WHERE pipeline = ");
            push_literal(&mut self.pending, &self.pipeline);
            self.pending.push_str(" LOCK IN SHARE MODE;\n");
        }
        let table = self.state_table("checkpoints");
        self.pending.push_str("INSERT INTO ");
        self.pending.push_str(&table);
        self.pending.push_str(" (pipeline, direction, position, updated_at) VALUES (");
        push_literal(&mut self.pending, &self.pipeline);
        self.pending.push(',');
        push_literal(&mut self.pending, self.direction.key());
        self.pending.push(',');
        match self.fence {
            None => push_literal(&mut self.pending, &position.to_string()),
            Some(epoch) => {
                // NULL (refused by strict mode, so COMMIT never runs) unless the epoch is still ours.
                self.pending.push_str(&format!("IF(@tandem_lease_epoch <=> {epoch}, "));
                push_literal(&mut self.pending, &position.to_string());
                self.pending.push_str(", NULL)");
            }
        }
        self.pending.push_str(", UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at);\nCOMMIT");
        match self.flush().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fenced_or(e).await),
        }
    }

}

impl MysqlApplier {
    /// `BatchApplier::apply_chunk`: corrects the staged chunk by the window,
    /// merges it and records the progress (see `crate::backfill`).
    async fn merge_chunk(&mut self, job: &ChunkJob) -> Result<ChunkOutcome> {
        use crate::backfill::{progress, staging};
        let Some(schema) = self.schemas.iter().find(|s| s.pair == job.pair).cloned() else {
            return Ok(ChunkOutcome::Abandoned(format!("pair #{} has no schema", job.pair)));
        };
        let s = &job.signal;
        let table = self.state_table("backfills");
        self.flush().await?;
        let stored: Option<(String, Option<String>)> =
            self.conn.exec_first(format!("SELECT run, last_key FROM {table} WHERE pipeline = ? AND pair = ? FOR UPDATE"), (&self.pipeline, &schema.name)).await?;
        let fix = match progress::verdict(stored.as_ref().map(|(r, k)| (r.as_str(), k.as_deref())), job) {
            progress::Verdict::Merge(fix) => fix.clone(),
            progress::Verdict::Stale => return Ok(ChunkOutcome::Abandoned("a chunk of an earlier backfill run".into())),
            progress::Verdict::Abandon(reason) => {
                self.conn.query_drop(staging::clear_chunk_sql(Side::Mysql, &self.state_db, &s.staging, s.chunk)).await?;
                self.conn.exec_drop(progress::my_abandoned_sql(&table), (&s.run, s.chunk, &self.pipeline, &schema.name)).await?;
                return Ok(ChunkOutcome::Abandoned(reason));
            }
        };
        let staged = staging::staged_schema(&schema, &self.state_db, &s.staging);
        if fix.truncated {
            self.pending.push_str(&staging::clear_chunk_sql(Side::Mysql, &self.state_db, &s.staging, s.chunk));
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
        self.pending.push_str(&staging::my_merge_sql(&schema, &self.state_db, &s.staging, s.chunk));
        self.flush().await?;
        let last_key = progress::key_json(&s.last_key);
        self.conn.exec_drop(progress::my_applied_sql(&table), (&s.run, s.chunk, s.rows, last_key, &self.pipeline, &schema.name)).await?;
        Ok(ChunkOutcome::Applied { rows: s.rows })
    }
}
