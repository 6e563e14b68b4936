//! End-to-end tests: the real signaling server (in-process), the real `endpoint-client` binary
//! (headless, test sources) and a scripted operator peer on webrtc-rs speaking the WebSocket
//! protocol as `operator1`.
//!
//! The `endpoint-client` binary must be built (`cargo build -p endpoint-client`; `cargo test
//! --workspace` builds it through the endpoint-client package's own CLI test).

mod call;
mod cluster;
mod h264;
mod health;
mod helpers;
mod kiosk_api;
mod netcut;
mod netproxy;
mod print;
mod scan;
mod screens;
mod soak;
mod staff;
mod tls;
mod turn;
mod watchdog;
