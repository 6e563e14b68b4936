//! Reading the Bangban protocol on a bench client.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::ServerMsg;
use tokio_tungstenite::tungstenite::Message;

use crate::util::{PATIENCE, Ws};

pub async fn send_text(ws: &mut Ws, text: String) -> Result<()> {
    ws.send(Message::Text(text.into())).await.context("send")
}

/// Reads until `f` picks a message (skipping others) or `PATIENCE` passes. An `error` or
/// `bye` from the server is an error.
pub async fn recv_until<T>(ws: &mut Ws, what: &str, mut f: impl FnMut(&ServerMsg) -> Option<T>) -> Result<T> {
    recv_until_within(ws, what, PATIENCE, &mut f).await
}

pub async fn recv_until_within<T>(
    ws: &mut Ws,
    what: &str,
    patience: Duration,
    f: &mut impl FnMut(&ServerMsg) -> Option<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .with_context(|| format!("no {what} within {patience:?}"))?;
        let Some(frame) = frame else { bail!("socket closed while waiting for {what}") };
        let Message::Text(t) = frame.with_context(|| format!("socket error while waiting for {what}"))?
        else {
            continue;
        };
        let Ok(msg) = ServerMsg::decode(t.as_bytes()) else { continue };
        match &msg {
            ServerMsg::Error { code, message, request } => {
                bail!("server error while waiting for {what}: {code:?} {message} ({request:?})")
            }
            ServerMsg::Bye { reason } => bail!("bye {reason:?} while waiting for {what}"),
            _ => {}
        }
        if let Some(v) = f(&msg) {
            return Ok(v);
        }
    }
}
