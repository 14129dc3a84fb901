//! The ops HTTP API (SPEC §5), axum on tower.
//!
//! The router's order, outermost first: access ([`access`]: the Host
//! allow-list, then the token the route needs), the request timeout, the
//! request body limit, then the routes; each handler maps its errors to a
//! status code in one place ([`ApiError`]'s `IntoResponse`). The server
//! under it ([`server`]) bounds header reads and open connections and
//! speaks TLS when configured. Handlers read the store directly and
//! send what changes state (start, operator verbs) to the engine. Every
//! body they read or write is a type of [`api`], which the CLI's client
//! reads back.

pub mod access;
pub mod api;
pub(crate) mod list;
mod metrics;
mod operate;
mod poison;
pub(crate) mod sagas;
pub mod server;
mod startup;
mod ui;

pub use access::{constant_time_eq, Access, AccessError, AuthMode, Gate, TOKEN_BYTES_MIN};
pub use list::PAGE_SIZE_DEFAULT;
pub use operate::REASON_BYTES_MAX;
pub use sagas::{START_WAIT_MARGIN, START_WAIT_MAX, START_WAIT_POLL};
pub use server::{serve, tls_config, HttpLimits, TlsError};
pub use startup::OpsServer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use self::api::{Dependencies, DependencyState, ErrorBody, HealthBody};
use crate::runtime::relay::RelayStatus;
use crate::runtime::{Clock, Definitions, EngineHandle, Metrics};
use crate::store::EventStore;

/// Largest request body accepted by default ([`HttpLimits::request_bytes_max`]).
pub const REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// How the ops API is reached: who may do what, the HTTP limits, TLS.
#[derive(Clone, Default)]
pub struct OpsConfig {
    /// The auth mode, the tokens, the Host allow-list.
    pub access: Access,
    /// Timeouts, the connection cap, the body limit.
    pub http: HttpLimits,
    /// TLS settings ([`tls_config`]); `None`: plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl std::fmt::Debug for OpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsConfig").field("access", &self.access).field("http", &self.http).field("tls", &self.tls.is_some()).finish()
    }
}

/// What `/readyz` checks: each flag is set by the part that owns it, in
/// start-up order (`jetsaga serve` sets the first two before the
/// orchestrator is built; [`crate::orchestrator::Orchestrator::build`] the rest).
#[derive(Debug, Default)]
pub struct Readiness {
    /// The event store is connected.
    pub database: AtomicBool,
    /// The database schema is at this binary's migration.
    pub migrated: AtomicBool,
    /// NATS is connected and the broker's streams exist.
    pub nats: AtomicBool,
    /// The consumers run.
    pub consumers: AtomicBool,
    /// The event relay runs (or there is none: in-process).
    pub relay: AtomicBool,
}

impl Readiness {
    /// Marks every part ready (the embedded mode has no broker).
    pub fn all_ready(&self) {
        for flag in [&self.database, &self.migrated, &self.nats, &self.consumers, &self.relay] {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Each dependency's state; `relay_failing`: the relay's last try failed.
    pub fn dependencies(&self, relay_failing: bool) -> Dependencies {
        let state = |flag: &AtomicBool| match flag.load(Ordering::SeqCst) {
            true => DependencyState::Ready,
            false => DependencyState::Waiting,
        };
        let relay = match state(&self.relay) {
            DependencyState::Ready if relay_failing => DependencyState::Failing,
            relay => relay,
        };
        Dependencies {
            database: state(&self.database),
            nats: state(&self.nats),
            migrations: state(&self.migrated),
            consumers: state(&self.consumers),
            relay,
        }
    }

    /// The answer of `/readyz`: `200` once every dependency is ready,
    /// `503` until then (and while the relay is failing), with each one's state.
    pub fn response(&self, relay_failing: bool) -> Response {
        let dependencies = self.dependencies(relay_failing);
        let waiting_for = dependencies.waiting_for();
        let (code, status) = match waiting_for.is_empty() {
            true => (StatusCode::OK, "ready"),
            false => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        };
        (code, Json(HealthBody { status: status.to_owned(), waiting_for, dependencies: Some(dependencies) })).into_response()
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
    /// Who may do what ([`Access::gate`]).
    pub gate: Gate,
    /// The request timeout and body limit (the router's layers).
    pub limits: HttpLimits,
    /// Now, for filters relative to it (`stuck_for`).
    pub clock: Clock,
}

/// The router of the ops API.
pub fn router<S: EventStore + Clone>(ops: Ops<S>) -> Router {
    let (gate, limits) = (Arc::new(ops.gate.clone()), ops.limits);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::metrics::<S>))
        .merge(sagas::routes::<S>())
        .merge(list::routes::<S>())
        .merge(operate::routes::<S>())
        .merge(poison::routes::<S>())
        .merge(ui::routes())
        .layer(DefaultBodyLimit::max(limits.request_bytes_max))
        .layer(axum::middleware::from_fn_with_state(limits.request_bytes_max, declared_length))
        .layer(tower::ServiceBuilder::new().layer(HandleErrorLayer::new(timed_out)).timeout(limits.request_timeout))
        .layer(axum::middleware::from_fn_with_state(gate, access::check))
        .with_state(Arc::new(ops))
}

/// Refuses a request whose declared `Content-Length` is past the limit
/// before reading any of it (the body limit catches the undeclared ones).
async fn declared_length(
    axum::extract::State(max): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(bytes) if bytes > max as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
            format!("the body is {bytes} bytes; at most {max} are accepted"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// The answer to a request that ran past the request timeout.
async fn timed_out(_: tower::BoxError) -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timeout", "the request took longer than the server's request timeout")
}

async fn readyz<S: EventStore>(axum::extract::State(ops): axum::extract::State<Arc<Ops<S>>>) -> Response {
    // A failing relay: committed events are not reaching SAGA_EVENTS (store or broker trouble).
    ops.readiness.response(ops.relay.failing())
}

/// `/healthz`: the process is up and serving (whatever its dependencies say).
async fn healthz() -> Json<HealthBody> {
    Json(HealthBody { status: "ok".to_owned(), waiting_for: Vec::new(), dependencies: None })
}

/// An API error as the server answers it: an [`ErrorBody`] with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
    /// The saga the error is about, when the caller needs it (a taken key).
    saga_id: Option<crate::saga::SagaId>,
}

impl ApiError {
    /// An error with a status, a short name and a detail.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self { status, error, detail: detail.into(), saga_id: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.error.to_owned(), detail: self.detail, saga_id: self.saga_id })).into_response()
    }
}

impl From<crate::runtime::EngineError> for ApiError {
    fn from(error: crate::runtime::EngineError) -> Self {
        use crate::runtime::EngineError as E;
        let detail = error.to_string();
        match error {
            E::UnknownSagaType(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown saga type", detail),
            E::UnknownSaga(_) => ApiError::new(StatusCode::NOT_FOUND, "saga not found", detail),
            E::UnknownVersion { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown version", detail),
            E::KeyTaken { saga_id, .. } => ApiError { saga_id: Some(saga_id), ..ApiError::new(StatusCode::CONFLICT, "key taken", detail) },
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
