//! Calls through the real server: the real endpoint-client (release, headless, test sources)
//! against the real agent-console in Chromium, and — the reference, in the same run — a
//! Chromium page playing the terminal against the same console. The browser side is
//! `agent-console/bench/driver.mjs` (playwright-core, Debian Chromium), driven over stdin/stdout.
//!
//! `call-setup`: from the operator's click on 接听 to connected (ICE + DTLS) and to the first
//! decoded video frame, at both ends. The call has no data channel (audio, camera and, when
//! shared, a screen track), so "media flowing" is the first decoded video frame.
//! `terminal-footprint`: CPU (utime + stime over a fixed window) and memory (PSS, RSS) of the
//! terminal during a two-way call with the operator sharing a screen.
//! `terminal-soak`: one endpoint-client process carries many calls in a row; its memory (PSS)
//! once each call has given back what it held (the status's `live` counts at zero).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use crate::util::{self, Api, DEMO_PASSWORD, PATIENCE, Proc};

/// Wall-clock milliseconds (comparable with the pages' `performance.timeOrigin + now()`).
fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub runs: usize,
    /// Untimed calls of each kind before the measured ones.
    pub warmup: usize,
    pub server_bin: PathBuf,
    pub endpoint_bin: PathBuf,
    /// Footprint: settle time after the screen share arrives, and the measured window.
    pub settle: Duration,
    pub window: Duration,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The console's video codec setting (`vp8`, `h264`).
    pub codec: String,
    /// More environment for endpoint-client (`terminal-soak`: the systemd unit's).
    pub endpoint_env: Vec<(String, String)>,
}

/// One call's setup, milliseconds after the click on 接听.
#[derive(Debug, Clone)]
pub struct Setup {
    pub console_connected: f64,
    pub console_frame: f64,
    pub terminal_connected: f64,
    pub terminal_frame: f64,
    /// The endpoint-client's own steps (its status's `call.setup`, wall-clock marks taken where
    /// they happen, so without the status line's 5 ms resolution), by step; empty for the
    /// Chromium terminal.
    pub steps: std::collections::BTreeMap<String, f64>,
}

impl Setup {
    pub fn connected(&self) -> f64 {
        self.console_connected.max(self.terminal_connected)
    }
    pub fn media(&self) -> f64 {
        self.console_frame.max(self.terminal_frame)
    }
}

/// The endpoint-client's steps from the operator's offer to its first decoded frame of the
/// operator's camera (`call.setup` keys, `endpoint-client/src/timeline.rs`), with their labels.
pub const RECEIVE_STEPS: &[(&str, &str)] = &[
    ("session_started", "session started"),
    ("offer_received", "offer received"),
    ("answer_sent", "answer sent"),
    ("first_local_candidate", "first local candidate"),
    ("first_remote_candidate", "first remote candidate"),
    ("ice_connected", "ICE connected"),
    ("connected", "DTLS connected"),
    ("camera_first_rtp", "first camera RTP"),
    ("camera_first_keyframe_rtp", "first keyframe RTP"),
    ("decoder_built", "decoder built"),
    ("decoder_playing", "decoder PLAYING"),
    ("pli_sent", "PLI sent"),
    ("camera_first_decoded", "first decoded frame"),
];

/// The endpoint-client's steps from its encoder's start to its first frame sent.
pub const SEND_STEPS: &[(&str, &str)] = &[
    ("connected", "DTLS connected"),
    ("encoder_started", "encoder PLAYING"),
    ("first_encoded_frame", "first encoded frame"),
    ("first_frame_sent", "first frame sent"),
    ("keyframe_requested", "PLI received"),
    ("keyframe_forced", "keyframe forced"),
];

#[derive(Debug, Default)]
pub struct SetupOutcome {
    pub rust: Vec<Setup>,
    pub chromium: Vec<Setup>,
}

/// The terminal's cost over the window.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    /// Percent of one core.
    pub cpu_pct: f64,
    pub pss: f64,
    pub rss: f64,
    pub processes: usize,
}

#[derive(Debug, Default)]
pub struct FootprintOutcome {
    pub rust: Vec<Footprint>,
    pub chromium: Vec<Footprint>,
}

// ---------------------------------------------------------------------------------------------
// The browser driver

struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    async fn start(log: &Path) -> Result<Self> {
        let dir = util::workspace_root().join("agent-console");
        let script = dir.join("bench").join("driver.mjs");
        if !dir.join("node_modules").join("playwright-core").exists() {
            bail!("agent-console/node_modules is missing: run `cd agent-console && npm ci`");
        }
        if !dir.join("dist").join("index.html").exists() {
            eprintln!("building the console: node build.mjs");
            let st = std::process::Command::new("node").arg("build.mjs").current_dir(&dir).status()?;
            if !st.success() {
                bail!("agent-console build failed");
            }
        }
        let err = std::fs::File::create(log)?;
        let mut child = Command::new("node")
            .arg(&script)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .context("start node agent-console/bench/driver.mjs")?;
        let stdin = child.stdin.take().context("driver stdin")?;
        let stdout = child.stdout.take().context("driver stdout")?;
        Ok(Self { child, stdin, lines: BufReader::new(stdout).lines() })
    }

    async fn cmd(&mut self, c: Value) -> Result<Value> {
        let name = c["cmd"].as_str().unwrap_or_default().to_owned();
        self.stdin.write_all(format!("{c}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .with_context(|| format!("browser driver: no reply to {name}"))??
            .with_context(|| format!("browser driver exited during {name}"))?;
        let v: Value = serde_json::from_str(&line).with_context(|| format!("driver said: {line}"))?;
        if v["ok"] != true {
            bail!("browser driver: {name}: {}", v["error"].as_str().unwrap_or("?"));
        }
        Ok(v)
    }

    async fn quit(mut self) {
        let _ = self.cmd(json!({ "cmd": "quit" })).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn num(v: &Value, k: &str) -> Result<f64> {
    v[k].as_f64().with_context(|| format!("no {k} in {v}"))
}

// ---------------------------------------------------------------------------------------------
// The endpoint-client

/// When the endpoint first reported a state, per session (wall ms when the status line arrived).
#[derive(Debug, Default, Clone)]
struct Marks {
    connected: Option<f64>,
    camera: Option<f64>,
    screen: Option<f64>,
    /// The latest `call.setup` of the session: its steps, Unix ms.
    setup: serde_json::Map<String, Value>,
}

struct Endpoint {
    child: Child,
    pid: u32,
    kiosk: String,
    http: reqwest::Client,
    status: watch::Receiver<Value>,
    marks: Arc<Mutex<HashMap<String, Marks>>>,
    _dir: tempfile::TempDir,
}

fn decoded(status: &Value, kind: &str) -> u64 {
    status["call"]["remote"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["kind"] == kind).map(|r| r["decoded"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

impl Endpoint {
    async fn start(o: &Opts, base: &str, code: &str, status_ms: u64, log: &Path) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("endpoint.toml");
        std::fs::write(
            &cfg,
            format!(
                "server_url = \"{base}\"\ncredential_file = \"{cred}\"\nstate_dir = \"{state}\"\n\
                 status_interval_ms = {status_ms}\n\
                 [media]\nvideo_source = \"test\"\naudio_source = \"test\"\nwidth = {w}\nheight = {h}\nfps = {fps}\n\
                 [display]\nmode = \"headless\"\n\
                 [webrtc]\nudp_addrs = [\"127.0.0.1:0\"]\nuse_server_ice = false\n\
                 [kiosk]\nlisten = \"127.0.0.1:0\"\n[printer]\nenabled = false\n[scanner]\nenabled = false\n",
                cred = dir.path().join("credential").display(),
                state = dir.path().join("state").display(),
                w = o.width,
                h = o.height,
                fps = o.fps,
            ),
        )?;
        let out = Command::new(&o.endpoint_bin)
            .arg("--config")
            .arg(&cfg)
            .args(["enroll", "--code", code])
            .output()
            .await
            .context("endpoint-client enroll")?;
        if !out.status.success() {
            bail!("endpoint-client enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let err = std::fs::File::create(log)?;
        let mut child = Command::new(&o.endpoint_bin)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("BANGBAN_BENCH_ENDPOINT_LOG")
                    .unwrap_or_else(|_| "info,webrtc=warn,rtc=warn".into()),
            )
            .envs(o.endpoint_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .context("start endpoint-client")?;
        let pid = child.id().context("endpoint pid")?;
        let stdout = child.stdout.take().context("endpoint stdout")?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
        let (status_tx, status) = watch::channel(Value::Null);
        let marks: Arc<Mutex<HashMap<String, Marks>>> = Arc::default();
        let marks2 = marks.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut ready_tx = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let at = wall_ms();
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                match v["event"].as_str() {
                    Some("ready") => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(v["kiosk"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                    Some("status") => {
                        let s = &v["status"];
                        if let Some(session) = s["call"]["session_id"].as_str() {
                            let mut g = marks2.lock().unwrap_or_else(|p| p.into_inner());
                            let m = g.entry(session.to_owned()).or_default();
                            if m.connected.is_none() && s["call"]["connection"] == "connected" {
                                m.connected = Some(at);
                            }
                            if m.camera.is_none() && decoded(s, "camera") > 0 {
                                m.camera = Some(at);
                            }
                            if m.screen.is_none() && decoded(s, "screen") > 0 {
                                m.screen = Some(at);
                            }
                            if let Some(setup) = s["call"]["setup"].as_object() {
                                m.setup = setup.clone();
                            }
                        }
                        let _ = status_tx.send(v["status"].clone());
                    }
                    _ => {}
                }
            }
        });
        let kiosk = tokio::time::timeout(PATIENCE, ready_rx)
            .await
            .context("endpoint-client never became ready")?
            .context("endpoint-client exited before ready")?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut ep = Self { child, pid, kiosk: format!("http://{kiosk}"), http, status, marks, _dir: dir };
        ep.wait("signaling connected", |s| s["connected"] == true && s["phase"] == "idle").await?;
        Ok(ep)
    }

    async fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Ok(Some(st)) = self.child.try_wait() {
            bail!("endpoint-client exited with {st}");
        }
        let r = tokio::time::timeout(PATIENCE, self.status.wait_for(|v| pred(v)))
            .await
            .map(|r| r.map(|v| v.clone()));
        match r {
            Ok(Ok(v)) => Ok(v),
            _ => bail!("endpoint: timed out waiting for {what}; last status {}", *self.status.borrow()),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let r = self.http.post(format!("{}{path}", self.kiosk)).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("kiosk {path}: {status} {v}");
        }
        Ok(v)
    }

    fn marks(&self, session: &str) -> Marks {
        self.marks.lock().unwrap_or_else(|p| p.into_inner()).get(session).cloned().unwrap_or_default()
    }

    /// Waits until the marks of `session` satisfy `pred`.
    async fn wait_marks(
        &mut self,
        session: &str,
        what: &str,
        pred: impl Fn(&Marks) -> bool,
    ) -> Result<Marks> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let m = self.marks(session);
            if pred(&m) {
                return Ok(m);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("endpoint: timed out waiting for {what}; last status {}", *self.status.borrow());
            }
            // Wake on each status line rather than sleeping.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.status.changed()).await;
        }
    }

    /// After the console hung up: rate, back to idle.
    async fn finish_call(&mut self) -> Result<()> {
        self.wait("rating screen", |s| s["phase"] == "rating").await?;
        self.post("/api/rate", json!({ "level": "satisfied" })).await?;
        let _ = self.post("/api/done", json!({})).await;
        self.wait("idle again", |s| s["phase"] == "idle" && s["connected"] == true).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The server and the shared scene

/// Where the logs of the children go: `BANGBAN_BENCH_LOGS` if set (kept), else the run's
/// temporary directory.
fn log_dir(tmp: &Path) -> PathBuf {
    match std::env::var_os("BANGBAN_BENCH_LOGS") {
        Some(d) => {
            let d = PathBuf::from(d);
            let _ = std::fs::create_dir_all(&d);
            d
        }
        None => tmp.to_path_buf(),
    }
}

struct Scene {
    tmp: tempfile::TempDir,
    server: Proc,
    api: Api,
    codes: Vec<String>,
    item: String,
    browser: Browser,
}

impl Scene {
    async fn start(o: &Opts, name: &str) -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let data = tmp.path().join("data");
        let args = vec!["--demo".to_owned(), "--data-dir".to_owned(), data.display().to_string()];
        let console = util::workspace_root().join("agent-console").join("dist");
        let env = vec![
            ("RUST_LOG", "warn".to_owned()),
            ("BANGBAN_LOG_FORMAT", "json".to_owned()),
            ("BANGBAN_CONSOLE_DIR", console.display().to_string()),
        ];
        let mut browser = Browser::start(&log_dir(tmp.path()).join("browser.log")).await?;
        let mut server =
            Proc::spawn(&o.server_bin, &args, &env, log_dir(tmp.path()).join("server.log")).await?;
        let api = Api::new(server.addr)?;
        server.wait_ready(&api.http, "/readyz").await?;
        let codes: Vec<String> = std::fs::read_to_string(data.join("demo-enrollment.txt"))
            .context("demo-enrollment.txt")?
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        if codes.len() < 2 {
            bail!("{name}: the demo data has fewer than two enrollment codes");
        }
        // The remote item of a line operator1 serves (社会保障), like the e2e call test.
        let op = api
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "username": "operator1", "password": DEMO_PASSWORD }),
                200,
            )
            .await?;
        let skills: Vec<String> = op["user"]["skills"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let token = op["access_token"].as_str().context("operator token")?;
        let items = api.get("/api/v1/items", token).await?;
        let item = items
            .as_array()
            .and_then(|a| {
                a.iter().find(|i| {
                    i["remote_allowed"] == true
                        && i["active"] == true
                        && i["line_id"].as_str().is_some_and(|l| skills.iter().any(|s| s == l))
                })
            })
            .and_then(|i| i["id"].as_str())
            .context("a remote item operator1 serves")?
            .to_owned();
        browser
            .cmd(json!({ "cmd": "setup", "base": format!("http://{}", server.addr), "user": "operator1", "password": DEMO_PASSWORD, "codec": o.codec }))
            .await
            .context("console login")?;
        Ok(Self { tmp, server, api, codes, item, browser })
    }

    /// A device token for the Chromium terminal (the second demo code).
    async fn chromium_terminal_token(&self) -> Result<String> {
        let enr =
            self.api.post("/api/v1/terminals/enroll", None, json!({ "code": self.codes[1] }), 200).await?;
        self.api.device_token(enr["credential"].as_str().context("credential")?).await
    }

    async fn stop(self) -> Result<()> {
        self.browser.quit().await;
        self.server.stop().await?;
        drop(self.tmp);
        Ok(())
    }
}

/// Ticket at the Rust terminal, the console accepts; returns the click time and the session.
async fn rust_call(scene: &mut Scene, ep: &mut Endpoint) -> Result<(f64, String)> {
    ep.post("/api/ticket", json!({ "item_id": scene.item })).await?;
    let accept = num(&scene.browser.cmd(json!({ "cmd": "accept" })).await?, "accept")?;
    let st =
        ep.wait("kiosk in call", |s| s["phase"] == "in_call" && s["call"]["session_id"].is_string()).await?;
    let session = st["call"]["session_id"].as_str().context("session id")?.to_owned();
    Ok((accept, session))
}

async fn chromium_call(scene: &mut Scene, token: &str, o: &Opts) -> Result<f64> {
    scene
        .browser
        .cmd(json!({ "cmd": "terminal", "token": token, "itemId": scene.item, "width": o.width, "height": o.height, "fps": o.fps }))
        .await?;
    num(&scene.browser.cmd(json!({ "cmd": "accept" })).await?, "accept")
}

async fn rust_setup(scene: &mut Scene, ep: &mut Endpoint) -> Result<Setup> {
    let (accept, session) = rust_call(scene, ep).await?;
    let c = scene.browser.cmd(json!({ "cmd": "console_times" })).await?;
    let m = ep
        .wait_marks(&session, "connected and a decoded camera frame", |m| {
            m.connected.is_some()
                && m.camera.is_some()
                && m.setup.contains_key("camera_first_decoded")
                && m.setup.contains_key("first_frame_sent")
        })
        .await?;
    let s = Setup {
        console_connected: num(&c, "connected")? - accept,
        console_frame: num(&c, "firstFrame")? - accept,
        terminal_connected: m.connected.unwrap_or(f64::NAN) - accept,
        terminal_frame: m.camera.unwrap_or(f64::NAN) - accept,
        steps: m.setup.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()? - accept))).collect(),
    };
    scene.browser.cmd(json!({ "cmd": "hangup" })).await?;
    ep.finish_call().await?;
    Ok(s)
}

async fn chromium_setup(scene: &mut Scene, token: &str, o: &Opts) -> Result<Setup> {
    let accept = chromium_call(scene, token, o).await?;
    let c = scene.browser.cmd(json!({ "cmd": "console_times" })).await?;
    let t = scene.browser.cmd(json!({ "cmd": "terminal_times" })).await?;
    let s = Setup {
        console_connected: num(&c, "connected")? - accept,
        console_frame: num(&c, "firstFrame")? - accept,
        terminal_connected: num(&t, "connected")? - accept,
        terminal_frame: num(&t, "firstFrame")? - accept,
        steps: Default::default(),
    };
    scene.browser.cmd(json!({ "cmd": "hangup" })).await?;
    Ok(s)
}

pub async fn setup_run(o: &Opts) -> Result<SetupOutcome> {
    let mut scene = Scene::start(o, "call-setup").await?;
    let log = log_dir(scene.tmp.path()).join("endpoint.log");
    let r = async {
        // The endpoint reports its status every 5 ms: the terminal-side times are the arrival
        // of the first status line showing the state (resolution 5 ms, documented).
        let mut ep = Endpoint::start(o, &format!("http://{}", scene.server.addr), &scene.codes[0], 5, &log)
            .await
            .context("endpoint-client")?;
        let token = scene.chromium_terminal_token().await?;
        let mut out = SetupOutcome::default();
        for i in 0..o.warmup + o.runs {
            // Alternate which kind goes first, so neither always follows the other.
            let (r, c) = if i % 2 == 0 {
                let r =
                    rust_setup(&mut scene, &mut ep).await.with_context(|| format!("endpoint call {i}"))?;
                let c = chromium_setup(&mut scene, &token, o)
                    .await
                    .with_context(|| format!("chromium call {i}"))?;
                (r, c)
            } else {
                let c = chromium_setup(&mut scene, &token, o)
                    .await
                    .with_context(|| format!("chromium call {i}"))?;
                let r =
                    rust_setup(&mut scene, &mut ep).await.with_context(|| format!("endpoint call {i}"))?;
                (r, c)
            };
            eprintln!("call-setup {i} endpoint-client ↔ console: {r:?}");
            eprintln!("call-setup {i} Chromium ↔ console:        {c:?}");
            if i >= o.warmup {
                out.rust.push(r);
                out.chromium.push(c);
            }
        }
        drop(ep);
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    if r.is_err() {
        eprintln!("endpoint log:\n{}", util::tail(&log));
    }
    scene.stop().await?;
    r
}

// ---------------------------------------------------------------------------------------------
// Footprint

/// `/proc` figures of one process.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 of `rest` (0-based 11, 12).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rollup(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((kb("Pss:")? * 1024, kb("Rss:")? * 1024))
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The Chromium browser process started with `--bangban-bench-role=<role>` and all its
/// descendants (zygotes, renderers, GPU, utility processes).
fn chromium_tree(role: &str) -> Result<Vec<u32>> {
    let flag = format!("--bangban-bench-role={role}");
    let pids = all_pids();
    let root = pids
        .iter()
        .copied()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&flag.as_bytes()) && !args.iter().any(|a| a.starts_with(b"--type="))
            })
        })
        .with_context(|| format!("no Chromium process with {flag}"))?;
    let parents: Vec<(u32, u32)> = pids.iter().filter_map(|p| Some((*p, ppid(*p)?))).collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    Ok(tree)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// CPU of the processes `pids()` names over `window`, then their memory.
async fn measure(window: Duration, pids: impl Fn() -> Result<Vec<u32>>) -> Result<Footprint> {
    let start: HashMap<u32, u64> = pids()?.into_iter().filter_map(|p| Some((p, cpu_ticks(p)?))).collect();
    let t0 = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let now = pids()?;
    let mut ticks = 0u64;
    let (mut pss, mut rss) = (0u64, 0u64);
    for p in &now {
        if let Some(t) = cpu_ticks(*p) {
            ticks += t.saturating_sub(start.get(p).copied().unwrap_or(0));
        }
        if let Some((ps, rs)) = rollup(*p) {
            pss += ps;
            rss += rs;
        }
    }
    Ok(Footprint {
        cpu_pct: ticks as f64 / clk_tck() / secs * 100.0,
        pss: pss as f64,
        rss: rss as f64,
        processes: now.len(),
    })
}

pub async fn footprint_run(o: &Opts) -> Result<FootprintOutcome> {
    let mut scene = Scene::start(o, "terminal-footprint").await?;
    let log = log_dir(scene.tmp.path()).join("endpoint.log");
    let r = async {
        let mut ep =
            Endpoint::start(o, &format!("http://{}", scene.server.addr), &scene.codes[0], 1000, &log)
                .await
                .context("endpoint-client")?;
        let token = scene.chromium_terminal_token().await?;
        let mut out = FootprintOutcome::default();
        for i in 0..o.runs {
            // The endpoint-client.
            rust_call(&mut scene, &mut ep).await?;
            scene.browser.cmd(json!({ "cmd": "console_times" })).await?;
            scene.browser.cmd(json!({ "cmd": "share" })).await?;
            ep.wait("decoded camera and screen", |s| decoded(s, "camera") > 0 && decoded(s, "screen") > 0)
                .await?;
            // What is measured is the codec asked for, both ways.
            ep.wait("the call in the console's codec", |s| {
                s["call"]["video_codec"] == o.codec.as_str()
                    && s["call"]["remote"].as_array().is_some_and(|r| {
                        r.iter().filter(|t| t["kind"] != "audio").all(|t| t["codec"] == o.codec.as_str())
                    })
            })
            .await?;
            tokio::time::sleep(o.settle).await;
            let pid = ep.pid;
            let r = measure(o.window, || Ok(vec![pid])).await?;
            eprintln!("terminal-footprint {i} endpoint-client: {r:?}");
            scene.browser.cmd(json!({ "cmd": "hangup" })).await?;
            ep.finish_call().await?;
            // The Chromium tab playing the terminal.
            chromium_call(&mut scene, &token, o).await?;
            scene.browser.cmd(json!({ "cmd": "console_times" })).await?;
            scene.browser.cmd(json!({ "cmd": "share" })).await?;
            scene.browser.cmd(json!({ "cmd": "terminal_frames", "tracks": 2 })).await?;
            tokio::time::sleep(o.settle).await;
            let c = measure(o.window, || chromium_tree("terminal")).await?;
            eprintln!("terminal-footprint {i} Chromium tab:    {c:?}");
            scene.browser.cmd(json!({ "cmd": "hangup" })).await?;
            out.rust.push(r);
            out.chromium.push(c);
        }
        drop(ep);
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    if r.is_err() {
        eprintln!("endpoint log:\n{}", util::tail(&log));
    }
    scene.stop().await?;
    r
}

/// The terminal in a two-party call and then, in the same call, with a supervisor monitoring
/// it; and the supervisor's click → first frame.
#[derive(Debug, Default)]
pub struct ThreePartyOutcome {
    pub two: Vec<Footprint>,
    pub three: Vec<Footprint>,
    /// Click on 监听 → first remote video frame presented in the supervisor's page (ms).
    pub first_frame_ms: Vec<f64>,
}

/// Per run: a call between the endpoint-client and the console (no screen share), measured;
/// then a supervisor (a second console page) monitors it, measured again in the same call.
pub async fn three_party_run(o: &Opts) -> Result<ThreePartyOutcome> {
    let mut scene = Scene::start(o, "terminal-three-party").await?;
    let log = log_dir(scene.tmp.path()).join("endpoint.log");
    let r = async {
        let mut ep =
            Endpoint::start(o, &format!("http://{}", scene.server.addr), &scene.codes[0], 1000, &log)
                .await
                .context("endpoint-client")?;
        let mut out = ThreePartyOutcome::default();
        for i in 0..o.runs {
            rust_call(&mut scene, &mut ep).await?;
            scene.browser.cmd(json!({ "cmd": "console_times" })).await?;
            ep.wait("decoded camera", |s| decoded(s, "camera") > 0).await?;
            tokio::time::sleep(o.settle).await;
            let pid = ep.pid;
            let two = measure(o.window, || Ok(vec![pid])).await?;
            let sup = scene
                .browser
                .cmd(json!({ "cmd": "supervise", "user": "supervisor", "password": DEMO_PASSWORD }))
                .await?;
            ep.wait("the supervisor's connection", |s| s["call"]["extra_peers"] == 1).await?;
            tokio::time::sleep(o.settle).await;
            let three = measure(o.window, || Ok(vec![pid])).await?;
            let first = num(&sup, "firstFrame")? - num(&sup, "click")?;
            eprintln!("terminal-three-party {i}: two-party {two:?}, three-party {three:?}, supervisor first frame {first:.0} ms");
            scene.browser.cmd(json!({ "cmd": "unsupervise" })).await?;
            ep.wait("the supervisor's connection closed", |s| s["call"]["extra_peers"] == 0).await?;
            scene.browser.cmd(json!({ "cmd": "hangup" })).await?;
            ep.finish_call().await?;
            out.two.push(two);
            out.three.push(three);
            out.first_frame_ms.push(first);
        }
        drop(ep);
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    if r.is_err() {
        eprintln!("endpoint log:\n{}", util::tail(&log));
    }
    scene.stop().await?;
    r
}

/// PSS and RSS (bytes) of the terminal after call `n`.
#[derive(Debug, Clone, Copy)]
pub struct SoakPoint {
    pub call: usize,
    pub pss: f64,
    pub rss: f64,
}

/// `calls` calls of `hold` each through one endpoint-client (the console in Chromium accepts
/// and hangs up, the resident rates); memory after each call once its pipelines, peer
/// connection and tasks are gone.
pub async fn soak_run(o: &Opts, calls: usize, hold: Duration) -> Result<Vec<SoakPoint>> {
    let mut scene = Scene::start(o, "terminal-soak").await?;
    let log = log_dir(scene.tmp.path()).join("endpoint.log");
    let r = async {
        let mut ep =
            Endpoint::start(o, &format!("http://{}", scene.server.addr), &scene.codes[0], 1000, &log)
                .await
                .context("endpoint-client")?;
        let mut out = Vec::new();
        for n in 1..=calls {
            rust_call(&mut scene, &mut ep).await?;
            ep.wait("decoded camera", |s| decoded(s, "camera") > 0).await?;
            tokio::time::sleep(hold).await;
            scene.browser.cmd(json!({ "cmd": "hangup" })).await?;
            ep.finish_call().await?;
            ep.wait("the call's pipelines, peer connection and tasks released", |s| {
                s["live"]["pipelines"] == 0
                    && s["live"]["peer_connections"] == 0
                    && s["live"]["call_tasks"] == 0
            })
            .await?;
            let (pss, rss) = rollup(ep.pid).context("smaps_rollup")?;
            let p = SoakPoint { call: n, pss: pss as f64, rss: rss as f64 };
            eprintln!("terminal-soak call {n}: PSS {:.1} MB, RSS {:.1} MB", p.pss / 1e6, p.rss / 1e6);
            out.push(p);
        }
        drop(ep);
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    if r.is_err() {
        eprintln!("endpoint log:\n{}", util::tail(&log));
    }
    scene.stop().await?;
    r
}
