//! `decide`: given a saga's state and an input, what happens next.
//!
//! Pure and total: no IO, no clock (the time is in [`Context`]), no dice
//! (the jitter is in [`Context`]). The answer is a list of new events or a
//! [`Rejection`]: a domain refusal is data, never an `Err` of IO.

use std::fmt;

use serde_json::Value;

use super::backoff;
use super::event::{OperatorVerb, Recorded, SagaEvent};
use super::ids::SagaId;
use super::input::{Input, Reply, ReplyStatus};
use super::state::{evolve, new_saga, Outcome, Phase, SagaState, Status};
use crate::definition::{Kind, SagaDefinition};

/// The facts `decide` needs from the world, passed in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    /// Now, in ms since the epoch.
    pub now_ms: i64,
    /// A sample in `[0, 1)` for backoff jitter.
    pub jitter: f64,
    /// Until when a reply may still come back that an engine which died
    /// held unacknowledged (its death + the ack wait), if one died lately:
    /// an attempt in flight does not time out before then (SPEC §2, the
    /// restart rule, applied by whichever engine fires the deadline).
    pub replies_held_until_ms: Option<i64>,
}

impl Context {
    /// Now and a jitter sample, no engine lately dead.
    pub fn new(now_ms: i64, jitter: f64) -> Self {
        Self { now_ms, jitter, replies_held_until_ms: None }
    }
}

/// Why an input changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A start for a saga id that exists: idempotent start returns it.
    AlreadyStarted,
    /// Anything but a start for a saga that has no log.
    UnknownSaga,
    /// The saga is completed, compensated or aborted.
    Finished(Status),
    /// The reply names a step the definition does not have.
    UnknownStep(String),
    /// The reply came on the subject of a participant that does not own the step.
    WrongParticipant {
        /// Who owns the step.
        owner: String,
        /// Who replied.
        sender: String,
    },
    /// The saga awaits another (step, kind): duplicates, stale and late replies.
    NotAwaited {
        /// What the reply was for.
        got: String,
        /// What the saga awaits.
        awaited: String,
    },
    /// The reply names an attempt that was never sent.
    AttemptNeverSent {
        /// The attempt in the reply.
        attempt: u32,
        /// The highest attempt sent.
        last: u32,
    },
    /// An inconclusive `failed` for an attempt that already ended.
    AttemptAlreadyEnded(u32),
    /// The timer fired but nothing is due (a stale or early timer).
    NothingDue,
    /// An operator verb the saga's status does not allow (HTTP 409).
    NotAllowed(String),
}

impl Rejection {
    /// Whether an operator asked for something the status forbids.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Rejection::NotAllowed(_) | Rejection::Finished(_))
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::AlreadyStarted => f.write_str("the saga already exists"),
            Rejection::UnknownSaga => f.write_str("no such saga"),
            Rejection::Finished(status) => write!(f, "the saga is already {status}"),
            Rejection::UnknownStep(step) => write!(f, "the saga has no step {step:?}"),
            Rejection::WrongParticipant { owner, sender } => write!(f, "the step belongs to {owner}, not {sender}"),
            Rejection::NotAwaited { got, awaited } => write!(f, "the saga awaits {awaited}, not {got}"),
            Rejection::AttemptNeverSent { attempt, last } => write!(f, "attempt {attempt} was never sent (last sent: {last})"),
            Rejection::AttemptAlreadyEnded(a) => write!(f, "attempt {a} already ended; a failure of it changes nothing"),
            Rejection::NothingDue => f.write_str("no deadline is due"),
            Rejection::NotAllowed(why) => f.write_str(why),
        }
    }
}

/// What `decide` concluded: the new events, recorded at the decision's
/// time with the seqs they will have, and the state after them. The state
/// is the one every event was folded into while deciding, so nobody needs
/// to fold the new events again.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new events, in order; `seq` runs on from the saga's last one.
    pub events: Vec<Recorded>,
    /// The state after the new events.
    pub state: SagaState,
}

impl Decision {
    /// The new events without their seq and time.
    pub fn new_events(&self) -> impl Iterator<Item = &SagaEvent> {
        self.events.iter().map(|r| &r.event)
    }
}

/// What happens when `input` meets the saga `state` (`None`: no log yet).
pub fn decide(def: &SagaDefinition, id: SagaId, state: Option<&SagaState>, input: &Input, ctx: &Context) -> Result<Decision, Rejection> {
    let Some(state) = state else {
        return match input {
            Input::Start { input } => Ok(start(def, id, input, ctx)),
            _ => Err(Rejection::UnknownSaga),
        };
    };
    let mut d = Draft { def, ctx, state: state.clone(), events: Vec::new() };
    match input {
        Input::Start { .. } => return Err(Rejection::AlreadyStarted),
        Input::Reply(reply) => d.reply(reply)?,
        Input::DeadlinePassed => d.deadline()?,
        Input::OperatorRetry { reason } => d.operator_retry(reason)?,
        Input::OperatorCompensate { reason } => d.operator_compensate(reason)?,
        Input::OperatorAbort { reason } => d.operator_abort(reason)?,
    }
    Ok(Decision { events: d.events, state: d.state })
}

/// `events` (decided at `now_ms`) recorded after `state` and folded into
/// it: how a refusal's `input_ignored` and a restart's grace are applied,
/// and the [`Decision`] a decider that edits `decide`'s events (a
/// deliberately broken one, in tests) hands on.
pub fn apply(def: &SagaDefinition, mut state: SagaState, events: Vec<SagaEvent>, now_ms: i64) -> Decision {
    let mut recorded = Vec::with_capacity(events.len());
    for event in events {
        let next = Recorded { seq: state.seq + 1, at_ms: now_ms, event };
        evolve(&mut state, def, &next);
        recorded.push(next);
    }
    Decision { events: recorded, state }
}

/// Most `input_ignored` events one saga's log keeps: past it, an ignored
/// input is counted, not stored, so nobody who can publish a reply can
/// grow a saga's log without bound.
pub const IGNORED_RECORDED_MAX: u32 = 100;

/// The `input_ignored` event that records `rejection` of `input`, when the
/// input is one whose refusal belongs in the log and the saga's log has
/// room for it ([`IGNORED_RECORDED_MAX`]).
pub fn ignored(state: &SagaState, input: &Input, rejection: &Rejection) -> Option<SagaEvent> {
    let room = state.ignored < IGNORED_RECORDED_MAX;
    (room && input.records_rejection()).then(|| SagaEvent::InputIgnored { input: input.to_string(), reason: rejection.to_string() })
}

fn start(def: &SagaDefinition, id: SagaId, input: &Value, ctx: &Context) -> Decision {
    let started = SagaEvent::SagaStarted {
        saga_type: def.name.to_string(),
        version: def.version,
        definition_hash: def.content_hash.clone(),
        input: input.clone(),
    };
    let first = Recorded { seq: 1, at_ms: ctx.now_ms, event: started };
    let state = new_saga(def, id, def.name.as_str(), def.version, input, &first);
    let mut d = Draft { def, ctx, state, events: vec![first] };
    d.send(0, Kind::Action);
    Decision { events: d.events, state: d.state }
}

/// A decision in progress: each emitted event is folded into a scratch
/// copy of the state at once, so later choices see its effect.
struct Draft<'a> {
    def: &'a SagaDefinition,
    ctx: &'a Context,
    state: SagaState,
    events: Vec<Recorded>,
}

impl Draft<'_> {
    fn emit(&mut self, event: SagaEvent) {
        let recorded = Recorded { seq: self.state.seq + 1, at_ms: self.ctx.now_ms, event };
        evolve(&mut self.state, self.def, &recorded);
        self.events.push(recorded);
    }

    fn refuse_if_finished(&self) -> Result<(), Rejection> {
        match self.state.status {
            s if s.is_terminal() => Err(Rejection::Finished(s)),
            _ => Ok(()),
        }
    }

    /// Send the next attempt of (step, kind).
    fn send(&mut self, step: usize, kind: Kind) {
        let attempt = self.state.steps[step].track(kind).last_attempt + 1;
        let timeout = i64::try_from(self.def.steps[step].timeout_ms).unwrap_or(i64::MAX);
        let deadline_ms = self.ctx.now_ms.saturating_add(timeout);
        self.emit(SagaEvent::CommandSent { step: self.def.steps[step].name.clone(), kind, attempt, deadline_ms });
    }

    /// Whether a `failed` reply to (step, kind) settles it. Only an action
    /// at or before the pivot can fail for good.
    fn failure_is_conclusive(&self, step: usize, kind: Kind) -> bool {
        kind == Kind::Action && self.def.pivot().is_none_or(|p| step <= p)
    }

    fn reply(&mut self, reply: &Reply) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        let step = self.def.step_index(reply.step.as_str()).ok_or_else(|| Rejection::UnknownStep(reply.step.to_string()))?;
        let owner = &self.def.steps[step].participant;
        if *owner != reply.participant {
            return Err(Rejection::WrongParticipant { owner: owner.to_string(), sender: reply.participant.to_string() });
        }
        if self.state.phase.awaited() != Some((step, reply.kind)) {
            let awaited = self.state.phase.awaited().map(|(i, k)| format!("{}:{k}", self.def.steps[i].name));
            return Err(Rejection::NotAwaited {
                got: format!("{}:{}", reply.step, reply.kind),
                awaited: awaited.unwrap_or_else(|| "nothing".into()),
            });
        }
        let last = self.state.steps[step].track(reply.kind).last_attempt;
        if reply.attempt == 0 || reply.attempt > last {
            return Err(Rejection::AttemptNeverSent { attempt: reply.attempt, last });
        }
        let name = self.def.steps[step].name.clone();
        let (kind, attempt) = (reply.kind, reply.attempt);
        match reply.status {
            ReplyStatus::Ok => {
                let output = reply.output.clone().unwrap_or(Value::Null);
                self.emit(SagaEvent::StepSucceeded { step: name, kind, attempt, output });
                self.after_success(step, kind);
            }
            ReplyStatus::Failed if self.failure_is_conclusive(step, kind) => {
                let error = reply.error.clone();
                let why = error.as_deref().unwrap_or("no reason given");
                let reason = format!("step {name} failed: {why}");
                self.emit(SagaEvent::StepFailed { step: name, kind, attempt, error });
                self.begin_compensation(reason, step);
            }
            ReplyStatus::Failed => {
                let in_flight = matches!(self.state.phase, Phase::Awaiting { attempt: a, .. } if a == attempt);
                if !in_flight {
                    return Err(Rejection::AttemptAlreadyEnded(attempt));
                }
                self.emit(SagaEvent::AttemptFailed { step: name, kind, attempt, error: reply.error.clone() });
                self.after_attempt_ended(step, kind, attempt);
            }
        }
        Ok(())
    }

    fn after_success(&mut self, step: usize, kind: Kind) {
        match kind {
            Kind::Action if step + 1 < self.def.steps.len() => self.send(step + 1, Kind::Action),
            Kind::Action => self.emit(SagaEvent::SagaCompleted {}),
            Kind::Compensation => self.compensate_next(step),
        }
    }

    /// Compensation from here on: undo every step below `below` whose
    /// effect happened or may have, last first.
    fn begin_compensation(&mut self, reason: String, below: usize) {
        self.emit(SagaEvent::CompensationStarted { reason });
        self.compensate_next(below);
    }

    /// Send the compensation of the highest step below `below` that needs
    /// one, or finish.
    fn compensate_next(&mut self, below: usize) {
        let next = (0..below).rev().find(|&i| {
            let s = &self.state.steps[i];
            matches!(s.action.outcome, Outcome::Succeeded | Outcome::Unknown | Outcome::Pending)
                && s.compensation.outcome != Outcome::Succeeded
                && self.def.steps[i].compensation.is_some()
        });
        match next {
            Some(i) => self.send(i, Kind::Compensation),
            None => self.emit(SagaEvent::SagaCompensated {}),
        }
    }

    fn deadline(&mut self) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        match self.state.phase {
            Phase::Awaiting { step, kind, attempt, deadline_ms } if self.ctx.now_ms >= deadline_ms => {
                let step_name = self.def.steps[step].name.clone();
                if let Some(held_until_ms) = self.ctx.replies_held_until_ms.filter(|&held| held > self.ctx.now_ms) {
                    // A dead engine may hold this attempt's reply: it comes back by then.
                    self.emit(SagaEvent::DeadlineExtended { step: step_name, kind, attempt, deadline_ms: held_until_ms });
                    return Ok(());
                }
                self.emit(SagaEvent::AttemptTimedOut { step: step_name, kind, attempt });
                self.after_attempt_ended(step, kind, attempt);
                Ok(())
            }
            Phase::BackingOff { step, kind, deadline_ms, .. } if self.ctx.now_ms >= deadline_ms => {
                self.send(step, kind);
                Ok(())
            }
            _ => Err(Rejection::NothingDue),
        }
    }

    /// An attempt ended without a conclusive reply: retry after the
    /// backoff, or, out of attempts, compensate or get stuck.
    fn after_attempt_ended(&mut self, step: usize, kind: Kind, attempt: u32) {
        let def = &self.def.steps[step];
        let used = self.state.steps[step].track(kind).used(attempt);
        if used < def.retry.attempts_max {
            let delay = backoff::delay_ms(&def.retry, used, self.ctx.jitter);
            let deadline_ms = self.ctx.now_ms.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
            self.emit(SagaEvent::RetryScheduled { step: def.name.clone(), kind, attempt: attempt + 1, due_ms: deadline_ms });
            return;
        }
        let name = def.name.clone();
        let pivot = self.def.pivot();
        let reason = match kind {
            Kind::Compensation => format!("compensation of {name} did not succeed in {used} attempts"),
            Kind::Action if pivot.is_none_or(|p| step < p) => {
                let reason =
                    format!("step {name} had no conclusive reply in {used} attempts; its effect is unknown, so it is compensated too");
                self.begin_compensation(reason, step + 1);
                return;
            }
            Kind::Action if pivot == Some(step) => {
                format!("pivot {name} had no reply in {used} attempts; its effect is unknown and cannot be undone")
            }
            Kind::Action => format!("step {name} after the pivot did not succeed in {used} attempts"),
        };
        self.emit(SagaEvent::SagaStuck { step: name, kind, reason });
    }

    fn operator_retry(&mut self, reason: &str) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        let Phase::Stuck { step, kind } = self.state.phase else {
            return Err(Rejection::NotAllowed(format!("retry needs a stuck saga; this one is {}", self.state.status)));
        };
        self.emit(SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: reason.to_owned() });
        self.send(step, kind);
        Ok(())
    }

    fn operator_compensate(&mut self, reason: &str) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        let Some((step, kind)) = self.state.phase.awaited() else {
            return Err(Rejection::NotAllowed("the saga awaits nothing".into()));
        };
        let stuck = self.state.status == Status::Stuck;
        if self.state.compensating && !stuck {
            return Err(Rejection::NotAllowed("the saga is already compensating".into()));
        }
        // A pivot that was sent may have had its effect, which cannot be
        // undone; one that failed had none (SPEC §2), so compensation may go on.
        let pivot_took_effect = |p: usize| !matches!(self.state.steps[p].action.outcome, Outcome::NotSent | Outcome::Failed);
        if let Some(pivot) = self.def.pivot().filter(|&p| pivot_took_effect(p)) {
            let pivot = &self.def.steps[pivot].name;
            return Err(Rejection::NotAllowed(format!("the pivot {pivot} was sent and cannot be undone; retry or abort instead")));
        }
        self.emit(SagaEvent::OperatorIntervened { verb: OperatorVerb::Compensate, reason: reason.to_owned() });
        if self.state.compensating {
            // Stuck while compensating: resume it with a fresh budget.
            self.send(step, kind);
        } else {
            self.begin_compensation(format!("operator: {reason}"), step + 1);
        }
        Ok(())
    }

    fn operator_abort(&mut self, reason: &str) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        self.emit(SagaEvent::OperatorIntervened { verb: OperatorVerb::Abort, reason: reason.to_owned() });
        self.emit(SagaEvent::SagaAborted { reason: format!("operator: {reason}") });
        Ok(())
    }
}
