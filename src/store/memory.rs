//! The in-memory event store: the same semantics as SQLite (conflicts,
//! projection, filters, cursor, definitions, deadline claims, poison, the
//! relay's global order) with nothing on disk, for tests and for driving
//! the runtime without a database.
//!
//! All state sits behind one std `Mutex`, taken and released inside each
//! call and never held across an `.await`, so a whole batch is applied
//! atomically just as one SQLite transaction would be.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::rules::{check_batch, cut_page, definition_recorded, page_limit, poison_payload};
use super::{
    logs_limit, Append, AppendOutcome, CommittedEvent, DefinitionRecord, EngineLease, EventStore, ListFilter, Logs, Page, PoisonEntry,
    PoisonRecord, RelayCursor, SagaSummary, StoreError,
};
use crate::saga::{Recorded, SagaId, Status};

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
    /// Live deadline claims: saga → claimed until (ms). An append ends a claim.
    claims: HashMap<SagaId, i64>,
    /// The global commit order: entry `i` is the event at position `i + 1`,
    /// as (saga, seq). One writer (the lock), so `tx` is always 0.
    order: Vec<(SagaId, u64)>,
    poison: Vec<PoisonRecord>,
    /// Poison records forgotten so far: record `i` of `poison` has id `poison_forgotten + i + 1`.
    poison_forgotten: i64,
    checkpoints: HashMap<String, RelayCursor>,
    /// Engine leases: engine → last heartbeat (ms).
    engines: BTreeMap<String, i64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A poisoned lock means a panic elsewhere mid-update: report it, never panic again.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::corrupt("memory store: lock poisoned by a panic in another task"))
    }

    /// The poison records kept so far, oldest first, at most `limit`
    /// (clamped like a page).
    pub async fn poison(&self, limit: u32) -> Result<Vec<PoisonRecord>, StoreError> {
        Ok(self.lock()?.poison.iter().take(page_limit(limit) as usize).cloned().collect())
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
        if append.expected_seq == 0 && self.key_taken(&append.summary) {
            return AppendOutcome::Conflict { actual_seq };
        }
        self.logs.entry(append.saga_id).or_default().extend(append.events.iter().cloned());
        self.order.extend(append.events.iter().map(|recorded| (append.saga_id, recorded.seq)));
        let mut summary = append.summary.clone();
        if append.expected_seq > 0 {
            // The key is written with the saga's first row and never changes, as in the SQL stores.
            summary.key = self.sagas.get(&append.saga_id).and_then(|s| s.key.clone());
        }
        self.sagas.insert(append.saga_id, summary);
        self.claims.remove(&append.saga_id);
        AppendOutcome::Committed
    }

    /// Whether another saga holds the (saga type, key) of `summary`, like
    /// the SQL stores' unique index.
    fn key_taken(&self, summary: &SagaSummary) -> bool {
        summary.key.as_ref().is_some_and(|key| {
            self.sagas.values().any(|s| s.saga_type == summary.saga_type && s.key.as_ref() == Some(key) && s.saga_id != summary.saga_id)
        })
    }

    /// The event at `position` (1-based) with its saga's type.
    fn committed(&self, position: usize) -> Option<CommittedEvent> {
        let &(saga_id, seq) = self.order.get(position.checked_sub(1)?)?;
        let recorded = self.logs.get(&saga_id)?.get(usize::try_from(seq).ok()?.checked_sub(1)?)?.clone();
        let saga_type = self.sagas.get(&saga_id)?.saga_type.clone();
        let cursor = RelayCursor { tx: 0, position: i64::try_from(position).ok()? };
        Some(CommittedEvent { cursor, saga_id, saga_type, recorded })
    }

    /// Due and not held by a live claim, like the SQL `WHERE` clause.
    fn is_claimable(&self, summary: &SagaSummary, now_ms: i64) -> bool {
        summary.deadline_ms.is_some_and(|deadline| deadline <= now_ms)
            && self.claims.get(&summary.saga_id).is_none_or(|&until| until < now_ms)
    }
}

/// The same predicate the SQLite `WHERE` clause expresses.
fn matches(filter: &ListFilter, summary: &SagaSummary) -> bool {
    (filter.statuses.is_empty() || filter.statuses.contains(&summary.status))
        && filter.saga_type.as_ref().is_none_or(|t| *t == summary.saga_type)
        && filter.key.as_ref().is_none_or(|k| summary.key.as_ref() == Some(k))
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

    async fn load_many(&self, saga_ids: &[SagaId]) -> Result<Logs, StoreError> {
        let inner = self.lock()?;
        let logs = saga_ids.iter().filter_map(|id| Some((*id, inner.logs.get(id).filter(|log| !log.is_empty())?.clone())));
        Ok(logs.collect())
    }

    async fn logs_in_status(&self, status: Status, after: Option<SagaId>, limit: u32) -> Result<Vec<(SagaId, Vec<Recorded>)>, StoreError> {
        let inner = self.lock()?;
        let rest = match after {
            Some(after) => inner.sagas.range((Bound::Excluded(after), Bound::Unbounded)),
            None => inner.sagas.range(..),
        };
        Ok(rest
            .filter(|(_, summary)| summary.status == status)
            .take(logs_limit(limit) as usize)
            .map(|(id, _)| (*id, inner.logs.get(id).cloned().unwrap_or_default()))
            .collect())
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

    async fn count_by_status(&self, statuses: &[Status]) -> Result<Vec<(Status, u64)>, StoreError> {
        let inner = self.lock()?;
        let count = |status: Status| inner.sagas.values().filter(|summary| summary.status == status).count() as u64;
        Ok(statuses.iter().map(|&status| (status, count(status))).collect())
    }

    async fn record_definition(&self, record: &DefinitionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let key = (record.name.clone(), record.version);
        match inner.definitions.get(&key) {
            None => {
                inner.definitions.insert(key, record.clone());
                Ok(())
            }
            existing => definition_recorded(record, existing),
        }
    }

    async fn load_definition(&self, name: &str, version: u32) -> Result<Option<DefinitionRecord>, StoreError> {
        Ok(self.lock()?.definitions.get(&(name.to_owned(), version)).cloned())
    }

    async fn record_poison(&self, poison: &PoisonRecord) -> Result<(), StoreError> {
        let kept = PoisonRecord { payload: poison_payload(&poison.payload).to_vec(), ..poison.clone() };
        self.lock()?.poison.push(kept);
        Ok(())
    }

    async fn poison_after(&self, after_id: i64, limit: u32) -> Result<Vec<PoisonEntry>, StoreError> {
        let inner = self.lock()?;
        let first = inner.poison_forgotten + 1;
        let skip = usize::try_from(after_id.saturating_sub(first - 1).max(0)).unwrap_or(usize::MAX);
        let kept = inner.poison.iter().enumerate().skip(skip).take(page_limit(limit) as usize);
        Ok(kept.map(|(i, record)| PoisonEntry { id: first + i as i64, record: record.clone() }).collect())
    }

    async fn committed_after(&self, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
        let inner = self.lock()?;
        let first = usize::try_from(after.position.max(0)).unwrap_or(usize::MAX).saturating_add(1);
        let last = inner.order.len();
        // Positions of forgotten sagas are gaps: skip them, do not stop at them.
        Ok((first..=last).filter_map(|position| inner.committed(position)).take(page_limit(limit) as usize).collect())
    }

    async fn relay_checkpoint(&self, relay: &str) -> Result<RelayCursor, StoreError> {
        Ok(self.lock()?.checkpoints.get(relay).copied().unwrap_or_default())
    }

    async fn save_relay_checkpoint(&self, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
        self.lock()?.checkpoints.insert(relay.to_owned(), cursor);
        Ok(())
    }

    async fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
        let mut inner = self.lock()?;
        let mut due: Vec<(i64, SagaId)> = inner
            .sagas
            .values()
            .filter(|summary| inner.is_claimable(summary, now_ms))
            .filter_map(|summary| Some((summary.deadline_ms?, summary.saga_id)))
            .collect();
        due.sort_unstable();
        due.truncate(page_limit(limit) as usize);
        let until = now_ms.saturating_add(lease_ms);
        Ok(due
            .into_iter()
            .map(|(_, saga_id)| {
                inner.claims.insert(saga_id, until);
                saga_id
            })
            .collect())
    }

    async fn heartbeat(&self, engine_id: &str, now_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.engines.insert(engine_id.to_owned(), now_ms);
        inner.engines.retain(|_, heartbeat_ms| *heartbeat_ms >= forget_before_ms);
        Ok(())
    }

    async fn forget_finished(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let mut old: Vec<(i64, SagaId)> = inner
            .sagas
            .values()
            .filter(|s| s.status.is_terminal() && s.updated_at_ms < before_ms)
            .map(|s| (s.updated_at_ms, s.saga_id))
            .collect();
        old.sort_unstable();
        old.truncate(limit as usize);
        for (_, saga_id) in &old {
            inner.sagas.remove(saga_id);
            inner.logs.remove(saga_id);
        }
        Ok(old.len() as u64)
    }

    async fn forget_poison(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let old = inner.poison.iter().take(limit as usize).take_while(|p| p.received_at_ms < before_ms).count();
        inner.poison.drain(..old);
        inner.poison_forgotten += old as i64;
        Ok(old as u64)
    }

    async fn engines_since(&self, since_ms: i64) -> Result<Vec<EngineLease>, StoreError> {
        let inner = self.lock()?;
        let leases = inner.engines.iter().filter(|(_, at)| **at >= since_ms);
        Ok(leases.map(|(engine_id, heartbeat_ms)| EngineLease { engine_id: engine_id.clone(), heartbeat_ms: *heartbeat_ms }).collect())
    }
}
