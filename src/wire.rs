//! The JSON messages of SPEC §3, and the only module that knows their shape.
//!
//! Inbound bytes become domain values here ([`parse_start`],
//! [`parse_reply`], [`parse_command`]) or a [`Poison`] with the reason;
//! domain values become bytes ([`command_body`], [`reply_body`],
//! [`event_body`]). Subjects are built here too, under a configurable
//! prefix (default `saga`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{Kind, Participant};
use crate::saga::{self, Command, Recorded, Reply, ReplyStatus, SagaId};

/// The default subject prefix.
pub const PREFIX_DEFAULT: &str = "saga";
/// Largest message accepted (1 MiB); a larger one is poison.
pub const MESSAGE_BYTES_MAX: usize = 1024 * 1024;

/// A message the orchestrator cannot use, and why. It is acknowledged,
/// kept for operators and counted, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("poison message: {reason}")]
pub struct Poison {
    /// Why the message was refused.
    pub reason: String,
}

fn poison(reason: impl Into<String>) -> Poison {
    Poison { reason: reason.into() }
}

fn check_size(bytes: &[u8]) -> Result<(), Poison> {
    match bytes.len() {
        n if n > MESSAGE_BYTES_MAX => Err(poison(format!("{n} bytes is over the {MESSAGE_BYTES_MAX}-byte limit"))),
        _ => Ok(()),
    }
}

fn parse_id(text: &str) -> Result<SagaId, Poison> {
    SagaId::parse(text).map_err(|e| poison(e.to_string()))
}

/// Subjects under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new(PREFIX_DEFAULT)
    }
}

impl Subjects {
    /// Subjects under `prefix` (e.g. `saga`, or `test_1234.saga` for isolation).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.start.<saga_type>`.
    pub fn start(&self, saga_type: &str) -> String {
        format!("{}.start.{saga_type}", self.prefix)
    }

    /// `<prefix>.cmd.<participant>.<action>`.
    pub fn command(&self, command: &Command) -> String {
        format!("{}.cmd.{}.{}", self.prefix, command.participant, command.action)
    }

    /// `<prefix>.cmd.<participant>.>`: every command for one participant.
    pub fn commands_for(&self, participant: &str) -> String {
        format!("{}.cmd.{participant}.>", self.prefix)
    }

    /// `<prefix>.reply.<participant>`.
    pub fn reply(&self, participant: &str) -> String {
        format!("{}.reply.{participant}", self.prefix)
    }

    /// `<prefix>.event.<saga_type>.<saga_id>`.
    pub fn event(&self, saga_type: &str, saga_id: SagaId) -> String {
        format!("{}.event.{saga_type}.{saga_id}", self.prefix)
    }

    /// `<prefix>.<kind>.>`: everything of one stream.
    pub fn all(&self, kind: &str) -> String {
        format!("{}.{kind}.>", self.prefix)
    }

    /// The token after `<prefix>.<kind>.` in `subject` (the saga type of a
    /// start, the participant of a reply or command).
    pub fn token<'s>(&self, kind: &str, subject: &'s str) -> Option<&'s str> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?.strip_prefix(kind)?.strip_prefix('.')?;
        rest.split('.').next().filter(|t| !t.is_empty())
    }
}

/// `{"saga_id": "<uuid, optional>", "input": <any JSON>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartBody {
    /// The client's id for the saga (idempotent start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga_id: Option<String>,
    /// Passed to every command.
    #[serde(default)]
    pub input: Value,
}

/// A start request from `saga.start.<saga_type>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    /// From the subject.
    pub saga_type: String,
    /// From the body.
    pub saga_id: Option<SagaId>,
    /// From the body.
    pub input: Value,
}

/// Parses a start request; `saga_type` comes from the subject.
pub fn parse_start(saga_type: &str, bytes: &[u8]) -> Result<StartRequest, Poison> {
    check_size(bytes)?;
    let body: StartBody =
        serde_json::from_slice(bytes).map_err(|e| poison(format!("start request is not valid JSON of the expected shape: {e}")))?;
    let saga_id = body.saga_id.as_deref().map(parse_id).transpose()?;
    Ok(StartRequest { saga_type: saga_type.to_owned(), saga_id, input: body.input })
}

/// The command body of SPEC §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandBody {
    /// The saga.
    pub saga_id: String,
    /// Its type.
    pub saga_type: String,
    /// The step.
    pub step: String,
    /// Action or compensation.
    pub kind: Kind,
    /// The action (the compensation's name for a compensation).
    pub action: String,
    /// The attempt number.
    pub attempt: u32,
    /// `<saga_id>:<step>:<kind>`.
    pub idempotency_key: String,
    /// `{"input": …, "results": {…}}`.
    pub payload: Value,
}

/// The body of `command`.
pub fn command_body(command: &Command) -> Vec<u8> {
    let body = CommandBody {
        saga_id: command.saga_id.to_string(),
        saga_type: command.saga_type.to_string(),
        step: command.step.to_string(),
        kind: command.kind,
        action: command.action.to_string(),
        attempt: command.attempt,
        idempotency_key: command.idempotency_key.clone(),
        payload: command.payload.clone(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Parses a command (the participant's side).
pub fn parse_command(bytes: &[u8]) -> Result<CommandBody, Poison> {
    check_size(bytes)?;
    let body: CommandBody =
        serde_json::from_slice(bytes).map_err(|e| poison(format!("command is not valid JSON of the expected shape: {e}")))?;
    parse_id(&body.saga_id)?;
    Ok(body)
}

/// The reply body of SPEC §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyBody {
    /// The saga.
    pub saga_id: String,
    /// The step it answers.
    pub step: String,
    /// Action or compensation.
    pub kind: Kind,
    /// The attempt it answers.
    pub attempt: u32,
    /// `ok` or `failed`.
    pub status: ReplyStatus,
    /// Any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReplyBody {
    /// An `ok` reply to `command`.
    pub fn ok(command: &CommandBody, output: Option<Value>) -> Self {
        Self::to(command, ReplyStatus::Ok, output, None)
    }

    /// A `failed` reply to `command`.
    pub fn failed(command: &CommandBody, error: impl Into<String>) -> Self {
        Self::to(command, ReplyStatus::Failed, None, Some(error.into()))
    }

    fn to(command: &CommandBody, status: ReplyStatus, output: Option<Value>, error: Option<String>) -> Self {
        ReplyBody {
            saga_id: command.saga_id.clone(),
            step: command.step.clone(),
            kind: command.kind,
            attempt: command.attempt,
            status,
            output,
            error,
        }
    }
}

/// The body of a reply.
pub fn reply_body(reply: &ReplyBody) -> Vec<u8> {
    serde_json::to_vec(reply).unwrap_or_default()
}

/// Parses a reply from `saga.reply.<participant>`.
pub fn parse_reply(participant: &str, bytes: &[u8]) -> Result<(SagaId, Reply), Poison> {
    check_size(bytes)?;
    let participant = Participant::parse(participant).map_err(|e| poison(e.to_string()))?;
    let body: ReplyBody =
        serde_json::from_slice(bytes).map_err(|e| poison(format!("reply is not valid JSON of the expected shape: {e}")))?;
    let saga_id = parse_id(&body.saga_id)?;
    let reply = Reply {
        participant,
        step: body.step,
        kind: body.kind,
        attempt: body.attempt,
        status: body.status,
        output: body.output,
        error: body.error,
    };
    Ok((saga_id, reply))
}

/// The event body of SPEC §3: `{"saga_id", "saga_type", "seq", "type", "at", "data"}`.
pub fn event_body(saga_id: SagaId, saga_type: &str, recorded: &Recorded) -> Vec<u8> {
    let (event_type, data) = saga::encode(&recorded.event);
    let body = serde_json::json!({
        "saga_id": saga_id.to_string(),
        "saga_type": saga_type,
        "seq": recorded.seq,
        "type": event_type,
        "at": rfc3339(recorded.at_ms),
        "data": data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `Nats-Msg-Id` of an event: `<saga_id>:<seq>`.
pub fn event_message_id(saga_id: SagaId, seq: u64) -> String {
    format!("{saga_id}:{seq}")
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(at_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// A W3C `traceparent` for a saga: one trace per saga (trace id = the
/// saga id's bits), one span per attempt.
pub fn traceparent(saga_id: SagaId, span: u64) -> String {
    format!("00-{:032x}-{:016x}-01", saga_id.as_uuid().as_u128(), span.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subjects_and_tokens() {
        let s = Subjects::new("saga");
        assert_eq!(s.start("trip"), "saga.start.trip");
        assert_eq!(s.reply("hotels"), "saga.reply.hotels");
        assert_eq!(s.all("cmd"), "saga.cmd.>");
        assert_eq!(s.commands_for("hotels"), "saga.cmd.hotels.>");
        assert_eq!(s.token("reply", "saga.reply.hotels"), Some("hotels"));
        assert_eq!(s.token("start", "saga.start.trip_booking"), Some("trip_booking"));
        assert_eq!(s.token("reply", "other.reply.hotels"), None);
        assert_eq!(Subjects::new("t1.saga").token("cmd", "t1.saga.cmd.hotels.reserve"), Some("hotels"));
    }

    #[test]
    fn replies_parse_or_are_poison_with_a_reason() {
        let id = "0190a5c4-0000-7000-8000-000000000001";
        let good = json!({"saga_id": id, "step": "hotel", "kind": "action", "attempt": 2, "status": "ok", "output": {"room": 7}});
        let (saga_id, reply) = parse_reply("hotels", good.to_string().as_bytes()).expect("valid");
        assert_eq!(saga_id.to_string(), id);
        assert_eq!((reply.attempt, reply.status, reply.participant.as_str()), (2, ReplyStatus::Ok, "hotels"));
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not valid JSON"),
            (br#"{"saga_id": "nope", "step": "a", "kind": "action", "attempt": 1, "status": "ok"}"#, "is not a UUID"),
            (
                br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "undo", "attempt": 1, "status": "ok"}"#,
                "expected shape",
            ),
            (
                br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "action", "status": "ok"}"#,
                "missing field `attempt`",
            ),
            (
                br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "action", "attempt": 1, "status": "maybe"}"#,
                "expected shape",
            ),
        ];
        for (bytes, why) in cases {
            let err = parse_reply("hotels", bytes).expect_err("poison");
            assert!(err.reason.contains(why), "{why}: {}", err.reason);
        }
        let big = vec![b' '; MESSAGE_BYTES_MAX + 1];
        assert!(parse_reply("hotels", &big).expect_err("too big").reason.contains("limit"));
        assert!(parse_reply("Bad Name", good.to_string().as_bytes()).is_err());
    }

    #[test]
    fn starts_take_an_optional_id() {
        let start = parse_start("trip", br#"{"input": {"x": 1}}"#).expect("valid");
        assert_eq!((start.saga_id, start.input), (None, json!({"x": 1})));
        let start = parse_start("trip", br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001"}"#).expect("valid");
        assert!(start.saga_id.is_some());
        assert!(parse_start("trip", br#"{"saga_id": 5}"#).is_err());
    }

    #[test]
    fn a_command_round_trips_through_its_body() {
        let id = SagaId::parse("0190a5c4-0000-7000-8000-000000000001").expect("uuid");
        let command = Command {
            saga_id: id,
            saga_type: crate::definition::SagaType::parse("trip").expect("name"),
            step: crate::definition::StepName::parse("hotel").expect("name"),
            participant: Participant::parse("hotels").expect("name"),
            kind: Kind::Compensation,
            action: crate::definition::ActionName::parse("cancel").expect("name"),
            attempt: 3,
            idempotency_key: saga::idempotency_key(id, "hotel", Kind::Compensation),
            message_id: saga::message_id(id, "hotel", Kind::Compensation, 3),
            payload: json!({"input": {}, "results": {}}),
        };
        let body = parse_command(&command_body(&command)).expect("parses");
        assert_eq!((body.kind, body.action.as_str(), body.attempt), (Kind::Compensation, "cancel", 3));
        assert_eq!(Subjects::default().command(&command), "saga.cmd.hotels.cancel");
        let reply = ReplyBody::failed(&body, "no such booking");
        let (_, parsed) = parse_reply("hotels", &reply_body(&reply)).expect("parses");
        assert_eq!((parsed.status, parsed.error.as_deref()), (ReplyStatus::Failed, Some("no such booking")));
    }

    #[test]
    fn events_carry_type_time_and_data() {
        let id = SagaId::parse("0190a5c4-0000-7000-8000-000000000001").expect("uuid");
        let recorded = Recorded { seq: 4, at_ms: 1_767_225_600_123, event: saga::SagaEvent::SagaCompleted {} };
        let body: Value = serde_json::from_slice(&event_body(id, "trip", &recorded)).expect("json");
        assert_eq!(body["type"], "saga_completed");
        assert_eq!(body["at"], "2026-01-01T00:00:00.123Z");
        assert_eq!(body["seq"], 4);
        assert_eq!(event_message_id(id, 4), format!("{id}:4"));
        assert_eq!(traceparent(id, 1).len(), 55);
    }
}
