//! Backup and restore of everything a deployment keeps (`signaling-server backup` /
//! `signaling-server restore`).
//!
//! A backup is a directory:
//! - `database.sqlite` (SQLite: `VACUUM INTO`, a consistent snapshot taken while the server
//!   runs) or `database.pgdump` (PostgreSQL: `pg_dump --format=custom`, one repeatable-read
//!   transaction, also online);
//! - `data/…`: every other file of the data directory as it was — the audit checkpoints, an
//!   older release's `keys/` if still there (the signing keys now live in the database, sealed
//!   under the master key), whatever else is there — except the database files, unfinished
//!   uploads (`uploads/`) and the master key;
//! - `materials/…`: every object of the materials store (local directory or S3), copied as
//!   stored, i.e. still encrypted;
//! - `master.key` only with `--include-master-key`: by default the key stays out, since a backup
//!   that carries it decrypts everything it holds;
//! - `manifest.json`, written last (a directory without one is an incomplete backup): format,
//!   versions, migration level, size and SHA-256 of every file, a value sealed under the master
//!   key (restore checks the key with it) and a MAC of the manifest under the master key.
//!
//! The order matters for an online backup: data files (audit checkpoints) first, then the
//! database, then the objects. So no checkpoint is newer than the database (which the audit
//! check would read as deleted rows), and every object the database names was stored before
//! the snapshot (objects are content-addressed and only deleted by the retention purge).
//!
//! Restore goes into an empty data directory and an empty database only; it reads and checks
//! the manifest, every file's size and hash, and the master key before it writes anything.

use std::path::{Component, Path, PathBuf};

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use crate::config::Config;
use crate::db::{Backend, Db};
use crate::pii::Pii;

/// `manifest.json`'s `format`.
pub const FORMAT: &str = "bangban-backup/1";
/// Name of the manifest file.
pub const MANIFEST: &str = "manifest.json";
/// Largest manifest read back (about a million stored objects).
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
const KEY_CHECK_PLAIN: &str = "bangban-backup-key-check";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("materials store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    StoreOpen(#[from] crate::materials::StoreError),
    #[error(transparent)]
    Pii(#[from] crate::pii::PiiError),
    #[error("cannot run {tool}: {source} (install the PostgreSQL client tools, version ≥ the server's)")]
    ToolMissing { tool: &'static str, source: std::io::Error },
    #[error("{tool} failed ({status}): {stderr}")]
    Tool { tool: &'static str, status: String, stderr: String },
    #[error("where to: give --out DIR (one backup) or --into DIR (a directory of backups)")]
    NoOut,
    #[error("backup directory {0} is not empty: a backup goes into a new or empty directory")]
    OutNotEmpty(PathBuf),
    #[error("backup directory {0} is inside the data directory {1}: put backups elsewhere")]
    OutInsideData(PathBuf, PathBuf),
    #[error(
        "master key file {0} does not exist: a backup needs the key the data was sealed with \
         (BANGBAN_MASTER_KEY_FILE)"
    )]
    NoMasterKey(PathBuf),
    #[error("{0} has no {MANIFEST}: not a backup, or an incomplete one (a backup writes its manifest last)")]
    NoManifest(PathBuf),
    #[error("{MANIFEST} is unreadable: {0}")]
    BadManifest(String),
    #[error(
        "the backup has database schema {backup}, newer than this server's {ours}: restore it \
         with the server version that made it ({version}) or a newer one"
    )]
    NewerSchema { backup: i64, ours: i64, version: String },
    #[error("backup file {path} is damaged or was changed ({why}); nothing was restored")]
    Tampered { path: String, why: String },
    #[error("the data directory {0} is not empty (it holds {1}): restore only into an empty one")]
    DataDirNotEmpty(PathBuf, String),
    #[error("the database is not empty ({0}): restore only into an empty database")]
    DatabaseNotEmpty(String),
    #[error("the materials store is not empty (it holds {0}): restore only into an empty bucket")]
    StoreNotEmpty(String),
    #[error("the backup is of a {backup} database but the target is {target}: {hint}")]
    Mismatch { backup: String, target: String, hint: String },
    #[error(
        "master key missing: the backup does not contain it (made without --include-master-key) \
         and {0} does not exist. Put the deployment's master key there (or point \
         BANGBAN_MASTER_KEY_FILE at it, mode 0600) and run restore again; nothing was restored"
    )]
    MasterKeyMissing(PathBuf),
    #[error(
        "wrong master key: the key in {0} does not open this backup's data (it was sealed under \
         another key). Use the key of the deployment the backup was made from; nothing was restored"
    )]
    WrongMasterKey(PathBuf),
    #[error(
        "the master key in {0} differs from the one in the backup: remove one of them or make \
         them agree; nothing was restored"
    )]
    MasterKeyConflict(PathBuf),
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_owned(), source }
}

/// `signaling-server backup` and `signaling-server restore`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Online backup of the database (with the signing keys), audit checkpoints and stored materials
    /// (safe while the server runs).
    Backup(BackupArgs),
    /// Restores a backup into an empty data directory and an empty database.
    Restore(RestoreArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// A new or empty directory the backup is written into.
    #[arg(long, conflicts_with = "into", required_unless_present = "into")]
    pub out: Option<PathBuf>,
    /// A directory of backups: this one goes into `<into>/bangban-<UTC time>` (e.g.
    /// `bangban-20261205T031500.123Z`).
    #[arg(long)]
    pub into: Option<PathBuf>,
    /// With `--into`: afterwards keep only the newest N complete backups there (older ones, and
    /// incomplete ones older than the newest complete one, are deleted).
    #[arg(long, requires = "into", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub keep: Option<u32>,
    /// Put the master key into the backup too. Then the backup alone decrypts everything it
    /// holds: keep it as safe as the key itself.
    #[arg(long)]
    pub include_master_key: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The backup directory (the one holding `manifest.json`).
    #[arg(long)]
    pub from: PathBuf,
    /// Only check the backup (manifest, every file's SHA-256, the master key); write nothing.
    #[arg(long)]
    pub verify_only: bool,
}

/// One file of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// `database.sqlite` or `database.pgdump`.
    pub file: String,
    /// PostgreSQL: the schema dumped (from the URL's `search_path`); `None`: the whole database.
    pub pg_schema: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaterialsEntry {
    /// `local` or `s3`.
    pub store: String,
    pub objects: u64,
    pub bytes: u64,
    /// Objects the database snapshot names that were no longer in the store when they were
    /// copied (deleted by the retention purge meanwhile); normally empty.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub server_version: String,
    /// Highest applied migration of the database in the backup.
    pub schema_version: i64,
    pub database: DatabaseEntry,
    pub materials: MaterialsEntry,
    pub master_key_included: bool,
    /// A known value sealed under the master key: restore checks the key by opening it.
    pub key_check: String,
    pub files: Vec<FileEntry>,
    /// Keyed hash (under the master key) of this manifest with `mac` empty.
    pub mac: String,
}

impl Manifest {
    fn compute_mac(&self, pii: &Pii) -> String {
        let mut unsigned = self.clone();
        unsigned.mac = String::new();
        let text = serde_json::to_string(&unsigned).unwrap_or_default();
        pii.keyed_hash(&format!("bangban-backup-manifest\n{text}"))
    }

    fn key_context(id: &str) -> String {
        format!("backup:{id}:key-check")
    }
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Older backups deleted by `--keep`.
    pub pruned: Vec<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub manifest: Manifest,
}

/// Runs a subcommand (the binary's thin call).
pub async fn run(config: &Config, command: Command) -> Result<()> {
    match command {
        Command::Backup(args) => {
            let r = backup(config, &args).await?;
            let bytes: u64 = r.manifest.files.iter().map(|f| f.size).sum();
            println!(
                "备份完成 backup complete: {} ({} files, {bytes} bytes, schema {}, master key {})",
                r.dir.display(),
                r.manifest.files.len(),
                r.manifest.schema_version,
                if r.manifest.master_key_included { "INCLUDED" } else { "not included" }
            );
            for p in r.pruned {
                println!("  removed old backup {}", p.display());
            }
        }
        Command::Restore(args) if args.verify_only => {
            let m = verify(config, &args.from).await?;
            println!(
                "备份完好 backup verified: {} of {} ({} files, schema {}, master key opens it)",
                m.id,
                utc_text(m.created_at),
                m.files.len(),
                m.schema_version
            );
        }
        Command::Restore(args) => {
            let r = restore(config, &args.from).await?;
            println!(
                "恢复完成 restore complete: backup {} of {} (schema {}), into {}",
                r.manifest.id,
                utc_text(r.manifest.created_at),
                r.manifest.schema_version,
                config.data_dir.display()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Backup

/// Makes a backup of the deployment described by `config`, online. A failure is audited too
/// (when the database answers) and leaves a directory without a manifest.
pub async fn backup(config: &Config, args: &BackupArgs) -> Result<BackupReport> {
    let result = make_backup(config, args).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "backup failed");
        if let Ok(pool) = raw_pool(&config.database_url).await {
            let db = Db { pool, backend: backend_of(&config.database_url) };
            let rec = crate::audit::AuditRecord::new("backup.create", "backup")
                .outcome("failure")
                .detail(serde_json::json!({ "error": e.to_string() }));
            if let Err(e) = crate::audit::Audit::new().append(&db, rec).await {
                tracing::error!(error = %e, "failed backup not audited");
            }
            db.pool.close().await;
        }
    }
    result
}

async fn make_backup(config: &Config, args: &BackupArgs) -> Result<BackupReport> {
    if !config.master_key_file.exists() {
        return Err(BackupError::NoMasterKey(config.master_key_file.clone()));
    }
    let (dir, rotation) = match (&args.out, &args.into) {
        (Some(out), _) => (out.clone(), None),
        (None, Some(into)) => {
            std::fs::create_dir_all(into).map_err(io(into))?;
            (into.join(format!("bangban-{}", utc_stamp())), Some(into.clone()))
        }
        (None, None) => return Err(BackupError::NoOut),
    };
    prepare_out(&dir, &config.data_dir)?;
    let id = uuid::Uuid::now_v7().to_string();
    tracing::info!(backup = %id, dir = %dir.display(), "backup started");
    let pii = Pii::load_or_create(&config.master_key_file)?;
    let mut files = Vec::new();

    // 1. Files of the data directory (keys, audit checkpoints, …), before the database.
    let skip = skipped_paths(config);
    let data_dir = config.data_dir.clone();
    let out = dir.clone();
    let data_files = tokio::task::spawn_blocking(move || copy_data_dir(&data_dir, &out, &skip))
        .await
        .map_err(|e| BackupError::Io { path: dir.clone(), source: std::io::Error::other(e) })??;
    tracing::info!(backup = %id, files = data_files.len(), "data directory copied");
    files.extend(data_files);

    // 2. The database: a consistent snapshot.
    let backend = backend_of(&config.database_url);
    let pool = raw_pool(&config.database_url).await?;
    let schema_version = schema_version(&pool).await?;
    let (database, referenced) = match backend {
        Backend::Sqlite => {
            let file = "database.sqlite";
            let dest = dir.join(file);
            let target = dest.to_str().ok_or_else(|| BackupError::Io {
                path: dest.clone(),
                source: std::io::Error::other("path is not UTF-8"),
            })?;
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{}'", target.replace('\'', "''"))))
                .execute(&pool)
                .await?;
            let entry = hashed_entry(&dir, file)?;
            tracing::info!(backup = %id, bytes = entry.size, "SQLite snapshot written (VACUUM INTO)");
            files.push(entry);
            let mut snap =
                sqlx::AnyConnection::connect(&format!("sqlite://{target}?mode=ro&immutable=1")).await?;
            let referenced = referenced_objects(&mut snap).await?;
            snap.close().await?;
            (DatabaseEntry { backend: "sqlite".into(), file: file.into(), pg_schema: None }, referenced)
        }
        Backend::Postgres => {
            let file = "database.pgdump";
            let pg = PgTarget::parse(&config.database_url);
            // The dump and the list of objects it names come from one snapshot: exported by a
            // repeatable-read transaction held open while pg_dump runs.
            let mut conn = sqlx::AnyConnection::connect(&config.database_url).await?;
            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut conn).await?;
            let snapshot: String =
                sqlx::query("SELECT pg_export_snapshot() AS s").fetch_one(&mut conn).await?.try_get("s")?;
            let mut cmd = tokio::process::Command::new("pg_dump");
            cmd.arg("--format=custom").arg("--no-owner").arg("--no-privileges");
            cmd.arg(format!("--snapshot={snapshot}"));
            if let Some(schema) = &pg.schema {
                cmd.arg(format!("--schema={schema}"));
            }
            cmd.arg("--file").arg(dir.join(file)).arg("--dbname").arg(&pg.url);
            run_tool("pg_dump", cmd, pg.password.as_deref()).await?;
            let entry = hashed_entry(&dir, file)?;
            tracing::info!(backup = %id, bytes = entry.size, schema = ?pg.schema, "PostgreSQL dump written (pg_dump)");
            files.push(entry);
            let referenced = referenced_objects(&mut conn).await?;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
            conn.close().await?;
            (
                DatabaseEntry { backend: "postgres".into(), file: file.into(), pg_schema: pg.schema },
                referenced,
            )
        }
    };

    // 3. The materials store's objects, as stored (encrypted).
    let (objects, _, _) = crate::materials::Store::connect_objects(config)?;
    let (object_files, bytes) = copy_objects(objects.as_ref(), &dir).await?;
    let copied: std::collections::BTreeSet<&str> =
        object_files.iter().map(|f| &f.path["materials/".len()..]).collect();
    let missing: Vec<String> = referenced.iter().filter(|r| !copied.contains(r.as_str())).cloned().collect();
    if !missing.is_empty() {
        tracing::warn!(backup = %id, missing = missing.len(), "objects named by the database were gone from the store (purged meanwhile)");
    }
    let materials = MaterialsEntry {
        store: if config.materials.s3.is_some() { "s3" } else { "local" }.into(),
        objects: object_files.len() as u64,
        bytes,
        missing,
    };
    tracing::info!(backup = %id, objects = materials.objects, bytes, store = %materials.store, "materials copied");
    files.extend(object_files);

    // 4. The master key, only when asked.
    if args.include_master_key {
        let path = config.master_key_file.clone();
        let entry = copy_hashed(&path, &dir.join("master.key"))
            .map(|(size, sha256)| FileEntry { path: "master.key".into(), size, sha256 })
            .map_err(io(&path))?;
        files.push(entry);
        tracing::warn!(backup = %id, "the master key is in this backup: keep the backup as safe as the key");
    }

    // 5. The manifest, last.
    let mut manifest = Manifest {
        format: FORMAT.into(),
        key_check: pii.encrypt(KEY_CHECK_PLAIN, &Manifest::key_context(&id)),
        id: id.clone(),
        created_at: crate::db::now_ms(),
        server_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        database,
        materials,
        master_key_included: args.include_master_key,
        files,
        mac: String::new(),
    };
    manifest.mac = manifest.compute_mac(&pii);
    write_manifest(&dir, &manifest)?;
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    tracing::info!(backup = %id, dir = %dir.display(), files = manifest.files.len(), bytes = total, "backup complete");

    let db = Db { pool, backend };
    let rec =
        crate::audit::AuditRecord::new("backup.create", "backup").target(&id).detail(serde_json::json!({
            "files": manifest.files.len(),
            "bytes": total,
            "schema_version": schema_version,
            "master_key_included": args.include_master_key,
        }));
    if let Err(e) = crate::audit::Audit::new().append(&db, rec).await {
        tracing::error!(error = %e, "backup not audited");
    }
    db.pool.close().await;

    let pruned = match (rotation, args.keep) {
        (Some(into), Some(keep)) => prune(&into, keep as usize)?,
        _ => Vec::new(),
    };
    Ok(BackupReport { dir, manifest, pruned })
}

/// Store paths of the objects (contents and thumbnails) the database refers to.
async fn referenced_objects(conn: &mut sqlx::AnyConnection) -> Result<std::collections::BTreeSet<String>> {
    let rows = sqlx::query("SELECT name, thumb_name FROM material_objects").fetch_all(&mut *conn).await?;
    let mut out = std::collections::BTreeSet::new();
    for r in rows {
        out.insert(crate::materials::object_path(&r.try_get::<String, _>("name")?));
        if let Some(t) = r.try_get::<Option<String>, _>("thumb_name")? {
            out.insert(crate::materials::thumb_path(&t));
        }
    }
    Ok(out)
}

fn utc_stamp() -> String {
    utc_text(crate::db::now_ms())
}

/// `20261205T023000.123Z` for unix milliseconds.
fn utc_text(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn prepare_out(dir: &Path, data_dir: &Path) -> Result<()> {
    if let (Ok(d), Ok(data)) = (absolute(dir), absolute(data_dir))
        && d.starts_with(&data)
    {
        return Err(BackupError::OutInsideData(dir.to_owned(), data_dir.to_owned()));
    }
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(BackupError::OutNotEmpty(dir.to_owned()));
        }
    }
    create_private_dir(dir)
}

fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    // The directory may not exist yet: resolve its nearest existing ancestor.
    let abs = std::path::absolute(p)?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name().map(ToOwned::to_owned).unwrap_or_default());
        existing = match existing.parent() {
            Some(p) => p,
            None => return Ok(abs),
        };
    }
    let mut out = existing.canonicalize()?;
    for r in rest.into_iter().rev() {
        out.push(r);
    }
    Ok(out)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Paths of the data directory that are not copied as files: the database (snapshotted),
/// the local materials store (copied through the store), unfinished uploads and the master key.
fn skipped_paths(config: &Config) -> Vec<PathBuf> {
    let d = &config.data_dir;
    let mut skip = vec![d.join("uploads"), d.join("materials"), config.master_key_file.clone()];
    if let Some(db) = crate::db::sqlite_path(&config.database_url) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            skip.push(PathBuf::from(format!("{db}{suffix}")));
        }
    }
    skip.into_iter().map(|p| absolute(&p).unwrap_or(p)).collect()
}

fn copy_data_dir(data_dir: &Path, out: &Path, skip: &[PathBuf]) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    if !data_dir.exists() {
        return Ok(files);
    }
    let root = absolute(data_dir).map_err(io(data_dir))?;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> =
            std::fs::read_dir(&dir).map_err(io(&dir))?.collect::<Result<_, _>>().map_err(io(&dir))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            if skip.iter().any(|s| s == &path) {
                continue;
            }
            let ft = e.file_type().map_err(io(&path))?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path.strip_prefix(&root).unwrap_or(&path);
                let rel = format!("data/{}", slash_path(rel));
                let (size, sha256) = copy_hashed(&path, &out.join(&rel)).map_err(io(&path))?;
                tracing::debug!(file = %rel, size, "copied");
                files.push(FileEntry { path: rel, size, sha256 });
            } else {
                tracing::warn!(path = %path.display(), "not a regular file or directory (a symlink?): not in the backup");
            }
        }
    }
    Ok(files)
}

fn slash_path(p: &Path) -> String {
    p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// Copies `src` to `dst` (created 0600, parents 0700, fsynced) and returns size and SHA-256 of
/// what was written.
fn copy_hashed(src: &Path, dst: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Write;
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut output = private_file(dst)?;
    let hashed = hash_stream(std::fs::File::open(src)?, |chunk| output.write_all(chunk))?;
    output.sync_all()?;
    Ok(hashed)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    hash_stream(std::fs::File::open(path)?, |_| Ok(()))
}

/// Size and SHA-256 of everything read from `input`, each chunk also handed to `each`.
fn hash_stream(
    mut input: impl std::io::Read,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn hashed_entry(dir: &Path, rel: &str) -> Result<FileEntry> {
    let path = dir.join(rel);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io(&path))?;
    }
    let (size, sha256) = hash_file(&path).map_err(io(&path))?;
    Ok(FileEntry { path: rel.into(), size, sha256 })
}

async fn copy_objects(objects: &dyn ObjectStore, dir: &Path) -> Result<(Vec<FileEntry>, u64)> {
    use tokio::io::AsyncWriteExt;
    let mut metas = Vec::new();
    let mut list = objects.list(None);
    while let Some(meta) = list.next().await {
        metas.push(meta?);
    }
    metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    let mut files = Vec::with_capacity(metas.len());
    let mut total = 0u64;
    for meta in metas {
        let rel = format!("materials/{}", meta.location.as_ref());
        let dest = dir.join(&rel);
        let result = match objects.get(&meta.location).await {
            Ok(r) => r,
            // Deleted by the retention purge since it was listed.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut file = tokio::fs::File::from_std(private_file(&dest).map_err(io(&dest))?);
        let mut stream = result.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(&dest))?;
            size += chunk.len() as u64;
        }
        file.sync_all().await.map_err(io(&dest))?;
        total += size;
        files.push(FileEntry { path: rel, size, sha256: hex::encode(hasher.finalize()) });
    }
    Ok((files, total))
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{MANIFEST}.partial"));
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::BadManifest(e.to_string()))?;
    let mut f = private_file(&tmp).map_err(io(&tmp))?;
    f.write_all(&text).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    let dest = dir.join(MANIFEST);
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Keeps the newest `keep` complete backups `bangban-*` in `into`; deletes older ones and
/// incomplete ones older than the newest complete one.
fn prune(into: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(into)
        .map_err(io(into))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bangban-"))
        .collect();
    names.sort();
    let complete: Vec<&String> = names.iter().filter(|n| into.join(n).join(MANIFEST).is_file()).collect();
    let newest = complete.last().map(|n| (*n).clone());
    let kept: Vec<&String> = complete.iter().rev().take(keep).copied().collect();
    let mut removed = Vec::new();
    for n in &names {
        let is_complete = complete.contains(&n);
        let drop = if is_complete { !kept.contains(&n) } else { newest.as_ref().is_some_and(|new| n < new) };
        if drop {
            let p = into.join(n);
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
            tracing::info!(dir = %p.display(), complete = is_complete, "old backup removed");
            removed.push(p);
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------------------------------------
// Restore

/// Restores the backup in `from` into the (empty) deployment described by `config`.
pub async fn restore(config: &Config, from: &Path) -> Result<RestoreReport> {
    tracing::info!(from = %from.display(), data_dir = %config.data_dir.display(), "restore started");
    sqlx::any::install_default_drivers();
    let manifest = read_checked_manifest(from)?;
    let backend = backend_of(&config.database_url);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    if manifest.database.backend != expected {
        return Err(BackupError::Mismatch {
            backup: manifest.database.backend.clone(),
            target: expected.into(),
            hint: "set DATABASE_URL to the kind of database the backup was made from".into(),
        });
    }
    let pg = (backend == Backend::Postgres).then(|| PgTarget::parse(&config.database_url));
    if let Some(pg) = &pg
        && pg.schema != manifest.database.pg_schema
    {
        return Err(BackupError::Mismatch {
            backup: format!("postgres schema {:?}", manifest.database.pg_schema),
            target: format!("postgres schema {:?}", pg.schema),
            hint: "the dump recreates its schema by name: give DATABASE_URL the same search_path".into(),
        });
    }

    // Nothing is written before all of this has passed.
    check_empty_target(config, pg.as_ref()).await?;
    tracing::info!("target is empty");
    let (_, backup_key) = verify_contents(config, from, &manifest).await?;
    let key_file = &config.master_key_file;

    // Writing.
    create_private_dir(&config.data_dir)?;
    if let Some(bytes) = &backup_key
        && !key_file.exists()
    {
        if let Some(parent) = key_file.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        use std::io::Write;
        let mut f = private_file(key_file).map_err(io(key_file))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(key_file))?;
        tracing::info!(file = %key_file.display(), "master key written from the backup");
    }
    let mut restored_files = 0usize;
    for f in manifest.files.iter().filter(|f| f.path.starts_with("data/")) {
        let rel = &f.path["data/".len()..];
        let dest = config.data_dir.join(rel);
        let src = from.join(&f.path);
        copy_hashed(&src, &dest).map_err(io(&dest))?;
        restored_files += 1;
    }
    tracing::info!(files = restored_files, "data directory files restored");

    let dump = from.join(&manifest.database.file);
    match backend {
        Backend::Sqlite => {
            let path = crate::db::sqlite_path(&config.database_url)
                .map(PathBuf::from)
                .ok_or_else(|| BackupError::BadManifest("DATABASE_URL names no SQLite file".into()))?;
            if path.metadata().is_ok_and(|m| m.len() == 0) {
                // An empty file (checked above) is no database: replaced.
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
            copy_hashed(&dump, &path).map_err(io(&path))?;
            tracing::info!(file = %path.display(), "SQLite database restored");
        }
        Backend::Postgres => {
            let pg = pg.unwrap_or_else(|| PgTarget::parse(&config.database_url));
            if let Some(schema) = &pg.schema {
                // An empty schema of that name (checked above) would make the dump's
                // CREATE SCHEMA fail.
                let mut conn = sqlx::AnyConnection::connect(&config.database_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {}", quote_ident(schema))))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
            }
            let mut cmd = tokio::process::Command::new("pg_restore");
            cmd.args(["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"])
                .arg("--dbname")
                .arg(&pg.url)
                .arg(&dump);
            run_tool("pg_restore", cmd, pg.password.as_deref()).await?;
            tracing::info!(schema = ?pg.schema, "PostgreSQL database restored (pg_restore)");
        }
    }

    let (objects, part_size, _) = crate::materials::Store::connect_objects(config)?;
    let mut n = 0u64;
    for f in manifest.files.iter().filter(|f| f.path.starts_with("materials/")) {
        let location = ObjectPath::from(&f.path["materials/".len()..]);
        crate::materials::put_file(&objects, part_size, &location, &from.join(&f.path)).await?;
        n += 1;
    }
    tracing::info!(objects = n, "materials restored");
    if !manifest.materials.missing.is_empty() {
        tracing::warn!(
            missing = manifest.materials.missing.len(),
            "the backup lacks objects its database names (purged while it was made): those materials read as gone"
        );
    }

    // Opens it as the server will (applying newer migrations), and records the restore.
    let db = Db::connect(&config.database_url).await?;
    let rec = crate::audit::AuditRecord::new("backup.restore", "backup").target(&manifest.id).detail(
        serde_json::json!({
            "created_at": manifest.created_at,
            "server_version": manifest.server_version,
            "schema_version": manifest.schema_version,
            "files": manifest.files.len(),
        }),
    );
    crate::audit::Audit::new().append(&db, rec).await?;
    db.pool.close().await;
    tracing::info!(backup = %manifest.id, "restore complete");
    Ok(RestoreReport { manifest })
}

/// Checks a backup without restoring it (`restore --verify-only`): manifest, schema level,
/// every file's size and SHA-256, the master key (`BANGBAN_MASTER_KEY_FILE`, else the one in
/// the backup) and the manifest's MAC.
pub async fn verify(config: &Config, from: &Path) -> Result<Manifest> {
    tracing::info!(from = %from.display(), "verifying backup");
    let manifest = read_checked_manifest(from)?;
    verify_contents(config, from, &manifest).await?;
    tracing::info!(backup = %manifest.id, "backup verified");
    Ok(manifest)
}

fn read_checked_manifest(from: &Path) -> Result<Manifest> {
    let manifest = read_manifest(from)?;
    let ours = crate::db::latest_migration();
    if manifest.schema_version > ours {
        return Err(BackupError::NewerSchema {
            backup: manifest.schema_version,
            ours,
            version: manifest.server_version.clone(),
        });
    }
    Ok(manifest)
}

/// Every file against the manifest, then the master key and the MAC; returns the key's `Pii`
/// and the key bytes carried by the backup, if any.
async fn verify_contents(
    config: &Config,
    from: &Path,
    manifest: &Manifest,
) -> Result<(Pii, Option<Vec<u8>>)> {
    let from_owned = from.to_owned();
    let files = manifest.files.clone();
    tokio::task::spawn_blocking(move || verify_files(&from_owned, &files))
        .await
        .map_err(|e| BackupError::Io { path: from.to_owned(), source: std::io::Error::other(e) })??;
    tracing::info!(files = manifest.files.len(), "every file of the backup matches its hash");
    let backup_key = if manifest.master_key_included {
        let path = from.join("master.key");
        Some(std::fs::read(&path).map_err(io(&path))?)
    } else {
        None
    };
    let key_file = &config.master_key_file;
    let pii = match (key_file.exists(), &backup_key) {
        (true, Some(bytes)) => {
            let theirs = Pii::from_master(&parse_key(bytes)?);
            let ours = Pii::load_or_create(key_file)?;
            if theirs.keyed_hash("x") != ours.keyed_hash("x") {
                return Err(BackupError::MasterKeyConflict(key_file.clone()));
            }
            ours
        }
        (true, None) => Pii::load_or_create(key_file)?,
        (false, Some(bytes)) => Pii::from_master(&parse_key(bytes)?),
        (false, None) => return Err(BackupError::MasterKeyMissing(key_file.clone())),
    };
    if pii.decrypt(&manifest.key_check, &Manifest::key_context(&manifest.id)).ok().as_deref()
        != Some(KEY_CHECK_PLAIN)
    {
        return Err(BackupError::WrongMasterKey(key_file.clone()));
    }
    if manifest.compute_mac(&pii) != manifest.mac {
        return Err(BackupError::Tampered { path: MANIFEST.into(), why: "its MAC does not match".into() });
    }
    tracing::info!("master key opens the backup");
    Ok((pii, backup_key))
}

fn read_manifest(from: &Path) -> Result<Manifest> {
    use std::io::Read;
    let path = from.join(MANIFEST);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(from.to_owned()));
        }
        Err(e) => return Err(BackupError::Io { path, source: e }),
    };
    let mut text = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut text).map_err(io(&path))?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(BackupError::BadManifest(format!("larger than {MAX_MANIFEST_BYTES} bytes")));
    }
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| BackupError::BadManifest(e.to_string()))?;
    if m.format != FORMAT {
        return Err(BackupError::BadManifest(format!("format {:?}, expected {FORMAT:?}", m.format)));
    }
    for f in &m.files {
        if !safe_relative(&f.path) {
            return Err(BackupError::Tampered {
                path: f.path.clone(),
                why: "not a plain relative path".into(),
            });
        }
    }
    if !m.files.iter().any(|f| f.path == m.database.file) || m.database.file.contains('/') {
        return Err(BackupError::BadManifest("the database file is not listed".into()));
    }
    if m.master_key_included && !m.files.iter().any(|f| f.path == "master.key") {
        return Err(BackupError::BadManifest("master.key is not listed".into()));
    }
    Ok(m)
}

fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && Path::new(p).components().all(|c| matches!(c, Component::Normal(_)))
        && (p.starts_with("data/") || p.starts_with("materials/") || !p.contains('/'))
}

fn verify_files(from: &Path, files: &[FileEntry]) -> Result<()> {
    for f in files {
        let path = from.join(&f.path);
        let (size, sha256) = hash_file(&path).map_err(|e| BackupError::Tampered {
            path: f.path.clone(),
            why: format!("cannot read it: {e}"),
        })?;
        if size != f.size {
            return Err(BackupError::Tampered {
                path: f.path.clone(),
                why: format!("{size} bytes, the manifest says {}", f.size),
            });
        }
        if sha256 != f.sha256 {
            return Err(BackupError::Tampered { path: f.path.clone(), why: "SHA-256 differs".into() });
        }
    }
    Ok(())
}

fn parse_key(bytes: &[u8]) -> Result<[u8; 32]> {
    use base64::Engine;
    let raw = if bytes.len() == 32 {
        bytes.to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(String::from_utf8_lossy(bytes).trim().as_bytes())
            .unwrap_or_default()
    };
    let len = raw.len();
    raw.try_into().map_err(|_| BackupError::Pii(crate::pii::PiiError::KeyLength(len)))
}

async fn check_empty_target(config: &Config, pg: Option<&PgTarget>) -> Result<()> {
    let dir = &config.data_dir;
    if dir.exists() {
        let key = absolute(&config.master_key_file).ok();
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter(|e| key.as_ref().is_none_or(|k| absolute(&e.path()).ok().as_ref() != Some(k)))
            .filter(|e| e.file_name() != "lost+found")
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !found.is_empty() {
            found.sort();
            found.truncate(5);
            return Err(BackupError::DataDirNotEmpty(dir.clone(), found.join(", ")));
        }
    }
    match pg {
        None => {
            if let Some(path) = crate::db::sqlite_path(&config.database_url) {
                let p = Path::new(path);
                if p.metadata().is_ok_and(|m| m.len() > 0) {
                    return Err(BackupError::DatabaseNotEmpty(format!("{path} exists")));
                }
            }
        }
        Some(_) => {
            let mut conn = sqlx::AnyConnection::connect(&config.database_url).await?;
            let rows = sqlx::query(
                "SELECT CAST(table_name AS TEXT) AS table_name FROM information_schema.tables WHERE table_schema = current_schema() \
                 ORDER BY table_name LIMIT 5",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            if !rows.is_empty() {
                let names: Vec<String> =
                    rows.iter().map(|r| r.try_get::<String, _>(0).unwrap_or_default()).collect();
                return Err(BackupError::DatabaseNotEmpty(format!("tables {}", names.join(", "))));
            }
        }
    }
    if config.materials.s3.is_some() {
        let (objects, _, _) = crate::materials::Store::connect_objects(config)?;
        if let Some(first) = objects.list(None).next().await {
            return Err(BackupError::StoreNotEmpty(first?.location.to_string()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Databases

fn backend_of(url: &str) -> Backend {
    if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres }
}

/// A pool on the live database without running migrations (a newer `backup` binary must not
/// migrate the database under an older running server).
async fn raw_pool(url: &str) -> Result<sqlx::AnyPool> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    Ok(sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::Executor::execute(conn, "PRAGMA busy_timeout=10000;").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

async fn schema_version(pool: &sqlx::AnyPool) -> Result<i64> {
    let row = sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<Option<i64>, _>("v")?.unwrap_or(0))
}

/// A PostgreSQL URL as `pg_dump` / `pg_restore` take it: without the password (passed in
/// `PGPASSWORD`, not on the command line where `ps` shows it) and without sqlx-only options.
#[derive(Debug, Clone)]
struct PgTarget {
    url: String,
    password: Option<String>,
    /// From `options=-c search_path=…`.
    schema: Option<String>,
}

impl PgTarget {
    fn parse(url: &str) -> Self {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut password = None;
        let base = match base.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
                let authority = match authority.rsplit_once('@') {
                    Some((userinfo, host)) => match userinfo.split_once(':') {
                        Some((user, pass)) => {
                            password = Some(percent_decode(pass));
                            format!("{user}@{host}")
                        }
                        None => authority.to_owned(),
                    },
                    None => authority.to_owned(),
                };
                format!("{scheme}://{authority}/{path}")
            }
            None => base.to_owned(),
        };
        let mut schema = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "statement-cache-capacity" {
                continue;
            }
            if k == "options" {
                let decoded = percent_decode(v);
                if let Some(at) = decoded.find("search_path=") {
                    let value = decoded[at + "search_path=".len()..].split([' ', ',']).next().unwrap_or("");
                    if !value.is_empty() {
                        schema = Some(value.trim_matches('"').to_owned());
                    }
                }
            }
            kept.push(pair);
        }
        let url = if kept.is_empty() { base } else { format!("{base}?{}", kept.join("&")) };
        Self { url, password, schema }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn run_tool(
    tool: &'static str,
    mut cmd: tokio::process::Command,
    password: Option<&str>,
) -> Result<()> {
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd.stdin(std::process::Stdio::null());
    let out = cmd.output().await.map_err(|source| BackupError::ToolMissing { tool, source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr: String = stderr.chars().take(2000).collect();
        return Err(BackupError::Tool {
            tool,
            status: out.status.to_string(),
            stderr: stderr.trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_lose_the_password_and_keep_the_schema() {
        let t = PgTarget::parse(
            "postgres://bangban:s%40cret@db:5432/bangban?options=-c%20search_path%3Dt_1&statement-cache-capacity=10",
        );
        assert_eq!(t.url, "postgres://bangban@db:5432/bangban?options=-c%20search_path%3Dt_1");
        assert_eq!(t.password.as_deref(), Some("s@cret"));
        assert_eq!(t.schema.as_deref(), Some("t_1"));
        let t = PgTarget::parse("postgres://bangban@db/bangban");
        assert_eq!((t.url.as_str(), t.password, t.schema), ("postgres://bangban@db/bangban", None, None));
    }

    #[test]
    fn manifest_paths_must_be_plain_and_relative() {
        for ok in ["database.sqlite", "data/keys/keyring.json", "materials/ab/cd"] {
            assert!(safe_relative(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "data/../../x", "../x", "keys/x", "data\\x", "./data/x"] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }

    #[test]
    fn rotation_keeps_the_newest_complete_backups() {
        let dir = tempfile::tempdir().expect("dir");
        for (name, complete) in [
            ("bangban-20260101T000000Z", true),
            ("bangban-20260102T000000Z", false),
            ("bangban-20260103T000000Z", true),
            ("bangban-20260104T000000Z", true),
            ("bangban-20260105T000000Z", false),
            ("other", true),
        ] {
            std::fs::create_dir_all(dir.path().join(name)).expect("mkdir");
            if complete {
                std::fs::write(dir.path().join(name).join(MANIFEST), "{}").expect("write");
            }
        }
        let removed = prune(dir.path(), 2).expect("prune");
        let names: Vec<_> =
            removed.iter().map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["bangban-20260101T000000Z", "bangban-20260102T000000Z"]);
        for left in
            ["bangban-20260103T000000Z", "bangban-20260104T000000Z", "bangban-20260105T000000Z", "other"]
        {
            assert!(dir.path().join(left).exists(), "{left}");
        }
    }
}
