//! A home-visit request (上门办) goes through its four steps — 发现 by staff, 审核 by a
//! supervisor, 帮办 scheduled with people and materials, 评价 with the resident's rating —
//! and ends with a call-back task; wrong roles and illegal steps are refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_home_visit_request_goes_through_all_four_steps() {
    let app = TestApp::spawn().await;
    let staff = app.login("staff1").await;
    let sup = app.login("supervisor").await;
    let (s, v) = app
        .post(
            "/api/v1/home-visits",
            Some(&staff),
            json!({ "source": "staff", "situation": "独居老人，卧床，需办理高龄津贴", "address": "华山路 100 弄 3 号" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state_zh"], "待审核");
    let id = v["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/home-visits/{id}/steps");
    let step = async |token: &str, body: Value| app.post(&path, Some(token), json!({ "step": body })).await;
    let approve = json!({ "action": "approve", "reason": "符合上门条件" });
    assert_eq!(step(&staff, approve.clone()).await.0, StatusCode::FORBIDDEN, "staff do not approve");
    let (s, _) = step(&sup, json!({ "action": "complete", "outcome": "x" })).await;
    assert_eq!(s, StatusCode::CONFLICT, "not before approval");
    let (s, v) = step(&sup, approve).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("approved")), "{v}");
    let at = signaling_server::db::now_ms() + 2 * 86_400_000;
    let (s, v) = step(
        &sup,
        json!({ "action": "schedule", "at": at, "assignees": ["周社工", "志愿者小李"], "materials": ["身份证", "户口簿", "便携打印机"] }),
    )
    .await;
    assert_eq!((s, v["state_zh"].as_str()), (StatusCode::OK, Some("已安排")), "{v}");
    assert_eq!(v["materials"], json!(["身份证", "户口簿", "便携打印机"]));
    let (s, v) = step(&staff, json!({ "action": "complete", "outcome": "已上门采集材料并受理" })).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("done")), "{v}");
    let (s, v) =
        step(&staff, json!({ "action": "rate", "level": "very_satisfied", "comment": "很方便" })).await;
    assert_eq!((s, v["state_zh"].as_str()), (StatusCode::OK, Some("已评价")), "{v}");
    assert_eq!(v["rating"], "very_satisfied");
    // The same call-back as for orders.
    let (s, cbs) = app.get("/api/v1/callbacks", Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{cbs}");
    assert!(cbs.as_array().expect("cbs").iter().any(|c| c["kind"] == "home_visit"), "{cbs}");
    assert_eq!(app.audit("home_visit.step").await.len(), 4);
    // Staff list only their point's; operators none.
    let (_, mine) = app.get("/api/v1/home-visits", Some(&staff)).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    let op = app.login("operator1").await;
    assert_eq!(app.get("/api/v1/home-visits", Some(&op)).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn home_visit_requests_are_refused_with_reasons_and_bad_input() {
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    let point = app.first_point(&sup).await;
    let (s, v) = app
        .post(
            "/api/v1/home-visits",
            Some(&sup),
            json!({ "source": "hotline_12345", "point_id": point["id"], "situation": "来电申请上门", "address": "某小区" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let path = format!("/api/v1/home-visits/{}/steps", v["id"].as_str().expect("id"));
    let (s, v) = app
        .post(&path, Some(&sup), json!({ "step": { "action": "refuse", "reason": "可到服务点就近办理" } }))
        .await;
    assert_eq!((s, v["decision_reason"].as_str()), (StatusCode::OK, Some("可到服务点就近办理")));
    let (s, _) = app.post(&path, Some(&sup), json!({ "step": { "action": "approve", "reason": "x" } })).await;
    assert_eq!(s, StatusCode::CONFLICT, "refusal is final");
    let staff = app.login("staff1").await;
    for bad in [
        json!({ "source": "staff", "situation": "", "address": "x" }),
        json!({ "source": "staff", "situation": "x".repeat(1001), "address": "x" }),
        json!({ "source": "staff", "situation": "x", "address": "\u{202e}x" }),
        json!({ "source": "elsewhere", "situation": "x", "address": "x" }),
    ] {
        let (s, e) = app.post("/api/v1/home-visits", Some(&staff), bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let (s, _) = app
        .post(
            "/api/v1/home-visits",
            Some(&staff),
            json!({ "source": "referral", "point_id": point["id"], "situation": "x", "address": "x" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
