//! The board: lines with their waiting tickets (numbers, items, priorities, never names) and
//! every operator with their name and true state, throttled to once per `BOARD_INTERVAL_MS`.

use shared::protocol::{BoardTicket, LineBoard, OperatorBoardEntry, Role, ServerMsg};
use uuid::Uuid;

use super::parties::is_watcher;
use super::{BOARD_INTERVAL_MS, Core};
use crate::dispatch::Millis;

impl Core {
    pub(super) fn flush_board(&mut self, now: i64) {
        if !self.board_dirty || now < self.board_sent_at + BOARD_INTERVAL_MS {
            return;
        }
        self.board_dirty = false;
        self.board_sent_at = now;
        let msg = self.board(now);
        let mut watchers: Vec<Uuid> = self
            .parties
            .values()
            .filter(|p| p.conn.is_some() && is_watcher(p.info.role))
            .map(|p| p.info.id)
            .collect();
        watchers.sort();
        if !watchers.is_empty() {
            self.send_many(watchers, msg);
        }
    }

    /// The board as it stands at `now`.
    pub fn board(&self, now: i64) -> ServerMsg {
        let b = self.dispatcher.board(Millis(now));
        let lines = b
            .lines
            .iter()
            .map(|l| LineBoard {
                line_id: l.line.0,
                line_name: self.line_names.get(&l.line.0).cloned().unwrap_or_default(),
                waiting: l.waiting,
                priority_waiting: l.priority_waiting,
                longest_wait_secs: u32::try_from(l.longest_wait_ms / 1000).unwrap_or(u32::MAX),
                next: l
                    .head
                    .iter()
                    .filter_map(|t| self.tickets.get(&t.0))
                    .map(|t| BoardTicket {
                        ticket_id: t.view.ticket_id,
                        number: t.view.number.clone(),
                        item_name: t.view.item_name.clone(),
                        priority: t.view.priority,
                        waited_secs: u32::try_from((now - t.created_at).max(0) / 1000).unwrap_or(u32::MAX),
                    })
                    .collect(),
            })
            .collect();
        // Every operator the switchboard knows: in the dispatcher, or connected outside it.
        let mut ids: Vec<Uuid> = b.operators.iter().map(|(id, _)| id.0).collect();
        ids.extend(
            self.parties
                .values()
                .filter(|p| p.info.role == Role::Operator && p.conn.is_some())
                .map(|p| p.info.id),
        );
        ids.sort();
        ids.dedup();
        // Each operator's live call, which a supervisor may join from the board.
        let mut live: std::collections::HashMap<Uuid, Uuid> = std::collections::HashMap::new();
        for (sid, s) in &self.sessions {
            if s.state.is_live() {
                live.entry(s.operator).and_modify(|x| *x = (*x).min(*sid)).or_insert(*sid);
            }
        }
        let operators = ids
            .into_iter()
            .map(|id| OperatorBoardEntry {
                operator_id: id,
                name: self.operator_names.get(&id).cloned().unwrap_or_default(),
                state: self.operator_view(id),
                session_id: live.get(&id).copied(),
            })
            .collect();
        ServerMsg::Board { lines, operators }
    }
}
