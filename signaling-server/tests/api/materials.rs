use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;
use crate::materials_fixture::*;

#[tokio::test]
async fn tus_discovery_and_a_complete_upload_with_range_reads() {
    let app = TestApp::spawn().await;
    let resp =
        app.client.request(reqwest::Method::OPTIONS, app.url("/api/v1/uploads")).send().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(h["tus-version"], "1.0.0");
    assert_eq!(h["tus-resumable"], "1.0.0");
    assert_eq!(h["tus-max-size"], (50 * 1024 * 1024).to_string().as_str());
    assert!(h["tus-extension"].to_str().expect("ext").contains("checksum"));
    assert_eq!(h["tus-checksum-algorithm"], "sha1,sha256");

    let c = call(&app).await;
    let data = pdf("range test", 200_000);
    let id = upload(&app, &c.device, &c.session_id, "申请表.pdf", &data).await;
    let (s, got) = content(&app, &c.operator, &id).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha256_hex(&got), sha256_hex(&data));

    // A range across a segment boundary decrypts only what it needs.
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/content")))
        .bearer_auth(&c.operator)
        .header("Range", "bytes=65530-131080")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.headers()["content-range"], format!("bytes 65530-131080/{}", data.len()).as_str());
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &data[65_530..=131_080]);
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/content")))
        .bearer_auth(&c.operator)
        .header("Range", "bytes=-10")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &data[data.len() - 10..]);
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/content")))
        .bearer_auth(&c.operator)
        .header("Range", format!("bytes={}-", data.len()))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Listing; the operator's download marked it viewed; a PDF has a (placeholder) thumbnail.
    let (s, list) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&c.device)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "viewed");
    assert_eq!(list[0]["source"], "scan");
    assert_eq!(list[0]["content_type"], "application/pdf");
    assert_eq!(list[0]["has_thumbnail"], true);
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/thumbnail")))
        .bearer_auth(&c.operator)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.expect("jpeg").starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(app.audit("material.download").await.len() >= 3);
    assert_eq!(app.audit("material.upload").await.len(), 1);
}

#[tokio::test]
async fn images_get_small_jpeg_thumbnails_and_fill_their_slot() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = png(1200, 800);
    let meta = metadata(&[
        ("filename", "身份证.png"),
        ("session_id", &c.session_id),
        ("sha256", &sha256_hex(&data)),
        ("material_slot", &c.slot_id),
    ]);
    let resp = create(&app, &c.device, data.len(), &meta).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().expect("loc").to_owned();
    let (mut ws, _) = crate::ws_client::WsClient::connect(&app, &c.operator).await;
    let resp = patch(&app, &c.device, &location, 0, &data, None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    // Announced at once without a thumbnail; the thumbnail follows in the background.
    let first = ws
        .expect("material_changed", |m| match m {
            shared::protocol::ServerMsg::MaterialChanged { material, .. } => Some(material.clone()),
            _ => None,
        })
        .await;
    assert_eq!(first.id.to_string(), id);
    let later = ws
        .expect("material_changed with a thumbnail", |m| match m {
            shared::protocol::ServerMsg::MaterialChanged { material, .. } if material.has_thumbnail => {
                Some(material.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(later.id.to_string(), id);
    let (s, m) = app.get(&format!("/api/v1/materials/{id}"), Some(&c.operator)).await;
    assert_eq!(m["has_thumbnail"], true);
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["content_type"], "image/png");
    assert_eq!(m["slot_id"], c.slot_id.as_str());
    assert!(m["slot_name"].is_string());
    assert_eq!(m["status"], "viewed");
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/thumbnail")))
        .bearer_auth(&c.device)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let jpeg = resp.bytes().await.expect("jpeg");
    let thumb = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).expect("a JPEG");
    assert!(
        thumb.width() <= 320 && thumb.height() <= 320 && thumb.width() == 320,
        "{}x{}",
        thumb.width(),
        thumb.height()
    );

    // A slot of another item is refused.
    let meta = metadata(&[
        ("filename", "x.png"),
        ("session_id", &c.session_id),
        ("sha256", &sha256_hex(&data)),
        ("material_slot", &uuid::Uuid::new_v4().to_string()),
    ]);
    assert_eq!(create(&app, &c.device, data.len(), &meta).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_upload_cut_mid_chunk_resumes_from_the_stored_offset() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = pdf("cut", 150_000);
    let location = start(&app, &c.device, &c.session_id, "cut.pdf", &data).await;
    // Raw HTTP: announce the whole file, send 100 000 bytes once the server reads the body
    // (`100 Continue`), then hang up.
    let mut s = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        app.addr,
        c.device,
        data.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            s.read(&mut b).await.expect("read"),
            1,
            "server hung up early: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(b[0]);
    }
    assert!(got.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&got));
    s.write_all(&data[..100_000]).await.expect("part");
    s.shutdown().await.expect("half close");
    // The server answers once it has stored what arrived.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;

    let (st, off) = offset(&app, &c.device, &location).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(off, Some(100_000), "what arrived is kept");
    // Resuming elsewhere than the stored offset is refused.
    assert_eq!(patch(&app, &c.device, &location, 0, &data, None).await.status(), StatusCode::CONFLICT);
    let resp = patch(&app, &c.device, &location, 100_000, &data[100_000..], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    let (st, body) = content(&app, &c.device, &id).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, data);
}

#[tokio::test]
async fn a_restart_mid_upload_loses_nothing_acknowledged() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = pdf("restart", 300_000);
    let location = start(&app, &c.device, &c.session_id, "restart.pdf", &data).await;
    for (a, b) in [(0, 65_536), (65_536, 131_072)] {
        assert_eq!(
            patch(&app, &c.device, &location, a, &data[a..b], None).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let app = app.restart().await;
    assert_eq!(offset(&app, &c.device, &location).await, (StatusCode::OK, Some(131_072)));
    let resp = patch(&app, &c.device, &location, 131_072, &data[131_072..], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    assert_eq!(content(&app, &c.operator, &id).await, (StatusCode::OK, data));
}

#[tokio::test]
async fn bad_checksums_sizes_types_and_whole_file_hashes_are_refused() {
    use base64::Engine;
    use sha1::Digest;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let app = TestApp::spawn_with(|c| c.materials.max_upload_bytes = 1024 * 1024).await;
    let c = call(&app).await;
    let data = pdf("checksum", 100_000);
    let location = start(&app, &c.device, &c.session_id, "c.pdf", &data).await;
    let upload_file = app
        .data_dir
        .path()
        .join("uploads")
        .join(format!("{}.sealed", location.rsplit('/').next().expect("id").replace('-', "")));

    // Wrong chunk checksum: 460, nothing stored.
    let wrong = format!("sha1 {}", b64(&sha1::Sha1::digest(b"something else")));
    let resp = patch(&app, &c.device, &location, 0, &data[..50_000], Some(wrong)).await;
    assert_eq!(resp.status().as_u16(), 460);
    assert_eq!(offset(&app, &c.device, &location).await.1, Some(0));
    assert_eq!(std::fs::metadata(&upload_file).expect("partial file").len(), 0, "nothing stored");
    // Right checksums (sha1 and sha256) are accepted; unknown algorithms are not.
    let good = format!("sha1 {}", b64(&sha1::Sha1::digest(&data[..50_000])));
    assert_eq!(
        patch(&app, &c.device, &location, 0, &data[..50_000], Some(good)).await.status(),
        StatusCode::NO_CONTENT
    );
    let good = format!("sha256 {}", b64(&sha2::Sha256::digest(&data[50_000..])));
    let resp = patch(&app, &c.device, &location, 50_000, &data[50_000..], Some(good)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!upload_file.exists(), "the partial file is gone once stored");
    let other = start(&app, &c.device, &c.session_id, "d.pdf", &data).await;
    assert_eq!(
        patch(&app, &c.device, &other, 0, &data[..10], Some("md5 AAAA".into())).await.status(),
        StatusCode::BAD_REQUEST
    );

    // Too large: at creation, and more bytes than declared.
    let meta =
        metadata(&[("filename", "big.pdf"), ("session_id", &c.session_id), ("sha256", &sha256_hex(b"x"))]);
    let resp = create(&app, &c.device, 1024 * 1024 + 1, &meta).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    let small = pdf("small", 1000);
    let loc = start(&app, &c.device, &c.session_id, "s.pdf", &small).await;
    let mut more = small.clone();
    more.extend_from_slice(b"tail");
    assert_eq!(patch(&app, &c.device, &loc, 0, &more, None).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(offset(&app, &c.device, &loc).await.1, Some(0));

    // Content decides the type, not the name.
    for (name, body) in [
        ("photo.jpg", b"<html><script>alert(1)</script></html>".to_vec()),
        ("a.pdf", b"MZ\x90\0\x03\0\0\0\x04\0".to_vec()),
    ] {
        let loc = start(&app, &c.device, &c.session_id, name, &body).await;
        let resp = patch(&app, &c.device, &loc, 0, &body, None).await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}");
        assert_eq!(offset(&app, &c.device, &loc).await.0, StatusCode::NOT_FOUND, "the upload is gone");
    }
    let loc = start(&app, &c.device, &c.session_id, "setup.exe", &small).await;
    let resp = patch(&app, &c.device, &loc, 0, &small, None).await;
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    let (_, m) = app.get(&format!("/api/v1/materials/{id}"), Some(&c.device)).await;
    assert_eq!(m["content_type"], "application/pdf");

    // The declared whole-file hash must match.
    let meta =
        metadata(&[("filename", "h.pdf"), ("session_id", &c.session_id), ("sha256", &sha256_hex(b"other"))]);
    let resp = create(&app, &c.device, small.len(), &meta).await;
    let loc = resp.headers()["location"].to_str().expect("loc").to_owned();
    assert_eq!(patch(&app, &c.device, &loc, 0, &small, None).await.status().as_u16(), 460);
    // Missing sha256, tus version or content type.
    let meta = metadata(&[("filename", "h.pdf"), ("session_id", &c.session_id)]);
    assert_eq!(create(&app, &c.device, 10, &meta).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = app
        .client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&c.device)
        .header("Upload-Length", "10")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let loc = start(&app, &c.device, &c.session_id, "t.pdf", &small).await;
    let resp = app
        .client
        .patch(app.url(&loc))
        .bearer_auth(&c.device)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .body(small.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Termination.
    let resp = app
        .client
        .delete(app.url(&loc))
        .bearer_auth(&c.device)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset(&app, &c.device, &loc).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn path_like_and_very_long_names_are_harmless_metadata() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = png(40, 30);
    let id = upload(&app, &c.device, &c.session_id, "../../etc/passwd", &data).await;
    let (_, m) = app.get(&format!("/api/v1/materials/{id}"), Some(&c.device)).await;
    assert_eq!(m["filename"], "passwd");
    let long = format!("{}.png", "长".repeat(300));
    let id = upload(&app, &c.device, &c.session_id, &long, &png(41, 30)).await;
    let (_, m) = app.get(&format!("/api/v1/materials/{id}"), Some(&c.device)).await;
    let name = m["filename"].as_str().expect("name");
    assert_eq!(name.chars().count(), 120);
    assert!(name.ends_with(".png"));
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/materials/{id}/content")))
        .bearer_auth(&c.device)
        .send()
        .await
        .expect("sent");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("inline; filename*=UTF-8''")
    );
    // Nothing was written outside the store, and nothing is named after the upload.
    for entry in walk(app.data_dir.path()) {
        let rel = entry.strip_prefix(app.data_dir.path()).expect("inside").to_string_lossy().into_owned();
        assert!(!rel.contains("passwd") && !rel.contains('长'), "{rel}");
    }
    // A metadata header beyond 4 KiB is refused outright.
    let huge = metadata(&[
        ("filename", &"a".repeat(5000)),
        ("session_id", &c.session_id),
        ("sha256", &sha256_hex(&data)),
    ]);
    assert_eq!(create(&app, &c.device, data.len(), &huge).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_store_holds_no_plaintext() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let marker = "MARKER-ZHANGSAN-110105194912310021";
    let data = pdf(marker, 200_000);
    upload(&app, &c.device, &c.session_id, "户口本.pdf", &data).await;
    // And a partial upload in progress.
    let other = pdf(&format!("{marker}-2"), 100_000);
    let loc = start(&app, &c.device, &c.session_id, "partial.pdf", &other).await;
    assert_eq!(
        patch(&app, &c.device, &loc, 0, &other[..70_000], None).await.status(),
        StatusCode::NO_CONTENT
    );
    let files = walk(app.data_dir.path());
    assert!(
        files.iter().any(|f| f.starts_with(app.data_dir.path().join("materials"))),
        "objects are in the store"
    );
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "plaintext found in {}",
            f.display()
        );
    }
}

#[tokio::test]
async fn only_the_parties_supervisors_and_admins_see_materials_and_refusals_are_audited() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let id = upload(&app, &c.device, &c.session_id, "a.png", &png(20, 20)).await;
    let other_operator = app.login("operator2").await;
    let staff = app.login("staff1").await;
    let (_, other_terminal) = app.enroll_terminal(1).await;
    for token in [&other_operator, &staff, &other_terminal] {
        assert_eq!(content(&app, token, &id).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("/api/v1/materials/{id}"), Some(token)).await.0, StatusCode::FORBIDDEN);
        let (s, _) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/materials/{id}/thumbnail")))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    // Nor may they upload into the session or review.
    let data = png(5, 5);
    let meta =
        metadata(&[("filename", "x.png"), ("session_id", &c.session_id), ("sha256", &sha256_hex(&data))]);
    assert_eq!(create(&app, &other_operator, data.len(), &meta).await.status(), StatusCode::FORBIDDEN);
    let (s, _) = app
        .post(
            &format!("/api/v1/materials/{id}/review"),
            Some(&other_operator),
            json!({ "decision": "accept" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let denied = app.audit("material.download").await;
    assert_eq!(denied.iter().filter(|e| e["outcome"] == "denied").count(), 3, "{denied:?}");
    assert!(app.audit("material.view").await.iter().any(|e| e["outcome"] == "denied"));
    assert!(app.audit("material.list").await.iter().any(|e| e["outcome"] == "denied"));
    for who in ["supervisor", "admin"] {
        let t = app.login(who).await;
        assert_eq!(content(&app, &t, &id).await.0, StatusCode::OK, "{who}");
    }
    let unauth =
        app.client.get(app.url(&format!("/api/v1/materials/{id}/content"))).send().await.expect("sent");
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn review_then_archive_and_purge_after_retention() {
    let app = TestApp::spawn().await;
    let mut c = call(&app).await;
    // With its thumbnail made, so the purge below has content and thumbnail to remove.
    let id = upload_with_thumbnail(&app, &c.device, &c.session_id, "a.png", &png(20, 20)).await;
    let (s, _) = app
        .post(&format!("/api/v1/materials/{id}/review"), Some(&c.operator), json!({ "decision": "reject" }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a rejection needs a reason");
    let (s, m) = app
        .post(
            &format!("/api/v1/materials/{id}/review"),
            Some(&c.operator),
            json!({ "decision": "reject", "reason": "照片模糊" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["status"], "rejected");
    assert_eq!(m["reject_reason"], "照片模糊");
    let (s, _) = app
        .post(&format!("/api/v1/materials/{id}/review"), Some(&c.device), json!({ "decision": "accept" }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the operator reviews");

    // The session ended 200 days ago: the purge archives and deletes the content.
    c.end_ago(&app, 200 * 86_400_000).await;
    let admin = app.login("admin").await;
    let (s, _) = app.post("/api/v1/admin/materials/purge", Some(&c.operator), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["archived"], 1);
    assert_eq!(r["purged"], 1);
    assert_eq!(r["objects_deleted"], 1);
    assert_eq!(content(&app, &admin, &id).await.0, StatusCode::GONE);
    let (_, m) = app.get(&format!("/api/v1/materials/{id}"), Some(&admin)).await;
    assert_eq!(m["purged"], true);
    assert!(m["archived_at"].is_i64());
    assert_eq!(app.audit("material.purge").await.len(), 1);
    assert!(walk(&app.data_dir.path().join("materials")).is_empty(), "no object left");
    let (_, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(r["purged"], 0, "idempotent");
}

#[tokio::test]
async fn both_parties_hear_of_materials_and_print_jobs_over_the_socket() {
    use crate::ws_client::WsClient;
    use shared::api::{MaterialStatus, PrintJobState};
    use shared::protocol::ServerMsg;
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let (mut terminal, _) = WsClient::connect(&app, &c.device).await;
    let (mut operator, _) = WsClient::connect(&app, &c.operator).await;
    let id = upload(&app, &c.device, &c.session_id, "a.png", &png(20, 20)).await;
    for ws in [&mut terminal, &mut operator] {
        let m = ws
            .expect("material_changed", |m| match m {
                ServerMsg::MaterialChanged { material, .. } => Some(material.clone()),
                _ => None,
            })
            .await;
        assert_eq!(m.id.to_string(), id);
        assert_eq!(m.status, MaterialStatus::Uploaded);
    }
    let (s, _) = app
        .post(
            &format!("/api/v1/materials/{id}/review"),
            Some(&c.operator),
            json!({ "decision": "reject", "reason": "请重新扫描" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (session, m) = terminal
        .expect("rejection", |m| match m {
            ServerMsg::MaterialChanged { session_id, material }
                if material.status == MaterialStatus::Rejected =>
            {
                Some((*session_id, material.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(session.to_string(), c.session_id);
    assert_eq!(m.reject_reason.as_deref(), Some("请重新扫描"));

    let form = upload(&app, &c.operator, &c.session_id, "f.pdf", &pdf("f", 1000)).await;
    let (s, job) = app
        .post(
            &format!("/api/v1/sessions/{}/print-jobs", c.session_id),
            Some(&c.operator),
            json!({ "material_id": form, "idempotency_key": "k" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let pushed = terminal
        .expect("print_job_changed", |m| match m {
            ServerMsg::PrintJobChanged { job } => Some(job.clone()),
            _ => None,
        })
        .await;
    assert_eq!(pushed.id.to_string(), job["id"].as_str().expect("id"));
    assert_eq!(pushed.state, PrintJobState::Pending);
    operator
        .expect("print_job_changed", |m| matches!(m, ServerMsg::PrintJobChanged { .. }).then_some(()))
        .await;
}

/// Uploads `data` in one `PATCH` and returns the final answer.
async fn upload_once(
    app: &TestApp,
    token: &str,
    session: &str,
    name: &str,
    data: &[u8],
) -> reqwest::Response {
    let location = start(app, token, session, name, data).await;
    patch(app, token, &location, 0, data, None).await
}

#[tokio::test]
async fn hostile_documents_are_refused_with_their_message_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("无交叉引用表.pdf", pdf_without_xref(), "pdf_damaged", "结构损坏"),
        ("加密.pdf", encrypted_pdf("user-pw"), "pdf_encrypted", "已加密"),
        ("仅所有者密码.pdf", encrypted_pdf(""), "pdf_encrypted", "已加密"),
        ("万页.pdf", pdf_with_pages(10_000), "pdf_too_many_pages", "共 10000 页"),
        ("炸弹.png", png_bomb(20_000), "image_too_large", "20000×20000"),
    ];
    for (name, data, code, text) in &cases {
        for token in [&c.operator, &c.device] {
            let resp = upload_once(&app, token, &c.session_id, name, data).await;
            let (status, got_code, message) = error_of(resp).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {message}");
            assert_eq!(&got_code, code, "{name}");
            assert!(message.contains(text), "{name}: {message}");
        }
    }
    // Nothing stored: no material, no object, no partial upload, no plaintext copy.
    let (_, list) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&c.operator)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    let pool = &app.state.db.pool;
    for table in ["materials", "material_objects", "uploads", "print_jobs"] {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
            .fetch_one(pool)
            .await
            .expect("count")
            .get("n");
        assert_eq!(n, 0, "{table}");
    }
    for dir in ["materials", "uploads"] {
        assert!(walk(&app.data_dir.path().join(dir)).is_empty(), "{dir} is empty");
    }
    // The same checks pass a good document, which can then be printed.
    let good = upload(&app, &c.operator, &c.session_id, "表.pdf", &pdf_with_pages(3)).await;
    let (s, _) = app
        .post(
            &format!("/api/v1/sessions/{}/print-jobs", c.session_id),
            Some(&c.operator),
            json!({ "material_id": good, "idempotency_key": "good" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn the_upload_lock_map_does_not_grow_for_unknown_or_finished_uploads() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    for _ in 0..100 {
        let at = format!("/api/v1/uploads/{}", uuid::Uuid::new_v4());
        let (s, _) = offset(&app, &c.device, &at).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let resp = patch(&app, &c.device, &at, 0, b"%PDF-", None).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = app
            .client
            .delete(app.url(&at))
            .bearer_auth(&c.device)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    upload(&app, &c.device, &c.session_id, "a.png", &png(20, 20)).await;
    assert_eq!(app.state.materials.upload_locks_held(), 0);
}

#[tokio::test]
async fn open_uploads_and_stored_bytes_have_quotas() {
    let app = TestApp::spawn_with(|c| c.materials.max_upload_bytes = 4096).await;
    let c = call(&app).await;
    let meta = |n: usize| {
        metadata(&[
            ("filename", &format!("p{n}.png")),
            ("session_id", &c.session_id),
            ("sha256", &"ab".repeat(32)),
        ])
    };
    for n in 0..20 {
        assert_eq!(create(&app, &c.device, 4096, &meta(n)).await.status(), StatusCode::CREATED, "{n}");
    }
    let (status, code, message) = error_of(create(&app, &c.device, 4096, &meta(20)).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{message}");
    assert!(message.contains("同时进行的上传"), "{message}");
    // The session's bytes (32 × 4096): the terminal's 20 open uploads and what the operator
    // stores; the first upload past the quota is refused.
    let small = png(20, 20);
    let room = 32 * 4096 - 20 * 4096;
    let fits = room / small.len();
    for n in 0..fits {
        let resp = upload_once(&app, &c.operator, &c.session_id, &format!("s{n}.png"), &small).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{n}");
    }
    let (status, code, message) = error_of(create(&app, &c.operator, small.len(), &meta(99)).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
    assert_eq!(code, "quota_exceeded");
    assert!(message.contains("上限"), "{message}");
    // Hostile lengths never pass the per-file limit.
    for len in ["18446744073709551615", "99999999999999999999999", "-1", "4097"] {
        let resp = app
            .client
            .post(app.url("/api/v1/uploads"))
            .bearer_auth(&c.device)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", len)
            .header("Upload-Metadata", meta(1))
            .send()
            .await
            .expect("sent");
        assert!(resp.status().is_client_error(), "{len}: {}", resp.status());
    }
}

#[tokio::test]
async fn uploads_of_an_ended_session_are_cleaned_up_and_its_terminal_reads_nothing() {
    let app = TestApp::spawn().await;
    let mut c = call(&app).await;
    let data = png(64, 64);
    let material = upload(&app, &c.device, &c.session_id, "a.png", &data).await;
    let half = start(&app, &c.device, &c.session_id, "b.png", &pdf("b", 5000)).await;
    let resp = patch(&app, &c.device, &half, 0, &pdf("b", 5000)[..1000], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let form = upload(&app, &c.operator, &c.session_id, "f.pdf", &pdf("f", 800)).await;
    let (s, job) = app
        .post(
            &format!("/api/v1/sessions/{}/print-jobs", c.session_id),
            Some(&c.operator),
            json!({ "material_id": form, "idempotency_key": "k1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let job = job["id"].as_str().expect("job").to_owned();
    let document = |token: String| {
        let app = &app;
        let job = job.clone();
        async move {
            app.client
                .get(app.url(&format!("/api/v1/print-jobs/{job}/document")))
                .bearer_auth(token)
                .send()
                .await
                .expect("sent")
                .status()
        }
    };
    assert_eq!(document(c.device.clone()).await, StatusCode::OK, "live: the terminal prints");
    // Another terminal of the same point never reads this job's document.
    let (_, other) = app.enroll_terminal(1).await;
    assert_eq!(document(other.clone()).await, StatusCode::FORBIDDEN);

    let untouched = start(&app, &c.operator, &c.session_id, "c.pdf", &pdf("c", 900)).await;
    // The call ended 11 minutes ago: past the grace for uploads begun during the call.
    c.end_ago(&app, 11 * 60 * 1000).await;
    // The terminal reads nothing of an ended session; the operator still can.
    let (s, _) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&c.device)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(content(&app, &c.device, &material).await.0, StatusCode::FORBIDDEN);
    assert_eq!(content(&app, &c.operator, &material).await.0, StatusCode::OK);
    assert_eq!(document(c.device.clone()).await, StatusCode::FORBIDDEN);
    // The open upload is refused and removed at its next touch...
    let resp = patch(&app, &c.device, &half, 1000, &pdf("b", 5000)[1000..], None).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(offset(&app, &c.device, &half).await.0, StatusCode::NOT_FOUND);
    // ... and the purge sweeps the untouched ones.
    let admin = app.login("admin").await;
    let (s, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(offset(&app, &c.operator, &untouched).await.0, StatusCode::NOT_FOUND);
    assert!(walk(&app.data_dir.path().join("uploads")).is_empty());
}

#[tokio::test]
async fn upload_file_names_are_encrypted_at_rest() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let name = "张三-110105195001010018-身份证.pdf";
    let id = upload(&app, &c.operator, &c.session_id, &format!("../../{name}\u{202E}"), &pdf("n", 700)).await;
    let half = start(&app, &c.device, &c.session_id, "李四-13800138000.png", &png(30, 30)).await;
    let pool = &app.state.db.pool;
    for table in ["materials", "uploads"] {
        for r in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT filename FROM {table}")))
            .fetch_all(pool)
            .await
            .expect("rows")
        {
            let stored: String = r.get("filename");
            assert!(stored.starts_with("v1:"), "{table}: {stored}");
            for secret in ["110105195001010018", "张三", "13800138000", "李四"] {
                assert!(!stored.contains(secret), "{table}: {stored}");
            }
        }
    }
    // Parties read the display name; the print job carries it too.
    let (_, m) = app.get(&format!("/api/v1/materials/{id}"), Some(&c.operator)).await;
    assert_eq!(m["filename"], name);
    let (s, job) = app
        .post(
            &format!("/api/v1/sessions/{}/print-jobs", c.session_id),
            Some(&c.operator),
            json!({ "material_id": id, "idempotency_key": "name" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["filename"], name);
    // A ciphertext copied to another row does not open there.
    sqlx::query("UPDATE uploads SET filename = (SELECT filename FROM materials LIMIT 1)")
        .execute(pool)
        .await
        .expect("copy");
    let (s, _) = offset(&app, &c.device, &half).await;
    assert_eq!(s, StatusCode::OK, "the upload goes on; its name reads as undecryptable");
}

/// `PATCH`es that end anywhere (not on the store's 64 KiB segments), a restart between them:
/// the whole-file SHA-256, computed as the bytes arrive, is recomputed from what was staged
/// and still decides. A resumed upload whose bytes differ from the declared hash is refused
/// at its last `PATCH`; the right bytes complete it and read back the same.
#[tokio::test]
async fn a_resumed_upload_after_a_restart_still_verifies_its_hash() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = pdf("resumed hash", 400_000);
    let bad = start(&app, &c.device, &c.session_id, "bad.pdf", &data).await;
    let good = start(&app, &c.device, &c.session_id, "good.pdf", &data).await;
    for location in [&bad, &good] {
        for (a, b) in [(0, 100_001), (100_001, 250_000)] {
            let resp = patch(&app, &c.device, location, a, &data[a..b], None).await;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
    }
    let app = app.restart().await;
    for location in [&bad, &good] {
        assert_eq!(offset(&app, &c.device, location).await, (StatusCode::OK, Some(250_000)));
    }
    // One byte changed in what is sent after the restart (no chunk checksum to catch it).
    let mut altered = data[250_000..].to_vec();
    altered[70_000] ^= 0x55;
    let (status, code, _) = error_of(patch(&app, &c.device, &bad, 250_000, &altered, None).await).await;
    assert_eq!((status.as_u16(), code.as_str()), (460, "checksum_mismatch"));
    assert_eq!(offset(&app, &c.device, &bad).await.0, StatusCode::NOT_FOUND, "the upload is gone");
    let resp = patch(&app, &c.device, &good, 250_000, &data[250_000..], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    assert_eq!(content(&app, &c.operator, &id).await, (StatusCode::OK, data));
    let (_, list) = app.get(&format!("/api/v1/sessions/{}/materials", c.session_id), Some(&c.operator)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "only the verified upload is a material: {list}");
    assert!(walk(&app.data_dir.path().join("uploads")).is_empty(), "nothing staged is left");
}

/// A chunk whose checksum does not match is refused (460) after part of it was already
/// received and sealed: what was acknowledged before stays, also across a restart, and the
/// upload completes with the right bytes.
#[tokio::test]
async fn a_corrupted_chunk_is_refused_and_nothing_acknowledged_is_lost() {
    use base64::Engine;
    use sha2::Digest;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = pdf("corrupted chunk", 600_000);
    let location = start(&app, &c.device, &c.session_id, "c.pdf", &data).await;
    let sum = |d: &[u8]| Some(format!("sha256 {}", b64(&sha2::Sha256::digest(d))));
    let resp = patch(&app, &c.device, &location, 0, &data[..150_000], sum(&data[..150_000])).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // 300 000 bytes, damaged on the way: the checksum is that of the right bytes.
    let mut damaged = data[150_000..450_000].to_vec();
    damaged[290_000] ^= 1;
    let resp = patch(&app, &c.device, &location, 150_000, &damaged, sum(&data[150_000..450_000])).await;
    assert_eq!(resp.status().as_u16(), 460);
    assert_eq!(offset(&app, &c.device, &location).await.1, Some(150_000));
    let app = app.restart().await;
    assert_eq!(offset(&app, &c.device, &location).await.1, Some(150_000));
    let resp = patch(&app, &c.device, &location, 150_000, &data[150_000..], sum(&data[150_000..])).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    assert_eq!(content(&app, &c.operator, &id).await, (StatusCode::OK, data));
}

/// Many uploads at once, each in several `PATCH`es: all complete, each reads back as sent,
/// and nothing of them stays behind (staged files, hashers, locks).
#[tokio::test]
async fn many_concurrent_uploads_complete() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let files: Vec<Vec<u8>> = (0..12).map(|i| pdf(&format!("concurrent {i}"), 200_000 + i * 7_919)).collect();
    let ids = futures_util::future::join_all(files.iter().enumerate().map(|(i, data)| {
        let (app, c) = (&app, &c);
        async move {
            let location = start(app, &c.device, &c.session_id, &format!("{i}.pdf"), data).await;
            let step = 50_000 + i * 1_001;
            let mut at = 0;
            let mut id = None;
            while at < data.len() {
                let end = (at + step).min(data.len());
                let resp = patch(app, &c.device, &location, at, &data[at..end], None).await;
                assert_eq!(resp.status(), StatusCode::NO_CONTENT, "upload {i} at {at}");
                id = resp.headers().get("bangban-material-id").map(|v| v.to_str().expect("id").to_owned());
                at = end;
            }
            id.expect("the last PATCH names the material")
        }
    }))
    .await;
    for (id, data) in ids.iter().zip(&files) {
        assert_eq!(content(&app, &c.operator, id).await, (StatusCode::OK, data.clone()));
    }
    assert!(walk(&app.data_dir.path().join("uploads")).is_empty(), "nothing staged is left");
    assert_eq!(app.state.materials.hashes_kept(), 0);
    assert_eq!(app.state.materials.upload_locks_held(), 0);
}

/// An upload staged by the previous release (AES-CTR throughout, `uploads/<id>`) when the
/// server is upgraded resumes where it was: converted once, then completed and verified.
#[tokio::test]
async fn an_upload_staged_before_the_sealed_format_resumes_after_the_upgrade() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    let data = pdf("staged by the previous release", 300_000);
    let location = start(&app, &c.device, &c.session_id, "old.pdf", &data).await;
    let id = location.rsplit('/').next().expect("id").to_owned();
    let acknowledged = 123_457;
    // What the previous release left: the row at the offset, the prefix under the upload's key.
    let wrapped: String = sqlx::query("SELECT wrapped_key FROM uploads WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row")
        .get("wrapped_key");
    let key = app.state.pii.unwrap_key(&wrapped, &format!("upload:{id}")).expect("key");
    sqlx::query("UPDATE uploads SET received = $1 WHERE id = $2")
        .bind(acknowledged as i64)
        .bind(&id)
        .execute(&app.state.db.pool)
        .await
        .expect("offset");
    let dir = app.data_dir.path().join("uploads");
    let simple = id.replace('-', "");
    std::fs::remove_file(dir.join(format!("{simple}.sealed"))).expect("no sealed file");
    let mut old = data[..acknowledged].to_vec();
    signaling_server::materials::crypto::UploadCipher::at(&key, 0).apply(&mut old);
    std::fs::write(dir.join(&simple), &old).expect("legacy file");
    let app = app.restart().await;
    assert_eq!(offset(&app, &c.device, &location).await, (StatusCode::OK, Some(acknowledged)));
    let resp = patch(&app, &c.device, &location, acknowledged, &data[acknowledged..], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let material = resp.headers()["bangban-material-id"].to_str().expect("id").to_owned();
    assert_eq!(content(&app, &c.operator, &material).await, (StatusCode::OK, data));
    assert!(walk(&dir).is_empty(), "neither staged file is left");
}
