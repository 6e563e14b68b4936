//! Shared pieces: the server child process, REST calls, WebSocket connects, statistics.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shared::protocol::SUBPROTOCOL;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Upper bound for any single step that waits on the server: a guard against hangs.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Open files wanted by the children (the server, the echo relay).
pub const CHILD_NOFILE: u32 = 65536;

/// A free loopback port: bind port 0, read it, close it.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Resident set size of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kb: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kb * 1024)
}

/// Soft limit of open files of this process, from `/proc/self/limits`.
pub fn nofile_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// A child process started under `bash -c 'ulimit -n …; exec …'` (same pid after the exec),
/// killed when dropped.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Proc {
    pub async fn spawn(
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: PathBuf,
    ) -> Result<Self> {
        Self::spawn_on(free_port()?, program, args, env, log).await
    }

    /// Starts `program args… --listen 127.0.0.1:<port>` with a raised open-file limit.
    pub async fn spawn_on(
        port: u16,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: PathBuf,
    ) -> Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let script = format!(
            "ulimit -n {CHILD_NOFILE} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\""
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).arg(program).args(args).arg("--listen").arg(addr.to_string());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("start {}", program.display()))?;
        let pid = child.id().context("child pid")?;
        Ok(Self { child, pid, addr, log })
    }

    /// Polls `GET path` every 20 ms until it answers 200 (bounded by `PATIENCE`).
    pub async fn wait_ready(&mut self, http: &reqwest::Client, path: &str) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        let url = format!("http://{}{path}", self.addr);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}; log: {}", self.pid, tail(&self.log));
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("not ready after {PATIENCE:?}: {}", tail(&self.log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn rss(&self) -> Result<u64> {
        rss_bytes(self.pid)
    }

    pub async fn stop(mut self) -> Result<()> {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        Ok(())
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Copies a directory tree (the pristine data directory of a run).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// REST calls against one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Result<Self> {
        let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).build()?;
        Ok(Self { base: format!("http://{addr}"), http })
    }

    /// Sends a request and returns the JSON body; a status other than `want` is an error.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != want {
            bail!("{method} {path}: HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, Some(token), None, 200).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value, want: u16) -> Result<Value> {
        self.call(reqwest::Method::POST, path, token, Some(body), want).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<String> {
        let v = self
            .post("/api/v1/auth/login", None, json!({ "username": username, "password": password }), 200)
            .await?;
        Ok(v["access_token"].as_str().context("access_token")?.to_owned())
    }

    /// Registers a terminal at `point` and enrolls it; returns its credential.
    pub async fn register_terminal(&self, admin: &str, point: &str, name: &str) -> Result<String> {
        let reg = self
            .post("/api/v1/terminals", Some(admin), json!({ "point_id": point, "name": name }), 201)
            .await?;
        let enr = self
            .post("/api/v1/terminals/enroll", None, json!({ "code": reg["enrollment_code"] }), 200)
            .await?;
        Ok(enr["credential"].as_str().context("credential")?.to_owned())
    }

    /// A fresh device token for an enrolled terminal.
    pub async fn device_token(&self, credential: &str) -> Result<String> {
        let tok =
            self.post("/api/v1/terminals/token", None, json!({ "credential": credential }), 200).await?;
        Ok(tok["access_token"].as_str().context("device token")?.to_owned())
    }

    /// Creates an operator serving `skills`; returns its username.
    pub async fn create_operator(&self, admin: &str, username: &str, skills: &[String]) -> Result<()> {
        self.post(
            "/api/v1/users",
            Some(admin),
            json!({ "username": username, "display_name": username, "role": "operator",
                    "password": OPERATOR_PASSWORD, "skills": skills }),
            201,
        )
        .await?;
        Ok(())
    }
}

pub const OPERATOR_PASSWORD: &str = "Bench-pass-2026";
pub const DEMO_PASSWORD: &str = "bangban-demo";

/// Small client buffers, like the server's: the bench holds as many sockets as the server.
pub fn client_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Connects to `url` with the `bangban.v1` subprotocol and, if given, a `bearer.` token.
pub async fn ws_connect(url: &str, token: Option<&str>) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    let proto = match token {
        Some(t) => format!("{SUBPROTOCOL}, bearer.{t}"),
        None => SUBPROTOCOL.to_owned(),
    };
    req.headers_mut().insert("sec-websocket-protocol", proto.parse()?);
    let (ws, _) = tokio::time::timeout(
        PATIENCE,
        tokio_tungstenite::connect_async_with_config(req, Some(client_ws_config()), true),
    )
    .await
    .context("connect timed out")?
    .with_context(|| format!("connect {url}"))?;
    Ok(ws)
}

/// Runs `f` over `items` with at most `n` at a time, keeping the input order.
pub async fn bounded<T, R, F, Fut>(items: Vec<T>, n: usize, f: F) -> Result<Vec<R>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R>>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(items.into_iter().map(f))
        .buffered(n)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Percentile (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the release server (a no-op when fresh) unless a binary was given.
pub fn server_binary(given: Option<&Path>) -> Result<PathBuf> {
    release_binary(given, "signaling-server")
}

/// Builds `target/release/<package>` (a no-op when fresh) unless a binary was given.
pub fn release_binary(given: Option<&Path>, package: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let root = workspace_root();
    eprintln!("building: cargo build --release -p {package}");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", package])
        .current_dir(&root)
        .status()
        .context("run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p {package} failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    Ok(target.join("release").join(package))
}

/// Machine, date and commit, for the record.
pub struct Provenance {
    pub cpus: usize,
    pub model: String,
    pub mem_gib: u64,
    pub date: String,
    pub commit: String,
}

pub fn provenance() -> Provenance {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let date = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let mut commit = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
        commit.push_str("+dirty");
    }
    Provenance { cpus, model, mem_gib: (mem_kb + 512 * 1024) / (1024 * 1024), date, commit }
}
