//! The operator asks the point for a scan: only the session's operator may, the terminal gets the
//! slot's name, and hostile values are refused.

use serde_json::json;
use shared::protocol::{ClientMsg, ErrorCode, ServerMsg};

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

#[tokio::test]
async fn only_the_sessions_operator_asks_for_a_scan_and_the_terminal_reads_the_slot_name() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op1, _) = available_operator(&app, "operator1").await;
    let (mut op2, _) = available_operator(&app, "operator2").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    let (_, detail) = app.get(&format!("/api/v1/items/{item}"), Some(&device)).await;
    let slot = detail["materials"][0].clone();
    let slot_id: uuid::Uuid = slot["id"].as_str().expect("slot id").parse().expect("uuid");
    term.send(&take_ticket(item)).await;
    let ticket = op1
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    // Before the call: nothing to scan for.
    op1.send(&ClientMsg::RequestScan { session_id: uuid::Uuid::new_v4(), slot_id: None, note: None }).await;
    op1.expect("no such session", |m| matches!(m, ServerMsg::Error { .. }).then_some(())).await;
    op1.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = op1
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;

    let note = shared::validate::Notes::try_from("请扫描身份证正反面".to_owned()).expect("note");
    op1.send(&ClientMsg::RequestScan { session_id: session, slot_id: Some(slot_id), note: Some(note) }).await;
    let (got_slot, name, text) = term
        .expect("scan_requested", |m| match m {
            ServerMsg::ScanRequested { session_id, slot_id, slot_name, note } if *session_id == session => {
                Some((*slot_id, slot_name.clone(), note.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(got_slot, Some(slot_id));
    assert_eq!(name.as_deref(), slot["name"].as_str(), "the slot's name, for the resident");
    assert_eq!(text.as_deref(), Some("请扫描身份证正反面"));

    // Another operator, the terminal itself, a slot of another item: refused.
    op2.send(&ClientMsg::RequestScan { session_id: session, slot_id: None, note: None }).await;
    op2.expect("forbidden", |m| {
        matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
    })
    .await;
    term.send(&ClientMsg::RequestScan { session_id: session, slot_id: None, note: None }).await;
    term.expect("forbidden", |m| {
        matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
    })
    .await;
    op1.send(&ClientMsg::RequestScan {
        session_id: session,
        slot_id: Some(uuid::Uuid::new_v4()),
        note: None,
    })
    .await;
    op1.expect("no such slot", |m| {
        matches!(m, ServerMsg::Error { code: ErrorCode::NotFound, .. }).then_some(())
    })
    .await;
    // Hostile values never reach the terminal.
    for junk in [
        json!({ "type": "request_scan", "session_id": session, "note": "长".repeat(5000) }),
        json!({ "type": "request_scan", "session_id": session, "slot_id": "../../etc/passwd" }),
        json!({ "type": "request_scan", "session_id": session, "note": 42 }),
    ] {
        op1.send_raw(&junk.to_string()).await;
        op1.expect("bad message", |m| {
            matches!(m, ServerMsg::Error { code: ErrorCode::BadMessage | ErrorCode::TooLarge, .. })
                .then_some(())
        })
        .await;
    }
    // Without a slot: a plain request.
    op1.send(&ClientMsg::RequestScan { session_id: session, slot_id: None, note: None }).await;
    term.expect("plain request", |m| match m {
        ServerMsg::ScanRequested { slot_id: None, slot_name: None, note: None, .. } => Some(()),
        _ => None,
    })
    .await;
    // After the call it is over.
    op1.send(&ClientMsg::EndCall { session_id: session }).await;
    op1.expect("ended", |m| matches!(m, ServerMsg::SessionEnded { .. }).then_some(())).await;
    op1.send(&ClientMsg::RequestScan { session_id: session, slot_id: None, note: None }).await;
    op1.expect("refused after the call", |m| matches!(m, ServerMsg::Error { .. }).then_some(())).await;
}
