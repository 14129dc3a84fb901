//! The closed set of things that can happen to a saga from outside.

use std::fmt;

use serde_json::Value;

use crate::definition::{Kind, Participant, StepName};

/// Everything [`super::decide`] reacts to. Adding a behaviour adds a variant,
/// and the compiler lists every place to touch.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A client asked to start the saga.
    Start {
        /// The start request's input.
        input: Value,
        /// The caller's business key (SPEC §7), kept in `saga_started`.
        key: Option<String>,
    },
    /// A participant replied.
    Reply(Reply),
    /// The runtime's timer for this saga fired.
    DeadlinePassed,
    /// An operator resumes a stuck saga with a fresh attempt budget.
    OperatorRetry {
        /// Recorded in the log.
        reason: String,
    },
    /// An operator forces compensation from where the saga stands.
    OperatorCompensate {
        /// Recorded in the log.
        reason: String,
    },
    /// An operator stops the saga without compensating.
    OperatorAbort {
        /// Recorded in the log.
        reason: String,
    },
}

/// A participant's answer to a command, already parsed from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Who sent it: the `<participant>` token of `saga.reply.<participant>`.
    pub participant: Participant,
    /// The step it answers: a well-formed name, checked at the door (a
    /// reply naming a step the definition lacks is recorded as ignored).
    pub step: StepName,
    /// Action or compensation.
    pub kind: Kind,
    /// The attempt it answers.
    pub attempt: u32,
    /// `ok`, `failed` or `working`.
    pub status: ReplyStatus,
    /// The participant's output.
    pub output: Option<Value>,
    /// The participant's explanation of a failure.
    pub error: Option<String>,
}

/// The `status` of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyStatus {
    /// The command took effect.
    Ok,
    /// The command was refused (a business failure).
    Failed,
    /// Still at work: a heartbeat that restarts the attempt's timeout and
    /// never concludes the step (SPEC §7).
    Working,
}

impl Input {
    /// Whether a refusal of this input belongs in the saga's log. Replies
    /// are recorded (audit: what arrived and why it changed nothing); a
    /// stale timer or a refused start/operator request is answered to its
    /// caller instead.
    pub fn records_rejection(&self) -> bool {
        matches!(self, Input::Reply(_))
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Start { .. } => f.write_str("start"),
            Input::Reply(r) => {
                let status = match r.status {
                    ReplyStatus::Ok => "ok",
                    ReplyStatus::Failed => "failed",
                    ReplyStatus::Working => "working",
                };
                write!(f, "{status} reply from {} for {}:{} attempt {}", r.participant, r.step, r.kind, r.attempt)
            }
            Input::DeadlinePassed => f.write_str("deadline"),
            Input::OperatorRetry { .. } => f.write_str("operator retry"),
            Input::OperatorCompensate { .. } => f.write_str("operator compensate"),
            Input::OperatorAbort { .. } => f.write_str("operator abort"),
        }
    }
}
