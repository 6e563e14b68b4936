//! The REST calls the terminal makes with its device token: print jobs and tus uploads. A 401
//! drops the cached token and the call is retried once with a fresh one.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use shared::api::{ClaimPrintJobRequest, PrintJobState, PrintJobStateRequest, PrintJobView};
use uuid::Uuid;

use crate::auth::DeviceAuth;

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Network trouble, timeouts, 5xx: try again later.
    #[error("暂时无法连接服务器 (server unreachable): {0}")]
    Transient(String),
    /// The server refused (4xx): retrying the same request is useless.
    #[error("服务器拒绝 (refused {status}): {body}")]
    Refused { status: u16, body: String },
}

impl RestError {
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Refused { status, .. } => Some(*status),
            RestError::Transient(_) => None,
        }
    }

    /// The server's own message of a refusal (`{"error":{"message"}}`), for the kiosk page.
    pub fn server_message(&self) -> Option<String> {
        match self {
            RestError::Refused { body, .. } => serde_json::from_str::<serde_json::Value>(body)
                .ok()?
                .pointer("/error/message")?
                .as_str()
                .map(str::to_owned),
            RestError::Transient(_) => None,
        }
    }
}

impl From<reqwest::Error> for RestError {
    fn from(e: reqwest::Error) -> Self {
        RestError::Transient(e.to_string())
    }
}

/// Ends a person's login at the server (`POST /api/v1/auth/logout` with their refresh token);
/// a failure is only logged (the refresh token then expires by itself).
pub async fn logout(http: &reqwest::Client, base: &str, refresh_token: &str) {
    let r = http
        .post(format!("{}/api/v1/auth/logout", base.trim_end_matches('/')))
        .json(&serde_json::json!({ "refresh_token": refresh_token }))
        .send()
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "logout did not reach the server");
    }
}

/// The server's REST API as this terminal.
#[derive(Clone)]
pub struct ServerApi {
    http: reqwest::Client,
    base: String,
    auth: Arc<DeviceAuth>,
}

impl ServerApi {
    pub fn new(base: &str, auth: Arc<DeviceAuth>) -> Result<Self, RestError> {
        let http =
            crate::tls::http(Duration::from_secs(120)).connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), auth })
    }

    /// `path` absolute (`/api/v1/…`) or a full URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends the request built by `build` with the device token; on 401 once more with a fresh
    /// token. Any status is returned (the caller decides); transport errors are `Transient`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RestError> {
        let url = self.url(path);
        for attempt in 0..2 {
            let token = self.auth.token().await.map_err(|e| match e {
                crate::auth::AuthError::Refused { status, body } if (400..500).contains(&status) => {
                    RestError::Refused { status, body }
                }
                e => RestError::Transient(e.to_string()),
            })?;
            let resp = build(self.http.request(method.clone(), &url).bearer_auth(token)).send().await?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.auth.invalidate().await;
                continue;
            }
            return Ok(resp);
        }
        Err(RestError::Transient("unauthorized twice".into()))
    }

    /// `send`, then any non-2xx becomes an error (5xx and 429 transient, other 4xx refused).
    pub async fn send_ok(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RestError> {
        check(self.send(method, path, build).await?).await
    }

    /// Renews a staff member's login: their refresh token for a new access and refresh token
    /// (`POST /api/v1/auth/refresh`; the refresh token rotates).
    pub async fn renew_login(&self, refresh_token: &str) -> Result<shared::api::TokenResponse, RestError> {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/refresh", self.base.trim_end_matches('/')))
            .json(&shared::api::RefreshRequest { refresh_token: refresh_token.to_owned() })
            .send()
            .await?;
        Ok(check(r).await?.json().await?)
    }

    /// Ends a staff member's login (their refresh-token family) when they sign out.
    pub async fn logout(&self, refresh_token: &str) {
        logout(&self.http, &self.base, refresh_token).await;
    }

    /// Records the resident's consented phone number for this terminal's ticket
    /// (`PUT /api/v1/terminals/me/tickets/{id}/contact`; the staff member's token in the body).
    pub async fn record_contact(
        &self,
        ticket: Uuid,
        body: &shared::cases::KioskContactRequest,
    ) -> Result<shared::cases::KioskContactView, RestError> {
        let path = format!("/api/v1/terminals/me/tickets/{ticket}/contact");
        let r = self.send_ok(Method::PUT, &path, |b| b.json(body)).await?;
        Ok(r.json().await?)
    }

    /// Books a slot (预约) at this terminal's point; the staff member's token is in the body.
    pub async fn book_appointment(
        &self,
        body: &shared::cases::BookAppointmentRequest,
    ) -> Result<shared::cases::AppointmentView, RestError> {
        let r = self.send_ok(Method::POST, "/api/v1/terminals/me/appointments", |b| b.json(body)).await?;
        Ok(r.json().await?)
    }

    pub async fn pending_print_jobs(&self) -> Result<Vec<PrintJobView>, RestError> {
        let r = self.send_ok(Method::GET, "/api/v1/terminals/me/print-jobs?state=pending", |b| b).await?;
        Ok(r.json().await?)
    }

    pub async fn claim_print_job(&self, id: Uuid, claim_token: &str) -> Result<PrintJobView, RestError> {
        let body = ClaimPrintJobRequest { claim_token: claim_token.to_owned() };
        let r =
            self.send_ok(Method::POST, &format!("/api/v1/print-jobs/{id}/claim"), |b| b.json(&body)).await?;
        Ok(r.json().await?)
    }

    /// The document and the SHA-256 the server states for it (`Bangban-Sha256`).
    pub async fn print_document(&self, id: Uuid) -> Result<(Vec<u8>, Option<String>), RestError> {
        let r = self.send_ok(Method::GET, &format!("/api/v1/print-jobs/{id}/document"), |b| b).await?;
        let sha =
            r.headers().get("bangban-sha256").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        Ok((r.bytes().await?.to_vec(), sha))
    }

    pub async fn report_print_state(
        &self,
        id: Uuid,
        state: PrintJobState,
        reason: Option<String>,
    ) -> Result<PrintJobView, RestError> {
        let body = PrintJobStateRequest { state, reason };
        let r =
            self.send_ok(Method::POST, &format!("/api/v1/print-jobs/{id}/state"), |b| b.json(&body)).await?;
        Ok(r.json().await?)
    }
}

/// Maps a non-2xx answer to an error.
pub async fn check(resp: Response) -> Result<Response, RestError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(RestError::Transient(format!("{status}: {body}")))
    } else {
        Err(RestError::Refused { status: status.as_u16(), body })
    }
}
