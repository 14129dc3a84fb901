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
                let reply = Reply {
                    participant: c.participant.clone(),
                    step: c.step.to_string(),
                    kind: c.kind,
                    attempt: c.attempt,
                    status: ReplyStatus::Ok,
                    output: Some(json!({"ref": c.step.to_string()})),
                    error: None,
                };
                let _ = transport.reply(&c, reply).await;
            }
        });
    }
    let engine = Engine::new(store.clone(), transport, &catalog, EngineConfig::default()).await.expect("engine");
    let readiness = Arc::new(Readiness::default());
    let ops = Ops { engine: engine.handle(), store, definitions: engine.definitions(), readiness: readiness.clone(), metrics: engine.metrics() };
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
    assert_eq!((detail["saga_type"].clone(), detail["version"].clone(), detail["input"].clone()), (json!("trip"), json!(1), json!({"who": "ada"})));
    assert_eq!(detail["steps"][0], json!({"name": "flight", "status": "succeeded", "attempts": 1, "compensation_attempts": 0, "output": {"ref": "flight"}}));
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
