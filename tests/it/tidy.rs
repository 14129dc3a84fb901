//! Architecture invariants, checked on the source text (a "tidy" test):
//! the pure core stays pure, each external crate stays in its adapter, and
//! every file says what it is for.

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

#[test]
fn the_tidy_check_itself_catches_a_violation() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("bad.rs"), "//! x\nfn f() { let _ = std::time::SystemTime::now(); }\n").expect("write");
    let lines = code_lines(&dir.path().join("bad.rs"));
    assert!(lines.iter().any(|(_, l)| contains_token(l, "SystemTime::now")));
    assert!(contains_token("x.await;", ".await") && !contains_token("phase.awaited()", ".await"));
}
