//! A saga's log as a table people can read: one row per event with the
//! time since the start, the step, kind, attempt and what happened.

use std::fmt::Write as _;

use crate::saga::{Recorded, SagaEvent, SagaId, SagaState};

/// One row of a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Milliseconds since the saga started.
    pub elapsed_ms: i64,
    /// The step, or "" for saga-level events.
    pub step: String,
    /// "action", "compensation" or "".
    pub kind: String,
    /// The attempt, or "".
    pub attempt: String,
    /// What happened.
    pub outcome: String,
}

/// The rows of `log`.
pub fn rows(log: &[Recorded]) -> Vec<Row> {
    let start = log.first().map_or(0, |r| r.at_ms);
    log.iter().map(|r| row(r, start)).collect()
}

/// One row's text, control characters escaped ([`super::terminal::escape`]):
/// what a participant wrote is shown, never obeyed by the terminal.
fn row(recorded: &Recorded, start_ms: i64) -> Row {
    let Row { elapsed_ms, step, kind, attempt, outcome } = raw_row(recorded, start_ms);
    let escape = |text: String| super::terminal::escape(&text).into_owned();
    Row { elapsed_ms, step: escape(step), kind, attempt, outcome: escape(outcome) }
}

fn raw_row(recorded: &Recorded, start_ms: i64) -> Row {
    let saga = |outcome: String| (String::new(), String::new(), String::new(), outcome);
    let step = |s: &dyn ToString, k: &dyn ToString, a: u32, outcome: String| (s.to_string(), k.to_string(), a.to_string(), outcome);
    let (step, kind, attempt, outcome) = match &recorded.event {
        SagaEvent::SagaStarted { saga_type, version, .. } => saga(format!("started ({saga_type} v{version})")),
        SagaEvent::CommandSent { step: s, kind, attempt, .. } => step(s, kind, *attempt, "sent".into()),
        SagaEvent::StepSucceeded { step: s, kind, attempt, .. } => step(s, kind, *attempt, "ok".into()),
        SagaEvent::StepFailed { step: s, kind, attempt, error } => step(s, kind, *attempt, failed(error)),
        SagaEvent::AttemptFailed { step: s, kind, attempt, error } => step(s, kind, *attempt, format!("{} (will retry)", failed(error))),
        SagaEvent::AttemptTimedOut { step: s, kind, attempt } => step(s, kind, *attempt, "timed out".into()),
        SagaEvent::DeadlineExtended { step: s, kind, attempt, deadline_ms } => {
            step(s, kind, *attempt, format!("restart: deadline moved to {} ms from now", deadline_ms - recorded.at_ms))
        }
        SagaEvent::RetryScheduled { step: s, kind, attempt, due_ms } => {
            step(s, kind, *attempt, format!("retry in {} ms", due_ms - recorded.at_ms))
        }
        SagaEvent::CompensationStarted { reason, .. } => saga(format!("compensating: {reason}")),
        SagaEvent::StepSkipped { step: s } => (s.to_string(), "action".into(), String::new(), "skipped".into()),
        SagaEvent::HeartbeatRecorded { step: s, kind, attempt, deadline_ms } => {
            step(s, kind, *attempt, format!("working: deadline moved to {} ms from now", deadline_ms - recorded.at_ms))
        }
        SagaEvent::AttemptsExhausted { step: s, kind } => (s.to_string(), kind.to_string(), String::new(), "attempts ran out".into()),
        SagaEvent::SagaDeadlinePassed {} => saga("saga deadline passed".into()),
        SagaEvent::SagaCompleted {} => saga("completed".into()),
        SagaEvent::SagaCompensated {} => saga("compensated".into()),
        SagaEvent::SagaStuck { step: s, kind, reason } => (s.to_string(), kind.to_string(), String::new(), format!("stuck: {reason}")),
        SagaEvent::SagaAborted { reason } => saga(format!("aborted: {reason}")),
        SagaEvent::OperatorIntervened { verb, reason } => saga(format!("operator {verb:?}: {reason}").to_lowercase()),
        SagaEvent::InputIgnored { input, reason } => saga(format!("ignored {input}: {reason}")),
    };
    Row { elapsed_ms: recorded.at_ms - start_ms, step, kind, attempt, outcome }
}

fn failed(error: &Option<String>) -> String {
    match error {
        Some(e) => format!("failed: {e}"),
        None => "failed".into(),
    }
}

/// The whole timeline as aligned text, headed by the saga's id and status.
pub fn render(id: SagaId, state: Option<&SagaState>, log: &[Recorded]) -> String {
    let status = state.map_or("unknown".to_string(), |s| s.status.to_string());
    render_with_status(id, &status, log)
}

/// [`render`] for a caller that knows the status but not the state (the
/// `jetsaga sagas show` client reads it from the ops API).
pub fn render_with_status(id: SagaId, status: &str, log: &[Recorded]) -> String {
    let mut out = String::new();
    let total = log.last().map_or(0, |l| l.at_ms) - log.first().map_or(0, |f| f.at_ms);
    let _ = writeln!(out, "saga {id}: {status} after {total} ms, {} events", log.len());
    let rows = rows(log);
    let width = |f: fn(&Row) -> usize, title: &str| rows.iter().map(f).max().unwrap_or(0).max(title.len());
    let (ws, wk, wa) = (width(|r| r.step.len(), "step"), width(|r| r.kind.len(), "kind"), width(|r| r.attempt.len(), "attempt"));
    let _ = writeln!(out, "  {:>8}  {:ws$}  {:wk$}  {:>wa$}  outcome", "elapsed", "step", "kind", "attempt");
    for r in rows {
        let elapsed = format!("{} ms", r.elapsed_ms);
        let _ = writeln!(out, "  {elapsed:>8}  {:ws$}  {:wk$}  {:>wa$}  {}", r.step, r.kind, r.attempt, r.outcome);
    }
    out
}
