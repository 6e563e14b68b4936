//! Shared by the materials and print-job tests: a live call session between the first demo
//! terminal and `operator1` (rows written directly), and a small tus client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::helpers::TestApp;

pub struct Call {
    pub session_id: String,
    pub terminal_id: String,
    pub point_id: String,
    pub slot_id: String,
    /// Device token of the session's terminal.
    pub device: String,
    /// Access token of the session's operator (`operator1`).
    pub operator: String,
}

/// A ticket and an active call session for it.
pub async fn call(app: &TestApp) -> Call {
    let (_, device) = app.enroll_terminal(0).await;
    let login = app.login_full("operator1").await;
    let operator = login["access_token"].as_str().expect("token").to_owned();
    let operator_id = login["user"]["id"].as_str().expect("user id").to_owned();
    let pool = &app.state.db.pool;
    let t =
        sqlx::query("SELECT id, point_id FROM terminals WHERE status = 'active' ORDER BY enrolled_at DESC")
            .fetch_one(pool)
            .await
            .expect("terminal");
    let terminal_id: String = t.get("id");
    let point_id: String = t.get("point_id");
    let item = sqlx::query(
        "SELECT i.id, i.line_id, m.id AS slot_id FROM service_items i JOIN item_materials m ON m.item_id = i.id \
         ORDER BY i.code, m.position",
    )
    .fetch_one(pool)
    .await
    .expect("an item with required materials");
    let (item_id, line_id, slot_id): (String, String, String) =
        (item.get("id"), item.get("line_id"), item.get("slot_id"));
    let now = signaling_server::db::now_ms();
    let ticket_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO tickets (id, number, service_day, point_id, terminal_id, item_id, line_id, priority, request_id, \
         status, created_at) VALUES ($1, 'T-0001', '2026-11-22', $2, $3, $4, $5, 'normal', $6, 'in_call', $7)",
    )
    .bind(&ticket_id)
    .bind(&point_id)
    .bind(&terminal_id)
    .bind(&item_id)
    .bind(&line_id)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(now)
    .execute(pool)
    .await
    .expect("ticket");
    let session_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO call_sessions (id, ticket_id, operator_id, terminal_id, line_id, status, started_at, wait_ms) \
         VALUES ($1, $2, $3, $4, $5, 'active', $6, 0)",
    )
    .bind(&session_id)
    .bind(&ticket_id)
    .bind(&operator_id)
    .bind(&terminal_id)
    .bind(&line_id)
    .bind(now)
    .execute(pool)
    .await
    .expect("session");
    Call { session_id, terminal_id, point_id, slot_id, device, operator }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A small valid one-page PDF whose body carries `marker`, padded to at least `min_len` bytes.
pub fn pdf(marker: &str, min_len: usize) -> Vec<u8> {
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    while out.len() < min_len {
        out.extend_from_slice(format!("% {marker}\n").as_bytes());
    }
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    out
}

/// A PNG of `w`×`h` pixels.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

pub fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} {}", B64.encode(v))).collect::<Vec<_>>().join(",")
}

/// `POST /api/v1/uploads`; returns the response.
pub async fn create(app: &TestApp, token: &str, length: usize, meta: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .expect("create sent")
}

/// Creates an upload for `data` in the session; returns its path (`/api/v1/uploads/{id}`).
pub async fn start(app: &TestApp, token: &str, session: &str, name: &str, data: &[u8]) -> String {
    let meta = metadata(&[("filename", name), ("session_id", session), ("sha256", &sha256_hex(data))]);
    let resp = create(app, token, data.len(), &meta).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{:?}", resp.text().await);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    assert!(resp.headers().contains_key("upload-expires"));
    resp.headers()["location"].to_str().expect("location").to_owned()
}

pub async fn patch(
    app: &TestApp,
    token: &str,
    location: &str,
    offset: usize,
    chunk: &[u8],
    checksum: Option<String>,
) -> reqwest::Response {
    let mut req = app
        .client
        .patch(app.url(location))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(chunk.to_vec());
    if let Some(c) = checksum {
        req = req.header("Upload-Checksum", c);
    }
    req.send().await.expect("patch sent")
}

pub async fn offset(app: &TestApp, token: &str, location: &str) -> (StatusCode, Option<usize>) {
    let resp = app
        .client
        .head(app.url(location))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("head sent");
    let off = resp.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (resp.status(), off)
}

/// Uploads `data` in 64 KiB chunks; returns the material ID.
pub async fn upload(app: &TestApp, token: &str, session: &str, name: &str, data: &[u8]) -> String {
    let location = start(app, token, session, name, data).await;
    let mut material = None;
    let mut at = 0;
    while at < data.len() {
        let end = (at + 65_536).min(data.len());
        let resp = patch(app, token, &location, at, &data[at..end], None).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{:?}", resp.text().await);
        assert_eq!(resp.headers()["upload-offset"], end.to_string().as_str());
        material = resp.headers().get("bangban-material-id").map(|v| v.to_str().expect("id").to_owned());
        at = end;
    }
    material.expect("the last PATCH names the material")
}

/// Downloads a material's content.
pub async fn content(app: &TestApp, token: &str, material: &str) -> (StatusCode, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{material}/content")))
        .bearer_auth(token)
        .send()
        .await
        .expect("get sent");
    (resp.status(), resp.bytes().await.expect("body").to_vec())
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
