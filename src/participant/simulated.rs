//! Simulated participants — flights, hotels, cars, payments, notifications —
//! for the demo, `jetsaga participants --simulate` and tests.
//!
//! Each is a [`Simulated`] service with seeded chance: a latency, a
//! `failed` reply with [`SimulationConfig::failure_rate`], silence (the
//! command acknowledged, never answered, as by a participant that died
//! with it) with [`SimulationConfig::silence_rate`]. Faults strike only
//! attempts up to [`SimulationConfig::fault_attempts_max`], so a retried
//! command eventually succeeds and a compensation never fails for good.
//! The payment service always refuses [`DECLINED_CARD`]. A compensation
//! for an action the participant never performed (unknown effect)
//! succeeds as a no-op. Every effect is counted per idempotency key in an
//! [`EffectLedger`], so tests can prove none happened twice.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tower::{Layer as _, Service};

use super::{serve_commands, BoxError, IdempotencyLayer, MemoryIdempotencyStore, ParticipantError, Silence};
use crate::definition::Kind;
use crate::sim::Rng;
use crate::transport::ParticipantTransport;
use crate::wire::{CommandBody, ReplyBody};

/// The card number the payment service refuses, on every attempt.
pub const DECLINED_CARD: &str = "4000-0000-0000-0002";

/// The simulated participants, as named in `sagas/trip_booking.toml`.
pub const SIMULATED_PARTICIPANTS: [&str; 5] = ["flights", "hotels", "cars", "payments", "notifications"];

/// How the simulated participants misbehave.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Chance (0..=1) that an attempt is answered `failed`.
    pub failure_rate: f64,
    /// Chance (0..=1) that an attempt is acknowledged and never answered.
    pub silence_rate: f64,
    /// Typical time to answer; each attempt takes 0.5× to 1.5× of it.
    pub latency: Duration,
    /// Seed of the dice (runs are reproducible as far as task scheduling allows).
    pub seed: u64,
    /// Faults strike attempts 1 to this one only; later attempts succeed.
    pub fault_attempts_max: u32,
}

/// How long a simulated participant typically takes to answer, by default.
pub const SIMULATED_LATENCY_DEFAULT: Duration = Duration::from_millis(20);

impl Default for SimulationConfig {
    fn default() -> Self {
        Self { failure_rate: 0.0, silence_rate: 0.0, latency: SIMULATED_LATENCY_DEFAULT, seed: 0, fault_attempts_max: 1 }
    }
}

/// Effects performed, per idempotency key, and in the order they happened.
/// Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct EffectLedger {
    effects: Arc<Mutex<Effects>>,
}

#[derive(Debug, Default)]
struct Effects {
    counts: HashMap<String, u32>,
    order: Vec<String>,
}

impl EffectLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one effect for `key`.
    pub fn record(&self, key: &str) {
        let mut effects = self.lock();
        *effects.counts.entry(key.to_owned()).or_insert(0) += 1;
        effects.order.push(key.to_owned());
    }

    /// Effects recorded for `key`.
    pub fn count(&self, key: &str) -> u32 {
        self.lock().counts.get(key).copied().unwrap_or(0)
    }

    /// Effects recorded in all.
    pub fn total(&self) -> u64 {
        self.lock().counts.values().map(|&n| u64::from(n)).sum()
    }

    /// The keys whose effect happened more than once (sorted); empty when all is well.
    pub fn duplicates(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().counts.iter().filter(|(_, &n)| n > 1).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

    /// Every effect's key, in the order the effects happened.
    pub fn order(&self) -> Vec<String> {
        self.lock().order.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Effects> {
        self.effects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One simulated participant, as a tower service. Clones share the dice and the ledger.
#[derive(Debug, Clone)]
pub struct Simulated {
    participant: &'static str,
    config: SimulationConfig,
    ledger: EffectLedger,
    rng: Arc<Mutex<Rng>>,
}

/// What the dice chose for one attempt.
struct Roll {
    latency: Duration,
    silent: bool,
    failed: bool,
}

impl Simulated {
    /// `participant` (one of [`SIMULATED_PARTICIPANTS`]) behaving as `config` says.
    pub fn new(participant: &'static str, config: SimulationConfig, ledger: EffectLedger) -> Self {
        let seed = participant.bytes().fold(config.seed, |h, b| crate::sim::mix(h ^ u64::from(b)));
        Self { participant, config, ledger, rng: Arc::new(Mutex::new(Rng::new(seed))) }
    }

    fn roll(&self, attempt: u32) -> Roll {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let base = self.config.latency.as_micros() as u64;
        let latency = Duration::from_micros(base / 2 + rng.below(base + 1));
        let faulty = attempt <= self.config.fault_attempts_max;
        let silent = faulty && rng.chance(self.config.silence_rate);
        let failed = faulty && rng.chance(self.config.failure_rate);
        Roll { latency, silent, failed }
    }

    /// The answer once the dice have spoken: a refusal, or the effect and `ok`.
    fn perform(&self, command: &CommandBody, roll: &Roll) -> Result<ReplyBody, BoxError> {
        if roll.silent {
            return Err(Box::new(Silence));
        }
        if let Some(reason) = self.refusal(command) {
            return Ok(ReplyBody::failed(command, reason));
        }
        if roll.failed {
            return Ok(ReplyBody::failed(command, format!("{} is unavailable (simulated failure)", self.participant)));
        }
        let output = match command.kind {
            Kind::Action => {
                self.ledger.record(&command.idempotency_key);
                json!({ "confirmation": format!("{}-{}", command.step, &command.saga_id[..8.min(command.saga_id.len())]) })
            }
            Kind::Compensation => {
                // Undo only what was done: an action never seen (unknown effect) makes this a no-op.
                let action_key = format!("{}:{}:{}", command.saga_id, command.step, Kind::Action.as_str());
                let undone = self.ledger.count(&action_key) > 0;
                if undone {
                    self.ledger.record(&command.idempotency_key);
                }
                json!({ "undone": undone })
            }
        };
        Ok(ReplyBody::ok(command, Some(output)))
    }

    /// A business refusal that no retry changes.
    fn refusal(&self, command: &CommandBody) -> Option<&'static str> {
        let card = command.payload.pointer("/input/card").and_then(Value::as_str);
        let declined = self.participant == "payments" && command.kind == Kind::Action && card == Some(DECLINED_CARD);
        declined.then_some("card declined")
    }
}

impl Service<CommandBody> for Simulated {
    type Response = ReplyBody;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ReplyBody, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, command: CommandBody) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let roll = this.roll(command.attempt);
            if !roll.latency.is_zero() {
                // A zero sleep still waits for the timer's next tick (about 1 ms).
                tokio::time::sleep(roll.latency).await;
            }
            this.perform(&command, &roll)
        })
    }
}

/// Serves the five [`SIMULATED_PARTICIPANTS`] on `transport`, each behind an
/// [`IdempotencyLayer`], until `shutdown` resolves. Subscribes to every
/// participant's commands before returning, so none is missed; each handle
/// resolves when its participant has finished its commands in flight.
pub async fn spawn_simulated<T: ParticipantTransport>(
    transport: T,
    config: SimulationConfig,
    ledger: EffectLedger,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<JoinHandle<Result<(), ParticipantError>>>, ParticipantError> {
    let shutdown = shutdown.boxed().shared();
    let mut subscriptions = Vec::with_capacity(SIMULATED_PARTICIPANTS.len());
    for participant in SIMULATED_PARTICIPANTS {
        let commands = transport
            .commands(participant)
            .await
            .map_err(|source| ParticipantError::Subscribe { participant: participant.to_owned(), source })?;
        subscriptions.push((participant, commands));
    }
    let handles = subscriptions
        .into_iter()
        .map(|(participant, commands)| {
            let service =
                IdempotencyLayer::new(MemoryIdempotencyStore::new()).layer(Simulated::new(participant, config.clone(), ledger.clone()));
            tokio::spawn(serve_commands(transport.clone(), participant, commands, service, shutdown.clone()))
        })
        .collect();
    Ok(handles)
}
