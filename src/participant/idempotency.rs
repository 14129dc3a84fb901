//! The idempotency layer: a command whose key already has a recorded reply
//! gets that reply again, and the handler (the effect) is not called.
//!
//! The orchestrator re-sends a command with the same idempotency key when a
//! reply is late or lost (SPEC §2), and a broker redelivers a command whose
//! ack was lost; without this layer each would repeat the effect.
//!
//! Only `ok` replies are recorded: a `failed` reply means the command had
//! no effect, and the next attempt deserves a fresh try (a `failed`
//! compensation is retried by the orchestrator, and must be able to
//! succeed). A replayed reply answers the attempt that asked: it carries
//! the new command's `attempt` and `kind`.
//!
//! [`MemoryIdempotencyStore`] forgets on restart and is for tests and
//! simulations. A production participant backs [`IdempotencyStore`] with
//! its own database and writes the record in the same transaction as the
//! effect; recorded after the fact, as this layer does with any store, a
//! crash between effect and record repeats the effect on redelivery.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::OwnedMutexGuard;
use tower::{Layer, Service};

use super::BoxError;
use crate::saga::ReplyStatus;
use crate::wire::{CommandBody, ReplyBody};

/// Most replies a [`MemoryIdempotencyStore`] keeps; the oldest goes first.
pub const IDEMPOTENCY_ENTRIES_MAX: usize = 100_000;

/// Where recorded replies live, by idempotency key.
pub trait IdempotencyStore: Clone + Send + Sync + 'static {
    /// A storage failure: the command is not answered this time (redelivered).
    type Error: Into<BoxError>;

    /// The reply recorded for `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<ReplyBody>, Self::Error>> + Send;

    /// Records `reply` for `key`.
    fn put(&self, key: &str, reply: &ReplyBody) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// An in-process [`IdempotencyStore`], bounded: at most `entries_max`
/// replies, the oldest evicted first. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct MemoryIdempotencyStore {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Debug)]
struct Entries {
    replies: HashMap<String, ReplyBody>,
    order: VecDeque<String>,
    entries_max: usize,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// A store of at most [`IDEMPOTENCY_ENTRIES_MAX`] replies.
    pub fn new() -> Self {
        Self::with_entries_max(IDEMPOTENCY_ENTRIES_MAX)
    }

    /// A store of at most `entries_max` replies (at least 1).
    pub fn with_entries_max(entries_max: usize) -> Self {
        let entries = Entries { replies: HashMap::new(), order: VecDeque::new(), entries_max: entries_max.max(1) };
        Self { inner: Arc::new(Mutex::new(entries)) }
    }

    /// How many replies are recorded.
    pub fn len(&self) -> usize {
        self.lock().replies.len()
    }

    /// Whether no reply is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    type Error = Infallible;

    async fn get(&self, key: &str) -> Result<Option<ReplyBody>, Infallible> {
        Ok(self.lock().replies.get(key).cloned())
    }

    async fn put(&self, key: &str, reply: &ReplyBody) -> Result<(), Infallible> {
        let mut entries = self.lock();
        if entries.replies.insert(key.to_owned(), reply.clone()).is_none() {
            entries.order.push_back(key.to_owned());
        }
        while entries.replies.len() > entries.entries_max {
            let Some(oldest) = entries.order.pop_front() else { break };
            entries.replies.remove(&oldest);
        }
        Ok(())
    }
}

/// Wraps a participant in [`Idempotency`].
#[derive(Debug, Clone)]
pub struct IdempotencyLayer<St> {
    store: St,
    keys: KeyLocks,
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// Replies are recorded in, and replayed from, `store`.
    pub fn new(store: St) -> Self {
        Self { store, keys: KeyLocks::default() }
    }
}

impl<S, St: Clone> Layer<S> for IdempotencyLayer<St> {
    type Service = Idempotency<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency { inner, store: self.store.clone(), keys: self.keys.clone() }
    }
}

/// A participant that answers a repeated idempotency key with the recorded
/// reply instead of calling `inner` again. Clones share the per-key
/// in-flight guard: two concurrent commands with one key never both reach
/// `inner`; the second waits and gets the first one's reply.
#[derive(Debug, Clone)]
pub struct Idempotency<S, St> {
    inner: S,
    store: St,
    keys: KeyLocks,
}

impl<S, St: IdempotencyStore> Idempotency<S, St> {
    /// `inner` behind the idempotency check, recording in `store`.
    pub fn new(inner: S, store: St) -> Self {
        Self { inner, store, keys: KeyLocks::default() }
    }
}

impl<S, St> Service<CommandBody> for Idempotency<S, St>
where
    S: Service<CommandBody, Response = ReplyBody> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    St: IdempotencyStore,
{
    type Response = ReplyBody;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ReplyBody, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, command: CommandBody) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays (tower's usual swap).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (store, keys) = (self.store.clone(), self.keys.clone());
        Box::pin(answer(inner, store, keys, command))
    }
}

/// Replays the recorded reply, or calls `inner` and records an `ok` one;
/// under the key's guard, so a concurrent duplicate waits for the first.
async fn answer<S, St>(mut inner: S, store: St, keys: KeyLocks, command: CommandBody) -> Result<ReplyBody, BoxError>
where
    S: Service<CommandBody, Response = ReplyBody>,
    S::Error: Into<BoxError>,
    St: IdempotencyStore,
{
    let key = command.idempotency_key.clone();
    let _guard = keys.lock(&key).await;
    if let Some(recorded) = store.get(&key).await.map_err(Into::into)? {
        tracing::debug!(key, "repeated idempotency key: replaying the recorded reply");
        return Ok(ReplyBody { attempt: command.attempt, kind: command.kind, ..recorded });
    }
    let reply = inner.call(command).await.map_err(Into::into)?;
    if reply.status == ReplyStatus::Ok {
        if let Err(error) = store.put(&key, &reply).await.map_err(Into::into) {
            // The effect happened: answering beats a redelivery that would repeat it.
            tracing::warn!(key, %error, "the reply was not recorded; a repeat of this key will call the service again");
        }
    }
    Ok(reply)
}

/// One async mutex per idempotency key in flight; an entry lives only
/// while someone holds or awaits it.
#[derive(Debug, Clone, Default)]
struct KeyLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl KeyLocks {
    async fn lock(&self, key: &str) -> KeyGuard {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(key.to_owned()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        KeyGuard { locks: self.clone(), key: key.to_owned(), guard: Some(guard) }
    }
}

struct KeyGuard {
    locks: KeyLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut locks = self.locks.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's handle and this guard's are the only ones: nobody waits.
        if locks.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 2) {
            locks.remove(&self.key);
        }
        self.guard.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Kind;

    fn reply(step: &str) -> ReplyBody {
        ReplyBody {
            saga_id: "0190a5c4-0000-7000-8000-000000000001".into(),
            step: step.into(),
            kind: Kind::Action,
            attempt: 1,
            status: ReplyStatus::Ok,
            output: None,
            error: None,
        }
    }

    #[tokio::test]
    async fn the_oldest_reply_is_evicted_beyond_the_limit() {
        let store = MemoryIdempotencyStore::with_entries_max(2);
        for key in ["a", "b", "c"] {
            store.put(key, &reply(key)).await.expect("infallible");
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("a").await.expect("infallible"), None);
        assert_eq!(store.get("c").await.expect("infallible").map(|r| r.step), Some("c".into()));
    }

    #[tokio::test]
    async fn rewriting_a_key_neither_duplicates_nor_evicts_it_early() {
        let store = MemoryIdempotencyStore::with_entries_max(2);
        store.put("a", &reply("a")).await.expect("infallible");
        store.put("a", &reply("a2")).await.expect("infallible");
        store.put("b", &reply("b")).await.expect("infallible");
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("a").await.expect("infallible").map(|r| r.step), Some("a2".into()));
        store.put("c", &reply("c")).await.expect("infallible");
        assert_eq!((store.get("a").await.expect("infallible"), store.len()), (None, 2));
    }

    #[tokio::test]
    async fn key_locks_are_forgotten_once_released() {
        let keys = KeyLocks::default();
        let first = keys.lock("k").await;
        drop(first);
        assert!(keys.locks.lock().expect("locks").is_empty());
    }
}
