//! The ops HTTP API's contract (SPEC §5), driven through the router as an
//! HTTP client would, over the engine with SQLite and in-process participants.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use jetsaga::definition::Catalog;
use jetsaga::ops::{self, Ops, Readiness};
use jetsaga::runtime::{Engine, EngineConfig, INBOUND_QUEUE_MAX};
use jetsaga::saga::{Reply, ReplyStatus};
use jetsaga::store::SqliteStore;
use jetsaga::transport::MemoryTransport;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

const TRIP: &str = r#"name = "trip"
version = 1
[defaults]
timeout = "2s"
[[steps]]
name = "flight"
participant = "flights"
action = "reserve"
compensation = "cancel"
[[steps]]
name = "pay"
participant = "payments"
action = "charge"
"#;

struct App {
    router: axum::Router,
    readiness: Arc<Readiness>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("ops.db").to_str().expect("utf-8")).await.expect("sqlite");
    let catalog = Catalog::from_sources([("trip.toml".to_string(), TRIP.to_string())]).expect("valid");
    let (tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
    let transport = MemoryTransport::new(tx);
    for name in ["flights", "payments"] {
        let mut commands = transport.register(name);
        let transport = transport.clone();
        tokio::spawn(async move {
            while let Some(c) = commands.recv().await {
                // `{"fail": "<step>"}` in the saga's input fails that step's action.
                let fail = c.kind == jetsaga::definition::Kind::Action && c.payload["input"]["fail"] == c.step.as_str();
                let reply = Reply {
                    participant: c.participant.clone(),
                    step: c.step.to_string(),
                    kind: c.kind,
                    attempt: c.attempt,
                    status: if fail { ReplyStatus::Failed } else { ReplyStatus::Ok },
                    output: (!fail).then(|| json!({"ref": c.step.to_string()})),
                    error: fail.then(|| "declined".to_owned()),
                };
                let _ = transport.reply(&c, reply).await;
            }
        });
    }
    let engine = Engine::new(store.clone(), transport, &catalog, EngineConfig::default()).await.expect("engine");
    let readiness = Arc::new(Readiness::default());
    let ops = Ops {
        engine: engine.handle(),
        store,
        definitions: engine.definitions(),
        readiness: readiness.clone(),
        metrics: engine.metrics(),
        relay_lag: Arc::default(),
        token: Some("s3cret".into()),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(engine.run(inbound, async move {
        let _ = stopped.await;
    }));
    App { router: ops::router(ops), readiness, _stop: stop, _dir: dir }
}

async fn call(app: &App, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn health_and_readiness() {
    let app = app().await;
    assert_eq!(call(&app, "GET", "/healthz", None).await.0, StatusCode::OK);
    let (status, body) = call(&app, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["waiting_for"], json!(["migrations", "streams", "consumers"]));
    app.readiness.all_ready();
    assert_eq!(call(&app, "GET", "/readyz", None).await.0, StatusCode::OK);
    let response = app.router.clone().oneshot(Request::get("/metrics").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body").to_vec()).expect("utf-8");
    assert!(text.contains("# TYPE jetsaga_poison_messages_total counter\njetsaga_poison_messages_total 0\n"), "{text}");
}

#[tokio::test]
async fn start_is_idempotent_and_the_detail_shows_steps_and_events() {
    let app = app().await;
    let id = "0190a5c4-0000-7000-8000-0000000000aa";
    let body = json!({"saga_type": "trip", "saga_id": id, "input": {"who": "ada"}}).to_string();
    let (status, started) = call(&app, "POST", "/sagas", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["saga_id"], id);
    let (status, again) = call(&app, "POST", "/sagas", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "an existing id returns 200");
    assert_eq!(again["saga_id"], id);

    let mut detail = Value::Null;
    for _ in 0..200 {
        let (status, body) = call(&app, "GET", &format!("/sagas/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        detail = body;
        if detail["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    assert_eq!(types, ["saga_started", "command_sent", "step_succeeded", "command_sent", "step_succeeded", "saga_completed"]);
    let first = &detail["events"][0];
    assert_eq!(first["seq"], 1);
    assert!(first["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{first}");
}

#[tokio::test]
async fn errors_are_json_with_fitting_status_codes() {
    let app = app().await;
    let cases = [
        ("POST", "/sagas", Some(r#"{"saga_type": "nope"}"#), StatusCode::UNPROCESSABLE_ENTITY, "unknown saga type"),
        ("POST", "/sagas", Some("{not json"), StatusCode::BAD_REQUEST, "malformed body"),
        ("POST", "/sagas", Some(r#"{"saga_type": "trip", "colour": 1}"#), StatusCode::BAD_REQUEST, "malformed body"),
        ("POST", "/sagas", Some(r#"{"saga_type": "trip", "saga_id": "x"}"#), StatusCode::BAD_REQUEST, "malformed saga id"),
        ("GET", "/sagas/not-a-uuid", None, StatusCode::BAD_REQUEST, "malformed saga id"),
        ("GET", "/sagas/0190a5c4-0000-7000-8000-00000000ffff", None, StatusCode::NOT_FOUND, "saga not found"),
    ];
    for (method, uri, body, expected, error) in cases {
        let (status, json) = call(&app, method, uri, body).await;
        assert_eq!(status, expected, "{method} {uri} {body:?}: {json}");
        assert_eq!(json["error"], error, "{json}");
        assert!(json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{json}");
    }
}

async fn completed_saga(app: &App, id: &str) {
    finished_saga(app, id, json!({}), "completed").await;
}

async fn finished_saga(app: &App, id: &str, input: Value, wanted: &str) {
    let body = json!({"saga_type": "trip", "saga_id": id, "input": input}).to_string();
    assert_eq!(call(app, "POST", "/sagas", Some(&body)).await.0, StatusCode::CREATED);
    for _ in 0..200 {
        if call(app, "GET", &format!("/sagas/{id}"), None).await.1["status"] == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("saga {id} did not end {wanted}");
}

async fn metrics_text(app: &App) -> String {
    let response = app.router.clone().oneshot(Request::get("/metrics").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body").to_vec()).expect("utf-8")
}

/// The value of the sample line `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_sagas_by_type_and_status_and_time_the_steps() {
    let app = app().await;
    completed_saga(&app, "0190a5c4-0000-7000-8000-000000000401").await;
    finished_saga(&app, "0190a5c4-0000-7000-8000-000000000402", json!({"fail": "pay"}), "compensated").await;
    let text = metrics_text(&app).await;
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
    assert_eq!(value("jetsaga_commands_sent_total"), 5.0);
    assert!(value("jetsaga_store_append_duration_seconds_count") >= 1.0);
    assert!(value("jetsaga_group_commits_total") >= 1.0);
    assert_eq!(value("jetsaga_event_relay_lag_seconds"), 0.0);
    assert!(text.contains("# TYPE jetsaga_step_duration_seconds histogram\n"), "{text}");
    assert!(!text.contains("0190a5c4"), "no saga id in a label: {text}");
}

#[tokio::test]
async fn the_list_filters_and_pages_with_a_cursor() {
    let app = app().await;
    let ids: Vec<String> = (1..=5).map(|i| format!("0190a5c4-0000-7000-8000-00000000010{i}")).collect();
    for id in &ids {
        completed_saga(&app, id).await;
    }
    let (status, page) = call(&app, "GET", "/sagas?status=completed&saga_type=trip&limit=2", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first: Vec<&str> = page["sagas"].as_array().expect("sagas").iter().filter_map(|s| s["saga_id"].as_str()).collect();
    assert_eq!(first, [ids[0].as_str(), ids[1].as_str()]);
    let row = &page["sagas"][0];
    for key in ["saga_id", "saga_type", "version", "status", "current_step", "started_at", "updated_at"] {
        assert!(row.get(key).is_some(), "{key} missing in {row}");
    }
    let mut seen = first.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, page) = call(&app, "GET", &format!("/sagas?limit=2&cursor={c}"), None).await;
        seen.extend(page["sagas"].as_array().expect("sagas").iter().filter_map(|s| s["saga_id"].as_str()).map(str::to_owned));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ids);
    assert_eq!(call(&app, "GET", "/sagas?status=stuck", None).await.1["sagas"], json!([]));
    assert_eq!(call(&app, "GET", "/sagas?stuck_for=30s", None).await.1["sagas"], json!([]));
    for bad in [
        "/sagas?status=sleepy",
        "/sagas?limit=0",
        "/sagas?limit=100000",
        "/sagas?stuck_for=soon",
        "/sagas?cursor=x",
        "/sagas?colour=red",
        "/sagas?started_after=yesterday",
    ] {
        let (status, body) = call(&app, "GET", bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn time_travel_shows_the_state_at_a_past_seq() {
    let app = app().await;
    let id = "0190a5c4-0000-7000-8000-000000000201";
    completed_saga(&app, id).await;
    let (status, then) = call(&app, "GET", &format!("/sagas/{id}/state?at_seq=3"), None).await;
    assert_eq!(status, StatusCode::OK, "{then}");
    assert_eq!((then["status"].clone(), then["seq"].clone()), (json!("running"), json!(3)));
    assert_eq!(then["steps"][0]["status"], "succeeded");
    assert_eq!(then["steps"][1]["status"], "pending");
    let (_, now) = call(&app, "GET", &format!("/sagas/{id}/state?at=2999-01-01T00:00:00Z"), None).await;
    assert_eq!(now["status"], "completed");
    let (status, _) = call(&app, "GET", &format!("/sagas/{id}/state?at=1999-01-01T00:00:00Z"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, "GET", &format!("/sagas/{id}/state"), None).await.0, StatusCode::BAD_REQUEST);
}

async fn operate(app: &App, id: &str, verb: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request = Request::builder().method("POST").uri(format!("/sagas/{id}/{verb}")).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app.router.clone().oneshot(request.body(Body::from(body.to_owned())).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn operator_verbs_need_the_token_and_a_status_that_allows_them() {
    let app = app().await;
    let id = "0190a5c4-0000-7000-8000-000000000301";
    completed_saga(&app, id).await;
    let reason = r#"{"reason": "customer called"}"#;
    assert_eq!(operate(&app, id, "abort", None, reason).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(operate(&app, id, "abort", Some("wrong"), reason).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = operate(&app, id, "abort", Some("s3cret"), reason).await;
    assert_eq!(status, StatusCode::CONFLICT, "a completed saga cannot be aborted: {body}");
    assert_eq!(operate(&app, id, "retry", Some("s3cret"), reason).await.0, StatusCode::CONFLICT);
    assert_eq!(operate(&app, id, "dance", Some("s3cret"), reason).await.0, StatusCode::NOT_FOUND);
    assert_eq!(operate(&app, id, "abort", Some("s3cret"), "{}").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(operate(&app, id, "abort", Some("s3cret"), r#"{"reason": " "}"#).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(operate(&app, "0190a5c4-0000-7000-8000-00000000ffff", "abort", Some("s3cret"), reason).await.0, StatusCode::NOT_FOUND);
}
