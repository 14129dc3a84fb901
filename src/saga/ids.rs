//! Identifiers: the saga id and the idempotency key derived from it.

use std::fmt;
use std::str::FromStr;

use crate::definition::Kind;

/// A saga instance's id: a UUID (v7 when jetsaga makes it, so ids sort by
/// start time). The core only parses ids; making one needs a clock, which
/// is the runtime's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SagaId(uuid::Uuid);

/// The text was not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saga id {0:?} is not a UUID")]
pub struct SagaIdError(pub String);

impl SagaId {
    /// Wraps an existing UUID.
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// A saga id from 128 bits; the simulator uses it for reproducible ids.
    pub fn from_u128(bits: u128) -> Self {
        Self(uuid::Uuid::from_u128(bits))
    }

    /// Parses the hyphenated (or simple) text form.
    pub fn parse(text: &str) -> Result<Self, SagaIdError> {
        uuid::Uuid::parse_str(text).map(Self).map_err(|_| SagaIdError(text.to_owned()))
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl FromStr for SagaId {
    type Err = SagaIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SagaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// `<saga_id>:<step>:<kind>`: the same for every attempt of a (step, kind),
/// so a participant applies the effect at most once (SPEC §3).
pub fn idempotency_key(saga_id: SagaId, step: &str, kind: Kind) -> String {
    format!("{saga_id}:{step}:{kind}")
}

/// `<saga_id>:<step>:<kind>:<attempt>`: the broker de-duplicates the
/// orchestrator's own re-publishes of one attempt with it (`Nats-Msg-Id`).
pub fn message_id(saga_id: SagaId, step: &str, kind: Kind, attempt: u32) -> String {
    format!("{saga_id}:{step}:{kind}:{attempt}")
}
