//! The terminal's device decisions, sans-IO (no tasks, no files, no sockets): whether a scan
//! may start and what the resident reads while it runs ([`ScanDesk`]), what an upload's or a
//! print job's progress tells the resident ([`upload_notice`], [`print_notice`]). The app loop
//! and the scan task are the drivers: they feed these the events and execute what comes out.
//! A scanned page itself never passes through here nor through the app loop: the scan task
//! writes it to the spool and wakes the uploader; only the count comes back.

use shared::api::PrintJobState;
use uuid::Uuid;

use crate::kiosk::{ActionError, Notice};
use crate::print::PrintProgress;
use crate::scan::ScanFault;
use crate::upload::UploadEvent;
use crate::view::ScanStatus;

/// Most pages one scan may ask for.
pub const MAX_PAGES: u32 = 50;

/// What the resident (or the operator's request) asked to scan, and where the kiosk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanAsk {
    /// The session of the call in progress, if any.
    pub current_session: Option<Uuid>,
    /// The kiosk's phase name (for the error when there is no call).
    pub phase: &'static str,
    /// The session the page asked for (it must be the current one).
    pub asked_session: Option<Uuid>,
    pub pages: u32,
}

/// A scan that may start: for this session, this many pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanJob {
    pub session_id: Uuid,
    pub pages: u32,
}

/// The scanner as the resident sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanDesk {
    status: ScanStatus,
}

const SCANNING_TEXT: &str = "正在扫描，请勿移动材料……";

fn notice(kind: &'static str, text: impl Into<String>) -> Notice {
    Notice { kind, text: text.into() }
}

impl ScanDesk {
    pub fn new(enabled: bool) -> Self {
        Self { status: ScanStatus { state: if enabled { "idle" } else { "disabled" }, ..Default::default() } }
    }

    pub fn status(&self) -> &ScanStatus {
        &self.status
    }

    /// Whether a scan may start: the scanner on and free, a call in progress and the one asked
    /// for, pages bounded to 1–[`MAX_PAGES`]; `storage` is asked last (it measures the disk)
    /// and refuses at the bound with its own text.
    pub fn start(
        &mut self,
        ask: ScanAsk,
        storage: impl FnOnce() -> Result<(), &'static str>,
    ) -> Result<(ScanJob, Notice), ActionError> {
        match self.status.state {
            "disabled" => return Err(ActionError::WrongPhase("scanner disabled")),
            "scanning" => return Err(ActionError::WrongPhase("scanning")),
            _ => {}
        }
        let Some(current) = ask.current_session else { return Err(ActionError::WrongPhase(ask.phase)) };
        if ask.asked_session.is_some_and(|s| s != current) {
            return Err(ActionError::WrongPhase("another session"));
        }
        storage().map_err(|t| ActionError::Refused(t.into()))?;
        let pages = ask.pages.clamp(1, MAX_PAGES);
        self.status = ScanStatus {
            state: "scanning",
            fault: None,
            message: Some(SCANNING_TEXT.into()),
            pages_done: 0,
            pages_wanted: pages,
        };
        Ok((ScanJob { session_id: current, pages }, notice("scan", SCANNING_TEXT)))
    }

    /// A page is in the spool.
    pub fn page(&mut self) {
        self.status.pages_done = self.status.pages_done.saturating_add(1);
    }

    pub fn finished(&mut self) -> Notice {
        let text = format!("扫描完成（{} 页），正在上传给受理员。", self.status.pages_done);
        self.status.state = "idle";
        self.status.message = Some(text.clone());
        notice("scan", text)
    }

    pub fn fault(&mut self, f: &ScanFault) -> Notice {
        self.status.state = "fault";
        self.status.fault = Some(f.code());
        self.status.message = Some(f.to_string());
        notice("scan_fault", f.to_string())
    }

    /// The screen went back to welcome: nothing of the last resident's scan stays (a scan in
    /// progress or a fault stays shown).
    pub fn screen_reset(&mut self) {
        if self.status.state == "idle" {
            self.status = ScanStatus { state: "idle", ..Default::default() };
        }
    }
}

/// What the resident reads when an upload ends: a scan stored or refused; a call's recording
/// is not the resident's business once they agreed (logged only).
pub fn upload_notice(ev: &UploadEvent) -> Option<Notice> {
    match ev {
        UploadEvent::Stored { entry, .. } if entry.content_type.starts_with("video/") => None,
        UploadEvent::Stored { entry, .. } => {
            Some(notice("upload", format!("「{}」已上传，受理员已收到。", entry.filename)))
        }
        UploadEvent::Rejected { entry, reason } if entry.content_type.starts_with("video/") => {
            tracing::error!(%reason, "the call's recording was refused by the server");
            None
        }
        UploadEvent::Rejected { entry, reason } => {
            tracing::error!(%reason, "scan refused by the server");
            Some(notice(
                "upload_error",
                format!("「{}」未能上传（通话已结束或材料不符），请联系工作人员。", entry.filename),
            ))
        }
    }
}

/// The resident's text for a print job's progress.
pub fn print_notice(p: &PrintProgress) -> Option<Notice> {
    use PrintJobState as S;
    let f = &p.filename;
    let text = match p.state {
        S::Claimed | S::Queued if p.reason.is_none() => format!("正在准备打印「{f}」，请稍候。"),
        S::Printing if p.reason.is_none() => format!("正在打印「{f}」，请稍候。"),
        S::Claimed | S::Queued | S::Printing => {
            format!("打印机{}，请工作人员处理。", printer_reason_zh(p.reason.as_deref().unwrap_or("")))
        }
        S::Completed => format!("「{f}」已打印完成，请在打印机出纸口取走。"),
        S::Failed => {
            format!(
                "「{f}」打印失败：{}。请联系工作人员。",
                printer_reason_zh(p.reason.as_deref().unwrap_or(""))
            )
        }
        S::Cancelled => format!("「{f}」的打印已取消。"),
        _ => return None,
    };
    Some(notice("print", text))
}

/// Chinese for the usual IPP printer reasons.
pub fn printer_reason_zh(reason: &str) -> String {
    match reason {
        "media-empty" | "media-needed" => "缺纸".into(),
        "media-jam" => "卡纸".into(),
        "door-open" | "cover-open" => "盖板未关".into(),
        "toner-empty" | "marker-supply-empty" => "墨粉用尽".into(),
        "printer-not-accepting" | "printer-refused" => "暂停服务".into(),
        "checksum-mismatch" => "文件校验失败".into(),
        "job-stalled" => "长时间没有进展，已自动取消".into(),
        "printer-stopped" => "已停止工作".into(),
        "" => "出现故障".into(),
        other => format!("出现故障（{other}）"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(session: Option<u128>, asked: Option<u128>, pages: u32) -> ScanAsk {
        ScanAsk {
            current_session: session.map(Uuid::from_u128),
            phase: "idle",
            asked_session: asked.map(Uuid::from_u128),
            pages,
        }
    }

    #[test]
    fn a_scan_starts_only_in_a_call_on_a_free_scanner_with_room_on_disk() {
        let mut off = ScanDesk::new(false);
        assert_eq!(
            off.start(ask(Some(1), None, 1), || Ok(())),
            Err(ActionError::WrongPhase("scanner disabled"))
        );
        let mut desk = ScanDesk::new(true);
        assert_eq!(desk.start(ask(None, None, 1), || Ok(())), Err(ActionError::WrongPhase("idle")));
        assert_eq!(
            desk.start(ask(Some(1), Some(2), 1), || Ok(())),
            Err(ActionError::WrongPhase("another session"))
        );
        // The disk is asked last, and its refusal is the resident's text.
        let r = desk.start(ask(Some(1), None, 1), || Err("终端存储空间已满"));
        assert_eq!(r, Err(ActionError::Refused("终端存储空间已满".into())));
        assert_eq!(desk.status().state, "idle", "a refused scan changes nothing");
        // Hostile page counts are bounded.
        let (job, n) = desk.start(ask(Some(1), Some(1), u32::MAX), || Ok(())).expect("starts");
        assert_eq!(job, ScanJob { session_id: Uuid::from_u128(1), pages: MAX_PAGES });
        assert_eq!(n.kind, "scan");
        assert_eq!(desk.status().state, "scanning");
        assert_eq!(desk.start(ask(Some(1), None, 1), || Ok(())), Err(ActionError::WrongPhase("scanning")));
        let (job, _) = ScanDesk::new(true).start(ask(Some(1), None, 0), || Ok(())).expect("starts");
        assert_eq!(job.pages, 1);
    }

    #[test]
    fn pages_finish_and_faults_read_as_the_resident_sees_them_and_reset_clears_them() {
        let mut desk = ScanDesk::new(true);
        desk.start(ask(Some(1), None, 2), || Ok(())).expect("starts");
        desk.page();
        desk.page();
        let n = desk.finished();
        assert_eq!(n.text, "扫描完成（2 页），正在上传给受理员。");
        assert_eq!((desk.status().state, desk.status().pages_done), ("idle", 2));
        desk.screen_reset();
        assert_eq!(desk.status(), &ScanStatus { state: "idle", ..Default::default() });

        desk.start(ask(Some(1), None, 1), || Ok(())).expect("starts again");
        let n = desk.fault(&ScanFault::DiskFull);
        assert_eq!(n.kind, "scan_fault");
        assert!(n.text.contains("存储空间已满"));
        assert_eq!((desk.status().state, desk.status().fault), ("fault", Some("disk_full")));
        desk.screen_reset();
        assert_eq!(desk.status().state, "fault", "a fault stays shown until the next scan");
        assert!(desk.start(ask(Some(1), None, 1), || Ok(())).is_ok(), "a faulty scanner may be tried again");
    }

    #[test]
    fn the_resident_reads_every_reason_the_terminal_reports_in_chinese() {
        assert_eq!(printer_reason_zh("job-stalled"), "长时间没有进展，已自动取消");
        assert_eq!(printer_reason_zh("printer-stopped"), "已停止工作");
        assert_eq!(printer_reason_zh("media-jam"), "卡纸");
        assert_eq!(printer_reason_zh("something-new"), "出现故障（something-new）");
    }

    #[test]
    fn uploads_tell_the_resident_of_scans_but_not_of_the_recording() {
        let entry = |ct: &str| crate::spool::Entry {
            id: Uuid::from_u128(1),
            session_id: Uuid::from_u128(2),
            slot_id: None,
            filename: "扫描件-1.jpg".into(),
            file: "x.jpg".into(),
            content_type: ct.into(),
            size: 1,
            sha256: String::new(),
            created_at_ms: 0,
            upload_url: None,
            attempts: 0,
            last_error: None,
            recording: None,
        };
        let stored = upload_notice(&UploadEvent::Stored { entry: entry("image/jpeg"), material_id: None });
        assert_eq!(stored.map(|n| n.kind), Some("upload"));
        let refused =
            upload_notice(&UploadEvent::Rejected { entry: entry("image/jpeg"), reason: "410".into() })
                .expect("told");
        assert!(refused.text.contains("请联系工作人员"));
        assert_eq!(
            upload_notice(&UploadEvent::Stored { entry: entry("video/webm"), material_id: None }),
            None
        );
        assert_eq!(
            upload_notice(&UploadEvent::Rejected { entry: entry("video/webm"), reason: "x".into() }),
            None
        );
    }
}
