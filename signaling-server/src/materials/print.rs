//! Remote printing: the operator sends a stored PDF of the session to the service point; the
//! terminal is told over the socket (`print_job_changed`), or finds the job when it reconnects
//! (`GET /api/v1/terminals/me/print-jobs?state=pending`), claims it (exactly once, with its own
//! claim token), downloads and checks it, prints, and reports the printer's states.
//!
//! Jobs are durable rows; creating is idempotent per operator and `idempotency_key`; claiming is
//! idempotent per claim token (a second claimant gets 409), so a job is printed once across
//! restarts of the server and of the terminal. Jobs nobody claims expire after the configured
//! time.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use shared::api::{
    ClaimPrintJobRequest, CreatePrintJobRequest, ErrorBody, PrintJobState, PrintJobStateRequest, PrintJobView,
};
use shared::protocol::ServerMsg;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{deny, session_info};
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::auth::tokens::secret_hash;
use crate::db::{new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

const SELECT: &str = "SELECT j.id, j.session_id, j.point_id, j.terminal_id, j.operator_id, j.material_id, \
    j.copies, j.state, j.reason, j.claim_token_hash, j.created_at, j.updated_at, j.expires_at, \
    m.filename, m.sha256, m.size, m.object_name, o.wrapped_key \
    FROM print_jobs j JOIN materials m ON m.id = j.material_id \
    LEFT JOIN material_objects o ON o.name = m.object_name";

fn parse_state(s: &str) -> Option<PrintJobState> {
    use PrintJobState::*;
    [Pending, Claimed, Queued, Printing, Completed, Failed, Cancelled, Expired]
        .into_iter()
        .find(|v| v.as_str() == s)
}

#[derive(Debug, Clone)]
struct JobRow {
    view: PrintJobView,
    claim_token_hash: Option<String>,
    object_name: Option<String>,
    wrapped_key: Option<String>,
}

fn from_row(r: &AnyRow, pii: &crate::pii::Pii) -> ApiResult<JobRow> {
    Ok(JobRow {
        view: PrintJobView {
            id: parse_id(&r.try_get::<String, _>("id")?)?,
            session_id: parse_id(&r.try_get::<String, _>("session_id")?)?,
            point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
            terminal_id: parse_id(&r.try_get::<String, _>("terminal_id")?)?,
            operator_id: parse_id(&r.try_get::<String, _>("operator_id")?)?,
            material_id: parse_id(&r.try_get::<String, _>("material_id")?)?,
            filename: super::open_name(
                pii,
                &r.try_get::<String, _>("filename")?,
                &super::material_name_context(parse_id(&r.try_get::<String, _>("material_id")?)?),
            ),
            sha256: r.try_get("sha256")?,
            size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
            copies: u32::try_from(r.try_get::<i64, _>("copies")?).unwrap_or(1),
            state: parse_state(&r.try_get::<String, _>("state")?).ok_or_else(ApiError::internal)?,
            reason: r.try_get("reason")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            expires_at: r.try_get("expires_at")?,
        },
        claim_token_hash: r.try_get("claim_token_hash")?,
        object_name: r.try_get("object_name")?,
        wrapped_key: r.try_get("wrapped_key")?,
    })
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Option<JobRow>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE j.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    r.as_ref().map(|r| from_row(r, &state.pii)).transpose()
}

async fn notify(state: &AppState, job: &PrintJobView) {
    state
        .switchboard
        .notify(vec![job.terminal_id, job.operator_id], ServerMsg::PrintJobChanged { job: job.clone() })
        .await;
}

/// Marks unclaimed jobs past their expiry `expired` and tells both parties; returns how many.
pub(crate) async fn expire_jobs(state: &AppState, now: i64) -> ApiResult<u64> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE j.state IN ('pending', 'claimed') AND j.expires_at <= $1"
    )))
    .bind(now)
    .fetch_all(&state.db.pool)
    .await?;
    let mut count = 0;
    for r in &rows {
        let job = from_row(r, &state.pii)?;
        let n = sqlx::query(
            "UPDATE print_jobs SET state = 'expired', updated_at = $1 WHERE id = $2 AND state IN ('pending', 'claimed')",
        )
        .bind(now)
        .bind(job.view.id.to_string())
        .execute(&state.db.pool)
        .await?
        .rows_affected();
        if n == 1 {
            count += 1;
            let mut view = job.view;
            view.state = PrintJobState::Expired;
            view.updated_at = now;
            notify(state, &view).await;
        }
    }
    Ok(count)
}

/// Send a PDF material of the session to the session's service point (the session's operator).
/// `201` for a new job, `200` with the existing job when the idempotency key was used before.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/print-jobs", tag = "materials", params(("id" = Uuid, Path)),
    request_body = CreatePrintJobRequest,
    responses((status = 201, body = PrintJobView), (status = 200, body = PrintJobView), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<CreatePrintJobRequest>,
) -> ApiResult<(StatusCode, Json<PrintJobView>)> {
    let session = session_info(&state, id).await?.ok_or_else(|| ApiError::not_found("通话"))?;
    if !session.is_operator(&p) {
        return Err(deny(&state, &p, "print_job.create", "session", id).await);
    }
    let key = check_text("idempotency_key", &req.idempotency_key, 64, false)?;
    let copies = req.copies.unwrap_or(1);
    if !(1..=10).contains(&copies) {
        return Err(ApiError::validation("copies 须在 1–10 之间 (copies must be 1–10)"));
    }
    let existing = || async {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE j.operator_id = $1 AND j.idempotency_key = $2"
        )))
        .bind(p.id.to_string())
        .bind(&key)
        .fetch_optional(&state.db.pool)
        .await?;
        r.as_ref().map(|r| from_row(r, &state.pii)).transpose()
    };
    let same = |job: &JobRow| job.view.material_id == req.material_id && job.view.session_id == id;
    if let Some(job) = existing().await? {
        if !same(&job) {
            return Err(ApiError::conflict(
                "该幂等键已用于其他打印任务 (idempotency key used for another job)",
            ));
        }
        return Ok((StatusCode::OK, Json(job.view)));
    }
    if !session.is_live() {
        return Err(ApiError::conflict("通话已结束 (session is over)"));
    }
    let m = super::load(&state, req.material_id)
        .await?
        .ok_or_else(|| ApiError::validation("材料不存在 (no such material)"))?;
    if m.view.session_id != id {
        return Err(ApiError::validation("材料不属于该通话 (material of another session)"));
    }
    if m.view.content_type != super::sniff::Kind::Pdf.mime() || m.view.purged {
        return Err(ApiError::validation("仅可打印 PDF (only PDF documents can be printed)"));
    }
    let job_id = new_id();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO print_jobs (id, session_id, point_id, terminal_id, operator_id, material_id, idempotency_key, \
         copies, state, created_at, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $10)",
    )
    .bind(job_id.to_string())
    .bind(id.to_string())
    .bind(session.point_id.to_string())
    .bind(session.terminal_id.to_string())
    .bind(p.id.to_string())
    .bind(req.material_id.to_string())
    .bind(&key)
    .bind(i64::from(copies))
    .bind(now)
    .bind(now + state.config.materials.print_job_expiry_ms)
    .execute(&state.db.pool)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // The same request raced itself.
            let job = existing().await?.ok_or_else(ApiError::internal)?;
            if !same(&job) {
                return Err(ApiError::conflict(
                    "该幂等键已用于其他打印任务 (idempotency key used for another job)",
                ));
            }
            return Ok((StatusCode::OK, Json(job.view)));
        }
        Err(e) => return Err(e.into()),
    }
    let job = load(&state, job_id).await?.ok_or_else(ApiError::internal)?.view;
    state
        .audit(AuditRecord::new("print_job.create", "print_job").by(&p).target(job_id).detail(json!({
            "session_id": id, "material_id": req.material_id, "point_id": session.point_id, "copies": copies,
        })))
        .await;
    notify(&state, &job).await;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Print jobs of a session (parties, supervisors, admins).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/print-jobs", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, body = [PrintJobView]), (status = 403, body = ErrorBody)))]
pub async fn list_session(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<PrintJobView>>> {
    let session = session_info(&state, id).await?.ok_or_else(|| ApiError::not_found("通话"))?;
    if !session.may_access(&p) {
        return Err(deny(&state, &p, "print_job.list", "session", id).await);
    }
    expire_jobs(&state, now_ms()).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE j.session_id = $1 ORDER BY j.created_at, j.id"
    )))
    .bind(id.to_string())
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.iter().map(|r| from_row(r, &state.pii).map(|j| j.view)).collect::<ApiResult<_>>()?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Only jobs in this state, e.g. `pending`.
    #[param(pattern = "^(pending|claimed|queued|printing|completed|failed|cancelled|expired)$")]
    pub state: Option<String>,
}

/// The calling terminal's print jobs (device token), e.g. `?state=pending` after a reconnect.
#[utoipa::path(get, path = "/api/v1/terminals/me/print-jobs", tag = "materials", params(JobsQuery),
    responses((status = 200, body = [PrintJobView]), (status = 403, body = ErrorBody)))]
pub async fn list_mine(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<Vec<PrintJobView>>> {
    if !p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    expire_jobs(&state, now_ms()).await?;
    let filter = match q.state.as_deref() {
        Some(s) => Some(parse_state(s).ok_or_else(|| ApiError::bad_request("state 无效 (invalid state)"))?),
        None => None,
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE j.terminal_id = $1 AND ($2 = '' OR j.state = $2) ORDER BY j.created_at, j.id"
    )))
    .bind(p.id.to_string())
    .bind(filter.map_or("", PrintJobState::as_str))
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(rows.iter().map(|r| from_row(r, &state.pii).map(|j| j.view)).collect::<ApiResult<_>>()?))
}

/// The terminal takes the job for printing. Presenting the same claim token again (e.g. after
/// the terminal restarted) succeeds; any other claim gets 409.
#[utoipa::path(post, path = "/api/v1/print-jobs/{id}/claim", tag = "materials", params(("id" = Uuid, Path)),
    request_body = ClaimPrintJobRequest,
    responses((status = 200, body = PrintJobView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<ClaimPrintJobRequest>,
) -> ApiResult<Json<PrintJobView>> {
    let token = req.claim_token.trim();
    if !(16..=128).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation(
            "claim_token 须为 16–128 个可见 ASCII 字符 (claim_token: 16–128 printable ASCII)",
        ));
    }
    let job = load(&state, id).await?.ok_or_else(|| ApiError::not_found("打印任务"))?;
    if !(p.is_terminal() && p.id == job.view.terminal_id) {
        return Err(deny(&state, &p, "print_job.claim", "print_job", id).await);
    }
    expire_jobs(&state, now_ms()).await?;
    let hash = secret_hash(&format!("print-claim:{token}"));
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE print_jobs SET state = 'claimed', claim_token_hash = $1, claimed_at = $2, updated_at = $2 \
         WHERE id = $3 AND state = 'pending' AND expires_at > $2",
    )
    .bind(&hash)
    .bind(now)
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    let job = load(&state, id).await?.ok_or_else(ApiError::internal)?;
    if n == 1 {
        state.audit(AuditRecord::new("print_job.claim", "print_job").by(&p).target(id)).await;
        notify(&state, &job.view).await;
        return Ok(Json(job.view));
    }
    if job.claim_token_hash.as_deref() == Some(hash.as_str()) {
        return Ok(Json(job.view));
    }
    state.audit(AuditRecord::new("print_job.claim", "print_job").by(&p).target(id).outcome("conflict")).await;
    Err(ApiError::conflict(format!(
        "打印任务已被领取或不可打印 (job already claimed or not printable: {})",
        job.view.state.as_str()
    )))
}

/// The document to print (device token of the job's terminal, while the call is live or
/// ended less than [`super::UPLOAD_GRACE_MS`] ago, and the job is not final). `Repr-Digest` carries its
/// SHA-256, which the terminal checks before printing.
#[utoipa::path(get, path = "/api/v1/print-jobs/{id}/document", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The PDF", content_type = "application/pdf"), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn document(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let job = load(&state, id).await?.ok_or_else(|| ApiError::not_found("打印任务"))?;
    // Only the job's own terminal, and only while its call is live (or just ended: a server
    // restart closes calls; a job sent during the call still prints within the grace).
    let live = session_info(&state, job.view.session_id)
        .await?
        .is_some_and(|s| s.finishes_uploads(now_ms()) && !job.view.state.is_final());
    if !(p.is_terminal() && p.id == job.view.terminal_id && live) {
        return Err(deny(&state, &p, "print_job.download", "print_job", id).await);
    }
    if matches!(job.view.state, PrintJobState::Cancelled | PrintJobState::Expired) {
        return Err(ApiError::conflict("打印任务已取消或过期 (job cancelled or expired)"));
    }
    let (Some(name), Some(wrapped)) = (job.object_name, job.wrapped_key) else {
        return Err(ApiError::new(StatusCode::GONE, "purged", "文件已删除 (document purged)"));
    };
    let range = super::api::parse_range(&headers, job.view.size).ok().flatten();
    state.audit(AuditRecord::new("print_job.download", "print_job").by(&p).target(id)).await;
    let mut resp = super::api::stream_object(&state, &name, &wrapped, job.view.size, range)?;
    let h = resp.headers_mut();
    h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    if let Ok(raw) = hex::decode(&job.view.sha256)
        && let Ok(v) = HeaderValue::from_str(&format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    {
        h.insert("repr-digest", v);
    }
    if let Ok(v) = HeaderValue::from_str(&job.view.sha256) {
        h.insert("bangban-sha256", v);
    }
    Ok(resp)
}

/// Who reports a printer state.
struct Reporter {
    id: Uuid,
    name: String,
    source_ip: Option<String>,
}

/// Records a printer state reported by the terminal of the job (`queued`, `printing`,
/// `completed`, or `failed` with the printer's reason such as `media-empty`) and tells both
/// parties. For the WebSocket message `print_job_state`: call with the connection's
/// authenticated party ID; an `Err` maps to an `error` message (`forbidden`, `not_found`,
/// `conflict`, `bad_message`).
pub async fn report_print_state(
    state: &AppState,
    terminal_id: Uuid,
    job_id: Uuid,
    new_state: PrintJobState,
    reason: Option<String>,
) -> ApiResult<PrintJobView> {
    let row = sqlx::query("SELECT name FROM terminals WHERE id = $1 AND status = 'active'")
        .bind(terminal_id.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(ApiError::forbidden)?;
    let reporter = Reporter { id: terminal_id, name: row.try_get("name")?, source_ip: None };
    report(state, &reporter, job_id, new_state, reason.as_deref()).await
}

fn rank(s: PrintJobState) -> u8 {
    match s {
        PrintJobState::Pending => 0,
        PrintJobState::Claimed => 1,
        PrintJobState::Queued => 2,
        PrintJobState::Printing => 3,
        _ => 4,
    }
}

async fn report(
    state: &AppState,
    who: &Reporter,
    id: Uuid,
    new_state: PrintJobState,
    reason: Option<&str>,
) -> ApiResult<PrintJobView> {
    if !matches!(
        new_state,
        PrintJobState::Queued | PrintJobState::Printing | PrintJobState::Completed | PrintJobState::Failed
    ) {
        return Err(ApiError::validation("state 须为 queued、printing、completed 或 failed"));
    }
    let reason = match reason {
        Some(r) => {
            Some(check_text("reason", r, 200, new_state != PrintJobState::Failed)?).filter(|r| !r.is_empty())
        }
        None if new_state == PrintJobState::Failed => {
            return Err(ApiError::validation("失败须说明原因 (reason required for failed)"));
        }
        None => None,
    };
    let job = load(state, id).await?.ok_or_else(|| ApiError::not_found("打印任务"))?;
    let mut rec = AuditRecord::new("print_job.state", "print_job").target(id);
    rec.actor_id = Some(who.id);
    rec.actor_name = who.name.clone();
    rec.source_ip = who.source_ip.clone();
    if job.view.terminal_id != who.id {
        state.audit(rec.outcome("denied")).await;
        return Err(ApiError::forbidden());
    }
    if job.view.state == new_state {
        return Ok(job.view);
    }
    if job.view.state == PrintJobState::Pending {
        return Err(ApiError::conflict("须先领取打印任务 (claim the job first)"));
    }
    if job.view.state.is_final() || rank(new_state) <= rank(job.view.state) {
        return Err(ApiError::conflict(format!(
            "打印任务状态为 {}，不能改为 {} (invalid transition)",
            job.view.state.as_str(),
            new_state.as_str()
        )));
    }
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE print_jobs SET state = $1, reason = $2, updated_at = $3 WHERE id = $4 AND state = $5",
    )
    .bind(new_state.as_str())
    .bind(&reason)
    .bind(now)
    .bind(id.to_string())
    .bind(job.view.state.as_str())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict("打印任务已变化 (job changed concurrently)"));
    }
    state.audit(rec.detail(json!({ "state": new_state.as_str(), "reason": reason }))).await;
    let view = load(state, id).await?.ok_or_else(ApiError::internal)?.view;
    notify(state, &view).await;
    Ok(view)
}

/// The terminal reports a printer state (device token of the job's terminal).
#[utoipa::path(post, path = "/api/v1/print-jobs/{id}/state", tag = "materials", params(("id" = Uuid, Path)),
    request_body = PrintJobStateRequest,
    responses((status = 200, body = PrintJobView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_state(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<PrintJobStateRequest>,
) -> ApiResult<Json<PrintJobView>> {
    if !p.is_terminal() {
        return Err(deny(&state, &p, "print_job.state", "print_job", id).await);
    }
    let who = Reporter { id: p.id, name: p.name.clone(), source_ip: p.source_ip.clone() };
    Ok(Json(report(&state, &who, id, req.state, req.reason.as_deref()).await?))
}

/// Cancel a job that has not finished (the operator who sent it).
#[utoipa::path(post, path = "/api/v1/print-jobs/{id}/cancel", tag = "materials", params(("id" = Uuid, Path)),
    responses((status = 200, body = PrintJobView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PrintJobView>> {
    let job = load(&state, id).await?.ok_or_else(|| ApiError::not_found("打印任务"))?;
    if p.is_terminal() || p.id != job.view.operator_id {
        return Err(deny(&state, &p, "print_job.cancel", "print_job", id).await);
    }
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE print_jobs SET state = 'cancelled', updated_at = $1 WHERE id = $2 \
         AND state IN ('pending', 'claimed', 'queued', 'printing')",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict(format!("打印任务已结束 (job already {})", job.view.state.as_str())));
    }
    state.audit(AuditRecord::new("print_job.cancel", "print_job").by(&p).target(id)).await;
    let view = load(&state, id).await?.ok_or_else(ApiError::internal)?.view;
    notify(&state, &view).await;
    Ok(Json(view))
}
