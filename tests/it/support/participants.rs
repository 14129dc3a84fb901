//! The participants of a test app: a [`Behaviour`] per participant (a
//! plain function of the command, served with the SDK's
//! [`participant::serve_commands`]) or the SDK's simulated participants,
//! and the [`Ledger`] of what they received and did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jetsaga::definition::{Catalog, Kind};
use jetsaga::orchestrator::Orchestrator;
use jetsaga::participant::{self, BoxError, EffectLedger, ParticipantError, SimulationConfig};
use jetsaga::saga::ReplyStatus;
use jetsaga::transport::ParticipantTransport as _;
use jetsaga::wire::{CommandBody, ReplyBody};
use serde_json::json;
use tokio::task::JoinHandle;

/// What a participant does with a command: a reply, or `None` for silence
/// (the command is acknowledged and never answered).
pub type Behaviour = Arc<dyn Fn(&CommandBody) -> Option<ReplyBody> + Send + Sync>;

/// Every command answered `ok`, with `{"ref": "<step>"}` as output.
pub fn always_ok() -> Behaviour {
    answer(|_| Some(true))
}

/// No command ever answered.
pub fn silent() -> Behaviour {
    answer(|_| None)
}

/// A behaviour from a rule on the command: `Some(true)` answers `ok` (with
/// `{"ref": "<step>"}`), `Some(false)` answers `failed` ("refused"), `None`
/// stays silent.
pub fn answer(rule: impl Fn(&CommandBody) -> Option<bool> + Send + Sync + 'static) -> Behaviour {
    Arc::new(move |c| rule(c).map(|ok| if ok { ReplyBody::ok(c, Some(json!({ "ref": c.step }))) } else { ReplyBody::failed(c, "refused") }))
}

/// What the participants of a test app received, and the effects of their
/// `ok` replies (or of the simulated participants), per idempotency key.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    commands: Arc<Mutex<Vec<CommandBody>>>,
    /// Effects per idempotency key, in order; shared with the simulated participants.
    pub effects: EffectLedger,
}

impl Ledger {
    /// Every command a behaviour received, in order.
    pub fn commands(&self) -> Vec<CommandBody> {
        self.commands.lock().expect("ledger").clone()
    }

    /// (step, kind, attempt) of every command a behaviour received, in order.
    pub fn received(&self) -> Vec<(String, Kind, u32)> {
        self.commands().into_iter().map(|c| (c.step, c.kind, c.attempt)).collect()
    }

    fn record(&self, command: &CommandBody, reply: Option<&ReplyBody>) {
        self.commands.lock().expect("ledger").push(command.clone());
        if reply.is_some_and(|r| r.status == ReplyStatus::Ok) {
            self.effects.record(&command.idempotency_key);
        }
    }
}

/// Who answers the commands.
#[derive(Clone)]
pub(super) enum Participants {
    /// Every participant a definition names, and those given a behaviour.
    Behaviours { default: Behaviour, named: HashMap<String, Behaviour> },
    /// The SDK's five simulated participants, effects in [`Ledger::effects`].
    Simulated(SimulationConfig),
    /// Nobody in this process.
    None,
}

impl Participants {
    /// Subscribes every participant, then serves each on a task until the
    /// orchestrator stops.
    pub(super) async fn spawn<S>(
        &self,
        catalog: &Catalog,
        orchestrator: &Orchestrator<S>,
        ledger: &Ledger,
    ) -> Vec<JoinHandle<Result<(), ParticipantError>>> {
        let transport = orchestrator.transport();
        match self {
            Participants::Behaviours { default, named } => {
                let mut names: Vec<String> = catalog.iter().flat_map(|d| d.steps.iter().map(|s| s.participant.to_string())).collect();
                names.extend(named.keys().cloned());
                names.sort();
                names.dedup();
                let mut tasks = Vec::new();
                for name in names {
                    let service = served(named.get(&name).unwrap_or(default).clone(), ledger.clone());
                    let commands = transport.commands(&name).await.expect("a participant subscribes");
                    let (transport, stop) = (transport.clone(), orchestrator.stopping());
                    tasks.push(tokio::spawn(async move { participant::serve_commands(transport, &name, commands, service, stop).await }));
                }
                tasks
            }
            Participants::Simulated(config) => {
                participant::spawn_simulated(transport.clone(), config.clone(), ledger.effects.clone(), orchestrator.stopping())
                    .await
                    .expect("participants subscribe")
            }
            Participants::None => Vec::new(),
        }
    }
}

/// A participant service doing `behaviour`, its commands in `ledger`.
fn served(
    behaviour: Behaviour,
    ledger: Ledger,
) -> impl tower::Service<CommandBody, Response = ReplyBody, Error = BoxError, Future = impl Send> + Clone + Send + 'static {
    tower::service_fn(move |command: CommandBody| {
        let reply = behaviour(&command);
        ledger.record(&command, reply.as_ref());
        async move { reply.ok_or_else(|| -> BoxError { Box::new(participant::Silence) }) }
    })
}
