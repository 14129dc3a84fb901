//! `decide`: given a saga's state and an input, what happens next.
//!
//! Pure and total: no IO, no clock (the time is in [`Context`]), no dice
//! (the jitter is in [`Context`]). The answer is a list of new events or a
//! [`Rejection`]: a domain refusal is data, never an `Err` of IO.

use std::fmt;

use serde_json::{json, Value};

use super::backoff;
use super::event::{OperatorVerb, Recorded, SagaEvent};
use super::ids::SagaId;
use super::input::{Input, Reply, ReplyStatus};
use super::state::{evolve, new_saga, InFlight, Outcome, Phase, SagaDeadline, SagaState, Status};
use crate::definition::{Kind, SagaDefinition, StepName};

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
    /// An inconclusive `failed` (or a heartbeat) for an attempt that is not in flight.
    AttemptAlreadyEnded(u32),
    /// A heartbeat within half a timeout of the last recorded one: it
    /// restarts nothing the recorded one did not cover, and is not recorded.
    HeartbeatTooSoon,
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
            Rejection::AttemptAlreadyEnded(a) => write!(f, "attempt {a} is not in flight; a failure or heartbeat of it changes nothing"),
            Rejection::HeartbeatTooSoon => f.write_str("a heartbeat of this attempt was recorded less than half a timeout ago"),
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
            Input::Start { input, key } => Ok(start(def, id, input, key.as_deref(), ctx)),
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
    let room = state.ignored < IGNORED_RECORDED_MAX && *rejection != Rejection::HeartbeatTooSoon;
    (room && input.records_rejection()).then(|| SagaEvent::InputIgnored { input: input.to_string(), reason: rejection.to_string() })
}

fn start(def: &SagaDefinition, id: SagaId, input: &Value, key: Option<&str>, ctx: &Context) -> Decision {
    let started = SagaEvent::SagaStarted {
        saga_type: def.name.to_string(),
        version: def.version,
        definition_hash: def.content_hash.clone(),
        input: input.clone(),
        key: key.map(str::to_owned),
    };
    let first = Recorded { seq: 1, at_ms: ctx.now_ms, event: started };
    let state = new_saga(def, id, def.name.as_str(), def.version, input, key, &first);
    let mut d = Draft { def, ctx, state, events: vec![first] };
    d.start_group(0);
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

    fn name(&self, step: usize) -> StepName {
        self.def.steps[step].name.clone()
    }

    fn timeout_ms(&self, step: usize) -> i64 {
        i64::try_from(self.def.steps[step].timeout_ms).unwrap_or(i64::MAX)
    }

    /// Whether anything is in flight (awaiting a reply or backing off).
    fn in_flight(&self) -> bool {
        !self.state.phase.in_flight().is_empty()
    }

    /// Whether `step` comes before the pivot (or the saga has none): its
    /// effect can be undone.
    fn before_pivot(&self, step: usize) -> bool {
        self.def.pivot().is_none_or(|p| step < p)
    }

    /// Whether the pivot, or a step after it, was sent: from then on the
    /// saga only goes forward.
    fn pivot_sent(&self) -> bool {
        self.def.pivot().is_some_and(|p| self.state.steps[p..].iter().any(|s| s.action.last_attempt > 0))
    }

    /// Send the next attempt of (step, kind).
    fn send(&mut self, step: usize, kind: Kind) {
        let attempt = self.state.steps[step].track(kind).last_attempt + 1;
        let deadline_ms = self.ctx.now_ms.saturating_add(self.timeout_ms(step));
        self.emit(SagaEvent::CommandSent { step: self.name(step), kind, attempt, deadline_ms });
    }

    /// Start the group (or lone step) at `first`: the steps whose `when`
    /// does not hold are skipped, the others' first commands sent at once.
    /// A group whose steps are all skipped has succeeded: the next starts.
    fn start_group(&mut self, mut first: usize) {
        while first < self.def.steps.len() {
            let group = self.def.stage(first);
            let document = json!({ "input": self.state.input, "results": self.state.results_before(self.def, group.start) });
            let mut sent = false;
            for i in group.clone() {
                if self.def.steps[i].when.as_ref().is_some_and(|p| !holds(p.resolve(&document))) {
                    self.emit(SagaEvent::StepSkipped { step: self.name(i) });
                } else {
                    self.send(i, Kind::Action);
                    sent = true;
                }
            }
            if sent {
                return;
            }
            first = group.end;
        }
        self.emit(SagaEvent::SagaCompleted {});
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
        let awaited = self.state.phase.awaited();
        if !awaited.contains(&(step, reply.kind)) {
            let names: Vec<String> = awaited.iter().map(|(i, k)| format!("{}:{k}", self.def.steps[*i].name)).collect();
            return Err(Rejection::NotAwaited {
                got: format!("{}:{}", reply.step, reply.kind),
                awaited: if names.is_empty() { "nothing".into() } else { names.join(", ") },
            });
        }
        let last = self.state.steps[step].track(reply.kind).last_attempt;
        if reply.attempt == 0 || reply.attempt > last {
            return Err(Rejection::AttemptNeverSent { attempt: reply.attempt, last });
        }
        let name = self.name(step);
        let (kind, attempt) = (reply.kind, reply.attempt);
        let in_flight = self.state.phase.get(step, kind).copied().filter(|f| !f.backing_off && f.attempt == attempt);
        match reply.status {
            ReplyStatus::Ok => {
                let output = reply.output.clone().unwrap_or(Value::Null);
                self.emit(SagaEvent::StepSucceeded { step: name, kind, attempt, output });
                self.after_success(step);
            }
            ReplyStatus::Working => {
                let Some(f) = in_flight else { return Err(Rejection::AttemptAlreadyEnded(attempt)) };
                let timeout = self.timeout_ms(step);
                if f.heartbeat_ms.is_some_and(|h| self.ctx.now_ms < h.saturating_add(timeout / 2)) {
                    return Err(Rejection::HeartbeatTooSoon);
                }
                // Recorded at most once per half timeout, the deadline also
                // covers the heartbeats of that half that are not recorded.
                let deadline_ms = f.deadline_ms.max(self.ctx.now_ms.saturating_add(timeout).saturating_add(timeout / 2));
                self.emit(SagaEvent::HeartbeatRecorded { step: name, kind, attempt, deadline_ms });
            }
            ReplyStatus::Failed if self.failure_is_conclusive(step, kind) => {
                let error = reply.error.clone();
                let why = error.as_deref().unwrap_or("no reason given");
                let reason = format!("step {name} failed: {why}");
                self.emit(SagaEvent::StepFailed { step: name, kind, attempt, error });
                self.after_failure(reason);
            }
            ReplyStatus::Failed => {
                if in_flight.is_none() {
                    return Err(Rejection::AttemptAlreadyEnded(attempt));
                }
                self.emit(SagaEvent::AttemptFailed { step: name, kind, attempt, error: reply.error.clone() });
                self.after_attempt_ended(step, kind, attempt);
            }
        }
        Ok(())
    }

    /// A (step, kind) succeeded: once nothing of its group is in flight,
    /// go on forward or with the compensation.
    fn after_success(&mut self, step: usize) {
        if self.in_flight() {
            return;
        }
        if self.state.compensating {
            self.compensate_next();
        } else {
            self.go_forward(step);
        }
    }

    /// An action failed for good: compensation begins (at once, the
    /// siblings still in flight keep going), and its first commands wait
    /// until nothing is in flight.
    fn after_failure(&mut self, reason: String) {
        if !self.state.compensating {
            let keep_in_flight = self.in_flight();
            self.emit(SagaEvent::CompensationStarted { reason, keep_in_flight });
        }
        if !self.in_flight() {
            self.compensate_next();
        }
    }

    /// Nothing in flight and the group of `step` is over: stuck if one of
    /// its steps ran out of attempts or the saga deadline passed (after
    /// the pivot); compensating if it passed before; otherwise the next
    /// group starts, or the saga completes.
    fn go_forward(&mut self, step: usize) {
        let group = self.def.stage(step);
        if let Some(i) = group.clone().find(|&i| self.state.exhausted(i, Kind::Action)) {
            let reason = self.stuck_reason(i, Kind::Action);
            self.emit(SagaEvent::SagaStuck { step: self.name(i), kind: Kind::Action, reason });
            return;
        }
        if group.end < self.def.steps.len() {
            if self.saga_deadline_due() {
                self.saga_deadline_passed();
                if self.state.compensating {
                    return;
                }
            }
            if self.state.deadline == SagaDeadline::Passed {
                self.emit(SagaEvent::SagaStuck { step: self.name(group.end), kind: Kind::Action, reason: DEADLINE.into() });
                return;
            }
        }
        self.start_group(group.end);
    }

    /// Why (step, kind) makes the saga stuck now that its attempts ran out.
    /// Once the saga deadline has passed (after the pivot), the reason is
    /// `deadline` (SPEC §7): the budget is what the operator must decide on.
    fn stuck_reason(&self, step: usize, kind: Kind) -> String {
        if kind == Kind::Action && self.state.deadline == SagaDeadline::Passed {
            return DEADLINE.into();
        }
        let track = self.state.steps[step].track(kind);
        let used = track.used(track.last_attempt);
        let name = self.name(step);
        match kind {
            Kind::Compensation => format!("compensation of {name} did not succeed in {used} attempts"),
            Kind::Action if self.def.pivot() == Some(step) => {
                format!("pivot {name} had no reply in {used} attempts; its effect is unknown and cannot be undone")
            }
            Kind::Action => format!("step {name} after the pivot did not succeed in {used} attempts"),
        }
    }

    /// Compensation from here on: every action in flight is abandoned
    /// (of unknown effect), then undone with the rest, last group first.
    fn begin_compensation(&mut self, reason: String) {
        self.emit(SagaEvent::CompensationStarted { reason, keep_in_flight: false });
        self.compensate_next();
    }

    /// Whether step `i` must be undone: its action happened or may have,
    /// its compensation has not succeeded yet.
    fn needs_compensation(&self, i: usize) -> bool {
        let s = &self.state.steps[i];
        matches!(s.action.outcome, Outcome::Succeeded | Outcome::Unknown | Outcome::Pending)
            && s.compensation.outcome != Outcome::Succeeded
            && self.def.steps[i].compensation.is_some()
    }

    /// Nothing in flight while compensating: undo the last group that needs
    /// it, the compensations of its steps at once; stuck if one of them ran
    /// out of attempts; compensated when nothing is left to undo.
    fn compensate_next(&mut self) {
        for group in self.def.stages().into_iter().rev() {
            let need: Vec<usize> = group.filter(|&i| self.needs_compensation(i)).collect();
            if need.is_empty() {
                continue;
            }
            if let Some(&i) = need.iter().find(|&&i| self.state.exhausted(i, Kind::Compensation)) {
                let reason = self.stuck_reason(i, Kind::Compensation);
                self.emit(SagaEvent::SagaStuck { step: self.name(i), kind: Kind::Compensation, reason });
                return;
            }
            for i in need {
                self.send(i, Kind::Compensation);
            }
            return;
        }
        self.emit(SagaEvent::SagaCompensated {});
    }

    fn deadline(&mut self) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        let mut acted = false;
        if self.state.status == Status::Running && self.saga_deadline_due() {
            self.saga_deadline_passed();
            acted = true;
        }
        let now = self.ctx.now_ms;
        let due: Vec<InFlight> = self.state.phase.in_flight().iter().filter(|f| now >= f.deadline_ms).copied().collect();
        for f in due {
            // What an earlier one decided may have ended this one.
            if self.state.phase.get(f.step, f.kind) != Some(&f) {
                continue;
            }
            acted = true;
            if f.backing_off {
                self.send(f.step, f.kind);
                continue;
            }
            let step = self.name(f.step);
            if let Some(held_until_ms) = self.ctx.replies_held_until_ms.filter(|&held| held > now) {
                // A dead engine may hold this attempt's reply: it comes back by then.
                self.emit(SagaEvent::DeadlineExtended { step, kind: f.kind, attempt: f.attempt, deadline_ms: held_until_ms });
                continue;
            }
            self.emit(SagaEvent::AttemptTimedOut { step, kind: f.kind, attempt: f.attempt });
            self.after_attempt_ended(f.step, f.kind, f.attempt);
        }
        if acted {
            Ok(())
        } else {
            Err(Rejection::NothingDue)
        }
    }

    /// Whether the saga deadline has come and not been acted on, while
    /// the saga still runs forward.
    fn saga_deadline_due(&self) -> bool {
        let pending = matches!(self.state.deadline, SagaDeadline::Pending { at_ms } if self.ctx.now_ms >= at_ms);
        pending && !self.state.compensating
    }

    /// The saga deadline passed (SPEC §7): before the pivot was sent every
    /// action in flight is abandoned, of unknown effect, and the saga
    /// compensates; after it, no group starts any more.
    fn saga_deadline_passed(&mut self) {
        self.emit(SagaEvent::SagaDeadlinePassed {});
        if !self.pivot_sent() {
            self.begin_compensation(DEADLINE.into());
        }
    }

    /// An attempt ended without a conclusive reply: retry after the
    /// backoff, or, out of attempts, compensate or get stuck (once the
    /// other steps of its group are no longer in flight).
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
        let unknown = kind == Kind::Action && self.before_pivot(step);
        let reason = format!("step {name} had no conclusive reply in {used} attempts; its effect is unknown, so it is compensated too");
        if self.in_flight() {
            // Its group's other steps are still in flight: what follows waits for them.
            self.emit(SagaEvent::AttemptsExhausted { step: name, kind });
            if unknown && !self.state.compensating {
                self.emit(SagaEvent::CompensationStarted { reason, keep_in_flight: true });
            }
            return;
        }
        match kind {
            Kind::Action if unknown && self.state.compensating => {
                self.emit(SagaEvent::AttemptsExhausted { step: name, kind });
                self.compensate_next();
            }
            Kind::Action if unknown => self.begin_compensation(reason),
            _ => {
                let reason = self.stuck_reason(step, kind);
                self.emit(SagaEvent::SagaStuck { step: name, kind, reason });
            }
        }
    }

    fn operator_retry(&mut self, reason: &str) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        let Phase::Stuck { step, kind } = self.state.phase else {
            return Err(Rejection::NotAllowed(format!("retry needs a stuck saga; this one is {}", self.state.status)));
        };
        self.emit(SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: reason.to_owned() });
        self.resume(step, kind);
        Ok(())
    }

    /// A stuck saga goes on with a fresh budget: every (step, kind) of the
    /// stuck group that ran out of attempts is sent again; stuck on the
    /// saga deadline, the group it did not start starts.
    fn resume(&mut self, step: usize, kind: Kind) {
        let again: Vec<usize> = self.def.stage(step).filter(|&i| self.state.exhausted(i, kind)).collect();
        match (again.is_empty(), kind) {
            (false, _) => again.into_iter().for_each(|i| self.send(i, kind)),
            (true, Kind::Action) => self.start_group(step),
            (true, Kind::Compensation) => self.compensate_next(),
        }
    }

    fn operator_compensate(&mut self, reason: &str) -> Result<(), Rejection> {
        self.refuse_if_finished()?;
        if self.state.phase.awaited().is_empty() {
            return Err(Rejection::NotAllowed("the saga awaits nothing".into()));
        }
        let stuck = self.state.status == Status::Stuck;
        if self.state.compensating && !stuck {
            return Err(Rejection::NotAllowed("the saga is already compensating".into()));
        }
        // A pivot that was sent may have had its effect, which cannot be
        // undone; one that failed had none (SPEC §2), so compensation may go
        // on. A step after it that was sent (the pivot skipped) cannot be undone either.
        let took_effect = |p: usize| {
            let steps = &self.state.steps;
            !matches!(steps[p].action.outcome, Outcome::NotSent | Outcome::Failed | Outcome::Skipped)
                || steps[p + 1..].iter().any(|s| s.action.last_attempt > 0)
        };
        if let Some(pivot) = self.def.pivot().filter(|&p| took_effect(p)) {
            let pivot = &self.def.steps[pivot].name;
            return Err(Rejection::NotAllowed(format!("the pivot {pivot} was sent and cannot be undone; retry or abort instead")));
        }
        self.emit(SagaEvent::OperatorIntervened { verb: OperatorVerb::Compensate, reason: reason.to_owned() });
        match self.state.phase {
            // Stuck while compensating: resume it with a fresh budget.
            Phase::Stuck { step, kind } if self.state.compensating => self.resume(step, kind),
            _ => self.begin_compensation(format!("operator: {reason}")),
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

/// The reason recorded when the saga deadline passes (SPEC §7).
pub const DEADLINE: &str = "deadline";

/// Whether a `when` pointer's value lets its step run: anything but
/// `false`, `null` or nothing.
fn holds(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Null) | Some(Value::Bool(false)))
}
