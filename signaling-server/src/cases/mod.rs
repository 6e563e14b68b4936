//! Cases that outlive the call (issue 14), split by concern:
//! - [`machine`]: the work order (工单) state machine, sans-IO with an explicit `now`.
//! - [`orders`]: work orders' storage and REST (`/api/v1/orders`), escalation (提级响应).
//! - [`outbox`]: the durable notification outbox (signed webhook, console task list).
//! - [`callbacks`]: call-back (回访) tasks from rectifications, completed orders and sampled
//!   good ratings; their outcome closes the rectification or closes / reopens the order.
//! - [`problems`]: the problem list and the rectification list (两张清单).
//! - [`home_visits`]: home-visit requests (上门办) 发现 → 审核 → 帮办 → 评价.
//! - [`reports`]: 日报告、周通报、月汇总 per point, street or line, as JSON and XLSX.

pub mod callbacks;
pub mod home_visits;
pub mod machine;
pub mod orders;
pub mod outbox;
pub mod problems;
pub mod reports;
