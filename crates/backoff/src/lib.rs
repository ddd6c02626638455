//! Exponential backoff with jitter, shared by every reconnect and retry loop of fieldbridge.
//! (Its place in fieldbridge: docs/architecture.md.)
//!
//! Each failure doubles the ceiling (from `min` up to `max`); the delay actually returned is
//! drawn uniformly from `[ceiling / 2, ceiling]` ("equal jitter"), so a fleet of gateways that
//! lost the same broker does not reconnect in lock-step, and no loop ever retries at once.

use std::time::Duration;

/// Exponential backoff state for one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// A backoff starting at `min` and doubling up to `max` (`max` is raised to `min` if lower).
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Self {
            min,
            max,
            ceiling: min,
        }
    }

    /// The delay before the next attempt; each call doubles the next ceiling up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = ceiling.saturating_mul(2).min(self.max);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let half = ceiling_ms / 2;
        Duration::from_millis(fastrand::u64(half..=ceiling_ms))
    }

    /// Call after a success: the next failure starts again from `min`.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }

    /// The ceiling the next delay is drawn under.
    pub fn current_ceiling(&self) -> Duration {
        self.ceiling
    }
}

impl Default for Backoff {
    /// 500 ms doubling up to 30 s: the reconnect policy of every fieldbridge link.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut last_ceiling = Duration::ZERO;
        for _ in 0..20 {
            let ceiling = b.current_ceiling();
            let d = b.next_delay();
            assert!(
                d <= ceiling && d >= ceiling / 2,
                "{d:?} not within {ceiling:?}"
            );
            assert!(ceiling >= last_ceiling);
            last_ceiling = ceiling;
        }
        assert_eq!(b.current_ceiling(), Duration::from_millis(1000));
        b.reset();
        assert_eq!(b.current_ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn never_zero() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay() <= Duration::from_millis(1));
        assert_eq!(b.current_ceiling(), Duration::from_millis(1));
    }
}
