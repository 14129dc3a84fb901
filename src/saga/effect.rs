//! What must happen after a commit, and what is still outstanding for a
//! saga loaded after a crash.
//!
//! Effects are computed from committed events only: a command is published
//! because a `command_sent` event is in the log (the log is the outbox), and
//! a deadline is set because the state names one.

use serde_json::{json, Value};

use super::event::{Recorded, SagaEvent};
use super::ids::{idempotency_key, message_id, SagaId};
use super::state::{Phase, SagaState};
use crate::definition::{ActionName, Kind, Participant, SagaDefinition, SagaType, StepName};

/// A command to a participant, as the core sees it (`wire` gives it JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The saga.
    pub saga_id: SagaId,
    /// Its type.
    pub saga_type: SagaType,
    /// The step.
    pub step: StepName,
    /// Who receives it.
    pub participant: Participant,
    /// Action or compensation.
    pub kind: Kind,
    /// The action (the step's `compensation` for a compensation).
    pub action: ActionName,
    /// The attempt number.
    pub attempt: u32,
    /// Same for every attempt of (saga, step, kind).
    pub idempotency_key: String,
    /// Same for re-publishes of one attempt (`Nats-Msg-Id`).
    pub message_id: String,
    /// `{"input": …, "results": {step: output, …}}`.
    pub payload: Value,
}

/// Something the runtime must do after a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish a command.
    Send(Command),
    /// The saga's deadline is now `at_ms`: wake it then (replaces any
    /// earlier deadline of the saga).
    SetDeadline {
        /// When.
        at_ms: i64,
    },
    /// The saga has no deadline any more (stuck or finished).
    ClearDeadline,
}

/// The command for `attempt` of (step, kind), with the payload as the state has it.
pub fn command(def: &SagaDefinition, state: &SagaState, step: usize, kind: Kind, attempt: u32) -> Option<Command> {
    let step_def = def.steps.get(step)?;
    let action = step_def.action_for(kind)?.clone();
    Some(Command {
        saga_id: state.id,
        saga_type: def.name.clone(),
        step: step_def.name.clone(),
        participant: step_def.participant.clone(),
        kind,
        action,
        attempt,
        idempotency_key: idempotency_key(state.id, step_def.name.as_str(), kind),
        message_id: message_id(state.id, step_def.name.as_str(), kind, attempt),
        payload: json!({ "input": state.input, "results": state.results(def) }),
    })
}

/// The effects of `new_events`, which have just been committed and folded
/// into `state`: the commands they decided, then the saga's deadline.
pub fn effects(def: &SagaDefinition, state: &SagaState, new_events: &[Recorded]) -> Vec<Effect> {
    let mut out: Vec<Effect> = new_events
        .iter()
        .filter_map(|recorded| match &recorded.event {
            SagaEvent::CommandSent { step, kind, attempt, .. } => {
                command(def, state, def.step_index(step.as_str())?, *kind, *attempt).map(Effect::Send)
            }
            _ => None,
        })
        .collect();
    out.push(deadline(&state.phase));
    out
}

/// How recovery treats an attempt that was in flight when the process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// When the process (re)started (ms since the epoch).
    pub now_ms: i64,
    /// The reply consumer's ack wait: a reply the dead process held
    /// unacknowledged comes back after at most this long.
    pub ack_wait_ms: i64,
}

/// The event a restart records for an attempt in flight: its deadline
/// pushed back to at least the step's timeout plus the ack wait from the
/// restart, so a reply that arrived in time (and may be held, unacknowledged,
/// by the process that died) is never turned into a timeout (SPEC §2).
/// Recorded, not just armed, so every engine sharing the store sees it.
pub fn extension(def: &SagaDefinition, state: &SagaState, recovery: Recovery) -> Option<SagaEvent> {
    let Phase::Awaiting { step, kind, attempt, deadline_ms } = state.phase else { return None };
    let timeout = i64::try_from(def.steps.get(step)?.timeout_ms).unwrap_or(i64::MAX);
    let grace = recovery.now_ms.saturating_add(timeout).saturating_add(recovery.ack_wait_ms);
    (deadline_ms < grace).then(|| SagaEvent::DeadlineExtended { step: def.steps[step].name.clone(), kind, attempt, deadline_ms: grace })
}

/// What a saga loaded after a restart still needs: the command of an
/// attempt in flight, re-sent with the same idempotency key and message
/// id, and its deadline (which already holds the restart's grace once
/// the [`extension`] is folded in).
pub fn outstanding(def: &SagaDefinition, state: &SagaState) -> Vec<Effect> {
    let mut out = Vec::new();
    if let Phase::Awaiting { step, kind, attempt, .. } = state.phase {
        out.extend(command(def, state, step, kind, attempt).map(Effect::Send));
    }
    out.push(deadline(&state.phase));
    out
}

fn deadline(phase: &Phase) -> Effect {
    match phase.deadline_ms() {
        Some(at_ms) => Effect::SetDeadline { at_ms },
        None => Effect::ClearDeadline,
    }
}
