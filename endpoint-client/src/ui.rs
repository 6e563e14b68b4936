//! The kiosk UI served on loopback: one static page (Simplified Chinese, large type) and a small
//! JSON API it calls. The API is also what tests and diagnosis drive.
//!
//! - `GET /` the page; `GET /api/status` the [`Status`](crate::view::Status);
//!   `GET /api/events` the same status pushed as server-sent events whenever it changes (the
//!   page's only channel: an idle kiosk makes no requests);
//! - `GET /api/items` the remotely available service items (from the server, device token);
//! - `GET /api/availability` whether the point is open now (and when it opens next) and who
//!   serves each line, with the wait of a ticket taken now (from the server, device token);
//! - `POST /api/ticket {item_id, priority?, resident?}`, `POST /api/cancel`,
//!   `POST /api/rate {level, comment?}`, `POST /api/done`;
//! - `POST /api/scan {session_id?, slot_id?, pages?}` scans for the current call (the kiosk's
//!   scan button, or the operator's request relayed by the UI); progress in the status
//!   (`scanner`, `uploads`).
//! - `POST /api/mic {muted}`, `POST /api/volume {percent}` the resident's in-call controls;
//! - `POST /api/staff/login {username, password}`, `POST /api/staff/logout` committee staff;
//! - `POST /api/contact {phone, consent_text, consent}` signed-in staff record the resident's
//!   phone number for the current ticket after the resident confirmed the consent text shown
//!   (the page's text must be [`shared::cases::CONSENT_TEXT_ZH`]); answered once the server
//!   stored it.
//!
//! - `GET /api/appointment-slots?item_id=` an item's slots for the coming week (预约, device
//!   token); `POST /api/appointment {item_id, slot_start, name, phone, consent_text, consent}`
//!   signed-in staff book one after the resident confirmed the consent text
//!   ([`shared::cases::APPOINTMENT_CONSENT_ZH`]), answered with the appointment (check-in code,
//!   time) once the server stored it; `POST /api/appointment/find {code}` finds today's
//!   appointment by its six-digit code, then `POST /api/ticket` with its `appointment_id`
//!   checks it in.
//!
//! Every request must name the kiosk itself: `Host` a loopback name with the bound port
//! (`127.0.0.1`, `localhost`, `[::1]`; a DNS-rebinding page's host name is refused) and, when a
//! browser sends one, `Origin` the kiosk page's own origin (another page in the kiosk browser
//! cannot post a form to end a call, sign staff out or read the status). [`request_allowed`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::protocol::{Priority, RatingLevel, ResidentDetails};
use shared::validate::Comment;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::auth::DeviceAuth;
use crate::view::{Status, UiCommand, UiRequest};

const PAGE: &str = include_str!("../static/index.html");

/// Largest request body the kiosk API takes (its bodies are a few hundred bytes).
const MAX_BODY: usize = 16 * 1024;

#[derive(Clone)]
struct Ui {
    tx: mpsc::Sender<UiRequest>,
    status: watch::Receiver<Status>,
    auth: Arc<DeviceAuth>,
    http: reqwest::Client,
    server: String,
}

/// Binds `listen` (loopback) and serves in the background; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    tx: mpsc::Sender<UiRequest>,
    status: watch::Receiver<Status>,
    auth: Arc<DeviceAuth>,
    server: String,
) -> anyhow::Result<SocketAddr> {
    if !listen.ip().is_loopback() {
        anyhow::bail!("the kiosk UI listens on loopback only, not {listen}");
    }
    let ui = Ui { tx, status, auth, http: crate::tls::http(Duration::from_secs(30)).build()?, server };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let port = addr.port();
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/status", get(status_handler))
        .route("/api/events", get(events))
        .route("/api/items", get(items))
        .route("/api/availability", get(availability))
        .route("/api/ticket", post(ticket))
        .route("/api/appointment-slots", get(appointment_slots))
        .route("/api/appointment", post(book_appointment))
        .route("/api/appointment/find", post(find_appointment))
        .route("/api/cancel", post(|s: State<Ui>| command(s, UiCommand::Cancel)))
        .route("/api/done", post(|s: State<Ui>| command(s, UiCommand::Done)))
        .route("/api/rate", post(rate))
        .route("/api/scan", post(scan))
        .route("/api/staff/login", post(staff_login))
        .route("/api/contact", post(contact))
        .route("/api/mic", post(mic))
        .route("/api/volume", post(volume))
        .route("/api/staff/logout", post(|s: State<Ui>| command(s, UiCommand::StaffSignedOut)))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                match request_allowed(req.headers(), port) {
                    Ok(()) => next.run(req).await,
                    Err(why) => {
                        tracing::warn!(why, "kiosk API request refused");
                        error(StatusCode::FORBIDDEN, format!("拒绝访问 (forbidden: {why})"))
                    }
                }
            },
        ))
        .with_state(ui);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "kiosk UI server failed");
        }
    });
    Ok(addr)
}

async fn status_handler(State(ui): State<Ui>) -> Json<Status> {
    Json(ui.status.borrow().clone())
}

/// Whether `host` (a `Host` header or an origin's authority) names this kiosk: a loopback
/// name and the port it listens on.
fn is_kiosk_authority(host: &str, port: u16) -> bool {
    let (name, p) = match host.rsplit_once(':') {
        Some((n, p)) if !p.contains(']') => (n, p.parse::<u16>().ok()),
        _ => (host, None),
    };
    let loopback = match name.to_ascii_lowercase().as_str() {
        "localhost" | "[::1]" => true,
        n => n.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()),
    };
    // Browsers omit the default port; the kiosk never listens on 80.
    loopback && p == Some(port)
}

/// The kiosk API answers only its own page (and local tools): `Host` must be a loopback name
/// with the bound port (DNS rebinding), `Origin`, when present, the page's own origin
/// (cross-site form posts and fetches from another page), and `Sec-Fetch-Site`, when present,
/// not `cross-site`/`same-site`.
pub fn request_allowed(headers: &axum::http::HeaderMap, port: u16) -> Result<(), &'static str> {
    use axum::http::header;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).ok_or("no Host")?;
    if !is_kiosk_authority(host, port) {
        return Err("Host is not this kiosk");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| "bad Origin")?;
        let ok = origin.strip_prefix("http://").is_some_and(|a| is_kiosk_authority(a, port));
        if !ok {
            return Err("Origin is not the kiosk page");
        }
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return Err("not the kiosk page (Sec-Fetch-Site)");
    }
    Ok(())
}

/// The status as server-sent events: the current one at once, then each change (at most five a
/// second; an unchanged status is not sent again).
async fn events(
    State(ui): State<Ui>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let mut rx = ui.status.clone();
    rx.mark_changed();
    let stream =
        futures_util::stream::unfold((rx, String::new(), true), |(mut rx, last, first)| async move {
            loop {
                if !first {
                    // Coalesce bursts (frame counters move many times a second during a call).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if rx.changed().await.is_err() {
                    return None;
                }
                let json = serde_json::to_string(&*rx.borrow_and_update()).unwrap_or_default();
                if json != last {
                    let ev = Event::default().event("status").data(json.clone());
                    return Some((Ok(ev), (rx, json, false)));
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A body the API cannot take, with the status axum chose (413 too large, 400 not JSON, 415
/// not `application/json`, 422 wrong fields) and a Chinese message.
fn rejected(e: &axum::extract::rejection::JsonRejection) -> Response {
    let status = e.status();
    let msg = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "请求过大 (request too large)".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "请求格式有误 (expected application/json)".to_owned(),
        StatusCode::BAD_REQUEST => "请求不是有效的 JSON (invalid JSON)".to_owned(),
        _ => format!("信息有误：{}", e.body_text()),
    };
    error(status, msg)
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

async fn command(State(ui): State<Ui>, cmd: UiCommand) -> Response {
    let (reply, rx) = oneshot::channel();
    if ui.tx.send(UiRequest { cmd, reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "服务正在停止");
    }
    match rx.await {
        Ok(Ok(())) => Json(serde_json::json!({ "ok": true })).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "服务正在停止"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    item_id: Uuid,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    resident: Option<ResidentDetails>,
    /// The resident's answer to 本次通话录音录像 (absent: not agreed).
    #[serde(default)]
    recording_consent: bool,
    /// Check in this appointment (found by `/api/appointment/find`).
    #[serde(default)]
    appointment_id: Option<Uuid>,
}

async fn ticket(
    s: State<Ui>,
    body: Result<Json<TicketBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) => {
            command(
                s,
                UiCommand::TakeTicket {
                    item_id: b.item_id,
                    priority: b.priority,
                    resident: b.resident,
                    recording_consent: b.recording_consent,
                    appointment_id: b.appointment_id,
                },
            )
            .await
        }
        Err(e) => rejected(&e),
    }
}

/// The Chinese part of a server message (`中文 (english)`), for the resident.
fn zh(msg: &str) -> String {
    msg.split(" (").next().unwrap_or(msg).to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotsQuery {
    item_id: Uuid,
}

/// An item's slots for the coming week at this point (the server's
/// `GET /api/v1/terminals/me/appointment-slots`).
async fn appointment_slots(
    State(ui): State<Ui>,
    q: Result<axum::extract::Query<SlotsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match q {
        Ok(q) => {
            server_get(&ui, &format!("/api/v1/terminals/me/appointment-slots?item_id={}&days=7", q.item_id))
                .await
        }
        Err(_) => error(StatusCode::UNPROCESSABLE_ENTITY, "请先选择事项"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookBody {
    item_id: Uuid,
    slot_start: i64,
    name: String,
    phone: String,
    consent_text: String,
    consent: bool,
}

/// Signed-in staff book a slot for the resident; the appointment comes back with its check-in
/// code once the server stored it (the server checks the slot, the number and the staff
/// sign-in; its message is shown).
async fn book_appointment(
    State(ui): State<Ui>,
    body: Result<Json<BookBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return rejected(&e),
    };
    if !b.consent {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请居民阅读后确认同意");
    }
    if b.consent_text != shared::cases::APPOINTMENT_CONSENT_ZH {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "同意书内容有误，请刷新页面");
    }
    let Ok(name) = shared::validate::PersonName::try_from(b.name) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请输入办事人姓名（32个字以内）");
    };
    let phone = b.phone.trim();
    if phone.is_empty() || phone.len() > 20 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请输入正确的电话号码");
    }
    let (answer, booked) = oneshot::channel();
    let cmd = UiCommand::BookAppointment {
        item_id: b.item_id,
        slot_start: b.slot_start,
        name,
        phone: phone.to_owned(),
        consent_text: b.consent_text,
        answer,
    };
    let (reply, rx) = oneshot::channel();
    if ui.tx.send(UiRequest { cmd, reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "服务正在停止");
    }
    match rx.await {
        Ok(Ok(())) => match booked.await {
            Ok(v) => Json(v).into_response(),
            Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "服务正在停止"),
        },
        Ok(Err(e)) => error(StatusCode::CONFLICT, zh(&e.to_string())),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "服务正在停止"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindBody {
    code: String,
}

/// Today's appointment at this point by its check-in code (the server's
/// `POST /api/v1/terminals/me/appointments/check-in`, device token).
async fn find_appointment(
    State(ui): State<Ui>,
    body: Result<Json<FindBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return rejected(&e),
    };
    let code = b.code.trim();
    if code.len() != 6 || !code.bytes().all(|c| c.is_ascii_digit()) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "签到码为 6 位数字，请核对");
    }
    let token = match ui.auth.token().await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("无法连接服务器：{e}")),
    };
    let resp = ui
        .http
        .post(format!("{}/api/v1/terminals/me/appointments/check-in", ui.server))
        .bearer_auth(token)
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
            Ok(v) => Json(v).into_response(),
            Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        },
        Ok(r) if r.status() == StatusCode::NOT_FOUND => {
            let v = r.json::<serde_json::Value>().await.unwrap_or_default();
            let msg =
                v.pointer("/error/message").and_then(|m| m.as_str()).unwrap_or("未找到预约，请核对签到码");
            error(StatusCode::NOT_FOUND, zh(msg))
        }
        Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
            error(StatusCode::TOO_MANY_REQUESTS, "签到码输错次数过多，请稍后再试或请工作人员帮忙")
        }
        Ok(r) => error(StatusCode::BAD_GATEWAY, format!("服务器返回 {}", r.status())),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("无法连接服务器：{e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    level: RatingLevel,
    #[serde(default)]
    comment: Option<Comment>,
}

async fn rate(
    s: State<Ui>,
    body: Result<Json<RateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) => command(s, UiCommand::Rate { level: b.level, comment: b.comment }).await,
        Err(e) => rejected(&e),
    }
}

async fn items(State(ui): State<Ui>) -> Response {
    server_get(&ui, "/api/v1/items?remote=true").await
}

/// Whether the point takes tickets now and who serves each line (the server's
/// `GET /api/v1/terminals/me/availability`), asked when the resident starts: an older server
/// without it answers 502 here and the page carries on as before.
async fn availability(State(ui): State<Ui>) -> Response {
    server_get(&ui, "/api/v1/terminals/me/availability").await
}

/// A GET on the server with the device token, its JSON passed through.
async fn server_get(ui: &Ui, path: &str) -> Response {
    let token = match ui.auth.token().await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("无法连接服务器：{e}")),
    };
    let resp = ui.http.get(format!("{}{path}", ui.server)).bearer_auth(token).send().await;
    match resp {
        Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
            Ok(v) => Json(v).into_response(),
            Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        },
        Ok(r) => error(StatusCode::BAD_GATEWAY, format!("服务器返回 {}", r.status())),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("无法连接服务器：{e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    #[serde(default)]
    session_id: Option<Uuid>,
    #[serde(default)]
    slot_id: Option<Uuid>,
    #[serde(default)]
    pages: Option<u32>,
}

async fn scan(
    s: State<Ui>,
    body: Result<Json<ScanBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) => {
            let cmd =
                UiCommand::Scan { session_id: b.session_id, slot_id: b.slot_id, pages: b.pages.unwrap_or(1) };
            command(s, cmd).await
        }
        Err(e) => rejected(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffLoginBody {
    username: String,
    password: String,
}

/// A committee staff member signs in with their own account (role `staff`); the server checks
/// the password (and throttles guessing) and, when a ticket is taken, that they belong to this
/// terminal's point.
async fn staff_login(
    s: State<Ui>,
    body: Result<Json<StaffLoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请输入用户名和密码");
    };
    if b.username.trim().is_empty()
        || b.password.is_empty()
        || b.username.len() > 64
        || b.password.len() > 128
    {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请输入用户名和密码");
    }
    let resp = s
        .http
        .post(format!("{}/api/v1/auth/login", s.server))
        .json(&serde_json::json!({ "username": b.username.trim(), "password": b.password }))
        .send()
        .await;
    let r = match resp {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_GATEWAY, "无法连接服务器，请稍后再试"),
    };
    match r.status() {
        st if st.is_success() => {}
        StatusCode::TOO_MANY_REQUESTS => {
            return error(StatusCode::TOO_MANY_REQUESTS, "尝试次数过多，请稍后再试");
        }
        st if st.is_client_error() => return error(StatusCode::UNAUTHORIZED, "用户名或密码不正确"),
        _ => return error(StatusCode::BAD_GATEWAY, "服务器暂时不可用，请稍后再试"),
    }
    let Ok(t) = r.json::<shared::api::TokenResponse>().await else {
        return error(StatusCode::BAD_GATEWAY, "服务器应答有误");
    };
    if t.user.role != shared::protocol::Role::Staff {
        // Not a kiosk account: end the login it just opened.
        crate::rest::logout(&s.http, &s.server, &t.refresh_token).await;
        return error(StatusCode::FORBIDDEN, "仅居委会工作人员可在本机登录");
    }
    let Ok(token) = shared::validate::Token::try_from(t.access_token) else {
        return error(StatusCode::BAD_GATEWAY, "服务器应答有误");
    };
    let session = crate::staff::StaffSession::new(
        t.user.id,
        t.user.username,
        t.user.display_name,
        token,
        t.refresh_token,
        t.expires_in,
        std::time::Instant::now(),
    );
    command(s, UiCommand::StaffSignedIn(session)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    phone: String,
    consent_text: String,
    consent: bool,
}

/// Signed-in staff record the resident's phone number (the server checks the number, the staff
/// sign-in and the ticket; its message is shown as is).
async fn contact(
    s: State<Ui>,
    body: Result<Json<ContactBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return rejected(&e),
    };
    if !b.consent {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请居民阅读后确认同意");
    }
    if b.consent_text != shared::cases::CONSENT_TEXT_ZH {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "同意书内容有误，请刷新页面");
    }
    let phone = b.phone.trim();
    if phone.is_empty() || phone.len() > 20 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "请输入正确的电话号码");
    }
    command(s, UiCommand::RecordContact { phone: phone.to_owned(), consent_text: b.consent_text }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MicBody {
    muted: bool,
}

async fn mic(s: State<Ui>, body: Result<Json<MicBody>, axum::extract::rejection::JsonRejection>) -> Response {
    match body {
        Ok(Json(b)) => command(s, UiCommand::Mic { muted: b.muted }).await,
        Err(e) => rejected(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeBody {
    percent: u32,
}

async fn volume(
    s: State<Ui>,
    body: Result<Json<VolumeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) if b.percent <= crate::call::MAX_VOLUME => {
            command(s, UiCommand::Volume { percent: b.percent }).await
        }
        Ok(_) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, format!("音量应在 0–{} 之间", crate::call::MAX_VOLUME))
        }
        Err(e) => rejected(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn the_page_shows_the_consent_text_the_server_stores() {
        assert!(
            PAGE.contains(shared::cases::CONSENT_TEXT_ZH),
            "the kiosk page shows the consent text verbatim"
        );
    }

    #[test]
    fn the_page_offers_appointments_when_nobody_is_on_duty_and_a_check_in_on_welcome() {
        assert!(PAGE.contains(shared::cases::APPOINTMENT_CONSENT_ZH), "the booking consent text verbatim");
        // 预约 sits in the 当前无人值守 box of the item's screen, next to the call-back offer.
        let unstaffed =
            PAGE.split(r#"id="take-unstaffed""#).nth(1).and_then(|r| r.split("</div></div>").next());
        assert!(
            unstaffed.is_some_and(|b| b.contains("预约其他时间") && b.contains("联系电话")),
            "{unstaffed:?}"
        );
        // The welcome screen has the check-in entry; the steps are day, time, details, code.
        let welcome = PAGE.split(r#"<section id="idle">"#).nth(1).and_then(|r| r.split("</section>").next());
        assert!(welcome.is_some_and(|w| w.contains("我有预约")));
        for step in
            ["第一步：请选择日期", "第二步：请选择时间", "第三步：填写办事人信息", "您的签到码", "预约签到"]
        {
            assert!(PAGE.contains(step), "{step}");
        }
        assert!(PAGE.contains(r#"fetch("/api/appointment-slots?item_id=""#));
        assert_eq!(zh("该时段已约满，请选择其他时段 (the slot is full)"), "该时段已约满，请选择其他时段");
        assert_eq!(zh("请核对"), "请核对");
    }

    #[test]
    fn the_page_says_when_nobody_is_on_duty_and_when_the_point_is_closed() {
        // Before and after the ticket; the closed screen takes the server's sentence.
        assert!(PAGE.contains(r#"id="take-unstaffed""#) && PAGE.contains(r#"id="unstaffed""#));
        assert_eq!(PAGE.matches("<b class=\"head\">当前无人值守</b>").count(), 2);
        assert!(PAGE.contains(r#"<section id="closed">"#) && PAGE.contains("本服务点现在不开放"));
        assert!(PAGE.contains(r#"fetch("/api/availability")"#), "asked when the resident starts");
    }

    #[test]
    fn only_the_kiosk_page_and_local_tools_are_answered() {
        for ok in [
            vec![("host", "127.0.0.1:8088")],
            vec![("host", "localhost:8088"), ("origin", "http://localhost:8088")],
            vec![
                ("host", "127.0.0.1:8088"),
                ("origin", "http://127.0.0.1:8088"),
                ("sec-fetch-site", "same-origin"),
            ],
            vec![("host", "[::1]:8088"), ("origin", "http://[::1]:8088")],
            vec![("host", "LOCALHOST:8088"), ("sec-fetch-site", "none")],
        ] {
            assert_eq!(request_allowed(&headers(&ok), 8088), Ok(()), "{ok:?}");
        }
        for bad in [
            vec![],
            vec![("host", "evil.example:8088")],
            vec![("host", "127.0.0.1.evil.example:8088")],
            vec![("host", "localhost")],
            vec![("host", "localhost:80")],
            vec![("host", "10.0.0.5:8088")],
            vec![("host", "localhost:8088"), ("origin", "http://evil.example")],
            vec![("host", "localhost:8088"), ("origin", "null")],
            vec![("host", "localhost:8088"), ("origin", "http://localhost:9999")],
            vec![("host", "localhost:8088"), ("origin", "https://localhost:8088")],
            vec![("host", "localhost:8088"), ("origin", "http://localhost:8088.evil.example")],
            vec![("host", "localhost:8088"), ("sec-fetch-site", "cross-site")],
            vec![("host", "localhost:8088"), ("sec-fetch-site", "same-site")],
        ] {
            assert!(request_allowed(&headers(&bad), 8088).is_err(), "{bad:?}");
        }
    }
}
