//! The pure saga core: events, the fold, decisions and their effects.
//!
//! No async, no IO, no clock, no randomness: time and jitter arrive in a
//! [`Context`]. The runtime and the simulator both drive this module, which
//! is why a simulated run tells the truth about a real one.
//!
//! The cycle: [`fold`] a log into a [`SagaState`], [`handle`] an [`Input`]
//! ([`decide`] what it means: new [`SagaEvent`]s and the state after them,
//! plus their [`effects`]), append the events, then carry out the effects.
//! [`recover`] is the same step for a saga loaded after a restart.

mod backoff;
mod decide;
mod effect;
mod event;
mod handle;
mod ids;
mod input;
pub mod invariants;
mod state;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

pub use backoff::delay_ms;
pub use decide::{apply, decide, ignored, Context, Decision, Rejection, DEADLINE, IGNORED_RECORDED_MAX};
pub use effect::{command, effects, extension, outstanding, payload, Command, Effect, Recovery};
pub use event::{decode, decode_text, encode, DecodeError, OperatorVerb, Recorded, SagaEvent, SCHEMA_VERSION};
pub use handle::{handle, recover, Decide, Handled};
pub use ids::{idempotency_key, message_id, SagaId, SagaIdError};
pub use input::{Input, Reply, ReplyStatus};
pub use state::{begin, evolve, fold, InFlight, Outcome, Phase, SagaDeadline, SagaState, Status, StepState, Track};
