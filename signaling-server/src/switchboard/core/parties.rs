//! Connected parties: connecting (and catching up after a reconnect), dropping, the reconnect
//! window, kicking, operators' availability, and recovery after a restart.

use shared::protocol::{OperatorStateView, Party, Role, ServerMsg, SessionEndReason, TicketCloseReason};
use uuid::Uuid;

use std::collections::HashMap;

use super::{Core, Output, PartyInfo, PartyRt, Refusal, SessState, SessionRt, TicketRt};
use crate::dispatch::{CenterId, LineId, Millis, OperatorId, TicketId};
use crate::switchboard::store::{LiveSession, OpenTicket, Write};
use crate::switchboard::wire::{op_view, to_dispatch_priority};

impl Core {
    /// After a restart: today's open tickets wait again at their places (calls that were live
    /// are closed as interrupted and their residents go back to the head of the queue); each
    /// terminal has the usual window to reconnect. Older tickets are abandoned.
    ///
    /// `live` are calls in progress that a cluster's new authority carries on (a single node
    /// passes none): each goes on with its operator in the call, both parties with the usual
    /// window to reconnect. They are taken first, so that a waiting ticket is not offered to
    /// their operators. A live call that cannot be carried on is closed as interrupted.
    pub fn recover(
        &mut self,
        open: Vec<OpenTicket>,
        live: Vec<LiveSession>,
        today: &str,
        now: i64,
    ) -> Vec<Output> {
        let mut recovered = 0;
        let mut live: HashMap<Uuid, LiveSession> = live.into_iter().map(|s| (s.ticket, s)).collect();
        let (mut open, rest): (Vec<OpenTicket>, Vec<OpenTicket>) = open.into_iter().partition(|t| {
            t.status == "in_call" && t.service_day == today && live.contains_key(&t.view.ticket_id)
        });
        let mut carried = 0;
        for t in std::mem::take(&mut open) {
            let Some(s) = live.remove(&t.view.ticket_id) else { continue };
            if self.carry_on(&t, &s, now) {
                carried += 1;
            } else {
                self.close_interrupted(s.session, now);
                open.push(t);
            }
        }
        for s in live.into_values() {
            // Its ticket is not open (or not today's): nothing to carry on.
            self.close_interrupted(s.session, now);
        }
        if carried > 0 {
            tracing::info!(calls = carried, "carried on the calls in progress");
            self.board_dirty = true;
        }
        open.extend(rest);
        for t in open {
            let id = t.view.ticket_id;
            if t.service_day != today {
                self.persist(
                    Write::TicketStatus {
                        ticket: id,
                        status: "abandoned",
                        close_reason: Some("expired"),
                        at: now,
                    },
                    Vec::new(),
                );
                continue;
            }
            let line = t.view.line_id;
            let priority = to_dispatch_priority(t.view.priority);
            let center = t.center.map(CenterId);
            self.line_names.entry(line).or_insert_with(|| t.view.line_name.clone());
            self.tickets.insert(
                id,
                TicketRt {
                    view: t.view,
                    terminal: t.terminal,
                    request_id: None,
                    created_at: t.created_at,
                    queued_since: t.created_at,
                    session: None,
                    previous_session: None,
                    transfer: None,
                    recording: t.recording,
                    appointment: t.appointment.is_some(),
                    last_position: None,
                },
            );
            let enq = if t.status == "in_call" {
                self.persist(
                    Write::TicketStatus { ticket: id, status: "waiting", close_reason: None, at: now },
                    Vec::new(),
                );
                // An interrupted call goes ahead of the queue, like a transfer.
                self.dispatcher
                    .enqueue_in(TicketId(id), LineId(line), priority, center, Millis(now))
                    .and_then(|_| self.dispatcher.requeue(TicketId(id), LineId(line), priority, Millis(now)))
            } else if let Some((start, end)) = t.appointment {
                // A checked-in appointment keeps its standing (from its slot start).
                self.dispatcher.enqueue_appointment(
                    TicketId(id),
                    LineId(line),
                    (Millis(start), Millis(end)),
                    center,
                    Millis(now),
                )
            } else {
                self.dispatcher.enqueue_in(TicketId(id), LineId(line), priority, center, Millis(now))
            };
            if let Err(e) = enq.and_then(|_| self.dispatcher.suspend(TicketId(id), Millis(now))) {
                tracing::error!(error = %e, "cannot recover a ticket");
                self.tickets.remove(&id);
                continue;
            }
            self.grace.insert(t.terminal, now + self.settings.resume_window_ms);
            self.parties.entry(t.terminal).or_insert_with(|| PartyRt {
                info: PartyInfo { id: t.terminal, role: Role::Terminal, point_id: None, name: String::new() },
                conn: None,
                skills: Vec::new(),
                center: None,
                dispatched: false,
            });
            recovered += 1;
        }
        if recovered > 0 {
            tracing::info!(tickets = recovered, "recovered waiting tickets after a restart");
            self.board_dirty = true;
        }
        std::mem::take(&mut self.out)
    }

    /// A call in progress taken over from a previous authority: the ticket is its operator's
    /// (the dispatcher assigns it again), the session is live, both parties may reconnect.
    fn carry_on(&mut self, t: &OpenTicket, s: &LiveSession, now: i64) -> bool {
        let id = t.view.ticket_id;
        let line = t.view.line_id;
        let op = OperatorId(s.operator);
        let lines: Vec<LineId> = s.skills.iter().copied().map(LineId).collect();
        let d = &mut self.dispatcher;
        let taken = d
            .enqueue_in(
                TicketId(id),
                LineId(line),
                to_dispatch_priority(t.view.priority),
                t.center.map(CenterId),
                Millis(now),
            )
            .and_then(|_| d.operator_online_in(op, &lines, s.center.map(CenterId), Millis(now)))
            .and_then(|_| {
                d.accept(op, TicketId(id), Millis(now)).or_else(|_| d.pick(op, TicketId(id), Millis(now)))
            });
        if let Err(e) = taken {
            tracing::warn!(error = %e, "a call in progress cannot be carried on");
            let _ = d.cancel(TicketId(id), Millis(now));
            let _ = d.operator_offline(op, Millis(now));
            return false;
        }
        self.line_names.entry(line).or_insert_with(|| t.view.line_name.clone());
        self.operator_names.insert(s.operator, s.operator_name.clone());
        self.tickets.insert(
            id,
            TicketRt {
                view: t.view.clone(),
                terminal: t.terminal,
                request_id: None,
                created_at: t.created_at,
                queued_since: t.created_at,
                session: Some(s.session),
                previous_session: None,
                transfer: None,
                recording: t.recording,
                appointment: false,
                last_position: None,
            },
        );
        self.sessions.insert(
            s.session,
            SessionRt {
                ticket: id,
                operator: s.operator,
                operator_name: s.operator_name.clone(),
                terminal: t.terminal,
                state: if s.held { SessState::Held } else { SessState::Active },
                guests: Vec::new(),
                invited: Vec::new(),
            },
        );
        self.parties.insert(
            s.operator,
            PartyRt {
                info: PartyInfo {
                    id: s.operator,
                    role: Role::Operator,
                    point_id: None,
                    name: s.operator_name.clone(),
                },
                conn: None,
                skills: s.skills.clone(),
                center: s.center,
                dispatched: true,
            },
        );
        self.parties.entry(t.terminal).or_insert_with(|| PartyRt {
            info: PartyInfo { id: t.terminal, role: Role::Terminal, point_id: None, name: String::new() },
            conn: None,
            skills: Vec::new(),
            center: None,
            dispatched: false,
        });
        let until = now + self.settings.resume_window_ms;
        self.grace.insert(s.operator, until);
        self.grace.insert(t.terminal, until);
        self.log_event(id, Some(s.session), "session_carried_on", serde_json::json!({}), now);
        true
    }

    /// A call in progress that cannot go on: recorded as ended by the interruption (its ticket
    /// is re-queued as after a restart).
    fn close_interrupted(&mut self, session: Uuid, now: i64) {
        self.persist(
            Write::EndSession { session, reason: "server_restart", at: now, transfer_note: None },
            Vec::new(),
        );
        self.persist(Write::WrapUp { session, outcome: None, notes: None, at: now }, Vec::new());
    }

    pub(super) fn connect(
        &mut self,
        info: PartyInfo,
        conn: Uuid,
        skills: Vec<Uuid>,
        center: Option<Uuid>,
        now: i64,
    ) {
        let id = info.id;
        if info.role == Role::Operator {
            self.operator_names.insert(id, info.name.clone());
        }
        let resumed = self.grace.remove(&id).is_some();
        let entry = self.parties.entry(id).or_insert_with(|| PartyRt {
            info: info.clone(),
            conn: None,
            skills: Vec::new(),
            center: None,
            dispatched: false,
        });
        entry.info = info.clone();
        entry.conn = Some(conn);
        entry.skills = skills.clone();
        entry.center = center;
        let dispatched = entry.dispatched;
        if dispatched {
            let lines: Vec<LineId> = skills.iter().copied().map(LineId).collect();
            let center = center.map(CenterId);
            let r = self.dispatcher.set_skills_in(OperatorId(id), &lines, center, Millis(now));
            self.apply(r, now);
        }
        tracing::info!(role = %info.role, resumed, "party connected");
        // The welcome goes out first; the catch-up below follows it.
        let welcome = ServerMsg::Welcome {
            v: shared::protocol::PROTOCOL_VERSION,
            connection_id: conn,
            role: info.role,
            resume_token: shared::validate::Token::try_from(format!("bbs_{}", conn.simple()))
                .unwrap_or_else(|_| unreachable!("short token")),
            heartbeat_secs: shared::protocol::HEARTBEAT_SECS,
            resumed,
        };
        self.out.insert(0, Output::Welcome { conn, msg: welcome });
        // Bring the reconnecting party back up to date.
        match info.role {
            Role::Terminal => self.resume_terminal(id, now),
            Role::Operator => self.resume_operator(id, now),
            _ => {}
        }
        if is_watcher(info.role) {
            // A newcomer gets the board at once; the others see it (and the newcomer) at the
            // next throttled update: 500 operators connecting in one turn must not queue 500
            // boards for each of them.
            let board = self.board(now);
            self.send(id, board);
            self.board_dirty = true;
        }
    }

    fn resume_terminal(&mut self, terminal: Uuid, now: i64) {
        for (ticket, session) in self.tickets_of(terminal) {
            match session {
                None => {
                    let r = self.dispatcher.resume(TicketId(ticket), Millis(now));
                    self.apply(r, now);
                    self.send_position(ticket);
                }
                Some(session) => {
                    let Some(s) = self.sessions.get(&session).cloned() else { continue };
                    if s.state.is_live() {
                        self.send_session_started(session, Party::Terminal, now);
                        self.send(s.operator, ServerMsg::PeerReconnected { session_id: session });
                        self.resend_participants(session, terminal);
                    }
                }
            }
        }
    }

    fn resume_operator(&mut self, op: Uuid, now: i64) {
        // An operator outside the dispatcher (never made available, or left it when the socket
        // dropped outside a call, e.g. a page reload) is away and chooses when to take calls.
        let state = self.operator_view(op);
        self.send(op, ServerMsg::OperatorStatus { state });
        let mut live: Vec<(Uuid, SessState, Uuid)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.operator == op)
            .map(|(id, s)| (*id, s.state, s.terminal))
            .collect();
        live.sort();
        for (session, state, terminal) in live {
            if state.is_live() {
                self.send_session_started(session, Party::Operator, now);
                self.send(terminal, ServerMsg::PeerReconnected { session_id: session });
                self.resend_participants(session, op);
            }
        }
    }

    /// After a reconnect: the participant list again, when supervisors are in the call, and the
    /// supervisors told the party is back (they restart ICE towards it).
    fn resend_participants(&mut self, session: Uuid, to: Uuid) {
        let Some(s) = self.sessions.get(&session) else { return };
        if s.guests.is_empty() {
            return;
        }
        let sups: Vec<Uuid> = s.guests.iter().map(|x| x.id).collect();
        if let Some(msg) = self.participants_msg(session) {
            self.send(to, msg);
        }
        self.send_many(sups, ServerMsg::PeerReconnected { session_id: session });
    }

    /// The operator's state as they and the board see it: outside the dispatcher an operator
    /// who is connected is away, one who is not is offline.
    pub(crate) fn operator_view(&self, op: Uuid) -> OperatorStateView {
        let p = self.parties.get(&op);
        match self.dispatcher.operator_state(OperatorId(op)) {
            Some(s) if p.is_some_and(|p| p.dispatched) => op_view(s),
            _ if p.is_some_and(|p| p.conn.is_some()) => OperatorStateView::Away,
            _ => OperatorStateView::Offline,
        }
    }

    pub(super) fn disconnect(&mut self, party: Uuid, conn: Uuid, now: i64) {
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
                for (ticket, session) in self.tickets_of(party) {
                    match session {
                        None => {
                            let r = self.dispatcher.suspend(TicketId(ticket), Millis(now));
                            self.apply(r, now);
                        }
                        Some(s) => {
                            if let Some(op) = self.sessions.get(&s).map(|x| x.operator) {
                                self.send(op, ServerMsg::PeerDisconnected { session_id: s, grace_secs });
                            }
                        }
                    }
                }
                self.grace.insert(party, now + self.settings.resume_window_ms);
            }
            Role::Operator => {
                // A specialist in someone else's call leaves it.
                self.guest_gone(party, now);
                let in_call =
                    self.sessions.values().any(|s| s.operator == party && s.state != SessState::Closed);
                if in_call {
                    let mut live: Vec<(Uuid, Uuid)> = self
                        .sessions
                        .iter()
                        .filter(|(_, s)| s.operator == party && s.state.is_live())
                        .map(|(id, s)| (*id, s.terminal))
                        .collect();
                    live.sort();
                    for (id, terminal) in live {
                        self.send(terminal, ServerMsg::PeerDisconnected { session_id: id, grace_secs });
                    }
                    self.grace.insert(party, now + self.settings.resume_window_ms);
                } else {
                    self.operator_gone(party, now);
                }
                self.board_dirty = true;
            }
            _ => {
                if role == Role::Supervisor {
                    self.guest_gone(party, now);
                }
                self.parties.remove(&party);
            }
        }
    }

    /// A terminal's live tickets and their sessions, oldest first.
    pub(crate) fn tickets_of(&self, terminal: Uuid) -> Vec<(Uuid, Option<Uuid>)> {
        let mut v: Vec<(i64, Uuid, Option<Uuid>)> = self
            .tickets
            .iter()
            .filter(|(_, t)| t.terminal == terminal)
            .map(|(id, t)| (t.created_at, *id, t.session))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id, s)| (id, s)).collect()
    }

    /// An operator who is no longer reachable leaves the dispatcher.
    fn operator_gone(&mut self, op: Uuid, now: i64) {
        if let Some(p) = self.parties.get_mut(&op)
            && p.dispatched
        {
            p.dispatched = false;
            let r = self.dispatcher.operator_offline(OperatorId(op), Millis(now));
            self.apply(r, now);
        }
        self.board_dirty = true;
    }

    /// The reconnect window closed (or the party was kicked): end what it left behind.
    pub(super) fn expire_party(&mut self, party: Uuid, now: i64) {
        self.grace.remove(&party);
        let Some(role) = self.parties.get(&party).map(|p| p.info.role) else { return };
        match role {
            Role::Terminal => {
                for (ticket, session) in self.tickets_of(party) {
                    match session {
                        None => {
                            let r = self.dispatcher.cancel(TicketId(ticket), Millis(now));
                            self.apply(r, now);
                            self.close_ticket(ticket, "abandoned", TicketCloseReason::Abandoned, now);
                        }
                        Some(s) => self.end_session(s, SessionEndReason::ResidentLeft, now),
                    }
                }
                // Sessions waiting for a rating are dropped from memory; the record stays.
                self.sessions.retain(|_, s| !(s.terminal == party && s.state == SessState::Closed));
                self.parties.remove(&party);
            }
            Role::Operator => {
                let mut live: Vec<Uuid> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.operator == party && s.state.is_live())
                    .map(|(id, _)| *id)
                    .collect();
                live.sort();
                for s in live {
                    // The resident goes back to the head of the queue (CallAborted from the
                    // dispatcher below re-queues the ticket).
                    self.finish_session_record(s, SessionEndReason::ConnectionLost, now, true);
                }
                let mut ended: Vec<Uuid> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.operator == party && s.state == SessState::Ended)
                    .map(|(id, _)| *id)
                    .collect();
                ended.sort();
                for s in ended {
                    self.wrap_up_record(s, None, None, now);
                }
                self.operator_gone(party, now);
                self.parties.remove(&party);
            }
            Role::Supervisor => {
                self.guest_gone(party, now);
                self.parties.remove(&party);
            }
            _ => {
                self.parties.remove(&party);
            }
        }
    }

    pub(super) fn ensure_dispatched(&mut self, op: Uuid, now: i64) {
        let Some(p) = self.parties.get_mut(&op) else { return };
        if p.dispatched {
            return;
        }
        p.dispatched = true;
        let lines: Vec<LineId> = p.skills.iter().copied().map(LineId).collect();
        let center = p.center.map(CenterId);
        let r = self.dispatcher.operator_online_in(OperatorId(op), &lines, center, Millis(now));
        self.apply(r, now);
    }

    pub(super) fn set_availability(&mut self, op: Uuid, available: bool, now: i64) -> Result<(), Refusal> {
        let known = self.parties.get(&op).is_some_and(|p| p.dispatched);
        let r = if available {
            if !known {
                self.ensure_dispatched(op, now);
                return Ok(());
            }
            self.dispatcher.set_available(OperatorId(op), Millis(now))
        } else {
            if !known {
                self.ensure_dispatched(op, now);
            }
            self.dispatcher.set_away(OperatorId(op), Millis(now))
        };
        self.apply_checked(r, now)
    }
}

/// Roles that see the board.
pub(crate) fn is_watcher(role: Role) -> bool {
    matches!(role, Role::Operator | Role::Supervisor | Role::Admin | Role::Staff)
}
