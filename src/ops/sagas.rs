//! `/sagas`: start a saga, and read one with its steps and full timeline.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, Ops};
use crate::definition::SagaDefinition;
use crate::saga::{self, Outcome, Phase, Recorded, SagaId, SagaState, Status};
use crate::store::EventStore;
use crate::wire;

pub(super) fn routes<S: EventStore + Clone>() -> Router<Arc<Ops<S>>> {
    Router::new().route("/sagas", post(start::<S>)).route("/sagas/{id}", get(detail::<S>))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    saga_type: String,
    #[serde(default)]
    saga_id: Option<String>,
    #[serde(default)]
    input: Value,
}

async fn start<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    body: Result<Json<StartRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed body", e.body_text()))?;
    let saga_id = request.saga_id.as_deref().map(parse_id).transpose()?;
    let started = ops.engine.start(&request.saga_type, saga_id, request.input).await?;
    let status = if started.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "saga_id": started.saga_id.to_string(), "status": started.status }))).into_response())
}

pub(super) fn parse_id(text: &str) -> Result<SagaId, ApiError> {
    SagaId::parse(text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed saga id", e.to_string()))
}

/// A saga's log, its definition and its state.
pub(super) async fn load<S: EventStore>(ops: &Ops<S>, id: SagaId) -> Result<(Arc<SagaDefinition>, Vec<Recorded>), ApiError> {
    let log = ops.store.load(id, None).await?;
    let Some(saga::SagaEvent::SagaStarted { saga_type, version, .. }) = log.first().map(|r| &r.event) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "saga not found", format!("no saga {id}")));
    };
    let def = ops.definitions.version(&ops.store, saga_type, *version).await?;
    Ok((def, log))
}

async fn detail<S: EventStore>(State(ops): State<Arc<Ops<S>>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (def, log) = load(&ops, id).await?;
    let state = saga::fold(&def, id, &log)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt log", "the log does not fold"))?;
    let mut body = state_json(&def, &state);
    body["events"] = log.iter().map(event_json).collect();
    Ok(Json(body))
}

/// One event as the API shows it: `{"seq", "type", "at", "data"}`.
pub(super) fn event_json(recorded: &Recorded) -> Value {
    let (event_type, data) = saga::encode(&recorded.event);
    json!({ "seq": recorded.seq, "type": event_type, "at": wire::rfc3339(recorded.at_ms), "data": data })
}

/// A saga's state as the API shows it.
pub(super) fn state_json(def: &SagaDefinition, state: &SagaState) -> Value {
    let steps: Vec<Value> = def.steps.iter().enumerate().map(|(i, step)| step_json(state, i, step.name.as_str())).collect();
    json!({
        "saga_id": state.id.to_string(),
        "saga_type": state.saga_type,
        "version": state.version,
        "status": state.status,
        "reason": state.reason,
        "current_step": state.current_step(def),
        "seq": state.seq,
        "started_at": wire::rfc3339(state.started_at_ms),
        "updated_at": wire::rfc3339(state.updated_at_ms),
        "input": state.input,
        "steps": steps,
    })
}

fn step_json(state: &SagaState, index: usize, name: &str) -> Value {
    let step = &state.steps[index];
    let mut out = json!({
        "name": name,
        "status": step_status(state, index),
        "attempts": step.action.last_attempt,
        "compensation_attempts": step.compensation.last_attempt,
    });
    if let Some(output) = &step.action.output {
        out["output"] = output.clone();
    }
    if let Some(error) = step.compensation.error.as_ref().or(step.action.error.as_ref()) {
        out["error"] = json!(error);
    }
    out
}

/// `pending`, `running`, `succeeded`, `failed`, `unknown`, `compensating`,
/// `compensated`, `stuck`.
fn step_status(state: &SagaState, index: usize) -> &'static str {
    let step = &state.steps[index];
    if state.status == Status::Stuck && matches!(state.phase, Phase::Stuck { step, .. } if step == index) {
        return "stuck";
    }
    match (step.action.outcome, step.compensation.outcome) {
        (_, Outcome::Succeeded) => "compensated",
        (_, Outcome::Pending | Outcome::Unknown) => "compensating",
        (Outcome::NotSent, _) => "pending",
        (Outcome::Pending, _) => "running",
        (Outcome::Succeeded, _) => "succeeded",
        (Outcome::Failed, _) => "failed",
        (Outcome::Unknown, _) => "unknown",
    }
}
