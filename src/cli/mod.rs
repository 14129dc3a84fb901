//! The `jetsaga` command line: `serve`, `check`, `demo`, `participants`,
//! `sagas`.
//!
//! The only place that uses `anyhow`: each subcommand returns
//! `anyhow::Result<ExitCode>` and [`run`] prints the error chain.

mod check;
mod demo;
mod ops_access;
#[cfg(feature = "otlp")]
mod otlp;
mod participants;
mod sagas;
mod serve;
pub mod terminal;
pub mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Exit code of a usage error or invalid definitions.
pub const EXIT_USAGE: u8 = 2;

/// jetsaga: a saga orchestrator for distributed transactions.
#[derive(Debug, Parser)]
#[command(name = "jetsaga", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing-subscriber's EnvFilter syntax), e.g. "info" or "jetsaga=debug".
    #[arg(long, env = "JETSAGA_LOG", default_value = "warn", global = true)]
    log: String,
    #[command(subcommand)]
    subcommand: Subcommand,
}

/// The subcommands. (Not "command": in jetsaga that word means only a
/// message from the orchestrator to a participant.)
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Validate definitions and explore their failure paths by simulation.
    ///
    /// Exit 0 when every invariant holds, 1 when one breaks (the minimal
    /// failing schedule and the seed that replays it are printed), 2 when
    /// the definitions are invalid.
    Check {
        /// A definition file, or a directory of them (*.toml).
        path: PathBuf,
        /// Simulated cases to run (each runs 1 to 3 sagas).
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// Seed of the first case (case i uses seed + i); random when omitted.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Run the booking demo: on the embedded default (in-process
    /// participants and a SQLite file, no server needed), or over NATS
    /// JetStream and PostgreSQL with --nats-url / --database-url.
    Demo {
        /// Definitions directory (falls back to the built-in trip_booking).
        #[arg(long, default_value = "sagas")]
        sagas: PathBuf,
        /// The SQLite file to keep the events in (default: a fresh file in the temp directory).
        #[arg(long, conflicts_with = "database_url")]
        database: Option<PathBuf>,
        /// Run over this NATS server instead of in-process.
        #[arg(long)]
        nats_url: Option<String>,
        /// Keep the events here (postgres://… or sqlite://…); implies NATS.
        #[arg(long)]
        database_url: Option<String>,
        /// Subject prefix of the demo over NATS (kept apart from `saga` by default).
        #[arg(long, default_value = "jetsaga_demo")]
        subject_prefix: String,
    },
    /// Serve simulated participants (flights, hotels, cars, payments,
    /// notifications) over NATS, with seeded failures, silences and latency.
    Participants {
        /// Serve the SDK's simulated participants (the only kind so far).
        #[arg(long)]
        simulate: bool,
        /// Chance (0 to 1) that an attempt is answered `failed`.
        #[arg(long, default_value_t = 0.0)]
        failure_rate: f64,
        /// Chance (0 to 1) that an attempt is acknowledged and never answered.
        #[arg(long, default_value_t = 0.0)]
        silence_rate: f64,
        /// Typical time to answer ("20ms", "1s"); each answer takes 0.5x to 1.5x of it.
        #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
        latency: Duration,
        /// Seed of the dice; random when omitted (printed either way).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// The orchestrator: consumes starts and replies from NATS JetStream,
    /// keeps every saga's events in PostgreSQL (or SQLite), serves the ops API.
    Serve(Box<serve::ServeArgs>),
    /// The operator's view through the ops API: list, show, retry,
    /// compensate, abort; and tail the events stream.
    ///
    /// Exit 0 on success, 1 on an API or connection error (the message
    /// names the URL), 2 on a usage error (e.g. a malformed saga id).
    Sagas(sagas::SagasArgs),
}

/// Where the NATS server is and the subject prefix of the deployment:
/// `serve` and every subcommand that joins its streams from outside.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub(crate) nats_url: String,
    /// Subject prefix (stream names derive from it); the same for every
    /// process of one deployment.
    #[arg(long, env = "JETSAGA_SUBJECT_PREFIX", default_value = "saga")]
    pub(crate) subject_prefix: String,
}

/// Parses the command line and runs the subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let _tracing = init_tracing(&cli.log, &cli.subcommand);
    let _crash_points = crate::failpoints::arm_from_env();
    let result = match cli.subcommand {
        Subcommand::Check { path, cases, seed } => check::run(&path, cases, seed),
        Subcommand::Demo { sagas, database, nats_url, database_url, subject_prefix } => {
            demo::run(demo::DemoArgs { sagas, database, nats_url, database_url, subject_prefix })
        }
        Subcommand::Participants { simulate, failure_rate, silence_rate, latency, seed, nats: NatsArgs { nats_url, subject_prefix } } => {
            participants::run(participants::Options { simulate, failure_rate, silence_rate, latency, seed, nats_url, subject_prefix })
        }
        Subcommand::Serve(args) => serve::run(*args),
        Subcommand::Sagas(args) => sagas::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the trace exporter (feature `otlp`) alive until the subcommand
/// is done; dropping it flushes the spans still buffered.
struct TracingGuard {
    #[cfg(feature = "otlp")]
    _otlp: Option<otlp::Guard>,
}

/// Logs on stderr; with the `otlp` feature and `serve --otlp-endpoint`,
/// spans are exported over OTLP too.
fn init_tracing(filter: &str, subcommand: &Subcommand) -> TracingGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    #[cfg(feature = "otlp")]
    {
        let endpoint = match subcommand {
            Subcommand::Serve(args) => args.otlp_endpoint.as_deref(),
            _ => None,
        };
        TracingGuard { _otlp: otlp::init(filter, endpoint) }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = subcommand;
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
        TracingGuard {}
    }
}
