//! The one test harness: an orchestrator assembled exactly as `serve`
//! assembles it ([`Orchestrator::build`]), participants on the SDK
//! ([`participant::serve`]) with a behaviour per test, definitions from
//! `tests/fixtures/sagas/`, a real HTTP ops API on a free port, and one way
//! to wait for a saga.
//!
//! `spawn_app(&["trip"], always_ok()).await` is the common case (SQLite in
//! a temporary directory, in-process broker); [`AppOptions`] chooses
//! PostgreSQL, JetStream, the ack wait, the token or per-participant
//! behaviours.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetsaga::definition::{Catalog, Kind};
use jetsaga::orchestrator::{Broker, Orchestrator, OrchestratorConfig};
use jetsaga::participant::{self, BoxError};
use jetsaga::runtime::{EngineConfig, EngineHandle};
use jetsaga::saga::{SagaEvent, SagaId, Status};
use jetsaga::store::{AnyStore, EventStore, SagaSummary, SqliteStore};
use jetsaga::transport::{JetStreamConfig, ParticipantTransport as _};
use jetsaga::wire::{CommandBody, ReplyBody};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::infra;

/// The token of the operator verbs in every test app.
pub const TOKEN: &str = "s3cret-test-token";

/// How long [`TestApp::wait_until`] waits before failing the test.
pub const WAIT_MAX: Duration = Duration::from_secs(20);

/// What a participant does with a command: a reply, or `None` for silence
/// (the command is acknowledged and never answered).
pub type Behaviour = Arc<dyn Fn(&CommandBody) -> Option<ReplyBody> + Send + Sync>;

/// Every command answered `ok`, with `{"ref": "<step>"}` as output.
pub fn always_ok() -> Behaviour {
    Arc::new(|c| Some(ReplyBody::ok(c, Some(json!({ "ref": c.step })))))
}

/// `ok`, except that an action fails when the saga's input says
/// `{"fail": "<its step>"}`.
pub fn fail_named_step() -> Behaviour {
    Arc::new(|c| {
        let fail = c.kind == Kind::Action && c.payload["input"]["fail"] == c.step.as_str();
        Some(if fail { ReplyBody::failed(c, "declined") } else { ReplyBody::ok(c, Some(json!({ "ref": c.step }))) })
    })
}

/// A behaviour from a rule on the command: `Some(true)` ok, `Some(false)`
/// failed, `None` silence.
pub fn answer(rule: impl Fn(&CommandBody) -> Option<bool> + Send + Sync + 'static) -> Behaviour {
    Arc::new(move |c| {
        rule(c).map(|ok| if ok { ReplyBody::ok(c, Some(json!({ "ref": c.step }))) } else { ReplyBody::failed(c, "refused") })
    })
}

/// The text of `tests/fixtures/sagas/<name>.toml`.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sagas").join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A catalog of definition texts (each must be valid).
pub fn catalog(sources: &[String]) -> Catalog {
    let files = sources.iter().enumerate().map(|(i, text)| (format!("fixture{i}.toml"), text.clone()));
    Catalog::from_sources(files).unwrap_or_else(|e| panic!("invalid fixture: {e:?}"))
}

/// The participants named in `catalog`, in file order, each once.
fn participants_of(catalog: &Catalog) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for def in catalog.iter() {
        for step in &def.steps {
            if !names.iter().any(|n| n == step.participant.as_str()) {
                names.push(step.participant.to_string());
            }
        }
    }
    names
}

/// What every participant received, and how often each effect happened.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    received: Arc<Mutex<Vec<(String, Kind, u32)>>>,
    effects: Arc<Mutex<HashMap<String, u32>>>,
}

impl Ledger {
    /// (step, kind, attempt) of every command received, in order.
    pub fn received(&self) -> Vec<(String, Kind, u32)> {
        self.received.lock().expect("ledger").clone()
    }

    /// How many times the effect of `idempotency_key` was applied (an `ok` reply).
    pub fn effects(&self, idempotency_key: &str) -> u32 {
        self.effects.lock().expect("ledger").get(idempotency_key).copied().unwrap_or(0)
    }

    /// Every effect applied more than once.
    pub fn doubled(&self) -> Vec<(String, u32)> {
        self.effects.lock().expect("ledger").iter().filter(|(_, n)| **n > 1).map(|(k, n)| (k.clone(), *n)).collect()
    }

    fn record(&self, command: &CommandBody, reply: Option<&ReplyBody>) {
        self.received.lock().expect("ledger").push((command.step.clone(), command.kind, command.attempt));
        if reply.is_some_and(|r| r.status == jetsaga::saga::ReplyStatus::Ok) {
            *self.effects.lock().expect("ledger").entry(command.idempotency_key.clone()).or_insert(0) += 1;
        }
    }
}

/// Where a test app keeps its events.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// A SQLite file in the app's temporary directory.
    Sqlite,
    /// A fresh PostgreSQL schema of its own.
    Postgres,
}

/// How to spawn a test app; [`spawn_app`] uses the defaults.
pub struct AppOptions {
    definitions: Vec<String>,
    behaviours: HashMap<String, Behaviour>,
    default_behaviour: Behaviour,
    store: StoreChoice,
    jetstream: bool,
    ack_wait: Duration,
    token: Option<String>,
}

/// Options for an app running the fixtures `names`, every participant `ok`.
pub fn app(names: &[&str]) -> AppOptions {
    AppOptions {
        definitions: names.iter().map(|n| fixture(n)).collect(),
        behaviours: HashMap::new(),
        default_behaviour: always_ok(),
        store: StoreChoice::Sqlite,
        jetstream: false,
        ack_wait: Duration::from_millis(100),
        token: Some(TOKEN.to_owned()),
    }
}

impl AppOptions {
    /// Definition texts instead of fixtures.
    pub fn definitions(mut self, sources: Vec<String>) -> Self {
        self.definitions = sources;
        self
    }

    /// What every participant without its own behaviour does.
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.default_behaviour = behaviour;
        self
    }

    /// What `participant` does.
    pub fn participant(mut self, participant: &str, behaviour: Behaviour) -> Self {
        self.behaviours.insert(participant.to_owned(), behaviour);
        self
    }

    /// Events in a fresh PostgreSQL schema.
    pub fn postgres(mut self) -> Self {
        self.store = StoreChoice::Postgres;
        self
    }

    /// Commands and replies over the local nats-server, under a prefix of the test's own.
    pub fn jetstream(mut self) -> Self {
        self.jetstream = true;
        self
    }

    /// The ack wait (restart grace).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// The operator token (`None`: verbs are off).
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    /// Opens the store, builds the orchestrator and starts the participants.
    pub async fn spawn(self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = match self.store {
            StoreChoice::Sqlite => {
                let path = dir.path().join("events.db");
                AnyStore::Sqlite(SqliteStore::open(path.to_str().expect("utf-8")).await.expect("sqlite opens"))
            }
            StoreChoice::Postgres => AnyStore::Postgres(infra::postgres(&infra::unique("jetsaga_app")).await),
        };
        let broker = match self.jetstream {
            true => Broker::JetStream(Box::new(JetStreamConfig { ack_wait: self.ack_wait, ..infra::nats_config(&format!("{}.saga", infra::unique("app"))) })),
            false => Broker::InProcess,
        };
        let catalog = catalog(&self.definitions);
        let config = OrchestratorConfig { broker, engine: EngineConfig { ack_wait: self.ack_wait, ..EngineConfig::default() }, ops_token: self.token.clone() };
        let setup = Setup { catalog, config, behaviours: self.behaviours, default_behaviour: self.default_behaviour };
        TestApp::start(setup, store, Ledger::default(), dir).await
    }
}

/// Spawns an app running the fixtures `names` whose participants all do `behaviour`.
pub async fn spawn_app(names: &[&str], behaviour: Behaviour) -> TestApp {
    app(names).behaviour(behaviour).spawn().await
}

/// What a restart needs to build the same app again.
struct Setup {
    catalog: Catalog,
    config: OrchestratorConfig,
    behaviours: HashMap<String, Behaviour>,
    default_behaviour: Behaviour,
}

/// A running orchestrator with its participants.
pub struct TestApp {
    orchestrator: Option<Orchestrator<AnyStore>>,
    participants: Vec<JoinHandle<()>>,
    setup: Setup,
    /// Starts sagas and applies operator verbs, in process.
    pub handle: EngineHandle,
    /// The event store.
    pub store: AnyStore,
    /// The ops API's base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// What the participants received and did.
    pub ledger: Ledger,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn start(setup: Setup, store: AnyStore, ledger: Ledger, dir: tempfile::TempDir) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let orchestrator =
            Orchestrator::build(&setup.catalog, store.clone(), Some(listener), setup.config.clone()).await.expect("the orchestrator starts");
        let url = format!("http://{}", orchestrator.ops_addr().expect("ops API"));
        let mut participants = Vec::new();
        for name in participants_of(&setup.catalog) {
            let behaviour = setup.behaviours.get(&name).unwrap_or(&setup.default_behaviour).clone();
            let ledger = ledger.clone();
            let service = tower::service_fn(move |command: CommandBody| {
                let reply = behaviour(&command);
                ledger.record(&command, reply.as_ref());
                async move { reply.ok_or_else(|| -> BoxError { Box::new(participant::Silence) }) }
            });
            let (transport, stop) = (orchestrator.transport().clone(), orchestrator.stopping());
            let commands = transport.commands(&name).await.expect("participant subscribes");
            participants.push(tokio::spawn(async move {
                let _ = participant::serve_commands(transport, &name, commands, service, stop).await;
            }));
        }
        let handle = orchestrator.handle();
        TestApp { orchestrator: Some(orchestrator), participants, setup, handle, store, url, ledger, _dir: dir }
    }

    /// Stops the orchestrator and its participants.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        if let Some(orchestrator) = self.orchestrator.take() {
            orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
        }
        for participant in self.participants.drain(..) {
            let _ = participant.await;
        }
    }

    /// Stops everything and builds the same app again on the same store:
    /// what a restart of `serve` does (recovery runs first).
    pub async fn restart(mut self) -> TestApp {
        self.halt().await;
        let TestApp { setup, store, ledger, _dir, .. } = self;
        TestApp::start(setup, store, ledger, _dir).await
    }

    /// Starts a saga of `saga_type` with `input` through the engine.
    pub async fn start(&self, saga_type: &str, input: Value) -> SagaId {
        self.handle.start(saga_type, None, input).await.expect("the saga starts").saga_id
    }

    /// Waits until the saga's projection row satisfies `done`; fails the
    /// test with the saga's log after [`WAIT_MAX`].
    pub async fn wait_until(&self, id: SagaId, done: impl Fn(&SagaSummary) -> bool) -> SagaSummary {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            if let Some(summary) = self.store.summary(id).await.expect("summary") {
                if done(&summary) {
                    return summary;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let log = self.events(id).await;
                panic!("saga {id} did not get there within {WAIT_MAX:?}; its log: {log:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the saga is `status`.
    pub async fn wait_for(&self, id: SagaId, status: Status) -> SagaSummary {
        self.wait_until(id, |s| s.status == status).await
    }

    /// Waits until the saga is terminal or stuck, and says which.
    pub async fn settled(&self, id: SagaId) -> Status {
        self.wait_until(id, |s| s.status.is_terminal() || s.status == Status::Stuck).await.status
    }

    /// The saga's events.
    pub async fn events(&self, id: SagaId) -> Vec<SagaEvent> {
        self.store.load(id, None).await.expect("load").into_iter().map(|r| r.event).collect()
    }

    /// `METHOD path` on the ops API, with `body` as JSON and the operator
    /// token when `authorised`; the status and the body (JSON, or `null`).
    pub async fn http(&self, method: &str, path: &str, body: Option<Value>, authorised: bool) -> (u16, Value) {
        let (url, method) = (format!("{}{path}", self.url), method.to_owned());
        let token = authorised.then(|| format!("Bearer {TOKEN}"));
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let request = ureq::http::Request::builder().method(method.as_str()).uri(&url);
            let request = match &token {
                Some(token) => request.header("Authorization", token),
                None => request,
            };
            let request = request.header("Content-Type", "application/json");
            let bytes = body.map(|b| b.to_string()).unwrap_or_default();
            let mut response = agent.run(request.body(bytes).expect("request")).expect("the ops API answers");
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
        .await
        .expect("http task")
    }

    /// `GET path` on the ops API.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.http("GET", path, None, false).await
    }
}
