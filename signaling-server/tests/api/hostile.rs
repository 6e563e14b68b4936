//! Hostile input: every malformed, oversized or odd request gets a clear JSON error and changes
//! nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

async fn raw(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut req = app.client.post(app.url(path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("sent");
    let s = resp.status();
    (s, serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default())
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
        (
            "oversized",
            Some("application/json"),
            format!("{{\"username\":\"{}\",\"password\":\"x\"}}", "a".repeat(100_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("truncated JSON", Some("application/json"), b"{\"username\":".to_vec(), StatusCode::BAD_REQUEST),
        ("not JSON", Some("application/json"), b"username=admin".to_vec(), StatusCode::BAD_REQUEST),
        ("non-UTF-8", Some("application/json"), vec![0xff, 0xfe, 0x7b, 0x22, 0xc3], StatusCode::BAD_REQUEST),
        (
            "wrong types",
            Some("application/json"),
            br#"{"username":1,"password":[]}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            Some("application/json"),
            br#"{"username":"admin","password":"bangban-demo","is_admin":true}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing field",
            Some("application/json"),
            br#"{"username":"admin"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "no content type",
            None,
            br#"{"username":"admin","password":"bangban-demo"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "deep nesting",
            Some("application/json"),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            // Beyond the parser's nesting limit the body is not JSON it reads: malformed.
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, ct, body, expected) in cases {
        let (s, b) = raw(&app, "/api/v1/auth/login", None, ct, body).await;
        assert_eq!(s, expected, "{what}: {b}");
        assert!(
            b["error"]["code"].is_string() && b["error"]["message"].is_string(),
            "{what}: JSON error body, got {b}"
        );
    }
    let (s, _) = raw(
        &app,
        "/api/v1/points",
        Some(&admin),
        Some("application/json"),
        br#"{"code":"X1","name":"\u0000"}"#.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing above logged anyone in or created anything.
    assert!(
        app.audit("auth.login").await.iter().all(|e| e["outcome"] != "success" || e["actor_name"] == "admin")
    );
    let (_, points) = app.get("/api/v1/points", Some(&admin)).await;
    assert_eq!(points.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn long_odd_and_sql_looking_strings_are_harmless() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let evil = "'; DROP TABLE service_points; -- \" OR 1=1 /*";
    let (s, p) = app
        .post(
            "/api/v1/points",
            Some(&admin),
            json!({
                "code": "EVIL-1", "name": evil, "street": "Robert'); DROP TABLE users;--", "committee": "居委会",
                "kind": "park", "address": "<script>alert(1)</script>", "longitude": 121.4, "latitude": 31.2,
                "opening_hours": "9:00", "inspector_name": "测试", "inspector_phone": "13900000000"
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["name"], evil, "stored verbatim, as data");
    let (_, points) = app.get("/api/v1/points", Some(&admin)).await;
    assert_eq!(points.as_array().map(Vec::len), Some(3), "the table is still there");
    app.login("operator1").await;

    for (field, value) in [
        ("name", "长".repeat(10_000)),
        ("name", "bidi \u{202E}evil".to_owned()),
        ("address", "line\nbreak".to_owned()),
    ] {
        let mut body = json!({ "code": "LONG-1", "name": "n", "street": "s", "committee": "c", "kind": "park", "address": "a",
            "longitude": 121.4, "latitude": 31.2, "opening_hours": "h", "inspector_name": "i", "inspector_phone": "13900000000" });
        body[field] = json!(value);
        let (s, b) = app.post("/api/v1/points", Some(&admin), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {b}");
    }
    let (s, items) = app.get("/api/v1/items?q=%27%20OR%201%3D1%20--", Some(&admin)).await;
    assert_eq!((s, items.as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let (s, _) = app
        .post("/api/v1/auth/login", None, json!({ "username": "a".repeat(60_000), "password": "x" }))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hostile_query_strings_and_paths() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=100000",
        "before=99999999999999999999999",
        "nope=1",
        "action=%FF%FE",
        &format!("action={}", "a".repeat(100)),
    ] {
        let (s, b) = app.get(&format!("/api/v1/audit?{q}"), Some(&admin)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
        assert!(b["error"]["message"].is_string());
    }
    let (s, b) = app.get(&format!("/api/v1/items?q={}", "x".repeat(3000)), Some(&admin)).await;
    assert_eq!(s, StatusCode::URI_TOO_LONG, "{b}");
    let (s, b) = app.get("/api/v1/items?q=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", Some(&admin)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "q over 32 characters: {b}");
    for path in ["/api/v1/points/not-a-uuid", "/api/v1/points/..%2F..%2Fetc%2Fpasswd", "/api/v1/items/%00"] {
        let (s, b) = app.get(path, Some(&admin)).await;
        assert!(s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST, "{path}: {s} {b}");
        assert!(b["error"]["code"].is_string(), "{path}: {b}");
    }
    let (s, _) = app.call(Method::DELETE, "/api/v1/points", Some(&admin), None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}
