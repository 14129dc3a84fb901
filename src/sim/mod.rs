//! The deterministic simulator behind `jetsaga check` and the property tests.
//!
//! A virtual clock, a seeded fault schedule, a network that drops,
//! duplicates, delays, reorders and forges messages, participants that
//! refuse or go silent, operators, and an orchestrator that crashes and
//! recovers from its store, all single-threaded and pure: the same
//! definition and schedule always give the same run. After every run the
//! invariants of SPEC §6 are checked; a failing schedule is shrunk to a
//! minimal one and printed with the seed that replays it.

mod checks;
mod fault;
pub mod generate;
mod rng;
mod shrink;
mod world;

pub use fault::{Chooser, Explore, Fault, Point, Rates, Replay};
pub use rng::{mix, Rng};
pub use shrink::{shrink, Case, SHRINK_RUNS_MAX};
pub use world::{SimConfig, EPOCH_MS};

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::definition::SagaDefinition;
use crate::saga::invariants::Violation;
use crate::saga::{Decide, SagaId, Status};

/// What one run showed.
#[derive(Debug, Clone)]
pub struct Report {
    /// Broken invariants (empty: the run is fine).
    pub violations: Vec<Violation>,
    /// What the faults did, in order, with virtual times.
    pub trace: Vec<String>,
    /// How the sagas ended.
    pub statuses: BTreeMap<Status, usize>,
    /// Each saga's log as readable lines, for the sagas with violations.
    pub timelines: BTreeMap<SagaId, Vec<String>>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs `config.sagas` sagas of `def` with the faults `chooser` picks and
/// checks every invariant.
pub fn run(def: &SagaDefinition, config: SimConfig, chooser: &mut dyn Chooser, decide: Decide) -> Report {
    let outcome = world::World::new(def, config, chooser, decide).run();
    let violations = checks::check(def, &outcome);
    let mut timelines = BTreeMap::new();
    for id in violations.iter().filter_map(|v| v.saga_id) {
        if let Some(log) = outcome.store.get(&id) {
            let lines = log.iter().map(|s| format!("+{}ms #{} {} {}", s.at_ms - EPOCH_MS, s.seq, s.event_type, s.data)).collect();
            timelines.insert(id, lines);
        }
    }
    Report { violations, trace: outcome.trace, statuses: world::statuses(def, &outcome.store), timelines }
}

/// Replays a fixed case with the real `decide`.
pub fn replay(def: &SagaDefinition, case: &Case, decide: Decide) -> Report {
    let config = SimConfig { sagas: case.sagas, ..SimConfig::default() };
    run(def, config, &mut Replay::new(case.faults.clone()), decide)
}

/// Options of an exploration (`jetsaga check`).
#[derive(Debug, Clone, Copy)]
pub struct ExploreOptions {
    /// Cases to run; case `i` uses seed `seed + i`.
    pub cases: u64,
    /// The first case's seed.
    pub seed: u64,
    /// How often faults happen.
    pub rates: Rates,
}

/// A case that broke an invariant, shrunk.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The definition it ran.
    pub saga_type: String,
    /// `jetsaga check … --seed <seed> --cases 1` replays the original case.
    pub seed: u64,
    /// The minimal case.
    pub case: Case,
    /// The minimal case's report.
    pub report: Report,
}

/// The result of an exploration.
#[derive(Debug, Clone, Default)]
pub struct Exploration {
    /// Cases run.
    pub cases: u64,
    /// Sagas simulated.
    pub sagas: u64,
    /// How the sagas ended.
    pub statuses: BTreeMap<Status, usize>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

/// How many sagas case `seed` runs (1 to 3).
pub fn sagas_for(seed: u64) -> usize {
    1 + (mix(seed) % 3) as usize
}

/// Explores `defs` with random faults; stops at the first failure and shrinks it.
pub fn explore(defs: &[SagaDefinition], options: ExploreOptions, decide: Decide) -> Exploration {
    let mut result = Exploration::default();
    if defs.is_empty() {
        return result;
    }
    for i in 0..options.cases {
        let seed = options.seed.wrapping_add(i);
        let def = &defs[(mix(seed ^ 0x5eed) % defs.len() as u64) as usize];
        let sagas = sagas_for(seed);
        let mut chooser = Explore::new(seed, options.rates);
        let report = run(def, SimConfig { sagas, ..SimConfig::default() }, &mut chooser, decide);
        result.cases += 1;
        result.sagas += sagas as u64;
        for (status, n) in &report.statuses {
            *result.statuses.entry(*status).or_insert(0) += n;
        }
        if !report.passed() {
            let case = Case { sagas, faults: chooser.into_drawn() };
            let case = shrink(case, &mut |c| !replay(def, c, decide).passed());
            let report = replay(def, &case, decide);
            result.failure = Some(Failure { saga_type: def.name.to_string(), seed, case, report });
            return result;
        }
    }
    result
}

/// A failure, readable: the broken invariants, the minimal schedule, the
/// failing sagas' logs, and how to replay it.
pub fn render_failure(failure: &Failure) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "invariant broken in saga type {} (seed {})", failure.saga_type, failure.seed);
    for v in &failure.report.violations {
        let _ = writeln!(out, "  {v}");
    }
    let _ = writeln!(out, "\nminimal schedule ({} saga(s); faults in the order the run met them):", failure.case.sagas);
    let applied: Vec<String> = failure
        .case
        .faults
        .iter()
        .enumerate()
        .filter(|(_, f)| **f != crate::sim::Fault::None)
        .map(|(i, f)| format!("  decision {i}: {f}"))
        .collect();
    if applied.is_empty() {
        let _ = writeln!(out, "  (no faults at all)");
    }
    for line in applied {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "\nwhat happened:");
    for line in &failure.report.trace {
        let _ = writeln!(out, "  {line}");
    }
    for (id, lines) in &failure.report.timelines {
        let _ = writeln!(out, "\nlog of saga {id}:");
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
