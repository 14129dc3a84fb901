//! The `jetsaga` command line: `serve`, `migrate`, `check`, `demo`,
//! `participants`, `sagas`, `poison`, `completions`.
//!
//! The only place that uses `anyhow`: each subcommand returns
//! `anyhow::Result<ExitCode>` and [`run`] prints the error chain.

mod check;
mod config;
mod database;
mod demo;
mod logging;
mod migrate;
mod ops_access;
#[cfg(feature = "otlp")]
mod otlp;
mod participants;
mod poison;
mod sagas;
mod serve;
pub mod terminal;
pub mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser};

use self::logging::LogFormat;

use crate::secret::Secret;
use crate::transport::jetstream::{JetStreamConfig, NatsConnection, NATS_URL_DEFAULT};
use crate::wire::Subjects;

/// Exit code of a usage error or invalid definitions.
pub const EXIT_USAGE: u8 = 2;

/// jetsaga: a saga orchestrator for distributed transactions.
#[derive(Debug, Parser)]
#[command(name = "jetsaga", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing-subscriber's EnvFilter syntax), e.g. "info" or
    /// "warn,jetsaga=debug"; over RUST_LOG. Default: info for serve and
    /// migrate, warn otherwise.
    #[arg(long, env = "JETSAGA_LOG", global = true)]
    log: Option<String>,
    /// Log lines as text or as JSON objects (one per line), on stderr.
    #[arg(long, env = "JETSAGA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
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
        /// NATS credentials and TLS (with --nats-url).
        #[command(flatten)]
        nats_access: NatsAccessArgs,
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
    /// Apply the database migrations and exit (for `serve --no-migrate`,
    /// whose role may not change the schema).
    ///
    /// Exit 0 once the schema is this binary's; 1 when the database cannot
    /// be reached for good or its schema is newer than this binary.
    Migrate(migrate::MigrateArgs),
    /// Print a shell completion script: `jetsaga completions bash >
    /// /etc/bash_completion.d/jetsaga`, or zsh, fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The operator's view through the ops API: list, show, retry,
    /// compensate, abort; and tail the events stream.
    ///
    /// Exit 0 on success, 1 on an API or connection error (the message
    /// names the URL), 2 on a usage error (e.g. a malformed saga id).
    Sagas(sagas::SagasArgs),
    /// The messages `serve` could not use (poison), through the ops API:
    /// list, show.
    ///
    /// Exit 0 on success, 1 on an API or connection error, 2 on a usage error.
    Poison(poison::PoisonArgs),
}

/// Where the NATS server is and the subject prefix of the deployment:
/// `serve` and every subcommand that joins its streams from outside.
/// (`Debug` hides the URL's user info.)
#[derive(Clone, clap::Args)]
pub(crate) struct NatsArgs {
    /// NATS server URL(s), comma-separated (user info in a URL is never logged).
    #[arg(long, env = "NATS_URL", default_value = NATS_URL_DEFAULT)]
    pub(crate) nats_url: String,
    /// Subject prefix (stream names derive from it); the same for every
    /// process of one deployment.
    #[arg(long, env = "JETSAGA_SUBJECT_PREFIX", default_value = "saga")]
    pub(crate) subject_prefix: String,
    /// Credentials and TLS.
    #[command(flatten)]
    pub(crate) access: NatsAccessArgs,
}

impl std::fmt::Debug for NatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsArgs")
            .field("nats_url", &crate::secret::redact_url(&self.nats_url))
            .field("subject_prefix", &self.subject_prefix)
            .field("access", &self.access)
            .finish()
    }
}

impl NatsArgs {
    /// The transport configuration for this server and prefix, every other
    /// setting at its default.
    pub(crate) fn jetstream(&self) -> anyhow::Result<JetStreamConfig> {
        Ok(JetStreamConfig {
            connection: self.access.connection(&self.nats_url)?,
            prefix: Subjects::new(&self.subject_prefix),
            ..JetStreamConfig::default()
        })
    }
}

/// How every subcommand that connects to NATS authenticates and speaks
/// TLS: one set of options, one [`NatsConnection`]. Secrets come from
/// files (or hidden environment variables), never from a flag's value
/// that `ps` would show.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct NatsAccessArgs {
    /// NATS credentials file (JWT + nkey seed).
    #[arg(long, env = "NATS_CREDS")]
    pub(crate) nats_creds: Option<PathBuf>,
    /// NATS nkey seed, from the environment only (a flag would show in `ps`).
    #[arg(long, env = "NATS_NKEY", hide_env_values = true, hide = true)]
    pub(crate) nats_nkey: Option<Secret>,
    /// File holding the NATS nkey seed (`SU…`).
    #[arg(long, env = "NATS_NKEY_FILE", conflicts_with = "nats_nkey")]
    pub(crate) nats_nkey_file: Option<PathBuf>,
    /// NATS user name (with --nats-password-file).
    #[arg(long, env = "NATS_USER", requires = "nats_password_file")]
    pub(crate) nats_user: Option<String>,
    /// File holding the NATS user's password.
    #[arg(long, env = "NATS_PASSWORD_FILE", requires = "nats_user")]
    pub(crate) nats_password_file: Option<PathBuf>,
    /// File holding a NATS authentication token.
    #[arg(long, env = "NATS_TOKEN_FILE")]
    pub(crate) nats_token_file: Option<PathBuf>,
    /// CA certificate to trust for NATS TLS (PEM).
    #[arg(long, env = "NATS_TLS_CA")]
    pub(crate) nats_tls_ca: Option<PathBuf>,
    /// Client certificate for NATS TLS (PEM).
    #[arg(long, env = "NATS_TLS_CERT", requires = "nats_tls_key")]
    pub(crate) nats_tls_cert: Option<PathBuf>,
    /// Client key for NATS TLS (PEM).
    #[arg(long, env = "NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub(crate) nats_tls_key: Option<PathBuf>,
    /// Refuse a NATS connection without TLS.
    #[arg(long, env = "NATS_REQUIRE_TLS")]
    pub(crate) nats_require_tls: bool,
    /// Prefix of this process's reply inboxes (e.g. `_INBOX_hotels`), to
    /// match a subscribe permission (docs/security.md, NATS accounts and permissions).
    #[arg(long, env = "NATS_INBOX_PREFIX")]
    pub(crate) nats_inbox_prefix: Option<String>,
}

impl NatsAccessArgs {
    /// The connection to `url` with these options, secret files read.
    pub(crate) fn connection(&self, url: &str) -> anyhow::Result<NatsConnection> {
        let read = |path: &PathBuf, what: &str| Secret::from_file(path).with_context(|| format!("failed to read the {what}"));
        let nkey_seed = match &self.nats_nkey_file {
            Some(path) => Some(read(path, "NATS nkey seed file")?),
            None => self.nats_nkey.clone(),
        };
        let connection = NatsConnection {
            credentials_file: self.nats_creds.clone(),
            nkey_seed,
            user: self.nats_user.clone(),
            password: self.nats_password_file.as_ref().map(|path| read(path, "NATS password file")).transpose()?,
            token: self.nats_token_file.as_ref().map(|path| read(path, "NATS token file")).transpose()?,
            tls_ca: self.nats_tls_ca.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
            require_tls: self.nats_require_tls,
            inbox_prefix: self.nats_inbox_prefix.clone(),
            ..NatsConnection::new(url)
        };
        connection.check()?;
        Ok(connection)
    }
}

/// Parses the command line (with `--config`'s file, see [`config`]) and
/// runs the subcommand.
pub fn run() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(file) = cli.subcommand.config_file() {
        if let Err(error) = config::apply(&file, &Cli::command()) {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
        cli = Cli::parse();
    }
    let default_filter = match cli.subcommand {
        Subcommand::Serve(_) | Subcommand::Migrate(_) => "info",
        _ => "warn",
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = match logging::filter(cli.log.as_deref(), rust_log.as_deref(), default_filter) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let _tracing = init_tracing(filter, cli.log_format, &cli.subcommand);
    let _crash_points = crate::failpoints::arm_from_env();
    let result = match cli.subcommand {
        Subcommand::Check { path, cases, seed } => check::run(&path, cases, seed),
        Subcommand::Demo { sagas, database, nats_url, database_url, subject_prefix, nats_access } => {
            demo::run(demo::DemoArgs { sagas, database, nats_url, database_url, subject_prefix, nats_access })
        }
        Subcommand::Participants { simulate, failure_rate, silence_rate, latency, seed, nats } => {
            participants::run(participants::Options { simulate, failure_rate, silence_rate, latency, seed, nats })
        }
        Subcommand::Serve(args) => serve::run(*args),
        Subcommand::Migrate(args) => migrate::run(args),
        Subcommand::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "jetsaga", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Subcommand::Sagas(args) => sagas::run(args),
        Subcommand::Poison(args) => poison::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

impl Subcommand {
    /// The `--config` file of `serve` or `migrate`, if one is named.
    fn config_file(&self) -> Option<PathBuf> {
        match self {
            Subcommand::Serve(args) => args.config.clone(),
            Subcommand::Migrate(args) => args.config.clone(),
            _ => None,
        }
    }
}

/// Keeps the trace exporter (feature `otlp`) alive until the subcommand
/// is done; dropping it flushes the spans still buffered.
struct TracingGuard {
    #[cfg(feature = "otlp")]
    _otlp: Option<otlp::Guard>,
}

/// Logs on stderr ([`logging`]); with the `otlp` feature and `serve
/// --otlp-endpoint`, spans are exported over OTLP too.
fn init_tracing(filter: tracing_subscriber::EnvFilter, format: LogFormat, subcommand: &Subcommand) -> TracingGuard {
    #[cfg(feature = "otlp")]
    {
        let endpoint = match subcommand {
            Subcommand::Serve(args) => args.otlp_endpoint.as_deref(),
            _ => None,
        };
        TracingGuard { _otlp: otlp::init(filter, format, endpoint) }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = subcommand;
        logging::init(filter, format);
        TracingGuard {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats_of(args: &[&str]) -> Result<NatsArgs, clap::Error> {
        let cli = Cli::try_parse_from(["jetsaga", "participants", "--simulate"].iter().chain(args))?;
        match cli.subcommand {
            Subcommand::Participants { nats, .. } => Ok(nats),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn nats_secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (password, seed) = (dir.path().join("password"), dir.path().join("seed"));
        std::fs::write(&password, "pa55word\n").expect("write");
        std::fs::write(&seed, "SUAseedseed\n").expect("write");
        let (password, seed) = (password.to_str().expect("utf-8"), seed.to_str().expect("utf-8"));

        let args =
            nats_of(&["--nats-url", "nats://u:p@h:4222", "--nats-user", "hotels", "--nats-password-file", password]).expect("parsed");
        let connection = args.access.connection(&args.nats_url).expect("a connection");
        assert_eq!((connection.user.as_deref(), connection.password.as_ref().map(Secret::expose)), (Some("hotels"), Some("pa55word")));
        let shown = format!("{args:?} {connection:?}");
        assert!(!shown.contains("pa55word") && !shown.contains("u:p@"), "{shown}");

        let args = nats_of(&["--nats-nkey-file", seed, "--nats-tls-ca", "ca.pem", "--nats-require-tls"]).expect("parsed");
        let connection = args.access.connection(&args.nats_url).expect("a connection");
        assert_eq!(connection.nkey_seed.as_ref().map(Secret::expose), Some("SUAseedseed"));
        assert!(connection.require_tls && connection.tls_ca.is_some());

        assert!(nats_of(&["--nats-user", "hotels"]).is_err(), "a user without a password file");
        let two_ways = nats_of(&["--nats-nkey-file", seed, "--nats-user", "hotels", "--nats-password-file", password]).expect("parsed");
        assert!(two_ways.access.connection(&two_ways.nats_url).is_err(), "two ways to authenticate");
        let missing = nats_of(&["--nats-token-file", "/nonexistent/token"]).expect("parsed");
        let error = format!("{:#}", missing.access.connection(&missing.nats_url).expect_err("no file"));
        assert!(error.contains("/nonexistent/token"), "{error}");
    }
}
