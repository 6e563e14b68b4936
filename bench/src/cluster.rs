//! `cluster-relay` and `cluster-soak`: three `signaling-server` processes of one deployment on
//! the machine's PostgreSQL (a fresh schema per deployment) and Redis (a fresh key prefix).
//!
//! - `cluster-relay`: the `signaling` bench's relay load (`relay::run`) with the terminals of
//!   the live sessions on node a, their operators on node b and the idle clients spread over
//!   the three nodes, against one node (the same binary, the same PostgreSQL, no Redis) in
//!   the same run. A relay from a terminal goes node a → Redis → the authority → Redis → node
//!   b.
//! - `cluster-soak`: sessions whose two parties sit on different nodes signal at a steady
//!   rate (a sequence number in each `signal` candidate); midway one node (not the authority)
//!   is restarted with SIGTERM (it drains: its clients get `bye` `shutdown`) and started again;
//!   its clients reconnect to the next node and resume. Counted: messages lost (sent while
//!   both parties were connected, with a margin on either side, never received) and messages
//!   received twice; each node's memory (RSS) early in the run and at its end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::ServerMsg;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::relay::{self, Conn};
use crate::signaling::{Side, accept_one, ids, server_env, take_and_wait};
use crate::util::{self, Api, DEMO_PASSWORD, OPERATOR_PASSWORD, Proc, Ws};

/// Where the deployment's shared services are.
#[derive(Debug, Clone)]
pub struct Services {
    pub server_bin: PathBuf,
    /// PostgreSQL base URL (trust auth); every deployment gets a fresh schema.
    pub pg_url: String,
    pub redis_url: String,
}

/// Runs one statement on `pg_url`.
async fn pg_execute(pg_url: &str, sql: String) -> Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(pg_url).await.context("PostgreSQL reachable")?;
    conn.execute(sqlx::AssertSqlSafe(sql)).await?;
    conn.close().await?;
    Ok(())
}

/// One deployment: its nodes (processes), started in order; the first seeds the demo data and
/// takes the switchboard lease.
struct Deployment {
    program: PathBuf,
    nodes: Vec<Proc>,
    /// Each node's arguments (without `--listen`), to start it again.
    args: Vec<Vec<String>>,
    dir: PathBuf,
    /// The deployment's schema, dropped at the end.
    pg_url: String,
    schema: String,
}

impl Deployment {
    /// `n` nodes; `cluster`: with Redis (cluster mode), else one single node on PostgreSQL.
    async fn start(s: &Services, dir: &Path, n: usize, cluster: bool, extra: &[String]) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let schema = format!("bench_{}", Uuid::new_v4().simple());
        pg_execute(&s.pg_url, format!("CREATE SCHEMA {schema}")).await?;
        let db = format!("{}?options=-c%20search_path%3D{schema}", s.pg_url);
        let prefix = format!("bench{}", Uuid::new_v4().simple());
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut d = Self {
            program: s.server_bin.clone(),
            nodes: Vec::new(),
            args: Vec::new(),
            dir: dir.to_owned(),
            pg_url: s.pg_url.clone(),
            schema,
        };
        for i in 0..n {
            let name = format!("node-{}", (b'a' + u8::try_from(i).unwrap_or(0)) as char);
            let mut args = vec![
                "--data-dir".to_owned(),
                dir.join(&name).display().to_string(),
                "--master-key-file".to_owned(),
                dir.join("master.key").display().to_string(),
                "--database-url".to_owned(),
                db.clone(),
            ];
            if i == 0 {
                args.push("--demo".into());
            }
            args.extend(extra.iter().cloned());
            if cluster {
                args.extend([
                    "--redis-url".into(),
                    s.redis_url.clone(),
                    "--redis-prefix".into(),
                    prefix.clone(),
                ]);
                args.extend(["--node-id".into(), name.clone()]);
            }
            let mut p =
                Proc::spawn(&s.server_bin, &args, &server_env(), dir.join(format!("{name}.log"))).await?;
            p.wait_ready(&http, "/readyz").await.with_context(|| format!("{name} ready"))?;
            d.nodes.push(p);
            d.args.push(args);
        }
        Ok(d)
    }

    fn url(&self, i: usize) -> String {
        format!("ws://{}/ws", self.nodes[i % self.nodes.len()].addr)
    }

    fn api(&self, i: usize) -> Result<Api> {
        Api::new(self.nodes[i % self.nodes.len()].addr)
    }

    /// Node `i` stopped with SIGTERM (it drains) and, once it has exited, started again on the
    /// same port with the same arguments.
    async fn restart(&mut self, i: usize) -> Result<Duration> {
        let t0 = Instant::now();
        let pid = self.nodes[i].pid;
        let st = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        if !st.success() {
            bail!("kill -TERM {pid}: {st}");
        }
        let port = self.nodes[i].addr.port();
        tokio::time::timeout(Duration::from_secs(60), self.nodes[i].child.wait())
            .await
            .context("the node did not exit within 60 s of SIGTERM")??;
        let log = self.dir.join(format!("node-{i}-restarted.log"));
        let mut p = Proc::spawn_on(port, &self.program, &self.args[i], &server_env(), log).await?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        p.wait_ready(&http, "/readyz").await.context("restarted node ready")?;
        self.nodes[i] = p;
        Ok(t0.elapsed())
    }

    async fn stop(self) -> Result<()> {
        for p in self.nodes {
            p.stop().await?;
        }
        pg_execute(&self.pg_url, format!("DROP SCHEMA {} CASCADE", self.schema)).await
    }
}

/// The bench's accounts, made through node `api`: operators serving every line, enrolled
/// terminals at the first point, a remote item.
struct Accounts {
    item: String,
    operators: Vec<String>,
    credentials: Vec<String>,
}

async fn accounts(api: &Api, operators: usize, terminals: usize) -> Result<Accounts> {
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
    let names: Vec<String> = (0..operators).map(|i| format!("bench-op{i}")).collect();
    util::bounded(names.clone(), 2, |u| {
        let (api, admin, lines) = (api.clone(), admin.clone(), lines.clone());
        async move { api.create_operator(&admin, &u, &lines).await }
    })
    .await?;
    let credentials = util::bounded((0..terminals).collect(), 16, |i| {
        let (api, admin, point) = (api.clone(), admin.clone(), point.clone());
        async move { api.register_terminal(&admin, &point, &format!("压测终端{i}")).await }
    })
    .await?;
    Ok(Accounts { item, operators: names, credentials })
}

/// Fresh tokens: the operators' and the terminals' (through node `api`).
async fn tokens(api: &Api, a: &Accounts) -> Result<(Vec<String>, Vec<String>)> {
    let ops = util::bounded(a.operators.clone(), 2, |u| {
        let api = api.clone();
        async move { api.login(&u, OPERATOR_PASSWORD).await }
    })
    .await?;
    let devs = util::bounded(a.credentials.clone(), 16, |c| {
        let api = api.clone();
        async move { api.device_token(&c).await }
    })
    .await?;
    Ok((ops, devs))
}

#[derive(Debug, Clone)]
pub struct RelayOpts {
    pub clients: usize,
    pub rate: f64,
    pub runs: usize,
    pub pairs: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub groups: usize,
    pub connect_concurrency: usize,
    pub services: Services,
}

#[derive(Debug, Clone, Default)]
pub struct RelayOutcome {
    pub cluster: Vec<Side>,
    pub single: Vec<Side>,
}

pub async fn relay(o: &RelayOpts) -> Result<RelayOutcome> {
    if o.pairs * 2 > o.clients {
        bail!("--pairs {} needs at least {} clients", o.pairs, o.pairs * 2);
    }
    let tmp = tempfile::tempdir()?;
    let mut out = RelayOutcome::default();
    for run in 0..o.runs {
        let c = relay_side(o, &tmp.path().join(format!("cluster{run}")), 3)
            .await
            .with_context(|| format!("cluster run {run}"))?;
        eprintln!("cluster-relay run {run} three nodes: {c:?}");
        out.cluster.push(c);
        let s = relay_side(o, &tmp.path().join(format!("single{run}")), 1)
            .await
            .with_context(|| format!("single-node run {run}"))?;
        eprintln!("cluster-relay run {run} one node:    {s:?}");
        out.single.push(s);
    }
    Ok(out)
}

/// One side: `n` nodes (3: cluster mode; 1: a single node, no Redis). Operators on node b
/// (`1 % n`), the live sessions' terminals on node a, the idle clients round the nodes.
async fn relay_side(o: &RelayOpts, dir: &Path, n: usize) -> Result<Side> {
    let d = Deployment::start(&o.services, dir, n, n > 1, &[]).await?;
    let t0 = Instant::now();
    let acc = accounts(&d.api(0)?, o.pairs, o.clients - o.pairs).await?;
    let (ops, devs) = tokens(&d.api(0)?, &acc).await?;
    eprintln!("cluster-relay: {n} node(s), accounts and tokens in {:.1} s", t0.elapsed().as_secs_f64());
    let started = Instant::now();
    let op_url = d.url(1);
    let mut operators = util::bounded(ops, o.connect_concurrency, |t| {
        let url = op_url.clone();
        async move { util::ws_connect(&url, Some(&t)).await }
    })
    .await?;
    let urls: Vec<String> = (0..n).map(|i| d.url(i)).collect();
    let pairs = o.pairs;
    let devs: Vec<(usize, String)> = devs.into_iter().enumerate().collect();
    let terminals = util::bounded(devs, o.connect_concurrency, |(i, t)| {
        // The paired terminals on node a; the idle ones round the nodes.
        let url = if i < pairs { urls[0].clone() } else { urls[i % urls.len()].clone() };
        async move { util::ws_connect(&url, Some(&t)).await }
    })
    .await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let mut terminals = terminals.into_iter();
    let mut paired: Vec<Ws> = terminals.by_ref().take(o.pairs).collect();
    let idle: Vec<Ws> = terminals.collect();
    let item = acc.item.clone();
    let term_sessions =
        futures_util::future::try_join_all(paired.iter_mut().map(|ws| take_and_wait(ws, &item)));
    let op_sessions = futures_util::future::try_join_all(operators.iter_mut().map(accept_one));
    let (term_sessions, op_sessions) = futures_util::future::try_join(term_sessions, op_sessions).await?;
    let mut conns: Vec<Conn> = Vec::with_capacity(o.clients);
    conns.extend(paired.into_iter().zip(term_sessions).map(|(ws, s)| Conn { ws, session: Some(s) }));
    conns.extend(operators.into_iter().zip(op_sessions).map(|(ws, s)| Conn { ws, session: Some(s) }));
    conns.extend(idle.into_iter().map(|ws| Conn { ws, session: None }));
    let stats = relay::run(conns, o.groups, o.rate, o.warmup, o.measure, true).await;
    d.stop().await?;
    if stats.lost > 0 || stats.closed > 0 || !stats.errors.is_empty() {
        bail!(
            "{} relayed messages lost, {} sockets closed, errors: {:?}",
            stats.lost,
            stats.closed,
            stats.errors
        );
    }
    Ok(Side {
        bytes_per_conn: 0.0,
        connects_per_sec: o.clients as f64 / connect_secs,
        p50_us: stats.p50_us,
        p99_us: stats.p99_us,
        p999_us: stats.p999_us,
        achieved_per_sec: stats.achieved_per_sec,
    })
}

#[derive(Debug, Clone)]
pub struct SoakOpts {
    /// Sessions (two clients each).
    pub sessions: usize,
    /// Messages per second each client sends to its peer.
    pub per_client_rate: f64,
    pub duration: Duration,
    /// When the node is restarted, from the start.
    pub restart_at: Duration,
    /// When the early memory is read, from the start.
    pub early_at: Duration,
    pub connect_concurrency: usize,
    pub services: Services,
}

#[derive(Debug, Clone, Default)]
pub struct SoakOutcome {
    /// Messages sent while both parties were connected (with the margins): each should arrive.
    pub expected: u64,
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reconnects: u64,
    /// Per node: name, RSS early, RSS at the end (the restarted node: its new process).
    pub memory: Vec<(String, u64, u64)>,
    pub restart: Duration,
    pub errors: Vec<String>,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Track {
    /// When it was connected: from its welcome to its socket's end.
    up: Vec<(Instant, Instant)>,
    sent: Vec<(u64, Instant)>,
    received: Vec<u64>,
    reconnects: u64,
    errors: Vec<String>,
}

/// A sender must stay connected this long after a message for it to count (its node may be
/// draining), and the receiver this long (delivery).
const SENDER_MARGIN: Duration = Duration::from_secs(1);
const RECEIVER_MARGIN: Duration = Duration::from_secs(2);

/// Waits for the `welcome` on a fresh socket; `Ok(resumed)`.
async fn welcome(ws: &mut Ws) -> Result<bool> {
    crate::wsutil::recv_until_within(ws, "welcome", Duration::from_secs(10), &mut |m| match m {
        ServerMsg::Welcome { resumed, .. } => Some(*resumed),
        _ => None,
    })
    .await
}

/// One client of a session: sends a numbered candidate every `period` until `stop`, reads
/// everything until `end`, and reconnects (next node first) whenever its socket ends.
struct ClientPlan {
    token: String,
    session: Uuid,
    /// Every node's WebSocket URL; the client starts on `node`.
    urls: Vec<String>,
    node: usize,
    period: Duration,
    /// No sends from then on; the client reads until `end`.
    stop: Instant,
    end: Instant,
}

async fn soak_client(mut ws: Ws, plan: ClientPlan) -> Track {
    let ClientPlan { token, session, urls, mut node, period, stop, end } = plan;
    let mut t = Track::default();
    let mut since = Instant::now();
    let mut seq = 0u64;
    // Spread the clients' sends over the period.
    let first = tokio::time::Instant::now() + period.mul_f64(rand_fraction(session, &token));
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    loop {
        let mut broken = false;
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if text.contains("\"type\":\"signal\"") {
                        if let Some(n) = relay::stamp_of(text) {
                            t.received.push(n);
                        }
                    } else if text.contains("\"type\":\"bye\"") {
                        broken = true;
                    } else if text.contains("\"type\":\"error\"") && t.errors.len() < 5 {
                        t.errors.push(text.to_owned());
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => broken = true,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if now < stop {
                    let text = relay::candidate(session, seq);
                    if ws.send(Message::Text(text.into())).await.is_ok() {
                        t.sent.push((seq, now));
                    } else {
                        broken = true;
                    }
                    seq += 1;
                }
            }
            _ = ping.tick() => {
                let _ = ws.send(Message::Text(format!("{{\"type\":\"ping\",\"seq\":{seq}}}").into())).await;
            }
        }
        if broken {
            t.up.push((since, Instant::now()));
            // Reconnect, the next node first, until a welcome (resumed) or the end.
            loop {
                if Instant::now() >= end {
                    return t;
                }
                node = (node + 1) % urls.len();
                match util::ws_connect(&urls[node], Some(&token)).await {
                    Ok(mut fresh) => match welcome(&mut fresh).await {
                        Ok(resumed) => {
                            if !resumed && t.errors.len() < 5 {
                                t.errors.push(format!("not resumed on {}", urls[node]));
                            }
                            ws = fresh;
                            since = Instant::now();
                            t.reconnects += 1;
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    },
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
    t.up.push((since, Instant::now()));
    t
}

/// A fraction in [0, 1) from the session and token (spreads the clients without an RNG).
fn rand_fraction(session: Uuid, token: &str) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut h);
    token.hash(&mut h);
    (h.finish() % 10_000) as f64 / 10_000.0
}

fn covers(up: &[(Instant, Instant)], from: Instant, to: Instant) -> bool {
    up.iter().any(|(a, b)| *a <= from && to <= *b)
}

pub async fn soak(o: &SoakOpts) -> Result<SoakOutcome> {
    let tmp = tempfile::tempdir()?;
    let ttl = ["--access-ttl-secs", "900", "--device-ttl-secs", "900"].map(str::to_owned);
    let mut d = Deployment::start(&o.services, tmp.path(), 3, true, &ttl).await?;
    let acc = accounts(&d.api(0)?, o.sessions, o.sessions).await?;
    let (ops, devs) = tokens(&d.api(0)?, &acc).await?;
    let urls: Vec<String> = (0..3).map(|i| d.url(i)).collect();
    // Session k: its terminal on node k % 3, its operator on node (k + 1) % 3.
    let connect = |tokens: Vec<String>, shift: usize| {
        let urls = urls.clone();
        let items: Vec<(usize, String)> = tokens.into_iter().enumerate().collect();
        util::bounded(items, o.connect_concurrency, move |(k, t)| {
            let url = urls[(k + shift) % 3].clone();
            async move { Ok(((k + shift) % 3, t.clone(), util::ws_connect(&url, Some(&t)).await?)) }
        })
    };
    let mut terminals = connect(devs, 0).await?;
    let mut operators = connect(ops, 1).await?;
    let item = acc.item.clone();
    let ts =
        futures_util::future::try_join_all(terminals.iter_mut().map(|(_, _, ws)| take_and_wait(ws, &item)));
    let os = futures_util::future::try_join_all(operators.iter_mut().map(|(_, _, ws)| accept_one(ws)));
    let (ts, os) = futures_util::future::try_join(ts, os).await?;

    let start = Instant::now();
    let stop = start + o.duration.saturating_sub(RECEIVER_MARGIN + SENDER_MARGIN);
    let end = start + o.duration;
    let period = Duration::from_secs_f64(1.0 / o.per_client_rate.max(0.001));
    let mut handles = Vec::new();
    for ((node, token, ws), session) in
        terminals.into_iter().zip(ts.iter()).chain(operators.into_iter().zip(os.iter()))
    {
        let urls = urls.clone();
        let session = *session;
        let plan = ClientPlan { token, session, urls, node, period, stop, end };
        handles.push((session, tokio::spawn(soak_client(ws, plan))));
    }
    eprintln!("cluster-soak: {} sessions signaling over 3 nodes", o.sessions);
    // Early memory, the restart of node c (not the authority: node a took the lease first).
    tokio::time::sleep_until((start + o.early_at.min(o.restart_at)).into()).await;
    let early: Vec<u64> = d.nodes.iter().map(|p| p.rss().unwrap_or(0)).collect();
    tokio::time::sleep_until((start + o.restart_at).into()).await;
    let restart = d.restart(2).await?;
    eprintln!("cluster-soak: node c restarted in {:.1} s", restart.as_secs_f64());
    tokio::time::sleep_until(end.into()).await;
    let late: Vec<u64> = d.nodes.iter().map(|p| p.rss().unwrap_or(0)).collect();

    let mut tracks: HashMap<Uuid, Vec<Track>> = HashMap::new();
    for (session, h) in handles {
        let t = h.await.context("client task")?;
        tracks.entry(session).or_default().push(t);
    }
    d.stop().await?;
    let mut out = SoakOutcome { restart, ..SoakOutcome::default() };
    for (session, pair) in &tracks {
        if pair.len() != 2 {
            out.errors.push(format!("session {session}: {} clients", pair.len()));
            continue;
        }
        for (from, to) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
            let mut seen: HashMap<u64, u32> = HashMap::new();
            for n in &to.received {
                *seen.entry(*n).or_default() += 1;
            }
            out.duplicated += seen.values().filter(|c| **c > 1).map(|c| u64::from(*c - 1)).sum::<u64>();
            for (n, at) in &from.sent {
                out.sent += 1;
                if covers(&from.up, *at, *at + SENDER_MARGIN) && covers(&to.up, *at, *at + RECEIVER_MARGIN) {
                    out.expected += 1;
                    if !seen.contains_key(n) {
                        out.lost += 1;
                    }
                }
            }
        }
        for t in pair {
            out.reconnects += t.reconnects;
            out.errors.extend(t.errors.iter().take(2).cloned());
        }
    }
    out.memory = ["node-a", "node-b", "node-c"]
        .iter()
        .zip(early.iter().zip(late.iter()))
        .map(|(n, (e, l))| ((*n).to_owned(), *e, *l))
        .collect();
    Ok(out)
}
