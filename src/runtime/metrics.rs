//! What the engine counts and measures, for `/metrics`.
//!
//! Plain counters are atomics; labelled families and histograms sit behind
//! one mutex each (the engine is their only writer, a scrape their only
//! reader). Labels come from definitions only (saga type, step name, kind,
//! status), never from saga ids, so the number of series stays bounded.
//! The engine feeds [`Metrics::observe_commit`] with every committed saga's
//! new events and the state after them; the ops API renders the lot as
//! Prometheus text.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use crate::definition::{Kind, SagaDefinition};
use crate::saga::{Recorded, SagaEvent, SagaState};

/// Bucket upper bounds (seconds) of step durations: a participant's work
/// plus two broker hops, from milliseconds up to a long timeout.
pub const STEP_SECONDS_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Bucket upper bounds (seconds) of one group commit in the store.
pub const APPEND_SECONDS_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// (saga type, step, kind): the labels of per-step series.
pub type StepKey = (String, String, &'static str);

/// A histogram with fixed buckets; `counts[i]` holds observations in
/// bucket `i` alone (the exposition makes them cumulative), the last one
/// being `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds, no `+Inf`).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    /// Records one value.
    pub fn observe(&mut self, value: f64) {
        let bucket = self.bounds.iter().position(|&le| value <= le).unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }

    /// `(upper bound, cumulative count)` per bucket, ending with `(+Inf, count)`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        let mut total = 0;
        bounds
            .zip(&self.counts)
            .map(|(le, n)| {
                total += n;
                (le, total)
            })
            .collect()
    }

    /// Sum of the values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The labelled series, copied out for a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Families {
    /// `saga_started` by saga type.
    pub started: BTreeMap<String, u64>,
    /// Terminal events by (saga type, status).
    pub finished: BTreeMap<(String, &'static str), u64>,
    /// `retry_scheduled` by step.
    pub retries: BTreeMap<StepKey, u64>,
    /// `attempt_timed_out` by step.
    pub timeouts: BTreeMap<StepKey, u64>,
    /// First `command_sent` to conclusive reply, by step.
    pub step_seconds: BTreeMap<StepKey, Histogram>,
}

/// Counters the engine keeps (exported as metrics by the ops API).
#[derive(Debug)]
pub struct Metrics {
    /// Inbound messages kept as poison.
    pub poison: AtomicU64,
    /// Inputs recorded as ignored.
    pub ignored: AtomicU64,
    /// Inputs ignored and not recorded: their saga's log already holds
    /// `saga::IGNORED_RECORDED_MAX` of them.
    pub ignored_unrecorded: AtomicU64,
    /// Commands published.
    pub commands: AtomicU64,
    /// Group commits.
    pub appends: AtomicU64,
    /// Deadlines this engine claimed in the store and fired.
    pub deadlines_claimed: AtomicU64,
    /// Claimed deadlines that turned out to be due no more (another engine
    /// had moved the saga on): with claims working this stays 0.
    pub deadlines_stale: AtomicU64,
    /// Loads the saga cache answered.
    pub saga_cache_hits: AtomicU64,
    /// Loads that had to fold a log from the store (a claimed deadline or
    /// an operator verb always does: they act on what the store holds).
    pub saga_cache_misses: AtomicU64,
    families: Mutex<Families>,
    append_seconds: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            poison: AtomicU64::default(),
            ignored: AtomicU64::default(),
            ignored_unrecorded: AtomicU64::default(),
            commands: AtomicU64::default(),
            appends: AtomicU64::default(),
            deadlines_claimed: AtomicU64::default(),
            deadlines_stale: AtomicU64::default(),
            saga_cache_hits: AtomicU64::default(),
            saga_cache_misses: AtomicU64::default(),
            families: Mutex::default(),
            append_seconds: Mutex::new(Histogram::new(APPEND_SECONDS_BUCKETS)),
        }
    }
}

impl Metrics {
    /// Counts what one committed append says happened: `events` were just
    /// committed and folded into `state` (the saga's state after them), whose
    /// tracks know when each (step, kind) was first sent, which a concluding
    /// event turns into a step duration.
    pub fn observe_commit(&self, def: &SagaDefinition, state: &SagaState, events: &[Recorded]) {
        let saga_type = state.saga_type.as_str();
        let mut families = self.families.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for recorded in events {
            let key = |step: &dyn std::fmt::Display, kind: Kind| (saga_type.to_owned(), step.to_string(), kind.as_str());
            match &recorded.event {
                SagaEvent::SagaStarted { .. } => *families.started.entry(saga_type.to_owned()).or_default() += 1,
                SagaEvent::SagaCompleted {} | SagaEvent::SagaCompensated {} | SagaEvent::SagaAborted { .. } => {
                    let status = terminal_status(&recorded.event);
                    *families.finished.entry((saga_type.to_owned(), status)).or_default() += 1;
                }
                SagaEvent::RetryScheduled { step, kind, .. } => *families.retries.entry(key(step, *kind)).or_default() += 1,
                SagaEvent::AttemptTimedOut { step, kind, .. } => *families.timeouts.entry(key(step, *kind)).or_default() += 1,
                SagaEvent::StepSucceeded { step, kind, .. } | SagaEvent::StepFailed { step, kind, .. } => {
                    let first_sent = def.step_index(step.as_str()).and_then(|i| state.steps.get(i)?.track(*kind).first_sent_ms);
                    if let Some(first_ms) = first_sent {
                        let seconds = (recorded.at_ms - first_ms).max(0) as f64 / 1000.0;
                        families
                            .step_seconds
                            .entry(key(step, *kind))
                            .or_insert_with(|| Histogram::new(STEP_SECONDS_BUCKETS))
                            .observe(seconds);
                    }
                }
                _ => {}
            }
        }
    }

    /// Counts one load of a saga: answered by the cache, or not.
    pub fn observe_cache(&self, hit: bool) {
        let counter = if hit { &self.saga_cache_hits } else { &self.saga_cache_misses };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The saga cache's hit rate so far (hits ÷ loads; 0 before any load).
    pub fn saga_cache_hit_rate(&self) -> f64 {
        let hits = self.saga_cache_hits.load(std::sync::atomic::Ordering::Relaxed);
        let misses = self.saga_cache_misses.load(std::sync::atomic::Ordering::Relaxed);
        if hits + misses == 0 {
            return 0.0;
        }
        hits as f64 / (hits + misses) as f64
    }

    /// Records how long one `store.append` took.
    pub fn observe_append(&self, took: Duration) {
        self.append_seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).observe(took.as_secs_f64());
    }

    /// A copy of the labelled series.
    pub fn families(&self) -> Families {
        self.families.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A copy of the append-duration histogram.
    pub fn append_seconds(&self) -> Histogram {
        self.append_seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The `status` label of a terminal event.
fn terminal_status(event: &SagaEvent) -> &'static str {
    match event {
        SagaEvent::SagaCompleted {} => "completed",
        SagaEvent::SagaCompensated {} => "compensated",
        _ => "aborted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), vec![(0.1, 2), (1.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 3.65).abs() < 1e-9);
    }
}
