//! `GET /sagas` (filters, cursor pages) and `GET /sagas/{id}/state`
//! (time travel: the state as it was at a seq or an instant).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::sagas::{load, parse_id, state_json};
use super::{ApiError, Ops};
use crate::saga::{self, Status};
use crate::store::{EventStore, ListFilter, SagaSummary, PAGE_SIZE_MAX};
use crate::wire;

/// Sagas per page when the caller does not say.
pub const PAGE_SIZE_DEFAULT: u32 = 50;

pub(super) fn routes<S: EventStore + Clone>() -> Router<Arc<Ops<S>>> {
    Router::new().route("/sagas", get(list::<S>)).route("/sagas/{id}/state", get(state::<S>))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    saga_type: Option<String>,
    stuck_for: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    updated_before: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed query", detail)
}

fn instant(name: &str, text: &str) -> Result<i64, ApiError> {
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| bad(format!("{name}: {text:?} is not an RFC 3339 time: {e}")))?;
    let ms = at.duration_since(UNIX_EPOCH).map_err(|_| bad(format!("{name}: {text:?} is before 1970")))?.as_millis();
    i64::try_from(ms).map_err(|_| bad(format!("{name}: {text:?} is too far away")))
}

fn filter(query: &ListQuery, now_ms: i64) -> Result<ListFilter, ApiError> {
    let mut filter = ListFilter { saga_type: query.saga_type.clone(), ..ListFilter::default() };
    if let Some(statuses) = &query.status {
        for name in statuses.split(',').filter(|s| !s.is_empty()) {
            filter.statuses.push(Status::parse(name).ok_or_else(|| {
                bad(format!("status {name:?} is not one of running, compensating, completed, compensated, stuck, aborted"))
            })?);
        }
    }
    if let Some(stuck_for) = &query.stuck_for {
        let d: Duration = humantime::parse_duration(stuck_for).map_err(|e| bad(format!("stuck_for {stuck_for:?}: {e}")))?;
        filter.statuses = vec![Status::Stuck];
        filter.updated_before_ms = Some(now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    if let Some(t) = &query.updated_before {
        let t = instant("updated_before", t)?;
        filter.updated_before_ms = Some(filter.updated_before_ms.map_or(t, |u| u.min(t)));
    }
    filter.started_from_ms = query.started_after.as_deref().map(|t| instant("started_after", t)).transpose()?;
    filter.started_until_ms = query.started_before.as_deref().map(|t| instant("started_before", t)).transpose()?;
    Ok(filter)
}

async fn list<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let filter = filter(&query, ops.clock.now_ms())?;
    let cursor = query.cursor.as_deref().map(parse_id).transpose()?;
    let limit = query.limit.unwrap_or(PAGE_SIZE_DEFAULT);
    if limit == 0 || limit > PAGE_SIZE_MAX {
        return Err(bad(format!("limit must be 1 to {PAGE_SIZE_MAX}")));
    }
    let page = ops.store.list(&filter, cursor, limit).await?;
    let sagas: Vec<Value> = page.sagas.iter().map(summary_json).collect();
    Ok(Json(json!({ "sagas": sagas, "next_cursor": page.next_cursor.map(|c| c.to_string()) })))
}

/// One row of the list.
pub(super) fn summary_json(s: &SagaSummary) -> Value {
    json!({
        "saga_id": s.saga_id.to_string(),
        "saga_type": s.saga_type,
        "version": s.version,
        "status": s.status,
        "current_step": s.current_step,
        "started_at": wire::rfc3339(s.started_at_ms),
        "updated_at": wire::rfc3339(s.updated_at_ms),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    at_seq: Option<u64>,
    at: Option<String>,
}

async fn state<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    Path(id): Path<String>,
    query: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let id = parse_id(&id)?;
    let (def, log) = load(&ops, id).await?;
    let upto: Vec<_> = match (query.at_seq, query.at.as_deref()) {
        (Some(seq), None) => log.into_iter().take_while(|r| r.seq <= seq).collect(),
        (None, Some(at)) => {
            let at = instant("at", at)?;
            log.into_iter().take_while(|r| r.at_ms <= at).collect()
        }
        _ => return Err(bad("give exactly one of at_seq=N or at=<RFC 3339>")),
    };
    let state =
        saga::fold(&def, id, &upto).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no state then", "the saga had not started yet"))?;
    Ok(Json(state_json(&def, &state)))
}
