//! A point's day (`GET /api/v1/points/{id}/today`): committee staff see their own point —
//! its terminal, today's tickets (the ones they helped with marked), its open orders — and
//! nothing of another point (403); supervisors and admins see any point; operators and
//! terminals none.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, Priority, ServerMsg};
use shared::validate::Token;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id};

fn take(item: uuid::Uuid, staff: Option<&str>) -> ClientMsg {
    ClientMsg::TakeTicket {
        appointment_id: None,
        item_id: item,
        priority: Priority::Normal,
        resident: None,
        request_id: uuid::Uuid::new_v4(),
        staff_token: staff.map(|t| Token::try_from(t.to_owned()).expect("token")),
        recording_consent: None,
    }
}

/// Takes a ticket and cancels it (one open ticket per terminal); returns its number.
async fn ticket(term: &mut WsClient, msg: &ClientMsg) -> String {
    term.send(msg).await;
    let (id, number) = term
        .expect("issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some((ticket.ticket_id, ticket.number.clone())),
            _ => None,
        })
        .await;
    term.send(&ClientMsg::CancelTicket { ticket_id: id }).await;
    term.expect("closed", |m| matches!(m, ServerMsg::TicketClosed { .. }).then_some(())).await;
    number
}

fn terminal_id(device: &str) -> String {
    let payload = device.split('.').nth(1).expect("jwt payload");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["sub"].as_str().expect("sub").to_owned()
}

fn numbers(v: &Value) -> Vec<String> {
    v["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["number"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn staff_see_their_own_point_and_nothing_of_another() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (_, other_device) = app.enroll_terminal(1).await;
    let login = app.login_full("staff1").await;
    let staff = login["access_token"].as_str().expect("token").to_owned();
    let mine = login["user"]["point_id"].as_str().expect("point").to_owned();
    let supervisor = app.login("supervisor").await;
    let (_, points) = app.get("/api/v1/points", Some(&supervisor)).await;
    let other = points
        .as_array()
        .and_then(|p| p.iter().find(|p| p["code"] == app.enrollment[1].0.as_str()).cloned())
        .expect("the other point")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_ne!(mine, other);

    let (_op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let (mut other_term, _) = WsClient::connect(&app, &other_device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    let helped = ticket(&mut term, &take(item, Some(&staff))).await;
    let alone = ticket(&mut term, &take(item, None)).await;
    let elsewhere = ticket(&mut other_term, &take(item, None)).await;
    // An order at each point.
    let body = json!({ "source": "point", "item_id": item, "summary": "老人需上门协助", "deadline": { "class": "ten_days" } });
    let (s, order) = app.post("/api/v1/orders", Some(&staff), body).await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let (s, foreign) = app
        .post(
            "/api/v1/orders",
            Some(&supervisor),
            json!({ "source": "hotline_12345", "point_id": other, "item_id": item, "summary": "别处工单",
                    "deadline": { "class": "five_days" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{foreign}");

    let (s, v) = app.get(&format!("/api/v1/points/{mine}/today"), Some(&staff)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["point_id"], mine.as_str());
    let terminals = v["terminals"].as_array().expect("terminals");
    assert!(terminals.iter().any(|t| t["terminal_id"] == terminal_id(&device).as_str()), "{terminals:?}");
    assert!(
        terminals.iter().all(|t| t["point_id"] == mine.as_str()),
        "only its own terminals: {terminals:?}"
    );
    assert_eq!(numbers(&v), vec![helped.clone(), alone.clone()], "today's tickets here, oldest first");
    let tickets = v["tickets"].as_array().expect("tickets");
    assert_eq!(tickets[0]["helped_by_me"], true);
    assert_eq!(tickets[0]["assisted_by_name"], "周社工");
    assert_eq!(tickets[1]["helped_by_me"], false);
    assert!(
        tickets
            .iter()
            .all(|t| t.get("resident_name_masked").is_none() && t.get("id_number_masked").is_none())
    );
    let orders = v["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["id"], order["id"]);
    assert!(v["print_jobs"].is_array() && v["callbacks"].is_array());
    assert!(v["open_now"].is_null(), "no structured hours");

    // Another point: refused, whatever the staff member knows of it.
    let (s, b) = app.get(&format!("/api/v1/points/{other}/today"), Some(&staff)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, _) = app.get(&format!("/api/v1/points/{}/today", uuid::Uuid::new_v4()), Some(&staff)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an unknown point is not revealed to staff");

    // Supervisors see any point, with nobody's help marked as theirs.
    let (s, v) = app.get(&format!("/api/v1/points/{other}/today"), Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(numbers(&v), vec![elsewhere]);
    assert_eq!(v["orders"].as_array().map(Vec::len), Some(1));
    assert!(v["terminals"].as_array().expect("terminals").iter().all(|t| t["point_id"] == other.as_str()));
    let (s, v) = app.get(&format!("/api/v1/points/{mine}/today"), Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["tickets"].as_array().expect("tickets").iter().all(|t| t["helped_by_me"] == false));
    let (s, _) = app.get(&format!("/api/v1/points/{}/today", uuid::Uuid::new_v4()), Some(&supervisor)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Operators and terminals: none, not even the terminal's own point.
    let operator = app.login("operator2").await;
    for token in [&operator, &device] {
        let (s, _) = app.get(&format!("/api/v1/points/{mine}/today"), Some(token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, _) = app.get("/api/v1/points/not-a-uuid/today", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not a point's path");

    let (_, doc) = app.get("/api/openapi.json", None).await;
    let op = &doc["paths"]["/api/v1/points/{id}/today"]["get"];
    for code in ["200", "401", "403", "404"] {
        assert!(op["responses"][code].is_object(), "{code} documented");
    }
}
