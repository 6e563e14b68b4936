//! Inspections (巡检): each service point has at most one schedule (weekly, bi-weekly or monthly
//! on a weekday, from a first day), its inspector records inspections with a checklist of nine
//! items and photos, and a missed inspection is flagged to the point's inspector and the
//! supervisors through the notification outbox.
//!
//! When an inspection is due is decided here, sans-IO with an explicit `now` ([`standing`]):
//! China-time days, periods from one scheduled day to the next, the due day moved to the first
//! working day of its period by the working-day calendar (a period without one needs no
//! inspection), overdue after `grace_working_days` working days (at the latest at the end of
//! the period). A missed inspection stays overdue, also in later periods, until one is
//! recorded. [`should_flag`] says when to tell people (once per missed due day).
//!
//! Storage, the overdue sweep (run by the cases worker) and the device-alarm notice to the
//! point's inspector are below; the REST surface is `api/inspections.rs`.

use serde_json::json;
use shared::api::{InspectionDueView, InspectionFrequency, InspectionState};
use sqlx::Row;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::calendar::{self, Calendar, cst_day, day_start, days_from_civil, iso_weekday};
use crate::db::parse_id;
use crate::error::ApiResult;
use crate::state::AppState;

/// A point's inspection schedule, as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub frequency: InspectionFrequency,
    /// ISO weekday, 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    /// China-time day number of the schedule's first day.
    pub starts_on: i64,
    pub grace_working_days: u32,
}

/// Where a schedule stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub state: InspectionState,
    /// The due day (day number) the state is about: the missed one when overdue, the current
    /// period's when due or upcoming, the next period's when done.
    pub due_on: Option<i64>,
    /// When the missed inspection became overdue (unix ms).
    pub overdue_since: Option<i64>,
}

/// Most periods looked back for a missed inspection.
const LOOK_BACK: i64 = 12;

/// The first day on or after `day` that is ISO weekday `weekday`.
fn on_or_after(day: i64, weekday: u8) -> i64 {
    day + (i64::from(weekday) - i64::from(iso_weekday(day))).rem_euclid(7)
}

/// The weekday's first day in month `m` (months counted from year 0: `y * 12 + (month - 1)`).
fn first_in_month(m: i64, weekday: u8) -> i64 {
    on_or_after(days_from_civil(m.div_euclid(12), m.rem_euclid(12) + 1, 1), weekday)
}

fn month_of(day: i64) -> i64 {
    let (y, m, _) = calendar::civil(day);
    y * 12 + m - 1
}

impl Schedule {
    /// The scheduled day of period `k` (0 = the first on or after `starts_on`).
    pub fn nominal(&self, k: i64) -> i64 {
        match self.frequency {
            InspectionFrequency::Weekly => on_or_after(self.starts_on, self.weekday) + 7 * k,
            InspectionFrequency::Biweekly => on_or_after(self.starts_on, self.weekday) + 14 * k,
            InspectionFrequency::Monthly => {
                let m0 = month_of(self.starts_on);
                let skip = i64::from(first_in_month(m0, self.weekday) < self.starts_on);
                first_in_month(m0 + skip + k, self.weekday)
            }
        }
    }

    /// The period that `day` falls in (`None` before the first).
    fn period_of(&self, day: i64) -> Option<i64> {
        let first = self.nominal(0);
        if day < first {
            return None;
        }
        let mut k = match self.frequency {
            InspectionFrequency::Weekly => (day - first) / 7,
            InspectionFrequency::Biweekly => (day - first) / 14,
            InspectionFrequency::Monthly => month_of(day) - month_of(first),
        };
        while k > 0 && self.nominal(k) > day {
            k -= 1;
        }
        Some(k)
    }

    /// The due day of period `k`: its first working day; `None` when it has none.
    pub fn due_day(&self, cal: &Calendar, k: i64) -> Option<i64> {
        (self.nominal(k)..self.nominal(k + 1)).find(|&d| cal.is_working_day(d))
    }

    /// When period `k`'s inspection becomes overdue: after its due day and the grace working
    /// days, at the latest when the period ends.
    fn overdue_at(&self, cal: &Calendar, k: i64, due: i64) -> i64 {
        let last = cal.add_working_days(due, self.grace_working_days).min(self.nominal(k + 1) - 1);
        day_start(last + 1)
    }

    /// The first due day of period `k` or a later one (within a year's periods).
    fn next_due(&self, cal: &Calendar, k: i64) -> Option<i64> {
        (k..k + 60).find_map(|j| self.due_day(cal, j))
    }
}

/// Where `s` stands at `now`, given the last inspection recorded at the point.
pub fn standing(s: &Schedule, cal: &Calendar, last_inspected_at: Option<i64>, now: i64) -> Standing {
    let today = cst_day(now);
    let recorded_since = |day: i64| last_inspected_at.is_some_and(|t| t >= day_start(day));
    let Some(k) = s.period_of(today) else {
        return Standing {
            state: InspectionState::Upcoming,
            due_on: s.next_due(cal, 0),
            overdue_since: None,
        };
    };
    // The latest period whose inspection is already late: missed unless one was recorded since
    // it began.
    for j in (0.max(k - LOOK_BACK)..=k).rev() {
        let Some(due) = s.due_day(cal, j) else { continue };
        let at = s.overdue_at(cal, j, due);
        if at > now {
            continue;
        }
        if !recorded_since(s.nominal(j)) {
            return Standing { state: InspectionState::Overdue, due_on: Some(due), overdue_since: Some(at) };
        }
        break;
    }
    if recorded_since(s.nominal(k)) {
        return Standing {
            state: InspectionState::Done,
            due_on: s.next_due(cal, k + 1),
            overdue_since: None,
        };
    }
    match s.due_day(cal, k) {
        Some(due) if due <= today => {
            Standing { state: InspectionState::Due, due_on: Some(due), overdue_since: None }
        }
        Some(due) => Standing { state: InspectionState::Upcoming, due_on: Some(due), overdue_since: None },
        // Nothing to inspect this period (no working day in it).
        None => {
            Standing { state: InspectionState::Upcoming, due_on: s.next_due(cal, k + 1), overdue_since: None }
        }
    }
}

/// The missed due day to tell people about now, if any: an overdue inspection is flagged once
/// per due day (`flagged` is the due day flagged last).
pub fn should_flag(standing: &Standing, flagged: Option<i64>) -> Option<i64> {
    match (standing.state, standing.due_on) {
        (InspectionState::Overdue, Some(due)) if flagged != Some(due) => Some(due),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Storage

pub fn frequency_str(f: InspectionFrequency) -> &'static str {
    match f {
        InspectionFrequency::Weekly => "weekly",
        InspectionFrequency::Biweekly => "biweekly",
        InspectionFrequency::Monthly => "monthly",
    }
}

fn frequency_parse(s: &str) -> InspectionFrequency {
    match s {
        "biweekly" => InspectionFrequency::Biweekly,
        "monthly" => InspectionFrequency::Monthly,
        _ => InspectionFrequency::Weekly,
    }
}

/// A schedule with what is shown and decided about it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub view: InspectionDueView,
    pub schedule: Schedule,
    pub flagged_due_on: Option<i64>,
}

/// Schedules of open points (one point's, or all), with their standing at `now`.
pub async fn load_all(state: &AppState, point: Option<Uuid>, now: i64) -> ApiResult<Vec<Stored>> {
    let rows = sqlx::query(
        "SELECT s.point_id, s.frequency, s.weekday, s.starts_on, s.grace_working_days, s.inspector_account_id, \
         s.flagged_due_on, p.code, p.name, p.street, p.inspector_name, p.inspector_phone, u.display_name AS account_name, \
         (SELECT MAX(r.inspected_at) FROM inspection_records r WHERE r.point_id = s.point_id) AS last_at, \
         (SELECT r.failed FROM inspection_records r WHERE r.point_id = s.point_id \
          ORDER BY r.inspected_at DESC, r.id LIMIT 1) AS last_failed \
         FROM inspection_schedules s JOIN service_points p ON p.id = s.point_id \
         LEFT JOIN users u ON u.id = s.inspector_account_id \
         WHERE p.status <> 'closed' AND ($1 = '' OR s.point_id = $1) ORDER BY p.code",
    )
    .bind(point.map(|p| p.to_string()).unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let cal = calendar::load(&state.db).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let starts_on_text: String = r.try_get("starts_on")?;
        let starts_on = calendar::parse_date(&starts_on_text).unwrap_or_else(|| cst_day(now));
        let weekday = u8::try_from(r.try_get::<i64, _>("weekday")?).unwrap_or(1).clamp(1, 7);
        let grace = u8::try_from(r.try_get::<i64, _>("grace_working_days")?).unwrap_or(2);
        let frequency = frequency_parse(&r.try_get::<String, _>("frequency")?);
        let schedule = Schedule { frequency, weekday, starts_on, grace_working_days: u32::from(grace) };
        let last_at: Option<i64> = r.try_get("last_at")?;
        let st = standing(&schedule, &cal, last_at, now);
        let flagged: Option<String> = r.try_get("flagged_due_on")?;
        out.push(Stored {
            view: InspectionDueView {
                point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
                point_code: r.try_get("code")?,
                point_name: r.try_get("name")?,
                street: r.try_get("street")?,
                inspector_name: r.try_get("inspector_name")?,
                inspector_phone: r.try_get("inspector_phone")?,
                inspector_account_id: r
                    .try_get::<Option<String>, _>("inspector_account_id")?
                    .map(|s| parse_id(&s))
                    .transpose()?,
                inspector_account_name: r.try_get("account_name")?,
                frequency,
                weekday,
                starts_on: starts_on_text,
                grace_working_days: grace,
                state: st.state,
                due_on: st.due_on.map(calendar::date_of),
                overdue_since: st.overdue_since,
                last_inspected_at: last_at,
                last_failed: r.try_get("last_failed")?,
            },
            schedule,
            flagged_due_on: flagged.as_deref().and_then(calendar::parse_date),
        });
    }
    Ok(out)
}

/// Flags every overdue inspection not yet flagged for its missed due day: a console task for
/// the supervisors and for the inspector's account (if the schedule names one), and a webhook
/// message for the point's inspector (name and phone read from the point at delivery), with the
/// schedule's flag and an audit row in one transaction. Idempotent; returns how many were
/// flagged.
pub async fn flag_overdue(state: &AppState, now: i64) -> ApiResult<u64> {
    let mut made = 0;
    for s in load_all(state, None, now).await? {
        let standing = Standing {
            state: s.view.state,
            due_on: s.view.due_on.as_deref().and_then(calendar::parse_date),
            overdue_since: s.view.overdue_since,
        };
        let Some(due) = should_flag(&standing, s.flagged_due_on) else { continue };
        let due_text = calendar::date_of(due);
        let point = s.view.point_id.to_string();
        let mut tx = state.db.pool.begin().await?;
        // Only one node (or sweep) flags a due day.
        let n = sqlx::query(
            "UPDATE inspection_schedules SET flagged_due_on = $1 WHERE point_id = $2 \
             AND (flagged_due_on IS NULL OR flagged_due_on <> $1)",
        )
        .bind(&due_text)
        .bind(&point)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            continue;
        }
        let text = format!(
            "巡检超期：{}（{}）应于 {} 巡检，尚未登记；巡检负责人 {}",
            s.view.point_name, s.view.point_code, due_text, s.view.inspector_name
        );
        let payload = json!({ "text": text, "point_id": point, "due_on": due_text });
        use crate::cases::outbox::enqueue_in;
        enqueue_in(&mut tx, "console", "inspection_overdue", None, "supervisor", payload.clone()).await?;
        if let Some(account) = s.view.inspector_account_id {
            enqueue_in(&mut tx, "console", "inspection_overdue", None, &account.to_string(), payload.clone())
                .await?;
        }
        enqueue_in(&mut tx, "webhook", "inspection_overdue", None, "inspector", payload).await?;
        let mut rec = AuditRecord::new("inspection.overdue", "point")
            .target(&point)
            .detail(json!({ "due_on": due_text, "overdue_since": s.view.overdue_since }));
        rec.actor_name = "system".into();
        state.audit.append_in(&mut tx, rec).await?;
        tx.commit().await?;
        made += 1;
    }
    Ok(made)
}

/// A device alarm raised at a terminal goes to its point's inspector: a console task for the
/// inspector's account when the point's schedule names one, and a webhook message to the
/// point's inspector (name and phone read at delivery). Supervisors already see the alarm on
/// their health board.
pub async fn notify_alarm(
    state: &AppState,
    terminal_id: Uuid,
    kind: &str,
    detail: Option<&str>,
) -> ApiResult<()> {
    let Some(r) = sqlx::query(
        "SELECT t.name AS terminal_name, p.id AS point_id, p.name AS point_name, p.inspector_name, \
         s.inspector_account_id FROM terminals t JOIN service_points p ON p.id = t.point_id \
         LEFT JOIN inspection_schedules s ON s.point_id = p.id WHERE t.id = $1",
    )
    .bind(terminal_id.to_string())
    .fetch_optional(&state.db.pool)
    .await?
    else {
        return Ok(());
    };
    let what = match kind {
        "offline" => "终端离线",
        "printer_fault" => "打印机故障",
        "disk_space" => "终端存储空间不足",
        _ => "设备告警",
    };
    let point: String = r.try_get("point_id")?;
    let text = format!(
        "设备告警：{} 的 {} {}{}；请巡检负责人 {} 处理",
        r.try_get::<String, _>("point_name")?,
        r.try_get::<String, _>("terminal_name")?,
        what,
        detail.map(|d| format!("（{}）", d.chars().take(100).collect::<String>())).unwrap_or_default(),
        r.try_get::<String, _>("inspector_name")?,
    );
    let payload = json!({ "text": text, "point_id": point, "terminal_id": terminal_id, "kind": kind });
    let mut tx = state.db.pool.begin().await?;
    use crate::cases::outbox::enqueue_in;
    if let Some(account) = r.try_get::<Option<String>, _>("inspector_account_id")? {
        enqueue_in(&mut tx, "console", "device_alarm", None, &account, payload.clone()).await?;
    }
    enqueue_in(&mut tx, "webhook", "device_alarm", None, "inspector", payload).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn day(y: i64, m: i64, d: i64) -> i64 {
        days_from_civil(y, m, d)
    }

    fn at(y: i64, m: i64, d: i64, hh: i64) -> i64 {
        day_start(day(y, m, d)) + hh * 60 * MIN
    }

    fn weekly(weekday: u8, from: i64, grace: u32) -> Schedule {
        Schedule {
            frequency: InspectionFrequency::Weekly,
            weekday,
            starts_on: from,
            grace_working_days: grace,
        }
    }

    fn cal() -> &'static Calendar {
        Calendar::builtin()
    }

    #[test]
    fn weekly_comes_due_on_its_day_and_is_overdue_after_the_grace_days() {
        // Mondays from Monday 2026-03-02, two working days' grace.
        let s = weekly(1, day(2026, 3, 2), 2);
        // Before the first Monday: upcoming.
        let st = standing(&s, cal(), None, at(2026, 2, 27, 10));
        assert_eq!((st.state, st.due_on), (InspectionState::Upcoming, Some(day(2026, 3, 2))));
        // On Monday and through Wednesday: due.
        for d in [2, 3, 4] {
            let st = standing(&s, cal(), None, at(2026, 3, d, 23));
            assert_eq!((st.state, st.due_on), (InspectionState::Due, Some(day(2026, 3, 2))), "3-{d}");
        }
        // Thursday 00:00 China time: overdue since then.
        let st = standing(&s, cal(), None, at(2026, 3, 5, 0));
        assert_eq!(st.state, InspectionState::Overdue);
        assert_eq!(st.due_on, Some(day(2026, 3, 2)));
        assert_eq!(st.overdue_since, Some(at(2026, 3, 5, 0)));
    }

    #[test]
    fn a_record_in_the_period_makes_it_done_until_the_next_one() {
        let s = weekly(1, day(2026, 3, 2), 2);
        let rec = Some(at(2026, 3, 3, 9));
        let st = standing(&s, cal(), rec, at(2026, 3, 6, 12));
        assert_eq!((st.state, st.due_on), (InspectionState::Done, Some(day(2026, 3, 9))));
        // Next Monday it is due again.
        let st = standing(&s, cal(), rec, at(2026, 3, 9, 8));
        assert_eq!((st.state, st.due_on), (InspectionState::Due, Some(day(2026, 3, 9))));
        // A record from before the period does not count for it.
        let st = standing(&s, cal(), Some(at(2026, 3, 1, 9)), at(2026, 3, 5, 1));
        assert_eq!(st.state, InspectionState::Overdue);
    }

    #[test]
    fn a_missed_inspection_stays_overdue_into_later_periods_until_recorded() {
        let s = weekly(1, day(2026, 3, 2), 2);
        // Nothing recorded for three weeks: overdue, about the latest missed due day.
        let st = standing(&s, cal(), None, at(2026, 3, 24, 10));
        assert_eq!(st.state, InspectionState::Overdue);
        assert_eq!(st.due_on, Some(day(2026, 3, 16)));
        // Next Monday, the previous week's miss still shows (this week's is only due).
        let st = standing(&s, cal(), Some(at(2026, 3, 10, 9)), at(2026, 3, 23, 9));
        assert_eq!((st.state, st.due_on), (InspectionState::Overdue, Some(day(2026, 3, 16))));
        // Recorded late, in the new week: done for it.
        let st = standing(&s, cal(), Some(at(2026, 3, 23, 11)), at(2026, 3, 23, 12));
        assert_eq!((st.state, st.due_on), (InspectionState::Done, Some(day(2026, 3, 30))));
    }

    #[test]
    fn holidays_move_the_due_day_and_count_no_grace() {
        // Fridays; 2026-05-01 (Fri) to 05-05 are the Labour Day holiday: the first working day
        // of that week's period is Wednesday 05-06; grace 1 working day → overdue on 05-08?
        // No: the period ends on Thursday 05-07, so overdue from Friday 05-08 00:00 at the latest.
        let s = weekly(5, day(2026, 4, 24), 1);
        let st = standing(&s, cal(), Some(at(2026, 4, 24, 9)), at(2026, 5, 4, 10));
        assert_eq!((st.state, st.due_on), (InspectionState::Upcoming, Some(day(2026, 5, 6))));
        let st = standing(&s, cal(), Some(at(2026, 4, 24, 9)), at(2026, 5, 6, 10));
        assert_eq!((st.state, st.due_on), (InspectionState::Due, Some(day(2026, 5, 6))));
        let st = standing(&s, cal(), Some(at(2026, 4, 24, 9)), at(2026, 5, 8, 0));
        assert_eq!(st.state, InspectionState::Overdue);
        assert_eq!(st.overdue_since, Some(at(2026, 5, 8, 0)));
        // Grace counts working days: a Friday inspection with 1 day of grace is late on Tuesday
        // (the weekend does not count).
        let st = standing(&s, cal(), Some(at(2026, 4, 24, 9)), at(2026, 4, 27, 23));
        assert_eq!(st.state, InspectionState::Done, "recorded in the period");
        let s2 = weekly(5, day(2026, 3, 6), 1);
        let before = standing(&s2, cal(), Some(at(2026, 3, 1, 9)), at(2026, 3, 9, 23));
        assert_eq!(before.state, InspectionState::Due);
        let after = standing(&s2, cal(), Some(at(2026, 3, 1, 9)), at(2026, 3, 10, 0));
        assert_eq!(after.state, InspectionState::Overdue);
    }

    #[test]
    fn a_period_without_a_working_day_needs_no_inspection() {
        // Thursdays: 2026-10-01 … 10-07 is the National Day holiday.
        let s = weekly(4, day(2026, 9, 24), 0);
        let rec = Some(at(2026, 9, 24, 9));
        let st = standing(&s, cal(), rec, at(2026, 10, 5, 10));
        assert_eq!((st.state, st.due_on), (InspectionState::Upcoming, Some(day(2026, 10, 8))));
        let st = standing(&s, cal(), rec, at(2026, 10, 8, 10));
        assert_eq!((st.state, st.due_on), (InspectionState::Due, Some(day(2026, 10, 8))));
    }

    #[test]
    fn biweekly_keeps_its_weeks_and_monthly_takes_the_first_weekday() {
        let s = Schedule {
            frequency: InspectionFrequency::Biweekly,
            weekday: 3,
            starts_on: day(2026, 3, 2),
            grace_working_days: 2,
        };
        assert_eq!(s.nominal(0), day(2026, 3, 4));
        assert_eq!(s.nominal(1), day(2026, 3, 18));
        let st = standing(&s, cal(), Some(at(2026, 3, 4, 9)), at(2026, 3, 12, 9));
        assert_eq!((st.state, st.due_on), (InspectionState::Done, Some(day(2026, 3, 18))));

        // First Monday of each month, starting mid-March 2026: April 6 first.
        let m = Schedule {
            frequency: InspectionFrequency::Monthly,
            weekday: 1,
            starts_on: day(2026, 3, 10),
            grace_working_days: 2,
        };
        assert_eq!(m.nominal(0), day(2026, 4, 6));
        assert_eq!(m.nominal(1), day(2026, 5, 4));
        // May 4 is a holiday (Labour Day): due on Wednesday May 6.
        assert_eq!(m.due_day(cal(), 1), Some(day(2026, 5, 6)));
        let st = standing(&m, cal(), Some(at(2026, 4, 7, 9)), at(2026, 4, 30, 9));
        assert_eq!((st.state, st.due_on), (InspectionState::Done, Some(day(2026, 5, 6))));
        let st = standing(&m, cal(), Some(at(2026, 4, 7, 9)), at(2026, 5, 11, 9));
        assert_eq!((st.state, st.due_on), (InspectionState::Overdue, Some(day(2026, 5, 6))));
        // A later month: the period is found directly.
        let st = standing(&m, cal(), Some(at(2026, 12, 7, 9)), at(2026, 12, 20, 9));
        assert_eq!((st.state, st.due_on), (InspectionState::Done, Some(day(2027, 1, 4))));
    }

    #[test]
    fn overdue_is_flagged_once_per_missed_due_day() {
        let s = weekly(1, day(2026, 3, 2), 2);
        let st = standing(&s, cal(), None, at(2026, 3, 5, 1));
        assert_eq!(should_flag(&st, None), Some(day(2026, 3, 2)));
        assert_eq!(should_flag(&st, Some(day(2026, 3, 2))), None);
        let later = standing(&s, cal(), None, at(2026, 3, 12, 1));
        assert_eq!(should_flag(&later, Some(day(2026, 3, 2))), Some(day(2026, 3, 9)));
        let due = standing(&s, cal(), None, at(2026, 3, 3, 1));
        assert_eq!(should_flag(&due, None), None);
    }
}
