//! Ed25519 signing keys for JWTs, kept in the database (`signing_keys`), their seeds sealed with
//! the master key, so that every node of a cluster signs and verifies with the same ring.
//!
//! One key signs (the newest not retired); retired keys stay in the ring (and in
//! `/.well-known/jwks.json`) until every token they signed has expired, then they are removed.
//! After a compromise an admin retires a key at once ([`KeyRing::retire_now`]): it leaves the
//! ring and the JWKS, and every token it signed is refused. Each node reloads the ring from the
//! database ([`KeyRing::refresh`]) periodically and when told a key changed, so a rotation or
//! retirement on one node reaches the others at once, and within [`REFRESH_INTERVAL`] at most
//! if that notice is lost (cluster mode; a single node changes its ring only itself).
//!
//! Rings of earlier versions lived in `<data-dir>/keys/` as PKCS#8 files: they are imported into
//! the database on the first start and the files removed ([`KeyRing::load_or_create`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::Db;
use crate::pii::Pii;

/// Longest time a node verifies with a ring that another node changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key store I/O error at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key store is corrupt: {0}")]
    Corrupt(String),
    #[error("signing key {0} does not unseal: wrong master key?")]
    Sealed(String),
    #[error("key store database error: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
struct KeyMeta {
    kid: String,
    created_at: i64,
    retired_at: Option<i64>,
}

/// `keyring.json` of the file-based ring of earlier versions.
#[derive(Debug, Deserialize)]
struct LegacyRing {
    keys: Vec<LegacyMeta>,
}

#[derive(Debug, Deserialize)]
struct LegacyMeta {
    kid: String,
    created_at: i64,
    retired_at: Option<i64>,
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
    db: Db,
    pii: Pii,
    /// How long a retired key must stay to verify what it signed.
    keep_retired_ms: i64,
    ring: Arc<RwLock<Ring>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("active", &self.read().active).finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_owned(), source }
}

fn context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

impl KeyRing {
    /// Loads the ring from the database, importing a file-based ring from `legacy_dir` (then
    /// removing its files) or creating a first key when the database has none.
    pub async fn load_or_create(
        db: &Db,
        pii: &Pii,
        legacy_dir: &Path,
        keep_retired_ms: i64,
        now: i64,
    ) -> Result<Self, KeyError> {
        let ring = Self {
            db: db.clone(),
            pii: pii.clone(),
            keep_retired_ms,
            ring: Arc::new(RwLock::new(Ring { active: String::new(), keys: BTreeMap::new() })),
        };
        let have: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM signing_keys").fetch_one(&db.pool).await?.try_get("n")?;
        if have == 0 {
            ring.import_legacy(legacy_dir).await?;
        }
        ring.refresh().await?;
        if ring.read().keys.is_empty() {
            ring.rotate(now).await?;
        }
        Ok(ring)
    }

    /// Moves a file-based ring of an earlier version into the database, then removes the
    /// private key files (the sealed copies in the database are the only ones left).
    async fn import_legacy(&self, dir: &Path) -> Result<(), KeyError> {
        let ring_path = dir.join("keyring.json");
        if !ring_path.exists() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&ring_path).map_err(io(&ring_path))?;
        let file: LegacyRing = serde_json::from_str(&text).map_err(|e| KeyError::Corrupt(e.to_string()))?;
        let mut files = vec![ring_path.clone()];
        for meta in &file.keys {
            let path = dir.join(format!("{}.pk8", meta.kid));
            let der = std::fs::read(&path).map_err(io(&path))?;
            let sk = SigningKey::from_pkcs8_der(&der)
                .map_err(|e| KeyError::Corrupt(format!("{}: {e}", meta.kid)))?;
            self.insert(&meta.kid, &sk, meta.created_at, meta.retired_at).await?;
            files.push(path);
        }
        for f in files {
            std::fs::remove_file(&f).map_err(io(&f))?;
        }
        let _ = std::fs::remove_dir(dir);
        tracing::info!(keys = file.keys.len(), dir = %dir.display(), "signing keys moved into the database");
        Ok(())
    }

    async fn insert(
        &self,
        kid: &str,
        sk: &SigningKey,
        created_at: i64,
        retired_at: Option<i64>,
    ) -> Result<(), KeyError> {
        let sealed = self.pii.wrap_key(&sk.to_bytes(), &context(kid));
        sqlx::query(
            "INSERT INTO signing_keys (kid, sealed_seed, created_at, retired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(sealed)
        .bind(created_at)
        .bind(retired_at)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reloads the ring from the database (another node may have rotated or retired a key).
    /// Returns whether the set of keys or the active key changed.
    pub async fn refresh(&self) -> Result<bool, KeyError> {
        let rows = sqlx::query("SELECT kid, sealed_seed, created_at, retired_at FROM signing_keys")
            .fetch_all(&self.db.pool)
            .await?;
        let mut loaded = Vec::with_capacity(rows.len());
        for row in rows {
            let meta = KeyMeta {
                kid: row.try_get("kid")?,
                created_at: row.try_get("created_at")?,
                retired_at: row.try_get("retired_at")?,
            };
            let sealed: String = row.try_get("sealed_seed")?;
            loaded.push((meta, sealed));
        }
        // The newest key not retired signs; ties (two nodes creating a first key at once) go
        // to the larger kid, so every node picks the same one.
        let active = loaded
            .iter()
            .filter(|(m, _)| m.retired_at.is_none())
            .max_by(|(a, _), (b, _)| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .map(|(m, _)| m.kid.clone())
            .unwrap_or_default();
        let mut keys = BTreeMap::new();
        {
            let old = self.read();
            for (meta, sealed) in loaded {
                let key = match old.keys.get(&meta.kid) {
                    Some(k) => Key {
                        meta: meta.clone(),
                        signing: k.signing.clone(),
                        encoding: k.encoding.clone(),
                        decoding: k.decoding.clone(),
                        public_x: k.public_x.clone(),
                    },
                    None => {
                        let seed = self
                            .pii
                            .unwrap_key(&sealed, &context(&meta.kid))
                            .map_err(|_| KeyError::Sealed(meta.kid.clone()))?;
                        make_key(meta.clone(), &SigningKey::from_bytes(&seed))?
                    }
                };
                keys.insert(meta.kid, key);
            }
        }
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        let changed = ring.active != active || !ring.keys.keys().eq(keys.keys());
        *ring = Ring { active, keys };
        Ok(changed)
    }

    /// Makes a new signing key; the old one keeps verifying until its tokens have expired.
    /// Returns the new key's `kid`.
    pub async fn rotate(&self, now: i64) -> Result<String, KeyError> {
        let sk = SigningKey::generate(&mut rand::rngs::OsRng);
        let digest = Sha256::digest(sk.verifying_key().as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
        let sealed = self.pii.wrap_key(&sk.to_bytes(), &context(&kid));
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, sealed_seed, created_at, retired_at) VALUES ($1, $2, $3, NULL)",
        )
        .bind(&kid)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Drop retired keys whose tokens can no longer be valid.
        sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(now - self.keep_retired_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.refresh().await?;
        Ok(kid)
    }

    /// Removes `kid` from the ring at once (after a compromise): tokens it signed are refused
    /// from now on. Retiring the active key first makes a new one. `Ok(None)` when no such
    /// key; otherwise the active key's `kid` afterwards.
    pub async fn retire_now(&self, kid: &str, now: i64) -> Result<Option<String>, KeyError> {
        self.refresh().await?;
        if !self.read().keys.contains_key(kid) {
            return Ok(None);
        }
        if self.read().active == kid {
            self.rotate(now).await?;
        }
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1 AND retired_at IS NOT NULL")
            .bind(kid)
            .execute(&self.db.pool)
            .await?;
        self.refresh().await?;
        let ring = self.read();
        if ring.keys.contains_key(kid) {
            return Err(KeyError::Corrupt("cannot retire the only key".into()));
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

fn make_key(meta: KeyMeta, sk: &SigningKey) -> Result<Key, KeyError> {
    let der = sk.to_pkcs8_der().map_err(|e| KeyError::Corrupt(e.to_string()))?;
    let public = sk.verifying_key().to_bytes();
    Ok(Key {
        meta,
        signing: sk.clone(),
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        decoding: DecodingKey::from_ed_der(&public),
        public_x: URL_SAFE_NO_PAD.encode(public),
    })
}
