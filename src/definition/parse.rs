//! `parse`: one definition file's text in, a [`SagaDefinition`] or every
//! error that can be found in it out.
//!
//! Pure: no file system, no environment, no clock. TOML that does not parse
//! (or has an unknown key, which serde stops at) yields one error; otherwise
//! the checker walks the whole file and collects every broken rule, sorted by
//! line. Values the file leaves out come from `[defaults]`, then from the
//! built-in defaults ([`TIMEOUT_DEFAULT_MS`], [`RETRY_DEFAULT`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::error::{line_of, DefinitionError, Rule};
use super::raw::{RawDefaults, RawName, RawSaga, RawStep};
use super::values::Checker;
use super::{ActionName, GroupName, Participant, RetryPolicy, SagaDefinition, SagaType, StepDefinition, StepName};

/// Step timeout when neither the step nor `[defaults]` sets one ("10s").
pub const TIMEOUT_DEFAULT_MS: u64 = 10_000;

/// Retry policy when neither the step nor `[defaults]` sets one:
/// `{ max_attempts = 3, backoff = "200ms", max_backoff = "5s" }`.
pub const RETRY_DEFAULT: RetryPolicy = RetryPolicy { attempts_max: 3, backoff_ms: 200, backoff_max_ms: 5_000 };

/// Parses and checks one definition file; `file` only labels the errors.
pub fn parse(file: &str, text: &str) -> Result<SagaDefinition, Vec<DefinitionError>> {
    let raw: RawSaga = toml::from_str(text).map_err(|e| vec![toml_error(file, text, &e)])?;
    let mut checker = Checker::new(file, text);
    let saga = check_saga(&mut checker, raw, text);
    let mut errors = checker.into_errors();
    match saga {
        Some(saga) if errors.is_empty() => Ok(saga),
        _ => {
            errors.sort_by_key(|e| e.line);
            Err(errors)
        }
    }
}

/// Lowercase hex SHA-256 of a file's text.
pub fn content_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The line of the top-level `name` key, or 1 if it cannot be found.
pub(super) fn name_line(text: &str) -> usize {
    toml::from_str::<RawName>(text).map(|raw| line_of(text, raw.name.span().start)).unwrap_or(1)
}

/// Maps a TOML or serde error to one [`DefinitionError`].
fn toml_error(file: &str, text: &str, error: &toml::de::Error) -> DefinitionError {
    let message = error.message().trim().replace('\n', " ");
    let rule = if message.contains("unknown field") {
        Rule::UnknownKey
    } else if message.contains("missing field") {
        Rule::MissingKey
    } else {
        Rule::Syntax
    };
    let line = error.span().map_or(1, |span| line_of(text, span.start));
    let message = match rule {
        Rule::Syntax if !message.starts_with("invalid type") => format!("invalid TOML: {message}"),
        _ => message,
    };
    DefinitionError { file: file.to_owned(), line, rule, message }
}

/// Checks the whole file; `None` means at least one error was recorded.
fn check_saga(c: &mut Checker<'_>, raw: RawSaga, text: &str) -> Option<SagaDefinition> {
    let name = c.required(raw.name.as_ref(), "name", 1, "the saga needs a name, e.g. name = \"trip_booking\"");
    let name = name.and_then(|leaf| c.name("saga name", leaf, SagaType::parse));
    let version = c.required(raw.version.as_ref(), "version", 1, "the saga needs a version, e.g. version = 1");
    let version = version.and_then(|leaf| c.version(leaf));
    let deadline_ms = raw.deadline.as_ref().map(|leaf| c.deadline(leaf));
    let (timeout_ms, retry) = check_defaults(c, raw.defaults.as_ref());
    let steps = check_steps(c, raw.steps.as_ref(), timeout_ms, retry);
    Some(SagaDefinition {
        name: name?,
        version: version?,
        description: raw.description.unwrap_or_default(),
        steps: steps?,
        deadline_ms: present(deadline_ms)?,
        content_hash: content_hash(text),
        source: text.to_owned(),
    })
}

/// The timeout and retry policy every step starts from. A bad value is
/// reported and replaced by the built-in default so the steps still get checked.
fn check_defaults(c: &mut Checker<'_>, defaults: Option<&RawDefaults>) -> (u64, RetryPolicy) {
    let Some(defaults) = defaults else {
        return (TIMEOUT_DEFAULT_MS, RETRY_DEFAULT);
    };
    let timeout_ms = defaults.timeout.as_ref().and_then(|leaf| c.timeout(leaf)).unwrap_or(TIMEOUT_DEFAULT_MS);
    let retry = match &defaults.retry {
        Some(table) => c.retry(table, RETRY_DEFAULT, "[defaults].retry"),
        None => RETRY_DEFAULT,
    };
    (timeout_ms, retry)
}

/// Checks `[[steps]]`: each step, duplicate names, and the pivot.
fn check_steps(
    c: &mut Checker<'_>,
    steps: Option<&Spanned<Vec<Spanned<RawStep>>>>,
    timeout_ms: u64,
    retry: RetryPolicy,
) -> Option<Vec<StepDefinition>> {
    let Some(steps) = steps.filter(|s| !s.get_ref().is_empty()) else {
        let line = steps.map_or(1, |s| c.line(s.span()));
        c.fail(line, Rule::NoSteps, "the saga has no steps; add at least one [[steps]] table with name, participant and action");
        return None;
    };
    check_duplicate_steps(c, steps.get_ref());
    check_pivot(c, steps.get_ref());
    check_groups(c, steps.get_ref());
    let checked: Vec<Option<StepDefinition>> = steps.get_ref().iter().map(|s| check_step(c, s, timeout_ms, retry)).collect();
    checked.into_iter().collect()
}

/// Checks one step, inheriting `timeout_ms` and `retry` for what it leaves out.
fn check_step(c: &mut Checker<'_>, step: &Spanned<RawStep>, timeout_ms: u64, retry: RetryPolicy) -> Option<StepDefinition> {
    let line = c.line(step.span());
    let raw = step.get_ref();
    let hint = "every step needs name, participant and action";
    let name = c.required(raw.name.as_ref(), "name", line, hint).and_then(|l| c.name("step name", l, StepName::parse));
    let participant =
        c.required(raw.participant.as_ref(), "participant", line, hint).and_then(|l| c.name("participant", l, Participant::parse));
    let action = c.required(raw.action.as_ref(), "action", line, hint).and_then(|l| c.name("action", l, ActionName::parse));
    let compensation = match &raw.compensation {
        Some(leaf) => Some(c.name("compensation", leaf, ActionName::parse)?),
        None => None,
    };
    let timeout_ms = match &raw.timeout {
        Some(leaf) => c.timeout(leaf)?,
        None => timeout_ms,
    };
    let retry = match &raw.retry {
        Some(table) => c.retry(table, retry, &format!("retry of step {}", step_label(step))),
        None => retry,
    };
    let group = match &raw.group {
        Some(leaf) => Some(c.name("group", leaf, GroupName::parse)),
        None => None,
    };
    let when = raw.when.as_ref().map(|leaf| c.pointer("when", leaf));
    let payload = raw.payload.as_ref().map(|leaf| c.payload(leaf));
    Some(StepDefinition {
        name: name?,
        participant: participant?,
        action: action?,
        compensation,
        timeout_ms,
        retry,
        group: present(group)?,
        when: present(when)?,
        payload: present(payload)?,
    })
}

/// An optional key's checked value: `Some(None)` when it is absent,
/// `None` when it was present and refused.
fn present<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}

/// A step name used twice is reported at its second (and later) use.
fn check_duplicate_steps(c: &mut Checker<'_>, steps: &[Spanned<RawStep>]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for leaf in steps.iter().filter_map(|s| s.get_ref().name.as_ref()) {
        let (Some(name), line) = (leaf.get_ref().as_str(), c.line(leaf.span())) else { continue };
        match seen.get(name) {
            Some(first) => c.fail(
                line,
                Rule::DuplicateName,
                format!("step name {name:?} is already used by the step on line {first}; step names must be unique in a saga"),
            ),
            None => {
                seen.insert(name, line);
            }
        }
    }
}

/// The pivot is the first step without a compensation; a later step with one
/// could never be compensated, so the file is refused at that compensation.
fn check_pivot(c: &mut Checker<'_>, steps: &[Spanned<RawStep>]) {
    let Some(pivot) = steps.iter().position(|s| s.get_ref().compensation.is_none()) else { return };
    let pivot_name = step_label(&steps[pivot]);
    let pivot_line = c.line(steps[pivot].span());
    for step in &steps[pivot + 1..] {
        if let Some(leaf) = &step.get_ref().compensation {
            let message = format!(
                "step {} has a compensation but comes after the pivot {pivot_name} (line {pivot_line}), the first step without one; \
                 steps after the pivot are retried forward and never compensated: move this step before the pivot or remove its compensation",
                step_label(step)
            );
            c.fail(c.line(leaf.span()), Rule::CompensationAfterPivot, message);
        }
    }
}

/// Parallel groups (SPEC §7): the steps of one group are adjacent, and a
/// group does not hold the pivot (its steps all have compensations, or
/// all come after the pivot; a group of one step is still a group).
fn check_groups(c: &mut Checker<'_>, steps: &[Spanned<RawStep>]) {
    let group_of = |s: &Spanned<RawStep>| s.get_ref().group.as_ref().and_then(|l| l.get_ref().as_str().map(|g| (g.to_owned(), l.span())));
    let mut ended: HashMap<String, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let Some((group, span)) = group_of(step) else { continue };
        let previous = i.checked_sub(1).and_then(|p| group_of(&steps[p])).map(|(g, _)| g);
        if previous.as_deref() != Some(group.as_str()) {
            if let Some(&last_line) = ended.get(&group) {
                let message = format!(
                    "step {} joins group {group:?}, whose steps (the last on line {last_line}) are not next to it; \
                     a group's steps must be adjacent: move this step next to them or name another group",
                    step_label(step)
                );
                c.fail(c.line(span.clone()), Rule::GroupNotAdjacent, message);
            }
        }
        ended.insert(group, c.line(step.span()));
    }
    let Some(pivot) = steps.iter().position(|s| s.get_ref().compensation.is_none()) else { return };
    if let Some((group, span)) = group_of(&steps[pivot]) {
        let message = format!(
            "step {} is the pivot (the first step without a compensation) and is in group {group:?}; \
             a group's steps must all have compensations or all come after the pivot, so the pivot runs alone: remove its group",
            step_label(&steps[pivot])
        );
        c.fail(c.line(span), Rule::GroupMixesPivot, message);
    }
}

/// `"name"` of a raw step for messages, or `(unnamed)`.
fn step_label(step: &Spanned<RawStep>) -> String {
    match step.get_ref().name.as_ref().and_then(|l| l.get_ref().as_str()) {
        Some(name) => format!("{name:?}"),
        None => "(unnamed)".to_owned(),
    }
}
