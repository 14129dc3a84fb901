//! Given / when / then tests of the core: one per rule of SPEC §2 (the
//! rules of §7 are in `tests/second_edition.rs`).
//!
//! `given(events).when(input)` folds the events, decides, and returns the
//! new events or the rejection; each test states the exact outcome.

use serde_json::{json, Value};

use super::*;
use crate::definition::{ActionName, Kind, Participant, RetryPolicy, SagaDefinition, SagaType, StepDefinition, StepName};

const NOW: i64 = 1_000_000;
const TIMEOUT: i64 = 1_000;
const RETRY: RetryPolicy = RetryPolicy { attempts_max: 3, backoff_ms: 100, backoff_max_ms: 1_000 };

/// `steps`: (name, participant, compensation?) in file order.
fn definition(steps: &[(&str, &str, Option<&str>)]) -> SagaDefinition {
    SagaDefinition {
        name: SagaType::parse("trip").unwrap(),
        version: 1,
        description: String::new(),
        steps: steps
            .iter()
            .map(|(name, participant, compensation)| StepDefinition {
                name: StepName::parse(name).unwrap(),
                participant: Participant::parse(participant).unwrap(),
                action: ActionName::parse("do").unwrap(),
                compensation: compensation.map(|c| ActionName::parse(c).unwrap()),
                timeout_ms: TIMEOUT as u64,
                retry: RETRY,
                group: None,
                when: None,
                payload: None,
            })
            .collect(),
        deadline_ms: None,
        content_hash: "hash".into(),
        source: String::new(),
    }
}

/// flight, hotel, car (compensatable), pay (the pivot), mail.
fn trip() -> SagaDefinition {
    definition(&[
        ("flight", "flights", Some("cancel")),
        ("hotel", "hotels", Some("cancel")),
        ("car", "cars", Some("return")),
        ("pay", "payments", None),
        ("mail", "notifications", None),
    ])
}

fn id() -> SagaId {
    SagaId::from_u128(42)
}

fn step(name: &str) -> StepName {
    StepName::parse(name).unwrap()
}

fn started() -> SagaEvent {
    SagaEvent::SagaStarted { saga_type: "trip".into(), version: 1, definition_hash: "hash".into(), input: json!({"who": "ada"}), key: None }
}
fn sent(name: &str, kind: Kind, attempt: u32) -> SagaEvent {
    SagaEvent::CommandSent { step: step(name), kind, attempt, deadline_ms: NOW + TIMEOUT }
}
fn succeeded(name: &str, kind: Kind, attempt: u32) -> SagaEvent {
    SagaEvent::StepSucceeded { step: step(name), kind, attempt, output: Value::Null }
}
fn timed_out(name: &str, kind: Kind, attempt: u32) -> SagaEvent {
    SagaEvent::AttemptTimedOut { step: step(name), kind, attempt }
}
fn scheduled(name: &str, kind: Kind, attempt: u32, delay: i64) -> SagaEvent {
    SagaEvent::RetryScheduled { step: step(name), kind, attempt, due_ms: NOW + delay }
}
fn reply(participant: &str, name: &str, kind: Kind, attempt: u32, status: ReplyStatus) -> Input {
    Input::Reply(Reply {
        participant: Participant::parse(participant).unwrap(),
        step: step(name),
        kind,
        attempt,
        status,
        output: None,
        error: (status == ReplyStatus::Failed).then(|| "refused".into()),
    })
}
fn ok(participant: &str, name: &str, kind: Kind, attempt: u32) -> Input {
    reply(participant, name, kind, attempt, ReplyStatus::Ok)
}
fn failed(participant: &str, name: &str, kind: Kind, attempt: u32) -> Input {
    reply(participant, name, kind, attempt, ReplyStatus::Failed)
}

/// The events of a saga whose first `n` actions succeeded and whose
/// action `n` is in flight (attempt 1).
fn at_step(def: &SagaDefinition, n: usize) -> Vec<SagaEvent> {
    let mut events = vec![started()];
    for s in &def.steps[..n] {
        events.push(sent(s.name.as_str(), Kind::Action, 1));
        events.push(succeeded(s.name.as_str(), Kind::Action, 1));
    }
    events.push(sent(def.steps[n].name.as_str(), Kind::Action, 1));
    events
}

struct Given {
    def: SagaDefinition,
    events: Vec<SagaEvent>,
}

fn given(def: SagaDefinition, events: Vec<SagaEvent>) -> Given {
    Given { def, events }
}

impl Given {
    fn state(&self) -> Option<SagaState> {
        let recorded: Vec<Recorded> =
            self.events.iter().enumerate().map(|(i, e)| Recorded { seq: i as u64 + 1, at_ms: NOW, event: e.clone() }).collect();
        fold(&self.def, id(), &recorded)
    }

    fn when_at(&self, input: Input, now_ms: i64) -> Result<Vec<SagaEvent>, Rejection> {
        let decision = decide(&self.def, id(), self.state().as_ref(), &input, &Context::new(now_ms, 1.0))?;
        Ok(decision.new_events().cloned().collect())
    }

    /// The shared decide-and-apply step, as the runtime and simulator run it.
    fn handled(&self, input: Input) -> Handled {
        handle(decide, &self.def, id(), self.state(), &input, &Context::new(NOW, 1.0))
    }

    fn handled_at(&self, input: Input, now_ms: i64) -> Handled {
        handle(decide, &self.def, id(), self.state(), &input, &Context::new(now_ms, 1.0))
    }

    fn when(&self, input: Input) -> Result<Vec<SagaEvent>, Rejection> {
        self.when_at(input, NOW)
    }

    /// Appends events as they are.
    fn and_recorded(mut self, events: impl IntoIterator<Item = SagaEvent>) -> Given {
        self.events.extend(events);
        self
    }

    /// Appends the decided events, for multi-step scenarios.
    fn and(mut self, input: Input) -> Given {
        let new = self.when(input).expect("input accepted");
        self.events.extend(new);
        self
    }
}

#[test]
fn start_records_the_input_and_sends_the_first_action() {
    let def = trip();
    let then = given(def, vec![]).when(Input::Start { input: json!({"who": "ada"}), key: None });
    assert_eq!(then, Ok(vec![started(), sent("flight", Kind::Action, 1)]));
}

#[test]
fn a_start_with_a_key_records_it_in_saga_started_and_the_state() {
    let def = trip();
    let then = given(def.clone(), vec![]).when(Input::Start { input: json!({"who": "ada"}), key: Some("order-1".into()) });
    let keyed = SagaEvent::SagaStarted {
        saga_type: "trip".into(),
        version: 1,
        definition_hash: "hash".into(),
        input: json!({"who": "ada"}),
        key: Some("order-1".into()),
    };
    assert_eq!(then, Ok(vec![keyed.clone(), sent("flight", Kind::Action, 1)]));
    let state = fold(&def, id(), &[Recorded { seq: 1, at_ms: NOW, event: keyed }]).expect("folds");
    assert_eq!(state.key.as_deref(), Some("order-1"));
    // A log written before keys (no `key` in its data) folds as before: no key.
    let old =
        decode(1, "saga_started", json!({"saga_type": "trip", "version": 1, "definition_hash": "hash", "input": {}})).expect("decodes");
    assert!(matches!(&old, SagaEvent::SagaStarted { key: None, .. }), "{old:?}");
    let (_, data) = encode(&started());
    assert!(data.get("key").is_none(), "a keyless start writes no key: {data}");
}

#[test]
fn starting_an_existing_saga_is_refused_so_the_caller_returns_it() {
    assert_eq!(given(trip(), vec![started()]).when(Input::Start { input: json!(1), key: None }), Err(Rejection::AlreadyStarted));
}

#[test]
fn only_a_start_creates_a_saga() {
    assert_eq!(given(trip(), vec![]).when(ok("flights", "flight", Kind::Action, 1)), Err(Rejection::UnknownSaga));
    assert_eq!(given(trip(), vec![]).when(Input::DeadlinePassed), Err(Rejection::UnknownSaga));
}

#[test]
fn an_ok_reply_sends_the_next_step_only_then() {
    let def = trip();
    let events = at_step(&def, 1);
    assert_eq!(
        given(def, events).when(ok("hotels", "hotel", Kind::Action, 1)),
        Ok(vec![succeeded("hotel", Kind::Action, 1), sent("car", Kind::Action, 1)])
    );
}

#[test]
fn the_last_ok_completes_the_saga() {
    let def = trip();
    let events = at_step(&def, 4);
    assert_eq!(
        given(def, events).when(ok("notifications", "mail", Kind::Action, 1)),
        Ok(vec![succeeded("mail", Kind::Action, 1), SagaEvent::SagaCompleted {}])
    );
}

#[test]
fn a_business_failure_compensates_the_finished_steps_last_first() {
    let def = trip();
    let events = at_step(&def, 2);
    let then = given(def, events).when(failed("cars", "car", Kind::Action, 1)).unwrap();
    assert_eq!(
        then,
        vec![
            SagaEvent::StepFailed { step: step("car"), kind: Kind::Action, attempt: 1, error: Some("refused".into()) },
            SagaEvent::CompensationStarted { reason: "step car failed: refused".into(), keep_in_flight: false },
            sent("hotel", Kind::Compensation, 1),
        ]
    );
}

#[test]
fn compensation_goes_on_in_reverse_and_ends_compensated() {
    let def = trip();
    let events = at_step(&def, 2);
    let g = given(def, events).and(failed("cars", "car", Kind::Action, 1));
    assert_eq!(
        g.when(ok("hotels", "hotel", Kind::Compensation, 1)),
        Ok(vec![succeeded("hotel", Kind::Compensation, 1), sent("flight", Kind::Compensation, 1)])
    );
    let g = g.and(ok("hotels", "hotel", Kind::Compensation, 1));
    assert_eq!(
        g.when(ok("flights", "flight", Kind::Compensation, 1)),
        Ok(vec![succeeded("flight", Kind::Compensation, 1), SagaEvent::SagaCompensated {}])
    );
}

#[test]
fn a_first_step_that_fails_compensates_nothing() {
    let def = trip();
    let events = at_step(&def, 0);
    let then = given(def, events).when(failed("flights", "flight", Kind::Action, 1)).unwrap();
    assert_eq!(then.last(), Some(&SagaEvent::SagaCompensated {}));
    assert!(!then.iter().any(|e| matches!(e, SagaEvent::CommandSent { .. })));
}

#[test]
fn a_timeout_schedules_the_next_attempt_after_the_backoff() {
    let def = trip();
    let events = at_step(&def, 1);
    let then = given(def, events).when_at(Input::DeadlinePassed, NOW + TIMEOUT);
    // jitter 1.0: the full first backoff (100 ms) after the timeout.
    let due = NOW + TIMEOUT + 100;
    assert_eq!(
        then,
        Ok(vec![
            timed_out("hotel", Kind::Action, 1),
            SagaEvent::RetryScheduled { step: step("hotel"), kind: Kind::Action, attempt: 2, due_ms: due }
        ])
    );
}

#[test]
fn a_timer_that_is_not_due_changes_nothing() {
    let def = trip();
    let events = at_step(&def, 1);
    assert_eq!(given(def, events).when_at(Input::DeadlinePassed, NOW + TIMEOUT - 1), Err(Rejection::NothingDue));
}

#[test]
fn the_retry_resends_with_the_next_attempt_number() {
    let def = trip();
    let mut events = at_step(&def, 1);
    events.extend([timed_out("hotel", Kind::Action, 1), scheduled("hotel", Kind::Action, 2, 100)]);
    let then = given(def, events).when_at(Input::DeadlinePassed, NOW + 100);
    assert_eq!(
        then,
        Ok(vec![SagaEvent::CommandSent { step: step("hotel"), kind: Kind::Action, attempt: 2, deadline_ms: NOW + 100 + TIMEOUT }])
    );
}

/// Events for a step whose attempts 1..=n all timed out except the last, in flight.
fn retried(mut events: Vec<SagaEvent>, name: &str, kind: Kind, n: u32) -> Vec<SagaEvent> {
    for attempt in 1..n {
        events.push(timed_out(name, kind, attempt));
        events.push(scheduled(name, kind, attempt + 1, 0));
        events.push(sent(name, kind, attempt + 1));
    }
    events
}

#[test]
fn exhausted_attempts_before_the_pivot_compensate_the_unknown_step_too() {
    let def = trip();
    let events = retried(at_step(&def, 1), "hotel", Kind::Action, 3);
    let then = given(def, events).when_at(Input::DeadlinePassed, NOW + TIMEOUT).unwrap();
    assert!(matches!(&then[1], SagaEvent::CompensationStarted { reason, .. } if reason.contains("effect is unknown")), "{then:?}");
    assert_eq!(then[0], timed_out("hotel", Kind::Action, 3));
    let deadline_ms = NOW + 2 * TIMEOUT;
    assert_eq!(then[2], SagaEvent::CommandSent { step: step("hotel"), kind: Kind::Compensation, attempt: 1, deadline_ms });
}

#[test]
fn a_failed_pivot_compensates_the_steps_before_it() {
    let def = trip();
    let events = at_step(&def, 3);
    let then = given(def, events).when(failed("payments", "pay", Kind::Action, 1)).unwrap();
    assert_eq!(then.last(), Some(&sent("car", Kind::Compensation, 1)));
}

#[test]
fn a_silent_pivot_makes_the_saga_stuck() {
    let def = trip();
    let events = retried(at_step(&def, 3), "pay", Kind::Action, 3);
    let then = given(def, events).when_at(Input::DeadlinePassed, NOW + TIMEOUT).unwrap();
    assert!(
        matches!(&then[1], SagaEvent::SagaStuck { step: s, kind: Kind::Action, reason } if s.as_str() == "pay" && reason.contains("cannot be undone"))
    );
}

#[test]
fn after_the_pivot_a_failure_is_retried_forward() {
    let def = trip();
    let events = at_step(&def, 4);
    let then = given(def, events).when(failed("notifications", "mail", Kind::Action, 1)).unwrap();
    assert_eq!(
        then,
        vec![
            SagaEvent::AttemptFailed { step: step("mail"), kind: Kind::Action, attempt: 1, error: Some("refused".into()) },
            scheduled("mail", Kind::Action, 2, 100),
        ]
    );
}

#[test]
fn after_the_pivot_exhausted_attempts_make_the_saga_stuck_not_compensating() {
    let def = trip();
    let events = retried(at_step(&def, 4), "mail", Kind::Action, 3);
    let then = given(def, events).when(failed("notifications", "mail", Kind::Action, 3)).unwrap();
    assert!(matches!(&then[1], SagaEvent::SagaStuck { .. }), "{then:?}");
    assert!(!then.iter().any(|e| matches!(e, SagaEvent::CompensationStarted { .. })));
}

#[test]
fn a_failed_compensation_is_retried_then_stuck() {
    let def = trip();
    let events = at_step(&def, 2);
    let g = given(def, events).and(failed("cars", "car", Kind::Action, 1));
    let then = g.when(failed("hotels", "hotel", Kind::Compensation, 1)).unwrap();
    assert!(matches!(&then[1], SagaEvent::RetryScheduled { attempt: 2, kind: Kind::Compensation, .. }), "{then:?}");
    let events = retried(g.events.clone(), "hotel", Kind::Compensation, 3);
    let then = given(trip(), events).when(failed("hotels", "hotel", Kind::Compensation, 3)).unwrap();
    assert!(matches!(&then[1], SagaEvent::SagaStuck { kind: Kind::Compensation, .. }), "{then:?}");
}

#[test]
fn a_duplicate_reply_is_ignored_and_recorded() {
    let def = trip();
    let events = at_step(&def, 1);
    let input = ok("flights", "flight", Kind::Action, 1);
    let g = given(def, events);
    let rejection = g.when(input.clone()).unwrap_err();
    assert_eq!(rejection, Rejection::NotAwaited { got: "flight:action".into(), awaited: "hotel:action".into() });
    let state = g.state().unwrap();
    assert!(
        matches!(ignored(&state, &input, &rejection), Some(SagaEvent::InputIgnored { reason, .. }) if reason.contains("awaits hotel:action"))
    );
}

#[test]
fn past_the_cap_an_ignored_input_is_counted_not_recorded() {
    let def = trip();
    let mut events = at_step(&def, 1);
    let late = ok("flights", "flight", Kind::Action, 1);
    let ignored_event = SagaEvent::InputIgnored { input: late.to_string(), reason: "late".into() };
    events.extend(std::iter::repeat_n(ignored_event, IGNORED_RECORDED_MAX as usize - 1));
    let g = given(def.clone(), events);
    assert_eq!(g.state().unwrap().ignored, IGNORED_RECORDED_MAX - 1);
    // The last one that fits is recorded; the next one is not.
    let handled = g.handled(late.clone());
    assert_eq!(handled.events.len(), 1);
    let g = given(def, g.events.clone()).and_recorded(handled.events.iter().map(|r| r.event.clone()));
    let handled = g.handled(late);
    assert!(handled.events.is_empty() && handled.rejection.is_some(), "{handled:?}");
}

#[test]
fn a_stale_action_reply_during_compensation_is_ignored() {
    let def = trip();
    let events = at_step(&def, 2);
    let g = given(def, events).and(failed("cars", "car", Kind::Action, 1));
    assert!(matches!(g.when(ok("hotels", "hotel", Kind::Action, 1)), Err(Rejection::NotAwaited { .. })));
}

#[test]
fn a_reply_from_a_participant_that_does_not_own_the_step_is_ignored() {
    let def = trip();
    let events = at_step(&def, 1);
    let then = given(def, events).when(ok("cars", "hotel", Kind::Action, 1));
    assert_eq!(then, Err(Rejection::WrongParticipant { owner: "hotels".into(), sender: "cars".into() }));
}

#[test]
fn replies_for_unsent_attempts_or_unknown_steps_are_ignored() {
    let def = trip();
    let events = at_step(&def, 1);
    let g = given(def, events);
    assert_eq!(g.when(ok("hotels", "hotel", Kind::Action, 2)), Err(Rejection::AttemptNeverSent { attempt: 2, last: 1 }));
    assert_eq!(g.when(ok("hotels", "hotel", Kind::Action, 0)), Err(Rejection::AttemptNeverSent { attempt: 0, last: 1 }));
    assert_eq!(g.when(ok("hotels", "spa", Kind::Action, 1)), Err(Rejection::UnknownStep("spa".into())));
}

#[test]
fn a_late_reply_to_an_earlier_attempt_counts() {
    let def = trip();
    let mut events = at_step(&def, 1);
    events.extend([timed_out("hotel", Kind::Action, 1), scheduled("hotel", Kind::Action, 2, 100)]);
    let then = given(def, events).when(ok("hotels", "hotel", Kind::Action, 1)).unwrap();
    assert_eq!(then, vec![succeeded("hotel", Kind::Action, 1), sent("car", Kind::Action, 1)]);
}

#[test]
fn an_inconclusive_failure_of_an_ended_attempt_changes_nothing() {
    let def = trip();
    let mut events = at_step(&def, 4);
    events.extend([timed_out("mail", Kind::Action, 1), scheduled("mail", Kind::Action, 2, 100)]);
    assert_eq!(given(def, events).when(failed("notifications", "mail", Kind::Action, 1)), Err(Rejection::AttemptAlreadyEnded(1)));
}

#[test]
fn a_finished_saga_ignores_everything() {
    let def = trip();
    let mut events = at_step(&def, 4);
    events.extend([succeeded("mail", Kind::Action, 1), SagaEvent::SagaCompleted {}]);
    let g = given(def, events);
    assert_eq!(g.when(ok("notifications", "mail", Kind::Action, 1)), Err(Rejection::Finished(Status::Completed)));
    assert_eq!(g.when(Input::OperatorAbort { reason: "x".into() }), Err(Rejection::Finished(Status::Completed)));
    assert!(g.when(Input::OperatorAbort { reason: "x".into() }).unwrap_err().is_conflict());
}

fn stuck_at_pivot() -> Given {
    let def = trip();
    let events = retried(at_step(&def, 3), "pay", Kind::Action, 3);
    given(def, events).and_at(Input::DeadlinePassed, NOW + TIMEOUT)
}

impl Given {
    fn and_at(mut self, input: Input, now_ms: i64) -> Given {
        let new = self.when_at(input, now_ms).expect("input accepted");
        self.events.extend(new);
        self
    }
}

#[test]
fn an_operator_retry_goes_on_counting_attempts_with_a_fresh_budget() {
    let g = stuck_at_pivot();
    assert_eq!(g.state().unwrap().status, Status::Stuck);
    let then = g.when(Input::OperatorRetry { reason: "payments is back".into() }).unwrap();
    assert_eq!(
        then,
        vec![SagaEvent::OperatorIntervened { verb: OperatorVerb::Retry, reason: "payments is back".into() }, sent("pay", Kind::Action, 4)]
    );
    // The fresh budget allows three more attempts (4, 5, 6) before stuck again.
    let g = g.and(Input::OperatorRetry { reason: "again".into() });
    assert_eq!(g.state().unwrap().status, Status::Running);
    let g = given(trip(), retried_from(g.events, "pay", 4, 6));
    let then = g.when_at(Input::DeadlinePassed, NOW + TIMEOUT).unwrap();
    assert!(matches!(&then[1], SagaEvent::SagaStuck { .. }), "{then:?}");
}

fn retried_from(mut events: Vec<SagaEvent>, name: &str, first: u32, last: u32) -> Vec<SagaEvent> {
    for attempt in first..last {
        events.push(timed_out(name, Kind::Action, attempt));
        events.push(scheduled(name, Kind::Action, attempt + 1, 0));
        events.push(sent(name, Kind::Action, attempt + 1));
    }
    events
}

#[test]
fn retry_needs_a_stuck_saga() {
    let def = trip();
    let events = at_step(&def, 1);
    assert!(matches!(given(def, events).when(Input::OperatorRetry { reason: "x".into() }), Err(Rejection::NotAllowed(_))));
}

#[test]
fn a_late_conclusive_reply_unsticks_the_saga() {
    let g = stuck_at_pivot();
    let then = g.when(ok("payments", "pay", Kind::Action, 2)).unwrap();
    assert_eq!(then, vec![succeeded("pay", Kind::Action, 2), sent("mail", Kind::Action, 1)]);
    let g = g.and(ok("payments", "pay", Kind::Action, 2));
    assert_eq!(g.state().unwrap().status, Status::Running);
}

#[test]
fn an_operator_compensation_undoes_the_step_in_flight_and_those_before() {
    let def = trip();
    let events = at_step(&def, 2);
    let then = given(def, events).when(Input::OperatorCompensate { reason: "customer cancelled".into() }).unwrap();
    assert_eq!(
        then,
        vec![
            SagaEvent::OperatorIntervened { verb: OperatorVerb::Compensate, reason: "customer cancelled".into() },
            SagaEvent::CompensationStarted { reason: "operator: customer cancelled".into(), keep_in_flight: false },
            sent("car", Kind::Compensation, 1),
        ]
    );
}

#[test]
fn an_operator_cannot_compensate_once_the_pivot_was_sent() {
    let g = stuck_at_pivot();
    let then = g.when(Input::OperatorCompensate { reason: "x".into() });
    assert!(matches!(then, Err(Rejection::NotAllowed(why)) if why.contains("pivot pay")));
}

#[test]
fn an_operator_compensation_resumes_a_compensation_stuck_after_the_pivot_failed() {
    // The pivot refused (no effect), so the steps before it are undone;
    // the hotel's compensation runs out of attempts and the saga is stuck.
    let def = trip();
    let g = given(def.clone(), at_step(&def, 3)).and(failed("payments", "pay", Kind::Action, 1));
    let g = given(def.clone(), g.events).and(ok("cars", "car", Kind::Compensation, 1));
    let events = retried(g.events, "hotel", Kind::Compensation, 3);
    let g = given(def, events).and(failed("hotels", "hotel", Kind::Compensation, 3));
    assert_eq!(g.state().unwrap().status, Status::Stuck);
    let then = g.when(Input::OperatorCompensate { reason: "hotels is back".into() }).unwrap();
    assert_eq!(then[1], sent("hotel", Kind::Compensation, 4));
}

#[test]
fn an_operator_compensation_resumes_a_stuck_compensation() {
    let def = trip();
    let events = at_step(&def, 2);
    let g = given(def, events).and(failed("cars", "car", Kind::Action, 1));
    let events = retried(g.events.clone(), "hotel", Kind::Compensation, 3);
    let g = given(trip(), events).and(failed("hotels", "hotel", Kind::Compensation, 3));
    assert_eq!(g.state().unwrap().status, Status::Stuck);
    let then = g.when(Input::OperatorCompensate { reason: "try again".into() }).unwrap();
    assert_eq!(then[1], sent("hotel", Kind::Compensation, 4));
    let g = g.and(Input::OperatorCompensate { reason: "try again".into() });
    assert_eq!(g.state().unwrap().status, Status::Compensating);
}

#[test]
fn an_abort_is_terminal_and_records_the_reason() {
    let def = trip();
    let events = at_step(&def, 1);
    let g = given(def, events).and(Input::OperatorAbort { reason: "fraud".into() });
    let state = g.state().unwrap();
    assert_eq!(state.status, Status::Aborted);
    assert_eq!(state.reason.as_deref(), Some("operator: fraud"));
    assert!(matches!(g.when(ok("hotels", "hotel", Kind::Action, 1)), Err(Rejection::Finished(Status::Aborted))));
}

#[test]
fn effects_publish_what_was_committed_and_set_the_deadline() {
    let def = trip();
    let handled = given(def.clone(), at_step(&def, 1)).handled(ok("hotels", "hotel", Kind::Action, 1));
    let Effect::Send(command) = &handled.effects[0] else { panic!("{:?}", handled.effects) };
    assert_eq!(command.step.as_str(), "car");
    assert_eq!(command.idempotency_key, format!("{}:car:action", id()));
    assert_eq!(command.message_id, format!("{}:car:action:1", id()));
    assert_eq!(command.payload, json!({"input": {"who": "ada"}, "results": {"flight": null, "hotel": null}}));
    assert_eq!(handled.effects[1], Effect::SetDeadline { at_ms: NOW + TIMEOUT });
    assert_eq!(handled.effects.len(), 2);
}

#[test]
fn the_state_handle_returns_is_the_fold_of_the_log() {
    let def = trip();
    let g = given(def.clone(), at_step(&def, 1));
    let before = g.state().unwrap();
    let handled = g.handled(ok("hotels", "hotel", Kind::Action, 1));
    assert_eq!(handled.expected_seq(), before.seq);
    assert_eq!(handled.events.first().map(|r| r.seq), Some(before.seq + 1));
    let after = given(def.clone(), at_step(&def, 1)).and(ok("hotels", "hotel", Kind::Action, 1)).state();
    assert_eq!(handled.state, after);
    assert_eq!(handled.rejection, None);
}

#[test]
fn a_rejected_reply_is_recorded_and_has_no_effect() {
    let def = trip();
    let handled = given(def.clone(), at_step(&def, 1)).handled(ok("hotels", "hotel", Kind::Action, 7));
    assert_eq!(handled.rejection, Some(Rejection::AttemptNeverSent { attempt: 7, last: 1 }));
    assert!(matches!(handled.events.as_slice(), [r] if matches!(r.event, SagaEvent::InputIgnored { .. })));
    assert_eq!(handled.effects, vec![]);
    // A stale deadline is answered, not recorded.
    let handled = given(def.clone(), at_step(&def, 1)).handled(Input::DeadlinePassed);
    assert_eq!(handled.expected_seq(), handled.state.as_ref().unwrap().seq);
    assert_eq!((handled.rejection, handled.events.len()), (Some(Rejection::NothingDue), 0));
}

#[test]
fn a_timeout_waits_for_the_replies_a_dead_engine_may_hold() {
    let def = trip();
    let g = given(def.clone(), at_step(&def, 1));
    let held_until = NOW + TIMEOUT + 5_000;
    let ctx = Context { now_ms: NOW + TIMEOUT, jitter: 1.0, replies_held_until_ms: Some(held_until) };
    let then = decide(&def, id(), g.state().as_ref(), &Input::DeadlinePassed, &ctx).unwrap();
    let extended = SagaEvent::DeadlineExtended { step: step("hotel"), kind: Kind::Action, attempt: 1, deadline_ms: held_until };
    assert_eq!(then.new_events().cloned().collect::<Vec<_>>(), vec![extended.clone()]);
    // Once that time has passed, the attempt times out as usual.
    let mut events = at_step(&def, 1);
    events.push(extended);
    let g = given(def, events);
    let ctx = Context { now_ms: held_until, ..ctx };
    let then = decide(&g.def, id(), g.state().as_ref(), &Input::DeadlinePassed, &ctx).unwrap();
    assert_eq!(then.events[0].event, timed_out("hotel", Kind::Action, 1));
}

#[test]
fn recovery_resends_the_attempt_in_flight_and_extends_its_deadline() {
    let def = trip();
    let state = given(def.clone(), at_step(&def, 1)).state().unwrap();
    let restart = NOW + 10;
    let handled = recover(&def, state.clone(), Recovery { now_ms: restart, ack_wait_ms: 30_000 });
    let deadline_ms = restart + TIMEOUT + 30_000;
    let extended = SagaEvent::DeadlineExtended { step: step("hotel"), kind: Kind::Action, attempt: 1, deadline_ms };
    assert_eq!(handled.events, vec![Recorded { seq: state.seq + 1, at_ms: restart, event: extended }]);
    assert!(matches!(&handled.effects[0], Effect::Send(c) if c.attempt == 1 && c.message_id.ends_with("hotel:action:1")));
    assert_eq!(handled.effects[1], Effect::SetDeadline { at_ms: deadline_ms });
}

#[test]
fn a_restart_records_the_grace_of_an_attempt_in_flight() {
    let def = trip();
    let state = given(def.clone(), at_step(&def, 1)).state().unwrap();
    let restart = NOW + 10;
    let event = extension(&def, &state, Recovery { now_ms: restart, ack_wait_ms: 30_000 }).into_iter().next().expect("an extension");
    let deadline_ms = restart + TIMEOUT + 30_000;
    assert_eq!(event, SagaEvent::DeadlineExtended { step: step("hotel"), kind: Kind::Action, attempt: 1, deadline_ms });
    let mut events = at_step(&def, 1);
    events.push(event);
    let g = given(def.clone(), events);
    // The old deadline no longer times the attempt out; the new one does.
    assert_eq!(g.when_at(Input::DeadlinePassed, NOW + TIMEOUT), Err(Rejection::NothingDue));
    assert_eq!(g.when_at(Input::DeadlinePassed, deadline_ms).unwrap()[0], timed_out("hotel", Kind::Action, 1));
    // A deadline already far enough away needs no extension.
    assert_eq!(extension(&def, &g.state().unwrap(), Recovery { now_ms: restart, ack_wait_ms: 30_000 }), vec![]);
}

#[test]
fn recovery_keeps_a_backoff_and_leaves_a_stuck_saga_alone() {
    let def = trip();
    let mut events = at_step(&def, 1);
    events.extend([timed_out("hotel", Kind::Action, 1), scheduled("hotel", Kind::Action, 2, 100)]);
    let state = given(def.clone(), events).state().unwrap();
    let handled = recover(&def, state, Recovery { now_ms: NOW, ack_wait_ms: 5 });
    assert_eq!((handled.events, handled.effects), (vec![], vec![Effect::SetDeadline { at_ms: NOW + 100 }]));
    let stuck = stuck_at_pivot().state().unwrap();
    assert_eq!(recover(&def, stuck, Recovery { now_ms: NOW, ack_wait_ms: 5 }).effects, vec![Effect::ClearDeadline]);
}

#[test]
fn a_saga_without_a_pivot_compensates_any_step() {
    let def = definition(&[("a", "p", Some("undo")), ("b", "q", Some("undo"))]);
    let events = at_step(&def, 1);
    let then = given(def, events).when(failed("q", "b", Kind::Action, 1)).unwrap();
    assert_eq!(then.last(), Some(&sent("a", Kind::Compensation, 1)));
}

mod second_edition;
