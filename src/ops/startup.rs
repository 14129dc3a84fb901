//! The ops API from the moment its port is bound: `/healthz` and
//! `/readyz` answer at once, while `serve` still waits for the database
//! and NATS, so a platform can tell "starting" from "dead"; every other
//! route answers `503 starting` until the orchestrator hands over the
//! whole API ([`OpsServer::serve_api`]). The access middleware (Host
//! allow-list, tokens) guards the early routes as it guards the API.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use super::{access, ApiError, OpsConfig, Readiness};

/// The ops API's server, serving from before the orchestrator runs.
#[derive(Debug)]
pub struct OpsServer {
    addr: SocketAddr,
    readiness: Arc<Readiness>,
    api: Arc<OnceLock<Router>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl OpsServer {
    /// Serves `/healthz` and `/readyz` (from `readiness`) on `listener`
    /// at once, with `config`'s access rules, limits and TLS.
    pub fn start(listener: TcpListener, config: &OpsConfig, readiness: Arc<Readiness>) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let gate = Arc::new(config.access.gate(addr));
        let early = Router::new()
            .route("/healthz", get(super::healthz))
            .route("/readyz", get(early_readyz))
            .fallback(starting)
            .with_state(readiness.clone())
            .layer(axum::middleware::from_fn_with_state(gate, access::check));
        let api: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
        let dispatch = {
            let api = api.clone();
            tower::service_fn(move |request: Request| {
                // The whole API once the orchestrator runs; the early routes until then.
                let router = api.get().cloned().unwrap_or_else(|| early.clone());
                router.oneshot(request)
            })
        };
        let (stop, _) = watch::channel(false);
        let shutdown = {
            let mut stopped = stop.subscribe();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let router = Router::new().fallback_service(dispatch);
        let task = tokio::spawn(super::serve(listener, router, config.http, config.tls.clone(), shutdown));
        for warning in config.access.warnings(addr) {
            tracing::warn!("{warning}");
        }
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        tracing::info!(listen = %addr, %scheme, mode = ?config.access.mode, "ops API listening");
        Ok(Self { addr, readiness, api, stop, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `/readyz` reports.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    /// From now on, every request goes to `api` (the orchestrator's whole
    /// router, [`super::router`]).
    pub fn serve_api(&self, api: Router) {
        let _ = self.api.set(api);
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets the
    /// requests in flight finish.
    pub async fn run_until(mut self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        tokio::select! {
            ended = &mut self.task => return ended.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            () = shutdown => {}
        }
        let _ = self.stop.send(true);
        (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Stops serving and waits for the requests in flight.
    pub async fn stop(self) -> std::io::Result<()> {
        self.run_until(std::future::ready(())).await
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn early_readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    readiness.response(false)
}

/// Every route but health and readiness, before the orchestrator runs.
async fn starting(State(readiness): State<Arc<Readiness>>) -> Response {
    let waiting_for = readiness.dependencies(false).waiting_for().join(", ");
    let detail = format!("the orchestrator is starting (waiting for: {waiting_for}); /healthz and /readyz answer meanwhile");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting", detail).into_response()
}
