//! Session records and service figures: exact values over fixture tickets and sessions, role
//! checks, no resident data, hostile query strings.

use reqwest::StatusCode;
use serde_json::{Value, json};
use signaling_server::api::stats::cst_day_start;
use sqlx::Row;

use crate::helpers::TestApp;

pub const DAY_MS: i64 = 86_400_000;
pub const MASKED_NAME: &str = "张*丰";
pub const MASKED_ID: &str = "3101**********987X";
pub const NAME_ENC: &str = "ENC-NAME-SECRET";
pub const ID_ENC: &str = "ENC-ID-SECRET";
pub const ID_HASH: &str = "HASH-ID-SECRET";

/// Demo IDs and a way to insert fixture rows straight into the database.
pub struct Fixture<'a> {
    pub app: &'a TestApp,
    pub point: String,
    pub terminal: String,
    /// MZ-001 最低生活保障申请, line 民政.
    pub item: String,
    pub line: String,
    /// SB-003 个人参保缴费证明打印, line 社会保障.
    pub other_item: String,
    pub other_line: String,
    pub operator1: String,
    pub operator2: String,
    pub supervisor: String,
}

/// One call session to insert.
pub struct S<'a> {
    pub ticket: &'a str,
    pub operator: &'a str,
    pub line: &'a str,
    pub started_at: i64,
    pub wait_ms: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<&'a str>,
    pub transferred_from: Option<&'a str>,
}

async fn one(app: &TestApp, sql: &str, arg: &str) -> String {
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(arg.to_owned())
        .fetch_one(&app.state.db.pool)
        .await
        .expect(sql);
    row.try_get::<String, _>(0).expect("id")
}

impl<'a> Fixture<'a> {
    pub async fn new(app: &'a TestApp) -> Self {
        let point = one(app, "SELECT id FROM service_points WHERE code = $1", "JA-HS01").await;
        let item_line = "SELECT line_id FROM service_items WHERE code = $1";
        Self {
            terminal: one(app, "SELECT id FROM terminals WHERE point_id = $1", &point).await,
            point,
            item: one(app, "SELECT id FROM service_items WHERE code = $1", "MZ-001").await,
            line: one(app, item_line, "MZ-001").await,
            other_item: one(app, "SELECT id FROM service_items WHERE code = $1", "SB-003").await,
            other_line: one(app, item_line, "SB-003").await,
            operator1: one(app, "SELECT id FROM users WHERE username = $1", "operator1").await,
            operator2: one(app, "SELECT id FROM users WHERE username = $1", "operator2").await,
            supervisor: one(app, "SELECT id FROM users WHERE username = $1", "supervisor").await,
            app,
        }
    }

    /// A ticket of MZ-001 (or SB-003 with `other`), with masked resident data set.
    pub async fn ticket(
        &self,
        number: &str,
        created_at: i64,
        first_answered_at: Option<i64>,
        other: bool,
    ) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let (item, line) =
            if other { (&self.other_item, &self.other_line) } else { (&self.item, &self.line) };
        sqlx::query(
            "INSERT INTO tickets (id, number, service_day, point_id, terminal_id, item_id, line_id, priority, \
             request_id, resident_name_enc, resident_name_masked, id_number_enc, id_number_hash, id_number_masked, \
             status, close_reason, created_at, first_answered_at, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'normal', $8, $9, $10, $11, $12, $13, 'served', NULL, $14, $15, NULL)",
        )
        .bind(&id)
        .bind(number)
        .bind(format!("d{created_at}"))
        .bind(&self.point)
        .bind(&self.terminal)
        .bind(item)
        .bind(line)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(NAME_ENC)
        .bind(MASKED_NAME)
        .bind(ID_ENC)
        .bind(ID_HASH)
        .bind(MASKED_ID)
        .bind(created_at)
        .bind(first_answered_at)
        .execute(&self.app.state.db.pool)
        .await
        .expect("insert ticket");
        id
    }

    pub async fn session(&self, s: S<'_>) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO call_sessions (id, ticket_id, operator_id, terminal_id, line_id, status, started_at, \
             wait_ms, ended_at, end_reason, wrapped_at, outcome, notes, transfer_note, transferred_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, $13)",
        )
        .bind(&id)
        .bind(s.ticket)
        .bind(s.operator)
        .bind(&self.terminal)
        .bind(s.line)
        .bind(if s.ended_at.is_some() { "closed" } else { "active" })
        .bind(s.started_at)
        .bind(s.wait_ms)
        .bind(s.ended_at)
        // Fixture convention: a transferred-to session ends by hang-up, others by transfer.
        .bind(s.ended_at.map(|_| if s.transferred_from.is_some() { "hangup" } else { "transfer" }))
        .bind(s.outcome.and(s.ended_at))
        .bind(s.outcome)
        .bind(s.transferred_from)
        .execute(&self.app.state.db.pool)
        .await
        .expect("insert session");
        id
    }

    pub async fn rating(&self, session: &str, ticket: &str, level: &str, comment: Option<&str>, at: i64) {
        sqlx::query("INSERT INTO ratings (session_id, ticket_id, level, comment, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(session)
            .bind(ticket)
            .bind(level)
            .bind(comment)
            .bind(at)
            .execute(&self.app.state.db.pool)
            .await
            .expect("insert rating");
    }

    pub async fn rectification(
        &self,
        session: &str,
        level: &str,
        created_at: i64,
        due_at: i64,
        closed: bool,
    ) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO rectifications (id, session_id, level, status, due_at, created_at, callback_at, \
             callback_result, rectification, closed_by, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $7)",
        )
        .bind(&id)
        .bind(session)
        .bind(level)
        .bind(if closed { "closed" } else { "open" })
        .bind(due_at)
        .bind(created_at)
        .bind(closed.then_some(created_at + 1000))
        .bind(closed.then_some("已回访，群众表示理解"))
        .bind(closed.then(|| self.supervisor.clone()))
        .execute(&self.app.state.db.pool)
        .await
        .expect("insert rectification");
        id
    }
}

pub fn today_start() -> i64 {
    cst_day_start(signaling_server::db::now_ms())
}

pub fn assert_no_resident_data(body: &Value) {
    let text = body.to_string();
    for secret in [MASKED_NAME, MASKED_ID, NAME_ENC, ID_ENC, ID_HASH, "resident", "id_number"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// The figures day: 4 民政 tickets with waits 10 s, 20 s, 30 s, 90 s, one never answered, and
/// one 社会保障 ticket with a 200 s wait.
async fn figures_day(fx: &Fixture<'_>, base: i64) {
    let outcomes = [Some("completed"), Some("accepted_pending_approval"), Some("needs_materials"), None];
    let ratings = [Some("very_satisfied"), Some("satisfied"), Some("very_dissatisfied"), None];
    for (i, wait) in [10_000, 20_000, 30_000, 90_000].into_iter().enumerate() {
        let created = base + 9 * 3_600_000 + i64::try_from(i).expect("i") * 600_000;
        let ticket = fx.ticket(&format!("A00{i}"), created, Some(created + wait), false).await;
        let started = created + wait;
        let session = fx
            .session(S {
                ticket: &ticket,
                operator: &fx.operator1,
                line: &fx.line,
                started_at: started,
                wait_ms: wait,
                ended_at: Some(started + 300_000),
                outcome: outcomes[i],
                transferred_from: None,
            })
            .await;
        if let Some(level) = ratings[i] {
            fx.rating(&session, &ticket, level, None, started + 400_000).await;
            if level == "very_dissatisfied" {
                // Overdue: due an hour after the start of that (past) day.
                fx.rectification(&session, level, started + 400_000, base + 3_600_000, false).await;
            }
        }
    }
    fx.ticket("A009", base + 10 * 3_600_000, None, false).await;
    let created = base + 11 * 3_600_000;
    let ticket = fx.ticket("B001", created, Some(created + 200_000), true).await;
    let session = fx
        .session(S {
            ticket: &ticket,
            operator: &fx.operator2,
            line: &fx.other_line,
            started_at: created + 200_000,
            wait_ms: 200_000,
            ended_at: Some(created + 500_000),
            outcome: Some("rejected"),
            transferred_from: None,
        })
        .await;
    fx.rating(&session, &ticket, "dissatisfied", Some("等太久"), created + 600_000).await;
    fx.rectification(&session, "dissatisfied", created + 600_000, created + 20 * DAY_MS, true).await;
}

#[tokio::test]
async fn summary_figures_are_exact() {
    let app = TestApp::spawn().await;
    let fx = Fixture::new(&app).await;
    let base = today_start() - 10 * DAY_MS;
    figures_day(&fx, base).await;
    let sup = app.login("supervisor").await;
    let range = format!("from={base}&to={}", base + DAY_MS);

    let (s, mz) = app.get(&format!("/api/v1/stats/summary?{range}&line_id={}", fx.line), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{mz}");
    assert_eq!(
        mz,
        json!({
            "from": base, "to": base + DAY_MS,
            "tickets": 5, "served_sessions": 4,
            "first_response_within_60s_pct": 75.0,
            "avg_wait_secs": 37.5, "p90_wait_secs": 90.0,
            "resolution_rate_pct": 66.7,
            "ratings": { "very_satisfied": 1, "satisfied": 1, "basic": 0, "dissatisfied": 0, "very_dissatisfied": 1 },
            "negative_ratings": 1, "open_rectifications": 1, "overdue_rectifications": 1,
        })
    );

    let admin = app.login("admin").await;
    let (s, all) = app.get(&format!("/api/v1/stats/summary?{range}"), Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(
        all,
        json!({
            "from": base, "to": base + DAY_MS,
            "tickets": 6, "served_sessions": 5,
            "first_response_within_60s_pct": 60.0,
            "avg_wait_secs": 70.0, "p90_wait_secs": 200.0,
            "resolution_rate_pct": 50.0,
            "ratings": { "very_satisfied": 1, "satisfied": 1, "basic": 0, "dissatisfied": 1, "very_dissatisfied": 1 },
            "negative_ratings": 2, "open_rectifications": 1, "overdue_rectifications": 1,
        })
    );
    assert_no_resident_data(&all);

    // A day without anything: zeros and nulls, not errors.
    let (s, empty) = app.get(&format!("/api/v1/stats/summary?from={}", base + DAY_MS), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (empty["from"].as_i64(), empty["to"].as_i64()),
        (Some(base + DAY_MS), Some(base + 2 * DAY_MS))
    );
    assert_eq!((empty["tickets"].as_u64(), empty["served_sessions"].as_u64()), (Some(0), Some(0)));
    for key in ["first_response_within_60s_pct", "avg_wait_secs", "p90_wait_secs", "resolution_rate_pct"] {
        assert!(empty[key].is_null(), "{key}: {empty}");
    }

    // Today by default.
    let (s, today) = app.get("/api/v1/stats/summary", Some(&sup)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (today["from"].as_i64(), today["to"].as_i64()),
        (Some(today_start()), Some(today_start() + DAY_MS))
    );
    assert_eq!(today["tickets"], 0);
}

#[tokio::test]
async fn daily_figures_are_per_cst_day_oldest_first() {
    let app = TestApp::spawn().await;
    let fx = Fixture::new(&app).await;
    let today = today_start();
    let base = today - 10 * DAY_MS;
    figures_day(&fx, base).await;
    // One more ticket today, answered after 5 s.
    let created = today + 60_000;
    let ticket = fx.ticket("C001", created, Some(created + 5_000), false).await;
    fx.session(S {
        ticket: &ticket,
        operator: &fx.operator1,
        line: &fx.line,
        started_at: created + 5_000,
        wait_ms: 5_000,
        ended_at: None,
        outcome: None,
        transferred_from: None,
    })
    .await;
    let sup = app.login("supervisor").await;

    let (s, week) = app.get("/api/v1/stats/daily", Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{week}");
    let week = week.as_array().expect("days").clone();
    assert_eq!(week.len(), 7, "seven days by default");
    assert_eq!(week[6]["from"], today);
    assert_eq!(week[0]["from"], today - 6 * DAY_MS);
    assert!(week.windows(2).all(|w| w[0]["from"].as_i64() < w[1]["from"].as_i64()), "oldest first");
    assert_eq!(week[6]["tickets"], 1);
    assert_eq!(week[6]["first_response_within_60s_pct"], 100.0);
    assert_eq!(week[6]["p90_wait_secs"], 5.0);
    assert!(week[..6].iter().all(|d| d["tickets"] == 0));
    let date = week[6]["day"].as_str().expect("day");
    assert!(date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-', "{date}");

    let (s, days) = app.get(&format!("/api/v1/stats/daily?days=11&line_id={}", fx.line), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK);
    let days = days.as_array().expect("days");
    assert_eq!(days.len(), 11);
    let mut figures = days[0].clone();
    assert_eq!(figures["from"], base);
    figures.as_object_mut().expect("obj").remove("day");
    let (_, summary) =
        app.get(&format!("/api/v1/stats/summary?from={base}&line_id={}", fx.line), Some(&sup)).await;
    assert_eq!(figures, summary, "a day of daily equals the summary of that day");
    assert_eq!(figures["first_response_within_60s_pct"], 75.0);

    for bad in
        ["days=0", "days=91", "days=abc", "days=-1", "days=7&days=8", "days=1e1", "line_id=x", "hours=3"]
    {
        let (s, b) = app.get(&format!("/api/v1/stats/daily?{bad}"), Some(&sup)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn session_records_show_the_case_not_the_resident() {
    let app = TestApp::spawn().await;
    let fx = Fixture::new(&app).await;
    let base = today_start() - 3 * DAY_MS;
    let created = base + 10 * 3_600_000;
    let ticket = fx.ticket("A017", created, Some(created + 10_000), false).await;
    let first = fx
        .session(S {
            ticket: &ticket,
            operator: &fx.operator1,
            line: &fx.line,
            started_at: created + 10_000,
            wait_ms: 10_000,
            ended_at: Some(created + 130_000),
            outcome: None,
            transferred_from: None,
        })
        .await;
    let second = fx
        .session(S {
            ticket: &ticket,
            operator: &fx.operator2,
            line: &fx.other_line,
            started_at: created + 145_000,
            wait_ms: 15_000,
            ended_at: Some(created + 445_000),
            outcome: Some("completed"),
            transferred_from: Some(&first),
        })
        .await;
    fx.rating(&second, &ticket, "basic", Some("流程还可以更快"), created + 450_000).await;
    // Today's session, for the default range.
    let t2 = fx.ticket("A001", today_start() + 3_600_000, Some(today_start() + 3_630_000), false).await;
    let today_session = fx
        .session(S {
            ticket: &t2,
            operator: &fx.operator1,
            line: &fx.line,
            started_at: today_start() + 3_630_000,
            wait_ms: 30_000,
            ended_at: None,
            outcome: None,
            transferred_from: None,
        })
        .await;

    let sup = app.login("supervisor").await;
    let range = format!("from={base}&to={}", base + DAY_MS);
    let (s, list) = app.get(&format!("/api/v1/sessions?{range}"), Some(&sup)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_no_resident_data(&list);
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 2);
    let (newest, oldest) = (&list[0], &list[1]);
    assert_eq!(newest["session_id"], second.as_str(), "newest first");
    assert_eq!(
        newest,
        &json!({
            "session_id": second, "ticket_id": ticket, "ticket_number": "A017",
            "point_id": fx.point, "point_name": "华山居委会静邻帮办点", "item_name": "最低生活保障申请",
            "line_id": fx.other_line, "line_name": "社会保障",
            "operator_id": fx.operator2, "operator_name": "刘受理员", "status": "closed",
            "started_at": created + 145_000, "ended_at": created + 445_000, "wait_ms": 15_000,
            "first_response_ms": null, "handle_ms": 300_000,
            "outcome": "completed", "outcome_zh": "办结", "end_reason": "hangup",
            "rating": "basic", "rating_zh": "基本满意", "rating_comment": "流程还可以更快",
            "transferred_from": first,
        })
    );
    assert_eq!(oldest["first_response_ms"], 10_000, "first response only on the first session");
    assert_eq!(oldest["handle_ms"], 120_000);
    assert!(oldest["outcome"].is_null() && oldest["outcome_zh"].is_null() && oldest["rating"].is_null());
    assert_eq!(oldest["operator_name"], "陈受理员");

    // Filters and limit.
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|r| r["session_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let (_, v) = app.get(&format!("/api/v1/sessions?{range}&operator_id={}", fx.operator2), Some(&sup)).await;
    assert_eq!(ids(&v), [second.as_str()]);
    let (_, v) = app.get(&format!("/api/v1/sessions?{range}&line_id={}", fx.line), Some(&sup)).await;
    assert_eq!(ids(&v), [first.as_str()]);
    let (_, v) = app.get(&format!("/api/v1/sessions?{range}&limit=1"), Some(&sup)).await;
    assert_eq!(ids(&v), [second.as_str()]);
    let (_, v) = app.get(&format!("/api/v1/sessions?{range}&operator_id=&line_id="), Some(&sup)).await;
    assert_eq!(ids(&v).len(), 2, "empty filters mean no filter");
    let (s, v) = app.get("/api/v1/sessions", Some(&sup)).await;
    assert_eq!((s, ids(&v)), (StatusCode::OK, vec![today_session.clone()]), "today by default");

    // An operator sees only their own sessions, whatever they ask for.
    let op1 = app.login("operator1").await;
    let (s, v) = app.get(&format!("/api/v1/sessions?{range}"), Some(&op1)).await;
    assert_eq!((s, ids(&v)), (StatusCode::OK, vec![first.clone()]));
    assert_no_resident_data(&v);
    let (s, v) = app.get(&format!("/api/v1/sessions?{range}&operator_id={}", fx.operator1), Some(&op1)).await;
    assert_eq!((s, ids(&v)), (StatusCode::OK, vec![first.clone()]));
    let (s, _) = app.get(&format!("/api/v1/sessions?{range}&operator_id={}", fx.operator2), Some(&op1)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let op2 = app.login("operator2").await;
    let (_, v) = app.get(&format!("/api/v1/sessions?{range}"), Some(&op2)).await;
    assert_eq!(ids(&v), [second.as_str()]);
    let (_, v) = app.get("/api/v1/sessions", Some(&op2)).await;
    assert!(ids(&v).is_empty(), "operator2 had nothing today");
}

#[tokio::test]
async fn stats_endpoints_check_roles() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let staff = app.login("staff1").await;
    let op = app.login("operator1").await;
    let sup = app.login("supervisor").await;
    let admin = app.login("admin").await;
    for path in ["/api/v1/sessions", "/api/v1/stats/summary", "/api/v1/stats/daily"] {
        let (s, b) = app.get(path, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {b}");
        for token in [&staff, &device] {
            let (s, b) = app.get(path, Some(token)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        }
        for token in [&sup, &admin] {
            assert_eq!(app.get(path, Some(token)).await.0, StatusCode::OK, "{path}");
        }
    }
    assert_eq!(app.get("/api/v1/sessions", Some(&op)).await.0, StatusCode::OK);
    assert_eq!(app.get("/api/v1/stats/summary", Some(&op)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/stats/daily", Some(&op)).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn hostile_query_strings_get_clear_400s() {
    let app = TestApp::spawn().await;
    let sup = app.login("supervisor").await;
    let injection = "%27%20OR%201%3D1--";
    let cases = [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=99999999999999999999999",
        "from=abc",
        "from=-5",
        "from=1e3",
        "from=1.5",
        "to=99999999999999999",
        "from=2000&to=1000",
        "from=1000&to=1000",
        "from=0&to=99999999999",
        "operator_id=not-a-uuid",
        &format!("operator_id={injection}"),
        &format!("line_id={injection}"),
        &format!("line_id={}", "a".repeat(1000)),
        "from=1&from=2",
        "limit=1&limit=2",
        "unknown=1",
        "from[]=1",
    ];
    for q in cases {
        for path in ["/api/v1/sessions", "/api/v1/stats/summary"] {
            if path.ends_with("summary") && (q.starts_with("limit") || q.starts_with("operator")) {
                continue;
            }
            let (s, b) = app.get(&format!("{path}?{q}"), Some(&sup)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}?{q}: {b}");
            assert_eq!(b["error"]["code"], "bad_request", "{path}?{q}: {b}");
            let msg = b["error"]["message"].as_str().unwrap_or("");
            assert!(!msg.is_empty() && !msg.contains("OR 1=1"), "{path}?{q}: {msg}");
        }
    }
    // Summary refuses sessions-only parameters too.
    let (s, _) = app.get("/api/v1/stats/summary?limit=5", Some(&sup)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The database is intact and still answers.
    assert_eq!(app.get("/api/v1/sessions?limit=1000", Some(&sup)).await.0, StatusCode::OK);
}
