//! Definitions through the loader, data-driven by fixture files.
//!
//! Every `tests/fixtures/definitions/good/*.toml` must load; every
//! `bad/*.toml` opens with `# expect: LINE RULE[, LINE RULE…]` and must be
//! refused with exactly those errors. The other tests build directories in a
//! temporary folder: all-or-nothing sets, duplicate names, empty and missing
//! paths.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use jetsaga::definition::{Catalog, DefinitionError, RetryPolicy, Rule};
use jetsaga::loader::{load, LoadError};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/definitions");
const TRIP_BOOKING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sagas/trip_booking.toml");

const SAGA_A: &str = "name = \"a\"\nversion = 1\n\n[[steps]]\nname = \"s\"\nparticipant = \"p\"\naction = \"do\"\n";

/// The `*.toml` files of one fixture directory, sorted.
fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(FIXTURES).join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// The `(line, rule)` pairs a bad fixture's first line announces.
fn expected(path: &Path) -> BTreeSet<(usize, Rule)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    let list = first.strip_prefix("# expect:").unwrap_or_else(|| panic!("{}: first line must be `# expect: LINE RULE`", path.display()));
    list.split(',')
        .map(|item| {
            let (line, rule) = item.trim().split_once(' ').unwrap_or_else(|| panic!("{}: bad expectation {item:?}", path.display()));
            let line = line.parse().unwrap_or_else(|_| panic!("{}: bad line in {item:?}", path.display()));
            let rule = Rule::from_name(rule.trim()).unwrap_or_else(|| panic!("{}: unknown rule in {item:?}", path.display()));
            (line, rule)
        })
        .collect()
}

/// The errors of a refused load; panics if it loaded or failed otherwise.
fn refused(path: &Path) -> Vec<DefinitionError> {
    match load(path) {
        Err(LoadError::Invalid(e)) => e.errors,
        Err(other) => panic!("{}: expected invalid definitions, got {other}", path.display()),
        Ok(_) => panic!("{}: expected to be refused, but it loaded", path.display()),
    }
}

fn loaded(path: &Path) -> Catalog {
    load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn definitions_good_fixtures_load() {
    for path in fixtures("good") {
        assert_eq!(loaded(&path).len(), 1, "{}", path.display());
    }
}

#[test]
fn definitions_bad_fixtures_fail_with_the_expected_errors() {
    let mut rules_seen = BTreeSet::new();
    for path in fixtures("bad") {
        let expected = expected(&path);
        let errors = refused(&path);
        let found: BTreeSet<(usize, Rule)> = errors.iter().map(|e| (e.line, e.rule)).collect();
        assert_eq!(found, expected, "{}:\n{errors:#?}", path.display());
        for error in &errors {
            assert_eq!(error.file, path.display().to_string());
            assert!(!error.message.is_empty() && !error.message.contains('\n'), "{error}");
        }
        rules_seen.extend(expected.into_iter().map(|(_, rule)| rule));
    }
    let missing: Vec<Rule> = Rule::ALL.iter().copied().filter(|r| !rules_seen.contains(r)).collect();
    assert!(missing.is_empty(), "rules without a bad fixture: {missing:?}");
}

#[test]
fn definitions_trip_booking_demo_loads_with_charge_card_as_pivot() {
    let catalog = loaded(Path::new(TRIP_BOOKING));
    let def = catalog.get("trip_booking").unwrap_or_else(|| panic!("trip_booking missing"));
    let steps: Vec<&str> = def.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["reserve_flight", "reserve_hotel", "rent_car", "charge_card", "send_confirmation"]);
    assert_eq!(def.pivot().map(|i| def.steps[i].name.as_str()), Some("charge_card"));
    assert!(def.steps.iter().all(|s| s.timeout_ms == 2_000));
    assert!(def.steps.iter().all(|s| s.retry == RetryPolicy { attempts_max: 3, backoff_ms: 100, backoff_max_ms: 1_000 }));
    assert_eq!(def.content_hash.len(), 64);
}

#[test]
fn definitions_partial_retry_tables_inherit_from_defaults_then_built_ins() {
    let catalog = loaded(&Path::new(FIXTURES).join("good/partial_retry.toml"));
    let def = catalog.get("partial_retry").unwrap_or_else(|| panic!("partial_retry missing"));
    assert_eq!(def.steps[0].retry, RetryPolicy { attempts_max: 1, backoff_ms: 50, backoff_max_ms: 5_000 });
    assert_eq!((def.steps[0].timeout_ms, def.steps[1].timeout_ms), (10_000, 60_000));
    assert_eq!(def.steps[1].retry, RetryPolicy { attempts_max: 3, backoff_ms: 50, backoff_max_ms: 30_000 });
    assert_eq!(def.pivot(), Some(1));
}

#[test]
fn definitions_directory_loads_every_toml_and_ignores_the_rest() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "b.toml", &SAGA_A.replace("\"a\"", "\"b\""));
    write(dir.path(), "a.toml", SAGA_A);
    write(dir.path(), "notes.md", "not a saga");
    fs::create_dir(dir.path().join("old.toml")).unwrap_or_else(|e| panic!("{e}"));
    let catalog = loaded(dir.path());
    assert_eq!(catalog.names().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn definitions_one_bad_file_refuses_the_whole_directory() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "a.toml", SAGA_A);
    write(dir.path(), "b.toml", &SAGA_A.replace("\"a\"", "\"b\"").replace("version = 1", "version = 0"));
    let errors = refused(dir.path());
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].file.clone(), errors[0].line, errors[0].rule),
        (dir.path().join("b.toml").display().to_string(), 2, Rule::BadVersion)
    );
}

#[test]
fn definitions_duplicate_saga_names_across_files_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "first.toml", SAGA_A);
    write(dir.path(), "second.toml", &format!("# same name again\n{SAGA_A}"));
    let errors = refused(dir.path());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let first = dir.path().join("first.toml").display().to_string();
    assert_eq!(errors[0].file, dir.path().join("second.toml").display().to_string());
    assert_eq!((errors[0].line, errors[0].rule), (2, Rule::DuplicateName));
    assert!(errors[0].message.contains(&first), "{}", errors[0].message);
}

#[test]
fn definitions_empty_directory_and_missing_path_are_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "README.md", "no sagas here");
    assert!(matches!(load(dir.path()), Err(LoadError::Empty(p)) if p == dir.path()));
    let missing = dir.path().join("nope.toml");
    assert!(matches!(load(&missing), Err(LoadError::Io { path, .. }) if path == missing));
}

#[test]
fn definitions_content_hash_is_stable_and_follows_the_text() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "a.toml", SAGA_A);
    let hash = |catalog: &Catalog| catalog.get("a").map(|d| d.content_hash.clone()).unwrap_or_default();
    let before = hash(&loaded(dir.path()));
    assert_eq!(before, hash(&loaded(dir.path())));
    write(dir.path(), "a.toml", &format!("{SAGA_A}# edited\n"));
    assert_ne!(before, hash(&loaded(dir.path())));
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
}

#[test]
fn definitions_spec7_example_loads_groups_conditions_payloads_and_deadline() {
    let catalog = loaded(&Path::new(FIXTURES).join("good/spec7_example.toml"));
    let def = catalog.get("trip_booking").unwrap_or_else(|| panic!("trip_booking missing"));
    assert_eq!(def.deadline_ms, Some(15 * 60 * 1_000));
    assert_eq!(def.stages(), [0..2, 2..3, 3..4]);
    assert_eq!(def.pivot(), Some(3));
    assert_eq!(def.steps[2].when.as_ref().map(|p| p.as_str()), Some("/input/car"));
    let charge: Vec<(&str, &str)> =
        def.steps[3].payload.iter().flatten().map(|(name, pointer)| (name.as_str(), pointer.as_str())).collect();
    assert_eq!(charge, [("card", "/input/card"), ("flight", "/results/reserve_flight/ref")]);
}
