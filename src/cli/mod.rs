//! The `jetsaga` command line: `check`, `demo`.
//!
//! The only place that uses `anyhow`: each subcommand returns
//! `anyhow::Result<ExitCode>` and [`run`] prints the error chain.

mod check;
mod demo;
pub mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Run the booking demo on the embedded default: in-process
    /// participants and a SQLite file, no server needed.
    Demo {
        /// Definitions directory (falls back to the built-in trip_booking).
        #[arg(long, default_value = "sagas")]
        sagas: PathBuf,
        /// The SQLite file to keep the events in (default: a fresh file in the temp directory).
        #[arg(long)]
        database: Option<PathBuf>,
    },
}

/// Parses the command line and runs the subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let result = match cli.command {
        Command::Check { path, cases, seed } => check::run(&path, cases, seed),
        Command::Demo { sagas, database } => demo::run(&sagas, database),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
