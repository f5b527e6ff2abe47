//! The Postgres destination: the dialect the applier driver
//! (`super::driver`) writes through — set-based statements over text arrays
//! (`postgres_sql`), prepared once per pair and kind, in one Postgres
//! transaction that also writes the `mysql→postgres` checkpoint.
//!
//! The session runs under the replication origin `tandem_<pipeline>`
//! (`pg_replication_origin_session_setup`), so pgoutput marks every
//! transaction it commits with that origin and the Postgres source knows
//! them as tandem's own (DESIGN §2). Each transaction also calls
//! `pg_replication_origin_xact_setup` with the source commit time, so commit
//! timestamps stay meaningful, and emits a transactional logical message
//! naming the MySQL position it applied (read back by the echo stage); the
//! stamp and the checkpoint share one round trip. Where the role may, the
//! session runs with `session_replication_role = replica`, so user triggers
//! and foreign-key checks do not fire for replicated rows — except the
//! deletes of rows other tables reference with ON DELETE CASCADE / SET
//! NULL, which run with the origin role so that Postgres applies those
//! actions (MariaDB does not log the rows its own cascades change). Fresh inserts are
//! written with COPY. With a lease fence (`set_fence`), the checkpoint is
//! written only while the `lease` row still has this holder's epoch (read
//! `FOR SHARE` in the batch transaction); otherwise the batch is rolled back
//! with `Error::Fenced`.

use super::destination::{Commit, Destination};
use super::driver::Applier;
use super::merge::{Current, InsertRun};
use super::plan::{update_groups, RowOp, Run};
use super::postgres_sql::{copy_rows, copy_sql, delete_params, delete_sql, grouped_update, insert_sql, partial_update, text, upsert_params, upsert_sql, PgRenderError};
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::codec::pg_text::decode_text;
use crate::config::{Config, Direction, Side};
use crate::conflict::compare::key_text;
use crate::model::{Row, SourcePos, Value};
use crate::schema::PairSchema;
use crate::sql::pg::ident as pg_ident;
use crate::state::postgres::PgState;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

/// The applier of the mysql→postgres direction.
pub type PostgresApplier = Applier<PostgresDest>;

impl PostgresApplier {
    pub async fn connect(cfg: &Config, schemas: Arc<Vec<PairSchema>>) -> Result<Self> {
        let client = crate::db::connect_pg(&cfg.postgres.endpoint).await?;
        // The origin can be held for a moment by a session of ours that is still closing
        // (restart, failover): retry "object in use" for a few seconds.
        let mut tries = 0;
        loop {
            match client.query("SELECT pg_replication_origin_session_setup($1)", &[&cfg.origin_name()]).await {
                Ok(_) => break,
                Err(e) if e.code().map(|c| c.code()) == Some("55006") && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(Error::Setup(format!(
                        "cannot set up replication origin {} (run `tandem init`; the role needs superuser or EXECUTE on pg_replication_origin_session_setup): {}",
                        cfg.origin_name(),
                        Error::Postgres(e)
                    )))
                }
            }
        }
        // Every statement and lock wait of this session is bounded ([timeouts]);
        // one that fires is a transient error: the direction retries from its checkpoint.
        let t = &cfg.timeouts;
        client
            .batch_execute(&format!(
                "SET statement_timeout = '{}ms'; SET lock_timeout = '{}ms'",
                t.statement.as_millis().max(1),
                t.lock.as_millis().max(1)
            ))
            .await?;
        // As a native subscriber's: user triggers (but ENABLE ALWAYS / REPLICA
        // ones) and foreign-key checks do not fire for replicated rows, so
        // the order of rows does not matter. Only where the role may.
        let replica_role = match client.batch_execute("SET session_replication_role = replica").await {
            Ok(()) => true,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                tracing::warn!(
                    "the postgres role may not set session_replication_role (needs superuser, or GRANT SET ON PARAMETER                      session_replication_role on PG 15+): triggers and foreign-key checks fire on replicated rows"
                );
                false
            }
            Err(e) => return Err(e.into()),
        };
        let db = PostgresDest {
            replica_role,
            cascading: Vec::new(),
            client,
            state: PgState::new(&cfg.state_schema, &cfg.pipeline, Direction::MysqlToPostgres),
            server_identity: None,
            statements: HashMap::new(),
            readers: HashMap::new(),
            updates: HashMap::new(),
            commit_statements: None,
            fence: None,
            applied_prefix: crate::state::names::pg_applied_prefix(&cfg.origin_name()),
        };
        Ok(Applier::new(db, cfg, schemas))
    }

    /// Makes every checkpoint write conditional on the `lease` row having `epoch`.
    pub fn set_fence(&mut self, epoch: i64) {
        self.db.fence = Some(epoch);
        self.db.commit_statements = None;
    }

    /// Writes a checkpoint outside any batch unless one exists (used by
    /// `init` for the start position); `true` when it was written.
    pub async fn store_initial_checkpoint(&mut self, position: &SourcePos) -> Result<bool> {
        let db = &self.db;
        db.state.store_initial_checkpoint(&db.client, &position.to_string(), db.server_identity.as_deref()).await
    }
}

/// One Postgres session (under tandem's replication origin) as a destination.
pub struct PostgresDest {
    client: tokio_postgres::Client,
    /// The session runs with `session_replication_role = replica`.
    replica_role: bool,
    /// Pairs whose table foreign keys reference with ON DELETE CASCADE / SET
    /// NULL / SET DEFAULT: their deletes run with the origin role, so
    /// Postgres applies those actions (MariaDB does not log its own cascades).
    cascading: Vec<usize>,
    state: PgState,
    /// Identity of the source server, stored with every checkpoint.
    server_identity: Option<String>,
    /// Plain inserts (kind 0) and keyed deletes (kind 1) by pair.
    statements: HashMap<(usize, u8), Statement>,
    /// Per pair: the locking read of current rows and its column type OIDs.
    readers: HashMap<usize, (Statement, Vec<u32>)>,
    /// Grouped updates by pair and the columns they set.
    updates: HashMap<(usize, Vec<usize>), Statement>,
    /// The commit's origin stamp and checkpoint write, prepared once.
    commit_statements: Option<(Statement, Statement)>,
    /// The lease epoch every checkpoint write is conditional on (`run::lease`).
    fence: Option<i64>,
    /// Prefix of the logical message naming the MySQL position each batch applied.
    applied_prefix: String,
}

fn value_error(e: PgRenderError) -> Error {
    Error::Value { pair: e.pair, column: e.column, message: format!("{} (value {})", e.reason, e.value) }
}

impl PostgresDest {
    async fn statement(&mut self, schema: &PairSchema, kind: u8) -> Result<Statement> {
        if let Some(s) = self.statements.get(&(schema.pair, kind)) {
            return Ok(s.clone());
        }
        let sql = if kind == 0 { insert_sql(schema) } else { delete_sql(schema) };
        let st = self.client.prepare(&sql).await?;
        self.statements.insert((schema.pair, kind), st.clone());
        Ok(st)
    }

    async fn execute_arrays(&mut self, st: &Statement, arrays: &[Vec<Option<String>>]) -> Result<()> {
        let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        self.client.execute(st, &params).await?;
        Ok(())
    }

    /// The locking read of `schema`'s rows by key, and its column type OIDs, prepared once.
    async fn reader(&mut self, schema: &PairSchema) -> Result<(Statement, Vec<u32>)> {
        if let Some(r) = self.readers.get(&schema.pair) {
            return Ok(r.clone());
        }
        let table = super::postgres_sql::table(schema);
        let cols: Vec<String> = schema.columns.iter().map(|c| pg_ident(&c.pg_name)).collect();
        let probe = self.client.prepare(&format!("SELECT {} FROM {table} LIMIT 0", cols.join(", "))).await?;
        let oids: Vec<u32> = probe.columns().iter().map(|c| c.type_().oid()).collect();
        let texts: Vec<String> = cols.iter().map(|c| format!("t.{c}::text")).collect();
        let (from, on) = super::postgres_sql::unnest_keys(schema, 0);
        let sql = format!("SELECT {} FROM {table} AS t JOIN {from} ON {on} FOR UPDATE OF t", texts.join(", "));
        let st = self.client.prepare(&sql).await?;
        self.readers.insert(schema.pair, (st.clone(), oids.clone()));
        Ok((st, oids))
    }

    /// The origin stamp and the checkpoint write (conditional on the lease
    /// epoch when fenced), prepared on first use.
    async fn commit_statements(&mut self) -> Result<(Statement, Statement)> {
        if let Some(sts) = &self.commit_statements {
            return Ok(sts.clone());
        }
        // The applied MySQL position travels in the stream too: the echo stage
        // reads it back as `seen` of later Postgres transactions.
        let stamp = self
            .client
            .prepare("SELECT pg_replication_origin_xact_setup('0/0', $1::text::timestamptz), pg_logical_emit_message(true, $2::text, $3::text)")
            .await?;
        let checkpoint = self.client.prepare(&self.state.checkpoint_sql(self.fence.is_some())).await?;
        self.commit_statements = Some((stamp.clone(), checkpoint.clone()));
        Ok((stamp, checkpoint))
    }

    /// Writes a run of partial updates: rows setting the same columns share one statement.
    async fn update_run(&mut self, schema: &PairSchema, ops: &[RowOp]) -> Result<()> {
        for g in update_groups(ops, |i| super::postgres_sql::updatable(schema, i)) {
            if g.rows.len() == 1 {
                let (key, row) = g.rows[0];
                if let Some((sql, params)) = partial_update(schema, key, row).map_err(value_error)? {
                    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                    self.client.execute(sql.as_str(), &refs).await?;
                }
                continue;
            }
            let (sql, arrays) = grouped_update(schema, &g).map_err(value_error)?;
            let st = match self.updates.get(&(schema.pair, g.columns.clone())) {
                Some(st) => st.clone(),
                None => {
                    let st = self.client.prepare(&sql).await?;
                    self.updates.insert((schema.pair, g.columns.clone()), st.clone());
                    st
                }
            };
            self.execute_arrays(&st, &arrays).await?;
        }
        Ok(())
    }
}

impl Destination for PostgresDest {
    async fn firing_triggers(&mut self, schemas: &[PairSchema]) -> Result<Vec<usize>> {
        // Read with the triggers, once per schema set: which deletes must cascade here.
        let referenced = self
            .client
            .query(
                "SELECT DISTINCT pn.nspname::text, p.relname::text FROM pg_constraint k
                 JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
                 WHERE k.contype = 'f' AND k.confdeltype IN ('c', 'n', 'd')",
                &[],
            )
            .await?;
        self.cascading = schemas
            .iter()
            .filter(|s| referenced.iter().any(|r| r.get::<_, String>(0) == s.pg_table.schema && r.get::<_, String>(1) == s.pg_table.name))
            .map(|s| s.pair)
            .collect();
        let mut out = Vec::new();
        for s in schemas {
            let triggers = crate::schema::triggers::pg_triggers(&self.client, &s.pg_table).await?;
            if triggers.iter().any(|t| t.fires(self.replica_role)) {
                out.push(s.pair);
            }
        }
        Ok(out)
    }

    const SIDE: Side = Side::Postgres;
    const GUARDED_UPDATES: bool = false;
    /// COPY statements and their data.
    type Fresh = Vec<(String, String)>;

    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        match self.state.checkpoint(&self.client).await? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(|p| Some(SourcePos::Mysql(p)))
                .map_err(|e| Error::Checkpoint(format!("in {}: {e}", self.state.table("checkpoints")))),
        }
    }

    async fn source_identity(&mut self) -> Result<Option<String>> {
        self.state.source_identity(&self.client).await
    }

    fn set_source_identity(&mut self, identity: String) {
        self.server_identity = Some(identity);
    }

    fn schemas_changed(&mut self) {
        self.statements.clear();
        self.readers.clear();
        self.updates.clear();
    }

    async fn begin(&mut self) -> Result<()> {
        self.client.batch_execute("BEGIN").await?;
        Ok(())
    }

    async fn savepoint(&mut self, name: &str) -> Result<()> {
        self.client.batch_execute(&format!("SAVEPOINT {name}")).await?;
        Ok(())
    }

    async fn rollback_to(&mut self, name: &str) -> Result<()> {
        self.client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {name}")).await?;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.client.batch_execute("ROLLBACK").await?;
        Ok(())
    }

    /// Every statement is sent as it is made.
    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    async fn read_current(&mut self, schema: &PairSchema, keys: &[Row], current: &mut Current) -> Result<()> {
        let (st, oids) = self.reader(schema).await?;
        for chunk in keys.chunks(5000) {
            let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(chunk.len()); schema.key.len()];
            for k in chunk {
                current.insert((schema.pair, key_text(k)), None);
                for (slot, (&i, v)) in schema.key.iter().zip(k).enumerate() {
                    let t = text(v, schema.columns[i].pg_kind)
                        .map_err(|e| Error::Value { pair: schema.name.clone(), column: schema.columns[i].name.clone(), message: format!("key: {e}") })?;
                    arrays[slot].push(t);
                }
            }
            let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            for r in self.client.query(&st, &params).await? {
                let mut row = Vec::with_capacity(oids.len());
                for (n, oid) in oids.iter().enumerate() {
                    let raw: Option<&str> = r.try_get(n)?;
                    row.push(match raw {
                        None => Value::Null,
                        Some(t) => decode_text(*oid, t.as_bytes())?,
                    });
                }
                current.insert((schema.pair, key_text(&schema.key_of(&row))), Some(row));
            }
        }
        Ok(())
    }

    fn fresh(&self, schemas: &[PairSchema], runs: &[InsertRun<'_>]) -> Option<Vec<(String, String)>> {
        runs.iter()
            .map(|run| {
                let schema = schemas.iter().find(|s| s.pair == run.pair)?;
                Some((copy_sql(schema)?, copy_rows(schema, &run.rows).ok()?))
            })
            .collect()
    }

    async fn insert_fresh(&mut self, copies: Vec<(String, String)>) -> Result<()> {
        use futures_util::SinkExt;
        for (sql, data) in copies {
            let sink = self.client.copy_in::<_, bytes::Bytes>(sql.as_str()).await?;
            futures_util::pin_mut!(sink);
            sink.send(bytes::Bytes::from(data)).await?;
            sink.finish().await?;
        }
        Ok(())
    }

    async fn write_runs(&mut self, schemas: &[PairSchema], runs: Vec<Run>) -> Result<()> {
        for run in runs {
            let Some(schema) = schemas.iter().find(|s| s.pair == run.pair) else { continue };
            match run.ops.first() {
                Some(RowOp::Upsert(_)) => {
                    // Merged inserts go to keys found missing: a plain INSERT (see `insert_sql`).
                    let st = self.statement(schema, 0).await?;
                    let arrays = upsert_params(schema, &run.ops).map_err(value_error)?;
                    self.execute_arrays(&st, &arrays).await?;
                }
                Some(RowOp::Delete(_)) => {
                    let st = self.statement(schema, 1).await?;
                    let arrays = delete_params(schema, &run.ops).map_err(value_error)?;
                    // MariaDB does not write the rows its foreign keys cascade to into the
                    // binlog: let Postgres' own ON DELETE actions run for these deletes.
                    // On an error the savepoint rollback restores the replica role.
                    let cascade = self.replica_role && self.cascading.contains(&schema.pair);
                    if cascade {
                        self.client.batch_execute("SET LOCAL session_replication_role = origin").await?;
                    }
                    self.execute_arrays(&st, &arrays).await?;
                    if cascade {
                        self.client.batch_execute("SET LOCAL session_replication_role = replica").await?;
                    }
                }
                Some(RowOp::PartialUpdate { .. }) => self.update_run(schema, &run.ops).await?,
                Some(RowOp::Truncate) => {
                    let sql = format!("TRUNCATE {}", super::postgres_sql::table(schema));
                    self.client.batch_execute(&sql).await?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Postgres names the column of some data errors.
    fn rejected_column(&self, error: &Error, schema: &PairSchema) -> Option<String> {
        let Error::Postgres(pe) = error else { return None };
        let name = pe.as_db_error().and_then(|d| d.column())?;
        schema.columns.iter().find(|c| c.pg_name == name).map(|c| c.name.clone())
    }

    async fn commit(&mut self, c: Commit<'_>) -> Result<()> {
        let last = c.last;
        let position = last.position.to_string();
        self.state.quarantine(&self.client, &c.quarantine, &position).await?;
        if !c.conflicts.is_empty() {
            self.state.conflicts(&self.client, &c.conflicts, (last.commit_ts > 0).then_some(last.commit_ts)).await?;
        }
        // Stamp the transaction with the source commit time (origin LSN unused: 0/0).
        let ts = if last.commit_ts > 0 { last.commit_ts } else { chrono::Utc::now().timestamp_micros() };
        let ts_text = crate::model::value::format_timestamp(ts) + "+00";
        let (stamp, checkpoint) = self.commit_statements().await?;
        let (pipeline, direction) = (self.state.pipeline(), self.state.direction());
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&pipeline, &direction, &position, &self.server_identity];
        if let Some(epoch) = &self.fence {
            params.push(epoch);
        }
        // Both in one round trip.
        let stamp_params: [&(dyn ToSql + Sync); 3] = [&ts_text, &self.applied_prefix, &position];
        let (_, n) = futures_util::future::try_join(self.client.query(&stamp, &stamp_params), self.client.execute(&checkpoint, &params)).await?;
        if let (Some(epoch), 0) = (self.fence, n) {
            self.client.batch_execute("ROLLBACK").await?;
            return Err(Error::Fenced { side: "postgres", epoch });
        }
        self.client.batch_execute("COMMIT").await?;
        Ok(())
    }

    async fn unquarantine_and_commit(&mut self, id: i64) -> Result<()> {
        self.state.unquarantine(&self.client, id).await?;
        self.client.batch_execute("COMMIT").await?;
        Ok(())
    }

    async fn parked_pairs(&mut self) -> Result<Vec<String>> {
        self.state.parked_pairs(&self.client).await
    }

    async fn park(&mut self, pairs: &[String], changes: &[String], reason: &str) -> Result<()> {
        self.state.park(&self.client, pairs, changes, reason).await
    }

    async fn parked(&mut self, pair: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        self.state.parked(&self.client, pair, limit).await
    }

    async fn unpark(&mut self, ids: &[i64]) -> Result<()> {
        self.state.unpark(&self.client, ids).await
    }

    /// Corrects the staged chunk by the window, merges it and records the
    /// progress (see `crate::backfill`).
    async fn merge_backfill_chunk(&mut self, schema: &PairSchema, job: &ChunkJob) -> Result<ChunkOutcome> {
        use crate::backfill::{progress, staging};
        let s = &job.signal;
        let stored = self.state.backfill_progress(&self.client, &schema.name).await?;
        let fix = match progress::verdict(stored.as_ref().map(|(r, k)| (r.as_str(), k.as_deref())), job) {
            progress::Verdict::Merge(fix) => fix.clone(),
            progress::Verdict::Stale => return Ok(ChunkOutcome::Abandoned("a chunk of an earlier backfill run".into())),
            progress::Verdict::Abandon(reason) => {
                self.client.batch_execute(&staging::clear_chunk_sql(Side::Postgres, self.state.schema_name(), &s.staging, s.chunk)).await?;
                self.state.backfill_chunk_done(&self.client, &schema.name, &s.run, s.chunk, None).await?;
                return Ok(ChunkOutcome::Abandoned(reason));
            }
        };
        let state_schema = self.state.schema_name().to_string();
        let staged = staging::staged_schema(schema, &state_schema, &s.staging);
        if fix.truncated {
            self.client.batch_execute(&staging::clear_chunk_sql(Side::Postgres, &state_schema, &s.staging, s.chunk)).await?;
        }
        let staging_error = |e: PgRenderError| Error::Value { pair: e.pair, column: e.column, message: e.reason };
        if !fix.dropped.is_empty() {
            let ops: Vec<RowOp> = fix.dropped.iter().map(|k| RowOp::Delete(k.clone())).collect();
            let arrays = delete_params(&staged, &ops).map_err(staging_error)?;
            let st = self.client.prepare(&delete_sql(&staged)).await?;
            self.execute_arrays(&st, &arrays).await?;
        }
        let mut restaged = Vec::new();
        for row in &fix.rows {
            let op = RowOp::Upsert(row.clone());
            match upsert_params(&staged, std::slice::from_ref(&op)) {
                Ok(_) => restaged.push(op),
                Err(e) => tracing::warn!(pair = %schema.name, column = %e.column, error = %e.reason,
                    "backfill: a row changed during its chunk cannot be staged; the stream's changes decide it"),
            }
        }
        if !restaged.is_empty() {
            let arrays = upsert_params(&staged, &restaged).map_err(staging_error)?;
            let st = self.client.prepare(&upsert_sql(&staged)).await?;
            self.execute_arrays(&st, &arrays).await?;
        }
        let chunk = s.chunk as i64;
        for sql in staging::pg_merge_sql(schema, &state_schema, &s.staging) {
            self.client.execute(&sql, &[&chunk]).await?;
        }
        let last_key = progress::key_json(&s.last_key);
        self.state.backfill_chunk_done(&self.client, &schema.name, &s.run, s.chunk, Some((s.rows, last_key))).await?;
        Ok(ChunkOutcome::Applied { rows: s.rows })
    }
}
