//! Appointment slots (预约时段), sans-IO: which slots of an item's line a resident can book at
//! a point, from the line's duty roster (`api/rosters.rs`: when operators are on duty), the
//! point's structured opening hours and the working-day calendar (`calendar.rs`: holidays
//! closed, make-up working days (调休) open with Monday's hours under the default rule).
//!
//! * A slot is [`SLOT_MS`] long, laid from the start of each range where the roster and the
//!   point's hours overlap (a point without structured hours: the roster alone); a remainder
//!   shorter than a slot is not offered. Only slots starting after `now` and within
//!   [`DAYS_AHEAD`] days (today included) are listed.
//! * **Capacity** per slot: half of what the line's operators can serve in it, the other half
//!   kept for walk-ins: `max(1, operators × SLOT_MS / handle_ms / 2)`, `operators` = active
//!   accounts with the line's skill of the point's acceptance center (and of no center),
//!   `handle_ms` = the dispatcher's default handle time (5 minutes). With 2 operators:
//!   2 × 30 / 5 / 2 = 6 per slot. Free = capacity − live bookings (booked or checked in) of
//!   that slot at every point of the center (district-wide for a point of no center): those
//!   operators serve them all (`api/appointments.rs`).

use std::collections::HashMap;

use shared::cases::{AppointmentSlot, OpeningHours};

use crate::calendar::{self, Calendar};

/// Length of a slot.
pub const SLOT_MS: i64 = 30 * 60_000;
/// How many days (today included) can be booked.
pub const DAYS_AHEAD: i64 = 7;
/// After the slot end, how long a booked appointment may still check in before it is a no-show.
pub const NO_SHOW_GRACE_MS: i64 = 15 * 60_000;

/// Places per slot for `operators` serving the line with handle time `handle_ms`.
pub fn capacity(operators: u32, handle_ms: i64) -> u32 {
    let per_operator = SLOT_MS / handle_ms.max(60_000);
    u32::try_from(i64::from(operators) * per_operator / 2).unwrap_or(u32::MAX).max(1)
}

/// Overlap of two sorted lists of minute ranges.
fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            let (s, e) = (a0.max(b0), a1.min(b1));
            if s < e {
                out.push((s, e));
            }
        }
    }
    out.sort_unstable();
    out
}

/// The slots from `now`'s day for `days` days; `booked` counts live bookings by slot start.
pub fn slots(
    roster: &OpeningHours,
    point: Option<&OpeningHours>,
    cal: &Calendar,
    now: i64,
    days: i64,
    capacity: u32,
    booked: &HashMap<i64, u32>,
) -> Vec<AppointmentSlot> {
    let today = calendar::cst_day(now);
    let mut out = Vec::new();
    for day in today..today + days.clamp(0, DAYS_AHEAD) {
        let duty = calendar::opening_on(roster, cal, day).0;
        let ranges = match point {
            Some(h) => intersect(&duty, &calendar::opening_on(h, cal, day).0),
            None => intersect(&duty, &[(0, 24 * 60)]),
        };
        for (open, close) in ranges {
            let (from, to) = (i64::from(open) * 60_000, i64::from(close) * 60_000);
            let mut s = from;
            while s + SLOT_MS <= to {
                let start = calendar::day_start(day) + s;
                if start > now {
                    let taken = booked.get(&start).copied().unwrap_or(0);
                    let m = s / 60_000;
                    let e = m + SLOT_MS / 60_000;
                    out.push(AppointmentSlot {
                        date: calendar::date_of(day),
                        label: format!("{:02}:{:02}-{:02}:{:02}", m / 60, m % 60, e / 60, e % 60),
                        start,
                        end: start + SLOT_MS,
                        capacity,
                        free: capacity.saturating_sub(taken),
                    });
                }
                s += SLOT_MS;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shared::cases::{HolidayRule, WeekdayHours};

    fn hours(ranges: &[(&str, &str)]) -> OpeningHours {
        OpeningHours {
            weekly: ranges
                .iter()
                .map(|&(o, c)| WeekdayHours {
                    weekdays: vec![1, 2, 3, 4, 5],
                    open: o.into(),
                    close: c.into(),
                })
                .collect(),
            holiday_rule: HolidayRule::FollowCalendar,
            closures: Vec::new(),
        }
    }
    /// Unix ms of a China-time moment.
    fn cst(y: i64, m: i64, d: i64, hh: i64, mm: i64) -> i64 {
        calendar::day_start(calendar::days_from_civil(y, m, d)) + (hh * 60 + mm) * 60_000
    }
    fn labels(slots: &[AppointmentSlot], date: &str) -> Vec<String> {
        slots.iter().filter(|s| s.date == date).map(|s| s.label.clone()).collect()
    }

    #[test]
    fn capacity_is_half_of_what_the_operators_serve_in_a_slot() {
        assert_eq!(capacity(2, 300_000), 6);
        assert_eq!(capacity(1, 300_000), 3);
        assert_eq!(capacity(0, 300_000), 1, "at least one");
        assert_eq!(capacity(1, 3_600_000), 1, "a slot shorter than a call still takes one");
        assert_eq!(capacity(3, 0), 45, "a nonsense handle time counts as a minute");
    }

    #[test]
    fn slots_follow_roster_hours_holidays_and_make_up_days() {
        // Roster 09:00-12:00 and 13:30-17:00, the point 09:00-11:00 and 14:00-16:15.
        let roster = hours(&[("09:00", "12:00"), ("13:30", "17:00")]);
        let point = hours(&[("09:00", "11:00"), ("14:00", "16:15")]);
        let cal = Calendar::builtin();
        // Wednesday 31 December 2025, 09:40: the 09:30 slot has begun, so it is not offered.
        let now = cst(2025, 12, 31, 9, 40);
        let booked = HashMap::from([(cst(2025, 12, 31, 10, 0), 2)]);
        let all = slots(&roster, Some(&point), cal, now, DAYS_AHEAD, 2, &booked);
        assert_eq!(
            labels(&all, "2025-12-31"),
            ["10:00-10:30", "10:30-11:00", "14:00-14:30", "14:30-15:00", "15:00-15:30", "15:30-16:00"],
            "the overlap, in whole slots, from now"
        );
        let ten = all.iter().find(|s| s.start == cst(2025, 12, 31, 10, 0)).unwrap();
        assert_eq!((ten.capacity, ten.free), (2, 0), "full");
        assert_eq!(ten.end - ten.start, SLOT_MS);
        // 1–3 January 2026: New Year holidays, nothing; Sunday 4 January: make-up working day
        // (调休) with Monday's hours; Saturday 10 January is past the 7 days.
        for day in ["2026-01-01", "2026-01-02", "2026-01-03"] {
            assert!(labels(&all, day).is_empty(), "{day} is a holiday");
        }
        assert_eq!(labels(&all, "2026-01-04").len(), 8, "make-up working day, with Monday's hours");
        assert_eq!(labels(&all, "2026-01-05").len(), 8);
        assert_eq!(all.last().unwrap().date, "2026-01-06", "seven days from today");
        assert!(all.iter().all(|s| s.free == 2 || s.start == ten.start));
    }

    #[test]
    fn without_point_hours_the_roster_alone_and_no_days_no_slots() {
        let roster = hours(&[("09:00", "10:10")]);
        let cal = Calendar::builtin();
        let now = cst(2026, 3, 2, 8, 0); // a Monday
        let all = slots(&roster, None, cal, now, 1, 1, &HashMap::new());
        assert_eq!(labels(&all, "2026-03-02"), ["09:00-09:30", "09:30-10:00"]);
        assert!(slots(&roster, None, cal, now, 0, 1, &HashMap::new()).is_empty());
        assert_eq!(slots(&roster, None, cal, now, 1_000, 1, &HashMap::new()).len(), 10, "at most 7 days");
    }
}
