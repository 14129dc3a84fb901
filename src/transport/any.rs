//! The transport a configuration picks: in-process channels or NATS
//! JetStream. [`AnyTransport`] implements [`Transport`] and
//! [`ParticipantTransport`] by handing each call to the transport inside,
//! so the orchestrator is assembled once for both (like `store::AnyStore`).

use tokio::sync::mpsc;

use super::{CommandDelivery, JetStreamTransport, MemoryTransport, ParticipantTransport, Transport, TransportError};
use crate::saga::Command;
use crate::wire::ReplyBody;

/// One of the transports, chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyTransport {
    /// In-process channels (`jetsaga demo`, tests).
    Memory(MemoryTransport),
    /// NATS JetStream (production).
    JetStream(Box<JetStreamTransport>),
}

impl Transport for AnyTransport {
    async fn send(&self, command: &Command) -> Result<(), TransportError> {
        match self {
            AnyTransport::Memory(t) => t.send(command).await,
            AnyTransport::JetStream(t) => t.send(command).await,
        }
    }

    fn message_bytes_max(&self) -> Option<usize> {
        match self {
            AnyTransport::Memory(t) => t.message_bytes_max(),
            AnyTransport::JetStream(t) => t.message_bytes_max(),
        }
    }
}

impl ParticipantTransport for AnyTransport {
    async fn commands(&self, participant: &str) -> Result<mpsc::Receiver<CommandDelivery>, TransportError> {
        match self {
            AnyTransport::Memory(t) => t.commands(participant).await,
            AnyTransport::JetStream(t) => t.commands(participant).await,
        }
    }

    async fn reply(&self, participant: &str, reply: &ReplyBody, traceparent: Option<&str>) -> Result<(), TransportError> {
        match self {
            AnyTransport::Memory(t) => t.reply(participant, reply, traceparent).await,
            AnyTransport::JetStream(t) => t.reply(participant, reply, traceparent).await,
        }
    }
}
