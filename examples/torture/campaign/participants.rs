//! The participants, inside the campaign process, on raw async-nats: one
//! durable pull consumer per participant on `SAGA_COMMANDS`, a seeded
//! behaviour per (saga, step, kind) — ok, failed, silent, duplicate reply,
//! late reply — and a ledger of every command received. A participant
//! dedupes by idempotency key as a real one must: its *effect* is the
//! first `ok` handling of a key.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt as _;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::definition::Definition;
use super::rng::{hash, unit};

/// The commands stream (created by `serve`).
pub const COMMANDS_STREAM: &str = "SAGA_COMMANDS";
/// How long a participant's command may stay unacknowledged.
const COMMAND_ACK_WAIT: Duration = Duration::from_secs(5);
/// Commands a participant may hold unacknowledged at once.
const COMMANDS_PENDING_MAX: i64 = 10_000;
/// How long a late reply waits: longer than the step's timeout.
pub const LATE_DELAY: Duration = Duration::from_millis(1500);
/// Pause before opening a broken consumer again.
const REOPEN_DELAY: Duration = Duration::from_millis(300);
/// How long one pull waits, and the heartbeat that notices a lost server.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Heartbeat of a pull.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);

/// How a participant treats one (saga, step, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Replies ok.
    Ok,
    /// Replies ok twice.
    Duplicate,
    /// Applies at once, replies to the first attempt after [`LATE_DELAY`].
    Late,
    /// Loses the first attempt (no effect, no reply), then ok.
    SilentOnce,
    /// Applies the effect and never replies (an unknown effect).
    SilentAlways,
    /// Replies failed to every attempt (no effect).
    Failed,
    /// Replies failed to the first attempt, then ok.
    FailedOnce,
}

/// The behaviour for (marker, step, kind) under `seed`: a pure function,
/// so the checker can ask it too.
pub fn behaviour(seed: u64, definition: &Definition, marker: &str, step: usize, kind: &str) -> Behaviour {
    let roll = unit(hash(seed, &[marker, &definition.steps[step].name, kind]));
    let pivot = definition.pivot();
    let table: &[(f64, Behaviour)] = if kind == "compensation" {
        &[
            (0.76, Behaviour::Ok),
            (0.06, Behaviour::Duplicate),
            (0.06, Behaviour::Late),
            (0.06, Behaviour::SilentOnce),
            (0.06, Behaviour::FailedOnce),
        ]
    } else if step < pivot {
        &[
            (0.70, Behaviour::Ok),
            (0.06, Behaviour::Duplicate),
            (0.06, Behaviour::Late),
            (0.06, Behaviour::SilentOnce),
            (0.02, Behaviour::SilentAlways),
            (0.10, Behaviour::Failed),
        ]
    } else if step == pivot {
        &[
            (0.74, Behaviour::Ok),
            (0.06, Behaviour::Duplicate),
            (0.06, Behaviour::Late),
            (0.06, Behaviour::SilentOnce),
            (0.08, Behaviour::Failed),
        ]
    } else {
        &[
            (0.76, Behaviour::Ok),
            (0.06, Behaviour::Duplicate),
            (0.06, Behaviour::Late),
            (0.06, Behaviour::SilentOnce),
            (0.06, Behaviour::FailedOnce),
        ]
    };
    let mut acc = 0.0;
    for (weight, b) in table {
        acc += weight;
        if roll < acc {
            return *b;
        }
    }
    Behaviour::Ok
}

/// One command as a participant received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The saga id the command names.
    pub saga_id: String,
    /// The start's marker (from the command's input).
    pub marker: String,
    /// The step.
    pub step: String,
    /// `action` or `compensation`.
    pub kind: String,
    /// The attempt number.
    pub attempt: u64,
    /// The idempotency key.
    pub key: String,
    /// The reply it sent (`ok`, `failed`), if any.
    pub reply: Option<&'static str>,
    /// Whether this handling applied the effect (first ok of the key).
    pub applied: bool,
}

/// Every command the participants received, in the order they did.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<(Vec<Received>, HashSet<String>)>>,
}

impl Ledger {
    /// Records a command; `ok` = the participant handles it with success.
    /// Returns whether it applied the effect (first ok of its key).
    fn record(&self, mut received: Received, ok: bool) -> bool {
        let mut inner = self.inner.lock().expect("ledger");
        received.applied = ok && inner.1.insert(received.key.clone());
        let applied = received.applied;
        inner.0.push(received);
        applied
    }

    /// Everything recorded so far.
    pub fn entries(&self) -> Vec<Received> {
        self.inner.lock().expect("ledger").0.clone()
    }
}

/// The participants' common setup.
#[derive(Debug, Clone)]
pub struct Participants {
    /// The broker.
    pub jetstream: jetstream::Context,
    /// The definition (which participant owns which step).
    pub definition: Arc<Definition>,
    /// The run's seed.
    pub seed: u64,
    /// Where commands are recorded.
    pub ledger: Ledger,
}

impl Participants {
    /// Runs one task per participant until `stop` turns true.
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut names: Vec<String> = self.definition.steps.iter().map(|s| s.participant.clone()).collect();
        names.dedup();
        names.into_iter().map(|name| tokio::spawn(self.clone().serve(name, stop.clone()))).collect()
    }

    async fn consumer(&self, name: &str) -> Result<pull::Stream, String> {
        let stream = self.jetstream.get_stream(COMMANDS_STREAM).await.map_err(|e| e.to_string())?;
        let config = pull::Config {
            durable_name: Some(format!("torture_{name}")),
            filter_subject: format!("saga.cmd.{name}.>"),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: COMMAND_ACK_WAIT,
            max_ack_pending: COMMANDS_PENDING_MAX,
            ..pull::Config::default()
        };
        let consumer: PullConsumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
        consumer.stream().expires(PULL_EXPIRES).heartbeat(PULL_HEARTBEAT).messages().await.map_err(|e| e.to_string())
    }

    async fn serve(self, name: String, mut stop: watch::Receiver<bool>) {
        let mut messages = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let stream = match messages.as_mut() {
                Some(stream) => stream,
                None => match self.consumer(&name).await {
                    Ok(stream) => messages.insert(stream),
                    Err(_) => {
                        tokio::time::sleep(REOPEN_DELAY).await;
                        continue;
                    }
                },
            };
            let next = tokio::select! {
                next = stream.next() => next,
                _ = stop.changed() => continue,
            };
            match next {
                Some(Ok(message)) => {
                    let this = self.clone();
                    let participant = name.clone();
                    tokio::spawn(async move { this.handle(&participant, message).await });
                }
                Some(Err(_)) | None => {
                    messages = None;
                    tokio::time::sleep(REOPEN_DELAY).await;
                }
            }
        }
    }

    async fn handle(&self, participant: &str, message: Message) {
        let Ok(command) = serde_json::from_slice::<Value>(&message.payload) else {
            let _ = message.ack().await;
            return;
        };
        let text = |key: &str| command.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (saga_id, step, kind, key) = (text("saga_id"), text("step"), text("kind"), text("idempotency_key"));
        let attempt = command.get("attempt").and_then(Value::as_u64).unwrap_or(0);
        let marker = command.pointer("/payload/input/marker").and_then(Value::as_str).unwrap_or_default().to_owned();
        let Some(index) = self.definition.index(&step) else {
            let _ = message.ack().await;
            return;
        };
        let behaviour = behaviour(self.seed, &self.definition, &marker, index, &kind);
        let first = attempt <= 1;
        let (reply, ok, copies, delay) = match behaviour {
            Behaviour::Ok => (Some("ok"), true, 1, None),
            Behaviour::Duplicate => (Some("ok"), true, 2, None),
            Behaviour::Late => (Some("ok"), true, 1, first.then_some(LATE_DELAY)),
            Behaviour::SilentOnce if first => (None, false, 0, None),
            Behaviour::SilentOnce => (Some("ok"), true, 1, None),
            Behaviour::SilentAlways => (None, true, 0, None),
            Behaviour::Failed => (Some("failed"), false, 1, None),
            Behaviour::FailedOnce if first => (Some("failed"), false, 1, None),
            Behaviour::FailedOnce => (Some("ok"), true, 1, None),
        };
        let received =
            Received { saga_id: saga_id.clone(), marker, step: step.clone(), kind: kind.clone(), attempt, key, reply, applied: false };
        self.ledger.record(received, ok);
        let Some(status) = reply else {
            let _ = message.ack().await;
            return;
        };
        let body = json!({
            "saga_id": saga_id, "step": step, "kind": kind, "attempt": attempt, "status": status,
            "output": (status == "ok").then(|| json!({"ref": format!("{participant}:{step}")})),
            "error": (status == "failed").then_some("declined by the campaign"),
        });
        let subject = format!("saga.reply.{participant}");
        let payload = bytes::Bytes::from(body.to_string());
        if let Some(delay) = delay {
            // Acknowledge now; the reply follows later, after the attempt timed out.
            let _ = message.ack().await;
            tokio::time::sleep(delay).await;
            let _ = publish(&self.jetstream, &subject, payload).await;
            return;
        }
        for _ in 0..copies {
            if publish(&self.jetstream, &subject, payload.clone()).await.is_err() {
                // Not acknowledged: the broker delivers the command again.
                return;
            }
        }
        let _ = message.ack().await;
    }
}

/// Publishes to JetStream and waits for the broker's acknowledgement.
pub async fn publish(jetstream: &jetstream::Context, subject: &str, payload: bytes::Bytes) -> Result<(), String> {
    let ack = jetstream.publish(subject.to_owned(), payload).await.map_err(|e| e.to_string())?;
    ack.await.map(drop).map_err(|e| e.to_string())
}
