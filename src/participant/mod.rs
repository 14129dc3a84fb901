//! The participant SDK: how a service that receives saga commands answers them.
//!
//! A participant is any `tower::Service<wire::CommandBody, Response =
//! wire::ReplyBody>` whose error converts into a [`BoxError`]. [`serve`]
//! takes its commands from a [`ParticipantTransport`](crate::transport::ParticipantTransport),
//! calls the service for each (several at once, up to [`CONCURRENCY_MAX`]),
//! publishes the reply and only then acknowledges the command. An error
//! means "no reply this time": the command stays unacknowledged and is
//! redelivered — except [`Silence`], which is acknowledged without a reply
//! (a participant that swallowed the command; only the orchestrator's
//! timeout recovers).
//!
//! Tower wraps the service: limits, timeouts and [`IdempotencyLayer`]
//! compose as layers. Order matters and reads top to bottom, outermost
//! first: a concurrency permit, then the deadline, then the idempotency
//! check, then the handler.
//!
//! ```no_run
//! use std::time::Duration;
//! use jetsaga::participant::{serve, IdempotencyLayer, MemoryIdempotencyStore};
//! use jetsaga::wire::{CommandBody, ReplyBody};
//! use tower::{service_fn, BoxError, ServiceBuilder};
//!
//! # async fn run(transport: jetsaga::transport::MemoryTransport) -> Result<(), jetsaga::participant::ParticipantError> {
//! let hotels = ServiceBuilder::new()
//!     .concurrency_limit(8)                                        // 1. at most 8 commands in the handler
//!     .timeout(Duration::from_secs(2))                             // 2. no reply after 2 s: redelivered
//!     .layer(IdempotencyLayer::new(MemoryIdempotencyStore::new())) // 3. a repeated key gets the recorded reply
//!     .service(service_fn(|command: CommandBody| async move {      // 4. the effect
//!         let room = 7; // book it, in the same transaction as the idempotency record
//!         Ok::<_, BoxError>(ReplyBody::ok(&command, Some(serde_json::json!({ "room": room }))))
//!     }));
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! serve(transport, "hotels", hotels, shutdown).await
//! # }
//! ```

mod idempotency;
mod serve;
pub mod simulated;

pub use idempotency::{Idempotency, IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore, IDEMPOTENCY_ENTRIES_MAX};
pub use serve::{serve, serve_commands, CONCURRENCY_MAX};
pub use simulated::{spawn_simulated, EffectLedger, SimulationConfig, DECLINED_CARD, SIMULATED_LATENCY_DEFAULT, SIMULATED_PARTICIPANTS};

pub use tower::BoxError;

use crate::transport::TransportError;

/// Why [`serve`] stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    /// The transport refused the subscription to the participant's commands.
    #[error("participant {participant}: cannot subscribe to its commands: {source}")]
    Subscribe {
        /// The participant.
        participant: String,
        /// What the transport said.
        source: TransportError,
    },
    /// The transport closed the command channel (connection lost, consumer deleted).
    #[error("participant {participant}: the transport stopped delivering commands")]
    Closed {
        /// The participant.
        participant: String,
    },
}

/// The error a participant returns to stay silent on purpose: [`serve`]
/// acknowledges the command and publishes nothing, as a participant that
/// crashed after taking it would. Used by the simulated participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("staying silent: the command is acknowledged and never answered")]
pub struct Silence;
