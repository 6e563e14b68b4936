//! The terminal's heartbeat: every `health.interval_secs` (default 30 s) and right after each
//! (re)connection it collects camera, microphone, printer (IPP `printer-state` and
//! `printer-state-reasons`), scanner (`scanimage -L`), disk space of the state directory against
//! its bound ([`crate::storage`], which deletes what may go at the bound) and version, and posts them to `/api/v1/terminals/me/health`. The server raises an offline
//! alarm when these stop. Every probe has a timeout; a failed probe is reported, never fatal.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use shared::api::{
    DeviceHealth, DeviceState, DiskHealth, HEALTH_MAX_DETAIL, HEALTH_MAX_REASON, HEALTH_MAX_REASONS,
    PrinterHealth, PrinterState, TerminalHealthReport,
};
use tokio::sync::watch;

use crate::config::{AudioSource, Config, VideoSource};
use crate::print::Ipp;
use crate::rest::{RestError, ServerApi};
use crate::view::Status;

const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Text cut to what the server accepts: control characters dropped, ≤ 200 characters.
fn detail(s: impl AsRef<str>) -> Option<String> {
    let t: String = s
        .as_ref()
        .chars()
        .filter(|c| !c.is_control() && !shared::validate::is_forbidden_format(*c))
        .take(HEALTH_MAX_DETAIL)
        .collect();
    Some(t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn ok(d: impl AsRef<str>) -> DeviceHealth {
    DeviceHealth { state: DeviceState::Ok, detail: detail(d) }
}

fn fault(d: impl AsRef<str>) -> DeviceHealth {
    DeviceHealth { state: DeviceState::Fault, detail: detail(d) }
}

/// The camera: a test source is always fine; a V4L2 device must open.
pub fn camera(cfg: &Config) -> DeviceHealth {
    match cfg.media.video_source {
        VideoSource::Test => ok("test source ok"),
        VideoSource::V4l2 => match std::fs::OpenOptions::new().read(true).open(&cfg.media.video_device) {
            Ok(_) => ok(&cfg.media.video_device),
            Err(e) => fault(format!("{}: {e}", cfg.media.video_device)),
        },
    }
}

/// The microphone: a test source is fine; otherwise an ALSA capture device must exist.
pub fn microphone(cfg: &Config) -> DeviceHealth {
    match cfg.media.audio_source {
        AudioSource::Test => ok("test source ok"),
        AudioSource::System => {
            let capture = std::fs::read_dir("/dev/snd").ok().and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| n.starts_with("pcmC") && n.ends_with('c'))
            });
            match capture {
                Some(dev) => ok(format!("/dev/snd/{dev}")),
                None => fault("no capture device in /dev/snd"),
            }
        }
    }
}

/// Maps an IPP `Get-Printer-Attributes` answer (state 3/4/5 and reasons) to the report.
pub fn printer_from_ipp(state: i32, reasons: &[String]) -> PrinterHealth {
    let state = match state {
        3 => PrinterState::Idle,
        4 => PrinterState::Processing,
        _ => PrinterState::Stopped,
    };
    let reasons = reasons
        .iter()
        .filter(|r| {
            !r.is_empty()
                && r.len() <= HEALTH_MAX_REASON
                && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && r.as_str() != "none"
        })
        .take(HEALTH_MAX_REASONS)
        .cloned()
        .collect();
    PrinterHealth { state, reasons, detail: None }
}

pub async fn printer(cfg: &Config) -> PrinterHealth {
    if !cfg.printer.enabled {
        return PrinterHealth { state: PrinterState::Disabled, reasons: vec![], detail: None };
    }
    let ipp = Ipp::new(&cfg.printer.uri);
    match tokio::time::timeout(PROBE_TIMEOUT, ipp.run(|i| i.printer())).await {
        Ok(Ok(info)) => printer_from_ipp(info.state, &info.reasons),
        Ok(Err(e)) => {
            PrinterHealth { state: PrinterState::Unreachable, reasons: vec![], detail: detail(e.to_string()) }
        }
        Err(_) => {
            PrinterHealth { state: PrinterState::Unreachable, reasons: vec![], detail: detail("timeout") }
        }
    }
}

/// The devices `scanimage -L` lists (``device `test:0' is a Noname frontend-tester``).
pub fn listed_scanners(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("device `"))
        .filter_map(|rest| rest.split_once('\'').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The scanner: disabled, busy scanning (not disturbed), or listed by `scanimage -L` (the
/// configured device, else any). A fault of the last scan is added to the detail.
pub async fn scanner(cfg: &Config, status: &Status) -> DeviceHealth {
    if !cfg.scanner.enabled {
        return DeviceHealth { state: DeviceState::Disabled, detail: None };
    }
    if status.scanner.state == "scanning" {
        return ok("scanning");
    }
    let last = status.scanner.fault.map(|f| format!("; last scan: {f}")).unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&cfg.scanner.program);
    cmd.arg("-L").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
    let out = match cmd.spawn() {
        Ok(child) => tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output()).await,
        Err(e) => return fault(format!("{}: {e}", cfg.scanner.program.display())),
    };
    let stdout = match out {
        Ok(Ok(o)) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(Err(e)) => return fault(format!("scanimage: {e}")),
        Err(_) => return fault("scanimage -L timed out"),
    };
    let listed = listed_scanners(&stdout);
    let found = match &cfg.scanner.device {
        // `test` names the first device of the backend (`test:0`).
        Some(d) => {
            listed.iter().find(|l| *l == d || l.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with(':')))
        }
        None => listed.first(),
    };
    match found {
        Some(d) => ok(format!("{d}{last}")),
        None => fault(format!("no scanner found{last}")),
    }
}

/// Free and total bytes of the file system holding `dir`.
pub fn disk(dir: &Path) -> Option<DiskHealth> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let free_bytes = s.f_bavail.saturating_mul(s.f_frsize);
    let total_bytes = s.f_blocks.saturating_mul(s.f_frsize);
    Some(DiskHealth {
        free_bytes: free_bytes.min(total_bytes),
        total_bytes,
        used_bytes: None,
        max_bytes: None,
        min_free_bytes: None,
        level: shared::api::DiskLevel::Ok,
    })
}

/// One complete report.
pub async fn collect(cfg: &Config, status: &Status, started: Instant) -> TerminalHealthReport {
    TerminalHealthReport {
        camera: camera(cfg),
        microphone: microphone(cfg),
        printer: printer(cfg).await,
        scanner: scanner(cfg, status).await,
        // Measured against `storage`, deleting what may go at the bound.
        disk: crate::storage::Storage::new(cfg).check(std::time::SystemTime::now()).disk,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: started.elapsed().as_secs(),
        in_call: status.phase == "in_call",
    }
}

async fn send(api: &ServerApi, report: &TerminalHealthReport) -> Result<(), RestError> {
    api.send_ok(Method::POST, "/api/v1/terminals/me/health", |b| b.json(report)).await.map(|_| ())
}

/// Sends a report every `interval` and whenever the connection comes (back) up, until aborted.
pub async fn run(cfg: Config, api: ServerApi, mut status: watch::Receiver<Status>) {
    let started = Instant::now();
    let every = Duration::from_secs(cfg.health.interval_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_connected = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let connected = status.borrow_and_update().connected;
                let rising = connected && !was_connected;
                was_connected = connected;
                if !rising {
                    continue;
                }
                tick.reset();
            }
        }
        let snapshot = status.borrow().clone();
        let report = collect(&cfg, &snapshot, started).await;
        match send(&api, &report).await {
            Ok(()) => tracing::debug!("health reported"),
            Err(e) => tracing::warn!(error = %e, "health report not delivered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipp_answers_map_to_the_report_and_hostile_reasons_are_dropped() {
        let p = printer_from_ipp(3, &[]);
        assert_eq!(p.state, PrinterState::Idle);
        let reasons: Vec<String> =
            ["media-empty-error", "Bad Reason", "", "none"].iter().map(|s| (*s).to_owned()).collect();
        let p = printer_from_ipp(5, &reasons);
        assert_eq!(p.state, PrinterState::Stopped);
        assert_eq!(p.reasons, vec!["media-empty-error".to_owned()]);
        assert_eq!(p.fault().as_deref(), Some("media-empty-error"));
        let many: Vec<String> = (0..40).map(|i| format!("r-{i}")).collect();
        assert_eq!(printer_from_ipp(4, &many).reasons.len(), HEALTH_MAX_REASONS);
    }

    #[test]
    fn scanimage_listing_is_parsed() {
        let out = "device `test:0' is a Noname frontend-tester virtual device\n\
                   device `test:1' is a Noname frontend-tester virtual device\n";
        assert_eq!(listed_scanners(out), vec!["test:0".to_owned(), "test:1".to_owned()]);
        assert!(listed_scanners("\nNo scanners were identified.\n").is_empty());
    }

    #[test]
    fn details_are_bounded_and_clean() {
        let d = detail(format!("a\u{1b}\u{202E}b{}", "x".repeat(500))).expect("text");
        assert_eq!(d.chars().count(), HEALTH_MAX_DETAIL);
        assert!(d.starts_with("ab"));
        assert!(detail("  ").is_none());
    }

    #[tokio::test]
    async fn a_report_of_test_sources_and_disabled_devices_is_valid() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = Config { state_dir: Some(dir.path().to_owned()), ..Config::default() };
        cfg.media.video_source = VideoSource::Test;
        cfg.media.audio_source = AudioSource::Test;
        cfg.printer.enabled = false;
        cfg.scanner.enabled = false;
        let r = collect(&cfg, &Status::default(), Instant::now()).await;
        assert_eq!(r.camera, ok("test source ok"));
        assert_eq!(r.printer.state, PrinterState::Disabled);
        assert_eq!(r.scanner.state, DeviceState::Disabled);
        let disk = r.disk.expect("statvfs of a temp dir");
        assert!(disk.total_bytes > 0 && disk.free_bytes <= disk.total_bytes);
        assert_eq!(disk.max_bytes, Some(cfg.storage.max_bytes), "measured against the bound");
        assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(r.validate(), Ok(()));
        // A camera that is not there is a fault.
        cfg.media.video_source = VideoSource::V4l2;
        cfg.media.video_device = dir.path().join("video9").display().to_string();
        assert_eq!(camera(&cfg).state, DeviceState::Fault);
    }
}
