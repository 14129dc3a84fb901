//! Following committed events live (for `jetsaga sagas tail`): an
//! ephemeral ordered consumer on the events stream that starts at the
//! next message, so a follower sees new events only and leaves nothing
//! behind on the broker when it goes.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{JetStreamTransport, StreamKind};
use crate::transport::TransportError;

/// Most event bodies waiting for the follower to take them.
pub const FOLLOW_QUEUE_MAX: usize = 1_024;
/// Pause after a consumer error before reading on (the ordered consumer
/// re-creates itself in the meantime).
const FOLLOW_ERROR_DELAY: Duration = Duration::from_millis(250);

impl JetStreamTransport {
    /// Event bodies published from now on whose subject matches `filter`
    /// (e.g. `saga.event.trip.*`), in stream order. The consumer exists
    /// on the broker when this returns, so nothing published afterwards
    /// is missed. The channel closes if the connection's stream ends.
    pub async fn follow_events(&self, filter: &str) -> Result<mpsc::Receiver<Vec<u8>>, TransportError> {
        let name = self.stream_name(StreamKind::Events);
        let setup = |e: &dyn std::fmt::Display| TransportError::Setup(format!("following {filter} on {name}: {e}"));
        let stream = self.context.get_stream(&name).await.map_err(|e| setup(&e))?;
        let config = OrderedConfig { filter_subject: filter.to_owned(), deliver_policy: DeliverPolicy::New, ..OrderedConfig::default() };
        let consumer = stream.create_consumer(config).await.map_err(|e| setup(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| setup(&e))?;
        let (tx, rx) = mpsc::channel(FOLLOW_QUEUE_MAX);
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(message) => {
                        if tx.send(message.payload.to_vec()).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "following events");
                        tokio::time::sleep(FOLLOW_ERROR_DELAY).await;
                    }
                }
            }
        });
        Ok(rx)
    }
}
