//! The server does what its OpenAPI document says (issue #13 item 8), for the differences the
//! schema-driven fuzzer (scripts/openapi-check.sh) found: bodies are read as JSON Schema reads
//! them, query parameters are taken exactly as documented, and an admin cannot reset their own
//! password without the current one.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

/// A JSON array is not an object: serde would fill a struct from `[null, null]` by position
/// and the PATCH would succeed. Now it is refused and nothing changes.
#[tokio::test]
async fn an_array_is_not_an_object() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (_, lines) = app.get("/api/v1/lines", Some(&admin)).await;
    let line = &lines[0];
    let id = line["id"].as_str().expect("line id");
    for body in [json!([null, null]), json!([]), json!(["改名", 1, false]), json!("name"), json!(null)] {
        let (s, err) =
            app.call(Method::PATCH, &format!("/api/v1/lines/{id}"), Some(&admin), Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["error"]["code"], "validation_failed", "{err}");
    }
    let (s, err) = app.post("/api/v1/auth/login", None, json!(["admin", "bangban-demo"])).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (_, after) = app.get("/api/v1/lines", Some(&admin)).await;
    assert_eq!(&after[0], line, "unchanged");
}

/// JSON Schema counts `10.0` as an integer, so the server does too; a fraction is still refused.
#[tokio::test]
async fn an_integral_number_is_an_integer() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let put = |v: serde_json::Value| {
        app.call(
            Method::PUT,
            "/api/v1/callbacks/settings",
            Some(&admin),
            Some(json!({ "good_share_pct": v })),
        )
    };
    let (s, body) = put(json!(10.0)).await;
    assert!(s.is_success(), "{body}");
    for v in [json!(10.5), json!(1e300), json!(-0.5)] {
        let (s, body) = put(v.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}: {body}");
    }
}

/// Query parameters are taken as documented: padding is not trimmed away, a UUID is the
/// hyphenated form, an empty value is refused except for UUID filters (empty: no filter).
#[tokio::test]
async fn query_parameters_are_exact() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for path in [
        "/api/v1/stats/summary?from=",
        "/api/v1/sessions?limit=%205",
        "/api/v1/sessions?operator_id=00000000000000000000000000000000",
        "/api/v1/rectifications?status=",
        "/api/v1/notifications?order_id=%20",
        "/api/v1/notifications?status=%20all",
        "/api/v1/orders?status=",
        "/api/v1/orders?limit=",
        "/api/v1/callbacks?status=",
        "/api/v1/problems?list=",
        "/api/v1/reports?group=",
        "/api/v1/calendar/deadline?days=%205",
        "/api/v1/terminal-alarms?state=",
    ] {
        let (s, body) = app.get(path, Some(&admin)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
    for path in
        ["/api/v1/stats/daily?days=3", "/api/v1/orders?status=all&limit=5", "/api/v1/problems?list=all"]
    {
        let (s, body) = app.get(path, Some(&admin)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
    }
}

/// An admin's token alone cannot take the admin's account over: resetting one's own password
/// is refused (409) and the token keeps working; the current password is still the one.
#[tokio::test]
async fn an_admin_cannot_reset_their_own_password() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (_, me) = app.get("/api/v1/me", Some(&admin)).await;
    let id = me["id"].as_str().expect("id");
    let (s, body) = app
        .post(
            &format!("/api/v1/users/{id}/password"),
            Some(&admin),
            json!({ "new_password": "Taken-over-1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _) = app.get("/api/v1/me", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "the token still works");
    app.login("admin").await;
}
