//! `/api/v1/materials`, `/api/v1/sessions/{id}/materials`, `/api/v1/admin/materials/purge`:
//! reading and reviewing stored materials. Only the two parties of the session, supervisors and
//! admins see them; every view and download is audited, refusals with outcome `denied`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::api::{
    ErrorBody, MaterialStatus, MaterialView, PurgeReport, ReviewDecision, ReviewMaterialRequest,
};
use shared::protocol::Role;
use sqlx::Row;
use uuid::Uuid;

use super::{MaterialRow, SessionInfo, deny, notify_material, object_path, session_info, status_str, thumb};
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult, Json, Path, check_text};
use crate::state::AppState;

/// The material and its session, if the caller may see it (else 403, audited as `action`).
async fn authorised(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    action: &'static str,
) -> ApiResult<(MaterialRow, SessionInfo)> {
    let m = super::load(state, id).await?.ok_or_else(|| ApiError::not_found("材料"))?;
    let session = session_info(state, m.view.session_id).await?.ok_or_else(ApiError::internal)?;
    // A call recording is for supervisors and admins only (quality checks), never the parties.
    let recording = m.view.source == shared::api::MaterialSource::Recording;
    if !session.may_access(p) || (recording && !SessionInfo::is_reviewer(p)) {
        return Err(deny(state, p, action, "material", id).await);
    }
    Ok((m, session))
}

/// The session's operator opening a material moves it from `uploaded` to `viewed`.
async fn mark_viewed(
    state: &AppState,
    p: &Principal,
    m: &mut MaterialRow,
    session: &SessionInfo,
) -> ApiResult<()> {
    if !session.is_operator(p) || m.view.status != MaterialStatus::Uploaded {
        return Ok(());
    }
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE materials SET status = 'viewed', updated_at = $1 WHERE id = $2 AND status = 'uploaded'",
    )
    .bind(now)
    .bind(m.view.id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if n == 1 {
        m.view.status = MaterialStatus::Viewed;
        m.view.updated_at = now;
        notify_material(state, session, m.view.clone()).await;
    }
    Ok(())
}

/// Materials of a session, oldest first (parties, supervisors, admins).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/materials", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, body = [MaterialView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<MaterialView>>> {
    let session = session_info(&state, id).await?.ok_or_else(|| ApiError::not_found("通话"))?;
    if !session.may_access(&p) {
        return Err(deny(&state, &p, "material.list", "session", id).await);
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{} WHERE m.session_id = $1 ORDER BY m.created_at, m.id",
        super::SELECT
    )))
    .bind(id.to_string())
    .fetch_all(&state.db.pool)
    .await?;
    let reviewer = SessionInfo::is_reviewer(&p);
    let list = rows
        .iter()
        .map(|r| super::from_row(r, &state.pii).map(|m| m.view))
        .filter(|m| reviewer || !matches!(m, Ok(v) if v.source == shared::api::MaterialSource::Recording))
        .collect::<ApiResult<Vec<_>>>()?;
    state
        .audit(
            AuditRecord::new("material.list", "session")
                .by(&p)
                .target(id)
                .detail(json!({ "count": list.len() })),
        )
        .await;
    Ok(Json(list))
}

/// One material's metadata. Audited `material.view`.
#[utoipa::path(get, path = "/api/v1/materials/{id}", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, body = MaterialView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<MaterialView>> {
    let (mut m, session) = authorised(&state, &p, id, "material.view").await?;
    state.audit(AuditRecord::new("material.view", "material").by(&p).target(id)).await;
    mark_viewed(&state, &p, &mut m, &session).await?;
    Ok(Json(m.view))
}

/// A single `bytes=` range, resolved against `size`: `Ok(None)` for no (or an ignored
/// multi-range) header, `Err(())` when unsatisfiable.
pub(crate) fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.trim().split_once('-').ok_or(())?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| ());
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => {
            let n = num(b)?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size)
        }
        (false, true) => (num(a)?, size),
        (false, false) => {
            let (s, e) = (num(a)?, num(b)?);
            if e < s {
                return Err(());
            }
            (s, e.saturating_add(1).min(size))
        }
        (true, true) => return Err(()),
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn content_disposition(filename: &str) -> HeaderValue {
    let mut enc = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            enc.push(char::from(b));
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!("inline; filename*=UTF-8''{enc}"))
        .unwrap_or_else(|_| HeaderValue::from_static("inline"))
}

/// Sends plaintext `[start, end)` of a stored object.
pub(crate) fn stream_object(
    state: &AppState,
    object_name: &str,
    wrapped_key: &str,
    size: u64,
    range: Option<(u64, u64)>,
) -> ApiResult<Response> {
    let path = object_path(object_name);
    let key = state.pii.unwrap_key(wrapped_key, &format!("object:{path}")).map_err(|_| {
        tracing::error!(object = object_name, "data key does not unwrap");
        ApiError::internal()
    })?;
    let (start, end) = range.unwrap_or((0, size));
    let body = Body::from_stream(state.materials.open_range(&path, &key, size, start, end));
    let mut resp = body.into_response();
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end.saturating_sub(1))) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    let h2 = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
        h2.insert(header::CONTENT_LENGTH, v);
    }
    h2.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h2.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h2.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(resp)
}

fn gone() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "purged",
        "材料已按保存期限删除 (content purged under the retention rule)",
    )
}

/// The content (`Range` supported, `206`). Audited `material.download`.
#[utoipa::path(get, path = "/api/v1/materials/{id}/content", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range"), (status = 403, body = ErrorBody),
        (status = 410, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn content(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (mut m, session) = authorised(&state, &p, id, "material.download").await?;
    let (Some(name), Some(wrapped)) = (m.object_name.clone(), m.wrapped_key.clone()) else {
        return Err(gone());
    };
    let size = m.view.size;
    let range = match parse_range(&headers, size) {
        Ok(r) => r,
        Err(()) => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "请求范围无效 (range not satisfiable)",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                e.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(e);
        }
    };
    let action = if m.view.source == shared::api::MaterialSource::Recording {
        "recording.play"
    } else {
        "material.download"
    };
    state
        .audit(
            AuditRecord::new(action, "material")
                .by(&p)
                .target(id)
                .detail(json!({ "range": range.map(|(s, e)| format!("{s}-{}", e.saturating_sub(1))) })),
        )
        .await;
    mark_viewed(&state, &p, &mut m, &session).await?;
    let mut resp = stream_object(&state, &name, &wrapped, size, range)?;
    if let Ok(v) = HeaderValue::from_str(&m.view.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp.headers_mut().insert(header::CONTENT_DISPOSITION, content_disposition(&m.view.filename));
    Ok(resp)
}

/// A JPEG thumbnail (≤ 320 px; a generic page for PDFs that could not be rendered). Audited
/// `material.view`.
#[utoipa::path(get, path = "/api/v1/materials/{id}/thumbnail", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn thumbnail(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (m, _) = authorised(&state, &p, id, "material.view").await?;
    if m.view.purged {
        return Err(gone());
    }
    let jpeg = match &m.thumb {
        Some((name, size, wrapped)) => {
            let path = super::thumb_path(name);
            let key =
                state.pii.unwrap_key(wrapped, &format!("object:{path}")).map_err(|_| ApiError::internal())?;
            state.materials.read_all(&path, &key, *size).await.map_err(|e| {
                tracing::error!(error = %e, "thumbnail unreadable");
                ApiError::internal()
            })?
        }
        None if m.view.content_type == super::sniff::Kind::Pdf.mime() => thumb::placeholder(),
        None => return Err(ApiError::not_found("缩略图")),
    };
    state
        .audit(
            AuditRecord::new("material.view", "material")
                .by(&p)
                .target(id)
                .detail(json!({ "part": "thumbnail" })),
        )
        .await;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        jpeg,
    )
        .into_response())
}

/// Accept or reject a material (the session's operator). Rejecting tells the terminal to ask
/// for a new scan (`material_changed`).
#[utoipa::path(post, path = "/api/v1/materials/{id}/review", tag = "materials", params(("id" = Uuid, Path)),
    request_body = ReviewMaterialRequest,
    responses((status = 200, body = MaterialView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn review(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<ReviewMaterialRequest>,
) -> ApiResult<Json<MaterialView>> {
    let m = super::load(&state, id).await?.ok_or_else(|| ApiError::not_found("材料"))?;
    let session = session_info(&state, m.view.session_id).await?.ok_or_else(ApiError::internal)?;
    if !session.is_operator(&p) {
        return Err(deny(&state, &p, "material.review", "material", id).await);
    }
    let (status, reason) = match req.decision {
        ReviewDecision::Accept => (MaterialStatus::Accepted, None),
        ReviewDecision::Reject => {
            let r = req.reason.as_deref().unwrap_or_default();
            (MaterialStatus::Rejected, Some(check_text("reason", r, 200, false)?))
        }
    };
    if m.view.purged || m.view.archived_at.is_some() {
        return Err(ApiError::conflict("材料已归档 (material archived)"));
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE materials SET status = $1, reject_reason = $2, reviewed_by = $3, reviewed_at = $4, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(status_str(status))
    .bind(&reason)
    .bind(p.id.to_string())
    .bind(now)
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?;
    state
        .audit(
            AuditRecord::new("material.review", "material")
                .by(&p)
                .target(id)
                .detail(json!({ "decision": status_str(status), "reason": reason })),
        )
        .await;
    let view = super::load(&state, id).await?.ok_or_else(ApiError::internal)?.view;
    notify_material(&state, &session, view.clone()).await;
    Ok(Json(view))
}

/// Run the retention purge now (admin); it also runs at start-up.
#[utoipa::path(post, path = "/api/v1/admin/materials/purge", tag = "materials",
    responses((status = 200, body = PurgeReport), (status = 403, body = ErrorBody)))]
pub async fn purge(State(state): State<AppState>, p: Principal) -> ApiResult<Json<PurgeReport>> {
    p.require(&[Role::Admin])?;
    if p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    Ok(Json(super::purge(&state, Some(&p)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        parse_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 100))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 100))));
        assert_eq!(range("bytes=95-200", 100), Ok(Some((95, 100))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=5-1", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
        assert_eq!(range("bytes=x-1", 100), Err(()));
    }
}

/// A recording's part from a `materials` row (`id`, `size`, `content_type`, `object_name`).
fn recording_part(r: &sqlx::any::AnyRow, part: u8) -> ApiResult<shared::api::RecordingPart> {
    Ok(shared::api::RecordingPart {
        part,
        material_id: crate::db::parse_id(&r.try_get::<String, _>("id")?)?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        content_type: r.try_get("content_type")?,
        purged: r.try_get::<Option<String>, _>("object_name")?.is_none(),
    })
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecordingsQuery {
    /// Recordings stored before this time (Unix ms; the last `created_at` of the previous page).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Recorded calls, newest first (supervisors, admins): for quality checks (每天对窗口进行抽查).
/// Listing is audited `recording.list`; playing one, `recording.play`.
#[utoipa::path(get, path = "/api/v1/recordings", tag = "materials", params(RecordingsQuery),
    responses((status = 200, body = [shared::api::RecordingView]), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn recordings(
    State(state): State<AppState>,
    p: Principal,
    crate::error::Query(q): crate::error::Query<RecordingsQuery>,
) -> ApiResult<Json<Vec<shared::api::RecordingView>>> {
    if !SessionInfo::is_reviewer(&p) {
        return Err(ApiError::forbidden());
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit 须在 1 到 200 之间 (limit out of range)"));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request("before 须为正整数 (before must be positive)"));
    }
    let rows = sqlx::query(
        "SELECT m.id, m.session_id, m.size, m.content_type, m.created_at, m.object_name, m.duration_ms, t.number, \
         i.name AS item_name, pt.name AS point_name, u.display_name AS operator_name, s.started_at, s.ended_at \
         FROM materials m JOIN call_sessions s ON s.id = m.session_id JOIN tickets t ON t.id = m.ticket_id \
         JOIN service_items i ON i.id = m.item_id JOIN service_points pt ON pt.id = t.point_id \
         JOIN users u ON u.id = s.operator_id \
         WHERE m.source = 'recording' AND COALESCE(m.recording_part, 1) = 1 AND m.created_at < $1 \
         ORDER BY m.created_at DESC, m.id DESC LIMIT $2",
    )
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&state.db.pool)
    .await?;
    // The other parts of the listed recordings (part 2: the operator's side), one query.
    let sessions: Vec<String> =
        rows.iter().map(|r| r.try_get::<String, _>("session_id")).collect::<Result<_, _>>()?;
    let mut more: std::collections::HashMap<String, Vec<shared::api::RecordingPart>> =
        std::collections::HashMap::new();
    if !sessions.is_empty() {
        let marks = (2..sessions.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT id, session_id, recording_part, size, content_type, object_name FROM materials \
             WHERE source = 'recording' AND recording_part = $1 AND session_id IN ({marks})"
        );
        // Only placeholders are formatted in; the session ids are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(2_i32);
        for s in &sessions {
            query = query.bind(s);
        }
        for r in query.fetch_all(&state.db.pool).await? {
            more.entry(r.try_get("session_id")?).or_default().push(recording_part(&r, 2)?);
        }
    }
    let list = rows
        .iter()
        .map(|r| {
            let mut parts = vec![recording_part(r, 1)?];
            parts.extend(more.remove(&r.try_get::<String, _>("session_id")?).unwrap_or_default());
            Ok(shared::api::RecordingView {
                material_id: crate::db::parse_id(&r.try_get::<String, _>("id")?)?,
                session_id: crate::db::parse_id(&r.try_get::<String, _>("session_id")?)?,
                ticket_number: r.try_get("number")?,
                item_name: r.try_get("item_name")?,
                point_name: r.try_get("point_name")?,
                operator_name: r.try_get("operator_name")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                created_at: r.try_get("created_at")?,
                size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
                content_type: r.try_get("content_type")?,
                purged: r.try_get::<Option<String>, _>("object_name")?.is_none(),
                duration_ms: r.try_get::<Option<i64>, _>("duration_ms")?.and_then(|d| u64::try_from(d).ok()),
                parts,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    state
        .audit(AuditRecord::new("recording.list", "recording").by(&p).detail(json!({ "count": list.len() })))
        .await;
    Ok(Json(list))
}
