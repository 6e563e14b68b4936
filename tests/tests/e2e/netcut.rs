//! The service point loses its network for 10 s in the middle of a call and gets it back: the
//! same session carries on and pictures flow again both ways.
//!
//! Everything of the terminal goes through a userspace proxy (this kernel has no netem):
//! signaling (HTTP + WebSocket) through its TCP side, media through its UDP side — the
//! terminal uses relay-only ICE (`webrtc.ice_transport_policy = "relay"`) with the TURN server
//! (a private coturn) reached through the proxy, so no media path can bypass it. The operator
//! (acceptance center) keeps its network. A cut drops UDP and stalls TCP, as a pulled cable.
//! Before and after the cut the terminal's link is a modest one: 20 ms each way, 1 % of the
//! media datagrams lost.
//!
//! Two cuts: one that leaves the TCP connections open (they just stall, and the WebSocket
//! survives 10 s of silence), and one that also drops them (a NAT or firewall forgetting its
//! state): the terminal reconnects, the server resumes it within its 60 s window and tells
//! the operator (`peer_disconnected`, then `peer_reconnected`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use shared::protocol::ServerMsg;

use crate::helpers::{Endpoint, EndpointOpts, OperatorPeer, Server, WAIT, init_tracing, live_session};
use crate::netproxy::{Impairment, NetProxy};
use crate::turn::Coturn;

/// The outage under test.
const OUTAGE: Duration = Duration::from_secs(10);
/// Recovery must come well inside the server's 60 s resume window.
const RECOVERY: Duration = Duration::from_secs(45);

fn decoded(status: &Value, kind: &str) -> u64 {
    status["call"]["remote"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["kind"] == kind).map(|r| r["decoded"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Waits, on the terminal's status ticks, until `pred` holds for the terminal's status and
/// the operator peer.
async fn wait_both(
    ep: &mut Endpoint,
    peer: &OperatorPeer,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Value, &OperatorPeer) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let s = ep.status.borrow().clone();
        if pred(&s, peer) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}; last status: {s}");
        }
        tokio::time::timeout(Duration::from_secs(5), ep.status.changed())
            .await
            .context("no status line from the terminal")??;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_recovers_after_a_ten_second_network_cut() -> Result<()> {
    network_cut(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_resumes_after_a_network_cut_that_drops_the_connections() -> Result<()> {
    network_cut(true).await
}

async fn network_cut(drop_connections: bool) -> Result<()> {
    init_tracing();
    let turn = Coturn::start().await?;
    let mut proxy = NetProxy::bind().await?;
    let server = Server::start_with_ice(signaling_server::ice::IceConfig {
        stun_urls: vec![],
        turn_urls: vec![format!("turn:127.0.0.1:{}?transport=udp", proxy.udp_addr.port())],
        turn_secret: Some(turn.secret.clone()),
        turn_ttl_secs: 3600,
    })
    .await?;
    proxy.run(server.addr(), turn.addr)?;
    proxy.set_impairment(Impairment { delay: Duration::from_millis(20), loss: 0.01 });

    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    let opts = EndpointOpts {
        server_url: Some(format!("http://{}", proxy.tcp_addr)),
        webrtc: Some(
            "udp_addrs = [\"127.0.0.1:0\"]\nuse_server_ice = true\nice_transport_policy = \"relay\"\n\
             ice_restart_after_secs = 2\n"
                .into(),
        ),
        ..Default::default()
    };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
    let (peer, _op_tx, mut op_rest) = OperatorPeer::call(&session, op).await?;

    // The call is up and media flows both ways, through the proxy.
    let before = wait_both(&mut ep, &peer, "frames both ways", WAIT, |s, p| {
        decoded(s, "camera") >= 30 && p.video_decoded() >= 30
    })
    .await?;
    let (up0, down0) = proxy.udp_bytes();
    assert!(
        up0 > 10_000 && down0 > 10_000,
        "the terminal's media goes through the proxy (relay only): {up0} B up, {down0} B down"
    );
    assert_eq!(before["call"]["session_id"], session.session_id.to_string());

    // Cut for 10 s.
    let cam_at_cut = decoded(&before, "camera");
    let op_at_cut = peer.video_decoded();
    let dropped_before = proxy.counters().udp_dropped.load(Ordering::Relaxed);
    if drop_connections {
        proxy.cut_dropping_connections();
    } else {
        proxy.cut();
    }
    let cut_at = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let during = ep.status.borrow().clone();
    let (cam_during, op_during) = (decoded(&during, "camera"), peer.video_decoded());
    let dropped = proxy.counters().udp_dropped.load(Ordering::Relaxed) - dropped_before;
    proxy.restore();
    let restored_at = Instant::now();
    // At 15 fps, 10 s of a working path would be ~150 frames; what was in flight (jitter
    // buffers, the last status line) is a few.
    assert!(dropped > 100, "the proxy dropped the terminal's media during the cut ({dropped} datagrams)");
    assert!(
        cam_during < cam_at_cut + 30 && op_during < op_at_cut + 30,
        "no pictures during the cut: terminal {cam_at_cut}→{cam_during}, operator {op_at_cut}→{op_during}"
    );

    // Pictures come back both ways, in the same session.
    let after = wait_both(&mut ep, &peer, "frames both ways after the cut", RECOVERY, |s, p| {
        decoded(s, "camera") >= cam_during + 30 && p.video_decoded() >= op_during + 30
    })
    .await?;
    let recovered = restored_at.elapsed();
    assert_eq!(after["phase"], "in_call", "{after}");
    assert_eq!(after["call"]["session_id"], session.session_id.to_string(), "the same session goes on");
    let (up1, down1) = proxy.udp_bytes();
    assert!(up1 > up0 && down1 > down0, "media flows through the proxy again");
    if drop_connections {
        // The server noticed the terminal's socket go, kept the session, and told the operator
        // when the terminal came back.
        let (mut gone, mut back) = (false, false);
        let deadline = tokio::time::Instant::now() + WAIT;
        while !back {
            let m = tokio::time::timeout_at(deadline, op_rest.recv())
                .await
                .context("no peer_reconnected for the operator")?
                .context("operator socket closed")?;
            match m {
                ServerMsg::PeerDisconnected { session_id, .. } if session_id == session.session_id => {
                    gone = true
                }
                ServerMsg::PeerReconnected { session_id } if session_id == session.session_id => back = true,
                ServerMsg::SessionEnded { session_id, .. } => bail!("the server ended session {session_id}"),
                _ => {}
            }
        }
        assert!(gone, "peer_disconnected came before peer_reconnected");
        assert_eq!(after["connected"], true, "{after}");
    }
    while let Ok(m) = op_rest.try_recv() {
        if let ServerMsg::SessionEnded { session_id, .. } = m {
            bail!("the server ended session {session_id} during the outage");
        }
    }
    eprintln!(
        "MEASURE network cut{} {} ms: pictures back {} ms after restore (terminal ICE restarts {}, operator answered {} restart offers; terminal sent {} PLI)",
        if drop_connections { " (connections dropped)" } else { "" },
        restored_at.duration_since(cut_at).as_millis(),
        recovered.as_millis(),
        after["call"]["ice_restarts"],
        peer.offers_answered.load(Ordering::Relaxed),
        after["call"]["remote"]
            .as_array()
            .map(|a| a.iter().map(|r| r["pli_sent"].as_u64().unwrap_or(0)).sum::<u64>())
            .unwrap_or(0),
    );
    drop(peer);
    Ok(())
}
