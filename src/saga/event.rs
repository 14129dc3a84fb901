//! The persisted events of a saga: the only thing jetsaga stores.
//!
//! Events are immutable and versioned. [`encode`] turns one into the
//! `(type, data)` pair a store keeps beside [`SCHEMA_VERSION`]; [`decode`]
//! reads any schema version ever written, so old logs stay readable: a
//! future schema adds an upcasting arm there, never edits an old variant.
//!
//! Schema 2 (SPEC §7) only adds: the events `step_skipped`,
//! `heartbeat_recorded`, `attempts_exhausted` and `saga_deadline_passed`,
//! and `keep_in_flight` on `compensation_started` (absent: `false`, what
//! every schema 1 event meant). A schema 1 log reads, and folds, as before
//! (the golden logs under `tests/fixtures/golden` hold it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{Kind, StepName};

/// The schema version written with every new event.
pub const SCHEMA_VERSION: u16 = 2;

/// Something that happened to a saga instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case", deny_unknown_fields)]
pub enum SagaEvent {
    /// The saga was started with this input on this definition version.
    SagaStarted {
        /// The definition's name.
        saga_type: String,
        /// The definition version the saga keeps for its whole life.
        version: u32,
        /// Content hash of that definition version.
        definition_hash: String,
        /// The start request's input, passed to every command.
        input: Value,
        /// The start's business key (SPEC §7), if it had one; absent in
        /// every log written before keys, which folds as before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A command was decided; it is published after this event commits
    /// (the log is the outbox).
    CommandSent {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// Attempt number; never repeats for a (step, kind).
        attempt: u32,
        /// When the attempt times out without a reply (ms since the epoch).
        deadline_ms: i64,
    },
    /// A conclusive `ok` reply.
    StepSucceeded {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// The attempt the reply answered.
        attempt: u32,
        /// The participant's output (`null` when it sent none).
        output: Value,
    },
    /// A conclusive business failure of an action at or before the pivot:
    /// the step had no effect.
    StepFailed {
        /// The step.
        step: StepName,
        /// Always `action`.
        kind: Kind,
        /// The attempt the reply answered.
        attempt: u32,
        /// The participant's explanation.
        error: Option<String>,
    },
    /// A `failed` reply that is not conclusive (a compensation, or a step
    /// after the pivot): it ends the attempt early.
    AttemptFailed {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// The attempt that ended.
        attempt: u32,
        /// The participant's explanation.
        error: Option<String>,
    },
    /// No reply before the attempt's deadline.
    AttemptTimedOut {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// The attempt that ended.
        attempt: u32,
    },
    /// The orchestrator restarted while the attempt was in flight: its
    /// reply may still be held by the process that died, so the attempt
    /// gets until `deadline_ms` (SPEC §2).
    DeadlineExtended {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// The attempt in flight.
        attempt: u32,
        /// The new deadline (ms since the epoch).
        deadline_ms: i64,
    },
    /// The next attempt is sent when `due_ms` has passed (backoff with
    /// jitter): the deadline of the backoff phase.
    RetryScheduled {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// The attempt that will be sent.
        attempt: u32,
        /// When it is sent (ms since the epoch).
        due_ms: i64,
    },
    /// The saga started undoing its finished steps, in reverse order.
    CompensationStarted {
        /// Why.
        reason: String,
        /// The actions still in flight (a failed step's siblings in its
        /// parallel group) go on until each is conclusive or unknown;
        /// `false` (schema 1's only meaning): they are abandoned, of unknown effect.
        #[serde(default, skip_serializing_if = "is_false")]
        keep_in_flight: bool,
    },
    /// The step's `when` did not hold when its group started: it is never
    /// sent and never compensated (schema 2).
    StepSkipped {
        /// The step.
        step: StepName,
    },
    /// A participant's `"status": "working"` reply to the attempt in
    /// flight: its timeout starts again, until `deadline_ms` (schema 2).
    HeartbeatRecorded {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// The attempt in flight.
        attempt: u32,
        /// The attempt's new deadline (ms since the epoch).
        deadline_ms: i64,
    },
    /// The attempts of (step, kind) ran out while other steps of its group
    /// are still in flight: its effect is unknown; what follows waits for
    /// them (schema 2).
    AttemptsExhausted {
        /// The step.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
    },
    /// The saga deadline passed (schema 2): before the pivot was sent the
    /// saga compensates, after it no new group starts.
    SagaDeadlinePassed {},
    /// Every action succeeded.
    SagaCompleted {},
    /// Every step that needed undoing was undone.
    SagaCompensated {},
    /// The saga cannot go on by itself and waits for an operator.
    SagaStuck {
        /// The (step, kind) that ran out of attempts.
        step: StepName,
        /// Action or compensation.
        kind: Kind,
        /// Why, for the operator.
        reason: String,
    },
    /// An operator stopped the saga without compensating.
    SagaAborted {
        /// The operator's reason.
        reason: String,
    },
    /// An operator acted on the saga (audit record; the effect follows).
    OperatorIntervened {
        /// What the operator asked for.
        verb: OperatorVerb,
        /// The operator's reason.
        reason: String,
    },
    /// An input that changed nothing, kept for the audit trail.
    InputIgnored {
        /// A one-line description of the input.
        input: String,
        /// Why it was ignored.
        reason: String,
    },
}

/// The operator's verbs (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorVerb {
    /// Resume a stuck saga with a fresh attempt budget.
    Retry,
    /// Force compensation from where the saga stands.
    Compensate,
    /// Stop without compensating.
    Abort,
}

impl SagaEvent {
    /// The event's type name, as stored and published (`"command_sent"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            SagaEvent::SagaStarted { .. } => "saga_started",
            SagaEvent::CommandSent { .. } => "command_sent",
            SagaEvent::StepSucceeded { .. } => "step_succeeded",
            SagaEvent::StepFailed { .. } => "step_failed",
            SagaEvent::AttemptFailed { .. } => "attempt_failed",
            SagaEvent::AttemptTimedOut { .. } => "attempt_timed_out",
            SagaEvent::DeadlineExtended { .. } => "deadline_extended",
            SagaEvent::RetryScheduled { .. } => "retry_scheduled",
            SagaEvent::CompensationStarted { .. } => "compensation_started",
            SagaEvent::StepSkipped { .. } => "step_skipped",
            SagaEvent::HeartbeatRecorded { .. } => "heartbeat_recorded",
            SagaEvent::AttemptsExhausted { .. } => "attempts_exhausted",
            SagaEvent::SagaDeadlinePassed {} => "saga_deadline_passed",
            SagaEvent::SagaCompleted {} => "saga_completed",
            SagaEvent::SagaCompensated {} => "saga_compensated",
            SagaEvent::SagaStuck { .. } => "saga_stuck",
            SagaEvent::SagaAborted { .. } => "saga_aborted",
            SagaEvent::OperatorIntervened { .. } => "operator_intervened",
            SagaEvent::InputIgnored { .. } => "input_ignored",
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// An event with its place in the log and the time it was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Position in the saga's log, from 1, without gaps.
    pub seq: u64,
    /// When it was decided (ms since the epoch).
    pub at_ms: i64,
    /// What happened.
    pub event: SagaEvent,
}

/// A stored event could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by a newer jetsaga than this one.
    #[error("event schema version {0} is newer than this jetsaga understands ({SCHEMA_VERSION})")]
    FutureSchema(u16),
    /// The type or data do not match any known event.
    #[error("event of type {event_type:?} does not decode: {source}")]
    Malformed {
        /// The stored type name.
        event_type: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

/// The `(type, data)` pair a store keeps for `event`.
pub fn encode(event: &SagaEvent) -> (&'static str, Value) {
    let data = match serde_json::to_value(event) {
        Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Object(Default::default())),
        // An enum of plain data always serialises to an object.
        _ => Value::Object(Default::default()),
    };
    (event.type_name(), data)
}

/// Reads an event written with any schema version up to [`SCHEMA_VERSION`].
pub fn decode(schema_version: u16, event_type: &str, data: Value) -> Result<SagaEvent, DecodeError> {
    match schema_version {
        // Schema 2 only adds to schema 1: one reading serves both.
        1 | 2 => {
            let tagged = serde_json::json!({ "type": event_type, "data": data });
            serde_json::from_value(tagged).map_err(|source| DecodeError::Malformed { event_type: event_type.to_owned(), source })
        }
        v => Err(DecodeError::FutureSchema(v)),
    }
}

/// [`decode`] from the data's JSON text, as a store keeps it: one pass of
/// the parser straight into the event, without building a `Value` first
/// (what recovery pays per event, `benches/fold.rs`). Text that is not one
/// JSON value of the type's shape is [`DecodeError::Malformed`].
pub fn decode_text(schema_version: u16, event_type: &str, data: &str) -> Result<SagaEvent, DecodeError> {
    match schema_version {
        1 | 2 => {
            let malformed = |source| DecodeError::Malformed { event_type: event_type.to_owned(), source };
            let type_name = serde_json::to_string(event_type).map_err(malformed)?;
            let tagged = format!("{{\"type\":{type_name},\"data\":{data}}}");
            serde_json::from_str(&tagged).map_err(malformed)
        }
        v => Err(DecodeError::FutureSchema(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_encode_and_decode() {
        let step = StepName::parse("reserve_hotel").unwrap();
        let events = vec![
            SagaEvent::SagaStarted {
                saga_type: "trip".into(),
                version: 1,
                definition_hash: "ab".into(),
                input: serde_json::json!({"x": 1}),
                key: Some("order-1".into()),
            },
            SagaEvent::CommandSent { step: step.clone(), kind: Kind::Action, attempt: 2, deadline_ms: 99 },
            SagaEvent::StepSucceeded { step: step.clone(), kind: Kind::Compensation, attempt: 1, output: Value::Null },
            SagaEvent::StepFailed { step: step.clone(), kind: Kind::Action, attempt: 1, error: Some("no rooms".into()) },
            SagaEvent::AttemptFailed { step: step.clone(), kind: Kind::Compensation, attempt: 3, error: None },
            SagaEvent::AttemptTimedOut { step: step.clone(), kind: Kind::Action, attempt: 1 },
            SagaEvent::RetryScheduled { step: step.clone(), kind: Kind::Action, attempt: 2, due_ms: 5 },
            SagaEvent::DeadlineExtended { step: step.clone(), kind: Kind::Action, attempt: 2, deadline_ms: 7 },
            SagaEvent::CompensationStarted { reason: "r".into(), keep_in_flight: false },
            SagaEvent::CompensationStarted { reason: "r".into(), keep_in_flight: true },
            SagaEvent::StepSkipped { step: step.clone() },
            SagaEvent::HeartbeatRecorded { step: step.clone(), kind: Kind::Action, attempt: 1, deadline_ms: 9 },
            SagaEvent::AttemptsExhausted { step: step.clone(), kind: Kind::Compensation },
            SagaEvent::SagaDeadlinePassed {},
            SagaEvent::SagaCompleted {},
            SagaEvent::SagaCompensated {},
            SagaEvent::SagaStuck { step, kind: Kind::Action, reason: "r".into() },
            SagaEvent::SagaAborted { reason: "r".into() },
            SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: "r".into() },
            SagaEvent::InputIgnored { input: "reply".into(), reason: "late".into() },
        ];
        for event in events {
            let (ty, data) = encode(&event);
            assert!(data.is_object(), "{ty}");
            assert_eq!(decode_text(SCHEMA_VERSION, ty, &data.to_string()).unwrap(), event, "{ty} from text");
            assert_eq!(decode(SCHEMA_VERSION, ty, data).unwrap(), event);
        }
    }

    #[test]
    fn schema_1_compensation_started_reads_as_abandoning_what_is_in_flight() {
        let event = decode(1, "compensation_started", serde_json::json!({"reason": "r"})).unwrap();
        assert_eq!(event, SagaEvent::CompensationStarted { reason: "r".into(), keep_in_flight: false });
        // Written without the field when false: schema 1's exact shape.
        assert_eq!(encode(&event).1, serde_json::json!({"reason": "r"}));
    }

    #[test]
    fn unknown_schema_and_garbage_are_errors_not_panics() {
        assert!(matches!(decode(3, "saga_completed", serde_json::json!({})), Err(DecodeError::FutureSchema(3))));
        assert!(matches!(decode(99, "saga_completed", serde_json::json!({})), Err(DecodeError::FutureSchema(99))));
        assert!(decode(1, "no_such_event", serde_json::json!({})).is_err());
        assert!(decode(1, "command_sent", serde_json::json!({"step": "BAD NAME"})).is_err());
        assert!(matches!(decode_text(99, "saga_completed", "{}"), Err(DecodeError::FutureSchema(99))));
        for garbage in ["", "{", "{}, \"data\": {}", "{} {}"] {
            assert!(decode_text(1, "saga_completed", garbage).is_err(), "{garbage:?}");
        }
        assert!(decode_text(1, "no_such_event", "{}").is_err());
    }
}
