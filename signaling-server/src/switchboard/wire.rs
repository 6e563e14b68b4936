//! Mappings between the wire vocabulary (`shared::protocol`), the dispatcher's own types and
//! the strings stored in the database (the names themselves live in `shared::vocab`). Pure
//! functions, no state.

use shared::protocol::{
    OperatorStateView, Outcome, Priority, RatingLevel, RingCancelReason, SessionEndReason,
};

use crate::dispatch::{self, WithdrawReason};

pub fn priority_str(p: Priority) -> &'static str {
    p.as_str()
}

/// The stored priority; anything unknown counts as normal.
pub fn priority_from_str(s: &str) -> Priority {
    s.parse().unwrap_or_default()
}

pub fn to_dispatch_priority(p: Priority) -> dispatch::Priority {
    match p {
        Priority::Normal => dispatch::Priority::Normal,
        Priority::Elderly => dispatch::Priority::Elderly,
        Priority::Disabled => dispatch::Priority::Disabled,
        Priority::Pregnant => dispatch::Priority::Pregnant,
    }
}

pub fn op_view(s: dispatch::OperatorState) -> OperatorStateView {
    match s {
        dispatch::OperatorState::Offline => OperatorStateView::Offline,
        dispatch::OperatorState::Available => OperatorStateView::Available,
        dispatch::OperatorState::Ringing(_) => OperatorStateView::Ringing,
        dispatch::OperatorState::InCall(_) => OperatorStateView::InCall,
        dispatch::OperatorState::WrapUp => OperatorStateView::WrapUp,
        dispatch::OperatorState::Away => OperatorStateView::Away,
    }
}

pub fn ring_reason(r: WithdrawReason) -> RingCancelReason {
    match r {
        WithdrawReason::Timeout | WithdrawReason::OperatorGone | WithdrawReason::Declined => {
            RingCancelReason::Timeout
        }
        WithdrawReason::Cancelled | WithdrawReason::Transferred => RingCancelReason::Cancelled,
        WithdrawReason::TakenByOther => RingCancelReason::TakenByOther,
        WithdrawReason::Suspended => RingCancelReason::ResidentLeft,
    }
}

pub fn outcome_str(o: Outcome) -> &'static str {
    o.as_str()
}

pub fn rating_str(l: RatingLevel) -> &'static str {
    l.as_str()
}

pub fn end_reason_str(r: SessionEndReason) -> &'static str {
    r.as_str()
}
