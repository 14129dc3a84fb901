//! `GET /sagas` (filters, cursor pages) and `GET /sagas/{id}/state`
//! (time travel: the state as it was at a seq or an instant).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::api::{ListQuery, SagaPage, SagaRow, SagaStateBody, StateQuery};
use super::sagas::{load, parse_id, state_body};
use super::{ApiError, Ops};
use crate::saga::{self, Status};
use crate::store::{EventStore, ListFilter, SagaSummary, PAGE_SIZE_MAX};
use crate::wire;

/// Sagas per page when the caller does not say.
pub const PAGE_SIZE_DEFAULT: u32 = 50;

pub(super) fn routes<S: EventStore + Clone>() -> Router<Arc<Ops<S>>> {
    Router::new().route("/sagas", get(list::<S>)).route("/sagas/{id}/state", get(state::<S>))
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed query", detail)
}

/// An RFC 3339 instant of the query, in ms since the epoch.
pub(crate) fn instant(name: &str, text: &str) -> Result<i64, ApiError> {
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| bad(format!("{name}: {text:?} is not an RFC 3339 time: {e}")))?;
    let ms = at.duration_since(UNIX_EPOCH).map_err(|_| bad(format!("{name}: {text:?} is before 1970")))?.as_millis();
    i64::try_from(ms).map_err(|_| bad(format!("{name}: {text:?} is too far away")))
}

/// The store's filter for a list query (what `GET /sagas` reads), at `now_ms`.
pub(crate) fn filter(query: &ListQuery, now_ms: i64) -> Result<ListFilter, ApiError> {
    let mut filter = ListFilter { saga_type: query.saga_type.clone(), key: query.key.clone(), ..ListFilter::default() };
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
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<SagaPage>, ApiError> {
    let Query(query) = query?;
    let filter = filter(&query, ops.clock.now_ms())?;
    let cursor = query.cursor.as_deref().map(parse_id).transpose()?;
    let limit = query.limit.unwrap_or(PAGE_SIZE_DEFAULT);
    if limit == 0 || limit > PAGE_SIZE_MAX {
        return Err(bad(format!("limit must be 1 to {PAGE_SIZE_MAX}")));
    }
    let page = ops.store.list(&filter, cursor, limit).await?;
    Ok(Json(SagaPage { sagas: page.sagas.iter().map(row).collect(), next_cursor: page.next_cursor }))
}

/// One row of the list.
fn row(s: &SagaSummary) -> SagaRow {
    SagaRow {
        saga_id: s.saga_id,
        saga_type: s.saga_type.clone(),
        version: s.version,
        key: s.key.clone(),
        status: s.status,
        current_step: s.current_step.clone(),
        started_at: wire::rfc3339(s.started_at_ms),
        updated_at: wire::rfc3339(s.updated_at_ms),
    }
}

async fn state<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    Path(id): Path<String>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Json<SagaStateBody>, ApiError> {
    let Query(query) = query?;
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
    Ok(Json(state_body(&def, &state)))
}
