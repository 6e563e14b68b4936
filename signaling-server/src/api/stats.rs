//! `/api/v1/sessions`, `/api/v1/stats/*` and `/api/v1/rectifications`: session records for
//! supervision, the service figures (first response, waits, resolution, 好差评) and the
//! follow-up of negative ratings (差评整改: call-back, rectification, closing).
//!
//! Days are China Standard Time (UTC+8, no daylight saving; see [`crate::calendar`]). Nothing here ever reads the
//! resident's name or ID number columns.

use axum::extract::State;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use shared::api::{
    DailyStats, ErrorBody, RatingCounts, RectificationCallbackRequest, RectificationStatus,
    RectificationView, SessionRecord, StatsSummary,
};
use shared::protocol::{Outcome, RatingLevel, Role};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar::DAY_MS;
pub use crate::calendar::{cst_date, cst_day_start};
use crate::db::{Db, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

/// Longest `[from, to)` range accepted: a year.
const MAX_RANGE_MS: i64 = 366 * DAY_MS;
/// Latest time accepted in a query (year 2200).
const MAX_TIME_MS: i64 = 7_258_118_400_000;
/// First response counts as prompt up to this wait.
const PROMPT_MS: i64 = 60_000;
/// A negative rating's rectification is due this many working days after the rating.
pub const RECTIFICATION_WORKING_DAYS: u32 = 15;

/// The due time `days` working days after `now_ms` by the seeded calendar (see
/// [`crate::calendar::due_after_working_days`]); the switchboard stamps rectifications with it
/// and [`crate::calendar::reconcile_deadlines`] applies the admin-edited calendar.
pub use crate::calendar::due_after_working_days;

// ---------------------------------------------------------------------------------------------
// Query parsing: every parameter arrives as text and is checked here, so an empty value means
// "not given" and a hostile one gets a clear 400 without being echoed back.

fn opt(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}

fn parse_time(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    opt(v)
        .map(|s| match s.parse::<i64>() {
            Ok(ms) if (0..=MAX_TIME_MS).contains(&ms) => Ok(ms),
            _ => Err(ApiError::bad_request(format!(
                "{field} 须为 unix 毫秒时间 (must be unix milliseconds between 0 and {MAX_TIME_MS})"
            ))),
        })
        .transpose()
}

/// A UUID filter; empty means no filter.
fn parse_uuid(field: &str, v: &Option<String>) -> ApiResult<Option<Uuid>> {
    opt(v)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.len() != 36 {
                return Err(ApiError::bad_request(format!("{field} 须为 UUID (must be a UUID)")));
            }
            Uuid::parse_str(s)
                .map_err(|_| ApiError::bad_request(format!("{field} 须为 UUID (must be a UUID)")))
        })
        .transpose()
}

fn parse_count(field: &str, v: &Option<String>, default: i64, max: i64) -> ApiResult<i64> {
    match opt(v) {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!("{field} 须为 1 到 {max} 之间的整数 (out of range)"))),
        },
    }
}

/// `[from, to)`: by default today in China Standard Time; `to` defaults to the end of `from`'s
/// day, `from` to the start of `to`'s day.
fn parse_range(from: &Option<String>, to: &Option<String>, now: i64) -> ApiResult<(i64, i64)> {
    let to_given = parse_time("to", to)?;
    let from = match parse_time("from", from)? {
        Some(f) => f,
        None => cst_day_start(to_given.map_or(now, |t| t - 1)),
    };
    let to = to_given.unwrap_or_else(|| cst_day_start(from) + DAY_MS);
    if from >= to {
        return Err(ApiError::bad_request("from 须早于 to (from must be before to)"));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::bad_request("查询范围不能超过 366 天 (range longer than 366 days)"));
    }
    Ok((from, to))
}

/// A snake_case enum stored as text.
fn parse_enum<T: DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round1(part as f64 * 100.0 / whole as f64))
}

// ---------------------------------------------------------------------------------------------
// Session records

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SessionsQuery {
    /// Sessions started at or after this (unix ms); default: start of today, CST.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub from: Option<String>,
    /// Sessions started before this (unix ms); default: end of `from`'s day. At most 366 days
    /// after `from`.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub to: Option<String>,
    /// Only this operator's sessions (operators always see only their own); empty: all.
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub operator_id: Option<String>,
    /// Only sessions of this business line; empty: all.
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub line_id: Option<String>,
    /// 1–1000 (default 200).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

fn session_from_row(r: &AnyRow) -> ApiResult<SessionRecord> {
    let started_at: i64 = r.try_get("started_at")?;
    let ended_at: Option<i64> = r.try_get("ended_at")?;
    let first_started: Option<i64> = r.try_get("first_started")?;
    let ticket_created_at: i64 = r.try_get("ticket_created_at")?;
    let first_answered_at: Option<i64> = r.try_get("first_answered_at")?;
    let is_first = first_started.is_none_or(|f| f == started_at);
    let outcome = r.try_get::<Option<String>, _>("outcome")?.and_then(|o| parse_enum::<Outcome>(&o));
    let rating = r.try_get::<Option<String>, _>("rating_level")?.and_then(|l| parse_enum::<RatingLevel>(&l));
    Ok(SessionRecord {
        session_id: parse_id(&r.try_get::<String, _>("id")?)?,
        ticket_id: parse_id(&r.try_get::<String, _>("ticket_id")?)?,
        ticket_number: r.try_get("number")?,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        point_name: r.try_get("point_name")?,
        item_name: r.try_get("item_name")?,
        line_id: parse_id(&r.try_get::<String, _>("line_id")?)?,
        line_name: r.try_get("line_name")?,
        operator_id: parse_id(&r.try_get::<String, _>("operator_id")?)?,
        operator_name: r.try_get("operator_name")?,
        status: r.try_get("status")?,
        started_at,
        ended_at,
        wait_ms: r.try_get("wait_ms")?,
        first_response_ms: if is_first { first_answered_at.map(|a| a - ticket_created_at) } else { None },
        handle_ms: ended_at.map(|e| e - started_at),
        outcome,
        outcome_zh: outcome.map(|o| o.label_zh().to_owned()),
        end_reason: r.try_get("end_reason")?,
        rating,
        rating_zh: rating.map(|l| l.label_zh().to_owned()),
        rating_comment: r.try_get("rating_comment")?,
        transferred_from: r
            .try_get::<Option<String>, _>("transferred_from")?
            .map(|t| parse_id(&t))
            .transpose()?,
    })
}

/// Session records, newest first (supervisor, admin; an operator sees only their own). No
/// resident name or ID number, not even masked.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "stats", params(SessionsQuery),
    responses((status = 200, body = [SessionRecord]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<SessionsQuery>,
) -> ApiResult<Json<Vec<SessionRecord>>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator])?;
    let (from, to) = parse_range(&q.from, &q.to, now_ms())?;
    let mut operator = parse_uuid("operator_id", &q.operator_id)?;
    let line = parse_uuid("line_id", &q.line_id)?;
    let limit = parse_count("limit", &q.limit, 200, 1000)?;
    if p.role == Role::Operator {
        if operator.is_some_and(|o| o != p.id) {
            return Err(ApiError::forbidden());
        }
        operator = Some(p.id);
    }
    let mut filters = String::new();
    let mut n = 2;
    for (column, value) in [("s.operator_id", operator), ("s.line_id", line)] {
        if value.is_some() {
            n += 1;
            filters.push_str(&format!(" AND {column} = ${n}"));
        }
    }
    let sql = format!(
        "SELECT s.id, s.ticket_id, t.number, t.point_id, pt.name AS point_name, i.name AS item_name, \
         s.line_id, l.name AS line_name, s.operator_id, u.display_name AS operator_name, s.status, \
         s.started_at, s.ended_at, s.wait_ms, s.end_reason, s.outcome, s.transferred_from, \
         t.created_at AS ticket_created_at, t.first_answered_at, \
         (SELECT MIN(e.started_at) FROM call_sessions e WHERE e.ticket_id = s.ticket_id) AS first_started, \
         r.level AS rating_level, r.comment AS rating_comment \
         FROM call_sessions s \
         JOIN tickets t ON t.id = s.ticket_id \
         JOIN service_points pt ON pt.id = t.point_id \
         JOIN service_items i ON i.id = t.item_id \
         JOIN business_lines l ON l.id = s.line_id \
         JOIN users u ON u.id = s.operator_id \
         LEFT JOIN ratings r ON r.session_id = s.id \
         WHERE s.started_at >= $1 AND s.started_at < $2{filters} \
         ORDER BY s.started_at DESC, s.id DESC LIMIT ${}",
        n + 1
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from).bind(to);
    for id in [operator, line].into_iter().flatten() {
        query = query.bind(id.to_string());
    }
    let rows = query.bind(limit).fetch_all(&state.db.pool).await?;
    let mut out: Vec<SessionRecord> = rows.iter().map(session_from_row).collect::<ApiResult<_>>()?;
    for rec in &mut out {
        rec.rating_comment =
            state.pii.open(rec.rating_comment.take(), &crate::pii::Pii::comment_context(rec.session_id));
    }
    Ok(Json(out))
}

// ---------------------------------------------------------------------------------------------
// Figures

struct TicketFact {
    created_at: i64,
    first_answered_at: Option<i64>,
}

struct SessionFact {
    started_at: i64,
    wait_ms: i64,
    outcome: Option<String>,
    rating: Option<String>,
    rect_status: Option<String>,
    rect_due_at: Option<i64>,
}

/// Tickets created and sessions started in `[from, to)`, optionally of one line.
async fn facts(
    db: &Db,
    from: i64,
    to: i64,
    line: Option<Uuid>,
) -> ApiResult<(Vec<TicketFact>, Vec<SessionFact>)> {
    let line_filter = |column: &str| line.map(|_| format!(" AND {column} = $3")).unwrap_or_default();
    let mut tq = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT created_at, first_answered_at FROM tickets WHERE created_at >= $1 AND created_at < $2{}",
        line_filter("line_id")
    )))
    .bind(from)
    .bind(to);
    let mut sq = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.started_at, s.wait_ms, s.outcome, r.level, x.status AS rect_status, x.due_at AS rect_due_at \
         FROM call_sessions s \
         LEFT JOIN ratings r ON r.session_id = s.id \
         LEFT JOIN rectifications x ON x.session_id = s.id \
         WHERE s.started_at >= $1 AND s.started_at < $2{}",
        line_filter("s.line_id")
    )))
    .bind(from)
    .bind(to);
    if let Some(l) = line {
        tq = tq.bind(l.to_string());
        sq = sq.bind(l.to_string());
    }
    let tickets = tq
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TicketFact {
                created_at: r.try_get("created_at")?,
                first_answered_at: r.try_get("first_answered_at")?,
            })
        })
        .collect::<ApiResult<_>>()?;
    let sessions = sq
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(SessionFact {
                started_at: r.try_get("started_at")?,
                wait_ms: r.try_get("wait_ms")?,
                outcome: r.try_get("outcome")?,
                rating: r.try_get("level")?,
                rect_status: r.try_get("rect_status")?,
                rect_due_at: r.try_get("rect_due_at")?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok((tickets, sessions))
}

/// 90th percentile by nearest rank of sorted values.
fn p90(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[(9 * n).div_ceil(10) - 1])
}

fn summarize(from: i64, to: i64, tickets: &[TicketFact], sessions: &[SessionFact], now: i64) -> StatsSummary {
    let tickets: Vec<&TicketFact> = tickets.iter().filter(|t| (from..to).contains(&t.created_at)).collect();
    let sessions: Vec<&SessionFact> =
        sessions.iter().filter(|s| (from..to).contains(&s.started_at)).collect();
    let answered: Vec<i64> =
        tickets.iter().filter_map(|t| t.first_answered_at.map(|a| a - t.created_at)).collect();
    let prompt = answered.iter().filter(|&&ms| ms <= PROMPT_MS).count();
    let mut waits: Vec<i64> = sessions.iter().map(|s| s.wait_ms).collect();
    waits.sort_unstable();
    let wrapped: Vec<Outcome> =
        sessions.iter().filter_map(|s| s.outcome.as_deref().and_then(parse_enum::<Outcome>)).collect();
    let resolved =
        wrapped.iter().filter(|o| matches!(o, Outcome::Completed | Outcome::AcceptedPendingApproval)).count();
    let mut ratings = RatingCounts::default();
    for level in sessions.iter().filter_map(|s| s.rating.as_deref().and_then(parse_enum::<RatingLevel>)) {
        *match level {
            RatingLevel::VerySatisfied => &mut ratings.very_satisfied,
            RatingLevel::Satisfied => &mut ratings.satisfied,
            RatingLevel::Basic => &mut ratings.basic,
            RatingLevel::Dissatisfied => &mut ratings.dissatisfied,
            RatingLevel::VeryDissatisfied => &mut ratings.very_dissatisfied,
        } += 1;
    }
    let open: Vec<&&SessionFact> =
        sessions.iter().filter(|s| s.rect_status.as_deref() == Some("open")).collect();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    StatsSummary {
        from,
        to,
        tickets: count(tickets.len()),
        served_sessions: count(sessions.len()),
        first_response_within_60s_pct: pct(count(prompt), count(answered.len())),
        avg_wait_secs: (!waits.is_empty())
            .then(|| round1(waits.iter().map(|&w| w as f64).sum::<f64>() / waits.len() as f64 / 1000.0)),
        p90_wait_secs: p90(&waits).map(|w| round1(w as f64 / 1000.0)),
        resolution_rate_pct: pct(count(resolved), count(wrapped.len())),
        negative_ratings: ratings.dissatisfied + ratings.very_dissatisfied,
        ratings,
        open_rectifications: count(open.len()),
        overdue_rectifications: count(open.iter().filter(|s| s.rect_due_at.is_some_and(|d| d < now)).count()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// Start (unix ms); default: start of today, CST.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub from: Option<String>,
    /// End, exclusive (unix ms); default: end of `from`'s day. At most 366 days after `from`.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub to: Option<String>,
    /// Only this business line; empty: all.
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub line_id: Option<String>,
}

/// Service figures over a range (supervisor, admin).
#[utoipa::path(get, path = "/api/v1/stats/summary", tag = "stats", params(SummaryQuery),
    responses((status = 200, body = StatsSummary), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<Json<StatsSummary>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let now = now_ms();
    let (from, to) = parse_range(&q.from, &q.to, now)?;
    let line = parse_uuid("line_id", &q.line_id)?;
    let (tickets, sessions) = facts(&state.db, from, to, line).await?;
    Ok(Json(summarize(from, to, &tickets, &sessions, now)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// How many CST days up to and including today, 1–90 (default 7).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 90)]
    pub days: Option<String>,
    /// Only this business line; empty: all.
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub line_id: Option<String>,
}

/// The same figures per China Standard Time day, oldest first, ending today (supervisor, admin).
#[utoipa::path(get, path = "/api/v1/stats/daily", tag = "stats", params(DailyQuery),
    responses((status = 200, body = [DailyStats]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn daily(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<DailyQuery>,
) -> ApiResult<Json<Vec<DailyStats>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let days = parse_count("days", &q.days, 7, 90)?;
    let line = parse_uuid("line_id", &q.line_id)?;
    let now = now_ms();
    let end = cst_day_start(now) + DAY_MS;
    let start = end - days * DAY_MS;
    let (tickets, sessions) = facts(&state.db, start, end, line).await?;
    let out = (0..days)
        .map(|i| {
            let from = start + i * DAY_MS;
            DailyStats {
                day: cst_date(from),
                stats: summarize(from, from + DAY_MS, &tickets, &sessions, now),
            }
        })
        .collect();
    Ok(Json(out))
}

// ---------------------------------------------------------------------------------------------
// Rectifications

const RECT_SELECT: &str = "SELECT x.id, x.session_id, s.ticket_id, t.number, pt.name AS point_name, \
    i.name AS item_name, s.operator_id, u.display_name AS operator_name, x.level, r.comment, x.status, \
    x.created_at, x.due_at, x.callback_at, x.callback_result, x.rectification, x.closed_by, \
    c.display_name AS closed_by_name, x.closed_at \
    FROM rectifications x \
    JOIN call_sessions s ON s.id = x.session_id \
    JOIN tickets t ON t.id = s.ticket_id \
    JOIN service_points pt ON pt.id = t.point_id \
    JOIN service_items i ON i.id = t.item_id \
    JOIN users u ON u.id = s.operator_id \
    LEFT JOIN ratings r ON r.session_id = x.session_id \
    LEFT JOIN users c ON c.id = x.closed_by";

fn rect_from_row(r: &AnyRow, now: i64) -> ApiResult<RectificationView> {
    let level: RatingLevel = parse_enum(&r.try_get::<String, _>("level")?).ok_or_else(ApiError::internal)?;
    let status = match r.try_get::<String, _>("status")?.as_str() {
        "open" => RectificationStatus::Open,
        "closed" => RectificationStatus::Closed,
        _ => return Err(ApiError::internal()),
    };
    let due_at: i64 = r.try_get("due_at")?;
    let closed_at: Option<i64> = r.try_get("closed_at")?;
    Ok(RectificationView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        session_id: parse_id(&r.try_get::<String, _>("session_id")?)?,
        ticket_id: parse_id(&r.try_get::<String, _>("ticket_id")?)?,
        ticket_number: r.try_get("number")?,
        point_name: r.try_get("point_name")?,
        item_name: r.try_get("item_name")?,
        operator_id: parse_id(&r.try_get::<String, _>("operator_id")?)?,
        operator_name: r.try_get("operator_name")?,
        level,
        level_zh: level.label_zh().to_owned(),
        comment: r.try_get("comment")?,
        status,
        created_at: r.try_get("created_at")?,
        due_at,
        overdue: closed_at.unwrap_or(now) > due_at,
        callback_at: r.try_get("callback_at")?,
        callback_result: r.try_get("callback_result")?,
        rectification: r.try_get("rectification")?,
        closed_by: r.try_get::<Option<String>, _>("closed_by")?.map(|c| parse_id(&c)).transpose()?,
        closed_by_name: r.try_get("closed_by_name")?,
        closed_at,
    })
}

async fn load_rectification(db: &Db, id: Uuid) -> ApiResult<Option<RectificationView>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RECT_SELECT} WHERE x.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(|r| rect_from_row(r, now_ms())).transpose()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RectificationsQuery {
    /// `open` (default; most urgent first), `closed` or `all` (newest first).
    #[param(pattern = "^(open|closed|all)$")]
    pub status: Option<String>,
    /// 1–1000 (default 200).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Rectifications of negative ratings (supervisor, admin).
#[utoipa::path(get, path = "/api/v1/rectifications", tag = "rectifications", params(RectificationsQuery),
    responses((status = 200, body = [RectificationView]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_rectifications(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<RectificationsQuery>,
) -> ApiResult<Json<Vec<RectificationView>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let (filter, order) = match opt(&q.status).unwrap_or("open") {
        "open" => (" WHERE x.status = 'open'", "x.due_at, x.id"),
        "closed" => (" WHERE x.status = 'closed'", "x.created_at DESC, x.id DESC"),
        "all" => ("", "x.created_at DESC, x.id DESC"),
        _ => return Err(ApiError::bad_request("status 须为 open、closed 或 all (invalid status)")),
    };
    let limit = parse_count("limit", &q.limit, 200, 1000)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{RECT_SELECT}{filter} ORDER BY {order} LIMIT $1")))
        .bind(limit)
        .fetch_all(&state.db.pool)
        .await?;
    let now = now_ms();
    let mut out: Vec<RectificationView> =
        rows.iter().map(|r| rect_from_row(r, now)).collect::<ApiResult<_>>()?;
    for v in &mut out {
        v.comment = state.pii.open(v.comment.take(), &crate::pii::Pii::comment_context(v.session_id));
    }
    Ok(Json(out))
}

/// Record the call-back (回访) result and the measures taken, and close the rectification
/// (supervisor, admin).
#[utoipa::path(post, path = "/api/v1/rectifications/{id}/callback", tag = "rectifications",
    request_body = RectificationCallbackRequest, params(("id" = Uuid, Path)),
    responses((status = 200, body = RectificationView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<RectificationCallbackRequest>,
) -> ApiResult<Json<RectificationView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let result = check_text("callback_result", &req.callback_result, 500, false)?;
    let measures = req
        .rectification
        .as_deref()
        .map(|r| check_text("rectification", r, 1000, true))
        .transpose()?
        .filter(|r| !r.is_empty());
    let cur = load_rectification(&state.db, id).await?.ok_or_else(|| ApiError::not_found("整改记录"))?;
    let closed = || ApiError::conflict("该整改已办结 (already closed)");
    if cur.status == RectificationStatus::Closed {
        return Err(closed());
    }
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE rectifications SET status = 'closed', callback_at = $1, callback_result = $2, \
         rectification = $3, closed_by = $4, closed_at = $1 WHERE id = $5 AND status = 'open'",
    )
    .bind(now)
    .bind(&result)
    .bind(measures.as_deref())
    .bind(p.id.to_string())
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(closed());
    }
    let mut view = load_rectification(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    view.comment = state.pii.open(view.comment.take(), &crate::pii::Pii::comment_context(view.session_id));
    state
        .audit(AuditRecord::new("rectification.close", "rectification").by(&p).target(id).detail(json!({
            "session_id": view.session_id,
            "level": view.level,
            "overdue": view.overdue,
            "with_rectification": view.rectification.is_some(),
        })))
        .await;
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a CST wall-clock time.
    fn cst(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
        crate::calendar::day_start(crate::calendar::days_from_civil(y, m, d)) + (h * 60 + min) * 60_000
    }

    #[test]
    fn rectifications_skip_holidays() {
        // Rated on Thursday 2026-02-12: 15 working days skip the Spring Festival (Feb 15–23)
        // and count the make-up Saturdays Feb 14 and 28: due at the end of Wednesday Mar 11.
        let due = due_after_working_days(cst(2026, 2, 12, 15, 0), RECTIFICATION_WORKING_DAYS);
        assert_eq!(cst_date(due), "2026-03-11");
        assert_eq!(due + 1, cst(2026, 3, 12, 0, 0));
    }

    #[test]
    fn nearest_rank_percentile() {
        assert_eq!(p90(&[]), None);
        assert_eq!(p90(&[5]), Some(5));
        assert_eq!(p90(&[10, 20, 30, 90]), Some(90));
        assert_eq!(p90(&(1..=10).collect::<Vec<_>>()), Some(9));
        assert_eq!(p90(&(1..=20).collect::<Vec<_>>()), Some(18));
    }

    #[test]
    fn ranges_default_to_today_and_refuse_nonsense() {
        let now = cst(2026, 11, 22, 15, 0);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            parse_range(&None, &None, now).ok(),
            Some((cst(2026, 11, 22, 0, 0), cst(2026, 11, 23, 0, 0)))
        );
        // An empty or blank value is not an absent one: query parameters are taken as written,
        // as the OpenAPI document states them (digits only).
        assert!(parse_range(&s(""), &None, now).is_err());
        assert!(parse_range(&None, &s(" "), now).is_err());
        assert!(parse_range(&s(" 5"), &None, now).is_err());
        for (from, to) in
            [("5", "5"), ("9", "1"), ("-1", ""), ("abc", ""), ("1e3", ""), ("0", "99999999999999")]
        {
            assert!(parse_range(&s(from), &s(to), now).is_err(), "{from}..{to}");
        }
    }
}
