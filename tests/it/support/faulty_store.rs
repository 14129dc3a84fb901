//! A store that fails on purpose: a `MemoryStore` behind two switches.
//! `refuse(saga)` makes every append that touches the saga fail for good
//! (as PostgreSQL refuses data it cannot store), and `go_down()` makes
//! every call fail as an unreachable database does, until `come_back()`.
//! The tests of the engine's and the relay's failure handling use it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use jetsaga::saga::{Recorded, SagaId, Status};
use jetsaga::store::{
    Append, AppendOutcome, CommittedEvent, DatabaseError, DefinitionRecord, EngineLease, EventStore, ListFilter, MemoryStore, Page,
    PoisonEntry, PoisonRecord, RelayCursor, SagaSummary, StoreError,
};

/// The error of a failure that is not the database's health.
#[derive(Debug, thiserror::Error)]
#[error("the database refuses this data")]
struct Refused;

/// The error of an unreachable database.
#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct Down;

/// A `MemoryStore` that fails on demand. Clones share the switches.
#[derive(Debug, Clone, Default)]
pub struct FaultyStore {
    inner: MemoryStore,
    refused: Arc<Mutex<HashSet<SagaId>>>,
    down: Arc<AtomicBool>,
    failures: Arc<AtomicU32>,
}

impl FaultyStore {
    /// Every append touching `saga_id` fails for good from now on.
    pub fn refuse(&self, saga_id: SagaId) {
        self.refused.lock().expect("switch").insert(saga_id);
    }

    /// Every call fails as an unreachable database's would.
    pub fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// The database answers again.
    pub fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Calls that failed on purpose so far.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The store inside, as it is.
    pub fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    fn check(&self, context: &'static str) -> Result<(), StoreError> {
        if !self.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::Database(DatabaseError::new("faulty", context, true, Down)))
    }
}

impl EventStore for FaultyStore {
    async fn append(&self, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
        self.check("appending events")?;
        let refused = self.refused.lock().expect("switch").clone();
        if batch.iter().any(|a| refused.contains(&a.saga_id)) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Database(DatabaseError::new("faulty", "appending events", false, Refused)));
        }
        self.inner.append(batch).await
    }

    async fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> Result<Vec<Recorded>, StoreError> {
        self.check("loading events")?;
        self.inner.load(saga_id, up_to_seq).await
    }

    async fn summary(&self, saga_id: SagaId) -> Result<Option<SagaSummary>, StoreError> {
        self.check("reading a summary")?;
        self.inner.summary(saga_id).await
    }

    async fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Page, StoreError> {
        self.check("listing")?;
        self.inner.list(filter, cursor, limit).await
    }

    async fn count_by_status(&self, statuses: &[Status]) -> Result<Vec<(Status, u64)>, StoreError> {
        self.check("counting")?;
        self.inner.count_by_status(statuses).await
    }

    async fn record_definition(&self, record: &DefinitionRecord) -> Result<(), StoreError> {
        self.check("recording a definition")?;
        self.inner.record_definition(record).await
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        self.check("loading a definition")?;
        self.inner.load_definition(name, version).await
    }

    async fn record_poison(&self, poison: &PoisonRecord) -> Result<(), StoreError> {
        self.check("recording poison")?;
        self.inner.record_poison(poison).await
    }

    async fn poison_after(&self, after_id: i64, limit: u32) -> Result<Vec<PoisonEntry>, StoreError> {
        self.check("reading poison")?;
        self.inner.poison_after(after_id, limit).await
    }

    async fn committed_after(&self, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
        self.check("reading committed events")?;
        self.inner.committed_after(after, limit).await
    }

    async fn relay_checkpoint(&self, relay: &str) -> Result<RelayCursor, StoreError> {
        self.check("reading a relay checkpoint")?;
        self.inner.relay_checkpoint(relay).await
    }

    async fn save_relay_checkpoint(&self, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
        self.check("saving a relay checkpoint")?;
        self.inner.save_relay_checkpoint(relay, cursor).await
    }

    async fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
        self.check("claiming deadlines")?;
        self.inner.claim_due(now_ms, lease_ms, limit).await
    }

    async fn heartbeat(&self, engine_id: &str, now_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        self.check("renewing a lease")?;
        self.inner.heartbeat(engine_id, now_ms, forget_before_ms).await
    }

    async fn forget_finished(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.check("deleting finished sagas")?;
        self.inner.forget_finished(before_ms, limit).await
    }

    async fn forget_poison(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.check("deleting old poison")?;
        self.inner.forget_poison(before_ms, limit).await
    }

    async fn engines_since(&self, since_ms: i64) -> Result<Vec<EngineLease>, StoreError> {
        self.check("reading leases")?;
        self.inner.engines_since(since_ms).await
    }
}
