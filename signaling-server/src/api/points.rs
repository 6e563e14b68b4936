//! `/api/v1/points`: service points (服务点): add, change, close with a reason, reopen; every
//! version kept in `service_point_history`; open points published as GeoJSON for the public
//! government-services map (no personal data in it); structured opening hours (weekday
//! ranges, holiday rule, closures) evaluated with the working-day calendar.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use shared::api::{
    ClosePointRequest, CreatePointRequest, ErrorBody, PointHistoryEntry, PointKind, PointStatus, PointView,
    UpdatePointRequest,
};
use shared::cases::{OpeningHours, OpeningHoursView};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::api::listing::{Counted, Listing, enum_param};
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar;
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

const COLUMNS: &str = "id, code, name, street, committee, kind, address, longitude, latitude, opening_hours, \
    inspector_name, inspector_phone, status, closed_reason, closed_at, created_at, updated_at, version";

fn from_row(r: &AnyRow) -> ApiResult<PointView> {
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    Ok(PointView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        street: r.try_get("street")?,
        committee: r.try_get("committee")?,
        kind: PointKind::parse(&kind).ok_or_else(ApiError::internal)?,
        address: r.try_get("address")?,
        longitude: r.try_get("longitude")?,
        latitude: r.try_get("latitude")?,
        opening_hours: r.try_get("opening_hours")?,
        inspector_name: r.try_get("inspector_name")?,
        inspector_phone: r.try_get("inspector_phone")?,
        status: if status == "open" { PointStatus::Open } else { PointStatus::Closed },
        closed_reason: r.try_get("closed_reason")?,
        closed_at: r.try_get("closed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        version: r.try_get("version")?,
    })
}

pub async fn load(db: &Db, id: Uuid) -> ApiResult<Option<PointView>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM service_points WHERE id = $1")))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

fn check_coords(lng: f64, lat: f64) -> ApiResult<()> {
    // Mainland China's bounding box, generously.
    if lng.is_finite() && lat.is_finite() && (73.0..=136.0).contains(&lng) && (3.0..=54.0).contains(&lat) {
        Ok(())
    } else {
        Err(ApiError::validation("坐标超出范围 (coordinates out of range)"))
    }
}

fn check_phone(p: &str) -> ApiResult<String> {
    let p = p.trim();
    let ok = (5..=20).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(p.to_owned())
    } else {
        Err(ApiError::validation("电话号码格式不正确 (invalid phone number)"))
    }
}

fn check_code(c: &str) -> ApiResult<String> {
    let ok = (2..=16).contains(&c.len())
        && c.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(c.to_owned())
    } else {
        Err(ApiError::validation("编码须为 2–16 位大写字母、数字或 - (invalid code)"))
    }
}

async fn record_history(db: &Db, point: &PointView, actor: Option<Uuid>, action: &str) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO service_point_history (id, point_id, version, changed_at, actor_id, action, snapshot) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id().to_string())
    .bind(point.id.to_string())
    .bind(point.version)
    .bind(point.updated_at)
    .bind(actor.map(|a| a.to_string()))
    .bind(action)
    .bind(serde_json::to_string(point).map_err(|_| ApiError::internal())?)
    .execute(&db.pool)
    .await?;
    Ok(())
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PointsQuery {
    /// Only rows of this acceptance center's streets (its id); an unknown center matches nothing.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub center: Option<String>,
    /// Search: part of the code, name, street, committee or address (case-insensitive), 1–64
    /// characters.
    #[param(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub q: Option<String>,
    /// Only points of this street (街镇), exactly.
    #[param(min_length = 1, max_length = 32, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub street: Option<String>,
    /// `open` or `closed` (the point's status).
    #[param(pattern = "^(open|closed)$")]
    pub state: Option<String>,
    /// `yes`: only points with an open terminal alarm; `no`: only points without.
    #[param(pattern = "^(yes|no)$")]
    pub alarm: Option<String>,
    /// `code` (default), `name`, `street`, `kind`, `state` or `updated`; prefix `-` for
    /// descending.
    #[param(pattern = "^-?(code|name|street|kind|state|updated)$")]
    pub sort: Option<String>,
    /// Page size, 1–500 (default: all).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Rows to skip, 0–100000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000)]
    pub offset: Option<String>,
}

/// The points with an open terminal alarm.
pub async fn points_with_alarms(db: &Db) -> ApiResult<std::collections::HashSet<Uuid>> {
    let rows = sqlx::query(
        "SELECT DISTINCT t.point_id FROM terminal_alarms a JOIN terminals t ON t.id = a.terminal_id \
         WHERE a.cleared_at IS NULL",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok(parse_id(&r.try_get::<String, _>("point_id")?)?)).collect()
}

/// List points, open and closed (admin, supervisor, operator): searched, filtered by street,
/// status and open alarms, sorted and paged; `X-Total-Count` is the number matching.
#[utoipa::path(get, path = "/api/v1/points", tag = "points", params(PointsQuery),
    responses((status = 200, body = [PointView],
            headers(("x-total-count" = i64, description = "Points matching the filters, before paging"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<PointsQuery>,
) -> ApiResult<Counted<PointView>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator])?;
    let l = Listing::parse(
        q.q.as_deref(),
        q.street.as_deref(),
        q.sort.as_deref(),
        q.limit.as_deref(),
        q.offset.as_deref(),
        &["code", "name", "street", "kind", "state", "updated"],
        "code",
    )?
    .in_center(&state.db, q.center.as_deref())
    .await?;
    let status = enum_param("state", q.state.as_deref(), &["open", "closed"])?;
    let alarm = enum_param("alarm", q.alarm.as_deref(), &["yes", "no"])?;
    let alarmed = if alarm.is_some() { points_with_alarms(&state.db).await? } else { Default::default() };
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM service_points ORDER BY code")))
            .fetch_all(&state.db.pool)
            .await?;
    let points: Vec<PointView> = rows
        .iter()
        .map(from_row)
        .collect::<ApiResult<Vec<_>>>()?
        .into_iter()
        .filter(|pt| {
            l.matches(&[&pt.code, &pt.name, &pt.street, &pt.committee, &pt.address])
                && l.street_is(&pt.street)
                && status.is_none_or(|s| (s == "open") == (pt.status == PointStatus::Open))
                && alarm.is_none_or(|a| (a == "yes") == alarmed.contains(&pt.id))
        })
        .collect();
    let (page, total) = l.finish(points, |a, b| {
        let by = match l.sort.as_str() {
            "name" => a.name.cmp(&b.name),
            "street" => a.street.cmp(&b.street),
            "kind" => a.kind.as_str().cmp(b.kind.as_str()),
            "state" => (a.status == PointStatus::Closed).cmp(&(b.status == PointStatus::Closed)),
            "updated" => a.updated_at.cmp(&b.updated_at),
            _ => std::cmp::Ordering::Equal,
        };
        by.then_with(|| a.code.cmp(&b.code))
    });
    Ok(Counted(page, total))
}

/// One point (closed points stay readable). Staff and terminals may read their own point.
#[utoipa::path(get, path = "/api/v1/points/{id}", tag = "points", params(("id" = Uuid, Path)),
    responses((status = 200, body = PointView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PointView>> {
    if !(matches!(p.role, Role::Admin | Role::Supervisor | Role::Operator) || p.point_id == Some(id)) {
        return Err(ApiError::forbidden());
    }
    load(&state.db, id).await?.map(Json).ok_or_else(|| ApiError::not_found("服务点"))
}

/// Add a point (admin).
#[utoipa::path(post, path = "/api/v1/points", tag = "points", request_body = CreatePointRequest,
    responses((status = 201, body = PointView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<CreatePointRequest>,
) -> ApiResult<(StatusCode, Json<PointView>)> {
    p.require(&[Role::Admin])?;
    check_coords(req.longitude, req.latitude)?;
    let id = new_id();
    let now = now_ms();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO service_points ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         'open', NULL, NULL, $13, $13, 1)"
    )))
    .bind(id.to_string())
    .bind(check_code(&req.code)?)
    .bind(check_text("name", &req.name, 64, false)?)
    .bind(check_text("street", &req.street, 32, false)?)
    .bind(check_text("committee", &req.committee, 32, false)?)
    .bind(req.kind.as_str())
    .bind(check_text("address", &req.address, 128, false)?)
    .bind(req.longitude)
    .bind(req.latitude)
    .bind(check_text("opening_hours", &req.opening_hours, 128, false)?)
    .bind(check_text("inspector_name", &req.inspector_name, 32, false)?)
    .bind(check_phone(&req.inspector_phone)?)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    let point = load(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    record_history(&state.db, &point, Some(p.id), "created").await?;
    state
        .audit(
            AuditRecord::new("point.create", "point")
                .by(&p)
                .target(id)
                .detail(json!({ "code": point.code, "name": point.name })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(point)))
}

/// Change a point's details (admin). With `expected_version`, a concurrent change is refused
/// with 409 instead of being overwritten.
#[utoipa::path(patch, path = "/api/v1/points/{id}", tag = "points", request_body = UpdatePointRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PointView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdatePointRequest>,
) -> ApiResult<Json<PointView>> {
    p.require(&[Role::Admin])?;
    let cur = load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    if req.expected_version.is_some_and(|v| v != cur.version) {
        return Err(ApiError::conflict("服务点已被他人修改，请刷新后重试 (changed by someone else)"));
    }
    let text = |field: &str, v: &Option<String>, cur: &str, max: usize| match v {
        Some(v) => check_text(field, v, max, false),
        None => Ok(cur.to_owned()),
    };
    let name = text("name", &req.name, &cur.name, 64)?;
    let street = text("street", &req.street, &cur.street, 32)?;
    let committee = text("committee", &req.committee, &cur.committee, 32)?;
    let address = text("address", &req.address, &cur.address, 128)?;
    let hours = text("opening_hours", &req.opening_hours, &cur.opening_hours, 128)?;
    let inspector = text("inspector_name", &req.inspector_name, &cur.inspector_name, 32)?;
    let phone = match &req.inspector_phone {
        Some(ph) => check_phone(ph)?,
        None => cur.inspector_phone.clone(),
    };
    let lng = req.longitude.unwrap_or(cur.longitude);
    let lat = req.latitude.unwrap_or(cur.latitude);
    check_coords(lng, lat)?;
    let kind = req.kind.unwrap_or(cur.kind);
    let done = sqlx::query(
        "UPDATE service_points SET name = $1, street = $2, committee = $3, kind = $4, address = $5, \
         longitude = $6, latitude = $7, opening_hours = $8, inspector_name = $9, inspector_phone = $10, \
         updated_at = $11, version = version + 1 WHERE id = $12 AND version = $13",
    )
    .bind(&name)
    .bind(&street)
    .bind(&committee)
    .bind(kind.as_str())
    .bind(&address)
    .bind(lng)
    .bind(lat)
    .bind(&hours)
    .bind(&inspector)
    .bind(&phone)
    .bind(now_ms())
    .bind(id.to_string())
    .bind(cur.version)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(ApiError::conflict("服务点已被他人修改，请刷新后重试 (changed by someone else)"));
    }
    let point = load(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    if street != cur.street {
        // The point may belong to another acceptance center now: dispatch follows at once.
        state.switchboard.centers_changed().await;
    }
    record_history(&state.db, &point, Some(p.id), "updated").await?;
    let mut changes = serde_json::to_value(&req).unwrap_or_default();
    if let Some(obj) = changes.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    state.audit(AuditRecord::new("point.update", "point").by(&p).target(id).detail(changes)).await;
    Ok(Json(point))
}

async fn set_status(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    open: bool,
    reason: Option<String>,
) -> ApiResult<PointView> {
    let cur = load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    if (cur.status == PointStatus::Open) == open {
        return Err(ApiError::conflict(if open {
            "服务点已开放 (already open)"
        } else {
            "服务点已关闭 (already closed)"
        }));
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE service_points SET status = $1, closed_reason = $2, closed_at = $3, updated_at = $4, \
         version = version + 1 WHERE id = $5",
    )
    .bind(if open { "open" } else { "closed" })
    .bind(reason.as_deref())
    .bind((!open).then_some(now))
    .bind(now)
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?;
    let point = load(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    let action = if open { "reopened" } else { "closed" };
    record_history(&state.db, &point, Some(p.id), action).await?;
    let audit_action = if open { "point.reopen" } else { "point.close" };
    state
        .audit(AuditRecord::new(audit_action, "point").by(p).target(id).detail(json!({ "reason": reason })))
        .await;
    Ok(point)
}

/// Close a point with a reason (admin). It disappears from the public map but stays readable.
#[utoipa::path(post, path = "/api/v1/points/{id}/close", tag = "points", request_body = ClosePointRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PointView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<ClosePointRequest>,
) -> ApiResult<Json<PointView>> {
    p.require(&[Role::Admin])?;
    let reason = check_text("reason", &req.reason, 200, false)?;
    Ok(Json(set_status(&state, &p, id, false, Some(reason)).await?))
}

/// Reopen a closed point (admin).
#[utoipa::path(post, path = "/api/v1/points/{id}/reopen", tag = "points", params(("id" = Uuid, Path)),
    responses((status = 200, body = PointView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reopen(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PointView>> {
    p.require(&[Role::Admin])?;
    Ok(Json(set_status(&state, &p, id, true, None).await?))
}

/// Every version of a point, oldest first (admin, supervisor).
#[utoipa::path(get, path = "/api/v1/points/{id}/history", tag = "points", params(("id" = Uuid, Path)),
    responses((status = 200, body = [PointHistoryEntry]), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<PointHistoryEntry>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    let rows = sqlx::query(
        "SELECT version, changed_at, actor_id, action, snapshot FROM service_point_history \
         WHERE point_id = $1 ORDER BY version",
    )
    .bind(id.to_string())
    .fetch_all(&state.db.pool)
    .await?;
    let entries = rows
        .iter()
        .map(|r| {
            let snapshot: String = r.try_get("snapshot")?;
            Ok(PointHistoryEntry {
                version: r.try_get("version")?,
                changed_at: r.try_get("changed_at")?,
                actor_id: r.try_get::<Option<String>, _>("actor_id")?.map(|a| parse_id(&a)).transpose()?,
                action: r.try_get("action")?,
                point: serde_json::from_str(&snapshot).map_err(|_| ApiError::internal())?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(entries))
}

/// Every point's structured opening hours that parse.
async fn all_schedules(db: &Db) -> ApiResult<std::collections::HashMap<Uuid, OpeningHours>> {
    let rows = sqlx::query("SELECT point_id, schedule FROM point_opening_hours").fetch_all(&db.pool).await?;
    let mut out = std::collections::HashMap::new();
    for r in &rows {
        let id = parse_id(&r.try_get::<String, _>("point_id")?)?;
        if let Ok(h) = serde_json::from_str(&r.try_get::<String, _>("schedule")?) {
            out.insert(id, h);
        }
    }
    Ok(out)
}

/// Open points as a GeoJSON FeatureCollection for the public government-services map
/// (政务地图). No authentication; no personal data (the inspector is left out). `open_now`
/// says whether the point is open at the time of the request by its structured hours and the
/// working-day calendar (`null`: no structured hours).
#[utoipa::path(get, path = "/api/v1/points.geojson", tag = "points",
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json")))]
pub async fn geojson(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM service_points WHERE status = 'open' ORDER BY code"
    )))
    .fetch_all(&state.db.pool)
    .await?;
    let schedules = all_schedules(&state.db).await?;
    let cal = if schedules.is_empty() { None } else { Some(calendar::load(&state.db).await?) };
    let now = now_ms();
    let features: Vec<_> = rows
        .iter()
        .map(from_row)
        .collect::<ApiResult<Vec<_>>>()?
        .into_iter()
        .map(|pt| {
            json!({
                "type": "Feature",
                "id": pt.id,
                "geometry": { "type": "Point", "coordinates": [pt.longitude, pt.latitude] },
                "properties": {
                    "code": pt.code, "name": pt.name, "street": pt.street, "committee": pt.committee,
                    "kind": pt.kind.as_str(), "kind_zh": pt.kind.label_zh(), "address": pt.address,
                    "opening_hours": pt.opening_hours, "mode": "就近办",
                    "open_now": schedules.get(&pt.id).zip(cal.as_ref()).map(|(h, cal)| calendar::is_open(h, cal, now)),
                },
            })
        })
        .collect();
    let body = json!({ "type": "FeatureCollection", "features": features });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/geo+json"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=60"),
        ],
        body.to_string(),
    ))
}

/// The district outline the deployment supplies as a local file (`--map-outline`), drawn under
/// the console's map of the points (admin, supervisor); 404 when none is configured. No tiles
/// and nothing from the internet: the console draws only this and the points.
#[utoipa::path(get, path = "/api/v1/map/outline", tag = "points",
    responses((status = 200, description = "GeoJSON outline (Polygon, MultiPolygon, Feature or FeatureCollection)",
            content_type = "application/geo+json"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn map_outline(State(state): State<AppState>, p: Principal) -> ApiResult<impl IntoResponse> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let path = state.config.map_outline.clone().ok_or_else(|| ApiError::not_found("地图轮廓"))?;
    let outline = tokio::task::spawn_blocking(move || crate::config::read_outline(&path))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "map outline unreadable");
            ApiError::internal()
        })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/geo+json")], outline.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Structured opening hours (per point; the free text above stays what is shown)

/// A point's structured opening hours, `None` until an admin sets them (then it is always
/// open: the free text is only shown). A stored schedule that no longer parses counts as none
/// (logged).
pub async fn schedule(db: &Db, id: Uuid) -> Result<Option<OpeningHours>, sqlx::Error> {
    let row = sqlx::query("SELECT schedule FROM point_opening_hours WHERE point_id = $1")
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    let Some(text) = row.map(|r| r.try_get::<String, _>("schedule")).transpose()? else { return Ok(None) };
    Ok(serde_json::from_str(&text)
        .inspect_err(|e| tracing::error!(error = %e, "stored opening hours do not parse"))
        .ok())
}

async fn opening_view(state: &AppState, id: Uuid) -> ApiResult<OpeningHoursView> {
    let point = load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    let schedule = schedule(&state.db, id).await?;
    let cal = calendar::load(&state.db).await?;
    let now = now_ms();
    Ok(OpeningHoursView {
        point_id: id,
        text: point.opening_hours,
        open_now: schedule
            .as_ref()
            .map(|h| point.status == PointStatus::Open && calendar::is_open(h, &cal, now)),
        week: schedule.as_ref().map(|h| calendar::week_from(h, &cal, now)).unwrap_or_default(),
        schedule,
    })
}

/// A point's opening hours: the free text, the structured schedule, whether it is open now and
/// the next seven days by the working-day calendar. Staff and terminals may read their own
/// point's.
#[utoipa::path(get, path = "/api/v1/points/{id}/opening-hours", tag = "points", params(("id" = Uuid, Path)),
    responses((status = 200, body = OpeningHoursView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_opening_hours(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<OpeningHoursView>> {
    if !(matches!(p.role, Role::Admin | Role::Supervisor | Role::Operator) || p.point_id == Some(id)) {
        return Err(ApiError::forbidden());
    }
    Ok(Json(opening_view(&state, id).await?))
}

/// Set a point's structured opening hours (admin): weekday ranges, the holiday rule and
/// special closures.
#[utoipa::path(put, path = "/api/v1/points/{id}/opening-hours", tag = "points", params(("id" = Uuid, Path)),
    request_body = OpeningHours,
    responses((status = 200, body = OpeningHoursView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_opening_hours(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<OpeningHours>,
) -> ApiResult<Json<OpeningHoursView>> {
    p.require(&[Role::Admin])?;
    load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    calendar::check_opening_hours(&req).map_err(ApiError::validation)?;
    let schedule = serde_json::to_string(&req).map_err(|_| ApiError::internal())?;
    let now = now_ms();
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM point_opening_hours WHERE point_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO point_opening_hours (point_id, schedule, updated_at, updated_by) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.to_string())
    .bind(&schedule)
    .bind(now)
    .bind(p.id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state
        .audit(AuditRecord::new("point.opening_hours", "point").by(&p).target(id).detail(json!({
            "ranges": req.weekly.len(), "closures": req.closures.len(), "holiday_rule": req.holiday_rule,
        })))
        .await;
    Ok(Json(opening_view(&state, id).await?))
}
