//! The one place that assembles a running orchestrator: `jetsaga serve`,
//! `jetsaga demo`, the integration tests and the benchmarks all call
//! [`Orchestrator::build`] and stop it with [`Orchestrator::shutdown`].
//!
//! Start-up, in this order: the definitions are recorded in the store
//! (changed content under a recorded version is refused) → the broker is
//! connected and its streams created (JetStream) → the engine starts, its
//! recovery first → the inbound consumers, the event relay and the ops API
//! run. Readiness (`/readyz`) follows these steps; the ops API itself
//! may serve `/healthz` and `/readyz` from before the first of them
//! ([`Orchestrator::build_serving`], as `jetsaga serve` does).
//!
//! Shutdown is one signal to every part: the ops API stops taking
//! requests, the consumers stop delivering, the engine finishes the batch
//! in progress, the relay stops after the event it is publishing. What
//! was not acknowledged is redelivered to whoever runs next.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::definition::Catalog;
use crate::ops::{self, Ops, OpsConfig, OpsServer, Readiness};
use crate::runtime::relay::{self, RelayStatus};
use crate::runtime::retention::{self, Retention};
use crate::runtime::{Clock, Definitions, Engine, EngineConfig, EngineError, EngineHandle, Metrics, INBOUND_QUEUE_MAX};
use crate::store::EventStore;
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
    /// How the ops API is reached: tokens, auth mode, Host allow-list,
    /// HTTP limits, TLS (the default: SPEC §5's open mode, operator verbs off).
    pub ops: OpsConfig,
    /// How long finished sagas and poison are kept.
    pub retention: Retention,
}

impl OrchestratorConfig {
    /// In-process, default tunables, no token.
    pub fn in_process() -> Self {
        Self { broker: Broker::InProcess, engine: EngineConfig::default(), ops: OpsConfig::default(), retention: Retention::default() }
    }

    /// Over JetStream; the engine's ack wait is the broker's.
    pub fn jetstream(config: JetStreamConfig) -> Self {
        Self {
            engine: EngineConfig { ack_wait: config.ack_wait, ..EngineConfig::default() },
            broker: Broker::JetStream(Box::new(config)),
            ops: OpsConfig::default(),
            retention: Retention::default(),
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
    /// The ops API's access settings are refused (a short token, say).
    #[error("the ops API's access settings are refused: {0}")]
    Access(#[source] ops::AccessError),
    /// The ops API could not listen.
    #[error("the ops API failed: {0}")]
    Http(#[source] std::io::Error),
    /// A part stopped by itself while the orchestrator ran.
    #[error("the {0} stopped unexpectedly")]
    Stopped(&'static str),
    /// A task panicked.
    #[error("the {0} task panicked")]
    Panicked(&'static str),
}

/// How long a clean shutdown waits for acknowledgements on their way.
pub const ACK_FLUSH_MAX: Duration = Duration::from_secs(5);

/// The orchestrator's tasks besides the engine: each says when it ends.
struct Tasks {
    handles: Vec<(&'static str, JoinHandle<()>)>,
    ended_tx: mpsc::UnboundedSender<&'static str>,
}

impl Tasks {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let ended = self.ended_tx.clone();
        let handle = tokio::spawn(async move {
            task.await;
            let _ = ended.send(name);
        });
        self.handles.push((name, handle));
    }
}

/// A running orchestrator: engine, consumers, relay and ops API.
#[derive(Debug)]
pub struct Orchestrator<S> {
    store: S,
    handle: EngineHandle,
    metrics: Arc<Metrics>,
    relay: Arc<RelayStatus>,
    transport: AnyTransport,
    ops_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    engine: JoinHandle<Result<(), EngineError>>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    ended: mpsc::UnboundedReceiver<&'static str>,
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
        config.ops.access.validate().map_err(OrchestratorError::Access)?;
        let server = match listener {
            Some(listener) => {
                Some(OpsServer::start(listener, &config.ops, Arc::new(Readiness::default())).map_err(OrchestratorError::Http)?)
            }
            None => None,
        };
        Self::build_serving(catalog, store, server, config).await
    }

    /// Like [`build`](Self::build), over an ops API that already serves
    /// `/healthz` and `/readyz` (`jetsaga serve` starts it before it
    /// reaches the database); its readiness follows the steps below, and
    /// the whole API is handed to it once the orchestrator runs.
    pub async fn build_serving(
        catalog: &Catalog,
        store: S,
        server: Option<OpsServer>,
        config: OrchestratorConfig,
    ) -> Result<Self, OrchestratorError> {
        config.ops.access.validate().map_err(OrchestratorError::Access)?;
        let clock = Clock::system();
        let readiness = server.as_ref().map_or_else(|| Arc::new(Readiness::default()), |server| server.readiness().clone());
        // The store is connected and migrated: that is what `build` takes.
        readiness.database.store(true, Ordering::SeqCst);
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
        readiness.nats.store(true, Ordering::SeqCst);
        let engine = Engine::new(store.clone(), transport.clone(), definitions.clone(), config.engine, clock);
        let (handle, metrics, poison) = (engine.handle(), engine.metrics(), engine.poison());
        let relay_status = Arc::new(RelayStatus::default());
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let mut tasks = Tasks { handles: Vec::new(), ended_tx };
        if let AnyTransport::JetStream(js) = &transport {
            let consumers = js.orchestrator_consumers().await.map_err(OrchestratorError::Consumers)?;
            tasks.spawn("inbound consumers", consumers.run(inbound_tx, poison, stopped(&stop)));
            let (store, sink, status) = (store.clone(), js.as_ref().clone(), relay_status.clone());
            tasks.spawn("event relay", relay::run(store, sink, RELAY_NAME, status, clock, stopped(&stop)));
        } else {
            drop(inbound_tx);
        }
        tasks.spawn("retention", retention::run(store.clone(), config.retention, clock, stopped(&stop)));
        readiness.consumers.store(true, Ordering::SeqCst);
        readiness.relay.store(true, Ordering::SeqCst);
        let ops_addr = match server {
            Some(server) => {
                let addr = server.addr();
                let OpsConfig { access, http: limits, .. } = config.ops.clone();
                let ops = Ops {
                    engine: handle.clone(),
                    store: store.clone(),
                    definitions,
                    readiness,
                    metrics: metrics.clone(),
                    relay: relay_status.clone(),
                    gate: access.gate(addr),
                    limits,
                    clock,
                };
                server.serve_api(ops::router(ops));
                let shutdown = stopped(&stop);
                tasks.spawn("ops API", async move {
                    if let Err(error) = server.run_until(shutdown).await {
                        tracing::error!(%error, "the ops API failed");
                    }
                });
                Some(addr)
            }
            None => None,
        };
        let engine = tokio::spawn(engine.run(inbound, stopped(&stop)));
        Ok(Self { store, handle, metrics, relay: relay_status, transport, ops_addr, stop, engine, tasks: tasks.handles, ended })
    }
}

impl<S> Orchestrator<S> {
    /// Starts sagas and applies operator verbs.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// How the event relay is doing (its lag; idle without a broker).
    pub fn relay(&self) -> Arc<RelayStatus> {
        self.relay.clone()
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

    /// Runs until `signal` resolves, then shuts everything down. A part
    /// that stops by itself (the engine, the consumers, the relay, the ops
    /// API) stops the rest too, and that is an error: a process that cannot
    /// do its work must not look healthy.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), OrchestratorError> {
        let early = tokio::select! {
            () = signal => None,
            finished = &mut self.engine => Some(match finished {
                Ok(Ok(())) => OrchestratorError::Stopped("engine"),
                Ok(Err(error)) => OrchestratorError::Engine(error),
                Err(_) => OrchestratorError::Panicked("engine"),
            }),
            Some(name) = self.ended.recv() => Some(OrchestratorError::Stopped(name)),
        };
        let Some(error) = early else { return self.shutdown().await };
        tracing::error!(%error, "shutting down");
        let _ = self.stop.send(true);
        if !self.engine.is_finished() {
            let _ = (&mut self.engine).await;
        }
        let _ = self.settle().await;
        Err(error)
    }

    /// Stops every part and waits for them: the engine finishes its batch,
    /// then acknowledgements on their way reach the broker.
    pub async fn shutdown(mut self) -> Result<(), OrchestratorError> {
        let _ = self.stop.send(true);
        let engine = (&mut self.engine).await.map_err(|_| OrchestratorError::Panicked("engine"))?.map_err(OrchestratorError::Engine);
        let rest = self.settle().await;
        engine.and(rest)
    }

    /// Waits for the other tasks, then flushes acknowledgements.
    async fn settle(&mut self) -> Result<(), OrchestratorError> {
        let mut result = Ok(());
        for (name, task) in self.tasks.drain(..) {
            if task.await.is_err() && result.is_ok() {
                result = Err(OrchestratorError::Panicked(name));
            }
        }
        if let AnyTransport::JetStream(js) = &self.transport {
            if !js.flush_acks(ACK_FLUSH_MAX).await {
                tracing::warn!("some acknowledgements did not reach the broker; those messages will be delivered again");
            }
        }
        result
    }
}

/// Resolves once `stop` says so (or its sender is gone).
fn stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = stop.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
