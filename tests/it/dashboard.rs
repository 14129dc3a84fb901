//! The operator's dashboard (`GET /ui`) end to end in headless Chromium:
//! an app of the harness (the order over SQLite, in-process participants)
//! and a browser driven over WebDriver by a tiny client below, on the
//! harness's HTTP helper (no browser-automation crate). One saga gets stuck because
//! its payment never answers; the operator finds it with the `stuck` filter,
//! opens it, presses Retry (a wrong token first), and watches it complete.
//! Chromium and chromedriver come from `scripts/services`; without them this
//! test fails, it never skips.

use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetsaga::saga::Status;
use serde_json::{json, Value};

use crate::support::{self, answer, app, TestApp, TOKEN, WAIT_MAX};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The saga whose payment stays silent until payments is back.
const STUCK: &str = "0190a5c4-0000-7000-8000-00000000d0a1";
/// The saga that completes.
const DONE: &str = "0190a5c4-0000-7000-8000-00000000d0a2";

/// The order (`tests/fixtures/sagas/order.toml`) with its two sagas
/// started; payments stays silent for `STUCK` until `payments_up` is set.
async fn orders(payments_up: Arc<AtomicBool>) -> TestApp {
    let payments = answer(move |c| (c.saga_id != STUCK || payments_up.load(Ordering::SeqCst)).then_some(true));
    let app = app(&["order"]).participant("payments", payments).spawn().await;
    for id in [STUCK, DONE] {
        app.handle.start("order", Some(id.parse().expect("uuid")), json!({ "sku": "tea", "qty": 2 })).await.expect("start");
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_stuck_saga_and_retries_it_from_the_dashboard() {
    for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver (package chromium-driver)")] {
        assert!(Path::new(path).exists(), "{path} is missing: run scripts/services (as root) to install {what}");
    }
    let payments_up = Arc::new(AtomicBool::new(false));
    let app = orders(payments_up.clone()).await;
    app.wait_for(STUCK.parse().expect("uuid"), Status::Stuck).await;
    app.wait_for(DONE.parse().expect("uuid"), Status::Completed).await;

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = driver.session(profile.path()).await;

    // The list: every saga, then only the stuck one.
    browser.goto(&format!("{}/ui", app.url)).await;
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
    app.stop().await;
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
            let _ = support::exchange("DELETE", &format!("http://127.0.0.1:{}{}", self.port, self.path), None, None);
        }
    }
}

/// One exchange with chromedriver: JSON in, status and JSON out.
async fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
    let body = body.map(Value::to_string);
    let (status, text) = support::http(method, &format!("http://127.0.0.1:{port}{path}"), body.as_deref(), None).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
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
