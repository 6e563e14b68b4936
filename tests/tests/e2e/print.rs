//! Printing at the service point: the operator sends a two-page PDF during the call; the
//! terminal prints it through CUPS (the `bangban-pdf` cups-pdf queue) exactly once although the
//! terminal is killed twice (after claiming, and after handing the job to CUPS) and the server
//! restarts in between.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use shared::api::{PrintJobState, PrintJobView};
use shared::protocol::ServerMsg;

use crate::helpers::{
    Endpoint, EndpointOpts, OperatorWs, Server, WAIT, init_tracing, live_session, scripts_dir,
};

pub(crate) const QUEUE: &str = "bangban-pdf";
pub(crate) const OUT_DIR: &str = "/var/spool/cups-pdf/bangban";

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out =
        std::process::Command::new(cmd).args(args).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Holds the queue (jobs wait at CUPS in `pending`) until dropped or released.
struct HeldQueue(bool);

impl HeldQueue {
    fn hold() -> Result<Self> {
        run("cupsdisable", &["-r", "bangban e2e: held", QUEUE])?;
        Ok(Self(true))
    }
    fn release(&mut self) -> Result<()> {
        self.0 = false;
        run("cupsenable", &[QUEUE])
    }
}

impl Drop for HeldQueue {
    fn drop(&mut self) {
        if self.0 {
            let _ = run("cupsenable", &[QUEUE]);
        }
    }
}

/// A two-page PDF (Ghostscript from a tiny PostScript program).
pub(crate) fn two_page_pdf(dir: &Path) -> Result<Vec<u8>> {
    use std::io::Write;
    let out = dir.join("form.pdf");
    let mut child = std::process::Command::new("ps2pdf")
        .arg("-")
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("ps2pdf (ghostscript)")?;
    child.stdin.take().context("stdin")?.write_all(
        b"%!PS\n/Helvetica findfont 24 scalefont setfont\n\
          72 700 moveto (Bangban form page 1) show showpage\n\
          72 700 moveto (Bangban form page 2) show showpage\n",
    )?;
    if !child.wait()?.success() {
        bail!("ps2pdf failed");
    }
    Ok(std::fs::read(out)?)
}

/// cups-pdf output files of this job (`job_<cups id>-bangban-<job id>…pdf`).
pub(crate) fn printed_files(job_id: uuid::Uuid) -> Vec<PathBuf> {
    let needle = format!("bangban-{job_id}");
    std::fs::read_dir(OUT_DIR)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(&needle))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn pdf_pages(path: &Path) -> Result<u32> {
    let out = std::process::Command::new("pdfinfo").arg(path).output().context("pdfinfo (poppler-utils)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|v| v.trim().parse::<u32>()))
        .context("no Pages in pdfinfo output")?
        .map_err(Into::into)
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

/// Waits for a `print_job_changed` of `job` at or past `state`.
pub(crate) async fn job_reaches(
    op: &mut OperatorWs,
    job: uuid::Uuid,
    state: PrintJobState,
) -> Result<PrintJobView> {
    op.expect(&format!("print job {}", state.as_str()), move |m| match m {
        ServerMsg::PrintJobChanged { job: j } if j.id == job && rank(j.state) >= rank(state) => Some(j),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_pdf_prints_once_across_terminal_and_server_restarts() -> Result<()> {
    init_tracing();
    let st = std::process::Command::new(scripts_dir().join("cups-setup.sh")).arg(OUT_DIR).output()?;
    if !st.status.success() {
        bail!("cups-setup.sh: {}", String::from_utf8_lossy(&st.stderr));
    }
    let tmp = tempfile::tempdir()?;
    let pdf = two_page_pdf(tmp.path())?;

    let mut server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let opts = EndpointOpts {
        printer_uri: Some(format!("http://127.0.0.1:631/printers/{QUEUE}")),
        ..Default::default()
    };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (mut op, session, _item) = live_session(&server, &mut ep, &op_token).await?;

    // The queue is held: the job waits at CUPS, so the terminal can be killed after handing it
    // over (the window where a careless client would print twice).
    let mut queue = HeldQueue::hold()?;

    // The operator uploads the form and sends it to the service point's printer.
    let material_id = server.tus_upload(&op_token, session.session_id, "申请表.pdf", &pdf).await?;
    let created = server
        .post(
            &op_token,
            &format!("/api/v1/sessions/{}/print-jobs", session.session_id),
            json!({ "material_id": material_id, "idempotency_key": "e2e-print-1", "copies": 1 }),
        )
        .await?;
    let job_id: uuid::Uuid = created["id"].as_str().context("job id")?.parse()?;

    // 1. The terminal claims it, and is killed at once.
    let t0 = Instant::now();
    job_reaches(&mut op, job_id, PrintJobState::Claimed).await?;
    let claimed_after = t0.elapsed();
    ep.kill().await?;
    ep.restart().await?;

    // 2. After the restart it presents the same claim token, hands the job to CUPS (held) and
    //    reports `queued`; killed again.
    let queued = job_reaches(&mut op, job_id, PrintJobState::Queued).await?;
    assert_eq!(queued.state, PrintJobState::Queued, "the held queue keeps it queued");
    ep.kill().await?;

    // 3. The server restarts while the terminal is down; then the terminal comes back.
    drop(op);
    server.restart().await?;
    ep.restart().await?;
    let mut op = OperatorWs::connect(&server, &op_token).await?;
    ep.wait_status("terminal reconnected", |s| s["connected"] == true).await?;

    // 4. The printer is released: the job completes, reported through the restarted server.
    queue.release()?;
    let t1 = Instant::now();
    let done = job_reaches(&mut op, job_id, PrintJobState::Completed).await?;
    assert_eq!(done.state, PrintJobState::Completed, "{done:?}");
    let completed_after = t1.elapsed();

    // Exactly one output file for this job, with both pages.
    let files = printed_files(job_id);
    assert_eq!(files.len(), 1, "printed exactly once: {files:?}");
    assert_eq!(pdf_pages(&files[0])?, 2);
    // Nothing is left to resume, and a further sync prints nothing more.
    let deadline = Instant::now() + WAIT;
    while std::fs::read_dir(ep.state_dir().join("print"))?.flatten().count() > 0 {
        assert!(Instant::now() < deadline, "print record never removed");
        ep.status.changed().await?;
    }
    ep.restart().await?;
    ep.wait_status("terminal connected after the last restart", |s| s["connected"] == true).await?;
    let jobs = server.get(&op_token, &format!("/api/v1/sessions/{}/print-jobs", session.session_id)).await?;
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs[0]["state"], "completed");
    assert_eq!(printed_files(job_id).len(), 1, "still once after another restart");
    eprintln!(
        "MEASURE print: created → claimed {} ms; released → completed {} ms",
        claimed_after.as_millis(),
        completed_after.as_millis()
    );
    Ok(())
}

const HANG_QUEUE: &str = "bangban-hang";
const HANG_DIR: &str = "/var/spool/cups-pdf/bangban-hang";
/// The terminal's `printer.fail_after_secs` in the hung-job test.
const BOUND_SECS: u64 = 5;

/// A small valid one-page PDF whose (uncompressed) body carries `marker`: the `bangban-hang`
/// backend of scripts/cups-setup.sh hangs on documents containing `BANGBAN-HANG`.
fn marked_pdf(marker: &str) -> Vec<u8> {
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ];
    let mut out = format!("%PDF-1.4\n% {marker}\n").into_bytes();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    out
}

/// Jobs CUPS ever had on the hang queue (finished ones included).
fn hang_queue_jobs() -> Result<usize> {
    let out = std::process::Command::new("lpstat").args(["-W", "all", "-o", HANG_QUEUE]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with(HANG_QUEUE)).count())
}

fn hang_files(job_id: uuid::Uuid) -> Vec<PathBuf> {
    let needle = format!("bangban-{job_id}");
    std::fs::read_dir(HANG_DIR)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(&needle))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_printer_never_finishes_fails_within_the_bound_and_the_next_one_prints() -> Result<()> {
    init_tracing();
    let st = std::process::Command::new(scripts_dir().join("cups-setup.sh")).arg(OUT_DIR).output()?;
    if !st.status.success() {
        bail!("cups-setup.sh: {}", String::from_utf8_lossy(&st.stderr));
    }
    let _ = run("cancel", &["-a", HANG_QUEUE]);
    let jobs_before = hang_queue_jobs()?;

    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    // The e2e helper writes `uri = "…"` into the [printer] section: the bound rides along on
    // the next line.
    let opts = EndpointOpts {
        printer_uri: Some(format!(
            "http://127.0.0.1:631/printers/{HANG_QUEUE}\"\nfail_after_secs = {BOUND_SECS}\n#"
        )),
        ..Default::default()
    };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (mut op, session, _item) = live_session(&server, &mut ep, &op_token).await?;

    let send = |name: &'static str, pdf: Vec<u8>, key: &'static str| {
        let (server, op_token) = (&server, &op_token);
        async move {
            let material = server.tus_upload(op_token, session.session_id, name, &pdf).await?;
            let created = server
                .post(
                    op_token,
                    &format!("/api/v1/sessions/{}/print-jobs", session.session_id),
                    json!({ "material_id": material, "idempotency_key": key }),
                )
                .await?;
            anyhow::Ok(created["id"].as_str().context("job id")?.parse::<uuid::Uuid>()?)
        }
    };
    let stuck = send("卡住的表.pdf", marked_pdf("BANGBAN-HANG"), "e2e-hang-1").await?;
    let next = send("下一份.pdf", marked_pdf("an ordinary form"), "e2e-hang-2").await?;

    // The first job is at the printer, which never finishes it; the terminal restarts meanwhile.
    job_reaches(&mut op, stuck, PrintJobState::Printing).await?;
    ep.kill().await?;
    ep.restart().await?;
    let t0 = Instant::now();
    let failed = job_reaches(&mut op, stuck, PrintJobState::Failed).await?;
    let failed_after = t0.elapsed();
    assert_eq!(failed.state, PrintJobState::Failed, "{failed:?}");
    assert_eq!(failed.reason.as_deref(), Some("job-stalled"), "{failed:?}");
    assert!(
        failed_after.as_secs() < 4 * BOUND_SECS,
        "failed {} ms after the restart (bound {BOUND_SECS} s)",
        failed_after.as_millis()
    );
    // The resident is told at the kiosk.
    ep.wait_status("kiosk shows the failure", |s| {
        s["printer"]["jobs"]
            .as_array()
            .is_some_and(|j| j.iter().any(|j| j["job_id"] == stuck.to_string() && j["state"] == "failed"))
    })
    .await?;

    // The queue moved on: the next job prints, once.
    let done = job_reaches(&mut op, next, PrintJobState::Completed).await?;
    assert_eq!(done.state, PrintJobState::Completed, "{done:?}");
    assert_eq!(hang_files(next).len(), 1, "the next job printed once");
    assert!(hang_files(stuck).is_empty(), "the stuck job printed nothing");
    // Each job went to CUPS exactly once, the restart included; none is left there.
    assert_eq!(hang_queue_jobs()? - jobs_before, 2, "two submissions for two jobs");
    let out = std::process::Command::new("lpstat").args(["-o", HANG_QUEUE]).output()?;
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "no job left at CUPS");
    eprintln!("MEASURE print-stall: restart → failed {} ms (bound {BOUND_SECS} s)", failed_after.as_millis());
    Ok(())
}
