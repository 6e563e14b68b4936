//! `/api/v1/terminals`: terminals at service points. An admin registers one and receives a
//! one-time enrollment code (24 h); the terminal trades it for a long-lived device credential,
//! and the credential for short device JWTs. Revoking a terminal makes all of them fail at once.

use axum::extract::State;
use axum::http::StatusCode;
use rand::Rng;
use serde_json::json;
use shared::api::{
    DeviceTokenRequest, DeviceTokenResponse, EnrollRequest, EnrollResponse, EnrollmentCodeResponse,
    ErrorBody, RegisterTerminalRequest, RevokeTerminalRequest, TerminalStatus, TerminalView,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::api::listing::{Counted, Listing, enum_param};
use crate::audit::AuditRecord;
use crate::auth::throttle::{Limit, Refused};
use crate::auth::tokens::{TokenKind, opaque_secret, secret_hash};
use crate::auth::{Principal, SourceIp};
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query, check_text};
use crate::state::AppState;

pub const ENROLLMENT_TTL_MS: i64 = 24 * 3600 * 1000;
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A fresh enrollment code such as `K7QF-3MZD-W9XA` (≈ 59 bits).
pub fn new_enrollment_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> =
        (0..12).map(|_| char::from(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())])).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// Normalises what a person typed: case, dashes and spaces do not matter.
fn normalise_code(code: &str) -> Option<String> {
    let s: String =
        code.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (s.len() == 12 && s.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(s)
}

fn code_hash(code: &str) -> Option<String> {
    normalise_code(code).map(|c| secret_hash(&format!("enroll:{c}")))
}

const SELECT: &str = "SELECT t.id, t.point_id, p.name AS point_name, p.street AS point_street, t.name, t.status, t.enrollment_expires_at, \
    t.enrolled_at, t.last_seen_at, t.revoked_at, t.revoked_reason, t.created_at \
    FROM terminals t JOIN service_points p ON p.id = t.point_id";

fn from_row(r: &AnyRow) -> ApiResult<TerminalView> {
    let status: String = r.try_get("status")?;
    Ok(TerminalView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        point_name: r.try_get("point_name")?,
        point_street: r.try_get("point_street")?,
        name: r.try_get("name")?,
        status: match status.as_str() {
            "pending" => TerminalStatus::Pending,
            "active" => TerminalStatus::Active,
            _ => TerminalStatus::Revoked,
        },
        enrollment_expires_at: r.try_get("enrollment_expires_at")?,
        enrolled_at: r.try_get("enrolled_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_reason: r.try_get("revoked_reason")?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn load(db: &Db, id: Uuid) -> ApiResult<Option<TerminalView>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    r.as_ref().map(from_row).transpose()
}

/// Registers a terminal and returns its first enrollment code (used by the API and the demo).
pub async fn register(db: &Db, point: Uuid, name: &str) -> ApiResult<(Uuid, String, i64)> {
    let id = new_id();
    let code = new_enrollment_code();
    let now = now_ms();
    let expires = now + ENROLLMENT_TTL_MS;
    sqlx::query(
        "INSERT INTO terminals (id, point_id, name, status, enrollment_code_hash, enrollment_expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6)",
    )
    .bind(id.to_string())
    .bind(point.to_string())
    .bind(name)
    .bind(code_hash(&code))
    .bind(expires)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok((id, code, expires))
}

/// Issues a new enrollment code for a terminal that has not been revoked (see
/// [`reissue_code_in`]).
pub async fn reissue_code(db: &Db, id: Uuid) -> ApiResult<(String, i64)> {
    let mut tx = db.pool.begin().await?;
    let r = reissue_code_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(r)
}

/// Issues a new enrollment code for a terminal that has not been revoked; any existing device
/// credential and every device token issued before stop working. Runs in the caller's
/// transaction.
pub async fn reissue_code_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: Uuid,
) -> ApiResult<(String, i64)> {
    let code = new_enrollment_code();
    let now = now_ms();
    let expires = now + ENROLLMENT_TTL_MS;
    crate::auth::bump_terminal_gen(tx, id).await?;
    let n = sqlx::query(
        "UPDATE terminals SET status = 'pending', enrollment_code_hash = $1, enrollment_expires_at = $2, \
         credential_hash = NULL, updated_at = $3 WHERE id = $4 AND status <> 'revoked'",
    )
    .bind(code_hash(&code))
    .bind(expires)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 1 { Ok((code, expires)) } else { Err(ApiError::conflict("终端已吊销 (terminal revoked)")) }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TerminalsQuery {
    /// Only rows of this acceptance center's streets (its id); an unknown center matches nothing.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub center: Option<String>,
    /// Search: part of the terminal's or its point's name (case-insensitive), 1–64 characters.
    #[param(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub q: Option<String>,
    /// Only terminals of points in this street (街镇), exactly. (Acceptance centers, #16 item
    /// 6, will add `center`.)
    #[param(min_length = 1, max_length = 32, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub street: Option<String>,
    /// `pending`, `active` or `revoked`.
    #[param(pattern = "^(pending|active|revoked)$")]
    pub state: Option<String>,
    /// `yes`: only terminals with an open alarm; `no`: only those without.
    #[param(pattern = "^(yes|no)$")]
    pub alarm: Option<String>,
    /// `point` (default), `name`, `state` or `last_seen`; prefix `-` for descending.
    #[param(pattern = "^-?(point|name|state|last_seen)$")]
    pub sort: Option<String>,
    /// Page size, 1–500 (default: all).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Rows to skip, 0–100000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100_000)]
    pub offset: Option<String>,
}

/// Terminals, with their point (admin, supervisor): searched, filtered by street, status and
/// open alarms, sorted and paged; `X-Total-Count` is the number matching.
#[utoipa::path(get, path = "/api/v1/terminals", tag = "terminals", params(TerminalsQuery),
    responses((status = 200, body = [TerminalView],
            headers(("x-total-count" = i64, description = "Terminals matching the filters, before paging"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<TerminalsQuery>,
) -> ApiResult<Counted<TerminalView>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let l = Listing::parse(
        q.q.as_deref(),
        q.street.as_deref(),
        q.sort.as_deref(),
        q.limit.as_deref(),
        q.offset.as_deref(),
        &["point", "name", "state", "last_seen"],
        "point",
    )?
    .in_center(&state.db, q.center.as_deref())
    .await?;
    let status = enum_param("state", q.state.as_deref(), &["pending", "active", "revoked"])?;
    let alarm = enum_param("alarm", q.alarm.as_deref(), &["yes", "no"])?;
    let alarmed: std::collections::HashSet<Uuid> = if alarm.is_some() {
        sqlx::query("SELECT DISTINCT terminal_id FROM terminal_alarms WHERE cleared_at IS NULL")
            .fetch_all(&state.db.pool)
            .await?
            .iter()
            .map(|r| Ok(parse_id(&r.try_get::<String, _>("terminal_id")?)?))
            .collect::<ApiResult<_>>()?
    } else {
        Default::default()
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY p.code, t.name")))
        .fetch_all(&state.db.pool)
        .await?;
    let state_of = |t: &TerminalView| match t.status {
        TerminalStatus::Pending => "pending",
        TerminalStatus::Active => "active",
        TerminalStatus::Revoked => "revoked",
    };
    let terminals: Vec<TerminalView> = rows
        .iter()
        .map(from_row)
        .collect::<ApiResult<Vec<_>>>()?
        .into_iter()
        .filter(|t| {
            l.matches(&[&t.name, &t.point_name])
                && l.street_is(&t.point_street)
                && status.is_none_or(|s| s == state_of(t))
                && alarm.is_none_or(|a| (a == "yes") == alarmed.contains(&t.id))
        })
        .collect();
    // The query's order (point code, name) is the default and the tie-break.
    let (page, total) = l.finish(terminals.into_iter().enumerate().collect(), |(i, a), (j, b)| {
        let by = match l.sort.as_str() {
            "name" => a.name.cmp(&b.name),
            "state" => state_of(a).cmp(state_of(b)),
            "last_seen" => a.last_seen_at.cmp(&b.last_seen_at),
            _ => std::cmp::Ordering::Equal,
        };
        by.then_with(|| i.cmp(j))
    });
    Ok(Counted(page.into_iter().map(|(_, t)| t).collect(), total))
}

/// Register a terminal at a point (admin). The enrollment code is shown only in this response.
#[utoipa::path(post, path = "/api/v1/terminals", tag = "terminals", request_body = RegisterTerminalRequest,
    responses((status = 201, body = EnrollmentCodeResponse), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<RegisterTerminalRequest>,
) -> ApiResult<(StatusCode, Json<EnrollmentCodeResponse>)> {
    p.require(&[Role::Admin])?;
    let name = check_text("name", &req.name, 64, false)?;
    let point = super::points::load(&state.db, req.point_id)
        .await?
        .ok_or_else(|| ApiError::validation("服务点不存在 (no such point)"))?;
    if point.status != shared::api::PointStatus::Open {
        return Err(ApiError::conflict("服务点已关闭 (point is closed)"));
    }
    let (id, code, expires_at) = register(&state.db, req.point_id, &name).await?;
    state
        .audit(
            AuditRecord::new("terminal.register", "terminal")
                .by(&p)
                .target(id)
                .detail(json!({ "point_id": req.point_id, "name": name })),
        )
        .await;
    let terminal = load(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(EnrollmentCodeResponse { terminal, enrollment_code: code, expires_at })))
}

/// Issue a new enrollment code (admin), e.g. after replacing the terminal's disk.
#[utoipa::path(post, path = "/api/v1/terminals/{id}/enrollment-code", tag = "terminals", params(("id" = Uuid, Path)),
    responses((status = 200, body = EnrollmentCodeResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn new_code(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EnrollmentCodeResponse>> {
    p.require(&[Role::Admin])?;
    load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("终端"))?;
    let mut tx = state.db.pool.begin().await?;
    let (code, expires_at) = reissue_code_in(&mut tx, id).await?;
    let rec = AuditRecord::new("terminal.enrollment_code", "terminal").by(&p).target(id);
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    state.switchboard.kick(id, shared::protocol::ByeReason::Revoked).await;
    let terminal = load(&state.db, id).await?.ok_or_else(ApiError::internal)?;
    Ok(Json(EnrollmentCodeResponse { terminal, enrollment_code: code, expires_at }))
}

/// Revoke a terminal (admin): its credential and tokens fail from this moment.
#[utoipa::path(post, path = "/api/v1/terminals/{id}/revoke", tag = "terminals", request_body = RevokeTerminalRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TerminalView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    Json(req): Json<RevokeTerminalRequest>,
) -> ApiResult<Json<TerminalView>> {
    p.require(&[Role::Admin])?;
    let reason = check_text("reason", &req.reason, 200, false)?;
    load(&state.db, id).await?.ok_or_else(|| ApiError::not_found("终端"))?;
    let now = now_ms();
    let mut tx = state.db.pool.begin().await?;
    crate::auth::bump_terminal_gen(&mut tx, id).await?;
    let n = sqlx::query(
        "UPDATE terminals SET status = 'revoked', revoked_at = $1, revoked_reason = $2, credential_hash = NULL, \
         enrollment_code_hash = NULL, updated_at = $1 WHERE id = $3 AND status <> 'revoked'",
    )
    .bind(now)
    .bind(&reason)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict("终端已吊销 (already revoked)"));
    }
    let rec =
        AuditRecord::new("terminal.revoke", "terminal").by(&p).target(id).detail(json!({ "reason": reason }));
    state.audit.append_in(&mut tx, rec).await?;
    tx.commit().await?;
    state.switchboard.kick(id, shared::protocol::ByeReason::Revoked).await;
    Ok(Json(load(&state.db, id).await?.ok_or_else(ApiError::internal)?))
}

/// Enrolment codes and device credentials are throttled per client address (never one key
/// for everyone: a stranger's junk must not lock out the district's terminals).
fn device_keys(kind: &str, addr: &str) -> [(String, Limit); 1] {
    [(format!("{kind}:{addr}"), Limit::DEVICE_ADDRESS)]
}

async fn attempt(state: &AppState, keys: &[(String, Limit)]) -> Result<(), Refused> {
    state.throttle.attempt(keys, now_ms()).await
}

async fn succeeded(state: &AppState, keys: &[(String, Limit)]) {
    state.throttle.success(keys, &[]).await;
}

/// Enrollment: a terminal trades its one-time code for a long-lived device credential.
#[utoipa::path(post, path = "/api/v1/terminals/enroll", tag = "terminals", request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    SourceIp(ip): SourceIp,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    let addr = ip.clone().unwrap_or_default();
    let keys = device_keys("enroll", &addr);
    if let Err(r) = attempt(&state, &keys).await {
        if r.first {
            let mut rec = AuditRecord::new("terminal.enroll", "terminal").outcome("denied");
            rec.source_ip = ip;
            rec.detail = json!({ "reason": "throttled" });
            state.audit(rec).await;
        }
        return Err(super::auth::throttled_error(r));
    }
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_enrollment_code",
            "注册码无效或已过期 (invalid or expired enrollment code)",
        )
    };
    let Some(hash) = code_hash(&req.code) else {
        return Err(bad());
    };
    let now = now_ms();
    let row = sqlx::query(
        "SELECT t.id, t.point_id, p.code AS point_code FROM terminals t JOIN service_points p ON p.id = t.point_id \
         WHERE t.enrollment_code_hash = $1 AND t.status = 'pending' AND t.enrollment_expires_at > $2",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        let mut rec = AuditRecord::new("terminal.enroll", "terminal").outcome("failure");
        rec.source_ip = ip;
        state.audit(rec).await;
        return Err(bad());
    };
    let id: String = row.try_get("id")?;
    let credential = opaque_secret("bbd_");
    let n = sqlx::query(
        "UPDATE terminals SET status = 'active', credential_hash = $1, enrollment_code_hash = NULL, \
         enrollment_expires_at = NULL, enrolled_at = $2, updated_at = $2 WHERE id = $3 AND enrollment_code_hash = $4",
    )
    .bind(secret_hash(&credential))
    .bind(now)
    .bind(&id)
    .bind(&hash)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(bad());
    }
    succeeded(&state, &keys).await;
    let mut rec = AuditRecord::new("terminal.enroll", "terminal").target(&id);
    rec.source_ip = ip;
    rec.actor_id = parse_id(&id).ok();
    state.audit(rec).await;
    Ok(Json(EnrollResponse {
        terminal_id: parse_id(&id)?,
        point_id: parse_id(&row.try_get::<String, _>("point_id")?)?,
        point_code: row.try_get("point_code")?,
        credential,
    }))
}

/// A terminal trades its device credential for a short device JWT (role `terminal`).
#[utoipa::path(post, path = "/api/v1/terminals/token", tag = "terminals", request_body = DeviceTokenRequest,
    responses((status = 200, body = DeviceTokenResponse), (status = 401, body = ErrorBody)))]
pub async fn device_token(
    State(state): State<AppState>,
    SourceIp(ip): SourceIp,
    Json(req): Json<DeviceTokenRequest>,
) -> ApiResult<Json<DeviceTokenResponse>> {
    let addr = ip.clone().unwrap_or_default();
    let keys = device_keys("device", &addr);
    if let Err(r) = attempt(&state, &keys).await {
        if r.first {
            let mut rec = AuditRecord::new("terminal.token", "terminal").outcome("denied");
            rec.source_ip = ip;
            rec.detail = json!({ "reason": "throttled" });
            state.audit(rec).await;
        }
        return Err(super::auth::throttled_error(r));
    }
    if req.credential.len() > 128 || !req.credential.starts_with("bbd_") {
        return Err(ApiError::invalid_token());
    }
    let row = sqlx::query(
        "SELECT id, point_id, token_gen FROM terminals WHERE credential_hash = $1 AND status = 'active'",
    )
    .bind(secret_hash(&req.credential))
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::invalid_token());
    };
    succeeded(&state, &keys).await;
    let generation: i64 = row.try_get("token_gen")?;
    let id = parse_id(&row.try_get::<String, _>("id")?)?;
    let point = parse_id(&row.try_get::<String, _>("point_id")?)?;
    let now = now_ms();
    sqlx::query("UPDATE terminals SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.to_string())
        .execute(&state.db.pool)
        .await?;
    let ttl = state.config.device_ttl_secs;
    let token = state
        .tokens
        .issue(TokenKind::Device, id, Role::Terminal, Some(point), generation, ttl, now / 1000)
        .map_err(|_| ApiError::internal())?;
    Ok(Json(DeviceTokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        terminal_id: id,
        point_id: point,
    }))
}

/// What the terminal's resident is told before taking a ticket: whether its point takes tickets
/// now (structured opening hours by the working-day calendar; holidays closed, make-up working
/// days open) and when it opens next, and for every line with remotely available items how many
/// operators serve it now and how long a ticket taken now would wait (a range; none when nobody
/// serves the line; then when the line's duty roster next brings someone on, if it has one).
/// Device token.
#[utoipa::path(get, path = "/api/v1/terminals/me/availability", tag = "terminals",
    responses((status = 200, body = shared::api::TerminalAvailability), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn availability(
    State(state): State<AppState>,
    p: Principal,
) -> ApiResult<Json<shared::api::TerminalAvailability>> {
    use crate::switchboard::core::availability::Opening;
    let point_id = p.point_id.filter(|_| p.is_terminal()).ok_or_else(ApiError::forbidden)?;
    let point =
        crate::api::points::load(&state.db, point_id).await?.ok_or_else(|| ApiError::not_found("服务点"))?;
    let now = now_ms();
    let hours = crate::api::points::schedule(&state.db, point_id).await?;
    let rosters = crate::api::rosters::all(&state.db).await?;
    let cal = if hours.is_some() || !rosters.is_empty() {
        crate::calendar::load(&state.db).await?
    } else {
        crate::calendar::Calendar::new([])
    };
    let opening = if point.status != shared::api::PointStatus::Open {
        Opening::Closed { next_open_at: None }
    } else {
        Opening::at(hours.as_ref(), &cal, now)
    };
    let next_on_duty = crate::api::rosters::next_on_duty(&rosters, &cal, now);
    let rows = sqlx::query(
        "SELECT DISTINCT line_id FROM service_items WHERE active = 1 AND remote_allowed = 1 ORDER BY line_id",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let lines =
        rows.iter().map(|r| parse_id(r.try_get("line_id")?)).collect::<Result<Vec<Uuid>, sqlx::Error>>()?;
    let a =
        state.switchboard.availability(opening, lines, next_on_duty).await.ok_or_else(ApiError::internal)?;
    Ok(Json(a))
}
