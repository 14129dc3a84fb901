//! Property tests: the simulator runs many sagas under random faults and
//! crashes, and every SPEC §6 invariant must hold; a failure is shrunk by
//! proptest to a minimal schedule.

use jetsaga::definition::{Kind, SagaDefinition};
use jetsaga::saga::{self, Context, Decision, Input, Rejection, SagaEvent, SagaId, SagaState};
use jetsaga::sim::{self, generate::Shape, ExploreOptions, Fault, Rates, SimConfig};
use proptest::prelude::*;

/// A schedule: faults at chosen decision points, `None` everywhere else.
fn schedule(len: usize) -> impl Strategy<Value = Vec<(usize, Fault)>> {
    prop::collection::vec((0usize..400, fault()), 0..len)
}

fn fault() -> impl Strategy<Value = Fault> {
    // proptest shrinks an enum towards its first option.
    prop_oneof![
        2 => Just(Fault::Drop),
        2 => Just(Fault::Duplicate),
        2 => (1u32..3_000).prop_map(Fault::Delay),
        1 => (0u8..4).prop_map(Fault::Forge),
        3 => Just(Fault::Fail),
        2 => Just(Fault::Silence),
        1 => Just(Fault::Crash),
        1 => Just(Fault::CrashAfterCommit),
        1 => Just(Fault::Retry),
        1 => Just(Fault::Compensate),
        1 => Just(Fault::Abort),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    let steps = prop::collection::vec((100u64..2_000, 1u32..=4), 1..=sim::generate::STEPS_MAX);
    // Groups, conditions and a deadline shrink towards none.
    let second_edition = (prop_oneof![2 => Just(0u64), 1 => any::<u64>()], prop_oneof![2 => Just(0u64), 1 => any::<u64>()], any::<u64>());
    (steps, any::<Option<prop::sample::Index>>(), 10u64..200, second_edition, proptest::option::weighted(0.2, 200u64..8_000)).prop_map(
        |(steps, pivot, backoff_ms, (groups, conditional, holds), deadline_ms)| {
            let pivot = pivot.map(|p| p.index(steps.len()));
            Shape { steps, pivot, backoff_ms, groups, conditional, holds, deadline_ms }
        },
    )
}

/// Sagas simulated by `generated_definitions_hold_every_invariant`.
const GENERATED_CASES: u32 = 5_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: GENERATED_CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_definitions_hold_every_invariant(shape in shape(), sagas in 1usize..=3, faults in schedule(30)) {
        let def = shape.definition();
        let report = sim::run(&def, SimConfig { sagas, ..SimConfig::default() }, &mut sim::Replay::sparse(&faults), saga::decide);
        prop_assert!(report.passed(), "{:#?}\n{}", report.violations, report.trace.join("\n"));
    }
}

#[test]
fn random_exploration_of_generated_shapes_passes() {
    let mut rng = sim::Rng::new(2026);
    let defs: Vec<SagaDefinition> = (0..50).map(|_| Shape::random(&mut rng).definition()).collect();
    let result = sim::explore(&defs, ExploreOptions { cases: 5_000, seed: 1, rates: Rates::default() }, saga::decide);
    if let Some(failure) = &result.failure {
        panic!("{}", sim::render_failure(failure));
    }
    eprintln!("explored {} cases, {} sagas: {:?}", result.cases, result.sagas, result.statuses);
    assert!(result.sagas >= 8_000);
}

/// A mutated `decide` that compensates in file order instead of reverse.
fn compensate_in_file_order(
    def: &SagaDefinition,
    id: SagaId,
    state: Option<&SagaState>,
    input: &Input,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let decision = saga::decide(def, id, state, input, ctx)?;
    let Some(state) = state else { return Ok(decision) };
    let mut events: Vec<SagaEvent> = decision.new_events().cloned().collect();
    for event in &mut events {
        if let SagaEvent::CommandSent { step, kind: Kind::Compensation, attempt: 1, .. } = event {
            let first = (0..def.steps.len()).find(|&i| {
                let s = &state.steps[i];
                s.compensation.outcome != saga::Outcome::Succeeded
                    && s.compensation.last_attempt == 0
                    && s.action.outcome != saga::Outcome::NotSent
                    && s.action.outcome != saga::Outcome::Failed
            });
            if let Some(first) = first {
                *step = def.steps[first].name.clone();
            }
        }
    }
    Ok(saga::apply(def, state.clone(), events, ctx.now_ms))
}

#[test]
fn the_checker_catches_a_decide_that_compensates_in_file_order() {
    let shape = Shape { steps: vec![(500, 2); 4], pivot: Some(3), backoff_ms: 50, ..Shape::default() };
    let def = shape.definition();
    let result =
        sim::explore(std::slice::from_ref(&def), ExploreOptions { cases: 500, seed: 7, rates: Rates::default() }, compensate_in_file_order);
    let failure = result.failure.expect("the mutation must be caught");
    assert!(failure.report.violations.iter().any(|v| v.invariant == 3 || v.invariant == 4), "{:?}", failure.report.violations);
    // Shrunk: few sagas and a couple of faults (a refusal after two steps succeeded).
    assert!(failure.case.sagas <= 2, "not minimal: {:?}", failure.case);
    let faults = failure.case.faults.iter().filter(|f| **f != Fault::None).count();
    assert!(faults <= 2, "not minimal: {:?}", failure.case);
    let text = sim::render_failure(&failure);
    assert!(text.contains("minimal schedule") && text.contains("seed"), "{text}");
    // The printed seed replays a failing run.
    let replayed = sim::explore(
        std::slice::from_ref(&def),
        ExploreOptions { cases: 1, seed: failure.seed, rates: Rates::default() },
        compensate_in_file_order,
    );
    assert!(replayed.failure.is_some());
    // And the minimal case fails on replay, deterministically.
    assert!(!sim::replay(&def, &failure.case, compensate_in_file_order).passed());
    assert!(sim::replay(&def, &failure.case, saga::decide).passed());
}

/// A mutated `decide` that starts compensating the group before as soon as
/// a group's compensations are sent, without waiting for them to succeed.
fn compensate_groups_at_once(
    def: &SagaDefinition,
    id: SagaId,
    state: Option<&SagaState>,
    input: &Input,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let decision = saga::decide(def, id, state, input, ctx)?;
    let Some(before) = state else { return Ok(decision) };
    let mut events: Vec<SagaEvent> = decision.new_events().cloned().collect();
    let first_undo = events.iter().find_map(|e| match e {
        SagaEvent::CommandSent { step, kind: Kind::Compensation, attempt: 1, .. } => def.step_index(step.as_str()),
        _ => None,
    });
    if let Some(first) = first_undo {
        let after = &decision.state;
        for i in (0..def.stage(first).start).rev() {
            let s = &after.steps[i];
            let done = matches!(s.action.outcome, saga::Outcome::Succeeded | saga::Outcome::Unknown);
            if done && s.compensation.last_attempt == 0 && def.steps[i].compensation.is_some() {
                let deadline_ms = ctx.now_ms + i64::try_from(def.steps[i].timeout_ms).unwrap_or(i64::MAX);
                events.push(SagaEvent::CommandSent { step: def.steps[i].name.clone(), kind: Kind::Compensation, attempt: 1, deadline_ms });
            }
        }
    }
    Ok(saga::apply(def, before.clone(), events, ctx.now_ms))
}

#[test]
fn the_checker_catches_a_decide_that_compensates_a_group_out_of_order() {
    // Groups (0, 1) and (2, 3), then step 4, then the pivot 5.
    let shape = Shape { steps: vec![(500, 2); 6], pivot: Some(5), backoff_ms: 50, groups: 0b1010, ..Shape::default() };
    let def = shape.definition();
    assert_eq!(def.stages(), [0..2, 2..4, 4..5, 5..6]);
    let result = sim::explore(
        std::slice::from_ref(&def),
        ExploreOptions { cases: 500, seed: 7, rates: Rates::default() },
        compensate_groups_at_once,
    );
    let failure = result.failure.expect("the mutation must be caught");
    assert!(failure.report.violations.iter().any(|v| v.invariant == 3 || v.invariant == 4), "{:?}", failure.report.violations);
    assert!(!sim::replay(&def, &failure.case, compensate_groups_at_once).passed());
    assert!(sim::replay(&def, &failure.case, saga::decide).passed());
}

#[test]
fn generated_groups_conditions_and_deadlines_hold_every_invariant() {
    let mut rng = sim::Rng::new(711);
    let defs: Vec<SagaDefinition> = (0..50)
        .map(|_| {
            let mut shape = Shape::random(&mut rng);
            shape.groups = rng.next_u64();
            shape.conditional = rng.next_u64() & rng.next_u64();
            shape.deadline_ms = rng.chance(0.5).then(|| 500 + rng.below(5_000));
            shape.definition()
        })
        .collect();
    assert!(defs.iter().any(|d| d.stages().len() < d.steps.len()), "some definitions have groups");
    let result = sim::explore(&defs, ExploreOptions { cases: 3_000, seed: 5, rates: Rates::default() }, saga::decide);
    if let Some(failure) = &result.failure {
        panic!("{}", sim::render_failure(failure));
    }
    eprintln!("groups: {} cases, {} sagas: {:?}", result.cases, result.sagas, result.statuses);
}

#[test]
fn proptest_shrinks_a_mutation_failure_to_a_minimal_schedule() {
    use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
    let def = Shape { steps: vec![(500, 2); 4], pivot: Some(3), backoff_ms: 50, ..Shape::default() }.definition();
    let config = Config { cases: 2_000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let outcome = runner.run(&schedule(20), |faults| {
        let report = sim::run(&def, SimConfig::default(), &mut sim::Replay::sparse(&faults), compensate_in_file_order);
        prop_assert!(report.passed());
        Ok(())
    });
    let Err(TestError::Fail(_, minimal)) = outcome else { panic!("the mutation was not caught: {outcome:?}") };
    // A fault or two out of up to twenty: two steps succeed, a later one
    // is refused (or silent), and the mutation undoes them in the wrong
    // order. Each remaining fault is needed: removing any one passes.
    assert!(minimal.len() <= 2, "not minimal: {minimal:?}");
    for i in 0..minimal.len() {
        let mut fewer = minimal.clone();
        fewer.remove(i);
        assert!(
            sim::run(&def, SimConfig::default(), &mut sim::Replay::sparse(&fewer), compensate_in_file_order).passed(),
            "{fewer:?} still fails"
        );
    }
    let config = SimConfig::default();
    assert!(!sim::run(&def, config, &mut sim::Replay::sparse(&minimal), compensate_in_file_order).passed());
    assert!(sim::run(&def, config, &mut sim::Replay::sparse(&minimal), saga::decide).passed());
}

/// Explores the definitions of the file at `path` (from the crate root)
/// with the real `decide`; panics with the shrunk schedule on a failure.
fn explore_file(path: &str, cases: u64, seed: u64) -> sim::Exploration {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let catalog = jetsaga::loader::load(&path).unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
    let defs: Vec<SagaDefinition> = catalog.iter().cloned().collect();
    let result = sim::explore(&defs, ExploreOptions { cases, seed, rates: Rates::default() }, saga::decide);
    if let Some(failure) = &result.failure {
        panic!("{}", sim::render_failure(failure));
    }
    result
}

#[test]
fn trip_booking_holds_every_invariant_under_faults_and_crashes() {
    let result = explore_file("sagas/trip_booking.toml", 3_000, 11);
    eprintln!("trip_booking: {} cases, {} sagas: {:?}", result.cases, result.sagas, result.statuses);
    assert!(result.sagas >= 5_000);
    // Every ending shows up, so every path was walked.
    for status in [saga::Status::Completed, saga::Status::Compensated, saga::Status::Stuck, saga::Status::Aborted] {
        assert!(result.statuses.get(&status).copied().unwrap_or(0) > 0, "no saga ended {status}: {:?}", result.statuses);
    }
}

#[test]
fn the_spec7_example_holds_every_invariant_under_faults_and_crashes() {
    let result = explore_file("tests/fixtures/definitions/good/spec7_example.toml", 2_000, 17);
    eprintln!("spec7 example: {} cases, {} sagas: {:?}", result.cases, result.sagas, result.statuses);
    assert!(result.statuses.get(&saga::Status::Compensated).is_some_and(|n| *n > 0), "{:?}", result.statuses);
}
