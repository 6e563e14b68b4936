//! Materials (办事材料) and remote printing.
//!
//! - [`tus`]: resumable uploads (tus 1.0: core, creation, checksum, expiration, termination)
//!   under `/api/v1/uploads`. Partial files are kept under `<data-dir>/uploads`, sealed as
//!   they arrive in the store's own format ([`staging`]), and fsynced before an offset is
//!   acknowledged; a finished one is renamed into the store.
//! - [`api`]: listing, viewing, downloading (with `Range`), thumbnails, review, purge.
//! - [`print`]: print jobs from the operator to the service point's terminal.
//! - [`crypto`]: envelope encryption of stored objects (per-object data key wrapped by the
//!   master key, 64 KiB AES-256-GCM segments), AES-CTR for partial uploads.
//! - [`sniff`]: type by content, display-safe file names; [`check`]: documents checked before
//!   they are accepted (PDF structure, encryption, pages; image dimensions); [`thumb`]:
//!   thumbnails, made in the background after an upload completes.
//!
//! Objects live in an `object_store` (the local file system under `<data-dir>/materials` by
//! default; any S3-compatible store, e.g. MinIO, by `BANGBAN_S3_*`), content-addressed: the object name is a
//! keyed hash of the plaintext's SHA-256, so identical files are stored once and names reveal
//! nothing to whoever reads the bucket. Metadata lives in the database (`materials`,
//! `material_objects`, `uploads`, `print_jobs`). Every view, download and purge is audited.

pub mod api;
pub mod check;
pub mod crypto;
pub mod print;
pub mod sniff;
pub mod staging;
pub mod thumb;
pub mod tus;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde_json::json;
use shared::api::{MaterialSource, MaterialStatus, MaterialView, PurgeReport};
use shared::protocol::{Role, ServerMsg};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::config::Config;
use crate::db::{Db, now_ms, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::StatusCode;
use crypto::{SEGMENT, Sealer, SegmentSpan};

pub use print::report_print_state;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("materials directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// The object store and the upload staging area. Cheap to share (held in the state).
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    /// Multipart part size: S3 refuses parts under 5 MiB (except the last one).
    part_size: usize,
    uploads_dir: PathBuf,
    /// Serialises storing and deleting objects (dedup by content must not race a purge).
    pub(crate) commit: tokio::sync::Mutex<()>,
    /// One lock per upload in progress: a `PATCH` holds it while it writes, `HEAD` waits for it.
    /// An entry lives only while a request holds or waits for it ([`UploadGuard`]), so unknown
    /// or finished ids never make the map grow.
    upload_locks: std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds document checks and thumbnail renders ([`check::CONCURRENT_CHECKS`]).
    pub(crate) checks: tokio::sync::Semaphore,
    /// Thumbnail renders at once ([`thumb::CONCURRENT_RENDERS`]): a decoded page is large
    /// (an A4 scan at 600 dpi is ≈ 100 MB of pixels), so they do not run beside each other.
    pub(crate) renders: tokio::sync::Semaphore,
    /// The local store, when it is one: a finished upload is renamed into it.
    local: Option<Arc<object_store::local::LocalFileSystem>>,
    /// Whole-file SHA-256 of uploads in progress, as of their stored offset (recomputed from the
    /// staged prefix when missing, e.g. after a restart).
    hashes: std::sync::Mutex<HashMap<Uuid, (u64, sha2::Sha256)>>,
    /// Cluster mode: an upload's lock is also taken in Redis, so two nodes do not write one
    /// upload at once ([`Store::with_cluster`]).
    cluster: Option<crate::cluster::Cluster>,
}

/// Longest wait for another node's lock of an upload.
const UPLOAD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Holds an upload's lock; dropping it removes the map entry when nobody else wants it.
pub(crate) struct UploadGuard<'a> {
    store: &'a Store,
    id: Uuid,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    shared: Option<crate::cluster::SharedLock>,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        drop(self.shared.take());
        drop(self.guard.take());
        let mut locks = self.store.upload_locks.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: no other request holds or waits for this lock.
        if locks.get(&self.id).is_some_and(|m| Arc::ptr_eq(m, &self.mutex) && Arc::strong_count(m) == 2) {
            locks.remove(&self.id);
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("objects", &self.objects.to_string()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the configured store, creating `<data-dir>/materials` and `<data-dir>/uploads`.
    pub fn open(config: &Config) -> Result<Self, StoreError> {
        let uploads_dir = config.uploads_dir.clone().unwrap_or_else(|| config.data_dir.join("uploads"));
        std::fs::create_dir_all(&uploads_dir).map_err(|e| StoreError::Dir(uploads_dir.clone(), e))?;
        let (objects, part_size, local_fs) = Self::connect_objects(config)?;
        Ok(Self {
            objects,
            part_size,
            uploads_dir,
            commit: tokio::sync::Mutex::new(()),
            upload_locks: std::sync::Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(check::CONCURRENT_CHECKS),
            renders: tokio::sync::Semaphore::new(thumb::CONCURRENT_RENDERS),
            local: local_fs,
            hashes: std::sync::Mutex::new(HashMap::new()),
            cluster: None,
        })
    }

    /// Cluster mode: upload locks are taken in Redis too.
    #[must_use]
    pub fn with_cluster(mut self, cluster: Option<crate::cluster::Cluster>) -> Self {
        self.cluster = cluster;
        self
    }

    /// The configured object store alone (S3, or `<data-dir>/materials`, created), its multipart
    /// part size and, when local, the local store: what backups list, read and write.
    #[allow(clippy::type_complexity)]
    pub fn connect_objects(
        config: &Config,
    ) -> Result<(Arc<dyn ObjectStore>, usize, Option<Arc<object_store::local::LocalFileSystem>>), StoreError>
    {
        let mut local_fs = None;
        let (objects, part_size): (Arc<dyn ObjectStore>, usize) = match &config.materials.s3 {
            Some(s3) => {
                // object_store's HTTP client uses rustls without a bundled provider: ring, the
                // same provider webrtc uses. `Err` only means a provider is installed already.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let s3 = Arc::new(
                    object_store::aws::AmazonS3Builder::new()
                        // First: it replaces every client option (`with_allow_http` is one).
                        .with_client_options(
                            object_store::ClientOptions::new()
                                .with_connect_timeout(std::time::Duration::from_secs(5))
                                .with_timeout(std::time::Duration::from_secs(60)),
                        )
                        .with_endpoint(&s3.endpoint)
                        .with_bucket_name(&s3.bucket)
                        .with_region(&s3.region)
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(&s3.secret_access_key)
                        .with_allow_http(s3.endpoint.starts_with("http://"))
                        // MinIO-style `http://host:port/bucket` addressing, not `bucket.host`.
                        .with_virtual_hosted_style_request(false)
                        // A store that is down fails the upload's last PATCH within ~30 s
                        // (the terminal retries), not after object_store's default 3 minutes.
                        .with_retry(object_store::RetryConfig {
                            max_retries: 3,
                            retry_timeout: std::time::Duration::from_secs(30),
                            ..object_store::RetryConfig::default()
                        })
                        .build()?,
                );
                (s3, 5 * 1024 * 1024)
            }
            None => {
                let dir = config.data_dir.join("materials");
                std::fs::create_dir_all(&dir).map_err(|e| StoreError::Dir(dir.clone(), e))?;
                let local = Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&dir)?
                        .with_fsync(true)
                        .with_automatic_cleanup(true),
                );
                local_fs = Some(local.clone());
                (local, 1024 * 1024)
            }
        };
        Ok((objects, part_size, local_fs))
    }

    /// The staged file of an upload from before [`staging`] (AES-CTR throughout).
    pub(crate) fn upload_path(&self, id: Uuid) -> PathBuf {
        self.uploads_dir.join(id.simple().to_string())
    }

    /// The staged file of an upload, in the sealed format ([`staging`]).
    pub(crate) fn staged_path(&self, id: Uuid) -> PathBuf {
        self.uploads_dir.join(format!("{}.sealed", id.simple()))
    }

    /// Takes the whole-file hasher of upload `id` if it is at `offset`.
    pub(crate) fn take_hash(&self, id: Uuid, offset: u64) -> Option<sha2::Sha256> {
        let mut m = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        match m.remove(&id) {
            Some((at, h)) if at == offset => Some(h),
            _ => None,
        }
    }

    pub(crate) fn keep_hash(&self, id: Uuid, offset: u64, h: sha2::Sha256) {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (offset, h));
    }

    pub(crate) fn forget_hash(&self, id: Uuid) {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Uploads whose hasher is kept in memory (for tests and diagnostics).
    pub fn hashes_kept(&self) -> usize {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Moves a complete staged file (already sealed for `path`, fsynced) into the store: a
    /// rename into the local store (its directory fsynced), else a streamed multipart upload.
    pub(crate) async fn place(&self, path: &str, staged: &std::path::Path) -> Result<(), StoreError> {
        let location = ObjectPath::from(path);
        let io = |e: std::io::Error| StoreError::Dir(PathBuf::from(path), e);
        if let Some(local) = &self.local {
            let dest = local.path_to_filesystem(&location)?;
            let staged = staged.to_owned();
            return tokio::task::spawn_blocking(move || {
                let dir = dest.parent().map(std::path::Path::to_owned).unwrap_or_default();
                let created = !dir.exists();
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(&staged, &dest)?;
                std::fs::File::open(&dir)?.sync_all()?;
                if created && let Some(up) = dir.parent() {
                    std::fs::File::open(up)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io);
        }
        put_file(&self.objects, self.part_size, &location, staged).await
    }

    /// Waits for and holds the lock of upload `id`.
    pub(crate) async fn lock_upload(&self, id: Uuid) -> UploadGuard<'_> {
        let mutex =
            self.upload_locks.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default().clone();
        let guard = Some(mutex.clone().lock_owned().await);
        // Another node may be writing it: wait for its lock in Redis too. The lock is a guard
        // against two nodes writing at once, not the only one: the stored offset only moves
        // from the value the writer read (`received = $3`) and the whole-file hash is checked
        // at the end, so while Redis does not answer an upload goes on without it.
        let shared = match &self.cluster {
            Some(c) => match c.lock(&format!("upload:{}", id.simple()), UPLOAD_LOCK_WAIT).await {
                Ok(Some(l)) => Some(l),
                Ok(None) => {
                    tracing::warn!(upload = %id, "upload still locked by another node; going on");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster upload lock unavailable; going on");
                    None
                }
            },
            None => None,
        };
        UploadGuard { store: self, id, mutex, guard, shared }
    }

    /// Upload locks currently held or waited for (for tests and diagnostics).
    pub fn upload_locks_held(&self) -> usize {
        self.upload_locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Encrypts `size` bytes read from `plain` into the object `path` under `key`.
    pub(crate) async fn seal(
        &self,
        path: &str,
        key: &[u8; 32],
        mut plain: impl tokio::io::AsyncRead + Unpin,
        size: u64,
    ) -> Result<(), StoreError> {
        let location = ObjectPath::from(path);
        let upload = self.objects.put_multipart(&location).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let sealer = Sealer::new(key, path);
        let n = crypto::segments(size);
        let mut buf = vec![0u8; usize::try_from(SEGMENT).unwrap_or(65_536)];
        for i in 0..n {
            let len = usize::try_from((size - i * SEGMENT).min(SEGMENT)).unwrap_or(0);
            if let Err(e) = plain.read_exact(&mut buf[..len]).await {
                let _ = w.abort().await;
                return Err(StoreError::Dir(PathBuf::from(path), e));
            }
            if let Err(e) = w.wait_for_capacity(2).await {
                let _ = w.abort().await;
                return Err(e.into());
            }
            w.write(&sealer.seal(i, i + 1 == n, &buf[..len]));
        }
        w.finish().await?;
        Ok(())
    }

    /// Decrypts plaintext bytes `[start, end)` of the object `path` (of `size` plaintext bytes),
    /// fetching at most 16 segments at a time.
    pub(crate) fn open_range(
        &self,
        path: &str,
        key: &[u8; 32],
        size: u64,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let objects = self.objects.clone();
        let location = ObjectPath::from(path);
        let sealer = Arc::new(Sealer::new(key, path));
        let span = SegmentSpan::of(start, end);
        let total = crypto::segments(size);
        futures_util::stream::try_unfold(span.first, move |seg| {
            let objects = objects.clone();
            let location = location.clone();
            let sealer = sealer.clone();
            async move {
                if seg > span.last || start >= end {
                    return Ok(None);
                }
                let upto = (seg + 15).min(span.last);
                let sealed = objects
                    .get_range(&location, SegmentSpan::sealed_range(seg, upto, size))
                    .await
                    .map_err(std::io::Error::other)?;
                let mut out = Vec::with_capacity(sealed.len());
                for (k, chunk) in
                    sealed.chunks(usize::try_from(SEGMENT + crypto::TAG).unwrap_or(1)).enumerate()
                {
                    let index = seg + k as u64;
                    let plain =
                        sealer.open(index, index + 1 == total, chunk).map_err(std::io::Error::other)?;
                    let base = index * SEGMENT;
                    let from = usize::try_from(start.saturating_sub(base)).unwrap_or(0).min(plain.len());
                    let to = usize::try_from(end.saturating_sub(base)).unwrap_or(0).min(plain.len());
                    out.extend_from_slice(&plain[from..to.max(from)]);
                }
                Ok(Some((Bytes::from(out), upto + 1)))
            }
        })
    }

    /// Reads a whole (small) object, e.g. a thumbnail.
    pub(crate) async fn read_all(
        &self,
        path: &str,
        key: &[u8; 32],
        size: u64,
    ) -> Result<Vec<u8>, std::io::Error> {
        use futures_util::TryStreamExt;
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut parts = std::pin::pin!(self.open_range(path, key, size, 0, size));
        while let Some(part) = parts.try_next().await? {
            out.extend_from_slice(&part);
        }
        Ok(out)
    }

    /// The file of object `path` in the local store (`None` with S3): a reader opens it as
    /// [`staging::SealedReader`], decrypting one segment at a time instead of holding it whole.
    pub(crate) fn local_file(&self, path: &str) -> Option<PathBuf> {
        self.local.as_ref()?.path_to_filesystem(&ObjectPath::from(path)).ok()
    }

    pub(crate) async fn delete(&self, path: &str) {
        match self.objects.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::error!(error = %e, "cannot delete a stored object"),
        }
    }
}

/// Path of an object's content and of its thumbnail in the store.
pub(crate) fn object_path(name: &str) -> String {
    format!("objects/{}/{name}", &name[..2.min(name.len())])
}

pub(crate) fn thumb_path(name: &str) -> String {
    format!("thumbs/{}/{name}", &name[..2.min(name.len())])
}

// ---------------------------------------------------------------------------------------------
// Sessions and access

/// The parties and context of a call session: whether it is live and who its parties are is
/// the switchboard's answer ([`crate::switchboard::Switchboard::live_session`]); the database
/// row is the record of the rest (ticket, item, point) and of an ended session.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub item_id: Uuid,
    pub point_id: Uuid,
    pub terminal_id: Uuid,
    pub operator_id: Uuid,
    /// The switchboard holds the call live (active or held).
    pub live: bool,
    pub ended_at: Option<i64>,
}

/// How long after a call ended an upload begun during the call may still complete (a page
/// scanned at the end of a call, a server restart that closed the session). Later, open uploads
/// of the session are removed.
pub const UPLOAD_GRACE_MS: i64 = 10 * 60 * 1000;

impl SessionInfo {
    /// Calls can still exchange materials.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// An upload already begun may still complete.
    pub fn finishes_uploads(&self, now: i64) -> bool {
        self.is_live() || self.ended_at.is_some_and(|t| t > now - UPLOAD_GRACE_MS)
    }

    pub fn is_terminal(&self, p: &Principal) -> bool {
        p.is_terminal() && p.id == self.terminal_id
    }

    pub fn is_operator(&self, p: &Principal) -> bool {
        !p.is_terminal() && p.role == Role::Operator && p.id == self.operator_id
    }

    /// Supervisors and admins: the only ones who see and play call recordings.
    pub fn is_reviewer(p: &Principal) -> bool {
        !p.is_terminal() && matches!(p.role, Role::Admin | Role::Supervisor)
    }

    /// The two parties (the terminal only while the call is live), supervisors and admins.
    pub fn may_access(&self, p: &Principal) -> bool {
        (self.is_terminal(p) && self.is_live())
            || self.is_operator(p)
            || (!p.is_terminal() && matches!(p.role, Role::Admin | Role::Supervisor))
    }

    pub fn parties(&self) -> Vec<Uuid> {
        vec![self.terminal_id, self.operator_id]
    }
}

/// The call state could not be confirmed (the switchboard did not answer): the client retries.
fn switchboard_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "switchboard_unavailable",
        "暂时无法确认通话状态，请稍后重试 (the call state cannot be confirmed now; retry)",
    )
}

/// The session `id`: its record from the database; whether it is live and its parties from the
/// switchboard, asked only while the record does not say it ended (an ended session never
/// becomes live again). `Ok(None)`: no such session.
pub(crate) async fn session_info(state: &AppState, id: Uuid) -> ApiResult<Option<SessionInfo>> {
    let row = sqlx::query(
        "SELECT s.id, s.ticket_id, t.item_id, t.point_id, s.terminal_id, s.operator_id, s.ended_at \
         FROM call_sessions s JOIN tickets t ON t.id = s.ticket_id WHERE s.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let mut info = SessionInfo {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        ticket_id: parse_id(&r.try_get::<String, _>("ticket_id")?)?,
        item_id: parse_id(&r.try_get::<String, _>("item_id")?)?,
        point_id: parse_id(&r.try_get::<String, _>("point_id")?)?,
        terminal_id: parse_id(&r.try_get::<String, _>("terminal_id")?)?,
        operator_id: parse_id(&r.try_get::<String, _>("operator_id")?)?,
        live: false,
        ended_at: r.try_get("ended_at")?,
    };
    if info.ended_at.is_none() {
        match state.switchboard.live_session(id).await {
            Ok(Some(s)) => {
                info.live = s.state.is_live();
                info.terminal_id = s.terminal;
                info.operator_id = s.operator;
            }
            // Not a session the switchboard holds: over (its record says the rest).
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, session = %id, "call state not confirmed");
                return Err(switchboard_unavailable());
            }
        }
    }
    Ok(Some(info))
}

/// Refuses (403) and audits the attempt with outcome `denied`.
pub(crate) async fn deny(
    state: &AppState,
    p: &Principal,
    action: &'static str,
    target_type: &'static str,
    target: Uuid,
) -> ApiError {
    state.audit(AuditRecord::new(action, target_type).by(p).target(target).outcome("denied")).await;
    ApiError::forbidden()
}

// ---------------------------------------------------------------------------------------------
// Material rows

pub(crate) const SELECT: &str = "SELECT m.id, m.session_id, m.ticket_id, m.item_id, m.slot_id, im.name AS slot_name, \
    m.source, m.filename, m.content_type, m.size, m.sha256, m.object_name, m.status, m.reject_reason, m.uploaded_by, \
    m.reviewed_at, m.archived_at, m.purged_at, m.created_at, m.updated_at, \
    o.wrapped_key, o.thumb_name, o.thumb_size, o.thumb_wrapped_key \
    FROM materials m LEFT JOIN item_materials im ON im.id = m.slot_id \
    LEFT JOIN material_objects o ON o.name = m.object_name";

/// A material row with what is needed to read its content.
#[derive(Debug, Clone)]
pub(crate) struct MaterialRow {
    pub view: MaterialView,
    pub object_name: Option<String>,
    pub wrapped_key: Option<String>,
    pub thumb: Option<(String, u64, String)>,
}

fn status_from(s: &str) -> MaterialStatus {
    match s {
        "viewed" => MaterialStatus::Viewed,
        "accepted" => MaterialStatus::Accepted,
        "rejected" => MaterialStatus::Rejected,
        _ => MaterialStatus::Uploaded,
    }
}

pub(crate) fn status_str(s: MaterialStatus) -> &'static str {
    match s {
        MaterialStatus::Uploaded => "uploaded",
        MaterialStatus::Viewed => "viewed",
        MaterialStatus::Accepted => "accepted",
        MaterialStatus::Rejected => "rejected",
    }
}

/// Upload file names are personal data (they often carry a name or an ID number): stored
/// encrypted like names, bound to their row. Rows from before that are read as they are.
pub(crate) fn seal_name(pii: &crate::pii::Pii, name: &str, context: &str) -> String {
    pii.encrypt(name, context)
}

pub(crate) fn open_name(pii: &crate::pii::Pii, stored: &str, context: &str) -> String {
    if stored.starts_with("v1:") {
        pii.decrypt(stored, context).unwrap_or_else(|_| {
            tracing::error!("a stored file name does not decrypt");
            "（文件名无法解密）".to_owned()
        })
    } else {
        stored.to_owned()
    }
}

pub(crate) fn material_name_context(id: Uuid) -> String {
    format!("material:{id}:filename")
}

pub(crate) fn from_row(r: &AnyRow, pii: &crate::pii::Pii) -> ApiResult<MaterialRow> {
    let object_name: Option<String> = r.try_get("object_name")?;
    let thumb_name: Option<String> = r.try_get("thumb_name")?;
    let thumb_size: Option<i64> = r.try_get("thumb_size")?;
    let thumb_key: Option<String> = r.try_get("thumb_wrapped_key")?;
    let thumb = match (thumb_name, thumb_size, thumb_key) {
        (Some(n), Some(s), Some(k)) => Some((n, u64::try_from(s).unwrap_or(0), k)),
        _ => None,
    };
    let content_type: String = r.try_get("content_type")?;
    let purged = r.try_get::<Option<i64>, _>("purged_at")?.is_some() || object_name.is_none();
    let view = MaterialView {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        session_id: parse_id(&r.try_get::<String, _>("session_id")?)?,
        ticket_id: parse_id(&r.try_get::<String, _>("ticket_id")?)?,
        item_id: parse_id(&r.try_get::<String, _>("item_id")?)?,
        slot_id: r.try_get::<Option<String>, _>("slot_id")?.map(|s| parse_id(&s)).transpose()?,
        slot_name: r.try_get("slot_name")?,
        source: match r.try_get::<String, _>("source")?.as_str() {
            "form" => MaterialSource::Form,
            "recording" => MaterialSource::Recording,
            _ => MaterialSource::Scan,
        },
        filename: open_name(
            pii,
            &r.try_get::<String, _>("filename")?,
            &material_name_context(parse_id(&r.try_get::<String, _>("id")?)?),
        ),
        has_thumbnail: !purged && thumb.is_some(),
        content_type,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        sha256: r.try_get("sha256")?,
        status: status_from(&r.try_get::<String, _>("status")?),
        reject_reason: r.try_get("reject_reason")?,
        uploaded_by: parse_id(&r.try_get::<String, _>("uploaded_by")?)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        reviewed_at: r.try_get("reviewed_at")?,
        archived_at: r.try_get("archived_at")?,
        purged,
    };
    Ok(MaterialRow { view, object_name, wrapped_key: r.try_get("wrapped_key")?, thumb })
}

pub(crate) async fn load(state: &AppState, id: Uuid) -> ApiResult<Option<MaterialRow>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE m.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    r.as_ref().map(|r| from_row(r, &state.pii)).transpose()
}

/// Tells both parties of the session that a material changed.
pub(crate) async fn notify_material(state: &AppState, session: &SessionInfo, material: MaterialView) {
    state
        .switchboard
        .notify(session.parties(), ServerMsg::MaterialChanged { session_id: session.id, material })
        .await;
}

// ---------------------------------------------------------------------------------------------
// Lifecycle: archive and purge

/// Marks the materials of a finished session archived (idempotent). The purge does this too for
/// every session that has ended, so calling it at wrap-up is optional.
pub async fn archive_session(db: &Db, session_id: Uuid) -> ApiResult<u64> {
    let now = now_ms();
    Ok(sqlx::query(
        "UPDATE materials SET archived_at = $1, updated_at = $1 WHERE session_id = $2 AND archived_at IS NULL",
    )
    .bind(now)
    .bind(session_id.to_string())
    .execute(&db.pool)
    .await?
    .rows_affected())
}

/// Retention: archives materials of ended sessions, deletes the content of those archived more
/// than `retention_days` ago (metadata stays, marked purged; each audited `material.purge`),
/// deletes inspection photos taken more than `retention_days` ago (audited
/// `inspection_photo.purge`), removes abandoned partial uploads and expires print jobs nobody
/// took. `actor` is the admin
/// who asked, or `None` at start-up.
pub async fn purge(state: &AppState, actor: Option<&Principal>) -> ApiResult<PurgeReport> {
    let now = now_ms();
    let db = &state.db;
    let archived = sqlx::query(
        "UPDATE materials SET archived_at = COALESCE((SELECT s.ended_at FROM call_sessions s \
         WHERE s.id = materials.session_id), $1), updated_at = $1 \
         WHERE archived_at IS NULL AND session_id IN \
         (SELECT id FROM call_sessions WHERE ended_at IS NOT NULL)",
    )
    .bind(now)
    .execute(&db.pool)
    .await?
    .rows_affected();
    let mut report = PurgeReport { archived, ..PurgeReport::default() };

    let retention_ms = i64::try_from(state.config.materials.retention_days).unwrap_or(180) * 86_400_000;
    let cutoff = now - retention_ms;
    {
        let _commit = state.materials.commit.lock().await;
        let due = sqlx::query(
            "SELECT id, object_name, session_id FROM materials \
             WHERE purged_at IS NULL AND archived_at IS NOT NULL AND archived_at < $1",
        )
        .bind(cutoff)
        .fetch_all(&db.pool)
        .await?;
        let mut names = Vec::new();
        // Inspection photos (`inspections`) are kept as long as materials, counted from when
        // they were taken; the record and its checklist stay.
        let photos = sqlx::query(
            "SELECT f.id, f.object_name, r.point_id FROM inspection_photos f \
             JOIN inspection_records r ON r.id = f.record_id WHERE f.created_at < $1",
        )
        .bind(cutoff)
        .fetch_all(&db.pool)
        .await?;
        for r in &photos {
            let id: String = r.try_get("id")?;
            sqlx::query("DELETE FROM inspection_photos WHERE id = $1").bind(&id).execute(&db.pool).await?;
            names.push(r.try_get::<String, _>("object_name")?);
            let mut rec = AuditRecord::new("inspection_photo.purge", "inspection_photo").target(&id).detail(
                json!({ "point_id": r.try_get::<String, _>("point_id")?, "retention_days": state.config.materials.retention_days }),
            );
            if let Some(p) = actor {
                rec = rec.by(p);
            } else {
                rec.actor_name = "system".into();
            }
            state.audit(rec).await;
            report.inspection_photos_purged += 1;
        }
        for r in &due {
            let id: String = r.try_get("id")?;
            sqlx::query(
                "UPDATE materials SET purged_at = $1, object_name = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(&id)
            .execute(&db.pool)
            .await?;
            if let Some(n) = r.try_get::<Option<String>, _>("object_name")? {
                names.push(n);
            }
            let mut rec = AuditRecord::new("material.purge", "material")
                .target(&id)
                .detail(json!({ "session_id": r.try_get::<String, _>("session_id")?, "retention_days": state.config.materials.retention_days }));
            if let Some(p) = actor {
                rec = rec.by(p);
            } else {
                rec.actor_name = "system".into();
            }
            state.audit(rec).await;
            report.purged += 1;
        }
        names.sort();
        names.dedup();
        for name in names {
            // Inspection photos share the store: an object goes when nothing names it.
            let still: i64 = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM materials WHERE object_name = $1) \
                 + (SELECT COUNT(*) FROM inspection_photos WHERE object_name = $1) AS n",
            )
            .bind(&name)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?;
            if still > 0 {
                continue;
            }
            state.materials.delete(&object_path(&name)).await;
            state.materials.delete(&thumb_path(&name)).await;
            sqlx::query("DELETE FROM material_objects WHERE name = $1").bind(&name).execute(&db.pool).await?;
            report.objects_deleted += 1;
        }
    }

    let stale =
        sqlx::query("SELECT id FROM uploads WHERE expires_at < $1").bind(now).fetch_all(&db.pool).await?;
    for r in &stale {
        let id = parse_id(&r.try_get::<String, _>("id")?)?;
        tus::remove_upload(state, id).await?;
        report.uploads_expired += 1;
    }
    report.uploads_expired += tus::sweep_ended(state).await?;
    report.print_jobs_expired = print::expire_jobs(state, now).await?;
    Ok(report)
}

/// Streams the file at `src` into `objects` at `location` as a multipart upload of `part_size`
/// parts (aborted on any error); used for staged uploads and by backup restores.
pub(crate) async fn put_file(
    objects: &Arc<dyn ObjectStore>,
    part_size: usize,
    location: &ObjectPath,
    src: &std::path::Path,
) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Dir(src.to_owned(), e);
    let mut file = tokio::fs::File::open(src).await.map_err(io)?;
    let upload = objects.put_multipart(location).await?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = w.abort().await;
                return Err(io(e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = w.wait_for_capacity(2).await {
            let _ = w.abort().await;
            return Err(e.into());
        }
        w.write(&buf[..n]);
    }
    w.finish().await?;
    Ok(())
}
