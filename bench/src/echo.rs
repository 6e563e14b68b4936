//! The reference: a minimal axum WebSocket relay with the server's buffer settings (read
//! buffer 4 KiB, write buffer 0, 64 KiB frames, a bounded outbound queue of 256 per
//! connection, reader and writer halves). The two connections to `/ws/{pair}` are peers; every
//! text frame from one goes unchanged to the other. No authentication, no JSON parsing, no
//! central task: what is left of the server's cost per connection and per relayed message
//! is the floor that axum, tokio and the kernel set on this machine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

const QUEUE: usize = 256;
const MAX_FRAME: usize = 64 * 1024;

type Slot = Arc<Mutex<Option<mpsc::Sender<Utf8Bytes>>>>;

#[derive(Default, Clone)]
struct Pairs(Arc<Mutex<HashMap<u64, (Slot, Slot)>>>);

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws/{pair}", get(upgrade))
        .with_state(Pairs::default());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn upgrade(State(pairs): State<Pairs>, Path(pair): Path<u64>, ws: WebSocketUpgrade) -> Response {
    ws.protocols([shared::protocol::SUBPROTOCOL])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_FRAME * 4)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| connection(pairs, pair, socket))
}

async fn connection(pairs: Pairs, pair: u64, socket: WebSocket) {
    // The first connection of a pair takes slot `a`, its peer `b`.
    let (mine, peer) = {
        let mut map = pairs.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(&pair) {
            Some((a, b)) => (b, a),
            None => {
                let (a, b): (Slot, Slot) = Default::default();
                map.insert(pair, (a.clone(), b.clone()));
                (a, b)
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    *mine.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Text(frame)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(t) => {
                let to = peer.lock().unwrap_or_else(|p| p.into_inner()).clone();
                // A full queue drops the frame here (the server would close a slow consumer).
                if let Some(to) = to {
                    let _ = to.try_send(t);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    *mine.lock().unwrap_or_else(|p| p.into_inner()) = None;
    writer.abort();
}
