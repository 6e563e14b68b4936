//! The two lists (两张清单): problems from overdue orders (and bad ratings) join the problem
//! list by themselves, inspections and spot checks are recorded by supervisors with a week by
//! default or up to three months with a reason; measures move a problem to the rectification
//! list and the evidence closes it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use signaling_server::calendar::{Calendar, cst_day, day_start};

use crate::helpers::TestApp;
use crate::ws_client::item_id;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("list").iter().filter_map(|p| p["id"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn problems_move_from_the_problem_list_to_the_rectification_list_and_close() {
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    let day = 86_400_000;
    let (s, e) = app
        .post(
            "/api/v1/problems",
            Some(&sup),
            json!({ "source": "spot_check", "description": "x", "owner": "y", "days": 30 }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a long deadline needs a reason: {e}");
    for bad in [
        json!({ "source": "bad_rating", "description": "x", "owner": "y" }),
        json!({ "source": "inspection", "description": "", "owner": "y" }),
        json!({ "source": "inspection", "description": "x", "owner": "y", "days": 93, "complex_reason": "z" }),
        json!({ "source": "inspection", "description": "x", "owner": "y", "days": 0 }),
    ] {
        let (s, e) = app.post("/api/v1/problems", Some(&sup), bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let (s, simple) = app
        .post(
            "/api/v1/problems",
            Some(&sup),
            json!({ "source": "inspection", "description": "终端打印机卡纸未及时处理", "owner": "华山居委" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{simple}");
    assert_eq!(simple["due_at"].as_i64().unwrap_or(0) - simple["created_at"].as_i64().unwrap_or(0), 7 * day);
    let (s, complex) = app
        .post(
            "/api/v1/problems",
            Some(&sup),
            json!({ "source": "spot_check", "description": "服务点无障碍通道不符合要求", "owner": "街道管理办",
                    "days": 90, "complex_reason": "需改建工程" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{complex}");
    let id = simple["id"].as_str().expect("id");
    let path = format!("/api/v1/problems/{id}/steps");
    let (s, _) = app.post(&path, Some(&sup), json!({ "action": "close", "evidence": "照片" })).await;
    assert_eq!(s, StatusCode::CONFLICT, "rectify first");
    let (s, v) =
        app.post(&path, Some(&sup), json!({ "action": "rectify", "measures": "每日开机检查打印机" })).await;
    assert_eq!((s, v["status_zh"].as_str()), (StatusCode::OK, Some("整改中")), "{v}");
    let (_, rect) = app.get("/api/v1/problems?list=rectifications", Some(&sup)).await;
    assert_eq!(ids(&rect), vec![id.to_owned()]);
    let (s, v) =
        app.post(&path, Some(&sup), json!({ "action": "close", "evidence": "巡检记录 12 月 7 日" })).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("closed")), "{v}");
    let (_, open) = app.get("/api/v1/problems", Some(&sup)).await;
    assert_eq!(ids(&open), vec![complex["id"].as_str().expect("id").to_owned()]);
    let op = app.login("operator1").await;
    assert_eq!(app.get("/api/v1/problems", Some(&op)).await.0, StatusCode::FORBIDDEN);

    // An overdue order joins the problem list by itself, once.
    let point = app.first_point(&sup).await;
    let item = item_id(&app, &sup, "MZ-001").await;
    let (_, order) = app
        .post(
            "/api/v1/orders",
            Some(&sup),
            json!({ "source": "hotline_12345", "point_id": point["id"], "item_id": item, "summary": "x",
                    "deadline": { "class": "same_day" } }),
        )
        .await;
    let due = order["due_at"].as_i64().expect("due");
    let next = Calendar::builtin().add_working_days(cst_day(due), 1);
    signaling_server::cases::orders::escalate_due(&app.state, day_start(next) + 10 * 3_600_000)
        .await
        .expect("escalate");
    let now = signaling_server::db::now_ms();
    assert_eq!(signaling_server::cases::problems::sync(&app.state.db, now).await.expect("sync"), 1);
    assert_eq!(signaling_server::cases::problems::sync(&app.state.db, now).await.expect("sync"), 0);
    let (_, open) = app.get("/api/v1/problems", Some(&sup)).await;
    let p = open
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["source"] == "overdue_order")
        .cloned()
        .expect("problem");
    assert!(
        p["description"].as_str().unwrap_or_default().contains(order["number"].as_str().expect("n")),
        "{p}"
    );
}
