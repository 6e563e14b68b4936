//! Cluster mode (#12): the node running the switchboard is killed (`kill -9`, a real process)
//! during a live call between the real kiosk and an operator, both on another node. That node
//! takes the lease over once it expires, carries the call on, and the parties resume into it;
//! the media, peer to peer, never stops. Real PostgreSQL (a fresh schema) and Redis (a fresh
//! key prefix).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use shared::api::{MaterialSource, PrintJobState};
use shared::protocol::{ClientMsg, OperatorStateView, ServerMsg};

use crate::call::decoded;
use crate::helpers::{
    Endpoint, EndpointOpts, OperatorPeer, OperatorWs, Server, WAIT, init_tracing, live_session,
    pg_schema_url, scripts_dir, sha256_hex, target_binary,
};
use crate::netproxy::NetProxy;
use crate::{print, scan};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A node as its own process, so that it can be killed.
struct NodeProcess {
    child: tokio::process::Child,
}

/// How a node process is started.
struct NodeOpts<'a> {
    /// Its data directory (default `<dir>/data`).
    data_dir: Option<PathBuf>,
    /// `--uploads-dir`: the staging volume every node mounts.
    uploads_dir: Option<&'a Path>,
    /// `--redis-url` (default the machine's Redis).
    redis: &'a str,
    /// More flags.
    extra: Vec<String>,
    /// Where its log goes (default nowhere).
    log: Option<PathBuf>,
}

impl Default for NodeOpts<'_> {
    fn default() -> Self {
        Self { data_dir: None, uploads_dir: None, redis: REDIS, extra: Vec::new(), log: None }
    }
}

impl NodeProcess {
    async fn start(dir: &Path, db: &str, prefix: &str, node: &str) -> Result<(Self, String)> {
        Self::start_with(dir, db, prefix, node, NodeOpts::default()).await
    }

    /// Starts `signaling-server` as node `node` (demo data, the master key `<dir>/master.key`)
    /// and waits until `/readyz` answers 200.
    async fn start_with(
        dir: &Path,
        db: &str,
        prefix: &str,
        node: &str,
        opts: NodeOpts<'_>,
    ) -> Result<(Self, String)> {
        // A free port: bound, read, released (the node binds it again at once).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = tokio::process::Command::new(target_binary("signaling-server")?);
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--demo", "--node-id", node])
            .arg("--data-dir")
            .arg(opts.data_dir.unwrap_or_else(|| dir.join("data")))
            .arg("--master-key-file")
            .arg(dir.join("master.key"))
            .args(["--database-url", db, "--redis-url", opts.redis, "--redis-prefix", prefix]);
        if let Some(u) = opts.uploads_dir {
            cmd.arg("--uploads-dir").arg(u);
        }
        cmd.args(&opts.extra);
        let stderr = match &opts.log {
            Some(path) => std::process::Stdio::from(std::fs::File::create(path)?),
            None => std::process::Stdio::null(),
        };
        let child = cmd.stdout(std::process::Stdio::null()).stderr(stderr).kill_on_drop(true).spawn()?;
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

/// A load balancer that routes by path, as nginx in front of the nodes may: each TCP
/// connection goes, whole, to `ws` when its first request is the WebSocket upgrade (`GET /ws`)
/// and to `rest` otherwise. Counts the connections sent to each.
struct PathRouter {
    url: String,
    to_ws: Arc<AtomicU64>,
    to_rest: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PathRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PathRouter {
    async fn start(ws: std::net::SocketAddr, rest: std::net::SocketAddr) -> Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (to_ws, to_rest) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (cw, cr) = (to_ws.clone(), to_rest.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (cw, cr) = (cw.clone(), cr.clone());
                tokio::spawn(async move {
                    // The request line (bounded), then the whole connection to one node.
                    let mut head = Vec::with_capacity(1024);
                    let mut buf = [0u8; 1024];
                    while !head.contains(&b'\n') && head.len() < 8192 {
                        match inbound.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let upgrade = head.starts_with(b"GET /ws ") || head.starts_with(b"GET /ws?");
                    let target = if upgrade {
                        cw.fetch_add(1, Ordering::Relaxed);
                        ws
                    } else {
                        cr.fetch_add(1, Ordering::Relaxed);
                        rest
                    };
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    if outbound.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Ok(Self { url, to_ws, to_rest, task })
    }
}

/// A counter's or gauge's value in a node's `/metrics` (loopback scrapes need no token).
async fn metric(base: &str, series: &str) -> Result<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await?.error_for_status()?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0))
}

fn socket_addr(base: &str) -> Result<std::net::SocketAddr> {
    Ok(base.trim_start_matches("http://").parse()?)
}

/// #12, the first test: three nodes of one deployment (real processes for nodes a and
/// c, node b in this process; one PostgreSQL schema, one Redis prefix, one staging volume and
/// one materials store that every node mounts). The real kiosk keeps its WebSocket on node a
/// and sends everything else (enrolment, REST, its scan's tus upload, the print job's claim and
/// download) through node c — a load balancer routing by path —; the operator is on node b.
/// A call with media decoded both ways, a scan that lands in the session's materials with the
/// scanner's bytes (uploaded through node c only), and a PDF the operator sends that the
/// kiosk prints through CUPS (cups-pdf), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_a_call_a_scan_through_a_third_node_and_a_print_job() -> Result<()> {
    init_tracing();
    let st = std::process::Command::new(scripts_dir().join("cups-setup.sh")).arg(print::OUT_DIR).output()?;
    anyhow::ensure!(st.status.success(), "cups-setup.sh: {}", String::from_utf8_lossy(&st.stderr));
    let db = pg_schema_url().await?;
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir()?;
    let sane = scan::sane_dir(dir.path())?;
    let uploads = dir.path().join("uploads");
    let store = dir.path().join("materials");
    std::fs::create_dir_all(&uploads)?;
    std::fs::create_dir_all(&store)?;
    // Each node's `<data-dir>/materials` is the one shared store (a volume every node mounts).
    let data_dir = |node: &str| -> Result<PathBuf> {
        let d = dir.path().join(format!("data-{node}"));
        std::fs::create_dir_all(&d)?;
        std::os::unix::fs::symlink(&store, d.join("materials"))?;
        Ok(d)
    };
    let opts =
        |d: PathBuf| NodeOpts { data_dir: Some(d), uploads_dir: Some(&uploads), ..NodeOpts::default() };
    // Node a starts first: it takes the lease and runs the switchboard.
    let (_a, a_base) =
        NodeProcess::start_with(dir.path(), &db, &prefix, "node-a", opts(data_dir("a")?)).await?;
    let (_c, c_base) =
        NodeProcess::start_with(dir.path(), &db, &prefix, "node-c", opts(data_dir("c")?)).await?;
    let (b_data, b_uploads) = (data_dir("b")?, uploads.clone());
    let b = node_b(&db, &prefix, dir.path(), move |c| {
        c.data_dir = b_data.clone();
        c.uploads_dir = Some(b_uploads.clone());
    })
    .await?;
    let router = PathRouter::start(socket_addr(&a_base)?, socket_addr(&c_base)?).await?;

    // The kiosk (enrolled and served through the router) and operator1 on node b.
    let (_point, code) = b.enrollment.first().context("demo terminal")?.clone();
    let op_token = b.login("operator1").await?;
    let ep_opts = EndpointOpts {
        server_url: Some(router.url.clone()),
        scanner: Some(("test".into(), sane.clone())),
        printer_uri: Some(format!("http://127.0.0.1:631/printers/{}", print::QUEUE)),
        ..Default::default()
    };
    let mut ep = Endpoint::enroll_and_run_with(&b, &code, ep_opts).await?;
    let (op, session, item) = live_session(&b, &mut ep, &op_token).await?;
    // Each node has its own party: the kiosk's socket on node a, the operator's on node b.
    assert_eq!(metric(&a_base, "bangban_node_connections").await?, 1.0, "the kiosk's socket is on node a");
    assert_eq!(metric(&c_base, "bangban_node_connections").await?, 0.0, "none on node c");
    let (peer, op_tx, op_rest) = OperatorPeer::call(&session, op).await?;
    let mut op = OperatorWs { tx: op_tx, rx: op_rest };
    let mut connected = peer.connected.clone();
    tokio::time::timeout(WAIT, connected.wait_for(|c| *c))
        .await
        .context("operator peer never connected")??;

    // Media decoded both ways (the signaling went kiosk → a → the switchboard → b → operator).
    ep.wait_status("frames at the kiosk", |s| s["phase"] == "in_call" && decoded(s, "camera") >= 15).await?;
    let end = Instant::now() + WAIT;
    while peer.video_decoded() < 15 {
        anyhow::ensure!(Instant::now() < end, "no video decoded at the operator");
        ep.status.changed().await?;
    }

    // 1. A scan, for the item's first material: uploaded through node c.
    let c_bytes_before = metric(&c_base, "bangban_upload_bytes_total{kind=\"material\"}").await?;
    let slot = item["materials"].as_array().and_then(|m| m.first()).map(|m| m["id"].clone());
    let mut body = json!({ "session_id": session.session_id });
    if let Some(s) = &slot {
        body["slot_id"] = s.clone();
    }
    ep.post("/api/scan", body).await?;
    let material = op
        .expect("material_changed (scan)", |m| match m {
            ServerMsg::MaterialChanged { material, .. } if material.source == MaterialSource::Scan => {
                Some(material)
            }
            _ => None,
        })
        .await?;
    // The operator downloads it from node b: the scanner's exact bytes.
    let content = b.get_bytes(&op_token, &format!("/api/v1/materials/{}/content", material.id)).await?;
    let reference = scan::reference_scan(&sane, &dir.path().join("reference.jpg"))?;
    assert_eq!(sha256_hex(&content), material.sha256);
    assert_eq!(sha256_hex(&content), sha256_hex(&reference), "the operator sees exactly the scanner's page");
    let c_bytes = metric(&c_base, "bangban_upload_bytes_total{kind=\"material\"}").await? - c_bytes_before;
    #[allow(clippy::cast_precision_loss)]
    let len = content.len() as f64;
    assert!(c_bytes >= len, "the scan's bytes were stored through node c: {c_bytes} of {len}");
    assert_eq!(
        metric(&a_base, "bangban_upload_bytes_total{kind=\"material\"}").await?,
        0.0,
        "nothing uploaded through node a (it has the kiosk's socket only)"
    );

    // 2. A print job: the operator sends a two-page form through node b; the kiosk claims and
    //    fetches it through node c and prints it through CUPS; completed, printed once.
    let pdf = print::two_page_pdf(dir.path())?;
    let material_id = b.tus_upload(&op_token, session.session_id, "申请表.pdf", &pdf).await?;
    let created = b
        .post(
            &op_token,
            &format!("/api/v1/sessions/{}/print-jobs", session.session_id),
            json!({ "material_id": material_id, "idempotency_key": "e2e-three-nodes-1", "copies": 1 }),
        )
        .await?;
    let job_id: uuid::Uuid = created["id"].as_str().context("job id")?.parse()?;
    let done = print::job_reaches(&mut op, job_id, PrintJobState::Completed).await?;
    assert_eq!(done.state, PrintJobState::Completed, "{done:?}");
    let files = print::printed_files(job_id);
    assert_eq!(files.len(), 1, "printed exactly once: {files:?}");
    assert_eq!(print::pdf_pages(&files[0])?, 2);
    assert!(router.to_rest.load(Ordering::Relaxed) > 0 && router.to_ws.load(Ordering::Relaxed) > 0);

    // Media still flows both ways; the call ends normally.
    let (kiosk_frames, op_frames) = (decoded(&ep.status.borrow(), "camera"), peer.video_decoded());
    ep.wait_status("more frames at the kiosk", |s| decoded(s, "camera") >= kiosk_frames + 15).await?;
    let end = Instant::now() + WAIT;
    while peer.video_decoded() < op_frames + 15 {
        anyhow::ensure!(Instant::now() < end, "the operator's video stopped");
        ep.status.changed().await?;
    }
    op.send(ClientMsg::EndCall { session_id: session.session_id }).await?;
    ep.wait_status("the kiosk leaves the call", |s| s["phase"] != "in_call").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_killed_during_a_call_the_call_goes_on_through_another_node() -> Result<()> {
    init_tracing();
    let db = pg_schema_url().await?;
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir()?;
    // Node a starts first: it takes the lease and runs the switchboard.
    let (mut a, _a_base) = NodeProcess::start(dir.path(), &db, &prefix, "node-a").await?;
    let b = node_b(&db, &prefix, dir.path(), |_| {}).await?;

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

/// The kiosk's 社会保障 item (remote, active) and a ticket for it through the kiosk's API;
/// waits until the kiosk shows its place in the queue and returns its status.
async fn take_ticket(ep: &mut Endpoint) -> Result<serde_json::Value> {
    ep.wait_status("signaling connected", |s| s["connected"] == true && s["phase"] == "idle").await?;
    let item = ep.social_security_item().await?;
    ep.post("/api/ticket", json!({ "item_id": item["id"] })).await?;
    ep.wait_status("waiting with a place", |s| s["phase"] == "waiting" && s["position"].is_u64()).await
}

/// #12 item 2, with a ticket ringing: `kill -9` of the authority while one kiosk's ticket rings
/// the operator and another kiosk's waits behind it (both kiosks and the operator on the other
/// node). The new authority offers the ringing ticket again, the operator accepts it, the
/// other ticket keeps its place — the position shown at its kiosk is the one shown before the
/// kill — and no ticket is lost or served twice (one session for the rung ticket, the other
/// still waiting, in the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_killed_while_a_ticket_rings_it_is_offered_again_and_places_hold() -> Result<()> {
    init_tracing();
    let db = pg_schema_url().await?;
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir()?;
    let (mut a, _a_base) = NodeProcess::start(dir.path(), &db, &prefix, "node-a").await?;
    let b = node_b(&db, &prefix, dir.path(), |_| {}).await?;
    anyhow::ensure!(b.enrollment.len() >= 2, "two demo terminals: {:?}", b.enrollment);

    // Two kiosks on node b take tickets, one after the other.
    let mut first = Endpoint::enroll_and_run(&b, &b.enrollment[0].1).await?;
    let mut second = Endpoint::enroll_and_run(&b, &b.enrollment[1].1).await?;
    let first_number = take_ticket(&mut first).await?["ticket_number"].clone();
    take_ticket(&mut second).await?;

    // operator1 (node b) becomes available: the first ticket rings, the second waits.
    let op_token = b.login("operator1").await?;
    let mut op = OperatorWs::connect(&b, &op_token).await?;
    op.send(ClientMsg::SetAvailability { available: true }).await?;
    let rung = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket),
            _ => None,
        })
        .await?;
    assert_eq!(json!(rung.number), first_number, "the first ticket rings first");
    // What the second kiosk shows once the ring has settled (its place behind the rung one).
    let before = second.wait_status("second kiosk waiting", |s| s["phase"] == "waiting").await?;
    let place = before["position"].clone();
    assert_eq!(place, json!(2), "behind the rung ticket: {before}");
    let second_number = before["ticket_number"].clone();

    // kill -9 of the authority while the ticket rings.
    a.child.start_kill()?;
    a.child.wait().await?;
    let killed = Instant::now();

    // The operator reconnects to node b (its socket was closed when the authority changed)
    // and, available again, is offered the same ticket by the new authority. (An operator not
    // in a call has nothing to resume: its welcome says `resumed: false`. A socket that reached
    // node b before the take-over gets no welcome, or no ring: it tries again.)
    let (mut op, again) = loop {
        anyhow::ensure!(killed.elapsed() < WAIT * 2, "the rung ticket was never offered again");
        let Ok(mut op) = OperatorWs::connect(&b, &op_token).await else { continue };
        let welcome = op.expect("welcome", |m| matches!(m, ServerMsg::Welcome { .. }).then_some(()));
        if !matches!(tokio::time::timeout(Duration::from_secs(12), welcome).await, Ok(Ok(()))) {
            continue;
        }
        if op.send(ClientMsg::SetAvailability { available: true }).await.is_err() {
            continue;
        }
        // The kiosks reconnect too, in either order: until the first kiosk is back its ticket
        // cannot be called, and the second one may ring first. The operator declines that one
        // (it keeps its place) until the rung ticket is offered again.
        let mut offered = None;
        while killed.elapsed() < WAIT * 2 {
            let ring = op.expect("the rung ticket, offered again", |m| match m {
                ServerMsg::Ringing { ticket, .. } => Some(ticket),
                _ => None,
            });
            let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(12), ring).await else { break };
            if t.ticket_id == rung.ticket_id {
                offered = Some(t);
                break;
            }
            if op.send(ClientMsg::Decline { ticket_id: t.ticket_id }).await.is_err() {
                break;
            }
        }
        if let Some(t) = offered {
            break (op, t);
        }
    };
    assert_eq!(again.ticket_id, rung.ticket_id, "the ticket ringing at the kill is offered again");
    eprintln!(
        "cluster: kill -9 while ringing → the ticket rang again after {} ms",
        killed.elapsed().as_millis()
    );

    // Both kiosks are back on the new authority, each with its own ticket and place.
    first
        .wait_status("first kiosk reconnected, still waiting", |s| {
            s["connected"] == true && s["phase"] == "waiting" && s["ticket_number"] == first_number
        })
        .await?;
    let after = second
        .wait_status("second kiosk reconnected, same place", |s| {
            s["connected"] == true && s["phase"] == "waiting" && s["ticket_number"] == second_number
        })
        .await?;
    assert_eq!(
        after["position"], place,
        "the place shown at the second kiosk: before {before} / after {after}"
    );

    // The operator accepts: the first kiosk is in the call; the second still waits, same place.
    op.send(ClientMsg::Accept { ticket_id: rung.ticket_id }).await?;
    let session = op
        .expect("session_started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session),
            _ => None,
        })
        .await?;
    first.wait_status("first kiosk in the call", |s| s["phase"] == "in_call").await?;
    // The new authority moves the second ticket up: it is next (position 1) at its kiosk.
    second
        .wait_status("second kiosk next in line", |s| {
            s["phase"] == "waiting" && s["ticket_number"] == second_number && s["position"] == 1
        })
        .await?;

    // In the database: the rung ticket has exactly one session; the other ticket still waits;
    // no ticket lost.
    let pool = sqlx::PgPool::connect(&db).await?;
    let sessions: Vec<(String, String)> =
        sqlx::query_as("SELECT id, ticket_id FROM call_sessions").fetch_all(&pool).await?;
    assert_eq!(sessions.len(), 1, "one session in all: {sessions:?}");
    assert_eq!(sessions[0].0, session.session_id.to_string());
    assert_eq!(sessions[0].1, rung.ticket_id.to_string(), "for the rung ticket");
    let tickets: Vec<(String, String)> =
        sqlx::query_as("SELECT number, status FROM tickets ORDER BY created_at").fetch_all(&pool).await?;
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    assert_eq!(json!(tickets[1].0), second_number);
    assert_eq!(tickets[1].1, "waiting", "the other ticket still waits: {tickets:?}");
    Ok(())
}

/// Node b, in this test process: the node processes' database, master key (in `dir`) and
/// Redis prefix, node id `node-b`; `more` sets what else it has of its own.
async fn node_b(
    db: &str,
    prefix: &str,
    dir: &Path,
    more: impl Fn(&mut signaling_server::config::Config) + Send + Sync + 'static,
) -> Result<Server> {
    let (db, prefix, key) = (db.to_owned(), prefix.to_owned(), dir.join("master.key"));
    Server::start_with(move |c| {
        c.database_url = db.clone();
        c.master_key_file = key.clone();
        c.cluster = Some(signaling_server::config::ClusterConfig {
            redis_url: REDIS.into(),
            node_id: "node-b".into(),
            advertise_url: "http://node-b.bangban.internal:8080".into(),
            prefix: prefix.clone(),
        });
        more(c);
    })
    .await
}

/// A userspace link in front of `target` (TCP) that the test cuts and restores.
async fn link(target: std::net::SocketAddr) -> Result<NetProxy> {
    let mut p = NetProxy::bind().await?;
    // No UDP here: the UDP side points at a port nothing listens on.
    p.run(target, "127.0.0.1:9".parse()?)?;
    Ok(p)
}

/// #12, the partition test: the authority (node a, its own process) reaches PostgreSQL and
/// Redis only through links this test cuts (userspace TCP proxies that stall, as a pulled
/// cable does). Before the cut a kiosk with a waiting ticket goes away, so the authority's
/// resume window (5 s) for it runs out during the cut: node a then tries to cancel the ticket
/// (`abandoned`). Meanwhile node b takes the lease over. When the links come back, node a's
/// cancellation reaches the database and is refused by the fencing check (counted in its
/// `bangban_switchboard_fenced_writes`); node a steps down and serves on as a gateway: an
/// operator connected to it is rung, by node b's switchboard, for the same ticket, which never
/// left its place — the restarted kiosk resumes it at position 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_cut_off_is_fenced_another_takes_over_and_it_rejoins_as_a_gateway() -> Result<()> {
    init_tracing();
    let db = pg_schema_url().await?;
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir()?;
    let pg_link = link("127.0.0.1:5432".parse()?).await?;
    let redis_link = link("127.0.0.1:6379".parse()?).await?;
    let db_a = db.replacen("127.0.0.1:5432", &pg_link.tcp_addr.to_string(), 1);
    anyhow::ensure!(db_a != db, "the test database is expected at 127.0.0.1:5432: {db}");
    let redis_a = format!("redis://{}", redis_link.tcp_addr);
    let opts = NodeOpts {
        redis: &redis_a,
        extra: vec!["--resume-window-secs".into(), "5".into()],
        log: Some(dir.path().join("node-a.log")),
        ..NodeOpts::default()
    };
    let (_a, a_base) = NodeProcess::start_with(dir.path(), &db_a, &prefix, "node-a", opts).await?;
    let b = node_b(&db, &prefix, dir.path(), |_| {}).await?;
    let pool = sqlx::PgPool::connect(&db).await?;
    let holder = || async {
        sqlx::query_as::<_, (String, i64)>("SELECT holder, epoch FROM switchboard_lease WHERE id = 1")
            .fetch_one(&pool)
            .await
    };
    assert_eq!(holder().await?, ("node-a".to_owned(), 1));

    // A kiosk on node b takes a ticket, then goes away (power cut): node a, the authority,
    // sees it leave and keeps its place for the resume window.
    let (_point, code) = b.enrollment.first().context("demo terminal")?.clone();
    let mut ep = Endpoint::enroll_and_run(&b, &code).await?;
    take_ticket(&mut ep).await?;
    ep.kill().await?;
    let end = Instant::now() + WAIT;
    while metric(&a_base, "bangban_connections{role=\"terminal\"}").await? != 0.0 {
        anyhow::ensure!(Instant::now() < end, "node a never saw the kiosk leave");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The cut: node a's links to PostgreSQL and Redis stall.
    pg_link.cut();
    redis_link.cut();
    let cut = Instant::now();
    // Node b takes the lease over once node a's expires.
    let end = Instant::now() + WAIT;
    loop {
        let (h, epoch) = holder().await?;
        if h == "node-b" {
            assert_eq!(epoch, 2, "one hand-over");
            break;
        }
        anyhow::ensure!(Instant::now() < end, "node b never took the lease over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("cluster-partition: cut → node b holds the lease after {} ms", cut.elapsed().as_millis());
    // Node a's resume window for the kiosk (5 s from its leaving, a deadline of node a's own
    // clock that nothing outside it can observe during the cut) runs out: it tries to cancel
    // the ticket, and that write waits behind the cut.
    let window = Duration::from_secs(6);
    if let Some(left) = window.checked_sub(cut.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let status: String = sqlx::query_scalar("SELECT status FROM tickets").fetch_one(&pool).await?;
    assert_eq!(status, "waiting", "nothing of node a's reached the database during the cut");

    // The links come back.
    pg_link.restore();
    redis_link.restore();
    let end = Instant::now() + WAIT;
    loop {
        let fenced = metric(&a_base, "bangban_switchboard_fenced_writes_total").await.unwrap_or(0.0);
        let here = metric(&a_base, "bangban_switchboard_authority").await.unwrap_or(1.0);
        let epoch = metric(&a_base, "bangban_authority_epoch").await.unwrap_or(0.0);
        if fenced >= 1.0 && here == 0.0 && epoch == 2.0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < end,
            "node a: fenced writes {fenced}, authority here {here}, epoch {epoch}; log: {}",
            std::fs::read_to_string(dir.path().join("node-a.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status: String = sqlx::query_scalar("SELECT status FROM tickets").fetch_one(&pool).await?;
    assert_eq!(status, "waiting", "node a's cancellation was refused: the ticket keeps its place");
    assert_eq!(holder().await?, ("node-b".to_owned(), 2), "node b still runs the switchboard");

    // Node a serves on as a gateway: operator2 connects to it and is rung by node b's
    // switchboard for that ticket.
    let end = Instant::now() + WAIT;
    while !reqwest::get(format!("{a_base}/readyz")).await?.status().is_success() {
        anyhow::ensure!(Instant::now() < end, "node a never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let op_token = b.login("operator2").await?;
    let mut op = OperatorWs::connect_to(&a_base, &op_token).await?;
    op.send(ClientMsg::SetAvailability { available: true }).await?;
    // Node b's switchboard answers through node a's gateway: operator2 is available.
    op.expect("available, through node a", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: OperatorStateView::Available }).then_some(())
    })
    .await?;
    assert_eq!(metric(&a_base, "bangban_node_connections").await?, 1.0, "the operator's socket is on node a");
    Ok(())
}
