//! Backup and restore (`signaling-server backup` / `restore`): a backup taken while the server
//! runs, restored into an empty data directory and database, brings back accounts, points,
//! today's waiting ticket and stored materials; damaged backups, non-empty targets and a
//! missing or wrong master key are refused before anything is written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;
use shared::protocol::ServerMsg;
use signaling_server::backup::{self, BackupArgs, BackupError};
use signaling_server::config::Config;

use crate::helpers::{TestApp, on_postgres, pg_base_url};
use crate::materials_fixture::{call, content, pdf, sha256_hex, upload, upload_with_thumbnail};
use crate::materials_s3::S3Server;
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

/// A fresh, empty deployment to restore into: a data directory that does not exist yet and,
/// on PostgreSQL, a new database whose `search_path` names the source's schema (a dump
/// recreates its schema by name).
async fn empty_target(source: &TestApp) -> (tempfile::TempDir, Config, DropDatabase) {
    let root = tempfile::tempdir().expect("tempdir");
    let mut config = Config::for_data_dir(root.path().join("data"));
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.demo = false;
    if on_postgres() {
        use sqlx::Executor;
        let db = format!("r_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_base_url()).await.expect("pg");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).await.expect("create database");
        let (base, query) = source.config.database_url.split_once('?').expect("schema in the test URL");
        let base = base.rsplit_once('/').expect("database in the URL").0;
        config.database_url = format!("{base}/{db}?{query}");
        return (root, config, DropDatabase(Some(db)));
    }
    (root, config, DropDatabase(None))
}

/// Drops a test's restore database when the test is over (`psql`: `Drop` cannot wait on sqlx).
struct DropDatabase(Option<String>);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if let Some(db) = &self.0 {
            let _ = std::process::Command::new("psql")
                .arg(pg_base_url())
                .args(["-qc", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")])
                .output();
        }
    }
}

/// What an operator does before a restore: put the deployment's master key (kept apart from
/// the backups) where the new server reads it.
fn place_master_key(source: &TestApp, target: &Config) {
    std::fs::create_dir_all(&target.data_dir).expect("data dir");
    std::fs::copy(&source.config.master_key_file, &target.master_key_file).expect("copy key");
}

fn backup_args(out: &Path) -> BackupArgs {
    BackupArgs { out: Some(out.to_owned()), into: None, keep: None, include_master_key: false }
}

/// Runs the real binary with the deployment's settings.
async fn cli(config: &Config, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_signaling-server"))
        .arg("--data-dir")
        .arg(&config.data_dir)
        .arg("--database-url")
        .arg(&config.database_url)
        .arg("--master-key-file")
        .arg(&config.master_key_file)
        .args(args)
        .env("BANGBAN_LOG_FORMAT", "json")
        .output()
        .await
        .expect("binary runs")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_restore_into_an_empty_deployment_brings_back_accounts_points_queue_and_materials() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    // An account with its own password, a point of its own.
    let point = app.first_point(&admin).await;
    let (s, u) = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({ "username": "backup1", "display_name": "备份测试", "role": "operator", "password": "Backup-pass-1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    // A stored material, uploaded through tus during a call at the first point.
    let c = call(&app).await;
    let data = pdf("backup test", 150_000);
    let material = upload(&app, &c.device, &c.session_id, "户口本.pdf", &data).await;
    // A waiting ticket of today at the second point.
    let (_, device) = app.enroll_terminal(1).await;
    let (mut t, _) = WsClient::connect(&app, &device).await;
    t.send(&take_ticket(item_id(&app, &device, "WJ-002").await)).await;
    let ticket = t
        .expect("issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    t.expect("queued", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(())).await;

    // Every file of the data directory but the database, the store, unfinished uploads and the
    // master key (the signing keys, while they live there; the audit checkpoints; …).
    let data_files: Vec<String> = files_under(&app.config.data_dir)
        .iter()
        .map(|p| p.strip_prefix(&app.config.data_dir).expect("under").to_string_lossy().into_owned())
        .filter(|r| {
            !r.starts_with("bangban.db") && !r.starts_with("uploads/") && !r.starts_with("materials/")
        })
        .filter(|r| r != "master.key")
        .collect();
    assert!(!data_files.is_empty());
    // Backup through the binary while the server runs and the terminal waits.
    let out = tempfile::tempdir().expect("out");
    let dir = out.path().join("b1");
    let o = cli(&app.config, &["backup", "--out", dir.to_str().expect("utf-8")]).await;
    assert!(o.status.success(), "backup failed: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("backup complete"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("json");
    assert_eq!(manifest["master_key_included"], false);
    assert!(!dir.join("master.key").exists(), "the master key stays out by default");
    assert_eq!(manifest["schema_version"], signaling_server::db::latest_migration());
    assert!(manifest["materials"]["objects"].as_u64().expect("objects") >= 1);
    assert_eq!(manifest["materials"]["missing"], json!([]), "every object the snapshot names is in it");
    let files = manifest["files"].as_array().expect("files");
    for rel in &data_files {
        assert!(files.iter().any(|f| f["path"] == format!("data/{rel}").as_str()), "{rel} not in {files:?}");
    }
    assert!(!files.iter().any(|f| f["path"].as_str().is_some_and(|p| p.contains("bangban.db"))));
    for f in files {
        let path = dir.join(f["path"].as_str().expect("path"));
        assert_eq!(std::fs::metadata(&path).expect("listed file exists").len(), f["size"]);
        assert_eq!(sha256_hex(&std::fs::read(&path).expect("read")), f["sha256"]);
    }
    // Stored materials are copied as stored: the PDF's bytes appear nowhere in the backup.
    for f in files_under(&dir) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(!bytes.windows(11).any(|w| w == b"backup test"), "plaintext in {}", f.display());
    }
    assert_eq!(app.audit("backup.create").await.len(), 1, "the backup is audited");

    // A drill: the backup checks out against the deployment's key, nothing written.
    let o = cli(&app.config, &["restore", "--verify-only", "--from", dir.to_str().expect("utf-8")]).await;
    assert!(o.status.success(), "verify failed: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("backup verified"));
    // Restore through the binary into an empty deployment holding only the master key.
    let (root, target, _db_target) = empty_target(&app).await;
    place_master_key(&app, &target);
    let o = cli(&target, &["restore", "--from", dir.to_str().expect("utf-8")]).await;
    assert!(o.status.success(), "restore failed: {}", String::from_utf8_lossy(&o.stderr));
    let restored = TestApp::start(target, root).await;

    // Accounts sign in with their passwords; the point is there.
    let (s, body) = restored
        .post("/api/v1/auth/login", None, json!({ "username": "backup1", "password": "Backup-pass-1" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let admin2 = restored.login("admin").await;
    let (s, points) = restored.get("/api/v1/points", Some(&admin2)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        points
            .as_array()
            .expect("points")
            .iter()
            .any(|p| p["id"] == point["id"] && p["name"] == point["name"])
    );
    // The material downloads byte for byte.
    let (s, got) = content(&restored, &admin2, &material).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    // The terminal's device token still verifies (the signing keys came back) and its ticket
    // waits again, first in the queue, and rings an operator who becomes available.
    let (mut t2, welcome) = WsClient::connect(&restored, &device).await;
    assert!(matches!(welcome, ServerMsg::Welcome { resumed: true, .. }), "{welcome:?}");
    t2.expect("still first", |m| matches!(m, ServerMsg::QueuePosition { position: 1, .. }).then_some(()))
        .await;
    let (mut op, _) = available_operator(&restored, "operator2").await;
    let rung = op
        .expect("the same ticket rings", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!((rung.ticket_id, rung.number), (ticket.ticket_id, ticket.number));
    let restores = restored.audit("backup.restore").await;
    assert_eq!(restores.len(), 1);
    assert_eq!(restores[0]["target_id"], manifest["id"]);
    // The audit chain and its checkpoints still agree after the restore.
    let (s, v) = restored.get("/api/v1/audit/verify", Some(&admin2)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["intact"], true, "{v}");
}

#[tokio::test]
async fn damaged_backups_non_empty_targets_and_missing_or_wrong_keys_are_refused_before_any_write() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = pdf("refusals", 80_000);
    let material = upload(&app, &c.device, &c.session_id, "a.pdf", &data).await;
    let out = tempfile::tempdir().expect("out");
    let good = out.path().join("good");
    backup::backup(&app.config, &backup_args(&good)).await.expect("backup");
    // A second backup into the same directory is refused.
    let e = backup::backup(&app.config, &backup_args(&good)).await.expect_err("not empty");
    assert!(matches!(e, BackupError::OutNotEmpty(_)), "{e}");
    let audited = app.audit("backup.create").await;
    assert_eq!(
        audited.iter().map(|a| a["outcome"].as_str()).collect::<Vec<_>>(),
        [Some("failure"), Some("success")]
    );

    // A changed byte in a stored object.
    let damaged = out.path().join("damaged");
    copy_tree(&good, &damaged);
    let object = files_under(&damaged.join("materials")).into_iter().next().expect("an object");
    let mut bytes = std::fs::read(&object).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&object, bytes).expect("write");
    let (_root, target, _db_target) = empty_target(&app).await;
    place_master_key(&app, &target);
    let e = backup::verify(&app.config, &damaged).await.expect_err("damaged");
    assert!(matches!(e, BackupError::Tampered { .. }), "{e}");
    backup::verify(&app.config, &good).await.expect("the good one verifies");
    let e = backup::restore(&target, &damaged).await.expect_err("damaged");
    assert!(matches!(e, BackupError::Tampered { .. }) && e.to_string().contains("materials/"), "{e}");
    assert_only_the_key(&target);
    // A file left out of the manifest's view: the database truncated.
    let truncated = out.path().join("truncated");
    copy_tree(&good, &truncated);
    let db = std::fs::read_dir(&truncated)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("database.")))
        .expect("database file");
    let len = std::fs::metadata(&db).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&db).expect("open").set_len(len / 2).expect("truncate");
    let e = backup::restore(&target, &truncated).await.expect_err("truncated");
    assert!(e.to_string().contains("damaged or was changed"), "{e}");
    assert_only_the_key(&target);
    // An incomplete backup (no manifest: it is written last).
    let incomplete = out.path().join("incomplete");
    copy_tree(&good, &incomplete);
    std::fs::remove_file(incomplete.join("manifest.json")).expect("rm");
    let e = backup::restore(&target, &incomplete).await.expect_err("incomplete");
    assert!(matches!(e, BackupError::NoManifest(_)), "{e}");
    // A backup of a newer schema than this server knows.
    let newer = out.path().join("newer");
    copy_tree(&good, &newer);
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newer.join("manifest.json")).expect("read")).expect("json");
    m["schema_version"] = json!(signaling_server::db::latest_migration() + 1);
    std::fs::write(newer.join("manifest.json"), m.to_string()).expect("write");
    let e = backup::restore(&target, &newer).await.expect_err("newer");
    assert!(matches!(e, BackupError::NewerSchema { .. }), "{e}");
    // A manifest edited to match a changed file is caught by its MAC under the master key.
    let forged = out.path().join("forged");
    copy_tree(&damaged, &forged);
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(forged.join("manifest.json")).expect("read")).expect("json");
    let rel = object.strip_prefix(&damaged).expect("rel").to_string_lossy().into_owned();
    let changed = std::fs::read(forged.join(&rel)).expect("read");
    for f in m["files"].as_array_mut().expect("files") {
        if f["path"] == rel.as_str() {
            f["sha256"] = json!(sha256_hex(&changed));
        }
    }
    std::fs::write(forged.join("manifest.json"), m.to_string()).expect("write");
    let e = backup::restore(&target, &forged).await.expect_err("forged");
    assert!(e.to_string().contains("manifest.json") && e.to_string().contains("MAC"), "{e}");
    assert_only_the_key(&target);

    // Without the master key: a clear refusal, nothing written.
    let (_root2, keyless, _db_keyless) = empty_target(&app).await;
    let e = backup::restore(&keyless, &good).await.expect_err("no key");
    assert!(matches!(e, BackupError::MasterKeyMissing(_)), "{e}");
    assert!(e.to_string().contains("master key missing"), "{e}");
    assert!(!keyless.data_dir.exists(), "nothing written");
    // With another key: the same.
    std::fs::create_dir_all(&keyless.data_dir).expect("dir");
    write_key(&keyless.master_key_file, &[7u8; 32]);
    let e = backup::restore(&keyless, &good).await.expect_err("wrong key");
    assert!(matches!(e, BackupError::WrongMasterKey(_)), "{e}");
    assert!(e.to_string().contains("wrong master key"), "{e}");

    // A non-empty data directory.
    let (_root3, busy, _db_busy) = empty_target(&app).await;
    place_master_key(&app, &busy);
    std::fs::write(busy.data_dir.join("left-over.txt"), "x").expect("write");
    let e = backup::restore(&busy, &good).await.expect_err("non-empty dir");
    assert!(matches!(e, BackupError::DataDirNotEmpty(..)) && e.to_string().contains("left-over.txt"), "{e}");
    // A non-empty database: the live server's own.
    let mut live = app.config.clone();
    live.data_dir = out.path().join("fresh-dir");
    let e = backup::restore(&live, &good).await.expect_err("non-empty database");
    assert!(matches!(e, BackupError::DatabaseNotEmpty(_)), "{e}");

    // The good backup, untouched by all this, restores.
    let (root4, ok, _db_ok) = empty_target(&app).await;
    place_master_key(&app, &ok);
    backup::restore(&ok, &good).await.expect("restore");
    let restored = TestApp::start(ok, root4).await;
    let admin = restored.login("admin").await;
    let (s, got) = content(&restored, &admin, &material).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, data);
}

#[tokio::test]
async fn a_backup_with_the_master_key_restores_without_it_and_rotation_keeps_n() {
    let app = TestApp::spawn().await;
    let out = tempfile::tempdir().expect("out");
    let args =
        BackupArgs { out: None, into: Some(out.path().to_owned()), keep: Some(2), include_master_key: true };
    let mut dirs = Vec::new();
    for _ in 0..3 {
        dirs.push(backup::backup(&app.config, &args).await.expect("backup").dir);
    }
    let left: Vec<_> = std::fs::read_dir(out.path()).expect("dir").flatten().map(|e| e.path()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!dirs[0].exists() && dirs[1].exists() && dirs[2].exists());
    let newest = &dirs[2];
    assert!(newest.join("master.key").exists());

    let (root, target, _db_target) = empty_target(&app).await;
    backup::restore(&target, newest).await.expect("restore with the key from the backup");
    assert_eq!(
        std::fs::read(&target.master_key_file).expect("key written"),
        std::fs::read(&app.config.master_key_file).expect("key")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target.master_key_file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's only");
    }
    let restored = TestApp::start(target, root).await;
    restored.login("operator1").await;
}

fn assert_only_the_key(target: &Config) {
    let files = files_under(&target.data_dir);
    assert_eq!(files, vec![target.master_key_file.clone()], "nothing but the key in the target");
    if let Some(db) = signaling_server::db::sqlite_path(&target.database_url) {
        assert!(!Path::new(db).exists());
    }
}

fn write_key(path: &Path, key: &[u8; 32]) {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).expect("key file").write_all(key).expect("write key");
}

fn copy_tree(from: &Path, to: &Path) {
    for f in files_under(from) {
        let rel = f.strip_prefix(from).expect("under");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &dest).expect("copy");
    }
}

/// Materials in an S3 bucket are backed up through the store's listing and restored into the
/// new deployment's (empty) bucket; a bucket that already holds objects is refused.
#[tokio::test]
async fn materials_in_s3_are_backed_up_and_restored_into_an_empty_bucket() {
    let s3 = S3Server::start().await;
    let cfg = s3.config();
    let app = TestApp::spawn_with(move |c| c.materials.s3 = Some(cfg)).await;
    let c = call(&app).await;
    let data = pdf("s3 backup", 120_000);
    // With its thumbnail made (in the background), so the bucket holds both objects.
    let material = upload_with_thumbnail(&app, &c.device, &c.session_id, "s3.pdf", &data).await;
    let out = tempfile::tempdir().expect("out");
    let dir = out.path().join("b");
    let r = backup::backup(&app.config, &backup_args(&dir)).await.expect("backup");
    assert_eq!(r.manifest.materials.store, "s3");
    assert_eq!(r.manifest.materials.objects, 2, "content and thumbnail");
    assert_eq!(s3.objects().len(), 2);
    assert!(r.manifest.materials.missing.is_empty());

    // Into the bucket that already holds the objects: refused.
    let (_root, mut busy, _db_busy) = empty_target(&app).await;
    busy.materials.s3 = Some(s3.config());
    place_master_key(&app, &busy);
    let e = backup::restore(&busy, &dir).await.expect_err("non-empty bucket");
    assert!(matches!(e, BackupError::StoreNotEmpty(_)), "{e}");

    let s3b = S3Server::start().await;
    let (root, mut target, _db_target) = empty_target(&app).await;
    target.materials.s3 = Some(s3b.config());
    place_master_key(&app, &target);
    backup::restore(&target, &dir).await.expect("restore");
    assert_eq!(s3b.objects().len(), s3.objects().len());
    let restored = TestApp::start(target, root).await;
    let admin = restored.login("admin").await;
    let (s, got) = content(&restored, &admin, &material).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
}
