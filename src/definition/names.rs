//! Newtypes for the names in a definition, each with its own `parse`.
//!
//! Parse, don't validate: once a `StepName` exists it is known to match
//! `[a-z0-9_]+`, so nothing downstream checks it again.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} must match {pattern}")]
pub struct NameError {
    /// What kind of name it was ("step name", "participant", ...).
    pub what: &'static str,
    /// The refused value.
    pub value: String,
    /// The pattern it had to match.
    pub pattern: &'static str,
}

/// Longest name accepted; a NATS subject token should stay short.
pub const NAME_LEN_MAX: usize = 64;

fn check(value: &str, what: &'static str, pattern: &'static str, dash: bool) -> Result<(), NameError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (dash && c == '-');
    if value.is_empty() || value.len() > NAME_LEN_MAX || !value.chars().all(ok_char) {
        return Err(NameError { what, value: value.to_owned(), pattern });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $pattern:literal, $dash:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Accepts `value` only if it matches the pattern.
            pub fn parse(value: &str) -> Result<Self, NameError> {
                check(value, $what, $pattern, $dash)?;
                Ok(Self(value.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A saga type (`name` in a definition): `[a-z0-9_]+`.
    SagaType, "saga name", "[a-z0-9_]+", false
);
name_type!(
    /// A step name: `[a-z0-9_]+`, unique in its saga.
    StepName, "step name", "[a-z0-9_]+", false
);
name_type!(
    /// A parallel group's name (`group` on a step, SPEC §7): `[a-z0-9_]+`.
    GroupName, "group name", "[a-z0-9_]+", false
);
name_type!(
    /// A participant: `[a-z0-9_-]+`, one NATS subject token.
    Participant, "participant", "[a-z0-9_-]+", true
);
name_type!(
    /// An action or compensation name: `[a-z0-9_-]+`.
    ActionName, "action", "[a-z0-9_-]+", true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_patterns() {
        assert!(StepName::parse("reserve_hotel").is_ok());
        assert!(StepName::parse("reserve-hotel").is_err());
        assert!(Participant::parse("car-rental").is_ok());
        assert!(SagaType::parse("").is_err());
        assert!(ActionName::parse("Reserve").is_err());
        assert!(StepName::parse(&"a".repeat(NAME_LEN_MAX + 1)).is_err());
    }
}
