//! The engine: the loop that turns inbound messages, operator requests and
//! due deadlines into committed events and their effects.
//!
//! The order, for every batch (group commit):
//! 1. take up to [`EngineConfig::batch_max`] work items (replies and starts
//!    from the transport, requests from the API, due deadlines);
//! 2. load every saga not cached in one store call, then for each item
//!    take its saga (cache, else fold its log) and `decide`;
//! 3. append every saga's new events in one store call;
//! 4. only after the commit: arm timers and update the cache, then hand
//!    the batch to the second stage (`effects.rs`), which publishes its
//!    commands, then acknowledges its inbound messages and answers its
//!    requests, while this loop already decides and commits the next
//!    batch. A conflict reloads the saga and decides again.
//!
//! On start, [`Engine::run`] first recovers: every unfinished saga is
//! folded from its log, its in-flight command re-sent with the same
//! idempotency key, and its deadline re-armed.

mod batch;
mod cache;
mod clock;
mod deadlines;
mod definitions;
mod effects;
pub mod metrics;
pub mod poison;
mod recovery;
pub mod relay;
pub mod retention;

pub use cache::{Cached, SagaCache, SAGA_CACHE_MAX};
pub use clock::Clock;
pub use deadlines::{Deadlines, LOCAL_DEADLINES_MAX};
pub use definitions::Definitions;
pub use effects::EFFECTS_QUEUE_MAX;
pub use metrics::Metrics;
pub use poison::StorePoison;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::saga::{self, Input, Rejection, SagaId, Status};
use crate::sim::Rng;
use crate::store::{self, EventStore, StoreError};
use crate::transport::jetstream::ACK_WAIT_DEFAULT;
use crate::transport::{Delivery, Transport};

/// Most inbound messages waiting for the engine.
pub const INBOUND_QUEUE_MAX: usize = 4_096;
/// Most API requests waiting for the engine.
pub const REQUEST_QUEUE_MAX: usize = 1_024;
/// Most work items decided and committed together.
pub const BATCH_MAX: usize = 256;
/// A batch keeps 1/this of its room for operator requests and 1/this for
/// due deadlines, so neither waits behind a backlog of inbound messages.
pub const FAIR_SHARE_DIVISOR: usize = 4;
/// How often a conflicting append is decided again before giving up.
pub const CONFLICT_RETRIES_MAX: u32 = 8;
/// Delay before a deadline whose commit failed is tried again.
pub const STORE_RETRY_MS: i64 = 1_000;
/// How often the engine asks the store for deadlines due (including
/// those of sagas another engine touched last).
pub const CLAIM_POLL_MS: i64 = 200;
/// How long a claimed deadline is this engine's alone.
pub const CLAIM_LEASE_MS: i64 = 30_000;

/// How long an engine's lease lasts without a heartbeat, by default: past
/// it, other engines count it dead and wait out the replies it may hold.
pub const ENGINE_LEASE_DEFAULT: Duration = Duration::from_secs(5);
/// An engine renews its lease this many times per lease.
pub const HEARTBEATS_PER_LEASE: u32 = 4;
/// How long the store keeps the lease of an engine not heard from.
pub const LEASES_KEPT_MS: i64 = 24 * 3_600_000;

/// Tunables of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most work items per group commit.
    pub batch_max: usize,
    /// The reply consumer's ack wait: how long a reply held by a crashed
    /// process may take to come back (recovery waits for it).
    pub ack_wait: Duration,
    /// How long this engine's lease lasts between heartbeats.
    pub lease: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { batch_max: BATCH_MAX, ack_wait: ACK_WAIT_DEFAULT, lease: ENGINE_LEASE_DEFAULT }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Why the engine refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No definition has this name.
    #[error("unknown saga type {0:?}")]
    UnknownSagaType(String),
    /// No saga has this id.
    #[error("no saga {0}")]
    UnknownSaga(SagaId),
    /// The start names a definition version that is not loaded.
    #[error("saga type {saga_type:?} has no version {version} loaded")]
    UnknownVersion {
        /// The definition's name.
        saga_type: String,
        /// The version asked for.
        version: u32,
    },
    /// The start's business key is another saga's than the one it names.
    #[error("key {key:?} is taken by saga {saga_id}")]
    KeyTaken {
        /// The key.
        key: String,
        /// The saga that holds it.
        saga_id: SagaId,
    },
    /// The saga's status does not allow it.
    #[error("{0}")]
    Rejected(Rejection),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A definition the saga needs is missing or broken.
    #[error("{0}")]
    Definition(String),
    /// What the input would make is larger than the broker takes.
    #[error("{0}")]
    TooLarge(String),
    /// Others kept appending to this saga first.
    #[error("saga {0} kept changing under us; try again")]
    Contended(SagaId),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl EngineError {
    /// Whether trying again later may succeed (the store or the engine
    /// was busy or away), as opposed to an input that will never work.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Store(error) => error.is_transient(),
            EngineError::Contended(_) | EngineError::Stopped => true,
            EngineError::UnknownSagaType(_)
            | EngineError::UnknownSaga(_)
            | EngineError::UnknownVersion { .. }
            | EngineError::KeyTaken { .. }
            | EngineError::Rejected(_)
            | EngineError::Definition(_)
            | EngineError::TooLarge(_) => false,
        }
    }
}

/// The answer to a start request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The saga's id (given, or made).
    pub saga_id: SagaId,
    /// Its status after the request.
    pub status: Status,
    /// False when the id already existed (idempotent start).
    pub created: bool,
}

/// A request from the API to the engine.
#[derive(Debug)]
pub enum Request {
    /// Start a saga.
    Start {
        /// The definition's name.
        saga_type: String,
        /// The caller's id, if any.
        saga_id: Option<SagaId>,
        /// The input.
        input: Value,
        /// The business key and the version asked for (SPEC §7).
        options: StartOptions,
        /// Where the answer goes.
        respond: oneshot::Sender<Result<Started, EngineError>>,
    },
    /// An operator verb (`Input::OperatorRetry` and friends).
    Operate {
        /// The saga.
        saga_id: SagaId,
        /// The verb and its reason.
        input: Input,
        /// Where the answer goes: the status once the verb is committed.
        respond: oneshot::Sender<Result<Status, EngineError>>,
    },
}

/// What a start may add to its type, id and input (SPEC §7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The business key: at most one saga per (saga type, key). A start
    /// whose key is taken returns that saga, unless it names another id
    /// ([`EngineError::KeyTaken`]).
    pub key: Option<String>,
    /// The definition version to run; `None`: the highest loaded.
    pub version: Option<u32>,
}

/// A cheap handle for starting sagas and operating on them.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    requests: mpsc::Sender<Request>,
}

impl EngineHandle {
    /// Starts a saga, or returns the existing one with that id.
    pub async fn start(&self, saga_type: &str, saga_id: Option<SagaId>, input: Value) -> Result<Started, EngineError> {
        self.start_with(saga_type, saga_id, input, StartOptions::default()).await
    }

    /// Starts a saga with a business key or a version, or returns the
    /// existing one with that id or key.
    pub async fn start_with(
        &self,
        saga_type: &str,
        saga_id: Option<SagaId>,
        input: Value,
        options: StartOptions,
    ) -> Result<Started, EngineError> {
        let (respond, answer) = oneshot::channel();
        let request = Request::Start { saga_type: saga_type.to_owned(), saga_id, input, options, respond };
        self.requests.send(request).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Applies an operator verb; answers once its event is committed.
    pub async fn operate(&self, saga_id: SagaId, input: Input) -> Result<Status, EngineError> {
        let (respond, answer) = oneshot::channel();
        self.requests.send(Request::Operate { saga_id, input, respond }).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }
}

/// The orchestrator engine over a store and a transport.
pub struct Engine<S, T> {
    store: S,
    transport: Arc<T>,
    /// The second stage: publishes committed batches' commands and answers their callers.
    effects: Option<effects::EffectsStage<T>>,
    definitions: Arc<Definitions>,
    config: EngineConfig,
    clock: Clock,
    rng: Rng,
    cache: SagaCache,
    /// The logs `preload` read for the round being decided.
    preloaded: store::Logs,
    /// The saga of each business key the round's starts carry (looked up
    /// with `preload`, plus the sagas this round creates), or why the
    /// lookup failed.
    keys: Result<std::collections::HashMap<(String, String), SagaId>, StoreError>,
    deadlines: Deadlines,
    requests: mpsc::Receiver<Request>,
    handle: EngineHandle,
    metrics: Arc<Metrics>,
    poison: StorePoison<S>,
    /// This engine's name in the store's leases (a UUIDv7 per run).
    engine_id: String,
    /// Until when a dead engine's held replies may still come back (from the leases).
    replies_held_until_ms: Option<i64>,
}

impl<S: EventStore + Clone, T: Transport> Engine<S, T> {
    /// An engine serving `definitions` (already recorded in `store`, see
    /// [`Definitions::record_in`]), reading time from `clock`.
    pub fn new(store: S, transport: T, definitions: Arc<Definitions>, config: EngineConfig, clock: Clock) -> Self {
        let (tx, requests) = mpsc::channel(REQUEST_QUEUE_MAX);
        let seed = u64::try_from(clock.now_ms()).unwrap_or(0) ^ u64::from(std::process::id()).rotate_left(32);
        let metrics = Arc::new(Metrics::default());
        let poison = StorePoison::new(store.clone(), metrics.clone(), clock);
        Self {
            store,
            transport: Arc::new(transport),
            effects: None,
            definitions,
            config,
            clock,
            rng: Rng::new(seed),
            cache: SagaCache::default(),
            preloaded: store::Logs::new(),
            keys: Ok(std::collections::HashMap::new()),
            deadlines: Deadlines::default(),
            requests,
            handle: EngineHandle { requests: tx },
            metrics,
            poison,
            engine_id: uuid::Uuid::now_v7().to_string(),
            replies_held_until_ms: None,
        }
    }

    /// This engine's id in the store's leases.
    pub fn engine_id(&self) -> &str {
        &self.engine_id
    }

    /// Renews this engine's lease and reads the others': an engine whose
    /// lease ran out may have died holding replies unacknowledged, which
    /// the broker hands out again within the ack wait, so until its last
    /// heartbeat + lease + ack wait no attempt in flight times out.
    async fn heartbeat(&mut self, now_ms: i64) {
        let (lease_ms, ack_wait_ms) = (millis(self.config.lease), millis(self.config.ack_wait));
        if let Err(error) = self.store.heartbeat(&self.engine_id, now_ms, now_ms - LEASES_KEPT_MS).await {
            tracing::warn!(%error, "cannot renew this engine's lease");
        }
        match self.store.engines_since(now_ms - lease_ms - ack_wait_ms).await {
            Ok(leases) => {
                self.replies_held_until_ms = leases
                    .iter()
                    .filter(|lease| lease.engine_id != self.engine_id && lease.heartbeat_ms + lease_ms < now_ms)
                    .map(|lease| lease.heartbeat_ms + lease_ms + ack_wait_ms)
                    .filter(|&held_until| held_until > now_ms)
                    .max();
            }
            Err(error) => tracing::warn!(%error, "cannot read the engines' leases; keeping what was known"),
        }
    }

    /// A handle for starting sagas and operator verbs.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The engine's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Where the engine keeps poison; also the transport's poison sink, so
    /// every poison message takes one path.
    pub fn poison(&self) -> StorePoison<S> {
        self.poison.clone()
    }

    /// Recovers, then runs until `shutdown` resolves or `inbound` closes.
    /// The batch in progress is finished before returning.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Delivery>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), EngineError> {
        tracing::info!(engine_id = %self.engine_id, "engine starting");
        self.heartbeat(self.clock.now_ms()).await;
        self.recover().await?;
        tokio::pin!(shutdown);
        let mut next_claim_ms = self.clock.now_ms();
        let heartbeat_every_ms = (millis(self.config.lease) / i64::from(HEARTBEATS_PER_LEASE)).max(1);
        let mut next_heartbeat_ms = self.clock.now_ms() + heartbeat_every_ms;
        loop {
            let wake_ms = self.deadlines.next_ms().map_or(next_claim_ms, |at| at.min(next_claim_ms)).min(next_heartbeat_ms);
            let wake = self.clock.instant_at(wake_ms);
            let first = tokio::select! {
                biased;
                () = &mut shutdown => break,
                delivery = inbound.recv() => match delivery {
                    Some(d) => Some(batch::Work::Delivery(d)),
                    None => break,
                },
                Some(request) = self.requests.recv() => Some(batch::Work::Request(request)),
                () = tokio::time::sleep_until(wake) => None,
            };
            let mut work = self.gather(first, &mut inbound);
            let now_ms = self.clock.now_ms();
            if now_ms >= next_heartbeat_ms {
                self.heartbeat(now_ms).await;
                next_heartbeat_ms = now_ms + heartbeat_every_ms;
            }
            if now_ms >= next_claim_ms || self.deadlines.next_ms().is_some_and(|at| at <= now_ms) {
                let (claimed, claim_room) = self.claim_due(now_ms, work.len()).await;
                work.extend(claimed.iter().copied().map(batch::Work::Deadline));
                // A full claim means more are due: ask again at once.
                let full = claimed.len() >= claim_room;
                next_claim_ms = if full { now_ms } else { now_ms + CLAIM_POLL_MS };
            }
            if !work.is_empty() {
                self.process(work).await;
            }
        }
        if let Some(stage) = self.effects.take() {
            stage.finish().await;
        }
        tracing::info!("engine stopped");
        Ok(())
    }

    /// The first item plus whatever else is ready, up to `batch_max`, fairly:
    /// while a backlog of inbound messages drains, operator requests and
    /// due deadlines each still get a share of every batch
    /// ([`FAIR_SHARE_DIVISOR`]): requests are taken first, and inbound
    /// messages leave room for the deadlines claimed after.
    fn gather(&mut self, first: Option<batch::Work>, inbound: &mut mpsc::Receiver<Delivery>) -> Vec<batch::Work> {
        let max = self.config.batch_max.max(1);
        let share = (max / FAIR_SHARE_DIVISOR).max(1);
        let mut work: Vec<batch::Work> = first.into_iter().collect();
        self.take_requests(&mut work, share);
        while work.len() < max.saturating_sub(share).max(1) {
            match inbound.try_recv() {
                Ok(d) => work.push(batch::Work::Delivery(d)),
                Err(_) => break,
            }
        }
        self.take_requests(&mut work, max.saturating_sub(share));
        work
    }

    /// Operator and API requests, until `work` holds `until` items.
    fn take_requests(&mut self, work: &mut Vec<batch::Work>, until: usize) {
        while work.len() < until {
            match self.requests.try_recv() {
                Ok(r) => work.push(batch::Work::Request(r)),
                Err(_) => break,
            }
        }
    }

    /// Deadlines due, claimed in the store so that exactly one engine
    /// fires each. Local deadlines only say when to ask.
    async fn claim_due(&mut self, now_ms: i64, taken: usize) -> (Vec<SagaId>, usize) {
        self.deadlines.pop_due(now_ms, usize::MAX);
        let share = (self.config.batch_max / FAIR_SHARE_DIVISOR).max(1);
        let room = u32::try_from(self.config.batch_max.saturating_sub(taken).max(share)).unwrap_or(u32::MAX);
        let claimed = match self.store.claim_due(now_ms, CLAIM_LEASE_MS, room).await {
            Ok(ids) => {
                self.metrics.deadlines_claimed.fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
                ids
            }
            Err(error) => {
                tracing::warn!(%error, "could not claim due deadlines; trying again at the next poll");
                Vec::new()
            }
        };
        (claimed, room as usize)
    }

    /// The saga's definition and state: from the cache, else folded from
    /// the log `preload` read for this round, else from the store.
    async fn load(&mut self, saga_id: SagaId) -> Result<Option<cache::Cached>, EngineError> {
        if let Some(entry) = self.cache.get(saga_id) {
            self.metrics.observe_cache(true);
            return Ok(Some(entry));
        }
        let events = match self.preloaded.remove(&saga_id) {
            Some(events) => events,
            None => self.store.load(saga_id, None).await?,
        };
        let folded = self.fold(saga_id, &events).await?;
        if folded.is_some() {
            // A miss is a saga that exists and had to be folded (a new one is neither).
            self.metrics.observe_cache(false);
        }
        Ok(folded)
    }

    /// The saga folded from `events` (its whole log) on its definition version.
    async fn fold(&self, saga_id: SagaId, events: &[saga::Recorded]) -> Result<Option<cache::Cached>, EngineError> {
        let Some(saga::SagaEvent::SagaStarted { saga_type, version, .. }) = events.first().map(|r| &r.event) else {
            return Ok(None);
        };
        let def = self.definitions.version(&self.store, saga_type, *version).await?;
        Ok(saga::fold(&def, saga_id, events).map(|state| (def, state)))
    }

    /// Reads in one store call the logs of the sagas of `work` that `load`
    /// would otherwise read one by one: those not cached, and those of
    /// operator requests and claimed deadlines, which act on what the
    /// store holds now, never on the cache. `load` takes them from here;
    /// what a round leaves is dropped by the next `preload`. A failed read
    /// leaves nothing preloaded: each load then asks the store itself.
    /// `ids` are [`batch::preload_ids`] of the round's work.
    async fn preload(&mut self, ids: Vec<SagaId>) {
        self.preloaded = match ids.is_empty() {
            true => store::Logs::new(),
            false => match self.store.load_many(&ids).await {
                Ok(mut logs) => {
                    // A saga without a log is known absent too: no second query for it.
                    for id in ids {
                        logs.entry(id).or_default();
                    }
                    logs
                }
                Err(error) => {
                    tracing::warn!(%error, "could not load a batch's sagas at once; loading them one by one");
                    store::Logs::new()
                }
            },
        };
    }

    /// The second stage, started on first use.
    fn stage(&mut self) -> &effects::EffectsStage<T> {
        let (transport, metrics) = (&self.transport, &self.metrics);
        self.effects.get_or_insert_with(|| effects::EffectsStage::start(transport.clone(), metrics.clone()))
    }

    /// Takes one effect of a committed event: a deadline is set or cleared
    /// here and now, a command joins `committed` for the second stage.
    fn schedule(&mut self, saga_id: SagaId, effect: saga::Effect, committed: &mut effects::Committed) {
        match effect {
            saga::Effect::Send(command) => committed.commands.push(command),
            saga::Effect::SetDeadline { at_ms } => self.deadlines.set(saga_id, at_ms),
            saga::Effect::ClearDeadline => self.deadlines.clear(saga_id),
        }
    }

    /// Carries out the effects of committed events (recovery's): deadlines
    /// at once, commands through the second stage, concurrently with what
    /// the engine does next.
    async fn carry_out(&mut self, effects: Vec<(SagaId, saga::Effect)>) {
        let mut committed = effects::Committed::default();
        for (saga_id, effect) in effects {
            self.schedule(saga_id, effect, &mut committed);
        }
        self.stage().submit(committed).await;
    }
}
