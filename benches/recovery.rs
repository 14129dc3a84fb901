//! Recovery of in-flight sagas over PostgreSQL + NATS JetStream.
//!
//! `cargo bench --bench recovery` (env `SAGAS`, default 100,000; 2,000
//! under `cargo test --bench recovery`; `NATS_URL`, `DATABASE_URL` as for
//! the tests). Fills a schema of its own with `SAGAS` trip_booking sagas
//! in flight on their first step (`saga_started` + `command_sent`, written
//! through `EventStore::append` in batches of [`FILL_BATCH`]), as a
//! `serve` killed mid-run leaves them, then times an orchestrator's
//! start-up until every saga is recovered: folded, its restart grace
//! recorded (`deadline_extended`, one group commit per page) and its
//! command re-sent (counted by the engine's `commands` counter).
//!
//! Same-run baselines: reading every event row of the schema raw (one
//! `SELECT` through sqlx, no decoding), and pipelined JetStream publishes
//! awaiting their acks, the floor of re-sending one command per saga.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jetsaga::definition::{Catalog, Kind};
use jetsaga::orchestrator::{Orchestrator, OrchestratorConfig};
use jetsaga::saga::{Recorded, SagaEvent, SagaId, Status};
use jetsaga::store::{Append, AppendOutcome, EventStore, SagaSummary};
use jetsaga::transport::jetstream::JetStreamTransport;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Row};

const TRIP: &str = include_str!("../sagas/trip_booking.toml");

/// Sagas written per append while filling.
const FILL_BATCH: usize = 5_000;
/// How often the run checks whether recovery is done.
const POLL: Duration = Duration::from_millis(5);
/// Publishes of the JetStream baseline, and how many in flight at once.
const BASELINE_PUBLISHES: usize = 20_000;
const BASELINE_IN_FLIGHT: usize = 256;

mod support;
use support::{env, Servers};

/// The default saga count: 100,000 in a release build (`cargo bench`),
/// fewer in the test profile (`cargo test --bench recovery`).
fn default_sagas() -> &'static str {
    if cfg!(debug_assertions) {
        "2000"
    } else {
        "100000"
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sagas: usize = env("SAGAS", default_sagas()).parse().expect("SAGAS is a number");
    let tag = format!("bench_rec_{}", std::process::id());
    let servers = Servers::connect(&tag).await;
    let (store, config) = (servers.store.clone(), servers.nats.clone());
    let catalog = Catalog::from_sources([("trip_booking.toml".to_string(), TRIP.to_string())]).expect("trip_booking");
    let def = catalog.get("trip_booking").expect("trip_booking").clone();

    let fill_started = Instant::now();
    let now_ms =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis()).expect("ms fit i64");
    let first = def.steps[0].name.clone();
    // Sent as the fill runs, due one step timeout later: a restart must record its grace.
    let deadline_ms = now_ms + i64::try_from(def.steps[0].timeout_ms).expect("timeout fits");
    let ids: Vec<SagaId> = (0..sagas as u128).map(|n| SagaId::from_u128(0x0190_f000_0000_7000_8000_0000_0000_0000 | n)).collect();
    for chunk in ids.chunks(FILL_BATCH) {
        let batch: Vec<Append> = chunk
            .iter()
            .map(|&saga_id| {
                let started = SagaEvent::SagaStarted {
                    saga_type: def.name.to_string(),
                    version: def.version,
                    definition_hash: def.content_hash.clone(),
                    input: json!({ "card": "4242", "who": "ada" }),
                    key: None,
                };
                let sent = SagaEvent::CommandSent { step: first.clone(), kind: Kind::Action, attempt: 1, deadline_ms };
                Append {
                    saga_id,
                    expected_seq: 0,
                    events: vec![Recorded { seq: 1, at_ms: now_ms, event: started }, Recorded { seq: 2, at_ms: now_ms, event: sent }],
                    summary: SagaSummary {
                        saga_id,
                        saga_type: def.name.to_string(),
                        version: def.version,
                        status: Status::Running,
                        current_step: Some(first.to_string()),
                        started_at_ms: now_ms,
                        updated_at_ms: now_ms,
                        last_seq: 2,
                        deadline_ms: Some(deadline_ms),
                        key: None,
                    },
                }
            })
            .collect();
        let outcomes = store.append(&batch).await.expect("fill");
        assert!(outcomes.iter().all(|o| *o == AppendOutcome::Committed));
    }
    let fill = fill_started.elapsed();

    let (events, read) = baseline_read(&servers.database_url, &tag).await;
    let transport = JetStreamTransport::connect(config.clone()).await.expect("NATS JetStream (run scripts/services)");
    let publishes_per_s = baseline_publish(&transport, &tag).await;

    let started = Instant::now();
    let orchestrator =
        Orchestrator::build(&catalog, store.clone(), None, OrchestratorConfig::jetstream(config)).await.expect("the orchestrator starts");
    let metrics = orchestrator.metrics();
    while metrics.commands.load(std::sync::atomic::Ordering::Relaxed) < sagas as u64 {
        tokio::time::sleep(POLL).await;
    }
    let recovered = started.elapsed();
    let extended = store.summary(ids[sagas - 1]).await.expect("summary").map(|s| s.last_seq);
    assert_eq!(extended, Some(3), "the last saga's grace (deadline_extended) is recorded");

    let per_s = sagas as f64 / recovered.as_secs_f64();
    let read_per_s = events as f64 / read.as_secs_f64();
    println!("recovery over PostgreSQL + JetStream, {sagas} trip_booking sagas in flight on their first step:");
    println!(
        "  filled in                                   {fill:>10.2?}  ({:.0} sagas/s through EventStore::append)",
        sagas as f64 / fill.as_secs_f64()
    );
    println!("  recovered in (build → last command re-sent) {recovered:>10.2?}");
    println!("  sagas recovered/s                           {per_s:>10.0}");
    println!("baselines in this run:");
    println!("  PostgreSQL raw read of the {events} event rows  {read:>8.2?}  ({read_per_s:.0} rows/s)");
    println!("  JetStream pipelined acked publishes/s ({BASELINE_IN_FLIGHT} in flight)  {publishes_per_s:>8.0}");
    println!("ratios:");
    println!("  recovery time ÷ raw read time               {:>6.2}", recovered.as_secs_f64() / read.as_secs_f64());
    println!(
        "  recovery time ÷ time to publish one command per saga at the baseline rate  {:>6.2}",
        recovered.as_secs_f64() / (sagas as f64 / publishes_per_s)
    );
    println!("  target: 100,000 sagas in ≤ 2 s (issue 10)");

    orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
    let _ = transport.delete_streams().await;
    servers.drop_schema().await;
}

/// Every event row of the schema, read raw (no decoding): (rows, time).
async fn baseline_read(url: &str, schema: &str) -> (usize, Duration) {
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL");
    let mut conn = options.options([("search_path", schema)]).connect().await.expect("PostgreSQL");
    let started = Instant::now();
    let rows = sqlx::query("SELECT saga_id, seq, event_type, schema_version, data::text AS data, at_ms FROM events ORDER BY saga_id, seq")
        .fetch_all(&mut conn)
        .await
        .expect("read");
    let took = started.elapsed();
    let bytes: usize = rows.iter().map(|row| row.get::<String, _>("data").len()).sum();
    assert!(bytes > 0);
    (rows.len(), took)
}

/// Publishes awaiting their acks, [`BASELINE_IN_FLIGHT`] at a time.
async fn baseline_publish(transport: &JetStreamTransport, tag: &str) -> f64 {
    let started = Instant::now();
    for wave in 0..BASELINE_PUBLISHES / BASELINE_IN_FLIGHT {
        let publishes = (0..BASELINE_IN_FLIGHT).map(|i| async move {
            let subject = format!("{tag}.saga.event.baseline.{wave}.{i}");
            transport.publish_raw(&subject, br#"{"saga_id":"x"}"#.to_vec()).await
        });
        for result in join_all(publishes).await {
            result.expect("publish");
        }
    }
    (BASELINE_PUBLISHES / BASELINE_IN_FLIGHT * BASELINE_IN_FLIGHT) as f64 / started.elapsed().as_secs_f64()
}
