//! Append-only audit log with a SHA-256 hash chain: each entry's hash covers the previous
//! entry's hash and its own fields, so editing or deleting a row breaks the chain, which
//! [`Audit::verify`] detects. The chain's head is anchored outside the database: periodic
//! [`checkpoint`]s, signed with the server's Ed25519 key, go to `<data-dir>/audit-checkpoints.jsonl`
//! and to the log, so deleting the newest rows, or rewriting rows and re-hashing the chain after
//! them, no longer matches a checkpoint. Verification streams the rows (constant memory).

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::db::{Db, new_id, now_ms, parse_id};

/// What one audit entry records.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub source_ip: Option<String>,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<String>,
    pub outcome: &'static str,
    pub detail: Value,
}

impl AuditRecord {
    pub fn new(action: &'static str, target_type: &'static str) -> Self {
        Self {
            actor_id: None,
            actor_name: String::new(),
            source_ip: None,
            action,
            target_type,
            target_id: None,
            outcome: "success",
            detail: Value::Object(Default::default()),
        }
    }
    pub fn by(mut self, p: &crate::auth::Principal) -> Self {
        self.actor_id = Some(p.id);
        self.actor_name = p.name.clone();
        self.source_ip = p.source_ip.clone();
        self
    }
    pub fn target(mut self, id: impl ToString) -> Self {
        self.target_id = Some(id.to_string());
        self
    }
    pub fn outcome(mut self, outcome: &'static str) -> Self {
        self.outcome = outcome;
        self
    }
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain's head, cached; appends are serialised through it.
#[derive(Debug)]
pub struct Audit {
    head: Mutex<Option<(i64, String)>>,
}

#[allow(clippy::too_many_arguments)]
fn entry_hash(
    prev: &str,
    seq: i64,
    id: &str,
    at: i64,
    actor_id: Option<&str>,
    actor_name: &str,
    source_ip: Option<&str>,
    action: &str,
    target_type: &str,
    target_id: Option<&str>,
    outcome: &str,
    detail: &str,
) -> String {
    let canonical = serde_json::json!([
        prev,
        seq,
        id,
        at,
        actor_id,
        actor_name,
        source_ip,
        action,
        target_type,
        target_id,
        outcome,
        detail
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// How often an append retries after another append took its sequence number. Each conflict
/// means another entry landed, so an append fails only when more than this many appends
/// overtake it one after another (a transaction holding SQLite's write lock can take the head
/// between our reading it and our insert once per waiting transaction; five was seen to be too
/// few with a dozen at once).
const MAX_APPEND_ATTEMPTS: usize = 64;

/// Appends one entry on `conn`, inside the caller's transaction (the switchboard's group
/// commit, an admin change): the change and its audit row commit together or not at all.
///
/// It never waits for [`Audit`]'s in-process head: a transaction that has written holds the
/// database's write lock (SQLite) while an [`Audit::append`] may hold the head and wait for that
/// lock, so waiting here for the head could deadlock. The head is read inside the transaction
/// instead; when another append took the same sequence number first (PostgreSQL: a concurrent
/// transaction), the insert is rolled back to a savepoint and tried again on the new head, so
/// the caller's change is not lost and the chain does not fork.
pub async fn append_on(conn: &mut sqlx::AnyConnection, rec: &AuditRecord) -> Result<(), sqlx::Error> {
    for _ in 0..MAX_APPEND_ATTEMPTS {
        sqlx::raw_sql("SAVEPOINT audit_append").execute(&mut *conn).await?;
        match append_at_head(conn, rec).await {
            Ok(()) => {
                sqlx::raw_sql("RELEASE SAVEPOINT audit_append").execute(&mut *conn).await?;
                return Ok(());
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT audit_append").execute(&mut *conn).await?;
                sqlx::raw_sql("RELEASE SAVEPOINT audit_append").execute(&mut *conn).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(sqlx::Error::Protocol("audit chain contention".into()))
}

/// Reads the chain's head on `conn` and inserts `rec` after it.
async fn append_at_head(conn: &mut sqlx::AnyConnection, rec: &AuditRecord) -> Result<(), sqlx::Error> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (last_seq, last_hash): (i64, String) = match row {
        Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
        None => (0, GENESIS.to_owned()),
    };
    insert(&mut *conn, rec, last_seq + 1, &last_hash).await?;
    Ok(())
}

async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    rec: &AuditRecord,
    seq: i64,
    prev_hash: &str,
) -> Result<String, sqlx::Error> {
    let detail = rec.detail.to_string();
    let actor_id = rec.actor_id.map(|u| u.to_string());
    let id = new_id().to_string();
    let at = now_ms();
    let hash = entry_hash(
        prev_hash,
        seq,
        &id,
        at,
        actor_id.as_deref(),
        &rec.actor_name,
        rec.source_ip.as_deref(),
        rec.action,
        rec.target_type,
        rec.target_id.as_deref(),
        rec.outcome,
        &detail,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, id, at, actor_id, actor_name, source_ip, action, \
         target_type, target_id, outcome, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(seq)
    .bind(&id)
    .bind(at)
    .bind(actor_id.as_deref())
    .bind(&rec.actor_name)
    .bind(rec.source_ip.as_deref())
    .bind(rec.action)
    .bind(rec.target_type)
    .bind(rec.target_id.as_deref())
    .bind(rec.outcome)
    .bind(&detail)
    .bind(prev_hash)
    .bind(&hash)
    .execute(exec)
    .await?;
    Ok(hash)
}

impl Default for Audit {
    fn default() -> Self {
        Self::new()
    }
}

impl Audit {
    pub fn new() -> Self {
        Self { head: Mutex::new(None) }
    }

    async fn load_head(db: &Db) -> Result<(i64, String), sqlx::Error> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
        Ok(match row {
            Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
            None => (0, GENESIS.to_owned()),
        })
    }

    /// Appends one entry. Retries when another server node appended first.
    pub async fn append(&self, db: &Db, rec: AuditRecord) -> Result<(), sqlx::Error> {
        let mut head = self.head.lock().await;
        for attempt in 0..MAX_APPEND_ATTEMPTS {
            let (last_seq, last_hash) = match head.as_ref() {
                Some(h) if attempt == 0 => h.clone(),
                _ => Self::load_head(db).await?,
            };
            let seq = last_seq + 1;
            let res = insert(&db.pool, &rec, seq, &last_hash).await;
            match res {
                Ok(hash) => {
                    *head = Some((seq, hash));
                    return Ok(());
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    *head = None;
                }
                Err(e) => {
                    *head = None;
                    return Err(e);
                }
            }
        }
        Err(sqlx::Error::Protocol("audit chain contention".into()))
    }

    /// Appends one entry inside the caller's transaction, so the change and its audit row
    /// commit together or not at all ([`append_on`]: it never waits for the in-process head,
    /// so it cannot deadlock with [`Audit::append`]; a concurrent append is retried on the new
    /// head, not turned into a failure of the caller's change).
    pub async fn append_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rec: AuditRecord,
    ) -> Result<(), sqlx::Error> {
        append_on(tx, &rec).await
    }

    /// Walks the whole chain, streaming; checks it against the signed checkpoints in
    /// `checkpoints` (seq → hash). Returns (entries checked, first broken seq, newest
    /// checkpoint matched).
    pub async fn verify(
        db: &Db,
        checkpoints: &std::collections::BTreeMap<i64, String>,
    ) -> Result<(u64, Option<i64>, Option<i64>), sqlx::Error> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT seq, id, at, actor_id, actor_name, source_ip, action, target_type, target_id, \
             outcome, detail, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch(&db.pool);
        let mut prev = GENESIS.to_owned();
        let mut checked = 0;
        let mut anchored = None;
        let mut expected_seq = 1_i64;
        while let Some(r) = rows.try_next().await? {
            let seq: i64 = r.try_get("seq")?;
            let stored_prev: String = r.try_get("prev_hash")?;
            let hash: String = r.try_get("hash")?;
            let actor_id: Option<String> = r.try_get("actor_id")?;
            let source_ip: Option<String> = r.try_get("source_ip")?;
            let target_id: Option<String> = r.try_get("target_id")?;
            let computed = entry_hash(
                &prev,
                seq,
                &r.try_get::<String, _>("id")?,
                r.try_get("at")?,
                actor_id.as_deref(),
                &r.try_get::<String, _>("actor_name")?,
                source_ip.as_deref(),
                &r.try_get::<String, _>("action")?,
                &r.try_get::<String, _>("target_type")?,
                target_id.as_deref(),
                &r.try_get::<String, _>("outcome")?,
                &r.try_get::<String, _>("detail")?,
            );
            checked += 1;
            let checkpoint_ok = checkpoints.get(&seq).is_none_or(|h| *h == hash);
            if seq != expected_seq || stored_prev != prev || computed != hash || !checkpoint_ok {
                return Ok((checked, Some(seq), anchored));
            }
            if checkpoints.contains_key(&seq) {
                anchored = Some(seq);
            }
            prev = hash;
            expected_seq += 1;
        }
        // A checkpoint beyond the last row: the newest rows were deleted.
        if let Some((&seq, _)) = checkpoints.range(expected_seq..).next() {
            return Ok((checked, Some(expected_seq.min(seq)), anchored));
        }
        Ok((checked, None, anchored))
    }
}

/// One signed checkpoint of the chain's head, one JSON line in the checkpoint file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: i64,
    pub kid: String,
    /// Base64url Ed25519 public key that made `sig` (kept: the key may be retired later).
    pub public_key: String,
    /// Base64url signature over [`Checkpoint::message`].
    pub sig: String,
}

impl Checkpoint {
    pub fn message(seq: i64, hash: &str, at: i64) -> String {
        format!("bangban-audit-checkpoint\n{seq}\n{hash}\n{at}")
    }

    fn verifies(&self) -> bool {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use ed25519_dalek::Verifier;
        let (Ok(pk), Ok(sig)) = (URL_SAFE_NO_PAD.decode(&self.public_key), URL_SAFE_NO_PAD.decode(&self.sig))
        else {
            return false;
        };
        let (Ok(pk), Ok(sig)) =
            (<[u8; 32]>::try_from(pk.as_slice()), ed25519_dalek::Signature::from_slice(&sig))
        else {
            return false;
        };
        ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .is_ok_and(|k| k.verify(Self::message(self.seq, &self.hash, self.at).as_bytes(), &sig).is_ok())
    }
}

/// Where checkpoints are written.
pub fn checkpoint_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("audit-checkpoints.jsonl")
}

/// Checkpoints with a valid signature, seq → hash (lines that do not verify are ignored and
/// logged: they cannot vouch for anything).
pub fn read_checkpoints(path: &std::path::Path) -> std::collections::BTreeMap<i64, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Checkpoint>(line) {
            Ok(c) if c.verifies() => {
                out.insert(c.seq, c.hash);
            }
            _ => tracing::warn!("audit checkpoint line without a valid signature ignored"),
        }
    }
    out
}

/// Signs the chain's current head and appends it to the checkpoint file (fsynced) and the log,
/// unless the head is already the last checkpoint. Returns the checkpointed seq.
pub async fn checkpoint(
    db: &Db,
    keys: &crate::auth::keys::KeyRing,
    data_dir: &std::path::Path,
    last: Option<i64>,
) -> Result<Option<i64>, sqlx::Error> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (seq, hash) = Audit::load_head(db).await?;
    if seq == 0 || last == Some(seq) {
        return Ok(last);
    }
    let at = now_ms();
    let (kid, sig, public) = keys.sign_with_public(Checkpoint::message(seq, &hash, at).as_bytes());
    let c = Checkpoint {
        seq,
        hash,
        at,
        kid,
        public_key: URL_SAFE_NO_PAD.encode(public),
        sig: URL_SAFE_NO_PAD.encode(sig),
    };
    let line = serde_json::to_string(&c).unwrap_or_default();
    let path = checkpoint_file(data_dir);
    let write = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    })
    .await
    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    if let Err(e) = write {
        tracing::error!(error = %e, "audit checkpoint not written");
        return Ok(last);
    }
    tracing::info!(seq = c.seq, hash = %c.hash, kid = %c.kid, sig = %c.sig, "audit checkpoint");
    Ok(Some(seq))
}

/// Reads one page of entries, newest first.
pub async fn list(
    db: &Db,
    before: Option<i64>,
    limit: i64,
    action: Option<&str>,
) -> Result<Vec<shared::api::AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, id, at, actor_id, actor_name, source_ip, action, target_type, target_id, \
         outcome, detail, hash FROM audit_log \
         WHERE ($1 IS NULL OR seq < $1) AND ($2 IS NULL OR action = $2) \
         ORDER BY seq DESC LIMIT $3",
    )
    .bind(before)
    .bind(action)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(shared::api::AuditEntry {
                seq: r.try_get("seq")?,
                id: parse_id(&r.try_get::<String, _>("id")?)?,
                at: r.try_get("at")?,
                actor_id: r.try_get::<Option<String>, _>("actor_id")?.map(|s| parse_id(&s)).transpose()?,
                actor_name: r.try_get("actor_name")?,
                source_ip: r.try_get("source_ip")?,
                action: r.try_get("action")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                outcome: r.try_get("outcome")?,
                detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                hash: r.try_get("hash")?,
            })
        })
        .collect()
}
