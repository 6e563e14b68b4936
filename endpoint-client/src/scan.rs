//! The document scanner through `scanimage` (SANE) as a subprocess: sturdier than the SANE
//! bindings (their read errors are hidden), and a hung driver can be killed. Each page is
//! scanned to JPEG (`--format=jpeg`) straight into the spool's scratch area; faults
//! (jammed, no paper, cover open, busy) come back as [`ScanFault`] with a Chinese text for the
//! resident.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

use crate::config::ScannerConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "fault", content = "detail", rename_all = "snake_case")]
pub enum ScanFault {
    #[error("扫描仪卡纸，请打开扫描仪取出纸张后重试。")]
    Jammed,
    #[error("扫描仪中没有纸张，请放入材料后重试。")]
    NoDocs,
    #[error("扫描仪盖板未关好，请盖好后重试。")]
    CoverOpen,
    #[error("扫描仪忙，请稍候再试。")]
    Busy,
    #[error("未找到扫描仪，请联系工作人员。")]
    NoScanner,
    #[error("扫描超时，请联系工作人员。")]
    Timeout,
    #[error("扫描失败，请联系工作人员。({0})")]
    Failed(String),
    /// The terminal's storage is at its bound (`storage`): no more pages until space is back.
    #[error("{}", crate::storage::FULL_TEXT)]
    DiskFull,
}

impl ScanFault {
    /// Stable machine name (status, tests).
    pub fn code(&self) -> &'static str {
        match self {
            ScanFault::Jammed => "jammed",
            ScanFault::NoDocs => "no_docs",
            ScanFault::CoverOpen => "cover_open",
            ScanFault::Busy => "busy",
            ScanFault::NoScanner => "no_scanner",
            ScanFault::Timeout => "timeout",
            ScanFault::Failed(_) => "failed",
            ScanFault::DiskFull => "disk_full",
        }
    }
}

/// Maps `scanimage`'s exit status and messages to a fault. The exit status is SANE_Status
/// (3 busy, 6 jammed, 7 no docs, 8 cover open); some faults exit 0 with only a message.
pub fn classify(code: Option<i32>, stderr: &str) -> Option<ScanFault> {
    let s = stderr.to_ascii_lowercase();
    if s.contains("jammed") || code == Some(6) {
        Some(ScanFault::Jammed)
    } else if s.contains("out of documents") || code == Some(7) {
        Some(ScanFault::NoDocs)
    } else if s.contains("cover is open") || code == Some(8) {
        Some(ScanFault::CoverOpen)
    } else if s.contains("device busy") || code == Some(3) {
        Some(ScanFault::Busy)
    } else if s.contains("no scanners were identified") || s.contains("open of device") {
        Some(ScanFault::NoScanner)
    } else if code != Some(0) {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        Some(ScanFault::Failed(format!("exit {code:?}: {}", last.chars().take(200).collect::<String>())))
    } else {
        None
    }
}

/// The `scanimage` arguments for one JPEG page written to `out`.
pub fn args(cfg: &ScannerConfig, out: &Path) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![];
    if let Some(d) = &cfg.device {
        a.push("-d".into());
        a.push(d.into());
    }
    a.push("--format=jpeg".into());
    a.push(format!("--resolution={}", cfg.resolution_dpi).into());
    a.push(format!("--mode={}", cfg.mode).into());
    a.extend(cfg.extra_args.iter().map(Into::into));
    a.push("-o".into());
    a.push(out.into());
    a
}

/// How long `scanimage` may take to exit after it has reported a read fault. Some drivers (the
/// SANE `test` backend among them, about one run in 150) hang in their cancel path after a
/// jam; the fault is already known, so the process is killed rather than waited for.
const FAULT_GRACE: Duration = Duration::from_secs(2);

/// Whether a `scanimage` message line reports a device fault (`scanimage: sane_read: …`).
fn is_fault_line(line: &str) -> bool {
    line.contains("sane_read:") || line.contains("sane_start:")
}

/// Scans one page to `out` (JPEG).
pub async fn scan_page(cfg: &ScannerConfig, out: &Path) -> Result<(), ScanFault> {
    use tokio::io::AsyncBufReadExt;

    let mut cmd = tokio::process::Command::new(&cfg.program);
    cmd.args(args(cfg, out))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScanFault::NoScanner,
        _ => ScanFault::Failed(e.to_string()),
    })?;
    // stderr is read line by line as it comes, so a fault is seen while the process still runs.
    let (fault_tx, mut fault_rx) = tokio::sync::watch::channel(false);
    let collected = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = child.stderr.take().map(|err| {
        let collected = collected.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if is_fault_line(&line) {
                    let _ = fault_tx.send(true);
                }
                if let Ok(mut c) = collected.lock()
                    && c.len() < 16 * 1024
                {
                    c.push_str(&line);
                    c.push('\n');
                }
            }
        })
    });
    let deadline = tokio::time::sleep(Duration::from_secs(cfg.timeout_secs));
    tokio::pin!(deadline);
    let mut grace: Option<tokio::time::Instant> = None;
    let code = loop {
        tokio::select! {
            st = child.wait() => break st.map_err(|e| ScanFault::Failed(e.to_string()))?.code(),
            r = fault_rx.changed(), if grace.is_none() => {
                if r.is_ok() && *fault_rx.borrow() {
                    grace = Some(tokio::time::Instant::now() + FAULT_GRACE);
                } else if r.is_err() {
                    // stderr closed: only the exit status is left to wait for.
                    grace = Some(tokio::time::Instant::now() + Duration::from_secs(cfg.timeout_secs));
                }
            }
            () = async { if let Some(g) = grace { tokio::time::sleep_until(g).await } }, if grace.is_some() => {
                tracing::warn!("scanimage hangs after reporting a fault; killing it");
                let _ = child.kill().await;
                break None;
            }
            () = &mut deadline => {
                let _ = child.kill().await;
                let _ = std::fs::remove_file(out);
                return Err(ScanFault::Timeout);
            }
        }
    };
    // The last lines may still be in the pipe; a forked driver helper can keep it open, so the
    // wait for its end is bounded.
    if let Some(r) = reader {
        let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
    }
    let stderr = collected.lock().map(|c| c.clone()).unwrap_or_default();
    // Killed after a fault line: the fault is in the message, whatever the exit status.
    if let Some(f) = classify(code.or(Some(-1)), &stderr) {
        let _ = std::fs::remove_file(out);
        return Err(f);
    }
    match std::fs::metadata(out) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(ScanFault::Failed("scanimage wrote no image".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_messages_map_to_faults() {
        assert_eq!(
            classify(Some(6), "scanimage: sane_read: Document feeder jammed"),
            Some(ScanFault::Jammed)
        );
        assert_eq!(classify(Some(7), ""), Some(ScanFault::NoDocs));
        // scanimage 1.2 exits 0 on an open cover and only says so.
        assert_eq!(
            classify(Some(0), "scanimage: sane_read: Scanner cover is open"),
            Some(ScanFault::CoverOpen)
        );
        assert_eq!(classify(Some(3), "scanimage: sane_read: Device busy"), Some(ScanFault::Busy));
        assert_eq!(classify(Some(0), ""), None);
        assert!(matches!(classify(Some(1), "boom\n"), Some(ScanFault::Failed(m)) if m.contains("boom")));
        assert_eq!(ScanFault::Jammed.code(), "jammed");
    }

    /// A driver that reports a jam and then hangs in its cancel path (seen with the SANE `test`
    /// backend) is killed after the grace period and the jam is reported, not a timeout.
    #[tokio::test]
    async fn a_driver_that_hangs_after_a_jam_is_killed_and_the_jam_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("hanging-scanimage.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'scanimage: sane_read: Document feeder jammed' >&2\nexec sleep 600\n",
        )
        .expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let cfg = ScannerConfig { program: script, timeout_secs: 600, ..ScannerConfig::default() };
        let out = dir.path().join("p.jpg");
        assert_eq!(scan_page(&cfg, &out).await, Err(ScanFault::Jammed));
        assert!(!out.exists());
    }

    /// Against the SANE `test` backend when `scanimage` is installed (scripts/sane-test-setup.sh).
    #[tokio::test]
    async fn the_test_backend_scans_a_jpeg_and_reports_a_jam() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sane = dir.path().join("sane");
        std::fs::create_dir_all(&sane).expect("mkdir");
        std::fs::write(sane.join("dll.conf"), "test\n").expect("write");
        std::fs::write(sane.join("test.conf"), "number_of_devices 1\n").expect("write");
        let probe = std::process::Command::new("scanimage").arg("--version").output();
        if probe.is_err() {
            eprintln!(
                "scanimage not installed (scripts/install-system-deps.sh --terminal): only the mapping is tested"
            );
            return;
        }
        // SANE reads SANE_CONFIG_DIR from the environment of the subprocess.
        let wrapper = dir.path().join("scanimage.sh");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nSANE_CONFIG_DIR={} exec scanimage \"$@\"\n", sane.display()),
        )
        .expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let mut cfg = ScannerConfig {
            program: wrapper,
            device: Some("test".into()),
            resolution_dpi: 50,
            ..ScannerConfig::default()
        };
        let out = dir.path().join("p.jpg");
        scan_page(&cfg, &out).await.expect("scan");
        let bytes = std::fs::read(&out).expect("read");
        assert_eq!(&bytes[..3], b"\xff\xd8\xff", "a JPEG");

        cfg.extra_args = vec!["--read-return-value".into(), "SANE_STATUS_JAMMED".into()];
        let out2 = dir.path().join("p2.jpg");
        assert_eq!(scan_page(&cfg, &out2).await, Err(ScanFault::Jammed));
        assert!(!out2.exists(), "no half page is left behind");
        cfg.extra_args = vec!["--read-return-value".into(), "SANE_STATUS_NO_DOCS".into()];
        assert_eq!(scan_page(&cfg, &out2).await, Err(ScanFault::NoDocs));
    }
}
