//! Inspections (巡检): a point's inspection comes due, is flagged overdue to its inspector and
//! the supervisors (once), and is recorded by the point's staff with the checklist and a photo
//! (a failed item opens a problem); staff see and record only their own point; photos are
//! bounded and checked; schedules are validated and audited.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signaling_server::calendar;
use signaling_server::db::now_ms;

use crate::helpers::TestApp;
use crate::materials_fixture::png;

const ITEMS: [&str; 9] = [
    "terminal",
    "screens",
    "camera",
    "microphone",
    "scanner",
    "printer",
    "network",
    "notices",
    "cleanliness",
];

fn checklist(failed: &[(&str, &str)]) -> Value {
    json!({
        "checklist": ITEMS.iter().map(|i| match failed.iter().find(|(f, _)| f == i) {
            Some((_, note)) => json!({ "item": i, "ok": false, "note": note }),
            None => json!({ "item": i, "ok": true }),
        }).collect::<Vec<_>>(),
        "note": "例行巡检",
    })
}

/// `YYYY-MM-DD` `days` days from today (China time), and its ISO weekday.
fn day_from_today(days: i64) -> (String, u8) {
    let d = calendar::cst_day(now_ms()) + days;
    (calendar::date_of(d), calendar::iso_weekday(d))
}

async fn points(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, v) = app.get("/api/v1/points", Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().cloned().expect("points")
}

async fn upload(app: &TestApp, token: &str, record: &str, ctype: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/inspections/{record}/photos")))
        .bearer_auth(token)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = resp.status();
    (status, serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_points_inspection_comes_due_is_flagged_and_is_recorded_with_a_photo() {
    let app = TestApp::spawn().await;
    let login = app.login_full("staff1").await;
    let staff = login["access_token"].as_str().expect("token").to_owned();
    let staff_id = login["user"]["id"].as_str().expect("id").to_owned();
    let point = login["user"]["point_id"].as_str().expect("point").to_owned();
    let supervisor = app.login("supervisor").await;

    // Weekly from three weeks ago, no grace: the last period's inspection was missed.
    let (starts_on, weekday) = day_from_today(-21);
    let body = json!({ "frequency": "weekly", "weekday": weekday, "starts_on": starts_on,
                       "grace_working_days": 0, "inspector_account_id": staff_id });
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/points/{point}/inspection-schedule"),
            Some(&supervisor),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "overdue", "{v}");
    assert_eq!(v["inspector_account_name"], "周社工");
    assert!(v["overdue_since"].as_i64().is_some_and(|t| t <= now_ms()));
    assert_eq!(app.audit("inspection.schedule").await.len(), 1);

    // The supervisor's list leads with it.
    let (s, list) = app.get("/api/v1/inspections?state=overdue", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["point_id"], point.as_str());

    // Flagged once: the supervisors' and the inspector's tasks, a webhook message for the
    // inspector; a second sweep adds nothing.
    assert_eq!(signaling_server::inspections::flag_overdue(&app.state, now_ms()).await.expect("flag"), 1);
    assert_eq!(signaling_server::inspections::flag_overdue(&app.state, now_ms()).await.expect("flag"), 0);
    for token in [&staff, &supervisor] {
        let (s, tasks) = app.get("/api/v1/tasks", Some(token)).await;
        assert_eq!(s, StatusCode::OK);
        let overdue: Vec<&Value> =
            tasks.as_array().expect("tasks").iter().filter(|t| t["topic"] == "inspection_overdue").collect();
        assert_eq!(overdue.len(), 1, "{tasks}");
        assert!(overdue[0]["text"].as_str().is_some_and(|t| t.contains("巡检超期")), "{tasks}");
    }
    let (_, notes) = app.get("/api/v1/notifications", Some(&supervisor)).await;
    let to_inspector: Vec<&Value> = notes
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["recipient"] == "inspector" && n["channel"] == "webhook")
        .collect();
    assert_eq!(to_inspector.len(), 1, "{notes}");
    assert!(!to_inspector[0]["text"].as_str().unwrap_or("").contains("139"), "no phone number stored");
    assert_eq!(app.audit("inspection.overdue").await.len(), 1);

    // Staff see it on their point's day.
    let (s, today) = app.get(&format!("/api/v1/points/{point}/today"), Some(&staff)).await;
    assert_eq!(s, StatusCode::OK, "{today}");
    assert_eq!(today["inspection"]["state"], "overdue");

    // Recorded by the point's staff: the camera failed and opens a problem.
    let (s, rec) = app
        .post(
            &format!("/api/v1/points/{point}/inspections"),
            Some(&staff),
            checklist(&[("camera", "镜头模糊")]),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rec}");
    assert_eq!(rec["failed"], 1);
    assert_eq!(rec["inspector_name"], "周社工");
    assert_eq!(rec["checklist"].as_array().map(Vec::len), Some(9));
    let problem_ids = rec["problem_ids"].as_array().cloned().expect("problems");
    assert_eq!(problem_ids.len(), 1, "{rec}");
    let (_, problems) = app.get("/api/v1/problems", Some(&supervisor)).await;
    let problem = problems
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| p["id"] == problem_ids[0])
        .cloned()
        .expect("the problem is on the list");
    assert_eq!(problem["source"], "inspection");
    assert!(
        problem["description"].as_str().is_some_and(|d| d.contains("摄像头不合格（镜头模糊）")),
        "{problem}"
    );
    assert_eq!(app.audit("inspection.record").await.len(), 1);

    // With a photo.
    let record = rec["id"].as_str().expect("id").to_owned();
    let image = png(64, 48);
    let (s, photo) = upload(&app, &staff, &record, "application/octet-stream", image.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{photo}");
    assert_eq!(photo["content_type"], "image/png");
    assert_eq!(photo["size"], image.len());
    assert_eq!(app.audit("inspection.photo_upload").await.len(), 1);
    // Stored encrypted: the plaintext is nowhere in the data directory.
    let materials = app.data_dir.path().join("materials");
    for entry in walk(&materials) {
        let stored = std::fs::read(&entry).expect("read");
        assert!(!stored.windows(image.len().min(32)).any(|w| w == &image[..image.len().min(32)]));
    }

    let photo_id = photo["id"].as_str().expect("id");
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/inspection-photos/{photo_id}")))
        .bearer_auth(&supervisor)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.expect("body").to_vec(), image);
    assert_eq!(app.audit("inspection.photo_view").await.len(), 1);

    // Done for this period; the point's view lists the record with its photo.
    let (s, mine) = app.get(&format!("/api/v1/points/{point}/inspections"), Some(&staff)).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert_eq!(mine["schedule"]["state"], "done", "{mine}");
    assert_eq!(mine["schedule"]["last_failed"], 1);
    assert_eq!(mine["records"][0]["id"], record.as_str());
    assert_eq!(mine["records"][0]["photos"][0]["id"], photo_id);
    let (_, list) = app.get("/api/v1/inspections?state=overdue", Some(&supervisor)).await;
    assert_eq!(list, json!([]));
    assert_eq!(signaling_server::inspections::flag_overdue(&app.state, now_ms()).await.expect("flag"), 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[tokio::test]
async fn staff_see_and_record_only_their_own_point() {
    let app = TestApp::spawn().await;
    let login = app.login_full("staff1").await;
    let staff = login["access_token"].as_str().expect("token").to_owned();
    let mine = login["user"]["point_id"].as_str().expect("point").to_owned();
    let supervisor = app.login("supervisor").await;
    let operator = app.login("operator1").await;
    let other = points(&app, &supervisor)
        .await
        .into_iter()
        .find(|p| p["id"] != mine.as_str())
        .expect("another point")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // A supervisor on rounds records at the other point, with a photo.
    let (s, rec) =
        app.post(&format!("/api/v1/points/{other}/inspections"), Some(&supervisor), checklist(&[])).await;
    assert_eq!(s, StatusCode::CREATED, "{rec}");
    let record = rec["id"].as_str().expect("id").to_owned();
    let (s, photo) = upload(&app, &supervisor, &record, "application/octet-stream", png(8, 8)).await;
    assert_eq!(s, StatusCode::CREATED, "{photo}");
    let photo_id = photo["id"].as_str().expect("id").to_owned();

    // Staff of another point: refused everything about it (and the refusals audited).
    let (s, _) = app.get(&format!("/api/v1/points/{other}/inspections"), Some(&staff)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.post(&format!("/api/v1/points/{other}/inspections"), Some(&staff), checklist(&[])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = upload(&app, &staff, &record, "application/octet-stream", png(8, 8)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get(&format!("/api/v1/inspection-photos/{photo_id}"), Some(&staff)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get(&format!("/api/v1/points/{other}/today"), Some(&staff)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for action in ["inspection.record", "inspection.photo_upload", "inspection.photo_view"] {
        let denied = app.audit(action).await.into_iter().filter(|e| e["outcome"] == "denied").count();
        assert_eq!(denied, 1, "{action}");
    }
    // Nor do they manage schedules or see the district's list.
    let (s, _) = app.get("/api/v1/inspections", Some(&staff)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let sched = json!({ "frequency": "weekly", "weekday": 1 });
    let (s, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/points/{mine}/inspection-schedule"),
            Some(&staff),
            Some(sched.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Operators and terminals nothing.
    for path in [format!("/api/v1/points/{mine}/inspections"), "/api/v1/inspections".into()] {
        let (s, _) = app.get(&path, Some(&operator)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }
    let (s, _) = app.get(&format!("/api/v1/inspection-photos/{photo_id}"), Some(&operator)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, device) = app.enroll_terminal(0).await;
    let (s, _) = app.get(&format!("/api/v1/points/{mine}/inspections"), Some(&device)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Their own point: allowed, and only their point's records are in it.
    let (s, v) = app.post(&format!("/api/v1/points/{mine}/inspections"), Some(&staff), checklist(&[])).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = app.get(&format!("/api/v1/points/{mine}/inspections"), Some(&staff)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["schedule"].is_null(), "no schedule yet");
    let records = v["records"].as_array().expect("records");
    assert_eq!(records.len(), 1);
    assert!(records.iter().all(|r| r["point_id"] == mine.as_str()));
}

/// IHDR of a 20,000 × 20,000 PNG: decoding would need 400 MB.
fn png_bomb() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&20_000u32.to_be_bytes());
    ihdr.extend_from_slice(&20_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x01";
    png.extend_from_slice(&2u32.to_be_bytes());
    png.extend_from_slice(idat);
    png.extend_from_slice(&crc32(idat).to_be_bytes());
    png
}

/// Encrypted objects in the store (materials and photos share it).
async fn stored_objects(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM material_objects")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn photos_are_bounded_and_checked() {
    let app = TestApp::spawn().await;
    let login = app.login_full("staff1").await;
    let staff = login["access_token"].as_str().expect("token").to_owned();
    let point = login["user"]["point_id"].as_str().expect("point").to_owned();
    let (s, rec) =
        app.post(&format!("/api/v1/points/{point}/inspections"), Some(&staff), checklist(&[])).await;
    assert_eq!(s, StatusCode::CREATED, "{rec}");
    let record = rec["id"].as_str().expect("id").to_owned();

    // Over 10 MiB: refused with the API's error body.
    let (s, v) =
        upload(&app, &staff, &record, "application/octet-stream", vec![0xFF; 10 * 1024 * 1024 + 1]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "too_large");
    // Not an image, or an image type not taken (a PDF, a GIF).
    for body in [b"MZ\x90\0 not an image".to_vec(), b"%PDF-1.7\n...".to_vec(), b"GIF89a......".to_vec()] {
        let (s, v) = upload(&app, &staff, &record, "application/octet-stream", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["code"], "unsupported_type");
    }
    // A decompression bomb is refused from its header; a truncated image too.
    let (s, v) = upload(&app, &staff, &record, "application/octet-stream", png_bomb()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "image_too_large");
    let (s, v) =
        upload(&app, &staff, &record, "application/octet-stream", b"\x89PNG\r\n\x1a\n".to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "image_damaged");
    // The wrong content type.
    let (s, v) = upload(&app, &staff, &record, "image/png", png(8, 8)).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    // No such record.
    let (s, _) =
        upload(&app, &staff, &uuid::Uuid::new_v4().to_string(), "application/octet-stream", png(8, 8)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // At most six photos per inspection (the same content stored once).
    for _ in 0..6 {
        let (s, v) = upload(&app, &staff, &record, "application/octet-stream", png(8, 8)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = upload(&app, &staff, &record, "application/octet-stream", png(9, 9)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(stored_objects(&app).await, 1, "identical photos are stored once");
    // A photo outlives the materials retention purge (it is not a call's material).
    let admin = app.login("admin").await;
    let (s, _) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = app.get(&format!("/api/v1/points/{point}/inspections"), Some(&staff)).await;
    let photo = v["records"][0]["photos"][0]["id"].as_str().expect("photo").to_owned();
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/inspection-photos/{photo}")))
        .bearer_auth(&staff)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);

    // Taken longer ago than the retention: the purge deletes the photos and their stored
    // content (audited); the inspection record and its checklist stay.
    sqlx::query("UPDATE inspection_photos SET created_at = created_at - $1")
        .bind(200_i64 * 86_400_000)
        .execute(&app.state.db.pool)
        .await
        .expect("age");
    let (s, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["inspection_photos_purged"], 6, "{r}");
    assert_eq!(app.audit("inspection_photo.purge").await.len(), 6);
    let (_, v) = app.get(&format!("/api/v1/points/{point}/inspections"), Some(&staff)).await;
    assert_eq!(v["records"][0]["id"], record.as_str());
    assert_eq!(v["records"][0]["photos"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["records"][0]["checklist"].as_array().map(Vec::len), Some(9), "{v}");
    let (s, _) = app.get(&format!("/api/v1/inspection-photos/{photo}"), Some(&staff)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(stored_objects(&app).await, 0, "the stored content is gone");
    let (_, r) = app.post("/api/v1/admin/materials/purge", Some(&admin), json!({})).await;
    assert_eq!(r["inspection_photos_purged"], 0, "idempotent");
}

#[tokio::test]
async fn schedules_are_validated_and_removed() {
    let app = TestApp::spawn().await;
    let supervisor = app.login("supervisor").await;
    let all = points(&app, &supervisor).await;
    let login = app.login_full("staff1").await;
    let staff_id = login["user"]["id"].as_str().expect("id").to_owned();
    let mine = login["user"]["point_id"].as_str().expect("point").to_owned();
    let other =
        all.iter().find(|p| p["id"] != mine.as_str()).expect("other")["id"].as_str().expect("id").to_owned();
    let path = |p: &str| format!("/api/v1/points/{p}/inspection-schedule");
    let put = |p: String, body: Value| {
        let app = &app;
        let token = supervisor.clone();
        async move { app.call(Method::PUT, &p, Some(&token), Some(body)).await }
    };

    for bad in [
        json!({ "frequency": "weekly", "weekday": 8 }),
        json!({ "frequency": "weekly", "weekday": 1, "grace_working_days": 6 }),
        json!({ "frequency": "weekly", "weekday": 1, "starts_on": "2026-02-30" }),
        json!({ "frequency": "weekly", "weekday": 1, "starts_on": day_from_today(400).0 }),
        json!({ "frequency": "daily", "weekday": 1 }),
        json!({ "frequency": "weekly", "weekday": 1, "extra": true }),
        // The staff account of another point is not this point's inspector.
        json!({ "frequency": "weekly", "weekday": 1, "inspector_account_id": staff_id }),
    ] {
        let (s, v) = put(path(&other), bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, _) =
        put(path(&uuid::Uuid::new_v4().to_string()), json!({ "frequency": "weekly", "weekday": 1 })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Removing is idempotent: a point without a schedule answers 204, an unknown point 404.
    let (s, _) = app.call(Method::DELETE, &path(&other), Some(&supervisor), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) =
        app.call(Method::DELETE, &path(&uuid::Uuid::new_v4().to_string()), Some(&supervisor), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A closed point takes no schedule.
    let admin = app.login("admin").await;
    let (s, v) =
        app.post(&format!("/api/v1/points/{other}/close"), Some(&admin), json!({ "reason": "装修" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = put(path(&other), json!({ "frequency": "weekly", "weekday": 1 })).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Starting next week on a monthly rhythm: upcoming, due on a working day.
    let (starts_on, weekday) = day_from_today(7);
    let (s, v) =
        put(path(&mine), json!({ "frequency": "monthly", "weekday": weekday, "starts_on": starts_on })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "upcoming");
    assert_eq!(v["grace_working_days"], 2);
    let due = calendar::parse_date(v["due_on"].as_str().expect("due_on")).expect("date");
    assert!(calendar::Calendar::builtin().is_working_day(due) || calendar::civil(due).0 > 2026);
    // Replaced, not duplicated.
    let (s, v) = put(path(&mine), json!({ "frequency": "biweekly", "weekday": 3 })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) = app.get("/api/v1/inspections", Some(&supervisor)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["frequency"], "biweekly");
    // A bad query parameter is refused.
    let (s, _) = app.get("/api/v1/inspections?state=late", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.get("/api/v1/inspections?stat=due", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, _) = app.call(Method::DELETE, &path(&mine), Some(&supervisor), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Again: nothing left to remove, still 204, and nothing more audited.
    let (s, _) = app.call(Method::DELETE, &path(&mine), Some(&supervisor), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.audit("inspection.schedule").await.len(), 2);
    assert_eq!(app.audit("inspection.schedule_delete").await.len(), 1);
}

#[tokio::test]
async fn a_device_alarm_goes_to_the_points_inspector() {
    let app = TestApp::spawn().await;
    let login = app.login_full("staff1").await;
    let staff = login["access_token"].as_str().expect("token").to_owned();
    let staff_id = login["user"]["id"].as_str().expect("id").to_owned();
    let point = login["user"]["point_id"].as_str().expect("point").to_owned();
    let supervisor = app.login("supervisor").await;
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/points/{point}/inspection-schedule"),
            Some(&supervisor),
            Some(json!({ "frequency": "weekly", "weekday": 1, "inspector_account_id": staff_id })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // staff1's point's terminal, enrolled and then silent for an hour: offline (no structured
    // hours, so the point counts as open).
    let index = app
        .enrollment
        .iter()
        .position(|(code, _)| code == v["point_code"].as_str().unwrap_or(""))
        .expect("the point's terminal");
    let (_, device) = app.enroll_terminal(index).await;
    let _ = device;
    signaling_server::terminal_health::sweep(&app.state, None, now_ms() + 3_600_000).await.expect("sweep");
    let (_, tasks) = app.get("/api/v1/tasks", Some(&staff)).await;
    let alarms: Vec<&Value> =
        tasks.as_array().expect("tasks").iter().filter(|t| t["topic"] == "device_alarm").collect();
    assert_eq!(alarms.len(), 1, "{tasks}");
    assert!(alarms[0]["text"].as_str().is_some_and(|t| t.contains("终端离线")), "{tasks}");
    let (_, notes) = app.get("/api/v1/notifications", Some(&supervisor)).await;
    assert!(
        notes
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n["topic"] == "device_alarm" && n["recipient"] == "inspector"),
        "{notes}"
    );
}
