//! Given / when / then tests of SPEC §7 in the core: parallel groups,
//! conditional steps, payload mapping, the saga deadline and heartbeats.
//! One test per rule; the helpers are the parent module's.

use serde_json::json;

use super::*;
use crate::definition::parse;

/// `deadline` (or none), then: a group `travel` of flight and hotel, the
/// conditional car, the pivot pay, and a group `notify` of mail and sms.
fn travel(deadline: Option<&str>) -> SagaDefinition {
    let deadline = deadline.map(|d| format!("deadline = \"{d}\"\n")).unwrap_or_default();
    let text = format!(
        "name = \"trip\"\nversion = 1\n{deadline}\
         [defaults]\ntimeout = \"1s\"\nretry = {{ max_attempts = 3, backoff = \"100ms\", max_backoff = \"1s\" }}\n\
         [[steps]]\nname = \"flight\"\nparticipant = \"flights\"\naction = \"reserve\"\ncompensation = \"cancel\"\ngroup = \"travel\"\n\
         payload = {{ who = \"/input/who\" }}\n\
         [[steps]]\nname = \"hotel\"\nparticipant = \"hotels\"\naction = \"reserve\"\ncompensation = \"cancel\"\ngroup = \"travel\"\n\
         [[steps]]\nname = \"car\"\nparticipant = \"cars\"\naction = \"rent\"\ncompensation = \"return\"\nwhen = \"/input/car\"\n\
         [[steps]]\nname = \"pay\"\nparticipant = \"payments\"\naction = \"charge\"\n\
         payload = {{ card = \"/input/card\", flight = \"/results/flight/ref\", nothing = \"/results/car\" }}\n\
         [[steps]]\nname = \"mail\"\nparticipant = \"notifications\"\naction = \"send\"\ngroup = \"notify\"\n\
         [[steps]]\nname = \"sms\"\nparticipant = \"sms\"\naction = \"send\"\ngroup = \"notify\"\n"
    );
    parse("trip.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Two compensatable groups (a1, a2) and (b1, b2), then c, the pivot d.
fn two_groups() -> SagaDefinition {
    let step = |name: &str, comp: bool, group: &str| {
        let comp = if comp { "compensation = \"undo\"\n" } else { "" };
        let group = if group.is_empty() { String::new() } else { format!("group = \"{group}\"\n") };
        format!("[[steps]]\nname = \"{name}\"\nparticipant = \"p{name}\"\naction = \"do\"\n{comp}{group}")
    };
    let text = format!(
        "name = \"trip\"\nversion = 1\n[defaults]\ntimeout = \"1s\"\nretry = {{ max_attempts = 3, backoff = \"100ms\", max_backoff = \"1s\" }}\n{}{}{}{}{}{}",
        step("a1", true, "a"),
        step("a2", true, "a"),
        step("b1", true, "b"),
        step("b2", true, "b"),
        step("c", true, ""),
        step("d", false, ""),
    );
    parse("two.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn started_with(input: Value) -> SagaEvent {
    SagaEvent::SagaStarted { saga_type: "trip".into(), version: 1, definition_hash: "hash".into(), input, key: None }
}
fn ok_with(participant: &str, name: &str, kind: Kind, attempt: u32, output: Value) -> Input {
    let Input::Reply(mut r) = ok(participant, name, kind, attempt) else { unreachable!() };
    r.output = Some(output);
    Input::Reply(r)
}
fn working(participant: &str, name: &str, attempt: u32) -> Input {
    reply(participant, name, Kind::Action, attempt, ReplyStatus::Working)
}
fn comp_started(reason: &str, keep_in_flight: bool) -> SagaEvent {
    SagaEvent::CompensationStarted { reason: reason.into(), keep_in_flight }
}
fn step_failed(name: &str) -> SagaEvent {
    SagaEvent::StepFailed { step: step(name), kind: Kind::Action, attempt: 1, error: Some("refused".into()) }
}
fn skipped(name: &str) -> SagaEvent {
    SagaEvent::StepSkipped { step: step(name) }
}
fn exhausted(name: &str, kind: Kind) -> SagaEvent {
    SagaEvent::AttemptsExhausted { step: step(name), kind }
}
fn stuck(name: &str, kind: Kind, reason: &str) -> SagaEvent {
    SagaEvent::SagaStuck { step: step(name), kind, reason: reason.into() }
}

/// A command whose attempt times out at `deadline_ms`.
fn sent_until(name: &str, kind: Kind, attempt: u32, deadline_ms: i64) -> SagaEvent {
    SagaEvent::CommandSent { step: step(name), kind, attempt, deadline_ms }
}

/// The hotel's (slow) attempts time out here, long after the flight's.
const HOTEL_DEADLINE: i64 = NOW + 10 * TIMEOUT;

/// flight and hotel sent at once (the travel group in flight).
fn travel_in_flight(input: Value) -> Vec<SagaEvent> {
    vec![started_with(input), sent("flight", Kind::Action, 1), sent_until("hotel", Kind::Action, 1, HOTEL_DEADLINE)]
}

/// `name`'s attempts 1..=3 of `kind` timed out and were retried (attempt 1 already sent).
fn runs_out(mut events: Vec<SagaEvent>, name: &str, kind: Kind) -> Vec<SagaEvent> {
    for attempt in 1..3 {
        events.extend([timed_out(name, kind, attempt), scheduled(name, kind, attempt + 1, 100), sent(name, kind, attempt + 1)]);
    }
    events
}

#[test]
fn a_group_starts_by_sending_all_its_first_commands_at_once() {
    let then = given(travel(None), vec![]).when(Input::Start { input: json!({"who": "ada"}), key: None });
    let started = SagaEvent::SagaStarted {
        saga_type: "trip".into(),
        version: 1,
        definition_hash: travel(None).content_hash,
        input: json!({"who": "ada"}),
        key: None,
    };
    assert_eq!(then, Ok(vec![started, sent("flight", Kind::Action, 1), sent("hotel", Kind::Action, 1)]));
}

#[test]
fn a_group_succeeds_when_every_step_in_it_succeeded() {
    let g = given(travel(None), travel_in_flight(json!({"car": true})));
    assert_eq!(g.when(ok("flights", "flight", Kind::Action, 1)), Ok(vec![succeeded("flight", Kind::Action, 1)]));
    let g = g.and(ok("flights", "flight", Kind::Action, 1));
    assert_eq!(g.when(ok("hotels", "hotel", Kind::Action, 1)), Ok(vec![succeeded("hotel", Kind::Action, 1), sent("car", Kind::Action, 1)]));
}

#[test]
fn the_current_step_lists_the_steps_in_flight() {
    let def = travel(None);
    let g = given(def.clone(), travel_in_flight(json!({})));
    assert_eq!(g.state().unwrap().current_step(&def).as_deref(), Some("flight,hotel"));
    let g = g.and(ok("hotels", "hotel", Kind::Action, 1));
    assert_eq!(g.state().unwrap().current_step(&def).as_deref(), Some("flight"));
}

#[test]
fn a_failure_in_a_group_stops_the_saga_going_forward_but_waits_for_the_siblings() {
    let g = given(travel(None), travel_in_flight(json!({"car": true})));
    let then = g.when(failed("hotels", "hotel", Kind::Action, 1));
    assert_eq!(then, Ok(vec![step_failed("hotel"), comp_started("step hotel failed: refused", true)]));
    let g = g.and(failed("hotels", "hotel", Kind::Action, 1));
    let state = g.state().unwrap();
    assert_eq!(state.status, Status::Compensating, "compensating, though the first compensation waits");
    // The sibling keeps its remaining attempts...
    let then = g.when_at(Input::DeadlinePassed, NOW + TIMEOUT);
    assert_eq!(then, Ok(vec![timed_out("flight", Kind::Action, 1), scheduled("flight", Kind::Action, 2, TIMEOUT + 100)]));
    // ...and once it is conclusive, compensation begins, without the next group.
    let then = g.when(ok("flights", "flight", Kind::Action, 1));
    assert_eq!(then, Ok(vec![succeeded("flight", Kind::Action, 1), sent("flight", Kind::Compensation, 1)]));
}

#[test]
fn a_sibling_that_runs_out_of_attempts_is_compensated_as_unknown() {
    let events = runs_out(travel_in_flight(json!({})), "flight", Kind::Action);
    let g = given(travel(None), events);
    // Out of attempts while the hotel is in flight: the saga compensates, the hotel goes on.
    let then = g.when_at(Input::DeadlinePassed, NOW + TIMEOUT);
    let reason = "step flight had no conclusive reply in 3 attempts; its effect is unknown, so it is compensated too";
    assert_eq!(then, Ok(vec![timed_out("flight", Kind::Action, 3), exhausted("flight", Kind::Action), comp_started(reason, true)]));
    let g = g.and_recorded(then.unwrap());
    assert_eq!(g.state().unwrap().steps[0].action.outcome, Outcome::Unknown);
    // The hotel succeeds: both are undone, at once.
    let then = g.when(ok("hotels", "hotel", Kind::Action, 1));
    assert_eq!(
        then,
        Ok(vec![succeeded("hotel", Kind::Action, 1), sent("flight", Kind::Compensation, 1), sent("hotel", Kind::Compensation, 1)])
    );
}

#[test]
fn compensation_runs_group_by_group_in_reverse_each_group_at_once() {
    let def = two_groups();
    let mut events = vec![started(), sent("a1", Kind::Action, 1), sent("a2", Kind::Action, 1)];
    events.extend([
        succeeded("a1", Kind::Action, 1),
        succeeded("a2", Kind::Action, 1),
        sent("b1", Kind::Action, 1),
        sent("b2", Kind::Action, 1),
    ]);
    events.extend([succeeded("b1", Kind::Action, 1), succeeded("b2", Kind::Action, 1), sent("c", Kind::Action, 1)]);
    let g = given(def, events);
    let then = g.when(failed("pc", "c", Kind::Action, 1));
    assert_eq!(
        then,
        Ok(vec![
            SagaEvent::StepFailed { step: step("c"), kind: Kind::Action, attempt: 1, error: Some("refused".into()) },
            comp_started("step c failed: refused", false),
            sent("b1", Kind::Compensation, 1),
            sent("b2", Kind::Compensation, 1),
        ])
    );
    let g = g.and(failed("pc", "c", Kind::Action, 1));
    // One compensation of the later group is not enough to begin the earlier one.
    assert_eq!(g.when(ok("pb2", "b2", Kind::Compensation, 1)), Ok(vec![succeeded("b2", Kind::Compensation, 1)]));
    let g = g.and(ok("pb2", "b2", Kind::Compensation, 1));
    assert_eq!(
        g.when(ok("pb1", "b1", Kind::Compensation, 1)),
        Ok(vec![succeeded("b1", Kind::Compensation, 1), sent("a1", Kind::Compensation, 1), sent("a2", Kind::Compensation, 1)])
    );
    let g = g.and(ok("pb1", "b1", Kind::Compensation, 1)).and(ok("pa1", "a1", Kind::Compensation, 1));
    assert_eq!(
        g.when(ok("pa2", "a2", Kind::Compensation, 1)),
        Ok(vec![succeeded("a2", Kind::Compensation, 1), SagaEvent::SagaCompensated {}])
    );
}

#[test]
fn a_group_compensation_that_runs_out_is_stuck_once_its_siblings_concluded_and_a_retry_resends_it() {
    let def = two_groups();
    let mut events = vec![started(), sent("a1", Kind::Action, 1), sent("a2", Kind::Action, 1), step_failed("a2")];
    events.extend([comp_started("step a2 failed: refused", true), succeeded("a1", Kind::Action, 1), sent("a1", Kind::Compensation, 1)]);
    // a2 failed, so only a1 is undone: a lone compensation in its group.
    assert_eq!(given(def.clone(), events.clone()).state().unwrap().phase.awaited(), vec![(0, Kind::Compensation)]);
    let mut events = vec![started(), sent("a1", Kind::Action, 1), sent("a2", Kind::Action, 1)];
    events.extend([
        succeeded("a1", Kind::Action, 1),
        succeeded("a2", Kind::Action, 1),
        sent("b1", Kind::Action, 1),
        sent("b2", Kind::Action, 1),
    ]);
    events.extend([step_failed("b1"), comp_started("step b1 failed: refused", true), succeeded("b2", Kind::Action, 1)]);
    events.extend([sent("b2", Kind::Compensation, 1)]);
    let events = runs_out(events, "b2", Kind::Compensation);
    let g = given(def, events);
    let then = g.when_at(Input::DeadlinePassed, NOW + TIMEOUT).unwrap();
    assert_eq!(then[1], stuck("b2", Kind::Compensation, "compensation of b2 did not succeed in 3 attempts"));
    let g = g.and_recorded(then);
    let then = g.when(Input::OperatorRetry { reason: "fixed".into() });
    assert_eq!(
        then,
        Ok(vec![SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: "fixed".into() }, sent("b2", Kind::Compensation, 4)])
    );
}

#[test]
fn a_skipped_step_is_recorded_never_sent_nor_compensated() {
    let def = travel(None);
    let g = given(def.clone(), travel_in_flight(json!({"car": false}))).and(ok("flights", "flight", Kind::Action, 1));
    let then = g.when(ok("hotels", "hotel", Kind::Action, 1));
    assert_eq!(then, Ok(vec![succeeded("hotel", Kind::Action, 1), skipped("car"), sent("pay", Kind::Action, 1)]));
    let g = g.and(ok("hotels", "hotel", Kind::Action, 1));
    assert_eq!(g.state().unwrap().steps[2].action.outcome, Outcome::Skipped);
    // The pivot fails: the group before the skipped step is undone, the skipped step is not.
    let then = g.when(failed("payments", "pay", Kind::Action, 1)).unwrap();
    assert_eq!(then[2..], [sent("flight", Kind::Compensation, 1), sent("hotel", Kind::Compensation, 1)]);
    // A missing pointer or null skips too; any other value runs the step.
    for (input, runs) in [(json!({}), false), (json!({"car": null}), false), (json!({"car": 0}), true), (json!({"car": {}}), true)] {
        let g = given(def.clone(), travel_in_flight(input.clone())).and(ok("flights", "flight", Kind::Action, 1));
        let then = g.when(ok("hotels", "hotel", Kind::Action, 1)).unwrap();
        assert_eq!(then[1] == sent("car", Kind::Action, 1), runs, "{input}");
    }
}

#[test]
fn a_group_whose_steps_are_all_skipped_has_succeeded() {
    let text = "name = \"t\"\nversion = 1\n[defaults]\ntimeout = \"1s\"\n\
        [[steps]]\nname = \"a\"\nparticipant = \"p\"\naction = \"do\"\ncompensation = \"undo\"\ngroup = \"g\"\nwhen = \"/input/a\"\n\
        [[steps]]\nname = \"b\"\nparticipant = \"p\"\naction = \"do\"\ncompensation = \"undo\"\ngroup = \"g\"\nwhen = \"/input/b\"\n\
        [[steps]]\nname = \"c\"\nparticipant = \"p\"\naction = \"do\"\n";
    let def = parse("t.toml", text).unwrap();
    let then = given(def.clone(), vec![]).when(Input::Start { input: json!({}), key: None }).unwrap();
    assert_eq!(then[1..], [skipped("a"), skipped("b"), sent("c", Kind::Action, 1)]);
    let then = given(def.clone(), vec![started_with(json!({}))]).and_recorded([skipped("a"), skipped("b"), sent("c", Kind::Action, 1)]);
    assert_eq!(then.when(ok("p", "c", Kind::Action, 1)), Ok(vec![succeeded("c", Kind::Action, 1), SagaEvent::SagaCompleted {}]));
}

#[test]
fn a_payload_mapping_replaces_input_and_results_for_actions_and_compensations() {
    let def = travel(None);
    let input = json!({"who": "ada", "card": "4242", "car": false});
    let g = given(def.clone(), travel_in_flight(input.clone())).and(ok_with("flights", "flight", Kind::Action, 1, json!({"ref": "F1"})));
    let handled = g.handled(ok("hotels", "hotel", Kind::Action, 1));
    let Effect::Send(pay) = &handled.effects[0] else { panic!("{:?}", handled.effects) };
    assert_eq!(pay.step.as_str(), "pay");
    // A pointer that names nothing gives null.
    assert_eq!(pay.payload, json!({"card": "4242", "flight": "F1", "nothing": null}));
    // A compensation gets the same mapping plus its step's own output.
    let g = g.and(ok("hotels", "hotel", Kind::Action, 1));
    let handled = g.handled(failed("payments", "pay", Kind::Action, 1));
    let Effect::Send(cancel) = &handled.effects[0] else { panic!("{:?}", handled.effects) };
    assert_eq!((cancel.step.as_str(), cancel.kind), ("flight", Kind::Compensation));
    assert_eq!(cancel.payload, json!({"who": "ada", "output": {"ref": "F1"}}));
    // Without a mapping: input and results, as in SPEC §3.
    let Effect::Send(hotel) = &handled.effects[1] else { panic!("{:?}", handled.effects) };
    assert_eq!(hotel.payload, json!({"input": input, "results": {"flight": {"ref": "F1"}, "hotel": null}}));
}

#[test]
fn a_compensation_of_an_unknown_effect_gets_a_null_output() {
    let def = travel(None);
    let events = runs_out(travel_in_flight(json!({"who": "ada"})), "flight", Kind::Action);
    let g = given(def, events).and(failed("hotels", "hotel", Kind::Action, 1));
    let handled = g.handled(Input::DeadlinePassed);
    let sends: Vec<&Command> = handled.effects.iter().filter_map(|e| if let Effect::Send(c) = e { Some(c) } else { None }).collect();
    assert_eq!(sends.len(), 0, "still in flight until its deadline: {handled:?}");
    let handled = g.handled_at(Input::DeadlinePassed, NOW + TIMEOUT);
    let Some(Effect::Send(cancel)) = handled.effects.first() else { panic!("{:?}", handled.effects) };
    assert_eq!(
        (cancel.step.as_str(), cancel.kind, &cancel.payload),
        ("flight", Kind::Compensation, &json!({"who": "ada", "output": null}))
    );
}

#[test]
fn a_payload_is_fixed_at_the_first_attempt_siblings_do_not_see_each_other() {
    let def = travel(None);
    let g = given(def.clone(), travel_in_flight(json!({"who": "ada"})));
    let g = g.and(ok_with("flights", "flight", Kind::Action, 1, json!({"ref": "F1"})));
    let g = g.and_recorded([timed_out("hotel", Kind::Action, 1), scheduled("hotel", Kind::Action, 2, 100)]);
    let handled = g.handled_at(Input::DeadlinePassed, NOW + 100);
    let Effect::Send(hotel) = &handled.effects[0] else { panic!("{:?}", handled.effects) };
    assert_eq!((hotel.attempt, &hotel.payload), (2, &json!({"input": {"who": "ada"}, "results": {}})));
}

#[test]
fn the_saga_deadline_before_the_pivot_makes_every_step_in_flight_unknown_and_compensates() {
    let def = travel(Some("1m"));
    let g = given(def.clone(), travel_in_flight(json!({})));
    let state = g.state().unwrap();
    assert_eq!(state.deadline, SagaDeadline::Pending { at_ms: NOW + 60_000 });
    assert_eq!(state.deadline_ms(), Some(NOW + TIMEOUT), "the earliest of the attempts and the saga deadline");
    let g = g
        .and(ok("flights", "flight", Kind::Action, 1))
        .and_recorded([timed_out("hotel", Kind::Action, 1), scheduled("hotel", Kind::Action, 2, 59_000)]);
    assert_eq!(g.state().unwrap().deadline_ms(), Some(NOW + 59_000));
    let then = g.when_at(Input::DeadlinePassed, NOW + 60_000);
    assert_eq!(
        then,
        Ok(vec![
            SagaEvent::SagaDeadlinePassed {},
            comp_started(DEADLINE, false),
            SagaEvent::CommandSent { step: step("flight"), kind: Kind::Compensation, attempt: 1, deadline_ms: NOW + 60_000 + TIMEOUT },
            SagaEvent::CommandSent { step: step("hotel"), kind: Kind::Compensation, attempt: 1, deadline_ms: NOW + 60_000 + TIMEOUT },
        ])
    );
    let state = g.and_recorded(then.unwrap()).state().unwrap();
    assert_eq!((state.steps[1].action.outcome, state.reason.as_deref()), (Outcome::Unknown, Some("deadline")));
    assert_eq!(state.deadline_ms(), Some(NOW + 60_000 + TIMEOUT), "compensating, the saga deadline is over");
}

#[test]
fn the_saga_deadline_after_the_pivot_makes_it_stuck_once_nothing_is_in_flight_and_a_retry_lifts_it() {
    let def = travel(Some("1m"));
    let mut events = travel_in_flight(json!({}));
    let pay_deadline = NOW + 120_000;
    events.extend([
        succeeded("flight", Kind::Action, 1),
        succeeded("hotel", Kind::Action, 1),
        skipped("car"),
        sent_until("pay", Kind::Action, 1, pay_deadline),
    ]);
    let g = given(def.clone(), events);
    assert_eq!(g.state().unwrap().deadline_ms(), Some(NOW + 60_000));
    let then = g.when_at(Input::DeadlinePassed, NOW + 60_000);
    assert_eq!(then, Ok(vec![SagaEvent::SagaDeadlinePassed {}]));
    let g = g.and_recorded(then.unwrap());
    let state = g.state().unwrap();
    assert_eq!((state.status, state.deadline, state.deadline_ms()), (Status::Running, SagaDeadline::Passed, Some(pay_deadline)));
    // The pivot in flight still concludes; then no group starts.
    let then = g.when(ok("payments", "pay", Kind::Action, 1));
    assert_eq!(then, Ok(vec![succeeded("pay", Kind::Action, 1), stuck("mail", Kind::Action, DEADLINE)]));
    let g = g.and(ok("payments", "pay", Kind::Action, 1));
    assert_eq!((g.state().unwrap().status, g.state().unwrap().deadline_ms()), (Status::Stuck, None));
    let then = g.when(Input::OperatorRetry { reason: "go on".into() });
    assert_eq!(
        then,
        Ok(vec![
            SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: "go on".into() },
            sent("mail", Kind::Action, 1),
            sent("sms", Kind::Action, 1),
        ])
    );
    let state = g.and(Input::OperatorRetry { reason: "go on".into() }).state().unwrap();
    assert_eq!((state.status, state.deadline), (Status::Running, SagaDeadline::Lifted));
}

#[test]
fn a_saga_deadline_met_by_a_late_reply_applies_before_the_next_group() {
    let def = travel(Some("1m"));
    let g = given(def, travel_in_flight(json!({}))).and(ok("flights", "flight", Kind::Action, 1));
    let then = g.when_at(ok("hotels", "hotel", Kind::Action, 1), NOW + 60_001).unwrap();
    assert_eq!(then[..3], [succeeded("hotel", Kind::Action, 1), SagaEvent::SagaDeadlinePassed {}, comp_started(DEADLINE, false)]);
}

#[test]
fn after_the_pivot_a_group_step_that_runs_out_makes_the_saga_stuck_once_its_siblings_are_done() {
    let def = travel(None);
    let mut events = travel_in_flight(json!({}));
    events.extend([
        succeeded("flight", Kind::Action, 1),
        succeeded("hotel", Kind::Action, 1),
        skipped("car"),
        sent("pay", Kind::Action, 1),
    ]);
    events.extend([succeeded("pay", Kind::Action, 1), sent("mail", Kind::Action, 1), sent_until("sms", Kind::Action, 1, HOTEL_DEADLINE)]);
    let events = runs_out(events, "mail", Kind::Action);
    let g = given(def, events);
    let then = g.when_at(Input::DeadlinePassed, NOW + TIMEOUT);
    assert_eq!(then, Ok(vec![timed_out("mail", Kind::Action, 3), exhausted("mail", Kind::Action)]));
    let g = g.and_recorded(then.unwrap());
    assert_eq!(g.state().unwrap().status, Status::Running);
    let then = g.when(ok("sms", "sms", Kind::Action, 1));
    let reason = "step mail after the pivot did not succeed in 3 attempts";
    assert_eq!(then, Ok(vec![succeeded("sms", Kind::Action, 1), stuck("mail", Kind::Action, reason)]));
    let g = g.and(ok("sms", "sms", Kind::Action, 1));
    let then = g.when(Input::OperatorRetry { reason: "again".into() }).unwrap();
    assert_eq!(then[1..], [sent("mail", Kind::Action, 4)]);
}

#[test]
fn a_heartbeat_restarts_the_attempts_timeout_and_never_concludes_the_step() {
    let def = travel(None);
    let g = given(def.clone(), travel_in_flight(json!({})));
    let beat = |deadline_ms| SagaEvent::HeartbeatRecorded { step: step("flight"), kind: Kind::Action, attempt: 1, deadline_ms };
    let then = g.when_at(working("flights", "flight", 1), NOW + 800);
    // Recorded at most once per half timeout, it covers the half's unrecorded ones too.
    assert_eq!(then, Ok(vec![beat(NOW + 800 + TIMEOUT + TIMEOUT / 2)]));
    let g = g.and_recorded(then.unwrap());
    assert_eq!(g.state().unwrap().steps[0].action.outcome, Outcome::Pending);
    // The attempt's first deadline no longer times it out.
    assert_eq!(g.when_at(Input::DeadlinePassed, NOW + TIMEOUT), Err(Rejection::NothingDue));
    assert_eq!(g.when_at(Input::DeadlinePassed, NOW + 800 + TIMEOUT + TIMEOUT / 2).unwrap()[0], timed_out("flight", Kind::Action, 1));
    // Within half a timeout of the recorded one (`given` records it at NOW):
    // not recorded, nor logged as ignored.
    let handled = g.handled_at(working("flights", "flight", 1), NOW + TIMEOUT / 2 - 1);
    assert_eq!((handled.rejection, handled.events.len()), (Some(Rejection::HeartbeatTooSoon), 0));
    assert_eq!(g.when_at(working("flights", "flight", 1), NOW + TIMEOUT), Ok(vec![beat(NOW + 2 * TIMEOUT + TIMEOUT / 2)]));
    // Only the attempt in flight counts: not one backing off.
    let g = given(def, travel_in_flight(json!({})))
        .and_recorded([timed_out("flight", Kind::Action, 1), scheduled("flight", Kind::Action, 2, 100)]);
    assert_eq!(g.when(working("flights", "flight", 1)), Err(Rejection::AttemptAlreadyEnded(1)));
}

#[test]
fn recovery_resends_every_attempt_in_flight() {
    let def = travel(None);
    let state = given(def.clone(), travel_in_flight(json!({}))).state().unwrap();
    let handled = recover(&def, state, Recovery { now_ms: NOW, ack_wait_ms: 5_000 });
    // A grace for each attempt whose deadline is nearer than it: the flight's.
    let grace = SagaEvent::DeadlineExtended { step: step("flight"), kind: Kind::Action, attempt: 1, deadline_ms: NOW + TIMEOUT + 5_000 };
    assert_eq!(handled.events.iter().map(|r| r.event.clone()).collect::<Vec<_>>(), [grace]);
    let sent: Vec<&str> =
        handled.effects.iter().filter_map(|e| if let Effect::Send(c) = e { Some(c.step.as_str()) } else { None }).collect();
    assert_eq!(sent, ["flight", "hotel"]);
    assert_eq!(handled.effects.last(), Some(&Effect::SetDeadline { at_ms: NOW + TIMEOUT + 5_000 }));
}

#[test]
fn an_operator_compensation_abandons_a_whole_group_in_flight() {
    let def = travel(None);
    let g = given(def, travel_in_flight(json!({})));
    let then = g.when(Input::OperatorCompensate { reason: "cancelled".into() }).unwrap();
    assert_eq!(
        then[1..],
        [comp_started("operator: cancelled", false), sent("flight", Kind::Compensation, 1), sent("hotel", Kind::Compensation, 1)]
    );
}

#[test]
fn an_operator_cannot_compensate_once_a_step_after_a_skipped_pivot_was_sent() {
    let text = "name = \"t\"\nversion = 1\n[defaults]\ntimeout = \"1s\"\n\
        [[steps]]\nname = \"a\"\nparticipant = \"p\"\naction = \"do\"\ncompensation = \"undo\"\n\
        [[steps]]\nname = \"pay\"\nparticipant = \"p\"\naction = \"do\"\nwhen = \"/input/pay\"\n\
        [[steps]]\nname = \"mail\"\nparticipant = \"p\"\naction = \"do\"\n";
    let def = parse("t.toml", text).unwrap();
    let events = vec![
        started_with(json!({})),
        sent("a", Kind::Action, 1),
        succeeded("a", Kind::Action, 1),
        skipped("pay"),
        sent("mail", Kind::Action, 1),
    ];
    let then = given(def, events).when(Input::OperatorCompensate { reason: "no".into() });
    assert!(matches!(then, Err(Rejection::NotAllowed(ref why)) if why.contains("cannot be undone")), "{then:?}");
}
