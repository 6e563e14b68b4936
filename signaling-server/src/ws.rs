//! `/ws`: the signaling WebSocket. Authentication by an access or device token, either as a
//! second `Sec-WebSocket-Protocol` entry `bearer.<JWT>` (checked before the upgrade) or in a
//! first `hello` message; never in the URL. Frames are at most 64 KiB, buffers are small (so
//! 10,000 idle connections fit in about 100 MB), a client silent for 45 s is closed, and each
//! connection's outbound queue is bounded (see `switchboard::outbox`). Incoming messages are
//! rate limited per connection ([`RateLimit`]): signaling (ICE candidates come in bursts) has
//! its own generous bucket, everything else a tighter one; a message over the limit is dropped
//! and answered once per burst with `rate_limited`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::{
    BEARER_SUBPROTOCOL_PREFIX, ByeReason, ClientMsg, ErrorCode, IDLE_TIMEOUT_SECS, MAX_FRAME_BYTES,
    PROTOCOL_VERSION, SUBPROTOCOL, ServerMsg,
};
use uuid::Uuid;

use crate::auth::tokens::TokenKind;
use crate::error::ApiError;
use crate::state::AppState;
use crate::switchboard::outbox::{self, OutboxRx};
use crate::switchboard::{Event, PartyInfo};

/// How long an unauthenticated connection may take to send `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The party and its token's expiry (unix seconds): the connection ends with `bye`
/// `auth_expired` then.
async fn authenticate(
    state: &AppState,
    token: &str,
    ip: Option<String>,
) -> Result<(PartyInfo, i64), ApiError> {
    let kind = match jsonwebtoken::decode_header(token).ok().and_then(|h| h.typ) {
        Some(t) if t == TokenKind::Device.typ() => TokenKind::Device,
        Some(t) if t == TokenKind::Access.typ() => TokenKind::Access,
        _ => return Err(ApiError::invalid_token()),
    };
    let claims = state.tokens.verify(token, kind).map_err(|_| ApiError::invalid_token())?;
    let p = crate::auth::authenticate_claims(state, &claims, kind, ip).await?;
    Ok((PartyInfo { id: p.id, role: p.role, point_id: p.point_id, name: p.name }, claims.exp))
}

pub async fn handler(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let offered: Vec<String> = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
        .take(8)
        .collect();
    if !offered.iter().any(|p| p == SUBPROTOCOL) {
        return ApiError::bad_request(format!(
            "须使用子协议 {SUBPROTOCOL} (subprotocol {SUBPROTOCOL} required)"
        ))
        .into_response();
    }
    let ip = Some(addr.ip().to_string());
    let pre_auth = match offered.iter().find_map(|p| p.strip_prefix(BEARER_SUBPROTOCOL_PREFIX)) {
        Some(token) => match authenticate(&state, token, ip).await {
            Ok(p) => Some(p),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_FRAME_BYTES * 4)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| connection(state, Box::new(socket), pre_auth, addr))
}

fn text(msg: &ServerMsg) -> Message {
    Message::Text(outbox::encode(msg))
}

async fn bye(socket: &mut WebSocket, reason: ByeReason) {
    let _ = socket.send(text(&ServerMsg::Bye { reason })).await;
    let code = match reason {
        ByeReason::SlowConsumer => 1008,
        ByeReason::Shutdown => 1001,
        ByeReason::ProtocolError => 1002,
        _ => 4000,
    };
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: "bye".into() }))).await;
}

/// Waits for `hello` on a connection that did not authenticate in the handshake.
async fn hello(
    state: &AppState,
    socket: &mut WebSocket,
    pre: Option<(PartyInfo, i64)>,
    addr: SocketAddr,
) -> Option<(PartyInfo, i64)> {
    if pre.is_some() {
        return pre;
    }
    let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await.ok()??.ok()?;
    let Message::Text(t) = first else {
        bye(socket, ByeReason::ProtocolError).await;
        return None;
    };
    match ClientMsg::decode(t.as_bytes()) {
        Ok(ClientMsg::Hello { v, token: Some(token), .. }) if v == PROTOCOL_VERSION => {
            match authenticate(state, token.as_str(), Some(addr.ip().to_string())).await {
                Ok(p) => Some(p),
                Err(_) => {
                    let msg = ServerMsg::error(
                        ErrorCode::Unauthenticated,
                        "凭证无效 (invalid token)",
                        Some("hello"),
                    );
                    let _ = socket.send(text(&msg)).await;
                    bye(socket, ByeReason::AuthExpired).await;
                    None
                }
            }
        }
        Ok(ClientMsg::Hello { v, .. }) if v != PROTOCOL_VERSION => {
            let msg = ServerMsg::error(
                ErrorCode::UnsupportedVersion,
                format!("协议版本须为 {PROTOCOL_VERSION} (unsupported protocol version)"),
                Some("hello"),
            );
            let _ = socket.send(text(&msg)).await;
            bye(socket, ByeReason::ProtocolError).await;
            None
        }
        _ => {
            let msg = ServerMsg::error(ErrorCode::Unauthenticated, "请先发送 hello (send hello first)", None);
            let _ = socket.send(text(&msg)).await;
            bye(socket, ByeReason::ProtocolError).await;
            None
        }
    }
}

async fn connection(
    state: AppState,
    socket: Box<WebSocket>,
    pre: Option<(PartyInfo, i64)>,
    addr: SocketAddr,
) {
    let _counted = SocketCount::open(&state.sockets);
    // What a connection holds for as long as it lives is kept small (ARCHITECTURE.md, "Memory
    // per connection"): the stream comes in a box of its own (this future keeps a pointer, not
    // a dead copy of the stream after the split), the handshake's and the renewal's large
    // futures are boxed for the moment they run, one timer serves the idle timeout and the
    // token's expiry.
    let mut socket = socket;
    let Some((party, exp)) = Box::pin(hello(&state, &mut socket, pre, addr)).await else { return };
    let conn = Uuid::new_v4();
    let (out, OutboxRx { mut rx, close }) = outbox::outbox(conn, state.config.outbound_queue);
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    let party_id = party.id;
    let party_role = party.role;
    Box::pin(state.switchboard.send(Event::Connect { party, outbox: out.clone(), reply: reply_tx })).await;
    let Ok(welcome) = reply_rx.await else { return };
    if socket.send(text(&welcome)).await.is_err() {
        Box::pin(state.switchboard.send(Event::Disconnect { party: party_id, conn })).await;
        return;
    }
    let (mut sink, mut stream) = socket.split();
    // Writer: drains the bounded queue; on a close request sends `bye` and closes.
    let writer = tokio::spawn(async move {
        // Waited on across frames, not set up again for each one.
        let closed = close.closed();
        tokio::pin!(closed);
        let reason = loop {
            tokio::select! {
                biased;
                reason = &mut closed => break reason,
                frame = rx.recv() => {
                    let Some(frame) = frame else { break None };
                    if sink.send(Message::Text(frame)).await.is_err() {
                        break None;
                    }
                }
            }
        };
        if let Some(reason) = reason {
            let _ = sink.send(text(&ServerMsg::Bye { reason })).await;
            let _ = sink.send(Message::Close(Some(CloseFrame { code: 4000, reason: "bye".into() }))).await;
        }
    });
    let idle = Duration::from_secs(IDLE_TIMEOUT_SECS);
    let started = tokio::time::Instant::now();
    let mut expires = expiry_instant(exp);
    // The idle timer is re-armed lazily, when it fires, not for every frame.
    let mut last_read = started;
    let timer = tokio::time::sleep_until(expires.min(last_read + idle));
    tokio::pin!(timer);
    let mut limit = RateLimit::default();
    let closed = out.closed();
    tokio::pin!(closed);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = &mut closed => break,
            () = &mut timer => {
                let now = tokio::time::Instant::now();
                if now >= expires {
                    out.close(ByeReason::AuthExpired);
                    break;
                }
                if now >= last_read + idle {
                    out.close(ByeReason::ProtocolError);
                    break;
                }
                timer.as_mut().reset(expires.min(last_read + idle));
                continue;
            }
        };
        let msg = match next {
            None | Some(Err(_)) => break,
            Some(Ok(m)) => m,
        };
        last_read = tokio::time::Instant::now();
        let received = std::time::Instant::now();
        let bytes = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(_) => {
                let e = ServerMsg::error(ErrorCode::BadMessage, "须使用文本帧 (text frames only)", None);
                out.push(outbox::encode(&e), &state.switchboard.stats);
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let decoded = ClientMsg::decode(bytes);
        let signal = matches!(decoded, Ok(ClientMsg::Signal { .. } | ClientMsg::PeerSignal { .. }));
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match limit.admit(signal, now_ms) {
            Admit::Yes => {}
            Admit::Drop => continue,
            Admit::DropAndTell => {
                let e = ServerMsg::error(
                    ErrorCode::RateLimited,
                    "消息过于频繁，请稍后再试 (too many messages, slow down)",
                    decoded.as_ref().ok().map(ClientMsg::kind),
                );
                out.push(outbox::encode(&e), &state.switchboard.stats);
                continue;
            }
        }
        match decoded {
            Ok(ClientMsg::Ping { seq }) => {
                out.push(outbox::encode(&ServerMsg::Pong { seq }), &state.switchboard.stats);
            }
            Ok(ClientMsg::Renew { token }) => {
                let ip = Some(addr.ip().to_string());
                let answer = match Box::pin(authenticate(&state, token.as_str(), ip)).await {
                    Ok((p, exp)) if p.id == party_id && p.role == party_role => {
                        expires = expiry_instant(exp);
                        timer.as_mut().reset(expires.min(last_read + idle));
                        ServerMsg::Renewed { expires_at: exp }
                    }
                    _ => ServerMsg::error(
                        ErrorCode::Unauthenticated,
                        "新凭证无效或不属于此连接 (the token is invalid or not this connection's)",
                        Some("renew"),
                    ),
                };
                out.push(outbox::encode(&answer), &state.switchboard.stats);
            }
            Ok(msg) => {
                tracing::debug!(kind = msg.kind(), "client message");
                // Without waiting when the switchboard's queue has room (nearly always); the
                // waiting send is boxed, so its large `Event` is not part of this future.
                let ev = Event::Message { party: party_id, conn, msg, received };
                if let Err(ev) = state.switchboard.try_send(ev) {
                    Box::pin(state.switchboard.send(ev)).await;
                }
            }
            Err(e) => {
                out.push(outbox::encode(&ServerMsg::from_decode_error(&e)), &state.switchboard.stats);
            }
        }
    }
    Box::pin(state.switchboard.send(Event::Disconnect { party: party_id, conn })).await;
    out.finish();
    // A writer stuck on a client that stopped reading must not keep the task alive.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), writer).await.is_err() {
        abort.abort();
    }
}

/// When a connection whose token expires at `exp` (unix seconds) ends.
fn expiry_instant(exp: i64) -> tokio::time::Instant {
    let left = u64::try_from(exp - crate::db::now_ms() / 1000).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_secs(left)
}

/// Counts an open WebSocket for as long as it lives (the node's report to the cluster).
struct SocketCount(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl SocketCount {
    fn open(count: &std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for SocketCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Per-connection token buckets for incoming messages (sans-IO: the caller passes the time).
#[derive(Debug, Clone)]
pub struct RateLimit {
    general: Bucket,
    signal: Bucket,
    /// A refusal was already sent for the current burst.
    told: bool,
}

/// Whether a message may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Over the limit; the sender was already told.
    Drop,
    /// Over the limit; tell the sender (once per burst).
    DropAndTell,
}

#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    per_ms: f64,
    tokens: f64,
    at: u64,
}

impl Bucket {
    fn new(capacity: u32, per_sec: u32) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_ms: f64::from(per_sec) / 1000.0,
            tokens: f64::from(capacity),
            at: 0,
        }
    }

    fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.at);
        self.at = self.at.max(now_ms);
        // Precision loss is irrelevant at these magnitudes.
        #[allow(clippy::cast_precision_loss)]
        let refill = elapsed as f64 * self.per_ms;
        self.tokens = (self.tokens + refill).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Everything but signaling: a burst of 40, then 20 a second.
pub const GENERAL_BURST: u32 = 40;
pub const GENERAL_PER_SEC: u32 = 20;
/// Signaling: a burst of 500 (a peer's ICE candidates after a restart), then 200 a second.
pub const SIGNAL_BURST: u32 = 500;
pub const SIGNAL_PER_SEC: u32 = 200;

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            general: Bucket::new(GENERAL_BURST, GENERAL_PER_SEC),
            signal: Bucket::new(SIGNAL_BURST, SIGNAL_PER_SEC),
            told: false,
        }
    }
}

impl RateLimit {
    /// Admits one message (`signal`: a `signal` message) at `now_ms` since the connection began.
    pub fn admit(&mut self, signal: bool, now_ms: u64) -> Admit {
        let ok = if signal { self.signal.take(now_ms) } else { self.general.take(now_ms) };
        if ok {
            self.told = false;
            Admit::Yes
        } else if self.told {
            Admit::Drop
        } else {
            self.told = true;
            Admit::DropAndTell
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_refusals_are_told_once() {
        let mut l = RateLimit::default();
        for _ in 0..GENERAL_BURST {
            assert_eq!(l.admit(false, 0), Admit::Yes);
        }
        assert_eq!(l.admit(false, 0), Admit::DropAndTell);
        for _ in 0..1000 {
            assert_eq!(l.admit(false, 0), Admit::Drop, "told once per burst");
        }
        // Signaling has its own, larger bucket.
        for _ in 0..SIGNAL_BURST {
            assert_eq!(l.admit(true, 0), Admit::Yes);
        }
        assert_eq!(l.admit(true, 0), Admit::DropAndTell);
        // After a second, 20 more general messages pass, not 21.
        let passed = (0..100).filter(|_| l.admit(false, 1000) == Admit::Yes).count();
        assert_eq!(passed, GENERAL_PER_SEC as usize);
    }

    #[test]
    fn hostile_clocks_do_not_mint_tokens() {
        let mut l = RateLimit::default();
        for _ in 0..GENERAL_BURST {
            l.admit(false, 5000);
        }
        // Time going backwards (or u64::MAX) never refills beyond the capacity.
        assert_ne!(l.admit(false, 0), Admit::Yes);
        let passed = (0..10_000).filter(|_| l.admit(false, u64::MAX) == Admit::Yes).count();
        assert_eq!(passed, GENERAL_BURST as usize);
    }
}
