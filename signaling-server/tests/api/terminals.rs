use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn register_enroll_token_and_revoke() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let point = app.first_point(&admin).await;
    let (s, reg) = app
        .post("/api/v1/terminals", Some(&admin), json!({ "point_id": point["id"], "name": "备用一体机" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    let code = reg["enrollment_code"].as_str().expect("code").to_owned();
    assert_eq!(reg["terminal"]["status"], "pending");
    let expires = reg["expires_at"].as_i64().expect("expiry");
    let now = signaling_server::db::now_ms();
    assert!((expires - now - 24 * 3600 * 1000).abs() < 60_000, "expires in 24 h");

    // Typed sloppily (lower case, spaces) it still works, once.
    let sloppy = code.to_lowercase().replace('-', " ");
    let (s, enrolled) = app.post("/api/v1/terminals/enroll", None, json!({ "code": sloppy })).await;
    assert_eq!(s, StatusCode::OK, "{enrolled}");
    assert_eq!(enrolled["point_id"], point["id"]);
    assert_eq!(enrolled["point_code"], point["code"]);
    let credential = enrolled["credential"].as_str().expect("credential").to_owned();
    let (s, _) = app.post("/api/v1/terminals/enroll", None, json!({ "code": code })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "one-time code");

    let (s, tok) = app.post("/api/v1/terminals/token", None, json!({ "credential": credential })).await;
    assert_eq!(s, StatusCode::OK);
    let device = tok["access_token"].as_str().expect("token").to_owned();
    assert!(tok["expires_in"].as_u64().is_some_and(|s| s <= 900));
    let header = jsonwebtoken::decode_header(&device).expect("hdr");
    assert_eq!(header.typ.as_deref(), Some("bangban-device+jwt"));
    // A terminal reads the catalog and its own point, nothing else.
    let (s, items) = app.get("/api/v1/items?remote=true", Some(&device)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(items.as_array().is_some_and(|a| a.iter().all(|i| i["remote_allowed"] == true) && !a.is_empty()));
    let (s, _) =
        app.get(&format!("/api/v1/points/{}", point["id"].as_str().expect("id")), Some(&device)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get("/api/v1/points", Some(&device)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get("/api/v1/terminals", Some(&device)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let tid = reg["terminal"]["id"].as_str().expect("id");
    let (s, listed) = app.get("/api/v1/terminals", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    let me = listed.as_array().expect("list").iter().find(|t| t["id"] == tid).cloned().expect("listed");
    assert_eq!(me["status"], "active");
    assert!(me["last_seen_at"].is_i64());

    let (s, rev) = app
        .post(&format!("/api/v1/terminals/{tid}/revoke"), Some(&admin), json!({ "reason": "设备遗失" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{rev}");
    assert_eq!(rev["status"], "revoked");
    let (s, _) = app.get("/api/v1/items", Some(&device)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the unexpired device token fails at once");
    let (s, _) = app.post("/api/v1/terminals/token", None, json!({ "credential": credential })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the credential fails too");
    let (s, _) = app.post(&format!("/api/v1/terminals/{tid}/enrollment-code"), Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "a revoked terminal stays revoked");
    assert_eq!(app.audit("terminal.revoke").await.len(), 1);
    assert_eq!(app.audit("terminal.register").await.len(), 1);
    assert!(!app.audit("terminal.enroll").await.is_empty());
}

#[tokio::test]
async fn new_code_replaces_the_old_credential_and_bad_codes_are_throttled() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (credential, _) = app.enroll_terminal(0).await;
    let (_, list) = app.get("/api/v1/terminals", Some(&admin)).await;
    let tid = list.as_array().expect("l").iter().find(|t| t["status"] == "active").expect("active")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (s, fresh) =
        app.post(&format!("/api/v1/terminals/{tid}/enrollment-code"), Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.post("/api/v1/terminals/token", None, json!({ "credential": credential })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) =
        app.post("/api/v1/terminals/enroll", None, json!({ "code": fresh["enrollment_code"] })).await;
    assert_eq!(s, StatusCode::OK);

    for junk in ["", "AAAA-AAAA-AAAA", "short", &"Z".repeat(10_000), "'; DROP TABLE terminals; --"] {
        let (s, body) = app.post("/api/v1/terminals/enroll", None, json!({ "code": junk })).await;
        assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS, "{junk:?}: {body}");
    }
    let mut last = StatusCode::OK;
    for _ in 0..60 {
        last = app.post("/api/v1/terminals/enroll", None, json!({ "code": "AAAA-AAAA-AAAB" })).await.0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "guessing codes is throttled");
}

#[tokio::test]
async fn expired_enrollment_codes_fail() {
    let app = TestApp::spawn().await;
    sqlx::query("UPDATE terminals SET enrollment_expires_at = 1")
        .execute(&app.state.db.pool)
        .await
        .expect("age the codes");
    let (s, _) = app.post("/api/v1/terminals/enroll", None, json!({ "code": app.enrollment[0].1 })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
