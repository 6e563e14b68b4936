//! District scale (#16 items 7 and 8): with the demo district filled to 270 points (Jing'an's
//! order of size) every console list — points, terminals, accounts, terminal health,
//! inspections — searches, filters, sorts and pages on the server, answers the total in
//! `X-Total-Count`, refuses hostile parameters with 400, and keeps its roles; terminal health
//! leads with what needs action; points.geojson says which points are closed now; the map's
//! district outline comes only from a local file.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const TOTAL: usize = 270;

async fn district() -> TestApp {
    TestApp::spawn_with(|c| c.demo_points = 270).await
}

/// GET with the total: (status, body, X-Total-Count).
async fn list(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value, Option<usize>) {
    let res = app.client.get(app.url(path)).bearer_auth(token).send().await.expect("request");
    let status = res.status();
    let total =
        res.headers().get("x-total-count").map(|v| v.to_str().expect("ascii").parse().expect("a number"));
    (status, res.json().await.unwrap_or(Value::Null), total)
}

async fn ok(app: &TestApp, path: &str, token: &str) -> (Vec<Value>, usize) {
    let (s, body, total) = list(app, path, token).await;
    assert_eq!(s, StatusCode::OK, "{path}: {body}");
    (
        body.as_array().unwrap_or_else(|| panic!("{path}: not an array: {body}")).clone(),
        total.expect("X-Total-Count"),
    )
}

fn strs<'a>(rows: &'a [Value], field: &str) -> Vec<&'a str> {
    rows.iter().map(|r| r[field].as_str().unwrap_or_else(|| panic!("{field} in {r}"))).collect()
}

#[tokio::test]
async fn points_search_filter_sort_and_page() {
    let app = district().await;
    let admin = app.login("admin").await;
    let (all, total) = ok(&app, "/api/v1/points", &admin).await;
    assert_eq!((all.len(), total), (TOTAL, TOTAL), "no parameters: the whole list, as before");
    let mut codes = strs(&all, "code");
    let sorted = {
        let mut c = codes.clone();
        c.sort_unstable();
        c
    };
    assert_eq!(codes, sorted, "by code by default");

    // Paging: disjoint pages that together are the list, each with the same total.
    let mut paged = Vec::new();
    for offset in (0..TOTAL).step_by(100) {
        let (rows, total) = ok(&app, &format!("/api/v1/points?limit=100&offset={offset}"), &admin).await;
        assert_eq!(total, TOTAL);
        assert_eq!(rows.len(), (TOTAL - offset).min(100));
        paged.extend(rows);
    }
    assert_eq!(strs(&paged, "code"), codes);
    let (rows, total) = ok(&app, "/api/v1/points?limit=10&offset=100000", &admin).await;
    assert!(rows.is_empty() && total == TOTAL, "past the end: an empty page");

    // Sorting, both ways.
    let (rows, _) = ok(&app, "/api/v1/points?sort=-code", &admin).await;
    codes.reverse();
    assert_eq!(strs(&rows, "code"), codes);
    let (rows, _) = ok(&app, "/api/v1/points?sort=street&limit=500", &admin).await;
    let streets = strs(&rows, "street");
    assert!(streets.windows(2).all(|w| w[0] <= w[1]), "by street");

    // A street filter, with search on top.
    let street = "静安寺街道";
    let in_street = all.iter().filter(|p| p["street"] == street).count();
    assert!(in_street > 10, "the district spreads over its streets");
    let (rows, total) = ok(&app, &format!("/api/v1/points?street={street}&limit=5"), &admin).await;
    assert_eq!(total, in_street);
    assert!(rows.len() == 5 && rows.iter().all(|p| p["street"] == street));
    let (rows, total) = ok(&app, "/api/v1/points?q=ja-d01", &admin).await;
    assert_eq!(total, 10, "JA-D010 … JA-D019, case-insensitive: {rows:?}");
    let (rows, total) = ok(&app, "/api/v1/points?q=%E5%8D%8E%E5%B1%B1", &admin).await; // 华山
    assert!(
        total >= 1
            && rows.iter().all(|p| p["name"].as_str().unwrap_or("").contains("华山")
                || p["committee"].as_str().unwrap_or("").contains("华山")
                || p["address"].as_str().unwrap_or("").contains("华山"))
    );

    // SQL-looking search text is only text.
    for q in ["%27%20OR%201%3D1%20--", "%25", "_", "%22%3B%20DROP%20TABLE%20service_points%3B"] {
        let (rows, total) = ok(&app, &format!("/api/v1/points?q={q}"), &admin).await;
        assert_eq!((rows.len(), total), (0, 0), "{q}");
    }
    let (after, _) = ok(&app, "/api/v1/points", &admin).await;
    assert_eq!(after.len(), TOTAL);

    // Closing one: the state filter sees it.
    let id = all[5]["id"].as_str().expect("id");
    let (s, _) = app
        .post(&format!("/api/v1/points/{id}/close"), Some(&admin), serde_json::json!({"reason": "测试"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (rows, total) = ok(&app, "/api/v1/points?state=closed", &admin).await;
    assert_eq!((total, rows[0]["id"].as_str()), (1, Some(id)));
    assert_eq!(ok(&app, "/api/v1/points?state=open&limit=1", &admin).await.1, TOTAL - 1);
}

#[tokio::test]
async fn hostile_parameters_are_refused() {
    let app = district().await;
    let admin = app.login("admin").await;
    for list_path in [
        "/api/v1/points",
        "/api/v1/terminals",
        "/api/v1/users",
        "/api/v1/terminals/health",
        "/api/v1/inspections",
    ] {
        for bad in [
            "limit=501",
            "limit=0",
            "limit=-1",
            "limit=99999999999999999999",
            "limit=1e3",
            "limit=%205",
            "limit=+5",
            "limit=",
            "offset=-1",
            "offset=100001",
            "offset=abc",
            "sort=bogus",
            "sort=--name",
            "sort=name%3BDROP",
            "sort=",
            "q=",
            "q=a%00b",
            "q=%0A",
            "street=",
            "street=x%09",
            "unknown=1",
            "LIMIT=5",
            "state=bogus",
            &format!("q={}", "长".repeat(65)),
            &format!("street={}", "街".repeat(33)),
        ] {
            let path = format!("{list_path}?{bad}");
            let (s, body, _) = list(&app, &path, &admin).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {body}");
            assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
        }
        let (rows, total) =
            ok(&app, &format!("{list_path}?limit=500&offset=0&q={}", "长".repeat(64)), &admin).await;
        assert_eq!((rows.len(), total), (0, 0), "{list_path}: 64 characters are fine");
    }
    for (path, bad) in [
        ("/api/v1/points", "alarm=maybe"),
        ("/api/v1/terminals", "state=online"),
        ("/api/v1/users", "role=terminal"),
        ("/api/v1/terminals/health", "state=revoked"),
        ("/api/v1/inspections", "alarm=yes"),
    ] {
        let (s, body, _) = list(&app, &format!("{path}?{bad}"), &admin).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}?{bad}: {body}");
    }
}

#[tokio::test]
async fn terminal_health_leads_with_what_needs_action() {
    let app = district().await;
    let admin = app.login("admin").await;
    let supervisor = app.login("supervisor").await;
    // The monitor's sweep, now: the silent terminals of open points get their offline alarm.
    signaling_server::terminal_health::sweep(&app.state, None, signaling_server::db::now_ms())
        .await
        .expect("sweep");
    let (rows, total) = ok(&app, "/api/v1/terminals/health", &supervisor).await;
    assert_eq!((rows.len(), total), (TOTAL, TOTAL));
    let rank = |t: &Value| {
        if !t["alarms"].as_array().expect("alarms").is_empty() {
            0
        } else if t["status"] == "active" && t["online"] == false {
            1
        } else if t["status"] == "pending" {
            3
        } else {
            4
        }
    };
    let ranks: Vec<u8> = rows.iter().map(rank).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "what needs action first: {ranks:?}");
    // Every 8th fixture terminal is silent; those at every 9th point are closed now: no alarm.
    let alarmed = (1..=268).filter(|n| n % 8 == 3 && n % 9 != 0).count();
    let offline_closed = (1..=268).filter(|n| n % 8 == 3 && n % 9 == 0).count();
    assert_eq!(ranks.iter().filter(|r| **r == 0).count(), alarmed);
    assert_eq!(ranks.iter().filter(|r| **r == 1).count(), offline_closed, "offline, point closed: next");
    let (page, total) = ok(&app, "/api/v1/terminals/health?alarm=yes&limit=10", &supervisor).await;
    assert_eq!((page.len(), total), (10, alarmed));
    assert!(page.iter().all(|t| !t["alarms"].as_array().expect("alarms").is_empty()));
    let (_, total) = ok(&app, "/api/v1/terminals/health?state=offline", &supervisor).await;
    assert_eq!(total, alarmed + offline_closed);
    let (page, _) = ok(
        &app,
        "/api/v1/terminals/health?state=pending&street=%E5%8C%97%E7%AB%99%E8%A1%97%E9%81%93",
        &supervisor,
    )
    .await;
    assert!(
        !page.is_empty() && page.iter().all(|t| t["status"] == "pending" && t["point_street"] == "北站街道")
    );
    let (page, _) = ok(&app, "/api/v1/terminals/health?sort=-name&limit=3", &supervisor).await;
    let names = strs(&page, "name");
    assert!(names.windows(2).all(|w| w[0] >= w[1]), "{names:?}");

    // Terminals: the same alarms, a street, paging.
    let (page, total) = ok(&app, "/api/v1/terminals?alarm=yes&limit=4&offset=2", &admin).await;
    assert_eq!((page.len(), total), (4, alarmed));
    let (page, total) = ok(&app, "/api/v1/terminals?state=active&sort=-last_seen", &admin).await;
    assert_eq!(total, (1..=268).filter(|n| n % 8 == 3).count());
    assert!(page.iter().all(|t| t["status"] == "active"));
    // Points with an open alarm.
    let (page, total) = ok(&app, "/api/v1/points?alarm=yes", &admin).await;
    assert_eq!(total, alarmed);
    assert!(page.iter().all(|p| p["code"].as_str().unwrap_or("").starts_with("JA-D")));
    assert_eq!(ok(&app, "/api/v1/points?alarm=no&limit=1", &admin).await.1, TOTAL - alarmed);
}

#[tokio::test]
async fn inspections_and_accounts_page_too() {
    let app = district().await;
    let supervisor = app.login("supervisor").await;
    let (rows, total) = ok(&app, "/api/v1/inspections", &supervisor).await;
    assert_eq!((rows.len(), total), (268, 268), "every fixture point has a schedule");
    let overdue = (1..=268).filter(|n| n % 5 == 0).count();
    assert!(rows[..overdue].iter().all(|r| r["state"] == "overdue"), "overdue first");
    let (page, total) = ok(&app, "/api/v1/inspections?state=overdue&limit=20&offset=40", &supervisor).await;
    assert_eq!((page.len(), total), (overdue - 40, overdue));
    let (page, total) =
        ok(&app, "/api/v1/inspections?street=%E5%BD%AD%E6%B5%A6%E9%95%87&sort=-point", &supervisor).await;
    assert!(total > 0 && page.iter().all(|r| r["street"] == "彭浦镇"));
    let codes = strs(&page, "point_code");
    assert!(codes.windows(2).all(|w| w[0] > w[1]), "{codes:?}");
    let (page, total) = ok(&app, "/api/v1/inspections?q=%E5%B7%A1%E6%A3%80%E5%91%98007", &supervisor).await; // 巡检员007
    assert_eq!((total, page[0]["point_code"].as_str()), (1, Some("JA-D007")));

    let (users, total) = ok(&app, "/api/v1/users", &supervisor).await;
    assert_eq!(users.len(), total);
    let (page, total) = ok(&app, "/api/v1/users?role=operator&sort=-username", &supervisor).await;
    assert_eq!(total, 2);
    assert_eq!(strs(&page, "username"), ["operator2", "operator1"]);
    let (page, total) = ok(&app, "/api/v1/users?q=%E5%91%A8", &supervisor).await; // 周
    assert_eq!((total, page[0]["username"].as_str()), (1, Some("staff1")));
    let (page, _) =
        ok(&app, "/api/v1/users?street=%E9%9D%99%E5%AE%89%E5%AF%BA%E8%A1%97%E9%81%93", &supervisor).await;
    assert_eq!(strs(&page, "username"), ["staff1"], "staff of the street's points");
    let (page, total) = ok(&app, "/api/v1/users?state=active&limit=1&offset=1", &supervisor).await;
    assert_eq!((page.len(), total), (1, users.len()));
    assert_eq!(page[0]["id"], users[1]["id"]);
}

#[tokio::test]
async fn roles_are_kept() {
    let app = district().await;
    let operator = app.login("operator1").await;
    let staff = app.login("staff1").await;
    for path in [
        "/api/v1/terminals/health?limit=5",
        "/api/v1/terminals?q=x",
        "/api/v1/users?limit=1",
        "/api/v1/inspections?limit=1",
    ] {
        for token in [&operator, &staff] {
            let (s, body, total) = list(&app, path, token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {body}");
            assert!(total.is_none(), "no count leaks");
        }
    }
    assert_eq!(ok(&app, "/api/v1/points?limit=5", &operator).await.1, TOTAL);
    let (s, _, _) = list(&app, "/api/v1/points?limit=5", &staff).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get("/api/v1/points?limit=5", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_map_reads_state_from_points_geojson_and_a_local_outline() {
    let app = district().await;
    let (s, geo) = app.get("/api/v1/points.geojson", None).await;
    assert_eq!(s, StatusCode::OK);
    let features = geo["features"].as_array().expect("features");
    assert_eq!(features.len(), TOTAL);
    let closed: Vec<_> = features.iter().filter(|f| f["properties"]["open_now"] == false).collect();
    assert_eq!(closed.len(), 268 / 9, "closed now by their hours");
    assert!(
        features.iter().all(|f| f["properties"]["open_now"] != true),
        "the rest have no structured hours"
    );
    for f in features {
        let c = f["geometry"]["coordinates"].as_array().expect("coordinates");
        let (lng, lat) = (c[0].as_f64().expect("lng"), c[1].as_f64().expect("lat"));
        assert!((121.42..121.49).contains(&lng) && (31.21..31.32).contains(&lat), "in Jing'an: {lng},{lat}");
        assert!(f["properties"].get("inspector_phone").is_none(), "no personal data");
    }
    // No outline configured: 404 for those who may see the map, 403 for others.
    let admin = app.login("admin").await;
    assert_eq!(app.get("/api/v1/map/outline", Some(&admin)).await.0, StatusCode::NOT_FOUND);
    let staff = app.login("staff1").await;
    assert_eq!(app.get("/api/v1/map/outline", Some(&staff)).await.0, StatusCode::FORBIDDEN);
    app.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let outline = dir.path().join("jingan.geojson");
    let polygon = serde_json::json!({ "type": "Feature", "properties": { "name": "静安区" }, "geometry": {
        "type": "Polygon", "coordinates": [[[121.42, 31.21], [121.49, 31.21], [121.49, 31.32], [121.42, 31.32], [121.42, 31.21]]] } });
    std::fs::write(&outline, polygon.to_string()).expect("write");
    let path = outline.clone();
    let app = TestApp::spawn_with(move |c| c.map_outline = Some(path)).await;
    let supervisor = app.login("supervisor").await;
    let (s, body) = app.get("/api/v1/map/outline", Some(&supervisor)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, polygon);
    // A file that is not an outline is refused when the server is configured.
    let bad = dir.path().join("bad.geojson");
    std::fs::write(&bad, r#"{"type":"Point","coordinates":[121.4,31.2]}"#).expect("write");
    assert!(signaling_server::config::read_outline(&bad).is_err());
    std::fs::write(&bad, "not json").expect("write");
    assert!(signaling_server::config::read_outline(&bad).is_err());
    assert!(signaling_server::config::read_outline(&outline).is_ok());
}
