//! Identifiers: the saga id and the idempotency key derived from it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

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

    /// The id of a start message that names none, derived from where the
    /// broker keeps the message: the same (stream, sequence) always gives
    /// the same id, so every redelivery of that start, to any orchestrator
    /// process, starts one saga. A UUIDv7 whose time is `stored_at_ms`
    /// (when the broker stored the start), so it still sorts by start time.
    pub fn derived(stream: &str, sequence: u64, stored_at_ms: i64) -> Self {
        let digest = Sha256::digest(format!("{stream}:{sequence}").as_bytes());
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest[..10]);
        let millis = u64::try_from(stored_at_ms).unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_id_is_a_time_ordered_uuid_fixed_by_stream_and_sequence() {
        let at_ms = 1_767_225_600_000;
        let id = SagaId::derived("SAGA_START", 7, at_ms);
        assert_eq!(id, SagaId::derived("SAGA_START", 7, at_ms));
        assert_ne!(id, SagaId::derived("SAGA_START", 8, at_ms));
        assert_ne!(id, SagaId::derived("T1_SAGA_START", 7, at_ms));
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert!(SagaId::derived("SAGA_START", 9, at_ms + 1) > SagaId::derived("SAGA_START", 7, at_ms));
    }
}
