//! Uploads spooled pages to the session's materials with tus 1.0 (`/api/v1/uploads`): `POST`
//! creates the upload (metadata `filename`, `session_id`, `material_slot`, `sha256`) and its URL
//! is saved in the spool entry at once; `HEAD` asks the server's `Upload-Offset` before every
//! attempt; `PATCH` sends chunks sized by the file ([`chunk_for`]: a quarter of it, 256 KiB to
//! 8 MiB, within the server's `Tus-Max-Size`) with `Upload-Checksum: sha256`. Each
//! acknowledged chunk is fsynced by the server, so fewer, larger chunks go faster while a cut
//! connection still resumes from the last acknowledged offset. Transient failures
//! (network, 5xx) are retried with backoff (0.5 s … 10 s, jitter) until the page is stored; an
//! upload the server forgot (404/410) is created again. The page leaves the spool only after the
//! final `204`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::rest::{RestError, ServerApi};
use crate::spool::{Entry, Spool};

/// Smallest and largest `PATCH` bodies.
pub const MIN_CHUNK: usize = 256 * 1024;
pub const MAX_CHUNK: usize = 8 * 1024 * 1024;

/// The `PATCH` size for a file of `size` bytes: about four requests per file, so a 20 MB scan
/// goes in 5 MB chunks and a small page in one or two.
pub fn chunk_for(size: u64) -> usize {
    usize::try_from(size.div_ceil(4)).unwrap_or(MAX_CHUNK).clamp(MIN_CHUNK, MAX_CHUNK)
}
const TUS: &str = "1.0.0";

/// One page on its way, for the kiosk status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UploadProgress {
    pub id: Uuid,
    pub session_id: Uuid,
    pub filename: String,
    pub size: u64,
    /// Bytes the server confirmed.
    pub sent: u64,
    /// `waiting`, `uploading`, `retrying`.
    pub state: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum UploadEvent {
    Stored { entry: Entry, material_id: Option<Uuid> },
    Rejected { entry: Entry, reason: String },
}

#[derive(Clone)]
pub struct Uploader {
    kick: Arc<Notify>,
    progress: Arc<Mutex<BTreeMap<Uuid, UploadProgress>>>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader").finish_non_exhaustive()
    }
}

impl Uploader {
    /// Starts the upload loop over `spool` (pages left from before a restart go first).
    pub fn spawn(spool: Spool, api: ServerApi, events: mpsc::Sender<UploadEvent>) -> Self {
        let me = Self { kick: Arc::new(Notify::new()), progress: Arc::default() };
        let me2 = me.clone();
        tokio::spawn(async move { me2.run(spool, api, events).await });
        me
    }

    /// A page was added or the server is reachable again: try now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    pub fn progress(&self) -> Vec<UploadProgress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    fn set(&self, e: &Entry, sent: u64, state: &'static str) {
        let p = UploadProgress {
            id: e.id,
            session_id: e.session_id,
            filename: e.filename.clone(),
            size: e.size,
            sent,
            state,
            attempts: e.attempts,
            last_error: e.last_error.clone(),
        };
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).insert(e.id, p);
    }

    fn forget(&self, id: Uuid) {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    async fn run(&self, spool: Spool, api: ServerApi, events: mpsc::Sender<UploadEvent>) {
        let mut backoff = Backoff::default();
        loop {
            let entries = spool.list();
            for e in &entries {
                self.set(e, 0, "waiting");
            }
            let mut failed = false;
            for mut e in entries {
                self.set(&e, 0, "uploading");
                match self.upload(&spool, &api, &mut e).await {
                    Ok(material_id) => {
                        backoff.reset();
                        if let Err(err) = spool.remove(&e) {
                            tracing::error!(error = %err, "cannot remove an uploaded page from the spool");
                        }
                        self.forget(e.id);
                        tracing::info!(page = %e.id, ?material_id, size = e.size, "scan stored by the server");
                        let _ = events.send(UploadEvent::Stored { entry: e, material_id }).await;
                    }
                    Err(Failure::Permanent(reason)) => {
                        tracing::error!(page = %e.id, %reason, "the server refused a scanned page");
                        if let Err(err) = spool.reject(&e, &reason) {
                            tracing::error!(error = %err, "cannot move a refused page aside");
                        }
                        self.forget(e.id);
                        let _ = events.send(UploadEvent::Rejected { entry: e, reason }).await;
                    }
                    Err(Failure::Transient(reason)) => {
                        e.attempts += 1;
                        e.last_error = Some(reason.clone());
                        let _ = spool.save(&e);
                        let sent = self.progress.lock().ok().and_then(|p| p.get(&e.id).map(|x| x.sent));
                        self.set(&e, sent.unwrap_or(0), "retrying");
                        tracing::warn!(page = %e.id, %reason, attempts = e.attempts, "upload failed, will retry");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                let delay = backoff.next_delay(&mut rand::thread_rng());
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.kick.notified() => {}
                }
            } else if spool.list().is_empty() {
                self.kick.notified().await;
            }
        }
    }

    /// Uploads one page; `Ok` after the final `204` with the new material's ID.
    async fn upload(&self, spool: &Spool, api: &ServerApi, e: &mut Entry) -> Result<Option<Uuid>, Failure> {
        let content = tokio::fs::read(spool.content_path(e))
            .await
            .map_err(|err| Failure::Permanent(format!("spooled page unreadable: {err}")))?;
        if content.len() as u64 != e.size {
            return Err(Failure::Permanent("spooled page changed size".into()));
        }
        // Bounded: a forgotten upload is recreated at most a few times per attempt.
        for _ in 0..4 {
            let url = match &e.upload_url {
                Some(u) => u.clone(),
                None => {
                    let u = create(api, e).await?;
                    e.upload_url = Some(u.clone());
                    spool.save(e).map_err(|err| Failure::Transient(format!("spool: {err}")))?;
                    u
                }
            };
            let mut offset = match head(api, &url).await? {
                Some(o) => o,
                None => {
                    e.upload_url = None;
                    spool.save(e).map_err(|err| Failure::Transient(format!("spool: {err}")))?;
                    continue;
                }
            };
            loop {
                if offset > e.size {
                    return Err(Failure::Permanent("server offset beyond the file".into()));
                }
                self.set(e, offset, "uploading");
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(content.len());
                let end = (start + chunk_for(e.size)).min(content.len());
                match patch(api, &url, offset, &content[start..end]).await? {
                    Patch::Stored { offset: o, material_id } => {
                        offset = o;
                        if offset == e.size {
                            self.set(e, offset, "uploading");
                            return Ok(material_id);
                        }
                    }
                    Patch::Resync => match head(api, &url).await? {
                        Some(o) => offset = o,
                        None => break,
                    },
                    Patch::Gone => break,
                }
            }
            e.upload_url = None;
            spool.save(e).map_err(|err| Failure::Transient(format!("spool: {err}")))?;
        }
        Err(Failure::Transient("the upload kept disappearing".into()))
    }
}

#[derive(Debug)]
enum Failure {
    Transient(String),
    Permanent(String),
}

impl From<RestError> for Failure {
    fn from(e: RestError) -> Self {
        match e {
            RestError::Transient(m) => Failure::Transient(m),
            RestError::Refused { status, body } => Failure::Permanent(format!("{status}: {body}")),
        }
    }
}

fn metadata(e: &Entry) -> String {
    let mut pairs = vec![
        ("filename", e.filename.clone()),
        ("session_id", e.session_id.to_string()),
        ("sha256", e.sha256.clone()),
    ];
    if let Some(slot) = e.slot_id {
        pairs.push(("material_slot", slot.to_string()));
    }
    // The call's recording (made with the resident's consent) is a video; scans are not.
    if e.content_type.starts_with("video/") {
        pairs.push(("recording", "1".to_owned()));
        if let Some(r) = e.recording {
            pairs.push(("recording_part", r.part.to_string()));
            if r.duration_ms > 0 {
                pairs.push(("duration_ms", r.duration_ms.to_string()));
            }
        }
    }
    pairs.iter().map(|(k, v)| format!("{k} {}", B64.encode(v))).collect::<Vec<_>>().join(",")
}

async fn body_text(r: reqwest::Response) -> String {
    r.text().await.unwrap_or_default().chars().take(300).collect()
}

async fn create(api: &ServerApi, e: &Entry) -> Result<String, Failure> {
    let meta = metadata(e);
    let r = api
        .send(Method::POST, "/api/v1/uploads", |b| {
            b.header("tus-resumable", TUS)
                .header("upload-length", e.size.to_string())
                .header("upload-metadata", meta.clone())
        })
        .await?;
    let status = r.status();
    if status == StatusCode::CREATED {
        return r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Transient("no Location in the tus answer".into()));
    }
    Err(classify(status, body_text(r).await))
}

fn classify(status: StatusCode, body: String) -> Failure {
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Failure::Transient(format!("{status}: {body}"))
    } else {
        Failure::Permanent(format!("{status}: {body}"))
    }
}

fn offset_of(r: &reqwest::Response) -> Option<u64> {
    r.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// The server's offset; `None` when the upload is gone (expired, removed).
async fn head(api: &ServerApi, url: &str) -> Result<Option<u64>, Failure> {
    let r = api.send(Method::HEAD, url, |b| b.header("tus-resumable", TUS)).await?;
    match r.status() {
        s if s.is_success() => {
            offset_of(&r).map(Some).ok_or_else(|| Failure::Transient("HEAD without Upload-Offset".into()))
        }
        StatusCode::NOT_FOUND | StatusCode::GONE | StatusCode::FORBIDDEN => Ok(None),
        s => Err(classify(s, String::new())),
    }
}

enum Patch {
    Stored {
        offset: u64,
        material_id: Option<Uuid>,
    },
    /// 409 (offset mismatch) or 460 (checksum): ask the offset again.
    Resync,
    Gone,
}

async fn patch(api: &ServerApi, url: &str, offset: u64, chunk: &[u8]) -> Result<Patch, Failure> {
    let digest = B64.encode(Sha256::digest(chunk));
    let body = bytes::Bytes::copy_from_slice(chunk);
    let r = api
        .send(Method::PATCH, url, |b| {
            b.header("tus-resumable", TUS)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", offset.to_string())
                .header("upload-checksum", format!("sha256 {digest}"))
                .body(body.clone())
        })
        .await?;
    match r.status() {
        StatusCode::NO_CONTENT => {
            let o = offset_of(&r).ok_or_else(|| Failure::Transient("PATCH without Upload-Offset".into()))?;
            let material_id = r
                .headers()
                .get("bangban-material-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Uuid::parse_str(v).ok());
            Ok(Patch::Stored { offset: o, material_id })
        }
        StatusCode::CONFLICT => {
            let body = body_text(r).await;
            // Offset mismatches are resynchronised; a session that is over is final.
            if body.contains("offset") {
                Ok(Patch::Resync)
            } else {
                Err(Failure::Permanent(format!("409: {body}")))
            }
        }
        s if s.as_u16() == 460 => Ok(Patch::Resync),
        // The server's "interrupted" answer (400) after a cut request: resynchronise.
        StatusCode::BAD_REQUEST => {
            let body = body_text(r).await;
            if body.contains("interrupted") {
                Ok(Patch::Resync)
            } else {
                Err(Failure::Permanent(format!("400: {body}")))
            }
        }
        StatusCode::NOT_FOUND | StatusCode::GONE | StatusCode::FORBIDDEN => Ok(Patch::Gone),
        s => Err(classify(s, body_text(r).await)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_with_the_file() {
        assert_eq!(chunk_for(1), MIN_CHUNK);
        assert_eq!(chunk_for(20_000_000), 5_000_000);
        assert_eq!(chunk_for(200_000_000), MAX_CHUNK);
    }

    #[test]
    fn metadata_is_tus_encoded() {
        let e = Entry {
            id: Uuid::nil(),
            session_id: Uuid::from_u128(1),
            slot_id: None,
            filename: "扫描件.jpg".into(),
            file: "x.jpg".into(),
            content_type: "image/jpeg".into(),
            size: 3,
            sha256: "ab".repeat(32),
            created_at_ms: 0,
            upload_url: None,
            attempts: 0,
            last_error: None,
            recording: None,
        };
        let m = metadata(&e);
        let pairs: Vec<(&str, String)> = m
            .split(',')
            .map(|p| {
                let (k, v) = p.split_once(' ').expect("pair");
                (k, String::from_utf8(B64.decode(v).expect("b64")).expect("utf8"))
            })
            .collect();
        assert_eq!(pairs[0], ("filename", "扫描件.jpg".to_owned()));
        assert_eq!(pairs[1], ("session_id", Uuid::from_u128(1).to_string()));
        assert_eq!(pairs[2].0, "sha256");
        assert_eq!(pairs.len(), 3, "no material_slot without a slot");
    }

    #[test]
    fn a_recording_part_names_its_part_and_duration() {
        let e = Entry {
            id: Uuid::nil(),
            session_id: Uuid::from_u128(1),
            slot_id: None,
            filename: "通话录像-受理员.webm".into(),
            file: "x.webm".into(),
            content_type: "video/webm".into(),
            size: 3,
            sha256: "ab".repeat(32),
            created_at_ms: 0,
            upload_url: None,
            attempts: 0,
            last_error: None,
            recording: Some(crate::spool::RecordingPart { part: 2, duration_ms: 3_210 }),
        };
        let m = metadata(&e);
        let pairs: Vec<(String, String)> = m
            .split(',')
            .map(|p| {
                let (k, v) = p.split_once(' ').expect("pair");
                (k.to_owned(), String::from_utf8(B64.decode(v).expect("b64")).expect("utf8"))
            })
            .collect();
        for want in [("recording", "1"), ("recording_part", "2"), ("duration_ms", "3210")] {
            assert!(pairs.contains(&(want.0.to_owned(), want.1.to_owned())), "{want:?} in {pairs:?}");
        }
    }
}
