//! Reconnect backoff (protocol §3): 0.5 s, 1 s, 2 s, … up to 10 s, with jitter so that a
//! district's kiosks do not all reconnect in the same instant after a server restart.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(10))
    }
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, attempt: 0 }
    }

    /// The nominal (un-jittered) delay before the next attempt.
    pub fn nominal(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(16)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt, drawn from `[nominal/2, nominal]` ("equal jitter"),
    /// and advances the schedule.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let d = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        half + half.mul_f64(rng.r#gen::<f64>())
    }

    /// After a connection that worked (welcome received).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let nominal = [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000];
        let mut delays = Vec::new();
        for n in nominal {
            assert_eq!(b.nominal(), Duration::from_millis(n));
            let d = b.next_delay(&mut rng);
            assert!(d >= Duration::from_millis(n / 2) && d <= Duration::from_millis(n), "{d:?} for {n}");
            delays.push(d);
        }
        // Jitter: the capped delays are not all equal.
        assert!(delays[5..].windows(2).any(|w| w[0] != w[1]));
        for _ in 0..100 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.nominal(), Duration::from_secs(10));
        b.reset();
        assert_eq!(b.nominal(), Duration::from_millis(500));
    }
}
