//! `/sagas`: start a saga (and, with `?wait=`, wait for its end), and read
//! one with its steps, results and full timeline.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::api::{EventEntry, SagaDetail, SagaStateBody, SagaStatusBody, StartQuery, StartSagaBody, StepBody, StepStatus};
use super::{ApiError, Ops};
use crate::definition::SagaDefinition;
use crate::runtime::StartOptions;
use crate::saga::{self, Outcome, Phase, Recorded, SagaId, SagaState, Status};
use crate::store::EventStore;
use crate::wire;

pub(super) fn routes<S: EventStore + Clone>() -> Router<Arc<Ops<S>>> {
    Router::new().route("/sagas", post(start::<S>)).route("/sagas/{id}", get(detail::<S>))
}

/// Longest `?wait=` a start accepts (SPEC §7); a longer one is refused.
pub const START_WAIT_MAX: Duration = Duration::from_secs(300);
/// How often a waiting start reads the saga's status.
pub const START_WAIT_POLL: Duration = Duration::from_millis(50);
/// What a waiting start leaves of the server's request timeout, so that it
/// answers with the saga's status before the timeout answers `408`.
pub const START_WAIT_MARGIN: Duration = Duration::from_secs(1);

async fn start<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    query: Result<Query<StartQuery>, QueryRejection>,
    body: Result<Json<StartSagaBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SagaStatusBody>), ApiError> {
    let Query(query) = query?;
    let wait = query.wait.as_deref().map(wait_of).transpose()?;
    let Json(request) = body?;
    let saga_id = request.saga_id.as_deref().map(parse_id).transpose()?;
    if let Some(at) = wire::find_nul(&request.input) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed body", wire::nul_refusal("the input", &at)));
    }
    if let Some(why) = wire::depth_refusal("the input", &request.input) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed body", why));
    }
    if let Some(why) = request.key.as_deref().and_then(wire::key_refusal) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed body", why));
    }
    if request.version == Some(0) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed body", "version must be at least 1"));
    }
    let options = StartOptions { key: request.key, version: request.version };
    let started = ops.engine.start_with(&request.saga_type, saga_id, request.input, options).await?;
    let code = if started.created { StatusCode::CREATED } else { StatusCode::OK };
    let status = match wait {
        Some(wait) => {
            let wait = wait.min(ops.limits.request_timeout.saturating_sub(START_WAIT_MARGIN));
            settled(&ops.store, started.saga_id, started.status, wait).await?
        }
        None => started.status,
    };
    Ok((code, Json(SagaStatusBody { saga_id: started.saga_id, status })))
}

/// The `?wait=` of a start, at most [`START_WAIT_MAX`].
fn wait_of(text: &str) -> Result<Duration, ApiError> {
    let bad = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "malformed query", why);
    let wait = humantime::parse_duration(text).map_err(|e| bad(format!("wait {text:?}: {e}")))?;
    match wait > START_WAIT_MAX {
        true => Err(bad(format!("wait {text:?} is over the longest wait, {}", humantime::format_duration(START_WAIT_MAX)))),
        false => Ok(wait),
    }
}

/// The saga's status once it is terminal or stuck, or when `wait` has
/// passed (then its status at that moment). It polls the projection every
/// [`START_WAIT_POLL`] rather than subscribing to the engine's commits:
/// the waiting request holds no engine slot and no channel of the engine,
/// it sees commits made by any `serve` process sharing the database (the
/// saga may be driven by another one), and its cost is one indexed
/// primary-key read per poll, bounded by [`START_WAIT_MAX`].
async fn settled<S: EventStore>(store: &S, saga_id: SagaId, status: Status, wait: Duration) -> Result<Status, ApiError> {
    let done = |status: Status| status.is_terminal() || status == Status::Stuck;
    if done(status) {
        return Ok(status);
    }
    let mut last = status;
    let polled = tokio::time::timeout(wait, async {
        loop {
            tokio::time::sleep(START_WAIT_POLL).await;
            if let Some(summary) = store.summary(saga_id).await? {
                last = summary.status;
                if done(last) {
                    return Ok::<Status, crate::store::StoreError>(last);
                }
            }
        }
    })
    .await;
    match polled {
        Ok(found) => Ok(found?),
        Err(_) => Ok(last),
    }
}

pub(crate) fn parse_id(text: &str) -> Result<SagaId, ApiError> {
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

async fn detail<S: EventStore>(State(ops): State<Arc<Ops<S>>>, Path(id): Path<String>) -> Result<Json<SagaDetail>, ApiError> {
    let id = parse_id(&id)?;
    let (def, log) = load(&ops, id).await?;
    let state = saga::fold(&def, id, &log)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt log", "the log does not fold"))?;
    Ok(Json(SagaDetail { state: state_body(&def, &state), results: state.results(&def), events: log.iter().map(EventEntry::of).collect() }))
}

/// A saga's state as the API shows it.
pub(super) fn state_body(def: &SagaDefinition, state: &SagaState) -> SagaStateBody {
    SagaStateBody {
        saga_id: state.id,
        saga_type: state.saga_type.clone(),
        version: state.version,
        key: state.key.clone(),
        status: state.status,
        reason: state.reason.clone(),
        current_step: state.current_step(def),
        seq: state.seq,
        started_at: wire::rfc3339(state.started_at_ms),
        updated_at: wire::rfc3339(state.updated_at_ms),
        input: state.input.clone(),
        steps: def.steps.iter().enumerate().map(|(i, step)| step_body(state, i, step.name.as_str())).collect(),
    }
}

fn step_body(state: &SagaState, index: usize, name: &str) -> StepBody {
    let step = &state.steps[index];
    StepBody {
        name: name.to_owned(),
        status: step_status(state, index),
        attempts: step.action.last_attempt,
        compensation_attempts: step.compensation.last_attempt,
        output: step.action.output.clone(),
        error: step.compensation.error.as_ref().or(step.action.error.as_ref()).cloned(),
    }
}

fn step_status(state: &SagaState, index: usize) -> StepStatus {
    let step = &state.steps[index];
    if state.status == Status::Stuck && matches!(state.phase, Phase::Stuck { step, .. } if step == index) {
        return StepStatus::Stuck;
    }
    match (step.action.outcome, step.compensation.outcome) {
        (_, Outcome::Succeeded) => StepStatus::Compensated,
        (_, Outcome::Pending | Outcome::Unknown) => StepStatus::Compensating,
        (Outcome::NotSent, _) => StepStatus::Pending,
        (Outcome::Pending, _) => StepStatus::Running,
        (Outcome::Succeeded, _) => StepStatus::Succeeded,
        (Outcome::Failed, _) => StepStatus::Failed,
        (Outcome::Unknown, _) => StepStatus::Unknown,
        (Outcome::Skipped, _) => StepStatus::Skipped,
    }
}
