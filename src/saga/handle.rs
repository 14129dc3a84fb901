//! The one "decide and apply" step that the runtime and the simulator
//! share: what an input does to a saga, as events to append, the state
//! after them and the effects to carry out once they are committed.
//!
//! `handle` is the loop body of both drivers, so `jetsaga check` simulates
//! the loop the engine runs, not a second copy of it. What stays outside is
//! IO alone: loading the state, appending the events, carrying out effects.

use super::decide::{apply, ignored, Context, Decision, Rejection};
use super::effect::{effects, extension, outstanding, Effect, Recovery};
use super::event::SagaEvent;
use super::ids::SagaId;
use super::input::Input;
use super::state::SagaState;
use super::Recorded;
use crate::definition::SagaDefinition;

/// A decision function: [`super::decide`], or a deliberately broken one in
/// the tests that prove the simulator's checks can fail.
pub type Decide = fn(&SagaDefinition, SagaId, Option<&SagaState>, &Input, &Context) -> Result<Decision, Rejection>;

/// What one input did to one saga.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The state after `events` (the state before, when there are none;
    /// `None` for a saga that has no log and was not started).
    pub state: Option<SagaState>,
    /// The events to append; their seqs run on from the state before.
    pub events: Vec<Recorded>,
    /// What to do once `events` are committed, in order.
    pub effects: Vec<Effect>,
    /// Why the input changed the saga's course in nothing. A reply's
    /// rejection is still recorded (`input_ignored` in `events`).
    pub rejection: Option<Rejection>,
}

impl Handled {
    /// The seq the store must still hold for `events` to commit.
    pub fn expected_seq(&self) -> u64 {
        self.events.first().map_or_else(|| self.state.as_ref().map_or(0, |s| s.seq), |first| first.seq - 1)
    }
}

/// Decides what `input` means for the saga in `state` (`None`: no log
/// yet), records a refusal that belongs in the log, and lists the effects.
pub fn handle(decide: Decide, def: &SagaDefinition, id: SagaId, state: Option<SagaState>, input: &Input, ctx: &Context) -> Handled {
    match decide(def, id, state.as_ref(), input, ctx) {
        Ok(Decision { events, state: after }) => {
            let effects = effects(def, &after, &events);
            Handled { state: Some(after), events, effects, rejection: None }
        }
        Err(rejection) => match (state.as_ref().and_then(|before| ignored(before, input, &rejection)), state) {
            (Some(event), Some(before)) => {
                let Decision { events, state: after } = apply(def, before, vec![event], ctx.now_ms);
                Handled { state: Some(after), events, effects: Vec::new(), rejection: Some(rejection) }
            }
            (_, state) => Handled { state, events: Vec::new(), effects: Vec::new(), rejection: Some(rejection) },
        },
    }
}

/// What a restart does to an unfinished saga loaded from the store: the
/// grace of each attempt in flight recorded ([`extension`]), its command
/// re-sent with the same idempotency key, its deadline set.
pub fn recover(def: &SagaDefinition, state: SagaState, recovery: Recovery) -> Handled {
    let events: Vec<SagaEvent> = extension(def, &state, recovery);
    let Decision { events, state } = apply(def, state, events, recovery.now_ms);
    let effects = outstanding(def, &state);
    Handled { state: Some(state), events, effects, rejection: None }
}
