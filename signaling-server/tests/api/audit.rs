use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_hash_chain_detects_edits_and_deletions() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for i in 0..3 {
        app.post(
            "/api/v1/lines",
            Some(&admin),
            json!({ "code": format!("A{i}"), "name": format!("条线{i}") }),
        )
        .await;
    }
    let (s, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["checked"].as_u64().is_some_and(|n| n >= 4));

    let (_, page) = app.get("/api/v1/audit?limit=2", Some(&admin)).await;
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    let before = page["next_before"].as_i64().expect("paging");
    let (_, older) = app.get(&format!("/api/v1/audit?limit=2&before={before}"), Some(&admin)).await;
    assert!(older["entries"][0]["seq"].as_i64().is_some_and(|s| s < before));

    sqlx::query("UPDATE audit_log SET actor_name = 'someone else' WHERE seq = 2")
        .execute(&app.state.db.pool)
        .await
        .expect("tamper");
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!((v["intact"].as_bool(), v["first_broken_seq"].as_i64()), (Some(false), Some(2)), "{v}");
}

#[tokio::test]
async fn a_deleted_entry_breaks_the_chain() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    app.login("operator1").await;
    app.login("operator2").await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&app.state.db.pool).await.expect("delete");
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], false);
    assert_eq!(v["first_broken_seq"], 3);
}

/// The chain's hash of one row, as the server computes it (an attacker with database access
/// can do the same: that is why the head is anchored outside the database).
fn rehash(prev: &str, r: &sqlx::any::AnyRow) -> String {
    use sha2::Digest;
    use sqlx::Row;
    let g = |c: &str| r.try_get::<Option<String>, _>(c).expect("column");
    let canonical = json!([
        prev,
        r.try_get::<i64, _>("seq").expect("seq"),
        g("id"),
        r.try_get::<i64, _>("at").expect("at"),
        g("actor_id"),
        g("actor_name"),
        g("source_ip"),
        g("action"),
        g("target_type"),
        g("target_id"),
        g("outcome"),
        g("detail")
    ]);
    hex::encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

async fn checkpoint(app: &TestApp) -> i64 {
    signaling_server::audit::checkpoint(&app.state.db, &app.state.tokens.keys, &app.config.data_dir, None)
        .await
        .expect("checkpoint")
        .expect("a head to anchor")
}

/// Deleting the newest rows leaves an intact-looking chain; the signed checkpoint catches it.
#[tokio::test]
async fn deleting_the_newest_rows_is_detected_by_the_checkpoint() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    app.login("operator1").await;
    app.login("operator2").await;
    let head = checkpoint(&app).await;
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!((v["intact"].as_bool(), v["anchored_seq"].as_i64()), (Some(true), Some(head)), "{v}");
    sqlx::query("DELETE FROM audit_log WHERE seq >= $1")
        .bind(head - 1)
        .execute(&app.state.db.pool)
        .await
        .expect("delete");
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_broken_seq"].as_i64(), Some(head - 1), "{v}");
}

/// Rewriting a row and re-hashing the chain after it passes the hash check alone; the
/// checkpoint's hash no longer matches.
#[tokio::test]
async fn rewriting_and_rehashing_is_detected_by_the_checkpoint() {
    use sqlx::Row;
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    app.login("operator1").await;
    let head = checkpoint(&app).await;
    sqlx::query("UPDATE audit_log SET actor_name = 'nobody' WHERE seq = 2")
        .execute(&app.state.db.pool)
        .await
        .expect("tamper");
    let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(&app.state.db.pool)
        .await
        .expect("rows");
    let mut prev = "0".repeat(64);
    for r in &rows {
        let hash = rehash(&prev, r);
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(r.try_get::<i64, _>("seq").expect("seq"))
            .execute(&app.state.db.pool)
            .await
            .expect("rehash");
        prev = hash;
    }
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_broken_seq"].as_i64(), Some(head), "the checkpointed head no longer matches: {v}");
    // A forged checkpoint line (not signed by the server's key) vouches for nothing.
    let file = signaling_server::audit::checkpoint_file(&app.config.data_dir);
    let mut text = std::fs::read_to_string(&file).expect("checkpoint file");
    text.push_str(&format!("{{\"seq\":{head},\"hash\":\"{prev}\",\"at\":1,\"kid\":\"x\",\"public_key\":\"AAAA\",\"sig\":\"AAAA\"}}\n"));
    std::fs::write(&file, text).expect("write");
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], false, "{v}");
}

/// The audit row is written in the same transaction as the change: when it cannot be
/// written, the change does not happen either.
#[tokio::test]
async fn no_change_without_its_audit_row() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let op = app.login("operator1").await;
    let (_, me) = app.get("/api/v1/me", Some(&op)).await;
    let id = me["id"].as_str().expect("id").to_owned();
    sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away")
        .execute(&app.state.db.pool)
        .await
        .expect("rename");
    let (s, _) = app
        .post(&format!("/api/v1/users/{id}/password"), Some(&admin), json!({ "new_password": "Unaudited-1" }))
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    sqlx::query("ALTER TABLE audit_log_away RENAME TO audit_log")
        .execute(&app.state.db.pool)
        .await
        .expect("rename");
    assert_eq!(app.get("/api/v1/me", Some(&op)).await.0, StatusCode::OK, "sessions not ended");
    app.login("operator1").await; // the old password still works
}

/// Throttled sign-in attempts do not grow the audit log one row per request.
#[tokio::test]
async fn throttled_floods_are_aggregated() {
    let app = TestApp::spawn().await;
    for i in 0..200 {
        app.post("/api/v1/auth/login", None, json!({ "username": format!("u{}", i % 3), "password": "x" }))
            .await;
    }
    let rows = app.audit("auth.login").await;
    assert!(rows.len() < 60, "{} rows for 200 attempts", rows.len());
}

/// Audit rows written inside a change's transaction and ones written on their own, at the same
/// time: a transaction that has written (and so holds SQLite's write lock) never waits for the
/// in-process chain head another append holds while it waits for that lock. Every change and
/// every row lands, in one unbroken chain.
#[tokio::test]
async fn appends_inside_and_outside_transactions_at_once_all_land_in_one_chain() {
    use signaling_server::audit::AuditRecord;
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&app.state.db.pool)
            .await
            .expect("count")
    };
    let before = count().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let state = app.state.clone();
        tasks.spawn(async move {
            let mut rec = AuditRecord::new("test.concurrent", "test").target(i);
            rec.actor_name = "test".into();
            if i % 2 == 0 {
                state.audit.append(&state.db, rec).await
            } else {
                let mut tx = state.db.pool.begin().await?;
                // A write first: the transaction now holds the database's write lock.
                sqlx::query("UPDATE service_points SET name = name").execute(&mut *tx).await?;
                tokio::task::yield_now().await;
                state.audit.append_in(&mut tx, rec).await?;
                tx.commit().await
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").unwrap_or_else(|e| panic!("an append failed: {e}"));
    }
    assert_eq!(count().await, before + 12);
    let (_, v) = app.get("/api/v1/audit/verify", Some(&admin)).await;
    assert_eq!(v["intact"], true, "{v}");
}
