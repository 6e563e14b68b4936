//! A resident's call from the kiosk to operator1: ticket, ring, accept, WebRTC both ways with a
//! separate screen-share track, hang-up, wrap-up and the rating, stored by the server.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, Outcome, ServerMsg};

use crate::helpers::{Endpoint, OperatorPeer, OperatorWs, Server, WAIT, init_tracing};

fn decoded(status: &Value, kind: &str) -> u64 {
    status["call"]["remote"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["kind"] == kind).map(|r| r["decoded"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_call_with_screen_share_and_rating() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let mut op = OperatorWs::connect(&server, &op_token).await?;
    op.send(ClientMsg::SetAvailability { available: true }).await?;
    op.expect("available", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: shared::protocol::OperatorStateView::Available })
            .then_some(())
    })
    .await?;

    // The kiosk: enroll with the printed code, run headless with test sources.
    let mut ep = Endpoint::enroll_and_run(&server, &code).await?;
    ep.wait_status("signaling connected", |s| s["connected"] == true && s["phase"] == "idle").await?;

    // The resident picks an item of a line operator1 serves (社会保障), through the kiosk's API.
    let items = ep.get("/api/items").await?;
    let item = items
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|i| i["line_name"] == "社会保障" && i["remote_allowed"] == true && i["active"] == true)
        })
        .context("a remote 社会保障 item")?;
    let t0 = Instant::now();
    ep.post("/api/ticket", json!({ "item_id": item["id"], "priority": "elderly" })).await?;

    let ticket = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket),
            _ => None,
        })
        .await?;
    assert_eq!(ticket.item_id.to_string(), item["id"].as_str().unwrap_or_default());
    op.send(ClientMsg::Accept { ticket_id: ticket.ticket_id }).await?;
    let session = op
        .expect("session_started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session),
            _ => None,
        })
        .await?;
    assert!(!session.polite, "the operator is the impolite peer");

    let (peer, op_tx, mut op_rest) = OperatorPeer::call(&session, op).await?;
    let mut connected = peer.connected.clone();
    tokio::time::timeout(WAIT, connected.wait_for(|c| *c))
        .await
        .context("operator peer never connected")??;
    let setup = t0.elapsed();

    // Frames flow both ways; the screen share arrives as its own track.
    let status = ep
        .wait_status("decoded camera, screen and audio at the kiosk", |s| {
            s["phase"] == "in_call"
                && decoded(s, "camera") >= 30
                && decoded(s, "screen") >= 5
                && decoded(s, "audio") >= 25
        })
        .await?;
    let remote = status["call"]["remote"].as_array().context("remote tracks")?;
    let screen: Vec<_> = remote.iter().filter(|r| r["kind"] == "screen").collect();
    let camera: Vec<_> = remote.iter().filter(|r| r["kind"] == "camera").collect();
    assert_eq!((screen.len(), camera.len()), (1, 1), "one camera and one separate screen track: {remote:?}");
    assert_eq!(screen[0]["stream_id"], "operator-screen");
    assert_ne!(screen[0]["track_id"], camera[0]["track_id"]);
    assert_eq!(status["operator_name"], session.operator_name.as_str());

    let deadline = Instant::now() + WAIT;
    loop {
        let (v, a) = (peer.video_packets.load(Ordering::Relaxed), peer.audio_packets.load(Ordering::Relaxed));
        if v >= 30 && a >= 25 {
            break;
        }
        assert!(Instant::now() < deadline, "operator received only {v} video and {a} audio packets");
        // Polled counters: wait for the next status line of the kiosk as the tick.
        ep.status.changed().await?;
    }
    let s = ep.get("/api/status").await?;
    eprintln!(
        "MEASURE call setup (ticket → operator connected) {} ms; kiosk ICE/DTLS connected after {} ms; kiosk sent {} video / {} audio frames; operator sent {:?} (camera, screen, mic)",
        setup.as_millis(),
        s["call"]["connected_after_ms"],
        s["call"]["sent_video_frames"],
        s["call"]["sent_audio_frames"],
        peer.sent_frames()
    );

    // Hang up, wrap up; the kiosk shows the rating screen and the rating is stored.
    op_tx.send(ClientMsg::EndCall { session_id: session.session_id }).await?;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(m) = op_rest.recv().await {
            if let ServerMsg::SessionEnded { session_id, .. } = m {
                return Some(session_id);
            }
        }
        None
    })
    .await?;
    assert_eq!(ended, Some(session.session_id));
    op_tx
        .send(ClientMsg::WrapUp { session_id: session.session_id, outcome: Outcome::Completed, notes: None })
        .await?;
    ep.wait_status("rating screen", |s| s["phase"] == "rating").await?;
    ep.post("/api/rate", json!({ "level": "very_satisfied" })).await?;
    ep.wait_status("back to idle after rating", |s| s["phase"] == "idle").await?;
    let sessions = server.get(&op_token, "/api/v1/sessions").await?;
    let rec = sessions
        .as_array()
        .and_then(|a| a.iter().find(|r| r["session_id"] == session.session_id.to_string()))
        .context("session record")?;
    assert_eq!(rec["rating"], "very_satisfied", "{rec}");
    drop(peer);
    Ok(())
}
