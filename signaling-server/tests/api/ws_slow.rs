//! A consumer that cannot keep up is cut off with a reason; everyone else carries on.

use futures_util::SinkExt;
use shared::protocol::{ClientMsg, OperatorStateView, SUBPROTOCOL, ServerMsg};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::TestApp;
use crate::ws_client::WsClient;

#[tokio::test]
async fn a_slow_consumer_is_disconnected_while_others_carry_on() {
    let app = TestApp::spawn_with(|c| c.outbound_queue = 16).await;
    let sup = app.login("supervisor").await;
    let (mut watcher, _) = WsClient::connect(&app, &sup).await;
    let op = app.login_full("operator1").await;
    let op_id: uuid::Uuid = op["user"]["id"].as_str().expect("id").parse().expect("uuid");

    // The slow client: a tiny receive buffer, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2048).expect("rcvbuf");
    let stream = socket.connect(app.addr).await.expect("tcp");
    let mut req = format!("ws://{}/ws", app.addr).into_client_request().expect("req");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("{SUBPROTOCOL}, bearer.{}", op["access_token"].as_str().expect("t")).parse().expect("hdr"),
    );
    let (mut slow, _) = tokio_tungstenite::client_async(req, stream).await.expect("handshake");
    slow.send(Message::Text(ClientMsg::SetAvailability { available: true }.encode().into()))
        .await
        .expect("send");
    watcher
        .expect("operator available on the board", |m| match m {
            ServerMsg::Board { operators, .. }
                if operators
                    .iter()
                    .any(|o| o.operator_id == op_id && o.state == OperatorStateView::Available) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;

    // Flood pings without reading a single pong, until the server gives up on us.
    let ping = ClientMsg::Ping { seq: 1 }.encode();
    let flood = async {
        for _ in 0..2_000_000u32 {
            if slow.send(Message::Text(ping.clone().into())).await.is_err() {
                break;
            }
        }
    };
    // The flood ends when the server drops the connection (sends start failing).
    flood.await;
    watcher
        .expect("cut off: the operator drops off the board", |m| match m {
            ServerMsg::Board { operators, .. }
                if operators
                    .iter()
                    .any(|o| o.operator_id == op_id && o.state == OperatorStateView::Offline) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    assert!(app.state.switchboard.stats.slow_consumers.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // Everyone else carries on.
    watcher.send(&ClientMsg::Ping { seq: 42 }).await;
    watcher.expect("pong", |m| matches!(m, ServerMsg::Pong { seq: 42 }).then_some(())).await;
}
