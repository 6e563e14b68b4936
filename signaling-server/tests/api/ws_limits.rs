//! Hostile terminals and floods: a resident's details are taken only with a staff sign-in
//! checked by the server; a terminal holds one open ticket at a time; every connection is rate
//! limited, with a generous burst for ICE candidates.

use shared::protocol::{ClientMsg, ErrorCode, Priority, ResidentDetails, ServerMsg, Signal};
use shared::validate::{IceCandidate, IdNumber, PersonName};
use sqlx::Row;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

async fn tickets_stored(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM tickets")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count")
        .get::<i64, _>("n")
}

fn refusal(m: &ServerMsg) -> Option<(ErrorCode, String)> {
    match m {
        ServerMsg::Error { code, message, .. } => Some((*code, message.clone())),
        ServerMsg::TicketIssued { ticket, .. } => {
            Some((ErrorCode::Unknown, format!("issued {}", ticket.number)))
        }
        _ => None,
    }
}

#[tokio::test]
async fn resident_details_with_a_device_token_alone_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    for resident in [
        ResidentDetails {
            name: Some(PersonName::try_from("王小明".to_owned()).expect("name")),
            id_number: None,
        },
        ResidentDetails {
            name: None,
            id_number: Some(IdNumber::try_from("11010519491231002X".to_owned()).expect("id")),
        },
    ] {
        term.send(&ClientMsg::TakeTicket {
            appointment_id: None,
            item_id: item,
            priority: Priority::Normal,
            resident: Some(resident),
            request_id: uuid::Uuid::new_v4(),
            staff_token: None,
            recording_consent: None,
        })
        .await;
        let (code, message) = term.expect("refusal", refusal).await;
        assert_eq!(code, ErrorCode::Forbidden, "{message}");
        assert!(message.contains("工作人员"), "the kiosk shows why: {message}");
    }
    assert_eq!(tickets_stored(&app).await, 0, "nothing stored");
    // Without details the same terminal takes a ticket as usual.
    term.send(&take_ticket(item)).await;
    term.expect("issued", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
}

#[tokio::test]
async fn a_terminal_holds_one_open_ticket_at_a_time() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    let first = take_ticket(item);
    term.send(&first).await;
    let ticket = term
        .expect("issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    // A second ticket is refused while the first is open.
    term.send(&take_ticket(item)).await;
    let (code, message) = term.expect("refusal", refusal).await;
    assert_eq!(code, ErrorCode::Conflict, "{message}");
    assert!(message.contains("已有号票"), "{message}");
    assert_eq!(tickets_stored(&app).await, 1);
    // The same request again is the same ticket (a retry, not a second ticket).
    term.send(&first).await;
    let again = term
        .expect("the same ticket", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            ServerMsg::Error { .. } => Some(uuid::Uuid::nil()),
            _ => None,
        })
        .await;
    assert_eq!(again, ticket.ticket_id);
    // Once it is cancelled, the next resident takes one.
    term.send(&ClientMsg::CancelTicket { ticket_id: ticket.ticket_id }).await;
    term.expect("closed", |m| matches!(m, ServerMsg::TicketClosed { .. }).then_some(())).await;
    term.send(&take_ticket(item)).await;
    term.expect("issued", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
    assert_eq!(tickets_stored(&app).await, 2);
}

#[tokio::test]
async fn a_flood_is_rate_limited_while_a_burst_of_ice_candidates_goes_through() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item_id(&app, &device, "MZ-001").await)).await;
    let ticket = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = term
        .expect("session", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;

    // 300 ICE candidates at once (a restart on a multi-homed kiosk): all arrive, in order.
    const CANDIDATES: u16 = 300;
    for i in 0..CANDIDATES {
        let c = format!("candidate:{i} 1 udp 2122260223 10.0.{}.{} 50000 typ host", i / 250, i % 250);
        let signal = Signal::Candidate {
            candidate: IceCandidate::try_from(c).expect("candidate"),
            sdp_mid: None,
            sdp_m_line_index: Some(0),
        };
        term.send(&ClientMsg::Signal { session_id: session, signal }).await;
    }
    for i in 0..CANDIDATES {
        let got = op
            .expect("a candidate", |m| match m {
                ServerMsg::Signal { signal: Signal::Candidate { candidate, .. }, .. } => {
                    Some(candidate.as_str().to_owned())
                }
                ServerMsg::Error { code, .. } => Some(format!("error {code:?}")),
                _ => None,
            })
            .await;
        assert!(got.starts_with(&format!("candidate:{i} ")), "candidate {i}: {got}");
    }

    // 200 junk requests in a burst: refused with rate_limited, and not all answered.
    for _ in 0..200 {
        op.send(&ClientMsg::Decline { ticket_id: uuid::Uuid::new_v4() }).await;
    }
    let mut answered = 0;
    loop {
        let m = op.recv().await;
        match m {
            ServerMsg::Error { code: ErrorCode::RateLimited, request, .. } => {
                assert_eq!(request.as_deref(), Some("decline"));
                break;
            }
            ServerMsg::Error { .. } => answered += 1,
            _ => {}
        }
    }
    assert!(answered < 200, "the flood was cut short after {answered} answers");
    // The connection carries on: the call's signaling still flows both ways.
    let c = IceCandidate::try_from("candidate:9 1 udp 1 127.0.0.1 9 typ host".to_owned()).expect("candidate");
    let signal = Signal::Candidate { candidate: c.clone(), sdp_mid: None, sdp_m_line_index: Some(0) };
    op.send(&ClientMsg::Signal { session_id: session, signal }).await;
    let got = term
        .expect("the operator's candidate", |m| match m {
            ServerMsg::Signal { signal: Signal::Candidate { candidate, .. }, .. } => Some(candidate.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, c);
}

#[tokio::test]
async fn a_rating_that_cannot_be_stored_is_reported_not_acknowledged() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&take_ticket(item_id(&app, &device, "MZ-001").await)).await;
    let ticket = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = term
        .expect("session", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::WrapUp {
        session_id: session,
        outcome: shared::protocol::Outcome::Completed,
        notes: None,
    })
    .await;
    term.expect("rate_request", |m| matches!(m, ServerMsg::RateRequest { .. }).then_some(())).await;
    // The database refuses ratings from now on.
    sqlx::query("ALTER TABLE ratings RENAME TO ratings_gone")
        .execute(&app.state.db.pool)
        .await
        .expect("rename");
    term.send(&ClientMsg::Rate {
        session_id: session,
        level: shared::protocol::RatingLevel::Satisfied,
        comment: None,
    })
    .await;
    let m = term
        .expect("an answer", |m| match m {
            ServerMsg::Error { code, .. } => Some(format!("error {code:?}")),
            ServerMsg::RatingRecorded { .. } => Some("recorded".into()),
            _ => None,
        })
        .await;
    assert_eq!(m, "error Internal", "the resident is told it failed, never that it worked");
    // Everything the operator was sent before that is in its queue ahead of this pong.
    op.send(&ClientMsg::Ping { seq: 9 }).await;
    op.expect("pong", |m| matches!(m, ServerMsg::Pong { seq: 9 }).then_some(())).await;
    assert!(
        !op.seen.iter().any(|m| matches!(m, ServerMsg::RatingRecorded { .. })),
        "nor is the operator told it was recorded"
    );
}
