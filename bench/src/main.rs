//! `bangban-bench`: drives the real binaries over loopback and writes rows of BENCHMARKS.md,
//! each with the command that reproduces it, the median of several runs and the ratio to its
//! reference. `--short` is the CI mode: small numbers, fails on errors, never on timings.

mod call;
mod dispatch;
mod echo;
mod materials;
mod proxy;
mod relay;
mod signaling;
mod table;
mod util;
mod wsutil;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::table::Row;

#[derive(Debug, Parser)]
#[command(name = "bangban-bench", about = "帮办 Bangban benchmarks over loopback")]
struct Cli {
    /// CI mode: small numbers (200 clients, 1000 msg/s, 1000 tickets); fails only on errors.
    #[arg(long, global = true)]
    short: bool,
    /// Rewrite the rows measured in this markdown file (others are kept).
    #[arg(long, global = true, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Use this server binary instead of building `target/release/signaling-server`.
    #[arg(long, global = true, value_name = "PATH")]
    server_bin: Option<PathBuf>,
    /// Use this terminal binary instead of building `target/release/endpoint-client`.
    #[arg(long, global = true, value_name = "PATH")]
    endpoint_bin: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// WebSocket clients on the real server: memory per connection, connects/s, relay latency.
    Signaling(SignalingArgs),
    /// Time per assignment: the pure dispatcher, and accept → session_started end to end.
    Dispatch(DispatchArgs),
    /// Call setup (endpoint-client ↔ console in Chromium) compared with Chromium ↔ Chromium.
    #[command(alias = "callsetup")]
    CallSetup(CallArgs),
    /// A 20 MB scan uploaded as the terminal does (tus), against curl → nginx; on loopback and
    /// through a proxy emulating 20 ms RTT and 1 % loss.
    #[command(alias = "materials-upload")]
    Materials(MaterialsArgs),
    /// The terminal's CPU and memory in a call compared with a Chromium tab in the same call.
    #[command(alias = "footprint")]
    TerminalFootprint(FootprintArgs),
    /// Many calls through one terminal process: its memory after call 5 and after the last.
    TerminalSoak(SoakArgs),
    /// The terminal's CPU and memory with a supervisor monitoring the call, against the same call
    /// before; and the supervisor's click → first frame.
    #[command(alias = "three-party")]
    TerminalThreeParty(ThreePartyArgs),
    /// Everything, with the default numbers of each benchmark.
    All,
    /// The reference relay (started by `signaling`).
    #[command(hide = true)]
    EchoRelay {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Args, Clone)]
struct SignalingArgs {
    /// WebSocket clients (terminals, plus one operator per pair).
    #[arg(long)]
    clients: Option<usize>,
    /// Target of relayed messages per second, over all pairs.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long)]
    runs: Option<usize>,
    /// Terminal–operator pairs in live sessions that relay (default rate / 100).
    #[arg(long)]
    pairs: Option<usize>,
    /// Measured seconds of relay per run (after a warm-up).
    #[arg(long)]
    seconds: Option<u64>,
}

#[derive(Debug, Args, Clone, Default)]
struct MaterialsArgs {
    /// Runs on loopback (default 5; 1 with --short).
    #[arg(long)]
    runs: Option<usize>,
    /// Runs through the impaired link (default 3; 1 with --short).
    #[arg(long)]
    impaired_runs: Option<usize>,
    /// Size of the scan in MB (default 20; 1 with --short).
    #[arg(long)]
    mb: Option<usize>,
}

#[derive(Debug, Args, Clone)]
struct CallArgs {
    /// Measured calls of each kind (endpoint-client, Chromium), interleaved.
    #[arg(long)]
    runs: Option<usize>,
}

#[derive(Debug, Args, Clone, Default)]
struct ThreePartyArgs {
    #[arg(long)]
    runs: Option<usize>,
    /// Measured seconds per window (CPU over this window).
    #[arg(long)]
    seconds: Option<u64>,
}

#[derive(Debug, Args, Clone)]
struct SoakArgs {
    /// Calls in a row (default 100; 7 with --short).
    #[arg(long)]
    calls: Option<usize>,
    /// Seconds each call lasts after the first decoded frame (default 4).
    #[arg(long)]
    hold: Option<u64>,
    /// Run the terminal without the systemd unit's glibc malloc settings (what they fix).
    #[arg(long)]
    no_malloc_env: bool,
    /// More environment for the terminal (e.g. glibc malloc tunables), `NAME=VALUE`, repeatable.
    #[arg(long = "endpoint-env", value_parser = parse_env_pair)]
    endpoint_env: Vec<(String, String)>,
}

/// The glibc malloc settings (`Environment=MALLOC_*`) of the terminal's systemd unit, so the
/// bench runs the terminal as installed.
fn unit_malloc_env() -> Result<Vec<(String, String)>> {
    let path = util::workspace_root().join("deploy/systemd/bangban-endpoint.service");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .filter(|kv| kv.starts_with("MALLOC_"))
        .filter_map(|kv| parse_env_pair(kv).ok())
        .collect();
    anyhow::ensure!(!env.is_empty(), "no Environment=MALLOC_* in {}", path.display());
    Ok(env)
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

#[derive(Debug, Args, Clone)]
struct FootprintArgs {
    #[arg(long)]
    runs: Option<usize>,
    /// Measured seconds per call (CPU over this window).
    #[arg(long)]
    seconds: Option<u64>,
    /// The video codec of the call: the console's workstation setting (视频编码), which both the
    /// endpoint-client and the Chromium tab follow.
    #[arg(long, default_value = "vp8", value_parser = ["vp8", "h264"])]
    codec: String,
}

#[derive(Debug, Args, Clone)]
struct DispatchArgs {
    #[arg(long)]
    runs: Option<usize>,
    /// Waiting tickets.
    #[arg(long)]
    tickets: Option<usize>,
    #[arg(long)]
    operators: Option<usize>,
    /// Backends for the end-to-end variant (comma-separated: sqlite, postgres; empty: none).
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// PostgreSQL base URL (trust auth); each run gets a fresh schema.
    #[arg(long, env = "BANGBAN_TEST_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::EchoRelay { listen } = cli.cmd {
        return match runtime().and_then(|rt| rt.block_on(echo::serve(listen))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo relay: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(code) = raise_nofile() {
        return code;
    }
    match runtime().and_then(|rt| rt.block_on(run(cli))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The bench holds as many sockets as the server: re-executes itself under
/// `ulimit -n 65536` when the open-file limit is lower (once).
fn raise_nofile() -> Option<ExitCode> {
    const MARK: &str = "BANGBAN_BENCH_NOFILE_RAISED";
    if util::nofile_limit() >= u64::from(util::CHILD_NOFILE) || std::env::var_os(MARK).is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n {} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\"",
            util::CHILD_NOFILE
        ))
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .status()
        .ok()?;
    Some(ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)))
}

/// The command line that reproduces a row.
fn command(sub: &str, args: &str) -> String {
    let args = if args.is_empty() { String::new() } else { format!(" {args}") };
    format!("cargo run --release -p bangban-bench -- {sub}{args}")
}

async fn run(cli: Cli) -> Result<()> {
    if cli.short && cli.write.is_some() {
        bail!("--short runs are smoke tests: they are not written to a file");
    }
    let mut rows: Vec<Row> = Vec::new();
    match &cli.cmd {
        Cmd::Signaling(a) => rows.extend(signaling_rows(&cli, a).await?),
        Cmd::Dispatch(a) => rows.extend(dispatch_rows(&cli, a).await?),
        Cmd::CallSetup(a) => rows.extend(call_setup_rows(&cli, a).await?),
        Cmd::TerminalFootprint(a) => rows.extend(footprint_rows(&cli, a).await?),
        Cmd::TerminalSoak(a) => rows.extend(soak_rows(&cli, a).await?),
        Cmd::TerminalThreeParty(a) => rows.extend(three_party_rows(&cli, a).await?),
        Cmd::Materials(a) => rows.extend(materials_rows(&cli, a).await?),
        Cmd::All => {
            let none = SignalingArgs { clients: None, rate: None, runs: None, pairs: None, seconds: None };
            rows.extend(signaling_rows(&cli, &none).await?);
            let none = DispatchArgs {
                runs: None,
                tickets: None,
                operators: None,
                backends: None,
                pg_url: std::env::var("BANGBAN_TEST_PG_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            };
            rows.extend(dispatch_rows(&cli, &none).await?);
            rows.extend(materials_rows(&cli, &MaterialsArgs::default()).await?);
            rows.extend(call_setup_rows(&cli, &CallArgs { runs: None }).await?);
            for codec in ["vp8", "h264"] {
                let a = FootprintArgs { runs: None, seconds: None, codec: codec.into() };
                rows.extend(footprint_rows(&cli, &a).await?);
            }
            rows.extend(three_party_rows(&cli, &ThreePartyArgs::default()).await?);
        }
        Cmd::EchoRelay { .. } => {}
    }
    println!("\n{}", table::render_rows(&rows));
    let misses: Vec<&Row> = rows.iter().filter(|r| r.missed).collect();
    for r in &misses {
        println!("goal missed: {} — {} (goal {})", r.id, r.result, r.goal);
    }
    if let Some(path) = &cli.write {
        table::write(path, &rows, &util::provenance())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 { format!("{:.2} ms", us / 1000.0) } else { format!("{us:.0} µs") }
}

fn fmt_kb(bytes: f64) -> String {
    format!("{:.1} KB", bytes / 1000.0)
}

fn runs_of(values: &[f64], f: fn(f64) -> String) -> String {
    values.iter().map(|v| f(*v)).collect::<Vec<_>>().join(", ")
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() { format!("{:.2}×", a / b) } else { "—".into() }
}

async fn signaling_rows(cli: &Cli, a: &SignalingArgs) -> Result<Vec<Row>> {
    let (clients, rate, runs, seconds) = if cli.short {
        (a.clients.unwrap_or(200), a.rate.unwrap_or(1000.0), a.runs.unwrap_or(1), a.seconds.unwrap_or(3))
    } else {
        (
            a.clients.unwrap_or(10_000),
            a.rate.unwrap_or(20_000.0),
            a.runs.unwrap_or(3),
            a.seconds.unwrap_or(10),
        )
    };
    let pairs = a.pairs.unwrap_or(((rate / 100.0) as usize).clamp(10, clients / 2));
    let opts = signaling::Opts {
        clients,
        rate,
        runs,
        pairs,
        warmup: Duration::from_secs(if cli.short { 1 } else { 2 }),
        measure: Duration::from_secs(seconds),
        groups: 8,
        connect_concurrency: 64,
        server_bin: util::server_binary(cli.server_bin.as_deref())?,
    };
    let out = signaling::run(&opts).await?;
    let mut args = format!("--clients {clients} --rate {rate} --runs {runs}");
    if a.pairs.is_some() {
        args.push_str(&format!(" --pairs {pairs}"));
    }
    if a.seconds.is_some() {
        args.push_str(&format!(" --seconds {seconds}"));
    }
    let cmd = command("signaling", &args);
    let pick = |v: &[signaling::Side], f: fn(&signaling::Side) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    let mut rows = Vec::new();
    let reference = "minimal axum relay, same buffers, same run";
    let mem = pick(&out.server, |s| s.bytes_per_conn);
    let mem_ref = pick(&out.reference, |s| s.bytes_per_conn);
    let (m, mr) = (util::median(&mem), util::median(&mem_ref));
    rows.push(Row {
        id: "signaling-memory".into(),
        what: format!("server RSS per WebSocket connection, {clients} clients"),
        goal: "≤ 10 KB".into(),
        result: fmt_kb(m),
        runs: runs_of(&mem, fmt_kb),
        reference: format!("{} ({reference})", fmt_kb(mr)),
        ratio: ratio(m, mr),
        command: cmd.clone(),
        missed: m > 10_000.0,
        pending: false,
    });
    let cps = pick(&out.server, |s| s.connects_per_sec);
    let cps_ref = pick(&out.reference, |s| s.connects_per_sec);
    let (c, cr) = (util::median(&cps), util::median(&cps_ref));
    let per_s = |v: f64| format!("{v:.0}/s");
    rows.push(Row {
        id: "signaling-connects".into(),
        what: format!(
            "WebSocket connects per second (token check, `welcome`), {clients} clients, 64 at a time"
        ),
        goal: "— (higher is better)".into(),
        result: per_s(c),
        runs: runs_of(&cps, per_s),
        reference: format!("{} (same relay, no auth)", per_s(cr)),
        ratio: ratio(c, cr),
        command: cmd.clone(),
        missed: false,
        pending: false,
    });
    let achieved = util::median(&pick(&out.server, |s| s.achieved_per_sec));
    for (id, label, f, goal) in [
        ("signaling-relay-p50", "p50", (|s: &signaling::Side| s.p50_us) as fn(&signaling::Side) -> f64, None),
        ("signaling-relay-p99", "p99", |s: &signaling::Side| s.p99_us, Some(5000.0)),
        ("signaling-relay-p999", "p99.9", |s: &signaling::Side| s.p999_us, None),
    ] {
        let v = pick(&out.server, f);
        let r = pick(&out.reference, f);
        let (x, xr) = (util::median(&v), util::median(&r));
        rows.push(Row {
            id: id.into(),
            what: format!(
                "relay latency {label}, `signal` candidate sender → peer, {rate:.0} msg/s target ({achieved:.0} achieved) over {pairs} sessions, {clients} clients connected"
            ),
            goal: goal.map_or("—".into(), |g| format!("≤ {}", fmt_us(g))),
            result: fmt_us(x),
            runs: runs_of(&v, fmt_us),
            reference: format!("{} ({reference})", fmt_us(xr)),
            ratio: ratio(x, xr),
            command: cmd.clone(),
            missed: goal.is_some_and(|g| x > g),
            pending: false,
        });
    }
    Ok(rows)
}

async fn materials_rows(cli: &Cli, a: &MaterialsArgs) -> Result<Vec<Row>> {
    let short = cli.short;
    let mb = a.mb.unwrap_or(if short { 1 } else { 20 }).max(1);
    let runs = a.runs.unwrap_or(if short { 1 } else { 5 });
    let impaired_runs = a.impaired_runs.unwrap_or(if short { 1 } else { 3 });
    let opts = materials::Opts {
        bytes: mb * 1_000_000,
        runs,
        impaired_runs,
        server_bin: util::server_binary(cli.server_bin.as_deref())?,
    };
    let out = materials::run(&opts).await?;
    let mut args = format!("--runs {runs} --impaired-runs {impaired_runs}");
    if a.mb.is_some() {
        args.push_str(&format!(" --mb {mb}"));
    }
    let cmd = command("materials", &args);
    let mbytes = out.file_bytes as f64 / 1e6;
    let secs = |s: f64| format!("{s:.2} s ({:.1} MB/s)", mbytes / s);
    let each = |v: &[f64]| v.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", ");
    let goal = 0.8;
    let mut rows = Vec::new();
    if let Some((peak, before)) = out.concurrent_peak_rss {
        rows.push(Row {
            id: "materials-upload-memory".into(),
            what: format!(
                "the server's peak resident memory (VmHWM) while {} uploads of the {mbytes:.1} MB scan run at once from one terminal",
                materials::CONCURRENT
            ),
            goal: "bounded: not proportional to the uploads' size".into(),
            result: format!("{:.0} MB", peak as f64 / 1e6),
            runs: format!("all {} done in {:.2} s", materials::CONCURRENT, out.concurrent_secs),
            reference: format!("{:.0} MB resident before them", before as f64 / 1e6),
            ratio: format!("{:.2}× the data uploaded", peak as f64 / (out.file_bytes * materials::CONCURRENT) as f64),
            command: cmd.clone(),
            missed: false,
            pending: false,
        });
    }
    for (id, link, ours, nginx) in [
        ("materials-upload", "loopback", &out.ours, &out.nginx),
        (
            "materials-upload-impaired",
            "a 20 ms RTT, 1 % loss link (userspace proxy)",
            &out.ours_impaired,
            &out.nginx_impaired,
        ),
    ] {
        if ours.is_empty() {
            continue;
        }
        let (t, r) = (util::median(ours), util::median(nginx));
        // Throughput ours ÷ nginx's: the reference's time ÷ ours.
        let speed = r / t;
        rows.push(Row {
            id: id.into(),
            what: format!(
                "a {mbytes:.1} MB JPEG scan uploaded as the terminal does (tus, `PATCH`es of a quarter of the file with sha256) until the server has it fsynced, checksummed and encrypted, over {link}; throughput ratio = nginx time ÷ ours"
            ),
            goal: format!("≥ {goal}× nginx's throughput"),
            result: secs(t),
            runs: each(ours),
            reference: format!(
                "{} (`curl --data-binary @file` PUT to nginx-light WebDAV, body to disk, no fsync; runs {})",
                secs(r),
                each(nginx)
            ),
            ratio: format!("{speed:.2}×"),
            command: cmd.clone(),
            missed: speed < goal,
            pending: false,
        });
    }
    Ok(rows)
}

async fn dispatch_rows(cli: &Cli, a: &DispatchArgs) -> Result<Vec<Row>> {
    let short = cli.short;
    let tickets = a.tickets.unwrap_or(if short { 1000 } else { 10_000 });
    let operators = a.operators.unwrap_or(if short { 50 } else { 500 });
    let runs = a.runs.unwrap_or(if short { 2 } else { 5 });
    let backends = match &a.backends {
        None => vec![dispatch::Backend::Sqlite, dispatch::Backend::Postgres],
        Some(list) => list
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| match s.as_str() {
                "sqlite" => Ok(dispatch::Backend::Sqlite),
                "postgres" => Ok(dispatch::Backend::Postgres),
                other => bail!("unknown backend {other}"),
            })
            .collect::<Result<_>>()?,
    };
    let opts = dispatch::Opts {
        runs,
        tickets,
        operators,
        lines: 11,
        skills: 3,
        terminals: (tickets / 10).max(1),
        pure_iterations: if short { 5_000 } else { 50_000 },
        backends: backends.clone(),
        pg_url: a.pg_url.clone(),
        server_bin: cli.server_bin.clone(),
    };
    let out = dispatch::run(&opts).await?;
    let mut args = format!("--runs {runs}");
    if a.tickets.is_some() {
        args.push_str(&format!(" --tickets {tickets}"));
    }
    if a.operators.is_some() {
        args.push_str(&format!(" --operators {operators}"));
    }
    if a.backends.is_some() {
        let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
        args.push_str(&format!(" --backends {}", names.join(",")));
    }
    let cmd = command("dispatch", &args);
    let setting = format!("{tickets} waiting tickets, 11 lines, {operators} operators serving 3 lines each");
    let p50 = |v: &[dispatch::Pcts]| util::median(&v.iter().map(|p| p.p50_us).collect::<Vec<_>>());
    let p99 = |v: &[dispatch::Pcts]| util::median(&v.iter().map(|p| p.p99_us).collect::<Vec<_>>());
    let both = |v: &[dispatch::Pcts]| format!("{} / {}", fmt_us(p50(v)), fmt_us(p99(v)));
    let each = |v: &[dispatch::Pcts]| v.iter().map(|p| fmt_us(p.p99_us)).collect::<Vec<_>>().join(", ");
    let goal_us = 1000.0;
    let mut rows = vec![
        Row {
            id: "dispatch-pure".into(),
            what: format!("pure `Dispatcher`: offer decision + accept, p50 / p99; {setting}"),
            goal: "p99 ≤ 1 ms".into(),
            result: both(&out.pure),
            runs: format!("p99: {}", each(&out.pure)),
            reference: "the goal, 1 ms".into(),
            ratio: ratio(p99(&out.pure), goal_us),
            command: cmd.clone(),
            missed: p99(&out.pure) > goal_us,
            pending: false,
        },
        Row {
            id: "dispatch-positions".into(),
            what: format!(
                "pure: the switchboard's queue-position refresh after one assignment (every waiting ticket of the line), p50 / p99; {setting}"
            ),
            goal: "—".into(),
            result: both(&out.pure_positions),
            runs: format!("p99: {}", each(&out.pure_positions)),
            reference: format!("{} (dispatch-pure p99)", fmt_us(p99(&out.pure))),
            ratio: ratio(p99(&out.pure_positions), p99(&out.pure)),
            command: cmd.clone(),
            missed: false,
            pending: false,
        },
    ];
    for (b, rounds) in &out.e2e {
        let fill = out.fill_rate.iter().find(|(x, _)| x == b).map_or(0.0, |(_, f)| *f);
        rows.push(Row {
            id: format!("dispatch-e2e-{}", b.name()),
            what: format!(
                "end to end on {}: operator `accept` → its `session_started` over WS, p50 / p99, answered one at a time; {setting}; queue filled at {fill:.0} tickets/s",
                b.name()
            ),
            goal: "—".into(),
            result: both(rounds),
            runs: format!("p99: {}", each(rounds)),
            reference: format!("{} (dispatch-pure p99)", fmt_us(p99(&out.pure))),
            ratio: ratio(p99(rounds), p99(&out.pure)),
            command: cmd.clone(),
            missed: false,
            pending: false,
        });
    }
    Ok(rows)
}

fn fmt_ms(ms: f64) -> String {
    format!("{ms:.0} ms")
}

fn fmt_mb(bytes: f64) -> String {
    format!("{:.0} MB", bytes / 1_000_000.0)
}

fn call_opts(cli: &Cli, runs: usize, warmup: usize) -> Result<call::Opts> {
    Ok(call::Opts {
        runs,
        warmup,
        server_bin: util::server_binary(cli.server_bin.as_deref())?,
        endpoint_bin: util::release_binary(cli.endpoint_bin.as_deref(), "endpoint-client")?,
        settle: Duration::from_secs(if cli.short { 1 } else { 5 }),
        window: Duration::from_secs(10),
        width: 640,
        height: 480,
        fps: 30,
        codec: "vp8".into(),
        endpoint_env: vec![],
    })
}

async fn soak_rows(cli: &Cli, a: &SoakArgs) -> Result<Vec<Row>> {
    let calls = a.calls.unwrap_or(if cli.short { 7 } else { 100 }).max(6);
    let hold = a.hold.unwrap_or(4);
    let mut o = call_opts(cli, 1, 0)?;
    let unit = unit_malloc_env()?;
    if !a.no_malloc_env {
        o.endpoint_env.extend(unit.iter().cloned());
    }
    o.endpoint_env.extend(a.endpoint_env.iter().cloned());
    let points = call::soak_run(&o, calls, Duration::from_secs(hold)).await?;
    let at = |n: usize| points.iter().find(|p| p.call == n).map_or(f64::NAN, |p| p.pss);
    let (five, last) = (at(5), at(calls));
    let growth = last - five;
    let mut args = format!("--calls {calls}");
    if a.hold.is_some() {
        args.push_str(&format!(" --hold {hold}"));
    }
    let unit_text: Vec<String> = unit.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut env = if a.no_malloc_env {
        args.push_str(" --no-malloc-env");
        "without the unit's malloc settings".to_owned()
    } else {
        format!("with the unit's {}", unit_text.join(" "))
    };
    for (k, v) in &a.endpoint_env {
        args.push_str(&format!(" --endpoint-env {k}={v}"));
        env.push_str(&format!(", {k}={v}"));
    }
    let trend: Vec<f64> = points.iter().filter(|p| p.call % 10 == 0 || p.call == 5).map(|p| p.pss).collect();
    Ok(vec![Row {
        id: match (a.no_malloc_env, a.endpoint_env.is_empty()) {
            (false, true) => "terminal-soak".into(),
            (true, true) => "terminal-soak-no-malloc-env".into(),
            (_, false) => {
                let extra: Vec<String> =
                    a.endpoint_env.iter().map(|(k, _)| k.to_lowercase().replace('_', "-")).collect();
                format!(
                    "terminal-soak-{}{}",
                    if a.no_malloc_env { "only-" } else { "plus-" },
                    extra.join("-")
                )
            }
        },
        what: format!(
            "terminal memory across calls: one endpoint-client (release, headless, test sources 640×480@30, {env}) carries {calls} calls of {hold} s with the console in Chromium, each rated; PSS once the call's pipelines, peer connection and tasks are released (status `live` at zero): growth from call 5 to call {calls}"
        ),
        goal: "≤ 5 MB".into(),
        result: format!("{:+.1} MB", growth / 1e6),
        runs: format!("PSS after call 5, 10, 20, …: {}", runs_of(&trend, |v| format!("{:.1}", v / 1e6))),
        reference: format!(
            "PSS after call 5: {:.1} MB; after call {calls}: {:.1} MB",
            five / 1e6,
            last / 1e6
        ),
        ratio: ratio(last, five),
        command: command("terminal-soak", &args),
        missed: growth > 5e6,
        pending: false,
    }])
}

async fn call_setup_rows(cli: &Cli, a: &CallArgs) -> Result<Vec<Row>> {
    let runs = a.runs.unwrap_or(if cli.short { 1 } else { 7 });
    let warmup = usize::from(!cli.short);
    let out = call::setup_run(&call_opts(cli, runs, warmup)?).await?;
    let cmd = command("call-setup", &format!("--runs {runs}"));
    let mut rows = Vec::new();
    let reference = "Chromium page as the terminal ↔ the same console, same server, same run";
    for (id, what, f) in [
        (
            "call-setup",
            "call setup: the operator's click on 接听 → first decoded video frame at both ends, endpoint-client (release, headless, 640×480@30 test sources) ↔ agent-console in Chromium; the call has no data channel (audio, camera)",
            call::Setup::media as fn(&call::Setup) -> f64,
        ),
        (
            "call-setup-connected",
            "call setup: the operator's click on 接听 → peer connection `connected` (ICE + DTLS) at both ends, same calls",
            call::Setup::connected,
        ),
    ] {
        let v: Vec<f64> = out.rust.iter().map(f).collect();
        let r: Vec<f64> = out.chromium.iter().map(f).collect();
        let (x, xr) = (util::median(&v), util::median(&r));
        rows.push(Row {
            id: id.into(),
            what: format!("{what}; {runs} calls of each kind, interleaved, after {warmup} warm-up call"),
            goal: "≤ Chromium ↔ Chromium (same run)".into(),
            result: fmt_ms(x),
            runs: runs_of(&v, fmt_ms),
            reference: format!("{} ({reference}; runs {})", fmt_ms(xr), runs_of(&r, fmt_ms)),
            ratio: ratio(x, xr),
            command: cmd.clone(),
            missed: x > xr,
            pending: false,
        });
    }
    rows.extend(call_setup_breakdown_rows(&out, runs, warmup, &cmd));
    Ok(rows)
}

/// The median of step `key` over the endpoint-client's calls (ms after the click), if every
/// call has it.
fn step_median(out: &call::SetupOutcome, key: &str) -> Option<f64> {
    let v: Option<Vec<f64>> = out.rust.iter().map(|s| s.steps.get(key).copied()).collect();
    v.filter(|v| !v.is_empty()).map(|v| util::median(&v))
}

/// `call-setup-breakdown-receive` / `-send`: the endpoint-client's own steps of the same calls.
fn call_setup_breakdown_rows(out: &call::SetupOutcome, runs: usize, warmup: usize, cmd: &str) -> Vec<Row> {
    let steps = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(key, label)| match step_median(out, key) {
                Some(ms) => format!("{label} {ms:.0}"),
                None => format!("{label} —"),
            })
            .collect::<Vec<_>>()
            .join(" → ")
    };
    let med =
        |f: fn(&call::Setup) -> f64, of: &[call::Setup]| util::median(&of.iter().map(f).collect::<Vec<_>>());
    let chromium_media = med(call::Setup::media, &out.chromium);
    let decoded = step_median(out, "camera_first_decoded").unwrap_or(f64::NAN);
    let console_frame = med(|s| s.console_frame, &out.rust);
    let chromium_console_frame = med(|s| s.console_frame, &out.chromium);
    let calls = format!("the same {runs} calls as `call-setup` (after {warmup} warm-up call)");
    vec![
        Row {
            id: "call-setup-breakdown-receive".into(),
            what: format!(
                "call setup at the endpoint-client, the operator's camera to the resident: median ms after the click on 接听 of each step, marked where it happens (status `call.setup`, wall clock), {calls}"
            ),
            goal: "first decoded frame ≤ 0.6× Chromium ↔ Chromium `call-setup` (same run)".into(),
            result: fmt_ms(decoded),
            runs: steps(call::RECEIVE_STEPS),
            reference: format!(
                "Chromium ↔ Chromium `call-setup` {} (the Chromium terminal page: connected {}, first frame {}; same run)",
                fmt_ms(chromium_media),
                fmt_ms(med(|s| s.terminal_connected, &out.chromium)),
                fmt_ms(med(|s| s.terminal_frame, &out.chromium)),
            ),
            ratio: ratio(decoded, chromium_media),
            command: cmd.to_owned(),
            missed: decoded.is_nan() || decoded > 0.6 * chromium_media,
            pending: false,
        },
        Row {
            id: "call-setup-breakdown-send".into(),
            what: format!(
                "call setup at the endpoint-client, its camera to the operator: median ms after the click on 接听 of each step (status `call.setup`), and the first frame presented in the console, {calls}"
            ),
            goal: "console's first frame ≤ Chromium ↔ Chromium (same run)".into(),
            result: fmt_ms(console_frame),
            runs: format!("{} → console's first frame {console_frame:.0}", steps(call::SEND_STEPS)),
            reference: format!(
                "{} (the console's first frame from the Chromium terminal page, same run)",
                fmt_ms(chromium_console_frame)
            ),
            ratio: ratio(console_frame, chromium_console_frame),
            command: cmd.to_owned(),
            missed: console_frame.is_nan() || console_frame > chromium_console_frame,
            pending: false,
        },
    ]
}

async fn three_party_rows(cli: &Cli, a: &ThreePartyArgs) -> Result<Vec<Row>> {
    let runs = a.runs.unwrap_or(if cli.short { 1 } else { 3 });
    let seconds = a.seconds.unwrap_or(if cli.short { 2 } else { 20 });
    let mut o = call_opts(cli, runs, 0)?;
    o.window = Duration::from_secs(seconds);
    let out = call::three_party_run(&o).await?;
    let mut args = format!("--runs {runs}");
    if a.seconds.is_some() {
        args.push_str(&format!(" --seconds {seconds}"));
    }
    let cmd = command("terminal-three-party", &args);
    let setting = format!(
        "endpoint-client (release, headless, test sources 640×480@30 VP8 + audio) in a call with the console in Chromium, then in the same call with a supervisor monitoring it from a second console page (the terminal encodes once and sends to both); {seconds} s windows"
    );
    let pct = |v: f64| format!("{v:.1} %");
    let cpu3: Vec<f64> = out.three.iter().map(|f| f.cpu_pct).collect();
    let cpu2: Vec<f64> = out.two.iter().map(|f| f.cpu_pct).collect();
    let pss3: Vec<f64> = out.three.iter().map(|f| f.pss).collect();
    let pss2: Vec<f64> = out.two.iter().map(|f| f.pss).collect();
    let (c3, c2) = (util::median(&cpu3), util::median(&cpu2));
    let (m3, m2) = (util::median(&pss3), util::median(&pss2));
    let first = util::median(&out.first_frame_ms);
    let ms = |v: f64| format!("{v:.0} ms");
    Ok(vec![
        Row {
            id: "terminal-three-party-cpu".into(),
            what: format!("terminal CPU (utime + stime, % of one core): {setting}"),
            goal: "≤ 1.5× the two-party call".into(),
            result: pct(c3),
            runs: runs_of(&cpu3, pct),
            reference: format!("{} (the same call before the supervisor joined; runs {})", pct(c2), runs_of(&cpu2, pct)),
            ratio: ratio(c3, c2),
            command: cmd.clone(),
            missed: c3 > 1.5 * c2,
            pending: false,
        },
        Row {
            id: "terminal-three-party-memory".into(),
            what: format!("terminal memory (PSS from /proc/<pid>/smaps_rollup): {setting}"),
            goal: "≤ 1.5× the two-party call".into(),
            result: fmt_mb(m3),
            runs: runs_of(&pss3, fmt_mb),
            reference: format!("{} (the same call before the supervisor joined; runs {})", fmt_mb(m2), runs_of(&pss2, fmt_mb)),
            ratio: ratio(m3, m2),
            command: cmd.clone(),
            missed: m3 > 1.5 * m2,
            pending: false,
        },
        Row {
            id: "supervisor-monitor-first-frame".into(),
            what: "a supervisor's click on 监听 (board) → the first remote video frame presented in the supervisor's console page (requestVideoFrameCallback), the terminal being the release endpoint-client; wall clock, one machine".into(),
            goal: "≤ 1000 ms".into(),
            result: ms(first),
            runs: runs_of(&out.first_frame_ms, ms),
            reference: "—".into(),
            ratio: "—".into(),
            command: cmd,
            missed: first > 1000.0,
            pending: false,
        },
    ])
}

async fn footprint_rows(cli: &Cli, a: &FootprintArgs) -> Result<Vec<Row>> {
    let runs = a.runs.unwrap_or(if cli.short { 1 } else { 3 });
    let seconds = a.seconds.unwrap_or(if cli.short { 2 } else { 20 });
    let mut o = call_opts(cli, runs, 0)?;
    o.window = Duration::from_secs(seconds);
    o.codec = a.codec.clone();
    let out = call::footprint_run(&o).await?;
    let mut args = format!("--runs {runs}");
    if a.seconds.is_some() {
        args.push_str(&format!(" --seconds {seconds}"));
    }
    // VP8 rows keep their ids; H.264 rows get a suffix.
    let (suffix, video) = match a.codec.as_str() {
        "h264" => {
            args.push_str(" --codec h264");
            ("-h264", "H.264 (the console set to H.264)")
        }
        _ => ("", "VP8"),
    };
    let cmd = command("terminal-footprint", &args);
    let setting = format!(
        "two-way call 640×480@30 {video} + audio, the operator (console in Chromium, fake 1280×720 camera) sharing a screen; {seconds} s window after the share arrived"
    );
    let cpu: Vec<f64> = out.rust.iter().map(|f| f.cpu_pct).collect();
    let cpu_ref: Vec<f64> = out.chromium.iter().map(|f| f.cpu_pct).collect();
    let pss: Vec<f64> = out.rust.iter().map(|f| f.pss).collect();
    let pss_ref: Vec<f64> = out.chromium.iter().map(|f| f.pss).collect();
    let rss = util::median(&out.rust.iter().map(|f| f.rss).collect::<Vec<_>>());
    let rss_ref = util::median(&out.chromium.iter().map(|f| f.rss).collect::<Vec<_>>());
    let procs = out.chromium.iter().map(|f| f.processes).max().unwrap_or(0);
    let pct = |v: f64| format!("{v:.1} %");
    let (c, cr) = (util::median(&cpu), util::median(&cpu_ref));
    let (m, mr) = (util::median(&pss), util::median(&pss_ref));
    Ok(vec![
        Row {
            id: format!("terminal-footprint-cpu{suffix}"),
            what: format!(
                "terminal CPU (utime + stime from /proc, % of one core): endpoint-client (release, headless, test sources) in a {setting}"
            ),
            goal: "≤ 0.5× the Chromium tab".into(),
            result: pct(c),
            runs: runs_of(&cpu, pct),
            reference: format!(
                "{} (a Chromium tab playing the terminal in the same call, all {procs} processes of its browser; runs {})",
                pct(cr),
                runs_of(&cpu_ref, pct)
            ),
            ratio: ratio(c, cr),
            command: cmd.clone(),
            missed: c > 0.5 * cr,
            pending: false,
        },
        Row {
            id: format!("terminal-footprint-memory{suffix}"),
            what: format!(
                "terminal memory (PSS from /proc/<pid>/smaps_rollup; RSS in brackets): endpoint-client in a {setting}"
            ),
            goal: "≤ 1/3 of the Chromium tab".into(),
            result: format!("{} (RSS {})", fmt_mb(m), fmt_mb(rss)),
            runs: runs_of(&pss, fmt_mb),
            reference: format!(
                "{} (RSS {}; the same Chromium tab, PSS summed over its {procs} processes; runs {})",
                fmt_mb(mr),
                fmt_mb(rss_ref),
                runs_of(&pss_ref, fmt_mb)
            ),
            ratio: ratio(m, mr),
            command: cmd,
            missed: m > mr / 3.0,
            pending: false,
        },
    ])
}
