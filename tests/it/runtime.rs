//! The orchestrator over SQLite and the in-process broker: real time, real
//! files, participants on the SDK. Each test states what a user would see.

use jetsaga::definition::Kind;
use jetsaga::orchestrator::OrchestratorError;
use jetsaga::runtime::retention::Retention;
use jetsaga::runtime::EngineError;
use jetsaga::saga::{Input, ReplyStatus, SagaEvent, Status};
use jetsaga::store::StoreError;
use jetsaga::transport::ParticipantTransport as _;
use jetsaga::wire::ReplyBody;
use serde_json::json;
use std::time::Duration;

use crate::support::{always_ok, answer, app, catalog, eventually, fixture, saga_id, silent, spawn_app, with_timeout, AppOptions};

#[tokio::test]
async fn a_saga_runs_every_step_in_order_and_completes() {
    let app = spawn_app(&["trip"], always_ok()).await;
    let started = app.handle.start("trip", None, json!({"who": "ada"})).await.expect("start");
    assert!(started.created);
    assert_eq!(app.settled(started.saga_id).await, Status::Completed);
    let steps: Vec<String> = app.ledger.received().into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(steps, ["flight", "hotel", "pay", "mail"]);
    app.stop().await;
}

#[tokio::test]
async fn finished_sagas_past_their_retention_are_forgotten_and_running_ones_kept() {
    let retention = Retention { finished: Some(Duration::from_secs(1)), poison: None };
    let app = app(&["trip"]).participant("hotels", silent()).timeout("30s").retention(retention).spawn().await;
    let done = app.start("trip", json!({})).await;
    let waiting = app.start("trip", json!({})).await;
    // Both reach the hotel; the hotel never answers, so `waiting` stays running.
    eventually!(
        "both sagas at the hotel",
        (app.ledger.received().iter().filter(|(step, _, _)| step == "hotel").count() == 2).then_some(())
    );
    let (status, body) = app.http("POST", &format!("/sagas/{done}/abort"), Some(r#"{"reason":"test"}"#), Some(crate::support::TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    eventually!("the finished saga to go after its horizon", (app.get(&format!("/sagas/{done}")).await.0 == 404).then_some(()));
    assert_eq!(app.get(&format!("/sagas/{waiting}")).await.0, 200, "a running saga is never forgotten");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_payment_compensates_in_reverse_order() {
    let app = spawn_app(&["trip"], answer(|c| Some(c.step != "pay"))).await;
    let id = app.start("trip", json!({})).await;
    assert_eq!(app.settled(id).await, Status::Compensated);
    let compensations: Vec<String> =
        app.ledger.received().into_iter().filter(|(_, k, _)| *k == Kind::Compensation).map(|(s, _, _)| s).collect();
    assert_eq!(compensations, ["hotel", "flight"]);
    app.stop().await;
}

#[tokio::test]
async fn a_silent_first_attempt_times_out_and_the_retry_succeeds() {
    let silent_once = answer(|c| (c.step != "hotel" || c.attempt > 1).then_some(true));
    let app = app(&["trip"]).timeout("150ms").behaviour(silent_once).spawn().await;
    let id = app.start("trip", json!({})).await;
    assert_eq!(app.settled(id).await, Status::Completed);
    let log = app.types(id).await;
    assert!(log.windows(3).any(|w| w == ["attempt_timed_out", "retry_scheduled", "command_sent"]), "{log:?}");
    assert!(app.ledger.received().contains(&("hotel".into(), Kind::Action, 2)));
    app.stop().await;
}

#[tokio::test]
async fn a_silent_pivot_gets_stuck_and_an_operator_retry_finishes_it() {
    // Payments answers only from attempt 3 on: after the operator's retry.
    let late_payments = answer(|c| (c.step != "pay" || c.attempt >= 3).then_some(true));
    let app = app(&["trip"]).timeout("100ms").behaviour(late_payments).spawn().await;
    let id = app.start("trip", json!({})).await;
    assert_eq!(app.settled(id).await, Status::Stuck);
    let refused = app.handle.operate(id, Input::OperatorCompensate { reason: "undo it".into() }).await;
    assert!(matches!(refused, Err(EngineError::Rejected(ref r)) if r.is_conflict()), "{refused:?}");
    let status = app.handle.operate(id, Input::OperatorRetry { reason: "payments is back".into() }).await.expect("retry accepted");
    assert_eq!(status, Status::Running);
    assert_eq!(app.settled(id).await, Status::Completed);
    let pay_attempts: Vec<u32> = app.ledger.received().into_iter().filter(|(s, _, _)| s == "pay").map(|(_, _, a)| a).collect();
    assert_eq!(pay_attempts, [1, 2, 3], "attempt numbers go on counting");
    let log = app.events(id).await;
    assert!(log.iter().any(|e| matches!(e, SagaEvent::OperatorIntervened { reason, .. } if reason == "payments is back")));
    app.stop().await;
}

#[tokio::test]
async fn starting_twice_with_one_id_returns_the_same_saga() {
    let app = spawn_app(&["trip"], always_ok()).await;
    let id = saga_id(1);
    let first = app.handle.start("trip", Some(id), json!({"n": 1})).await.expect("start");
    let second = app.handle.start("trip", Some(id), json!({"n": 2})).await.expect("start again");
    assert!(first.created && !second.created);
    assert_eq!(second.saga_id, id);
    assert_eq!(app.settled(id).await, Status::Completed);
    assert_eq!(app.types(id).await.iter().filter(|t| **t == "saga_started").count(), 1);
    let unknown = app.handle.start("no_such_saga", None, json!({})).await;
    assert!(matches!(unknown, Err(EngineError::UnknownSagaType(ref t)) if t == "no_such_saga"), "{unknown:?}");
    app.stop().await;
}

#[tokio::test]
async fn bad_replies_are_recorded_as_ignored_and_change_nothing() {
    // Payments never answers, so the saga waits at the pivot while participants send garbage.
    let app = app(&["trip"]).participant("payments", silent()).spawn().await;
    let id = app.start("trip", json!({})).await;
    app.wait_until(id, |s| s.current_step.as_deref() == Some("pay")).await;
    let reply = |saga_id: String, step: &str, attempt: u32| ReplyBody {
        saga_id,
        step: step.into(),
        kind: Kind::Action,
        attempt,
        status: ReplyStatus::Ok,
        output: None,
        error: None,
    };
    let this = id.to_string();
    let garbage = [
        ("flights", reply(this.clone(), "flight", 1)),              // a duplicate
        ("hotels", reply(this.clone(), "pay", 1)),                  // the wrong participant
        ("payments", reply(this.clone(), "pay", 7)),                // an attempt never sent
        ("payments", reply(this.clone(), "spa", 1)),                // an unknown step
        ("payments", reply(saga_id(0xdead).to_string(), "pay", 1)), // an unknown saga
    ];
    for (participant, body) in &garbage {
        app.transport().reply(participant, body, None).await.expect("delivered");
    }
    let ignored = eventually!("four replies ignored", {
        let ignored = app.events(id).await.iter().filter(|e| matches!(e, SagaEvent::InputIgnored { .. })).count();
        (ignored >= 4).then_some(ignored)
    });
    assert_eq!(ignored, 4, "{:?}", app.types(id).await);
    let summary = app.summary(id).await;
    assert_eq!((summary.status, summary.current_step.as_deref()), (Status::Running, Some("pay")));
    app.stop().await;
}

#[tokio::test]
async fn ignored_replies_are_recorded_up_to_a_cap_then_only_counted() {
    let app = app(&["trip"]).participant("payments", silent()).spawn().await;
    let id = app.start("trip", json!({})).await;
    app.wait_until(id, |s| s.current_step.as_deref() == Some("pay")).await;
    let cap = jetsaga::saga::IGNORED_RECORDED_MAX as usize;
    let extra = 7;
    for attempt in 0..(cap + extra) {
        let body = ReplyBody {
            saga_id: id.to_string(),
            step: "pay".into(),
            kind: Kind::Action,
            attempt: 1_000 + attempt as u32, // never sent
            status: ReplyStatus::Ok,
            output: None,
            error: None,
        };
        app.transport().reply("payments", &body, None).await.expect("delivered");
    }
    let ignored = eventually!("the log to hold the ignored replies", {
        let ignored = app.events(id).await.iter().filter(|e| matches!(e, SagaEvent::InputIgnored { .. })).count();
        (ignored >= cap).then_some(ignored)
    });
    assert_eq!(ignored, cap, "the log keeps {cap} ignored inputs, no more");
    eventually!("the replies beyond the cap counted", {
        let metrics = app.metrics().await;
        metrics.lines().any(|l| l == format!("jetsaga_inputs_ignored_unrecorded_total {extra}")).then_some(())
    });
    assert_eq!(app.summary(id).await.status, Status::Running);
    app.stop().await;
}

#[tokio::test]
async fn an_input_nested_too_deep_is_refused_at_the_door() {
    let app = spawn_app(&["trip"], always_ok()).await;
    let deep = (0..=jetsaga::wire::JSON_DEPTH_MAX).fold(json!(1), |inner, _| json!({ "a": inner }));
    let body = json!({ "saga_type": "trip", "input": deep }).to_string();
    let (status, answer) = app.http("POST", "/sagas", Some(&body), None).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["detail"].as_str().is_some_and(|d| d.contains("levels deep")), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_restart_recovers_the_saga_and_resends_with_the_same_idempotency_key() {
    // First life: payments is down, so the saga is in flight at the pivot.
    let app = app(&["trip"]).timeout("10s").participant("payments", silent()).spawn().await;
    let id = app.start("trip", json!({})).await;
    app.wait_until(id, |s| s.current_step.as_deref() == Some("pay")).await;
    let first_life = app.ledger.commands().len();
    // Second life: recovery re-sends attempt 1 of pay at once (not after the 10 s timeout).
    let app = app.restart_with(|o| o.participant("payments", always_ok())).await.expect("restarts");
    assert_eq!(app.settled(id).await, Status::Completed);
    let resent = &app.ledger.commands()[first_life];
    assert_eq!((resent.idempotency_key.as_str(), resent.step.as_str(), resent.attempt), (format!("{id}:pay:action").as_str(), "pay", 1));
    assert_eq!(app.types(id).await.iter().filter(|t| **t == "command_sent").count(), 4, "no new attempt was needed");
    assert!(app.ledger.effects.duplicates().is_empty(), "each effect once");
    app.stop().await;
}

#[tokio::test]
async fn a_saga_keeps_the_definition_version_it_started_on() {
    // First life: v1, and only flights answers.
    let app = app(&["trip"]).timeout("10s").behaviour(silent()).participant("flights", always_ok()).spawn().await;
    let id = app.start("trip", json!({})).await;
    app.wait_until(id, |_| true).await;
    // Version 2 drops the hotel step; the saga started on v1 still books one.
    let hotel = "[[steps]]\nname = \"hotel\"\nparticipant = \"hotels\"\naction = \"reserve\"\ncompensation = \"cancel\"\n\n";
    let v2 = with_timeout(&fixture("trip").replace("version = 1", "version = 2").replace(hotel, ""), "10s");
    assert_eq!(catalog(std::slice::from_ref(&v2)).get("trip").expect("trip").steps.len(), 3);
    let deploy = |o: AppOptions| o.definitions(vec![v2.clone()]).behaviour(always_ok()).participant("hotels", always_ok());
    let app = app.restart_with(deploy).await.expect("v2 deploys");
    assert_eq!(app.settled(id).await, Status::Completed);
    assert_eq!(app.ledger.effects.count(&format!("{id}:hotel:action")), 1, "v1's hotel step ran");
    // Changing v2's content without a new version is refused at start.
    let changed = v2.replace("\"10s\"", "\"11s\"");
    let refused = app.restart_with(|o| o.definitions(vec![changed])).await.err();
    assert!(
        matches!(refused, Some(OrchestratorError::Definitions(EngineError::Store(StoreError::DefinitionChanged { version: 2, .. })))),
        "{refused:?}"
    );
}
