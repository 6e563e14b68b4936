//! Issue #13's attack table, one test per row, ported minimally from today's
//! tests/api/{throttle,revocation,ws_limits}.rs so that the same file compiles against the code
//! before the security round (0e12dee) and against today's. Differences from today's tests:
//! clients at different addresses are real TCP peers bound to distinct loopback addresses
//! (127.0.0.x) instead of `X-Forwarded-For` behind a trusted proxy (the old server had no
//! trusted proxies and keyed by the peer address); assertions on audit rows that did not exist
//! then are left out; `take_ticket` with details is built from the helper (its fields changed).

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::protocol::{ByeReason, ClientMsg, ErrorCode, ResidentDetails, ServerMsg};
use shared::validate::{IdNumber, PersonName};
use sqlx::Row;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, item_id, take_ticket};

/// POST from a client whose TCP source address is `from` (a 127.0.0.x address).
async fn post_from(app: &TestApp, from: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let resp = client.post(app.url(path)).json(&body).send().await.expect("sent");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Row 1: 8 (here 30) token requests with a junk credential from one address, then a real
/// terminal at another address asks for its device token.
#[tokio::test]
async fn row1_junk_device_credentials_lock_out_only_their_sender() {
    let app = TestApp::spawn().await;
    let code = app.enrollment[0].1.clone();
    let (s, body) = post_from(&app, "127.0.0.20", "/api/v1/terminals/enroll", json!({ "code": code })).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let credential = body["credential"].as_str().expect("credential").to_owned();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let junk = json!({ "credential": format!("bbd_junk{i}") });
        statuses.push(post_from(&app, "127.0.0.66", "/api/v1/terminals/token", junk).await.0);
    }
    assert!(statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "the guesser is slowed down");
    let (s, body) =
        post_from(&app, "127.0.0.20", "/api/v1/terminals/token", json!({ "credential": credential })).await;
    assert_eq!(s, StatusCode::OK, "the real terminal still gets its token: {body}");
}

/// Row 2: 60 concurrent wrong passwords for one account: at most 5 reach the password check.
#[tokio::test]
async fn row2_concurrent_guesses_cannot_bypass_the_limit() {
    let app = TestApp::spawn().await;
    let attempts = (0..60).map(|i| {
        let app = &app;
        async move {
            let body = json!({ "username": "operator2", "password": format!("wrong-{i}") });
            post_from(app, "127.0.0.7", "/api/v1/auth/login", body).await.0
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let wrong = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(wrong <= 5, "{wrong} guesses were checked: {statuses:?}");
    assert_eq!(wrong + throttled, 60, "{statuses:?}");
}

/// Row 3: 6 wrong passwords for `supervisor`, then the right one from the owner's address.
#[tokio::test]
async fn row3_nobody_can_lock_another_persons_account() {
    let app = TestApp::spawn().await;
    for i in 0..6 {
        let body = json!({ "username": "supervisor", "password": format!("guess-{i}") });
        let (s, _) = post_from(&app, "127.0.0.9", "/api/v1/auth/login", body).await;
        assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
    }
    let right = json!({ "username": "supervisor", "password": "bangban-demo" });
    let (s, body) = post_from(&app, "127.0.0.5", "/api/v1/auth/login", right).await;
    assert_eq!(s, StatusCode::OK, "the owner signs in from their own address: {body}");
}

/// Row 4: the admin resets an operator's password; the operator's socket and token stop.
#[tokio::test]
async fn row4_password_reset_ends_tokens_and_sockets() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let op = app.login("operator1").await;
    let (s, me) = app.get("/api/v1/me", Some(&op)).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    let id = me["id"].as_str().expect("id").to_owned();
    let (mut ws, _) = WsClient::connect(&app, &op).await;
    let (s, body) = app
        .post(&format!("/api/v1/users/{id}/password"), Some(&admin), json!({ "new_password": "Fresh-pass-42" }))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let (s, _) = app.get("/api/v1/me", Some(&op)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the earlier access token is refused");
    assert_eq!(ws.expect_closed().await, Some(ByeReason::Revoked), "the open socket is closed");
}

async fn tickets_stored(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM tickets")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count")
        .get::<i64, _>("n")
}

fn refusal(m: &ServerMsg) -> Option<(ErrorCode, String)> {
    match m {
        ServerMsg::Error { code, message, .. } => Some((*code, message.clone())),
        ServerMsg::TicketIssued { ticket, .. } => Some((ErrorCode::Unknown, format!("issued {}", ticket.number))),
        _ => None,
    }
}

/// Row 5: a device token alone sends `take_ticket` with a resident's name and ID number.
#[tokio::test]
async fn row5_resident_details_with_a_device_token_alone_are_refused() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    let mut msg = take_ticket(item);
    if let ClientMsg::TakeTicket { resident, staff_token, .. } = &mut msg {
        *resident = Some(ResidentDetails {
            name: Some(PersonName::try_from("王小明".to_owned()).expect("name")),
            id_number: Some(IdNumber::try_from("11010519491231002X".to_owned()).expect("id")),
        });
        *staff_token = None;
    }
    term.send(&msg).await;
    let (code, message) = term.expect("refusal", refusal).await;
    assert_eq!(code, ErrorCode::Forbidden, "{message}");
    assert_eq!(tickets_stored(&app).await, 0, "nothing stored");
}

/// Row 6: one terminal sends 30 `take_ticket`: one ticket, the others refused.
#[tokio::test]
async fn row6_a_terminal_holds_one_open_ticket_at_a_time() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    term.send(&take_ticket(item)).await;
    term.expect("issued", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
    let mut issued = 1;
    for _ in 1..30 {
        term.send(&take_ticket(item)).await;
        let (code, message) = term.expect("answer", refusal).await;
        if code == ErrorCode::Unknown {
            issued += 1;
        } else {
            assert!(matches!(code, ErrorCode::Conflict | ErrorCode::RateLimited), "{code:?} {message}");
        }
    }
    assert_eq!(issued, 1, "tickets issued to one terminal");
    assert_eq!(tickets_stored(&app).await, 1);
}
