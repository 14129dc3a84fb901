//! Generated saga definitions: 1–8 steps, a random pivot, random timeouts
//! and attempts, for exploring shapes nobody wrote by hand.

use super::rng::Rng;
use crate::definition::{ActionName, Participant, RetryPolicy, SagaDefinition, SagaType, StepDefinition, StepName};

/// The free parameters of a generated definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Per step: (timeout ms, max attempts).
    pub steps: Vec<(u64, u32)>,
    /// Index of the pivot (the first step without compensation); `None`
    /// or an index past the end: every step compensates.
    pub pivot: Option<usize>,
    /// First backoff delay.
    pub backoff_ms: u64,
}

/// Most steps a generated definition has.
pub const STEPS_MAX: usize = 8;

impl Shape {
    /// A random shape drawn from `rng`.
    pub fn random(rng: &mut Rng) -> Shape {
        let n = 1 + rng.below(STEPS_MAX as u64) as usize;
        let steps = (0..n).map(|_| (100 + rng.below(1_900), 1 + rng.below(4) as u32)).collect();
        let pivot = (!rng.chance(0.25)).then(|| rng.below(n as u64) as usize);
        Shape { steps, pivot, backoff_ms: 10 + rng.below(200) }
    }

    /// The definition this shape describes.
    pub fn definition(&self) -> SagaDefinition {
        let name = |prefix: &str, i: usize| format!("{prefix}{i}");
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, &(timeout_ms, attempts_max))| StepDefinition {
                name: parse(StepName::parse(&name("step_", i))),
                participant: parse(Participant::parse(&name("service-", i))),
                action: parse(ActionName::parse("do")),
                compensation: self.pivot.is_none_or(|p| i < p).then(|| parse(ActionName::parse("undo"))),
                timeout_ms: timeout_ms.max(1),
                retry: RetryPolicy { attempts_max: attempts_max.max(1), backoff_ms: self.backoff_ms, backoff_max_ms: self.backoff_ms * 8 },
                group: None,
                when: None,
                payload: None,
            })
            .collect();
        SagaDefinition {
            name: parse(SagaType::parse("generated")),
            version: 1,
            description: format!("{self:?}"),
            steps,
            deadline_ms: None,
            content_hash: String::new(),
            source: String::new(),
        }
    }
}

/// The names above are built to match their patterns.
fn parse<T>(result: Result<T, crate::definition::NameError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => unreachable!("generated name is valid: {e}"),
    }
}
