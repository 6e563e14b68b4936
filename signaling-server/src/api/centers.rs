//! `/api/v1/centers`: acceptance centers (受理中心, issue 16 item 6). A center owns streets
//! (街镇) and through them the service points on those streets; operators and supervisors
//! belong to a center (`PUT /api/v1/users/{id}/center`). Dispatch serves a point's tickets by
//! its own center's operators first and district-wide after the overflow wait
//! (`dispatch.rs`); an item may be offered only on some streets
//! (`PUT /api/v1/items/{id}/streets`). Every change is audited in its own transaction.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use shared::api::{
    CenterView, CreateCenterRequest, ErrorBody, ItemView, MAX_STREETS, SetCenterRequest,
    SetItemStreetsRequest, UpdateCenterRequest, UserView,
};
use shared::protocol::Role;
use sqlx::Row;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, check_text};
use crate::state::AppState;

/// Most characters of a center's or a street's name.
pub const MAX_NAME_CHARS: usize = 32;

/// Checks and normalises a list of streets: at most [`MAX_STREETS`], each a trimmed text of at
/// most [`MAX_NAME_CHARS`]; duplicates collapse, the result is sorted.
pub fn check_streets(streets: &[String]) -> ApiResult<Vec<String>> {
    if streets.len() > MAX_STREETS {
        return Err(ApiError::validation(format!("街道不能超过 {MAX_STREETS} 个 (too many streets)")));
    }
    let set: BTreeSet<String> =
        streets.iter().map(|s| check_text("streets", s, MAX_NAME_CHARS, false)).collect::<ApiResult<_>>()?;
    Ok(set.into_iter().collect())
}

async fn streets_of(db: &Db, center: &str) -> ApiResult<Vec<String>> {
    let rows = sqlx::query("SELECT street FROM center_streets WHERE center_id = $1 ORDER BY street")
        .bind(center)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("street")?)).collect()
}

pub async fn load_center(db: &Db, id: Uuid) -> ApiResult<Option<CenterView>> {
    let row = sqlx::query("SELECT id, name, created_at, updated_at FROM centers WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let id: String = r.try_get("id")?;
    Ok(Some(CenterView {
        id: parse_id(&id)?,
        name: r.try_get("name")?,
        streets: streets_of(db, &id).await?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    }))
}

/// Every center, by name.
pub async fn all(db: &Db) -> ApiResult<Vec<CenterView>> {
    let rows = sqlx::query("SELECT id FROM centers ORDER BY name").fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Some(c) = load_center(db, parse_id(&r.try_get::<String, _>("id")?)?).await? {
            out.push(c);
        }
    }
    Ok(out)
}

/// The streets of one center (for the listings' `center` filter); `None` if no such center.
pub async fn streets_of_center(db: &Db, id: Uuid) -> ApiResult<Option<BTreeSet<String>>> {
    Ok(load_center(db, id).await?.map(|c| c.streets.into_iter().collect()))
}

/// Replaces a center's streets inside `tx`; a street of another center is a conflict.
async fn replace_streets(tx: &mut sqlx::AnyConnection, center: &str, streets: &[String]) -> ApiResult<()> {
    for s in streets {
        let owner = sqlx::query("SELECT center_id FROM center_streets WHERE street = $1")
            .bind(s)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("center_id"))
            .transpose()?;
        if owner.is_some_and(|o| o != center) {
            return Err(ApiError::conflict(format!(
                "街道“{s}”已属于其他受理中心 (the street belongs to another center)"
            )));
        }
    }
    sqlx::query("DELETE FROM center_streets WHERE center_id = $1").bind(center).execute(&mut *tx).await?;
    for s in streets {
        sqlx::query("INSERT INTO center_streets (street, center_id) VALUES ($1, $2)")
            .bind(s)
            .bind(center)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Acceptance centers with their streets (admins and supervisors).
#[utoipa::path(get, path = "/api/v1/centers", tag = "centers",
    responses((status = 200, body = [CenterView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, p: Principal) -> ApiResult<Json<Vec<CenterView>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    Ok(Json(all(&state.db).await?))
}

/// Add an acceptance center with its streets (admin). A street already owned by another
/// center, or a name in use, is a conflict.
#[utoipa::path(post, path = "/api/v1/centers", tag = "centers", request_body = CreateCenterRequest,
    responses((status = 201, body = CenterView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateCenterRequest>,
) -> ApiResult<(StatusCode, Json<CenterView>)> {
    p.require(&[Role::Admin])?;
    let name = check_text("name", &req.name, MAX_NAME_CHARS, false)?;
    let streets = check_streets(&req.streets)?;
    let (id, now) = (new_id(), now_ms());
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("INSERT INTO centers (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
        .bind(id.to_string())
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    replace_streets(&mut tx, &id.to_string(), &streets).await?;
    let rec = AuditRecord::new("center.create", "center")
        .by(&p)
        .target(id)
        .detail(json!({ "name": name, "streets": streets }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    state.switchboard.centers_changed().await;
    let view = load_center(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Rename a center or replace its streets (admin).
#[utoipa::path(patch, path = "/api/v1/centers/{id}", tag = "centers", request_body = UpdateCenterRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CenterView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateCenterRequest>,
) -> ApiResult<Json<CenterView>> {
    p.require(&[Role::Admin])?;
    let cur = load_center(&state.db, id).await?.ok_or_else(|| ApiError::not_found("受理中心"))?;
    let name = match &req.name {
        Some(n) => check_text("name", n, MAX_NAME_CHARS, false)?,
        None => cur.name,
    };
    let streets = req.streets.as_deref().map(check_streets).transpose()?;
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("UPDATE centers SET name = $1, updated_at = $2 WHERE id = $3")
        .bind(&name)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    if let Some(streets) = &streets {
        replace_streets(&mut tx, &id.to_string(), streets).await?;
    }
    let rec = AuditRecord::new("center.update", "center")
        .by(&p)
        .target(id)
        .detail(json!({ "name": name, "streets": streets }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    if streets.is_some() {
        state.switchboard.centers_changed().await;
    }
    load_center(&state.db, id).await?.map(Json).ok_or_else(ApiError::internal)
}

/// Set the acceptance center of an operator or supervisor (admin); `null` removes it. An
/// operator's new center takes effect in dispatch at once, connected or not.
#[utoipa::path(put, path = "/api/v1/users/{id}/center", tag = "accounts", request_body = SetCenterRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_user_center(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<SetCenterRequest>,
) -> ApiResult<Json<UserView>> {
    p.require(&[Role::Admin])?;
    let user =
        super::accounts::load_user_view(&state.db, id).await?.ok_or_else(|| ApiError::not_found("账户"))?;
    if req.center_id.is_some() && !matches!(user.role, Role::Operator | Role::Supervisor) {
        return Err(ApiError::validation(
            "只有受理员和主管属于受理中心 (only operators and supervisors belong to a center)",
        ));
    }
    if let Some(c) = req.center_id
        && load_center(&state.db, c).await?.is_none()
    {
        return Err(ApiError::validation("受理中心不存在 (no such center)"));
    }
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("UPDATE users SET center_id = $1, updated_at = $2 WHERE id = $3")
        .bind(req.center_id.map(|c| c.to_string()))
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    let rec = AuditRecord::new("user.center", "user")
        .by(&p)
        .target(id)
        .detail(json!({ "center_id": req.center_id }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    // A connected operator serves as a member of the new center at once.
    state.switchboard.centers_changed().await;
    super::accounts::load_user_view(&state.db, id).await?.map(Json).ok_or_else(ApiError::internal)
}

/// Set the streets whose points offer an item (admin); an empty list offers it everywhere.
/// A kiosk lists only the items offered on its point's street, and refuses a ticket for any
/// other.
#[utoipa::path(put, path = "/api/v1/items/{id}/streets", tag = "catalog", request_body = SetItemStreetsRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ItemView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_item_streets(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<SetItemStreetsRequest>,
) -> ApiResult<Json<ItemView>> {
    p.require(&[Role::Admin])?;
    super::catalog::load_item(&state.db, id).await?.ok_or_else(|| ApiError::not_found("事项"))?;
    let streets = check_streets(&req.streets)?;
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM item_streets WHERE item_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
    for s in &streets {
        sqlx::query("INSERT INTO item_streets (item_id, street) VALUES ($1, $2)")
            .bind(id.to_string())
            .bind(s)
            .execute(&mut *tx)
            .await?;
    }
    let rec =
        AuditRecord::new("item.streets", "item").by(&p).target(id).detail(json!({ "streets": streets }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    super::catalog::load_item(&state.db, id).await?.map(Json).ok_or_else(ApiError::internal)
}
