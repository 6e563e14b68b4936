//! Login throttling as a plain state machine with an explicit `now` (unix ms): after
//! `max_failures` failures within `window_ms` for one username or one source address, further
//! attempts are refused until `lockout_ms` after the last failure.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    pub max_failures: u32,
    pub window_ms: i64,
    pub lockout_ms: i64,
    /// Per-address limit is looser: one office may share an address.
    pub max_failures_per_addr: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { max_failures: 5, window_ms: 15 * 60_000, lockout_ms: 15 * 60_000, max_failures_per_addr: 50 }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    failures: u32,
    first_at: i64,
    last_at: i64,
}

#[derive(Debug, Default)]
pub struct Throttle {
    config: ThrottleConfig,
    by_user: HashMap<String, Entry>,
    by_addr: HashMap<String, Entry>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, ..Default::default() }
    }

    /// `Some(seconds)` to wait when the attempt must be refused.
    pub fn check(&mut self, user: &str, addr: &str, now: i64) -> Option<u64> {
        let c = self.config;
        let u = locked(self.by_user.get(&user.to_lowercase()), c.max_failures, c, now);
        let a = locked(self.by_addr.get(addr), c.max_failures_per_addr, c, now);
        u.max(a)
    }

    pub fn failure(&mut self, user: &str, addr: &str, now: i64) {
        let window = self.config.window_ms;
        // Bound memory under a flood of distinct usernames.
        if self.by_user.len() > 100_000 {
            self.by_user.retain(|_, e| now - e.last_at < window);
        }
        for (map, key) in [(&mut self.by_user, user.to_lowercase()), (&mut self.by_addr, addr.to_owned())] {
            let e = map.entry(key).or_default();
            if now - e.first_at > window {
                *e = Entry { failures: 0, first_at: now, last_at: now };
            }
            e.failures += 1;
            e.last_at = now;
        }
    }

    pub fn success(&mut self, user: &str) {
        self.by_user.remove(&user.to_lowercase());
    }
}

fn locked(e: Option<&Entry>, max: u32, c: ThrottleConfig, now: i64) -> Option<u64> {
    let e = e?;
    if e.failures >= max && now - e.last_at < c.lockout_ms {
        let ms = c.lockout_ms - (now - e.last_at);
        Some(u64::try_from((ms + 999) / 1000).unwrap_or(1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_five_failures_and_unlocks_after_lockout() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for i in 0..5 {
            assert_eq!(t.check("Operator1", "1.2.3.4", i), None);
            t.failure("Operator1", "1.2.3.4", i);
        }
        assert_eq!(t.check("operator1", "9.9.9.9", 10), Some(900));
        assert_eq!(t.check("operator2", "1.2.3.4", 10), None, "other users from the address still fine");
        assert_eq!(t.check("operator1", "9.9.9.9", 4 + 15 * 60_000), None);
    }

    #[test]
    fn success_resets_and_old_failures_expire() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for i in 0..4 {
            t.failure("a", "x", i);
        }
        t.success("a");
        t.failure("a", "x", 10);
        assert_eq!(t.check("a", "x", 11), None);
        let mut t = Throttle::new(ThrottleConfig::default());
        for i in 0..4 {
            t.failure("b", "x", i);
        }
        t.failure("b", "x", 16 * 60_000);
        assert_eq!(t.check("b", "x", 16 * 60_000 + 1), None, "window restarted");
    }

    #[test]
    fn per_address_limit() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for i in 0..50 {
            t.failure(&format!("user{i}"), "5.5.5.5", i64::from(i));
        }
        assert!(t.check("fresh", "5.5.5.5", 100).is_some());
    }
}
