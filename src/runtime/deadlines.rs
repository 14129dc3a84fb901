//! The engine's local wake-up hints: one structure for every saga's
//! deadline, no task per saga.
//!
//! The store is the truth: every deadline is mirrored in the `sagas`
//! projection and claimed there when due, so an engine that drops a hint
//! (over [`LOCAL_DEADLINES_MAX`], or after a restart) still fires it at its
//! next claim poll. A hint only wakes the engine sooner. Each saga has at
//! most one; setting it again replaces it.

use std::collections::{BTreeSet, HashMap};

use crate::saga::SagaId;

/// Most wake-up hints one engine keeps. Past it, the latest deadlines are
/// left to the claim poll alone.
pub const LOCAL_DEADLINES_MAX: usize = 100_000;

/// Deadlines by time and by saga.
#[derive(Debug)]
pub struct Deadlines {
    by_time: BTreeSet<(i64, SagaId)>,
    by_saga: HashMap<SagaId, i64>,
    max: usize,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self::with_max(LOCAL_DEADLINES_MAX)
    }
}

impl Deadlines {
    /// Hints for at most `max` sagas.
    pub fn with_max(max: usize) -> Self {
        Self { by_time: BTreeSet::new(), by_saga: HashMap::new(), max }
    }

    /// Wake `saga_id` at `at_ms`, replacing its earlier deadline. When full,
    /// the latest deadline of all is the one left out.
    pub fn set(&mut self, saga_id: SagaId, at_ms: i64) {
        self.clear(saga_id);
        if self.by_saga.len() >= self.max {
            match self.by_time.last().copied() {
                Some((latest, id)) if latest > at_ms => self.clear(id),
                _ => return,
            }
        }
        self.by_time.insert((at_ms, saga_id));
        self.by_saga.insert(saga_id, at_ms);
    }

    /// Forget `saga_id`'s deadline.
    pub fn clear(&mut self, saga_id: SagaId) {
        if let Some(at) = self.by_saga.remove(&saga_id) {
            self.by_time.remove(&(at, saga_id));
        }
    }

    /// The earliest deadline.
    pub fn next_ms(&self) -> Option<i64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns up to `max` sagas whose deadline is at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64, max: usize) -> Vec<SagaId> {
        let mut due = Vec::new();
        while due.len() < max {
            match self.by_time.first() {
                Some(&(at, id)) if at <= now_ms => {
                    self.by_time.remove(&(at, id));
                    self.by_saga.remove(&id);
                    due.push(id);
                }
                _ => break,
            }
        }
        due
    }

    /// Deadlines held.
    pub fn len(&self) -> usize {
        self.by_saga.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_saga.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_again_replaces_and_due_ones_pop_in_order() {
        let (a, b) = (SagaId::from_u128(1), SagaId::from_u128(2));
        let mut deadlines = Deadlines::default();
        deadlines.set(a, 50);
        deadlines.set(b, 20);
        deadlines.set(a, 10);
        assert_eq!(deadlines.len(), 2);
        assert_eq!(deadlines.next_ms(), Some(10));
        assert_eq!(deadlines.pop_due(15, 10), vec![a]);
        assert_eq!(deadlines.pop_due(15, 10), vec![]);
        deadlines.clear(b);
        assert!(deadlines.is_empty());
    }

    #[test]
    fn when_full_the_latest_deadline_is_left_to_the_claim_poll() {
        let (a, b, c) = (SagaId::from_u128(1), SagaId::from_u128(2), SagaId::from_u128(3));
        let mut deadlines = Deadlines::with_max(2);
        deadlines.set(a, 10);
        deadlines.set(b, 30);
        deadlines.set(c, 20);
        assert_eq!(deadlines.len(), 2);
        assert_eq!(deadlines.pop_due(100, 10), vec![a, c]);
        deadlines.set(a, 10);
        deadlines.set(b, 30);
        deadlines.set(c, 40);
        assert_eq!(deadlines.pop_due(100, 10), vec![a, b]);
    }
}
