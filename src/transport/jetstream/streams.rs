//! The four streams of SPEC §3: their names, their set-up, and read-only
//! views of them for operators and tests.
//!
//! Names derive from the subject prefix so several deployments (or
//! tests) share a broker: prefix `saga` gives exactly `SAGA_START`,
//! `SAGA_COMMANDS`, `SAGA_REPLIES`, `SAGA_EVENTS`; prefix `t_42.saga`
//! gives `T_42_SAGA_START` and so on.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, StorageType};

use super::{sanitise, JetStreamTransport};
use crate::transport::TransportError;

/// One of the four streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `<prefix>.start.>`: start requests from clients.
    Start,
    /// `<prefix>.cmd.>`: commands to participants.
    Commands,
    /// `<prefix>.reply.>`: participants' replies.
    Replies,
    /// `<prefix>.event.>`: committed events.
    Events,
}

impl StreamKind {
    /// All four, in set-up order.
    pub const ALL: [StreamKind; 4] = [StreamKind::Start, StreamKind::Commands, StreamKind::Replies, StreamKind::Events];

    /// The subject token after the prefix (`start`, `cmd`, `reply`, `event`).
    pub fn token(self) -> &'static str {
        match self {
            StreamKind::Start => "start",
            StreamKind::Commands => "cmd",
            StreamKind::Replies => "reply",
            StreamKind::Events => "event",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            StreamKind::Start => "START",
            StreamKind::Commands => "COMMANDS",
            StreamKind::Replies => "REPLIES",
            StreamKind::Events => "EVENTS",
        }
    }

    /// The stream's name under `prefix`: `<PREFIX>_<KIND>`, the prefix
    /// upper-cased with `.` and other odd characters turned into `_`.
    pub fn stream_name(self, prefix: &str) -> String {
        format!("{}_{}", sanitise(prefix).to_ascii_uppercase(), self.suffix())
    }
}

/// What a stream looks like on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Its name.
    pub name: String,
    /// The subjects it captures.
    pub subjects: Vec<String>,
    /// File storage (else memory).
    pub file_storage: bool,
    /// Replicas.
    pub replicas: usize,
    /// The de-duplication window.
    pub duplicate_window: Duration,
    /// Messages stored.
    pub messages: u64,
    /// How long a message is kept.
    pub max_age: Duration,
    /// Most bytes kept.
    pub max_bytes: i64,
    /// Largest message taken.
    pub max_message_size: i32,
}

/// What a durable consumer looks like on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// Its durable name.
    pub name: String,
    /// Deliveries of one message before the broker gives up (-1: never).
    pub max_deliver: i64,
    /// Messages delivered and not yet acknowledged.
    pub ack_pending: usize,
    /// Messages not yet delivered.
    pub pending: u64,
}

/// One message as the stream stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Where it was published.
    pub subject: String,
    /// Its position in the stream.
    pub sequence: u64,
    /// Its `Nats-Msg-Id` header.
    pub message_id: Option<String>,
    /// Its `traceparent` header.
    pub traceparent: Option<String>,
    /// The body.
    pub payload: Vec<u8>,
}

impl JetStreamTransport {
    /// The name of `kind`'s stream under this transport's prefix.
    pub fn stream_name(&self, kind: StreamKind) -> String {
        kind.stream_name(self.config.prefix.prefix())
    }

    /// Creates `kind`'s stream, or updates it to the configuration (a
    /// second orchestrator, or a restart, changes nothing).
    pub(super) async fn ensure_stream(&self, kind: StreamKind) -> Result<(), TransportError> {
        let config = self.stream_config(kind);
        let name = config.name.clone();
        self.context.create_or_update_stream(config).await.map_err(|e| TransportError::Setup(format!("stream {name}: {e}")))?;
        Ok(())
    }

    /// Creates `kind`'s stream if the broker lost it, leaving an existing
    /// one as it is (its operator may have tuned it).
    pub(crate) async fn restore_stream(&self, kind: StreamKind) -> Result<(), TransportError> {
        let config = self.stream_config(kind);
        let name = config.name.clone();
        self.context.get_or_create_stream(config).await.map_err(|e| TransportError::Setup(format!("stream {name}: {e}")))?;
        Ok(())
    }

    fn stream_config(&self, kind: StreamKind) -> Config {
        Config {
            name: self.stream_name(kind),
            subjects: vec![self.config.prefix.all(kind.token())],
            storage: StorageType::File,
            num_replicas: self.config.replicas,
            duplicate_window: self.config.duplicate_window,
            max_age: self.config.stream_max_age,
            max_bytes: self.config.stream_max_bytes,
            // No larger than the server takes at all (its max_payload).
            max_message_size: i32::try_from(self.config.message_bytes_max.min(self.payload_max())).unwrap_or(i32::MAX),
            ..Config::default()
        }
    }

    /// How `kind`'s stream looks on the broker.
    pub async fn stream_state(&self, kind: StreamKind) -> Result<StreamState, TransportError> {
        let name = self.stream_name(kind);
        let stream = self.context.get_stream(&name).await.map_err(|e| TransportError::Setup(format!("stream {name}: {e}")))?;
        let info = stream.get_info().await.map_err(|e| TransportError::Setup(format!("stream {name}: {e}")))?;
        Ok(StreamState {
            name,
            subjects: info.config.subjects,
            file_storage: info.config.storage == StorageType::File,
            replicas: info.config.num_replicas,
            duplicate_window: info.config.duplicate_window,
            messages: info.state.messages,
            max_age: info.config.max_age,
            max_bytes: info.config.max_bytes,
            max_message_size: info.config.max_message_size,
        })
    }

    /// How the durable consumer `durable` on `kind`'s stream looks.
    pub async fn consumer_state(&self, kind: StreamKind, durable: &str) -> Result<ConsumerState, TransportError> {
        let name = self.stream_name(kind);
        let setup = |e: &dyn std::fmt::Display| TransportError::Setup(format!("consumer {durable} on {name}: {e}"));
        let stream = self.context.get_stream(&name).await.map_err(|e| setup(&e))?;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream.get_consumer(durable).await.map_err(|e| setup(&e))?;
        let info = consumer.info().await.map_err(|e| setup(&e))?;
        Ok(ConsumerState {
            name: durable.to_owned(),
            max_deliver: info.config.max_deliver,
            ack_pending: info.num_ack_pending,
            pending: info.num_pending,
        })
    }

    /// Every message stored in `kind`'s stream, oldest first (for
    /// operators and tests; reads one message per request).
    pub async fn stored_messages(&self, kind: StreamKind) -> Result<Vec<StoredMessage>, TransportError> {
        let name = self.stream_name(kind);
        let setup = |e: &dyn std::fmt::Display| TransportError::Setup(format!("stream {name}: {e}"));
        let stream = self.context.get_stream(&name).await.map_err(|e| setup(&e))?;
        let info = stream.get_info().await.map_err(|e| setup(&e))?;
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return Ok(out);
        }
        for sequence in info.state.first_sequence..=info.state.last_sequence {
            // A deleted sequence is a gap, not an error worth stopping for.
            let Ok(message) = stream.get_raw_message(sequence).await else { continue };
            let header = |key: &str| message.headers.get(key).map(|v| v.as_str().to_owned());
            out.push(StoredMessage {
                subject: message.subject.to_string(),
                sequence: message.sequence,
                message_id: header("Nats-Msg-Id"),
                traceparent: header("traceparent"),
                payload: message.payload.to_vec(),
            });
        }
        Ok(out)
    }

    /// Deletes the four streams and their consumers (tests clean up with it).
    pub async fn delete_streams(&self) -> Result<(), TransportError> {
        let mut failures = Vec::new();
        for kind in StreamKind::ALL {
            let name = self.stream_name(kind);
            if let Err(e) = self.context.delete_stream(&name).await {
                failures.push(format!("{name}: {e}"));
            }
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(TransportError::Setup(failures.join("; "))),
        }
    }
}
