//! Faults: what the simulated world does differently at each decision point.
//!
//! A run consults a [`Chooser`] at every point where the world could
//! misbehave. [`Replay`] plays a fixed list (what proptest generates and
//! the shrinker minimises); [`Explore`] draws from a seed and records what
//! it drew, so a failing exploration becomes a list to shrink.

use std::fmt;

use super::rng::Rng;

/// A kind of decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A message on its way (command to a participant, reply to the orchestrator).
    Deliver,
    /// A participant handling a command it has no recorded reply for.
    Handle,
    /// The orchestrator between deciding and committing, or after committing.
    Process,
    /// An operator looking at a saga in flight.
    Operator,
    /// An operator looking at a saga that just got stuck.
    Stuck,
}

/// What happens at one decision point. `None` means "nothing unusual";
/// a fault that makes no sense at a point counts as `None` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Nothing unusual.
    None,
    /// Deliver: the message is lost.
    Drop,
    /// Deliver: the message arrives twice.
    Duplicate,
    /// Deliver: the message arrives this many ms late (reordering it).
    Delay(u32),
    /// Deliver (a reply): a forged reply arrives as well (0: wrong
    /// participant, 1: unsent attempt, 2: unknown saga, 3: flipped status).
    Forge(u8),
    /// Handle: the participant refuses the command.
    Fail,
    /// Handle: the participant dies before doing anything.
    Silence,
    /// Process: the orchestrator crashes before committing.
    Crash,
    /// Process: the orchestrator crashes after committing, before its effects.
    CrashAfterCommit,
    /// Operator: retry the saga.
    Retry,
    /// Operator: retry the saga through another engine of the deployment
    /// (this orchestrator's cached copy goes stale).
    RetryElsewhere,
    /// Operator: force compensation.
    Compensate,
    /// Operator: abort.
    Abort,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::Drop => f.write_str("drop"),
            Fault::Duplicate => f.write_str("duplicate"),
            Fault::Delay(ms) => write!(f, "delay {ms}ms"),
            Fault::Forge(k) => write!(f, "forge #{k}"),
            Fault::Fail => f.write_str("fail"),
            Fault::Silence => f.write_str("silence"),
            Fault::Crash => f.write_str("crash before commit"),
            Fault::CrashAfterCommit => f.write_str("crash after commit"),
            Fault::Retry => f.write_str("operator retry"),
            Fault::RetryElsewhere => f.write_str("operator retry through another engine"),
            Fault::Compensate => f.write_str("operator compensate"),
            Fault::Abort => f.write_str("operator abort"),
        }
    }
}

/// Picks the fault for each decision point, in the order the run meets them.
pub trait Chooser {
    /// The fault for the next decision point, which is of kind `point`.
    fn choose(&mut self, point: Point) -> Fault;
}

/// Plays a fixed list; past its end every point gets `Fault::None`.
#[derive(Debug, Clone)]
pub struct Replay {
    faults: Vec<Fault>,
    next: usize,
}

impl Replay {
    /// A chooser that plays `faults` in order.
    pub fn new(faults: Vec<Fault>) -> Self {
        Self { faults, next: 0 }
    }

    /// A chooser for sparse faults: `(decision, fault)` pairs, `None`
    /// everywhere else. Removing one pair leaves the others in place, which
    /// is what lets proptest shrink a schedule well.
    pub fn sparse(faults: &[(usize, Fault)]) -> Self {
        let len = faults.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        let mut dense = vec![Fault::None; len];
        for &(i, fault) in faults {
            dense[i] = fault;
        }
        Self::new(dense)
    }

    /// How many entries the run consumed.
    pub fn consumed(&self) -> usize {
        self.next
    }
}

impl Chooser for Replay {
    fn choose(&mut self, _point: Point) -> Fault {
        let fault = self.faults.get(self.next).copied().unwrap_or(Fault::None);
        self.next += 1;
        fault
    }
}

/// How often each fault happens when exploring (each in `[0, 1]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// A message is lost.
    pub drop: f64,
    /// A message arrives twice.
    pub duplicate: f64,
    /// A message is late (up to `delay_max_ms`).
    pub delay: f64,
    /// Longest extra delay.
    pub delay_max_ms: u32,
    /// A forged reply arrives.
    pub forge: f64,
    /// A participant refuses a command.
    pub fail: f64,
    /// A participant dies before acting.
    pub silence: f64,
    /// The orchestrator crashes while processing an input.
    pub crash: f64,
    /// An operator acts on a stuck saga.
    pub operator_on_stuck: f64,
    /// An operator compensates or aborts a saga in flight.
    pub operator_in_flight: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            drop: 0.05,
            duplicate: 0.05,
            delay: 0.1,
            delay_max_ms: 3_000,
            forge: 0.03,
            fail: 0.1,
            silence: 0.05,
            crash: 0.01,
            operator_on_stuck: 0.6,
            operator_in_flight: 0.01,
        }
    }
}

/// Draws faults from a seed at the given rates and records every draw.
#[derive(Debug, Clone)]
pub struct Explore {
    rng: Rng,
    rates: Rates,
    drawn: Vec<Fault>,
}

impl Explore {
    /// An explorer for `seed`.
    pub fn new(seed: u64, rates: Rates) -> Self {
        Self { rng: Rng::new(seed), rates, drawn: Vec::new() }
    }

    /// Everything drawn so far, one entry per decision point: replaying it
    /// with [`Replay`] repeats the run exactly.
    pub fn into_drawn(self) -> Vec<Fault> {
        self.drawn
    }

    fn draw(&mut self, point: Point) -> Fault {
        let r = self.rates;
        let rng = &mut self.rng;
        match point {
            Point::Deliver => {
                let roll = rng.unit();
                if roll < r.drop {
                    Fault::Drop
                } else if roll < r.drop + r.duplicate {
                    Fault::Duplicate
                } else if roll < r.drop + r.duplicate + r.delay {
                    Fault::Delay(1 + rng.below(u64::from(r.delay_max_ms.max(1))) as u32)
                } else if roll < r.drop + r.duplicate + r.delay + r.forge {
                    Fault::Forge(rng.below(4) as u8)
                } else {
                    Fault::None
                }
            }
            Point::Handle => {
                let roll = rng.unit();
                if roll < r.fail {
                    Fault::Fail
                } else if roll < r.fail + r.silence {
                    Fault::Silence
                } else {
                    Fault::None
                }
            }
            Point::Process if rng.chance(r.crash) => {
                if rng.chance(0.5) {
                    Fault::Crash
                } else {
                    Fault::CrashAfterCommit
                }
            }
            Point::Process => Fault::None,
            Point::Operator if rng.chance(r.operator_in_flight) => [Fault::Compensate, Fault::Abort][rng.below(2) as usize],
            Point::Operator => Fault::None,
            Point::Stuck if rng.chance(r.operator_on_stuck) => {
                [Fault::Retry, Fault::Retry, Fault::RetryElsewhere, Fault::RetryElsewhere, Fault::Compensate, Fault::Abort]
                    [rng.below(6) as usize]
            }
            Point::Stuck => Fault::None,
        }
    }
}

impl Chooser for Explore {
    fn choose(&mut self, point: Point) -> Fault {
        let fault = self.draw(point);
        self.drawn.push(fault);
        fault
    }
}
