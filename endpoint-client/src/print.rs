//! Remote printing at the service point (protocol §5.6). The operator sends a PDF; the server
//! tells the terminal (`print_job_changed`) or the terminal finds it when it (re)connects
//! (`GET /api/v1/terminals/me/print-jobs?state=pending`). For each job:
//!
//! 1. a [`Record`] with a fresh claim token is written durably to `<state dir>/print/<job>.json`
//!    **before** claiming, so a restart presents the same token (the server answers 200 again,
//!    any other token 409);
//! 2. claim, download, check the SHA-256 (the job's and the `Bangban-Sha256` header);
//! 3. the record is marked `submitting`, the PDF goes to CUPS by IPP `Print-Job` with the job
//!    name `bangban-<job id>`, and the CUPS job id is recorded right after. A restart that finds
//!    `submitting` without a CUPS id looks the job up by name (`Get-Jobs`) before submitting
//!    again, so a job is printed at most once;
//! 4. the CUPS `job-state` is polled and reported: `queued`, `printing`, `completed` (job-state
//!    9), `failed` with the printer's reason (`printer-state-reasons`, e.g. `media-empty`).
//!
//! The blocking `ipp` client runs in `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shared::api::{PrintJobState, PrintJobView};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::config::PrinterConfig;
use crate::rest::{RestError, ServerApi};
use crate::spool::sha256_hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Token stored, claim not confirmed yet.
    Claiming,
    /// About to call Print-Job (or the answer was lost).
    Submitting,
    /// CUPS has it (`cups_job_id`).
    Submitted,
}

/// What the terminal remembers about a job across restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub job_id: Uuid,
    pub claim_token: String,
    pub filename: String,
    pub sha256: String,
    pub copies: u32,
    pub stage: Stage,
    pub cups_job_id: Option<i32>,
    /// The last state the server acknowledged from us.
    pub reported: Option<PrintJobState>,
}

impl Record {
    pub fn title(&self) -> String {
        format!("bangban-{}", self.job_id)
    }
}

/// The durable records (`<state dir>/print`).
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn load(&self, id: Uuid) -> Option<Record> {
        std::fs::read(self.path(id)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub fn all(&self) -> Vec<Record> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return vec![] };
        rd.flatten()
            .filter(|d| d.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|d| std::fs::read(d.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Writes the record durably (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, r: &Record) -> std::io::Result<()> {
        use std::io::Write;
        let path = self.path(r.job_id);
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn remove(&self, id: Uuid) {
        let _ = std::fs::remove_file(self.path(id));
    }
}

/// A fresh claim token: 32 random bytes, hex.
pub fn new_claim_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("bbct_{}", hex::encode(b))
}

// ---- IPP ------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IppFailure {
    /// cupsd unreachable, timeouts: try again.
    #[error("打印服务暂时不可用 (printer service unreachable): {0}")]
    Transient(String),
    /// The printer refused the operation (IPP status).
    #[error("打印机拒绝 (printer refused): {0}")]
    Refused(String),
}

/// The state of the printer (`Get-Printer-Attributes`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PrinterInfo {
    /// 3 idle, 4 processing, 5 stopped.
    pub state: i32,
    pub reasons: Vec<String>,
    pub accepting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// IPP job-state: 3 pending, 4 held, 5 processing, 6 stopped, 7 canceled, 8 aborted, 9 completed.
    pub state: i32,
    pub reasons: Vec<String>,
    /// `job-impressions-completed` and `job-media-sheets-completed`: pages going out.
    pub done: (i32, i32),
}

/// The printer's IPP endpoint. Methods block: call them through [`Ipp::run`].
#[derive(Debug, Clone)]
pub struct Ipp {
    uri: String,
}

fn values(v: &ipp::prelude::IppValue) -> Vec<String> {
    match v {
        ipp::prelude::IppValue::Array(a) => a.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    }
}

fn int(v: &ipp::prelude::IppValue) -> Option<i32> {
    match v {
        ipp::prelude::IppValue::Integer(i) | ipp::prelude::IppValue::Enum(i) => Some(*i),
        _ => None,
    }
}

impl Ipp {
    pub fn new(uri: &str) -> Self {
        Self { uri: uri.to_owned() }
    }

    /// Runs a blocking IPP call on the blocking pool.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ipp) -> Result<T, IppFailure> + Send + 'static,
    ) -> Result<T, IppFailure> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me)).await.map_err(|e| IppFailure::Transient(e.to_string()))?
    }

    fn uri(&self) -> Result<ipp::prelude::Uri, IppFailure> {
        self.uri.parse().map_err(|e| IppFailure::Refused(format!("printer uri: {e}")))
    }

    fn send(
        &self,
        req: ipp::prelude::IppRequestResponse,
    ) -> Result<ipp::prelude::IppRequestResponse, IppFailure> {
        use ipp::prelude::*;
        let client = IppClient::builder(self.uri()?).request_timeout(Duration::from_secs(30)).build();
        let resp = client.send(req).map_err(|e| match e {
            IppError::StatusError(s) => IppFailure::Refused(format!("{s:?}")),
            other => IppFailure::Transient(other.to_string()),
        })?;
        let status = resp.header().status_code();
        if !status.is_success() {
            return Err(IppFailure::Refused(format!("{status:?}")));
        }
        Ok(resp)
    }

    /// `Print-Job` of a PDF; returns the CUPS job id.
    pub fn submit(&self, title: &str, pdf: Vec<u8>, copies: u32) -> Result<i32, IppFailure> {
        use ipp::prelude::*;
        let bad = |e: ipp::parser::IppParseError| IppFailure::Refused(e.to_string());
        let payload = IppPayload::new(std::io::Cursor::new(pdf));
        let mut b = IppOperationBuilder::print_job(self.uri()?, payload)
            .job_title(title)
            .user_name("bangban")
            .document_format("application/pdf");
        if copies > 1 {
            b = b.attribute(
                IppAttribute::with_name("copies", IppValue::Integer(i32::try_from(copies).unwrap_or(1)))
                    .map_err(bad)?,
            );
        }
        let resp = self.send(b.build().map_err(bad)?.into())?;
        resp.attributes()
            .groups_of(DelimiterTag::JobAttributes)
            .find_map(|g| g.get("job-id").and_then(|a| int(a.value())))
            .ok_or_else(|| IppFailure::Transient("Print-Job answer without job-id".into()))
    }

    pub fn job(&self, id: i32) -> Result<JobInfo, IppFailure> {
        use ipp::prelude::*;
        let op = IppOperationBuilder::get_job_attributes(self.uri()?, id)
            .build()
            .map_err(|e| IppFailure::Refused(e.to_string()))?;
        let resp = self.send(op.into())?;
        let g = resp
            .attributes()
            .groups_of(DelimiterTag::JobAttributes)
            .next()
            .ok_or_else(|| IppFailure::Transient("no job attributes".into()))?;
        let state = g
            .get("job-state")
            .and_then(|a| int(a.value()))
            .ok_or_else(|| IppFailure::Transient("no job-state".into()))?;
        let reasons = g.get("job-state-reasons").map(|a| values(a.value())).unwrap_or_default();
        let count = |name: &str| g.get(name).and_then(|a| int(a.value())).unwrap_or(0);
        let done = (count("job-impressions-completed"), count("job-media-sheets-completed"));
        Ok(JobInfo { state, reasons, done })
    }

    /// Every job (also finished ones) whose `job-name` is `title`.
    pub fn find_by_title(&self, title: &str) -> Result<Option<i32>, IppFailure> {
        use ipp::prelude::*;
        let bad = |e: ipp::parser::IppParseError| IppFailure::Refused(e.to_string());
        let mut req = IppRequestResponse::new(IppVersion::v1_1(), Operation::GetJobs, Some(self.uri()?))
            .map_err(bad)?;
        let which = IppValue::Keyword(ipp::value::IppKeyword::new("all").map_err(bad)?);
        let attrs = IppValue::Array(vec![
            IppValue::Keyword(ipp::value::IppKeyword::new("job-id").map_err(bad)?),
            IppValue::Keyword(ipp::value::IppKeyword::new("job-name").map_err(bad)?),
        ]);
        req.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::with_name("which-jobs", which).map_err(bad)?,
        );
        req.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::with_name("requested-attributes", attrs).map_err(bad)?,
        );
        let resp = self.send(req)?;
        Ok(resp.attributes().groups_of(DelimiterTag::JobAttributes).find_map(|g| {
            let name = g.get("job-name").map(|a| a.value().to_string())?;
            (name == title).then(|| g.get("job-id").and_then(|a| int(a.value()))).flatten()
        }))
    }

    pub fn cancel(&self, id: i32) -> Result<(), IppFailure> {
        use ipp::prelude::*;
        // As the job's owner (`Print-Job` sends `bangban`): CUPS refuses others (401).
        let op = IppOperationBuilder::cancel_job(self.uri()?, id)
            .user_name("bangban")
            .build()
            .map_err(|e| IppFailure::Refused(e.to_string()))?;
        self.send(op.into()).map(|_| ())
    }

    pub fn printer(&self) -> Result<PrinterInfo, IppFailure> {
        use ipp::prelude::*;
        let op = IppOperationBuilder::get_printer_attributes(self.uri()?)
            .attributes(["printer-state", "printer-state-reasons", "printer-is-accepting-jobs"])
            .build()
            .map_err(|e| IppFailure::Refused(e.to_string()))?;
        let resp = self.send(op.into())?;
        let g = resp
            .attributes()
            .groups_of(DelimiterTag::PrinterAttributes)
            .next()
            .ok_or_else(|| IppFailure::Transient("no printer attributes".into()))?;
        Ok(PrinterInfo {
            state: g.get("printer-state").and_then(|a| int(a.value())).unwrap_or(0),
            reasons: g
                .get("printer-state-reasons")
                .map(|a| values(a.value()))
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r != "none")
                .collect(),
            accepting: g
                .get("printer-is-accepting-jobs")
                .is_some_and(|a| matches!(a.value(), IppValue::Boolean(true))),
        })
    }
}

/// A printer reason that stops printing (`media-empty-error` → `media-empty`), if any.
pub fn blocking_reason(reasons: &[String]) -> Option<String> {
    const STOPPERS: [&str; 8] = [
        "media-empty",
        "media-needed",
        "media-jam",
        "door-open",
        "cover-open",
        "toner-empty",
        "marker-supply-empty",
        "input-tray-missing",
    ];
    reasons.iter().find_map(|r| {
        let base = r.trim_end_matches("-error").trim_end_matches("-warning").trim_end_matches("-report");
        (STOPPERS.contains(&base) || r.ends_with("-error")).then(|| base.to_owned())
    })
}

/// The server state for an IPP job-state.
pub fn server_state(job_state: i32) -> PrintJobState {
    match job_state {
        5 | 6 => PrintJobState::Printing,
        7 | 8 => PrintJobState::Failed,
        9 => PrintJobState::Completed,
        _ => PrintJobState::Queued,
    }
}

fn rank(s: PrintJobState) -> u8 {
    match s {
        PrintJobState::Pending => 0,
        PrintJobState::Claimed => 1,
        PrintJobState::Queued => 2,
        PrintJobState::Printing => 3,
        _ => 4,
    }
}

// ---- the worker -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum PrintTrigger {
    /// (Re)connected: fetch pending jobs.
    Sync,
    /// `print_job_changed`.
    Job(Box<PrintJobView>),
}

/// A job for the kiosk status and notices.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PrintProgress {
    pub job_id: Uuid,
    pub filename: String,
    pub state: PrintJobState,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrinterStatus {
    /// The last `Get-Printer-Attributes` answer; `None` when unreachable.
    pub printer: Option<PrinterInfo>,
    pub error: Option<String>,
    pub jobs: Vec<PrintProgress>,
}

#[derive(Clone)]
pub struct Printer {
    tx: mpsc::Sender<PrintTrigger>,
    status: Arc<Mutex<PrinterStatus>>,
}

enum Outcome {
    Done,
    /// Server or CUPS unreachable: keep the record, try again later.
    Later(String),
}

struct Worker {
    cfg: PrinterConfig,
    api: ServerApi,
    ipp: Ipp,
    records: Records,
    status: Arc<Mutex<PrinterStatus>>,
    events: mpsc::Sender<PrintProgress>,
}

impl Printer {
    /// Starts the worker; records left from before a restart are resumed first.
    pub fn spawn(
        cfg: PrinterConfig,
        state_dir: &Path,
        api: ServerApi,
        events: mpsc::Sender<PrintProgress>,
    ) -> std::io::Result<Self> {
        let records = Records::open(state_dir.join("print"))?;
        let (tx, rx) = mpsc::channel(256);
        let status = Arc::new(Mutex::new(PrinterStatus::default()));
        let w = Worker { ipp: Ipp::new(&cfg.uri), cfg, api, records, status: status.clone(), events };
        let retry_tx = tx.clone();
        tokio::spawn(async move { w.run(rx, retry_tx).await });
        Ok(Self { tx, status })
    }

    /// Never blocks the caller: a full queue drops the trigger (the next `Sync` finds the job).
    pub fn trigger(&self, t: PrintTrigger) {
        if self.tx.try_send(t).is_err() {
            tracing::warn!("print queue full; the job is fetched at the next sync");
        }
    }

    pub fn status(&self) -> PrinterStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<PrintTrigger>, retry_tx: mpsc::Sender<PrintTrigger>) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut retry_pending = false;
        self.refresh_printer().await;
        for r in self.records.all() {
            if let Outcome::Later(why) = self.process(r).await {
                tracing::warn!(%why, "print job resumed later");
                retry_pending = true;
            }
        }
        loop {
            if retry_pending {
                retry_pending = false;
                let tx = retry_tx.clone();
                let delay = backoff.next_delay(&mut rand::thread_rng());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(PrintTrigger::Sync).await;
                });
            }
            let Some(t) = rx.recv().await else { return };
            let mut later = false;
            match t {
                PrintTrigger::Sync => {
                    self.refresh_printer().await;
                    // Local records first (jobs claimed before a restart), then what is pending.
                    for r in self.records.all() {
                        later |= matches!(self.process(r).await, Outcome::Later(_));
                    }
                    match self.api.pending_print_jobs().await {
                        Ok(jobs) => {
                            for j in jobs {
                                later |= matches!(self.job(j).await, Outcome::Later(_));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot fetch pending print jobs");
                            later = true;
                        }
                    }
                }
                PrintTrigger::Job(j) => match j.state {
                    PrintJobState::Pending => later |= matches!(self.job(*j).await, Outcome::Later(_)),
                    PrintJobState::Cancelled | PrintJobState::Expired => self.cancelled(&j).await,
                    _ => {}
                },
            }
            if later {
                retry_pending = true;
            } else {
                backoff.reset();
            }
        }
    }

    async fn refresh_printer(&self) {
        let r = self.ipp.run(|i| i.printer()).await;
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(p) => {
                s.printer = Some(p);
                s.error = None;
            }
            Err(e) => {
                s.printer = None;
                s.error = Some(e.to_string());
            }
        }
    }

    fn show(&self, r: &Record, state: PrintJobState, reason: Option<String>) {
        let p = PrintProgress { job_id: r.job_id, filename: r.filename.clone(), state, reason };
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.jobs.retain(|j| j.job_id != r.job_id);
        s.jobs.push(p.clone());
        if s.jobs.len() > 10 {
            s.jobs.remove(0);
        }
        drop(s);
        let _ = self.events.try_send(p);
    }

    /// A pending job from the server: create (or reuse) the record, then process it.
    async fn job(&self, j: PrintJobView) -> Outcome {
        let r = match self.records.load(j.id) {
            Some(r) => r,
            None => {
                let r = Record {
                    job_id: j.id,
                    claim_token: new_claim_token(),
                    filename: j.filename.clone(),
                    sha256: j.sha256.to_ascii_lowercase(),
                    copies: j.copies.max(1),
                    stage: Stage::Claiming,
                    cups_job_id: None,
                    reported: None,
                };
                // Durable before the claim leaves this machine.
                if let Err(e) = self.records.save(&r) {
                    return Outcome::Later(format!("cannot store the claim token: {e}"));
                }
                r
            }
        };
        self.process(r).await
    }

    async fn cancelled(&self, j: &PrintJobView) {
        if let Some(r) = self.records.load(j.id) {
            if let Some(id) = r.cups_job_id {
                let _ = self.ipp.run(move |i| i.cancel(id)).await;
            }
            self.records.remove(j.id);
            self.show(&r, j.state, None);
        }
    }

    async fn process(&self, mut r: Record) -> Outcome {
        // 1. Claim (idempotent with our token).
        if r.stage == Stage::Claiming || r.cups_job_id.is_none() {
            match self.api.claim_print_job(r.job_id, &r.claim_token).await {
                Ok(v) => {
                    if r.reported.is_none() {
                        r.reported = Some(PrintJobState::Claimed);
                    }
                    if matches!(v.state, PrintJobState::Cancelled | PrintJobState::Expired) {
                        self.records.remove(r.job_id);
                        return Outcome::Done;
                    }
                    self.show(&r, PrintJobState::Claimed, None);
                }
                Err(RestError::Refused { status, body }) => {
                    tracing::warn!(job = %r.job_id, status, %body, "print job not ours to print");
                    self.records.remove(r.job_id);
                    return Outcome::Done;
                }
                Err(e) => return Outcome::Later(e.to_string()),
            }
        }
        // 2. Submit once.
        if r.cups_job_id.is_none() {
            let title = r.title();
            if r.stage == Stage::Submitting {
                // The answer to an earlier Print-Job may have been lost.
                let t = title.clone();
                match self.ipp.run(move |i| i.find_by_title(&t)).await {
                    Ok(Some(id)) => {
                        tracing::info!(job = %r.job_id, cups_job = id, "found the job already at the printer");
                        r.cups_job_id = Some(id);
                        r.stage = Stage::Submitted;
                        if let Err(e) = self.records.save(&r) {
                            return Outcome::Later(e.to_string());
                        }
                    }
                    Ok(None) => {}
                    Err(IppFailure::Transient(e)) => return Outcome::Later(e),
                    Err(IppFailure::Refused(e)) => tracing::warn!(error = %e, "Get-Jobs refused"),
                }
            }
        }
        if r.cups_job_id.is_none() {
            let (pdf, header_sha) = match self.api.print_document(r.job_id).await {
                Ok(x) => x,
                Err(RestError::Refused { status, body }) => {
                    tracing::warn!(job = %r.job_id, status, %body, "print document refused");
                    return self.fail(r, "document-unavailable").await;
                }
                Err(e) => return Outcome::Later(e.to_string()),
            };
            let got = sha256_hex(&pdf);
            if got != r.sha256 || header_sha.is_some_and(|h| h != got) {
                tracing::error!(job = %r.job_id, "print document checksum mismatch");
                return self.fail(r, "checksum-mismatch").await;
            }
            r.stage = Stage::Submitting;
            if let Err(e) = self.records.save(&r) {
                return Outcome::Later(e.to_string());
            }
            let (title, copies) = (r.title(), r.copies);
            match self.ipp.run(move |i| i.submit(&title, pdf, copies)).await {
                Ok(id) => {
                    r.cups_job_id = Some(id);
                    r.stage = Stage::Submitted;
                    if let Err(e) = self.records.save(&r) {
                        tracing::error!(error = %e, "cannot record the CUPS job id");
                    }
                    tracing::info!(job = %r.job_id, cups_job = id, "sent to the printer");
                }
                Err(IppFailure::Transient(e)) => return Outcome::Later(e),
                Err(IppFailure::Refused(e)) => {
                    tracing::error!(job = %r.job_id, error = %e, "the printer refused the job");
                    let reason = self.printer_reason().await.unwrap_or_else(|| "printer-refused".into());
                    return self.fail(r, &reason).await;
                }
            }
        }
        // 3. Follow the job at the printer and report.
        self.follow(r).await
    }

    async fn printer_reason(&self) -> Option<String> {
        let p = self.ipp.run(|i| i.printer()).await.ok()?;
        blocking_reason(&p.reasons).or_else(|| (!p.accepting).then(|| "printer-not-accepting".to_owned()))
    }

    /// Follows the job at CUPS and reports its states. Progress is any change of the job's
    /// state, reasons or completed pages; a job without progress for `fail_after_secs` (a
    /// filter stuck on a document, a backend that hangs, a stopped queue, a printer fault) is
    /// cancelled in CUPS and reported `failed` with the reason, so the jobs behind it go on.
    async fn follow(&self, mut r: Record) -> Outcome {
        let Some(cups_id) = r.cups_job_id else { return Outcome::Later("no CUPS job".into()) };
        let poll = Duration::from_millis(self.cfg.poll_ms.max(50));
        let bound = Duration::from_secs(self.cfg.fail_after_secs);
        let mut last_seen: Option<JobInfo> = None;
        let mut progress_at = Instant::now();
        let mut cancel_refused = false;
        let mut server_down_since: Option<Instant> = None;
        tracing::info!(job = %r.job_id, cups_job = cups_id, bound_s = bound.as_secs(), "following the job at the printer");
        loop {
            let info = match self.ipp.run(move |i| i.job(cups_id)).await {
                Ok(i) => i,
                Err(IppFailure::Transient(e)) => {
                    tracing::warn!(error = %e, "printer unreachable while printing");
                    tokio::time::sleep(poll * 4).await;
                    continue;
                }
                Err(IppFailure::Refused(e)) => {
                    // CUPS forgot the job (history purged): it cannot be followed further.
                    tracing::error!(error = %e, cups_job = cups_id, "job unknown to the printer");
                    return self.fail(r, "job-lost").await;
                }
            };
            if last_seen.as_ref() != Some(&info) {
                tracing::debug!(cups_job = cups_id, ?info, "job progress");
                progress_at = Instant::now();
                last_seen = Some(info.clone());
            }
            let mut want = server_state(info.state);
            let mut reason = None;
            if want == PrintJobState::Failed {
                reason = Some(
                    self.printer_reason()
                        .await
                        .or_else(|| info.reasons.iter().find(|x| *x != "none").cloned())
                        .unwrap_or_else(|| {
                            if info.state == 7 { "job-canceled".into() } else { "job-aborted".into() }
                        }),
                );
            } else if !want.is_final() {
                let p = self.ipp.run(|i| i.printer()).await.ok();
                let stopper = p.as_ref().and_then(|p| blocking_reason(&p.reasons));
                if let Some(s) = &stopper {
                    // A printer fault reaches the kiosk (and, by the heartbeat, the console).
                    self.show(&r, want, Some(s.clone()));
                }
                if progress_at.elapsed() >= bound {
                    let why = stopper.unwrap_or_else(|| match p {
                        Some(p) if p.state == 5 => "printer-stopped".to_owned(),
                        _ => "job-stalled".to_owned(),
                    });
                    tracing::warn!(job = %r.job_id, cups_job = cups_id, reason = %why,
                        stalled_s = progress_at.elapsed().as_secs(), "no progress at the printer: cancelling");
                    match self.ipp.run(move |i| i.cancel(cups_id)).await {
                        Ok(()) => {
                            want = PrintJobState::Failed;
                            reason = Some(why);
                        }
                        // The job may have ended meanwhile: read its state once more first.
                        Err(IppFailure::Refused(e)) if !cancel_refused => {
                            tracing::warn!(error = %e, "Cancel-Job refused");
                            cancel_refused = true;
                            continue;
                        }
                        Err(IppFailure::Refused(_)) => {
                            want = PrintJobState::Failed;
                            reason = Some(why);
                        }
                        Err(IppFailure::Transient(e)) => tracing::warn!(error = %e, "cannot cancel yet"),
                    }
                }
            }
            let reported_rank = r.reported.map_or(0, rank);
            if rank(want) > reported_rank || (want.is_final() && r.reported != Some(want)) {
                match self.api.report_print_state(r.job_id, want, reason.clone()).await {
                    Ok(_) => {
                        server_down_since = None;
                        r.reported = Some(want);
                        let _ = self.records.save(&r);
                        self.show(&r, want, reason.clone());
                    }
                    Err(RestError::Refused { status, body }) => {
                        // Cancelled by the operator, or already final on the server.
                        tracing::warn!(job = %r.job_id, status, %body, "state report refused");
                        if want.is_final() {
                            self.records.remove(r.job_id);
                            return Outcome::Done;
                        }
                        // The server is already past this state (acknowledged before a restart
                        // we did not record): go on following the printer.
                        r.reported = Some(want);
                    }
                    Err(e) => {
                        let since = *server_down_since.get_or_insert_with(Instant::now);
                        tracing::debug!(error = %e, down_ms = since.elapsed().as_millis() as u64, "state report failed");
                    }
                }
            }
            if want.is_final() && r.reported == Some(want) {
                self.records.remove(r.job_id);
                return Outcome::Done;
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Reports `failed` (retrying while the server is unreachable) and forgets the job.
    async fn fail(&self, r: Record, reason: &str) -> Outcome {
        match self.api.report_print_state(r.job_id, PrintJobState::Failed, Some(reason.to_owned())).await {
            Ok(_) | Err(RestError::Refused { .. }) => {
                self.show(&r, PrintJobState::Failed, Some(reason.to_owned()));
                self.records.remove(r.job_id);
                Outcome::Done
            }
            Err(e) => Outcome::Later(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_reasons_and_states_map_to_server_states() {
        assert_eq!(blocking_reason(&["media-empty-error".into()]), Some("media-empty".into()));
        assert_eq!(blocking_reason(&["media-empty-warning".into()]), Some("media-empty".into()));
        assert_eq!(blocking_reason(&["paused".into(), "cups-waiting-for-job-completed".into()]), None);
        assert_eq!(blocking_reason(&["other-error".into()]), Some("other".into()));
        assert_eq!(server_state(3), PrintJobState::Queued);
        assert_eq!(server_state(4), PrintJobState::Queued);
        assert_eq!(server_state(5), PrintJobState::Printing);
        assert_eq!(server_state(8), PrintJobState::Failed);
        assert_eq!(server_state(9), PrintJobState::Completed);
    }

    #[test]
    fn records_are_durable_and_tokens_are_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let recs = Records::open(dir.path().join("print")).expect("open");
        let r = Record {
            job_id: Uuid::new_v4(),
            claim_token: new_claim_token(),
            filename: "申请表.pdf".into(),
            sha256: "00".repeat(32),
            copies: 1,
            stage: Stage::Claiming,
            cups_job_id: None,
            reported: None,
        };
        assert!((16..=128).contains(&r.claim_token.len()));
        assert_ne!(r.claim_token, new_claim_token());
        recs.save(&r).expect("save");
        let again = Records::open(dir.path().join("print")).expect("reopen");
        assert_eq!(again.load(r.job_id), Some(r.clone()));
        assert_eq!(again.all(), vec![r.clone()]);
        again.remove(r.job_id);
        assert!(again.all().is_empty());
    }
}
