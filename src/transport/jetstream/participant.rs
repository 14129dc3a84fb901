//! The participant's side: commands from a durable pull consumer per
//! participant (`<prefix>_participant_<participant>`, filter
//! `<prefix>.cmd.<participant>.>`); replies published with a message id
//! of their own, unguessable, so the broker drops the copies of one
//! publish's retries and nothing else (see [`reply_message_id`]).

use async_nats::jetstream::AckKind;
use async_nats::HeaderMap;
use tokio::sync::mpsc;

use super::consumer::Pull;
use super::inbound::ack_when_fired;
use super::{sanitise, JetStreamTransport, StreamKind, COMMAND_QUEUE_MAX};
use crate::transport::{CommandDelivery, ParticipantTransport, TransportError};
use crate::wire::{self, ReplyBody};

impl JetStreamTransport {
    /// The durable name of `participant`'s command consumer.
    pub fn participant_consumer(&self, participant: &str) -> String {
        format!("{}_participant_{}", self.config.consumer_prefix(), sanitise(participant))
    }
}

/// A fresh `Nats-Msg-Id` for one publish of a reply:
/// `<saga_id>:<step>:<kind>:<attempt>:reply:<random>`, 122 random bits.
///
/// The replies stream has one de-duplication window for every
/// participant, so a predictable id would let a participant publish it
/// first on its own subject and have the broker drop another's real
/// reply. The retries of one publish share the id (the broker keeps one
/// copy); a reply answered twice is two messages, and the engine ignores
/// the second by the saga's state, not by the broker.
pub fn reply_message_id(reply: &ReplyBody) -> String {
    format!("{}:{}:{}:{}:reply:{}", reply.saga_id, reply.step, reply.kind, reply.attempt, uuid::Uuid::new_v4().simple())
}

impl ParticipantTransport for JetStreamTransport {
    async fn commands(&self, participant: &str) -> Result<mpsc::Receiver<CommandDelivery>, TransportError> {
        let filter = self.config.prefix.commands_for(participant);
        let mut pull = Pull::open(self, StreamKind::Commands, self.participant_consumer(participant), filter).await?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE_MAX);
        let acks = self.acks.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = pull.next() => message,
                    () = tx.closed() => return,
                };
                let command = match wire::parse_command(&message.payload) {
                    Ok(command) => command,
                    Err(poison) => {
                        // Never answerable: terminate it rather than see it again.
                        tracing::warn!(subject = %message.subject, reason = %poison.reason, "unparsable command dropped");
                        if let Err(error) = message.ack_with(AckKind::Term).await {
                            tracing::warn!(subject = %message.subject, %error, "cannot terminate an unparsable command");
                        }
                        continue;
                    }
                };
                let traceparent = message.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.as_str().to_owned());
                let delivery = CommandDelivery { command, traceparent, ack: ack_when_fired(message, acks.clone()) };
                if tx.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn reply(&self, participant: &str, reply: &ReplyBody, traceparent: Option<&str>) -> Result<(), TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", reply_message_id(reply));
        if let Some(traceparent) = traceparent {
            headers.insert("traceparent", traceparent);
        }
        self.publish(StreamKind::Replies, self.config.prefix.reply(participant), headers, wire::reply_body(reply)).await
    }
}
