//! Call-backs (回访): every bad rating gets one (from the rectification the switchboard
//! writes, idempotently), every completed order gets one, good ratings by the configured
//! share; the outcome closes the rectification, or closes or reopens the order.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, RatingLevel, ServerMsg};
use signaling_server::cases::callbacks::sync;
use signaling_server::db::now_ms;

use crate::helpers::TestApp;
use crate::ws_client::wrapped_up_call;

/// A call at the first point, wrapped up and rated `level`; returns the session.
async fn rated_call(app: &TestApp, level: RatingLevel) -> uuid::Uuid {
    let (mut term, session) = wrapped_up_call(app).await;
    term.send(&ClientMsg::Rate { session_id: session, level, comment: None }).await;
    term.expect("recorded", |m| matches!(m, ServerMsg::RatingRecorded { .. }).then_some(())).await;
    session
}

async fn open_callbacks(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, v) = app.get("/api/v1/callbacks", Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn every_bad_rating_gets_a_call_back_that_closes_its_rectification() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (s, _) = app
        .call(Method::PUT, "/api/v1/callbacks/settings", Some(&admin), Some(json!({ "good_share_pct": 0 })))
        .await;
    assert_eq!(s, StatusCode::OK);
    let session = rated_call(&app, RatingLevel::VeryDissatisfied).await;
    assert_eq!(sync(&app.state.db, now_ms()).await.expect("sync"), 1);
    assert_eq!(sync(&app.state.db, now_ms()).await.expect("sync"), 0, "idempotent");
    let sup = app.login("supervisor").await;
    let tasks = open_callbacks(&app, &sup).await;
    let task = tasks.iter().find(|t| t["session_id"] == session.to_string()).cloned().expect("task");
    assert_eq!(task["kind_zh"], "差评回访");
    // The rectification's deadline, 15 working days by the calendar.
    let (_, rects) = app.get("/api/v1/rectifications", Some(&sup)).await;
    let rect = rects
        .as_array()
        .expect("r")
        .iter()
        .find(|r| r["session_id"] == session.to_string())
        .cloned()
        .expect("rect");
    assert_eq!(task["due_at"], rect["due_at"]);
    let op = app.login("operator1").await;
    let path = format!("/api/v1/callbacks/{}/result", task["id"].as_str().expect("id"));
    let (s, _) = app.post(&path, Some(&op), json!({ "satisfied": true, "result": "x" })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "bad-rating call-backs are the supervisors'");
    let (s, e) = app.post(&path, Some(&sup), json!({ "satisfied": true, "result": "" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, done) = app
        .post(
            &path,
            Some(&sup),
            json!({ "satisfied": true, "result": "居民表示理解", "rectification": "窗口补充材料清单说明" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["done"], true);
    let (_, closed) = app.get("/api/v1/rectifications?status=closed", Some(&sup)).await;
    let rect = closed
        .as_array()
        .expect("r")
        .iter()
        .find(|r| r["session_id"] == session.to_string())
        .cloned()
        .expect("closed");
    assert_eq!(rect["callback_result"], "居民表示理解");
    assert_eq!(rect["rectification"], "窗口补充材料清单说明");
    let (s, _) = app.post(&path, Some(&sup), json!({ "satisfied": true, "result": "again" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_completed_order_is_called_back_and_reopened_when_unsatisfied() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    app.call(Method::PUT, "/api/v1/callbacks/settings", Some(&admin), Some(json!({ "good_share_pct": 100 })))
        .await;
    let session = rated_call(&app, RatingLevel::Satisfied).await;
    assert_eq!(sync(&app.state.db, now_ms()).await.expect("sync"), 1, "a good rating at a 100 % share");
    let op = app.login("operator1").await;
    let (s, order) = app
        .post(
            "/api/v1/orders",
            Some(&op),
            json!({ "source": "wrap_up", "session_id": session, "summary": "补交材料后办理", "deadline": { "class": "five_days" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    let steps = format!("/api/v1/orders/{id}/steps");
    for st in [
        json!({ "action": "classify", "category": "社保" }),
        json!({ "action": "transfer", "department": "区社保中心" }),
        json!({ "action": "complete", "result": "已办结" }),
    ] {
        assert_eq!(app.post(&steps, Some(&op), json!({ "step": st })).await.0, StatusCode::OK);
    }
    let tasks = open_callbacks(&app, &op).await;
    let task = tasks.iter().find(|t| t["order_id"] == id.as_str()).cloned().expect("order call-back");
    assert_eq!(task["kind_zh"], "工单回访");
    assert_eq!(task["order_number"], order["number"]);
    let op2 = app.login("operator2").await;
    assert!(open_callbacks(&app, &op2).await.iter().all(|t| t["order_id"] != id.as_str()), "not theirs");
    let path = format!("/api/v1/callbacks/{}/result", task["id"].as_str().expect("id"));
    let (s, _) = app.post(&path, Some(&op2), json!({ "satisfied": false, "result": "x" })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post(&path, Some(&op), json!({ "satisfied": false, "result": "材料仍未退还" })).await;
    assert_eq!(s, StatusCode::OK);
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&op)).await;
    assert_eq!(o["state"], "transferred", "reopened: {o}");
    assert_eq!(
        o["history"].as_array().and_then(|h| h.last()).map(|e| e["action"].clone()),
        Some(json!("reopen"))
    );
    // Completed again: a new call-back; satisfied this time closes the order (反馈).
    assert_eq!(
        app.post(&steps, Some(&op), json!({ "step": { "action": "complete", "result": "材料已退还" } }))
            .await
            .0,
        StatusCode::OK
    );
    let tasks = open_callbacks(&app, &op).await;
    let again = tasks.iter().find(|t| t["order_id"] == id.as_str()).cloned().expect("second call-back");
    assert_ne!(again["id"], task["id"]);
    let path = format!("/api/v1/callbacks/{}/result", again["id"].as_str().expect("id"));
    assert_eq!(
        app.post(&path, Some(&op), json!({ "satisfied": true, "result": "满意" })).await.0,
        StatusCode::OK
    );
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&op)).await;
    assert_eq!(o["state_zh"], "反馈");
    // The good-rating sample is there for supervisors.
    let sup = app.login("supervisor").await;
    let all = open_callbacks(&app, &sup).await;
    assert!(
        all.iter().any(|t| t["kind"] == "good_rating" && t["session_id"] == session.to_string()),
        "{all:?}"
    );
    let (s, _) = app
        .call(Method::PUT, "/api/v1/callbacks/settings", Some(&admin), Some(json!({ "good_share_pct": 101 })))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
