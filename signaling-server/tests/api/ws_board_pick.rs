//! The board lists each line's next tickets in service order (numbers, items and priorities, no
//! personal data); an operator of the line picks one out of turn.

use shared::protocol::{ClientMsg, Priority, ResidentDetails, ServerMsg};

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, item_id};

#[tokio::test]
async fn operators_see_the_next_tickets_and_pick_one_out_of_turn() {
    // One kiosk serves one resident at a time; this test lets one terminal queue three.
    let app = TestApp::spawn_with(|c| c.max_open_tickets_per_terminal = 3).await;
    let staff = shared::validate::Token::try_from(app.login("staff1").await).expect("staff token");
    let (_, device) = app.enroll_terminal(0).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    // Three residents wait (the operator is away, so nothing rings): normal, normal, elderly.
    let mut numbers = vec![];
    for (priority, name) in
        [(Priority::Normal, "张三"), (Priority::Normal, "李四"), (Priority::Elderly, "王五")]
    {
        term.send(&ClientMsg::TakeTicket {
            appointment_id: None,
            item_id: item,
            priority,
            resident: Some(ResidentDetails { name: Some(name.parse().expect("name")), id_number: None }),
            request_id: uuid::Uuid::new_v4(),
            staff_token: Some(staff.clone()),
            recording_consent: None,
        })
        .await;
        let t = term
            .expect("issued", |m| match m {
                ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
                _ => None,
            })
            .await;
        numbers.push(t);
    }
    let token = app.login("operator1").await;
    let (mut op, _) = WsClient::connect(&app, &token).await;
    let next = op
        .expect("a board with the three tickets", |m| match m {
            ServerMsg::Board { lines, .. } => {
                lines.iter().find(|l| l.next.len() == 3).map(|l| l.next.clone())
            }
            _ => None,
        })
        .await;
    let order: Vec<_> = next.iter().map(|n| n.number.clone()).collect();
    assert_eq!(order, vec![numbers[2].number.clone(), numbers[0].number.clone(), numbers[1].number.clone()]);
    assert_eq!(next[0].priority, Priority::Elderly);
    let raw = serde_json::to_string(&next).expect("json");
    for name in ["张三", "李四", "王五", "张*"] {
        assert!(!raw.contains(name), "no personal data on the board: {raw}");
    }
    // The operator picks the last one (李四) out of turn.
    op.send(&ClientMsg::SetAvailability { available: false }).await;
    op.send(&ClientMsg::Pick { ticket_id: numbers[1].ticket_id }).await;
    let session = op
        .expect("session", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.clone()),
            _ => None,
        })
        .await;
    assert_eq!(session.ticket.ticket_id, numbers[1].ticket_id);
    // The board now lists the other two.
    op.expect("board without it", |m| match m {
        ServerMsg::Board { lines, .. } => lines
            .iter()
            .any(|l| l.next.len() == 2 && l.next.iter().all(|n| n.ticket_id != numbers[1].ticket_id))
            .then_some(()),
        _ => None,
    })
    .await;
}
