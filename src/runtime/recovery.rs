//! Recovery, when an engine starts: every unfinished saga is folded from
//! its log and handed to [`saga::recover`], the same pure step the
//! simulator runs after its crashes. The grace of each attempt in flight is
//! recorded, then its command re-sent with the same idempotency key and its
//! deadline set.
//!
//! Page by page ([`LOGS_PAGE_MAX`] sagas): one query reads a page of
//! sagas with their events (`EventStore::logs_in_status`), one group
//! commit records the page's graces, and the page's commands go out
//! concurrently. The next page is read while the current one is
//! committed and its commands published, so the database read, the
//! database write and the broker overlap.

use std::collections::HashSet;

use super::{batch, Engine, EngineError};
use crate::saga::{self, Recorded, Recovery, SagaId, Status};
use crate::store::{Append, AppendOutcome, EventStore, LOGS_PAGE_MAX};
use crate::transport::Transport;

/// The statuses of the sagas recovery picks up: those with an attempt in
/// flight or a backoff to finish (a stuck saga waits for an operator).
const UNFINISHED: [Status; 2] = [Status::Running, Status::Compensating];

/// One page: sagas with their whole logs, in id order.
type Page = Vec<(SagaId, Vec<Recorded>)>;

impl<S: EventStore + Clone, T: Transport> Engine<S, T> {
    /// Folds every unfinished saga, records the grace of each attempt in
    /// flight, and carries out what is outstanding. A saga another engine
    /// changed meanwhile (its append conflicts) is left to that engine.
    pub(super) async fn recover(&mut self) -> Result<(), EngineError> {
        let recovery = Recovery { now_ms: self.clock.now_ms(), ack_wait_ms: super::millis(self.config.ack_wait) };
        let mut recovered = 0usize;
        for status in UNFINISHED {
            let mut page = self.store.logs_in_status(status, None, LOGS_PAGE_MAX).await?;
            loop {
                let last = (page.len() >= LOGS_PAGE_MAX as usize).then(|| page.last().map(|(id, _)| *id)).flatten();
                let store = self.store.clone();
                let next = async move {
                    match last {
                        Some(after) => store.logs_in_status(status, Some(after), LOGS_PAGE_MAX).await.map(Some),
                        None => Ok(None),
                    }
                };
                let (next, done) = futures_util::future::join(next, self.recover_page(page, recovery)).await;
                recovered += done?;
                match next? {
                    Some(more) => page = more,
                    None => break,
                }
            }
        }
        tracing::info!(recovered, "recovery done");
        Ok(())
    }

    /// One page: fold, record the graces in one group commit, then re-send
    /// the commands and set the deadlines. How many sagas it recovered.
    async fn recover_page(&mut self, page: Page, recovery: Recovery) -> Result<usize, EngineError> {
        let mut handled = Vec::with_capacity(page.len());
        for (saga_id, events) in page {
            if let Some((def, state)) = self.fold(saga_id, &events).await? {
                let h = saga::recover(&def, state, recovery);
                handled.push((def, h));
            }
        }
        let appends: Vec<Append> = handled
            .iter()
            .filter(|(_, h)| !h.events.is_empty())
            .filter_map(|(def, h)| {
                let state = h.state.as_ref()?;
                let summary = batch::summary(def, state);
                Some(Append { saga_id: state.id, expected_seq: h.expected_seq(), events: h.events.clone(), summary })
            })
            .collect();
        let outcomes = self.store.append(&appends).await?;
        let conflicted: HashSet<SagaId> =
            appends.iter().zip(outcomes).filter(|(_, o)| *o != AppendOutcome::Committed).map(|(a, _)| a.saga_id).collect();
        let (mut effects, mut recovered) = (Vec::new(), 0);
        for (def, h) in handled {
            let Some(state) = h.state else { continue };
            if conflicted.contains(&state.id) {
                continue;
            }
            let id = state.id;
            self.cache.insert(id, (def, state));
            effects.extend(h.effects.into_iter().map(|e| (id, e)));
            recovered += 1;
        }
        crate::crash_point!("recovery-mid");
        self.carry_out(effects).await;
        Ok(recovered)
    }
}
