//! The event relay: publishes every committed event, in commit order,
//! from a checkpoint persisted in the store.
//!
//! After a crash the relay starts again from its checkpoint, so an event
//! may be published twice but never skipped; the broker drops the
//! duplicate by its message id (`<saga_id>:<seq>`). Several relays under
//! one name (one per `serve` process) are safe for the same reason.
//!
//! The relay never gives up while the process runs: a store or broker
//! failure is logged, shown in [`RelayStatus`] (so `/readyz` and
//! `/metrics` tell), and retried after a pause that doubles up to
//! [`RELAY_RETRY_MAX_MS`]. An event the broker can never take (over its
//! `max_payload`) is published as a stub that says so, never retried
//! forever: one event must not hold back every later one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt as _};

use super::Clock;
use crate::store::{CommittedEvent, EventStore, RelayCursor, StoreError};
use crate::transport::{EventSink, TransportError};
use crate::wire;

/// Events read from the store per round.
pub const RELAY_BATCH_MAX: u32 = 1_024;
/// Pause when there is nothing to publish.
pub const RELAY_IDLE_MS: u64 = 50;
/// First pause after a failure; it doubles up to [`RELAY_RETRY_MAX_MS`].
pub const RELAY_RETRY_FIRST_MS: u64 = 50;
/// Longest time the relay's saved checkpoint lags behind what it published.
pub const RELAY_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Longest pause between two tries.
pub const RELAY_RETRY_MAX_MS: u64 = 2_000;

/// How the relay is doing, shared with the ops API.
#[derive(Debug, Default)]
pub struct RelayStatus {
    /// `at_ms` of the oldest committed event not yet published (0: none known).
    oldest_pending_ms: AtomicI64,
    /// Whether the last try failed (store or broker).
    failing: AtomicBool,
    /// Events published so far (stubs included).
    published: AtomicU64,
    /// Events too large for the broker, published as stubs.
    omitted: AtomicU64,
}

impl RelayStatus {
    /// How far behind the relay is at `now_ms`: the age of the oldest
    /// committed event it has read and not yet published (0 when caught
    /// up). It keeps growing while the relay is stuck.
    pub fn lag_ms(&self, now_ms: i64) -> i64 {
        match self.oldest_pending_ms.load(Ordering::Relaxed) {
            0 => 0,
            at_ms => (now_ms - at_ms).max(0),
        }
    }

    /// Whether the relay's last try failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Events published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Events published as stubs because the broker could not take them.
    pub fn omitted(&self) -> u64 {
        self.omitted.load(Ordering::Relaxed)
    }
}

/// Runs the relay named `name` until `shutdown` resolves; it returns only then.
pub async fn run<S: EventStore, K: EventSink>(
    store: S,
    sink: K,
    name: &str,
    status: Arc<RelayStatus>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut pause = RELAY_RETRY_FIRST_MS;
    let mut cursor: Option<RelayCursor> = None;
    let mut checkpoint = Checkpoint::new(clock);
    loop {
        let round = tokio::select! {
            () = &mut shutdown => break,
            round = relay_round(&store, &sink, name, &mut cursor, &status) => round,
        };
        if let Err(error) = checkpoint.save_if_due(&store, name, cursor, false).await {
            tracing::warn!(%error, "event relay: cannot save its checkpoint; trying again later");
        }
        let wait = match round {
            Ok(Round::Published) => {
                pause = RELAY_RETRY_FIRST_MS;
                continue;
            }
            Ok(Round::Idle) => {
                pause = RELAY_RETRY_FIRST_MS;
                RELAY_IDLE_MS
            }
            Err(error) => {
                status.failing.store(true, Ordering::Relaxed);
                tracing::warn!(%error, pause_ms = pause, "event relay: trying again");
                let wait = pause;
                pause = (pause * 2).min(RELAY_RETRY_MAX_MS);
                wait
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
    if let Err(error) = checkpoint.save_if_due(&store, name, cursor, true).await {
        tracing::warn!(%error, "event relay: cannot save its checkpoint on the way out; the next start publishes some events again");
    }
}

/// The checkpoint as the store holds it. It is saved at most every
/// [`RELAY_CHECKPOINT_EVERY`] (and on the way out), not after every
/// round: each save is a commit, which would contend with the engine's
/// group commits for the disk once a step. After a crash the relay
/// publishes again what it had published since the last save, which the
/// broker drops as duplicates (their message ids).
#[derive(Debug)]
struct Checkpoint {
    clock: Clock,
    saved: Option<RelayCursor>,
    saved_at: Option<tokio::time::Instant>,
}

impl Checkpoint {
    /// Nothing saved yet: the first position is saved at once.
    fn new(clock: Clock) -> Self {
        Self { clock, saved: None, saved_at: None }
    }

    /// Saves `cursor` if it moved and the last save is old enough (or `now`).
    async fn save_if_due<S: EventStore>(
        &mut self,
        store: &S,
        name: &str,
        cursor: Option<RelayCursor>,
        now: bool,
    ) -> Result<(), StoreError> {
        let Some(cursor) = cursor else { return Ok(()) };
        let due = now || self.saved_at.is_none_or(|at| self.clock.instant().duration_since(at) >= RELAY_CHECKPOINT_EVERY);
        if self.saved != Some(cursor) && due {
            store.save_relay_checkpoint(name, cursor).await?;
            self.saved = Some(cursor);
            self.saved_at = Some(self.clock.instant());
        }
        Ok(())
    }
}

/// What one round did.
enum Round {
    /// Published events; look for more at once.
    Published,
    /// Nothing to publish.
    Idle,
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("saga {saga_id} seq {seq}: {source}")]
    Publish { saga_id: crate::saga::SagaId, seq: u64, source: TransportError },
}

/// Reads the checkpoint (once), then one batch: publish its events with
/// their acks outstanding. `cursor` moves past the unbroken run of events
/// published from the start of the batch; a failure leaves it before the
/// first that failed (later ones may be published again: the broker drops
/// the duplicates). Saving it is [`Checkpoint`]'s.
async fn relay_round<S: EventStore, K: EventSink>(
    store: &S,
    sink: &K,
    name: &str,
    cursor: &mut Option<RelayCursor>,
    status: &RelayStatus,
) -> Result<Round, RelayError> {
    let after = match *cursor {
        Some(after) => after,
        None => *cursor.insert(store.relay_checkpoint(name).await?),
    };
    let events = store.committed_after(after, RELAY_BATCH_MAX).await?;
    let Some(first) = events.first() else {
        status.oldest_pending_ms.store(0, Ordering::Relaxed);
        status.failing.store(false, Ordering::Relaxed);
        return Ok(Round::Idle);
    };
    status.oldest_pending_ms.store(first.recorded.at_ms.max(1), Ordering::Relaxed);
    // Every event of the batch is published at once, their acks awaited
    // together; the results come back in commit order.
    let mut results: FuturesOrdered<_> = events.iter().map(|event| publish(sink, event, status)).collect();
    let mut i = 0;
    while let Some(result) = results.next().await {
        result?;
        *cursor = Some(events[i].cursor);
        if i == events.len() / 2 {
            crate::crash_point!("relay-mid-batch");
        }
        i += 1;
        let next = events.get(i).map_or(0, |e| e.recorded.at_ms.max(1));
        status.oldest_pending_ms.store(next, Ordering::Relaxed);
    }
    crate::crash_point!("relay-after-publish-before-checkpoint");
    status.failing.store(false, Ordering::Relaxed);
    Ok(Round::Published)
}

/// Publishes one event, or its stub when the broker can never take it.
async fn publish<K: EventSink>(sink: &K, event: &CommittedEvent, status: &RelayStatus) -> Result<(), RelayError> {
    let (saga_id, seq) = (event.saga_id, event.recorded.seq);
    let body = wire::event_body(saga_id, &event.saga_type, &event.recorded);
    let result = match sink.publish(&event.saga_type, saga_id, seq, body).await {
        Err(TransportError::TooLarge { bytes, max }) => {
            tracing::error!(%saga_id, seq, bytes, max, "event too large for the broker; published as a stub (read it from GET /sagas/{{id}})");
            status.omitted.fetch_add(1, Ordering::Relaxed);
            let stub = wire::omitted_event_body(saga_id, &event.saga_type, &event.recorded, bytes, max);
            sink.publish(&event.saga_type, saga_id, seq, stub).await
        }
        other => other,
    };
    result.map_err(|source| RelayError::Publish { saga_id, seq, source })?;
    status.published.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use super::*;
    use crate::saga::{Recorded, SagaEvent, SagaId, Status};
    use crate::store::{Append, MemoryStore, SagaSummary};

    /// A sink whose publishes take a while, that counts how many are in
    /// flight at once and refuses the events of `refused` seqs.
    #[derive(Default)]
    struct SlowSink {
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        refused: Vec<u64>,
        published: Mutex<Vec<u64>>,
    }

    impl EventSink for Arc<SlowSink> {
        async fn publish(&self, _saga_type: &str, _saga_id: SagaId, seq: u64, _body: Vec<u8>) -> Result<(), TransportError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.refused.contains(&seq) {
                return Err(TransportError::Publish(format!("seq {seq} refused")));
            }
            self.published.lock().unwrap().push(seq);
            Ok(())
        }
    }

    /// One saga with `count` events.
    async fn store_with(count: u64) -> MemoryStore {
        let store = MemoryStore::new();
        let saga_id = SagaId::from_u128(1);
        let events = (1..=count)
            .map(|seq| Recorded { seq, at_ms: 1, event: SagaEvent::InputIgnored { input: format!("in {seq}"), reason: "test".into() } })
            .collect();
        let summary = SagaSummary {
            saga_id,
            saga_type: "trip".into(),
            version: 1,
            status: Status::Running,
            current_step: None,
            started_at_ms: 1,
            updated_at_ms: 1,
            last_seq: count,
            deadline_ms: None,
            key: None,
        };
        store.append(&[Append { saga_id, expected_seq: 0, events, summary }]).await.expect("append");
        store
    }

    #[tokio::test]
    async fn a_batch_is_published_with_its_acks_outstanding_and_checkpointed_once() {
        let store = store_with(20).await;
        let sink = Arc::new(SlowSink::default());
        let (status, mut cursor) = (RelayStatus::default(), None);
        let mut checkpoint = Checkpoint::new(Clock::system());
        checkpoint.save_if_due(&store, "r", Some(store.relay_checkpoint("r").await.unwrap()), false).await.unwrap();
        let round = relay_round(&store, &sink, "r", &mut cursor, &status).await.expect("a round");
        assert!(matches!(round, Round::Published));
        assert_eq!(*sink.published.lock().unwrap(), (1..=20).collect::<Vec<_>>(), "every event, in commit order");
        assert!(sink.most_in_flight.load(Ordering::SeqCst) > 1, "publishes overlap instead of awaiting each ack");
        checkpoint.save_if_due(&store, "r", cursor, false).await.unwrap();
        assert_ne!(Some(store.relay_checkpoint("r").await.unwrap()), cursor, "not saved again so soon after the last save");
        checkpoint.save_if_due(&store, "r", cursor, true).await.unwrap();
        let saved = store.relay_checkpoint("r").await.unwrap();
        assert_eq!(Some(saved), cursor);
        assert!(store.committed_after(saved, 100).await.unwrap().is_empty(), "the checkpoint is past the whole batch");
        assert_eq!(status.lag_ms(10), 0);
    }

    #[tokio::test]
    async fn a_failed_publish_checkpoints_only_the_unbroken_run_before_it() {
        let store = store_with(10).await;
        let sink = Arc::new(SlowSink { refused: vec![4], ..SlowSink::default() });
        let (status, mut cursor) = (RelayStatus::default(), None);
        let failed = relay_round(&store, &sink, "r", &mut cursor, &status).await;
        assert!(failed.is_err());
        Checkpoint::new(Clock::system()).save_if_due(&store, "r", cursor, true).await.unwrap();
        let saved = store.relay_checkpoint("r").await.unwrap();
        let left: Vec<u64> = store.committed_after(saved, 100).await.unwrap().iter().map(|e| e.recorded.seq).collect();
        assert_eq!(left, (4..=10).collect::<Vec<_>>(), "events 1-3 are checkpointed, 4 and after published again");
        assert!(status.lag_ms(10) > 0, "the relay is behind while event 4 waits");
    }
}
