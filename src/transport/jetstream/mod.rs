//! The production transport: NATS JetStream (server 2.9), and the only
//! module that imports `async_nats`.
//!
//! [`JetStreamTransport::connect`] reaches the broker (bounded retries)
//! and creates or updates the four streams of SPEC §3. Outbound, commands,
//! replies, events and starts are published with a `Nats-Msg-Id` and the
//! publish ack awaited, retrying with the same id so the broker drops the
//! copies. Inbound, durable pull consumers feed the engine
//! ([`inbound`]) and participants ([`participant`]); a message is acked
//! only when its [`Ack`](super::Ack) fires.

mod connect;
mod consumer;
mod follow;
mod inbound;
mod participant;
mod streams;

pub use connect::{NatsConnection, NATS_URL_DEFAULT};
pub use follow::FOLLOW_QUEUE_MAX;
pub use inbound::OrchestratorConsumers;
pub use participant::reply_message_id;
pub use streams::{ConsumerState, StoredMessage, StreamKind, StreamState};

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, Context};
use async_nats::HeaderMap;
use bytes::Bytes;

use super::{EventSink, Transport, TransportError};
use crate::saga::{Command, Recorded, SagaId};
use crate::wire::{self, Subjects};

/// Most messages a consumer hands out before they are acked: bounds the
/// work in flight per consumer (shared by every process on it).
pub const MAX_ACK_PENDING: i64 = 1_024;
/// Deliveries of one message before the broker gives up on it: never
/// (-1). The engine keeps a message it can never use as poison and acks
/// it; every other failure passes (the store or broker was away), so the
/// message must come back until it is processed, however long that takes.
pub const MAX_DELIVER_DEFAULT: i64 = -1;
/// Tries to reach the broker at start-up before giving up.
pub const CONNECT_ATTEMPTS_MAX: u32 = 10;
/// Tries of one publish (same message id) before it is an error.
pub const PUBLISH_ATTEMPTS_MAX: u32 = 5;
/// Most commands waiting for one participant task.
pub const COMMAND_QUEUE_MAX: usize = 1_024;
/// Pause after the n-th failed publish of one message is n times this.
const PUBLISH_RETRY_STEP: Duration = Duration::from_millis(100);
/// Room left for headers (`Nats-Msg-Id`, `traceparent`) when a body is
/// measured against the server's `max_payload`.
pub const HEADER_BYTES_ALLOWANCE: usize = 512;
/// How long a delivered message may stay unacked before redelivery, by
/// default (`serve --ack-wait`); the engine's restart grace uses the same.
pub const ACK_WAIT_DEFAULT: Duration = Duration::from_secs(30);
/// How long a stream keeps a message, by default: a week. A start not
/// consumed within it is dropped by the broker (an orchestrator down for a
/// week has bigger problems); a command or reply that old is long timed out.
pub const STREAM_MAX_AGE_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most bytes one stream keeps, by default (1 GiB). The server reserves
/// it from its JetStream storage for each of the four streams, so one
/// deployment needs 4 GiB of `max_file_store`.
pub const STREAM_MAX_BYTES_DEFAULT: i64 = 1024 * 1024 * 1024;
/// How long the broker remembers a message id, by default.
pub const DUPLICATE_WINDOW_DEFAULT: Duration = Duration::from_secs(120);
/// How long one publish waits for the broker's ack, by default.
pub const PUBLISH_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// How to reach the broker and how to set up streams and consumers.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Where the server is, how to authenticate, TLS.
    pub connection: NatsConnection,
    /// The subject prefix; stream and consumer names derive from it.
    pub prefix: Subjects,
    /// Stream replicas (1 for a single server).
    pub replicas: usize,
    /// How long the broker remembers a `Nats-Msg-Id` to drop duplicates.
    pub duplicate_window: Duration,
    /// How long a delivered message may stay unacked before redelivery.
    pub ack_wait: Duration,
    /// How long a stream keeps a message (the broker drops older ones;
    /// PostgreSQL keeps the saga's log whatever happens here).
    pub stream_max_age: Duration,
    /// Most bytes one stream keeps (oldest messages go first).
    pub stream_max_bytes: i64,
    /// Deliveries of one message before the broker gives up on it.
    pub max_deliver: i64,
    /// Most unacked messages per consumer.
    pub max_ack_pending: i64,
    /// Largest inbound message; a larger one is poison.
    pub message_bytes_max: usize,
    /// How long to wait for one publish ack.
    pub publish_timeout: Duration,
    /// Tries of one publish before it is an error.
    pub publish_attempts_max: u32,
    /// Tries to reach the broker at start-up.
    pub connect_attempts_max: u32,
    /// Prefix of durable consumer names; `None` derives it from `prefix`.
    pub consumer_prefix: Option<String>,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        Self {
            connection: NatsConnection::default(),
            prefix: Subjects::default(),
            replicas: 1,
            duplicate_window: DUPLICATE_WINDOW_DEFAULT,
            ack_wait: ACK_WAIT_DEFAULT,
            stream_max_age: STREAM_MAX_AGE_DEFAULT,
            stream_max_bytes: STREAM_MAX_BYTES_DEFAULT,
            max_deliver: MAX_DELIVER_DEFAULT,
            max_ack_pending: MAX_ACK_PENDING,
            message_bytes_max: wire::MESSAGE_BYTES_MAX,
            publish_timeout: PUBLISH_TIMEOUT_DEFAULT,
            publish_attempts_max: PUBLISH_ATTEMPTS_MAX,
            connect_attempts_max: CONNECT_ATTEMPTS_MAX,
            consumer_prefix: None,
        }
    }
}

impl JetStreamConfig {
    /// The prefix of durable consumer names: `consumer_prefix`, else the
    /// subject prefix with every character that is not a letter, digit,
    /// `_` or `-` replaced by `_` (`t1.saga` → `t1_saga`).
    pub fn consumer_prefix(&self) -> String {
        self.consumer_prefix.clone().unwrap_or_else(|| sanitise(self.prefix.prefix()))
    }
}

/// `text` usable in a stream or consumer name.
fn sanitise(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// The JetStream transport. Cheap to clone; clones share the connection
/// and the count of acknowledgements still on their way.
#[derive(Clone)]
pub struct JetStreamTransport {
    context: Context,
    config: Arc<JetStreamConfig>,
    acks: Arc<AcksInFlight>,
}

/// Acknowledgements fired but not yet confirmed by the broker: a clean
/// shutdown waits for them ([`JetStreamTransport::flush_acks`]), so a
/// message whose events are committed is not delivered again after it.
#[derive(Debug, Default)]
pub(crate) struct AcksInFlight {
    count: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

impl AcksInFlight {
    pub(crate) fn started(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn finished(&self) {
        if self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }
}

impl EventSink for JetStreamTransport {
    async fn publish(&self, saga_type: &str, saga_id: SagaId, seq: u64, body: Vec<u8>) -> Result<(), TransportError> {
        let subject = self.config.prefix.event(saga_type, saga_id);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", wire::event_message_id(saga_id, seq));
        headers.insert("traceparent", wire::traceparent(saga_id, seq));
        self.publish(StreamKind::Events, subject, headers, body).await
    }
}

impl std::fmt::Debug for JetStreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamTransport")
            .field("url", &self.config.connection.redacted_url())
            .field("prefix", &self.config.prefix.prefix())
            .finish()
    }
}

impl JetStreamTransport {
    /// Connects (retrying up to `connect_attempts_max` times, logging each
    /// failure) and creates or updates the four streams.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, TransportError> {
        let transport = Self::attach(config).await?;
        for kind in StreamKind::ALL {
            transport.ensure_stream(kind).await?;
        }
        Ok(transport)
    }

    /// Connects like [`Self::connect`] but leaves the streams as they are:
    /// for read-only tools (`jetsaga sagas tail`), which must not change
    /// the replicas or windows a running orchestrator configured.
    pub async fn attach(config: JetStreamConfig) -> Result<Self, TransportError> {
        let client = connect::connect_with_retry(&config.connection, config.connect_attempts_max).await?;
        let context = jetstream::ContextBuilder::new().timeout(config.publish_timeout).build(client);
        Ok(Self { context, config: Arc::new(config), acks: Arc::default() })
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &JetStreamConfig {
        &self.config
    }

    /// The subjects it publishes and consumes.
    pub fn subjects(&self) -> &Subjects {
        &self.config.prefix
    }

    /// Publishes a committed event on `<prefix>.event.<saga_type>.<saga_id>`
    /// with `Nats-Msg-Id` = `<saga_id>:<seq>`, so a relay that publishes
    /// it again after a crash leaves one copy.
    pub async fn publish_event(&self, saga_type: &str, recorded: &Recorded, saga_id: SagaId) -> Result<(), TransportError> {
        EventSink::publish(self, saga_type, saga_id, recorded.seq, wire::event_body(saga_id, saga_type, recorded)).await
    }

    /// Waits until every acknowledgement fired so far is written to the
    /// broker's socket, at most `max`; says whether they all were.
    pub async fn flush_acks(&self, max: Duration) -> bool {
        let settled = async {
            loop {
                let notified = self.acks.settled.notified();
                if self.acks.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
            self.context.client().flush().await.is_ok()
        };
        tokio::time::timeout(max, settled).await.unwrap_or(false)
    }

    /// The largest message the server takes (its `max_payload`, body and
    /// headers), as it said when this transport connected.
    pub fn payload_max(&self) -> usize {
        self.context.client().server_info().max_payload
    }

    /// Publishes a start request on `<prefix>.start.<saga_type>` (for
    /// clients and tests). A given `saga_id` is also the message id.
    pub async fn publish_start(&self, saga_type: &str, body: &wire::StartBody) -> Result<(), TransportError> {
        let mut headers = HeaderMap::new();
        if let Some(id) = &body.saga_id {
            headers.insert("Nats-Msg-Id", format!("{id}:start"));
        }
        let bytes = serde_json::to_vec(body).map_err(|e| TransportError::Publish(e.to_string()))?;
        self.publish(StreamKind::Start, self.config.prefix.start(saga_type), headers, bytes).await
    }

    /// Publishes `payload` as is on `subject` (tests inject garbage with it).
    pub async fn publish_raw(&self, subject: &str, payload: Vec<u8>) -> Result<(), TransportError> {
        self.publish(StreamKind::Start, subject.to_owned(), HeaderMap::new(), payload).await
    }

    /// Publishes `payload` as is on `subject` with the `Nats-Msg-Id` of
    /// one's choosing: what a hostile publisher can do (tests play one).
    pub async fn publish_raw_with_id(&self, subject: &str, message_id: &str, payload: Vec<u8>) -> Result<(), TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id);
        self.publish(StreamKind::Start, subject.to_owned(), headers, payload).await
    }

    /// Publishes to `kind`'s stream and awaits the broker's ack, retrying
    /// on error or timeout with the same headers (so the same
    /// `Nats-Msg-Id`) up to `publish_attempts_max` times; before a retry the
    /// stream is created again if the broker lost it.
    async fn publish(&self, kind: StreamKind, subject: String, headers: HeaderMap, payload: Vec<u8>) -> Result<(), TransportError> {
        let payload = Bytes::from(payload);
        let attempts_max = self.config.publish_attempts_max.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts_max {
            match self.publish_once(&subject, headers.clone(), payload.clone()).await {
                Ok(()) => return Ok(()),
                Err(PublishFailure::TooLarge) => {
                    let max = self.payload_max().min(self.config.message_bytes_max);
                    return Err(TransportError::TooLarge { bytes: payload.len(), max });
                }
                Err(PublishFailure::Other(error)) => {
                    tracing::warn!(%subject, attempt, attempts_max, %error, "publish failed");
                    last_error = error;
                }
            }
            if attempt < attempts_max {
                tokio::time::sleep(PUBLISH_RETRY_STEP * attempt).await;
                if let Err(error) = self.restore_stream(kind).await {
                    tracing::warn!(%error, "cannot check the stream before publishing again");
                }
            }
        }
        Err(TransportError::Publish(format!("{subject}: {last_error} (after {attempts_max} attempts)")))
    }

    async fn publish_once(&self, subject: &str, headers: HeaderMap, payload: Bytes) -> Result<(), PublishFailure> {
        let ack = self.context.publish_with_headers(subject.to_owned(), headers, payload).await.map_err(|e| match e.kind() {
            jetstream::context::PublishErrorKind::MaxPayloadExceeded => PublishFailure::TooLarge,
            _ => PublishFailure::Other(e.to_string()),
        })?;
        match tokio::time::timeout(self.config.publish_timeout, ack).await {
            Ok(Ok(_ack)) => Ok(()),
            Ok(Err(e)) if over_stream_limit(&e) => Err(PublishFailure::TooLarge),
            Ok(Err(e)) => Err(PublishFailure::Other(e.to_string())),
            Err(_) => Err(PublishFailure::Other(format!("no publish ack within {:?}", self.config.publish_timeout))),
        }
    }
}

/// Whether the stream refused the message for its `max_msg_size`.
fn over_stream_limit(error: &jetstream::context::PublishError) -> bool {
    use std::error::Error as _;
    let code = error.source().and_then(|source| source.downcast_ref::<jetstream::Error>()).map(jetstream::Error::error_code);
    code == Some(jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM)
}

/// Why one publish did not go through.
enum PublishFailure {
    /// Over the server's `max_payload`: it never will.
    TooLarge,
    /// Anything else: worth another try.
    Other(String),
}

impl Transport for JetStreamTransport {
    async fn send(&self, command: &Command) -> Result<(), TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", command.message_id.as_str());
        headers.insert("traceparent", wire::traceparent(command.saga_id, span_id(&command.message_id)));
        self.publish(StreamKind::Commands, self.config.prefix.command(command), headers, wire::command_body(command)).await
    }

    fn message_bytes_max(&self) -> Option<usize> {
        // The server's max_payload and the streams' max_msg_size both bound a message.
        Some(self.payload_max().min(self.config.message_bytes_max).saturating_sub(HEADER_BYTES_ALLOWANCE))
    }
}

/// A span id per attempt: FNV-1a of the message id
/// (`<saga_id>:<step>:<kind>:<attempt>`), so a re-send of one attempt
/// carries the same span and every attempt its own.
fn span_id(message_id: &str) -> u64 {
    message_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
