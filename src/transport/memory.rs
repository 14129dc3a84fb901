//! The in-process transport: commands go to participant tasks over
//! channels, replies come back on the engine's inbound channel.
//!
//! Used by `jetsaga demo` and by tests of the runtime. Like a stream on a
//! broker, each participant's queue holds the commands sent before the
//! participant subscribes (up to [`PARTICIPANT_QUEUE_MAX`]; beyond, a
//! command is dropped and logged, and the step's timeout turns that into a
//! retry). Once a participant consumes, sending never waits, as a publish
//! to a stream does not wait for its consumer: the engine waits for
//! nothing the participants do, because they in turn wait for the engine
//! to take their replies (a bounded queue on both sides would let a burst
//! of sagas deadlock the two). Commands in the queue are bounded by the
//! sagas in flight, each with its attempts in flight.
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
    routes: Arc<RwLock<HashMap<String, Route>>>,
    inbound: mpsc::Sender<Delivery>,
}

/// One participant's queue. Like a stream on a broker, it exists before
/// anyone consumes it: commands sent before the participant subscribes
/// (recovery re-sends at once) wait in it, up to [`PARTICIPANT_QUEUE_MAX`].
#[derive(Debug)]
struct Route {
    tx: mpsc::UnboundedSender<Command>,
    /// The consuming end, until a participant takes it.
    rx: Option<mpsc::UnboundedReceiver<Command>>,
}

impl Route {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx: Some(rx) }
    }
}

impl MemoryTransport {
    /// A transport whose inbound messages go to `inbound`.
    pub fn new(inbound: mpsc::Sender<Delivery>) -> Self {
        Self { routes: Arc::default(), inbound }
    }

    /// Registers a participant; its commands (those queued before too)
    /// arrive on the returned channel. Registering again replaces the
    /// earlier subscriber.
    fn register(&self, participant: &str) -> mpsc::UnboundedReceiver<Command> {
        let mut routes = self.routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let route = routes.entry(participant.to_owned()).or_insert_with(Route::new);
        if route.rx.is_none() {
            *route = Route::new();
        }
        route.rx.take().unwrap_or_else(|| mpsc::unbounded_channel().1)
    }

    /// Delivers any inbound message (a start, a reply) to the orchestrator.
    pub async fn deliver(&self, message: Inbound) -> Result<(), TransportError> {
        let delivery = Delivery { message, ack: Ack::none() };
        self.inbound.send(delivery).await.map_err(|_| TransportError::Publish("the orchestrator has stopped".into()))
    }
}

impl Transport for MemoryTransport {
    async fn send(&self, command: &Command) -> Result<(), TransportError> {
        let mut routes = self.routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let route = routes.entry(command.participant.to_string()).or_insert_with(Route::new);
        if route.rx.as_ref().is_some_and(|waiting| waiting.len() >= PARTICIPANT_QUEUE_MAX) {
            // Nobody consumes yet and the queue is full: the command is
            // lost, which the step's timeout turns into a retry.
            tracing::warn!(participant = %command.participant, "no participant consumes and its queue is full; the command is lost and will time out");
            return Ok(());
        }
        route.tx.send(command.clone()).map_err(|_| TransportError::Publish(format!("participant {} has stopped", command.participant)))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::definition::{ActionName, Kind, Participant, SagaType, StepName};
    use crate::saga::SagaId;

    fn command(n: u128) -> Command {
        let saga_id = SagaId::from_u128(n);
        Command {
            saga_id,
            saga_type: SagaType::parse("trip").unwrap(),
            step: StepName::parse("reserve_flight").unwrap(),
            participant: Participant::parse("flights").unwrap(),
            kind: Kind::Action,
            action: ActionName::parse("reserve").unwrap(),
            attempt: 1,
            idempotency_key: format!("{saga_id}:reserve_flight:action"),
            message_id: format!("{saga_id}:reserve_flight:action:1"),
            payload: serde_json::json!({}),
        }
    }

    /// The engine must never wait on a participant that is itself waiting
    /// for the engine to take its replies: a burst of sagas deadlocked
    /// the two when this queue was bounded.
    #[tokio::test]
    async fn sending_to_a_consuming_participant_never_waits() {
        let (inbound, _engine) = mpsc::channel(1);
        let transport = MemoryTransport::new(inbound);
        let _commands = transport.register("flights");
        let burst = (PARTICIPANT_QUEUE_MAX * 5) as u128;
        let sends = async {
            for n in 0..burst {
                transport.send(&command(n)).await.expect("sent");
            }
        };
        tokio::time::timeout(Duration::from_secs(5), sends).await.expect("no send waits for the participant");
    }

    #[tokio::test]
    async fn a_queue_nobody_consumes_keeps_at_most_its_bound() {
        let (inbound, _engine) = mpsc::channel(1);
        let transport = MemoryTransport::new(inbound);
        for n in 0..(PARTICIPANT_QUEUE_MAX as u128 + 10) {
            transport.send(&command(n)).await.expect("a lost command is not an error");
        }
        let mut commands = transport.register("flights");
        let mut queued = 0;
        while commands.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, PARTICIPANT_QUEUE_MAX);
    }
}
