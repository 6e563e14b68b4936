//! Cases that outlive the call (issue 14), split by concern:
//! - [`machine`]: the work order (工单) state machine, sans-IO with an explicit `now`.
//! - [`orders`]: work orders' storage and REST (`/api/v1/orders`), escalation (提级响应).
//! - [`outbox`]: the durable notification outbox (signed webhook, console task list).

pub mod machine;
pub mod orders;
pub mod outbox;
