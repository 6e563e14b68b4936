//! Cluster mode (#12): the node running the switchboard is killed (`kill -9`, a real process)
//! during a live call between the real kiosk and an operator, both on another node. That node
//! takes the lease over once it expires, carries the call on, and the parties resume into it;
//! the media, peer to peer, never stops. Real PostgreSQL (a fresh schema) and Redis (a fresh
//! key prefix).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shared::protocol::{ClientMsg, OperatorStateView, ServerMsg};

use crate::call::decoded;
use crate::helpers::{
    Endpoint, OperatorPeer, OperatorWs, Server, WAIT, init_tracing, live_session, pg_schema_url,
    target_binary,
};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A node as its own process, so that it can be killed.
struct NodeProcess {
    child: tokio::process::Child,
}

impl NodeProcess {
    async fn start(dir: &Path, db: &str, prefix: &str, node: &str) -> Result<(Self, String)> {
        // A free port: bound, read, released (the node binds it again at once).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        let child = tokio::process::Command::new(target_binary("signaling-server")?)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--demo", "--node-id", node])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--master-key-file")
            .arg(dir.join("master.key"))
            .args(["--database-url", db, "--redis-url", REDIS, "--redis-prefix", prefix])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let client = reqwest::Client::new();
        let end = Instant::now() + WAIT;
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            anyhow::ensure!(Instant::now() < end, "node {node} not ready at {base}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((Self { child }, base))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_killed_during_a_call_the_call_goes_on_through_another_node() -> Result<()> {
    init_tracing();
    let db = pg_schema_url().await?;
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir()?;
    // Node a starts first: it takes the lease and runs the switchboard.
    let (mut a, _a_base) = NodeProcess::start(dir.path(), &db, &prefix, "node-a").await?;
    let key = dir.path().join("master.key");
    let (db_b, prefix_b) = (db.clone(), prefix.clone());
    let b = Server::start_with(move |c| {
        c.database_url = db_b.clone();
        c.master_key_file = key.clone();
        c.cluster = Some(signaling_server::config::ClusterConfig {
            redis_url: REDIS.into(),
            node_id: "node-b".into(),
            advertise_url: "http://node-b.bangban.internal:8080".into(),
            prefix: prefix_b.clone(),
        });
    })
    .await?;

    // The kiosk and operator1 are both on node b; their call is run by node a.
    let (_point, code) = b.enrollment.first().context("demo terminal")?.clone();
    let op_token = b.login("operator1").await?;
    let mut ep = Endpoint::enroll_and_run(&b, &code).await?;
    let (op, session, _item) = live_session(&b, &mut ep, &op_token).await?;
    let (peer, _op_tx, _op_rest) = OperatorPeer::call(&session, op).await?;
    let mut connected = peer.connected.clone();
    tokio::time::timeout(WAIT, connected.wait_for(|c| *c))
        .await
        .context("operator peer never connected")??;
    ep.wait_status("frames at the kiosk", |s| s["phase"] == "in_call" && decoded(s, "camera") >= 15).await?;

    // kill -9 of the authority.
    a.child.start_kill()?;
    a.child.wait().await?;
    let killed = Instant::now();
    let kiosk_frames = decoded(&ep.status.borrow(), "camera");
    let op_frames = peer.video_decoded();

    // The operator's console reconnects (its socket was closed by node b's gateway when the
    // authority changed) and finds the same call.
    let mut op = loop {
        let mut op = OperatorWs::connect(&b, &op_token).await?;
        let resumed = op
            .expect("welcome", |m| match m {
                ServerMsg::Welcome { resumed, .. } => Some(resumed),
                _ => None,
            })
            .await;
        if matches!(resumed, Ok(true)) {
            break op;
        }
        // Reached node b before the take-over: it is told to reconnect.
        anyhow::ensure!(killed.elapsed() < WAIT, "the operator never resumed");
    };
    op.expect("still in the call", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: OperatorStateView::InCall }).then_some(())
    })
    .await?;
    let again = op
        .expect("the same session", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await?;
    assert_eq!(again, session.session_id);
    let resumed_after = killed.elapsed();
    // The kiosk resumes too and never left its call.
    ep.wait_status("kiosk reconnected, still in the call", |s| {
        s["connected"] == true && s["phase"] == "in_call"
    })
    .await?;
    op.expect("the kiosk is back", |m| matches!(m, ServerMsg::PeerReconnected { .. }).then_some(())).await?;
    eprintln!(
        "cluster-failover: kill -9 of the authority → operator resumed in {} ms",
        resumed_after.as_millis()
    );

    // Media flowed on both ways.
    ep.wait_status("more frames at the kiosk", |s| decoded(s, "camera") >= kiosk_frames + 30).await?;
    let end = Instant::now() + WAIT;
    while peer.video_decoded() < op_frames + 30 {
        anyhow::ensure!(Instant::now() < end, "the operator's video stopped");
        ep.status.changed().await?;
    }

    // The call ends normally, through the new authority.
    op.send(ClientMsg::EndCall { session_id: session.session_id }).await?;
    ep.wait_status("the kiosk leaves the call", |s| s["phase"] != "in_call").await?;
    Ok(())
}
