//! The checker's leaf-level rules: names, `version`, durations, retry
//! tables, the saga `deadline`, JSON Pointers and `payload` tables. Each check turns a raw TOML value into its typed form, or records
//! a [`DefinitionError`] and returns `None`, so one pass finds every error.

use std::time::Duration;

use toml::{Spanned, Value};

use super::error::{line_of, DefinitionError, Rule};
use super::raw::{describe, Leaf, RawRetry};
use std::collections::BTreeMap;

use super::{NameError, Pointer, RetryPolicy, NAME_LEN_MAX};

/// Example durations quoted in messages.
const DURATION_EXAMPLES: &str = "use e.g. \"250ms\", \"5s\", \"2m\"";

/// Collects the errors of one file while its values are checked.
pub(super) struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<DefinitionError>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        Checker { file, text, errors: Vec::new() }
    }

    pub(super) fn into_errors(self) -> Vec<DefinitionError> {
        self.errors
    }

    /// The 1-based line where `span` starts.
    pub(super) fn line(&self, span: std::ops::Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    /// Records an error.
    pub(super) fn fail(&mut self, line: usize, rule: Rule, message: impl Into<String>) {
        self.errors.push(DefinitionError { file: self.file.to_owned(), line, rule, message: message.into() });
    }

    /// Records a `missing-key` error at `line` when `leaf` is absent.
    pub(super) fn required<'v>(&mut self, leaf: Option<&'v Leaf>, key: &str, line: usize, hint: &str) -> Option<&'v Leaf> {
        if leaf.is_none() {
            self.fail(line, Rule::MissingKey, format!("missing key {key:?}; {hint}"));
        }
        leaf
    }

    /// A name checked by one of the newtypes' `parse`.
    pub(super) fn name<T>(&mut self, what: &str, leaf: &Leaf, parse: fn(&str) -> Result<T, NameError>) -> Option<T> {
        let line = self.line(leaf.span());
        let Some(text) = leaf.get_ref().as_str() else {
            self.fail(line, Rule::BadName, format!("{what} {} must be a string", describe(leaf.get_ref())));
            return None;
        };
        match parse(text) {
            Ok(name) => Some(name),
            Err(e) => {
                let mut message = format!("{what} {text:?} must match {}", e.pattern);
                if text.len() > NAME_LEN_MAX {
                    message.push_str(&format!(" and be at most {NAME_LEN_MAX} characters long (it has {})", text.len()));
                }
                self.fail(line, Rule::BadName, message);
                None
            }
        }
    }

    /// `version`: an integer from 1 to `u32::MAX`.
    pub(super) fn version(&mut self, leaf: &Leaf) -> Option<u32> {
        let line = self.line(leaf.span());
        let found = describe(leaf.get_ref());
        let version = positive_u32(leaf.get_ref());
        if version.is_none() {
            let hint = if leaf.get_ref().is_str() { ", without quotes" } else { "" };
            self.fail(line, Rule::BadVersion, format!("version {found} must be an integer >= 1{hint}, e.g. version = 1"));
        }
        version
    }

    /// A step timeout: a duration greater than zero.
    pub(super) fn timeout(&mut self, leaf: &Leaf) -> Option<u64> {
        let ms = self.duration("timeout", leaf)?;
        if ms == 0 {
            let found = describe(leaf.get_ref());
            self.fail(
                self.line(leaf.span()),
                Rule::BadDuration,
                format!("timeout {found} is zero; a step needs time to answer, e.g. \"5s\""),
            );
            return None;
        }
        Some(ms)
    }

    /// The saga `deadline`: a duration greater than zero.
    pub(super) fn deadline(&mut self, leaf: &Leaf) -> Option<u64> {
        let found = describe(leaf.get_ref());
        let ms = parse_ms(leaf.get_ref()).filter(|&ms| ms > 0);
        if ms.is_none() {
            let message = format!(
                "deadline {found} must be a duration greater than zero, the whole saga's budget from its start, e.g. deadline = \"15m\""
            );
            self.fail(self.line(leaf.span()), Rule::BadDeadline, message);
        }
        ms
    }

    /// A JSON Pointer (`when`, or a `payload` value); `what` names it in messages.
    pub(super) fn pointer(&mut self, what: &str, leaf: &Leaf) -> Option<Pointer> {
        let line = self.line(leaf.span());
        let Some(text) = leaf.get_ref().as_str() else {
            let found = describe(leaf.get_ref());
            self.fail(line, Rule::BadPointer, format!("{what} {found} must be a JSON Pointer string, e.g. \"/input/car\""));
            return None;
        };
        match Pointer::parse(text) {
            Ok(pointer) => Some(pointer),
            Err(e) => {
                self.fail(line, Rule::BadPointer, format!("{what} is not a JSON Pointer (RFC 6901): {e}"));
                None
            }
        }
    }

    /// `payload`: a table of names to JSON Pointers; `output` is the
    /// compensation's own and cannot be mapped.
    pub(super) fn payload(&mut self, leaf: &Leaf) -> Option<BTreeMap<String, Pointer>> {
        let line = self.line(leaf.span());
        let Some(table) = leaf.get_ref().as_table() else {
            let found = describe(leaf.get_ref());
            let message = format!("payload {found} must be a table of names to JSON Pointers, e.g. payload = {{ card = \"/input/card\" }}");
            self.fail(line, Rule::BadPayload, message);
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, value) in table {
            if name == "output" {
                let message =
                    "payload maps \"output\", which a compensation's payload already carries (its step's own output); choose another name";
                self.fail(line, Rule::BadPayload, message);
                ok = false;
                continue;
            }
            let value = Leaf::new(leaf.span(), value.clone());
            match self.pointer(&format!("payload.{name}"), &value) {
                Some(pointer) => {
                    out.insert(name.clone(), pointer);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A retry table laid over `base`: keys it leaves out (or gets wrong) keep
    /// `base`'s value. `label` names the table in messages.
    pub(super) fn retry(&mut self, table: &Spanned<RawRetry>, base: RetryPolicy, label: &str) -> RetryPolicy {
        let raw = table.get_ref();
        let attempts_max = raw.max_attempts.as_ref().and_then(|leaf| self.max_attempts(leaf));
        let backoff_ms = raw.backoff.as_ref().and_then(|leaf| self.duration("backoff", leaf));
        let backoff_max_ms = raw.max_backoff.as_ref().and_then(|leaf| self.duration("max_backoff", leaf));
        let policy = RetryPolicy {
            attempts_max: attempts_max.unwrap_or(base.attempts_max),
            backoff_ms: backoff_ms.unwrap_or(base.backoff_ms),
            backoff_max_ms: backoff_max_ms.unwrap_or(base.backoff_max_ms),
        };
        // Only a table that sets a delay can make them disagree; one that
        // inherits both was already checked where they were set.
        let sets_delay = backoff_ms.is_some() || backoff_max_ms.is_some();
        if sets_delay && policy.backoff_max_ms < policy.backoff_ms {
            let inherited = |set: Option<u64>| if set.is_some() { "" } else { " (inherited)" };
            let message = format!(
                "{label}: max_backoff {}{} is shorter than backoff {}{}; max_backoff must be at least backoff",
                show_ms(policy.backoff_max_ms),
                inherited(backoff_max_ms),
                show_ms(policy.backoff_ms),
                inherited(backoff_ms),
            );
            self.fail(self.line(table.span()), Rule::BadBackoff, message);
        }
        policy
    }

    /// `max_attempts`: an integer from 1 to `u32::MAX`.
    fn max_attempts(&mut self, leaf: &Leaf) -> Option<u32> {
        let attempts = positive_u32(leaf.get_ref());
        if attempts.is_none() {
            let found = describe(leaf.get_ref());
            let message = format!("max_attempts {found} must be an integer >= 1 (1 means a single attempt, no retry)");
            self.fail(self.line(leaf.span()), Rule::MaxAttempts, message);
        }
        attempts
    }

    /// A humantime duration string, in whole milliseconds.
    fn duration(&mut self, key: &str, leaf: &Leaf) -> Option<u64> {
        let found = describe(leaf.get_ref());
        let ms = parse_ms(leaf.get_ref());
        if ms.is_none() {
            let hint = match leaf.get_ref() {
                Value::String(_) => DURATION_EXAMPLES,
                _ => "write it as a quoted string with a unit, e.g. \"5s\"",
            };
            self.fail(self.line(leaf.span()), Rule::BadDuration, format!("{key} {found} is not a duration; {hint}"));
        }
        ms
    }
}

/// A humantime duration string in whole milliseconds.
fn parse_ms(value: &Value) -> Option<u64> {
    value.as_str().and_then(|s| humantime::parse_duration(s).ok()).and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// An integer value in `1..=u32::MAX`.
fn positive_u32(value: &Value) -> Option<u32> {
    value.as_integer().and_then(|n| u32::try_from(n).ok()).filter(|&n| n >= 1)
}

/// Milliseconds as a person reads them: `1s 500ms`.
fn show_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}
