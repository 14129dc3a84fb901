//! Golden logs: event logs written by jetsaga's first event schema (v1,
//! before SPEC §7), checked in under `tests/fixtures/golden/` with the
//! state they folded to after each decision. New event shapes and fields
//! must leave these folding exactly as before.
//!
//! They were written once by the v1 core (`decide` and `recover` of main
//! before SPEC §7, on `trip.toml` beside them) from scenarios covering
//! every v1 event: completion, a business failure, an unknown effect, a
//! stuck pivot retried by an operator, a stuck compensation resumed by a
//! late reply, ignored replies and restarts, an operator's compensation
//! and an abort. The writer is gone (this module may not touch files);
//! the files are data now, never regenerated.

use serde_json::{json, Value};

use super::*;
use crate::definition::{parse, SagaDefinition};

const DEFINITION: &str = include_str!("../../tests/fixtures/golden/trip.toml");

/// Every golden log, by file name.
const LOGS: &[(&str, &str)] = &[
    ("completed.json", include_str!("../../tests/fixtures/golden/completed.json")),
    ("compensated.json", include_str!("../../tests/fixtures/golden/compensated.json")),
    ("unknown_effect.json", include_str!("../../tests/fixtures/golden/unknown_effect.json")),
    ("stuck_pivot_retried.json", include_str!("../../tests/fixtures/golden/stuck_pivot_retried.json")),
    ("stuck_compensation.json", include_str!("../../tests/fixtures/golden/stuck_compensation.json")),
    ("ignored_and_recovered.json", include_str!("../../tests/fixtures/golden/ignored_and_recovered.json")),
    ("operator_compensate.json", include_str!("../../tests/fixtures/golden/operator_compensate.json")),
    ("aborted.json", include_str!("../../tests/fixtures/golden/aborted.json")),
];

fn definition() -> SagaDefinition {
    parse("trip.toml", DEFINITION).expect("the golden definition loads")
}

/// The state as the golden files show it: every field a v1 state had,
/// the phase as the list of what is in flight.
pub(super) fn view(def: &SagaDefinition, state: &SagaState) -> Value {
    let track = |t: &Track| {
        json!({
            "last_attempt": t.last_attempt,
            "first_sent_ms": t.first_sent_ms,
            "budget_start": t.budget_start,
            "outcome": format!("{:?}", t.outcome),
            "output": t.output,
            "error": t.error,
        })
    };
    let steps: Vec<Value> =
        state.steps.iter().map(|s| json!({"action": track(&s.action), "compensation": track(&s.compensation)})).collect();
    json!({
        "saga_type": state.saga_type,
        "version": state.version,
        "input": state.input,
        "status": state.status.as_str(),
        "phase": phase_view(def, state),
        "deadline_ms": saga_deadline_ms(state),
        "current_step": current_step(def, state),
        "steps": steps,
        "compensating": state.compensating,
        "reason": state.reason,
        "seq": state.seq,
        "ignored": state.ignored,
        "started_at_ms": state.started_at_ms,
        "updated_at_ms": state.updated_at_ms,
    })
}

fn phase_view(def: &SagaDefinition, state: &SagaState) -> Value {
    let name = |i: usize| def.steps[i].name.to_string();
    match &state.phase {
        Phase::Waiting(all) => {
            let all: Vec<Value> = all
                .iter()
                .map(|f| json!({"step": name(f.step), "kind": f.kind, "attempt": f.attempt, "deadline_ms": f.deadline_ms, "backing_off": f.backing_off}))
                .collect();
            json!({ "in_flight": all })
        }
        Phase::Stuck { step, kind } => json!({"stuck": {"step": name(*step), "kind": kind}}),
        Phase::Idle => json!("idle"),
    }
}

fn saga_deadline_ms(state: &SagaState) -> Option<i64> {
    state.deadline_ms()
}

fn current_step(def: &SagaDefinition, state: &SagaState) -> Option<String> {
    state.current_step(def)
}

/// A golden file: the log, and the state after each decision.
fn read(text: &str) -> (Vec<Recorded>, Vec<(u64, Value)>) {
    let file: Value = serde_json::from_str(text).expect("golden JSON");
    let events = file["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| Recorded {
            seq: e["seq"].as_u64().expect("seq"),
            at_ms: e["at_ms"].as_i64().expect("at_ms"),
            event: decode(1, e["type"].as_str().expect("type"), e["data"].clone()).expect("a v1 event decodes"),
        })
        .collect();
    let states = file["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|s| (s["after_seq"].as_u64().expect("after_seq"), s["state"].clone()))
        .collect();
    (events, states)
}

#[test]
fn v1_golden_logs_fold_exactly_as_before() {
    let def = definition();
    let id = SagaId::from_u128(7);
    for (file, text) in LOGS {
        let (events, states) = read(text);
        assert!(!states.is_empty(), "{file} has no expected states");
        for (after_seq, expected) in states {
            let prefix: Vec<&Recorded> = events.iter().filter(|r| r.seq <= after_seq).collect();
            let state = fold(&def, id, prefix).expect("a golden log starts with saga_started");
            assert_eq!(view(&def, &state), expected, "{file} after seq {after_seq}");
        }
    }
}
