//! The faults a real deployment sees, one test each (issue 8): every test
//! here failed before the fix it names. The campaign (`examples/torture`)
//! throws them all at once; these pin each one down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jetsaga::definition::Kind;
use jetsaga::runtime::{Clock, EngineError};
use jetsaga::saga::{Input, SagaEvent, SagaId, Status};
use jetsaga::store::EventStore;
use jetsaga::transport::{AnyTransport, Inbound, ParticipantTransport};
use jetsaga::wire::ReplyBody;
use serde_json::json;

use crate::support::{always_ok, answer, app, saga_id, silent, spawn_faulty, TOKEN};

/// A timeout must not turn a reply that arrived in time into a late one,
/// whichever engine fires it: an engine whose lease ran out may have held
/// the reply unacknowledged, and the broker hands it out again within the
/// ack wait (SPEC §2). Before: the live engine timed the attempt out.
#[tokio::test]
async fn a_live_engine_waits_out_the_replies_a_dead_engine_may_hold() {
    let app =
        app(&["trip"]).timeout("300ms").participant("hotels", silent()).ack_wait(Duration::from_secs(3)).lease(Duration::from_secs(1));
    let app = app.spawn().await;
    // An engine of this deployment last heard from 1.5 s ago: dead (its
    // lease is 1 s), and its held replies may come back until 2.5 s from now.
    let now_ms = Clock::system().now_ms();
    app.store.heartbeat("an-engine-that-died", now_ms - 1_500, 0).await.expect("a lease");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let id = app.start("trip", json!({})).await;
    let hotel = crate::support::eventually!("the hotel command", app.ledger.commands().into_iter().find(|c| c.step == "hotel"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The reply the dead engine held comes back (redelivered by the broker).
    app.transport().reply("hotels", &ReplyBody::ok(&hotel, None), None).await.expect("a reply");
    app.wait_for(id, Status::Completed).await;
    let events = app.events(id).await;
    assert!(
        events.iter().any(|e| matches!(e, SagaEvent::DeadlineExtended { step, attempt: 1, .. } if step.as_str() == "hotel")),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| matches!(e, SagaEvent::AttemptTimedOut { .. })), "no attempt timed out: {events:#?}");
    app.stop().await;
}

/// Engine A has a stuck saga cached; engine B retries it (a new attempt
/// with a deadline). When A claims that deadline, it must decide on what
/// the store holds. Before: A's stale copy found nothing due, appended
/// nothing, and held the claim for 30 s, so the timeout came 30 s late.
#[tokio::test]
async fn a_claimed_deadline_is_decided_on_what_the_store_holds() {
    let a = app(&["trip"]).timeout("300ms").participant("payments", silent()).spawn().await;
    let id = a.start("trip", json!({})).await;
    a.wait_for(id, Status::Stuck).await;
    let b = a.sibling(|o| o).await;
    b.handle.operate(id, Input::OperatorRetry { reason: "payments is back".into() }).await.expect("retried");
    b.stop().await;
    let timed_out = |events: &[SagaEvent]| {
        events.iter().any(|e| matches!(e, SagaEvent::AttemptTimedOut { step, attempt: 3, .. } if step.as_str() == "pay"))
    };
    let waited = tokio::time::Instant::now();
    while !timed_out(&a.events(id).await) {
        assert!(waited.elapsed() < Duration::from_secs(5), "attempt 3 of pay did not time out in time: {:#?}", a.events(id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
}

/// While a backlog of inbound messages drains, an operator's request gets a
/// share of every batch. Before: every batch was filled from the backlog
/// first, so the request waited for all of it.
#[tokio::test]
async fn a_request_is_not_starved_by_a_backlog_of_messages() {
    let app = app(&["trip"]).spawn().await;
    let AnyTransport::Memory(broker) = app.transport().clone() else { panic!("in process") };
    const BACKLOG: u128 = 3_000;
    for n in 0..BACKLOG {
        let start = Inbound::Start { saga_type: "trip".into(), saga_id: Some(saga_id(1_000_000 + n)), input: json!({}) };
        broker.deliver(start).await.expect("delivered");
    }
    let started_before = started(&app.store).await;
    app.handle.start("trip", None, json!({})).await.expect("started");
    let started_after = started(&app.store).await;
    assert!(
        started_after - started_before < 1_000,
        "the request waited for {} of the {BACKLOG} messages of the backlog",
        started_after - started_before
    );
    app.stop().await;
}

async fn started<S: EventStore>(store: &S) -> u64 {
    store.count_by_status(&Status::ALL).await.expect("counts").iter().map(|(_, n)| n).sum()
}

/// One saga whose events the database refuses (as PostgreSQL refuses a
/// NUL) must not fail the other inputs of its group commit, and a message
/// that can never be processed is kept as poison, not redelivered forever
/// nor dropped in silence. Before: the whole batch failed with it.
#[tokio::test]
async fn a_group_commit_that_fails_for_one_saga_commits_the_others() {
    let app = spawn_faulty(&["trip"], always_ok()).await;
    let bad = saga_id(66);
    app.store.refuse(bad);
    let handle = app.orchestrator.handle();
    let starts = (60..70u128).map(|n| {
        let handle = handle.clone();
        async move { (n, handle.start("trip", Some(saga_id(n)), json!({ "n": n as u64 })).await) }
    });
    let results = futures_util::future::join_all(starts).await;
    for (n, result) in results {
        match saga_id(n) == bad {
            true => assert!(matches!(result, Err(EngineError::Store(ref e)) if !e.is_transient()), "{result:?}"),
            false => assert!(result.is_ok(), "start {n} failed with the bad one: {result:?}"),
        }
    }
    let AnyTransport::Memory(broker) = app.orchestrator.transport().clone() else { panic!("in process") };
    broker.deliver(Inbound::Start { saga_type: "trip".into(), saga_id: Some(bad), input: json!({}) }).await.expect("delivered");
    let poison = crate::support::eventually!("the bad start kept as poison", {
        let kept = app.store.inner().poison(100).await.expect("poison");
        kept.into_iter().find(|p| p.reason.contains("refused"))
    });
    assert_eq!(poison.subject, "start.trip");
    app.stop().await;
}

/// A saga stuck compensating after its pivot replied `failed` may be
/// compensated by an operator: the failed pivot had no effect (SPEC §2).
/// Before: 409.
#[tokio::test]
async fn an_operator_resumes_a_compensation_stuck_after_the_pivot_failed() {
    let hotels_back = Arc::new(AtomicBool::new(false));
    let back = hotels_back.clone();
    let hotels = answer(move |c| (c.kind == Kind::Action || back.load(Ordering::SeqCst)).then_some(true));
    let payments = answer(|_| Some(false));
    let app = app(&["trip"]).timeout("200ms").participant("hotels", hotels).participant("payments", payments).spawn().await;
    let id = app.start("trip", json!({})).await;
    app.wait_for(id, Status::Stuck).await;
    hotels_back.store(true, Ordering::SeqCst);
    let (status, body) = app.http("POST", &format!("/sagas/{id}/compensate"), Some(r#"{"reason": "hotels is back"}"#), Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    app.wait_for(id, Status::Compensated).await;
    app.stop().await;
}

/// A NUL character cannot be stored by PostgreSQL: refused at the door with
/// a 400 that says where, and the other starts go on. Before: a 500, and
/// the whole group commit failed with it.
#[tokio::test]
async fn a_nul_character_is_refused_at_the_door() {
    let app = app(&["trip"]).postgres().spawn().await;
    let body = r#"{"saga_type": "trip", "input": {"name": "Ada\u0000"}}"#;
    let (status, answer) = app.http("POST", "/sagas", Some(body), None).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["detail"].as_str().is_some_and(|d| d.contains("/name")), "{answer}");
    let id: SagaId = app.start("trip", json!({"name": "Ada"})).await;
    app.wait_for(id, Status::Completed).await;
    app.stop().await;
}

/// An input that would make an event or a command larger than the broker
/// takes is refused at the door (413), never half-accepted. Before: the
/// start was committed, and its event blocked the relay for good.
#[tokio::test]
async fn a_start_too_large_for_the_broker_is_refused() {
    let app = app(&["trip"]).jetstream().ack_wait(Duration::from_secs(2)).spawn().await;
    let large = "x".repeat(1_048_000);
    let body = json!({ "saga_type": "trip", "input": { "blob": large } }).to_string();
    let (status, answer) = app.http("POST", "/sagas", Some(&body), None).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["detail"].as_str().is_some_and(|d| d.contains("over the broker's limit")), "{answer}");
    let id = app.start("trip", json!({ "blob": "x".repeat(1_000) })).await;
    app.wait_for(id, Status::Completed).await;
    app.stop().await;
}
