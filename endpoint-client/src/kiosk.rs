//! The kiosk's session state machine, sans-IO: fed with server messages, connection events and
//! the resident's actions, it returns [`Effect`]s for the runtime to carry out (send a message,
//! start or stop the call, forward signaling to the call). No sockets, no clocks: unit-tested.
//!
//! Screens: 空闲 (idle) → 取号中 (requesting) → 排队等候 (waiting) → 通话中 (in call) → 评价
//! (rating) → idle; plus 转接中 (transferring) and 已停用 (disabled: terminal revoked or replaced).

use serde::Serialize;
use shared::protocol::{
    ByeReason, ClientMsg, ErrorCode, ParticipantRole, ParticipantView, Priority, RatingLevel,
    ResidentDetails, ServerMsg, SessionEndReason, SessionView, Signal, TicketCloseReason, TicketView,
    WaitRange,
};
use shared::validate::{Comment, Token};
use uuid::Uuid;

/// What the screen shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Idle,
    /// `take_ticket` sent, waiting for `ticket_issued` (resent with the same `request_id` after a
    /// reconnect: the server makes it idempotent).
    Requesting {
        request_id: Uuid,
        item_id: Uuid,
        priority: Priority,
        resident: Option<ResidentDetails>,
        staff_token: Option<Token>,
        /// The resident agreed that the call is recorded.
        recording_consent: bool,
        /// The appointment (预约) checked in with this ticket.
        appointment_id: Option<Uuid>,
    },
    Waiting {
        ticket: TicketView,
        position: Option<u32>,
        estimated_wait_secs: Option<u32>,
        /// Operators serving the ticket's line now (`Some(0)`: 当前无人值守); `None` from a
        /// server that does not say.
        serving: Option<u32>,
        /// The wait as a range; `None` without a basis (nobody serving) or from an older server.
        wait: Option<WaitRange>,
    },
    InCall {
        ticket: TicketView,
        session: Box<SessionView>,
        held: bool,
        peer_away: bool,
    },
    Transferring {
        ticket: TicketView,
        session_id: Uuid,
    },
    /// The call ended; the rating screen follows `rate_request`.
    Ended {
        session_id: Uuid,
        reason: SessionEndReason,
    },
    Rating {
        session_id: Uuid,
        sent: Option<RatingLevel>,
    },
    /// Revoked or replaced: stop, show the reason, do not reconnect.
    Disabled {
        reason: ByeReason,
    },
}

impl Phase {
    /// Stable machine name (kiosk UI, status file).
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Requesting { .. } => "requesting",
            Phase::Waiting { .. } => "waiting",
            Phase::InCall { .. } => "in_call",
            Phase::Transferring { .. } => "transferring",
            Phase::Ended { .. } => "ended",
            Phase::Rating { .. } => "rating",
            Phase::Disabled { .. } => "disabled",
        }
    }

    fn ticket(&self) -> Option<&TicketView> {
        match self {
            Phase::Waiting { ticket, .. }
            | Phase::InCall { ticket, .. }
            | Phase::Transferring { ticket, .. } => Some(ticket),
            _ => None,
        }
    }

    fn session_id(&self) -> Option<Uuid> {
        match self {
            Phase::InCall { session, .. } => Some(session.session_id),
            _ => None,
        }
    }
}

/// What the call (the WebRTC side) must do.
#[derive(Debug, Clone, PartialEq)]
pub enum CallInput {
    Signal(Signal),
    /// The operator came back after a signaling drop and will restart ICE.
    PeerReconnected,
    /// `session_held` (true) / `session_resumed` (false): mute or unmute outgoing media.
    Hold(bool),
    /// Who takes part in the call now: a supervisor's offers are answered (our camera and
    /// microphone go to them), their voice plays only once they barge in.
    Participants(Vec<ParticipantView>),
    /// Signaling from a participant other than the operator (a supervisor).
    PeerSignal(Uuid, Signal),
}

/// A notice for the resident (large-type banner), Chinese.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub kind: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(ClientMsg),
    /// Build the peer connection for this session (the terminal is the polite peer).
    StartCall(Box<SessionView>),
    /// Close the peer connection of this session.
    StopCall(Uuid),
    ToCall(Uuid, CallInput),
    Notice(Notice),
    /// Stop reconnecting (revoked / replaced).
    Shutdown(ByeReason),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("当前状态不能进行此操作 (not possible now: {0})")]
    WrongPhase(&'static str),
    /// The server refused or could not be reached; the text is for the kiosk page.
    #[error("{0}")]
    Refused(String),
}

fn notice(kind: &'static str, text: impl Into<String>) -> Effect {
    Effect::Notice(Notice { kind, text: text.into() })
}

/// The operator's open request for a scan (or a rejected material to scan again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanRequest {
    pub session_id: Uuid,
    pub slot_id: Option<Uuid>,
    /// The required material's name, e.g. 居民身份证.
    pub slot_name: Option<String>,
    /// The operator's note or the rejection reason.
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct Kiosk {
    phase: Phase,
    scan_request: Option<ScanRequest>,
    /// The current resident's ticket `(id, number)`, kept through the end of the call and the
    /// rating screen (staff may record the resident's phone number until the kiosk is back at
    /// welcome).
    resident_ticket: Option<(Uuid, String)>,
    /// A supervisor has barged into the current call (the resident was told).
    barged: bool,
    /// A specialist takes part in the current call (the resident was told).
    specialist: bool,
}

impl Default for Kiosk {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            scan_request: None,
            resident_ticket: None,
            barged: false,
            specialist: false,
        }
    }
}

impl Kiosk {
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The open scan request of the live call, if any.
    pub fn scan_request(&self) -> Option<&ScanRequest> {
        self.scan_request.as_ref().filter(|r| Some(r.session_id) == self.phase.session_id())
    }

    /// A scan started: the request it answers is done.
    pub fn scan_started(&mut self) {
        self.scan_request = None;
    }

    fn request_scan(&mut self, r: ScanRequest) -> Vec<Effect> {
        let what = r.slot_name.as_deref().map(|n| format!("「{n}」")).unwrap_or_else(|| "材料".into());
        let text = match r.note.as_deref().filter(|n| !n.trim().is_empty()) {
            Some(n) => format!("受理员请您扫描{what}：{n}"),
            None => format!("受理员请您扫描{what}，请将材料放入扫描仪后点击“开始扫描”。"),
        };
        self.scan_request = Some(r);
        vec![notice("scan_request", text)]
    }

    /// The live call's session, if any.
    pub fn session_id(&self) -> Option<Uuid> {
        self.phase.session_id()
    }

    /// The current resident's ticket `(id, number)` from the time it was issued until the
    /// kiosk is back at welcome (queue, call, transfer, end of call, rating).
    pub fn resident_ticket(&self) -> Option<(Uuid, &str)> {
        match self.phase {
            Phase::Idle | Phase::Requesting { .. } | Phase::Disabled { .. } => None,
            _ => self.resident_ticket.as_ref().map(|(id, n)| (*id, n.as_str())),
        }
    }

    // ---- the resident's actions -------------------------------------------------------------

    pub fn take_ticket(
        &mut self,
        item_id: Uuid,
        priority: Priority,
        resident: Option<ResidentDetails>,
        staff_token: Option<Token>,
        recording_consent: bool,
    ) -> Result<Vec<Effect>, ActionError> {
        self.request(item_id, priority, resident, staff_token, recording_consent, None)
    }

    /// Checks in an appointment (预约签到) found by its code: its ticket for `item_id`, which the
    /// server serves ahead of walk-ins from the slot start.
    pub fn check_in(
        &mut self,
        item_id: Uuid,
        appointment_id: Uuid,
        staff_token: Option<Token>,
        recording_consent: bool,
    ) -> Result<Vec<Effect>, ActionError> {
        self.request(item_id, Priority::Normal, None, staff_token, recording_consent, Some(appointment_id))
    }

    fn request(
        &mut self,
        item_id: Uuid,
        priority: Priority,
        resident: Option<ResidentDetails>,
        staff_token: Option<Token>,
        recording_consent: bool,
        appointment_id: Option<Uuid>,
    ) -> Result<Vec<Effect>, ActionError> {
        if !matches!(self.phase, Phase::Idle | Phase::Rating { .. } | Phase::Ended { .. }) {
            return Err(ActionError::WrongPhase(self.phase.name()));
        }
        let request_id = Uuid::new_v4();
        let msg = ClientMsg::TakeTicket {
            appointment_id,
            item_id,
            priority,
            resident: resident.clone(),
            request_id,
            staff_token: staff_token.clone(),
            recording_consent: Some(recording_consent),
        };
        self.phase = Phase::Requesting {
            request_id,
            item_id,
            priority,
            resident,
            staff_token,
            recording_consent,
            appointment_id,
        };
        Ok(vec![Effect::Send(msg)])
    }

    pub fn cancel(&mut self) -> Result<Vec<Effect>, ActionError> {
        match &self.phase {
            Phase::Requesting { .. } => {
                // Not issued yet: forget it (a late `ticket_issued` is then cancelled too).
                self.phase = Phase::Idle;
                Ok(vec![])
            }
            p => match p.ticket() {
                Some(t) => Ok(vec![Effect::Send(ClientMsg::CancelTicket { ticket_id: t.ticket_id })]),
                None => Err(ActionError::WrongPhase(p.name())),
            },
        }
    }

    pub fn rate(&mut self, level: RatingLevel, comment: Option<Comment>) -> Result<Vec<Effect>, ActionError> {
        match &mut self.phase {
            Phase::Rating { session_id, sent: sent @ None } => {
                *sent = Some(level);
                Ok(vec![Effect::Send(ClientMsg::Rate { session_id: *session_id, level, comment })])
            }
            p => Err(ActionError::WrongPhase(p.name())),
        }
    }

    /// The rating screen timed out or the resident walked away: back to idle.
    pub fn reset_to_idle(&mut self) {
        if matches!(self.phase, Phase::Ended { .. } | Phase::Rating { .. }) {
            self.phase = Phase::Idle;
        }
    }

    // ---- the connection ---------------------------------------------------------------------

    /// A `welcome` arrived on a new connection.
    pub fn on_connected(&mut self, resumed: bool) -> Vec<Effect> {
        match &self.phase {
            Phase::Requesting {
                request_id,
                item_id,
                priority,
                resident,
                staff_token,
                recording_consent,
                appointment_id,
            } => {
                vec![Effect::Send(ClientMsg::TakeTicket {
                    appointment_id: *appointment_id,
                    item_id: *item_id,
                    priority: *priority,
                    resident: resident.clone(),
                    request_id: *request_id,
                    staff_token: staff_token.clone(),
                    recording_consent: Some(*recording_consent),
                })]
            }
            _ if resumed => vec![],
            Phase::Waiting { .. } | Phase::Transferring { .. } | Phase::InCall { .. } => {
                // Past the resume window: the server closed the ticket as abandoned.
                let mut out = vec![];
                if let Some(sid) = self.phase.session_id() {
                    out.push(Effect::StopCall(sid));
                }
                self.phase = Phase::Idle;
                out.push(notice("connection", "网络中断时间过长，本次排号已失效，请重新取号。"));
                out
            }
            _ => vec![],
        }
    }

    // ---- server messages --------------------------------------------------------------------

    pub fn on_server(&mut self, msg: ServerMsg) -> Vec<Effect> {
        let effects = self.on_server_inner(msg);
        if let Some(t) = self.phase.ticket() {
            self.resident_ticket = Some((t.ticket_id, t.number.clone()));
        }
        effects
    }

    fn on_server_inner(&mut self, msg: ServerMsg) -> Vec<Effect> {
        match msg {
            ServerMsg::TicketIssued { ticket, request_id } => match &self.phase {
                Phase::Requesting { request_id: r, .. } if *r == request_id => {
                    self.phase = Phase::Waiting {
                        ticket,
                        position: None,
                        estimated_wait_secs: None,
                        serving: None,
                        wait: None,
                    };
                    vec![]
                }
                Phase::Waiting { ticket: t, .. } if t.ticket_id == ticket.ticket_id => vec![],
                _ => {
                    // Issued after the resident gave up: cancel it.
                    vec![Effect::Send(ClientMsg::CancelTicket { ticket_id: ticket.ticket_id })]
                }
            },
            ServerMsg::QueuePosition {
                ticket_id,
                position: p,
                estimated_wait_secs: e,
                serving: n,
                wait: w,
            } => {
                if let Phase::Waiting { ticket, position, estimated_wait_secs, serving, wait } =
                    &mut self.phase
                    && ticket.ticket_id == ticket_id
                {
                    *position = Some(p);
                    *estimated_wait_secs = Some(e);
                    *serving = n;
                    *wait = w;
                }
                vec![]
            }
            ServerMsg::SessionStarted { session } => {
                let mut out = vec![];
                if let Phase::InCall { session: s, .. } = &self.phase {
                    if s.session_id == session.session_id {
                        // State replay after a resume: the call goes on.
                        return out;
                    }
                    out.push(Effect::StopCall(s.session_id));
                }
                let ticket = session.ticket.clone();
                let session = Box::new(session);
                self.barged = false;
                self.specialist = false;
                out.push(Effect::StartCall(session.clone()));
                self.phase = Phase::InCall { ticket, session, held: false, peer_away: false };
                out
            }
            ServerMsg::Signal { session_id, signal, .. } => match self.phase.session_id() {
                Some(sid) if sid == session_id => vec![Effect::ToCall(sid, CallInput::Signal(signal))],
                _ => vec![],
            },
            ServerMsg::PeerSignal { session_id, peer, signal } => match self.phase.session_id() {
                Some(sid) if sid == session_id => {
                    vec![Effect::ToCall(sid, CallInput::PeerSignal(peer, signal))]
                }
                _ => vec![],
            },
            ServerMsg::Participants { session_id, participants }
                if self.phase.session_id() == Some(session_id) =>
            {
                // The resident hears, and is told of, a supervisor only once they barge in.
                let barged = participants.iter().any(|p| {
                    p.role == ParticipantRole::Supervisor && p.mode.is_some_and(|m| m.resident_hears())
                });
                let specialist = participants.iter().any(|p| p.role == ParticipantRole::Specialist);
                let mut out = vec![Effect::ToCall(session_id, CallInput::Participants(participants))];
                if barged && !self.barged {
                    out.push(notice("supervisor", "值班主管已加入通话，和受理员一起为您办理。"));
                }
                if specialist && !self.specialist {
                    out.push(notice("specialist", "另一位工作人员已加入通话，协助为您办理。"));
                }
                self.barged = barged;
                self.specialist = specialist;
                out
            }
            ServerMsg::SessionHeld { session_id } | ServerMsg::SessionResumed { session_id }
                if self.phase.session_id() == Some(session_id) =>
            {
                let hold = matches!(msg, ServerMsg::SessionHeld { .. });
                if let Phase::InCall { held, .. } = &mut self.phase {
                    *held = hold;
                }
                let text =
                    if hold { "受理员暂时保持通话，请稍候。" } else { "通话已恢复。" };
                vec![Effect::ToCall(session_id, CallInput::Hold(hold)), notice("hold", text)]
            }
            ServerMsg::PeerDisconnected { session_id, .. } if self.phase.session_id() == Some(session_id) => {
                if let Phase::InCall { peer_away, .. } = &mut self.phase {
                    *peer_away = true;
                }
                vec![notice("peer", "受理员网络不稳定，正在重新连接，请稍候。")]
            }
            ServerMsg::PeerReconnected { session_id } if self.phase.session_id() == Some(session_id) => {
                if let Phase::InCall { peer_away, .. } = &mut self.phase {
                    *peer_away = false;
                }
                vec![Effect::ToCall(session_id, CallInput::PeerReconnected)]
            }
            ServerMsg::Transferring { session_id, .. } if self.phase.session_id() == Some(session_id) => {
                let Phase::InCall { ticket, .. } = std::mem::replace(&mut self.phase, Phase::Idle) else {
                    return vec![];
                };
                self.phase = Phase::Transferring { ticket, session_id };
                vec![Effect::StopCall(session_id), notice("transfer", "正在为您转接，请稍候。")]
            }
            ServerMsg::SessionEnded { session_id, reason } if self.phase.session_id() == Some(session_id) => {
                self.phase = Phase::Ended { session_id, reason };
                vec![Effect::StopCall(session_id)]
            }
            ServerMsg::RateRequest { session_id } => {
                if matches!(self.phase, Phase::Ended { session_id: s, .. } if s == session_id)
                    || matches!(self.phase, Phase::Idle)
                {
                    self.phase = Phase::Rating { session_id, sent: None };
                }
                vec![]
            }
            ServerMsg::RatingRecorded { session_id } => {
                if matches!(self.phase, Phase::Rating { session_id: s, .. } if s == session_id) {
                    self.phase = Phase::Idle;
                }
                vec![notice("rating", "感谢您的评价！")]
            }
            ServerMsg::TicketClosed { ticket_id, reason } => {
                if self.phase.ticket().map(|t| t.ticket_id) != Some(ticket_id) {
                    return vec![];
                }
                let mut out = vec![];
                if let Some(sid) = self.phase.session_id() {
                    out.push(Effect::StopCall(sid));
                }
                self.phase = Phase::Idle;
                let text = match reason {
                    TicketCloseReason::Completed => "办理结束。",
                    TicketCloseReason::Cancelled => "已取消排号。",
                    TicketCloseReason::Expired => "今日服务已结束，请明天再来。",
                    TicketCloseReason::Removed => "排号已被工作人员取消。",
                    TicketCloseReason::Abandoned | TicketCloseReason::Unknown => "排号已失效，请重新取号。",
                };
                out.push(notice("ticket", text));
                out
            }
            ServerMsg::Error { code, message, request } => {
                let mut out = vec![];
                match (request.as_deref(), &self.phase) {
                    (Some("take_ticket"), Phase::Requesting { .. }) => {
                        self.phase = Phase::Idle;
                        let text = match code {
                            ErrorCode::Unavailable => "该事项暂时无人受理，请稍后再试。".to_owned(),
                            // The server's sentence says when the point opens next.
                            ErrorCode::OutsideHours => {
                                message.split(" (").next().unwrap_or_default().to_owned()
                            }
                            _ => format!("取号失败：{message}"),
                        };
                        out.push(notice("error", text));
                    }
                    (Some("rate"), Phase::Rating { .. }) => self.phase = Phase::Idle,
                    _ => {}
                }
                out
            }
            ServerMsg::Bye { reason: reason @ (ByeReason::Revoked | ByeReason::Replaced) } => {
                let mut out = vec![];
                if let Some(sid) = self.phase.session_id() {
                    out.push(Effect::StopCall(sid));
                }
                self.phase = Phase::Disabled { reason };
                out.push(Effect::Shutdown(reason));
                out
            }
            // Progress notices come from the printer worker; here only the announcement.
            ServerMsg::PrintJobChanged { job } if job.state == shared::api::PrintJobState::Pending => {
                vec![notice("print", format!("受理员发送了材料「{}」，即将为您打印。", job.filename))]
            }
            ServerMsg::MaterialChanged { session_id, material } => match material.reject_reason {
                Some(r) if !r.is_empty() && self.phase.session_id() == Some(session_id) => {
                    let text =
                        format!("请重新扫描「{}」：{r}", material.slot_name.as_deref().unwrap_or("材料"));
                    self.scan_request = Some(ScanRequest {
                        session_id,
                        slot_id: material.slot_id,
                        slot_name: material.slot_name,
                        note: Some(r),
                    });
                    vec![notice("scan_request", text)]
                }
                _ => vec![],
            },
            ServerMsg::ScanRequested { session_id, slot_id, slot_name, note }
                if self.phase.session_id() == Some(session_id) =>
            {
                self.request_scan(ScanRequest { session_id, slot_id, slot_name, note })
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::protocol::Party;

    fn ticket(id: u128) -> TicketView {
        TicketView {
            ticket_id: Uuid::from_u128(id),
            number: "J-0001".into(),
            item_id: Uuid::from_u128(100),
            item_name: "城乡居民基本养老保险待遇申领".into(),
            line_id: Uuid::from_u128(200),
            line_name: "社保业务".into(),
            point_id: Uuid::from_u128(300),
            point_name: "华山居委会".into(),
            priority: Priority::Elderly,
            resident_name_masked: None,
            id_number_masked: None,
            waited_secs: 0,
            assisted_by: None,
        }
    }

    fn session(id: u128, t: TicketView) -> SessionView {
        SessionView {
            session_id: Uuid::from_u128(id),
            ticket: t,
            operator_id: Uuid::from_u128(400),
            operator_name: "陈受理员".into(),
            your_part: Party::Terminal,
            polite: true,
            ice_servers: vec![],
            recording: false,
        }
    }

    fn issued(k: &mut Kiosk, t: &TicketView) {
        let Phase::Requesting { request_id, .. } = *k.phase() else { panic!("not requesting") };
        assert_eq!(k.on_server(ServerMsg::TicketIssued { ticket: t.clone(), request_id }), vec![]);
    }

    #[test]
    fn an_appointment_checks_in_with_its_id_and_keeps_it_across_a_reconnect() {
        let mut k = Kiosk::default();
        let t = ticket(1);
        let appointment = Uuid::from_u128(77);
        let out = k.check_in(t.item_id, appointment, None, true).expect("idle");
        let [
            Effect::Send(ClientMsg::TakeTicket {
                appointment_id, item_id, priority, recording_consent, ..
            }),
        ] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(
            (*appointment_id, *item_id, *priority, *recording_consent),
            (Some(appointment), t.item_id, Priority::Normal, Some(true))
        );
        assert!(k.check_in(t.item_id, appointment, None, false).is_err(), "one ticket at a time");
        // The connection drops before the ticket is issued: the same request goes again.
        let again = k.on_connected(false);
        assert!(
            matches!(&again[..], [Effect::Send(ClientMsg::TakeTicket { appointment_id: Some(a), .. })] if *a == appointment),
            "{again:?}"
        );
        issued(&mut k, &t);
        assert!(matches!(k.phase(), Phase::Waiting { .. }));
        // A walk-in's ticket carries no appointment.
        let mut k = Kiosk::default();
        let out = k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        assert!(matches!(&out[..], [Effect::Send(ClientMsg::TakeTicket { appointment_id: None, .. })]));
    }

    #[test]
    fn full_call_from_ticket_to_rating() {
        let mut k = Kiosk::default();
        let t = ticket(1);
        let out = k.take_ticket(t.item_id, Priority::Elderly, None, None, false).expect("idle");
        assert!(matches!(
            &out[..],
            [Effect::Send(ClientMsg::TakeTicket { priority: Priority::Elderly, .. })]
        ));
        assert!(
            k.take_ticket(t.item_id, Priority::Normal, None, None, false).is_err(),
            "one ticket at a time"
        );
        assert_eq!(k.resident_ticket(), None, "no ticket before it is issued");
        issued(&mut k, &t);
        assert_eq!(
            k.resident_ticket(),
            Some((t.ticket_id, "J-0001")),
            "staff may record a phone number from now"
        );
        k.on_server(ServerMsg::QueuePosition {
            ticket_id: t.ticket_id,
            position: 2,
            estimated_wait_secs: 120,
            serving: None,
            wait: None,
        });
        assert!(matches!(
            k.phase(),
            Phase::Waiting { position: Some(2), estimated_wait_secs: Some(120), serving: None, .. }
        ));
        // Nobody serves the line any more: the kiosk is told so, without a number.
        k.on_server(ServerMsg::QueuePosition {
            ticket_id: t.ticket_id,
            position: 2,
            estimated_wait_secs: 120,
            serving: Some(0),
            wait: None,
        });
        assert!(matches!(k.phase(), Phase::Waiting { serving: Some(0), wait: None, .. }));

        let s = session(9, t.clone());
        let out = k.on_server(ServerMsg::SessionStarted { session: s.clone() });
        assert_eq!(out, vec![Effect::StartCall(Box::new(s.clone()))]);
        assert_eq!(k.phase().name(), "in_call");
        // Replay after a resume does not restart the call.
        assert_eq!(k.on_server(ServerMsg::SessionStarted { session: s.clone() }), vec![]);

        let offer = Signal::Offer { sdp: "v=0\r\n".to_owned().try_into().expect("sdp"), ice_restart: false };
        let out = k.on_server(ServerMsg::Signal {
            session_id: s.session_id,
            from: Party::Operator,
            signal: offer.clone(),
        });
        assert_eq!(out, vec![Effect::ToCall(s.session_id, CallInput::Signal(offer.clone()))]);
        // Signals of another session are dropped.
        let out = k.on_server(ServerMsg::Signal {
            session_id: Uuid::from_u128(8),
            from: Party::Operator,
            signal: offer,
        });
        assert_eq!(out, vec![]);

        // A supervisor joins: the call answers them; the resident is told only once they barge in.
        let sup = Uuid::from_u128(77);
        let list = |mode| {
            vec![shared::protocol::ParticipantView {
                participant_id: sup,
                role: ParticipantRole::Supervisor,
                name: "张主管".into(),
                mode: Some(mode),
            }]
        };
        let out = k.on_server(ServerMsg::Participants {
            session_id: s.session_id,
            participants: list(shared::protocol::SuperviseMode::Monitor),
        });
        assert_eq!(
            out,
            vec![Effect::ToCall(
                s.session_id,
                CallInput::Participants(list(shared::protocol::SuperviseMode::Monitor))
            )]
        );
        let offer = Signal::Offer { sdp: "v=0\r\n".to_owned().try_into().expect("sdp"), ice_restart: false };
        let out =
            k.on_server(ServerMsg::PeerSignal { session_id: s.session_id, peer: sup, signal: offer.clone() });
        assert_eq!(out, vec![Effect::ToCall(s.session_id, CallInput::PeerSignal(sup, offer.clone()))]);
        let out =
            k.on_server(ServerMsg::PeerSignal { session_id: Uuid::from_u128(8), peer: sup, signal: offer });
        assert_eq!(out, vec![], "another session's signaling is dropped");
        for expected in [1, 0] {
            let out = k.on_server(ServerMsg::Participants {
                session_id: s.session_id,
                participants: list(shared::protocol::SuperviseMode::Barge),
            });
            let told =
                out.iter().filter(|e| matches!(e, Effect::Notice(n) if n.kind == "supervisor")).count();
            assert_eq!(told, expected, "the resident is told once that a supervisor barged in");
        }

        let out = k.on_server(ServerMsg::SessionHeld { session_id: s.session_id });
        assert_eq!(out[0], Effect::ToCall(s.session_id, CallInput::Hold(true)));
        assert!(matches!(k.phase(), Phase::InCall { held: true, .. }));
        k.on_server(ServerMsg::SessionResumed { session_id: s.session_id });
        assert!(matches!(k.phase(), Phase::InCall { held: false, .. }));

        k.on_server(ServerMsg::PeerDisconnected { session_id: s.session_id, grace_secs: 60 });
        assert!(matches!(k.phase(), Phase::InCall { peer_away: true, .. }));
        let out = k.on_server(ServerMsg::PeerReconnected { session_id: s.session_id });
        assert_eq!(out, vec![Effect::ToCall(s.session_id, CallInput::PeerReconnected)]);

        let out = k.on_server(ServerMsg::SessionEnded {
            session_id: s.session_id,
            reason: SessionEndReason::OperatorEnded,
        });
        assert_eq!(out, vec![Effect::StopCall(s.session_id)]);
        // ticket_closed(completed) after the session ended does not disturb the rating flow.
        assert!(
            k.on_server(ServerMsg::TicketClosed {
                ticket_id: t.ticket_id,
                reason: TicketCloseReason::Completed
            })
            .is_empty()
        );
        k.on_server(ServerMsg::RateRequest { session_id: s.session_id });
        assert_eq!(k.phase().name(), "rating");
        assert_eq!(k.resident_ticket(), Some((t.ticket_id, "J-0001")), "and still on the rating screen");
        let out = k.rate(RatingLevel::VerySatisfied, None).expect("rating");
        assert!(matches!(
            &out[..],
            [Effect::Send(ClientMsg::Rate { level: RatingLevel::VerySatisfied, .. })]
        ));
        assert!(k.rate(RatingLevel::Basic, None).is_err(), "rated once");
        k.on_server(ServerMsg::RatingRecorded { session_id: s.session_id });
        assert_eq!(k.phase(), &Phase::Idle);
        assert_eq!(k.resident_ticket(), None, "back at welcome: nothing of the last resident");
    }

    #[test]
    fn reconnect_resends_the_same_request_and_abandons_after_the_window() {
        let mut k = Kiosk::default();
        let t = ticket(1);
        let first = k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        let again = k.on_connected(true);
        assert_eq!(first, again, "same request_id: idempotent retry");
        issued(&mut k, &t);
        assert!(k.on_connected(true).is_empty(), "resumed: the ticket keeps its place");
        let out = k.on_connected(false);
        assert!(matches!(&out[..], [Effect::Notice(_)]));
        assert_eq!(k.phase(), &Phase::Idle);

        // In a call past the window: the call is torn down.
        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        issued(&mut k, &t);
        let s = session(9, t);
        k.on_server(ServerMsg::SessionStarted { session: s.clone() });
        let out = k.on_connected(false);
        assert_eq!(out[0], Effect::StopCall(s.session_id));
    }

    #[test]
    fn the_operators_scan_request_is_shown_for_the_live_call_only_until_a_scan_starts() {
        let mut k = Kiosk::default();
        let t = ticket(1);
        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        issued(&mut k, &t);
        let s = session(9, t);
        // Not for this call (stale or another session): ignored.
        let other = ServerMsg::ScanRequested {
            session_id: Uuid::from_u128(77),
            slot_id: None,
            slot_name: None,
            note: None,
        };
        assert!(k.on_server(other.clone()).is_empty());
        k.on_server(ServerMsg::SessionStarted { session: s.clone() });
        assert!(k.on_server(other).is_empty());
        assert_eq!(k.scan_request(), None);
        let slot = Uuid::from_u128(500);
        let out = k.on_server(ServerMsg::ScanRequested {
            session_id: s.session_id,
            slot_id: Some(slot),
            slot_name: Some("居民身份证".into()),
            note: Some("正反面".into()),
        });
        assert!(
            matches!(&out[..], [Effect::Notice(n)] if n.kind == "scan_request" && n.text.contains("「居民身份证」") && n.text.contains("正反面")),
            "{out:?}"
        );
        assert_eq!(k.scan_request().and_then(|r| r.slot_id), Some(slot));
        k.scan_started();
        assert_eq!(k.scan_request(), None);
        k.on_server(ServerMsg::ScanRequested {
            session_id: s.session_id,
            slot_id: None,
            slot_name: None,
            note: None,
        });
        assert!(k.scan_request().is_some());
        k.on_server(ServerMsg::SessionEnded {
            session_id: s.session_id,
            reason: SessionEndReason::OperatorEnded,
        });
        assert_eq!(k.scan_request(), None, "gone with the call");
    }

    #[test]
    fn transfer_keeps_the_ticket_and_starts_a_new_session() {
        let mut k = Kiosk::default();
        let t = ticket(1);
        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        issued(&mut k, &t);
        let s1 = session(9, t.clone());
        k.on_server(ServerMsg::SessionStarted { session: s1.clone() });
        let out = k.on_server(ServerMsg::Transferring { session_id: s1.session_id, target_line: None });
        assert_eq!(out[0], Effect::StopCall(s1.session_id));
        assert_eq!(k.phase().name(), "transferring");
        let s2 = session(10, t);
        let out = k.on_server(ServerMsg::SessionStarted { session: s2.clone() });
        assert_eq!(out, vec![Effect::StartCall(Box::new(s2))]);
    }

    #[test]
    fn cancel_errors_and_revocation() {
        let mut k = Kiosk::default();
        assert!(k.cancel().is_err());
        let t = ticket(1);
        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        let out = k.on_server(ServerMsg::Error {
            code: ErrorCode::Unavailable,
            message: "x".into(),
            request: Some("take_ticket".into()),
        });
        assert!(matches!(&out[..], [Effect::Notice(n)] if n.kind == "error"));
        assert_eq!(k.phase(), &Phase::Idle);
        // Outside opening hours the resident reads when the point opens next.
        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        let out = k.on_server(ServerMsg::Error {
            code: ErrorCode::OutsideHours,
            message: "本服务点现在不开放，下次开放：12月7日（周一）09:00 (outside opening hours)".into(),
            request: Some("take_ticket".into()),
        });
        assert!(
            matches!(&out[..], [Effect::Notice(n)] if n.text == "本服务点现在不开放，下次开放：12月7日（周一）09:00")
        );
        assert_eq!(k.phase(), &Phase::Idle);

        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        issued(&mut k, &t);
        let out = k.cancel().expect("waiting");
        assert_eq!(out, vec![Effect::Send(ClientMsg::CancelTicket { ticket_id: t.ticket_id })]);
        k.on_server(ServerMsg::TicketClosed { ticket_id: t.ticket_id, reason: TicketCloseReason::Cancelled });
        assert_eq!(k.phase(), &Phase::Idle);

        // A ticket issued after the resident gave up is cancelled at once.
        k.take_ticket(t.item_id, Priority::Normal, None, None, false).expect("idle");
        let Phase::Requesting { request_id, .. } = *k.phase() else { panic!() };
        k.cancel().expect("requesting");
        let out = k.on_server(ServerMsg::TicketIssued { ticket: t.clone(), request_id });
        assert_eq!(out, vec![Effect::Send(ClientMsg::CancelTicket { ticket_id: t.ticket_id })]);

        let out = k.on_server(ServerMsg::Bye { reason: ByeReason::Revoked });
        assert_eq!(out, vec![Effect::Shutdown(ByeReason::Revoked)]);
        assert_eq!(k.phase().name(), "disabled");
    }
}
