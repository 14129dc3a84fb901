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
    /// The step's `when` did not hold (SPEC §7): never sent, never compensated.
    Skipped,
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

/// One (step, kind) in flight: awaiting the reply to an attempt, or
/// backing off before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Step index.
    pub step: usize,
    /// Action or compensation.
    pub kind: Kind,
    /// The attempt in flight, or the one to send after the backoff.
    pub attempt: u32,
    /// When the attempt times out, or when the backoff ends.
    pub deadline_ms: i64,
    /// Backing off (the attempt is not sent yet) rather than awaiting a reply.
    pub backing_off: bool,
    /// When the last heartbeat of this attempt was recorded (SPEC §7).
    pub heartbeat_ms: Option<i64>,
}

/// What the saga is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Replies or backoffs of one or more (step, kind)s at once (a parallel
    /// group runs several), ordered by (step, kind); never empty.
    Waiting(Vec<InFlight>),
    /// Attempts of (step, kind) ran out (or the saga deadline passed after
    /// the pivot, then `step` is the next one to run); an operator must act.
    Stuck {
        /// Step index.
        step: usize,
        /// Action or compensation.
        kind: Kind,
    },
    /// Awaits nothing: the saga has just started (its first commands are
    /// decided with its start) or is terminal.
    Idle,
}

impl Phase {
    /// What is in flight (empty unless [`Phase::Waiting`]).
    pub fn in_flight(&self) -> &[InFlight] {
        match self {
            Phase::Waiting(all) => all,
            Phase::Stuck { .. } | Phase::Idle => &[],
        }
    }

    /// The in-flight entry of (step, kind), if any.
    pub fn get(&self, step: usize, kind: Kind) -> Option<&InFlight> {
        self.in_flight().iter().find(|f| (f.step, f.kind) == (step, kind))
    }

    /// The (step, kind)s whose replies the saga accepts now: those in
    /// flight, or the one it is stuck on.
    pub fn awaited(&self) -> Vec<(usize, Kind)> {
        match self {
            Phase::Waiting(all) => all.iter().map(|f| (f.step, f.kind)).collect(),
            Phase::Stuck { step, kind } => vec![(*step, *kind)],
            Phase::Idle => Vec::new(),
        }
    }

    /// The earliest deadline of what is in flight: when an attempt times
    /// out or a backoff ends, if ever.
    pub fn deadline_ms(&self) -> Option<i64> {
        self.in_flight().iter().map(|f| f.deadline_ms).min()
    }

    /// Puts `entry` in flight, replacing any entry of its (step, kind).
    fn insert(&mut self, entry: InFlight) {
        let mut all = match std::mem::replace(self, Phase::Idle) {
            Phase::Waiting(all) => all,
            Phase::Stuck { .. } | Phase::Idle => Vec::new(),
        };
        all.retain(|f| (f.step, f.kind) != (entry.step, entry.kind));
        let at = all.partition_point(|f| (f.step, f.kind) < (entry.step, entry.kind));
        all.insert(at, entry);
        *self = Phase::Waiting(all);
    }

    /// Ends what is in flight for (step, kind); with nothing left, the phase is idle.
    fn remove(&mut self, step: usize, kind: Kind) {
        if let Phase::Waiting(all) = self {
            all.retain(|f| (f.step, f.kind) != (step, kind));
            if all.is_empty() {
                *self = Phase::Idle;
            }
        }
    }

    /// Ends every action in flight.
    fn remove_actions(&mut self) {
        if let Phase::Waiting(all) = self {
            all.retain(|f| f.kind != Kind::Action);
            if all.is_empty() {
                *self = Phase::Idle;
            }
        }
    }
}

/// The saga deadline of SPEC §7 (`deadline` in the definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaDeadline {
    /// The definition sets none.
    None,
    /// It passes at `at_ms` (the start + the definition's `deadline`).
    Pending {
        /// When (ms since the epoch).
        at_ms: i64,
    },
    /// It passed (`saga_deadline_passed`).
    Passed,
    /// It passed and an operator's retry lifted it.
    Lifted,
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
    /// Its business key (SPEC §7): at most one saga per (type, key).
    pub key: Option<String>,
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
    /// The saga deadline (SPEC §7).
    pub deadline: SagaDeadline,
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
    /// the `results` of a compensation's payload.
    pub fn results(&self, def: &SagaDefinition) -> BTreeMap<String, Value> {
        self.results_before(def, def.steps.len())
    }

    /// The outputs of the steps before `index` that succeeded, by step
    /// name: the `results` an action of the group starting at `index` sees
    /// (its siblings' outputs are not among them, SPEC §7).
    pub fn results_before(&self, def: &SagaDefinition, index: usize) -> BTreeMap<String, Value> {
        def.steps
            .iter()
            .zip(&self.steps)
            .take(index)
            .filter(|(_, s)| s.action.outcome == Outcome::Succeeded)
            .map(|(d, s)| (d.name.to_string(), s.action.output.clone().unwrap_or(Value::Null)))
            .collect()
    }

    /// The steps the saga is at (in flight, or stuck on), comma-separated.
    pub fn current_step(&self, def: &SagaDefinition) -> Option<String> {
        let mut names: Vec<&str> =
            self.phase.awaited().into_iter().filter_map(|(i, _)| def.steps.get(i)).map(|s| s.name.as_str()).collect();
        names.dedup();
        (!names.is_empty()).then(|| names.join(","))
    }

    /// When the runtime must wake the saga: the earliest of what is in
    /// flight, and the saga deadline while it can still act (running,
    /// not compensating, not passed).
    pub fn deadline_ms(&self) -> Option<i64> {
        let saga = match self.deadline {
            SagaDeadline::Pending { at_ms } if self.status == Status::Running && !self.compensating => Some(at_ms),
            _ => None,
        };
        [self.phase.deadline_ms(), saga].into_iter().flatten().min()
    }

    /// Whether the attempts of (step, kind) ran out and nothing of it is in
    /// flight: what a stuck saga's operator retry sends again.
    pub fn exhausted(&self, step: usize, kind: Kind) -> bool {
        self.steps.get(step).is_some_and(|s| s.track(kind).outcome == Outcome::Unknown) && self.phase.get(step, kind).is_none()
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
    let SagaEvent::SagaStarted { saga_type, version, input, key, .. } = &recorded.event else {
        return None;
    };
    Some(new_saga(def, id, saga_type, *version, input, key.as_deref(), recorded))
}

/// A saga that has just started: running, nothing sent yet.
pub(super) fn new_saga(
    def: &SagaDefinition,
    id: SagaId,
    saga_type: &str,
    version: u32,
    input: &Value,
    key: Option<&str>,
    recorded: &Recorded,
) -> SagaState {
    SagaState {
        id,
        saga_type: saga_type.to_owned(),
        version,
        key: key.map(str::to_owned),
        input: input.clone(),
        status: Status::Running,
        phase: Phase::Idle,
        steps: vec![StepState::default(); def.steps.len()],
        compensating: false,
        deadline: match def.deadline_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)) {
            Some(ms) => SagaDeadline::Pending { at_ms: recorded.at_ms.saturating_add(ms) },
            None => SagaDeadline::None,
        },
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
            let entry =
                InFlight { step: i, kind: *kind, attempt: *attempt, deadline_ms: *deadline_ms, backing_off: false, heartbeat_ms: None };
            state.phase.insert(entry);
        }
        SagaEvent::StepSucceeded { step, kind, output, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            let track = state.steps[i].track_mut(*kind);
            track.outcome = Outcome::Succeeded;
            track.output = Some(output.clone());
            state.phase.remove(i, *kind);
        }
        SagaEvent::StepFailed { step, kind, error, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            let track = state.steps[i].track_mut(*kind);
            track.outcome = Outcome::Failed;
            track.error = error.clone();
            state.phase.remove(i, *kind);
        }
        SagaEvent::AttemptFailed { step, kind, error, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            state.steps[i].track_mut(*kind).error = error.clone();
            state.phase.remove(i, *kind);
        }
        SagaEvent::AttemptTimedOut { step, kind, .. } => {
            let Some(i) = index(step.as_str()) else { return };
            state.phase.remove(i, *kind);
        }
        SagaEvent::DeadlineExtended { step, kind, attempt, deadline_ms }
        | SagaEvent::HeartbeatRecorded { step, kind, attempt, deadline_ms } => {
            let Some(i) = index(step.as_str()) else { return };
            let heartbeat = matches!(recorded.event, SagaEvent::HeartbeatRecorded { .. });
            if let Phase::Waiting(all) = &mut state.phase {
                for f in all.iter_mut().filter(|f| (f.step, f.kind, f.attempt, f.backing_off) == (i, *kind, *attempt, false)) {
                    f.deadline_ms = *deadline_ms;
                    if heartbeat {
                        f.heartbeat_ms = Some(recorded.at_ms);
                    }
                }
            }
        }
        SagaEvent::RetryScheduled { step, kind, attempt, due_ms } => {
            let Some(i) = index(step.as_str()) else { return };
            state.phase.insert(InFlight {
                step: i,
                kind: *kind,
                attempt: *attempt,
                deadline_ms: *due_ms,
                backing_off: true,
                heartbeat_ms: None,
            });
        }
        SagaEvent::StepSkipped { step } => {
            let Some(i) = index(step.as_str()) else { return };
            state.steps[i].action.outcome = Outcome::Skipped;
        }
        SagaEvent::AttemptsExhausted { step, kind } => {
            let Some(i) = index(step.as_str()) else { return };
            state.phase.remove(i, *kind);
            let track = state.steps[i].track_mut(*kind);
            if track.outcome == Outcome::Pending {
                track.outcome = Outcome::Unknown;
            }
        }
        SagaEvent::SagaDeadlinePassed {} => state.deadline = SagaDeadline::Passed,
        SagaEvent::CompensationStarted { reason, keep_in_flight } => {
            state.compensating = true;
            state.status = Status::Compensating;
            state.reason = Some(reason.clone());
            if !keep_in_flight {
                // Actions in flight are abandoned: they may have happened, so they are undone too.
                state.phase.remove_actions();
            }
            // An action that is sent and no longer in flight may have happened: undo it too.
            let phase = &state.phase;
            for (i, step) in state.steps.iter_mut().enumerate() {
                if step.action.outcome == Outcome::Pending && phase.get(i, Kind::Action).is_none() {
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
            // Every attempt that ran out is now of unknown effect.
            for step in &mut state.steps {
                let track = step.track_mut(*kind);
                if track.outcome == Outcome::Pending {
                    track.outcome = Outcome::Unknown;
                }
            }
        }
        SagaEvent::OperatorIntervened { verb, .. } => {
            if let (OperatorVerb::Retry | OperatorVerb::Compensate, Phase::Stuck { step, kind }) = (verb, &state.phase) {
                let (step, kind) = (*step, *kind);
                // A fresh budget for every (step, kind) of the group that
                // ran out: attempt numbers go on counting.
                for i in def.stage(step) {
                    if i == step || state.steps[i].track(kind).outcome == Outcome::Unknown {
                        let track = state.steps[i].track_mut(kind);
                        track.budget_start = track.last_attempt + 1;
                    }
                }
                state.status = if state.compensating { Status::Compensating } else { Status::Running };
            }
            if *verb == OperatorVerb::Retry && state.deadline == SagaDeadline::Passed {
                state.deadline = SagaDeadline::Lifted;
            }
        }
    }
}

fn finish(state: &mut SagaState, status: Status) {
    state.status = status;
    state.phase = Phase::Idle;
}
