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

const QUEUE: &str = "bangban-pdf";
const OUT_DIR: &str = "/var/spool/cups-pdf/bangban";

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
fn two_page_pdf(dir: &Path) -> Result<Vec<u8>> {
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
fn printed_files(job_id: uuid::Uuid) -> Vec<PathBuf> {
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

fn pdf_pages(path: &Path) -> Result<u32> {
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
async fn job_reaches(op: &mut OperatorWs, job: uuid::Uuid, state: PrintJobState) -> Result<PrintJobView> {
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
