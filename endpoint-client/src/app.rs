//! `endpoint-client run`: wires the signaling connection, the kiosk state machine, the call and
//! the local kiosk UI together. One loop owns the [`Kiosk`] and executes its effects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shared::protocol::ClientMsg;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::auth::{DeviceAuth, read_credential};
use crate::call::{self, CallCmd, CallHandle, CallSettings, CallStats};
use crate::config::Config;
use crate::kiosk::{ActionError, Effect, Kiosk, Notice};
use crate::print::{PrintProgress, PrintTrigger, Printer};
use crate::rest::{RestError, ServerApi};
use crate::scan::ScanFault;
use crate::screen::{Reset, ScreenTimer};
use crate::signaling::{self, ConnEvent};
use crate::spool::Spool;
pub use crate::staff::StaffSession;
use crate::staff::StaffStep;
use crate::upload::{UploadEvent, Uploader};
pub use crate::view::{ScanStatus, StaffView, Status, UiCommand, UiRequest};

/// Devices whose state goes into the status besides the kiosk's.
struct Devices<'a> {
    scan: &'a ScanStatus,
    uploader: &'a Uploader,
    printer: Option<&'a Printer>,
}

#[allow(clippy::too_many_arguments)]
fn status_of(
    kiosk: &Kiosk,
    connected: bool,
    notices: &[Notice],
    stats: &CallStats,
    dev: &Devices,
    staff: Option<&StaffSession>,
    contact: Option<&(Uuid, String)>,
    screen_idle: Duration,
) -> Status {
    use crate::kiosk::Phase;
    let staff_here = staff.filter(|s| s.active(std::time::Instant::now()));
    let ticket = kiosk.resident_ticket().filter(|_| staff_here.is_some());
    let mut s = Status {
        connected,
        phase: kiosk.phase().name().to_owned(),
        notices: notices.to_vec(),
        call: stats.snapshot(),
        scanner: dev.scan.clone(),
        uploads: dev.uploader.progress(),
        printer: dev.printer.map(Printer::status).unwrap_or_default(),
        scan_request: kiosk.scan_request().cloned(),
        live: crate::live::LiveCounts::now(),
        screen_idle_secs: screen_idle.as_secs(),
        staff: staff_here.map(|s| StaffView { name: s.name.clone(), renewals: s.renewals }),
        contact_ticket: ticket.map(|(_, number)| number.to_owned()),
        contact_masked: ticket
            .and_then(|(id, _)| contact.filter(|(t, _)| *t == id))
            .map(|(_, masked)| masked.clone()),
        ..Default::default()
    };
    match kiosk.phase() {
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

/// Runs the service until signaling stops for good (revoked, replaced) or Ctrl-C / SIGTERM.
pub async fn run(cfg: Config, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    crate::media::init()?;
    let credential = read_credential(&cfg.credential_file)?;
    let auth = Arc::new(DeviceAuth::new(cfg.http_base(), credential)?);
    let refresher = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.refresh_loop().await })
    };
    let api = ServerApi::new(cfg.http_base(), auth.clone())?;
    let state_dir = cfg.state_dir();
    let spool = Spool::open(state_dir.join("spool"))?;
    let (up_tx, mut up_rx) = mpsc::channel::<UploadEvent>(64);
    let uploader = Uploader::spawn(spool.clone(), api.clone(), up_tx);
    let (pr_tx, mut pr_rx) = mpsc::channel::<PrintProgress>(64);
    let printer = if cfg.printer.enabled {
        Some(Printer::spawn(cfg.printer.clone(), &state_dir, api.clone(), pr_tx)?)
    } else {
        None
    };
    let (scan_tx, mut scan_rx) = mpsc::channel::<ScanReport>(16);
    let mut scan = crate::desk::ScanDesk::new(cfg.scanner.enabled);
    let (ws_tx, ws_rx) = mpsc::channel::<ClientMsg>(256);
    let (ev_tx, mut ev_rx) = mpsc::channel::<ConnEvent>(256);
    let sig_task = tokio::spawn(signaling::run(cfg.ws_url()?, auth.clone(), ws_rx, ev_tx));

    let (ui_tx, mut ui_rx) = mpsc::channel::<UiRequest>(16);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let health = tokio::spawn(crate::health::run(cfg.clone(), api.clone(), status_rx.clone()));
    let ui_addr =
        crate::ui::serve(cfg.kiosk.listen, ui_tx, status_rx, auth.clone(), cfg.http_base().to_owned())
            .await?;
    print_event(&serde_json::json!({ "event": "ready", "kiosk": ui_addr.to_string() }));
    let mut watchdog = crate::watchdog::Watchdog::from_env();
    crate::watchdog::ready(&format!("kiosk page on http://{ui_addr}/"));
    tracing::info!(%ui_addr, "kiosk UI listening");

    // A call the resident agreed to record is written into the spool and, once closed, taken
    // into it and uploaded like a scan (durable, resumable).
    let settings = CallSettings {
        webrtc: cfg.webrtc.clone(),
        media: cfg.media.clone(),
        display: cfg.display.clone(),
        recordings: Some((spool.clone(), uploader.clone())),
    };
    let status_lines = cfg.status_lines.unwrap_or(cfg.display.mode == crate::config::DisplayMode::Headless);
    let stats = Arc::new(CallStats::default());
    let mut kiosk = Kiosk::default();
    let mut connected = false;
    let mut notices: Vec<Notice> = Vec::new();
    let mut current: Option<CallHandle> = None;
    // Reports the current call's setup time once its first operator frame is decoded.
    let mut setup_probe: Option<tokio::task::JoinHandle<()>> = None;
    let mut staff: Option<StaffSession> = None;
    // The phone number recorded at the kiosk for a ticket: (ticket, masked number).
    let mut contact: Option<(Uuid, String)> = None;
    let (contact_tx, mut contact_rx) = mpsc::channel::<(Uuid, String)>(4);
    let staff_idle = Duration::from_secs(cfg.kiosk.staff_idle_minutes.max(1) * 60);
    let (staff_tx, mut staff_rx) =
        mpsc::channel::<(String, Result<shared::api::TokenResponse, RestError>)>(4);
    let mut screens =
        ScreenTimer::new(Duration::from_secs(cfg.kiosk.screen_idle_secs), std::time::Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.status_interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    // Why the loop ended, when not asked to (the process then exits with an error, logged).
    let mut failed: Option<&str> = None;

    loop {
        let effects = tokio::select! {
            _ = &mut shutdown => break,
            ev = ev_rx.recv() => match ev {
                None => {
                    failed = Some("the signaling task ended");
                    break;
                }
                Some(ConnEvent::Connected { resumed }) => {
                    connected = true;
                    uploader.kick();
                    if let Some(p) = &printer { p.trigger(PrintTrigger::Sync); }
                    kiosk.on_connected(resumed)
                }
                Some(ConnEvent::Message(m)) => {
                    if let (shared::protocol::ServerMsg::PrintJobChanged { job }, Some(p)) = (&*m, &printer) {
                        p.trigger(PrintTrigger::Job(Box::new(job.clone())));
                    }
                    kiosk.on_server(*m)
                }
                Some(ConnEvent::Disconnected { .. }) => { connected = false; vec![] }
                Some(ConnEvent::Stopped { reason }) => {
                    tracing::error!(%reason, "signaling stopped for good");
                    connected = false;
                    vec![]
                }
            },
            req = ui_rx.recv() => match req {
                None => vec![],
                Some(UiRequest { cmd, reply }) => {
                    if let Some(s) = staff.as_mut() {
                        s.touch(std::time::Instant::now());
                    }
                    screens.touch(std::time::Instant::now());
                    let r = match cmd {
                        UiCommand::TakeTicket { item_id, priority, resident, recording_consent, appointment_id } => {
                            let now = std::time::Instant::now();
                            let staff_token = staff.as_ref().filter(|s| s.active(now)).map(|s| s.token.clone());
                            // Only signed-in staff enter a resident's details (least privilege).
                            let resident = if staff_token.is_some() { resident } else { None };
                            let r = match appointment_id {
                                Some(a) => kiosk.check_in(item_id, a, staff_token, recording_consent),
                                None => kiosk.take_ticket(item_id, priority, resident, staff_token, recording_consent),
                            };
                            // A new resident starts with a clean screen: no notices of the last one.
                            if r.is_ok() {
                                notices.clear();
                            }
                            r
                        }
                        UiCommand::Mic { muted } => {
                            if kiosk.session_id().is_some() {
                                stats.set_mic_muted(muted);
                                Ok(vec![])
                            } else {
                                Err(ActionError::WrongPhase(kiosk.phase().name()))
                            }
                        }
                        UiCommand::Volume { percent } => {
                            let v = stats.set_volume(percent);
                            tracing::info!(volume = v, "playback volume");
                            Ok(vec![])
                        }
                        UiCommand::RecordContact { phone, consent_text } => {
                            let now = std::time::Instant::now();
                            let token = staff.as_ref().filter(|s| s.active(now)).map(|s| s.token.clone());
                            match (token, kiosk.resident_ticket()) {
                                (None, _) => Err(ActionError::Refused("请工作人员先登录".into())),
                                (_, None) => Err(ActionError::WrongPhase(kiosk.phase().name())),
                                (Some(staff_token), Some((ticket, _))) => {
                                    let body = shared::cases::KioskContactRequest { phone, consent_text, consent: true, staff_token };
                                    let (api, tx) = (api.clone(), contact_tx.clone());
                                    // Answered from the task once the server has stored it.
                                    tokio::spawn(async move {
                                        let r = match api.record_contact(ticket, &body).await {
                                            Ok(v) => {
                                                tracing::info!(ticket = %ticket, "resident's phone number recorded with consent");
                                                let _ = tx.send((ticket, v.phone_masked)).await;
                                                Ok(())
                                            }
                                            Err(e) => {
                                                tracing::warn!(error = %e, "phone number not recorded");
                                                Err(ActionError::Refused(e.server_message().unwrap_or_else(|| "无法连接服务器，请稍后再试".into())))
                                            }
                                        };
                                        let _ = reply.send(r);
                                    });
                                    continue;
                                }
                            }
                        }
                        UiCommand::BookAppointment { item_id, slot_start, name, phone, consent_text, answer } => {
                            let now = std::time::Instant::now();
                            match staff.as_ref().filter(|s| s.active(now)).map(|s| s.token.clone()) {
                                None => Err(ActionError::Refused("预约须由社区工作人员登录后办理".into())),
                                Some(staff_token) => {
                                    let body = shared::cases::BookAppointmentRequest {
                                        item_id, slot_start, name, phone, consent_text, consent: true, staff_token,
                                    };
                                    let api = api.clone();
                                    // Answered from the task once the server has stored it.
                                    tokio::spawn(async move {
                                        let r = match api.book_appointment(&body).await {
                                            Ok(v) => {
                                                tracing::info!(appointment = %v.id, "appointment booked with consent");
                                                let _ = answer.send(v);
                                                Ok(())
                                            }
                                            Err(e) => {
                                                tracing::warn!(error = %e, "appointment not booked");
                                                Err(ActionError::Refused(e.server_message().unwrap_or_else(|| "无法连接服务器，请稍后再试".into())))
                                            }
                                        };
                                        let _ = reply.send(r);
                                    });
                                    continue;
                                }
                            }
                        }
                        UiCommand::StaffSignedIn(s) => {
                            tracing::info!(staff = %s.username, "staff signed in at the kiosk");
                            staff = Some(s);
                            Ok(vec![])
                        }
                        UiCommand::StaffSignedOut => {
                            if let Some(s) = staff.take() {
                                tracing::info!(staff = %s.username, "staff signed out");
                                end_staff_login(&api, s);
                            }
                            Ok(vec![])
                        }
                        UiCommand::Cancel => kiosk.cancel(),
                        UiCommand::Rate { level, comment } => kiosk.rate(level, comment),
                        UiCommand::Done => { kiosk.reset_to_idle(); Ok(vec![]) }
                        UiCommand::Scan { session_id, slot_id, pages } => {
                            // Without a slot of its own the scan answers the operator's request.
                            let slot_id = slot_id.or_else(|| kiosk.scan_request().and_then(|r| r.slot_id));
                            let r = start_scan(&cfg, (&spool, &uploader), &kiosk, &mut scan, &scan_tx, (session_id, slot_id, pages));
                            if r.is_ok() { kiosk.scan_started(); }
                            r
                        }
                    };
                    match r {
                        Ok(effects) => { let _ = reply.send(Ok(())); effects }
                        Err(e) => { let _ = reply.send(Err(e)); vec![] }
                    }
                }
            },
            Some(r) = scan_rx.recv() => match r {
                ScanReport::Page => { scan.page(); vec![] }
                ScanReport::Finished => vec![Effect::Notice(scan.finished())],
                ScanReport::Fault(f) => vec![Effect::Notice(scan.fault(&f))],
            },
            Some(ev) = up_rx.recv() => crate::desk::upload_notice(&ev).map(Effect::Notice).into_iter().collect(),
            Some(p) = pr_rx.recv() => crate::desk::print_notice(&p).map(Effect::Notice).into_iter().collect(),
            Some(c) = contact_rx.recv() => { contact = Some(c); vec![] }
            Some((old, r)) = staff_rx.recv() => {
                use crate::staff::{Renewal, RenewalAnswer};
                let answer = match r {
                    Ok(t) => RenewalAnswer::Tokens { access_token: t.access_token, refresh_token: t.refresh_token, expires_in: t.expires_in },
                    Err(e) if e.status().is_some() => RenewalAnswer::Refused,
                    Err(e) => {
                        tracing::warn!(error = %e, "staff login renewal failed; retrying");
                        RenewalAnswer::Unreachable
                    }
                };
                match crate::staff::on_renewal(staff.as_mut(), &old, answer, std::time::Instant::now()) {
                    Renewal::Stale | Renewal::Retry => vec![],
                    Renewal::Renewed => {
                        if let Some(s) = &staff {
                            tracing::info!(staff = %s.username, renewals = s.renewals, "staff login renewed");
                        }
                        vec![]
                    }
                    Renewal::Ended => {
                        // Refused (revoked, expired, account disabled): the login is over.
                        if let Some(s) = staff.take() {
                            tracing::info!(staff = %s.username, "staff login ended by the server");
                        }
                        vec![notice("staff", "工作人员登录已失效，请重新登录。")]
                    }
                }
            }
            _ = tick.tick() => {
                let now = std::time::Instant::now();
                let mut signed_out = vec![];
                if let Some(s) = staff.as_mut() {
                    // A ticket or call in progress means someone is at the kiosk.
                    if !matches!(kiosk.phase(), crate::kiosk::Phase::Idle) {
                        s.touch(now);
                    }
                    match s.step(now, staff_idle) {
                        StaffStep::Keep => {}
                        StaffStep::Renew => {
                            s.renewing();
                            let (api, old, tx) = (api.clone(), s.refresh_token.clone(), staff_tx.clone());
                            tokio::spawn(async move {
                                let r = api.renew_login(&old).await;
                                let _ = tx.send((old, r)).await;
                            });
                        }
                        StaffStep::SignOut => {
                            tracing::info!(staff = %s.username, "staff signed out after the idle limit");
                            if let Some(s) = staff.take() {
                                end_staff_login(&api, s);
                            }
                            signed_out.push(notice("staff", "工作人员长时间未操作，已自动退出登录。"));
                        }
                    }
                }
                if watchdog.due(now) {
                    // From the loop itself: a loop that hangs stops the pings.
                    crate::watchdog::alive(&format!(
                        "{}, {}",
                        kiosk.phase().name(),
                        if connected { "connected" } else { "signaling disconnected" }
                    ));
                }
                let reset = screens.step(kiosk.phase().name(), !notices.is_empty(), now);
                if reset == Some(Reset::RatingNotGiven) {
                    tracing::info!("rating screen left untouched: not rated, back to welcome");
                    kiosk.reset_to_idle();
                }
                if reset.is_some() {
                    // Nothing of the last resident stays on screen.
                    notices.clear();
                    scan.screen_reset();
                }
                let dev = Devices { scan: scan.status(), uploader: &uploader, printer: printer.as_ref() };
                let s = status_of(&kiosk, connected, &notices, &stats, &dev, staff.as_ref(), contact.as_ref(), screens.bound());
                if let Some(path) = &cfg.status_file {
                    write_status_file(path, &s);
                }
                if status_lines {
                    print_event(&serde_json::json!({ "event": "status", "status": s }));
                }
                signed_out
            }
        };
        for effect in effects {
            match effect {
                Effect::Send(msg) => {
                    let _ = ws_tx.send(msg).await;
                }
                Effect::StartCall(session) => {
                    if let Some(old) = current.take() {
                        let _ = old.tx.send(CallCmd::Close);
                    }
                    tracing::info!(session = %session.session_id, operator = %session.operator_name, "call starting");
                    if let Some(p) = setup_probe.take() {
                        p.abort();
                    }
                    let probe = report_call_setup(session.session_id, stats.clone(), ws_tx.clone());
                    setup_probe = Some(tokio::spawn(probe));
                    current = Some(call::start(*session, settings.clone(), ws_tx.clone(), stats.clone()));
                }
                Effect::StopCall(id) => {
                    if current.as_ref().is_some_and(|c| c.session_id == id)
                        && let Some(c) = current.take()
                    {
                        let _ = c.tx.send(CallCmd::Close);
                        if let Some(p) = setup_probe.take() {
                            p.abort();
                        }
                    }
                }
                Effect::ToCall(id, input) => {
                    if let Some(c) = current.as_ref().filter(|c| c.session_id == id) {
                        let _ = c.tx.send(CallCmd::Input(input));
                    }
                }
                Effect::Notice(n) => {
                    tracing::info!(kind = n.kind, text = %n.text, "notice");
                    notices.push(n);
                    if notices.len() > 5 {
                        notices.remove(0);
                    }
                }
                Effect::Shutdown(reason) => tracing::error!(?reason, "terminal disabled by the server"),
            }
        }
        let dev = Devices { scan: scan.status(), uploader: &uploader, printer: printer.as_ref() };
        let _ = status_tx.send(status_of(
            &kiosk,
            connected,
            &notices,
            &stats,
            &dev,
            staff.as_ref(),
            contact.as_ref(),
            screens.bound(),
        ));
    }
    crate::watchdog::stopping();
    if let Some(c) = current.take() {
        let _ = c.tx.send(CallCmd::Close);
    }
    sig_task.abort();
    refresher.abort();
    health.abort();
    match failed {
        Some(why) => Err(anyhow::anyhow!("terminal stopped: {why}")),
        None => Ok(()),
    }
}

/// Ends a staff member's login at the server (their refresh-token family), in the background.
fn end_staff_login(api: &ServerApi, s: StaffSession) {
    let api = api.clone();
    tokio::spawn(async move { api.logout(&s.refresh_token).await });
}

/// Reports the call's setup time once (`call_setup`, docs/protocol.md §5.12): from
/// `session_started` to the first decoded frame of the operator's camera. The counters are
/// atomics, looked at every 10 ms; gives up after the protocol's bound.
async fn report_call_setup(session: Uuid, stats: Arc<CallStats>, ws: mpsc::Sender<ClientMsg>) {
    use shared::protocol::MAX_CALL_SETUP_MS;
    let start = std::time::Instant::now();
    let bound = Duration::from_millis(u64::from(MAX_CALL_SETUP_MS));
    let mut every = tokio::time::interval(Duration::from_millis(10));
    while start.elapsed() < bound {
        every.tick().await;
        let s = stats.snapshot();
        let shown = s
            .remote
            .iter()
            .any(|r| r.kind == crate::media::RemoteKind::Camera && !r.from_guest && r.decoded > 0);
        if s.session_id == Some(session) && shown {
            let ms = u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX).min(MAX_CALL_SETUP_MS);
            tracing::info!(session = %session, first_frame_ms = ms, "call set up");
            let _ = ws.send(ClientMsg::CallSetup { session_id: session, first_frame_ms: ms }).await;
            return;
        }
    }
}

fn notice(kind: &'static str, text: impl Into<String>) -> Effect {
    Effect::Notice(Notice { kind, text: text.into() })
}

enum ScanReport {
    Page,
    Finished,
    Fault(ScanFault),
}

/// Starts a scan in the background when the [`crate::desk::ScanDesk`] allows it; each page
/// goes to the spool and the uploader is woken for it from the scan task itself (the app loop
/// only counts pages for the status).
fn start_scan(
    cfg: &Config,
    (spool, uploader): (&Spool, &Uploader),
    kiosk: &Kiosk,
    scan: &mut crate::desk::ScanDesk,
    tx: &mpsc::Sender<ScanReport>,
    (session_id, slot_id, pages): (Option<Uuid>, Option<Uuid>, u32),
) -> Result<Vec<Effect>, ActionError> {
    // At the storage bound no new page is taken (the ones waiting still upload).
    let storage = crate::storage::Storage::new(cfg);
    let ask = crate::desk::ScanAsk {
        current_session: kiosk.session_id(),
        phase: kiosk.phase().name(),
        asked_session: session_id,
        pages,
    };
    let (job, started) = scan.start(ask, || storage.admit_scan(std::time::SystemTime::now()))?;
    let (current, pages) = (job.session_id, job.pages);
    let (scfg, spool, uploader, tx) = (cfg.scanner.clone(), spool.clone(), uploader.clone(), tx.clone());
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    tokio::spawn(async move {
        for n in 1..=pages {
            if n > 1 && storage.admit_scan(std::time::SystemTime::now()).is_err() {
                let _ = tx.send(ScanReport::Fault(ScanFault::DiskFull)).await;
                return;
            }
            let scratch = spool.scratch_path("jpg");
            if let Err(f) = crate::scan::scan_page(&scfg, &scratch).await {
                let _ = tx.send(ScanReport::Fault(f)).await;
                return;
            }
            let name = format!("扫描件-{stamp}-{n}.jpg");
            match spool.add(&scratch, current, slot_id, &name, "image/jpeg", "jpg") {
                Ok(e) => {
                    tracing::info!(page = %e.id, size = e.size, sha256 = %e.sha256, "page scanned and spooled");
                    uploader.kick();
                    let _ = tx.send(ScanReport::Page).await;
                }
                Err(e) => {
                    let _ = tx.send(ScanReport::Fault(ScanFault::Failed(format!("spool: {e}")))).await;
                    return;
                }
            }
        }
        let _ = tx.send(ScanReport::Finished).await;
    });
    Ok(vec![Effect::Notice(started)])
}

/// Replaces the status file atomically (diagnosis, monitoring agents).
fn write_status_file(path: &std::path::Path, s: &Status) {
    let tmp = path.with_extension("tmp");
    let ok = serde_json::to_vec_pretty(s)
        .ok()
        .and_then(|b| std::fs::write(&tmp, b).ok())
        .and_then(|()| std::fs::rename(&tmp, path).ok());
    if ok.is_none() {
        tracing::debug!(path = %path.display(), "cannot write the status file");
    }
}

/// One JSON line on stdout (logs go to stderr): `ready`, `status`.
pub fn print_event(v: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

pub type UiAddr = SocketAddr;

pub use crate::desk::printer_reason_zh;
