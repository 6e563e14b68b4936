//! The work order (工单) as a state machine, sans-IO: [`Order::apply`] takes an action, the
//! explicit `now` and the working-day calendar, and returns the next order and what to do
//! (notifications, a call-back); [`Order::escalation`] says whether an overdue or near-due
//! order is to be raised to supervisors (提级响应) at this time.
//!
//! ```text
//!   受理 accepted ──classify──▶ 分类 classified ──transfer──▶ 转办 transferred ──complete──▶ 办结 completed ──feedback──▶ 反馈 closed
//!        ▲                         │    ▲                           │                                 │                         │
//!        └────────退回 return──────┘    └──────────退回 return───────┘◀───────────reopen (call-back unsatisfied)─────────────────────┘
//!   挂起 suspend / resume: any open stage; the clock stops (the deadline moves by the working days paused).
//! ```

use shared::cases::{DeadlineClass, EscalationLevel, OrderAction, OrderState};

use crate::calendar::{Calendar, cst_day, day_start};

/// Escalations go out from this hour (China time) on working days.
pub const WORKING_HOUR_START_MIN: i64 = 9 * 60;

/// The part of a work order the machine decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub state: OrderState,
    pub deadline: DeadlineClass,
    /// When the deadline's clock started (creation, or the last reopening).
    pub clock_start: i64,
    /// `[from, to)` spans the clock was stopped; the last may still be open.
    pub pauses: Vec<(i64, Option<i64>)>,
    /// Set while suspended (挂起).
    pub suspended_reason: Option<String>,
    pub category: Option<String>,
    pub department: Option<String>,
    pub escalated: EscalationLevel,
}

/// What the caller is to do after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Tell the resident (outbox): 受理, 需补材料, 办结 …
    NotifyResident(&'static str),
    /// A call-back (回访) task for the completed order.
    CallBack,
    /// Tell supervisors the order was raised (提级响应).
    Escalate(EscalationLevel),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("当前状态「{state}」不能执行「{action}」 (illegal transition)")]
    Illegal { state: &'static str, action: &'static str },
    #[error("工单已挂起，请先恢复 (suspended)")]
    Suspended,
}

impl Order {
    /// A new order, accepted (受理) at `now`.
    pub fn new(deadline: DeadlineClass, now: i64) -> Self {
        Self {
            state: OrderState::Accepted,
            deadline,
            clock_start: now,
            pauses: Vec::new(),
            suspended_reason: None,
            category: None,
            department: None,
            escalated: EscalationLevel::None,
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, OrderState::Completed | OrderState::Closed)
    }

    /// The deadline at `now` (an open pause counts until `now`).
    pub fn due_at(&self, cal: &Calendar, now: i64) -> i64 {
        match self.deadline {
            DeadlineClass::Set { due_at } => {
                // A set deadline moves by the paused working days too.
                let paused: u32 = self
                    .pauses
                    .iter()
                    .map(|&(a, b)| cal.working_days_starting_in(a, b.unwrap_or(now)))
                    .fold(0, u32::saturating_add);
                if paused == 0 { due_at } else { cal.due_after_working_days(due_at, paused) }
            }
            class => cal.deadline_with_pauses(self.clock_start, class.working_days(), &self.pauses, now),
        }
    }

    /// Applies `action` at `now`: the next order and its effects, or why not.
    pub fn apply(&self, action: &OrderAction, now: i64) -> Result<(Order, Vec<Effect>), OrderError> {
        use OrderAction as A;
        use OrderState as S;
        let illegal = || OrderError::Illegal { state: self.state.label_zh(), action: action.label_zh() };
        if self.suspended_reason.is_some() && !matches!(action, A::Resume) {
            return Err(OrderError::Suspended);
        }
        let mut next = self.clone();
        let mut effects = Vec::new();
        match (self.state, action) {
            (S::Accepted | S::Classified, A::Classify { category }) => {
                next.state = S::Classified;
                next.category = Some(category.clone());
            }
            (S::Classified | S::Transferred, A::Transfer { department, .. }) => {
                next.state = S::Transferred;
                next.department = Some(department.clone());
            }
            (S::Classified | S::Transferred, A::Return { .. }) => {
                next.state = S::Accepted;
                next.department = None;
            }
            (S::Accepted | S::Classified | S::Transferred, A::Suspend { .. }) => {
                let A::Suspend { reason } = action else { unreachable!() };
                next.suspended_reason = Some(reason.clone());
                next.pauses.push((now, None));
            }
            (S::Accepted | S::Classified | S::Transferred, A::Resume) if self.suspended_reason.is_some() => {
                next.suspended_reason = None;
                if let Some(last) = next.pauses.last_mut() {
                    last.1 = Some(now);
                }
            }
            (S::Accepted | S::Classified | S::Transferred, A::RequestMaterials { .. }) => {
                effects.push(Effect::NotifyResident("needs_materials"));
            }
            (S::Transferred, A::Complete { .. }) => {
                next.state = S::Completed;
                effects.push(Effect::NotifyResident("completed"));
                effects.push(Effect::CallBack);
            }
            (S::Completed, A::Feedback { .. }) => next.state = S::Closed,
            (S::Completed | S::Closed, A::Reopen { .. }) => {
                next.state = S::Transferred;
                next.clock_start = now;
                next.pauses.clear();
                next.escalated = EscalationLevel::None;
                if let DeadlineClass::Set { .. } = next.deadline {
                    next.deadline = DeadlineClass::FiveDays;
                }
                effects.push(Effect::NotifyResident("reopened"));
            }
            (s, A::SetDeadline { deadline }) if s != S::Completed && s != S::Closed => {
                next.deadline = *deadline;
                next.escalated = EscalationLevel::None;
            }
            _ => return Err(illegal()),
        }
        Ok((next, effects))
    }

    /// The escalation due at `now`, if any beyond what was already raised: near-due on the
    /// deadline's own working day, overdue on any working day after it, in both cases from
    /// 09:00 China time (never at night or on a day off). A suspended order does not escalate.
    pub fn escalation(&self, cal: &Calendar, now: i64) -> Option<EscalationLevel> {
        if !self.is_open() || self.suspended_reason.is_some() {
            return None;
        }
        let today = cst_day(now);
        if !cal.is_working_day(today) || now - day_start(today) < WORKING_HOUR_START_MIN * 60_000 {
            return None;
        }
        let due = self.due_at(cal, now);
        let level = if now > due {
            EscalationLevel::Overdue
        } else if cst_day(due) == today {
            EscalationLevel::NearDue
        } else {
            return None;
        };
        (level > self.escalated).then_some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{day_end, days_from_civil};

    fn cst(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
        day_start(days_from_civil(y, m, d)) + (h * 60 + min) * 60_000
    }

    fn all_actions() -> Vec<OrderAction> {
        vec![
            OrderAction::Classify { category: "社保".into() },
            OrderAction::Transfer { department: "社保中心".into(), assignee_id: None },
            OrderAction::Return { reason: "不属本部门".into() },
            OrderAction::Suspend { reason: "等待外部审批".into() },
            OrderAction::Resume,
            OrderAction::RequestMaterials { note: "户口簿".into() },
            OrderAction::Complete { result: "已办结".into() },
            OrderAction::Feedback { feedback: "满意".into() },
            OrderAction::Reopen { reason: "回访不满意".into() },
            OrderAction::SetDeadline { deadline: DeadlineClass::TenDays },
        ]
    }

    /// Every (state, action) pair: exactly the drawn transitions are allowed.
    #[test]
    fn every_transition_and_every_illegal_one() {
        use OrderState as S;
        let now = cst(2026, 12, 7, 10, 0);
        let allowed: &[(S, &str, S)] = &[
            (S::Accepted, "classify", S::Classified),
            (S::Accepted, "suspend", S::Accepted),
            (S::Accepted, "request_materials", S::Accepted),
            (S::Accepted, "set_deadline", S::Accepted),
            (S::Classified, "classify", S::Classified),
            (S::Classified, "transfer", S::Transferred),
            (S::Classified, "return", S::Accepted),
            (S::Classified, "suspend", S::Classified),
            (S::Classified, "request_materials", S::Classified),
            (S::Classified, "set_deadline", S::Classified),
            (S::Transferred, "transfer", S::Transferred),
            (S::Transferred, "return", S::Accepted),
            (S::Transferred, "suspend", S::Transferred),
            (S::Transferred, "request_materials", S::Transferred),
            (S::Transferred, "complete", S::Completed),
            (S::Transferred, "set_deadline", S::Transferred),
            (S::Completed, "feedback", S::Closed),
            (S::Completed, "reopen", S::Transferred),
            (S::Closed, "reopen", S::Transferred),
        ];
        for state in [S::Accepted, S::Classified, S::Transferred, S::Completed, S::Closed] {
            for action in all_actions() {
                let order = Order { state, ..Order::new(DeadlineClass::FiveDays, now) };
                let got = order.apply(&action, now);
                let want = allowed.iter().find(|(s, a, _)| *s == state && *a == action.kind());
                match (want, got) {
                    (Some((_, _, to)), Ok((next, _))) => {
                        assert_eq!(next.state, *to, "{state:?} {}", action.kind())
                    }
                    (None, Err(OrderError::Illegal { .. })) => {}
                    (w, g) => panic!("{state:?} + {}: want {w:?}, got {g:?}", action.kind()),
                }
            }
        }
    }

    #[test]
    fn a_suspended_order_only_resumes_and_its_clock_stops() {
        let cal = Calendar::builtin();
        let start = cst(2026, 11, 23, 10, 0); // Monday
        let o = Order::new(DeadlineClass::FiveDays, start);
        assert_eq!(o.due_at(cal, start), day_end(days_from_civil(2026, 11, 30)));
        let (o, _) = o
            .apply(
                &OrderAction::Suspend { reason: "等待不动产登记中心答复".into() },
                cst(2026, 11, 24, 15, 0),
            )
            .expect("suspend");
        for action in all_actions().into_iter().filter(|a| a.kind() != "resume") {
            assert_eq!(o.apply(&action, cst(2026, 11, 25, 9, 0)).err(), Some(OrderError::Suspended));
        }
        // While suspended, the deadline keeps moving with each working day that begins.
        assert_eq!(o.due_at(cal, cst(2026, 11, 25, 9, 0)), day_end(days_from_civil(2026, 12, 1)));
        assert_eq!(o.escalation(cal, cst(2026, 12, 9, 10, 0)), None, "a suspended order does not escalate");
        let (o, _) = o.apply(&OrderAction::Resume, cst(2026, 11, 26, 11, 0)).expect("resume");
        assert_eq!(o.suspended_reason, None);
        assert_eq!(o.due_at(cal, cst(2026, 12, 20, 0, 0)), day_end(days_from_civil(2026, 12, 2)));
        assert!(o.apply(&OrderAction::Resume, cst(2026, 11, 26, 12, 0)).is_err(), "not suspended");
    }

    #[test]
    fn completion_asks_for_a_call_back_and_reopening_restarts_the_clock() {
        let cal = Calendar::builtin();
        let t = cst(2026, 12, 7, 10, 0);
        let o = Order { state: OrderState::Transferred, ..Order::new(DeadlineClass::TenDays, t) };
        let (done, effects) =
            o.apply(&OrderAction::Complete { result: "已办结".into() }, t).expect("complete");
        assert_eq!(effects, vec![Effect::NotifyResident("completed"), Effect::CallBack]);
        let later = cst(2026, 12, 21, 10, 0);
        let (re, _) =
            done.apply(&OrderAction::Reopen { reason: "回访不满意".into() }, later).expect("reopen");
        assert_eq!(re.state, OrderState::Transferred);
        assert_eq!(
            re.due_at(cal, later),
            day_end(days_from_civil(2027, 1, 4)),
            "10 working days from Dec 21"
        );
    }

    #[test]
    fn escalation_comes_at_nine_on_working_days() {
        let cal = Calendar::builtin();
        // Accepted Thursday 2026-02-12 with 5 working days: 13, 14 (make-up Saturday), 24, 25, 26.
        let o = Order::new(DeadlineClass::FiveDays, cst(2026, 2, 12, 10, 0));
        assert_eq!(o.due_at(cal, 0), day_end(days_from_civil(2026, 2, 26)));
        assert_eq!(o.escalation(cal, cst(2026, 2, 25, 17, 0)), None, "the day before");
        assert_eq!(o.escalation(cal, cst(2026, 2, 26, 8, 59)), None, "before 09:00");
        assert_eq!(o.escalation(cal, cst(2026, 2, 26, 9, 0)), Some(EscalationLevel::NearDue));
        let near = Order { escalated: EscalationLevel::NearDue, ..o.clone() };
        assert_eq!(near.escalation(cal, cst(2026, 2, 26, 15, 0)), None, "raised once");
        // Friday 27th is a working day: overdue from 09:00, not at midnight.
        assert_eq!(near.escalation(cal, cst(2026, 2, 27, 0, 30)), None);
        assert_eq!(near.escalation(cal, cst(2026, 2, 27, 9, 0)), Some(EscalationLevel::Overdue));
        let over = Order { escalated: EscalationLevel::Overdue, ..o.clone() };
        assert_eq!(over.escalation(cal, cst(2026, 3, 2, 9, 30)), None);
        // Due on the eve of a holiday: overdue waits for the first working day after it.
        let eve = Order::new(DeadlineClass::SameDay, cst(2026, 9, 24, 10, 0));
        assert_eq!(eve.escalation(cal, cst(2026, 9, 25, 10, 0)), None, "Mid-Autumn holiday");
        assert_eq!(eve.escalation(cal, cst(2026, 9, 28, 9, 0)), Some(EscalationLevel::Overdue));
    }

    #[test]
    fn a_set_deadline_is_kept_and_moved_by_pauses() {
        let cal = Calendar::builtin();
        let due = cst(2026, 12, 11, 18, 0);
        let o = Order::new(DeadlineClass::Set { due_at: due }, cst(2026, 12, 7, 10, 0));
        assert_eq!(o.due_at(cal, 0), due);
        let paused = Order { pauses: vec![(cst(2026, 12, 7, 12, 0), Some(cst(2026, 12, 8, 12, 0)))], ..o };
        assert_eq!(paused.due_at(cal, 0), day_end(days_from_civil(2026, 12, 14)));
    }
}
