//! Throttling of guessable secrets (passwords, enrolment codes, device credentials) as a plain
//! state machine with an explicit `now` (unix ms).
//!
//! Every attempt names the keys it counts against — e.g. the account at this address, the
//! account anywhere, the address — each with its own [`Limit`]. An attempt is checked and
//! recorded as a failure in one step ([`Throttle::attempt`], under the caller's lock), so
//! concurrent attempts cannot all pass the check before any of them is recorded; a success
//! takes its failure back ([`Throttle::success`]). Past a key's free failures each further one
//! makes the key wait a growing delay (doubling up to a cap) instead of locking it: the right
//! password always gets in once the (short) delay has passed, and the account-wide key is loose
//! enough that one attacker's address cannot shut out the owner at another. There is never a
//! single global key.

use std::collections::HashMap;

/// How failures on one key turn into delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Failures allowed without any delay.
    pub free: u32,
    /// Delay after the first failure beyond `free`; doubled for each further one.
    pub base_ms: i64,
    /// Longest delay.
    pub max_ms: i64,
    /// A key without failures for this long starts over.
    pub window_ms: i64,
}

impl Limit {
    const fn new(free: u32, max_ms: i64) -> Self {
        Self { free, base_ms: 1000, max_ms, window_ms: 15 * 60_000 }
    }
    /// Password sign-in: one account from one address.
    pub const LOGIN_PAIR: Limit = Limit::new(5, 5 * 60_000);
    /// Password sign-in: one account from any address (distributed guessing); loose and
    /// capped at a minute so that nobody can keep the owner out for long.
    pub const LOGIN_ACCOUNT: Limit = Limit::new(20, 60_000);
    /// Everything guessable from one address (an office may share one: generous).
    pub const ADDRESS: Limit = Limit::new(50, 5 * 60_000);
    /// Enrolment codes and device credentials from one address.
    pub const DEVICE_ADDRESS: Limit = Limit::new(20, 5 * 60_000);
    /// Changing one's own password (the current password is guessable too).
    pub const PASSWORD_CHANGE: Limit = Limit::new(5, 5 * 60_000);

    fn delay_ms(&self, failures: u32) -> i64 {
        if failures < self.free {
            return 0;
        }
        let doublings = (failures - self.free).min(30);
        self.base_ms.saturating_mul(1_i64 << doublings).min(self.max_ms)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    failures: u32,
    last_at: i64,
    /// No attempt on this key before this time.
    next_at: i64,
    /// Refusals since the last attempt that got through (for aggregated auditing).
    refused: u32,
}

/// A refused attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds until the key accepts an attempt again (for `Retry-After`).
    pub retry_after_secs: u64,
    /// The first refusal since the delay began: audit this one, count the rest.
    pub first: bool,
}

/// Keys beyond which expired entries are pruned.
const PRUNE_AT: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    entries: HashMap<String, (Limit, Entry)>,
}

impl Throttle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every key and, if none is waiting, records the attempt as a failure on each
    /// (taken back by [`Throttle::success`]). Keys are compared case-insensitively.
    pub fn attempt(&mut self, keys: &[(String, Limit)], now: i64) -> Result<(), Refused> {
        if self.entries.len() > PRUNE_AT {
            self.entries.retain(|_, (l, e)| now - e.last_at < l.window_ms || e.next_at > now);
        }
        let mut wait = 0;
        for (key, _) in keys {
            if let Some((_, e)) = self.entries.get(&key.to_lowercase()) {
                wait = wait.max(e.next_at - now);
            }
        }
        if wait > 0 {
            let mut first = true;
            for (key, _) in keys {
                if let Some((_, e)) = self.entries.get_mut(&key.to_lowercase())
                    && e.next_at > now
                {
                    e.refused += 1;
                    first &= e.refused == 1;
                }
            }
            let secs = u64::try_from((wait + 999) / 1000).unwrap_or(1);
            return Err(Refused { retry_after_secs: secs, first });
        }
        for (key, limit) in keys {
            let (l, e) = self.entries.entry(key.to_lowercase()).or_insert((*limit, Entry::default()));
            *l = *limit;
            if now - e.last_at > l.window_ms {
                *e = Entry::default();
            }
            e.failures += 1;
            e.last_at = now;
            e.refused = 0;
            let delay = l.delay_ms(e.failures);
            if delay > 0 {
                e.next_at = now + delay;
            }
        }
        Ok(())
    }

    /// The attempt recorded by [`Throttle::attempt`] succeeded: keys in `clear` start over,
    /// the others have that one failure taken back.
    pub fn success(&mut self, keys: &[(String, Limit)], clear: &[&str]) {
        for (key, _) in keys {
            let key = key.to_lowercase();
            if clear.iter().any(|c| c.to_lowercase() == key) {
                self.entries.remove(&key);
            } else if let Some((l, e)) = self.entries.get_mut(&key) {
                e.failures = e.failures.saturating_sub(1);
                if l.delay_ms(e.failures) == 0 {
                    e.next_at = 0;
                }
            }
        }
    }
}

/// The throttle a node uses: its own ([`Throttle`] under a lock), or in cluster mode the one
/// all nodes share in Redis, so that guesses spread over nodes count as one. While Redis does
/// not answer the node falls back to its own: sign-in keeps working and stays limited.
pub struct Throttles {
    local: std::sync::Mutex<Throttle>,
    cluster: Option<crate::cluster::Cluster>,
}

impl Throttles {
    pub fn new(cluster: Option<crate::cluster::Cluster>) -> Self {
        Self { local: std::sync::Mutex::new(Throttle::new()), cluster }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Throttle::attempt`] on the shared throttle (or this node's).
    pub async fn attempt(&self, keys: &[(String, Limit)], now: i64) -> Result<(), Refused> {
        if let Some(c) = &self.cluster {
            match c.throttle_attempt(keys, now).await {
                Ok(r) => return r,
                Err(e) => tracing::warn!(error = %e, "shared throttle unavailable: this node's own is used"),
            }
        }
        self.local().attempt(keys, now)
    }

    /// [`Throttle::success`] on the shared throttle (and this node's).
    pub async fn success(&self, keys: &[(String, Limit)], clear: &[&str]) {
        if let Some(c) = &self.cluster
            && let Err(e) = c.throttle_success(keys, clear).await
        {
            tracing::warn!(error = %e, "shared throttle unavailable");
        }
        self.local().success(keys, clear);
    }
}

/// Keys of a password sign-in for `username` from `addr`.
pub fn login_keys(username: &str, addr: &str) -> Vec<(String, Limit)> {
    vec![
        (format!("login:{username}@{addr}"), Limit::LOGIN_PAIR),
        (format!("login:{username}"), Limit::LOGIN_ACCOUNT),
        (format!("addr:{addr}"), Limit::ADDRESS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(user: &str, addr: &str) -> Vec<(String, Limit)> {
        login_keys(user, addr)
    }

    #[test]
    fn five_free_failures_then_growing_delays_not_a_lockout() {
        let mut t = Throttle::new();
        for i in 0..5 {
            assert!(t.attempt(&keys("Op", "a"), i).is_ok(), "attempt {i}");
        }
        let r = t.attempt(&keys("op", "a"), 10).expect_err("refused");
        assert_eq!(r, Refused { retry_after_secs: 1, first: true });
        assert!(!t.attempt(&keys("op", "a"), 11).expect_err("refused").first, "later refusals aggregated");
        assert!(t.attempt(&keys("op", "a"), 4 + 1000).is_ok(), "one second later: allowed");
        let r = t.attempt(&keys("op", "a"), 1010).expect_err("refused");
        assert_eq!(r.retry_after_secs, 2, "doubling");
        assert!(t.attempt(&keys("op", "b"), 1010).is_ok(), "same account from elsewhere not delayed");
    }

    #[test]
    fn concurrent_attempts_cannot_exceed_the_free_failures() {
        let mut t = Throttle::new();
        let passed = (0..60).filter(|_| t.attempt(&keys("x", "a"), 0).is_ok()).count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn success_takes_the_failure_back_and_clears_the_account() {
        let mut t = Throttle::new();
        for i in 0..4 {
            t.attempt(&keys("a", "x"), i).expect("allowed");
        }
        t.attempt(&keys("a", "x"), 5).expect("allowed");
        t.success(&keys("a", "x"), &["login:a@x", "login:a"]);
        for i in 0..5 {
            assert!(t.attempt(&keys("a", "x"), 10 + i).is_ok());
        }
    }

    #[test]
    fn delays_are_capped_and_windows_expire() {
        let l = Limit::LOGIN_ACCOUNT;
        assert_eq!(l.delay_ms(19), 0);
        assert_eq!(l.delay_ms(20), 1000);
        assert_eq!(l.delay_ms(25), 32_000);
        assert_eq!(l.delay_ms(u32::MAX), 60_000);
        let mut t = Throttle::new();
        for i in 0..5 {
            t.attempt(&keys("b", "x"), i).expect("allowed");
        }
        assert!(t.attempt(&keys("b", "x"), 20 * 60_000).is_ok(), "window restarted");
    }

    #[test]
    fn address_key_counts_every_username() {
        let mut t = Throttle::new();
        for i in 0..50 {
            t.attempt(&keys(&format!("user{i}"), "5.5.5.5"), i64::from(i)).expect("allowed");
        }
        assert!(t.attempt(&keys("fresh", "5.5.5.5"), 100).is_err());
        assert!(t.attempt(&keys("fresh", "6.6.6.6"), 100).is_ok());
    }
}
