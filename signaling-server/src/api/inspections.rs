//! Inspections (巡检) over REST: schedules per point (admins and supervisors), the due and
//! overdue list, inspections recorded with a checklist of nine items by the point's staff (a
//! failed item opens a problem on the problem list, 整改) and their photos, stored encrypted in
//! the materials store. Staff see and record only their own point (403 for another); operators
//! and terminals nothing. Every write is audited in its transaction; every photo view audited.
//! When an inspection is due is decided in [`crate::inspections`].

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::api::{
    ErrorBody, InspectionCheck, InspectionDueView, InspectionItem, InspectionPhotoView,
    InspectionRecordRequest, InspectionRecordView, InspectionScheduleRequest, InspectionState,
    PointInspections,
};
use shared::cases::ProblemSource;
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::api::listing::{Counted, Listing};
use crate::api::points;
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::calendar::{self, DAY_MS};
use crate::db::{new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::inspections::{self as decide, frequency_str};
use crate::materials::sniff::{self, Kind};
use crate::materials::{check, crypto, object_path};
use crate::state::AppState;

/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Most photos of one inspection.
pub const MAX_PHOTOS_PER_RECORD: i64 = 6;
/// Photos are added to an inspection within this time of recording it.
pub const PHOTO_WINDOW_MS: i64 = DAY_MS;
/// Records shown per point.
const RECORDS_SHOWN: i64 = 50;

fn is_manager(p: &Principal) -> bool {
    !p.is_terminal() && matches!(p.role, Role::Admin | Role::Supervisor)
}

/// Admins and supervisors see every point; staff only their own.
fn may_access(p: &Principal, point: Uuid) -> bool {
    is_manager(p) || (!p.is_terminal() && p.role == Role::Staff && p.point_id == Some(point))
}

/// Refuses (403) and audits the attempt with outcome `denied`.
async fn deny(state: &AppState, p: &Principal, action: &'static str, target: Uuid) -> ApiError {
    state.audit(AuditRecord::new(action, "point").by(p).target(target).outcome("denied")).await;
    ApiError::forbidden()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InspectionsQuery {
    /// Only rows of this acceptance center's streets (its id); an unknown center matches nothing.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub center: Option<String>,
    /// `overdue`, `due`, `upcoming`, `done` or `all` (default): the points whose inspection
    /// stands so.
    #[param(pattern = "^(overdue|due|upcoming|done|all)$")]
    pub state: Option<String>,
    /// Search: part of the point's code or name or the inspector's name (case-insensitive),
    /// 1–64 characters.
    #[param(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub q: Option<String>,
    /// Only points in this street (街镇), exactly.
    #[param(min_length = 1, max_length = 32, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub street: Option<String>,
    /// `action` (default: overdue, then due, then by due day), `point`, `due` or `last`
    /// (last inspected); prefix `-` for descending.
    #[param(pattern = "^-?(action|point|due|last)$")]
    pub sort: Option<String>,
    /// Page size, 1–500 (default: all).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Rows to skip, 0–100000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000)]
    pub offset: Option<String>,
}

fn rank(s: InspectionState) -> u8 {
    match s {
        InspectionState::Overdue => 0,
        InspectionState::Due => 1,
        InspectionState::Upcoming => 2,
        InspectionState::Done => 3,
    }
}

/// Every open point's inspection schedule and where it stands, overdue first, then due, then
/// by due day (admin, supervisor).
#[utoipa::path(get, path = "/api/v1/inspections", tag = "points", params(InspectionsQuery),
    responses((status = 200, body = [InspectionDueView],
            headers(("x-total-count" = i64, description = "Points matching the filters, before paging"))),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<InspectionsQuery>,
) -> ApiResult<Counted<InspectionDueView>> {
    if !is_manager(&p) {
        return Err(ApiError::forbidden());
    }
    let l = Listing::parse(
        q.q.as_deref(),
        q.street.as_deref(),
        q.sort.as_deref(),
        q.limit.as_deref(),
        q.offset.as_deref(),
        &["action", "point", "due", "last"],
        "action",
    )?
    .in_center(&state.db, q.center.as_deref())
    .await?;
    let want = match q.state.as_deref().unwrap_or("all") {
        "all" => None,
        "overdue" => Some(InspectionState::Overdue),
        "due" => Some(InspectionState::Due),
        "upcoming" => Some(InspectionState::Upcoming),
        "done" => Some(InspectionState::Done),
        _ => {
            return Err(ApiError::bad_request(
                "state 须为 overdue、due、upcoming、done 或 all (invalid state)",
            ));
        }
    };
    let out: Vec<InspectionDueView> = decide::load_all(&state, None, now_ms())
        .await?
        .into_iter()
        .map(|s| s.view)
        .filter(|v| {
            want.is_none_or(|w| v.state == w)
                && l.matches(&[&v.point_code, &v.point_name, &v.inspector_name])
                && l.street_is(&v.street)
        })
        .collect();
    let (page, total) = l.finish(out, |a, b| {
        let by = match l.sort.as_str() {
            "point" => a.point_code.cmp(&b.point_code),
            "due" => a.due_on.cmp(&b.due_on),
            "last" => a.last_inspected_at.cmp(&b.last_inspected_at),
            _ => rank(a.state).cmp(&rank(b.state)).then_with(|| a.due_on.cmp(&b.due_on)),
        };
        by.then_with(|| a.point_code.cmp(&b.point_code))
    });
    Ok(Counted(page, total))
}

fn photo_of(r: &AnyRow) -> ApiResult<InspectionPhotoView> {
    Ok(InspectionPhotoView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        record_id: parse_id(&r.try_get::<String, _>("record_id")?)?,
        content_type: r.try_get("content_type")?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        created_at: r.try_get("created_at")?,
    })
}

async fn record_view(state: &AppState, r: &AnyRow) -> ApiResult<InspectionRecordView> {
    let id: String = r.try_get("id")?;
    let checklist: Vec<InspectionCheck> =
        serde_json::from_str(&r.try_get::<String, _>("checklist")?).map_err(|_| ApiError::internal())?;
    let photos = sqlx::query(
        "SELECT id, record_id, content_type, size, created_at FROM inspection_photos WHERE record_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(&id)
    .fetch_all(&state.db.pool)
    .await?
    .iter()
    .map(photo_of)
    .collect::<ApiResult<Vec<_>>>()?;
    let mut problem_ids = Vec::new();
    for item in InspectionItem::ALL {
        if let Some(p) = sqlx::query("SELECT id FROM problems WHERE source_ref = $1")
            .bind(problem_ref(&id, item))
            .fetch_optional(&state.db.pool)
            .await?
        {
            problem_ids.push(parse_id(&p.try_get::<String, _>("id")?)?);
        }
    }
    Ok(InspectionRecordView {
        id: parse_id(&id)?,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        inspected_at: r.try_get("inspected_at")?,
        inspector_id: parse_id(&r.try_get::<String, _>("inspector_id")?)?,
        inspector_name: r.try_get("inspector_name")?,
        checklist,
        failed: r.try_get("failed")?,
        note: r.try_get("note")?,
        problem_ids,
        photos,
    })
}

fn problem_ref(record: &str, item: InspectionItem) -> String {
    let item =
        serde_json::to_value(item).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    format!("inspection:{record}:{item}")
}

const RECORD_COLUMNS: &str = "id, point_id, inspected_at, inspector_id, inspector_name, checklist, failed, note FROM inspection_records";

/// A point's inspection schedule, where it stands and its latest 50 inspections with their
/// photos (admin, supervisor; staff only for their own point).
#[utoipa::path(get, path = "/api/v1/points/{id}/inspections", tag = "points",
    params(("id" = Uuid, Path, description = "The service point")),
    responses((status = 200, body = PointInspections), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "Not admin, supervisor or the point's own staff"),
        (status = 404, body = ErrorBody)))]
pub async fn point(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PointInspections>> {
    if !may_access(&p, id) {
        return Err(ApiError::forbidden());
    }
    let pt = points::load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    let schedule = decide::load_all(&state, Some(id), now_ms()).await?.into_iter().next().map(|s| s.view);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} WHERE point_id = $1 ORDER BY inspected_at DESC, id LIMIT {RECORDS_SHOWN}"
    )))
    .bind(id.to_string())
    .fetch_all(&state.db.pool)
    .await?;
    let mut records = Vec::with_capacity(rows.len());
    for r in &rows {
        records.push(record_view(&state, r).await?);
    }
    Ok(Json(PointInspections { point_id: id, point_name: pt.name, schedule, records }))
}

/// Set a point's inspection schedule (admin, supervisor): weekly, bi-weekly or monthly on a
/// weekday, from a first day, with grace working days, and optionally the inspector's account
/// (staff of the point, a supervisor or an admin) who is told in the console. A closed point
/// takes none (409); a closed point's schedule stays but is neither shown nor flagged.
#[utoipa::path(put, path = "/api/v1/points/{id}/inspection-schedule", tag = "points",
    params(("id" = Uuid, Path, description = "The service point")), request_body = InspectionScheduleRequest,
    responses((status = 200, body = InspectionDueView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The point is closed"), (status = 422, body = ErrorBody)))]
pub async fn put_schedule(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<InspectionScheduleRequest>,
) -> ApiResult<Json<InspectionDueView>> {
    if !is_manager(&p) {
        return Err(ApiError::forbidden());
    }
    let pt = points::load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    if pt.status == shared::api::PointStatus::Closed {
        return Err(ApiError::conflict("服务点已关闭，不能设置巡检计划 (the point is closed)"));
    }
    let now = now_ms();
    if !(1..=7).contains(&req.weekday) {
        return Err(ApiError::validation("weekday 须为 1–7（周一至周日）(weekday 1–7)"));
    }
    let grace = req.grace_working_days.unwrap_or(2);
    if grace > 5 {
        return Err(ApiError::validation("grace_working_days 须为 0–5 (grace 0–5 working days)"));
    }
    let today = calendar::cst_day(now);
    let starts_on = match req.starts_on.as_deref() {
        None => today,
        Some(s) => calendar::parse_date(s).filter(|d| (d - today).abs() <= 366).ok_or_else(|| {
            ApiError::validation("starts_on 须为一年之内的有效日期 YYYY-MM-DD (invalid starts_on)")
        })?,
    };
    if let Some(account) = req.inspector_account_id {
        let ok = sqlx::query("SELECT role, point_id, active FROM users WHERE id = $1")
            .bind(account.to_string())
            .fetch_optional(&state.db.pool)
            .await?
            .map(|r| -> ApiResult<bool> {
                let role: String = r.try_get("role")?;
                let point: Option<String> = r.try_get("point_id")?;
                let active: i64 = r.try_get("active")?;
                Ok(active == 1
                    && (role == "admin"
                        || role == "supervisor"
                        || (role == "staff" && point.as_deref() == Some(id.to_string().as_str()))))
            })
            .transpose()?
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::validation(
                "巡检负责人账户须为本服务点工作人员、主管或管理员的有效账户 (inspector account must be the point's staff, a supervisor or an admin)",
            ));
        }
    }
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM inspection_schedules WHERE point_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO inspection_schedules (point_id, frequency, weekday, starts_on, grace_working_days, \
         inspector_account_id, flagged_due_on, created_at, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, $8)",
    )
    .bind(id.to_string())
    .bind(frequency_str(req.frequency))
    .bind(i64::from(req.weekday))
    .bind(calendar::date_of(starts_on))
    .bind(i64::from(grace))
    .bind(req.inspector_account_id.map(|a| a.to_string()))
    .bind(now)
    .bind(p.id.to_string())
    .execute(&mut *tx)
    .await?;
    let rec = AuditRecord::new("inspection.schedule", "point").by(&p).target(id).detail(json!({
        "frequency": frequency_str(req.frequency), "weekday": req.weekday, "starts_on": calendar::date_of(starts_on),
        "grace_working_days": grace, "inspector_account_id": req.inspector_account_id,
    }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    let view = decide::load_all(&state, Some(id), now_ms())
        .await?
        .into_iter()
        .next()
        .ok_or_else(ApiError::internal)?;
    Ok(Json(view.view))
}

/// Remove a point's inspection schedule (admin, supervisor); its records stay.
#[utoipa::path(delete, path = "/api/v1/points/{id}/inspection-schedule", tag = "points",
    params(("id" = Uuid, Path, description = "The service point")),
    responses((status = 204, description = "removed, or the point had none (idempotent)"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    if !is_manager(&p) {
        return Err(ApiError::forbidden());
    }
    let mut tx = state.db.pool.begin().await?;
    let n = sqlx::query("DELETE FROM inspection_schedules WHERE point_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n != 1 {
        // Idempotent: a point without a schedule has nothing to remove; an unknown point is 404.
        let point = sqlx::query("SELECT id FROM service_points WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        return match point {
            Some(_) => Ok(StatusCode::NO_CONTENT),
            None => Err(ApiError::not_found("服务点")),
        };
    }
    state
        .audit
        .append_in(&mut tx, AuditRecord::new("inspection.schedule_delete", "point").by(&p).target(id))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Record an inspection done now at the point (its staff; admins and supervisors on their
/// rounds): each of the nine checklist items passed or failed with a note. Every failed item
/// opens a problem (整改, due in a week, owned by the point's inspector) on the problem list.
#[utoipa::path(post, path = "/api/v1/points/{id}/inspections", tag = "points",
    params(("id" = Uuid, Path, description = "The service point")), request_body = InspectionRecordRequest,
    responses((status = 201, body = InspectionRecordView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "Not admin, supervisor or the point's own staff"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<InspectionRecordRequest>,
) -> ApiResult<(StatusCode, Json<InspectionRecordView>)> {
    if !may_access(&p, id) {
        return Err(deny(&state, &p, "inspection.record", id).await);
    }
    let pt = points::load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut checklist = Vec::with_capacity(req.checklist.len());
    for c in &req.checklist {
        if !seen.insert(c.item) {
            return Err(ApiError::validation("检查项重复 (a checklist item appears twice)"));
        }
        let note = c.note.as_deref().map(|n| check_text("checklist.note", n, 200, true)).transpose()?;
        checklist.push(InspectionCheck { item: c.item, ok: c.ok, note: note.filter(|n| !n.is_empty()) });
    }
    if seen.len() != InspectionItem::ALL.len() {
        return Err(ApiError::validation(
            "须逐项填写全部 9 个检查项 (all nine checklist items are required)",
        ));
    }
    checklist.sort_by_key(|c| c.item);
    let note =
        req.note.as_deref().map(|n| check_text("note", n, 500, true)).transpose()?.filter(|n| !n.is_empty());
    let failed = i64::try_from(checklist.iter().filter(|c| !c.ok).count()).unwrap_or(0);
    let now = now_ms();
    let rid = new_id();
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO inspection_records (id, point_id, inspected_at, inspector_id, inspector_name, checklist, failed, \
         note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $3)",
    )
    .bind(rid.to_string())
    .bind(id.to_string())
    .bind(now)
    .bind(p.id.to_string())
    .bind(&p.name)
    .bind(serde_json::to_string(&checklist).map_err(|_| ApiError::internal())?)
    .bind(failed)
    .bind(&note)
    .execute(&mut *tx)
    .await?;
    let mut problems = Vec::new();
    for c in checklist.iter().filter(|c| !c.ok) {
        let text = format!(
            "{} 巡检：{}不合格{}",
            pt.name,
            c.item.zh(),
            c.note.as_deref().map(|n| format!("（{n}）")).unwrap_or_default()
        );
        let owner: String = pt.inspector_name.chars().take(64).collect();
        let pid = crate::cases::problems::insert(
            &mut *tx,
            ProblemSource::Inspection,
            Some(&problem_ref(&rid.to_string(), c.item)),
            &text.chars().take(1000).collect::<String>(),
            &owner,
            now + crate::cases::problems::DEFAULT_DAYS * DAY_MS,
            None,
            Some(&p.id.to_string()),
            now,
        )
        .await?;
        problems.push(pid);
    }
    let rec = AuditRecord::new("inspection.record", "point").by(&p).target(id).detail(json!({
        "record_id": rid, "failed": failed, "problems": problems,
    }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RECORD_COLUMNS} WHERE id = $1")))
        .bind(rid.to_string())
        .fetch_one(&state.db.pool)
        .await?;
    Ok((StatusCode::CREATED, Json(record_view(&state, &row).await?)))
}

/// The body of a photo upload: the image's bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct PhotoBytes(Vec<u8>);

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "照片超过 {} MiB 上限 (photo larger than {} MiB)",
            MAX_PHOTO_BYTES >> 20,
            MAX_PHOTO_BYTES >> 20
        ),
    )
}

/// Add a photo to an inspection (JPEG or PNG by content, ≤ 10 MiB, at most 6 per inspection,
/// within a day of recording it; staff of the point, admins, supervisors). The photo is checked
/// by its header (no decompression bombs) and stored encrypted, content-addressed, in the
/// materials store.
#[utoipa::path(post, path = "/api/v1/inspections/{id}/photos", tag = "points",
    params(("id" = Uuid, Path, description = "The inspection record")),
    request_body(content = PhotoBytes, content_type = "application/octet-stream"),
    responses((status = 201, body = InspectionPhotoView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_photo(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<InspectionPhotoView>)> {
    if p.is_terminal() || !matches!(p.role, Role::Admin | Role::Supervisor | Role::Staff) {
        return Err(ApiError::forbidden());
    }
    let rec = sqlx::query("SELECT point_id, inspected_at FROM inspection_records WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("巡检记录"))?;
    let point = parse_id(&rec.try_get::<String, _>("point_id")?)?;
    if !may_access(&p, point) {
        return Err(deny(&state, &p, "inspection.photo_upload", point).await);
    }
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ctype.split(';').next().unwrap_or_default().trim() != "application/octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "请求须为 application/octet-stream (expected application/octet-stream)",
        ));
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("照片未完整上传 (body unreadable)")
        }
    })?;
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(too_large());
    }
    let now = now_ms();
    if rec.try_get::<i64, _>("inspected_at")? < now - PHOTO_WINDOW_MS {
        return Err(ApiError::conflict(
            "巡检登记一天后不能再补充照片 (photos within a day of the inspection)",
        ));
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM inspection_photos WHERE record_id = $1")
        .bind(id.to_string())
        .fetch_one(&state.db.pool)
        .await?
        .try_get("n")?;
    if count >= MAX_PHOTOS_PER_RECORD {
        return Err(ApiError::conflict(format!(
            "每次巡检最多 {MAX_PHOTOS_PER_RECORD} 张照片 (at most {MAX_PHOTOS_PER_RECORD} photos)"
        )));
    }
    let kind = sniff::sniff(&bytes[..bytes.len().min(sniff::MAGIC_LEN)]);
    let format = match kind {
        Some(Kind::Jpeg) => image::ImageFormat::Jpeg,
        Some(Kind::Png) => image::ImageFormat::Png,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported_type",
                "照片须为 JPEG 或 PNG 图像 (photo must be a JPEG or PNG image)",
            ));
        }
    };
    let kind = kind.unwrap_or(Kind::Jpeg);
    {
        let _permit = state.materials.checks.acquire().await.map_err(|_| ApiError::internal())?;
        let b = bytes.clone();
        tokio::task::spawn_blocking(move || check::check_image(format, std::io::Cursor::new(b)))
            .await
            .map_err(|_| ApiError::internal())??;
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    let name = state.pii.keyed_hash(&format!("material-object:{sha}"));
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let photo = new_id();
    {
        // Storing, deduplicating and the purge are serialised by the store's commit lock.
        let _commit = state.materials.commit.lock().await;
        let exists = sqlx::query("SELECT name FROM material_objects WHERE name = $1")
            .bind(&name)
            .fetch_optional(&state.db.pool)
            .await?
            .is_some();
        let sealed = if exists {
            None
        } else {
            let key = crypto::random_key();
            let path = object_path(&name);
            state.materials.seal(&path, &key, &bytes[..], bytes.len() as u64).await.map_err(|e| {
                tracing::error!(error = %e, "cannot store an inspection photo");
                ApiError::internal()
            })?;
            Some((key, path))
        };
        let mut tx = state.db.pool.begin().await?;
        if let Some((key, path)) = sealed {
            sqlx::query(
                "INSERT INTO material_objects (name, sha256, size, segment_size, wrapped_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&name)
            .bind(&sha)
            .bind(size)
            .bind(i64::try_from(crypto::SEGMENT).unwrap_or(0))
            .bind(state.pii.wrap_key(&key, &format!("object:{path}")))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO inspection_photos (id, record_id, object_name, content_type, size, sha256, uploaded_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(photo.to_string())
        .bind(id.to_string())
        .bind(&name)
        .bind(kind.mime())
        .bind(size)
        .bind(&sha)
        .bind(p.id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let rec = AuditRecord::new("inspection.photo_upload", "inspection").by(&p).target(id).detail(json!({
            "photo_id": photo, "point_id": point, "size": size, "content_type": kind.mime(),
        }));
        state.audit.append_in(&mut tx, rec).await?;
        tx.commit().await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(InspectionPhotoView {
            id: photo,
            record_id: id,
            content_type: kind.mime().to_owned(),
            size: u64::try_from(size).unwrap_or(0),
            created_at: now,
        }),
    ))
}

/// An inspection photo (staff of the point, admins, supervisors). Audited `inspection.photo_view`.
#[utoipa::path(get, path = "/api/v1/inspection-photos/{id}", tag = "points",
    params(("id" = Uuid, Path, description = "The photo")),
    responses((status = 200, description = "The image", content_type = "image/jpeg"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn photo(State(state): State<AppState>, p: Principal, Path(id): Path<Uuid>) -> ApiResult<Response> {
    if p.is_terminal() || !matches!(p.role, Role::Admin | Role::Supervisor | Role::Staff) {
        return Err(ApiError::forbidden());
    }
    let r = sqlx::query(
        "SELECT f.record_id, f.object_name, f.content_type, f.size, r.point_id, o.wrapped_key FROM inspection_photos f \
         JOIN inspection_records r ON r.id = f.record_id JOIN material_objects o ON o.name = f.object_name \
         WHERE f.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("照片"))?;
    let point = parse_id(&r.try_get::<String, _>("point_id")?)?;
    if !may_access(&p, point) {
        return Err(deny(&state, &p, "inspection.photo_view", point).await);
    }
    let size = u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0);
    state
        .audit(
            AuditRecord::new("inspection.photo_view", "inspection")
                .by(&p)
                .target(r.try_get::<String, _>("record_id")?)
                .detail(json!({ "photo_id": id, "point_id": point })),
        )
        .await;
    let mut resp = crate::materials::api::stream_object(
        &state,
        &r.try_get::<String, _>("object_name")?,
        &r.try_get::<String, _>("wrapped_key")?,
        size,
        None,
    )?;
    let ctype: String = r.try_get("content_type")?;
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp.into_response())
}
