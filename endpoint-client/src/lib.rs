//! 帮办 Bangban terminal program (`endpoint-client`): runs on the dual-screen kiosk at a
//! neighbourhood service point, stays connected to the signaling server and carries the WebRTC
//! video call with an operator at the acceptance center.
//!
//! Module map:
//! - [`config`]: typed configuration (TOML file + `BANGBAN_ENDPOINT_*` environment).
//! - [`auth`]: enrollment (code → device credential, file mode 0600) and device JWTs, refreshed
//!   before expiry.
//! - [`backoff`]: reconnect backoff with jitter.
//! - [`signaling`]: the WebSocket connection (`bangban.v1, bearer.<JWT>`), heartbeat, reconnect.
//! - [`kiosk`]: the session state machine, sans-IO (ticket → queue → call → rating).
//! - [`live`]: counts of what calls hold (pipelines, peer connections, tasks) for the status.
//! - [`call`]: one WebRTC call (webrtc-rs 0.21, polite peer, trickle ICE, ICE restart);
//!   [`timeline`]: when each step of its setup happened (offer → first decoded frame).
//! - [`media`]: GStreamer capture/encode (VP8 or H.264, Opus) and decode/display or headless counting.
//! - [`wall`]: the first screen during a call: the operator's camera, a specialist's beside it
//!   (one compositor window).
//! - [`desk`]: sans-IO device decisions: may a scan start, what the resident reads of a scan,
//!   an upload or a print job.
//! - [`scan`]: the scanner (`scanimage` subprocess, JPEG pages, faults);
//!   [`spool`]: scanned pages kept durably until stored; [`upload`]: tus uploads with resume.
//! - [`recording`]: a call recorded to one Matroska/WebM file with consent; [`recording::probe`].
//! - [`print`]: print jobs: claim (token persisted first), download, SHA-256, IPP to CUPS once,
//!   state reports. [`rest`]: the device-token REST calls.
//! - [`tls`]: rustls (ring) for `https://` / `wss://`: system roots plus the config's CA file.
//! - [`storage`]: disk use of the state bounded (`[storage]`), the alarm before the bound,
//!   the oldest finished files deleted at it, scans refused when only unsent pages are left.
//! - [`health`]: the heartbeat (devices, printer, scanner, disk, version) every 30 s.
//! - [`screen`]: screens that reset when left untouched (sans-IO).
//! - [`view`]: the status the kiosk shows and the commands its page sends (plain data, so
//!   `app`, `ui` and `health` do not import each other).
//! - [`ui`]: the local kiosk UI (Simplified Chinese, large type) and its JSON API;
//!   [`staff`]: the staff member signed in there (renewed while present, signed out when idle).
//! - [`watchdog`]: `sd_notify` readiness and watchdog pings from the app loop.
//! - [`terminal`]: the terminal's behaviour, sans-IO (explicit `now`): kiosk, staff login,
//!   screens, scanner, notices; events in, actions out.
//! - [`app`]: `run`, the drivers around [`terminal`] (signaling, the call task, scan task, REST
//!   calls, uploader, printer) and the status output.
//!
//! The binary (`main.rs`) is a thin CLI: `endpoint-client enroll --code CODE`, `endpoint-client run`.

pub mod app;
pub mod auth;
pub mod backoff;
pub mod call;
pub mod config;
pub mod desk;
pub mod health;
pub mod kiosk;
pub mod live;
pub mod media;
pub mod print;
pub mod recording;
pub mod rest;
pub mod scan;
pub mod screen;
pub mod signaling;
pub mod spool;
pub mod staff;
pub mod storage;
pub mod terminal;
pub mod timeline;
pub mod tls;
pub mod ui;
pub mod upload;
pub mod view;
pub mod wall;
pub mod watchdog;
