//! `/api/v1/users`: accounts, roles and operators' skills (the business lines they serve).

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use shared::api::{
    CreateUserRequest, ErrorBody, ResetPasswordRequest, SetSkillsRequest, UpdateUserRequest, UserView,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::api::listing::{Counted, Listing, enum_param};
use crate::audit::AuditRecord;
use crate::auth::{Principal, password};
use crate::db::{Db, flag, get_flag, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

pub fn role_str(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Supervisor => "supervisor",
        Role::Operator => "operator",
        Role::Staff => "staff",
        Role::Terminal => "terminal",
    }
}

pub fn parse_role(s: &str) -> ApiResult<Role> {
    Ok(match s {
        "admin" => Role::Admin,
        "supervisor" => Role::Supervisor,
        "operator" => Role::Operator,
        "staff" => Role::Staff,
        "terminal" => Role::Terminal,
        other => {
            tracing::error!(role = other, "unknown role in database");
            return Err(ApiError::internal());
        }
    })
}

const USER_COLUMNS: &str =
    "id, username, display_name, role, point_id, active, created_at, updated_at, center_id";

async fn skills_of(db: &Db, id: &str) -> ApiResult<Vec<Uuid>> {
    let rows = sqlx::query("SELECT line_id FROM operator_skills WHERE user_id = $1 ORDER BY line_id")
        .bind(id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(parse_id(&r.try_get::<String, _>("line_id")?)?)).collect()
}

async fn user_from_row(db: &Db, r: &AnyRow) -> ApiResult<UserView> {
    let id: String = r.try_get("id")?;
    Ok(UserView {
        id: parse_id(&id)?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: parse_role(&r.try_get::<String, _>("role")?)?,
        point_id: r.try_get::<Option<String>, _>("point_id")?.map(|p| parse_id(&p)).transpose()?,
        active: get_flag(r, "active")?,
        skills: skills_of(db, &id).await?,
        center_id: r.try_get::<Option<String>, _>("center_id")?.map(|c| parse_id(&c)).transpose()?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn load_user_view(db: &Db, id: Uuid) -> ApiResult<Option<UserView>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) => Ok(Some(user_from_row(db, &r).await?)),
        None => Ok(None),
    }
}

/// Usernames: 3–32 characters of lowercase ASCII letters, digits, `.`, `_`, `-`.
fn check_username(u: &str) -> ApiResult<String> {
    let ok = (3..=32).contains(&u.len())
        && u.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(u.to_owned())
    } else {
        Err(ApiError::validation("用户名须为 3–32 位小写字母、数字或 ._- (invalid username)"))
    }
}

async fn check_point_binding(db: &Db, role: Role, point: Option<Uuid>) -> ApiResult<()> {
    match (role, point) {
        (Role::Staff, None) => {
            Err(ApiError::validation("居委会工作人员须绑定服务点 (staff must belong to a point)"))
        }
        (Role::Staff, Some(p)) => {
            let exists = sqlx::query("SELECT 1 FROM service_points WHERE id = $1")
                .bind(p.to_string())
                .fetch_optional(&db.pool)
                .await?
                .is_some();
            if exists { Ok(()) } else { Err(ApiError::validation("服务点不存在 (no such point)")) }
        }
        (Role::Terminal, _) => Err(ApiError::validation("终端不能作为账户创建 (terminals enroll instead)")),
        (_, Some(_)) => {
            Err(ApiError::validation("只有居委会工作人员绑定服务点 (only staff belong to a point)"))
        }
        (_, None) => Ok(()),
    }
}

async fn replace_skills(db: &Db, user: Uuid, lines: &[Uuid]) -> ApiResult<()> {
    if lines.len() > 64 {
        return Err(ApiError::validation("技能条线过多 (too many lines)"));
    }
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM operator_skills WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    for l in lines.iter().filter(|l| seen.insert(**l)) {
        sqlx::query("INSERT INTO operator_skills (user_id, line_id) VALUES ($1, $2)")
            .bind(user.to_string())
            .bind(l.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// Only this acceptance center's operators and supervisors and the staff of points on its
    /// streets (its id); an unknown center matches nothing.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub center: Option<String>,
    /// Search: part of the username or display name (case-insensitive), 1–64 characters.
    #[param(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub q: Option<String>,
    /// Only committee staff of points in this street (街镇), exactly.
    #[param(min_length = 1, max_length = 32, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub street: Option<String>,
    /// `admin`, `supervisor`, `operator` or `staff`.
    #[param(pattern = "^(admin|supervisor|operator|staff)$")]
    pub role: Option<String>,
    /// `active` or `disabled`.
    #[param(pattern = "^(active|disabled)$")]
    pub state: Option<String>,
    /// `username` (default), `display_name`, `role`, `state` or `created`; prefix `-` for
    /// descending.
    #[param(pattern = "^-?(username|display_name|role|state|created)$")]
    pub sort: Option<String>,
    /// Page size, 1–500 (default: all).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Rows to skip, 0–100000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000)]
    pub offset: Option<String>,
}

/// List accounts (admin, supervisor): searched, filtered by role, state and (for staff) their
/// point's street, sorted and paged; `X-Total-Count` is the number matching.
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", params(UsersQuery),
    responses((status = 200, body = [UserView],
            headers(("x-total-count" = i64, description = "Accounts matching the filters, before paging"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Counted<UserView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let l = Listing::parse(
        q.q.as_deref(),
        q.street.as_deref(),
        q.sort.as_deref(),
        q.limit.as_deref(),
        q.offset.as_deref(),
        &["username", "display_name", "role", "state", "created"],
        "username",
    )?
    .in_center(&state.db, q.center.as_deref())
    .await?;
    let role = enum_param("role", q.role.as_deref(), &["admin", "supervisor", "operator", "staff"])?;
    let active = enum_param("state", q.state.as_deref(), &["active", "disabled"])?.map(|s| s == "active");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS}, (SELECT sp.street FROM service_points sp WHERE sp.id = users.point_id) AS street \
         FROM users ORDER BY username"
    )))
    .fetch_all(&state.db.pool)
    .await?;
    // Filter on the row first: skills are read only for the page.
    let mut kept = Vec::new();
    for r in &rows {
        let street: Option<String> = r.try_get("street")?;
        let (username, display_name): (String, String) = (r.try_get("username")?, r.try_get("display_name")?);
        let row_role: String = r.try_get("role")?;
        if l.matches(&[&username, &display_name])
            && l.street.as_deref().is_none_or(|s| street.as_deref() == Some(s))
            && l.center_has(
                street.as_deref(),
                r.try_get::<Option<String>, _>("center_id")?.and_then(|c| parse_id(&c).ok()),
            )
            && role.is_none_or(|x| x == row_role)
            && active.is_none_or(|a| get_flag(r, "active").is_ok_and(|f| f == a))
        {
            let created: i64 = r.try_get("created_at")?;
            let is_active = get_flag(r, "active")?;
            kept.push((r, username, display_name, row_role, is_active, created));
        }
    }
    let (page, total) = l.finish(kept, |a, b| {
        let by = match l.sort.as_str() {
            "display_name" => a.2.cmp(&b.2),
            "role" => a.3.cmp(&b.3),
            "state" => b.4.cmp(&a.4),
            "created" => a.5.cmp(&b.5),
            _ => std::cmp::Ordering::Equal,
        };
        by.then_with(|| a.1.cmp(&b.1))
    });
    let mut out = Vec::with_capacity(page.len());
    for (r, ..) in page {
        out.push(user_from_row(&state.db, r).await?);
    }
    Ok(Counted(out, total))
}

/// Create an account (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    p.require(&[Role::Admin])?;
    let username = check_username(&req.username)?;
    let display = check_text("display_name", &req.display_name, 32, false)?;
    check_point_binding(&state.db, req.role, req.point_id).await?;
    password::check_policy(&req.password)?;
    let pw = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|_| ApiError::internal())??;
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, username, display_name, role, point_id, password_hash, active, \
         created_at, updated_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)",
    )
    .bind(id.to_string())
    .bind(&username)
    .bind(&display)
    .bind(role_str(req.role))
    .bind(req.point_id.map(|p| p.to_string()))
    .bind(hash)
    .bind(1_i64)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    replace_skills(&state.db, id, &req.skills).await?;
    state
        .audit(AuditRecord::new("user.create", "user").by(&p).target(id).detail(json!({
            "username": username, "role": role_str(req.role), "point_id": req.point_id, "skills": req.skills,
        })))
        .await;
    let view = load_user_view(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Change an account: name, role, point, enabled (admin). Disabling signs the account out
/// everywhere at once.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "accounts", request_body = UpdateUserRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    p.require(&[Role::Admin])?;
    let cur = load_user_view(&state.db, id).await?.ok_or_else(|| ApiError::not_found("账户"))?;
    let display = match &req.display_name {
        Some(d) => check_text("display_name", d, 32, false)?,
        None => cur.display_name.clone(),
    };
    let role = req.role.unwrap_or(cur.role);
    let point = req.point_id.unwrap_or(cur.point_id);
    check_point_binding(&state.db, role, point).await?;
    let active = req.active.unwrap_or(cur.active);
    if id == p.id && (!active || role != Role::Admin) {
        return Err(ApiError::conflict("不能停用或降级自己的账户 (cannot disable or demote yourself)"));
    }
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "UPDATE users SET display_name = $1, role = $2, point_id = $3, active = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(&display)
    .bind(role_str(role))
    .bind(point.map(|p| p.to_string()))
    .bind(flag(active))
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    // Disabling, or a new role or point, ends the account's sessions: tokens issued before
    // carry what no longer holds.
    let end_sessions = !active || role != cur.role || point != cur.point_id;
    if end_sessions {
        super::auth::end_sessions_in(&mut tx, id).await?;
    }
    let rec = AuditRecord::new("user.update", "user").by(&p).target(id).detail(json!({
        "display_name": req.display_name, "role": req.role.map(role_str),
        "point_id": req.point_id, "active": req.active, "sessions_ended": end_sessions,
    }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    if end_sessions {
        state.switchboard.kick(id, shared::protocol::ByeReason::Revoked).await;
    }
    load_user_view(&state.db, id).await?.map(Json).ok_or_else(ApiError::internal)
}

/// Set a new password for another account (admin); the account is signed out everywhere. An
/// admin's own password changes only at `/api/v1/me/password`, with the current one (409 here):
/// a stolen admin token must not be enough to take the account over.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "accounts", request_body = ResetPasswordRequest,
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<ResetPasswordRequest>,
) -> ApiResult<StatusCode> {
    p.require(&[Role::Admin])?;
    load_user_view(&state.db, id).await?.ok_or_else(|| ApiError::not_found("账户"))?;
    if id == p.id {
        return Err(ApiError::conflict(
            "请在“修改密码”中使用当前密码修改自己的密码 (change your own password with the current one at /api/v1/me/password)",
        ));
    }
    password::check_policy(&req.new_password)?;
    let rec = AuditRecord::new("user.password_reset", "user").by(&p).target(id);
    super::auth::set_password(&state, id, &req.new_password, rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the business lines an operator serves (admin).
#[utoipa::path(put, path = "/api/v1/users/{id}/skills", tag = "accounts", request_body = SetSkillsRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_skills(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<SetSkillsRequest>,
) -> ApiResult<Json<UserView>> {
    p.require(&[Role::Admin])?;
    load_user_view(&state.db, id).await?.ok_or_else(|| ApiError::not_found("账户"))?;
    replace_skills(&state.db, id, &req.line_ids).await?;
    state
        .audit(
            AuditRecord::new("user.skills", "user")
                .by(&p)
                .target(id)
                .detail(json!({ "line_ids": req.line_ids })),
        )
        .await;
    load_user_view(&state.db, id).await?.map(Json).ok_or_else(ApiError::internal)
}
