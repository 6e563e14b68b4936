//! The committee staff member signed in at the kiosk, as a sans-IO state machine fed with an
//! explicit `now`. Their access token goes with the tickets they help take. While someone is at
//! the kiosk (a touch, or a ticket or call in progress) the token is renewed with the rotating
//! refresh token at the middle of its life, so staff stay signed in through a shift; after
//! `idle` without anyone at the kiosk they are signed out, so a kiosk left alone does not keep a
//! staff login for the next person. Kept in memory only.

use std::time::{Duration, Instant};

use uuid::Uuid;

/// The longest a renewal that failed for network reasons waits before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct StaffSession {
    pub user_id: Uuid,
    pub username: String,
    pub name: String,
    pub token: shared::validate::Token,
    pub refresh_token: String,
    /// When the token was issued, and when we stop using it (a little before the server's
    /// expiry, so a ticket never carries a dead token).
    issued_at: Instant,
    expires_at: Instant,
    last_activity: Instant,
    renewing: bool,
    retry_at: Option<Instant>,
    /// Renewals so far (status output, tests).
    pub renewals: u32,
}

/// What to do about the session at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffStep {
    Keep,
    /// Trade the refresh token for a new pair ([`StaffSession::renewing`] until it answers).
    Renew,
    /// Nobody has been at the kiosk for the idle limit: end the login.
    SignOut,
}

impl StaffSession {
    /// A session from the server's token response (`expires_in` seconds from `now`).
    pub fn new(
        user_id: Uuid,
        username: String,
        name: String,
        token: shared::validate::Token,
        refresh_token: String,
        expires_in: u64,
        now: Instant,
    ) -> Self {
        Self {
            user_id,
            username,
            name,
            token,
            refresh_token,
            issued_at: now,
            expires_at: usable_until(expires_in, now),
            last_activity: now,
            renewing: false,
            retry_at: None,
            renewals: 0,
        }
    }

    /// Signed in and the access token usable at `now`.
    pub fn active(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    /// Someone is at the kiosk (a touch, or a ticket or call in progress).
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    pub fn step(&self, now: Instant, idle: Duration) -> StaffStep {
        if now.saturating_duration_since(self.last_activity) >= idle {
            return StaffStep::SignOut;
        }
        if self.renewing || self.retry_at.is_some_and(|t| now < t) {
            return StaffStep::Keep;
        }
        let halfway = self.issued_at + (self.expires_at.saturating_duration_since(self.issued_at)) / 2;
        if now >= halfway { StaffStep::Renew } else { StaffStep::Keep }
    }

    /// A renewal went out; `step` keeps quiet until it answers.
    pub fn renewing(&mut self) {
        self.renewing = true;
    }

    /// The renewal's answer: new tokens.
    pub fn renewed(
        &mut self,
        token: shared::validate::Token,
        refresh_token: String,
        expires_in: u64,
        now: Instant,
    ) {
        self.token = token;
        self.refresh_token = refresh_token;
        self.issued_at = now;
        self.expires_at = usable_until(expires_in, now);
        self.renewing = false;
        self.retry_at = None;
        self.renewals += 1;
    }

    /// The renewal did not reach the server: try again a little later (the refresh token stays
    /// valid much longer than the access token).
    pub fn renewal_failed(&mut self, now: Instant) {
        self.renewing = false;
        let left = self.expires_at.saturating_duration_since(now);
        self.retry_at = Some(now + RETRY_AFTER.min(left / 2).max(Duration::from_millis(500)));
    }
}

/// How a renewal answered, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalAnswer {
    /// New tokens (the access token not yet checked).
    Tokens { access_token: String, refresh_token: String, expires_in: u64 },
    /// The server refused (revoked, expired, account disabled).
    Refused,
    /// The server was not reached.
    Unreachable,
}

/// What a renewal's answer did to the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// An answer for a login that has since ended or been renewed: ignored.
    Stale,
    Renewed,
    /// Tried again a little later.
    Retry,
    /// The login is over: the driver drops it and tells the kiosk.
    Ended,
}

/// Applies the answer to the renewal sent with refresh token `sent` (sans-IO).
pub fn on_renewal(
    login: Option<&mut StaffSession>,
    sent: &str,
    answer: RenewalAnswer,
    now: Instant,
) -> Renewal {
    let Some(s) = login.filter(|s| s.refresh_token == sent) else { return Renewal::Stale };
    match answer {
        RenewalAnswer::Tokens { access_token, refresh_token, expires_in } => {
            match shared::validate::Token::try_from(access_token) {
                Ok(token) => {
                    s.renewed(token, refresh_token, expires_in, now);
                    Renewal::Renewed
                }
                Err(_) => {
                    s.renewal_failed(now);
                    Renewal::Retry
                }
            }
        }
        RenewalAnswer::Refused => Renewal::Ended,
        RenewalAnswer::Unreachable => {
            s.renewal_failed(now);
            Renewal::Retry
        }
    }
}

/// When a token of `expires_in` seconds issued at `now` stops being used: 30 s before the
/// server's expiry, or a quarter of a short lifetime before it.
fn usable_until(expires_in: u64, now: Instant) -> Instant {
    let life = Duration::from_secs(expires_in);
    now + (life - Duration::from_secs(30).min(life / 4))
}

impl std::fmt::Debug for StaffSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffSession").field("username", &self.username).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: Instant, expires_in: u64) -> StaffSession {
        let token = shared::validate::Token::try_from("t1".to_owned()).expect("token");
        StaffSession::new(Uuid::nil(), "staff1".into(), "周社工".into(), token, "r1".into(), expires_in, now)
    }

    const IDLE: Duration = Duration::from_secs(600);
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn renews_at_half_life_while_someone_is_there() {
        let t0 = Instant::now();
        let mut s = session(t0, 600);
        // Usable for 570 s (30 s margin); renewed from 285 s on.
        assert!(s.active(t0 + secs(569)) && !s.active(t0 + secs(570)));
        assert_eq!(s.step(t0 + secs(284), IDLE), StaffStep::Keep);
        s.touch(t0 + secs(280));
        assert_eq!(s.step(t0 + secs(285), IDLE), StaffStep::Renew);
        s.renewing();
        assert_eq!(s.step(t0 + secs(290), IDLE), StaffStep::Keep, "one renewal at a time");
        let t2 = shared::validate::Token::try_from("t2".to_owned()).expect("token");
        s.renewed(t2, "r2".into(), 600, t0 + secs(290));
        assert_eq!((s.token.as_str(), s.refresh_token.as_str(), s.renewals), ("t2", "r2", 1));
        assert!(s.active(t0 + secs(800)), "the new token runs from the renewal");
        assert_eq!(s.step(t0 + secs(500), IDLE), StaffStep::Keep);
    }

    #[test]
    fn signs_out_after_the_idle_limit_even_with_a_valid_token() {
        let t0 = Instant::now();
        let mut s = session(t0, 3600);
        s.touch(t0 + secs(100));
        assert_eq!(s.step(t0 + secs(699), IDLE), StaffStep::Keep);
        assert_eq!(s.step(t0 + secs(700), IDLE), StaffStep::SignOut);
        // An older touch does not move the clock back.
        s.touch(t0 + secs(50));
        assert_eq!(s.step(t0 + secs(700), IDLE), StaffStep::SignOut);
    }

    #[test]
    fn a_failed_renewal_is_retried_a_little_later() {
        let t0 = Instant::now();
        let mut s = session(t0, 600);
        s.touch(t0 + secs(300));
        assert_eq!(s.step(t0 + secs(300), IDLE), StaffStep::Renew);
        s.renewing();
        s.renewal_failed(t0 + secs(300));
        assert_eq!(s.step(t0 + secs(302), IDLE), StaffStep::Keep);
        assert_eq!(s.step(t0 + secs(305), IDLE), StaffStep::Renew);
        // Past the token's end it keeps trying (staff features are off meanwhile).
        s.touch(t0 + secs(580));
        assert!(!s.active(t0 + secs(580)));
        assert_eq!(s.step(t0 + secs(580), IDLE), StaffStep::Renew);
    }

    #[test]
    fn renewal_answers_renew_retry_end_or_are_ignored_when_stale() {
        let t0 = Instant::now();
        let mut s = session(t0, 600);
        s.renewing();
        let tokens = |a: &str, r: &str| RenewalAnswer::Tokens {
            access_token: a.into(),
            refresh_token: r.into(),
            expires_in: 600,
        };
        // An answer to an older refresh token changes nothing.
        assert_eq!(on_renewal(Some(&mut s), "r0", tokens("t2", "r2"), t0), Renewal::Stale);
        assert_eq!(on_renewal(None, "r1", tokens("t2", "r2"), t0), Renewal::Stale);
        assert_eq!(s.refresh_token, "r1");
        // A hostile access token from the server is not taken: retried later.
        assert_eq!(on_renewal(Some(&mut s), "r1", tokens("", "r2"), t0 + secs(300)), Renewal::Retry);
        assert_eq!((s.refresh_token.as_str(), s.renewals), ("r1", 0));
        assert_eq!(s.step(t0 + secs(301), secs(3600)), StaffStep::Keep, "waits before retrying");
        assert_eq!(s.step(t0 + secs(306), secs(3600)), StaffStep::Renew);
        assert_eq!(on_renewal(Some(&mut s), "r1", RenewalAnswer::Unreachable, t0), Renewal::Retry);
        assert_eq!(on_renewal(Some(&mut s), "r1", tokens("t2", "r2"), t0 + secs(1)), Renewal::Renewed);
        assert_eq!((s.refresh_token.as_str(), s.renewals), ("r2", 1));
        assert_eq!(on_renewal(Some(&mut s), "r2", RenewalAnswer::Refused, t0 + secs(2)), Renewal::Ended);
    }

    #[test]
    fn short_lifetimes_keep_a_proportional_margin() {
        let t0 = Instant::now();
        let s = session(t0, 8);
        assert!(s.active(t0 + secs(5)) && !s.active(t0 + secs(6)), "8 s less a quarter");
        let none = session(t0, 0);
        assert!(!none.active(t0));
    }
}
