//! Cluster mode (#12 items 1 and 3): nodes of one deployment on one PostgreSQL and one Redis
//! see each other, sign and verify with one key ring, and count guesses at secrets once,
//! whichever node they reach. Real Redis (127.0.0.1:6379, or a private one that the test
//! kills) and real PostgreSQL; every test has its own key prefix and schema.

use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signaling_server::auth::throttle::{Limit, Throttle};
use signaling_server::cluster::Cluster;
use signaling_server::config::{ClusterConfig, Config};

use crate::helpers::{TestApp, fresh_pg_url};

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

fn join(c: &mut Config, db: &str, master_key: Option<&Path>, redis: &str, prefix: &str, node: &str) {
    c.database_url = db.into();
    if let Some(k) = master_key {
        c.master_key_file = k.to_owned();
    }
    c.cluster = Some(ClusterConfig {
        redis_url: redis.into(),
        node_id: node.into(),
        advertise_url: format!("http://{node}.bangban.internal:8080"),
        prefix: prefix.into(),
    });
}

/// Two nodes of one deployment: `a` first (it creates the keys), then `b` with `a`'s master key.
async fn two_nodes(prefix: &str) -> (TestApp, TestApp) {
    let db = fresh_pg_url().await;
    let a = TestApp::spawn_with(|c| join(c, &db, None, REDIS, prefix, "node-a")).await;
    let key = a.config.master_key_file.clone();
    let b = TestApp::spawn_with(|c| join(c, &db, Some(&key), REDIS, prefix, "node-b")).await;
    (a, b)
}

/// Polls `check` every 50 ms until it holds, for at most `bound`.
async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + bound;
    while !check().await {
        assert!(tokio::time::Instant::now() < end, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A terminal connected to `node` with `device`'s token that took a ticket for SB-003 and saw
/// it issued: the client and the ticket.
async fn terminal_with_ticket(node: &TestApp, device: &str) -> (crate::ws_client::WsClient, uuid::Uuid) {
    use shared::protocol::ServerMsg;
    let (mut term, _) = crate::ws_client::WsClient::connect(node, device).await;
    let item = crate::ws_client::item_id(node, device, "SB-003").await;
    term.send(&crate::ws_client::take_ticket(item)).await;
    let ticket = term
        .expect("ticket issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    (term, ticket)
}

async fn login(app: &TestApp, user: &str, password: &str) -> (StatusCode, Value) {
    app.post("/api/v1/auth/login", None, json!({ "username": user, "password": password })).await
}

#[tokio::test]
async fn nodes_see_each_other_and_leave_the_list_when_they_stop() {
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let admin = a.login("admin").await;
    assert_eq!(b.get("/readyz", None).await.0, StatusCode::OK, "Redis, database and switchboard answer");
    let (s, view) = b.get("/api/v1/admin/cluster", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "a token from node a works on node b: {view}");
    assert_eq!(view["mode"], "cluster");
    assert_eq!(view["this_node"], "node-b");
    let ids: Vec<&str> =
        view["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(view["nodes"][0]["url"], "http://node-a.bangban.internal:8080");
    assert_eq!(view["nodes"][0]["draining"], false);

    // An open WebSocket on node a shows in its report.
    // (Node b seeded the demo last: its enrolment codes are the valid ones.)
    let (_, device) = b.enroll_terminal(0).await;
    let (ws, _welcome) = crate::ws_client::WsClient::connect(&a, &device).await;
    eventually("node a reports one connection", Duration::from_secs(10), || async {
        let (_, v) = b.get("/api/v1/admin/cluster", Some(&admin)).await;
        v["nodes"][0]["connections"] == json!(1)
    })
    .await;
    ws.close().await;

    // Node a stops cleanly: it leaves the list at once (not after its report expires).
    a.stop().await;
    let (_, view) = b.get("/api/v1/admin/cluster", Some(&admin)).await;
    let ids: Vec<&str> =
        view["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(ids, ["node-b"], "{view}");

    // Only admins see the cluster.
    let op = b.login("operator1").await;
    let (s, _) = b.get("/api/v1/admin/cluster", Some(&op)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_key_rotated_or_retired_on_one_node_holds_on_every_node() {
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let admin = a.login("admin").await;
    let old_kid = jsonwebtoken::decode_header(&admin).expect("hdr").kid.expect("kid");
    let (s, _) = b.get("/api/v1/me", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "node b verifies node a's token");

    // Rotate on node a: node b signs with the new key and verifies what a signs with it.
    let (s, body) = a.post("/api/v1/admin/keys/rotate", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let new_kid = body["kid"].as_str().expect("kid").to_owned();
    let fresh = a.login("admin").await;
    assert_eq!(jsonwebtoken::decode_header(&fresh).expect("hdr").kid.as_deref(), Some(new_kid.as_str()));
    eventually("node b verifies the new key's token", Duration::from_secs(10), || async {
        b.get("/api/v1/me", Some(&fresh)).await.0 == StatusCode::OK
    })
    .await;
    let from_b = b.login("admin").await;
    assert_eq!(jsonwebtoken::decode_header(&from_b).expect("hdr").kid.as_deref(), Some(new_kid.as_str()));
    let (_, jwks) = b.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "old key still verifies: {jwks}");

    // Retire the old key on node b (after a compromise): node a refuses its tokens too.
    let (s, body) = b.post(&format!("/api/v1/admin/keys/{old_kid}/retire"), Some(&fresh), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(b.get("/api/v1/me", Some(&admin)).await.0, StatusCode::UNAUTHORIZED);
    eventually("node a refuses the retired key's token", Duration::from_secs(10), || async {
        a.get("/api/v1/me", Some(&admin)).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(a.get("/api/v1/me", Some(&fresh)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn password_guesses_spread_over_nodes_count_once() {
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    // LOGIN_PAIR allows five free failures per account and address: three on a, two on b …
    for app in [&a, &a, &a, &b, &b] {
        let (s, body) = login(app, "operator1", "wrong-password").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    }
    // … and the sixth, on either node, waits.
    let (s, body) = login(&a, "operator1", "wrong-password").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (s, body) = login(&b, "operator1", "bangban-demo").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "node b counts node a's guesses: {body}");
    // Other accounts are not affected.
    assert_eq!(login(&b, "operator2", "bangban-demo").await.0, StatusCode::OK);
}

/// The shared throttle (a script in Redis) decides exactly as this node's own throttle would,
/// over a long random run of attempts and successes on overlapping keys.
#[tokio::test]
async fn the_shared_throttle_decides_as_the_local_one() {
    let cfg = ClusterConfig {
        redis_url: REDIS.into(),
        node_id: "throttle-check".into(),
        advertise_url: "http://127.0.0.1:1".into(),
        prefix: prefix(),
    };
    let shared = Cluster::connect(cfg, Default::default(), 0).await.expect("redis");
    let mut local = Throttle::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let users = ["Op", "op", "x", "y"];
    let addrs = ["1.1.1.1", "2.2.2.2"];
    let mut now: i64 = 1_795_000_000_000;
    let (mut allowed, mut refused) = (0, 0);
    for step in 0..600 {
        now += match rng.gen_range(0..10) {
            0..=5 => rng.gen_range(0..300),
            6..=8 => rng.gen_range(500..5_000),
            _ => rng.gen_range(60_000..20 * 60_000),
        };
        let user = users[rng.gen_range(0..users.len())];
        let addr = addrs[rng.gen_range(0..addrs.len())];
        let mut keys = signaling_server::auth::throttle::login_keys(user, addr);
        if rng.gen_bool(0.2) {
            keys.push((format!("device:{addr}"), Limit::DEVICE_ADDRESS));
        }
        let want = local.attempt(&keys, now);
        let got = shared.throttle_attempt(&keys, now).await.expect("redis answers");
        assert_eq!(got, want, "step {step}: attempt {keys:?} at {now}");
        if want.is_ok() {
            allowed += 1;
            if rng.gen_bool(0.3) {
                let clear = [keys[0].0.clone()];
                let clear: Vec<&str> = clear.iter().map(String::as_str).collect();
                local.success(&keys, &clear);
                shared.throttle_success(&keys, &clear).await.expect("redis answers");
            }
        } else {
            refused += 1;
        }
    }
    assert!(
        allowed > 100 && refused > 50,
        "the run exercised both outcomes: {allowed} allowed, {refused} refused"
    );
}

/// A private Redis that the test can kill.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let url = format!("redis://127.0.0.1:{port}");
        eventually("private Redis accepts connections", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        Self { child, url }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn without_redis_a_node_says_so_and_sign_in_still_works_and_is_still_limited() {
    // A node does not start without its Redis: a clear error, not a half-working node.
    let db = fresh_pg_url().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config::for_data_dir(dir.path());
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    join(&mut config, &db, None, "redis://127.0.0.1:1", &prefix(), "lonely");
    let err = signaling_server::Application::build(config).await.err().expect("refused to start");
    assert!(err.to_string().contains("cluster mode") && err.to_string().contains("Redis"), "{err}");

    // Redis goes away while the node runs: sign-in works, guesses are still counted (by the
    // node alone until Redis is back).
    let mut redis = PrivateRedis::start().await;
    let prefix = prefix();
    let db = fresh_pg_url().await;
    let app = TestApp::spawn_with(|c| join(c, &db, None, &redis.url, &prefix, "node-r")).await;
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    assert_eq!(login(&app, "operator1", "bangban-demo").await.0, StatusCode::OK, "right password gets in");
    for _ in 0..5 {
        assert_eq!(login(&app, "operator1", "wrong").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&app, "operator1", "wrong").await.0, StatusCode::TOO_MANY_REQUESTS);
    let (s, body) = app.get("/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Redis")), "{body}");
    let admin = app.login("admin").await;
    let (s, body) = app.get("/api/v1/admin/cluster", Some(&admin)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Redis")), "{body}");
}

/// #12 item 2: a terminal on one node and an operator on another are in one queue and one
/// call: the ticket rings the operator, the call starts on both sides, signaling is relayed
/// across nodes, and REST on either node sees the switchboard's live session.
#[tokio::test]
async fn a_terminal_on_one_node_and_an_operator_on_another_share_one_switchboard() {
    use shared::protocol::{ClientMsg, Party, ServerMsg, Signal};
    use shared::validate::Sdp;
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let (_, device) = b.enroll_terminal(0).await;
    let (mut op, _) = crate::ws_client::available_operator(&b, "operator1").await;
    let (mut term, _) = terminal_with_ticket(&a, &device).await;
    let session = crate::ws_client::answer_ringing(&mut op, &mut term).await;

    let sdp = Sdp::try_from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n".to_owned()).expect("sdp");
    term.send(&ClientMsg::Signal {
        session_id: session,
        signal: Signal::Offer { sdp: sdp.clone(), ice_restart: false },
    })
    .await;
    let got = op
        .expect("the offer, relayed from node a to node b", |m| match m {
            ServerMsg::Signal { from, signal: Signal::Offer { sdp, .. }, .. } => Some((*from, sdp.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got, (Party::Terminal, sdp.clone()));
    op.send(&ClientMsg::Signal { session_id: session, signal: Signal::Answer { sdp } }).await;
    term.expect("the answer, relayed back", |m| {
        matches!(m, ServerMsg::Signal { from: Party::Operator, signal: Signal::Answer { .. }, .. })
            .then_some(())
    })
    .await;

    // The live session as REST sees it, on either node: the switchboard's answer.
    let sup = a.login("supervisor").await;
    for node in [&a, &b] {
        let (s, body) = node.get(&format!("/api/v1/sessions/{session}/materials"), Some(&sup)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, metrics) = b.get("/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "node b reaches the switchboard on node a: {metrics}");
    // Each node says which authority epoch it follows (node a took the first lease).
    for node in [&a, &b] {
        eventually("the authority epoch in /metrics", Duration::from_secs(10), || async {
            let text = node
                .client
                .get(node.url("/metrics"))
                .send()
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text");
            text.lines().any(|l| l == "bangban_authority_epoch 1")
        })
        .await;
    }

    op.send(&ClientMsg::EndCall { session_id: session }).await;
    term.expect("the call ends on node a", |m| matches!(m, ServerMsg::SessionEnded { .. }).then_some(()))
        .await;
}

/// #12 item 2: when the node running the switchboard stops, another takes over at once (the
/// lease is released); the clients of the remaining node are told `bye` (`shutdown`),
/// reconnect and resume; a waiting ticket keeps its place and is served.
#[tokio::test]
async fn when_the_authority_stops_another_node_takes_over_and_the_queue_survives() {
    use shared::protocol::{ByeReason, ServerMsg};
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let (_, device) = b.enroll_terminal(0).await;
    let (mut term, ticket) = terminal_with_ticket(&b, &device).await;

    // Node a (the authority: it started first) stops.
    a.stop().await;
    assert_eq!(term.expect_closed().await, Some(ByeReason::Shutdown), "told to reconnect");
    let (mut term, welcome) = crate::ws_client::WsClient::connect(&b, &device).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "resumed: {welcome:?}");
    term.expect("its ticket still waits", |m| match m {
        ServerMsg::QueuePosition { ticket_id, .. } if *ticket_id == ticket => Some(()),
        _ => None,
    })
    .await;
    let (mut op, _) = crate::ws_client::available_operator(&b, "operator1").await;
    let rung = op
        .expect("the ticket rings an operator", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    assert_eq!(rung, ticket);
}

/// #12 item 2: the lease's fencing token. A node whose lease expired and was taken over cannot
/// write, even though it does not know yet: the switchboard's group commit is refused.
#[tokio::test]
async fn a_node_that_lost_the_lease_cannot_write() {
    use signaling_server::switchboard::{lease, store};
    let db_url = fresh_pg_url().await;
    let db = signaling_server::db::Db::connect(&db_url).await.expect("db");
    let old = lease::try_acquire(&db, "node-x").await.expect("acquire").expect("free lease");
    assert_eq!(lease::try_acquire(&db, "node-y").await.expect("acquire"), None, "held by node-x");
    let write = store::Write::SessionStatus { session: uuid::Uuid::new_v4(), status: "held" };
    store::commit(&db, Some(&old), std::slice::from_ref(&write)).await.expect("the holder writes");

    // node-x stalls past its lease; node-y takes over with the next epoch.
    sqlx::query("UPDATE switchboard_lease SET expires_at = 0").execute(&db.pool).await.expect("expire");
    let new = lease::try_acquire(&db, "node-y").await.expect("acquire").expect("expired lease");
    assert_eq!(new.epoch, old.epoch + 1);
    let e = store::commit(&db, Some(&old), std::slice::from_ref(&write)).await.expect_err("fenced");
    assert!(lease::is_fenced(&e), "{e}");
    assert!(!lease::renew(&db, &old).await.expect("renew"), "the old holder cannot renew");
    store::commit(&db, Some(&new), std::slice::from_ref(&write)).await.expect("the new holder writes");
    lease::release(&db, &new).await.expect("release");
    let third = lease::try_acquire(&db, "node-z").await.expect("acquire").expect("released lease");
    assert_eq!(third.epoch, new.epoch + 1);
}

/// #12 item 2: a call in progress survives a change of authority. Its parties are told to
/// reconnect, resume into the same session (the terminal is still in its call, the operator
/// still in the call), signaling goes on, and the call ends normally.
#[tokio::test]
async fn a_call_in_progress_goes_on_after_the_authority_changes() {
    use shared::protocol::{ByeReason, ClientMsg, OperatorStateView, Party, ServerMsg, Signal};
    use shared::validate::Sdp;
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let (_, device) = b.enroll_terminal(0).await;
    let login = b.login_full("operator1").await;
    let op_token = login["access_token"].as_str().expect("token").to_owned();
    let (mut op, _) = crate::ws_client::available_operator(&b, "operator1").await;
    let (mut term, _) = terminal_with_ticket(&b, &device).await;
    let session = crate::ws_client::answer_ringing(&mut op, &mut term).await;

    a.stop().await;
    assert_eq!(term.expect_closed().await, Some(ByeReason::Shutdown));
    assert_eq!(op.expect_closed().await, Some(ByeReason::Shutdown));

    let (mut op, welcome) = crate::ws_client::WsClient::connect(&b, &op_token).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
    op.expect("still in the call", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: OperatorStateView::InCall }).then_some(())
    })
    .await;
    let again = op
        .expect("the same session again", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    assert_eq!(again, session);
    let (mut term, welcome) = crate::ws_client::WsClient::connect(&b, &device).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
    let again = term
        .expect("the terminal resumes its call", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    assert_eq!(again, session);
    op.expect("the resident is back", |m| matches!(m, ServerMsg::PeerReconnected { .. }).then_some(())).await;

    // An ICE restart offer goes through the new authority.
    let sdp = Sdp::try_from("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n".to_owned()).expect("sdp");
    op.send(&ClientMsg::Signal { session_id: session, signal: Signal::Offer { sdp, ice_restart: true } })
        .await;
    term.expect("the offer", |m| {
        matches!(m, ServerMsg::Signal { from: Party::Operator, signal: Signal::Offer { .. }, .. })
            .then_some(())
    })
    .await;
    op.send(&ClientMsg::EndCall { session_id: session }).await;
    term.expect("the call ends normally", |m| matches!(m, ServerMsg::SessionEnded { .. }).then_some(()))
        .await;
    let reason: Option<String> = sqlx::query_scalar("SELECT end_reason FROM call_sessions WHERE id = $1")
        .bind(session.to_string())
        .fetch_one(&b.state.db.pool)
        .await
        .expect("session row");
    assert_ne!(reason.as_deref(), Some("server_restart"), "not closed by the hand-over");
}

/// #12 item 3: an upload begun through one node goes on through another (the staging area on
/// a volume both mount, `uploads_dir`), and the result is whole.
#[tokio::test]
async fn an_upload_begun_on_one_node_is_finished_on_another() {
    use crate::materials_fixture::{call, content, offset, patch, pdf, start};
    let prefix = prefix();
    let db = fresh_pg_url().await;
    let a = TestApp::spawn_with(|c| join(c, &db, None, REDIS, &prefix, "node-a")).await;
    let key = a.config.master_key_file.clone();
    let shared = a.config.data_dir.join("uploads");
    let b = TestApp::spawn_with(|c| {
        join(c, &db, Some(&key), REDIS, &prefix, "node-b");
        c.uploads_dir = Some(shared.clone());
    })
    .await;
    let c = call(&b).await;
    let data = pdf("across", 150_000);
    let location = start(&a, &c.device, &c.session_id, "across.pdf", &data).await;
    let resp = patch(&a, &c.device, &location, 0, &data[..100_000], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset(&b, &c.device, &location).await, (StatusCode::OK, Some(100_000)), "node b sees it");
    // Resuming elsewhere than the stored offset is refused on node b as well.
    assert_eq!(patch(&b, &c.device, &location, 0, &data, None).await.status(), StatusCode::CONFLICT);
    let resp = patch(&b, &c.device, &location, 100_000, &data[100_000..], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    let (st, body) = content(&b, &c.device, &id).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, data, "the whole file, hash checked across the two nodes' parts");
    assert_eq!(a.state.materials.upload_locks_held() + b.state.materials.upload_locks_held(), 0);
}

/// #12 item 2: the authority loses its lease without knowing (as when it is cut off from the
/// database for longer than the lease): another holder takes it, the old one's renewal fails
/// and it stops its switchboard; once the lease is free a node takes it with the next epoch,
/// and the cluster serves on — a terminal on node a and an operator on node b are in one queue.
#[tokio::test]
async fn an_authority_that_lost_its_lease_steps_down_and_the_cluster_serves_on() {
    use shared::protocol::ServerMsg;
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let pool = &a.state.db.pool;
    let holder = || async {
        sqlx::query_scalar::<_, String>("SELECT holder FROM switchboard_lease WHERE id = 1")
            .fetch_one(pool)
            .await
            .expect("lease row")
    };
    assert_eq!(holder().await, "node-a");
    let epoch = || async {
        sqlx::query_scalar::<_, i64>("SELECT epoch FROM switchboard_lease WHERE id = 1")
            .fetch_one(pool)
            .await
            .expect("epoch")
    };
    assert_eq!(epoch().await, 1);
    // As if node a had been cut off past its lease: another holder took it (for a moment).
    sqlx::query(
        "UPDATE switchboard_lease SET holder = 'node-x', epoch = epoch + 1, \
         expires_at = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + 1500",
    )
    .execute(pool)
    .await
    .expect("take over");
    // Node a's next renewal fails: it stops its switchboard. Once node-x's lease runs out, a
    // node takes it with the next epoch and announces itself.
    eventually("a node holds the lease again", Duration::from_secs(10), || async { epoch().await == 3 })
        .await;
    let new_holder = holder().await;
    assert!(["node-a", "node-b"].contains(&new_holder.as_str()), "{new_holder}");

    // Node a goes on as a gateway: a terminal on it takes a ticket that node b's switchboard
    // issues (and stores under its epoch), and an operator on node b is rung for it.
    let (_, device) = b.enroll_terminal(0).await;
    let (mut op, _) = crate::ws_client::available_operator(&b, "operator1").await;
    let (_term, ticket) = terminal_with_ticket(&a, &device).await;
    let rung = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
    assert_eq!(rung, ticket);
    assert_eq!(epoch().await, 3, "one hand-over only");
    assert_eq!(a.get("/readyz", None).await.0, StatusCode::OK, "node a still serves");
}

/// Connects `token` to `node` once it is back in the cluster's switchboard: the welcome says
/// `resumed` and the party's live session is sent again.
async fn resume_into(node: &TestApp, token: &str, session: uuid::Uuid) -> crate::ws_client::WsClient {
    use shared::protocol::ServerMsg;
    let (mut ws, welcome) = crate::ws_client::WsClient::connect(node, token).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
    let again = ws
        .expect("the same session", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    assert_eq!(again, session);
    ws
}

/// #12 item 4: a rolling restart of both nodes, one after the other, during a live call and a
/// running upload: after each restart the parties resume into the same call, the upload goes
/// on where it was, and at the end the call ends normally and the file is whole.
#[tokio::test]
async fn a_rolling_restart_loses_neither_the_call_nor_the_upload() {
    use crate::materials_fixture::{content, offset, patch, pdf, start};
    use shared::protocol::{ByeReason, ClientMsg, ServerMsg};
    let prefix = prefix();
    let db = fresh_pg_url().await;
    let uploads = tempfile::tempdir().expect("uploads volume");
    let shared_dir = uploads.path().to_owned();
    let node = |name: &'static str, key: Option<std::path::PathBuf>| {
        let (db, prefix, shared_dir) = (db.clone(), prefix.clone(), shared_dir.clone());
        async move {
            TestApp::spawn_with(move |c| {
                join(c, &db, key.as_deref(), REDIS, &prefix, name);
                c.uploads_dir = Some(shared_dir.clone());
            })
            .await
        }
    };
    let a = node("node-a", None).await;
    // The deployment's key, kept apart from node a's data directory (which goes with it).
    let keys = tempfile::tempdir().expect("key dir");
    let key = keys.path().join("master.key");
    std::fs::copy(&a.config.master_key_file, &key).expect("copy the master key");
    let b = node("node-b", Some(key.clone())).await;
    let holder = |app: &TestApp| {
        let pool = app.state.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT holder FROM switchboard_lease WHERE id = 1")
                .fetch_one(&pool)
                .await
                .expect("lease row")
        }
    };

    let (_, device) = b.enroll_terminal(0).await;
    let login = b.login_full("operator1").await;
    let op_token = login["access_token"].as_str().expect("token").to_owned();
    let (mut op, _) = crate::ws_client::available_operator(&b, "operator1").await;
    let (mut term, _) = terminal_with_ticket(&b, &device).await;
    let session = crate::ws_client::answer_ringing(&mut op, &mut term).await;
    let data = pdf("rolling", 180_000);
    let location = start(&b, &device, &session.to_string(), "rolling.pdf", &data).await;
    assert_eq!(
        patch(&b, &device, &location, 0, &data[..60_000], None).await.status(),
        StatusCode::NO_CONTENT
    );

    // 1. Node a (the switchboard's holder) restarts; node b takes over.
    a.stop().await;
    assert_eq!(term.expect_closed().await, Some(ByeReason::Shutdown));
    assert_eq!(op.expect_closed().await, Some(ByeReason::Shutdown));
    eventually("node b holds the lease", Duration::from_secs(10), || async { holder(&b).await == "node-b" })
        .await;
    let a = node("node-a", Some(key.clone())).await;
    let mut op = resume_into(&b, &op_token, session).await;
    let mut term = resume_into(&b, &device, session).await;
    op.expect("the kiosk is back", |m| matches!(m, ServerMsg::PeerReconnected { .. }).then_some(())).await;
    assert_eq!(offset(&a, &device, &location).await, (StatusCode::OK, Some(60_000)));
    let resp = patch(&a, &device, &location, 60_000, &data[60_000..120_000], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // 2. Node b (now the holder, and the parties' node) restarts; node a takes over.
    b.stop().await;
    assert_eq!(term.expect_closed().await, Some(ByeReason::Shutdown));
    assert_eq!(op.expect_closed().await, Some(ByeReason::Shutdown));
    eventually("node a holds the lease", Duration::from_secs(10), || async { holder(&a).await == "node-a" })
        .await;
    let mut op = resume_into(&a, &op_token, session).await;
    let mut term = resume_into(&a, &device, session).await;
    let resp = patch(&a, &device, &location, 120_000, &data[120_000..], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    assert_eq!(content(&a, &device, &id).await, (StatusCode::OK, data));

    op.send(&ClientMsg::EndCall { session_id: session }).await;
    term.expect("the call ends normally", |m| matches!(m, ServerMsg::SessionEnded { .. }).then_some(()))
        .await;
}

/// #12 item 3: print locks across nodes. One print job, claimed at the same moment through two
/// nodes with different claim tokens (as two terminal processes, or a restarted one racing its
/// old self, would): exactly one claim wins, whichever node it reached; the others get 409 and
/// the stored claim is the winner's. Then the printer's reports race the same way: the job
/// moves once to each state, never backwards, and each move is audited once.
#[tokio::test]
async fn two_nodes_racing_for_one_print_job_print_it_once() {
    use crate::materials_fixture::{call, pdf, upload};
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let c = call(&b).await;
    let form = pdf("race", 40_000);
    let material = upload(&a, &c.operator, &c.session_id, "表.pdf", &form).await;
    let (s, job) = b
        .post(
            &format!("/api/v1/sessions/{}/print-jobs", c.session_id),
            Some(&c.operator),
            json!({ "material_id": material, "idempotency_key": "race-1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let jid = job["id"].as_str().expect("id").to_owned();
    let claim = format!("/api/v1/print-jobs/{jid}/claim");

    // Eight claims at once, four through each node, each with its own token.
    let tokens: Vec<String> = (0..8).map(|i| format!("claim-token-race-{i:02}-xxxxxxxx")).collect();
    let results = futures_util::future::join_all(tokens.iter().enumerate().map(|(i, t)| {
        let node = if i % 2 == 0 { &a } else { &b };
        let (claim, device) = (claim.clone(), c.device.clone());
        async move { node.post(&claim, Some(&device), json!({ "claim_token": t })).await }
    }))
    .await;
    let winners: Vec<usize> =
        results.iter().enumerate().filter(|(_, (s, _))| *s == StatusCode::OK).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins: {results:?}");
    for (i, (s, body)) in results.iter().enumerate() {
        assert!(
            *s == StatusCode::OK || *s == StatusCode::CONFLICT,
            "claim {i}: {s} {body} (only 200 or 409)"
        );
    }
    let winner = &tokens[winners[0]];
    // The winner's token is the one stored: presenting it again works on either node, any
    // loser's does not.
    for node in [&a, &b] {
        let (s, _) = node.post(&claim, Some(&c.device), json!({ "claim_token": winner })).await;
        assert_eq!(s, StatusCode::OK, "the winner's token again");
        let loser = &tokens[(winners[0] + 1) % tokens.len()];
        let (s, _) = node.post(&claim, Some(&c.device), json!({ "claim_token": loser })).await;
        assert_eq!(s, StatusCode::CONFLICT, "a loser's token");
    }

    // The printer's reports, each sent through both nodes at once.
    let state = format!("/api/v1/print-jobs/{jid}/state");
    for next in ["queued", "printing", "completed"] {
        let ((sa, va), (sb, vb)) = tokio::join!(
            a.post(&state, Some(&c.device), json!({ "state": next })),
            b.post(&state, Some(&c.device), json!({ "state": next })),
        );
        assert!(
            [sa, sb].contains(&StatusCode::OK),
            "{next}: at least one report is taken: {sa} {va} / {sb} {vb}"
        );
        for (s, v) in [(sa, &va), (sb, &vb)] {
            assert!(s == StatusCode::OK || s == StatusCode::CONFLICT, "{next}: {s} {v}");
        }
        let (_, now) = a.get(&format!("/api/v1/terminals/me/print-jobs?state={next}"), Some(&c.device)).await;
        assert_eq!(now.as_array().map(Vec::len), Some(1), "{next}: the job is {next}: {now}");
    }
    let moves: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'print_job.state' AND target_id = $1 AND outcome = 'success' \
         ORDER BY seq",
    )
    .bind(&jid)
    .fetch_all(&a.state.db.pool)
    .await
    .expect("audit");
    let states: Vec<String> = moves
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).expect("detail")["state"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(states, ["queued", "printing", "completed"], "each move once, in order");
    let claims: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'print_job.claim' AND target_id = $1 AND outcome = 'success'",
    )
    .bind(&jid)
    .fetch_one(&a.state.db.pool)
    .await
    .expect("audit");
    assert_eq!(claims, 1, "one successful claim audited");
}

/// #12 item 5: in a cluster every node's `/metrics` would otherwise carry the deployment's
/// switchboard figures (they come from the one switchboard) and the database's counts, so that
/// summing over the nodes multiplies them. Only the authority reports them
/// (`bangban_switchboard_authority` 1); every node reports its own sockets
/// (`bangban_node_connections`). Summed over both nodes, one waiting ticket is one; after a
/// hand-over the new authority reports it.
#[tokio::test]
async fn deployment_figures_come_from_the_authority_only_so_sums_over_nodes_are_right() {
    use crate::metrics::{role, scrape, scrape_until};
    let prefix = prefix();
    let (a, b) = two_nodes(&prefix).await;
    let (_, device) = b.enroll_terminal(0).await;
    let (_term, _ticket) = terminal_with_ticket(&b, &device).await;

    let ea = scrape_until(&a, "node a reports the waiting ticket", |e| {
        e.sum("bangban_tickets_waiting") == 1.0
            && e.get("bangban_connections", &role("terminal")) == Some(1.0)
    })
    .await;
    let eb = scrape(&b).await;
    assert_eq!(ea.value("bangban_switchboard_authority", ""), 1.0);
    assert_eq!(eb.value("bangban_switchboard_authority", ""), 0.0);
    for family in [
        "bangban_tickets_waiting",
        "bangban_ticket_longest_wait_seconds",
        "bangban_connections",
        "bangban_calls_live",
        "bangban_print_jobs",
        "bangban_terminal_alarms_open",
    ] {
        assert!(ea.has(family), "the authority reports {family}");
        assert!(!eb.has(family), "node b leaves {family} to the authority");
    }
    let sum = |f: &str| ea.sum(f) + eb.sum(f);
    assert_eq!(sum("bangban_tickets_waiting"), 1.0, "summed over the nodes: one ticket");
    assert_eq!(sum("bangban_connections"), 1.0, "summed over the nodes: one terminal");
    // Each node's own sockets: the terminal is on node b.
    assert_eq!(ea.value("bangban_node_connections", ""), 0.0);
    assert_eq!(eb.value("bangban_node_connections", ""), 1.0);
    for e in [&ea, &eb] {
        assert_eq!(e.value("bangban_switchboard_up", ""), 1.0, "both reach the switchboard");
        assert_eq!(e.value("bangban_database_up", ""), 1.0);
    }

    // Node a stops: node b takes over, recovers the ticket and now reports it.
    a.stop().await;
    let eb = scrape_until(&b, "node b, the new authority, reports the ticket", |e| {
        e.get("bangban_switchboard_authority", "") == Some(1.0) && e.sum("bangban_tickets_waiting") == 1.0
    })
    .await;
    assert_eq!(eb.value("bangban_authority_epoch", ""), 2.0);
}
