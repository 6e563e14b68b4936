//! Ed25519 signing keys for JWTs, persisted in `<data-dir>/keys/`.
//!
//! One key signs; retired keys stay in the ring (and in `/.well-known/jwks.json`) until every
//! token they signed has expired, then they are removed. After a compromise an admin retires a
//! key at once ([`KeyRing::retire_now`]): it leaves the ring and the JWKS, and every token it
//! signed is refused. Private keys are PKCS#8 DER files with mode 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key store I/O error at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key store is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyMeta {
    kid: String,
    created_at: i64,
    retired_at: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RingFile {
    active: String,
    keys: Vec<KeyMeta>,
}

struct Key {
    meta: KeyMeta,
    signing: SigningKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
}

struct Ring {
    active: String,
    keys: BTreeMap<String, Key>,
}

/// Cheap-to-clone handle to the key ring.
#[derive(Clone)]
pub struct KeyRing {
    dir: PathBuf,
    /// How long a retired key must stay to verify what it signed.
    keep_retired_ms: i64,
    ring: Arc<RwLock<Ring>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_owned(), source }
}

impl KeyRing {
    /// Loads the ring from `dir`, creating a first key if there is none.
    pub fn load_or_create(dir: &Path, keep_retired_ms: i64, now: i64) -> Result<Self, KeyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        restrict_dir(dir)?;
        let ring_path = dir.join("keyring.json");
        let ring = if ring_path.exists() {
            let text = std::fs::read_to_string(&ring_path).map_err(io(&ring_path))?;
            let file: RingFile = serde_json::from_str(&text).map_err(|e| KeyError::Corrupt(e.to_string()))?;
            let mut keys = BTreeMap::new();
            for meta in file.keys {
                let path = dir.join(format!("{}.pk8", meta.kid));
                let der = std::fs::read(&path).map_err(io(&path))?;
                let sk = SigningKey::from_pkcs8_der(&der)
                    .map_err(|e| KeyError::Corrupt(format!("{}: {e}", meta.kid)))?;
                keys.insert(meta.kid.clone(), make_key(meta, &sk, der));
            }
            if !keys.contains_key(&file.active) {
                return Err(KeyError::Corrupt("active key missing".into()));
            }
            Ring { active: file.active, keys }
        } else {
            Ring { active: String::new(), keys: BTreeMap::new() }
        };
        let ring = Self { dir: dir.to_owned(), keep_retired_ms, ring: Arc::new(RwLock::new(ring)) };
        if ring.read().keys.is_empty() {
            ring.rotate(now)?;
        }
        Ok(ring)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a new signing key; the old one keeps verifying until its tokens have expired.
    /// Returns the new key's `kid`.
    pub fn rotate(&self, now: i64) -> Result<String, KeyError> {
        let sk = SigningKey::generate(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().map_err(|e| KeyError::Corrupt(e.to_string()))?.as_bytes().to_vec();
        let digest = Sha256::digest(sk.verifying_key().as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
        let path = self.dir.join(format!("{kid}.pk8"));
        write_private(&path, &der)?;
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        let active = ring.active.clone();
        if let Some(old) = ring.keys.get_mut(&active) {
            old.meta.retired_at = Some(now);
        }
        let meta = KeyMeta { kid: kid.clone(), created_at: now, retired_at: None };
        ring.keys.insert(kid.clone(), make_key(meta, &sk, der));
        ring.active = kid.clone();
        // Drop retired keys whose tokens can no longer be valid.
        let expired: Vec<String> = ring
            .keys
            .values()
            .filter(|k| k.meta.retired_at.is_some_and(|r| r + self.keep_retired_ms < now))
            .map(|k| k.meta.kid.clone())
            .collect();
        for kid in &expired {
            ring.keys.remove(kid);
            let _ = std::fs::remove_file(self.dir.join(format!("{kid}.pk8")));
        }
        self.save(&ring)?;
        Ok(kid)
    }

    fn save(&self, ring: &Ring) -> Result<(), KeyError> {
        let file = RingFile {
            active: ring.active.clone(),
            keys: ring.keys.values().map(|k| k.meta.clone()).collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| KeyError::Corrupt(e.to_string()))?;
        let path = self.dir.join("keyring.json");
        let tmp = self.dir.join("keyring.json.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Removes `kid` from the ring at once (after a compromise): tokens it signed are refused
    /// from now on. Retiring the active key first makes a new one. `Ok(None)` when no such
    /// key; otherwise the active key's `kid` afterwards.
    pub fn retire_now(&self, kid: &str, now: i64) -> Result<Option<String>, KeyError> {
        if !self.read().keys.contains_key(kid) {
            return Ok(None);
        }
        if self.read().active == kid {
            self.rotate(now)?;
        }
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        if ring.active == kid {
            return Err(KeyError::Corrupt("cannot retire the only key".into()));
        }
        ring.keys.remove(kid);
        self.save(&ring)?;
        let path = self.dir.join(format!("{kid}.pk8"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(KeyError::Io { path, source: e }),
        }
        Ok(Some(ring.active.clone()))
    }

    /// Signs `msg` with the active key (Ed25519): `(kid, signature, public key)`. Used for the
    /// audit log's checkpoints.
    pub fn sign_with_public(&self, msg: &[u8]) -> (String, [u8; 64], [u8; 32]) {
        use ed25519_dalek::Signer;
        let ring = self.read();
        let key = &ring.keys[&ring.active];
        (key.meta.kid.clone(), key.signing.sign(msg).to_bytes(), key.signing.verifying_key().to_bytes())
    }

    /// The active key's `kid` and encoding key.
    pub fn signing(&self) -> (String, EncodingKey) {
        let ring = self.read();
        let key = &ring.keys[&ring.active];
        (key.meta.kid.clone(), key.encoding.clone())
    }

    pub fn decoding(&self, kid: &str) -> Option<DecodingKey> {
        self.read().keys.get(kid).map(|k| k.decoding.clone())
    }

    /// RFC 7517 key set of every key that may still verify tokens.
    pub fn jwks(&self) -> serde_json::Value {
        let ring = self.read();
        let keys: Vec<_> = ring
            .keys
            .values()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": k.meta.kid, "x": k.public_x,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn make_key(meta: KeyMeta, sk: &SigningKey, der: Vec<u8>) -> Key {
    let public = sk.verifying_key().to_bytes();
    Key {
        meta,
        signing: sk.clone(),
        encoding: EncodingKey::from_ed_der(&der),
        decoding: DecodingKey::from_ed_der(&public),
        public_x: URL_SAFE_NO_PAD.encode(public),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    std::fs::write(path, bytes).map_err(io(path))
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> Result<(), KeyError> {
    Ok(())
}
