//! A durable pull consumer that keeps going: [`Pull::next`] hands out
//! the next message, reopening the message stream (and re-creating the
//! consumer) when the broker drops it, so callers see messages and never
//! errors.
//!
//! Every process that opens the same durable name shares its messages:
//! each message goes to one of them, and back to any of them when it is
//! not acked within `ack_wait`.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::Message;
use futures_util::StreamExt;

use super::{JetStreamTransport, StreamKind};
use crate::transport::TransportError;

/// Pause after a broken message stream before reopening it.
const REOPEN_DELAY: Duration = Duration::from_millis(500);
/// How long one pull request waits for messages before the next.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// How often the server says it is still there during a pull: two missed
/// heartbeats and the consumer is opened again (a lost consumer or stream,
/// a restarted server are noticed within seconds, not half a minute).
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

/// One durable pull consumer and its open message stream.
pub(super) struct Pull {
    transport: JetStreamTransport,
    kind: StreamKind,
    config: pull::Config,
    messages: Option<pull::Stream>,
}

impl Pull {
    /// Creates (or updates) the durable consumer `durable` on `kind`'s
    /// stream with one filter subject, explicit acks and the configured
    /// limits, and opens its message stream.
    pub(super) async fn open(
        transport: &JetStreamTransport,
        kind: StreamKind,
        durable: String,
        filter_subject: String,
    ) -> Result<Self, TransportError> {
        let settings = transport.config();
        let config = pull::Config {
            durable_name: Some(durable),
            filter_subject,
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: settings.ack_wait,
            max_deliver: settings.max_deliver,
            max_ack_pending: settings.max_ack_pending,
            ..pull::Config::default()
        };
        let mut pull = Self { transport: transport.clone(), kind, config, messages: None };
        pull.messages = Some(pull.stream().await?);
        Ok(pull)
    }

    async fn stream(&self) -> Result<pull::Stream, TransportError> {
        // The broker may have lost the stream (a restart without its data,
        // an operator's mistake): create it again before the consumer.
        self.transport.restore_stream(self.kind).await?;
        let name = self.transport.stream_name(self.kind);
        let durable = self.config.durable_name.clone().unwrap_or_default();
        let setup = |e: &dyn std::fmt::Display| TransportError::Setup(format!("consumer {durable} on {name}: {e}"));
        let stream = self.transport.context.get_stream(&name).await.map_err(|e| setup(&e))?;
        let consumer: PullConsumer = stream.create_consumer(self.config.clone()).await.map_err(|e| setup(&e))?;
        consumer.stream().expires(PULL_EXPIRES).heartbeat(PULL_HEARTBEAT).messages().await.map_err(|e| setup(&e))
    }

    /// The consumer's durable name.
    pub(super) fn durable(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }

    /// The next message; waits (logging) through broker trouble.
    pub(super) async fn next(&mut self) -> Message {
        loop {
            let messages = match self.messages.as_mut() {
                Some(messages) => messages,
                None => match self.stream().await {
                    Ok(messages) => self.messages.insert(messages),
                    Err(error) => {
                        tracing::warn!(consumer = self.durable(), %error, "cannot reopen consumer; retrying");
                        tokio::time::sleep(REOPEN_DELAY).await;
                        continue;
                    }
                },
            };
            match messages.next().await {
                Some(Ok(message)) => return message,
                Some(Err(error)) => {
                    tracing::warn!(consumer = self.durable(), %error, "consumer error");
                    if matches!(error.kind(), MessagesErrorKind::ConsumerDeleted | MessagesErrorKind::MissingHeartbeat) {
                        self.messages = None;
                    }
                    tokio::time::sleep(REOPEN_DELAY).await;
                }
                None => {
                    self.messages = None;
                    tokio::time::sleep(REOPEN_DELAY).await;
                }
            }
        }
    }
}
