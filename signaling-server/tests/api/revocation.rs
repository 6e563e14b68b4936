//! Sessions end when they must (issue #13, table row 4 and item 2): a password reset or change,
//! a role change, disabling an account, revoking a terminal or issuing it a new enrolment code
//! refuse the access tokens issued before and close open WebSockets with `bye` `revoked`; an
//! open socket ends when its token expires; a sign-in's refresh tokens have an absolute
//! lifetime. Also item 3: an admin retires a signing key at once.

use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::protocol::ByeReason;

use crate::helpers::TestApp;
use crate::ws_client::WsClient;

async fn user_id(app: &TestApp, token: &str) -> String {
    let (s, me) = app.get("/api/v1/me", Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    me["id"].as_str().expect("id").to_owned()
}

/// The `sub` claim of a token (read without verifying: the test made it).
fn token_subject(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// Row 4: the admin resets an operator's password; the operator's token and socket stop.
#[tokio::test]
async fn password_reset_ends_tokens_and_sockets() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let op = app.login("operator1").await;
    let id = user_id(&app, &op).await;
    let (mut ws, _) = WsClient::connect(&app, &op).await;
    let (s, body) = app
        .post(
            &format!("/api/v1/users/{id}/password"),
            Some(&admin),
            json!({ "new_password": "Fresh-pass-42" }),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(ws.expect_closed().await, Some(ByeReason::Revoked));
    let (s, _) = app.get("/api/v1/me", Some(&op)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the earlier access token is refused");
    let (s, _) = app
        .post("/api/v1/auth/login", None, json!({ "username": "operator1", "password": "Fresh-pass-42" }))
        .await;
    assert_eq!(s, StatusCode::OK, "the new password works at once");
    let rows = app.audit("user.password_reset").await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn own_password_change_ends_earlier_tokens() {
    let app = TestApp::spawn().await;
    let op = app.login("operator1").await;
    let other = app.login("operator1").await;
    let (s, _) = app
        .post(
            "/api/v1/me/password",
            Some(&op),
            json!({ "current_password": "bangban-demo", "new_password": "Another-pass-7" }),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for t in [&op, &other] {
        assert_eq!(app.get("/api/v1/me", Some(t)).await.0, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn role_change_and_disable_end_tokens_and_sockets() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for (user, change) in
        [("supervisor", json!({ "role": "operator" })), ("operator2", json!({ "active": false }))]
    {
        let token = app.login(user).await;
        let id = user_id(&app, &token).await;
        let (mut ws, _) = WsClient::connect(&app, &token).await;
        let (s, body) =
            app.call(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), Some(change)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(ws.expect_closed().await, Some(ByeReason::Revoked), "{user}");
        assert_eq!(app.get("/api/v1/me", Some(&token)).await.0, StatusCode::UNAUTHORIZED, "{user}");
    }
    // A change that grants nothing new (the display name) keeps the session.
    let token = app.login("operator1").await;
    let id = user_id(&app, &token).await;
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            Some(json!({ "display_name": "王五" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn new_enrolment_code_and_revocation_end_device_tokens_and_sockets() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for (index, action) in [(0, "enrollment-code"), (1, "revoke")] {
        let (_credential, device) = app.enroll_terminal(index).await;
        let (mut ws, _) = WsClient::connect(&app, &device).await;
        let me = token_subject(&device);
        let body = (action == "revoke").then(|| json!({ "reason": "磁盘被盗" }));
        let (s, resp) =
            app.call(Method::POST, &format!("/api/v1/terminals/{me}/{action}"), Some(&admin), body).await;
        assert_eq!(s, StatusCode::OK, "{action}: {resp}");
        assert_eq!(ws.expect_closed().await, Some(ByeReason::Revoked), "{action}");
        let (s, _) = app.get("/api/v1/points", Some(&device)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{action}: the earlier device token is refused");
        if action == "enrollment-code" {
            // Enrolled again with the new code, the old device token still does not come back.
            let code = resp["enrollment_code"].as_str().expect("code");
            let (s, _) = app.post("/api/v1/terminals/enroll", None, json!({ "code": code })).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(app.get("/api/v1/points", Some(&device)).await.0, StatusCode::UNAUTHORIZED);
        }
    }
}

/// An open socket ends when its token expires (`bye` `auth_expired`: refresh and resume).
#[tokio::test]
async fn open_socket_ends_at_token_expiry() {
    let app = TestApp::spawn_with(|c| c.access_ttl_secs = 2).await;
    let op = app.login("operator1").await;
    let (mut ws, _) = WsClient::connect(&app, &op).await;
    assert_eq!(ws.expect_closed().await, Some(ByeReason::AuthExpired));
}

/// The `exp` claim of a token (unix seconds; read without verifying: the test made it).
fn token_expiry(token: &str) -> i64 {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    claims["exp"].as_i64().expect("exp")
}

/// A fresh token sent on the open socket (`renew`) keeps it open past the first token's
/// expiry, until the new one's (#18: a live call's sockets are not closed every 15 minutes).
/// Someone else's token, a device token on an operator's socket or junk change nothing.
#[tokio::test]
async fn renewing_the_token_keeps_the_socket_open_until_the_new_expiry() {
    use shared::protocol::{ClientMsg, ErrorCode, ServerMsg};
    use shared::validate::Token;
    let app = TestApp::spawn_with(|c| c.access_ttl_secs = 2).await;
    let first = app.login("operator1").await;
    let (mut ws, _) = WsClient::connect(&app, &first).await;
    let other = app.login("operator2").await;
    let (_, device) = app.enroll_terminal(0).await;
    for (what, token) in
        [("someone else's", other.as_str()), ("a device", device.as_str()), ("junk", "a.b.c")]
    {
        ws.send(&ClientMsg::Renew { token: Token::try_from(token).expect("token") }).await;
        let code = ws
            .expect("an error", |m| match m {
                ServerMsg::Error { code, request: Some(r), .. } if r == "renew" => Some(*code),
                _ => None,
            })
            .await;
        assert_eq!(code, ErrorCode::Unauthenticated, "{what} token refused");
    }
    // A token of the same account that expires later (signed a second or more after the first).
    let mut fresh = app.login("operator1").await;
    while token_expiry(&fresh) <= token_expiry(&first) {
        fresh = app.login("operator1").await;
    }
    ws.send(&ClientMsg::Renew { token: Token::try_from(fresh.as_str()).expect("token") }).await;
    let until = ws
        .expect("renewed", |m| match m {
            ServerMsg::Renewed { expires_at } => Some(*expires_at),
            _ => None,
        })
        .await;
    assert_eq!(until, token_expiry(&fresh));
    // Past the first token's expiry the socket still answers …
    let past_first = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(token_expiry(&first) * 1000 + 300).expect("time"));
    if let Ok(wait) = past_first.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait).await; // the scenario's time passing, not synchronisation
    }
    ws.send(&ClientMsg::Ping { seq: 9 }).await;
    ws.expect("pong", |m| matches!(m, ServerMsg::Pong { seq: 9 }).then_some(())).await;
    // … and ends at the new token's.
    assert_eq!(ws.expect_closed().await, Some(ByeReason::AuthExpired));
    assert!(signaling_server::db::now_ms() / 1000 >= token_expiry(&fresh), "not before the new expiry");
}

/// A refresh-token family ends at its absolute lifetime however often it was rotated.
#[tokio::test]
async fn refresh_family_has_an_absolute_lifetime() {
    let app = TestApp::spawn_with(|c| c.refresh_family_max_secs = 3600).await;
    let first = app.login_full("operator1").await;
    assert!(first["refresh_expires_in"].as_u64().is_some_and(|s| s <= 3600));
    let (s, second) =
        app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": first["refresh_token"] })).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    // The sign-in happened more than the family's lifetime ago (moved back in the database).
    sqlx::query("UPDATE refresh_tokens SET issued_at = issued_at - 3601000")
        .execute(&app.state.db.pool)
        .await
        .expect("update");
    let (s, _) =
        app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": second["refresh_token"] })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the family has ended");
}

/// Item 3: retiring a signing key refuses every token it signed at once.
#[tokio::test]
async fn retired_key_refuses_its_tokens_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let op = app.login("operator1").await;
    let kid = jsonwebtoken::decode_header(&op).expect("header").kid.expect("kid");
    let (s, body) = app.post(&format!("/api/v1/admin/keys/{kid}/retire"), Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_ne!(body["kid"].as_str(), Some(kid.as_str()), "a new active key");
    for t in [&op, &admin] {
        assert_eq!(app.get("/api/v1/me", Some(t)).await.0, StatusCode::UNAUTHORIZED);
    }
    let (_, jwks) = app.get("/.well-known/jwks.json", None).await;
    assert!(jwks["keys"].as_array().expect("keys").iter().all(|k| k["kid"] != kid.as_str()));
    let admin = app.login("admin").await;
    assert_eq!(app.get("/api/v1/me", Some(&admin)).await.0, StatusCode::OK, "new tokens work");
    let (s, _) = app.post(&format!("/api/v1/admin/keys/{kid}/retire"), Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post("/api/v1/admin/keys/..%2Fkeyring.json/retire", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(app.audit("auth.key_retire").await.len(), 1);
}
