//! The working-day calendar over REST: the seeded 2026 data, deadlines across the Spring
//! Festival, an admin's edit and CSV import (audited, refused whole when bad), and a point's
//! structured opening hours.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Unix ms of a China-time wall-clock time.
fn cst(y: i64, m: i64, d: i64, h: i64) -> i64 {
    signaling_server::calendar::day_start(signaling_server::calendar::days_from_civil(y, m, d))
        + h * 3_600_000
}

fn dates(year: &Value, kind: &str) -> Vec<String> {
    year["days"]
        .as_array()
        .expect("days")
        .iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| d["date"].as_str().expect("date").to_owned())
        .collect()
}

#[tokio::test]
async fn the_seeded_2026_calendar_and_deadlines_across_the_spring_festival() {
    let app = TestApp::spawn().await;
    let op = app.login("operator1").await;
    let (s, y) = app.get("/api/v1/calendar/2026", Some(&op)).await;
    assert_eq!(s, StatusCode::OK, "{y}");
    let holidays = dates(&y, "holiday");
    for d in 15..=23 {
        assert!(holidays.contains(&format!("2026-02-{d:02}")), "Feb {d} off");
    }
    assert!(holidays.contains(&"2026-10-01".to_owned()) && holidays.contains(&"2026-09-25".to_owned()));
    let workdays = dates(&y, "workday");
    for d in ["2026-02-14", "2026-02-28", "2026-09-20", "2026-10-10"] {
        assert!(workdays.contains(&d.to_owned()), "{d} is a make-up working day");
    }
    assert_eq!(y["working_days"], 248);
    // A 5-working-day deadline from Thursday Feb 12: 13, 14, 24, 25, 26.
    let from = cst(2026, 2, 12, 10);
    let (s, d) = app.get(&format!("/api/v1/calendar/deadline?from={from}&days=5"), Some(&op)).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["due_date"], "2026-02-26");
    assert_eq!(d["due_at"], cst(2026, 2, 27, 0) - 1);
    for bad in
        ["days=-1", "days=251", "days=x", "days=5&from=abc", "days=5&from=99999999999999999999", "nope=1"]
    {
        let (s, body) = app.get(&format!("/api/v1/calendar/deadline?{bad}"), Some(&op)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    for bad in ["/api/v1/calendar/1999", "/api/v1/calendar/2101", "/api/v1/calendar/-5"] {
        let (s, _) = app.get(bad, Some(&op)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (s, _) = app.get("/api/v1/calendar/abc", Some(&op)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_edits_a_year_and_deadlines_follow_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let sup = app.login("supervisor").await;
    let (_, mut y) = app.get("/api/v1/calendar/2026", Some(&admin)).await;
    // A local extra holiday on Wednesday Feb 25 (say, by a district decision).
    let mut days = y["days"].as_array().expect("days").clone();
    days.push(
        json!({ "date": "2026-02-25", "kind": "holiday", "festival": "Local", "festival_zh": "区定假日" }),
    );
    let body = json!({ "days": days });
    let (s, _) = app.call(Method::PUT, "/api/v1/calendar/2026", Some(&sup), Some(body.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "supervisors read, admins edit");
    let (s, edited) = app.call(Method::PUT, "/api/v1/calendar/2026", Some(&admin), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{edited}");
    assert_eq!(edited["working_days"], 247);
    let from = cst(2026, 2, 12, 10);
    let (_, d) = app.get(&format!("/api/v1/calendar/deadline?from={from}&days=5"), Some(&sup)).await;
    assert_eq!(d["due_date"], "2026-02-27", "one more day off moves the deadline");
    assert_eq!(app.audit("calendar.update").await.len(), 1);

    // Bad edits are refused and change nothing.
    y["days"] = json!([{ "date": "2027-01-01", "kind": "holiday", "festival": "x", "festival_zh": "x" }]);
    let bad_bodies = [
        json!({ "days": [{ "date": "2027-01-01", "kind": "holiday", "festival": "x", "festival_zh": "x" }] }),
        json!({ "days": [{ "date": "2026-02-30", "kind": "holiday", "festival": "x", "festival_zh": "x" }] }),
        json!({ "days": [{ "date": "2026-03-02", "kind": "workday", "festival": "x", "festival_zh": "x" }] }),
        json!({ "days": [{ "date": "2026-03-02", "kind": "vacation", "festival": "x", "festival_zh": "x" }] }),
        json!({ "days": [{ "date": "2026-03-02", "kind": "holiday", "festival": "x", "festival_zh": "\u{202e}x" }] }),
        json!({ "days": (0..101).map(|_| json!({ "date": "2026-03-02", "kind": "holiday", "festival": "", "festival_zh": "" })).collect::<Vec<_>>() }),
        json!({ "days": [], "extra": 1 }),
    ];
    for bad in bad_bodies {
        let (s, body) = app.call(Method::PUT, "/api/v1/calendar/2026", Some(&admin), Some(bad.clone())).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{bad}: {s} {body}");
    }
    let (_, after) = app.get("/api/v1/calendar/2026", Some(&admin)).await;
    assert_eq!(after["working_days"], 247, "nothing changed");
}

#[tokio::test]
async fn the_csv_import_replaces_its_years_or_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let csv = "date,kind,festival,festival_zh\n2027-01-01,holiday,New Year's Day,元旦\n2027-02-06,workday,Spring Festival,春节\n";
    let (s, r) = app.post("/api/v1/calendar/import", Some(&admin), json!({ "csv": csv })).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r, json!({ "years": [2027], "days": 2 }));
    let (_, y) = app.get("/api/v1/calendar/2027", Some(&admin)).await;
    assert_eq!(dates(&y, "holiday"), vec!["2027-01-01"]);
    assert_eq!(dates(&y, "workday"), vec!["2027-02-06"]);
    // The seeded file itself imports back as it is.
    let seed = signaling_server::calendar::SEED_CSV;
    let (s, r) = app.post("/api/v1/calendar/import", Some(&admin), json!({ "csv": seed })).await;
    assert_eq!((s, r["years"].clone()), (StatusCode::OK, json!([2025, 2026])));
    // A bad line anywhere refuses the file, naming the line; 2027 stays as it was.
    let bad =
        "date,kind,festival,festival_zh\n2027-05-01,holiday,Labour Day,劳动节\n2027-05-0x,holiday,x,y\n";
    let (s, r) = app.post("/api/v1/calendar/import", Some(&admin), json!({ "csv": bad })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(r["error"]["message"].as_str().unwrap_or_default().contains("第 3 行"), "{r}");
    let (_, y) = app.get("/api/v1/calendar/2027", Some(&admin)).await;
    assert_eq!(y["days"].as_array().map(Vec::len), Some(2));
    let huge = format!("date,kind,festival,festival_zh\n{}", "2027-01-01,holiday,x,y\n".repeat(2000));
    let (s, _) = app.post("/api/v1/calendar/import", Some(&admin), json!({ "csv": huge })).await;
    assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::PAYLOAD_TOO_LARGE, "{s}");
    let op = app.login("operator1").await;
    let (s, _) = app.post("/api/v1/calendar/import", Some(&op), json!({ "csv": csv })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(app.audit("calendar.import").await.len(), 2);
}

#[tokio::test]
async fn a_point_has_structured_opening_hours_beside_its_text() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let point = app.first_point(&admin).await;
    let id = point["id"].as_str().expect("id");
    let path = format!("/api/v1/points/{id}/opening-hours");
    let (s, v) = app.get(&path, Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["text"], point["opening_hours"], "the free text is still shown");
    assert_eq!((v["schedule"].clone(), v["open_now"].clone()), (Value::Null, Value::Null));
    let schedule = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5], "open": "00:00", "close": "24:00" },
                   { "weekdays": [6, 7], "open": "00:00", "close": "24:00" }],
        "holiday_rule": "ignore_calendar",
        "closures": [{ "from": "2099-01-01", "to": "2099-01-02", "reason": "装修" }]
    });
    let (s, v) = app.call(Method::PUT, &path, Some(&admin), Some(schedule.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["open_now"], true, "open around the clock");
    assert_eq!(v["week"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["schedule"], schedule);
    let closed_today = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00" }],
        "closures": [{ "from": "2000-01-01", "to": "2099-12-31", "reason": "暂停服务" }]
    });
    let (_, v) = app.call(Method::PUT, &path, Some(&admin), Some(closed_today)).await;
    assert_eq!(v["open_now"], false);
    assert_eq!(v["week"][0]["note"], "暂停开放：暂停服务");
    for bad in [
        json!({ "weekly": [{ "weekdays": [0], "open": "09:00", "close": "17:00" }] }),
        json!({ "weekly": [{ "weekdays": [1], "open": "17:00", "close": "09:00" }] }),
        json!({ "weekly": [{ "weekdays": [1], "open": "9:00", "close": "17:00" }] }),
        json!({ "weekly": [], "closures": [{ "from": "2026-02-02", "to": "2026-02-01", "reason": "x" }] }),
        json!({ "weekly": [], "holiday_rule": "sometimes" }),
    ] {
        let (s, body) = app.call(Method::PUT, &path, Some(&admin), Some(bad.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let sup = app.login("supervisor").await;
    let (s, _) = app.call(Method::PUT, &path, Some(&sup), Some(schedule)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(app.audit("point.opening_hours").await.len(), 2);
}

#[tokio::test]
async fn every_cases_endpoint_is_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    for (path, method) in [
        ("/api/v1/calendar/{year}", "get"),
        ("/api/v1/calendar/{year}", "put"),
        ("/api/v1/calendar/import", "post"),
        ("/api/v1/calendar/deadline", "get"),
        ("/api/v1/points/{id}/opening-hours", "get"),
        ("/api/v1/points/{id}/opening-hours", "put"),
        ("/api/v1/orders", "get"),
        ("/api/v1/orders", "post"),
        ("/api/v1/orders/{id}", "get"),
        ("/api/v1/orders/{id}/steps", "post"),
        ("/api/v1/orders/{id}/contact", "put"),
        ("/api/v1/orders/{id}/contact/reveal", "post"),
        ("/api/v1/notifications/webhook", "put"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/notifications/{id}/retry", "post"),
        ("/api/v1/tasks", "get"),
        ("/api/v1/tasks/{id}/done", "post"),
        ("/api/v1/callbacks", "get"),
        ("/api/v1/callbacks/{id}/result", "post"),
        ("/api/v1/callbacks/settings", "put"),
        ("/api/v1/home-visits", "get"),
        ("/api/v1/home-visits", "post"),
        ("/api/v1/home-visits/{id}/steps", "post"),
        ("/api/v1/problems", "get"),
        ("/api/v1/problems", "post"),
        ("/api/v1/problems/{id}/steps", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} in openapi.json");
    }
    for schema in [
        "OrderView",
        "OrderAction",
        "DeadlineClass",
        "CalendarYear",
        "OpeningHours",
        "NotificationView",
        "CallbackView",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
