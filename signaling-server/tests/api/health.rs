use reqwest::StatusCode;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_ready_openapi_and_jwks_are_served() {
    let app = TestApp::spawn().await;
    let (s, b) = app.get("/healthz", None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, b) = app.get("/readyz", None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));

    let (s, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3.1"), "{}", doc["openapi"]);
    for path in [
        "/api/v1/auth/login",
        "/api/v1/points",
        "/api/v1/points.geojson",
        "/api/v1/terminals/enroll",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }

    let (s, jwks) = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "private part must never be published");
    app.stop().await;
}

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    let app = TestApp::spawn().await;
    let (s, b) = app.get("/api/v1/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
}

#[tokio::test]
async fn demo_seed_is_idempotent_and_writes_enrollment_codes() {
    let app = TestApp::spawn().await;
    let file =
        std::fs::read_to_string(app.data_dir.path().join("demo-enrollment.txt")).expect("file written");
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("JA-HS01 ") && lines[0].len() == "JA-HS01 ".len() + 14, "{file}");
    // Seeding again (as a restart with --demo does) adds nothing and gives fresh codes.
    let seeded = signaling_server::demo::seed(&app.state.db, app.data_dir.path()).await.expect("seed again");
    assert_eq!(seeded.len(), 2);
    assert_ne!(seeded[0].1, app.enrollment[0].1, "a pending terminal gets a fresh code");
    let admin = app.login("admin").await;
    let (_, points) = app.get("/api/v1/points", Some(&admin)).await;
    assert_eq!(points.as_array().map(Vec::len), Some(2));
    let (_, items) = app.get("/api/v1/items", Some(&admin)).await;
    assert_eq!(items.as_array().map(Vec::len), Some(16));
    let (_, users) = app.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(users.as_array().map(Vec::len), Some(5));
    // The old code no longer works; the new one does.
    let (s, _) =
        app.post("/api/v1/terminals/enroll", None, serde_json::json!({ "code": app.enrollment[0].1 })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.post("/api/v1/terminals/enroll", None, serde_json::json!({ "code": seeded[0].1 })).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn cors_is_closed_unless_configured() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/points"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let closed = TestApp::spawn().await;
    let resp = preflight(&closed, "http://evil.example").await.expect("sent");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let open = TestApp::spawn_with(|c| c.cors_origins = vec!["http://console.gov.local".into()]).await;
    let resp = preflight(&open, "http://console.gov.local").await.expect("sent");
    assert_eq!(
        resp.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("http://console.gov.local")
    );
    let resp = preflight(&open, "http://evil.example").await.expect("sent");
    assert!(resp.headers().get("access-control-allow-origin").is_none(), "only the configured origin");
}
