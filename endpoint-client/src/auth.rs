//! Enrollment and device tokens. `enroll` trades the one-time code for the long-lived device
//! credential (`POST /api/v1/terminals/enroll`) and stores it in a file only the service user
//! can read (0600); [`DeviceAuth`] trades the credential for short device JWTs
//! (`POST /api/v1/terminals/token`) and refreshes them before they expire. Once the server
//! refuses the credential for good (revoked, or a new enrolment code issued) the terminal asks
//! no more: every later call returns that refusal until it is enrolled again.

use std::path::Path;
use std::time::{Duration, Instant};

use shared::api::{DeviceTokenRequest, DeviceTokenResponse, EnrollRequest, EnrollResponse};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("server unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server refused ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("credential file {0}: {1}")]
    File(String, std::io::Error),
    #[error("credential file {0} is empty or malformed (enroll again)")]
    BadCredential(String),
}

impl AuthError {
    /// The server rejected the credential itself (revoked or re-enrolled): retrying is useless.
    pub fn is_permanent(&self) -> bool {
        matches!(self, AuthError::Refused { status: 401 | 403, .. } | AuthError::BadCredential(_))
    }
}

async fn post_json<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: &Req,
) -> Result<Resp, AuthError> {
    let resp = client.post(url).json(body).send().await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default().chars().take(300).collect();
        return Err(AuthError::Refused { status: status.as_u16(), body });
    }
    Ok(resp.json().await?)
}

/// Trades `code` for the device credential and writes it to `credential_file` (0600, replaced
/// atomically).
pub async fn enroll(
    http_base: &str,
    code: &str,
    credential_file: &Path,
) -> Result<EnrollResponse, AuthError> {
    let client = crate::tls::http(Duration::from_secs(20)).build()?;
    let resp: EnrollResponse = post_json(
        &client,
        &format!("{http_base}/api/v1/terminals/enroll"),
        &EnrollRequest { code: code.to_owned() },
    )
    .await?;
    write_credential(credential_file, &resp.credential)?;
    Ok(resp)
}

/// Writes the credential with mode 0600 (created so, never world-readable for an instant).
pub fn write_credential(path: &Path, credential: &str) -> Result<(), AuthError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e| AuthError::File(path.display().to_string(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(credential.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

pub fn read_credential(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::File(path.display().to_string(), e))?;
    let cred = text.trim();
    if cred.is_empty() || cred.contains(char::is_whitespace) {
        return Err(AuthError::BadCredential(path.display().to_string()));
    }
    Ok(cred.to_owned())
}

/// When to refresh a token that lives `ttl`: at 3/4 of its life, at least 10 s before expiry.
pub fn refresh_after(ttl: Duration) -> Duration {
    let early = (ttl / 4).max(Duration::from_secs(10));
    ttl.saturating_sub(early)
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// Device token source: cached, refreshed before expiry.
pub struct DeviceAuth {
    client: reqwest::Client,
    url: String,
    credential: String,
    cached: Mutex<Option<Cached>>,
    /// The permanent refusal, once seen (`status`, body).
    refused: std::sync::OnceLock<(u16, String)>,
    /// The newest token fetched, for an open connection to `renew` with.
    latest: tokio::sync::watch::Sender<Option<String>>,
}

impl DeviceAuth {
    pub fn new(http_base: &str, credential: String) -> Result<Self, AuthError> {
        let client = crate::tls::http(Duration::from_secs(15)).build()?;
        Ok(Self {
            client,
            url: format!("{http_base}/api/v1/terminals/token"),
            credential,
            cached: Mutex::new(None),
            refused: std::sync::OnceLock::new(),
            latest: tokio::sync::watch::Sender::new(None),
        })
    }

    /// A device JWT valid for a while yet.
    pub async fn token(&self) -> Result<String, AuthError> {
        if let Some((status, body)) = self.refused.get() {
            return Err(AuthError::Refused { status: *status, body: body.clone() });
        }
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let resp: DeviceTokenResponse = match post_json(
            &self.client,
            &self.url,
            &DeviceTokenRequest { credential: self.credential.clone() },
        )
        .await
        {
            Ok(r) => r,
            Err(AuthError::Refused { status, body }) if matches!(status, 401 | 403) => {
                tracing::error!(status, "device credential refused for good: enroll this terminal again");
                let _ = self.refused.set((status, body.clone()));
                return Err(AuthError::Refused { status, body });
            }
            Err(e) => return Err(e),
        };
        let refresh_at = Instant::now() + refresh_after(Duration::from_secs(resp.expires_in));
        *cached = Some(Cached { token: resp.access_token.clone(), refresh_at });
        self.latest.send_replace(Some(resp.access_token.clone()));
        Ok(resp.access_token)
    }

    /// Every newly fetched token (the refresh loop fetches one at 3/4 of the old one's life).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.latest.subscribe()
    }

    /// Forget the cached token (after `bye auth_expired` or an HTTP 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The credential was refused for good (no more requests are made).
    pub fn is_refused(&self) -> bool {
        self.refused.get().is_some()
    }

    /// Keeps a fresh token cached, so that a reconnect never waits for one. Returns after a
    /// permanent refusal.
    pub async fn refresh_loop(&self) {
        loop {
            let wait = match self.token().await {
                Err(e) if e.is_permanent() => return,
                Ok(_) => self.cached.lock().await.as_ref().map_or(Duration::from_secs(30), |c| {
                    c.refresh_at.saturating_duration_since(Instant::now())
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "device token refresh failed");
                    Duration::from_secs(15)
                }
            };
            tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_file_is_owner_only_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/credential");
        write_credential(&path, "bbd_secret").expect("write");
        assert_eq!(read_credential(&path).expect("read"), "bbd_secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        write_credential(&path, "bbd_other").expect("replace");
        assert_eq!(read_credential(&path).expect("read"), "bbd_other");
    }

    /// A revoked terminal asks once, then never again (a counting HTTP server stands in for
    /// the signaling server: 401 to every token request).
    #[tokio::test]
    async fn stops_asking_after_a_permanent_refusal() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/api/v1/terminals/token",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { (axum::http::StatusCode::UNAUTHORIZED, "{\"error\":{\"code\":\"invalid_token\"}}") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let auth = DeviceAuth::new(&format!("http://{addr}"), "bbd_revoked".into()).expect("client");
        for _ in 0..5 {
            let e = auth.token().await.expect_err("refused");
            assert!(e.is_permanent(), "{e}");
        }
        auth.refresh_loop().await; // returns at once
        assert!(auth.is_refused());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "asked the server once");
    }

    #[test]
    fn refreshes_well_before_expiry() {
        assert_eq!(refresh_after(Duration::from_secs(600)), Duration::from_secs(450));
        assert_eq!(refresh_after(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(refresh_after(Duration::from_secs(5)), Duration::ZERO);
    }
}
