//! Cluster mode: one switchboard for the whole deployment, reached from every node over Redis.
//!
//! Every node is a **gateway** for its own WebSockets: the [`Switchboard`] handle that its
//! sockets and REST handlers use sends their [`Event`]s to the gateway task, which writes them to
//! the deployment's input stream (`<prefix>:sb:up`) and delivers what comes back on its own
//! stream (`<prefix>:sb:down:<node>`) to its connections. One node at a time is the
//! **authority** (it holds the lease, [`super::lease`]): it runs the switchboard task exactly as
//! a single node does, fed from the input stream; for each remote connection it makes an
//! ordinary [`outbox::Outbox`] whose frames a forwarder writes to that connection's node. The
//! core and the driver do not know they are remote.
//!
//! When the authority changes (it stopped, or lost its lease), the new one recovers today's
//! tickets from PostgreSQL as a restarted node does, and every gateway closes its connections
//! with `bye` (`shutdown`): the clients reconnect with backoff and resume, as after a restart.
//! Stream entries carry Redis's own ids; each stream has one reader, which reads each entry
//! once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde::{Deserialize, Serialize};
use shared::protocol::{ByeReason, ClientMsg, ServerMsg};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::core::availability::Opening;
use super::lease::{self, Fence};
use super::outbox::{self, DeliveryStats, Outbox, OutboxRx};
use super::{Event, PartyInfo, Settings, Switchboard};
use crate::cluster::Cluster;
use crate::db::Db;
use crate::pii::Pii;

/// Entries kept in a stream (approximately): a reader that fell this far behind has lost them.
const STREAM_MAX: usize = 100_000;
/// A blocking read waits at most this long before it loops (and notices a stop).
const BLOCK_MS: usize = 1_000;
/// Entries read at once.
const READ_COUNT: usize = 512;
/// A connection whose welcome does not come within this bound is closed (no authority yet,
/// or its input was lost in a hand-over); the client reconnects.
const WELCOME_WITHIN: Duration = Duration::from_secs(10);
/// A query (a session's live state, a snapshot) not answered within this bound gets `None`.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How often a gateway looks up who the authority is.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// A gateway's input to the authority.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Up {
    Connect { node: String, conn: Uuid, party: PartyInfo },
    Message { party: Uuid, conn: Uuid, msg: ClientMsg },
    Disconnect { party: Uuid, conn: Uuid },
    Kick { party: Uuid, reason: ByeReason },
    Notify { parties: Vec<Uuid>, msg: Box<ServerMsg> },
    Query { node: String, id: u64, query: Query },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "q", rename_all = "snake_case")]
enum Query {
    Session { session: Uuid },
    SessionsOf { party: Uuid },
    Availability { opening: Opening, lines: Vec<Uuid>, next_on_duty: HashMap<Uuid, i64> },
    Snapshot,
}

/// The authority's output to one gateway.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Down {
    /// An encoded server message for a connection.
    Frame {
        conn: Uuid,
        text: String,
    },
    /// Close the connection with `bye`.
    Close {
        conn: Uuid,
        reason: ByeReason,
    },
    /// The welcome, from the authority of `epoch`.
    Welcome {
        conn: Uuid,
        msg: Box<ServerMsg>,
        epoch: i64,
    },
    Answer {
        id: u64,
        body: serde_json::Value,
    },
}

fn up_key(c: &Cluster) -> String {
    c.key("sb:up")
}

fn down_key(c: &Cluster, node: &str) -> String {
    c.key(&format!("sb:down:{node}"))
}

fn authority_key(c: &Cluster) -> String {
    c.key("sb:authority")
}

/// Appends entries (each one JSON value in field `m`) to `key`, in order, in one round trip.
async fn xadd_all<T: Serialize>(c: &Cluster, key: &str, entries: &[T]) -> Result<(), redis::RedisError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for e in entries {
        let json = serde_json::to_string(e).unwrap_or_default();
        pipe.cmd("XADD").arg(key).arg("MAXLEN").arg("~").arg(STREAM_MAX).arg("*").arg("m").arg(json).ignore();
    }
    let mut conn = c.conn();
    pipe.query_async::<()>(&mut conn).await
}

/// The id of the newest entry of `key` (`0-0` for an empty stream): reading after it gives
/// what is added from now on.
async fn last_id(c: &Cluster, key: &str) -> Result<String, redis::RedisError> {
    let mut conn = c.conn();
    let reply: redis::streams::StreamRangeReply = conn.xrevrange_count(key, "+", "-", 1).await?;
    Ok(reply.ids.first().map(|e| e.id.clone()).unwrap_or_else(|| "0-0".into()))
}

/// Reads `key` after `from` for ever, sending each entry's `m` (as `wrap` makes it) to `to`,
/// in order: a full channel makes the reader wait (it falls behind in Redis, nothing is
/// dropped). Reconnects after errors. Returns when `to` is closed.
async fn read_stream<T: for<'de> Deserialize<'de>, U>(
    c: Cluster,
    key: String,
    mut from: String,
    to: mpsc::Sender<U>,
    wrap: fn(T) -> U,
) {
    let opts = StreamReadOptions::default().block(BLOCK_MS).count(READ_COUNT);
    loop {
        let mut conn = match c.dedicated(Duration::from_millis(BLOCK_MS as u64)).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::error!(error = %e, key, "cluster: cannot open a stream reader");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let read = tokio::time::timeout(
                Duration::from_millis(BLOCK_MS as u64) * 5,
                conn.xread_options::<_, _, Option<StreamReadReply>>(&[&key], &[&from], &opts),
            )
            .await;
            let reply = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, key, "cluster: stream read failed");
                    break;
                }
                Err(_) => {
                    tracing::error!(key, "cluster: stream read timed out");
                    break;
                }
            };
            for sk in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in sk.ids {
                    from = entry.id.clone();
                    let Some(json) = entry.get::<String>("m") else { continue };
                    match serde_json::from_str::<T>(&json) {
                        Ok(v) => {
                            if to.send(wrap(v)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, key, "cluster: unreadable stream entry skipped"),
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Inputs of the gateway task besides the local events.
enum FromDown {
    Down(Down),
    /// The authority of this epoch took over: connections welcomed by an earlier one are
    /// closed (their clients reconnect and resume).
    AuthorityChanged(i64),
}

/// Starts this node's part of the cluster's switchboard: its gateway and its candidacy for the
/// authority. Returns once some node is the authority (this one, having recovered, or another)
/// or after `WELCOME_WITHIN`.
pub async fn start(
    cluster: Cluster,
    db: Db,
    pii: Pii,
    settings: Settings,
    outbound_queue: usize,
) -> (Switchboard, Authority) {
    let stats = Arc::new(DeliveryStats::default());
    let (tx, rx) = mpsc::channel(4096);
    let sb = Switchboard { tx, stats: stats.clone() };
    let (down_tx, down_rx) = mpsc::channel(4096);
    let node = cluster.node_id().to_owned();
    // Read our stream from what is added from now on.
    let from = last_id(&cluster, &down_key(&cluster, &node)).await.unwrap_or_else(|_| "$".into());
    let reader = tokio::spawn(read_stream(
        cluster.clone(),
        down_key(&cluster, &node),
        from,
        down_tx.clone(),
        FromDown::Down,
    ));
    let gateway = tokio::spawn(gateway(cluster.clone(), rx, down_rx, stats));
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = settings.metrics.clone();
    let candidate = Candidate { cluster: cluster.clone(), db, pii, settings, outbound_queue, held: None };
    let (first_tx, first_rx) = oneshot::channel();
    let election = tokio::spawn(candidate.run(stop_rx, first_tx));
    let watcher = tokio::spawn(watch_authority(cluster.clone(), down_tx, metrics));
    let _ = tokio::time::timeout(WELCOME_WITHIN, first_rx).await;
    (
        sb,
        Authority {
            stop: stop_tx,
            tasks: Arc::new(std::sync::Mutex::new(vec![reader, gateway, election, watcher])),
        },
    )
}

/// This node's part in the cluster's switchboard, for stopping it.
#[derive(Clone)]
pub struct Authority {
    stop: watch::Sender<bool>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority")
    }
}

impl Authority {
    /// A clean stop: if this node is the authority its switchboard stops and the lease is
    /// released at once, so another node takes over without waiting for it to expire.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        // The candidate releases the lease and ends; the other tasks are aborted.
        let tasks =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut tasks = tasks.into_iter();
        let reader = tasks.next();
        let gateway = tasks.next();
        let election = tasks.next();
        let watcher = tasks.next();
        if let Some(e) = election {
            let _ = tokio::time::timeout(Duration::from_secs(5), e).await;
        }
        for t in [reader, gateway, watcher].into_iter().flatten() {
            t.abort();
        }
    }
}

/// Looks up the authority every [`WATCH_EVERY`]; tells the gateway when it changes.
async fn watch_authority(
    cluster: Cluster,
    down: mpsc::Sender<FromDown>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut seen: Option<String> = None;
    let mut every = tokio::time::interval(WATCH_EVERY);
    loop {
        every.tick().await;
        let mut conn = cluster.conn();
        let now: Option<String> = match conn.get(authority_key(&cluster)).await {
            Ok(v) => v,
            Err(_) => continue,
        };
        if let Some(now) = now {
            let epoch = now.rsplit(' ').next().and_then(|e| e.parse::<u64>().ok());
            metrics.set_authority_epoch(epoch);
            if seen.as_ref().is_some_and(|s| *s != now) {
                tracing::warn!(authority = now, "cluster: the switchboard authority changed");
                let epoch = now.rsplit(' ').next().and_then(|e| e.parse().ok()).unwrap_or(i64::MAX);
                if down.send(FromDown::AuthorityChanged(epoch)).await.is_err() {
                    return;
                }
            }
            seen = Some(now);
        }
    }
}

/// The gateway: this node's connections and questions, to and from the authority.
async fn gateway(
    cluster: Cluster,
    mut rx: mpsc::Receiver<Event>,
    mut down: mpsc::Receiver<FromDown>,
    stats: Arc<DeliveryStats>,
) {
    let node = cluster.node_id().to_owned();
    let up = up_key(&cluster);
    let mut conns: HashMap<Uuid, Outbox> = HashMap::new();
    let mut pending: HashMap<u64, oneshot::Sender<serde_json::Value>> = HashMap::new();
    // Connections waiting for their welcome: the reply, until when, and the party.
    let mut welcomes: HashMap<Uuid, (oneshot::Sender<ServerMsg>, tokio::time::Instant, PartyInfo)> =
        HashMap::new();
    // The epoch of the authority that welcomed each connection.
    let mut welcomed_by: HashMap<Uuid, i64> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(first) = ev else { return };
                let mut batch = Vec::new();
                let mut next = Some(first);
                while let Some(ev) = next.take() {
                    match ev {
                        Event::Connect { party, outbox, reply } => {
                            let conn = outbox.conn;
                            conns.insert(conn, outbox);
                            let by = tokio::time::Instant::now() + WELCOME_WITHIN;
                            welcomes.insert(conn, (reply, by, party.clone()));
                            batch.push(Up::Connect { node: node.clone(), conn, party });
                        }
                        Event::Message { party, conn, msg, .. } => batch.push(Up::Message { party, conn, msg }),
                        Event::Disconnect { party, conn } => {
                            conns.remove(&conn);
                            welcomes.remove(&conn);
                            welcomed_by.remove(&conn);
                            batch.push(Up::Disconnect { party, conn });
                        }
                        Event::Kick { party, reason } => batch.push(Up::Kick { party, reason }),
                        Event::Notify { parties, msg } => batch.push(Up::Notify { parties, msg }),
                        Event::Session { session, reply } => {
                            next_id += 1;
                            pending.insert(next_id, answer_to(reply, |v| {
                                serde_json::from_value::<Option<super::SessionInfo>>(v).ok()
                            }));
                            batch.push(Up::Query { node: node.clone(), id: next_id, query: Query::Session { session } });
                        }
                        Event::SessionsOf { party, reply } => {
                            next_id += 1;
                            pending.insert(next_id, answer_to(reply, |v| {
                                serde_json::from_value::<Vec<super::SessionInfo>>(v).ok()
                            }));
                            batch.push(Up::Query { node: node.clone(), id: next_id, query: Query::SessionsOf { party } });
                        }
                        Event::Availability { opening, lines, next_on_duty, reply } => {
                            next_id += 1;
                            pending.insert(next_id, answer_to(reply, |v| serde_json::from_value(v).ok()));
                            let query = Query::Availability { opening, lines, next_on_duty };
                            batch.push(Up::Query { node: node.clone(), id: next_id, query });
                        }
                        Event::Snapshot { reply } => {
                            next_id += 1;
                            pending.insert(next_id, answer_to(reply, |v| serde_json::from_value(v).ok()));
                            batch.push(Up::Query { node: node.clone(), id: next_id, query: Query::Snapshot });
                        }
                        Event::Shutdown => {
                            // This node drains: its clients reconnect elsewhere.
                            for (_, out) in conns.drain() {
                                out.close(ByeReason::Shutdown);
                            }
                            welcomed_by.clear();
                        }
                    }
                    if batch.len() < READ_COUNT {
                        next = rx.try_recv().ok();
                    }
                }
                if let Err(e) = xadd_all(&cluster, &up, &batch).await {
                    tracing::error!(error = %e, lost = batch.len(), "cluster: inputs not sent to the switchboard");
                }
            }
            msg = down.recv() => {
                let Some(msg) = msg else { return };
                match msg {
                    FromDown::Down(Down::Frame { conn, text }) => {
                        if let Some(out) = conns.get(&conn)
                            && out.push(text.into(), &stats)
                        {
                            stats.delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    FromDown::Down(Down::Close { conn, reason }) => {
                        welcomed_by.remove(&conn);
                        if let Some(out) = conns.remove(&conn) {
                            out.close(reason);
                        }
                    }
                    FromDown::Down(Down::Welcome { conn, msg, epoch }) => {
                        if let Some((reply, _, _)) = welcomes.remove(&conn) {
                            welcomed_by.insert(conn, epoch);
                            let _ = reply.send(*msg);
                        }
                    }
                    FromDown::Down(Down::Answer { id, body }) => {
                        if let Some(tx) = pending.remove(&id) {
                            let _ = tx.send(body);
                        }
                    }
                    FromDown::AuthorityChanged(epoch) => {
                        // The new authority knows none of the connections an earlier one
                        // welcomed: they reconnect and resume, as after a restart. Those it
                        // welcomed itself stay; those still waiting get their welcome or are
                        // closed when it does not come.
                        let stale: Vec<Uuid> = conns
                            .keys()
                            .filter(|c| welcomed_by.get(c).is_some_and(|e| *e < epoch))
                            .copied()
                            .collect();
                        for c in stale {
                            welcomed_by.remove(&c);
                            if let Some(out) = conns.remove(&c) {
                                out.close(ByeReason::Shutdown);
                            }
                        }
                        // A connection still waiting may have asked the previous authority:
                        // ask the new one (it ignores a connection it already has).
                        let again: Vec<Up> = welcomes
                            .iter()
                            .map(|(conn, (_, _, party))| Up::Connect {
                                node: node.clone(),
                                conn: *conn,
                                party: party.clone(),
                            })
                            .collect();
                        if let Err(e) = xadd_all(&cluster, &up, &again).await {
                            tracing::error!(error = %e, "cluster: inputs not sent to the switchboard");
                        }
                    }
                }
            }
            _ = sweep.tick() => {
                let now = tokio::time::Instant::now();
                // Welcomes that never came: the socket closes and the client tries again; the
                // authority, if it did see the connection, forgets it.
                let late: Vec<(Uuid, Uuid)> =
                    welcomes.iter().filter(|(_, (_, by, _))| *by <= now).map(|(c, (_, _, p))| (*c, p.id)).collect();
                let mut gone = Vec::new();
                for (conn, party) in late {
                    welcomes.remove(&conn);
                    conns.remove(&conn);
                    gone.push(Up::Disconnect { party, conn });
                }
                if let Err(e) = xadd_all(&cluster, &up, &gone).await {
                    tracing::error!(error = %e, "cluster: inputs not sent to the switchboard");
                }
                pending.retain(|_, tx| !tx.is_closed());
            }
        }
    }
}

/// A oneshot for a JSON answer that converts it for `reply` (or drops `reply` after
/// [`ANSWER_WITHIN`] or on an answer it cannot read, which the caller takes as no answer).
fn answer_to<T: Send + 'static>(
    reply: oneshot::Sender<T>,
    convert: impl FnOnce(serde_json::Value) -> Option<T> + Send + 'static,
) -> oneshot::Sender<serde_json::Value> {
    let (tx, rx) = oneshot::channel::<serde_json::Value>();
    tokio::spawn(async move {
        if let Ok(Ok(v)) = tokio::time::timeout(ANSWER_WITHIN, rx).await
            && let Some(answer) = convert(v)
        {
            let _ = reply.send(answer);
        }
    });
    tx
}

/// A node's candidacy: takes the lease when it is free, runs the switchboard while it holds
/// it, renews it, and stops the switchboard when it loses it.
struct Candidate {
    cluster: Cluster,
    db: Db,
    pii: Pii,
    settings: Settings,
    outbound_queue: usize,
    held: Option<Held>,
}

struct Held {
    fence: Fence,
    switchboard: Switchboard,
    reader: tokio::task::JoinHandle<()>,
    /// When the lease was last renewed (tokio clock).
    renewed: tokio::time::Instant,
}

impl Candidate {
    async fn run(mut self, mut stop: watch::Receiver<bool>, first: oneshot::Sender<()>) {
        let mut first = Some(first);
        let mut every = tokio::time::interval(lease::RENEW_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => {
                    if let Some(h) = self.held.take() {
                        Self::step_down(h, true, &self.db).await;
                    }
                    return;
                }
            }
            self.round().await;
            if first.is_some() {
                let known = self.held.is_some() || matches!(lease::current(&self.db).await, Ok(Some(_)));
                if known && let Some(f) = first.take() {
                    let _ = f.send(());
                }
            }
        }
    }

    async fn round(&mut self) {
        match self.held.take() {
            None => match lease::try_acquire(&self.db, self.cluster.node_id()).await {
                Ok(Some(fence)) => self.take_over(fence).await,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cluster: cannot ask for the switchboard lease"),
            },
            Some(mut h) => {
                if h.switchboard.tx.is_closed() {
                    tracing::error!("cluster: the switchboard stopped (fenced); stepping down");
                    Self::step_down(h, false, &self.db).await;
                    return;
                }
                match lease::renew(&self.db, &h.fence).await {
                    Ok(true) => {
                        h.renewed = tokio::time::Instant::now();
                        self.held = Some(h);
                    }
                    Ok(false) => {
                        tracing::error!(
                            epoch = h.fence.epoch,
                            "cluster: the switchboard lease was taken over"
                        );
                        Self::step_down(h, false, &self.db).await;
                    }
                    Err(e) => {
                        let left = Duration::from_millis(u64::try_from(lease::LEASE_MS).unwrap_or(5000))
                            .saturating_sub(h.renewed.elapsed());
                        if left < lease::RENEW_EVERY * 2 {
                            // It may expire before we could renew it: stop writing now.
                            tracing::error!(error = %e, "cluster: cannot renew the switchboard lease; stepping down");
                            Self::step_down(h, false, &self.db).await;
                        } else {
                            tracing::warn!(error = %e, "cluster: lease renewal failed; retrying");
                            self.held = Some(h);
                        }
                    }
                }
            }
        }
    }

    async fn take_over(&mut self, fence: Fence) {
        let node = self.cluster.node_id().to_owned();
        tracing::info!(node, epoch = fence.epoch, "cluster: this node runs the switchboard");
        let up = up_key(&self.cluster);
        // Inputs sent from now on are ours; earlier ones were the previous authority's.
        let from = match last_id(&self.cluster, &up).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cluster: cannot read the input stream; giving the lease back");
                let _ = lease::release(&self.db, &fence).await;
                return;
            }
        };
        let mut settings = self.settings.clone();
        settings.fence = Some(fence.clone());
        let switchboard = Switchboard::start(self.db.clone(), self.pii.clone(), settings).await;
        let reader = tokio::spawn(serve_inputs(
            self.cluster.clone(),
            switchboard.clone(),
            from,
            self.outbound_queue,
            fence.epoch,
        ));
        let mut conn = self.cluster.conn();
        let who = format!("{node} {}", fence.epoch);
        if let Err(e) = conn.set::<_, _, ()>(authority_key(&self.cluster), who).await {
            tracing::error!(error = %e, "cluster: cannot announce the new authority");
        }
        self.held = Some(Held { fence, switchboard, reader, renewed: tokio::time::Instant::now() });
    }

    async fn step_down(h: Held, release: bool, db: &Db) {
        h.reader.abort();
        // Closes the proxies with `bye` (shutdown): their clients reconnect and resume.
        h.switchboard.send(Event::Shutdown).await;
        h.switchboard.tx.closed().await;
        if release && let Err(e) = lease::release(db, &h.fence).await {
            tracing::warn!(error = %e, "cluster: could not release the switchboard lease");
        }
    }
}

/// The authority's reader: turns the input stream into switchboard events.
async fn serve_inputs(cluster: Cluster, sb: Switchboard, from: String, outbound_queue: usize, epoch: i64) {
    let (tx, mut rx) = mpsc::channel::<Up>(4096);
    let reader = tokio::spawn(read_stream(cluster.clone(), up_key(&cluster), from, tx, |u: Up| u));
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _reader = AbortOnDrop(reader);
    // Connections this authority has: a gateway asks again for one still waiting for its
    // welcome when the authority changes, and the second ask is ignored.
    let mut known: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    while let Some(up) = rx.recv().await {
        match up {
            Up::Connect { conn, .. } if known.contains(&conn) => {}
            Up::Connect { node, conn, party } => {
                known.insert(conn);
                let (out, orx) = outbox::outbox(conn, outbound_queue);
                tokio::spawn(forward(cluster.clone(), node.clone(), conn, orx));
                let (reply, welcome) = oneshot::channel();
                let c = cluster.clone();
                tokio::spawn(async move {
                    if let Ok(msg) = welcome.await {
                        let d = Down::Welcome { conn, msg: Box::new(msg), epoch };
                        if let Err(e) = xadd_all(&c, &down_key(&c, &node), &[d]).await {
                            tracing::error!(error = %e, "cluster: welcome not sent");
                        }
                    }
                });
                sb.send(Event::Connect { party, outbox: out, reply }).await;
            }
            Up::Message { party, conn, msg } => {
                sb.send(Event::Message { party, conn, msg, received: std::time::Instant::now() }).await;
            }
            Up::Disconnect { party, conn } => {
                known.remove(&conn);
                sb.send(Event::Disconnect { party, conn }).await;
            }
            Up::Kick { party, reason } => sb.send(Event::Kick { party, reason }).await,
            Up::Notify { parties, msg } => sb.send(Event::Notify { parties, msg }).await,
            Up::Query { node, id, query } => {
                let sb = sb.clone();
                let c = cluster.clone();
                tokio::spawn(async move {
                    let body = match query {
                        Query::Session { session } => serde_json::to_value(sb.session(session).await),
                        Query::SessionsOf { party } => serde_json::to_value(sb.sessions_of(party).await),
                        Query::Availability { opening, lines, next_on_duty } => {
                            match sb.availability(opening, lines, next_on_duty).await {
                                Some(a) => serde_json::to_value(a),
                                None => return,
                            }
                        }
                        Query::Snapshot => match sb.snapshot().await {
                            Some(s) => serde_json::to_value(s),
                            None => return,
                        },
                    };
                    let Ok(body) = body else { return };
                    if let Err(e) = xadd_all(&c, &down_key(&c, &node), &[Down::Answer { id, body }]).await {
                        tracing::error!(error = %e, "cluster: answer not sent");
                    }
                });
            }
        }
    }
}

/// Carries one remote connection's frames and its close to its node, in order.
async fn forward(cluster: Cluster, node: String, conn: Uuid, orx: OutboxRx) {
    let OutboxRx { mut rx, close } = orx;
    let key = down_key(&cluster, &node);
    loop {
        tokio::select! {
            biased;
            frame = rx.recv() => {
                let Some(frame) = frame else { return };
                let mut batch = vec![Down::Frame { conn, text: frame.as_str().to_owned() }];
                while batch.len() < READ_COUNT {
                    match rx.try_recv() {
                        Ok(f) => batch.push(Down::Frame { conn, text: f.as_str().to_owned() }),
                        Err(_) => break,
                    }
                }
                if let Err(e) = xadd_all(&cluster, &key, &batch).await {
                    tracing::error!(error = %e, "cluster: frames not sent to their node");
                }
            }
            reason = close.closed() => {
                if let Some(reason) = reason {
                    // What was queued before the close goes first.
                    let mut batch = Vec::new();
                    while let Ok(f) = rx.try_recv() {
                        batch.push(Down::Frame { conn, text: f.as_str().to_owned() });
                    }
                    batch.push(Down::Close { conn, reason });
                    let _ = xadd_all(&cluster, &key, &batch).await;
                }
                return;
            }
        }
    }
}
