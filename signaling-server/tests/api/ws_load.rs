//! 200 terminals and 20 operators at once: every ticket is served exactly once, none is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use shared::protocol::{ClientMsg, Outcome, RatingLevel, ServerMsg};
use sqlx::Row;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, take_ticket};

const TERMINALS: usize = 200;
const OPERATORS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_terminals_twenty_operators_every_ticket_served_once() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.login("admin").await;
    let (_, lines) = app.get("/api/v1/lines", Some(&admin)).await;
    let line_ids: Vec<serde_json::Value> =
        lines.as_array().expect("lines").iter().map(|l| l["id"].clone()).collect();
    let (_, items) = app.get("/api/v1/items?remote=true", Some(&admin)).await;
    let item_ids: Vec<uuid::Uuid> = items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").parse().expect("uuid"))
        .collect();
    let point = app.first_point(&admin).await;

    let mut op_tokens = Vec::new();
    for i in 0..OPERATORS {
        let (s, body) = app
            .post(
                "/api/v1/users",
                Some(&admin),
                json!({ "username": format!("load-op{i}"), "display_name": format!("压测{i}"), "role": "operator",
                        "password": "Load-test-2026", "skills": line_ids }),
            )
            .await;
        assert_eq!(s, reqwest::StatusCode::CREATED, "{body}");
        let (_, login) = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "username": format!("load-op{i}"), "password": "Load-test-2026" }),
            )
            .await;
        op_tokens.push(login["access_token"].as_str().expect("token").to_owned());
    }
    let mut devices = Vec::new();
    for i in 0..TERMINALS {
        let (_, reg) = app
            .post(
                "/api/v1/terminals",
                Some(&admin),
                json!({ "point_id": point["id"], "name": format!("压测终端{i}") }),
            )
            .await;
        let (_, enr) =
            app.post("/api/v1/terminals/enroll", None, json!({ "code": reg["enrollment_code"] })).await;
        let (_, tok) =
            app.post("/api/v1/terminals/token", None, json!({ "credential": enr["credential"] })).await;
        devices.push(tok["access_token"].as_str().expect("device token").to_owned());
    }

    let done = Arc::new(AtomicUsize::new(0));
    let mut operators = Vec::new();
    for token in op_tokens {
        let app = app.clone();
        operators.push(tokio::spawn(async move {
            let (mut c, _) = WsClient::connect(&app, &token).await;
            c.send(&ClientMsg::SetAvailability { available: true }).await;
            let mut served = Vec::new();
            while let Some(m) = c.try_recv().await {
                match m {
                    ServerMsg::Ringing { ticket, .. } => {
                        c.send(&ClientMsg::Accept { ticket_id: ticket.ticket_id }).await
                    }
                    ServerMsg::SessionStarted { session } => {
                        served.push(session.ticket.ticket_id);
                        c.send(&ClientMsg::EndCall { session_id: session.session_id }).await;
                    }
                    ServerMsg::SessionEnded { session_id, .. } => {
                        c.send(&ClientMsg::WrapUp { session_id, outcome: Outcome::Completed, notes: None })
                            .await;
                    }
                    _ => {}
                }
            }
            served
        }));
    }
    let mut terminals = Vec::new();
    for (i, token) in devices.into_iter().enumerate() {
        let app = app.clone();
        let item = item_ids[i % item_ids.len()];
        let done = done.clone();
        terminals.push(tokio::spawn(async move {
            let (mut c, _) = WsClient::connect(&app, &token).await;
            c.send(&take_ticket(item)).await;
            let ticket = c
                .expect("issued", |m| match m {
                    ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
                    _ => None,
                })
                .await;
            let session = c
                .expect("rate_request", |m| match m {
                    ServerMsg::RateRequest { session_id } => Some(*session_id),
                    _ => None,
                })
                .await;
            c.send(&ClientMsg::Rate { session_id: session, level: RatingLevel::Satisfied, comment: None })
                .await;
            c.expect("recorded", |m| matches!(m, ServerMsg::RatingRecorded { .. }).then_some(())).await;
            done.fetch_add(1, Ordering::Relaxed);
            c.close().await;
            ticket
        }));
    }
    let mut tickets = Vec::new();
    for t in terminals {
        tickets.push(t.await.expect("terminal finished"));
    }
    assert_eq!(done.load(Ordering::Relaxed), TERMINALS);
    // Every ticket was served by exactly one operator.
    let db = &app.state.db.pool;
    let rows = sqlx::query("SELECT ticket_id, COUNT(*) AS n FROM call_sessions GROUP BY ticket_id")
        .fetch_all(db)
        .await
        .expect("sessions");
    assert_eq!(rows.len(), TERMINALS);
    assert!(rows.iter().all(|r| r.get::<i64, _>("n") == 1), "no ticket served twice");
    let served: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tickets WHERE status = 'served'")
        .fetch_one(db)
        .await
        .expect("n")
        .get("n");
    assert_eq!(served, TERMINALS as i64);
    let rated: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM ratings").fetch_one(db).await.expect("n").get("n");
    assert_eq!(rated, TERMINALS as i64);
    tickets.sort();
    tickets.dedup();
    assert_eq!(tickets.len(), TERMINALS);
    for o in &operators {
        o.abort();
    }
}
