//! Production mode in one process: the engine over a real PostgreSQL and
//! a real NATS JetStream, participants on the SDK, the event relay on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetsaga::definition::{Catalog, Kind};
use jetsaga::participant::{self, BoxError};
use jetsaga::runtime::poison::StorePoison;
use jetsaga::runtime::relay::{self, EventSink, RelayLag};
use jetsaga::runtime::{Engine, EngineConfig, Metrics, INBOUND_QUEUE_MAX};
use jetsaga::saga::{SagaEvent, SagaId, Status};
use jetsaga::store::{CommittedEvent, EventStore, PostgresStore};
use jetsaga::transport::jetstream::{JetStreamTransport, StreamKind};
use jetsaga::transport::TransportError;
use jetsaga::wire::{CommandBody, ReplyBody, StartBody};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::infra;

/// What a participant answers: `None` is silence.
type Behaviour = Arc<dyn Fn(&CommandBody) -> Option<ReplyBody> + Send + Sync>;

fn ok() -> Behaviour {
    Arc::new(|c| Some(ReplyBody::ok(c, Some(json!({ "ref": c.step })))))
}

struct Events(JetStreamTransport);

impl EventSink for Events {
    async fn publish(&self, event: &CommittedEvent) -> Result<(), TransportError> {
        self.0.publish_event(&event.saga_type, &event.recorded, event.saga_id).await
    }
}

struct Stack {
    store: PostgresStore,
    transport: JetStreamTransport,
    metrics: Arc<Metrics>,
    received: Arc<Mutex<Vec<(String, Kind, u32)>>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    async fn start(participants: &[(&'static str, Behaviour)]) -> Stack {
        let prefix = format!("{}.saga", infra::unique("prod"));
        let store = infra::postgres(&infra::unique("jetsaga_prod")).await;
        let transport = infra::nats(&prefix, Duration::from_secs(1)).await;
        let catalog = Catalog::from_sources([("trip.toml".to_string(), crate::runtime::trip(1, "400ms"))]).expect("valid");
        let (stop, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, behaviour) in participants {
            let (behaviour, received) = (behaviour.clone(), received.clone());
            let service = tower::service_fn(move |command: CommandBody| {
                let (behaviour, received) = (behaviour.clone(), received.clone());
                async move {
                    received.lock().expect("log").push((command.step.clone(), command.kind, command.attempt));
                    behaviour(&command).ok_or_else(|| -> BoxError { Box::new(participant::Silence) })
                }
            });
            let (transport, name, stop) = (transport.clone(), *name, stopped());
            tasks.push(tokio::spawn(async move {
                let _ = participant::serve(transport, name, service, stop).await;
            }));
        }
        let config = EngineConfig { ack_wait_ms: 1_000, ..EngineConfig::default() };
        let engine = Engine::new(store.clone(), transport.clone(), &catalog, config).await.expect("engine");
        let metrics = engine.metrics();
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
        let poison = StorePoison::new(store.clone(), metrics.clone());
        let (t, stop_in) = (transport.clone(), stopped());
        tasks.push(tokio::spawn(async move {
            t.run_inbound(tx, poison, stop_in).await.expect("consumers");
        }));
        let (s, t, stop_relay) = (store.clone(), transport.clone(), stopped());
        tasks.push(tokio::spawn(async move {
            let clock = jetsaga::runtime::Clock::system();
            relay::run(s, Events(t), "saga_events", Arc::new(RelayLag::default()), move || clock.now_ms(), stop_relay)
                .await
                .expect("relay");
        }));
        let stop_engine = stopped();
        tasks.push(tokio::spawn(async move {
            engine.run(inbound, stop_engine).await.expect("engine ran");
        }));
        Stack { store, transport, metrics, received, stop, tasks }
    }

    async fn start_saga(&self, id: SagaId, input: serde_json::Value) {
        self.transport.publish_start("trip", &StartBody { saga_id: Some(id.to_string()), input }).await.expect("start published");
    }

    async fn finished(&self, id: SagaId) -> Status {
        for _ in 0..1_000 {
            if let Some(s) = self.store.summary(id).await.expect("summary") {
                if s.status.is_terminal() || s.status == Status::Stuck {
                    return s.status;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("saga {id} did not finish: {:?}", self.types(id).await);
    }

    async fn types(&self, id: SagaId) -> Vec<&'static str> {
        self.store.load(id, None).await.expect("load").iter().map(|r| r.event.type_name()).collect()
    }

    fn received(&self) -> Vec<(String, Kind, u32)> {
        self.received.lock().expect("log").clone()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let _ = self.transport.delete_streams().await;
        self.store.close().await;
    }
}

fn id(n: u128) -> SagaId {
    SagaId::from_u128(0x0190_a5c4_0000_7000_8000_0000_0000_0000 | n)
}

const ALL: [&str; 4] = ["flights", "hotels", "payments", "notifications"];

fn all(behaviour: impl Fn(&'static str) -> Behaviour) -> Vec<(&'static str, Behaviour)> {
    ALL.iter().map(|p| (*p, behaviour(p))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_completes_and_every_event_reaches_saga_events_once_in_order() {
    let stack = Stack::start(&all(|_| ok())).await;
    let saga = id(1);
    stack.start_saga(saga, json!({"who": "ada"})).await;
    assert_eq!(stack.finished(saga).await, Status::Completed);
    let log = stack.store.load(saga, None).await.expect("load");
    let mut published = Vec::new();
    for _ in 0..200 {
        published = stack.transport.stored_messages(StreamKind::Events).await.expect("events");
        if published.len() >= log.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<String> = published.iter().filter_map(|m| m.message_id.clone()).collect();
    let expected: Vec<String> = log.iter().map(|r| format!("{saga}:{}", r.seq)).collect();
    assert_eq!(ids, expected, "SAGA_EVENTS holds the log, once, in order");
    let first: serde_json::Value = serde_json::from_slice(&published[0].payload).expect("json");
    assert_eq!((first["type"].as_str(), first["saga_type"].as_str(), first["seq"].as_u64()), (Some("saga_started"), Some("trip"), Some(1)));
    assert!(published[0].subject.ends_with(&format!(".event.trip.{saga}")));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_is_compensated_in_reverse_order() {
    let refuse: Behaviour = Arc::new(|c| Some(ReplyBody::failed(c, "card declined")));
    let stack = Stack::start(&all(|p| if p == "payments" { refuse.clone() } else { ok() })).await;
    let saga = id(2);
    stack.start_saga(saga, json!({})).await;
    assert_eq!(stack.finished(saga).await, Status::Compensated);
    let undone: Vec<String> = stack.received().into_iter().filter(|(_, k, _)| *k == Kind::Compensation).map(|(s, _, _)| s).collect();
    assert_eq!(undone, ["hotel", "flight"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_retried_with_the_next_attempt() {
    let silent_once: Behaviour = Arc::new(|c| (c.attempt > 1).then(|| ReplyBody::ok(c, None)));
    let stack = Stack::start(&all(|p| if p == "hotels" { silent_once.clone() } else { ok() })).await;
    let saga = id(3);
    stack.start_saga(saga, json!({})).await;
    assert_eq!(stack.finished(saga).await, Status::Completed);
    assert!(stack.received().contains(&("hotel".into(), Kind::Action, 2)));
    let types = stack.types(saga).await;
    assert!(types.contains(&"attempt_timed_out") && types.contains(&"retry_scheduled"), "{types:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_compensate_the_step_whose_effect_is_unknown() {
    let silent_actions: Behaviour = Arc::new(|c| (c.kind == Kind::Compensation).then(|| ReplyBody::ok(c, None)));
    let stack = Stack::start(&all(|p| if p == "hotels" { silent_actions.clone() } else { ok() })).await;
    let saga = id(4);
    stack.start_saga(saga, json!({})).await;
    assert_eq!(stack.finished(saga).await, Status::Compensated);
    let received = stack.received();
    let hotel_attempts = received.iter().filter(|(s, k, _)| s == "hotel" && *k == Kind::Action).count();
    assert_eq!(hotel_attempts, 2, "max_attempts");
    let undone: Vec<&str> = received.iter().filter(|(_, k, _)| *k == Kind::Compensation).map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(undone, ["hotel", "flight"], "the unknown-effect hotel is undone too, first");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_garbage_replies_change_nothing_and_poison_is_kept() {
    // Payments stays silent, so the saga waits at the pivot while garbage arrives.
    let never: Behaviour = Arc::new(|_| None);
    let stack = Stack::start(&all(|p| if p == "payments" { never.clone() } else { ok() })).await;
    let saga = id(5);
    stack.start_saga(saga, json!({})).await;
    for _ in 0..200 {
        if stack.received().iter().any(|(s, _, _)| s == "pay") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let prefix = stack.transport.subjects().prefix().to_owned();
    let duplicate = json!({"saga_id": saga.to_string(), "step": "flight", "kind": "action", "attempt": 1, "status": "ok"});
    stack.transport.publish_raw(&format!("{prefix}.reply.flights"), duplicate.to_string().into_bytes()).await.expect("published");
    stack.transport.publish_raw(&format!("{prefix}.reply.flights"), b"{not json".to_vec()).await.expect("published");
    stack
        .transport
        .publish_raw(
            &format!("{prefix}.reply.flights"),
            br#"{"saga_id": "nope", "step": "a", "kind": "action", "attempt": 1, "status": "ok"}"#.to_vec(),
        )
        .await
        .expect("published");
    stack.transport.publish_raw(&format!("{prefix}.start.no_such_saga"), b"{}".to_vec()).await.expect("published");
    let mut poison = Vec::new();
    for _ in 0..200 {
        poison = stack.store.poison(10).await.expect("poison");
        if poison.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reasons: Vec<&str> = poison.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(poison.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not valid JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a UUID")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("unknown saga type")), "{reasons:?}");
    assert_eq!(stack.metrics.poison.load(std::sync::atomic::Ordering::Relaxed), 3);
    let log = stack.store.load(saga, None).await.expect("load");
    assert!(
        log.iter().any(|r| matches!(&r.event, SagaEvent::InputIgnored { reason, .. } if reason.contains("awaits pay:action"))),
        "{log:?}"
    );
    let summary = stack.store.summary(saga).await.expect("summary").expect("saga");
    assert_eq!(summary.current_step.as_deref(), Some("pay"), "the duplicate changed nothing");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_twice_with_one_id_makes_one_saga() {
    let stack = Stack::start(&all(|_| ok())).await;
    let saga = id(6);
    stack.start_saga(saga, json!({"n": 1})).await;
    stack.start_saga(saga, json!({"n": 2})).await;
    assert_eq!(stack.finished(saga).await, Status::Completed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let types = stack.types(saga).await;
    assert_eq!(types.iter().filter(|t| **t == "saga_started").count(), 1, "{types:?}");
    let log = stack.store.load(saga, Some(1)).await.expect("load");
    assert!(matches!(&log[0].event, SagaEvent::SagaStarted { input, .. } if *input == json!({"n": 1})));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_participants_command_serves_sagas_over_nats() {
    let stack = Stack::start(&[]).await;
    let prefix = stack.transport.subjects().prefix().to_owned();
    let mut participants = std::process::Command::new(env!("CARGO_BIN_EXE_jetsaga"))
        .args(["participants", "--simulate", "--subject-prefix", &prefix, "--latency", "5ms", "--seed", "1"])
        .env("NATS_URL", infra::nats_url())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("jetsaga participants starts");
    let (ok, declined) = (id(7), id(8));
    stack.start_saga(ok, json!({"card": "4242"})).await;
    stack.start_saga(declined, json!({"card": jetsaga::participant::DECLINED_CARD})).await;
    let statuses = (stack.finished(ok).await, stack.finished(declined).await);
    let _ = participants.kill();
    let _ = participants.wait();
    assert_eq!(statuses, (Status::Completed, Status::Compensated));
    stack.stop().await;
}
