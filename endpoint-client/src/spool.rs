//! The scan spool (`<state dir>/spool`): every scanned page is stored here durably before any
//! upload starts, and removed only after the server confirmed the upload (the final tus `204`).
//! A page is two files: `<id>.<ext>` (the content) and `<id>.json` (an [`Entry`]: the session,
//! the material slot, the SHA-256, the tus upload URL once created). Both are written to a
//! temporary name, fsynced and renamed, then the directory is fsynced, so a crash or power cut
//! leaves either the whole page or nothing. Pages the server refused for good are kept for a
//! technician in `spool/rejected/`, never in clear: the content is sealed with AES-256-GCM under
//! the spool's own key (`spool/rejected.key`, mode 0600) and the page is deleted after
//! [`REJECTED_KEEP`] (at each open of the spool).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a refused page is kept (sealed) for a technician.
pub const REJECTED_KEEP: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub id: Uuid,
    pub session_id: Uuid,
    #[serde(default)]
    pub slot_id: Option<Uuid>,
    /// Display name sent as tus `filename`.
    pub filename: String,
    /// File name of the content inside the spool (`<id>.jpg`).
    pub file: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the whole content.
    pub sha256: String,
    pub created_at_ms: u64,
    /// The tus upload (`Location`) once created.
    #[serde(default)]
    pub upload_url: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// A part of the call's recording (sent as tus metadata `recording_part`, `duration_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingPart>,
}

/// Which part of a call's recording a spooled file is, and the recording's measured length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingPart {
    /// 1: the terminal's camera and microphone; 2: the operator's camera and voice.
    pub part: u8,
    pub duration_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes `bytes` to `path` via a fsynced temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent());
    Ok(())
}

fn sync_dir(dir: Option<&Path>) {
    if let Some(d) = dir
        && let Ok(f) = std::fs::File::open(d)
    {
        let _ = f.sync_all();
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Spool {
    /// Opens (creates) the spool and removes leftovers of interrupted writes.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("rejected"))?;
        let spool = Self { dir };
        spool.prune_rejected(std::time::SystemTime::now(), REJECTED_KEEP);
        let known: std::collections::HashSet<String> = spool.list().into_iter().map(|e| e.file).collect();
        for ent in std::fs::read_dir(&spool.dir)?.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let is_file = ent.file_type().is_ok_and(|t| t.is_file());
            if is_file && !name.ends_with(".json") && !known.contains(&name) {
                let _ = std::fs::remove_file(ent.path());
            }
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh path inside the spool for a scanner to write to (removed at the next open if
    /// never added).
    pub fn scratch_path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("scan-{}.{ext}.part", Uuid::new_v4().simple()))
    }

    /// Takes the finished file at `scratch` (inside the spool) into the spool.
    pub fn add(
        &self,
        scratch: &Path,
        session_id: Uuid,
        slot_id: Option<Uuid>,
        filename: &str,
        content_type: &str,
        ext: &str,
    ) -> std::io::Result<Entry> {
        self.add_part(scratch, session_id, slot_id, filename, content_type, ext, None)
    }

    /// [`Spool::add`], for a part of the call's recording when `recording` is set.
    #[allow(clippy::too_many_arguments)]
    pub fn add_part(
        &self,
        scratch: &Path,
        session_id: Uuid,
        slot_id: Option<Uuid>,
        filename: &str,
        content_type: &str,
        ext: &str,
        recording: Option<RecordingPart>,
    ) -> std::io::Result<Entry> {
        // Hashed as it is read: a call recording may be hundreds of megabytes.
        let (size, sha256) = {
            use std::io::Read;
            let mut f = std::fs::File::open(scratch)?;
            f.sync_all()?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            (size, hex::encode(hasher.finalize()))
        };
        if size == 0 {
            return Err(std::io::Error::other("empty scan"));
        }
        let id = Uuid::new_v4();
        let file = format!("{}.{ext}", id.simple());
        std::fs::rename(scratch, self.dir.join(&file))?;
        let entry = Entry {
            id,
            session_id,
            slot_id,
            filename: filename.to_owned(),
            file,
            content_type: content_type.to_owned(),
            size,
            sha256,
            created_at_ms: now_ms(),
            upload_url: None,
            attempts: 0,
            last_error: None,
            recording,
        };
        self.save(&entry)?;
        Ok(entry)
    }

    fn meta_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.json", id.simple()))
    }

    pub fn content_path(&self, e: &Entry) -> PathBuf {
        self.dir.join(&e.file)
    }

    /// Persists the entry (its upload URL, attempts).
    pub fn save(&self, e: &Entry) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(e).map_err(std::io::Error::other)?;
        write_atomic(&self.meta_path(e.id), &bytes)
    }

    /// Waiting pages, oldest first.
    pub fn list(&self) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return vec![] };
        let mut out: Vec<Entry> = rd
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|d| std::fs::read(d.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Entry>(&b).ok())
            .filter(|e| self.content_path(e).exists())
            .collect();
        out.sort_by_key(|e| (e.created_at_ms, e.id));
        out
    }

    /// The upload is confirmed: forget the page (metadata first, then the content).
    pub fn remove(&self, e: &Entry) -> std::io::Result<()> {
        std::fs::remove_file(self.meta_path(e.id))?;
        let _ = std::fs::remove_file(self.content_path(e));
        sync_dir(Some(&self.dir));
        Ok(())
    }

    /// The server refused the page for good: keep it aside with the reason, sealed
    /// (`rejected/<id>.sealed`: nonce ‖ AES-256-GCM ciphertext, the page id as associated data);
    /// the clear content is removed.
    pub fn reject(&self, e: &Entry, reason: &str) -> std::io::Result<()> {
        let dead = self.dir.join("rejected");
        let mut e2 = e.clone();
        e2.last_error = Some(reason.to_owned());
        e2.file = format!("{}.sealed", e.id.simple());
        let plain = std::fs::read(self.content_path(e))?;
        let sealed = self.seal(e.id, &plain)?;
        write_atomic(&dead.join(&e2.file), &sealed)?;
        let bytes = serde_json::to_vec_pretty(&e2).map_err(std::io::Error::other)?;
        write_atomic(&dead.join(format!("{}.json", e.id.simple())), &bytes)?;
        std::fs::remove_file(self.meta_path(e.id))?;
        std::fs::remove_file(self.content_path(e))?;
        sync_dir(Some(&self.dir));
        Ok(())
    }

    /// Refused pages kept, oldest first.
    pub fn rejected(&self) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("rejected")) else { return vec![] };
        let mut out: Vec<Entry> = rd
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|d| std::fs::read(d.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Entry>(&b).ok())
            .collect();
        out.sort_by_key(|e| (e.created_at_ms, e.id));
        out
    }

    /// The content of a refused page (for a technician).
    pub fn open_rejected(&self, e: &Entry) -> std::io::Result<Vec<u8>> {
        use aes_gcm::aead::{Aead, Payload};
        let sealed = std::fs::read(self.dir.join("rejected").join(&e.file))?;
        if sealed.len() < 12 + 16 {
            return Err(std::io::Error::other("sealed page too short"));
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(std::io::Error::other)?;
        self.cipher()?
            .decrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: ct, aad: e.id.as_bytes() })
            .map_err(|_| std::io::Error::other("sealed page does not open (tampered, or another key)"))
    }

    /// Deletes refused pages older than `keep` at `now` (by their sealed file's time).
    pub fn prune_rejected(&self, now: std::time::SystemTime, keep: std::time::Duration) -> usize {
        let dead = self.dir.join("rejected");
        let Ok(rd) = std::fs::read_dir(&dead) else { return 0 };
        let mut n = 0;
        for d in rd.flatten() {
            let old = d
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > keep);
            if old && d.file_name().to_string_lossy().ends_with(".json") {
                let _ = std::fs::remove_file(d.path());
                n += 1;
            } else if old {
                let _ = std::fs::remove_file(d.path());
            }
        }
        sync_dir(Some(&dead));
        n
    }

    fn cipher(&self) -> std::io::Result<aes_gcm::Aes256Gcm> {
        use aes_gcm::KeyInit;
        let path = self.dir.join("rejected.key");
        let key = match std::fs::read(&path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                use rand::RngCore;
                let mut k = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut k);
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                let mut f = o.open(&path)?;
                f.write_all(&k)?;
                f.sync_all()?;
                sync_dir(Some(&self.dir));
                k
            }
        };
        aes_gcm::Aes256Gcm::new_from_slice(&key).map_err(std::io::Error::other)
    }

    fn seal(&self, id: Uuid, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        use aes_gcm::aead::{Aead, Payload};
        use rand::RngCore;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher()?
            .encrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: plain, aad: id.as_bytes() })
            .map_err(|_| std::io::Error::other("cannot seal a refused page"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_survive_reopening_until_removed_and_scratch_files_are_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path().join("spool")).expect("open");
        let scratch = spool.scratch_path("jpg");
        std::fs::write(&scratch, b"\xff\xd8page one").expect("write");
        let session = Uuid::new_v4();
        let mut e = spool.add(&scratch, session, None, "扫描件-1.jpg", "image/jpeg", "jpg").expect("add");
        assert_eq!(e.sha256, sha256_hex(b"\xff\xd8page one"));
        e.upload_url = Some("/api/v1/uploads/x".into());
        spool.save(&e).expect("save");
        let leftover = spool.scratch_path("jpg");
        std::fs::write(&leftover, b"half").expect("write");

        let spool = Spool::open(dir.path().join("spool")).expect("reopen");
        assert_eq!(spool.list(), vec![e.clone()], "the page and its upload URL survive");
        assert!(!leftover.exists(), "interrupted scans are removed");
        spool.remove(&e).expect("remove");
        assert!(spool.list().is_empty());
        assert!(!spool.content_path(&e).exists());

        let scratch = spool.scratch_path("jpg");
        let page = b"\xff\xd8ID 110105195001010018 ZHANG-SAN".to_vec();
        std::fs::write(&scratch, &page).expect("write");
        let e = spool.add(&scratch, session, None, "x.jpg", "image/jpeg", "jpg").expect("add");
        spool.reject(&e, "session is over").expect("reject");
        assert!(spool.list().is_empty());
        let kept = spool.rejected();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].last_error.as_deref(), Some("session is over"));
        assert_eq!(spool.open_rejected(&kept[0]).expect("opens"), page);
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("dir").flatten() {
            if e.path().is_dir() {
                out.extend(files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[test]
    fn refused_pages_are_never_in_clear_and_go_after_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path().join("spool")).expect("open");
        let marker = b"110105195001010018";
        let scratch = spool.scratch_path("png");
        std::fs::write(&scratch, [&b"\x89PNG"[..], marker].concat()).expect("write");
        let e = spool.add(&scratch, Uuid::new_v4(), None, "p.png", "image/png", "png").expect("add");
        spool.reject(&e, "415: unsupported").expect("reject");
        for f in files(spool.dir()) {
            let bytes = std::fs::read(&f).expect("read");
            assert!(!bytes.windows(marker.len()).any(|w| w == marker), "clear page in {}", f.display());
        }
        // Hostile: a tampered sealed page, or one moved under another id, does not open.
        let kept = spool.rejected().remove(0);
        let sealed = spool.dir().join("rejected").join(&kept.file);
        let mut bytes = std::fs::read(&sealed).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&sealed, &bytes).expect("write");
        assert!(spool.open_rejected(&kept).is_err());
        let mut moved = kept.clone();
        moved.id = Uuid::new_v4();
        assert!(spool.open_rejected(&moved).is_err());
        // Within the bound it stays; past it, it is gone.
        let now = std::time::SystemTime::now();
        assert_eq!(spool.prune_rejected(now, REJECTED_KEEP), 0);
        assert_eq!(spool.prune_rejected(now + REJECTED_KEEP * 2, REJECTED_KEEP), 1);
        assert!(spool.rejected().is_empty());
        assert!(std::fs::read_dir(spool.dir().join("rejected")).expect("dir").next().is_none());
    }
}
