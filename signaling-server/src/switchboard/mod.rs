//! The switchboard: the one owner of live tickets, call sessions and connected parties.
//!
//! - [`core`]: the decisions, a sans-IO state machine (`handle(input, now) -> outputs`) split
//!   by concern (parties, tickets, sessions, board);
//! - [`driver`]: the task that carries the outputs out: looks up what a decision needs before
//!   the input enters the core, commits each tick's writes in one transaction (group commit)
//!   before any message of that tick is sent, delivers, and schedules the next tick;
//! - [`store`]: SQL (the [`store::Write`]s and the driver's lookups);
//! - [`outbox`]: per-connection bounded queues behind the `Delivery` trait;
//! - [`wire`]: mappings between the wire vocabulary, the dispatcher's types and stored strings;
//! - [`lease`], [`remote`]: cluster mode — one authority at a time runs this task under a fenced
//!   lease in PostgreSQL, every node's sockets reach it over Redis streams.
//!
//! WebSocket connections and REST handlers send it [`Event`]s; being the only owner of this
//! state it needs no locks, and the order of events is the order of effects.

pub mod core;
pub mod driver;
pub mod lease;
pub mod outbox;
pub mod remote;
pub mod store;
pub mod wire;

use std::sync::Arc;

use shared::protocol::{ByeReason, ClientMsg, ServerMsg};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::db::Db;
use crate::ice::IceConfig;
use crate::pii::Pii;
use outbox::{DeliveryStats, Outbox};

pub use self::core::{PartyInfo, SessionInfo};

/// Inputs of the switchboard task.
#[derive(Debug)]
pub enum Event {
    Connect {
        party: PartyInfo,
        outbox: Outbox,
        reply: oneshot::Sender<ServerMsg>,
    },
    Message {
        party: Uuid,
        conn: Uuid,
        msg: ClientMsg,
        /// When the frame was read off the socket (relay latency).
        received: std::time::Instant,
    },
    Disconnect {
        party: Uuid,
        conn: Uuid,
    },
    /// Revocation or account disabled: close at once, no grace.
    Kick {
        party: Uuid,
        reason: ByeReason,
    },
    /// Push a message to parties (e.g. material or print-job changes from the REST API).
    Notify {
        parties: Vec<Uuid>,
        msg: Box<ServerMsg>,
    },
    /// Live state of a session, as the switchboard holds it (for REST handlers).
    Session {
        session: Uuid,
        reply: oneshot::Sender<Option<SessionInfo>>,
    },
    /// The sessions a party takes part in.
    SessionsOf {
        party: Uuid,
        reply: oneshot::Sender<Vec<SessionInfo>>,
    },
    /// What a terminal shows before a ticket is taken: the point's opening (looked up by the
    /// caller) with who serves `lines` and their waits.
    Availability {
        opening: self::core::availability::Opening,
        lines: Vec<Uuid>,
        /// When each rostered line next has someone on duty.
        next_on_duty: std::collections::HashMap<Uuid, i64>,
        reply: oneshot::Sender<shared::api::TerminalAvailability>,
    },
    /// What the switchboard holds now, for `/metrics`; answering at all is `/readyz`'s check.
    Snapshot {
        reply: oneshot::Sender<crate::metrics::SwitchboardSnapshot>,
    },
    Shutdown,
}

/// Settings of the switchboard.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ring_timeout_ms: i64,
    /// A center's tickets wait this long for its own operators (0 = no center preference).
    pub overflow_after_ms: i64,
    pub resume_window_ms: i64,
    pub ice: IceConfig,
    /// Verifies the staff access tokens that come with `take_ticket`.
    pub tokens: crate::auth::tokens::TokenService,
    /// Open tickets one terminal may hold at once (1 by default).
    pub max_open_tickets_per_terminal: usize,
    /// Where the driver records decision, relay and turn times and call setup reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Cluster mode: the authority's lease; every write checks it (`None`: single node).
    pub fence: Option<lease::Fence>,
}

/// Cheap-to-clone handle to the switchboard task.
#[derive(Debug, Clone)]
pub struct Switchboard {
    tx: mpsc::Sender<Event>,
    pub stats: Arc<DeliveryStats>,
}

impl Switchboard {
    /// Starts the switchboard task and returns once it has recovered what a restart left
    /// (interrupted calls closed, today's tickets waiting again): nothing is served before.
    pub async fn start(db: Db, pii: Pii, settings: Settings) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let stats = Arc::new(DeliveryStats::default());
        let driver = driver::Driver::new(db, pii, settings, stats.clone());
        let (ready, recovered) = oneshot::channel();
        tokio::spawn(driver.run(rx, ready));
        let _ = recovered.await;
        Self { tx, stats }
    }

    pub async fn send(&self, ev: Event) {
        if self.tx.send(ev).await.is_err() {
            tracing::warn!("switchboard is gone");
        }
    }

    /// Queues an event without waiting; gives it back when the queue is full.
    pub fn try_send(&self, ev: Event) -> Result<(), Event> {
        match self.tx.try_send(ev) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(ev)) => Err(ev),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!("switchboard is gone");
                Ok(())
            }
        }
    }

    /// Sends `msg` to each of `parties` that is connected.
    pub async fn notify(&self, parties: Vec<Uuid>, msg: ServerMsg) {
        self.send(Event::Notify { parties, msg: Box::new(msg) }).await;
    }

    /// Closes a party's connection at once (revoked terminal, disabled account).
    pub async fn kick(&self, party: Uuid, reason: ByeReason) {
        self.send(Event::Kick { party, reason }).await;
    }

    /// Whether a session is live, who its parties are and whether they are connected: the
    /// switchboard's answer (`None`: not a session it holds).
    pub async fn session(&self, session: Uuid) -> Option<SessionInfo> {
        let (reply, rx) = oneshot::channel();
        self.send(Event::Session { session, reply }).await;
        rx.await.ok().flatten()
    }

    /// The sessions the switchboard holds in which `party` takes part.
    pub async fn sessions_of(&self, party: Uuid) -> Vec<SessionInfo> {
        let (reply, rx) = oneshot::channel();
        self.send(Event::SessionsOf { party, reply }).await;
        rx.await.unwrap_or_default()
    }
}

impl Switchboard {
    /// Connections by role, waiting tickets per line and live calls; `None` when the task did
    /// not answer (gone). Callers bound the wait.
    pub async fn snapshot(&self) -> Option<crate::metrics::SwitchboardSnapshot> {
        let (reply, rx) = oneshot::channel();
        self.send(Event::Snapshot { reply }).await;
        rx.await.ok()
    }

    /// The point's `opening` with who serves `lines` now, how long a new ticket would wait and,
    /// for a line nobody serves, when its roster next brings someone on.
    pub async fn availability(
        &self,
        opening: self::core::availability::Opening,
        lines: Vec<Uuid>,
        next_on_duty: std::collections::HashMap<Uuid, i64>,
    ) -> Option<shared::api::TerminalAvailability> {
        let (reply, rx) = oneshot::channel();
        self.send(Event::Availability { opening, lines, next_on_duty, reply }).await;
        rx.await.ok()
    }
}

/// `YYYY-MM-DD` of `ms` in China Standard Time (UTC+8).
pub fn service_day(ms: i64) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| t.to_offset(offset).date().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_day_is_china_standard_time() {
        // 2026-11-22 16:30 UTC is 2026-11-23 00:30 in Shanghai.
        assert_eq!(service_day(1_795_365_000_000), "2026-11-23");
        assert_eq!(service_day(1_795_300_000_000), "2026-11-22");
    }
}
