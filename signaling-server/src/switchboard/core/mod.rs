//! The switchboard's decisions as a plain state machine: [`Core::handle`] takes an [`Input`]
//! and an explicit `now` and returns [`Output`]s (messages to parties, writes to persist,
//! connections to close, a ticket to create). No `.await`, no SQL, no channels: everything a
//! decision needs from the database (skills, the staff token check, the item and its line, a
//! material slot's name) is looked up by the driver before the input enters.
//!
//! Split by concern: [`parties`] (connections, reconnect windows, availability), [`tickets`]
//! (taking, cancelling, closing, queue positions), [`sessions`] (calls: start, relay, hold,
//! transfer, end, wrap-up, rating), [`guests`] (participants beyond the two parties:
//! supervisors who monitor, whisper, barge in or end the call, and specialists the operator
//! invites; signaling between any two participants), [`board`] (the supervisors' and
//! operators' board).
//! A session is addressed by its parties; outputs are addressed to parties, never to sockets.

pub mod availability;
mod board;
mod guests;
mod parties;
mod sessions;
#[cfg(test)]
mod tests;
pub(crate) mod tickets;

use std::collections::HashMap;

use shared::protocol::{
    ByeReason, ClientMsg, ErrorCode, Priority, ResidentDetails, Role, ServerMsg, TicketView, TransferContext,
};
use shared::validate::Token;
use uuid::Uuid;

use super::store::Write;
use crate::dispatch::{self, Action, Dispatcher};

/// Who is on a connection, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartyInfo {
    pub id: Uuid,
    pub role: Role,
    pub point_id: Option<Uuid>,
    pub name: String,
}

/// The board goes out at most this often (ms).
pub const BOARD_INTERVAL_MS: i64 = 1000;

/// A line's residents are told their moved positions at most this often (ms); the first move
/// after a quiet interval is told at once.
pub const POSITIONS_INTERVAL_MS: i64 = 1000;

/// Settings of the core (no I/O handles).
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub ring_timeout_ms: i64,
    /// A center's tickets wait this long for its own operators (0 = no center preference).
    pub overflow_after_ms: i64,
    pub resume_window_ms: i64,
    /// Open tickets one terminal may hold at once (1: a kiosk serves one resident at a time).
    pub max_open_tickets_per_terminal: usize,
    /// STUN/TURN servers; TURN credentials are derived per session (no I/O).
    pub ice: crate::ice::IceConfig,
}

/// What the driver looked up for a message before it entered the core.
#[derive(Debug, Clone, Default)]
pub enum Lookup {
    #[default]
    None,
    /// `request_scan` with a slot: the slot's name, `None` when the item has no such slot.
    SlotName(Result<Option<String>, Refusal>),
    /// `transfer` to an operator: whether the account is an active operator.
    OperatorExists(Result<bool, Refusal>),
    /// `rate`: the rectification deadline for a negative rating.
    RectificationDue(Option<i64>),
}

/// Inputs of the core.
#[derive(Debug, Clone)]
pub enum Input {
    /// A party authenticated on a new connection (`skills` and the acceptance `center`
    /// looked up for operators).
    Connect {
        party: PartyInfo,
        conn: Uuid,
        skills: Vec<Uuid>,
        center: Option<Uuid>,
    },
    Message {
        party: Uuid,
        conn: Uuid,
        msg: ClientMsg,
        lookup: Lookup,
    },
    /// The driver stored the ticket asked for by [`Output::CreateTicket`] (durable now).
    TicketCreated {
        terminal: Uuid,
        request_id: Uuid,
        view: TicketView,
        /// The resident agreed that the call is recorded.
        recording: bool,
        /// The acceptance center of the ticket's point (by its street).
        center: Option<Uuid>,
        /// The slot `(start, end)` of the appointment checked in with it.
        appointment: Option<(i64, i64)>,
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
    /// Push a message to parties that are connected.
    Notify {
        parties: Vec<Uuid>,
        msg: Box<ServerMsg>,
    },
    /// Time passed: ring timeouts, reconnect windows, the throttled board.
    Tick,
}

/// Effects the driver carries out, in order. Writes of one batch are committed before any
/// message of that batch is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The reply to [`Input::Connect`].
    Welcome {
        conn: Uuid,
        msg: ServerMsg,
    },
    Send {
        to: Uuid,
        msg: ServerMsg,
    },
    SendMany {
        to: Vec<Uuid>,
        msg: ServerMsg,
    },
    /// Bring the party's connection down with `bye`.
    Close {
        party: Uuid,
        reason: ByeReason,
    },
    /// Persist a change; a failure is reported to `tell` (and logged).
    Persist {
        write: Write,
        tell: Vec<Uuid>,
    },
    /// Check and store a new ticket (item, point, staff token, number), then feed back
    /// [`Input::TicketCreated`]; a refusal goes to the terminal as an error of `take_ticket`.
    CreateTicket(TicketRequest),
}

/// A `take_ticket` the core found admissible; the driver checks the rest against the database.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRequest {
    pub terminal: Uuid,
    pub point: Uuid,
    pub item_id: Uuid,
    pub priority: Priority,
    pub resident: Option<ResidentDetails>,
    pub request_id: Uuid,
    pub staff_token: Option<Token>,
    pub recording_consent: Option<bool>,
    /// The appointment checked in with this ticket (预约签到).
    pub appointment_id: Option<Uuid>,
}

/// An error reply to the sender of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub ErrorCode, pub String);

pub fn refuse(code: ErrorCode, msg: impl Into<String>) -> Refusal {
    Refusal(code, msg.into())
}

#[derive(Debug)]
pub(crate) struct PartyRt {
    pub(crate) info: PartyInfo,
    pub(crate) conn: Option<Uuid>,
    pub(crate) skills: Vec<Uuid>,
    /// An operator's acceptance center.
    pub(crate) center: Option<Uuid>,
    /// Operator has been registered with the dispatcher.
    pub(crate) dispatched: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct TicketRt {
    pub(crate) view: TicketView,
    pub(crate) terminal: Uuid,
    /// The `take_ticket` request it answered (`None` when recovered after a restart).
    pub(crate) request_id: Option<Uuid>,
    pub(crate) created_at: i64,
    /// When it last started waiting (taken or transferred): the wait of its next session.
    pub(crate) queued_since: i64,
    pub(crate) session: Option<Uuid>,
    /// The ticket's previous session, when transferred.
    pub(crate) previous_session: Option<Uuid>,
    pub(crate) transfer: Option<TransferContext>,
    /// The resident agreed that the call is recorded.
    pub(crate) recording: bool,
    /// Checked in with an appointment that its first session marks served.
    pub(crate) appointment: bool,
    /// The last `(position, estimated wait)` sent, so unchanged positions are not re-sent.
    pub(crate) last_position: Option<(u32, u32, u32, Option<shared::protocol::WaitRange>)>,
}

/// The state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum SessState {
    Active,
    Held,
    /// Call over; waiting for the operator's wrap-up.
    Ended,
    /// Wrapped up; waiting for the resident's rating.
    Closed,
}

impl SessState {
    pub fn is_live(self) -> bool {
        matches!(self, SessState::Active | SessState::Held)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SessionRt {
    pub(crate) ticket: Uuid,
    pub(crate) operator: Uuid,
    pub(crate) operator_name: String,
    pub(crate) terminal: Uuid,
    pub(crate) state: SessState,
    /// Supervisors and specialists taking part, in the order they joined.
    pub(crate) guests: Vec<Guest>,
    /// Operators invited as specialists who have not answered yet.
    pub(crate) invited: Vec<Uuid>,
}

/// A participant beyond the two parties: a supervisor (with a mode) or a specialist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Guest {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) role: shared::protocol::ParticipantRole,
    /// A supervisor's mode (`None` for a specialist).
    pub(crate) mode: Option<shared::protocol::SuperviseMode>,
}

impl SessionRt {
    /// The two parties of the call: the operator and the terminal.
    pub(crate) fn parties(&self) -> [Uuid; 2] {
        [self.operator, self.terminal]
    }

    /// Everyone taking part: the two parties, then the guests.
    pub(crate) fn participants(&self) -> Vec<Uuid> {
        let mut v = self.parties().to_vec();
        v.extend(self.guests.iter().map(|x| x.id));
        v
    }
}

/// A live session as the REST handlers see it (the switchboard's answer, not the database's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    pub session_id: Uuid,
    pub ticket_id: Uuid,
    pub operator: Uuid,
    pub terminal: Uuid,
    pub state: SessState,
    pub operator_connected: bool,
    pub terminal_connected: bool,
}

/// The switchboard's state machine.
pub struct Core {
    pub(crate) settings: CoreSettings,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) parties: HashMap<Uuid, PartyRt>,
    pub(crate) tickets: HashMap<Uuid, TicketRt>,
    /// (terminal, request_id) → ticket, for idempotent take_ticket.
    pub(crate) requests: HashMap<(Uuid, Uuid), Uuid>,
    pub(crate) sessions: HashMap<Uuid, SessionRt>,
    /// Disconnected parties and the end of their reconnect window.
    pub(crate) grace: HashMap<Uuid, i64>,
    pub(crate) line_names: HashMap<Uuid, String>,
    /// Display names of every operator seen, so the board names them even while offline.
    pub(crate) operator_names: HashMap<Uuid, String>,
    pub(crate) board_dirty: bool,
    /// When the board was last sent: it goes out at most once per second.
    pub(crate) board_sent_at: i64,
    /// Whether each line was staffed when its residents were last told: an operator's state
    /// change re-sends a line's positions only when that flipped.
    pub(crate) told_staffed: HashMap<Uuid, bool>,
    /// Lines whose queue moved since their residents were last told, and when they are told
    /// ([`Core::queue_moved`]).
    pub(crate) positions_due: HashMap<Uuid, i64>,
    /// When each line's residents were last told their positions.
    pub(crate) positions_told_at: HashMap<Uuid, i64>,
    /// Tickets a specialist is taking over: the dispatcher's offer to them is accepted at once.
    pub(crate) taking_over: HashMap<Uuid, Uuid>,
    pub(crate) out: Vec<Output>,
}

impl Core {
    pub fn new(settings: CoreSettings, line_names: HashMap<Uuid, String>) -> Self {
        let config = dispatch::Config {
            ring_timeout_ms: settings.ring_timeout_ms,
            overflow_after_ms: settings.overflow_after_ms,
            ..Default::default()
        };
        Self {
            settings,
            dispatcher: Dispatcher::new(config),
            parties: HashMap::new(),
            tickets: HashMap::new(),
            requests: HashMap::new(),
            sessions: HashMap::new(),
            grace: HashMap::new(),
            line_names,
            operator_names: HashMap::new(),
            board_dirty: false,
            told_staffed: HashMap::new(),
            positions_due: HashMap::new(),
            positions_told_at: HashMap::new(),
            taking_over: HashMap::new(),
            board_sent_at: 0,
            out: Vec::new(),
        }
    }

    /// Feeds one input; returns what to do, in order. The board (throttled) and the lines'
    /// moved positions go out on [`Input::Tick`], which the driver feeds as soon as
    /// [`Core::next_deadline`] is due: never inside the turn of the message that moved them
    /// (an `accept` is answered without building either).
    pub fn handle(&mut self, input: Input, now: i64) -> Vec<Output> {
        match input {
            Input::Connect { party, conn, skills, center } => self.connect(party, conn, skills, center, now),
            Input::Message { party, conn, msg, lookup } => {
                let kind = msg.kind();
                if self.parties.get(&party).and_then(|p| p.conn) == Some(conn)
                    && let Err(Refusal(code, message)) = self.message(party, msg, lookup, now)
                {
                    self.send(party, ServerMsg::error(code, message, Some(kind)));
                }
            }
            Input::TicketCreated { terminal, request_id, view, recording, center, appointment } => {
                self.ticket_created(terminal, request_id, view, recording, center, appointment, now)
            }
            Input::Disconnect { party, conn } => self.disconnect(party, conn, now),
            Input::Kick { party, reason } => {
                self.out.push(Output::Close { party, reason });
                if let Some(p) = self.parties.get_mut(&party) {
                    p.conn = None;
                }
                self.expire_party(party, now);
            }
            Input::Notify { parties, msg } => {
                self.out.push(Output::SendMany { to: parties, msg: *msg });
            }
            Input::Tick => {
                self.tick(now);
                self.flush_board(now);
            }
        }
        std::mem::take(&mut self.out)
    }

    /// The earliest time the core wants a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<i64> {
        let d = self.dispatcher.next_deadline().map(|m| m.0);
        let g = self.grace.values().min().copied();
        let b = self.board_dirty.then_some(self.board_sent_at + BOARD_INTERVAL_MS);
        let p = self.positions_deadline();
        [d, g, b, p].into_iter().flatten().min()
    }

    // ---- queries (the driver's lookups and the REST handlers' view of live state) -----------

    /// The service item of a session's ticket, if `party` is one of the session's parties.
    pub fn session_item(&self, session: Uuid, party: Uuid) -> Option<Uuid> {
        let s = self.sessions.get(&session).filter(|s| s.parties().contains(&party))?;
        self.tickets.get(&s.ticket).map(|t| t.view.item_id)
    }

    /// A session the switchboard holds (live, waiting for wrap-up or for a rating).
    pub fn session(&self, session: Uuid) -> Option<SessionInfo> {
        let s = self.sessions.get(&session)?;
        Some(SessionInfo {
            session_id: session,
            ticket_id: s.ticket,
            operator: s.operator,
            terminal: s.terminal,
            state: s.state,
            operator_connected: self.is_connected(s.operator),
            terminal_connected: self.is_connected(s.terminal),
        })
    }

    /// Sessions in which `party` takes part.
    pub fn sessions_of(&self, party: Uuid) -> Vec<SessionInfo> {
        let mut ids: Vec<Uuid> =
            self.sessions.iter().filter(|(_, s)| s.parties().contains(&party)).map(|(id, _)| *id).collect();
        ids.sort();
        ids.into_iter().filter_map(|id| self.session(id)).collect()
    }

    pub fn is_connected(&self, party: Uuid) -> bool {
        self.parties.get(&party).is_some_and(|p| p.conn.is_some())
    }

    // ---- effects ----------------------------------------------------------------------------

    pub(crate) fn send(&mut self, to: Uuid, msg: ServerMsg) {
        self.out.push(Output::Send { to, msg });
    }

    pub(crate) fn send_many(&mut self, to: Vec<Uuid>, msg: ServerMsg) {
        self.out.push(Output::SendMany { to, msg });
    }

    pub(crate) fn persist(&mut self, write: Write, tell: Vec<Uuid>) {
        self.out.push(Output::Persist { write, tell });
    }

    pub(crate) fn log_event(
        &mut self,
        ticket: Uuid,
        session: Option<Uuid>,
        kind: &'static str,
        detail: serde_json::Value,
        now: i64,
    ) {
        self.persist(Write::Event { ticket, session, kind, detail, at: now }, Vec::new());
    }

    fn tick(&mut self, now: i64) {
        let actions = self.dispatcher.tick(dispatch::Millis(now));
        self.apply(Ok(actions), now);
        let mut expired: Vec<Uuid> = self.grace.iter().filter(|(_, d)| **d <= now).map(|(p, _)| *p).collect();
        expired.sort();
        for p in expired {
            tracing::info!("reconnect window closed");
            self.expire_party(p, now);
        }
        self.refresh_due_positions(now);
    }

    // ---- messages ---------------------------------------------------------------------------

    pub(crate) fn party(&self, id: Uuid) -> Result<&PartyRt, Refusal> {
        self.parties.get(&id).ok_or_else(|| refuse(ErrorCode::Unauthenticated, "未连接 (not connected)"))
    }

    fn require(&self, id: Uuid, role: Role) -> Result<(), Refusal> {
        if self.party(id)?.info.role == role {
            Ok(())
        } else {
            Err(refuse(ErrorCode::Forbidden, "无权执行此操作 (forbidden)"))
        }
    }

    /// The session, if `party` is one of its parties.
    pub(crate) fn session_of(&self, session: Uuid, party: Uuid) -> Result<SessionRt, Refusal> {
        match self.sessions.get(&session) {
            Some(s) if s.parties().contains(&party) => Ok(s.clone()),
            _ => Err(refuse(ErrorCode::Forbidden, "您不在该通话中 (not a party of this session)")),
        }
    }

    fn message(&mut self, from: Uuid, msg: ClientMsg, lookup: Lookup, now: i64) -> Result<(), Refusal> {
        use dispatch::{Millis, OperatorId, TicketId};
        match msg {
            // A client authenticated in the handshake may still send its `hello` first.
            ClientMsg::Hello { .. } => Ok(()),
            // The connection answers `renew` itself; it never reaches the switchboard.
            ClientMsg::Renew { .. } => Ok(()),
            ClientMsg::Ping { seq } => {
                self.send(from, ServerMsg::Pong { seq });
                Ok(())
            }
            ClientMsg::TakeTicket {
                item_id,
                priority,
                resident,
                request_id,
                staff_token,
                recording_consent,
                appointment_id,
            } => {
                self.require(from, Role::Terminal)?;
                self.take_ticket(
                    TicketRequest {
                        terminal: from,
                        point: Uuid::nil(),
                        item_id,
                        priority,
                        resident,
                        request_id,
                        staff_token,
                        recording_consent,
                        appointment_id,
                    },
                    now,
                )
            }
            ClientMsg::CancelTicket { ticket_id } => {
                self.require(from, Role::Terminal)?;
                self.cancel_ticket(from, ticket_id, now)
            }
            ClientMsg::Rate { session_id, level, comment } => {
                self.require(from, Role::Terminal)?;
                let due = match lookup {
                    Lookup::RectificationDue(d) => d,
                    _ => None,
                };
                self.rate(from, session_id, level, comment.map(|c| c.as_str().to_owned()), due, now)
            }
            ClientMsg::SetAvailability { available } => {
                self.require(from, Role::Operator)?;
                self.set_availability(from, available, now)
            }
            ClientMsg::Accept { ticket_id } => {
                self.require(from, Role::Operator)?;
                let r = self.dispatcher.accept(OperatorId(from), TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now)
            }
            ClientMsg::Decline { ticket_id } => {
                self.require(from, Role::Operator)?;
                let r = self.dispatcher.decline(OperatorId(from), TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now)
            }
            ClientMsg::Pick { ticket_id } => {
                self.require(from, Role::Operator)?;
                self.ensure_dispatched(from, now);
                let r = self.dispatcher.pick(OperatorId(from), TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now)
            }
            ClientMsg::Hold { session_id } => {
                self.require(from, Role::Operator)?;
                self.hold(from, session_id, true, now)
            }
            ClientMsg::Resume { session_id } => {
                self.require(from, Role::Operator)?;
                self.hold(from, session_id, false, now)
            }
            ClientMsg::Transfer { session_id, target, note } => {
                self.require(from, Role::Operator)?;
                let exists = match lookup {
                    Lookup::OperatorExists(r) => Some(r),
                    _ => None,
                };
                self.transfer(from, session_id, target, note.map(|n| n.as_str().to_owned()), exists, now)
            }
            ClientMsg::RequestScan { session_id, slot_id, note } => {
                self.require(from, Role::Operator)?;
                let slot_name = match lookup {
                    Lookup::SlotName(r) => Some(r),
                    _ => None,
                };
                self.request_scan(
                    from,
                    session_id,
                    slot_id,
                    slot_name,
                    note.map(|n| n.as_str().to_owned()),
                    now,
                )
            }
            ClientMsg::EndCall { session_id } => {
                if self.party(from)?.info.role == Role::Supervisor {
                    self.supervisor_end(from, session_id, now)
                } else {
                    self.end_call(from, session_id, now)
                }
            }
            ClientMsg::WrapUp { session_id, outcome, notes } => {
                self.require(from, Role::Operator)?;
                self.wrap_up(from, session_id, outcome, notes.map(|n| n.as_str().to_owned()), now)
            }
            ClientMsg::Signal { session_id, signal } => self.relay(from, session_id, signal, now),
            ClientMsg::Supervise { session_id, mode } => {
                self.require(from, Role::Supervisor)?;
                self.supervise(from, session_id, mode, now)
            }
            ClientMsg::LeaveSession { session_id } => self.leave_session(from, session_id, "left", now),
            ClientMsg::Invite { session_id, target, note } => {
                self.require(from, Role::Operator)?;
                self.invite(from, session_id, target, note.map(|n| n.as_str().to_owned()), now)
            }
            ClientMsg::AnswerInvite { session_id, accept } => {
                self.require(from, Role::Operator)?;
                self.answer_invite(from, session_id, accept, now)
            }
            ClientMsg::TakeOver { session_id } => {
                self.require(from, Role::Operator)?;
                self.take_over(from, session_id, now)
            }
            ClientMsg::PeerSignal { session_id, peer, signal } => {
                self.relay_to_peer(from, session_id, peer, signal)
            }
            // A metric only: the driver records it and never feeds it here.
            ClientMsg::CallSetup { .. } => Ok(()),
        }
    }

    // ---- dispatcher actions ---------------------------------------------------------------

    /// Like [`Self::apply`], but a refusal by the dispatcher goes back to the sender.
    pub(crate) fn apply_checked(
        &mut self,
        r: Result<Vec<Action>, dispatch::DispatchError>,
        now: i64,
    ) -> Result<(), Refusal> {
        let actions = r.map_err(|e| dispatch_refusal(&e))?;
        self.apply(Ok(actions), now);
        Ok(())
    }

    pub(crate) fn apply(&mut self, r: Result<Vec<Action>, dispatch::DispatchError>, now: i64) {
        use super::wire::{op_view, ring_reason};
        let actions = match r {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "dispatcher refused");
                return;
            }
        };
        let mut refresh: Vec<Uuid> = Vec::new();
        let mut take_over = Vec::new();
        for a in actions {
            match a {
                Action::Offer { ticket, operator, .. }
                    if self.taking_over.get(&ticket.0) == Some(&operator.0) =>
                {
                    // A specialist taking the call over: no ringing, the call is theirs once
                    // this batch is told (its state changes come first).
                    self.taking_over.remove(&ticket.0);
                    take_over.push((operator, ticket));
                }
                Action::Offer { ticket, operator, expires_at, .. } => {
                    let Some(t) = self.tickets.get(&ticket.0) else { continue };
                    let mut view = t.view.clone();
                    view.waited_secs = u32::try_from((now - t.created_at) / 1000).unwrap_or(0);
                    let msg = ServerMsg::Ringing {
                        ticket: view,
                        expires_in_ms: u64::try_from(expires_at.0 - now).unwrap_or(0),
                        transfer: t.transfer.clone(),
                    };
                    self.send(operator.0, msg);
                }
                Action::OfferWithdrawn { ticket, operator, reason } => {
                    let msg = ServerMsg::RingCancelled { ticket_id: ticket.0, reason: ring_reason(reason) };
                    self.send(operator.0, msg);
                }
                Action::OperatorStateChanged { operator, state } => {
                    self.send(operator.0, ServerMsg::OperatorStatus { state: op_view(state) });
                    self.board_dirty = true;
                    // Who serves these lines may have changed: their residents' waits with it.
                    if let Some(p) = self.parties.get(&operator.0) {
                        refresh.extend(p.skills.iter().copied());
                    }
                }
                Action::Assigned { ticket, operator, line } => {
                    self.start_session(ticket.0, operator.0, line.0, now);
                }
                Action::CallAborted { ticket, .. } => {
                    if let Some(t) = self.tickets.get_mut(&ticket.0) {
                        t.session = None;
                        t.queued_since = now;
                    }
                    self.persist(
                        Write::TicketStatus {
                            ticket: ticket.0,
                            status: "waiting",
                            close_reason: None,
                            at: now,
                        },
                        Vec::new(),
                    );
                    self.send_position(ticket.0);
                }
                Action::DirectedFallback { .. } => {}
                Action::QueueChanged { line } => {
                    self.queue_moved(line.0, now);
                    self.board_dirty = true;
                }
                Action::TicketClosed { .. } => {
                    self.board_dirty = true;
                }
            }
        }
        if !refresh.is_empty() {
            self.refresh_lines(refresh, now);
        }
        for (operator, ticket) in take_over {
            let r = self.dispatcher.accept(operator, ticket, dispatch::Millis(now));
            self.apply(r, now);
        }
    }
}

/// A refusal by the dispatcher, as the sender reads it.
pub fn dispatch_refusal(e: &dispatch::DispatchError) -> Refusal {
    use dispatch::DispatchError as E;
    match e {
        E::UnknownTicket(_) => refuse(ErrorCode::NotFound, "号票不存在或已结束 (no such ticket)"),
        E::UnknownOperator(_) => refuse(ErrorCode::Conflict, "请先设为可接听 (set yourself available first)"),
        E::NotSkilled(..) => refuse(ErrorCode::Forbidden, "您不负责该条线 (not your line)"),
        E::OfferExpired(_) => refuse(ErrorCode::Conflict, "来电已超时 (the offer expired)"),
        E::NotOffered(..) => refuse(ErrorCode::Conflict, "该来电未分配给您 (not offered to you)"),
        E::OtherCenter(_) => refuse(
            ErrorCode::Forbidden,
            "该号票属于其他受理中心，超过等待时限后方可接办 (another center's ticket before its overflow)",
        ),
        _ => refuse(ErrorCode::Conflict, "当前状态不允许此操作 (not allowed in the current state)"),
    }
}
