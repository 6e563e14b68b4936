//! Issue 14's "done when", end to end in one run: staff at the kiosk record the resident's
//! consented phone number; the call is wrapped up as 需补材料 and becomes a work order with a
//! working-day deadline (across the 2026 Spring Festival: Feb 15–23 off, Feb 14 and 28 worked);
//! the consented phone receives the progress through the signed webhook; the order escalates
//! (提级) when near due and overdue; it is closed and its call-back recorded; the resident's
//! bad rating becomes a rectification with a call-back task; a home visit goes through all four
//! steps; the weekly report exports as XLSX.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, RatingLevel, ServerMsg};
use signaling_server::calendar::{cst_date, day_end, day_start, days_from_civil};
use signaling_server::cases::orders::escalate_due;
use signaling_server::db::now_ms;

use crate::cases_outbox::{SECRET, receiver, until};
use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_assisted_ticket};

const PHONE: &str = "13912345678";

fn cst(y: i64, m: i64, d: i64, h: i64) -> i64 {
    day_start(days_from_civil(y, m, d)) + h * 3_600_000
}

#[tokio::test]
async fn a_case_from_the_kiosk_to_the_weekly_report() {
    // The worker stays out of the way: escalations are run here with an explicit time.
    let app = TestApp::spawn_with(|c| c.cases_interval_ms = 600_000).await;
    let admin = app.login("admin").await;
    let sup = app.login("supervisor").await;
    let (url, rx) = receiver().await;
    let hook =
        json!({ "url": url, "secret": SECRET, "enabled": true, "max_attempts": 5, "retry_base_ms": 100 });
    let (s, v) = app.call(Method::PUT, "/api/v1/notifications/webhook", Some(&admin), Some(hook)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app
        .call(Method::PUT, "/api/v1/callbacks/settings", Some(&admin), Some(json!({ "good_share_pct": 0 })))
        .await;
    assert_eq!(s, StatusCode::OK);

    // The kiosk: staff signed in take the ticket and record the phone number with consent.
    let (_, device) = app.enroll_terminal(0).await;
    let staff = app.login("staff1").await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "SB-003").await;
    let ticket = take_assisted_ticket(&mut term, item, &staff).await;
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/terminals/me/tickets/{ticket}/contact"),
            Some(&device),
            Some(json!({ "phone": PHONE, "consent_text": shared::cases::CONSENT_TEXT_ZH, "consent": true, "staff_token": staff })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The call, wrapped up as 需补材料; the resident rates it very dissatisfied.
    op.expect("ringing", |m| matches!(m, ServerMsg::Ringing { .. }).then_some(())).await;
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = op
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::WrapUp {
        session_id: session,
        outcome: shared::protocol::Outcome::NeedsMaterials,
        notes: None,
    })
    .await;
    term.expect("rate_request", |m| matches!(m, ServerMsg::RateRequest { .. }).then_some(())).await;
    term.send(&ClientMsg::Rate { session_id: session, level: RatingLevel::VeryDissatisfied, comment: None })
        .await;
    term.expect("recorded", |m| matches!(m, ServerMsg::RatingRecorded { .. }).then_some(())).await;

    // The work order, from the wrap-up, with the outstanding material from the item's checklist.
    let op1 = app.login("operator1").await;
    let (s, order) = app
        .post(
            "/api/v1/orders",
            Some(&op1),
            json!({ "source": "wrap_up", "session_id": session, "summary": "居民需补交身份证复印件",
                    "deadline": { "class": "five_days" }, "outstanding_materials": ["身份证"] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    assert_eq!(order["phone_masked"], "139****5678", "the kiosk's number reached the order");
    assert_eq!(order["materials"][0]["outstanding"], true, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    until(&rx, "the accepted message at the resident's phone", |got| {
        got.iter().any(|m| m["topic"] == "order.accepted" && m["phone"] == PHONE)
    })
    .await;

    // The deadline counts working days: accepted Thursday 2026-02-12 with five, it falls on the
    // 13th, the 14th (make-up Saturday), then after the holiday the 24th, 25th and 26th.
    sqlx::query("UPDATE work_orders SET clock_start = $1 WHERE id = $2")
        .bind(cst(2026, 2, 12, 10))
        .bind(&id)
        .execute(&app.state.db.pool)
        .await
        .expect("clock");
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&sup)).await;
    assert_eq!(o["due_at"], day_end(days_from_civil(2026, 2, 26)), "{o}");
    assert_eq!(o["due_at_cst"], "2026-02-26 23:59");
    // Escalations: near due on the 26th from 09:00, overdue on the next working day from 09:00.
    assert!(escalate_due(&app.state, cst(2026, 2, 25, 17)).await.expect("run").is_empty());
    let raised = escalate_due(&app.state, cst(2026, 2, 26, 9)).await.expect("run");
    assert_eq!(raised.len(), 1);
    let raised = escalate_due(&app.state, cst(2026, 2, 27, 9)).await.expect("run");
    assert_eq!(raised.len(), 1);
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&sup)).await;
    assert_eq!(o["escalation"], "overdue", "{o}");
    let actions: Vec<&str> =
        o["history"].as_array().expect("h").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.ends_with(&["escalate_near_due", "escalate_overdue"]), "{actions:?}");
    let (_, tasks) = app.get("/api/v1/tasks", Some(&sup)).await;
    assert!(
        tasks
            .as_array()
            .expect("tasks")
            .iter()
            .any(|t| t["topic"] == "order.overdue" && t["order_id"] == id.as_str()),
        "the supervisors are notified: {tasks}"
    );
    let (_, board) = app.get("/api/v1/orders?status=overdue", Some(&sup)).await;
    assert!(board.as_array().expect("board").iter().any(|b| b["id"] == id.as_str()));

    // Progress to 办结: the resident's phone hears of it; the order's call-back closes it.
    let steps = format!("/api/v1/orders/{id}/steps");
    for step in [
        json!({ "action": "classify", "category": "社保" }),
        json!({ "action": "transfer", "department": "社保中心" }),
        json!({ "action": "complete", "result": "材料已补齐，已办结" }),
    ] {
        let (s, v) = app.post(&steps, Some(&op1), json!({ "step": step })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    until(&rx, "the completed message at the resident's phone", |got| {
        got.iter().any(|m| m["topic"] == "order.completed" && m["phone"] == PHONE)
    })
    .await;
    let (_, cbs) = app.get("/api/v1/callbacks", Some(&sup)).await;
    let cb = cbs
        .as_array()
        .expect("cbs")
        .iter()
        .find(|c| c["order_id"] == id.as_str())
        .cloned()
        .expect("order call-back");
    assert_eq!(cb["phone_masked"], "139****5678");
    let (s, v) = app
        .post(
            &format!("/api/v1/callbacks/{}/result", cb["id"].as_str().expect("id")),
            Some(&sup),
            json!({ "satisfied": true, "result": "居民满意" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&sup)).await;
    assert_eq!(o["state"], "closed", "{o}");

    // The bad rating: a rectification and its call-back task.
    signaling_server::cases::callbacks::sync(&app.state.db, now_ms()).await.expect("sync");
    let (_, rects) = app.get("/api/v1/rectifications", Some(&sup)).await;
    assert!(rects.as_array().expect("r").iter().any(|r| r["session_id"] == session.to_string()), "{rects}");
    let (_, cbs) = app.get("/api/v1/callbacks", Some(&sup)).await;
    let rc = cbs
        .as_array()
        .expect("cbs")
        .iter()
        .find(|c| c["kind"] == "rectification" && c["session_id"] == session.to_string())
        .cloned()
        .expect("rectification call-back");
    let (s, v) = app
        .post(
            &format!("/api/v1/callbacks/{}/result", rc["id"].as_str().expect("id")),
            Some(&sup),
            json!({ "satisfied": true, "result": "居民表示理解", "rectification": "窗口补充材料清单说明" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A home visit through 发现 → 审核 → 帮办 → 评价.
    let (s, hv) = app
        .post(
            "/api/v1/home-visits",
            Some(&staff),
            json!({ "source": "staff", "situation": "独居老人，卧床，需办理高龄津贴", "address": "华山路 100 弄 3 号" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hv}");
    let hv_steps = format!("/api/v1/home-visits/{}/steps", hv["id"].as_str().expect("id"));
    for (who, step, state) in [
        (&sup, json!({ "action": "approve", "reason": "符合上门条件" }), "approved"),
        (
            &sup,
            json!({ "action": "schedule", "at": now_ms() + 86_400_000, "assignees": ["周社工"], "materials": ["身份证"] }),
            "scheduled",
        ),
        (&staff, json!({ "action": "complete", "outcome": "已上门受理" }), "done"),
        (&staff, json!({ "action": "rate", "level": "very_satisfied" }), "rated"),
    ] {
        let (s, v) = app.post(&hv_steps, Some(who), json!({ "step": step })).await;
        assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some(state)), "{v}");
    }

    // The weekly report counts the order and exports as XLSX.
    let today = cst_date(now_ms());
    let (s, r) =
        app.get(&format!("/api/v1/reports?period=weekly&date={today}&group=point"), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["total"]["orders_opened"].as_u64() >= Some(1), "{r}");
    assert!(r["total"]["callbacks_done"].as_u64() >= Some(2), "{r}");
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/reports/export?period=weekly&date={today}&group=point")))
        .bearer_auth(&sup)
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.expect("bytes");
    assert_eq!(&bytes[..2], b"PK", "an XLSX (zip) file");
    let got: Vec<Value> = rx.got.lock().expect("lock").clone();
    assert!(got.iter().filter(|m| m["phone"] == PHONE).count() >= 2, "{got:?}");
}
