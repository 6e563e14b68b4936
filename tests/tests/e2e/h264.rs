//! An operator's side that prefers H.264 (its offer lists H.264 before VP8, as a console may for
//! hardware decoding): the terminal answers in H.264, sends its camera in H.264, decodes the
//! operator's H.264 camera and screen share, answers and sends keyframe requests, and records
//! what it receives as an H.264 byte stream whose keyframes carry their parameter sets.

use std::time::Instant;

use anyhow::{Context, Result};
use endpoint_client::media::{VideoCodec, nal_unit_types};

use crate::call::{decoded, keyframes_both_ways, recorded};
use crate::helpers::{Endpoint, EndpointOpts, OperatorPeer, Server, WAIT, init_tracing, live_session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_preferring_h264_gets_h264_both_ways() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let record_dir = tempfile::tempdir()?;
    let opts = EndpointOpts { record_dir: Some(record_dir.path().to_path_buf()), ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (op, session, _item) = live_session(&server, &mut ep, &op_token).await?;

    let (peer, _op_tx, _op_rest) =
        OperatorPeer::call_preferring(&session, op, &[VideoCodec::H264, VideoCodec::Vp8], VideoCodec::H264)
            .await?;
    let mut connected = peer.connected.clone();
    tokio::time::timeout(WAIT, connected.wait_for(|c| *c))
        .await
        .context("operator peer never connected")??;

    // The kiosk decodes the operator's H.264 camera and screen share and sends H.264 itself.
    let status = ep
        .wait_status("decoded H.264 camera and screen at the kiosk", |s| {
            decoded(s, "camera") >= 30 && decoded(s, "screen") >= 5 && decoded(s, "audio") >= 25
        })
        .await?;
    assert_eq!(status["call"]["video_codec"], "h264", "the terminal's camera follows the offer's preference");
    let remote = status["call"]["remote"].as_array().context("remote tracks")?;
    for r in remote.iter().filter(|r| r["kind"] != "audio") {
        assert_eq!(r["codec"], "h264", "{r}");
    }
    let deadline = Instant::now() + WAIT;
    while peer.video_decoded() < 30 {
        assert!(Instant::now() < deadline, "the operator decoded only {} frames", peer.video_decoded());
        // Polled counter: the kiosk's next status line is the tick.
        ep.status.changed().await?;
    }
    assert_eq!(peer.received_video_codec(), Some(VideoCodec::H264));
    keyframes_both_ways(&mut ep, &peer).await?;

    // What the kiosk recorded is H.264: an Annex B stream whose first IDR frame has SPS and PPS
    // before it, then delta frames.
    let sid = session.session_id.to_string();
    for kind in ["camera", "screen"] {
        let path =
            recorded(record_dir.path(), &sid, kind, "h264")?.with_context(|| format!("{kind} recording"))?;
        let types = nal_unit_types(&std::fs::read(&path)?);
        let idr = types.iter().position(|&t| t == 5).with_context(|| format!("{kind}: no IDR frame"))?;
        let head = &types[..idr];
        assert!(head.contains(&7) && head.contains(&8), "{kind}: SPS and PPS before the first IDR: {head:?}");
        assert!(types.iter().filter(|&&t| t == 1).count() >= 4, "{kind}: delta frames follow");
    }
    drop(peer);
    Ok(())
}

/// A terminal configured for VP8 only still talks to an operator that prefers H.264: it answers
/// with VP8, the offer's second choice, and sends VP8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_only_terminal_falls_back_to_the_offers_second_choice() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let webrtc = "udp_addrs = [\"127.0.0.1:0\"]\nuse_server_ice = false\nvideo_codecs = [\"vp8\"]\n";
    let opts = EndpointOpts { webrtc: Some(webrtc.into()), ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
    // The operator's side offers H.264 first and sends VP8, the codec the answer settles on.
    let (peer, _op_tx, _op_rest) =
        OperatorPeer::call_preferring(&session, op, &[VideoCodec::H264, VideoCodec::Vp8], VideoCodec::Vp8)
            .await?;
    let status = ep.wait_status("decoded VP8 camera at the kiosk", |s| decoded(s, "camera") >= 30).await?;
    assert_eq!(status["call"]["video_codec"], "vp8");
    let deadline = Instant::now() + WAIT;
    while peer.video_decoded() < 30 {
        assert!(Instant::now() < deadline, "the operator decoded only {} frames", peer.video_decoded());
        ep.status.changed().await?;
    }
    assert_eq!(peer.received_video_codec(), Some(VideoCodec::Vp8));
    drop(peer);
    Ok(())
}
