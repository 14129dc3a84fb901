//! `jetsaga participants --simulate`: the SDK's simulated participants
//! (flights, hotels, cars, payments, notifications) served over NATS, with
//! seeded failures, silences and latency, until Ctrl-C.
//!
//! Generic over the transport; [`connect_transport`] is the one place that
//! picks the NATS one.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::NatsArgs;
use crate::participant::{self, EffectLedger, SimulationConfig, SIMULATED_PARTICIPANTS};
use crate::transport::jetstream::JetStreamTransport;
use crate::transport::ParticipantTransport;

/// What `jetsaga participants` was asked for.
#[derive(Debug)]
pub(super) struct Options {
    pub(super) simulate: bool,
    pub(super) failure_rate: f64,
    pub(super) silence_rate: f64,
    pub(super) latency: Duration,
    pub(super) seed: Option<u64>,
    pub(super) nats: NatsArgs,
}

/// Runs the simulated participants until Ctrl-C.
pub(super) fn run(options: Options) -> anyhow::Result<ExitCode> {
    if let Some(problem) = usage_problem(&options) {
        eprintln!("error: {problem}");
        return Ok(ExitCode::from(super::EXIT_USAGE));
    }
    let seed = options.seed.unwrap_or_else(clock_seed);
    let config = SimulationConfig {
        failure_rate: options.failure_rate,
        silence_rate: options.silence_rate,
        latency: options.latency,
        seed,
        ..SimulationConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("failed to start the async runtime")?;
    runtime.block_on(async {
        let transport = connect_transport(&options.nats).await?;
        simulate(transport, config).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn usage_problem(options: &Options) -> Option<String> {
    let rate_ok = |rate: f64| (0.0..=1.0).contains(&rate);
    match () {
        () if !options.simulate => Some("only simulated participants are available: pass --simulate".into()),
        () if !rate_ok(options.failure_rate) => Some(format!("--failure-rate {} is not between 0 and 1", options.failure_rate)),
        () if !rate_ok(options.silence_rate) => Some(format!("--silence-rate {} is not between 0 and 1", options.silence_rate)),
        () => None,
    }
}

fn clock_seed() -> u64 {
    u64::try_from(crate::runtime::Clock::system().now_ms()).unwrap_or_default()
}

/// The only place that knows which transport serves the participants.
/// It attaches (the streams are the orchestrator's to create or change),
/// so a participant's NATS user needs no stream-management permission.
async fn connect_transport(nats: &NatsArgs) -> anyhow::Result<impl ParticipantTransport> {
    let config = nats.jetstream()?;
    let url = config.connection.redacted_url();
    JetStreamTransport::attach(config).await.with_context(|| format!("failed to connect to NATS at {url}"))
}

async fn simulate<T: ParticipantTransport>(transport: T, config: SimulationConfig) -> anyhow::Result<()> {
    let ledger = EffectLedger::new();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let described = format!(
        "failure rate {}, silence rate {}, latency {}, seed {}",
        config.failure_rate,
        config.silence_rate,
        humantime::format_duration(config.latency),
        config.seed
    );
    let handles = participant::spawn_simulated(transport, config, ledger.clone(), shutdown)
        .await
        .context("failed to subscribe the simulated participants")?;
    println!("serving {} ({described}); Ctrl-C stops", SIMULATED_PARTICIPANTS.join(", "));
    for handle in handles {
        handle.await.context("a participant task panicked")?.context("a participant stopped")?;
    }
    println!("stopped after {} effects ({} duplicated)", ledger.total(), ledger.duplicates().len());
    Ok(())
}
