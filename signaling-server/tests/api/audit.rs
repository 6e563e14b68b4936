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
