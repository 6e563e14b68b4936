//! Ring timeout: an unanswered offer moves to the next operator; two misses in a row set an
//! operator away. (The ring timeout is shortened by configuration, and the test waits for the
//! server's messages, not for time.)

use shared::protocol::{ClientMsg, OperatorStateView, RingCancelReason, ServerMsg};

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

fn ringing(m: &ServerMsg) -> Option<uuid::Uuid> {
    match m {
        ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    }
}

#[tokio::test]
async fn an_unanswered_call_rings_the_next_operator() {
    let app = TestApp::spawn_with(|c| c.ring_timeout_ms = 400).await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op1, _) = available_operator(&app, "operator1").await;
    let (mut op2, _) = available_operator(&app, "operator2").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item_id(&app, &device, "SB-001").await)).await; // both serve 社保
    let t = op1.expect("ringing op1 (idle longest)", ringing).await;
    op1.expect("timeout", |m| {
        matches!(m, ServerMsg::RingCancelled { reason: RingCancelReason::Timeout, ticket_id } if *ticket_id == t).then_some(())
    })
    .await;
    assert_eq!(op2.expect("then op2", ringing).await, t);
    op2.send(&ClientMsg::Accept { ticket_id: t }).await;
    term.expect("connected", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
    // A late accept by the first operator is refused.
    op1.send(&ClientMsg::Accept { ticket_id: t }).await;
    op1.expect("refused", |m| matches!(m, ServerMsg::Error { .. }).then_some(())).await;
}

#[tokio::test]
async fn two_misses_in_a_row_set_the_operator_away() {
    let app = TestApp::spawn_with(|c| c.ring_timeout_ms = 300).await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item_id(&app, &device, "MZ-001").await)).await;
    let t = op.expect("first ring", ringing).await;
    assert_eq!(op.expect("second ring after the first miss", ringing).await, t);
    op.expect("away after two misses", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: OperatorStateView::Away }).then_some(())
    })
    .await;
    // The resident keeps the place; when the operator is back the call rings again.
    term.expect("still first", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(()))
        .await;
    op.send(&ClientMsg::SetAvailability { available: true }).await;
    assert_eq!(op.expect("rings again", ringing).await, t);
    op.send(&ClientMsg::Accept { ticket_id: t }).await;
    term.expect("connected", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
}

#[tokio::test]
async fn priority_tickets_are_served_first_and_positions_follow() {
    let app = TestApp::spawn().await;
    let (_, d1) = app.enroll_terminal(0).await;
    let (_, d2) = app.enroll_terminal(1).await;
    let (mut t1, _) = WsClient::connect(&app, &d1).await;
    let (mut t2, _) = WsClient::connect(&app, &d2).await;
    let item = item_id(&app, &d1, "YB-001").await;
    t1.send(&take_ticket(item)).await;
    t1.expect("first", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(())).await;
    t2.send(&ClientMsg::TakeTicket {
        appointment_id: None,
        item_id: item,
        priority: shared::protocol::Priority::Disabled,
        resident: None,
        request_id: uuid::Uuid::new_v4(),
        staff_token: None,
        recording_consent: None,
    })
    .await;
    t2.expect("priority goes first", |m| {
        matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(())
    })
    .await;
    t1.expect("pushed back", |m| matches!(m, ServerMsg::QueuePosition { position: 2, .. }).then_some(()))
        .await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let first = op.expect("ring", ringing).await;
    let t2_ticket = t2
        .seen
        .iter()
        .find_map(|m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .expect("issued");
    assert_eq!(first, t2_ticket);
    // The supervisor's board shows the line.
    let sup = app.login("supervisor").await;
    let (mut s, _) = WsClient::connect(&app, &sup).await;
    t1.send(&take_ticket(item)).await; // idempotency: a new request id is a new ticket
    let (lines, operators) = s
        .expect("board with 2 waiting", |m| match m {
            ServerMsg::Board { lines, operators } if lines.iter().any(|l| l.waiting == 2) => {
                Some((lines.clone(), operators.clone()))
            }
            _ => None,
        })
        .await;
    let line = lines.iter().find(|l| l.waiting == 2).expect("line");
    assert_eq!(line.line_name, "医疗保障");
    assert_eq!(line.priority_waiting, 1);
    assert!(operators.iter().any(|o| o.name == "陈受理员" && o.state == OperatorStateView::Ringing));
}

#[tokio::test]
async fn take_ticket_is_idempotent_and_items_must_be_remote() {
    let app = TestApp::spawn().await;
    let (_, d) = app.enroll_terminal(0).await;
    let (mut t, _) = WsClient::connect(&app, &d).await;
    let msg = take_ticket(item_id(&app, &d, "WJ-001").await);
    t.send(&msg).await;
    t.send(&msg).await;
    let a = t.expect("issued", |m| match m {
        ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
        _ => None,
    });
    let a = a.await;
    let b = t
        .expect("issued again", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!(a.ticket_id, b.ticket_id, "a retried request gets the same ticket");
    t.send(&take_ticket(item_id(&app, &d, "CL-001").await)).await; // 残疾人证新办: in person only
    t.expect("refused", |m| {
        matches!(m, ServerMsg::Error { code: shared::protocol::ErrorCode::Forbidden, .. }).then_some(())
    })
    .await;
    t.send(&take_ticket(uuid::Uuid::new_v4())).await;
    t.expect("unknown item", |m| {
        matches!(m, ServerMsg::Error { code: shared::protocol::ErrorCode::NotFound, .. }).then_some(())
    })
    .await;
    t.send(&ClientMsg::CancelTicket { ticket_id: a.ticket_id }).await;
    t.expect("cancelled", |m| matches!(m, ServerMsg::TicketClosed { .. }).then_some(())).await;
    let n: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM tickets WHERE status = 'cancelled'")
            .fetch_one(&app.state.db.pool)
            .await
            .expect("count"),
        "n",
    );
    assert_eq!(n, 1);
}
