//! One terminal process carries call after call: after each one, what the call held (GStreamer
//! pipelines, the peer connection, the call's tasks) is given back — the kiosk's status shows
//! the idle baseline again — and the runtime's task count does not creep up. The process's
//! resident memory after each call is printed (`MEASURE soak`); the 100-call figure is the
//! `terminal-soak` benchmark.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, Outcome, ServerMsg};

use crate::call::decoded;
use crate::helpers::{Endpoint, EndpointOpts, OperatorPeer, Server, WAIT, init_tracing, live_session};

/// Calls in the test (the benchmark makes 100); `BANGBAN_E2E_SOAK_CALLS` for more (diagnosis).
fn calls() -> usize {
    std::env::var("BANGBAN_E2E_SOAK_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

fn live(s: &Value, what: &str) -> i64 {
    s["live"][what].as_i64().unwrap_or(-1)
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_give_back_what_they_took() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let record_dir = tempfile::tempdir()?;
    // `BANGBAN_E2E_SOAK_ENV="K=V,K=V"`: more environment for the terminal (diagnosis).
    let env = std::env::var("BANGBAN_E2E_SOAK_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let opts = EndpointOpts { record_dir: Some(record_dir.path().to_path_buf()), env, ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let pid = ep.pid().context("endpoint pid")?;
    let idle = ep
        .wait_status("idle and connected", |s| {
            s["connected"] == true && s["phase"] == "idle" && s["live"]["pipelines"] == 0
        })
        .await?;
    assert_eq!((live(&idle, "peer_connections"), live(&idle, "call_tasks")), (0, 0), "{}", idle["live"]);
    // The baseline of runtime tasks is taken after the first call (lazily started parts).
    let mut baseline_tasks: Option<i64> = None;

    for n in 1..=calls() {
        let (op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
        let (peer, op_tx, mut op_rest) = OperatorPeer::call(&session, op).await?;
        let during = ep
            .wait_status("media both ways", |s| {
                s["phase"] == "in_call" && decoded(s, "camera") >= 15 && decoded(s, "audio") >= 10
            })
            .await?;
        // Two senders (camera, microphone) and three receivers (camera, screen, voice).
        assert!(live(&during, "pipelines") >= 4, "call {n}: {}", during["live"]);
        assert_eq!(live(&during, "peer_connections"), 1, "call {n}: {}", during["live"]);
        assert!(live(&during, "call_tasks") >= 5, "call {n}: {}", during["live"]);

        op_tx.send(ClientMsg::EndCall { session_id: session.session_id }).await?;
        tokio::time::timeout(WAIT, async {
            while let Some(m) = op_rest.recv().await {
                if matches!(m, ServerMsg::SessionEnded { .. }) {
                    return;
                }
            }
        })
        .await
        .context("session_ended")?;
        op_tx
            .send(ClientMsg::WrapUp {
                session_id: session.session_id,
                outcome: Outcome::Completed,
                notes: None,
            })
            .await?;
        ep.wait_status("rating screen", |s| s["phase"] == "rating").await?;
        ep.post("/api/rate", json!({ "level": "satisfied" })).await?;
        drop(peer);
        let after = ep
            .wait_status("everything of the call released", |s| {
                s["phase"] == "idle"
                    && s["live"]["pipelines"] == 0
                    && s["live"]["peer_connections"] == 0
                    && s["live"]["call_tasks"] == 0
            })
            .await?;
        let tasks = live(&after, "runtime_tasks");
        match baseline_tasks {
            None => baseline_tasks = Some(tasks),
            Some(b) => {
                // Short-lived tasks (a kiosk API connection, a heartbeat) come and go: wait for
                // the count to come back to the baseline rather than reading it once.
                ep.wait_status(&format!("call {n}: runtime tasks back to {b}"), |s| {
                    s["live"]["runtime_tasks"].as_i64().is_some_and(|t| t <= b)
                })
                .await?;
            }
        }
        eprintln!(
            "MEASURE soak call {n}: RSS {} KiB, runtime tasks {tasks}",
            rss_kib(pid).map_or("?".into(), |k| k.to_string())
        );
    }
    Ok(())
}
