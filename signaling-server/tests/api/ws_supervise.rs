//! A supervisor joins a live call from the board over real WebSockets: monitor, whisper, barge
//! in and end it; signaling reaches only the named participant; every step is in the audit log,
//! whose chain stays intact; nobody else may supervise.

use reqwest::StatusCode;
use shared::protocol::{
    ClientMsg, ErrorCode, ParticipantRole, ServerMsg, SessionEndReason, Signal, SuperviseMode,
};
use shared::validate::Sdp;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, live_call};

fn offer() -> Signal {
    Signal::Offer {
        sdp: Sdp::try_from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_owned()).expect("sdp"),
        ice_restart: false,
    }
}

#[tokio::test]
async fn a_supervisor_monitors_whispers_barges_in_and_ends_a_call_all_audited() {
    let app = TestApp::spawn().await;
    let (mut op, op_id, mut term, session) = live_call(&app, "SB-003").await;

    // Another operator may not supervise.
    let (mut other, _) = available_operator(&app, "operator2").await;
    other.send(&ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor }).await;
    let code = other
        .expect("refused", |m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::Forbidden);

    // The supervisor finds the call on the board and joins it.
    let sup_login = app.login_full("supervisor").await;
    let sup_id: uuid::Uuid = sup_login["user"]["id"].as_str().expect("id").parse().expect("uuid");
    let (mut sup, _) = WsClient::connect(&app, sup_login["access_token"].as_str().expect("token")).await;
    let from_board = sup
        .expect("board naming the call", |m| match m {
            ServerMsg::Board { operators, .. } => {
                operators.iter().find(|o| o.operator_id == op_id).and_then(|o| o.session_id)
            }
            _ => None,
        })
        .await;
    assert_eq!(from_board, session);
    sup.send(&ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor }).await;
    sup.expect("supervising", |m| match m {
        ServerMsg::Supervising { session_id, mode: SuperviseMode::Monitor, .. } if *session_id == session => {
            Some(())
        }
        _ => None,
    })
    .await;
    let terminal = op
        .expect("the operator is told", |m| match m {
            ServerMsg::Participants { participants, .. } => {
                assert!(participants.iter().any(|p| p.participant_id == sup_id
                    && p.role == ParticipantRole::Supervisor
                    && p.mode == Some(SuperviseMode::Monitor)));
                participants.iter().find(|p| p.role == ParticipantRole::Terminal).map(|p| p.participant_id)
            }
            _ => None,
        })
        .await;
    term.expect("the terminal gets the list", |m| matches!(m, ServerMsg::Participants { .. }).then_some(()))
        .await;

    // Offer to the terminal; the terminal's answer reaches the supervisor only.
    sup.send(&ClientMsg::PeerSignal { session_id: session, peer: terminal, signal: offer() }).await;
    term.expect("supervisor's offer", |m| match m {
        ServerMsg::PeerSignal { peer, signal: Signal::Offer { .. }, .. } if *peer == sup_id => Some(()),
        _ => None,
    })
    .await;
    term.send(&ClientMsg::PeerSignal { session_id: session, peer: sup_id, signal: offer() }).await;
    sup.expect("terminal's reply", |m| match m {
        ServerMsg::PeerSignal { peer, .. } if *peer == terminal => Some(()),
        _ => None,
    })
    .await;

    for mode in [SuperviseMode::Whisper, SuperviseMode::Barge] {
        sup.send(&ClientMsg::Supervise { session_id: session, mode }).await;
        op.expect("mode change", |m| match m {
            ServerMsg::Participants { participants, .. } => {
                participants.iter().any(|p| p.participant_id == sup_id && p.mode == Some(mode)).then_some(())
            }
            _ => None,
        })
        .await;
    }

    sup.send(&ClientMsg::EndCall { session_id: session }).await;
    for c in [&mut op, &mut term, &mut sup] {
        c.expect("supervisor_ended", |m| match m {
            ServerMsg::SessionEnded { reason: SessionEndReason::SupervisorEnded, session_id }
                if *session_id == session =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }

    // The audit log holds every step, by the supervisor, about this session; the chain holds.
    let admin = app.login("admin").await;
    let (s, page) = app.get("/api/v1/audit?limit=50", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    let mine: Vec<(String, String)> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["target_id"] == session.to_string())
        .map(|e| {
            (e["action"].as_str().unwrap_or("").to_owned(), e["actor_id"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    for action in ["session.supervise", "session.supervise_mode", "session.supervisor_end"] {
        assert!(mine.iter().any(|(a, who)| a == action && *who == sup_id.to_string()), "{action}: {mine:?}");
    }
    assert_eq!(mine.iter().filter(|(a, _)| a == "session.supervise_mode").count(), 2);
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], true, "{v}");
}
