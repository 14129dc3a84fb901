//! The orchestrator's inbound side: starts and replies from two durable
//! pull consumers, shared by every orchestrator process, into the
//! engine's channel.
//!
//! For each message, in order: check its size and subject, parse it with
//! [`wire`]; a good one becomes a [`Delivery`] whose [`Ack`] acks the
//! message when the engine fires it (after the commit); a bad one is
//! poison: handed to the [`PoisonSink`] (which keeps, counts and logs it),
//! then acked so it never blocks the consumer.

use std::future::Future;

use async_nats::jetstream::Message;
use tokio::sync::mpsc;

use std::sync::Arc;

use super::consumer::Pull;
use super::{AcksInFlight, JetStreamTransport, StreamKind};
use crate::saga::SagaId;
use crate::transport::{Ack, Delivery, Inbound, PoisonSink, TransportError};
use crate::wire;

/// The engine's channel is closed: nothing more to deliver.
struct Closed;

/// The orchestrators' two consumers, created; [`Self::run`] feeds the engine.
pub struct OrchestratorConsumers {
    transport: JetStreamTransport,
    starts: Pull,
    replies: Pull,
}

impl std::fmt::Debug for OrchestratorConsumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorConsumers").field("starts", &self.starts.durable()).field("replies", &self.replies.durable()).finish()
    }
}

impl OrchestratorConsumers {
    /// Feeds starts and replies to `tx` until `shutdown` resolves or `tx`
    /// closes; broker trouble is logged and waited out (a lost stream or
    /// consumer is created again).
    pub async fn run(mut self, tx: mpsc::Sender<Delivery>, poison: impl PoisonSink, shutdown: impl Future<Output = ()> + Send) {
        let transport = self.transport.clone();
        let consume = async {
            tokio::join!(
                transport.consume(&mut self.starts, StreamKind::Start, &tx, &poison),
                transport.consume(&mut self.replies, StreamKind::Replies, &tx, &poison),
            )
        };
        tokio::select! {
            () = shutdown => {}
            () = tx.closed() => {}
            _ = consume => {}
        }
    }
}

impl JetStreamTransport {
    /// The durable name of the orchestrators' consumer on `kind`
    /// (`<prefix>_orchestrator_start`, `<prefix>_orchestrator_replies`).
    pub fn orchestrator_consumer(&self, kind: StreamKind) -> String {
        let which = match kind {
            StreamKind::Start => "start",
            StreamKind::Replies => "replies",
            StreamKind::Commands => "commands",
            StreamKind::Events => "events",
        };
        format!("{}_orchestrator_{which}", self.config.consumer_prefix())
    }

    /// Creates (or joins) the orchestrators' durable consumers on the start
    /// and reply streams. An error here means the process cannot do its
    /// work: `serve` refuses to start.
    pub async fn orchestrator_consumers(&self) -> Result<OrchestratorConsumers, TransportError> {
        let starts = self.orchestrator_pull(StreamKind::Start).await?;
        let replies = self.orchestrator_pull(StreamKind::Replies).await?;
        Ok(OrchestratorConsumers { transport: self.clone(), starts, replies })
    }

    async fn orchestrator_pull(&self, kind: StreamKind) -> Result<Pull, TransportError> {
        Pull::open(self, kind, self.orchestrator_consumer(kind), self.config.prefix.all(kind.token())).await
    }

    async fn consume(&self, pull: &mut Pull, kind: StreamKind, tx: &mpsc::Sender<Delivery>, poison: &impl PoisonSink) {
        loop {
            let message = pull.next().await;
            if self.handle(message, kind, tx, poison).await.is_err() {
                return;
            }
        }
    }

    async fn handle(
        &self,
        message: Message,
        kind: StreamKind,
        tx: &mpsc::Sender<Delivery>,
        poison: &impl PoisonSink,
    ) -> Result<(), Closed> {
        let subject = message.subject.to_string();
        match self.parse(kind, &subject, &message.payload) {
            Ok(inbound) => {
                let inbound = with_derived_id(inbound, &message);
                // Unsent (the engine stopped) means unacked: redelivered later.
                let delivery = Delivery { message: inbound, ack: ack_when_fired(message, self.acks.clone()) };
                tx.send(delivery).await.map_err(|_| Closed)
            }
            Err(reason) => {
                poison.poison(&subject, &reason, &message.payload).await;
                if let Err(error) = message.ack().await {
                    tracing::warn!(%subject, %error, "cannot ack a poison message; it will come back");
                }
                Ok(())
            }
        }
    }

    /// The message as the engine's input, or why it is poison.
    fn parse(&self, kind: StreamKind, subject: &str, payload: &[u8]) -> Result<Inbound, String> {
        let limit = self.config.message_bytes_max;
        if payload.len() > limit {
            return Err(format!("{} bytes is over the {limit}-byte limit", payload.len()));
        }
        let token = self.config.prefix.token(kind.token(), subject).ok_or_else(|| format!("unexpected subject {subject:?}"))?;
        match kind {
            StreamKind::Start => wire::parse_start(token, payload).map(|start| Inbound::Start {
                saga_type: start.saga_type,
                saga_id: start.saga_id,
                input: start.input,
                key: start.key,
                version: start.version,
            }),
            _ => wire::parse_reply(token, payload).map(|(saga_id, reply)| Inbound::Reply { saga_id, reply }),
        }
        .map_err(|poison| poison.reason)
    }
}

/// A start that names no saga id gets the one derived from the message's
/// place in its stream ([`SagaId::derived`]): a start committed but not yet
/// acknowledged when a process died comes back with the same id, and is
/// an idempotent start instead of a second saga. A start with a business
/// key keeps no id: its key finds the saga a redelivery started, and the
/// engine must tell a start that named no id from one that named another.
fn with_derived_id(inbound: Inbound, message: &Message) -> Inbound {
    match inbound {
        Inbound::Start { saga_type, saga_id: None, input, key: None, version } => {
            let saga_id = match message.info() {
                Ok(info) => {
                    let stored_at_ms = i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                    Some(SagaId::derived(info.stream, info.stream_sequence, stored_at_ms))
                }
                Err(error) => {
                    tracing::warn!(%error, subject = %message.subject, "a start without its stream position; it gets a fresh id");
                    None
                }
            };
            Inbound::Start { saga_type, saga_id, input, key: None, version }
        }
        other => other,
    }
}

/// An [`Ack`] that acks `message` on the broker when fired (from any
/// thread: the ack runs on the runtime that received the message), counted
/// in flight until the broker confirms it.
pub(super) fn ack_when_fired(message: Message, acks: Arc<AcksInFlight>) -> Ack {
    let runtime = tokio::runtime::Handle::current();
    Ack::new(move || {
        acks.started();
        runtime.spawn(async move {
            if let Err(error) = message.ack().await {
                tracing::warn!(subject = %message.subject, %error, "ack failed; the message will be redelivered");
            }
            acks.finished();
        });
    })
}
