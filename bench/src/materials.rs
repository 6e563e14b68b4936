//! `materials`: a scan uploaded the way the terminal uploads it (tus: `POST`, `HEAD`, then
//! `PATCH`es sized by the file with `Upload-Checksum: sha256`) until the server answers the last `PATCH`,
//! i.e. has stored it fsynced, checksummed and encrypted; against `curl --data-binary @file`
//! PUT to nginx-light (WebDAV `PUT`, body written to disk) on the same machine, in the same
//! run. Both again through [`proxy`], a userspace TCP proxy emulating a 20 ms round trip and
//! 1 % loss.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::proxy::{self, Impairment};
use crate::signaling::{accept_one, server_env, take_and_wait};
use crate::util::{self, Api, DEMO_PASSWORD, OPERATOR_PASSWORD, Proc, Ws};

/// The terminal's chunk for a file of `size` bytes (`endpoint_client::upload::chunk_for`; the
/// bench does not link the terminal and its WebRTC/GStreamer stack, so the same requests are
/// made here): a quarter of the file, 256 KiB to 8 MiB.
pub fn chunk_for(size: usize) -> usize {
    size.div_ceil(4).clamp(256 * 1024, 8 * 1024 * 1024)
}

/// Uploads at once for the server's peak memory.
pub const CONCURRENT: usize = 20;
const TUS: &str = "1.0.0";

#[derive(Debug, Clone)]
pub struct Opts {
    /// Size of the scan (a JPEG of about this many bytes).
    pub bytes: usize,
    pub runs: usize,
    pub impaired_runs: usize,
    pub server_bin: PathBuf,
}

/// Seconds per upload, per run: ours and the reference, on loopback and through the proxy.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub file_bytes: usize,
    pub ours: Vec<f64>,
    pub nginx: Vec<f64>,
    pub ours_impaired: Vec<f64>,
    pub nginx_impaired: Vec<f64>,
    /// The server's peak resident memory (VmHWM, bytes) after [`CONCURRENT`] uploads at once,
    /// and its resident memory before them.
    pub concurrent_peak_rss: Option<(u64, u64)>,
    /// Seconds for all of them.
    pub concurrent_secs: f64,
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(o: &Opts) -> Result<Outcome> {
    let tmp = tempfile::tempdir()?;
    let scan = tokio::task::spawn_blocking({
        let n = o.bytes;
        move || scan_jpeg(n)
    })
    .await??;
    eprintln!("materials: a {}-byte JPEG scan", scan.len());
    let file = tmp.path().join("scan.jpg");
    std::fs::write(&file, &scan)?;
    let mut out = Outcome { file_bytes: scan.len(), ..Outcome::default() };

    let mut server = Server::start(&o.server_bin, tmp.path()).await.context("server")?;
    let mut nginx = Nginx::start(tmp.path()).await.context("nginx")?;
    let mut n = 0usize;
    let mut variant = |scan: &[u8]| {
        n += 1;
        // Each upload is new content (the store deduplicates identical files).
        with_comment(scan, &format!("bangban-bench run {n}"))
    };
    for run in 0..o.runs {
        let data = variant(&scan);
        let t = server.upload(server.addr, &data).await.with_context(|| format!("upload, run {run}"))?;
        let r = nginx.put(nginx.addr, &file).await.with_context(|| format!("curl, run {run}"))?;
        eprintln!("materials run {run}: ours {t:.3} s, nginx {r:.3} s");
        out.ours.push(t);
        out.nginx.push(r);
    }
    for run in 0..o.impaired_runs {
        // The same loss pattern for both, different in every run.
        let imp = Impairment::wan(run as u64 + 1);
        let p = proxy::start(server.addr, imp).await?;
        let data = variant(&scan);
        let t = server.upload(p.addr, &data).await.with_context(|| format!("impaired upload, run {run}"))?;
        let stalls = p.stalls();
        drop(p);
        let p = proxy::start(nginx.addr, imp).await?;
        let r = nginx.put(p.addr, &file).await.with_context(|| format!("impaired curl, run {run}"))?;
        let ref_stalls = p.stalls();
        drop(p);
        eprintln!(
            "materials impaired run {run}: ours {t:.3} s ({stalls} stalls), nginx {r:.3} s ({ref_stalls} stalls)"
        );
        out.ours_impaired.push(t);
        out.nginx_impaired.push(r);
    }
    // Many at once: the server's peak memory (hashing, sealing and checks stream; thumbnails are
    // bounded in concurrency).
    let before = proc_status_kb(server.proc.pid, "VmRSS:").unwrap_or(0) * 1024;
    let datas: Vec<Vec<u8>> = (0..CONCURRENT).map(|_| variant(&scan)).collect();
    let started = Instant::now();
    let done = futures_util::future::try_join_all(datas.iter().map(|d| server.upload_ref(server.addr, d)))
        .await
        .context("concurrent uploads")?;
    out.concurrent_secs = started.elapsed().as_secs_f64();
    for (_, m) in done {
        server.materials.push(m);
    }
    let peak = proc_status_kb(server.proc.pid, "VmHWM:").unwrap_or(0) * 1024;
    out.concurrent_peak_rss = Some((peak, before));
    eprintln!(
        "materials: {CONCURRENT} uploads at once in {:.2} s; server VmHWM {} MB (VmRSS before {} MB)",
        out.concurrent_secs,
        peak / 1_000_000,
        before / 1_000_000
    );
    server.check_stored(o.runs + o.impaired_runs + CONCURRENT).await?;
    server.proc.stop().await?;
    nginx.proc.stop().await?;
    Ok(out)
}

/// A JPEG of about `bytes` bytes: an A4 page at 600 dpi wide, grey text-like stripes with noise
/// (a scan compresses poorly), as many rows as it takes.
fn scan_jpeg(bytes: usize) -> Result<Vec<u8>> {
    let width = if bytes >= 4_000_000 { 4960 } else { 1240 };
    let encode = |h: u32| -> Result<Vec<u8>> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let img = image::RgbImage::from_fn(width, h, |x, y| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state & 0x3F) as u8;
            let ink = if (y / 24) % 3 == 0 && (x / 16) % 5 != 0 { 60 } else { 190 };
            let v = ink + noise;
            image::Rgb([v, v.saturating_sub((state >> 8 & 7) as u8), v])
        });
        let mut out = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
        img.write_with_encoder(enc)?;
        Ok(out)
    };
    let probe = 256;
    let per_row = encode(probe)?.len() as f64 / f64::from(probe);
    let rows = ((bytes as f64 / per_row).round() as u32).clamp(16, 40_000);
    encode(rows)
}

/// `jpeg` with a comment segment after SOI: same image, different bytes.
pub fn with_comment(jpeg: &[u8], text: &str) -> Vec<u8> {
    let len = u16::try_from(text.len() + 2).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The real server with a live call session between a terminal and an operator.
struct Server {
    proc: Proc,
    addr: SocketAddr,
    http: reqwest::Client,
    api: Api,
    device: String,
    operator: String,
    session: Uuid,
    materials: Vec<Uuid>,
    _sockets: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(bin: &Path, tmp: &Path) -> Result<Self> {
        let dir = tmp.join("server");
        let args = vec!["--demo".to_owned(), "--data-dir".to_owned(), dir.display().to_string()];
        let mut proc = Proc::spawn(bin, &args, &server_env(), tmp.join("server.log")).await?;
        let api = Api::new(proc.addr)?;
        proc.wait_ready(&api.http, "/healthz").await?;
        let admin = api.login("admin", DEMO_PASSWORD).await?;
        let lines = crate::signaling::ids(&api.get("/api/v1/lines", &admin).await?);
        let items = api.get("/api/v1/items?remote=true", &admin).await?;
        let item = items
            .as_array()
            .and_then(|a| a.first())
            .and_then(|i| i["id"].as_str())
            .context("a remote item")?
            .to_owned();
        let points = api.get("/api/v1/points", &admin).await?;
        let point = points[0]["id"].as_str().context("a point")?.to_owned();
        api.create_operator(&admin, "bench-materials-op", &lines).await?;
        let credential = api.register_terminal(&admin, &point, "材料压测终端").await?;
        let device = api.device_token(&credential).await?;
        let operator = api.login("bench-materials-op", OPERATOR_PASSWORD).await?;
        let url = format!("ws://{}/ws", proc.addr);
        let mut term = util::ws_connect(&url, Some(&device)).await?;
        let mut op = util::ws_connect(&url, Some(&operator)).await?;
        let (session, _) =
            futures_util::future::try_join(take_and_wait(&mut term, &item), accept_one(&mut op))
                .await
                .context("a call session")?;
        // Both stay connected (the session stays live); their traffic is read and dropped.
        let sockets = vec![tokio::spawn(drain(term)), tokio::spawn(drain(op))];
        // The terminal's client: reqwest with its timeouts, one connection reused.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Self {
            addr: proc.addr,
            proc,
            http,
            api,
            device,
            operator,
            session,
            materials: Vec::new(),
            _sockets: sockets,
        })
    }

    /// One scan through tus at `via` (the server or a proxy in front of it); seconds from the
    /// `POST` to the last `PATCH`'s answer.
    async fn upload(&mut self, via: SocketAddr, data: &[u8]) -> Result<f64> {
        let (secs, material) = self.upload_ref(via, data).await?;
        self.materials.push(material);
        Ok(secs)
    }

    async fn upload_ref(&self, via: SocketAddr, data: &[u8]) -> Result<(f64, Uuid)> {
        let base = format!("http://{via}");
        let started = Instant::now();
        let sha = hex::encode(Sha256::digest(data));
        let meta = [
            ("filename", "扫描件.jpg".to_owned()),
            ("session_id", self.session.to_string()),
            ("sha256", sha),
        ]
        .iter()
        .map(|(k, v)| format!("{k} {}", B64.encode(v)))
        .collect::<Vec<_>>()
        .join(",");
        let r = self
            .http
            .post(format!("{base}/api/v1/uploads"))
            .bearer_auth(&self.device)
            .header("tus-resumable", TUS)
            .header("upload-length", data.len().to_string())
            .header("upload-metadata", meta)
            .send()
            .await?;
        if r.status() != StatusCode::CREATED {
            bail!("create: HTTP {}: {}", r.status(), r.text().await.unwrap_or_default());
        }
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).context("Location")?;
        let url =
            if location.starts_with("http") { location.to_owned() } else { format!("{base}{location}") };
        let r = self
            .http
            .request(Method::HEAD, &url)
            .bearer_auth(&self.device)
            .header("tus-resumable", TUS)
            .send()
            .await?;
        let mut offset: usize = r
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context("HEAD: Upload-Offset")?;
        let mut material = None;
        let mut last = Duration::ZERO;
        while offset < data.len() {
            let sent = Instant::now();
            let chunk = &data[offset..(offset + chunk_for(data.len())).min(data.len())];
            let digest = B64.encode(Sha256::digest(chunk));
            let r = self
                .http
                .patch(&url)
                .bearer_auth(&self.device)
                .header("tus-resumable", TUS)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", offset.to_string())
                .header("upload-checksum", format!("sha256 {digest}"))
                .body(bytes::Bytes::copy_from_slice(chunk))
                .send()
                .await?;
            if r.status() != StatusCode::NO_CONTENT {
                bail!("PATCH at {offset}: HTTP {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            offset = r
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .context("PATCH: Upload-Offset")?;
            material =
                r.headers().get("bangban-material-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            last = sent.elapsed();
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "  tus {secs:.3} s, of which the last PATCH (check, hash, seal) {:.3} s",
            last.as_secs_f64()
        );
        let material = material.context("the last PATCH names the material")?;
        Ok((secs, Uuid::parse_str(&material)?))
    }

    /// Every uploaded scan is listed in the session and reads back with its checksum.
    async fn check_stored(&self, n: usize) -> Result<()> {
        let list =
            self.api.get(&format!("/api/v1/sessions/{}/materials", self.session), &self.operator).await?;
        let listed = list.as_array().map_or(0, Vec::len);
        if listed != n || self.materials.len() != n {
            bail!("{n} uploads, {listed} materials listed, {} named", self.materials.len());
        }
        let last = self.materials.last().context("a material")?;
        let r = self
            .http
            .get(format!("http://{}/api/v1/materials/{last}/content", self.addr))
            .bearer_auth(&self.operator)
            .send()
            .await?;
        if r.status() != StatusCode::OK {
            bail!("download: HTTP {}", r.status());
        }
        let want = list
            .as_array()
            .and_then(|a| a.iter().find(|m| m["id"].as_str() == Some(last.to_string().as_str())))
            .and_then(|m| m["sha256"].as_str())
            .context("the last scan is listed")?
            .to_owned();
        let got = hex::encode(Sha256::digest(r.bytes().await?));
        if want != got {
            bail!("the stored scan does not read back the same");
        }
        Ok(())
    }
}

/// Keeps a client connected as the real ones do: reads everything, sends `ping` every 10 s (the
/// server closes silent sockets, and a session whose party stays away ends).
async fn drain(ws: Ws) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut sink, mut stream) = ws.split();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut seq = 0u64;
    loop {
        tokio::select! {
            m = stream.next() => if !matches!(m, Some(Ok(_))) { return },
            _ = tick.tick() => {
                seq += 1;
                let ping = format!("{{\"type\":\"ping\",\"seq\":{seq}}}");
                if sink.send(Message::Text(ping.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// nginx-light with a WebDAV `PUT` location: the body is written to a temporary file and
/// renamed into place; `201` once stored.
struct Nginx {
    proc: Proc,
    addr: SocketAddr,
    dir: PathBuf,
    n: usize,
}

impl Nginx {
    async fn start(tmp: &Path) -> Result<Self> {
        let dir = tmp.join("nginx");
        for d in ["body", "store", "logs"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        let port = util::free_port()?;
        let conf = dir.join("nginx.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/logs/error.log warn;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  client_max_body_size 100m;\n  \
                 client_body_buffer_size 16k;\n  server {{\n    listen 127.0.0.1:{port};\n    \
                 location /up/ {{ root {d}/store; dav_methods PUT; create_full_put_path on; }}\n    \
                 location = /healthz {{ return 200; }}\n  }}\n}}\n"
            ),
        )?;
        let out = std::fs::File::create(dir.join("logs/stdout.log"))?;
        let child = tokio::process::Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            // The startup error log too (the default, /var/log/nginx, is root's).
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(out.try_clone()?))
            .stderr(std::process::Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .context("start nginx (nginx-light, scripts/install-system-deps.sh --test)")?;
        let pid = child.id().context("nginx pid")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut proc = Proc { child, pid, addr, log: dir.join("logs/error.log") };
        let http = reqwest::Client::builder().no_proxy().build()?;
        proc.wait_ready(&http, "/healthz").await?;
        Ok(Self { proc, addr, dir, n: 0 })
    }

    /// `curl --data-binary @file` PUT through `via`; seconds until curl exits with `201`.
    async fn put(&mut self, via: SocketAddr, file: &Path) -> Result<f64> {
        self.n += 1;
        let name = format!("scan-{}.jpg", self.n);
        let started = Instant::now();
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(format!("http://{via}/up/{name}"))
            .output()
            .await
            .context("run curl")?;
        let secs = started.elapsed().as_secs_f64();
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || code != "201" {
            bail!("curl: exit {}, HTTP {code}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let stored = std::fs::metadata(self.dir.join("store/up").join(&name))?.len();
        if stored != std::fs::metadata(file)?.len() {
            bail!("nginx stored {stored} bytes");
        }
        Ok(secs)
    }
}
