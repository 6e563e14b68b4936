//! What the kiosk shows and asks for: the [`Status`] (pushed to the kiosk page, printed as
//! status lines, read by the heartbeat) and the page's [`UiCommand`]s. Plain data: the app loop
//! fills it, `ui` serves it, `health` reads it — none of them imports another for its types.

use serde::Serialize;
use shared::protocol::{Priority, RatingLevel, ResidentDetails};
use shared::validate::Comment;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::call::CallSnapshot;
use crate::kiosk::{ActionError, Notice};
use crate::print::PrinterStatus;
use crate::staff::StaffSession;
use crate::upload::UploadProgress;

/// What the kiosk UI asks for.
#[derive(Debug)]
pub enum UiCommand {
    TakeTicket {
        item_id: Uuid,
        priority: Priority,
        resident: Option<ResidentDetails>,
        /// The resident agreed that the call is recorded.
        recording_consent: bool,
        /// Check in this appointment (预约签到) with the ticket.
        appointment_id: Option<Uuid>,
    },
    /// Signed-in staff book a slot for the resident (预约); the booked appointment (its check-in
    /// code and time) goes back on `answer` once the server stored it.
    BookAppointment {
        item_id: Uuid,
        slot_start: i64,
        name: shared::validate::PersonName,
        phone: String,
        consent_text: String,
        answer: oneshot::Sender<shared::cases::AppointmentView>,
    },
    Cancel,
    Rate {
        level: RatingLevel,
        comment: Option<Comment>,
    },
    Done,
    /// Scan `pages` pages for the session (the current call when `None`) into a material slot.
    Scan {
        session_id: Option<Uuid>,
        slot_id: Option<Uuid>,
        pages: u32,
    },
    /// The resident mutes / unmutes the microphone during the call.
    Mic {
        muted: bool,
    },
    /// Playback volume of the operator's voice, percent.
    Volume {
        percent: u32,
    },
    /// Signed-in staff record the resident's phone number for the current ticket, after the
    /// resident confirmed `consent_text` on screen. Answered when the server has stored it.
    RecordContact {
        phone: String,
        consent_text: String,
    },
    /// A committee staff member signed in at the kiosk (checked by the server).
    StaffSignedIn(StaffSession),
    StaffSignedOut,
}

/// A command with the channel its answer goes back on.
pub struct UiRequest {
    pub cmd: UiCommand,
    pub reply: oneshot::Sender<Result<(), ActionError>>,
}

/// What the kiosk shows of the signed-in staff member: the display name only (the username is
/// half of a login: it is not in the status).
#[derive(Debug, Clone, Serialize)]
pub struct StaffView {
    pub name: String,
    /// Times the login was renewed while staff were at the kiosk.
    pub renewals: u32,
}

/// The scanner as the kiosk shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanStatus {
    /// `idle`, `scanning`, `fault`, `disabled`.
    pub state: &'static str,
    /// `jammed`, `no_docs`, `cover_open`, `busy`, … when `state` is `fault`.
    pub fault: Option<&'static str>,
    /// The text for the resident (Chinese).
    pub message: Option<String>,
    /// Pages of the current or last scan that are in the spool.
    pub pages_done: u32,
    pub pages_wanted: u32,
}

/// The status the kiosk UI polls and `status_lines` prints (one JSON line per
/// `status_interval_ms`, a second by default).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub connected: bool,
    pub phase: String,
    pub ticket_number: Option<String>,
    pub position: Option<u32>,
    /// Kept for an older server that sends neither `serving` nor `wait`.
    pub estimated_wait_secs: Option<u32>,
    /// Operators serving the ticket's line now: `Some(0)` is 当前无人值守 (no number shown).
    pub serving: Option<u32>,
    /// The wait as a range, when there is a basis for one.
    pub wait: Option<shared::protocol::WaitRange>,
    pub operator_name: Option<String>,
    pub held: bool,
    pub notices: Vec<Notice>,
    pub call: CallSnapshot,
    pub scanner: ScanStatus,
    /// Scanned pages not yet stored by the server (spooled), with upload progress.
    pub uploads: Vec<UploadProgress>,
    pub printer: PrinterStatus,
    /// The operator's open request for a scan during the call.
    pub scan_request: Option<crate::kiosk::ScanRequest>,
    /// The committee staff member signed in at the kiosk.
    pub staff: Option<StaffView>,
    /// The ticket number for which signed-in staff may record the resident's phone number now
    /// (from the ticket until the kiosk is back at welcome; only while staff are signed in).
    pub contact_ticket: Option<String>,
    /// The phone number recorded for that ticket, masked (`139****5678`).
    pub contact_masked: Option<String>,
    /// What calls hold right now (pipelines, peer connections, tasks): back to the idle
    /// baseline after every call.
    pub live: crate::live::LiveCounts,
    /// Seconds after which an untouched screen returns to welcome (`kiosk.screen_idle_secs`);
    /// the page applies it to its own screens.
    pub screen_idle_secs: u64,
}
