//! `jetsaga serve`: the orchestrator over NATS JetStream and a database.
//!
//! Binds the ops API's address, connects the store (migrations applied),
//! then hands over to [`Orchestrator::build`], which records the
//! definitions, sets up the broker and starts the engine, consumers, relay
//! and ops API. SIGTERM or SIGINT stops taking work, finishes the batch in
//! progress and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::ops_access::OpsAccessArgs;
use super::NatsArgs;
use crate::loader;
use crate::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::runtime::retention::Retention;
use crate::store;
use crate::transport::jetstream::{
    JetStreamConfig, ACK_WAIT_DEFAULT, DUPLICATE_WINDOW_DEFAULT, STREAM_MAX_AGE_DEFAULT, STREAM_MAX_BYTES_DEFAULT,
};

/// Tries to reach the database at start-up.
pub(super) const DATABASE_CONNECT_ATTEMPTS_MAX: u32 = 30;
/// Pause between two of those tries.
const DATABASE_CONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The flags and environment of `jetsaga serve` (SPEC §4).
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ServeArgs {
    /// Where NATS is, and the subject prefix.
    #[command(flatten)]
    pub(super) nats: NatsArgs,
    /// postgres://… or sqlite://… (the backend follows the scheme).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://jetsaga.db")]
    pub(super) database_url: String,
    /// Directory of saga definitions.
    #[arg(long, default_value = "sagas")]
    pub(super) sagas: PathBuf,
    /// Address of the ops HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) listen: String,
    /// Who may do what on the ops API, its HTTP limits and TLS.
    #[command(flatten)]
    pub(super) ops: OpsAccessArgs,
    /// Stream replicas.
    #[arg(long, default_value_t = 1)]
    pub(super) stream_replicas: usize,
    /// How long a stream keeps a message (starts, commands, replies, events).
    #[arg(long, env = "JETSAGA_STREAM_MAX_AGE", default_value_t = STREAM_MAX_AGE_DEFAULT.into())]
    pub(super) stream_max_age: humantime::Duration,
    /// Most bytes one stream keeps; the oldest messages go first.
    #[arg(long, env = "JETSAGA_STREAM_MAX_BYTES", default_value_t = STREAM_MAX_BYTES_DEFAULT)]
    pub(super) stream_max_bytes: i64,
    /// How long finished sagas (completed, compensated, aborted) are kept,
    /// from their last event: a duration, or `forever`.
    #[arg(long, env = "JETSAGA_RETAIN_FINISHED", default_value = "30days", value_parser = retention_period)]
    pub(super) retain_finished: Retained,
    /// How long poison records are kept: a duration, or `forever`.
    #[arg(long, env = "JETSAGA_RETAIN_POISON", default_value = "7days", value_parser = retention_period)]
    pub(super) retain_poison: Retained,
    /// How long the broker drops duplicate message ids.
    #[arg(long, default_value_t = DUPLICATE_WINDOW_DEFAULT.into())]
    pub(super) duplicate_window: humantime::Duration,
    /// How long a delivered message may stay unacknowledged before redelivery.
    #[arg(long, default_value_t = ACK_WAIT_DEFAULT.into())]
    pub(super) ack_wait: humantime::Duration,
    /// OpenTelemetry collector (OTLP/HTTP base URL, e.g. http://127.0.0.1:4318)
    /// to export the engine's spans to.
    #[cfg(feature = "otlp")]
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub(super) otlp_endpoint: Option<String>,
}

impl ServeArgs {
    fn jetstream(&self) -> anyhow::Result<JetStreamConfig> {
        Ok(JetStreamConfig {
            replicas: self.stream_replicas,
            duplicate_window: self.duplicate_window.into(),
            ack_wait: self.ack_wait.into(),
            stream_max_age: self.stream_max_age.into(),
            stream_max_bytes: self.stream_max_bytes,
            ..self.nats.jetstream()?
        })
    }
}

/// A retention period: `None` keeps forever.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retained(Option<Duration>);

fn retention_period(text: &str) -> Result<Retained, String> {
    match text {
        "forever" => Ok(Retained(None)),
        _ => humantime::parse_duration(text).map(|d| Retained(Some(d))).map_err(|e| format!("{e}; use e.g. 30days, 12h, or forever")),
    }
}

/// Runs the orchestrator until a signal stops it.
pub(super) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ops = match args.ops.config() {
        Ok(ops) => ops,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let catalog = match loader::load(&args.sagas) {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("failed to start the async runtime")?;
    runtime.block_on(serve(args, ops, catalog))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs, ops: crate::ops::OpsConfig, catalog: crate::definition::Catalog) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("failed to listen on {}", args.listen))?;
    let store = tokio::select! {
        store = connect_store(&args.database_url) => store?,
        () = signal() => {
            tracing::info!("stopped before the database was reached");
            return Ok(());
        }
    };
    let retention = Retention { finished: args.retain_finished.0, poison: args.retain_poison.0 };
    let config = OrchestratorConfig { ops, retention, ..OrchestratorConfig::jetstream(args.jetstream()?) };
    let orchestrator = Orchestrator::build(&catalog, store, Some(listener), config).await?;
    orchestrator.run_until(signal()).await?;
    tracing::info!("serve stopped");
    Ok(())
}

/// Connects to the database, retrying while it is not up yet; a URL that
/// can never work (an unsupported scheme) fails at once.
async fn connect_store(url: &str) -> anyhow::Result<store::AnyStore> {
    let mut attempt = 1;
    loop {
        match store::open_url(url).await {
            Ok(store) => return Ok(store),
            Err(error @ store::StoreError::Invalid(_)) => return Err(error).context("failed to open the event store"),
            Err(error) if attempt < DATABASE_CONNECT_ATTEMPTS_MAX => {
                tracing::warn!(%error, attempt, "database not reachable yet; retrying");
                tokio::time::sleep(DATABASE_CONNECT_PAUSE).await;
                attempt += 1;
            }
            Err(error) => return Err(error).context("failed to open the event store"),
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot listen for signals");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
