//! The `jetsaga` binary as a user runs it: `check`, `demo` and `participants`.

use std::path::Path;
use std::process::{Command, Output};

use jetsaga::store::{EventStore, ListFilter, SqliteStore};

fn jetsaga(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jetsaga"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the jetsaga binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_runs_ten_thousand_cases_of_the_demo_saga_and_passes() {
    let out = jetsaga(&["check", "sagas/", "--cases", "10000", "--seed", "1"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 definition(s) valid in sagas/: trip_booking"), "{stdout}");
    assert!(stdout.contains("10000 cases"), "{stdout}");
    assert!(stdout.contains("every invariant held (seed 1;"), "{stdout}");
    eprintln!("{stdout}");
}

#[test]
fn check_refuses_invalid_definitions_naming_file_line_and_rule() {
    let out = jetsaga(&["check", "tests/fixtures/definitions/bad/unknown_key.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tests/fixtures/definitions/bad/unknown_key.toml:9: unknown-key:"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is simulated for invalid definitions");
}

#[test]
fn check_of_a_directory_with_one_bad_file_loads_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("sagas/trip_booking.toml"), dir.path().join("trip_booking.toml"))
        .expect("copy");
    std::fs::write(dir.path().join("broken.toml"), "name = \"broken\"\nversion = 1\n[[steps]]\nname = \"a\"\n").expect("write");
    let out = jetsaga(&["check", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("broken.toml:3: missing-key"), "{}", text(&out.stderr));
}

#[test]
fn check_of_a_missing_path_is_a_clear_error() {
    let out = jetsaga(&["check", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/dir"), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(jetsaga(&["check"]).status.code(), Some(2));
    assert_eq!(jetsaga(&["check", "sagas/", "--cases", "many"]).status.code(), Some(2));
    let help = jetsaga(&["--help"]);
    assert!(text(&help.stdout).contains("check") && text(&help.stdout).contains("demo"));
}

#[tokio::test]
async fn demo_shows_a_completed_and_a_compensated_saga_and_keeps_the_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.db");
    let out = jetsaga(&["demo", "--database", db.to_str().expect("utf-8 path")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("completed after"), "{stdout}");
    assert!(stdout.contains("compensated after"), "{stdout}");
    assert!(stdout.contains("charge_card     action              1  failed: card declined"), "{stdout}");
    assert!(stdout.contains(&format!("events are in {}", db.display())), "{stdout}");
    // Compensations are listed last step first.
    let car = stdout.find("rent_car        compensation").expect("rent_car compensated");
    let flight = stdout.find("reserve_flight  compensation").expect("reserve_flight compensated");
    assert!(car < flight, "{stdout}");

    let store = SqliteStore::open(db.to_str().expect("utf-8 path")).await.expect("the demo database opens");
    let page = store.list(&ListFilter::default(), None, 10).await.expect("list");
    let statuses: Vec<&str> = page.sagas.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["completed", "compensated"]);
}

#[test]
fn demo_runs_outside_the_checkout_with_the_built_in_definition() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_jetsaga")).arg("demo").current_dir(dir.path()).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("compensated after"));
}

#[test]
fn participants_refuses_bad_usage_with_exit_2() {
    let out = jetsaga(&["participants"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--simulate"), "{}", text(&out.stderr));
    let out = jetsaga(&["participants", "--simulate", "--failure-rate", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--failure-rate 1.5"), "{}", text(&out.stderr));
    assert_eq!(jetsaga(&["participants", "--simulate", "--latency", "soon"]).status.code(), Some(2));
}

#[tokio::test]
async fn demo_runs_over_nats_and_postgres() {
    let schema = crate::infra::unique("jetsaga_demo");
    let store = crate::infra::postgres(&schema).await;
    let prefix = crate::infra::unique("demo");
    let url = crate::infra::schema_url(&schema);
    let nats = crate::infra::nats_url();
    let p = prefix.clone();
    let out = tokio::task::spawn_blocking(move || jetsaga(&["demo", "--nats-url", &nats, "--database-url", &url, "--subject-prefix", &p]))
        .await
        .expect("demo ran");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("over NATS JetStream") && stdout.contains("completed after") && stdout.contains("compensated after"),
        "{stdout}"
    );
    let page = store.list(&ListFilter::default(), None, 10).await.expect("list");
    let statuses: Vec<&str> = page.sagas.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["completed", "compensated"]);
    store.close().await;
    let _ = crate::infra::nats(&prefix, std::time::Duration::from_secs(30)).await.delete_streams().await;
}
