//! Saga definitions: the declarative `sagas/*.toml` files of SPEC §1 and §7.
//!
//! This module is pure: it turns file *contents* into validated
//! [`SagaDefinition`]s and never touches the file system (see
//! [`crate::loader`] for that). Every refusal is a [`DefinitionError`] that
//! names the file, the line and the [`Rule`] that was broken.

mod catalog;
mod error;
mod names;
mod parse;
mod pointer;
mod raw;
#[cfg(test)]
mod tests;
mod values;

pub use catalog::{Catalog, CatalogError};
pub use error::{DefinitionError, Rule};
pub use names::{ActionName, GroupName, NameError, Participant, SagaType, StepName, NAME_LEN_MAX};
pub use parse::{content_hash, parse, RETRY_DEFAULT, TIMEOUT_DEFAULT_MS};
pub use pointer::{Pointer, PointerError};

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// Whether a command asks a participant to do a step or to undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The step's action (`action` in the definition).
    Action,
    /// The step's compensating action (`compensation` in the definition).
    Compensation,
}

impl Kind {
    /// The wire name: `"action"` or `"compensation"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action => "action",
            Kind::Compensation => "compensation",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often and how patiently a step's command is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in one budget (`max_attempts`, at least 1).
    pub attempts_max: u32,
    /// Delay before the second attempt; doubles for each one after.
    pub backoff_ms: u64,
    /// Upper bound of the delay between two attempts.
    pub backoff_max_ms: u64,
}

/// One validated step of a saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDefinition {
    /// Unique within the saga.
    pub name: StepName,
    /// The service that owns the step; a NATS subject token.
    pub participant: Participant,
    /// The action sent as `saga.cmd.<participant>.<action>`.
    pub action: ActionName,
    /// The undo action; `None` means the step cannot be undone.
    pub compensation: Option<ActionName>,
    /// How long one attempt waits for a reply.
    pub timeout_ms: u64,
    /// Attempts and backoff for both the action and the compensation.
    pub retry: RetryPolicy,
    /// The parallel group: adjacent steps with the same one run at once (SPEC §7).
    pub group: Option<GroupName>,
    /// The step runs only if this names a value other than `false`,
    /// `null` or nothing in `{"input", "results"}`; otherwise it is skipped.
    pub when: Option<Pointer>,
    /// The command's payload as names of pointers into `{"input",
    /// "results"}`, instead of the whole of both (`None`).
    pub payload: Option<BTreeMap<String, Pointer>>,
}

impl StepDefinition {
    /// The action name for a command of this `kind`, if the step has one.
    pub fn action_for(&self, kind: Kind) -> Option<&ActionName> {
        match kind {
            Kind::Action => Some(&self.action),
            Kind::Compensation => self.compensation.as_ref(),
        }
    }
}

/// A validated saga definition: one `sagas/*.toml` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaDefinition {
    /// The saga type, unique across files.
    pub name: SagaType,
    /// In-flight sagas keep the version they started on.
    pub version: u32,
    /// Free text for people.
    pub description: String,
    /// The steps in file order (never empty).
    pub steps: Vec<StepDefinition>,
    /// The whole saga's budget from its start (`deadline`, SPEC §7).
    pub deadline_ms: Option<u64>,
    /// Hex SHA-256 of the file's content; recorded per (name, version).
    pub content_hash: String,
    /// The file's content, kept so an old version can be reloaded from the store.
    pub source: String,
}

impl SagaDefinition {
    /// Index of the pivot: the first step without a compensation.
    pub fn pivot(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.compensation.is_none())
    }

    /// Index of the step called `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name.as_str() == name)
    }

    /// The steps that run together with step `index`: its parallel group
    /// (adjacent steps with the same `group`), or the step alone. Out of
    /// range: an empty range at `index`.
    pub fn stage(&self, index: usize) -> Range<usize> {
        let Some(group) = self.steps.get(index).map(|s| &s.group) else { return index..index };
        if group.is_none() {
            return index..index + 1;
        }
        let same = |i: &usize| self.steps[*i].group == *group;
        let start = (0..index).rev().take_while(same).last().unwrap_or(index);
        let end = (index + 1..self.steps.len()).take_while(same).last().map_or(index + 1, |i| i + 1);
        start..end
    }

    /// Every stage ([`SagaDefinition::stage`]) in file order.
    pub fn stages(&self) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut next = 0;
        while next < self.steps.len() {
            let stage = self.stage(next);
            next = stage.end;
            out.push(stage);
        }
        out
    }
}
