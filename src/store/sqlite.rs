//! The SQLite event store, the embedded default: one file, WAL journal,
//! `synchronous = FULL` (a commit is on disk before `append` returns), and
//! the migrations under `migrations/sqlite` applied at open.
//!
//! SQLite has one writer. Every append takes the write lock up front with
//! `BEGIN IMMEDIATE`, so two appends never read the same last seq; readers
//! go on in parallel on the other pooled connections (WAL). Inside the
//! batch each saga gets a savepoint, so one saga's conflict never undoes
//! another's events.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Acquire, Sqlite, SqliteConnection, Transaction};

use self::rows::{event_rows, from_i64, list_query, recorded_from_row, summary_from_row, to_i64, EventRow, SUMMARY_COLUMNS};
use super::rules::{check_batch, cut_page, page_limit, status_counts};
use super::{
    Append, AppendOutcome, CommittedEvent, DefinitionRecord, EventStore, ListFilter, Page, PoisonRecord, RelayCursor, SagaSummary,
    StoreError,
};
use crate::saga::{Recorded, SagaId, Status, SCHEMA_VERSION};

mod rows;
mod work;

/// How long a connection waits for another one's write lock before failing.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Pooled connections for a file database: one writes at a time, the rest read.
const POOL_CONNECTIONS_MAX: u32 = 4;
/// How long a call waits for a free pooled connection.
const ACQUIRE_TIMEOUT_MS: u64 = 30_000;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// An event store in a SQLite database; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// The connection settings that make SQLite durable, as a pooled
/// connection reports them (for health checks and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `PRAGMA journal_mode`: `"wal"` for a file (`"memory"` in memory).
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 2 is `FULL`.
    pub synchronous: i64,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in ms.
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens (creating it if missing) and migrates the database at
    /// `sqlite://path`, `sqlite:path`, `sqlite::memory:` or a plain path.
    /// An in-memory database lives on one pooled connection, kept open for
    /// the life of the store, so every call sees the same data.
    pub async fn open(url_or_path: &str) -> Result<Self, StoreError> {
        let in_memory = is_in_memory(url_or_path);
        let base = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(db("parsing the database url"))?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let options = base
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .foreign_keys(true);
        let pool_options = SqlitePoolOptions::new().acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS));
        let pool_options = match in_memory {
            true => pool_options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None),
            false => pool_options.max_connections(POOL_CONNECTIONS_MAX),
        };
        let pool = pool_options.connect_with(options).await.map_err(db("opening the database"))?;
        MIGRATOR.run(&pool).await.map_err(|error| StoreError::Database(format!("applying the sqlite migrations: {error}")))?;
        Ok(Self { pool })
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

    /// The durability settings of one pooled connection.
    pub async fn pragmas(&self) -> Result<Pragmas, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("acquiring a connection"))?;
        let read = |pragma: &'static str| sqlx::query_scalar::<_, i64>(pragma);
        Ok(Pragmas {
            journal_mode: sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.map_err(db("reading pragmas"))?,
            synchronous: read("PRAGMA synchronous").fetch_one(&mut *conn).await.map_err(db("reading pragmas"))?,
            foreign_keys: read("PRAGMA foreign_keys").fetch_one(&mut *conn).await.map_err(db("reading pragmas"))? == 1,
            busy_timeout_ms: read("PRAGMA busy_timeout").fetch_one(&mut *conn).await.map_err(db("reading pragmas"))?,
        })
    }
}

/// `sqlite::memory:`, `sqlite://:memory:`, `sqlite://?mode=memory`, `:memory:`.
fn is_in_memory(url_or_path: &str) -> bool {
    let rest = url_or_path.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|param| param == "mode=memory")
}

/// Every sqlx failure other than a taken seq becomes this, saying what failed.
fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| StoreError::Database(format!("sqlite: {context}: {error}"))
}

/// A unique violation on (saga_id, seq): someone else appended that seq first.
fn is_seq_taken(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.is_unique_violation())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

async fn last_seq(conn: &mut SqliteConnection, saga_id: &str) -> Result<u64, StoreError> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events WHERE saga_id = ?")
        .bind(saga_id)
        .fetch_one(conn)
        .await
        .map_err(db("reading a saga's last seq"))?;
    from_i64(seq, "seq")
}

/// One saga's share of the batch, inside its own savepoint.
async fn append_one(tx: &mut Transaction<'static, Sqlite>, append: &Append) -> Result<AppendOutcome, StoreError> {
    let saga_id = append.saga_id.to_string();
    let actual_seq = last_seq(tx, &saga_id).await?;
    if actual_seq != append.expected_seq {
        return Ok(AppendOutcome::Conflict { actual_seq });
    }
    let rows = event_rows(append)?;
    let summary = &append.summary;
    let (version, last) = (i64::from(summary.version), to_i64(summary.last_seq, "last_seq")?);
    let mut savepoint = tx.begin().await.map_err(db("opening a savepoint"))?;
    match write(&mut savepoint, &saga_id, &rows, summary, version, last).await {
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

async fn write(
    conn: &mut SqliteConnection,
    saga_id: &str,
    rows: &[EventRow],
    summary: &SagaSummary,
    version: i64,
    last_seq: i64,
) -> Result<(), sqlx::Error> {
    for row in rows {
        sqlx::query("INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(saga_id)
            .bind(row.seq)
            .bind(row.event_type)
            .bind(i64::from(SCHEMA_VERSION))
            .bind(&row.data)
            .bind(row.at_ms)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO sagas (saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, \
         deadline_ms, claimed_until_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) \
         ON CONFLICT (saga_id) DO UPDATE SET saga_type = excluded.saga_type, version = excluded.version, status = excluded.status, \
         current_step = excluded.current_step, started_at_ms = excluded.started_at_ms, updated_at_ms = excluded.updated_at_ms, \
         last_seq = excluded.last_seq, deadline_ms = excluded.deadline_ms, claimed_until_ms = NULL",
    )
    .bind(saga_id)
    .bind(&summary.saga_type)
    .bind(version)
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

impl EventStore for SqliteStore {
    async fn append(&self, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
        check_batch(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db("starting an append transaction"))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for append in batch {
            outcomes.push(append_one(&mut tx, append).await?);
        }
        tx.commit().await.map_err(db("committing an append"))?;
        Ok(outcomes)
    }

    async fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> Result<Vec<Recorded>, StoreError> {
        // No stored seq exceeds i64::MAX, so a larger bound means "all".
        let up_to_seq = up_to_seq.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
        let rows =
            sqlx::query("SELECT seq, event_type, schema_version, data, at_ms FROM events WHERE saga_id = ? AND seq <= ? ORDER BY seq")
                .bind(saga_id.to_string())
                .bind(up_to_seq)
                .fetch_all(&self.pool)
                .await
                .map_err(db("loading a saga's events"))?;
        rows.iter().map(|row| recorded_from_row(saga_id, row)).collect()
    }

    async fn summary(&self, saga_id: SagaId) -> Result<Option<SagaSummary>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS} FROM sagas WHERE saga_id = ?"))
            .bind(saga_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a saga summary"))?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let rows = list_query(filter, cursor, i64::from(limit) + 1).build().fetch_all(&self.pool).await.map_err(db("listing sagas"))?;
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
            "INSERT INTO definitions (name, version, content_hash, source, recorded_at_ms) VALUES (?, ?, ?, ?, ?) \
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
            None => Err(StoreError::Database(format!("sqlite: definition {} version {} vanished", record.name, record.version))),
        }
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        let row: Option<(String, i64, String, String)> =
            sqlx::query_as("SELECT name, version, content_hash, source FROM definitions WHERE name = ? AND version = ?")
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
