//! `jetsaga sagas …` as an operator runs it: the real binary against the
//! ops API of an app of the harness (the trip over SQLite, in-process
//! participants), and `tail` against a real nats-server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jetsaga::definition::{Kind, StepName};
use jetsaga::saga::{Recorded, SagaEvent, SagaId, Status};
use jetsaga::wire::ReplyBody;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::infra;
use crate::support::{app, saga_id, Behaviour, TestApp, TOKEN};

/// Longest wait for a line of `tail` to arrive.
const WAIT: Duration = Duration::from_secs(10);

/// The trip, its payments answering by the saga's input: `{"card":
/// "declined"}` fails, `{"card": "silent"}` says nothing until `back` is
/// set, anything else succeeds.
async fn trip_app(back: Arc<AtomicBool>) -> TestApp {
    let payments: Behaviour = Arc::new(move |c| match c.payload["input"]["card"].as_str() {
        Some("declined") => Some(ReplyBody::failed(c, "card declined")),
        Some("silent") if !back.load(Ordering::SeqCst) => None,
        _ => Some(ReplyBody::ok(c, Some(json!({ "ref": c.step })))),
    });
    app(&["trip"]).participant("payments", payments).spawn().await
}

/// Starts a trip with id `n` and waits until it settles.
async fn saga(app: &TestApp, n: u128, input: Value) -> String {
    let id = saga_id(n);
    app.handle.start("trip", Some(id), input).await.expect("start");
    app.settled(id).await;
    id.to_string()
}

/// `jetsaga sagas <args> --url <the app's API>`.
pub(crate) async fn cli(app: &TestApp, args: &[&str]) -> Out {
    let mut all = vec!["sagas"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--url", &app.url]);
    run(&all).await
}

#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn jetsaga() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jetsaga"));
    for var in ["JETSAGA_URL", "JETSAGA_OPS_TOKEN", "JETSAGA_OPS_TOKEN_FILE", "JETSAGA_CA_FILE", "JETSAGA_SUBJECT_PREFIX", "JETSAGA_LOG"] {
        command.env_remove(var);
    }
    command
}

/// Runs the binary off the runtime, so the API keeps serving meanwhile.
pub(crate) async fn run(args: &[&str]) -> Out {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || jetsaga().args(&args).output().expect("jetsaga runs")).await.expect("joined");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Out { code: output.status.code(), stdout: text(&output.stdout), stderr: text(&output.stderr) }
}

fn json_of(out: &Out) -> Value {
    assert_eq!(out.code, Some(0), "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout))
}

fn ids(body: &Value) -> Vec<String> {
    body["sagas"].as_array().expect("sagas").iter().map(|s| s["saga_id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn list_prints_a_table_or_json_and_filters() {
    let app = trip_app(Arc::default()).await;
    let done = [saga(&app, 1, json!({})).await, saga(&app, 2, json!({})).await];
    let undone = saga(&app, 3, json!({"card": "declined"})).await;

    let out = cli(&app, &["list"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "TYPE", "V", "STATUS", "STEP", "STARTED", "UPDATED"]);
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(row[..5], [undone.as_str(), "trip", "1", "compensated", "-"], "{}", lines[3]);
    assert_eq!(lines[1].find("trip"), lines[0].find("TYPE"), "columns line up:\n{}", out.stdout);

    let all = json_of(&cli(&app, &["list", "--json"]).await);
    assert_eq!(ids(&all), [done[0].clone(), done[1].clone(), undone.clone()]);
    assert!(all.get("next_cursor").is_some(), "the API's JSON as is: {all}");
    assert_eq!(ids(&json_of(&cli(&app, &["list", "--status", "compensated", "--json"]).await)), [undone.as_str()]);
    assert_eq!(ids(&json_of(&cli(&app, &["list", "--status", "completed,compensated", "--json"]).await)).len(), 3);
    assert_eq!(ids(&json_of(&cli(&app, &["list", "--type", "trip", "--status", "stuck", "--json"]).await)).len(), 0);
    assert_eq!(ids(&json_of(&cli(&app, &["list", "--stuck-for", "1s", "--json"]).await)).len(), 0);
    let none = cli(&app, &["list", "--type", "cruise"]).await;
    assert_eq!((none.code, none.stdout.as_str()), (Some(0), "no sagas\n"));
}

#[tokio::test]
async fn list_all_follows_every_page() {
    let app = trip_app(Arc::default()).await;
    let mut expected = Vec::new();
    for n in 1..=5 {
        expected.push(saga(&app, n, json!({})).await);
    }
    let page = json_of(&cli(&app, &["list", "--limit", "2", "--json"]).await);
    assert_eq!(ids(&page), expected[..2]);
    assert!(page["next_cursor"].is_string(), "{page}");
    let first = cli(&app, &["list", "--limit", "2"]).await;
    assert!(first.stderr.contains("--all"), "says there is more: {first:?}");

    let all = json_of(&cli(&app, &["list", "--limit", "2", "--all", "--json"]).await);
    assert_eq!(all, json!({"sagas": all["sagas"].clone()}), "one combined object");
    assert_eq!(ids(&all), expected);
    let table = cli(&app, &["list", "--limit", "2", "--all"]).await;
    assert_eq!(table.code, Some(0), "{table:?}");
    assert_eq!(table.stdout.lines().count(), 1 + 5, "{}", table.stdout);
    assert_eq!(cli(&app, &["list", "--limit", "0"]).await.code, Some(2), "clap refuses a limit out of range");
}

/// The steps of timeline rows whose kind and outcome are as given, in order.
fn timeline_steps(stdout: &str, kind: &str, outcome: &str) -> Vec<String> {
    let timeline = stdout.split_once("\nsaga ").expect("a timeline").1;
    timeline
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|t| t.len() == 6 && t[3] == kind && t[5] == outcome)
        .map(|t| t[2].to_owned())
        .collect()
}

#[tokio::test]
async fn show_prints_steps_and_the_timeline() {
    let app = trip_app(Arc::default()).await;
    let done = saga(&app, 1, json!({})).await;
    let out = cli(&app, &["show", &done]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    for expected in ["saga     ", "type     trip v1", "status   completed", "reason   -", "STEP", "COMPENSATIONS"] {
        assert!(out.stdout.contains(expected), "{expected:?} in\n{}", out.stdout);
    }
    assert!(
        out.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["flight", "succeeded", "1", "0", "-"]),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("saga {done}: completed after")), "{}", out.stdout);
    assert!(out.stdout.contains("started (trip v1)"), "{}", out.stdout);
    assert_eq!(timeline_steps(&out.stdout, "action", "ok"), ["flight", "hotel", "pay", "mail"]);

    let undone = saga(&app, 2, json!({"card": "declined"})).await;
    let out = cli(&app, &["show", &undone]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("status   compensated"), "{}", out.stdout);
    assert!(
        out.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["hotel", "compensated", "1", "1", "-"]),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("failed: card declined"), "{}", out.stdout);
    assert_eq!(timeline_steps(&out.stdout, "compensation", "ok"), ["hotel", "flight"], "compensations run in reverse:\n{}", out.stdout);

    let then = cli(&app, &["show", &done, "--at-seq", "3"]).await;
    assert_eq!(then.code, Some(0), "{then:?}");
    assert!(then.stdout.contains("status   running") && then.stdout.contains("at seq   3"), "{}", then.stdout);
    assert!(then.stdout.contains(&format!("saga {done}: running after")) && then.stdout.contains(", 3 events"), "{}", then.stdout);
    let state = json_of(&cli(&app, &["show", &done, "--at-seq", "3", "--json"]).await);
    assert_eq!((state["status"].clone(), state["seq"].clone()), (json!("running"), json!(3)));
    let detail = json_of(&cli(&app, &["show", &done, "--json"]).await);
    assert_eq!(detail["status"], "completed");
    assert_eq!(detail["events"].as_array().map(Vec::len), Some(10), "{detail}");
}

#[tokio::test]
async fn retry_moves_a_stuck_saga_on() {
    let back = Arc::new(AtomicBool::new(false));
    let app = trip_app(back.clone()).await;
    let id = saga(&app, 1, json!({"card": "silent"})).await;
    assert_eq!(ids(&json_of(&cli(&app, &["list", "--status", "stuck", "--json"]).await)), [id.as_str()]);
    let stuck = cli(&app, &["show", &id]).await;
    assert!(stuck.stdout.lines().any(|l| l.starts_with("pay") && l.contains("stuck")), "{}", stuck.stdout);

    back.store(true, Ordering::SeqCst);
    let out = cli(&app, &["retry", &id, "--reason", "payments is back", "--token", TOKEN]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("accepted: saga {id} is now running\n"));
    assert_eq!(app.settled(SagaId::parse(&id).expect("uuid")).await, Status::Completed);
    let shown = cli(&app, &["show", &id]).await;
    assert!(shown.stdout.contains("operator retry: payments is back"), "{}", shown.stdout);
}

#[tokio::test]
async fn verbs_and_errors_exit_with_the_codes_of_the_spec() {
    let app = trip_app(Arc::default()).await;
    let id = saga(&app, 1, json!({})).await;

    let refused = cli(&app, &["abort", &id, "--reason", "customer called", "--token", TOKEN]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("409 not allowed in this status:"), "{}", refused.stderr);
    let detail = refused.stderr.split_once("409 not allowed in this status:").expect("detail").1.trim();
    assert!(!detail.is_empty(), "{}", refused.stderr);

    for token in [None, Some("wrong")] {
        let mut args = vec!["compensate", id.as_str(), "--reason", "undo"];
        args.extend(token.iter().flat_map(|t| ["--token", t]));
        let out = cli(&app, &args).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("401") && out.stderr.contains("--token") && out.stderr.contains("JETSAGA_OPS_TOKEN"), "{}", out.stderr);
    }
    let json = cli(&app, &["abort", &id, "--reason", "r", "--token", TOKEN, "--json"]).await;
    assert_eq!(json.code, Some(1), "{json:?}");

    let unknown = cli(&app, &["show", "0190a5c4-0000-7000-8000-00000000ffff"]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(unknown.stderr.contains("404 saga not found"), "{}", unknown.stderr);

    for usage in [
        vec!["show", "not-a-uuid"],
        vec!["retry", id.as_str()],
        vec!["retry", id.as_str(), "--reason", "  "],
        vec!["abort", "nope", "--reason", "r"],
        vec!["list", "--status", "sleepy"],
        vec!["list", "--stuck-for", "soon"],
        vec!["dance"],
    ] {
        let out = cli(&app, &usage).await;
        assert_eq!(out.code, Some(2), "{usage:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{usage:?}: {out:?}");
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&["sagas", "list", "--url", &url]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&url), "names the URL: {}", out.stderr);
    let out = run(&["sagas", "show", &id]).await;
    assert!(out.code == Some(1) && out.stderr.contains("http://127.0.0.1:8080"), "the default URL: {out:?}");
}

/// A `jetsaga sagas tail` child with its stdout lines on a channel.
pub(crate) struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    /// Starts it and waits until it says it follows (so it sees what comes next).
    async fn start(args: &[&str]) -> Tail {
        let mut command = jetsaga();
        command.args(args);
        Self::spawn(command).await
    }

    /// [`Self::start`] for a command made by the caller (more environment).
    pub(crate) async fn spawn(mut command: Command) -> Tail {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("tail starts");
        let lines = read_lines(child.stdout.take().expect("stdout"));
        let mut stderr = read_lines(child.stderr.take().expect("stderr"));
        let first = tokio::time::timeout(WAIT, stderr.recv()).await.expect("tail says it follows");
        assert!(first.as_deref().is_some_and(|l| l.starts_with("following ")), "{first:?}");
        Tail { child, lines }
    }

    pub(crate) async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.recv()).await.expect("a line in time").expect("tail still runs")
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test]
async fn tail_follows_new_events_over_nats() {
    let prefix = format!("{}.saga", infra::unique("sagas_tail"));
    let transport = infra::nats(&prefix, Duration::from_secs(5)).await;
    let id = SagaId::parse("0190a5c4-0000-7000-8000-0000000000a1").expect("uuid");
    let other = SagaId::parse("0190a5c4-0000-7000-8000-0000000000a2").expect("uuid");
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis()).expect("ms");
    let started = |seq| Recorded {
        seq,
        at_ms: now_ms,
        event: SagaEvent::SagaStarted { saga_type: "trip".into(), version: 1, definition_hash: "ab".into(), input: json!({}), key: None },
    };
    transport.publish_event("trip", &started(1), other).await.expect("an old event");

    let url = infra::nats_url();
    let mut people = Tail::start(&["sagas", "tail", "--type", "trip", "--nats-url", &url, "--subject-prefix", &prefix]).await;
    let id_text = id.to_string();
    let mut machines = Tail::start(&["sagas", "tail", "--saga", &id_text, "--json", "--nats-url", &url, "--subject-prefix", &prefix]).await;

    transport.publish_event("cruise", &started(1), other).await.expect("another type");
    transport.publish_event("trip", &started(1), id).await.expect("publish");
    let sent = Recorded {
        seq: 2,
        at_ms: now_ms + 5,
        event: SagaEvent::CommandSent {
            step: StepName::parse("flight").expect("name"),
            kind: Kind::Action,
            attempt: 1,
            deadline_ms: now_ms + 100,
        },
    };
    transport.publish_event("trip", &sent, id).await.expect("publish");

    let first = people.line().await;
    assert!(first.contains(&id_text) && first.contains("saga_started") && first.contains("started (trip v1)"), "{first}");
    let second = people.line().await;
    assert!(second.contains(&id_text) && second.contains("command_sent") && second.contains("flight/action/1  sent"), "{second}");
    assert!(second.starts_with(&jetsaga::wire::rfc3339(now_ms + 5)), "the time first: {second}");

    let body: Value = serde_json::from_str(&machines.line().await).expect("a JSON line");
    assert_eq!(
        (body["saga_id"].as_str(), body["type"].as_str(), body["seq"].as_u64()),
        (Some(id_text.as_str()), Some("saga_started"), Some(1))
    );
    let body: Value = serde_json::from_str(&machines.line().await).expect("a JSON line");
    assert_eq!(body["data"]["step"], "flight");

    let interrupted = Command::new("kill").args(["-INT", &people.child.id().to_string()]).status().expect("kill runs");
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || people.child.wait().expect("tail exits")).await.expect("joined");
    assert_eq!(status.code(), Some(0), "Ctrl-C exits 0");
    drop(machines);
    transport.delete_streams().await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_waits_for_the_end_and_exits_by_the_outcome() {
    let app = trip_app(Arc::new(AtomicBool::new(false))).await;
    let id_of = |out: &Out| -> SagaId {
        let answer: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        answer["saga_id"].as_str().expect("id").parse().expect("uuid")
    };
    let done = cli(&app, &["start", "trip", "--input", r#"{"card": "4242"}"#, "--wait", "20s", "--json"]).await;
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(done.stdout.contains(r#""status":"completed""#), "{done:?}");
    let declined = cli(&app, &["start", "trip", "--input", r#"{"card": "declined"}"#, "--wait", "20s", "--json"]).await;
    assert_eq!(declined.code, Some(3), "any other end: {declined:?}");
    assert!(declined.stdout.contains(r#""status":"compensated""#), "{declined:?}");
    let silent = cli(&app, &["start", "trip", "--input", r#"{"card": "silent"}"#, "--wait", "300ms", "--json"]).await;
    assert_eq!(silent.code, Some(4), "the wait passed with the saga going: {silent:?}");
    assert!(silent.stdout.contains(r#""status":"running""#), "{silent:?}");
    let unwaited = cli(&app, &["start", "trip", "--input", r#"{"card": "silent"}"#]).await;
    assert_eq!(unwaited.code, Some(0), "without --wait, 0 once started: {unwaited:?}");

    let keyed = cli(&app, &["start", "trip", "--key", "order-1", "--version", "1", "--json"]).await;
    assert_eq!(keyed.code, Some(0), "{keyed:?}");
    let again = cli(&app, &["start", "trip", "--key", "order-1"]).await;
    assert!(again.stdout.starts_with(&format!("exists: saga {}", id_of(&keyed))), "{again:?}");
    let listed = cli(&app, &["list", "--type", "trip", "--key", "order-1", "--json"]).await;
    assert!(listed.stdout.contains(&id_of(&keyed).to_string()) && listed.stdout.contains(r#""key":"order-1""#), "{listed:?}");
    let unknown = cli(&app, &["start", "trip", "--version", "7"]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(unknown.stderr.contains("unknown version"), "{unknown:?}");
    app.stop().await;
}
