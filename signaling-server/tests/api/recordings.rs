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

#[tokio::test]
async fn a_consented_call_is_recorded_once_and_only_supervisors_play_it() {
    let app = TestApp::spawn().await;
    let mut c = call(&app).await;
    consent(&app, &c.session_id, Some(1)).await;
    c.end(&app).await;
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
    assert_eq!(first["ticket_number"], c.ticket_number.as_str());
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

/// Creates and sends a recording part with extra metadata; returns the status and the material.
async fn send_part(
    app: &TestApp,
    token: &str,
    session: &str,
    data: &[u8],
    extra: &[(&str, &str)],
) -> (StatusCode, Option<String>) {
    let sha = sha256_hex(data);
    let mut pairs = vec![("filename", "通话录像.webm"), ("session_id", session), ("sha256", sha.as_str())];
    pairs.extend_from_slice(extra);
    let resp = create(app, token, data.len(), &metadata(&pairs)).await;
    if resp.status() != StatusCode::CREATED {
        return (resp.status(), None);
    }
    let location = resp.headers()["location"].to_str().expect("location").to_owned();
    let resp = patch(app, token, &location, 0, data, None).await;
    let material = resp.headers().get("bangban-material-id").map(|v| v.to_str().expect("id").to_owned());
    (resp.status(), material)
}

/// The terminal's camera and the operator's are two files of one recording (a browser's
/// `<video>` plays only a file's first video track): both stored, listed as one recording with
/// its duration, played only by supervisors, each playback audited; hostile values refused.
#[tokio::test]
async fn a_recording_in_two_parts_is_listed_once_with_its_duration_and_both_parts_play() {
    let app = TestApp::spawn().await;
    let mut c = call(&app).await;
    consent(&app, &c.session_id, Some(1)).await;
    c.end(&app).await;
    let (one, two) = (webm(120_000), webm(90_000));

    // Hostile or misplaced part/duration values are refused before anything is stored.
    for extra in [
        [("recording_part", "3"), ("duration_ms", "1000")],
        [("recording_part", "0"), ("duration_ms", "1000")],
        [("recording_part", "-1"), ("duration_ms", "1000")],
        [("recording_part", "２"), ("duration_ms", "1000")],
        [("recording_part", "1"), ("duration_ms", "0")],
        [("recording_part", "1"), ("duration_ms", "-5")],
        [("recording_part", "1"), ("duration_ms", "86400001")],
        [("recording_part", "1"), ("duration_ms", "99999999999999999999999")],
        [("recording_part", "1"), ("duration_ms", "+100")],
        [("recording_part", "1"), ("duration_ms", "0100")],
        [("recording_part", "1"), ("duration_ms", "1e3")],
        [("recording_part", "1"), ("duration_ms", " 100")],
    ] {
        let mut pairs = vec![("recording", "1")];
        pairs.extend(extra);
        assert_eq!(
            send_part(&app, &c.device, &c.session_id, &one, &pairs).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{extra:?}"
        );
    }
    // Part metadata on something that is not a recording is refused too.
    assert_eq!(
        send_part(&app, &c.device, &c.session_id, &png(40, 40), &[("recording_part", "2")]).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // The operator may not send a part.
    let p2 = [("recording", "1"), ("recording_part", "2"), ("duration_ms", "3210")];
    assert_eq!(send_part(&app, &c.operator, &c.session_id, &two, &p2).await.0, StatusCode::FORBIDDEN);

    // Both parts from the terminal, each once (part 2 may arrive first).
    let (s, second) = send_part(&app, &c.device, &c.session_id, &two, &p2).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let p1 = [("recording", "1"), ("recording_part", "1"), ("duration_ms", "3210")];
    let (s, first) = send_part(&app, &c.device, &c.session_id, &one, &p1).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (first, second) = (first.expect("part 1"), second.expect("part 2"));
    assert_eq!(send_part(&app, &c.device, &c.session_id, &webm(1000), &p2).await.0, StatusCode::CONFLICT);
    assert_eq!(send_part(&app, &c.device, &c.session_id, &webm(1000), &p1).await.0, StatusCode::CONFLICT);

    // One recording in the list, with its two parts in order and the terminal's duration.
    let supervisor = app.login("supervisor").await;
    let admin = app.login("admin").await;
    let (s, list) = app.get("/api/v1/recordings", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    let mine: Vec<_> =
        list.as_array().expect("list").iter().filter(|r| r["session_id"] == c.session_id.as_str()).collect();
    assert_eq!(mine.len(), 1, "one recording, not one per part: {list}");
    let r = mine[0];
    assert_eq!(r["material_id"], first.as_str());
    assert_eq!(r["duration_ms"], 3210);
    let parts = r["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2, "{r}");
    assert_eq!(
        (parts[0]["part"].as_u64(), parts[0]["material_id"].as_str()),
        (Some(1), Some(first.as_str()))
    );
    assert_eq!(
        (parts[1]["part"].as_u64(), parts[1]["material_id"].as_str()),
        (Some(2), Some(second.as_str()))
    );
    assert_eq!((parts[0]["size"].as_u64(), parts[1]["size"].as_u64()), (Some(120_000), Some(90_000)));
    assert!(parts.iter().all(|p| p["purged"] == false && p["content_type"] == "video/webm"), "{r}");

    // Both parts play for supervisors only, exactly as uploaded, each fetch audited.
    for (m, data) in [(&first, &one), (&second, &two)] {
        assert_eq!(content(&app, &c.operator, m).await.0, StatusCode::FORBIDDEN);
        let (s, bytes) = content(&app, &supervisor, m).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&bytes, data);
    }
    let (_, page) = app.get("/api/v1/audit?limit=100&action=recording.play", Some(&admin)).await;
    let entries = page["entries"].as_array().expect("entries");
    // The OpenAPI document describes the parts and the duration.
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let view = &doc["components"]["schemas"]["RecordingView"]["properties"];
    assert!(view["parts"].is_object() && view["duration_ms"].is_object(), "{view}");
    assert!(doc["components"]["schemas"]["RecordingPart"]["properties"]["part"].is_object());
    for m in [&first, &second] {
        assert!(
            entries.iter().any(|e| e["target_id"] == m.as_str() && e["actor_name"].is_string()),
            "{m}: {page}"
        );
    }

    // The retention rule deletes every part.
    sqlx::query("UPDATE call_sessions SET ended_at = $1 WHERE id = $2")
        .bind(signaling_server::db::now_ms() - 200 * 86_400_000)
        .bind(&c.session_id)
        .execute(&app.state.db.pool)
        .await
        .expect("long ago");
    let (s, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), serde_json::json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["purged"], 2, "{r}");
    for m in [&first, &second] {
        assert_eq!(content(&app, &supervisor, m).await.0, StatusCode::GONE);
    }
    let (_, list) = app.get("/api/v1/recordings", Some(&supervisor)).await;
    let r =
        list.as_array().expect("list").iter().find(|r| r["material_id"] == first.as_str()).expect("listed");
    assert_eq!(r["purged"], true);
    assert!(r["parts"].as_array().expect("parts").iter().all(|p| p["purged"] == true), "{r}");
}

/// A recording stored before parts existed (one file, four tracks, no duration) still lists
/// with its one part.
#[tokio::test]
async fn an_older_single_file_recording_lists_with_one_part() {
    let app = TestApp::spawn().await;
    let mut c = call(&app).await;
    consent(&app, &c.session_id, Some(1)).await;
    c.end(&app).await;
    let (s, material) = send(&app, &c.device, &c.session_id, &webm(50_000), "1").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let material = material.expect("stored");
    // As the rows written before the migration: no part, no duration.
    sqlx::query("UPDATE materials SET recording_part = NULL, duration_ms = NULL WHERE id = $1")
        .bind(&material)
        .execute(&app.state.db.pool)
        .await
        .expect("old row");
    let supervisor = app.login("supervisor").await;
    let (s, list) = app.get("/api/v1/recordings", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    let r = list
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["material_id"] == material.as_str())
        .expect("listed");
    assert!(r.get("duration_ms").is_none(), "{r}");
    let parts = r["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["material_id"], material.as_str());
    assert_eq!(content(&app, &supervisor, &material).await.0, StatusCode::OK);
}
