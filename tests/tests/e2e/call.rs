//! A resident's call from the kiosk to operator1: ticket, ring, accept, WebRTC both ways with a
//! separate screen-share track, keyframe requests both ways, hang-up, wrap-up and the rating,
//! stored by the server; the terminal's recordings of what it received (IVF camera and screen,
//! Ogg voice).

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, Outcome, ServerMsg};

use crate::helpers::{Endpoint, EndpointOpts, OperatorPeer, OperatorWs, Server, WAIT, init_tracing};

/// Frames decoded at the kiosk on its remote tracks of `kind` (status output).
pub(crate) fn decoded(status: &Value, kind: &str) -> u64 {
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
    let record_dir = tempfile::tempdir()?;
    let opts = EndpointOpts { record_dir: Some(record_dir.path().to_path_buf()), ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    ep.wait_status("signaling connected", |s| s["connected"] == true && s["phase"] == "idle").await?;

    // The resident picks an item of a line operator1 serves (社会保障), through the kiosk's API.
    let item = ep.social_security_item().await?;
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
    // The operator's side offered VP8 first (as Chromium does): VP8 both ways.
    assert_eq!(status["call"]["video_codec"], "vp8");
    assert!(screen[0]["codec"] == "vp8" && camera[0]["codec"] == "vp8", "{remote:?}");

    // The kiosk reported how long the call took to show the operator (call_setup), once: the
    // server's /metrics (this host scrapes without a token) counts it.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = reqwest::get(format!("{}/metrics", server.base)).await?.text().await?;
        if text.lines().any(|l| l == "bangban_call_setup_seconds_count{side=\"terminal\"} 1") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no call_setup from the kiosk in /metrics");
        ep.status.changed().await?;
    }

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

    assert_eq!(peer.received_video_codec(), Some(endpoint_client::media::VideoCodec::Vp8));
    let s = keyframes_both_ways(&mut ep, &peer).await?;
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

    // What the terminal received is on disk: camera and screen as IVF (closed at the end of
    // the call, so the header holds the frame count), the voice as Ogg.
    let sid = session.session_id.to_string();
    let deadline = Instant::now() + WAIT;
    let (camera, screen) = loop {
        let camera = recorded_ivf(record_dir.path(), &sid, "camera")?;
        let screen = recorded_ivf(record_dir.path(), &sid, "screen")?;
        if let (Some(c), Some(s)) = (camera, screen)
            && c.0 > 0
            && s.0 > 0
        {
            break (c, s);
        }
        assert!(Instant::now() < deadline, "recordings not closed: camera {camera:?}, screen {screen:?}");
        ep.status.changed().await?;
    };
    assert!(camera.0 >= 30 && camera.0 == camera.1, "camera IVF (header, present): {camera:?}");
    assert!(screen.0 >= 5 && screen.0 == screen.1, "screen IVF (header, present): {screen:?}");
    let ogg = recorded(record_dir.path(), &sid, "audio", "ogg")?.context("audio recording")?;
    let ogg = std::fs::read(ogg)?;
    let pages = ogg.windows(4).filter(|w| w == b"OggS").count();
    assert!(pages >= 25, "Ogg Opus voice with pages: {pages}");
    drop(peer);
    Ok(())
}

/// Keyframes: the terminal asked for one on each video track when its decoder started, and the
/// operator's encoder answered; a PLI from the operator forces one in the terminal's encoder.
/// Returns the kiosk's status after that.
pub(crate) async fn keyframes_both_ways(ep: &mut Endpoint, peer: &OperatorPeer) -> Result<Value> {
    let s = ep.get("/api/status").await?;
    for r in s["call"]["remote"].as_array().context("remote tracks")? {
        if r["kind"] != "audio" {
            assert!(r["pli_sent"].as_u64() >= Some(1), "the terminal asks for a keyframe: {r}");
        }
    }
    let deadline = Instant::now() + WAIT;
    while peer.keyframe_requests_received() == 0 || peer.sent[0].forced_keyframes.load(Ordering::Relaxed) == 0
    {
        assert!(Instant::now() < deadline, "the operator's sender never saw the terminal's PLI");
        ep.status.changed().await?;
    }
    let forced_before = s["call"]["forced_keyframes"].as_u64().unwrap_or(0);
    let keyframes_before = s["call"]["sent_keyframes"].as_u64().unwrap_or(0);
    assert!(peer.request_keyframe().await?, "the operator has the terminal's camera track");
    let s = ep
        .wait_status("the terminal forced a keyframe after the operator's PLI", |s| {
            s["call"]["keyframe_requests"].as_u64() >= Some(1)
                && s["call"]["forced_keyframes"].as_u64() > Some(forced_before)
                && s["call"]["sent_keyframes"].as_u64() > Some(keyframes_before)
        })
        .await?;
    Ok(s)
}

/// The first part of the recording of `kind` in session `sid`.
pub(crate) fn recorded(
    dir: &std::path::Path,
    sid: &str,
    kind: &str,
    ext: &str,
) -> Result<Option<std::path::PathBuf>> {
    let prefix = format!("{sid}-{kind}-");
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(&format!("-000.{ext}")) {
            return Ok(Some(dir.join(name)));
        }
    }
    Ok(None)
}

/// (frames in the IVF header, frames present) of the recording of `kind`.
fn recorded_ivf(dir: &std::path::Path, sid: &str, kind: &str) -> Result<Option<(u32, u32)>> {
    let Some(path) = recorded(dir, sid, kind, "ivf")? else { return Ok(None) };
    Ok(endpoint_client::media::ivf_frames(&std::fs::read(path)?))
}
