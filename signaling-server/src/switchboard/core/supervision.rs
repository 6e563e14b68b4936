//! Sessions with more than two parties: a supervisor joins a live call to monitor it (sees and
//! hears both sides, nobody sees or hears them), whisper (only the operator hears them) or barge
//! in (everyone does), changes mode, leaves, or ends the call. Each pair of participants other
//! than the terminal and the operator is its own peer connection, signaled with `peer_signal`
//! naming the peer; the supervisor offers. Every join, mode change, leave and end is audited in
//! the same transaction as the turn's other changes, and the operator is always told that a
//! supervisor is present (`participants`).

use serde_json::json;
use shared::protocol::{
    ErrorCode, ParticipantRole, ParticipantView, ServerMsg, SessionEndReason, Signal, SuperviseMode,
};
use uuid::Uuid;

use super::{Core, Refusal, SupervisorRt, refuse};
use crate::switchboard::store::Write;

/// Supervisors in one call at most.
pub const MAX_SUPERVISORS: usize = 2;

impl Core {
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
        let previous = s.supervisors.iter().find(|x| x.id == from).map(|x| x.mode);
        if previous == Some(mode) {
            // Nothing changes; tell the supervisor again (a reloaded page asks once more).
        } else if let Some(x) = s.supervisors.iter_mut().find(|x| x.id == from) {
            x.mode = mode;
        } else {
            if s.supervisors.len() >= MAX_SUPERVISORS {
                return Err(refuse(
                    ErrorCode::Conflict,
                    "该通话已有主管在监听 (the call already has supervisors)",
                ));
            }
            s.supervisors.push(SupervisorRt { id: from, name: name.clone(), mode });
        }
        let ticket = s.ticket;
        if previous != Some(mode) {
            let action = if previous.is_some() { "session.supervise_mode" } else { "session.supervise" };
            self.persist(
                Write::Audit {
                    actor: from,
                    actor_name: name,
                    action,
                    session: session_id,
                    detail: json!({ "mode": mode.as_str(), "previous": previous.map(SuperviseMode::as_str) }),
                },
                vec![from],
            );
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

    /// A supervisor leaves a call (`why` goes to the audit log: `left` or `disconnected`).
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
        let Some(i) = s.supervisors.iter().position(|x| x.id == from) else {
            return Err(refuse(ErrorCode::Conflict, "您未在该通话中 (not in this call)"));
        };
        let gone = s.supervisors.remove(i);
        self.persist(
            Write::Audit {
                actor: from,
                actor_name: gone.name,
                action: "session.supervise_leave",
                session: session_id,
                detail: json!({ "mode": gone.mode.as_str(), "why": why }),
            },
            Vec::new(),
        );
        self.send_participants(session_id);
        // The one who left gets the list too (without them), so its page closes the call.
        if self.is_connected(from) {
            let msg = self.participants_msg(session_id);
            if let Some(msg) = msg {
                self.send(from, msg);
            }
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
        let Some(me) = s.supervisors.iter().find(|x| x.id == from).cloned() else {
            return Err(refuse(ErrorCode::Forbidden, "请先监听该通话 (supervise the call first)"));
        };
        if !s.state.is_live() {
            return Err(refuse(ErrorCode::Conflict, "通话已结束 (already ended)"));
        }
        self.persist(
            Write::Audit {
                actor: from,
                actor_name: me.name,
                action: "session.supervisor_end",
                session: session_id,
                detail: json!({ "mode": me.mode.as_str() }),
            },
            vec![from],
        );
        self.end_session(session_id, SessionEndReason::SupervisorEnded, now);
        Ok(())
    }

    /// Relays signaling between two participants of a live call, one of whom is a supervisor
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
        let supervisor = |id: Uuid| s.supervisors.iter().any(|x| x.id == id);
        if peer == from || !s.participants().contains(&peer) || !(supervisor(from) || supervisor(peer)) {
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
        participants.extend(s.supervisors.iter().map(|x| ParticipantView {
            participant_id: x.id,
            role: ParticipantRole::Supervisor,
            name: x.name.clone(),
            mode: Some(x.mode),
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

    /// The call is over for its supervisors too: they get `msg` (`session_ended`) and leave it.
    pub(crate) fn drop_supervisors(&mut self, session_id: Uuid, msg: ServerMsg) {
        let Some(s) = self.sessions.get_mut(&session_id) else { return };
        let gone: Vec<Uuid> = s.supervisors.drain(..).map(|x| x.id).collect();
        if !gone.is_empty() {
            self.send_many(gone, msg);
        }
    }

    /// A supervisor's connection dropped: they leave every call they were in.
    pub(crate) fn supervisor_gone(&mut self, from: Uuid, now: i64) {
        let mut calls: Vec<Uuid> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.supervisors.iter().any(|x| x.id == from))
            .map(|(id, _)| *id)
            .collect();
        calls.sort();
        for c in calls {
            let _ = self.leave_session(from, c, "disconnected", now);
        }
    }
}
