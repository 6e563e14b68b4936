//! Calls: a session starts when the dispatcher assigns a ticket; its parties relay signaling,
//! hold and resume, ask for scans, transfer, end, wrap up, and the resident rates.

use serde_json::json;
use shared::protocol::{
    ErrorCode, Outcome, Party, RatingLevel, ServerMsg, SessionEndReason, SessionView, Signal,
    TicketCloseReason, TransferContext, TransferTarget,
};
use uuid::Uuid;

use super::{Core, Refusal, SessState, SessionRt, refuse};
use crate::dispatch::{LineId, Millis, OperatorId, TicketId};
use crate::switchboard::store::{NewSession, Write};
use crate::switchboard::wire::{end_reason_str, outcome_str, rating_str, to_dispatch_priority};

impl Core {
    pub(super) fn start_session(&mut self, ticket: Uuid, operator: Uuid, line: Uuid, now: i64) {
        let Some(t) = self.tickets.get(&ticket).cloned() else { return };
        let operator_name = self.parties.get(&operator).map(|p| p.info.name.clone()).unwrap_or_default();
        let id = crate::db::new_id();
        let new = NewSession {
            id,
            ticket,
            operator,
            terminal: t.terminal,
            line,
            started_at: now,
            wait_ms: now - t.queued_since,
            transferred_from: t.previous_session,
            appointment: t.appointment,
        };
        self.persist(Write::InsertSession(new), vec![operator, t.terminal]);
        self.sessions.insert(
            id,
            SessionRt {
                ticket,
                operator,
                operator_name,
                terminal: t.terminal,
                state: SessState::Active,
                guests: Vec::new(),
                invited: Vec::new(),
            },
        );
        if let Some(x) = self.tickets.get_mut(&ticket) {
            x.session = Some(id);
            x.transfer = None;
            x.appointment = false;
        }
        self.log_event(ticket, Some(id), "session_started", json!({ "wait_ms": now - t.queued_since }), now);
        self.send_session_started(id, Party::Operator, now);
        self.send_session_started(id, Party::Terminal, now);
        self.board_dirty = true;
    }

    pub(crate) fn send_session_started(&mut self, session: Uuid, part: Party, now: i64) {
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
            recording: t.recording,
        };
        let to = if part == Party::Operator { s.operator } else { s.terminal };
        self.send(to, ServerMsg::SessionStarted { session: view });
    }

    /// Ends a live call: both parties are told, the operator goes to wrap-up.
    pub(crate) fn end_session(&mut self, session: Uuid, reason: SessionEndReason, now: i64) {
        let Some(s) = self.sessions.get(&session).cloned() else { return };
        if !s.state.is_live() {
            return;
        }
        self.finish_session_record(session, reason, now, false);
        let r = self.dispatcher.call_ended(OperatorId(s.operator), Millis(now));
        self.apply(r, now);
    }

    /// Records the end of a session and tells both parties. With `requeue` the ticket stays
    /// alive (the operator vanished; the dispatcher re-queues it).
    pub(crate) fn finish_session_record(
        &mut self,
        session: Uuid,
        reason: SessionEndReason,
        now: i64,
        requeue: bool,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.state = SessState::Ended;
        let s = s.clone();
        let reason_str = end_reason_str(reason);
        self.persist(
            Write::EndSession { session, reason: reason_str, at: now, transfer_note: None },
            s.parties().to_vec(),
        );
        self.log_event(s.ticket, Some(session), "session_ended", json!({ "reason": reason_str }), now);
        let msg = ServerMsg::SessionEnded { session_id: session, reason };
        self.send(s.terminal, msg.clone());
        self.send(s.operator, msg.clone());
        self.drop_guests(session, msg);
        if requeue {
            self.sessions.remove(&session);
            self.persist(Write::WrapUp { session, outcome: None, notes: None, at: now }, Vec::new());
        } else {
            self.persist(
                Write::TicketStatus { ticket: s.ticket, status: "served", close_reason: None, at: now },
                Vec::new(),
            );
            if let Some(t) = self.tickets.get_mut(&s.ticket) {
                t.session = Some(session);
            }
        }
        self.board_dirty = true;
    }

    /// Wrap-up: outcome and notes stored, the operator free again, the resident asked to rate.
    pub(crate) fn wrap_up_record(
        &mut self,
        session: Uuid,
        outcome: Option<&'static str>,
        notes: Option<String>,
        now: i64,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.state = SessState::Closed;
        let s = s.clone();
        self.persist(Write::WrapUp { session, outcome, notes, at: now }, vec![s.operator]);
        self.log_event(s.ticket, Some(session), "wrapped_up", json!({ "outcome": outcome }), now);
        if self.parties.get(&s.operator).is_some_and(|p| p.dispatched) {
            let r = self.dispatcher.wrap_up_done(OperatorId(s.operator), Millis(now));
            self.apply(r, now);
        }
        if let Some(t) = self.tickets.remove(&s.ticket) {
            self.forget_request(&t);
        }
        self.send(
            s.terminal,
            ServerMsg::TicketClosed { ticket_id: s.ticket, reason: TicketCloseReason::Completed },
        );
        self.send(s.terminal, ServerMsg::RateRequest { session_id: session });
        if !self.is_connected(s.terminal) {
            self.sessions.remove(&session);
        }
        self.board_dirty = true;
    }

    pub(super) fn hold(&mut self, from: Uuid, session_id: Uuid, hold: bool, now: i64) -> Result<(), Refusal> {
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
        self.persist(Write::SessionStatus { session: session_id, status }, Vec::new());
        self.log_event(s.ticket, Some(session_id), status, json!({}), now);
        let m = if hold {
            ServerMsg::SessionHeld { session_id }
        } else {
            ServerMsg::SessionResumed { session_id }
        };
        self.send(s.terminal, m.clone());
        self.send(s.operator, m);
        Ok(())
    }

    pub(super) fn request_scan(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        slot_id: Option<Uuid>,
        slot_name: Option<Result<Option<String>, Refusal>>,
        note: Option<String>,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if from != s.operator || !s.state.is_live() {
            return Err(refuse(ErrorCode::Conflict, "通话未在进行中 (no live call)"));
        }
        let slot_name = match (slot_id, slot_name) {
            (Some(_), Some(r)) => {
                Some(r?.ok_or_else(|| refuse(ErrorCode::NotFound, "该事项没有这项材料 (no such slot)"))?)
            }
            (Some(_), None) => return Err(refuse(ErrorCode::NotFound, "该事项没有这项材料 (no such slot)")),
            (None, _) => None,
        };
        self.log_event(
            s.ticket,
            Some(session_id),
            "scan_requested",
            json!({ "slot_id": slot_id, "slot_name": slot_name }),
            now,
        );
        self.send(s.terminal, ServerMsg::ScanRequested { session_id, slot_id, slot_name, note });
        Ok(())
    }

    pub(super) fn end_call(&mut self, from: Uuid, session_id: Uuid, now: i64) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if !s.state.is_live() {
            return Err(refuse(ErrorCode::Conflict, "通话已结束 (already ended)"));
        }
        let reason =
            if from == s.operator { SessionEndReason::OperatorEnded } else { SessionEndReason::ResidentLeft };
        self.end_session(session_id, reason, now);
        Ok(())
    }

    pub(super) fn wrap_up(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        outcome: Outcome,
        notes: Option<String>,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if from != s.operator {
            return Err(refuse(ErrorCode::Forbidden, "无权执行此操作 (forbidden)"));
        }
        match s.state {
            SessState::Active | SessState::Held => {
                self.end_session(session_id, SessionEndReason::OperatorEnded, now);
            }
            SessState::Ended => {}
            SessState::Closed => {
                return Err(refuse(ErrorCode::Conflict, "已办结 (already wrapped up)"));
            }
        }
        self.wrap_up_record(session_id, Some(outcome_str(outcome)), notes, now);
        Ok(())
    }

    /// Relays signaling to the other party of the session, and only to it.
    pub(super) fn relay(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        signal: Signal,
        now: i64,
    ) -> Result<(), Refusal> {
        let Some(s) = self.sessions.get(&session_id).filter(|s| s.parties().contains(&from)) else {
            return Err(refuse(ErrorCode::Forbidden, "您不在该通话中 (not a party of this session)"));
        };
        if !s.state.is_live() {
            return Err(refuse(ErrorCode::NotFound, "通话已结束 (session ended)"));
        }
        let (to, party, ticket) = if from == s.operator {
            (s.terminal, Party::Operator, s.ticket)
        } else {
            (s.operator, Party::Terminal, s.ticket)
        };
        if let Signal::Offer { ice_restart: true, .. } = &signal {
            self.log_event(ticket, Some(session_id), "ice_restart", json!({ "by": party }), now);
        }
        self.send(to, ServerMsg::Signal { session_id, from: party, signal });
        Ok(())
    }

    pub(super) fn rate(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        level: RatingLevel,
        comment: Option<String>,
        rectification_due: Option<i64>,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if s.state != SessState::Closed {
            return Err(refuse(ErrorCode::Conflict, "通话尚未办结 (session not wrapped up yet)"));
        }
        self.sessions.remove(&session_id);
        let level = rating_str(level);
        self.persist(
            Write::Rate { session: session_id, ticket: s.ticket, level, comment, rectification_due, at: now },
            vec![from, s.operator],
        );
        self.log_event(s.ticket, Some(session_id), "rated", json!({ "level": level }), now);
        // The operator who served sees the rating in today's history at once.
        self.send_many(vec![from, s.operator], ServerMsg::RatingRecorded { session_id });
        Ok(())
    }

    pub(super) fn transfer(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        target: TransferTarget,
        note: Option<String>,
        operator_exists: Option<Result<bool, Refusal>>,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if from != s.operator || !s.state.is_live() {
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
                match operator_exists {
                    Some(Ok(true)) => {}
                    Some(Err(e)) => return Err(e),
                    _ => return Err(refuse(ErrorCode::NotFound, "受理人员不存在 (no such operator)")),
                }
                (ticket.view.line_id, None, Some(operator_id))
            }
        };
        // The old session ends as transferred; the ticket waits for its next operator.
        self.sessions.remove(&session_id);
        self.persist(
            Write::EndSession {
                session: session_id,
                reason: "transferred",
                at: now,
                transfer_note: note.clone(),
            },
            vec![from],
        );
        self.persist(
            Write::WrapUp { session: session_id, outcome: None, notes: note.clone(), at: now },
            Vec::new(),
        );
        self.persist(
            Write::TicketStatus { ticket: s.ticket, status: "waiting", close_reason: None, at: now },
            Vec::new(),
        );
        self.log_event(
            s.ticket,
            Some(session_id),
            "transferred",
            json!({ "line": target_line, "operator": to_op }),
            now,
        );
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
        self.send(s.terminal, ServerMsg::Transferring { session_id, target_line });
        let ended = ServerMsg::SessionEnded { session_id, reason: SessionEndReason::Transferred };
        self.send(s.terminal, ended.clone());
        self.send(s.operator, ended.clone());
        let sups: Vec<Uuid> = s.guests.iter().map(|x| x.id).collect();
        if !sups.is_empty() {
            self.send_many(sups, ended);
        }
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
        self.apply_checked(r, now)?;
        self.send_position(s.ticket);
        self.board_dirty = true;
        Ok(())
    }
}
