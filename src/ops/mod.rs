//! The ops HTTP API (SPEC §5), axum on tower.
//!
//! The router's order, outermost first: a request body limit, then the
//! routes; each handler maps its errors to a status code in one place
//! ([`ApiError`]'s `IntoResponse`). Handlers read the store directly and
//! send what changes state (start, operator verbs) to the engine. Every
//! body they read or write is a type of [`api`], which the CLI's client
//! reads back.

pub mod api;
mod list;
mod metrics;
mod operate;
mod sagas;
mod ui;

pub use list::PAGE_SIZE_DEFAULT;
pub use operate::{constant_time_eq, REASON_BYTES_MAX};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use self::api::{ErrorBody, HealthBody};
use crate::runtime::relay::RelayStatus;
use crate::runtime::{Clock, Definitions, EngineHandle, Metrics};
use crate::store::EventStore;

/// Largest request body accepted.
pub const REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// What `/readyz` checks: each flag is set by the part that owns it.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Migrations are applied.
    pub migrated: AtomicBool,
    /// The broker's streams exist.
    pub streams: AtomicBool,
    /// The consumers run.
    pub consumers: AtomicBool,
}

impl Readiness {
    /// Marks every part ready (the embedded mode has no broker).
    pub fn all_ready(&self) {
        for flag in [&self.migrated, &self.streams, &self.consumers] {
            flag.store(true, Ordering::SeqCst);
        }
    }

    fn missing(&self) -> Vec<&'static str> {
        let parts = [("migrations", &self.migrated), ("streams", &self.streams), ("consumers", &self.consumers)];
        parts.into_iter().filter(|(_, flag)| !flag.load(Ordering::SeqCst)).map(|(name, _)| name).collect()
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Ops<S> {
    /// Starts sagas and applies operator verbs.
    pub engine: EngineHandle,
    /// Read side.
    pub store: S,
    /// Definitions by version, to fold a saga's log.
    pub definitions: Arc<Definitions>,
    /// For `/readyz`.
    pub readiness: Arc<Readiness>,
    /// The engine's counters.
    pub metrics: Arc<Metrics>,
    /// How far behind the event relay is.
    pub relay: Arc<RelayStatus>,
    /// The bearer token for operator verbs (`None`: verbs are off).
    pub token: Option<String>,
    /// Now, for filters relative to it (`stuck_for`).
    pub clock: Clock,
}

/// The router of the ops API.
pub fn router<S: EventStore + Clone>(ops: Ops<S>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(HealthBody { status: "ok".to_owned(), waiting_for: Vec::new() }) }))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::metrics::<S>))
        .merge(sagas::routes::<S>())
        .merge(list::routes::<S>())
        .merge(operate::routes::<S>())
        .merge(ui::routes())
        .layer(DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(Arc::new(ops))
}

async fn readyz<S: EventStore>(axum::extract::State(ops): axum::extract::State<Arc<Ops<S>>>) -> Response {
    let mut waiting_for: Vec<String> = ops.readiness.missing().into_iter().map(str::to_owned).collect();
    if ops.relay.failing() {
        // Committed events are not reaching SAGA_EVENTS (store or broker trouble).
        waiting_for.push("relay".to_owned());
    }
    match waiting_for.is_empty() {
        true => Json(HealthBody { status: "ready".to_owned(), waiting_for }).into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, Json(HealthBody { status: "not ready".to_owned(), waiting_for })).into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// An API error as the server answers it: an [`ErrorBody`] with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

impl ApiError {
    /// An error with a status, a short name and a detail.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self { status, error, detail: detail.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.error.to_owned(), detail: self.detail })).into_response()
    }
}

impl From<crate::runtime::EngineError> for ApiError {
    fn from(error: crate::runtime::EngineError) -> Self {
        use crate::runtime::EngineError as E;
        let detail = error.to_string();
        match error {
            E::UnknownSagaType(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown saga type", detail),
            E::UnknownSaga(_) => ApiError::new(StatusCode::NOT_FOUND, "saga not found", detail),
            E::Rejected(r) if r.is_conflict() => ApiError::new(StatusCode::CONFLICT, "not allowed in this status", detail),
            E::Rejected(_) => ApiError::new(StatusCode::CONFLICT, "rejected", detail),
            E::TooLarge(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload too large", detail),
            E::Contended(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", detail),
            E::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down", detail),
            E::Store(_) | E::Definition(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", detail),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store error", error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed body", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed query", rejection.body_text())
    }
}
