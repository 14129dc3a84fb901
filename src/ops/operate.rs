//! Operator verbs: `POST /sagas/{id}/retry | /compensate | /abort`, behind
//! a bearer token compared in constant time and never logged.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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
    headers: HeaderMap,
    body: Result<Json<VerbBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SagaStatusBody>), ApiError> {
    authorize(ops.token.as_deref(), &headers)?;
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

/// `Authorization: Bearer <token>`; without a configured token the verbs are off.
fn authorize(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = token else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "operator verbs are off: start serve with --ops-token"));
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token"))
    }
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of the token was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
