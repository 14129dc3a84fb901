//! `jetsaga check`: validate definitions, then explore their failure paths
//! with the simulator.

use std::path::Path;
use std::process::ExitCode;

use crate::definition::SagaDefinition;
use crate::loader;
use crate::runtime::Clock;
use crate::saga;
use crate::sim::{self, ExploreOptions, Rates};

/// Runs the check; see the subcommand's help for exit codes.
pub(super) fn run(path: &Path, cases: u64, seed: Option<u64>) -> anyhow::Result<ExitCode> {
    let catalog = match loader::load(path) {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let defs: Vec<SagaDefinition> = catalog.iter().cloned().collect();
    let names: Vec<&str> = catalog.names().collect();
    println!("{} definition(s) valid in {}: {}", defs.len(), path.display(), names.join(", "));
    let seed = seed.unwrap_or_else(random_seed);
    let stopwatch = Clock::system();
    let started = stopwatch.instant();
    let result = sim::explore(&defs, ExploreOptions { cases, seed, rates: Rates::default() }, saga::decide);
    let elapsed = started.elapsed();
    let statuses: Vec<String> = result.statuses.iter().map(|(status, n)| format!("{status} {n}")).collect();
    println!("{} cases, {} sagas simulated in {:.1?}: {}", result.cases, result.sagas, elapsed, statuses.join(", "));
    match result.failure {
        None => {
            println!("every invariant held (seed {seed}; replay with --seed {seed})");
            Ok(ExitCode::SUCCESS)
        }
        Some(failure) => {
            println!();
            print!("{}", sim::render_failure(&failure));
            println!("\nreplay the original case: jetsaga check {} --seed {} --cases 1", path.display(), failure.seed);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn random_seed() -> u64 {
    let now_ms = u64::try_from(Clock::system().now_ms()).unwrap_or_default();
    sim::mix(now_ms ^ u64::from(std::process::id())) % 1_000_000_000
}
