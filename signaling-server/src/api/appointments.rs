//! Appointments (预约, #16 item 3) over REST. The kiosk (device token) lists an item's free
//! slots (`appointments.rs` computes them) and books one with the signed-in committee staff
//! member vouching (their access token in the body, as for the kiosk contact); the resident's
//! name and phone are stored encrypted bound to the row and shown masked. At the kiosk a
//! booked appointment is found by its six-digit code, then checked in by `take_ticket` with
//! its `appointment_id` (the switchboard's driver), which the dispatcher serves ahead of
//! walk-ins from the slot start. Supervisors and admins list a day's appointments per point
//! and cancel them. [`sweep`] (the cases worker, every `cases_interval`) marks booked
//! appointments not checked in by slot end + [`NO_SHOW_GRACE_MS`] as no-shows; a checked-in
//! one becomes served in the transaction that starts its ticket's call (the switchboard's
//! store), the sweep only catching any left over. Every access to the personal data is
//! audited, refusals too.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use shared::api::ErrorBody;
use shared::cases::{
    AppointmentCheckInRequest, AppointmentSlot, AppointmentState, AppointmentView, BookAppointmentRequest,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::appointments::{self, DAYS_AHEAD, NO_SHOW_GRACE_MS};
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar;
use crate::cases::orders::{check_phone, kiosk_staff, mask_phone};
use crate::db::{new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

pub fn state_str(s: AppointmentState) -> &'static str {
    match s {
        AppointmentState::Booked => "booked",
        AppointmentState::CheckedIn => "checked_in",
        AppointmentState::Served => "served",
        AppointmentState::NoShow => "no_show",
        AppointmentState::Cancelled => "cancelled",
    }
}

fn parse_state(s: &str) -> AppointmentState {
    match s {
        "checked_in" => AppointmentState::CheckedIn,
        "served" => AppointmentState::Served,
        "no_show" => AppointmentState::NoShow,
        "cancelled" => AppointmentState::Cancelled,
        _ => AppointmentState::Booked,
    }
}

fn name_context(id: Uuid) -> String {
    format!("appointment:{id}:name")
}
fn phone_context(id: Uuid) -> String {
    format!("appointment:{id}:phone")
}

const SELECT: &str = "SELECT a.id, a.point_id, a.item_id, a.slot_start, a.slot_end, a.name_masked, a.phone_masked, \
     a.state, a.code, a.ticket_id, a.booked_by_name, a.created_at, p.name AS point_name, i.name AS item_name \
     FROM appointments a JOIN service_points p ON p.id = a.point_id JOIN service_items i ON i.id = a.item_id";

fn view_of(r: &AnyRow) -> ApiResult<AppointmentView> {
    let (start, end): (i64, i64) = (r.try_get("slot_start")?, r.try_get("slot_end")?);
    let end_label = calendar::cst_when(end);
    let when = format!("{}-{}", calendar::cst_when(start), end_label.rsplit('）').next().unwrap_or_default());
    Ok(AppointmentView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        point_name: r.try_get("point_name")?,
        item_id: parse_id(&r.try_get::<String, _>("item_id")?)?,
        item_name: r.try_get("item_name")?,
        slot_start: start,
        slot_end: end,
        when,
        name_masked: r.try_get("name_masked")?,
        phone_masked: r.try_get("phone_masked")?,
        state: parse_state(&r.try_get::<String, _>("state")?),
        code: r.try_get("code")?,
        ticket_id: r.try_get::<Option<String>, _>("ticket_id")?.map(|t| parse_id(&t)).transpose()?,
        booked_by: r.try_get("booked_by_name")?,
        created_at: r.try_get("created_at")?,
    })
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Option<AppointmentView>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE a.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    row.as_ref().map(view_of).transpose()
}

fn terminal_point(p: &Principal) -> ApiResult<Uuid> {
    p.point_id.filter(|_| p.is_terminal()).ok_or_else(ApiError::forbidden)
}

fn parse_uuid(field: &str, v: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(v).map_err(|_| ApiError::validation(format!("{field} 须为 UUID (invalid {field})")))
}

/// An item's free slots at a point from `now` for `days` days, with its line and the point's
/// acceptance center.
async fn slots_for(
    state: &AppState,
    point: Uuid,
    item: Uuid,
    now: i64,
    days: i64,
) -> ApiResult<(Uuid, Option<Uuid>, Vec<AppointmentSlot>)> {
    let info = crate::switchboard::store::item_info(&state.db, item)
        .await?
        .filter(|i| i.active && i.remote_allowed)
        .ok_or_else(|| ApiError::not_found("事项"))?;
    let Some(roster) = crate::api::rosters::all(&state.db).await?.remove(&info.line_id) else {
        return Ok((info.line_id, None, Vec::new()));
    };
    let hours = crate::api::points::schedule(&state.db, point).await?;
    let cal = calendar::load(&state.db).await?;
    // The operators who serve this point's appointments are its acceptance center's (and
    // those of no center); their places are shared by every point of the center, so bookings
    // are counted across those points (district-wide where the point has no center).
    let (point_center, _) = crate::switchboard::store::point_scope(&state.db, point, item).await?;
    let center = point_center.map(|c| c.to_string());
    let operators: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM operator_skills s JOIN users u ON u.id = s.user_id \
         WHERE s.line_id = $1 AND u.active = 1 AND u.role = 'operator' \
         AND ($2 IS NULL OR u.center_id IS NULL OR u.center_id = $2)",
    )
    .bind(info.line_id.to_string())
    .bind(center.as_deref())
    .fetch_one(&state.db.pool)
    .await?
    .try_get("n")?;
    let handle = crate::dispatch::Config::default().default_handle_ms;
    let capacity = appointments::capacity(u32::try_from(operators).unwrap_or(0), handle);
    let rows = sqlx::query(
        "SELECT slot_start, COUNT(*) AS n FROM appointments WHERE line_id = $1 \
         AND state IN ('booked', 'checked_in') AND slot_start >= $2 AND point_id IN (SELECT p.id FROM \
         service_points p LEFT JOIN center_streets cs ON cs.street = p.street \
         WHERE $3 IS NULL OR cs.center_id = $3) GROUP BY slot_start",
    )
    .bind(info.line_id.to_string())
    .bind(calendar::cst_day_start(now))
    .bind(center.as_deref())
    .fetch_all(&state.db.pool)
    .await?;
    let mut booked = HashMap::new();
    for r in &rows {
        booked.insert(
            r.try_get::<i64, _>("slot_start")?,
            u32::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0),
        );
    }
    let slots = appointments::slots(&roster, hours.as_ref(), &cal, now, days, capacity, &booked);
    Ok((info.line_id, point_center, slots))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    /// The service item.
    #[param(pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub item_id: String,
    /// Days from today (1–7); default 7.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 7)]
    pub days: Option<String>,
}

/// The free and full slots of an item at this terminal's point for the coming days (device
/// token). Empty when the item's line has no duty roster.
#[utoipa::path(get, path = "/api/v1/terminals/me/appointment-slots", tag = "appointments", params(SlotsQuery),
    responses((status = 200, body = Vec<AppointmentSlot>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn slots(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<SlotsQuery>,
) -> ApiResult<Json<Vec<AppointmentSlot>>> {
    let point = terminal_point(&p)?;
    let item = parse_uuid("item_id", &q.item_id)?;
    let days = match q.days.as_deref() {
        None => DAYS_AHEAD,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=DAYS_AHEAD).contains(d))
            .ok_or_else(|| ApiError::validation("days 须为 1–7 (invalid days)"))?,
    };
    Ok(Json(slots_for(&state, point, item, now_ms(), days).await?.2))
}

/// A random six-digit check-in code.
fn new_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32))
}

/// Books a slot at the kiosk (device token; the signed-in staff member's access token in the
/// body), after the resident confirmed the consent text on screen. The slot must be one the
/// slots list offers with a free place. Answers with the check-in code. Audited, refusals too.
/// A booking confirmation goes to the notification outbox (webhook, no phone number stored in
/// it).
#[utoipa::path(post, path = "/api/v1/terminals/me/appointments", tag = "appointments",
    request_body = BookAppointmentRequest,
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not a terminal, or the staff sign-in is invalid or of another point"),
        (status = 404, body = ErrorBody, description = "no such item"),
        (status = 409, body = ErrorBody, description = "the slot is full"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn book(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<BookAppointmentRequest>,
) -> ApiResult<Json<AppointmentView>> {
    let point = terminal_point(&p)?;
    if !req.consent {
        return Err(ApiError::validation("须经居民同意方可预约 (the resident's consent is required)"));
    }
    let consent_text = check_text("consent_text", &req.consent_text, 500, false)?;
    let phone = check_phone(&req.phone)?;
    let now = now_ms();
    let (line, center, slots) = slots_for(&state, point, req.item_id, now, DAYS_AHEAD).await?;
    let slot = slots
        .iter()
        .find(|s| s.start == req.slot_start)
        .ok_or_else(|| ApiError::validation("该时段不可预约，请重新选择 (not a bookable slot)"))?;
    let (staff, staff_name) = match kiosk_staff(&state, req.staff_token.as_str(), point).await {
        Ok(s) => s,
        Err(e) => {
            let rec = AuditRecord::new("appointment.book", "appointment")
                .by(&p)
                .outcome("denied")
                .detail(json!({ "why": "staff" }));
            state.audit(rec).await;
            return Err(e);
        }
    };
    let full = || ApiError::conflict("该时段已约满，请选择其他时段 (the slot is full)");
    if slot.free == 0 {
        return Err(full());
    }
    let id = new_id();
    let day = calendar::cst_date(slot.start);
    let mut inserted = false;
    for _ in 0..8 {
        let r = sqlx::query(
            "INSERT INTO appointments (id, point_id, item_id, line_id, service_day, slot_start, slot_end, name_enc, \
             name_masked, phone_enc, phone_masked, consent_text, consent_at, state, code, ticket_id, booked_by, \
             booked_by_name, terminal_id, created_at, checked_in_at, closed_at, reminded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, 'booked', $14, NULL, $15, $16, $17, $13, NULL, NULL, NULL)",
        )
        .bind(id.to_string())
        .bind(point.to_string())
        .bind(req.item_id.to_string())
        .bind(line.to_string())
        .bind(&day)
        .bind(slot.start)
        .bind(slot.end)
        .bind(state.pii.encrypt(req.name.as_str(), &name_context(id)))
        .bind(req.name.masked())
        .bind(state.pii.encrypt(&phone, &phone_context(id)))
        .bind(mask_phone(&phone))
        .bind(&consent_text)
        .bind(now)
        .bind(new_code())
        .bind(staff.to_string())
        .bind(&staff_name)
        .bind(p.id.to_string())
        .execute(&state.db.pool)
        .await;
        match r {
            Ok(_) => {
                inserted = true;
                break;
            }
            // The code is taken at this point that day: draw another.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if !inserted {
        return Err(ApiError::conflict("签到码已用尽，请稍后再试 (no check-in code left, retry)"));
    }
    // Two bookings racing for the last place: the later one gives it back.
    let taken: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM appointments WHERE line_id = $1 AND slot_start = $2 \
         AND state IN ('booked', 'checked_in') AND (created_at < $3 OR (created_at = $3 AND id <= $4)) \
         AND point_id IN (SELECT p.id FROM service_points p LEFT JOIN center_streets cs ON cs.street = p.street \
         WHERE $5 IS NULL OR cs.center_id = $5)",
    )
    .bind(line.to_string())
    .bind(slot.start)
    .bind(now)
    .bind(id.to_string())
    .bind(center.map(|c| c.to_string()))
    .fetch_one(&state.db.pool)
    .await?
    .try_get("n")?;
    if taken > i64::from(slot.capacity) {
        sqlx::query("DELETE FROM appointments WHERE id = $1")
            .bind(id.to_string())
            .execute(&state.db.pool)
            .await?;
        return Err(full());
    }
    let view = load(&state, id).await?.ok_or_else(ApiError::internal)?;
    let text = format!("您已预约 {} {}，签到码 {}", view.point_name, view.when, view.code);
    let payload =
        json!({ "appointment_id": id, "point_id": point, "slot_start": view.slot_start, "text": text });
    if let Err(e) = crate::cases::outbox::enqueue(
        &state.db,
        "webhook",
        "appointment_booked",
        None,
        "appointment",
        payload,
    )
    .await
    {
        tracing::error!(error = %e, "appointment confirmation not queued");
    }
    let mut rec = AuditRecord::new("appointment.book", "appointment").by(&p).target(id).detail(json!({
        "consent": true, "staff_id": staff, "terminal_id": p.id, "item_id": req.item_id, "slot_start": slot.start,
    }));
    rec.actor_id = Some(staff);
    rec.actor_name = staff_name;
    state.audit(rec).await;
    Ok(Json(view))
}

/// Wrong check-in codes a terminal may enter within [`GUESS_WINDOW_MS`] before it must wait.
pub const MAX_CODE_MISSES: i64 = 10;
/// The window of [`MAX_CODE_MISSES`].
pub const GUESS_WINDOW_MS: i64 = 10 * 60_000;

/// Finds a booked appointment at this terminal's point by its check-in code (device token):
/// today's, not past its slot end plus the grace period. The kiosk then takes the ticket with
/// `take_ticket`'s `appointment_id`. Audited, misses too; after [`MAX_CODE_MISSES`] misses in
/// [`GUESS_WINDOW_MS`] the terminal waits (429), so codes cannot be walked.
#[utoipa::path(post, path = "/api/v1/terminals/me/appointments/check-in", tag = "appointments",
    request_body = AppointmentCheckInRequest,
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no appointment with this code today at this point"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many wrong codes from this terminal lately")))]
pub async fn check_in(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<AppointmentCheckInRequest>,
) -> ApiResult<Json<AppointmentView>> {
    let point = terminal_point(&p)?;
    if req.code.len() != 6 || !req.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::validation("签到码为 6 位数字 (the code is six digits)"));
    }
    let now = now_ms();
    let misses: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'appointment.find' AND outcome = 'not_found' \
         AND actor_id = $1 AND at >= $2",
    )
    .bind(p.id.to_string())
    .bind(now - GUESS_WINDOW_MS)
    .fetch_one(&state.db.pool)
    .await?
    .try_get("n")?;
    if misses >= MAX_CODE_MISSES {
        return Err(ApiError::too_many(u64::try_from(GUESS_WINDOW_MS / 1000).unwrap_or(600)));
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE a.point_id = $1 AND a.service_day = $2 AND a.code = $3 AND a.state = 'booked' \
         AND a.slot_end + $4 > $5"
    )))
    .bind(point.to_string())
    .bind(calendar::cst_date(now))
    .bind(&req.code)
    .bind(NO_SHOW_GRACE_MS)
    .bind(now)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        let rec = AuditRecord::new("appointment.find", "appointment").by(&p).outcome("not_found");
        state.audit(rec).await;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "未找到今天在本服务点的预约，请核对签到码 (no appointment with this code today)",
        ));
    };
    let view = view_of(&row)?;
    state.audit(AuditRecord::new("appointment.find", "appointment").by(&p).target(view.id)).await;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this point; absent: all points.
    #[param(pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub point_id: Option<String>,
    /// `YYYY-MM-DD` (China time); default today.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub date: Option<String>,
}

/// A day's appointments (supervisors and admins), by slot; phone and name masked. Audited.
#[utoipa::path(get, path = "/api/v1/appointments", tag = "appointments", params(ListQuery),
    responses((status = 200, body = Vec<AppointmentView>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<AppointmentView>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let point = q.point_id.as_deref().map(|v| parse_uuid("point_id", v)).transpose()?;
    let day = match q.date.as_deref() {
        None => calendar::cst_date(now_ms()),
        Some(d) => calendar::parse_date(d)
            .map(calendar::date_of)
            .ok_or_else(|| ApiError::validation("date 须为 YYYY-MM-DD (invalid date)"))?,
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE a.service_day = $1 AND ($2 = '' OR a.point_id = $2) ORDER BY a.slot_start, p.name, a.created_at \
         LIMIT 2000"
    )))
    .bind(&day)
    .bind(point.map(|p| p.to_string()).unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let out = rows.iter().map(view_of).collect::<ApiResult<Vec<_>>>()?;
    let rec = AuditRecord::new("appointment.list", "appointment")
        .by(&p)
        .detail(json!({ "date": day, "point_id": point, "count": out.len() }));
    state.audit(rec).await;
    Ok(Json(out))
}

/// Cancels a booked appointment (supervisors and admins). Audited.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", tag = "appointments", params(("id" = Uuid, Path)),
    responses((status = 200, body = AppointmentView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not booked (checked in, served, no-show or cancelled)")))]
pub async fn cancel(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AppointmentView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    load(&state, id).await?.ok_or_else(|| ApiError::not_found("预约"))?;
    let done = sqlx::query(
        "UPDATE appointments SET state = 'cancelled', closed_at = $1 WHERE id = $2 AND state = 'booked'",
    )
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(ApiError::conflict("只能取消未签到的预约 (only a booked appointment can be cancelled)"));
    }
    state.audit(AuditRecord::new("appointment.cancel", "appointment").by(&p).target(id)).await;
    Ok(Json(load(&state, id).await?.ok_or_else(ApiError::internal)?))
}

/// What one [`sweep`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub no_show: u64,
    pub served: u64,
    /// Day-before reminders queued.
    pub reminded: u64,
}

/// How long before its slot an appointment is reminded (once), when booked earlier than that.
pub const REMINDER_BEFORE_MS: i64 = 24 * 3_600_000;

/// The periodic sweep at `now` (the cases worker): booked appointments whose slot ended more
/// than [`NO_SHOW_GRACE_MS`] ago become `no_show`; checked-in ones whose ticket reached an
/// operator and are not yet marked (the call's start marks them) become `served`; a booked appointment within [`REMINDER_BEFORE_MS`] of its slot
/// and booked before that gets one reminder through the notification outbox (webhook; the
/// phone number is read at delivery, never stored in the outbox), queued in the transaction
/// that marks it reminded. Audited when anything changed.
pub async fn sweep(state: &AppState, now: i64) -> ApiResult<Swept> {
    let no_show = sqlx::query(
        "UPDATE appointments SET state = 'no_show', closed_at = $1 WHERE state = 'booked' AND slot_end + $2 <= $1",
    )
    .bind(now)
    .bind(NO_SHOW_GRACE_MS)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    let served = sqlx::query(
        "UPDATE appointments SET state = 'served', closed_at = $1 WHERE state = 'checked_in' AND EXISTS \
         (SELECT 1 FROM call_sessions s WHERE s.ticket_id = appointments.ticket_id)",
    )
    .bind(now)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    let due = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE a.state = 'booked' AND a.reminded_at IS NULL AND a.slot_start > $1 \
         AND a.slot_start - $2 <= $1 AND a.created_at < a.slot_start - $2 ORDER BY a.slot_start LIMIT 500"
    )))
    .bind(now)
    .bind(REMINDER_BEFORE_MS)
    .fetch_all(&state.db.pool)
    .await?;
    let mut reminded = 0;
    for r in &due {
        let a = view_of(r)?;
        let mut tx = state.db.pool.begin().await?;
        let marked =
            sqlx::query("UPDATE appointments SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL")
                .bind(now)
                .bind(a.id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if marked == 1 {
            let text = format!(
                "提醒：您预约了 {} 在{}办理“{}”，请按时到达，签到码 {}",
                a.when, a.point_name, a.item_name, a.code
            );
            let payload = json!({ "appointment_id": a.id, "point_id": a.point_id, "slot_start": a.slot_start, "text": text });
            crate::cases::outbox::enqueue_in(
                &mut tx,
                "webhook",
                "appointment_reminder",
                None,
                "appointment",
                payload,
            )
            .await?;
            reminded += 1;
        }
        tx.commit().await?;
    }
    let swept = Swept { no_show, served, reminded };
    if swept != Swept::default() {
        let rec = AuditRecord::new("appointment.sweep", "appointment")
            .detail(json!({ "no_show": no_show, "served": served, "reminded": reminded }));
        state.audit(rec).await;
    }
    Ok(swept)
}
