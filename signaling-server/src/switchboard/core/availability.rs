//! What a resident is told before and after taking a ticket, honestly: whether the point takes
//! tickets now (its structured opening hours by the working-day calendar, looked up by the
//! driver), who serves the ticket's line now (signed in, available or in a call, with the
//! line's skill; an operator who is away does not count), and the wait as a range from those
//! operators and the line's recent handle times. No operator, no number.

use std::collections::HashMap;

use shared::api::{LineAvailability, TerminalAvailability};
use shared::cases::OpeningHours;
use shared::protocol::WaitRange;
use uuid::Uuid;

use super::Core;
use crate::calendar::{self, Calendar};
use crate::dispatch::LineId;

/// Whether a point takes tickets at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Opening {
    Open,
    /// Closed; opens next at this time (Unix ms) when known.
    Closed {
        next_open_at: Option<i64>,
    },
}

impl Opening {
    /// The point's opening at `now`: a point without structured hours is always open (its
    /// free text is only shown); one with hours follows them and the calendar.
    pub fn at(schedule: Option<&OpeningHours>, cal: &Calendar, now: i64) -> Self {
        match schedule {
            None => Opening::Open,
            Some(h) if calendar::is_open(h, cal, now) => Opening::Open,
            Some(h) => Opening::Closed { next_open_at: calendar::next_open_at(h, cal, now) },
        }
    }

    /// What the resident reads when the point is closed.
    pub fn closed_message(self) -> Option<String> {
        match self {
            Opening::Open => None,
            Opening::Closed { next_open_at: Some(at) } => {
                Some(format!("本服务点现在不开放，下次开放：{}", calendar::cst_when(at)))
            }
            Opening::Closed { next_open_at: None } => Some("本服务点现在不开放".into()),
        }
    }
}

/// The wait of the ticket at `position` (1 = next) on a line `serving` operators serve, each
/// call taking about `handle_ms`: between `(position - 1)` and `position` calls' worth shared
/// among them (the ones ahead may be nearly done or just begun). `None` without anyone serving:
/// there is no basis for a number. A ticket already ringing an operator waits nothing.
pub fn wait_range(position: u32, serving: u32, handle_ms: i64, ringing: bool) -> Option<WaitRange> {
    if serving == 0 {
        return None;
    }
    if ringing {
        return Some(WaitRange { min_secs: 0, max_secs: 0 });
    }
    let per = handle_ms.max(0) / i64::from(serving);
    let secs =
        |calls: u32| u32::try_from((i64::from(calls).saturating_mul(per) + 999) / 1000).unwrap_or(u32::MAX);
    Some(WaitRange { min_secs: secs(position.saturating_sub(1)), max_secs: secs(position) })
}

impl Core {
    /// Who serves `line` now and how long a ticket taken now would wait (no roster known).
    pub fn line_availability(&self, line: Uuid) -> LineAvailability {
        let id = LineId(line);
        let serving = self.dispatcher.serving(id);
        let waiting = self.dispatcher.queue_len(id);
        LineAvailability {
            line_id: line,
            serving,
            waiting,
            wait: wait_range(
                waiting.saturating_add(1),
                serving,
                self.dispatcher.handle_estimate_ms(id),
                false,
            ),
            next_staffed_at: None,
        }
    }

    /// What a terminal shows before a ticket is taken: the point's opening (looked up at the
    /// edge) and each of `lines`; for a line nobody serves, when its duty roster next brings
    /// someone on (`next_on_duty`, from the rosters looked up at the edge).
    pub fn availability(
        &self,
        opening: Opening,
        lines: &[Uuid],
        next_on_duty: &HashMap<Uuid, i64>,
    ) -> TerminalAvailability {
        TerminalAvailability {
            open: opening == Opening::Open,
            next_open_at: match opening {
                Opening::Closed { next_open_at } => next_open_at,
                Opening::Open => None,
            },
            closed_message: opening.closed_message(),
            lines: lines
                .iter()
                .map(|&l| {
                    let mut a = self.line_availability(l);
                    if a.serving == 0 {
                        a.next_staffed_at = next_on_duty.get(&l).copied();
                    }
                    a
                })
                .collect(),
        }
    }
}
