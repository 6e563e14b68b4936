//! Sign-in throttling that an attacker cannot turn against users (issue #13, table rows 1–3):
//! per client address and per account, never one global key; check and record atomic; growing
//! delays rather than a lockout of the right password. The test server trusts 127.0.0.1 as a
//! proxy, so `X-Forwarded-For` stands for clients at different addresses.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn behind_proxy() -> TestApp {
    TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")]).await
}

async fn post_from(app: &TestApp, client_ip: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .header("x-forwarded-for", format!("198.18.0.1, {client_ip}"))
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Row 1: junk device credentials from one address do not lock out the district's terminals.
#[tokio::test]
async fn junk_device_credentials_lock_out_only_their_sender() {
    let app = behind_proxy().await;
    let code = app.enrollment[0].1.clone();
    let (s, body) =
        post_from(&app, "198.51.100.20", "/api/v1/terminals/enroll", json!({ "code": code })).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let credential = body["credential"].as_str().expect("credential").to_owned();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let junk = json!({ "credential": format!("bbd_junk{i}") });
        statuses.push(post_from(&app, "203.0.113.66", "/api/v1/terminals/token", junk).await.0);
    }
    assert!(statuses[..8].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "the guesser is slowed down");
    let (s, body) =
        post_from(&app, "198.51.100.20", "/api/v1/terminals/token", json!({ "credential": credential }))
            .await;
    assert_eq!(s, StatusCode::OK, "the real terminal still gets its token: {body}");
    // Enrolment codes likewise: a stranger's guesses do not block another point's enrolment.
    for i in 0..30 {
        post_from(
            &app,
            "203.0.113.66",
            "/api/v1/terminals/enroll",
            json!({ "code": format!("AAAA-BBBB-CC{i:02}") }),
        )
        .await;
    }
    let code = app.enrollment[1].1.clone();
    let (s, body) =
        post_from(&app, "198.51.100.21", "/api/v1/terminals/enroll", json!({ "code": code })).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The audit records the client's address (from the trusted proxy), and the flood of
    // throttled requests left one `denied` row, not one per request.
    let entries = app.audit("terminal.token").await;
    let denied: Vec<&Value> = entries.iter().filter(|e| e["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 1, "{entries:?}");
    assert_eq!(denied[0]["source_ip"], "203.0.113.66");
}

/// Row 2: 60 concurrent wrong passwords for one account: at most 5 reach the password check.
#[tokio::test]
async fn concurrent_guesses_cannot_bypass_the_limit() {
    let app = behind_proxy().await;
    let attempts = (0..60).map(|i| {
        let app = &app;
        async move {
            let body = json!({ "username": "operator2", "password": format!("wrong-{i}") });
            post_from(app, "203.0.113.7", "/api/v1/auth/login", body).await.0
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let wrong = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(wrong <= 5, "{wrong} guesses were checked: {statuses:?}");
    assert_eq!(wrong + throttled, 60, "{statuses:?}");
    let denied = app.audit("auth.login").await.into_iter().filter(|e| e["outcome"] == "denied").count();
    assert_eq!(denied, 1, "throttled attempts are aggregated in the audit log");
}

/// Row 3: wrong passwords for `supervisor` from one address do not lock the owner out; from
/// the guesser's own address the delay is short and grows, never a 15-minute lockout.
#[tokio::test]
async fn nobody_can_lock_another_persons_account() {
    let app = behind_proxy().await;
    for i in 0..6 {
        let body = json!({ "username": "supervisor", "password": format!("guess-{i}") });
        let (s, _) = post_from(&app, "203.0.113.9", "/api/v1/auth/login", body).await;
        assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
    }
    let right = json!({ "username": "supervisor", "password": "bangban-demo" });
    let (s, body) = post_from(&app, "198.51.100.5", "/api/v1/auth/login", right.clone()).await;
    assert_eq!(s, StatusCode::OK, "the owner signs in from their own address: {body}");
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({ "username": "supervisor", "password": "guess-x" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=5).contains(&wait), "a short delay, not a lockout: {wait} s");
}

/// A forged `X-Forwarded-For` from a peer that is not a trusted proxy changes nothing.
#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let body = json!({ "username": "operator3", "password": format!("wrong-{i}") });
        post_from(&app, &format!("203.0.113.{i}"), "/api/v1/auth/login", body).await;
    }
    let (s, _) = post_from(
        &app,
        "203.0.113.99",
        "/api/v1/auth/login",
        json!({ "username": "operator3", "password": "x" }),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "all from 127.0.0.1, whatever the header says");
    let entries = app.audit("auth.login").await;
    assert!(entries.iter().all(|e| e["source_ip"] == "127.0.0.1"), "{entries:?}");
}

/// Changing one's own password is throttled too (the current password is guessable).
#[tokio::test]
async fn own_password_change_is_throttled() {
    let app = TestApp::spawn().await;
    let token = app.login("operator1").await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let body = json!({ "current_password": format!("guess-{i}"), "new_password": "New-password-1" });
        statuses.push(app.post("/api/v1/me/password", Some(&token), body).await.0);
    }
    assert_eq!(&statuses[..5], &[StatusCode::UNAUTHORIZED; 5], "{statuses:?}");
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}
