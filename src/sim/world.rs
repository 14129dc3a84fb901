//! The simulated world: one orchestrator process, its durable store, the
//! network, participants and operators, on a virtual clock.
//!
//! The orchestrator here drives the real core (`decide`, `evolve`,
//! `effects`, `outstanding`) exactly as the runtime does: load → decide →
//! append → effects, recovery after a crash. Only IO is simulated, and
//! every place it can misbehave asks the [`Chooser`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use serde_json::{json, Value};

use super::fault::{Chooser, Fault, Point};
use super::rng::mix;
use crate::definition::{Kind, Participant, SagaDefinition};
use crate::saga::{
    self, Command, Context, Decide, Effect, Handled, Input, Recorded, Recovery, Reply, ReplyStatus, SagaEvent, SagaId, SagaState, Status,
};

/// The shape of one simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Sagas started in the run.
    pub sagas: usize,
    /// Gap between two starts.
    pub start_spacing_ms: i64,
    /// One-way latency of every message.
    pub latency_ms: i64,
    /// The reply consumer's ack wait (unacknowledged messages come back after it).
    pub ack_wait_ms: i64,
    /// How long a crashed orchestrator stays down.
    pub downtime_ms: i64,
    /// How long an operator takes to act.
    pub operator_delay_ms: i64,
    /// World events after which a run counts as not quiescing.
    pub steps_max: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            sagas: 1,
            start_spacing_ms: 7,
            latency_ms: 5,
            ack_wait_ms: 2_000,
            downtime_ms: 500,
            operator_delay_ms: 1_000,
            steps_max: 200_000,
        }
    }
}

/// The virtual epoch: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// An event stored as a real store keeps it: encoded JSON text.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) seq: u64,
    pub(super) at_ms: i64,
    pub(super) event_type: &'static str,
    pub(super) data: String,
}

/// A command as it went over the wire, and when.
#[derive(Debug, Clone)]
pub(super) struct Published {
    pub(super) at_ms: i64,
    pub(super) command: Command,
}

/// A participant's effect: applied once per idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AppliedEffect {
    pub(super) saga_id: SagaId,
    pub(super) step: usize,
    pub(super) kind: Kind,
}

/// A reply a participant really sent: (saga, step, kind, attempt, status).
pub(super) type Genuine = (SagaId, usize, Kind, u32, ReplyStatus);

#[derive(Debug, Clone)]
enum Msg {
    /// A start without a saga id, as stored by the broker: its id is
    /// derived from its place in the stream, as the transport derives it.
    Start {
        sequence: u64,
        stored_at_ms: i64,
    },
    Reply {
        saga_id: SagaId,
        reply: Reply,
    },
    /// An operator's request; `elsewhere`: handled by another engine of
    /// the deployment, which appends to the shared store and leaves this
    /// orchestrator's cache as it was (stale).
    Operator {
        saga_id: SagaId,
        input: Input,
        elsewhere: bool,
    },
}

#[derive(Debug, Clone)]
enum WorldEvent {
    ToOrchestrator(Msg),
    ToParticipant(Command),
    Deadline {
        saga_id: SagaId,
        at_ms: i64,
        epoch: u64,
    },
    Restart,
    /// A deadline another engine set comes due: this orchestrator claims
    /// it from the store.
    Claim {
        saga_id: SagaId,
    },
}

/// Everything a run leaves behind, for the checks and the report.
pub(super) struct Outcome {
    pub(super) store: BTreeMap<SagaId, Vec<Stored>>,
    pub(super) started: Vec<SagaId>,
    pub(super) published: Vec<Published>,
    pub(super) committed_commands: HashMap<(SagaId, String, Kind, u32), i64>,
    pub(super) effects: Vec<AppliedEffect>,
    pub(super) genuine: HashSet<Genuine>,
    pub(super) failed_keys: HashSet<String>,
    pub(super) trace: Vec<String>,
    pub(super) violations: Vec<saga::invariants::Violation>,
    pub(super) quiescent: bool,
}

/// The run in progress.
pub(super) struct World<'a> {
    def: &'a SagaDefinition,
    config: SimConfig,
    chooser: &'a mut dyn Chooser,
    decide: Decide,
    now_ms: i64,
    queue: BinaryHeap<Reverse<(i64, u64)>>,
    pending: HashMap<u64, WorldEvent>,
    order: u64,
    up: bool,
    epoch: u64,
    cache: HashMap<SagaId, SagaState>,
    deadlines: HashMap<SagaId, i64>,
    held: Vec<(Msg, i64)>,
    recorded_replies: HashMap<String, (ReplyStatus, Value)>,
    out: Outcome,
}

impl<'a> World<'a> {
    pub(super) fn new(def: &'a SagaDefinition, config: SimConfig, chooser: &'a mut dyn Chooser, decide: Decide) -> Self {
        World {
            def,
            config,
            chooser,
            decide,
            now_ms: EPOCH_MS,
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            order: 0,
            up: true,
            epoch: 0,
            cache: HashMap::new(),
            deadlines: HashMap::new(),
            held: Vec::new(),
            recorded_replies: HashMap::new(),
            out: Outcome {
                store: BTreeMap::new(),
                started: Vec::new(),
                published: Vec::new(),
                committed_commands: HashMap::new(),
                effects: Vec::new(),
                genuine: HashSet::new(),
                failed_keys: HashSet::new(),
                trace: Vec::new(),
                violations: Vec::new(),
                quiescent: false,
            },
        }
    }

    /// Runs until nothing is left to happen (or `steps_max`).
    pub(super) fn run(mut self) -> Outcome {
        for i in 0..self.config.sagas {
            let (sequence, at) = (i as u64 + 1, EPOCH_MS + i as i64 * self.config.start_spacing_ms);
            self.out.started.push(start_id(sequence, at));
            self.deliver_start(sequence, at);
        }
        let mut steps = 0;
        while let Some(Reverse((at_ms, order))) = self.queue.pop() {
            steps += 1;
            if steps > self.config.steps_max {
                return self.out;
            }
            self.now_ms = at_ms;
            let Some(event) = self.pending.remove(&order) else { continue };
            self.handle(event);
        }
        self.out.quiescent = true;
        self.out
    }

    fn schedule(&mut self, at_ms: i64, event: WorldEvent) {
        self.order += 1;
        self.queue.push(Reverse((at_ms, self.order)));
        self.pending.insert(self.order, event);
    }

    fn trace(&mut self, what: String) {
        let t = self.now_ms - EPOCH_MS;
        self.out.trace.push(format!("t={t}ms {what}"));
    }

    fn handle(&mut self, event: WorldEvent) {
        match event {
            WorldEvent::ToOrchestrator(msg) if !self.up => self.held.push((msg, 0)),
            WorldEvent::ToOrchestrator(msg) => self.receive(msg),
            WorldEvent::ToParticipant(command) => self.participant(command),
            WorldEvent::Deadline { saga_id, at_ms, epoch } => {
                if self.up && epoch == self.epoch && self.deadlines.get(&saga_id) == Some(&at_ms) {
                    self.deadlines.remove(&saga_id);
                    self.claimed(saga_id);
                }
            }
            WorldEvent::Claim { saga_id } if self.up => self.claimed(saga_id),
            WorldEvent::Claim { .. } => {}
            WorldEvent::Restart => self.restart(),
        }
    }

    fn receive(&mut self, msg: Msg) {
        let (saga_id, input) = match &msg {
            Msg::Start { sequence, stored_at_ms } => {
                let saga_id = start_id(*sequence, *stored_at_ms);
                (saga_id, Input::Start { input: json!({ "customer": saga_id.to_string() }), key: None })
            }
            Msg::Reply { saga_id, reply } => (*saga_id, Input::Reply(reply.clone())),
            Msg::Operator { saga_id, input, elsewhere: true } => return self.elsewhere(*saga_id, input.clone()),
            Msg::Operator { saga_id, input, .. } => {
                // An operator acts on what the store holds, not on the cache.
                self.cache.remove(saga_id);
                (*saga_id, input.clone())
            }
        };
        self.process(saga_id, input, Some(msg));
    }

    /// A claimed deadline, decided on what the store holds (as the engine
    /// does): another engine may have moved the saga on since it was cached.
    fn claimed(&mut self, saga_id: SagaId) {
        self.cache.remove(&saga_id);
        self.process(saga_id, Input::DeadlinePassed, None);
    }

    /// Another engine of the deployment handles `input`: it folds the saga
    /// from the store, appends, publishes its commands, and its deadline
    /// is claimed later by this orchestrator; this one's cache goes stale.
    fn elsewhere(&mut self, saga_id: SagaId, input: Input) {
        let Some(before) = self.out.store.get(&saga_id).and_then(|log| fold_stored(self.def, saga_id, log)) else { return };
        let ctx = Context::new(self.now_ms, 0.5);
        let handled = saga::handle(self.decide, self.def, saga_id, Some(before.clone()), &input, &ctx);
        if handled.events.is_empty() || !self.commit(saga_id, Some(before), &handled) {
            return;
        }
        self.trace(format!("{input} of saga {saga_id} handled by another engine"));
        for effect in handled.effects {
            match effect {
                Effect::Send(command) => self.publish(saga_id, command),
                Effect::SetDeadline { at_ms } => self.schedule(at_ms.max(self.now_ms), WorldEvent::Claim { saga_id }),
                Effect::ClearDeadline => {}
            }
        }
    }

    /// Load → handle (decide and apply) → append → effects, the engine's
    /// loop; `msg` is acknowledged (dropped from redelivery) only once its
    /// events are committed.
    fn process(&mut self, saga_id: SagaId, input: Input, msg: Option<Msg>) {
        let before = self.load(saga_id);
        if before.as_ref().map_or(0, |s| s.seq) != self.stored_seq(saga_id) {
            // The cache is stale (another engine appended): the store's
            // conflict makes the engine reload and decide again.
            self.trace(format!("conflict on saga {saga_id}: deciding again on what the store holds"));
            self.cache.remove(&saga_id);
            return self.process(saga_id, input, msg);
        }
        let seq = before.as_ref().map_or(0, |s| s.seq);
        let jitter = (mix(saga_id.as_uuid().as_u128() as u64 ^ seq.wrapping_mul(0x9E37)) >> 11) as f64 / (1u64 << 53) as f64;
        let ctx = Context::new(self.now_ms, jitter);
        let handled = saga::handle(self.decide, self.def, saga_id, before.clone(), &input, &ctx);
        if handled.events.is_empty() {
            return;
        }
        match self.chooser.choose(Point::Process) {
            Fault::Crash => return self.crash(msg, "before commit"),
            Fault::CrashAfterCommit => {
                self.append(saga_id, before, &handled);
                return self.crash(msg, "after commit");
            }
            _ => {}
        }
        if !self.append(saga_id, before, &handled) {
            return;
        }
        let stuck = matches!(handled.events.last().map(|r| &r.event), Some(SagaEvent::SagaStuck { .. }));
        for effect in handled.effects {
            self.carry_out(saga_id, effect);
        }
        if stuck {
            self.operator(saga_id, Point::Stuck);
        }
    }

    fn stored_seq(&self, saga_id: SagaId) -> u64 {
        self.out.store.get(&saga_id).map_or(0, Vec::len) as u64
    }

    fn load(&mut self, saga_id: SagaId) -> Option<SagaState> {
        if let Some(state) = self.cache.get(&saga_id) {
            return Some(state.clone());
        }
        let state = fold_stored(self.def, saga_id, self.out.store.get(&saga_id)?)?;
        self.cache.insert(saga_id, state.clone());
        Some(state)
    }

    /// This orchestrator's append: [`Self::commit`], then its cache.
    fn append(&mut self, saga_id: SagaId, before: Option<SagaState>, handled: &Handled) -> bool {
        if !self.commit(saga_id, before, handled) {
            return false;
        }
        match &handled.state {
            Some(state) => self.cache.insert(saga_id, state.clone()),
            None => self.cache.remove(&saga_id),
        };
        true
    }

    /// Commits the handled events (checking the expected seq like a real
    /// store) and checks invariant 6: after every event, the state rebuilt
    /// from what was stored equals the live one, and at the end it equals
    /// the state `handle` decided on.
    fn commit(&mut self, saga_id: SagaId, before: Option<SagaState>, handled: &Handled) -> bool {
        let expected = handled.expected_seq();
        let stored = self.stored_seq(saga_id);
        if stored != expected || before.as_ref().map_or(0, |s| s.seq) != expected {
            self.violation(Some(saga_id), 8, format!("append expected seq {expected}, store has {stored}"));
            return false;
        }
        let mut live = before.clone();
        let mut replayed = before;
        for recorded in &handled.events {
            let (event_type, data) = saga::encode(&recorded.event);
            let stored = Stored { seq: recorded.seq, at_ms: recorded.at_ms, event_type, data: data.to_string() };
            let decoded = decode_stored(&stored);
            self.out.store.entry(saga_id).or_default().push(stored);
            if let SagaEvent::CommandSent { step, kind, attempt, .. } = &recorded.event {
                self.out.committed_commands.insert((saga_id, step.to_string(), *kind, *attempt), self.now_ms);
            }
            live = step_state(self.def, saga_id, live, recorded);
            replayed = decoded.and_then(|decoded| step_state(self.def, saga_id, replayed, &decoded));
            if live != replayed {
                self.violation(
                    Some(saga_id),
                    6,
                    format!("after seq {}, the state rebuilt from the log differs from the live state", recorded.seq),
                );
            }
        }
        if replayed != handled.state {
            self.violation(Some(saga_id), 6, "the state decide returned differs from the state rebuilt from the log".into());
        }
        true
    }

    fn carry_out(&mut self, saga_id: SagaId, effect: Effect) {
        match effect {
            Effect::Send(command) => {
                if command.kind == Kind::Action {
                    self.operator(saga_id, Point::Operator);
                }
                self.publish(saga_id, command);
            }
            Effect::SetDeadline { at_ms } => {
                self.deadlines.insert(saga_id, at_ms);
                self.schedule(at_ms.max(self.now_ms), WorldEvent::Deadline { saga_id, at_ms, epoch: self.epoch });
            }
            Effect::ClearDeadline => {
                self.deadlines.remove(&saga_id);
            }
        }
    }

    /// Publishes a command through the faulty network.
    fn publish(&mut self, _saga_id: SagaId, command: Command) {
        self.out.published.push(Published { at_ms: self.now_ms, command: command.clone() });
        let what = format!("command {}:{}#{} to {}", command.step, command.kind, command.attempt, command.participant);
        self.deliver(WorldEvent::ToParticipant(command), what);
    }

    fn operator(&mut self, saga_id: SagaId, point: Point) {
        let (input, elsewhere) = match self.chooser.choose(point) {
            Fault::Retry => (Input::OperatorRetry { reason: "simulated operator".into() }, false),
            Fault::RetryElsewhere => (Input::OperatorRetry { reason: "simulated operator, another engine".into() }, true),
            Fault::Compensate => (Input::OperatorCompensate { reason: "simulated operator".into() }, false),
            Fault::Abort => (Input::OperatorAbort { reason: "simulated operator".into() }, false),
            _ => return,
        };
        self.trace(format!("{input} of saga {saga_id} planned"));
        let at = self.now_ms + self.config.operator_delay_ms;
        self.schedule(at, WorldEvent::ToOrchestrator(Msg::Operator { saga_id, input, elsewhere }));
    }

    /// Sends a command or reply through the faulty network.
    fn deliver(&mut self, event: WorldEvent, what: String) {
        let at = self.now_ms + self.config.latency_ms;
        match self.chooser.choose(Point::Deliver) {
            Fault::Drop => self.trace(format!("drop {what}")),
            Fault::Duplicate => {
                self.trace(format!("duplicate {what}"));
                self.schedule(at, event.clone());
                self.schedule(at + self.config.latency_ms, event);
            }
            Fault::Delay(ms) => {
                self.trace(format!("delay {what} by {ms}ms"));
                self.schedule(at + i64::from(ms), event);
            }
            Fault::Forge(kind) => {
                if let WorldEvent::ToOrchestrator(Msg::Reply { saga_id, reply }) = &event {
                    let forged = forge(*saga_id, reply, kind);
                    self.trace(format!("forge {forged:?} beside {what}"));
                    self.schedule(at, WorldEvent::ToOrchestrator(forged));
                }
                self.schedule(at, event);
            }
            _ => self.schedule(at, event),
        }
    }

    /// Start requests come from a durable stream: never lost, maybe
    /// delivered twice (a redelivery: the same stored message) or late.
    fn deliver_start(&mut self, sequence: u64, at: i64) {
        let event = WorldEvent::ToOrchestrator(Msg::Start { sequence, stored_at_ms: at });
        match self.chooser.choose(Point::Deliver) {
            Fault::Duplicate => {
                self.schedule(at, event.clone());
                self.schedule(at + 3 * self.config.latency_ms, event);
            }
            Fault::Delay(ms) => self.schedule(at + i64::from(ms), event),
            _ => self.schedule(at, event),
        }
    }

    /// A participant with an idempotency layer: a repeated key gets the
    /// recorded reply; the effect happens once.
    fn participant(&mut self, command: Command) {
        let Some(step) = self.def.step_index(command.step.as_str()) else { return };
        let (status, output) = match self.recorded_replies.get(&command.idempotency_key) {
            Some(recorded) => recorded.clone(),
            None => {
                let conclusive = command.kind == Kind::Action && self.def.pivot().is_none_or(|p| step <= p);
                match self.chooser.choose(Point::Handle) {
                    Fault::Silence => {
                        return self
                            .trace(format!("{} silent on {}:{}#{}", command.participant, command.step, command.kind, command.attempt))
                    }
                    Fault::Fail => {
                        self.trace(format!("{} refuses {}:{}#{}", command.participant, command.step, command.kind, command.attempt));
                        if conclusive {
                            self.recorded_replies.insert(command.idempotency_key.clone(), (ReplyStatus::Failed, Value::Null));
                            self.out.failed_keys.insert(command.idempotency_key.clone());
                        }
                        (ReplyStatus::Failed, Value::Null)
                    }
                    _ => {
                        let output = json!({ "by": command.participant.as_str(), "ref": format!("{}-{}", command.step, command.kind) });
                        self.recorded_replies.insert(command.idempotency_key.clone(), (ReplyStatus::Ok, output.clone()));
                        // Undoing an action this participant refused is a no-op that succeeds.
                        let action_key = saga::idempotency_key(command.saga_id, command.step.as_str(), Kind::Action);
                        if command.kind == Kind::Action || !self.out.failed_keys.contains(&action_key) {
                            self.out.effects.push(AppliedEffect { saga_id: command.saga_id, step, kind: command.kind });
                        }
                        (ReplyStatus::Ok, output)
                    }
                }
            }
        };
        self.out.genuine.insert((command.saga_id, step, command.kind, command.attempt, status));
        let reply = Reply {
            participant: command.participant.clone(),
            step: command.step.clone(),
            kind: command.kind,
            attempt: command.attempt,
            status,
            output: Some(output),
            error: (status == ReplyStatus::Failed).then(|| "refused by the simulation".into()),
        };
        let what = format!("{status:?} reply to {}:{}#{}", command.step, command.kind, command.attempt).to_lowercase();
        self.deliver(WorldEvent::ToOrchestrator(Msg::Reply { saga_id: command.saga_id, reply }), what);
    }

    /// The process dies: volatile state is gone; the message being
    /// processed was not acknowledged, so the broker redelivers it.
    fn crash(&mut self, msg: Option<Msg>, when: &str) {
        self.trace(format!("orchestrator crashes {when}"));
        self.up = false;
        self.epoch += 1;
        self.cache.clear();
        self.deadlines.clear();
        if let Some(msg) = msg {
            self.held.push((msg, self.config.ack_wait_ms));
        }
        let at = self.now_ms + self.config.downtime_ms;
        self.schedule(at, WorldEvent::Restart);
    }

    /// Recovery, as the runtime does it: fold every unfinished saga, record
    /// the grace of an attempt in flight, re-send it, re-arm deadlines; then
    /// the broker redelivers what was held.
    fn restart(&mut self) {
        self.trace("orchestrator restarts and recovers".into());
        self.up = true;
        let recovery = Recovery { now_ms: self.now_ms, ack_wait_ms: self.config.ack_wait_ms };
        let ids: Vec<SagaId> = self.out.store.keys().copied().collect();
        for saga_id in ids {
            let Some(state) = self.load(saga_id) else { continue };
            if state.status.is_terminal() {
                continue;
            }
            let handled = saga::recover(self.def, state.clone(), recovery);
            if !handled.events.is_empty() && !self.append(saga_id, Some(state), &handled) {
                continue;
            }
            for effect in handled.effects {
                self.carry_out(saga_id, effect);
            }
        }
        for (msg, delay) in std::mem::take(&mut self.held) {
            let at = self.now_ms + self.config.latency_ms + delay;
            self.schedule(at, WorldEvent::ToOrchestrator(msg));
        }
    }

    fn violation(&mut self, saga_id: Option<SagaId>, invariant: u8, detail: String) {
        self.out.violations.push(saga::invariants::Violation { saga_id, invariant, detail });
    }
}

fn step_state(def: &SagaDefinition, saga_id: SagaId, state: Option<SagaState>, recorded: &Recorded) -> Option<SagaState> {
    match state {
        Some(mut s) => {
            saga::evolve(&mut s, def, recorded);
            Some(s)
        }
        None => saga::begin(def, saga_id, recorded),
    }
}

/// The stream the simulated starts are stored in.
const START_STREAM: &str = "SIM_START";

/// The saga id of the start stored at `sequence`, derived as the transport does.
fn start_id(sequence: u64, stored_at_ms: i64) -> SagaId {
    SagaId::derived(START_STREAM, sequence, stored_at_ms)
}

/// Reads a stored event back as a store would; `None` if it does not decode.
pub(super) fn decode_stored(stored: &Stored) -> Option<Recorded> {
    let data: Value = serde_json::from_str(&stored.data).ok()?;
    let event = saga::decode(saga::SCHEMA_VERSION, stored.event_type, data).ok()?;
    Some(Recorded { seq: stored.seq, at_ms: stored.at_ms, event })
}

/// Folds a stored log.
pub(super) fn fold_stored(def: &SagaDefinition, saga_id: SagaId, log: &[Stored]) -> Option<SagaState> {
    let decoded: Option<Vec<Recorded>> = log.iter().map(decode_stored).collect();
    saga::fold(def, saga_id, &decoded?)
}

fn forge(saga_id: SagaId, reply: &Reply, kind: u8) -> Msg {
    let mut forged = reply.clone();
    let mut target = saga_id;
    match kind % 4 {
        0 => forged.participant = Participant::parse("mallory").unwrap_or_else(|_| reply.participant.clone()),
        1 => forged.attempt = reply.attempt + 100,
        2 => target = SagaId::from_u128(saga_id.as_uuid().as_u128() ^ 0xdead),
        _ => {
            forged.participant = Participant::parse("mallory").unwrap_or_else(|_| reply.participant.clone());
            forged.status = match reply.status {
                ReplyStatus::Ok => ReplyStatus::Failed,
                ReplyStatus::Failed | ReplyStatus::Working => ReplyStatus::Ok,
            };
        }
    }
    Msg::Reply { saga_id: target, reply: forged }
}

/// Statuses at the end of a run, for the summary.
pub(super) fn statuses(def: &SagaDefinition, store: &BTreeMap<SagaId, Vec<Stored>>) -> BTreeMap<Status, usize> {
    let mut out = BTreeMap::new();
    for (id, log) in store {
        if let Some(state) = fold_stored(def, *id, log) {
            *out.entry(state.status).or_insert(0) += 1;
        }
    }
    out
}
