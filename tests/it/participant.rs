//! The participant SDK: `serve` over a transport, the idempotency layer,
//! tower composition, and the simulated participants driving a real
//! orchestrator (an app of the harness: SQLite, in-process broker). Each test states what a participant
//! author can rely on.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetsaga::definition::Kind;
use jetsaga::participant::simulated::Simulated;
use jetsaga::participant::{
    serve, BoxError, EffectLedger, Idempotency, IdempotencyLayer, MemoryIdempotencyStore, ParticipantError, Silence, SimulationConfig,
    DECLINED_CARD,
};
use jetsaga::saga::{ReplyStatus, SagaId, Status};
use jetsaga::transport::{Ack, CommandDelivery, ParticipantTransport, TransportError};
use jetsaga::wire::{CommandBody, ReplyBody};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

use crate::support::{app, eventually, trip_booking, TestApp};

const SAGA_ID: &str = "0190a5c4-0000-7000-8000-000000000001";

fn command(step: &str, kind: Kind, attempt: u32) -> CommandBody {
    CommandBody {
        saga_id: SAGA_ID.into(),
        saga_type: "trip".into(),
        step: step.into(),
        kind,
        action: "reserve".into(),
        attempt,
        idempotency_key: format!("{SAGA_ID}:{step}:{}", kind.as_str()),
        payload: json!({"input": {}, "results": {}}),
    }
}

/// What a [`TestTransport`] saw, in order: `reply <step> <attempt> <traceparent>` and `ack <step> <attempt>`.
type Log = Arc<Mutex<Vec<String>>>;

/// A transport whose commands the test feeds and whose replies and acks it records.
#[derive(Clone)]
struct TestTransport {
    commands: Arc<Mutex<Option<mpsc::Receiver<CommandDelivery>>>>,
    log: Log,
}

struct Feed {
    tx: mpsc::Sender<CommandDelivery>,
    log: Log,
}

impl Feed {
    async fn send(&self, command: CommandBody) {
        let (log, what) = (self.log.clone(), format!("ack {} {}", command.step, command.attempt));
        let ack = Ack::new(move || log.lock().expect("log").push(what));
        let traceparent = Some(format!("00-{:032x}-{:016x}-01", 7, command.attempt));
        self.tx.send(CommandDelivery { command, traceparent, ack }).await.expect("serve is listening");
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    async fn wait_until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        eventually!(format!("the log to get there: {:?}", self.log()), Some(self.log()).filter(|log| done(log)))
    }
}

fn test_transport() -> (TestTransport, Feed) {
    let (tx, rx) = mpsc::channel(64);
    let log = Log::default();
    (TestTransport { commands: Arc::new(Mutex::new(Some(rx))), log: log.clone() }, Feed { tx, log })
}

impl ParticipantTransport for TestTransport {
    async fn commands(&self, _participant: &str) -> Result<mpsc::Receiver<CommandDelivery>, TransportError> {
        self.commands.lock().expect("commands").take().ok_or_else(|| TransportError::Publish("subscribed twice".into()))
    }

    async fn reply(&self, _participant: &str, reply: &ReplyBody, traceparent: Option<&str>) -> Result<(), TransportError> {
        let line = format!("reply {} {} {}", reply.step, reply.attempt, traceparent.unwrap_or("-"));
        self.log.lock().expect("log").push(line);
        Ok(())
    }
}

/// Runs `serve` on a task; the returned sender stops it.
fn spawn_serve<S>(transport: TestTransport, service: S) -> (oneshot::Sender<()>, JoinHandle<Result<(), ParticipantError>>)
where
    S: Service<CommandBody, Response = ReplyBody> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(transport, "hotels", service, async move {
            let _ = stopped.await;
        })
        .await
    });
    (stop, task)
}

/// A participant that counts the commands it is called with (at once,
/// before it answers), then answers as `reply` does.
fn counting<Fut>(
    reply: impl Fn(CommandBody) -> Fut + Clone,
) -> (Arc<AtomicUsize>, impl Service<CommandBody, Response = ReplyBody, Error = BoxError, Future = Fut> + Clone)
where
    Fut: Future<Output = Result<ReplyBody, BoxError>>,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let service = service_fn(move |command: CommandBody| {
        counted.fetch_add(1, Ordering::SeqCst);
        reply(command)
    });
    (calls, service)
}

fn count(log: &[String], prefix: &str) -> usize {
    log.iter().filter(|l| l.starts_with(prefix)).count()
}

#[tokio::test]
async fn a_tower_stack_replies_then_acks_and_a_repeated_key_gets_the_recorded_reply_for_its_own_attempt() {
    let (transport, feed) = test_transport();
    let ledger = EffectLedger::new();
    let effects = ledger.clone();
    // Outermost first: a permit, a deadline, the idempotency check, the effect.
    let hotels = ServiceBuilder::new()
        .concurrency_limit(4)
        .timeout(Duration::from_secs(1))
        .layer(IdempotencyLayer::new(MemoryIdempotencyStore::new()))
        .service(service_fn(move |command: CommandBody| {
            let effects = effects.clone();
            async move {
                effects.record(&command.idempotency_key);
                Ok::<_, BoxError>(ReplyBody::ok(&command, Some(json!({"room": 7}))))
            }
        }));
    let (stop, task) = spawn_serve(transport, hotels);
    feed.send(command("hotel", Kind::Action, 1)).await;
    feed.wait_until(|log| count(log, "ack") == 1).await;
    feed.send(command("hotel", Kind::Action, 2)).await;
    let log = feed.wait_until(|log| count(log, "ack") == 2).await;
    let trace = |attempt: u32| format!("00-{:032x}-{:016x}-01", 7, attempt);
    assert_eq!(
        log,
        [format!("reply hotel 1 {}", trace(1)), "ack hotel 1".into(), format!("reply hotel 2 {}", trace(2)), "ack hotel 2".into()]
    );
    assert_eq!(ledger.count(&format!("{SAGA_ID}:hotel:action")), 1);
    let _ = stop.send(());
    task.await.expect("serve task").expect("served");
}

#[tokio::test]
async fn the_recorded_reply_answers_the_new_attempt_without_a_second_effect() {
    let ledger = EffectLedger::new();
    let config = SimulationConfig { latency: Duration::from_millis(1), ..SimulationConfig::default() };
    let mut hotels = Idempotency::new(Simulated::new("hotels", config, ledger.clone()), MemoryIdempotencyStore::new());
    let first = hotels.ready().await.expect("ready").call(command("hotel", Kind::Action, 1)).await.expect("reply");
    let again = hotels.ready().await.expect("ready").call(command("hotel", Kind::Action, 3)).await.expect("reply");
    assert_eq!((first.attempt, again.attempt), (1, 3));
    assert_eq!((again.status, again.kind, &again.output), (ReplyStatus::Ok, Kind::Action, &first.output));
    assert_eq!((ledger.count(&format!("{SAGA_ID}:hotel:action")), ledger.total()), (1, 1));
    assert!(ledger.duplicates().is_empty());
}

#[tokio::test]
async fn concurrent_duplicates_reach_the_service_once() {
    let (calls, slow) = counting(|command: CommandBody| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, BoxError>(ReplyBody::ok(&command, None))
    });
    let service = Idempotency::new(slow, MemoryIdempotencyStore::new());
    let (mut a, mut b) = (service.clone(), service);
    let (first, second) = tokio::join!(async { a.ready().await?.call(command("hotel", Kind::Action, 1)).await }, async {
        b.ready().await?.call(command("hotel", Kind::Action, 2)).await
    },);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((first.expect("reply").attempt, second.expect("reply").attempt), (1, 2));
}

#[tokio::test]
async fn a_failed_reply_is_not_recorded_so_the_next_attempt_tries_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let flaky = service_fn(move |command: CommandBody| {
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        async move { Ok::<_, BoxError>(if first { ReplyBody::failed(&command, "busy") } else { ReplyBody::ok(&command, None) }) }
    });
    let mut service = Idempotency::new(flaky, MemoryIdempotencyStore::new());
    let mut statuses = Vec::new();
    for attempt in 1..=3 {
        let reply = service.ready().await.expect("ready").call(command("hotel", Kind::Compensation, attempt)).await.expect("reply");
        statuses.push((reply.attempt, reply.status));
    }
    assert_eq!(statuses, [(1, ReplyStatus::Failed), (2, ReplyStatus::Ok), (3, ReplyStatus::Ok)]);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the ok reply is replayed, the failed one was not");
}

#[tokio::test]
async fn an_error_leaves_the_command_unacknowledged_and_silence_acks_without_a_reply() {
    let (transport, feed) = test_transport();
    let (calls, service) = counting(|command: CommandBody| async move {
        match command.step.as_str() {
            "broken" => Err::<ReplyBody, BoxError>("the database is down".into()),
            "quiet" => Err(Box::new(Silence) as BoxError),
            _ => Ok(ReplyBody::ok(&command, None)),
        }
    });
    let (stop, task) = spawn_serve(transport, service);
    for step in ["broken", "quiet", "fine"] {
        feed.send(command(step, Kind::Action, 1)).await;
    }
    feed.wait_until(|log| count(log, "ack") == 2).await;
    eventually!("three calls", (calls.load(Ordering::SeqCst) >= 3).then_some(()));
    let _ = stop.send(());
    task.await.expect("serve task").expect("served");
    let mut log = feed.log();
    log.sort();
    assert_eq!(log, ["ack fine 1", "ack quiet 1", format!("reply fine 1 00-{:032x}-{:016x}-01", 7, 1).as_str()]);
}

#[tokio::test]
async fn a_concurrency_limit_of_two_never_has_more_than_two_in_flight() {
    let (transport, feed) = test_transport();
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let slow = service_fn(move |command: CommandBody| {
        let (n, m) = (n.clone(), m.clone());
        async move {
            m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, BoxError>(ReplyBody::ok(&command, None))
        }
    });
    let (stop, task) = spawn_serve(transport, ServiceBuilder::new().concurrency_limit(2).service(slow));
    for i in 0..8 {
        feed.send(command(&format!("step{i}"), Kind::Action, 1)).await;
    }
    feed.wait_until(|log| count(log, "ack") == 8).await;
    assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, and not fewer");
    let _ = stop.send(());
    task.await.expect("serve task").expect("served");
}

#[tokio::test]
async fn shutdown_takes_no_new_command_and_finishes_those_in_flight() {
    let (transport, feed) = test_transport();
    let (started, slow) = counting(|command: CommandBody| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok::<_, BoxError>(ReplyBody::ok(&command, None))
    });
    let (stop, task) = spawn_serve(transport, slow);
    for i in 0..3 {
        feed.send(command(&format!("step{i}"), Kind::Action, 1)).await;
    }
    eventually!("three commands in flight", (started.load(Ordering::SeqCst) >= 3).then_some(()));
    assert!(feed.log().is_empty(), "still in flight");
    let _ = stop.send(());
    task.await.expect("serve task").expect("a requested shutdown is Ok");
    let log = feed.log();
    assert_eq!((count(&log, "reply"), count(&log, "ack")), (3, 3), "{log:?}");
    assert!(feed
        .tx
        .send(CommandDelivery { command: command("late", Kind::Action, 1), traceparent: None, ack: Ack::none() })
        .await
        .is_err());
}

#[tokio::test]
async fn serve_reports_a_transport_that_stops_delivering() {
    let (transport, feed) = test_transport();
    let (_stop, task) = spawn_serve(transport, service_fn(|c: CommandBody| async move { Ok::<_, BoxError>(ReplyBody::ok(&c, None)) }));
    drop(feed);
    assert!(matches!(task.await.expect("serve task"), Err(ParticipantError::Closed { .. })));
}

// The simulated participants and a real orchestrator.

/// The demo saga with a `timeout` fuse, answered by the SDK's simulated participants.
async fn trip(config: SimulationConfig, timeout: &str) -> TestApp {
    app(&[]).definitions(vec![trip_booking()]).timeout(timeout).simulated(config).spawn().await
}

/// A card the payment service accepts.
const CARD: &str = "4242-4242-4242-4242";

async fn book(trip: &TestApp, card: &str) -> SagaId {
    trip.start("trip_booking", json!({ "card": card })).await
}

/// `n` trips paid with [`CARD`].
async fn book_many(trip: &TestApp, n: usize) -> Vec<SagaId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(book(trip, CARD).await);
    }
    ids
}

/// Effects recorded for the saga's compensations.
fn compensations(trip: &TestApp, id: SagaId) -> u32 {
    ["reserve_flight", "reserve_hotel", "rent_car"].iter().map(|step| trip.ledger.effects.count(&format!("{id}:{step}:compensation"))).sum()
}

fn quick(failure_rate: f64, silence_rate: f64, seed: u64) -> SimulationConfig {
    SimulationConfig { failure_rate, silence_rate, latency: Duration::from_millis(2), seed, ..SimulationConfig::default() }
}

#[tokio::test]
async fn simulated_participants_book_a_trip_and_undo_one_whose_card_is_declined() {
    let trip = trip(quick(0.0, 0.0, 1), "2s").await;
    let booked = book(&trip, CARD).await;
    let declined = book(&trip, DECLINED_CARD).await;
    assert_eq!(trip.settled(booked).await, Status::Completed);
    assert_eq!(trip.settled(declined).await, Status::Compensated);
    assert_eq!(trip.ledger.effects.count(&format!("{booked}:charge_card:action")), 1);
    assert_eq!(trip.ledger.effects.count(&format!("{declined}:charge_card:action")), 0, "a declined card has no effect");
    assert_eq!(compensations(&trip, declined), 3);
    // 5 actions; then 3 actions and their 3 compensations.
    assert_eq!((trip.ledger.effects.total(), trip.ledger.effects.duplicates()), (11, Vec::<String>::new()));
    trip.stop().await;
}

#[tokio::test]
async fn failures_produce_compensations_and_no_effect_ever_happens_twice() {
    let trip = trip(quick(0.5, 0.0, 7), "2s").await;
    let mut compensated = 0;
    for id in book_many(&trip, 20).await {
        let status = trip.settled(id).await;
        assert!(matches!(status, Status::Completed | Status::Compensated), "{id}: {status:?}");
        compensated += compensations(&trip, id);
    }
    assert!(compensated > 0, "at a 50% failure rate some booking was undone");
    assert!(trip.ledger.effects.duplicates().is_empty(), "{:?}", trip.ledger.effects.duplicates());
    trip.stop().await;
}

#[tokio::test]
async fn a_silent_participant_is_recovered_by_the_orchestrators_timeout() {
    let trip = trip(quick(0.0, 0.5, 3), "150ms").await;
    for id in book_many(&trip, 6).await {
        assert_eq!(trip.settled(id).await, Status::Completed, "silence strikes first attempts only");
    }
    assert_eq!((trip.ledger.effects.total(), trip.ledger.effects.duplicates()), (30, Vec::<String>::new()));
    trip.stop().await;
}

#[test]
fn the_python_participant_in_the_docs_is_the_checked_in_script() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/participants.md")).expect("docs/participants.md");
    let script = std::fs::read_to_string(format!("{root}/tests/python/hotels_participant.py")).expect("the script");
    assert!(doc.contains(&format!("```python\n{script}```")), "docs/participants.md must include the script verbatim");
    assert!(script.lines().count() <= 40, "the Python participant stays under 40 lines");
}
