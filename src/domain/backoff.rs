//! Exponential backoff with jitter: the one rule for how long anything in
//! warden waits before trying again (a run's transient warehouse error, a
//! registry that refused a write, an outbox delivery).

use std::time::Duration;

use rand::Rng;

/// Waits that double after each failed attempt up to a cap, each drawn
/// between half of that and all of it, so that agents and workers that
/// failed together do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failed attempt (before jitter).
    pub initial: Duration,
    /// The longest wait (before jitter).
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The wait after failed attempt `attempt` (1-based): `initial` doubled
    /// per further failed attempt, capped at `max`, then drawn uniformly
    /// between half of it and all of it.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let full = self.initial.saturating_mul(1 << doublings).min(self.max);
        full.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            let first = b.delay(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = b.delay(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = b.delay(40);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
    }

    #[test]
    fn attempt_zero_waits_like_the_first() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let d = b.delay(0);
        assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(10));
    }
}
