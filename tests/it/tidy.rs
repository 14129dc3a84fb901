//! Architecture invariants, checked on the source text (a "tidy" test):
//! the pure core stays pure, each external crate stays in its adapter, the
//! orchestrator is assembled in one place, the system clock is read in one
//! place, every duration has a name, and every file says what it is for.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Code lines only: comments may name what the code must not use.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).expect("readable source");
    text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")).map(|(i, l)| (i + 1, l.to_owned())).collect()
}

/// `word` in `text`, not as the start of a longer identifier
/// (`.await` is forbidden, `.awaited()` is not).
fn contains_token(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let next = text[at + word.len()..].chars().next();
        !word.ends_with(|c: char| c.is_alphanumeric() || c == '_') || !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn offenders(dirs: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for file in rust_files(&src().join(dir)) {
            for (line, text) in code_lines(&file) {
                for word in forbidden {
                    if contains_token(&text, word) {
                        found.push(format!("{}:{line}: uses {word}", file.display()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_core_is_pure() {
    let forbidden = [
        "async fn",
        ".await",
        "tokio::",
        "sqlx::",
        "async_nats::",
        "axum::",
        "SystemTime::now",
        "Instant::now",
        "thread_rng",
        "std::fs",
        "std::env",
        "rand::",
        "now_v7",
    ];
    let found = offenders(&["definition", "saga", "sim"], &forbidden);
    assert!(found.is_empty(), "the pure core must not do IO, async, clocks or randomness:\n{}", found.join("\n"));
}

#[test]
fn each_external_crate_stays_in_its_adapter() {
    let outside = |word: &str, home: &str| -> Vec<String> {
        let others: Vec<String> = fs::read_dir(src())
            .expect("src/")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != home)
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let mut found = Vec::new();
        for other in others {
            let path = src().join(other);
            let files = if path.is_dir() { rust_files(&path) } else { vec![path] };
            for file in files {
                for (line, text) in code_lines(&file) {
                    if text.contains(word) {
                        found.push(format!("{}:{line}", file.display()));
                    }
                }
            }
        }
        found
    };
    let nats = outside("async_nats", "transport");
    assert!(nats.is_empty(), "async_nats outside src/transport: {nats:?}");
    let sqlx = outside("sqlx", "store");
    assert!(sqlx.is_empty(), "sqlx outside src/store: {sqlx:?}");
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let missing: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|f| !fs::read_to_string(f).expect("readable").trim_start().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! paragraph: {missing:?}");
}

/// Files under `dirs` (relative to the crate root) whose code calls any of `calls`.
fn callers(dirs: &[&str], calls: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in dirs {
        for file in rust_files(&root.join(dir)) {
            for (line, text) in code_lines(&file) {
                if let Some(call) = calls.iter().find(|c| text.contains(*c)) {
                    let relative = file.strip_prefix(root).expect("under the root").display().to_string();
                    found.push(format!("{relative}:{line}: {call}"));
                }
            }
        }
    }
    found
}

#[test]
fn the_orchestrator_is_assembled_in_one_place() {
    let assembly = ["Engine::new(", "relay::run(", ".orchestrator_consumers(", "Definitions::new("];
    let elsewhere: Vec<String> =
        callers(&["src", "benches"], &assembly).into_iter().filter(|f| !f.starts_with("src/orchestrator.rs:")).collect();
    assert!(elsewhere.is_empty(), "assemble through Orchestrator::build (src/orchestrator.rs), not by hand:\n{}", elsewhere.join("\n"));
    // This file names the calls it looks for; it is not a caller. (The
    // relay or the ops router alone may be driven by a test: parts, not
    // the assembly.)
    let tests: Vec<String> = callers(&["tests"], &["Engine::new("]).into_iter().filter(|f| !f.starts_with("tests/it/tidy.rs:")).collect();
    assert!(tests.is_empty(), "tests assemble through tests/it/support.rs (Orchestrator::build):\n{}", tests.join("\n"));
}

#[test]
fn the_system_clock_is_read_in_one_place() {
    let reads: Vec<String> =
        callers(&["src"], &["SystemTime::now", "Instant::now"]).into_iter().filter(|f| !f.starts_with("src/runtime/clock.rs:")).collect();
    assert!(reads.is_empty(), "read time through runtime::Clock (injected), not the system clock:\n{}", reads.join("\n"));
}

/// `Duration::from_secs(30)` and friends with a literal, outside a `const`
/// and outside test code: a limit, timeout or backoff without a name.
fn unnamed_durations(file: &Path) -> Vec<String> {
    let literal = |text: &str| {
        ["Duration::from_secs(", "Duration::from_millis(", "Duration::from_micros("]
            .iter()
            .any(|call| text.match_indices(call).any(|(at, _)| text[at + call.len()..].starts_with(|c: char| c.is_ascii_digit())))
    };
    code_lines(file)
        .into_iter()
        .take_while(|(_, text)| !text.contains("#[cfg(test)]"))
        .filter(|(_, text)| {
            literal(text) && !text.trim_start().trim_start_matches("pub ").trim_start_matches("pub(crate) ").starts_with("const ")
        })
        .map(|(line, text)| format!("{}:{line}: {}", file.display(), text.trim()))
        .collect()
}

#[test]
fn every_duration_has_a_name() {
    let found: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"))
        .flat_map(|f| unnamed_durations(&f))
        .collect();
    assert!(found.is_empty(), "name every timeout, pause and backoff (a const with a doc comment):\n{}", found.join("\n"));
}

#[test]
fn the_tidy_check_itself_catches_a_violation() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("bad.rs"), "//! x\nfn f() { let _ = std::time::SystemTime::now(); }\n").expect("write");
    let lines = code_lines(&dir.path().join("bad.rs"));
    assert!(lines.iter().any(|(_, l)| contains_token(l, "SystemTime::now")));
    assert!(contains_token("x.await;", ".await") && !contains_token("phase.awaited()", ".await"));
    let durations = dir.path().join("durations.rs");
    fs::write(&durations, "//! x\nconst A: Duration = Duration::from_secs(1);\nfn f() { sleep(Duration::from_millis(20)); sleep(Duration::from_millis(A)); }\n").expect("write");
    assert_eq!(unnamed_durations(&durations).len(), 1, "{:?}", unnamed_durations(&durations));
}
