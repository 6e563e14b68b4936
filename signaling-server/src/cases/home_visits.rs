//! Home-visit requests (上门办): 发现 (staff, 12345 or a referral) → 审核 (a supervisor approves
//! or refuses with a reason) → 帮办 (scheduled, assigned, materials to bring) → 评价 (outcome
//! and the resident's rating, then a call-back task). [`next`] is the sans-IO transition;
//! `/api/v1/home-visits` stores it.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use shared::api::ErrorBody;
use shared::cases::{
    CreateHomeVisitRequest, HomeVisitAction, HomeVisitSource, HomeVisitState, HomeVisitStepRequest,
    HomeVisitView,
};
use shared::protocol::{RatingLevel, Role};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, check_text};
use crate::state::AppState;

fn state_str(s: HomeVisitState) -> &'static str {
    match s {
        HomeVisitState::Requested => "requested",
        HomeVisitState::Approved => "approved",
        HomeVisitState::Refused => "refused",
        HomeVisitState::Scheduled => "scheduled",
        HomeVisitState::Done => "done",
        HomeVisitState::Rated => "rated",
    }
}

fn state_zh(s: HomeVisitState) -> &'static str {
    match s {
        HomeVisitState::Requested => "待审核",
        HomeVisitState::Approved => "已批准",
        HomeVisitState::Refused => "未批准",
        HomeVisitState::Scheduled => "已安排",
        HomeVisitState::Done => "已上门",
        HomeVisitState::Rated => "已评价",
    }
}

fn state_parse(s: &str) -> Option<HomeVisitState> {
    use HomeVisitState::*;
    [Requested, Approved, Refused, Scheduled, Done, Rated].into_iter().find(|v| state_str(*v) == s)
}

fn source_str(s: HomeVisitSource) -> &'static str {
    match s {
        HomeVisitSource::Staff => "staff",
        HomeVisitSource::Hotline12345 => "hotline_12345",
        HomeVisitSource::Referral => "referral",
    }
}

/// The next state after `action`, or `None` when it is not allowed from `state` (sans-IO).
pub fn next(state: HomeVisitState, action: &HomeVisitAction) -> Option<HomeVisitState> {
    use HomeVisitAction as A;
    use HomeVisitState as S;
    match (state, action) {
        (S::Requested, A::Approve { .. }) => Some(S::Approved),
        (S::Requested, A::Refuse { .. }) => Some(S::Refused),
        (S::Approved | S::Scheduled, A::Schedule { .. }) => Some(S::Scheduled),
        (S::Scheduled, A::Complete { .. }) => Some(S::Done),
        (S::Done, A::Rate { .. }) => Some(S::Rated),
        _ => None,
    }
}

const SELECT: &str =
    "SELECT h.*, p.name AS point_name FROM home_visits h JOIN service_points p ON p.id = h.point_id";

fn view_of(r: &AnyRow) -> ApiResult<HomeVisitView> {
    let state = state_parse(&r.try_get::<String, _>("state")?).ok_or_else(ApiError::internal)?;
    let source = match r.try_get::<String, _>("source")?.as_str() {
        "staff" => HomeVisitSource::Staff,
        "hotline_12345" => HomeVisitSource::Hotline12345,
        _ => HomeVisitSource::Referral,
    };
    let list = |c: &str| -> ApiResult<Vec<String>> {
        serde_json::from_str(&r.try_get::<String, _>(c)?).map_err(|_| ApiError::internal())
    };
    let id_of = |c: &str| -> ApiResult<Option<Uuid>> {
        Ok(r.try_get::<Option<String>, _>(c)?.map(|s| parse_id(&s)).transpose()?)
    };
    Ok(HomeVisitView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        source,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        point_name: r.try_get("point_name")?,
        item_id: id_of("item_id")?,
        situation: r.try_get("situation")?,
        address: r.try_get("address")?,
        state,
        state_zh: state_zh(state).to_owned(),
        decision_reason: r.try_get("decision_reason")?,
        decided_by: id_of("decided_by")?,
        scheduled_at: r.try_get("scheduled_at")?,
        assignees: list("assignees")?,
        materials: list("materials")?,
        outcome: r.try_get("outcome")?,
        rating: r
            .try_get::<Option<String>, _>("rating")?
            .and_then(|l| serde_json::from_value::<RatingLevel>(json!(l)).ok()),
        rating_comment: r.try_get("rating_comment")?,
        created_by: parse_id(&r.try_get::<String, _>("created_by")?)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        version: r.try_get("version")?,
    })
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Option<HomeVisitView>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE h.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    row.as_ref().map(view_of).transpose()
}

fn visible(p: &Principal, v: &HomeVisitView) -> bool {
    matches!(p.role, Role::Admin | Role::Supervisor)
        || (p.role == Role::Staff && p.point_id == Some(v.point_id))
}

/// Open a home-visit request (发现): staff at their point, supervisors from 12345 or a referral.
#[utoipa::path(post, path = "/api/v1/home-visits", tag = "cases", request_body = CreateHomeVisitRequest,
    responses((status = 201, body = HomeVisitView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateHomeVisitRequest>,
) -> ApiResult<(StatusCode, Json<HomeVisitView>)> {
    let point = match req.source {
        HomeVisitSource::Staff => {
            p.require(&[Role::Staff])?;
            p.point_id.ok_or_else(ApiError::forbidden)?
        }
        HomeVisitSource::Hotline12345 | HomeVisitSource::Referral => {
            p.require(&[Role::Supervisor, Role::Admin])?;
            req.point_id.ok_or_else(|| ApiError::validation("须提供 point_id"))?
        }
    };
    let situation = check_text("situation", &req.situation, 1000, false)?;
    let address = check_text("address", &req.address, 200, false)?;
    if sqlx::query("SELECT 1 AS x FROM service_points WHERE id = $1")
        .bind(point.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("服务点"));
    }
    if let Some(item) = req.item_id
        && sqlx::query("SELECT 1 AS x FROM service_items WHERE id = $1")
            .bind(item.to_string())
            .fetch_optional(&state.db.pool)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found("事项"));
    }
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO home_visits (id, source, point_id, item_id, situation, address, state, decision_reason, decided_by, \
         decided_at, scheduled_at, assignees, materials, outcome, rating, rating_comment, created_by, created_at, \
         updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, 'requested', NULL, NULL, NULL, NULL, '[]', '[]', NULL, \
         NULL, NULL, $7, $8, $8, 1)",
    )
    .bind(id.to_string())
    .bind(source_str(req.source))
    .bind(point.to_string())
    .bind(req.item_id.map(|i| i.to_string()))
    .bind(&situation)
    .bind(&address)
    .bind(p.id.to_string())
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    state
        .audit(
            AuditRecord::new("home_visit.create", "home_visit")
                .by(&p)
                .target(id)
                .detail(json!({ "source": source_str(req.source) })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(load(&state, id).await?.ok_or_else(ApiError::internal)?)))
}

/// Home-visit requests, newest first, at most 500: supervisors and admins all, staff their
/// point's.
#[utoipa::path(get, path = "/api/v1/home-visits", tag = "cases",
    responses((status = 200, body = [HomeVisitView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, p: Principal) -> ApiResult<Json<Vec<HomeVisitView>>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Staff])?;
    let point = if p.role == Role::Staff {
        p.point_id.map(|x| x.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE ($1 = '' OR h.point_id = $1) ORDER BY h.created_at DESC, h.id LIMIT 500"
    )))
    .bind(point)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.iter().map(view_of).collect::<ApiResult<_>>()?))
}

/// A step on a home visit: 审核 (approve / refuse) and 帮办 (schedule) by supervisors and
/// admins; the visit's outcome and the resident's rating (评价) by the point's staff or a
/// supervisor. Rating it creates a call-back task. Illegal steps get 409.
#[utoipa::path(post, path = "/api/v1/home-visits/{id}/steps", tag = "cases", params(("id" = Uuid, Path)),
    request_body = HomeVisitStepRequest,
    responses((status = 200, body = HomeVisitView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn step(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<HomeVisitStepRequest>,
) -> ApiResult<Json<HomeVisitView>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Staff])?;
    let cur =
        load(&state, id).await?.filter(|v| visible(&p, v)).ok_or_else(|| ApiError::not_found("上门办"))?;
    let supervisor_only = matches!(
        req.step,
        HomeVisitAction::Approve { .. } | HomeVisitAction::Refuse { .. } | HomeVisitAction::Schedule { .. }
    );
    if supervisor_only && p.role == Role::Staff {
        return Err(ApiError::forbidden());
    }
    let now = now_ms();
    let to = next(cur.state, &req.step).ok_or_else(|| {
        ApiError::conflict(format!("当前状态「{}」不能执行该操作 (illegal transition)", state_zh(cur.state)))
    })?;
    let version = cur.version;
    let mut q = match &req.step {
        HomeVisitAction::Approve { reason } | HomeVisitAction::Refuse { reason } => {
            let reason = check_text("reason", reason, 500, false)?;
            sqlx::query(
                "UPDATE home_visits SET state = $1, decision_reason = $2, decided_by = $3, decided_at = $4, \
                 updated_at = $4, version = version + 1 WHERE id = $5 AND version = $6",
            )
            .bind(state_str(to))
            .bind(reason)
            .bind(p.id.to_string())
            .bind(now)
        }
        HomeVisitAction::Schedule { at, assignees, materials } => {
            if *at < now - 86_400_000 || *at > now + 366 * 86_400_000 {
                return Err(ApiError::validation("上门时间须在一年内 (time out of range)"));
            }
            if assignees.is_empty() || assignees.len() > 10 || materials.len() > 30 {
                return Err(ApiError::validation("须指派 1–10 人，材料最多 30 项 (invalid assignment)"));
            }
            let a = assignees
                .iter()
                .map(|n| check_text("assignees", n, 32, false))
                .collect::<ApiResult<Vec<_>>>()?;
            let m = materials
                .iter()
                .map(|n| check_text("materials", n, 64, false))
                .collect::<ApiResult<Vec<_>>>()?;
            sqlx::query(
                "UPDATE home_visits SET state = $1, scheduled_at = $2, assignees = $3, materials = $4, updated_at = $5, \
                 version = version + 1 WHERE id = $6 AND version = $7",
            )
            .bind(state_str(to))
            .bind(*at)
            .bind(serde_json::to_string(&a).map_err(|_| ApiError::internal())?)
            .bind(serde_json::to_string(&m).map_err(|_| ApiError::internal())?)
            .bind(now)
        }
        HomeVisitAction::Complete { outcome } => sqlx::query(
            "UPDATE home_visits SET state = $1, outcome = $2, updated_at = $3, version = version + 1 \
             WHERE id = $4 AND version = $5",
        )
        .bind(state_str(to))
        .bind(check_text("outcome", outcome, 500, false)?)
        .bind(now),
        HomeVisitAction::Rate { level, comment } => {
            let comment = comment.as_deref().map(|c| check_text("comment", c, 500, true)).transpose()?;
            sqlx::query(
                "UPDATE home_visits SET state = $1, rating = $2, rating_comment = $3, updated_at = $4, \
                 version = version + 1 WHERE id = $5 AND version = $6",
            )
            .bind(state_str(to))
            .bind(serde_json::to_value(level).ok().and_then(|v| v.as_str().map(str::to_owned)))
            .bind(comment.filter(|c| !c.is_empty()))
            .bind(now)
        }
    };
    q = q.bind(id.to_string()).bind(version);
    if q.execute(&state.db.pool).await?.rows_affected() != 1 {
        return Err(ApiError::conflict("已被他人更新，请刷新后重试 (changed by someone else)"));
    }
    if to == HomeVisitState::Rated {
        super::callbacks::for_home_visit(&state.db, id, now).await?;
    }
    state
        .audit(AuditRecord::new("home_visit.step", "home_visit").by(&p).target(id).detail(json!({
            "from": state_str(cur.state), "to": state_str(to),
        })))
        .await;
    Ok(Json(load(&state, id).await?.ok_or_else(ApiError::internal)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_steps_and_nothing_else() {
        use HomeVisitAction as A;
        use HomeVisitState as S;
        let r = || "原因".to_owned();
        let actions = [
            A::Approve { reason: r() },
            A::Refuse { reason: r() },
            A::Schedule { at: 0, assignees: vec![], materials: vec![] },
            A::Complete { outcome: r() },
            A::Rate { level: RatingLevel::Satisfied, comment: None },
        ];
        let allowed = [
            (S::Requested, 0, S::Approved),
            (S::Requested, 1, S::Refused),
            (S::Approved, 2, S::Scheduled),
            (S::Scheduled, 2, S::Scheduled),
            (S::Scheduled, 3, S::Done),
            (S::Done, 4, S::Rated),
        ];
        for s in [S::Requested, S::Approved, S::Refused, S::Scheduled, S::Done, S::Rated] {
            for (i, a) in actions.iter().enumerate() {
                let want = allowed.iter().find(|(f, ai, _)| *f == s && *ai == i).map(|t| t.2);
                assert_eq!(next(s, a), want, "{s:?} {a:?}");
            }
        }
    }
}
