//! The ops API's bodies and queries (SPEC §5) as types, shared by both
//! ends: the handlers serialise them and `jetsaga sagas` deserialises the
//! same types, so a key cannot drift between server and client. (The
//! dashboard's JavaScript reads the same keys; `tests/it/ops.rs` holds them.)
//!
//! Fields are in the SPEC's order. A key the SPEC marks optional in an
//! answer (a step's `"output"?`, `"error"?`) is left out when empty; every
//! other empty value is `null`. Content that is the user's own JSON (input,
//! outputs, an event's `data`) stays a [`Value`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::saga::{SagaId, Status};

pub use crate::wire::EventEntry;

/// `POST /sagas`: `{"saga_type", "saga_id"?, "input"?, "key"?, "version"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSagaBody {
    /// The definition's name.
    pub saga_type: String,
    /// The caller's id for the saga (idempotent start). Text, so that a
    /// malformed id is refused as such rather than as a malformed body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga_id: Option<String>,
    /// Passed to every command.
    #[serde(default)]
    pub input: Value,
    /// The business key (SPEC §7): at most one saga per (saga type, key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The definition version to run (default: the highest loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// The query of `POST /sagas`: `?wait=30s` answers once the saga is
/// terminal or stuck, or when the wait passes (SPEC §7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// How long to wait for the saga's end (humantime), at most the server's `START_WAIT_MAX`.
    pub wait: Option<String>,
}

/// `POST /sagas/{id}/retry | /compensate | /abort`: `{"reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerbBody {
    /// Why: recorded in the saga's own log.
    pub reason: String,
}

/// What a start (`201`, or `200` for an existing saga) and an operator
/// verb (`202`) answer: `{"saga_id", "status"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaStatusBody {
    /// The saga.
    pub saga_id: SagaId,
    /// Its status once the request is committed.
    pub status: Status,
}

/// The query of `GET /sagas`; each field is one `key=value`, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Statuses, comma-separated (`running,stuck`).
    pub status: Option<String>,
    /// One saga type.
    pub saga_type: Option<String>,
    /// One business key (with `saga_type`: at most one saga).
    pub key: Option<String>,
    /// Stuck for at least this long (humantime: `30s`, `1500ms`).
    pub stuck_for: Option<String>,
    /// Started after this instant (RFC 3339).
    pub started_after: Option<String>,
    /// Started before this instant (RFC 3339).
    pub started_before: Option<String>,
    /// Last changed before this instant (RFC 3339).
    pub updated_before: Option<String>,
    /// Sagas per page.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The query of `GET /sagas/{id}/state`: exactly one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// The state right after event number `at_seq`.
    pub at_seq: Option<u64>,
    /// The state at this instant (RFC 3339).
    pub at: Option<String>,
}

/// The fields of a query ([`ListQuery`], [`StateQuery`]) that are set, as
/// the `(key, value)` pairs of a URL: strings bare, numbers in decimal.
pub fn query_pairs(query: &impl Serialize) -> Vec<(String, String)> {
    let Ok(Value::Object(fields)) = serde_json::to_value(query) else {
        return Vec::new();
    };
    let text = |value: Value| match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    };
    fields.into_iter().filter_map(|(key, value)| Some((key, text(value)?))).collect()
}

/// `GET /sagas`: one page, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaPage {
    /// The page's sagas.
    pub sagas: Vec<SagaRow>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<SagaId>,
}

/// One saga of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRow {
    /// The saga.
    pub saga_id: SagaId,
    /// Its type.
    pub saga_type: String,
    /// The definition version it runs on.
    pub version: u32,
    /// Its business key, if it has one.
    #[serde(default)]
    pub key: Option<String>,
    /// Its status.
    pub status: Status,
    /// The step it waits for, if any.
    pub current_step: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// `GET /sagas/{id}/state`: a saga's state, now or as it was then; also
/// the head of [`SagaDetail`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaStateBody {
    /// The saga.
    pub saga_id: SagaId,
    /// Its type.
    pub saga_type: String,
    /// The definition version it runs on.
    pub version: u32,
    /// Its business key, if it has one.
    #[serde(default)]
    pub key: Option<String>,
    /// Its status.
    pub status: Status,
    /// Why it is stuck, compensating or aborted, if it is.
    pub reason: Option<String>,
    /// The step it waits for, if any.
    pub current_step: Option<String>,
    /// The last event folded into this state.
    pub seq: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// The start's input.
    pub input: Value,
    /// Every step of the definition, in order.
    pub steps: Vec<StepBody>,
}

/// One step of a saga's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepBody {
    /// The step's name.
    pub name: String,
    /// Where the step is.
    pub status: StepStatus,
    /// The last action attempt's number (0: never sent).
    pub attempts: u32,
    /// The last compensation attempt's number (0: never sent).
    pub compensation_attempts: u32,
    /// The action's output, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The last error: the compensation's, else the action's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Its action was never sent.
    Pending,
    /// Its action is awaiting a conclusive reply.
    Running,
    /// Its action succeeded.
    Succeeded,
    /// Its action failed: it had no effect.
    Failed,
    /// Its action's attempts ran out: it may have happened.
    Unknown,
    /// Its compensation is under way.
    Compensating,
    /// Its compensation succeeded.
    Compensated,
    /// The saga is stuck on it.
    Stuck,
    /// Its `when` did not hold: never sent, never compensated (SPEC §7).
    Skipped,
}

impl StepStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Unknown => "unknown",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::Stuck => "stuck",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /sagas/{id}`: the saga's state and its whole log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaDetail {
    /// The state now (its keys sit at the top level of the body).
    #[serde(flatten)]
    pub state: SagaStateBody,
    /// Each succeeded step's output, by step name (SPEC §7).
    #[serde(default)]
    pub results: std::collections::BTreeMap<String, Value>,
    /// Every event, in order.
    pub events: Vec<EventEntry>,
}

/// Every error: `{"error": "<what>", "detail": "<why>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, short and stable (`saga not found`).
    pub error: String,
    /// Why, for people.
    pub detail: String,
    /// The saga it is about, where the caller needs it: the one holding a
    /// taken key (`409` on a start); left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga_id: Option<SagaId>,
}

/// The query of `GET /poison`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoisonQuery {
    /// Only records with a larger id (the `next_after` of the previous page).
    pub after: Option<i64>,
    /// Records per page.
    pub limit: Option<u32>,
}

/// `GET /poison`: one page, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonPage {
    /// The page's records.
    pub poison: Vec<PoisonRow>,
    /// Pass it as `after` for the next page: set on a full page (the next
    /// may be empty), `null` on a shorter one.
    pub next_after: Option<i64>,
}

/// One poison record of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonRow {
    /// Its id (ids grow in arrival order).
    pub id: i64,
    /// The subject it arrived on.
    pub subject: String,
    /// Why it was refused.
    pub reason: String,
    /// When it arrived (RFC 3339).
    pub received_at: String,
    /// The bytes kept of it (at most 64 KiB).
    pub payload_bytes: usize,
}

/// `GET /poison/{id}`: the record and its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonDetail {
    /// The record as the list shows it.
    #[serde(flatten)]
    pub poison: PoisonRow,
    /// The payload kept, as text (bytes that are not UTF-8 shown as U+FFFD).
    pub payload: String,
}

/// `GET /healthz` (`{"status": "ok"}`) and `GET /readyz` (`{"status":
/// "ready"}`, or `"not ready"` with what it is `waiting_for`, and each
/// dependency's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthBody {
    /// `ok`, `ready` or `not ready`.
    pub status: String,
    /// The parts not ready yet; left out when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// `/readyz` only: the state of each dependency, as keys of the body
    /// itself (`"database": "ready"`, …).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
}

/// What `/readyz` reports, one key per dependency, in start-up order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// The event store is connected.
    pub database: DependencyState,
    /// NATS is connected and its streams exist.
    pub nats: DependencyState,
    /// The database schema is at this binary's migration.
    pub migrations: DependencyState,
    /// The inbound consumers run.
    pub consumers: DependencyState,
    /// The event relay runs, and its last try did not fail.
    pub relay: DependencyState,
}

impl Dependencies {
    /// The names of the dependencies not ready, in start-up order.
    pub fn waiting_for(&self) -> Vec<String> {
        let all = [
            ("database", self.database),
            ("nats", self.nats),
            ("migrations", self.migrations),
            ("consumers", self.consumers),
            ("relay", self.relay),
        ];
        all.into_iter().filter(|(_, state)| *state != DependencyState::Ready).map(|(name, _)| name.to_owned()).collect()
    }
}

/// One dependency's state in `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    /// Up.
    Ready,
    /// Not reached, or not started yet.
    Waiting,
    /// Was up; its last try failed (the relay).
    Failing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_become_pairs_of_the_fields_set() {
        let query = ListQuery { status: Some("running,stuck".into()), limit: Some(20), ..ListQuery::default() };
        let mut pairs = query_pairs(&query);
        pairs.sort();
        assert_eq!(pairs, [("limit".to_owned(), "20".to_owned()), ("status".to_owned(), "running,stuck".to_owned())]);
        assert_eq!(query_pairs(&StateQuery { at_seq: Some(3), at: None }), [("at_seq".to_owned(), "3".to_owned())]);
    }

    #[test]
    fn a_step_leaves_out_what_it_does_not_have() {
        let step =
            StepBody { name: "a".into(), status: StepStatus::Pending, attempts: 0, compensation_attempts: 0, output: None, error: None };
        let body = serde_json::to_value(&step).expect("json");
        assert_eq!(body, json!({"name": "a", "status": "pending", "attempts": 0, "compensation_attempts": 0}));
        assert_eq!(serde_json::from_value::<StepBody>(body).expect("reads back"), step);
    }
}
