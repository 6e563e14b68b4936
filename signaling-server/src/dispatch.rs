//! Ticket dispatch: a pure, sans-IO state machine (str0m style).
//!
//! Residents take a *ticket* for a service item; each item belongs to a *line* (`LineId`).
//! Operators have *skills* (the lines they serve). The [`Dispatcher`] decides which ticket
//! rings which operator. It does no IO, reads no clock and never sleeps: every event method
//! takes the current time as [`Millis`] and returns the [`Action`]s the caller must carry out.
//! Offer timeouts are driven by [`Dispatcher::tick`]; [`Dispatcher::next_deadline`] says when
//! the next one is due, so the caller can sleep exactly until then.
//!
//! # Model and policies
//! * A ticket is **waiting** in its line's queue (possibly *suspended*: its terminal is
//!   disconnected; it keeps its place but is not offered), **ringing** exactly one operator, or
//!   **assigned** (in a call). [`Dispatcher::call_ended`] and [`Dispatcher::cancel`] forget it
//!   ([`Action::TicketClosed`]). Each operator rings at most one ticket.
//! * **Service order** within a line: tickets transferred from another call first (protocol
//!   §5.3: "back into that line's queue, at the head"), then any non-`Normal` priority class,
//!   then `Normal`; FIFO within a class by a global enqueue sequence number (not the timestamp,
//!   so equal timestamps stay FIFO). The key `(class, seq)` never changes while the ticket
//!   waits or rings, so suspending, a withdrawn offer or a fallback never loses its place.
//! * **Matching** runs whenever an operator becomes Available or a ticket becomes offerable
//!   (or overflows, see centers below): a ticket goes to the skilled Available operator idle
//!   longest (earliest to become Available); an operator gets the best ticket across its lines,
//!   tickets transferred to it by name first. After every call (and every `tick` up to `now`):
//!   no Available operator has an offerable ticket it may be offered.
//! * **Ring timeout** ([`Config::ring_timeout_ms`]) is a *miss*: the ticket is re-offered to
//!   the next skilled Available operator other than the one that missed it; that operator gets
//!   another waiting ticket if there is one, else the same ticket again. After
//!   [`Config::misses_before_away`] consecutive misses (0 = never) the operator is set `Away`.
//!   Accepting or picking resets the count. A **decline** re-offers the same way but neither
//!   counts as a miss nor resets the count.
//! * **Named transfer** ([`Dispatcher::enqueue_for_operator`]): offered only to that operator.
//!   If it misses or declines, goes `Away` or `Offline` (or already is), the ticket falls back
//!   to its line queue keeping its key ([`Action::DirectedFallback`]). Directed tickets are not
//!   on the line board and only their target may pick them.
//! * **Line transfer** ([`Dispatcher::requeue`]) of a known ticket: it goes to the head of the
//!   new line (behind tickets transferred earlier, ordered by original age). The transferring
//!   operator becomes Available without wrap-up and is not offered the ticket back if anyone
//!   else can take it.
//! * **Pick**: an `Available` or `Away` operator (an explicit pick proves presence) takes any
//!   waiting, non-suspended ticket of a line it serves, even one ringing someone else (that
//!   offer is withdrawn with [`WithdrawReason::TakenByOther`]).
//! * **Offline** while ringing or in a call: the ticket waits again at its original place
//!   ([`Action::CallAborted`] for a call); tickets directed to the operator fall back.
//! * **Acceptance centers** (受理中心): a ticket may carry its point's center and an operator
//!   its own ([`Dispatcher::enqueue_in`], [`Dispatcher::operator_online_in`]). A ticket of
//!   center `C` is *reserved* to `C`'s operators (and operators with no center) until it has
//!   waited [`Config::overflow_after_ms`] since it was taken; from that instant (its *overflow*)
//!   it is district-wide and every skilled operator may be offered or pick it. The overflow
//!   instant is a deadline like an offer expiry ([`Dispatcher::next_deadline`],
//!   [`Dispatcher::tick`]), so an idle operator of another center is rung at that instant
//!   without any other event. Overflow `0`, a ticket without a center and an operator without a
//!   center mean no restriction. What an operator of center `A` is offered, in the usual
//!   service order: tickets of `A`, tickets without a center, and overflowed tickets of other
//!   centers. An overflowed ticket is not put behind `A`'s own younger tickets of its class:
//!   once it overflows it is a district ticket, served by its age like the rest (putting own
//!   tickets first would starve it whenever `A` has a queue of its own, which is when overflow
//!   matters). A ticket goes to the longest-idle eligible operator, preferring its own center's
//!   operators (and operators with no center) even after the overflow. An explicit **pick** of
//!   another center's reserved ticket is refused ([`DispatchError::OtherCenter`]): before the
//!   overflow the point's own center serves it. A named transfer is not restricted (the
//!   operator chose the colleague); if it falls back, the rules above apply again.
//! * **Wait estimate**: each line keeps an EWMA (alpha 1/5) of completed calls' handle time,
//!   starting at [`Config::default_handle_ms`]. A waiting ticket at position `p` on a line with
//!   `n` online skilled operators (at least 1) waits about `p * ewma / n` (fluid approximation:
//!   `n` operators finish `n` calls per `ewma`); a ringing ticket waits 0. Positions and
//!   estimates are per line, district-wide: every skilled operator serves a center's tickets at
//!   the latest after the overflow, so the line's queue and operators are the honest figure.
//! * **Appointments** (预约, [`Dispatcher::enqueue_appointment`]): a checked-in appointment's
//!   ticket has its own class, served after transferred tickets and before every other
//!   class, but **only from its slot start**: checked in early, it waits as a `Normal`
//!   walk-in (and may be served as one); at the slot start ([`Dispatcher::tick`], the start
//!   is in [`Dispatcher::next_deadline`]) it moves to the appointment class, FIFO by its
//!   original seq. Checked in after its slot end it is a plain walk-in from the start.
//!   Bounded: after [`APPOINTMENT_RUN`] consecutive appointment tickets assigned on a line,
//!   the next operator matched on that line takes the first waiting non-appointment ticket
//!   it may take (if any) before the next appointment; any non-appointment assignment resets
//!   the run. Positions count in key order and so ignore this bound (an appointment's
//!   position can be one too optimistic per run). Centers apply to appointments as to every
//!   ticket.
//!
//! # Complexity
//! Per line, the queue and the offerable tickets are `BTreeMap<(class, seq), TicketId>` and
//! the Available operators a `BTreeMap<idle_seq, OperatorId>`; the same again keyed by center
//! (`reserved`: tickets reserved to a center, `open`: the district-wide ones; `available_in`:
//! operators by `(center, idle_seq)`), so an operator's or a ticket's eligible counterpart is
//! found by a few range heads; offers expire from a `BTreeSet<(expires_at, TicketId)>` and
//! reservations from a `BTreeSet<(overflow_at, TicketId)>`. Each event costs `O(S log n)`, `S` = lines an operator
//! serves. [`Dispatcher::position`] is `O(log n)` (a treap with subtree sizes per line; a
//! ticket directed to an operator counts the few directed ahead of it), and
//! [`Dispatcher::board`] `O(lines + operators log operators)`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use uuid::Uuid;

/// Unix time in milliseconds, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TicketId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineId(pub Uuid);

/// An acceptance center (受理中心).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CenterId(pub Uuid);
/// How many appointment tickets in a row a line serves before a waiting walk-in gets its turn.
pub const APPOINTMENT_RUN: u32 = 3;

/// Every class except `Normal` is served first; they share one FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    Normal,
    Elderly,
    Disabled,
    Pregnant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorState {
    Offline,
    Available,
    Ringing(TicketId),
    InCall(TicketId),
    WrapUp,
    Away,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long an offer rings before it counts as a miss.
    pub ring_timeout_ms: i64,
    /// Consecutive misses after which an operator is set `Away` (0 = never).
    pub misses_before_away: u32,
    /// Initial per-line handle-time estimate used for wait estimates.
    pub default_handle_ms: i64,
    /// How long a ticket of a center waits for that center's operators before any skilled
    /// operator of the district may be offered it (0 = no center preference).
    pub overflow_after_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ring_timeout_ms: 20_000,
            misses_before_away: 2,
            default_handle_ms: 300_000,
            overflow_after_ms: 120_000,
        }
    }
}

/// Why an offer stopped ringing without an accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawReason {
    /// Not accepted before `expires_at` (a miss).
    Timeout,
    Declined,
    /// The ticket was cancelled.
    Cancelled,
    /// The operator went offline or away.
    OperatorGone,
    /// Another operator picked the ticket.
    TakenByOther,
    /// The resident's terminal disconnected.
    Suspended,
    /// The ticket was transferred elsewhere.
    Transferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Cancelled,
    Completed,
}

/// Something the caller must do or publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ring `operator` with `ticket` until `expires_at`.
    Offer {
        ticket: TicketId,
        operator: OperatorId,
        line: LineId,
        expires_at: Millis,
    },
    /// Stop ringing.
    OfferWithdrawn {
        ticket: TicketId,
        operator: OperatorId,
        reason: WithdrawReason,
    },
    OperatorStateChanged {
        operator: OperatorId,
        state: OperatorState,
    },
    /// The call session between the ticket's terminal and the operator starts.
    Assigned {
        ticket: TicketId,
        operator: OperatorId,
        line: LineId,
    },
    /// The operator went offline mid-call; the ticket waits again at its original place.
    CallAborted {
        ticket: TicketId,
        operator: OperatorId,
        line: LineId,
    },
    /// A ticket transferred to `operator` by name now waits in the queue of `line`.
    DirectedFallback {
        ticket: TicketId,
        operator: OperatorId,
        line: LineId,
    },
    /// Positions on this line changed: re-send positions and the board.
    QueueChanged {
        line: LineId,
    },
    /// The dispatcher forgot the ticket.
    TicketClosed {
        ticket: TicketId,
        reason: CloseReason,
    },
}

/// A refused event; the dispatcher is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchError {
    UnknownTicket(TicketId),
    UnknownOperator(OperatorId),
    DuplicateTicket(TicketId),
    /// The ticket is not ringing this operator.
    NotOffered(TicketId, OperatorId),
    OfferExpired(TicketId),
    /// The operator's state does not allow the event.
    InvalidOperatorState(OperatorId, OperatorState),
    /// E.g. cancelling or suspending an assigned ticket.
    InvalidTicketState(TicketId),
    NotSkilled(OperatorId, LineId),
    /// Suspended, or directed to another operator.
    NotPickable(TicketId),
    /// Reserved to another acceptance center until its overflow.
    OtherCenter(TicketId),
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dispatch refused: {self:?}")
    }
}

impl std::error::Error for DispatchError {}

/// The actions to carry out, or why nothing changed.
pub type Outcome = Result<Vec<Action>, DispatchError>;

/// Public view of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    Waiting { line: LineId, suspended: bool, directed_to: Option<OperatorId> },
    Ringing { line: LineId, operator: OperatorId, expires_at: Millis },
    Assigned { line: LineId, operator: OperatorId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1 = next; counts the tickets ahead in service order (ringing, suspended included).
    pub position: u32,
    pub estimated_wait_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineBoard {
    pub line: LineId,
    /// Unassigned tickets in the line queue (ringing and suspended included, directed not).
    pub waiting: u32,
    /// Those of them with a non-`Normal` priority.
    pub priority_waiting: u32,
    pub longest_wait_ms: i64,
    /// The first tickets in service order (at most [`BOARD_HEAD`]), for operators to pick.
    pub head: Vec<TicketId>,
}

/// How many of each line's next tickets the board lists.
pub const BOARD_HEAD: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// Sorted by line id.
    pub lines: Vec<LineBoard>,
    /// Every operator ever seen, sorted by id.
    pub operators: Vec<(OperatorId, OperatorState)>,
}

/// Service-order key: `(class, seq)`; class 0 = transferred, 1 = appointment (from its slot
/// start), 2 = priority, 3 = normal.
type Key = (u8, u64);

/// The appointment class of a key.
const APPOINTMENT_CLASS: u8 = 1;

/// A ticket's appointment standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appointment {
    /// A walk-in (or an appointment checked in after its slot end).
    No,
    /// Checked in before its slot: a walk-in until this slot start.
    From(Millis),
    /// In the appointment class.
    Due,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Ringing { op: OperatorId, expires_at: Millis },
    Assigned { op: OperatorId, since: Millis },
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    line: LineId,
    priority: Priority,
    transferred: bool,
    appointment: Appointment,
    seq: u64,
    enqueued_at: Millis,
    suspended: bool,
    /// Named-transfer target.
    target: Option<OperatorId>,
    /// The operator that last missed, declined or transferred it: offered it only as a last resort.
    avoid: Option<OperatorId>,
    phase: Phase,
    /// The center of the ticket's point.
    center: Option<CenterId>,
    /// `center` until the overflow, then `None` (district-wide).
    reserved: Option<CenterId>,
}

impl Ticket {
    fn key(&self) -> Key {
        let class = match (self.transferred, self.appointment, self.priority) {
            (true, _, _) => 0,
            (false, Appointment::Due, _) => APPOINTMENT_CLASS,
            (false, _, Priority::Normal) => 3,
            (false, _, _) => 2,
        };
        (class, self.seq)
    }
    fn offerable(&self) -> bool {
        self.phase == Phase::Queued && !self.suspended
    }
    /// Whether an operator of `center` may be offered (or pick) it now, directed tickets aside.
    fn open_to(&self, center: Option<CenterId>) -> bool {
        self.reserved.is_none() || center.is_none() || self.reserved == center
    }
}

/// The tickets of `m` in service order, skipping the appointment class when `from` is past it
/// (transferred tickets always first).
fn heads_from(m: &BTreeMap<Key, TicketId>, from: Key) -> Box<dyn Iterator<Item = (Key, TicketId)> + '_> {
    Box::new(m.range(..(APPOINTMENT_CLASS, 0)).chain(m.range(from..)).map(|(&k, &id)| (k, id)))
}

/// The whole idle range of one center (or of no center) in the `available_in` index.
fn center_idle(c: Option<CenterId>) -> std::ops::RangeInclusive<(Option<CenterId>, u64)> {
    (c, 0)..=(c, u64::MAX)
}

#[derive(Debug)]
struct Operator {
    skills: BTreeSet<LineId>,
    state: OperatorState,
    /// Order of becoming Available (smaller = idle longer).
    idle_seq: u64,
    misses: u32,
    /// Waiting or ringing tickets transferred to this operator by name.
    directed: BTreeMap<Key, TicketId>,
    center: Option<CenterId>,
}

#[derive(Debug)]
struct Line {
    /// Waiting and ringing tickets (not directed), in service order.
    queue: BTreeMap<Key, TicketId>,
    /// The keys of `queue` as an order-statistics set: a ticket's place in `O(log n)`.
    ranks: RankSet,
    /// Non-`Normal` tickets in `queue`.
    priority: u32,
    /// Waiting, non-suspended, non-directed tickets.
    offerable: BTreeMap<Key, TicketId>,
    /// Those of them reserved to a center (before their overflow), by center.
    reserved: BTreeMap<(CenterId, Key), TicketId>,
    /// Those of them open to every operator (no center, or overflowed).
    open: BTreeMap<Key, TicketId>,
    /// Available skilled operators by idle order.
    available: BTreeMap<u64, OperatorId>,
    /// The same by the operators' center.
    available_in: BTreeMap<(Option<CenterId>, u64), OperatorId>,
    /// Online (not Offline) skilled operators.
    online: u32,
    /// Skilled operators serving now: online and not Away (available, ringing, in a call or
    /// wrapping one up). What a resident's wait depends on.
    serving: u32,
    handle_ewma_ms: i64,
    /// Appointment tickets assigned in a row on this line (see [`APPOINTMENT_RUN`]).
    appointment_run: u32,
}

fn line_entry(lines: &mut BTreeMap<LineId, Line>, id: LineId, handle_ms: i64) -> &mut Line {
    lines.entry(id).or_insert_with(|| Line {
        queue: BTreeMap::new(),
        ranks: RankSet::default(),
        priority: 0,
        offerable: BTreeMap::new(),
        reserved: BTreeMap::new(),
        open: BTreeMap::new(),
        available: BTreeMap::new(),
        available_in: BTreeMap::new(),
        online: 0,
        serving: 0,
        handle_ewma_ms: handle_ms,
        appointment_run: 0,
    })
}

/// Actions of one event; `QueueChanged` is deduplicated and emitted last.
#[derive(Default)]
struct Out {
    actions: Vec<Action>,
    changed: Vec<LineId>,
}

impl Out {
    fn push(&mut self, a: Action) {
        self.actions.push(a);
    }
    fn changed(&mut self, line: LineId) {
        if !self.changed.contains(&line) {
            self.changed.push(line);
        }
    }
    fn finish(mut self) -> Outcome {
        let lines = std::mem::take(&mut self.changed);
        self.actions.extend(lines.into_iter().map(|line| Action::QueueChanged { line }));
        Ok(self.actions)
    }
}

/// The dispatch state machine; see the module docs for the model and policies.
#[derive(Debug)]
pub struct Dispatcher {
    config: Config,
    tickets: HashMap<TicketId, Ticket>,
    ops: HashMap<OperatorId, Operator>,
    lines: BTreeMap<LineId, Line>,
    deadlines: BTreeSet<(Millis, TicketId)>,
    /// Overflow instants of tickets still reserved to their center (whatever their phase).
    overflows: BTreeSet<(Millis, TicketId)>,
    /// Appointment tickets checked in early, by slot start (stale entries skipped).
    appointments_due: BTreeSet<(Millis, TicketId)>,
    next_seq: u64,
    next_idle: u64,
}

impl Dispatcher {
    pub fn new(config: Config) -> Self {
        Dispatcher {
            config,
            tickets: HashMap::new(),
            ops: HashMap::new(),
            lines: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            overflows: BTreeSet::new(),
            appointments_due: BTreeSet::new(),
            next_seq: 0,
            next_idle: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- operators ---------------------------------------------------------------------

    /// Logs an operator in with its skills; it becomes Available. If it is already online
    /// this only replaces its skills (see [`Self::set_skills`]). Its center is kept (none for
    /// an operator never seen).
    pub fn operator_online(&mut self, op: OperatorId, skills: &[LineId], now: Millis) -> Outcome {
        let center = self.ops.get(&op).and_then(|o| o.center);
        self.operator_online_in(op, skills, center, now)
    }

    /// [`Self::operator_online`] for an operator of acceptance center `center`.
    pub fn operator_online_in(
        &mut self,
        op: OperatorId,
        skills: &[LineId],
        center: Option<CenterId>,
        now: Millis,
    ) -> Outcome {
        match self.ops.get(&op).map(|o| o.state) {
            Some(OperatorState::Offline) => self.replace_skills(op, skills, center),
            Some(_) => return self.set_skills_in(op, skills, center, now),
            None => {
                let skills = skills.iter().copied().collect();
                let directed = BTreeMap::new();
                let state = OperatorState::Offline;
                let o = Operator { skills, state, idle_seq: 0, misses: 0, directed, center };
                self.ops.insert(op, o);
                self.index_op(op, true);
            }
        }
        let mut out = Out::default();
        self.set_op_state(op, OperatorState::Available, &mut out);
        self.match_operator(op, now, &mut out);
        out.finish()
    }

    /// Logs an operator out. A ringing offer is withdrawn and a call in progress aborted;
    /// either ticket waits again at its original place. Directed tickets fall back.
    pub fn operator_offline(&mut self, op: OperatorId, now: Millis) -> Outcome {
        self.leave(op, OperatorState::Offline, now)
    }

    /// `Available`, `WrapUp` or `Ringing` -> `Away` (a ringing offer is withdrawn without a
    /// miss); tickets directed to the operator fall back to their lines.
    pub fn set_away(&mut self, op: OperatorId, now: Millis) -> Outcome {
        match self.op_state(op)? {
            state @ (OperatorState::Offline | OperatorState::InCall(_)) => {
                Err(DispatchError::InvalidOperatorState(op, state))
            }
            _ => self.leave(op, OperatorState::Away, now),
        }
    }

    /// Replaces the operator's skills; a current offer is kept.
    pub fn set_skills(&mut self, op: OperatorId, skills: &[LineId], now: Millis) -> Outcome {
        let center = self.ops.get(&op).and_then(|o| o.center);
        self.set_skills_in(op, skills, center, now)
    }

    /// Replaces the operator's skills and center; a current offer is kept.
    pub fn set_skills_in(
        &mut self,
        op: OperatorId,
        skills: &[LineId],
        center: Option<CenterId>,
        now: Millis,
    ) -> Outcome {
        self.op_state(op)?;
        let mut out = Out::default();
        self.replace_skills(op, skills, center);
        self.match_operator(op, now, &mut out);
        out.finish()
    }

    /// `Away` or `WrapUp` -> `Available` (no-op if already Available).
    pub fn set_available(&mut self, op: OperatorId, now: Millis) -> Outcome {
        let mut out = Out::default();
        match self.op_state(op)? {
            OperatorState::Available => {}
            OperatorState::Away | OperatorState::WrapUp => {
                self.set_op_state(op, OperatorState::Available, &mut out);
                self.match_operator(op, now, &mut out);
            }
            state => {
                return Err(DispatchError::InvalidOperatorState(op, state));
            }
        }
        out.finish()
    }

    /// `InCall` -> `WrapUp`; the ticket is closed (`Completed`) and the handle time feeds
    /// its line's estimate.
    pub fn call_ended(&mut self, op: OperatorId, now: Millis) -> Outcome {
        let state = self.op_state(op)?;
        let OperatorState::InCall(ticket) = state else {
            return Err(DispatchError::InvalidOperatorState(op, state));
        };
        let mut out = Out::default();
        if let Some(&Ticket { line, phase: Phase::Assigned { since, .. }, .. }) = self.tickets.get(&ticket) {
            let l = line_entry(&mut self.lines, line, self.config.default_handle_ms);
            let sample = now.0.saturating_sub(since.0).max(0);
            l.handle_ewma_ms = l.handle_ewma_ms.saturating_mul(4).saturating_add(sample) / 5;
        }
        self.index_ticket(ticket, false);
        self.tickets.remove(&ticket);
        out.push(Action::TicketClosed { ticket, reason: CloseReason::Completed });
        self.set_op_state(op, OperatorState::WrapUp, &mut out);
        out.finish()
    }

    /// `WrapUp` -> `Available`.
    pub fn wrap_up_done(&mut self, op: OperatorId, now: Millis) -> Outcome {
        match self.op_state(op)? {
            OperatorState::WrapUp => self.set_available(op, now),
            state => Err(DispatchError::InvalidOperatorState(op, state)),
        }
    }

    // ----- tickets -----------------------------------------------------------------------

    /// A new ticket joins the back of its priority class on `line`.
    pub fn enqueue(&mut self, ticket: TicketId, line: LineId, priority: Priority, now: Millis) -> Outcome {
        self.place_new(ticket, line, priority, None, None, now)
    }

    /// [`Self::enqueue`] for a ticket of a point of acceptance center `center`: reserved to
    /// that center's operators until its overflow.
    pub fn enqueue_in(
        &mut self,
        ticket: TicketId,
        line: LineId,
        priority: Priority,
        center: Option<CenterId>,
        now: Millis,
    ) -> Outcome {
        self.place_new(ticket, line, priority, None, center, now)
    }

    /// A checked-in appointment for the slot `[start, end)` joins `line` (see the module
    /// docs): in the appointment class from `start`, a walk-in before; a plain walk-in when
    /// checked in at or after `end`. Its point's `center` applies as in [`Self::enqueue_in`].
    pub fn enqueue_appointment(
        &mut self,
        ticket: TicketId,
        line: LineId,
        slot: (Millis, Millis),
        center: Option<CenterId>,
        now: Millis,
    ) -> Outcome {
        let (start, end) = slot;
        let appointment = if now >= end {
            Appointment::No
        } else if now >= start {
            Appointment::Due
        } else {
            Appointment::From(start)
        };
        let out = self.place(ticket, line, Priority::Normal, None, center, appointment, now)?;
        if let Appointment::From(at) = appointment {
            self.appointments_due.insert((at, ticket));
        }
        Ok(out)
    }

    /// Transfer to a named operator. A known ticket is transferred as in [`Self::requeue`]
    /// (keeping its transfer-class place for a fallback); an unknown one is enqueued as new.
    /// If the operator is `Offline` or `Away` the ticket falls back to the line at once.
    pub fn enqueue_for_operator(
        &mut self,
        ticket: TicketId,
        line: LineId,
        priority: Priority,
        op: OperatorId,
        now: Millis,
    ) -> Outcome {
        self.op_state(op)?;
        if self.tickets.contains_key(&ticket) {
            self.transfer(ticket, line, priority, Some(op), now)
        } else {
            self.place_new(ticket, line, priority, Some(op), None, now)
        }
    }

    /// Transfers a known (waiting, ringing or assigned) ticket to the head of `line`, with
    /// `priority`. A ringing offer is withdrawn (`Transferred`); an operator in a call on it
    /// becomes Available without wrap-up.
    pub fn requeue(&mut self, ticket: TicketId, line: LineId, priority: Priority, now: Millis) -> Outcome {
        self.ticket(ticket)?;
        self.transfer(ticket, line, priority, None, now)
    }

    /// Cancels a waiting or ringing ticket (an assigned one ends with [`Self::call_ended`]).
    pub fn cancel(&mut self, ticket: TicketId, now: Millis) -> Outcome {
        let tk = self.ticket(ticket)?;
        let mut out = Out::default();
        let freed = self.stop_ringing(ticket, WithdrawReason::Cancelled, &mut out)?;
        self.index_ticket(ticket, false);
        self.tickets.remove(&ticket);
        out.changed(tk.line);
        out.push(Action::TicketClosed { ticket, reason: CloseReason::Cancelled });
        self.match_operators(freed, now, &mut out);
        out.finish()
    }

    /// The terminal disconnected: the ticket keeps its place but is not offered; a ringing
    /// offer is withdrawn (`Suspended`, no miss).
    pub fn suspend(&mut self, ticket: TicketId, now: Millis) -> Outcome {
        self.ticket(ticket)?;
        let mut out = Out::default();
        let freed = self.stop_ringing(ticket, WithdrawReason::Suspended, &mut out)?;
        self.with_ticket(ticket, |t| t.suspended = true);
        self.match_operators(freed, now, &mut out);
        out.finish()
    }

    /// The terminal reconnected: the ticket is offerable again at its place.
    pub fn resume(&mut self, ticket: TicketId, now: Millis) -> Outcome {
        let mut out = Out::default();
        if self.ticket(ticket)?.suspended {
            self.with_ticket(ticket, |t| t.suspended = false);
            self.match_ticket(ticket, None, now, &mut out);
        }
        out.finish()
    }

    /// The rung operator accepts before `expires_at` (exclusive) and goes `InCall`.
    pub fn accept(&mut self, op: OperatorId, ticket: TicketId, now: Millis) -> Outcome {
        match self.ticket(ticket)?.phase {
            Phase::Ringing { op: o, expires_at } if o == op && now < expires_at => {}
            Phase::Ringing { op: o, .. } if o == op => Err(DispatchError::OfferExpired(ticket))?,
            _ => Err(DispatchError::NotOffered(ticket, op))?,
        }
        let mut out = Out::default();
        self.assign(ticket, op, now, &mut out);
        out.finish()
    }

    /// The rung operator declines: re-offered like a miss, but the miss count is untouched.
    /// The operator stays Available, at the back of the idle order.
    pub fn decline(&mut self, op: OperatorId, ticket: TicketId, now: Millis) -> Outcome {
        match self.ticket(ticket)?.phase {
            Phase::Ringing { op: o, .. } if o == op => {}
            _ => Err(DispatchError::NotOffered(ticket, op))?,
        }
        let mut out = Out::default();
        self.offer_failed(op, ticket, WithdrawReason::Declined, now, &mut out);
        out.finish()
    }

    /// An `Available` or `Away` operator serving the ticket's line takes a waiting,
    /// non-suspended ticket directly, even one ringing someone else (`TakenByOther`).
    /// A directed ticket may only be picked by its target (skills not required).
    pub fn pick(&mut self, op: OperatorId, ticket: TicketId, now: Millis) -> Outcome {
        let state = self.op_state(op)?;
        let tk = self.ticket(ticket)?;
        if !matches!(state, OperatorState::Available | OperatorState::Away) {
            return Err(DispatchError::InvalidOperatorState(op, state));
        }
        if matches!(tk.phase, Phase::Assigned { .. }) {
            return Err(DispatchError::InvalidTicketState(ticket));
        }
        if tk.suspended || tk.target.is_some_and(|t| t != op) {
            return Err(DispatchError::NotPickable(ticket));
        }
        if tk.target.is_none() && !self.ops.get(&op).is_some_and(|o| o.skills.contains(&tk.line)) {
            return Err(DispatchError::NotSkilled(op, tk.line));
        }
        if tk.target.is_none() && !tk.open_to(self.ops.get(&op).and_then(|o| o.center)) {
            return Err(DispatchError::OtherCenter(ticket));
        }
        let mut out = Out::default();
        let freed = self.stop_ringing(ticket, WithdrawReason::TakenByOther, &mut out)?;
        self.assign(ticket, op, now, &mut out);
        self.match_operators(freed, now, &mut out);
        out.finish()
    }

    /// Expires offers with `expires_at <= now`: a miss for the operator (maybe setting it
    /// `Away`) and a re-offer of the ticket. Overflows tickets reserved to their center whose
    /// overflow instant is `<= now`, offering them to an idle operator of another center.
    /// Both in time order.
    pub fn tick(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Out::default();
        // Appointments whose slot starts: into the appointment class, keeping their seq.
        while let Some(&(at, ticket)) = self.appointments_due.first() {
            if at > now {
                break;
            }
            self.appointments_due.remove(&(at, ticket));
            if let Some(t) = self.tickets.get(&ticket).filter(|t| t.appointment == Appointment::From(at)) {
                let line = t.line;
                self.with_ticket(ticket, |t| t.appointment = Appointment::Due);
                out.changed(line);
            }
        }
        loop {
            let offer = self.deadlines.first().copied().filter(|&(at, _)| at <= now);
            let overflow = self.overflows.first().copied().filter(|&(at, _)| at <= now);
            let (at, ticket) = match (offer, overflow) {
                (None, None) => break,
                (Some(o), Some(v)) if v < o => {
                    self.overflow(v, now, &mut out);
                    continue;
                }
                (None, Some(v)) => {
                    self.overflow(v, now, &mut out);
                    continue;
                }
                (Some(o), _) => o,
            };
            match self.tickets.get(&ticket).map(|t| t.phase) {
                Some(Phase::Ringing { op, expires_at }) if expires_at == at => {
                    self.offer_failed(op, ticket, WithdrawReason::Timeout, now, &mut out);
                }
                // Stale entry; cannot happen while the indices are consistent.
                _ => _ = self.deadlines.remove(&(at, ticket)),
            }
        }
        out.finish().unwrap_or_default()
    }

    /// The earliest pending offer expiry, overflow or appointment slot start, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        let offer = self.deadlines.first().map(|&(at, _)| at);
        let overflow = self.overflows.first().map(|&(at, _)| at);
        let slot = self.appointments_due.first().map(|&(at, _)| at);
        offer.into_iter().chain(overflow).chain(slot).min()
    }

    /// The ticket has waited long enough for its center: it is open to every operator now.
    fn overflow(&mut self, (at, ticket): (Millis, TicketId), now: Millis, out: &mut Out) {
        self.with_ticket(ticket, |t| t.reserved = None);
        // Already gone with the reservation; a stale entry cannot exist while the indices are
        // consistent, but must not stop `tick`.
        self.overflows.remove(&(at, ticket));
        self.match_ticket(ticket, None, now, out);
    }

    // ----- queries -----------------------------------------------------------------------

    pub fn operator_state(&self, op: OperatorId) -> Option<OperatorState> {
        self.ops.get(&op).map(|o| o.state)
    }

    pub fn ticket_state(&self, ticket: TicketId) -> Option<TicketState> {
        let t = self.tickets.get(&ticket)?;
        let line = t.line;
        Some(match t.phase {
            Phase::Queued => TicketState::Waiting { line, suspended: t.suspended, directed_to: t.target },
            Phase::Ringing { op, expires_at } => TicketState::Ringing { line, operator: op, expires_at },
            Phase::Assigned { op, .. } => TicketState::Assigned { line, operator: op },
        })
    }

    /// Position and wait estimate of an unassigned ticket (`None` if unknown or assigned).
    /// `O(log n)` (order-statistics set per line). A directed ticket is positioned among the tickets
    /// directed to the same operator, with `n = 1`.
    pub fn position(&self, ticket: TicketId) -> Option<Position> {
        let t = self.tickets.get(&ticket)?;
        let (ahead, n) = match (t.phase, t.target) {
            (Phase::Assigned { .. }, _) => return None,
            (_, None) => {
                let line = self.lines.get(&t.line)?;
                (line.ranks.rank(t.key()), line.online.max(1))
            }
            (_, Some(o)) => (self.ops.get(&o)?.directed.range(..t.key()).count(), 1),
        };
        let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        let wait_ms = match t.phase {
            Phase::Ringing { .. } => 0,
            _ => i64::from(position).saturating_mul(self.handle_estimate_ms(t.line).max(0)) / i64::from(n),
        };
        let estimated_wait_secs = u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX);
        Some(Position { position, estimated_wait_secs })
    }

    /// The positions of every unassigned, non-directed ticket of `line`, in one pass (the same
    /// figures as [`Self::position`] gives one by one, at `O(n)` for the whole line).
    pub fn line_positions(&self, line: LineId) -> Vec<(TicketId, Position)> {
        self.line_walk(line).map(|(ticket, p, _)| (ticket, p)).collect()
    }

    /// [`Self::line_positions`] without collecting, with whether each ticket is ringing: what
    /// a walk over a line's residents needs, in service order, `O(n)` for the whole line.
    pub fn line_walk(&self, line: LineId) -> impl Iterator<Item = (TicketId, Position, bool)> + '_ {
        let l = self.lines.get(&line);
        let per_position_ms = self.handle_estimate_ms(line).max(0);
        let n = i64::from(l.map_or(1, |l| l.online.max(1)));
        l.into_iter().flat_map(|l| l.queue.values()).enumerate().map(move |(i, &ticket)| {
            let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let ringing = self.tickets.get(&ticket).is_some_and(|t| matches!(t.phase, Phase::Ringing { .. }));
            let wait_ms = if ringing { 0 } else { i64::from(position).saturating_mul(per_position_ms) / n };
            let estimated_wait_secs = u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX);
            (ticket, Position { position, estimated_wait_secs }, ringing)
        })
    }

    /// Unassigned, non-directed tickets of `line` in service order.
    pub fn waiting_on_line(&self, line: LineId) -> Vec<TicketId> {
        self.lines.get(&line).map(|l| l.queue.values().copied().collect()).unwrap_or_default()
    }

    /// Skilled operators serving `line` now (online, not Away): 0 when nobody is on duty.
    pub fn serving(&self, line: LineId) -> u32 {
        self.lines.get(&line).map_or(0, |l| l.serving)
    }

    /// Tickets in `line`'s queue (waiting or ringing, not directed).
    pub fn queue_len(&self, line: LineId) -> u32 {
        self.lines.get(&line).map_or(0, |l| u32::try_from(l.queue.len()).unwrap_or(u32::MAX))
    }

    /// Current handle-time estimate of a line in ms.
    pub fn handle_estimate_ms(&self, line: LineId) -> i64 {
        self.lines.get(&line).map_or(self.config.default_handle_ms, |l| l.handle_ewma_ms)
    }

    /// Snapshot for the board: every line known from skills or tickets, every operator.
    pub fn board(&self, now: Millis) -> Board {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let lines = self.lines.iter().map(|(&line, l)| {
            // The oldest ticket is the head of one of the four classes.
            let oldest = (0..4u8)
                .filter_map(|c| l.queue.range((c, 0)..(c + 1, 0)).next())
                .filter_map(|(_, t)| self.tickets.get(t).map(|t| t.enqueued_at.0))
                .min();
            let longest_wait_ms = oldest.map_or(0, |at| now.0.saturating_sub(at).max(0));
            LineBoard {
                line,
                waiting: count(l.queue.len()),
                priority_waiting: l.priority,
                longest_wait_ms,
                head: l.queue.values().take(BOARD_HEAD).copied().collect(),
            }
        });
        let mut operators: Vec<_> = self.ops.iter().map(|(&id, o)| (id, o.state)).collect();
        operators.sort_by_key(|&(id, _)| id);
        Board { lines: lines.collect(), operators }
    }

    // ----- internals ---------------------------------------------------------------------

    fn op_state(&self, op: OperatorId) -> Result<OperatorState, DispatchError> {
        self.operator_state(op).ok_or(DispatchError::UnknownOperator(op))
    }

    fn ticket(&self, ticket: TicketId) -> Result<Ticket, DispatchError> {
        self.tickets.get(&ticket).copied().ok_or(DispatchError::UnknownTicket(ticket))
    }

    fn place_new(
        &mut self,
        id: TicketId,
        line: LineId,
        priority: Priority,
        target: Option<OperatorId>,
        center: Option<CenterId>,
        now: Millis,
    ) -> Outcome {
        self.place(id, line, priority, target, center, Appointment::No, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        id: TicketId,
        line: LineId,
        priority: Priority,
        target: Option<OperatorId>,
        center: Option<CenterId>,
        appointment: Appointment,
        now: Millis,
    ) -> Outcome {
        if self.tickets.contains_key(&id) {
            return Err(DispatchError::DuplicateTicket(id));
        }
        let reserved = center.filter(|_| self.config.overflow_after_ms > 0);
        let seq = self.next_seq;
        self.next_seq += 1;
        let t = Ticket {
            line,
            priority,
            transferred: false,
            appointment,
            seq,
            enqueued_at: now,
            suspended: false,
            target,
            avoid: None,
            phase: Phase::Queued,
            center,
            reserved,
        };
        self.tickets.insert(id, t);
        self.index_ticket(id, true);
        let mut out = Out::default();
        out.changed(line);
        self.fall_back_if_unreachable(id, &mut out);
        self.match_ticket(id, None, now, &mut out);
        out.finish()
    }

    /// Moves a known ticket to the transfer class of `line` (keeping its seq).
    fn transfer(
        &mut self,
        id: TicketId,
        line: LineId,
        priority: Priority,
        target: Option<OperatorId>,
        now: Millis,
    ) -> Outcome {
        let old = self.ticket(id)?;
        let mut out = Out::default();
        let freed = match old.phase {
            Phase::Assigned { op, .. } => Some(op),
            _ => self.stop_ringing(id, WithdrawReason::Transferred, &mut out)?,
        };
        self.with_ticket(id, |t| {
            (t.line, t.priority, t.target, t.avoid) = (line, priority, target, freed);
            (t.transferred, t.phase) = (true, Phase::Queued);
        });
        if let Some(op) = freed {
            self.set_op_state(op, OperatorState::Available, &mut out);
        }
        out.changed(old.line);
        out.changed(line);
        self.fall_back_if_unreachable(id, &mut out);
        self.match_ticket(id, freed, now, &mut out);
        self.match_operators(freed, now, &mut out);
        out.finish()
    }

    /// A directed ticket whose target is `Offline` or `Away` falls back to its line.
    fn fall_back_if_unreachable(&mut self, id: TicketId, out: &mut Out) {
        let target = self.tickets.get(&id).and_then(|t| t.target);
        if target
            .and_then(|op| self.operator_state(op))
            .is_some_and(|s| matches!(s, OperatorState::Offline | OperatorState::Away))
        {
            self.fall_back(id, out);
        }
    }

    /// Operator goes `Offline` or `Away`, releasing its offer, call and directed tickets.
    fn leave(&mut self, op: OperatorId, to: OperatorState, now: Millis) -> Outcome {
        let from = self.op_state(op)?;
        let mut out = Out::default();
        if from == to {
            return out.finish();
        }
        let mut released = Vec::new();
        match from {
            OperatorState::Ringing(t) => {
                self.withdraw(t, WithdrawReason::OperatorGone, &mut out);
                released.push(t);
            }
            OperatorState::InCall(t) => {
                self.with_ticket(t, |tk| (tk.phase, tk.target) = (Phase::Queued, None));
                if let Some(line) = self.tickets.get(&t).map(|tk| tk.line) {
                    out.push(Action::CallAborted { ticket: t, operator: op, line });
                    out.changed(line);
                }
                released.push(t);
            }
            _ => {}
        }
        self.set_op_state(op, to, &mut out);
        released.extend(self.release_directed(op, &mut out));
        self.match_tickets(released, None, now, &mut out);
        out.finish()
    }

    fn replace_skills(&mut self, op: OperatorId, skills: &[LineId], center: Option<CenterId>) {
        self.index_op(op, false);
        if let Some(o) = self.ops.get_mut(&op) {
            o.skills = skills.iter().copied().collect();
            o.center = center;
        }
        self.index_op(op, true);
    }

    /// Withdraws the offer of a ticket that is about to move (`Err` if it is assigned) and
    /// makes the rung operator Available; returns that operator for matching afterwards.
    fn stop_ringing(
        &mut self,
        ticket: TicketId,
        reason: WithdrawReason,
        out: &mut Out,
    ) -> Result<Option<OperatorId>, DispatchError> {
        match self.ticket(ticket)?.phase {
            Phase::Assigned { .. } => Err(DispatchError::InvalidTicketState(ticket)),
            Phase::Queued => Ok(None),
            Phase::Ringing { op, .. } => {
                self.withdraw(ticket, reason, out);
                self.set_op_state(op, OperatorState::Available, out);
                Ok(Some(op))
            }
        }
    }

    /// Ringing -> Queued with `OfferWithdrawn`; the operator's state is left to the caller.
    fn withdraw(&mut self, ticket: TicketId, reason: WithdrawReason, out: &mut Out) {
        if let Some(Phase::Ringing { op, .. }) = self.tickets.get(&ticket).map(|t| t.phase) {
            self.with_ticket(ticket, |t| t.phase = Phase::Queued);
            out.push(Action::OfferWithdrawn { ticket, operator: op, reason });
        }
    }

    /// Timeout or decline of the offer of `ticket` to `op`.
    fn offer_failed(
        &mut self,
        op: OperatorId,
        ticket: TicketId,
        reason: WithdrawReason,
        now: Millis,
        out: &mut Out,
    ) {
        self.withdraw(ticket, reason, out);
        self.with_ticket(ticket, |t| t.avoid = Some(op));
        if self.tickets.get(&ticket).is_some_and(|t| t.target == Some(op)) {
            self.fall_back(ticket, out);
        }
        let threshold = self.config.misses_before_away;
        let mut away = false;
        if let Some(o) = self.ops.get_mut(&op)
            && reason == WithdrawReason::Timeout
        {
            o.misses += 1;
            away = threshold > 0 && o.misses >= threshold;
        }
        let mut released = vec![ticket];
        if away {
            self.set_op_state(op, OperatorState::Away, out);
            released.extend(self.release_directed(op, out));
        } else {
            self.set_op_state(op, OperatorState::Available, out);
        }
        self.match_tickets(released, Some(op), now, out);
        self.match_operators(Some(op), now, out);
    }

    fn assign(&mut self, ticket: TicketId, op: OperatorId, now: Millis, out: &mut Out) {
        let Some((line, key)) = self.tickets.get(&ticket).map(|t| (t.line, t.key())) else {
            return;
        };
        self.with_ticket(ticket, |t| {
            (t.phase, t.target, t.avoid) = (Phase::Assigned { op, since: now }, None, None);
        });
        let l = line_entry(&mut self.lines, line, self.config.default_handle_ms);
        l.appointment_run = if key.0 == APPOINTMENT_CLASS { l.appointment_run.saturating_add(1) } else { 0 };
        if let Some(o) = self.ops.get_mut(&op) {
            o.misses = 0;
        }
        self.set_op_state(op, OperatorState::InCall(ticket), out);
        out.push(Action::Assigned { ticket, operator: op, line });
        out.changed(line);
    }

    /// A directed ticket falls back to its line queue, keeping its key.
    fn fall_back(&mut self, ticket: TicketId, out: &mut Out) {
        let Some(t) = self.tickets.get(&ticket).copied() else {
            return;
        };
        if let Some(op) = t.target {
            self.with_ticket(ticket, |t| t.target = None);
            out.push(Action::DirectedFallback { ticket, operator: op, line: t.line });
            out.changed(t.line);
        }
    }

    /// Every ticket directed to `op` falls back; returns them for matching.
    fn release_directed(&mut self, op: OperatorId, out: &mut Out) -> Vec<TicketId> {
        let ids: Vec<_> =
            self.ops.get(&op).map(|o| o.directed.values().copied().collect()).unwrap_or_default();
        for &t in &ids {
            self.fall_back(t, out);
        }
        ids
    }

    fn set_op_state(&mut self, op: OperatorId, state: OperatorState, out: &mut Out) {
        if self.operator_state(op).is_none_or(|old| old == state) {
            return;
        }
        self.index_op(op, false);
        if let Some(o) = self.ops.get_mut(&op) {
            if state == OperatorState::Available {
                o.idle_seq = self.next_idle;
                self.next_idle += 1;
            }
            if matches!(state, OperatorState::Away | OperatorState::Offline) {
                o.misses = 0;
            }
            o.state = state;
        }
        self.index_op(op, true);
        out.push(Action::OperatorStateChanged { operator: op, state });
    }

    fn offer(&mut self, ticket: TicketId, op: OperatorId, now: Millis, out: &mut Out) {
        let Some(line) = self.tickets.get(&ticket).map(|t| t.line) else {
            return;
        };
        let expires_at = Millis(now.0.saturating_add(self.config.ring_timeout_ms.max(1)));
        self.with_ticket(ticket, |t| t.phase = Phase::Ringing { op, expires_at });
        out.push(Action::Offer { ticket, operator: op, line, expires_at });
        self.set_op_state(op, OperatorState::Ringing(ticket), out);
    }

    /// Matches several tickets, best key first, never offering them to `avoid`.
    fn match_tickets(
        &mut self,
        mut ids: Vec<TicketId>,
        avoid: Option<OperatorId>,
        now: Millis,
        out: &mut Out,
    ) {
        ids.sort_by_key(|id| self.tickets.get(id).map(Ticket::key));
        ids.dedup();
        for id in ids {
            self.match_ticket(id, avoid, now, out);
        }
    }

    /// Offers an offerable ticket to its target if Available, or else to the longest-idle
    /// skilled Available operator other than `avoid`.
    fn match_ticket(&mut self, ticket: TicketId, avoid: Option<OperatorId>, now: Millis, out: &mut Out) {
        let Some(t) = self.tickets.get(&ticket).filter(|t| t.offerable()) else {
            return;
        };
        let chosen = match t.target {
            Some(o) => Some(o).filter(|&o| self.operator_state(o) == Some(OperatorState::Available)),
            None => self.lines.get(&t.line).and_then(|l| {
                let first = |c: Option<CenterId>| {
                    l.available_in
                        .range(center_idle(c))
                        .map(|(&(_, i), &o)| (i, o))
                        .find(|&(_, o)| Some(o) != avoid)
                };
                // The center's own operators (and those with no center) first, longest idle.
                let own = t.center.and_then(|c| first(Some(c)).into_iter().chain(first(None)).min());
                match (own, t.reserved) {
                    (Some((_, o)), _) => Some(o),
                    (None, Some(_)) => None,
                    (None, None) => l.available.values().find(|&&o| Some(o) != avoid).copied(),
                }
            }),
        };
        if let Some(op) = chosen {
            self.offer(ticket, op, now, out);
        }
    }

    fn match_operators(&mut self, op: Option<OperatorId>, now: Millis, out: &mut Out) {
        if let Some(op) = op {
            self.match_operator(op, now, out);
        }
    }

    /// Offers an Available operator its best ticket: directed ones first, then the best head
    /// across its lines, preferring a ticket it did not just miss, decline or transfer.
    fn match_operator(&mut self, op: OperatorId, now: Millis, out: &mut Out) {
        let Some(o) = self.ops.get(&op).filter(|o| o.state == OperatorState::Available) else {
            return;
        };
        let tickets = &self.tickets;
        let directed = o.directed.values().copied().find(|id| tickets.get(id).is_some_and(Ticket::offerable));
        let better = |cur: Option<(Key, TicketId)>, c| Some(cur.map_or(c, |b| b.min(c)));
        let (mut best, mut fresh) = (None, None); // best overall / best not avoiding `op`
        for line in o.skills.iter().filter_map(|l| self.lines.get(l)) {
            // Every offerable ticket, or for an operator of a center the open ones and its own;
            // after a run of appointments a waiting walk-in it may take goes first
            // (APPOINTMENT_RUN).
            const APPT: Key = (APPOINTMENT_CLASS, 0);
            const WALK_IN: Key = (APPOINTMENT_CLASS + 1, 0);
            const END: Key = (u8::MAX, u64::MAX);
            let walk_in_waits = match o.center {
                None => line.offerable.range(WALK_IN..).next().is_some(),
                Some(c) => {
                    line.open.range(WALK_IN..).next().is_some()
                        || line.reserved.range((c, WALK_IN)..=(c, END)).next().is_some()
                }
            };
            let skip = line.appointment_run >= APPOINTMENT_RUN && walk_in_waits;
            let from = if skip { WALK_IN } else { APPT };
            let sources: [Box<dyn Iterator<Item = (Key, TicketId)>>; 2] = match o.center {
                None => [heads_from(&line.offerable, from), Box::new(std::iter::empty())],
                Some(c) => [
                    heads_from(&line.open, from),
                    Box::new(
                        line.reserved
                            .range((c, (0, 0))..(c, APPT))
                            .chain(line.reserved.range((c, from)..=(c, END)))
                            .map(|(&(_, k), &id)| (k, id)),
                    ),
                ],
            };
            for source in sources {
                // The head, plus the runner-up when the head avoids this operator.
                for c in source.take(2) {
                    best = better(best, c);
                    if tickets.get(&c.1).is_none_or(|t| t.avoid != Some(op)) {
                        fresh = better(fresh, c);
                        break;
                    }
                }
            }
        }
        if let Some(ticket) = directed.or(fresh.or(best).map(|(_, id)| id)) {
            self.offer(ticket, op, now, out);
        }
    }

    /// Applies `f` to a ticket, keeping every index consistent.
    fn with_ticket(&mut self, id: TicketId, f: impl FnOnce(&mut Ticket)) {
        self.index_ticket(id, false);
        if let Some(t) = self.tickets.get_mut(&id) {
            f(t);
        }
        self.index_ticket(id, true);
    }

    /// Adds the ticket to (or removes it from) every index that holds it; the single source
    /// of truth for index membership.
    fn index_ticket(&mut self, id: TicketId, insert: bool) {
        let Some(t) = self.tickets.get(&id).copied() else {
            return;
        };
        let key = t.key();
        if t.reserved.is_some() {
            let at = Millis(t.enqueued_at.0.saturating_add(self.config.overflow_after_ms));
            _ = if insert { self.overflows.insert((at, id)) } else { self.overflows.remove(&(at, id)) };
        }
        match t.phase {
            Phase::Assigned { .. } => return,
            Phase::Ringing { expires_at, .. } if insert => _ = self.deadlines.insert((expires_at, id)),
            Phase::Ringing { expires_at, .. } => _ = self.deadlines.remove(&(expires_at, id)),
            Phase::Queued => {}
        }
        if let Some(o) = t.target.and_then(|o| self.ops.get_mut(&o)) {
            _ = if insert { o.directed.insert(key, id) } else { o.directed.remove(&key) };
            return;
        }
        let line = line_entry(&mut self.lines, t.line, self.config.default_handle_ms);
        let changed =
            if insert { line.queue.insert(key, id).is_none() } else { line.queue.remove(&key).is_some() };
        if changed {
            if insert {
                line.ranks.insert(key);
            } else {
                line.ranks.remove(key);
            }
        }
        if changed && t.priority != Priority::Normal {
            line.priority = if insert { line.priority + 1 } else { line.priority.saturating_sub(1) };
        }
        if insert && t.offerable() {
            line.offerable.insert(key, id);
            match t.reserved {
                Some(c) => _ = line.reserved.insert((c, key), id),
                None => _ = line.open.insert(key, id),
            }
        } else if !insert {
            line.offerable.remove(&key);
            match t.reserved {
                Some(c) => _ = line.reserved.remove(&(c, key)),
                None => _ = line.open.remove(&key),
            }
        }
    }

    /// Adds the operator to (or removes it from) its lines' `online` and `available` indices.
    fn index_op(&mut self, op: OperatorId, insert: bool) {
        let Some(o) = self.ops.get(&op) else { return };
        for &l in &o.skills {
            let line = line_entry(&mut self.lines, l, self.config.default_handle_ms);
            if o.state != OperatorState::Offline {
                line.online = if insert { line.online + 1 } else { line.online.saturating_sub(1) };
            }
            if !matches!(o.state, OperatorState::Offline | OperatorState::Away) {
                line.serving = if insert { line.serving + 1 } else { line.serving.saturating_sub(1) };
            }
            if o.state == OperatorState::Available {
                _ = if insert {
                    line.available_in.insert((o.center, o.idle_seq), op);
                    line.available.insert(o.idle_seq, op)
                } else {
                    line.available_in.remove(&(o.center, o.idle_seq));
                    line.available.remove(&o.idle_seq)
                };
            }
        }
    }
}

/// An order-statistics set of [`Key`]s: a treap with subtree sizes. Insert, remove and rank
/// (how many keys are smaller) in `O(log n)` expected; priorities come from a fixed-seed
/// xorshift, so the structure is deterministic.
#[derive(Debug)]
struct RankSet {
    nodes: Vec<RankNode>,
    root: u32,
    free: Vec<u32>,
    seed: u64,
}

#[derive(Debug, Clone, Copy)]
struct RankNode {
    key: Key,
    prio: u64,
    size: u32,
    left: u32,
    right: u32,
}

const NIL: u32 = u32::MAX;

impl Default for RankSet {
    fn default() -> Self {
        Self { nodes: Vec::new(), root: NIL, free: Vec::new(), seed: 0x9E37_79B9_7F4A_7C15 }
    }
}

impl RankSet {
    fn size(&self, n: u32) -> u32 {
        if n == NIL { 0 } else { self.nodes[n as usize].size }
    }

    fn fix(&mut self, n: u32) {
        let (l, r) = (self.nodes[n as usize].left, self.nodes[n as usize].right);
        self.nodes[n as usize].size = 1 + self.size(l) + self.size(r);
    }

    /// Splits `t` into keys `< key` and keys `>= key`.
    fn split(&mut self, t: u32, key: Key) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].key < key {
            let (a, b) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = a;
            self.fix(t);
            (t, b)
        } else {
            let (a, b) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = b;
            self.fix(t);
            (a, t)
        }
    }

    /// Joins `a` and `b`, every key of `a` smaller than every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            self.fix(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            self.fix(b);
            b
        }
    }

    fn insert(&mut self, key: Key) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let node = RankNode { key, prio: self.seed, size: 1, left: NIL, right: NIL };
        let n = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                u32::try_from(self.nodes.len() - 1).unwrap_or(NIL)
            }
        };
        let (a, b) = self.split(self.root, key);
        let a = self.merge(a, n);
        self.root = self.merge(a, b);
    }

    fn remove(&mut self, key: Key) {
        let (a, b) = self.split(self.root, key);
        let (m, c) = self.split(b, (key.0, key.1.saturating_add(1)));
        if m != NIL {
            self.free.push(m);
        }
        self.root = self.merge(a, c);
    }

    /// How many keys are smaller than `key`.
    fn rank(&self, key: Key) -> usize {
        let mut n = self.root;
        let mut below = 0usize;
        while n != NIL {
            let node = &self.nodes[n as usize];
            if node.key < key {
                below += self.size(node.left) as usize + 1;
                n = node.right;
            } else {
                n = node.left;
            }
        }
        below
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn t(n: u128) -> TicketId {
        TicketId(Uuid::from_u128(n))
    }
    fn o(n: u128) -> OperatorId {
        OperatorId(Uuid::from_u128(1_000 + n))
    }
    fn l(n: u128) -> LineId {
        LineId(Uuid::from_u128(9_000 + n))
    }
    fn at(ms: i64) -> Millis {
        Millis(1_700_000_000_000 + ms)
    }
    fn offers(acts: &[Action]) -> Vec<(TicketId, OperatorId)> {
        let offer = |a: &Action| match *a {
            Action::Offer { ticket, operator, .. } => Some((ticket, operator)),
            _ => None,
        };
        acts.iter().filter_map(offer).collect()
    }
    fn has(acts: &[Action], a: Action) {
        assert!(acts.contains(&a), "{a:?} missing from {acts:?}");
    }
    fn assigned(ticket: TicketId, operator: OperatorId, line: LineId) -> Action {
        Action::Assigned { ticket, operator, line }
    }
    fn fallback(ticket: TicketId, operator: OperatorId, line: LineId) -> Action {
        Action::DirectedFallback { ticket, operator, line }
    }
    fn aborted(ticket: TicketId, operator: OperatorId, line: LineId) -> Action {
        Action::CallAborted { ticket, operator, line }
    }
    fn withdrawn(ticket: TicketId, operator: OperatorId, reason: WithdrawReason) -> Action {
        Action::OfferWithdrawn { ticket, operator, reason }
    }
    fn changed(operator: OperatorId, state: OperatorState) -> Action {
        Action::OperatorStateChanged { operator, state }
    }
    fn waiting(line: LineId, directed_to: Option<OperatorId>) -> Option<TicketState> {
        Some(TicketState::Waiting { line, suspended: false, directed_to })
    }
    /// A dispatcher with operators `ops` online on `lines`, in this idle order.
    fn setup(ops: &[u128], lines: &[u128]) -> Dispatcher {
        let mut d = Dispatcher::new(Config::default());
        let lines: Vec<_> = lines.iter().map(|&n| l(n)).collect();
        for &n in ops {
            d.operator_online(o(n), &lines, at(0)).unwrap();
        }
        d
    }
    fn enqueue(d: &mut Dispatcher, tickets: &[u128], line: u128, p: Priority) -> Vec<Action> {
        let each = tickets.iter().map(|&n| d.enqueue(t(n), l(line), p, at(n as i64)).unwrap());
        each.collect::<Vec<_>>().concat()
    }
    /// Accept, end the call and finish wrap-up; returns the actions of the wrap-up.
    fn serve(d: &mut Dispatcher, op: OperatorId, tk: TicketId, now: Millis) -> Vec<Action> {
        d.accept(op, tk, now).unwrap();
        d.call_ended(op, now).unwrap();
        d.wrap_up_done(op, now).unwrap()
    }

    /// Indices match the tickets and operators, both sides of every offer and call agree,
    /// nobody unreachable holds directed tickets, and no Available operator is left idle
    /// while an offerable ticket waits on one of its lines.
    fn check_invariants(d: &Dispatcher) {
        let mut queue: BTreeMap<LineId, BTreeMap<Key, TicketId>> = BTreeMap::new();
        let mut offerable = queue.clone();
        let mut open = queue.clone();
        let mut reserved: BTreeMap<LineId, BTreeMap<(CenterId, Key), TicketId>> = BTreeMap::new();
        let mut overflows = BTreeSet::new();
        let mut directed: HashMap<OperatorId, BTreeMap<Key, TicketId>> = HashMap::new();
        let mut deadlines = BTreeSet::new();
        for (&id, tk) in &d.tickets {
            assert!(tk.reserved.is_none() || (tk.reserved == tk.center && d.config.overflow_after_ms > 0));
            if tk.reserved.is_some() {
                overflows.insert((Millis(tk.enqueued_at.0 + d.config.overflow_after_ms), id));
            }
            match tk.phase {
                Phase::Ringing { op, expires_at } => {
                    deadlines.insert((expires_at, id));
                    assert_eq!(d.ops[&op].state, OperatorState::Ringing(id));
                }
                Phase::Assigned { op, .. } => {
                    assert_eq!(d.ops[&op].state, OperatorState::InCall(id));
                    continue;
                }
                Phase::Queued => {}
            }
            if let Some(op) = tk.target {
                directed.entry(op).or_default().insert(tk.key(), id);
                continue;
            }
            queue.entry(tk.line).or_default().insert(tk.key(), id);
            if tk.offerable() {
                offerable.entry(tk.line).or_default().insert(tk.key(), id);
                match tk.reserved {
                    Some(c) => _ = reserved.entry(tk.line).or_default().insert((c, tk.key()), id),
                    None => _ = open.entry(tk.line).or_default().insert(tk.key(), id),
                }
            }
        }
        assert_eq!(deadlines, d.deadlines);
        assert_eq!(overflows, d.overflows);
        for (&lid, line) in &d.lines {
            let q = queue.remove(&lid).unwrap_or_default();
            let prio = q.values().filter(|id| d.tickets[id].priority != Priority::Normal).count();
            assert_eq!((line.priority as usize, &line.queue), (prio, &q), "queue of {lid:?}");
            for (i, key) in q.keys().enumerate() {
                assert_eq!(line.ranks.rank(*key), i, "rank of {key:?} on {lid:?}");
            }
            assert_eq!(line.ranks.size(line.ranks.root) as usize, q.len(), "order-statistics size");
            assert_eq!(line.offerable, offerable.remove(&lid).unwrap_or_default());
            assert_eq!(line.open, open.remove(&lid).unwrap_or_default());
            assert_eq!(line.reserved, reserved.remove(&lid).unwrap_or_default());
            let skilled = d.ops.iter().filter(|(_, op)| op.skills.contains(&lid));
            let avail: BTreeMap<u64, OperatorId> = skilled
                .clone()
                .filter(|(_, op)| op.state == OperatorState::Available)
                .map(|(&id, op)| (op.idle_seq, id))
                .collect();
            assert_eq!(line.available, avail);
            let avail_in: BTreeMap<(Option<CenterId>, u64), OperatorId> = skilled
                .clone()
                .filter(|(_, op)| op.state == OperatorState::Available)
                .map(|(&id, op)| ((op.center, op.idle_seq), id))
                .collect();
            assert_eq!(line.available_in, avail_in);
            let serving = skilled
                .clone()
                .filter(|(_, op)| !matches!(op.state, OperatorState::Offline | OperatorState::Away));
            assert_eq!(line.serving as usize, serving.count(), "serving on {lid:?}");
            let online = skilled.filter(|(_, op)| op.state != OperatorState::Offline);
            assert_eq!(line.online as usize, online.count());
        }
        assert!(queue.is_empty() && offerable.is_empty(), "tickets on unknown lines");
        for (&id, op) in &d.ops {
            assert_eq!(op.directed, directed.remove(&id).unwrap_or_default(), "directed of {id:?}");
            match op.state {
                OperatorState::Ringing(tk) => {
                    assert!(matches!(d.tickets[&tk].phase, Phase::Ringing { op: x, .. } if x == id))
                }
                OperatorState::InCall(tk) => {
                    assert!(matches!(d.tickets[&tk].phase, Phase::Assigned { op: x, .. } if x == id))
                }
                OperatorState::Available => {
                    assert!(!op.directed.values().any(|tk| d.tickets[tk].offerable()));
                    for lid in &op.skills {
                        let eligible =
                            d.lines[lid].offerable.values().any(|t| d.tickets[t].open_to(op.center));
                        assert!(!eligible, "{id:?} idle, {lid:?} waits");
                    }
                }
                OperatorState::Offline | OperatorState::Away => {
                    assert!(op.directed.is_empty(), "directed to unreachable {id:?}")
                }
                OperatorState::WrapUp => {}
            }
        }
        assert!(directed.is_empty(), "tickets directed to unknown operators");
    }

    #[test]
    fn line_positions_match_position_one_by_one() {
        let mut d = Dispatcher::new(Config::default());
        let line = LineId(Uuid::from_u128(77));
        for n in 0..20u128 {
            let p = if n % 5 == 0 { Priority::Elderly } else { Priority::Normal };
            d.enqueue(TicketId(Uuid::from_u128(1000 + n)), line, p, Millis(i64::try_from(n).unwrap_or(0)))
                .expect("enqueue");
        }
        let all = d.line_positions(line);
        assert_eq!(all.len(), 20);
        for (t, pos) in all {
            assert_eq!(d.position(t), Some(pos));
        }
    }

    fn book(d: &mut Dispatcher, n: u128, slot: (i64, i64), now: i64) -> Vec<Action> {
        d.enqueue_appointment(t(n), l(1), (at(slot.0), at(slot.1)), None, at(now)).unwrap()
    }

    #[test]
    fn an_appointment_checked_in_early_waits_as_a_walk_in_until_its_slot_start() {
        let mut d = setup(&[1], &[1]);
        enqueue(&mut d, &[0], 1, Priority::Normal); // o1 rings with t0
        enqueue(&mut d, &[1], 1, Priority::Normal);
        assert!(offers(&book(&mut d, 2, (100, 200), 2)).is_empty());
        enqueue(&mut d, &[3], 1, Priority::Normal);
        // Behind t0 (ringing) and t1 before its slot.
        assert_eq!(d.position(t(2)).unwrap().position, 3, "a walk-in before its slot");
        assert_eq!(d.next_deadline(), Some(at(100)), "the slot start wakes the dispatcher");
        assert!(d.tick(at(99)).is_empty());
        assert_eq!(d.position(t(2)).unwrap().position, 3);
        assert_eq!(d.tick(at(100)), vec![Action::QueueChanged { line: l(1) }]);
        assert_eq!(d.position(t(2)).unwrap().position, 1, "first from its slot start");
        assert_eq!(d.next_deadline(), Some(at(20_000)), "only t0's ring is left");
        check_invariants(&d);
        assert_eq!(offers(&serve(&mut d, o(1), t(0), at(110))), vec![(t(2), o(1))]);
        assert_eq!(offers(&serve(&mut d, o(1), t(2), at(120))), vec![(t(1), o(1))]);
        check_invariants(&d);
    }

    #[test]
    fn an_appointment_checked_in_within_its_slot_goes_first_and_late_is_a_walk_in() {
        let mut d = setup(&[1], &[1]);
        enqueue(&mut d, &[0], 1, Priority::Normal);
        d.accept(o(1), t(0), at(1)).unwrap();
        enqueue(&mut d, &[1], 1, Priority::Elderly);
        book(&mut d, 2, (0, 200), 150); // within the slot: ahead of every walk-in
        book(&mut d, 3, (0, 200), 200); // at the slot end: late, a plain walk-in
        enqueue(&mut d, &[4], 1, Priority::Normal);
        let order: Vec<_> = d.line_positions(l(1)).into_iter().map(|(id, _)| id).collect();
        assert_eq!(order, vec![t(2), t(1), t(3), t(4)]);
        assert_eq!(d.next_deadline(), None, "nothing to promote");
        check_invariants(&d);
    }

    #[test]
    fn appointments_do_not_starve_walk_ins() {
        let mut d = setup(&[1], &[1]);
        enqueue(&mut d, &[0], 1, Priority::Normal); // o1 rings with t0
        enqueue(&mut d, &[10], 1, Priority::Normal); // a walk-in waiting since before
        for n in 1..=5 {
            book(&mut d, n, (0, 10_000), 10 + n as i64);
        }
        let mut served = Vec::new();
        let mut current = t(0);
        for step in 0..6 {
            let acts = serve(&mut d, o(1), current, at(100 + step));
            check_invariants(&d);
            let [(next, _)] = offers(&acts)[..] else { panic!("{acts:?}") };
            served.push(next);
            current = next;
        }
        assert_eq!(
            served,
            vec![t(1), t(2), t(3), t(10), t(4), t(5)],
            "{APPOINTMENT_RUN} in a row, then the walk-in"
        );
    }

    #[test]
    fn priority_before_normal_and_fifo_within_class() {
        let mut d = setup(&[], &[]);
        let now = at(0); // equal timestamps: the order comes from the sequence number
        for (n, p) in [(1, Priority::Normal), (2, Priority::Elderly), (3, Priority::Normal)]
            .into_iter()
            .chain([(4, Priority::Pregnant), (5, Priority::Disabled)])
        {
            d.enqueue(t(n), l(1), p, now).unwrap();
        }
        let order = vec![t(2), t(4), t(5), t(1), t(3)];
        assert_eq!(d.waiting_on_line(l(1)), order);
        assert_eq!(d.position(t(1)).unwrap().position, 4);
        let mut acts = d.operator_online(o(1), &[l(1)], now).unwrap();
        let mut served = vec![];
        while let Some(&(tk, op)) = offers(&acts).first() {
            served.push(tk);
            acts = serve(&mut d, op, tk, now);
        }
        assert_eq!(served, order);
        check_invariants(&d);
    }

    #[test]
    fn longest_idle_operator_gets_the_ticket() {
        let mut d = setup(&[1, 2, 3], &[1]);
        assert_eq!(offers(&enqueue(&mut d, &[1], 1, Priority::Normal)), vec![(t(1), o(1))]);
        serve(&mut d, o(1), t(1), at(20)); // o1 is now the most recently idle
        assert_eq!(offers(&enqueue(&mut d, &[2], 1, Priority::Normal)), vec![(t(2), o(2))]);
        assert_eq!(offers(&enqueue(&mut d, &[3], 1, Priority::Normal)), vec![(t(3), o(3))]);
        assert_eq!(offers(&enqueue(&mut d, &[4], 1, Priority::Normal)), vec![(t(4), o(1))]);
        check_invariants(&d);
    }

    #[test]
    fn skills_are_respected() {
        let mut d = setup(&[1], &[1]);
        d.operator_online(o(2), &[l(2)], at(1)).unwrap();
        assert_eq!(offers(&enqueue(&mut d, &[1], 2, Priority::Normal)), vec![(t(1), o(2))]);
        assert!(offers(&enqueue(&mut d, &[2], 3, Priority::Normal)).is_empty(), "nobody serves l3");
        let not_skilled = DispatchError::NotSkilled(o(1), l(3));
        assert_eq!(d.pick(o(1), t(2), at(4)), Err(not_skilled));
        let acts = d.set_skills(o(1), &[l(1), l(3)], at(5)).unwrap();
        assert_eq!(offers(&acts), vec![(t(2), o(1))], "a learnt skill is used at once");
        check_invariants(&d);
    }

    #[test]
    fn ring_timeout_reoffers_to_the_next_operator() {
        let mut d = setup(&[1, 2], &[1]);
        assert_eq!(offers(&enqueue(&mut d, &[10], 1, Priority::Normal)), vec![(t(10), o(1))]);
        let expiry = at(10 + 20_000);
        assert_eq!(d.next_deadline(), Some(expiry));
        assert!(d.tick(Millis(expiry.0 - 1)).is_empty());
        let acts = d.tick(expiry);
        has(&acts, withdrawn(t(10), o(1), WithdrawReason::Timeout));
        assert_eq!(offers(&acts), vec![(t(10), o(2))]);
        assert_eq!(d.operator_state(o(1)), Some(OperatorState::Available));
        check_invariants(&d);
    }

    #[test]
    fn two_consecutive_misses_set_the_operator_away() {
        let mut d = setup(&[1], &[1]);
        enqueue(&mut d, &[0], 1, Priority::Normal);
        // The only operator gets the ticket again after its first miss.
        assert_eq!(offers(&d.tick(at(20_000))), vec![(t(0), o(1))]);
        let acts = d.tick(at(40_000));
        has(&acts, changed(o(1), OperatorState::Away));
        assert!(offers(&acts).is_empty());
        assert_eq!(d.ticket_state(t(0)), waiting(l(1), None));
        assert_eq!(d.next_deadline(), None);
        let acts = d.set_available(o(1), at(50_000)).unwrap();
        assert_eq!(offers(&acts), vec![(t(0), o(1))], "back from Away, it rings again");
        assert_eq!(offers(&d.tick(at(70_000))), vec![(t(0), o(1))], "the count restarted");
        check_invariants(&d);
    }

    #[test]
    fn an_accept_between_misses_resets_the_count() {
        let mut d = setup(&[1], &[1]);
        enqueue(&mut d, &[0, 1], 1, Priority::Normal);
        // Miss 1: the only operator gets the other waiting ticket rather than the missed one.
        assert_eq!(offers(&d.tick(at(20_000))), vec![(t(1), o(1))]);
        let acts = serve(&mut d, o(1), t(1), at(21_000)); // the accept resets the count
        assert_eq!(offers(&acts), vec![(t(0), o(1))], "the missed ticket comes back");
        d.tick(at(41_000)); // one miss since the accept
        assert_eq!(d.operator_state(o(1)), Some(OperatorState::Ringing(t(0))));
        d.tick(at(61_000)); // second consecutive miss
        assert_eq!(d.operator_state(o(1)), Some(OperatorState::Away));
    }

    #[test]
    fn only_the_rung_operator_may_accept_and_only_before_expiry() {
        let mut d = setup(&[1, 2], &[1]);
        enqueue(&mut d, &[10], 1, Priority::Normal);
        let not_offered = DispatchError::NotOffered(t(10), o(2));
        assert_eq!(d.accept(o(2), t(10), at(11)), Err(not_offered));
        assert_eq!(d.accept(o(1), t(9), at(11)), Err(DispatchError::UnknownTicket(t(9))));
        let expired = DispatchError::OfferExpired(t(10));
        assert_eq!(d.accept(o(1), t(10), at(20_010)), Err(expired));
        assert_eq!(d.operator_state(o(1)), Some(OperatorState::Ringing(t(10))), "nothing changed");
        let acts = d.accept(o(1), t(10), at(20_009)).unwrap();
        has(&acts, assigned(t(10), o(1), l(1)));
        assert_eq!(d.operator_state(o(1)), Some(OperatorState::InCall(t(10))));
        assert_eq!(d.next_deadline(), None);
        check_invariants(&d);
    }

    #[test]
    fn cancel_while_waiting_and_while_ringing() {
        let mut d = setup(&[], &[]);
        enqueue(&mut d, &[1, 2, 3], 1, Priority::Normal);
        let acts = d.cancel(t(2), at(3)).unwrap();
        has(&acts, Action::TicketClosed { ticket: t(2), reason: CloseReason::Cancelled });
        has(&acts, Action::QueueChanged { line: l(1) });
        assert_eq!(d.position(t(3)).unwrap().position, 2);
        d.operator_online(o(1), &[l(1)], at(4)).unwrap(); // rings t1
        let acts = d.cancel(t(1), at(5)).unwrap();
        has(&acts, withdrawn(t(1), o(1), WithdrawReason::Cancelled));
        assert_eq!(offers(&acts), vec![(t(3), o(1))]);
        assert_eq!((d.ticket_state(t(1)), d.waiting_on_line(l(1))), (None, vec![t(3)]));
        d.accept(o(1), t(3), at(6)).unwrap();
        assert_eq!(d.cancel(t(3), at(7)), Err(DispatchError::InvalidTicketState(t(3))));
        check_invariants(&d);
    }

    #[test]
    fn suspend_and_resume_keep_the_place() {
        let mut d = setup(&[], &[]);
        enqueue(&mut d, &[1, 2, 3], 1, Priority::Normal);
        d.suspend(t(1), at(10)).unwrap();
        assert_eq!(d.position(t(1)).unwrap().position, 1);
        assert_eq!(d.position(t(2)).unwrap().position, 2);
        let acts = d.operator_online(o(1), &[l(1)], at(11)).unwrap();
        assert_eq!(offers(&acts), vec![(t(2), o(1))], "a suspended ticket is skipped");
        let acts = d.suspend(t(2), at(12)).unwrap();
        has(&acts, withdrawn(t(2), o(1), WithdrawReason::Suspended));
        assert_eq!(offers(&acts), vec![(t(3), o(1))]);
        d.resume(t(1), at(13)).unwrap();
        d.resume(t(2), at(13)).unwrap();
        assert_eq!(d.waiting_on_line(l(1)), vec![t(1), t(2), t(3)]);
        let acts = serve(&mut d, o(1), t(3), at(14));
        assert_eq!(offers(&acts), vec![(t(1), o(1))], "served in its original place");
        check_invariants(&d);
    }

    #[test]
    fn operator_offline_while_ringing_or_in_call_keeps_the_ticket_place() {
        let mut d = setup(&[], &[]);
        enqueue(&mut d, &[1, 2], 1, Priority::Normal);
        d.operator_online(o(1), &[l(1)], at(2)).unwrap(); // rings t1
        let acts = d.operator_offline(o(1), at(3)).unwrap();
        has(&acts, withdrawn(t(1), o(1), WithdrawReason::OperatorGone));
        assert_eq!(d.operator_state(o(1)), Some(OperatorState::Offline));
        assert_eq!(d.waiting_on_line(l(1)), vec![t(1), t(2)]);
        let acts = d.operator_online(o(2), &[l(1)], at(4)).unwrap();
        assert_eq!(offers(&acts), vec![(t(1), o(2))]);
        d.accept(o(2), t(1), at(5)).unwrap();
        let acts = d.operator_offline(o(2), at(6)).unwrap();
        has(&acts, aborted(t(1), o(2), l(1)));
        assert_eq!(d.waiting_on_line(l(1)), vec![t(1), t(2)]);
        check_invariants(&d);
    }

    #[test]
    fn named_operator_transfer_and_its_fallback() {
        let mut d = setup(&[1, 2], &[1]);
        enqueue(&mut d, &[1], 1, Priority::Normal);
        d.accept(o(1), t(1), at(3)).unwrap(); // o1 busy, o2 available
        let acts = d.enqueue_for_operator(t(2), l(1), Priority::Normal, o(1), at(4)).unwrap();
        assert!(offers(&acts).is_empty(), "not offered to the available o2");
        assert_eq!(d.ticket_state(t(2)), waiting(l(1), Some(o(1))));
        enqueue(&mut d, &[3, 4], 1, Priority::Normal); // t3 rings o2
        d.call_ended(o(1), at(7)).unwrap();
        let acts = d.wrap_up_done(o(1), at(8)).unwrap();
        assert_eq!(offers(&acts), vec![(t(2), o(1))], "the directed ticket comes first");
        // o1 declines: t2 falls back to the line, ahead of the later t4; o1 gets t4.
        let acts = d.decline(o(1), t(2), at(9)).unwrap();
        has(&acts, fallback(t(2), o(1), l(1)));
        assert_eq!(d.waiting_on_line(l(1)), vec![t(2), t(3), t(4)]);
        assert_eq!(offers(&acts), vec![(t(4), o(1))]);
        // A transfer to an offline operator falls back at once.
        d.operator_offline(o(2), at(10)).unwrap();
        let acts = d.enqueue_for_operator(t(5), l(1), Priority::Normal, o(2), at(11)).unwrap();
        has(&acts, fallback(t(5), o(2), l(1)));
        // The target goes offline mid-call while a transfer waits for it.
        d.accept(o(1), t(4), at(12)).unwrap();
        d.enqueue_for_operator(t(6), l(1), Priority::Normal, o(1), at(13)).unwrap();
        let acts = d.operator_offline(o(1), at(14)).unwrap();
        has(&acts, fallback(t(6), o(1), l(1)));
        assert_eq!(d.waiting_on_line(l(1)), vec![t(2), t(3), t(4), t(5), t(6)]);
        check_invariants(&d);
    }

    #[test]
    fn line_transfer_goes_to_the_head_and_frees_the_operator() {
        let mut d = setup(&[1], &[1, 2]);
        d.set_away(o(1), at(0)).unwrap();
        d.operator_online(o(2), &[l(2)], at(0)).unwrap();
        d.set_away(o(2), at(0)).unwrap();
        enqueue(&mut d, &[1, 2], 1, Priority::Normal);
        enqueue(&mut d, &[10], 2, Priority::Elderly);
        enqueue(&mut d, &[11], 2, Priority::Normal);
        d.pick(o(1), t(2), at(20)).unwrap();
        d.requeue(t(1), l(2), Priority::Normal, at(30)).unwrap(); // a waiting ticket
        let acts = d.requeue(t(2), l(2), Priority::Normal, at(40)).unwrap(); // in a call
        has(&acts, changed(o(1), OperatorState::Available)); // no wrap-up
        has(&acts, Action::QueueChanged { line: l(2) });
        // Transfers first (older original ticket first), then priority, then normal.
        assert_eq!(d.waiting_on_line(l(2)), vec![t(1), t(2), t(10), t(11)]);
        assert_eq!(offers(&acts), vec![(t(1), o(1))], "o1 gets the other transfer, not its own");
        assert_eq!(d.handle_estimate_ms(l(1)), 300_000, "transfers do not feed the estimate");
        let board = d.board(at(60)).lines;
        assert_eq!((board[1].line, board[1].longest_wait_ms), (l(2), 59), "the age is kept");
        check_invariants(&d);
    }

    #[test]
    fn pick_from_the_board_including_a_ringing_ticket() {
        let mut d = setup(&[1, 2], &[1]);
        d.set_away(o(2), at(2)).unwrap();
        enqueue(&mut d, &[3, 4, 5], 1, Priority::Normal); // t3 rings o1
        d.suspend(t(5), at(6)).unwrap();
        assert_eq!(d.pick(o(2), t(5), at(7)), Err(DispatchError::NotPickable(t(5))));
        let busy = DispatchError::InvalidOperatorState(o(1), OperatorState::Ringing(t(3)));
        assert_eq!(d.pick(o(1), t(4), at(7)), Err(busy));
        let acts = d.pick(o(2), t(3), at(8)).unwrap(); // an Away operator steals the ringing t3
        has(&acts, withdrawn(t(3), o(1), WithdrawReason::TakenByOther));
        has(&acts, assigned(t(3), o(2), l(1)));
        assert_eq!(offers(&acts), vec![(t(4), o(1))], "the robbed operator gets the next ticket");
        assert_eq!(d.waiting_on_line(l(1)), vec![t(4), t(5)]);
        check_invariants(&d);
    }

    fn c(n: u128) -> CenterId {
        CenterId(Uuid::from_u128(5_000 + n))
    }
    const OVERFLOW: i64 = 120_000;

    /// Operators `(n, center)` online on line 1 in this idle order (at time 0).
    fn centers(ops: &[(u128, Option<u128>)], overflow_after_ms: i64) -> Dispatcher {
        let mut d = Dispatcher::new(Config { overflow_after_ms, ..Config::default() });
        for &(n, center) in ops {
            d.operator_online_in(o(n), &[l(1)], center.map(c), at(0)).unwrap();
        }
        d
    }

    #[test]
    fn a_center_serves_its_own_points_first() {
        // o1 of center 1 has been idle longest; a ticket of center 2 still rings o2.
        let mut d = centers(&[(1, Some(1)), (2, Some(2))], OVERFLOW);
        let acts = d.enqueue_in(t(1), l(1), Priority::Normal, Some(c(2)), at(10)).unwrap();
        assert_eq!(offers(&acts), vec![(t(1), o(2))]);
        let acts = d.enqueue_in(t(2), l(1), Priority::Normal, Some(c(1)), at(11)).unwrap();
        assert_eq!(offers(&acts), vec![(t(2), o(1))]);
        // Both busy: a third ticket of center 2 waits for o2, not for whoever frees first.
        serve(&mut d, o(2), t(1), at(20)); // o2 is Available again and takes nothing else
        d.accept(o(1), t(2), at(21)).unwrap();
        let acts = d.enqueue_in(t(3), l(1), Priority::Elderly, Some(c(1)), at(30)).unwrap();
        assert!(offers(&acts).is_empty(), "o2 of center 2 is not rung for center 1's ticket");
        d.call_ended(o(1), at(40)).unwrap();
        let acts = d.wrap_up_done(o(1), at(41)).unwrap();
        assert_eq!(offers(&acts), vec![(t(3), o(1))]);
        check_invariants(&d);
    }

    /// Appointments and centers together: an appointment of a center's point is reserved to
    /// that center like any ticket, and the walk-in turn after a run of appointments only
    /// counts walk-ins the operator may take (a walk-in reserved to another center does not
    /// keep an operator from the next appointment).
    #[test]
    fn the_appointment_run_counts_only_walk_ins_the_operator_may_take() {
        let mut d = centers(&[(1, Some(1))], OVERFLOW);
        d.enqueue_in(t(0), l(1), Priority::Normal, Some(c(1)), at(0)).unwrap(); // o1 rings with t0
        // A walk-in of center 2 (not o1's before its overflow) and appointments of center 1.
        d.enqueue_in(t(10), l(1), Priority::Normal, Some(c(2)), at(1)).unwrap();
        for n in 1..=4 {
            let slot = (at(0), at(10_000));
            d.enqueue_appointment(t(n), l(1), slot, Some(c(1)), at(2 + n as i64)).unwrap();
        }
        // An appointment of center 2 is not o1's either before the overflow.
        d.enqueue_appointment(t(20), l(1), (at(0), at(10_000)), Some(c(2)), at(9)).unwrap();
        let mut served = Vec::new();
        let mut current = t(0);
        for step in 0..4 {
            let acts = serve(&mut d, o(1), current, at(100 + step));
            check_invariants(&d);
            let [(next, _)] = offers(&acts)[..] else { panic!("{acts:?}") };
            served.push(next);
            current = next;
        }
        assert_eq!(served, vec![t(1), t(2), t(3), t(4)], "no walk-in o1 may take: the run goes on");
        let acts = serve(&mut d, o(1), current, at(200));
        assert!(offers(&acts).is_empty(), "center 2's tickets wait for their overflow");
        // Each at its own overflow: the walk-in first (it came first, and after a run of four
        // appointments a walk-in's turn is due anyway), then center 2's appointment.
        assert!(d.tick(at(OVERFLOW)).is_empty());
        assert_eq!(offers(&d.tick(at(1 + OVERFLOW))), vec![(t(10), o(1))]);
        let acts = serve(&mut d, o(1), t(10), at(2 + OVERFLOW));
        assert!(offers(&acts).is_empty(), "t20 is still center 2's");
        assert_eq!(offers(&d.tick(at(9 + OVERFLOW))), vec![(t(20), o(1))]);
        check_invariants(&d);
    }

    #[test]
    fn another_centers_operator_is_rung_exactly_at_the_overflow() {
        let mut d = centers(&[(1, Some(1))], OVERFLOW);
        let acts = d.enqueue_in(t(1), l(1), Priority::Normal, Some(c(2)), at(1_000)).unwrap();
        assert!(offers(&acts).is_empty(), "not before the overflow");
        assert_eq!(d.position(t(1)).map(|p| p.position), Some(1));
        let overflow = at(1_000 + OVERFLOW);
        assert_eq!(d.next_deadline(), Some(overflow), "the overflow is a deadline");
        assert!(offers(&d.tick(Millis(overflow.0 - 1))).is_empty());
        check_invariants(&d);
        let acts = d.tick(overflow);
        assert_eq!(offers(&acts), vec![(t(1), o(1))], "rung with no other event");
        assert_eq!(d.next_deadline(), Some(Millis(overflow.0 + 20_000)), "now only the ring");
        check_invariants(&d);
        // Missed by the only operator there is: it rings again, still district-wide.
        let acts = d.tick(Millis(overflow.0 + 20_000));
        assert_eq!(offers(&acts), vec![(t(1), o(1))]);
        check_invariants(&d);
    }

    #[test]
    fn an_overflowed_ticket_is_served_by_its_age_and_its_own_center_first() {
        let mut d = centers(&[(1, Some(1))], OVERFLOW);
        d.enqueue_in(t(9), l(1), Priority::Normal, Some(c(1)), at(0)).unwrap();
        d.accept(o(1), t(9), at(1)).unwrap(); // o1 busy
        d.enqueue_in(t(1), l(1), Priority::Normal, Some(c(2)), at(10)).unwrap();
        assert!(d.tick(at(10 + OVERFLOW)).is_empty(), "overflowed, but nobody idle");
        d.enqueue_in(t(2), l(1), Priority::Normal, Some(c(1)), at(200_000)).unwrap();
        // o1 frees: the overflowed ticket of center 2 waited longer than center 1's own.
        d.call_ended(o(1), at(210_000)).unwrap();
        assert_eq!(offers(&d.wrap_up_done(o(1), at(210_001)).unwrap()), vec![(t(1), o(1))]);
        // o1 misses it; o2 of center 2 comes online meanwhile: the ticket rings its own center
        // first although o1 (a re-offer's last resort) and o3 (no center) are there too.
        d.operator_online_in(o(3), &[l(1)], None, at(210_002)).unwrap(); // takes t2
        d.operator_online_in(o(2), &[l(1)], Some(c(2)), at(210_003)).unwrap();
        let acts = d.tick(at(230_001));
        assert_eq!(offers(&acts)[0], (t(1), o(2)));
        check_invariants(&d);
    }

    #[test]
    fn no_overflow_wait_and_no_center_mean_no_restriction() {
        // Overflow 0: no center preference at all, nothing to wait for.
        let mut d = centers(&[(1, Some(1))], 0);
        let acts = d.enqueue_in(t(1), l(1), Priority::Normal, Some(c(2)), at(5)).unwrap();
        assert_eq!(offers(&acts), vec![(t(1), o(1))]);
        assert_eq!(d.next_deadline(), Some(at(5 + 20_000)), "only the ring");
        check_invariants(&d);
        // A ticket with no center goes to an operator of a center; an operator with no center
        // gets a center's ticket at once.
        let mut d = centers(&[(1, Some(1)), (2, None)], OVERFLOW);
        let acts = d.enqueue_in(t(1), l(1), Priority::Normal, None, at(5)).unwrap();
        assert_eq!(offers(&acts), vec![(t(1), o(1))]);
        let acts = d.enqueue_in(t(2), l(1), Priority::Normal, Some(c(2)), at(6)).unwrap();
        assert_eq!(offers(&acts), vec![(t(2), o(2))]);
        check_invariants(&d);
    }

    #[test]
    fn another_centers_ticket_may_be_picked_only_after_its_overflow() {
        let mut d = centers(&[(1, Some(1))], OVERFLOW);
        d.set_away(o(1), at(1)).unwrap();
        d.enqueue_in(t(1), l(1), Priority::Normal, Some(c(2)), at(10)).unwrap();
        assert_eq!(d.pick(o(1), t(1), at(10 + OVERFLOW - 1)), Err(DispatchError::OtherCenter(t(1))));
        assert!(d.tick(at(10 + OVERFLOW)).is_empty(), "o1 is away: nobody rung");
        let acts = d.pick(o(1), t(1), at(10 + OVERFLOW)).unwrap();
        has(&acts, assigned(t(1), o(1), l(1)));
        check_invariants(&d);
        // A named transfer is the operator's choice: not restricted by centers.
        d.operator_online_in(o(2), &[l(1)], Some(c(2)), at(200_000)).unwrap();
        let acts = d.enqueue_for_operator(t(1), l(1), Priority::Normal, o(2), at(200_001)).unwrap();
        assert_eq!(offers(&acts), vec![(t(1), o(2))]);
        check_invariants(&d);
    }

    #[test]
    fn next_deadline_tracks_the_earliest_offer() {
        let mut d = setup(&[1, 2], &[1]);
        assert_eq!(d.next_deadline(), None);
        enqueue(&mut d, &[100, 500], 1, Priority::Normal);
        assert_eq!(d.next_deadline(), Some(at(20_100)));
        d.accept(o(1), t(100), at(600)).unwrap();
        assert_eq!(d.next_deadline(), Some(at(20_500)));
        d.decline(o(2), t(500), at(700)).unwrap(); // nobody else: re-offered to o2
        assert_eq!(d.next_deadline(), Some(at(20_700)));
        d.cancel(t(500), at(800)).unwrap();
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn wait_estimate_follows_position_operators_and_handle_time() {
        let mut d = setup(&[1, 2], &[1]);
        d.set_away(o(1), at(0)).unwrap();
        d.set_away(o(2), at(0)).unwrap();
        enqueue(&mut d, &[1000, 2000, 3000], 1, Priority::Normal);
        enqueue(&mut d, &[4000], 1, Priority::Elderly);
        // t3000 is 4th (the elderly ticket goes first): 4 * 300 s / 2 operators = 600 s.
        let pos = Position { position: 4, estimated_wait_secs: 600 };
        assert_eq!(d.position(t(3000)), Some(pos));
        let line = LineBoard {
            line: l(1),
            waiting: 4,
            priority_waiting: 1,
            longest_wait_ms: 9_000,
            // Service order: the elderly ticket first, then first come, first served.
            head: vec![t(4000), t(1000), t(2000), t(3000)],
        };
        assert_eq!(d.board(at(10_000)).lines, vec![line]);
        d.pick(o(1), t(4000), at(10_000)).unwrap();
        d.call_ended(o(1), at(70_000)).unwrap(); // 60 s: (4 * 300 + 60) / 5 = 252 s
        assert_eq!(d.handle_estimate_ms(l(1)), 252_000);
        assert_eq!(d.position(t(3000)).unwrap().estimated_wait_secs, 3 * 252 / 2);
    }

    /// Tiny deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
        }
    }

    #[test]
    fn simulation_every_ticket_is_assigned_exactly_once() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut d = Dispatcher::new(Config::default());
        let mut now = at(0);
        let ops: Vec<OperatorId> = (0..20).map(o).collect();
        for (i, &op) in ops.iter().enumerate() {
            let mut skills: Vec<_> =
                (0..5).filter(|&x| x == i as u128 % 5 || rng.below(10) < 3).map(l).collect();
            skills.dedup();
            // A third with no center, the rest split between two centers.
            let center =
                [None, Some(CenterId(Uuid::from_u128(1))), Some(CenterId(Uuid::from_u128(2)))][i % 3];
            d.operator_online_in(op, &skills, center, now).unwrap();
        }
        let prios = [Priority::Normal, Priority::Normal, Priority::Elderly, Priority::Pregnant];
        let (mut assigned, mut completed) = (HashMap::<TicketId, u32>::new(), HashSet::new());
        let mut enqueued = 0u128;
        for _ in 0..100_000 {
            if enqueued == 200 && d.tickets.is_empty() {
                break;
            }
            now = Millis(now.0 + 1 + rng.below(5_000) as i64);
            let mut acts = d.tick(now);
            if enqueued < 200 && rng.below(2) == 0 {
                let (line, p) = (l(u128::from(rng.below(5))), prios[rng.below(4) as usize]);
                let center = [None, Some(CenterId(Uuid::from_u128(1))), Some(CenterId(Uuid::from_u128(2)))]
                    [rng.below(3) as usize];
                acts.extend(d.enqueue_in(t(enqueued), line, p, center, now).unwrap());
                enqueued += 1;
            }
            if enqueued > 0 && rng.below(20) == 0 {
                let victim = t(u128::from(rng.below(enqueued as u64)));
                if let Ok(a) = d.suspend(victim, now) {
                    acts.extend(a.into_iter().chain(d.resume(victim, now).unwrap()));
                }
            }
            for &op in &ops {
                let r = rng.below(10);
                let res = match d.operator_state(op).unwrap() {
                    OperatorState::Ringing(tk) if r < 6 => d.accept(op, tk, now),
                    OperatorState::Ringing(tk) if r == 6 => d.decline(op, tk, now),
                    OperatorState::InCall(_) if r < 3 => d.call_ended(op, now),
                    OperatorState::WrapUp if r < 5 => d.wrap_up_done(op, now),
                    OperatorState::Away if r < 2 => d.set_available(op, now),
                    _ => Ok(vec![]),
                };
                acts.extend(res.unwrap());
            }
            for a in acts {
                match a {
                    Action::Assigned { ticket, .. } => *assigned.entry(ticket).or_default() += 1,
                    Action::TicketClosed { ticket, reason: CloseReason::Completed } => {
                        assert!(completed.insert(ticket))
                    }
                    Action::TicketClosed { .. } | Action::CallAborted { .. } => panic!("{a:?}"),
                    _ => {}
                }
            }
            check_invariants(&d);
        }
        assert_eq!((enqueued, d.tickets.len()), (200, 0), "tickets lost or stuck");
        assert_eq!((assigned.len(), completed.len()), (200, 200));
        assert!(assigned.values().all(|&n| n == 1), "a ticket was assigned twice");
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Online(u8, u8),
        Offline(u8),
        Away(u8),
        Available(u8),
        Enqueue(u8, u8, u8),
        EnqueueFor(u8, u8, u8, u8),
        Requeue(u8, u8, u8),
        Cancel(u8),
        Suspend(u8),
        Resume(u8),
        Accept(u8),
        AcceptAny(u8, u8),
        Decline(u8),
        Pick(u8, u8),
        End(u8),
        WrapDone(u8),
        Advance(u16),
    }

    fn ev() -> impl proptest::strategy::Strategy<Value = Ev> {
        use proptest::prelude::*;
        let (tk, op, ln, pr) = (0u8..8, 0u8..4, 0u8..3, 0u8..4);
        prop_oneof![
            1 => (op.clone(), 1u8..8).prop_map(|(a, b)| Ev::Online(a, b)),
            1 => op.clone().prop_map(Ev::Offline),
            1 => op.clone().prop_map(Ev::Away),
            1 => op.clone().prop_map(Ev::Available),
            3 => (tk.clone(), ln.clone(), pr.clone()).prop_map(|(a, b, c)| Ev::Enqueue(a, b, c)),
            1 => (tk.clone(), ln.clone(), pr.clone(), op.clone())
                .prop_map(|(a, b, c, e)| Ev::EnqueueFor(a, b, c, e)),
            1 => (tk.clone(), ln, pr).prop_map(|(a, b, c)| Ev::Requeue(a, b, c)),
            1 => tk.clone().prop_map(Ev::Cancel),
            1 => tk.clone().prop_map(Ev::Suspend),
            1 => tk.clone().prop_map(Ev::Resume),
            3 => op.clone().prop_map(Ev::Accept),
            1 => (op.clone(), tk.clone()).prop_map(|(a, b)| Ev::AcceptAny(a, b)),
            1 => op.clone().prop_map(Ev::Decline),
            1 => (op.clone(), tk).prop_map(|(a, b)| Ev::Pick(a, b)),
            2 => op.clone().prop_map(Ev::End),
            2 => op.prop_map(Ev::WrapDone),
            3 => (0u16..3000).prop_map(Ev::Advance),
        ]
    }

    /// What the outside world knows, rebuilt purely from the emitted actions.
    #[derive(Default)]
    struct Model {
        ringing: HashMap<TicketId, OperatorId>,
        assigned: HashSet<TicketId>,
        live: HashSet<TicketId>,
        op_state: HashMap<OperatorId, OperatorState>,
    }

    impl Model {
        fn apply(&mut self, acts: &[Action]) {
            for a in acts {
                match *a {
                    Action::Offer { ticket, operator, .. } => {
                        assert!(!self.ringing.values().any(|&x| x == operator), "op rung twice");
                        assert!(self.ringing.insert(ticket, operator).is_none(), "rings two ops");
                    }
                    Action::OfferWithdrawn { ticket, operator, .. } => {
                        assert_eq!(self.ringing.remove(&ticket), Some(operator))
                    }
                    Action::Assigned { ticket, operator, .. } => {
                        assert!(self.ringing.remove(&ticket).is_none_or(|x| x == operator));
                        assert!(self.assigned.insert(ticket), "ticket assigned twice");
                    }
                    Action::CallAborted { ticket, .. } => assert!(self.assigned.remove(&ticket)),
                    Action::TicketClosed { ticket, .. } => {
                        self.assigned.remove(&ticket);
                        assert!(self.live.remove(&ticket));
                    }
                    Action::OperatorStateChanged { operator, state } => {
                        self.op_state.insert(operator, state);
                    }
                    Action::DirectedFallback { .. } | Action::QueueChanged { .. } => {}
                }
            }
        }

        fn check(&self, d: &Dispatcher) {
            for id in (0..8).map(t) {
                let st = d.ticket_state(id);
                assert_eq!(st.is_some(), self.live.contains(&id), "lost or phantom {id:?}");
                let assigned = matches!(st, Some(TicketState::Assigned { .. }));
                assert_eq!(assigned, self.assigned.contains(&id));
                let ringing = match st {
                    Some(TicketState::Ringing { operator, .. }) => Some(operator),
                    _ => None,
                };
                assert_eq!(ringing, self.ringing.get(&id).copied());
            }
            for (&op, &st) in &self.op_state {
                assert_eq!(d.operator_state(op), Some(st));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        #[test]
        fn invariants_hold_for_random_events(events in proptest::collection::vec(ev(), 1..120)) {
            let cfg = Config { ring_timeout_ms: 1_000, misses_before_away: 2, default_handle_ms: 60_000, overflow_after_ms: 2_000 };
            // Operators and tickets of two centers and of none.
            let center = |x: u8| [None, Some(CenterId(Uuid::from_u128(1))), Some(CenterId(Uuid::from_u128(2)))][usize::from(x % 3)];
            let (mut d, mut m, mut now) = (Dispatcher::new(cfg), Model::default(), at(0));
            let prio = |p: u8| [Priority::Normal, Priority::Elderly, Priority::Disabled, Priority::Pregnant][usize::from(p)];
            let skills = |mask: u8| (0..3u8).filter(|b| mask & (1 << b) != 0).map(|b| l(b.into())).collect::<Vec<_>>();
            let (tk, op, ln) = (|x: u8| t(x.into()), |x: u8| o(x.into()), |x: u8| l(x.into()));
            for e in events {
                let ringing = |d: &Dispatcher, a: u8| match d.operator_state(op(a)) {
                    Some(OperatorState::Ringing(x)) => Some(x),
                    _ => None,
                };
                // A transfer takes an assigned ticket out of its call without a dedicated action.
                let transferred = match e {
                    Ev::EnqueueFor(x, ..) | Ev::Requeue(x, ..) => {
                        matches!(d.ticket_state(tk(x)), Some(TicketState::Assigned { .. })).then_some(tk(x))
                    }
                    _ => None,
                };
                let res = match e {
                    Ev::Online(a, mask) => d.operator_online_in(op(a), &skills(mask), center(a), now),
                    Ev::Offline(a) => d.operator_offline(op(a), now),
                    Ev::Away(a) => d.set_away(op(a), now),
                    Ev::Available(a) => d.set_available(op(a), now),
                    Ev::Enqueue(x, n, p) => d.enqueue_in(tk(x), ln(n), prio(p), center(x), now),
                    Ev::EnqueueFor(x, n, p, a) => d.enqueue_for_operator(tk(x), ln(n), prio(p), op(a), now),
                    Ev::Requeue(x, n, p) => d.requeue(tk(x), ln(n), prio(p), now),
                    Ev::Cancel(x) => d.cancel(tk(x), now),
                    Ev::Suspend(x) => d.suspend(tk(x), now),
                    Ev::Resume(x) => d.resume(tk(x), now),
                    Ev::Accept(a) => ringing(&d, a).map_or(Ok(vec![]), |x| d.accept(op(a), x, now)),
                    Ev::AcceptAny(a, x) => d.accept(op(a), tk(x), now),
                    Ev::Decline(a) => ringing(&d, a).map_or(Ok(vec![]), |x| d.decline(op(a), x, now)),
                    Ev::Pick(a, x) => d.pick(op(a), tk(x), now),
                    Ev::End(a) => d.call_ended(op(a), now),
                    Ev::WrapDone(a) => d.wrap_up_done(op(a), now),
                    Ev::Advance(ms) => {
                        now = Millis(now.0 + i64::from(ms));
                        Ok(d.tick(now))
                    }
                };
                if let Ok(acts) = res {
                    if let Ev::Enqueue(x, ..) | Ev::EnqueueFor(x, ..) = e {
                        m.live.insert(tk(x));
                    }
                    if let Some(x) = transferred {
                        m.assigned.remove(&x);
                    }
                    m.apply(&acts);
                }
                m.check(&d);
                check_invariants(&d);
                proptest::prop_assert!(d.next_deadline().is_none_or(|dl| dl > now), "stale deadline");
            }
        }
    }
}
