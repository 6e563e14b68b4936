//! Work orders (工单) over REST: a call wrapped up as `needs_materials` becomes an order with a
//! working-day deadline; it goes 受理 → 分类 → 转办 → 挂起/恢复 → 办结 → 反馈 with its history,
//! illegal steps are refused, it escalates when near due and overdue, and each role sees only
//! its own orders.

use reqwest::StatusCode;
use serde_json::{Value, json};
use signaling_server::calendar::{Calendar, cst_day, day_start};
use signaling_server::cases::orders::escalate_due;

use crate::helpers::TestApp;
use crate::ws_client::{item_id, wrapped_up_call};

async fn step(app: &TestApp, token: &str, id: &str, step: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/orders/{id}/steps"), Some(token), json!({ "step": step })).await
}

#[tokio::test]
async fn a_wrap_up_becomes_an_order_that_goes_through_every_step() {
    let app = TestApp::spawn().await;
    let (_, session) = wrapped_up_call(&app).await;
    let op1 = app.login("operator1").await;
    let op2 = app.login("operator2").await;
    let body = json!({
        "source": "wrap_up", "session_id": session, "summary": "居民需补交户口簿复印件后继续办理",
        "deadline": { "class": "five_days" }, "case_number": "SB-2026-000123",
        "outstanding_materials": ["身份证"]
    });
    let (s, _) = app.post("/api/v1/orders", Some(&op2), body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the call's operator opens its order");
    let (s, order) = app.post("/api/v1/orders", Some(&op1), body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    assert_eq!(order["state"], "accepted");
    assert_eq!(order["state_zh"], "受理");
    assert_eq!(order["source_zh"], "通话转工单");
    assert!(order["number"].as_str().expect("number").starts_with("GD2"), "{order}");
    assert_eq!(order["outstanding_materials"], json!(["身份证"]));
    assert_eq!(order["working_days_left"], 5, "five working days from today");
    let due = order["due_at"].as_i64().expect("due");
    let cal = Calendar::builtin();
    assert!(cal.is_working_day(cst_day(due)) && (due + 1) % 60_000 == 0, "ends a China working day");
    assert!(order["due_at_cst"].as_str().expect("cst").ends_with(" 23:59"), "{order}");
    // The console retrying the same wrap-up gets the same order.
    let (s, again) = app.post("/api/v1/orders", Some(&op1), body).await;
    assert_eq!((s, again["id"].as_str()), (StatusCode::OK, Some(id.as_str())));

    // Visibility: the operator sees it; another operator neither lists nor reads it.
    let (_, mine) = app.get("/api/v1/orders", Some(&op1)).await;
    assert!(mine.as_array().expect("list").iter().any(|o| o["id"] == id.as_str()));
    let (_, theirs) = app.get("/api/v1/orders", Some(&op2)).await;
    assert!(theirs.as_array().expect("list").iter().all(|o| o["id"] != id.as_str()));
    let (s, _) = app.get(&format!("/api/v1/orders/{id}"), Some(&op2)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = step(&app, &op2, &id, json!({ "action": "classify", "category": "社保" })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Illegal steps are refused with the reason.
    let (s, e) = step(&app, &op1, &id, json!({ "action": "complete", "result": "x" })).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["error"]["message"].as_str().unwrap_or_default().contains("受理"), "{e}");

    let (s, o) = step(&app, &op1, &id, json!({ "action": "classify", "category": "社会保障" })).await;
    assert_eq!((s, o["state"].as_str()), (StatusCode::OK, Some("classified")), "{o}");
    let (s, o) = step(&app, &op1, &id, json!({ "action": "return", "reason": "分类有误" })).await;
    assert_eq!((s, o["state"].as_str()), (StatusCode::OK, Some("accepted")), "{o}");
    step(&app, &op1, &id, json!({ "action": "classify", "category": "社会保障" })).await;
    let (s, o) = step(&app, &op1, &id, json!({ "action": "transfer", "department": "区社保中心" })).await;
    assert_eq!((s, o["state"].as_str()), (StatusCode::OK, Some("transferred")), "{o}");
    let (s, o) = step(&app, &op1, &id, json!({ "action": "suspend", "reason": "等待居民补交材料" })).await;
    assert_eq!((s, o["suspended"].as_bool()), (StatusCode::OK, Some(true)), "{o}");
    let (s, _) = step(&app, &op1, &id, json!({ "action": "complete", "result": "x" })).await;
    assert_eq!(s, StatusCode::CONFLICT, "a suspended order only resumes");
    let (s, o) = step(&app, &op1, &id, json!({ "action": "resume" })).await;
    assert_eq!((s, o["suspended"].as_bool()), (StatusCode::OK, Some(false)), "{o}");
    let (s, _) = step(&app, &op1, &id, json!({ "action": "reopen", "reason": "x" })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "operators do not reopen");
    let (s, o) = step(&app, &op1, &id, json!({ "action": "complete", "result": "已补材料并办结" })).await;
    assert_eq!((s, o["state"].as_str()), (StatusCode::OK, Some("completed")), "{o}");
    assert!(o["closed_at"].is_i64());
    let (s, o) = step(&app, &op1, &id, json!({ "action": "feedback", "feedback": "满意" })).await;
    assert_eq!((s, o["state_zh"].as_str()), (StatusCode::OK, Some("反馈")), "{o}");
    let sup = app.login("supervisor").await;
    let (s, o) = step(&app, &sup, &id, json!({ "action": "reopen", "reason": "回访不满意" })).await;
    assert_eq!((s, o["state"].as_str()), (StatusCode::OK, Some("transferred")), "{o}");

    // Every step is in the history, with actor and time.
    let (_, full) = app.get(&format!("/api/v1/orders/{id}"), Some(&op1)).await;
    let actions: Vec<&str> =
        full["history"].as_array().expect("history").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "create", "classify", "return", "classify", "transfer", "suspend", "resume", "complete",
            "feedback", "reopen"
        ]
    );
    assert!(
        full["history"]
            .as_array()
            .expect("h")
            .iter()
            .all(|e| e["at"].is_i64() && e["actor_name"].is_string())
    );
    assert_eq!(app.audit("order.step").await.len(), 9);

    // Hostile input.
    for bad in [
        json!({ "action": "classify", "category": "" }),
        json!({ "action": "classify", "category": "x".repeat(33) }),
        json!({ "action": "transfer", "department": "\u{0007}" }),
        json!({ "action": "fly" }),
        json!({ "action": "classify", "category": "x", "extra": 1 }),
    ] {
        let (s, e) = step(&app, &sup, &id, bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let (s, _) = app
        .post(
            &format!("/api/v1/orders/{id}/steps"),
            Some(&sup),
            json!({ "expected_version": 1, "step": { "action": "resume" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "stale version");
}

#[tokio::test]
async fn orders_escalate_near_due_and_overdue_at_nine_on_working_days() {
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    let point = app.first_point(&sup).await;
    let item = item_id(&app, &sup, "MZ-001").await;
    let (s, order) = app
        .post(
            "/api/v1/orders",
            Some(&sup),
            json!({ "source": "hotline_12345", "source_ref": "12345-20261205-0088", "point_id": point["id"],
                    "item_id": item, "summary": "来电反映低保申请进度", "deadline": { "class": "five_days" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    assert_eq!(order["source_zh"], "12345 热线");
    let id: uuid::Uuid = order["id"].as_str().expect("id").parse().expect("uuid");
    let due = order["due_at"].as_i64().expect("due");
    let due_day = cst_day(due);
    let cal = Calendar::builtin();
    // Nothing before 09:00 of the due day; near due from 09:00; once.
    assert!(escalate_due(&app.state, day_start(due_day) + 8 * 3_600_000).await.expect("run").is_empty());
    let raised = escalate_due(&app.state, day_start(due_day) + 9 * 3_600_000).await.expect("run");
    assert_eq!(raised, vec![(id, shared::cases::EscalationLevel::NearDue)]);
    assert!(escalate_due(&app.state, day_start(due_day) + 15 * 3_600_000).await.expect("run").is_empty());
    // Overdue at 09:00 of the next working day, not at midnight.
    let next = cal.add_working_days(due_day, 1);
    assert!(escalate_due(&app.state, day_start(due_day + 1) + 60_000).await.expect("run").is_empty());
    let raised = escalate_due(&app.state, day_start(next) + 9 * 3_600_000).await.expect("run");
    assert_eq!(raised, vec![(id, shared::cases::EscalationLevel::Overdue)]);
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&sup)).await;
    assert_eq!(o["escalation"], "overdue");
    let last = o["history"].as_array().expect("history").last().cloned().expect("event");
    assert_eq!(last["action_zh"], "超期提级");
    // The overdue board lists it (escalated), and the audit log has both raises.
    let (_, board) = app.get("/api/v1/orders?status=overdue", Some(&sup)).await;
    assert!(board.as_array().expect("board").iter().any(|o| o["id"] == id.to_string()));
    assert_eq!(app.audit("order.escalate").await.len(), 2);
}

#[tokio::test]
async fn staff_open_and_see_only_their_points_orders() {
    let app = TestApp::spawn().await;
    let staff = app.login_full("staff1").await;
    let token = staff["access_token"].as_str().expect("token").to_owned();
    let my_point = staff["user"]["point_id"].as_str().expect("point").to_owned();
    let item = item_id(&app, &token, "MZ-001").await;
    let body = json!({ "source": "point", "item_id": item, "summary": "老人行动不便，需上门协助", "deadline": { "class": "ten_days" } });
    let (s, order) = app.post("/api/v1/orders", Some(&token), body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    assert_eq!(order["point_id"], my_point.as_str());
    let (_, list) = app.get("/api/v1/orders", Some(&token)).await;
    assert!(list.as_array().expect("list").iter().all(|o| o["point_id"] == my_point.as_str()));
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (s, _) = step(&app, &token, order["id"].as_str().expect("id"), json!({ "action": "resume" })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "staff report, the centre processes");
    // A staff member cannot claim an outside source; an operator cannot open a point order.
    let (s, _) = app.post("/api/v1/orders", Some(&token), json!({ "source": "hotline_12345", "point_id": my_point, "item_id": item, "summary": "x", "deadline": { "class": "same_day" } })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let op = app.login("operator1").await;
    let (s, _) = app.post("/api/v1/orders", Some(&op), body).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Bad bodies.
    for bad in [
        json!({ "source": "point", "item_id": item, "summary": "", "deadline": { "class": "same_day" } }),
        json!({ "source": "point", "item_id": item, "summary": "x", "deadline": { "class": "set", "due_at": 1 } }),
        json!({ "source": "point", "item_id": item, "summary": "x", "deadline": { "class": "someday" } }),
        json!({ "source": "point", "summary": "x", "deadline": { "class": "same_day" } }),
        json!({ "source": "point", "item_id": item, "summary": "x", "deadline": { "class": "same_day" }, "outstanding_materials": vec!["a"; 31] }),
    ] {
        let (s, e) = app.post("/api/v1/orders", Some(&token), bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let (s, _) = app.post("/api/v1/orders", Some(&token), json!({ "source": "point", "item_id": uuid::Uuid::new_v4(), "summary": "x", "deadline": { "class": "same_day" } })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_phone_number_is_kept_only_with_consent_encrypted_masked_and_revealed_with_audit() {
    const PHONE: &str = "13812345678";
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    let point = app.first_point(&sup).await;
    let item = item_id(&app, &sup, "MZ-001").await;
    let (_, order) = app
        .post(
            "/api/v1/orders",
            Some(&sup),
            json!({ "source": "suggestion_box", "point_id": point["id"], "item_id": item,
                    "summary": "意见箱：希望延长周末开放时间", "deadline": { "class": "ten_days" } }),
        )
        .await;
    let id = order["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/orders/{id}/contact");
    let consent = "您同意我们通过此电话告知办理进度并回访吗？";
    let put = |body: Value| app.call(reqwest::Method::PUT, &path, Some(&sup), Some(body));
    for bad in [
        json!({ "phone": PHONE, "consent_text": consent, "consent": false }),
        json!({ "phone": PHONE, "consent_text": "", "consent": true }),
        json!({ "phone": "1381234567", "consent_text": consent, "consent": true }),
        json!({ "phone": "+86 13812345678", "consent_text": consent, "consent": true }),
        json!({ "phone": "-------", "consent_text": consent, "consent": true }),
        json!({ "phone": "1".repeat(5000), "consent_text": consent, "consent": true }),
    ] {
        let (s, e) = put(bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let (s, o) = put(json!({ "phone": PHONE, "consent_text": consent, "consent": true })).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["phone_masked"], "138****5678");
    assert_eq!(o["consent_text"], consent);
    assert!(o["consent_at"].is_i64());
    assert!(!o.to_string().contains(PHONE), "never in a view");
    let stored: String = sqlx::query_scalar("SELECT phone_enc FROM work_orders WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row");
    assert!(stored.starts_with("v1:") && !stored.contains(PHONE), "encrypted at rest");
    // Reveal: audited; an operator who has nothing to do with the order is refused, audited too.
    let op2 = app.login("operator2").await;
    let reveal = format!("/api/v1/orders/{id}/contact/reveal");
    let (s, _) = app.post(&reveal, Some(&op2), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, r) = app.post(&reveal, Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["phone"], PHONE);
    let audits = app.audit("order.contact.reveal").await;
    let outcomes: Vec<&str> = audits.iter().filter_map(|a| a["outcome"].as_str()).collect();
    assert!(outcomes.contains(&"success") && outcomes.contains(&"denied"), "{audits:?}");
    assert!(!crate::helpers::captured_logs().contains(PHONE), "never logged");
    // Erased with the case's retention once closed.
    let now = signaling_server::db::now_ms();
    let purged = signaling_server::cases::orders::purge_contacts(&app.state.db, 1, now + 3 * 86_400_000)
        .await
        .expect("purge");
    assert_eq!(purged, 0, "an open order keeps its contact");
    for s in [
        json!({ "action": "classify", "category": "服务时间" }),
        json!({ "action": "transfer", "department": "街道社区服务办" }),
        json!({ "action": "complete", "result": "已调整周六开放" }),
    ] {
        assert_eq!(step(&app, &sup, &id, s).await.0, StatusCode::OK);
    }
    let purged = signaling_server::cases::orders::purge_contacts(&app.state.db, 1, now + 3 * 86_400_000)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    let (s, _) = app.post(&reveal, Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "gone");
}
