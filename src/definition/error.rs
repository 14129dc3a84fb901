//! Why a definition was refused: a [`DefinitionError`] names the file, the
//! 1-based line and the [`Rule`] of SPEC §1 that was broken, plus a message
//! for a person that says what was found and what is expected.

use std::fmt;

/// A rule of SPEC §1 or §7 that a definition file can break.
///
/// The kebab-case name ([`Rule::as_str`]) is stable: tests and fixtures
/// (`# expect: 7 unknown-key`) refer to rules by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The file is not valid TOML, or a value has the wrong TOML type.
    Syntax,
    /// A key the format does not know (often a typo).
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A saga, step, participant or action name that does not match its pattern.
    BadName,
    /// Two steps of a saga, or two sagas of a set, share a name.
    DuplicateName,
    /// A duration that humantime cannot read, or a zero timeout.
    BadDuration,
    /// `version` is not an integer >= 1.
    BadVersion,
    /// `max_attempts` is not an integer >= 1.
    MaxAttempts,
    /// `max_backoff` is shorter than `backoff`.
    BadBackoff,
    /// The saga has no `[[steps]]`.
    NoSteps,
    /// A step with a `compensation` comes after the pivot.
    CompensationAfterPivot,
    /// A `group` name used again by a step that is not next to the group (SPEC §7).
    GroupNotAdjacent,
    /// A group that holds the pivot: its steps must all have compensations
    /// or all come after the pivot (SPEC §7).
    GroupMixesPivot,
    /// A `when` or `payload` value that is not a JSON Pointer (RFC 6901).
    BadPointer,
    /// A `payload` that is not a table of names to pointers, or maps `output`.
    BadPayload,
    /// A saga `deadline` that is not a duration greater than zero.
    BadDeadline,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: &'static [Rule] = &[
        Rule::Syntax,
        Rule::UnknownKey,
        Rule::MissingKey,
        Rule::BadName,
        Rule::DuplicateName,
        Rule::BadDuration,
        Rule::BadVersion,
        Rule::MaxAttempts,
        Rule::BadBackoff,
        Rule::NoSteps,
        Rule::CompensationAfterPivot,
        Rule::GroupNotAdjacent,
        Rule::GroupMixesPivot,
        Rule::BadPointer,
        Rule::BadPayload,
        Rule::BadDeadline,
    ];

    /// The kebab-case name, e.g. `"unknown-key"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::UnknownKey => "unknown-key",
            Rule::MissingKey => "missing-key",
            Rule::BadName => "bad-name",
            Rule::DuplicateName => "duplicate-name",
            Rule::BadDuration => "bad-duration",
            Rule::BadVersion => "bad-version",
            Rule::MaxAttempts => "max-attempts",
            Rule::BadBackoff => "bad-backoff",
            Rule::NoSteps => "no-steps",
            Rule::CompensationAfterPivot => "compensation-after-pivot",
            Rule::GroupNotAdjacent => "group-not-adjacent",
            Rule::GroupMixesPivot => "group-mixes-pivot",
            Rule::BadPointer => "bad-pointer",
            Rule::BadPayload => "bad-payload",
            Rule::BadDeadline => "bad-deadline",
        }
    }

    /// The rule whose kebab-case name is `name`.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused definition: `"{file}:{line}: {rule}: {message}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {rule}: {message}")]
pub struct DefinitionError {
    /// The file, as the caller named it (e.g. `sagas/trip_booking.toml`).
    pub file: String,
    /// The 1-based line the error points at.
    pub line: usize,
    /// The rule that was broken.
    pub rule: Rule,
    /// What was found and what is expected, for a person.
    pub message: String,
}

/// The 1-based line of byte `offset` in `text` (past the end = the last line).
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_round_trip() {
        for &rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.as_str()), Some(rule));
        }
        assert_eq!(Rule::from_name("no-such-rule"), None);
    }

    #[test]
    fn lines_are_one_based() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 999), 3);
    }

    #[test]
    fn display_names_file_line_and_rule() {
        let e = DefinitionError { file: "a.toml".into(), line: 3, rule: Rule::NoSteps, message: "none".into() };
        assert_eq!(e.to_string(), "a.toml:3: no-steps: none");
    }
}
