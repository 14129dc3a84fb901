//! The store a database URL picks: `postgres://…` or `postgresql://…` is
//! [`PostgresStore`], `sqlite:…` or a plain file path is [`SqliteStore`].
//! [`AnyStore`] implements [`EventStore`] by handing each call to the
//! store inside, so the shell can be written once for both.

use super::{
    Append, AppendOutcome, CommittedEvent, DefinitionRecord, EngineLease, EventStore, ListFilter, Logs, Page, PoisonEntry, PoisonRecord,
    PostgresStore, RelayCursor, SagaSummary, SchemaVersion, SqliteStore, StoreError,
};
use crate::saga::{Recorded, SagaId, Status};

/// One of the database-backed stores, chosen at run time by [`open_url`].
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The embedded default.
    Sqlite(SqliteStore),
    /// The production backend.
    Postgres(PostgresStore),
}

/// `delegate!(self, store => store.call(args))` runs the call on whichever store is inside.
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

/// Opens the store `url` names and applies its migrations:
/// `postgres://` / `postgresql://` → PostgreSQL; `sqlite:` or a path
/// without a scheme → SQLite. Any other scheme is an error.
pub async fn open_url(url: &str) -> Result<AnyStore, StoreError> {
    match backend(url)? {
        Backend::Postgres => Ok(AnyStore::Postgres(PostgresStore::connect(url).await?)),
        Backend::Sqlite => Ok(AnyStore::Sqlite(SqliteStore::open(url).await?)),
    }
}

/// Like [`open_url`], but leaves the schema as it is (no DDL): check it
/// with [`AnyStore::schema_version`], apply it with [`AnyStore::migrate`].
pub async fn open_url_unmigrated(url: &str) -> Result<AnyStore, StoreError> {
    match backend(url)? {
        Backend::Postgres => Ok(AnyStore::Postgres(PostgresStore::connect_unmigrated(url).await?)),
        Backend::Sqlite => Ok(AnyStore::Sqlite(SqliteStore::open_unmigrated(url).await?)),
    }
}

enum Backend {
    Postgres,
    Sqlite,
}

fn backend(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Postgres);
    }
    if url.starts_with("sqlite:") || !url.contains("://") {
        return Ok(Backend::Sqlite);
    }
    // Only the scheme: the rest of a URL may hold a password.
    let scheme = url.split("://").next().unwrap_or_default();
    Err(StoreError::invalid(format!(
        "unsupported database url scheme {scheme:?}: use postgres://…, postgresql://…, sqlite://… or a file path"
    )))
}

impl AnyStore {
    /// The migrations applied, against those this build knows.
    pub async fn schema_version(&self) -> Result<SchemaVersion, StoreError> {
        delegate!(self, store => store.schema_version())
    }

    /// Applies the migrations not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        delegate!(self, store => store.migrate())
    }
}

impl EventStore for AnyStore {
    async fn append(&self, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
        delegate!(self, store => store.append(batch))
    }

    async fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> Result<Vec<Recorded>, StoreError> {
        delegate!(self, store => store.load(saga_id, up_to_seq))
    }

    async fn load_many(&self, saga_ids: &[SagaId]) -> Result<Logs, StoreError> {
        delegate!(self, store => store.load_many(saga_ids))
    }

    async fn logs_in_status(&self, status: Status, after: Option<SagaId>, limit: u32) -> Result<Vec<(SagaId, Vec<Recorded>)>, StoreError> {
        delegate!(self, store => store.logs_in_status(status, after, limit))
    }

    async fn summary(&self, saga_id: SagaId) -> Result<Option<SagaSummary>, StoreError> {
        delegate!(self, store => store.summary(saga_id))
    }

    async fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Page, StoreError> {
        delegate!(self, store => store.list(filter, cursor, limit))
    }

    async fn count_by_status(&self, statuses: &[Status]) -> Result<Vec<(Status, u64)>, StoreError> {
        delegate!(self, store => store.count_by_status(statuses))
    }

    async fn record_definition(&self, record: &DefinitionRecord) -> Result<(), StoreError> {
        delegate!(self, store => store.record_definition(record))
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        delegate!(self, store => store.load_definition(name, version))
    }

    async fn record_poison(&self, poison: &PoisonRecord) -> Result<(), StoreError> {
        delegate!(self, store => store.record_poison(poison))
    }

    async fn poison_after(&self, after_id: i64, limit: u32) -> Result<Vec<PoisonEntry>, StoreError> {
        delegate!(self, store => store.poison_after(after_id, limit))
    }

    async fn committed_after(&self, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
        delegate!(self, store => store.committed_after(after, limit))
    }

    async fn relay_checkpoint(&self, relay: &str) -> Result<RelayCursor, StoreError> {
        delegate!(self, store => store.relay_checkpoint(relay))
    }

    async fn save_relay_checkpoint(&self, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
        delegate!(self, store => store.save_relay_checkpoint(relay, cursor))
    }

    async fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
        delegate!(self, store => store.claim_due(now_ms, lease_ms, limit))
    }

    async fn heartbeat(&self, engine_id: &str, now_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        delegate!(self, store => store.heartbeat(engine_id, now_ms, forget_before_ms))
    }

    async fn forget_finished(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        delegate!(self, store => store.forget_finished(before_ms, limit))
    }

    async fn forget_poison(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        delegate!(self, store => store.forget_poison(before_ms, limit))
    }

    async fn engines_since(&self, since_ms: i64) -> Result<Vec<EngineLease>, StoreError> {
        delegate!(self, store => store.engines_since(since_ms))
    }
}
