//! The event store port: a narrow trait and its adapters.
//!
//! A store keeps each saga's log (events in `seq` order, appended with
//! optimistic concurrency) and a `sagas` projection for listing, updated in
//! the same transaction. It never publishes anything: publishing is an
//! effect the runtime carries out after the commit.
//!
//! Adapters: [`MemoryStore`] (tests, simulation of the runtime), and one
//! SQL adapter, [`SqlStore`], written once over sqlx for two dialects:
//! [`SqliteStore`] (the embedded default) and [`PostgresStore`]
//! (production); [`AnyStore`] is the one a database URL picks
//! ([`open_url`]). All pass one contract suite
//! (`tests/it/store_contract.rs`). Failures are [`StoreError`]s.

mod any;
mod error;
mod memory;
mod postgres;
mod rules;
mod sql;
mod sqlite;

pub use any::{open_url, open_url_unmigrated, AnyStore};
pub use error::{DatabaseError, StoreError};
pub use memory::MemoryStore;
#[doc(hidden)]
pub use postgres::bench;
pub use postgres::PostgresStore;
pub use sql::{SchemaVersion, SqlStore};
pub use sqlite::{Pragmas, SqliteStore};

use std::collections::HashMap;
use std::future::Future;

use crate::saga::{Recorded, SagaId, Status};

/// Most sagas one `list` call returns.
pub const PAGE_SIZE_MAX: u32 = 500;

/// Most sagas one [`EventStore::logs_in_status`] call returns (with
/// their events): a page of recovery.
pub const LOGS_PAGE_MAX: u32 = 2_000;

/// Most sagas one SQL statement names (`load_many`, the seqs read of a
/// group commit): far below every database's limit of bound parameters.
pub const IDS_PER_STATEMENT_MAX: usize = 1_000;

/// Whole logs by saga (`load_many`); a saga with no log has no entry.
pub type Logs = HashMap<SagaId, Vec<Recorded>>;

/// One saga's share of a (possibly grouped) append.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    /// The saga.
    pub saga_id: SagaId,
    /// The seq of the last event the writer saw (0 for a new saga). The
    /// append commits only if it is still the last one.
    pub expected_seq: u64,
    /// The new events; their `seq` run on from `expected_seq + 1`.
    pub events: Vec<Recorded>,
    /// The projection row as it is after these events.
    pub summary: SagaSummary,
}

/// What became of one [`Append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events are durable.
    Committed,
    /// Someone appended first, or (for a new saga) another saga holds
    /// its (saga type, key): reload, decide again.
    Conflict {
        /// The saga's last seq in the store.
        actual_seq: u64,
    },
}

/// The `sagas` projection: one row per saga, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaSummary {
    /// The saga.
    pub saga_id: SagaId,
    /// Its type.
    pub saga_type: String,
    /// The definition version it runs on.
    pub version: u32,
    /// Its status.
    pub status: Status,
    /// The step it is at, if any.
    pub current_step: Option<String>,
    /// When it started (ms since the epoch).
    pub started_at_ms: i64,
    /// When its last event was decided.
    pub updated_at_ms: i64,
    /// Its last seq.
    pub last_seq: u64,
    /// When the saga must be woken up (its phase's deadline), if ever.
    /// `claim_due` hands it to exactly one engine once it has passed.
    pub deadline_ms: Option<i64>,
    /// Its business key (SPEC §7), if it was started with one. Written
    /// when the saga's row is created, never changed: at most one saga
    /// per (saga type, key), so the append of a new saga whose key is
    /// taken is a [`AppendOutcome::Conflict`].
    pub key: Option<String>,
}

/// Which sagas `list` returns. Every field narrows; the default is all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Any of these statuses (empty: any status).
    pub statuses: Vec<Status>,
    /// Only this type.
    pub saga_type: Option<String>,
    /// Only the saga with this business key (with `saga_type`: at most one).
    pub key: Option<String>,
    /// Last event decided at or before this instant (`stuck_for`).
    pub updated_before_ms: Option<i64>,
    /// Started at or after.
    pub started_from_ms: Option<i64>,
    /// Started before.
    pub started_until_ms: Option<i64>,
}

/// One page of `list`, ordered by saga id (ids are UUIDv7: start order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The sagas.
    pub sagas: Vec<SagaSummary>,
    /// Pass it back to get the next page; `None` on the last page.
    pub next_cursor: Option<SagaId>,
}

/// A definition version as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionRecord {
    /// The saga type.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Hex SHA-256 of the file.
    pub content_hash: String,
    /// The file's text, so sagas on an old version can still run.
    pub source: String,
}

/// Largest payload kept with a poison record; the rest is cut off.
pub const POISON_PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// A message the orchestrator could not use, kept for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonRecord {
    /// The subject it arrived on.
    pub subject: String,
    /// Why it was refused.
    pub reason: String,
    /// Its bytes, at most [`POISON_PAYLOAD_BYTES_MAX`].
    pub payload: Vec<u8>,
    /// When it arrived (ms since the epoch).
    pub received_at_ms: i64,
}

/// A place in the store's global commit order. Events are read back in
/// this order by the event relay; no event can later commit before a
/// cursor already handed out (PostgreSQL orders by transaction, then position).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayCursor {
    /// The committing transaction (0 where the store has one writer).
    pub tx: i64,
    /// The event's global position.
    pub position: i64,
}

/// A committed event with its place in the global order.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEvent {
    /// Where it stands.
    pub cursor: RelayCursor,
    /// The saga.
    pub saga_id: SagaId,
    /// The saga's type (for the subject).
    pub saga_type: String,
    /// The event.
    pub recorded: Recorded,
}

/// The event store port. Implementations are cheap to clone handles.
pub trait EventStore: Send + Sync + 'static {
    /// Appends every saga's events in one transaction (group commit). Each
    /// [`Append`] commits unless its `expected_seq` is stale, which gives
    /// [`AppendOutcome::Conflict`] for it alone; an `Err` means nothing committed.
    fn append(&self, batch: &[Append]) -> impl Future<Output = Result<Vec<AppendOutcome>, StoreError>> + Send;

    /// The saga's events in seq order, up to and including `up_to_seq`
    /// (all when `None`). Empty for an unknown saga.
    fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> impl Future<Output = Result<Vec<Recorded>, StoreError>> + Send;

    /// The whole logs of `saga_ids` (each in seq order) in one round trip
    /// where the backend allows: what `load(id, None)` returns for each,
    /// without an entry for a saga that has no log.
    fn load_many(&self, saga_ids: &[SagaId]) -> impl Future<Output = Result<Logs, StoreError>> + Send {
        async move {
            let mut logs = Logs::with_capacity(saga_ids.len());
            for &saga_id in saga_ids {
                let log = self.load(saga_id, None).await?;
                if !log.is_empty() {
                    logs.insert(saga_id, log);
                }
            }
            Ok(logs)
        }
    }

    /// Up to `limit` (capped at [`LOGS_PAGE_MAX`]) sagas in `status` with
    /// an id after `after`, in id order, each with its whole log: one
    /// query per page of recovery. Fewer than `limit` means the last page.
    fn logs_in_status(
        &self,
        status: Status,
        after: Option<SagaId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(SagaId, Vec<Recorded>)>, StoreError>> + Send {
        async move {
            let filter = ListFilter { statuses: vec![status], ..ListFilter::default() };
            let mut logs = Vec::new();
            let (mut cursor, limit) = (after, logs_limit(limit) as usize);
            while logs.len() < limit {
                let page = self.list(&filter, cursor, PAGE_SIZE_MAX).await?;
                for summary in page.sagas.iter().take(limit - logs.len()) {
                    logs.push((summary.saga_id, self.load(summary.saga_id, None).await?));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Ok(logs)
        }
    }

    /// The saga that holds each of `keys` (saga type, business key), for
    /// those held: what a start with a key looks up before it decides (the
    /// unique index stays the final guard, see [`AppendOutcome::Conflict`]).
    /// One `list` per key by default, through the `(saga_type, key)` index.
    fn sagas_by_key(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<HashMap<(String, String), SagaId>, StoreError>> + Send {
        async move {
            let mut found = HashMap::with_capacity(keys.len());
            for (saga_type, key) in keys {
                let filter = ListFilter { saga_type: Some(saga_type.clone()), key: Some(key.clone()), ..ListFilter::default() };
                if let Some(summary) = self.list(&filter, None, 1).await?.sagas.first() {
                    found.insert((saga_type.clone(), key.clone()), summary.saga_id);
                }
            }
            Ok(found)
        }
    }

    /// The projection row of one saga.
    fn summary(&self, saga_id: SagaId) -> impl Future<Output = Result<Option<SagaSummary>, StoreError>> + Send;

    /// Sagas matching `filter` with an id after `cursor`, at most
    /// `limit` (capped at [`PAGE_SIZE_MAX`]).
    fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// How many sagas are in each of `statuses`, in that order (zero
    /// included). Backed by the status index, so asking for the few
    /// unfinished statuses stays cheap however many sagas finished.
    fn count_by_status(&self, statuses: &[Status]) -> impl Future<Output = Result<Vec<(Status, u64)>, StoreError>> + Send;

    /// Records a definition version; the same content again is a no-op,
    /// other content is [`StoreError::DefinitionChanged`].
    fn record_definition(&self, record: &DefinitionRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A recorded definition version.
    fn load_definition(&self, name: &str, version: u32) -> impl Future<Output = Result<Option<DefinitionRecord>, StoreError>> + Send;

    /// Keeps a poison message for operators.
    fn record_poison(&self, poison: &PoisonRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The poison records with an id after `after_id`, oldest first, at
    /// most `limit` (clamped like a page): the operators' read of poison.
    fn poison_after(&self, after_id: i64, limit: u32) -> impl Future<Output = Result<Vec<PoisonEntry>, StoreError>> + Send;

    /// Up to `limit` committed events after `after`, in global commit
    /// order, only where no event can still commit before them (so a relay
    /// that checkpoints the last one never skips anything).
    fn committed_after(&self, after: RelayCursor, limit: u32) -> impl Future<Output = Result<Vec<CommittedEvent>, StoreError>> + Send;

    /// The named relay's checkpoint (the default cursor if none was saved).
    fn relay_checkpoint(&self, relay: &str) -> impl Future<Output = Result<RelayCursor, StoreError>> + Send;

    /// Saves the named relay's checkpoint.
    fn save_relay_checkpoint(&self, relay: &str, cursor: RelayCursor) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims up to `limit` sagas whose `deadline_ms` is at or before
    /// `now_ms` and that no one holds a live claim on; each claim lasts
    /// until `now_ms + lease_ms` or until the saga's next append. Two
    /// engines never get the same saga from one deadline.
    fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: u32) -> impl Future<Output = Result<Vec<SagaId>, StoreError>> + Send;

    /// Renews engine `engine_id`'s lease: it is alive at `now_ms`. Leases
    /// last heard from before `forget_before_ms` are dropped.
    fn heartbeat(&self, engine_id: &str, now_ms: i64, forget_before_ms: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The engines heard from at or after `since_ms`, each with its last heartbeat.
    fn engines_since(&self, since_ms: i64) -> impl Future<Output = Result<Vec<EngineLease>, StoreError>> + Send;

    /// Deletes up to `limit` finished sagas (completed, compensated,
    /// aborted) last changed before `before_ms`, their events with them;
    /// how many went. Running and stuck sagas are never deleted.
    fn forget_finished(&self, before_ms: i64, limit: u32) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes up to `limit` poison records received before `before_ms`; how many went.
    fn forget_poison(&self, before_ms: i64, limit: u32) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A kept poison record with its id (ids grow in arrival order), as
/// operators page through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonEntry {
    /// The record's id.
    pub id: i64,
    /// The record.
    pub record: PoisonRecord,
}

/// The page size `logs_in_status` uses: at least 1, at most [`LOGS_PAGE_MAX`].
pub(crate) fn logs_limit(limit: u32) -> u32 {
    limit.clamp(1, LOGS_PAGE_MAX)
}

/// An engine's lease as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineLease {
    /// The engine (one `serve` process's run).
    pub engine_id: String,
    /// When it last said it was alive (ms since the epoch).
    pub heartbeat_ms: i64,
}
