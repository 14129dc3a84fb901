//! SPEC §7 end to end, over a real PostgreSQL and NATS JetStream: a
//! parallel group whose hotel fails while its flight is still in flight.

use std::time::Duration;

use jetsaga::definition::Kind;
use jetsaga::saga::{SagaEvent, Status};
use jetsaga::store::EventStore as _;
use jetsaga::wire::StartBody;
use serde_json::json;

use crate::support::{answer, app, saga_id};

/// Flight and hotel in one group, then the pivot: a 400 ms fuse, three attempts.
const TRAVEL: &str = r#"
name = "travel"
version = 1

[defaults]
timeout = "400ms"
retry = { max_attempts = 3, backoff = "20ms", max_backoff = "50ms" }

[[steps]]
name = "flight"
participant = "flights"
action = "reserve"
compensation = "cancel"
group = "travel"
payload = { who = "/input/who" }

[[steps]]
name = "hotel"
participant = "hotels"
action = "reserve"
compensation = "cancel"
group = "travel"

[[steps]]
name = "pay"
participant = "payments"
action = "charge"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_hotel_fails_while_the_flight_is_in_flight_waits_for_it_then_undoes_it() {
    // The flight answers only its second attempt; the hotel refuses at once.
    let flights = answer(|c| Some(c.kind == Kind::Compensation || c.attempt >= 2).filter(|ok| *ok));
    let hotels = answer(|c| Some(c.kind == Kind::Compensation));
    let app = app(&[])
        .definitions(vec![TRAVEL.to_owned()])
        .postgres()
        .jetstream()
        .ack_wait(Duration::from_secs(1))
        .participant("flights", flights)
        .participant("hotels", hotels)
        .spawn()
        .await;
    let saga = saga_id(711);
    let body = StartBody { saga_id: Some(saga.to_string()), input: json!({"who": "ada", "card": "4242"}), key: None, version: None };
    app.jetstream().publish_start("travel", &body).await.expect("start published");
    assert_eq!(app.settled(saga).await, Status::Compensated);

    let received = app.ledger.received();
    let first_two: Vec<(&str, Kind, u32)> = received.iter().take(2).map(|(s, k, a)| (s.as_str(), *k, *a)).collect();
    assert!(
        first_two.contains(&("flight", Kind::Action, 1)) && first_two.contains(&("hotel", Kind::Action, 1)),
        "sent at once: {received:?}"
    );
    // The flight kept its attempts after the hotel failed, then was undone; the hotel never was.
    let after: Vec<(&str, Kind, u32)> = received.iter().skip(2).map(|(s, k, a)| (s.as_str(), *k, *a)).collect();
    assert_eq!(after, [("flight", Kind::Action, 2), ("flight", Kind::Compensation, 1)], "{received:?}");
    assert!(!received.iter().any(|(s, _, _)| s == "pay"), "no further group started");
    let payloads: Vec<serde_json::Value> = app.ledger.commands().into_iter().filter(|c| c.step == "flight").map(|c| c.payload).collect();
    assert_eq!(payloads[0], json!({"who": "ada"}), "the mapped payload, not the whole input");
    assert_eq!(payloads.last(), Some(&json!({"who": "ada", "output": {"ref": "flight"}})));

    let events = app.events(saga).await;
    let began = events.iter().position(|e| matches!(e, SagaEvent::CompensationStarted { keep_in_flight: true, .. }));
    let retried = events.iter().position(|e| matches!(e, SagaEvent::CommandSent { attempt: 2, kind: Kind::Action, .. }));
    assert!(began.is_some() && retried > began, "compensating at once, the flight still retried after: {events:?}");
    app.stop().await;
}

/// SPEC §7 keys and versions over NATS + PostgreSQL: id-less starts with
/// one key make one saga; a start naming another id for a taken key, and
/// one naming a version not loaded, are poison; a named version runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_and_versioned_starts_over_nats() {
    let v2 = TRAVEL.replace("version = 1", "version = 2");
    let app = app(&[]).definitions(vec![TRAVEL.to_owned(), v2]).postgres().jetstream().spawn().await;
    let start = |saga_id: Option<String>, key: Option<&str>, version: Option<u32>| StartBody {
        saga_id,
        input: json!({"who": "ada"}),
        key: key.map(str::to_owned),
        version,
    };
    for _ in 0..3 {
        app.jetstream().publish_start("travel", &start(None, Some("order-7"), Some(1))).await.expect("published");
    }
    let filter = jetsaga::store::ListFilter { key: Some("order-7".into()), ..Default::default() };
    let saga = crate::support::eventually!("the keyed saga", {
        let page = app.store.list(&filter, None, 10).await.expect("list");
        page.sagas.first().map(|s| s.saga_id)
    });
    assert_eq!(app.settled(saga).await, Status::Completed);
    assert_eq!(app.summary(saga).await.version, 1, "the version the start named");
    let other = saga_id(712);
    app.jetstream().publish_start("travel", &start(Some(other.to_string()), Some("order-7"), None)).await.expect("published");
    app.jetstream().publish_start("travel", &start(Some(saga_id(713).to_string()), None, Some(9))).await.expect("published");
    let latest = saga_id(714);
    app.jetstream().publish_start("travel", &start(Some(latest.to_string()), Some("order-8"), None)).await.expect("published");
    assert_eq!(app.settled(latest).await, Status::Completed);
    assert_eq!(app.summary(latest).await.version, 2, "the highest version loaded");
    let reasons = crate::support::eventually!("both refusals kept as poison", {
        let reasons: Vec<String> = app.poison().await.into_iter().map(|p| p.reason).collect();
        Some(reasons).filter(|r| r.len() >= 2)
    });
    assert!(reasons.iter().any(|r| r.contains("key \"order-7\" is taken by saga") && r.contains(&saga.to_string())), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("has no version 9 loaded")), "{reasons:?}");
    let page = app.store.list(&filter, None, 10).await.expect("list");
    assert_eq!(page.sagas.len(), 1, "one saga for the key");
    assert!(app.store.summary(other).await.expect("summary").is_none(), "the conflicting start made nothing");
    app.stop().await;
}

/// A car rented only when the input asks for one, then the pivot.
const TRIP_WITH_CAR: &str = r#"
name = "trip_car"
version = 1

[[steps]]
name = "flight"
participant = "flights"
action = "reserve"
compensation = "cancel"

[[steps]]
name = "car"
participant = "cars"
action = "rent"
compensation = "return"
when = "/input/car"

[[steps]]
name = "pay"
participant = "payments"
action = "charge"
"#;

/// SPEC §7 conditional steps over NATS + PostgreSQL: without the value
/// the pointer names, the step is recorded as skipped and never sent;
/// with it, the step runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_step_is_skipped_unless_its_pointer_names_a_value() {
    let app = app(&[]).definitions(vec![TRIP_WITH_CAR.to_owned()]).postgres().jetstream().spawn().await;
    let (without, with) = (saga_id(721), saga_id(722));
    for (saga, input) in [(without, json!({"car": false})), (with, json!({"car": {"class": "compact"}}))] {
        let body = StartBody { saga_id: Some(saga.to_string()), input, key: None, version: None };
        app.jetstream().publish_start("trip_car", &body).await.expect("start published");
        assert_eq!(app.settled(saga).await, Status::Completed);
    }
    let cars: Vec<String> = app.ledger.commands().into_iter().filter(|c| c.step == "car").map(|c| c.saga_id).collect();
    assert_eq!(cars, [with.to_string()], "the car was rented for the saga that asked for one only");
    let skipped = |events: &[SagaEvent]| events.iter().any(|e| matches!(e, SagaEvent::StepSkipped { step } if step.as_str() == "car"));
    assert!(skipped(&app.events(without).await), "recorded as skipped");
    assert!(!skipped(&app.events(with).await));
    app.stop().await;
}

/// The whole saga's budget, before the pivot: the hotel never answers
/// inside its own (long) timeout, so the saga deadline passes, the hotel
/// becomes an unknown effect and everything before is undone.
const BUDGETED: &str = r#"
name = "budgeted"
version = 1
deadline = "600ms"

[defaults]
timeout = "30s"
retry = { max_attempts = 1 }

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
"#;

/// SPEC §7 saga deadline over NATS + PostgreSQL, passed before the pivot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_deadline_passed_before_the_pivot_compensates() {
    // The hotel keeps silent on its action and undoes on request.
    let hotels = answer(|c| (c.kind == Kind::Compensation).then_some(true));
    let app = app(&[]).definitions(vec![BUDGETED.to_owned()]).postgres().jetstream().participant("hotels", hotels).spawn().await;
    let saga = saga_id(731);
    let body = StartBody { saga_id: Some(saga.to_string()), input: json!({}), key: None, version: None };
    app.jetstream().publish_start("budgeted", &body).await.expect("start published");
    let started = std::time::Instant::now();
    assert_eq!(app.settled(saga).await, Status::Compensated);
    assert!(started.elapsed() < Duration::from_secs(20), "the saga's budget, not the step's 30 s timeout, ended it");
    let events = app.events(saga).await;
    assert!(events.iter().any(|e| matches!(e, SagaEvent::SagaDeadlinePassed {})), "{events:?}");
    let received = app.ledger.received();
    assert!(received.contains(&("flight".to_owned(), Kind::Compensation, 1)), "the flight is undone: {received:?}");
    assert!(!received.iter().any(|(s, _, _)| s == "pay"), "the pivot is never sent: {received:?}");
    app.stop().await;
}

/// The saga's budget passing after the pivot: the confirmation keeps
/// silent; its attempts still conclude (they time out), and then the saga
/// is stuck for an operator with the reason `deadline`; nothing is
/// compensated.
const BUDGETED_AFTER_PIVOT: &str = r#"
name = "budgeted_late"
version = 1
deadline = "300ms"

[defaults]
timeout = "500ms"
retry = { max_attempts = 2, backoff = "10ms", max_backoff = "20ms" }

[[steps]]
name = "flight"
participant = "flights"
action = "reserve"
compensation = "cancel"

[[steps]]
name = "pay"
participant = "payments"
action = "charge"

[[steps]]
name = "notify"
participant = "notifications"
action = "send"
"#;

/// SPEC §7 saga deadline over NATS + PostgreSQL, passed after the pivot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_deadline_passed_after_the_pivot_leaves_the_saga_stuck() {
    let silent = answer(|_| None);
    let app = app(&[])
        .definitions(vec![BUDGETED_AFTER_PIVOT.to_owned()])
        .postgres()
        .jetstream()
        .participant("notifications", silent)
        .spawn()
        .await;
    let saga = saga_id(741);
    let body = StartBody { saga_id: Some(saga.to_string()), input: json!({}), key: None, version: None };
    app.jetstream().publish_start("budgeted_late", &body).await.expect("start published");
    assert_eq!(app.settled(saga).await, Status::Stuck);
    let events = app.events(saga).await;
    assert!(events.iter().any(|e| matches!(e, SagaEvent::SagaDeadlinePassed {})), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, SagaEvent::SagaStuck { reason, .. } if reason == "deadline")), "{events:?}");
    let received = app.ledger.received();
    assert!(!received.iter().any(|(_, kind, _)| *kind == Kind::Compensation), "nothing undone after the pivot: {received:?}");
    app.stop().await;
}
