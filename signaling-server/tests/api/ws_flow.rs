//! The whole call flow with two scripted clients: ticket → ring → accept → offer / answer /
//! ICE → hold / resume → transfer (with context) → end → wrap-up → rating.

use serde_json::Value;
use shared::protocol::{
    ClientMsg, Outcome, Party, Priority, RatingLevel, ResidentDetails, ServerMsg, SessionEndReason, Signal,
    TransferTarget,
};
use shared::validate::{IceCandidate, IdNumber, Notes, PersonName, Sdp, Token};
use sqlx::Row;

use crate::helpers::{TestApp, captured_logs};
use crate::ws_client::{WsClient, available_operator, item_id};

const ID_NUMBER: &str = "11010519491231002X";
const NAME: &str = "王秀兰";

fn sdp(kind: &str) -> Sdp {
    Sdp::try_from(format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={kind}\r\nt=0 0\r\n")).expect("sdp")
}

#[tokio::test]
async fn ticket_ring_accept_signal_transfer_wrap_up_and_rate() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op1, op1_id) = available_operator(&app, "operator1").await;
    let (mut op2, op2_id) = available_operator(&app, "operator2").await;
    let (mut term, welcome) = WsClient::connect(&app, &device).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: false, .. }));

    // 取号 with the resident's details entered by staff.
    let item = item_id(&app, &device, "MZ-002").await; // 民政: operator1 only
    let request_id = uuid::Uuid::new_v4();
    term.send(&ClientMsg::TakeTicket {
        appointment_id: None,
        item_id: item,
        priority: Priority::Elderly,
        resident: Some(ResidentDetails {
            name: Some(PersonName::try_from(NAME.to_owned()).expect("name")),
            id_number: Some(IdNumber::try_from(ID_NUMBER.to_owned()).expect("id")),
        }),
        request_id,
        // Details are entered only while a staff member is signed in at the kiosk.
        staff_token: Some(Token::try_from(app.login("staff1").await).expect("staff token")),
        recording_consent: None,
    })
    .await;
    let ticket = term
        .expect("ticket_issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert!(ticket.number.starts_with("J-"), "{}", ticket.number);
    assert_eq!(ticket.id_number_masked.as_deref(), Some("1101**********002X"));
    assert_eq!(ticket.resident_name_masked.as_deref(), Some("王**"));

    // It rings operator1 (the only one with the 民政 skill), masked.
    let ringing = op1
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, expires_in_ms, .. } => Some((ticket.clone(), *expires_in_ms)),
            _ => None,
        })
        .await;
    assert_eq!(ringing.0.ticket_id, ticket.ticket_id);
    assert!(ringing.1 > 0 && ringing.1 <= 20_000);
    assert_eq!(ringing.0.id_number_masked.as_deref(), Some("1101**********002X"));
    op1.send(&ClientMsg::Accept { ticket_id: ticket.ticket_id }).await;
    let s_op = op1
        .expect("session_started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.clone()),
            _ => None,
        })
        .await;
    let s_term = term
        .expect("session_started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.clone()),
            _ => None,
        })
        .await;
    assert_eq!(s_op.session_id, s_term.session_id);
    assert_eq!((s_op.your_part, s_op.polite), (Party::Operator, false));
    assert_eq!((s_term.your_part, s_term.polite), (Party::Terminal, true));
    assert_eq!(s_term.operator_id, op1_id);
    assert_eq!(s_term.operator_name, "陈受理员");
    let session = s_op.session_id;

    // Offer / answer / trickled candidates, relayed only between the two.
    term.send(&ClientMsg::Signal {
        session_id: session,
        signal: Signal::Offer { sdp: sdp("offer"), ice_restart: false },
    })
    .await;
    let got = op1
        .expect("offer", |m| match m {
            ServerMsg::Signal { from, signal: Signal::Offer { sdp, .. }, .. } => Some((*from, sdp.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got, (Party::Terminal, sdp("offer")));
    op1.send(&ClientMsg::Signal { session_id: session, signal: Signal::Answer { sdp: sdp("answer") } }).await;
    term.expect("answer", |m| {
        matches!(m, ServerMsg::Signal { from: Party::Operator, signal: Signal::Answer { .. }, .. })
            .then_some(())
    })
    .await;
    let cand = IceCandidate::try_from("candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".to_owned())
        .expect("cand");
    op1.send(&ClientMsg::Signal {
        session_id: session,
        signal: Signal::Candidate { candidate: cand.clone(), sdp_mid: None, sdp_m_line_index: Some(0) },
    })
    .await;
    let got = term
        .expect("candidate", |m| match m {
            ServerMsg::Signal { signal: Signal::Candidate { candidate, .. }, .. } => Some(candidate.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, cand);
    assert!(
        !op2.seen.iter().any(|m| matches!(m, ServerMsg::Signal { .. })),
        "the other operator never sees this session's signaling"
    );

    // Hold and resume.
    op1.send(&ClientMsg::Hold { session_id: session }).await;
    term.expect("held", |m| matches!(m, ServerMsg::SessionHeld { .. }).then_some(())).await;
    op1.send(&ClientMsg::Resume { session_id: session }).await;
    term.expect("resumed", |m| matches!(m, ServerMsg::SessionResumed { .. }).then_some(())).await;

    // Transfer to operator2 by name, with a note: operator2 rings with the item, masked
    // identity and the note.
    let note =
        Notes::try_from("老人需办理老年综合津贴，身份证已核验，请协助填写申请表".to_owned()).expect("note");
    op1.send(&ClientMsg::Transfer {
        session_id: session,
        target: TransferTarget::Operator { operator_id: op2_id },
        note: Some(note.clone()),
    })
    .await;
    term.expect("transferring", |m| matches!(m, ServerMsg::Transferring { .. }).then_some(())).await;
    op1.expect("ended", |m| {
        matches!(m, ServerMsg::SessionEnded { reason: SessionEndReason::Transferred, .. }).then_some(())
    })
    .await;
    let (t2, ctx) = op2
        .expect("transferred ringing", |m| match m {
            ServerMsg::Ringing { ticket, transfer: Some(ctx), .. } => Some((ticket.clone(), ctx.clone())),
            _ => None,
        })
        .await;
    assert_eq!(t2.ticket_id, ticket.ticket_id);
    assert_eq!(t2.item_name, "老年综合津贴申领");
    assert_eq!(t2.id_number_masked.as_deref(), Some("1101**********002X"));
    assert_eq!(ctx.from_operator.as_deref(), Some("陈受理员"));
    assert_eq!(ctx.note.as_ref(), Some(&note));
    op2.send(&ClientMsg::Accept { ticket_id: t2.ticket_id }).await;
    let s2 = term
        .expect("second session", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.clone()),
            _ => None,
        })
        .await;
    assert_ne!(s2.session_id, session);
    assert_eq!(s2.operator_id, op2_id);

    // End, wrap-up, rating.
    op2.send(&ClientMsg::EndCall { session_id: s2.session_id }).await;
    term.expect("ended", |m| {
        matches!(m, ServerMsg::SessionEnded { reason: SessionEndReason::OperatorEnded, .. }).then_some(())
    })
    .await;
    op2.send(&ClientMsg::WrapUp {
        session_id: s2.session_id,
        outcome: Outcome::Completed,
        notes: Some(Notes::try_from("已受理，材料齐全".to_owned()).expect("notes")),
    })
    .await;
    term.expect("rate_request", |m| {
        matches!(m, ServerMsg::RateRequest { session_id } if *session_id == s2.session_id).then_some(())
    })
    .await;
    term.send(&ClientMsg::Rate {
        session_id: s2.session_id,
        level: RatingLevel::VerySatisfied,
        comment: None,
    })
    .await;
    term.expect("rating_recorded", |m| matches!(m, ServerMsg::RatingRecorded { .. }).then_some(())).await;
    term.send(&ClientMsg::Rate { session_id: s2.session_id, level: RatingLevel::Satisfied, comment: None })
        .await;
    term.expect("second rating refused", |m| matches!(m, ServerMsg::Error { .. }).then_some(())).await;

    // What was persisted.
    let db = &app.state.db.pool;
    let t = sqlx::query("SELECT status, first_answered_at, id_number_enc, id_number_masked, resident_name_enc FROM tickets WHERE id = $1")
        .bind(ticket.ticket_id.to_string())
        .fetch_one(db)
        .await
        .expect("ticket row");
    assert_eq!(t.get::<String, _>("status"), "served");
    assert!(t.get::<Option<i64>, _>("first_answered_at").is_some());
    let enc: String = t.get("id_number_enc");
    assert!(
        !enc.contains(ID_NUMBER) && !t.get::<String, _>("resident_name_enc").contains(NAME),
        "encrypted at rest"
    );
    let plain =
        app.state.pii.decrypt(&enc, &format!("ticket:{}:id_number", ticket.ticket_id)).expect("decrypts");
    assert_eq!(plain, ID_NUMBER);
    let sessions = sqlx::query("SELECT operator_id, end_reason, outcome, transfer_note, transferred_from FROM call_sessions WHERE ticket_id = $1 ORDER BY started_at")
        .bind(ticket.ticket_id.to_string())
        .fetch_all(db)
        .await
        .expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].get::<String, _>("end_reason"), "transferred");
    let stored_note = sessions[0].get::<Option<String>, _>("transfer_note").expect("transfer note");
    assert!(!stored_note.contains(note.as_str()), "transfer note encrypted at rest");
    let context = signaling_server::pii::Pii::transfer_note_context(session);
    assert_eq!(app.state.pii.open(Some(stored_note), &context).as_deref(), Some(note.as_str()));
    assert_eq!(sessions[1].get::<String, _>("operator_id"), op2_id.to_string());
    assert_eq!(sessions[1].get::<Option<String>, _>("outcome").as_deref(), Some("completed"));
    assert_eq!(
        sessions[1].get::<Option<String>, _>("transferred_from").as_deref(),
        Some(session.to_string().as_str())
    );
    let rating: String = sqlx::query("SELECT level FROM ratings WHERE session_id = $1")
        .bind(s2.session_id.to_string())
        .fetch_one(db)
        .await
        .expect("rating")
        .get("level");
    assert_eq!(rating, "very_satisfied");
    let events: Vec<String> = sqlx::query("SELECT detail FROM session_events WHERE ticket_id = $1")
        .bind(ticket.ticket_id.to_string())
        .fetch_all(db)
        .await
        .expect("events")
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    assert!(events.len() >= 8, "every state change recorded: {events:?}");
    let all: Value = serde_json::json!(events);
    assert!(!all.to_string().contains(ID_NUMBER));

    // The ID number and name never reached the logs.
    let logs = captured_logs();
    assert!(!logs.is_empty(), "logs are captured");
    assert!(
        !logs.contains(ID_NUMBER) && !logs.contains("11010519491231") && !logs.contains(NAME),
        "PII in logs"
    );
    assert!(!logs.contains(&device), "tokens never logged");
}

#[tokio::test]
async fn a_bad_rating_opens_a_rectification_due_in_fifteen_working_days() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "SB-003").await;
    term.send(&crate::ws_client::take_ticket(item)).await;
    let ticket = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = op
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    // Wrap-up straight from the call ends it too.
    op.send(&ClientMsg::WrapUp { session_id: session, outcome: Outcome::NeedsMaterials, notes: None }).await;
    term.expect("rate_request", |m| matches!(m, ServerMsg::RateRequest { .. }).then_some(())).await;
    let comment =
        shared::validate::Comment::try_from("等了很久，材料要求没讲清楚".to_owned()).expect("comment");
    term.send(&ClientMsg::Rate {
        session_id: session,
        level: RatingLevel::Dissatisfied,
        comment: Some(comment),
    })
    .await;
    term.expect("recorded", |m| matches!(m, ServerMsg::RatingRecorded { .. }).then_some(())).await;
    let row = sqlx::query(
        "SELECT status, due_at, created_at, callback_result FROM rectifications WHERE session_id = $1",
    )
    .bind(session.to_string())
    .fetch_one(&app.state.db.pool)
    .await
    .expect("rectification opened");
    assert_eq!(row.get::<String, _>("status"), "open");
    assert!(row.get::<Option<String>, _>("callback_result").is_none(), "the call-back is still to do");
    let days = (row.get::<i64, _>("due_at") - row.get::<i64, _>("created_at")) as f64 / 86_400_000.0;
    assert!((19.0..=23.0).contains(&days), "15 working days is three weeks of calendar: {days}");
}

#[tokio::test]
async fn only_the_serving_operator_may_reveal_the_full_id_and_it_is_audited() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    term.send(&ClientMsg::TakeTicket {
        appointment_id: None,
        item_id: item_id(&app, &device, "MZ-001").await,
        priority: Priority::Normal,
        resident: Some(ResidentDetails {
            name: Some(PersonName::try_from(NAME.to_owned()).expect("name")),
            id_number: Some(IdNumber::try_from(ID_NUMBER.to_owned()).expect("id")),
        }),
        request_id: uuid::Uuid::new_v4(),
        staff_token: Some(Token::try_from(app.login("staff1").await).expect("staff token")),
        recording_consent: None,
    })
    .await;
    let ticket = op
        .expect("ring", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    let path = format!("/api/v1/tickets/{ticket}/reveal");
    let op1 = app.login("operator1").await;
    let (s, _) = app.post(&path, Some(&op1), serde_json::json!({})).await;
    assert_eq!(s, reqwest::StatusCode::FORBIDDEN, "ringing is not serving");
    op.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    op.expect("started", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
    let (s, body) = app.post(&path, Some(&op1), serde_json::json!({})).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{body}");
    assert_eq!((body["id_number"].as_str(), body["name"].as_str()), (Some(ID_NUMBER), Some(NAME)));
    let op2 = app.login("operator2").await;
    let (s, _) = app.post(&path, Some(&op2), serde_json::json!({})).await;
    assert_eq!(s, reqwest::StatusCode::FORBIDDEN);
    let (s, _) = app.post(&path, Some(&device), serde_json::json!({})).await;
    assert_eq!(s, reqwest::StatusCode::FORBIDDEN);
    let entries = app.audit("resident.reveal").await;
    let outcomes: Vec<&str> = entries.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == "denied").count(), 3);
    assert!(!entries.iter().any(|e| e.to_string().contains(ID_NUMBER)), "the audit log holds no ID number");

    // Retention: once the ticket is long closed its personal data is erased.
    sqlx::query("UPDATE tickets SET closed_at = 1 WHERE id = $1")
        .bind(ticket.to_string())
        .execute(&app.state.db.pool)
        .await
        .expect("age");
    let n = signaling_server::api::tickets::purge_personal_data(&app.state.db, 180).await.expect("purge");
    assert_eq!(n, 1);
    let (s, body) = app.post(&path, Some(&op1), serde_json::json!({})).await;
    assert_eq!(s, reqwest::StatusCode::OK);
    assert!(body["id_number"].is_null() && body["name"].is_null());
}
