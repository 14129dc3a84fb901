//! `jetsaga serve`: the orchestrator over NATS JetStream and a database.
//!
//! Start-up, in this order: bind the ops API's address and serve `/healthz`
//! and `/readyz` at once ([`OpsServer`]); connect the store, retrying
//! while that may pass ([`database`]); apply the migrations, or with
//! `--no-migrate` check the schema is there; then hand over to
//! [`Orchestrator::build_serving`], which records the definitions, connects
//! NATS (retrying too) and starts the engine, consumers, relay and the
//! rest of the ops API. `/readyz` follows every step. SIGTERM or SIGINT
//! ends any of these waits, or stops taking work, finishes the batch in
//! progress and exits 0. One `info` line on start (version, backends with
//! credentials hidden, definitions) and one on stop.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::database::{self, Schema};
use super::ops_access::OpsAccessArgs;
use super::NatsArgs;
use crate::loader;
use crate::ops::{OpsServer, Readiness};
use crate::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::runtime::retention::Retention;
use crate::secret::redact_url;
use crate::transport::jetstream::{
    JetStreamConfig, ACK_WAIT_DEFAULT, DUPLICATE_WINDOW_DEFAULT, STREAM_MAX_AGE_DEFAULT, STREAM_MAX_BYTES_DEFAULT,
};

/// The flags and environment of `jetsaga serve` (SPEC §4).
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ServeArgs {
    /// Where NATS is, and the subject prefix.
    #[command(flatten)]
    pub(super) nats: NatsArgs,
    /// postgres://… or sqlite://… (the backend follows the scheme).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://jetsaga.db")]
    pub(super) database_url: String,
    /// Never change the database schema: check it is at this binary's
    /// migration and fail if it is missing or behind (run `jetsaga migrate`
    /// with a role that may).
    #[arg(long, env = "JETSAGA_NO_MIGRATE")]
    pub(super) no_migrate: bool,
    /// A TOML file of settings, one key per flag (`database-url = "…"`);
    /// flags and environment variables win over it.
    #[arg(long, env = "JETSAGA_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Directory of saga definitions.
    #[arg(long, env = "JETSAGA_SAGAS", default_value = "sagas")]
    pub(super) sagas: PathBuf,
    /// Address of the ops HTTP API.
    #[arg(long, env = "JETSAGA_LISTEN", default_value = "127.0.0.1:8080")]
    pub(super) listen: String,
    /// Who may do what on the ops API, its HTTP limits and TLS.
    #[command(flatten)]
    pub(super) ops: OpsAccessArgs,
    /// Stream replicas.
    #[arg(long, env = "JETSAGA_STREAM_REPLICAS", default_value_t = 1)]
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
    #[arg(long, env = "JETSAGA_DUPLICATE_WINDOW", default_value_t = DUPLICATE_WINDOW_DEFAULT.into())]
    pub(super) duplicate_window: humantime::Duration,
    /// How long a delivered message may stay unacknowledged before redelivery.
    #[arg(long, env = "JETSAGA_ACK_WAIT", default_value_t = ACK_WAIT_DEFAULT.into())]
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
            // Until a signal: `serve` waits for NATS as it waits for the database.
            connect_attempts_max: u32::MAX,
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
    let mut signals = Signals::listen()?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("failed to listen on {}", args.listen))?;
    let server = OpsServer::start(listener, &ops, Arc::new(Readiness::default())).context("failed to serve the ops API")?;
    let readiness = server.readiness().clone();
    log_start(&args, &catalog);
    let schema = if args.no_migrate { Schema::Check } else { Schema::Migrate };
    let prepared = async {
        let store = database::connect(&args.database_url).await?;
        readiness.database.store(true, Ordering::SeqCst);
        let version = database::prepare(&store, schema).await?;
        tracing::info!(migration = version.at(), migrated = (schema == Schema::Migrate), "database schema ready");
        anyhow::Ok(store)
    };
    let store = tokio::select! {
        store = prepared => store?,
        () = signals.recv() => {
            tracing::info!("jetsaga stopped before the database was ready");
            return Ok(());
        }
    };
    let retention = Retention { finished: args.retain_finished.0, poison: args.retain_poison.0 };
    let config = OrchestratorConfig { ops, retention, ..OrchestratorConfig::jetstream(args.jetstream()?) };
    let orchestrator = tokio::select! {
        built = Orchestrator::build_serving(&catalog, store, Some(server), config) => built?,
        () = signals.recv() => {
            tracing::info!("jetsaga stopped before NATS was ready");
            return Ok(());
        }
    };
    tracing::info!("jetsaga ready");
    orchestrator.run_until(signals.recv()).await?;
    tracing::info!("jetsaga stopped");
    Ok(())
}

/// The start line: version, backends (credentials hidden), definitions.
fn log_start(args: &ServeArgs, catalog: &crate::definition::Catalog) {
    let definitions: Vec<String> = catalog.iter().map(|definition| format!("{} v{}", definition.name, definition.version)).collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        database = %redact_url(&args.database_url),
        nats = %redact_url(&args.nats.nats_url),
        subject_prefix = %args.nats.subject_prefix,
        migrations = if args.no_migrate { "check only" } else { "apply" },
        definitions = %definitions.join(", "),
        "jetsaga starting"
    );
}

/// SIGTERM and SIGINT, listened for from the start, so none is missed
/// between two waits.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(Self { term, int })
    }

    /// Resolves on the next SIGTERM or SIGINT.
    pub(super) async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}
