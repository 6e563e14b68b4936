//! Bangban's wire types, shared by the signaling server, the endpoint client and (through the
//! generated JSON Schema) the browser console.
//!
//! Module map:
//! - [`validate`]: validated newtypes for untrusted strings (ID numbers, SDP, notes, ...).
//! - [`protocol`]: the versioned WebSocket protocol (`ClientMsg`, `ServerMsg`).
//! - [`api`]: REST request and response bodies.
//! - [`vocab`]: stored and wire names (`as_str`, `FromStr`) of roles, priorities, rating
//!   levels, outcomes and end reasons, in one place.
//! - [`cases`]: REST bodies of cases that outlive the call (calendar, opening hours, work
//!   orders, call-backs, notifications, home visits, reports).

pub mod api;
pub mod cases;
pub mod protocol;
pub mod validate;
pub mod vocab;
