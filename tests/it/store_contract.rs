//! The event store contract: every test is written once, generic over
//! `S: EventStore`, and run against each backend by `contract_suite!`.
//! A new backend joins with one line at the bottom. SQLite-only and
//! PostgreSQL-only facts (durability across reopen, pragmas, the relay
//! across concurrent transactions) follow in their own modules.
//!
//! PostgreSQL is not optional: without a server at `DATABASE_URL` (default
//! [`DEFAULT_DATABASE_URL`]) the PostgreSQL tests fail, naming the URL and
//! `scripts/services`, which starts one. Each test works in a fresh schema.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jetsaga::definition::{Kind, StepName};
use jetsaga::saga::{OperatorVerb, Recorded, SagaEvent, SagaId, Status};
use jetsaga::store::{
    Append, AppendOutcome, CommittedEvent, DefinitionRecord, EventStore, ListFilter, MemoryStore, PoisonRecord, PostgresStore, RelayCursor,
    SagaSummary, SqliteStore, StoreError, PAGE_SIZE_MAX, POISON_PAYLOAD_BYTES_MAX,
};
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

// ---- fixtures ---------------------------------------------------------------

async fn memory_store() -> (MemoryStore, Option<TempDir>) {
    (MemoryStore::default(), None)
}

async fn sqlite_store() -> (SqliteStore, Option<TempDir>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jetsaga.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display())).await.expect("open sqlite");
    (store, Some(dir))
}

/// Where the PostgreSQL tests look when `DATABASE_URL` is not set.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// PostgreSQL tests at once: each pool may open up to 16 connections, and
/// the server allows 100 by default.
const PG_TESTS_AT_ONCE: usize = 4;
/// How long a test waits for the relay feed to catch up: other sessions'
/// open transactions (other tests, other schemas) hold it back a moment.
const FEED_WAIT_MS: u64 = 20_000;

static PG_SCHEMAS: AtomicU32 = AtomicU32::new(0);
static PG_SLOTS: Semaphore = Semaphore::const_new(PG_TESTS_AT_ONCE);
static PG_SWEPT: OnceCell<()> = OnceCell::const_new();

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A PostgreSQL store in a schema of its own, `jetsaga_test_<pid>_<n>`,
/// and the slot that keeps the number of pools at once bounded.
async fn postgres_store_in_schema() -> (PostgresStore, String, SemaphorePermit<'static>) {
    let url = database_url();
    let slot = PG_SLOTS.acquire().await.expect("the semaphore is never closed");
    PG_SWEPT.get_or_init(|| sweep_dead_schemas(&url)).await;
    let schema = format!("jetsaga_test_{}_{}", std::process::id(), PG_SCHEMAS.fetch_add(1, Ordering::Relaxed));
    match PostgresStore::connect_schema(&url, &schema).await {
        Ok(store) => (store, schema, slot),
        Err(error) => panic!(
            "PostgreSQL is required for the store contract tests and is not usable at {url} ({error}); \
             run scripts/services (as root) to start it, or set DATABASE_URL"
        ),
    }
}

/// Drops the schemas earlier test runs left behind, once per run: only
/// those whose process (`jetsaga_test_<pid>_…`) is gone, so a concurrent
/// run keeps its own. Best effort: an unreachable server fails the test
/// that follows, with the message above.
async fn sweep_dead_schemas(url: &str) {
    use sqlx::{Connection, PgConnection};
    let Ok(mut conn) = PgConnection::connect(url).await else { return };
    let schemas: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'jetsaga\\_test\\_%'")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    for schema in schemas {
        let pid = schema.trim_start_matches("jetsaga_test_").split('_').next().unwrap_or_default();
        let plain = !pid.is_empty() && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut conn).await;
        }
    }
}

async fn postgres_store() -> (PostgresStore, SemaphorePermit<'static>) {
    let (store, _schema, slot) = postgres_store_in_schema().await;
    (store, slot)
}

fn id(n: u128) -> SagaId {
    SagaId::from_u128(n)
}

fn step(name: &str) -> StepName {
    StepName::parse(name).expect("step name")
}

fn started() -> SagaEvent {
    SagaEvent::SagaStarted { saga_type: "trip".into(), version: 1, definition_hash: "ab12".into(), input: json!({"who": "ada"}), key: None }
}

/// One of every event type, in a plausible order.
fn every_event() -> Vec<SagaEvent> {
    let s = step("reserve_hotel");
    vec![
        started(),
        SagaEvent::CommandSent { step: s.clone(), kind: Kind::Action, attempt: 1, deadline_ms: 1_010 },
        SagaEvent::AttemptTimedOut { step: s.clone(), kind: Kind::Action, attempt: 1 },
        SagaEvent::RetryScheduled { step: s.clone(), kind: Kind::Action, attempt: 2, due_ms: 1_200 },
        SagaEvent::StepSucceeded { step: s.clone(), kind: Kind::Action, attempt: 2, output: json!({"room": 12}) },
        SagaEvent::StepFailed { step: s.clone(), kind: Kind::Action, attempt: 1, error: Some("no rooms".into()) },
        SagaEvent::CompensationStarted { reason: "hotel failed".into(), keep_in_flight: true },
        SagaEvent::StepSkipped { step: step("rent_car") },
        SagaEvent::HeartbeatRecorded { step: s.clone(), kind: Kind::Compensation, attempt: 1, deadline_ms: 1_500 },
        SagaEvent::AttemptsExhausted { step: s.clone(), kind: Kind::Compensation },
        SagaEvent::SagaDeadlinePassed {},
        SagaEvent::AttemptFailed { step: s.clone(), kind: Kind::Compensation, attempt: 1, error: None },
        SagaEvent::SagaStuck { step: s, kind: Kind::Compensation, reason: "attempts ran out".into() },
        SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: "fixed".into() },
        SagaEvent::InputIgnored { input: "reply".into(), reason: "late".into() },
        SagaEvent::SagaCompensated {},
        SagaEvent::SagaAborted { reason: "gave up".into() },
        SagaEvent::SagaCompleted {},
    ]
}

fn recorded(from_seq: u64, events: Vec<SagaEvent>) -> Vec<Recorded> {
    events.into_iter().zip(from_seq..).map(|(event, seq)| Recorded { seq, at_ms: 1_000 + seq as i64, event }).collect()
}

fn summary(saga_id: SagaId, status: Status, last_seq: u64) -> SagaSummary {
    SagaSummary {
        saga_id,
        saga_type: "trip".into(),
        version: 1,
        status,
        current_step: Some("reserve_hotel".into()),
        started_at_ms: 1_000,
        updated_at_ms: 1_000 + last_seq as i64,
        last_seq,
        deadline_ms: None,
        key: None,
    }
}

/// Appends `count` events (started, then ignored inputs) after `expected_seq`.
fn append(saga_id: SagaId, expected_seq: u64, count: u64) -> Append {
    let events = (0..count)
        .map(
            |i| if expected_seq + i == 0 { started() } else { SagaEvent::InputIgnored { input: format!("in {i}"), reason: "test".into() } },
        )
        .collect();
    Append {
        saga_id,
        expected_seq,
        events: recorded(expected_seq + 1, events),
        summary: summary(saga_id, Status::Running, expected_seq + count),
    }
}

async fn append_ok<S: EventStore>(store: &S, batch: Vec<Append>) {
    let outcomes = store.append(&batch).await.expect("append");
    assert_eq!(outcomes, vec![AppendOutcome::Committed; batch.len()]);
}

fn seqs(log: &[Recorded]) -> Vec<u64> {
    log.iter().map(|r| r.seq).collect()
}

// ---- the contract -------------------------------------------------------------

async fn round_trips_every_event_type<S: EventStore>(store: S) {
    let events = recorded(1, every_event());
    let last = events.len() as u64;
    let batch = Append { saga_id: id(1), expected_seq: 0, events: events.clone(), summary: summary(id(1), Status::Running, last) };
    append_ok(&store, vec![batch]).await;
    assert_eq!(store.load(id(1), None).await.unwrap(), events);
}

async fn loads_up_to_seq<S: EventStore>(store: S) {
    append_ok(&store, vec![append(id(1), 0, 5)]).await;
    assert_eq!(seqs(&store.load(id(1), Some(3)).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(&store.load(id(1), Some(0)).await.unwrap()), Vec::<u64>::new());
    assert_eq!(seqs(&store.load(id(1), Some(u64::MAX)).await.unwrap()), vec![1, 2, 3, 4, 5]);
}

async fn unknown_saga_is_empty<S: EventStore>(store: S) {
    assert!(store.load(id(404), None).await.unwrap().is_empty());
    assert_eq!(store.summary(id(404)).await.unwrap(), None);
}

async fn empty_batch_commits_nothing<S: EventStore>(store: S) {
    assert_eq!(store.append(&[]).await.unwrap(), vec![]);
}

async fn stale_expected_seq_conflicts_alone<S: EventStore>(store: S) {
    append_ok(&store, vec![append(id(1), 0, 3), append(id(2), 0, 1)]).await;
    let outcomes = store.append(&[append(id(1), 1, 1), append(id(2), 1, 2), append(id(3), 0, 1)]).await.unwrap();
    assert_eq!(outcomes, vec![AppendOutcome::Conflict { actual_seq: 3 }, AppendOutcome::Committed, AppendOutcome::Committed]);
    assert_eq!(seqs(&store.load(id(1), None).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(&store.load(id(2), None).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(&store.load(id(3), None).await.unwrap()), vec![1]);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().last_seq, 3);
}

async fn new_saga_twice_conflicts<S: EventStore>(store: S) {
    append_ok(&store, vec![append(id(1), 0, 2)]).await;
    assert_eq!(store.append(&[append(id(1), 0, 1)]).await.unwrap(), vec![AppendOutcome::Conflict { actual_seq: 2 }]);
    assert_eq!(seqs(&store.load(id(1), None).await.unwrap()), vec![1, 2]);
}

async fn one_batch_may_append_to_a_saga_twice<S: EventStore>(store: S) {
    let outcomes = store.append(&[append(id(1), 0, 2), append(id(1), 2, 1), append(id(1), 2, 1)]).await.unwrap();
    assert_eq!(outcomes, vec![AppendOutcome::Committed, AppendOutcome::Committed, AppendOutcome::Conflict { actual_seq: 3 }]);
    assert_eq!(seqs(&store.load(id(1), None).await.unwrap()), vec![1, 2, 3]);
}

async fn malformed_append_is_an_error_and_commits_nothing<S: EventStore>(store: S) {
    let mut gap = append(id(1), 0, 3);
    gap.events[2].seq = 4;
    let mut wrong_summary = append(id(2), 0, 1);
    wrong_summary.summary.last_seq = 7;
    for bad in [gap, wrong_summary] {
        let result = store.append(&[append(id(3), 0, 1), bad]).await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    }
    for n in 1..=3 {
        assert!(store.load(id(n), None).await.unwrap().is_empty());
    }
}

async fn concurrent_appends_one_wins_per_seq<S: EventStore>(store: S) {
    let store = Arc::new(store);
    append_ok(&*store, vec![append(id(1), 0, 1)]).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(&[append(id(1), 1, 2)]).await })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap().unwrap().as_slice() {
            [AppendOutcome::Committed] => committed += 1,
            [AppendOutcome::Conflict { actual_seq: 3 }] => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(committed, 1);
    assert_eq!(seqs(&store.load(id(1), None).await.unwrap()), vec![1, 2, 3]);
}

/// Two engines starting the same saga at once: no row to lock yet, so the
/// (saga_id, seq) uniqueness decides, and the loser sees a conflict.
async fn concurrent_creators_of_one_saga_one_wins<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(&[append(id(1), 0, 2), append(id(2), 0, 1)]).await })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap().unwrap().as_slice() {
            [AppendOutcome::Committed, AppendOutcome::Committed] => committed += 1,
            [AppendOutcome::Conflict { actual_seq: 2 }, AppendOutcome::Conflict { actual_seq: 1 }] => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(committed, 1);
    assert_eq!(seqs(&store.load(id(1), None).await.unwrap()), vec![1, 2]);
    assert_eq!(store.summary(id(2)).await.unwrap().map(|s| s.last_seq), Some(1));
}

/// A new saga's append with business key `key` (SPEC §7).
fn keyed(saga_id: SagaId, key: &str) -> Append {
    let mut new = append(saga_id, 0, 1);
    new.summary.key = Some(key.to_owned());
    new
}

async fn a_taken_key_conflicts_and_is_found<S: EventStore>(store: S) {
    append_ok(&store, vec![keyed(id(1), "order-1"), append(id(2), 0, 1)]).await;
    // Another saga with the same (type, key): not written, a conflict; the others of the batch commit.
    let outcomes = store.append(&[keyed(id(3), "order-1"), keyed(id(4), "order-2")]).await.expect("append");
    assert_eq!(outcomes, vec![AppendOutcome::Conflict { actual_seq: 0 }, AppendOutcome::Committed]);
    assert!(store.load(id(3), None).await.unwrap().is_empty(), "nothing of the refused saga is stored");
    assert_eq!(store.summary(id(3)).await.unwrap(), None);
    // The same key under another saga type is free.
    let mut other_type = keyed(id(5), "order-1");
    other_type.summary.saga_type = "other".into();
    append_ok(&store, vec![other_type]).await;
    // Two new sagas of one batch with the same key: the first in id order wins.
    let outcomes = store.append(&[keyed(id(6), "order-3"), keyed(id(7), "order-3")]).await.expect("append");
    assert_eq!(outcomes.iter().filter(|o| **o == AppendOutcome::Committed).count(), 1, "{outcomes:?}");
    // A later append to a keyed saga keeps its key.
    let mut next = append(id(1), 1, 1);
    next.summary.key = None;
    append_ok(&store, vec![next]).await;
    assert_eq!(store.summary(id(1)).await.unwrap().and_then(|s| s.key), Some("order-1".to_owned()));
    assert_eq!(store.summary(id(2)).await.unwrap().and_then(|s| s.key), None);

    let pairs = [("trip", "order-1"), ("trip", "order-2"), ("other", "order-1"), ("trip", "nobody")];
    let wanted: Vec<(String, String)> = pairs.iter().map(|(t, k)| (t.to_string(), k.to_string())).collect();
    let found = store.sagas_by_key(&wanted).await.expect("lookup");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found.get(&("trip".to_owned(), "order-1".to_owned())), Some(&id(1)));
    assert_eq!(found.get(&("trip".to_owned(), "order-2".to_owned())), Some(&id(4)));
    assert_eq!(found.get(&("other".to_owned(), "order-1".to_owned())), Some(&id(5)));

    let filter = ListFilter { saga_type: Some("trip".into()), key: Some("order-2".into()), ..ListFilter::default() };
    let page = store.list(&filter, None, 10).await.expect("list");
    assert_eq!(page.sagas.iter().map(|s| (s.saga_id, s.key.clone())).collect::<Vec<_>>(), [(id(4), Some("order-2".to_owned()))]);
}

async fn concurrent_creators_of_one_key_one_wins<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(&[keyed(id(100 + n), "order-9")]).await })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap().unwrap().as_slice() {
            [AppendOutcome::Committed] => committed += 1,
            [AppendOutcome::Conflict { actual_seq: 0 }] => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(committed, 1, "one saga per (type, key)");
    let filter = ListFilter { key: Some("order-9".into()), ..ListFilter::default() };
    assert_eq!(store.list(&filter, None, 10).await.expect("list").sagas.len(), 1);
}

async fn concurrent_writers_that_retry_keep_the_log_contiguous<S: EventStore>(store: S) {
    let store = Arc::new(store);
    append_ok(&*store, vec![append(id(1), 0, 1)]).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..5 {
                    loop {
                        let last = store.load(id(1), None).await.unwrap().last().map_or(0, |r| r.seq);
                        if store.append(&[append(id(1), last, 1)]).await.unwrap() == [AppendOutcome::Committed] {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(seqs(&store.load(id(1), None).await.unwrap()), (1..=101).collect::<Vec<_>>());
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().last_seq, 101);
}

async fn group_commits_a_hundred_sagas<S: EventStore>(store: S) {
    let outcomes = store.append(&(1..=100).map(|n| append(id(n), 0, 3)).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(outcomes, vec![AppendOutcome::Committed; 100]);
    for n in 1..=100 {
        assert_eq!(seqs(&store.load(id(n), None).await.unwrap()), vec![1, 2, 3]);
    }
    assert_eq!(store.list(&ListFilter::default(), None, 200).await.unwrap().sagas.len(), 100);
}

/// A group commit of many sagas, every third one stale: those conflict
/// alone, with their actual seq, none of their events is written, and the
/// others commit whole, in the relay's order.
async fn a_group_commit_writes_every_saga_but_the_stale_ones<S: EventStore>(store: S) {
    append_ok(&store, (1..=300).map(|n| append(id(n), 0, 2)).collect()).await;
    let stale = |n: u128| n % 3 == 0;
    let batch: Vec<Append> =
        (1..=300).map(|n| if stale(n) { append(id(n), 1, 2) } else { append(id(n), 2, 2) }).chain([append(id(301), 0, 3)]).collect();
    let outcomes = store.append(&batch).await.unwrap();
    for (n, outcome) in (1..=301).zip(&outcomes) {
        let want = if n <= 300 && stale(n) { AppendOutcome::Conflict { actual_seq: 2 } } else { AppendOutcome::Committed };
        assert_eq!(*outcome, want, "saga {n}");
    }
    for n in 1..=300 {
        let log = store.load(id(n), None).await.unwrap();
        let last = if stale(n) { 2 } else { 4 };
        assert_eq!(seqs(&log), (1..=last).collect::<Vec<_>>(), "saga {n}");
        assert_eq!(store.summary(id(n)).await.unwrap().map(|s| s.last_seq), Some(last), "saga {n}");
    }
    let (mut cursor, mut last_seq) = (RelayCursor::default(), std::collections::HashMap::new());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(FEED_WAIT_MS);
    while last_seq.values().sum::<u64>() < 300 * 2 + 200 * 2 + 3 {
        assert!(tokio::time::Instant::now() < deadline, "the feed did not catch up within {FEED_WAIT_MS} ms");
        let events = store.committed_after(cursor, PAGE_SIZE_MAX).await.unwrap();
        for event in &events {
            let before = last_seq.insert(event.saga_id, event.recorded.seq).unwrap_or(0);
            assert_eq!(event.recorded.seq, before + 1, "the relay sees saga {}'s events in seq order", event.saga_id);
        }
        match events.last() {
            Some(last) => cursor = last.cursor,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(last_seq.len(), 301);
}

/// `load_many` reads what `load` reads, for many sagas at once.
async fn load_many_reads_every_log_at_once<S: EventStore>(store: S) {
    append_ok(&store, vec![append(id(1), 0, 3), append(id(2), 0, 1)]).await;
    append_ok(&store, (10..1_300).map(|n| append(id(n), 0, 2)).collect()).await;
    let logs = store.load_many(&[id(2), id(1), id(3)]).await.unwrap();
    assert_eq!(logs.len(), 2, "no entry for a saga without a log");
    assert_eq!(logs[&id(1)], store.load(id(1), None).await.unwrap());
    assert_eq!(seqs(&logs[&id(2)]), vec![1]);
    let many: Vec<SagaId> = (10..1_300).map(id).collect();
    let logs = store.load_many(&many).await.unwrap();
    assert_eq!(logs.len(), many.len(), "more sagas than one statement names");
    assert!(many.iter().all(|n| seqs(&logs[n]) == vec![1, 2]));
    assert!(store.load_many(&[]).await.unwrap().is_empty());
}

/// Recovery's pages: the sagas of one status after a cursor, in id order,
/// each with its whole log.
async fn logs_in_status_pages_through_one_status<S: EventStore>(store: S) {
    seed_for_filters(&store).await;
    append_ok(
        &store,
        vec![{
            let mut more = append(id(1), 1, 2);
            more.summary.status = Status::Running;
            more
        }],
    )
    .await;
    let stuck = store.logs_in_status(Status::Stuck, None, 10).await.unwrap();
    assert_eq!(stuck.iter().map(|(id, _)| id.as_uuid().as_u128()).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(stuck[0].1, store.load(id(2), None).await.unwrap());
    let first = store.logs_in_status(Status::Running, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].0, seqs(&first[0].1)), (id(1), vec![1, 2, 3]));
    assert!(store.logs_in_status(Status::Running, Some(id(1)), 1).await.unwrap().is_empty());
    assert_eq!(store.logs_in_status(Status::Stuck, Some(id(2)), 10).await.unwrap().len(), 1);
}

async fn summary_follows_each_append<S: EventStore>(store: S) {
    append_ok(&store, vec![append(id(1), 0, 2)]).await;
    assert_eq!(store.summary(id(1)).await.unwrap(), Some(summary(id(1), Status::Running, 2)));
    let mut done = append(id(1), 2, 1);
    done.summary.status = Status::Completed;
    done.summary.current_step = None;
    append_ok(&store, vec![done.clone()]).await;
    assert_eq!(store.summary(id(1)).await.unwrap(), Some(done.summary));
}

/// Six sagas, ids 1..=6: (status, type, started_at_ms, updated_at_ms).
async fn seed_for_filters<S: EventStore>(store: &S) {
    let rows = [
        (Status::Running, "trip", 100, 150),
        (Status::Stuck, "trip", 200, 250),
        (Status::Completed, "order", 300, 350),
        (Status::Stuck, "order", 400, 450),
        (Status::Compensating, "trip", 500, 550),
        (Status::Aborted, "order", 600, 650),
    ];
    let batch = rows
        .iter()
        .zip(1..)
        .map(|(&(status, saga_type, started_at_ms, updated_at_ms), n)| {
            let mut a = append(id(n), 0, 1);
            a.summary = SagaSummary { status, saga_type: saga_type.into(), started_at_ms, updated_at_ms, ..a.summary };
            a
        })
        .collect();
    append_ok(store, batch).await;
}

async fn list_ids<S: EventStore>(store: &S, filter: ListFilter) -> Vec<u128> {
    let page = store.list(&filter, None, PAGE_SIZE_MAX).await.unwrap();
    assert_eq!(page.next_cursor, None);
    page.sagas.iter().map(|s| s.saga_id.as_uuid().as_u128()).collect()
}

async fn list_filters_narrow<S: EventStore>(store: S) {
    seed_for_filters(&store).await;
    let all = ListFilter::default();
    assert_eq!(list_ids(&store, all.clone()).await, vec![1, 2, 3, 4, 5, 6]);
    let stuck = ListFilter { statuses: vec![Status::Stuck], ..all.clone() };
    assert_eq!(list_ids(&store, stuck).await, vec![2, 4]);
    let any_of = ListFilter { statuses: vec![Status::Running, Status::Aborted], ..all.clone() };
    assert_eq!(list_ids(&store, any_of).await, vec![1, 6]);
    let orders = ListFilter { saga_type: Some("order".into()), ..all.clone() };
    assert_eq!(list_ids(&store, orders).await, vec![3, 4, 6]);
    let stuck_for = ListFilter { updated_before_ms: Some(450), ..all.clone() };
    assert_eq!(list_ids(&store, stuck_for).await, vec![1, 2, 3, 4]);
    let from = ListFilter { started_from_ms: Some(400), ..all.clone() };
    assert_eq!(list_ids(&store, from).await, vec![4, 5, 6]);
    let until = ListFilter { started_until_ms: Some(300), ..all.clone() };
    assert_eq!(list_ids(&store, until).await, vec![1, 2]);
    let combined = ListFilter {
        statuses: vec![Status::Stuck, Status::Running],
        saga_type: Some("trip".into()),
        updated_before_ms: Some(250),
        started_from_ms: Some(150),
        started_until_ms: Some(600),
        key: None,
    };
    assert_eq!(list_ids(&store, combined).await, vec![2]);
    let none = ListFilter { saga_type: Some("nothing".into()), ..all };
    assert_eq!(list_ids(&store, none).await, Vec::<u128>::new());
}

async fn count_by_status_counts_the_statuses_asked_for<S: EventStore>(store: S) {
    assert_eq!(store.count_by_status(&[Status::Stuck]).await.unwrap(), vec![(Status::Stuck, 0)]);
    seed_for_filters(&store).await;
    let asked = [Status::Stuck, Status::Running, Status::Compensating, Status::Compensated];
    let counts = store.count_by_status(&asked).await.unwrap();
    assert_eq!(counts, vec![(Status::Stuck, 2), (Status::Running, 1), (Status::Compensating, 1), (Status::Compensated, 0)]);
    assert_eq!(store.count_by_status(&[]).await.unwrap(), vec![]);
    // A status change moves the saga from one count to the other.
    let mut done = append(id(1), 1, 1);
    done.summary.status = Status::Completed;
    append_ok(&store, vec![done]).await;
    let counts = store.count_by_status(&[Status::Running, Status::Completed]).await.unwrap();
    assert_eq!(counts, vec![(Status::Running, 0), (Status::Completed, 2)]);
}

async fn cursor_walks_every_saga_once_in_order<S: EventStore>(store: S) {
    // Ids out of insertion order, spread over the whole UUID space.
    let mut ids: Vec<SagaId> = (1..=50u128).map(|n| id(n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))).collect();
    store.append(&ids.iter().map(|&i| append(i, 0, 1)).collect::<Vec<_>>()).await.unwrap();
    ids.sort();
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = store.list(&ListFilter::default(), cursor, 7).await.unwrap();
        assert!(page.sagas.len() <= 7);
        seen.extend(page.sagas.iter().map(|s| s.saga_id));
        pages += 1;
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.sagas.len(), 7);
                assert_eq!(Some(next), page.sagas.last().map(|s| s.saga_id));
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 8);
    // A page that ends exactly on the last saga says so.
    let exact = store.list(&ListFilter::default(), Some(ids[42]), 7).await.unwrap();
    assert_eq!((exact.sagas.len(), exact.next_cursor), (7, None));
    let past_end = store.list(&ListFilter::default(), Some(ids[49]), 7).await.unwrap();
    assert_eq!((past_end.sagas.len(), past_end.next_cursor), (0, None));
}

async fn limit_is_clamped<S: EventStore>(store: S) {
    let count = u128::from(PAGE_SIZE_MAX) + 20;
    store.append(&(1..=count).map(|n| append(id(n), 0, 1)).collect::<Vec<_>>()).await.unwrap();
    let page = store.list(&ListFilter::default(), None, u32::MAX).await.unwrap();
    assert_eq!(page.sagas.len(), PAGE_SIZE_MAX as usize);
    assert_eq!(page.next_cursor, Some(id(u128::from(PAGE_SIZE_MAX))));
    let rest = store.list(&ListFilter::default(), page.next_cursor, u32::MAX).await.unwrap();
    assert_eq!((rest.sagas.len(), rest.next_cursor), (20, None));
    let zero = store.list(&ListFilter::default(), None, 0).await.unwrap();
    assert_eq!((zero.sagas.len(), zero.next_cursor), (1, Some(id(1))));
}

async fn definitions_are_recorded_once<S: EventStore>(store: S) {
    let v1 = DefinitionRecord { name: "trip".into(), version: 1, content_hash: "aaa".into(), source: "name = \"trip\"".into() };
    assert_eq!(store.load_definition("trip", 1).await.unwrap(), None);
    store.record_definition(&v1).await.unwrap();
    store.record_definition(&v1).await.unwrap();
    assert_eq!(store.load_definition("trip", 1).await.unwrap(), Some(v1.clone()));
    let changed = DefinitionRecord { content_hash: "bbb".into(), source: "changed".into(), ..v1.clone() };
    match store.record_definition(&changed).await {
        Err(StoreError::DefinitionChanged { name, version, recorded }) => {
            assert_eq!((name.as_str(), version, recorded.as_str()), ("trip", 1, "aaa"))
        }
        other => panic!("expected DefinitionChanged, got {other:?}"),
    }
    assert_eq!(store.load_definition("trip", 1).await.unwrap(), Some(v1));
    let v2 = DefinitionRecord { version: 2, ..changed };
    store.record_definition(&v2).await.unwrap();
    assert_eq!(store.load_definition("trip", 2).await.unwrap(), Some(v2));
    assert_eq!(store.load_definition("other", 1).await.unwrap(), None);
}

// ---- deadlines, poison, the relay feed -------------------------------------

/// Reads what a store kept of the poison messages (an inherent method on
/// each store: the port only writes them).
trait PoisonKept {
    fn kept(&self) -> impl Future<Output = Vec<PoisonRecord>>;
}

macro_rules! poison_kept {
    ($($store:ty),*) => {$(
        impl PoisonKept for $store {
            async fn kept(&self) -> Vec<PoisonRecord> {
                self.poison(PAGE_SIZE_MAX).await.expect("read poison")
            }
        }
    )*};
}
poison_kept!(MemoryStore, SqliteStore, PostgresStore);

/// A new saga (one event) with this deadline.
fn with_deadline(saga_id: SagaId, expected_seq: u64, deadline_ms: Option<i64>) -> Append {
    let mut a = append(saga_id, expected_seq, 1);
    a.summary.deadline_ms = deadline_ms;
    a
}

fn ns(ids: &[SagaId]) -> Vec<u128> {
    ids.iter().map(|i| i.as_uuid().as_u128()).collect()
}

async fn claim_due_takes_due_unclaimed_sagas_oldest_first<S: EventStore>(store: S) {
    let batch = vec![with_deadline(id(1), 0, Some(100)), with_deadline(id(2), 0, Some(50)), with_deadline(id(3), 0, Some(500))];
    append_ok(&store, [batch, vec![with_deadline(id(4), 0, None)]].concat()).await;
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().deadline_ms, Some(100));
    assert_eq!(store.summary(id(4)).await.unwrap().unwrap().deadline_ms, None);
    assert_eq!(ns(&store.claim_due(49, 1_000, 10).await.unwrap()), Vec::<u128>::new(), "nothing due yet");
    assert_eq!(ns(&store.claim_due(100, 1_000, 10).await.unwrap()), vec![2, 1], "due at or before now, oldest deadline first");
    assert_eq!(ns(&store.claim_due(600, 1_000, 10).await.unwrap()), vec![3], "1 and 2 are claimed until 1100");
    assert_eq!(ns(&store.claim_due(1_100, 1_000, 10).await.unwrap()), Vec::<u128>::new(), "a claim holds up to its last ms");
    assert_eq!(ns(&store.claim_due(1_101, 1_000, 10).await.unwrap()), vec![2, 1], "the lease of 1 and 2 ran out");
}

async fn an_append_ends_a_claim<S: EventStore>(store: S) {
    append_ok(&store, vec![with_deadline(id(1), 0, Some(100)), with_deadline(id(2), 0, Some(100))]).await;
    assert_eq!(ns(&store.claim_due(200, 10_000, 10).await.unwrap()), vec![1, 2]);
    let mut next = append(id(1), 1, 1);
    next.summary.deadline_ms = Some(150);
    append_ok(&store, vec![next]).await;
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().deadline_ms, Some(150));
    assert_eq!(ns(&store.claim_due(300, 10_000, 10).await.unwrap()), vec![1], "2 is still claimed");
    let mut done = append(id(2), 1, 1);
    done.summary.deadline_ms = None;
    append_ok(&store, vec![done]).await;
    assert_eq!(ns(&store.claim_due(1_000_000, 10_000, 10).await.unwrap()), vec![1], "a saga without a deadline is never due");
}

async fn claim_due_limit_is_clamped<S: EventStore>(store: S) {
    let count = u128::from(PAGE_SIZE_MAX) + 5;
    append_ok(&store, (1..=count).map(|n| with_deadline(id(n), 0, Some(1_000 - n as i64))).collect()).await;
    assert_eq!(ns(&store.claim_due(1_000, 100, 0).await.unwrap()), vec![count], "0 means 1: the oldest deadline");
    assert_eq!(ns(&store.claim_due(1_000, 100, 2).await.unwrap()), vec![count - 1, count - 2]);
    assert_eq!(store.claim_due(1_000, 100, u32::MAX).await.unwrap().len(), PAGE_SIZE_MAX as usize);
    assert_eq!(store.claim_due(1_000, 100, u32::MAX).await.unwrap().len(), 2);
}

async fn concurrent_claimers_get_disjoint_sets<S: EventStore>(store: S) {
    let store = Arc::new(store);
    append_ok(&*store, (1..=60).map(|n| with_deadline(id(n), 0, Some(n as i64))).collect()).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_due(1_000, 60_000, 4).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        let ids = task.await.unwrap().unwrap();
        assert!(ids.len() <= 4);
        claimed.extend(ids);
    }
    let mut seen = BTreeSet::new();
    for saga in &claimed {
        assert!(seen.insert(*saga), "saga {saga} was claimed twice");
    }
    claimed.extend(store.claim_due(1_000, 60_000, PAGE_SIZE_MAX).await.unwrap());
    let all: BTreeSet<SagaId> = claimed.iter().copied().collect();
    assert_eq!((claimed.len(), all.len()), (60, 60), "every due saga claimed exactly once");
}

async fn poison_is_kept_with_its_payload_cut<S: EventStore + PoisonKept>(store: S) {
    let small =
        PoisonRecord { subject: "saga.reply.hotels".into(), reason: "bad json".into(), payload: b"{nope".to_vec(), received_at_ms: 7 };
    let huge = PoisonRecord {
        subject: "saga.start.trip".into(),
        reason: "too large".into(),
        payload: (0..POISON_PAYLOAD_BYTES_MAX + 10).map(|i| (i % 251) as u8).collect(),
        received_at_ms: 8,
    };
    store.record_poison(&small).await.unwrap();
    store.record_poison(&huge).await.unwrap();
    store.record_poison(&small).await.unwrap();
    let kept = store.kept().await;
    let cut = PoisonRecord { payload: huge.payload[..POISON_PAYLOAD_BYTES_MAX].to_vec(), ..huge };
    assert_eq!(kept, vec![small.clone(), cut, small]);
}

/// Polls the feed until it returns `want` events: another session's open
/// transaction (PostgreSQL) may hold it back for a moment.
async fn feed<S: EventStore>(store: &S, after: RelayCursor, limit: u32, want: usize) -> Vec<CommittedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(FEED_WAIT_MS);
    loop {
        let events = store.committed_after(after, limit).await.expect("committed_after");
        assert!(events.len() <= want, "expected {want} events, got {}: {events:?}", events.len());
        if events.len() == want || tokio::time::Instant::now() > deadline {
            assert_eq!(events.len(), want, "the feed did not catch up within {FEED_WAIT_MS} ms");
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn places(events: &[CommittedEvent]) -> Vec<(u128, u64)> {
    events.iter().map(|e| (e.saga_id.as_uuid().as_u128(), e.recorded.seq)).collect()
}

async fn committed_after_follows_commit_order<S: EventStore>(store: S) {
    assert!(store.committed_after(RelayCursor::default(), 10).await.unwrap().is_empty());
    append_ok(&store, vec![append(id(1), 0, 2), append(id(2), 0, 1)]).await;
    append_ok(&store, vec![append(id(1), 2, 1)]).await;
    let all = feed(&store, RelayCursor::default(), 100, 4).await;
    assert_eq!(places(&all), vec![(1, 1), (1, 2), (2, 1), (1, 3)]);
    assert!(all.windows(2).all(|pair| pair[0].cursor < pair[1].cursor), "cursors strictly increase");
    assert!(all.iter().all(|e| e.saga_type == "trip"));
    assert_eq!(all[0].recorded, store.load(id(1), Some(1)).await.unwrap()[0]);
    let first = feed(&store, RelayCursor::default(), 2, 2).await;
    assert_eq!(first, all[..2]);
    let rest = feed(&store, first[1].cursor, 2, 2).await;
    assert_eq!(rest, all[2..]);
    assert!(store.committed_after(all[3].cursor, 10).await.unwrap().is_empty());
    assert_eq!(feed(&store, RelayCursor::default(), 0, 1).await, all[..1], "limit 0 means 1");
}

async fn relay_checkpoints_round_trip<S: EventStore>(store: S) {
    assert_eq!(store.relay_checkpoint("events").await.unwrap(), RelayCursor::default());
    let cursor = RelayCursor { tx: 0, position: 42 };
    store.save_relay_checkpoint("events", cursor).await.unwrap();
    assert_eq!(store.relay_checkpoint("events").await.unwrap(), cursor);
    assert_eq!(store.relay_checkpoint("audit").await.unwrap(), RelayCursor::default());
    let later = RelayCursor { tx: 7, position: 43 };
    store.save_relay_checkpoint("events", later).await.unwrap();
    assert_eq!(store.relay_checkpoint("events").await.unwrap(), later);
}

async fn engine_leases_are_renewed_listed_and_forgotten<S: EventStore>(store: S) {
    store.heartbeat("engine-a", 1_000, 0).await.unwrap();
    store.heartbeat("engine-b", 2_000, 0).await.unwrap();
    store.heartbeat("engine-a", 3_000, 0).await.unwrap();
    let since = |ms| {
        let store = &store;
        async move { store.engines_since(ms).await.unwrap().into_iter().map(|l| (l.engine_id, l.heartbeat_ms)).collect::<Vec<_>>() }
    };
    assert_eq!(since(0).await, vec![("engine-a".to_owned(), 3_000), ("engine-b".to_owned(), 2_000)]);
    assert_eq!(since(2_500).await, vec![("engine-a".to_owned(), 3_000)]);
    // A heartbeat forgets leases heard from before its horizon.
    store.heartbeat("engine-c", 9_000, 2_500).await.unwrap();
    assert_eq!(since(0).await, vec![("engine-a".to_owned(), 3_000), ("engine-c".to_owned(), 9_000)]);
}

async fn retention_forgets_old_finished_sagas_and_old_poison<S: EventStore + PoisonKept>(store: S) {
    // Three sagas of one event (updated at 1_001): one running, one stuck, one completed; and a completed one updated later.
    let finished = |id: SagaId, status: Status, updated_at_ms: i64| {
        let mut a = append(id, 0, 1);
        a.summary.status = status;
        a.summary.updated_at_ms = updated_at_ms;
        a
    };
    let batch = vec![
        finished(id(1), Status::Running, 1_001),
        finished(id(2), Status::Stuck, 1_001),
        finished(id(3), Status::Completed, 1_001),
        finished(id(4), Status::Aborted, 9_000),
    ];
    append_ok(&store, batch).await;
    assert_eq!(store.forget_finished(5_000, 100).await.unwrap(), 1);
    assert!(store.load(id(3), None).await.unwrap().is_empty(), "the events went with the saga");
    assert_eq!(store.summary(id(3)).await.unwrap(), None);
    for kept in [id(1), id(2), id(4)] {
        assert!(store.summary(kept).await.unwrap().is_some(), "{kept} is kept");
        assert_eq!(store.load(kept, None).await.unwrap().len(), 1);
    }
    assert_eq!(store.forget_finished(10_000, 100).await.unwrap(), 1, "a finished saga goes once past its horizon");
    assert_eq!(store.forget_finished(10_000, 100).await.unwrap(), 0);
    for at in [10, 20, 30] {
        let poison = PoisonRecord { subject: "s".into(), reason: "r".into(), payload: vec![1], received_at_ms: at };
        store.record_poison(&poison).await.unwrap();
    }
    assert_eq!(store.forget_poison(25, 1).await.unwrap(), 1, "a chunk at a time");
    assert_eq!(store.forget_poison(25, 100).await.unwrap(), 1);
    assert_eq!(store.kept().await.iter().map(|p| p.received_at_ms).collect::<Vec<_>>(), vec![30]);
}

/// One module per backend, one `#[tokio::test]` per contract test.
macro_rules! contract_suite {
    ($backend:ident, $make:path) => {
        mod $backend {
            contract_suite!(@tests $make;
                round_trips_every_event_type, loads_up_to_seq, unknown_saga_is_empty, empty_batch_commits_nothing,
                stale_expected_seq_conflicts_alone, new_saga_twice_conflicts, one_batch_may_append_to_a_saga_twice, malformed_append_is_an_error_and_commits_nothing,
                concurrent_appends_one_wins_per_seq, concurrent_creators_of_one_saga_one_wins, concurrent_writers_that_retry_keep_the_log_contiguous,
                a_taken_key_conflicts_and_is_found, concurrent_creators_of_one_key_one_wins,
                group_commits_a_hundred_sagas, a_group_commit_writes_every_saga_but_the_stale_ones, load_many_reads_every_log_at_once,
                logs_in_status_pages_through_one_status, summary_follows_each_append, list_filters_narrow, count_by_status_counts_the_statuses_asked_for,
                cursor_walks_every_saga_once_in_order, limit_is_clamped, definitions_are_recorded_once,
                claim_due_takes_due_unclaimed_sagas_oldest_first, an_append_ends_a_claim, claim_due_limit_is_clamped,
                concurrent_claimers_get_disjoint_sets, poison_is_kept_with_its_payload_cut,
                committed_after_follows_commit_order, relay_checkpoints_round_trip, engine_leases_are_renewed_listed_and_forgotten,
                retention_forgets_old_finished_sagas_and_old_poison,
            );
        }
    };
    (@tests $make:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let (store, _dir) = $make().await;
                super::$test(store).await;
            }
        )*
    };
}

contract_suite!(memory, super::memory_store);
contract_suite!(sqlite, super::sqlite_store);
contract_suite!(postgres, super::postgres_store);

// ---- SQLite only ----------------------------------------------------------------

mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("durable.db");
        let path = path.to_str().unwrap();
        let store = SqliteStore::open(path).await.unwrap();
        append_ok(&store, vec![append(id(1), 0, 4)]).await;
        let v1 = DefinitionRecord { name: "trip".into(), version: 1, content_hash: "aaa".into(), source: "s".into() };
        store.record_definition(&v1).await.unwrap();
        drop(store);
        let reopened = SqliteStore::open(&format!("sqlite:{path}")).await.unwrap();
        assert_eq!(seqs(&reopened.load(id(1), None).await.unwrap()), vec![1, 2, 3, 4]);
        assert_eq!(reopened.summary(id(1)).await.unwrap(), Some(summary(id(1), Status::Running, 4)));
        assert_eq!(reopened.load_definition("trip", 1).await.unwrap(), Some(v1));
        assert_eq!(reopened.append(&[append(id(1), 0, 1)]).await.unwrap(), vec![AppendOutcome::Conflict { actual_seq: 4 }]);
    }

    #[tokio::test]
    async fn pooled_connections_are_wal_and_synchronous_full() {
        let (store, _dir) = sqlite_store().await;
        let pragmas = store.pragmas().await.unwrap();
        assert_eq!(pragmas.journal_mode, "wal");
        assert_eq!(pragmas.synchronous, 2, "2 = FULL");
        assert!(pragmas.foreign_keys);
        assert_eq!(pragmas.busy_timeout_ms, 5_000);
    }

    #[tokio::test]
    async fn in_memory_database_is_shared_by_every_call() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        append_ok(&store, vec![append(id(1), 0, 2)]).await;
        let clone = store.clone();
        assert_eq!(seqs(&clone.load(id(1), None).await.unwrap()), vec![1, 2]);
        assert_eq!(clone.list(&ListFilter::default(), None, 10).await.unwrap().sagas.len(), 1);
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        assert!(matches!(SqliteStore::open(path.to_str().unwrap()).await, Err(StoreError::Database(_))));
    }
}

// ---- PostgreSQL only ------------------------------------------------------------

mod postgres_only {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, PgConnection};

    use super::*;

    /// Transaction A takes a position, then B takes a larger one and
    /// commits first. A relay reading in between must not hand on B (and
    /// checkpoint past A); once A commits, both follow the cursor, A first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_transaction_that_commits_later_with_a_smaller_position_is_not_skipped() {
        let (store, schema, _slot) = postgres_store_in_schema().await;
        append_ok(&store, vec![append(id(1), 0, 1)]).await;
        let before = feed(&store, RelayCursor::default(), 10, 1).await;
        let cursor = before[0].cursor;

        let options: PgConnectOptions = database_url().parse().expect("database url");
        let mut conn = PgConnection::connect_with(&options.options([("search_path", schema.as_str())])).await.expect("connect");
        let mut a = conn.begin().await.expect("begin");
        let (event_type, data) = jetsaga::saga::encode(&SagaEvent::InputIgnored { input: "by hand".into(), reason: "test".into() });
        sqlx::query("INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms) VALUES ($1, 2, $2, 1, $3::jsonb, 1002)")
            .bind(id(1).to_string())
            .bind(event_type)
            .bind(data.to_string())
            .execute(&mut *a)
            .await
            .expect("insert in transaction A");

        append_ok(&store, vec![append(id(2), 0, 1)]).await;
        for _ in 0..3 {
            let between = store.committed_after(cursor, 10).await.unwrap();
            assert!(between.is_empty(), "B must wait behind A, which is still open: {between:?}");
        }

        a.commit().await.expect("commit A");
        let after = feed(&store, cursor, 10, 2).await;
        assert_eq!(places(&after), vec![(1, 2), (2, 1)]);
        assert!(after[0].cursor.position < after[1].cursor.position, "A's position is the smaller one");
        assert!(after.iter().all(|e| e.cursor > cursor));
    }

    #[tokio::test]
    async fn open_url_picks_the_backend_by_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.db");
        for url in [format!("sqlite://{}", path.display()), path.display().to_string()] {
            let store = jetsaga::store::open_url(&url).await.unwrap();
            assert!(matches!(store, jetsaga::store::AnyStore::Sqlite(_)), "{url}");
        }
        // A fresh schema (created by the helper), named in the URL, keeps `public` clean.
        let (_store, schema, _slot) = postgres_store_in_schema().await;
        let url = database_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        let store = jetsaga::store::open_url(&format!("{url}{separator}options=-csearch_path%3D{schema}")).await.unwrap();
        assert!(matches!(store, jetsaga::store::AnyStore::Postgres(_)));
        append_ok(&store, vec![append(id(1), 0, 2)]).await;
        assert_eq!(seqs(&_store.load(id(1), None).await.unwrap()), vec![1, 2], "the URL's schema is the helper's");
        match jetsaga::store::open_url("mysql://user:secret@host/db").await {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains("\"mysql\"") && !message.contains("secret"), "{message}")
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
