//! Operators' duty rosters per business line: a weekly schedule (the opening-hours shape:
//! weekday ranges, holiday rule, closures) of when the line is staffed at the acceptance center.
//! It only says when someone is next on duty for a line nobody serves now (the kiosk's
//! 当前无人值守); who serves a line now is the switchboard's.

use std::collections::HashMap;

use axum::extract::State;
use serde_json::json;
use shared::api::{ErrorBody, LineRosterView};
use shared::cases::OpeningHours;
use shared::protocol::Role;
use sqlx::Row;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar::{self, Calendar};
use crate::db::{Db, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;

/// Every line's roster (lines without one are absent). A stored roster that no longer parses
/// counts as none (logged).
pub async fn all(db: &Db) -> Result<HashMap<Uuid, OpeningHours>, sqlx::Error> {
    let rows = sqlx::query("SELECT line_id, schedule FROM line_rosters").fetch_all(&db.pool).await?;
    let mut out = HashMap::new();
    for r in rows {
        let line = parse_id(r.try_get("line_id")?)?;
        match serde_json::from_str(r.try_get::<&str, _>("schedule")?) {
            Ok(h) => _ = out.insert(line, h),
            Err(e) => tracing::error!(error = %e, "stored duty roster does not parse"),
        }
    }
    Ok(out)
}

/// When each rostered line next has someone on duty after `now`.
pub fn next_on_duty(rosters: &HashMap<Uuid, OpeningHours>, cal: &Calendar, now: i64) -> HashMap<Uuid, i64> {
    rosters.iter().filter_map(|(l, h)| Some((*l, calendar::next_start_after(h, cal, now)?))).collect()
}

async fn view(state: &AppState, line: Uuid) -> ApiResult<LineRosterView> {
    crate::api::catalog::load_line(&state.db, line).await?.ok_or_else(|| ApiError::not_found("条线"))?;
    let schedule = all(&state.db).await?.remove(&line);
    let week = match &schedule {
        Some(h) => calendar::week_from(h, &calendar::load(&state.db).await?, now_ms()),
        None => Vec::new(),
    };
    Ok(LineRosterView { line_id: line, schedule, week })
}

/// A line's duty roster and its next seven days by the working-day calendar (admins and
/// supervisors).
#[utoipa::path(get, path = "/api/v1/lines/{id}/roster", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = LineRosterView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<LineRosterView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    Ok(Json(view(&state, id).await?))
}

/// Set a line's duty roster (admin): weekday ranges when operators are on duty for it, the
/// holiday rule and closures, as for a point's opening hours.
#[utoipa::path(put, path = "/api/v1/lines/{id}/roster", tag = "catalog", params(("id" = Uuid, Path)),
    request_body = OpeningHours,
    responses((status = 200, body = LineRosterView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<OpeningHours>,
) -> ApiResult<Json<LineRosterView>> {
    p.require(&[Role::Admin])?;
    crate::api::catalog::load_line(&state.db, id).await?.ok_or_else(|| ApiError::not_found("条线"))?;
    calendar::check_opening_hours(&req).map_err(ApiError::validation)?;
    let schedule = serde_json::to_string(&req).map_err(|_| ApiError::internal())?;
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM line_rosters WHERE line_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO line_rosters (line_id, schedule, updated_at, updated_by) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.to_string())
    .bind(&schedule)
    .bind(now_ms())
    .bind(p.id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state
        .audit(AuditRecord::new("line.roster", "line").by(&p).target(id).detail(json!({
            "ranges": req.weekly.len(), "closures": req.closures.len(), "holiday_rule": req.holiday_rule,
        })))
        .await;
    Ok(Json(view(&state, id).await?))
}
