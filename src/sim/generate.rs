//! Generated saga definitions: 1–8 steps, a random pivot, random timeouts
//! and attempts, parallel groups, conditional steps and a saga deadline
//! (SPEC §7), for exploring shapes nobody wrote by hand.

use super::rng::Rng;
use crate::definition::{ActionName, GroupName, Participant, Pointer, RetryPolicy, SagaDefinition, SagaType, StepDefinition, StepName};

/// The free parameters of a generated definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shape {
    /// Per step: (timeout ms, max attempts).
    pub steps: Vec<(u64, u32)>,
    /// Index of the pivot (the first step without compensation); `None`
    /// or an index past the end: every step compensates.
    pub pivot: Option<usize>,
    /// First backoff delay.
    pub backoff_ms: u64,
    /// Bit `i`: step `i` joins the group of step `i - 1`, where the rules
    /// allow it (both on one side of the pivot, neither the pivot).
    pub groups: u64,
    /// Bit `i`: step `i` has a `when`.
    pub conditional: u64,
    /// Bit `i`: the `when` of step `i` holds (`/input/customer`); clear, it
    /// names nothing (`/input/vip`) and the step is skipped.
    pub holds: u64,
    /// The saga deadline, if any.
    pub deadline_ms: Option<u64>,
}

/// Most steps a generated definition has.
pub const STEPS_MAX: usize = 8;

impl Shape {
    /// A random shape drawn from `rng`.
    pub fn random(rng: &mut Rng) -> Shape {
        let n = 1 + rng.below(STEPS_MAX as u64) as usize;
        let steps = (0..n).map(|_| (100 + rng.below(1_900), 1 + rng.below(4) as u32)).collect();
        let pivot = (!rng.chance(0.25)).then(|| rng.below(n as u64) as usize);
        let backoff_ms = 10 + rng.below(200);
        let groups = if rng.chance(0.5) { rng.next_u64() } else { 0 };
        let conditional = if rng.chance(0.3) { rng.next_u64() & rng.next_u64() } else { 0 };
        let holds = rng.next_u64();
        let deadline_ms = rng.chance(0.2).then(|| 200 + rng.below(8_000));
        Shape { steps, pivot, backoff_ms, groups, conditional, holds, deadline_ms }
    }

    /// Whether step `i` joins the group of step `i - 1`.
    fn joins(&self, i: usize) -> bool {
        let side = |j: usize| self.pivot.map(|p| j.cmp(&p));
        let allowed = i > 0 && side(i - 1) == side(i) && side(i) != Some(std::cmp::Ordering::Equal);
        allowed && i < 64 && self.groups & (1 << i) != 0
    }

    /// The definition this shape describes.
    pub fn definition(&self) -> SagaDefinition {
        let name = |prefix: &str, i: usize| format!("{prefix}{i}");
        let mut group_of: Vec<Option<usize>> = vec![None; self.steps.len()];
        for i in 1..self.steps.len() {
            if self.joins(i) {
                let start = group_of[i - 1].unwrap_or(i - 1);
                group_of[i - 1] = Some(start);
                group_of[i] = Some(start);
            }
        }
        let bit = |mask: u64, i: usize| i < 64 && mask & (1 << i) != 0;
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
                group: group_of[i].map(|g| parse(GroupName::parse(&name("group_", g)))),
                when: bit(self.conditional, i).then(|| pointer(if bit(self.holds, i) { "/input/customer" } else { "/input/vip" })),
                payload: None,
            })
            .collect();
        SagaDefinition {
            name: parse(SagaType::parse("generated")),
            version: 1,
            description: format!("{self:?}"),
            steps,
            deadline_ms: self.deadline_ms,
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

/// The pointers above are valid.
fn pointer(text: &str) -> Pointer {
    match Pointer::parse(text) {
        Ok(pointer) => pointer,
        Err(e) => unreachable!("generated pointer is valid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_never_hold_the_pivot_nor_straddle_it() {
        let shape = Shape { steps: vec![(100, 1); 6], pivot: Some(3), groups: u64::MAX, ..Shape::default() };
        let def = shape.definition();
        assert_eq!(def.stages(), [0..3, 3..4, 4..6]);
        let text: String = def.steps.iter().map(|s| format!("{:?}", s.group.as_ref().map(GroupName::as_str))).collect::<Vec<_>>().join(" ");
        assert_eq!(text, "Some(\"group_0\") Some(\"group_0\") Some(\"group_0\") None Some(\"group_4\") Some(\"group_4\")");
    }
}
