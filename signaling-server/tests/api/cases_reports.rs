//! Reports (日报告、周通报、月汇总): exact figures over fixture tickets, calls and ratings plus
//! work orders and a call-back made through the API, grouped by point, street and line; the
//! XLSX export read back with calamine; role checks and hostile query strings.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signaling_server::calendar::{cst_day, date_of, day_start, iso_weekday};

use crate::helpers::TestApp;
use crate::stats::{Fixture, S};

const HOUR: i64 = 3_600_000;

/// The figures of the week holding now, at the demo point 华山 (JA-HS01):
/// tickets 4 (3 answered, 2 within 60 s), calls 3 (2 resolved; very satisfied, satisfied,
/// dissatisfied), orders 2 opened / 1 closed / 1 overdue, 1 call-back done. A call of the week
/// before is left out.
async fn week_of_activity(app: &TestApp) -> (String, String, String) {
    let fx = Fixture::new(app).await;
    let now = signaling_server::db::now_ms();
    let today = cst_day(now);
    let monday = today - i64::from(iso_weekday(today)) + 1;
    let t0 = day_start(monday) + 9 * HOUR;
    let calls = [
        ("A001", Some(20_000), Some("completed"), Some("very_satisfied"), false),
        ("A002", Some(90_000), Some("needs_materials"), Some("dissatisfied"), false),
        ("A003", None, None, None, false),
        ("B001", Some(10_000), Some("completed"), Some("satisfied"), true),
    ];
    for (i, (number, answer, outcome, rating, other)) in calls.into_iter().enumerate() {
        let created = t0 + i as i64 * 600_000;
        let ticket = fx.ticket(number, created, answer.map(|a| created + a), other).await;
        if let Some(a) = answer {
            let line = if other { &fx.other_line } else { &fx.line };
            let session = fx
                .session(S {
                    ticket: &ticket,
                    operator: &fx.operator1,
                    line,
                    started_at: created + a,
                    wait_ms: a,
                    ended_at: Some(created + a + 300_000),
                    outcome,
                    transferred_from: None,
                })
                .await;
            if let Some(level) = rating {
                fx.rating(&session, &ticket, level, None, created + a + 310_000).await;
            }
        }
    }
    // The Sunday before: another week.
    let before = day_start(monday) - 2 * HOUR;
    let ticket = fx.ticket("Z001", before, Some(before + 5_000), false).await;
    fx.session(S {
        ticket: &ticket,
        operator: &fx.operator1,
        line: &fx.line,
        started_at: before + 5_000,
        wait_ms: 5_000,
        ended_at: Some(before + 60_000),
        outcome: Some("completed"),
        transferred_from: None,
    })
    .await;

    // Work orders through the API: one goes to 办结 and its call-back is recorded; the other
    // is past its deadline.
    let sup = app.login("supervisor").await;
    let mut orders = vec![];
    for summary in ["12345 反映低保审核进度", "意见箱：养老金查询"] {
        let (s, o) = app
            .post(
                "/api/v1/orders",
                Some(&sup),
                json!({ "source": "hotline_12345", "point_id": fx.point, "item_id": fx.item, "summary": summary,
                        "deadline": { "class": "five_days" } }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        orders.push(o["id"].as_str().expect("id").to_owned());
    }
    let path = format!("/api/v1/orders/{}/steps", orders[0]);
    for step in [
        json!({ "action": "classify", "category": "低保" }),
        json!({ "action": "transfer", "department": "民政科" }),
        json!({ "action": "complete", "result": "已审核通过" }),
    ] {
        let (s, b) = app.post(&path, Some(&sup), json!({ "step": step })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, cbs) = app.get("/api/v1/callbacks?status=open", Some(&sup)).await;
    let cb = cbs
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["order_id"].as_str() == Some(orders[0].as_str()))
        .expect("the completed order's call-back");
    let (s, b) = app
        .post(
            &format!("/api/v1/callbacks/{}/result", cb["id"].as_str().expect("id")),
            Some(&sup),
            json!({ "satisfied": true, "result": "居民满意" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    sqlx::query("UPDATE work_orders SET due_at = $1 WHERE id = $2")
        .bind(now - 1_000)
        .bind(&orders[1])
        .execute(&app.state.db.pool)
        .await
        .expect("past deadline");
    (sup, date_of(today), date_of(monday))
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {report}"))
}

#[tokio::test]
async fn weekly_report_by_point_street_and_line_exports_as_xlsx() {
    let app = TestApp::spawn().await;
    let (sup, today, monday) = week_of_activity(&app).await;

    let (s, r) =
        app.get(&format!("/api/v1/reports?period=weekly&date={today}&group=point"), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["period_zh"], "周通报");
    assert!(r["title"].as_str().unwrap_or("").starts_with("周通报（"), "{r}");
    assert_eq!(r["rows"].as_array().map(Vec::len), Some(1), "only the point with activity: {r}");
    let p = &r["rows"][0];
    assert!(p["name"].as_str().unwrap_or("").contains("华山"), "{p}");
    for (field, want) in [
        ("tickets", json!(4)),
        ("served", json!(3)),
        ("first_response_within_60s", json!(2)),
        ("first_response_within_60s_pct", json!(66.7)),
        ("wrapped_up", json!(3)),
        ("resolved", json!(2)),
        ("resolution_rate_pct", json!(66.7)),
        ("satisfaction_pct", json!(66.7)),
        ("orders_opened", json!(2)),
        ("orders_closed", json!(1)),
        ("orders_overdue", json!(1)),
        ("callbacks_done", json!(1)),
    ] {
        assert_eq!(p[field], want, "{field}: {p}");
    }
    assert_eq!(
        p["ratings"],
        json!({ "very_satisfied": 1, "satisfied": 1, "basic": 0, "dissatisfied": 1, "very_dissatisfied": 0 })
    );
    assert_eq!(r["total"]["tickets"], 4);

    let (_, by_line) =
        app.get(&format!("/api/v1/reports?period=weekly&date={today}&group=line"), Some(&sup)).await;
    assert_eq!(row(&by_line, "民政")["tickets"], 3, "{by_line}");
    assert_eq!(row(&by_line, "民政")["orders_opened"], 2);
    assert_eq!(row(&by_line, "社会保障")["tickets"], 1);
    assert_eq!(row(&by_line, "社会保障")["first_response_within_60s_pct"], 100.0);
    let (_, by_street) =
        app.get(&format!("/api/v1/reports?period=monthly&date={monday}&group=street"), Some(&sup)).await;
    assert_eq!(by_street["period_zh"], "月汇总");
    assert!(by_street["rows"][0]["name"].as_str().unwrap_or("").ends_with("街道"), "{by_street}");
    assert!(by_street["total"]["tickets"].as_u64().unwrap_or(0) >= 4, "the month of the calls holds them");

    // The XLSX export holds the same figures.
    let res = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/reports/export?period=weekly&date={today}&group=point")))
        .bearer_auth(&sup)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(res.headers()["content-disposition"].to_str().unwrap_or("").contains("bangban-weekly-point-"));
    let bytes = res.bytes().await.expect("body").to_vec();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("a workbook calamine reads");
    assert_eq!(wb.sheet_names(), vec!["周通报".to_owned()]);
    let sheet = wb.worksheet_range("周通报").expect("sheet");
    let cell = |r: u32, c: u32| sheet.get_value((r, c)).cloned().unwrap_or(Data::Empty);
    assert_eq!(cell(0, 0), Data::String(r["title"].as_str().expect("title").to_owned()));
    let headers: Vec<String> = (0..18).map(|c| cell(2, c).to_string()).collect();
    assert_eq!(headers[0], "服务点");
    assert_eq!(headers[17], "完成回访");
    let col =
        |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}")) as u32;
    assert!(cell(3, 0).to_string().contains("华山"));
    for (name, want) in [
        ("取号", 4.0),
        ("已服务", 3.0),
        ("60秒内首次响应率(%)", 66.7),
        ("解决率(%)", 66.7),
        ("非常满意", 1.0),
        ("不满意", 1.0),
        ("新增工单", 2.0),
        ("办结工单", 1.0),
        ("超期工单", 1.0),
        ("完成回访", 1.0),
    ] {
        assert_eq!(cell(3, col(name)), Data::Float(want), "{name}");
    }
    assert_eq!(cell(4, 0), Data::String("合计".into()));
    assert_eq!(cell(4, col("取号")), Data::Float(4.0));
}

#[tokio::test]
async fn reports_are_for_supervisors_and_refuse_bad_queries() {
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    for user in ["operator1", "staff1"] {
        let token = app.login(user).await;
        assert_eq!(app.get("/api/v1/reports", Some(&token)).await.0, StatusCode::FORBIDDEN, "{user}");
        assert_eq!(app.get("/api/v1/reports/export", Some(&token)).await.0, StatusCode::FORBIDDEN, "{user}");
    }
    let (s, empty) = app.get("/api/v1/reports", Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "daily by point by default: {empty}");
    assert_eq!((empty["period"].as_str(), empty["group"].as_str()), (Some("daily"), Some("point")));
    assert_eq!(empty["first_day"], empty["last_day"]);
    for bad in [
        "period=yearly",
        "group=operator",
        "date=2026-02-30",
        "date=20261205",
        "date=%E2%80%AE2026-12-05",
        "date=1900-01-01",
        "extra=1",
        "period=weekly%00",
    ] {
        let (s, b) = app.get(&format!("/api/v1/reports?{bad}"), Some(&sup)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert!(b["error"]["message"].is_string(), "{b}");
        let (s, _) = app.get(&format!("/api/v1/reports/export?{bad}"), Some(&sup)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "export {bad}");
    }
}

#[tokio::test]
async fn reports_are_documented_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    for path in ["/api/v1/reports", "/api/v1/reports/export"] {
        let op = &doc["paths"][path]["get"];
        assert!(op.is_object(), "GET {path}");
        let params: Vec<&str> =
            op["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(params, vec!["period", "date", "group"], "{path}");
        for status in ["200", "400", "401", "403"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    assert!(
        doc["paths"]["/api/v1/reports/export"]["get"]["responses"]["200"]["content"]
            ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]
            .is_object()
    );
    let schemas = &doc["components"]["schemas"];
    for field in
        ["period", "period_zh", "group", "first_day", "last_day", "from", "to", "title", "rows", "total"]
    {
        assert!(schemas["Report"]["properties"][field].is_object(), "Report.{field}");
    }
    for field in [
        "tickets",
        "served",
        "first_response_within_60s",
        "first_response_within_60s_pct",
        "resolution_rate_pct",
        "ratings",
        "satisfaction_pct",
        "orders_opened",
        "orders_closed",
        "orders_overdue",
        "callbacks_done",
    ] {
        assert!(schemas["ReportRow"]["properties"][field].is_object(), "ReportRow.{field}");
    }
    assert_eq!(schemas["ReportPeriod"]["enum"], json!(["daily", "weekly", "monthly"]));
}
