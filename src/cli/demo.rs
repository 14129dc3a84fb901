//! `jetsaga demo`: the trip booking, on the embedded default or on real
//! infrastructure.
//!
//! The SDK's simulated participants (no faults; the payment service
//! refuses one card) answer over the in-memory transport and the events go
//! to a SQLite file; with `--nats-url` and/or `--database-url` the same
//! demo runs over NATS JetStream and PostgreSQL. One saga completes, one
//! is compensated, and both timelines are printed from the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::cli::{NatsAccessArgs, NatsArgs};
use crate::definition::Catalog;
use crate::loader;
use crate::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::participant::{self, EffectLedger, SimulationConfig, DECLINED_CARD};
use crate::runtime::{Clock, EngineHandle};
use crate::saga::{self, SagaId};
use crate::store::{EventStore, SqliteStore};
use crate::transport::jetstream::NATS_URL_DEFAULT;

/// The demo definition, for when `sagas/` is not at hand.
const TRIP_BOOKING: &str = include_str!("../../sagas/trip_booking.toml");

/// Longest the demo waits for its sagas.
const DEMO_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the demo looks whether a saga has finished.
const DEMO_POLL: Duration = Duration::from_millis(10);

/// How long a demo participant takes to answer, typically.
const DEMO_LATENCY: Duration = Duration::from_millis(5);

/// Where the demo runs.
#[derive(Debug, Clone)]
pub(super) struct DemoArgs {
    pub(super) sagas: PathBuf,
    pub(super) database: Option<PathBuf>,
    pub(super) nats_url: Option<String>,
    pub(super) database_url: Option<String>,
    pub(super) subject_prefix: String,
    pub(super) nats_access: NatsAccessArgs,
}

/// Runs the demo.
pub(super) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog(&args.sagas)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("failed to start the async runtime")?;
    if args.nats_url.is_none() && args.database_url.is_none() {
        let path = match args.database {
            Some(path) => path,
            None => fresh_temp_db()?,
        };
        runtime.block_on(demo(catalog, &path))?;
    } else {
        runtime.block_on(infrastructure(catalog, args))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn catalog(sagas: &Path) -> anyhow::Result<Catalog> {
    let dir = loader::load(sagas).ok().filter(|c| c.get("trip_booking").is_some());
    match dir {
        Some(catalog) => Ok(catalog),
        None => Catalog::from_sources([("trip_booking.toml (built in)".to_string(), TRIP_BOOKING.to_string())])
            .context("the built-in trip_booking is invalid"),
    }
}

fn fresh_temp_db() -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("jetsaga-demo-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("failed to remove the old demo database {}", file.display()))?;
        }
    }
    Ok(path)
}

async fn demo(catalog: Catalog, path: &Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.with_context(|| format!("failed to open {url}"))?;
    let orchestrator = Orchestrator::build(&catalog, store, None, OrchestratorConfig::in_process()).await?;
    println!("jetsaga demo: trip_booking with in-process participants, events in SQLite\n");
    run_with_participants(&catalog, orchestrator).await?;
    println!("events are in {}", path.display());
    println!("  look inside: sqlite3 {} 'select saga_id, seq, event_type from events'", path.display());
    Ok(())
}

/// Starts the simulated participants on the orchestrator's transport,
/// shows the two trips, then stops everything.
async fn run_with_participants<S: EventStore + Clone>(catalog: &Catalog, orchestrator: Orchestrator<S>) -> anyhow::Result<()> {
    let config = SimulationConfig { latency: DEMO_LATENCY, ..SimulationConfig::default() };
    let transport = orchestrator.transport().clone();
    let participants = participant::spawn_simulated(transport, config, EffectLedger::new(), orchestrator.stopping())
        .await
        .context("failed to start the simulated participants")?;
    let shown = show(catalog, orchestrator.store(), &orchestrator.handle()).await;
    orchestrator.shutdown().await?;
    for handle in participants {
        handle.await.context("a participant task failed")??;
    }
    shown
}

/// Starts the two trips and prints their timelines from the store.
async fn show<S: EventStore>(catalog: &Catalog, store: &S, handle: &EngineHandle) -> anyhow::Result<()> {
    let ok = start(handle, json!({ "traveller": "Ada Lovelace", "card": "4242-4242-4242-4242" })).await?;
    let declined = start(handle, json!({ "traveller": "Charles Babbage", "card": DECLINED_CARD })).await?;
    for (title, id) in [("1. a trip that completes", ok), ("2. a trip whose payment is refused, so it compensates", declined)] {
        wait_until_finished(store, id).await?;
        let log = store.load(id, None).await?;
        let def = catalog.get("trip_booking").context("trip_booking is not loaded")?;
        let state = saga::fold(def, id, &log);
        println!("{title}");
        println!("{}", crate::cli::timeline::render(id, state.as_ref(), &log));
    }
    Ok(())
}

/// The demo over NATS JetStream and the database at `--database-url`
/// (a fresh SQLite file when only `--nats-url` is given).
async fn infrastructure(catalog: Catalog, args: DemoArgs) -> anyhow::Result<()> {
    let database_url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", fresh_temp_db()?.display()),
    };
    let store = crate::store::open_url(&database_url).await.context("failed to open the event store")?;
    let nats = NatsArgs {
        nats_url: args.nats_url.clone().unwrap_or_else(|| NATS_URL_DEFAULT.to_owned()),
        subject_prefix: args.subject_prefix.clone(),
        access: args.nats_access.clone(),
    };
    let config = nats.jetstream()?;
    let nats_url = config.connection.redacted_url();
    let orchestrator = Orchestrator::build(&catalog, store, None, OrchestratorConfig::jetstream(config))
        .await
        .with_context(|| format!("failed to start over NATS at {nats_url}"))?;
    println!(
        "jetsaga demo: trip_booking over NATS JetStream ({nats_url}, subjects {}.*), events in {}\n",
        args.subject_prefix,
        crate::secret::redact_url(&database_url)
    );
    run_with_participants(&catalog, orchestrator).await?;
    println!(
        "commands went over {}.cmd.>, replies over {}.reply.>; events are in {}",
        args.subject_prefix,
        args.subject_prefix,
        crate::secret::redact_url(&database_url)
    );
    Ok(())
}

async fn start(handle: &EngineHandle, input: Value) -> anyhow::Result<SagaId> {
    let started = handle.start("trip_booking", None, input).await.context("failed to start a saga")?;
    Ok(started.saga_id)
}

async fn wait_until_finished<S: EventStore>(store: &S, id: SagaId) -> anyhow::Result<()> {
    let clock = Clock::system();
    let deadline = clock.instant() + DEMO_TIMEOUT;
    loop {
        let summary = store.summary(id).await?;
        if summary.as_ref().is_some_and(|s| s.status.is_terminal() || s.status == saga::Status::Stuck) {
            return Ok(());
        }
        anyhow::ensure!(clock.instant() < deadline, "saga {id} did not finish within {DEMO_TIMEOUT:?}");
        tokio::time::sleep(DEMO_POLL).await;
    }
}
