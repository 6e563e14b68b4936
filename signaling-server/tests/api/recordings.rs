//! Call recordings (#17): the terminal uploads the call's file once the call is over, only when
//! the resident agreed; only supervisors and admins list and play it, every playback audited;
//! the parties never see it; hostile values are refused.

use reqwest::StatusCode;

use crate::helpers::TestApp;
use crate::materials_fixture::{call, content, create, metadata, patch, png, sha256_hex};

/// A tiny file that starts like Matroska/WebM (the EBML header), as the terminal writes.
fn webm(len: usize) -> Vec<u8> {
    let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
    v.extend(b"webm".iter().cycle().take(len.saturating_sub(9)));
    v
}

/// Creates and sends a recording upload; returns the last response's status and the material.
async fn send(
    app: &TestApp,
    token: &str,
    session: &str,
    data: &[u8],
    flag: &str,
) -> (StatusCode, Option<String>) {
    let meta = metadata(&[
        ("filename", "通话录像.webm"),
        ("session_id", session),
        ("sha256", &sha256_hex(data)),
        ("recording", flag),
    ]);
    let resp = create(app, token, data.len(), &meta).await;
    if resp.status() != StatusCode::CREATED {
        return (resp.status(), None);
    }
    let location = resp.headers()["location"].to_str().expect("location").to_owned();
    let resp = patch(app, token, &location, 0, data, None).await;
    let material = resp.headers().get("bangban-material-id").map(|v| v.to_str().expect("id").to_owned());
    (resp.status(), material)
}

async fn consent(app: &TestApp, session: &str, value: Option<i32>) {
    sqlx::query("UPDATE tickets SET recording_consent = $1 WHERE id = (SELECT ticket_id FROM call_sessions WHERE id = $2)")
        .bind(value)
        .bind(session)
        .execute(&app.state.db.pool)
        .await
        .expect("consent");
}

async fn end(app: &TestApp, session: &str) {
    sqlx::query("UPDATE call_sessions SET status = 'ended', ended_at = $1 WHERE id = $2")
        .bind(signaling_server::db::now_ms())
        .bind(session)
        .execute(&app.state.db.pool)
        .await
        .expect("end");
}

#[tokio::test]
async fn a_consented_call_is_recorded_once_and_only_supervisors_play_it() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    consent(&app, &c.session_id, Some(1)).await;
    end(&app, &c.session_id).await;
    let data = webm(200_000);

    // The operator may not upload a recording, nor may anyone send a non-video as one, or a
    // video as a scan.
    assert_eq!(send(&app, &c.operator, &c.session_id, &data, "1").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        send(&app, &c.device, &c.session_id, &png(40, 40), "1").await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(send(&app, &c.device, &c.session_id, &data, "yes").await.0, StatusCode::UNPROCESSABLE_ENTITY);

    // After the call, within the grace period, the terminal's recording is stored once.
    let (s, material) = send(&app, &c.device, &c.session_id, &data, "1").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let material = material.expect("stored");
    assert_eq!(send(&app, &c.device, &c.session_id, &webm(1000), "1").await.0, StatusCode::CONFLICT);

    // The parties never see it; supervisors and admins do.
    let supervisor = app.login("supervisor").await;
    let admin = app.login("admin").await;
    let (_, ops) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&c.operator)).await;
    assert!(ops.as_array().expect("list").iter().all(|m| m["source"] != "recording"), "{ops}");
    let (_, sups) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&supervisor)).await;
    assert!(
        sups.as_array()
            .expect("list")
            .iter()
            .any(|m| m["source"] == "recording" && m["id"] == material.as_str())
    );
    assert_eq!(content(&app, &c.operator, &material).await.0, StatusCode::FORBIDDEN);
    let (s, bytes) = content(&app, &supervisor, &material).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes, data, "the recording plays back exactly as uploaded");

    // The list for quality checks, and who played what, in the audit log.
    let (s, list) = app.get("/api/v1/recordings", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    let first = &list.as_array().expect("list")[0];
    assert_eq!(first["material_id"], material.as_str());
    assert_eq!(first["ticket_number"], "T-0001");
    assert_eq!(first["size"], 200_000);
    assert_eq!(app.get("/api/v1/recordings?limit=1", Some(&admin)).await.0, StatusCode::OK);
    for who in [&c.operator, &c.device] {
        assert_eq!(app.get("/api/v1/recordings", Some(who)).await.0, StatusCode::FORBIDDEN);
    }
    let (_, page) = app.get("/api/v1/audit?limit=50&action=recording.play", Some(&admin)).await;
    assert!(page["entries"].as_array().expect("entries").iter().any(|e| e["target_id"] == material.as_str()));
}

#[tokio::test]
async fn without_the_residents_agreement_nothing_is_recorded() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    for answer in [None, Some(0)] {
        consent(&app, &c.session_id, answer).await;
        let data = webm(5000);
        let meta =
            metadata(&[("session_id", &c.session_id), ("sha256", &sha256_hex(&data)), ("recording", "1")]);
        let resp = create(&app, &c.device, data.len(), &meta).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{answer:?}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["error"]["code"], "no_consent");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("未同意")));
        // Nor can a video slip in as a scan.
        assert_eq!(
            send(&app, &c.device, &c.session_id, &data, "0").await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}

#[tokio::test]
async fn the_recordings_list_refuses_hostile_queries() {
    let app = TestApp::spawn().await;
    let supervisor = app.login("supervisor").await;
    for q in [
        "limit=0",
        "limit=201",
        "limit=-5",
        "limit=abc",
        "before=0",
        "before=-1",
        "sort=size",
        "limit=1&limit=2",
    ] {
        let (s, _) = app.get(&format!("/api/v1/recordings?{q}"), Some(&supervisor)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
    }
    let (s, list) = app.get("/api/v1/recordings", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list, serde_json::json!([]));
}
