//! The SPEC §6 checks over a whole simulated run: every saga's log (via
//! [`crate::saga::invariants`]) and what crossed the wire.

use std::collections::BTreeMap;

use super::world::{decode_stored, fold_stored, Outcome};
use crate::definition::{Kind, SagaDefinition};
use crate::saga::invariants::{check_log, Violation};
use crate::saga::{idempotency_key, message_id, Recorded, ReplyStatus, SagaEvent, SagaId};

/// Every violation the run shows, the world's own first.
pub(super) fn check(def: &SagaDefinition, out: &Outcome) -> Vec<Violation> {
    let mut violations = out.violations.clone();
    let fail = |violations: &mut Vec<Violation>, saga_id: Option<SagaId>, invariant: u8, detail: String| {
        violations.push(Violation { saga_id, invariant, detail })
    };
    if !out.quiescent {
        fail(&mut violations, None, 1, "the run did not settle: events kept coming".into());
    }
    for saga_id in &out.started {
        if !out.store.contains_key(saga_id) {
            fail(&mut violations, Some(*saga_id), 7, "a start request was lost".into());
        }
    }
    for saga_id in out.store.keys().filter(|id| !out.started.contains(id)) {
        fail(&mut violations, Some(*saga_id), 7, "a saga no start asked for: one start made two sagas".into());
    }
    for (saga_id, stored) in &out.store {
        let Some(log) = stored.iter().map(decode_stored).collect::<Option<Vec<Recorded>>>() else {
            fail(&mut violations, Some(*saga_id), 6, "a stored event does not decode".into());
            continue;
        };
        let Some(state) = fold_stored(def, *saga_id, stored) else {
            fail(&mut violations, Some(*saga_id), 8, "the log does not fold".into());
            continue;
        };
        violations.extend(check_log(def, &log, &state, out.quiescent));
        violations.extend(genuine_replies(def, *saga_id, &log, out));
    }
    violations.extend(wire(out));
    violations.extend(compensation_effects(def, out));
    violations
}

/// Invariant 5: every reply that changed a saga is one a participant
/// really sent; forged, duplicate or misrouted replies never count.
fn genuine_replies(def: &SagaDefinition, saga_id: SagaId, log: &[Recorded], out: &Outcome) -> Vec<Violation> {
    let mut violations = Vec::new();
    for recorded in log {
        let (step, kind, attempt, status) = match &recorded.event {
            SagaEvent::StepSucceeded { step, kind, attempt, .. } => (step, *kind, *attempt, ReplyStatus::Ok),
            SagaEvent::StepFailed { step, kind, attempt, .. } | SagaEvent::AttemptFailed { step, kind, attempt, .. } => {
                (step, *kind, *attempt, ReplyStatus::Failed)
            }
            _ => continue,
        };
        let Some(index) = def.step_index(step.as_str()) else { continue };
        if !out.genuine.contains(&(saga_id, index, kind, attempt, status)) {
            violations.push(Violation {
                saga_id: Some(saga_id),
                invariant: 5,
                detail: format!("seq {}: {status:?} for {step}:{kind}#{attempt} was never sent by its participant", recorded.seq),
            });
        }
    }
    violations
}

/// 4 and 7 on the wire: a command goes out only after its `command_sent`
/// committed, and every (re-)send carries the same idempotency key.
fn wire(out: &Outcome) -> Vec<Violation> {
    let mut violations = Vec::new();
    for published in &out.published {
        let c = &published.command;
        let key = (c.saga_id, c.step.to_string(), c.kind, c.attempt);
        match out.committed_commands.get(&key) {
            Some(&at) if at <= published.at_ms => {}
            _ => violations.push(Violation {
                saga_id: Some(c.saga_id),
                invariant: 4,
                detail: format!("{}:{}#{} was published without a committed command_sent", c.step, c.kind, c.attempt),
            }),
        }
        if c.idempotency_key != idempotency_key(c.saga_id, c.step.as_str(), c.kind)
            || c.message_id != message_id(c.saga_id, c.step.as_str(), c.kind, c.attempt)
        {
            violations.push(Violation {
                saga_id: Some(c.saga_id),
                invariant: 7,
                detail: format!("{}:{} re-sent with another key", c.step, c.kind),
            });
        }
    }
    violations
}

/// 3 at the participants: compensations took effect last group first, each
/// once (the steps of one group in any order). (A compensation may reach a
/// participant that refused the action when the refusal was lost: the
/// step's effect was unknown to the saga.)
fn compensation_effects(def: &SagaDefinition, out: &Outcome) -> Vec<Violation> {
    let mut by_saga: BTreeMap<SagaId, Vec<usize>> = BTreeMap::new();
    for effect in out.effects.iter().filter(|e| e.kind == Kind::Compensation) {
        by_saga.entry(effect.saga_id).or_default().push(effect.step);
    }
    let mut violations = Vec::new();
    for (saga_id, steps) in by_saga {
        let out_of_order = |w: &[usize]| w[1] == w[0] || def.stage(w[1]).start > def.stage(w[0]).start;
        if steps.windows(2).any(out_of_order) {
            let names: Vec<&str> = steps.iter().map(|&i| def.steps[i].name.as_str()).collect();
            violations.push(Violation {
                saga_id: Some(saga_id),
                invariant: 3,
                detail: format!("compensations took effect in the order {names:?}"),
            });
        }
    }
    violations
}
