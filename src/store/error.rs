//! How the event store fails, sorted by what a caller can do about it.
//!
//! An operating failure of the database ([`StoreError::Database`]: it was
//! unreachable, timed out, busy, out of resources) may pass if the same
//! call is made again later; [`StoreError::is_transient`] says which. The
//! rest fail the same way every time: input no store accepts (a bug or a
//! configuration mistake), data the store cannot read back, a definition
//! recorded with other content. A domain refusal is not here at all: a
//! stale `expected_seq` is an [`AppendOutcome`](super::AppendOutcome), data.
//!
//! The driver's error stays attached as the [`std::error::Error::source`]
//! of a [`DatabaseError`], so a caller can look at it without naming the
//! driver; the message still carries its text, because logs and the ops API
//! show messages, not chains.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::saga::{DecodeError, SagaId};

/// A store failure: IO or a broken promise, never a domain refusal.
///
/// Cheap to clone (sources are shared), so one failed group commit can be
/// handed to every caller whose input was in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached. Some of these pass
    /// with time ([`is_transient`](Self::is_transient)); the rest need a
    /// person (a database file that is not one, a migration edited after
    /// it was applied).
    #[error(transparent)]
    Database(DatabaseError),
    /// The caller asked for what no store can do: a malformed batch, a seq
    /// beyond `i64::MAX`, a schema name that is not a plain identifier, a
    /// database URL of no known scheme. A bug or a configuration mistake:
    /// trying again fails again.
    #[error("event store: {0}")]
    Invalid(String),
    /// The store holds what this version cannot read back (a saga id,
    /// status or number out of range), or lost what it promised to keep.
    #[error("event store: {0}")]
    Corrupt(String),
    /// A stored event could not be read back.
    #[error("event store: saga {saga_id} seq {seq}: {source}")]
    Decode {
        /// The saga.
        saga_id: SagaId,
        /// The event.
        seq: u64,
        /// Why (shared, so the error stays cheap to clone).
        source: Arc<DecodeError>,
    },
    /// A (name, version) is recorded with other content.
    #[error("definition {name} version {version} is already recorded with different content (hash {recorded}); changing behaviour needs a new version")]
    DefinitionChanged {
        /// The saga type.
        name: String,
        /// The version.
        version: u32,
        /// The hash on record.
        recorded: String,
    },
}

impl StoreError {
    /// Whether the same call may succeed if made again later: the
    /// database was unreachable, timed out, too busy, out of resources or
    /// shutting down. Nothing was committed by the failed call, so trying
    /// again is safe; whether and when to is the caller's decision.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Database(error) if error.is_transient())
    }

    /// A malformed call: see [`StoreError::Invalid`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// Data the store cannot read back: see [`StoreError::Corrupt`].
    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt(message.into())
    }
}

/// A database failure: which backend, what the store was doing, whether
/// it may pass, and the driver's error as the [`source`](Error::source).
#[derive(Debug, Clone)]
pub struct DatabaseError {
    backend: &'static str,
    context: &'static str,
    transient: bool,
    source: Arc<dyn Error + Send + Sync>,
}

impl DatabaseError {
    /// `source` failed `backend` while the store was `context` (a gerund:
    /// "loading a saga's events"); `transient` as the backend's dialect
    /// judged it.
    pub fn new(backend: &'static str, context: &'static str, transient: bool, source: impl Error + Send + Sync + 'static) -> Self {
        Self { backend, context, transient, source: Arc::new(source) }
    }

    /// What the store was doing when it failed.
    pub fn context(&self) -> &'static str {
        self.context
    }

    /// Whether the failure may pass with time: see [`StoreError::is_transient`].
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event store: {}: {}: {}", self.backend, self.context, self.source)
    }
}

impl Error for DatabaseError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
