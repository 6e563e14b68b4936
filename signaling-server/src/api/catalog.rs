//! `/api/v1/lines` and `/api/v1/items`: the service catalog: business lines (条线), service
//! items (事项) and each item's required materials with how they travel (材料流转).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use shared::api::{
    CreateItemRequest, CreateLineRequest, ErrorBody, ItemView, LineView, MaterialRequirement,
    MaterialTransfer, UpdateItemRequest, UpdateLineRequest,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{Db, flag, get_flag, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

fn check_code(c: &str) -> ApiResult<String> {
    let ok =
        (2..=32).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(c.to_owned())
    } else {
        Err(ApiError::validation("编码须为 2–32 位字母、数字、- 或 _ (invalid code)"))
    }
}

fn line_from_row(r: &AnyRow) -> ApiResult<LineView> {
    Ok(LineView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        sort_order: r.try_get("sort_order")?,
        active: get_flag(r, "active")?,
    })
}

pub(crate) async fn load_line(db: &Db, id: Uuid) -> ApiResult<Option<LineView>> {
    let r = sqlx::query("SELECT id, code, name, sort_order, active FROM business_lines WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    r.as_ref().map(line_from_row).transpose()
}

/// Anyone signed in, and terminals, may read the catalog.
fn can_read(p: &Principal) -> ApiResult<()> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff, Role::Terminal])
}

/// List business lines.
#[utoipa::path(get, path = "/api/v1/lines", tag = "catalog",
    responses((status = 200, body = [LineView]), (status = 401, body = ErrorBody)))]
pub async fn list_lines(State(state): State<AppState>, p: Principal) -> ApiResult<Json<Vec<LineView>>> {
    can_read(&p)?;
    let rows = sqlx::query(
        "SELECT id, code, name, sort_order, active FROM business_lines ORDER BY sort_order, code",
    )
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.iter().map(line_from_row).collect::<ApiResult<_>>()?))
}

/// Add a business line (admin).
#[utoipa::path(post, path = "/api/v1/lines", tag = "catalog", request_body = CreateLineRequest,
    responses((status = 201, body = LineView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_line(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateLineRequest>,
) -> ApiResult<(StatusCode, Json<LineView>)> {
    p.require(&[Role::Admin])?;
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO business_lines (id, code, name, sort_order, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.to_string())
    .bind(check_code(&req.code)?)
    .bind(check_text("name", &req.name, 32, false)?)
    .bind(req.sort_order.clamp(-1_000_000, 1_000_000))
    .bind(1_i64)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    state
        .audit(
            AuditRecord::new("line.create", "line")
                .by(&p)
                .target(id)
                .detail(json!({ "code": req.code, "name": req.name })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(load_line(&state.db, id).await?.ok_or_else(ApiError::internal)?)))
}

/// Change a business line (admin).
#[utoipa::path(patch, path = "/api/v1/lines/{id}", tag = "catalog", request_body = UpdateLineRequest,
    params(("id" = Uuid, Path)), responses((status = 200, body = LineView), (status = 404, body = ErrorBody)))]
pub async fn update_line(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateLineRequest>,
) -> ApiResult<Json<LineView>> {
    p.require(&[Role::Admin])?;
    let cur = load_line(&state.db, id).await?.ok_or_else(|| ApiError::not_found("条线"))?;
    let name = match &req.name {
        Some(n) => check_text("name", n, 32, false)?,
        None => cur.name,
    };
    sqlx::query(
        "UPDATE business_lines SET name = $1, sort_order = $2, active = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(&name)
    .bind(req.sort_order.unwrap_or(cur.sort_order).clamp(-1_000_000, 1_000_000))
    .bind(flag(req.active.unwrap_or(cur.active)))
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?;
    state
        .audit(
            AuditRecord::new("line.update", "line")
                .by(&p)
                .target(id)
                .detail(serde_json::to_value(&req).unwrap_or_default()),
        )
        .await;
    Ok(Json(load_line(&state.db, id).await?.ok_or_else(ApiError::internal)?))
}

async fn materials_of(db: &Db, item: &str) -> ApiResult<Vec<MaterialRequirement>> {
    let rows = sqlx::query(
        "SELECT id, name, transfer, required, note FROM item_materials WHERE item_id = $1 ORDER BY position",
    )
    .bind(item)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MaterialRequirement {
                id: Some(parse_id(&r.try_get::<String, _>("id")?)?),
                name: r.try_get("name")?,
                transfer: MaterialTransfer::parse(&r.try_get::<String, _>("transfer")?)
                    .ok_or_else(ApiError::internal)?,
                required: get_flag(r, "required")?,
                note: r.try_get("note")?,
            })
        })
        .collect()
}

const ITEM_SELECT: &str = "SELECT i.id, i.code, i.name, i.line_id, l.name AS line_name, i.remote_allowed, \
    i.description, i.active FROM service_items i JOIN business_lines l ON l.id = i.line_id";

async fn item_from_row(db: &Db, r: &AnyRow) -> ApiResult<ItemView> {
    let id: String = r.try_get("id")?;
    Ok(ItemView {
        id: parse_id(&id)?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        line_id: parse_id(&r.try_get::<String, _>("line_id")?)?,
        line_name: r.try_get("line_name")?,
        remote_allowed: get_flag(r, "remote_allowed")?,
        description: r.try_get("description")?,
        active: get_flag(r, "active")?,
        materials: materials_of(db, &id).await?,
        streets: streets_of_item(db, &id).await?,
    })
}

async fn streets_of_item(db: &Db, item: &str) -> ApiResult<Vec<String>> {
    let rows = sqlx::query("SELECT street FROM item_streets WHERE item_id = $1 ORDER BY street")
        .bind(item)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("street")?)).collect()
}

/// The street of the point a terminal or a committee staff member belongs to: their catalogue
/// lists only the items offered there.
async fn street_of_caller(db: &Db, p: &Principal) -> ApiResult<Option<String>> {
    let Some(point) = p.point_id.filter(|_| matches!(p.role, Role::Terminal | Role::Staff)) else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT street FROM service_points WHERE id = $1")
        .bind(point.to_string())
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get("street")).transpose()?)
}

pub async fn load_item(db: &Db, id: Uuid) -> ApiResult<Option<ItemView>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{ITEM_SELECT} WHERE i.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    match r {
        Some(r) => Ok(Some(item_from_row(db, &r).await?)),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemFilter {
    /// Only items of this line.
    pub line_id: Option<Uuid>,
    /// Only items that may be handled remotely.
    pub remote: Option<bool>,
    /// Substring of the name or code (≤ 32 characters).
    pub q: Option<String>,
}

/// List service items with their materials. A terminal or a committee staff member sees only
/// the items offered on its point's street.
#[utoipa::path(get, path = "/api/v1/items", tag = "catalog", params(ItemFilter),
    responses((status = 200, body = [ItemView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_items(
    State(state): State<AppState>,
    p: Principal,
    Query(f): Query<ItemFilter>,
) -> ApiResult<Json<Vec<ItemView>>> {
    can_read(&p)?;
    let q = f.q.as_deref().map(|q| check_text("q", q, 32, true)).transpose()?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ITEM_SELECT} WHERE ($1 IS NULL OR i.line_id = $1) AND ($2 IS NULL OR i.remote_allowed = $2) \
         ORDER BY l.sort_order, i.code"
    )))
    .bind(f.line_id.map(|l| l.to_string()))
    .bind(f.remote.map(flag))
    .fetch_all(&state.db.pool)
    .await?;
    let street = street_of_caller(&state.db, &p).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let item = item_from_row(&state.db, r).await?;
        let here = street.as_ref().is_none_or(|s| item.streets.is_empty() || item.streets.contains(s));
        if here && q.as_deref().is_none_or(|q| item.name.contains(q) || item.code.contains(q)) {
            out.push(item);
        }
    }
    Ok(Json(out))
}

/// One service item.
#[utoipa::path(get, path = "/api/v1/items/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = ItemView), (status = 404, body = ErrorBody)))]
pub async fn get_item(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ItemView>> {
    can_read(&p)?;
    load_item(&state.db, id).await?.map(Json).ok_or_else(|| ApiError::not_found("事项"))
}

fn check_materials(ms: &[MaterialRequirement]) -> ApiResult<Vec<MaterialRequirement>> {
    if ms.len() > 50 {
        return Err(ApiError::validation("材料清单过长 (too many materials)"));
    }
    ms.iter()
        .map(|m| {
            Ok(MaterialRequirement {
                id: None,
                name: check_text("materials.name", &m.name, 64, false)?,
                transfer: m.transfer,
                required: m.required,
                note: check_text("materials.note", &m.note, 200, true)?,
            })
        })
        .collect()
}

async fn write_materials(
    tx: &mut sqlx::AnyConnection,
    item: &str,
    ms: &[MaterialRequirement],
) -> ApiResult<()> {
    sqlx::query("DELETE FROM item_materials WHERE item_id = $1").bind(item).execute(&mut *tx).await?;
    for (i, m) in ms.iter().enumerate() {
        sqlx::query(
            "INSERT INTO item_materials (id, item_id, position, name, transfer, required, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id().to_string())
        .bind(item)
        .bind(i64::try_from(i).unwrap_or(0))
        .bind(&m.name)
        .bind(m.transfer.as_str())
        .bind(flag(m.required))
        .bind(&m.note)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Add a service item with its materials list (admin).
#[utoipa::path(post, path = "/api/v1/items", tag = "catalog", request_body = CreateItemRequest,
    responses((status = 201, body = ItemView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_item(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreateItemRequest>,
) -> ApiResult<(StatusCode, Json<ItemView>)> {
    p.require(&[Role::Admin])?;
    let code = check_code(&req.code)?;
    let name = check_text("name", &req.name, 64, false)?;
    let description = check_text("description", &req.description, 1000, true)?;
    let materials = check_materials(&req.materials)?;
    load_line(&state.db, req.line_id)
        .await?
        .ok_or_else(|| ApiError::validation("条线不存在 (no such line)"))?;
    let id = new_id();
    let now = now_ms();
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO service_items (id, code, name, line_id, remote_allowed, description, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id.to_string())
    .bind(&code)
    .bind(&name)
    .bind(req.line_id.to_string())
    .bind(flag(req.remote_allowed))
    .bind(&description)
    .bind(1_i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    write_materials(&mut tx, &id.to_string(), &materials).await?;
    tx.commit().await?;
    state
        .audit(
            AuditRecord::new("item.create", "item")
                .by(&p)
                .target(id)
                .detail(json!({ "code": code, "name": name })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(load_item(&state.db, id).await?.ok_or_else(ApiError::internal)?)))
}

/// Change a service item; `materials`, when given, replaces the whole list (admin).
#[utoipa::path(patch, path = "/api/v1/items/{id}", tag = "catalog", request_body = UpdateItemRequest,
    params(("id" = Uuid, Path)), responses((status = 200, body = ItemView), (status = 404, body = ErrorBody)))]
pub async fn update_item(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateItemRequest>,
) -> ApiResult<Json<ItemView>> {
    p.require(&[Role::Admin])?;
    let cur = load_item(&state.db, id).await?.ok_or_else(|| ApiError::not_found("事项"))?;
    let name = match &req.name {
        Some(n) => check_text("name", n, 64, false)?,
        None => cur.name.clone(),
    };
    let description = match &req.description {
        Some(d) => check_text("description", d, 1000, true)?,
        None => cur.description.clone(),
    };
    let line = req.line_id.unwrap_or(cur.line_id);
    if req.line_id.is_some() {
        load_line(&state.db, line).await?.ok_or_else(|| ApiError::validation("条线不存在 (no such line)"))?;
    }
    let materials = req.materials.as_deref().map(check_materials).transpose()?;
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "UPDATE service_items SET name = $1, line_id = $2, remote_allowed = $3, description = $4, active = $5, \
         updated_at = $6 WHERE id = $7",
    )
    .bind(&name)
    .bind(line.to_string())
    .bind(flag(req.remote_allowed.unwrap_or(cur.remote_allowed)))
    .bind(&description)
    .bind(flag(req.active.unwrap_or(cur.active)))
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    if let Some(ms) = &materials {
        write_materials(&mut tx, &id.to_string(), ms).await?;
    }
    tx.commit().await?;
    state
        .audit(
            AuditRecord::new("item.update", "item")
                .by(&p)
                .target(id)
                .detail(serde_json::to_value(&req).unwrap_or_default()),
        )
        .await;
    Ok(Json(load_item(&state.db, id).await?.ok_or_else(ApiError::internal)?))
}
