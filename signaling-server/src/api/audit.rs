//! `/api/v1/audit`: the append-only audit log, readable by admins, and its chain check.

use axum::extract::State;
use serde::Deserialize;
use shared::api::{AuditPage, AuditVerifyResponse, ErrorBody};
use shared::protocol::Role;

use crate::audit::{Audit, list};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries with `seq` below this (for paging back).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only this action, e.g. `auth.login`.
    #[param(max_length = 64, pattern = "^[a-z._]*$")]
    pub action: Option<String>,
}

/// Read the audit log, newest first (admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn page(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    p.require(&[Role::Admin])?;
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request("before 须为正整数 (before must be positive)"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit 须在 1 到 500 之间 (limit out of range)"));
    }
    if q.action
        .as_ref()
        .is_some_and(|a| a.len() > 64 || !a.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'))
    {
        return Err(ApiError::bad_request("action 须为小写字母、. 或 _，最长 64 (invalid action filter)"));
    }
    let entries = list(&state.db, q.before, limit, q.action.as_deref()).await?;
    let next_before = (entries.len() == usize::try_from(limit).unwrap_or(0))
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage { entries, next_before }))
}

/// Recompute the hash chain, check it against the signed checkpoints kept outside the
/// database, and report the first broken entry, if any (admin).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerifyResponse), (status = 403, body = ErrorBody)))]
pub async fn verify(State(state): State<AppState>, p: Principal) -> ApiResult<Json<AuditVerifyResponse>> {
    p.require(&[Role::Admin])?;
    let path = crate::audit::checkpoint_file(&state.config.data_dir);
    let checkpoints = tokio::task::spawn_blocking(move || crate::audit::read_checkpoints(&path))
        .await
        .map_err(|_| ApiError::internal())?;
    let (checked, first_broken_seq, anchored_seq) = Audit::verify(&state.db, &checkpoints).await?;
    Ok(Json(AuditVerifyResponse {
        intact: first_broken_seq.is_none(),
        checked,
        first_broken_seq,
        anchored_seq,
    }))
}
