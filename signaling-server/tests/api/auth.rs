use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn login_returns_short_lived_typed_tokens_and_is_audited() {
    let app = TestApp::spawn().await;
    let body = app.login_full("operator1").await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s <= 900));
    assert_eq!(body["user"]["username"], "operator1");
    assert_eq!(body["user"]["role"], "operator");
    assert_eq!(body["user"]["skills"].as_array().map(Vec::len), Some(3));
    let token = body["access_token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert!(header.kid.is_some());
    let (s, me) = app.get("/api/v1/me", Some(token)).await;
    assert_eq!((s, me["username"].as_str()), (StatusCode::OK, Some("operator1")));

    let (s, err) = app
        .post("/api/v1/auth/login", None, json!({ "username": "operator1", "password": "wrong-pass" }))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], "invalid_credentials");
    let (s, err2) =
        app.post("/api/v1/auth/login", None, json!({ "username": "nobody", "password": "wrong-pass" })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(err, err2, "unknown user and wrong password look the same");

    let entries = app.audit("auth.login").await;
    let outcomes: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["actor_name"].as_str().unwrap_or(""), e["outcome"].as_str().unwrap_or("")))
        .collect();
    assert!(outcomes.contains(&("operator1", "success")));
    assert!(outcomes.contains(&("operator1", "failure")));
    assert!(outcomes.contains(&("nobody", "failure")));
    assert!(entries.iter().all(|e| e["source_ip"] == "127.0.0.1"));
    assert!(
        !entries.iter().any(|e| e.to_string().contains("wrong-pass")),
        "passwords never reach the audit log"
    );
}

#[tokio::test]
async fn repeated_failures_throttle_the_account() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let (s, _) = app
            .post("/api/v1/auth/login", None, json!({ "username": "operator2", "password": "guess-1234" }))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "username": "operator2", "password": "bangban-demo" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(resp.headers().get("retry-after").is_some());
    // Other accounts are unaffected.
    app.login("operator1").await;
    assert!(app.audit("auth.login").await.iter().any(|e| e["outcome"] == "denied"));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let first = app.login_full("supervisor").await;
    let r1 = first["refresh_token"].as_str().expect("refresh").to_owned();
    let (s, second) = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 })).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let r2 = second["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(r1, r2);
    let (s, _) = app.get("/api/v1/me", second["access_token"].as_str()).await;
    assert_eq!(s, StatusCode::OK);

    // A thief replays the spent token: refused, and the legitimate successor dies with it.
    let (s, _) = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r2 })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the family is revoked");
    assert_eq!(app.audit("auth.refresh_reuse").await.len(), 1);

    // A separate login is a separate family and still works.
    let other = app.login_full("supervisor").await;
    let (s, _) =
        app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": other["refresh_token"] })).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn logout_and_password_change_end_sessions() {
    let app = TestApp::spawn().await;
    let a = app.login_full("operator1").await;
    let (s, _) = app.post("/api/v1/auth/logout", None, json!({ "refresh_token": a["refresh_token"] })).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": a["refresh_token"] })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let b = app.login_full("operator1").await;
    let token = b["access_token"].as_str().expect("token");
    let (s, err) = app
        .post(
            "/api/v1/me/password",
            Some(token),
            json!({ "current_password": "bangban-demo", "new_password": "short" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (s, _) = app
        .post(
            "/api/v1/me/password",
            Some(token),
            json!({ "current_password": "nope-nope", "new_password": "New-pass-2026" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .post(
            "/api/v1/me/password",
            Some(token),
            json!({ "current_password": "bangban-demo", "new_password": "New-pass-2026" }),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": b["refresh_token"] })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "password change signs out other sessions");
    let (s, _) = app
        .post("/api/v1/auth/login", None, json!({ "username": "operator1", "password": "bangban-demo" }))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .post("/api/v1/auth/login", None, json!({ "username": "operator1", "password": "New-pass-2026" }))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn disabling_an_account_stops_its_tokens_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let op = app.login_full("operator2").await;
    let op_token = op["access_token"].as_str().expect("token");
    let id = op["user"]["id"].as_str().expect("id");
    let (s, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get("/api/v1/me", Some(op_token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) =
        app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": op["refresh_token"] })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .post("/api/v1/auth/login", None, json!({ "username": "operator2", "password": "bangban-demo" }))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // An admin cannot lock themselves out.
    let me = app.login_full("admin").await;
    let my_id = me["user"]["id"].as_str().expect("id");
    let (s, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{my_id}"),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_survives_restart() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let old_kid = jsonwebtoken::decode_header(&admin).expect("hdr").kid.expect("kid");
    let (s, body) = app.post("/api/v1/admin/keys/rotate", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let new_kid = body["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);
    let (_, jwks) = app.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> =
        jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
    let (s, _) = app.get("/api/v1/me", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "a token signed by the retired key still works");
    let fresh = app.login("admin").await;
    assert_eq!(jsonwebtoken::decode_header(&fresh).expect("hdr").kid.as_deref(), Some(new_kid.as_str()));

    // The key ring is in the database, sealed: a restarted server accepts both tokens and
    // signs with the new key; no private key lies in the data dir, and the stored seed is not
    // the key itself.
    let db = app.state.db.clone();
    let rows =
        sqlx::query("SELECT kid, sealed_seed FROM signing_keys").fetch_all(&db.pool).await.expect("keys");
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let sealed: String = sqlx::Row::get(row, "sealed_seed");
        assert!(sealed.starts_with("k1:"), "sealed with the master key");
    }
    assert!(!app.data_dir.path().join("keys").exists(), "no key files in the data dir");
    let app = app.restart().await;
    let (s, _) = app.get("/api/v1/me", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "old key's token after a restart");
    let (s, _) = app.get("/api/v1/me", Some(&fresh)).await;
    assert_eq!(s, StatusCode::OK, "new key's token after a restart");
    let again = app.login("admin").await;
    assert_eq!(jsonwebtoken::decode_header(&again).expect("hdr").kid.as_deref(), Some(new_kid.as_str()));
}

#[tokio::test]
async fn a_file_based_key_ring_of_an_earlier_version_moves_into_the_database() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let kid = "legacyKid0123456".to_owned();
    let mut keys_dir = std::path::PathBuf::new();
    let app = TestApp::spawn_with(|c| {
        keys_dir = c.data_dir.join("keys");
        std::fs::create_dir_all(&keys_dir).expect("keys dir");
        let der = sk.to_pkcs8_der().expect("der");
        std::fs::write(keys_dir.join(format!("{kid}.pk8")), der.as_bytes()).expect("pk8");
        let ring = json!({ "active": kid, "keys": [{ "kid": kid, "created_at": 1, "retired_at": null }] });
        std::fs::write(keys_dir.join("keyring.json"), ring.to_string()).expect("ring");
    })
    .await;
    let token = app.login("admin").await;
    assert_eq!(jsonwebtoken::decode_header(&token).expect("hdr").kid.as_deref(), Some(kid.as_str()));
    let (_, jwks) = app.get("/.well-known/jwks.json", None).await;
    use base64::Engine;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sk.verifying_key().to_bytes());
    assert_eq!(jwks["keys"][0]["x"], json!(x), "the same key, now from the database");
    assert!(!keys_dir.exists(), "the private key files are gone");
}
