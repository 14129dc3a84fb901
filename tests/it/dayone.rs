//! Day two of running jetsaga (issue 12), as an operator meets it: real
//! `serve` and `migrate` processes, their HTTP answers, exit codes and
//! stderr. Start-up shows its state (`/healthz` at once, `/readyz` per
//! dependency) and stops on a signal; logs are text or JSON, filtered by
//! `--log` over `RUST_LOG`, never coloured into a file; settings come from
//! flags, then the environment, then `--config`; the schema is migrated by
//! `jetsaga migrate` or checked by `serve --no-migrate`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::infra;
use crate::support::http;

/// Variables of the test's own environment that would change what the child does.
const INHERITED: [&str; 8] =
    ["RUST_LOG", "JETSAGA_LOG", "JETSAGA_LOG_FORMAT", "DATABASE_URL", "NATS_URL", "JETSAGA_CONFIG", "JETSAGA_LISTEN", "NO_COLOR"];

fn jetsaga() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jetsaga"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    for name in INHERITED {
        command.env_remove(name);
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("jetsaga runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sagas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sagas")
}

/// A `jetsaga serve` whose stderr goes to a file, read at any time.
struct Serve {
    child: Child,
    port: u16,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// `serve` listening where `JETSAGA_LISTEN` says (every flag has a variable).
    fn start(args: &[&str], env: &[(&str, String)]) -> Serve {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr.log");
        let port = infra::free_port();
        let child = jetsaga()
            .arg("serve")
            .args(args)
            .env("JETSAGA_LISTEN", format!("127.0.0.1:{port}"))
            .env("JETSAGA_SAGAS", sagas())
            .env("NATS_URL", infra::nats_url())
            .env("JETSAGA_SUBJECT_PREFIX", infra::unique("dayone"))
            .env("JETSAGA_STREAM_MAX_BYTES", infra::STREAM_MAX_BYTES.to_string())
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("jetsaga serve starts");
        Serve { child, port, stderr, _dir: dir }
    }

    async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let (status, body) = http("GET", &format!("http://127.0.0.1:{}{path}", self.port), None, None).await.ok()?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The first answer to `GET path`, polling from the start.
    async fn first_answer(&mut self, path: &str, within: Duration) -> (u16, Value) {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("serve exited: {status}\n{}", self.stderr());
            }
            if let Some(answer) = self.get(path).await {
                return answer;
            }
            assert!(tokio::time::Instant::now() < until, "no answer to {path} within {within:?}\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `/readyz` until it answers 200.
    async fn ready_within(&mut self, within: Duration) -> Value {
        let until = tokio::time::Instant::now() + within;
        loop {
            let (status, body) = self.first_answer("/readyz", within).await;
            if status == 200 {
                return body;
            }
            assert!(tokio::time::Instant::now() < until, "not ready within {within:?}: {body}\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    async fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn sigterm(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL URL of the tests with its port replaced by `port` and
/// its schema set to `schema`.
fn postgres_url_on(port: u16, schema: &str) -> String {
    let url = infra::schema_url(schema);
    assert!(url.contains("127.0.0.1:5432"), "the tests' PostgreSQL is on 127.0.0.1:5432: {url}");
    url.replace("127.0.0.1:5432", &format!("127.0.0.1:{port}"))
}

/// With PostgreSQL unreachable, `/healthz` answers 200 at once and
/// `/readyz` 503 with `database` waiting; the rest of the API says it is
/// starting; SIGTERM stops the wait at once; the start and stop lines are
/// on stderr, the password in the database URL is not.
#[tokio::test]
async fn health_answers_at_once_while_the_database_is_unreachable_and_sigterm_stops_the_wait() {
    let nobody = format!("postgres://root:hunter2secret@127.0.0.1:{}/test", infra::free_port());
    let mut serve = Serve::start(&[], &[("DATABASE_URL", nobody)]);
    let (status, body) = serve.first_answer("/healthz", Duration::from_secs(5)).await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")), "{body}");
    let (status, ready) = serve.get("/readyz").await.expect("an answer");
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not ready");
    assert_eq!(ready["database"], "waiting");
    assert_eq!(ready["nats"], "waiting");
    assert_eq!(ready["waiting_for"][0], "database", "{ready}");
    for key in ["migrations", "consumers", "relay"] {
        assert_eq!(ready[key], "waiting", "{key}: {ready}");
    }
    let (status, starting) = serve.get("/sagas").await.expect("an answer");
    assert_eq!((status, &starting["error"]), (503, &Value::from("starting")), "{starting}");

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(serve.exited_within(Duration::from_millis(10)).await.is_none(), "serve keeps waiting for the database");
    let asked = std::time::Instant::now();
    serve.sigterm();
    let status = serve.exited_within(Duration::from_secs(3)).await.expect("SIGTERM stops the wait");
    assert!(status.success(), "{status}\n{}", serve.stderr());
    eprintln!("stopped {:?} after SIGTERM", asked.elapsed());
    let stderr = serve.stderr();
    assert!(stderr.contains("jetsaga starting") && stderr.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{stderr}");
    assert!(stderr.contains("definitions=trip_booking v1"), "{stderr}");
    assert!(stderr.contains("database not reachable yet; retrying"), "{stderr}");
    assert!(stderr.contains("jetsaga stopped before the database was ready"), "{stderr}");
    assert!(!stderr.contains("hunter2secret"), "the password is never logged: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a file: {stderr:?}");
}

/// Copies bytes both ways between `client` and PostgreSQL.
async fn forward(mut client: TcpStream) {
    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else { return };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The database comes up late (a port that only later leads to
/// PostgreSQL): `/readyz` goes from 503 with `database` waiting to 200
/// with every dependency ready, the API opens, and SIGTERM stops it with
/// the stop line.
#[tokio::test]
async fn readyz_turns_ready_once_the_database_comes_up() {
    let schema = infra::unique("jetsaga_test_dayone");
    drop(infra::postgres(&schema).await);
    let port = infra::free_port();
    let mut serve = Serve::start(&[], &[("DATABASE_URL", postgres_url_on(port, &schema)), ("JETSAGA_LOG", "info".into())]);
    let (status, ready) = serve.first_answer("/readyz", Duration::from_secs(5)).await;
    assert_eq!((status, &ready["database"]), (503, &Value::from("waiting")), "{ready}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, ready) = serve.get("/readyz").await.expect("an answer");
    assert_eq!((status, &ready["database"]), (503, &Value::from("waiting")), "still waiting: {ready}");

    let proxy = TcpListener::bind(("127.0.0.1", port)).await.expect("the database's port");
    let accepting = tokio::spawn(async move {
        while let Ok((client, _)) = proxy.accept().await {
            tokio::spawn(forward(client));
        }
    });
    let ready = serve.ready_within(Duration::from_secs(20)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    for key in ["database", "nats", "migrations", "consumers", "relay"] {
        assert_eq!(ready[key], "ready", "{key}: {ready}");
    }
    let (status, page) = serve.get("/sagas").await.expect("an answer");
    assert_eq!(status, 200, "the API is open: {page}");

    serve.sigterm();
    let status = serve.exited_within(Duration::from_secs(10)).await.expect("SIGTERM stops serve");
    assert!(status.success(), "{status}");
    accepting.abort();
    let stderr = serve.stderr();
    for line in ["jetsaga starting", "database schema ready", "jetsaga ready", "jetsaga stopped"] {
        assert!(stderr.contains(line), "{line:?} missing: {stderr}");
    }
}

/// A database that does not exist can never be reached: `serve` says so
/// and exits 1 at once, without retrying.
#[tokio::test]
async fn an_unknown_database_fails_at_once() {
    let url = infra::database_url();
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let mut serve = Serve::start(&[], &[("DATABASE_URL", format!("{base}/no_such_database_dayone"))]);
    let status = serve.exited_within(Duration::from_secs(5)).await.expect("serve gives up at once");
    assert_eq!(status.code(), Some(1), "{}", serve.stderr());
    let stderr = serve.stderr();
    assert!(stderr.contains("no_such_database_dayone") && stderr.contains("will not pass by retrying"), "{stderr}");
    assert!(!stderr.contains("not reachable yet"), "no retries: {stderr}");
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("events.db").display())
}

/// `serve --no-migrate` never creates the schema: on an empty database it
/// fails naming `jetsaga migrate`; after `jetsaga migrate` it runs.
#[tokio::test]
async fn no_migrate_needs_jetsaga_migrate_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(dir.path());
    let mut serve = Serve::start(&["--no-migrate"], &[("DATABASE_URL", url.clone())]);
    let status = serve.exited_within(Duration::from_secs(10)).await.expect("serve refuses at once");
    assert_eq!(status.code(), Some(1));
    let stderr = serve.stderr();
    assert!(stderr.contains("with --no-migrate the schema must already exist: run `jetsaga migrate` first"), "{stderr}");

    let out = run(jetsaga().args(["migrate", "--database-url", &url]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("migrations 0 → 4 applied"), "{}", text(&out.stdout));
    let again = run(jetsaga().args(["migrate", "--database-url", &url]));
    assert!(text(&again.stdout).contains("the schema is at migration 4 already; nothing to apply"), "{}", text(&again.stdout));

    let mut serve = Serve::start(&["--no-migrate"], &[("DATABASE_URL", url)]);
    let ready = serve.ready_within(Duration::from_secs(20)).await;
    assert_eq!(ready["migrations"], "ready", "{ready}");
    assert!(serve.stderr().contains("migration=4 migrated=false"), "{}", serve.stderr());
}

/// Rolling back to an older binary: the database has a migration this
/// jetsaga does not know. `migrate` and `serve` refuse, naming both versions.
#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_naming_both_versions() {
    use sqlx::{Connection, SqliteConnection};
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(dir.path());
    assert_eq!(run(jetsaga().args(["migrate", "--database-url", &url])).status.code(), Some(0));
    let mut conn = SqliteConnection::connect(&url).await.expect("the database");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9, 'from a newer jetsaga', TRUE, X'00', 1)",
    )
    .execute(&mut conn)
    .await
    .expect("a newer migration recorded");
    conn.close().await.expect("closed");

    let want = format!("the database schema is at migration 9, this jetsaga (version {}) knows up to 4", env!("CARGO_PKG_VERSION"));
    let out = run(jetsaga().args(["migrate", "--database-url", &url]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&want) && text(&out.stderr).contains("run a newer jetsaga or restore"), "{}", text(&out.stderr));
    for args in [&[][..], &["--no-migrate"][..]] {
        let mut serve = Serve::start(args, &[("DATABASE_URL", url.clone())]);
        let status = serve.exited_within(Duration::from_secs(10)).await.expect("serve refuses");
        assert_eq!(status.code(), Some(1), "{args:?}");
        assert!(serve.stderr().contains(&want), "{args:?}: {}", serve.stderr());
    }
}

/// `--log-format json`: every stderr line is a JSON object with level and message.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(jetsaga().args(["migrate", "--log-format", "json", "--database-url", &sqlite_url(dir.path())]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<Value> =
        stderr.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))).collect();
    let applied = lines.iter().find(|line| line["fields"]["message"] == "migrations applied").expect("the info line");
    assert_eq!(applied["level"], "INFO", "{applied}");
    assert_eq!(applied["fields"]["migration"], 4, "{applied}");
}

/// `RUST_LOG` is honoured, `--log` wins over it, and a filter that does
/// not parse is refused (exit 2) naming where it came from.
#[test]
fn log_filters_come_from_the_flag_then_rust_log_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(dir.path());
    let quiet = run(jetsaga().args(["migrate", "--database-url", &url]).env("RUST_LOG", "warn"));
    assert_eq!(quiet.status.code(), Some(0));
    assert!(!text(&quiet.stderr).contains("INFO"), "RUST_LOG=warn hides info: {}", text(&quiet.stderr));
    let loud = run(jetsaga().args(["--log", "info", "migrate", "--database-url", &url]).env("RUST_LOG", "error"));
    assert!(text(&loud.stderr).contains("INFO") && text(&loud.stderr).contains("migrations applied"), "{}", text(&loud.stderr));
    assert!(!text(&loud.stderr).contains('\u{1b}'), "no colour when stderr is not a terminal");

    let bad = run(jetsaga().args(["migrate", "--database-url", &url]).env("RUST_LOG", "jetsaga=loud"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("error: invalid log filter \"jetsaga=loud\" in RUST_LOG"), "{}", text(&bad.stderr));
    let bad = run(jetsaga().args(["--log", "[[[", "migrate", "--database-url", &url]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("in --log (JETSAGA_LOG)"), "{}", text(&bad.stderr));
}

/// `--config`: keys are flag names; a flag beats the environment, which
/// beats the file; an unknown key is refused with file and line (exit 2).
#[test]
fn the_config_file_sits_under_the_environment_and_the_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let [from_file, from_env, from_flag] =
        ["file.db", "env.db", "flag.db"].map(|name| format!("sqlite://{}", dir.path().join(name).display()));
    let config = dir.path().join("jetsaga.toml");
    std::fs::write(&config, format!("# jetsaga serve's settings\ndatabase-url = \"{from_file}\"\nlog = \"warn\"\n")).expect("written");
    let config = config.to_str().expect("utf-8");

    let out = run(jetsaga().args(["migrate", "--config", config]));
    assert!(text(&out.stdout).starts_with(&format!("{from_file}: migrations")), "{}", text(&out.stdout));
    assert!(text(&out.stderr).is_empty(), "log = warn from the file: {}", text(&out.stderr));
    let out = run(jetsaga().args(["migrate", "--config", config]).env("DATABASE_URL", &from_env));
    assert!(text(&out.stdout).starts_with(&format!("{from_env}: migrations")), "{}", text(&out.stdout));
    let out = run(jetsaga().args(["migrate", "--config", config, "--database-url", &from_flag]).env("DATABASE_URL", &from_env));
    assert!(text(&out.stdout).starts_with(&format!("{from_flag}: migrations")), "{}", text(&out.stdout));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:9000\"\ndatabase_url = \"x\"\n").expect("written");
    let out = run(jetsaga().args(["serve", "--config", bad.to_str().expect("utf-8")]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{}:2: unknown key `database_url`", bad.display())), "{stderr}");
}

/// `jetsaga completions bash|zsh|fish` prints a script for that shell.
#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [("bash", "_jetsaga()"), ("zsh", "#compdef jetsaga"), ("fish", "complete -c jetsaga")] {
        let out = run(jetsaga().args(["completions", shell]));
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker) && script.contains("migrate") && script.contains("no-migrate"), "{shell}: {marker}");
    }
    assert_eq!(run(jetsaga().args(["completions", "tcsh"])).status.code(), Some(2));
}

/// `jetsaga sagas start TYPE --input JSON [--id]` starts a saga through
/// the ops API; the same id again names the existing saga; input that is
/// not JSON is a usage error (2), an unknown type an API error (1).
#[tokio::test]
async fn sagas_start_starts_a_saga_from_the_command_line() {
    use crate::sagas_cli::cli;
    use crate::support::{answer, saga_id, spawn_app};
    let app = spawn_app(&["trip"], answer(|_| Some(true))).await;
    let id = saga_id(0xd2).to_string();
    let out = cli(&app, &["start", "trip", "--input", r#"{"who": "ada"}"#, "--id", &id]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("started: saga {id} (trip) is running\n"));
    app.settled(saga_id(0xd2)).await;
    let (_, detail) = app.http("GET", &format!("/sagas/{id}"), None, None).await;
    assert_eq!(detail["input"], serde_json::json!({"who": "ada"}), "{detail}");

    let again = cli(&app, &["start", "trip", "--id", &id]).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.stdout, format!("exists: saga {id} (trip) is completed\n"));
    let json = cli(&app, &["start", "trip", "--json"]).await;
    let body: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(body["status"], "running", "{body}");

    assert_eq!(cli(&app, &["start", "trip", "--input", "{not json"]).await.code, Some(2));
    let unknown = cli(&app, &["start", "no_such_type"]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(unknown.stderr.contains("422 unknown saga type"), "{}", unknown.stderr);
}

/// Poison is readable without `psql`: `GET /poison` pages through the
/// records (oldest first, `after` the last id), `GET /poison/{id}` shows
/// one with its payload, and `jetsaga poison list|show` prints them.
#[tokio::test]
async fn poison_is_read_through_the_api_and_the_cli() {
    use jetsaga::store::{EventStore, PoisonRecord};

    use crate::sagas_cli::run as cli;
    use crate::support::{answer, spawn_app};
    let app = spawn_app(&["trip"], answer(|_| Some(true))).await;
    // Recent: the retention sweep forgets poison older than a week.
    let now_ms =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis()).expect("ms");
    for n in 0..3_i64 {
        let record = PoisonRecord {
            subject: "saga.reply.hotels".to_owned(),
            reason: format!("not JSON ({n})"),
            payload: format!("{{oops {n}").into_bytes(),
            received_at_ms: now_ms + n,
        };
        app.store.record_poison(&record).await.expect("kept");
    }
    let (status, page) = app.http("GET", "/poison?limit=2", None, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["poison"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(page["poison"][0]["reason"], "not JSON (0)");
    assert_eq!(page["poison"][0]["received_at"], jetsaga::wire::rfc3339(now_ms));
    assert_eq!(page["poison"][0]["payload_bytes"], 7);
    let next = page["next_after"].as_i64().expect("a full page has next_after");
    let (_, rest) = app.http("GET", &format!("/poison?after={next}"), None, None).await;
    assert_eq!((rest["poison"][0]["reason"].clone(), rest["next_after"].clone()), (Value::from("not JSON (2)"), Value::Null), "{rest}");
    let first = page["poison"][0]["id"].as_i64().expect("an id");
    let (status, one) = app.http("GET", &format!("/poison/{first}"), None, None).await;
    assert_eq!((status, &one["payload"], &one["subject"]), (200, &Value::from("{oops 0"), &Value::from("saga.reply.hotels")), "{one}");
    assert_eq!(app.http("GET", "/poison/999999", None, None).await.0, 404);

    let list = cli(&["poison", "list", "--url", &app.url]).await;
    assert_eq!(list.code, Some(0), "{list:?}");
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("ID ") && lines[0].ends_with("REASON"), "{}", list.stdout);
    assert!(lines[1].contains("saga.reply.hotels") && lines[1].ends_with("not JSON (0)"), "{}", list.stdout);
    assert_eq!(lines.len(), 4, "{}", list.stdout);
    let show = cli(&["poison", "show", &first.to_string(), "--url", &app.url]).await;
    assert_eq!(show.code, Some(0), "{show:?}");
    assert!(show.stdout.contains("reason:   not JSON (0)\npayload (7 bytes kept):\n{oops 0\n"), "{}", show.stdout);
    let missing = cli(&["poison", "show", "999999", "--url", &app.url]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("404 poison not found"), "{}", missing.stderr);
}
