//! Throughput and latency of `trip_booking` (5 steps), on the production
//! stack (NATS JetStream + PostgreSQL) and on the embedded one (SQLite +
//! the in-process transport, what `jetsaga demo` runs), each beside
//! baselines measured in the same run on the same servers.
//!
//! `cargo bench --bench throughput -- [--stack production|embedded|both]
//! [--sagas N] [--lone N] [--rate SAGAS_PER_S] [--seconds S]
//! [--only throughput|latency|open|group]` (`NATS_URL`, `DATABASE_URL` as for
//! the tests; defaults: both stacks, 2,000 sagas, 100 lone sagas, half the
//! measured maximum for 10 s). The orchestrator runs as `serve` assembles
//! it (`Orchestrator::build`: engine, inbound consumers, event relay),
//! with always-succeeding simulated participants answering at once, in
//! this process.
//!
//! Production, in this order:
//! 1. baselines (`baselines.rs`): pipelined JetStream command→reply round
//!    trips (256 in flight), a lone round trip, PostgreSQL one-row commits;
//! 2. throughput: `--sagas` started at once; completed steps/s, and the
//!    event relay's largest lag while they ran;
//! 3. latency of a lone saga: `--lone` sagas one after the other;
//! 4. open loop: sagas started on a schedule at `--rate` for `--seconds`;
//! 5. (after the embedded stack) a two-step parallel group against the
//!    same two steps in sequence, `--lone` sagas of each (issue 11).
//!
//! A step's latency is judged from outside: a plain NATS subscriber sees
//! every command as it is published, and a step is the time from one
//! command of a saga to its next (the participant's reply, its way through
//! JetStream, the engine's decide and commit, the next publish).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use jetsaga::definition::Catalog;
use jetsaga::orchestrator::{Orchestrator, OrchestratorConfig};
use jetsaga::participant::{spawn_simulated, EffectLedger, SimulationConfig};
use jetsaga::runtime::Metrics;
use jetsaga::saga::SagaId;
use jetsaga::store::SqliteStore;
use serde_json::json;

mod baselines;
#[path = "../support/mod.rs"]
mod support;

const TRIP: &str = include_str!("../../sagas/trip_booking.toml");
/// Two steps named `name`, one after the other, or with `group` set the
/// same two steps as one parallel group (SPEC §7): `--only group` compares
/// their latencies.
fn pair(name: &str, group: Option<&str>) -> String {
    let group = group.map(|g| format!("group = \"{g}\"\n")).unwrap_or_default();
    let step = |step: &str, participant: &str| {
        format!("[[steps]]\nname = \"{step}\"\nparticipant = \"{participant}\"\naction = \"reserve\"\ncompensation = \"cancel\"\n{group}")
    };
    format!("name = \"{name}\"\nversion = 1\n{}{}", step("reserve_flight", "flights"), step("reserve_hotel", "hotels"))
}
/// The simulated participants' latency in the group comparison (each
/// answer takes half to one and a half of it).
const PAIR_PARTICIPANT_LATENCY: Duration = Duration::from_millis(20);

/// Steps of a trip_booking saga that succeeds.
const STEPS: f64 = 5.0;
/// Starts in flight at once in the closed-loop run (as many callers).
const STARTS_IN_FLIGHT: usize = 1_024;

/// What to run.
struct Args {
    production: bool,
    embedded: bool,
    sagas: usize,
    lone: usize,
    rate: Option<f64>,
    seconds: f64,
    only: Option<String>,
}

fn args() -> Args {
    // The short version in the test profile (`cargo test --bench throughput`, CI).
    let short = cfg!(debug_assertions);
    let mut args = Args {
        production: true,
        embedded: true,
        sagas: if short { 300 } else { 2_000 },
        lone: if short { 10 } else { 100 },
        rate: None,
        seconds: if short { 2.0 } else { 10.0 },
        only: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = |name: &str| given.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--stack" => match value("--stack").as_str() {
                "production" => args.embedded = false,
                "embedded" => args.production = false,
                "both" => {}
                other => panic!("--stack production|embedded|both, not {other:?}"),
            },
            "--sagas" => args.sagas = value("--sagas").parse().expect("--sagas N"),
            "--lone" => args.lone = value("--lone").parse().expect("--lone N"),
            "--rate" => args.rate = Some(value("--rate").parse().expect("--rate SAGAS_PER_S")),
            "--seconds" => args.seconds = value("--seconds").parse().expect("--seconds S"),
            "--only" => args.only = Some(value("--only")),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            // Under `cargo test` (the short version) the harness's own
            // arguments and test-name filters come here too.
            _ if short => {}
            other => panic!("unknown argument {other:?} (see the top of benches/throughput/main.rs)"),
        }
    }
    args
}

impl Args {
    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    println!("jetsaga throughput bench, {}", commit_and_date());
    if args.production {
        production(&args).await;
    }
    if args.embedded {
        embedded(&args).await;
    }
    if args.production && args.runs("group") {
        group_against_sequence(&args).await;
    }
}

fn commit_and_date() -> String {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd).args(args).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    format!("commit {commit}, {date}")
}

/// The `p` quantile (0..=1) of sorted values.
fn quantile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Completed trip_booking sagas so far.
fn completed(metrics: &Metrics) -> u64 {
    completed_of(metrics, "trip_booking")
}

/// Completed sagas of `saga_type` so far.
fn completed_of(metrics: &Metrics, saga_type: &str) -> u64 {
    metrics.families().finished.get(&(saga_type.to_owned(), "completed")).copied().unwrap_or(0)
}

/// Waits until `target` sagas have completed (panics after `limit`).
async fn until_completed(metrics: &Metrics, target: u64, limit: Duration) {
    until_completed_of(metrics, "trip_booking", target, limit).await;
}

/// Waits until `target` sagas of `saga_type` have completed (panics after `limit`).
async fn until_completed_of(metrics: &Metrics, saga_type: &str, target: u64, limit: Duration) {
    let started = Instant::now();
    while completed_of(metrics, saga_type) < target {
        assert!(started.elapsed() < limit, "only {} of {target} sagas completed within {limit:?}", completed_of(metrics, saga_type));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// When each saga's messages were seen, in the order they were seen:
/// commands and replies (first attempts of actions only).
#[derive(Clone, Default)]
struct Seen {
    commands: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    replies: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

/// A plain NATS subscriber to every command and reply under `prefix`.
async fn observe(nats_url: &str, prefix: &str) -> Seen {
    let client = async_nats::connect(nats_url).await.expect("NATS");
    let seen = Seen::default();
    for (subject, record) in [(format!("{prefix}.cmd.>"), seen.commands.clone()), (format!("{prefix}.reply.>"), seen.replies.clone())] {
        let mut messages = client.subscribe(subject).await.expect("subscribe");
        let client = client.clone();
        tokio::spawn(async move {
            let _client = client;
            while let Some(message) = messages.next().await {
                let at = Instant::now();
                let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("a JSON body");
                if body["kind"] == "action" && body["attempt"] == 1 {
                    let saga_id = body["saga_id"].as_str().expect("saga_id").to_owned();
                    record.lock().unwrap().entry(saga_id).or_default().push(at);
                }
            }
        });
    }
    client.flush().await.expect("flush");
    seen
}

/// Sorted latencies of `sagas`: each step (a command to the saga's next),
/// and its two halves: the participant's (a command to its reply) and the
/// orchestrator's (a reply to the next command).
fn step_latencies(seen: &Seen, sagas: &[SagaId]) -> [Vec<Duration>; 3] {
    let (commands, replies) = (seen.commands.lock().unwrap(), seen.replies.lock().unwrap());
    let (mut steps, mut participant, mut orchestrator) = (Vec::new(), Vec::new(), Vec::new());
    for id in sagas.iter().map(SagaId::to_string) {
        let (Some(sent), Some(answered)) = (commands.get(&id), replies.get(&id)) else { continue };
        steps.extend(sent.windows(2).map(|w| w[1].duration_since(w[0])));
        participant.extend(sent.iter().zip(answered).map(|(c, r)| r.saturating_duration_since(*c)));
        orchestrator.extend(answered.iter().zip(&sent[1..]).map(|(r, c)| c.saturating_duration_since(*r)));
    }
    for v in [&mut steps, &mut participant, &mut orchestrator] {
        v.sort_unstable();
    }
    [steps, participant, orchestrator]
}

fn print_steps(latencies: &[Vec<Duration>; 3]) {
    print_latencies("step (a command to the next)", &latencies[0]);
    print_latencies("  participant: command → reply", &latencies[1]);
    print_latencies("  orchestrator: reply → next command", &latencies[2]);
}

fn print_latencies(what: &str, steps: &[Duration]) {
    println!(
        "  {what:<40} p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  ({} measured)",
        ms(quantile(steps, 0.5)),
        ms(quantile(steps, 0.99)),
        ms(quantile(steps, 0.999)),
        steps.len()
    );
}

async fn production(args: &Args) {
    let tag = format!("bench_{}", std::process::id());
    let servers = support::Servers::connect(&tag).await;
    let nats_url = support::env("NATS_URL", "nats://127.0.0.1:4222");
    println!("\n== production stack: NATS JetStream + PostgreSQL ==");
    println!("baselines in this run (raw clients, before the orchestrator starts):");
    let pipelined = baselines::round_trips(&nats_url, &tag, 256, Duration::from_secs(3)).await;
    println!("  JetStream command→reply round trips, 256 in flight   {:>9.0}/s", pipelined.per_s);
    let lone = baselines::round_trips(&nats_url, &tag, 1, Duration::from_secs(2)).await;
    let lone_p50 = quantile(&lone.latencies, 0.5);
    println!("  a lone round trip                                    p50 {:>6.2} ms", ms(lone_p50));
    let commits = baselines::one_row_commits(&servers.database_url, &tag, 500).await;
    let commit_p50 = quantile(&commits, 0.5);
    println!("  PostgreSQL one-row commit                            p50 {:>6.2} ms", ms(commit_p50));

    let catalog = Catalog::from_sources([("trip_booking.toml".to_string(), TRIP.to_string())]).expect("trip_booking");
    let orchestrator = Orchestrator::build(&catalog, servers.store.clone(), None, OrchestratorConfig::jetstream(servers.nats.clone()))
        .await
        .expect("the orchestrator starts");
    let participants = SimulationConfig { latency: Duration::ZERO, ..SimulationConfig::default() };
    let simulated = spawn_simulated(orchestrator.transport().clone(), participants, EffectLedger::new(), orchestrator.stopping())
        .await
        .expect("participants");
    let seen = observe(&nats_url, &format!("{tag}.saga")).await;
    let (handle, metrics, relay) = (orchestrator.handle(), orchestrator.metrics(), orchestrator.relay());
    let start = |handle: jetsaga::runtime::EngineHandle| async move {
        handle.start("trip_booking", None, json!({ "card": "4242" })).await.expect("started").saga_id
    };

    let mut max_sagas_per_s = None;
    if args.runs("throughput") {
        // Closed loop: everything at once; the relay's lag sampled meanwhile.
        let lag_max = Arc::new(AtomicI64::new(0));
        let sampler = {
            let (relay, lag_max) = (relay.clone(), lag_max.clone());
            tokio::spawn(async move {
                loop {
                    lag_max.fetch_max(relay.lag_ms(now_ms()), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let before = completed(&metrics);
        let room = Arc::new(tokio::sync::Semaphore::new(STARTS_IN_FLIGHT));
        let started = Instant::now();
        for _ in 0..args.sagas {
            let (handle, permit) = (handle.clone(), room.clone().acquire_owned().await.expect("room"));
            tokio::spawn(async move {
                start(handle).await;
                drop(permit);
            });
        }
        until_completed(&metrics, before + args.sagas as u64, Duration::from_secs(600)).await;
        let elapsed = started.elapsed();
        while relay.lag_ms(now_ms()) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sampler.abort();
        let sagas_per_s = args.sagas as f64 / elapsed.as_secs_f64();
        let steps_per_s = sagas_per_s * STEPS;
        max_sagas_per_s = Some(sagas_per_s);
        println!("target 1, throughput: {} sagas started at once ({STARTS_IN_FLIGHT} starts in flight):", args.sagas);
        println!("  completed sagas/s {sagas_per_s:>9.0}   steps/s {steps_per_s:>9.0}   wall {elapsed:.2?}");
        println!("  event relay: largest lag while running {} ms (target < 1,000 ms)", lag_max.load(Ordering::Relaxed));
        println!("  steps/s ÷ pipelined round trips/s     {:>6.3}  (target ≥ 0.25)", steps_per_s / pipelined.per_s);
    }

    if args.runs("latency") {
        let appends_before = metrics.append_seconds();
        let mut ids = Vec::with_capacity(args.lone);
        for _ in 0..args.lone {
            let before = completed(&metrics);
            ids.push(start(handle.clone()).await);
            until_completed(&metrics, before + 1, Duration::from_secs(30)).await;
        }
        let latencies = step_latencies(&seen, &ids);
        let steps = &latencies[0];
        let bound = lone_p50 + commit_p50 + Duration::from_millis(1);
        println!("target 2a, latency of a lone saga ({} sagas one after the other):", args.lone);
        print_steps(&latencies);
        let appends = metrics.append_seconds();
        let (count, sum) = (appends.count() - appends_before.count(), appends.sum() - appends_before.sum());
        println!("  the engine's group commits meanwhile: {count}, mean {:.2} ms", sum * 1e3 / count.max(1) as f64);
        println!(
            "  bound: lone round trip p50 + one-row commit p50 + 1 ms = {:.2} ms; step p50 ÷ bound {:.2} (target ≤ 1)",
            ms(bound),
            ms(quantile(steps, 0.5)) / ms(bound)
        );
    }

    if args.runs("open") {
        let rate = args.rate.or(max_sagas_per_s.map(|max| max / 2.0)).unwrap_or(100.0);
        let total = (rate * args.seconds).round().max(1.0) as usize;
        let before = completed(&metrics);
        let t0 = tokio::time::Instant::now();
        let mut starts = tokio::task::JoinSet::new();
        for n in 0..total {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(n as f64 / rate)).await;
            starts.spawn(start(handle.clone()));
        }
        let ids: Vec<SagaId> = starts.join_all().await;
        until_completed(&metrics, before + total as u64, Duration::from_secs(120)).await;
        let latencies = step_latencies(&seen, &ids);
        println!("target 2b, open loop: {total} sagas started at {rate:.0}/s ({:.0} steps/s) over {:.0} s:", rate * STEPS, args.seconds);
        print_steps(&latencies);
        println!("  target: step p99 ≤ 10 ms");
    }

    stop(orchestrator, simulated, Some(servers)).await;
}

async fn embedded(args: &Args) {
    println!("\n== embedded stack: SQLite + the in-process transport (jetsaga demo) ==");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let raw_rows_per_s = baselines::sqlite_batch_inserts(dir.path(), 100_000, 256).await;
    println!("baseline in this run:");
    println!("  raw SQLite inserts, 256 rows per transaction (WAL, synchronous FULL)  {raw_rows_per_s:>9.0} rows/s");
    let store = SqliteStore::open(&dir.path().join("events.db").display().to_string()).await.expect("SQLite");
    let catalog = Catalog::from_sources([("trip_booking.toml".to_string(), TRIP.to_string())]).expect("trip_booking");
    let orchestrator = Orchestrator::build(&catalog, store, None, OrchestratorConfig::in_process()).await.expect("the orchestrator starts");
    let participants = SimulationConfig { latency: Duration::ZERO, ..SimulationConfig::default() };
    let simulated = spawn_simulated(orchestrator.transport().clone(), participants, EffectLedger::new(), orchestrator.stopping())
        .await
        .expect("participants");
    let (handle, metrics) = (orchestrator.handle(), orchestrator.metrics());
    let sagas = if cfg!(debug_assertions) { args.sagas } else { args.sagas.max(5_000) };
    let room = Arc::new(tokio::sync::Semaphore::new(STARTS_IN_FLIGHT));
    let started = Instant::now();
    for _ in 0..sagas {
        let (handle, permit) = (handle.clone(), room.clone().acquire_owned().await.expect("room"));
        tokio::spawn(async move {
            handle.start("trip_booking", None, json!({ "card": "4242" })).await.expect("started");
            drop(permit);
        });
    }
    until_completed(&metrics, sagas as u64, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    let per_s = sagas as f64 / elapsed.as_secs_f64();
    orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
    let events = baselines::sqlite_rows(&dir.path().join("events.db"), "events").await;
    let events_per_s = events as f64 / elapsed.as_secs_f64();
    println!("target 3, embedded: {sagas} sagas started at once:");
    println!("  completed sagas/s {per_s:>9.0}   (target ≥ 5,000)   wall {elapsed:.2?}");
    println!("  events written/s  {events_per_s:>9.0}   ÷ raw SQLite rows/s {:.2}", events_per_s / raw_rows_per_s);
    for participant in simulated {
        participant.await.expect("a participant task").expect("a participant served");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Issue 11, item 6: a two-step parallel group against the same two steps
/// in sequence, `--lone` sagas of each one after the other, participants
/// answering after [`PAIR_PARTICIPANT_LATENCY`] on average; a saga's
/// latency is from the start request to its completion (seen in the
/// engine's counters, polled every millisecond).
async fn group_against_sequence(args: &Args) {
    let tag = format!("bench_pair_{}", std::process::id());
    let servers = support::Servers::connect(&tag).await;
    let sources = [
        ("pair_sequence.toml".to_string(), pair("pair_sequence", None)),
        ("pair_group.toml".to_string(), pair("pair_group", Some("travel"))),
    ];
    let catalog = Catalog::from_sources(sources).expect("the pair definitions");
    let orchestrator = Orchestrator::build(&catalog, servers.store.clone(), None, OrchestratorConfig::jetstream(servers.nats.clone()))
        .await
        .expect("the orchestrator starts");
    let participants = SimulationConfig { latency: PAIR_PARTICIPANT_LATENCY, ..SimulationConfig::default() };
    let simulated = spawn_simulated(orchestrator.transport().clone(), participants, EffectLedger::new(), orchestrator.stopping())
        .await
        .expect("participants");
    let (handle, metrics) = (orchestrator.handle(), orchestrator.metrics());
    println!("\n== issue 11: a two-step parallel group against the same steps in sequence (production stack) ==");
    let mut p50s = Vec::new();
    for saga_type in ["pair_sequence", "pair_group"] {
        let mut latencies = Vec::with_capacity(args.lone);
        for _ in 0..args.lone {
            let before = completed_of(&metrics, saga_type);
            let started = Instant::now();
            handle.start(saga_type, None, json!({})).await.expect("started");
            until_completed_of(&metrics, saga_type, before + 1, Duration::from_secs(30)).await;
            latencies.push(started.elapsed());
        }
        latencies.sort_unstable();
        print_latencies(&format!("{saga_type}: saga"), &latencies);
        p50s.push(quantile(&latencies, 0.5));
    }
    println!(
        "  participants answer in {:?} ± 50%; group p50 ÷ sequence p50 {:.2} (target ≤ 0.6)",
        PAIR_PARTICIPANT_LATENCY,
        ms(p50s[1]) / ms(p50s[0])
    );
    stop(orchestrator, simulated, Some(servers)).await;
}

/// Stops the orchestrator and its simulated participants; on the
/// production stack also deletes the run's streams and drops its schema.
async fn stop<S>(
    orchestrator: Orchestrator<S>,
    simulated: Vec<tokio::task::JoinHandle<Result<(), jetsaga::participant::ParticipantError>>>,
    servers: Option<support::Servers>,
) {
    orchestrator.shutdown().await.expect("the orchestrator stops cleanly");
    for participant in simulated {
        participant.await.expect("a participant task").expect("a participant served");
    }
    if let Some(servers) = servers {
        if let Ok(transport) = jetsaga::transport::jetstream::JetStreamTransport::attach(servers.nats.clone()).await {
            let _ = transport.delete_streams().await;
        }
        servers.drop_schema().await;
    }
}
