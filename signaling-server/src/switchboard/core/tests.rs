//! The core driven without sockets, database or sleeping: every client message of
//! docs/protocol.md §6, every session state, and random sequences of inputs checked against
//! the invariants.

use std::collections::HashMap;

use proptest::prelude::*;
use shared::protocol::{
    ByeReason, ClientMsg, ErrorCode, OperatorStateView, Outcome, Party, Priority, RatingLevel,
    ResidentDetails, Role, ServerMsg, SessionEndReason, Signal, TicketCloseReason, TicketView,
    TransferTarget,
};
use shared::validate::{IceCandidate, PersonName, Sdp, Token};
use uuid::Uuid;

use super::*;

const RING_MS: i64 = 20_000;
const OVERFLOW_MS: i64 = 120_000;
const WINDOW_MS: i64 = 60_000;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const POINT: u128 = 900;
const LINE: u128 = 800;
const ITEM: u128 = 700;

struct H {
    core: Core,
    now: i64,
    conns: HashMap<Uuid, Uuid>,
    next: u128,
    /// Every output so far, in order.
    log: Vec<Output>,
    /// Operators' acceptance centers, looked up at the edge when they connect.
    centers: HashMap<Uuid, Uuid>,
    /// The center of the terminals' point.
    point_center: Option<Uuid>,
}

impl H {
    fn new() -> Self {
        let settings = CoreSettings {
            ring_timeout_ms: RING_MS,
            overflow_after_ms: OVERFLOW_MS,
            resume_window_ms: WINDOW_MS,
            max_open_tickets_per_terminal: 1,
            ice: crate::ice::IceConfig::default(),
        };
        let names = HashMap::from([(id(LINE), "民政".to_owned()), (id(LINE + 1), "社保".to_owned())]);
        Self {
            core: Core::new(settings, names),
            now: 1_000_000,
            conns: HashMap::new(),
            next: 10_000,
            log: Vec::new(),
            centers: HashMap::new(),
            point_center: None,
        }
    }

    fn fresh(&mut self) -> Uuid {
        self.next += 1;
        id(self.next)
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        let mut outs = self.core.handle(input, self.now);
        // As the driver does: a deadline already due (a line's positions) is ticked at once.
        let mut ticks = 0;
        while self.core.next_deadline().is_some_and(|d| d <= self.now) {
            ticks += 1;
            assert!(ticks < 16, "the core keeps asking for a tick");
            outs.extend(self.core.handle(Input::Tick, self.now));
        }
        self.log.extend(outs.iter().cloned());
        outs
    }

    fn connect(&mut self, who: Uuid, role: Role) -> Vec<Output> {
        let conn = self.fresh();
        self.conns.insert(who, conn);
        let name = format!("{role}-{}", who.as_u128());
        let point_id = (role == Role::Terminal).then(|| id(POINT));
        let skills = if role == Role::Operator { vec![id(LINE), id(LINE + 1)] } else { Vec::new() };
        let center = self.centers.get(&who).copied();
        self.feed(Input::Connect { party: PartyInfo { id: who, role, point_id, name }, conn, skills, center })
    }

    fn drop_conn(&mut self, who: Uuid) -> Vec<Output> {
        let conn = self.conns.remove(&who).unwrap_or_else(Uuid::nil);
        self.feed(Input::Disconnect { party: who, conn })
    }

    fn msg(&mut self, who: Uuid, msg: ClientMsg) -> Vec<Output> {
        self.msg_with(who, msg, Lookup::None)
    }

    fn msg_with(&mut self, who: Uuid, msg: ClientMsg, lookup: Lookup) -> Vec<Output> {
        let conn = self.conns.get(&who).copied().unwrap_or_else(Uuid::nil);
        self.feed(Input::Message { party: who, conn, msg, lookup })
    }

    fn advance(&mut self, ms: i64) -> Vec<Output> {
        self.now += ms;
        self.feed(Input::Tick)
    }

    /// `take_ticket`, answered by the driver's part (the ticket stored) when admitted.
    fn take(&mut self, terminal: Uuid, priority: Priority) -> Vec<Output> {
        let request_id = self.fresh();
        let mut outs = self.msg(terminal, take_msg(request_id, priority, None, None));
        if let Some(Output::CreateTicket(req)) =
            outs.iter().find(|o| matches!(o, Output::CreateTicket(_))).cloned()
        {
            if self.core.may_open_ticket(terminal).is_err() {
                return outs;
            }
            let ticket = self.fresh();
            let view = ticket_view(ticket, req.priority, req.item_id);
            let center = self.point_center;
            outs.extend(self.feed(Input::TicketCreated {
                terminal,
                request_id,
                view,
                recording: false,
                center,
                appointment: None,
            }));
        }
        outs
    }

    /// Connects an operator and makes them available.
    fn available(&mut self, op: Uuid) {
        self.connect(op, Role::Operator);
        self.msg(op, ClientMsg::SetAvailability { available: true });
    }
}

fn take_msg(
    request_id: Uuid,
    priority: Priority,
    resident: Option<ResidentDetails>,
    staff: Option<Token>,
) -> ClientMsg {
    ClientMsg::TakeTicket {
        appointment_id: None,
        item_id: id(ITEM),
        priority,
        resident,
        request_id,
        staff_token: staff,
        recording_consent: None,
    }
}

fn ticket_view(ticket: Uuid, priority: Priority, item: Uuid) -> TicketView {
    TicketView {
        ticket_id: ticket,
        number: format!("A-{:04}", ticket.as_u128() % 10_000),
        item_id: item,
        item_name: "低保申请".into(),
        line_id: id(LINE),
        line_name: "民政".into(),
        point_id: id(POINT),
        point_name: "华山".into(),
        priority,
        resident_name_masked: None,
        id_number_masked: None,
        waited_secs: 0,
        assisted_by: None,
    }
}

/// Messages `to` gets in `outs`, in order.
fn to(outs: &[Output], party: Uuid) -> Vec<ServerMsg> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } if *to == party => Some(msg.clone()),
            Output::SendMany { to, msg } if to.contains(&party) => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn writes(outs: &[Output]) -> Vec<Write> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist { write, .. } => Some(write.clone()),
            _ => None,
        })
        .collect()
}

fn error_code(msgs: &[ServerMsg]) -> Option<ErrorCode> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    })
}

fn ringing(msgs: &[ServerMsg]) -> Option<Uuid> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    })
}

fn started(msgs: &[ServerMsg]) -> Option<(Uuid, Party)> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::SessionStarted { session } => Some((session.session_id, session.your_part)),
        _ => None,
    })
}

/// A terminal `t` in a call with operator `o`; returns `(ticket, session)`.
fn in_call(h: &mut H, t: Uuid, o: Uuid) -> (Uuid, Uuid) {
    h.available(o);
    h.connect(t, Role::Terminal);
    let outs = h.take(t, Priority::Normal);
    let ticket = ringing(&to(&outs, o)).expect("rings");
    let outs = h.msg(o, ClientMsg::Accept { ticket_id: ticket });
    let (session, part) = started(&to(&outs, t)).expect("terminal told");
    assert_eq!(part, Party::Terminal);
    assert_eq!(started(&to(&outs, o)).map(|s| s.1), Some(Party::Operator));
    (ticket, session)
}

fn sdp(kind: &str) -> Sdp {
    Sdp::try_from(format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={kind}\r\nt=0 0\r\n")).expect("sdp")
}

// ---- §6 messages ------------------------------------------------------------------------------

#[test]
fn connect_answers_welcome_first_and_hello_and_ping_are_harmless() {
    let mut h = H::new();
    let t = id(1);
    let outs = h.connect(t, Role::Terminal);
    assert!(matches!(
        outs.first(),
        Some(Output::Welcome { msg: ServerMsg::Welcome { resumed: false, role: Role::Terminal, .. }, .. })
    ));
    let outs = h.msg(t, ClientMsg::Hello { v: 1, token: None, resume: None });
    assert!(to(&outs, t).is_empty());
    let outs = h.msg(t, ClientMsg::Ping { seq: 7 });
    assert_eq!(to(&outs, t), vec![ServerMsg::Pong { seq: 7 }]);
}

#[test]
fn a_message_from_an_old_connection_is_ignored() {
    let mut h = H::new();
    let t = id(1);
    h.connect(t, Role::Terminal);
    let outs = h.feed(Input::Message {
        party: t,
        conn: Uuid::nil(),
        msg: ClientMsg::Ping { seq: 1 },
        lookup: Lookup::None,
    });
    assert!(outs.is_empty());
}

#[test]
fn take_ticket_is_admitted_issued_after_it_is_stored_and_queued() {
    let mut h = H::new();
    let t = id(1);
    h.connect(t, Role::Terminal);
    let request_id = h.fresh();
    let outs = h.msg(t, take_msg(request_id, Priority::Elderly, None, None));
    let Some(Output::CreateTicket(req)) = outs.first() else { panic!("{outs:?}") };
    assert_eq!((req.point, req.priority), (id(POINT), Priority::Elderly));
    assert!(to(&outs, t).is_empty(), "nothing issued before it is stored");
    let view = ticket_view(id(50), Priority::Elderly, id(ITEM));
    let outs = h.feed(Input::TicketCreated {
        terminal: t,
        request_id,
        view,
        recording: false,
        center: None,
        appointment: None,
    });
    let msgs = to(&outs, t);
    assert!(matches!(msgs[0], ServerMsg::TicketIssued { .. }));
    assert!(msgs.iter().any(|m| matches!(m, ServerMsg::QueuePosition { position: 1, .. })));
    // The same request again: the same ticket, nothing new to store.
    let outs = h.msg(t, take_msg(request_id, Priority::Elderly, None, None));
    assert!(
        matches!(to(&outs, t)[0], ServerMsg::TicketIssued { ref ticket, .. } if ticket.ticket_id == id(50))
    );
    assert!(!outs.iter().any(|o| matches!(o, Output::CreateTicket(_))));
    // A second ticket while one is open is refused (by the check the driver asks for).
    assert_eq!(h.core.may_open_ticket(t).map_err(|r| r.0), Err(ErrorCode::Conflict));
}

#[test]
fn resident_details_without_a_staff_token_are_refused_before_anything_is_stored() {
    let mut h = H::new();
    let t = id(1);
    h.connect(t, Role::Terminal);
    let details = ResidentDetails {
        name: Some(PersonName::try_from("王小明".to_owned()).expect("name")),
        id_number: None,
    };
    let request = h.fresh();
    let outs = h.msg(t, take_msg(request, Priority::Normal, Some(details.clone()), None));
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::Forbidden));
    assert!(!outs.iter().any(|o| matches!(o, Output::CreateTicket(_) | Output::Persist { .. })));
    let staff = Token::try_from("x.y.z".to_owned()).expect("token");
    let outs = h.msg(t, take_msg(id(77), Priority::Normal, Some(details), Some(staff)));
    assert!(
        matches!(outs.first(), Some(Output::CreateTicket(r)) if r.staff_token.is_some()),
        "the driver checks the token"
    );
}

#[test]
fn only_terminals_take_tickets_and_only_operators_accept() {
    let mut h = H::new();
    let (t, o) = (id(1), id(2));
    h.connect(t, Role::Terminal);
    h.connect(o, Role::Operator);
    let outs = h.msg(o, take_msg(id(5), Priority::Normal, None, None));
    assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::Forbidden));
    let outs = h.msg(t, ClientMsg::Accept { ticket_id: id(5) });
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::Forbidden));
    let outs = h.msg(t, ClientMsg::SetAvailability { available: true });
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::Forbidden));
}

#[test]
fn cancel_ticket_closes_it_once_and_records_it() {
    let mut h = H::new();
    let t = id(1);
    h.connect(t, Role::Terminal);
    let outs = h.take(t, Priority::Normal);
    let ticket = to(&outs, t).iter().find_map(|m| match m {
        ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    });
    let ticket = ticket.expect("issued");
    let outs = h.msg(t, ClientMsg::CancelTicket { ticket_id: ticket });
    assert!(
        to(&outs, t)
            .contains(&ServerMsg::TicketClosed { ticket_id: ticket, reason: TicketCloseReason::Cancelled })
    );
    assert!(writes(&outs).iter().any(|w| matches!(w, Write::TicketStatus { status: "cancelled", .. })));
    let outs = h.msg(t, ClientMsg::CancelTicket { ticket_id: ticket });
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::NotFound));
    assert!(h.core.may_open_ticket(t).is_ok());
}

#[test]
fn set_availability_ring_decline_and_timeout() {
    let mut h = H::new();
    let (t, o1, o2) = (id(1), id(2), id(3));
    h.available(o1);
    h.available(o2);
    h.connect(t, Role::Terminal);
    let outs = h.take(t, Priority::Normal);
    let first = if ringing(&to(&outs, o1)).is_some() { o1 } else { o2 };
    let second = if first == o1 { o2 } else { o1 };
    let ticket = ringing(&to(&outs, first)).expect("rings one operator");
    assert!(ringing(&to(&outs, second)).is_none(), "one operator at a time");
    // Declined: rings the other.
    let outs = h.msg(first, ClientMsg::Decline { ticket_id: ticket });
    assert!(to(&outs, first).iter().any(|m| matches!(m, ServerMsg::RingCancelled { .. })));
    assert_eq!(ringing(&to(&outs, second)), Some(ticket));
    // Not answered: withdrawn at the timeout.
    let outs = h.advance(RING_MS + 1);
    assert!(
        to(&outs, second)
            .iter()
            .any(|m| matches!(m, ServerMsg::RingCancelled { ticket_id, .. } if *ticket_id == ticket))
    );
    // Away: nothing rings.
    let outs = h.msg(first, ClientMsg::SetAvailability { available: false });
    assert!(to(&outs, first).contains(&ServerMsg::OperatorStatus { state: OperatorStateView::Away }));
}

#[test]
fn accept_starts_a_session_stored_in_the_same_batch_as_its_event() {
    let mut h = H::new();
    let (t, o) = (id(1), id(2));
    h.available(o);
    h.connect(t, Role::Terminal);
    let outs = h.take(t, Priority::Normal);
    let ticket = ringing(&to(&outs, o)).expect("rings");
    let outs = h.msg(o, ClientMsg::Accept { ticket_id: ticket });
    let w = writes(&outs);
    assert!(
        matches!(w[0], Write::InsertSession(ref s) if s.ticket == ticket && s.operator == o && s.terminal == t)
    );
    assert!(w.iter().any(|w| matches!(w, Write::Event { kind: "session_started", .. })));
    let (session, _) = started(&to(&outs, o)).expect("operator told");
    let info = h.core.session(session).expect("held by the switchboard");
    assert_eq!(
        (info.state, info.operator_connected, info.terminal_connected),
        (SessState::Active, true, true)
    );
    assert_eq!(h.core.sessions_of(t), vec![info]);
    // Accepting it again is refused.
    let outs = h.msg(o, ClientMsg::Accept { ticket_id: ticket });
    assert!(error_code(&to(&outs, o)).is_some());
}

#[test]
fn pick_takes_a_ticket_out_of_turn() {
    let mut h = H::new();
    let (t1, t2, o) = (id(1), id(2), id(3));
    h.connect(t1, Role::Terminal);
    h.connect(t2, Role::Terminal);
    h.take(t1, Priority::Normal);
    let outs = h.take(t2, Priority::Normal);
    let second = to(&outs, t2).iter().find_map(|m| match m {
        ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    });
    h.connect(o, Role::Operator);
    h.msg(o, ClientMsg::SetAvailability { available: false });
    let outs = h.msg(o, ClientMsg::Pick { ticket_id: second.expect("issued") });
    assert!(started(&to(&outs, t2)).is_some(), "the picked ticket's terminal is in the call");
    assert!(started(&to(&outs, t1)).is_none());
}

#[test]
fn signals_go_only_to_the_other_party() {
    let mut h = H::new();
    let (t, o, intruder) = (id(1), id(2), id(3));
    let (_, session) = in_call(&mut h, t, o);
    h.connect(intruder, Role::Operator);
    let offer = Signal::Offer { sdp: sdp("offer"), ice_restart: true };
    let outs = h.msg(o, ClientMsg::Signal { session_id: session, signal: offer.clone() });
    assert_eq!(
        to(&outs, t),
        vec![ServerMsg::Signal { session_id: session, from: Party::Operator, signal: offer }]
    );
    assert!(writes(&outs).iter().any(|w| matches!(w, Write::Event { kind: "ice_restart", .. })));
    let cand = Signal::Candidate {
        candidate: IceCandidate::try_from("candidate:1 1 udp 1 127.0.0.1 9 typ host".to_owned()).expect("c"),
        sdp_mid: None,
        sdp_m_line_index: Some(0),
    };
    let outs = h.msg(t, ClientMsg::Signal { session_id: session, signal: cand.clone() });
    assert_eq!(to(&outs, o).len(), 1);
    assert!(writes(&outs).is_empty(), "a relay writes nothing");
    let outs = h.msg(intruder, ClientMsg::Signal { session_id: session, signal: cand });
    assert_eq!(error_code(&to(&outs, intruder)), Some(ErrorCode::Forbidden));
    assert!(to(&outs, t).is_empty() && to(&outs, o).is_empty());
}

#[test]
fn hold_resume_end_wrap_up_and_rate_walk_every_session_state() {
    let mut h = H::new();
    let (t, o) = (id(1), id(2));
    let (ticket, session) = in_call(&mut h, t, o);
    // Active → Held → Active.
    let outs = h.msg(o, ClientMsg::Resume { session_id: session });
    assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::Conflict), "not held");
    let outs = h.msg(o, ClientMsg::Hold { session_id: session });
    assert!(to(&outs, t).contains(&ServerMsg::SessionHeld { session_id: session }));
    assert_eq!(h.core.session(session).map(|s| s.state), Some(SessState::Held));
    let outs = h.msg(t, ClientMsg::Hold { session_id: session });
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::Forbidden), "only the operator holds");
    let outs = h.msg(o, ClientMsg::Resume { session_id: session });
    assert!(to(&outs, t).contains(&ServerMsg::SessionResumed { session_id: session }));
    // Rating before wrap-up is refused.
    let outs =
        h.msg(t, ClientMsg::Rate { session_id: session, level: RatingLevel::Satisfied, comment: None });
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::Conflict));
    // Active → Ended.
    let outs = h.msg(t, ClientMsg::EndCall { session_id: session });
    let ended = ServerMsg::SessionEnded { session_id: session, reason: SessionEndReason::ResidentLeft };
    assert!(to(&outs, o).contains(&ended) && to(&outs, t).contains(&ended));
    assert!(to(&outs, o).contains(&ServerMsg::OperatorStatus { state: OperatorStateView::WrapUp }));
    assert_eq!(h.core.session(session).map(|s| s.state), Some(SessState::Ended));
    let outs = h.msg(o, ClientMsg::EndCall { session_id: session });
    assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::Conflict));
    // Ended → Closed.
    let outs = h.msg(o, ClientMsg::WrapUp { session_id: session, outcome: Outcome::Completed, notes: None });
    let msgs = to(&outs, t);
    assert!(
        msgs.contains(&ServerMsg::TicketClosed { ticket_id: ticket, reason: TicketCloseReason::Completed })
    );
    assert!(msgs.contains(&ServerMsg::RateRequest { session_id: session }));
    assert!(writes(&outs).iter().any(|w| matches!(w, Write::WrapUp { outcome: Some("completed"), .. })));
    let outs = h.msg(o, ClientMsg::WrapUp { session_id: session, outcome: Outcome::Completed, notes: None });
    assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::Conflict));
    // Closed → rated (gone).
    let outs = h.msg_with(
        t,
        ClientMsg::Rate { session_id: session, level: RatingLevel::VeryDissatisfied, comment: None },
        Lookup::RectificationDue(Some(42)),
    );
    assert!(
        writes(&outs).iter().any(|w| matches!(
            w,
            Write::Rate { level: "very_dissatisfied", rectification_due: Some(42), .. }
        ))
    );
    assert!(to(&outs, o).contains(&ServerMsg::RatingRecorded { session_id: session }));
    assert!(h.core.session(session).is_none());
    let outs =
        h.msg(t, ClientMsg::Rate { session_id: session, level: RatingLevel::Satisfied, comment: None });
    assert!(error_code(&to(&outs, t)).is_some(), "rated once");
}

#[test]
fn transfer_to_a_line_or_an_operator() {
    let mut h = H::new();
    let (t, o1, o2) = (id(1), id(2), id(3));
    let (ticket, session) = in_call(&mut h, t, o1);
    h.available(o2);
    let outs = h.msg(
        o1,
        ClientMsg::Transfer {
            session_id: session,
            target: TransferTarget::Line { line_id: id(1) },
            note: None,
        },
    );
    assert_eq!(error_code(&to(&outs, o1)), Some(ErrorCode::NotFound), "no such line");
    let outs = h.msg_with(
        o1,
        ClientMsg::Transfer {
            session_id: session,
            target: TransferTarget::Operator { operator_id: o2 },
            note: None,
        },
        Lookup::OperatorExists(Ok(true)),
    );
    assert!(to(&outs, t).iter().any(|m| matches!(m, ServerMsg::Transferring { .. })));
    assert!(
        to(&outs, o1).contains(&ServerMsg::SessionEnded {
            session_id: session,
            reason: SessionEndReason::Transferred
        })
    );
    assert_eq!(ringing(&to(&outs, o2)), Some(ticket), "rings the chosen operator");
    let outs = h.msg(o2, ClientMsg::Accept { ticket_id: ticket });
    let w = writes(&outs);
    assert!(matches!(w[0], Write::InsertSession(ref s) if s.transferred_from == Some(session)));
    // To an unknown operator: refused.
    let (s2, _) = started(&to(&outs, o2)).expect("started");
    let outs = h.msg_with(
        o2,
        ClientMsg::Transfer {
            session_id: s2,
            target: TransferTarget::Operator { operator_id: id(99) },
            note: None,
        },
        Lookup::OperatorExists(Ok(false)),
    );
    assert_eq!(error_code(&to(&outs, o2)), Some(ErrorCode::NotFound));
    let outs = h.msg(
        o2,
        ClientMsg::Transfer {
            session_id: s2,
            target: TransferTarget::Line { line_id: id(LINE + 1) },
            note: None,
        },
    );
    assert!(
        to(&outs, t)
            .iter()
            .any(|m| matches!(m, ServerMsg::QueuePosition { .. } | ServerMsg::Transferring { .. }))
    );
}

#[test]
fn request_scan_names_the_slot_for_the_terminal_only() {
    let mut h = H::new();
    let (t, o) = (id(1), id(2));
    let (_, session) = in_call(&mut h, t, o);
    assert_eq!(h.core.session_item(session, o), Some(id(ITEM)));
    assert_eq!(h.core.session_item(session, id(55)), None);
    let outs = h.msg_with(
        o,
        ClientMsg::RequestScan { session_id: session, slot_id: Some(id(5)), note: None },
        Lookup::SlotName(Ok(Some("身份证".into()))),
    );
    assert!(matches!(&to(&outs, t)[0], ServerMsg::ScanRequested { slot_name: Some(n), .. } if n == "身份证"));
    let outs = h.msg_with(
        o,
        ClientMsg::RequestScan { session_id: session, slot_id: Some(id(6)), note: None },
        Lookup::SlotName(Ok(None)),
    );
    assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::NotFound));
    let outs = h.msg(t, ClientMsg::RequestScan { session_id: session, slot_id: None, note: None });
    assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::Forbidden));
}

#[test]
fn a_terminal_that_drops_keeps_its_place_and_its_call_within_the_window() {
    let mut h = H::new();
    let (t, o) = (id(1), id(2));
    let (_, session) = in_call(&mut h, t, o);
    let outs = h.drop_conn(t);
    assert!(to(&outs, o).iter().any(|m| matches!(m, ServerMsg::PeerDisconnected { .. })));
    let outs = h.connect(t, Role::Terminal);
    assert!(matches!(
        outs.first(),
        Some(Output::Welcome { msg: ServerMsg::Welcome { resumed: true, .. }, .. })
    ));
    assert_eq!(started(&to(&outs, t)), Some((session, Party::Terminal)), "the call is replayed");
    assert!(to(&outs, o).contains(&ServerMsg::PeerReconnected { session_id: session }));
    // Gone for good: the call ends, the operator wraps up.
    h.drop_conn(t);
    let outs = h.advance(WINDOW_MS + 1);
    assert!(
        to(&outs, o).contains(&ServerMsg::SessionEnded {
            session_id: session,
            reason: SessionEndReason::ResidentLeft
        })
    );
}

#[test]
fn a_waiting_ticket_is_abandoned_when_the_window_closes() {
    let mut h = H::new();
    let t = id(1);
    h.connect(t, Role::Terminal);
    h.take(t, Priority::Normal);
    h.drop_conn(t);
    let outs = h.advance(WINDOW_MS + 1);
    assert!(writes(&outs).iter().any(|w| matches!(w, Write::TicketStatus { status: "abandoned", .. })));
}

#[test]
fn an_operator_lost_in_a_call_sends_the_resident_back_to_the_head_of_the_queue() {
    let mut h = H::new();
    let (t, o) = (id(1), id(2));
    let (ticket, session) = in_call(&mut h, t, o);
    h.drop_conn(o);
    let outs = h.advance(WINDOW_MS + 1);
    assert!(to(&outs, t).contains(&ServerMsg::SessionEnded {
        session_id: session,
        reason: SessionEndReason::ConnectionLost
    }));
    assert!(to(&outs, t).iter().any(
        |m| matches!(m, ServerMsg::QueuePosition { ticket_id, position: 1, .. } if *ticket_id == ticket)
    ));
}

#[test]
fn kick_closes_at_once_and_ends_what_was_left() {
    let mut h = H::new();
    let t = id(1);
    h.connect(t, Role::Terminal);
    h.take(t, Priority::Normal);
    let outs = h.feed(Input::Kick { party: t, reason: ByeReason::Revoked });
    assert_eq!(outs[0], Output::Close { party: t, reason: ByeReason::Revoked });
    assert!(
        to(&outs, t)
            .iter()
            .any(|m| matches!(m, ServerMsg::TicketClosed { reason: TicketCloseReason::Abandoned, .. }))
    );
}

#[test]
fn notify_goes_to_the_listed_parties() {
    let mut h = H::new();
    let outs =
        h.feed(Input::Notify { parties: vec![id(1), id(2)], msg: Box::new(ServerMsg::Pong { seq: 1 }) });
    assert_eq!(outs, vec![Output::SendMany { to: vec![id(1), id(2)], msg: ServerMsg::Pong { seq: 1 } }]);
}

#[test]
fn the_board_names_an_operator_with_their_true_state_after_reconnects() {
    let mut h = H::new();
    let (o, sup) = (id(2), id(3));
    h.connect(sup, Role::Supervisor);
    h.available(o);
    h.drop_conn(o);
    h.advance(WINDOW_MS + 1);
    h.connect(o, Role::Operator);
    h.advance(2_000);
    let ServerMsg::Board { operators, .. } = h.core.board(h.now) else { panic!() };
    let me = operators.iter().find(|e| e.operator_id == o).expect("listed");
    assert_eq!(me.name, format!("operator-{}", o.as_u128()));
    assert_eq!(me.state, OperatorStateView::Away, "as the console says");
    h.drop_conn(o);
    let ServerMsg::Board { operators, .. } = h.core.board(h.now) else { panic!() };
    let me = operators.iter().find(|e| e.operator_id == o).expect("still listed");
    assert_eq!((me.name.is_empty(), me.state), (false, OperatorStateView::Offline));
}

// ---- random sequences ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Connect(usize),
    Drop(usize),
    Take(usize),
    Cancel(usize),
    Avail(usize, bool),
    Accept(usize),
    Decline(usize),
    Pick(usize, usize),
    Transfer(usize, bool),
    Signal(usize),
    End(usize),
    WrapUp(usize),
    Rate(usize),
    Wait(i64),
}

const TERMINALS: usize = 3;
const OPERATORS: usize = 3;

fn term_id(i: usize) -> Uuid {
    id(100 + i as u128)
}
fn op_id(i: usize) -> Uuid {
    id(200 + i as u128)
}
/// Parties 0..3 are terminals, 3..6 operators.
fn party(i: usize) -> (Uuid, Role) {
    if i < TERMINALS { (term_id(i), Role::Terminal) } else { (op_id(i - TERMINALS), Role::Operator) }
}

fn step() -> impl Strategy<Value = Step> {
    let p = 0..TERMINALS + OPERATORS;
    prop_oneof![
        p.clone().prop_map(Step::Connect),
        p.clone().prop_map(Step::Drop),
        (0..TERMINALS).prop_map(Step::Take),
        (0..TERMINALS).prop_map(Step::Cancel),
        (0..OPERATORS, any::<bool>()).prop_map(|(o, a)| Step::Avail(o, a)),
        (0..OPERATORS).prop_map(Step::Accept),
        (0..OPERATORS).prop_map(Step::Decline),
        (0..OPERATORS, 0..TERMINALS).prop_map(|(o, t)| Step::Pick(o, t)),
        (0..OPERATORS, any::<bool>()).prop_map(|(o, l)| Step::Transfer(o, l)),
        p.clone().prop_map(Step::Signal),
        p.prop_map(Step::End),
        (0..OPERATORS).prop_map(Step::WrapUp),
        (0..TERMINALS).prop_map(Step::Rate),
        prop_oneof![Just(500i64), Just(RING_MS + 1), Just(WINDOW_MS + 1)].prop_map(Step::Wait),
    ]
}

/// What the outputs so far say, checked after every step.
#[derive(Default)]
struct Seen {
    closed: HashMap<Uuid, usize>,
    /// Last `operator_status` each operator got.
    status: HashMap<Uuid, OperatorStateView>,
    /// Last ticket rung per operator, last session started per party.
    rung: HashMap<Uuid, Uuid>,
    session: HashMap<Uuid, Uuid>,
    issued: HashMap<Uuid, Uuid>,
}

impl Seen {
    fn absorb(&mut self, core: &Core, outs: &[Output]) {
        for o in outs {
            let (targets, msg): (Vec<Uuid>, &ServerMsg) = match o {
                Output::Send { to, msg } => (vec![*to], msg),
                Output::SendMany { to, msg } => (to.clone(), msg),
                _ => continue,
            };
            for t in targets {
                match msg {
                    ServerMsg::TicketClosed { ticket_id, .. } => {
                        *self.closed.entry(*ticket_id).or_default() += 1
                    }
                    ServerMsg::OperatorStatus { state } => {
                        self.status.insert(t, *state);
                    }
                    ServerMsg::Ringing { ticket, .. } => {
                        self.rung.insert(t, ticket.ticket_id);
                    }
                    ServerMsg::SessionStarted { session } => {
                        self.session.insert(t, session.session_id);
                    }
                    ServerMsg::TicketIssued { ticket, .. } => {
                        self.issued.insert(t, ticket.ticket_id);
                    }
                    ServerMsg::Signal { session_id, .. } => {
                        // A session's signals go only to its parties.
                        let s = core.sessions.get(session_id).expect("signal of a held session");
                        assert!(s.parties().contains(&t), "signal to a non-party");
                    }
                    _ => {}
                }
            }
        }
    }
}

fn check_invariants(h: &H, seen: &Seen) {
    let core = &h.core;
    for (ticket, n) in &seen.closed {
        assert_eq!(*n, 1, "ticket {ticket} closed {n} times");
    }
    let mut per_op: HashMap<Uuid, usize> = HashMap::new();
    let mut per_ticket: HashMap<Uuid, usize> = HashMap::new();
    for s in core.sessions.values().filter(|s| s.state != SessState::Closed) {
        *per_op.entry(s.operator).or_default() += 1;
        *per_ticket.entry(s.ticket).or_default() += 1;
    }
    assert!(per_op.values().all(|n| *n <= 1), "an operator in two sessions: {per_op:?}");
    assert!(per_ticket.values().all(|n| *n <= 1), "a ticket in two sessions: {per_ticket:?}");
    for line in [id(LINE), id(LINE + 1)] {
        let mut positions: Vec<u32> = core
            .dispatcher
            .line_positions(crate::dispatch::LineId(line))
            .into_iter()
            .map(|(_, p)| p.position)
            .collect();
        positions.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(positions.len()).expect("small")).collect();
        assert_eq!(positions, expected, "positions without gaps");
    }
    let ServerMsg::Board { operators, .. } = core.board(h.now) else { panic!("board") };
    for i in 0..OPERATORS {
        let op = op_id(i);
        if !core.is_connected(op) {
            continue;
        }
        let e =
            operators.iter().find(|e| e.operator_id == op).expect("every connected operator is on the board");
        assert_eq!(e.name, format!("operator-{}", op.as_u128()), "named");
        if let Some(status) = seen.status.get(&op) {
            assert_eq!(e.state, *status, "the board says what the operator's console says");
        }
    }
}

fn run(h: &mut H, seen: &mut Seen, s: &Step) {
    let outs = match s.clone() {
        Step::Connect(i) => {
            let (p, role) = party(i);
            h.connect(p, role)
        }
        Step::Drop(i) => h.drop_conn(party(i).0),
        Step::Take(t) => h.take(term_id(t), Priority::Normal),
        Step::Cancel(t) => {
            let ticket = seen.issued.get(&term_id(t)).copied().unwrap_or_default();
            h.msg(term_id(t), ClientMsg::CancelTicket { ticket_id: ticket })
        }
        Step::Avail(o, a) => h.msg(op_id(o), ClientMsg::SetAvailability { available: a }),
        Step::Accept(o) => {
            let ticket = seen.rung.get(&op_id(o)).copied().unwrap_or_default();
            h.msg(op_id(o), ClientMsg::Accept { ticket_id: ticket })
        }
        Step::Decline(o) => {
            let ticket = seen.rung.get(&op_id(o)).copied().unwrap_or_default();
            h.msg(op_id(o), ClientMsg::Decline { ticket_id: ticket })
        }
        Step::Pick(o, t) => {
            let ticket = seen.issued.get(&term_id(t)).copied().unwrap_or_default();
            h.msg(op_id(o), ClientMsg::Pick { ticket_id: ticket })
        }
        Step::Transfer(o, line) => {
            let session = seen.session.get(&op_id(o)).copied().unwrap_or_default();
            let target = if line {
                TransferTarget::Line { line_id: id(LINE + 1) }
            } else {
                TransferTarget::Operator { operator_id: op_id((o + 1) % OPERATORS) }
            };
            h.msg_with(
                op_id(o),
                ClientMsg::Transfer { session_id: session, target, note: None },
                Lookup::OperatorExists(Ok(true)),
            )
        }
        Step::Signal(i) => {
            let p = party(i).0;
            let session = seen.session.get(&p).copied().unwrap_or_default();
            h.msg(p, ClientMsg::Signal { session_id: session, signal: Signal::Answer { sdp: sdp("a") } })
        }
        Step::End(i) => {
            let p = party(i).0;
            let session = seen.session.get(&p).copied().unwrap_or_default();
            h.msg(p, ClientMsg::EndCall { session_id: session })
        }
        Step::WrapUp(o) => {
            let session = seen.session.get(&op_id(o)).copied().unwrap_or_default();
            h.msg(
                op_id(o),
                ClientMsg::WrapUp { session_id: session, outcome: Outcome::Completed, notes: None },
            )
        }
        Step::Rate(t) => {
            let session = seen.session.get(&term_id(t)).copied().unwrap_or_default();
            h.msg(
                term_id(t),
                ClientMsg::Rate { session_id: session, level: RatingLevel::Basic, comment: None },
            )
        }
        Step::Wait(ms) => h.advance(ms),
    };
    seen.absorb(&h.core, &outs);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_invariants(steps in proptest::collection::vec(step(), 1..80)) {
        let mut h = H::new();
        let mut seen = Seen::default();
        for s in &steps {
            run(&mut h, &mut seen, s);
            check_invariants(&h, &seen);
        }
        // Everyone leaves; after the windows every ticket has ended exactly once.
        for i in 0..TERMINALS + OPERATORS {
            run(&mut h, &mut seen, &Step::Drop(i));
        }
        run(&mut h, &mut seen, &Step::Wait(WINDOW_MS + 1));
        run(&mut h, &mut seen, &Step::Wait(WINDOW_MS + 1));
        check_invariants(&h, &seen);
        prop_assert!(h.core.tickets.is_empty(), "tickets left: {:?}", h.core.tickets.keys().collect::<Vec<_>>());
        let issued: std::collections::HashSet<Uuid> = h
            .log
            .iter()
            .filter_map(|o| match o {
                Output::Send { msg: ServerMsg::TicketIssued { ticket, .. }, .. } => Some(ticket.ticket_id),
                _ => None,
            })
            .collect();
        for t in issued {
            prop_assert_eq!(seen.closed.get(&t).copied(), Some(1), "ticket {} ends with exactly one ticket_closed", t);
        }
    }
}

// ---- availability: what the resident is told before and after taking a ticket ---------------

mod availability {
    use shared::cases::{HolidayRule, OpeningHours, WeekdayHours};
    use shared::protocol::WaitRange;

    use super::*;
    use crate::calendar::{self, Calendar};
    use crate::switchboard::core::availability::Opening;

    /// Unix ms of a China-time moment.
    fn cst(y: i64, m: i64, d: i64, hh: i64, mm: i64) -> i64 {
        calendar::day_start(calendar::days_from_civil(y, m, d)) + (hh * 60 + mm) * 60_000
    }

    /// Monday to Friday 09:00–17:00, the calendar followed (holidays closed, 调休 open).
    fn office_hours() -> OpeningHours {
        OpeningHours {
            weekly: vec![WeekdayHours {
                weekdays: vec![1, 2, 3, 4, 5],
                open: "09:00".into(),
                close: "17:00".into(),
            }],
            holiday_rule: HolidayRule::FollowCalendar,
            closures: Vec::new(),
        }
    }

    /// The last `queue_position` the terminal got: (position, serving, wait).
    fn last_position(outs: &[Output], terminal: Uuid) -> Option<(u32, Option<u32>, Option<WaitRange>)> {
        outs.iter().rev().find_map(|o| match o {
            Output::Send { to, msg: ServerMsg::QueuePosition { position, serving, wait, .. } }
                if *to == terminal =>
            {
                Some((*position, *serving, *wait))
            }
            _ => None,
        })
    }

    #[test]
    fn no_operator_means_no_number() {
        let mut h = H::new();
        let term = id(1);
        h.connect(term, Role::Terminal);
        let before = h.core.availability(Opening::Open, &[id(LINE)], &HashMap::new());
        assert!(before.open && before.closed_message.is_none());
        assert_eq!((before.lines[0].serving, before.lines[0].wait), (0, None), "当前无人值守, no estimate");

        let outs = h.take(term, Priority::Normal);
        assert_eq!(
            last_position(&outs, term),
            Some((1, Some(0), None)),
            "first in line, nobody serving, no wait"
        );
    }

    #[test]
    fn an_operator_who_is_away_does_not_count() {
        let mut h = H::new();
        let (term, busy, op) = (id(1), id(2), id(3));
        h.connect(term, Role::Terminal);
        // Connected but never made available: away.
        h.connect(op, Role::Operator);
        assert_eq!(h.core.line_availability(id(LINE)).serving, 0);

        // One operator, busy with someone else's ticket, serves the line: the next resident has
        // one call ahead, between one and two handle times (the line's estimate, 5 minutes by
        // default until calls complete).
        h.available(busy);
        let other = id(4);
        h.connect(other, Role::Terminal);
        h.take(other, Priority::Normal);
        let outs = h.take(term, Priority::Normal);
        let wait = WaitRange { min_secs: 300, max_secs: 600 };
        assert_eq!(last_position(&outs, term), Some((2, Some(1), Some(wait))), "one ahead, one operator");

        // The only serving operator steps away: the resident is told at once, without a number.
        let outs = h.msg(busy, ClientMsg::SetAvailability { available: false });
        assert_eq!(last_position(&outs, term), Some((2, Some(0), None)), "当前无人值守 once they are away");
        assert_eq!(h.core.line_availability(id(LINE)).wait, None);

        // The other operator becomes available: a basis again.
        h.msg(op, ClientMsg::SetAvailability { available: true });
        let a = h.core.line_availability(id(LINE));
        assert_eq!(a.serving, 1);
        assert!(a.wait.is_some());
    }

    #[test]
    fn operators_coming_on_duty_one_by_one_do_not_each_message_every_resident() {
        let mut h = H::new();
        let (term, first, second) = (id(1), id(2), id(3));
        h.connect(term, Role::Terminal);
        h.take(term, Priority::Normal);
        h.connect(first, Role::Operator);
        h.connect(second, Role::Operator);
        // The line goes from unstaffed to staffed: the resident hears it at once (no more
        // 当前无人值守)...
        let outs = h.msg(first, ClientMsg::SetAvailability { available: true });
        assert!(last_position(&outs, term).is_some(), "told the line is staffed again");
        // ...a second operator on a staffed line is not worth a message to every resident; it
        // reaches them with the queue's next move.
        let outs = h.msg(second, ClientMsg::SetAvailability { available: true });
        assert_eq!(last_position(&outs, term), None, "no message for each operator coming on duty");
    }

    #[test]
    fn two_operators_halve_the_range() {
        let mut h = H::new();
        h.available(id(2));
        h.available(id(3));
        for t in 10..13 {
            h.connect(id(t), Role::Terminal);
            h.take(id(t), Priority::Normal);
        }
        // Two ring at once; the third is first in the queue behind them: 2 calls ahead shared by 2.
        let a = h.core.line_availability(id(LINE));
        assert_eq!((a.serving, a.waiting), (2, 3));
        assert_eq!(a.wait, Some(WaitRange { min_secs: 450, max_secs: 600 }));
    }

    #[test]
    fn out_of_hours_says_when_it_opens() {
        let cal = Calendar::builtin();
        let h = office_hours();
        // Saturday 5 December 2026, 21:33 China time.
        let now = cst(2026, 12, 5, 21, 33);
        let opening = Opening::at(Some(&h), cal, now);
        assert_eq!(opening, Opening::Closed { next_open_at: Some(cst(2026, 12, 7, 9, 0)) });
        let a = H::new().core.availability(opening, &[id(LINE)], &HashMap::new());
        assert!(!a.open);
        assert_eq!(a.closed_message.as_deref(), Some("本服务点现在不开放，下次开放：12月7日（周一）09:00"));
        // Before opening on a working day it opens the same day; during the hours it is open.
        let early = Opening::at(Some(&h), cal, cst(2026, 12, 7, 8, 15));
        assert_eq!(
            early.closed_message().as_deref(),
            Some("本服务点现在不开放，下次开放：12月7日（周一）09:00")
        );
        assert_eq!(Opening::at(Some(&h), cal, cst(2026, 12, 7, 9, 0)), Opening::Open);
        assert!(matches!(Opening::at(Some(&h), cal, cst(2026, 12, 7, 17, 0)), Opening::Closed { .. }));
        // A point without structured hours is open around the clock.
        assert_eq!(Opening::at(None, cal, now), Opening::Open);
    }

    #[test]
    fn closed_on_a_2026_holiday() {
        let cal = Calendar::builtin();
        // 1 October 2026 (Thursday), 国庆节: closed all week; it opens again on the 8th.
        let opening = Opening::at(Some(&office_hours()), cal, cst(2026, 10, 1, 10, 0));
        assert_eq!(
            opening.closed_message().as_deref(),
            Some("本服务点现在不开放，下次开放：10月8日（周四）09:00")
        );
    }

    #[test]
    fn open_on_a_make_up_working_day() {
        let cal = Calendar::builtin();
        // Saturday 10 October 2026 is a 调休 working day: open with Monday's hours.
        assert_eq!(Opening::at(Some(&office_hours()), cal, cst(2026, 10, 10, 10, 0)), Opening::Open);
        // The Saturday before it is inside the holiday week: closed.
        assert!(matches!(
            Opening::at(Some(&office_hours()), cal, cst(2026, 10, 3, 10, 0)),
            Opening::Closed { .. }
        ));
        // And the next Saturday is closed again.
        let next = Opening::at(Some(&office_hours()), cal, cst(2026, 10, 17, 10, 0));
        assert_eq!(
            next.closed_message().as_deref(),
            Some("本服务点现在不开放，下次开放：10月19日（周一）09:00")
        );
    }

    #[test]
    fn a_line_nobody_serves_says_when_its_roster_brings_someone_on() {
        let cal = Calendar::builtin();
        let rosters = HashMap::from([(id(LINE), office_hours())]);
        let mut h = H::new();
        // Saturday evening, nobody on duty: next on duty Monday 09:00 (the 社保 line has no roster).
        let now = cst(2026, 12, 5, 21, 33);
        let next = crate::api::rosters::next_on_duty(&rosters, cal, now);
        let a = h.core.availability(Opening::Open, &[id(LINE), id(LINE + 1)], &next);
        assert_eq!(a.lines[0].next_staffed_at, Some(cst(2026, 12, 7, 9, 0)));
        assert_eq!((a.lines[1].serving, a.lines[1].next_staffed_at), (0, None), "no roster, no time");
        // During a rostered range with nobody signed in, the next one is the following day's.
        let next = crate::api::rosters::next_on_duty(&rosters, cal, cst(2026, 12, 7, 10, 0));
        assert_eq!(next.get(&id(LINE)), Some(&cst(2026, 12, 8, 9, 0)));
        // Over the National Day holiday the roster follows the calendar.
        let next = crate::api::rosters::next_on_duty(&rosters, cal, cst(2026, 10, 1, 10, 0));
        assert_eq!(next.get(&id(LINE)), Some(&cst(2026, 10, 8, 9, 0)));
        // Someone serving: no "next" time, a wait instead.
        h.available(id(2));
        let next = crate::api::rosters::next_on_duty(&rosters, cal, now);
        let a = h.core.availability(Opening::Open, &[id(LINE)], &next);
        assert_eq!((a.lines[0].serving, a.lines[0].next_staffed_at), (1, None));
        assert!(a.lines[0].wait.is_some());
    }
}

// ---- supervisors in a call: monitor, whisper, barge in, leave, end -----------------------------

mod supervision {
    use shared::protocol::{ParticipantRole, SuperviseMode};

    use super::*;

    fn participants(msgs: &[ServerMsg]) -> Option<Vec<(Uuid, ParticipantRole, Option<SuperviseMode>)>> {
        msgs.iter().rev().find_map(|m| match m {
            ServerMsg::Participants { participants, .. } => {
                Some(participants.iter().map(|p| (p.participant_id, p.role, p.mode)).collect())
            }
            _ => None,
        })
    }

    fn audits(outs: &[Output]) -> Vec<(&'static str, Uuid)> {
        writes(outs)
            .into_iter()
            .filter_map(|w| match w {
                Write::Audit { action, actor, .. } => Some((action, actor)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_supervisor_monitors_whispers_barges_in_and_leaves_every_step_audited() {
        let mut h = H::new();
        let (t, o, sup) = (id(1), id(2), id(3));
        let (_, session) = in_call(&mut h, t, o);
        h.connect(sup, Role::Supervisor);

        let outs = h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor });
        assert!(
            to(&outs, sup).iter().any(|m| matches!(m,
                ServerMsg::Supervising { session_id, mode: SuperviseMode::Monitor, .. } if *session_id == session)),
            "{outs:?}"
        );
        let everyone = vec![
            (t, ParticipantRole::Terminal, None),
            (o, ParticipantRole::Operator, None),
            (sup, ParticipantRole::Supervisor, Some(SuperviseMode::Monitor)),
        ];
        for p in [t, o, sup] {
            assert_eq!(participants(&to(&outs, p)), Some(everyone.clone()), "the operator is always told");
        }
        assert_eq!(audits(&outs), vec![("session.supervise", sup)]);

        // The supervisor offers to the terminal; the terminal answers it, named as the peer.
        let offer = Signal::Offer { sdp: sdp("offer"), ice_restart: false };
        let outs = h.msg(sup, ClientMsg::PeerSignal { session_id: session, peer: t, signal: offer.clone() });
        assert_eq!(
            to(&outs, t),
            vec![ServerMsg::PeerSignal { session_id: session, peer: sup, signal: offer }]
        );
        assert!(to(&outs, o).is_empty());
        let answer = Signal::Answer { sdp: sdp("answer") };
        let outs = h.msg(t, ClientMsg::PeerSignal { session_id: session, peer: sup, signal: answer.clone() });
        assert_eq!(
            to(&outs, sup),
            vec![ServerMsg::PeerSignal { session_id: session, peer: t, signal: answer }]
        );
        // The two parties keep `signal` between them; `peer_signal` always involves a supervisor.
        let c = Signal::Answer { sdp: sdp("x") };
        let outs = h.msg(t, ClientMsg::PeerSignal { session_id: session, peer: o, signal: c.clone() });
        assert_eq!(error_code(&to(&outs, t)), Some(ErrorCode::NotFound));
        assert!(to(&outs, o).is_empty());
        let outs = h.msg(sup, ClientMsg::PeerSignal { session_id: session, peer: sup, signal: c.clone() });
        assert_eq!(error_code(&to(&outs, sup)), Some(ErrorCode::NotFound));

        // Mode changes: whisper, then barge in; the same mode again changes nothing.
        let outs = h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Whisper });
        assert_eq!(audits(&outs), vec![("session.supervise_mode", sup)]);
        assert_eq!(participants(&to(&outs, o)).expect("told")[2].2, Some(SuperviseMode::Whisper));
        let outs = h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Whisper });
        assert!(audits(&outs).is_empty());
        let outs = h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Barge });
        assert_eq!(participants(&to(&outs, t)).expect("told")[2].2, Some(SuperviseMode::Barge));

        // Leaving: everyone gets the list without the supervisor, the leaver too.
        let outs = h.msg(sup, ClientMsg::LeaveSession { session_id: session });
        assert_eq!(audits(&outs), vec![("session.supervise_leave", sup)]);
        for p in [t, o, sup] {
            assert_eq!(participants(&to(&outs, p)).map(|v| v.len()), Some(2));
        }
        // Once gone, no more signaling towards the call.
        let outs = h.msg(sup, ClientMsg::PeerSignal { session_id: session, peer: t, signal: c });
        assert_eq!(error_code(&to(&outs, sup)), Some(ErrorCode::Forbidden));
        assert!(to(&outs, t).is_empty());
    }

    #[test]
    fn only_supervisors_supervise_and_only_live_calls() {
        let mut h = H::new();
        let (t, o, other, sup, admin) = (id(1), id(2), id(4), id(3), id(5));
        let (_, session) = in_call(&mut h, t, o);
        h.connect(other, Role::Operator);
        h.connect(admin, Role::Admin);
        h.connect(sup, Role::Supervisor);
        for who in [other, o, t, admin] {
            let outs = h.msg(who, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor });
            assert_eq!(error_code(&to(&outs, who)), Some(ErrorCode::Forbidden), "{who}");
            assert!(audits(&outs).is_empty());
        }
        let outs = h.msg(sup, ClientMsg::Supervise { session_id: id(77), mode: SuperviseMode::Monitor });
        assert_eq!(error_code(&to(&outs, sup)), Some(ErrorCode::NotFound));
        // A supervisor who has not joined can neither end the call nor signal into it.
        let outs = h.msg(sup, ClientMsg::EndCall { session_id: session });
        assert_eq!(error_code(&to(&outs, sup)), Some(ErrorCode::Forbidden));
        let outs = h.msg(sup, ClientMsg::LeaveSession { session_id: session });
        assert_eq!(error_code(&to(&outs, sup)), Some(ErrorCode::Conflict));
        // After the call ends, it cannot be joined.
        h.msg(o, ClientMsg::EndCall { session_id: session });
        let outs = h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor });
        assert_eq!(error_code(&to(&outs, sup)), Some(ErrorCode::NotFound));
    }

    #[test]
    fn a_supervisor_ends_the_call_and_everyone_is_told_supervisor_ended() {
        let mut h = H::new();
        let (t, o, sup) = (id(1), id(2), id(3));
        let (_, session) = in_call(&mut h, t, o);
        h.connect(sup, Role::Supervisor);
        h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Barge });
        let outs = h.msg(sup, ClientMsg::EndCall { session_id: session });
        let ended =
            ServerMsg::SessionEnded { session_id: session, reason: SessionEndReason::SupervisorEnded };
        for p in [t, o, sup] {
            assert!(to(&outs, p).contains(&ended), "{p}: {outs:?}");
        }
        assert_eq!(audits(&outs), vec![("session.supervisor_end", sup)]);
        assert!(to(&outs, o).contains(&ServerMsg::OperatorStatus { state: OperatorStateView::WrapUp }));
        assert!(h.core.sessions[&session].guests.is_empty(), "the supervisors left with the call");
    }

    #[test]
    fn a_supervisor_who_drops_leaves_and_the_board_names_live_calls() {
        let mut h = H::new();
        let (t, o, sup) = (id(1), id(2), id(3));
        let (_, session) = in_call(&mut h, t, o);
        h.connect(sup, Role::Supervisor);
        let ServerMsg::Board { operators, .. } = h.core.board(h.now) else { panic!("board") };
        assert_eq!(operators.iter().find(|x| x.operator_id == o).and_then(|x| x.session_id), Some(session));
        h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor });
        let outs = h.drop_conn(sup);
        assert_eq!(audits(&outs), vec![("session.supervise_leave", sup)]);
        assert_eq!(participants(&to(&outs, o)).map(|v| v.len()), Some(2));
        // The operator's reconnect re-sends the list only while a supervisor is in the call.
        h.msg(sup, ClientMsg::Ping { seq: 1 });
        h.connect(sup, Role::Supervisor);
        h.msg(sup, ClientMsg::Supervise { session_id: session, mode: SuperviseMode::Monitor });
        h.drop_conn(o);
        let outs = h.connect(o, Role::Operator);
        assert_eq!(participants(&to(&outs, o)).map(|v| v.len()), Some(3));
        assert!(to(&outs, sup).contains(&ServerMsg::PeerReconnected { session_id: session }));
        // A transfer ends the call for its supervisors.
        let outs = h.msg(
            o,
            ClientMsg::Transfer {
                session_id: session,
                target: TransferTarget::Line { line_id: id(LINE + 1) },
                note: None,
            },
        );
        assert!(
            to(&outs, sup)
                .iter()
                .any(|m| matches!(m, ServerMsg::SessionEnded { reason: SessionEndReason::Transferred, .. }))
        );
    }

    #[test]
    fn an_operator_invites_a_specialist_who_joins_is_seen_by_all_and_leaves() {
        let mut h = H::new();
        let (t, o, spec, busy) = (id(1), id(2), id(6), id(7));
        let (_, session) = in_call(&mut h, t, o);
        h.available(spec);
        // Only the call's operator invites; never themselves; an offline operator is refused.
        let outs = h.msg(
            spec,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Operator { operator_id: t },
                note: None,
            },
        );
        assert_eq!(error_code(&to(&outs, spec)), Some(ErrorCode::Forbidden));
        let outs = h.msg(
            o,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Operator { operator_id: busy },
                note: None,
            },
        );
        assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::Unavailable));

        // By line: the free operator of that line is invited.
        let outs = h.msg(
            o,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Line { line_id: id(LINE + 1) },
                note: Some(shared::validate::Notes::try_from("请协助核对社保记录".to_owned()).expect("note")),
            },
        );
        assert!(to(&outs, spec).iter().any(|m| matches!(m,
            ServerMsg::Invited { session_id, note: Some(n), .. } if *session_id == session && n.contains("社保"))),
            "{outs:?}");
        assert_eq!(audits(&outs), vec![("session.invite", o)]);
        let outs = h.msg(
            o,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Operator { operator_id: spec },
                note: None,
            },
        );
        assert_eq!(error_code(&to(&outs, o)), Some(ErrorCode::Conflict), "invited once");

        // Someone not invited cannot answer; the invitee joins and is set away.
        h.connect(busy, Role::Operator);
        let outs = h.msg(busy, ClientMsg::AnswerInvite { session_id: session, accept: true });
        assert_eq!(error_code(&to(&outs, busy)), Some(ErrorCode::NotFound));
        let outs = h.msg(spec, ClientMsg::AnswerInvite { session_id: session, accept: true });
        assert!(to(&outs, spec).contains(&ServerMsg::OperatorStatus { state: OperatorStateView::Away }));
        for p in [t, o, spec] {
            let list = participants(&to(&outs, p)).expect("told");
            assert_eq!(list.last(), Some(&(spec, ParticipantRole::Specialist, None)), "{p}");
        }
        assert_eq!(audits(&outs), vec![("session.specialist_join", spec)]);
        // The specialist signals with the terminal; a specialist cannot end the call for all.
        let offer = Signal::Offer { sdp: sdp("offer"), ice_restart: false };
        let outs = h.msg(spec, ClientMsg::PeerSignal { session_id: session, peer: t, signal: offer.clone() });
        assert_eq!(
            to(&outs, t),
            vec![ServerMsg::PeerSignal { session_id: session, peer: spec, signal: offer }]
        );
        let outs = h.msg(spec, ClientMsg::EndCall { session_id: session });
        assert_eq!(error_code(&to(&outs, spec)), Some(ErrorCode::Forbidden));
        assert!(h.core.sessions[&session].state.is_live());

        let outs = h.msg(spec, ClientMsg::LeaveSession { session_id: session });
        assert_eq!(audits(&outs), vec![("session.specialist_leave", spec)]);
        assert_eq!(participants(&to(&outs, o)).map(|v| v.len()), Some(2));
    }

    #[test]
    fn a_declined_or_lapsed_invitation_tells_the_operator() {
        let mut h = H::new();
        let (t, o, spec) = (id(1), id(2), id(6));
        let (_, session) = in_call(&mut h, t, o);
        h.available(spec);
        h.msg(
            o,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Operator { operator_id: spec },
                note: None,
            },
        );
        let outs = h.msg(spec, ClientMsg::AnswerInvite { session_id: session, accept: false });
        assert!(to(&outs, o).contains(&ServerMsg::InviteDeclined { session_id: session, operator_id: spec }));
        assert_eq!(audits(&outs), vec![("session.invite_declined", spec)]);
        // Invited again, but the call ends first: the invitation lapses.
        h.msg(
            o,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Operator { operator_id: spec },
                note: None,
            },
        );
        h.msg(o, ClientMsg::EndCall { session_id: session });
        let outs = h.msg(spec, ClientMsg::AnswerInvite { session_id: session, accept: true });
        assert_eq!(error_code(&to(&outs, spec)), Some(ErrorCode::NotFound));
    }

    fn join_as_specialist(h: &mut H, o: Uuid, spec: Uuid, session: Uuid) {
        h.msg(
            o,
            ClientMsg::Invite {
                session_id: session,
                target: TransferTarget::Operator { operator_id: spec },
                note: None,
            },
        );
        let outs = h.msg(spec, ClientMsg::AnswerInvite { session_id: session, accept: true });
        assert!(participants(&to(&outs, spec)).is_some_and(|l| l.iter().any(|p| p.0 == spec)));
    }

    #[test]
    fn a_specialist_takes_the_call_over_without_ringing() {
        for made_available in [true, false] {
            let mut h = H::new();
            let (t, o, spec, other) = (id(1), id(2), id(6), id(7));
            let (ticket, session) = in_call(&mut h, t, o);
            if made_available {
                h.available(spec);
            } else {
                // Signed in, never took calls: unknown to the dispatcher until the take-over.
                h.connect(spec, Role::Operator);
            }
            h.connect(other, Role::Operator);
            join_as_specialist(&mut h, o, spec, session);
            // Only the specialist in the call may take it over.
            for who in [o, other] {
                let outs = h.msg(who, ClientMsg::TakeOver { session_id: session });
                assert_eq!(error_code(&to(&outs, who)), Some(ErrorCode::Forbidden), "{who}");
            }
            let outs = h.msg(spec, ClientMsg::TakeOver { session_id: session });
            assert!(ringing(&to(&outs, spec)).is_none(), "no ringing for a take-over");
            let ended =
                ServerMsg::SessionEnded { session_id: session, reason: SessionEndReason::Transferred };
            for p in [t, o, spec] {
                assert!(to(&outs, p).contains(&ended), "{p}: {outs:?}");
            }
            let new = to(&outs, t)
                .into_iter()
                .find_map(|m| match m {
                    ServerMsg::SessionStarted { session } => Some(session),
                    _ => None,
                })
                .expect("a new session for the terminal");
            assert_eq!(new.operator_id, spec);
            assert_eq!(new.ticket.ticket_id, ticket, "the same ticket, the same resident");
            assert_eq!(started(&to(&outs, spec)), Some((new.session_id, Party::Operator)));
            assert_eq!(audits(&outs), vec![("session.take_over", spec)]);
            assert_eq!(h.core.operator_view(spec), OperatorStateView::InCall);
            assert_ne!(h.core.operator_view(o), OperatorStateView::InCall, "the operator is out of the call");
            // The specialist's own lines are theirs again.
            assert_eq!(h.core.parties[&spec].skills, vec![id(LINE), id(LINE + 1)]);
        }
    }
}

/// #16 item 6: a point's tickets ring its own center's operators first; an operator of another
/// center is rung only at the overflow instant, by a tick alone.
#[test]
fn a_centers_ticket_rings_another_centers_operator_only_at_the_overflow() {
    let mut h = H::new();
    let (t, own, other) = (id(1), id(2), id(3));
    h.centers = HashMap::from([(own, id(61)), (other, id(62))]);
    h.point_center = Some(id(61));
    h.connect(t, Role::Terminal);
    // Both idle, the other center's operator longest: the point's own center rings first.
    h.available(other);
    h.available(own);
    let outs = h.take(t, Priority::Normal);
    assert!(ringing(&to(&outs, own)).is_some(), "own center first");
    assert_eq!(ringing(&to(&outs, other)), None);
    let ticket = ringing(&to(&outs, own)).unwrap_or_default();
    let outs = h.msg(own, ClientMsg::Accept { ticket_id: ticket });
    assert!(started(&to(&outs, own)).is_some(), "{outs:?}");

    // Their own operator in that call: the next resident of the point waits for the overflow.
    let t2 = id(4);
    h.connect(t2, Role::Terminal);
    let taken_at = h.now;
    let outs = h.take(t2, Priority::Normal);
    assert_eq!(ringing(&to(&outs, other)), None, "not before the overflow");
    let second = to(&outs, t2)
        .iter()
        .find_map(|m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .unwrap_or_default();
    let outs = h.msg(other, ClientMsg::Pick { ticket_id: second });
    assert_eq!(error_code(&to(&outs, other)), Some(ErrorCode::Forbidden), "no pick before the overflow");
    // The driver sleeps until the core's next deadline: the overflow is one of them.
    let overflow = taken_at + OVERFLOW_MS;
    assert_eq!(h.core.dispatcher.next_deadline(), Some(crate::dispatch::Millis(overflow)));
    assert!(h.core.next_deadline().is_some_and(|d| d <= overflow));
    h.now = taken_at + OVERFLOW_MS - 1;
    let outs = h.feed(Input::Tick);
    assert_eq!(ringing(&to(&outs, other)), None, "not a millisecond before");
    h.now = taken_at + OVERFLOW_MS;
    let outs = h.feed(Input::Tick);
    assert_eq!(ringing(&to(&outs, other)), Some(second), "rung at the overflow with no other event");
}

/// The position a terminal was last told in `outs`.
fn told_position(outs: &[Output], terminal: Uuid) -> Option<u32> {
    to(outs, terminal).iter().rev().find_map(|m| match m {
        ServerMsg::QueuePosition { position, .. } => Some(*position),
        _ => None,
    })
}

#[test]
fn a_lines_moves_are_told_at_once_after_a_quiet_second_and_at_most_once_a_second() {
    let mut h = H::new();
    let (o, t1, t2, t3, t4) = (id(2), id(10), id(11), id(12), id(13));
    for t in [t1, t2, t3] {
        h.connect(t, Role::Terminal);
        h.take(t, Priority::Normal);
    }
    let outs = {
        h.available(o);
        h.log.clone()
    };
    let ticket = ringing(&to(&outs, o)).expect("the first ticket rings");
    // A quiet second later the head is answered: the accept's own turn walks no line...
    h.now += POSITIONS_INTERVAL_MS + 1;
    let conn = h.conns[&o];
    let msg = ClientMsg::Accept { ticket_id: ticket };
    let outs = h.core.handle(Input::Message { party: o, conn, msg, lookup: Lookup::None }, h.now);
    assert!(started(&to(&outs, o)).is_some());
    assert_eq!(
        (told_position(&outs, t2), told_position(&outs, t3)),
        (None, None),
        "not in the accept's turn"
    );
    // ...the tick the core asks for at once tells everyone behind the head.
    assert!(h.core.next_deadline().is_some_and(|d| d <= h.now), "a tick at once");
    let outs = h.advance(0);
    assert_eq!((told_position(&outs, t2), told_position(&outs, t3)), (Some(1), Some(2)));
    // A priority ticket moves the line again within the second: its own position is told at
    // once, the others' with the line's next tick, one second after the last.
    h.now += 10;
    h.connect(t4, Role::Terminal);
    let outs = h.take(t4, Priority::Elderly);
    assert_eq!(told_position(&outs, t4), Some(1), "a new ticket learns its place at once");
    assert_eq!((told_position(&outs, t2), told_position(&outs, t3)), (None, None));
    let outs = h.advance(POSITIONS_INTERVAL_MS - 11);
    assert_eq!(told_position(&outs, t2), None, "not before the second is over");
    let outs = h.advance(1);
    assert_eq!((told_position(&outs, t2), told_position(&outs, t3)), (Some(2), Some(3)));
    assert_eq!(told_position(&outs, t4), None, "unchanged: not told again");
    assert!(h.core.positions_due.is_empty(), "nothing left to tell");
}
