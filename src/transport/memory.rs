//! The in-process transport: commands go to participant tasks over
//! channels, replies come back on the engine's inbound channel.
//!
//! Used by `jetsaga demo` and by tests of the runtime. Like a broker with
//! no subscriber, a command for a participant nobody registered is dropped
//! (and logged); the step's timeout turns that into a retry.
//!
//! Participants use its [`ParticipantTransport`] side (the SDK's
//! `participant::serve`): `commands` registers the participant and hands
//! out its commands as wire bodies, `reply` parses the reply body as the
//! orchestrator would and delivers it. There is no
//! redelivery in-process: an unacknowledged command is simply gone, and
//! the orchestrator's timeout re-sends it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::{Ack, CommandDelivery, Delivery, Inbound, ParticipantTransport, Transport, TransportError};
use crate::saga::Command;
use crate::wire;

/// Most commands waiting for one participant task.
pub const PARTICIPANT_QUEUE_MAX: usize = 1_024;

/// The in-process transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    routes: Arc<RwLock<HashMap<String, mpsc::Sender<Command>>>>,
    inbound: mpsc::Sender<Delivery>,
}

impl MemoryTransport {
    /// A transport whose inbound messages go to `inbound`.
    pub fn new(inbound: mpsc::Sender<Delivery>) -> Self {
        Self { routes: Arc::default(), inbound }
    }

    /// Registers a participant; its commands arrive on the returned channel.
    fn register(&self, participant: &str) -> mpsc::Receiver<Command> {
        let (tx, rx) = mpsc::channel(PARTICIPANT_QUEUE_MAX);
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(participant.to_owned(), tx);
        }
        rx
    }

    /// Delivers any inbound message (a start, a reply) to the orchestrator.
    pub async fn deliver(&self, message: Inbound) -> Result<(), TransportError> {
        let delivery = Delivery { message, ack: Ack::none() };
        self.inbound.send(delivery).await.map_err(|_| TransportError::Publish("the orchestrator has stopped".into()))
    }
}

impl Transport for MemoryTransport {
    async fn send(&self, command: &Command) -> Result<(), TransportError> {
        let route = self.routes.read().ok().and_then(|routes| routes.get(command.participant.as_str()).cloned());
        match route {
            Some(tx) => tx
                .send(command.clone())
                .await
                .map_err(|_| TransportError::Publish(format!("participant {} has stopped", command.participant))),
            None => {
                tracing::warn!(participant = %command.participant, "no participant registered; the command is lost and will time out");
                Ok(())
            }
        }
    }

    fn message_bytes_max(&self) -> Option<usize> {
        None
    }
}

impl ParticipantTransport for MemoryTransport {
    async fn commands(&self, participant: &str) -> Result<mpsc::Receiver<CommandDelivery>, TransportError> {
        let mut commands = self.register(participant);
        let (tx, rx) = mpsc::channel(PARTICIPANT_QUEUE_MAX);
        let participant = participant.to_owned();
        tokio::spawn(async move {
            while let Some(command) = commands.recv().await {
                // Through the wire body, as a participant behind a broker would see it.
                let body = match wire::parse_command(&wire::command_body(&command)) {
                    Ok(body) => body,
                    Err(poison) => {
                        tracing::warn!(%participant, %poison, "a command could not be encoded; dropped");
                        continue;
                    }
                };
                let traceparent = Some(wire::traceparent(command.saga_id, u64::from(command.attempt)));
                let delivery = CommandDelivery { command: body, traceparent, ack: Ack::none() };
                if tx.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn reply(&self, participant: &str, reply: &wire::ReplyBody, _traceparent: Option<&str>) -> Result<(), TransportError> {
        let (saga_id, reply) = wire::parse_reply(participant, &wire::reply_body(reply))
            .map_err(|poison| TransportError::Publish(format!("reply of {participant}: {poison}")))?;
        self.deliver(Inbound::Reply { saga_id, reply }).await
    }
}
