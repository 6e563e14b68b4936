//! The terminal's behaviour between its drivers, sans-IO with an explicit `now` (issue #18
//! item 2): the kiosk state machine ([`Kiosk`]), the signed-in staff member ([`StaffSession`]),
//! the screens that reset ([`ScreenTimer`]), the scanner as the resident sees it ([`ScanDesk`]),
//! the notices, and what the kiosk page's commands, the server's messages, the devices' reports
//! and the clock do to them. [`Terminal::handle`] and [`Terminal::ui`] return [`Action`]s: what
//! the drivers in `app.rs` must do (send on the signaling connection, start or stop the call,
//! start a scan task, trade a staff refresh token, answer the page…). Nothing here awaits,
//! spawns, opens a file or a socket.
//!
//! A scanned page never comes here: the scan task writes it to the spool and wakes the
//! uploader itself; only its count arrives ([`Event::ScanPage`]).

use std::time::{Duration, Instant};

use shared::protocol::{ByeReason, ClientMsg, ServerMsg, SessionView};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::desk::{ScanAsk, ScanDesk, ScanJob};
use crate::kiosk::{ActionError, CallInput, Effect, Kiosk, Notice, Phase};
use crate::print::{PrintProgress, PrintTrigger};
use crate::scan::ScanFault;
use crate::screen::{Reset, ScreenTimer};
use crate::staff::{Renewal, RenewalAnswer, StaffSession, StaffStep};
use crate::upload::UploadEvent;
use crate::view::{ScanStatus, StaffView, Status, UiCommand, UiRequest};

/// Notices kept on screen at most (the oldest goes).
pub const MAX_NOTICES: usize = 5;

/// Where the kiosk page's answer goes.
pub type Reply = oneshot::Sender<Result<(), ActionError>>;

/// What happened, as the drivers saw it.
#[derive(Debug)]
pub enum Event {
    /// The signaling connection is up (`resumed`: the server kept our state).
    Connected {
        resumed: bool,
    },
    Server(ServerMsg),
    Disconnected,
    /// Signaling stopped for good (revoked, replaced).
    Stopped,
    /// A scanned page is in the spool (the scan task wrote it and woke the uploader).
    ScanPage,
    ScanFinished,
    ScanFault(ScanFault),
    Upload(UploadEvent),
    Print(PrintProgress),
    /// The server stored the resident's phone number for `ticket` (masked for the screen).
    ContactRecorded {
        ticket: Uuid,
        masked: String,
    },
    /// The answer to the staff renewal sent with refresh token `sent`.
    Renewal {
        sent: String,
        answer: RenewalAnswer,
    },
    /// The status interval elapsed.
    Tick,
}

/// What the drivers must do.
#[derive(Debug)]
pub enum Action {
    /// Send on the signaling connection.
    Send(ClientMsg),
    /// Start the call of this session (closing any other).
    StartCall(Box<SessionView>),
    /// Close the call of this session, if it is the current one.
    StopCall(Uuid),
    /// Hand this to the call of this session, if it is the current one.
    ToCall(Uuid, CallInput),
    /// The server disabled the terminal (logged; the signaling task stops by itself).
    Disabled(ByeReason),
    /// Wake the uploader (connected again: pending uploads resume).
    KickUploads,
    Print(PrintTrigger),
    /// The resident mutes / unmutes the microphone of the call.
    MicMuted(bool),
    /// The operator's voice plays at this volume (percent).
    Volume(u32),
    /// Store the resident's phone number at the server, then answer `reply` (and report
    /// [`Event::ContactRecorded`]).
    RecordContact {
        ticket: Uuid,
        body: shared::cases::KioskContactRequest,
        reply: Reply,
    },
    /// Book an appointment at the server, then answer `reply` and send the booking on `answer`.
    BookAppointment {
        body: shared::cases::BookAppointmentRequest,
        answer: oneshot::Sender<shared::cases::AppointmentView>,
        reply: Reply,
    },
    /// Trade this refresh token for new tokens, then report [`Event::Renewal`].
    RenewStaffLogin {
        refresh_token: String,
    },
    /// End this staff login at the server (its refresh-token family).
    EndStaffLogin(StaffSession),
    /// Start the scan task: its pages go to the spool and the uploader, its progress comes
    /// back as [`Event::ScanPage`], [`Event::ScanFinished`], [`Event::ScanFault`].
    StartScan {
        job: ScanJob,
        slot_id: Option<Uuid>,
    },
    /// Answer the kiosk page.
    Reply(Reply, Result<(), ActionError>),
}

/// The terminal's state.
pub struct Terminal {
    kiosk: Kiosk,
    connected: bool,
    notices: Vec<Notice>,
    staff: Option<StaffSession>,
    staff_idle: Duration,
    /// The phone number recorded at the kiosk for a ticket: (ticket, masked number).
    contact: Option<(Uuid, String)>,
    screens: ScreenTimer,
    scan: ScanDesk,
}

impl Terminal {
    /// `staff_idle`: a staff login ends after this long with nobody at the kiosk;
    /// `screen_idle`: a screen left untouched this long resets.
    pub fn new(scanner_enabled: bool, staff_idle: Duration, screen_idle: Duration, now: Instant) -> Self {
        Self {
            kiosk: Kiosk::default(),
            connected: false,
            notices: Vec::new(),
            staff: None,
            staff_idle,
            contact: None,
            screens: ScreenTimer::new(screen_idle, now),
            scan: ScanDesk::new(scanner_enabled),
        }
    }

    pub fn kiosk(&self) -> &Kiosk {
        &self.kiosk
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    pub fn staff(&self) -> Option<&StaffSession> {
        self.staff.as_ref()
    }

    pub fn scan(&self) -> &ScanStatus {
        self.scan.status()
    }

    /// One line on what the terminal is doing (the watchdog's status text).
    pub fn describe(&self) -> String {
        format!(
            "{}, {}",
            self.kiosk.phase().name(),
            if self.connected { "connected" } else { "signaling disconnected" }
        )
    }

    /// The staff member's token while their login is usable.
    fn staff_token(&self, now: Instant) -> Option<shared::validate::Token> {
        self.staff.as_ref().filter(|s| s.active(now)).map(|s| s.token.clone())
    }

    /// Something happened.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Connected { resumed } => {
                self.connected = true;
                let mut out = vec![Action::KickUploads, Action::Print(PrintTrigger::Sync)];
                let effects = self.kiosk.on_connected(resumed);
                out.extend(self.absorb(effects));
                out
            }
            Event::Server(m) => {
                let mut out = vec![];
                if let ServerMsg::PrintJobChanged { job } = &m {
                    out.push(Action::Print(PrintTrigger::Job(Box::new(job.clone()))));
                }
                let effects = self.kiosk.on_server(m);
                out.extend(self.absorb(effects));
                out
            }
            Event::Disconnected | Event::Stopped => {
                self.connected = false;
                vec![]
            }
            Event::ScanPage => {
                self.scan.page();
                vec![]
            }
            Event::ScanFinished => {
                let n = self.scan.finished();
                self.notice(n);
                vec![]
            }
            Event::ScanFault(f) => {
                let n = self.scan.fault(&f);
                self.notice(n);
                vec![]
            }
            Event::Upload(ev) => {
                if let Some(n) = crate::desk::upload_notice(&ev) {
                    self.notice(n);
                }
                vec![]
            }
            Event::Print(p) => {
                if let Some(n) = crate::desk::print_notice(&p) {
                    self.notice(n);
                }
                vec![]
            }
            Event::ContactRecorded { ticket, masked } => {
                self.contact = Some((ticket, masked));
                vec![]
            }
            Event::Renewal { sent, answer } => {
                match crate::staff::on_renewal(self.staff.as_mut(), &sent, answer, now) {
                    Renewal::Stale | Renewal::Retry => {}
                    Renewal::Renewed => {
                        if let Some(s) = &self.staff {
                            tracing::info!(staff = %s.username, renewals = s.renewals, "staff login renewed");
                        }
                    }
                    Renewal::Ended => {
                        // Refused (revoked, expired, account disabled): the login is over.
                        if let Some(s) = self.staff.take() {
                            tracing::info!(staff = %s.username, "staff login ended by the server");
                        }
                        self.notice(staff_notice("工作人员登录已失效，请重新登录。"));
                    }
                }
                vec![]
            }
            Event::Tick => self.tick(now),
        }
    }

    /// The status interval: the staff login (renew, sign out when idle) and the screens that
    /// reset.
    fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = vec![];
        // Told after the screens' reset below, so a reset in the same tick does not hide it.
        let mut told = vec![];
        if let Some(s) = self.staff.as_mut() {
            // A ticket or call in progress means someone is at the kiosk.
            if !matches!(self.kiosk.phase(), Phase::Idle) {
                s.touch(now);
            }
            match s.step(now, self.staff_idle) {
                StaffStep::Keep => {}
                StaffStep::Renew => {
                    s.renewing();
                    out.push(Action::RenewStaffLogin { refresh_token: s.refresh_token.clone() });
                }
                StaffStep::SignOut => {
                    tracing::info!(staff = %s.username, "staff signed out after the idle limit");
                    if let Some(s) = self.staff.take() {
                        out.push(Action::EndStaffLogin(s));
                    }
                    told.push(staff_notice("工作人员长时间未操作，已自动退出登录。"));
                }
            }
        }
        let reset = self.screens.step(self.kiosk.phase().name(), !self.notices.is_empty(), now);
        if reset == Some(Reset::RatingNotGiven) {
            tracing::info!("rating screen left untouched: not rated, back to welcome");
            self.kiosk.reset_to_idle();
        }
        if reset.is_some() {
            // Nothing of the last resident stays on screen.
            self.notices.clear();
            self.scan.screen_reset();
        }
        for n in told {
            self.notice(n);
        }
        out
    }

    /// A command of the kiosk page. `admit_scan` asks the storage bound whether a scan may
    /// take a new page (it measures the disk: called only when everything else allows it).
    pub fn ui(
        &mut self,
        req: UiRequest,
        now: Instant,
        admit_scan: impl FnOnce() -> Result<(), &'static str>,
    ) -> Vec<Action> {
        let UiRequest { cmd, reply } = req;
        if let Some(s) = self.staff.as_mut() {
            s.touch(now);
        }
        self.screens.touch(now);
        let mut out = vec![];
        let r = match cmd {
            UiCommand::TakeTicket { item_id, priority, resident, recording_consent, appointment_id } => {
                let staff_token = self.staff_token(now);
                // Only signed-in staff enter a resident's details (least privilege).
                let resident = if staff_token.is_some() { resident } else { None };
                let r = match appointment_id {
                    Some(a) => self.kiosk.check_in(item_id, a, staff_token, recording_consent),
                    None => {
                        self.kiosk.take_ticket(item_id, priority, resident, staff_token, recording_consent)
                    }
                };
                // A new resident starts with a clean screen: no notices of the last one.
                if r.is_ok() {
                    self.notices.clear();
                }
                r
            }
            UiCommand::Mic { muted } => {
                if self.kiosk.session_id().is_some() {
                    out.push(Action::MicMuted(muted));
                    Ok(vec![])
                } else {
                    Err(ActionError::WrongPhase(self.kiosk.phase().name()))
                }
            }
            UiCommand::Volume { percent } => {
                out.push(Action::Volume(percent));
                Ok(vec![])
            }
            UiCommand::RecordContact { phone, consent_text } => {
                match (self.staff_token(now), self.kiosk.resident_ticket()) {
                    (None, _) => Err(ActionError::Refused("请工作人员先登录".into())),
                    (_, None) => Err(ActionError::WrongPhase(self.kiosk.phase().name())),
                    (Some(staff_token), Some((ticket, _))) => {
                        let body = shared::cases::KioskContactRequest {
                            phone,
                            consent_text,
                            consent: true,
                            staff_token,
                        };
                        // Answered by the driver once the server has stored it.
                        return vec![Action::RecordContact { ticket, body, reply }];
                    }
                }
            }
            UiCommand::BookAppointment { item_id, slot_start, name, phone, consent_text, answer } => {
                match self.staff_token(now) {
                    None => Err(ActionError::Refused("预约须由社区工作人员登录后办理".into())),
                    Some(staff_token) => {
                        let body = shared::cases::BookAppointmentRequest {
                            item_id,
                            slot_start,
                            name,
                            phone,
                            consent_text,
                            consent: true,
                            staff_token,
                        };
                        // Answered by the driver once the server has stored it.
                        return vec![Action::BookAppointment { body, answer, reply }];
                    }
                }
            }
            UiCommand::StaffSignedIn(s) => {
                tracing::info!(staff = %s.username, "staff signed in at the kiosk");
                self.staff = Some(s);
                Ok(vec![])
            }
            UiCommand::StaffSignedOut => {
                if let Some(s) = self.staff.take() {
                    tracing::info!(staff = %s.username, "staff signed out");
                    out.push(Action::EndStaffLogin(s));
                }
                Ok(vec![])
            }
            UiCommand::Cancel => self.kiosk.cancel(),
            UiCommand::Rate { level, comment } => self.kiosk.rate(level, comment),
            UiCommand::Done => {
                self.kiosk.reset_to_idle();
                Ok(vec![])
            }
            UiCommand::Scan { session_id, slot_id, pages } => {
                // Without a slot of its own the scan answers the operator's request.
                let slot_id = slot_id.or_else(|| self.kiosk.scan_request().and_then(|r| r.slot_id));
                let ask = ScanAsk {
                    current_session: self.kiosk.session_id(),
                    phase: self.kiosk.phase().name(),
                    asked_session: session_id,
                    pages,
                };
                match self.scan.start(ask, admit_scan) {
                    Ok((job, started)) => {
                        self.kiosk.scan_started();
                        out.push(Action::StartScan { job, slot_id });
                        Ok(vec![Effect::Notice(started)])
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(effects) => {
                out.extend(self.absorb(effects));
                out.push(Action::Reply(reply, Ok(())));
            }
            Err(e) => out.push(Action::Reply(reply, Err(e))),
        }
        out
    }

    /// The kiosk's effects: notices stay here, the rest goes to the drivers.
    fn absorb(&mut self, effects: Vec<Effect>) -> Vec<Action> {
        let mut out = vec![];
        for e in effects {
            match e {
                Effect::Send(m) => out.push(Action::Send(m)),
                Effect::StartCall(s) => out.push(Action::StartCall(s)),
                Effect::StopCall(id) => out.push(Action::StopCall(id)),
                Effect::ToCall(id, input) => out.push(Action::ToCall(id, input)),
                Effect::Notice(n) => self.notice(n),
                Effect::Shutdown(reason) => out.push(Action::Disabled(reason)),
            }
        }
        out
    }

    fn notice(&mut self, n: Notice) {
        tracing::info!(kind = n.kind, text = %n.text, "notice");
        self.notices.push(n);
        if self.notices.len() > MAX_NOTICES {
            self.notices.remove(0);
        }
    }

    /// What the kiosk shows now; `call`, `devices` are the drivers' live figures.
    pub fn status(&self, call: crate::call::CallSnapshot, devices: Devices, now: Instant) -> Status {
        let staff_here = self.staff.as_ref().filter(|s| s.active(now));
        let ticket = self.kiosk.resident_ticket().filter(|_| staff_here.is_some());
        let mut s = Status {
            connected: self.connected,
            phase: self.kiosk.phase().name().to_owned(),
            notices: self.notices.clone(),
            call,
            scanner: self.scan.status().clone(),
            uploads: devices.uploads,
            printer: devices.printer,
            scan_request: self.kiosk.scan_request().cloned(),
            live: devices.live,
            screen_idle_secs: self.screens.bound().as_secs(),
            staff: staff_here.map(|s| StaffView { name: s.name.clone(), renewals: s.renewals }),
            contact_ticket: ticket.map(|(_, number)| number.to_owned()),
            contact_masked: ticket
                .and_then(|(id, _)| self.contact.as_ref().filter(|(t, _)| *t == id))
                .map(|(_, masked)| masked.clone()),
            ..Default::default()
        };
        match self.kiosk.phase() {
            Phase::Waiting { ticket, position, estimated_wait_secs, serving, wait } => {
                s.ticket_number = Some(ticket.number.clone());
                s.position = *position;
                s.estimated_wait_secs = *estimated_wait_secs;
                s.serving = *serving;
                s.wait = *wait;
            }
            Phase::InCall { ticket, session, held, .. } => {
                s.ticket_number = Some(ticket.number.clone());
                s.operator_name = Some(session.operator_name.clone());
                s.held = *held;
            }
            Phase::Transferring { ticket, .. } => s.ticket_number = Some(ticket.number.clone()),
            _ => {}
        }
        s
    }
}

/// The devices' figures for the status, read by the driver.
#[derive(Debug, Default)]
pub struct Devices {
    pub uploads: Vec<crate::upload::UploadProgress>,
    pub printer: crate::print::PrinterStatus,
    pub live: crate::live::LiveCounts,
}

fn staff_notice(text: &str) -> Notice {
    Notice { kind: "staff", text: text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::protocol::{Party, Priority, ResidentDetails, TicketView};

    const STAFF_IDLE: Duration = Duration::from_secs(600);
    const SCREEN_IDLE: Duration = Duration::from_secs(90);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn terminal(now: Instant) -> Terminal {
        Terminal::new(true, STAFF_IDLE, SCREEN_IDLE, now)
    }

    /// Sends `cmd` as the kiosk page does; returns the actions and the page's answer.
    fn ui(
        t: &mut Terminal,
        cmd: UiCommand,
        now: Instant,
        admit: impl FnOnce() -> Result<(), &'static str>,
    ) -> (Vec<Action>, Result<(), ActionError>) {
        let (reply, mut answer) = oneshot::channel();
        let mut actions = t.ui(UiRequest { cmd, reply }, now, admit);
        // The driver answers the page: do the same here.
        let mut kept = vec![];
        for a in actions.drain(..) {
            match a {
                Action::Reply(r, v) => {
                    let _ = r.send(v);
                }
                other => kept.push(other),
            }
        }
        (kept, answer.try_recv().expect("answered"))
    }

    fn allowed() -> Result<(), &'static str> {
        Ok(())
    }

    fn staff(now: Instant, expires_in: u64) -> StaffSession {
        let token = shared::validate::Token::try_from("t1".to_owned()).expect("token");
        StaffSession::new(Uuid::nil(), "staff1".into(), "周社工".into(), token, "r1".into(), expires_in, now)
    }

    fn ticket() -> TicketView {
        TicketView {
            ticket_id: Uuid::from_u128(1),
            number: "J-0001".into(),
            item_id: Uuid::from_u128(100),
            item_name: "城乡居民基本养老保险待遇申领".into(),
            line_id: Uuid::from_u128(200),
            line_name: "社保业务".into(),
            point_id: Uuid::from_u128(300),
            point_name: "华山居委会".into(),
            priority: Priority::Normal,
            resident_name_masked: None,
            id_number_masked: None,
            waited_secs: 0,
            assisted_by: None,
        }
    }

    /// A ticket taken at the kiosk, issued, and its call started.
    fn in_call(t: &mut Terminal, now: Instant) -> Uuid {
        let take = UiCommand::TakeTicket {
            item_id: ticket().item_id,
            priority: Priority::Normal,
            resident: None,
            recording_consent: false,
            appointment_id: None,
        };
        let (out, r) = ui(t, take, now, allowed);
        r.expect("ticket taken");
        let [Action::Send(ClientMsg::TakeTicket { request_id, .. })] = &out[..] else { panic!("{out:?}") };
        let request_id = *request_id;
        t.handle(Event::Server(ServerMsg::TicketIssued { ticket: ticket(), request_id }), now);
        let session = SessionView {
            session_id: Uuid::from_u128(9),
            ticket: ticket(),
            operator_id: Uuid::from_u128(400),
            operator_name: "陈受理员".into(),
            your_part: Party::Terminal,
            polite: true,
            ice_servers: vec![],
            recording: false,
        };
        let out = t.handle(Event::Server(ServerMsg::SessionStarted { session }), now);
        assert!(out.iter().any(|a| matches!(a, Action::StartCall(s) if s.session_id == Uuid::from_u128(9))));
        Uuid::from_u128(9)
    }

    #[test]
    fn connecting_wakes_the_uploads_and_the_printer() {
        let now = Instant::now();
        let mut t = terminal(now);
        assert!(!t.connected());
        let out = t.handle(Event::Connected { resumed: false }, now);
        assert!(t.connected());
        assert!(matches!(out[..2], [Action::KickUploads, Action::Print(PrintTrigger::Sync)]), "{out:?}");
        t.handle(Event::Disconnected, now);
        assert!(!t.connected());
        assert_eq!(t.describe(), "idle, signaling disconnected");
    }

    #[test]
    fn resident_details_go_with_a_ticket_only_when_staff_are_signed_in() {
        let now = Instant::now();
        let details = || {
            Some(ResidentDetails {
                name: Some("张三".to_owned().try_into().expect("name")), id_number: None
            })
        };
        let take = |resident| UiCommand::TakeTicket {
            item_id: Uuid::from_u128(100),
            priority: Priority::Normal,
            resident,
            recording_consent: false,
            appointment_id: None,
        };
        // Nobody signed in: the details are dropped.
        let mut t = terminal(now);
        let (out, r) = ui(&mut t, take(details()), now, allowed);
        r.expect("taken");
        let [Action::Send(ClientMsg::TakeTicket { resident, staff_token, .. })] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((resident, staff_token), (&None, &None));
        // Staff signed in: the details and the staff token go.
        let mut t = terminal(now);
        ui(&mut t, UiCommand::StaffSignedIn(staff(now, 3600)), now, allowed).1.expect("signed in");
        let (out, r) = ui(&mut t, take(details()), now + secs(1), allowed);
        r.expect("taken");
        let [Action::Send(ClientMsg::TakeTicket { resident, staff_token, .. })] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(resident, &details());
        assert!(staff_token.is_some());
    }

    #[test]
    fn a_staff_login_is_renewed_while_used_and_ends_when_left_alone() {
        let t0 = Instant::now();
        let mut t = terminal(t0);
        ui(&mut t, UiCommand::StaffSignedIn(staff(t0, 1200)), t0, allowed).1.expect("signed in");
        assert!(t.handle(Event::Tick, t0 + secs(60)).is_empty());
        // Halfway through the token's life, while used: renewed once (not again while it runs).
        ui(&mut t, UiCommand::Volume { percent: 80 }, t0 + secs(580), allowed).1.expect("volume");
        let out = t.handle(Event::Tick, t0 + secs(590));
        let [Action::RenewStaffLogin { refresh_token }] = &out[..] else { panic!("{out:?}") };
        assert_eq!(refresh_token, "r1");
        assert!(t.handle(Event::Tick, t0 + secs(591)).is_empty());
        let answer =
            RenewalAnswer::Tokens { access_token: "t2".into(), refresh_token: "r2".into(), expires_in: 1200 };
        t.handle(Event::Renewal { sent: "r1".into(), answer }, t0 + secs(592));
        assert_eq!(t.staff().map(|s| s.renewals), Some(1));
        // An answer for the old token is stale.
        t.handle(Event::Renewal { sent: "r1".into(), answer: RenewalAnswer::Refused }, t0 + secs(593));
        assert!(t.staff().is_some());
        // Nobody at the kiosk for the idle limit: signed out, at the server too, and told.
        let out = t.handle(Event::Tick, t0 + secs(580) + STAFF_IDLE);
        assert!(matches!(&out[..], [Action::EndStaffLogin(s)] if s.username == "staff1"), "{out:?}");
        assert!(t.staff().is_none());
        assert_eq!(t.notices().len(), 1);
        assert_eq!(t.notices()[0].kind, "staff");
    }

    #[test]
    fn a_refused_renewal_ends_the_login() {
        let t0 = Instant::now();
        let mut t = terminal(t0);
        ui(&mut t, UiCommand::StaffSignedIn(staff(t0, 1200)), t0, allowed).1.expect("signed in");
        let out = t.handle(Event::Tick, t0 + secs(590));
        assert!(matches!(&out[..], [Action::RenewStaffLogin { .. }]));
        t.handle(Event::Renewal { sent: "r1".into(), answer: RenewalAnswer::Refused }, t0 + secs(591));
        assert!(t.staff().is_none());
        assert_eq!(t.notices()[0].text, "工作人员登录已失效，请重新登录。");
        let (out, r) = ui(
            &mut t,
            UiCommand::RecordContact { phone: "13912345678".into(), consent_text: "同意".into() },
            t0 + secs(592),
            allowed,
        );
        assert!(out.is_empty());
        assert_eq!(r, Err(ActionError::Refused("请工作人员先登录".into())));
    }

    #[test]
    fn the_microphone_and_a_scan_need_a_call() {
        let now = Instant::now();
        let mut t = terminal(now);
        let (out, r) = ui(&mut t, UiCommand::Mic { muted: true }, now, allowed);
        assert!(out.is_empty());
        assert_eq!(r, Err(ActionError::WrongPhase("idle")));
        // The disk is not even measured when the scan cannot start anyway.
        let scan = UiCommand::Scan { session_id: None, slot_id: None, pages: 2 };
        let (out, r) = ui(&mut t, scan, now, || panic!("storage asked"));
        assert!(out.is_empty());
        assert_eq!(r, Err(ActionError::WrongPhase("idle")));

        let session = in_call(&mut t, now);
        let (out, r) = ui(&mut t, UiCommand::Mic { muted: true }, now, allowed);
        r.expect("in a call");
        assert!(matches!(out[..], [Action::MicMuted(true)]));
        // At the storage bound the scan is refused with the storage's text.
        let scan = || UiCommand::Scan { session_id: Some(session), slot_id: None, pages: 99 };
        let (out, r) = ui(&mut t, scan(), now, || Err("存储空间不足"));
        assert!(out.is_empty());
        assert_eq!(r, Err(ActionError::Refused("存储空间不足".into())));
        // Allowed: a scan task for the call's session, pages bounded.
        let (out, r) = ui(&mut t, scan(), now, allowed);
        r.expect("scan starts");
        let [Action::StartScan { job, slot_id: None }] = &out[..] else { panic!("{out:?}") };
        assert_eq!((job.session_id, job.pages), (session, crate::desk::MAX_PAGES));
        assert_eq!(t.scan().state, "scanning");
        // Pages come back as counts only; the end is told to the resident.
        t.handle(Event::ScanPage, now);
        t.handle(Event::ScanPage, now);
        assert_eq!(t.scan().pages_done, 2);
        t.handle(Event::ScanFinished, now);
        assert_eq!(t.scan().state, "idle");
        assert!(t.notices().iter().any(|n| n.text.contains("扫描完成（2 页）")));
    }

    #[test]
    fn server_messages_reach_the_call_and_the_printer() {
        let now = Instant::now();
        let mut t = terminal(now);
        let session = in_call(&mut t, now);
        let out = t.handle(Event::Server(ServerMsg::SessionHeld { session_id: session }), now);
        assert!(
            matches!(&out[..], [Action::ToCall(id, crate::kiosk::CallInput::Hold(true))] if *id == session),
            "{out:?}"
        );
        let s = t.status(Default::default(), Devices::default(), now);
        assert_eq!(s.phase, "in_call");
        assert!(s.held);
        assert_eq!(s.operator_name.as_deref(), Some("陈受理员"));
    }

    #[test]
    fn an_untouched_welcome_screen_forgets_the_last_resident() {
        let t0 = Instant::now();
        let mut t = terminal(t0);
        t.handle(Event::ScanFault(ScanFault::DiskFull), t0);
        assert_eq!(t.notices().len(), 1);
        assert!(t.handle(Event::Tick, t0 + secs(10)).is_empty());
        assert_eq!(t.notices().len(), 1);
        t.handle(Event::Tick, t0 + SCREEN_IDLE + secs(1));
        assert!(t.notices().is_empty());
        // No more than MAX_NOTICES are kept.
        for _ in 0..8 {
            t.handle(Event::ScanFault(ScanFault::DiskFull), t0);
        }
        assert_eq!(t.notices().len(), MAX_NOTICES);
    }
}
