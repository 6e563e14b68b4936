//! The materials store on an S3-compatible server: `s3s-fs` (an S3 server over a local directory,
//! installed by `scripts/install-system-deps.sh --test`) started per test on a free port.
//! Uploads go through tus as the terminal sends them; the tests read the S3 server's own files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use signaling_server::config::S3Config;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::TestApp;
use crate::materials_fixture::*;

const BUCKET: &str = "bangban-materials";
const ACCESS_KEY: &str = "bangban-test";
const SECRET_KEY: &str = "bangban-test-secret-0123456789";

/// The `s3s-fs` binary: `BANGBAN_S3S_FS`, else on `PATH`, else in `~/.cargo/bin`.
fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BANGBAN_S3S_FS") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("s3s-fs")).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path
        .into_iter()
        .chain(cargo_home.map(|c| c.join("bin").join("s3s-fs")))
        .find(|p| p.is_file())
        .expect("s3s-fs is not installed: run scripts/install-system-deps.sh --test")
}

/// A running `s3s-fs` with one bucket; killed when dropped.
pub struct S3Server {
    pub root: tempfile::TempDir,
    pub endpoint: String,
    _child: tokio::process::Child,
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket directory");
        let mut child = tokio::process::Command::new(s3s_fs_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(root.path())
            .env("RUST_LOG", "s3s_fs=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("s3s-fs starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // It logs "server is running at http://127.0.0.1:PORT" once it listens.
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("s3s-fs output") {
                if let Some(at) = line.find("server is running at ") {
                    return line[at + "server is running at ".len()..].trim().to_owned();
                }
            }
            panic!("s3s-fs exited before listening");
        })
        .await
        .expect("s3s-fs listens within 30 s");
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { root, endpoint, _child: child }
    }

    pub fn config(&self) -> S3Config {
        S3Config {
            endpoint: self.endpoint.clone(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_key_file: None,
            secret_access_key: SECRET_KEY.into(),
        }
    }

    /// The stored objects: files in the bucket's directory.
    pub fn objects(&self) -> Vec<PathBuf> {
        walk(&self.root.path().join(BUCKET))
    }
}

async fn spawn_on(s3: &S3Server) -> TestApp {
    let cfg = s3.config();
    TestApp::spawn_with(move |c| c.materials.s3 = Some(cfg)).await
}

fn contains(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).expect("read");
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_scan_round_trips_through_the_s3_store_encrypted() {
    let s3 = S3Server::start().await;
    let app = spawn_on(&s3).await;
    let c = call(&app).await;
    let marker = "MARKER-LISI-110105195001010018";
    // Larger than one 5 MiB multipart part, so the object is stored in two parts.
    let data = pdf(marker, 6 * 1024 * 1024 + 12_345);
    let id = upload_with_thumbnail(&app, &c.device, &c.session_id, "身份证复印件.pdf", &data).await;

    let (s, got) = content(&app, &c.operator, &id).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha256_hex(&got), sha256_hex(&data), "same bytes back");
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/content")))
        .bearer_auth(&c.operator)
        .header("Range", "bytes=5242870-5242990")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "a range across the part boundary");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &data[5_242_870..=5_242_990]);

    // The content (and its thumbnail) went to the S3 server, not to the data directory.
    let objects = s3.objects();
    assert_eq!(objects.len(), 2, "object and thumbnail: {objects:?}");
    let stored: u64 = objects.iter().map(|p| std::fs::metadata(p).expect("meta").len()).sum();
    assert!(stored > data.len() as u64, "the sealed object is the whole file plus tags");
    assert!(!app.data_dir.path().join("materials").exists(), "nothing stored locally");
    // Nothing the S3 server keeps (objects, its metadata, leftover parts) holds plaintext.
    for f in walk(s3.root.path()) {
        assert!(!contains(&f, marker), "plaintext found in {}", f.display());
        assert!(!contains(&f, "身份证复印件"), "the file name reached the S3 server: {}", f.display());
    }
    for f in walk(app.data_dir.path()) {
        assert!(!contains(&f, marker), "plaintext found in {}", f.display());
    }

    // The same file again is stored once (content addressed), and reads back the same.
    let again = upload(&app, &c.device, &c.session_id, "again.pdf", &data).await;
    assert_ne!(again, id);
    assert_eq!(s3.objects().len(), 2, "deduplicated");
    assert_eq!(sha256_hex(&content(&app, &c.operator, &again).await.1), sha256_hex(&data));
}

#[tokio::test]
async fn retention_purge_deletes_the_s3_object() {
    let s3 = S3Server::start().await;
    let app = spawn_on(&s3).await;
    let mut c = call(&app).await;
    let id = upload_with_thumbnail(&app, &c.device, &c.session_id, "a.png", &png(40, 30)).await;
    assert_eq!(s3.objects().len(), 2, "object and thumbnail");

    c.end_ago(&app, 200 * 86_400_000).await;
    let admin = app.login("admin").await;
    let (s, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["purged"], 1);
    assert_eq!(r["objects_deleted"], 1);
    assert!(s3.objects().is_empty(), "the S3 server holds nothing: {:?}", s3.objects());
    assert_eq!(content(&app, &admin, &id).await.0, StatusCode::GONE);
    assert_eq!(app.audit("material.purge").await.len(), 1);
}

#[tokio::test]
async fn access_control_is_the_same_on_s3() {
    let s3 = S3Server::start().await;
    let app = spawn_on(&s3).await;
    let c = call(&app).await;
    let data = png(20, 20);
    let id = upload(&app, &c.device, &c.session_id, "a.png", &data).await;
    let other_operator = app.login("operator2").await;
    let (_, other_terminal) = app.enroll_terminal(1).await;
    for token in [&other_operator, &other_terminal] {
        assert_eq!(content(&app, token, &id).await.0, StatusCode::FORBIDDEN);
    }
    let unauth =
        app.client.get(app.url(&format!("/api/v1/materials/{id}/content"))).send().await.expect("sent");
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    for who in ["supervisor", "admin"] {
        let t = app.login(who).await;
        let (s, got) = content(&app, &t, &id).await;
        assert_eq!(s, StatusCode::OK, "{who}");
        assert_eq!(got, data);
    }
    let denied = app.audit("material.download").await;
    assert_eq!(denied.iter().filter(|e| e["outcome"] == "denied").count(), 2, "{denied:?}");
}

#[tokio::test]
async fn a_store_refusing_our_credentials_fails_the_upload_cleanly() {
    let s3 = S3Server::start().await;
    let mut cfg = s3.config();
    cfg.secret_access_key = "wrong-secret".into();
    let app = TestApp::spawn_with(move |c| c.materials.s3 = Some(cfg)).await;
    let c = call(&app).await;
    let data = png(20, 20);
    let location = start(&app, &c.device, &c.session_id, "a.png", &data).await;
    let resp = patch(&app, &c.device, &location, 0, &data, None).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = resp.text().await.expect("body");
    for secret in ["wrong-secret", "SignatureDoesNotMatch", "127.0.0.1", BUCKET] {
        assert!(!body.contains(secret), "the error leaks {secret}: {body}");
    }
    assert!(s3.objects().is_empty());
    let (s, list) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&c.device)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "no material without stored content");
}
