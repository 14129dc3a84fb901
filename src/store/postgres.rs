//! The PostgreSQL dialect, the production backend and the source of truth:
//! every `append` is one transaction (`synchronous_commit` as the server
//! has it, `on` by default, so a commit is durable before `append`
//! returns), with the migrations under `migrations/postgres`.
//!
//! Many engines may write at once: an append (one statement per batch,
//! `sql/postgres/append_set.sql`) locks its sagas' projection rows in id
//! order (`FOR UPDATE`) and writes only those whose last seq is as expected, a claim skips rows another claimer holds (`FOR
//! UPDATE SKIP LOCKED`), and the relay orders events by transaction, then
//! position, reading only transactions nothing can commit before any
//! more. The statements that differ from SQLite's are in `sql/postgres/`.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Postgres};

use super::sql::{failed, pool_options, statements, Dialect, SetRows, SqlStore, Statements};
use super::StoreError;
use crate::saga::SCHEMA_VERSION;

/// Pooled connections per store: appends, claims and reads in parallel.
const POOL_CONNECTIONS_MAX: u32 = 16;
/// One wave of a group commit in one statement (`write_set`).
const APPEND_SET: &str = include_str!("sql/postgres/append_set.sql");
/// PostgreSQL's identifier limit (NAMEDATALEN - 1), for schema names.
const SCHEMA_NAME_LEN_MAX: usize = 63;

/// An event store in a PostgreSQL database; clones share one connection pool.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to `postgres://…` and applies the migrations (idempotent:
    /// applied ones are skipped), like `SqliteStore::open`. Put
    /// `options=-csearch_path%3D<schema>` in the URL to use another schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(parse_url(url)?).await
    }

    /// Like [`connect`](Self::connect), but every pooled connection works in
    /// `schema` (its `search_path`), which is created if missing. Tests use a
    /// fresh schema each so they never see each other's rows.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema_name(schema)?;
        let options = parse_url(url)?;
        let mut conn = PgConnection::connect_with(&options).await.map_err(failed::<Postgres>("connecting"))?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        sqlx::query(&create).execute(&mut conn).await.map_err(failed::<Postgres>("creating the schema"))?;
        conn.close().await.map_err(failed::<Postgres>("closing the set-up connection"))?;
        Self::connect_with(options.options([("search_path", schema)])).await
    }

    /// Like [`connect`](Self::connect), but leaves the schema as it is.
    /// One plain connection comes first: its failure (refused, unknown
    /// database, wrong password) is returned at once, where the pool
    /// would retry a refused connection until its acquire timeout.
    pub async fn connect_unmigrated(url: &str) -> Result<Self, StoreError> {
        let options = parse_url(url)?;
        let probe = PgConnection::connect_with(&options).await.map_err(failed::<Postgres>("connecting"))?;
        probe.close().await.map_err(failed::<Postgres>("closing the first connection"))?;
        Ok(Self::unmigrated(pool(options).await?))
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        Self::migrated(pool(options).await?).await
    }
}

async fn pool(options: PgConnectOptions) -> Result<sqlx::PgPool, StoreError> {
    pool_options().max_connections(POOL_CONNECTIONS_MAX).connect_with(options).await.map_err(failed::<Postgres>("connecting"))
}

/// A URL sqlx cannot read is a configuration mistake, not worth retrying.
fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|error| StoreError::invalid(format!("postgres database url: {error}")))
}

/// A schema name is spliced into SQL, so only plain identifiers pass.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let plain = schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let starts_well = schema.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if plain && starts_well && schema.len() <= SCHEMA_NAME_LEN_MAX {
        return Ok(());
    }
    Err(StoreError::invalid(format!(
        "postgres: schema name {schema:?} must match [a-z_][a-z0-9_]* and have at most {SCHEMA_NAME_LEN_MAX} bytes"
    )))
}

impl Dialect for Postgres {
    const SQL: Statements = statements!("postgres");
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
    const ANONYMOUS_PARAMETERS: bool = false;

    /// SQLSTATE classes 08 (connection exception), 40 (transaction
    /// rollback: serialization failure, deadlock), 53 (insufficient
    /// resources) and 57 (operator intervention: shutdown, cancel).
    fn is_transient_code(code: &str) -> bool {
        ["08", "40", "53", "57"].iter().any(|class| code.starts_with(class))
    }

    /// One statement: the wave's columns bound as arrays and unnested
    /// (`append_set.sql`), whatever the number of sagas.
    async fn write_set(conn: &mut PgConnection, rows: &SetRows) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>(APPEND_SET)
            .bind(&rows.saga_ids)
            .bind(&rows.expected_seqs)
            .bind(&rows.saga_types)
            .bind(&rows.versions)
            .bind(&rows.statuses)
            .bind(&rows.current_steps)
            .bind(&rows.started_at_ms)
            .bind(&rows.updated_at_ms)
            .bind(&rows.last_seqs)
            .bind(&rows.deadlines_ms)
            .bind(&rows.event_saga_ids)
            .bind(&rows.event_seqs)
            .bind(&rows.event_types)
            .bind(&rows.event_data)
            .bind(&rows.event_at_ms)
            .bind(i32::from(SCHEMA_VERSION))
            .bind(&rows.keys)
            .fetch_all(conn)
            .await
            .map_err(failed::<Postgres>("appending events"))
    }
}

/// For `benches/list.rs` only, and not part of the store's contract: what
/// a benchmark cannot learn from the outside without copying the store's
/// SQL.
pub mod bench {
    use super::super::rules::page_limit;
    use super::super::sql::list_statement;
    use super::PostgresStore;
    use crate::saga::SagaId;
    use crate::store::{ListFilter, StoreError};

    /// The plan PostgreSQL picks for `store.list(filter, cursor, limit)`
    /// (`EXPLAIN` of the very statement `list` runs), one line per node.
    pub async fn explain_list(
        store: &PostgresStore,
        filter: &ListFilter,
        cursor: Option<SagaId>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let cursor = cursor.map(|cursor| cursor.to_string());
        let statement = list_statement(filter, cursor.as_deref(), i64::from(page_limit(limit)) + 1);
        let explain = format!("EXPLAIN {}", statement.sql);
        let rows = store.run("explaining a list query", &explain, &statement.params).await?;
        rows.iter().map(|row| row.get("QUERY PLAN")).collect()
    }
}
