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

use crate::store::{CommittedEvent, EventStore, RelayCursor, StoreError};
use crate::transport::{EventSink, TransportError};
use crate::wire;

/// Events read from the store per round.
pub const RELAY_BATCH_MAX: u32 = 256;
/// Pause when there is nothing to publish.
pub const RELAY_IDLE_MS: u64 = 50;
/// First pause after a failure; it doubles up to [`RELAY_RETRY_MAX_MS`].
pub const RELAY_RETRY_FIRST_MS: u64 = 50;
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
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut pause = RELAY_RETRY_FIRST_MS;
    let mut cursor: Option<RelayCursor> = None;
    loop {
        let round = tokio::select! {
            () = &mut shutdown => return,
            round = relay_round(&store, &sink, name, &mut cursor, &status) => round,
        };
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
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
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

/// Reads the checkpoint (once), then one batch: publish each event, save
/// the checkpoint. A failure leaves `cursor` after the last event published.
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
    let mut published = after;
    for (i, event) in events.iter().enumerate() {
        if let Err(error) = publish(sink, event, status).await {
            if published != after {
                store.save_relay_checkpoint(name, published).await?;
                *cursor = Some(published);
            }
            return Err(error);
        }
        published = event.cursor;
        if i == events.len() / 2 {
            crate::crash_point!("relay-mid-batch");
        }
        let next = events.get(i + 1).map_or(0, |e| e.recorded.at_ms.max(1));
        status.oldest_pending_ms.store(next, Ordering::Relaxed);
    }
    crate::crash_point!("relay-after-publish-before-checkpoint");
    store.save_relay_checkpoint(name, published).await?;
    *cursor = Some(published);
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
