//! The invariants of SPEC §6 that one saga's log must hold, read with
//! "group" for "step" (SPEC §7): no action of a later group before every
//! step of the earlier groups succeeded (or was skipped); the
//! compensations of a group only after every later group's succeeded; a
//! skipped step never sent nor compensated.
//!
//! Shared by the property tests and `jetsaga check`: both hand every log
//! the simulator produced to [`check_log`]. World-level invariants (what
//! went over the wire, what participants did) are in `sim::checks`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::event::{Recorded, SagaEvent};
use super::ids::SagaId;
use super::state::{SagaState, Status};
use crate::definition::{Kind, SagaDefinition};

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The saga it concerns (`None`: the whole run).
    pub saga_id: Option<SagaId>,
    /// The number of the invariant in SPEC §6.
    pub invariant: u8,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.saga_id {
            Some(id) => write!(f, "invariant {} broken for saga {id}: {}", self.invariant, self.detail),
            None => write!(f, "invariant {} broken: {}", self.invariant, self.detail),
        }
    }
}

/// Checks one finished saga's log and final state. `quiescent`: the run
/// ended with nothing left to deliver, so no saga may still be in progress.
pub fn check_log(def: &SagaDefinition, log: &[Recorded], state: &SagaState, quiescent: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut fail = |invariant: u8, detail: String| out.push(Violation { saga_id: Some(state.id), invariant, detail });

    // 8. Appended once: seq 1..n without gaps or repeats, starting with saga_started.
    for (i, r) in log.iter().enumerate() {
        if r.seq != i as u64 + 1 {
            fail(8, format!("event {} has seq {}", i + 1, r.seq));
        }
    }
    if !matches!(log.first().map(|r| &r.event), Some(SagaEvent::SagaStarted { .. })) {
        fail(8, "the log does not begin with saga_started".into());
    }

    // 1. Ends completed, compensated, or stuck/aborted with a reason.
    if quiescent && matches!(state.status, Status::Running | Status::Compensating) {
        fail(1, format!("still {} after every participant answered", state.status));
    }
    if matches!(state.status, Status::Stuck | Status::Aborted) && state.reason.as_deref().is_none_or(str::is_empty) {
        fail(1, format!("{} without a recorded reason", state.status));
    }

    let facts = Facts::gather(def, log);
    for detail in &facts.order_violations {
        fail(4, detail.clone());
    }
    for detail in &facts.attempt_violations {
        fail(7, detail.clone());
    }

    // 2. completed ⇒ every action succeeded (or was skipped), none compensated.
    if state.status == Status::Completed {
        let done = facts.succeeded_actions.len() + facts.skipped.len();
        if done != def.steps.len() {
            fail(2, format!("completed with {done} of {} actions succeeded or skipped", def.steps.len()));
        }
        if facts.compensation_began || !facts.compensations_sent.is_empty() {
            fail(2, "completed, yet compensation began".into());
        }
    }

    // 3. compensated ⇒ exactly the succeeded-or-unknown steps were undone,
    // last group first (the steps of one group in any order).
    if state.status == Status::Compensated {
        let need: Vec<usize> = (0..def.steps.len()).rev().filter(|i| facts.needs_compensation(*i)).collect();
        let mut done = facts.compensated_order.clone();
        let reversed =
            done.windows(2).all(|w| def.stage(w[1]).start < def.stage(w[0]).start || (w[1] != w[0] && def.stage(w[1]) == def.stage(w[0])));
        done.sort_unstable_by(|a, b| b.cmp(a));
        if done != need || !reversed {
            fail(
                3,
                format!(
                    "compensated steps {:?}, expected {:?} (reverse order of the groups of succeeded or unknown steps)",
                    names(def, &facts.compensated_order),
                    names(def, &need)
                ),
            );
        }
    }
    for step in &facts.compensations_sent {
        if !facts.needs_compensation(*step) {
            fail(3, format!("a compensation was sent for {}, which reported failed or was never sent", def.steps[*step].name));
        }
    }
    out
}

fn names(def: &SagaDefinition, steps: &[usize]) -> Vec<String> {
    steps.iter().map(|&i| def.steps[i].name.to_string()).collect()
}

/// What a log says happened, gathered in one pass.
#[derive(Default)]
struct Facts {
    succeeded_actions: BTreeSet<usize>,
    skipped: BTreeSet<usize>,
    failed_actions: BTreeSet<usize>,
    sent_actions: BTreeSet<usize>,
    compensations_sent: BTreeSet<usize>,
    compensated_order: Vec<usize>,
    compensation_began: bool,
    /// Compensation began abandoning the actions in flight: none is sent again.
    actions_abandoned: bool,
    order_violations: Vec<String>,
    attempt_violations: Vec<String>,
}

impl Facts {
    fn needs_compensation(&self, step: usize) -> bool {
        self.sent_actions.contains(&step) && !self.failed_actions.contains(&step)
    }

    fn gather(def: &SagaDefinition, log: &[Recorded]) -> Facts {
        let mut facts = Facts::default();
        let mut last_attempt: BTreeMap<(usize, Kind), u32> = BTreeMap::new();
        for recorded in log {
            facts.observe(def, recorded, &mut last_attempt);
        }
        facts
    }

    fn observe(&mut self, def: &SagaDefinition, recorded: &Recorded, last_attempt: &mut BTreeMap<(usize, Kind), u32>) {
        let index = |name: &str| def.step_index(name);
        match &recorded.event {
            SagaEvent::CommandSent { step, kind, attempt, .. } => {
                let Some(i) = index(step.as_str()) else { return };
                let previous = last_attempt.insert((i, *kind), *attempt).unwrap_or(0);
                if *attempt <= previous {
                    self.attempt_violations.push(format!("{step}:{kind} attempt {attempt} sent after attempt {previous}"));
                }
                match kind {
                    Kind::Action => self.check_action_order(def, i, recorded.seq),
                    Kind::Compensation => self.check_compensation_order(def, i, recorded.seq),
                }
            }
            SagaEvent::StepSucceeded { step, kind, .. } => {
                let Some(i) = index(step.as_str()) else { return };
                match kind {
                    Kind::Action if !self.succeeded_actions.insert(i) => self.order_violations.push(format!("{step} succeeded twice")),
                    Kind::Action => {}
                    Kind::Compensation if self.compensated_order.contains(&i) => {
                        self.order_violations.push(format!("compensation of {step} succeeded twice"))
                    }
                    Kind::Compensation => self.compensated_order.push(i),
                }
            }
            SagaEvent::StepFailed { step, .. } => {
                if let Some(i) = index(step.as_str()) {
                    self.failed_actions.insert(i);
                }
            }
            SagaEvent::CompensationStarted { keep_in_flight, .. } => {
                self.compensation_began = true;
                self.actions_abandoned |= !keep_in_flight;
            }
            SagaEvent::StepSkipped { step } => {
                let Some(i) = index(step.as_str()) else { return };
                if self.sent_actions.contains(&i) || !self.skipped.insert(i) {
                    self.order_violations.push(format!("seq {}: {step} skipped after it was sent or skipped", recorded.seq));
                }
            }
            _ => {}
        }
    }

    /// Invariant 4: no action of a group before every step of the groups
    /// before it succeeded (or was skipped); none first sent after
    /// compensation began, and none at all once it abandoned the actions in
    /// flight (the siblings of a failed step keep their attempts); a
    /// skipped step never.
    fn check_action_order(&mut self, def: &SagaDefinition, step: usize, seq: u64) {
        let name = &def.steps[step].name;
        if self.actions_abandoned || (self.compensation_began && !self.sent_actions.contains(&step)) {
            self.order_violations.push(format!("seq {seq}: action {name} sent after compensation began"));
        }
        if self.skipped.contains(&step) {
            self.order_violations.push(format!("seq {seq}: action {name} sent, though it was skipped"));
        }
        let before = 0..def.stage(step).start;
        if let Some(j) = before.clone().find(|j| !self.succeeded_actions.contains(j) && !self.skipped.contains(j)) {
            self.order_violations.push(format!("seq {seq}: action {name} sent before {} succeeded", def.steps[j].name));
        }
        self.sent_actions.insert(step);
    }

    /// Compensations group by group, last group first: none for a step
    /// while a step of a later group that needs undoing is not undone yet.
    fn check_compensation_order(&mut self, def: &SagaDefinition, step: usize, seq: u64) {
        let later = def.stage(step).end..def.steps.len();
        let later_pending = later.into_iter().find(|j| self.needs_compensation(*j) && !self.compensated_order.contains(j));
        if let Some(j) = later_pending {
            self.order_violations
                .push(format!("seq {seq}: compensation of {} sent before {} was undone", def.steps[step].name, def.steps[j].name));
        }
        self.compensations_sent.insert(step);
    }
}
