//! Who may do what on the ops API, and what a hostile client can do to
//! it, through real sockets: the auth modes and tokens, the Host
//! allow-list, `serve`'s refusal of short tokens, slow and oversized
//! clients against the HTTP limits, HTTPS with `jetsaga sagas`, and
//! participant text on the operator's terminal (docs/security.md).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetsaga::definition::Kind;
use jetsaga::ops::{tls_config, Access, AuthMode, HttpLimits, OpsConfig};
use jetsaga::saga::Status;
use jetsaga::secret::Secret;
use jetsaga::wire::ReplyBody;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::infra;
use crate::sagas_cli::{cli, run};
use crate::support::{always_ok, app, saga_id, spawn_app, TestApp, TOKEN};

/// The read-only token of the strict apps.
const READ_TOKEN: &str = "read-only-test-token";

/// The HTTP limits of the hardening tests: short, so slow clients time out fast.
const LIMITS: HttpLimits = HttpLimits {
    header_read_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_secs(1),
    connections_max: 4,
    request_bytes_max: 1024,
};

/// Longest a raw exchange waits for the server.
const RAW_WAIT: Duration = Duration::from_secs(5);

fn strict() -> Access {
    Access {
        mode: AuthMode::Strict,
        operator_token: Some(Secret::new(TOKEN)),
        read_token: Some(Secret::new(READ_TOKEN)),
        ..Access::default()
    }
}

async fn app_with(access: Access) -> TestApp {
    app(&["trip"]).ops(OpsConfig { access, ..OpsConfig::default() }).spawn().await
}

fn start_body(n: u128) -> String {
    json!({"saga_type": "trip", "saga_id": saga_id(n), "input": {}}).to_string()
}

// ---- tokens and modes -----------------------------------------------------

#[tokio::test]
async fn strict_mode_needs_a_token_for_reads_and_the_read_token_cannot_act() {
    let app = app_with(strict()).await;
    for open in ["/healthz", "/readyz", "/metrics", "/ui", "/ui/app.js"] {
        assert_eq!(app.get(open).await.0, 200, "{open} needs no token");
    }
    let id = saga_id(1);
    let (status, body) = app.http("POST", "/sagas", Some(&start_body(1)), None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{body}");
    assert_eq!(app.http("POST", "/sagas", Some(&start_body(1)), Some(READ_TOKEN)).await.0, 403, "the read token cannot start");
    assert_eq!(app.http("POST", "/sagas", Some(&start_body(1)), Some(TOKEN)).await.0, 201);
    app.wait_for(id, Status::Completed).await;

    for read in ["/sagas".to_owned(), format!("/sagas/{id}"), format!("/sagas/{id}/state?at_seq=1")] {
        let (status, body) = app.get(&read).await;
        assert_eq!(status, 401, "{read} without a token: {body}");
        assert_eq!(app.http("GET", &read, None, Some("a-wrong-token-of-length")).await.0, 401, "{read} with a wrong token");
        assert_eq!(app.http("GET", &read, None, Some(READ_TOKEN)).await.0, 200, "{read} with the read token");
        assert_eq!(app.http("GET", &read, None, Some(TOKEN)).await.0, 200, "{read} with the operator token");
    }
    let verb = format!("/sagas/{id}/abort");
    let reason = Some(r#"{"reason": "test"}"#);
    assert_eq!(app.http("POST", &verb, reason, None).await.0, 401);
    let (status, body) = app.http("POST", &verb, reason, Some(READ_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    assert_eq!(app.http("POST", &verb, reason, Some(TOKEN)).await.0, 409, "the operator passes (a completed saga refuses)");
    app.stop().await;
}

#[tokio::test]
async fn open_mode_keeps_the_spec_and_metrics_can_need_a_token() {
    // SPEC §5: reads and starts open, verbs behind the operator token; the
    // read token, when configured, is refused for verbs.
    let app = app_with(Access { mode: AuthMode::Open, ..strict() }).await;
    assert_eq!(app.http("POST", "/sagas", Some(&start_body(2)), None).await.0, 201);
    assert_eq!(app.get(&format!("/sagas/{}", saga_id(2))).await.0, 200);
    let verb = format!("/sagas/{}/abort", saga_id(2));
    assert_eq!(app.http("POST", &verb, Some(r#"{"reason": "r"}"#), None).await.0, 401);
    assert_eq!(app.http("POST", &verb, Some(r#"{"reason": "r"}"#), Some(READ_TOKEN)).await.0, 403);
    app.stop().await;

    let app = app_with(Access { metrics_need_token: true, ..strict() }).await;
    assert_eq!(app.get("/metrics").await.0, 401);
    assert_eq!(app.http("GET", "/metrics", None, Some(READ_TOKEN)).await.0, 200);
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_host_off_the_allow_list_is_refused() {
    let app = spawn_app(&["trip"], always_ok()).await;
    let port = app.url.rsplit(':').next().expect("a port").to_owned();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "LOCALHOST".to_owned()] {
        assert!(raw_get(&app, &host).await.starts_with("HTTP/1.1 200"), "{host}");
    }
    for host in ["attacker.example:8080", "127.0.0.1.nip.io", ""] {
        let answer = raw_get(&app, host).await;
        assert!(answer.starts_with("HTTP/1.1 421"), "{host}: {answer}");
        assert!(answer.contains(r#""error":"host not allowed""#), "{answer}");
    }
    app.stop().await;

    let named = Access { allowed_hosts: Some(vec!["ops.example.com".to_owned()]), ..Access::operator(Secret::new(TOKEN)) };
    let app = app_with(named).await;
    assert!(raw_get(&app, "ops.example.com:443").await.starts_with("HTTP/1.1 200"));
    assert!(raw_get(&app, "127.0.0.1").await.starts_with("HTTP/1.1 421"), "the list replaces the default");
    app.stop().await;
}

/// `GET /sagas` with this Host header (none when empty), the answer as text.
async fn raw_get(app: &TestApp, host: &str) -> String {
    let host = match host.is_empty() {
        true => String::new(),
        false => format!("Host: {host}\r\n"),
    };
    raw(app, format!("GET /sagas HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes()).await.0
}

// ---- serve ----------------------------------------------------------------

/// `jetsaga serve` with these flags and variables, SQLite in `dir`, NATS
/// under a prefix of its own.
fn serve(dir: &Path, prefix: &str, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jetsaga"));
    for var in ["JETSAGA_OPS_TOKEN", "JETSAGA_OPS_READ_TOKEN", "JETSAGA_AUTH", "JETSAGA_ALLOWED_HOSTS", "JETSAGA_LOG"] {
        command.env_remove(var);
    }
    let sagas = Path::new(env!("CARGO_MANIFEST_DIR")).join("sagas");
    command
        .arg("serve")
        .args(["--sagas", sagas.to_str().expect("utf-8")])
        .args(args)
        .env("NATS_URL", infra::nats_url())
        .env("JETSAGA_SUBJECT_PREFIX", prefix)
        .env("JETSAGA_STREAM_MAX_BYTES", infra::STREAM_MAX_BYTES.to_string())
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("events.db").display()))
        .envs(envs.iter().copied());
    command
}

#[test]
fn serve_refuses_an_empty_or_short_token_without_showing_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "short-secret\n").expect("written");
    let file = token_file.to_str().expect("utf-8");
    let refused = |args: &[&str], envs: &[(&str, &str)], named: &str| {
        let out = serve(dir.path(), "unused.saga", args, envs).stdin(Stdio::null()).output().expect("serve runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {envs:?}: {stderr}");
        assert!(stderr.contains(named), "{named} is named: {stderr}");
        assert!(!stderr.contains("short-secret") && !stderr.contains("tiny-secret"), "the value is not shown: {stderr}");
        assert!(!dir.path().join("events.db").exists(), "refused before opening the store");
    };
    refused(&[], &[("JETSAGA_OPS_TOKEN", "")], "JETSAGA_OPS_TOKEN");
    refused(&["--ops-read-token", "tiny-secret"], &[], "--ops-read-token");
    refused(&["--ops-token-file", file], &[], "--ops-token");
    refused(&["--auth", "strict"], &[], "--auth strict");
}

#[tokio::test]
async fn serve_takes_tokens_from_files_and_warns_beyond_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (operator_file, read_file) = (dir.path().join("operator"), dir.path().join("read"));
    std::fs::write(&operator_file, format!("{TOKEN}\n")).expect("written");
    std::fs::write(&read_file, READ_TOKEN).expect("written");
    let port = infra::free_port();
    let listen = format!("0.0.0.0:{port}");
    let args = ["--listen", &listen, "--ops-token-file", operator_file.to_str().expect("utf-8")];
    let prefix = format!("{}.saga", infra::unique("serve_access"));
    let child = serve(dir.path(), &prefix, &args, &[("JETSAGA_OPS_READ_TOKEN_FILE", read_file.to_str().expect("utf-8"))])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let url = format!("http://127.0.0.1:{port}");
    let ready = async {
        loop {
            if crate::support::http("GET", &format!("{url}/readyz"), None, None).await.is_ok_and(|(s, _)| s == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready).await.expect("serve becomes ready");
    let verb = format!("{url}/sagas/{}/abort", saga_id(3));
    let answer = |token| crate::support::http("POST", &verb, Some(r#"{"reason": "r"}"#), token);
    assert_eq!(answer(Some(READ_TOKEN)).await.expect("answers").0, 403, "the read token file is read");
    assert_eq!(answer(Some(TOKEN)).await.expect("answers").0, 404, "the operator token file is read (no such saga)");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("joined").expect("serve exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("beyond loopback, without --auth strict"), "{stderr}");
    assert!(stderr.contains("without --allowed-host"), "{stderr}");
    assert!(!stderr.contains(TOKEN) && !stderr.contains(READ_TOKEN), "no token in the logs: {stderr}");
    infra::nats(&prefix, Duration::from_secs(1)).await.delete_streams().await.expect("the streams are deleted");
}

// ---- HTTP limits ----------------------------------------------------------

async fn limited_app() -> TestApp {
    app(&["trip"]).ops(OpsConfig { access: Access::operator(Secret::new(TOKEN)), http: LIMITS, tls: None }).spawn().await
}

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a new connection and reads until the server closes
/// it (or [`RAW_WAIT`] passes): the answer as text and how long it took.
async fn raw(app: &TestApp, request: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr(app)).await.expect("connects");
    stream.write_all(request).await.expect("sent");
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(RAW_WAIT, stream.read_to_end(&mut answer)).await;
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_at_the_header_timeout() {
    let app = limited_app().await;
    // One byte every 200 ms: the whole request would take 8 s.
    let mut slow = TcpStream::connect(addr(&app)).await.expect("connects");
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buffer = [0u8; 256];
        // Whatever comes back (the end, a reset, an error answer) is the cut:
        // the headers are not complete yet.
        if tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buffer)).await.is_ok() {
            cut = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(cut, "the slow client was never cut off");
    assert!(took >= LIMITS.header_read_timeout && took < LIMITS.header_read_timeout * 3, "cut after {took:?}");

    let mut idle = TcpStream::connect(addr(&app)).await.expect("connects");
    let (answer, took) = read_to_close(&mut idle).await;
    assert!(took < LIMITS.header_read_timeout * 3, "an idle connection is closed after {took:?}: {answer:?}");
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_never_ends_times_out_and_a_large_one_is_refused() {
    let app = limited_app().await;
    let head = "POST /sagas HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    let (answer, took) = raw(&app, format!("{head}{{\"saga_type\"").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request timeout"), "{answer}");
    assert!(took < LIMITS.request_timeout * 3, "{took:?}");

    let big = json!({"saga_type": "trip", "input": {"pad": "x".repeat(LIMITS.request_bytes_max)}}).to_string();
    let (status, body) = app.http("POST", "/sagas", Some(&big), None).await;
    assert_eq!(status, 413, "{body}");
    let declared = b"POST /sagas HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n";
    let (answer, took) = raw(&app, declared).await;
    assert!(answer.starts_with("HTTP/1.1 413") && took < LIMITS.request_timeout, "refused on the declared length: {answer}");

    for garbage in
        [&b"GARBAGE\r\n\r\n"[..], b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", b"GET /\x00 HTTP/1.1\r\n\r\n"]
    {
        let (answer, took) = raw(&app, garbage).await;
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{garbage:?}: {answer}");
        assert!(took < RAW_WAIT, "{garbage:?}: the connection is closed");
    }
    assert_eq!(app.get("/healthz").await.0, 200, "the server still answers");
    app.stop().await;
}

#[tokio::test]
async fn the_connection_cap_holds_and_frees_when_slow_clients_time_out() {
    let app = limited_app().await;
    let mut hogs = Vec::new();
    for _ in 0..LIMITS.connections_max {
        let mut hog = TcpStream::connect(addr(&app)).await.expect("connects");
        hog.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.expect("sent");
        hogs.push(hog);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut waiting = TcpStream::connect(addr(&app)).await.expect("the backlog takes it");
    waiting.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.expect("sent");
    // A read cancelled by its timeout consumes nothing.
    let early = tokio::time::timeout(Duration::from_millis(400), waiting.read(&mut [0u8; 1])).await;
    assert!(early.is_err(), "answered while {} connections were open: the cap did not hold", LIMITS.connections_max);
    let (answer, _) = read_to_close(&mut waiting).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took > LIMITS.header_read_timeout / 2 && took < LIMITS.header_read_timeout * 3,
        "answered once the slow ones timed out, after {took:?}"
    );
    drop(hogs);
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

// ---- HTTPS and the CLI ------------------------------------------------------

#[tokio::test]
async fn sagas_list_speaks_https_and_refuses_an_unknown_ca() {
    let (dir, other) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    crate::infra::certificates(dir.path(), "jetsaga test CA");
    crate::infra::certificates(other.path(), "someone else's CA");
    let tls = tls_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).expect("the certificate loads");
    let token_file = dir.path().join("read-token");
    std::fs::write(&token_file, format!("{READ_TOKEN}\n")).expect("written");
    let app = app(&["trip"]).ops(OpsConfig { access: strict(), tls: Some(tls), ..OpsConfig::default() }).spawn().await;
    assert!(app.url.starts_with("https://"), "{}", app.url);
    let id = saga_id(4);
    app.handle.start("trip", Some(id), json!({})).await.expect("started");
    app.wait_for(id, Status::Completed).await;

    let ca = |d: &tempfile::TempDir| d.path().join("ca.pem").to_str().expect("utf-8").to_owned();
    let (good_ca, token) = (ca(&dir), token_file.to_str().expect("utf-8").to_owned());
    let out = cli(&app, &["list", "--ca-file", &good_ca, "--token-file", &token]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&id.to_string()), "{out:?}");

    let out = cli(&app, &["list", "--ca-file", &good_ca]).await;
    assert_eq!(out.code, Some(1), "strict: no token, no list: {out:?}");
    assert!(out.stderr.contains("401") && out.stderr.contains("--token-file"), "{out:?}");

    for refused in [vec!["list", "--ca-file", &ca(&other), "--token-file", &token], vec!["list", "--token-file", &token]] {
        let out = cli(&app, &refused).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("certificate") && out.stderr.contains("--ca-file"), "a clear error: {out:?}");
    }
    let plain = run(&["sagas", "list", "--url", &app.url.replace("https://", "http://"), "--token-file", &token]).await;
    assert_eq!(plain.code, Some(1), "plain HTTP to the TLS port fails: {plain:?}");
    app.stop().await;
}

#[tokio::test]
async fn participant_text_reaches_the_terminal_escaped() {
    let hostile: crate::support::Behaviour = Arc::new(|c| match c.kind {
        Kind::Action if c.step.as_str() == "hotel" => Some(ReplyBody::failed(c, "\u{1b}[2J\u{1b}[31mall clear\r\u{7}")),
        _ => Some(ReplyBody::ok(c, Some(json!({"ref": "\u{1b}]0;owned\u{7}"})))),
    });
    let app = app(&["trip"]).behaviour(hostile).spawn().await;
    let id = saga_id(5);
    app.handle.start("trip", Some(id), json!({})).await.expect("started");
    app.settled(id).await;
    let out = cli(&app, &["show", &id.to_string()]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.chars().any(|c| c.is_control() && c != '\n'), "a control character reached the terminal: {:?}", out.stdout);
    assert!(out.stdout.contains(r"\u{1b}[2J\u{1b}[31mall clear\r\u{7}"), "{}", out.stdout);
    let json: Value = serde_json::from_str(&cli(&app, &["show", &id.to_string(), "--json"]).await.stdout).expect("JSON");
    assert!(json.to_string().contains(r"\u001b[2J"), "--json keeps the text, JSON-escaped");
    app.stop().await;
}
