use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::materials_fixture::*;

#[tokio::test]
async fn a_print_job_survives_a_restart_and_is_printed_exactly_once() {
    let app = TestApp::spawn().await;
    let c = call(&app).await;
    // The operator uploads a form to print.
    let form = pdf("申请表", 90_000);
    let material = upload(&app, &c.operator, &c.session_id, "申请表.pdf", &form).await;
    let path = format!("/api/v1/sessions/{}/print-jobs", c.session_id);
    let req = json!({ "material_id": material, "idempotency_key": "form-1" });
    let (s, job) = app.post(&path, Some(&c.operator), req.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "pending");
    assert_eq!(job["sha256"], sha256_hex(&form).as_str());
    assert_eq!(job["terminal_id"], c.terminal_id.as_str());
    assert_eq!(job["point_id"], c.point_id.as_str());
    let (s, again) = app.post(&path, Some(&c.operator), req.clone()).await;
    assert_eq!(s, StatusCode::OK, "the same key is the same job");
    assert_eq!(again["id"], job["id"]);
    let (s, _) = app
        .post(
            &path,
            Some(&c.operator),
            json!({ "material_id": uuid::Uuid::new_v4(), "idempotency_key": "form-1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a key cannot be reused for another document");
    let (s, _) =
        app.post(&path, Some(&c.device), json!({ "material_id": material, "idempotency_key": "x" })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the operator sends");
    let jid = job["id"].as_str().expect("id").to_owned();

    let app = app.restart().await;
    let (s, _) = app.post(&path, Some(&c.operator), req).await;
    assert_eq!(s, StatusCode::OK, "still exactly one job after the restart");
    let (s, pending) = app.get("/api/v1/terminals/me/print-jobs?state=pending", Some(&c.device)).await;
    assert_eq!(s, StatusCode::OK, "{pending}");
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
    assert_eq!(pending[0]["id"], jid.as_str());
    let (s, _) = app.get("/api/v1/terminals/me/print-jobs?state=pending", Some(&c.operator)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Claimed once; the same claim token again (the terminal restarted) is fine, another is not.
    let claim = format!("/api/v1/print-jobs/{jid}/claim");
    let token_a = "claim-token-aaaaaaaaaaaaaaaa";
    let (s, claimed) = app.post(&claim, Some(&c.device), json!({ "claim_token": token_a })).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["state"], "claimed");
    let (s, _) = app.post(&claim, Some(&c.device), json!({ "claim_token": token_a })).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) =
        app.post(&claim, Some(&c.device), json!({ "claim_token": "claim-token-bbbbbbbbbbbbbbbb" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, pending) = app.get("/api/v1/terminals/me/print-jobs?state=pending", Some(&c.device)).await;
    assert_eq!(pending.as_array().map(Vec::len), Some(0));

    // The document, with its digest; only the point's terminal may fetch it.
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/print-jobs/{jid}/document")))
        .bearer_auth(&c.device)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["bangban-sha256"], sha256_hex(&form).as_str());
    assert!(resp.headers()["repr-digest"].to_str().expect("digest").starts_with("sha-256=:"));
    assert_eq!(sha256_hex(&resp.bytes().await.expect("pdf")), sha256_hex(&form));
    let (_, other_terminal) = app.enroll_terminal(1).await;
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/print-jobs/{jid}/document")))
        .bearer_auth(&other_terminal)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(app.audit("print_job.download").await.iter().any(|e| e["outcome"] == "denied"));

    // Printer states; failed needs the printer's reason; no going back.
    let st = format!("/api/v1/print-jobs/{jid}/state");
    for state in ["queued", "printing"] {
        let (s, j) = app.post(&st, Some(&c.device), json!({ "state": state })).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["state"], state);
    }
    let (s, _) = app.post(&st, Some(&c.device), json!({ "state": "queued" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app.post(&st, Some(&c.device), json!({ "state": "failed" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.post(&st, Some(&other_terminal), json!({ "state": "completed" })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, j) = app.post(&st, Some(&c.device), json!({ "state": "failed", "reason": "media-empty" })).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["reason"], "media-empty");
    let (s, _) = app.post(&format!("/api/v1/print-jobs/{jid}/cancel"), Some(&c.operator), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "already finished");
    let (s, jobs) =
        app.get(&format!("/api/v1/sessions/{}/print-jobs", c.session_id), Some(&c.operator)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(jobs[0]["state"], "failed");
}

#[tokio::test]
async fn jobs_can_be_cancelled_and_expire_for_an_offline_terminal() {
    let app = TestApp::spawn_with(|c| c.materials.print_job_expiry_ms = 60_000).await;
    let c = call(&app).await;
    let form = pdf("form", 2000);
    let material = upload(&app, &c.operator, &c.session_id, "f.pdf", &form).await;
    let path = format!("/api/v1/sessions/{}/print-jobs", c.session_id);
    let (_, a) =
        app.post(&path, Some(&c.operator), json!({ "material_id": material, "idempotency_key": "a" })).await;
    let (_, b) =
        app.post(&path, Some(&c.operator), json!({ "material_id": material, "idempotency_key": "b" })).await;
    let (s, cancelled) = app
        .post(
            &format!("/api/v1/print-jobs/{}/cancel", a["id"].as_str().expect("id")),
            Some(&c.operator),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cancelled["state"], "cancelled");
    let (s, _) = app
        .post(
            &format!("/api/v1/print-jobs/{}/claim", a["id"].as_str().expect("id")),
            Some(&c.device),
            json!({ "claim_token": "0123456789abcdef" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a cancelled job cannot be claimed");
    // Only PDFs print.
    let img = upload(&app, &c.operator, &c.session_id, "i.png", &png(10, 10)).await;
    let (s, _) =
        app.post(&path, Some(&c.operator), json!({ "material_id": img, "idempotency_key": "c" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The terminal stayed away past the expiry.
    sqlx::query("UPDATE print_jobs SET expires_at = 1 WHERE id = $1")
        .bind(b["id"].as_str().expect("id"))
        .execute(&app.state.db.pool)
        .await
        .expect("age");
    let (_, pending) = app.get("/api/v1/terminals/me/print-jobs?state=pending", Some(&c.device)).await;
    assert_eq!(pending.as_array().map(Vec::len), Some(0));
    let (_, expired) = app.get("/api/v1/terminals/me/print-jobs?state=expired", Some(&c.device)).await;
    assert_eq!(expired[0]["id"], b["id"]);
}
