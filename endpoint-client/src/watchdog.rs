//! Telling systemd the terminal is alive (`sd_notify`, the `sd-notify` crate): `READY=1` once
//! the kiosk page is served, then `WATCHDOG=1` at half the unit's `WatchdogSec` from the app
//! loop's own tick — so a hung loop stops the pings and systemd restarts the service — with
//! a one-line `STATUS=`. Without `NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::time::{Duration, Instant};

/// When the next watchdog ping is due (sans-IO).
#[derive(Debug, Clone)]
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// Pings every `timeout / 2`; no pings without a timeout.
    pub fn new(timeout: Option<Duration>) -> Self {
        Self { every: timeout.map(|t| t / 2), last: None }
    }

    /// From the environment systemd gives a `Type=notify` unit with `WatchdogSec=`
    /// (`WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Self {
        Self::new(sd_notify::watchdog_enabled())
    }

    pub fn enabled(&self) -> bool {
        self.every.is_some()
    }

    /// True (and remembered) when a ping is due at `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        let Some(every) = self.every else { return false };
        if self.last.is_some_and(|l| now.saturating_duration_since(l) < every) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    send(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
}

/// `WATCHDOG=1` with a status line.
pub fn alive(status: &str) {
    send(&[sd_notify::NotifyState::Watchdog, sd_notify::NotifyState::Status(status)]);
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

fn send(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = Watchdog::new(Some(Duration::from_secs(30)));
        assert!(w.due(t0), "the first tick pings");
        assert!(!w.due(t0 + 14 * s));
        assert!(w.due(t0 + 15 * s));
        assert!(!w.due(t0 + 16 * s));
        let mut off = Watchdog::new(None);
        assert!(!off.enabled() && !off.due(t0) && !off.due(t0 + 1000 * s));
    }
}
