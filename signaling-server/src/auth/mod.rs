//! Authentication and authorisation: signing keys ([`keys`]), tokens ([`tokens`]), passwords
//! ([`password`]), login throttling ([`throttle`]) and the [`Principal`] extractor that every
//! protected handler takes.

pub mod keys;
pub mod password;
pub mod throttle;
pub mod tokens;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use shared::protocol::Role;
use sqlx::Row;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use tokens::TokenKind;

/// Who is calling: a signed-in person (access token) or a terminal (device token). Role and
/// status are read fresh from the database on every request, so disabling an account or
/// revoking a terminal takes effect at once.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: Uuid,
    pub role: Role,
    pub point_id: Option<Uuid>,
    pub name: String,
    pub kind: TokenKind,
    pub source_ip: Option<String>,
}

impl Principal {
    /// Refuses with 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) { Ok(()) } else { Err(ApiError::forbidden()) }
    }

    pub fn is_terminal(&self) -> bool {
        self.kind == TokenKind::Device
    }
}

/// The peer address of the request, when the server was started with connect info.
pub fn source_ip(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0.ip().to_string())
}

/// The bearer token of a request, size-checked.
pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(ApiError::unauthenticated)?;
    let value = value.to_str().map_err(|_| ApiError::invalid_token())?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(ApiError::invalid_token)?;
    if token.is_empty() || token.len() > tokens::MAX_TOKEN_BYTES {
        return Err(ApiError::invalid_token());
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let kind = match jsonwebtoken::decode_header(token).ok().and_then(|h| h.typ) {
            Some(t) if t == TokenKind::Device.typ() => TokenKind::Device,
            Some(t) if t == TokenKind::Access.typ() => TokenKind::Access,
            _ => return Err(ApiError::invalid_token()),
        };
        let claims = state.tokens.verify(token, kind).map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            ApiError::invalid_token()
        })?;
        let source_ip = source_ip(parts);
        authenticate_claims(state, &claims, kind, source_ip).await
    }
}

/// Checks verified claims against the database (account active, terminal not revoked).
pub async fn authenticate_claims(
    state: &AppState,
    claims: &tokens::Claims,
    kind: TokenKind,
    source_ip: Option<String>,
) -> Result<Principal, ApiError> {
    let id = claims.sub.to_string();
    match kind {
        TokenKind::Access => {
            let row = sqlx::query("SELECT display_name, role, point_id, active FROM users WHERE id = $1")
                .bind(&id)
                .fetch_optional(&state.db.pool)
                .await?
                .ok_or_else(ApiError::invalid_token)?;
            if !crate::db::get_flag(&row, "active")? {
                return Err(ApiError::invalid_token());
            }
            let role = crate::api::accounts::parse_role(&row.try_get::<String, _>("role")?)?;
            if role == Role::Terminal {
                return Err(ApiError::invalid_token());
            }
            let point_id =
                row.try_get::<Option<String>, _>("point_id")?.map(|p| crate::db::parse_id(&p)).transpose()?;
            Ok(Principal {
                id: claims.sub,
                role,
                point_id,
                name: row.try_get("display_name")?,
                kind,
                source_ip,
            })
        }
        TokenKind::Device => {
            let row = sqlx::query("SELECT name, point_id, status FROM terminals WHERE id = $1")
                .bind(&id)
                .fetch_optional(&state.db.pool)
                .await?
                .ok_or_else(ApiError::invalid_token)?;
            if row.try_get::<String, _>("status")? != "active" {
                return Err(ApiError::invalid_token());
            }
            let point: String = row.try_get("point_id")?;
            Ok(Principal {
                id: claims.sub,
                role: Role::Terminal,
                point_id: Some(crate::db::parse_id(&point)?),
                name: row.try_get("name")?,
                kind,
                source_ip,
            })
        }
    }
}

/// Optional caller address for handlers that are not authenticated (login, enrollment).
#[derive(Debug, Clone)]
pub struct SourceIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceIp(source_ip(parts)))
    }
}
