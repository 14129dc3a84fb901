//! The definition file as TOML gives it, before any rule is checked.
//!
//! Every leaf is a `Spanned<Value>` rather than the type it should become,
//! so that a wrong type (`version = "1"`, `timeout = 10`) is reported by the
//! checker under its own rule and line, and several errors can be collected
//! in one pass. `deny_unknown_fields` makes a typo'd key an error; the keys
//! the format requires are `Option`s so the checker can report all missing
//! ones, not only the first.

use serde::Deserialize;
use toml::{Spanned, Value};

/// A leaf value with its byte span in the file.
pub(super) type Leaf = Spanned<Value>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSaga {
    pub(super) name: Option<Leaf>,
    pub(super) version: Option<Leaf>,
    pub(super) description: Option<String>,
    pub(super) deadline: Option<Leaf>,
    pub(super) defaults: Option<RawDefaults>,
    pub(super) steps: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

/// The optional `[defaults]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) timeout: Option<Leaf>,
    pub(super) retry: Option<Spanned<RawRetry>>,
}

/// A `retry` table; any key may be left out and is then inherited.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub(super) max_attempts: Option<Leaf>,
    pub(super) backoff: Option<Leaf>,
    pub(super) max_backoff: Option<Leaf>,
}

/// One `[[steps]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) name: Option<Leaf>,
    pub(super) participant: Option<Leaf>,
    pub(super) action: Option<Leaf>,
    pub(super) compensation: Option<Leaf>,
    pub(super) timeout: Option<Leaf>,
    pub(super) retry: Option<Spanned<RawRetry>>,
    pub(super) group: Option<Leaf>,
    pub(super) when: Option<Leaf>,
    pub(super) payload: Option<Leaf>,
}

/// Only the `name` of a file, read leniently to point a catalog-level
/// error (a duplicate saga name) at the right line.
#[derive(Debug, Deserialize)]
pub(super) struct RawName {
    pub(super) name: Leaf,
}

/// A value as a person would write it in a message: `"10 sec"`, `10`, `a table`.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}
