//! `/api/v1/auth/*`: login, refresh (rotating, re-use revokes the family), logout, password
//! change, the caller's own account, and the JWKS.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use shared::api::{ChangePasswordRequest, ErrorBody, LoginRequest, RefreshRequest, TokenResponse, UserView};
use sqlx::Row;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::throttle::{Limit, Refused, login_keys};
use crate::auth::tokens::{TokenKind, opaque_secret, secret_hash};
use crate::auth::{Principal, SourceIp, password};
use crate::db::{new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;

use super::accounts::load_user_view;

fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "用户名或密码错误 (wrong username or password)",
    )
}

/// Verifies a password off the async runtime (Argon2 takes tens of milliseconds of CPU and
/// 19 MiB; bounded in number).
async fn verify_password(password: String, hash: String) -> bool {
    password::verify_bounded(password, hash).await
}

/// A refused attempt: audited once per delay (the first refusal), counted otherwise, so
/// unauthenticated requests cannot grow the audit log without bound.
pub fn throttled_error(r: Refused) -> ApiError {
    ApiError::too_many(r.retry_after_secs)
}

/// The account's current token generation (see `Claims::gen`).
async fn user_gen(state: &AppState, user: Uuid) -> ApiResult<i64> {
    Ok(sqlx::query("SELECT token_gen FROM users WHERE id = $1")
        .bind(user.to_string())
        .fetch_one(&state.db.pool)
        .await?
        .try_get("token_gen")?)
}

/// `family` is `(id, its absolute end)` when refreshing; a new sign-in starts a family that
/// ends `refresh_family_max_secs` from now, whatever the rotations.
async fn issue_tokens(
    state: &AppState,
    user: UserView,
    family: Option<(String, i64)>,
) -> ApiResult<TokenResponse> {
    let now = now_ms();
    let generation = user_gen(state, user.id).await?;
    let access = state
        .tokens
        .issue(
            TokenKind::Access,
            user.id,
            user.role,
            user.point_id,
            generation,
            state.config.access_ttl_secs,
            now / 1000,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            ApiError::internal()
        })?;
    let refresh = opaque_secret("bbr_");
    let ttl_ms = i64::try_from(state.config.refresh_ttl_secs).unwrap_or(i64::MAX / 2_000) * 1000;
    let family_max_ms =
        i64::try_from(state.config.refresh_family_max_secs).unwrap_or(i64::MAX / 2_000) * 1000;
    let (family, family_end) = family.unwrap_or_else(|| (new_id().to_string(), now + family_max_ms));
    let expires_at = (now + ttl_ms).min(family_end);
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id().to_string())
    .bind(family)
    .bind(user.id.to_string())
    .bind(secret_hash(&refresh))
    .bind(now)
    .bind(expires_at)
    .execute(&state.db.pool)
    .await?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: state.config.access_ttl_secs,
        refresh_token: refresh,
        refresh_expires_in: u64::try_from((expires_at - now) / 1000).unwrap_or(0),
        user,
    })
}

/// Sign in with username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
              (status = 429, description = "too many failed attempts", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    SourceIp(ip): SourceIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let addr = ip.clone().unwrap_or_default();
    let username: String = req.username.trim().chars().take(64).collect::<String>().to_lowercase();
    let now = now_ms();
    let keys = login_keys(&username, &addr);
    // Checked and recorded as a failure in one step: concurrent guesses cannot all pass.
    let attempt = state.throttle.attempt(&keys, now).await;
    let audit = |outcome: &'static str, reason: &str, actor: Option<Uuid>| {
        let mut rec =
            AuditRecord::new("auth.login", "user").outcome(outcome).detail(json!({ "reason": reason }));
        rec.actor_id = actor;
        rec.actor_name = username.clone();
        rec.source_ip = ip.clone();
        rec.target_id = actor.map(|a| a.to_string());
        rec
    };
    if let Err(refused) = attempt {
        if refused.first {
            state.audit(audit("denied", "throttled", None)).await;
        }
        return Err(throttled_error(refused));
    }
    let row = if req.username.len() <= 64 && req.password.len() <= 1024 {
        sqlx::query("SELECT id, password_hash, active FROM users WHERE username = $1")
            .bind(&username)
            .fetch_optional(&state.db.pool)
            .await?
    } else {
        None
    };
    let (user_id, hash, active) = match row {
        Some(r) => (
            Some(parse_id(&r.try_get::<String, _>("id")?)?),
            r.try_get::<String, _>("password_hash")?,
            crate::db::get_flag(&r, "active")?,
        ),
        None => (None, password::dummy_hash().to_owned(), false),
    };
    let password_ok = verify_password(req.password.chars().take(1024).collect(), hash).await;
    let Some(user_id) = user_id.filter(|_| password_ok && active) else {
        let reason = if user_id.is_none() {
            "unknown_user"
        } else if !password_ok {
            "wrong_password"
        } else {
            "disabled"
        };
        state.audit(audit("failure", reason, user_id)).await;
        return Err(bad_credentials());
    };
    let pair = keys[0].0.clone();
    let account = keys[1].0.clone();
    state.throttle.success(&keys, &[&pair, &account]).await;
    let user = load_user_view(&state.db, user_id).await?.ok_or_else(bad_credentials)?;
    if user.role == shared::protocol::Role::Terminal {
        return Err(bad_credentials());
    }
    let tokens = issue_tokens(&state, user, None).await?;
    state.audit(audit("success", "password", Some(user_id))).await;
    Ok(Json(tokens))
}

async fn revoke_family(state: &AppState, family: &str) -> ApiResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(family)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Trade a refresh token for a new access token and a new refresh token. A refresh token
/// works once: presenting a spent one revokes every token descended from the same login.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    SourceIp(ip): SourceIp,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    if req.refresh_token.len() > 256 {
        return Err(ApiError::invalid_token());
    }
    let row = sqlx::query(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at, \
         (SELECT MIN(f.issued_at) FROM refresh_tokens f WHERE f.family_id = refresh_tokens.family_id) AS family_start \
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(secret_hash(&req.refresh_token))
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(ApiError::invalid_token)?;
    let id: String = row.try_get("id")?;
    let family: String = row.try_get("family_id")?;
    let user_id = parse_id(&row.try_get::<String, _>("user_id")?)?;
    let now = now_ms();
    let family_max_ms =
        i64::try_from(state.config.refresh_family_max_secs).unwrap_or(i64::MAX / 2_000) * 1000;
    let family_end =
        row.try_get::<Option<i64>, _>("family_start")?.unwrap_or(0).saturating_add(family_max_ms);
    if row.try_get::<Option<i64>, _>("revoked_at")?.is_some()
        || row.try_get::<i64, _>("expires_at")? < now
        || family_end <= now
    {
        return Err(ApiError::invalid_token());
    }
    let spent = row.try_get::<Option<i64>, _>("used_at")?.is_some()
        || sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(&id)
            .execute(&state.db.pool)
            .await?
            .rows_affected()
            != 1;
    if spent {
        revoke_family(&state, &family).await?;
        let mut rec = AuditRecord::new("auth.refresh_reuse", "user")
            .target(user_id)
            .outcome("denied")
            .detail(json!({ "family": family }));
        rec.source_ip = ip;
        rec.actor_id = Some(user_id);
        state.audit(rec).await;
        return Err(ApiError::invalid_token());
    }
    let user = load_user_view(&state.db, user_id).await?.ok_or_else(ApiError::invalid_token)?;
    if !user.active {
        revoke_family(&state, &family).await?;
        return Err(ApiError::invalid_token());
    }
    Ok(Json(issue_tokens(&state, user, Some((family, family_end))).await?))
}

/// Sign out: revokes the refresh token's whole family.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    SourceIp(ip): SourceIp,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    if req.refresh_token.len() > 256 {
        return Err(ApiError::invalid_token());
    }
    let row = sqlx::query("SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(secret_hash(&req.refresh_token))
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(ApiError::invalid_token)?;
    let family: String = row.try_get("family_id")?;
    let user_id: String = row.try_get("user_id")?;
    revoke_family(&state, &family).await?;
    let mut rec = AuditRecord::new("auth.logout", "user").target(&user_id);
    rec.actor_id = parse_id(&user_id).ok();
    rec.source_ip = ip;
    state.audit(rec).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, p: Principal) -> ApiResult<Json<UserView>> {
    if p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    load_user_view(&state.db, p.id).await?.map(Json).ok_or_else(ApiError::invalid_token)
}

/// Change one's own password; every other session of the account is signed out.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    if p.is_terminal() {
        return Err(ApiError::forbidden());
    }
    let keys = [(format!("password:{}", p.id), Limit::PASSWORD_CHANGE)];
    let attempt = state.throttle.attempt(&keys, now_ms()).await;
    if let Err(refused) = attempt {
        if refused.first {
            state
                .audit(AuditRecord::new("auth.password_change", "user").by(&p).target(p.id).outcome("denied"))
                .await;
        }
        return Err(throttled_error(refused));
    }
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(p.id.to_string())
        .fetch_one(&state.db.pool)
        .await?
        .try_get("password_hash")?;
    if req.current_password.len() > 1024 || !verify_password(req.current_password.clone(), hash).await {
        state
            .audit(AuditRecord::new("auth.password_change", "user").by(&p).target(p.id).outcome("failure"))
            .await;
        return Err(bad_credentials());
    }
    state.throttle.success(&keys, &[&keys[0].0]).await;
    password::check_policy(&req.new_password)?;
    set_password(
        &state,
        p.id,
        &req.new_password,
        AuditRecord::new("auth.password_change", "user").by(&p).target(p.id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores a new password hash, ends every session of the account (refresh tokens revoked,
/// earlier access tokens refused, open sockets closed) and writes `audit`, in one transaction.
pub async fn set_password(
    state: &AppState,
    user: Uuid,
    new_password: &str,
    audit: AuditRecord,
) -> ApiResult<()> {
    let hash = password::hash_bounded(new_password.to_owned()).await?;
    let now = now_ms();
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(hash)
    .bind(now)
    .bind(user.to_string())
    .execute(&mut *tx)
    .await?;
    end_sessions_in(&mut tx, user).await?;
    state.audit.append_in(&mut tx, audit).await?;
    tx.commit().await?;
    state.switchboard.kick(user, shared::protocol::ByeReason::Revoked).await;
    Ok(())
}

/// Inside a transaction: revokes every refresh token of the account and refuses every access
/// token issued so far. The caller kicks the account's sockets after the commit.
pub async fn end_sessions_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user: Uuid) -> ApiResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(user.to_string())
        .execute(&mut **tx)
        .await?;
    crate::auth::bump_user_gen(tx, user).await?;
    Ok(())
}

/// Public keys that verify this server's tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK set")))]
pub async fn jwks(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.tokens.keys.jwks())
}

/// Rotate the signing key; tokens signed by the old key stay valid until they expire.
#[utoipa::path(post, path = "/api/v1/admin/keys/rotate", tag = "auth",
    responses((status = 200, description = "new key id"), (status = 403, body = ErrorBody)))]
pub async fn rotate_keys(
    State(state): State<AppState>,
    p: Principal,
) -> ApiResult<axum::Json<serde_json::Value>> {
    p.require(&[shared::protocol::Role::Admin])?;
    let kid = state.tokens.keys.rotate(now_ms()).await.map_err(|e| {
        tracing::error!(error = %e, "key rotation failed");
        ApiError::internal()
    })?;
    notify_keys_changed(&state).await;
    state.audit(AuditRecord::new("auth.key_rotate", "signing_key").by(&p).target(&kid)).await;
    Ok(axum::Json(json!({ "kid": kid })))
}

/// Tells the other nodes to reload the key ring now (they would within
/// [`crate::auth::keys::REFRESH_INTERVAL`] anyway).
async fn notify_keys_changed(state: &AppState) {
    if let Some(c) = &state.cluster
        && let Err(e) = c.publish(crate::cluster::Notice::KeysChanged).await
    {
        tracing::warn!(error = %e, "other nodes not told of the key change (they reload within seconds)");
    }
}

/// Retire a signing key at once (admin), e.g. after a compromise: every token it signed is
/// refused from now on and it leaves the JWKS. Retiring the active key makes a new one first.
#[utoipa::path(post, path = "/api/v1/admin/keys/{kid}/retire", tag = "auth",
    params(("kid" = String, Path, description = "key id from the JWKS", max_length = 64)),
    responses((status = 200, description = "active key id afterwards"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retire_key(
    State(state): State<AppState>,
    p: Principal,
    Path(kid): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    p.require(&[shared::protocol::Role::Admin])?;
    if kid.len() > 64 || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::not_found("密钥"));
    }
    let active = state
        .tokens
        .keys
        .retire_now(&kid, now_ms())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key retirement failed");
            ApiError::internal()
        })?
        .ok_or_else(|| ApiError::not_found("密钥"))?;
    notify_keys_changed(&state).await;
    state
        .audit(
            AuditRecord::new("auth.key_retire", "signing_key")
                .by(&p)
                .target(&kid)
                .detail(json!({ "active": active })),
        )
        .await;
    Ok(axum::Json(json!({ "kid": active })))
}
