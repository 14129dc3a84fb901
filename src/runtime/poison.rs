//! Keeps poison messages for operators: the one path by which anything
//! the engine cannot use (a message the transport cannot parse, a start
//! for an unknown saga type, a reply for a saga that has no log) is
//! written to the store, counted once and logged once.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Clock, Metrics};
use crate::store::{EventStore, PoisonRecord, POISON_PAYLOAD_BYTES_MAX};
use crate::transport::PoisonSink;

/// Longest reason (and subject) kept with a poison record; a reason may
/// quote what it refuses, and the rest is cut off.
pub const POISON_REASON_BYTES_MAX: usize = 1024;

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Records poison into an [`EventStore`]; also the transport's [`PoisonSink`].
#[derive(Debug, Clone)]
pub struct StorePoison<S> {
    store: S,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl<S: EventStore> StorePoison<S> {
    /// A sink writing to `store`, counting in `metrics`, dating by `clock`.
    pub fn new(store: S, metrics: Arc<Metrics>, clock: Clock) -> Self {
        Self { store, metrics, clock }
    }

    /// Keeps one poison message (its payload cut at
    /// [`POISON_PAYLOAD_BYTES_MAX`]); a store failure is logged, not
    /// returned: the message is acknowledged either way, so it never
    /// blocks its consumer.
    pub async fn keep(&self, subject: &str, reason: &str, payload: &[u8]) {
        let reason = cut(reason, POISON_REASON_BYTES_MAX);
        tracing::warn!(%subject, %reason, bytes = payload.len(), "poison message");
        self.metrics.poison.fetch_add(1, Ordering::Relaxed);
        let payload = payload[..payload.len().min(POISON_PAYLOAD_BYTES_MAX)].to_vec();
        let subject = cut(subject, POISON_REASON_BYTES_MAX);
        let record = PoisonRecord { subject: subject.to_owned(), reason: reason.to_owned(), payload, received_at_ms: self.clock.now_ms() };
        if let Err(error) = self.store.record_poison(&record).await {
            tracing::warn!(%error, %subject, "poison message not kept");
        }
    }
}

impl<S: EventStore> PoisonSink for StorePoison<S> {
    async fn poison(&self, subject: &str, reason: &str, payload: &[u8]) {
        self.keep(subject, reason, payload).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        assert_eq!(cut("short", POISON_REASON_BYTES_MAX), "short");
        let long = "é".repeat(POISON_REASON_BYTES_MAX);
        let kept = cut(&long, POISON_REASON_BYTES_MAX);
        assert_eq!(kept.len(), POISON_REASON_BYTES_MAX);
        assert_eq!(cut("aé", 2), "a", "never half a character");
    }
}
