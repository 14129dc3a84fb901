//! The group commit over PostgreSQL: one `EventStore::append` of a
//! 256-saga batch, as the engine issues it.
//!
//! `cargo bench --bench append` (env `ROUNDS`, default 200 batches; 20
//! under `cargo test --bench append`; `DATABASE_URL` as for the tests).
//! Two kinds of batch, alternating: 256 new sagas (`saga_started` +
//! `command_sent` each, as a batch of starts) and the same 256 sagas moved
//! on by a reply (`step_succeeded` + `command_sent`, expected seq checked).
//! Prints the per-batch time (p50, p99) and rows written per second
//! (events + projection rows). The same-run baseline: raw 100-row insert
//! transactions into a plain table through sqlx (one multi-row `INSERT`
//! and a commit each), the rate PostgreSQL itself writes rows at here.

use std::time::{Duration, Instant};

use jetsaga::definition::{Kind, StepName};
use jetsaga::saga::{Recorded, SagaEvent, SagaId, Status};
use jetsaga::store::{Append, AppendOutcome, EventStore, SagaSummary};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Sagas per batch: the engine's `BATCH_MAX`.
const BATCH: usize = jetsaga::runtime::BATCH_MAX;
/// Rows per transaction of the raw baseline.
const RAW_ROWS: usize = 100;
/// Transactions of the raw baseline.
const RAW_TRANSACTIONS: usize = 200;

mod support;
use support::{env, Servers};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds: usize = env("ROUNDS", if cfg!(debug_assertions) { "20" } else { "200" }).parse().expect("ROUNDS is a number");
    let tag = format!("bench_append_{}", std::process::id());
    let servers = Servers::connect(&tag).await;
    let store = servers.store.clone();
    let raw_rows_per_s = baseline_raw(&servers.database_url, &tag).await;

    let step = StepName::parse("reserve_flight").expect("step");
    let mut times = Vec::with_capacity(rounds);
    let mut rows = 0usize;
    for round in 0..rounds {
        let base = (round / 2) as u128 * BATCH as u128;
        let ids: Vec<SagaId> =
            (0..BATCH as u128).map(|n| SagaId::from_u128(0x0190_e100_0000_7000_8000_0000_0000_0000 | (base + n))).collect();
        let moved_on = round % 2 == 1;
        let batch: Vec<Append> = ids
            .iter()
            .map(|&saga_id| {
                let (expected_seq, events) = if moved_on {
                    let ok =
                        SagaEvent::StepSucceeded { step: step.clone(), kind: Kind::Action, attempt: 1, output: json!({ "ref": "F-1" }) };
                    (2, vec![ok, SagaEvent::CommandSent { step: step.clone(), kind: Kind::Action, attempt: 1, deadline_ms: 9_000 }])
                } else {
                    let started = SagaEvent::SagaStarted {
                        saga_type: "trip".into(),
                        version: 1,
                        definition_hash: "ab".into(),
                        input: json!({ "card": "4242" }),
                        key: None,
                    };
                    (0, vec![started, SagaEvent::CommandSent { step: step.clone(), kind: Kind::Action, attempt: 1, deadline_ms: 5_000 }])
                };
                let recorded: Vec<Recorded> =
                    events.into_iter().zip(expected_seq + 1..).map(|(event, seq)| Recorded { seq, at_ms: 1_000, event }).collect();
                let last_seq = expected_seq + recorded.len() as u64;
                let summary = SagaSummary {
                    saga_id,
                    saga_type: "trip".into(),
                    version: 1,
                    status: Status::Running,
                    current_step: Some("reserve_flight".into()),
                    started_at_ms: 1_000,
                    updated_at_ms: 1_000,
                    last_seq,
                    deadline_ms: Some(9_000),
                    key: None,
                };
                Append { saga_id, expected_seq, events: recorded, summary }
            })
            .collect();
        rows += batch.iter().map(|a| a.events.len() + 1).sum::<usize>();
        let started = Instant::now();
        let outcomes = store.append(&batch).await.expect("append");
        times.push(started.elapsed());
        assert!(outcomes.iter().all(|o| *o == AppendOutcome::Committed));
    }
    let total: Duration = times.iter().sum();
    times.sort_unstable();
    let rows_per_s = rows as f64 / total.as_secs_f64();
    println!("group commit over PostgreSQL, {rounds} batches of {BATCH} sagas (2 events + 1 projection row each):");
    println!("  per batch p50 / p99        {:>8.2?} / {:.2?}", percentile(&times, 0.5), percentile(&times, 0.99));
    println!("  rows written/s             {rows_per_s:>10.0}");
    println!("baseline in this run:");
    println!("  raw {RAW_ROWS}-row insert transactions  {raw_rows_per_s:>10.0} rows/s");
    println!("ratio:");
    println!("  group commit rows/s ÷ raw rows/s  {:>6.2}", rows_per_s / raw_rows_per_s);

    servers.drop_schema().await;
}

/// Raw 100-row insert transactions into a plain table (JSONB payload like
/// an event's): rows per second.
async fn baseline_raw(url: &str, schema: &str) -> f64 {
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL");
    let mut conn = options.options([("search_path", schema)]).connect().await.expect("PostgreSQL");
    sqlx::query("CREATE TABLE raw_rows (saga_id TEXT NOT NULL, seq BIGINT NOT NULL, data JSONB NOT NULL, PRIMARY KEY (saga_id, seq))")
        .execute(&mut conn)
        .await
        .expect("create");
    let values: Vec<String> =
        (0..RAW_ROWS).map(|i| format!("($1 || '-{i}', {i}, '{{\"step\":\"reserve_flight\",\"attempt\":1}}')")).collect();
    let insert = format!("INSERT INTO raw_rows (saga_id, seq, data) VALUES {}", values.join(", "));
    let started = Instant::now();
    for t in 0..RAW_TRANSACTIONS {
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query(&insert).bind(t.to_string()).execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
    }
    (RAW_ROWS * RAW_TRANSACTIONS) as f64 / started.elapsed().as_secs_f64()
}
