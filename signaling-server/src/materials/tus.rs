//! Resumable uploads: tus 1.0.0 with the `creation`, `expiration`, `checksum` (sha1, sha256)
//! and `termination` extensions, under `/api/v1/uploads`, so standard clients (tus-js-client,
//! tus-java-client, …) work.
//!
//! `POST` creates an upload for a call session; `Upload-Metadata` carries base64 `filename`,
//! `session_id`, `sha256` (hex SHA-256 of the whole file, required) and optionally
//! `material_slot` (an `item_materials` id). `PATCH` appends at `Upload-Offset`; the bytes are
//! hashed (whole-file SHA-256, incrementally) and sealed as they arrive into
//! `<data-dir>/uploads/<id>.sealed`, already in the store's format ([`staging`]), and fsynced
//! (once per `PATCH`) before the new offset is stored and acknowledged, so a crash loses nothing
//! the client was told is stored. A chunk whose `Upload-Checksum` does not match is dropped
//! (460). An interrupted `PATCH` without a checksum keeps what arrived. When the last byte
//! arrives the whole-file SHA-256 is compared, the document is checked, the sealed file is
//! moved into the store (a rename for the local store) and the material row is created; the
//! `204` then carries `Bangban-Material-Id`.

use std::io::Read as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use shared::api::{ErrorBody, MaterialSource, MaterialView};
use sqlx::Row;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use uuid::Uuid;

use std::sync::Arc;

use super::crypto::{Sealer, UploadCipher, random_key, sealed_len};
use super::sniff::{self, Kind};
use super::{SessionInfo, check, deny, notify_material, object_path, session_info, staging, thumb};
use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Path};
use crate::state::AppState;

pub const TUS_VERSION: &str = "1.0.0";
pub const TUS_EXTENSIONS: &str = "creation,expiration,checksum,termination";
pub const TUS_CHECKSUMS: &str = "sha1,sha256";
/// Bytes of a JPEG given to the header check (its frame header must come within them).
const JPEG_HEADER_BYTES: u64 = 2 * 1024 * 1024;
/// Longest `Upload-Metadata` header accepted.
const MAX_METADATA_BYTES: usize = 4096;

/// The tus headers as the OpenAPI document states them, shared by the tus operations.
/// `Tus-Resumable` is required on every request but `OPTIONS`; without it, or with another
/// version, the answer is 412 (tus 1.0.0).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct TusResumable {
    /// The protocol version: `1.0.0`.
    #[param(rename = "Tus-Resumable", pattern = "^1\\.0\\.0$")]
    tus_resumable: String,
}

/// A chunk of the upload's bytes (`application/offset+octet-stream`).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct TusChunk(Vec<u8>);
/// Response header naming the material created by the final `PATCH`.
pub const MATERIAL_ID_HEADER: &str = "bangban-material-id";

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn checksum_mismatch(what: &str) -> ApiError {
    ApiError::new(status(460), "checksum_mismatch", format!("校验和不符 (checksum mismatch: {what})"))
}

fn unsupported_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_type",
        "仅接受 PDF、JPEG、PNG、TIFF 文件 (only PDF, JPEG, PNG and TIFF files are accepted)",
    )
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("文件超过 {max} 字节上限 (file larger than {max} bytes)"),
    )
}

/// Adds `Tus-Resumable` to every answer, errors included.
fn tus(result: ApiResult<Response>) -> Response {
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut().insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn require_tus(h: &HeaderMap) -> ApiResult<()> {
    if header_str(h, "tus-resumable") == Some(TUS_VERSION) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus_version",
            "须使用 tus 1.0.0 (Tus-Resumable: 1.0.0 required)",
        ))
    }
}

fn parse_u64(h: &HeaderMap, name: &str) -> ApiResult<u64> {
    header_str(h, name)
        .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("{name} 无效 (invalid {name})")))
}

/// RFC 9110 date, as in `Upload-Expires`.
fn http_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs.
fn parse_metadata(raw: &str) -> ApiResult<std::collections::HashMap<String, String>> {
    let bad = || ApiError::bad_request("Upload-Metadata 无效 (invalid Upload-Metadata)");
    if raw.len() > MAX_METADATA_BYTES {
        return Err(bad());
    }
    let mut out = std::collections::HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or_default();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(bad());
        }
        let value = match it.next().map(str::trim) {
            Some(v) if !v.is_empty() => B64.decode(v).map_err(|_| bad())?,
            _ => Vec::new(),
        };
        let value = String::from_utf8(value).map_err(|_| bad())?;
        if out.insert(key.to_owned(), value).is_some() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// An upload row.
#[derive(Debug, Clone)]
struct Upload {
    id: Uuid,
    created_by: Uuid,
    session_id: Uuid,
    slot_id: Option<Uuid>,
    filename: String,
    length: u64,
    received: u64,
    sha256: String,
    key: [u8; 32],
    material_id: Option<Uuid>,
    expires_at: i64,
    /// A call recording from the terminal (WebM/Matroska only).
    recording: bool,
    /// Which part of the recording (1: the terminal's camera and microphone, 2: the operator's).
    recording_part: i32,
    /// The recording's duration as the terminal measured it (ms).
    duration_ms: Option<i64>,
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Option<Upload>> {
    let r = sqlx::query(
        "SELECT id, created_by, session_id, slot_id, filename, length, received, sha256, wrapped_key, \
         material_id, expires_at, recording, duration_ms FROM uploads WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let wrapped: String = r.try_get("wrapped_key")?;
    let key = state.pii.unwrap_key(&wrapped, &format!("upload:{id}")).map_err(|_| {
        tracing::error!(upload = %id, "upload key does not unwrap");
        ApiError::internal()
    })?;
    Ok(Some(Upload {
        id,
        created_by: parse_id(&r.try_get::<String, _>("created_by")?)?,
        session_id: parse_id(&r.try_get::<String, _>("session_id")?)?,
        slot_id: r.try_get::<Option<String>, _>("slot_id")?.map(|s| parse_id(&s)).transpose()?,
        filename: super::open_name(
            &state.pii,
            &r.try_get::<String, _>("filename")?,
            &format!("upload:{id}:filename"),
        ),
        length: u64::try_from(r.try_get::<i64, _>("length")?).unwrap_or(0),
        received: u64::try_from(r.try_get::<i64, _>("received")?).unwrap_or(0),
        sha256: r.try_get("sha256")?,
        key,
        material_id: r.try_get::<Option<String>, _>("material_id")?.map(|s| parse_id(&s)).transpose()?,
        expires_at: r.try_get("expires_at")?,
        recording: r.try_get::<i32, _>("recording")? >= 1,
        recording_part: r.try_get::<i32, _>("recording")?.max(1),
        duration_ms: r.try_get("duration_ms")?,
    }))
}

/// The caller's own, unexpired upload (others' uploads do not exist for them).
async fn load_own(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Upload> {
    match load(state, id).await? {
        Some(u) if u.created_by == p.id && u.expires_at > now_ms() => Ok(u),
        _ => Err(ApiError::not_found("上传")),
    }
}

/// Deletes an upload's row and partial file.
pub(crate) async fn remove_upload(state: &AppState, id: Uuid) -> ApiResult<()> {
    sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id.to_string()).execute(&state.db.pool).await?;
    state.materials.forget_hash(id);
    let staged = state.materials.staged_path(id);
    for path in [staged.clone(), staged.with_extension("sealed.tmp"), state.materials.upload_path(id)] {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(error = %e, "cannot remove a partial upload"),
        }
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "upload storage");
    ApiError::internal()
}

/// Reads a partial upload staged before [`staging`] (AES-CTR throughout), decrypting.
struct Decrypting {
    file: tokio::fs::File,
    cipher: UploadCipher,
}

impl AsyncRead for Decrypting {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.file).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.cipher.apply(&mut buf.filled_mut()[before..]);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

async fn staged(state: &AppState, up: &Upload, len: u64) -> ApiResult<tokio::io::Take<Decrypting>> {
    let file = tokio::fs::File::open(state.materials.upload_path(up.id)).await.map_err(io_error)?;
    Ok(Decrypting { file, cipher: UploadCipher::at(&up.key, 0) }.take(len))
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// tus discovery: versions, extensions, size limit and checksum algorithms.
#[utoipa::path(options, path = "/api/v1/uploads", tag = "materials", security(()),
    responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm")))]
pub async fn options(State(state): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    h.insert("tus-checksum-algorithm", HeaderValue::from_static(TUS_CHECKSUMS));
    if let Ok(v) = HeaderValue::from_str(&state.config.materials.max_upload_bytes.to_string()) {
        h.insert("tus-max-size", v);
    }
    tus(Ok(resp))
}

/// tus creation: `Upload-Length` and `Upload-Metadata` (`filename`, `session_id`, `sha256`,
/// optional `material_slot`; for a call recording `recording` = `1`, `recording_part` = `1`/`2`
/// and `duration_ms`). Only the two parties of a live session may upload: the terminal
/// (scans) and the operator (forms to print); a recording only the call's terminal, after it.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "materials",
    params(TusResumable,
        ("Upload-Length" = u64, Header, minimum = 1, description = "Bytes of the file, at most the configured `Tus-Max-Size`"),
        ("Upload-Metadata" = String, Header, max_length = 4096,
            pattern = "^ *[A-Za-z0-9_-]+( +([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?)? *(, *[A-Za-z0-9_-]+( +([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?)? *)*$",
            description = "Comma-separated `key base64value` pairs: `session_id` (a live call), `sha256` (64 hex digits), optional `filename` and `material_slot`")),
    responses((status = 201, description = "Location of the upload"), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, p: Principal, headers: HeaderMap) -> Response {
    tus(counted(&state, create_inner(&state, &p, &headers).await))
}

/// Counts a failed upload request by its error code (`bangban_upload_failures_total`).
fn counted(state: &AppState, r: ApiResult<Response>) -> ApiResult<Response> {
    if let Err(e) = &r {
        state.metrics.upload_failed(e.code);
    }
    r
}

async fn create_inner(state: &AppState, p: &Principal, h: &HeaderMap) -> ApiResult<Response> {
    require_tus(h)?;
    if h.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request("不支持 Upload-Defer-Length (deferred length not supported)"));
    }
    let length = parse_u64(h, "upload-length")?;
    let meta = parse_metadata(header_str(h, "upload-metadata").unwrap_or_default())?;
    // A call recording (metadata `recording` = `1`): from the call's terminal, with consent.
    let recording = match meta.get("recording").map(String::as_str) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::validation("recording 须为 0 或 1 (recording: 0 or 1)")),
    };
    let (part, duration_ms) = recording_meta(&meta, recording)?;
    let max = if recording {
        state.config.materials.max_recording_bytes
    } else {
        state.config.materials.max_upload_bytes
    };
    if length > max {
        return Err(too_large(max));
    }
    if length == 0 {
        return Err(ApiError::validation("文件为空 (empty file)"));
    }
    let session_id = meta
        .get("session_id")
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ApiError::validation("须提供 session_id (metadata session_id required)"))?;
    let sha256 = meta
        .get("sha256")
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::validation("须提供文件的 sha256 (metadata sha256: 64 hex digits)"))?;
    let filename = sniff::display_name(meta.get("filename").map(String::as_str).unwrap_or_default());
    let slot = match meta.get("material_slot").filter(|s| !s.is_empty()) {
        Some(s) => {
            Some(Uuid::parse_str(s).map_err(|_| ApiError::validation("material_slot 无效 (invalid slot)"))?)
        }
        None => None,
    };
    let session = session_info(state, session_id).await?.ok_or_else(|| ApiError::not_found("通话"))?;
    if !(session.is_terminal(p) || session.is_operator(p)) || (recording && !session.is_terminal(p)) {
        return Err(deny(state, p, "material.upload", "session", session.id).await);
    }
    if recording {
        // The recording is written during the call and sent once it is closed: after the end.
        if !session.finishes_uploads(now_ms()) {
            return Err(session_over());
        }
        recording_allowed(state, &session, part).await?;
    } else if !session.is_live() {
        return Err(session_over());
    }
    sweep_ended(state).await?;
    if !recording {
        quota(state, p, &session, length).await?;
    }
    if let Some(slot) = slot {
        let ok = sqlx::query("SELECT id FROM item_materials WHERE id = $1 AND item_id = $2")
            .bind(slot.to_string())
            .bind(session.item_id.to_string())
            .fetch_optional(&state.db.pool)
            .await?
            .is_some();
        if !ok {
            return Err(ApiError::validation("材料项不属于该事项 (slot is not a material of this item)"));
        }
    }
    let id = new_id();
    let key = random_key();
    let now = now_ms();
    let expires = now + state.config.materials.print_job_expiry_ms;
    // The empty partial file exists (durably) before the upload is announced.
    let path = state.materials.staged_path(id);
    let file = open_private(&path, true).await.map_err(io_error)?;
    file.sync_all().await.map_err(io_error)?;
    sync_dir(path.parent()).await;
    sqlx::query(
        "INSERT INTO uploads (id, created_by, session_id, slot_id, filename, length, received, sha256, wrapped_key, \
         created_at, expires_at, recording, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id.to_string())
    .bind(p.id.to_string())
    .bind(session.id.to_string())
    .bind(slot.map(|s| s.to_string()))
    .bind(super::seal_name(&state.pii, &filename, &format!("upload:{id}:filename")))
    .bind(i64::try_from(length).unwrap_or(i64::MAX))
    .bind(&sha256)
    .bind(state.pii.wrap_key(&key, &format!("upload:{id}")))
    .bind(now)
    .bind(expires)
    .bind(if recording { part } else { 0 })
    .bind(duration_ms)
    .execute(&state.db.pool)
    .await?;
    state
        .audit(AuditRecord::new("upload.create", "upload").by(p).target(id).detail(
            json!({ "session_id": session.id, "length": length, "slot": slot, "recording": recording,
                "part": recording.then_some(part), "duration_ms": duration_ms }),
        ))
        .await;
    let mut resp = StatusCode::CREATED.into_response();
    let hm = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/uploads/{id}")) {
        hm.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(expires)) {
        hm.insert("upload-expires", v);
    }
    hm.insert("upload-offset", HeaderValue::from_static("0"));
    Ok(resp)
}

/// Open uploads of one session, and of one uploader (a terminal or an operator).
pub const MAX_OPEN_PER_SESSION: i64 = 24;
pub const MAX_OPEN_PER_UPLOADER: i64 = 20;
/// Bytes of one session (stored materials and open uploads), in files of the largest size.
pub const SESSION_FILES: u64 = 32;
/// Bytes one uploader stores in a day (materials and open uploads), in files of the largest size.
pub const UPLOADER_DAY_FILES: u64 = 64;

fn quota_error(status: StatusCode, msg: String) -> ApiError {
    ApiError::new(status, "quota_exceeded", msg)
}

/// Per-session and per-uploader quotas on open uploads and stored bytes. Open uploads are
/// counted as their declared length. Too many open uploads is `429` (they finish or expire);
/// too many bytes is `413`.
async fn quota(state: &AppState, p: &Principal, session: &SessionInfo, length: u64) -> ApiResult<()> {
    let now = now_ms();
    let max = state.config.materials.max_upload_bytes;
    let pool = &state.db.pool;
    let r = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(length), 0) AS BIGINT) AS b FROM uploads \
         WHERE session_id = $1 AND material_id IS NULL AND expires_at > $2",
    )
    .bind(session.id.to_string())
    .bind(now)
    .fetch_one(pool)
    .await?;
    let (open_n, open_b): (i64, i64) = (r.try_get("n")?, r.try_get("b")?);
    if open_n >= MAX_OPEN_PER_SESSION {
        return Err(quota_error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "本次通话同时进行的上传已达 {MAX_OPEN_PER_SESSION} 个，请稍后再试 (too many open uploads in this session)"
            ),
        ));
    }
    let stored: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS b FROM materials WHERE session_id = $1 AND purged_at IS NULL",
    )
    .bind(session.id.to_string())
    .fetch_one(pool)
    .await?
    .try_get("b")?;
    let session_max = SESSION_FILES.saturating_mul(max);
    let used = u64::try_from(stored.saturating_add(open_b)).unwrap_or(u64::MAX);
    if used.saturating_add(length) > session_max {
        return Err(quota_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "本次通话的材料已达 {} MB 上限 (session storage quota exceeded)",
                session_max / 1_000_000
            ),
        ));
    }
    let r = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(length), 0) AS BIGINT) AS b FROM uploads \
         WHERE created_by = $1 AND material_id IS NULL AND expires_at > $2",
    )
    .bind(p.id.to_string())
    .bind(now)
    .fetch_one(pool)
    .await?;
    let (mine_n, mine_b): (i64, i64) = (r.try_get("n")?, r.try_get("b")?);
    if mine_n >= MAX_OPEN_PER_UPLOADER {
        return Err(quota_error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("同时进行的上传已达 {MAX_OPEN_PER_UPLOADER} 个，请稍后再试 (too many open uploads)"),
        ));
    }
    let day: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS b FROM materials WHERE uploaded_by = $1 AND created_at > $2",
    )
    .bind(p.id.to_string())
    .bind(now - 86_400_000)
    .fetch_one(pool)
    .await?
    .try_get("b")?;
    let day_max = UPLOADER_DAY_FILES.saturating_mul(max);
    let used = u64::try_from(day.saturating_add(mine_b)).unwrap_or(u64::MAX);
    if used.saturating_add(length) > day_max {
        return Err(quota_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("今日上传已达 {} MB 上限 (daily storage quota exceeded)", day_max / 1_000_000),
        ));
    }
    Ok(())
}

/// Removes open uploads whose session ended more than [`super::UPLOAD_GRACE_MS`] ago (at most
/// 64 per call).
pub(crate) async fn sweep_ended(state: &AppState) -> ApiResult<u64> {
    let rows = sqlx::query(
        "SELECT u.id FROM uploads u JOIN call_sessions s ON s.id = u.session_id \
         WHERE u.material_id IS NULL AND s.ended_at IS NOT NULL AND s.ended_at < $1 LIMIT 64",
    )
    .bind(now_ms() - super::UPLOAD_GRACE_MS)
    .fetch_all(&state.db.pool)
    .await?;
    let mut n = 0;
    for r in &rows {
        let id = parse_id(&r.try_get::<String, _>("id")?)?;
        let _guard = state.materials.lock_upload(id).await;
        remove_upload(state, id).await?;
        n += 1;
    }
    Ok(n)
}

#[cfg(unix)]
async fn open_private(path: &std::path::Path, create: bool) -> std::io::Result<tokio::fs::File> {
    let mut o = tokio::fs::OpenOptions::new();
    o.read(true).write(true).mode(0o600);
    if create {
        o.create_new(true);
    }
    o.open(path).await
}

#[cfg(not(unix))]
async fn open_private(path: &std::path::Path, create: bool) -> std::io::Result<tokio::fs::File> {
    let mut o = tokio::fs::OpenOptions::new();
    o.read(true).write(true);
    if create {
        o.create_new(true);
    }
    o.open(path).await
}

async fn sync_dir(dir: Option<&std::path::Path>) {
    #[cfg(unix)]
    if let Some(dir) = dir
        && let Ok(d) = tokio::fs::File::open(dir).await
    {
        let _ = d.sync_all().await;
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn offset_headers(resp: &mut Response, up: &Upload, offset: u64) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&offset.to_string()) {
        h.insert("upload-offset", v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(up.expires_at)) {
        h.insert("upload-expires", v);
    }
    if let Some(m) = up.material_id
        && let Ok(v) = HeaderValue::from_str(&m.to_string())
    {
        h.insert(MATERIAL_ID_HEADER, v);
    }
}

/// tus: the stored offset. Waits for a `PATCH` in progress on the same upload to finish.
#[utoipa::path(head, path = "/api/v1/uploads/{id}", tag = "materials", params(("id" = Uuid, Path), TusResumable),
    responses((status = 200, description = "Upload-Offset, Upload-Length, Upload-Expires"), (status = 404, body = ErrorBody)))]
pub async fn head(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Response {
    tus(async {
        require_tus(&headers)?;
        let _guard = state.materials.lock_upload(id).await;
        let up = load_own(&state, &p, id).await?;
        let mut resp = StatusCode::OK.into_response();
        offset_headers(&mut resp, &up, up.received);
        if let Ok(v) = HeaderValue::from_str(&up.length.to_string()) {
            resp.headers_mut().insert("upload-length", v);
        }
        Ok(resp)
    }
    .await)
}

/// tus termination: abandons an upload (a finished upload's material stays).
#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "materials", params(("id" = Uuid, Path), TusResumable),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn terminate(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Response {
    tus(async {
        require_tus(&headers)?;
        let _guard = state.materials.lock_upload(id).await;
        load_own(&state, &p, id).await?;
        remove_upload(&state, id).await?;
        state.audit(AuditRecord::new("upload.terminate", "upload").by(&p).target(id)).await;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await)
}

enum Checksum {
    Sha1(Sha1, Vec<u8>),
    Sha256(Sha256, Vec<u8>),
}

impl Checksum {
    fn parse(h: &HeaderMap) -> ApiResult<Option<Self>> {
        let Some(v) = header_str(h, "upload-checksum") else { return Ok(None) };
        let (alg, b64) = v.split_once(' ').ok_or_else(|| ApiError::bad_request("Upload-Checksum 无效"))?;
        let want = B64.decode(b64.trim()).map_err(|_| ApiError::bad_request("Upload-Checksum 无效"))?;
        match alg {
            "sha1" => Ok(Some(Checksum::Sha1(Sha1::new(), want))),
            "sha256" => Ok(Some(Checksum::Sha256(Sha256::new(), want))),
            _ => Err(ApiError::bad_request("不支持的校验算法 (unsupported checksum algorithm)")),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Checksum::Sha1(h, _) => h.update(data),
            Checksum::Sha256(h, _) => h.update(data),
        }
    }

    fn matches(self) -> bool {
        match self {
            Checksum::Sha1(h, want) => h.finalize()[..] == want[..],
            Checksum::Sha256(h, want) => h.finalize()[..] == want[..],
        }
    }
}

/// tus: appends the body at `Upload-Offset` (`Content-Type: application/offset+octet-stream`).
#[utoipa::path(patch, path = "/api/v1/uploads/{id}", tag = "materials", params(("id" = Uuid, Path), TusResumable,
        ("Upload-Offset" = u64, Header),
        ("Upload-Checksum" = Option<String>, Header, pattern = "^ *(sha1|sha256) +([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)? *$")),
    request_body(content = TusChunk, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "Upload-Offset; Bangban-Material-Id once complete"),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 460, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tus(counted(&state, patch_inner(&state, &p, id, &headers, body).await))
}

async fn patch_inner(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    h: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_tus(h)?;
    if header_str(h, "content-type") != Some("application/offset+octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "须为 application/offset+octet-stream (expected application/offset+octet-stream)",
        ));
    }
    let offset = parse_u64(h, "upload-offset")?;
    let mut checksum = Checksum::parse(h)?;
    // Held until the answer: HEAD and other PATCHes of this upload wait.
    let _guard = state.materials.lock_upload(id).await;
    let mut up = load_own(state, p, id).await?;
    if offset != up.received {
        return Err(ApiError::conflict(format!(
            "偏移量不符，当前为 {} (offset mismatch: stored offset is {})",
            up.received, up.received
        )));
    }
    if up.material_id.is_some() {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        offset_headers(&mut resp, &up, up.received);
        return Ok(resp);
    }
    // An upload outlives its session only until the session's party touches it again.
    if !session_info(state, up.session_id).await?.is_some_and(|s| s.finishes_uploads(now_ms())) {
        remove_upload(state, id).await?;
        return Err(session_over());
    }
    let name = object_name(state, &up);
    let sealer = Arc::new(Sealer::new(&up.key, &object_path(&name)));
    let file = open_staged(state, &up, &sealer).await?;
    let (key, length) = (up.key, up.length);
    let (tail, slot) = blocking({
        let file = file.clone();
        move || staging::read_tail(&file, &key, length, offset)
    })
    .await?;
    // The whole file's SHA-256 so far: kept between PATCHes, recomputed after a restart.
    let before = match state.materials.take_hash(id, offset) {
        Some(h) => h,
        None => {
            let (file, sealer) = (file.clone(), sealer.clone());
            blocking(move || staging::hash_prefix(&file, &sealer, &key, length, offset)).await?
        }
    };
    let mut hasher = before.clone();
    let magic = sniff::MAGIC_LEN as u64;
    // The first bytes, for the type (below a segment, the acknowledged tail is all of them).
    let mut head = if offset < magic { tail.clone() } else { Vec::new() };
    let mut writer = staging::SegmentWriter::new(file.clone(), sealer.clone(), length, offset, tail);
    let room = up.length - offset;
    let mut written: u64 = 0;
    let mut stream = body.into_data_stream();
    let mut cut = false;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, upload = %id, "upload interrupted");
                cut = true;
                break;
            }
        };
        if written + chunk.len() as u64 > room {
            writer.abandon().await;
            state.materials.keep_hash(id, offset, before);
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "超出声明的文件长度 (more data than Upload-Length)",
            ));
        }
        if let Some(c) = checksum.as_mut() {
            c.update(&chunk);
        }
        hasher.update(&chunk);
        if head.len() < sniff::MAGIC_LEN && offset < magic {
            let need = (sniff::MAGIC_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..need]);
        }
        if let Err(e) = writer.push(&chunk).await {
            writer.abandon().await;
            return Err(io_error(e));
        }
        written += chunk.len() as u64;
    }
    let verified = match checksum {
        Some(c) if cut => {
            // Cannot be verified: keep nothing of this request.
            drop(c);
            false
        }
        Some(c) => c.matches(),
        None => true,
    };
    if !verified {
        // Nothing acknowledged was written over: the stored offset and its tail stand as they were.
        writer.abandon().await;
        state.materials.keep_hash(id, offset, before);
        return Err(if cut {
            ApiError::bad_request("上传中断 (upload interrupted)")
        } else {
            checksum_mismatch("chunk")
        });
    }
    let (start, new_tail) = writer.finish().await.map_err(io_error)?;
    let new = offset + written;
    // Durable first (one fsync for the segments and the tail), then acknowledged.
    if written > 0 {
        blocking({
            let file = file.clone();
            move || {
                if new < length && !new_tail.is_empty() {
                    let free = slot.map_or(0, |s| 1 - s);
                    staging::write_tail(&file, &key, length, free, start, &new_tail)?;
                }
                file.sync_data()
            }
        })
        .await?;
    }
    let n = sqlx::query("UPDATE uploads SET received = $1 WHERE id = $2 AND received = $3")
        .bind(i64::try_from(new).unwrap_or(i64::MAX))
        .bind(id.to_string())
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .execute(&state.db.pool)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict("上传已变化 (upload changed concurrently)"));
    }
    up.received = new;
    state.metrics.upload_bytes(up.recording, written);
    state.materials.keep_hash(id, new, hasher.clone());
    if cut {
        return Err(ApiError::bad_request("上传中断 (upload interrupted)"));
    }
    // Refuse a wrong type as soon as its first bytes are in.
    if offset < magic && (new >= magic || new == up.length) {
        let kind = sniff::sniff(&head);
        // A recording is a video and nothing else is.
        if kind.is_none() || (kind == Some(Kind::Video)) != up.recording {
            remove_upload(state, id).await?;
            state
                .audit(
                    AuditRecord::new("material.upload", "upload")
                        .by(p)
                        .target(id)
                        .outcome("failure")
                        .detail(json!({ "reason": "unsupported_type" })),
                )
                .await;
            return Err(unsupported_type());
        }
    }
    if new == up.length {
        let digest = hex::encode(hasher.finalize());
        match finish(state, p, &up, &digest, file).await {
            Ok(m) => {
                up.material_id = Some(m.id);
                state.metrics.upload_completed(up.recording);
            }
            Err(e) => {
                remove_upload(state, id).await?;
                state
                    .audit(
                        AuditRecord::new("material.upload", "upload")
                            .by(p)
                            .target(id)
                            .outcome("failure")
                            .detail(json!({ "reason": e.code })),
                    )
                    .await;
                return Err(e);
            }
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    offset_headers(&mut resp, &up, new);
    Ok(resp)
}

/// Runs blocking file work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal())?.map_err(io_error)
}

/// The store's name of the upload's content (known from the declared SHA-256).
fn object_name(state: &AppState, up: &Upload) -> String {
    state.pii.keyed_hash(&format!("material-object:{}", up.sha256))
}

fn open_std(path: &std::path::Path, create: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    if create {
        o.create(true).truncate(true);
    }
    o.open(path)
}

/// Opens the upload's staged file ([`staging`]). One staged before that format (AES-CTR
/// throughout) is converted once: sealed into a temporary file, fsynced, renamed.
async fn open_staged(state: &AppState, up: &Upload, sealer: &Arc<Sealer>) -> ApiResult<Arc<std::fs::File>> {
    let path = state.materials.staged_path(up.id);
    let found = blocking({
        let path = path.clone();
        move || match open_std(&path, false) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await?;
    if let Some(f) = found {
        return Ok(Arc::new(f));
    }
    let tmp = path.with_extension("sealed.tmp");
    let file = Arc::new(
        blocking({
            let tmp = tmp.clone();
            move || open_std(&tmp, true)
        })
        .await?,
    );
    let mut legacy = staged(state, up, up.received).await?;
    let mut w = staging::SegmentWriter::new(file.clone(), sealer.clone(), up.length, 0, Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = legacy.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            break;
        }
        w.push(&buf[..n]).await.map_err(io_error)?;
    }
    let (start, tail) = w.finish().await.map_err(io_error)?;
    let (key, length, received, legacy_path) =
        (up.key, up.length, up.received, state.materials.upload_path(up.id));
    blocking({
        let (file, path) = (file.clone(), path.clone());
        move || {
            if received < length && !tail.is_empty() {
                staging::write_tail(&file, &key, length, 0, start, &tail)?;
            }
            file.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            std::fs::remove_file(legacy_path)
        }
    })
    .await?;
    Ok(file)
}

/// The last byte arrived: the whole-file SHA-256 (computed as the bytes came) must be the one
/// announced; check the document; the staged file is already the sealed object, so it is moved
/// into the store (under the store's commit lock only for that and the rows) and the material
/// is created. The thumbnail is made afterwards in the background.
async fn finish(
    state: &AppState,
    p: &Principal,
    up: &Upload,
    digest: &str,
    file: Arc<std::fs::File>,
) -> ApiResult<MaterialView> {
    let session = session_info(state, up.session_id).await?.ok_or_else(|| ApiError::not_found("通话"))?;
    if !session.finishes_uploads(now_ms()) {
        return Err(session_over());
    }
    if digest != up.sha256 {
        return Err(checksum_mismatch("file sha256"));
    }
    let name = object_name(state, up);
    let path = object_path(&name);
    let (key, length) = (up.key, up.length);
    let head = blocking({
        let (file, path) = (file.clone(), path.clone());
        move || {
            let mut head = Vec::new();
            staging::SealedReader::new(file.try_clone()?, Sealer::new(&key, &path), length)
                .take(sniff::MAGIC_LEN as u64)
                .read_to_end(&mut head)?;
            Ok(head)
        }
    })
    .await?;
    let kind =
        sniff::sniff(&head).filter(|k| (*k == Kind::Video) == up.recording).ok_or_else(unsupported_type)?;
    // Nothing is stored, and nothing can reach a printer, before the document passed its check.
    if kind != Kind::Video {
        check_document(state, up, kind, &path).await?;
    }
    // The tail slots go; the object's bytes are durable (fsynced by the last PATCH).
    blocking({
        let file = file.clone();
        move || {
            file.set_len(sealed_len(length))?;
            file.sync_all()
        }
    })
    .await?;
    drop(file);
    let staged_path = state.materials.staged_path(up.id);
    let new_object = {
        let _commit = state.materials.commit.lock().await;
        let exists = sqlx::query("SELECT name FROM material_objects WHERE name = $1")
            .bind(&name)
            .fetch_optional(&state.db.pool)
            .await?
            .is_some();
        let new_object = if exists {
            None
        } else {
            state.materials.place(&path, &staged_path).await.map_err(|e| {
                tracing::error!(error = %e, "cannot store a material");
                ApiError::internal()
            })?;
            sqlx::query(
                "INSERT INTO material_objects (name, sha256, size, segment_size, wrapped_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&name)
            .bind(&up.sha256)
            .bind(i64::try_from(up.length).unwrap_or(i64::MAX))
            .bind(i64::try_from(super::crypto::SEGMENT).unwrap_or(0))
            .bind(state.pii.wrap_key(&up.key, &format!("object:{path}")))
            .bind(now_ms())
            .execute(&state.db.pool)
            .await?;
            Some(up.key)
        };
        insert_material(state, p, up, &session, kind).await?;
        new_object
    };
    // Deduplicated: the staged copy is not needed.
    tokio::fs::remove_file(&staged_path).await.ok();
    state.materials.forget_hash(up.id);
    let material_id = sqlx::query("SELECT material_id FROM uploads WHERE id = $1")
        .bind(up.id.to_string())
        .fetch_one(&state.db.pool)
        .await?
        .try_get::<Option<String>, _>("material_id")?
        .ok_or_else(ApiError::internal)?;
    let material = super::load(state, parse_id(&material_id)?).await?.ok_or_else(ApiError::internal)?.view;
    state
        .audit(AuditRecord::new("material.upload", "material").by(p).target(material.id).detail(json!({
            "session_id": session.id,
            "size": material.size,
            "content_type": material.content_type,
            "slot_id": material.slot_id,
        })))
        .await;
    // A recording is never shown to the parties; it has no thumbnail.
    if !up.recording {
        notify_material(state, &session, material.clone()).await;
        if let Some(key) = new_object {
            thumb::spawn(state.clone(), name, kind, key, up.length, material.id);
        }
    }
    Ok(material)
}

/// The longest duration a terminal may report for a recording (a day; calls are far shorter).
pub const MAX_RECORDING_DURATION_MS: i64 = 24 * 3600 * 1000;

/// A recording's optional metadata: `recording_part` (`1`: the terminal's camera and
/// microphone, the default; `2`: the operator's camera and voice) and `duration_ms` (what the
/// terminal measured, 1 ms – 24 h). Neither is allowed on anything but a recording.
fn recording_meta(
    meta: &std::collections::HashMap<String, String>,
    recording: bool,
) -> ApiResult<(i32, Option<i64>)> {
    let (part, duration) = (meta.get("recording_part"), meta.get("duration_ms"));
    if !recording && (part.is_some() || duration.is_some()) {
        return Err(ApiError::validation(
            "只有录像有分段和时长 (recording_part/duration_ms: recordings only)",
        ));
    }
    let part = match part.map(String::as_str) {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(_) => return Err(ApiError::validation("recording_part 须为 1 或 2 (recording_part: 1 or 2)")),
    };
    let duration = match duration {
        None => None,
        // Plain decimal digits only (no sign, no leading zeros, no spaces).
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|d| d.to_string() == *raw && (1..=MAX_RECORDING_DURATION_MS).contains(d))
                .ok_or_else(|| {
                    ApiError::validation("duration_ms 须在 1 到 86400000 之间 (duration_ms out of range)")
                })?,
        ),
    };
    Ok((part, duration))
}

/// A recording may be uploaded only for a call whose resident agreed to it, each part once.
async fn recording_allowed(state: &AppState, session: &SessionInfo, part: i32) -> ApiResult<()> {
    let consent: Option<i32> = sqlx::query("SELECT recording_consent FROM tickets WHERE id = $1")
        .bind(session.ticket_id.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .map(|r| r.try_get::<Option<i32>, _>("recording_consent"))
        .transpose()?
        .flatten();
    if consent != Some(1) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_consent",
            "居民未同意录音录像，不能上传录像 (the resident did not agree to recording)",
        ));
    }
    let exists = sqlx::query(
        "SELECT id FROM materials WHERE session_id = $1 AND source = 'recording' AND COALESCE(recording_part, 1) = $2",
    )
    .bind(session.id.to_string())
    .bind(part)
        .fetch_optional(&state.db.pool)
        .await?
        .is_some();
    if exists {
        return Err(ApiError::conflict("该通话已有录像 (the call already has a recording)"));
    }
    Ok(())
}

fn session_over() -> ApiError {
    ApiError::conflict("通话已结束 (session is over)")
}

/// Removes a file when dropped (the plaintext copy a checker reads).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks the complete staged document ([`check`]): PDFs by `qpdf` in a limited child, images
/// by their header. At most [`check::CONCURRENT_CHECKS`] at once.
async fn check_document(state: &AppState, up: &Upload, kind: Kind, object: &str) -> ApiResult<()> {
    let _permit = state.materials.checks.acquire().await.map_err(|_| ApiError::internal())?;
    let (staged, key, length, object) =
        (state.materials.staged_path(up.id), up.key, up.length, object.to_owned());
    let reader = move || -> std::io::Result<staging::SealedReader> {
        Ok(staging::SealedReader::new(std::fs::File::open(&staged)?, Sealer::new(&key, &object), length))
    };
    let format = match kind {
        Kind::Pdf => {
            // The checker needs a seekable plaintext file: owner-only, removed right after.
            let path = state.materials.staged_path(up.id).with_extension("check.pdf");
            let _ = tokio::fs::remove_file(&path).await;
            let _remove = RemoveOnDrop(path.clone());
            blocking({
                let path = path.clone();
                move || {
                    let mut out = open_std(&path, true)?;
                    std::io::copy(&mut reader()?, &mut out)?;
                    Ok(())
                }
            })
            .await?;
            let pages = check::check_pdf(&path).await?;
            tracing::debug!(upload = %up.id, pages, "PDF checked");
            return Ok(());
        }
        Kind::Jpeg => image::ImageFormat::Jpeg,
        Kind::Png => image::ImageFormat::Png,
        Kind::Tiff => image::ImageFormat::Tiff,
        // Recordings come only from the call's terminal, with consent; nothing else to check.
        Kind::Video => return Ok(()),
    };
    tokio::task::spawn_blocking(move || {
        let mut r = reader().map_err(io_error)?;
        if format == image::ImageFormat::Jpeg {
            // The JPEG decoder reads all of its input to find the frame header: it gets the first
            // bytes only (the header precedes the scan, after APPn segments of ≤ 64 KiB each).
            let mut head = Vec::new();
            (&mut r).take(JPEG_HEADER_BYTES).read_to_end(&mut head).map_err(io_error)?;
            return check::check_image(format, std::io::Cursor::new(head))
                .map(|_| ())
                .map_err(ApiError::from);
        }
        check::check_image(format, std::io::BufReader::new(r)).map(|_| ()).map_err(ApiError::from)
    })
    .await
    .map_err(|_| ApiError::internal())?
}

async fn insert_material(
    state: &AppState,
    p: &Principal,
    up: &Upload,
    session: &SessionInfo,
    kind: Kind,
) -> ApiResult<()> {
    let id = new_id();
    let now = now_ms();
    let source = if up.recording {
        MaterialSource::Recording
    } else if p.is_terminal() {
        MaterialSource::Scan
    } else {
        MaterialSource::Form
    };
    let name = state.pii.keyed_hash(&format!("material-object:{}", up.sha256));
    sqlx::query(
        "INSERT INTO materials (id, session_id, ticket_id, item_id, slot_id, source, filename, content_type, size, \
         sha256, object_name, status, uploaded_by, created_at, updated_at, recording_part, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'uploaded', $12, $13, $13, $14, $15)",
    )
    .bind(id.to_string())
    .bind(session.id.to_string())
    .bind(session.ticket_id.to_string())
    .bind(session.item_id.to_string())
    .bind(up.slot_id.map(|s| s.to_string()))
    .bind(match source {
        MaterialSource::Form => "form",
        MaterialSource::Recording => "recording",
        MaterialSource::Scan => "scan",
    })
    .bind(super::seal_name(&state.pii, &up.filename, &super::material_name_context(id)))
    .bind(kind.mime())
    .bind(i64::try_from(up.length).unwrap_or(i64::MAX))
    .bind(&up.sha256)
    .bind(&name)
    .bind(p.id.to_string())
    .bind(now)
    .bind(up.recording.then_some(up.recording_part))
    .bind(up.recording.then_some(up.duration_ms).flatten())
    .execute(&state.db.pool)
    .await?;
    sqlx::query("UPDATE uploads SET material_id = $1 WHERE id = $2")
        .bind(id.to_string())
        .bind(up.id.to_string())
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Runs every tus request-header parser on `h` (for the `tus_headers` fuzz target in `fuzz/`).
#[doc(hidden)]
pub fn fuzz_parse_headers(h: &HeaderMap) {
    let _ = require_tus(h);
    let _ = parse_u64(h, "upload-length");
    let _ = parse_u64(h, "upload-offset");
    if let Some(raw) = header_str(h, "upload-metadata") {
        let _ = parse_metadata(raw);
    }
    let _ = Checksum::parse(h).map(|c| c.map(Checksum::matches));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parsing() {
        let m = parse_metadata("filename Zm9vLnBkZg==, session_id MTIz,empty").unwrap();
        assert_eq!(m["filename"], "foo.pdf");
        assert_eq!(m["session_id"], "123");
        assert_eq!(m["empty"], "");
        assert!(parse_metadata("a YQ==,a YQ==").is_err(), "duplicate key");
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata(&"a YQ==,".repeat(1000)).is_err(), "too long");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
