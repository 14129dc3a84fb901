//! What must happen after a commit, and what is still outstanding for a
//! saga loaded after a crash.
//!
//! Effects are computed from committed events only: a command is published
//! because a `command_sent` event is in the log (the log is the outbox), and
//! a deadline is set because the state names one.

use serde_json::{json, Map, Value};

use super::event::{Recorded, SagaEvent};
use super::ids::{idempotency_key, message_id, SagaId};
use super::state::SagaState;
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
    /// `{"input": …, "results": {step: output, …}}`, or the step's
    /// `payload` mapping ([`payload`]).
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
        payload: payload(def, state, step, kind),
    })
}

/// The payload of a command of (step, kind) (SPEC §3, §7). An action
/// sees the outputs of the steps that succeeded before its group started
/// (not its siblings'), so every attempt carries the payload of the first.
/// Without a `payload` mapping: `{"input", "results"}` (a compensation's
/// `results`: every step that succeeded so far). With one: an object of
/// the mapped names, each the value its pointer names in `{"input",
/// "results"}` or `null`; a compensation's also has `"output"`, its
/// step's own action output (`null` for an unknown effect).
pub fn payload(def: &SagaDefinition, state: &SagaState, step: usize, kind: Kind) -> Value {
    let first = def.stage(step).start;
    let Some(mapping) = def.steps.get(step).and_then(|s| s.payload.as_ref()) else {
        let results = match kind {
            Kind::Action => state.results_before(def, first),
            Kind::Compensation => state.results(def),
        };
        return json!({ "input": state.input, "results": results });
    };
    let document = json!({ "input": state.input, "results": state.results_before(def, first) });
    let mut out: Map<String, Value> =
        mapping.iter().map(|(name, pointer)| (name.clone(), pointer.resolve(&document).cloned().unwrap_or(Value::Null))).collect();
    if kind == Kind::Compensation {
        let output = state.steps.get(step).and_then(|s| s.action.output.clone()).unwrap_or(Value::Null);
        out.insert("output".to_owned(), output);
    }
    Value::Object(out)
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
    out.push(deadline(state));
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

/// The events a restart records for the attempts in flight: each one's
/// deadline pushed back to at least the step's timeout plus the ack wait
/// from the restart, so a reply that arrived in time (and may be held,
/// unacknowledged, by the process that died) is never turned into a
/// timeout (SPEC §2). Recorded, not just armed, so every engine sharing
/// the store sees them.
pub fn extension(def: &SagaDefinition, state: &SagaState, recovery: Recovery) -> Vec<SagaEvent> {
    let awaiting = state.phase.in_flight().iter().filter(|f| !f.backing_off);
    awaiting
        .filter_map(|f| {
            let step = def.steps.get(f.step)?;
            let timeout = i64::try_from(step.timeout_ms).unwrap_or(i64::MAX);
            let grace = recovery.now_ms.saturating_add(timeout).saturating_add(recovery.ack_wait_ms);
            (f.deadline_ms < grace).then(|| SagaEvent::DeadlineExtended {
                step: step.name.clone(),
                kind: f.kind,
                attempt: f.attempt,
                deadline_ms: grace,
            })
        })
        .collect()
}

/// What a saga loaded after a restart still needs: the commands of the
/// attempts in flight, re-sent with the same idempotency keys and message
/// ids, and its deadline (which already holds the restart's grace once
/// the [`extension`] is folded in).
pub fn outstanding(def: &SagaDefinition, state: &SagaState) -> Vec<Effect> {
    let mut out: Vec<Effect> = state
        .phase
        .in_flight()
        .iter()
        .filter(|f| !f.backing_off)
        .filter_map(|f| command(def, state, f.step, f.kind, f.attempt).map(Effect::Send))
        .collect();
    out.push(deadline(state));
    out
}

fn deadline(state: &SagaState) -> Effect {
    match state.deadline_ms() {
        Some(at_ms) => Effect::SetDeadline { at_ms },
        None => Effect::ClearDeadline,
    }
}
