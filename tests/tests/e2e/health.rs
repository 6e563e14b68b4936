//! Terminal health: the real endpoint-client (CUPS queue `bangban-pdf`, SANE test scanner)
//! reports its heartbeat; supervisors see printer, scanner, disk and version. Killed, the
//! terminal falls silent and the offline alarm opens; started again, its first heartbeat
//! clears it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use shared::api::AlarmKind;
use shared::protocol::ServerMsg;

use crate::helpers::{Endpoint, EndpointOpts, OperatorWs, Server, WAIT, init_tracing, scripts_dir};

const QUEUE: &str = "bangban-pdf";
const OUT_DIR: &str = "/var/spool/cups-pdf/bangban";

/// Polls the supervisors' health board until the (only) active terminal's row satisfies `pred`.
async fn wait_row(server: &Server, token: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let board = server.get(token, "/api/v1/terminals/health").await?;
        let row = board
            .as_array()
            .and_then(|b| b.iter().find(|t| t["status"] == "active").cloned())
            .unwrap_or(Value::Null);
        if pred(&row) {
            return Ok(row);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}; last row: {row}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn open_offline(row: &Value) -> bool {
    row["alarms"].as_array().is_some_and(|a| a.iter().any(|x| x["kind"] == "offline"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_show_the_devices_and_silence_raises_then_clears_the_offline_alarm() -> Result<()> {
    init_tracing();
    let st = std::process::Command::new(scripts_dir().join("cups-setup.sh")).arg(OUT_DIR).output()?;
    if !st.status.success() {
        bail!("cups-setup.sh: {}", String::from_utf8_lossy(&st.stderr));
    }
    let tmp = tempfile::tempdir()?;
    let sane = tmp.path().join("sane");
    let out = std::process::Command::new(scripts_dir().join("sane-test-setup.sh")).arg(&sane).output()?;
    if !out.status.success() {
        bail!("sane-test-setup.sh: {}", String::from_utf8_lossy(&out.stderr));
    }
    let server = Server::start_with(|c| {
        c.terminal_offline_after_ms = 4_000;
        c.health_check_interval_ms = 200;
    })
    .await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let opts = EndpointOpts {
        printer_uri: Some(format!("http://127.0.0.1:631/printers/{QUEUE}")),
        scanner: Some(("test".into(), sane)),
        health_interval_secs: Some(1),
        ..Default::default()
    };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let sup = server.login("supervisor").await?;

    // Another e2e test may hold the shared queue for a moment: wait for it to be idle.
    let row = wait_row(&server, &sup, "a heartbeat with the printer idle", |r| {
        r["report"]["printer"]["state"] == "idle" && r["report"]["scanner"]["state"] == "ok"
    })
    .await?;
    let report = &row["report"];
    assert_eq!(row["online"], true, "{row}");
    assert_eq!(row["alarms"], serde_json::json!([]), "{row}");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["camera"]["state"], "ok");
    assert_eq!(report["camera"]["detail"], "test source ok");
    assert_eq!(report["microphone"]["state"], "ok");
    assert!(report["scanner"]["detail"].as_str().is_some_and(|d| d.starts_with("test:")), "{report}");
    let (free, total) = (report["disk"]["free_bytes"].as_u64(), report["disk"]["total_bytes"].as_u64());
    assert!(total.is_some_and(|t| t > 0) && free <= total, "{report}");
    assert_eq!(report["in_call"], false);

    // Power cut: no more heartbeats; after the threshold the alarm opens, and supervisors are
    // told over the socket (the test waits on that event).
    let mut sup_ws = OperatorWs::connect(&server, &sup).await?;
    ep.kill().await?;
    let pushed = sup_ws
        .expect("the offline alarm", |m| match m {
            ServerMsg::TerminalAlarm { alarm }
                if alarm.kind == AlarmKind::Offline && alarm.cleared_at.is_none() =>
            {
                Some(alarm)
            }
            _ => None,
        })
        .await?;
    let board = server.get(&sup, "/api/v1/terminals/health").await?;
    let row = board
        .as_array()
        .and_then(|b| b.iter().find(|t| t["status"] == "active").cloned())
        .context("the terminal's row")?;
    assert_eq!(row["online"], false, "{row}");
    assert!(open_offline(&row), "{row}");
    let alarm_id = Value::String(pushed.id.to_string());
    let open = server.get(&sup, "/api/v1/terminal-alarms?state=open").await?;
    assert!(open["alarms"].as_array().is_some_and(|a| a.iter().any(|x| x["id"] == alarm_id)), "{open}");

    // Back on: its first heartbeat clears the alarm.
    ep.restart().await?;
    sup_ws
        .expect("the alarm cleared", |m| match m {
            ServerMsg::TerminalAlarm { alarm } if alarm.id == pushed.id && alarm.cleared_at.is_some() => {
                Some(())
            }
            _ => None,
        })
        .await?;
    let row = wait_row(&server, &sup, "the heartbeat after the restart", |r| r["online"] == true).await?;
    assert!(!open_offline(&row), "{row}");
    assert_eq!(row["report"]["version"], env!("CARGO_PKG_VERSION"));
    let all = server.get(&sup, "/api/v1/terminal-alarms?state=all").await?;
    let cleared = all["alarms"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == alarm_id).cloned())
        .context("alarm in the history")?;
    assert!(cleared["cleared_at"].is_i64(), "{cleared}");
    Ok(())
}
