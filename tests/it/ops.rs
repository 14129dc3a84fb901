//! The ops HTTP API's contract (SPEC §5) as an HTTP client sees it: real
//! requests to an app of the harness (the trip over SQLite; a participant
//! fails its action when the saga's input says `{"fail": "<its step>"}`).

use std::sync::Arc;

use jetsaga::definition::Kind;
use jetsaga::ops::{self, Ops, Readiness};
use jetsaga::runtime::{Clock, Definitions};
use jetsaga::saga::{SagaId, Status};
use serde_json::{json, Value};

use crate::support::{answer, catalog, fixture, http, saga_id, sample, spawn_app, TestApp, TOKEN};

async fn ops_app() -> TestApp {
    spawn_app(&["trip"], answer(|c| Some(!(c.kind == Kind::Action && c.payload["input"]["fail"] == c.step.as_str())))).await
}

#[tokio::test]
async fn health_and_readiness() {
    let app = ops_app().await;
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200, "ready once built");
    let text = app.metrics().await;
    assert!(text.contains("# TYPE jetsaga_poison_messages_total counter\njetsaga_poison_messages_total 0\n"), "{text}");
    // Orchestrator::build is ready before it returns; the parts not ready
    // yet show on a router over flags nobody has set.
    let readiness = Arc::new(Readiness::default());
    let ops = Ops {
        engine: app.handle.clone(),
        store: app.store.clone(),
        definitions: Arc::new(Definitions::new(&catalog(&[fixture("trip")]))),
        readiness: readiness.clone(),
        metrics: Arc::default(),
        relay: Arc::default(),
        gate: ops::Gate::default(),
        limits: ops::HttpLimits::default(),
        clock: Clock::system(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let readyz = format!("http://{}/readyz", listener.local_addr().expect("address"));
    let limits = ops::HttpLimits::default();
    tokio::spawn(ops::serve(listener, ops::router(ops), limits, None, std::future::pending()));
    let (status, body) = http("GET", &readyz, None, None).await.expect("an answer");
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["waiting_for"], json!(["database", "nats", "migrations", "consumers", "relay"]));
    assert_eq!((&body["database"], &body["relay"]), (&json!("waiting"), &json!("waiting")), "{body}");
    readiness.all_ready();
    let (status, body) = http("GET", &readyz, None, None).await.expect("an answer");
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        json!({"status": "ready", "database": "ready", "nats": "ready", "migrations": "ready", "consumers": "ready", "relay": "ready"})
    );
}

#[tokio::test]
async fn start_is_idempotent_and_the_detail_shows_steps_and_events() {
    let app = ops_app().await;
    let id = saga_id(0xaa);
    let body = json!({"saga_type": "trip", "saga_id": id, "input": {"who": "ada"}}).to_string();
    let (status, started) = app.http("POST", "/sagas", Some(&body), None).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["saga_id"], id.to_string());
    let (status, again) = app.http("POST", "/sagas", Some(&body), None).await;
    assert_eq!(status, 200, "an existing id returns 200");
    assert_eq!(again["saga_id"], id.to_string());

    app.wait_for(id, Status::Completed).await;
    let (status, detail) = app.get(&format!("/sagas/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["status"], "completed", "{detail}");
    assert_eq!(
        (detail["saga_type"].clone(), detail["version"].clone(), detail["input"].clone()),
        (json!("trip"), json!(1), json!({"who": "ada"}))
    );
    assert_eq!(
        detail["steps"][0],
        json!({"name": "flight", "status": "succeeded", "attempts": 1, "compensation_attempts": 0, "output": {"ref": "flight"}})
    );
    let types: Vec<&str> = detail["events"].as_array().expect("events").iter().filter_map(|e| e["type"].as_str()).collect();
    let mut expected = vec!["saga_started"];
    expected.extend(["command_sent", "step_succeeded"].repeat(4));
    expected.push("saga_completed");
    assert_eq!(types, expected);
    let first = &detail["events"][0];
    assert_eq!(first["seq"], 1);
    assert!(first["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{first}");
}

#[tokio::test]
async fn errors_are_json_with_fitting_status_codes() {
    let app = ops_app().await;
    let unknown = format!("/sagas/{}", saga_id(0xffff));
    let cases = [
        ("POST", "/sagas", Some(r#"{"saga_type": "nope"}"#), 422, "unknown saga type"),
        ("POST", "/sagas", Some("{not json"), 400, "malformed body"),
        ("POST", "/sagas", Some(r#"{"saga_type": "trip", "colour": 1}"#), 400, "malformed body"),
        ("POST", "/sagas", Some(r#"{"saga_type": "trip", "saga_id": "x"}"#), 400, "malformed saga id"),
        ("GET", "/sagas/not-a-uuid", None, 400, "malformed saga id"),
        ("GET", unknown.as_str(), None, 404, "saga not found"),
    ];
    for (method, path, body, expected, error) in cases {
        let (status, json) = app.http(method, path, body, None).await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {json}");
        assert_eq!(json["error"], error, "{json}");
        assert!(json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{json}");
    }
}

/// Starts a trip over the API and waits until it is `wanted`.
async fn finished_saga(app: &TestApp, id: SagaId, input: Value, wanted: Status) {
    let body = json!({"saga_type": "trip", "saga_id": id, "input": input}).to_string();
    assert_eq!(app.http("POST", "/sagas", Some(&body), None).await.0, 201);
    app.wait_for(id, wanted).await;
}

#[tokio::test]
async fn metrics_count_sagas_by_type_and_status_and_time_the_steps() {
    let app = ops_app().await;
    finished_saga(&app, saga_id(0x401), json!({}), Status::Completed).await;
    finished_saga(&app, saga_id(0x402), json!({"fail": "pay"}), Status::Compensated).await;
    let text = app.metrics().await;
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(value("jetsaga_sagas_started_total{saga_type=\"trip\"}"), 2.0);
    assert_eq!(value("jetsaga_sagas_finished_total{saga_type=\"trip\",status=\"completed\"}"), 1.0);
    assert_eq!(value("jetsaga_sagas_finished_total{saga_type=\"trip\",status=\"compensated\"}"), 1.0);
    for status in ["running", "compensating", "stuck"] {
        assert_eq!(value(&format!("jetsaga_sagas_in_flight{{status=\"{status}\"}}")), 0.0);
    }
    assert_eq!(value("jetsaga_sagas_stuck"), 0.0);
    // flight: two actions and one compensation; pay: one success, one conclusive failure.
    let step =
        |step: &str, kind: &str| format!("jetsaga_step_duration_seconds_count{{saga_type=\"trip\",step=\"{step}\",kind=\"{kind}\"}}");
    assert_eq!(value(&step("flight", "action")), 2.0);
    assert_eq!(value(&step("flight", "compensation")), 1.0);
    assert_eq!(value(&step("pay", "action")), 2.0);
    let inf = "jetsaga_step_duration_seconds_bucket{saga_type=\"trip\",step=\"pay\",kind=\"action\",le=\"+Inf\"}";
    assert_eq!(value(inf), 2.0);
    let sum = value("jetsaga_step_duration_seconds_sum{saga_type=\"trip\",step=\"flight\",kind=\"action\"}");
    assert!((0.0..5.0).contains(&sum), "{sum}");
    // Four for the completed trip; flight, hotel, pay, then two compensations for the other.
    assert_eq!(value("jetsaga_commands_sent_total"), 9.0);
    assert!(value("jetsaga_store_append_duration_seconds_count") >= 1.0);
    assert!(value("jetsaga_group_commits_total") >= 1.0);
    // Every reply after a saga's first commit finds it in the engine's cache;
    // the misses are exported beside the hits (value() fails on a missing series).
    assert!(value("jetsaga_saga_cache_hits_total") >= 1.0);
    assert!(value("jetsaga_saga_cache_misses_total") <= value("jetsaga_saga_cache_hits_total"));
    assert_eq!(value("jetsaga_event_relay_lag_seconds"), 0.0);
    assert!(text.contains("# TYPE jetsaga_step_duration_seconds histogram\n"), "{text}");
    assert!(!text.contains("0190a5c4"), "no saga id in a label: {text}");
}

/// The ids of a page of `GET /sagas`.
fn ids(page: &Value) -> Vec<String> {
    page["sagas"].as_array().expect("sagas").iter().filter_map(|s| s["saga_id"].as_str()).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_list_filters_and_pages_with_a_cursor() {
    let app = ops_app().await;
    let ids_started: Vec<String> = (1..=5).map(|i| saga_id(0x100 + i).to_string()).collect();
    for i in 1..=5 {
        finished_saga(&app, saga_id(0x100 + i), json!({}), Status::Completed).await;
    }
    let (status, page) = app.get("/sagas?status=completed&saga_type=trip&limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), ids_started[..2]);
    let row = &page["sagas"][0];
    for key in ["saga_id", "saga_type", "version", "status", "current_step", "started_at", "updated_at"] {
        assert!(row.get(key).is_some(), "{key} missing in {row}");
    }
    let mut seen = ids(&page);
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, page) = app.get(&format!("/sagas?limit=2&cursor={c}")).await;
        seen.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ids_started);
    assert_eq!(app.get("/sagas?status=stuck").await.1["sagas"], json!([]));
    assert_eq!(app.get("/sagas?stuck_for=30s").await.1["sagas"], json!([]));
    for bad in [
        "/sagas?status=sleepy",
        "/sagas?limit=0",
        "/sagas?limit=100000",
        "/sagas?stuck_for=soon",
        "/sagas?cursor=x",
        "/sagas?colour=red",
        "/sagas?started_after=yesterday",
    ] {
        let (status, body) = app.get(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn time_travel_shows_the_state_at_a_past_seq() {
    let app = ops_app().await;
    let id = saga_id(0x201);
    finished_saga(&app, id, json!({}), Status::Completed).await;
    let (status, then) = app.get(&format!("/sagas/{id}/state?at_seq=3")).await;
    assert_eq!(status, 200, "{then}");
    assert_eq!((then["status"].clone(), then["seq"].clone()), (json!("running"), json!(3)));
    assert_eq!(then["steps"][0]["status"], "succeeded");
    assert_eq!(then["steps"][1]["status"], "pending");
    let (_, now) = app.get(&format!("/sagas/{id}/state?at=2999-01-01T00:00:00Z")).await;
    assert_eq!(now["status"], "completed");
    assert_eq!(app.get(&format!("/sagas/{id}/state?at=1999-01-01T00:00:00Z")).await.0, 404);
    assert_eq!(app.get(&format!("/sagas/{id}/state")).await.0, 400);
}

#[tokio::test]
async fn operator_verbs_need_the_token_and_a_status_that_allows_them() {
    let app = ops_app().await;
    let id = saga_id(0x301);
    finished_saga(&app, id, json!({}), Status::Completed).await;
    let operate = |id: SagaId, verb: &'static str, token: Option<&'static str>, body: &'static str| {
        let path = format!("/sagas/{id}/{verb}");
        let app = &app;
        async move { app.http("POST", &path, Some(body), token).await }
    };
    let reason = r#"{"reason": "customer called"}"#;
    assert_eq!(operate(id, "abort", None, reason).await.0, 401);
    assert_eq!(operate(id, "abort", Some("wrong"), reason).await.0, 401);
    let (status, body) = operate(id, "abort", Some(TOKEN), reason).await;
    assert_eq!(status, 409, "a completed saga cannot be aborted: {body}");
    assert_eq!(operate(id, "retry", Some(TOKEN), reason).await.0, 409);
    assert_eq!(operate(id, "dance", Some(TOKEN), reason).await.0, 404);
    assert_eq!(operate(id, "abort", Some(TOKEN), "{}").await.0, 400);
    assert_eq!(operate(id, "abort", Some(TOKEN), r#"{"reason": " "}"#).await.0, 400);
    assert_eq!(operate(saga_id(0xffff), "abort", Some(TOKEN), reason).await.0, 404);
}

#[tokio::test]
async fn a_business_key_finds_its_saga_and_refuses_another_id() {
    let app = ops_app().await;
    let start = |body: Value| {
        let app = &app;
        async move { app.http("POST", "/sagas", Some(&body.to_string()), None).await }
    };
    let (status, first) = start(json!({"saga_type": "trip", "key": "order-1", "input": {"n": 1}})).await;
    assert_eq!(status, 201, "{first}");
    let id = first["saga_id"].as_str().expect("an id").to_owned();
    let (status, again) = start(json!({"saga_type": "trip", "key": "order-1", "input": {"n": 2}})).await;
    assert_eq!((status, again["saga_id"].as_str()), (200, Some(id.as_str())), "a taken key returns its saga: {again}");
    let (status, same) = start(json!({"saga_type": "trip", "key": "order-1", "saga_id": id})).await;
    assert_eq!((status, same["saga_id"].as_str()), (200, Some(id.as_str())), "{same}");
    let other = saga_id(0xbeef).to_string();
    let (status, refused) = start(json!({"saga_type": "trip", "key": "order-1", "saga_id": other})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!((refused["error"].as_str(), refused["saga_id"].as_str()), (Some("key taken"), Some(id.as_str())), "{refused}");
    assert_eq!(app.get(&format!("/sagas/{other}")).await.0, 404, "the refused start made no saga");
    let (status, _) = start(json!({"saga_type": "trip", "key": "order-2", "saga_id": other})).await;
    assert_eq!(status, 201, "another key is free");

    let (status, page) = app.get("/sagas?saga_type=trip&key=order-1").await;
    assert_eq!(status, 200);
    let rows = page["sagas"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{page}");
    assert_eq!((rows[0]["saga_id"].as_str(), rows[0]["key"].as_str()), (Some(id.as_str()), Some("order-1")));
    let (_, detail) = app.get(&format!("/sagas/{id}")).await;
    assert_eq!((detail["key"].as_str(), &detail["input"]), (Some("order-1"), &json!({"n": 1})), "the first start's input");
    let (_, keyless) = start(json!({"saga_type": "trip"})).await;
    let (_, detail) = app.get(&format!("/sagas/{}", keyless["saga_id"].as_str().expect("id"))).await;
    assert_eq!(detail["key"], Value::Null);

    for bad in [json!(""), json!("k".repeat(201))] {
        let (status, body) = start(json!({"saga_type": "trip", "key": bad})).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("malformed body")), "{body}");
    }
    let (status, _) = start(json!({"saga_type": "trip", "key": "é".repeat(200)})).await;
    assert_eq!(status, 201, "200 characters are a key, whatever their bytes");
}

#[tokio::test]
async fn concurrent_starts_of_one_key_make_one_saga() {
    let app = Arc::new(ops_app().await);
    let tasks: Vec<_> = (0..24)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let body = json!({"saga_type": "trip", "key": "rush", "input": {"n": n}}).to_string();
                app.http("POST", "/sagas", Some(&body), None).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("joined"));
    }
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|(status, _)| *status == 200 || *status == 201), "{answers:?}");
    let ids: std::collections::BTreeSet<String> =
        answers.iter().filter_map(|(_, body)| body["saga_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(ids.len(), 1, "every start got the one saga: {ids:?}");
    let (_, page) = app.get("/sagas?saga_type=trip&key=rush").await;
    assert_eq!(page["sagas"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_start_runs_the_version_it_names_else_the_highest() {
    let v1 = fixture("trip");
    let v2 = v1.replace("version = 1", "version = 2").replace("[[steps]]\nname = \"mail\"", "[[steps]]\nname = \"mail_v2\"");
    assert_ne!(v1, v2);
    let app = crate::support::app(&[]).definitions(vec![v2, v1]).spawn().await;
    let start = |body: Value| {
        let app = &app;
        async move { app.http("POST", "/sagas", Some(&body.to_string()), None).await }
    };
    let (status, latest) = start(json!({"saga_type": "trip"})).await;
    assert_eq!(status, 201, "{latest}");
    let (status, old) = start(json!({"saga_type": "trip", "version": 1})).await;
    assert_eq!(status, 201, "{old}");
    for (answer, version, last_step) in [(&latest, 2, "mail_v2"), (&old, 1, "mail")] {
        let id: SagaId = answer["saga_id"].as_str().expect("id").parse().expect("uuid");
        app.wait_for(id, Status::Completed).await;
        let (_, detail) = app.get(&format!("/sagas/{id}")).await;
        assert_eq!(detail["version"], version, "{detail}");
        assert_eq!(detail["steps"][3]["name"], last_step, "{detail}");
    }
    let (status, unknown) = start(json!({"saga_type": "trip", "version": 3})).await;
    assert_eq!((status, unknown["error"].as_str()), (422, Some("unknown version")), "{unknown}");
    let (status, zero) = start(json!({"saga_type": "trip", "version": 0})).await;
    assert_eq!(status, 400, "{zero}");
}

#[tokio::test]
async fn a_start_may_wait_for_the_end_and_the_detail_carries_results() {
    let app = ops_app().await;
    let body = json!({"saga_type": "trip", "input": {"who": "ada"}}).to_string();
    let (status, done) = app.http("POST", "/sagas?wait=20s", Some(&body), None).await;
    assert_eq!((status, done["status"].as_str()), (201, Some("completed")), "answered at the end: {done}");
    let (_, detail) = app.get(&format!("/sagas/{}", done["saga_id"].as_str().expect("id"))).await;
    assert_eq!(
        detail["results"],
        json!({"flight": {"ref": "flight"}, "hotel": {"ref": "hotel"}, "pay": {"ref": "pay"}, "mail": {"ref": "mail"}}),
        "{detail}"
    );
    let failing = json!({"saga_type": "trip", "input": {"fail": "hotel"}}).to_string();
    let (status, undone) = app.http("POST", "/sagas?wait=20s", Some(&failing), None).await;
    assert_eq!((status, undone["status"].as_str()), (201, Some("compensated")), "{undone}");
    let (_, detail) = app.get(&format!("/sagas/{}", undone["saga_id"].as_str().expect("id"))).await;
    assert_eq!(detail["results"], json!({"flight": {"ref": "flight"}}), "only the succeeded steps' outputs: {detail}");
    // An existing saga answers 200, at once when it has ended.
    let again = json!({"saga_type": "trip", "saga_id": done["saga_id"]}).to_string();
    let (status, same) = app.http("POST", "/sagas?wait=20s", Some(&again), None).await;
    assert_eq!((status, same["status"].as_str()), (200, Some("completed")));
    for bad in ["/sagas?wait=soon", "/sagas?wait=1h", "/sagas?colour=1"] {
        let (status, answer) = app.http("POST", bad, Some(&body), None).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("malformed query")), "{bad}: {answer}");
    }
}

#[tokio::test]
async fn a_wait_that_passes_answers_the_status_then() {
    // Hotels never answer: the saga is still running when a short wait passes.
    let app = spawn_app(&["trip"], answer(|c| (c.step != "hotel").then_some(true))).await;
    let body = json!({"saga_type": "trip"}).to_string();
    let (status, going) = app.http("POST", "/sagas?wait=200ms", Some(&body), None).await;
    assert_eq!((status, going["status"].as_str()), (201, Some("running")), "{going}");
}
