//! Shared by the materials and print-job tests: a live call between the first demo terminal
//! and `operator1`, made through the real flow (the terminal takes a ticket, the operator
//! accepts it), and a small tus client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use shared::protocol::{ClientMsg, ServerMsg};
use sqlx::Row;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, answer_ringing, available_operator_with, take_ticket};

pub struct Call {
    pub session_id: String,
    pub terminal_id: String,
    pub point_id: String,
    pub slot_id: String,
    /// Device token of the session's terminal.
    pub device: String,
    /// Access token of the session's operator (`operator1`).
    pub operator: String,
    /// The ticket's number as issued (e.g. `J-0001`).
    pub ticket_number: String,
    /// The two parties' sockets, open while the call lasts (a party gone past its reconnect
    /// window ends the call).
    pub op_ws: WsClient,
    pub _term_ws: WsClient,
}

impl Call {
    /// The operator ends the call (the switchboard records it ended) from a new connection (a
    /// test may have opened others for the same party since), and has been told.
    pub async fn end(&mut self, app: &TestApp) {
        let session_id: uuid::Uuid = self.session_id.parse().expect("uuid");
        let (mut op, _) = WsClient::connect(app, &self.operator).await;
        op.send(&ClientMsg::EndCall { session_id }).await;
        op.expect("session_ended", |m| {
            matches!(m, ServerMsg::SessionEnded { session_id: s, .. } if *s == session_id).then_some(())
        })
        .await;
        self.op_ws = op;
    }

    /// Ends the call and dates its end `ago_ms` back in its record (a call that ended long ago).
    pub async fn end_ago(&mut self, app: &TestApp, ago_ms: i64) {
        self.end(app).await;
        sqlx::query("UPDATE call_sessions SET ended_at = $1 WHERE id = $2")
            .bind(signaling_server::db::now_ms() - ago_ms)
            .bind(&self.session_id)
            .execute(&app.state.db.pool)
            .await
            .expect("dated");
    }
}

/// A live call: the first demo terminal takes a ticket for the first item with required
/// materials that `operator1` serves, and `operator1` accepts it.
pub async fn call(app: &TestApp) -> Call {
    let (_, device) = app.enroll_terminal(0).await;
    let pool = &app.state.db.pool;
    let t =
        sqlx::query("SELECT id, point_id FROM terminals WHERE status = 'active' ORDER BY enrolled_at DESC")
            .fetch_one(pool)
            .await
            .expect("terminal");
    let terminal_id: String = t.get("id");
    let point_id: String = t.get("point_id");
    let item = sqlx::query(
        "SELECT i.id, m.id AS slot_id FROM service_items i JOIN item_materials m ON m.item_id = i.id \
         JOIN operator_skills k ON k.line_id = i.line_id JOIN users u ON u.id = k.user_id \
         WHERE u.username = 'operator1' ORDER BY i.code, m.position",
    )
    .fetch_one(pool)
    .await
    .expect("an item with required materials");
    let (item_id, slot_id): (String, String) = (item.get("id"), item.get("slot_id"));
    let (mut op_ws, operator) = available_operator_with(app, "operator1").await;
    let (mut term_ws, _) = WsClient::connect(app, &device).await;
    term_ws.send(&take_ticket(item_id.parse().expect("uuid"))).await;
    let session_id = answer_ringing(&mut op_ws, &mut term_ws).await.to_string();
    let ticket_number = term_ws
        .seen
        .iter()
        .find_map(|m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.number.to_string()),
            _ => None,
        })
        .expect("ticket_issued before session_started");
    Call {
        session_id,
        terminal_id,
        point_id,
        slot_id,
        device,
        operator,
        ticket_number,
        op_ws,
        _term_ws: term_ws,
    }
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

/// A PDF whose cross-reference table and trailer are cut off (it makes a printer's filter
/// "reconstruct" for minutes).
pub fn pdf_without_xref() -> Vec<u8> {
    let mut whole = pdf("broken", 600);
    let at = whole.windows(4).rposition(|w| w == b"xref").expect("xref");
    whole.truncate(at);
    whole.extend_from_slice(b"%%EOF\n");
    whole
}

/// A valid PDF of `n` empty pages.
pub fn pdf_with_pages(n: usize) -> Vec<u8> {
    let mut objs = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n).map(|i| format!("{} 0 R", i + 3)).collect::<Vec<_>>().join(" ")
        ),
    ];
    objs.extend((0..n).map(|_| "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>".to_owned()));
    let mut out = b"%PDF-1.4\n".to_vec();
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

/// A valid PDF encrypted with AES-256 by `qpdf` (`user` empty: opens without a password).
pub fn encrypted_pdf(user: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, enc) = (dir.path().join("in.pdf"), dir.path().join("out.pdf"));
    std::fs::write(&plain, pdf("secret", 600)).expect("write");
    let st = std::process::Command::new("qpdf")
        .args(["--encrypt", user, "owner-pw", "256", "--"])
        .arg(&plain)
        .arg(&enc)
        .status()
        .expect("qpdf runs (scripts/install-system-deps.sh installs it)");
    assert!(st.success());
    std::fs::read(enc).expect("encrypted")
}

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    let mut c = 0xFFFF_FFFFu32;
    for p in parts {
        for &b in *p {
            c = table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
    }
    !c
}

/// A decompression bomb: a real, valid PNG of `side`×`side` black grey pixels (for 20,000 px:
/// 400 MB decoded, ~2.5 MB on disk), compressed by hand (fixed-Huffman deflate: one literal
/// zero, then runs of 258 copies at distance 1).
pub fn png_bomb(side: u32) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        /// `len` bits of `v`, least significant first.
        fn put(&mut self, v: u64, len: u32) {
            self.acc |= v << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            let rev = (0..len).fold(0u64, |r, i| r | (((code >> i) & 1) << (len - 1 - i)));
            self.put(rev, len);
        }
    }
    let total = u64::from(side) * (u64::from(side) + 1);
    let mut b = Bits { out: vec![0x78, 0x01], acc: 0, n: 0 };
    b.put(1, 1); // last block
    b.put(1, 2); // fixed Huffman
    b.code(0x30, 8); // literal 0
    let mut left = total - 1;
    while left >= 258 {
        b.code(0b1100_0101, 8); // length 258
        b.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        b.code(0x30, 8);
    }
    b.code(0, 7); // end of block
    if b.n > 0 {
        b.out.push(b.acc as u8);
    }
    let adler = ((total % 65_521) << 16) as u32 | 1;
    b.out.extend_from_slice(&adler.to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
    };
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &b.out);
    chunk(b"IEND", b"");
    png
}

/// The error body of a refused request.
pub async fn error_of(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.expect("json error");
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Uploads `data` like [`upload`] and waits for the background thumbnail: the socket is opened
/// after the upload (a long upload would leave it silent past the server's idle limit), then
/// the material is read; if it has no thumbnail yet, the `material_changed` that says so comes.
pub async fn upload_with_thumbnail(
    app: &TestApp,
    token: &str,
    session: &str,
    name: &str,
    data: &[u8],
) -> String {
    let id = upload(app, token, session, name, data).await;
    let (mut ws, _) = crate::ws_client::WsClient::connect(app, token).await;
    let (_, m) = app.get(&format!("/api/v1/materials/{id}"), Some(token)).await;
    if m["has_thumbnail"] != true {
        ws.expect("material_changed with has_thumbnail", |m| match m {
            shared::protocol::ServerMsg::MaterialChanged { material, .. }
                if material.has_thumbnail && material.id.to_string() == id =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }
    id
}
