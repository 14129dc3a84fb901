//! Recovery, when an engine starts: every unfinished saga is folded from
//! its log and handed to [`saga::recover`], the same pure step the
//! simulator runs after its crashes. The grace of each attempt in flight is
//! recorded (one group commit per page), then its command is re-sent with
//! the same idempotency key and its deadline set.

use std::collections::HashSet;

use super::{batch, Engine, EngineError};
use crate::saga::{self, Recovery, SagaId, Status};
use crate::store::{Append, AppendOutcome, EventStore, ListFilter, PAGE_SIZE_MAX};
use crate::transport::Transport;

impl<S: EventStore + Clone, T: Transport> Engine<S, T> {
    /// Folds every unfinished saga, records the grace of each attempt in
    /// flight, and carries out what is outstanding. A saga another engine
    /// changed meanwhile (its append conflicts) is left to that engine.
    pub(super) async fn recover(&mut self) -> Result<(), EngineError> {
        let filter = ListFilter { statuses: vec![Status::Running, Status::Compensating], ..ListFilter::default() };
        let ack_wait_ms = super::millis(self.config.ack_wait);
        let recovery = Recovery { now_ms: self.clock.now_ms(), ack_wait_ms };
        let (mut cursor, mut recovered) = (None, 0usize);
        loop {
            let page = self.store.list(&filter, cursor, PAGE_SIZE_MAX).await?;
            let mut handled = Vec::new();
            for summary in &page.sagas {
                if let Some((def, state)) = self.load(summary.saga_id).await? {
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
            let mut effects = Vec::new();
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
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        tracing::info!(recovered, "recovery done");
        Ok(())
    }
}
