//! A service point's day (`GET /api/v1/points/{id}/today`): what its committee staff see on
//! their console home page — the point's terminals' health and printers, today's tickets (the
//! ones the caller helped with marked), today's print jobs, its open work orders and open
//! call-backs, and where its inspection (巡检) stands. Staff read only their own point (403 for any other); admins and supervisors
//! read any. No personal data: tickets carry neither names nor ID numbers.

use axum::extract::State;
use shared::api::{ErrorBody, PointCallback, PointOrder, PointPrintJob, PointTicket, PointToday};
use shared::protocol::Role;
use sqlx::Row;
use uuid::Uuid;

use crate::api::points;
use crate::api::terminal_health::health_rows;
use crate::auth::Principal;
use crate::calendar;
use crate::db::{now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;
use crate::switchboard::service_day;

/// One service point today: its terminals' health, today's tickets and print jobs, open work
/// orders and open call-backs (admin, supervisor; staff only for their own point).
#[utoipa::path(get, path = "/api/v1/points/{id}/today", tag = "points",
    params(("id" = Uuid, Path, description = "The service point")),
    responses((status = 200, body = PointToday), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "Not admin, supervisor or the point's own staff"),
        (status = 404, body = ErrorBody, description = "No such point, or not a point ID")))]
pub async fn today(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PointToday>> {
    if p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    match p.role {
        Role::Admin | Role::Supervisor => {}
        Role::Staff if p.point_id == Some(id) => {}
        _ => return Err(ApiError::forbidden()),
    }
    let point = points::load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    let now = now_ms();
    let pid = id.to_string();
    let pool = &state.db.pool;
    let schedule = points::schedule(&state.db, id).await?;
    let open_now = match &schedule {
        Some(h) => Some(calendar::is_open(h, &calendar::load(&state.db).await?, now)),
        None => None,
    };
    let terminals = health_rows(&state, Some(id)).await?;

    let day = service_day(now);
    let me = p.id.to_string();
    let mut tickets = Vec::new();
    for r in sqlx::query(
        "SELECT t.id, t.number, i.name AS item_name, t.status, t.created_at, t.closed_at, t.assisted_by, \
         t.assisted_by_name FROM tickets t JOIN service_items i ON i.id = t.item_id \
         WHERE t.point_id = $1 AND t.service_day = $2 ORDER BY t.created_at, t.id LIMIT 500",
    )
    .bind(&pid)
    .bind(&day)
    .fetch_all(pool)
    .await?
    {
        let by: Option<String> = r.try_get("assisted_by")?;
        tickets.push(PointTicket {
            id: parse_id(&r.try_get::<String, _>("id")?)?,
            number: r.try_get("number")?,
            item_name: r.try_get("item_name")?,
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
            closed_at: r.try_get("closed_at")?,
            assisted_by_name: r.try_get("assisted_by_name")?,
            helped_by_me: by.as_deref() == Some(me.as_str()),
        });
    }

    let since = calendar::cst_day_start(now);
    let mut print_jobs = Vec::new();
    for r in sqlx::query(
        "SELECT j.id, t.name AS terminal_name, j.state, j.reason, j.copies, j.created_at, j.updated_at \
         FROM print_jobs j JOIN terminals t ON t.id = j.terminal_id \
         WHERE j.point_id = $1 AND j.created_at >= $2 ORDER BY j.created_at DESC, j.id LIMIT 200",
    )
    .bind(&pid)
    .bind(since)
    .fetch_all(pool)
    .await?
    {
        print_jobs.push(PointPrintJob {
            id: parse_id(&r.try_get::<String, _>("id")?)?,
            terminal_name: r.try_get("terminal_name")?,
            state: r.try_get("state")?,
            reason: r.try_get("reason")?,
            copies: r.try_get("copies")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        });
    }

    let mut orders = Vec::new();
    for r in sqlx::query(
        "SELECT id, number, summary, state, due_at FROM work_orders \
         WHERE point_id = $1 AND state NOT IN ('completed', 'closed') ORDER BY due_at, id LIMIT 200",
    )
    .bind(&pid)
    .fetch_all(pool)
    .await?
    {
        let due_at: i64 = r.try_get("due_at")?;
        orders.push(PointOrder {
            id: parse_id(&r.try_get::<String, _>("id")?)?,
            number: r.try_get("number")?,
            summary: r.try_get("summary")?,
            state: r.try_get("state")?,
            due_at,
            overdue: due_at < now,
        });
    }

    // A call-back belongs where its order or its call was (as in the reports).
    let mut callbacks = Vec::new();
    for r in sqlx::query(
        "SELECT c.id, c.kind, o.number AS order_number, c.due_at FROM callbacks c \
         LEFT JOIN work_orders o ON o.id = c.order_id LEFT JOIN call_sessions s ON s.id = c.session_id \
         LEFT JOIN tickets t ON t.id = s.ticket_id \
         WHERE c.status = 'open' AND COALESCE(o.point_id, t.point_id) = $1 ORDER BY c.due_at, c.id LIMIT 200",
    )
    .bind(&pid)
    .fetch_all(pool)
    .await?
    {
        callbacks.push(PointCallback {
            id: parse_id(&r.try_get::<String, _>("id")?)?,
            kind: r.try_get("kind")?,
            order_number: r.try_get("order_number")?,
            due_at: r.try_get("due_at")?,
        });
    }

    let inspection =
        crate::inspections::load_all(&state, Some(id), now).await?.into_iter().next().map(|s| s.view);

    Ok(Json(PointToday {
        point_id: id,
        point_name: point.name,
        date: day,
        open_now,
        terminals,
        tickets,
        print_jobs,
        orders,
        callbacks,
        inspection,
    }))
}
