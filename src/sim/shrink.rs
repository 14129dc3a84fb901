//! Shrinking: from a failing fault list to a minimal one that still fails.
//!
//! Greedy delta debugging: drop ever smaller chunks, then quiet single
//! faults to `None`, then halve delays, keeping each change that still
//! fails, until nothing helps or the budget of runs is spent.

use super::fault::Fault;

/// A failing case: how many sagas ran, and the faults in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Sagas started.
    pub sagas: usize,
    /// One entry per decision point, in the order the run met them.
    pub faults: Vec<Fault>,
}

/// Most runs one shrink may spend.
pub const SHRINK_RUNS_MAX: usize = 3_000;

/// The smallest case found that still `fails`.
pub fn shrink(mut case: Case, fails: &mut dyn FnMut(&Case) -> bool) -> Case {
    let mut budget = SHRINK_RUNS_MAX;
    let mut attempt = |candidate: &Case, budget: &mut usize| {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        fails(candidate)
    };
    loop {
        let before = case.clone();
        for sagas in 1..case.sagas {
            let candidate = Case { sagas, faults: case.faults.clone() };
            if attempt(&candidate, &mut budget) {
                case = candidate;
                break;
            }
        }
        trim_trailing(&mut case.faults);
        let mut chunk = case.faults.len().max(1).next_power_of_two();
        while chunk >= 1 {
            let mut start = 0;
            while start < case.faults.len() {
                let mut candidate = case.clone();
                candidate.faults.drain(start..(start + chunk).min(case.faults.len()));
                if attempt(&candidate, &mut budget) {
                    case = candidate;
                } else {
                    start += chunk;
                }
            }
            chunk /= 2;
        }
        for i in 0..case.faults.len() {
            for simpler in simpler(case.faults[i]) {
                let mut candidate = case.clone();
                candidate.faults[i] = simpler;
                if attempt(&candidate, &mut budget) {
                    case = candidate;
                    break;
                }
            }
        }
        trim_trailing(&mut case.faults);
        if case == before || budget == 0 {
            return case;
        }
    }
}

/// Trailing `None`s change nothing: a replay pads with `None`.
fn trim_trailing(faults: &mut Vec<Fault>) {
    while faults.last() == Some(&Fault::None) {
        faults.pop();
    }
}

fn simpler(fault: Fault) -> Vec<Fault> {
    match fault {
        Fault::None => vec![],
        Fault::Delay(ms) if ms > 1 => vec![Fault::None, Fault::Delay(ms / 2)],
        _ => vec![Fault::None],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_to_the_faults_that_matter() {
        // Fails whenever a Drop and, later, a Crash are both present.
        let mut fails = |c: &Case| {
            let drop = c.faults.iter().position(|f| *f == Fault::Drop);
            let crash = c.faults.iter().rposition(|f| *f == Fault::Crash);
            matches!((drop, crash), (Some(d), Some(k)) if d < k)
        };
        let mut faults = vec![Fault::Delay(900); 40];
        faults[7] = Fault::Drop;
        faults[30] = Fault::Crash;
        let small = shrink(Case { sagas: 3, faults }, &mut fails);
        assert_eq!(small, Case { sagas: 1, faults: vec![Fault::Drop, Fault::Crash] });
    }
}
