//! The state of one saga, rebuilt by folding its events with [`evolve`].
//!
//! Nothing here decides anything: `evolve` only records what an event says
//! happened, so replaying a log always gives the same state.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::event::{OperatorVerb, Recorded, SagaEvent};
use super::ids::SagaId;
use crate::definition::{Kind, SagaDefinition};

/// A saga's status (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Doing its actions.
    Running,
    /// Undoing finished steps in reverse order.
    Compensating,
    /// Every action succeeded. Terminal.
    Completed,
    /// Every step that needed it was undone. Terminal.
    Compensated,
    /// Waiting for an operator.
    Stuck,
    /// Stopped by an operator without compensating. Terminal.
    Aborted,
}

impl Status {
    /// All statuses, in the order people read them.
    pub const ALL: [Status; 6] =
        [Status::Running, Status::Compensating, Status::Completed, Status::Compensated, Status::Stuck, Status::Aborted];

    /// `completed`, `compensated` and `aborted` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Compensated | Status::Aborted)
    }

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Compensated => "compensated",
            Status::Stuck => "stuck",
            Status::Aborted => "aborted",
        }
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about one (step, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    /// No command was ever sent.
    #[default]
    NotSent,
    /// Sent, no conclusive reply yet.
    Pending,
    /// A conclusive `ok`.
    Succeeded,
    /// A conclusive business failure: no effect.
    Failed,
    /// Attempts ran out (or compensation began) without a conclusive reply:
    /// the effect may or may not have happened.
    Unknown,
}

/// The progress of one (step, kind).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    /// The highest attempt number sent so far (0: none).
    pub last_attempt: u32,
    /// When the first attempt was decided (ms since the epoch): a step's
    /// duration runs from here to its conclusive reply.
    pub first_sent_ms: Option<i64>,
    /// The first attempt number of the current budget.
    pub budget_start: u32,
    /// What is known.
    pub outcome: Outcome,
    /// The output of the conclusive `ok` reply.
    pub output: Option<Value>,
    /// The last error a participant reported.
    pub error: Option<String>,
}

impl Track {
    /// Attempts used from the current budget, counting `attempt`.
    pub fn used(&self, attempt: u32) -> u32 {
        attempt.saturating_sub(self.budget_start) + 1
    }
}

/// Both tracks of one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepState {
    /// The action.
    pub action: Track,
    /// The compensation.
    pub compensation: Track,
}

impl StepState {
    /// The track of `kind`.
    pub fn track(&self, kind: Kind) -> &Track {
        match kind {
            Kind::Action => &self.action,
            Kind::Compensation => &self.compensation,
        }
    }

    fn track_mut(&mut self, kind: Kind) -> &mut Track {
        match kind {
            Kind::Action => &mut self.action,
            Kind::Compensation => &mut self.compensation,
        }
    }
}

/// What the saga is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A reply to `attempt` of (step, kind), until `deadline_ms`.
    Awaiting {
        /// Step index.
        step: usize,
        /// Action or compensation.
        kind: Kind,
        /// The attempt in flight.
        attempt: u32,
        /// When it times out.
        deadline_ms: i64,
    },
    /// The backoff before sending `attempt` of (step, kind) at `deadline_ms`.
    BackingOff {
        /// Step index.
        step: usize,
        /// Action or compensation.
        kind: Kind,
        /// The attempt to send.
        attempt: u32,
        /// When to send it.
        deadline_ms: i64,
    },
    /// Attempts of (step, kind) ran out; an operator must act.
    Stuck {
        /// Step index.
        step: usize,
        /// Action or compensation.
        kind: Kind,
    },
    /// Awaits nothing: the saga has just started (its first command is
    /// decided with its start) or is terminal.
    Idle,
}

impl Phase {
    /// The (step, kind) whose reply the saga would accept now.
    pub fn awaited(&self) -> Option<(usize, Kind)> {
        match *self {
            Phase::Awaiting { step, kind, .. } | Phase::BackingOff { step, kind, .. } | Phase::Stuck { step, kind } => Some((step, kind)),
            Phase::Idle => None,
        }
    }

    /// The saga's deadline: when the runtime must wake it up (an attempt
    /// times out, or a backoff ends), if ever.
    pub fn deadline_ms(&self) -> Option<i64> {
        match *self {
            Phase::Awaiting { deadline_ms, .. } | Phase::BackingOff { deadline_ms, .. } => Some(deadline_ms),
            Phase::Stuck { .. } | Phase::Idle => None,
        }
    }
}

/// Everything known about a saga instance, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaState {
    /// The saga's id.
    pub id: SagaId,
    /// The definition's name.
    pub saga_type: String,
    /// The definition version it runs on.
    pub version: u32,
    /// The start request's input.
    pub input: Value,
    /// The current status.
    pub status: Status,
    /// What it waits for.
    pub phase: Phase,
    /// One entry per step of the definition, in file order.
    pub steps: Vec<StepState>,
    /// Whether compensation has begun (it never stops once begun).
    pub compensating: bool,
    /// Why the saga compensates, is stuck or was aborted.
    pub reason: Option<String>,
    /// The seq of the last event folded.
    pub seq: u64,
    /// How many inputs were recorded as ignored (`input_ignored`): past
    /// [`super::IGNORED_RECORDED_MAX`] they are only counted, not stored.
    pub ignored: u32,
    /// When the saga started (ms since the epoch).
    pub started_at_ms: i64,
    /// When the last event was decided.
    pub updated_at_ms: i64,
}

impl SagaState {
    /// The outputs of every step that succeeded so far, by step name:
    /// the `results` of a command's payload.
    pub fn results(&self, def: &SagaDefinition) -> BTreeMap<String, Value> {
        def.steps
            .iter()
            .zip(&self.steps)
            .filter(|(_, s)| s.action.outcome == Outcome::Succeeded)
            .map(|(d, s)| (d.name.to_string(), s.action.output.clone().unwrap_or(Value::Null)))
            .collect()
    }

    /// The name of the step the saga is at, if any.
    pub fn current_step<'d>(&self, def: &'d SagaDefinition) -> Option<&'d str> {
        self.phase.awaited().map(|(i, _)| def.steps[i].name.as_str())
    }
}

/// Folds a whole log. `None` when the log is empty or does not begin with
/// `saga_started` (an unknown saga).
pub fn fold<'e>(def: &SagaDefinition, id: SagaId, events: impl IntoIterator<Item = &'e Recorded>) -> Option<SagaState> {
    let mut state: Option<SagaState> = None;
    for recorded in events {
        match state.as_mut() {
            Some(s) => evolve(s, def, recorded),
            None => state = begin(def, id, recorded),
        }
    }
    state
}

/// The state right after the first event, if it is `saga_started`.
pub fn begin(def: &SagaDefinition, id: SagaId, recorded: &Recorded) -> Option<SagaState> {
    let SagaEvent::SagaStarted { saga_type, version, input, .. } = &recorded.event else {
        return None;
    };
    Some(new_saga(def, id, saga_type, *version, input, recorded))
}

/// A saga that has just started: running, nothing sent yet.
pub(super) fn new_saga(def: &SagaDefinition, id: SagaId, saga_type: &str, version: u32, input: &Value, recorded: &Recorded) -> SagaState {
    SagaState {
        id,
        saga_type: saga_type.to_owned(),
        version,
        input: input.clone(),
        status: Status::Running,
        phase: Phase::Idle,
        steps: vec![StepState::default(); def.steps.len()],
        compensating: false,
        reason: None,
        seq: recorded.seq,
        ignored: 0,
        started_at_ms: recorded.at_ms,
        updated_at_ms: recorded.at_ms,
    }
}

/// Applies one event. Events name steps; a name the definition does not
/// know (a log from another version) leaves the state as it was.
pub fn evolve(state: &mut SagaState, def: &SagaDefinition, recorded: &Recorded) {
    state.seq = recorded.seq;
    state.updated_at_ms = recorded.at_ms;
    let index = |name: &str| def.step_index(name).filter(|&i| i < state.steps.len());
    match &recorded.event {
        SagaEvent::SagaStarted { .. } => {}
        SagaEvent::InputIgnored { .. } => state.ignored = state.ignored.saturating_add(1),
        SagaEvent::CommandSent { step, kind, attempt, deadline_ms } => {
            let Some(i) = index(step.as_str()) else { return };
            let track = state.steps[i].track_mut(*kind);
            if track.last_attempt == 0 {
                track.budget_start = 1;
                track.first_sent_ms = Some(recorded.at_ms);
            }
            track.last_attempt = track.last_attempt.max(*attempt);
            track.outcome = Outcome::Pending;
            state.status = if state.compensating { Status::Compensating } else { Status::Running };
            state.phase = Phase::Awaiting { step: i, kind: *kind, attempt: *attempt, deadline_ms: *deadline_ms };
        }
        SagaEvent::StepSucceeded { step, kind, output, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            let track = state.steps[i].track_mut(*kind);
            track.outcome = Outcome::Succeeded;
            track.output = Some(output.clone());
        }
        SagaEvent::StepFailed { step, kind, error, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            let track = state.steps[i].track_mut(*kind);
            track.outcome = Outcome::Failed;
            track.error = error.clone();
        }
        SagaEvent::AttemptFailed { step, kind, error, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            state.steps[i].track_mut(*kind).error = error.clone();
        }
        SagaEvent::AttemptTimedOut { .. } => {}
        SagaEvent::DeadlineExtended { step, kind, attempt, deadline_ms } => {
            let Some(i) = index(step.as_str()) else { return };
            if let Phase::Awaiting { step: s, kind: k, attempt: a, deadline_ms: d } = &mut state.phase {
                if (*s, *k, *a) == (i, *kind, *attempt) {
                    *d = *deadline_ms;
                }
            }
        }
        SagaEvent::RetryScheduled { step, kind, attempt, due_ms } => {
            let Some(i) = index(step.as_str()) else { return };
            state.phase = Phase::BackingOff { step: i, kind: *kind, attempt: *attempt, deadline_ms: *due_ms };
        }
        SagaEvent::CompensationStarted { reason } => {
            state.compensating = true;
            state.status = Status::Compensating;
            state.reason = Some(reason.clone());
            // An action still in flight may have happened: undo it too.
            for step in &mut state.steps {
                if step.action.outcome == Outcome::Pending {
                    step.action.outcome = Outcome::Unknown;
                }
            }
        }
        SagaEvent::SagaCompleted {} => finish(state, Status::Completed),
        SagaEvent::SagaCompensated {} => finish(state, Status::Compensated),
        SagaEvent::SagaAborted { reason } => {
            state.reason = Some(reason.clone());
            finish(state, Status::Aborted);
        }
        SagaEvent::SagaStuck { step, kind, reason } => {
            let Some(i) = index(step.as_str()) else { return };
            state.status = Status::Stuck;
            state.reason = Some(reason.clone());
            state.phase = Phase::Stuck { step: i, kind: *kind };
            let track = state.steps[i].track_mut(*kind);
            if track.outcome == Outcome::Pending {
                track.outcome = Outcome::Unknown;
            }
        }
        SagaEvent::OperatorIntervened { verb, .. } => {
            if let (OperatorVerb::Retry | OperatorVerb::Compensate, Phase::Stuck { step, kind }) = (verb, state.phase) {
                // A fresh budget: attempt numbers go on counting.
                let track = state.steps[step].track_mut(kind);
                track.budget_start = track.last_attempt + 1;
                state.status = if state.compensating { Status::Compensating } else { Status::Running };
            }
        }
    }
}

fn finish(state: &mut SagaState, status: Status) {
    state.status = status;
    state.phase = Phase::Idle;
}
