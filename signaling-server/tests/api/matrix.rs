//! Role × endpoint matrix: every protected endpoint refuses the anonymous caller (401) and
//! every role it is not meant for (403), and lets its own roles through to the handler.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Admin,
    Supervisor,
    Operator,
    Staff,
    Terminal,
}
use Who::*;

const PERSONS: &[Who] = &[Admin, Supervisor, Operator, Staff];
const ALL: &[Who] = &[Admin, Supervisor, Operator, Staff, Terminal];

#[tokio::test]
async fn every_endpoint_checks_authentication_and_role() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let mut tokens = Vec::new();
    for (who, user) in
        [(Admin, "admin"), (Supervisor, "supervisor"), (Operator, "operator1"), (Staff, "staff1")]
    {
        tokens.push((who, app.login(user).await));
    }
    tokens.push((Terminal, device));
    let r = uuid::Uuid::new_v4();
    let point_body = json!({
        "code": "JA-MX01", "name": "矩阵测试点", "street": "街道", "committee": "居委", "kind": "park",
        "address": "地址", "longitude": 121.45, "latitude": 31.23, "opening_hours": "9-17",
        "inspector_name": "某人", "inspector_phone": "13900000000"
    });
    let cases: Vec<(Method, String, Option<Value>, &[Who])> = vec![
        (Method::GET, "/api/v1/me".into(), None, PERSONS),
        (
            Method::POST,
            "/api/v1/me/password".into(),
            Some(json!({ "current_password": "x", "new_password": "y" })),
            PERSONS,
        ),
        (Method::GET, "/api/v1/users".into(), None, &[Admin, Supervisor]),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(
                json!({ "username": "matrix", "display_name": "矩阵", "role": "operator", "password": "Matrix-pass-1" }),
            ),
            &[Admin],
        ),
        (Method::PATCH, format!("/api/v1/users/{r}"), Some(json!({})), &[Admin]),
        (
            Method::POST,
            format!("/api/v1/users/{r}/password"),
            Some(json!({ "new_password": "Matrix-pass-2" })),
            &[Admin],
        ),
        (Method::PUT, format!("/api/v1/users/{r}/skills"), Some(json!({ "line_ids": [] })), &[Admin]),
        (Method::PUT, format!("/api/v1/users/{r}/center"), Some(json!({ "center_id": null })), &[Admin]),
        (Method::GET, "/api/v1/centers".into(), None, &[Admin, Supervisor]),
        (Method::POST, "/api/v1/centers".into(), Some(json!({ "name": "矩阵中心" })), &[Admin]),
        (Method::PATCH, format!("/api/v1/centers/{r}"), Some(json!({})), &[Admin]),
        (Method::PUT, format!("/api/v1/items/{r}/streets"), Some(json!({ "streets": [] })), &[Admin]),
        (Method::GET, "/api/v1/points".into(), None, &[Admin, Supervisor, Operator]),
        (Method::POST, "/api/v1/points".into(), Some(point_body), &[Admin]),
        (Method::GET, format!("/api/v1/points/{r}"), None, &[Admin, Supervisor, Operator]),
        (Method::PATCH, format!("/api/v1/points/{r}"), Some(json!({})), &[Admin]),
        (Method::POST, format!("/api/v1/points/{r}/close"), Some(json!({ "reason": "x" })), &[Admin]),
        (Method::POST, format!("/api/v1/points/{r}/reopen"), None, &[Admin]),
        (Method::GET, format!("/api/v1/points/{r}/history"), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/map/outline".into(), None, &[Admin, Supervisor]),
        // Staff pass the role check only for their own point (point_today.rs).
        (Method::GET, format!("/api/v1/points/{r}/today"), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/lines".into(), None, ALL),
        (Method::POST, "/api/v1/lines".into(), Some(json!({ "code": "MX", "name": "矩阵" })), &[Admin]),
        (Method::PATCH, format!("/api/v1/lines/{r}"), Some(json!({})), &[Admin]),
        (Method::GET, "/api/v1/items".into(), None, ALL),
        (Method::GET, format!("/api/v1/items/{r}"), None, ALL),
        (
            Method::POST,
            "/api/v1/items".into(),
            Some(json!({ "code": "MX-1", "name": "x", "line_id": r, "remote_allowed": true })),
            &[Admin],
        ),
        (Method::PATCH, format!("/api/v1/items/{r}"), Some(json!({})), &[Admin]),
        (Method::GET, "/api/v1/terminals".into(), None, &[Admin, Supervisor]),
        (Method::POST, "/api/v1/terminals".into(), Some(json!({ "point_id": r, "name": "x" })), &[Admin]),
        (Method::POST, format!("/api/v1/terminals/{r}/enrollment-code"), None, &[Admin]),
        (Method::POST, format!("/api/v1/terminals/{r}/revoke"), Some(json!({ "reason": "x" })), &[Admin]),
        (Method::GET, "/api/v1/audit".into(), None, &[Admin]),
        (Method::GET, "/api/v1/audit/verify".into(), None, &[Admin]),
        (Method::GET, "/api/v1/recordings".into(), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/admin/cluster".into(), None, &[Admin]),
        (Method::POST, "/api/v1/admin/keys/rotate".into(), None, &[Admin]),
        (Method::POST, "/api/v1/admin/keys/no-such-key/retire".into(), None, &[Admin]),
        (Method::GET, "/api/v1/sessions".into(), None, &[Admin, Supervisor, Operator]),
        (Method::POST, format!("/api/v1/tickets/{r}/reveal"), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/stats/summary".into(), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/stats/daily".into(), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/rectifications".into(), None, &[Admin, Supervisor]),
        (
            Method::POST,
            format!("/api/v1/rectifications/{r}/callback"),
            Some(json!({ "callback_result": "已回访" })),
            &[Admin, Supervisor],
        ),
        // Cases (issue 14): calendar, opening hours, work orders.
        (Method::GET, "/api/v1/calendar/2026".into(), None, PERSONS),
        (Method::PUT, "/api/v1/calendar/2030".into(), Some(json!({ "days": [] })), &[Admin]),
        (
            Method::POST,
            "/api/v1/calendar/import".into(),
            Some(json!({ "csv": "date,kind,festival,festival_zh\n" })),
            &[Admin],
        ),
        (Method::GET, "/api/v1/calendar/deadline?days=5".into(), None, PERSONS),
        (Method::GET, format!("/api/v1/points/{r}/opening-hours"), None, &[Admin, Supervisor, Operator]),
        (Method::PUT, format!("/api/v1/points/{r}/opening-hours"), Some(json!({ "weekly": [] })), &[Admin]),
        (Method::GET, "/api/v1/orders".into(), None, PERSONS),
        (
            Method::POST,
            "/api/v1/orders".into(),
            Some(json!({ "source": "hotline_12345", "summary": "x", "deadline": { "class": "same_day" } })),
            &[Admin, Supervisor],
        ),
        (Method::GET, format!("/api/v1/orders/{r}"), None, PERSONS),
        (
            Method::POST,
            format!("/api/v1/orders/{r}/steps"),
            Some(json!({ "step": { "action": "resume" } })),
            &[Admin, Supervisor, Operator],
        ),
        (
            Method::PUT,
            format!("/api/v1/orders/{r}/contact"),
            Some(json!({ "phone": "13800000000", "consent_text": "同意", "consent": true })),
            PERSONS,
        ),
        (Method::POST, format!("/api/v1/orders/{r}/contact/reveal"), None, &[Admin, Supervisor, Operator]),
        (
            Method::PUT,
            "/api/v1/notifications/webhook".into(),
            Some(
                json!({ "url": "ftp://x", "secret": "s", "enabled": false, "max_attempts": 1, "retry_base_ms": 100 }),
            ),
            &[Admin],
        ),
        (Method::GET, "/api/v1/notifications".into(), None, &[Admin, Supervisor]),
        (Method::POST, format!("/api/v1/notifications/{r}/retry"), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/tasks".into(), None, PERSONS),
        (Method::POST, format!("/api/v1/tasks/{r}/done"), None, PERSONS),
        (Method::GET, "/api/v1/callbacks".into(), None, &[Admin, Supervisor, Operator]),
        (
            Method::POST,
            format!("/api/v1/callbacks/{r}/result"),
            Some(json!({ "satisfied": true, "result": "x" })),
            &[Admin, Supervisor, Operator],
        ),
        (Method::PUT, "/api/v1/callbacks/settings".into(), Some(json!({ "good_share_pct": 200 })), &[Admin]),
        (Method::GET, "/api/v1/home-visits".into(), None, &[Admin, Supervisor, Staff]),
        (Method::GET, "/api/v1/problems".into(), None, &[Admin, Supervisor]),
        (
            Method::POST,
            "/api/v1/problems".into(),
            Some(json!({ "source": "inspection", "description": "", "owner": "" })),
            &[Admin, Supervisor],
        ),
        (
            Method::POST,
            format!("/api/v1/problems/{r}/steps"),
            Some(json!({ "action": "rectify", "measures": "x" })),
            &[Admin, Supervisor],
        ),
        (
            Method::POST,
            "/api/v1/home-visits".into(),
            Some(json!({ "source": "referral", "situation": "x", "address": "x" })),
            &[Admin, Supervisor],
        ),
        (
            Method::POST,
            format!("/api/v1/home-visits/{r}/steps"),
            Some(json!({ "step": { "action": "complete", "outcome": "x" } })),
            &[Admin, Supervisor, Staff],
        ),
        (Method::GET, "/api/v1/reports?period=weekly&group=street".into(), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/reports/export?period=monthly".into(), None, &[Admin, Supervisor]),
        // Keys, retention, the working-day calendar (a far year, so nothing real changes),
        // duty rosters, terminal health.
        (Method::POST, "/api/v1/admin/keys/no-such-key/retire".into(), None, &[Admin]),
        (Method::POST, "/api/v1/admin/materials/purge".into(), Some(json!({})), &[Admin]),
        (Method::GET, "/api/v1/calendar/2099".into(), None, PERSONS),
        (Method::PUT, "/api/v1/calendar/2099".into(), Some(json!({ "days": [] })), &[Admin]),
        (Method::GET, format!("/api/v1/lines/{r}/roster"), None, &[Admin, Supervisor]),
        (
            Method::PUT,
            format!("/api/v1/lines/{r}/roster"),
            Some(json!({ "weekly": [], "closures": [], "holiday_rule": "follow_calendar" })),
            &[Admin],
        ),
        // Inspections (巡检): staff pass the role check only for their own point (inspections.rs);
        // a photo or a record by its id is scoped by the record's point (404 for a random id).
        (Method::GET, "/api/v1/inspections".into(), None, &[Admin, Supervisor]),
        (Method::GET, format!("/api/v1/points/{r}/inspections"), None, &[Admin, Supervisor]),
        (
            Method::POST,
            format!("/api/v1/points/{r}/inspections"),
            Some(json!({ "checklist": [] })),
            &[Admin, Supervisor],
        ),
        (
            Method::PUT,
            format!("/api/v1/points/{r}/inspection-schedule"),
            Some(json!({ "frequency": "weekly", "weekday": 1 })),
            &[Admin, Supervisor],
        ),
        (Method::DELETE, format!("/api/v1/points/{r}/inspection-schedule"), None, &[Admin, Supervisor]),
        (
            Method::POST,
            format!("/api/v1/inspections/{r}/photos"),
            Some(json!({})),
            &[Admin, Supervisor, Staff],
        ),
        (Method::GET, format!("/api/v1/inspection-photos/{r}"), None, &[Admin, Supervisor, Staff]),
        (Method::GET, "/api/v1/terminals/health".into(), None, &[Admin, Supervisor]),
        (Method::GET, "/api/v1/terminal-alarms".into(), None, &[Admin, Supervisor]),
        // The terminal's own endpoints (device token only).
        (Method::GET, "/api/v1/terminals/me/availability".into(), None, &[Terminal]),
        (Method::GET, "/api/v1/terminals/me/print-jobs".into(), None, &[Terminal]),
        (
            Method::POST,
            "/api/v1/terminals/me/health".into(),
            Some(json!({
                "camera": { "state": "ok", "detail": null },
                "microphone": { "state": "ok", "detail": null },
                "printer": { "state": "idle", "reasons": [], "detail": null },
                "scanner": { "state": "ok", "detail": null },
                "version": "0.1.0", "uptime_secs": 1, "in_call": false
            })),
            &[Terminal],
        ),
        (
            Method::PUT,
            format!("/api/v1/terminals/me/tickets/{r}/contact"),
            Some(json!({
                "phone": "13900000000", "consent_text": "同意", "consent": true, "staff_token": "x"
            })),
            &[Terminal],
        ),
        (Method::GET, format!("/api/v1/terminals/me/appointment-slots?item_id={r}"), None, &[Terminal]),
        (
            Method::POST,
            "/api/v1/terminals/me/appointments".into(),
            Some(json!({
                "item_id": r, "slot_start": 0, "name": "王秀英", "phone": "13900000000",
                "consent_text": "同意", "consent": true, "staff_token": "x"
            })),
            &[Terminal],
        ),
        (
            Method::POST,
            "/api/v1/terminals/me/appointments/check-in".into(),
            Some(json!({ "code": "000000" })),
            &[Terminal],
        ),
        (Method::GET, "/api/v1/appointments".into(), None, &[Admin, Supervisor]),
        (Method::POST, format!("/api/v1/appointments/{r}/cancel"), None, &[Admin, Supervisor]),
    ];
    // The matrix is complete: every operation of the OpenAPI document is in it, or public, or
    // scoped by the resource it names (a party of that call, the terminal that owns the job:
    // refused with 403/404 by what it is, tested in materials.rs, print_jobs.rs, auth.rs).
    let scoped_by_resource = [
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/terminals/enroll",
        "POST /api/v1/terminals/token",
        "GET /api/v1/materials/{}",
        "GET /api/v1/materials/{}/content",
        "GET /api/v1/materials/{}/thumbnail",
        "POST /api/v1/materials/{}/review",
        "GET /api/v1/sessions/{}/materials",
        "GET /api/v1/sessions/{}/print-jobs",
        "POST /api/v1/sessions/{}/print-jobs",
        "POST /api/v1/print-jobs/{}/cancel",
        "POST /api/v1/print-jobs/{}/claim",
        "GET /api/v1/print-jobs/{}/document",
        "POST /api/v1/print-jobs/{}/state",
        "POST /api/v1/uploads",
        "HEAD /api/v1/uploads/{}",
        "PATCH /api/v1/uploads/{}",
        "DELETE /api/v1/uploads/{}",
        "GET /healthz",
        "GET /readyz",
        "GET /.well-known/jwks.json",
        "GET /api/v1/points.geojson",
        "GET /api/openapi.json",
    ];
    let template = |path: &str| -> String {
        let path = path.split('?').next().unwrap_or(path);
        path.split('/')
            .map(|seg| {
                let var = seg.starts_with('{')
                    || uuid::Uuid::parse_str(seg).is_ok()
                    || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()))
                    || seg == "no-such-key";
                if var { "{}" } else { seg }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let covered: std::collections::HashSet<String> =
        cases.iter().map(|(m, p, _, _)| format!("{m} {}", template(p))).collect();
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods = item.as_object().expect("path item").keys();
        for method in
            methods.filter(|k| matches!(k.as_str(), "get" | "post" | "put" | "patch" | "delete" | "head"))
        {
            let op = format!("{} {}", method.to_uppercase(), template(path));
            if !covered.contains(&op) && !scoped_by_resource.contains(&op.as_str()) {
                missing.push(op);
            }
        }
    }
    assert!(missing.is_empty(), "operations missing from the role matrix: {missing:#?}");

    for (method, path, body, allowed) in &cases {
        let (s, b) = app.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "anonymous {method} {path}: {b}");
        assert_eq!(b["error"]["code"], "unauthenticated");
        for (who, token) in &tokens {
            let (s, b) = app.call(method.clone(), path, Some(token), body.clone()).await;
            let code = b["error"]["code"].as_str().unwrap_or("");
            if allowed.contains(who) {
                assert!(
                    !matches!(code, "forbidden" | "unauthenticated" | "invalid_token"),
                    "{who:?} must be let through {method} {path}: {s} {b}"
                );
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{who:?} must be refused {method} {path}: {b}");
            }
        }
    }
    for public in
        ["/healthz", "/readyz", "/.well-known/jwks.json", "/api/v1/points.geojson", "/api/openapi.json"]
    {
        assert_eq!(app.get(public, None).await.0, StatusCode::OK, "{public} is public");
    }
}
