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
        let start =
            Inbound::Start { saga_type: "trip".into(), saga_id: Some(saga_id(1_000_000 + n)), input: json!({}), key: None, version: None };
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
    broker
        .deliver(Inbound::Start { saga_type: "trip".into(), saga_id: Some(bad), input: json!({}), key: None, version: None })
        .await
        .expect("delivered");
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

/// What the relay published: (saga, seq, body).
#[derive(Clone, Default)]
struct Published {
    events: Arc<std::sync::Mutex<Vec<(SagaId, u64, serde_json::Value)>>>,
    /// Bodies larger than this are refused as too large for the broker.
    max: usize,
}

impl jetsaga::transport::EventSink for Published {
    async fn publish(&self, _saga_type: &str, saga_id: SagaId, seq: u64, body: Vec<u8>) -> Result<(), jetsaga::transport::TransportError> {
        if body.len() > self.max {
            return Err(jetsaga::transport::TransportError::TooLarge { bytes: body.len(), max: self.max });
        }
        let body = serde_json::from_slice(&body).expect("a JSON body");
        self.events.lock().expect("published").push((saga_id, seq, body));
        Ok(())
    }
}

impl Published {
    fn seqs(&self) -> Vec<u64> {
        self.events.lock().expect("published").iter().map(|(_, seq, _)| *seq).collect()
    }
}

/// A saga of `n` events whose `big`-th carries a large output.
fn log_of(id: SagaId, n: u64, big: Option<u64>) -> jetsaga::store::Append {
    use jetsaga::saga::Recorded;
    use jetsaga::store::{Append, SagaSummary};
    let started = SagaEvent::SagaStarted { saga_type: "trip".into(), version: 1, definition_hash: "h".into(), input: json!({}), key: None };
    let events = (1..=n)
        .map(|seq| {
            let event = match (seq, big) {
                (1, _) => started.clone(),
                (s, Some(b)) if s == b => SagaEvent::InputIgnored { input: "x".repeat(10_000), reason: "big".into() },
                _ => SagaEvent::InputIgnored { input: "reply".into(), reason: "late".into() },
            };
            Recorded { seq, at_ms: 1_767_225_600_000 + seq as i64, event }
        })
        .collect();
    let summary = SagaSummary {
        saga_id: id,
        saga_type: "trip".into(),
        version: 1,
        status: Status::Running,
        current_step: None,
        started_at_ms: 1_767_225_600_001,
        updated_at_ms: 1_767_225_600_000 + n as i64,
        last_seq: n,
        deadline_ms: None,
        key: None,
    };
    Append { saga_id: id, expected_seq: 0, events, summary }
}

/// The relay outlives a database outage: it retries, says it is failing,
/// and publishes everything committed before and after. Before: it returned
/// on its first error and nothing restarted it.
#[tokio::test]
async fn the_relay_outlives_a_database_outage() {
    let store = crate::support::FaultyStore::default();
    store.append(&[log_of(saga_id(1), 3, None)]).await.expect("appended");
    let sink = Published { max: usize::MAX, ..Published::default() };
    let status = Arc::new(jetsaga::runtime::relay::RelayStatus::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(jetsaga::runtime::relay::run(
        store.clone(),
        sink.clone(),
        "events",
        status.clone(),
        jetsaga::runtime::Clock::system(),
        async {
            let _ = stopped.await;
        },
    ));
    crate::support::eventually!("the first saga published", (sink.seqs().len() == 3).then_some(()));
    store.go_down();
    crate::support::eventually!("the relay to say it is failing", status.failing().then_some(()));
    store.inner().append(&[log_of(saga_id(2), 2, None)]).await.expect("committed while the relay could not read");
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.come_back();
    crate::support::eventually!("every event published", (sink.seqs().len() == 5).then_some(()));
    crate::support::eventually!("the relay healthy again", (!status.failing()).then_some(()));
    assert!(store.failures() > 0);
    let _ = stop.send(());
    relay.await.expect("the relay stops when asked");
}

/// An event the broker can never take is published as a stub that says
/// where to read it, and the events after it go on. Before: the relay
/// retried that one event forever and everything behind it waited.
#[tokio::test]
async fn an_event_too_large_for_the_broker_does_not_block_the_relay() {
    let store = jetsaga::store::MemoryStore::new();
    store.append(&[log_of(saga_id(1), 4, Some(2))]).await.expect("appended");
    let sink = Published { max: 4_096, ..Published::default() };
    let status = Arc::new(jetsaga::runtime::relay::RelayStatus::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(jetsaga::runtime::relay::run(
        store,
        sink.clone(),
        "events",
        status.clone(),
        jetsaga::runtime::Clock::system(),
        async {
            let _ = stopped.await;
        },
    ));
    crate::support::eventually!("every event published", (sink.seqs() == vec![1, 2, 3, 4]).then_some(()));
    let stub = sink.events.lock().expect("published")[1].2.clone();
    assert_eq!(stub["type"], "input_ignored");
    assert!(stub["data"]["omitted"].as_str().is_some_and(|why| why.contains("max_payload")), "{stub}");
    assert_eq!(status.omitted(), 1);
    let _ = stop.send(());
    relay.await.expect("the relay stops when asked");
}

/// A broker that lost its streams (restarted without its data, an
/// operator's mistake) gets them back while the orchestrator runs.
/// Before: the consumers waited for the lost stream forever, and commands
/// had nowhere to go.
#[tokio::test]
async fn streams_lost_by_the_broker_are_created_again() {
    // A fuse long enough for a participant to notice its lost consumer (two
    // missed heartbeats of the pull) and open it again.
    let app = app(&["trip"]).jetstream().timeout("8s").ack_wait(Duration::from_secs(2)).spawn().await;
    let first = app.start("trip", json!({})).await;
    app.wait_for(first, Status::Completed).await;
    app.jetstream().delete_streams().await.expect("the broker loses its streams");
    let second = app.start("trip", json!({})).await;
    app.wait_for(second, Status::Completed).await;
    app.stop().await;
}

/// `serve` that cannot create its consumers cannot do its work: it exits
/// non-zero and says why. Before: it logged the error, kept running and
/// exited 0 on SIGTERM.
#[tokio::test]
async fn serve_exits_non_zero_when_its_consumers_cannot_be_created() {
    use jetsaga::transport::jetstream::StreamKind;
    let prefix = format!("{}.saga", crate::infra::unique("noconsumer"));
    let schema = crate::infra::unique("jetsaga_noconsumer");
    let _store = crate::infra::postgres(&schema).await;
    let transport = crate::infra::nats(&prefix, Duration::from_secs(2)).await;
    // Another program took the orchestrators' durable name with a setting
    // that cannot be changed (its deliver policy).
    let client = async_nats::connect(crate::infra::nats_url()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(transport.stream_name(StreamKind::Start)).await.expect("the start stream");
    let squatter = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some(transport.orchestrator_consumer(StreamKind::Start)),
        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    stream.create_consumer(squatter).await.expect("the squatting consumer");
    let sagas = tempfile::tempdir().expect("temp dir");
    std::fs::write(sagas.path().join("trip.toml"), crate::support::fixture("trip")).expect("write");
    let mut serve = crate::infra::Serve::start(sagas.path(), &schema, &prefix, "2s");
    let status = serve.exited_within(Duration::from_secs(20)).await.expect("serve exits by itself");
    assert!(!status.success(), "serve must not exit 0: {status}");
    transport.delete_streams().await.expect("cleaned up");
}
