//! The WebSocket connection to the signaling server, kept alive for the life of the service:
//! `hello`-less authentication with the device JWT in the subprotocol (`bangban.v1,
//! bearer.<JWT>`), `ping` every `heartbeat_secs`, a dead-connection check (no frame for 45 s),
//! reconnect with exponential backoff and jitter. The server recognises the device by its token
//! and resumes its state within the window; `welcome.resumed` tells which happened.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{
    BEARER_SUBPROTOCOL_PREFIX, ByeReason, ClientMsg, DecodeError, IDLE_TIMEOUT_SECS, MAX_FRAME_BYTES,
    SUBPROTOCOL, ServerMsg,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::auth::DeviceAuth;
use crate::backoff::Backoff;

/// What the connection tells the rest of the program.
#[derive(Debug, Clone)]
pub enum ConnEvent {
    /// `welcome` received.
    Connected {
        resumed: bool,
    },
    Message(Box<ServerMsg>),
    /// The connection dropped; a reconnect follows after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// The server told us to stop (`revoked`, `replaced`) or the credential is refused.
    Stopped {
        reason: String,
    },
}

enum Outcome {
    /// Reconnect after the backoff.
    Retry(String),
    /// Reconnect now with a fresh token.
    RetryFresh(String),
    Stop(String),
}

/// Runs until stopped: connects, forwards server messages to `events`, sends `outgoing`.
pub async fn run(
    ws_url: String,
    auth: Arc<DeviceAuth>,
    mut outgoing: mpsc::Receiver<ClientMsg>,
    events: mpsc::Sender<ConnEvent>,
) {
    let mut backoff = Backoff::default();
    loop {
        let outcome = connect_once(&ws_url, &auth, &mut outgoing, &events, &mut backoff).await;
        let (reason, delay) = match outcome {
            Outcome::Stop(reason) => {
                tracing::error!(%reason, "signaling stopped");
                let _ = events.send(ConnEvent::Stopped { reason }).await;
                return;
            }
            Outcome::RetryFresh(reason) => {
                auth.invalidate().await;
                (reason, Duration::ZERO)
            }
            Outcome::Retry(reason) => (reason, backoff.next_delay(&mut rand::thread_rng())),
        };
        tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "signaling disconnected");
        if events.send(ConnEvent::Disconnected { reason, retry_in: delay }).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}

async fn connect_once(
    ws_url: &str,
    auth: &DeviceAuth,
    outgoing: &mut mpsc::Receiver<ClientMsg>,
    events: &mpsc::Sender<ConnEvent>,
    backoff: &mut Backoff,
) -> Outcome {
    let token = match auth.token().await {
        Ok(t) => t,
        Err(e) if e.is_permanent() => return Outcome::Stop(format!("device credential refused: {e}")),
        Err(e) => return Outcome::Retry(format!("device token: {e}")),
    };
    let mut req = match ws_url.into_client_request() {
        Ok(r) => r,
        Err(e) => return Outcome::Stop(format!("bad server url: {e}")),
    };
    let proto = format!("{SUBPROTOCOL}, {BEARER_SUBPROTOCOL_PREFIX}{token}");
    match HeaderValue::from_str(&proto) {
        Ok(v) => {
            req.headers_mut().insert("sec-websocket-protocol", v);
        }
        Err(_) => return Outcome::RetryFresh("token is not a valid header value".into()),
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        req,
        Some(config),
        true,
        Some(crate::tls::ws_connector()),
    );
    let (ws, _resp) = match timeout(Duration::from_secs(15), connect).await {
        Err(_) => return Outcome::Retry("connect timed out".into()),
        Ok(Err(WsError::Http(resp))) if resp.status().as_u16() == 401 => {
            return Outcome::RetryFresh("token refused (401)".into());
        }
        Ok(Err(e)) => return Outcome::Retry(format!("connect: {e}")),
        Ok(Ok(x)) => x,
    };
    let (mut sink, mut stream) = ws.split();

    let mut heartbeat = Duration::from_secs(shared::protocol::HEARTBEAT_SECS);
    let idle_limit = Duration::from_secs(IDLE_TIMEOUT_SECS);
    let mut last_frame = Instant::now();
    let mut seq: u64 = 0;
    let mut welcomed = false;
    let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let welcome_deadline = Instant::now() + Duration::from_secs(10);
    // A token fetched later goes to the server on this connection (`renew`), so that it is not
    // closed with `auth_expired` when the token it was opened with expires (e.g. mid-call).
    let mut fresh = auth.watch();
    fresh.borrow_and_update();
    let mut fresh_open = true;

    loop {
        let idle_at = if welcomed { last_frame + idle_limit } else { welcome_deadline };
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    None => return Outcome::Retry("connection closed".into()),
                    Some(Err(e)) => return Outcome::Retry(format!("read: {e}")),
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => return Outcome::Retry(format!("closed by server: {c:?}")),
                    Some(Ok(_)) => { last_frame = Instant::now(); continue; }
                };
                last_frame = Instant::now();
                let msg = match ServerMsg::decode(text.as_bytes()) {
                    Ok(m) => m,
                    Err(DecodeError::UnknownType { msg_type }) => { tracing::debug!(%msg_type, "skipping unknown message type"); continue; }
                    Err(e) => { tracing::warn!(error = %e, "undecodable server message"); continue; }
                };
                match msg {
                    ServerMsg::Welcome { resumed, heartbeat_secs, .. } => {
                        welcomed = true;
                        backoff.reset();
                        if heartbeat_secs > 0 && Duration::from_secs(heartbeat_secs) != heartbeat {
                            heartbeat = Duration::from_secs(heartbeat_secs);
                            ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
                        }
                        tracing::info!(resumed, "signaling connected");
                        if events.send(ConnEvent::Connected { resumed }).await.is_err() { return Outcome::Stop("shutting down".into()); }
                    }
                    ServerMsg::Pong { .. } => {}
                    ServerMsg::Renewed { expires_at } => tracing::debug!(expires_at, "signaling token renewed"),
                    ServerMsg::Bye { reason } => {
                        let _ = events.send(ConnEvent::Message(Box::new(ServerMsg::Bye { reason }))).await;
                        return match reason {
                            ByeReason::Revoked | ByeReason::Replaced => Outcome::Stop(format!("bye {reason:?}")),
                            ByeReason::AuthExpired => Outcome::RetryFresh("bye auth_expired".into()),
                            _ => Outcome::Retry(format!("bye {reason:?}")),
                        };
                    }
                    other => {
                        if events.send(ConnEvent::Message(Box::new(other))).await.is_err() { return Outcome::Stop("shutting down".into()); }
                    }
                }
            }
            msg = outgoing.recv(), if welcomed => {
                let Some(msg) = msg else { return Outcome::Stop("shutting down".into()) };
                match msg.encode_bounded() {
                    Ok(text) => if let Err(e) = sink.send(Message::text(text)).await {
                        return Outcome::Retry(format!("write: {e}"));
                    },
                    Err(_) => tracing::error!(kind = msg.kind(), "message too large, dropped"),
                }
            }
            changed = fresh.changed(), if welcomed && fresh_open => {
                if changed.is_err() {
                    fresh_open = false;
                    continue;
                }
                let token = fresh.borrow_and_update().clone();
                if let Some(token) = token.and_then(|t| shared::validate::Token::try_from(t).ok())
                    && let Err(e) = sink.send(Message::text(ClientMsg::Renew { token }.encode())).await
                {
                    return Outcome::Retry(format!("write: {e}"));
                }
            }
            _ = ping.tick(), if welcomed => {
                seq += 1;
                if let Err(e) = sink.send(Message::text(ClientMsg::Ping { seq }.encode())).await {
                    return Outcome::Retry(format!("write: {e}"));
                }
            }
            _ = tokio::time::sleep_until(idle_at) => {
                return Outcome::Retry(if welcomed { "no frame from the server for 45 s".into() } else { "no welcome".into() });
            }
        }
    }
}
