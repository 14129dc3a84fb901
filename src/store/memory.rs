//! The in-memory event store: the same semantics as SQLite (conflicts,
//! projection, filters, cursor, definitions) with nothing on disk, for
//! tests and for driving the runtime without a database.
//!
//! All state sits behind one std `Mutex`, taken and released inside each
//! call and never held across an `.await`, so a whole batch is applied
//! atomically just as one SQLite transaction would be.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::rules::{check_batch, cut_page, page_limit};
use super::{Append, AppendOutcome, DefinitionRecord, EventStore, ListFilter, Page, SagaSummary, StoreError};
use crate::saga::{Recorded, SagaId};

/// An event store held in memory; clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    logs: HashMap<SagaId, Vec<Recorded>>,
    /// Ordered by saga id, like the SQLite primary key, for `list`.
    sagas: BTreeMap<SagaId, SagaSummary>,
    definitions: HashMap<(String, u32), DefinitionRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A poisoned lock means a panic elsewhere mid-update: report it, never panic again.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Database("memory store: lock poisoned by a panic in another task".to_owned()))
    }
}

impl Inner {
    fn last_seq(&self, saga_id: SagaId) -> u64 {
        self.logs.get(&saga_id).and_then(|log| log.last()).map_or(0, |recorded| recorded.seq)
    }

    fn apply(&mut self, append: &Append) -> AppendOutcome {
        let actual_seq = self.last_seq(append.saga_id);
        if actual_seq != append.expected_seq {
            return AppendOutcome::Conflict { actual_seq };
        }
        self.logs.entry(append.saga_id).or_default().extend(append.events.iter().cloned());
        self.sagas.insert(append.saga_id, append.summary.clone());
        AppendOutcome::Committed
    }
}

/// The same predicate the SQLite `WHERE` clause expresses.
fn matches(filter: &ListFilter, summary: &SagaSummary) -> bool {
    (filter.statuses.is_empty() || filter.statuses.contains(&summary.status))
        && filter.saga_type.as_ref().is_none_or(|t| *t == summary.saga_type)
        && filter.updated_before_ms.is_none_or(|ms| summary.updated_at_ms <= ms)
        && filter.started_from_ms.is_none_or(|ms| summary.started_at_ms >= ms)
        && filter.started_until_ms.is_none_or(|ms| summary.started_at_ms < ms)
}

impl EventStore for MemoryStore {
    async fn append(&self, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
        check_batch(batch)?;
        let mut inner = self.lock()?;
        Ok(batch.iter().map(|append| inner.apply(append)).collect())
    }

    async fn load(&self, saga_id: SagaId, up_to_seq: Option<u64>) -> Result<Vec<Recorded>, StoreError> {
        let inner = self.lock()?;
        let log = inner.logs.get(&saga_id).map_or(&[][..], Vec::as_slice);
        let up_to_seq = up_to_seq.unwrap_or(u64::MAX);
        Ok(log.iter().take_while(|recorded| recorded.seq <= up_to_seq).cloned().collect())
    }

    async fn summary(&self, saga_id: SagaId) -> Result<Option<SagaSummary>, StoreError> {
        Ok(self.lock()?.sagas.get(&saga_id).cloned())
    }

    async fn list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let inner = self.lock()?;
        let after = match cursor {
            Some(cursor) => inner.sagas.range((Bound::Excluded(cursor), Bound::Unbounded)),
            None => inner.sagas.range(..),
        };
        let rows = after.map(|(_, summary)| summary).filter(|summary| matches(filter, summary)).take(limit as usize + 1).cloned().collect();
        Ok(cut_page(rows, limit))
    }

    async fn record_definition(&self, record: &DefinitionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let key = (record.name.clone(), record.version);
        match inner.definitions.get(&key) {
            None => {
                inner.definitions.insert(key, record.clone());
                Ok(())
            }
            Some(existing) if existing.content_hash == record.content_hash => Ok(()),
            Some(existing) => Err(StoreError::DefinitionChanged {
                name: record.name.clone(),
                version: record.version,
                recorded: existing.content_hash.clone(),
            }),
        }
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        Ok(self.lock()?.definitions.get(&(name.to_owned(), version)).cloned())
    }

    async fn record_poison(&self, _poison: &super::PoisonRecord) -> Result<(), StoreError> {
        Err(StoreError::Database("TEMP: record_poison is being implemented".into()))
    }

    async fn committed_after(&self, _after: super::RelayCursor, _limit: u32) -> Result<Vec<super::CommittedEvent>, StoreError> {
        Err(StoreError::Database("TEMP: committed_after is being implemented".into()))
    }

    async fn relay_checkpoint(&self, _relay: &str) -> Result<super::RelayCursor, StoreError> {
        Err(StoreError::Database("TEMP: relay_checkpoint is being implemented".into()))
    }

    async fn save_relay_checkpoint(&self, _relay: &str, _cursor: super::RelayCursor) -> Result<(), StoreError> {
        Err(StoreError::Database("TEMP: save_relay_checkpoint is being implemented".into()))
    }

    async fn claim_due(&self, _now_ms: i64, _lease_ms: i64, _limit: u32) -> Result<Vec<SagaId>, StoreError> {
        Ok(Vec::new())
    }
}
