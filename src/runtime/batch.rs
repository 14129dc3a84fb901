//! One round of the engine: decide every work item, append every touched
//! saga's events in one call (group commit), then set deadlines and update
//! the cache, and hand the commands and callers to the second stage
//! (`effects.rs`), in that order.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::Instrument as _;

use super::effects::Committed;
use super::{Engine, EngineError, Request, Started, CONFLICT_RETRIES_MAX, STORE_RETRY_MS};
use crate::definition::SagaDefinition;
use crate::saga::{self, Context, Effect, Input, Recorded, Rejection, SagaId, SagaState, Status};
use crate::store::{Append, AppendOutcome, EventStore, SagaSummary};
use crate::transport::{Delivery, Inbound, Transport};

/// Something for the engine to do.
#[derive(Debug)]
pub(super) enum Work {
    /// A message from the transport.
    Delivery(Delivery),
    /// A request from the API.
    Request(Request),
    /// A saga's deadline is due (claimed in the store).
    Deadline(SagaId),
}

/// What a work item's caller is told once its events are committed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    /// Acknowledge the message / report the saga's status.
    Done,
    /// A start: created, or it already existed.
    Started { created: bool },
}

/// A saga touched in this round: the seq the store must still hold, the
/// state after every input handled so far, their events and effects, and
/// who waits for the commit.
struct Touched {
    def: Arc<SagaDefinition>,
    expected_seq: u64,
    state: SagaState,
    events: Vec<Recorded>,
    effects: Vec<Effect>,
    items: Vec<(Work, Answer)>,
}

impl<S: EventStore + Clone, T: Transport> Engine<S, T> {
    /// Processes `work`, deciding again what conflicted, a bounded number of times.
    pub(super) async fn process(&mut self, mut work: Vec<Work>) {
        for _ in 0..CONFLICT_RETRIES_MAX {
            work = self.round(work).await;
            if work.is_empty() {
                return;
            }
        }
        for item in work {
            let id = saga_of(&item);
            self.fail(item, EngineError::Contended(id)).await;
        }
    }

    /// One handle → append → effects round; returns the items to decide again.
    async fn round(&mut self, work: Vec<Work>) -> Vec<Work> {
        let now_ms = self.clock.now_ms();
        let mut touched: HashMap<SagaId, Touched> = HashMap::new();
        let mut order: Vec<SagaId> = Vec::new();
        let work: Vec<Work> = work.into_iter().map(with_id).collect();
        let owners = self.lookup_keys(keys_of(&work)).await;
        let mut ids = preload_ids(&work, &self.cache);
        ids.extend(owners.into_iter().filter(|&id| !self.cache.contains(id)));
        ids.sort();
        ids.dedup();
        self.preload(ids).await;
        for item in work {
            let span = span_of(&item);
            self.handle_item(item, now_ms, &mut touched, &mut order).instrument(span).await;
        }
        self.preloaded.clear();
        let appends: Vec<Append> = order
            .iter()
            .filter_map(|id| touched.get(id))
            .map(|t| Append {
                saga_id: t.state.id,
                expected_seq: t.expected_seq,
                events: t.events.clone(),
                summary: summary(&t.def, &t.state),
            })
            .collect();
        let mut retry = Vec::new();
        self.metrics.appends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let append_started = self.clock.instant();
        crate::crash_point!("engine-before-commit");
        let appended = self.store.append(&appends).await;
        self.metrics.observe_append(append_started.elapsed());
        match appended {
            Ok(outcomes) => {
                let mut done = Vec::new();
                for (append, outcome) in appends.iter().zip(outcomes) {
                    let Some(t) = touched.remove(&append.saga_id) else { continue };
                    match outcome {
                        AppendOutcome::Committed => done.push(t),
                        AppendOutcome::Conflict { actual_seq } => {
                            tracing::debug!(saga_id = %append.saga_id, expected = append.expected_seq, actual_seq, "append conflict; deciding again");
                            self.cache.remove(append.saga_id);
                            retry.extend(t.items.into_iter().map(|(item, _)| item));
                        }
                    }
                }
                self.after_commit(done).await;
            }
            Err(error) if error.is_transient() => {
                tracing::error!(%error, sagas = appends.len(), "append failed; nothing of this batch committed");
                for (id, t) in touched {
                    self.cache.remove(id);
                    for (item, _) in t.items {
                        self.fail(item, EngineError::Store(error.clone())).await;
                    }
                }
            }
            Err(error) if appends.len() > 1 => {
                tracing::warn!(%error, sagas = appends.len(), "a group commit failed; appending its sagas one by one to set the bad one apart");
                retry.extend(self.append_one_by_one(appends, touched).await);
            }
            Err(error) => {
                for (id, t) in touched {
                    self.set_apart(id, t, error.clone()).await;
                }
            }
        }
        retry
    }

    /// After a group commit failed for a reason other than the store's
    /// health: each saga's events alone, so that one saga whose data the
    /// database refuses fails alone, and every other input of the batch
    /// commits. Returns the inputs to decide again (conflicts).
    async fn append_one_by_one(&mut self, appends: Vec<Append>, mut touched: HashMap<SagaId, Touched>) -> Vec<Work> {
        let (mut done, mut retry, mut store_down) = (Vec::new(), Vec::new(), None::<crate::store::StoreError>);
        for append in appends {
            let Some(t) = touched.remove(&append.saga_id) else { continue };
            if let Some(error) = &store_down {
                for (item, _) in t.items {
                    self.fail(item, EngineError::Store(error.clone())).await;
                }
                continue;
            }
            match self.store.append(std::slice::from_ref(&append)).await {
                Ok(outcomes) if outcomes.first() == Some(&AppendOutcome::Committed) => done.push(t),
                Ok(_) => {
                    self.cache.remove(append.saga_id);
                    retry.extend(t.items.into_iter().map(|(item, _)| item));
                }
                Err(error) if error.is_transient() => {
                    store_down = Some(error.clone());
                    for (item, _) in t.items {
                        self.fail(item, EngineError::Store(error.clone())).await;
                    }
                }
                Err(error) => self.set_apart(append.saga_id, t, error).await,
            }
        }
        self.after_commit(done).await;
        retry
    }

    /// The database refuses this saga's new events for good (not a
    /// passing failure): its inputs are kept as poison or refused, so they
    /// neither come back forever nor hold up the others.
    async fn set_apart(&mut self, saga_id: SagaId, t: Touched, error: crate::store::StoreError) {
        tracing::error!(%saga_id, %error, "the database refuses this saga's events; its inputs are set apart");
        self.cache.remove(saga_id);
        for (item, _) in t.items {
            match item {
                Work::Delivery(d) => self.keep_as_poison(d, format!("the database refused the events it caused: {error}")).await,
                other => self.fail(other, EngineError::Store(error.clone())).await,
            }
        }
    }

    /// Looks up the sagas that hold the business keys of the round's starts
    /// (SPEC §7) with one `sagas_by_key` call (one indexed query per key),
    /// into `self.keys`; returns them, for `preload`. A failed lookup fails
    /// those starts (transiently: a message is delivered again).
    async fn lookup_keys(&mut self, wanted: Vec<(String, String)>) -> Vec<SagaId> {
        self.keys = match wanted.is_empty() {
            true => Ok(HashMap::new()),
            false => self.store.sagas_by_key(&wanted).await,
        };
        self.keys.as_ref().map(|keys| keys.values().copied().collect()).unwrap_or_default()
    }

    /// The saga a start acts on: the one holding its key if any (or a
    /// refusal when the start names another id), else the id it names,
    /// else a new one. A start without a key keeps the id `with_id` gave it.
    fn saga_of_start(&self, ask: &StartAsk, fallback: SagaId) -> Result<SagaId, EngineError> {
        let Some(key) = &ask.key else { return Ok(fallback) };
        let keys = self.keys.as_ref().map_err(|error| EngineError::Store(error.clone()))?;
        match (keys.get(&(ask.saga_type.clone(), key.clone())), ask.saga_id) {
            (Some(&owner), Some(named)) if named != owner => Err(EngineError::KeyTaken { key: key.clone(), saga_id: owner }),
            (Some(&owner), _) => Ok(owner),
            (None, named) => Ok(named.unwrap_or_else(new_id)),
        }
    }

    /// The definition a new saga runs on: the version its start names, if
    /// loaded, else the highest loaded. `Ok(None)`: no such saga type.
    fn definition_for(&self, saga_type: &str, version: Option<u32>) -> Result<Option<Arc<SagaDefinition>>, EngineError> {
        let Some(current) = self.definitions.current(saga_type) else { return Ok(None) };
        match version {
            None => Ok(Some(current)),
            Some(version) => self
                .definitions
                .loaded(saga_type, version)
                .map(Some)
                .ok_or_else(|| EngineError::UnknownVersion { saga_type: saga_type.to_owned(), version }),
        }
    }

    /// Loads the item's saga (from this round, the cache or the store) and
    /// runs the shared decide-and-apply step on it.
    async fn handle_item(&mut self, item: Work, now_ms: i64, touched: &mut HashMap<SagaId, Touched>, order: &mut Vec<SagaId>) {
        let (mut saga_id, input, saga_type) = input_of(&item);
        let ask = start_ask(&item);
        if let Some(ask) = &ask {
            saga_id = match self.saga_of_start(ask, saga_id) {
                Ok(id) => id,
                Err(error) => return self.fail(item, error).await,
            };
        }
        if matches!(item, Work::Request(Request::Operate { .. }) | Work::Deadline(_)) && !touched.contains_key(&saga_id) {
            // An operator, and a claimed deadline, act on what the store
            // says now, not on a cache another engine may have outdated: a
            // stale copy would refuse a verb wrongly, or find nothing due
            // and append nothing, so no conflict would ever correct it.
            self.cache.remove(saga_id);
        }
        let current = match touched.get(&saga_id) {
            Some(t) => Some((t.def.clone(), t.state.clone())),
            None => match self.load(saga_id).await {
                Ok(found) => found,
                Err(error) => return self.fail(item, error).await,
            },
        };
        let (def, state) = match (current, saga_type) {
            (Some((def, state)), _) => (def, Some(state)),
            (None, Some(saga_type)) => match self.definition_for(&saga_type, ask.as_ref().and_then(|a| a.version)) {
                Ok(Some(def)) => (def, None),
                Ok(None) => return self.unknown_type(item, saga_type).await,
                Err(error) => return self.fail(item, error).await,
            },
            (None, None) => return self.unknown_saga(item, saga_id).await,
        };
        tracing::Span::current().record("saga_type", def.name.as_str());
        if let Input::Reply(reply) = &input {
            tracing::debug!(participant = %reply.participant, status = ?reply.status, "reply received");
        }
        let ctx = Context { now_ms, jitter: self.rng.unit(), replies_held_until_ms: self.replies_held_until_ms };
        let handled = saga::handle(saga::decide, &def, saga_id, state, &input, &ctx);
        if let Some(why) = self.transport.message_bytes_max().and_then(|max| oversize(&handled, def.name.as_str(), max)) {
            return self.too_large(item, why).await;
        }
        let answer = match (&input, &handled.rejection) {
            (Input::Start { .. }, None) => Answer::Started { created: true },
            (Input::Start { .. }, Some(_)) => Answer::Started { created: false },
            _ => Answer::Done,
        };
        match (&handled.rejection, handled.events.is_empty()) {
            (Some(Rejection::AlreadyStarted) | None, _) => {}
            (Some(rejection), true) => return self.refuse(item, saga_id, rejection.clone()).await,
            (Some(rejection), false) => {
                tracing::info!(%saga_id, input = %input, reason = %rejection, "input ignored");
                self.metrics.ignored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let expected_seq = handled.expected_seq();
        let Some(state) = handled.state else { return };
        if handled.events.is_empty() && !touched.contains_key(&saga_id) {
            return answer_item(item, answer, saga_id, state.status);
        }
        if let (Answer::Started { created: true }, Some(StartAsk { saga_type, key: Some(key), .. }), Ok(keys)) =
            (answer, &ask, &mut self.keys)
        {
            // A later start of this round with the same key finds this saga.
            keys.insert((saga_type.clone(), key.clone()), saga_id);
        }
        let entry = touched.entry(saga_id).or_insert_with(|| {
            order.push(saga_id);
            Touched { def, expected_seq, state: state.clone(), events: Vec::new(), effects: Vec::new(), items: Vec::new() }
        });
        entry.state = state;
        entry.events.extend(handled.events);
        entry.effects.extend(handled.effects);
        entry.items.push((item, answer));
    }

    /// After the commit: per saga, count what happened, set or clear its
    /// deadline and update the cache; then hand the batch's commands and
    /// callers to the second stage, which publishes the commands before it
    /// acknowledges and answers (see `effects.rs`).
    async fn after_commit(&mut self, done: Vec<Touched>) {
        crate::crash_point!("engine-after-commit");
        let mut committed = Committed::default();
        for t in done {
            let span =
                tracing::info_span!("commit", saga_id = %t.state.id, saga_type = %t.state.saga_type, trace_id = %trace_id(t.state.id));
            in_saga_trace(&span, t.state.id);
            let _entered = span.enter();
            self.committed(t, &mut committed);
        }
        self.stage().submit(committed).await;
    }

    /// One saga's bookkeeping after its events are committed; its commands
    /// and callers join `committed`.
    fn committed(&mut self, t: Touched, committed: &mut Committed) {
        let id = t.state.id;
        self.metrics.observe_commit(&t.def, &t.state, &t.events);
        for effect in t.effects {
            self.schedule(id, effect, committed);
        }
        let status = t.state.status;
        if status.is_terminal() {
            self.cache.remove(id);
        } else {
            self.cache.insert(id, (t.def.clone(), t.state));
        }
        committed.answers.extend(t.items.into_iter().map(|(item, answer)| (item, answer, id, status)));
    }

    /// An input whose commands or events would not fit the broker: a
    /// message is kept as poison, a request refused (413); nothing of it
    /// is committed, so nothing is half-accepted.
    async fn too_large(&mut self, item: Work, why: String) {
        match item {
            Work::Delivery(d) => self.keep_as_poison(d, why).await,
            Work::Deadline(id) => {
                // A deadline cannot be refused; its command was checked when
                // its payload last grew (a reply), so this should not happen.
                tracing::error!(saga_id = %id, %why, "a deadline's effects are over the broker's limit; trying again later");
                self.deadlines.set(id, self.clock.now_ms() + STORE_RETRY_MS);
            }
            other => self.fail(other, EngineError::TooLarge(why)).await,
        }
    }

    /// A request or message that changes nothing and records nothing.
    async fn refuse(&mut self, item: Work, saga_id: SagaId, rejection: Rejection) {
        match item {
            Work::Request(_) => self.fail(item, EngineError::Rejected(rejection)).await,
            Work::Delivery(d) => {
                if matches!(d.message, Inbound::Reply { .. }) && rejection != Rejection::HeartbeatTooSoon {
                    // A reply's refusal is recorded unless its saga's log is full of
                    // them; a heartbeat too soon after a recorded one is never recorded.
                    self.metrics.ignored_unrecorded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::info!(%saga_id, reason = %rejection, "inbound message ignored");
                d.ack.ack();
            }
            Work::Deadline(_) => {
                if rejection == Rejection::NothingDue {
                    self.metrics.deadlines_stale.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// A reply or operator request for a saga that has no log. A message
    /// is kept as poison (there is no saga log to record it in).
    async fn unknown_saga(&mut self, item: Work, saga_id: SagaId) {
        match item {
            Work::Delivery(d) => self.keep_as_poison(d, format!("no saga {saga_id}")).await,
            other => self.fail(other, EngineError::UnknownSaga(saga_id)).await,
        }
    }

    /// A start for a saga type nobody defined: poison for a message, an
    /// error for a request.
    async fn unknown_type(&mut self, item: Work, saga_type: String) {
        match item {
            Work::Delivery(d) => self.keep_as_poison(d, format!("unknown saga type {saga_type:?}")).await,
            other => self.fail(other, EngineError::UnknownSagaType(saga_type)).await,
        }
    }

    /// Keeps a message the engine cannot use for operators, the way the
    /// transport keeps what it cannot parse, and acknowledges it so it
    /// never blocks the consumer.
    async fn keep_as_poison(&mut self, delivery: Delivery, reason: String) {
        let (subject, payload) = match &delivery.message {
            Inbound::Start { saga_type, saga_id, input, key, version } => (
                format!("start.{saga_type}"),
                serde_json::json!({ "saga_id": saga_id.map(|id| id.to_string()), "input": input, "key": key, "version": version }),
            ),
            Inbound::Reply { saga_id, reply } => (
                format!("reply.{}", reply.participant),
                serde_json::json!({ "saga_id": saga_id.to_string(), "step": reply.step, "kind": reply.kind, "attempt": reply.attempt }),
            ),
        };
        self.poison.keep(&subject, &reason, payload.to_string().as_bytes()).await;
        delivery.ack.ack();
    }

    /// Tells the item's caller it failed. A message stays unacknowledged
    /// when the failure may pass (its source redelivers it), and is kept as
    /// poison when it never will, so nothing is dropped in silence; a
    /// deadline is tried again later.
    async fn fail(&mut self, item: Work, error: EngineError) {
        match item {
            Work::Request(Request::Start { respond, .. }) => {
                let _ = respond.send(Err(error));
            }
            Work::Request(Request::Operate { respond, .. }) => {
                let _ = respond.send(Err(error));
            }
            Work::Delivery(d) if error.is_transient() => {
                tracing::warn!(%error, message = ?d.message, "inbound message not processed; it will be delivered again");
            }
            Work::Delivery(d) => self.keep_as_poison(d, format!("cannot be processed: {error}")).await,
            Work::Deadline(id) => {
                tracing::warn!(%error, saga_id = %id, "deadline not processed; trying again");
                self.deadlines.set(id, self.clock.now_ms() + STORE_RETRY_MS);
            }
        }
    }
}

/// Why what `handled` would publish cannot go through a broker taking at
/// most `max` bytes a message: a command body or an event body (the
/// relay's message) over it.
fn oversize(handled: &saga::Handled, saga_type: &str, max: usize) -> Option<String> {
    let commands = handled.effects.iter().filter_map(|e| match e {
        Effect::Send(c) => Some((format!("the command for {}:{}", c.step, c.kind), crate::wire::command_body(c).len())),
        _ => None,
    });
    let saga_id = handled.state.as_ref().map(|s| s.id)?;
    let events = handled.events.iter().map(|r| {
        let (event_type, _) = saga::encode(&r.event);
        (format!("the event {event_type}"), crate::wire::event_body(saga_id, saga_type, r).len())
    });
    commands
        .chain(events)
        .find(|(_, bytes)| *bytes > max)
        .map(|(what, bytes)| format!("{what} would be {bytes} bytes, over the broker's limit of {max} bytes a message"))
}

/// Gives a start without an id or key its id once, so a retry keeps it.
/// A start with a key keeps none: each round finds its saga by the key
/// (`saga_of_start`), which must tell a start that named no id from one
/// that named another.
fn with_id(item: Work) -> Work {
    match item {
        Work::Delivery(Delivery { message: Inbound::Start { saga_type, saga_id: None, input, key: None, version }, ack }) => {
            Work::Delivery(Delivery { message: Inbound::Start { saga_type, saga_id: Some(new_id()), input, key: None, version }, ack })
        }
        Work::Request(Request::Start { saga_type, saga_id: None, input, options, respond }) if options.key.is_none() => {
            Work::Request(Request::Start { saga_type, saga_id: Some(new_id()), input, options, respond })
        }
        other => other,
    }
}

/// What a start asks for: its type, the id it names, its key and version.
#[derive(Debug, Clone)]
pub(super) struct StartAsk {
    saga_type: String,
    saga_id: Option<SagaId>,
    key: Option<String>,
    version: Option<u32>,
}

/// The (saga type, key) pairs of the starts of `work` that carry a key, each once.
fn keys_of(work: &[Work]) -> Vec<(String, String)> {
    let keys: std::collections::BTreeSet<(String, String)> =
        work.iter().filter_map(start_ask).filter_map(|ask| Some((ask.saga_type, ask.key?))).collect();
    keys.into_iter().collect()
}

/// The start's ask, if the item is a start.
fn start_ask(item: &Work) -> Option<StartAsk> {
    match item {
        Work::Delivery(Delivery { message: Inbound::Start { saga_type, saga_id, key, version, .. }, .. }) => {
            Some(StartAsk { saga_type: saga_type.clone(), saga_id: *saga_id, key: key.clone(), version: *version })
        }
        Work::Request(Request::Start { saga_type, saga_id, options, .. }) => {
            Some(StartAsk { saga_type: saga_type.clone(), saga_id: *saga_id, key: options.key.clone(), version: options.version })
        }
        _ => None,
    }
}

fn new_id() -> SagaId {
    SagaId::from_uuid(uuid::Uuid::now_v7())
}

/// The saga, the input, and for a start the saga type.
fn input_of(item: &Work) -> (SagaId, Input, Option<String>) {
    match item {
        Work::Delivery(Delivery { message: Inbound::Start { saga_type, saga_id, input, key, .. }, .. }) => {
            (saga_id.unwrap_or_else(new_id), Input::Start { input: input.clone(), key: key.clone() }, Some(saga_type.clone()))
        }
        Work::Request(Request::Start { saga_type, saga_id, input, options, .. }) => {
            (saga_id.unwrap_or_else(new_id), Input::Start { input: input.clone(), key: options.key.clone() }, Some(saga_type.clone()))
        }
        Work::Delivery(Delivery { message: Inbound::Reply { saga_id, reply }, .. }) => (*saga_id, Input::Reply(reply.clone()), None),
        Work::Request(Request::Operate { saga_id, input, .. }) => (*saga_id, input.clone(), None),
        Work::Deadline(id) => (*id, Input::DeadlinePassed, None),
    }
}

/// The span one work item is decided in: one trace per saga (its trace id
/// is the saga id's bits, as in the commands' `traceparent`), with the
/// step, kind and attempt a reply answers.
fn span_of(item: &Work) -> tracing::Span {
    let (saga_id, input, saga_type) = input_of(item);
    let span = tracing::info_span!(
        "saga",
        %saga_id,
        trace_id = %trace_id(saga_id),
        saga_type = tracing::field::Empty,
        input = input_name(&input),
        step = tracing::field::Empty,
        kind = tracing::field::Empty,
        attempt = tracing::field::Empty,
    );
    if let Some(saga_type) = saga_type {
        span.record("saga_type", saga_type.as_str());
    }
    if let Input::Reply(reply) = &input {
        span.record("step", reply.step.as_str());
        span.record("kind", reply.kind.as_str());
        span.record("attempt", reply.attempt);
    }
    in_saga_trace(&span, saga_id);
    span
}

/// With OTLP export, makes `span` part of the saga's trace: its parent is
/// the remote span whose trace id is the saga id, the same trace id the
/// commands' and replies' `traceparent` headers carry, so a collector
/// shows one trace per saga across the orchestrator and its participants.
#[cfg(feature = "otlp")]
fn in_saga_trace(span: &tracing::Span, saga_id: SagaId) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let trace_id = TraceId::from(saga_id.as_uuid().as_u128());
    let parent = SpanContext::new(trace_id, SpanId::from(1u64), TraceFlags::SAMPLED, true, TraceState::default());
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

#[cfg(not(feature = "otlp"))]
fn in_saga_trace(_span: &tracing::Span, _saga_id: SagaId) {}

/// The input's kind, for the span.
fn input_name(input: &Input) -> &'static str {
    match input {
        Input::Start { .. } => "start",
        Input::Reply(_) => "reply",
        Input::DeadlinePassed => "deadline",
        Input::OperatorRetry { .. } => "operator_retry",
        Input::OperatorCompensate { .. } => "operator_compensate",
        Input::OperatorAbort { .. } => "operator_abort",
    }
}

/// The W3C trace id of a saga's trace (see `wire::traceparent`).
fn trace_id(saga_id: SagaId) -> String {
    format!("{:032x}", saga_id.as_uuid().as_u128())
}

/// The sagas whose logs `preload` reads for `work`, each once: not cached, or an
/// operator request or a claimed deadline (decided on what the store
/// holds now, see `handle_item`). Every start has its id by now (`with_id`).
pub(super) fn preload_ids(work: &[Work], cache: &super::SagaCache) -> Vec<SagaId> {
    let id = |item: &Work| {
        let fresh = matches!(item, Work::Request(Request::Operate { .. }) | Work::Deadline(_));
        let id = match item {
            Work::Delivery(Delivery { message: Inbound::Start { saga_id, .. }, .. }) | Work::Request(Request::Start { saga_id, .. }) => {
                (*saga_id)?
            }
            other => saga_of(other),
        };
        (fresh || !cache.contains(id)).then_some(id)
    };
    let ids: std::collections::BTreeSet<SagaId> = work.iter().filter_map(id).collect();
    ids.into_iter().collect()
}

fn saga_of(item: &Work) -> SagaId {
    input_of(item).0
}

/// Tells a work item's caller the outcome: acknowledges a message, answers a request.
pub(super) fn answer_item(item: Work, answer: Answer, saga_id: SagaId, status: Status) {
    match (item, answer) {
        (Work::Delivery(d), _) => d.ack.ack(),
        (Work::Request(Request::Start { respond, .. }), Answer::Started { created }) => {
            let _ = respond.send(Ok(Started { saga_id, status, created }));
        }
        (Work::Request(Request::Start { respond, .. }), Answer::Done) => {
            let _ = respond.send(Ok(Started { saga_id, status, created: false }));
        }
        (Work::Request(Request::Operate { respond, .. }), _) => {
            let _ = respond.send(Ok(status));
        }
        (Work::Deadline(_), _) => {}
    }
}

/// The projection row for the saga as it is now.
pub(super) fn summary(def: &SagaDefinition, state: &SagaState) -> SagaSummary {
    SagaSummary {
        saga_id: state.id,
        saga_type: state.saga_type.clone(),
        version: state.version,
        status: state.status,
        current_step: state.current_step(def),
        started_at_ms: state.started_at_ms,
        updated_at_ms: state.updated_at_ms,
        last_seq: state.seq,
        deadline_ms: state.deadline_ms(),
        key: state.key.clone(),
    }
}
