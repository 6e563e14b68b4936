//! The notification outbox against a real local HTTP receiver: HMAC-signed progress messages
//! reach the resident's consented phone through the webhook, failures are retried with
//! backoff and recorded, the last failure dead-letters, a supervisor re-queues it, and a
//! message pending when the server stops is delivered after the restart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxStatus};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::TestApp;
use crate::ws_client::item_id;

pub(crate) const SECRET: &str = "a-shared-secret-of-the-platform";
const PHONE: &str = "13912345678";

#[derive(Default)]
pub(crate) struct Receiver {
    /// Requests still to refuse with 500.
    pub(crate) fail: AtomicU32,
    /// Verified messages received, in order.
    pub(crate) got: Mutex<Vec<Value>>,
    /// Requests whose signature did not verify.
    pub(crate) bad_signatures: AtomicU32,
    /// Woken at every verified message.
    arrived: tokio::sync::Notify,
}

/// A local webhook receiver that checks the HMAC signature; returns its URL.
pub(crate) async fn receiver() -> (String, Arc<Receiver>) {
    let rx = Arc::new(Receiver::default());
    let state = rx.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let rx = state.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
                mac.update(h("x-bangban-timestamp").as_bytes());
                mac.update(b".");
                mac.update(&body);
                let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                if want != h("x-bangban-signature") {
                    rx.bad_signatures.fetch_add(1, Ordering::SeqCst);
                    return AxStatus::UNAUTHORIZED;
                }
                if rx.fail.load(Ordering::SeqCst) > 0 {
                    rx.fail.fetch_sub(1, Ordering::SeqCst);
                    return AxStatus::INTERNAL_SERVER_ERROR;
                }
                let mut v: Value = serde_json::from_slice(&body).expect("json");
                v["delivery"] = json!(h("x-bangban-delivery"));
                rx.got.lock().expect("lock").push(v);
                rx.arrived.notify_waiters();
                AxStatus::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Waits (up to 30 s) until the receiver's messages satisfy `f`, woken by each arrival.
pub(crate) async fn until(rx: &Receiver, what: &str, f: impl Fn(&[Value]) -> bool) {
    let wait = async {
        loop {
            // Registered before the check, so an arrival in between is not missed.
            let arrival = rx.arrived.notified();
            if f(&rx.got.lock().expect("lock")) {
                return;
            }
            arrival.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn notifications(app: &TestApp, token: &str, order: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/api/v1/notifications?order_id={order}"), Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

async fn wait_status(app: &TestApp, token: &str, order: &str, topic: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = notifications(app, token, order).await;
        if let Some(n) =
            list.iter().find(|n| n["topic"] == topic && n["channel"] == "webhook" && n["status"] == status)
        {
            return n.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{topic} never became {status}: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn progress_reaches_the_webhook_signed_retried_dead_lettered_and_survives_a_restart() {
    let app = TestApp::spawn().await;
    let (url, rx) = receiver().await;
    let admin = app.login("admin").await;
    let sup = app.login("supervisor").await;
    let point = app.first_point(&sup).await;
    let item = item_id(&app, &sup, "MZ-001").await;
    let (s, order) = app
        .post(
            "/api/v1/orders",
            Some(&sup),
            json!({ "source": "hotline_12345", "point_id": point["id"], "item_id": item,
                    "summary": "低保申请进度", "deadline": { "class": "five_days" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    let (s, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orders/{id}/contact"),
            Some(&sup),
            Some(json!({ "phone": PHONE, "consent_text": "同意接收办理进度短信", "consent": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // The channel is configured: the first two attempts fail, the third is delivered.
    rx.fail.store(2, Ordering::SeqCst);
    let hook =
        json!({ "url": url, "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 200 });
    let (s, v) = app.call(Method::PUT, "/api/v1/notifications/webhook", Some(&admin), Some(hook)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(SECRET), "the secret is never shown");
    until(&rx, "the accepted message", |got| !got.is_empty()).await;
    let first = rx.got.lock().expect("lock")[0].clone();
    assert_eq!(first["topic"], "order.accepted");
    assert_eq!(first["phone"], PHONE, "the resident's consented phone receives it");
    assert_eq!(first["order"]["number"], order["number"]);
    assert!(first["text"].as_str().unwrap_or_default().contains("已受理"), "{first}");
    let n = wait_status(&app, &sup, &id, "order.accepted", "delivered").await;
    let codes: Vec<i64> =
        n["history"].as_array().expect("history").iter().filter_map(|a| a["status_code"].as_i64()).collect();
    assert_eq!(codes, [500, 500, 200], "every attempt is visible: {n}");
    assert!(!n.to_string().contains(PHONE), "no phone number in the supervisors' view");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM outbox").fetch_all(&app.state.db.pool).await.expect("rows");
    assert!(stored.iter().all(|p| !p.contains(PHONE)), "no phone number at rest in the outbox");

    // Every attempt fails: dead-lettered after three; a supervisor re-queues it.
    rx.fail.store(1000, Ordering::SeqCst);
    let steps = format!("/api/v1/orders/{id}/steps");
    let step = |body: Value| app.post(&steps, Some(&sup), json!({ "step": body }));
    assert_eq!(
        step(json!({ "action": "request_materials", "note": "请补交户口簿" })).await.0,
        StatusCode::OK
    );
    let dead = wait_status(&app, &sup, &id, "order.needs_materials", "dead").await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["last_error"], "HTTP 500");
    rx.fail.store(0, Ordering::SeqCst);
    let dead_id = dead["id"].as_str().expect("id");
    let op = app.login("operator1").await;
    let (s, _) = app.post(&format!("/api/v1/notifications/{dead_id}/retry"), Some(&op), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.post(&format!("/api/v1/notifications/{dead_id}/retry"), Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    wait_status(&app, &sup, &id, "order.needs_materials", "delivered").await;
    let (s, _) = app.post(&format!("/api/v1/notifications/{dead_id}/retry"), Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "only dead letters are re-queued");

    // The receiver is down while the order completes and the server stops; after the restart
    // the pending message goes out.
    rx.fail.store(1000, Ordering::SeqCst);
    let hook =
        json!({ "url": url, "secret": SECRET, "enabled": true, "max_attempts": 20, "retry_base_ms": 200 });
    app.call(Method::PUT, "/api/v1/notifications/webhook", Some(&admin), Some(hook)).await;
    for s in [
        json!({ "action": "classify", "category": "社会救助" }),
        json!({ "action": "transfer", "department": "街道民政科" }),
    ] {
        assert_eq!(step(s).await.0, StatusCode::OK);
    }
    assert_eq!(step(json!({ "action": "complete", "result": "已批准" })).await.0, StatusCode::OK);
    let pending = wait_status(&app, &sup, &id, "order.completed", "pending").await;
    let app = app.restart().await;
    let sup = app.login("supervisor").await;
    rx.fail.store(0, Ordering::SeqCst);
    let done = wait_status(&app, &sup, &id, "order.completed", "delivered").await;
    assert_eq!(done["id"], pending["id"]);
    let got = rx.got.lock().expect("lock").clone();
    assert!(got.iter().any(|m| m["delivery"] == pending["id"] && m["topic"] == "order.completed"), "{got:?}");
    assert_eq!(rx.bad_signatures.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn escalations_reach_the_supervisors_task_list() {
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    let point = app.first_point(&sup).await;
    let item = item_id(&app, &sup, "MZ-001").await;
    let (_, order) = app
        .post(
            "/api/v1/orders",
            Some(&sup),
            json!({ "source": "good_bad_review", "point_id": point["id"], "item_id": item,
                    "summary": "好差评系统差评转办", "deadline": { "class": "same_day" } }),
        )
        .await;
    let due = order["due_at"].as_i64().expect("due");
    let cal = signaling_server::calendar::Calendar::builtin();
    let next = cal.add_working_days(signaling_server::calendar::cst_day(due), 1);
    let at = signaling_server::calendar::day_start(next) + 10 * 3_600_000;
    let raised = signaling_server::cases::orders::escalate_due(&app.state, at).await.expect("escalate");
    assert_eq!(raised.len(), 1);
    let (s, tasks) = app.get("/api/v1/tasks", Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{tasks}");
    let task = tasks
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["order_id"] == order["id"])
        .cloned()
        .expect("task");
    assert_eq!(task["topic"], "order.overdue");
    assert!(
        task["text"].as_str().unwrap_or_default().contains(order["number"].as_str().expect("n")),
        "{task}"
    );
    let op = app.login("operator1").await;
    let (_, theirs) = app.get("/api/v1/tasks", Some(&op)).await;
    assert!(
        theirs.as_array().expect("tasks").iter().all(|t| t["order_id"] != order["id"]),
        "not an operator's task"
    );
    let path = format!("/api/v1/tasks/{}/done", task["id"].as_str().expect("id"));
    assert_eq!(app.post(&path, Some(&op), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.post(&path, Some(&sup), json!({})).await.0, StatusCode::NO_CONTENT);
    let (_, tasks) = app.get("/api/v1/tasks", Some(&sup)).await;
    let task = tasks
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["order_id"] == order["id"])
        .cloned()
        .expect("task");
    assert!(task["done_at"].is_i64());
}

#[tokio::test]
async fn webhook_settings_refuse_bad_values() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    for bad in [
        json!({ "url": "ftp://x/y", "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 200 }),
        json!({ "url": "http://", "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 200 }),
        json!({ "url": format!("http://x/{}", "a".repeat(600)), "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 200 }),
        json!({ "url": "http://x/ y", "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 200 }),
        json!({ "url": "http://x/y", "secret": "short", "enabled": true, "max_attempts": 3, "retry_base_ms": 200 }),
        json!({ "url": "http://x/y", "secret": SECRET, "enabled": true, "max_attempts": 0, "retry_base_ms": 200 }),
        json!({ "url": "http://x/y", "secret": SECRET, "enabled": true, "max_attempts": 3, "retry_base_ms": 1 }),
    ] {
        let (s, e) =
            app.call(Method::PUT, "/api/v1/notifications/webhook", Some(&admin), Some(bad.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let (s, _) = app.get("/api/v1/notifications?status=lost", Some(&admin)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.get("/api/v1/notifications?order_id=nope", Some(&admin)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
