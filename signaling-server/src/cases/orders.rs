//! Work orders (工单): storage, `/api/v1/orders` and escalation (提级响应).
//!
//! Every step goes through [`Order::apply`](super::machine::Order::apply) and is stored with
//! its history row in one transaction, guarded by the order's version. Who sees what:
//! supervisors and admins every order; an operator the orders they opened or are assigned;
//! committee staff their point's orders.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use shared::api::ErrorBody;
use shared::cases::{
    CreateOrderRequest, DeadlineClass, EscalationLevel, KioskContactRequest, KioskContactView, OrderAction,
    OrderActionRequest, OrderContactRequest, OrderContactReveal, OrderEvent, OrderMaterial, OrderSource,
    OrderState, OrderView,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::machine::{Effect, Order, OrderError};
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar::{self, Calendar, cst_date};
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

const SELECT: &str = "SELECT o.id, o.number, o.source, o.source_ref, o.session_id, o.point_id, pt.name AS point_name, \
    pt.street, o.item_id, i.name AS item_name, o.line_id, l.name AS line_name, o.resident_masked, o.phone_masked, \
    o.consent_at, o.consent_text, o.summary, \
    o.case_number, o.category, o.department, o.assignee_id, a.display_name AS assignee_name, o.state, \
    o.suspended_reason, o.deadline, o.clock_start, o.pauses, o.due_at, o.escalated, o.outstanding_materials, \
    o.created_by, o.created_at, o.updated_at, o.closed_at, o.version \
    FROM work_orders o \
    JOIN service_points pt ON pt.id = o.point_id \
    JOIN service_items i ON i.id = o.item_id \
    JOIN business_lines l ON l.id = o.line_id \
    LEFT JOIN users a ON a.id = o.assignee_id";

fn source_parse(s: &str) -> Option<OrderSource> {
    [
        OrderSource::WrapUp,
        OrderSource::Point,
        OrderSource::Hotline12345,
        OrderSource::SuggestionBox,
        OrderSource::GoodBadReview,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
}

fn json_col<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &str) -> ApiResult<T> {
    serde_json::from_str(&r.try_get::<String, _>(col)?).map_err(|_| ApiError::internal())
}

/// The machine's part of a stored order.
fn machine_of(r: &AnyRow) -> ApiResult<Order> {
    Ok(Order {
        state: OrderState::parse(&r.try_get::<String, _>("state")?).ok_or_else(ApiError::internal)?,
        deadline: json_col(r, "deadline")?,
        clock_start: r.try_get("clock_start")?,
        pauses: json_col(r, "pauses")?,
        suspended_reason: r.try_get("suspended_reason")?,
        category: r.try_get("category")?,
        department: r.try_get("department")?,
        escalated: EscalationLevel::from_i64(r.try_get("escalated")?),
    })
}

/// `YYYY-MM-DD HH:MM`, China time.
pub fn cst_minute(ms: i64) -> String {
    let day = calendar::cst_day(ms);
    let min = (ms - calendar::day_start(day)) / 60_000;
    format!("{} {:02}:{:02}", calendar::date_of(day), min / 60, min % 60)
}

fn view_of(r: &AnyRow, cal: &Calendar, now: i64) -> ApiResult<OrderView> {
    let m = machine_of(r)?;
    let state = m.state;
    let due_at = if m.is_open() { m.due_at(cal, now) } else { r.try_get("due_at")? };
    let closed_at: Option<i64> = r.try_get("closed_at")?;
    let opt_id = |col: &str| -> ApiResult<Option<Uuid>> {
        Ok(r.try_get::<Option<String>, _>(col)?.map(|s| parse_id(&s)).transpose()?)
    };
    let source = source_parse(&r.try_get::<String, _>("source")?).ok_or_else(ApiError::internal)?;
    Ok(OrderView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        number: r.try_get("number")?,
        source,
        source_zh: source.label_zh().to_owned(),
        source_ref: r.try_get("source_ref")?,
        session_id: opt_id("session_id")?,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        point_name: r.try_get("point_name")?,
        street: r.try_get("street")?,
        item_id: parse_id(&r.try_get::<String, _>("item_id")?)?,
        item_name: r.try_get("item_name")?,
        line_id: parse_id(&r.try_get::<String, _>("line_id")?)?,
        line_name: r.try_get("line_name")?,
        resident_masked: r.try_get("resident_masked")?,
        phone_masked: r.try_get("phone_masked")?,
        consent_at: r.try_get("consent_at")?,
        consent_text: r.try_get("consent_text")?,
        summary: r.try_get("summary")?,
        case_number: r.try_get("case_number")?,
        category: m.category.clone(),
        department: m.department.clone(),
        assignee_id: opt_id("assignee_id")?,
        assignee_name: r.try_get("assignee_name")?,
        state,
        state_zh: state.label_zh().to_owned(),
        suspended: m.suspended_reason.is_some(),
        suspended_reason: m.suspended_reason.clone(),
        deadline: m.deadline,
        due_at,
        due_at_cst: cst_minute(due_at),
        working_days_left: cal.working_days_left(now, due_at),
        overdue: closed_at.unwrap_or(now) > due_at,
        escalation: m.escalated,
        outstanding_materials: json_col(r, "outstanding_materials")?,
        materials: Vec::new(),
        created_by: opt_id("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        closed_at,
        version: r.try_get("version")?,
        history: Vec::new(),
    })
}

async fn history(db: &Db, id: Uuid) -> ApiResult<Vec<OrderEvent>> {
    let rows = sqlx::query(
        "SELECT e.seq, e.at, e.actor_id, u.display_name AS actor_name, e.action, e.from_state, e.to_state, e.note \
         FROM work_order_events e LEFT JOIN users u ON u.id = e.actor_id WHERE e.order_id = $1 ORDER BY e.seq",
    )
    .bind(id.to_string())
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let action: String = r.try_get("action")?;
            Ok(OrderEvent {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                actor_id: r.try_get::<Option<String>, _>("actor_id")?.map(|s| parse_id(&s)).transpose()?,
                actor_name: r.try_get("actor_name")?,
                action_zh: action_label(&action).to_owned(),
                action,
                from_state: r.try_get::<Option<String>, _>("from_state")?.and_then(|s| OrderState::parse(&s)),
                to_state: OrderState::parse(&r.try_get::<String, _>("to_state")?)
                    .ok_or_else(ApiError::internal)?,
                note: r.try_get("note")?,
            })
        })
        .collect()
}

fn action_label(action: &str) -> &'static str {
    match action {
        "create" => "受理",
        "classify" => "分类",
        "transfer" => "转办",
        "return" => "退回",
        "suspend" => "挂起",
        "resume" => "恢复",
        "request_materials" => "需补材料",
        "complete" => "办结",
        "feedback" => "反馈",
        "reopen" => "重新办理",
        "set_deadline" => "调整时限",
        "escalate_near_due" => "临期提级",
        "escalate_overdue" => "超期提级",
        _ => "其他",
    }
}

async fn load_row(db: &Db, id: Uuid) -> ApiResult<Option<AnyRow>> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE o.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?)
}

/// Whether `p` may see an order: supervisors and admins all; operators theirs (opened,
/// assigned, or from their call); staff their point's.
async fn may_see(db: &Db, p: &Principal, r: &AnyRow) -> ApiResult<bool> {
    let me = Some(p.id.to_string());
    Ok(match p.role {
        Role::Admin | Role::Supervisor => true,
        Role::Operator => {
            let created: Option<String> = r.try_get("created_by")?;
            let assignee: Option<String> = r.try_get("assignee_id")?;
            let session: Option<String> = r.try_get("session_id")?;
            created == me
                || assignee == me
                || match session {
                    Some(s) => {
                        sqlx::query("SELECT 1 AS x FROM call_sessions WHERE id = $1 AND operator_id = $2")
                            .bind(s)
                            .bind(p.id.to_string())
                            .fetch_optional(&db.pool)
                            .await?
                            .is_some()
                    }
                    None => false,
                }
        }
        Role::Staff => p.point_id.map(|x| x.to_string()) == Some(r.try_get::<String, _>("point_id")?),
        _ => false,
    })
}

pub async fn load_view(state: &AppState, id: Uuid, with_history: bool) -> ApiResult<Option<OrderView>> {
    let Some(row) = load_row(&state.db, id).await? else { return Ok(None) };
    let cal = calendar::load(&state.db).await?;
    let mut v = view_of(&row, &cal, now_ms())?;
    if with_history {
        v.history = history(&state.db, id).await?;
        v.materials = checklist(&state.db, &v).await?;
    }
    Ok(Some(v))
}

/// The item's checklist entries (申请材料), in order: `(slot id, name, required)`.
async fn item_checklist(db: &Db, item: Uuid) -> ApiResult<Vec<(Uuid, String, bool)>> {
    let rows =
        sqlx::query("SELECT id, name, required FROM item_materials WHERE item_id = $1 ORDER BY position, id")
            .bind(item.to_string())
            .fetch_all(&db.pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok((
                parse_id(&r.try_get::<String, _>("id")?)?,
                r.try_get("name")?,
                crate::db::get_flag(r, "required")?,
            ))
        })
        .collect()
}

/// The order's item checklist: what is outstanding, and how many of the call's stored materials
/// (any session of its ticket, not rejected, not purged) cover each entry.
async fn checklist(db: &Db, o: &OrderView) -> ApiResult<Vec<OrderMaterial>> {
    let mut stored = std::collections::HashMap::<String, i64>::new();
    if let Some(session) = o.session_id {
        let rows = sqlx::query(
            "SELECT m.slot_id, COUNT(*) AS n FROM materials m \
             WHERE m.ticket_id = (SELECT s.ticket_id FROM call_sessions s WHERE s.id = $1) \
             AND m.slot_id IS NOT NULL AND m.status <> 'rejected' AND m.purged_at IS NULL GROUP BY m.slot_id",
        )
        .bind(session.to_string())
        .fetch_all(&db.pool)
        .await?;
        for r in &rows {
            stored.insert(r.try_get("slot_id")?, r.try_get("n")?);
        }
    }
    Ok(item_checklist(db, o.item_id)
        .await?
        .into_iter()
        .map(|(slot_id, name, required)| OrderMaterial {
            outstanding: o.outstanding_materials.contains(&name),
            stored: u32::try_from(stored.get(&slot_id.to_string()).copied().unwrap_or(0)).unwrap_or(0),
            slot_id,
            name,
            required,
        })
        .collect())
}

fn check_deadline(d: DeadlineClass, now: i64) -> ApiResult<()> {
    match d {
        DeadlineClass::Set { due_at } if due_at <= now || due_at > now + 366 * calendar::DAY_MS => {
            Err(ApiError::validation("设定时限须在今后一年内 (deadline must be within a year from now)"))
        }
        _ => Ok(()),
    }
}

fn check_opt(field: &str, v: &Option<String>, max: usize) -> ApiResult<Option<String>> {
    Ok(v.as_deref().map(|s| check_text(field, s, max, true)).transpose()?.filter(|s| !s.is_empty()))
}

/// Next order number of the China day of `now`: `GD20261207-0001`.
async fn next_number(db: &Db, now: i64) -> ApiResult<String> {
    let prefix = format!("GD{}-", cst_date(now).replace('-', ""));
    let row = sqlx::query("SELECT COUNT(*) AS n FROM work_orders WHERE number LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_one(&db.pool)
        .await?;
    let n: i64 = row.try_get("n")?;
    Ok(format!("{prefix}{:04}", n + 1))
}

/// Open a work order: from a wrap-up (operator of the call, supervisor), at a point (staff),
/// or from 12345 / 意见箱 / 好差评 (supervisor, admin). A second request for the same call
/// returns the order already opened (200).
#[utoipa::path(post, path = "/api/v1/orders", tag = "cases", request_body = CreateOrderRequest,
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "already opened for this call"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateOrderRequest>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let now = now_ms();
    let summary = check_text("summary", &req.summary, 1000, false)?;
    let case_number = check_opt("case_number", &req.case_number, 64)?;
    let source_ref = check_opt("source_ref", &req.source_ref, 64)?;
    check_deadline(req.deadline, now)?;
    if req.outstanding_materials.len() > 30 {
        return Err(ApiError::validation("待补材料最多 30 项 (too many materials)"));
    }
    let materials = req
        .outstanding_materials
        .iter()
        .map(|m| check_text("outstanding_materials", m, 64, false))
        .collect::<ApiResult<Vec<_>>>()?;
    // Where the order belongs, by source.
    let (session, point, item, resident): (Option<Uuid>, Uuid, Uuid, Option<String>) = match req.source {
        OrderSource::WrapUp => {
            p.require(&[Role::Operator, Role::Supervisor])?;
            let sid = req.session_id.ok_or_else(|| ApiError::validation("通话转工单须提供 session_id"))?;
            let row = sqlx::query(
                "SELECT s.operator_id, s.ended_at, t.point_id, t.item_id, t.resident_name_masked \
                 FROM call_sessions s JOIN tickets t ON t.id = s.ticket_id WHERE s.id = $1",
            )
            .bind(sid.to_string())
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("通话"))?;
            if p.role == Role::Operator && row.try_get::<String, _>("operator_id")? != p.id.to_string() {
                return Err(ApiError::forbidden());
            }
            if row.try_get::<Option<i64>, _>("ended_at")?.is_none() {
                return Err(ApiError::conflict("通话尚未结束 (the call has not ended)"));
            }
            if let Some(existing) = sqlx::query("SELECT id FROM work_orders WHERE session_id = $1")
                .bind(sid.to_string())
                .fetch_optional(&state.db.pool)
                .await?
            {
                let id = parse_id(&existing.try_get::<String, _>("id")?)?;
                let view = load_view(&state, id, true).await?.ok_or_else(ApiError::internal)?;
                return Ok((StatusCode::OK, Json(view)));
            }
            (
                Some(sid),
                parse_id(&row.try_get::<String, _>("point_id")?)?,
                parse_id(&row.try_get::<String, _>("item_id")?)?,
                row.try_get("resident_name_masked")?,
            )
        }
        OrderSource::Point => {
            p.require(&[Role::Staff])?;
            let point = p.point_id.ok_or_else(ApiError::forbidden)?;
            (None, point, req.item_id.ok_or_else(|| ApiError::validation("须提供 item_id"))?, None)
        }
        OrderSource::Hotline12345 | OrderSource::SuggestionBox | OrderSource::GoodBadReview => {
            p.require(&[Role::Supervisor, Role::Admin])?;
            (
                None,
                req.point_id.ok_or_else(|| ApiError::validation("须提供 point_id"))?,
                req.item_id.ok_or_else(|| ApiError::validation("须提供 item_id"))?,
                None,
            )
        }
    };
    if req.source != OrderSource::WrapUp && req.session_id.is_some() {
        return Err(ApiError::validation("只有通话转工单可带 session_id"));
    }
    let item_row = sqlx::query("SELECT line_id FROM service_items WHERE id = $1")
        .bind(item.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("事项"))?;
    let line: String = item_row.try_get("line_id")?;
    let names: Vec<String> = item_checklist(&state.db, item).await?.into_iter().map(|(_, n, _)| n).collect();
    if !names.is_empty()
        && let Some(bad) = materials.iter().find(|m| !names.contains(m))
    {
        return Err(ApiError::validation(format!(
            "待补材料「{bad}」不在该事项的材料清单中 (not on the item's checklist: {})",
            names.join("、")
        )));
    }
    if sqlx::query("SELECT 1 AS x FROM service_points WHERE id = $1")
        .bind(point.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("服务点"));
    }
    let cal = calendar::load(&state.db).await?;
    let order = Order::new(req.deadline, now);
    let id = new_id();
    // Numbers are per China day; a concurrent insert taking the same number is retried.
    let mut attempt = 0;
    loop {
        let number = next_number(&state.db, now).await?;
        let mut tx = state.db.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO work_orders (id, number, source, source_ref, session_id, point_id, item_id, line_id, \
             resident_masked, summary, case_number, category, department, assignee_id, state, suspended_reason, \
             deadline, clock_start, pauses, due_at, escalated, outstanding_materials, created_by, created_at, \
             updated_at, closed_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, $12, NULL, $13, $14, '[]', $15, 0, \
             $16, $17, $14, $14, NULL, 1)",
        )
        .bind(id.to_string())
        .bind(&number)
        .bind(req.source.as_str())
        .bind(source_ref.as_deref())
        .bind(session.map(|s| s.to_string()))
        .bind(point.to_string())
        .bind(item.to_string())
        .bind(&line)
        .bind(resident.as_deref())
        .bind(&summary)
        .bind(case_number.as_deref())
        .bind(order.state.as_str())
        .bind(serde_json::to_string(&order.deadline).map_err(|_| ApiError::internal())?)
        .bind(now)
        .bind(order.due_at(&cal, now))
        .bind(serde_json::to_string(&materials).map_err(|_| ApiError::internal())?)
        .bind(p.id.to_string())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                insert_event(&mut tx, id, 1, now, Some(p.id), "create", None, order.state, Some(&summary))
                    .await?;
                tx.commit().await?;
                break;
            }
            Err(e) if attempt < 5 && is_unique_violation(&e) => {
                attempt += 1;
                drop(tx);
                // Maybe the same call raced us: answer with that order.
                if let Some(sid) = session
                    && let Some(r) = sqlx::query("SELECT id FROM work_orders WHERE session_id = $1")
                        .bind(sid.to_string())
                        .fetch_optional(&state.db.pool)
                        .await?
                {
                    let id = parse_id(&r.try_get::<String, _>("id")?)?;
                    let v = load_view(&state, id, true).await?.ok_or_else(ApiError::internal)?;
                    return Ok((StatusCode::OK, Json(v)));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(sid) = session {
        copy_ticket_contact(&state, id, sid).await?;
    }
    let view = load_view(&state, id, true).await?.ok_or_else(ApiError::internal)?;
    let text = format!(
        "您的事项「{}」已受理，工单号 {}，预计 {} 前办结。",
        view.item_name, view.number, view.due_at_cst
    );
    super::outbox::notify_resident(&state.db, id, "order.accepted", &text).await?;
    state
        .audit(AuditRecord::new("order.create", "work_order").by(&p).target(id).detail(json!({
            "number": view.number, "source": req.source.as_str(), "session_id": session,
        })))
        .await;
    Ok((StatusCode::CREATED, Json(view)))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: Uuid,
    seq: i64,
    at: i64,
    actor: Option<Uuid>,
    action: &str,
    from: Option<OrderState>,
    to: OrderState,
    note: Option<&str>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO work_order_events (order_id, seq, at, actor_id, action, from_state, to_state, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(at)
    .bind(actor.map(|a| a.to_string()))
    .bind(action)
    .bind(from.map(OrderState::as_str))
    .bind(to.as_str())
    .bind(note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    /// `open` (default: not yet 办结), `overdue` (open and past the deadline or raised),
    /// `closed` (办结 or 反馈) or `all`.
    #[param(pattern = "^(open|overdue|closed|all)$")]
    pub status: Option<String>,
    /// 1–500 (default 200).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// Work orders the caller may see: supervisors and admins all, operators theirs, staff their
/// point's. Open ones by deadline, most urgent first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "cases", params(OrdersQuery),
    responses((status = 200, body = [OrderView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<OrdersQuery>,
) -> ApiResult<Json<Vec<OrderView>>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    let status = q.status.as_deref().unwrap_or("open");
    let (filter, order) = match status {
        "open" | "overdue" => (" AND o.state NOT IN ('completed', 'closed')", "o.due_at, o.id"),
        "closed" => (" AND o.state IN ('completed', 'closed')", "o.updated_at DESC, o.id"),
        "all" => ("", "o.created_at DESC, o.id"),
        _ => return Err(ApiError::bad_request("status 须为 open、overdue、closed 或 all (invalid status)")),
    };
    let limit = match q.limit.as_deref() {
        None => 200,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(ApiError::bad_request("limit 须为 1 到 500 的整数 (out of range)")),
        },
    };
    let (scope, bind) = match p.role {
        Role::Admin | Role::Supervisor => (String::new(), None),
        Role::Operator => (
            " AND (o.created_by = $1 OR o.assignee_id = $1 OR o.session_id IN \
             (SELECT s.id FROM call_sessions s WHERE s.operator_id = $1))"
                .to_owned(),
            Some(p.id.to_string()),
        ),
        _ => {
            (" AND o.point_id = $1".to_owned(), Some(p.point_id.ok_or_else(ApiError::forbidden)?.to_string()))
        }
    };
    let limit_param = if bind.is_some() { "$2" } else { "$1" };
    let sql = format!("{SELECT} WHERE 1 = 1{filter}{scope} ORDER BY {order} LIMIT {limit_param}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(b) = bind {
        query = query.bind(b);
    }
    let rows = query.bind(limit).fetch_all(&state.db.pool).await?;
    let cal = calendar::load(&state.db).await?;
    let now = now_ms();
    let mut out = rows.iter().map(|r| view_of(r, &cal, now)).collect::<ApiResult<Vec<_>>>()?;
    if status == "overdue" {
        out.retain(|o| o.overdue || o.escalation != EscalationLevel::None);
    }
    Ok(Json(out))
}

/// One work order with its full history.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "cases", params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<OrderView>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    let row = load_row(&state.db, id).await?.ok_or_else(|| ApiError::not_found("工单"))?;
    if !may_see(&state.db, &p, &row).await? {
        return Err(ApiError::not_found("工单"));
    }
    Ok(Json(load_view(&state, id, true).await?.ok_or_else(ApiError::internal)?))
}

fn action_note(a: &OrderAction) -> ApiResult<Option<String>> {
    let text = |field: &str, v: &str, max: usize| check_text(field, v, max, false).map(Some);
    match a {
        OrderAction::Classify { category } => text("category", category, 32),
        OrderAction::Transfer { department, .. } => text("department", department, 64),
        OrderAction::Return { reason } | OrderAction::Suspend { reason } | OrderAction::Reopen { reason } => {
            text("reason", reason, 500)
        }
        OrderAction::RequestMaterials { note } => text("note", note, 500),
        OrderAction::Complete { result } => text("result", result, 500),
        OrderAction::Feedback { feedback } => text("feedback", feedback, 500),
        OrderAction::Resume => Ok(None),
        OrderAction::SetDeadline { deadline } => {
            Ok(Some(serde_json::to_string(deadline).unwrap_or_default()))
        }
    }
}

/// Take a step on a work order (受理 → 分类 → 转办 → 办结 → 反馈, 退回, 挂起/恢复, 需补材料,
/// 调整时限, reopening). Operators on their orders (not reopening or deadlines), supervisors and
/// admins on any. Illegal steps get 409 with the reason.
#[utoipa::path(post, path = "/api/v1/orders/{id}/steps", tag = "cases", params(("id" = Uuid, Path)),
    request_body = OrderActionRequest,
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn step(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<OrderActionRequest>,
) -> ApiResult<Json<OrderView>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator])?;
    Ok(Json(apply(&state, &p, id, &req.step, req.expected_version, false).await?))
}

/// An order `p` may see, or `None`.
pub async fn load_visible(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Option<OrderView>> {
    match load_row(&state.db, id).await? {
        Some(row) if may_see(&state.db, p, &row).await? => load_view(state, id, false).await,
        _ => Ok(None),
    }
}

/// A step recorded by a call-back's outcome (feedback or reopening), whoever recorded it.
pub async fn apply_step(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    step: &OrderAction,
) -> ApiResult<OrderView> {
    apply(state, p, id, step, None, true).await
}

async fn apply(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    step: &OrderAction,
    expected_version: Option<i64>,
    by_callback: bool,
) -> ApiResult<OrderView> {
    let req = OrderActionRequest { expected_version, step: step.clone() };
    let row = load_row(&state.db, id).await?.ok_or_else(|| ApiError::not_found("工单"))?;
    if !may_see(&state.db, p, &row).await? {
        return Err(ApiError::not_found("工单"));
    }
    if p.role == Role::Operator
        && !by_callback
        && matches!(req.step, OrderAction::Reopen { .. } | OrderAction::SetDeadline { .. })
    {
        return Err(ApiError::forbidden());
    }
    let note = action_note(&req.step)?;
    let now = now_ms();
    if let OrderAction::SetDeadline { deadline } = req.step {
        check_deadline(deadline, now)?;
    }
    let version: i64 = row.try_get("version")?;
    if req.expected_version.is_some_and(|v| v != version) {
        return Err(ApiError::conflict("工单已被他人更新，请刷新后重试 (changed by someone else)"));
    }
    let cur = machine_of(&row)?;
    let (next, effects) = cur.apply(&req.step, now).map_err(|e| match e {
        OrderError::Illegal { .. } | OrderError::Suspended => ApiError::conflict(e.to_string()),
    })?;
    let assignee = match &req.step {
        OrderAction::Transfer { assignee_id: Some(a), .. } => {
            let ok = sqlx::query("SELECT 1 AS x FROM users WHERE id = $1 AND active = 1")
                .bind(a.to_string())
                .fetch_optional(&state.db.pool)
                .await?
                .is_some();
            if !ok {
                return Err(ApiError::validation("承办人不存在 (unknown assignee)"));
            }
            Some(a.to_string())
        }
        OrderAction::Transfer { assignee_id: None, .. } | OrderAction::Return { .. } => None,
        _ => row.try_get("assignee_id")?,
    };
    let cal = calendar::load(&state.db).await?;
    let closed_at = match next.state {
        OrderState::Completed | OrderState::Closed => {
            Some(row.try_get::<Option<i64>, _>("closed_at")?.unwrap_or(now))
        }
        _ => None,
    };
    let mut tx = state.db.pool.begin().await?;
    let done = sqlx::query(
        "UPDATE work_orders SET state = $1, suspended_reason = $2, deadline = $3, clock_start = $4, pauses = $5, \
         due_at = $6, escalated = $7, category = $8, department = $9, assignee_id = $10, closed_at = $11, \
         updated_at = $12, version = version + 1 WHERE id = $13 AND version = $14",
    )
    .bind(next.state.as_str())
    .bind(next.suspended_reason.as_deref())
    .bind(serde_json::to_string(&next.deadline).map_err(|_| ApiError::internal())?)
    .bind(next.clock_start)
    .bind(serde_json::to_string(&next.pauses).map_err(|_| ApiError::internal())?)
    .bind(next.due_at(&cal, now))
    .bind(next.escalated.as_i64())
    .bind(next.category.as_deref())
    .bind(next.department.as_deref())
    .bind(assignee)
    .bind(closed_at)
    .bind(now)
    .bind(id.to_string())
    .bind(version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(ApiError::conflict("工单已被他人更新，请刷新后重试 (changed by someone else)"));
    }
    let seq: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM work_order_events WHERE order_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    insert_event(
        &mut tx,
        id,
        seq,
        now,
        Some(p.id),
        req.step.kind(),
        Some(cur.state),
        next.state,
        note.as_deref(),
    )
    .await?;
    tx.commit().await?;
    let number: String = row.try_get("number")?;
    let item: String = row.try_get("item_name")?;
    for e in &effects {
        if let Effect::NotifyResident(what) = e {
            let text = match *what {
                "needs_materials" => format!(
                    "您的事项「{item}」（工单 {number}）需补充材料：{}",
                    note.as_deref().unwrap_or("")
                ),
                "completed" => format!("您的事项「{item}」（工单 {number}）已办结。"),
                _ => format!("您的事项「{item}」（工单 {number}）已重新办理。"),
            };
            super::outbox::notify_resident(&state.db, id, &format!("order.{what}"), &text).await?;
        }
        if *e == Effect::CallBack {
            super::callbacks::for_completed_order(&state.db, id, seq, now).await?;
        }
    }
    state
        .audit(AuditRecord::new("order.step", "work_order").by(p).target(id).detail(json!({
            "action": req.step.kind(), "from": cur.state.as_str(), "to": next.state.as_str(),
        })))
        .await;
    load_view(state, id, true).await?.ok_or_else(ApiError::internal)
}

// ---------------------------------------------------------------------------------------------
// The resident's phone number, with consent

/// A mainland mobile (`1` + 10 digits) or a landline: 7–16 digits, or an area code of 2–5
/// digits, one dash and 5–10 digits; a landline does not start with `1`. Exactly
/// [`shared::cases::PHONE_PATTERN`].
pub fn check_phone(p: &str) -> ApiResult<String> {
    let p = p.trim();
    let b = p.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let ok = match p.split_once('-') {
        None => {
            digits(b) && ((b.len() == 11 && b[0] == b'1') || ((7..=16).contains(&b.len()) && b[0] != b'1'))
        }
        Some((area, num)) => {
            (2..=5).contains(&area.len())
                && (5..=10).contains(&num.len())
                && digits(area.as_bytes())
                && digits(num.as_bytes())
                && !area.starts_with('1')
        }
    };
    if ok {
        Ok(p.to_owned())
    } else {
        Err(ApiError::validation("电话号码格式不正确 (invalid phone number)"))
    }
}

/// `138****5678`: the first three and last four digits.
pub fn mask_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() <= 7 {
        return format!("{}****", chars.iter().take(2).collect::<String>());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

fn phone_context(id: Uuid) -> String {
    format!("work_order:{id}:phone")
}

fn ticket_phone_context(id: Uuid) -> String {
    format!("ticket:{id}:phone")
}

/// Stores a consented phone number on an order: encrypted bound to the order, masked for
/// display, with the consent's wording, time and who recorded it. The one write of every path
/// (console, kiosk, an order opened after the kiosk recorded it).
async fn store_contact(
    state: &AppState,
    id: Uuid,
    phone: &str,
    consent_text: &str,
    at: i64,
    by: Uuid,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE work_orders SET phone_enc = $1, phone_masked = $2, consent_text = $3, consent_at = $4, \
         consent_by = $5, updated_at = $6, version = version + 1 WHERE id = $7",
    )
    .bind(state.pii.encrypt(phone, &phone_context(id)))
    .bind(mask_phone(phone))
    .bind(consent_text)
    .bind(at)
    .bind(by.to_string())
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

/// An order opened from a call whose ticket has a number recorded at the kiosk gets it.
async fn copy_ticket_contact(state: &AppState, order: Uuid, session: Uuid) -> ApiResult<()> {
    let Some(r) = sqlx::query(
        "SELECT c.ticket_id, c.phone_enc, c.consent_text, c.consent_at, c.consent_by FROM ticket_contacts c \
         JOIN call_sessions s ON s.ticket_id = c.ticket_id WHERE s.id = $1",
    )
    .bind(session.to_string())
    .fetch_optional(&state.db.pool)
    .await?
    else {
        return Ok(());
    };
    let ticket = parse_id(&r.try_get::<String, _>("ticket_id")?)?;
    let phone = state
        .pii
        .decrypt(&r.try_get::<String, _>("phone_enc")?, &ticket_phone_context(ticket))
        .map_err(|_| ApiError::internal())?;
    let by = parse_id(&r.try_get::<String, _>("consent_by")?)?;
    let text: String = r.try_get("consent_text")?;
    store_contact(state, order, &phone, &text, r.try_get("consent_at")?, by).await?;
    state
        .audit(AuditRecord::new("order.contact", "work_order").target(order).detail(json!({
            "consent": true, "from_ticket": ticket,
        })))
        .await;
    Ok(())
}

/// The committee staff member vouching at the kiosk, from their access token: role `staff`,
/// active, of the terminal's point, and the token of their current generation (a password
/// change or disabling ends it at once). Returns `(user id, display name)`.
pub(crate) async fn kiosk_staff(state: &AppState, token: &str, point: Uuid) -> ApiResult<(Uuid, String)> {
    let invalid = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "工作人员登录已失效，请重新登录 (staff sign-in invalid or expired)",
        )
    };
    let claims = state.tokens.verify(token, crate::auth::tokens::TokenKind::Access).map_err(|_| invalid())?;
    if claims.role != Role::Staff {
        return Err(invalid());
    }
    if claims.point != Some(point) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "该工作人员不属于本服务点 (staff of another point)",
        ));
    }
    let (name, role, active, generation) =
        crate::switchboard::store::user_account(&state.db, claims.sub).await?.ok_or_else(invalid)?;
    if !active || role != "staff" || generation != claims.generation {
        return Err(invalid());
    }
    Ok((claims.sub, name))
}

/// How long after a ticket was taken its resident's number may still be recorded at the kiosk.
const KIOSK_CONTACT_WINDOW_MS: i64 = 24 * 3_600_000;

/// The kiosk records the resident's phone number for its ticket, after the resident confirmed
/// the consent text on screen (device token; the signed-in staff member's access token in the
/// body, checked like `take_ticket`'s). Stored encrypted and shown masked; the work orders of
/// the ticket's calls get it now, one opened later gets it when opened. Audited, refusals too.
#[utoipa::path(put, path = "/api/v1/terminals/me/tickets/{id}/contact", tag = "cases",
    params(("id" = Uuid, Path, description = "The ticket taken at this terminal")),
    request_body = KioskContactRequest,
    responses((status = 200, body = KioskContactView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not a terminal, or the staff sign-in is invalid or of another point"),
        (status = 404, body = ErrorBody, description = "no such ticket at this terminal"),
        (status = 409, body = ErrorBody, description = "the ticket was taken more than 24 hours ago"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn kiosk_contact(
    State(state): State<AppState>,
    p: Principal,
    Path(ticket): Path<Uuid>,
    Json(req): Json<KioskContactRequest>,
) -> ApiResult<Json<KioskContactView>> {
    if !p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    let refused = |why: &'static str| {
        AuditRecord::new("ticket.contact", "ticket")
            .by(&p)
            .target(ticket)
            .outcome("denied")
            .detail(json!({ "why": why }))
    };
    let row = sqlx::query("SELECT terminal_id, point_id, number, created_at FROM tickets WHERE id = $1")
        .bind(ticket.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .filter(|r| r.try_get::<Option<String>, _>("terminal_id").ok().flatten() == Some(p.id.to_string()))
        .ok_or_else(|| ApiError::not_found("号票"))?;
    if !req.consent {
        return Err(ApiError::validation("须经居民同意方可记录电话 (the resident's consent is required)"));
    }
    let consent_text = check_text("consent_text", &req.consent_text, 500, false)?;
    let phone = check_phone(&req.phone)?;
    let point = parse_id(&row.try_get::<String, _>("point_id")?)?;
    let (staff, staff_name) = match kiosk_staff(&state, req.staff_token.as_str(), point).await {
        Ok(s) => s,
        Err(e) => {
            state.audit(refused("staff")).await;
            return Err(e);
        }
    };
    let now = now_ms();
    if now - row.try_get::<i64, _>("created_at")? > KIOSK_CONTACT_WINDOW_MS {
        return Err(ApiError::conflict("该号票已超过 24 小时，请在工单中登记电话 (ticket too old)"));
    }
    sqlx::query(
        "INSERT INTO ticket_contacts (ticket_id, phone_enc, phone_masked, consent_text, consent_at, consent_by, \
         terminal_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ticket_id) DO UPDATE SET \
         phone_enc = excluded.phone_enc, phone_masked = excluded.phone_masked, consent_text = excluded.consent_text, \
         consent_at = excluded.consent_at, consent_by = excluded.consent_by, terminal_id = excluded.terminal_id",
    )
    .bind(ticket.to_string())
    .bind(state.pii.encrypt(&phone, &ticket_phone_context(ticket)))
    .bind(mask_phone(&phone))
    .bind(&consent_text)
    .bind(now)
    .bind(staff.to_string())
    .bind(p.id.to_string())
    .execute(&state.db.pool)
    .await?;
    let orders = sqlx::query(
        "SELECT o.id FROM work_orders o JOIN call_sessions s ON s.id = o.session_id WHERE s.ticket_id = $1 \
         AND o.state NOT IN ('completed', 'closed') ORDER BY o.created_at",
    )
    .bind(ticket.to_string())
    .fetch_all(&state.db.pool)
    .await?
    .iter()
    .map(|r| Ok(parse_id(&r.try_get::<String, _>("id")?)?))
    .collect::<ApiResult<Vec<Uuid>>>()?;
    for o in &orders {
        store_contact(&state, *o, &phone, &consent_text, now, staff).await?;
    }
    let mut rec = AuditRecord::new("ticket.contact", "ticket").by(&p).target(ticket).detail(json!({
        "consent": true, "staff_id": staff, "terminal_id": p.id, "orders": orders,
    }));
    rec.actor_id = Some(staff);
    rec.actor_name = staff_name.clone();
    state.audit(rec).await;
    Ok(Json(KioskContactView {
        ticket_id: ticket,
        ticket_number: row.try_get("number")?,
        phone_masked: mask_phone(&phone),
        consent_at: now,
        consent_text,
        recorded_by: staff_name,
        orders,
    }))
}

/// Record the resident's phone number after they agreed (operators on their orders,
/// supervisors, staff at the order's point). Stored encrypted, shown masked.
#[utoipa::path(put, path = "/api/v1/orders/{id}/contact", tag = "cases", params(("id" = Uuid, Path)),
    request_body = OrderContactRequest,
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_contact(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<OrderContactRequest>,
) -> ApiResult<Json<OrderView>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    let row = load_row(&state.db, id).await?.ok_or_else(|| ApiError::not_found("工单"))?;
    if !may_see(&state.db, &p, &row).await? {
        return Err(ApiError::not_found("工单"));
    }
    if !req.consent {
        return Err(ApiError::validation("须经居民同意方可记录电话 (the resident's consent is required)"));
    }
    let consent_text = check_text("consent_text", &req.consent_text, 500, false)?;
    let phone = check_phone(&req.phone)?;
    store_contact(&state, id, &phone, &consent_text, now_ms(), p.id).await?;
    state
        .audit(
            AuditRecord::new("order.contact", "work_order")
                .by(&p)
                .target(id)
                .detail(json!({ "consent": true })),
        )
        .await;
    Ok(Json(load_view(&state, id, true).await?.ok_or_else(ApiError::internal)?))
}

/// Reveal the resident's full phone number to call them (supervisors, admins, and the
/// operator of the order); every reveal is audited, refusals too.
#[utoipa::path(post, path = "/api/v1/orders/{id}/contact/reveal", tag = "cases", params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderContactReveal), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn reveal_contact(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<OrderContactReveal>> {
    let audit = |outcome: &'static str| {
        AuditRecord::new("order.contact.reveal", "work_order").by(&p).target(id).outcome(outcome)
    };
    if p.require(&[Role::Admin, Role::Supervisor, Role::Operator]).is_err() {
        state.audit(audit("denied")).await;
        return Err(ApiError::forbidden());
    }
    let row = load_row(&state.db, id).await?.ok_or_else(|| ApiError::not_found("工单"))?;
    if !may_see(&state.db, &p, &row).await? {
        state.audit(audit("denied")).await;
        return Err(ApiError::not_found("工单"));
    }
    let stored = sqlx::query("SELECT phone_enc, consent_at, consent_text FROM work_orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&state.db.pool)
        .await?;
    let (Some(enc), Some(at), Some(text)) = (
        stored.try_get::<Option<String>, _>("phone_enc")?,
        stored.try_get::<Option<i64>, _>("consent_at")?,
        stored.try_get::<Option<String>, _>("consent_text")?,
    ) else {
        return Err(ApiError::not_found("联系电话"));
    };
    let phone = state.pii.decrypt(&enc, &phone_context(id)).map_err(|_| ApiError::internal())?;
    state.audit(audit("success")).await;
    Ok(Json(OrderContactReveal { phone, consent_at: at, consent_text: text }))
}

/// Erases phone numbers of orders closed more than `days` ago (the personal-data retention).
pub async fn purge_contacts(db: &Db, days: u32, now: i64) -> Result<u64, sqlx::Error> {
    let cutoff = now - i64::from(days) * calendar::DAY_MS;
    let tickets = sqlx::query("DELETE FROM ticket_contacts WHERE consent_at < $1")
        .bind(cutoff)
        .execute(&db.pool)
        .await?
        .rows_affected();
    // Appointments (预约): the name and phone given at booking, once the slot is that long past.
    let appointments = sqlx::query(
        "UPDATE appointments SET name_enc = '', phone_enc = '', name_masked = '—', phone_masked = '—' \
         WHERE name_enc <> '' AND slot_end < $1",
    )
    .bind(cutoff)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(tickets
        + appointments
        + sqlx::query(
            "UPDATE work_orders SET phone_enc = NULL, phone_masked = NULL WHERE phone_enc IS NOT NULL \
         AND closed_at IS NOT NULL AND closed_at < $1 AND state IN ('completed', 'closed')",
        )
        .bind(cutoff)
        .execute(&db.pool)
        .await?
        .rows_affected())
}

/// Raises every open order whose escalation is due at `now` (临期 / 超期提级), recording a
/// history step for each. Returns the orders raised, with their new level. Run by the cases
/// worker; idempotent (an order is raised once per level).
pub async fn escalate_due(state: &AppState, now: i64) -> ApiResult<Vec<(Uuid, EscalationLevel)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE o.state NOT IN ('completed', 'closed') AND o.suspended_reason IS NULL AND o.escalated < 2"
    )))
    .fetch_all(&state.db.pool)
    .await?;
    let cal = calendar::load(&state.db).await?;
    let mut raised = Vec::new();
    for r in &rows {
        let m = machine_of(r)?;
        let Some(level) = m.escalation(&cal, now) else { continue };
        let id = parse_id(&r.try_get::<String, _>("id")?)?;
        let version: i64 = r.try_get("version")?;
        let mut tx = state.db.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE work_orders SET escalated = $1, version = version + 1 WHERE id = $2 AND version = $3",
        )
        .bind(level.as_i64())
        .bind(id.to_string())
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            continue; // changed meanwhile; the next run looks again
        }
        let seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM work_order_events WHERE order_id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        let (action, note) = match level {
            EscalationLevel::Overdue => {
                ("escalate_overdue", format!("已超过办理时限 {}", cst_minute(m.due_at(&cal, now))))
            }
            _ => ("escalate_near_due", format!("今日到期 {}", cst_minute(m.due_at(&cal, now)))),
        };
        insert_event(&mut tx, id, seq, now, None, action, Some(m.state), m.state, Some(&note)).await?;
        tx.commit().await?;
        let topic = if level == EscalationLevel::Overdue { "order.overdue" } else { "order.near_due" };
        let number: String = r.try_get("number")?;
        super::outbox::notify_supervisors(&state.db, id, topic, &format!("工单 {number} {note}")).await?;
        state
            .audit(
                AuditRecord::new("order.escalate", "work_order").target(id).detail(json!({ "level": level })),
            )
            .await;
        raised.push((id, level));
    }
    Ok(raised)
}

/// The cases worker: escalations and overdue inspections every `cases_interval` (a minute by default), and the stored calendar applied to deadlines
/// the switchboard stamped with the seeded one.
pub async fn worker(state: AppState) {
    let mut every =
        tokio::time::interval(std::time::Duration::from_millis(state.config.cases_interval_ms.max(1000)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = escalate_due(&state, now_ms()).await {
            tracing::error!(error = %e.message, "work order escalation failed");
        }
        match purge_contacts(&state.db, state.config.pii_retention_days, now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                let rec =
                    AuditRecord::new("order.contact.purge", "work_order").detail(json!({ "orders": n }));
                state.audit(rec).await;
            }
            Err(e) => tracing::error!(error = %e, "work order contacts not purged"),
        }
        if let Err(e) = super::problems::sync(&state.db, now_ms()).await {
            tracing::error!(error = %e, "problem list not updated");
        }
        if let Err(e) = super::callbacks::sync(&state.db, now_ms()).await {
            tracing::error!(error = %e, "call-back tasks not created");
        }
        if let Err(e) = crate::api::appointments::sweep(&state, now_ms()).await {
            tracing::error!(error = %e.message, "appointments not swept");
        }
        if let Err(e) = crate::inspections::flag_overdue(&state, now_ms()).await {
            tracing::error!(error = %e.message, "overdue inspections not flagged");
        }
        if let Err(e) = calendar::reconcile_deadlines(&state.db, &[]).await {
            tracing::error!(error = %e, "rectification deadlines not reconciled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_phone, mask_phone};

    #[test]
    fn phone_numbers_are_what_the_schema_pattern_says() {
        for ok in ["13912345678", "02164381234", "021-64381234", "0571-88886666", "88886666", " 13912345678 "]
        {
            assert!(check_phone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1391234567",
            "139123456789",
            "1391234567x",
            "021--64381234",
            "0571-8888-6666",
            "-02164381234",
            "02164381234-",
            "12-345678",
            "1234567",
            "+8613912345678",
            "０２１６４３８１２３４",
            "021 64381234",
            "01234567890123456",
        ] {
            assert!(check_phone(bad).is_err(), "{bad:?}");
        }
        assert_eq!(mask_phone("13912345678"), "139****5678");
    }
}
