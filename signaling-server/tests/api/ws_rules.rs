//! Who may connect and who may do what on the socket.

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use shared::protocol::{ClientMsg, ErrorCode, ServerMsg, Signal};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

async fn handshake_status(app: &TestApp, protocols: Option<String>) -> u16 {
    let mut req = format!("ws://{}/ws", app.addr).into_client_request().expect("req");
    if let Some(p) = protocols {
        req.headers_mut().insert("sec-websocket-protocol", p.parse().expect("hdr"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn the_handshake_checks_subprotocol_and_token() {
    let app = TestApp::spawn().await;
    let login = app.login_full("operator1").await;
    assert_eq!(handshake_status(&app, None).await, 400, "no subprotocol");
    assert_eq!(handshake_status(&app, Some("chat".into())).await, 400);
    assert_eq!(handshake_status(&app, Some("bangban.v1, bearer.not-a-jwt".into())).await, 401);
    let refresh = login["refresh_token"].as_str().expect("r");
    assert_eq!(
        handshake_status(&app, Some(format!("bangban.v1, bearer.{refresh}"))).await,
        401,
        "refresh token"
    );
    let token = login["access_token"].as_str().expect("t");
    assert_eq!(handshake_status(&app, Some(format!("bangban.v1, bearer.{token}"))).await, 101);
    // A token in the URL is not a way in.
    let resp = app.client.get(app.url(&format!("/ws?token={token}"))).send().await.expect("sent");
    assert_ne!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
}

async fn raw_socket(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/ws", app.addr).into_client_request().expect("req");
    req.headers_mut().insert("sec-websocket-protocol", "bangban.v1".parse().expect("hdr"));
    tokio_tungstenite::connect_async(req).await.expect("connect").0
}

async fn next_msg(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Option<ServerMsg> {
    loop {
        match tokio::time::timeout(crate::ws_client::PATIENCE, ws.next()).await.expect("in time")? {
            Ok(Message::Text(t)) => return Some(ServerMsg::decode(t.as_bytes()).expect("decodes")),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn hello_authenticates_and_checks_the_version() {
    let app = TestApp::spawn().await;
    let token = app.login("supervisor").await;
    let mut ws = raw_socket(&app).await;
    ws.send(Message::Text(json!({ "type": "hello", "v": 1, "token": token }).to_string().into()))
        .await
        .expect("send");
    assert!(matches!(
        next_msg(&mut ws).await,
        Some(ServerMsg::Welcome { role: shared::protocol::Role::Supervisor, .. })
    ));

    let mut ws = raw_socket(&app).await;
    ws.send(Message::Text(json!({ "type": "hello", "v": 99, "token": token }).to_string().into()))
        .await
        .expect("send");
    assert!(matches!(
        next_msg(&mut ws).await,
        Some(ServerMsg::Error { code: ErrorCode::UnsupportedVersion, .. })
    ));

    let mut ws = raw_socket(&app).await;
    ws.send(Message::Text(json!({ "type": "ping", "seq": 1 }).to_string().into())).await.expect("send");
    assert!(matches!(
        next_msg(&mut ws).await,
        Some(ServerMsg::Error { code: ErrorCode::Unauthenticated, .. })
    ));

    let mut ws = raw_socket(&app).await;
    ws.send(Message::Text(json!({ "type": "hello", "v": 1, "token": "x.y.z" }).to_string().into()))
        .await
        .expect("send");
    assert!(matches!(
        next_msg(&mut ws).await,
        Some(ServerMsg::Error { code: ErrorCode::Unauthenticated, .. })
    ));
}

#[tokio::test]
async fn hostile_frames_get_errors_and_the_connection_carries_on() {
    let app = TestApp::spawn().await;
    let token = app.login("operator1").await;
    let (mut c, _) = WsClient::connect(&app, &token).await;
    for junk in [
        "not json".to_owned(),
        "{}".to_owned(),
        json!({ "type": "launch_missiles" }).to_string(),
        json!({ "type": "ping", "seq": "one" }).to_string(),
        json!({ "type": "ping", "seq": 1, "extra": true }).to_string(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
    ] {
        c.send_raw(&junk).await;
        let m = c
            .expect("an error reply", |m| {
                (!matches!(m, ServerMsg::Board { .. } | ServerMsg::OperatorStatus { .. })).then(|| m.clone())
            })
            .await;
        assert!(matches!(m, ServerMsg::Error { .. }), "{junk:.40}: {m:?}");
    }
    c.send(&ClientMsg::Ping { seq: 7 }).await;
    c.expect("pong", |m| matches!(m, ServerMsg::Pong { seq: 7 }).then_some(())).await;
    // An oversized frame closes the connection (it cannot be read safely).
    c.send_raw(&"x".repeat(70 * 1024)).await;
    assert!(c.try_recv().await.is_none() || c.try_recv().await.is_none(), "closed after an oversized frame");
}

#[tokio::test]
async fn nobody_can_act_in_a_session_they_are_not_in() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (_, other_device) = app.enroll_terminal(1).await;
    let (mut op1, _) = available_operator(&app, "operator1").await;
    let (mut op2, _) = available_operator(&app, "operator2").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let (mut intruder, _) = WsClient::connect(&app, &other_device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    term.send(&take_ticket(item)).await;
    let ticket = op1
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    // operator2 lacks the skill and the offer is not theirs.
    op2.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    op2.expect("refused", |m| matches!(m, ServerMsg::Error { .. }).then_some(())).await;
    op2.send(&ClientMsg::Pick { ticket_id: ticket }).await;
    op2.expect("refused", |m| matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(()))
        .await;
    op1.send(&ClientMsg::Accept { ticket_id: ticket }).await;
    let session = op1
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    let offer = Signal::Offer {
        sdp: shared::validate::Sdp::try_from("v=0\r\n".to_owned()).expect("sdp"),
        ice_restart: false,
    };
    for c in [&mut op2, &mut intruder] {
        c.send(&ClientMsg::Signal { session_id: session, signal: offer.clone() }).await;
        c.expect("forbidden", |m| {
            matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
        })
        .await;
        c.send(&ClientMsg::EndCall { session_id: session }).await;
        c.expect("forbidden", |m| {
            matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
        })
        .await;
    }
    intruder.send(&ClientMsg::CancelTicket { ticket_id: ticket }).await;
    intruder
        .expect("not theirs", |m| {
            matches!(m, ServerMsg::Error { code: ErrorCode::NotFound, .. }).then_some(())
        })
        .await;
    // A terminal cannot act as an operator, nor an operator take a ticket.
    term.send(&ClientMsg::WrapUp {
        session_id: session,
        outcome: shared::protocol::Outcome::Completed,
        notes: None,
    })
    .await;
    term.expect("forbidden", |m| {
        matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
    })
    .await;
    op2.send(&take_ticket(item)).await;
    op2.expect("forbidden", |m| {
        matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
    })
    .await;
    // The session is unaffected: the parties still talk.
    term.send(&ClientMsg::Signal { session_id: session, signal: offer }).await;
    op1.expect("offer", |m| matches!(m, ServerMsg::Signal { .. }).then_some(())).await;
    assert!(!op2.seen.iter().chain(intruder.seen.iter()).any(|m| matches!(m, ServerMsg::Signal { .. })));
}

#[tokio::test]
async fn revoking_a_terminal_or_disabling_an_account_closes_the_socket_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (_, device) = app.enroll_terminal(0).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let op = app.login_full("operator2").await;
    let (mut opc, _) = WsClient::connect(&app, op["access_token"].as_str().expect("t")).await;
    let (_, list) = app.get("/api/v1/terminals", Some(&admin)).await;
    let tid = list.as_array().expect("l").iter().find(|t| t["status"] == "active").expect("active")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (s, _) = app
        .post(&format!("/api/v1/terminals/{tid}/revoke"), Some(&admin), json!({ "reason": "设备更换" }))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(term.expect_closed().await, Some(shared::protocol::ByeReason::Revoked));
    let uid = op["user"]["id"].as_str().expect("id");
    let (s, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{uid}"),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(opc.expect_closed().await, Some(shared::protocol::ByeReason::Revoked));
    assert_eq!(
        handshake_status(&app, Some(format!("bangban.v1, bearer.{device}"))).await,
        401,
        "and cannot come back"
    );
}
