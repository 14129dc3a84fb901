//! Retention: a background task that deletes finished sagas and poison
//! records older than their horizon, so nothing fills the disk. Running
//! and stuck sagas are never deleted. Every `serve` process may run it: the
//! deletes are idempotent.

use std::future::Future;
use std::time::Duration;

use super::Clock;
use crate::store::EventStore;

/// How often the task looks for what to delete, at most: a shorter
/// horizon sweeps more often (a quarter of it, at least every
/// [`RETENTION_SWEEP_EVERY_MIN`]).
pub const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The shortest pause between two sweeps.
pub const RETENTION_SWEEP_EVERY_MIN: Duration = Duration::from_millis(250);
/// Most sagas (or poison records) deleted per store call.
pub const RETENTION_CHUNK_MAX: u32 = 500;
/// How long finished sagas are kept, by default.
pub const RETAIN_FINISHED_DEFAULT: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long poison records are kept, by default.
pub const RETAIN_POISON_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long what is kept; `None`: forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished sagas (completed, compensated, aborted), from their last event.
    pub finished: Option<Duration>,
    /// Poison records, from when they arrived.
    pub poison: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Self { finished: Some(RETAIN_FINISHED_DEFAULT), poison: Some(RETAIN_POISON_DEFAULT) }
    }
}

impl Retention {
    /// Keep everything forever.
    pub fn forever() -> Self {
        Self { finished: None, poison: None }
    }

    /// The pause between two sweeps: a quarter of the shortest horizon,
    /// within [`RETENTION_SWEEP_EVERY_MIN`]..=[`RETENTION_SWEEP_EVERY`].
    pub fn sweep_every(&self) -> Duration {
        let shortest = [self.finished, self.poison].into_iter().flatten().min().unwrap_or(RETENTION_SWEEP_EVERY);
        (shortest / 4).clamp(RETENTION_SWEEP_EVERY_MIN, RETENTION_SWEEP_EVERY)
    }
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Finished sagas deleted.
    pub sagas: u64,
    /// Poison records deleted.
    pub poison: u64,
}

/// Deletes, in chunks, everything older than its horizon at `now_ms`.
pub async fn sweep<S: EventStore>(store: &S, retention: Retention, now_ms: i64) -> Swept {
    let mut swept = Swept::default();
    if let Some(keep) = retention.finished {
        swept.sagas = chunked("finished sagas", now_ms - millis(keep), |before, limit| store.forget_finished(before, limit)).await;
    }
    if let Some(keep) = retention.poison {
        swept.poison = chunked("poison records", now_ms - millis(keep), |before, limit| store.forget_poison(before, limit)).await;
    }
    swept
}

/// Calls `forget` until a chunk comes back short; what went in all.
async fn chunked<F, Fut>(what: &str, before_ms: i64, forget: F) -> u64
where
    F: Fn(i64, u32) -> Fut,
    Fut: Future<Output = Result<u64, crate::store::StoreError>>,
{
    let mut total = 0;
    loop {
        match forget(before_ms, RETENTION_CHUNK_MAX).await {
            Ok(gone) => {
                total += gone;
                if gone < u64::from(RETENTION_CHUNK_MAX) {
                    return total;
                }
            }
            Err(error) => {
                tracing::warn!(%error, what, "retention: cannot delete now; trying at the next sweep");
                return total;
            }
        }
    }
}

/// Sweeps every [`Retention::sweep_every`] until `shutdown` resolves.
pub async fn run<S: EventStore>(store: S, retention: Retention, clock: Clock, shutdown: impl Future<Output = ()> + Send) {
    if retention == Retention::forever() {
        return shutdown.await;
    }
    tokio::pin!(shutdown);
    loop {
        let swept = sweep(&store, retention, clock.now_ms()).await;
        if swept != Swept::default() {
            tracing::info!(sagas = swept.sagas, poison = swept.poison, "retention: deleted what is past its horizon");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(retention.sweep_every()) => {}
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_horizons_sweep_more_often() {
        assert_eq!(Retention::default().sweep_every(), RETENTION_SWEEP_EVERY);
        let short = Retention { finished: Some(Duration::from_secs(2)), poison: None };
        assert_eq!(short.sweep_every(), Duration::from_millis(500));
        let tiny = Retention { finished: None, poison: Some(Duration::from_millis(10)) };
        assert_eq!(tiny.sweep_every(), RETENTION_SWEEP_EVERY_MIN);
    }
}
