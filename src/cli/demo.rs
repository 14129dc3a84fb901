//! `jetsaga demo`: the trip booking on the embedded default.
//!
//! The SDK's simulated participants (no faults; the payment service
//! refuses one card), the in-memory transport and a SQLite file: one saga completes, one is
//! compensated, and both timelines are printed from the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::definition::Catalog;
use crate::loader;
use crate::participant::{self, EffectLedger, SimulationConfig, DECLINED_CARD};
use crate::runtime::{Engine, EngineConfig, EngineHandle, INBOUND_QUEUE_MAX};
use crate::saga::{self, SagaId};
use crate::store::{EventStore, SqliteStore};
use crate::transport::MemoryTransport;

/// The demo definition, for when `sagas/` is not at hand.
const TRIP_BOOKING: &str = include_str!("../../sagas/trip_booking.toml");

/// Longest the demo waits for its sagas.
const DEMO_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a demo participant takes to answer, typically.
const DEMO_LATENCY: Duration = Duration::from_millis(5);

/// Runs the demo.
pub(super) fn run(sagas: &Path, database: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let catalog = catalog(sagas)?;
    let path = match database {
        Some(path) => path,
        None => fresh_temp_db()?,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("failed to start the async runtime")?;
    runtime.block_on(demo(catalog, &path))?;
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
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
    let transport = MemoryTransport::new(inbound_tx);
    let (stop_participants, participants_stopped) = oneshot::channel::<()>();
    let config = SimulationConfig { latency: DEMO_LATENCY, ..SimulationConfig::default() };
    let participants = participant::spawn_simulated(transport.clone(), config, EffectLedger::new(), async move {
        let _ = participants_stopped.await;
    })
    .await
    .context("failed to start the simulated participants")?;
    let engine = Engine::new(store.clone(), transport, &catalog, EngineConfig::default()).await.context("failed to start the engine")?;
    let handle = engine.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(engine.run(inbound, async move {
        let _ = stopped.await;
    }));

    println!("jetsaga demo: trip_booking with in-process participants, events in SQLite\n");
    let ok = start(&handle, json!({ "traveller": "Ada Lovelace", "card": "4242-4242-4242-4242" })).await?;
    let declined = start(&handle, json!({ "traveller": "Charles Babbage", "card": DECLINED_CARD })).await?;
    for (title, id) in [("1. a trip that completes", ok), ("2. a trip whose payment is refused, so it compensates", declined)] {
        wait_until_finished(&store, id).await?;
        let log = store.load(id, None).await?;
        let def = catalog.get("trip_booking").context("trip_booking is not loaded")?;
        let state = saga::fold(def, id, &log);
        println!("{title}");
        println!("{}", crate::cli::timeline::render(id, state.as_ref(), &log));
    }
    let _ = stop.send(());
    running.await.context("the engine task failed")??;
    let _ = stop_participants.send(());
    for handle in participants {
        handle.await.context("a participant task failed")??;
    }
    println!("events are in {}", path.display());
    println!("  look inside: sqlite3 {} 'select saga_id, seq, event_type from events'", path.display());
    Ok(())
}

async fn start(handle: &EngineHandle, input: Value) -> anyhow::Result<SagaId> {
    let started = handle.start("trip_booking", None, input).await.context("failed to start a saga")?;
    Ok(started.saga_id)
}

async fn wait_until_finished<S: EventStore>(store: &S, id: SagaId) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + DEMO_TIMEOUT;
    loop {
        let summary = store.summary(id).await?;
        if summary.as_ref().is_some_and(|s| s.status.is_terminal() || s.status == saga::Status::Stuck) {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "saga {id} did not finish within {DEMO_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
