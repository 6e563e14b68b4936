//! Call-backs (回访) as tasks with outcomes: every negative rating's rectification (100 %),
//! every completed work order, and a configurable share of good ratings (sampled by a hash of
//! the session, so the choice is stable and [`sync`] idempotent). The result closes the
//! rectification, or closes (satisfied) or reopens (unsatisfied) the order.
//!
//! The switchboard writes rectifications; [`sync`] (run by the cases worker) turns new ones
//! into tasks without touching the switchboard.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::api::ErrorBody;
use shared::cases::{CallbackKind, CallbackResultRequest, CallbackSettings, CallbackView, OrderAction};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar;
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

/// Working days to call back a completed order or a sampled good rating.
pub const CALLBACK_WORKING_DAYS: u32 = 5;

fn kind_str(k: CallbackKind) -> &'static str {
    match k {
        CallbackKind::Rectification => "rectification",
        CallbackKind::Order => "order",
        CallbackKind::GoodRating => "good_rating",
        CallbackKind::HomeVisit => "home_visit",
    }
}

fn kind_parse(s: &str) -> Option<CallbackKind> {
    [CallbackKind::Rectification, CallbackKind::Order, CallbackKind::GoodRating, CallbackKind::HomeVisit]
        .into_iter()
        .find(|k| kind_str(*k) == s)
}

/// Whether a good rating of `session_id` is in the sample of `share_pct` percent: stable.
pub fn sampled(session_id: &str, share_pct: i64) -> bool {
    let h = Sha256::digest(session_id.as_bytes());
    i64::from(u16::from_be_bytes([h[0], h[1]]) % 100) < share_pct
}

async fn insert(
    db: &Db,
    kind: CallbackKind,
    source_ref: &str,
    order_id: Option<&str>,
    session_id: Option<&str>,
    due_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let exists = sqlx::query("SELECT 1 AS x FROM callbacks WHERE source_ref = $1")
        .bind(source_ref)
        .fetch_optional(&db.pool)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let r = sqlx::query(
        "INSERT INTO callbacks (id, kind, source_ref, order_id, session_id, status, due_at, created_at, result, \
         satisfied, done_by, done_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, NULL, NULL, NULL, NULL)",
    )
    .bind(new_id().to_string())
    .bind(kind_str(kind))
    .bind(source_ref)
    .bind(order_id)
    .bind(session_id)
    .bind(due_at)
    .bind(now)
    .execute(&db.pool)
    .await;
    match r {
        Ok(_) => Ok(true),
        // A concurrent sync inserted it: fine, it exists once.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// A call-back for a home visit just rated (评价).
pub async fn for_home_visit(db: &Db, visit_id: Uuid, now: i64) -> Result<(), sqlx::Error> {
    let cal = calendar::load(db).await?;
    let due = cal.due_after_working_days(now, CALLBACK_WORKING_DAYS);
    insert(db, CallbackKind::HomeVisit, &format!("home_visit:{visit_id}"), None, None, due, now)
        .await
        .map(|_| ())
}

/// A call-back for an order just completed (办结).
pub async fn for_completed_order(
    db: &Db,
    order_id: Uuid,
    completion_seq: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let cal = calendar::load(db).await?;
    let due = cal.due_after_working_days(now, CALLBACK_WORKING_DAYS);
    let source = format!("order:{order_id}:{completion_seq}");
    insert(db, CallbackKind::Order, &source, Some(&order_id.to_string()), None, due, now).await.map(|_| ())
}

async fn good_share(db: &Db) -> Result<i64, sqlx::Error> {
    Ok(sqlx::query("SELECT good_share_pct FROM callback_settings WHERE id = 1")
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<i64, _>("good_share_pct"))
        .transpose()?
        .unwrap_or(10))
}

/// Creates the call-back tasks still missing: one per rectification, one per sampled good
/// rating. Idempotent. Returns how many were created.
pub async fn sync(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut made = 0;
    let rects = sqlx::query(
        "SELECT x.id, x.session_id, x.due_at FROM rectifications x \
         WHERE NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.source_ref = 'rectification:' || x.id)",
    )
    .fetch_all(&db.pool)
    .await?;
    for r in &rects {
        let id: String = r.try_get("id")?;
        let session: String = r.try_get("session_id")?;
        let source = format!("rectification:{id}");
        made += u64::from(
            insert(db, CallbackKind::Rectification, &source, None, Some(&session), r.try_get("due_at")?, now)
                .await?,
        );
    }
    let share = good_share(db).await?;
    if share > 0 {
        let cal = calendar::load(db).await?;
        let goods = sqlx::query(
            "SELECT r.session_id, r.created_at FROM ratings r WHERE r.level IN ('satisfied', 'very_satisfied') \
             AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.source_ref = 'rating:' || r.session_id) \
             AND NOT EXISTS (SELECT 1 FROM callback_samples s WHERE s.session_id = r.session_id)",
        )
        .fetch_all(&db.pool)
        .await?;
        for g in &goods {
            let session: String = g.try_get("session_id")?;
            let created: i64 = g.try_get("created_at")?;
            if sampled(&session, share) {
                let due = cal.due_after_working_days(created, CALLBACK_WORKING_DAYS);
                let source = format!("rating:{session}");
                made += u64::from(
                    insert(db, CallbackKind::GoodRating, &source, None, Some(&session), due, now).await?,
                );
            }
            // Decided once: a rating left out stays out when the share changes later.
            sqlx::query("INSERT INTO callback_samples (session_id, decided_at) VALUES ($1, $2)")
                .bind(&session)
                .bind(now)
                .execute(&db.pool)
                .await
                .ok();
        }
    }
    Ok(made)
}

const SELECT: &str = "SELECT c.id, c.kind, c.order_id, o.number AS order_number, c.session_id, t.number AS ticket_number, \
    c.status, c.due_at, c.created_at, c.result, c.satisfied, c.done_by, c.done_at, \
    COALESCE(oi.name, si.name) AS item_name, COALESCE(op.name, sp.name) AS point_name, \
    CASE WHEN c.order_id IS NOT NULL THEN o.phone_masked ELSE NULL END AS phone_masked \
    FROM callbacks c \
    LEFT JOIN work_orders o ON o.id = c.order_id \
    LEFT JOIN service_items oi ON oi.id = o.item_id \
    LEFT JOIN service_points op ON op.id = o.point_id \
    LEFT JOIN call_sessions s ON s.id = c.session_id \
    LEFT JOIN tickets t ON t.id = s.ticket_id \
    LEFT JOIN service_items si ON si.id = t.item_id \
    LEFT JOIN service_points sp ON sp.id = t.point_id";

fn view_of(r: &AnyRow, now: i64) -> ApiResult<CallbackView> {
    let kind = kind_parse(&r.try_get::<String, _>("kind")?).ok_or_else(ApiError::internal)?;
    let due_at: i64 = r.try_get("due_at")?;
    let done_at: Option<i64> = r.try_get("done_at")?;
    let id_of = |c: &str| -> ApiResult<Option<Uuid>> {
        Ok(r.try_get::<Option<String>, _>(c)?.map(|s| parse_id(&s)).transpose()?)
    };
    Ok(CallbackView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        kind,
        kind_zh: match kind {
            CallbackKind::Rectification => "差评回访",
            CallbackKind::Order => "工单回访",
            CallbackKind::GoodRating => "好评抽访",
            CallbackKind::HomeVisit => "上门回访",
        }
        .to_owned(),
        order_id: id_of("order_id")?,
        order_number: r.try_get("order_number")?,
        session_id: id_of("session_id")?,
        ticket_number: r.try_get("ticket_number")?,
        item_name: r.try_get("item_name")?,
        point_name: r.try_get("point_name")?,
        phone_masked: r.try_get("phone_masked")?,
        done: r.try_get::<String, _>("status")? == "done",
        due_at,
        due_at_cst: super::orders::cst_minute(due_at),
        overdue: done_at.unwrap_or(now) > due_at,
        created_at: r.try_get("created_at")?,
        result: r.try_get("result")?,
        satisfied: r.try_get::<Option<i64>, _>("satisfied")?.map(|v| v != 0),
        done_by: id_of("done_by")?,
        done_at,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CallbacksQuery {
    /// `open` (default, most urgent first), `done` or `all`.
    #[param(pattern = "^(open|done|all)$")]
    pub status: Option<String>,
}

/// Call-back tasks (supervisors and admins all; operators those of their orders and calls),
/// at most 500.
#[utoipa::path(get, path = "/api/v1/callbacks", tag = "cases", params(CallbacksQuery),
    responses((status = 200, body = [CallbackView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<CallbacksQuery>,
) -> ApiResult<Json<Vec<CallbackView>>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator])?;
    let (filter, order) = match q.status.as_deref().unwrap_or("open") {
        "open" => (" AND c.status = 'open'", "c.due_at, c.id"),
        "done" => (" AND c.status = 'done'", "c.done_at DESC, c.id"),
        "all" => ("", "c.created_at DESC, c.id"),
        _ => return Err(ApiError::bad_request("status 须为 open、done 或 all (invalid status)")),
    };
    let scope = if p.role == Role::Operator {
        " AND (s.operator_id = $1 OR o.created_by = $1 OR o.assignee_id = $1 OR o.session_id IN \
         (SELECT s2.id FROM call_sessions s2 WHERE s2.operator_id = $1))"
    } else {
        " AND $1 = $1"
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE 1 = 1{filter}{scope} ORDER BY {order} LIMIT 500"
    )))
    .bind(p.id.to_string())
    .fetch_all(&state.db.pool)
    .await?;
    let now = now_ms();
    Ok(Json(rows.iter().map(|r| view_of(r, now)).collect::<ApiResult<_>>()?))
}

/// Record a call-back's outcome. A rectification's call-back closes the rectification (with
/// the measures taken); an order's closes it (satisfied, 反馈) or reopens it (unsatisfied).
/// Supervisors and admins; operators for their orders' call-backs.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}/result", tag = "cases", params(("id" = Uuid, Path)),
    request_body = CallbackResultRequest,
    responses((status = 200, body = CallbackView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<CallbackResultRequest>,
) -> ApiResult<Json<CallbackView>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator])?;
    let result = check_text("result", &req.result, 500, false)?;
    let measures = req
        .rectification
        .as_deref()
        .map(|m| check_text("rectification", m, 1000, true))
        .transpose()?
        .filter(|m| !m.is_empty());
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("回访任务"))?;
    let cb = view_of(&row, now_ms())?;
    if p.role == Role::Operator && (cb.kind != CallbackKind::Order || cb.order_id.is_none()) {
        return Err(ApiError::forbidden());
    }
    if let (Role::Operator, Some(order)) = (p.role, cb.order_id) {
        // The order's own visibility rule: refuse as not found otherwise.
        if super::orders::load_visible(&state, &p, order).await?.is_none() {
            return Err(ApiError::not_found("回访任务"));
        }
    }
    if cb.done {
        return Err(ApiError::conflict("该回访已记录 (already recorded)"));
    }
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE callbacks SET status = 'done', result = $1, satisfied = $2, done_by = $3, done_at = $4 \
         WHERE id = $5 AND status = 'open'",
    )
    .bind(&result)
    .bind(i64::from(req.satisfied))
    .bind(p.id.to_string())
    .bind(now)
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(ApiError::conflict("该回访已记录 (already recorded)"));
    }
    match cb.kind {
        CallbackKind::Rectification => {
            let rect = sqlx::query("SELECT id FROM rectifications WHERE session_id = $1")
                .bind(cb.session_id.map(|s| s.to_string()))
                .fetch_optional(&state.db.pool)
                .await?;
            if let Some(r) = rect {
                sqlx::query(
                    "UPDATE rectifications SET status = 'closed', callback_at = $1, callback_result = $2, \
                     rectification = $3, closed_by = $4, closed_at = $1 WHERE id = $5 AND status = 'open'",
                )
                .bind(now)
                .bind(&result)
                .bind(measures.as_deref())
                .bind(p.id.to_string())
                .bind(r.try_get::<String, _>("id")?)
                .execute(&state.db.pool)
                .await?;
            }
        }
        CallbackKind::Order => {
            if let Some(order) = cb.order_id {
                let step = if req.satisfied {
                    OrderAction::Feedback { feedback: result.clone() }
                } else {
                    OrderAction::Reopen { reason: format!("回访不满意：{result}") }
                };
                super::orders::apply_step(&state, &p, order, &step).await?;
            }
        }
        CallbackKind::GoodRating | CallbackKind::HomeVisit => {}
    }
    state
        .audit(AuditRecord::new("callback.record", "callback").by(&p).target(id).detail(json!({
            "kind": kind_str(cb.kind), "satisfied": req.satisfied,
        })))
        .await;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
        .bind(id.to_string())
        .fetch_one(&state.db.pool)
        .await?;
    Ok(Json(view_of(&row, now_ms())?))
}

/// Set the share of good ratings called back (admin), 0–100 %.
#[utoipa::path(put, path = "/api/v1/callbacks/settings", tag = "cases", request_body = CallbackSettings,
    responses((status = 200, body = CallbackSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CallbackSettings>,
) -> ApiResult<Json<CallbackSettings>> {
    p.require(&[Role::Admin])?;
    if !(0..=100).contains(&req.good_share_pct) {
        return Err(ApiError::validation("good_share_pct 须为 0–100 (out of range)"));
    }
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM callback_settings WHERE id = 1").execute(&mut *tx).await?;
    sqlx::query("INSERT INTO callback_settings (id, good_share_pct, updated_at) VALUES (1, $1, $2)")
        .bind(req.good_share_pct)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    state
        .audit(
            AuditRecord::new("callback.settings", "callback")
                .by(&p)
                .detail(json!({ "good_share_pct": req.good_share_pct })),
        )
        .await;
    Ok(Json(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_stable_and_near_the_share() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("01a245c2-0000-7000-8000-{i:012}")).collect();
        let n = ids.iter().filter(|s| sampled(s, 10)).count();
        assert!((800..=1200).contains(&n), "{n}");
        assert!(ids.iter().all(|s| sampled(s, 10) == sampled(s, 10)));
        assert!(ids.iter().all(|s| !sampled(s, 0) && sampled(s, 100)));
    }
}
