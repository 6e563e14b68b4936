//! Shared pieces: the server, the endpoint-client process, the operator's socket and peer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use endpoint_client::call::{build_peer, payload_type_for, sample_track, video_formats};
use endpoint_client::config::{AudioSource, DisplayConfig, DisplayMode, MediaConfig, VideoSource};
use endpoint_client::media::{self, Decoder, RateLimit, RemoteKind, SampleTarget, SendStats, VideoCodec};
use futures_util::{SinkExt, StreamExt};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::Value;
use shared::protocol::{ClientMsg, ServerMsg, SessionView, Signal};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The signaling server with demo data, in-process on a free loopback port. `restart` stops it
/// and starts it again on the same port and data directory (a server restart).
pub struct Server {
    pub base: String,
    pub enrollment: Vec<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    database_url: String,
    ice: signaling_server::ice::IceConfig,
    tweak: Tweak,
}

/// A change to the server's configuration, applied at every start.
pub type Tweak = std::sync::Arc<dyn Fn(&mut signaling_server::config::Config) + Send + Sync>;

/// SQLite in the test's directory, or with `BANGBAN_TEST_DB=postgres` a fresh schema in the
/// PostgreSQL at `BANGBAN_TEST_PG_URL` (default 127.0.0.1:5432, database `test`).
async fn database_url(dir: &Path) -> Result<String> {
    if std::env::var("BANGBAN_TEST_DB").is_ok_and(|v| v == "postgres") {
        pg_schema_url().await
    } else {
        Ok(signaling_server::config::default_database_url(&dir.join("data")))
    }
}

impl Server {
    pub async fn start() -> Result<Self> {
        Self::start_full(signaling_server::ice::IceConfig::default(), std::sync::Arc::new(|_| {})).await
    }

    /// A server that hands out these STUN/TURN servers with each session.
    pub async fn start_with_ice(ice: signaling_server::ice::IceConfig) -> Result<Self> {
        Self::start_full(ice, std::sync::Arc::new(|_| {})).await
    }

    /// Starts with the configuration changed by `tweak` (also on `restart`).
    pub async fn start_with(
        tweak: impl Fn(&mut signaling_server::config::Config) + Send + Sync + 'static,
    ) -> Result<Self> {
        Self::start_full(signaling_server::ice::IceConfig::default(), std::sync::Arc::new(tweak)).await
    }

    async fn start_full(ice: signaling_server::ice::IceConfig, tweak: Tweak) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let database_url = database_url(dir.path()).await?;
        let (addr, enrollment, stop, task) =
            Self::spawn(dir.path(), "127.0.0.1:0".parse()?, &database_url, &ice, &tweak).await?;
        Ok(Self {
            base: format!("http://{addr}"),
            enrollment,
            stop: Some(stop),
            task: Some(task),
            addr,
            dir,
            database_url,
            ice,
            tweak,
        })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    #[allow(clippy::type_complexity)]
    async fn spawn(
        dir: &Path,
        listen: std::net::SocketAddr,
        database_url: &str,
        ice: &signaling_server::ice::IceConfig,
        tweak: &Tweak,
    ) -> Result<(
        std::net::SocketAddr,
        Vec<(String, String)>,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )> {
        let mut cfg = signaling_server::config::Config::for_data_dir(dir.join("data"));
        cfg.listen = listen;
        cfg.database_url = database_url.to_owned();
        cfg.demo = true;
        cfg.ice = ice.clone();
        tweak(&mut cfg);
        let app = signaling_server::Application::build(cfg).await?;
        let addr = app.local_addr();
        let enrollment = app.demo_enrollment.clone();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Ok((addr, enrollment, stop, task))
    }

    /// Graceful stop (clients get `bye shutdown`), then a fresh start on the same port and data.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t).await.context("server did not stop")???;
        }
        let (_, _, stop, task) =
            Self::spawn(self.dir.path(), self.addr, &self.database_url, &self.ice, &self.tweak).await?;
        self.stop = Some(stop);
        self.task = Some(task);
        Ok(())
    }

    pub async fn login(&self, username: &str) -> Result<String> {
        let v: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({ "username": username, "password": "bangban-demo" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["access_token"].as_str().context("no access_token")?.to_owned())
    }

    pub async fn get_bytes(&self, token: &str, path: &str) -> Result<Vec<u8>> {
        Ok(reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?
            .to_vec())
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Result<Value> {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }

    /// A whole file through tus (`POST` then one `PATCH`); returns the material ID.
    pub async fn tus_upload(
        &self,
        token: &str,
        session_id: uuid::Uuid,
        filename: &str,
        data: &[u8],
    ) -> Result<String> {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let meta = format!(
            "filename {},session_id {},sha256 {}",
            b64(filename),
            b64(&session_id.to_string()),
            b64(&sha256_hex(data))
        );
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/v1/uploads", self.base))
            .bearer_auth(token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", data.len().to_string())
            .header("upload-metadata", meta)
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("tus create: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        let loc = r.headers().get("location").context("Location")?.to_str()?.to_owned();
        let r = http
            .patch(format!("{}{loc}", self.base))
            .bearer_auth(token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(data.to_vec())
            .send()
            .await?;
        if r.status().as_u16() != 204 {
            bail!("tus patch: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        Ok(r.headers().get("bangban-material-id").context("Bangban-Material-Id")?.to_str()?.to_owned())
    }

    pub async fn get(&self, token: &str, path: &str) -> Result<Value> {
        Ok(reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A fresh schema in the PostgreSQL at `BANGBAN_TEST_PG_URL` (default 127.0.0.1:5432, database
/// `test`): its URL.
pub async fn pg_schema_url() -> Result<String> {
    use sqlx::{Connection, Executor};
    let base = std::env::var("BANGBAN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await?;
    Ok(format!("{base}?options=-c%20search_path%3D{schema}"))
}

/// `target/debug/<name>` (a binary of the workspace), next to this test binary's `deps/`.
pub fn target_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("test binary has no target dir")?;
    let bin = dir.join(name);
    if !bin.exists() {
        bail!("{} is missing: run `cargo build -p {name}` first", bin.display());
    }
    Ok(bin)
}

/// `target/debug/endpoint-client`.
pub fn endpoint_binary() -> Result<PathBuf> {
    target_binary("endpoint-client")
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The workspace's `scripts/` directory.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts")
}

/// Devices of the endpoint under test (both off unless given).
#[derive(Debug, Clone, Default)]
pub struct EndpointOpts {
    /// IPP printer URI (CUPS queue).
    pub printer_uri: Option<String>,
    /// SANE device and the private SANE configuration directory.
    pub scanner: Option<(String, PathBuf)>,
    /// More `scanimage` arguments (fault injection).
    pub scanner_extra_args: Vec<String>,
    /// Reach the server here instead (a proxy in front of it).
    pub server_url: Option<String>,
    /// The `[webrtc]` section's body (default: loopback host candidates, no server ICE).
    pub webrtc: Option<String>,
    /// `display.record_dir`: write what the terminal receives to files.
    pub record_dir: Option<PathBuf>,
    /// `tls_ca_file`: the CA that signed the (proxy's) server certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// Seconds between heartbeats (`[health] interval_secs`; the client's default when `None`).
    pub health_interval_secs: Option<u64>,
    /// The `[display]` section's body (default: headless, with `record_dir` if set).
    pub display: Option<String>,
    /// More environment for `endpoint-client run` (e.g. systemd's `NOTIFY_SOCKET`).
    pub env: Vec<(String, String)>,
    /// The `[storage]` section's body (the client's defaults when `None`).
    pub storage: Option<String>,
}

/// The endpoint-client process (headless, test sources, loopback), killed on drop.
pub struct Endpoint {
    child: tokio::process::Child,
    pub kiosk: String,
    pub status: watch::Receiver<Value>,
    opts: EndpointOpts,
    base: String,
    dir: tempfile::TempDir,
}

const ENDPOINT_CONFIG: &str = r#"
[media]
video_source = "test"
audio_source = "test"
width = 320
height = 240
fps = 15
video_bitrate_kbps = 300
[kiosk]
listen = "127.0.0.1:0"
"#;

impl Endpoint {
    fn command(base: &str, dir: &Path, opts: &EndpointOpts) -> Result<tokio::process::Command> {
        let cfg = dir.join("endpoint.toml");
        let printer = match &opts.printer_uri {
            Some(uri) => format!("[printer]\nuri = \"{uri}\"\npoll_ms = 100\n"),
            None => "[printer]\nenabled = false\n".to_owned(),
        };
        let scanner = match &opts.scanner {
            Some((device, _)) => format!(
                "[scanner]\ndevice = \"{device}\"\nresolution_dpi = 150\nextra_args = {:?}\n",
                opts.scanner_extra_args
            ),
            None => "[scanner]\nenabled = false\n".to_owned(),
        };
        let webrtc = opts
            .webrtc
            .clone()
            .unwrap_or_else(|| "udp_addrs = [\"127.0.0.1:0\"]\nuse_server_ice = false\n".to_owned());
        let display = match (&opts.display, &opts.record_dir) {
            (Some(body), _) => format!("[display]\n{body}"),
            (None, Some(dir)) => {
                format!("[display]\nmode = \"headless\"\nrecord_dir = {:?}\n", dir.display().to_string())
            }
            (None, None) => "[display]\nmode = \"headless\"\n".to_owned(),
        };
        let base = opts.server_url.as_deref().unwrap_or(base);
        let ca = match &opts.tls_ca_file {
            Some(f) => format!("tls_ca_file = {:?}\n", f.display().to_string()),
            None => String::new(),
        };
        let health =
            opts.health_interval_secs.map(|s| format!("[health]\ninterval_secs = {s}\n")).unwrap_or_default();
        let storage = opts.storage.as_ref().map(|b| format!("[storage]\n{b}\n")).unwrap_or_default();
        std::fs::write(
            &cfg,
            format!(
                "server_url = \"{base}\"\n{ca}credential_file = \"{}\"\nstate_dir = \"{}\"\nstatus_lines = true\n{ENDPOINT_CONFIG}{printer}{scanner}{health}{storage}{display}[webrtc]\n{webrtc}",
                dir.join("credential").display(),
                dir.join("state").display(),
            ),
        )?;
        let mut cmd = tokio::process::Command::new(endpoint_binary()?);
        // `BANGBAN_E2E_ENDPOINT_LOG` overrides the terminal's log filter (diagnosis).
        let log =
            std::env::var("BANGBAN_E2E_ENDPOINT_LOG").unwrap_or_else(|_| "info,webrtc=warn,rtc=warn".into());
        cmd.arg("--config").arg(&cfg).env("RUST_LOG", log).kill_on_drop(true);
        if let Some((_, sane)) = &opts.scanner {
            cmd.env("SANE_CONFIG_DIR", sane);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        Ok(cmd)
    }

    /// `endpoint-client enroll --code CODE` then `endpoint-client run`; waits for `ready`.
    #[allow(dead_code)] // for tests that need no options
    pub async fn enroll_and_run(server: &Server, code: &str) -> Result<Self> {
        Self::enroll_and_run_with(server, code, EndpointOpts::default()).await
    }

    pub async fn enroll_and_run_with(server: &Server, code: &str, opts: EndpointOpts) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let out =
            Self::command(&server.base, dir.path(), &opts)?.args(["enroll", "--code", code]).output().await?;
        if !out.status.success() {
            bail!("enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("credential"))?.permissions().mode();
            if mode & 0o777 != 0o600 {
                bail!("credential file mode {:o}", mode & 0o777);
            }
        }
        let (child, kiosk, status) = Self::spawn_run(&server.base, dir.path(), &opts).await?;
        Ok(Self { child, kiosk, status, opts, base: server.base.clone(), dir })
    }

    async fn spawn_run(
        base: &str,
        dir: &Path,
        opts: &EndpointOpts,
    ) -> Result<(tokio::process::Child, String, watch::Receiver<Value>)> {
        let mut child = Self::command(base, dir, opts)?.arg("run").stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (kiosk_tx, kiosk_rx) = oneshot::channel();
        let (status_tx, status) = watch::channel(Value::Null);
        tokio::spawn(async move {
            let mut kiosk_tx = Some(kiosk_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                match v["event"].as_str() {
                    Some("ready") => {
                        if let Some(tx) = kiosk_tx.take() {
                            let _ = tx.send(v["kiosk"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                    Some("status") => {
                        let _ = status_tx.send(v["status"].clone());
                    }
                    _ => {}
                }
            }
        });
        let kiosk = tokio::time::timeout(WAIT, kiosk_rx).await.context("endpoint never became ready")??;
        Ok((child, format!("http://{kiosk}"), status))
    }

    /// SIGKILL: a crash or power cut, nothing is flushed or said goodbye.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Starts `endpoint-client run` again with the same credential and state directory.
    pub async fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill().await;
        let (child, kiosk, status) = Self::spawn_run(&self.base, self.dir.path(), &self.opts).await?;
        self.child = child;
        self.kiosk = kiosk;
        self.status = status;
        Ok(())
    }

    /// The process id of `endpoint-client run`.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `<state dir>` of this terminal (spool, print records).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Waits until the status (printed once per second) satisfies `pred`.
    pub async fn wait_status(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let r =
            tokio::time::timeout(WAIT, self.status.wait_for(|v| pred(v))).await.map(|r| r.map(|v| v.clone()));
        match r {
            Ok(Ok(v)) => Ok(v),
            _ => Err(anyhow!("timed out waiting for {what}; last status: {}", *self.status.borrow())),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let r = reqwest::Client::new().post(format!("{}{path}", self.kiosk)).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }

    /// The active remote item of the 社会保障 line (one operator1 serves) in the kiosk's list.
    pub async fn social_security_item(&self) -> Result<Value> {
        let items = self.get("/api/items").await?;
        items
            .as_array()
            .and_then(|a| {
                a.iter().find(|i| {
                    i["line_name"] == "社会保障" && i["remote_allowed"] == true && i["active"] == true
                })
            })
            .cloned()
            .context("a remote 社会保障 item")
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(reqwest::get(format!("{}{path}", self.kiosk)).await?.error_for_status()?.json().await?)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The operator's WebSocket, as a pair of channels.
pub struct OperatorWs {
    pub tx: mpsc::Sender<ClientMsg>,
    pub rx: mpsc::Receiver<ServerMsg>,
}

impl OperatorWs {
    pub async fn connect(server: &Server, token: &str) -> Result<Self> {
        Self::connect_to(&server.base, token).await
    }

    /// Connects to the server at `base` (`http://host:port`), e.g. a node in its own process.
    pub async fn connect_to(base: &str, token: &str) -> Result<Self> {
        let mut req = format!("{}/ws", base.replacen("http", "ws", 1)).into_client_request()?;
        req.headers_mut().insert("sec-websocket-protocol", format!("bangban.v1, bearer.{token}").parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut out_rx) = mpsc::channel::<ClientMsg>(64);
        let (in_tx, rx) = mpsc::channel::<ServerMsg>(256);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = out_rx.recv() => match m {
                        Some(m) => if sink.send(Message::text(m.encode())).await.is_err() { break },
                        None => break,
                    },
                    f = stream.next() => match f {
                        Some(Ok(Message::Text(t))) => {
                            if let Ok(m) = ServerMsg::decode(t.as_bytes()) && in_tx.send(m).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        });
        Ok(Self { tx, rx })
    }

    pub async fn send(&self, m: ClientMsg) -> Result<()> {
        self.tx.send(m).await.map_err(|_| anyhow!("operator socket closed"))
    }

    /// Next message for which `f` returns `Some`, skipping the others.
    pub async fn expect<T>(&mut self, what: &str, f: impl Fn(ServerMsg) -> Option<T>) -> Result<T> {
        let fut = async {
            while let Some(m) = self.rx.recv().await {
                if let ServerMsg::Error { .. } = &m {
                    tracing::warn!(?m, "operator got an error");
                }
                if let Some(t) = f(m) {
                    return Ok(t);
                }
            }
            Err(anyhow!("operator socket closed while waiting for {what}"))
        };
        tokio::time::timeout(WAIT, fut).await.map_err(|_| anyhow!("timed out waiting for {what}"))?
    }
}

enum OpEvent {
    Candidate(RTCIceCandidateInit),
    Connected,
}

/// The terminal's camera track at the operator, with its SSRC (once it has arrived).
type RemoteVideo = Arc<std::sync::Mutex<Option<(Arc<dyn TrackRemote>, u32)>>>;

struct OpHandler {
    tx: mpsc::UnboundedSender<OpEvent>,
    video_packets: Arc<AtomicU64>,
    audio_packets: Arc<AtomicU64>,
    video_decoded: Arc<std::sync::Mutex<Vec<Arc<AtomicU64>>>>,
    remote_video: RemoteVideo,
    /// The codec the terminal's camera arrived in.
    video_codec: Arc<std::sync::Mutex<Option<VideoCodec>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for OpHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.tx.send(OpEvent::Candidate(init));
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.tx.send(OpEvent::Connected);
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let is_audio = track.kind().await == RtpCodecKind::Audio;
        let counter = if is_audio { self.audio_packets.clone() } else { self.video_packets.clone() };
        let decoded = self.video_decoded.clone();
        let remote_video = self.remote_video.clone();
        let video_codec = self.video_codec.clone();
        // Like the console: decode the terminal's camera, ask for keyframes when the decoder
        // starts or its depayloader wants one.
        tokio::spawn(async move {
            let mut decoder: Option<Decoder> = None;
            let mut limit = RateLimit::new(media::KEYFRAME_MIN_INTERVAL);
            let mut ssrc = None;
            loop {
                let mut want_keyframe = false;
                let ev = match decoder.as_mut() {
                    Some(d) => tokio::select! {
                        ev = track.poll() => ev,
                        Some(()) = d.keyframe_requests.recv() => {
                            want_keyframe = true;
                            None
                        }
                    },
                    None => track.poll().await,
                };
                match ev {
                    Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        if !is_audio {
                            if decoder.is_none() {
                                let display =
                                    DisplayConfig { mode: DisplayMode::Headless, ..Default::default() };
                                let mime = track.codec(p.header.ssrc).await.map(|c| c.mime_type);
                                let Some(codec) = mime.as_deref().and_then(VideoCodec::from_mime) else {
                                    tracing::error!(
                                        ?mime,
                                        "operator: the terminal's video is in an unknown codec"
                                    );
                                    break;
                                };
                                *video_codec.lock().unwrap_or_else(|e| e.into_inner()) = Some(codec);
                                if let Ok(d) = Decoder::new(
                                    RemoteKind::Camera,
                                    codec,
                                    p.header.payload_type,
                                    &display,
                                    None,
                                    None,
                                ) {
                                    decoded.lock().unwrap_or_else(|e| e.into_inner()).push(d.decoded.clone());
                                    *remote_video.lock().unwrap_or_else(|e| e.into_inner()) =
                                        Some((track.clone(), p.header.ssrc));
                                    decoder = Some(d);
                                    want_keyframe = true;
                                }
                            }
                            ssrc = Some(p.header.ssrc);
                            if let Some(d) = &decoder {
                                d.push_rtp(&p);
                            }
                        }
                    }
                    Some(TrackRemoteEvent::OnEnded) => break,
                    Some(_) => {}
                    None if !want_keyframe => break,
                    None => {}
                }
                if want_keyframe
                    && let Some(media_ssrc) = ssrc
                    && limit.allow(std::time::Instant::now())
                {
                    let _ = track
                        .write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })])
                        .await;
                }
            }
        });
    }
}

/// The operator's side of a call: impolite, offers audio + camera + a separate screen track.
pub struct OperatorPeer {
    pub pc: Arc<dyn PeerConnection>,
    pub video_packets: Arc<AtomicU64>,
    pub audio_packets: Arc<AtomicU64>,
    pub connected: watch::Receiver<bool>,
    pub sent: Vec<Arc<SendStats>>,
    /// ICE-restart offers from the terminal that the operator answered.
    pub offers_answered: Arc<AtomicU64>,
    video_decoded: Arc<std::sync::Mutex<Vec<Arc<AtomicU64>>>>,
    remote_video: RemoteVideo,
    video_codec: Arc<std::sync::Mutex<Option<VideoCodec>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OperatorPeer {
    /// Builds the peer, offers (VP8 first, as Chromium does), and spawns the signaling loop fed
    /// by `ws` (answer, candidates). Non-signal messages are passed on to the returned receiver.
    pub async fn call(
        session: &SessionView,
        ws: OperatorWs,
    ) -> Result<(Self, mpsc::Sender<ClientMsg>, mpsc::Receiver<ServerMsg>)> {
        Self::call_preferring(session, ws, &[VideoCodec::Vp8, VideoCodec::H264], VideoCodec::Vp8).await
    }

    /// [`OperatorPeer::call`] with the offer's video codecs in `codecs` order; the operator's
    /// camera and screen go out in `sends` (a webrtc-rs track's codec is fixed when it is made:
    /// pass the codec the answer will settle on).
    pub async fn call_preferring(
        session: &SessionView,
        mut ws: OperatorWs,
        codecs: &[VideoCodec],
        sends: VideoCodec,
    ) -> Result<(Self, mpsc::Sender<ClientMsg>, mpsc::Receiver<ServerMsg>)> {
        media::init()?;
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let video_packets = Arc::new(AtomicU64::new(0));
        let audio_packets = Arc::new(AtomicU64::new(0));
        let video_decoded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let remote_video = Arc::new(std::sync::Mutex::new(None));
        let offers_answered = Arc::new(AtomicU64::new(0));
        let video_codec = Arc::new(std::sync::Mutex::new(None));
        let handler = Arc::new(OpHandler {
            tx: ev_tx,
            video_packets: video_packets.clone(),
            audio_packets: audio_packets.clone(),
            video_decoded: video_decoded.clone(),
            remote_video: remote_video.clone(),
            video_codec: video_codec.clone(),
        });
        let pc = build_peer(vec![], vec!["127.0.0.1:0".into()], codecs, handler).await?;
        let codec = sends;
        let camera = sample_track(RtpCodecKind::Video, codec, "operator", "operator-camera")?;
        let mic = sample_track(RtpCodecKind::Audio, codec, "operator", "operator-mic")?;
        let screen = sample_track(RtpCodecKind::Video, codec, "operator-screen", "screen")?;
        // The offer lists every video codec in `codecs` order, as a browser's setCodecPreferences
        // does (a webrtc-rs transceiver otherwise offers only its track's codec).
        let cam_tr = pc.add_transceiver_from_track(camera.clone() as Arc<dyn TrackLocal>, None).await?;
        cam_tr.set_codec_preferences(video_formats(codecs)).await?;
        let cam_sender = cam_tr.sender().await?.context("camera sender")?;
        let mic_sender = pc.add_track(mic.clone() as Arc<dyn TrackLocal>).await?;
        let screen_tr = pc
            .add_transceiver_from_track(
                screen.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await?;
        screen_tr.set_codec_preferences(video_formats(codecs)).await?;
        let screen_sender = screen_tr.sender().await?.context("screen sender")?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        let sdp = pc.local_description().await.context("local description")?.sdp;
        let sid = session.session_id;
        ws.send(ClientMsg::Signal {
            session_id: sid,
            signal: Signal::Offer { sdp: sdp.try_into()?, ice_restart: false },
        })
        .await?;

        let (connected_tx, connected) = watch::channel(false);
        let (rest_tx, rest_rx) = mpsc::channel(64);
        let ws_tx = ws.tx.clone();
        let pc2 = pc.clone();
        let mut tasks = vec![];
        let senders = [
            (cam_sender, camera, "smpte", 15u32, (320u32, 240u32)),
            (screen_sender, screen, "bar", 5, (640, 360)),
        ];
        let sent: Vec<Arc<SendStats>> = (0..3).map(|_| Arc::new(SendStats::default())).collect();
        let sent2 = sent.clone();
        let mic_sender2 = mic_sender.clone();
        let answered = offers_answered.clone();
        tasks.push(tokio::spawn(async move {
            let mut pumps_started = false;
            loop {
                tokio::select! {
                    m = ws.rx.recv() => match m {
                        None => break,
                        Some(ServerMsg::Signal { signal, .. }) => match signal {
                            // The terminal restarts ICE after a network change: answer it.
                            Signal::Offer { sdp, .. } => {
                                let r = async {
                                    pc2.set_remote_description(RTCSessionDescription::offer(sdp.into_inner())?).await?;
                                    let answer = pc2.create_answer(None).await?;
                                    pc2.set_local_description(answer).await?;
                                    let sdp = pc2.local_description().await.context("local description")?.sdp;
                                    ws.send(ClientMsg::Signal { session_id: sid, signal: Signal::Answer { sdp: sdp.try_into()? } }).await?;
                                    anyhow::Ok(())
                                }.await;
                                match r {
                                    Ok(()) => { answered.fetch_add(1, Ordering::Relaxed); }
                                    Err(e) => tracing::error!(error = %e, "operator: cannot answer the terminal's offer"),
                                }
                            }
                            Signal::Answer { sdp } => {
                                if let Err(e) = pc2.set_remote_description(RTCSessionDescription::answer(sdp.into_inner()).expect("answer")).await {
                                    tracing::error!(error = %e, "operator: bad answer");
                                }
                            }
                            Signal::Candidate { candidate, sdp_mid, sdp_m_line_index } if !candidate.as_str().is_empty() => {
                                let init = endpoint_client::call::candidate_init(candidate.as_str(), sdp_mid.as_ref().map(|m| m.as_str()), sdp_m_line_index);
                                if let Err(e) = pc2.add_ice_candidate(init).await {
                                    tracing::warn!(error = %e, "operator: candidate refused");
                                }
                            }
                            _ => {}
                        },
                        Some(other) => { let _ = rest_tx.send(other).await; }
                    },
                    ev = ev_rx.recv() => match ev {
                        None => break,
                        Some(OpEvent::Candidate(init)) => {
                            if let Some(signal) = endpoint_client::call::candidate_signal(&init) {
                                let _ = ws.tx.send(ClientMsg::Signal { session_id: sid, signal }).await;
                            }
                        }
                        Some(OpEvent::Connected) => {
                            let _ = connected_tx.send(true);
                            if pumps_started { continue; }
                            pumps_started = true;
                            for (i, (sender, track, pattern, fps, (w, h))) in senders.iter().enumerate() {
                                let params = sender.get_parameters().await.expect("params");
                                let pt = payload_type_for(&params.rtp_parameters.codecs, codec.mime_type()).expect("our codec in the answer");
                                let ssrc = track.ssrcs().await[0];
                                let cfg = MediaConfig { video_source: VideoSource::Test, audio_source: AudioSource::Test, width: *w, height: *h, fps: *fps, video_bitrate_kbps: 300, ..MediaConfig::default() };
                                let desc = media::video_source_pipeline(&cfg, pattern, codec);
                                let fps = *fps;
                                let (track, stats) = (track.clone(), sent2[i].clone());
                                tokio::spawn(async move {
                                    let _ = media::pump_into_track(desc, SampleTarget { track, ssrc, payload_type: pt, clock_rate: 90_000, fallback: Duration::from_secs(1) / fps }, media::FanOut::default(), Default::default(), stats).await;
                                });
                            }
                            let params = mic_sender2.get_parameters().await.expect("params");
                            let pt = payload_type_for(&params.rtp_parameters.codecs, MIME_TYPE_OPUS).expect("Opus in the answer");
                            let ssrc = mic.ssrcs().await[0];
                            let cfg = MediaConfig { audio_source: AudioSource::Test, ..MediaConfig::default() };
                            let (track, stats) = (mic.clone(), sent2[2].clone());
                            tokio::spawn(async move {
                                let _ = media::pump_into_track(media::audio_source_pipeline(&cfg), SampleTarget { track, ssrc, payload_type: pt, clock_rate: 48_000, fallback: Duration::from_millis(20) }, media::FanOut::default(), Default::default(), stats).await;
                            });
                        }
                    },
                }
            }
        }));
        Ok((
            Self {
                pc,
                video_packets,
                audio_packets,
                connected,
                sent,
                offers_answered,
                video_decoded,
                remote_video,
                video_codec,
                tasks,
            },
            ws_tx,
            rest_rx,
        ))
    }
}

impl OperatorPeer {
    /// Frames the operator's camera, screen and microphone have sent.
    pub fn sent_frames(&self) -> Vec<u64> {
        self.sent.iter().map(|s| s.frames.load(Ordering::Relaxed)).collect()
    }

    /// Frames of the terminal's camera the operator decoded.
    pub fn video_decoded(&self) -> u64 {
        self.video_decoded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The codec the terminal's camera arrived in (once it has).
    pub fn received_video_codec(&self) -> Option<VideoCodec> {
        *self.video_codec.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keyframe requests (PLI/FIR) the terminal sent about the operator's camera and screen.
    pub fn keyframe_requests_received(&self) -> u64 {
        self.sent[..2].iter().map(|s| s.keyframe_requests.load(Ordering::Relaxed)).sum()
    }

    /// Sends a PLI about the terminal's camera, as a console does when its decoder needs a
    /// keyframe. False until the camera track has arrived.
    pub async fn request_keyframe(&self) -> Result<bool> {
        let remote = self.remote_video.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some((track, media_ssrc)) = remote else { return Ok(false) };
        track.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })]).await?;
        Ok(true)
    }
}

impl Drop for OperatorPeer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let pc = self.pc.clone();
        tokio::spawn(async move {
            let _ = pc.close().await;
        });
    }
}

/// operator1 available, the kiosk takes a ticket for a remote 社会保障 item (through its API),
/// operator1 accepts: returns the operator's socket, the live session and the item.
pub async fn live_session(
    server: &Server,
    ep: &mut Endpoint,
    op_token: &str,
) -> Result<(OperatorWs, SessionView, Value)> {
    let mut op = OperatorWs::connect(server, op_token).await?;
    op.send(ClientMsg::SetAvailability { available: true }).await?;
    op.expect("available", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: shared::protocol::OperatorStateView::Available })
            .then_some(())
    })
    .await?;
    ep.wait_status("signaling connected", |s| s["connected"] == true && s["phase"] == "idle").await?;
    let item = ep.social_security_item().await?;
    ep.post("/api/ticket", serde_json::json!({ "item_id": item["id"] })).await?;
    let ticket = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket),
            _ => None,
        })
        .await?;
    op.send(ClientMsg::Accept { ticket_id: ticket.ticket_id }).await?;
    let session = op
        .expect("session_started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session),
            _ => None,
        })
        .await?;
    ep.wait_status("kiosk in call", |s| s["phase"] == "in_call").await?;
    Ok((op, session, item))
}
