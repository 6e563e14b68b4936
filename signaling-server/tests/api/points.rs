use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn new_point() -> Value {
    json!({
        "code": "JA-NJ01", "name": "南京西路街道楼宇服务站", "street": "南京西路街道", "committee": "静安别墅居委会",
        "kind": "building", "address": "上海市静安区南京西路 1601 号 3 楼", "longitude": 121.4508, "latitude": 31.2292,
        "opening_hours": "工作日 9:00–17:00", "inspector_name": "赵敏", "inspector_phone": "13800138000"
    })
}

async fn geo_codes(app: &TestApp) -> Vec<String> {
    let (s, geo) = app.get("/api/v1/points.geojson", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(geo["type"], "FeatureCollection");
    geo["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["properties"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn admin_adds_changes_and_closes_a_point_and_the_map_follows() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    assert_eq!(geo_codes(&app).await, vec!["JA-HS01", "JA-JN01"]);

    let (s, p) = app.post("/api/v1/points", Some(&admin), new_point()).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().expect("id").to_owned();
    assert_eq!((p["status"].as_str(), p["version"].as_i64()), (Some("open"), Some(1)));
    assert!(geo_codes(&app).await.contains(&"JA-NJ01".to_owned()));

    let (s, p2) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/points/{id}"),
            Some(&admin),
            Some(json!({ "name": "南京西路楼宇就近办", "expected_version": 1 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p2}");
    assert_eq!(p2["version"], 2);
    let (_, geo) = app.get("/api/v1/points.geojson", None).await;
    let f = geo["features"]
        .as_array()
        .expect("f")
        .iter()
        .find(|f| f["properties"]["code"] == "JA-NJ01")
        .cloned()
        .expect("feature");
    assert_eq!(f["properties"]["name"], "南京西路楼宇就近办");
    assert_eq!(f["geometry"]["coordinates"], json!([121.4508, 31.2292]));
    assert!(
        !geo.to_string().contains("13800138000") && !geo.to_string().contains("赵敏"),
        "no personal data on the public map"
    );

    // A stale edit is refused rather than silently overwriting.
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/points/{id}"),
            Some(&admin),
            Some(json!({ "name": "x", "expected_version": 1 })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (s, _) = app.post(&format!("/api/v1/points/{id}/close"), Some(&admin), json!({ "reason": "" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a reason is required");
    let (s, closed) = app
        .post(&format!("/api/v1/points/{id}/close"), Some(&admin), json!({ "reason": "楼宇装修，暂停服务" }))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (closed["status"].as_str(), closed["closed_reason"].as_str()),
        (Some("closed"), Some("楼宇装修，暂停服务"))
    );
    assert!(!geo_codes(&app).await.contains(&"JA-NJ01".to_owned()));
    let (s, still) = app.get(&format!("/api/v1/points/{id}"), Some(&admin)).await;
    assert_eq!(
        (s, still["status"].as_str()),
        (StatusCode::OK, Some("closed")),
        "closed points stay readable"
    );
    let (s, _) =
        app.post(&format!("/api/v1/points/{id}/close"), Some(&admin), json!({ "reason": "again" })).await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (s, _) = app.post(&format!("/api/v1/points/{id}/reopen"), Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(geo_codes(&app).await.contains(&"JA-NJ01".to_owned()));

    let (s, hist) = app.get(&format!("/api/v1/points/{id}/history"), Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> =
        hist.as_array().expect("h").iter().filter_map(|h| h["action"].as_str()).collect();
    assert_eq!(actions, ["created", "updated", "closed", "reopened"]);
    assert_eq!(hist[0]["point"]["name"], "南京西路街道楼宇服务站", "history keeps the old values");

    for action in ["point.create", "point.update", "point.close", "point.reopen"] {
        assert_eq!(app.audit(action).await.len(), 1, "{action} audited");
    }
}

#[tokio::test]
async fn invalid_points_are_refused_with_reasons() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for (field, value) in [
        ("longitude", json!(200.0)),
        ("latitude", json!(-91.0)),
        ("inspector_phone", json!("call me")),
        ("code", json!("lower case")),
        ("name", json!("")),
        ("name", json!("名".repeat(65))),
        ("kind", json!("castle")),
    ] {
        let mut p = new_point();
        p[field] = value;
        let (s, body) = app.post("/api/v1/points", Some(&admin), p).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{field}: {s} {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (s, _) = app.post("/api/v1/points", Some(&admin), new_point()).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = app.post("/api/v1/points", Some(&admin), new_point()).await;
    assert_eq!(s, StatusCode::CONFLICT, "duplicate code: {body}");
}
