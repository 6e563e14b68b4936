//! Terminal health: heartbeats stored and shown to admins and supervisors, who may read them,
//! hostile heartbeats refused with nothing stored, printer-fault and offline alarms opened
//! and cleared (and audited).

use reqwest::StatusCode;
use serde_json::{Value, json};

use shared::api::AlarmKind;
use shared::protocol::{ClientMsg, ServerMsg};

use crate::helpers::TestApp;
use crate::ws_client::WsClient;

fn report(version: &str) -> Value {
    json!({
        "camera": { "state": "ok", "detail": "test source" },
        "microphone": { "state": "ok", "detail": "test source" },
        "printer": { "state": "idle", "reasons": [], "detail": null },
        "scanner": { "state": "ok", "detail": "test:0" },
        "disk": { "free_bytes": 40_000_000_000u64, "total_bytes": 64_000_000_000u64 },
        "version": version,
        "uptime_secs": 42,
        "in_call": false
    })
}

const HEALTH: &str = "/api/v1/terminals/me/health";

async fn board(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, b) = app.get("/api/v1/terminals/health", Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b.as_array().cloned().expect("array")
}

fn row<'a>(board: &'a [Value], terminal_id: &str) -> &'a Value {
    board.iter().find(|t| t["terminal_id"] == terminal_id).expect("terminal on the board")
}

/// The terminal ID inside a device token (its `sub`).
fn terminal_id(device: &str) -> String {
    let payload = device.split('.').nth(1).expect("jwt payload");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["sub"].as_str().expect("sub").to_owned()
}

#[tokio::test]
async fn heartbeat_is_stored_and_shown_to_admins_and_supervisors_only() {
    let app = TestApp::spawn().await;
    let (_, dev_a) = app.enroll_terminal(0).await;
    let (_, dev_b) = app.enroll_terminal(1).await;
    let (a, b) = (terminal_id(&dev_a), terminal_id(&dev_b));
    let supervisor = app.login("supervisor").await;
    let admin = app.login("admin").await;

    let before = board(&app, &supervisor).await;
    assert!(row(&before, &a)["report"].is_null());
    assert_eq!(row(&before, &a)["online"], true, "a token exchange counts as contact");

    let (s, body) = app.post(HEALTH, Some(&dev_a), report("0.1.0")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let mut other = report("9.9.9");
    other["printer"] = json!({ "state": "processing", "reasons": ["media-low-report"] });
    let (s, _) = app.post(HEALTH, Some(&dev_b), other).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    for token in [&supervisor, &admin] {
        let list = board(&app, token).await;
        let ra = row(&list, &a);
        assert_eq!(ra["report"], report("0.1.0"), "stored as sent");
        assert_eq!(ra["online"], true);
        assert!(ra["reported_at"].is_i64() && ra["last_seen_at"].as_i64() >= ra["reported_at"].as_i64());
        assert_eq!(ra["alarms"], json!([]));
        // Each terminal writes only its own row.
        let rb = row(&list, &b);
        assert_eq!(rb["report"]["version"], "9.9.9");
        assert_eq!(rb["report"]["printer"]["reasons"], json!(["media-low-report"]));
        assert_eq!(rb["alarms"], json!([]), "a -report reason is no fault");
    }

    // Operators and staff may not read; people may not write; a device may not read.
    for who in ["operator1", "staff1"] {
        let token = app.login(who).await;
        let (s, _) = app.get("/api/v1/terminals/health", Some(&token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
        let (s, _) = app.get("/api/v1/terminal-alarms", Some(&token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
        let (s, _) = app.post(HEALTH, Some(&token), report("6.6.6")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: an access token is not a device token");
    }
    let (s, _) = app.post(HEALTH, Some(&supervisor), report("6.6.6")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get("/api/v1/terminals/health", Some(&dev_a)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.post(HEALTH, None, report("6.6.6")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let list = board(&app, &admin).await;
    assert_eq!(row(&list, &a)["report"]["version"], "0.1.0", "nothing overwritten");

    // A revoked terminal's token stops working at once, and it leaves the board.
    let (s, _) =
        app.post(&format!("/api/v1/terminals/{a}/revoke"), Some(&admin), json!({ "reason": "更换" })).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.post(HEALTH, Some(&dev_a), report("0.1.1")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(board(&app, &admin).await.iter().all(|t| t["terminal_id"] != a.as_str()));

    // Documented in the OpenAPI document.
    let (_, doc) = app.get("/api/openapi.json", None).await;
    for path in [HEALTH, "/api/v1/terminals/health", "/api/v1/terminal-alarms"] {
        assert!(doc["paths"][path].is_object(), "{path} in openapi.json");
    }
}

#[tokio::test]
async fn hostile_heartbeats_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, dev) = app.enroll_terminal(0).await;
    let id = terminal_id(&dev);
    let admin = app.login("admin").await;

    let with = |path: &[&str], v: Value| {
        let mut r = report("0.1.0");
        let mut cur = &mut r;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = v;
        r
    };
    let many: Vec<String> = (0..17).map(|i| format!("reason-{i}")).collect();
    let huge: Vec<String> = (0..10_000).map(|_| "media-empty-error".to_owned()).collect();
    let cases: Vec<(&str, Value, StatusCode)> = vec![
        (
            "oversized detail",
            with(&["camera", "detail"], json!("镜".repeat(8000))),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("huge array", with(&["printer", "reasons"], json!(huge)), StatusCode::PAYLOAD_TOO_LARGE),
        ("17 reasons", with(&["printer", "reasons"], json!(many)), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "long detail",
            with(&["scanner", "detail"], json!("x".repeat(201))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "control chars",
            with(&["camera", "detail"], json!("ok\u{1b}[2J")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bidi override",
            with(&["printer", "detail"], json!("ok\u{202E}gnp")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("bad reason", with(&["printer", "reasons"], json!(["<script>"])), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "long reason",
            with(&["printer", "reasons"], json!(["a".repeat(65)])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("wrong type", with(&["uptime_secs"], json!("forever")), StatusCode::UNPROCESSABLE_ENTITY),
        ("negative", with(&["uptime_secs"], json!(-1)), StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown state", with(&["printer", "state"], json!("on_fire")), StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown field", with(&["extra"], json!(1)), StatusCode::UNPROCESSABLE_ENTITY),
        ("empty version", with(&["version"], json!("  ")), StatusCode::UNPROCESSABLE_ENTITY),
        ("long version", with(&["version"], json!("1".repeat(65))), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "free > total",
            with(&["disk"], json!({ "free_bytes": 2, "total_bytes": 1 })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown disk level",
            with(&["disk"], json!({ "free_bytes": 1, "total_bytes": 2, "level": "overflowing" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative disk use",
            with(&["disk"], json!({ "free_bytes": 1, "total_bytes": 2, "used_bytes": -5 })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("array body", json!([1, 2, 3]), StatusCode::UNPROCESSABLE_ENTITY),
        ("missing fields", json!({ "version": "1" }), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (name, body, want) in cases {
        let (s, err) = app.post(HEALTH, Some(&dev), body).await;
        assert_eq!(s, want, "{name}: {err}");
        assert!(err["error"]["code"].is_string(), "{name}: error body {err}");
    }
    let resp = app
        .client
        .post(app.url(HEALTH))
        .bearer_auth(&dev)
        .header("content-type", "application/json")
        .body("{\"camera\": {\"state\": \"ok\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "truncated JSON");

    let list = board(&app, &admin).await;
    assert!(row(&list, &id)["report"].is_null(), "nothing stored");
    assert!(row(&list, &id)["reported_at"].is_null());
    let (_, alarms) = app.get("/api/v1/terminal-alarms?state=all", Some(&admin)).await;
    assert_eq!(alarms["alarms"], json!([]));

    for q in ["state=closed", "limit=0", "limit=201", "offset=-1", "offset=100001", "limit=x", "other=1"] {
        let (s, _) = app.get(&format!("/api/v1/terminal-alarms?{q}"), Some(&admin)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
    }
}

#[tokio::test]
async fn a_printer_fault_opens_an_alarm_until_the_printer_recovers() {
    let app = TestApp::spawn().await;
    let (_, dev) = app.enroll_terminal(0).await;
    let id = terminal_id(&dev);
    let supervisor = app.login("supervisor").await;
    let (mut ws, _welcome) = WsClient::connect(&app, &supervisor).await;
    let operator = app.login("operator1").await;
    let (mut op_ws, _welcome) = WsClient::connect(&app, &operator).await;

    let mut jammed = report("0.1.0");
    jammed["printer"] =
        json!({ "state": "stopped", "reasons": ["media-empty-error", "cups-waiting-for-job-completed"] });
    let (s, _) = app.post(HEALTH, Some(&dev), jammed.clone()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Reported twice: still one alarm.
    let (s, _) = app.post(HEALTH, Some(&dev), jammed).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let list = board(&app, &supervisor).await;
    let alarms = row(&list, &id)["alarms"].as_array().cloned().expect("alarms");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["kind"], "printer_fault");
    assert_eq!(alarms[0]["detail"], "media-empty-error");
    assert!(alarms[0]["cleared_at"].is_null());
    let (s, open) = app.get("/api/v1/terminal-alarms", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(open["alarms"].as_array().map(Vec::len), Some(1));
    assert_eq!(open["alarms"][0]["terminal_id"], id.as_str());
    assert!(open["alarms"][0]["terminal_name"].is_string() && open["alarms"][0]["point_name"].is_string());
    // Connected supervisors are told at once; operators are not.
    let pushed = ws
        .expect("terminal_alarm (raised)", |m| match m {
            ServerMsg::TerminalAlarm { alarm } => Some(alarm.clone()),
            _ => None,
        })
        .await;
    assert_eq!(pushed.kind, AlarmKind::PrinterFault);
    assert_eq!(pushed.terminal_id.to_string(), id);
    assert!(pushed.cleared_at.is_none());

    let (s, _) = app.post(HEALTH, Some(&dev), report("0.1.0")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let list = board(&app, &supervisor).await;
    assert_eq!(row(&list, &id)["alarms"], json!([]));
    let (_, open) = app.get("/api/v1/terminal-alarms?state=open", Some(&supervisor)).await;
    assert_eq!(open["alarms"], json!([]));
    let (_, all) = app.get("/api/v1/terminal-alarms?state=all", Some(&supervisor)).await;
    assert!(all["alarms"][0]["cleared_at"].is_i64(), "{all}");
    let pushed = ws
        .expect("terminal_alarm (cleared)", |m| match m {
            ServerMsg::TerminalAlarm { alarm } if alarm.cleared_at.is_some() => Some(alarm.clone()),
            _ => None,
        })
        .await;
    assert_eq!(pushed.kind, AlarmKind::PrinterFault);
    // The switchboard handles events in order: by the operator's status answer any alarm meant
    // for it would have arrived.
    op_ws.send(&ClientMsg::SetAvailability { available: true }).await;
    op_ws.expect("operator_status", |m| matches!(m, ServerMsg::OperatorStatus { .. }).then_some(())).await;
    assert!(
        !op_ws.seen.iter().any(|m| matches!(m, ServerMsg::TerminalAlarm { .. })),
        "operators get no terminal alarms"
    );

    let raised = app.audit("terminal.alarm_raise").await;
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0]["target_id"], id.as_str());
    assert_eq!(raised[0]["detail"]["kind"], "printer_fault");
    let cleared = app.audit("terminal.alarm_clear").await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0]["detail"]["reason"], "printer_ok");
}

#[tokio::test]
async fn a_silent_terminal_raises_an_offline_alarm_that_clears_when_it_reports() {
    let app = TestApp::spawn_with(|c| {
        c.terminal_offline_after_ms = 1_500;
        c.health_check_interval_ms = 100;
    })
    .await;
    let (_, dev) = app.enroll_terminal(0).await;
    let id = terminal_id(&dev);
    let supervisor = app.login("supervisor").await;
    // Supervisors are told of alarms over the socket: the test waits on that event.
    let (mut ws, _welcome) = WsClient::connect(&app, &supervisor).await;
    let (s, _) = app.post(HEALTH, Some(&dev), report("0.1.0")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The terminal falls silent.
    let pushed = ws
        .expect("the offline alarm", |m| match m {
            ServerMsg::TerminalAlarm { alarm }
                if alarm.terminal_id.to_string() == id
                    && alarm.kind == AlarmKind::Offline
                    && alarm.cleared_at.is_none() =>
            {
                Some(alarm.clone())
            }
            _ => None,
        })
        .await;
    let (_, page) = app.get("/api/v1/terminal-alarms?state=open", Some(&supervisor)).await;
    let alarms = page["alarms"].as_array().cloned().unwrap_or_default();
    let offline = alarms.iter().find(|x| x["kind"] == "offline").cloned().expect("offline");
    assert_eq!(offline["id"], pushed.id.to_string(), "the pushed alarm is the listed one");
    assert_eq!(alarms.len(), 1, "only the enrolled terminal; pending ones never alarm: {alarms:?}");
    let list = board(&app, &supervisor).await;
    assert_eq!(row(&list, &id)["online"], false);
    assert_eq!(row(&list, &id)["alarms"][0]["id"], offline["id"]);
    // It stays one alarm while the monitor keeps looking.
    let raised_once = app.audit("terminal.alarm_raise").await;
    assert_eq!(raised_once.len(), 1);
    assert_eq!(raised_once[0]["detail"]["kind"], "offline");

    // It reports again: cleared by that very heartbeat.
    let (s, _) = app.post(HEALTH, Some(&dev), report("0.1.0")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    ws.expect("the offline alarm cleared", |m| match m {
        ServerMsg::TerminalAlarm { alarm } if alarm.id == pushed.id && alarm.cleared_at.is_some() => Some(()),
        _ => None,
    })
    .await;
    let (_, all) = app.get("/api/v1/terminal-alarms?state=all&limit=200", Some(&supervisor)).await;
    let first = all["alarms"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == offline["id"]).cloned())
        .expect("still listed");
    assert!(first["cleared_at"].as_i64() >= first["opened_at"].as_i64(), "{first}");
    let cleared = app.audit("terminal.alarm_clear").await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0]["detail"]["reason"], "back_online");
    assert_eq!(cleared[0]["target_id"], id.as_str());

    // Paging: one per page.
    let (_, p1) = app.get("/api/v1/terminal-alarms?state=all&limit=1", Some(&supervisor)).await;
    assert_eq!(p1["alarms"].as_array().map(Vec::len), Some(1));
    if all["alarms"].as_array().map_or(0, Vec::len) > 1 {
        assert_eq!(p1["next_offset"], 1);
    } else {
        assert!(p1["next_offset"].is_null());
    }
}

/// A point's ID by its code.
async fn point_id(app: &TestApp, token: &str, code: &str) -> String {
    let (_, points) = app.get("/api/v1/points", Some(token)).await;
    let list = points.as_array().cloned().unwrap_or_default();
    let p = list.iter().find(|p| p["code"] == code).expect("point");
    p["id"].as_str().expect("id").to_owned()
}

/// Sets a point's hours: open around the clock, or closed today (China time) by a closure.
async fn set_hours(app: &TestApp, admin: &str, point: &str, closed_today: bool) {
    let today = signaling_server::calendar::cst_day(signaling_server::db::now_ms());
    let date = signaling_server::calendar::date_of(today);
    let closures = if closed_today {
        json!([{ "from": date, "to": date, "reason": "夜间关机" }])
    } else {
        json!([])
    };
    let body = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00" }],
        "holiday_rule": "ignore_calendar", "closures": closures
    });
    let path = format!("/api/v1/points/{point}/opening-hours");
    let (s, v) = app.call(reqwest::Method::PUT, &path, Some(admin), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["open_now"], !closed_today);
}

/// Device alarms follow the point's opening hours: a terminal at a closed point raises neither
/// its offline nor its printer alarm (while one at an open point does, in the same sweep), and
/// raises both once the point opens; an alarm open when the point closes stays open, is not
/// raised again and still clears.
#[tokio::test]
async fn a_closed_point_raises_no_device_alarms_until_it_opens() {
    let app = TestApp::spawn_with(|c| {
        c.terminal_offline_after_ms = 1_500;
        c.health_check_interval_ms = 100;
    })
    .await;
    let admin = app.login("admin").await;
    let supervisor = app.login("supervisor").await;
    let closed = point_id(&app, &admin, &app.enrollment[0].0).await;
    assert_ne!(app.enrollment[0].0, app.enrollment[1].0, "two points");
    set_hours(&app, &admin, &closed, true).await;
    let (mut ws, _welcome) = WsClient::connect(&app, &supervisor).await;

    // Terminal A at the closed point reports a jammed printer: the heartbeat runs the rule at
    // once, and nothing is raised.
    let (_, dev_a) = app.enroll_terminal(0).await;
    let a = terminal_id(&dev_a);
    let mut jammed = report("0.1.0");
    jammed["printer"] = json!({ "state": "stopped", "reasons": ["media-empty-error"] });
    let (s, _) = app.post(HEALTH, Some(&dev_a), jammed.clone()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(row(&board(&app, &supervisor).await, &a)["alarms"], json!([]), "closed: no printer alarm");

    // Terminal B at the other point (no structured hours: always open) is last in contact
    // after A, so the sweep that finds B offline finds A offline too.
    let (_, dev_b) = app.enroll_terminal(1).await;
    let b = terminal_id(&dev_b);
    let b_alarm = ws
        .expect("B's offline alarm", |m| match m {
            ServerMsg::TerminalAlarm { alarm } if alarm.terminal_id.to_string() == b => Some(alarm.clone()),
            ServerMsg::TerminalAlarm { alarm } if alarm.terminal_id.to_string() == a => {
                panic!("an alarm for a terminal at a closed point: {alarm:?}")
            }
            _ => None,
        })
        .await;
    assert_eq!(b_alarm.kind, AlarmKind::Offline);
    let list = board(&app, &supervisor).await;
    assert_eq!(row(&list, &a)["online"], false, "A is offline, shown as such");
    assert_eq!(row(&list, &a)["alarms"], json!([]), "but raises nothing while its point is closed");

    // The point opens with A still silent and jammed: both alarms are raised then.
    let opened_at = signaling_server::db::now_ms();
    set_hours(&app, &admin, &closed, false).await;
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let alarm = ws
            .expect("A's alarms", |m| match m {
                ServerMsg::TerminalAlarm { alarm }
                    if alarm.terminal_id.to_string() == a && alarm.cleared_at.is_none() =>
                {
                    Some(alarm.clone())
                }
                _ => None,
            })
            .await;
        assert!(alarm.opened_at >= opened_at, "raised after the point opened, not before: {alarm:?}");
        kinds.push(alarm.kind);
    }
    assert!(kinds.contains(&AlarmKind::Offline) && kinds.contains(&AlarmKind::PrinterFault), "{kinds:?}");

    // It closes again: the open printer alarm stays listed and is not raised again when A
    // reports the same fault; the offline one clears as A is back.
    set_hours(&app, &admin, &closed, true).await;
    let (s, _) = app.post(HEALTH, Some(&dev_a), jammed).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let alarms = row(&board(&app, &supervisor).await, &a)["alarms"].as_array().cloned().unwrap_or_default();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["kind"], "printer_fault");
    let raised = app.audit("terminal.alarm_raise").await;
    let raised_for_a = raised.iter().filter(|e| e["target_id"] == a.as_str()).count();
    assert_eq!(raised_for_a, 2, "offline and printer once each: {raised:?}");
    // Fixed at night: it clears.
    let (s, _) = app.post(HEALTH, Some(&dev_a), report("0.1.0")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(row(&board(&app, &supervisor).await, &a)["alarms"], json!([]));
}

#[tokio::test]
async fn a_disk_near_its_bound_opens_an_alarm_the_console_lists_until_space_is_back() {
    let app = TestApp::spawn().await;
    let (_, dev) = app.enroll_terminal(0).await;
    let id = terminal_id(&dev);
    let supervisor = app.login("supervisor").await;
    let (mut ws, _welcome) = WsClient::connect(&app, &supervisor).await;

    let mut near = report("0.1.0");
    near["disk"] = json!({
        "free_bytes": 40_000_000_000u64, "total_bytes": 64_000_000_000u64,
        "used_bytes": 900u64 << 20, "max_bytes": 1u64 << 30, "min_free_bytes": 512u64 << 20,
        "level": "near_full"
    });
    let (s, b) = app.post(HEALTH, Some(&dev), near).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let list = board(&app, &supervisor).await;
    let alarms = row(&list, &id)["alarms"].as_array().cloned().expect("alarms");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["kind"], "disk_space");
    let detail = alarms[0]["detail"].as_str().expect("detail");
    assert!(detail.contains("存储空间将满") && detail.contains("900 / 1024 MiB (87%)"), "{detail}");
    let pushed = ws
        .expect("terminal_alarm (disk)", |m| match m {
            ServerMsg::TerminalAlarm { alarm } if alarm.kind == AlarmKind::DiskSpace => Some(alarm.clone()),
            _ => None,
        })
        .await;
    assert!(pushed.cleared_at.is_none());
    assert_eq!(row(&list, &id)["report"]["disk"]["level"], "near_full");

    // Space is back (an old recording deleted): the alarm clears.
    let (s, _) = app.post(HEALTH, Some(&dev), report("0.1.0")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let list = board(&app, &supervisor).await;
    assert_eq!(row(&list, &id)["alarms"], json!([]));
    let cleared = app.audit("terminal.alarm_clear").await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0]["detail"]["reason"], "disk_ok");
}
