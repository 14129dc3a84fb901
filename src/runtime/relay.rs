//! The event relay: publishes every committed event, in commit order,
//! from a checkpoint persisted in the store.
//!
//! After a crash the relay starts again from its checkpoint, so an event
//! may be published twice but never skipped; the broker drops the
//! duplicate by its message id (`<saga_id>:<seq>`). Several relays under
//! one name (one per `serve` process) are safe for the same reason.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Clock;
use crate::store::{EventStore, StoreError};
use crate::transport::EventSink;

/// Events read from the store per round.
pub const RELAY_BATCH_MAX: u32 = 256;
/// Pause when there is nothing to publish.
pub const RELAY_IDLE_MS: u64 = 50;
/// First pause after a failed publish; it doubles up to [`RELAY_RETRY_MAX_MS`].
pub const RELAY_RETRY_FIRST_MS: u64 = 50;
/// Longest pause between two publish attempts of one event.
pub const RELAY_RETRY_MAX_MS: u64 = 2_000;

/// How far behind the relay is: ms between an event's decision and its publication.
#[derive(Debug, Default)]
pub struct RelayLag(AtomicI64);

impl RelayLag {
    /// The lag of the last event published.
    pub fn ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs the relay named `name` until `shutdown` resolves.
pub async fn run<S: EventStore, K: EventSink>(
    store: S,
    sink: K,
    name: &str,
    lag: Arc<RelayLag>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StoreError> {
    tokio::pin!(shutdown);
    let mut cursor = store.relay_checkpoint(name).await?;
    loop {
        let events = tokio::select! {
            () = &mut shutdown => return Ok(()),
            events = store.committed_after(cursor, RELAY_BATCH_MAX) => events?,
        };
        if events.is_empty() {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(RELAY_IDLE_MS)) => continue,
            }
        }
        for event in &events {
            let mut pause = RELAY_RETRY_FIRST_MS;
            while let Err(error) = sink.publish(&event.saga_type, event.saga_id, &event.recorded).await {
                tracing::warn!(%error, saga_id = %event.saga_id, seq = event.recorded.seq, "event not published; retrying");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(pause)) => {}
                }
                pause = (pause * 2).min(RELAY_RETRY_MAX_MS);
            }
            lag.0.store(clock.now_ms() - event.recorded.at_ms, Ordering::Relaxed);
            cursor = event.cursor;
        }
        store.save_relay_checkpoint(name, cursor).await?;
    }
}
