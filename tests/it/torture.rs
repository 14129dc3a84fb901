//! The short fault campaign (issue 8), in CI: the campaign of
//! `examples/torture` with a fixed seed — a few hundred sagas, a few dozen
//! faults (every crash point, kills, pauses, PostgreSQL and nats-server
//! restarts, a short database outage, hostile inputs) — judged by its
//! checker, which uses none of jetsaga's code. Needs the `failpoints`
//! feature (scripts/test builds with it).

use std::path::PathBuf;

#[path = "../../examples/torture/campaign/mod.rs"]
#[allow(dead_code)]
mod campaign;

/// The CI run's seed: a failure prints it; replay with
/// `cargo run --features failpoints --example torture -- --short --seed <it>`.
const SEED: u64 = 20_260_801;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs `--features failpoints` (scripts/test builds with it)")]
async fn the_short_fault_campaign_loses_nothing_and_doubles_nothing() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = campaign::Config::short(SEED, PathBuf::from(env!("CARGO_BIN_EXE_jetsaga")), manifest.join("examples/torture/sagas"), jetsaga::failpoints::CRASH_POINTS);
    println!("fault campaign: seed {SEED}");
    let report = campaign::run(config).await.unwrap_or_else(|e| panic!("the campaign could not run (seed {SEED}): {e}"));
    println!("{}", report.summary());
    assert!(report.verdict.sagas >= 250, "too few sagas ran to judge anything (seed {SEED}):\n{}", report.summary());
    assert!(report.passed(), "the fault campaign found violations (seed {SEED}):\n{}", report.summary());
}
