//! Terminal health alarms: the rule deciding when an `offline`, `printer_fault` or `disk_space`
//! alarm (the terminal's disk use near its bound, as its heartbeat says) opens or clears ([`decide`], sans-IO with an explicit `now`), and the monitor task that feeds it
//! from the database every `health_check_interval` and applies what it decides. A heartbeat
//! runs the same rule for its terminal at once, so an alarm clears as soon as it reports.
//! Raising and clearing are audited (`terminal.alarm_raise`, `terminal.alarm_clear`); a
//! partial unique index keeps at most one open alarm per terminal and kind, so the task and a
//! heartbeat racing each other cannot open two. Connected supervisors and admins get a
//! `terminal_alarm` message for each change.
//!
//! Device alarms follow the point's opening hours ([`alarms_due`]): while the point is closed
//! by its structured hours and the working-day calendar no alarm is raised (terminals are
//! switched off at night and on holidays); an alarm already open stays open and listed, is
//! not raised again and still clears when the terminal reports; once the point opens, a
//! terminal still offline or faulty raises its alarm then. A point without structured hours
//! is open around the clock.

use serde_json::json;
use shared::api::{AlarmKind, TerminalHealthReport};
use sqlx::Row;
use uuid::Uuid;

use std::collections::HashMap;

use shared::cases::OpeningHours;

use crate::audit::AuditRecord;
use crate::calendar::{self, Calendar};
use crate::db::{new_id, now_ms, parse_id};
use crate::error::ApiResult;
use crate::state::AppState;

/// One active terminal as the rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub terminal_id: Uuid,
    /// Last contact of any kind (heartbeat, device token), else its enrollment; `None`: never.
    pub last_contact: Option<i64>,
    /// The printer fault of its last heartbeat, if any (see `PrinterHealth::fault`).
    pub printer_fault: Option<String>,
    /// The disk alarm of its last heartbeat, if any (see `DiskHealth::alarm`).
    pub disk_fault: Option<String>,
    /// Whether its point is open now ([`alarms_due`]): no alarm is raised while it is closed.
    pub point_open: bool,
}

/// An alarm that is open now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlarm {
    pub id: Uuid,
    pub terminal_id: Uuid,
    pub kind: AlarmKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Raise { terminal_id: Uuid, kind: AlarmKind, detail: String },
    Clear { alarm_id: Uuid, terminal_id: Uuid, kind: AlarmKind, reason: &'static str },
}

/// Whether a terminal last in contact at `last_contact` counts as online at `now`.
pub fn is_online(last_contact: Option<i64>, now: i64, offline_after_ms: i64) -> bool {
    last_contact.is_some_and(|t| now - t <= offline_after_ms)
}

/// Whether a point's device alarms may be raised at `now`: by its structured opening hours and
/// the working-day calendar (holidays closed, make-up working days open, per its holiday
/// rule); a point without structured hours is open around the clock.
pub fn alarms_due(hours: Option<&OpeningHours>, cal: &Calendar, now: i64) -> bool {
    hours.is_none_or(|h| calendar::is_open(h, cal, now))
}

/// The alarms to open and close, given the active terminals, the open alarms and the time.
/// Nothing is raised for a terminal whose point is closed (`point_open`); its open alarms stay
/// and still clear. Open alarms of terminals not in `active` (revoked, re-enrolling) are cleared.
pub fn decide(active: &[Observed], open: &[OpenAlarm], now: i64, offline_after_ms: i64) -> Vec<Decision> {
    let mut out = Vec::new();
    let open_of = |t: Uuid, k: AlarmKind| open.iter().find(|a| a.terminal_id == t && a.kind == k);
    for t in active {
        let offline = t.last_contact.is_some() && !is_online(t.last_contact, now, offline_after_ms);
        match (offline, open_of(t.terminal_id, AlarmKind::Offline)) {
            (true, None) if t.point_open => out.push(Decision::Raise {
                terminal_id: t.terminal_id,
                kind: AlarmKind::Offline,
                detail: format!(
                    "超过 {} 秒未联系 (no contact for {} s)",
                    offline_after_ms / 1000,
                    (now - t.last_contact.unwrap_or(now)) / 1000
                ),
            }),
            (false, Some(a)) => out.push(Decision::Clear {
                alarm_id: a.id,
                terminal_id: t.terminal_id,
                kind: AlarmKind::Offline,
                reason: "back_online",
            }),
            _ => {}
        }
        for (fault, kind, reason) in [
            (&t.printer_fault, AlarmKind::PrinterFault, "printer_ok"),
            (&t.disk_fault, AlarmKind::DiskSpace, "disk_ok"),
        ] {
            match (fault, open_of(t.terminal_id, kind)) {
                (Some(f), None) if t.point_open => {
                    out.push(Decision::Raise { terminal_id: t.terminal_id, kind, detail: f.clone() })
                }
                (None, Some(a)) => {
                    out.push(Decision::Clear { alarm_id: a.id, terminal_id: t.terminal_id, kind, reason })
                }
                _ => {}
            }
        }
    }
    for a in open {
        if !active.iter().any(|t| t.terminal_id == a.terminal_id) {
            out.push(Decision::Clear {
                alarm_id: a.id,
                terminal_id: a.terminal_id,
                kind: a.kind,
                reason: "terminal_inactive",
            });
        }
    }
    out
}

/// Reads the active terminals (or only `only`) and their open alarms, decides and applies.
pub async fn sweep(state: &AppState, only: Option<Uuid>, now: i64) -> ApiResult<()> {
    let filter = only.map(|u| u.to_string()).unwrap_or_default();
    let rows = sqlx::query(
        "SELECT t.id, t.point_id, COALESCE(t.last_seen_at, t.enrolled_at) AS last_contact, h.report, \
         o.schedule FROM terminals t LEFT JOIN terminal_health h ON h.terminal_id = t.id \
         LEFT JOIN point_opening_hours o ON o.point_id = t.point_id \
         WHERE t.status = 'active' AND ($1 = '' OR t.id = $1)",
    )
    .bind(&filter)
    .fetch_all(&state.db.pool)
    .await?;
    let cal = calendar::load(&state.db).await?;
    // Per point: its schedule parsed once (a stored schedule that no longer parses counts as
    // none, as everywhere else).
    let mut open_at: HashMap<String, bool> = HashMap::new();
    let mut active = Vec::with_capacity(rows.len());
    for r in &rows {
        let point: String = r.try_get("point_id")?;
        let point_open = match open_at.get(&point) {
            Some(&o) => o,
            None => {
                let schedule: Option<String> = r.try_get("schedule")?;
                let hours = schedule.and_then(|s| serde_json::from_str::<OpeningHours>(&s).ok());
                let o = alarms_due(hours.as_ref(), &cal, now);
                open_at.insert(point, o);
                o
            }
        };
        let report: Option<String> = r.try_get("report")?;
        let report = report.and_then(|j| serde_json::from_str::<TerminalHealthReport>(&j).ok());
        let printer_fault = report.as_ref().and_then(|rep| rep.printer.fault());
        let disk_fault = report.as_ref().and_then(|rep| rep.disk.as_ref()?.alarm());
        active.push(Observed {
            terminal_id: parse_id(&r.try_get::<String, _>("id")?)?,
            last_contact: r.try_get("last_contact")?,
            printer_fault,
            disk_fault,
            point_open,
        });
    }
    let open = open_alarms(state, &filter).await?;
    let decisions = decide(&active, &open, now, state.config.terminal_offline_after_ms);
    for d in decisions {
        apply(state, d, now).await?;
    }
    Ok(())
}

async fn open_alarms(state: &AppState, filter: &str) -> ApiResult<Vec<OpenAlarm>> {
    let rows = sqlx::query(
        "SELECT id, terminal_id, kind FROM terminal_alarms WHERE cleared_at IS NULL AND ($1 = '' OR terminal_id = $1)",
    )
    .bind(filter)
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(kind) = AlarmKind::parse(&r.try_get::<String, _>("kind")?) else { continue };
        out.push(OpenAlarm {
            id: parse_id(&r.try_get::<String, _>("id")?)?,
            terminal_id: parse_id(&r.try_get::<String, _>("terminal_id")?)?,
            kind,
        });
    }
    Ok(out)
}

async fn apply(state: &AppState, d: Decision, now: i64) -> ApiResult<()> {
    match d {
        Decision::Raise { terminal_id, kind, detail } => {
            let id = new_id();
            let n = sqlx::query(
                "INSERT INTO terminal_alarms (id, terminal_id, kind, opened_at, cleared_at, detail) \
                 VALUES ($1, $2, $3, $4, NULL, $5) ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(terminal_id.to_string())
            .bind(kind.as_str())
            .bind(now)
            .bind(&detail)
            .execute(&state.db.pool)
            .await?
            .rows_affected();
            if n == 1 {
                tracing::warn!(terminal = %terminal_id, kind = kind.as_str(), "terminal alarm raised");
                let rec = AuditRecord::new("terminal.alarm_raise", "terminal")
                    .target(terminal_id)
                    .detail(json!({ "alarm_id": id, "kind": kind.as_str(), "detail": detail }));
                state.audit(rec).await;
                push(state, id).await?;
                // The point's inspector hears of it (console task, webhook).
                crate::inspections::notify_alarm(state, terminal_id, kind.as_str(), Some(detail.as_str()))
                    .await?;
            }
        }
        Decision::Clear { alarm_id, terminal_id, kind, reason } => {
            let n = sqlx::query(
                "UPDATE terminal_alarms SET cleared_at = $1 WHERE id = $2 AND cleared_at IS NULL",
            )
            .bind(now)
            .bind(alarm_id.to_string())
            .execute(&state.db.pool)
            .await?
            .rows_affected();
            if n == 1 {
                tracing::info!(terminal = %terminal_id, kind = kind.as_str(), reason, "terminal alarm cleared");
                let rec = AuditRecord::new("terminal.alarm_clear", "terminal")
                    .target(terminal_id)
                    .detail(json!({ "alarm_id": alarm_id, "kind": kind.as_str(), "reason": reason }));
                state.audit(rec).await;
                push(state, alarm_id).await?;
            }
        }
    }
    Ok(())
}

/// Tells the connected supervisors and admins that an alarm opened or cleared.
async fn push(state: &AppState, alarm_id: Uuid) -> ApiResult<()> {
    use crate::api::terminal_health::{ALARM_SELECT, alarm_from_row};
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{ALARM_SELECT} WHERE a.id = $1")))
        .bind(alarm_id.to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    let Some(row) = row else { return Ok(()) };
    let alarm = alarm_from_row(&row)?;
    let rows = sqlx::query("SELECT id FROM users WHERE role IN ('admin', 'supervisor') AND active = 1")
        .fetch_all(&state.db.pool)
        .await?;
    let watchers = rows
        .iter()
        .map(|r| -> ApiResult<Uuid> { Ok(parse_id(&r.try_get::<String, _>("id")?)?) })
        .collect::<ApiResult<Vec<_>>>()?;
    state.switchboard.notify(watchers, shared::protocol::ServerMsg::TerminalAlarm { alarm }).await;
    Ok(())
}

/// Sweeps every `health_check_interval_ms` until aborted (on shutdown).
pub async fn monitor_task(state: AppState) {
    let every = std::time::Duration::from_millis(state.config.health_check_interval_ms.max(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&state, None, now_ms()).await {
            tracing::error!(error = %e.message, "terminal health sweep failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const AFTER: i64 = 2 * MIN;

    fn t(n: u128, last: Option<i64>, fault: Option<&str>) -> Observed {
        Observed {
            terminal_id: Uuid::from_u128(n),
            last_contact: last,
            printer_fault: fault.map(Into::into),
            disk_fault: None,
            point_open: true,
        }
    }

    fn alarm(id: u128, terminal: u128, kind: AlarmKind) -> OpenAlarm {
        OpenAlarm { id: Uuid::from_u128(id), terminal_id: Uuid::from_u128(terminal), kind }
    }

    fn kinds(d: &[Decision]) -> Vec<(&'static str, u128, AlarmKind)> {
        d.iter()
            .map(|d| match d {
                Decision::Raise { terminal_id, kind, .. } => ("raise", terminal_id.as_u128(), *kind),
                Decision::Clear { terminal_id, kind, .. } => ("clear", terminal_id.as_u128(), *kind),
            })
            .collect()
    }

    #[test]
    fn offline_opens_only_after_the_threshold() {
        let now = 1_000 * MIN;
        let seen_at_threshold = [t(1, Some(now - AFTER), None)];
        assert!(decide(&seen_at_threshold, &[], now, AFTER).is_empty(), "exactly 2 min is still online");
        let late = [t(1, Some(now - AFTER - 1), None)];
        let d = decide(&late, &[], now, AFTER);
        assert_eq!(kinds(&d), vec![("raise", 1, AlarmKind::Offline)]);
        let Decision::Raise { detail, .. } = &d[0] else { unreachable!() };
        assert!(detail.contains("120"), "{detail}");
    }

    #[test]
    fn an_open_alarm_is_not_raised_twice_and_clears_when_seen_again() {
        let now = 1_000 * MIN;
        let open = [alarm(9, 1, AlarmKind::Offline)];
        assert!(decide(&[t(1, Some(now - 10 * MIN), None)], &open, now, AFTER).is_empty());
        let d = decide(&[t(1, Some(now - 1000), None)], &open, now, AFTER);
        assert_eq!(
            d,
            vec![Decision::Clear {
                alarm_id: Uuid::from_u128(9),
                terminal_id: Uuid::from_u128(1),
                kind: AlarmKind::Offline,
                reason: "back_online"
            }]
        );
    }

    #[test]
    fn never_seen_terminals_do_not_alarm() {
        assert!(decide(&[t(1, None, None)], &[], 1_000 * MIN, AFTER).is_empty());
    }

    #[test]
    fn printer_faults_open_and_clear_independently_of_offline() {
        let now = 1_000 * MIN;
        let d = decide(&[t(1, Some(now), Some("media-empty-error"))], &[], now, AFTER);
        assert_eq!(kinds(&d), vec![("raise", 1, AlarmKind::PrinterFault)]);
        let open = [alarm(5, 1, AlarmKind::PrinterFault)];
        assert!(decide(&[t(1, Some(now), Some("media-empty-error"))], &open, now, AFTER).is_empty());
        // Offline with the printer still faulty: only the offline alarm is new.
        let d = decide(&[t(1, Some(now - 3 * MIN), Some("media-empty-error"))], &open, now, AFTER);
        assert_eq!(kinds(&d), vec![("raise", 1, AlarmKind::Offline)]);
        let d = decide(&[t(1, Some(now), None)], &open, now, AFTER);
        assert_eq!(kinds(&d), vec![("clear", 1, AlarmKind::PrinterFault)]);
    }

    #[test]
    fn a_disk_near_its_bound_opens_an_alarm_that_clears_once_space_is_back() {
        use shared::api::{DiskHealth, DiskLevel};
        let now = 1_000 * MIN;
        let mut disk = DiskHealth {
            free_bytes: 10 << 30,
            total_bytes: 64 << 30,
            used_bytes: Some(850 << 20),
            max_bytes: Some(1 << 30),
            min_free_bytes: Some(256 << 20),
            level: DiskLevel::Ok,
        };
        assert_eq!(disk.alarm(), None);
        disk.level = DiskLevel::NearFull;
        let detail = disk.alarm().expect("near full is an alarm");
        assert!(detail.contains("存储空间将满") && detail.contains("83%"), "{detail}");
        // Hostile numbers from a terminal: a bound of 0, no numbers at all.
        let zero = DiskHealth { max_bytes: Some(0), level: DiskLevel::Full, ..disk };
        assert!(zero.alarm().expect("full").contains("已满"));
        let bare = DiskHealth { used_bytes: None, max_bytes: None, ..zero };
        assert!(bare.alarm().is_some());
        let mut term = t(1, Some(now), None);
        term.disk_fault = disk.alarm();
        let d = decide(std::slice::from_ref(&term), &[], now, AFTER);
        assert_eq!(kinds(&d), vec![("raise", 1, AlarmKind::DiskSpace)]);
        let open = [alarm(4, 1, AlarmKind::DiskSpace)];
        assert!(decide(std::slice::from_ref(&term), &open, now, AFTER).is_empty(), "not raised twice");
        term.disk_fault = None;
        let d = decide(&[term], &open, now, AFTER);
        assert_eq!(
            d,
            vec![Decision::Clear {
                alarm_id: Uuid::from_u128(4),
                terminal_id: Uuid::from_u128(1),
                kind: AlarmKind::DiskSpace,
                reason: "disk_ok"
            }]
        );
    }

    #[test]
    fn alarms_of_terminals_no_longer_active_are_cleared() {
        let now = 1_000 * MIN;
        let open = [alarm(7, 2, AlarmKind::Offline), alarm(8, 1, AlarmKind::Offline)];
        let d = decide(&[t(1, Some(now - 5 * MIN), None)], &open, now, AFTER);
        assert_eq!(kinds(&d), vec![("clear", 2, AlarmKind::Offline)]);
        let Decision::Clear { reason, .. } = &d[0] else { unreachable!() };
        assert_eq!(*reason, "terminal_inactive");
    }

    #[test]
    fn many_terminals_each_judged_on_their_own() {
        let now = 1_000 * MIN;
        let active: Vec<Observed> =
            (0..100).map(|i| t(i, Some(now - i64::try_from(i).unwrap_or(0) * 2_000), None)).collect();
        // 2 s apart: terminals 61..=99 are more than 120 s late.
        let d = decide(&active, &[], now, AFTER);
        assert_eq!(d.len(), 39);
        assert!(kinds(&d).iter().all(|(a, n, k)| *a == "raise" && *n > 60 && *k == AlarmKind::Offline));
    }

    // --- Opening hours (China time; the seeded 2025–2026 working-day calendar).

    fn weekdays_9_to_17() -> OpeningHours {
        OpeningHours {
            weekly: vec![shared::cases::WeekdayHours {
                weekdays: vec![1, 2, 3, 4, 5],
                open: "09:00".into(),
                close: "17:00".into(),
            }],
            holiday_rule: shared::cases::HolidayRule::FollowCalendar,
            closures: vec![],
        }
    }

    /// `y-m-d hh:mm` China time as epoch ms.
    fn cst(y: i64, m: i64, d: i64, hh: i64, mm: i64) -> i64 {
        calendar::day_start(calendar::days_from_civil(y, m, d)) + (hh * 60 + mm) * MIN
    }

    /// The decision for one terminal silent for 10 min at `now`, at a point open or not then.
    fn silent_at(hours: Option<&OpeningHours>, now: i64, open: &[OpenAlarm]) -> Vec<Decision> {
        let mut t = t(1, Some(now - 10 * MIN), Some("media-empty-error"));
        t.point_open = alarms_due(hours, Calendar::builtin(), now);
        decide(&[t], open, now, AFTER)
    }

    #[test]
    fn no_alarm_at_night_one_at_opening_time() {
        let h = weekdays_9_to_17();
        // Tuesday 2026-12-08.
        assert!(silent_at(Some(&h), cst(2026, 12, 8, 2, 30), &[]).is_empty(), "02:30: closed");
        assert!(silent_at(Some(&h), cst(2026, 12, 8, 8, 59), &[]).is_empty(), "08:59: not yet open");
        assert!(silent_at(Some(&h), cst(2026, 12, 8, 17, 0), &[]).is_empty(), "17:00: closed");
        let d = silent_at(Some(&h), cst(2026, 12, 8, 9, 0), &[]);
        assert_eq!(kinds(&d), vec![("raise", 1, AlarmKind::Offline), ("raise", 1, AlarmKind::PrinterFault)]);
        // A weekend day.
        assert!(silent_at(Some(&h), cst(2026, 12, 12, 10, 0), &[]).is_empty(), "Saturday");
    }

    #[test]
    fn no_alarm_on_a_holiday_and_one_on_a_make_up_working_day() {
        let h = weekdays_9_to_17();
        // 2026-10-01 (Thursday) is 国庆节.
        assert!(silent_at(Some(&h), cst(2026, 10, 1, 10, 0), &[]).is_empty());
        // 2026-10-10 (Saturday) is a make-up working day: Monday's hours.
        assert!(silent_at(Some(&h), cst(2026, 10, 10, 8, 0), &[]).is_empty());
        let d = silent_at(Some(&h), cst(2026, 10, 10, 10, 0), &[]);
        assert_eq!(kinds(&d), vec![("raise", 1, AlarmKind::Offline), ("raise", 1, AlarmKind::PrinterFault)]);
        // A point that ignores the calendar opens on the holiday and not on the Saturday.
        let park = OpeningHours { holiday_rule: shared::cases::HolidayRule::IgnoreCalendar, ..h };
        assert_eq!(silent_at(Some(&park), cst(2026, 10, 1, 10, 0), &[]).len(), 2);
        assert!(silent_at(Some(&park), cst(2026, 10, 10, 10, 0), &[]).is_empty());
    }

    #[test]
    fn without_structured_hours_a_point_is_open_around_the_clock() {
        for now in [cst(2026, 12, 8, 2, 30), cst(2026, 10, 1, 10, 0)] {
            assert!(alarms_due(None, Calendar::builtin(), now));
            assert_eq!(silent_at(None, now, &[]).len(), 2);
        }
    }

    #[test]
    fn an_alarm_open_at_closing_stays_open_is_not_raised_again_and_still_clears() {
        let h = weekdays_9_to_17();
        let night = cst(2026, 12, 8, 22, 0);
        let open = [alarm(9, 1, AlarmKind::Offline), alarm(10, 1, AlarmKind::PrinterFault)];
        assert!(silent_at(Some(&h), night, &open).is_empty(), "neither cleared nor raised again");
        // It reports at night with the printer fixed: both clear.
        let mut back = t(1, Some(night), None);
        back.point_open = alarms_due(Some(&h), Calendar::builtin(), night);
        assert!(!back.point_open);
        let d = decide(&[back], &open, night, AFTER);
        assert_eq!(kinds(&d), vec![("clear", 1, AlarmKind::Offline), ("clear", 1, AlarmKind::PrinterFault)]);
    }
}
