//! Throughput of `trip_booking` over NATS JetStream + PostgreSQL.
//!
//! `cargo bench --bench throughput` (env `SAGAS`, default 2000; `NATS_URL`,
//! `DATABASE_URL` as for the tests). Runs the orchestrator as `serve`
//! assembles it (`Orchestrator::build`: engine, inbound consumers, event
//! relay) and always-succeeding simulated participants in one process
//! against the local servers, starts the sagas as fast as
//! the engine takes them, and prints completed sagas per second and the
//! p50/p99 saga latency (first to last event). The baselines, measured in
//! the same run on the same servers: sequential single-event appends to
//! PostgreSQL (fsync-bound commits), and sequential JetStream publishes
//! awaiting their acks.

use std::time::{Duration, Instant};

use jetsaga::definition::Catalog;
use jetsaga::orchestrator::{Orchestrator, OrchestratorConfig};
use jetsaga::participant::{spawn_simulated, EffectLedger, SimulationConfig};
use jetsaga::saga::{Recorded, SagaEvent, SagaId, Status};
use jetsaga::store::{Append, EventStore, PostgresStore, SagaSummary};
use jetsaga::transport::jetstream::{JetStreamConfig, JetStreamTransport, NatsConnection};
use jetsaga::wire::Subjects;
use serde_json::json;

const TRIP: &str = include_str!("../sagas/trip_booking.toml");

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sagas: u128 = env("SAGAS", "2000").parse().expect("SAGAS is a number");
    let tag = format!("bench_{}", std::process::id());
    let database_url = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
    let store = PostgresStore::connect_schema(&database_url, &tag).await.expect("PostgreSQL (run scripts/services)");
    let config = JetStreamConfig {
        connection: NatsConnection::new(env("NATS_URL", "nats://127.0.0.1:4222")),
        prefix: Subjects::new(&format!("{tag}.saga")),
        ..JetStreamConfig::default()
    };
    // The baselines first, before the orchestrator and its relay run.
    let transport = JetStreamTransport::connect(config.clone()).await.expect("NATS JetStream (run scripts/services)");
    let commits_per_s = baseline_postgres(&store, 500).await;
    let publishes_per_s = baseline_jetstream(&transport, &tag, 1_000).await;

    let catalog = Catalog::from_sources([("trip_booking.toml".to_string(), TRIP.to_string())]).expect("trip_booking");
    let orchestrator =
        Orchestrator::build(&catalog, store.clone(), None, OrchestratorConfig::jetstream(config)).await.expect("the orchestrator starts");
    let participants = SimulationConfig { latency: Duration::ZERO, ..SimulationConfig::default() };
    let simulated = spawn_simulated(orchestrator.transport().clone(), participants, EffectLedger::new(), orchestrator.stopping())
        .await
        .expect("participants");
    let handle = orchestrator.handle();

    let started = Instant::now();
    let ids: Vec<SagaId> = (0..sagas).map(|n| SagaId::from_u128(0x0190_c000_0000_7000_8000_0000_0000_0000 | n)).collect();
    let mut starts = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let handle = handle.clone();
        starts.spawn(async move { handle.start("trip_booking", Some(id), json!({ "card": "4242" })).await });
    }
    while let Some(result) = starts.join_next().await {
        result.expect("start task").expect("started");
    }
    let mut latencies = Vec::with_capacity(ids.len());
    for id in &ids {
        loop {
            match store.summary(*id).await.expect("summary") {
                Some(s) if s.status == Status::Completed => {
                    latencies.push(s.updated_at_ms - s.started_at_ms);
                    break;
                }
                Some(s) if s.status.is_terminal() || s.status == Status::Stuck => panic!("saga {id} ended {}", s.status),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let per_s = sagas as f64 / elapsed.as_secs_f64();
    // Per trip_booking saga: 5 commands and 5 replies over JetStream.
    let messages_per_s = per_s * 10.0;
    println!("trip_booking over JetStream + PostgreSQL, {sagas} sagas, always-succeeding participants:");
    println!("  completed sagas/s          {per_s:>10.0}");
    println!("  saga latency p50 / p99     {:>7} ms / {} ms", percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!("  wall time                  {elapsed:>10.2?}");
    println!("baselines in this run:");
    println!("  PostgreSQL sequential single-event appends/s  {commits_per_s:>8.0}");
    println!("  JetStream sequential acked publishes/s        {publishes_per_s:>8.0}");
    println!("ratios:");
    println!(
        "  sagas/s ÷ sequential appends/s     {:>6.2}  (each saga is ~11 appends; >1/11 means group commit pays)",
        per_s / commits_per_s
    );
    println!("  saga messages/s ÷ publishes/s      {:>6.2}  (10 broker messages per saga)", messages_per_s / publishes_per_s);

    orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
    for participant in simulated {
        participant.await.expect("a participant task").expect("a participant served");
    }
    let _ = transport.delete_streams().await;
    store.close().await;
    drop_schema(&database_url, &tag).await;
}

/// Sequential single-event appends: one fsync-bound commit each.
async fn baseline_postgres(store: &PostgresStore, n: u64) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        let id = SagaId::from_u128(0x0190_d000_0000_7000_8000_0000_0000_0000 | u128::from(i));
        let event = SagaEvent::SagaStarted { saga_type: "baseline".into(), version: 1, definition_hash: String::new(), input: json!({}) };
        let summary = SagaSummary {
            saga_id: id,
            saga_type: "baseline".into(),
            version: 1,
            status: Status::Completed,
            current_step: None,
            started_at_ms: 0,
            updated_at_ms: 0,
            last_seq: 1,
            deadline_ms: None,
        };
        store
            .append(&[Append { saga_id: id, expected_seq: 0, events: vec![Recorded { seq: 1, at_ms: 0, event }], summary }])
            .await
            .expect("append");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Sequential publishes awaiting the broker's ack (file storage).
async fn baseline_jetstream(transport: &JetStreamTransport, tag: &str, n: u64) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        transport.publish_raw(&format!("{tag}.saga.event.baseline.{i}"), b"{}".to_vec()).await.expect("publish");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn drop_schema(url: &str, schema: &str) {
    let _ = std::process::Command::new("psql")
        .args([url, "-qc", &format!("SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")])
        .status();
}
