//! A dropped party may come back within the window and carry on; after the window its ticket
//! or call ends with the reason recorded.

use shared::protocol::{ClientMsg, OperatorStateView, ServerMsg, SessionEndReason};
use sqlx::Row;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

#[tokio::test]
async fn a_waiting_ticket_keeps_its_place_across_a_reconnect() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut t, _) = WsClient::connect(&app, &device).await;
    t.send(&take_ticket(item_id(&app, &device, "WJ-002").await)).await;
    t.expect("queued", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(())).await;
    t.close().await;
    let (mut t, welcome) = WsClient::connect(&app, &device).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
    t.expect("still first", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(()))
        .await;
    // And it is offered once an operator is free.
    let (mut op, _) = available_operator(&app, "operator2").await;
    op.expect("rings", |m| matches!(m, ServerMsg::Ringing { .. }).then_some(())).await;
}

#[tokio::test]
async fn a_live_call_survives_a_terminal_reconnect() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut t, _) = WsClient::connect(&app, &device).await;
    t.send(&take_ticket(item_id(&app, &device, "SB-002").await)).await;
    let ticket = op
        .expect("ring", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = t
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    t.close().await;
    let grace = op
        .expect("peer_disconnected", |m| match m {
            ServerMsg::PeerDisconnected { session_id, grace_secs } if *session_id == session => {
                Some(*grace_secs)
            }
            _ => None,
        })
        .await;
    assert_eq!(grace, 60);
    let (mut t, _) = WsClient::connect(&app, &device).await;
    let again = t
        .expect("session again", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    assert_eq!(again, session, "the same call continues");
    op.expect("peer_reconnected: ICE restart", |m| {
        matches!(m, ServerMsg::PeerReconnected { session_id } if *session_id == session).then_some(())
    })
    .await;
    op.send(&ClientMsg::Signal {
        session_id: session,
        signal: shared::protocol::Signal::Offer {
            sdp: shared::validate::Sdp::try_from("v=0\r\n".to_owned()).expect("sdp"),
            ice_restart: true,
        },
    })
    .await;
    t.expect("restart offer", |m| matches!(m, ServerMsg::Signal { .. }).then_some(())).await;
}

#[tokio::test]
async fn after_the_window_the_ticket_and_the_call_end_with_a_reason() {
    let app = TestApp::spawn_with(|c| c.resume_window_ms = 500).await;
    let (_, d0) = app.enroll_terminal(0).await;
    let (_, d1) = app.enroll_terminal(1).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    // Terminal 0 is in a call, terminal 1 waits behind it.
    let (mut t0, _) = WsClient::connect(&app, &d0).await;
    t0.send(&take_ticket(item_id(&app, &d0, "SB-002").await)).await;
    let ticket0 = op
        .expect("ring", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::Accept { ticket_id: ticket0 }).await;
    let session = t0
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    let (mut t1, _) = WsClient::connect(&app, &d1).await;
    t1.send(&take_ticket(item_id(&app, &d1, "SB-002").await)).await;
    let ticket1 = t1
        .expect("issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    let sup = app.login("supervisor").await;
    let (mut sup, _) = WsClient::connect(&app, &sup).await;
    sup.expect("one waiting", |m| match m {
        ServerMsg::Board { lines, .. } if lines.iter().any(|l| l.waiting == 1) => Some(()),
        _ => None,
    })
    .await;
    t0.close().await;
    t1.close().await;
    op.expect("the resident is gone for good", |m| {
        matches!(m, ServerMsg::SessionEnded { session_id, reason: SessionEndReason::ResidentLeft } if *session_id == session).then_some(())
    })
    .await;
    let db = &app.state.db.pool;
    let row = sqlx::query("SELECT end_reason FROM call_sessions WHERE id = $1")
        .bind(session.to_string())
        .fetch_one(db)
        .await
        .expect("row");
    assert_eq!(row.get::<Option<String>, _>("end_reason").as_deref(), Some("resident_left"));
    // The waiting ticket was abandoned (recorded), so the operator is not rung for it.
    op.send(&ClientMsg::WrapUp {
        session_id: session,
        outcome: shared::protocol::Outcome::ReferredOffline,
        notes: None,
    })
    .await;
    op.expect("available again", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: shared::protocol::OperatorStateView::Available })
            .then_some(())
    })
    .await;
    // The supervisor's board shows the line empty once terminal 1's window has closed too.
    sup.expect("line empty", |m| match m {
        ServerMsg::Board { lines, .. } if lines.iter().all(|l| l.waiting == 0) => Some(()),
        _ => None,
    })
    .await;
    let row = sqlx::query("SELECT status, close_reason FROM tickets WHERE id = $1")
        .bind(ticket1.to_string())
        .fetch_one(db)
        .await
        .expect("row");
    let status: (String, Option<String>) = (row.get("status"), row.get("close_reason"));
    assert_eq!(status, ("abandoned".to_owned(), Some("abandoned".to_owned())));
    assert!(
        !op.seen
            .iter()
            .any(|m| matches!(m, ServerMsg::Ringing { ticket, .. } if ticket.ticket_id == ticket1))
    );
}

#[tokio::test]
async fn waiting_tickets_survive_a_server_restart() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut t, _) = WsClient::connect(&app, &device).await;
    t.send(&take_ticket(item_id(&app, &device, "YB-002").await)).await;
    let ticket = t
        .expect("issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    t.expect("queued", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(())).await;
    let app = app.restart().await;
    t.expect_closed().await;
    let (mut t, welcome) = WsClient::connect(&app, &device).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
    t.expect("still first", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(()))
        .await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let rung = op
        .expect("the same ticket rings", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!((rung.ticket_id, rung.number), (ticket.ticket_id, ticket.number));
}

/// An operator whose console dropped outside a call (a page reload, a network blip) comes back
/// as away, never as "offline": the console can go available again and is rung.
#[tokio::test]
async fn an_operator_back_after_a_drop_outside_a_call_is_away_and_can_take_calls() {
    let app = TestApp::spawn().await;
    let sup_token = app.login("supervisor").await;
    let (mut sup, _) = WsClient::connect(&app, &sup_token).await;
    let (op, op_id) = available_operator(&app, "operator1").await;
    op.close().await;
    // The server has taken the drop in: the board shows operator1 offline.
    sup.expect("operator1 offline on the board", |m| match m {
        ServerMsg::Board { operators, .. }
            if operators.iter().any(|o| o.operator_id == op_id && o.state == OperatorStateView::Offline) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    let token = app.login("operator1").await;
    let (mut op, _) = WsClient::connect(&app, &token).await;
    let state = op
        .expect("operator_status", |m| match m {
            ServerMsg::OperatorStatus { state } => Some(*state),
            _ => None,
        })
        .await;
    assert_eq!(state, OperatorStateView::Away, "back as away, not offline");
    op.send(&ClientMsg::SetAvailability { available: true }).await;
    op.expect("available", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: OperatorStateView::Available }).then_some(())
    })
    .await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut t, _) = WsClient::connect(&app, &device).await;
    t.send(&take_ticket(item_id(&app, &device, "SB-002").await)).await;
    op.expect("rings", |m| matches!(m, ServerMsg::Ringing { .. }).then_some(())).await;
}
