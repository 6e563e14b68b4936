//! Terminal health: the heartbeat a terminal posts every 30 s (`/api/v1/terminals/me/health`,
//! device token only, body ≤ 16 KiB), the health board admins and supervisors read
//! (`/api/v1/terminals/health`) and the alarm history (`/api/v1/terminal-alarms`). The alarm
//! rule itself lives in [`crate::terminal_health`].

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::api::{
    AlarmKind, ErrorBody, TerminalAlarmPage, TerminalAlarmView, TerminalHealthReport, TerminalHealthView,
    TerminalStatus,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::api::listing::{Counted, Listing, enum_param};
use crate::auth::Principal;
use crate::db::{now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::state::AppState;
use crate::terminal_health::{is_online, sweep};

/// A terminal reports its devices, disk and version (device token). Stores the report, counts
/// as contact, and opens or clears this terminal's alarms at once.
#[utoipa::path(post, path = "/api/v1/terminals/me/health", tag = "terminals", request_body = TerminalHealthReport,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<TerminalHealthReport>,
) -> ApiResult<StatusCode> {
    if !p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    req.validate().map_err(ApiError::validation)?;
    let now = now_ms();
    let json = serde_json::to_string(&req).map_err(|_| ApiError::internal())?;
    sqlx::query(
        "INSERT INTO terminal_health (terminal_id, reported_at, report) VALUES ($1, $2, $3) \
         ON CONFLICT (terminal_id) DO UPDATE SET reported_at = excluded.reported_at, report = excluded.report",
    )
    .bind(p.id.to_string())
    .bind(now)
    .bind(&json)
    .execute(&state.db.pool)
    .await?;
    sqlx::query("UPDATE terminals SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(p.id.to_string())
        .execute(&state.db.pool)
        .await?;
    sweep(&state, Some(p.id), now).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub const ALARM_SELECT: &str = "SELECT a.id, a.terminal_id, t.name AS terminal_name, p.name AS point_name, a.kind, \
    a.opened_at, a.cleared_at, a.detail FROM terminal_alarms a JOIN terminals t ON t.id = a.terminal_id \
    JOIN service_points p ON p.id = t.point_id";

pub fn alarm_from_row(r: &AnyRow) -> ApiResult<TerminalAlarmView> {
    Ok(TerminalAlarmView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        terminal_id: parse_id(&r.try_get::<String, _>("terminal_id")?)?,
        terminal_name: r.try_get("terminal_name")?,
        point_name: r.try_get("point_name")?,
        kind: AlarmKind::parse(&r.try_get::<String, _>("kind")?).ok_or_else(ApiError::internal)?,
        opened_at: r.try_get("opened_at")?,
        cleared_at: r.try_get("cleared_at")?,
        detail: r.try_get("detail")?,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// Only rows of this acceptance center's streets (its id); an unknown center matches nothing.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub center: Option<String>,
    /// Search: part of the terminal's or its point's name (case-insensitive), 1–64 characters.
    #[param(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub q: Option<String>,
    /// Only terminals of points in this street (街镇), exactly. (Acceptance centers, #16 item
    /// 6, will add `center`.)
    #[param(min_length = 1, max_length = 32, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub street: Option<String>,
    /// `online`, `offline` (enrolled, not seen within the threshold), `pending` (not enrolled)
    /// or `printer_fault` (its last heartbeat reports a printer fault).
    #[param(pattern = "^(online|offline|pending|printer_fault)$")]
    pub state: Option<String>,
    /// `yes`: only terminals with an open alarm; `no`: only those without.
    #[param(pattern = "^(yes|no)$")]
    pub alarm: Option<String>,
    /// `action` (default: what needs action first — open alarms, offline, printer fault, not
    /// enrolled, then the rest), `point`, `name` or `last_seen`; prefix `-` for descending.
    #[param(pattern = "^-?(action|point|name|last_seen)$")]
    pub sort: Option<String>,
    /// Page size, 1–500 (default: all).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Rows to skip, 0–100000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000)]
    pub offset: Option<String>,
}

fn printer_fault(t: &TerminalHealthView) -> bool {
    t.report.as_ref().is_some_and(|r| r.printer.fault().is_some())
}

/// How urgently a row needs action, lowest first: open alarms, offline, printer fault, not
/// enrolled, the rest.
pub fn action_rank(t: &TerminalHealthView) -> u8 {
    if !t.alarms.is_empty() {
        0
    } else if t.status == TerminalStatus::Active && !t.online {
        1
    } else if printer_fault(t) {
        2
    } else if t.status == TerminalStatus::Pending {
        3
    } else {
        4
    }
}

/// Every terminal that is not revoked, with its last heartbeat and open alarms (admin,
/// supervisor): what needs action first (open alarms, offline, printer fault), searched,
/// filtered by street, state and alarms, sorted and paged; `X-Total-Count` is the number
/// matching.
#[utoipa::path(get, path = "/api/v1/terminals/health", tag = "terminals", params(HealthQuery),
    responses((status = 200, body = [TerminalHealthView],
            headers(("x-total-count" = i64, description = "Terminals matching the filters, before paging"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn board(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<HealthQuery>,
) -> ApiResult<Counted<TerminalHealthView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let l = Listing::parse(
        q.q.as_deref(),
        q.street.as_deref(),
        q.sort.as_deref(),
        q.limit.as_deref(),
        q.offset.as_deref(),
        &["action", "point", "name", "last_seen"],
        "action",
    )?
    .in_center(&state.db, q.center.as_deref())
    .await?;
    let want = enum_param("state", q.state.as_deref(), &["online", "offline", "pending", "printer_fault"])?;
    let alarm = enum_param("alarm", q.alarm.as_deref(), &["yes", "no"])?;
    let rows: Vec<TerminalHealthView> = health_rows(&state, None)
        .await?
        .into_iter()
        .filter(|t| {
            l.matches(&[&t.name, &t.point_name])
                && l.street_is(&t.point_street)
                && want.is_none_or(|w| match w {
                    "online" => t.online,
                    "offline" => t.status == TerminalStatus::Active && !t.online,
                    "pending" => t.status == TerminalStatus::Pending,
                    _ => printer_fault(t),
                })
                && alarm.is_none_or(|a| (a == "yes") != t.alarms.is_empty())
        })
        .collect();
    // health_rows' order (point code, terminal name) is the tie-break.
    let (page, total) = l.finish(rows.into_iter().enumerate().collect(), |(i, a), (j, b)| {
        let by = match l.sort.as_str() {
            "action" => action_rank(a).cmp(&action_rank(b)),
            "name" => a.name.cmp(&b.name),
            "last_seen" => a.last_seen_at.cmp(&b.last_seen_at),
            _ => std::cmp::Ordering::Equal,
        };
        by.then_with(|| i.cmp(j))
    });
    Ok(Counted(page.into_iter().map(|(_, t)| t).collect(), total))
}

/// The board's rows: every point's terminals, or only those of `point`.
pub async fn health_rows(state: &AppState, point: Option<Uuid>) -> ApiResult<Vec<TerminalHealthView>> {
    let point = point.map(|u| u.to_string()).unwrap_or_default();
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.point_id, p.name AS point_name, p.street AS point_street, t.status, t.last_seen_at, t.enrolled_at, \
         h.reported_at, h.report FROM terminals t JOIN service_points p ON p.id = t.point_id \
         LEFT JOIN terminal_health h ON h.terminal_id = t.id WHERE t.status <> 'revoked' \
         AND ($1 = '' OR t.point_id = $1) ORDER BY p.code, t.name",
    )
    .bind(&point)
    .fetch_all(&state.db.pool)
    .await?;
    let open = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ALARM_SELECT} WHERE a.cleared_at IS NULL AND ($1 = '' OR t.point_id = $1) ORDER BY a.opened_at, a.id"
    )))
    .bind(&point)
    .fetch_all(&state.db.pool)
    .await?;
    let mut alarms: HashMap<Uuid, Vec<TerminalAlarmView>> = HashMap::new();
    for r in &open {
        let a = alarm_from_row(r)?;
        alarms.entry(a.terminal_id).or_default().push(a);
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = parse_id(&r.try_get::<String, _>("id")?)?;
        let status = match r.try_get::<String, _>("status")?.as_str() {
            "active" => TerminalStatus::Active,
            _ => TerminalStatus::Pending,
        };
        let last_seen_at: Option<i64> = r.try_get("last_seen_at")?;
        let enrolled_at: Option<i64> = r.try_get("enrolled_at")?;
        let report: Option<String> = r.try_get("report")?;
        out.push(TerminalHealthView {
            terminal_id: id,
            name: r.try_get("name")?,
            point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
            point_name: r.try_get("point_name")?,
            point_street: r.try_get("point_street")?,
            status,
            last_seen_at,
            online: status == TerminalStatus::Active
                && is_online(last_seen_at.or(enrolled_at), now, state.config.terminal_offline_after_ms),
            reported_at: r.try_get("reported_at")?,
            report: report.and_then(|j| serde_json::from_str(&j).ok()),
            alarms: alarms.remove(&id).unwrap_or_default(),
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlarmQuery {
    /// `open` (default) or `all`.
    #[param(pattern = "^(open|all)$")]
    pub state: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Alarms to skip, 0–100000 (default 0).
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
}

/// Terminal alarms, newest first: open ones or all (admin, supervisor).
#[utoipa::path(get, path = "/api/v1/terminal-alarms", tag = "terminals", params(AlarmQuery),
    responses((status = 200, body = TerminalAlarmPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn alarms(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<AlarmQuery>,
) -> ApiResult<Json<TerminalAlarmPage>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let open_only = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => return Err(ApiError::bad_request("state 须为 open 或 all (invalid state)")),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit 须在 1 到 200 之间 (limit out of range)"));
    }
    let offset = q.offset.unwrap_or(0);
    if !(0..=100_000).contains(&offset) {
        return Err(ApiError::bad_request("offset 须在 0 到 100000 之间 (offset out of range)"));
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ALARM_SELECT} WHERE ($1 = 0 OR a.cleared_at IS NULL) ORDER BY a.opened_at DESC, a.id LIMIT $2 OFFSET $3"
    )))
    .bind(i64::from(open_only))
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(&state.db.pool)
    .await?;
    let mut alarms = rows.iter().map(alarm_from_row).collect::<ApiResult<Vec<_>>>()?;
    let more = alarms.len() > usize::try_from(limit).unwrap_or(0);
    alarms.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(Json(TerminalAlarmPage { alarms, next_offset: more.then_some(offset + limit) }))
}
