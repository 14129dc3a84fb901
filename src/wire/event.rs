//! Events as JSON (SPEC §3): [`EventEntry`], one event of a saga's log as
//! `{"seq", "type", "at", "data"}`, the shape both the events stream and
//! the ops API's `GET /sagas/{id}` show; and [`EventBody`], the events
//! stream's message: an entry with the saga's id and type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rfc3339;
use crate::saga::{self, Recorded, SagaId};

/// One event of a saga's log: `{"seq", "type", "at", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEntry {
    /// Its place in the saga's log, from 1.
    pub seq: u64,
    /// The event type (`saga_started`, `command_sent`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was committed (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// What `saga::encode` writes for it (`null` when absent).
    #[serde(default)]
    pub data: Value,
}

impl EventEntry {
    /// A recorded event as JSON.
    pub fn of(recorded: &Recorded) -> Self {
        let (event_type, data) = saga::encode(&recorded.event);
        Self { seq: recorded.seq, event_type: event_type.to_owned(), at: rfc3339(recorded.at_ms), data }
    }
}

/// The message of `SAGA_EVENTS`: `{"saga_id", "saga_type", "seq", "type", "at", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    /// The saga.
    pub saga_id: SagaId,
    /// Its type.
    pub saga_type: String,
    /// The event (its keys sit at the top level of the body).
    #[serde(flatten)]
    pub event: EventEntry,
}

/// The body published for a committed event.
pub fn event_body(saga_id: SagaId, saga_type: &str, recorded: &Recorded) -> Vec<u8> {
    let body = EventBody { saga_id, saga_type: saga_type.to_owned(), event: EventEntry::of(recorded) };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The body published instead of an event too large for the broker: the
/// same saga, seq, type and time, with `data` saying where to read it.
pub fn omitted_event_body(saga_id: SagaId, saga_type: &str, recorded: &Recorded, bytes: usize, max: usize) -> Vec<u8> {
    let (event_type, _) = saga::encode(&recorded.event);
    let data = serde_json::json!({
        "omitted": format!("{bytes} bytes is over the broker's max_payload of {max}; read the event from GET /sagas/{saga_id}"),
        "bytes": bytes,
    });
    let event = EventEntry { seq: recorded.seq, event_type: event_type.to_owned(), at: rfc3339(recorded.at_ms), data };
    let body = EventBody { saga_id, saga_type: saga_type.to_owned(), event };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `Nats-Msg-Id` of an event: `<saga_id>:<seq>`.
pub fn event_message_id(saga_id: SagaId, seq: u64) -> String {
    format!("{saga_id}:{seq}")
}
