//! The engine over SQLite and the in-process transport: real time, real
//! files, participants as tasks. Each test states what a user would see.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetsaga::definition::{Catalog, Kind};
use jetsaga::runtime::{Engine, EngineConfig, EngineError, EngineHandle, INBOUND_QUEUE_MAX};
use jetsaga::saga::{Command, Input, Reply, ReplyStatus, SagaEvent, SagaId, Status};
use jetsaga::store::{EventStore, SqliteStore, StoreError};
use jetsaga::transport::{Inbound, MemoryTransport};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A short-fused trip: flight, hotel (compensatable), pay (pivot), mail;
/// two attempts per step.
pub(crate) fn trip(version: u32, timeout: &str) -> String {
    format!(
        r#"name = "trip"
version = {version}
[defaults]
timeout = "{timeout}"
retry = {{ max_attempts = 2, backoff = "20ms", max_backoff = "50ms" }}
[[steps]]
name = "flight"
participant = "flights"
action = "reserve"
compensation = "cancel"
[[steps]]
name = "hotel"
participant = "hotels"
action = "reserve"
compensation = "cancel"
[[steps]]
name = "pay"
participant = "payments"
action = "charge"
[[steps]]
name = "mail"
participant = "notifications"
action = "send"
"#
    )
}

fn catalog(text: &str) -> Catalog {
    Catalog::from_sources([("trip.toml".to_string(), text.to_string())]).expect("valid definition")
}

/// What a participant does with a command: reply, or stay silent.
type Behaviour = Arc<dyn Fn(&Command) -> Option<ReplyStatus> + Send + Sync>;

/// Commands every participant received, in order, and effects per idempotency key.
#[derive(Default, Clone)]
struct Ledger {
    received: Arc<Mutex<Vec<(String, Kind, u32)>>>,
    effects: Arc<Mutex<HashMap<String, u32>>>,
}

impl Ledger {
    fn received(&self) -> Vec<(String, Kind, u32)> {
        self.received.lock().expect("ledger").clone()
    }
}

struct Running {
    handle: EngineHandle,
    transport: MemoryTransport,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), EngineError>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("engine task").expect("engine ran");
    }
}

async fn start_engine(store: SqliteStore, catalog: &Catalog, participants: &[&str], behaviour: Behaviour, ledger: &Ledger) -> Running {
    let (tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
    let transport = MemoryTransport::new(tx);
    for name in participants {
        let mut commands = transport.register(name);
        let (transport, behaviour, ledger) = (transport.clone(), behaviour.clone(), ledger.clone());
        tokio::spawn(async move {
            while let Some(command) = commands.recv().await {
                ledger.received.lock().expect("ledger").push((command.step.to_string(), command.kind, command.attempt));
                let Some(status) = behaviour(&command) else { continue };
                if status == ReplyStatus::Ok {
                    *ledger.effects.lock().expect("ledger").entry(command.idempotency_key.clone()).or_insert(0) += 1;
                }
                let reply = Reply {
                    participant: command.participant.clone(),
                    step: command.step.to_string(),
                    kind: command.kind,
                    attempt: command.attempt,
                    status,
                    output: Some(json!({ "ref": command.step.to_string() })),
                    error: (status == ReplyStatus::Failed).then(|| "refused".into()),
                };
                let _ = transport.reply(&command, reply).await;
            }
        });
    }
    let config = EngineConfig { ack_wait_ms: 100, ..EngineConfig::default() };
    let engine = Engine::new(store, transport.clone(), catalog, config).await.expect("engine starts");
    let handle = engine.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(engine.run(inbound, async move {
        let _ = stopped.await;
    }));
    Running { handle, transport, stop, task }
}

const ALL: [&str; 4] = ["flights", "hotels", "payments", "notifications"];

fn always_ok() -> Behaviour {
    Arc::new(|_| Some(ReplyStatus::Ok))
}

async fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("events.db").to_str().expect("utf-8")).await.expect("sqlite opens")
}

async fn wait_for(store: &SqliteStore, id: SagaId, done: impl Fn(Status) -> bool) -> Status {
    for _ in 0..500 {
        if let Some(summary) = store.summary(id).await.expect("summary") {
            if done(summary.status) {
                return summary.status;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("saga {id} did not get there; log: {:?}", types(store, id).await);
}

async fn finished(store: &SqliteStore, id: SagaId) -> Status {
    wait_for(store, id, |s| s.is_terminal() || s == Status::Stuck).await
}

async fn types(store: &SqliteStore, id: SagaId) -> Vec<&'static str> {
    store.load(id, None).await.expect("load").iter().map(|r| r.event.type_name()).collect()
}

#[tokio::test]
async fn a_saga_runs_every_step_in_order_and_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "1s")));
    let engine = start_engine(store.clone(), &cat, &ALL, always_ok(), &ledger).await;
    let started = engine.handle.start("trip", None, json!({"who": "ada"})).await.expect("start");
    assert!(started.created);
    assert_eq!(finished(&store, started.saga_id).await, Status::Completed);
    let steps: Vec<String> = ledger.received().into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(steps, ["flight", "hotel", "pay", "mail"]);
    engine.stop().await;
}

#[tokio::test]
async fn a_refused_payment_compensates_in_reverse_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "1s")));
    let refuse_pay: Behaviour = Arc::new(|c| Some(if c.step.as_str() == "pay" { ReplyStatus::Failed } else { ReplyStatus::Ok }));
    let engine = start_engine(store.clone(), &cat, &ALL, refuse_pay, &ledger).await;
    let id = engine.handle.start("trip", None, json!({})).await.expect("start").saga_id;
    assert_eq!(finished(&store, id).await, Status::Compensated);
    let compensations: Vec<String> =
        ledger.received().into_iter().filter(|(_, k, _)| *k == Kind::Compensation).map(|(s, _, _)| s).collect();
    assert_eq!(compensations, ["hotel", "flight"]);
    engine.stop().await;
}

#[tokio::test]
async fn a_silent_first_attempt_times_out_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "150ms")));
    let silent_once: Behaviour = Arc::new(|c| (c.step.as_str() != "hotel" || c.attempt > 1).then_some(ReplyStatus::Ok));
    let engine = start_engine(store.clone(), &cat, &ALL, silent_once, &ledger).await;
    let id = engine.handle.start("trip", None, json!({})).await.expect("start").saga_id;
    assert_eq!(finished(&store, id).await, Status::Completed);
    let log = types(&store, id).await;
    assert!(log.windows(3).any(|w| w == ["attempt_timed_out", "retry_scheduled", "command_sent"]), "{log:?}");
    assert!(ledger.received().contains(&("hotel".into(), Kind::Action, 2)));
    engine.stop().await;
}

#[tokio::test]
async fn a_silent_pivot_gets_stuck_and_an_operator_retry_finishes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "100ms")));
    // Payments answers only from attempt 3 on: after the operator's retry.
    let late_payments: Behaviour = Arc::new(|c| (c.step.as_str() != "pay" || c.attempt >= 3).then_some(ReplyStatus::Ok));
    let engine = start_engine(store.clone(), &cat, &ALL, late_payments, &ledger).await;
    let id = engine.handle.start("trip", None, json!({})).await.expect("start").saga_id;
    assert_eq!(finished(&store, id).await, Status::Stuck);
    let refused = engine.handle.operate(id, Input::OperatorCompensate { reason: "undo it".into() }).await;
    assert!(matches!(refused, Err(EngineError::Rejected(ref r)) if r.is_conflict()), "{refused:?}");
    let status = engine.handle.operate(id, Input::OperatorRetry { reason: "payments is back".into() }).await.expect("retry accepted");
    assert_eq!(status, Status::Running);
    assert_eq!(finished(&store, id).await, Status::Completed);
    let pay_attempts: Vec<u32> = ledger.received().into_iter().filter(|(s, _, _)| s == "pay").map(|(_, _, a)| a).collect();
    assert_eq!(pay_attempts, [1, 2, 3], "attempt numbers go on counting");
    let log = store.load(id, None).await.expect("load");
    assert!(log.iter().any(|r| matches!(&r.event, SagaEvent::OperatorIntervened { reason, .. } if reason == "payments is back")));
    engine.stop().await;
}

#[tokio::test]
async fn starting_twice_with_one_id_returns_the_same_saga() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "1s")));
    let engine = start_engine(store.clone(), &cat, &ALL, always_ok(), &ledger).await;
    let id = SagaId::parse("0190a5c4-0000-7000-8000-000000000001").expect("uuid");
    let first = engine.handle.start("trip", Some(id), json!({"n": 1})).await.expect("start");
    let second = engine.handle.start("trip", Some(id), json!({"n": 2})).await.expect("start again");
    assert!(first.created && !second.created);
    assert_eq!(second.saga_id, id);
    assert_eq!(finished(&store, id).await, Status::Completed);
    assert_eq!(types(&store, id).await.iter().filter(|t| **t == "saga_started").count(), 1);
    let unknown = engine.handle.start("no_such_saga", None, json!({})).await;
    assert!(matches!(unknown, Err(EngineError::UnknownSagaType(ref t)) if t == "no_such_saga"), "{unknown:?}");
    engine.stop().await;
}

#[tokio::test]
async fn bad_replies_are_recorded_as_ignored_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "1s")));
    // Payments never answers, so the saga waits at the pivot while we send garbage.
    let engine = start_engine(store.clone(), &cat, &["flights", "hotels"], always_ok(), &ledger).await;
    let id = engine.handle.start("trip", None, json!({})).await.expect("start").saga_id;
    wait_for(&store, id, |_| true).await;
    for _ in 0..100 {
        if ledger.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = |participant: &str, step: &str, attempt: u32| Reply {
        participant: jetsaga::definition::Participant::parse(participant).expect("name"),
        step: step.into(),
        kind: Kind::Action,
        attempt,
        status: ReplyStatus::Ok,
        output: None,
        error: None,
    };
    let send = |saga_id, r| engine.transport.deliver(Inbound::Reply { saga_id, reply: r });
    send(id, reply("flights", "flight", 1)).await.expect("duplicate");
    send(id, reply("hotels", "pay", 1)).await.expect("wrong participant");
    send(id, reply("payments", "pay", 7)).await.expect("unsent attempt");
    send(id, reply("payments", "spa", 1)).await.expect("unknown step");
    send(SagaId::parse("0190a5c4-0000-7000-8000-00000000dead").expect("uuid"), reply("payments", "pay", 1)).await.expect("unknown saga");
    let mut ignored = 0;
    for _ in 0..200 {
        let log = store.load(id, None).await.expect("load");
        ignored = log.iter().filter(|r| matches!(r.event, SagaEvent::InputIgnored { .. })).count();
        if ignored >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ignored, 4, "{:?}", types(&store, id).await);
    let summary = store.summary(id).await.expect("summary").expect("exists");
    assert_eq!((summary.status, summary.current_step.as_deref()), (Status::Running, Some("pay")));
    engine.stop().await;
}

#[tokio::test]
async fn a_restart_recovers_the_saga_and_resends_with_the_same_idempotency_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger, cat) = (store(&dir).await, Ledger::default(), catalog(&trip(1, "10s")));
    // First life: payments is down, so the saga is in flight at the pivot.
    let first = start_engine(store.clone(), &cat, &["flights", "hotels", "notifications"], always_ok(), &ledger).await;
    let id = first.handle.start("trip", None, json!({})).await.expect("start").saga_id;
    wait_for(&store, id, |_| true).await;
    for _ in 0..200 {
        if store.summary(id).await.expect("summary").and_then(|s| s.current_step).as_deref() == Some("pay") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.stop().await;
    // Second life: recovery re-sends attempt 1 of pay at once (not after the 10 s timeout).
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    let record: Behaviour = Arc::new(move |c| {
        seen.lock().expect("keys").push((c.idempotency_key.clone(), c.message_id.clone()));
        Some(ReplyStatus::Ok)
    });
    let second = start_engine(store.clone(), &cat, &ALL, record, &ledger).await;
    assert_eq!(finished(&store, id).await, Status::Completed);
    let keys = keys.lock().expect("keys").clone();
    assert_eq!(keys[0], (format!("{id}:pay:action"), format!("{id}:pay:action:1")));
    assert_eq!(types(&store, id).await.iter().filter(|t| **t == "command_sent").count(), 4, "no new attempt was needed");
    assert!(ledger.effects.lock().expect("effects").values().all(|n| *n == 1), "each effect once");
    second.stop().await;
}

#[tokio::test]
async fn a_saga_keeps_the_definition_version_it_started_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, ledger) = (store(&dir).await, Ledger::default());
    let v1 = catalog(&trip(1, "10s"));
    let first = start_engine(store.clone(), &v1, &["flights"], always_ok(), &ledger).await;
    let id = first.handle.start("trip", None, json!({})).await.expect("start").saga_id;
    wait_for(&store, id, |_| true).await;
    first.stop().await;
    // Version 2 drops the hotel step; the saga started on v1 still books one.
    let v2_text = trip(2, "10s")
        .replace("[[steps]]\nname = \"hotel\"\nparticipant = \"hotels\"\naction = \"reserve\"\ncompensation = \"cancel\"\n", "");
    let v2 = catalog(&v2_text);
    assert_eq!(v2.get("trip").expect("trip").steps.len(), 3);
    let second = start_engine(store.clone(), &v2, &ALL, always_ok(), &ledger).await;
    assert_eq!(finished(&store, id).await, Status::Completed);
    assert!(ledger.received().iter().any(|(s, _, _)| s == "hotel"), "v1's hotel step ran");
    second.stop().await;
    // Changing v2's content without a new version is refused at start.
    let changed = catalog(&v2_text.replace("\"10s\"", "\"11s\""));
    let (tx, _rx) = mpsc::channel(1);
    let refused = Engine::new(store.clone(), MemoryTransport::new(tx), &changed, EngineConfig::default()).await;
    assert!(matches!(refused, Err(EngineError::Store(StoreError::DefinitionChanged { version: 2, .. }))), "{:?}", refused.err());
}
