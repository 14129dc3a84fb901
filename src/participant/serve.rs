//! [`serve`]: the loop that feeds commands to a participant service and
//! publishes its replies.
//!
//! Per command, in this order: call the service (once it is ready), publish
//! the reply on `saga.reply.<participant>` with the command's
//! `traceparent`, and only then acknowledge the command. A crash anywhere
//! before the ack means a redelivery, which the idempotency layer turns
//! into the recorded reply instead of a second effect.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};
use tracing::Instrument as _;

use super::{BoxError, ParticipantError, Silence};
use crate::transport::{CommandDelivery, ParticipantTransport};
use crate::wire::{CommandBody, ReplyBody};

/// Most commands one [`serve`] loop handles at once. A tighter limit
/// belongs in the service stack (`ServiceBuilder::concurrency_limit`).
pub const CONCURRENCY_MAX: usize = 64;

/// Serves `participant`: subscribes to its commands on `transport` and
/// answers them with `service` until `shutdown` resolves, then stops
/// taking commands and finishes the ones in flight.
///
/// Returns `Err` if the subscription fails or the transport stops
/// delivering before `shutdown`.
pub async fn serve<T, S>(transport: T, participant: &str, service: S, shutdown: impl Future<Output = ()>) -> Result<(), ParticipantError>
where
    T: ParticipantTransport,
    S: Service<CommandBody, Response = ReplyBody> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let commands = transport
        .commands(participant)
        .await
        .map_err(|source| ParticipantError::Subscribe { participant: participant.to_owned(), source })?;
    serve_commands(transport, participant, commands, service, shutdown).await
}

/// [`serve`] on a subscription already made with
/// [`ParticipantTransport::commands`]: subscribe first, then spawn this, and
/// no command published in between is missed.
pub async fn serve_commands<T, S>(
    transport: T,
    participant: &str,
    mut commands: mpsc::Receiver<CommandDelivery>,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ParticipantError>
where
    T: ParticipantTransport,
    S: Service<CommandBody, Response = ReplyBody> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let name: Arc<str> = Arc::from(participant);
    let mut in_flight = JoinSet::new();
    tokio::pin!(shutdown);
    let closed = loop {
        // At the limit, take no command until one in flight is done.
        if in_flight.len() >= CONCURRENCY_MAX {
            in_flight.join_next().await;
            continue;
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break false,
            Some(_) = in_flight.join_next() => {}
            next = commands.recv() => match next {
                Some(delivery) => {
                    in_flight.spawn(handle(transport.clone(), name.clone(), service.clone(), delivery));
                }
                None => break true,
            },
        }
    };
    // Graceful: no new command is taken; the ones in flight reply and ack.
    drop(commands);
    tracing::debug!(participant, in_flight = in_flight.len(), "finishing the commands in flight");
    while in_flight.join_next().await.is_some() {}
    match closed {
        true => Err(ParticipantError::Closed { participant: participant.to_owned() }),
        false => Ok(()),
    }
}

/// One command: call, reply, ack — inside a span naming the attempt.
async fn handle<T, S>(transport: T, participant: Arc<str>, service: S, delivery: CommandDelivery)
where
    T: ParticipantTransport,
    S: Service<CommandBody, Response = ReplyBody> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let CommandDelivery { command, traceparent, ack } = delivery;
    let span = tracing::info_span!(
        "command",
        participant = %participant,
        saga_id = %command.saga_id,
        step = %command.step,
        kind = command.kind.as_str(),
        attempt = command.attempt,
        traceparent = traceparent.as_deref().unwrap_or(""),
    );
    async move {
        match call(service, command).await {
            Ok(reply) => match transport.reply(&participant, &reply, traceparent.as_deref()).await {
                Ok(()) => ack.ack(),
                Err(error) => tracing::warn!(%error, "the reply was not published; the command stays unacknowledged"),
            },
            Err(error) if error.is::<Silence>() => {
                tracing::debug!("staying silent: acknowledged without a reply");
                ack.ack();
            }
            Err(error) => tracing::warn!(error = %error, "no reply this time; the command stays unacknowledged and will be redelivered"),
        }
    }
    .instrument(span)
    .await
}

async fn call<S>(mut service: S, command: CommandBody) -> Result<ReplyBody, BoxError>
where
    S: Service<CommandBody, Response = ReplyBody>,
    S::Error: Into<BoxError>,
{
    let ready = service.ready().await.map_err(Into::into)?;
    ready.call(command).await.map_err(Into::into)
}
