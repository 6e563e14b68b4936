//! Scanning at the kiosk during a call: the page lands in the session's materials, the
//! operator downloads exactly what the scanner produced; a jammed scanner is shown clearly.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shared::api::{AlarmKind, MaterialSource};
use shared::protocol::ServerMsg;

use crate::helpers::{
    Endpoint, EndpointOpts, OperatorWs, Server, init_tracing, live_session, scripts_dir, sha256_hex,
};

/// A private SANE configuration with the `test` backend (A4, colour).
pub(crate) fn sane_dir(root: &std::path::Path) -> Result<std::path::PathBuf> {
    let dir = root.join("sane");
    let out = std::process::Command::new(scripts_dir().join("sane-test-setup.sh")).arg(&dir).output()?;
    if !out.status.success() {
        bail!("sane-test-setup.sh: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(dir)
}

/// What `scanimage` gives for the same page and settings (the test backend is deterministic).
pub(crate) fn reference_scan(sane: &std::path::Path, out: &std::path::Path) -> Result<Vec<u8>> {
    let st = std::process::Command::new("scanimage")
        .env("SANE_CONFIG_DIR", sane)
        .args(["-d", "test", "--format=jpeg", "--resolution=150", "--mode=Color", "-o"])
        .arg(out)
        .status()?;
    if !st.success() {
        bail!("reference scanimage failed: {st}");
    }
    Ok(std::fs::read(out)?)
}

fn spooled_pages(ep: &Endpoint) -> usize {
    std::fs::read_dir(ep.state_dir().join("spool"))
        .map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_lands_in_the_sessions_materials_with_the_scanners_bytes() -> Result<()> {
    init_tracing();
    let tmp = tempfile::tempdir()?;
    let sane = sane_dir(tmp.path())?;
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let opts = EndpointOpts { scanner: Some(("test".into(), sane.clone())), ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (mut op, session, item) = live_session(&server, &mut ep, &op_token).await?;
    let slot =
        item["materials"].as_array().and_then(|m| m.first()).map(|m| m["id"].clone()).unwrap_or(Value::Null);

    // The resident presses 扫描 (the kiosk's API) for the item's first material.
    let t0 = Instant::now();
    let mut body = json!({ "session_id": session.session_id });
    if !slot.is_null() {
        body["slot_id"] = slot.clone();
    }
    ep.post("/api/scan", body).await?;

    // The operator is told the material arrived.
    let material = op
        .expect("material_changed", |m| match m {
            ServerMsg::MaterialChanged { material, .. } if material.source == MaterialSource::Scan => {
                Some(material)
            }
            _ => None,
        })
        .await?;
    let stored_after = t0.elapsed();
    assert_eq!(material.session_id, session.session_id);
    assert_eq!(material.content_type, "image/jpeg");
    if let Some(s) = slot.as_str() {
        assert_eq!(
            material.slot_id.map(|x| x.to_string()).as_deref(),
            Some(s),
            "filed under the chosen slot"
        );
    }

    // The operator lists the session's materials and downloads the scan.
    let list = server.get(&op_token, &format!("/api/v1/sessions/{}/materials", session.session_id)).await?;
    let listed = list.as_array().context("materials list")?;
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["id"], material.id.to_string());
    let content = server.get_bytes(&op_token, &format!("/api/v1/materials/{}/content", material.id)).await?;
    let reference = reference_scan(&sane, &tmp.path().join("reference.jpg"))?;
    assert_eq!(sha256_hex(&content), material.sha256, "the stored bytes match the stated hash");
    assert_eq!(sha256_hex(&content), sha256_hex(&reference), "the operator sees exactly the scanner's page");

    // The spool is emptied only after the final 204, and the kiosk says the page arrived.
    let status = ep
        .wait_status("upload finished at the kiosk", |s| {
            s["uploads"].as_array().is_some_and(Vec::is_empty)
                && s["notices"].as_array().is_some_and(|n| n.iter().any(|n| n["kind"] == "upload"))
        })
        .await?;
    assert_eq!(status["scanner"]["state"], "idle", "{status}");
    assert_eq!(spooled_pages(&ep), 0, "nothing left in the spool");
    eprintln!(
        "MEASURE scan pressed → material stored and announced: {} ms ({} bytes)",
        stored_after.as_millis(),
        content.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jammed_scanner_is_shown_and_nothing_is_uploaded() -> Result<()> {
    init_tracing();
    let tmp = tempfile::tempdir()?;
    let sane = sane_dir(tmp.path())?;
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let opts = EndpointOpts {
        scanner: Some(("test".into(), sane)),
        scanner_extra_args: vec!["--read-return-value".into(), "SANE_STATUS_JAMMED".into()],
        ..Default::default()
    };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (_op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
    ep.post("/api/scan", json!({})).await?;
    let status = ep.wait_status("scanner fault", |s| s["scanner"]["state"] == "fault").await?;
    assert_eq!(status["scanner"]["fault"], "jammed", "{status}");
    let text = status["scanner"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("卡纸"), "the resident reads 卡纸: {text}");
    assert!(
        status["notices"].as_array().is_some_and(|n| n.iter().any(|n| n["kind"] == "scan_fault")),
        "{status}"
    );
    assert_eq!(spooled_pages(&ep), 0);
    let list = server.get(&op_token, &format!("/api/v1/sessions/{}/materials", session.session_id)).await?;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    // The scanner can be used again (a second press is accepted).
    ep.post("/api/scan", json!({})).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_at_its_storage_bound_refuses_scans_in_chinese_and_the_console_has_an_alarm() -> Result<()>
{
    init_tracing();
    let tmp = tempfile::tempdir()?;
    let sane = sane_dir(tmp.path())?;
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    // A full disk: more free space wanted than any file system has.
    let opts = EndpointOpts {
        scanner: Some(("test".into(), sane)),
        storage: Some("max_bytes = 1048576\nmin_free_bytes = 1000000000000000000".into()),
        ..Default::default()
    };
    // Supervisors are told of alarms over the socket: the test waits on that event.
    let sup = server.login("supervisor").await?;
    let mut sup_ws = OperatorWs::connect(&server, &sup).await?;
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (_op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
    let refused = ep.post("/api/scan", json!({ "session_id": session.session_id })).await;
    let err = refused.expect_err("no scan at the bound").to_string();
    assert!(err.contains("存储空间已满") && err.contains("请联系工作人员"), "{err}");
    assert_eq!(spooled_pages(&ep), 0, "nothing scanned");

    // The heartbeat (sent on connecting) said `full`: an alarm, on the supervisor's board.
    let alarm = sup_ws
        .expect("the disk_space alarm", |m| match m {
            ServerMsg::TerminalAlarm { alarm } if alarm.kind == AlarmKind::DiskSpace => Some(alarm),
            _ => None,
        })
        .await?;
    assert!(alarm.detail.contains("存储空间已满"), "{alarm:?}");
    let board = server.get(&sup, "/api/v1/terminals/health").await?;
    let row = board
        .as_array()
        .and_then(|b| b.iter().find(|t| t["terminal_id"] == alarm.terminal_id.to_string()).cloned())
        .context("the terminal's row")?;
    assert!(row["alarms"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "disk_space")), "{row}");
    assert_eq!(row["report"]["disk"]["level"], "full", "{row}");
    assert_eq!(row["report"]["disk"]["max_bytes"], 1_048_576, "{row}");
    Ok(())
}
