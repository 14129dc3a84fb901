//! The SQLite dialect, the embedded default: one file, WAL journal,
//! `synchronous = FULL` (a commit is on disk before `append` returns), and
//! the migrations under `migrations/sqlite` applied at open.
//!
//! SQLite has one writer. Every append takes the write lock up front with
//! `BEGIN IMMEDIATE`, so two appends never read the same last seq; readers
//! go on in parallel on the other pooled connections (WAL). With one
//! writer, the events' `AUTOINCREMENT` position is the global commit
//! order. The statements that differ from PostgreSQL's are in
//! `sql/sqlite/`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection};

use super::sql::{failed, pool_options, statements, write_values, Dialect, SetRows, SqlStore, Statements};
use super::StoreError;

/// How long a connection waits for another one's write lock before failing.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Pooled connections for a file database: one writes at a time, the rest read.
const POOL_CONNECTIONS_MAX: u32 = 4;

/// An event store in a SQLite database; clones share one connection pool.
pub type SqliteStore = SqlStore<Sqlite>;

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

impl SqlStore<Sqlite> {
    /// Opens (creating it if missing) and migrates the database at
    /// `sqlite://path`, `sqlite:path`, `sqlite::memory:` or a plain path.
    /// An in-memory database lives on one pooled connection, kept open for
    /// the life of the store, so every call sees the same data.
    pub async fn open(url_or_path: &str) -> Result<Self, StoreError> {
        Self::migrated(pool(url_or_path).await?).await
    }

    /// Like [`open`](Self::open), but leaves the schema as it is.
    pub async fn open_unmigrated(url_or_path: &str) -> Result<Self, StoreError> {
        Ok(Self::unmigrated(pool(url_or_path).await?))
    }

    /// The durability settings of one pooled connection.
    pub async fn pragmas(&self) -> Result<Pragmas, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(failed::<Sqlite>("acquiring a connection"))?;
        let read = |pragma: &'static str| sqlx::query_scalar::<_, i64>(pragma);
        let failed = || failed::<Sqlite>("reading pragmas");
        Ok(Pragmas {
            journal_mode: sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.map_err(failed())?,
            synchronous: read("PRAGMA synchronous").fetch_one(&mut *conn).await.map_err(failed())?,
            foreign_keys: read("PRAGMA foreign_keys").fetch_one(&mut *conn).await.map_err(failed())? == 1,
            busy_timeout_ms: read("PRAGMA busy_timeout").fetch_one(&mut *conn).await.map_err(failed())?,
        })
    }
}

impl Dialect for Sqlite {
    const SQL: Statements = statements!("sqlite");
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
    const ANONYMOUS_PARAMETERS: bool = true;

    /// Extended result codes whose primary code (the low byte) is BUSY
    /// (5) or LOCKED (6), a lock held past the busy timeout; IOERR (10); or
    /// FULL (13), a full disk.
    fn is_transient_code(code: &str) -> bool {
        let primary = code.parse::<i32>().map_or(0, |code| code & 0xff);
        matches!(primary, 5 | 6 | 10 | 13)
    }

    /// Under the one write lock: read the seqs, then one multi-row insert
    /// of the events and one multi-row upsert of the projection rows.
    async fn write_set(conn: &mut SqliteConnection, rows: &SetRows) -> Result<Vec<String>, StoreError> {
        write_values::<Sqlite>(conn, rows).await
    }
}

/// The pool of `url_or_path`, the database created if missing.
async fn pool(url_or_path: &str) -> Result<sqlx::SqlitePool, StoreError> {
    let base = if url_or_path.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url_or_path).map_err(|error| StoreError::invalid(format!("sqlite database url: {error}")))?
    } else {
        SqliteConnectOptions::new().filename(url_or_path)
    };
    let options = base
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .foreign_keys(true);
    let pool_options = match is_in_memory(url_or_path) {
        // The database lives as long as its one connection.
        true => pool_options().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None),
        false => pool_options().max_connections(POOL_CONNECTIONS_MAX),
    };
    pool_options.connect_with(options).await.map_err(failed::<Sqlite>("opening the database"))
}

/// `sqlite::memory:`, `sqlite://:memory:`, `sqlite://?mode=memory`, `:memory:`.
fn is_in_memory(url_or_path: &str) -> bool {
    let rest = url_or_path.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|param| param == "mode=memory")
}
