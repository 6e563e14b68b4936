//! Argon2id password hashing (RustCrypto `argon2`, OWASP default parameters: 19 MiB per
//! hash). At most [`MAX_CONCURRENT`] hashes run at once, off the async runtime, so a burst of
//! sign-ins costs bounded memory; the others wait their turn.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{ApiError, ApiResult};

pub fn hash(password: &str) -> ApiResult<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        ApiError::internal()
    })
}

pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a random password, verified against when the username does not exist so that
/// timing does not reveal which usernames are real.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("bangban-no-such-user").unwrap_or_default())
}

/// Password policy: 8–128 characters, not all of one character class.
pub fn check_policy(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) {
        return Err(ApiError::validation("密码长度须为 8 至 128 个字符 (password must be 8–128 characters)"));
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|b| **b).count() < 2 {
        return Err(ApiError::validation(
            "密码须包含至少两类字符 (password needs at least two kinds of characters)",
        ));
    }
    Ok(())
}

/// Argon2 computations allowed at once (each takes 19 MiB for tens of milliseconds).
pub const MAX_CONCURRENT: usize = 4;

fn permits() -> &'static tokio::sync::Semaphore {
    static SEM: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT);
    &SEM
}

/// [`verify`] on the blocking pool, at most [`MAX_CONCURRENT`] at once.
pub async fn verify_bounded(password: String, stored: String) -> bool {
    let Ok(_permit) = permits().acquire().await else { return false };
    tokio::task::spawn_blocking(move || verify(&password, &stored)).await.unwrap_or(false)
}

/// [`hash`] on the blocking pool, at most [`MAX_CONCURRENT`] at once.
pub async fn hash_bounded(password: String) -> ApiResult<String> {
    let _permit = permits().acquire().await.map_err(|_| ApiError::internal())?;
    tokio::task::spawn_blocking(move || hash(&password)).await.map_err(|_| ApiError::internal())?
}
