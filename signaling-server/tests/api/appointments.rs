//! Appointments (预约, #16 item 3): the kiosk lists an item's slots from the line's duty roster
//! and books one with the signed-in staff member vouching; a full slot is refused clearly; the
//! resident's name and phone are stored encrypted and shown masked; supervisors list and
//! cancel; the check-in code finds it at the kiosk and the ticket taken with it is served
//! before a walk-in who waited longer; the sweep marks a missed appointment `no_show`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, ServerMsg};
use signaling_server::calendar;
use signaling_server::db::now_ms;
use sqlx::Row;

use signaling_server::api::appointments::Swept;

use crate::cases_outbox::{SECRET, receiver, until};
use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

const CONSENT: &str = "居民同意帮办保存姓名和电话用于预约提醒，预约结束后按规定期限删除。";
const SLOTS: &str = "/api/v1/terminals/me/appointment-slots";
const BOOK: &str = "/api/v1/terminals/me/appointments";
const CHECK_IN: &str = "/api/v1/terminals/me/appointments/check-in";

/// Rosters the item's line around the clock every day; returns `(device token of terminal 0,
/// staff1's access token, item id)`.
async fn setup(app: &TestApp, code: &str) -> (String, String, uuid::Uuid) {
    let admin = app.login("admin").await;
    let (_, device) = app.enroll_terminal(0).await;
    let item = item_id(app, &device, code).await;
    let (_, items) = app.get("/api/v1/items", Some(&device)).await;
    let line = items.as_array().expect("items").iter().find(|i| i["code"] == code).expect("item")["line_id"]
        .as_str()
        .expect("line")
        .to_owned();
    let roster = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00" }],
        "holiday_rule": "ignore_calendar",
    });
    let (s, v) =
        app.call(Method::PUT, &format!("/api/v1/lines/{line}/roster"), Some(&admin), Some(roster)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (device, app.login("staff1").await, item)
}

fn booking(item: uuid::Uuid, slot: &Value, staff: &str) -> Value {
    json!({ "item_id": item, "slot_start": slot["start"], "name": "王秀英", "phone": "13912345678",
        "consent_text": CONSENT, "consent": true, "staff_token": staff })
}

async fn slots(app: &TestApp, device: &str, item: uuid::Uuid) -> Vec<Value> {
    let (s, v) = app.get(&format!("{SLOTS}?item_id={item}&days=2"), Some(device)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().expect("slots").clone()
}

/// Moves an appointment's slot to `[start, end)` as if that time had come.
async fn move_slot(app: &TestApp, id: &str, start: i64, end: i64) {
    sqlx::query("UPDATE appointments SET slot_start = $1, slot_end = $2, service_day = $3 WHERE id = $4")
        .bind(start)
        .bind(end)
        .bind(calendar::cst_date(now_ms()))
        .bind(id)
        .execute(&app.state.db.pool)
        .await
        .expect("move slot");
}

#[tokio::test]
async fn staff_book_a_slot_until_it_is_full_and_supervisors_see_it_masked() {
    let app = TestApp::spawn().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let all = slots(&app, &device, item).await;
    let first = all.first().expect("a slot").clone();
    // SB is served by two operators: 2 × 30 min / 5 min / 2 = 6 places.
    assert_eq!((first["capacity"].as_u64(), first["free"].as_u64()), (Some(6), Some(6)), "{first}");
    assert!(first["start"].as_i64().expect("start") > now_ms());
    assert_eq!(first["end"].as_i64().expect("end") - first["start"].as_i64().expect("start"), 30 * 60_000);

    let mut ids = Vec::new();
    for _ in 0..6 {
        let (s, v) = app.post(BOOK, Some(&device), booking(item, &first, &staff)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!((v["state"].as_str(), v["phone_masked"].as_str()), (Some("booked"), Some("139****5678")));
        assert_eq!(v["name_masked"], "王**");
        assert_eq!(v["booked_by"], "周社工");
        let code = v["code"].as_str().expect("code");
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let (s, e) = app.post(BOOK, Some(&device), booking(item, &first, &staff)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["error"]["message"].as_str().expect("message").starts_with("该时段已约满"), "{e}");
    assert_eq!(slots(&app, &device, item).await[0]["free"], 0);
    // The other demo point belongs to the same acceptance center, whose operators these six
    // places are: its kiosk sees the slot full too.
    let (_, other) = app.enroll_terminal(1).await;
    let theirs = slots(&app, &other, item).await;
    let same = theirs.iter().find(|s| s["start"] == first["start"]).expect("the same slot");
    assert_eq!((same["capacity"].as_u64(), same["free"].as_u64()), (Some(6), Some(0)), "{same}");

    // Encrypted at rest: neither the name nor the number is stored in clear.
    let row = sqlx::query("SELECT name_enc, phone_enc FROM appointments WHERE id = $1")
        .bind(&ids[0])
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row");
    for col in ["name_enc", "phone_enc"] {
        let stored: String = row.try_get(col).expect("col");
        assert!(!stored.contains("13912345678") && !stored.contains("王秀英"), "{col}");
    }
    assert_eq!(app.audit("appointment.book").await.len(), 6);

    // Supervisors list the slot's day, masked; operators and terminals may not.
    let date = first["date"].as_str().expect("date");
    let sup = app.login("supervisor").await;
    let (s, list) = app.get(&format!("/api/v1/appointments?date={date}"), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 6);
    assert!(list.iter().all(|a| a["phone_masked"] == "139****5678" && a["name_masked"] == "王**"));
    assert!(!list.iter().any(|a| a.to_string().contains("13912345678")));
    assert_eq!(app.audit("appointment.list").await.len(), 1, "the list is audited");
    for token in [app.login("operator1").await, device.clone()] {
        let (s, _) = app.get("/api/v1/appointments", Some(&token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    // A cancellation gives the place back.
    let (s, v) = app.post(&format!("/api/v1/appointments/{}/cancel", ids[0]), Some(&sup), json!({})).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("cancelled")), "{v}");
    let (s, _) = app.post(&format!("/api/v1/appointments/{}/cancel", ids[0]), Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "cancelled once");
    assert_eq!(slots(&app, &device, item).await[0]["free"], 1);
}

#[tokio::test]
async fn hostile_values_and_wrong_callers_are_refused() {
    let app = TestApp::spawn().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let slot = slots(&app, &device, item).await[0].clone();
    let good = booking(item, &slot, &staff);
    let operator = app.login("operator1").await;

    let (s, _) = app.post(BOOK, None, good.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.post(BOOK, Some(&staff), good.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a person's token is not a terminal's");
    let mut wrong_staff = good.clone();
    wrong_staff["staff_token"] = json!(operator);
    let (s, e) = app.post(BOOK, Some(&device), wrong_staff).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(app.audit("appointment.book").await[0]["outcome"], "denied");

    let long_name = "王".repeat(33);
    let long_text = "同".repeat(501);
    let hostile: Vec<(&str, Value)> = vec![
        ("phone", json!("1391234567")),
        ("phone", json!("13912345678\u{0}")),
        ("phone", json!("1".repeat(10_000))),
        ("phone", json!(13912345678_i64)),
        ("name", json!("")),
        ("name", json!(long_name)),
        ("name", json!("王\n秀英")),
        ("consent", json!(false)),
        ("consent", json!("true")),
        ("consent_text", json!("")),
        ("consent_text", json!(long_text)),
        ("slot_start", json!(123)),
        ("slot_start", json!(slot["start"].as_i64().expect("start") + 1)),
        ("slot_start", json!(i64::MAX)),
        ("slot_start", json!(1.5)),
        ("slot_start", json!("1")),
        ("item_id", json!("not-a-uuid")),
        ("unknown_field", json!(1)),
    ];
    for (field, value) in hostile {
        let mut body = good.clone();
        body[field] = value.clone();
        let (s, e) = app.post(BOOK, Some(&device), body).await;
        assert!(
            s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST,
            "{field}={value}: {s} {e}"
        );
        assert!(e["error"]["message"].is_string(), "{e}");
    }
    let mut unknown_item = good.clone();
    unknown_item["item_id"] = json!(uuid::Uuid::new_v4());
    let (s, _) = app.post(BOOK, Some(&device), unknown_item).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    for q in [
        "item_id=x",
        "days=2",
        "item_id=&days=1",
        &format!("item_id={item}&days=0"),
        &format!("item_id={item}&days=8"),
        &format!("item_id={item}&days=abc"),
        &format!("item_id={item}&x=1"),
    ] {
        let (s, e) = app.get(&format!("{SLOTS}?{q}"), Some(&device)).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{q}: {s} {e}");
    }
    let (s, _) = app.get(&format!("{SLOTS}?item_id={item}"), Some(&operator)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    for code in
        [json!("12345"), json!("1234567"), json!("abcdef"), json!(123456), json!("１２３４５６"), json!("")]
    {
        let (s, e) = app.post(CHECK_IN, Some(&device), json!({ "code": code })).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{code}: {s} {e}");
    }
    let (s, e) = app.post(CHECK_IN, Some(&device), json!({ "code": "000000" })).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    assert!(e["error"]["message"].as_str().expect("message").contains("未找到"), "{e}");
    // Codes cannot be walked: after ten misses the terminal waits.
    for n in 1..10 {
        let (s, _) = app.post(CHECK_IN, Some(&device), json!({ "code": format!("{n:06}") })).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, e) = app.post(CHECK_IN, Some(&device), json!({ "code": "000010" })).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{e}");
    assert_eq!(app.audit("appointment.find").await.len(), 10, "every miss audited");
    let sup = app.login("supervisor").await;
    for q in ["date=2026-13-01", "date=x", "point_id=x", "foo=1"] {
        let (s, _) = app.get(&format!("/api/v1/appointments?{q}"), Some(&sup)).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{q}: {s}");
    }
    let (s, _) = app
        .post(&format!("/api/v1/appointments/{}/cancel", uuid::Uuid::new_v4()), Some(&sup), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// An appointment whose slot started a minute ago, checked in at terminal 0 after a walk-in
/// took a ticket at terminal 1 while the line's only operator (returned, away) was away.
/// Returns (operator, walk-in ticket, appointment ticket, the booking, the kiosk's and the
/// walk-in terminal's connection and device token).
async fn checked_in_after_a_walk_in(app: &TestApp) -> CheckedIn {
    let (device, staff, item) = setup(app, "SB-001").await;
    // Done when: nobody on duty, the resident is told so, then books an appointment.
    let (s, avail) = app.get("/api/v1/terminals/me/availability", Some(&device)).await;
    assert_eq!(s, StatusCode::OK, "{avail}");
    let (_, items) = app.get("/api/v1/items", Some(&device)).await;
    let line = items.as_array().expect("items").iter().find(|i| i["id"] == item.to_string()).expect("item")["line_id"].clone();
    let of_line = avail["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line_id"] == line)
        .cloned()
        .expect("line");
    assert_eq!(of_line["serving"], 0, "当前无人值守: {of_line}");
    assert!(of_line.get("wait").is_none(), "no wait figure without anyone serving: {of_line}");
    let slot = slots(app, &device, item).await[0].clone();
    let (s, booked) = app.post(BOOK, Some(&device), booking(item, &slot, &staff)).await;
    assert_eq!(s, StatusCode::OK, "{booked}");
    let id = booked["id"].as_str().expect("id");
    // The slot's time has come: it started a minute ago.
    let now = now_ms();
    move_slot(app, id, now - 60_000, now + 29 * 60_000).await;

    // The only operator of the line is away while a walk-in takes a ticket at another point.
    let (mut op, _) = available_operator(app, "operator1").await;
    op.send(&ClientMsg::SetAvailability { available: false }).await;
    op.expect("away", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: shared::protocol::OperatorStateView::Away })
            .then_some(())
    })
    .await;
    let (_, other_device) = app.enroll_terminal(1).await;
    let (mut walk_in, _) = WsClient::connect(app, &other_device).await;
    walk_in.send(&take_ticket(item)).await;
    let walk_in_ticket = walk_in
        .expect("walk-in ticket", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;

    // At the kiosk: the code finds the appointment, the ticket is taken with it.
    let (s, found) = app.post(CHECK_IN, Some(&device), json!({ "code": booked["code"] })).await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["id"], booked["id"]);
    let (s, _) = app.post(CHECK_IN, Some(&other_device), json!({ "code": booked["code"] })).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another point's kiosk does not find it");
    let (mut kiosk, _) = WsClient::connect(app, &device).await;
    let mut msg = take_ticket(item);
    if let ClientMsg::TakeTicket { appointment_id, .. } = &mut msg {
        *appointment_id = Some(id.parse().expect("uuid"));
    }
    kiosk.send(&msg).await;
    let ticket = kiosk
        .expect("appointment ticket", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    let position = kiosk
        .expect("position", |m| match m {
            ServerMsg::QueuePosition { ticket_id, position, .. } if *ticket_id == ticket => Some(*position),
            _ => None,
        })
        .await;
    assert_eq!(position, 1, "ahead of the walk-in who came first");
    (op, walk_in_ticket, ticket, booked, [(kiosk, device), (walk_in, other_device)])
}

type CheckedIn = (WsClient, uuid::Uuid, uuid::Uuid, Value, [(WsClient, String); 2]);

async fn rung(op: &mut WsClient) -> uuid::Uuid {
    op.expect("ringing", |m| match m {
        ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_checked_in_appointment_is_served_before_an_earlier_walk_in_at_its_time() {
    let app = TestApp::spawn().await;
    let (mut op, walk_in_ticket, ticket, booked, terminals) = checked_in_after_a_walk_in(&app).await;
    // The operator comes back: the appointment rings first.
    op.send(&ClientMsg::SetAvailability { available: true }).await;
    let first = rung(&mut op).await;
    assert_eq!(first, ticket);
    assert_ne!(first, walk_in_ticket);
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    op.expect("started", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
    // Served from the moment the operator took it (with the session's own write), so the
    // sweep finds nothing left to mark.
    let swept = signaling_server::api::appointments::sweep(&app.state, now_ms()).await.expect("sweep");
    assert_eq!(swept, Swept::default(), "already served");
    let (_, list) = app.get("/api/v1/appointments", Some(&app.login("supervisor").await)).await;
    let a = list.as_array().expect("list").iter().find(|a| a["id"] == booked["id"]).cloned().expect("listed");
    assert_eq!(
        (a["state"].as_str(), a["ticket_id"].as_str()),
        (Some("served"), Some(ticket.to_string().as_str()))
    );

    // Used once: the code no longer finds it.
    let (s, _) = app.post(CHECK_IN, Some(&terminals[0].1), json!({ "code": booked["code"] })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_checked_in_appointment_keeps_its_place_across_a_server_restart() {
    let app = TestApp::spawn().await;
    let (_op, walk_in_ticket, ticket, _, terminals) = checked_in_after_a_walk_in(&app).await;
    let app = app.restart().await;
    let mut back = Vec::new();
    for (mut c, device) in terminals {
        c.expect_closed().await;
        let (c, welcome) = WsClient::connect(&app, &device).await;
        assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
        back.push(c);
    }
    let (mut op, _) = available_operator(&app, "operator1").await;
    let first = rung(&mut op).await;
    assert_eq!(first, ticket, "still ahead of the walk-in {walk_in_ticket}");
}

#[tokio::test]
async fn the_sweep_marks_an_appointment_not_checked_in_as_a_no_show() {
    let app = TestApp::spawn().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let slot = slots(&app, &device, item).await[0].clone();
    let (s, booked) = app.post(BOOK, Some(&device), booking(item, &slot, &staff)).await;
    assert_eq!(s, StatusCode::OK, "{booked}");
    let end = slot["end"].as_i64().expect("end");
    let grace = signaling_server::appointments::NO_SHOW_GRACE_MS;
    let sweep = |now| signaling_server::api::appointments::sweep(&app.state, now);
    let no_show = |n| Swept { no_show: n, ..Swept::default() };
    assert_eq!(sweep(end).await.expect("sweep"), no_show(0), "still in the grace period");
    assert_eq!(sweep(end + grace - 1).await.expect("sweep"), no_show(0));
    assert_eq!(sweep(end + grace).await.expect("sweep"), no_show(1), "missed");
    assert_eq!(sweep(end + grace).await.expect("sweep"), no_show(0), "once");
    let sup = app.login("supervisor").await;
    let date = slot["date"].as_str().expect("date");
    let (_, list) = app.get(&format!("/api/v1/appointments?date={date}"), Some(&sup)).await;
    assert_eq!(list[0]["state"], "no_show", "{list}");
    assert_eq!(app.audit("appointment.sweep").await.len(), 1);
    let id = booked["id"].as_str().expect("id");
    let (s, _) = app.post(&format!("/api/v1/appointments/{id}/cancel"), Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "a no-show is not cancelled");

    // After the retention period the name and phone are erased.
    let days = app.state.config.pii_retention_days;
    let purge = signaling_server::cases::orders::purge_contacts;
    let day_ms = 24 * 3_600_000;
    assert_eq!(
        purge(&app.state.db, days, end + i64::from(days) * day_ms).await.expect("purge"),
        0,
        "not yet"
    );
    assert_eq!(purge(&app.state.db, days, end + i64::from(days) * day_ms + 1).await.expect("purge"), 1);
    let (_, list) = app.get(&format!("/api/v1/appointments?date={date}"), Some(&sup)).await;
    assert_eq!((list[0]["name_masked"].as_str(), list[0]["phone_masked"].as_str()), (Some("—"), Some("—")));
    let enc: String = sqlx::query_scalar("SELECT phone_enc FROM appointments WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row");
    assert!(enc.is_empty());
}

#[tokio::test]
async fn a_confirmation_and_a_day_before_reminder_reach_the_consented_phone_through_the_outbox() {
    let app = TestApp::spawn().await;
    let (url, rx) = receiver().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let slot = slots(&app, &device, item).await[0].clone();
    let (s, booked) = app.post(BOOK, Some(&device), booking(item, &slot, &staff)).await;
    assert_eq!(s, StatusCode::OK, "{booked}");
    let start = slot["start"].as_i64().expect("start");
    let day = signaling_server::api::appointments::REMINDER_BEFORE_MS;
    let sweep = |now| signaling_server::api::appointments::sweep(&app.state, now);
    let reminded = |n| Swept { reminded: n, ..Swept::default() };
    assert_eq!(sweep(start - day).await.expect("sweep"), reminded(0), "booked within the day: no reminder");
    // Booked two days before its slot: reminded once, a day before.
    sqlx::query("UPDATE appointments SET created_at = $1 WHERE id = $2")
        .bind(start - 2 * day)
        .bind(booked["id"].as_str().expect("id"))
        .execute(&app.state.db.pool)
        .await
        .expect("backdate");
    assert_eq!(sweep(start - day - 1).await.expect("sweep"), reminded(0), "not yet");
    assert_eq!(sweep(start - day).await.expect("sweep"), reminded(1));
    assert_eq!(sweep(start - 60_000).await.expect("sweep"), reminded(0), "once");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic LIKE 'appointment%'")
            .fetch_all(&app.state.db.pool)
            .await
            .expect("rows");
    assert_eq!(stored.len(), 2, "the confirmation and the reminder");
    assert!(stored.iter().all(|p| !p.contains("13912345678") && !p.contains("王秀英")), "{stored:?}");

    let admin = app.login("admin").await;
    let hook =
        json!({ "url": url, "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 200 });
    let (s, v) = app.call(Method::PUT, "/api/v1/notifications/webhook", Some(&admin), Some(hook)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    until(&rx, "both messages", |got| got.len() >= 2).await;
    let got = rx.got.lock().expect("lock").clone();
    let topics: Vec<_> = got.iter().map(|m| m["topic"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(topics, ["appointment_booked", "appointment_reminder"]);
    for m in &got {
        assert_eq!(m["phone"], "13912345678", "{m}");
        assert_eq!(m["appointment"]["id"], booked["id"]);
        assert!(
            m["text"].as_str().unwrap_or_default().contains(booked["code"].as_str().expect("code")),
            "{m}"
        );
    }
}

#[tokio::test]
async fn an_appointment_checked_in_after_its_slot_is_served_as_a_walk_in() {
    let app = TestApp::spawn().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let slot = slots(&app, &device, item).await[0].clone();
    let (s, booked) = app.post(BOOK, Some(&device), booking(item, &slot, &staff)).await;
    assert_eq!(s, StatusCode::OK, "{booked}");
    let id = booked["id"].as_str().expect("id");
    // The slot ended ten minutes ago: still within the grace period, but late.
    let now = now_ms();
    move_slot(&app, id, now - 40 * 60_000, now - 10 * 60_000).await;
    let (_, other_device) = app.enroll_terminal(1).await;
    let (mut walk_in, _) = WsClient::connect(&app, &other_device).await;
    walk_in.send(&take_ticket(item)).await;
    walk_in.expect("walk-in ticket", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
    let (s, _) = app.post(CHECK_IN, Some(&device), json!({ "code": booked["code"] })).await;
    assert_eq!(s, StatusCode::OK);
    let (mut kiosk, _) = WsClient::connect(&app, &device).await;
    let mut msg = take_ticket(item);
    if let ClientMsg::TakeTicket { appointment_id, .. } = &mut msg {
        *appointment_id = Some(id.parse().expect("uuid"));
    }
    kiosk.send(&msg).await;
    let position = kiosk
        .expect("position", |m| match m {
            ServerMsg::QueuePosition { position, .. } => Some(*position),
            _ => None,
        })
        .await;
    assert_eq!(position, 2, "behind the walk-in who came first");
    // Past the grace period a code no longer checks in.
    move_slot(&app, id, now - 60 * 60_000, now - 16 * 60_000).await;
    sqlx::query("UPDATE appointments SET state = 'booked', ticket_id = NULL WHERE id = $1")
        .bind(id)
        .execute(&app.state.db.pool)
        .await
        .expect("reset");
    let (s, _) = app.post(CHECK_IN, Some(&device), json!({ "code": booked["code"] })).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "missed");
}

/// Enrolls a second terminal at terminal 0's point; returns its device token.
async fn second_kiosk_at_point_0(app: &TestApp) -> String {
    let admin = app.login("admin").await;
    let (_, points) = app.get("/api/v1/points", Some(&admin)).await;
    let point = points
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["code"] == app.enrollment[0].0)
        .expect("terminal 0's point")["id"]
        .clone();
    let (s, reg) =
        app.post("/api/v1/terminals", Some(&admin), json!({ "point_id": point, "name": "二号机" })).await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    let (s, enrolled) =
        app.post("/api/v1/terminals/enroll", None, json!({ "code": reg["enrollment_code"] })).await;
    assert_eq!(s, StatusCode::OK, "{enrolled}");
    let (s, tok) =
        app.post("/api/v1/terminals/token", None, json!({ "credential": enrolled["credential"] })).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    tok["access_token"].as_str().expect("token").to_owned()
}

/// Two kiosks of one point check the same appointment in at the same moment: one ticket is
/// issued with it, the other kiosk is told it is already checked in, and nothing else is
/// stored (no walk-in ticket for the loser, one ticket for the appointment).
#[tokio::test]
async fn two_check_ins_of_one_appointment_at_once_issue_one_ticket_and_tell_the_other() {
    let app = TestApp::spawn().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let slot = slots(&app, &device, item).await[0].clone();
    let (s, booked) = app.post(BOOK, Some(&device), booking(item, &slot, &staff)).await;
    assert_eq!(s, StatusCode::OK, "{booked}");
    let id: uuid::Uuid = booked["id"].as_str().expect("id").parse().expect("uuid");
    let other = second_kiosk_at_point_0(&app).await;
    let (mut a, _) = WsClient::connect(&app, &device).await;
    let (mut b, _) = WsClient::connect(&app, &other).await;
    let with_appointment = || {
        let mut msg = take_ticket(item);
        if let ClientMsg::TakeTicket { appointment_id, .. } = &mut msg {
            *appointment_id = Some(id);
        }
        msg
    };
    let (ma, mb) = (with_appointment(), with_appointment());
    tokio::join!(a.send(&ma), b.send(&mb));
    let outcome = |m: &ServerMsg| match m {
        ServerMsg::TicketIssued { ticket, .. } => Some(Ok(ticket.ticket_id)),
        ServerMsg::Error { code, message, .. } => Some(Err((*code, message.clone()))),
        _ => None,
    };
    let (ra, rb) = tokio::join!(a.expect("a's answer", outcome), b.expect("b's answer", outcome));
    let (ticket, (code, message)) = match (ra, rb) {
        (Ok(t), Err(e)) | (Err(e), Ok(t)) => (t, e),
        other => panic!("one ticket and one refusal expected: {other:?}"),
    };
    assert_eq!(code, shared::protocol::ErrorCode::Conflict);
    assert!(message.starts_with("该预约已签到"), "{message}");
    let tickets: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(&app.state.db.pool).await.expect("n");
    assert_eq!(tickets, 1, "the loser left no walk-in ticket behind");
    let row = sqlx::query("SELECT state, ticket_id FROM appointments WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row");
    assert_eq!(row.get::<String, _>("state"), "checked_in");
    assert_eq!(row.get::<Option<String>, _>("ticket_id"), Some(ticket.to_string()));
}

/// The store's check-in is one conditional step with the ticket: two stores of tickets with
/// the same booked appointment racing each other store one ticket; the other stores nothing.
#[tokio::test]
async fn the_ticket_and_its_check_in_are_stored_together_or_not_at_all() {
    use signaling_server::switchboard::store::{self, NewTicket, Stored};
    let app = TestApp::spawn().await;
    let (device, staff, item) = setup(&app, "SB-001").await;
    let slot = slots(&app, &device, item).await[0].clone();
    let (s, booked) = app.post(BOOK, Some(&device), booking(item, &slot, &staff)).await;
    assert_eq!(s, StatusCode::OK, "{booked}");
    let id: uuid::Uuid = booked["id"].as_str().expect("id").parse().expect("uuid");
    let row = sqlx::query("SELECT point_id, line_id FROM appointments WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row");
    let uuid = |c: &str| row.get::<String, _>(c).parse::<uuid::Uuid>().expect("uuid");
    let (point, line) = (uuid("point_id"), uuid("line_id"));
    let terminal: String = sqlx::query_scalar("SELECT id FROM terminals WHERE point_id = $1")
        .bind(point.to_string())
        .fetch_one(&app.state.db.pool)
        .await
        .expect("terminal");
    let day = calendar::cst_date(now_ms());
    let (ids, numbers) = ([uuid::Uuid::new_v4(), uuid::Uuid::new_v4()], ["Z-9001", "Z-9002"]);
    let new = |i: usize| NewTicket {
        id: ids[i],
        number: numbers[i],
        service_day: &day,
        point_id: point,
        terminal_id: terminal.parse().expect("uuid"),
        item_id: item,
        line_id: line,
        priority: "normal",
        request_id: uuid::Uuid::new_v4(),
        resident_name_enc: None,
        resident_name_masked: None,
        id_number_enc: None,
        id_number_hash: None,
        id_number_masked: None,
        assisted_by: None,
        created_at: now_ms(),
        recording_consent: None,
    };
    let (t0, t1) = (new(0), new(1));
    let event = |i: usize| store::Write::Event {
        ticket: ids[i],
        session: None,
        kind: "ticket_taken",
        detail: json!({ "priority": "normal" }),
        at: now_ms(),
    };
    let (e0, e1) = (event(0), event(1));
    let db = &app.state.db;
    let (r0, r1) = tokio::join!(
        store::insert_ticket(db, None, &t0, &e0, Some(id)),
        store::insert_ticket(db, None, &t1, &e1, Some(id))
    );
    let mut got = [r0.expect("store 0"), r1.expect("store 1")];
    got.sort_by_key(|s| *s == Stored::AlreadyCheckedIn);
    assert_eq!(got, [Stored::Stored, Stored::AlreadyCheckedIn]);
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM tickets WHERE number LIKE 'Z-%'")
        .fetch_all(&db.pool)
        .await
        .expect("rows");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_events WHERE ticket_id IN ($1, $2)")
        .bind(ids[0].to_string())
        .bind(ids[1].to_string())
        .fetch_one(&db.pool)
        .await
        .expect("events");
    assert_eq!(events, 1, "the loser's event went with its ticket");
    let checked: Option<String> = sqlx::query_scalar("SELECT ticket_id FROM appointments WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&db.pool)
        .await
        .expect("row");
    assert_eq!(checked, Some(stored[0].clone()));
}
