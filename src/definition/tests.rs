//! Data-driven tests of `parse` and `Catalog`, pure (no files): each case is
//! a definition's text and the `"line rule"` pairs it must produce, through
//! one `check` helper. The fixture files are walked in `tests/it/definitions.rs`.

use super::*;

/// A valid saga, used as the base that cases extend.
const HEAD: &str = "name = \"trip\"\nversion = 1\n";
const STEP_A: &str = "[[steps]]\nname = \"a\"\nparticipant = \"pa\"\naction = \"do\"\ncompensation = \"undo\"\n";
const STEP_B: &str = "[[steps]]\nname = \"b\"\nparticipant = \"pb\"\naction = \"do\"\n";

/// Parses `text` and compares its errors, as `"line rule"`, with `expected`
/// (empty = the text must parse).
fn check(text: &str, expected: &[&str]) {
    let found: Vec<String> = match parse("t.toml", text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| format!("{} {}", e.line, e.rule)).collect(),
    };
    assert_eq!(found, expected, "\n--- text ---\n{text}\n--- errors ---\n{:#?}", parse("t.toml", text).err());
}

fn ok(text: &str) -> SagaDefinition {
    match parse("t.toml", text) {
        Ok(def) => def,
        Err(errors) => panic!("expected {text} to parse, got {errors:#?}"),
    }
}

#[test]
fn definition_minimal_is_valid_with_built_in_defaults() {
    let def = ok(&format!("{HEAD}{STEP_A}{STEP_B}"));
    assert_eq!(def.name.as_str(), "trip");
    assert_eq!(def.version, 1);
    assert_eq!(def.description, "");
    assert_eq!(def.steps.len(), 2);
    assert_eq!(def.steps[0].timeout_ms, TIMEOUT_DEFAULT_MS);
    assert_eq!(def.steps[0].retry, RETRY_DEFAULT);
    assert_eq!(def.steps[0].compensation.as_ref().map(ActionName::as_str), Some("undo"));
    assert_eq!(def.pivot(), Some(1));
}

#[test]
fn definition_cases() {
    let cases: &[(String, &[&str])] = &[
        // syntax and keys
        ("name = \n".to_owned(), &["1 syntax"]),
        (format!("{HEAD}colour = \"red\"\n{STEP_A}"), &["3 unknown-key"]),
        (format!("{HEAD}{STEP_A}timout = \"1s\"\n"), &["8 unknown-key"]),
        (format!("{HEAD}[defaults]\nretry = {{ attempts = 2 }}\n{STEP_A}"), &["4 unknown-key"]),
        (format!("version = 1\n{STEP_A}"), &["1 missing-key"]),
        (format!("{HEAD}[[steps]]\nname = \"a\"\n"), &["3 missing-key", "3 missing-key"]),
        // names
        (format!("name = \"Trip\"\nversion = 1\n{STEP_A}"), &["1 bad-name"]),
        (format!("name = 7\nversion = 1\n{STEP_A}"), &["1 bad-name"]),
        (format!("{HEAD}[[steps]]\nname = \"a-b\"\nparticipant = \"p q\"\naction = \"\"\n"), &["4 bad-name", "5 bad-name", "6 bad-name"]),
        (format!("{HEAD}{STEP_A}{STEP_A}"), &["9 duplicate-name"]),
        // version
        (format!("name = \"trip\"\nversion = 0\n{STEP_A}"), &["2 bad-version"]),
        (format!("name = \"trip\"\nversion = \"1\"\n{STEP_A}"), &["2 bad-version"]),
        (format!("name = \"trip\"\nversion = 1.5\n{STEP_A}"), &["2 bad-version"]),
        (format!("name = \"trip\"\nversion = 4294967296\n{STEP_A}"), &["2 bad-version"]),
        // durations and retry
        (format!("{HEAD}[defaults]\ntimeout = \"ten seconds\"\n{STEP_A}"), &["4 bad-duration"]),
        (format!("{HEAD}[defaults]\ntimeout = 10\n{STEP_A}"), &["4 bad-duration"]),
        (format!("{HEAD}{STEP_A}timeout = \"0s\"\n"), &["8 bad-duration"]),
        (format!("{HEAD}{STEP_A}retry = {{ backoff = \"soon\" }}\n"), &["8 bad-duration"]),
        (format!("{HEAD}{STEP_A}retry = {{ max_attempts = 0 }}\n"), &["8 max-attempts"]),
        (format!("{HEAD}{STEP_A}retry = {{ max_attempts = -1 }}\n"), &["8 max-attempts"]),
        (format!("{HEAD}{STEP_A}retry = {{ backoff = \"10s\" }}\n"), &["8 bad-backoff"]),
        (format!("{HEAD}[defaults]\nretry = {{ backoff = \"2s\", max_backoff = \"1s\" }}\n{STEP_A}"), &["4 bad-backoff"]),
        (format!("{HEAD}{STEP_A}retry = {{ backoff = \"0ms\", max_backoff = \"0ms\" }}\n"), &[]),
        // retry as a table header: errors point into the table
        (format!("{HEAD}[defaults.retry]\nbackoff = \"2s\"\nmax_backoff = \"1s\"\n{STEP_A}"), &["3 bad-backoff"]),
        (format!("{HEAD}{STEP_A}[steps.retry]\nmax_attempts = 0\nbackoff = \"1m\"\n"), &["8 bad-backoff", "9 max-attempts"]),
        // steps and the pivot
        (HEAD.to_owned(), &["1 no-steps"]),
        (format!("{HEAD}steps = []\n"), &["3 no-steps"]),
        (format!("{HEAD}{STEP_B}{STEP_A}"), &["11 compensation-after-pivot"]),
        (format!("{HEAD}{STEP_A}{STEP_B}{STEP_B}"), &["13 duplicate-name"]),
        // several errors at once, sorted by line
        (
            format!("name = \"T\"\nversion = 0\n[defaults]\ntimeout = \"x\"\n{STEP_B}{STEP_A}"),
            &["1 bad-name", "2 bad-version", "4 bad-duration", "13 compensation-after-pivot"],
        ),
    ];
    for (text, expected) in cases {
        check(text, expected);
    }
}

/// A step with a group, given as (name, compensation?, group?).
fn grouped(name: &str, compensation: bool, group: Option<&str>) -> String {
    let mut text = format!("[[steps]]\nname = \"{name}\"\nparticipant = \"p\"\naction = \"do\"\n");
    if compensation {
        text.push_str("compensation = \"undo\"\n");
    }
    if let Some(group) = group {
        text.push_str(&format!("group = \"{group}\"\n"));
    }
    text
}

#[test]
fn definition_cases_of_the_second_edition() {
    let g = grouped;
    let cases: &[(String, &[&str])] = &[
        // deadline
        (format!("{HEAD}deadline = \"15m\"\n{STEP_A}"), &[]),
        (format!("{HEAD}deadline = \"0s\"\n{STEP_A}"), &["3 bad-deadline"]),
        (format!("{HEAD}deadline = \"soon\"\n{STEP_A}"), &["3 bad-deadline"]),
        (format!("{HEAD}deadline = 60\n{STEP_A}"), &["3 bad-deadline"]),
        // groups: adjacent, after the pivot, of one step
        (format!("{HEAD}{}{}{}", g("a", true, Some("x")), g("b", true, Some("x")), g("c", false, None)), &[]),
        (format!("{HEAD}{}{}{}", g("a", false, None), g("b", false, Some("x")), g("c", false, Some("x"))), &[]),
        (format!("{HEAD}{}{}", g("a", true, Some("x")), g("b", false, None)), &[]),
        (
            format!("{HEAD}{}{}{}{}", g("a", true, Some("x")), g("b", true, None), g("c", true, Some("x")), g("d", false, None)),
            &["19 group-not-adjacent"],
        ),
        (format!("{HEAD}{}{}{}", g("a", true, Some("x")), g("b", true, Some("y")), g("c", true, Some("x"))), &["20 group-not-adjacent"]),
        (format!("{HEAD}{}{}", g("a", true, Some("x")), g("b", false, Some("x"))), &["13 group-mixes-pivot"]),
        (format!("{HEAD}{}{}", g("a", true, None), g("b", false, Some("solo"))), &["12 group-mixes-pivot"]),
        (format!("{HEAD}{}", g("a", true, Some("Solo"))), &["8 bad-name"]),
        // pointers
        (format!("{HEAD}{STEP_A}when = \"/input/car\"\n"), &[]),
        (format!("{HEAD}{STEP_A}when = \"\"\n"), &[]),
        (format!("{HEAD}{STEP_A}when = \"input/car\"\n"), &["8 bad-pointer"]),
        (format!("{HEAD}{STEP_A}when = \"/input/~x\"\n"), &["8 bad-pointer"]),
        (format!("{HEAD}{STEP_A}when = true\n"), &["8 bad-pointer"]),
        (format!("{HEAD}{STEP_A}payload = {{ a = \"/input/a~0~1\", b = \"/results/x/0\" }}\n"), &[]),
        (format!("{HEAD}{STEP_A}payload = {{ a = \"/input/~\" }}\n"), &["8 bad-pointer"]),
        (format!("{HEAD}{STEP_A}payload = {{ a = 1 }}\n"), &["8 bad-pointer"]),
        (format!("{HEAD}{STEP_A}payload = \"/input\"\n"), &["8 bad-payload"]),
        (format!("{HEAD}{STEP_A}payload = {{ output = \"/input\" }}\n"), &["8 bad-payload"]),
        (format!("{HEAD}{STEP_A}[steps.payload]\ncard = \"/input/card\"\n"), &[]),
    ];
    for (text, expected) in cases {
        check(text, expected);
    }
}

#[test]
fn definition_second_edition_keys_are_kept() {
    let text = format!(
        "{HEAD}deadline = \"2m\"\n{}{}{STEP_B}when = \"/input/car\"\npayload = {{ card = \"/input/card\", flight = \"/results/a/ref\" }}\n",
        grouped("a", true, Some("travel")),
        grouped("h", true, Some("travel"))
    );
    let def = ok(&text);
    assert_eq!(def.deadline_ms, Some(120_000));
    assert_eq!(def.steps[0].group.as_ref().map(GroupName::as_str), Some("travel"));
    assert_eq!(def.stage(0), 0..2);
    assert_eq!(def.stage(1), 0..2);
    assert_eq!(def.stage(2), 2..3);
    assert_eq!(def.stages(), [0..2, 2..3]);
    assert_eq!(def.steps[2].when.as_ref().map(Pointer::as_str), Some("/input/car"));
    let payload = def.steps[2].payload.as_ref().map(|p| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
    assert_eq!(payload, Some(vec!["card=/input/card".to_owned(), "flight=/results/a/ref".to_owned()]));
    assert_eq!(ok(&format!("{HEAD}{STEP_A}")).deadline_ms, None);
    // The content hash covers the new keys like every other byte.
    assert_ne!(ok(&text.replace("\"2m\"", "\"3m\"")).content_hash, def.content_hash);
    assert_ne!(ok(&text.replace("/input/car", "/input/boat")).content_hash, def.content_hash);
}

#[test]
fn definition_second_edition_messages_name_the_rule() {
    let g = grouped;
    let cases: &[(String, &str)] = &[
        (format!("{HEAD}deadline = \"0s\"\n{STEP_A}"), "t.toml:3: bad-deadline: deadline \"0s\" must be a duration greater than zero"),
        (
            format!("{HEAD}{STEP_A}when = \"input/car\"\n"),
            "t.toml:8: bad-pointer: when is not a JSON Pointer (RFC 6901): \"input/car\" must be empty or start with '/'",
        ),
        (format!("{HEAD}{}{}", g("a", true, Some("x")), g("b", false, Some("x"))), "t.toml:13: group-mixes-pivot: step \"b\" is the pivot"),
        (
            format!("{HEAD}{}{}{}", g("a", true, Some("x")), g("b", true, None), g("c", true, Some("x"))),
            "t.toml:19: group-not-adjacent: step \"c\" joins group \"x\"",
        ),
    ];
    for (text, expected) in cases {
        let shown: Vec<String> = parse("t.toml", text).err().unwrap_or_default().iter().map(ToString::to_string).collect();
        assert!(shown.len() == 1 && shown[0].starts_with(expected), "{shown:?}\n{text}");
    }
}

#[test]
fn definition_retry_tables_inherit_field_by_field() {
    let text = format!(
        "{HEAD}[defaults]\ntimeout = \"2s\"\nretry = {{ backoff = \"100ms\" }}\n{STEP_A}retry = {{ max_attempts = 7 }}\n{STEP_B}timeout = \"1m\"\n"
    );
    let def = ok(&text);
    assert_eq!(def.steps[0].timeout_ms, 2_000);
    assert_eq!(def.steps[0].retry, RetryPolicy { attempts_max: 7, backoff_ms: 100, backoff_max_ms: 5_000 });
    assert_eq!(def.steps[1].timeout_ms, 60_000);
    assert_eq!(def.steps[1].retry, RetryPolicy { attempts_max: 3, backoff_ms: 100, backoff_max_ms: 5_000 });
}

#[test]
fn definition_defaults_as_a_table_header() {
    let text = format!("{HEAD}[defaults.retry]\nmax_attempts = 5\n{STEP_A}");
    assert_eq!(ok(&text).steps[0].retry.attempts_max, 5);
}

#[test]
fn definition_messages_say_what_was_found_and_what_is_expected() {
    let cases: &[(String, &str)] = &[
        (
            format!("{HEAD}[defaults]\ntimeout = \"ten seconds\"\n{STEP_A}"),
            "t.toml:4: bad-duration: timeout \"ten seconds\" is not a duration; use e.g. \"250ms\", \"5s\", \"2m\"",
        ),
        (format!("{HEAD}{STEP_B}compensation = \"UNDO\"\n"), "t.toml:7: bad-name: compensation \"UNDO\" must match [a-z0-9_-]+"),
        (
            format!("{HEAD}{STEP_A}retry = {{ backoff = \"1m\" }}\n"),
            "t.toml:8: bad-backoff: retry of step \"a\": max_backoff 5s (inherited) is shorter than backoff 1m; max_backoff must be at least backoff",
        ),
        (format!("name = \"t\"\nversion = \"1\"\n{STEP_A}"), "t.toml:2: bad-version: version \"1\" must be an integer >= 1, without quotes, e.g. version = 1"),
        (format!("{HEAD}description = 5\n{STEP_A}"), "t.toml:3: syntax: invalid type: integer `5`, expected a string"),
    ];
    for (text, expected) in cases {
        let shown: Vec<String> = parse("t.toml", text).err().unwrap_or_default().iter().map(ToString::to_string).collect();
        assert_eq!(shown, [*expected], "\n{text}");
    }
}

#[test]
fn definition_content_hash_is_sha256_of_the_text() {
    let text = format!("{HEAD}{STEP_A}");
    let def = ok(&text);
    assert_eq!(def.source, text);
    assert_eq!(def.content_hash, content_hash(&text));
    assert_eq!(content_hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_ne!(ok(&format!("{text}# a comment\n")).content_hash, def.content_hash);
}

#[test]
fn definition_never_panics_on_odd_input() {
    for text in
        ["", "\u{0}", "[[steps]]", "steps = 3", "name = [1]\nversion = {}", "\n\n\n[defaults]\nretry = 1", "version = 99999999999999999999"]
    {
        assert!(parse("t.toml", text).is_err(), "{text:?} should be refused");
    }
}

#[test]
fn definition_catalog_is_all_or_nothing() {
    let good = ("a.toml".to_owned(), format!("{HEAD}{STEP_A}"));
    let other = ("b.toml".to_owned(), format!("name = \"other\"\nversion = 1\n{STEP_A}"));
    let bad = ("c.toml".to_owned(), format!("name = \"bad\"\nversion = 0\n{STEP_A}"));
    let catalog = Catalog::from_sources([other.clone(), good.clone()]).ok();
    let names: Vec<&str> = catalog.iter().flat_map(Catalog::names).collect();
    assert_eq!(names, ["other", "trip"]);
    assert!(catalog.as_ref().and_then(|c| c.get("trip")).is_some());
    assert_eq!(catalog.as_ref().map(Catalog::len), Some(2));

    let refused = Catalog::from_sources([good.clone(), bad]).err().map(|e| e.errors).unwrap_or_default();
    assert_eq!(refused.iter().map(|e| (e.file.as_str(), e.line, e.rule)).collect::<Vec<_>>(), [("c.toml", 2, Rule::BadVersion)]);

    let dup = ("d.toml".to_owned(), format!("# same name\n{HEAD}{STEP_B}"));
    let error = Catalog::from_sources([good, dup]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.starts_with("d.toml:2: duplicate-name: saga name \"trip\" is already declared in a.toml"), "{error}");
}

#[test]
fn definition_catalog_holds_several_versions_of_a_name() {
    let v1 = ("a.toml".to_owned(), format!("{HEAD}{STEP_A}"));
    let v2 = ("b.toml".to_owned(), format!("name = \"trip\"\nversion = 2\n{STEP_A}{STEP_B}"));
    let catalog = Catalog::from_sources([v2.clone(), v1.clone()]).expect("two versions load");
    assert_eq!(catalog.len(), 2);
    assert_eq!(catalog.names().collect::<Vec<_>>(), ["trip"]);
    assert_eq!(catalog.get("trip").map(|d| d.version), Some(2), "the highest version is the default");
    assert_eq!(catalog.version("trip", 1).map(|d| d.steps.len()), Some(1));
    assert!(catalog.version("trip", 3).is_none());
    let again = ("c.toml".to_owned(), format!("name = \"trip\"\nversion = 2\n{STEP_B}"));
    let error = Catalog::from_sources([v1, v2, again]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.starts_with("c.toml:1: duplicate-name: saga name \"trip\" is already declared in b.toml with version 2"), "{error}");
}

#[test]
fn definition_catalog_from_definitions_refuses_duplicates() {
    let def = ok(&format!("{HEAD}{STEP_A}"));
    assert!(Catalog::from_definitions(vec![def.clone()]).is_ok_and(|c| !c.is_empty()));
    let errors = Catalog::from_definitions(vec![def.clone(), def]).err().map(|e| e.errors).unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].rule), (1, Rule::DuplicateName));
}
