//! The invariants of SPEC §6 that one saga's log must hold.
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

    // 2. completed ⇒ every action succeeded, none compensated.
    if state.status == Status::Completed {
        if facts.succeeded_actions.len() != def.steps.len() {
            fail(2, format!("completed with {} of {} actions succeeded", facts.succeeded_actions.len(), def.steps.len()));
        }
        if facts.compensation_began || !facts.compensations_sent.is_empty() {
            fail(2, "completed, yet compensation began".into());
        }
    }

    // 3. compensated ⇒ exactly the succeeded-or-unknown steps were undone, last first.
    if state.status == Status::Compensated {
        let need: Vec<usize> = (0..def.steps.len()).rev().filter(|i| facts.needs_compensation(*i)).collect();
        if facts.compensated_order != need {
            fail(
                3,
                format!(
                    "compensated steps {:?}, expected {:?} (reverse order of succeeded or unknown steps)",
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
    failed_actions: BTreeSet<usize>,
    sent_actions: BTreeSet<usize>,
    compensations_sent: BTreeSet<usize>,
    compensated_order: Vec<usize>,
    compensation_began: bool,
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
            SagaEvent::CompensationStarted { .. } => self.compensation_began = true,
            _ => {}
        }
    }

    /// 4. No action for step N+1 before step N succeeded; none after compensation began.
    fn check_action_order(&mut self, def: &SagaDefinition, step: usize, seq: u64) {
        if self.compensation_began {
            self.order_violations.push(format!("seq {seq}: action {} sent after compensation began", def.steps[step].name));
        }
        if step > 0 && !self.succeeded_actions.contains(&(step - 1)) {
            self.order_violations.push(format!(
                "seq {seq}: action {} sent before {} succeeded",
                def.steps[step].name,
                def.steps[step - 1].name
            ));
        }
        self.sent_actions.insert(step);
    }

    /// Compensations one at a time, last step first: none for a step while
    /// a later step that needs undoing is not undone yet.
    fn check_compensation_order(&mut self, def: &SagaDefinition, step: usize, seq: u64) {
        let later_pending = (step + 1..def.steps.len()).find(|j| self.needs_compensation(*j) && !self.compensated_order.contains(j));
        if let Some(j) = later_pending {
            self.order_violations
                .push(format!("seq {seq}: compensation of {} sent before {} was undone", def.steps[step].name, def.steps[j].name));
        }
        self.compensations_sent.insert(step);
    }
}
