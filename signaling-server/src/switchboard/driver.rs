//! The switchboard task: carries the core's outputs out.
//!
//! Each turn of the loop takes one event (or a timer tick) and then every event already
//! waiting (up to [`BATCH`]), feeding them to the core; what they need from the database is
//! looked up first. At the end of the turn the writes of all of them are committed in one
//! transaction (group commit) and only then are their messages delivered, in order: nothing is
//! acknowledged before it is durable. A failed write is logged and reported to the parties it
//! concerns. Creating a ticket is the exception that must happen at once: the batch so far is
//! flushed, the ticket and its event are stored in their own transaction, then it is issued.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::protocol::{ByeReason, ClientMsg, ErrorCode, Role, ServerMsg, TicketView, TransferTarget};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::core::availability::Opening;
use super::core::{Core, CoreSettings, Input, Lookup, Output, Refusal, TicketRequest, refuse};
use super::lease::Fence;
use super::outbox::{Delivery, DeliveryStats, LocalDelivery};
use super::store::{self, Write};
use super::{Event, Settings, service_day};
use crate::db::{Db, now_ms};
use crate::metrics::{Metrics, SwitchboardSnapshot};
use crate::pii::Pii;

/// Events handled in one turn (one group commit) at most.
const BATCH: usize = 256;

pub struct Driver {
    db: Db,
    pii: Pii,
    tokens: crate::auth::tokens::TokenService,
    core: Core,
    out: LocalDelivery,
    /// Outputs of this turn, delivered after its writes are committed.
    pending: Vec<Output>,
    /// Welcome replies waiting, by connection.
    replies: HashMap<Uuid, oneshot::Sender<ServerMsg>>,
    metrics: Arc<Metrics>,
    /// When each `signal` / `peer_signal` of this turn was read off its socket: its relay
    /// latency is recorded once the turn's messages are queued.
    relays: Vec<Instant>,
    /// `(session, party)` that reported their call setup time (once each).
    setup_reported: HashSet<(Uuid, Uuid)>,
    /// Cluster mode: the lease this authority writes under.
    fence: Option<Fence>,
    /// Set when a write was refused because the lease is no longer ours: the task stops.
    fenced: std::sync::atomic::AtomicBool,
}

impl Driver {
    pub fn new(db: Db, pii: Pii, settings: Settings, stats: Arc<DeliveryStats>) -> Self {
        let core = Core::new(
            CoreSettings {
                ring_timeout_ms: settings.ring_timeout_ms,
                overflow_after_ms: settings.overflow_after_ms,
                resume_window_ms: settings.resume_window_ms,
                max_open_tickets_per_terminal: settings.max_open_tickets_per_terminal.max(1),
                ice: settings.ice,
            },
            HashMap::new(),
        );
        Self {
            db,
            pii,
            tokens: settings.tokens,
            core,
            out: LocalDelivery::new(stats),
            pending: Vec::new(),
            replies: HashMap::new(),
            metrics: settings.metrics,
            relays: Vec::new(),
            setup_reported: HashSet::new(),
            fence: settings.fence,
            fenced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>, recovered: oneshot::Sender<()>) {
        self.recover().await;
        let _ = recovered.send(());
        loop {
            let now = now_ms();
            let sleep =
                self.core.next_deadline().map(|d| Duration::from_millis(u64::try_from(d - now).unwrap_or(0)));
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                () = async {
                    match sleep {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let turn = Instant::now();
                    self.feed(Input::Tick, now_ms()).await;
                    self.flush().await;
                    self.metrics.switchboard_turn(turn.elapsed());
                    if self.fenced.load(std::sync::atomic::Ordering::Relaxed) {
                        self.out.close_all(ByeReason::Shutdown);
                        break;
                    }
                    continue;
                }
            };
            let Some(first) = ev else { break };
            let turn = Instant::now();
            let mut next = Some(first);
            let mut handled = 0;
            let mut stop = false;
            while let Some(ev) = next.take() {
                if matches!(ev, Event::Shutdown) {
                    stop = true;
                    break;
                }
                self.event(ev).await;
                handled += 1;
                if handled < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.flush().await;
            self.metrics.switchboard_turn(turn.elapsed());
            if self.fenced.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::error!("switchboard: the lease is another node's now; this authority stops");
                stop = true;
            }
            if stop {
                self.out.close_all(ByeReason::Shutdown);
                break;
            }
        }
    }

    /// After a restart: interrupted calls are closed, today's open tickets wait again.
    async fn recover(&mut self) {
        let now = now_ms();
        match store::line_names(&self.db).await {
            Ok(names) => self.core.line_names.extend(names),
            Err(e) => tracing::error!(error = %e, "cannot load line names"),
        }
        // A cluster's new authority carries on the calls in progress (media flows peer to peer
        // meanwhile; the parties reconnect and resume); a restarted single node closes them.
        let keep_live = self.fence.is_some();
        match store::close_interrupted_sessions(&self.db, self.fence.as_ref(), now, keep_live).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(sessions = n, "closed calls interrupted by a restart"),
            Err(e) => tracing::error!(error = %e, "cannot close interrupted sessions"),
        }
        let live = if keep_live {
            store::live_sessions(&self.db).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot load the calls in progress");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        match store::open_tickets(&self.db).await {
            Ok(open) => {
                let outs = self.core.recover(open, live, &service_day(now), now);
                let outs: Vec<Output> = outs.into_iter().map(|o| self.seal(o)).collect();
                self.pending.extend(outs);
                self.flush().await;
            }
            Err(e) => tracing::error!(error = %e, "cannot load open tickets"),
        }
    }

    async fn event(&mut self, ev: Event) {
        let now = now_ms();
        match ev {
            Event::Connect { party, outbox, reply } => {
                let (skills, center) = if party.role == Role::Operator {
                    let skills = store::skills(&self.db, party.id).await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "cannot load an operator's skills");
                        Vec::new()
                    });
                    // No center on a failed lookup: the operator serves district-wide.
                    let center = store::operator_center(&self.db, party.id).await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "cannot load an operator's center");
                        None
                    });
                    (skills, center)
                } else {
                    (Vec::new(), None)
                };
                let conn = outbox.conn;
                self.out.attach(party.id, outbox);
                self.replies.insert(conn, reply);
                self.feed(Input::Connect { party, conn, skills, center }, now).await;
            }
            Event::Message {
                party, conn, msg: ClientMsg::CallSetup { session_id, first_frame_ms }, ..
            } => {
                self.call_setup(party, conn, session_id, first_frame_ms);
            }
            Event::Message { party, conn, msg, received } => {
                if matches!(msg, ClientMsg::Signal { .. } | ClientMsg::PeerSignal { .. }) {
                    self.relays.push(received);
                }
                let lookup = self.lookup(party, &msg, now).await;
                self.feed(Input::Message { party, conn, msg, lookup }, now).await;
            }
            Event::Disconnect { party, conn } => {
                self.out.detach(party, conn);
                self.feed(Input::Disconnect { party, conn }, now).await;
            }
            Event::Kick { party, reason } => self.feed(Input::Kick { party, reason }, now).await,
            Event::Notify { parties, msg } => self.feed(Input::Notify { parties, msg }, now).await,
            Event::Session { session, reply } => {
                let _ = reply.send(self.core.session(session));
            }
            Event::SessionsOf { party, reply } => {
                let _ = reply.send(self.core.sessions_of(party));
            }
            Event::Availability { opening, lines, next_on_duty, reply } => {
                let _ = reply.send(self.core.availability(opening, &lines, &next_on_duty));
            }
            Event::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(now));
            }
            Event::CentersChanged => match store::centers(&self.db).await {
                Ok((operators, points)) => self.feed(Input::Centers { operators, points }, now).await,
                Err(e) => tracing::error!(error = %e, "cannot load acceptance centers"),
            },
            Event::Shutdown => {}
        }
    }

    /// What a message needs from the database, looked up before it enters the core.
    async fn lookup(&self, party: Uuid, msg: &ClientMsg, now: i64) -> Lookup {
        let internal = |e: sqlx::Error| {
            tracing::error!(error = %e, "switchboard lookup failed");
            refuse(ErrorCode::Internal, "请求失败，请重试 (retry)")
        };
        match msg {
            ClientMsg::RequestScan { session_id, slot_id: Some(slot), .. } => {
                match self.core.session_item(*session_id, party) {
                    Some(item) => {
                        Lookup::SlotName(store::slot_name(&self.db, item, *slot).await.map_err(internal))
                    }
                    None => Lookup::None,
                }
            }
            ClientMsg::Transfer { target: TransferTarget::Operator { operator_id }, .. } => {
                Lookup::OperatorExists(match store::user_name(&self.db, *operator_id).await {
                    Ok(Some((_, role, active))) => Ok(active && role == "operator"),
                    Ok(None) => Ok(false),
                    Err(e) => Err(internal(e)),
                })
            }
            ClientMsg::Rate { level, .. } => Lookup::RectificationDue(
                level.is_negative().then(|| crate::api::stats::due_after_working_days(now, 15)),
            ),
            _ => Lookup::None,
        }
    }

    /// Feeds the core and sorts its outputs: replies at once, tickets created at once, the
    /// rest into this turn's batch.
    async fn feed(&mut self, input: Input, now: i64) {
        let mut queue: VecDeque<Output> = self.decide(input, now).into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Welcome { conn, msg } => {
                    if let Some(reply) = self.replies.remove(&conn) {
                        let _ = reply.send(msg);
                    }
                }
                Output::CreateTicket(req) => {
                    // Everything before it is durable and out before the ticket is issued.
                    self.flush().await;
                    let terminal = req.terminal;
                    match self.create_ticket(&req, now).await {
                        Ok((view, center, appointment)) => {
                            let recording = req.recording_consent == Some(true);
                            let input = Input::TicketCreated {
                                terminal,
                                request_id: req.request_id,
                                view,
                                recording,
                                center,
                                appointment,
                            };
                            let mut next: VecDeque<Output> = self.decide(input, now).into();
                            next.extend(queue);
                            queue = next;
                        }
                        Err(Refusal(code, message)) => self.pending.push(Output::Send {
                            to: terminal,
                            msg: ServerMsg::error(code, message, Some("take_ticket")),
                        }),
                    }
                }
                other => self.pending.push(self.seal(other)),
            }
        }
    }

    /// Personal free text (wrap-up and transfer notes, rating comments) leaves the driver only
    /// sealed, bound to its session row.
    fn seal(&self, o: Output) -> Output {
        let Output::Persist { mut write, tell } = o else { return o };
        match &mut write {
            Write::EndSession { session, transfer_note, .. } => {
                *transfer_note =
                    self.pii.seal(transfer_note.as_deref(), &Pii::transfer_note_context(*session));
            }
            Write::WrapUp { session, notes, .. } => {
                *notes = self.pii.seal(notes.as_deref(), &Pii::notes_context(*session));
            }
            Write::Rate { session, comment, .. } => {
                *comment = self.pii.seal(comment.as_deref(), &Pii::comment_context(*session));
            }
            _ => {}
        }
        Output::Persist { write, tell }
    }

    /// The core's decision on one input, timed.
    fn decide(&mut self, input: Input, now: i64) -> Vec<Output> {
        let start = Instant::now();
        let outs = self.core.handle(input, now);
        self.metrics.dispatch_decision(start.elapsed());
        outs
    }

    /// Records a party's `call_setup` report: only from the operator or the terminal of a
    /// session the switchboard holds, on its current connection, once per session and side.
    fn call_setup(&mut self, party: Uuid, conn: Uuid, session: Uuid, ms: u32) {
        if self.core.parties.get(&party).and_then(|p| p.conn) != Some(conn) {
            return;
        }
        let Some(side) = self.core.session(session).and_then(|s| {
            if s.operator == party {
                Some(true)
            } else if s.terminal == party {
                Some(false)
            } else {
                None
            }
        }) else {
            self.pending.push(Output::Send {
                to: party,
                msg: ServerMsg::error(
                    ErrorCode::Forbidden,
                    "您不在该通话中 (not a party of this session)",
                    Some("call_setup"),
                ),
            });
            return;
        };
        if self.setup_reported.len() >= 4096 {
            let sessions = &self.core.sessions;
            self.setup_reported.retain(|(s, _)| sessions.contains_key(s));
        }
        if self.setup_reported.insert((session, party)) {
            self.metrics.call_setup(side, ms);
        }
    }

    /// What `/metrics` shows of the switchboard: connections by role, every known line's
    /// queue, live calls.
    fn snapshot(&self, now: i64) -> SwitchboardSnapshot {
        let mut connections: Vec<(Role, u32)> = Vec::new();
        for p in self.core.parties.values().filter(|p| p.conn.is_some()) {
            match connections.iter_mut().find(|(r, _)| *r == p.info.role) {
                Some((_, n)) => *n += 1,
                None => connections.push((p.info.role, 1)),
            }
        }
        let board = self.core.dispatcher.board(crate::dispatch::Millis(now));
        let mut lines: Vec<(Uuid, String, u32, i64)> =
            self.core.line_names.iter().map(|(id, name)| (*id, name.clone(), 0, 0)).collect();
        for l in board.lines {
            match lines.iter_mut().find(|x| x.0 == l.line.0) {
                Some(x) => (x.2, x.3) = (l.waiting, l.longest_wait_ms),
                None => lines.push((l.line.0, String::new(), l.waiting, l.longest_wait_ms)),
            }
        }
        lines.sort();
        let live = self.core.sessions.values().filter(|s| s.state.is_live()).count();
        SwitchboardSnapshot { connections, lines, calls_live: u32::try_from(live).unwrap_or(u32::MAX) }
    }

    /// Commits this turn's writes in one transaction, then delivers its messages in order.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            self.relayed();
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let writes: Vec<(&Write, &Vec<Uuid>)> = pending
            .iter()
            .filter_map(|o| match o {
                Output::Persist { write, tell } => Some((write, tell)),
                _ => None,
            })
            .collect();
        let mut failed_for: Vec<Uuid> = Vec::new();
        if !writes.is_empty() {
            let all: Vec<Write> = writes.iter().map(|(w, _)| (*w).clone()).collect();
            if let Err(e) = store::commit(&self.db, self.fence.as_ref(), &all).await {
                if super::lease::is_fenced(&e) {
                    // Another node runs the switchboard now: nothing of this turn is told.
                    self.fenced.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                tracing::error!(error = %e, writes = all.len(), "group commit failed; writing one by one");
                for (w, tell) in &writes {
                    if let Err(e) =
                        store::commit(&self.db, self.fence.as_ref(), std::slice::from_ref(*w)).await
                    {
                        tracing::error!(error = %e, "switchboard could not persist a state change");
                        failed_for.extend(tell.iter().copied());
                    }
                }
            }
        }
        failed_for.sort();
        failed_for.dedup();
        // A party whose change was not stored is not told this turn that it worked: it gets
        // an error instead of the turn's messages.
        let told = |p: &Uuid| failed_for.binary_search(p).is_err();
        for o in pending {
            match o {
                Output::Send { to, msg } if told(&to) => {
                    self.out.send(to, &msg);
                }
                Output::SendMany { to, msg } => {
                    self.out.send_many(&mut to.into_iter().filter(|p| told(p)), &msg);
                }
                Output::Close { party, reason } => self.out.close(party, reason),
                Output::Send { .. }
                | Output::Persist { .. }
                | Output::Welcome { .. }
                | Output::CreateTicket(_) => {}
            }
        }
        for p in failed_for {
            let msg = ServerMsg::error(
                ErrorCode::Internal,
                "记录未能保存，请重试或联系管理员 (a change could not be saved)",
                None,
            );
            self.out.send(p, &msg);
        }
        self.relayed();
    }

    /// The signaling messages of this turn are queued for their peers: record how long each
    /// took from the sender's socket.
    fn relayed(&mut self) {
        for at in self.relays.drain(..) {
            self.metrics.signal_relayed(at);
        }
    }

    /// Checks a ticket request against the database and stores the ticket with its event.
    async fn create_ticket(
        &self,
        req: &TicketRequest,
        now: i64,
    ) -> Result<(TicketView, Option<Uuid>, Option<(i64, i64)>), Refusal> {
        let internal = |e: sqlx::Error| {
            tracing::error!(error = %e, "ticket lookup failed");
            refuse(ErrorCode::Internal, "取号失败，请重试 (could not take a ticket, retry)")
        };
        let point = req.point;
        let item = store::item_info(&self.db, req.item_id)
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
        let (center, offered) = store::point_scope(&self.db, point, req.item_id).await.map_err(internal)?;
        if !offered {
            return Err(refuse(
                ErrorCode::Forbidden,
                "本服务点所在街道不提供该事项，请选择其他事项 (item not offered on this point's street)",
            ));
        }
        // Opening hours: only a point with structured hours is ever outside them.
        if let Some(hours) = crate::api::points::schedule(&self.db, point).await.map_err(internal)? {
            let cal = crate::calendar::load(&self.db).await.map_err(internal)?;
            if let Some(message) = Opening::at(Some(&hours), &cal, now).closed_message() {
                return Err(refuse(ErrorCode::OutsideHours, format!("{message} (outside opening hours)")));
            }
        }
        let staff = match &req.staff_token {
            Some(t) => Some(self.assisting_staff(t.as_str(), point).await?),
            None => None,
        };
        self.core.may_open_ticket(req.terminal)?;
        let day = service_day(now);
        let appointment = match req.appointment_id {
            Some(a) => match store::bookable_appointment(&self.db, a, point, req.item_id, &day, now)
                .await
                .map_err(internal)?
            {
                Some(slot) => Some(slot),
                None => {
                    let state = store::appointment_state(&self.db, a, point).await.map_err(internal)?;
                    return Err(match state.as_deref() {
                        Some("checked_in" | "served") => already_checked_in(),
                        _ => refuse(
                            ErrorCode::NotFound,
                            "预约不存在或已失效 (no such appointment to check in)",
                        ),
                    });
                }
            },
            None => None,
        };
        let seq = store::next_ticket_seq(&self.db, point, &day).await.map_err(internal)?;
        let prefix = point_code.chars().next().filter(char::is_ascii_alphabetic).unwrap_or('A');
        let number = format!("{prefix}-{seq:04}");
        let id = crate::db::new_id();
        let name = req.resident.as_ref().and_then(|r| r.name.as_ref());
        let idn = req.resident.as_ref().and_then(|r| r.id_number.as_ref());
        let new = store::NewTicket {
            id,
            number: &number,
            service_day: &day,
            point_id: point,
            terminal_id: req.terminal,
            item_id: req.item_id,
            line_id: item.line_id,
            priority: super::wire::priority_str(req.priority),
            request_id: req.request_id,
            resident_name_enc: name.map(|n| self.pii.encrypt(n.as_str(), &format!("ticket:{id}:name"))),
            resident_name_masked: name.map(|n| n.masked()),
            id_number_enc: idn.map(|n| self.pii.encrypt(n.as_str(), &format!("ticket:{id}:id_number"))),
            id_number_hash: idn.map(|n| self.pii.keyed_hash(n.as_str())),
            id_number_masked: idn.map(|n| n.masked()),
            assisted_by: staff.as_ref().map(|(id, name)| (*id, name.as_str())),
            created_at: now,
            recording_consent: req.recording_consent,
        };
        let event = super::core::tickets::ticket_taken_event(
            id,
            req.priority,
            staff.as_ref().map(|(id, _)| *id),
            req.recording_consent,
            now,
        );
        // The ticket and the appointment's check-in are one transaction: a check-in that lost
        // a race with another of the same appointment stores nothing and is told so.
        let stored = store::insert_ticket(&self.db, self.fence.as_ref(), &new, &event, req.appointment_id)
            .await
            .map_err(|e| {
                if super::lease::is_fenced(&e) {
                    self.fenced.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                internal(e)
            })?;
        if stored == store::Stored::AlreadyCheckedIn {
            return Err(already_checked_in());
        }
        let view = TicketView {
            ticket_id: id,
            number: number.clone(),
            item_id: req.item_id,
            item_name: item.item_name,
            line_id: item.line_id,
            line_name: item.line_name,
            point_id: point,
            point_name,
            priority: req.priority,
            resident_name_masked: new.resident_name_masked.clone(),
            id_number_masked: new.id_number_masked.clone(),
            waited_secs: 0,
            assisted_by: staff.map(|(_, name)| name),
        };
        Ok((view, center, appointment))
    }

    /// The staff member signed in at the kiosk, from their access token: role `staff`, active,
    /// bound to the terminal's point. Returns `(user id, display name)`.
    async fn assisting_staff(&self, token: &str, point: Uuid) -> Result<(Uuid, String), Refusal> {
        let invalid = || {
            refuse(ErrorCode::Forbidden, "工作人员登录已失效，请重新登录 (staff sign-in invalid or expired)")
        };
        let claims =
            self.tokens.verify(token, crate::auth::tokens::TokenKind::Access).map_err(|_| invalid())?;
        if claims.role != Role::Staff {
            return Err(invalid());
        }
        if claims.point != Some(point) {
            return Err(refuse(ErrorCode::Forbidden, "该工作人员不属于本服务点 (staff of another point)"));
        }
        let (name, role, active, generation) = store::user_account(&self.db, claims.sub)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "staff lookup failed");
                refuse(ErrorCode::Internal, "取号失败，请重试 (retry)")
            })?
            .ok_or_else(invalid)?;
        // A password change, reset, role change or disabling ends the staff sign-in at once.
        if !active || role != "staff" || generation != claims.generation {
            return Err(invalid());
        }
        Ok((claims.sub, name))
    }
}

/// The refusal of a second check-in of one appointment.
fn already_checked_in() -> Refusal {
    refuse(ErrorCode::Conflict, "该预约已签到取号，请勿重复签到 (the appointment is already checked in)")
}
