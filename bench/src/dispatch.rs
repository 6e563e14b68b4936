//! `dispatch`: time per assignment with many tickets waiting, in the pure `Dispatcher` and
//! end to end through the real server (switchboard + persistence) on SQLite and PostgreSQL.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::json;
use shared::protocol::ServerMsg;
use signaling_server::dispatch::{
    Config, Dispatcher, LineId, Millis, OperatorId, OperatorState, Priority, TicketId,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::signaling::{ids, server_env};
use crate::util::{self, Api, DEMO_PASSWORD, OPERATOR_PASSWORD, Proc, Ws};
use crate::wsutil::{recv_until, send_text};

#[derive(Debug, Clone)]
pub struct Opts {
    pub runs: usize,
    pub tickets: usize,
    pub operators: usize,
    pub lines: usize,
    /// Skills per operator.
    pub skills: usize,
    /// Terminals the end-to-end tickets come from (tickets / terminals each).
    pub terminals: usize,
    /// Assignments timed per pure run.
    pub pure_iterations: usize,
    pub backends: Vec<Backend>,
    pub pg_url: String,
    pub server_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Per-run percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pcts {
    pub p50_us: f64,
    pub p99_us: f64,
}

fn pcts(mut ns: Vec<u64>) -> Pcts {
    ns.sort_unstable();
    Pcts {
        p50_us: util::percentile(&ns, 50.0) as f64 / 1000.0,
        p99_us: util::percentile(&ns, 99.0) as f64 / 1000.0,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Offer decision + accept, per run.
    pub pure: Vec<Pcts>,
    /// The switchboard core's whole turn for one `accept` (the real `Core`: dispatch, session
    /// start, the queue's move recorded for the positions tick), per run.
    pub pure_positions: Vec<Pcts>,
    /// The core's ticks that told a line's residents their moved positions, per run.
    pub positions_tick: Vec<Pcts>,
    /// `accept` → `session_started` over WS, per backend, per round.
    pub e2e: Vec<(Backend, Vec<Pcts>)>,
    /// Tickets per second while filling the queue end to end, per backend.
    pub fill_rate: Vec<(Backend, f64)>,
}

pub async fn run(o: &Opts) -> Result<Outcome> {
    let mut out = Outcome::default();
    for run in 0..o.runs {
        let a = pure_run(o, run as u64);
        let (turn, refresh) = core_run(o, run as u64);
        eprintln!(
            "dispatch pure run {run}: assign {a:?}; core accept turn {turn:?}, positions tick {refresh:?}"
        );
        out.pure.push(a);
        out.pure_positions.push(turn);
        out.positions_tick.push(refresh);
    }
    if !o.backends.is_empty() {
        let bin = util::server_binary(o.server_bin.as_deref())?;
        for &b in &o.backends {
            let (rounds, fill) =
                e2e(o, b, &bin).await.with_context(|| format!("end to end on {}", b.name()))?;
            out.e2e.push((b, rounds));
            out.fill_rate.push((b, fill));
        }
    }
    Ok(out)
}

fn skills_of(i: usize, lines: &[LineId], k: usize) -> Vec<LineId> {
    let n = lines.len();
    let mut s: Vec<LineId> = (0..k.min(n)).map(|j| lines[(i + j * (n / k.max(1)).max(1)) % n]).collect();
    s.sort();
    s.dedup();
    s
}

fn priority(i: usize) -> Priority {
    if i.is_multiple_of(10) { Priority::Elderly } else { Priority::Normal }
}

/// One pure run: `tickets` waiting on `lines` lines, `operators` operators all ringing; then
/// round robin over the operators: accept the ring, end the call, enqueue a fresh ticket
/// (the queue stays full), finish wrap-up (the dispatcher matches the next ticket). A sample
/// is the time of `wrap_up_done` (the dispatch decision, an `Offer`) plus `accept`.
fn pure_run(o: &Opts, run: u64) -> Pcts {
    let mut d = Dispatcher::new(Config::default());
    let lines: Vec<LineId> = (0..o.lines).map(|_| LineId(Uuid::new_v4())).collect();
    let mut now = 1_780_000_000_000 + run as i64 * 10_000_000;
    let mut next = 0usize;
    let mut enqueue = |d: &mut Dispatcher, now: i64| {
        let line = lines[next % lines.len()];
        let _ = d.enqueue(TicketId(Uuid::new_v4()), line, priority(next), Millis(now));
        next += 1;
    };
    for _ in 0..o.tickets {
        enqueue(&mut d, now);
    }
    let ops: Vec<OperatorId> = (0..o.operators).map(|_| OperatorId(Uuid::new_v4())).collect();
    for (i, &op) in ops.iter().enumerate() {
        now += 1;
        let _ = d.operator_online(op, &skills_of(i, &lines, o.skills), Millis(now));
    }
    let mut assign = Vec::with_capacity(o.pure_iterations);
    for i in 0..o.pure_iterations {
        let op = ops[i % ops.len()];
        now += 1;
        let Some(OperatorState::Ringing(ticket)) = d.operator_state(op) else { continue };
        let t = Instant::now();
        let actions = d.accept(op, ticket, Millis(now));
        let accept_ns = t.elapsed().as_nanos();
        black_box(actions.ok());
        now += 1;
        let _ = d.call_ended(op, Millis(now));
        enqueue(&mut d, now);
        let t = Instant::now();
        let offered = d.wrap_up_done(op, Millis(now));
        let match_ns = t.elapsed().as_nanos();
        black_box(offered.ok());
        assign.push(u64::try_from(accept_ns + match_ns).unwrap_or(u64::MAX));
    }
    pcts(assign)
}

/// The real switchboard core ([`Core`], as the driver feeds it, no I/O) with `tickets`
/// waiting on `lines` lines from `terminals` terminals and `operators` operators ringing; then
/// round robin over the operators: `accept` (timed: the accept's whole turn), every tick the
/// core asks for until the next assignment 2 ms later (the ones that told residents their
/// positions are timed), end the call, a fresh ticket (the queue stays full), wrap up (the
/// next ring). Returns the accept turns and the positions ticks.
fn core_run(o: &Opts, run: u64) -> (Pcts, Pcts) {
    use shared::protocol::{ClientMsg, Outcome, Role, ServerMsg, TicketView};
    use signaling_server::switchboard::core::{Core, CoreSettings, Input, Lookup, Output, PartyInfo};
    use std::collections::HashMap;

    let settings = CoreSettings {
        ring_timeout_ms: 3_600_000,
        overflow_after_ms: 0,
        resume_window_ms: 60_000,
        max_open_tickets_per_terminal: usize::MAX,
        ice: signaling_server::ice::IceConfig::default(),
    };
    let lines: Vec<Uuid> = (0..o.lines).map(|_| Uuid::new_v4()).collect();
    let names: HashMap<Uuid, String> =
        lines.iter().enumerate().map(|(i, l)| (*l, format!("压测业务{i}"))).collect();
    let items: Vec<Uuid> = (0..o.lines).map(|_| Uuid::new_v4()).collect();
    let point = Uuid::new_v4();
    let mut core = Core::new(settings, names.clone());
    let mut now = 1_780_000_000_000 + run as i64 * 10_000_000;
    // What the parties were last told: each operator's ringing ticket and started session.
    let mut told = Told::default();
    // As the driver does: every deadline due is ticked at once.
    let tick_due = |core: &mut Core, now: i64, timed: &mut Vec<u64>| -> Vec<Output> {
        let mut outs = Vec::new();
        while core.next_deadline().is_some_and(|d| d <= now) {
            let t = Instant::now();
            let o = core.handle(Input::Tick, now);
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // A tick that told residents their positions, not one that also sent the board (once
            // a second, its own cost).
            let positions =
                o.iter().any(|x| matches!(x, Output::Send { msg: ServerMsg::QueuePosition { .. }, .. }));
            let board = o.iter().any(|x| matches!(x, Output::SendMany { msg: ServerMsg::Board { .. }, .. }));
            if positions && !board {
                timed.push(ns);
            }
            outs.extend(o);
        }
        outs
    };
    let mut untimed = Vec::new();
    let terminals: Vec<Uuid> = (0..o.terminals.max(1)).map(|_| Uuid::new_v4()).collect();
    for &t in &terminals {
        let party =
            PartyInfo { id: t, role: Role::Terminal, point_id: Some(point), name: "压测终端".into() };
        told.absorb(core.handle(Input::Connect { party, conn: t, skills: Vec::new(), center: None }, now));
    }
    let mut next = 0usize;
    let mut take = |core: &mut Core, now: i64| -> Vec<Output> {
        let k = next % lines.len();
        let terminal = terminals[next % terminals.len()];
        let view = TicketView {
            ticket_id: Uuid::now_v7(),
            number: format!("A-{next:04}"),
            item_id: items[k],
            item_name: format!("压测事项{k}"),
            line_id: lines[k],
            line_name: names[&lines[k]].clone(),
            point_id: point,
            point_name: "压测服务点".into(),
            priority: if next.is_multiple_of(10) {
                shared::protocol::Priority::Elderly
            } else {
                shared::protocol::Priority::Normal
            },
            resident_name_masked: None,
            id_number_masked: None,
            waited_secs: 0,
            assisted_by: None,
        };
        next += 1;
        let input = Input::TicketCreated {
            terminal,
            request_id: Uuid::new_v4(),
            view,
            recording: false,
            center: None,
            appointment: None,
        };
        core.handle(input, now)
    };
    for _ in 0..o.tickets {
        now += 1;
        take(&mut core, now);
        tick_due(&mut core, now, &mut untimed);
    }
    let line_ids: Vec<LineId> = lines.iter().map(|l| LineId(*l)).collect();
    let ops: Vec<Uuid> = (0..o.operators).map(|_| Uuid::new_v4()).collect();
    for (i, &op) in ops.iter().enumerate() {
        now += 1;
        let party = PartyInfo { id: op, role: Role::Operator, point_id: None, name: format!("bench-op{i}") };
        let skills = skills_of(i, &line_ids, o.skills).iter().map(|l| l.0).collect();
        told.absorb(core.handle(Input::Connect { party, conn: op, skills, center: None }, now));
        let msg = ClientMsg::SetAvailability { available: true };
        told.absorb(core.handle(Input::Message { party: op, conn: op, msg, lookup: Lookup::None }, now));
        told.absorb(tick_due(&mut core, now, &mut untimed));
    }
    let mut turns = Vec::with_capacity(o.pure_iterations);
    let mut ticks = Vec::new();
    // Past the setup's ticks: only the assignments' own are timed.
    now += 5_000;
    told.absorb(tick_due(&mut core, now, &mut untimed));
    for i in 0..o.pure_iterations {
        let op = ops[i % ops.len()];
        let Some(ticket) = told.ringing.remove(&op) else { continue };
        now += 2;
        let msg = ClientMsg::Accept { ticket_id: ticket };
        let t = Instant::now();
        let outs = core.handle(Input::Message { party: op, conn: op, msg, lookup: Lookup::None }, now);
        turns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        told.absorb(outs);
        told.absorb(tick_due(&mut core, now, &mut ticks));
        let Some(s) = told.session.remove(&op) else { continue };
        let feed = |core: &mut Core, msg: ClientMsg| {
            core.handle(Input::Message { party: op, conn: op, msg, lookup: Lookup::None }, now)
        };
        told.absorb(feed(&mut core, ClientMsg::EndCall { session_id: s }));
        told.absorb(take(&mut core, now));
        told.absorb(feed(
            &mut core,
            ClientMsg::WrapUp { session_id: s, outcome: Outcome::Completed, notes: None },
        ));
    }
    assert!(
        turns.len() * 2 > o.pure_iterations,
        "most operators were rung: {} of {}",
        turns.len(),
        o.pure_iterations
    );
    (pcts(turns), pcts(ticks))
}

/// What the core told the operators: the ticket ringing each, the session each started.
#[derive(Default)]
struct Told {
    ringing: std::collections::HashMap<Uuid, Uuid>,
    session: std::collections::HashMap<Uuid, Uuid>,
}

impl Told {
    fn absorb(&mut self, outs: Vec<signaling_server::switchboard::core::Output>) {
        use shared::protocol::ServerMsg;
        use signaling_server::switchboard::core::Output;
        for out in outs {
            match out {
                Output::Send { to, msg: ServerMsg::Ringing { ticket, .. } } => {
                    self.ringing.insert(to, ticket.ticket_id);
                }
                Output::Send { to, msg: ServerMsg::SessionStarted { session } } => {
                    self.session.insert(to, session.session_id);
                }
                _ => {}
            }
        }
    }
}

// ---- end to end -----------------------------------------------------------------------------

struct Server {
    proc: Proc,
    api: Api,
    _dir: tempfile::TempDir,
    schema: Option<String>,
}

async fn start(o: &Opts, b: Backend, bin: &Path) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut args =
        vec!["--demo".to_owned(), "--data-dir".to_owned(), dir.path().join("data").display().to_string()];
    let mut schema = None;
    if b == Backend::Postgres {
        use sqlx::{Connection, Executor};
        let name = format!("bench_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&o.pg_url).await.context("PostgreSQL reachable")?;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).await?;
        conn.close().await?;
        args.push("--database-url".into());
        args.push(format!("{}?options=-c%20search_path%3D{name}", o.pg_url));
        schema = Some(name);
    }
    let mut env = server_env();
    // Rings are answered in turn below; none may time out while the others are measured.
    // (300 s is the longest ring the server accepts.)
    env.push(("BANGBAN_RING_TIMEOUT_SECS", "300".into()));
    // The load terminals each queue many tickets (a kiosk holds one in production).
    env.push(("BANGBAN_MAX_OPEN_TICKETS_PER_TERMINAL", "100000".into()));
    let log = dir.path().join("server.log");
    let mut proc = Proc::spawn(bin, &args, &env, log).await?;
    let api = Api::new(proc.addr)?;
    proc.wait_ready(&api.http, "/healthz").await?;
    Ok(Server { proc, api, _dir: dir, schema })
}

async fn drop_schema(o: &Opts, schema: &str) -> Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(&o.pg_url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).await?;
    conn.close().await?;
    Ok(())
}

async fn e2e(o: &Opts, b: Backend, bin: &Path) -> Result<(Vec<Pcts>, f64)> {
    let server = start(o, b, bin).await?;
    let result = e2e_on(o, b, &server).await;
    let log = server.proc.log.clone();
    server.proc.stop().await?;
    if let Some(s) = &server.schema {
        drop_schema(o, s).await?;
    }
    result.map_err(|e| e.context(format!("server log:\n{}", util::tail(&log))))
}

async fn e2e_on(o: &Opts, b: Backend, server: &Server) -> Result<(Vec<Pcts>, f64)> {
    let api = &server.api;
    let t0 = Instant::now();
    let admin = api.login("admin", DEMO_PASSWORD).await?;
    // Lines: the demo's, plus new ones up to `lines`, each with one remote item.
    let mut lines = ids(&api.get("/api/v1/lines", &admin).await?);
    for i in lines.len()..o.lines {
        let l = api
            .post(
                "/api/v1/lines",
                Some(&admin),
                json!({ "code": format!("BENCH{i:02}"), "name": format!("压测业务{i}") }),
                201,
            )
            .await?;
        lines.push(l["id"].as_str().context("line id")?.to_owned());
    }
    lines.truncate(o.lines);
    let items = api.get("/api/v1/items?remote=true", &admin).await?;
    let mut line_items = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let found = items.as_array().and_then(|a| {
            a.iter().find(|it| it["line_id"].as_str() == Some(line)).and_then(|it| it["id"].as_str())
        });
        let item = match found {
            Some(id) => id.to_owned(),
            None => {
                let it = api
                    .post(
                        "/api/v1/items",
                        Some(&admin),
                        json!({ "code": format!("BENCH-ITEM{i:02}"), "name": format!("压测事项{i}"), "line_id": line, "remote_allowed": true }),
                        201,
                    )
                    .await?;
                it["id"].as_str().context("item id")?.to_owned()
            }
        };
        line_items.push(item);
    }
    let points = api.get("/api/v1/points", &admin).await?;
    let point = points[0]["id"].as_str().context("a point")?.to_owned();
    let line_ids: Vec<LineId> =
        lines.iter().map(|l| l.parse().map(LineId)).collect::<Result<_, _>>().context("line ids")?;
    let names: Vec<String> = (0..o.operators).map(|i| format!("bench-op{i}")).collect();
    util::bounded(names.iter().cloned().enumerate().collect(), 2, |(i, u)| {
        let (api, admin) = (api.clone(), admin.clone());
        let skills: Vec<String> = skills_of(i, &line_ids, o.skills).iter().map(|l| l.0.to_string()).collect();
        async move { api.create_operator(&admin, &u, &skills).await }
    })
    .await?;
    let creds = util::bounded((0..o.terminals).collect(), 16, |i| {
        let (api, admin, point) = (api.clone(), admin.clone(), point.clone());
        async move { api.register_terminal(&admin, &point, &format!("压测终端{i}")).await }
    })
    .await?;
    let dev_tokens = util::bounded(creds, 16, |c| {
        let api = api.clone();
        async move { api.device_token(&c).await }
    })
    .await?;
    eprintln!("dispatch {}: setup took {:.1} s", b.name(), t0.elapsed().as_secs_f64());

    // Fill the queue: every terminal takes its share of tickets, one after the other, then
    // keeps reading (queue positions) and pinging until told to stop.
    let url = format!("ws://{}/ws", server.proc.addr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (filled_tx, mut filled_rx) = mpsc::channel::<Result<()>>(o.terminals.max(1));
    let per = o.tickets.div_ceil(o.terminals.max(1));
    let t_fill = Instant::now();
    let mut terminal_tasks = Vec::new();
    let socks = util::bounded(dev_tokens, 64, |t| {
        let url = url.clone();
        async move { util::ws_connect(&url, Some(&t)).await }
    })
    .await?;
    for (i, ws) in socks.into_iter().enumerate() {
        let n = per.min(o.tickets.saturating_sub(i * per));
        let items: Vec<String> =
            (0..n).map(|k| line_items[(i * per + k) % line_items.len()].clone()).collect();
        terminal_tasks.push(tokio::spawn(terminal(ws, items, filled_tx.clone(), stop_rx.clone())));
    }
    drop(filled_tx);
    for _ in 0..o.terminals {
        filled_rx.recv().await.context("terminal task ended")??;
    }
    let fill_rate = o.tickets as f64 / t_fill.elapsed().as_secs_f64();
    eprintln!("dispatch {}: {} tickets waiting ({fill_rate:.0} tickets/s)", b.name(), o.tickets);

    // Operators: log in, connect, become available, each waits for its ring.
    let tokens = util::bounded(names, 2, |u| {
        let api = api.clone();
        async move { api.login(&u, OPERATOR_PASSWORD).await }
    })
    .await?;
    let op_socks = util::bounded(tokens, 64, |t| {
        let url = url.clone();
        async move { util::ws_connect(&url, Some(&t)).await }
    })
    .await?;
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<usize>>(o.operators.max(1));
    let mut go = Vec::new();
    let mut op_tasks = Vec::new();
    for (i, ws) in op_socks.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Cmd>(2);
        go.push(tx);
        op_tasks.push(tokio::spawn(operator(i, ws, rx, ready_tx.clone())));
    }
    drop(ready_tx);
    let mut rounds = Vec::new();
    for round in 0..o.runs {
        for _ in 0..o.operators {
            ready_rx.recv().await.context("operator task ended")??;
        }
        let mut samples = Vec::with_capacity(o.operators);
        for tx in &go {
            let (reply, rx) = oneshot::channel();
            tx.send(Cmd::Accept(reply)).await.context("operator gone")?;
            samples.push(rx.await.context("operator gone")??);
        }
        let p = pcts(samples);
        eprintln!("dispatch {} round {round}: accept → session_started {p:?}", b.name());
        rounds.push(p);
        if round + 1 < o.runs {
            for tx in &go {
                tx.send(Cmd::Next).await.context("operator gone")?;
            }
        }
    }
    let _ = stop_tx.send(true);
    drop(go);
    for t in terminal_tasks {
        t.await.context("terminal task")??;
    }
    for t in op_tasks {
        t.await.context("operator task")??;
    }
    Ok((rounds, fill_rate))
}

enum Cmd {
    /// Accept the ringing ticket; reply with the ns until `session_started`.
    Accept(oneshot::Sender<Result<u64>>),
    /// End the call and wrap up: ready for the next ring.
    Next,
}

async fn terminal(
    mut ws: Ws,
    items: Vec<String>,
    filled: mpsc::Sender<Result<()>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut fill = async || -> Result<()> {
        for item in &items {
            let req = Uuid::new_v4();
            send_text(
                &mut ws,
                format!("{{\"type\":\"take_ticket\",\"item_id\":\"{item}\",\"request_id\":\"{req}\"}}"),
            )
            .await?;
            recv_until(&mut ws, "ticket_issued", |m| {
                matches!(m, ServerMsg::TicketIssued { request_id, .. } if *request_id == req).then_some(())
            })
            .await?;
        }
        Ok(())
    };
    let r = fill().await;
    let failed = r.is_err();
    let _ = filled.send(r).await;
    if failed {
        return Ok(());
    }
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ping.tick() => {
                seq += 1;
                send_text(&mut ws, format!("{{\"type\":\"ping\",\"seq\":{seq}}}")).await?;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().contains("\"type\":\"bye\"") {
                        bail!("terminal got {}", t.as_str());
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => bail!("terminal socket closed"),
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

async fn operator(
    i: usize,
    mut ws: Ws,
    mut cmds: mpsc::Receiver<Cmd>,
    ready: mpsc::Sender<Result<usize>>,
) -> Result<()> {
    send_text(&mut ws, "{\"type\":\"set_availability\",\"available\":true}".into()).await?;
    loop {
        let rung = recv_until(&mut ws, "ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.ticket_id),
            _ => None,
        })
        .await;
        let ticket = match rung {
            Ok(t) => t,
            Err(e) => {
                let _ = ready.send(Err(e)).await;
                return Ok(());
            }
        };
        let _ = ready.send(Ok(i)).await;
        let Some(Cmd::Accept(reply)) = wait_cmd(&mut ws, &mut cmds).await? else { break };
        let t = Instant::now();
        let r = async {
            send_text(&mut ws, format!("{{\"type\":\"accept\",\"ticket_id\":\"{ticket}\"}}")).await?;
            recv_until(&mut ws, "session_started", |m| match m {
                ServerMsg::SessionStarted { session } => Some(session.session_id),
                _ => None,
            })
            .await
        }
        .await;
        let elapsed = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let session = match r {
            Ok(s) => {
                let _ = reply.send(Ok(elapsed));
                s
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let Some(Cmd::Next) = wait_cmd(&mut ws, &mut cmds).await? else { break };
        send_text(
            &mut ws,
            format!("{{\"type\":\"wrap_up\",\"session_id\":\"{session}\",\"outcome\":\"completed\"}}"),
        )
        .await?;
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Waits for the coordinator, meanwhile reading the socket and pinging (the server closes a
/// socket silent for 45 s).
async fn wait_cmd(ws: &mut Ws, cmds: &mut mpsc::Receiver<Cmd>) -> Result<Option<Cmd>> {
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(10),
        Duration::from_secs(10),
    );
    let mut seq = 0u64;
    loop {
        tokio::select! {
            cmd = cmds.recv() => return Ok(cmd),
            _ = ping.tick() => {
                seq += 1;
                send_text(ws, format!("{{\"type\":\"ping\",\"seq\":{seq}}}")).await?;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().contains("\"type\":\"bye\"") || t.as_str().contains("\"type\":\"error\"") {
                        bail!("operator got {}", t.as_str());
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => bail!("operator socket closed"),
            }
        }
    }
}
