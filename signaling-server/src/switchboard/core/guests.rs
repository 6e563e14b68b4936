//! Participants beyond the two parties of a call. A supervisor joins a live call to monitor it
//! (sees and hears both sides, nobody sees or hears them), whisper (only the operator hears
//! them) or barge in (everyone does), changes mode, leaves, or ends the call. The operator
//! invites another operator, by account or any free operator of a line, as a specialist (三方
//! 通话): seen and heard by everyone until they leave. Each pair of participants other than the
//! terminal and the operator is its own peer connection, signaled with `peer_signal` naming the
//! peer; the guest offers. Every join, mode change, invitation, answer, leave and end is audited
//! in the same transaction as the turn's other changes, and the operator is always told who
//! takes part (`participants`).

use serde_json::json;
use shared::protocol::{
    ErrorCode, OperatorStateView, ParticipantRole, ParticipantView, Role, ServerMsg, SessionEndReason,
    Signal, SuperviseMode, TransferTarget,
};
use uuid::Uuid;

use super::{Core, Guest, Refusal, refuse};
use crate::dispatch::{Millis, OperatorId};
use crate::switchboard::store::Write;

/// Supervisors in one call at most.
pub const MAX_SUPERVISORS: usize = 2;
/// Specialists in one call at most (with invitations not yet answered).
pub const MAX_SPECIALISTS: usize = 2;

impl Core {
    fn audit(
        &mut self,
        actor: Uuid,
        action: &'static str,
        session: Uuid,
        detail: serde_json::Value,
        tell: Vec<Uuid>,
    ) {
        let actor_name = self.parties.get(&actor).map(|p| p.info.name.clone()).unwrap_or_default();
        self.persist(Write::Audit { actor, actor_name, action, session, detail }, tell);
    }

    pub(super) fn supervise(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        mode: SuperviseMode,
        now: i64,
    ) -> Result<(), Refusal> {
        let name = self.party(from)?.info.name.clone();
        let s = self
            .sessions
            .get_mut(&session_id)
            .filter(|s| s.state.is_live())
            .ok_or_else(|| refuse(ErrorCode::NotFound, "通话不存在或已结束 (no such live call)"))?;
        let previous = s.guests.iter().find(|x| x.id == from).and_then(|x| x.mode);
        if previous == Some(mode) {
            // Nothing changes; tell the supervisor again (a reloaded page asks once more).
        } else if let Some(x) = s.guests.iter_mut().find(|x| x.id == from) {
            x.mode = Some(mode);
        } else {
            if s.guests.iter().filter(|x| x.role == ParticipantRole::Supervisor).count() >= MAX_SUPERVISORS {
                return Err(refuse(
                    ErrorCode::Conflict,
                    "该通话已有主管在监听 (the call already has supervisors)",
                ));
            }
            s.guests.push(Guest { id: from, name, role: ParticipantRole::Supervisor, mode: Some(mode) });
        }
        let ticket = s.ticket;
        if previous != Some(mode) {
            let action = if previous.is_some() { "session.supervise_mode" } else { "session.supervise" };
            let detail = json!({ "mode": mode.as_str(), "previous": previous.map(SuperviseMode::as_str) });
            self.audit(from, action, session_id, detail, vec![from]);
            self.log_event(ticket, Some(session_id), "supervised", json!({ "mode": mode.as_str() }), now);
        }
        let Some(t) = self.tickets.get(&ticket) else {
            return Err(refuse(ErrorCode::NotFound, "号票不存在 (no such ticket)"));
        };
        let mut view = t.view.clone();
        view.waited_secs = u32::try_from((now - t.created_at).max(0) / 1000).unwrap_or(0);
        let ice_servers = self.settings.ice.servers_for(session_id, now / 1000);
        self.send(from, ServerMsg::Supervising { session_id, ticket: view, mode, ice_servers });
        self.send_participants(session_id);
        self.board_dirty = true;
        Ok(())
    }

    /// The operator of a live call invites another operator as a specialist: by account, or
    /// the first free operator (available or away, connected, not in a call) of a line.
    pub(super) fn invite(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        target: TransferTarget,
        note: Option<String>,
        now: i64,
    ) -> Result<(), Refusal> {
        let s = self.session_of(session_id, from)?;
        if from != s.operator || !s.state.is_live() {
            return Err(refuse(ErrorCode::Conflict, "当前不能邀请 (no live call of yours)"));
        }
        let free = |core: &Core, op: Uuid| {
            core.parties.get(&op).is_some_and(|p| p.info.role == Role::Operator && p.conn.is_some())
                && matches!(core.operator_view(op), OperatorStateView::Available | OperatorStateView::Away)
                && !core.sessions.values().any(|x| x.state.is_live() && x.participants().contains(&op))
        };
        let invitee = match target {
            TransferTarget::Operator { operator_id } => {
                if operator_id == from {
                    return Err(refuse(ErrorCode::Conflict, "不能邀请自己 (cannot invite yourself)"));
                }
                if !free(self, operator_id) {
                    return Err(refuse(
                        ErrorCode::Unavailable,
                        "该受理员不在线或正忙 (that operator is offline or busy)",
                    ));
                }
                operator_id
            }
            TransferTarget::Line { line_id } => {
                if !self.line_names.contains_key(&line_id) {
                    return Err(refuse(ErrorCode::NotFound, "条线不存在 (no such line)"));
                }
                let mut candidates: Vec<Uuid> = self
                    .parties
                    .values()
                    .filter(|p| p.info.id != from && p.skills.contains(&line_id))
                    .map(|p| p.info.id)
                    .filter(|op| free(self, *op))
                    .collect();
                candidates.sort();
                // Available operators first.
                candidates.sort_by_key(|op| self.operator_view(*op) != OperatorStateView::Available);
                candidates.into_iter().next().ok_or_else(|| {
                    refuse(ErrorCode::Unavailable, "该条线暂无空闲受理员 (nobody of that line is free)")
                })?
            }
        };
        let s =
            self.sessions.get_mut(&session_id).ok_or_else(|| refuse(ErrorCode::NotFound, "通话不存在"))?;
        if s.invited.contains(&invitee) || s.guests.iter().any(|g| g.id == invitee) {
            return Err(refuse(ErrorCode::Conflict, "已邀请该受理员 (already invited)"));
        }
        let specialists = s.guests.iter().filter(|g| g.role == ParticipantRole::Specialist).count();
        if specialists + s.invited.len() >= MAX_SPECIALISTS {
            return Err(refuse(ErrorCode::Conflict, "参与人数已满 (the call is full)"));
        }
        s.invited.push(invitee);
        let (ticket, operator_name) = (s.ticket, s.operator_name.clone());
        self.audit(from, "session.invite", session_id, json!({ "invitee": invitee }), vec![from]);
        self.log_event(ticket, Some(session_id), "invited", json!({ "invitee": invitee }), now);
        let Some(t) = self.tickets.get(&ticket) else { return Ok(()) };
        let mut view = t.view.clone();
        view.waited_secs = u32::try_from((now - t.created_at).max(0) / 1000).unwrap_or(0);
        let ice_servers = self.settings.ice.servers_for(session_id, now / 1000);
        self.send(
            invitee,
            ServerMsg::Invited { session_id, ticket: view, from_operator: operator_name, note, ice_servers },
        );
        Ok(())
    }

    /// The invited operator answers. Accepting joins the call as a specialist and sets them
    /// away (暂离) so no other call rings meanwhile.
    pub(super) fn answer_invite(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        accept: bool,
        now: i64,
    ) -> Result<(), Refusal> {
        let name = self.party(from)?.info.name.clone();
        let s = self
            .sessions
            .get_mut(&session_id)
            .filter(|s| s.invited.contains(&from))
            .ok_or_else(|| refuse(ErrorCode::NotFound, "邀请不存在或已失效 (no such invitation)"))?;
        s.invited.retain(|x| *x != from);
        let (operator, ticket, live) = (s.operator, s.ticket, s.state.is_live());
        if !accept || !live {
            self.audit(from, "session.invite_declined", session_id, json!({}), Vec::new());
            self.send(operator, ServerMsg::InviteDeclined { session_id, operator_id: from });
            return if live {
                Ok(())
            } else {
                Err(refuse(ErrorCode::NotFound, "通话已结束 (the call ended)"))
            };
        }
        if matches!(self.operator_view(from), OperatorStateView::Ringing | OperatorStateView::InCall) {
            self.send(operator, ServerMsg::InviteDeclined { session_id, operator_id: from });
            return Err(refuse(ErrorCode::Conflict, "您正忙，不能加入 (you are busy)"));
        }
        if self.parties.get(&from).is_some_and(|p| p.dispatched)
            && self.operator_view(from) == OperatorStateView::Available
        {
            let r = self.dispatcher.set_away(OperatorId(from), Millis(now));
            self.apply(r, now);
        }
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.guests.push(Guest { id: from, name, role: ParticipantRole::Specialist, mode: None });
        }
        self.audit(from, "session.specialist_join", session_id, json!({}), vec![from]);
        self.log_event(ticket, Some(session_id), "specialist_joined", json!({ "specialist": from }), now);
        self.send_participants(session_id);
        self.board_dirty = true;
        Ok(())
    }

    /// A specialist takes the call over: it is transferred to them at once (no ringing); the
    /// operator leaves it as after a transfer and the resident's terminal gets a new session
    /// with the specialist, who is made available for it.
    pub(super) fn take_over(&mut self, from: Uuid, session_id: Uuid, now: i64) -> Result<(), Refusal> {
        let s = self
            .sessions
            .get(&session_id)
            .filter(|s| s.state.is_live())
            .ok_or_else(|| refuse(ErrorCode::NotFound, "通话不存在或已结束 (no such live call)"))?;
        if !s.guests.iter().any(|g| g.id == from && g.role == ParticipantRole::Specialist) {
            return Err(refuse(
                ErrorCode::Forbidden,
                "只有协办人员可以接手通话 (only a specialist in the call)",
            ));
        }
        let (operator, ticket) = (s.operator, s.ticket);
        self.audit(from, "session.take_over", session_id, json!({ "from_operator": operator }), vec![from]);
        self.taking_over.insert(ticket, from);
        // The specialist comes on (away while helping, or unknown to the dispatcher) available
        // with no line for a moment, so that the ticket directed to them below is offered to
        // them first — an away target would send it back to the line — and nothing else is.
        let op = OperatorId(from);
        let known = self.parties.get(&from).is_some_and(|p| p.dispatched);
        let r = if known {
            self.dispatcher.set_skills(op, &[], Millis(now)).and_then(|mut a| {
                a.extend(self.dispatcher.set_available(op, Millis(now))?);
                Ok(a)
            })
        } else {
            if let Some(p) = self.parties.get_mut(&from) {
                p.dispatched = true;
            }
            self.dispatcher.operator_online(op, &[], Millis(now))
        };
        let lines: Vec<crate::dispatch::LineId> = self
            .parties
            .get(&from)
            .map(|p| p.skills.iter().copied().map(crate::dispatch::LineId).collect())
            .unwrap_or_default();
        let restore = |core: &mut Core| {
            let r = core.dispatcher.set_skills(op, &lines, Millis(now));
            core.apply(r, now);
        };
        if let Err(e) = r {
            self.taking_over.remove(&ticket);
            restore(self);
            tracing::debug!(error = %e, "take-over refused by the dispatcher");
            return Err(refuse(ErrorCode::Conflict, "您正忙，不能接手 (you are busy)"));
        }
        self.apply(r, now);
        let target = TransferTarget::Operator { operator_id: from };
        let note = Some("协办人员接手通话 (taken over by the specialist)".to_owned());
        let done = self.transfer(operator, session_id, target, note, Some(Ok(true)), now);
        restore(self);
        if self.taking_over.remove(&ticket).is_some() {
            tracing::warn!("a take-over was not assigned at once; the ticket waits for the specialist");
        }
        done?;
        Ok(())
    }

    /// A guest leaves a call (`why` goes to the audit log: `left` or `disconnected`).
    pub(crate) fn leave_session(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        why: &'static str,
        _now: i64,
    ) -> Result<(), Refusal> {
        let s = self
            .sessions
            .get_mut(&session_id)
            .ok_or_else(|| refuse(ErrorCode::NotFound, "通话不存在或已结束 (no such call)"))?;
        let Some(i) = s.guests.iter().position(|x| x.id == from) else {
            return Err(refuse(ErrorCode::Conflict, "您未在该通话中 (not in this call)"));
        };
        let gone = s.guests.remove(i);
        let action = if gone.role == ParticipantRole::Specialist {
            "session.specialist_leave"
        } else {
            "session.supervise_leave"
        };
        let detail = json!({ "mode": gone.mode.map(SuperviseMode::as_str), "why": why });
        self.audit(from, action, session_id, detail, Vec::new());
        self.send_participants(session_id);
        // The one who left gets the list too (without them), so its page closes the call.
        if self.is_connected(from)
            && let Some(msg) = self.participants_msg(session_id)
        {
            self.send(from, msg);
        }
        self.board_dirty = true;
        Ok(())
    }

    /// A supervisor ends the call (`supervisor_ended`); the operator goes to wrap-up as after
    /// `end_call`.
    pub(super) fn supervisor_end(&mut self, from: Uuid, session_id: Uuid, now: i64) -> Result<(), Refusal> {
        let s = self
            .sessions
            .get(&session_id)
            .ok_or_else(|| refuse(ErrorCode::Forbidden, "您不在该通话中 (not a party of this session)"))?;
        let Some(me) =
            s.guests.iter().find(|x| x.id == from && x.role == ParticipantRole::Supervisor).cloned()
        else {
            return Err(refuse(ErrorCode::Forbidden, "请先监听该通话 (supervise the call first)"));
        };
        if !s.state.is_live() {
            return Err(refuse(ErrorCode::Conflict, "通话已结束 (already ended)"));
        }
        let detail = json!({ "mode": me.mode.map(SuperviseMode::as_str) });
        self.audit(from, "session.supervisor_end", session_id, detail, vec![from]);
        self.end_session(session_id, SessionEndReason::SupervisorEnded, now);
        Ok(())
    }

    /// Relays signaling between two participants of a live call, one of whom is a guest
    /// (the terminal and the operator signal each other with `signal`).
    pub(super) fn relay_to_peer(
        &mut self,
        from: Uuid,
        session_id: Uuid,
        peer: Uuid,
        signal: Signal,
    ) -> Result<(), Refusal> {
        let Some(s) = self.sessions.get(&session_id).filter(|s| s.participants().contains(&from)) else {
            return Err(refuse(ErrorCode::Forbidden, "您不在该通话中 (not a party of this session)"));
        };
        if !s.state.is_live() {
            return Err(refuse(ErrorCode::NotFound, "通话已结束 (session ended)"));
        }
        let guest = |id: Uuid| s.guests.iter().any(|x| x.id == id);
        if peer == from || !s.participants().contains(&peer) || !(guest(from) || guest(peer)) {
            return Err(refuse(ErrorCode::NotFound, "对方不在该通话中 (no such participant)"));
        }
        self.send(peer, ServerMsg::PeerSignal { session_id, peer: from, signal });
        Ok(())
    }

    /// Who takes part in the session now, for every participant.
    pub(crate) fn participants_msg(&self, session_id: Uuid) -> Option<ServerMsg> {
        let s = self.sessions.get(&session_id)?;
        let mut participants = vec![
            ParticipantView {
                participant_id: s.terminal,
                role: ParticipantRole::Terminal,
                name: self.tickets.get(&s.ticket).map(|t| t.view.point_name.clone()).unwrap_or_default(),
                mode: None,
            },
            ParticipantView {
                participant_id: s.operator,
                role: ParticipantRole::Operator,
                name: s.operator_name.clone(),
                mode: None,
            },
        ];
        participants.extend(s.guests.iter().map(|x| ParticipantView {
            participant_id: x.id,
            role: x.role,
            name: x.name.clone(),
            mode: x.mode,
        }));
        Some(ServerMsg::Participants { session_id, participants })
    }

    /// Sends the participant list to everyone in the call.
    pub(crate) fn send_participants(&mut self, session_id: Uuid) {
        let Some(s) = self.sessions.get(&session_id) else { return };
        let to = s.participants();
        if let Some(msg) = self.participants_msg(session_id) {
            self.send_many(to, msg);
        }
    }

    /// The call is over for its guests too: they get `msg` (`session_ended`) and leave it;
    /// open invitations lapse.
    pub(crate) fn drop_guests(&mut self, session_id: Uuid, msg: ServerMsg) {
        let Some(s) = self.sessions.get_mut(&session_id) else { return };
        let gone: Vec<Uuid> = s.guests.drain(..).map(|x| x.id).collect();
        s.invited.clear();
        if !gone.is_empty() {
            self.send_many(gone, msg);
        }
    }

    /// A guest's connection dropped: they leave every call they were in as a guest.
    pub(crate) fn guest_gone(&mut self, from: Uuid, now: i64) {
        let mut calls: Vec<Uuid> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.guests.iter().any(|x| x.id == from))
            .map(|(id, _)| *id)
            .collect();
        calls.sort();
        for c in calls {
            let _ = self.leave_session(from, c, "disconnected", now);
        }
    }
}
