//! Delivery of server messages to connected parties, behind the [`Delivery`] trait so that a
//! later multi-node deployment can route through Redis instead of in-process channels.
//!
//! Each connection has a bounded queue. A consumer that cannot keep up is not buffered without
//! bound: when its queue is full it is told `bye` (slow_consumer) and closed, while everyone
//! else carries on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use shared::protocol::{ByeReason, ServerMsg};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// The sending half of one connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub conn: Uuid,
    tx: mpsc::Sender<Utf8Bytes>,
    close: Arc<Close>,
}

/// The receiving half, owned by the task that writes the connection's socket (or, in cluster
/// mode, forwards its frames to the connection's node).
#[derive(Debug)]
pub struct OutboxRx {
    pub rx: mpsc::Receiver<Utf8Bytes>,
    pub close: CloseRx,
}

/// Where the receiving side learns that its connection is to close.
#[derive(Debug)]
pub struct CloseRx(Arc<Close>);

/// The close request of one connection: a reason and the tasks to wake (the connection's
/// reader and writer). Lighter than a `watch` channel, whose eight `Notify`s cost ~350 bytes
/// per connection.
#[derive(Debug, Default)]
struct Close {
    state: Mutex<Closing>,
    notify: Notify,
}

#[derive(Debug, Default, Clone, Copy)]
enum Closing {
    #[default]
    Open,
    /// Finish without `bye` (the client went away by itself).
    Finish,
    Bye(ByeReason),
}

pub fn outbox(conn: Uuid, capacity: usize) -> (Outbox, OutboxRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let close = Arc::new(Close::default());
    (Outbox { conn, tx, close: close.clone() }, OutboxRx { rx, close: CloseRx(close) })
}

/// Serialises a message once for any number of recipients.
pub fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.encode())
}

impl Outbox {
    /// Queues a frame; `false` when the connection is gone or too slow (it is then closed).
    pub fn push(&self, frame: Utf8Bytes, stats: &DeliveryStats) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                self.close(ByeReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Lets the writer finish without a `bye` (the client went away by itself).
    pub fn finish(&self) {
        // Wake the writer, but never overwrite a pending `bye` reason.
        let mut state = self.close.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(*state, Closing::Open) {
            *state = Closing::Finish;
        }
        drop(state);
        self.close.notify.notify_waiters();
    }

    /// Asks the writer to send `bye` and close.
    pub fn close(&self, reason: ByeReason) {
        *self.close.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Closing::Bye(reason);
        self.close.notify.notify_waiters();
    }

    /// Resolves when the connection was asked to close (with a reason) or its writer has gone.
    pub async fn closed(&self) {
        let bye = async {
            if self.close.wait().await.is_none() {
                // Finishing is the reader's own doing: not a request to it.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = bye => {}
            () = self.tx.closed() => {}
        }
    }
}

impl Close {
    fn get(&self) -> Closing {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a close request: `Some(reason)` to say `bye` first, `None` to just finish.
    /// Cancel-safe, and a request made before the wait began is seen.
    async fn wait(&self) -> Option<ByeReason> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the state is read: a request in between still wakes us.
            notified.as_mut().enable();
            match self.get() {
                Closing::Open => {}
                Closing::Finish => return None,
                Closing::Bye(reason) => return Some(reason),
            }
            notified.await;
        }
    }
}

impl CloseRx {
    /// Resolves when the connection was asked to close: `Some(reason)` to say `bye` first,
    /// `None` to just finish (the client went away by itself).
    pub async fn closed(&self) -> Option<ByeReason> {
        self.0.wait().await
    }
}

/// Counters for diagnosis and tests.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub slow_consumers: AtomicU64,
    pub delivered: AtomicU64,
}

/// Where the switchboard sends messages: to a party (user or terminal ID) wherever it is
/// connected.
pub trait Delivery: Send + Sync {
    /// Registers the party's current connection, replacing (and closing) an older one.
    fn attach(&mut self, party: Uuid, outbox: Outbox);
    /// Forgets the party's connection if it is still `conn`; `true` if it was.
    fn detach(&mut self, party: Uuid, conn: Uuid) -> bool;
    fn is_connected(&self, party: Uuid) -> bool;
    /// Sends to one party; `false` if it is not connected (or was too slow and is cut off).
    fn send(&mut self, party: Uuid, msg: &ServerMsg) -> bool;
    /// Sends one encoded frame to many parties.
    fn send_many(&mut self, parties: &mut dyn Iterator<Item = Uuid>, msg: &ServerMsg);
    /// Closes the party's connection with a reason.
    fn close(&mut self, party: Uuid, reason: ByeReason);
    fn close_all(&mut self, reason: ByeReason);
}

/// In-process delivery: a map from party to its connection's outbox.
#[derive(Debug, Default)]
pub struct LocalDelivery {
    conns: HashMap<Uuid, Outbox>,
    pub stats: Arc<DeliveryStats>,
}

impl LocalDelivery {
    pub fn new(stats: Arc<DeliveryStats>) -> Self {
        Self { conns: HashMap::new(), stats }
    }

    fn push(&mut self, party: Uuid, frame: Utf8Bytes) -> bool {
        let Some(out) = self.conns.get(&party) else { return false };
        let ok = out.push(frame, &self.stats);
        if ok {
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.conns.remove(&party);
        }
        ok
    }
}

impl Delivery for LocalDelivery {
    fn attach(&mut self, party: Uuid, outbox: Outbox) {
        if let Some(old) = self.conns.insert(party, outbox)
            && let Some(new) = self.conns.get(&party)
            && old.conn != new.conn
        {
            old.close(ByeReason::Replaced);
        }
    }

    fn detach(&mut self, party: Uuid, conn: Uuid) -> bool {
        if self.conns.get(&party).is_some_and(|o| o.conn == conn) {
            self.conns.remove(&party);
            true
        } else {
            false
        }
    }

    fn is_connected(&self, party: Uuid) -> bool {
        self.conns.contains_key(&party)
    }

    fn send(&mut self, party: Uuid, msg: &ServerMsg) -> bool {
        if !self.conns.contains_key(&party) {
            return false;
        }
        self.push(party, encode(msg))
    }

    fn send_many(&mut self, parties: &mut dyn Iterator<Item = Uuid>, msg: &ServerMsg) {
        let frame = encode(msg);
        for p in parties {
            self.push(p, frame.clone());
        }
    }

    fn close(&mut self, party: Uuid, reason: ByeReason) {
        if let Some(out) = self.conns.remove(&party) {
            out.close(reason);
        }
    }

    fn close_all(&mut self, reason: ByeReason) {
        for (_, out) in self.conns.drain() {
            out.close(reason);
        }
    }
}
