//! The switchboard: one task that owns the queue ([`crate::dispatch::Dispatcher`]), the live
//! tickets and call sessions, and the connected parties. WebSocket connections feed it
//! [`Event`]s; it persists every state change and sends [`ServerMsg`]s through a
//! [`Delivery`]. Being the only owner of this state, it needs no locks, and the order of
//! events is the order of effects.
//!
//! Submodules: [`outbox`] (per-connection bounded queues and the `Delivery` trait), [`store`]
//! (SQL for tickets, sessions, events, ratings).

pub mod outbox;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shared::protocol::{
    ByeReason, ClientMsg, ErrorCode, OperatorBoardEntry, OperatorStateView, Party, Priority, RatingLevel,
    RingCancelReason, Role, ServerMsg, SessionEndReason, SessionView, Signal, TicketCloseReason, TicketView,
    TransferContext, TransferTarget,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::db::{Db, now_ms};
use crate::dispatch::{self, Action, Dispatcher, LineId, Millis, OperatorId, TicketId, WithdrawReason};
use crate::ice::IceConfig;
use crate::pii::Pii;
use outbox::{Delivery, DeliveryStats, LocalDelivery, Outbox};

/// The board goes out at most this often (ms).
const BOARD_INTERVAL_MS: i64 = 1000;

/// Who is on a connection, as authenticated.
#[derive(Debug, Clone)]
pub struct PartyInfo {
    pub id: Uuid,
    pub role: Role,
    pub point_id: Option<Uuid>,
    pub name: String,
}

/// Inputs of the switchboard.
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
    Shutdown,
}

/// Settings of the switchboard.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ring_timeout_ms: i64,
    pub resume_window_ms: i64,
    pub ice: IceConfig,
    /// Verifies the staff access tokens that come with `take_ticket`.
    pub tokens: crate::auth::tokens::TokenService,
}

/// Cheap-to-clone handle to the switchboard task.
#[derive(Debug, Clone)]
pub struct Switchboard {
    tx: mpsc::Sender<Event>,
    pub stats: Arc<DeliveryStats>,
}

impl Switchboard {
    /// Starts the switchboard task.
    pub fn start(db: Db, pii: Pii, settings: Settings) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let stats = Arc::new(DeliveryStats::default());
        let delivery = LocalDelivery::new(stats.clone());
        let config = dispatch::Config { ring_timeout_ms: settings.ring_timeout_ms, ..Default::default() };
        let core = Core {
            db,
            pii,
            settings,
            dispatcher: Dispatcher::new(config),
            out: Box::new(delivery),
            parties: HashMap::new(),
            tickets: HashMap::new(),
            requests: HashMap::new(),
            sessions: HashMap::new(),
            grace: HashMap::new(),
            line_names: HashMap::new(),
            board_dirty: false,
            board_sent_at: 0,
        };
        tokio::spawn(core.run(rx));
        Self { tx, stats }
    }

    pub async fn send(&self, ev: Event) {
        if self.tx.send(ev).await.is_err() {
            tracing::warn!("switchboard is gone");
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
}

#[derive(Debug)]
struct PartyRt {
    info: PartyInfo,
    conn: Option<Uuid>,
    resume_token: String,
    skills: Vec<Uuid>,
    /// Operator has been registered with the dispatcher.
    dispatched: bool,
}

#[derive(Debug, Clone)]
struct TicketRt {
    view: TicketView,
    terminal: Uuid,
    created_at: i64,
    /// When it last started waiting (taken or transferred): the wait of its next session.
    queued_since: i64,
    session: Option<Uuid>,
    /// The ticket's previous session, when transferred.
    previous_session: Option<Uuid>,
    transfer: Option<TransferContext>,
    /// The last `(position, estimated wait)` sent, so unchanged positions are not re-sent.
    last_position: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessState {
    Active,
    Held,
    /// Call over; waiting for the operator's wrap-up.
    Ended,
    /// Wrapped up; waiting for the resident's rating.
    Closed,
}

#[derive(Debug, Clone)]
struct SessionRt {
    ticket: Uuid,
    operator: Uuid,
    operator_name: String,
    terminal: Uuid,
    state: SessState,
    rated: bool,
}

struct Core {
    db: Db,
    pii: Pii,
    settings: Settings,
    dispatcher: Dispatcher,
    out: Box<dyn Delivery>,
    parties: HashMap<Uuid, PartyRt>,
    tickets: HashMap<Uuid, TicketRt>,
    /// (terminal, request_id) → ticket, for idempotent take_ticket.
    requests: HashMap<(Uuid, Uuid), Uuid>,
    sessions: HashMap<Uuid, SessionRt>,
    /// Disconnected parties and the end of their reconnect window.
    grace: HashMap<Uuid, i64>,
    line_names: HashMap<Uuid, String>,
    board_dirty: bool,
    /// When the board was last sent: it goes out at most once per second.
    board_sent_at: i64,
}

/// An error reply to the sender of a message.
struct Refusal(ErrorCode, String);

fn refuse(code: ErrorCode, msg: impl Into<String>) -> Refusal {
    Refusal(code, msg.into())
}

fn dispatch_refusal(e: &dispatch::DispatchError) -> Refusal {
    use dispatch::DispatchError as E;
    match e {
        E::UnknownTicket(_) => refuse(ErrorCode::NotFound, "号票不存在或已结束 (no such ticket)"),
        E::UnknownOperator(_) => refuse(ErrorCode::Conflict, "请先设为可接听 (set yourself available first)"),
        E::NotSkilled(..) => refuse(ErrorCode::Forbidden, "您不负责该条线 (not your line)"),
        E::OfferExpired(_) => refuse(ErrorCode::Conflict, "来电已超时 (the offer expired)"),
        E::NotOffered(..) => refuse(ErrorCode::Conflict, "该来电未分配给您 (not offered to you)"),
        _ => refuse(ErrorCode::Conflict, "当前状态不允许此操作 (not allowed in the current state)"),
    }
}

fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "normal",
        Priority::Elderly => "elderly",
        Priority::Disabled => "disabled",
        Priority::Pregnant => "pregnant",
    }
}

fn to_dispatch_priority(p: Priority) -> dispatch::Priority {
    match p {
        Priority::Normal => dispatch::Priority::Normal,
        Priority::Elderly => dispatch::Priority::Elderly,
        Priority::Disabled => dispatch::Priority::Disabled,
        Priority::Pregnant => dispatch::Priority::Pregnant,
    }
}

fn op_view(s: dispatch::OperatorState) -> OperatorStateView {
    match s {
        dispatch::OperatorState::Offline => OperatorStateView::Offline,
        dispatch::OperatorState::Available => OperatorStateView::Available,
        dispatch::OperatorState::Ringing(_) => OperatorStateView::Ringing,
        dispatch::OperatorState::InCall(_) => OperatorStateView::InCall,
        dispatch::OperatorState::WrapUp => OperatorStateView::WrapUp,
        dispatch::OperatorState::Away => OperatorStateView::Away,
    }
}

fn ring_reason(r: WithdrawReason) -> RingCancelReason {
    match r {
        WithdrawReason::Timeout | WithdrawReason::OperatorGone | WithdrawReason::Declined => {
            RingCancelReason::Timeout
        }
        WithdrawReason::Cancelled | WithdrawReason::Transferred => RingCancelReason::Cancelled,
        WithdrawReason::TakenByOther => RingCancelReason::TakenByOther,
        WithdrawReason::Suspended => RingCancelReason::ResidentLeft,
    }
}

fn outcome_str(o: shared::protocol::Outcome) -> &'static str {
    use shared::protocol::Outcome as O;
    match o {
        O::Completed => "completed",
        O::AcceptedPendingApproval => "accepted_pending_approval",
        O::NeedsMaterials => "needs_materials",
        O::ReferredOffline => "referred_offline",
        O::Rejected => "rejected",
    }
}

fn rating_str(l: RatingLevel) -> &'static str {
    match l {
        RatingLevel::VerySatisfied => "very_satisfied",
        RatingLevel::Satisfied => "satisfied",
        RatingLevel::Basic => "basic",
        RatingLevel::Dissatisfied => "dissatisfied",
        RatingLevel::VeryDissatisfied => "very_dissatisfied",
    }
}

/// `YYYY-MM-DD` of `ms` in China Standard Time (UTC+8).
pub fn service_day(ms: i64) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| t.to_offset(offset).date().to_string())
        .unwrap_or_default()
}

impl Core {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        match store::line_names(&self.db).await {
            Ok(names) => self.line_names = names.into_iter().collect(),
            Err(e) => tracing::error!(error = %e, "cannot load line names"),
        }
        self.recover().await;
        loop {
            let now = now_ms();
            let deadline = self.next_deadline();
            let sleep = deadline.map(|d| Duration::from_millis(u64::try_from(d - now).unwrap_or(0)));
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                () = async {
                    match sleep {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.tick().await;
                    self.flush_board();
                    continue;
                }
            };
            let Some(ev) = ev else { break };
            if matches!(ev, Event::Shutdown) {
                self.out.close_all(ByeReason::Shutdown);
                break;
            }
            self.handle(ev).await;
            self.flush_board();
        }
    }

    /// After a restart: today's open tickets wait again at their places (calls that were live
    /// are closed as interrupted and their residents go back to the head of the queue); each
    /// terminal has the usual window to reconnect. Older tickets are abandoned.
    async fn recover(&mut self) {
        let now = now_ms();
        let today = service_day(now);
        match store::close_interrupted_sessions(&self.db, now).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(sessions = n, "closed calls interrupted by a restart"),
            Err(e) => tracing::error!(error = %e, "cannot close interrupted sessions"),
        }
        let open = match store::open_tickets(&self.db).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot load open tickets");
                return;
            }
        };
        let mut recovered = 0;
        for t in open {
            let id = t.view.ticket_id;
            if t.service_day != today {
                self.persist(store::set_ticket_status(&self.db, id, "abandoned", Some("expired"), now).await);
                continue;
            }
            let line = t.view.line_id;
            let priority = to_dispatch_priority(t.view.priority);
            self.tickets.insert(
                id,
                TicketRt {
                    view: t.view,
                    terminal: t.terminal,
                    created_at: t.created_at,
                    queued_since: t.created_at,
                    session: None,
                    previous_session: None,
                    transfer: None,
                    last_position: None,
                },
            );
            let enq = if t.status == "in_call" {
                self.persist(store::set_ticket_status(&self.db, id, "waiting", None, now).await);
                // An interrupted call goes ahead of the queue, like a transfer.
                self.dispatcher
                    .enqueue(TicketId(id), LineId(line), priority, Millis(now))
                    .and_then(|_| self.dispatcher.requeue(TicketId(id), LineId(line), priority, Millis(now)))
            } else {
                self.dispatcher.enqueue(TicketId(id), LineId(line), priority, Millis(now))
            };
            if let Err(e) = enq.and_then(|_| self.dispatcher.suspend(TicketId(id), Millis(now))) {
                tracing::error!(error = %e, "cannot recover a ticket");
                continue;
            }
            self.grace.insert(t.terminal, now + self.settings.resume_window_ms);
            self.parties.entry(t.terminal).or_insert_with(|| PartyRt {
                info: PartyInfo { id: t.terminal, role: Role::Terminal, point_id: None, name: String::new() },
                conn: None,
                resume_token: String::new(),
                skills: Vec::new(),
                dispatched: false,
            });
            recovered += 1;
        }
        if recovered > 0 {
            tracing::info!(tickets = recovered, "recovered waiting tickets after a restart");
            self.board_dirty = true;
        }
    }

    fn next_deadline(&self) -> Option<i64> {
        let d = self.dispatcher.next_deadline().map(|m| m.0);
        let g = self.grace.values().min().copied();
        let b = self.board_dirty.then_some(self.board_sent_at + BOARD_INTERVAL_MS);
        [d, g, b].into_iter().flatten().min()
    }

    async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Connect { party, outbox, reply } => {
                let welcome = self.connect(party, outbox).await;
                let _ = reply.send(welcome);
            }
            Event::Message { party, conn, msg } => {
                let kind = msg.kind();
                if self.parties.get(&party).and_then(|p| p.conn) != Some(conn) {
                    return;
                }
                if let Err(Refusal(code, message)) = self.message(party, msg).await {
                    self.out.send(party, &ServerMsg::error(code, message, Some(kind)));
                }
            }
            Event::Disconnect { party, conn } => self.disconnect(party, conn).await,
            Event::Kick { party, reason } => {
                self.out.close(party, reason);
                if let Some(p) = self.parties.get_mut(&party) {
                    p.conn = None;
                }
                self.expire_party(party, now_ms()).await;
            }
            Event::Notify { parties, msg } => {
                self.out.send_many(&mut parties.into_iter(), &msg);
            }
            Event::Shutdown => {}
        }
    }

    // ---- connections ------------------------------------------------------------------------

    async fn connect(&mut self, info: PartyInfo, outbox: Outbox) -> ServerMsg {
        let now = now_ms();
        let conn = outbox.conn;
        let id = info.id;
        let resumed = self.grace.remove(&id).is_some();
        let skills = if info.role == Role::Operator {
            store::skills(&self.db, id).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let entry = self.parties.entry(id).or_insert_with(|| PartyRt {
            info: info.clone(),
            conn: None,
            resume_token: crate::auth::tokens::opaque_secret("bbs_"),
            skills: Vec::new(),
            dispatched: false,
        });
        entry.info = info.clone();
        entry.conn = Some(conn);
        // Every welcome carries a fresh resume token.
        entry.resume_token = crate::auth::tokens::opaque_secret("bbs_");
        entry.skills = skills.clone();
        let token = entry.resume_token.clone();
        let dispatched = entry.dispatched;
        self.out.attach(id, outbox);
        if dispatched {
            let lines: Vec<LineId> = skills.iter().copied().map(LineId).collect();
            let r = self.dispatcher.set_skills(OperatorId(id), &lines, Millis(now));
            self.apply(r, now).await;
        }
        tracing::info!(role = %info.role, resumed, "party connected");
        // Bring the reconnecting party back up to date.
        match info.role {
            Role::Terminal => self.resume_terminal(id, now).await,
            Role::Operator => self.resume_operator(id, now),
            _ => {}
        }
        if matches!(info.role, Role::Operator | Role::Supervisor | Role::Admin | Role::Staff) {
            // A newcomer gets the board at once, not at the next throttled update.
            self.board_dirty = true;
            self.board_sent_at = 0;
        }
        ServerMsg::Welcome {
            v: shared::protocol::PROTOCOL_VERSION,
            connection_id: conn,
            role: info.role,
            resume_token: shared::validate::Token::try_from(token)
                .unwrap_or_else(|_| unreachable!("short token")),
            heartbeat_secs: shared::protocol::HEARTBEAT_SECS,
            resumed,
        }
    }

    async fn resume_terminal(&mut self, terminal: Uuid, now: i64) {
        for (ticket, session) in self.tickets_of(terminal) {
            match session {
                None => {
                    let r = self.dispatcher.resume(TicketId(ticket), Millis(now));
                    self.apply(r, now).await;
                    self.send_position(ticket, now);
                }
                Some(session) => {
                    let Some(s) = self.sessions.get(&session).cloned() else { continue };
                    if matches!(s.state, SessState::Active | SessState::Held) {
                        self.send_session_started(session, Party::Terminal, now);
                        self.out.send(s.operator, &ServerMsg::PeerReconnected { session_id: session });
                    }
                }
            }
        }
    }

    fn resume_operator(&mut self, op: Uuid, now: i64) {
        // An operator outside the dispatcher (never made available, or left it when the socket
        // dropped outside a call, e.g. a page reload) is away and chooses when to take calls.
        let dispatched = self.parties.get(&op).is_some_and(|p| p.dispatched);
        let state = match self.dispatcher.operator_state(OperatorId(op)) {
            Some(s) if dispatched => op_view(s),
            _ => OperatorStateView::Away,
        };
        self.out.send(op, &ServerMsg::OperatorStatus { state });
        let live: Vec<(Uuid, SessionRt)> =
            self.sessions.iter().filter(|(_, s)| s.operator == op).map(|(id, s)| (*id, s.clone())).collect();
        for (session, s) in live {
            if matches!(s.state, SessState::Active | SessState::Held) {
                self.send_session_started(session, Party::Operator, now);
                self.out.send(s.terminal, &ServerMsg::PeerReconnected { session_id: session });
            }
        }
    }

    async fn disconnect(&mut self, party: Uuid, conn: Uuid) {
        if !self.out.detach(party, conn) {
            return;
        }
        let now = now_ms();
        let Some(p) = self.parties.get_mut(&party) else { return };
        if p.conn != Some(conn) {
            return;
        }
        p.conn = None;
        let role = p.info.role;
        tracing::info!(%role, "party disconnected; reconnect window open");
        let grace_secs = u32::try_from(self.settings.resume_window_ms / 1000).unwrap_or(60);
        match role {
            Role::Terminal => {
                let mine = self.tickets_of(party);
                for (ticket, session) in mine {
                    match session {
                        None => {
                            let r = self.dispatcher.suspend(TicketId(ticket), Millis(now));
                            self.apply(r, now).await;
                        }
                        Some(s) => {
                            if let Some(op) = self.sessions.get(&s).map(|x| x.operator) {
                                self.out.send(op, &ServerMsg::PeerDisconnected { session_id: s, grace_secs });
                            }
                        }
                    }
                }
                self.grace.insert(party, now + self.settings.resume_window_ms);
            }
            Role::Operator => {
                let in_call =
                    self.sessions.values().any(|s| s.operator == party && s.state != SessState::Closed);
                if in_call {
                    for (id, s) in &self.sessions {
                        if s.operator == party && matches!(s.state, SessState::Active | SessState::Held) {
                            self.out.send(
                                s.terminal,
                                &ServerMsg::PeerDisconnected { session_id: *id, grace_secs },
                            );
                        }
                    }
                    self.grace.insert(party, now + self.settings.resume_window_ms);
                } else {
                    self.operator_gone(party, now).await;
                }
            }
            _ => {
                self.parties.remove(&party);
            }
        }
    }

    /// A terminal's live tickets and their sessions.
    fn tickets_of(&self, terminal: Uuid) -> Vec<(Uuid, Option<Uuid>)> {
        self.tickets.iter().filter(|(_, t)| t.terminal == terminal).map(|(id, t)| (*id, t.session)).collect()
    }

    /// An operator who is no longer reachable leaves the dispatcher.
    async fn operator_gone(&mut self, op: Uuid, now: i64) {
        if let Some(p) = self.parties.get_mut(&op)
            && p.dispatched
        {
            p.dispatched = false;
            let r = self.dispatcher.operator_offline(OperatorId(op), Millis(now));
            self.apply(r, now).await;
        }
        self.board_dirty = true;
    }

    /// The reconnect window closed (or the party was kicked): end what it left behind.
    async fn expire_party(&mut self, party: Uuid, now: i64) {
        self.grace.remove(&party);
        let Some(role) = self.parties.get(&party).map(|p| p.info.role) else { return };
        match role {
            Role::Terminal => {
                let mine = self.tickets_of(party);
                for (ticket, session) in mine {
                    match session {
                        None => {
                            let r = self.dispatcher.cancel(TicketId(ticket), Millis(now));
                            self.apply(r, now).await;
                            self.close_ticket(ticket, "abandoned", TicketCloseReason::Abandoned, now).await;
                        }
                        Some(s) => self.end_session(s, SessionEndReason::ResidentLeft, now).await,
                    }
                }
                // Sessions waiting for a rating are dropped from memory; the record stays.
                self.sessions.retain(|_, s| !(s.terminal == party && s.state == SessState::Closed));
                self.parties.remove(&party);
            }
            Role::Operator => {
                let live: Vec<Uuid> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| {
                        s.operator == party && matches!(s.state, SessState::Active | SessState::Held)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for s in live {
                    // The resident goes back to the head of the queue (CallAborted from the
                    // dispatcher below re-queues the ticket).
                    self.finish_session_record(s, SessionEndReason::ConnectionLost, now, true).await;
                }
                let ended: Vec<Uuid> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.operator == party && s.state == SessState::Ended)
                    .map(|(id, _)| *id)
                    .collect();
                for s in ended {
                    self.wrap_up_record(s, None, None, now).await;
                }
                self.operator_gone(party, now).await;
                self.parties.remove(&party);
            }
            _ => {
                self.parties.remove(&party);
            }
        }
    }

    async fn tick(&mut self) {
        let now = now_ms();
        let actions = self.dispatcher.tick(Millis(now));
        self.apply(Ok(actions), now).await;
        let expired: Vec<Uuid> = self.grace.iter().filter(|(_, d)| **d <= now).map(|(p, _)| *p).collect();
        for p in expired {
            tracing::info!("reconnect window closed");
            self.expire_party(p, now).await;
        }
    }

    // ---- messages ---------------------------------------------------------------------------

    fn party(&self, id: Uuid) -> Result<&PartyRt, Refusal> {
        self.parties.get(&id).ok_or_else(|| refuse(ErrorCode::Unauthenticated, "未连接 (not connected)"))
    }

    fn require(&self, id: Uuid, role: Role) -> Result<(), Refusal> {
        if self.party(id)?.info.role == role {
            Ok(())
        } else {
            Err(refuse(ErrorCode::Forbidden, "无权执行此操作 (forbidden)"))
        }
    }

    /// The session, if `party` is one of its two parties.
    fn session_of(&self, session: Uuid, party: Uuid) -> Result<SessionRt, Refusal> {
        match self.sessions.get(&session) {
            Some(s) if s.operator == party || s.terminal == party => Ok(s.clone()),
            _ => Err(refuse(ErrorCode::Forbidden, "您不在该通话中 (not a party of this session)")),
        }
    }

    async fn message(&mut self, from: Uuid, msg: ClientMsg) -> Result<(), Refusal> {
        let now = now_ms();
        match msg {
            // A client authenticated in the handshake may still send its `hello` first.
            ClientMsg::Hello { .. } => Ok(()),
            ClientMsg::Ping { seq } => {
                self.out.send(from, &ServerMsg::Pong { seq });
                Ok(())
            }
            ClientMsg::TakeTicket { item_id, priority, resident, request_id, staff_token } => {
                self.require(from, Role::Terminal)?;
                self.take_ticket(from, item_id, priority, resident, request_id, staff_token, now).await
            }
            ClientMsg::CancelTicket { ticket_id } => {
                self.require(from, Role::Terminal)?;
                let t = self
                    .tickets
                    .get(&ticket_id)
                    .filter(|t| t.terminal == from)
                    .cloned()
                    .ok_or_else(|| refuse(ErrorCode::NotFound, "号票不存在 (no such ticket)"))?;
                match t.session {
                    Some(s) => self.end_session(s, SessionEndReason::ResidentLeft, now).await,
                    None => {
                        let r = self.dispatcher.cancel(TicketId(ticket_id), Millis(now));
                        self.apply_checked(r, now).await?;
                        self.close_ticket(ticket_id, "cancelled", TicketCloseReason::Cancelled, now).await;
                    }
                }
                Ok(())
            }
            ClientMsg::Rate { session_id, level, comment } => {
                self.require(from, Role::Terminal)?;
                let s = self.session_of(session_id, from)?;
                if s.state != SessState::Closed {
                    return Err(refuse(ErrorCode::Conflict, "通话尚未办结 (session not wrapped up yet)"));
                }
                let due = level.is_negative().then(|| crate::api::stats::due_after_working_days(now, 15));
                let stored = store::rate(
                    &self.db,
                    session_id,
                    s.ticket,
                    rating_str(level),
                    self.pii
                        .seal(comment.as_ref().map(|c| c.as_str()), &Pii::comment_context(session_id))
                        .as_deref(),
                    due,
                    now,
                )
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "rating not stored");
                    refuse(ErrorCode::Internal, "评价保存失败，请重试 (rating not stored, retry)")
                })?;
                if !stored {
                    return Err(refuse(ErrorCode::Conflict, "已评价 (already rated)"));
                }
                if let Some(sess) = self.sessions.get_mut(&session_id) {
                    sess.rated = true;
                }
                self.sessions.remove(&session_id);
                self.log_event(
                    s.ticket,
                    Some(session_id),
                    "rated",
                    json!({ "level": rating_str(level) }),
                    now,
                )
                .await;
                // The operator who served sees the rating in today's history at once.
                self.out.send_many(
                    &mut [from, s.operator].into_iter(),
                    &ServerMsg::RatingRecorded { session_id },
                );
                Ok(())
            }
            ClientMsg::SetAvailability { available } => {
                self.require(from, Role::Operator)?;
                self.set_availability(from, available, now).await
            }
            ClientMsg::Accept { ticket_id } => {
                self.require(from, Role::Operator)?;
                let r = self.dispatcher.accept(OperatorId(from), TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now).await?;
                Ok(())
            }
            ClientMsg::Decline { ticket_id } => {
                self.require(from, Role::Operator)?;
                let r = self.dispatcher.decline(OperatorId(from), TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now).await?;
                Ok(())
            }
            ClientMsg::Pick { ticket_id } => {
                self.require(from, Role::Operator)?;
                self.ensure_dispatched(from, now).await;
                let r = self.dispatcher.pick(OperatorId(from), TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now).await?;
                Ok(())
            }
            ClientMsg::Hold { session_id } | ClientMsg::Resume { session_id } => {
                self.require(from, Role::Operator)?;
                let hold = matches!(msg, ClientMsg::Hold { .. });
                let s = self.session_of(session_id, from)?;
                let (want, next, status) = if hold {
                    (SessState::Active, SessState::Held, "held")
                } else {
                    (SessState::Held, SessState::Active, "active")
                };
                if s.state != want {
                    return Err(refuse(ErrorCode::Conflict, "通话状态不允许 (not allowed in this state)"));
                }
                if let Some(x) = self.sessions.get_mut(&session_id) {
                    x.state = next;
                }
                self.persist(store::set_session_status(&self.db, session_id, status).await);
                self.log_event(s.ticket, Some(session_id), status, json!({}), now).await;
                let m = if hold {
                    ServerMsg::SessionHeld { session_id }
                } else {
                    ServerMsg::SessionResumed { session_id }
                };
                self.out.send(s.terminal, &m);
                self.out.send(s.operator, &m);
                Ok(())
            }
            ClientMsg::Transfer { session_id, target, note } => {
                self.require(from, Role::Operator)?;
                self.transfer(from, session_id, target, note.map(|n| n.as_str().to_owned()), now).await
            }
            ClientMsg::RequestScan { session_id, slot_id, note } => {
                self.require(from, Role::Operator)?;
                let s = self.session_of(session_id, from)?;
                if from != s.operator || !matches!(s.state, SessState::Active | SessState::Held) {
                    return Err(refuse(ErrorCode::Conflict, "通话未在进行中 (no live call)"));
                }
                let item = self.tickets.get(&s.ticket).map(|t| t.view.item_id);
                let slot_name = match (slot_id, item) {
                    (Some(slot), Some(item)) => Some(
                        store::slot_name(&self.db, item, slot)
                            .await
                            .map_err(|e| {
                                tracing::error!(error = %e, "slot lookup failed");
                                refuse(ErrorCode::Internal, "请求失败，请重试 (retry)")
                            })?
                            .ok_or_else(|| {
                                refuse(ErrorCode::NotFound, "该事项没有这项材料 (no such slot)")
                            })?,
                    ),
                    _ => None,
                };
                let note = note.map(|n| n.as_str().to_owned());
                self.log_event(
                    s.ticket,
                    Some(session_id),
                    "scan_requested",
                    json!({ "slot_id": slot_id, "slot_name": slot_name }),
                    now,
                )
                .await;
                let m = ServerMsg::ScanRequested { session_id, slot_id, slot_name, note };
                self.out.send(s.terminal, &m);
                Ok(())
            }
            ClientMsg::EndCall { session_id } => {
                let s = self.session_of(session_id, from)?;
                if !matches!(s.state, SessState::Active | SessState::Held) {
                    return Err(refuse(ErrorCode::Conflict, "通话已结束 (already ended)"));
                }
                let reason = if from == s.operator {
                    SessionEndReason::OperatorEnded
                } else {
                    SessionEndReason::ResidentLeft
                };
                self.end_session(session_id, reason, now).await;
                Ok(())
            }
            ClientMsg::WrapUp { session_id, outcome, notes } => {
                self.require(from, Role::Operator)?;
                let s = self.session_of(session_id, from)?;
                if from != s.operator {
                    return Err(refuse(ErrorCode::Forbidden, "无权执行此操作 (forbidden)"));
                }
                match s.state {
                    SessState::Active | SessState::Held => {
                        self.end_session(session_id, SessionEndReason::OperatorEnded, now).await;
                    }
                    SessState::Ended => {}
                    SessState::Closed => {
                        return Err(refuse(ErrorCode::Conflict, "已办结 (already wrapped up)"));
                    }
                }
                self.wrap_up_record(
                    session_id,
                    Some(outcome_str(outcome)),
                    notes.as_ref().map(|n| n.as_str()),
                    now,
                )
                .await;
                Ok(())
            }
            ClientMsg::Signal { session_id, signal } => {
                let s = self.session_of(session_id, from)?;
                if !matches!(s.state, SessState::Active | SessState::Held) {
                    return Err(refuse(ErrorCode::NotFound, "通话已结束 (session ended)"));
                }
                let (to, party) = if from == s.operator {
                    (s.terminal, Party::Operator)
                } else {
                    (s.operator, Party::Terminal)
                };
                if let Signal::Offer { ice_restart: true, .. } = &signal {
                    self.log_event(s.ticket, Some(session_id), "ice_restart", json!({ "by": party }), now)
                        .await;
                }
                self.out.send(to, &ServerMsg::Signal { session_id, from: party, signal });
                Ok(())
            }
        }
    }

    async fn ensure_dispatched(&mut self, op: Uuid, now: i64) {
        let Some(p) = self.parties.get_mut(&op) else { return };
        if p.dispatched {
            return;
        }
        p.dispatched = true;
        let lines: Vec<LineId> = p.skills.iter().copied().map(LineId).collect();
        let r = self.dispatcher.operator_online(OperatorId(op), &lines, Millis(now));
        self.apply(r, now).await;
    }

    async fn set_availability(&mut self, op: Uuid, available: bool, now: i64) -> Result<(), Refusal> {
        let known = self.parties.get(&op).is_some_and(|p| p.dispatched);
        let r = if available {
            if !known {
                self.ensure_dispatched(op, now).await;
                return Ok(());
            }
            self.dispatcher.set_available(OperatorId(op), Millis(now))
        } else {
            if !known {
                self.ensure_dispatched(op, now).await;
            }
            self.dispatcher.set_away(OperatorId(op), Millis(now))
        };
        self.apply_checked(r, now).await?;
        Ok(())
    }

    /// The staff member signed in at the kiosk, from their access token: role `staff`, active,
    /// bound to the terminal's point. Returns `(user id, display name)`.
    async fn assisting_staff(&self, token: &str, point: Uuid) -> Result<(Uuid, String), Refusal> {
        let invalid = || {
            refuse(ErrorCode::Forbidden, "工作人员登录已失效，请重新登录 (staff sign-in invalid or expired)")
        };
        let claims = self
            .settings
            .tokens
            .verify(token, crate::auth::tokens::TokenKind::Access)
            .map_err(|_| invalid())?;
        if claims.role != Role::Staff {
            return Err(invalid());
        }
        if claims.point != Some(point) {
            return Err(refuse(ErrorCode::Forbidden, "该工作人员不属于本服务点 (staff of another point)"));
        }
        let (name, role, active) = store::user_name(&self.db, claims.sub)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "staff lookup failed");
                refuse(ErrorCode::Internal, "取号失败，请重试 (retry)")
            })?
            .ok_or_else(invalid)?;
        if !active || role != "staff" {
            return Err(invalid());
        }
        Ok((claims.sub, name))
    }

    #[allow(clippy::too_many_arguments)]
    async fn take_ticket(
        &mut self,
        terminal: Uuid,
        item_id: Uuid,
        priority: Priority,
        resident: Option<shared::protocol::ResidentDetails>,
        request_id: Uuid,
        staff_token: Option<shared::validate::Token>,
        now: i64,
    ) -> Result<(), Refusal> {
        if let Some(existing) = self.requests.get(&(terminal, request_id)).copied()
            && let Some(t) = self.tickets.get(&existing)
        {
            let msg = ServerMsg::TicketIssued { ticket: t.view.clone(), request_id };
            self.out.send(terminal, &msg);
            self.send_position(existing, now);
            return Ok(());
        }
        let point = self
            .party(terminal)?
            .info
            .point_id
            .ok_or_else(|| refuse(ErrorCode::Forbidden, "终端未绑定服务点 (no point)"))?;
        let internal = |e: sqlx::Error| {
            tracing::error!(error = %e, "ticket lookup failed");
            refuse(ErrorCode::Internal, "取号失败，请重试 (could not take a ticket, retry)")
        };
        let item = store::item_info(&self.db, item_id)
            .await
            .map_err(internal)?
            .filter(|i| i.active)
            .ok_or_else(|| refuse(ErrorCode::NotFound, "事项不存在 (no such service item)"))?;
        if !item.remote_allowed {
            return Err(refuse(
                ErrorCode::Forbidden,
                "该事项不能远程办理，请到受理中心办理 (not available remotely)",
            ));
        }
        let (point_code, point_name, open) = store::point_info(&self.db, point)
            .await
            .map_err(internal)?
            .ok_or_else(|| refuse(ErrorCode::NotFound, "服务点不存在 (no such point)"))?;
        if !open {
            return Err(refuse(ErrorCode::Unavailable, "服务点已关闭 (point closed)"));
        }
        let staff = match &staff_token {
            Some(t) => Some(self.assisting_staff(t.as_str(), point).await?),
            None => None,
        };
        let day = service_day(now);
        let seq = store::next_ticket_seq(&self.db, point, &day).await.map_err(internal)?;
        let prefix = point_code.chars().next().filter(char::is_ascii_alphabetic).unwrap_or('A');
        let number = format!("{prefix}-{seq:04}");
        let id = crate::db::new_id();
        let name = resident.as_ref().and_then(|r| r.name.as_ref());
        let idn = resident.as_ref().and_then(|r| r.id_number.as_ref());
        let new = store::NewTicket {
            id,
            number: &number.clone(),
            service_day: &day,
            point_id: point,
            terminal_id: terminal,
            item_id,
            line_id: item.line_id,
            priority: priority_str(priority),
            request_id,
            resident_name_enc: name.map(|n| self.pii.encrypt(n.as_str(), &format!("ticket:{id}:name"))),
            resident_name_masked: name.map(|n| n.masked()),
            id_number_enc: idn.map(|n| self.pii.encrypt(n.as_str(), &format!("ticket:{id}:id_number"))),
            id_number_hash: idn.map(|n| self.pii.keyed_hash(n.as_str())),
            id_number_masked: idn.map(|n| n.masked()),
            assisted_by: staff.as_ref().map(|(id, name)| (*id, name.as_str())),
            created_at: now,
        };
        store::insert_ticket(&self.db, &new).await.map_err(internal)?;
        let view = TicketView {
            ticket_id: id,
            number,
            item_id,
            item_name: item.item_name,
            line_id: item.line_id,
            line_name: item.line_name.clone(),
            point_id: point,
            point_name,
            priority,
            resident_name_masked: new.resident_name_masked.clone(),
            id_number_masked: new.id_number_masked.clone(),
            waited_secs: 0,
            assisted_by: staff.as_ref().map(|(_, name)| name.clone()),
        };
        self.line_names.entry(item.line_id).or_insert(item.line_name);
        self.tickets.insert(
            id,
            TicketRt {
                view: view.clone(),
                terminal,
                created_at: now,
                queued_since: now,
                session: None,
                previous_session: None,
                transfer: None,
                last_position: None,
            },
        );
        self.requests.insert((terminal, request_id), id);
        self.log_event(
            id,
            None,
            "ticket_taken",
            json!({ "priority": priority_str(priority), "assisted_by": staff.as_ref().map(|(id, _)| id) }),
            now,
        )
        .await;
        self.out.send(terminal, &ServerMsg::TicketIssued { ticket: view, request_id });
        let r = self.dispatcher.enqueue(
            TicketId(id),
            LineId(item.line_id),
            to_dispatch_priority(priority),
            Millis(now),
        );
        self.apply(r, now).await;
        self.send_position(id, now);
        self.board_dirty = true;
        Ok(())
    }

    async fn transfer(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        target: TransferTarget,
        note: Option<String>,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if from != s.operator || !matches!(s.state, SessState::Active | SessState::Held) {
            return Err(refuse(ErrorCode::Conflict, "当前不能转办 (cannot transfer now)"));
        }
        let ticket =
            self.tickets.get(&s.ticket).cloned().ok_or_else(|| refuse(ErrorCode::NotFound, "号票不存在"))?;
        let priority = to_dispatch_priority(ticket.view.priority);
        let (line, target_line, to_op) = match target {
            TransferTarget::Line { line_id } => {
                if !self.line_names.contains_key(&line_id) {
                    return Err(refuse(ErrorCode::NotFound, "条线不存在 (no such line)"));
                }
                (line_id, Some(line_id), None)
            }
            TransferTarget::Operator { operator_id } => {
                if operator_id == from {
                    return Err(refuse(ErrorCode::Conflict, "不能转给自己 (cannot transfer to yourself)"));
                }
                match store::user_name(&self.db, operator_id).await {
                    Ok(Some((_, role, true))) if role == "operator" => {}
                    _ => return Err(refuse(ErrorCode::NotFound, "受理人员不存在 (no such operator)")),
                }
                (ticket.view.line_id, None, Some(operator_id))
            }
        };
        // The old session ends as transferred; the ticket waits for its next operator.
        if let Some(x) = self.sessions.get_mut(&session_id) {
            x.state = SessState::Closed;
        }
        self.sessions.remove(&session_id);
        let sealed = self.pii.seal(note.as_deref(), &Pii::transfer_note_context(session_id));
        self.persist(store::end_session(&self.db, session_id, "transferred", now, sealed.as_deref()).await);
        let sealed = self.pii.seal(note.as_deref(), &Pii::notes_context(session_id));
        self.persist(store::wrap_up(&self.db, session_id, None, sealed.as_deref(), now).await);
        self.persist(store::set_ticket_status(&self.db, s.ticket, "waiting", None, now).await);
        self.log_event(
            s.ticket,
            Some(session_id),
            "transferred",
            json!({ "line": target_line, "operator": to_op }),
            now,
        )
        .await;
        let line_name = self.line_names.get(&line).cloned().unwrap_or_default();
        if let Some(t) = self.tickets.get_mut(&s.ticket) {
            t.session = None;
            t.previous_session = Some(session_id);
            t.queued_since = now;
            t.view.line_id = line;
            t.view.line_name = line_name;
            t.transfer = Some(TransferContext {
                from_operator: Some(s.operator_name.clone()),
                note: note.and_then(|n| shared::validate::Notes::try_from(n).ok()),
            });
        }
        self.out.send(s.terminal, &ServerMsg::Transferring { session_id, target_line });
        let ended = ServerMsg::SessionEnded { session_id, reason: SessionEndReason::Transferred };
        self.out.send(s.terminal, &ended);
        self.out.send(s.operator, &ended);
        let r = match to_op {
            Some(op) => self.dispatcher.enqueue_for_operator(
                TicketId(s.ticket),
                LineId(line),
                priority,
                OperatorId(op),
                Millis(now),
            ),
            None => self.dispatcher.requeue(TicketId(s.ticket), LineId(line), priority, Millis(now)),
        };
        self.apply_checked(r, now).await?;
        self.send_position(s.ticket, now);
        self.board_dirty = true;
        Ok(())
    }

    // ---- dispatcher actions ---------------------------------------------------------------

    /// Like [`Self::apply`], but a refusal by the dispatcher goes back to the sender.
    async fn apply_checked(
        &mut self,
        r: Result<Vec<Action>, dispatch::DispatchError>,
        now: i64,
    ) -> Result<(), Refusal> {
        let actions = r.map_err(|e| dispatch_refusal(&e))?;
        self.apply(Ok(actions), now).await;
        Ok(())
    }

    async fn apply(&mut self, r: Result<Vec<Action>, dispatch::DispatchError>, now: i64) {
        let actions = match r {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "dispatcher refused");
                return;
            }
        };
        for a in actions {
            match a {
                Action::Offer { ticket, operator, expires_at, .. } => {
                    let Some(t) = self.tickets.get(&ticket.0) else { continue };
                    let mut view = t.view.clone();
                    view.waited_secs = u32::try_from((now - t.created_at) / 1000).unwrap_or(0);
                    let msg = ServerMsg::Ringing {
                        ticket: view,
                        expires_in_ms: u64::try_from(expires_at.0 - now).unwrap_or(0),
                        transfer: t.transfer.clone(),
                    };
                    self.out.send(operator.0, &msg);
                }
                Action::OfferWithdrawn { ticket, operator, reason } => {
                    let msg = ServerMsg::RingCancelled { ticket_id: ticket.0, reason: ring_reason(reason) };
                    self.out.send(operator.0, &msg);
                }
                Action::OperatorStateChanged { operator, state } => {
                    self.out.send(operator.0, &ServerMsg::OperatorStatus { state: op_view(state) });
                    self.board_dirty = true;
                }
                Action::Assigned { ticket, operator, line } => {
                    self.start_session(ticket.0, operator.0, line.0, now).await;
                }
                Action::CallAborted { ticket, .. } => {
                    if let Some(t) = self.tickets.get_mut(&ticket.0) {
                        t.session = None;
                        t.queued_since = now;
                    }
                    self.persist(store::set_ticket_status(&self.db, ticket.0, "waiting", None, now).await);
                    self.send_position(ticket.0, now);
                }
                Action::DirectedFallback { .. } => {}
                Action::QueueChanged { line } => {
                    for (t, p) in self.dispatcher.line_positions(line) {
                        self.deliver_position(t.0, p);
                    }
                    self.board_dirty = true;
                }
                Action::TicketClosed { .. } => {
                    self.board_dirty = true;
                }
            }
        }
    }

    async fn start_session(&mut self, ticket: Uuid, operator: Uuid, line: Uuid, now: i64) {
        let Some(t) = self.tickets.get(&ticket).cloned() else { return };
        let operator_name = self.parties.get(&operator).map(|p| p.info.name.clone()).unwrap_or_default();
        let id = crate::db::new_id();
        let new = store::NewSession {
            id,
            ticket,
            operator,
            terminal: t.terminal,
            line,
            started_at: now,
            wait_ms: now - t.queued_since,
            transferred_from: t.previous_session,
        };
        self.persist(store::insert_session(&self.db, &new).await);
        self.sessions.insert(
            id,
            SessionRt {
                ticket,
                operator,
                operator_name,
                terminal: t.terminal,
                state: SessState::Active,
                rated: false,
            },
        );
        if let Some(x) = self.tickets.get_mut(&ticket) {
            x.session = Some(id);
            x.transfer = None;
        }
        self.log_event(ticket, Some(id), "session_started", json!({ "wait_ms": now - t.queued_since }), now)
            .await;
        self.send_session_started(id, Party::Operator, now);
        self.send_session_started(id, Party::Terminal, now);
        self.board_dirty = true;
    }

    fn send_session_started(&mut self, session: Uuid, part: Party, now: i64) {
        let Some(s) = self.sessions.get(&session) else { return };
        let Some(t) = self.tickets.get(&s.ticket) else { return };
        let mut ticket = t.view.clone();
        ticket.waited_secs = u32::try_from((now - t.created_at) / 1000).unwrap_or(0);
        let view = SessionView {
            session_id: session,
            ticket,
            operator_id: s.operator,
            operator_name: s.operator_name.clone(),
            your_part: part,
            polite: part == Party::Terminal,
            ice_servers: self.settings.ice.servers_for(session, now / 1000),
        };
        let to = if part == Party::Operator { s.operator } else { s.terminal };
        self.out.send(to, &ServerMsg::SessionStarted { session: view });
    }

    /// Ends a live call: both parties are told, the operator goes to wrap-up.
    async fn end_session(&mut self, session: Uuid, reason: SessionEndReason, now: i64) {
        let Some(s) = self.sessions.get(&session).cloned() else { return };
        if !matches!(s.state, SessState::Active | SessState::Held) {
            return;
        }
        self.finish_session_record(session, reason, now, false).await;
        let r = self.dispatcher.call_ended(OperatorId(s.operator), Millis(now));
        self.apply(r, now).await;
    }

    /// Records the end of a session and tells both parties. With `requeue` the ticket stays
    /// alive (the operator vanished; the dispatcher re-queues it).
    async fn finish_session_record(
        &mut self,
        session: Uuid,
        reason: SessionEndReason,
        now: i64,
        requeue: bool,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.state = SessState::Ended;
        let s = s.clone();
        let reason_str = match reason {
            SessionEndReason::OperatorEnded => "operator_ended",
            SessionEndReason::ResidentLeft => "resident_left",
            SessionEndReason::ConnectionLost => "connection_lost",
            SessionEndReason::Transferred => "transferred",
            SessionEndReason::SupervisorEnded => "supervisor_ended",
            SessionEndReason::ServerShutdown => "server_shutdown",
            SessionEndReason::Unknown => "unknown",
        };
        self.persist(store::end_session(&self.db, session, reason_str, now, None).await);
        self.log_event(s.ticket, Some(session), "session_ended", json!({ "reason": reason_str }), now).await;
        let msg = ServerMsg::SessionEnded { session_id: session, reason };
        self.out.send(s.terminal, &msg);
        self.out.send(s.operator, &msg);
        if requeue {
            self.sessions.remove(&session);
            self.persist(store::wrap_up(&self.db, session, None, None, now).await);
        } else {
            self.persist(store::set_ticket_status(&self.db, s.ticket, "served", None, now).await);
            if let Some(t) = self.tickets.get_mut(&s.ticket) {
                t.session = Some(session);
            }
        }
        self.board_dirty = true;
    }

    /// Wrap-up: outcome and notes stored, the operator free again, the resident asked to rate.
    async fn wrap_up_record(&mut self, session: Uuid, outcome: Option<&str>, notes: Option<&str>, now: i64) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.state = SessState::Closed;
        let s = s.clone();
        let sealed = self.pii.seal(notes, &Pii::notes_context(session));
        self.persist(store::wrap_up(&self.db, session, outcome, sealed.as_deref(), now).await);
        self.log_event(s.ticket, Some(session), "wrapped_up", json!({ "outcome": outcome }), now).await;
        if let Some(p) = self.parties.get(&s.operator)
            && p.dispatched
        {
            let r = self.dispatcher.wrap_up_done(OperatorId(s.operator), Millis(now));
            self.apply(r, now).await;
        }
        self.tickets.remove(&s.ticket);
        self.requests.retain(|_, t| *t != s.ticket);
        self.out.send(
            s.terminal,
            &ServerMsg::TicketClosed { ticket_id: s.ticket, reason: TicketCloseReason::Completed },
        );
        self.out.send(s.terminal, &ServerMsg::RateRequest { session_id: session });
        if !self.out.is_connected(s.terminal) {
            self.sessions.remove(&session);
        }
    }

    async fn close_ticket(&mut self, ticket: Uuid, status: &str, reason: TicketCloseReason, now: i64) {
        let Some(t) = self.tickets.remove(&ticket) else { return };
        self.requests.retain(|_, x| *x != ticket);
        self.persist(store::set_ticket_status(&self.db, ticket, status, Some(status), now).await);
        self.log_event(ticket, None, "ticket_closed", json!({ "status": status }), now).await;
        self.out.send(t.terminal, &ServerMsg::TicketClosed { ticket_id: ticket, reason });
        self.board_dirty = true;
    }

    /// Sends a ticket's position to its terminal, even if unchanged (after a reconnect or a
    /// new ticket).
    fn send_position(&mut self, ticket: Uuid, _now: i64) {
        if let Some(t) = self.tickets.get_mut(&ticket) {
            t.last_position = None;
        }
        if let Some(p) = self.dispatcher.position(TicketId(ticket)) {
            self.deliver_position(ticket, p);
        }
    }

    /// Sends a position only when it differs from the last one sent: a queue of thousands does
    /// not cost a message per ticket on every change.
    fn deliver_position(&mut self, ticket: Uuid, p: dispatch::Position) {
        let Some(t) = self.tickets.get_mut(&ticket) else { return };
        let now = (p.position, p.estimated_wait_secs);
        if t.session.is_some() || t.last_position == Some(now) {
            return;
        }
        t.last_position = Some(now);
        let terminal = t.terminal;
        let msg = ServerMsg::QueuePosition {
            ticket_id: ticket,
            position: p.position,
            estimated_wait_secs: p.estimated_wait_secs,
        };
        self.out.send(terminal, &msg);
    }

    fn flush_board(&mut self) {
        let now = now_ms();
        if !self.board_dirty || now < self.board_sent_at + BOARD_INTERVAL_MS {
            return;
        }
        self.board_dirty = false;
        self.board_sent_at = now;
        let b = self.dispatcher.board(Millis(now));
        let lines = b
            .lines
            .iter()
            .map(|l| shared::protocol::LineBoard {
                line_id: l.line.0,
                line_name: self.line_names.get(&l.line.0).cloned().unwrap_or_default(),
                waiting: l.waiting,
                priority_waiting: l.priority_waiting,
                longest_wait_secs: u32::try_from(l.longest_wait_ms / 1000).unwrap_or(u32::MAX),
                next: l
                    .head
                    .iter()
                    .filter_map(|t| self.tickets.get(&t.0))
                    .map(|t| shared::protocol::BoardTicket {
                        ticket_id: t.view.ticket_id,
                        number: t.view.number.clone(),
                        item_name: t.view.item_name.clone(),
                        priority: t.view.priority,
                        waited_secs: u32::try_from((now - t.created_at).max(0) / 1000).unwrap_or(u32::MAX),
                    })
                    .collect(),
            })
            .collect();
        let operators = b
            .operators
            .iter()
            .map(|(id, st)| OperatorBoardEntry {
                operator_id: id.0,
                name: self.parties.get(&id.0).map(|p| p.info.name.clone()).unwrap_or_default(),
                state: op_view(*st),
            })
            .collect();
        let msg = ServerMsg::Board { lines, operators };
        let mut watchers = self
            .parties
            .values()
            .filter(|p| {
                p.conn.is_some()
                    && matches!(p.info.role, Role::Operator | Role::Supervisor | Role::Admin | Role::Staff)
            })
            .map(|p| p.info.id)
            .collect::<Vec<_>>()
            .into_iter();
        self.out.send_many(&mut watchers, &msg);
    }

    async fn log_event(
        &self,
        ticket: Uuid,
        session: Option<Uuid>,
        kind: &str,
        detail: serde_json::Value,
        now: i64,
    ) {
        self.persist(store::event(&self.db, ticket, session, kind, detail, now).await);
    }

    fn persist<T>(&self, r: Result<T, sqlx::Error>) {
        if let Err(e) = r {
            tracing::error!(error = %e, "switchboard could not persist a state change");
        }
    }
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
