//! JWTs per RFC 8725: EdDSA only, explicit `typ`, audience and issuer checked, and distinct
//! kinds that cannot stand in for one another. Access tokens (`typ` `at+jwt`, audience
//! `bangban-api`) are for people; device tokens (`typ` `bangban-device+jwt`, audience
//! `bangban-device`) for terminals. Refresh tokens and device credentials are opaque random
//! strings stored only as SHA-256 hashes, so no JWT can be used as one or vice versa.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::protocol::Role;
use uuid::Uuid;

use super::keys::KeyRing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Device,
}

impl TokenKind {
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Device => "bangban-device+jwt",
        }
    }
    pub fn audience(self) -> &'static str {
        match self {
            TokenKind::Access => "bangban-api",
            TokenKind::Device => "bangban-device",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User ID or terminal ID.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub role: Role,
    /// The staff member's or terminal's service point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Uuid>,
    /// The account's or terminal's token generation when this token was issued: a password
    /// change, role change, disable, revocation or new enrolment code bumps the stored
    /// generation, and every token carrying an older one is refused.
    #[serde(default)]
    #[serde(rename = "gen")]
    pub generation: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("wrong token type")]
    WrongType,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs and verifies tokens for one issuer.
#[derive(Debug, Clone)]
pub struct TokenService {
    pub keys: KeyRing,
    pub issuer: String,
}

/// Longest accepted token in bytes: anything larger is refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

impl TokenService {
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &self,
        kind: TokenKind,
        sub: Uuid,
        role: Role,
        point: Option<Uuid>,
        generation: i64,
        ttl_secs: u64,
        now_secs: i64,
    ) -> Result<String, TokenError> {
        let (kid, key) = self.keys.signing();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(kind.typ().into());
        header.kid = Some(kid);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: kind.audience().into(),
            sub,
            iat: now_secs,
            exp: now_secs + i64::try_from(ttl_secs).unwrap_or(900),
            jti: Uuid::new_v4(),
            role,
            point,
            generation,
        };
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verifies a token of the given kind: algorithm pinned to EdDSA, `typ`, `kid`, `aud`,
    /// `iss`, `exp` all checked.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES || token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("algorithm not allowed".into()));
        }
        if header.typ.as_deref() != Some(kind.typ()) {
            return Err(TokenError::WrongType);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.decoding(&kid).ok_or(TokenError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.algorithms = vec![Algorithm::EdDSA];
        v.set_audience(&[kind.audience()]);
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        v.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// A fresh opaque secret with a recognisable prefix (`bbr_` refresh, `bbd_` device credential).
pub fn opaque_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// How opaque secrets are stored: hex SHA-256 (they carry 256 bits of entropy, so a fast hash
/// is enough).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
