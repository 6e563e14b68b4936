//! Tickets: taking one (admission here, the database checks in the driver), its creation,
//! cancelling, closing, and queue positions.

use serde_json::json;
use shared::protocol::{ErrorCode, ServerMsg, SessionEndReason, TicketCloseReason, TicketView};
use uuid::Uuid;

use super::availability::wait_range;
use super::{Core, Output, POSITIONS_INTERVAL_MS, Refusal, TicketRequest, TicketRt, refuse};
use crate::dispatch::{self, CenterId, LineId, Millis, TicketId};
use crate::switchboard::store::Write;
use crate::switchboard::wire::{priority_str, to_dispatch_priority};

impl Core {
    /// Admission of a `take_ticket`: a repeated request gets its ticket again; a resident's
    /// details need a staff sign-in. What passes goes to the driver ([`Output::CreateTicket`]),
    /// which checks the item, the point and the staff token, then asks
    /// [`Core::may_open_ticket`].
    pub(super) fn take_ticket(&mut self, mut req: TicketRequest, _now: i64) -> Result<(), Refusal> {
        let terminal = req.terminal;
        if let Some(existing) = self.requests.get(&(terminal, req.request_id)).copied()
            && let Some(t) = self.tickets.get(&existing)
        {
            let msg = ServerMsg::TicketIssued { ticket: t.view.clone(), request_id: req.request_id };
            self.send(terminal, msg);
            self.send_position(existing);
            return Ok(());
        }
        req.point = self
            .party(terminal)?
            .info
            .point_id
            .ok_or_else(|| refuse(ErrorCode::Forbidden, "终端未绑定服务点 (no point)"))?;
        let has_details = req.resident.as_ref().is_some_and(|r| r.name.is_some() || r.id_number.is_some());
        if has_details && req.staff_token.is_none() {
            return Err(refuse(
                ErrorCode::Forbidden,
                "录入居民信息须由工作人员登录后办理 (resident details need a staff sign-in)",
            ));
        }
        self.out.push(Output::CreateTicket(req));
        Ok(())
    }

    /// A terminal holds at most `max_open_tickets_per_terminal` open tickets (one resident at
    /// a time at a kiosk).
    pub fn may_open_ticket(&self, terminal: Uuid) -> Result<(), Refusal> {
        let open = self.tickets.values().filter(|t| t.terminal == terminal).count();
        if open >= self.settings.max_open_tickets_per_terminal {
            return Err(refuse(
                ErrorCode::Conflict,
                "本终端已有号票在办理中，请先办完或取消 (this terminal already has an open ticket)",
            ));
        }
        Ok(())
    }

    /// The ticket is stored: it is issued and joins the queue.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ticket_created(
        &mut self,
        terminal: Uuid,
        request_id: Uuid,
        view: TicketView,
        recording: bool,
        center: Option<Uuid>,
        appointment: Option<(i64, i64)>,
        now: i64,
    ) {
        let id = view.ticket_id;
        let line = view.line_id;
        let priority = view.priority;
        self.line_names.entry(line).or_insert_with(|| view.line_name.clone());
        self.tickets.insert(
            id,
            TicketRt {
                view: view.clone(),
                terminal,
                request_id: Some(request_id),
                created_at: now,
                queued_since: now,
                session: None,
                previous_session: None,
                transfer: None,
                recording,
                appointment: appointment.is_some(),
                last_position: None,
            },
        );
        self.requests.insert((terminal, request_id), id);
        self.send(terminal, ServerMsg::TicketIssued { ticket: view, request_id });
        let (priority, center) = (to_dispatch_priority(priority), center.map(CenterId));
        let r = match appointment {
            Some((start, end)) => self.dispatcher.enqueue_appointment(
                TicketId(id),
                LineId(line),
                (Millis(start), Millis(end)),
                center,
                Millis(now),
            ),
            None => self.dispatcher.enqueue_in(TicketId(id), LineId(line), priority, center, Millis(now)),
        };
        self.apply(r, now);
        self.send_position(id);
        self.board_dirty = true;
    }

    pub(super) fn cancel_ticket(&mut self, terminal: Uuid, ticket_id: Uuid, now: i64) -> Result<(), Refusal> {
        let t = self
            .tickets
            .get(&ticket_id)
            .filter(|t| t.terminal == terminal)
            .cloned()
            .ok_or_else(|| refuse(ErrorCode::NotFound, "号票不存在 (no such ticket)"))?;
        match t.session {
            Some(s) => self.end_session(s, SessionEndReason::ResidentLeft, now),
            None => {
                let r = self.dispatcher.cancel(TicketId(ticket_id), Millis(now));
                self.apply_checked(r, now)?;
                self.close_ticket(ticket_id, "cancelled", TicketCloseReason::Cancelled, now);
            }
        }
        Ok(())
    }

    pub(crate) fn close_ticket(
        &mut self,
        ticket: Uuid,
        status: &'static str,
        reason: TicketCloseReason,
        now: i64,
    ) {
        let Some(t) = self.tickets.remove(&ticket) else { return };
        self.forget_request(&t);
        self.persist(
            Write::TicketStatus { ticket, status, close_reason: Some(status), at: now },
            vec![t.terminal],
        );
        self.log_event(ticket, None, "ticket_closed", json!({ "status": status }), now);
        self.send(t.terminal, ServerMsg::TicketClosed { ticket_id: ticket, reason });
        self.board_dirty = true;
    }

    /// Forgets the `take_ticket` request a closed ticket answered.
    pub(crate) fn forget_request(&mut self, t: &TicketRt) {
        if let Some(r) = t.request_id {
            self.requests.remove(&(t.terminal, r));
        }
    }

    /// Sends a ticket's position to its terminal, even if unchanged (after a reconnect or a
    /// new ticket).
    pub(crate) fn send_position(&mut self, ticket: Uuid) {
        if let Some(t) = self.tickets.get_mut(&ticket) {
            t.last_position = None;
        }
        if let Some(p) = self.dispatcher.position(TicketId(ticket)) {
            self.deliver_position(ticket, p);
        }
    }

    /// Sends a position only when it (or who serves the line, or the wait) differs from the
    /// last one sent: a queue of thousands does not cost a message per ticket on every change.
    pub(crate) fn deliver_position(&mut self, ticket: Uuid, p: dispatch::Position) {
        let Some(line) = self.tickets.get(&ticket).map(|t| t.view.line_id) else { return };
        let id = LineId(line);
        let serving = self.dispatcher.serving(id);
        let handle_ms = self.dispatcher.handle_estimate_ms(id);
        let ringing = matches!(
            self.dispatcher.ticket_state(TicketId(ticket)),
            Some(dispatch::TicketState::Ringing { .. })
        );
        if let Some(t) = self.tickets.get_mut(&ticket) {
            tell_position(&mut self.out, ticket, t, p, serving, handle_ms, ringing);
        }
    }

    /// The queue of `line` moved (a ticket joined, left, started or stopped ringing): its
    /// residents are told their new positions at the next [`Input::Tick`], at most once per
    /// [`POSITIONS_INTERVAL_MS`] per line. `O(1)` here: when the head is served every ticket
    /// behind it moves up, and walking the line on every assignment cost `O(k)` per change
    /// (and a message to every resident of the line per assignment); coalesced, a busy line
    /// costs one walk a second and a quiet one is told at once (the driver ticks as soon as
    /// [`Core::next_deadline`] is due).
    ///
    /// [`Input::Tick`]: super::Input::Tick
    pub(crate) fn queue_moved(&mut self, line: Uuid, now: i64) {
        if self.positions_due.contains_key(&line) {
            return;
        }
        let due = self.positions_told_at.get(&line).map_or(now, |at| (at + POSITIONS_INTERVAL_MS).max(now));
        self.positions_due.insert(line, due);
    }

    /// The earliest due refresh of a line's positions.
    pub(crate) fn positions_deadline(&self) -> Option<i64> {
        self.positions_due.values().min().copied()
    }

    /// Tells the residents of every line whose refresh is due their positions (only those that
    /// changed, see [`Self::deliver_position`]).
    pub(crate) fn refresh_due_positions(&mut self, now: i64) {
        if self.positions_due.is_empty() {
            return;
        }
        let mut due: Vec<Uuid> =
            self.positions_due.iter().filter(|(_, at)| **at <= now).map(|(line, _)| *line).collect();
        due.sort();
        for line in due {
            self.walk_line(line, now);
        }
    }

    /// Tells every waiting resident of `line` whose position or wait changed: one pass in
    /// service order, `O(k)`, figures per line computed once.
    fn walk_line(&mut self, line: Uuid, now: i64) {
        self.positions_due.remove(&line);
        self.positions_told_at.insert(line, now);
        let id = LineId(line);
        let Core { dispatcher, tickets, out, .. } = self;
        let serving = dispatcher.serving(id);
        let handle_ms = dispatcher.handle_estimate_ms(id);
        for (ticket, p, ringing) in dispatcher.line_walk(id) {
            if let Some(t) = tickets.get_mut(&ticket.0) {
                tell_position(out, ticket.0, t, p, serving, handle_ms, ringing);
            }
        }
    }

    /// Re-sends the positions of those of `lines` that went unstaffed or staffed again since
    /// their residents were last told (dedup'd per ticket). A line is walked only then: with
    /// thousands waiting, walking it at every operator state change flooded the terminals.
    pub(crate) fn refresh_lines(&mut self, mut lines: Vec<Uuid>, now: i64) {
        lines.sort();
        lines.dedup();
        for line in lines {
            // Only a line going unstaffed or staffed again is walked at once (当前无人值守 is
            // shown or lifted); other changes in the number serving reach the residents with
            // the next move of the queue, so operators coming on duty one by one do not each
            // send every waiting resident a message.
            let staffed = self.dispatcher.serving(LineId(line)) > 0;
            if self.told_staffed.insert(line, staffed) == Some(staffed) {
                continue;
            }
            self.walk_line(line, now);
        }
    }
}

/// Queues a `queue_position` for a waiting ticket when what its resident reads changed since
/// the last one sent.
fn tell_position(
    out: &mut Vec<Output>,
    ticket: Uuid,
    t: &mut TicketRt,
    p: dispatch::Position,
    serving: u32,
    handle_ms: i64,
    ringing: bool,
) {
    if t.session.is_some() {
        return;
    }
    let wait = wait_range(p.position, serving, handle_ms, ringing);
    let now = (p.position, p.estimated_wait_secs, serving, wait);
    if t.last_position == Some(now) {
        return;
    }
    t.last_position = Some(now);
    out.push(Output::Send {
        to: t.terminal,
        msg: ServerMsg::QueuePosition {
            ticket_id: ticket,
            position: p.position,
            estimated_wait_secs: p.estimated_wait_secs,
            serving: Some(serving),
            wait,
        },
    });
}

/// The `ticket_taken` event written with a new ticket.
pub fn ticket_taken_event(
    ticket: Uuid,
    priority: shared::protocol::Priority,
    assisted_by: Option<Uuid>,
    recording_consent: Option<bool>,
    now: i64,
) -> Write {
    Write::Event {
        ticket,
        session: None,
        kind: "ticket_taken",
        detail: json!({
            "priority": priority_str(priority),
            "assisted_by": assisted_by,
            "recording_consent": recording_consent,
        }),
        at: now,
    }
}
