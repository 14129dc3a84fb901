//! The JetStream transport against a real nats-server (`NATS_URL`, default
//! `nats://127.0.0.1:4222`; start one with `scripts/services`).
//!
//! Every test works under its own subject prefix, so its own streams and
//! consumers, and deletes them when it ends (pass or fail). Without a
//! server the tests fail, loudly: a skipped broker test proves nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetsaga::definition::{ActionName, Kind, Participant, SagaType, StepName};
use jetsaga::saga::{self, Command, Recorded, ReplyStatus, SagaEvent, SagaId};
use jetsaga::transport::jetstream::StreamKind;
use jetsaga::transport::{
    Delivery, EventSink, Inbound, JetStreamConfig, JetStreamTransport, ParticipantTransport, PoisonSink, Transport, TransportError,
};
use jetsaga::wire::{self, ReplyBody, StartBody, Subjects};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::infra;

/// Longest wait for a message that should arrive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// One test's corner of the broker; its streams are deleted on drop.
struct Broker {
    config: JetStreamConfig,
}

impl Broker {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(change: impl FnOnce(&mut JetStreamConfig)) -> Self {
        let prefix = format!("{}.saga", infra::unique("t"));
        let mut config =
            JetStreamConfig { connect_attempts_max: 3, publish_timeout: Duration::from_secs(2), ..infra::nats_config(&prefix) };
        change(&mut config);
        Self { config }
    }

    async fn connect(&self) -> JetStreamTransport {
        connect(self.config.clone()).await
    }

    fn subjects(&self) -> &Subjects {
        &self.config.prefix
    }
}

async fn connect(config: JetStreamConfig) -> JetStreamTransport {
    let url = config.connection.redacted_url();
    JetStreamTransport::connect(config).await.unwrap_or_else(|e| {
        panic!("no NATS JetStream at {url} ({e}); start one with `scripts/services` or set NATS_URL — broker tests never skip")
    })
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Best effort, on a fresh runtime: the test's may be unwinding.
        let config = JetStreamConfig { connect_attempts_max: 1, ..self.config.clone() };
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(transport) = JetStreamTransport::connect(config).await {
                    let _ = transport.delete_streams().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Poison messages as the caller would keep them.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<(String, String, usize)>>>);

impl Sink {
    fn kept(&self) -> Vec<(String, String, usize)> {
        self.0.lock().expect("sink").clone()
    }
}

impl PoisonSink for Sink {
    async fn poison(&self, subject: &str, reason: &str, payload: &[u8]) {
        self.0.lock().expect("sink").push((subject.to_owned(), reason.to_owned(), payload.len()));
    }
}

/// An orchestrator's inbound side, running until dropped.
struct Runner {
    rx: mpsc::Receiver<Delivery>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), TransportError>>,
}

impl Runner {
    fn start(transport: &JetStreamTransport, sink: Sink) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let (stop, stopped) = oneshot::channel::<()>();
        let transport = transport.clone();
        let task = tokio::spawn(async move {
            let consumers = transport.orchestrator_consumers().await?;
            consumers
                .run(tx, sink, async {
                    let _ = stopped.await;
                })
                .await;
            Ok(())
        });
        Self { rx, stop: Some(stop), task }
    }

    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(ARRIVAL_TIMEOUT, self.rx.recv())
            .await
            .expect("a delivery within the timeout")
            .expect("the inbound runner is still running")
    }

    async fn nothing_for(&mut self, wait: Duration) {
        if let Ok(Some(delivery)) = tokio::time::timeout(wait, self.rx.recv()).await {
            panic!("unexpected delivery: {:?}", delivery.message);
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(ARRIVAL_TIMEOUT, &mut self.task).await.expect("the runner stops");
        result.expect("the runner did not panic").expect("the runner ran");
    }
}

fn saga_id(n: u128) -> SagaId {
    SagaId::from_u128(0x0190_a5c4_0000_7000_8000_0000_0000_0000 | n)
}

fn command(id: SagaId, attempt: u32) -> Command {
    Command {
        saga_id: id,
        saga_type: SagaType::parse("trip").expect("name"),
        step: StepName::parse("reserve_hotel").expect("name"),
        participant: Participant::parse("hotels").expect("name"),
        kind: Kind::Action,
        action: ActionName::parse("reserve").expect("name"),
        attempt,
        idempotency_key: saga::idempotency_key(id, "reserve_hotel", Kind::Action),
        message_id: saga::message_id(id, "reserve_hotel", Kind::Action, attempt),
        payload: json!({"input": {"nights": 2}, "results": {}}),
    }
}

fn reply(id: SagaId, attempt: u32) -> ReplyBody {
    ReplyBody {
        saga_id: id.to_string(),
        step: "reserve_hotel".to_owned(),
        kind: Kind::Action,
        attempt,
        status: ReplyStatus::Ok,
        output: Some(json!({"room": attempt})),
        error: None,
    }
}

fn reply_bytes(id: &str) -> Vec<u8> {
    json!({"saga_id": id, "step": "reserve_hotel", "kind": "action", "attempt": 1, "status": "ok"}).to_string().into_bytes()
}

#[test]
fn stream_names_derive_from_the_prefix() {
    assert_eq!(StreamKind::Start.stream_name("saga"), "SAGA_START");
    assert_eq!(StreamKind::Commands.stream_name("saga"), "SAGA_COMMANDS");
    assert_eq!(StreamKind::Replies.stream_name("saga"), "SAGA_REPLIES");
    assert_eq!(StreamKind::Events.stream_name("saga"), "SAGA_EVENTS");
    assert_eq!(StreamKind::Start.stream_name("t_42.saga"), "T_42_SAGA_START");
}

#[tokio::test]
async fn streams_are_created_with_their_subjects_and_a_second_connect_updates_them() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let prefix = broker.subjects().prefix().to_owned();
    for (kind, token) in
        [(StreamKind::Start, "start"), (StreamKind::Commands, "cmd"), (StreamKind::Replies, "reply"), (StreamKind::Events, "event")]
    {
        let state = transport.stream_state(kind).await.expect("stream exists");
        assert_eq!(state.name, kind.stream_name(&prefix));
        assert!(state.name.starts_with(&prefix.replace('.', "_").to_uppercase()), "{}", state.name);
        assert_eq!(state.subjects, vec![format!("{prefix}.{token}.>")]);
        assert!(state.file_storage, "{kind:?} uses file storage");
        assert_eq!((state.replicas, state.duplicate_window), (1, Duration::from_secs(120)));
    }
    transport.publish_start("trip", &StartBody { saga_id: None, input: json!({}), key: None, version: None }).await.expect("published");

    let again = connect(JetStreamConfig { duplicate_window: Duration::from_secs(60), ..broker.config.clone() }).await;
    let state = again.stream_state(StreamKind::Start).await.expect("stream exists");
    assert_eq!(state.duplicate_window, Duration::from_secs(60), "the second connect updates the stream");
    assert_eq!(state.messages, 1, "and keeps its messages");
}

#[tokio::test]
async fn a_command_carries_its_message_id_and_traceparent_and_a_duplicate_is_dropped() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let id = saga_id(1);
    let command = command(id, 2);
    transport.send(&command).await.expect("sent");
    transport.send(&command).await.expect("re-sent");

    let stored = transport.stored_messages(StreamKind::Commands).await.expect("readable");
    assert_eq!(stored.len(), 1, "the broker dropped the duplicate");
    assert_eq!(transport.stream_state(StreamKind::Commands).await.expect("state").messages, 1);
    let message = &stored[0];
    assert_eq!(message.subject, format!("{}.cmd.hotels.reserve", broker.subjects().prefix()));
    assert_eq!(message.message_id.as_deref(), Some(command.message_id.as_str()));
    let traceparent = message.traceparent.as_deref().expect("traceparent header");
    assert!(traceparent.starts_with(&format!("00-{:032x}-", id.as_uuid().as_u128())), "{traceparent}");
    let body = wire::parse_command(&message.payload).expect("a command body");
    assert_eq!((body.attempt, body.step.as_str(), body.idempotency_key.as_str()), (2, "reserve_hotel", command.idempotency_key.as_str()));

    transport.send(&self::command(id, 3)).await.expect("next attempt");
    assert_eq!(transport.stream_state(StreamKind::Commands).await.expect("state").messages, 2, "a new attempt is a new message");
}

#[tokio::test]
async fn a_participant_receives_a_command_and_its_reply_reaches_the_orchestrator() {
    let broker = Broker::new();
    let orchestrator = broker.connect().await;
    let participant = broker.connect().await;
    let mut commands = participant.commands("hotels").await.expect("consumer");
    let mut inbound = Runner::start(&orchestrator, Sink::default());
    let id = saga_id(2);
    let sent = command(id, 1);
    orchestrator.send(&sent).await.expect("sent");

    let delivery = tokio::time::timeout(ARRIVAL_TIMEOUT, commands.recv()).await.expect("in time").expect("a command");
    assert_eq!((delivery.command.saga_id.as_str(), delivery.command.action.as_str()), (id.to_string().as_str(), "reserve"));
    assert_eq!(delivery.command.payload, sent.payload);
    let traceparent = delivery.traceparent.clone().expect("traceparent");
    let answer = ReplyBody::ok(&delivery.command, Some(json!({"room": 12})));
    participant.reply("hotels", &answer, Some(&traceparent)).await.expect("replied");
    participant.reply("hotels", &answer, Some(&traceparent)).await.expect("replied again");
    delivery.ack.ack();

    let arrived = inbound.next().await;
    match &arrived.message {
        Inbound::Reply { saga_id, reply } => {
            assert_eq!(*saga_id, id);
            assert_eq!((reply.participant.as_str(), reply.step.as_str(), reply.attempt), ("hotels", "reserve_hotel", 1));
            assert_eq!((reply.status, reply.output.clone()), (ReplyStatus::Ok, Some(json!({"room": 12}))));
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    arrived.ack.ack();
    let again = inbound.next().await;
    assert_eq!(again.message, arrived.message, "a reply answered twice is two messages: the engine, not the broker, ignores the second");
    again.ack.ack();
    let stored = orchestrator.stored_messages(StreamKind::Replies).await.expect("readable");
    assert_eq!(stored.len(), 2);
    let ids: Vec<&str> = stored.iter().map(|m| m.message_id.as_deref().expect("a message id")).collect();
    let attempt = format!("{id}:reserve_hotel:action:1:reply:");
    assert!(ids.iter().all(|m| m.starts_with(&attempt) && m.len() == attempt.len() + 32), "{ids:?}");
    assert_ne!(ids[0], ids[1], "each publish has an id of its own, unguessable");
    assert_eq!(stored[0].traceparent.as_deref(), Some(traceparent.as_str()));
    inbound.nothing_for(Duration::from_millis(500)).await;
    inbound.stop().await;
}

/// The replies stream has one de-duplication window for every
/// participant. Before, a reply's message id was predictable
/// (`<saga>:<step>:<kind>:<attempt>:reply`): `cars` could publish it first
/// on its own subject and the broker dropped hotels' real reply.
#[tokio::test]
async fn a_reply_id_published_first_by_another_participant_cannot_suppress_the_real_reply() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let mut inbound = Runner::start(&transport, Sink::default());
    let id = saga_id(5);
    let guessed = format!("{id}:reserve_hotel:action:1:reply");
    transport.publish_raw_with_id(&broker.subjects().reply("cars"), &guessed, reply_bytes(&id.to_string())).await.expect("published");
    transport.reply("hotels", &reply(id, 1), None).await.expect("published");

    let forged = inbound.next().await;
    forged.ack.ack();
    let real = inbound.next().await;
    match &real.message {
        Inbound::Reply { saga_id, reply } => assert_eq!((*saga_id, reply.participant.as_str()), (id, "hotels")),
        other => panic!("expected hotels' reply, got {other:?}"),
    }
    real.ack.ack();
    inbound.stop().await;
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_after_ack_wait_and_an_acked_one_does_not() {
    let broker = Broker::with(|c| c.ack_wait = Duration::from_secs(1));
    let transport = broker.connect().await;
    let mut inbound = Runner::start(&transport, Sink::default());
    let id = saga_id(3);
    transport.reply("hotels", &reply(id, 1), None).await.expect("published");

    let first = inbound.next().await;
    drop(first.ack); // the engine crashed before its commit
    let again = inbound.next().await;
    assert_eq!(again.message, first.message, "the unacked reply was redelivered");
    again.ack.ack();
    inbound.nothing_for(Duration::from_millis(2_500)).await;
    inbound.stop().await;
}

/// A start without a saga id, delivered again after a crash, carries the
/// same id (derived from its place in the stream): one saga, not two.
/// Before: each delivery got a fresh id, and a redelivered start that had
/// been committed made a second saga.
#[tokio::test]
async fn an_id_less_start_delivered_twice_names_one_saga() {
    let broker = Broker::with(|c| c.ack_wait = Duration::from_secs(1));
    let transport = broker.connect().await;
    let mut inbound = Runner::start(&transport, Sink::default());
    let body = StartBody { saga_id: None, input: json!({"request": "r-1"}), key: None, version: None };
    transport.publish_start("trip", &body).await.expect("published");
    let first = inbound.next().await;
    let Inbound::Start { saga_id: Some(id), .. } = first.message else { panic!("a start with a derived id: {:?}", first.message) };
    drop(first.ack); // the engine committed the saga, then crashed before the ack
    let again = inbound.next().await;
    assert!(matches!(again.message, Inbound::Start { saga_id: Some(again_id), .. } if again_id == id), "{:?}", again.message);
    again.ack.ack();
    transport.publish_start("trip", &body).await.expect("published again, as a new message");
    let other = inbound.next().await;
    assert!(matches!(other.message, Inbound::Start { saga_id: Some(other_id), .. } if other_id != id), "a new message is a new start");
    other.ack.ack();
    inbound.stop().await;
}

/// The orchestrators' consumers never give up on a message: a failure
/// that passes is redelivered until it succeeds, one that never will is
/// kept as poison by the engine. Before: after 20 deliveries the broker
/// dropped the message without a record.
#[tokio::test]
async fn the_orchestrators_consumers_redeliver_without_limit() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let inbound = Runner::start(&transport, Sink::default());
    let consumer = transport.orchestrator_consumer(StreamKind::Replies);
    let state = crate::support::eventually!("the replies consumer", transport.consumer_state(StreamKind::Replies, &consumer).await.ok());
    assert_eq!(state.max_deliver, -1);
    inbound.stop().await;
}

#[tokio::test]
async fn garbage_replies_are_poison_and_do_not_block_the_consumer() {
    // The streams take the default 1 MiB; this orchestrator's own limit is
    // 4 KiB (attached, so the streams keep theirs): a message the broker
    // took but the orchestrator will not is poison too.
    let broker = Broker::new();
    let transport = broker.connect().await;
    let strict = JetStreamTransport::attach(JetStreamConfig { message_bytes_max: 4_096, ..broker.config.clone() }).await.expect("attach");
    let sink = Sink::default();
    let mut inbound = Runner::start(&strict, sink.clone());
    let on_x = broker.subjects().reply("x");
    let mut oversize = reply_bytes(&saga_id(4).to_string());
    oversize.extend(std::iter::repeat_n(b' ', 5_000));
    let garbage: [(&str, Vec<u8>, &str); 4] = [
        (&on_x, b"not json".to_vec(), "not valid JSON"),
        (&on_x, reply_bytes("not-a-uuid"), "not a UUID"),
        (&on_x, oversize, "limit"),
        (&broker.subjects().reply("BAD"), reply_bytes(&saga_id(4).to_string()), "BAD"),
    ];
    for (subject, bytes, _) in &garbage {
        transport.publish_raw(subject, bytes.clone()).await.expect("published");
    }
    transport.reply("x", &reply(saga_id(4), 1), None).await.expect("published");

    let valid = inbound.next().await;
    assert!(matches!(valid.message, Inbound::Reply { saga_id, .. } if saga_id == self::saga_id(4)), "{:?}", valid.message);
    valid.ack.ack();
    let kept = sink.kept();
    assert_eq!(kept.len(), garbage.len(), "every poison message reached the sink before the next message: {kept:?}");
    for ((subject, bytes, why), (kept_subject, reason, kept_len)) in garbage.iter().zip(&kept) {
        assert_eq!((kept_subject.as_str(), *kept_len), (*subject, bytes.len()));
        assert!(reason.contains(why), "expected {why:?} in {reason:?}");
    }
    inbound.nothing_for(Duration::from_millis(500)).await;
    inbound.stop().await;
}

#[tokio::test]
async fn the_streams_refuse_a_message_over_the_size_limit_and_say_how_large() {
    let broker = Broker::with(|c| c.message_bytes_max = 4_096);
    let transport = broker.connect().await;
    let state = transport.stream_state(StreamKind::Replies).await.expect("stream");
    assert_eq!(state.max_message_size, 4_096);
    assert_eq!((state.max_age, state.max_bytes), (jetsaga::transport::jetstream::STREAM_MAX_AGE_DEFAULT, infra::STREAM_MAX_BYTES));
    let refused = transport.publish_raw(&broker.subjects().reply("x"), vec![b' '; 5_000]).await;
    assert!(matches!(refused, Err(TransportError::TooLarge { bytes: 5_000, max: 4_096 })), "{refused:?}");
}

#[tokio::test]
async fn an_event_over_the_server_max_payload_is_too_large_at_once() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let max = transport.payload_max();
    let body = vec![b' '; max + 1];
    let result = EventSink::publish(&transport, "trip", saga_id(9), 1, body).await;
    assert!(matches!(result, Err(TransportError::TooLarge { bytes, max: m }) if bytes == max + 1 && m == max), "{result:?}");
}

#[tokio::test]
async fn a_start_arrives_as_inbound_start_and_a_bad_one_is_poison() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let sink = Sink::default();
    let mut inbound = Runner::start(&transport, sink.clone());
    transport.publish_raw(&broker.subjects().start("trip"), br#"{"saga_id": 7}"#.to_vec()).await.expect("published");
    let id = saga_id(5);
    let body = StartBody { saga_id: Some(id.to_string()), input: json!({"city": "Lisbon"}), key: None, version: None };
    transport.publish_start("trip_booking", &body).await.expect("published");

    let delivery = inbound.next().await;
    let expected = Inbound::Start {
        saga_type: "trip_booking".to_owned(),
        saga_id: Some(id),
        input: json!({"city": "Lisbon"}),
        key: None,
        version: None,
    };
    assert_eq!(delivery.message, expected);
    delivery.ack.ack();
    let kept = sink.kept();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].0, broker.subjects().start("trip"));
    inbound.stop().await;
}

#[tokio::test]
async fn two_runners_on_one_durable_consumer_share_the_messages() {
    const MESSAGES: u32 = 40;
    let broker = Broker::new();
    let (one, two) = (broker.connect().await, broker.connect().await);
    let mut first = Runner::start(&one, Sink::default());
    let mut second = Runner::start(&two, Sink::default());
    tokio::time::sleep(Duration::from_millis(500)).await; // both pull requests are waiting
    for attempt in 1..=MESSAGES {
        one.reply("hotels", &reply(saga_id(6), attempt), None).await.expect("published");
    }

    let mut seen: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    let mut total = 0;
    while total < MESSAGES {
        let (delivery, who) = tokio::select! {
            d = first.next() => (d, "first"),
            d = second.next() => (d, "second"),
        };
        let Inbound::Reply { reply, .. } = &delivery.message else { panic!("expected a reply: {:?}", delivery.message) };
        seen.entry(reply.attempt).or_default().push(who);
        delivery.ack.ack();
        total += 1;
    }
    first.nothing_for(Duration::from_millis(300)).await;
    second.nothing_for(Duration::from_millis(300)).await;
    assert_eq!(seen.len(), MESSAGES as usize, "every message arrived");
    assert!(seen.values().all(|runners| runners.len() == 1), "each message went to exactly one runner: {seen:?}");
    let by_first = seen.values().filter(|runners| runners[0] == "first").count();
    assert!(by_first > 0 && by_first < MESSAGES as usize, "both runners took a share ({by_first} of {MESSAGES} by the first)");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn an_event_lands_once_with_its_saga_id_and_seq_as_message_id() {
    let broker = Broker::new();
    let transport = broker.connect().await;
    let id = saga_id(7);
    let recorded = Recorded { seq: 3, at_ms: 1_767_225_600_123, event: SagaEvent::SagaCompleted {} };
    transport.publish_event("trip", &recorded, id).await.expect("published");
    transport.publish_event("trip", &recorded, id).await.expect("published again (a relay after a crash)");

    let stored = transport.stored_messages(StreamKind::Events).await.expect("readable");
    assert_eq!(stored.len(), 1, "one copy");
    assert_eq!(stored[0].subject, broker.subjects().event("trip", id));
    assert_eq!(stored[0].message_id.as_deref(), Some(wire::event_message_id(id, 3).as_str()));
    assert_eq!(stored[0].message_id, Some(format!("{id}:3")));
    let body: Value = serde_json::from_slice(&stored[0].payload).expect("json");
    assert_eq!((body["seq"].clone(), body["type"].clone(), body["saga_type"].clone()), (json!(3), json!("saga_completed"), json!("trip")));
}
