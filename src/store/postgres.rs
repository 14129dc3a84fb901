//! The PostgreSQL event store, the production backend and the source of
//! truth: every `append` is one transaction (`synchronous_commit` as the
//! server has it, `on` by default, so a commit is durable before `append`
//! returns), with the migrations under `migrations/postgres`.
//!
//! Many engines may write at once. Inside a batch each saga gets a
//! savepoint; its last seq is read from the `sagas` row under `FOR UPDATE`,
//! and the primary key (saga_id, seq) catches two writers of a new saga, so
//! one saga's conflict never undoes another's events. Sagas are taken in id
//! order, so two batches always lock rows in the same order and never
//! deadlock each other.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Acquire, Connection, PgConnection, Postgres, Transaction};

use self::rows::{event_rows, from_i64, list_query, recorded_from_row, summary_from_row, to_i64, EventRow, EVENT_COLUMNS, SUMMARY_COLUMNS};
use super::rules::{check_batch, cut_page, page_limit, status_counts};
use super::{
    Append, AppendOutcome, CommittedEvent, DefinitionRecord, EventStore, ListFilter, Page, PoisonRecord, RelayCursor, SagaSummary,
    StoreError,
};
use crate::saga::{Recorded, SagaId, Status, SCHEMA_VERSION};

mod bench;
mod rows;
mod work;

/// Pooled connections per store: appends, claims and reads in parallel.
const POOL_CONNECTIONS_MAX: u32 = 16;
/// How long a call waits for a free pooled connection.
const ACQUIRE_TIMEOUT_MS: u64 = 30_000;
/// PostgreSQL's identifier limit (NAMEDATALEN - 1), for schema names.
const SCHEMA_NAME_LEN_MAX: usize = 63;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// An event store in a PostgreSQL database; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `postgres://…` and applies the migrations (idempotent:
    /// applied ones are skipped), like `SqliteStore::open`. Put
    /// `options=-csearch_path%3D<schema>` in the URL to use another schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db("parsing the database url"))?;
        Self::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), but every pooled connection works in
    /// `schema` (its `search_path`), which is created if missing. Tests use a
    /// fresh schema each so they never see each other's rows.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(db("parsing the database url"))?;
        let mut conn = PgConnection::connect_with(&options).await.map_err(db("connecting"))?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&mut conn).await.map_err(db("creating the schema"))?;
        conn.close().await.map_err(db("closing the set-up connection"))?;
        Self::connect_with(options.options([("search_path", schema)])).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS_MAX)
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .connect_with(options)
            .await
            .map_err(db("connecting"))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not applied yet. [`connect`](Self::connect)
    /// already does; this is for a store whose schema was dropped or reset.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|error| StoreError::Database(format!("applying the postgres migrations: {error}")))
    }

    /// The poison records kept so far, oldest first, at most `limit`
    /// (clamped like a page).
    pub async fn poison(&self, limit: u32) -> Result<Vec<PoisonRecord>, StoreError> {
        work::poison(&self.pool, limit).await
    }

    /// Waits for the pooled connections to finish and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A schema name is spliced into SQL, so only plain identifiers pass.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let plain = schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let starts_well = schema.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if plain && starts_well && schema.len() <= SCHEMA_NAME_LEN_MAX {
        return Ok(());
    }
    Err(StoreError::Database(format!(
        "postgres: schema name {schema:?} must match [a-z_][a-z0-9_]* and have at most {SCHEMA_NAME_LEN_MAX} bytes"
    )))
}

/// Every sqlx failure other than a taken seq becomes this, saying what failed.
fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| StoreError::Database(format!("postgres: {context}: {error}"))
}

/// A unique violation on (saga_id, seq): someone else appended that seq first.
fn is_seq_taken(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.is_unique_violation())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// The saga's last seq, locking its projection row until the commit so a
/// concurrent writer waits and then sees the new seq.
async fn last_seq_for_update(conn: &mut PgConnection, saga_id: &str) -> Result<u64, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM sagas WHERE saga_id = $1 FOR UPDATE")
        .bind(saga_id)
        .fetch_optional(conn)
        .await
        .map_err(db("reading a saga's last seq"))?;
    from_i64(seq.unwrap_or(0), "seq")
}

/// After a unique violation: the seq the other writer committed.
async fn last_seq(conn: &mut PgConnection, saga_id: &str) -> Result<u64, StoreError> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events WHERE saga_id = $1")
        .bind(saga_id)
        .fetch_one(conn)
        .await
        .map_err(db("reading a saga's last seq"))?;
    from_i64(seq, "seq")
}

/// One saga's share of the batch, inside its own savepoint.
async fn append_one(tx: &mut Transaction<'static, Postgres>, append: &Append) -> Result<AppendOutcome, StoreError> {
    let saga_id = append.saga_id.to_string();
    let actual_seq = last_seq_for_update(tx, &saga_id).await?;
    if actual_seq != append.expected_seq {
        return Ok(AppendOutcome::Conflict { actual_seq });
    }
    let rows = event_rows(append)?;
    let last = to_i64(append.summary.last_seq, "last_seq")?;
    let mut savepoint = tx.begin().await.map_err(db("opening a savepoint"))?;
    match write(&mut savepoint, &saga_id, &rows, &append.summary, last).await {
        Ok(()) => {
            savepoint.commit().await.map_err(db("releasing a savepoint"))?;
            Ok(AppendOutcome::Committed)
        }
        Err(error) if is_seq_taken(&error) => {
            savepoint.rollback().await.map_err(db("rolling back a savepoint"))?;
            Ok(AppendOutcome::Conflict { actual_seq: last_seq(tx, &saga_id).await? })
        }
        Err(error) => Err(db("appending events")(error)),
    }
}

async fn write(conn: &mut PgConnection, saga_id: &str, rows: &[EventRow], summary: &SagaSummary, last_seq: i64) -> Result<(), sqlx::Error> {
    for row in rows {
        sqlx::query("INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms) VALUES ($1, $2, $3, $4, $5::jsonb, $6)")
            .bind(saga_id)
            .bind(row.seq)
            .bind(row.event_type)
            .bind(i32::from(SCHEMA_VERSION))
            .bind(&row.data)
            .bind(row.at_ms)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO sagas (saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, \
         deadline_ms, claimed_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) \
         ON CONFLICT (saga_id) DO UPDATE SET saga_type = EXCLUDED.saga_type, version = EXCLUDED.version, status = EXCLUDED.status, \
         current_step = EXCLUDED.current_step, started_at_ms = EXCLUDED.started_at_ms, updated_at_ms = EXCLUDED.updated_at_ms, \
         last_seq = EXCLUDED.last_seq, deadline_ms = EXCLUDED.deadline_ms, claimed_until_ms = NULL",
    )
    .bind(saga_id)
    .bind(&summary.saga_type)
    .bind(i64::from(summary.version))
    .bind(summary.status.as_str())
    .bind(summary.current_step.as_deref())
    .bind(summary.started_at_ms)
    .bind(summary.updated_at_ms)
    .bind(last_seq)
    .bind(summary.deadline_ms)
    .execute(conn)
    .await?;
    Ok(())
}

impl EventStore for PostgresStore {
    async fn append(&self, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
        check_batch(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Lock order = saga id order (stable, so one saga's appends keep theirs).
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&index| batch[index].saga_id);
        let mut tx = self.pool.begin().await.map_err(db("starting an append transaction"))?;
        let mut outcomes = vec![AppendOutcome::Committed; batch.len()];
        for index in order {
            outcomes[index] = append_one(&mut tx, &batch[index]).await?;
        }
        tx.commit().await.map_err(db("committing an append"))?;
        Ok(outcomes)
    }

    async fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> Result<Vec<Recorded>, StoreError> {
        // No stored seq exceeds i64::MAX, so a larger bound means "all".
        let up_to_seq = up_to_seq.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.saga_id = $1 AND e.seq <= $2 ORDER BY e.seq"))
            .bind(saga_id.to_string())
            .bind(up_to_seq)
            .fetch_all(&self.pool)
            .await
            .map_err(db("loading a saga's events"))?;
        rows.iter().map(|row| recorded_from_row(saga_id, row)).collect()
    }

    async fn summary(&self, saga_id: SagaId) -> Result<Option<SagaSummary>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS} FROM sagas WHERE saga_id = $1"))
            .bind(saga_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a saga summary"))?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let rows = list_query("", filter, cursor, i64::from(limit) + 1).build().fetch_all(&self.pool).await.map_err(db("listing sagas"))?;
        let sagas = rows.iter().map(summary_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(cut_page(sagas, limit))
    }

    async fn count_by_status(&self, statuses: &[Status]) -> Result<Vec<(Status, u64)>, StoreError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::new("SELECT status, COUNT(*) FROM sagas WHERE status IN (");
        let mut separated = query.separated(", ");
        for status in statuses {
            separated.push_bind(status.as_str());
        }
        query.push(") GROUP BY status");
        let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(&self.pool).await.map_err(db("counting sagas by status"))?;
        Ok(status_counts(statuses, &rows))
    }

    async fn record_definition(&self, record: &DefinitionRecord) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO definitions (name, version, content_hash, source, recorded_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name, version) DO NOTHING",
        )
        .bind(&record.name)
        .bind(i64::from(record.version))
        .bind(&record.content_hash)
        .bind(&record.source)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db("recording a definition"))?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        // Definitions are never updated nor deleted: the row that won is still there.
        match self.load_definition(&record.name, record.version).await? {
            Some(existing) if existing.content_hash == record.content_hash => Ok(()),
            Some(existing) => {
                Err(StoreError::DefinitionChanged { name: record.name.clone(), version: record.version, recorded: existing.content_hash })
            }
            None => Err(StoreError::Database(format!("postgres: definition {} version {} vanished", record.name, record.version))),
        }
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        let row: Option<(String, i64, String, String)> =
            sqlx::query_as("SELECT name, version, content_hash, source FROM definitions WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(i64::from(version))
                .fetch_optional(&self.pool)
                .await
                .map_err(db("loading a definition"))?;
        row.map(|(name, version, content_hash, source)| {
            Ok(DefinitionRecord { name, version: from_i64(version, "version")?, content_hash, source })
        })
        .transpose()
    }

    async fn record_poison(&self, poison: &PoisonRecord) -> Result<(), StoreError> {
        work::record_poison(&self.pool, poison).await
    }

    async fn committed_after(&self, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
        work::committed_after(&self.pool, after, limit).await
    }

    async fn relay_checkpoint(&self, relay: &str) -> Result<RelayCursor, StoreError> {
        work::relay_checkpoint(&self.pool, relay).await
    }

    async fn save_relay_checkpoint(&self, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
        work::save_relay_checkpoint(&self.pool, relay, cursor).await
    }

    async fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
        work::claim_due(&self.pool, now_ms, lease_ms, limit).await
    }
}
