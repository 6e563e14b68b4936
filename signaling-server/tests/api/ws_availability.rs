//! Honest availability at the kiosk (issue 16): with nobody on duty the resident is told so and
//! given no wait figure, before and after taking a ticket; outside the point's opening hours no
//! ticket is given and the kiosk is told when the point opens next.

use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::protocol::{ErrorCode, ServerMsg};
use signaling_server::calendar;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

const AVAILABILITY: &str = "/api/v1/terminals/me/availability";

/// The availability of the line of item `code`, as the kiosk asks for it before a ticket.
async fn line_of(app: &TestApp, device: &str, code: &str) -> serde_json::Value {
    let (_, items) = app.get("/api/v1/items", Some(device)).await;
    let line =
        items.as_array().expect("items").iter().find(|i| i["code"] == code).expect("item")["line_id"].clone();
    let (s, v) = app.get(AVAILABILITY, Some(device)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["open"], true, "demo points have no structured hours: open around the clock");
    v["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line_id"] == line)
        .cloned()
        .expect("the item's line")
}

#[tokio::test]
async fn with_nobody_on_duty_the_resident_is_told_so_and_given_no_number() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let before = line_of(&app, &device, "SB-001").await;
    assert_eq!(before["serving"], 0, "当前无人值守");
    assert!(before.get("wait").is_none(), "no wait figure without an operator: {before}");

    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item_id(&app, &device, "SB-001").await)).await;
    let (serving, wait) = term
        .expect("position", |m| match m {
            ServerMsg::QueuePosition { serving, wait, .. } => Some((*serving, *wait)),
            _ => None,
        })
        .await;
    assert_eq!((serving, wait), (Some(0), None), "after the ticket too: nobody serving, no number");

    // An operator of the line comes on duty: the waiting resident is told at once, with a range.
    let (_op, _) = available_operator(&app, "operator1").await;
    let (serving, wait) = term
        .expect("position with an operator", |m| match m {
            ServerMsg::QueuePosition { serving: Some(n), wait, .. } if *n > 0 => Some((*n, *wait)),
            _ => None,
        })
        .await;
    assert_eq!(serving, 1);
    assert!(wait.is_some_and(|w| w.min_secs <= w.max_secs), "a range once someone serves the line");
}

#[tokio::test]
async fn outside_opening_hours_the_point_gives_no_ticket_and_says_when_it_opens() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (_, device) = app.enroll_terminal(0).await;
    let point = app.first_point(&admin).await;
    let path = format!("/api/v1/points/{}/opening-hours", point["id"].as_str().expect("id"));
    // Open every day around the clock except today (China time), closed for a 盘点.
    let today = calendar::cst_day(signaling_server::db::now_ms());
    let every_day = json!([{ "weekdays": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00" }]);
    let closed_today = json!({
        "weekly": every_day, "holiday_rule": "ignore_calendar",
        "closures": [{ "from": calendar::date_of(today), "to": calendar::date_of(today), "reason": "盘点" }]
    });
    let (s, v) = app.call(Method::PUT, &path, Some(&admin), Some(closed_today)).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, v) = app.get(AVAILABILITY, Some(&device)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["open"], false);
    let tomorrow = calendar::day_start(today + 1);
    assert_eq!(v["next_open_at"], tomorrow);
    let expected = format!("本服务点现在不开放，下次开放：{}", calendar::cst_when(tomorrow));
    assert_eq!(v["closed_message"], expected.as_str());
    assert!(expected.ends_with("00:00"), "{expected}");

    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "SB-001").await;
    term.send(&take_ticket(item)).await;
    let (code, message) = term
        .expect("refused", |m| match m {
            ServerMsg::Error { code, message, request } if request.as_deref() == Some("take_ticket") => {
                Some((*code, message.clone()))
            }
            ServerMsg::TicketIssued { .. } => panic!("a ticket outside opening hours"),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::OutsideHours);
    assert!(message.starts_with(&expected), "{message}");

    // Open again: a ticket is given.
    let open = json!({ "weekly": every_day, "holiday_rule": "ignore_calendar" });
    let (s, v) = app.call(Method::PUT, &path, Some(&admin), Some(open)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = app.get(AVAILABILITY, Some(&device)).await;
    assert_eq!(v["open"], true);
    term.send(&take_ticket(item)).await;
    term.expect("issued", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
}

#[tokio::test]
async fn only_terminals_ask_for_availability() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (s, _) = app.get(AVAILABILITY, Some(&admin)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get(AVAILABILITY, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_line_nobody_serves_says_when_its_duty_roster_brings_someone_on() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (_, device) = app.enroll_terminal(0).await;
    let line = line_of(&app, &device, "SB-001").await;
    assert!(line.get("next_staffed_at").is_none(), "no roster, no time: {line}");
    let path = format!("/api/v1/lines/{}/roster", line["line_id"].as_str().expect("line id"));
    // On duty every day around the clock except today (China time).
    let today = calendar::cst_day(signaling_server::db::now_ms());
    let roster = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00" }],
        "holiday_rule": "ignore_calendar",
        "closures": [{ "from": calendar::date_of(today), "to": calendar::date_of(today), "reason": "集中培训" }]
    });
    let operator = app.login("operator1").await;
    let (s, _) = app.call(Method::PUT, &path, Some(&operator), Some(roster.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins set rosters");
    let (s, v) = app.call(Method::PUT, &path, Some(&admin), Some(roster.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["schedule"], roster);
    assert_eq!(v["week"][0]["note"], "暂停开放：集中培训");
    let supervisor = app.login("supervisor").await;
    let (s, v) = app.get(&path, Some(&supervisor)).await;
    assert_eq!((s, v["schedule"].clone()), (StatusCode::OK, roster));

    let line = line_of(&app, &device, "SB-001").await;
    assert_eq!(
        (line["serving"].clone(), line["next_staffed_at"].clone()),
        (json!(0), json!(calendar::day_start(today + 1)))
    );
    // Someone on duty after all: a wait, no "next" time.
    let (_op, _) = available_operator(&app, "operator1").await;
    let line = line_of(&app, &device, "SB-001").await;
    assert_eq!(line["serving"], 1);
    assert!(line.get("next_staffed_at").is_none() && line.get("wait").is_some(), "{line}");
}
