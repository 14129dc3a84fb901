//! Named crash points for the fault campaign: `crash_point!("name")` marks
//! a place where a crash is worth trying (after a commit, before a publish,
//! mid-recovery, mid-relay-batch, …). With the `failpoints` feature and the
//! `FAILPOINTS` environment variable (the `fail` crate's syntax, e.g.
//! `FAILPOINTS='engine-after-commit=2%return'`) the process aborts there,
//! as abruptly as a SIGKILL; without the feature the macro is nothing.
//!
//! Every point is listed in [`CRASH_POINTS`], so the campaign can spread
//! its crashes over all of them.

/// Every crash point, in the order a saga meets them.
pub const CRASH_POINTS: &[&str] = &[
    "engine-before-commit",
    "store-between-events-and-projection",
    "engine-after-commit",
    "engine-after-publish",
    "recovery-mid",
    "relay-mid-batch",
    "relay-after-publish-before-checkpoint",
];

/// Aborts the process at the named point when `FAILPOINTS` arms it with
/// `return` (any count or percentage); nothing without the `failpoints` feature.
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| {
            eprintln!("jetsaga: crash point {} reached: aborting", $name);
            std::process::abort()
        });
    };
}

/// The crash points `FAILPOINTS` armed; dropping it disarms them.
#[derive(Debug)]
pub struct Armed {
    #[cfg(feature = "failpoints")]
    _scenario: fail::FailScenario<'static>,
}

/// Arms the crash points `FAILPOINTS` names (panics on a malformed value,
/// as the `fail` crate does); keep the guard for the process's life.
/// Without the `failpoints` feature, nothing is armed.
pub fn arm_from_env() -> Armed {
    Armed {
        #[cfg(feature = "failpoints")]
        _scenario: fail::FailScenario::setup(),
    }
}
