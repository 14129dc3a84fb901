//! The JSON messages of SPEC §3, and the only module that knows their shape.
//!
//! Inbound bytes become domain values here ([`parse_start`],
//! [`parse_reply`], [`parse_command`]) or a [`Poison`] with the reason;
//! domain values become bytes ([`command_body`], [`reply_body`],
//! [`event_body`]). Events as JSON, which the ops API shows too, are in
//! `wire/event.rs`. Subjects are built here too, under a configurable
//! prefix (default `saga`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{Kind, Participant, StepName};
use crate::saga::{Command, Reply, ReplyStatus, SagaId};

mod event;

pub use event::{event_body, event_message_id, omitted_event_body, EventBody, EventEntry};

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

/// Where a JSON value holds a NUL character (`\u0000`) in a string or a
/// key, if anywhere. PostgreSQL cannot store one (neither in `jsonb` nor in
/// `text`), so every input is refused at the door with it rather than fail
/// the group commit it would be part of.
pub fn find_nul(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(key, item)| {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('\0', "\\u0000"));
                let found = key.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| if path.is_empty() { "/".to_owned() } else { path })
}

/// The refusal of a value with a NUL character, naming where it is.
pub fn nul_refusal(what: &str, at: &str) -> String {
    format!("{what} holds a NUL character (\\u0000) at {at}; it cannot be stored")
}

/// Deepest nesting of arrays and objects an input or output may have. A
/// command carries the input and the outputs a few levels deeper, and a
/// participant's JSON parser refuses documents nested past 128 levels
/// (serde_json's default, and common elsewhere), so the door keeps well below.
pub const JSON_DEPTH_MAX: usize = 64;

/// How deeply `value` nests arrays and objects (a scalar: 0).
pub fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The refusal of a value nested too deeply, if it is.
pub fn depth_refusal(what: &str, value: &Value) -> Option<String> {
    let depth = json_depth(value);
    (depth > JSON_DEPTH_MAX).then(|| format!("{what} nests {depth} levels deep; at most {JSON_DEPTH_MAX} are allowed"))
}

fn check_depth(what: &str, value: Option<&Value>) -> Result<(), Poison> {
    value.and_then(|v| depth_refusal(what, v)).map_or(Ok(()), |why| Err(poison(why)))
}

fn check_nul(what: &str, value: &Value) -> Result<(), Poison> {
    find_nul(value).map_or(Ok(()), |at| Err(poison(nul_refusal(what, &at))))
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

/// The body of a start message on `saga.start.<saga_type>`:
/// `{"saga_id": "<uuid, optional>", "input": <any JSON>}`, plus SPEC §7's
/// optional `"key"` and `"version"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartBody {
    /// The client's id for the saga (idempotent start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga_id: Option<String>,
    /// Passed to every command.
    #[serde(default)]
    pub input: Value,
    /// The business key: at most one saga per (saga type, key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The definition version to run (default: the highest loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// Longest business key, in characters (SPEC §7: 1–200).
pub const KEY_CHARS_MAX: usize = 200;

/// Why `key` is not a business key (1 to [`KEY_CHARS_MAX`] characters,
/// no NUL, which PostgreSQL cannot store), if it is not.
pub fn key_refusal(key: &str) -> Option<String> {
    let chars = key.chars().count();
    if chars == 0 || chars > KEY_CHARS_MAX {
        return Some(format!("key must be 1 to {KEY_CHARS_MAX} characters, not {chars}"));
    }
    key.contains('\0').then(|| "key must not contain U+0000".to_owned())
}

/// A start message from `saga.start.<saga_type>`, parsed: the saga type
/// from the subject, the rest from its [`StartBody`]. (The ops API's
/// start is `ops::api::StartSagaBody`.)
#[derive(Debug, Clone, PartialEq)]
pub struct StartMessage {
    /// From the subject.
    pub saga_type: String,
    /// From the body.
    pub saga_id: Option<SagaId>,
    /// From the body.
    pub input: Value,
    /// From the body.
    pub key: Option<String>,
    /// From the body.
    pub version: Option<u32>,
}

/// Parses a start message; `saga_type` comes from the subject.
pub fn parse_start(saga_type: &str, bytes: &[u8]) -> Result<StartMessage, Poison> {
    check_size(bytes)?;
    let body: StartBody =
        serde_json::from_slice(bytes).map_err(|e| poison(format!("start request is not valid JSON of the expected shape: {e}")))?;
    let saga_id = body.saga_id.as_deref().map(parse_id).transpose()?;
    check_nul("the start's input", &body.input)?;
    check_depth("the start's input", Some(&body.input))?;
    if let Some(why) = body.key.as_deref().and_then(key_refusal) {
        return Err(poison(why));
    }
    if body.version == Some(0) {
        return Err(poison("version must be at least 1"));
    }
    Ok(StartMessage { saga_type: saga_type.to_owned(), saga_id, input: body.input, key: body.key, version: body.version })
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
    /// `ok`, `failed`, or `working` (a heartbeat, SPEC §7).
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

    /// A `working` reply to `command`: a heartbeat that restarts the
    /// attempt's timeout (SPEC §7).
    pub fn working(command: &CommandBody) -> Self {
        Self::to(command, ReplyStatus::Working, None, None)
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
    let step = StepName::parse(&body.step).map_err(|e| poison(format!("the reply's step: {e}")))?;
    check_nul("the reply", &serde_json::json!([body.output, body.error]))?;
    check_depth("the reply's output", body.output.as_ref())?;
    let reply =
        Reply { participant, step, kind: body.kind, attempt: body.attempt, status: body.status, output: body.output, error: body.error };
    Ok((saga_id, reply))
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
mod tests;
