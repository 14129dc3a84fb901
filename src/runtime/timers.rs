//! One timer structure for every saga's deadline: no task per saga.
//!
//! Each saga has at most one armed deadline (the phase it is in names
//! it); arming again replaces it. The engine sleeps until the earliest.

use std::collections::{BTreeSet, HashMap};

use crate::saga::SagaId;

/// Deadlines by time and by saga.
#[derive(Debug, Default)]
pub struct Timers {
    by_time: BTreeSet<(i64, SagaId)>,
    by_saga: HashMap<SagaId, i64>,
}

impl Timers {
    /// Wake `saga_id` at `at_ms`, replacing its earlier deadline.
    pub fn arm(&mut self, saga_id: SagaId, at_ms: i64) {
        self.disarm(saga_id);
        self.by_time.insert((at_ms, saga_id));
        self.by_saga.insert(saga_id, at_ms);
    }

    /// Forget `saga_id`'s deadline.
    pub fn disarm(&mut self, saga_id: SagaId) {
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

    /// Armed deadlines.
    pub fn len(&self) -> usize {
        self.by_saga.len()
    }

    /// Whether none is armed.
    pub fn is_empty(&self) -> bool {
        self.by_saga.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rearming_replaces_and_due_ones_pop_in_order() {
        let (a, b) = (SagaId::from_u128(1), SagaId::from_u128(2));
        let mut timers = Timers::default();
        timers.arm(a, 50);
        timers.arm(b, 20);
        timers.arm(a, 10);
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_ms(), Some(10));
        assert_eq!(timers.pop_due(15, 10), vec![a]);
        assert_eq!(timers.pop_due(15, 10), vec![]);
        timers.disarm(b);
        assert!(timers.is_empty());
    }
}
