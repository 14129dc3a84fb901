//! The fault campaign of issue 8 (docs/reliability.md): its own
//! nats-server and PostgreSQL, `jetsaga serve` processes built with
//! `--features failpoints`, participants with seeded behaviour, and faults
//! at random moments; then a checker that uses none of jetsaga's code.
//!
//! ```text
//! cargo build --release --features failpoints
//! cargo run --release --features failpoints --example torture -- --sagas 10300 --minutes 25 --faults 560 --seed 2
//! ```
//!
//! Exits 0 when the checker finds nothing, 1 on any violation (the seed is
//! printed at the start and on failure, to replay the run), 2 when the run
//! itself could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[path = "campaign/mod.rs"]
mod campaign;

/// The campaign's flags.
#[derive(Debug, Parser)]
#[command(about = "jetsaga's fault campaign: crash points, kills, pauses, database and broker restarts, hostile inputs")]
struct Args {
    /// Sagas to start.
    #[arg(long, default_value_t = 10_000)]
    sagas: u64,
    /// Minutes of load and faults (the quiet period and the check follow).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Faults to inject (at least 7: every crash point once).
    #[arg(long, default_value_t = 560)]
    faults: u64,
    /// Seconds of the database outage (0: none).
    #[arg(long, default_value_t = 30)]
    outage_secs: u64,
    /// The seed every choice follows from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `serve` processes at once.
    #[arg(long, default_value_t = 2)]
    serves: usize,
    /// The `jetsaga` binary built with `--features failpoints` (default:
    /// next to this example's own executable).
    #[arg(long)]
    serve_bin: Option<PathBuf>,
    /// The CI version: 300 sagas, 42 faults, one minute.
    #[arg(long)]
    short: bool,
    /// Keep the temporary directory (logs, data) even when the run passes.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let serve_bin = args.serve_bin.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        exe.parent().and_then(|examples| examples.parent()).map(|dir| dir.join("jetsaga")).unwrap_or_default()
    });
    let sagas_dir = manifest.join("examples/torture/sagas");
    let mut config = campaign::Config::short(args.seed, serve_bin, sagas_dir, jetsaga::failpoints::CRASH_POINTS);
    if !args.short {
        config.sagas = args.sagas;
        config.duration = Duration::from_secs_f64(args.minutes * 60.0);
        config.faults = args.faults;
        config.outage = Duration::from_secs(args.outage_secs);
        config.serves = args.serves;
        config.quiet_max = config.quiet_max.max(config.duration / 2);
    }
    config.keep = args.keep;
    println!(
        "fault campaign: seed {} — {} sagas, {} faults over {:.0?}, {} serve processes, {}",
        config.seed,
        config.sagas,
        config.faults,
        config.duration,
        config.serves,
        config.serve_bin.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(campaign::run(config)) {
        Ok(report) => {
            print!("{}", report.summary());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("fault campaign (seed {}): {error}", args.seed);
            ExitCode::from(2)
        }
    }
}
