//! The one test harness: an orchestrator assembled exactly as `serve`
//! assembles it ([`Orchestrator::build`]), participants on the SDK
//! (`participant::serve_commands`) with a [`Behaviour`] each, definitions
//! from `tests/fixtures/sagas/`, the ops API on a free port, one way to
//! wait ([`eventually!`], and [`TestApp::wait_until`] for a saga) and one
//! HTTP client ([`http`]).
//!
//! `spawn_app(&["trip"], always_ok()).await` is the common case: SQLite in
//! a temporary directory, the in-process broker. [`AppOptions`] (from
//! [`app`]) chooses PostgreSQL, JetStream, a shorter timeout, the ack
//! wait, behaviours per participant or the SDK's simulated participants.
//!
//! Participants subscribe right after the build; a command sent before
//! (recovery re-sends at start) waits in the participant's queue, as it
//! would in a broker's stream.
//!
//! Here the app; in `fixtures.rs` the definitions and saga ids, in
//! `participants.rs` the behaviours and the ledger, in `http.rs` the HTTP
//! client.

mod faulty_store;
mod fixtures;
mod http;
mod participants;

pub use faulty_store::FaultyStore;
pub use fixtures::{catalog, fixture, saga_id, trip_booking, with_timeout};
pub use http::{exchange, http, sample};
pub use participants::{always_ok, answer, silent, Behaviour, Ledger};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jetsaga::orchestrator::{Broker, Orchestrator, OrchestratorConfig, OrchestratorError};
use jetsaga::participant::{ParticipantError, SimulationConfig};
use jetsaga::runtime::{EngineConfig, EngineHandle};
use jetsaga::saga::{SagaEvent, SagaId, Status};
use jetsaga::store::{AnyStore, EventStore, PoisonRecord, SagaSummary, SqliteStore};
use jetsaga::transport::{AnyTransport, JetStreamConfig, JetStreamTransport};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::infra;
use participants::Participants;

/// The operator token of every test app.
pub const TOKEN: &str = "s3cret-test-token";

/// How long [`eventually!`] and [`TestApp::wait_until`] wait before failing the test.
pub const WAIT_MAX: Duration = Duration::from_secs(20);

/// How long one HTTP exchange may take (a browser starting is the slowest).
pub const HTTP_MAX: Duration = Duration::from_secs(60);

/// The pause between two looks of a waiting test ([`eventually!`]).
pub const POLL: Duration = Duration::from_millis(10);

// ---- waiting ------------------------------------------------------------

/// `eventually!(what, probe)`: evaluates `probe` (an expression that may
/// `.await`) every few milliseconds until it is `Some(found)`, and is
/// `found`; fails the test after [`WAIT_MAX`], saying it waited for `what`
/// (evaluated only then, so it may `.await` too).
macro_rules! eventually {
    ($what:expr, $probe:expr) => {{
        let deadline = tokio::time::Instant::now() + $crate::support::WAIT_MAX;
        loop {
            let probe = $probe;
            if let Some(found) = probe {
                break found;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("waited {:?} for {}, in vain", $crate::support::WAIT_MAX, $what);
            }
            tokio::time::sleep($crate::support::POLL).await;
        }
    }};
}
pub(crate) use eventually;

// ---- the app ------------------------------------------------------------

/// How to spawn a test app; [`app`] gives the defaults.
#[derive(Clone)]
pub struct AppOptions {
    definitions: Vec<String>,
    participants: Participants,
    postgres: bool,
    jetstream: bool,
    ack_wait: Duration,
    lease: Duration,
}

/// Options for an app running the fixtures `names`, every participant `ok`,
/// SQLite, in-process, an ack wait of 100 ms.
pub fn app(names: &[&str]) -> AppOptions {
    AppOptions {
        definitions: names.iter().map(|n| fixture(n)).collect(),
        participants: Participants::Behaviours { default: always_ok(), named: HashMap::new() },
        postgres: false,
        jetstream: false,
        ack_wait: Duration::from_millis(100),
        lease: jetsaga::runtime::ENGINE_LEASE_DEFAULT,
    }
}

/// Spawns an app running the fixtures `names` whose participants all do `behaviour`.
pub async fn spawn_app(names: &[&str], behaviour: Behaviour) -> TestApp {
    app(names).behaviour(behaviour).spawn().await
}

impl AppOptions {
    /// These definition texts instead.
    pub fn definitions(mut self, texts: Vec<String>) -> Self {
        self.definitions = texts;
        self
    }

    /// Every definition's default timeout set to `timeout` ([`with_timeout`]).
    pub fn timeout(mut self, timeout: &str) -> Self {
        self.definitions = self.definitions.iter().map(|text| with_timeout(text, timeout)).collect();
        self
    }

    /// What every participant without a behaviour of its own does.
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        let named = match self.participants {
            Participants::Behaviours { named, .. } => named,
            _ => HashMap::new(),
        };
        self.participants = Participants::Behaviours { default: behaviour, named };
        self
    }

    /// What `participant` does; it runs even if no current definition names
    /// it (after [`AppOptions::simulated`] or [`AppOptions::without_participants`],
    /// back to behaviours, the others `ok`).
    pub fn participant(mut self, participant: &str, behaviour: Behaviour) -> Self {
        if !matches!(self.participants, Participants::Behaviours { .. }) {
            self = self.behaviour(always_ok());
        }
        if let Participants::Behaviours { named, .. } = &mut self.participants {
            named.insert(participant.to_owned(), behaviour);
        }
        self
    }

    /// The SDK's simulated participants instead of behaviours.
    pub fn simulated(mut self, config: SimulationConfig) -> Self {
        self.participants = Participants::Simulated(config);
        self
    }

    /// No participant in this process (another one answers, or nobody).
    pub fn without_participants(mut self) -> Self {
        self.participants = Participants::None;
        self
    }

    /// Events in a fresh PostgreSQL schema.
    pub fn postgres(mut self) -> Self {
        self.postgres = true;
        self
    }

    /// Commands and replies over the local nats-server, under a prefix of the app's own.
    pub fn jetstream(mut self) -> Self {
        self.jetstream = true;
        self
    }

    /// The ack wait: the broker's redelivery delay and the restart grace.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// The engine's lease (how soon other engines count it dead).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Opens the store, builds the orchestrator and starts the participants.
    pub async fn spawn(self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = match self.postgres {
            true => AnyStore::Postgres(infra::postgres(&infra::unique("jetsaga_app")).await),
            false => {
                AnyStore::Sqlite(SqliteStore::open(dir.path().join("events.db").to_str().expect("utf-8")).await.expect("sqlite opens"))
            }
        };
        let world = World { store, prefix: format!("{}.saga", infra::unique("app")), ledger: Ledger::default(), _dir: Arc::new(dir) };
        TestApp::launch(self, world).await.expect("the orchestrator starts")
    }

    fn config(&self, prefix: &str) -> OrchestratorConfig {
        let broker = match self.jetstream {
            true => Broker::JetStream(Box::new(JetStreamConfig { ack_wait: self.ack_wait, ..infra::nats_config(prefix) })),
            false => Broker::InProcess,
        };
        let engine = EngineConfig { ack_wait: self.ack_wait, lease: self.lease, ..EngineConfig::default() };
        OrchestratorConfig {
            broker,
            engine,
            ops_token: Some(TOKEN.to_owned()),
            retention: jetsaga::runtime::retention::Retention::default(),
        }
    }
}

/// What outlives a restart (and what sibling apps share): the store, the
/// broker prefix, the ledger.
#[derive(Clone)]
struct World {
    store: AnyStore,
    prefix: String,
    ledger: Ledger,
    _dir: Arc<tempfile::TempDir>,
}

/// A running orchestrator with its participants.
pub struct TestApp {
    orchestrator: Orchestrator<AnyStore>,
    participants: Vec<JoinHandle<Result<(), ParticipantError>>>,
    options: AppOptions,
    world: World,
    /// Starts sagas and applies operator verbs, in process.
    pub handle: EngineHandle,
    /// The event store.
    pub store: AnyStore,
    /// The ops API's base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// What the participants received and did.
    pub ledger: Ledger,
}

impl TestApp {
    async fn launch(options: AppOptions, world: World) -> Result<TestApp, OrchestratorError> {
        let catalog = catalog(&options.definitions);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let orchestrator = Orchestrator::build(&catalog, world.store.clone(), Some(listener), options.config(&world.prefix)).await?;
        let participants = options.participants.spawn(&catalog, &orchestrator, &world.ledger).await;
        let url = format!("http://{}", orchestrator.ops_addr().expect("the ops API listens"));
        let (handle, store, ledger) = (orchestrator.handle(), world.store.clone(), world.ledger.clone());
        Ok(TestApp { orchestrator, participants, options, world, handle, store, url, ledger })
    }

    /// Stops the orchestrator and its participants, and deletes the app's streams.
    pub async fn stop(self) {
        let transport = self.orchestrator.transport().clone();
        self.halt().await;
        if let AnyTransport::JetStream(js) = transport {
            js.delete_streams().await.expect("the app's streams are deleted");
        }
    }

    async fn halt(self) -> (AppOptions, World) {
        self.orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
        for participant in self.participants {
            participant.await.expect("a participant task").expect("a participant served until the end");
        }
        (self.options, self.world)
    }

    /// Stops everything and builds the app again on the same store and
    /// broker, with `change`d options (a new deploy: other definitions,
    /// other behaviours; `|o| o` for none): what a restart of `serve` does
    /// (recovery runs first).
    pub async fn restart_with(self, change: impl FnOnce(AppOptions) -> AppOptions) -> Result<TestApp, OrchestratorError> {
        let (options, world) = self.halt().await;
        TestApp::launch(change(options), world).await
    }

    /// A second orchestrator on the same store (and broker prefix), with
    /// `change`d options: two `serve` processes of one deployment. In
    /// process, each has its own broker and participants.
    pub async fn sibling(&self, change: impl FnOnce(AppOptions) -> AppOptions) -> TestApp {
        TestApp::launch(change(self.options.clone()), self.world.clone()).await.expect("the sibling starts")
    }

    /// The broker, as participants in this process use it.
    pub fn transport(&self) -> &AnyTransport {
        self.orchestrator.transport()
    }

    /// The JetStream broker of an app spawned with [`AppOptions::jetstream`].
    pub fn jetstream(&self) -> &JetStreamTransport {
        match self.transport() {
            AnyTransport::JetStream(js) => js,
            AnyTransport::Memory(_) => panic!("the app runs in process: spawn it with .jetstream()"),
        }
    }

    /// Starts a saga of `saga_type` with `input` through the engine.
    pub async fn start(&self, saga_type: &str, input: Value) -> SagaId {
        self.handle.start(saga_type, None, input).await.expect("the saga starts").saga_id
    }

    /// Waits until the saga's summary satisfies `done`; fails the test with
    /// the saga's log after [`WAIT_MAX`].
    pub async fn wait_until(&self, id: SagaId, done: impl Fn(&SagaSummary) -> bool) -> SagaSummary {
        eventually!(
            format!("saga {id} to get there; its log: {:#?}", self.events(id).await),
            self.store.summary(id).await.expect("summary").filter(&done)
        )
    }

    /// Waits until the saga is `status`.
    pub async fn wait_for(&self, id: SagaId, status: Status) -> SagaSummary {
        self.wait_until(id, |s| s.status == status).await
    }

    /// Waits until the saga is finished or stuck, and says which.
    pub async fn settled(&self, id: SagaId) -> Status {
        self.wait_until(id, |s| s.status.is_terminal() || s.status == Status::Stuck).await.status
    }

    /// The saga's summary (its row in the `sagas` projection) now.
    pub async fn summary(&self, id: SagaId) -> SagaSummary {
        self.store.summary(id).await.expect("summary").unwrap_or_else(|| panic!("no saga {id}"))
    }

    /// The saga's events.
    pub async fn events(&self, id: SagaId) -> Vec<SagaEvent> {
        self.store.load(id, None).await.expect("load").into_iter().map(|r| r.event).collect()
    }

    /// The poison messages kept in the store (ten at most).
    pub async fn poison(&self) -> Vec<PoisonRecord> {
        let kept = match &self.store {
            AnyStore::Sqlite(store) => store.poison(10).await,
            AnyStore::Postgres(store) => store.poison(10).await,
        };
        kept.expect("poison")
    }

    /// The types of the saga's events, in order.
    pub async fn types(&self, id: SagaId) -> Vec<&'static str> {
        self.events(id).await.iter().map(SagaEvent::type_name).collect()
    }

    /// `METHOD path` on the ops API with `body` and the bearer `token`: the
    /// status and the body as JSON (`null` if it is not).
    pub async fn http(&self, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, Value) {
        let (status, text) = http(method, &format!("{}{path}", self.url), body, token).await.expect("the ops API answers");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET path` on the ops API.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.http("GET", path, None, None).await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let (status, text) = http("GET", &format!("{}/metrics", self.url), None, None).await.expect("the ops API answers");
        assert_eq!(status, 200, "{text}");
        text
    }
}

/// An orchestrator over a [`FaultyStore`] (in process, its participants all
/// doing `behaviour`): for the tests of failure handling.
pub struct FaultyApp {
    /// The orchestrator.
    pub orchestrator: Orchestrator<FaultyStore>,
    /// Its store, whose switches the test flips.
    pub store: FaultyStore,
    participants: Vec<JoinHandle<Result<(), ParticipantError>>>,
}

/// Spawns a [`FaultyApp`] running the fixtures `names`.
pub async fn spawn_faulty(names: &[&str], behaviour: Behaviour) -> FaultyApp {
    let options = app(names).behaviour(behaviour);
    let catalog = catalog(&options.definitions);
    let store = FaultyStore::default();
    let orchestrator = Orchestrator::build(&catalog, store.clone(), None, options.config("unused")).await.expect("the orchestrator starts");
    let participants = options.participants.spawn(&catalog, &orchestrator, &Ledger::default()).await;
    FaultyApp { orchestrator, store, participants }
}

impl FaultyApp {
    /// Stops the orchestrator and its participants.
    pub async fn stop(self) {
        self.orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
        for participant in self.participants {
            participant.await.expect("a participant task").expect("a participant served until the end");
        }
    }
}
