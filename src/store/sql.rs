//! The SQL event store, written once over sqlx for every [`Dialect`]:
//! [`SqlStore<Sqlite>`](super::SqliteStore) and
//! [`SqlStore<Postgres>`](super::PostgresStore).
//!
//! Everything the two backends do alike is here and in `sql/`: the group
//! commit (`append.rs`), rows and the statements built at run time
//! (`rows.rs`), and one `.sql` file per statement in `sql/`. What differs
//! is a [`Dialect`] (`dialect.rs`, implemented in `sqlite.rs` and
//! `postgres.rs`, with its statements in `sql/<dialect>/`). The sqlx bounds
//! that make the code generic are stated once, in `driver.rs`.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Database, Pool};

use self::driver::Param::{Bytes, Int, Text};
use self::driver::{Param, Row};
use self::rows::{count_statement, from_i64, logs_statement, recorded_from, saga_id_from, summary_from, summary_statement};
use super::rules::{cut_page, definition_recorded, page_limit, poison_payload, status_counts};
use super::{
    logs_limit, Append, AppendOutcome, CommittedEvent, DefinitionRecord, EngineLease, EventStore, ListFilter, Logs, Page, PoisonEntry,
    PoisonRecord, RelayCursor, SagaSummary, StoreError, IDS_PER_STATEMENT_MAX,
};
use crate::saga::{Recorded, SagaId, Status};

mod append;
mod dialect;
mod driver;
mod retention;
mod rows;
#[cfg(test)]
mod tests;

pub(crate) use append::{write_values, SetRows};
pub(crate) use dialect::{failed, migration_failed, statements, Dialect, Statements};
pub(crate) use rows::list_statement;

/// How long a call waits for a free pooled connection.
const ACQUIRE_TIMEOUT_MS: u64 = 30_000;
/// How long a pooled connection may sit unused before it is closed.
const IDLE_TIMEOUT_MS: u64 = 10 * 60 * 1_000;
/// How long a pooled connection lives before it is replaced.
const CONNECTION_LIFETIME_MS: u64 = 30 * 60 * 1_000;

const LOAD_EVENTS: &str = include_str!("sql/load_events.sql");
const LOGS_IN_STATUS: &str = include_str!("sql/logs_in_status.sql");
const LOAD_DEFINITION: &str = include_str!("sql/load_definition.sql");
const RECORD_POISON: &str = include_str!("sql/record_poison.sql");
const POISON: &str = include_str!("sql/poison.sql");
const POISON_AFTER: &str = include_str!("sql/poison_after.sql");
const RELAY_CHECKPOINT: &str = include_str!("sql/relay_checkpoint.sql");
const SAVE_RELAY_CHECKPOINT: &str = include_str!("sql/save_relay_checkpoint.sql");
const HEARTBEAT: &str = include_str!("sql/heartbeat.sql");
const FORGET_ENGINES: &str = include_str!("sql/forget_engines.sql");
const ENGINES_SINCE: &str = include_str!("sql/engines_since.sql");
/// sqlx's own table of applied migrations, the same in both dialects.
const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// The migrations applied to a database and those this build knows, by
/// version (the number in the file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Applied, in order.
    pub applied: Vec<i64>,
    /// Known to this build, in order.
    pub known: Vec<i64>,
}

impl SchemaVersion {
    /// The last migration applied (0: none).
    pub fn at(&self) -> i64 {
        self.applied.last().copied().unwrap_or(0)
    }

    /// The last migration this build knows.
    pub fn latest_known(&self) -> i64 {
        self.known.last().copied().unwrap_or(0)
    }

    /// Applied migrations this build does not know: the schema is newer.
    pub fn unknown(&self) -> Vec<i64> {
        self.applied.iter().copied().filter(|v| !self.known.contains(v)).collect()
    }

    /// Known migrations not applied yet: the schema is behind.
    pub fn pending(&self) -> Vec<i64> {
        self.known.iter().copied().filter(|v| !self.applied.contains(v)).collect()
    }
}

/// An event store in a SQL database; clones share one connection pool.
/// Open one as a [`SqliteStore`](super::SqliteStore) or a
/// [`PostgresStore`](super::PostgresStore).
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone() }
    }
}

/// The pool settings of every dialect; a constructor adds its own (the
/// number of connections, first).
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
        .idle_timeout(Duration::from_millis(IDLE_TIMEOUT_MS))
        .max_lifetime(Duration::from_millis(CONNECTION_LIFETIME_MS))
}

impl<DB: Database> SqlStore<DB> {
    /// The pool, for the dialects' own calls.
    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Waits for the pooled connections to finish and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// A store on `pool`, its migrations applied.
    pub(crate) async fn migrated(pool: Pool<DB>) -> Result<Self, StoreError> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A store on `pool` whose schema is left as it is (`serve
    /// --no-migrate`: a role without DDL rights); check it with
    /// [`schema_version`](Self::schema_version).
    pub(crate) fn unmigrated(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    /// The migrations applied to the database, against those this build
    /// knows. Fails when the migrations table cannot be read (no schema yet).
    pub async fn schema_version(&self) -> Result<SchemaVersion, StoreError> {
        let rows = self.run("reading the applied migrations", APPLIED_MIGRATIONS, &[]).await?;
        let applied = rows.iter().map(|row| row.get("version")).collect::<Result<_, _>>()?;
        let known = DB::MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version).collect();
        Ok(SchemaVersion { applied, known })
    }

    /// Applies the migrations not applied yet (idempotent). Opening a
    /// store already does; this is for a store whose schema was dropped.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        DB::migrate(&self.pool, &DB::MIGRATOR).await.map_err(migration_failed::<DB>)
    }

    /// The poison records kept so far, oldest first, at most `limit`
    /// (clamped like a page).
    pub async fn poison(&self, limit: u32) -> Result<Vec<PoisonRecord>, StoreError> {
        let rows = self.run("reading poison messages", POISON, &[Int(i64::from(page_limit(limit)))]).await?;
        let record = |row: &Row<DB>| {
            Ok(PoisonRecord {
                subject: row.get("subject")?,
                reason: row.get("reason")?,
                payload: row.get("payload")?,
                received_at_ms: row.get("received_at_ms")?,
            })
        };
        rows.iter().map(record).collect()
    }

    /// Runs `sql` with `params` on a pooled connection; `context` says in
    /// an error what the store was doing.
    pub(crate) async fn run(&self, context: &'static str, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row<DB>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(failed::<DB>(context))?;
        DB::fetch(&mut conn, sql, params).await.map_err(failed::<DB>(context))
    }
}

/// Rows of events of several sagas, ordered by saga then seq (`saga_id`
/// and the event columns), handed to `each` one whole log at a time.
fn gather_logs<DB: Dialect>(rows: &[Row<DB>], mut each: impl FnMut(SagaId, Vec<Recorded>)) -> Result<(), StoreError> {
    let mut current: Option<(String, SagaId, Vec<Recorded>)> = None;
    for row in rows {
        let text: String = row.get("saga_id")?;
        let same = current.as_ref().is_some_and(|(id, _, _)| *id == text);
        if !same {
            if let Some((_, saga_id, log)) = current.take() {
                each(saga_id, log);
            }
            let saga_id = saga_id_from(&text)?;
            current = Some((text, saga_id, Vec::new()));
        }
        if let Some((_, saga_id, log)) = current.as_mut() {
            log.push(recorded_from(*saga_id, row)?);
        }
    }
    if let Some((_, saga_id, log)) = current {
        each(saga_id, log);
    }
    Ok(())
}

impl<DB: Dialect> EventStore for SqlStore<DB> {
    async fn append(&self, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
        append::append(&self.pool, batch).await
    }

    async fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> Result<Vec<Recorded>, StoreError> {
        // No stored seq exceeds i64::MAX, so a larger bound means "all".
        let up_to_seq = up_to_seq.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        let rows = self.run("loading a saga's events", LOAD_EVENTS, &[Text(&saga_id.to_string()), Int(up_to_seq)]).await?;
        rows.iter().map(|row| recorded_from(saga_id, row)).collect()
    }

    async fn load_many(&self, saga_ids: &[SagaId]) -> Result<Logs, StoreError> {
        let mut logs = Logs::with_capacity(saga_ids.len());
        let texts: Vec<String> = saga_ids.iter().map(SagaId::to_string).collect();
        for chunk in texts.chunks(IDS_PER_STATEMENT_MAX) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let statement = logs_statement(&ids);
            let rows = self.run("loading sagas' events", statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params).await?;
            gather_logs(&rows, |saga_id, log| {
                logs.insert(saga_id, log);
            })?;
        }
        Ok(logs)
    }

    async fn logs_in_status(&self, status: Status, after: Option<SagaId>, limit: u32) -> Result<Vec<(SagaId, Vec<Recorded>)>, StoreError> {
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let params = [Text(status.as_str()), Text(&after), Int(i64::from(logs_limit(limit)))];
        let rows = self.run("loading a page of sagas with their events", LOGS_IN_STATUS, &params).await?;
        let mut logs = Vec::new();
        gather_logs(&rows, |saga_id, log| logs.push((saga_id, log)))?;
        Ok(logs)
    }

    async fn summary(&self, saga_id: SagaId) -> Result<Option<SagaSummary>, StoreError> {
        let saga_id = saga_id.to_string();
        let statement = summary_statement(&saga_id);
        let rows = self.run("reading a saga summary", statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params).await?;
        rows.first().map(summary_from).transpose()
    }

    async fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let cursor = cursor.map(|cursor| cursor.to_string());
        let statement = list_statement(filter, cursor.as_deref(), i64::from(limit) + 1);
        let rows = self.run("listing sagas", statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params).await?;
        let sagas = rows.iter().map(summary_from).collect::<Result<Vec<_>, _>>()?;
        Ok(cut_page(sagas, limit))
    }

    async fn count_by_status(&self, statuses: &[Status]) -> Result<Vec<(Status, u64)>, StoreError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let statement = count_statement(statuses);
        let rows = self.run("counting sagas by status", statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params).await?;
        let counts = rows.iter().map(|row| Ok((row.get("status")?, row.get("n")?))).collect::<Result<Vec<_>, StoreError>>()?;
        Ok(status_counts(statuses, &counts))
    }

    async fn record_definition(&self, record: &DefinitionRecord) -> Result<(), StoreError> {
        let version = i64::from(record.version);
        let params = [Text(&record.name), Int(version), Text(&record.content_hash), Text(&record.source)];
        if !self.run("recording a definition", DB::SQL.record_definition, &params).await?.is_empty() {
            return Ok(());
        }
        let existing = self.load_definition(&record.name, record.version).await?;
        definition_recorded(record, existing.as_ref())
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        let rows = self.run("loading a definition", LOAD_DEFINITION, &[Text(name), Int(i64::from(version))]).await?;
        let record = |row: &Row<DB>| {
            Ok(DefinitionRecord {
                name: row.get("name")?,
                version: from_i64(row.get("version")?, "version")?,
                content_hash: row.get("content_hash")?,
                source: row.get("source")?,
            })
        };
        rows.first().map(record).transpose()
    }

    async fn record_poison(&self, poison: &PoisonRecord) -> Result<(), StoreError> {
        let payload = poison_payload(&poison.payload);
        let params = [Text(&poison.subject), Text(&poison.reason), Bytes(payload), Int(poison.received_at_ms)];
        self.run("recording a poison message", RECORD_POISON, &params).await?;
        Ok(())
    }

    async fn poison_after(&self, after_id: i64, limit: u32) -> Result<Vec<PoisonEntry>, StoreError> {
        let params = [Int(after_id), Int(i64::from(page_limit(limit)))];
        let rows = self.run("reading poison messages", POISON_AFTER, &params).await?;
        let entry = |row: &Row<DB>| {
            let record = PoisonRecord {
                subject: row.get("subject")?,
                reason: row.get("reason")?,
                payload: row.get("payload")?,
                received_at_ms: row.get("received_at_ms")?,
            };
            Ok(PoisonEntry { id: row.get("id")?, record })
        };
        rows.iter().map(entry).collect()
    }

    async fn committed_after(&self, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
        let params = [Int(after.tx), Int(after.position), Int(i64::from(page_limit(limit)))];
        let rows = self.run("reading committed events", DB::SQL.committed_after, &params).await?;
        let event = |row: &Row<DB>| {
            let saga_id = saga_id_from(&row.get::<String>("saga_id")?)?;
            Ok(CommittedEvent {
                cursor: RelayCursor { tx: row.get("tx")?, position: row.get("position")? },
                saga_id,
                saga_type: row.get("saga_type")?,
                recorded: recorded_from(saga_id, row)?,
            })
        };
        rows.iter().map(event).collect()
    }

    async fn relay_checkpoint(&self, relay: &str) -> Result<RelayCursor, StoreError> {
        let rows = self.run("reading a relay checkpoint", RELAY_CHECKPOINT, &[Text(relay)]).await?;
        let cursor = |row: &Row<DB>| Ok(RelayCursor { tx: row.get("tx")?, position: row.get("position")? });
        Ok(rows.first().map(cursor).transpose()?.unwrap_or_default())
    }

    async fn save_relay_checkpoint(&self, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
        self.run("saving a relay checkpoint", SAVE_RELAY_CHECKPOINT, &[Text(relay), Int(cursor.tx), Int(cursor.position)]).await?;
        Ok(())
    }

    async fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
        let params = [Int(now_ms), Int(now_ms.saturating_add(lease_ms)), Int(i64::from(page_limit(limit)))];
        let rows = self.run("claiming due sagas", DB::SQL.claim_due, &params).await?;
        let mut claimed = rows
            .iter()
            .map(|row| Ok((row.get::<i64>("deadline_ms")?, row.get::<String>("saga_id")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Oldest deadline first, as the claim picked them.
        claimed.sort_unstable();
        claimed.iter().map(|(_, saga_id)| saga_id_from(saga_id)).collect()
    }

    async fn heartbeat(&self, engine_id: &str, now_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        self.run("renewing an engine's lease", HEARTBEAT, &[Text(engine_id), Int(now_ms)]).await?;
        self.run("forgetting old engine leases", FORGET_ENGINES, &[Int(forget_before_ms)]).await?;
        Ok(())
    }

    async fn forget_finished(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        retention::forget_finished(&self.pool, before_ms, limit).await
    }

    async fn forget_poison(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        retention::forget_poison(&self.pool, before_ms, limit).await
    }

    async fn engines_since(&self, since_ms: i64) -> Result<Vec<EngineLease>, StoreError> {
        let rows = self.run("reading engine leases", ENGINES_SINCE, &[Int(since_ms)]).await?;
        rows.iter().map(|row| Ok(EngineLease { engine_id: row.get("engine_id")?, heartbeat_ms: row.get("heartbeat_ms")? })).collect()
    }
}
