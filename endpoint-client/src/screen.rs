//! Screens that reset (sans-IO, explicit `now`): the service's side of "a screen left untouched
//! returns to the welcome screen". The rating screen (and the end-of-call screen) and whatever
//! the last resident left on the welcome screen (notices: thanks, uploaded and printed file
//! names) are cleared after `bound` without a touch, so the next resident never sees them; a
//! rating not given by then stays not given (no `rate` is sent: the session's record keeps no
//! rating). The page's own screens (item choice, privacy notice, staff form) reset in the page
//! after the same bound, which it reads from the status.

use std::time::{Duration, Instant};

/// What to do when a screen has been left alone for the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// Rating (or ended) screen untouched: back to the welcome screen, the rating not given.
    RatingNotGiven,
    /// The welcome screen still shows the last resident's notices: clear them.
    ClearLeftovers,
}

#[derive(Debug, Clone)]
pub struct ScreenTimer {
    bound: Duration,
    since: Instant,
    phase: &'static str,
}

impl ScreenTimer {
    pub fn new(bound: Duration, now: Instant) -> Self {
        Self { bound, since: now, phase: "idle" }
    }

    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Someone used the kiosk (any request from its page).
    pub fn touch(&mut self, now: Instant) {
        self.since = now;
    }

    /// Called with the kiosk's phase and whether the last resident's notices are still shown;
    /// a new phase starts its own bound.
    pub fn step(&mut self, phase: &'static str, leftovers: bool, now: Instant) -> Option<Reset> {
        if phase != self.phase {
            self.phase = phase;
            self.since = now;
            return None;
        }
        if now.saturating_duration_since(self.since) < self.bound {
            return None;
        }
        let reset = match phase {
            "rating" | "ended" => Reset::RatingNotGiven,
            "idle" if leftovers => Reset::ClearLeftovers,
            _ => return None,
        };
        self.since = now;
        Some(reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untouched_rating_screen_resets_after_the_bound() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = ScreenTimer::new(Duration::from_secs(30), t0);
        assert_eq!(t.step("in_call", true, t0 + 100 * s), None, "a call is never cut short");
        assert_eq!(t.step("in_call", true, t0 + 1000 * s), None);
        assert_eq!(t.step("rating", false, t0 + 1000 * s), None, "the rating screen starts its own bound");
        assert_eq!(t.step("rating", false, t0 + 1029 * s), None);
        t.touch(t0 + 1029 * s);
        assert_eq!(t.step("rating", false, t0 + 1058 * s), None, "a touch restarts the bound");
        assert_eq!(t.step("rating", false, t0 + 1059 * s), Some(Reset::RatingNotGiven));
        assert_eq!(t.step("rating", false, t0 + 1060 * s), None, "once per bound");
    }

    #[test]
    fn the_last_residents_notices_are_cleared_from_the_welcome_screen() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = ScreenTimer::new(Duration::from_secs(30), t0);
        assert_eq!(t.step("idle", false, t0 + 31 * s), None, "nothing to clear");
        assert_eq!(t.step("idle", true, t0 + 32 * s), Some(Reset::ClearLeftovers));
        assert_eq!(t.step("waiting", false, t0 + 100 * s), None);
        assert_eq!(t.step("waiting", false, t0 + 1000 * s), None, "the queue is not a screen that resets");
    }
}
