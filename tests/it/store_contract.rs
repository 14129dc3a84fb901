//! The event store contract: every test is written once, generic over
//! `S: EventStore`, and run against each backend by `contract_suite!`.
//! A new backend joins with one line at the bottom. SQLite-only facts
//! (durability across reopen, pragmas) follow in their own module.

use std::sync::Arc;

use jetsaga::definition::{Kind, StepName};
use jetsaga::saga::{OperatorVerb, Recorded, SagaEvent, SagaId, Status};
use jetsaga::store::{
    Append, AppendOutcome, DefinitionRecord, EventStore, ListFilter, MemoryStore, SagaSummary, SqliteStore, StoreError, PAGE_SIZE_MAX,
};
use serde_json::json;
use tempfile::TempDir;

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

fn id(n: u128) -> SagaId {
    SagaId::from_u128(n)
}

fn step(name: &str) -> StepName {
    StepName::parse(name).expect("step name")
}

fn started() -> SagaEvent {
    SagaEvent::SagaStarted { saga_type: "trip".into(), version: 1, definition_hash: "ab12".into(), input: json!({"who": "ada"}) }
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
        SagaEvent::CompensationStarted { reason: "hotel failed".into() },
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
        assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
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
    };
    assert_eq!(list_ids(&store, combined).await, vec![2]);
    let none = ListFilter { saga_type: Some("nothing".into()), ..all };
    assert_eq!(list_ids(&store, none).await, Vec::<u128>::new());
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

/// One module per backend, one `#[tokio::test]` per contract test.
macro_rules! contract_suite {
    ($backend:ident, $make:path) => {
        mod $backend {
            contract_suite!(@tests $make;
                round_trips_every_event_type, loads_up_to_seq, unknown_saga_is_empty, empty_batch_commits_nothing,
                stale_expected_seq_conflicts_alone, new_saga_twice_conflicts, one_batch_may_append_to_a_saga_twice, malformed_append_is_an_error_and_commits_nothing,
                concurrent_appends_one_wins_per_seq, concurrent_writers_that_retry_keep_the_log_contiguous,
                group_commits_a_hundred_sagas, summary_follows_each_append, list_filters_narrow,
                cursor_walks_every_saga_once_in_order, limit_is_clamped, definitions_are_recorded_once,
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
