//! A scripted WebSocket client speaking the Bangban protocol, for the signaling tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{ClientMsg, SUBPROTOCOL, ServerMsg};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::TestApp;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Upper bound for one expected message: a guard against hangs, not a pause.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub struct WsClient {
    ws: Ws,
    /// Every message received, in order (including the ones `expect` skipped).
    pub seen: Vec<ServerMsg>,
}

impl WsClient {
    /// Connects with the token in the `bearer.` subprotocol and reads `welcome`.
    pub async fn connect(app: &TestApp, token: &str) -> (Self, ServerMsg) {
        let mut req = format!("ws://{}/ws", app.addr).into_client_request().expect("request");
        req.headers_mut().insert(
            "sec-websocket-protocol",
            format!("{SUBPROTOCOL}, bearer.{token}").parse().expect("header"),
        );
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("ws connects");
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
            Some(SUBPROTOCOL)
        );
        let mut c = Self { ws, seen: Vec::new() };
        let welcome = c.recv().await;
        assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
        (c, welcome)
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.ws.send(Message::Text(msg.encode().into())).await.expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Next server message (panics after `PATIENCE` or when the socket closes).
    pub async fn recv(&mut self) -> ServerMsg {
        self.try_recv().await.expect("a server message")
    }

    /// Next server message, `None` when the socket closed.
    pub async fn try_recv(&mut self) -> Option<ServerMsg> {
        loop {
            let frame =
                tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("server answered in time")?;
            match frame.ok()? {
                Message::Text(t) => {
                    let msg = ServerMsg::decode(t.as_bytes()).expect("valid server message");
                    self.seen.push(msg.clone());
                    return Some(msg);
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Reads until a message satisfies `f`; the skipped ones stay in `seen`.
    pub async fn expect<T>(&mut self, what: &str, mut f: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = tokio::time::timeout(left, self.recv()).await.unwrap_or_else(|_| {
                panic!("waited for {what}; saw {:#?}", self.seen.iter().rev().take(8).collect::<Vec<_>>())
            });
            if let Some(v) = f(&msg) {
                return v;
            }
        }
    }

    /// Reads until the socket closes; returns the `bye` reason if one came.
    pub async fn expect_closed(&mut self) -> Option<shared::protocol::ByeReason> {
        let mut reason = None;
        while let Some(m) = self.try_recv().await {
            if let ServerMsg::Bye { reason: r } = m {
                reason = Some(r);
            }
        }
        reason
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The ID of a demo service item by its code (e.g. `MZ-001`).
pub async fn item_id(app: &TestApp, token: &str, code: &str) -> uuid::Uuid {
    let (_, items) = app.get("/api/v1/items", Some(token)).await;
    let item =
        items.as_array().expect("items").iter().find(|i| i["code"] == code).cloned().expect("item exists");
    item["id"].as_str().expect("id").parse().expect("uuid")
}

/// A signed-in operator connected and set available; returns the client and its user ID.
pub async fn available_operator(app: &TestApp, username: &str) -> (WsClient, uuid::Uuid) {
    let login = app.login_full(username).await;
    let id = login["user"]["id"].as_str().expect("id").parse().expect("uuid");
    let token = login["access_token"].as_str().expect("token");
    (available(app, token).await, id)
}

/// Like [`available_operator`]; returns the client and the operator's access token.
pub async fn available_operator_with(app: &TestApp, username: &str) -> (WsClient, String) {
    let token = app.login(username).await;
    (available(app, &token).await, token)
}

async fn available(app: &TestApp, token: &str) -> WsClient {
    let (mut c, _) = WsClient::connect(app, token).await;
    c.send(&ClientMsg::SetAvailability { available: true }).await;
    c.expect("available", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: shared::protocol::OperatorStateView::Available })
            .then_some(())
    })
    .await;
    c
}

pub fn take_ticket(item_id: uuid::Uuid) -> ClientMsg {
    ClientMsg::TakeTicket {
        appointment_id: None,
        item_id,
        priority: shared::protocol::Priority::Normal,
        resident: None,
        request_id: uuid::Uuid::new_v4(),
        staff_token: None,
        recording_consent: None,
    }
}

/// Takes a ticket for an elderly resident with committee staff signed in at the kiosk (their
/// access token vouches for it) and returns the issued ticket's id.
pub async fn take_assisted_ticket(term: &mut WsClient, item_id: uuid::Uuid, staff: &str) -> uuid::Uuid {
    term.send(&ClientMsg::TakeTicket {
        appointment_id: None,
        item_id,
        priority: shared::protocol::Priority::Elderly,
        resident: None,
        request_id: uuid::Uuid::new_v4(),
        staff_token: Some(shared::validate::Token::try_from(staff.to_owned()).expect("token")),
        recording_consent: None,
    })
    .await;
    term.expect("ticket", |m| match m {
        ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    })
    .await
}

/// A live call at the first point for the item `code`, answered by operator1: both sides have
/// seen `session_started`. Returns (operator, operator's id, terminal, session).
pub async fn live_call(app: &TestApp, code: &str) -> (WsClient, uuid::Uuid, WsClient, uuid::Uuid) {
    let (_, device) = app.enroll_terminal(0).await;
    let (mut op, op_id) = available_operator(app, "operator1").await;
    let (mut term, _) = WsClient::connect(app, &device).await;
    term.send(&take_ticket(item_id(app, &device, code).await)).await;
    let session = answer_ringing(&mut op, &mut term).await;
    (op, op_id, term, session)
}

/// The operator, once rung, accepts; returns the session once both sides have seen
/// `session_started`.
pub async fn answer_ringing(op: &mut WsClient, term: &mut WsClient) -> uuid::Uuid {
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
    term.expect("started", |m| matches!(m, ServerMsg::SessionStarted { .. }).then_some(())).await;
    session
}

/// A call at the first point for SB-003, answered by operator1 and wrapped up as `needs_materials`
/// until the terminal is asked to rate; returns the terminal's client and the session.
pub async fn wrapped_up_call(app: &TestApp) -> (WsClient, uuid::Uuid) {
    let (mut op, _, mut term, session) = live_call(app, "SB-003").await;
    op.send(&ClientMsg::WrapUp {
        session_id: session,
        outcome: shared::protocol::Outcome::NeedsMaterials,
        notes: None,
    })
    .await;
    term.expect("rate_request", |m| matches!(m, ServerMsg::RateRequest { .. }).then_some(())).await;
    (term, session)
}
