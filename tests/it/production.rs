//! Production mode in one process: the orchestrator over a real PostgreSQL
//! and a real NATS JetStream (consumers, event relay), participants on the
//! SDK, sagas started over the broker.

use std::time::Duration;

use jetsaga::definition::Kind;
use jetsaga::participant::DECLINED_CARD;
use jetsaga::saga::{SagaEvent, SagaId, Status};
use jetsaga::store::EventStore as _;
use jetsaga::transport::jetstream::StreamKind;
use jetsaga::wire::{ReplyBody, StartBody};
use serde_json::{json, Value};

use crate::infra;
use crate::support::{answer, app, eventually, saga_id, sample, silent, AppOptions, Behaviour, TestApp};

/// The trip with a 400 ms fuse over PostgreSQL and JetStream (ack wait 1 s).
fn production() -> AppOptions {
    app(&["trip"]).timeout("400ms").postgres().jetstream().ack_wait(Duration::from_secs(1))
}

/// Publishes a start on `saga.start.trip`, as a client of the broker does.
async fn start(app: &TestApp, id: SagaId, input: Value) {
    let body = StartBody { saga_id: Some(id.to_string()), input, key: None, version: None };
    app.jetstream().publish_start("trip", &body).await.expect("start published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_completes_and_every_event_reaches_saga_events_once_in_order() {
    let app = production().spawn().await;
    let saga = saga_id(1);
    start(&app, saga, json!({"who": "ada"})).await;
    assert_eq!(app.settled(saga).await, Status::Completed);
    let log = app.store.load(saga, None).await.expect("load");
    let expected: Vec<String> = log.iter().map(|r| format!("{saga}:{}", r.seq)).collect();
    let published = eventually!("the log in SAGA_EVENTS", {
        let published = app.jetstream().stored_messages(StreamKind::Events).await.expect("events");
        (published.len() >= expected.len()).then_some(published)
    });
    let ids: Vec<String> = published.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(ids, expected, "SAGA_EVENTS holds the log, once, in order");
    let first: Value = serde_json::from_slice(&published[0].payload).expect("json");
    assert_eq!((first["type"].as_str(), first["saga_type"].as_str(), first["seq"].as_u64()), (Some("saga_started"), Some("trip"), Some(1)));
    assert!(published[0].subject.ends_with(&format!(".event.trip.{saga}")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_is_compensated_in_reverse_order() {
    let refuse: Behaviour = std::sync::Arc::new(|c| Some(ReplyBody::failed(c, "card declined")));
    let app = production().participant("payments", refuse).spawn().await;
    let saga = saga_id(2);
    start(&app, saga, json!({})).await;
    assert_eq!(app.settled(saga).await, Status::Compensated);
    let undone: Vec<String> = app.ledger.received().into_iter().filter(|(_, k, _)| *k == Kind::Compensation).map(|(s, _, _)| s).collect();
    assert_eq!(undone, ["hotel", "flight"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_retried_with_the_next_attempt() {
    let app = production().participant("hotels", answer(|c| (c.attempt > 1).then_some(true))).spawn().await;
    let saga = saga_id(3);
    start(&app, saga, json!({})).await;
    assert_eq!(app.settled(saga).await, Status::Completed);
    assert!(app.ledger.received().contains(&("hotel".into(), Kind::Action, 2)));
    let types = app.types(saga).await;
    assert!(types.contains(&"attempt_timed_out") && types.contains(&"retry_scheduled"), "{types:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_compensate_the_step_whose_effect_is_unknown() {
    let silent_actions = answer(|c| (c.kind == Kind::Compensation).then_some(true));
    let app = production().participant("hotels", silent_actions).spawn().await;
    let saga = saga_id(4);
    start(&app, saga, json!({})).await;
    assert_eq!(app.settled(saga).await, Status::Compensated);
    let received = app.ledger.received();
    let hotel_attempts = received.iter().filter(|(s, k, _)| s == "hotel" && *k == Kind::Action).count();
    assert_eq!(hotel_attempts, 2, "max_attempts");
    let undone: Vec<&str> = received.iter().filter(|(_, k, _)| *k == Kind::Compensation).map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(undone, ["hotel", "flight"], "the unknown-effect hotel is undone too, first");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_garbage_replies_change_nothing_and_poison_is_kept() {
    // Payments stays silent, so the saga waits at the pivot while garbage arrives.
    let app = production().participant("payments", silent()).spawn().await;
    let saga = saga_id(5);
    start(&app, saga, json!({})).await;
    eventually!("the pay command", app.ledger.received().iter().any(|(s, _, _)| s == "pay").then_some(()));
    let subjects = app.jetstream().subjects().clone();
    let duplicate = json!({"saga_id": saga.to_string(), "step": "flight", "kind": "action", "attempt": 1, "status": "ok"});
    let bad_id = json!({"saga_id": "nope", "step": "a", "kind": "action", "attempt": 1, "status": "ok"});
    let messages = [
        (subjects.reply("flights"), duplicate.to_string().into_bytes()),
        (subjects.reply("flights"), b"{not json".to_vec()),
        (subjects.reply("flights"), bad_id.to_string().into_bytes()),
        (subjects.start("no_such_saga"), b"{}".to_vec()),
    ];
    for (subject, payload) in messages {
        app.jetstream().publish_raw(&subject, payload).await.expect("published");
    }
    let poison = eventually!("three poison messages", {
        let poison = app.poison().await;
        (poison.len() >= 3).then_some(poison)
    });
    let reasons: Vec<&str> = poison.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(poison.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not valid JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a UUID")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("unknown saga type")), "{reasons:?}");
    assert_eq!(sample(&app.metrics().await, "jetsaga_poison_messages_total"), Some(3.0));
    let log = app.events(saga).await;
    assert!(log.iter().any(|e| matches!(e, SagaEvent::InputIgnored { reason, .. } if reason.contains("awaits pay:action"))), "{log:?}");
    assert_eq!(app.summary(saga).await.current_step.as_deref(), Some("pay"), "the duplicate changed nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_twice_with_one_id_makes_one_saga() {
    let app = production().spawn().await;
    let saga = saga_id(6);
    start(&app, saga, json!({"n": 1})).await;
    start(&app, saga, json!({"n": 2})).await;
    assert_eq!(app.settled(saga).await, Status::Completed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let types = app.types(saga).await;
    assert_eq!(types.iter().filter(|t| **t == "saga_started").count(), 1, "{types:?}");
    let log = app.events(saga).await;
    assert!(matches!(&log[0], SagaEvent::SagaStarted { input, .. } if *input == json!({"n": 1})));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_participants_command_serves_sagas_over_nats() {
    let app = production().without_participants().spawn().await;
    let prefix = app.jetstream().subjects().prefix().to_owned();
    let mut participants = std::process::Command::new(env!("CARGO_BIN_EXE_jetsaga"))
        .args(["participants", "--simulate", "--subject-prefix", &prefix, "--latency", "5ms", "--seed", "1"])
        .env("NATS_URL", infra::nats_url())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("jetsaga participants starts");
    let (ok, declined) = (saga_id(7), saga_id(8));
    start(&app, ok, json!({"card": "4242"})).await;
    start(&app, declined, json!({"card": DECLINED_CARD})).await;
    let statuses = (app.settled(ok).await, app.settled(declined).await);
    let _ = participants.kill();
    let _ = participants.wait();
    assert_eq!(statuses, (Status::Completed, Status::Compensated));
    app.stop().await;
}
