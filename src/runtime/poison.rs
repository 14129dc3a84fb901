//! Keeps poison messages for operators: the transport hands over what it
//! cannot parse, this writes it to the store and counts it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Metrics;
use crate::store::{EventStore, PoisonRecord, POISON_PAYLOAD_BYTES_MAX};
use crate::transport::PoisonSink;

/// A [`PoisonSink`] that records into an [`EventStore`].
#[derive(Debug, Clone)]
pub struct StorePoison<S> {
    store: S,
    metrics: Arc<Metrics>,
}

impl<S> StorePoison<S> {
    /// A sink writing to `store`, counting in `metrics`.
    pub fn new(store: S, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }
}

impl<S: EventStore> PoisonSink for StorePoison<S> {
    async fn poison(&self, subject: &str, reason: &str, payload: &[u8]) {
        self.metrics.poison.fetch_add(1, Ordering::Relaxed);
        let received_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let payload = payload[..payload.len().min(POISON_PAYLOAD_BYTES_MAX)].to_vec();
        let record = PoisonRecord { subject: subject.to_owned(), reason: reason.to_owned(), payload, received_at_ms };
        if let Err(error) = self.store.record_poison(&record).await {
            tracing::warn!(%error, %subject, "poison message not kept");
        }
    }
}
