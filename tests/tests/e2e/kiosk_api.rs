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

/// Another page in the kiosk browser (a cross-site form post, a DNS-rebinding host name)
/// cannot end a call, sign staff out or read the status: the kiosk API refuses requests whose
/// `Host` is not a loopback name of the kiosk or whose `Origin` is not its own page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_pages_cannot_use_the_kiosk_api() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let mut ep = Endpoint::enroll_and_run(&server, &code).await?;
    ep.wait_status("connected", |s| s["connected"] == true && s["phase"] == "idle").await?;
    ep.post("/api/staff/login", json!({ "username": "staff1", "password": "bangban-demo" })).await?;
    ep.wait_status("staff signed in", |s| s["staff"].is_object()).await?;
    let port = ep.kiosk.rsplit(':').next().context("port")?.to_owned();
    let http = reqwest::Client::new();
    let own = format!("http://127.0.0.1:{port}");
    let hostile: Vec<(&str, Vec<(&str, String)>)> = vec![
        // DNS rebinding: the attacker's name resolves to 127.0.0.1.
        ("rebinding host", vec![("host", format!("evil.example:{port}"))]),
        (
            "rebinding host with own origin",
            vec![("host", format!("evil.example:{port}")), ("origin", format!("http://evil.example:{port}"))],
        ),
        ("cross-site form post", vec![("origin", "http://evil.example".into())]),
        ("opaque origin", vec![("origin", "null".into())]),
        ("another local page", vec![("origin", "http://127.0.0.1:9".into())]),
        ("fetch metadata", vec![("sec-fetch-site", "cross-site".into())]),
    ];
    for (what, hs) in &hostile {
        for (method, path) in [
            ("POST", "/api/staff/logout"),
            ("POST", "/api/cancel"),
            ("GET", "/api/status"),
            ("GET", "/api/events"),
        ] {
            let mut rq = if method == "POST" {
                http.post(format!("{own}{path}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("x=1")
            } else {
                http.get(format!("{own}{path}"))
            };
            for (k, v) in hs {
                rq = rq.header(*k, v);
            }
            let r = rq.send().await?;
            assert_eq!(r.status().as_u16(), 403, "{what}: {method} {path}");
            let body = r.text().await?;
            assert!(!body.contains("phase"), "{what}: {path} leaks the status: {body}");
        }
    }
    // Nothing changed: staff are still signed in; the kiosk's own page is answered.
    let s = http.get(format!("{own}/api/status")).header("origin", &own).send().await?;
    assert_eq!(s.status().as_u16(), 200);
    let s: Value = s.json().await?;
    assert!(s["staff"].is_object(), "staff still signed in: {s}");
    assert!(s["staff"].get("username").is_none(), "no username in the status: {s}");
    Ok(())
}
