//! The kiosk's local API refuses hostile bodies with a clear error and changes nothing: oversized
//! bodies, wrong types, unknown fields, out-of-range values, bad staff sign-ins.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::helpers::*;

async fn post_raw(ep: &Endpoint, path: &str, body: String) -> Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", ep.kiosk))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_kiosk_requests_are_refused_and_change_nothing() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let mut ep = Endpoint::enroll_and_run(&server, &code).await?;
    ep.wait_status("connected", |s| s["connected"] == true && s["phase"] == "idle").await?;

    let cases: Vec<(&str, String, u16)> = vec![
        ("/api/ticket", "x".repeat(64 * 1024), 413),
        ("/api/ticket", "{\"item_id\": 42}".into(), 422),
        ("/api/ticket", json!({ "item_id": uuid::Uuid::new_v4(), "evil": true }).to_string(), 422),
        ("/api/ticket", json!({ "item_id": "../../etc/passwd" }).to_string(), 422),
        ("/api/ticket", "{\"item_id\":".into(), 400),
        ("/api/rate", json!({ "level": "best_ever" }).to_string(), 422),
        ("/api/rate", json!({ "level": "satisfied", "comment": "长".repeat(5000) }).to_string(), 422),
        ("/api/volume", json!({ "percent": 1000 }).to_string(), 422),
        ("/api/volume", json!({ "percent": -1 }).to_string(), 422),
        ("/api/mic", json!({ "muted": "yes" }).to_string(), 422),
        ("/api/scan", json!({ "pages": "all" }).to_string(), 422),
        ("/api/staff/login", json!({ "username": "a".repeat(10_000), "password": "x" }).to_string(), 422),
        ("/api/staff/login", json!({ "username": "staff1" }).to_string(), 422),
        ("/api/staff/login", json!({ "username": "staff1", "password": "wrong" }).to_string(), 401),
        ("/api/staff/login", json!({ "username": "operator1", "password": "bangban-demo" }).to_string(), 403),
    ];
    for (path, body, want) in cases {
        let (status, v) = post_raw(&ep, path, body.clone()).await?;
        assert_eq!(status, want, "{path} {:.60}: {v}", body);
        if status != 413 && status != 400 {
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: a readable error: {v}");
        }
    }
    // Mute outside a call is refused; nothing changed: idle, no staff, full volume, no ticket.
    let (status, _) = post_raw(&ep, "/api/mic", json!({ "muted": true }).to_string()).await?;
    assert_eq!(status, 409);
    let s = ep.get("/api/status").await?;
    assert_eq!(s["phase"], "idle", "{s}");
    assert_eq!(s["staff"], Value::Null, "{s}");
    assert_eq!(s["call"]["volume"], 100, "{s}");
    assert_eq!(s["ticket_number"], Value::Null, "{s}");
    Ok(())
}
