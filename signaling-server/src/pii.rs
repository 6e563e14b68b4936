//! Personal data at rest (PIPL): residents' ID numbers and names are stored encrypted with
//! AES-256-GCM and matched only through a keyed hash (HMAC-SHA256), never in the clear.
//!
//! Both keys are derived from one 32-byte master key, read from `BANGBAN_MASTER_KEY_FILE` or,
//! on the embedded default, `<data-dir>/master.key` (created with mode 0600 on first start).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("master key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("master key must be 32 bytes (raw or base64), found {0}")]
    KeyLength(usize),
    #[error("ciphertext is corrupt or was encrypted under another key")]
    Decrypt,
    #[error("master key file {0} is readable by group or others (mode {1:o}): chmod 600 it")]
    KeyPermissions(String, u32),
}

/// Field encryption and keyed hashing. Cheap to clone.
#[derive(Clone)]
pub struct Pii {
    cipher: Aes256Gcm,
    hash_key: [u8; 32],
    /// Key-encryption key for the data keys of stored materials (envelope encryption).
    kek: Aes256Gcm,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pii { .. }")
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl Pii {
    pub fn from_master(master: &[u8; 32]) -> Self {
        let enc = derive(master, b"bangban/pii/aes-256-gcm/v1");
        let kek = derive(master, b"bangban/materials/kek/aes-256-gcm/v1");
        Self {
            cipher: Aes256Gcm::new(&enc.into()),
            hash_key: derive(master, b"bangban/pii/hmac-sha256/v1"),
            kek: Aes256Gcm::new(&kek.into()),
        }
    }

    /// Loads the master key from `path`, creating a random one (mode 0600) if it is missing.
    /// Refuses a key file that group or others may read.
    pub fn load_or_create(path: &Path) -> Result<Self, PiiError> {
        let err = |e| PiiError::KeyFile(path.display().to_string(), e);
        if !path.exists() {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private(path, B64.encode(key).as_bytes()).map_err(err)?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(PiiError::KeyPermissions(path.display().to_string(), mode));
            }
        }
        let bytes = std::fs::read(path).map_err(err)?;
        let trimmed = String::from_utf8_lossy(&bytes).trim().to_owned();
        let raw = if bytes.len() == 32 { bytes } else { B64.decode(trimmed.as_bytes()).unwrap_or_default() };
        let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| PiiError::KeyLength(raw.len()))?;
        Ok(Self::from_master(&key))
    }

    /// Encrypts `plain`, bound to `context` (e.g. `ticket:<id>:id_number`) so a ciphertext
    /// copied to another row does not decrypt. Output: `v1:` + base64(nonce ‖ ciphertext).
    pub fn encrypt(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1:{}", B64.encode(out))
    }

    /// Free text that may name or identify a resident (wrap-up and transfer notes, rating
    /// comments), encrypted like names: `None` stays `None`.
    pub fn seal(&self, plain: Option<&str>, context: &str) -> Option<String> {
        plain.map(|p| self.encrypt(p, context))
    }

    /// Reads what [`Pii::seal`] stored. Rows written before notes were encrypted hold plain
    /// text and are returned as they are; a ciphertext that does not decrypt reads as `None`.
    pub fn open(&self, stored: Option<String>, context: &str) -> Option<String> {
        let stored = stored?;
        if !stored.starts_with("v1:") {
            return Some(stored);
        }
        self.decrypt(&stored, context)
            .map_err(|_| tracing::error!(context, "stored note does not decrypt"))
            .ok()
    }

    /// Binding contexts of the encrypted free-text fields.
    pub fn notes_context(session: uuid::Uuid) -> String {
        format!("session:{session}:notes")
    }
    pub fn transfer_note_context(session: uuid::Uuid) -> String {
        format!("session:{session}:transfer_note")
    }
    pub fn comment_context(session: uuid::Uuid) -> String {
        format!("rating:{session}:comment")
    }

    pub fn decrypt(&self, stored: &str, context: &str) -> Result<String, PiiError> {
        let data = stored.strip_prefix("v1:").and_then(|b| B64.decode(b).ok()).ok_or(PiiError::Decrypt)?;
        if data.len() < 12 + 16 {
            return Err(PiiError::Decrypt);
        }
        let (nonce, ct) = data.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| PiiError::Decrypt)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| PiiError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| PiiError::Decrypt)
    }

    /// Keyed hash for exact matching (e.g. "has this ID number been served today?").
    pub fn keyed_hash(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl Pii {
    /// Wraps a per-object data key under the key-encryption key, bound to `context` (e.g.
    /// `object:<name>`). Output: `k1:` + base64(nonce ‖ ciphertext).
    pub fn wrap_key(&self, key: &[u8; 32], context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .kek
            .encrypt(&Nonce::from(nonce), Payload { msg: key, aad: context.as_bytes() })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("k1:{}", B64.encode(out))
    }

    /// Unwraps a data key wrapped by [`wrap_key`](Self::wrap_key) with the same `context`.
    pub fn unwrap_key(&self, wrapped: &str, context: &str) -> Result<[u8; 32], PiiError> {
        let data = wrapped.strip_prefix("k1:").and_then(|b| B64.decode(b).ok()).ok_or(PiiError::Decrypt)?;
        if data.len() != 12 + 32 + 16 {
            return Err(PiiError::Decrypt);
        }
        let (nonce, ct) = data.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| PiiError::Decrypt)?;
        let key = self
            .kek
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| PiiError::Decrypt)?;
        key.as_slice().try_into().map_err(|_| PiiError::Decrypt)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_sealed_bound_to_their_row_and_old_plain_rows_still_read() {
        let p = Pii::from_master(&[7u8; 32]);
        let s = uuid::Uuid::new_v4();
        let sealed = p.seal(Some("居民王小明说身份证丢了"), &Pii::notes_context(s)).expect("sealed");
        assert!(sealed.starts_with("v1:") && !sealed.contains("王小明"));
        assert_eq!(
            p.open(Some(sealed.clone()), &Pii::notes_context(s)).as_deref(),
            Some("居民王小明说身份证丢了")
        );
        assert_eq!(p.open(Some(sealed), &Pii::notes_context(uuid::Uuid::new_v4())), None, "other row");
        assert_eq!(p.open(Some("旧记录".into()), &Pii::notes_context(s)).as_deref(), Some("旧记录"));
        assert_eq!(p.seal(None, "x"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_group_or_world_readable_master_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        Pii::load_or_create(&path).expect("created 0600");
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let Err(e) = Pii::load_or_create(&path) else { panic!("mode {mode:o} accepted") };
            assert!(matches!(e, PiiError::KeyPermissions(_, m) if m == mode), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        Pii::load_or_create(&path).expect("owner-only is fine");
    }

    #[test]
    fn round_trip_bound_to_context_and_keyed_hash() {
        let pii = Pii::from_master(&[7u8; 32]);
        let ct = pii.encrypt("310101199001011234", "ticket:1:id_number");
        assert!(!ct.contains("310101199001011234"));
        assert_eq!(pii.decrypt(&ct, "ticket:1:id_number").ok().as_deref(), Some("310101199001011234"));
        assert!(pii.decrypt(&ct, "ticket:2:id_number").is_err(), "copied to another row: refused");
        assert_ne!(ct, pii.encrypt("310101199001011234", "ticket:1:id_number"), "random nonce");
        let other = Pii::from_master(&[8u8; 32]);
        assert!(other.decrypt(&ct, "ticket:1:id_number").is_err());
        assert_eq!(pii.keyed_hash("x"), pii.keyed_hash("x"));
        assert_ne!(pii.keyed_hash("x"), other.keyed_hash("x"));
        for junk in ["", "v1:", "v1:AAAA", "v2:xyz", "v1:!!!!"] {
            assert!(pii.decrypt(junk, "c").is_err());
        }
    }

    #[test]
    fn data_keys_wrap_and_unwrap_bound_to_context() {
        let pii = Pii::from_master(&[7u8; 32]);
        let key = [42u8; 32];
        let w = pii.wrap_key(&key, "object:a");
        assert_eq!(pii.unwrap_key(&w, "object:a").ok(), Some(key));
        assert!(pii.unwrap_key(&w, "object:b").is_err());
        assert!(Pii::from_master(&[8u8; 32]).unwrap_key(&w, "object:a").is_err());
        assert!(pii.decrypt(&w, "object:a").is_err(), "not a PII ciphertext");
        assert!(pii.unwrap_key("k1:AAAA", "object:a").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("master.key");
        let a = Pii::load_or_create(&path).expect("create");
        let b = Pii::load_or_create(&path).expect("reload");
        let ct = a.encrypt("张三", "ctx");
        assert_eq!(b.decrypt(&ct, "ctx").ok().as_deref(), Some("张三"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad.key"), b"short").expect("write");
        assert!(Pii::load_or_create(&dir.path().join("bad.key")).is_err());
    }
}
