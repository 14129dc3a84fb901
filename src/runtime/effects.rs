//! The engine's second stage: a committed batch's commands are published,
//! then its inbound messages acknowledged and its callers answered, while
//! the first stage already decides and commits the next batch.
//!
//! Why it is safe: a batch reaches this stage only after its events are
//! committed, so everything it publishes is already in the log (the log is
//! the outbox; a crash here is recovery's to finish). Batches leave the
//! stage in commit order, one at a time, so a saga's commands are published
//! in the order they were committed, and a message is acknowledged only
//! after the commands it caused are published (a crash before that
//! redelivers it, and `decide` finds it already handled). The queue
//! between the stages holds at most [`EFFECTS_QUEUE_MAX`] batches: when
//! the broker is slower than the database, the first stage waits.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::batch::{answer_item, Answer, Work};
use super::Metrics;
use crate::saga::{Command, SagaId, Status};
use crate::transport::Transport;

/// Most committed batches waiting to be published before the engine waits.
pub const EFFECTS_QUEUE_MAX: usize = 4;

/// A committed batch's work for the second stage.
#[derive(Debug, Default)]
pub(super) struct Committed {
    /// The commands its events sent, in commit order.
    pub(super) commands: Vec<Command>,
    /// Who waits for it, with the answer and the saga's status after it.
    pub(super) answers: Vec<(Work, Answer, SagaId, Status)>,
}

/// The running second stage.
pub(super) struct EffectsStage<T> {
    queue: mpsc::Sender<Committed>,
    task: JoinHandle<()>,
    transport: Arc<T>,
    metrics: Arc<Metrics>,
}

impl<T: Transport> EffectsStage<T> {
    /// Starts the stage over `transport` (on the current tokio runtime).
    pub(super) fn start(transport: Arc<T>, metrics: Arc<Metrics>) -> Self {
        let (queue, batches) = mpsc::channel(EFFECTS_QUEUE_MAX);
        let task = tokio::spawn(run(transport.clone(), metrics.clone(), batches));
        Self { queue, task, transport, metrics }
    }

    /// Hands a committed batch over; waits while [`EFFECTS_QUEUE_MAX`]
    /// batches are ahead of it.
    pub(super) async fn submit(&self, committed: Committed) {
        if committed.commands.is_empty() && committed.answers.is_empty() {
            return;
        }
        if let Err(mpsc::error::SendError(committed)) = self.queue.send(committed).await {
            // Only if the stage's task panicked: carry the batch out here.
            tracing::error!("the effects stage is gone; publishing in the engine");
            carry_out(&*self.transport, &self.metrics, committed).await;
        }
    }

    /// Carries out every batch handed over, then stops.
    pub(super) async fn finish(self) {
        drop(self.queue);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the effects stage failed");
        }
    }
}

/// The stage's loop: batch after batch, in the order they were committed.
async fn run<T: Transport>(transport: Arc<T>, metrics: Arc<Metrics>, mut batches: mpsc::Receiver<Committed>) {
    while let Some(committed) = batches.recv().await {
        carry_out(&*transport, &metrics, committed).await;
    }
}

/// Publishes a batch's commands concurrently (their events are durable,
/// and a lost one becomes a timeout and a retry), then answers its callers.
async fn carry_out<T: Transport>(transport: &T, metrics: &Metrics, committed: Committed) {
    let sends = committed.commands.iter().map(|c| async move { (c, transport.send(c).await) });
    for (command, result) in futures_util::future::join_all(sends).await {
        metrics.commands.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = result {
            // The deadline is set: the timeout turns this into a retry.
            tracing::warn!(saga_id = %command.saga_id, step = %command.step, kind = %command.kind, attempt = command.attempt, %error, "command not published");
        }
    }
    crate::crash_point!("engine-after-publish");
    for (item, answer, saga_id, status) in committed.answers {
        answer_item(item, answer, saga_id, status);
    }
}
