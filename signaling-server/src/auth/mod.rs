//! Authentication and authorisation: signing keys ([`keys`]), tokens ([`tokens`]), passwords
//! ([`password`]), login throttling ([`throttle`]) and the [`Principal`] extractor that every
//! protected handler takes.

pub mod keys;
pub mod password;
pub mod throttle;
pub mod tokens;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
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

/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
/// untrusted address that the proxies appended to `Forwarded` (preferred) or
/// `X-Forwarded-For`. `None` when the server was started without connect info.
pub fn source_ip(parts: &Parts, trusted: &[IpAddr]) -> Option<String> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(client_addr(peer, &parts.headers, trusted).to_string())
}

/// Most proxy hops looked at; header values beyond this are ignored.
const MAX_HOPS: usize = 16;

/// See [`source_ip`]. A hop that does not parse as an address stops the walk at the last
/// trusted hop, so a forged or obfuscated value never becomes the client address.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    let hops: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|el| {
                el.split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect()
    } else {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| parse_node(h.trim()))
            .collect()
    };
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match hop {
            Some(ip) => {
                client = *ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or `2001:db8::1`.
fn parse_node(v: &str) -> Option<IpAddr> {
    if v.len() > 64 {
        return None;
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse().ok().or_else(|| {
        v.rsplit_once(':').and_then(|(h, _)| h.parse::<std::net::Ipv4Addr>().ok()).map(IpAddr::V4)
    })
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
        let source_ip = source_ip(parts, &state.config.trusted_proxies);
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
            let row = sqlx::query(
                "SELECT display_name, role, point_id, active, token_gen FROM users WHERE id = $1",
            )
            .bind(&id)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or_else(ApiError::invalid_token)?;
            if !crate::db::get_flag(&row, "active")?
                || row.try_get::<i64, _>("token_gen")? != claims.generation
            {
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
            let row = sqlx::query("SELECT name, point_id, status, token_gen FROM terminals WHERE id = $1")
                .bind(&id)
                .fetch_optional(&state.db.pool)
                .await?
                .ok_or_else(ApiError::invalid_token)?;
            if row.try_get::<String, _>("status")? != "active"
                || row.try_get::<i64, _>("token_gen")? != claims.generation
            {
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

impl FromRequestParts<AppState> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(SourceIp(source_ip(parts, &state.config.trusted_proxies)))
    }
}

/// Bumps an account's token generation: every access token issued before is refused from now
/// on. Runs inside the caller's transaction.
pub async fn bump_user_gen(conn: &mut sqlx::AnyConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET token_gen = token_gen + 1 WHERE id = $1")
        .bind(user.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Bumps a terminal's token generation (see [`bump_user_gen`]).
pub async fn bump_terminal_gen(conn: &mut sqlx::AnyConnection, terminal: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE terminals SET token_gen = token_gen + 1 WHERE id = $1")
        .bind(terminal.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "198.51.100.9".parse().expect("ip");
        let xff = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.5")]);
        assert_eq!(client_addr(other, &xff, &[proxy]), other, "untrusted peer: header ignored");
        assert_eq!(client_addr(proxy, &xff, &[proxy]).to_string(), "203.0.113.5", "rightmost untrusted hop");
        let chain = headers(&[("x-forwarded-for", "203.0.113.5, 10.0.0.2")]);
        let two: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(client_addr(proxy, &chain, &[proxy, two]).to_string(), "203.0.113.5");
        let fwd = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(client_addr(proxy, &fwd, &[proxy]).to_string(), "2001:db8:cafe::17");
        let port = headers(&[("forwarded", "For=192.0.2.61:8080")]);
        assert_eq!(client_addr(proxy, &port, &[proxy]).to_string(), "192.0.2.61");
        for junk in ["unknown", "_hidden", "", "1.2.3.4.5", &"9".repeat(5000)] {
            let h = headers(&[("x-forwarded-for", junk)]);
            assert_eq!(client_addr(proxy, &h, &[proxy]), proxy, "{junk:.20}");
        }
    }
}
