//! `signaling`: N WebSocket clients against the real `signaling-server` binary, and the
//! same load against the minimal axum relay (`echo`) as the reference, in the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use shared::protocol::ServerMsg;
use uuid::Uuid;

use crate::relay::{self, Conn};
use crate::util::{self, Api, DEMO_PASSWORD, OPERATOR_PASSWORD, Proc, Ws};
use crate::wsutil::{recv_until, send_text};

#[derive(Debug, Clone)]
pub struct Opts {
    pub clients: usize,
    pub rate: f64,
    pub runs: usize,
    pub pairs: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub groups: usize,
    pub connect_concurrency: usize,
    pub server_bin: PathBuf,
}

/// One side (server or reference) of one run.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub bytes_per_conn: f64,
    pub connects_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub achieved_per_sec: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub server: Vec<Side>,
    pub reference: Vec<Side>,
}

struct Setup {
    pristine: PathBuf,
    item: String,
    operators: Vec<String>,
    credentials: Vec<String>,
}

pub async fn run(o: &Opts) -> Result<Outcome> {
    if o.pairs * 2 > o.clients {
        bail!("--pairs {} needs at least {} clients", o.pairs, o.pairs * 2);
    }
    let tmp = tempfile::tempdir()?;
    let t0 = Instant::now();
    let setup = prepare(o, tmp.path()).await.context("setup")?;
    eprintln!(
        "signaling: setup of {} operators and {} terminals took {:.1} s",
        setup.operators.len(),
        setup.credentials.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut out = Outcome::default();
    for run in 0..o.runs {
        let s = server_run(o, &setup, tmp.path(), run).await.with_context(|| format!("server run {run}"))?;
        eprintln!("signaling run {run} server:    {s:?}");
        out.server.push(s);
        let r = echo_run(o, tmp.path(), run).await.with_context(|| format!("reference run {run}"))?;
        eprintln!("signaling run {run} reference: {r:?}");
        out.reference.push(r);
    }
    Ok(out)
}

/// A server on a fresh data dir with the operators and enrolled terminals of the bench, then
/// stopped: every run starts a copy of that directory.
async fn prepare(o: &Opts, tmp: &Path) -> Result<Setup> {
    let pristine = tmp.join("pristine");
    let args = vec!["--demo".to_owned(), "--data-dir".to_owned(), pristine.display().to_string()];
    let mut server = Proc::spawn(&o.server_bin, &args, &server_env(), tmp.join("setup.log")).await?;
    let api = Api::new(server.addr)?;
    server.wait_ready(&api.http, "/healthz").await?;
    let admin = api.login("admin", DEMO_PASSWORD).await?;
    let lines: Vec<String> = ids(&api.get("/api/v1/lines", &admin).await?);
    let items = api.get("/api/v1/items?remote=true", &admin).await?;
    let item = items
        .as_array()
        .and_then(|a| a.iter().find(|i| i["remote_allowed"] == true || i["remote_allowed"].is_null()))
        .and_then(|i| i["id"].as_str())
        .context("a remote item")?
        .to_owned();
    let points = api.get("/api/v1/points", &admin).await?;
    let point = points[0]["id"].as_str().context("a point")?.to_owned();
    let operators: Vec<String> = (0..o.pairs).map(|i| format!("bench-op{i}")).collect();
    util::bounded(operators.clone(), 2, |u| {
        let (api, admin, lines) = (api.clone(), admin.clone(), lines.clone());
        async move { api.create_operator(&admin, &u, &lines).await }
    })
    .await?;
    let terminals = o.clients - o.pairs;
    let credentials = util::bounded((0..terminals).collect(), 16, |i| {
        let (api, admin, point) = (api.clone(), admin.clone(), point.clone());
        async move { api.register_terminal(&admin, &point, &format!("压测终端{i}")).await }
    })
    .await?;
    server.stop().await?;
    Ok(Setup { pristine, item, operators, credentials })
}

pub fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

pub fn server_env() -> Vec<(&'static str, String)> {
    vec![("RUST_LOG", "warn".into()), ("BANGBAN_LOG_FORMAT", "json".into())]
}

async fn server_run(o: &Opts, setup: &Setup, tmp: &Path, run: usize) -> Result<Side> {
    let dir = tmp.join(format!("run{run}"));
    util::copy_dir(&setup.pristine, &dir)?;
    let args = vec!["--data-dir".to_owned(), dir.display().to_string()];
    let mut server =
        Proc::spawn(&o.server_bin, &args, &server_env(), tmp.join(format!("run{run}.log"))).await?;
    let api = Api::new(server.addr)?;
    server.wait_ready(&api.http, "/healthz").await?;
    // Tokens live 10 minutes: fresh ones for every run.
    let op_tokens = util::bounded(setup.operators.clone(), 2, |u| {
        let api = api.clone();
        async move { api.login(&u, OPERATOR_PASSWORD).await }
    })
    .await?;
    let dev_tokens = util::bounded(setup.credentials.clone(), 16, |c| {
        let api = api.clone();
        async move { api.device_token(&c).await }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss()?;
    let url = format!("ws://{}/ws", server.addr);
    let tokens: Vec<String> = op_tokens.iter().chain(dev_tokens.iter()).cloned().collect();
    let started = Instant::now();
    let mut socks = util::bounded(tokens, o.connect_concurrency, |t| {
        let url = url.clone();
        async move { util::ws_connect(&url, Some(&t)).await }
    })
    .await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss()?;
    // Sessions: the first `pairs` terminals take a ticket, every operator accepts one.
    let terminals = socks.split_off(o.pairs);
    let mut operators = socks;
    let mut terminals = terminals.into_iter();
    let mut paired: Vec<Ws> = terminals.by_ref().take(o.pairs).collect();
    let idle: Vec<Ws> = terminals.collect();
    let item = setup.item.clone();
    let term_sessions =
        futures_util::future::try_join_all(paired.iter_mut().map(|ws| take_and_wait(ws, &item)));
    let op_sessions = futures_util::future::try_join_all(operators.iter_mut().map(accept_one));
    let (term_sessions, op_sessions) = futures_util::future::try_join(term_sessions, op_sessions).await?;
    let mut conns: Vec<Conn> = Vec::with_capacity(o.clients);
    conns.extend(paired.into_iter().zip(term_sessions).map(|(ws, s)| Conn { ws, session: Some(s) }));
    conns.extend(operators.into_iter().zip(op_sessions).map(|(ws, s)| Conn { ws, session: Some(s) }));
    conns.extend(idle.into_iter().map(|ws| Conn { ws, session: None }));
    let stats = relay::run(conns, o.groups, o.rate, o.warmup, o.measure, true).await;
    server.stop().await?;
    check(&stats, "server")?;
    Ok(Side {
        bytes_per_conn: after.saturating_sub(before) as f64 / o.clients as f64,
        connects_per_sec: o.clients as f64 / connect_secs,
        p50_us: stats.p50_us,
        p99_us: stats.p99_us,
        p999_us: stats.p999_us,
        achieved_per_sec: stats.achieved_per_sec,
    })
}

fn check(stats: &relay::RelayStats, what: &str) -> Result<()> {
    if stats.lost > 0 || stats.closed > 0 || !stats.errors.is_empty() {
        bail!(
            "{what}: {} relayed messages lost, {} sockets closed, errors: {:?}",
            stats.lost,
            stats.closed,
            stats.errors
        );
    }
    Ok(())
}

pub async fn take_and_wait(ws: &mut Ws, item: &str) -> Result<Uuid> {
    let req = Uuid::new_v4();
    send_text(ws, format!("{{\"type\":\"take_ticket\",\"item_id\":\"{item}\",\"request_id\":\"{req}\"}}"))
        .await?;
    recv_until(ws, "session_started (terminal)", |m| match m {
        ServerMsg::SessionStarted { session } => Some(session.session_id),
        _ => None,
    })
    .await
}

pub async fn accept_one(ws: &mut Ws) -> Result<Uuid> {
    send_text(ws, "{\"type\":\"set_availability\",\"available\":true}".into()).await?;
    let ticket = recv_until(ws, "ringing", |m| match m {
        ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
        _ => None,
    })
    .await?;
    send_text(ws, format!("{{\"type\":\"accept\",\"ticket_id\":\"{ticket}\"}}")).await?;
    recv_until(ws, "session_started (operator)", |m| match m {
        ServerMsg::SessionStarted { session } => Some(session.session_id),
        _ => None,
    })
    .await
}

/// The same clients against the minimal axum relay.
async fn echo_run(o: &Opts, tmp: &Path, run: usize) -> Result<Side> {
    let exe = std::env::current_exe()?;
    let mut relay =
        Proc::spawn(&exe, &["echo-relay".to_owned()], &[], tmp.join(format!("echo{run}.log"))).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    relay.wait_ready(&http, "/healthz").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = relay.rss()?;
    let base = format!("ws://{}/ws", relay.addr);
    // Pair p: connections 2p and 2p+1; the rest get a pair id of their own.
    let targets: Vec<u64> =
        (0..o.clients as u64).map(|i| if i < 2 * o.pairs as u64 { i / 2 } else { i }).collect();
    let started = Instant::now();
    let socks = util::bounded(targets.clone(), o.connect_concurrency, |p| {
        let url = format!("{base}/{p}");
        async move { util::ws_connect(&url, None).await }
    })
    .await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = relay.rss()?;
    let sessions: Vec<Uuid> = (0..o.pairs).map(|_| Uuid::new_v4()).collect();
    let conns = socks
        .into_iter()
        .zip(targets)
        .enumerate()
        .map(|(i, (ws, p))| Conn { ws, session: (i < 2 * o.pairs).then(|| sessions[p as usize]) })
        .collect();
    let stats = relay::run(conns, o.groups, o.rate, o.warmup, o.measure, false).await;
    relay.stop().await?;
    check(&stats, "reference")?;
    Ok(Side {
        bytes_per_conn: after.saturating_sub(before) as f64 / o.clients as f64,
        connects_per_sec: o.clients as f64 / connect_secs,
        p50_us: stats.p50_us,
        p99_us: stats.p99_us,
        p999_us: stats.p999_us,
        achieved_per_sec: stats.achieved_per_sec,
    })
}
