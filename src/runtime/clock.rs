//! Wall-clock milliseconds that follow tokio's clock, so tests can pause
//! and advance time while the engine's deadlines still line up.
//!
//! The one place that reads the system clock: everything else is handed a
//! [`Clock`] (the engine, the relay, poison, the ops API).

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, advancing with `tokio::time`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: i64,
    base: Instant,
}

impl Clock {
    /// A clock reading the system time now.
    pub fn system() -> Self {
        let base_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self { base_ms, base: Instant::now() }
    }

    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.base.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.base_ms.saturating_add(elapsed)
    }

    /// Now, as a tokio instant: for measuring how long something took.
    pub fn instant(&self) -> Instant {
        Instant::now()
    }

    /// The tokio instant at which the clock reads `at_ms`.
    pub fn instant_at(&self, at_ms: i64) -> Instant {
        let offset = u64::try_from(at_ms.saturating_sub(self.base_ms)).unwrap_or(0);
        self.base + std::time::Duration::from_millis(offset)
    }
}
