//! The load: starts published to JetStream with and without a `saga_id`
//! and sent to `POST /sagas`, each input carrying a unique marker so the
//! checker can count the sagas of every start; and hostile inputs (NUL,
//! oversize, deep nesting, wrong types, garbage replies) that must make no
//! saga and change no outcome.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use serde_json::{json, Value};

use super::participants::publish;
use super::rng::{uuid_v7, Rng};
use super::services::http;

/// How long a client keeps trying a start that names its `saga_id`
/// (longer than the database outage).
const START_RETRY_FOR: Duration = Duration::from_secs(90);
/// Pause between two tries of one start.
const START_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Nesting of the deep hostile input (jetsaga allows 64).
const DEEP_NESTING: usize = 100;
/// Size of the oversize hostile inputs: over the broker's 1 MiB.
const OVERSIZE_BYTES: usize = 1_100_000;
/// Size of the near-limit hostile input: fits the broker, but its events
/// would not.
const NEAR_LIMIT_BYTES: usize = 1_000_000;

/// How a start was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// JetStream, naming its `saga_id` (and `Nats-Msg-Id`).
    NatsNamed,
    /// JetStream, no `saga_id`: the orchestrator derives one.
    NatsDerived,
    /// `POST /sagas`, naming its `saga_id`.
    HttpNamed,
    /// `POST /sagas`, no `saga_id`.
    HttpUnnamed,
}

/// What the checker expects of a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Acknowledged: exactly one saga.
    One,
    /// Not acknowledged (the broker or the API did not answer): at most one.
    AtMostOne,
    /// Hostile and refused by the spec: none.
    None,
}

/// One start and what became of it on the client's side.
#[derive(Debug, Clone)]
pub struct Start {
    /// The unique marker in its input.
    pub marker: String,
    /// How it was sent.
    pub via: Via,
    /// The `saga_id` it named (or the API returned).
    pub saga_id: Option<String>,
    /// What the checker expects.
    pub expect: Expect,
    /// For hostile starts: what kind.
    pub hostile: Option<&'static str>,
}

/// Every start made so far.
#[derive(Debug, Clone, Default)]
pub struct Starts(Arc<Mutex<Vec<Start>>>);

impl Starts {
    fn push(&self, start: Start) {
        self.0.lock().expect("starts").push(start);
    }

    /// Everything recorded.
    pub fn all(&self) -> Vec<Start> {
        self.0.lock().expect("starts").clone()
    }
}

/// The client side of the load.
#[derive(Debug, Clone)]
pub struct Load {
    /// The broker.
    pub jetstream: jetstream::Context,
    /// The saga type.
    pub saga_type: String,
    /// The `serve` ops API ports.
    pub ports: Vec<u16>,
    /// The record.
    pub starts: Starts,
    /// The run's seed (for markers).
    pub seed: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Load {
    fn marker(&self, n: u64) -> String {
        format!("s{}-{n}", self.seed)
    }

    /// Sends start number `n` the way `via` says, retrying where the
    /// client can do so safely (a start that names its id).
    pub async fn start(&self, n: u64, via: Via, rng: &mut Rng) {
        let marker = self.marker(n);
        let input = json!({"marker": marker, "n": n, "note": "a start of the fault campaign"});
        let id = matches!(via, Via::NatsNamed | Via::HttpNamed).then(|| uuid_v7(rng, now_ms()));
        let port = self.ports[rng.below(self.ports.len() as u64) as usize];
        let until = Instant::now() + START_RETRY_FOR;
        let mut saga_id = id.clone();
        let acked = loop {
            let acked = match via {
                Via::NatsNamed | Via::NatsDerived => {
                    let mut body = json!({"input": input});
                    let mut headers = HeaderMap::new();
                    if let Some(id) = &id {
                        body["saga_id"] = json!(id);
                        headers.insert("Nats-Msg-Id", id.as_str());
                    }
                    let subject = format!("saga.start.{}", self.saga_type);
                    match self.jetstream.publish_with_headers(subject, headers, body.to_string().into()).await {
                        Ok(ack) => ack.await.is_ok(),
                        Err(_) => false,
                    }
                }
                Via::HttpNamed | Via::HttpUnnamed => {
                    let mut body = json!({"saga_type": self.saga_type, "input": input});
                    if let Some(id) = &id {
                        body["saga_id"] = json!(id);
                    }
                    let port = if id.is_some() { self.ports[rng.below(self.ports.len() as u64) as usize] } else { port };
                    let answer =
                        tokio::task::spawn_blocking(move || http::post(port, "/sagas", &body.to_string())).await.ok().and_then(Result::ok);
                    match answer {
                        Some((200 | 201, text)) => {
                            saga_id = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["saga_id"].as_str().map(str::to_owned));
                            true
                        }
                        _ => false,
                    }
                }
            };
            if acked || id.is_none() || Instant::now() > until {
                break acked;
            }
            tokio::time::sleep(START_RETRY_PAUSE).await;
        };
        let expect = if acked { Expect::One } else { Expect::AtMostOne };
        self.starts.push(Start { marker, via, saga_id, expect, hostile: None });
    }

    /// One hostile input, chosen by `rng`; returns its name.
    pub async fn hostile(&self, n: u64, rng: &mut Rng, known_saga: Option<String>) -> &'static str {
        let marker = self.marker(n);
        let subject = format!("saga.start.{}", self.saga_type);
        let deep = format!("{}{}", "[".repeat(DEEP_NESTING), "]".repeat(DEEP_NESTING));
        let port = self.ports[rng.below(self.ports.len() as u64) as usize];
        let (name, expect, sent) = match rng.below(12) {
            0 => (
                "nats: NUL in input",
                Expect::None,
                self.raw(&subject, format!(r#"{{"input":{{"marker":"{marker}","text":"a\u0000b"}}}}"#)).await,
            ),
            1 => (
                "nats: nesting over 64",
                Expect::None,
                self.raw(&subject, format!(r#"{{"input":{{"marker":"{marker}","deep":{deep}}}}}"#)).await,
            ),
            2 => (
                "nats: saga_id of a wrong type",
                Expect::None,
                self.raw(&subject, format!(r#"{{"saga_id":42,"input":{{"marker":"{marker}"}}}}"#)).await,
            ),
            3 => (
                "nats: saga_id not a uuid",
                Expect::None,
                self.raw(&subject, format!(r#"{{"saga_id":"x-{marker}","input":{{"marker":"{marker}"}}}}"#)).await,
            ),
            4 => ("nats: near the size limit", Expect::AtMostOne, self.raw(&subject, big(&marker, NEAR_LIMIT_BYTES)).await),
            5 => ("nats: garbage start", Expect::None, self.raw(&subject, format!("{{not json {marker}")).await),
            6 => (
                "http: NUL in input",
                Expect::None,
                post(port, format!(r#"{{"saga_type":"{}","input":{{"marker":"{marker}","text":"a\u0000b"}}}}"#, self.saga_type)).await,
            ),
            7 => (
                "http: nesting over 64",
                Expect::None,
                post(port, format!(r#"{{"saga_type":"{}","input":{{"marker":"{marker}","deep":{deep}}}}}"#, self.saga_type)).await,
            ),
            8 => (
                "http: saga_type of a wrong type",
                Expect::None,
                post(port, format!(r#"{{"saga_type":7,"input":{{"marker":"{marker}"}}}}"#)).await,
            ),
            9 => (
                "http: oversize body",
                Expect::None,
                post(port, big(&marker, OVERSIZE_BYTES).replacen('{', &format!(r#"{{"saga_type":"{}","#, self.saga_type), 1)).await,
            ),
            10 => ("reply: garbage", Expect::None, self.raw("saga.reply.payments", format!("\u{0}{{garbage {marker}")).await),
            _ => {
                // A reply from a participant that does not own the step, for a
                // saga that exists: it must be ignored.
                let id = known_saga.unwrap_or_else(|| uuid_v7(rng, now_ms()));
                let body = json!({"saga_id": id, "step": "reserve_seat", "kind": "action", "attempt": 1, "status": "ok", "output": {"forged": true}});
                (
                    "reply: forged by a participant that does not own the step",
                    Expect::None,
                    self.raw("saga.reply.mailer", body.to_string()).await,
                )
            }
        };
        let _ = sent;
        if name.starts_with("nats: ") || name.starts_with("http: ") {
            self.starts.push(Start { marker, via: Via::NatsDerived, saga_id: None, expect, hostile: Some(name) });
        }
        name
    }

    async fn raw(&self, subject: &str, body: String) -> bool {
        publish(&self.jetstream, subject, body.into()).await.is_ok()
    }
}

/// `POST /sagas` with `body`; true on 2xx.
async fn post(port: u16, body: String) -> bool {
    let answer = tokio::task::spawn_blocking(move || http::post(port, "/sagas", &body)).await.ok().and_then(Result::ok);
    answer.is_some_and(|(status, _)| (200..300).contains(&status))
}

/// A start body with an input of about `bytes` bytes.
fn big(marker: &str, bytes: usize) -> String {
    format!(r#"{{"input":{{"marker":"{marker}","blob":"{}"}}}}"#, "x".repeat(bytes))
}
