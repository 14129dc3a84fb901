//! Operator verbs: `POST /sagas/{id}/retry | /compensate | /abort`, behind
//! the operator token (checked by [`super::access`]).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use super::api::{SagaStatusBody, VerbBody};
use super::sagas::parse_id;
use super::{ApiError, Ops};
use crate::saga::Input;
use crate::store::EventStore;

/// Longest reason accepted (it is recorded in the saga's log).
pub const REASON_BYTES_MAX: usize = 4_096;

pub(super) fn routes<S: EventStore + Clone>() -> Router<Arc<Ops<S>>> {
    Router::new().route("/sagas/{id}/{verb}", post(operate::<S>))
}

async fn operate<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    Path((id, verb)): Path<(String, String)>,
    body: Result<Json<VerbBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SagaStatusBody>), ApiError> {
    let id = parse_id(&id)?;
    let Json(VerbBody { reason }) = body?;
    if reason.trim().is_empty() || reason.len() > REASON_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed body",
            format!("reason must be 1 to {REASON_BYTES_MAX} bytes of text"),
        ));
    }
    let input = match verb.as_str() {
        "retry" => Input::OperatorRetry { reason },
        "compensate" => Input::OperatorCompensate { reason },
        "abort" => Input::OperatorAbort { reason },
        other => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such verb", format!("{other:?}: use retry, compensate or abort"))),
    };
    tracing::info!(saga_id = %id, %verb, "operator verb");
    let status = ops.engine.operate(id, input).await?;
    Ok((StatusCode::ACCEPTED, Json(SagaStatusBody { saga_id: id, status })))
}
