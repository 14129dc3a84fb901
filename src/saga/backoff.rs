//! Exponential backoff with jitter, as pure arithmetic.
//!
//! The jitter sample is an input, so a decision never rolls dice: the
//! chosen instant is recorded in a `retry_scheduled` event and replay reads
//! it back.

use crate::definition::RetryPolicy;

/// The delay after the `used`-th attempt of a budget ended (1-based):
/// `backoff * 2^(used-1)`, capped at `max_backoff`, then "equal jitter":
/// half of it fixed, half scaled by `jitter` in `[0, 1)`.
pub fn delay_ms(policy: &RetryPolicy, used: u32, jitter: f64) -> u64 {
    let exponent = used.saturating_sub(1).min(32);
    let uncapped = policy.backoff_ms.saturating_mul(1u64 << exponent);
    let capped = uncapped.min(policy.backoff_max_ms.max(policy.backoff_ms));
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    let half = capped / 2;
    half + ((capped - half) as f64 * jitter) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: RetryPolicy = RetryPolicy { attempts_max: 5, backoff_ms: 200, backoff_max_ms: 5_000 };

    #[test]
    fn doubles_then_caps() {
        assert_eq!(delay_ms(&POLICY, 1, 1.0), 200);
        assert_eq!(delay_ms(&POLICY, 2, 1.0), 400);
        assert_eq!(delay_ms(&POLICY, 3, 1.0), 800);
        assert_eq!(delay_ms(&POLICY, 10, 1.0), 5_000);
        assert_eq!(delay_ms(&POLICY, 1, 0.0), 100);
        assert_eq!(delay_ms(&POLICY, u32::MAX, 0.5), 3_750);
    }

    proptest! {
        #[test]
        fn stays_between_half_and_the_cap(used in 1u32..100, jitter in any::<f64>(), base in 0u64..100_000, cap in 0u64..1_000_000) {
            let policy = RetryPolicy { attempts_max: 1, backoff_ms: base, backoff_max_ms: cap };
            let d = delay_ms(&policy, used, jitter);
            let ceiling = cap.max(base);
            prop_assert!(d <= ceiling);
            prop_assert!(d >= base.min(ceiling) / 2);
        }

        #[test]
        fn never_shrinks_as_attempts_grow(used in 1u32..60, jitter in 0.0f64..1.0) {
            prop_assert!(delay_ms(&POLICY, used + 1, jitter) >= delay_ms(&POLICY, used, jitter));
        }
    }
}
