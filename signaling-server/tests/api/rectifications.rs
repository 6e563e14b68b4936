//! 差评整改: listing negative ratings' rectifications and closing them with a call-back.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::stats::{DAY_MS, Fixture, S, assert_no_resident_data, today_start};

/// Three rectifications: one overdue, one due later, one already closed. Returns their IDs.
async fn three(fx: &Fixture<'_>) -> (String, String, String) {
    let base = today_start() - 20 * DAY_MS;
    let mut ids = Vec::new();
    for (i, (number, level, due, closed)) in [
        ("A101", "very_dissatisfied", base + DAY_MS, false),
        ("A102", "dissatisfied", today_start() + 10 * DAY_MS, false),
        ("A103", "dissatisfied", base + 15 * DAY_MS, true),
    ]
    .into_iter()
    .enumerate()
    {
        let created = base + 9 * 3_600_000 + i64::try_from(i).expect("i") * 3_600_000;
        let ticket = fx.ticket(number, created, Some(created + 30_000), false).await;
        let session = fx
            .session(S {
                ticket: &ticket,
                operator: &fx.operator1,
                line: &fx.line,
                started_at: created + 30_000,
                wait_ms: 30_000,
                ended_at: Some(created + 600_000),
                outcome: Some("needs_materials"),
                transferred_from: None,
            })
            .await;
        fx.rating(&session, &ticket, level, Some(&format!("{number} 态度不好")), created + 700_000).await;
        ids.push(fx.rectification(&session, level, created + 700_000, due, closed).await);
    }
    (ids[0].clone(), ids[1].clone(), ids[2].clone())
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().expect("list").iter().map(|r| r["id"].as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn rectifications_are_listed_by_urgency_with_the_overdue_flag() {
    let app = TestApp::spawn().await;
    let fx = Fixture::new(&app).await;
    let (overdue, later, closed) = three(&fx).await;
    let sup = app.login("supervisor").await;

    let (s, open) = app.get("/api/v1/rectifications", Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{open}");
    assert_no_resident_data(&open);
    assert_eq!(ids(&open), [overdue.as_str(), later.as_str()], "open ones by default, most urgent first");
    let r = &open[0];
    assert_eq!(
        (r["ticket_number"].as_str(), r["point_name"].as_str(), r["item_name"].as_str()),
        (Some("A101"), Some("华山居委会静邻帮办点"), Some("最低生活保障申请"))
    );
    assert_eq!(
        (r["operator_id"].as_str(), r["operator_name"].as_str()),
        (Some(fx.operator1.as_str()), Some("陈受理员"))
    );
    assert_eq!(
        (r["level"].as_str(), r["level_zh"].as_str()),
        (Some("very_dissatisfied"), Some("非常不满意"))
    );
    assert_eq!((r["comment"].as_str(), r["status"].as_str()), (Some("A101 态度不好"), Some("open")));
    assert_eq!((r["overdue"].as_bool(), open[1]["overdue"].as_bool()), (Some(true), Some(false)));
    assert!(r["callback_at"].is_null() && r["closed_by"].is_null() && r["closed_at"].is_null());

    let (_, c) = app.get("/api/v1/rectifications?status=closed", Some(&sup)).await;
    assert_eq!(ids(&c), [closed.as_str()]);
    assert_eq!(c[0]["overdue"], false, "closed in time");
    assert_eq!(c[0]["closed_by_name"], "张主管");
    let (_, all) = app.get("/api/v1/rectifications?status=all", Some(&app.login("admin").await)).await;
    assert_eq!(ids(&all).len(), 3);
    let (_, one) = app.get("/api/v1/rectifications?status=open&limit=1", Some(&sup)).await;
    assert_eq!(ids(&one), [overdue.as_str()]);

    for bad in ["status=pending", "status=open%27--", "limit=0", "limit=1001", "limit=x", "foo=1"] {
        let (s, b) = app.get(&format!("/api/v1/rectifications?{bad}"), Some(&sup)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{bad}: {b}"
        );
    }
}

#[tokio::test]
async fn a_callback_closes_the_rectification_once_and_is_audited() {
    let app = TestApp::spawn().await;
    let fx = Fixture::new(&app).await;
    let (overdue, later, _) = three(&fx).await;
    let sup = app.login("supervisor").await;
    let path = format!("/api/v1/rectifications/{overdue}/callback");

    for (body, why) in [
        (json!({ "callback_result": "" }), "empty result"),
        (json!({ "callback_result": "   " }), "blank result"),
        (json!({ "callback_result": "好".repeat(501) }), "result too long"),
        (json!({ "callback_result": "已回访\u{0007}" }), "control character"),
        (
            json!({ "callback_result": "已回访", "rectification": "改".repeat(1001) }),
            "rectification too long",
        ),
        (json!({ "callback_result": "已回访", "status": "closed" }), "unknown field"),
        (json!({}), "missing result"),
    ] {
        let (s, b) = app.post(&path, Some(&sup), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {b}");
    }
    let (_, still) = app.get("/api/v1/rectifications", Some(&sup)).await;
    assert_eq!(ids(&still).len(), 2, "nothing closed by refused calls");

    let result = "已电话回访，群众对补充材料的解释表示认可";
    let measures = "对受理员进行一次性告知制度培训";
    let (s, done) =
        app.post(&path, Some(&sup), json!({ "callback_result": result, "rectification": measures })).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(
        (done["status"].as_str(), done["closed_by"].as_str()),
        (Some("closed"), Some(fx.supervisor.as_str()))
    );
    assert_eq!(
        (done["callback_result"].as_str(), done["rectification"].as_str()),
        (Some(result), Some(measures))
    );
    assert_eq!(done["closed_by_name"], "张主管");
    let closed_at = done["closed_at"].as_i64().expect("closed_at");
    assert_eq!(done["callback_at"].as_i64(), Some(closed_at));
    assert!(closed_at >= today_start());
    assert_eq!(done["overdue"], true, "closed after the due time");
    assert_no_resident_data(&done);

    let (s, again) = app.post(&path, Some(&sup), json!({ "callback_result": "再次回访" })).await;
    assert_eq!((s, again["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));

    let (_, open) = app.get("/api/v1/rectifications", Some(&sup)).await;
    assert_eq!(ids(&open), [later.as_str()]);

    // Without measures, by an admin.
    let admin = app.login("admin").await;
    let (s, done2) = app
        .post(
            &format!("/api/v1/rectifications/{later}/callback"),
            Some(&admin),
            json!({ "callback_result": "已回访" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done2}");
    assert!(done2["rectification"].is_null());
    assert_eq!(done2["overdue"], false);

    let audit = app.audit("rectification.close").await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    let first = audit.iter().find(|e| e["target_id"] == overdue.as_str()).expect("audited");
    assert_eq!(
        (first["actor_name"].as_str(), first["target_type"].as_str()),
        (Some("张主管"), Some("rectification"))
    );
    assert_eq!(first["actor_id"], fx.supervisor.as_str());
    assert_eq!(first["detail"]["level"], "very_dissatisfied");
    assert!(!first.to_string().contains(result), "the call-back text stays out of the audit log");
}

#[tokio::test]
async fn rectification_endpoints_check_roles_and_ids() {
    let app = TestApp::spawn().await;
    let fx = Fixture::new(&app).await;
    let (overdue, _, _) = three(&fx).await;
    let (_, device) = app.enroll_terminal(0).await;
    let body = json!({ "callback_result": "已回访" });
    let path = format!("/api/v1/rectifications/{overdue}/callback");
    assert_eq!(app.get("/api/v1/rectifications", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post(&path, None, body.clone()).await.0, StatusCode::UNAUTHORIZED);
    for user in ["operator1", "staff1"] {
        let token = app.login(user).await;
        assert_eq!(app.get("/api/v1/rectifications", Some(&token)).await.0, StatusCode::FORBIDDEN, "{user}");
        assert_eq!(app.post(&path, Some(&token), body.clone()).await.0, StatusCode::FORBIDDEN, "{user}");
    }
    assert_eq!(app.get("/api/v1/rectifications", Some(&device)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.post(&path, Some(&device), body.clone()).await.0, StatusCode::FORBIDDEN);
    assert!(app.audit("rectification.close").await.is_empty());

    let sup = app.login("supervisor").await;
    let unknown = uuid::Uuid::new_v4();
    let (s, _) =
        app.post(&format!("/api/v1/rectifications/{unknown}/callback"), Some(&sup), body.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post("/api/v1/rectifications/not-a-uuid/callback", Some(&sup), body.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, open) = app.get("/api/v1/rectifications", Some(&sup)).await;
    assert_eq!(ids(&open).len(), 2, "nothing closed");
}
