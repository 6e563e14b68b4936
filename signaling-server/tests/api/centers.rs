//! Acceptance centers (#16 item 6): admins manage centers and their streets, an operator's
//! center and an item's streets, every change audited; hostile values are refused; a kiosk
//! lists and takes only the items offered on its point's street; a point's ticket rings its
//! own center's operator first, and another center's operator only after the overflow wait.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, ServerMsg};

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

async fn user_id(app: &TestApp, admin: &str, username: &str) -> String {
    let (_, users) = app.get(&format!("/api/v1/users?q={username}"), Some(admin)).await;
    let user = users.as_array().and_then(|u| u.iter().find(|u| u["username"] == username)).cloned();
    user.and_then(|u| u["id"].as_str().map(str::to_owned)).expect("user exists")
}

async fn center_id(app: &TestApp, admin: &str, name: &str) -> String {
    let (_, centers) = app.get("/api/v1/centers", Some(admin)).await;
    let center = centers.as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).cloned();
    center.and_then(|c| c["id"].as_str().map(str::to_owned)).expect("center exists")
}

#[tokio::test]
async fn admin_manages_centers_streets_and_operators_every_change_audited() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let supervisor = app.login("supervisor").await;
    let (s, centers) = app.get("/api/v1/centers", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> =
        centers.as_array().expect("list").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["静安北部受理中心", "静安南部受理中心"], "the demo's two centers, by name");
    assert!(centers[1]["streets"].as_array().expect("streets").contains(&json!("静安寺街道")));

    // Streets are trimmed, duplicates collapse, the list comes back sorted.
    let body = json!({ "name": "临时受理中心", "streets": ["测试乙街道", " 测试甲街道 ", "测试乙街道"] });
    let (s, c) = app.post("/api/v1/centers", Some(&admin), body).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["streets"], json!(["测试乙街道", "测试甲街道"]));
    let id = c["id"].as_str().expect("id").to_owned();

    // A street of another center, or a name in use, is a conflict; nothing changes.
    let (s, e) = app
        .post("/api/v1/centers", Some(&admin), json!({ "name": "又一中心", "streets": ["静安寺街道"] }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("已属于其他受理中心")), "{e}");
    let (s, _) = app.post("/api/v1/centers", Some(&admin), json!({ "name": "临时受理中心" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let patch = json!({ "streets": ["测试甲街道", "江宁路街道"] });
    let (s, _) = app.call(Method::PATCH, &format!("/api/v1/centers/{id}"), Some(&admin), Some(patch)).await;
    assert_eq!(s, StatusCode::CONFLICT, "江宁路街道 is the southern center's");
    let patch = json!({ "name": "西区受理中心", "streets": ["测试甲街道"] });
    let (s, c) = app.call(Method::PATCH, &format!("/api/v1/centers/{id}"), Some(&admin), Some(patch)).await;
    assert_eq!(
        (s, &c["name"], &c["streets"]),
        (StatusCode::OK, &json!("西区受理中心"), &json!(["测试甲街道"]))
    );
    let (_, centers) = app.get("/api/v1/centers", Some(&admin)).await;
    assert_eq!(centers.as_array().map(Vec::len), Some(3));

    // Operators and supervisors belong to a center; committee staff do not.
    let op2 = user_id(&app, &admin, "operator2").await;
    let path = format!("/api/v1/users/{op2}/center");
    let (s, u) = app.call(Method::PUT, &path, Some(&admin), Some(json!({ "center_id": id }))).await;
    assert_eq!((s, u["center_id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{u}");
    let staff = user_id(&app, &admin, "staff1").await;
    let (s, e) = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{staff}/center"),
            Some(&admin),
            Some(json!({ "center_id": id })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let unknown = json!({ "center_id": uuid::Uuid::new_v4() });
    let (s, _) = app.call(Method::PUT, &path, Some(&admin), Some(unknown)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no such center");
    let (s, u) = app.call(Method::PUT, &path, Some(&admin), Some(json!({ "center_id": null }))).await;
    assert_eq!((s, &u["center_id"]), (StatusCode::OK, &Value::Null));
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/centers/{}", uuid::Uuid::new_v4()),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    for (action, n) in [("center.create", 1), ("center.update", 1), ("user.center", 2)] {
        assert_eq!(app.audit(action).await.len(), n, "{action}");
    }
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], true, "{v}");
}

#[tokio::test]
async fn hostile_center_and_street_values_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let many: Vec<String> = (0..65).map(|i| format!("街道{i}")).collect();
    let cases = [
        json!({ "name": "中".repeat(33) }),
        json!({ "name": "" }),
        json!({ "name": "   " }),
        json!({ "name": "中心\u{0}" }),
        json!({ "name": "中心\u{202e}" }),
        json!({ "name": "中心", "streets": many }),
        json!({ "name": "中心", "streets": ["街".repeat(33)] }),
        json!({ "name": "中心", "streets": [""] }),
        json!({ "name": "中心", "streets": ["街道\u{7}"] }),
        json!({ "name": "中心", "streets": [1] }),
        json!({ "name": "中心", "streets": "静安寺街道" }),
        json!({ "name": "中心", "center_id": null }),
        json!({ "name": ["中心"] }),
    ];
    for body in cases {
        let (s, e) = app.post("/api/v1/centers", Some(&admin), body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert!(e["error"]["code"].is_string(), "{e}");
    }
    let south = center_id(&app, &admin, "静安南部受理中心").await;
    for body in [
        json!({ "name": "x".repeat(40) }),
        json!({ "streets": ["\u{2066}"] }),
        json!({ "streets": null, "x": 1 }),
    ] {
        let (s, _) = app
            .call(Method::PATCH, &format!("/api/v1/centers/{south}"), Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let item = item_id(&app, &admin, "MZ-001").await;
    let path = format!("/api/v1/items/{item}/streets");
    for body in [json!({ "streets": ["街".repeat(33)] }), json!({ "streets": [null] }), json!({})] {
        let (s, _) = app.call(Method::PUT, &path, Some(&admin), Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let op = user_id(&app, &admin, "operator1").await;
    let (s, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{op}/center"),
            Some(&admin),
            Some(json!({ "center_id": "南部" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing changed: the demo's two centers as they were, the item offered everywhere.
    let (_, centers) = app.get("/api/v1/centers", Some(&admin)).await;
    assert_eq!(centers.as_array().map(Vec::len), Some(2));
    assert_eq!(centers[1]["name"], "静安南部受理中心");
    let (_, it) = app.get(&format!("/api/v1/items/{item}"), Some(&admin)).await;
    assert_eq!(it["streets"], json!([]));
    for action in ["center.create", "center.update", "item.streets", "user.center"] {
        assert!(app.audit(action).await.is_empty(), "{action}");
    }
}

#[tokio::test]
async fn a_kiosk_lists_and_takes_only_the_items_offered_on_its_street() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (_, device) = app.enroll_terminal(0).await; // 华山居委会, 静安寺街道
    let item = item_id(&app, &admin, "MZ-001").await;
    let path = format!("/api/v1/items/{item}/streets");
    let (s, it) =
        app.call(Method::PUT, &path, Some(&admin), Some(json!({ "streets": ["江宁路街道"] }))).await;
    assert_eq!((s, &it["streets"]), (StatusCode::OK, &json!(["江宁路街道"])), "{it}");
    assert_eq!(app.audit("item.streets").await.len(), 1);

    let codes = |v: &Value| -> Vec<String> {
        v.as_array().expect("items").iter().filter_map(|i| i["code"].as_str().map(str::to_owned)).collect()
    };
    let (_, kiosk) = app.get("/api/v1/items?remote=true", Some(&device)).await;
    assert!(!codes(&kiosk).contains(&"MZ-001".to_owned()), "not offered on 静安寺街道");
    assert!(codes(&kiosk).contains(&"SB-001".to_owned()), "items without streets stay");
    let (_, all) = app.get("/api/v1/items?remote=true", Some(&admin)).await;
    assert!(codes(&all).contains(&"MZ-001".to_owned()), "the admin sees the whole catalogue");

    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item)).await;
    let message = term
        .expect("refused", |m| match m {
            ServerMsg::Error { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert!(message.contains("不提供该事项"), "{message}");

    let (s, _) = app.call(Method::PUT, &path, Some(&admin), Some(json!({ "streets": ["静安寺街道"] }))).await;
    assert_eq!(s, StatusCode::OK);
    let (_, kiosk) = app.get("/api/v1/items?remote=true", Some(&device)).await;
    assert!(codes(&kiosk).contains(&"MZ-001".to_owned()));
    term.send(&take_ticket(item)).await;
    term.expect("issued", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
}

fn ringing(m: &ServerMsg) -> Option<uuid::Uuid> {
    match m {
        ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    }
}

fn issued(m: &ServerMsg) -> Option<uuid::Uuid> {
    match m {
        ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    }
}

/// Done when: "an operator of one center serves another center's point only after the overflow
/// wait". Both demo points are the southern center's; operator2 is moved to the northern one.
#[tokio::test]
async fn a_points_own_center_rings_first_another_center_only_after_the_overflow() {
    const OVERFLOW_MS: u64 = 1_500;
    let app = TestApp::spawn_with(|c| c.overflow_after_ms = OVERFLOW_MS as i64).await;
    let admin = app.login("admin").await;
    let north = center_id(&app, &admin, "静安北部受理中心").await;
    let op2 = user_id(&app, &admin, "operator2").await;
    let path = format!("/api/v1/users/{op2}/center");
    let (s, _) = app.call(Method::PUT, &path, Some(&admin), Some(json!({ "center_id": north }))).await;
    assert_eq!(s, StatusCode::OK);

    // operator2 (north) has been idle longest; both serve 社保. The southern point's ticket
    // rings operator1 (south) all the same.
    let (mut north_op, _) = available_operator(&app, "operator2").await;
    let (mut south_op, _) = available_operator(&app, "operator1").await;
    let (_, d1) = app.enroll_terminal(0).await;
    let (_, d2) = app.enroll_terminal(1).await;
    let item = item_id(&app, &d1, "SB-001").await;
    let (mut t1, _) = WsClient::connect(&app, &d1).await;
    t1.send(&take_ticket(item)).await;
    let first = t1.expect("issued", issued).await;
    assert_eq!(south_op.expect("own center rung", ringing).await, first);
    south_op.send(&ClientMsg::Accept { ticket_id: first }).await;
    t1.expect("in call", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;

    // The southern operator busy: the next resident of a southern point waits for the overflow,
    // then operator2 is rung by the server's own deadline (no other event happens).
    let (mut t2, _) = WsClient::connect(&app, &d2).await;
    let sent = Instant::now();
    t2.send(&take_ticket(item)).await;
    let second = t2.expect("issued", issued).await;
    let rung = north_op.expect("another center rung after the overflow", ringing).await;
    let waited = sent.elapsed();
    assert_eq!(rung, second, "operator2 was never rung for the first ticket");
    // The server stamps whole milliseconds on the wall clock while `sent` is this process's
    // monotonic clock, and under load the ring was seen 3–5 ms before `sent` + the overflow as
    // measured here (not understood yet: noted for investigation); a ring that ignored the
    // overflow would come within a few milliseconds of `sent`, so a tenth of the wait is kept.
    let floor = Duration::from_millis(OVERFLOW_MS - OVERFLOW_MS / 10);
    assert!(waited >= floor, "rung after {waited:?}, before the overflow");
    north_op.send(&ClientMsg::Accept { ticket_id: second }).await;
    t2.expect("served across centers", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
}

#[tokio::test]
async fn lists_filter_by_center() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (south, north) = (
        center_id(&app, &admin, "静安南部受理中心").await,
        center_id(&app, &admin, "静安北部受理中心").await,
    );
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    let (s, points) = app.get(&format!("/api/v1/points?center={south}"), Some(&admin)).await;
    assert_eq!((s, count(&points)), (StatusCode::OK, 2), "both demo points are the southern center's");
    let (_, points) = app.get(&format!("/api/v1/points?center={north}"), Some(&admin)).await;
    assert_eq!(count(&points), 0);
    let (_, terminals) = app.get(&format!("/api/v1/terminals?center={south}"), Some(&admin)).await;
    assert_eq!(count(&terminals), 2);
    let (_, users) = app.get(&format!("/api/v1/users?center={south}&sort=username"), Some(&admin)).await;
    let names: Vec<&str> =
        users.as_array().expect("users").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(
        names,
        ["operator1", "operator2", "staff1", "supervisor"],
        "its operators, supervisor and staff"
    );
    let (_, users) = app.get(&format!("/api/v1/users?center={north}"), Some(&admin)).await;
    assert_eq!(count(&users), 0);
    let unknown = uuid::Uuid::new_v4();
    let (s, points) = app.get(&format!("/api/v1/points?center={unknown}"), Some(&admin)).await;
    assert_eq!((s, count(&points)), (StatusCode::OK, 0), "an unknown center matches nothing");
    for bad in ["south", "", "%7B00000000-0000-0000-0000-000000000000%7D", "00000000000000000000000000000000"]
    {
        let (s, e) = app.get(&format!("/api/v1/points?center={bad}"), Some(&admin)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
    let upper = south.to_uppercase();
    let (s, _) = app.get(&format!("/api/v1/inspections?center={upper}"), Some(&admin)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "read exactly as documented");
    let (s, _) = app.get(&format!("/api/v1/terminals/health?center={south}"), Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
}

/// An admin's change of centers reaches dispatch at once, not at the next connection: a
/// connected operator moved to the northern center may no longer pick a southern point's
/// ticket before its overflow, and once the point's street is moved to the northern center
/// its waiting ticket rings that operator with no other event.
#[tokio::test]
async fn a_center_change_takes_effect_at_once_for_connected_operators_and_waiting_tickets() {
    let app = TestApp::spawn().await; // the default overflow: two minutes
    let admin = app.login("admin").await;
    let (south, north) = (
        center_id(&app, &admin, "静安南部受理中心").await,
        center_id(&app, &admin, "静安北部受理中心").await,
    );
    // operator2 (southern, like both demo points) is signed in and available, alone.
    let (mut op, _) = available_operator(&app, "operator2").await;
    let op2 = user_id(&app, &admin, "operator2").await;
    let path = format!("/api/v1/users/{op2}/center");
    let (s, _) = app.call(Method::PUT, &path, Some(&admin), Some(json!({ "center_id": north }))).await;
    assert_eq!(s, StatusCode::OK);

    let (_, device) = app.enroll_terminal(0).await; // 华山居委会, 静安寺街道 (southern)
    let item = item_id(&app, &device, "SB-001").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item)).await;
    let ticket = term.expect("issued", issued).await;
    // Still connected, operator2 is northern now: not rung, and a pick is refused.
    op.send(&ClientMsg::Pick { ticket_id: ticket }).await;
    let first = op
        .expect("rung or refused", |m| match m {
            ServerMsg::Ringing { .. } => Some(Err("rung")),
            ServerMsg::Error { code, message, .. } => Some(Ok((*code, message.clone()))),
            _ => None,
        })
        .await;
    let (code, message) = first.expect("another center's ticket before its overflow");
    assert_eq!(code, shared::protocol::ErrorCode::Forbidden);
    assert!(message.contains("其他受理中心"), "{message}");

    // The point's street moves to the northern center (first out of the southern one, which
    // already opens the ticket to every center): its waiting ticket is the northern operator's
    // at once, long before its overflow.
    let (_, centers) = app.get("/api/v1/centers", Some(&admin)).await;
    let streets = |id: &str| -> Vec<String> {
        let c = centers.as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).cloned().expect("center");
        c["streets"]
            .as_array()
            .expect("streets")
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let south_streets: Vec<String> = streets(&south).into_iter().filter(|s| s != "静安寺街道").collect();
    let mut north_streets = streets(&north);
    north_streets.push("静安寺街道".into());
    let patch = |streets: Vec<String>| Some(json!({ "streets": streets }));
    let (s, _) = app
        .call(Method::PATCH, &format!("/api/v1/centers/{south}"), Some(&admin), patch(south_streets))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(Method::PATCH, &format!("/api/v1/centers/{north}"), Some(&admin), patch(north_streets))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(op.expect("rung at once", ringing).await, ticket);
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    term.expect("in call", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
}
