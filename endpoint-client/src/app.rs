//! `endpoint-client run`: the drivers around the terminal's sans-IO core
//! ([`crate::terminal::Terminal`]). One small loop takes what happens (signaling events, the
//! kiosk page's commands, the devices' reports, the status tick), hands it to the core with the
//! time, and executes the [`Action`]s that come out ([`Drivers`]): the signaling connection, the
//! call task ([`Calls`]), the scan task, the server's REST calls, the uploader and the printer.
//! A scanned page goes from the scan task to the spool and the uploader; only its count comes
//! back here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::protocol::ClientMsg;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::auth::{DeviceAuth, read_credential};
use crate::call::{self, CallCmd, CallHandle, CallSettings, CallStats};
use crate::config::Config;
use crate::kiosk::ActionError;
use crate::print::{PrintProgress, Printer};
use crate::rest::{RestError, ServerApi};
use crate::scan::ScanFault;
use crate::signaling::{self, ConnEvent};
use crate::spool::Spool;
use crate::staff::RenewalAnswer;
pub use crate::staff::StaffSession;
use crate::terminal::{Action, Devices, Event, Terminal};
use crate::upload::{UploadEvent, Uploader};
pub use crate::view::{ScanStatus, StaffView, Status, UiCommand, UiRequest};

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
    // What the background tasks the drivers start report back (scan progress, a stored phone
    // number, a staff renewal's answer).
    let (back_tx, mut back_rx) = mpsc::channel::<Event>(16);
    let mut drivers = Drivers {
        cfg: cfg.clone(),
        api: api.clone(),
        ws: ws_tx.clone(),
        spool,
        uploader: uploader.clone(),
        printer,
        stats: stats.clone(),
        calls: Calls { settings, current: None, setup_probe: None },
        back: back_tx,
    };
    let staff_idle = Duration::from_secs(cfg.kiosk.staff_idle_minutes.max(1) * 60);
    let screen_idle = Duration::from_secs(cfg.kiosk.screen_idle_secs);
    let mut terminal = Terminal::new(cfg.scanner.enabled, staff_idle, screen_idle, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.status_interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    // Why the loop ended, when not asked to (the process then exits with an error, logged).
    let mut failed: Option<&str> = None;

    loop {
        let actions = tokio::select! {
            _ = &mut shutdown => break,
            ev = ev_rx.recv() => {
                let Some(ev) = ev else {
                    failed = Some("the signaling task ended");
                    break;
                };
                terminal.handle(conn_event(ev), Instant::now())
            }
            Some(req) = ui_rx.recv() => {
                // At the storage bound no new page is taken (the ones waiting still upload).
                let storage = crate::storage::Storage::new(&cfg);
                terminal.ui(req, Instant::now(), || storage.admit_scan(std::time::SystemTime::now()))
            }
            Some(ev) = back_rx.recv() => terminal.handle(ev, Instant::now()),
            Some(ev) = up_rx.recv() => terminal.handle(Event::Upload(ev), Instant::now()),
            Some(p) = pr_rx.recv() => terminal.handle(Event::Print(p), Instant::now()),
            _ = tick.tick() => {
                let now = Instant::now();
                let actions = terminal.handle(Event::Tick, now);
                if watchdog.due(now) {
                    // From the loop itself: a loop that hangs stops the pings.
                    crate::watchdog::alive(&terminal.describe());
                }
                let s = drivers.status(&terminal, now);
                if let Some(path) = &cfg.status_file {
                    write_status_file(path, &s);
                }
                if status_lines {
                    print_event(&serde_json::json!({ "event": "status", "status": s }));
                }
                actions
            }
        };
        for action in actions {
            drivers.execute(action).await;
        }
        let _ = status_tx.send(drivers.status(&terminal, Instant::now()));
    }
    crate::watchdog::stopping();
    drivers.calls.close();
    sig_task.abort();
    refresher.abort();
    health.abort();
    match failed {
        Some(why) => Err(anyhow::anyhow!("terminal stopped: {why}")),
        None => Ok(()),
    }
}

fn conn_event(ev: ConnEvent) -> Event {
    match ev {
        ConnEvent::Connected { resumed } => Event::Connected { resumed },
        ConnEvent::Message(m) => Event::Server(*m),
        ConnEvent::Disconnected { .. } => Event::Disconnected,
        ConnEvent::Stopped { reason } => {
            tracing::error!(%reason, "signaling stopped for good");
            Event::Stopped
        }
    }
}

/// The call task of the current session.
struct Calls {
    settings: CallSettings,
    current: Option<CallHandle>,
    /// Reports the current call's setup time once its first operator frame is decoded.
    setup_probe: Option<tokio::task::JoinHandle<()>>,
}

impl Calls {
    fn start(
        &mut self,
        session: shared::protocol::SessionView,
        ws: &mpsc::Sender<ClientMsg>,
        stats: &Arc<CallStats>,
    ) {
        self.close();
        tracing::info!(session = %session.session_id, operator = %session.operator_name, "call starting");
        let probe = report_call_setup(session.session_id, stats.clone(), ws.clone());
        self.setup_probe = Some(tokio::spawn(probe));
        self.current = Some(call::start(session, self.settings.clone(), ws.clone(), stats.clone()));
    }

    /// Closes the call of `id` if it is the current one.
    fn stop(&mut self, id: Uuid) {
        if self.current.as_ref().is_some_and(|c| c.session_id == id) {
            self.close();
        }
    }

    fn close(&mut self) {
        if let Some(c) = self.current.take() {
            let _ = c.tx.send(CallCmd::Close);
        }
        if let Some(p) = self.setup_probe.take() {
            p.abort();
        }
    }

    fn input(&self, id: Uuid, input: crate::kiosk::CallInput) {
        if let Some(c) = self.current.as_ref().filter(|c| c.session_id == id) {
            let _ = c.tx.send(CallCmd::Input(input));
        }
    }
}

/// What executes the core's [`Action`]s.
struct Drivers {
    cfg: Config,
    api: ServerApi,
    ws: mpsc::Sender<ClientMsg>,
    spool: Spool,
    uploader: Uploader,
    printer: Option<Printer>,
    stats: Arc<CallStats>,
    calls: Calls,
    back: mpsc::Sender<Event>,
}

impl Drivers {
    fn status(&self, terminal: &Terminal, now: Instant) -> Status {
        let devices = Devices {
            uploads: self.uploader.progress(),
            printer: self.printer.as_ref().map(Printer::status).unwrap_or_default(),
            live: crate::live::LiveCounts::now(),
        };
        terminal.status(self.stats.snapshot(), devices, now)
    }

    async fn execute(&mut self, action: Action) {
        match action {
            Action::Send(msg) => {
                let _ = self.ws.send(msg).await;
            }
            Action::StartCall(session) => self.calls.start(*session, &self.ws, &self.stats),
            Action::StopCall(id) => self.calls.stop(id),
            Action::ToCall(id, input) => self.calls.input(id, input),
            Action::Disabled(reason) => tracing::error!(?reason, "terminal disabled by the server"),
            Action::KickUploads => self.uploader.kick(),
            Action::Print(t) => {
                if let Some(p) = &self.printer {
                    p.trigger(t);
                }
            }
            Action::MicMuted(muted) => self.stats.set_mic_muted(muted),
            Action::Volume(percent) => {
                let v = self.stats.set_volume(percent);
                tracing::info!(volume = v, "playback volume");
            }
            Action::RecordContact { ticket, body, reply } => {
                let (api, back) = (self.api.clone(), self.back.clone());
                tokio::spawn(async move {
                    let r = match api.record_contact(ticket, &body).await {
                        Ok(v) => {
                            tracing::info!(ticket = %ticket, "resident's phone number recorded with consent");
                            let _ =
                                back.send(Event::ContactRecorded { ticket, masked: v.phone_masked }).await;
                            Ok(())
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "phone number not recorded");
                            Err(refused(&e))
                        }
                    };
                    let _ = reply.send(r);
                });
            }
            Action::BookAppointment { body, answer, reply } => {
                let api = self.api.clone();
                tokio::spawn(async move {
                    let r = match api.book_appointment(&body).await {
                        Ok(v) => {
                            tracing::info!(appointment = %v.id, "appointment booked with consent");
                            let _ = answer.send(v);
                            Ok(())
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "appointment not booked");
                            Err(refused(&e))
                        }
                    };
                    let _ = reply.send(r);
                });
            }
            Action::RenewStaffLogin { refresh_token } => {
                let (api, back) = (self.api.clone(), self.back.clone());
                tokio::spawn(async move {
                    let answer = match api.renew_login(&refresh_token).await {
                        Ok(t) => RenewalAnswer::Tokens {
                            access_token: t.access_token,
                            refresh_token: t.refresh_token,
                            expires_in: t.expires_in,
                        },
                        Err(e) if e.status().is_some() => RenewalAnswer::Refused,
                        Err(e) => {
                            tracing::warn!(error = %e, "staff login renewal failed; retrying");
                            RenewalAnswer::Unreachable
                        }
                    };
                    let _ = back.send(Event::Renewal { sent: refresh_token, answer }).await;
                });
            }
            Action::EndStaffLogin(s) => end_staff_login(&self.api, s),
            Action::StartScan { job, slot_id } => self.start_scan(job, slot_id),
            Action::Reply(reply, r) => {
                let _ = reply.send(r);
            }
        }
    }

    /// The scan task: each page goes to the spool and the uploader is woken for it from here
    /// (not through the app loop, which only counts pages for the status).
    fn start_scan(&self, job: crate::desk::ScanJob, slot_id: Option<Uuid>) {
        let (current, pages) = (job.session_id, job.pages);
        let storage = crate::storage::Storage::new(&self.cfg);
        let (scfg, spool, uploader, back) =
            (self.cfg.scanner.clone(), self.spool.clone(), self.uploader.clone(), self.back.clone());
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        tokio::spawn(async move {
            for n in 1..=pages {
                if n > 1 && storage.admit_scan(std::time::SystemTime::now()).is_err() {
                    let _ = back.send(Event::ScanFault(ScanFault::DiskFull)).await;
                    return;
                }
                let scratch = spool.scratch_path("jpg");
                if let Err(f) = crate::scan::scan_page(&scfg, &scratch).await {
                    let _ = back.send(Event::ScanFault(f)).await;
                    return;
                }
                let name = format!("扫描件-{stamp}-{n}.jpg");
                match spool.add(&scratch, current, slot_id, &name, "image/jpeg", "jpg") {
                    Ok(e) => {
                        tracing::info!(page = %e.id, size = e.size, sha256 = %e.sha256, "page scanned and spooled");
                        uploader.kick();
                        let _ = back.send(Event::ScanPage).await;
                    }
                    Err(e) => {
                        let _ = back.send(Event::ScanFault(ScanFault::Failed(format!("spool: {e}")))).await;
                        return;
                    }
                }
            }
            let _ = back.send(Event::ScanFinished).await;
        });
    }
}

/// The kiosk page's text for a refused or failed REST call.
fn refused(e: &RestError) -> ActionError {
    ActionError::Refused(e.server_message().unwrap_or_else(|| "无法连接服务器，请稍后再试".into()))
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
