//! The transport port: how commands leave and replies and starts arrive.
//!
//! Outbound, a [`Transport`] publishes a [`Command`]. Inbound, every
//! adapter feeds one bounded channel of [`Delivery`]s that the engine
//! drains; each carries an [`Ack`] the engine fires only after the events
//! the message caused are committed, so a crash before the commit means a
//! redelivery, never a loss. An [`EventSink`] carries committed events
//! out (the relay), a [`PoisonSink`] keeps what cannot be parsed, and a
//! [`ParticipantTransport`] is the participants' side.
//!
//! Adapters: [`MemoryTransport`] (in-process), [`JetStreamTransport`]
//! (NATS JetStream), and [`AnyTransport`], either one chosen at run time.

mod any;
pub mod jetstream;
pub mod memory;

pub use any::AnyTransport;
pub use jetstream::{JetStreamConfig, JetStreamTransport};
pub use memory::MemoryTransport;

use std::fmt;
use std::future::Future;

use serde_json::Value;

use crate::saga::{Command, Reply, SagaId};

/// A message for the orchestrator.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A client asks to start a saga (`saga.start.<saga_type>`).
    Start {
        /// The saga type from the subject.
        saga_type: String,
        /// The client's id for the saga (idempotent start), if any.
        saga_id: Option<SagaId>,
        /// The input passed to every command.
        input: Value,
        /// The business key (SPEC §7), if any.
        key: Option<String>,
        /// The definition version asked for (default: the highest loaded).
        version: Option<u32>,
    },
    /// A participant's reply (`saga.reply.<participant>`).
    Reply {
        /// The saga it is for.
        saga_id: SagaId,
        /// The reply.
        reply: Reply,
    },
}

/// Acknowledges an inbound message to its source. Dropping it without
/// [`Ack::ack`] leaves the message to be redelivered.
pub struct Ack(Option<Box<dyn FnOnce() + Send>>);

impl Ack {
    /// An ack that does something when fired.
    pub fn new(ack: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(ack)))
    }

    /// An ack for a source that needs none.
    pub fn none() -> Self {
        Self(None)
    }

    /// Tells the source the message is done with.
    pub fn ack(mut self) {
        if let Some(ack) = self.0.take() {
            ack();
        }
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Ack(pending)" } else { "Ack(none)" })
    }
}

/// An inbound message and its acknowledgement.
#[derive(Debug)]
pub struct Delivery {
    /// What arrived.
    pub message: Inbound,
    /// Fired once the message's events are committed.
    pub ack: Ack,
}

/// A transport failure. The engine logs it and relies on the step's
/// timeout: a command that did not go out becomes a retry.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The message could not be published.
    #[error("transport: publish failed: {0}")]
    Publish(String),
    /// The broker could not be reached (or refused the credentials).
    #[error("transport: cannot connect: {0}")]
    Connect(String),
    /// A stream or consumer could not be created, read or deleted.
    #[error("transport: broker setup failed: {0}")]
    Setup(String),
    /// The message can never be published: it is larger than the broker takes.
    #[error("transport: a message of {bytes} bytes is over the broker's max_payload of {max} bytes")]
    TooLarge {
        /// The message's size (body and headers).
        bytes: usize,
        /// The broker's limit.
        max: usize,
    },
}

/// Where inbound messages the orchestrator cannot parse go: the caller
/// keeps them for operators (the store's poison table) and counts them.
/// The transport acknowledges the message once `poison` returns, so a
/// poison message never blocks its consumer.
pub trait PoisonSink: Send + Sync + 'static {
    /// Keeps one poison message: where it arrived, why it was refused, its bytes.
    fn poison(&self, subject: &str, reason: &str, payload: &[u8]) -> impl Future<Output = ()> + Send;
}

/// Where committed events go (`SAGA_EVENTS`): the event relay's output.
pub trait EventSink: Send + Sync + 'static {
    /// Publishes `body` (`wire::event_body`) as event `seq` of `saga_id`;
    /// publishing the same event again must be harmless (the relay may,
    /// after a crash): the message id is `<saga_id>:<seq>`.
    fn publish(&self, saga_type: &str, saga_id: SagaId, seq: u64, body: Vec<u8>)
        -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// Publishes commands to participants.
pub trait Transport: Send + Sync + 'static {
    /// Publishes `command` on `saga.cmd.<participant>.<action>`.
    fn send(&self, command: &Command) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// The largest message body the broker takes, if it has a limit: the
    /// engine refuses an input whose commands or events would not fit
    /// rather than commit what could never be published.
    fn message_bytes_max(&self) -> Option<usize>;
}

/// A command as a participant receives it, and its acknowledgement.
#[derive(Debug)]
pub struct CommandDelivery {
    /// The command.
    pub command: crate::wire::CommandBody,
    /// The W3C `traceparent` it carried, if any.
    pub traceparent: Option<String>,
    /// Fired once the reply is published; unacknowledged commands are redelivered.
    pub ack: Ack,
}

/// The participant's side of a transport: commands in, replies out.
pub trait ParticipantTransport: Clone + Send + Sync + 'static {
    /// The commands for `participant` (`saga.cmd.<participant>.>`), delivered
    /// until the returned channel is dropped.
    fn commands(
        &self,
        participant: &str,
    ) -> impl Future<Output = Result<tokio::sync::mpsc::Receiver<CommandDelivery>, TransportError>> + Send;

    /// Publishes `reply` on `saga.reply.<participant>`.
    fn reply(
        &self,
        participant: &str,
        reply: &crate::wire::ReplyBody,
        traceparent: Option<&str>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
}
