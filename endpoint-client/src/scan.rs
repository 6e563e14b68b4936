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

/// Scans one page to `out` (JPEG).
pub async fn scan_page(cfg: &ScannerConfig, out: &Path) -> Result<(), ScanFault> {
    let mut cmd = tokio::process::Command::new(&cfg.program);
    cmd.args(args(cfg, out))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScanFault::NoScanner,
        _ => ScanFault::Failed(e.to_string()),
    })?;
    let out_res = tokio::time::timeout(Duration::from_secs(cfg.timeout_secs), child.wait_with_output())
        .await
        .map_err(|_| ScanFault::Timeout)?
        .map_err(|e| ScanFault::Failed(e.to_string()))?;
    let stderr = String::from_utf8_lossy(&out_res.stderr);
    if let Some(f) = classify(out_res.status.code(), &stderr) {
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
