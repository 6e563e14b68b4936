//! China time and working days: the one place that knows what a date, a working day and a
//! "N working days" deadline are.
//!
//! - Dates are China Standard Time (UTC+8 all year, no daylight saving). A *day number* is the
//!   count of China-time days since 1970-01-01.
//! - The ordinary week works Monday to Friday. [`Calendar`] adds the exceptions: statutory
//!   holidays (法定节假日) and make-up working days (调休). They are data in `calendar_days`,
//!   seeded from `data/cn-calendar-2025-2026.csv` and edited per year by admins through
//!   `/api/v1/calendar/{year}` or a CSV import.
//! - A deadline of N working days ends at the last millisecond of the N-th working day after
//!   the start's China-time day; a pause adds every working day that begins while paused.
//! - [`Calendar`] is plain data (sans-IO): [`load`] reads it from the database, tests build it
//!   from a CSV. [`Calendar::builtin`] is the seeded data compiled in, for code that cannot wait
//!   for the database (the switchboard's rectification deadline through
//!   [`due_after_working_days`]); [`reconcile_deadlines`] re-applies the database calendar to
//!   open rectifications after each edit and from the cases worker.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use shared::api::ErrorBody;
use shared::cases::{
    CalendarDay, CalendarDayKind, CalendarYear, HolidayRule, ImportCalendarReport, ImportCalendarRequest,
    OpeningDay, OpeningHours, PutCalendarYearRequest, WorkingDeadline,
};
use shared::protocol::Role;
use sqlx::Row;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{Db, now_ms};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

pub const DAY_MS: i64 = 86_400_000;
/// China Standard Time is UTC+8 all year.
pub const CST_OFFSET_MS: i64 = 8 * 3_600_000;
/// The seeded calendar, compiled in.
pub const SEED_CSV: &str = include_str!("../data/cn-calendar-2025-2026.csv");
/// Largest CSV accepted by the import.
pub const MAX_CSV_BYTES: usize = 32 * 1024;
/// Most exceptions accepted for one year (a real year has about 40).
pub const MAX_DAYS_PER_YEAR: usize = 100;
/// Years the calendar accepts.
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

// ---------------------------------------------------------------------------------------------
// China-time dates

/// China-time day number of `ms`.
pub fn cst_day(ms: i64) -> i64 {
    (ms + CST_OFFSET_MS).div_euclid(DAY_MS)
}

/// Start (unix ms) of a China-time day number.
pub fn day_start(day: i64) -> i64 {
    day * DAY_MS - CST_OFFSET_MS
}

/// Last millisecond of a China-time day number.
pub fn day_end(day: i64) -> i64 {
    day_start(day + 1) - 1
}

/// Start (unix ms) of the China Standard Time day containing `ms`.
pub fn cst_day_start(ms: i64) -> i64 {
    day_start(cst_day(ms))
}

/// `(year, month, day)` of a day number (Howard Hinnant's algorithm).
pub fn civil(day: i64) -> (i64, i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day number of a civil date (inverse of [`civil`]).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` of the China Standard Time day containing `ms`.
pub fn cst_date(ms: i64) -> String {
    date_of(cst_day(ms))
}

/// Day number of a strict `YYYY-MM-DD` date in [`YEARS`]; `None` for anything else.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !YEARS.contains(&i32::try_from(y).ok()?) || !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let day = days_from_civil(y, m, d);
    (civil(day) == (y, m, d)).then_some(day)
}

/// ISO weekday of a day number: 1 = Monday … 7 = Sunday (1970-01-01 was a Thursday).
pub fn iso_weekday(day: i64) -> u8 {
    // rem_euclid(7) is 0..=6, so the cast is lossless.
    (day + 3).rem_euclid(7) as u8 + 1
}

/// `HH:MM` → minutes after midnight (`24:00` allowed as the end of the day).
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

// ---------------------------------------------------------------------------------------------
// The calendar

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("第 {line} 行: {what}")]
    Line { line: usize, what: String },
    #[error("{0}")]
    Invalid(String),
}

/// The working-day calendar: the ordinary week plus holidays and make-up working days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    exceptions: BTreeMap<i64, CalendarDayKind>,
}

impl Calendar {
    pub fn new(days: impl IntoIterator<Item = (i64, CalendarDayKind)>) -> Self {
        Self { exceptions: days.into_iter().collect() }
    }

    /// The seeded 2025–2026 calendar compiled into the binary.
    pub fn builtin() -> &'static Calendar {
        static BUILTIN: OnceLock<Calendar> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let days = parse_csv(SEED_CSV).unwrap_or_default();
            Calendar::new(days.iter().filter_map(|d| Some((parse_date(&d.date)?, d.kind))))
        })
    }

    /// The exception recorded for a day, if any.
    pub fn exception(&self, day: i64) -> Option<CalendarDayKind> {
        self.exceptions.get(&day).copied()
    }

    pub fn is_working_day(&self, day: i64) -> bool {
        match self.exception(day) {
            Some(CalendarDayKind::Holiday) => false,
            Some(CalendarDayKind::Workday) => true,
            None => iso_weekday(day) <= 5,
        }
    }

    /// Day number of the `n`-th working day after `day` (`day` itself for `n = 0`).
    pub fn add_working_days(&self, day: i64, n: u32) -> i64 {
        let mut day = day;
        let mut left = n;
        while left > 0 {
            day += 1;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The due time of something to be done within `days` working days of `now_ms`: the last
    /// millisecond of the `days`-th working day after `now_ms`'s China-time day; with
    /// `days = 0`, the end of that day.
    pub fn due_after_working_days(&self, now_ms: i64, days: u32) -> i64 {
        day_end(self.add_working_days(cst_day(now_ms), days))
    }

    /// Working days that begin (at 00:00 China time) in `[from_ms, to_ms)`: what a pause of the
    /// clock over that span adds to a deadline.
    pub fn working_days_starting_in(&self, from_ms: i64, to_ms: i64) -> u32 {
        if to_ms <= from_ms {
            return 0;
        }
        // First day starting at or after `from_ms`, last day starting before `to_ms`.
        let first = cst_day(from_ms - 1) + 1;
        let last = cst_day(to_ms - 1);
        (first..=last).filter(|&d| self.is_working_day(d)).count().try_into().unwrap_or(u32::MAX)
    }

    /// The deadline of `days` working days from `start_ms` with the clock paused over
    /// `pauses` (`[from, to)`; an open pause runs until `now_ms`): every working day beginning
    /// during a pause moves the deadline one working day later.
    pub fn deadline_with_pauses(
        &self,
        start_ms: i64,
        days: u32,
        pauses: &[(i64, Option<i64>)],
        now_ms: i64,
    ) -> i64 {
        let paused: u32 = pauses
            .iter()
            .map(|&(from, to)| self.working_days_starting_in(from, to.unwrap_or(now_ms)))
            .fold(0, u32::saturating_add);
        self.due_after_working_days(start_ms, days.saturating_add(paused))
    }

    /// Working days remaining from `now_ms`'s day until `due_ms`'s day (0 when due today or
    /// past).
    pub fn working_days_left(&self, now_ms: i64, due_ms: i64) -> u32 {
        let (a, b) = (cst_day(now_ms), cst_day(due_ms));
        if b <= a {
            return 0;
        }
        ((a + 1)..=b).filter(|&d| self.is_working_day(d)).count().try_into().unwrap_or(u32::MAX)
    }

    /// The exceptions of one year, oldest first.
    pub fn year(&self, year: i32) -> impl Iterator<Item = (i64, CalendarDayKind)> + '_ {
        let from = days_from_civil(i64::from(year), 1, 1);
        let to = days_from_civil(i64::from(year) + 1, 1, 1);
        self.exceptions.range(from..to).map(|(&d, &k)| (d, k))
    }

    /// Working days in a year.
    pub fn working_days_in(&self, year: i32) -> u32 {
        let from = days_from_civil(i64::from(year), 1, 1);
        let to = days_from_civil(i64::from(year) + 1, 1, 1);
        (from..to).filter(|&d| self.is_working_day(d)).count().try_into().unwrap_or(u32::MAX)
    }
}

/// `days` working days after `now_ms` by the seeded calendar ([`Calendar::builtin`]). Code that
/// can read the database uses [`load`] instead; [`reconcile_deadlines`] brings what this wrote
/// in line with the database calendar.
pub fn due_after_working_days(now_ms: i64, days: u32) -> i64 {
    Calendar::builtin().due_after_working_days(now_ms, days)
}

fn check_day(d: &CalendarDay) -> Result<i64, String> {
    let day = parse_date(d.date.trim())
        .ok_or_else(|| format!("日期须为 YYYY-MM-DD (invalid date {:?})", d.date))?;
    let bad = |s: &str, max: usize| s.chars().count() > max || s.chars().any(char::is_control);
    if bad(&d.festival, 64) || bad(&d.festival_zh, 32) {
        return Err("节日名称过长或含控制字符 (invalid festival name)".into());
    }
    match (d.kind, iso_weekday(day) <= 5) {
        (CalendarDayKind::Workday, true) => {
            Err(format!("{} 是工作日，不能设为调休上班 (already a weekday)", d.date))
        }
        _ => Ok(day),
    }
}

/// Parses the calendar CSV (`date,kind,festival,festival_zh`, header first, `kind` is
/// `holiday` or `workday`); refuses the whole file on the first bad line or a repeated date.
pub fn parse_csv(text: &str) -> Result<Vec<CalendarDay>, CalendarError> {
    if text.len() > MAX_CSV_BYTES {
        return Err(CalendarError::Invalid(format!("CSV 超过 {} KiB (too large)", MAX_CSV_BYTES / 1024)));
    }
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, h)) if h.trim().trim_start_matches('\u{feff}') == "date,kind,festival,festival_zh" => {}
        _ => {
            return Err(CalendarError::Invalid(
                "首行须为 date,kind,festival,festival_zh (missing header)".into(),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, line) in lines {
        let err = |what: String| CalendarError::Line { line: i + 1, what };
        let cols: Vec<&str> = line.trim().split(',').map(str::trim).collect();
        let [date, kind, festival, festival_zh] = cols[..] else {
            return Err(err("须为 4 列 (expected 4 columns)".into()));
        };
        let kind = match kind {
            "holiday" => CalendarDayKind::Holiday,
            "workday" => CalendarDayKind::Workday,
            _ => return Err(err("kind 须为 holiday 或 workday (invalid kind)".into())),
        };
        let d = CalendarDay {
            date: date.to_owned(),
            kind,
            festival: festival.to_owned(),
            festival_zh: festival_zh.to_owned(),
        };
        let day = check_day(&d).map_err(err)?;
        if !seen.insert(day) {
            return Err(err(format!("日期重复 (repeated date {date})")));
        }
        out.push(d);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Opening hours

/// Checks a schedule's bounds and formats.
pub fn check_opening_hours(h: &OpeningHours) -> Result<(), String> {
    if h.weekly.len() > 14 || h.closures.len() > 50 {
        return Err("最多 14 个时段、50 个停业日期段 (too many entries)".into());
    }
    for w in &h.weekly {
        if w.weekdays.is_empty() || w.weekdays.len() > 7 || w.weekdays.iter().any(|d| !(1..=7).contains(d)) {
            return Err("weekdays 须为 1（周一）到 7（周日） (invalid weekday)".into());
        }
        match (parse_hhmm(&w.open), parse_hhmm(&w.close)) {
            (Some(o), Some(c)) if o < c => {}
            _ => return Err("时段须为 HH:MM 且开始早于结束 (invalid hours)".into()),
        }
    }
    for c in &h.closures {
        match (parse_date(&c.from), parse_date(&c.to)) {
            (Some(a), Some(b)) if a <= b => {}
            _ => return Err("停业日期须为 YYYY-MM-DD 且起始不晚于结束 (invalid closure)".into()),
        }
        if c.reason.trim().is_empty()
            || c.reason.chars().count() > 100
            || c.reason.chars().any(char::is_control)
        {
            return Err("停业原因须为 1–100 个字符 (invalid reason)".into());
        }
    }
    Ok(())
}

/// One day's opening at a point: `(open, close)` minute ranges and a note.
pub fn opening_on(h: &OpeningHours, cal: &Calendar, day: i64) -> (Vec<(u16, u16)>, String) {
    if let Some(c) = h.closures.iter().find(|c| {
        parse_date(&c.from).is_some_and(|a| a <= day) && parse_date(&c.to).is_some_and(|b| day <= b)
    }) {
        return (Vec::new(), format!("暂停开放：{}", c.reason));
    }
    let ranges_of = |wd: u8| -> Vec<(u16, u16)> {
        h.weekly
            .iter()
            .filter(|w| w.weekdays.contains(&wd))
            .filter_map(|w| Some((parse_hhmm(&w.open)?, parse_hhmm(&w.close)?)))
            .collect()
    };
    let wd = iso_weekday(day);
    match (h.holiday_rule, cal.exception(day)) {
        (HolidayRule::IgnoreCalendar, _) | (_, None) => (ranges_of(wd), String::new()),
        (_, Some(CalendarDayKind::Holiday)) => (Vec::new(), "法定节假日".into()),
        (HolidayRule::FollowCalendar, Some(CalendarDayKind::Workday)) => (ranges_of(1), "调休上班".into()),
        (HolidayRule::ClosedOnHolidays, Some(CalendarDayKind::Workday)) => (ranges_of(wd), String::new()),
    }
}

/// Whether a point is open at `ms`.
pub fn is_open(h: &OpeningHours, cal: &Calendar, ms: i64) -> bool {
    let day = cst_day(ms);
    let minute = u16::try_from((ms - day_start(day)) / 60_000).unwrap_or(0);
    opening_on(h, cal, day).0.iter().any(|&(o, c)| o <= minute && minute < c)
}

/// When a point opens next after `now_ms` (the start of its next opening range, within 60
/// days); `None` when it has no opening in that time. `now_ms` itself if it is open then.
pub fn next_open_at(h: &OpeningHours, cal: &Calendar, now_ms: i64) -> Option<i64> {
    let today = cst_day(now_ms);
    (today..today + 60).find_map(|day| {
        let mut ranges = opening_on(h, cal, day).0;
        ranges.sort_unstable();
        ranges.into_iter().find_map(|(o, c)| {
            let (from, to) = (day_start(day) + i64::from(o) * 60_000, day_start(day) + i64::from(c) * 60_000);
            (now_ms < to).then_some(from.max(now_ms))
        })
    })
}

/// The start of the next range that begins after `now_ms` (within 60 days): when a roster next
/// brings someone on duty, a range already under way not counting.
pub fn next_start_after(h: &OpeningHours, cal: &Calendar, now_ms: i64) -> Option<i64> {
    let today = cst_day(now_ms);
    (today..today + 60).find_map(|day| {
        let mut starts: Vec<i64> =
            opening_on(h, cal, day).0.iter().map(|&(o, _)| day_start(day) + i64::from(o) * 60_000).collect();
        starts.sort_unstable();
        starts.into_iter().find(|&from| from > now_ms)
    })
}

/// A moment as the kiosk says it: `12月7日（周一）09:00` (China time).
pub fn cst_when(ms: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let day = cst_day(ms);
    let (_, m, d) = civil(day);
    let minute = (ms - day_start(day)) / 60_000;
    let wd = WEEKDAYS[usize::from(iso_weekday(day).clamp(1, 7)) - 1];
    format!("{m}月{d}日（周{wd}）{:02}:{:02}", minute / 60, minute % 60)
}

/// The next seven days' hours from `now_ms`'s day.
pub fn week_from(h: &OpeningHours, cal: &Calendar, now_ms: i64) -> Vec<OpeningDay> {
    let today = cst_day(now_ms);
    (today..today + 7)
        .map(|day| {
            let (ranges, note) = opening_on(h, cal, day);
            OpeningDay {
                date: date_of(day),
                hours: ranges
                    .iter()
                    .map(|&(o, c)| format!("{:02}:{:02}-{:02}:{:02}", o / 60, o % 60, c / 60, c % 60))
                    .collect(),
                note,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Storage

/// The calendar as stored.
pub async fn load(db: &Db) -> Result<Calendar, sqlx::Error> {
    let rows = sqlx::query("SELECT day, kind FROM calendar_days").fetch_all(&db.pool).await?;
    let mut days = Vec::with_capacity(rows.len());
    for r in &rows {
        let day: String = r.try_get("day")?;
        let kind = match r.try_get::<String, _>("kind")?.as_str() {
            "holiday" => CalendarDayKind::Holiday,
            _ => CalendarDayKind::Workday,
        };
        if let Some(d) = parse_date(&day) {
            days.push((d, kind));
        }
    }
    Ok(Calendar::new(days))
}

fn kind_str(k: CalendarDayKind) -> &'static str {
    match k {
        CalendarDayKind::Holiday => "holiday",
        CalendarDayKind::Workday => "workday",
    }
}

/// Replaces the stored exceptions of each year in `years` with `days`, in one transaction.
async fn replace_years(db: &Db, years: &[i32], days: &[CalendarDay], actor: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let now = now_ms();
    for &y in years {
        sqlx::query("DELETE FROM calendar_days WHERE day >= $1 AND day <= $2")
            .bind(format!("{y:04}-01-01"))
            .bind(format!("{y:04}-12-31"))
            .execute(&mut *tx)
            .await?;
    }
    for d in days {
        sqlx::query(
            "INSERT INTO calendar_days (day, kind, festival, festival_zh, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(d.date.trim())
        .bind(kind_str(d.kind))
        .bind(d.festival.trim())
        .bind(d.festival_zh.trim())
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Re-applies the stored calendar to the deadlines of open rectifications (15 working days
/// after the rating) that were computed with the seeded calendar (by the switchboard) or with
/// one of `previous` (the stored calendar before an edit); a deadline set otherwise is left
/// alone. Returns how many changed.
pub async fn reconcile_deadlines(db: &Db, previous: &[&Calendar]) -> Result<u64, sqlx::Error> {
    let cal = load(db).await?;
    let days = crate::api::stats::RECTIFICATION_WORKING_DAYS;
    let rows = sqlx::query("SELECT id, created_at, due_at FROM rectifications WHERE status = 'open'")
        .fetch_all(&db.pool)
        .await?;
    let mut changed = 0;
    for r in &rows {
        let id: String = r.try_get("id")?;
        let created: i64 = r.try_get("created_at")?;
        let due: i64 = r.try_get("due_at")?;
        let want = cal.due_after_working_days(created, days);
        let stamped = std::iter::once(Calendar::builtin())
            .chain(previous.iter().copied())
            .any(|c| c.due_after_working_days(created, days) == due);
        if want != due && stamped {
            changed += sqlx::query("UPDATE rectifications SET due_at = $1 WHERE id = $2 AND status = 'open'")
                .bind(want)
                .bind(id)
                .execute(&db.pool)
                .await?
                .rows_affected();
        }
    }
    Ok(changed)
}

// ---------------------------------------------------------------------------------------------
// REST: /api/v1/calendar

fn check_year(year: i32) -> ApiResult<()> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(ApiError::bad_request("年份须在 2000 到 2100 之间 (year out of range)"))
    }
}

async fn year_view(db: &Db, year: i32) -> ApiResult<CalendarYear> {
    let rows = sqlx::query(
        "SELECT day, kind, festival, festival_zh FROM calendar_days WHERE day >= $1 AND day <= $2 ORDER BY day",
    )
    .bind(format!("{year:04}-01-01"))
    .bind(format!("{year:04}-12-31"))
    .fetch_all(&db.pool)
    .await?;
    let mut days = Vec::with_capacity(rows.len());
    for r in &rows {
        days.push(CalendarDay {
            date: r.try_get("day")?,
            kind: if r.try_get::<String, _>("kind")? == "holiday" {
                CalendarDayKind::Holiday
            } else {
                CalendarDayKind::Workday
            },
            festival: r.try_get("festival")?,
            festival_zh: r.try_get("festival_zh")?,
        });
    }
    let cal = Calendar::new(days.iter().filter_map(|d| Some((parse_date(&d.date)?, d.kind))));
    Ok(CalendarYear { year, working_days: cal.working_days_in(year), days })
}

/// A year's holidays and make-up working days (any signed-in person).
#[utoipa::path(get, path = "/api/v1/calendar/{year}", tag = "calendar", params(("year" = i32, Path, minimum = 2000, maximum = 2100)),
    responses((status = 200, body = CalendarYear), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn get_year(
    State(state): State<AppState>,
    p: Principal,
    Path(year): Path<i32>,
) -> ApiResult<Json<CalendarYear>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    check_year(year)?;
    Ok(Json(year_view(&state.db, year).await?))
}

/// Replace a year's holidays and make-up working days (admin). Open rectifications' deadlines
/// follow at once.
#[utoipa::path(put, path = "/api/v1/calendar/{year}", tag = "calendar", params(("year" = i32, Path, minimum = 2000, maximum = 2100)),
    request_body = PutCalendarYearRequest,
    responses((status = 200, body = CalendarYear), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_year(
    State(state): State<AppState>,
    p: Principal,
    Path(year): Path<i32>,
    Json(req): Json<PutCalendarYearRequest>,
) -> ApiResult<Json<CalendarYear>> {
    p.require(&[Role::Admin])?;
    check_year(year)?;
    if req.days.len() > MAX_DAYS_PER_YEAR {
        return Err(ApiError::validation(format!("一年最多 {MAX_DAYS_PER_YEAR} 天 (too many days)")));
    }
    let mut seen = std::collections::HashSet::new();
    for d in &req.days {
        let day = check_day(d).map_err(ApiError::validation)?;
        if civil(day).0 != i64::from(year) {
            return Err(ApiError::validation(format!("{} 不在 {year} 年 (date outside the year)", d.date)));
        }
        if !seen.insert(day) {
            return Err(ApiError::validation(format!("日期重复 (repeated date {})", d.date)));
        }
        check_text("festival_zh", &d.festival_zh, 32, true)?;
        check_text("festival", &d.festival, 64, true)?;
    }
    let before = load(&state.db).await?;
    replace_years(&state.db, &[year], &req.days, &p.id.to_string()).await?;
    let changed = reconcile_deadlines(&state.db, &[&before]).await?;
    let view = year_view(&state.db, year).await?;
    state
        .audit(AuditRecord::new("calendar.update", "calendar").by(&p).target(year).detail(json!({
            "days": view.days.len(),
            "working_days": view.working_days,
            "deadlines_moved": changed,
        })))
        .await;
    Ok(Json(view))
}

/// Import the calendar CSV (admin): every year in the file is replaced; a bad line refuses the
/// whole file and changes nothing.
#[utoipa::path(post, path = "/api/v1/calendar/import", tag = "calendar", request_body = ImportCalendarRequest,
    responses((status = 200, body = ImportCalendarReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<ImportCalendarRequest>,
) -> ApiResult<Json<ImportCalendarReport>> {
    p.require(&[Role::Admin])?;
    let days = parse_csv(&req.csv).map_err(|e| ApiError::validation(e.to_string()))?;
    let mut years: Vec<i32> = days
        .iter()
        .filter_map(|d| parse_date(&d.date))
        .filter_map(|d| i32::try_from(civil(d).0).ok())
        .collect();
    years.sort_unstable();
    years.dedup();
    for &y in &years {
        let n = days.iter().filter(|d| d.date.starts_with(&format!("{y:04}-"))).count();
        if n > MAX_DAYS_PER_YEAR {
            return Err(ApiError::validation(format!("{y} 年超过 {MAX_DAYS_PER_YEAR} 天 (too many days)")));
        }
    }
    let before = load(&state.db).await?;
    replace_years(&state.db, &years, &days, &p.id.to_string()).await?;
    let changed = reconcile_deadlines(&state.db, &[&before]).await?;
    let report = ImportCalendarReport { years, days: u32::try_from(days.len()).unwrap_or(u32::MAX) };
    state
        .audit(AuditRecord::new("calendar.import", "calendar").by(&p).detail(json!({
            "years": report.years, "days": report.days, "deadlines_moved": changed,
        })))
        .await;
    Ok(Json(report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadlineQuery {
    /// Start (unix ms, in the years 2000–2099); default now.
    #[param(value_type = Option<i64>, minimum = 946_656_000_000_i64, maximum = 4_102_415_999_999_i64)]
    pub from: Option<String>,
    /// Working days, 0–250.
    #[param(value_type = i64, minimum = 0, maximum = 250)]
    pub days: String,
}

/// The deadline N working days from a time, by the stored calendar (any signed-in person).
#[utoipa::path(get, path = "/api/v1/calendar/deadline", tag = "calendar", params(DeadlineQuery),
    responses((status = 200, body = WorkingDeadline), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn deadline(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<DeadlineQuery>,
) -> ApiResult<Json<WorkingDeadline>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    let days = match q.days.parse::<u32>() {
        Ok(d) if d <= 250 => d,
        _ => return Err(ApiError::bad_request("days 须为 0 到 250 的整数 (out of range)")),
    };
    let from = match q.from.as_deref() {
        None => now_ms(),
        Some(s) => match s.parse::<i64>() {
            Ok(ms)
                if (day_start(days_from_civil(2000, 1, 1))..day_start(days_from_civil(2100, 1, 1)))
                    .contains(&ms) =>
            {
                ms
            }
            _ => {
                return Err(ApiError::bad_request("from 须为 2000–2099 年间的 unix 毫秒时间 (out of range)"));
            }
        },
    };
    let cal = load(&state.db).await?;
    let due_at = cal.due_after_working_days(from, days);
    Ok(Json(WorkingDeadline { from, days, due_at, due_date: cst_date(due_at) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a China-time wall-clock time.
    fn cst(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
        day_start(days_from_civil(y, m, d)) + (h * 60 + min) * 60_000
    }

    fn end_of(y: i64, m: i64, d: i64) -> i64 {
        day_end(days_from_civil(y, m, d))
    }

    fn day(s: &str) -> i64 {
        parse_date(s).expect("date")
    }

    #[test]
    fn the_seed_parses_and_matches_the_state_council_notices() {
        let days = parse_csv(SEED_CSV).expect("seed");
        assert!(days.len() > 60, "{}", days.len());
        let cal = Calendar::builtin();
        // Spring Festival 2026: Feb 15–23 off (nine days), Saturday Feb 14 and 28 working.
        for d in 15..=23 {
            assert!(!cal.is_working_day(day(&format!("2026-02-{d:02}"))), "Feb {d}");
        }
        assert!(cal.is_working_day(day("2026-02-14")), "Saturday Feb 14 is a make-up day");
        assert!(cal.is_working_day(day("2026-02-28")), "Saturday Feb 28 is a make-up day");
        assert!(cal.is_working_day(day("2026-02-13")) && cal.is_working_day(day("2026-02-24")));
        assert!(!cal.is_working_day(day("2026-02-08")), "an ordinary Sunday");
        // Mid-Autumn (Sep 25–27) and National Day (Oct 1–7) 2026, Sep 20 and Oct 10 working.
        for d in ["2026-09-25", "2026-09-26", "2026-09-27", "2026-10-01", "2026-10-05", "2026-10-07"] {
            assert!(!cal.is_working_day(day(d)), "{d}");
        }
        for d in ["2026-09-20", "2026-10-10", "2026-09-28", "2026-10-08", "2026-10-09"] {
            assert!(cal.is_working_day(day(d)), "{d}");
        }
        // Both years have 248 working days once holidays and make-up days are applied.
        assert_eq!(cal.working_days_in(2025), 248);
        assert_eq!(cal.working_days_in(2026), 248);
    }

    #[test]
    fn a_deadline_skips_the_spring_festival_2026() {
        let cal = Calendar::builtin();
        // Thursday Feb 12: Fri 13, Sat 14 (make-up), then Feb 15–23 off, Tue 24, Wed 25.
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 12, 10, 0), 1), end_of(2026, 2, 13));
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 12, 10, 0), 2), end_of(2026, 2, 14));
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 12, 10, 0), 3), end_of(2026, 2, 24));
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 12, 10, 0), 5), end_of(2026, 2, 26));
        // 10 working days from Feb 12: 13, 14, 24, 25, 26, 27, 28 (Saturday, make-up), Mar 2–4.
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 12, 10, 0), 10), end_of(2026, 3, 4));
        // Received during the holiday: the first working day after it counts as day one.
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 18, 9, 0), 1), end_of(2026, 2, 24));
        assert_eq!(cal.due_after_working_days(cst(2026, 2, 18, 9, 0), 0), end_of(2026, 2, 18));
    }

    #[test]
    fn a_deadline_crosses_mid_autumn_and_national_day_2026() {
        let cal = Calendar::builtin();
        // Thursday Sep 24: Sep 25–27 off, Mon 28, Tue 29, Wed 30, Oct 1–7 off, Thu 8, Fri 9,
        // Sat 10 (make-up), Mon 12.
        assert_eq!(cal.due_after_working_days(cst(2026, 9, 24, 16, 0), 3), end_of(2026, 9, 30));
        assert_eq!(cal.due_after_working_days(cst(2026, 9, 24, 16, 0), 5), end_of(2026, 10, 9));
        assert_eq!(cal.due_after_working_days(cst(2026, 9, 24, 16, 0), 6), end_of(2026, 10, 10));
        assert_eq!(cal.due_after_working_days(cst(2026, 9, 24, 16, 0), 7), end_of(2026, 10, 12));
        // Saturday Sep 19 then make-up Sunday Sep 20 is day one.
        assert_eq!(cal.due_after_working_days(cst(2026, 9, 19, 10, 0), 1), end_of(2026, 9, 20));
    }

    #[test]
    fn a_pause_moves_the_deadline_by_the_working_days_it_covered() {
        let cal = Calendar::builtin();
        let start = cst(2026, 11, 23, 10, 0); // Monday
        assert_eq!(cal.deadline_with_pauses(start, 5, &[], start), end_of(2026, 11, 30));
        // Paused Tuesday 15:00 to Thursday 11:00: Wednesday and Thursday began while paused.
        let pause = (cst(2026, 11, 24, 15, 0), Some(cst(2026, 11, 26, 11, 0)));
        assert_eq!(cal.deadline_with_pauses(start, 5, &[pause], start), end_of(2026, 12, 2));
        // A pause within one day adds nothing; one over a weekend adds nothing either.
        let short = (cst(2026, 11, 24, 9, 0), Some(cst(2026, 11, 24, 17, 0)));
        let weekend = (cst(2026, 11, 27, 18, 0), Some(cst(2026, 11, 29, 20, 0)));
        assert_eq!(cal.deadline_with_pauses(start, 5, &[short, weekend], start), end_of(2026, 11, 30));
        // A pause still open runs until now.
        let open = (cst(2026, 11, 25, 12, 0), None);
        assert_eq!(cal.deadline_with_pauses(start, 5, &[open], cst(2026, 11, 27, 8, 0)), end_of(2026, 12, 2));
        // A pause across the Spring Festival counts only its working days (Feb 14 and 24).
        let fest = (cst(2026, 2, 13, 12, 0), Some(cst(2026, 2, 24, 12, 0)));
        assert_eq!(cal.working_days_starting_in(fest.0, fest.1.unwrap_or(0)), 2);
    }

    #[test]
    fn the_ordinary_week_holds_outside_the_data() {
        let cal = Calendar::default();
        // 2026-11-23 is a Monday.
        assert_eq!(cal.due_after_working_days(cst(2026, 11, 23, 10, 0), 5), end_of(2026, 11, 30));
        assert_eq!(cal.due_after_working_days(cst(2026, 11, 28, 9, 0), 15), end_of(2026, 12, 18));
        // China time: Friday 23:30 CST is still Friday; Monday 07:00 CST is Sunday in UTC.
        assert_eq!(cal.due_after_working_days(cst(2026, 11, 27, 23, 30), 1), end_of(2026, 11, 30));
        assert_eq!(cal.due_after_working_days(cst(2026, 11, 30, 7, 0), 1), end_of(2026, 12, 1));
        assert_eq!(cal.working_days_left(cst(2026, 11, 23, 10, 0), end_of(2026, 11, 30)), 5);
    }

    #[test]
    fn deadlines_are_monotonic_and_end_on_working_days() {
        let cal = Calendar::builtin();
        let start = cst(2026, 1, 1, 0, 0);
        for hour in (0..(24 * 300)).step_by(7) {
            let now = start + hour * 3_600_000;
            let mut last = now;
            for days in 0..16 {
                let due = cal.due_after_working_days(now, days);
                assert!(due >= last, "monotonic");
                last = due;
                assert_eq!(cst_day_start(due + 1), due + 1, "ends at the end of a China-time day");
                if days > 0 {
                    assert!(cal.is_working_day(cst_day(due)), "ends on a working day");
                }
            }
        }
    }

    #[test]
    fn dates_round_trip_and_hostile_dates_are_refused() {
        assert_eq!(cst_date(cst(2026, 11, 22, 23, 59)), "2026-11-22");
        assert_eq!(cst_date(cst(2024, 2, 29, 12, 0)), "2024-02-29");
        assert_eq!(cst_day_start(cst(2026, 11, 22, 15, 0)), cst(2026, 11, 22, 0, 0));
        for d in 0..40_000 {
            assert_eq!(parse_date(&date_of(d + 11_000)), Some(d + 11_000).filter(|&x| civil(x).0 <= 2100));
        }
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-2-1",
            "２０２６-01-01",
            "1899-01-01",
            "2026-01-01x",
            "",
            "2026/01/01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(iso_weekday(day("2026-11-23")), 1);
        assert_eq!(iso_weekday(day("2026-11-29")), 7);
    }

    #[test]
    fn the_csv_import_refuses_bad_files_whole() {
        let ok = "date,kind,festival,festival_zh\n2027-01-01,holiday,New Year's Day,元旦\n";
        assert_eq!(parse_csv(ok).expect("ok").len(), 1);
        for bad in [
            "",
            "2027-01-01,holiday,x,y\n",
            "date,kind,festival,festival_zh\n2027-01-01,holiday,x\n",
            "date,kind,festival,festival_zh\n2027-01-01,vacation,x,y\n",
            "date,kind,festival,festival_zh\n2027-02-30,holiday,x,y\n",
            "date,kind,festival,festival_zh\n2027-01-01,holiday,x,y\n2027-01-01,holiday,x,y\n",
            // A Monday cannot be a make-up working day.
            "date,kind,festival,festival_zh\n2027-01-04,workday,x,y\n",
        ] {
            assert!(parse_csv(bad).is_err(), "{bad:?}");
        }
        let huge = format!("date,kind,festival,festival_zh\n{}", "x".repeat(MAX_CSV_BYTES));
        assert!(parse_csv(&huge).is_err());
    }

    #[test]
    fn opening_hours_follow_the_calendar() {
        use shared::cases::{Closure, WeekdayHours};
        let cal = Calendar::builtin();
        let h = OpeningHours {
            weekly: vec![
                WeekdayHours { weekdays: vec![1, 2, 3, 4, 5], open: "09:00".into(), close: "17:00".into() },
                WeekdayHours { weekdays: vec![6], open: "09:00".into(), close: "12:00".into() },
            ],
            holiday_rule: HolidayRule::FollowCalendar,
            closures: vec![Closure {
                from: "2026-12-07".into(),
                to: "2026-12-08".into(),
                reason: "装修".into(),
            }],
        };
        assert!(check_opening_hours(&h).is_ok());
        assert!(is_open(&h, cal, cst(2026, 11, 23, 9, 0)));
        assert!(!is_open(&h, cal, cst(2026, 11, 23, 17, 0)));
        assert!(is_open(&h, cal, cst(2026, 11, 28, 11, 59)), "Saturday morning");
        assert!(!is_open(&h, cal, cst(2026, 11, 29, 10, 0)), "Sunday");
        assert!(!is_open(&h, cal, cst(2026, 2, 16, 10, 0)), "Spring Festival");
        assert!(is_open(&h, cal, cst(2026, 2, 28, 16, 0)), "make-up Saturday has Monday's hours");
        assert!(!is_open(&h, cal, cst(2026, 12, 8, 10, 0)), "closure");
        let week = week_from(&h, cal, cst(2026, 12, 5, 8, 0));
        assert_eq!(week[0].hours, vec!["09:00-12:00"]);
        assert_eq!(week[2].note, "暂停开放：装修");
        let ignore = OpeningHours { holiday_rule: HolidayRule::IgnoreCalendar, ..h.clone() };
        assert!(is_open(&ignore, cal, cst(2026, 2, 16, 10, 0)));
        let closed = OpeningHours { holiday_rule: HolidayRule::ClosedOnHolidays, ..h.clone() };
        assert!(!is_open(&closed, cal, cst(2026, 2, 16, 10, 0)));
        assert!(!is_open(&closed, cal, cst(2026, 2, 28, 16, 0)), "Saturday afternoon as usual");
        let mut bad = h.clone();
        bad.weekly[0].close = "08:00".into();
        assert!(check_opening_hours(&bad).is_err());
        bad.weekly[0] = WeekdayHours { weekdays: vec![8], open: "09:00".into(), close: "10:00".into() };
        assert!(check_opening_hours(&bad).is_err());
    }
}
