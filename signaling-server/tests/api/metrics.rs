//! `/metrics` and `/readyz` for operations (issue #12 item 5): what a person reading the
//! dashboard checks — connections by role, a ticket waiting and then served, a live call, the
//! signaling relay, call setup times reported by both sides, a scan's upload bytes, a print job,
//! a terminal alarm — in an exposition that parses strictly as Prometheus text; the scrape token
//! and the loopback rule; readiness naming the check that failed.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use shared::protocol::{ClientMsg, ErrorCode, ServerMsg, Signal};
use signaling_server::config::MetricsToken;

use crate::helpers::TestApp;
use crate::materials_fixture::{create, metadata, patch, pdf, sha256_hex, upload};
use crate::ws_client::{WsClient, available_operator, item_id, take_ticket};

/// One sample: its labels (sorted) and value.
type Series = BTreeMap<String, f64>;

/// A parsed exposition: samples by name, each by its rendered label set (`k="v",…`).
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    samples: BTreeMap<String, Series>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    pub(crate) fn get(&self, name: &str, labels: &str) -> Option<f64> {
        self.samples.get(name)?.get(labels).copied()
    }

    pub(crate) fn value(&self, name: &str, labels: &str) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("{name}{{{labels}}} missing; {name} has {:?}", self.samples.get(name)))
    }

    /// Whether the exposition has the family at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.samples.contains_key(name)
    }

    /// The sum of every series of a family (what `sum(name)` gives over this one target).
    pub(crate) fn sum(&self, name: &str) -> f64 {
        self.samples.get(name).map_or(0.0, |s| s.values().sum())
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the label set of a sample line (`{k="v",…}`), strictly: names, quoting, escapes
/// (`\\`, `\"`, `\n` only). Returns the labels and the rest of the line.
fn parse_labels(line: &str) -> (Vec<(String, String)>, &str) {
    let Some(rest) = line.strip_prefix('{') else { return (Vec::new(), line) };
    let mut labels = Vec::new();
    let mut chars = rest.char_indices().peekable();
    loop {
        let (start, c) = chars.next().unwrap_or_else(|| panic!("unterminated labels: {line}"));
        if c == '}' {
            return (labels, &rest[start + 1..]);
        }
        let eq = rest[start..].find('=').unwrap_or_else(|| panic!("label without '=': {line}")) + start;
        let name = &rest[start..eq];
        assert!(is_name(name) && !name.starts_with("__"), "bad label name {name:?}: {line}");
        while chars.peek().is_some_and(|(i, _)| *i <= eq) {
            chars.next();
        }
        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "label value not quoted: {line}");
        let mut value = String::new();
        loop {
            match chars.next().unwrap_or_else(|| panic!("unterminated value: {line}")).1 {
                '"' => break,
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                '\n' => panic!("raw newline in a label value: {line}"),
                c => value.push(c),
            }
        }
        assert!(!labels.iter().any(|(n, _): &(String, String)| n == name), "label {name} twice: {line}");
        labels.push((name.to_owned(), value));
        match chars.next().map(|(_, c)| c) {
            Some(',') => {}
            Some('}') => {
                let end = chars.peek().map_or(rest.len(), |(i, _)| *i);
                return (labels, &rest[end..]);
            }
            other => panic!("expected ',' or '}}', got {other:?}: {line}"),
        }
    }
}

/// Parses the Prometheus text format (0.0.4) strictly: every line is a `# HELP`, a `# TYPE` or
/// a sample; a family's HELP and TYPE come once, before its samples; a sample belongs to a
/// declared family (histograms: `_bucket` with `le`, `_sum`, `_count`); no series twice; values
/// are numbers. Histogram buckets must be cumulative and end at `+Inf` = `_count`.
fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    let mut helped = std::collections::BTreeSet::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in the exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(is_name(name), "bad HELP: {line}");
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
            assert!(!e.types.contains_key(name), "HELP after TYPE for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE: {line}"));
            assert!(is_name(name), "bad TYPE name: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "bad type: {line}"
            );
            assert!(e.types.insert(name.to_owned(), ty.to_owned()).is_none(), "TYPE twice for {name}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("sample without value: {line}"));
        let name = &line[..end];
        assert!(is_name(name), "bad sample name: {line}");
        let (mut labels, rest) = parse_labels(&line[end..]);
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no space before the value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {v:?}: {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| e.types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        let ty = e.types.get(family).unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if ty == "histogram" {
            assert_ne!(family, name, "a histogram's samples are _bucket, _sum, _count: {line}");
            assert_eq!(
                name.ends_with("_bucket"),
                labels.iter().any(|(k, _)| k == "le"),
                "le on buckets only: {line}"
            );
        }
        if ty == "counter" {
            assert!(value >= 0.0, "negative counter: {line}");
        }
        labels.sort();
        let key = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(",");
        let series = e.samples.entry(name.to_owned()).or_default();
        assert!(series.insert(key, value).is_none(), "series twice: {line}");
    }
    // Histograms: cumulative buckets, +Inf equal to the count.
    for (family, _) in e.types.iter().filter(|(_, t)| *t == "histogram") {
        let counts = e.samples.get(&format!("{family}_count")).cloned().unwrap_or_default();
        for (labels, count) in counts {
            let mut buckets: Vec<(f64, f64)> = e
                .samples
                .get(&format!("{family}_bucket"))
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let mut parts: Vec<&str> = k.split(',').collect();
                    let le = parts.iter().position(|p| p.starts_with("le="))?;
                    let bound = parts.remove(le).trim_start_matches("le=").trim_matches('"').to_owned();
                    (parts.join(",") == labels).then(|| {
                        (if bound == "+Inf" { f64::INFINITY } else { bound.parse().expect("le") }, *v)
                    })
                })
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family}{{{labels}}} not cumulative");
            assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{family}{{{labels}}} lacks +Inf");
            assert_eq!(buckets.last().map(|b| b.1), Some(count), "{family}{{{labels}}}: +Inf ≠ count");
        }
    }
    e
}

pub(crate) async fn scrape(app: &TestApp) -> Exposition {
    let resp = app.client.get(app.url("/metrics")).send().await.expect("scrape sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    parse(&resp.text().await.expect("body"))
}

/// Scrapes until `check` holds (the figures a client's message changes arrive with it, not
/// before): a bound, not a pause.
pub(crate) async fn scrape_until(
    app: &TestApp,
    what: &str,
    check: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let e = scrape(app).await;
        if check(&e) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}: {e:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn role(r: &str) -> String {
    format!("role={r:?}")
}

#[tokio::test]
async fn the_dashboard_figures_follow_a_ticket_a_call_and_a_scan() {
    let app = TestApp::spawn().await;
    let e = scrape(&app).await;
    for r in ["terminal", "operator", "supervisor", "staff", "admin"] {
        assert_eq!(e.value("bangban_connections", &role(r)), 0.0, "{r}");
    }
    assert_eq!(e.value("bangban_switchboard_up", ""), 1.0);
    assert_eq!(e.value("bangban_database_up", ""), 1.0);
    assert_eq!(e.value("bangban_calls_live", ""), 0.0);
    assert!(e.value("bangban_db_pool_connections", "") >= 1.0);
    assert!(e.value("bangban_db_pool_max_connections", "") >= e.value("bangban_db_pool_connections", ""));
    assert_eq!(e.value("bangban_build_info", &format!("version={:?}", env!("CARGO_PKG_VERSION"))), 1.0);
    assert!(e.get("bangban_redis_up", "").is_none(), "no Redis configured: not reported");

    // A terminal and an operator (away) connect; the terminal takes a ticket, which waits.
    let (_, device) = app.enroll_terminal(0).await;
    let login = app.login_full("operator1").await;
    let operator = login["access_token"].as_str().expect("token").to_owned();
    let (mut op, _) = WsClient::connect(&app, &operator).await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "SB-003").await;
    let (_, it) = app.get(&format!("/api/v1/items/{item}"), Some(&device)).await;
    let (line_id, line_name) = (
        it["line_id"].as_str().expect("line").to_owned(),
        it["line_name"].as_str().unwrap_or_default().to_owned(),
    );
    let line = |e: &Exposition, name: &str| {
        let series = e.samples.get(name).cloned().unwrap_or_default();
        let (labels, v) = series
            .iter()
            .find(|(k, _)| k.contains(&format!("line_id={line_id:?}")))
            .unwrap_or_else(|| panic!("{name} has no series for line {line_id}: {series:?}"));
        if !line_name.is_empty() {
            assert!(labels.contains(&format!("line={line_name:?}")), "{labels}");
        }
        *v
    };
    term.send(&take_ticket(item)).await;
    term.expect("ticket_issued", |m| matches!(m, ServerMsg::TicketIssued { .. }).then_some(())).await;
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_connections", &role("terminal")), 1.0);
    assert_eq!(e.value("bangban_connections", &role("operator")), 1.0);
    assert_eq!(e.value("bangban_connections", &role("supervisor")), 0.0);
    assert_eq!(line(&e, "bangban_tickets_waiting"), 1.0);
    assert!(line(&e, "bangban_ticket_longest_wait_seconds") >= 0.0);
    let waited =
        scrape_until(&app, "the wait to grow", |e| line(e, "bangban_ticket_longest_wait_seconds") > 0.0)
            .await;
    assert!(line(&waited, "bangban_ticket_longest_wait_seconds") < 60.0);

    // The operator goes available, is rung and answers: nobody waits, one call is live.
    op.send(&ClientMsg::SetAvailability { available: true }).await;
    let session = crate::ws_client::answer_ringing(&mut op, &mut term).await;
    let e = scrape(&app).await;
    assert_eq!(line(&e, "bangban_tickets_waiting"), 0.0);
    assert_eq!(line(&e, "bangban_ticket_longest_wait_seconds"), 0.0);
    assert_eq!(e.value("bangban_calls_live", ""), 1.0);
    assert!(e.value("bangban_dispatch_decision_seconds_count", "") >= 4.0, "connects, ticket, accept");
    assert!(e.value("bangban_switchboard_turn_seconds_count", "") >= 4.0);
    let relayed_before = e.value("bangban_signal_relay_seconds_count", "");

    // Signaling is relayed and timed.
    let offer = Signal::Offer { sdp: "v=0\r\n".to_owned().try_into().expect("sdp"), ice_restart: false };
    op.send(&ClientMsg::Signal { session_id: session, signal: offer }).await;
    term.expect("signal", |m| matches!(m, ServerMsg::Signal { .. }).then_some(())).await;
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_signal_relay_seconds_count", ""), relayed_before + 1.0);
    let relay_sum = e.value("bangban_signal_relay_seconds_sum", "");
    assert!(relay_sum > 0.0 && relay_sum < 5.0, "{relay_sum}");

    // Both sides report their call setup time; a repeat does not count twice, and someone
    // outside the call is refused.
    op.send(&ClientMsg::CallSetup { session_id: session, first_frame_ms: 1500 }).await;
    term.send(&ClientMsg::CallSetup { session_id: session, first_frame_ms: 2500 }).await;
    op.send(&ClientMsg::CallSetup { session_id: session, first_frame_ms: 9000 }).await;
    let (mut other, _) = WsClient::connect(&app, &app.login("operator2").await).await;
    other.send(&ClientMsg::CallSetup { session_id: session, first_frame_ms: 100 }).await;
    let refused = other
        .expect("error", |m| match m {
            ServerMsg::Error { code, request, .. } if request.as_deref() == Some("call_setup") => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(refused, ErrorCode::Forbidden);
    // The operator's repeat has been through the switchboard once its next message's answer
    // is back (one connection's messages are handled in order).
    op.send(&ClientMsg::Hold { session_id: session }).await;
    op.expect("session_held", |m| matches!(m, ServerMsg::SessionHeld { .. }).then_some(())).await;
    op.send(&ClientMsg::Resume { session_id: session }).await;
    op.expect("session_resumed", |m| matches!(m, ServerMsg::SessionResumed { .. }).then_some(())).await;
    let e = scrape_until(&app, "both call_setup reports", |e| {
        e.get("bangban_call_setup_seconds_count", "side=\"operator\"") == Some(1.0)
            && e.get("bangban_call_setup_seconds_count", "side=\"terminal\"") == Some(1.0)
    })
    .await;
    assert_eq!(e.value("bangban_call_setup_seconds_sum", "side=\"operator\""), 1.5);
    assert_eq!(e.value("bangban_call_setup_seconds_sum", "side=\"terminal\""), 2.5);
    assert_eq!(e.value("bangban_call_setup_seconds_bucket", "le=\"2\",side=\"operator\""), 1.0);
    assert_eq!(e.value("bangban_call_setup_seconds_bucket", "le=\"2\",side=\"terminal\""), 0.0);
    assert_eq!(e.value("bangban_connections", &role("operator")), 2.0);

    // The terminal uploads a scan: its bytes and the completed upload are counted; a chunk
    // with a wrong checksum is counted as a failure by its code.
    let session_id = session.to_string();
    let scan = pdf("扫描件", 150_000);
    let material = upload(&app, &device, &session_id, "身份证.pdf", &scan).await;
    let e = scrape(&app).await;
    assert!(e.value("bangban_upload_bytes_total", "kind=\"material\"") >= scan.len() as f64);
    assert_eq!(e.value("bangban_uploads_completed_total", "kind=\"material\""), 1.0);
    assert_eq!(e.value("bangban_upload_bytes_total", "kind=\"recording\""), 0.0);
    let bad = pdf("另一份", 1000);
    let meta = metadata(&[("filename", "x.pdf"), ("session_id", &session_id), ("sha256", &sha256_hex(&bad))]);
    let resp = create(&app, &device, bad.len(), &meta).await;
    let location = resp.headers()["location"].to_str().expect("location").to_owned();
    let wrong =
        format!("sha256 {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 32]));
    let resp = patch(&app, &device, &location, 0, &bad, Some(wrong)).await;
    assert_eq!(resp.status().as_u16(), 460);
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_upload_failures_total", "code=\"checksum_mismatch\""), 1.0);
    assert!(
        e.value("bangban_upload_bytes_total", "kind=\"material\"") < (scan.len() + bad.len()) as f64,
        "refused bytes are not counted"
    );

    // A print job waits for the terminal.
    let path = format!("/api/v1/sessions/{session_id}/print-jobs");
    let (s, job) =
        app.post(&path, Some(&operator), json!({ "material_id": material, "idempotency_key": "m-1" })).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_print_jobs", "state=\"pending\""), 1.0);
    assert_eq!(e.value("bangban_print_jobs", "state=\"completed\""), 0.0);

    // The terminal's printer jams: one printer alarm open.
    assert_eq!(e.value("bangban_terminal_alarms_open", "kind=\"printer_fault\""), 0.0);
    let heartbeat = json!({
        "camera": { "state": "ok", "detail": "test source" },
        "microphone": { "state": "ok", "detail": "test source" },
        "printer": { "state": "stopped", "reasons": ["media-empty-error"], "detail": null },
        "scanner": { "state": "ok", "detail": "test:0" },
        "disk": { "free_bytes": 40_000_000_000u64, "total_bytes": 64_000_000_000u64 },
        "version": "0.1.0",
        "uptime_secs": 42,
        "in_call": true
    });
    let (s, _) = app.post("/api/v1/terminals/me/health", Some(&device), heartbeat).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_terminal_alarms_open", "kind=\"printer_fault\""), 1.0);
    assert_eq!(e.value("bangban_terminal_alarms_open", "kind=\"offline\""), 0.0);

    // The call ends: none live.
    op.send(&ClientMsg::EndCall { session_id: session }).await;
    op.expect("session_ended", |m| matches!(m, ServerMsg::SessionEnded { .. }).then_some(())).await;
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_calls_live", ""), 0.0);
    other.close().await;
    term.close().await;
    let e = scrape_until(&app, "the terminal's socket to close", |e| {
        e.get("bangban_connections", &role("terminal")) == Some(0.0)
    })
    .await;
    assert_eq!(e.value("bangban_connections", &role("operator")), 1.0);
}

/// Each server counts its own: a second server in the same process starts at zero.
#[tokio::test]
async fn two_servers_in_one_process_keep_their_figures_apart() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    let (_, device) = a.enroll_terminal(0).await;
    let _term = WsClient::connect(&a, &device).await;
    let _op = available_operator(&a, "operator1").await;
    let (ea, eb) = (scrape(&a).await, scrape(&b).await);
    assert_eq!(ea.value("bangban_connections", &role("terminal")), 1.0);
    assert_eq!(eb.value("bangban_connections", &role("terminal")), 0.0);
    assert!(ea.value("bangban_dispatch_decision_seconds_count", "") >= 2.0);
    assert_eq!(eb.value("bangban_dispatch_decision_seconds_count", ""), 0.0);
}

const TOKEN: &str = "Vq3-metrics_token.0123456789~abcdef+/=";

#[tokio::test]
async fn a_configured_token_is_required_and_hostile_headers_are_refused() {
    let app = TestApp::spawn_with(|c| c.metrics_token = Some(MetricsToken::new(TOKEN).expect("token"))).await;
    let get = |values: Vec<Vec<u8>>| {
        let mut req = app.client.get(app.url("/metrics"));
        for v in values {
            req = req.header("authorization", reqwest::header::HeaderValue::from_bytes(&v).expect("value"));
        }
        req.send()
    };
    let resp = get(vec![format!("Bearer {TOKEN}").into_bytes()]).await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    parse(&resp.text().await.expect("text"));

    let resp = get(vec![]).await.expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "loopback too needs the token once one is set");
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_token");
    assert!(body["error"]["message"].as_str().expect("message").starts_with("须提供监控令牌"), "{body}");

    let long = "A".repeat(12 * 1024);
    for hostile in [
        vec![format!("Bearer {TOKEN}x").into_bytes()],
        vec![format!("Bearer {}", &TOKEN[1..]).into_bytes()],
        vec![format!("Basic {TOKEN}").into_bytes()],
        vec![format!("Bearer  {TOKEN}").into_bytes()],
        vec![TOKEN.as_bytes().to_vec()],
        vec![b"Bearer \xff\xfe\x80\x81".to_vec()],
        vec![format!("Bearer {long}").into_bytes()],
        vec![b"Bearer".to_vec()],
        vec![format!("Bearer {TOKEN}").into_bytes(), b"Bearer nope".to_vec()],
    ] {
        let shown = hostile
            .iter()
            .map(|v| String::from_utf8_lossy(v).chars().take(60).collect::<String>())
            .collect::<Vec<_>>();
        let resp = get(hostile).await.expect("sent");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{shown:?}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_token", "{shown:?}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("监控令牌无效") || message.starts_with("须提供监控令牌"), "{message}");
        assert!(!message.contains(TOKEN), "the token is never echoed");
    }
}

#[tokio::test]
async fn without_a_token_only_this_host_may_scrape_and_not_through_a_proxy() {
    let app = TestApp::spawn().await;
    scrape(&app).await;
    for h in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let value = if h == "forwarded" { "for=203.0.113.9" } else { "203.0.113.9" };
        let resp = app.client.get(app.url("/metrics")).header(h, value).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{h}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert!(
            body["error"]["message"].as_str().expect("message").starts_with("监控数据仅限本机采集"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn readiness_names_the_check_that_failed() {
    let app = TestApp::spawn().await;
    let (s, b) = app.get("/readyz", None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));

    // The switchboard stops answering (its task ended): not ready, and it says which.
    app.state.switchboard.send(signaling_server::switchboard::Event::Shutdown).await;
    let (s, b) = app.get("/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"]["code"], "not_ready");
    assert_eq!(b["error"]["message"], "未就绪：调度服务无响应 (switchboard not answering)");
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_switchboard_up", ""), 0.0);
    assert_eq!(e.value("bangban_database_up", ""), 1.0);
    // /healthz stays as it was: the process answers.
    let (s, _) = app.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);

    // The database goes too: both named, Chinese first.
    app.state.db.pool.close().await;
    let (s, b) = app.get("/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        b["error"]["message"],
        "未就绪：数据库不可用 (database unreachable)；调度服务无响应 (switchboard not answering)"
    );
    let e = scrape(&app).await;
    assert_eq!(e.value("bangban_database_up", ""), 0.0);
    assert!(
        e.get("bangban_print_jobs", "state=\"pending\"").is_none(),
        "no figures from a database that did not answer"
    );
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"v \\\"q\\\" \\\\ \\n\"} 1\n";
    assert_eq!(parse(ok).value("a_total", "k=\"v \\\"q\\\" \\\\ \\n\""), 1.0);
    for bad in [
        "a_total 1\n",                                                                    // no TYPE
        "# TYPE a gauge\na{k=\"v} 1\n",                                                   // unterminated
        "# TYPE a gauge\na{k=v} 1\n",                                                     // unquoted
        "# TYPE a gauge\na{k=\"\\x\"} 1\n",                                               // bad escape
        "# TYPE a gauge\na one\n",                                                        // not a number
        "# TYPE a gauge\na 1\na 2\n",                                                     // twice
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",                                          // TYPE twice
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
        "# TYPE a gauge\n1a 1\n",                                                         // bad name
        "# TYPE a gauge\na 1",                                                            // no final newline
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "accepted: {bad:?}");
    }
}
