//! `GET /poison` (a page of poison records, oldest first, `after` the last
//! id seen) and `GET /poison/{id}` (one record with its payload): what
//! `serve` could not use, for operators without `psql`. Read-only, gated
//! like the other reads ([`super::access`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::api::{PoisonDetail, PoisonPage, PoisonQuery, PoisonRow};
use super::{ApiError, Ops, PAGE_SIZE_DEFAULT};
use crate::store::{EventStore, PoisonEntry, PAGE_SIZE_MAX};
use crate::wire;

pub(super) fn routes<S: EventStore + Clone>() -> Router<Arc<Ops<S>>> {
    Router::new().route("/poison", get(list::<S>)).route("/poison/{id}", get(show::<S>))
}

async fn list<S: EventStore>(
    State(ops): State<Arc<Ops<S>>>,
    query: Result<Query<PoisonQuery>, QueryRejection>,
) -> Result<Json<PoisonPage>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(PAGE_SIZE_DEFAULT);
    if limit == 0 || limit > PAGE_SIZE_MAX {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed query", format!("limit must be 1 to {PAGE_SIZE_MAX}")));
    }
    let entries = ops.store.poison_after(query.after.unwrap_or(0), limit).await?;
    // A full page may have more after it (the next page may then be empty).
    let next_after = entries.last().filter(|_| entries.len() == limit as usize).map(|entry| entry.id);
    Ok(Json(PoisonPage { poison: entries.iter().map(row).collect(), next_after }))
}

async fn show<S: EventStore>(State(ops): State<Arc<Ops<S>>>, Path(id): Path<String>) -> Result<Json<PoisonDetail>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "poison not found", format!("no poison record {id}"));
    let wanted: i64 = id.parse().ok().filter(|id| *id > 0).ok_or_else(not_found)?;
    let entry = ops.store.poison_after(wanted - 1, 1).await?.into_iter().find(|entry| entry.id == wanted).ok_or_else(not_found)?;
    let payload = String::from_utf8_lossy(&entry.record.payload).into_owned();
    Ok(Json(PoisonDetail { poison: row(&entry), payload }))
}

fn row(entry: &PoisonEntry) -> PoisonRow {
    PoisonRow {
        id: entry.id,
        subject: entry.record.subject.clone(),
        reason: entry.record.reason.clone(),
        received_at: wire::rfc3339(entry.record.received_at_ms),
        payload_bytes: entry.record.payload.len(),
    }
}
