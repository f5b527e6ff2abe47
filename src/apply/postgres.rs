//! The Postgres applier: batches of changes become set-based statements in
//! one Postgres transaction that also writes the `mysql→postgres` checkpoint.
//!
//! The session runs under the replication origin `tandem_<pipeline>`
//! (`pg_replication_origin_session_setup`), so pgoutput marks every
//! transaction it commits with that origin and the Postgres source drops them
//! as echoes (DESIGN §2). Each transaction also calls
//! `pg_replication_origin_xact_setup` with the source commit time, so commit
//! timestamps stay meaningful. Statements are prepared once per pair and kind;
//! the origin stamp and the checkpoint share one round trip. A chunk of
//! inserts whose keys the destination does not have is written with COPY
//! under a savepoint, without reading current rows first; when a key exists
//! after all, the savepoint is rolled back and the chunk merged
//! (`merge::fresh_inserts`).
//! With a lease fence (`set_fence`), the checkpoint is written only while the
//! `lease` row still has this holder's epoch (read `FOR SHARE` in the batch
//! transaction); otherwise the batch is rolled back with `Error::Fenced`.

use super::merge::{conflict_rows, fresh_inserts, keys_needed, merge_chunk, report, Current};
use super::plan::RowOp;
use super::plan::update_groups;
use super::postgres_sql::{copy_rows, copy_sql, delete_params, delete_sql, grouped_update, insert_sql, partial_update, text, upsert_params, upsert_sql};
use super::quarantine::{handle_rejection, Rejected};
use super::screen::Segment;
use super::BatchApplier;
use crate::config::{Config, Direction, PairConfig, Side};
use crate::conflict::compare::key_text;
use crate::conflict::ConflictRecord;
use crate::model::Row;
use crate::backfill::{ChunkJob, ChunkOutcome};
use crate::model::{Change, Origin, SourcePos, TxnMeta};
use crate::sql::pg::ident as pg_ident;
use crate::schema::PairSchema;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::ToSql;

pub struct PostgresApplier {
    client: tokio_postgres::Client,
    schemas: Arc<Vec<PairSchema>>,
    pipeline: String,
    state_schema: String,
    direction: Direction,
    statements: HashMap<(usize, u8), tokio_postgres::Statement>,
    /// Identity of the source server, stored with every checkpoint.
    server_identity: Option<String>,
    pairs: Vec<PairConfig>,
    /// Conflicts decided in the open transaction, written with its commit.
    conflicts: Vec<ConflictRecord>,
    /// The changes being written are an outcome the destination adopts
    /// (`Origin::Outcome`).
    forwarded: bool,
    /// Per pair: the locking read of current rows and its column type OIDs.
    readers: HashMap<usize, (tokio_postgres::Statement, Vec<u32>)>,
    /// Grouped updates by pair and the columns they set.
    updates: HashMap<(usize, Vec<usize>), tokio_postgres::Statement>,
    /// The commit's origin stamp and checkpoint write, prepared once.
    commit_statements: Option<(tokio_postgres::Statement, tokio_postgres::Statement)>,
    on_error: crate::config::OnError,
    /// Changes rejected in the open transaction, quarantined with its commit.
    rejected: Vec<Rejected>,
    /// The lease epoch every checkpoint write is conditional on (`ops::lease`).
    fence: Option<i64>,
    /// Prefix of the logical message naming the MySQL position each batch applied.
    applied_prefix: String,
}

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
        Ok(PostgresApplier {
            client,
            schemas,
            pipeline: cfg.pipeline.clone(),
            state_schema: cfg.state_schema.clone(),
            direction: Direction::MysqlToPostgres,
            statements: HashMap::new(),
            server_identity: None,
            pairs: cfg.pairs.clone(),
            conflicts: Vec::new(),
            forwarded: false,
            readers: HashMap::new(),
            updates: HashMap::new(),
            commit_statements: None,
            on_error: cfg.apply.on_error,
            rejected: Vec::new(),
            fence: None,
            applied_prefix: crate::state::names::pg_applied_prefix(&cfg.origin_name()),
        })
    }

    /// Makes every checkpoint write conditional on the `lease` row having `epoch`.
    pub fn set_fence(&mut self, epoch: i64) {
        self.fence = Some(epoch);
        self.commit_statements = None;
    }

    /// Writes a checkpoint outside any batch (used by `init` for the start position).
    pub async fn store_initial_checkpoint(&mut self, position: &SourcePos) -> Result<bool> {
        let sql = format!(
            "INSERT INTO {} (pipeline, direction, position, server_identity, updated_at) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (pipeline, direction) DO NOTHING",
            self.checkpoints()
        );
        let n = self.client.execute(&sql, &[&self.pipeline, &self.direction.key(), &position.to_string(), &self.server_identity]).await?;
        Ok(n == 1)
    }

    /// Replaces the pair schemas (after DDL); prepared statements are dropped.
    pub fn set_schemas(&mut self, schemas: Arc<Vec<PairSchema>>) {
        self.schemas = schemas;
        self.statements.clear();
        self.readers.clear();
        self.updates.clear();
    }

    /// Reads (and locks) the current rows of `keys`; absent keys become `None`.
    async fn fetch_current(&mut self, schema: &PairSchema, keys: &[Row], current: &mut Current) -> Result<()> {
        if !self.readers.contains_key(&schema.pair) {
            let table = super::postgres_sql::table(schema);
            let cols: Vec<String> = schema.columns.iter().map(|c| pg_ident(&c.pg_name)).collect();
            let probe = self.client.prepare(&format!("SELECT {} FROM {table} LIMIT 0", cols.join(", "))).await?;
            let oids: Vec<u32> = probe.columns().iter().map(|c| c.type_().oid()).collect();
            let texts: Vec<String> = cols.iter().map(|c| format!("t.{c}::text")).collect();
            let (from, on) = super::postgres_sql::unnest_keys(schema, 0);
            let sql = format!("SELECT {} FROM {table} AS t JOIN {from} ON {on} FOR UPDATE OF t", texts.join(", "));
            let st = self.client.prepare(&sql).await?;
            self.readers.insert(schema.pair, (st, oids));
        }
        let Some((st, oids)) = self.readers.get(&schema.pair).cloned() else { return Ok(()) };
        for chunk in keys.chunks(5000) {
            let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(chunk.len()); schema.key.len()];
            for k in chunk {
                current.insert((schema.pair, key_text(k)), None);
                for (slot, (&i, v)) in schema.key.iter().zip(k).enumerate() {
                    arrays[slot].push(text(v, schema.columns[i].pg_kind).map_err(|e| Error::Value { pair: schema.name.clone(), column: schema.columns[i].name.clone(), message: format!("key: {e}") })?);
                }
            }
            let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            for r in self.client.query(&st, &params).await? {
                let mut row = Vec::with_capacity(oids.len());
                for (n, oid) in oids.iter().enumerate() {
                    let raw: Option<&str> = r.try_get(n)?;
                    row.push(match raw {
                        None => crate::model::Value::Null,
                        Some(t) => crate::source::postgres::values::decode_text(*oid, t.as_bytes())?,
                    });
                }
                current.insert((schema.pair, key_text(&schema.key_of(&row))), Some(row));
            }
        }
        Ok(())
    }

    async fn statement(&mut self, schema: &PairSchema, kind: u8) -> Result<tokio_postgres::Statement> {
        if let Some(s) = self.statements.get(&(schema.pair, kind)) {
            return Ok(s.clone());
        }
        let sql = if kind == 0 { insert_sql(schema) } else { delete_sql(schema) };
        let st = self.client.prepare(&sql).await?;
        self.statements.insert((schema.pair, kind), st.clone());
        Ok(st)
    }

    async fn execute_arrays(&mut self, st: &tokio_postgres::Statement, arrays: &[Vec<Option<String>>]) -> Result<()> {
        let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        self.client.execute(st, &params).await?;
        Ok(())
    }

    fn checkpoints(&self) -> String {
        format!("{}.checkpoints", pg_ident(&self.state_schema))
    }
}

/// COPY statements and their data for runs whose keys should be absent at
/// the destination (`merge::fresh_inserts`); `None` when a run cannot be
/// copied or a value cannot be rendered (the merge path deals with those).
fn copies(schemas: &[PairSchema], runs: &[super::merge::InsertRun<'_>]) -> Option<Vec<(String, String)>> {
    runs.iter()
        .map(|run| {
            let schema = schemas.iter().find(|s| s.pair == run.pair)?;
            Some((copy_sql(schema)?, copy_rows(schema, &run.rows).ok()?))
        })
        .collect()
}

impl BatchApplier for PostgresApplier {
    async fn checkpoint(&mut self) -> Result<Option<SourcePos>> {
        let sql = format!("SELECT position FROM {} WHERE pipeline = $1 AND direction = $2", self.checkpoints());
        let row = self.client.query_opt(&sql, &[&self.pipeline, &self.direction.key()]).await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let text: String = r.get(0);
                text.parse()
                    .map(|p| Some(SourcePos::Mysql(p)))
                    .map_err(|e| Error::Checkpoint(format!("in {}: {e}", self.checkpoints())))
            }
        }
    }

    async fn source_identity(&mut self) -> Result<Option<String>> {
        let sql = format!("SELECT server_identity FROM {} WHERE pipeline = $1 AND direction = $2", self.checkpoints());
        let row = self.client.query_opt(&sql, &[&self.pipeline, &self.direction.key()]).await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    fn set_source_identity(&mut self, identity: String) {
        self.server_identity = Some(identity);
    }

    async fn begin(&mut self) -> Result<()> {
        self.client.batch_execute("BEGIN").await?;
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
        let sql = format!(
            "INSERT INTO {}.quarantine (pipeline, direction, pair, key_json, column_name, value_text, error, change_json, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            pg_ident(&self.state_schema)
        );
        for r in std::mem::take(&mut self.rejected) {
            let position = last.position.to_string();
            self.client
                .execute(&sql, &[&self.pipeline, &self.direction.key(), &r.pair, &r.key_json, &r.column, &r.value, &r.error, &r.change_json, &position])
                .await?;
        }
        self.commit_inner(last).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.conflicts.clear();
        self.rejected.clear();
        self.client.batch_execute("ROLLBACK").await?;
        Ok(())
    }
    async fn parked_pairs(&mut self) -> Result<Vec<usize>> {
        let sql = format!("SELECT DISTINCT pair FROM {}.parked WHERE pipeline = $1 AND direction = $2", pg_ident(&self.state_schema));
        let rows = self.client.query(&sql, &[&self.pipeline, &self.direction.key()]).await?;
        let names: Vec<String> = rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?;
        Ok(super::park::pair_indices(&self.schemas, &names, self.direction))
    }

    async fn park(&mut self, changes: &[Change], reason: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {}.parked (pipeline, direction, pair, reason, change_json)
             SELECT $1, $2, p, $3, c FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS t(p, c, n) ORDER BY n",
            pg_ident(&self.state_schema)
        );
        let (pairs, texts) = super::park::rows(&self.schemas, changes);
        self.client.execute(&sql, &[&self.pipeline, &self.direction.key(), &reason, &pairs, &texts]).await?;
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
        let ident = pg_ident(&self.state_schema);
        let select = format!(
            "SELECT id, change_json FROM {ident}.parked WHERE pipeline = $1 AND direction = $2 AND pair = $3 ORDER BY id LIMIT {}",
            super::park::REPLAY_CHUNK
        );
        let delete = format!("DELETE FROM {ident}.parked WHERE id = ANY($1::int8[])");
        let mut total = 0;
        loop {
            let rows = self.client.query(&select, &[&self.pipeline, &self.direction.key(), &schema.name]).await?;
            if rows.is_empty() {
                return Ok(total);
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut apply = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(row.try_get::<_, i64>(0)?);
                match super::park::replay(&schema, row.try_get(1)?)? {
                    super::park::Replay::Apply(c) => apply.push(c),
                    super::park::Replay::Reject(c, e) => self.reject(&c, e)?,
                }
            }
            self.write(Origin::Client, &apply).await?;
            self.client.execute(&delete, &[&ids]).await?;
            total += ids.len() as u64;
        }
    }
}

impl PostgresApplier {
    /// Applies a screened run of changes under a savepoint; when the destination
    /// rejects it, finds the rejected change(s) one at a time and sets them aside.
    async fn write_screened(&mut self, changes: &[Change]) -> Result<()> {
        self.client.batch_execute("SAVEPOINT tandem_chunk").await?;
        let conflicts_before = self.conflicts.len();
        let Err(e) = self.write_inner(changes).await else { return Ok(()) };
        if !e.is_rejection() {
            return Err(e);
        }
        // Find the change(s) the destination rejects: one at a time, each under a savepoint.
        self.conflicts.truncate(conflicts_before);
        self.client.batch_execute("ROLLBACK TO SAVEPOINT tandem_chunk").await?;
        for c in changes {
            let before = self.conflicts.len();
            self.client.batch_execute("SAVEPOINT tandem_row").await?;
            if let Err(e) = self.write_inner(std::slice::from_ref(c)).await {
                if !e.is_rejection() {
                    return Err(e);
                }
                self.conflicts.truncate(before);
                self.client.batch_execute("ROLLBACK TO SAVEPOINT tandem_row").await?;
                self.reject(c, e)?;
            }
        }
        Ok(())
    }

    /// Applies one quarantined change again and deletes quarantine row `id`, in
    /// one transaction that does not move the checkpoint. `Ok(Some(error))` when
    /// the destination still rejects it (nothing changed).
    pub async fn retry_quarantined(&mut self, change: &Change, id: i64) -> Result<Option<String>> {
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
        self.client.execute(&format!("DELETE FROM {}.quarantine WHERE id = $1", pg_ident(&self.state_schema)), &[&id]).await?;
        self.client.batch_execute("COMMIT").await?;
        self.conflicts.clear();
        Ok(None)
    }

    /// Sets a rejected change aside, or stops with it (`on_error = "stop"`).
    fn reject(&mut self, c: &Change, e: Error) -> Result<()> {
        let Some(schema) = self.schemas.iter().find(|s| s.pair == c.pair) else { return Err(e) };
        // Postgres names the column of some data errors.
        let column = match &e {
            Error::Postgres(pe) => pe.as_db_error().and_then(|d| d.column()).and_then(|n| schema.columns.iter().find(|c| c.pg_name == n)).map(|c| c.name.clone()),
            _ => None,
        };
        let r = handle_rejection(schema, c, column, &e, self.on_error, self.direction)?;
        self.rejected.push(r);
        Ok(())
    }

    async fn write_inner(&mut self, changes: &[Change]) -> Result<()> {
        let schemas = Arc::clone(&self.schemas);
        if let Some(copies) = fresh_inserts(changes, &schemas, &self.pairs).and_then(|runs| copies(&schemas, &runs)) {
            self.client.batch_execute("SAVEPOINT tandem_fresh").await?;
            match self.copy_all(copies).await {
                Ok(()) => return Ok(()),
                // A key exists at the destination or repeats in the chunk (or the
                // server refuses a value, or COPY itself): undo, and merge against the
                // current rows, which also finds any refused change.
                Err(e) if e.classify() == crate::error::ErrorClass::Definite && e.server_code().is_some() => {
                    self.client.batch_execute("ROLLBACK TO SAVEPOINT tandem_fresh").await?;
                }
                Err(e) => return Err(e),
            }
        }
        let mut current = Current::new();
        for (pair, keys) in keys_needed(changes, &schemas) {
            if let Some(schema) = schemas.iter().find(|s| s.pair == pair) {
                self.fetch_current(schema, &keys, &mut current).await?;
            }
        }
        let (runs, outcome) = merge_chunk(changes, &schemas, &self.pairs, Side::Mysql, self.forwarded, &mut current);
        report(&outcome, &schemas, Side::Mysql);
        self.conflicts.extend(outcome.conflicts);
        for run in runs {
            let Some(schema) = schemas.iter().find(|s| s.pair == run.pair) else { continue };
            match run.ops.first() {
                Some(RowOp::Upsert(_)) => {
                    // Merged inserts go to keys found missing: a plain INSERT (see `insert_sql`).
                    let st = self.statement(schema, 0).await?;
                    let arrays = upsert_params(schema, &run.ops).map_err(|e| Error::Value { pair: e.pair, column: e.column, message: format!("{} (value {})", e.reason, e.value) })?;
                    self.execute_arrays(&st, &arrays).await?;
                }
                Some(RowOp::Delete(_)) => {
                    let st = self.statement(schema, 1).await?;
                    let arrays = delete_params(schema, &run.ops).map_err(|e| Error::Value { pair: e.pair, column: e.column, message: format!("{} (value {})", e.reason, e.value) })?;
                    self.execute_arrays(&st, &arrays).await?;
                }
                Some(RowOp::PartialUpdate { .. }) => {
                    for g in update_groups(&run.ops, |i| super::postgres_sql::updatable(schema, i)) {
                        if g.rows.len() == 1 {
                            let (key, row) = g.rows[0];
                            if let Some((sql, params)) = partial_update(schema, key, row).map_err(|e| Error::Value { pair: e.pair, column: e.column, message: format!("{} (value {})", e.reason, e.value) })? {
                                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                                self.client.execute(sql.as_str(), &refs).await?;
                            }
                            continue;
                        }
                        let (sql, arrays) = grouped_update(schema, &g).map_err(|e| Error::Value { pair: e.pair, column: e.column, message: format!("{} (value {})", e.reason, e.value) })?;
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
                }
                Some(RowOp::Truncate) => {
                    let sql = format!("TRUNCATE {}", super::postgres_sql::table(schema));
                    self.client.batch_execute(&sql).await?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The origin stamp and the checkpoint write (conditional on the lease
    /// epoch when fenced), prepared on first use.
    async fn commit_statements(&mut self) -> Result<(tokio_postgres::Statement, tokio_postgres::Statement)> {
        if let Some(sts) = &self.commit_statements {
            return Ok(sts.clone());
        }
        // The applied MySQL position travels in the stream too: the Postgres
        // source reads it back as `seen` of later Postgres transactions.
        let stamp = self
            .client
            .prepare("SELECT pg_replication_origin_xact_setup('0/0', $1::text::timestamptz), pg_logical_emit_message(true, $2::text, $3::text)")
            .await?;
        let upsert = "ON CONFLICT (pipeline, direction) DO UPDATE SET position = EXCLUDED.position,
                 server_identity = EXCLUDED.server_identity, updated_at = EXCLUDED.updated_at";
        let table = self.checkpoints();
        let sql = if self.fence.is_some() {
            // The share lock on the lease row makes a new holder's epoch bump wait for this commit.
            format!(
                "INSERT INTO {table} (pipeline, direction, position, server_identity, updated_at)
                 SELECT $1::text, $2::text, $3::text, $4::text, now() FROM {}.lease WHERE pipeline = $1::text AND epoch = $5 FOR SHARE
                 {upsert}",
                pg_ident(&self.state_schema)
            )
        } else {
            format!("INSERT INTO {table} (pipeline, direction, position, server_identity, updated_at) VALUES ($1, $2, $3, $4, now()) {upsert}")
        };
        let checkpoint = self.client.prepare(&sql).await?;
        self.commit_statements = Some((stamp.clone(), checkpoint.clone()));
        Ok((stamp, checkpoint))
    }

    /// Runs each `(COPY statement, data)`.
    async fn copy_all(&mut self, copies: Vec<(String, String)>) -> Result<()> {
        use futures_util::SinkExt;
        for (sql, data) in copies {
            let sink = self.client.copy_in::<_, bytes::Bytes>(sql.as_str()).await?;
            futures_util::pin_mut!(sink);
            sink.send(bytes::Bytes::from(data)).await?;
            sink.finish().await?;
        }
        Ok(())
    }

    async fn commit_inner(&mut self, last: &TxnMeta) -> Result<()> {
        let position = &last.position;
        let conflicts = std::mem::take(&mut self.conflicts);
        if !conflicts.is_empty() {
            let sql = format!(
                "INSERT INTO {}.conflicts (pipeline, pair, key_json, column_name, postgres_value, mysql_value, policy, winner,
                     mysql_commit_ts, decided_at, resolved_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text, to_timestamp($9::float8 / 1e6), now(), CASE WHEN $8::text IS NULL THEN NULL ELSE now() END)",
                pg_ident(&self.state_schema)
            );
            let source_ts = (last.commit_ts > 0).then_some(last.commit_ts as f64);
            for r in conflict_rows(&conflicts, &self.schemas) {
                self.client.execute(&sql, &[&self.pipeline, &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &source_ts]).await?;
            }
        }
        // Stamp the transaction with the source commit time (origin LSN unused: 0/0).
        let ts = if last.commit_ts > 0 { last.commit_ts } else { chrono::Utc::now().timestamp_micros() };
        let ts_text = crate::model::value::format_timestamp(ts) + "+00";
        let (stamp, checkpoint) = self.commit_statements().await?;
        let position = position.to_string();
        let direction = self.direction.key();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.pipeline, &direction, &position, &self.server_identity];
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

}

impl PostgresApplier {
    /// `BatchApplier::apply_chunk`: corrects the staged chunk by the window,
    /// merges it and records the progress (see `crate::backfill`).
    async fn merge_chunk(&mut self, job: &ChunkJob) -> Result<ChunkOutcome> {
        use crate::backfill::{progress, staging};
        let Some(schema) = self.schemas.iter().find(|s| s.pair == job.pair).cloned() else {
            return Ok(ChunkOutcome::Abandoned(format!("pair #{} has no schema", job.pair)));
        };
        let s = &job.signal;
        let chunk = s.chunk as i64;
        let table = format!("{}.backfills", pg_ident(&self.state_schema));
        let row = self.client.query_opt(&format!("SELECT run, last_key FROM {table} WHERE pipeline = $1 AND pair = $2 FOR UPDATE"), &[&self.pipeline, &schema.name]).await?;
        let stored: Option<(String, Option<String>)> = row.map(|r| (r.get(0), r.get(1)));
        let fix = match progress::verdict(stored.as_ref().map(|(r, k)| (r.as_str(), k.as_deref())), job) {
            progress::Verdict::Merge(fix) => fix.clone(),
            progress::Verdict::Stale => return Ok(ChunkOutcome::Abandoned("a chunk of an earlier backfill run".into())),
            progress::Verdict::Abandon(reason) => {
                self.client.batch_execute(&staging::clear_chunk_sql(Side::Postgres, &self.state_schema, &s.staging, s.chunk)).await?;
                self.client.execute(&progress::pg_abandoned_sql(&table), &[&s.run, &chunk, &self.pipeline, &schema.name]).await?;
                return Ok(ChunkOutcome::Abandoned(reason));
            }
        };
        let staged = staging::staged_schema(&schema, &self.state_schema, &s.staging);
        if fix.truncated {
            self.client.batch_execute(&staging::clear_chunk_sql(Side::Postgres, &self.state_schema, &s.staging, s.chunk)).await?;
        }
        let value_error = |e: super::postgres_sql::PgRenderError| Error::Value { pair: e.pair, column: e.column, message: e.reason };
        if !fix.dropped.is_empty() {
            let ops: Vec<RowOp> = fix.dropped.iter().map(|k| RowOp::Delete(k.clone())).collect();
            let arrays = delete_params(&staged, &ops).map_err(value_error)?;
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
            let arrays = upsert_params(&staged, &restaged).map_err(value_error)?;
            let st = self.client.prepare(&upsert_sql(&staged)).await?;
            self.execute_arrays(&st, &arrays).await?;
        }
        for sql in staging::pg_merge_sql(&schema, &self.state_schema, &s.staging) {
            self.client.execute(&sql, &[&chunk]).await?;
        }
        let last_key = progress::key_json(&s.last_key);
        self.client.execute(&progress::pg_applied_sql(&table), &[&s.run, &chunk, &(s.rows as i64), &last_key, &self.pipeline, &schema.name]).await?;
        Ok(ChunkOutcome::Applied { rows: s.rows })
    }
}
