//! The operator's dashboard (`GET /ui`) end to end in headless Chromium:
//! the engine and the ops API on a real port, SQLite, in-process
//! participants, and a browser driven over WebDriver by a tiny HTTP/1.1
//! client below (no browser-automation crate). One saga gets stuck because
//! its payment never answers; the operator finds it with the `stuck` filter,
//! opens it, presses Retry (a wrong token first), and watches it complete.
//! Chromium and chromedriver come from `scripts/services`; without them this
//! test fails, it never skips.

use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetsaga::definition::Catalog;
use jetsaga::ops::{self, Ops, Readiness};
use jetsaga::runtime::{Engine, EngineConfig, INBOUND_QUEUE_MAX};
use jetsaga::saga::{Reply, ReplyStatus, SagaId, Status};
use jetsaga::store::{EventStore, SqliteStore};
use jetsaga::transport::MemoryTransport;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "s3cret";
/// How long the page may take to show something (it refreshes every 2 s).
const WAIT_MAX: Duration = Duration::from_secs(20);
/// How long one WebDriver call may take (starting Chromium is the slowest).
const CALL_MAX: Duration = Duration::from_secs(60);
/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

const STUCK: &str = "0190a5c4-0000-7000-8000-00000000d0a1";
const DONE: &str = "0190a5c4-0000-7000-8000-00000000d0a2";

/// Stock (compensatable), then the payment (the pivot), then shipping.
const ORDER: &str = r#"name = "order"
version = 1
[defaults]
timeout = "300ms"
retry = { max_attempts = 2, backoff = "20ms", max_backoff = "50ms" }
[[steps]]
name = "reserve"
participant = "stock"
action = "reserve"
compensation = "release"
[[steps]]
name = "charge"
participant = "payments"
action = "charge"
[[steps]]
name = "ship"
participant = "shipping"
action = "ship"
"#;

struct Server {
    base: String,
    store: SqliteStore,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// The engine and the ops API on 127.0.0.1:<free port>. Payments stays
/// silent for the `STUCK` saga until `payments_up` is set.
async fn serve(payments_up: Arc<AtomicBool>) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("ui.db").to_str().expect("utf-8")).await.expect("sqlite");
    let catalog = Catalog::from_sources([("order.toml".to_string(), ORDER.to_string())]).expect("valid");
    let (tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
    let transport = MemoryTransport::new(tx);
    let stuck = SagaId::parse(STUCK).expect("uuid");
    for name in ["stock", "payments", "shipping"] {
        let (mut commands, transport, payments_up) = (transport.register(name), transport.clone(), payments_up.clone());
        tokio::spawn(async move {
            while let Some(c) = commands.recv().await {
                if c.participant.as_str() == "payments" && c.saga_id == stuck && !payments_up.load(Ordering::SeqCst) {
                    continue;
                }
                let reply = Reply {
                    participant: c.participant.clone(),
                    step: c.step.to_string(),
                    kind: c.kind,
                    attempt: c.attempt,
                    status: ReplyStatus::Ok,
                    output: Some(json!({ "ref": format!("{}-{}", c.step, c.attempt) })),
                    error: None,
                };
                let _ = transport.reply(&c, reply).await;
            }
        });
    }
    let config = EngineConfig { ack_wait_ms: 100, ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), transport, &catalog, config).await.expect("engine");
    let readiness = Arc::new(Readiness::default());
    readiness.all_ready();
    let ops = Ops {
        engine: engine.handle(),
        store: store.clone(),
        definitions: engine.definitions(),
        readiness,
        metrics: engine.metrics(),
        token: Some(TOKEN.into()),
        relay_lag: std::sync::Arc::default(),
    };
    let handle = engine.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(engine.run(inbound, async move {
        let _ = stopped.await;
    }));
    for id in [STUCK, DONE] {
        let id = SagaId::parse(id).expect("uuid");
        handle.start("order", Some(id), json!({ "sku": "tea", "qty": 2 })).await.expect("start");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    // The API lives as long as the test's runtime.
    tokio::spawn(ops::serve(listener, ops::router(ops), std::future::pending()));
    Server { base, store, _stop: stop, _dir: dir }
}

async fn wait_for_status(store: &SqliteStore, id: &str, status: Status) {
    let id = SagaId::parse(id).expect("uuid");
    let started = Instant::now();
    while started.elapsed() < WAIT_MAX {
        if store.summary(id).await.expect("summary").is_some_and(|s| s.status == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("saga {id} did not become {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_stuck_saga_and_retries_it_from_the_dashboard() {
    for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver (package chromium-driver)")] {
        assert!(Path::new(path).exists(), "{path} is missing: run scripts/services (as root) to install {what}");
    }
    let payments_up = Arc::new(AtomicBool::new(false));
    let server = serve(payments_up.clone()).await;
    wait_for_status(&server.store, STUCK, Status::Stuck).await;
    wait_for_status(&server.store, DONE, Status::Completed).await;

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = driver.session(profile.path()).await;

    // The list: every saga, then only the stuck one.
    browser.goto(&format!("{}/ui", server.base)).await;
    browser.wait_js("return rows().sort().join(' ')", &format!("{STUCK} {DONE}")).await;
    browser.click("[data-testid=filter-stuck]").await;
    browser.wait_js("return rows().join(' ')", STUCK).await;
    browser.wait_js("return location.hash", "#/?status=stuck").await;

    // The saga page: stuck, with the payment's attempts timed out.
    browser.click(&format!("[data-testid=saga-row][data-saga-id='{STUCK}']")).await;
    browser.wait_js("return location.hash", &format!("#/saga/{STUCK}")).await;
    browser.wait_text("[data-testid=status-badge]", "stuck").await;
    browser
        .wait_js(
            "return [...document.querySelectorAll('[data-testid=attempt-block]')].map(b => b.textContent).join(' ')",
            "→#1ok →#1timed out →#2timed out",
        )
        .await;
    browser.wait_js("return document.querySelectorAll('[data-testid=event-table] tbody tr').length > 5", "true").await;

    // Time travel: at seq 2 the saga was running, its first step in flight.
    let set_slider = "const s = document.querySelector('[data-testid=state-slider]'); \
                      s.value = arguments[0]; s.dispatchEvent(new Event('input')); return s.value";
    browser.execute(set_slider, json!([2])).await.expect("slider moved");
    browser.wait_text("[data-testid=state-status]", "running").await;
    browser
        .wait_js(
            "return [...document.querySelectorAll('[data-testid=state-step-status]')].map(b => b.textContent).join(' ')",
            "running pending pending",
        )
        .await;
    browser.execute(set_slider, json!([1000])).await.expect("slider moved");
    browser.wait_text("[data-testid=state-status]", "stuck").await;

    // Retry with a wrong token: refused, and the form asks for it again.
    browser.click("[data-testid=retry-button]").await;
    browser.wait_js("return document.querySelector('[data-testid=operator-dialog]').open", "true").await;
    browser.type_into("[data-testid=operator-reason]", "payments is back").await;
    browser.type_into("[data-testid=operator-token]", "wrong").await;
    browser.click("[data-testid=operator-submit]").await;
    browser.wait_text("[data-testid=operator-result]", "Retry: unauthorized").await;
    browser.wait_js("return document.querySelector('[data-testid=operator-dialog]').open", "true").await;
    browser.wait_js("return document.getElementById('operator-error').textContent.includes('refused')", "true").await;

    // The right token, payments back: accepted, and the saga completes.
    payments_up.store(true, Ordering::SeqCst);
    browser.type_into("[data-testid=operator-token]", TOKEN).await;
    browser.click("[data-testid=operator-submit]").await;
    browser.wait_text("[data-testid=operator-result]", "Retry: accepted").await;
    browser.wait_text("[data-testid=status-badge]", "completed").await;
    browser.wait_js("return sessionStorage.getItem('jetsaga.opsToken')", TOKEN).await;
    browser.wait_js("return document.querySelector('[data-testid=event-table]').textContent.includes('payments is back')", "true").await;
    browser.wait_js("return document.querySelector('[data-testid=retry-button]').disabled", "true").await;

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).expect("target dir");
    std::fs::write(target.join("dashboard.png"), png).expect("screenshot written");
    browser.quit().await;
}

// ---- a minimal WebDriver client ------------------------------------------------

/// `chromedriver --port=<free port>`, killed when dropped.
struct Driver {
    port: u16,
    child: Child,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
        let child = Process::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} did not start ({e}): run scripts/services to install chromium-driver"));
        let mut driver = Driver { port, child };
        let started = Instant::now();
        loop {
            if let Ok((200, status)) = call(port, "GET", "/status", None).await {
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("chromedriver exited with {exit} before it was ready");
            }
            assert!(started.elapsed() < WAIT_MAX, "chromedriver on port {port} did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn session(&self, profile: &Path) -> Browser {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1200",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let (status, body) = call(self.port, "POST", "/session", Some(&capabilities)).await.expect("new session");
        assert_eq!(status, 200, "chromedriver could not start {CHROMIUM}: {body}");
        let id = body["value"]["sessionId"].as_str().expect("session id").to_owned();
        Browser { port: self.port, path: format!("/session/{id}"), open: true }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; closed (with Chromium) when dropped, even on a panic.
struct Browser {
    port: u16,
    path: String,
    open: bool,
}

impl Browser {
    /// A WebDriver command; `Err` carries WebDriver's error and message.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (status, reply) = call(self.port, method, &format!("{}{path}", self.path), body.as_ref()).await?;
        if status == 200 {
            Ok(reply["value"].clone())
        } else {
            Err(format!("{method} {path}: {} ({})", reply["value"]["error"], reply["value"]["message"]))
        }
    }

    async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url }))).await.expect("navigate");
    }

    /// Runs `script` in the page, with a `rows()` helper: the ids of the rows shown.
    async fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        let script =
            format!("const rows = () => [...document.querySelectorAll('[data-testid=saga-row]')].map(r => r.dataset.sagaId);\n{script}");
        self.command("POST", "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Polls `script` until it returns `expected` (compared as text).
    async fn wait_js(&self, script: &str, expected: &str) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < WAIT_MAX {
            last = match self.execute(script, json!([])).await {
                Ok(Value::String(text)) => text,
                Ok(value) => value.to_string(),
                Err(e) => e,
            };
            if last == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.execute("return document.body.innerText", json!([])).await.unwrap_or_default();
        panic!("`{script}` gave {last:?}, not {expected:?}, within {WAIT_MAX:?}; the page said:\n{page}");
    }

    async fn wait_text(&self, css: &str, expected: &str) {
        let script = format!("const e = document.querySelector({}); return e ? e.textContent.trim() : null", json!(css));
        self.wait_js(&script, expected).await;
    }

    /// The element now; the page re-renders every 2 s, so callers retry.
    async fn element(&self, css: &str) -> Result<String, String> {
        let found = self.command("POST", "/element", Some(json!({ "using": "css selector", "value": css }))).await?;
        found[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| format!("no element reference in {found}"))
    }

    /// Finds and acts on `css`, again until it works (stale or not yet there).
    async fn on_element(&self, css: &str, what: &str, body: Value) {
        let started = Instant::now();
        loop {
            let done = match self.element(css).await {
                Ok(id) => self.command("POST", &format!("/element/{id}/{what}"), Some(body.clone())).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(_) => return,
                Err(e) if started.elapsed() > WAIT_MAX => panic!("{what} on {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn click(&self, css: &str) {
        self.on_element(css, "click", json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({ "text": text })).await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command("GET", "/screenshot", None).await.expect("screenshot");
        base64_decode(encoded.as_str().expect("base64 text"))
    }

    async fn quit(mut self) {
        self.command("DELETE", "", None).await.expect("session closed");
        self.open = false;
    }
}

impl Drop for Browser {
    /// After a panic: close the session so Chromium does not outlive the test.
    fn drop(&mut self) {
        if self.open {
            use std::io::Write as _;
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let request = format!("DELETE {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", self.path);
                let _ = stream.write_all(request.as_bytes());
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = std::io::Read::read(&mut stream, &mut [0; 512]);
            }
        }
    }
}

/// One HTTP/1.1 exchange with chromedriver: JSON in, status and JSON out.
async fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let status = head.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()).ok_or(format!("bad status line: {head}"))?;
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .ok_or(format!("no Content-Length in {head}"))?;
                if raw.len() >= end + 4 + length {
                    return Ok((status, serde_json::from_slice(&raw[end + 4..end + 4 + length]).unwrap_or(Value::Null)));
                }
            }
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("chromedriver closed the connection after {} bytes", raw.len()));
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(CALL_MAX, exchange).await.map_err(|_| format!("{method} {path}: no answer within {CALL_MAX:?}"))?
}

/// Standard base64 (WebDriver's screenshots), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {:?}", c as char),
    };
    let (mut out, mut bits, mut pending) = (Vec::with_capacity(text.len() * 3 / 4), 0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        bits = ((bits << 6) | u32::from(sextet(c))) & 0xFF_FFFF;
        pending += 6;
        if pending >= 8 {
            pending -= 8;
            out.push((bits >> pending) as u8);
        }
    }
    out
}
