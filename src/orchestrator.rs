//! The one place that assembles a running orchestrator: `jetsaga serve`,
//! `jetsaga demo`, the integration tests and the benchmarks all call
//! [`Orchestrator::build`] and stop it with [`Orchestrator::shutdown`].
//!
//! Start-up, in this order: the definitions are recorded in the store
//! (changed content under a recorded version is refused) → the broker is
//! connected and its streams created (JetStream) → the engine starts, its
//! recovery first → the inbound consumers, the event relay and the ops API
//! run. Readiness (`/readyz`) follows these steps.
//!
//! Shutdown is one signal to every part: the ops API stops taking
//! requests, the consumers stop delivering, the engine finishes the batch
//! in progress, the relay stops after the event it is publishing. What
//! was not acknowledged is redelivered to whoever runs next.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::definition::Catalog;
use crate::ops::{self, Ops, Readiness};
use crate::runtime::relay::{self, RelayLag};
use crate::runtime::{Clock, Definitions, Engine, EngineConfig, EngineError, EngineHandle, Metrics, INBOUND_QUEUE_MAX};
use crate::store::{EventStore, StoreError};
use crate::transport::{AnyTransport, JetStreamConfig, JetStreamTransport, MemoryTransport, TransportError};

/// The name of the relay's checkpoint in the store.
pub const RELAY_NAME: &str = "saga_events";

/// Where commands, replies and starts travel.
#[derive(Debug, Clone)]
pub enum Broker {
    /// In-process channels: participants run in the same process
    /// ([`Orchestrator::transport`]); no event relay.
    InProcess,
    /// NATS JetStream: streams created if missing, durable consumers, the
    /// event relay to `SAGA_EVENTS`.
    JetStream(Box<JetStreamConfig>),
}

/// How to assemble the orchestrator.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// The broker.
    pub broker: Broker,
    /// The engine's tunables (its ack wait must match the broker's).
    pub engine: EngineConfig,
    /// The bearer token of the operator verbs (`None`: verbs are off).
    pub ops_token: Option<String>,
}

impl OrchestratorConfig {
    /// In-process, default tunables, no token.
    pub fn in_process() -> Self {
        Self { broker: Broker::InProcess, engine: EngineConfig::default(), ops_token: None }
    }

    /// Over JetStream; the engine's ack wait is the broker's.
    pub fn jetstream(config: JetStreamConfig) -> Self {
        Self {
            engine: EngineConfig { ack_wait: config.ack_wait, ..EngineConfig::default() },
            broker: Broker::JetStream(Box::new(config)),
            ops_token: None,
        }
    }
}

/// Why the orchestrator could not start, or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The definitions could not be recorded (or changed under a recorded version).
    #[error("failed to record the definitions: {0}")]
    Definitions(#[source] EngineError),
    /// The broker could not be set up.
    #[error("failed to set up NATS JetStream: {0}")]
    Broker(#[source] TransportError),
    /// The engine failed.
    #[error("the engine failed: {0}")]
    Engine(#[source] EngineError),
    /// The inbound consumers failed.
    #[error("the inbound consumers failed: {0}")]
    Consumers(#[source] TransportError),
    /// The event relay failed.
    #[error("the event relay failed: {0}")]
    Relay(#[source] StoreError),
    /// The ops API failed.
    #[error("the ops API failed: {0}")]
    Http(#[source] std::io::Error),
    /// A task panicked.
    #[error("the {0} task panicked")]
    Panicked(&'static str),
}

type Task = (&'static str, JoinHandle<Result<(), OrchestratorError>>);

/// A running orchestrator: engine, consumers, relay and ops API.
#[derive(Debug)]
pub struct Orchestrator<S> {
    store: S,
    handle: EngineHandle,
    metrics: Arc<Metrics>,
    transport: AnyTransport,
    ops_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    engine: JoinHandle<Result<(), EngineError>>,
    tasks: Vec<Task>,
}

impl<S: EventStore + Clone> Orchestrator<S> {
    /// Assembles and starts the orchestrator over `store` (connected and
    /// migrated), serving the ops API on `listener` if one is given.
    pub async fn build(
        catalog: &Catalog,
        store: S,
        listener: Option<TcpListener>,
        config: OrchestratorConfig,
    ) -> Result<Self, OrchestratorError> {
        let clock = Clock::system();
        let readiness = Arc::new(Readiness::default());
        readiness.migrated.store(true, Ordering::SeqCst);
        let definitions = Arc::new(Definitions::new(catalog));
        definitions.record_in(&store).await.map_err(OrchestratorError::Definitions)?;
        let (stop, _) = watch::channel(false);
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
        let transport = match &config.broker {
            Broker::InProcess => AnyTransport::Memory(MemoryTransport::new(inbound_tx.clone())),
            Broker::JetStream(js) => {
                AnyTransport::JetStream(Box::new(JetStreamTransport::connect((**js).clone()).await.map_err(OrchestratorError::Broker)?))
            }
        };
        readiness.streams.store(true, Ordering::SeqCst);
        let engine = Engine::new(store.clone(), transport.clone(), definitions.clone(), config.engine, clock);
        let (handle, metrics, poison) = (engine.handle(), engine.metrics(), engine.poison());
        let relay_lag = Arc::new(RelayLag::default());
        let mut tasks: Vec<Task> = Vec::new();
        if let AnyTransport::JetStream(js) = &transport {
            let (inbound_js, until) = (js.as_ref().clone(), stopped(&stop));
            let consumers = async move { inbound_js.run_inbound(inbound_tx, poison, until).await.map_err(OrchestratorError::Consumers) };
            tasks.push(("consumers", tokio::spawn(consumers)));
            let (store, sink, lag, until) = (store.clone(), js.as_ref().clone(), relay_lag.clone(), stopped(&stop));
            let relay = async move { relay::run(store, sink, RELAY_NAME, lag, clock, until).await.map_err(OrchestratorError::Relay) };
            tasks.push(("relay", tokio::spawn(relay)));
        } else {
            drop(inbound_tx);
        }
        readiness.consumers.store(true, Ordering::SeqCst);
        let ops_addr = match listener {
            Some(listener) => {
                let addr = listener.local_addr().map_err(OrchestratorError::Http)?;
                let ops = Ops {
                    engine: handle.clone(),
                    store: store.clone(),
                    definitions,
                    readiness,
                    metrics: metrics.clone(),
                    relay_lag,
                    token: config.ops_token.clone(),
                    clock,
                };
                let http = ops::serve(listener, ops::router(ops), stopped(&stop));
                tasks.push(("ops API", tokio::spawn(async move { http.await.map_err(OrchestratorError::Http) })));
                tracing::info!(listen = %addr, "ops API listening");
                Some(addr)
            }
            None => None,
        };
        let engine = tokio::spawn(engine.run(inbound, stopped(&stop)));
        Ok(Self { store, handle, metrics, transport, ops_addr, stop, engine, tasks })
    }
}

impl<S> Orchestrator<S> {
    /// Starts sagas and applies operator verbs.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The engine's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The transport, for participants in the same process (its
    /// [`crate::transport::ParticipantTransport`] side).
    pub fn transport(&self) -> &AnyTransport {
        &self.transport
    }

    /// Where the ops API listens, if it was given a listener.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// A future that resolves when the orchestrator is told to stop.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        stopped(&self.stop)
    }

    /// Runs until `signal` resolves (or the engine stops by itself), then
    /// shuts everything down.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), OrchestratorError> {
        tokio::select! {
            () = signal => {}
            finished = &mut self.engine => {
                // The engine stopped without being asked: shut the rest down too.
                let _ = self.stop.send(true);
                let engine = finished.map_err(|_| OrchestratorError::Panicked("engine"))?.map_err(OrchestratorError::Engine);
                let rest = join(self.tasks).await;
                return engine.and(rest);
            }
        }
        self.shutdown().await
    }

    /// Stops every part and waits for them: the engine finishes its batch.
    pub async fn shutdown(self) -> Result<(), OrchestratorError> {
        let _ = self.stop.send(true);
        let engine = self.engine.await.map_err(|_| OrchestratorError::Panicked("engine"))?.map_err(OrchestratorError::Engine);
        let rest = join(self.tasks).await;
        engine.and(rest)
    }
}

/// Waits for every task; the first failure is the answer.
async fn join(tasks: Vec<Task>) -> Result<(), OrchestratorError> {
    let mut first = Ok(());
    for (name, task) in tasks {
        let result = task.await.unwrap_or(Err(OrchestratorError::Panicked(name)));
        if first.is_ok() {
            first = result;
        }
    }
    first
}

/// Resolves once `stop` says so (or its sender is gone).
fn stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = stop.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
