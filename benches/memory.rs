//! Resident memory per in-flight saga, over NATS JetStream + PostgreSQL.
//!
//! `cargo bench --bench memory` (env `SAGAS`, default 20000; `NATS_URL`,
//! `DATABASE_URL` as for the tests). Clients keep at most
//! [`STARTS_IN_FLIGHT`] starts outstanding. Builds the orchestrator as `serve`
//! does, with no participant, so every saga it starts waits on its first
//! step (a one-hour timeout keeps it there). Prints the process's resident
//! memory (VmRSS) once the orchestrator idles and once every saga is in
//! flight, and the difference per saga, beside the size of a saga's input.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use jetsaga::definition::Catalog;
use jetsaga::orchestrator::{Orchestrator, OrchestratorConfig};
use jetsaga::saga::{SagaId, Status};
use jetsaga::store::EventStore;
use jetsaga::transport::jetstream::JetStreamTransport;
use serde_json::json;

const WAITING: &str = r#"
name = "waiting"
version = 1
[defaults]
timeout = "1h"
[[steps]]
name = "hold"
participant = "nobody"
action = "hold"
compensation = "release"
[[steps]]
name = "never"
participant = "nobody"
action = "never"
"#;

/// Start requests outstanding at once (the engine's request queue).
const STARTS_IN_FLIGHT: usize = jetsaga::runtime::REQUEST_QUEUE_MAX;

/// How long the engine gets to settle before and after the starts.
const SETTLE: Duration = Duration::from_secs(3);

mod support;
use support::{env, Servers};

/// The process's resident set, in bytes (Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // The short version in the test profile (`cargo test --bench memory`, CI).
    let sagas: u128 = env("SAGAS", if cfg!(debug_assertions) { "2000" } else { "20000" }).parse().expect("SAGAS is a number");
    let tag = format!("bench_mem_{}", std::process::id());
    let servers = Servers::connect(&tag).await;
    let (store, config) = (servers.store.clone(), servers.nats.clone());
    let catalog = Catalog::from_sources([("waiting.toml".to_string(), WAITING.to_string())]).expect("the definition");
    let orchestrator = Orchestrator::build(&catalog, store.clone(), None, OrchestratorConfig::jetstream(config.clone()))
        .await
        .expect("the orchestrator starts");
    let handle = orchestrator.handle();
    let input = json!({ "card": "4242", "who": "ada" });
    let input_bytes = input.to_string().len();

    // Warm up allocator and pools with a few sagas, then measure from there.
    for n in 0..100u128 {
        handle.start("waiting", Some(id(1 << 40 | n)), input.clone()).await.expect("started");
    }
    tokio::time::sleep(SETTLE).await;
    let before = resident_bytes();

    let started = Instant::now();
    // Clients with at most STARTS_IN_FLIGHT starts outstanding: what stays
    // resident is the sagas', not a burst of start requests' (a task and a
    // future each) that the allocator keeps once they are answered.
    let starts = futures_util::stream::iter(0..sagas).map(|n| {
        let (handle, input) = (handle.clone(), input.clone());
        async move { handle.start("waiting", Some(id(n)), input).await }
    });
    let mut starts = starts.buffer_unordered(STARTS_IN_FLIGHT);
    while let Some(result) = starts.next().await {
        result.expect("started");
    }
    let last = id(sagas - 1);
    loop {
        match store.summary(last).await.expect("summary") {
            Some(s) if s.status == Status::Running => break,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let start_time = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = resident_bytes();
    let per_saga = after.saturating_sub(before) as f64 / sagas as f64;

    println!("resident memory, {sagas} sagas in flight on their first step (input {input_bytes} bytes of JSON):");
    println!("  resident before            {:>10.1} MiB", before as f64 / 1048576.0);
    println!("  resident after             {:>10.1} MiB", after as f64 / 1048576.0);
    println!("  per in-flight saga         {per_saga:>10.0} bytes");
    println!("  started in                 {start_time:>10.2?}");
    println!("  saga cache bound           {:>10} sagas (SAGA_CACHE_MAX)", jetsaga::runtime::SAGA_CACHE_MAX);
    let metrics = orchestrator.metrics();
    let (hits, misses) = (metrics.saga_cache_hits.load(Ordering::Relaxed), metrics.saga_cache_misses.load(Ordering::Relaxed));
    println!("  saga cache hits / misses   {hits:>10} / {misses} (hit rate {:.3})", metrics.saga_cache_hit_rate());

    orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
    if let Ok(transport) = JetStreamTransport::connect(config).await {
        let _ = transport.delete_streams().await;
    }
    servers.drop_schema().await;
}

fn id(n: u128) -> SagaId {
    SagaId::from_u128(0x0190_e000_0000_7000_8000_0000_0000_0000 | n)
}
