//! The two lists (两张清单): the problem list (问题清单) and the rectification list (整改清单).
//! Problems come from bad ratings and overdue orders ([`sync`], idempotent), and from
//! inspections and supervisors' spot checks (REST). Each has an owner and a deadline: one week
//! by default, a complex one up to three months with a reason. A problem moves to the
//! rectification list once measures are recorded, and closes with its evidence.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use shared::api::ErrorBody;
use shared::cases::{CreateProblemRequest, ProblemSource, ProblemStepRequest, ProblemView};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar::DAY_MS;
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

/// Default time to rectify: a week.
pub const DEFAULT_DAYS: i64 = 7;
/// Longest time for a complex problem: three months.
pub const COMPLEX_MAX_DAYS: i64 = 92;

pub(crate) fn source_str(s: ProblemSource) -> &'static str {
    match s {
        ProblemSource::BadRating => "bad_rating",
        ProblemSource::OverdueOrder => "overdue_order",
        ProblemSource::Inspection => "inspection",
        ProblemSource::SpotCheck => "spot_check",
    }
}

fn source_parse(s: &str) -> ProblemSource {
    match s {
        "bad_rating" => ProblemSource::BadRating,
        "overdue_order" => ProblemSource::OverdueOrder,
        "inspection" => ProblemSource::Inspection,
        _ => ProblemSource::SpotCheck,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    source: ProblemSource,
    source_ref: Option<&str>,
    description: &str,
    owner: &str,
    due_at: i64,
    complex_reason: Option<&str>,
    actor: Option<&str>,
    now: i64,
) -> Result<Uuid, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO problems (id, source, source_ref, description, owner, due_at, complex_reason, status, measures, \
         evidence, created_by, created_at, updated_at, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', NULL, NULL, \
         $8, $9, $9, NULL)",
    )
    .bind(id.to_string())
    .bind(source_str(source))
    .bind(source_ref)
    .bind(description)
    .bind(owner)
    .bind(due_at)
    .bind(complex_reason)
    .bind(actor)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(id)
}

/// Adds the problems still missing for bad ratings and overdue orders. Idempotent.
pub async fn sync(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut made = 0;
    let bad = sqlx::query(
        "SELECT x.id, x.level, u.display_name FROM rectifications x JOIN call_sessions s ON s.id = x.session_id \
         JOIN users u ON u.id = s.operator_id \
         WHERE NOT EXISTS (SELECT 1 FROM problems p WHERE p.source_ref = 'rectification:' || x.id)",
    )
    .fetch_all(&db.pool)
    .await?;
    for r in &bad {
        let id: String = r.try_get("id")?;
        let text = format!("差评（{}）待整改", r.try_get::<String, _>("level")?);
        let owner: String = r.try_get("display_name")?;
        let src = format!("rectification:{id}");
        insert(
            &db.pool,
            ProblemSource::BadRating,
            Some(&src),
            &text,
            &owner,
            now + DEFAULT_DAYS * DAY_MS,
            None,
            None,
            now,
        )
        .await?;
        made += 1;
    }
    let overdue = sqlx::query(
        "SELECT o.id, o.number, COALESCE(o.department, '受理中心') AS owner FROM work_orders o WHERE o.escalated >= 2 \
         AND NOT EXISTS (SELECT 1 FROM problems p WHERE p.source_ref = 'order:' || o.id)",
    )
    .fetch_all(&db.pool)
    .await?;
    for r in &overdue {
        let id: String = r.try_get("id")?;
        let text = format!("工单 {} 超期未办结", r.try_get::<String, _>("number")?);
        let owner: String = r.try_get("owner")?;
        let src = format!("order:{id}");
        insert(
            &db.pool,
            ProblemSource::OverdueOrder,
            Some(&src),
            &text,
            &owner,
            now + DEFAULT_DAYS * DAY_MS,
            None,
            None,
            now,
        )
        .await?;
        made += 1;
    }
    Ok(made)
}

fn view_of(r: &AnyRow, now: i64) -> ApiResult<ProblemView> {
    let due_at: i64 = r.try_get("due_at")?;
    let closed_at: Option<i64> = r.try_get("closed_at")?;
    let status: String = r.try_get("status")?;
    Ok(ProblemView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        source: source_parse(&r.try_get::<String, _>("source")?),
        description: r.try_get("description")?,
        owner: r.try_get("owner")?,
        due_at,
        complex_reason: r.try_get("complex_reason")?,
        status_zh: match status.as_str() {
            "open" => "待整改",
            "rectifying" => "整改中",
            _ => "已销号",
        }
        .to_owned(),
        status,
        measures: r.try_get("measures")?,
        evidence: r.try_get("evidence")?,
        overdue: closed_at.unwrap_or(now) > due_at,
        created_at: r.try_get("created_at")?,
        closed_at,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProblemsQuery {
    /// `problems` (问题清单: every open problem, default), `rectifications` (整改清单: measures
    /// recorded, not yet closed), `closed` or `all`.
    #[param(pattern = "^(problems|rectifications|closed|all)$")]
    pub list: Option<String>,
}

/// The two lists for supervisors and admins, by deadline, at most 500.
#[utoipa::path(get, path = "/api/v1/problems", tag = "cases", params(ProblemsQuery),
    responses((status = 200, body = [ProblemView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ProblemsQuery>,
) -> ApiResult<Json<Vec<ProblemView>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let filter = match q.list.as_deref().unwrap_or("problems") {
        "problems" => "WHERE status IN ('open', 'rectifying')",
        "rectifications" => "WHERE status = 'rectifying'",
        "closed" => "WHERE status = 'closed'",
        "all" => "",
        _ => {
            return Err(ApiError::bad_request(
                "list 须为 problems、rectifications、closed 或 all (invalid list)",
            ));
        }
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM problems {filter} ORDER BY due_at, id LIMIT 500"
    )))
    .fetch_all(&state.db.pool)
    .await?;
    let now = now_ms();
    Ok(Json(rows.iter().map(|r| view_of(r, now)).collect::<ApiResult<_>>()?))
}

/// Record a problem from an inspection or a spot check (supervisor, admin).
#[utoipa::path(post, path = "/api/v1/problems", tag = "cases", request_body = CreateProblemRequest,
    responses((status = 201, body = ProblemView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateProblemRequest>,
) -> ApiResult<(StatusCode, Json<ProblemView>)> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    if !matches!(req.source, ProblemSource::Inspection | ProblemSource::SpotCheck) {
        return Err(ApiError::validation("只能登记巡查或抽查发现的问题 (inspection or spot_check)"));
    }
    let description = check_text("description", &req.description, 1000, false)?;
    let owner = check_text("owner", &req.owner, 64, false)?;
    let now = now_ms();
    let days = req.days.unwrap_or(DEFAULT_DAYS);
    let reason =
        req.complex_reason.as_deref().map(|r| check_text("complex_reason", r, 500, false)).transpose()?;
    if !(1..=COMPLEX_MAX_DAYS).contains(&days) || (days > DEFAULT_DAYS && reason.is_none()) {
        return Err(ApiError::validation(
            "整改期限一般 1–7 天；复杂问题最长 3 个月且须说明原因 (invalid deadline)",
        ));
    }
    let id = insert(
        &state.db.pool,
        req.source,
        None,
        &description,
        &owner,
        now + days * DAY_MS,
        reason.as_deref(),
        Some(&p.id.to_string()),
        now,
    )
    .await?;
    state.audit(AuditRecord::new("problem.create", "problem").by(&p).target(id)).await;
    let row = sqlx::query("SELECT * FROM problems WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&state.db.pool)
        .await?;
    Ok((StatusCode::CREATED, Json(view_of(&row, now)?)))
}

/// Record the measures (moves the problem to the rectification list) or close it with the
/// evidence (销号) (supervisor, admin).
#[utoipa::path(post, path = "/api/v1/problems/{id}/steps", tag = "cases", params(("id" = Uuid, Path)),
    request_body = ProblemStepRequest,
    responses((status = 200, body = ProblemView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn step(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<ProblemStepRequest>,
) -> ApiResult<Json<ProblemView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let now = now_ms();
    let done = match &req {
        ProblemStepRequest::Rectify { measures } => sqlx::query(
            "UPDATE problems SET status = 'rectifying', measures = $1, updated_at = $2 WHERE id = $3 AND status = 'open'",
        )
        .bind(check_text("measures", measures, 1000, false)?)
        .bind(now)
        .bind(id.to_string()),
        ProblemStepRequest::Close { evidence } => sqlx::query(
            "UPDATE problems SET status = 'closed', evidence = $1, updated_at = $2, closed_at = $2 \
             WHERE id = $3 AND status = 'rectifying'",
        )
        .bind(check_text("evidence", evidence, 1000, false)?)
        .bind(now)
        .bind(id.to_string()),
    }
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    let row = sqlx::query("SELECT * FROM problems WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("问题"))?;
    if done != 1 {
        return Err(ApiError::conflict("当前状态不能执行该操作：先整改，后销号 (illegal step)"));
    }
    state
        .audit(AuditRecord::new("problem.step", "problem").by(&p).target(id).detail(json!({
            "to": row.try_get::<String, _>("status")?,
        })))
        .await;
    Ok(Json(view_of(&row, now)?))
}
