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
