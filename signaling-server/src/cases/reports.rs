//! Reports (日报告、周通报、月汇总) per point, street or line: tickets, served, first response
//! within 60 s, resolution, ratings, work orders opened / closed / overdue and call-backs done.
//! [`build`] reads the facts of a China-time period and [`aggregate`] (pure) groups them;
//! `GET /api/v1/reports` returns JSON and `GET /api/v1/reports/export` the same as XLSX
//! (rust_xlsxwriter).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rust_xlsxwriter::{Format, FormatAlign, Workbook, XlsxError};
use serde::Deserialize;
use shared::api::ErrorBody;
use shared::cases::{Report, ReportGroup, ReportPeriod, ReportRow};
use shared::protocol::Role;
use sqlx::Row;

use crate::auth::Principal;
use crate::calendar::{civil, cst_day, date_of, day_start, days_from_civil, iso_weekday, parse_date};
use crate::db::{Db, now_ms};
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::state::AppState;

/// A first response within this many milliseconds counts as prompt.
const PROMPT_MS: i64 = 60_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `daily` (日报告, default), `weekly` (周通报: the Monday-to-Sunday week) or `monthly`
    /// (月汇总: the calendar month).
    #[param(pattern = "^(daily|weekly|monthly)$")]
    pub period: Option<String>,
    /// A day in the period, `YYYY-MM-DD` in China time, years 2000–2100; default today.
    #[param(format = Date, pattern = "^(20[0-9]{2}|2100)-")]
    pub date: Option<String>,
    /// `point` (default), `street` or `line`.
    #[param(pattern = "^(point|street|line)$")]
    pub group: Option<String>,
}

/// The period's first day and the day after its last (China-time day numbers).
pub fn period_days(period: ReportPeriod, day: i64) -> (i64, i64) {
    match period {
        ReportPeriod::Daily => (day, day + 1),
        ReportPeriod::Weekly => {
            let monday = day - i64::from(iso_weekday(day)) + 1;
            (monday, monday + 7)
        }
        ReportPeriod::Monthly => {
            let (y, m, _) = civil(day);
            let next = if m == 12 { days_from_civil(y + 1, 1, 1) } else { days_from_civil(y, m + 1, 1) };
            (days_from_civil(y, m, 1), next)
        }
    }
}

fn parse_query(q: &ReportQuery, now: i64) -> ApiResult<(ReportPeriod, ReportGroup, i64)> {
    let opt = |v: &Option<String>| v.as_deref().map(str::to_owned);
    let period = match opt(&q.period).as_deref() {
        None | Some("daily") => ReportPeriod::Daily,
        Some("weekly") => ReportPeriod::Weekly,
        Some("monthly") => ReportPeriod::Monthly,
        Some(_) => {
            return Err(ApiError::bad_request("period 须为 daily、weekly 或 monthly (invalid period)"));
        }
    };
    let group = match opt(&q.group).as_deref() {
        None | Some("point") => ReportGroup::Point,
        Some("street") => ReportGroup::Street,
        Some("line") => ReportGroup::Line,
        Some(_) => return Err(ApiError::bad_request("group 须为 point、street 或 line (invalid group)")),
    };
    let day = match opt(&q.date) {
        None => cst_day(now),
        Some(s) => {
            parse_date(&s).ok_or_else(|| ApiError::bad_request("date 须为 YYYY-MM-DD (invalid date)"))?
        }
    };
    Ok((period, group, day))
}

/// Where a fact belongs: its point, the point's street and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub point_id: String,
    pub street: String,
    pub line_id: String,
}

/// What happened in a period, one entry per ticket, call, order or call-back.
#[derive(Debug, Default)]
pub struct Facts {
    /// Tickets taken, with the time to their first answer (ms) if answered.
    pub tickets: Vec<(Place, Option<i64>)>,
    /// Calls started, with their outcome and rating.
    pub sessions: Vec<(Place, Option<String>, Option<String>)>,
    pub orders_opened: Vec<Place>,
    pub orders_closed: Vec<Place>,
    pub orders_overdue: Vec<Place>,
    pub callbacks_done: Vec<Place>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round1(part as f64 * 100.0 / whole as f64))
}

fn finish(row: &mut ReportRow, answered: u64) {
    row.first_response_within_60s_pct = pct(row.first_response_within_60s, answered);
    row.resolution_rate_pct = pct(row.resolved, row.wrapped_up);
    let r = &row.ratings;
    let all = r.very_satisfied + r.satisfied + r.basic + r.dissatisfied + r.very_dissatisfied;
    row.satisfaction_pct = pct(r.very_satisfied + r.satisfied + r.basic, all);
}

/// Groups the facts (pure). `names` maps a point's or line's id to its name; a street is its
/// own name. Rows with any activity, most tickets first, then by name.
pub fn aggregate(
    group: ReportGroup,
    facts: &Facts,
    names: &HashMap<String, String>,
) -> (Vec<ReportRow>, ReportRow) {
    let key = |p: &Place| match group {
        ReportGroup::Point => p.point_id.clone(),
        ReportGroup::Street => p.street.clone(),
        ReportGroup::Line => p.line_id.clone(),
    };
    let mut rows: HashMap<String, (ReportRow, u64)> = HashMap::new();
    let mut total = (ReportRow { name: "合计".into(), ..ReportRow::default() }, 0u64);
    let mut each = |p: &Place, f: &dyn Fn(&mut ReportRow, &mut u64)| {
        let k = key(p);
        let e = rows.entry(k.clone()).or_insert_with(|| {
            let name = match group {
                ReportGroup::Street => k.clone(),
                _ => names.get(&k).cloned().unwrap_or_else(|| k.clone()),
            };
            (ReportRow { key: k, name, ..ReportRow::default() }, 0)
        });
        f(&mut e.0, &mut e.1);
        f(&mut total.0, &mut total.1);
    };
    for (p, answer) in &facts.tickets {
        let answer = *answer;
        each(p, &|r, answered| {
            r.tickets += 1;
            if let Some(ms) = answer {
                *answered += 1;
                if ms <= PROMPT_MS {
                    r.first_response_within_60s += 1;
                }
            }
        });
    }
    for (p, outcome, rating) in &facts.sessions {
        each(p, &|r, _| {
            r.served += 1;
            if let Some(o) = outcome.as_deref() {
                r.wrapped_up += 1;
                if o == "completed" || o == "accepted_pending_approval" {
                    r.resolved += 1;
                }
            }
            match rating.as_deref() {
                Some("very_satisfied") => r.ratings.very_satisfied += 1,
                Some("satisfied") => r.ratings.satisfied += 1,
                Some("basic") => r.ratings.basic += 1,
                Some("dissatisfied") => r.ratings.dissatisfied += 1,
                Some("very_dissatisfied") => r.ratings.very_dissatisfied += 1,
                _ => {}
            }
        });
    }
    for p in &facts.orders_opened {
        each(p, &|r, _| r.orders_opened += 1);
    }
    for p in &facts.orders_closed {
        each(p, &|r, _| r.orders_closed += 1);
    }
    for p in &facts.orders_overdue {
        each(p, &|r, _| r.orders_overdue += 1);
    }
    for p in &facts.callbacks_done {
        each(p, &|r, _| r.callbacks_done += 1);
    }
    let mut out: Vec<ReportRow> = rows
        .into_values()
        .map(|(mut r, answered)| {
            finish(&mut r, answered);
            r
        })
        .collect();
    out.sort_by(|a, b| b.tickets.cmp(&a.tickets).then_with(|| a.name.cmp(&b.name)));
    finish(&mut total.0, total.1);
    (out, total.0)
}

fn place(r: &sqlx::any::AnyRow) -> ApiResult<Place> {
    Ok(Place {
        point_id: r.try_get("point_id")?,
        street: r.try_get("street")?,
        line_id: r.try_get("line_id")?,
    })
}

/// Reads the period's facts. Work orders are overdue when their deadline fell in the period
/// (and has passed) and they were not 办结 before it.
async fn facts(db: &Db, from: i64, to: i64, now: i64) -> ApiResult<Facts> {
    let pool = &db.pool;
    let mut f = Facts::default();
    for r in sqlx::query(
        "SELECT t.point_id, p.street, t.line_id, t.created_at, t.first_answered_at FROM tickets t \
         JOIN service_points p ON p.id = t.point_id WHERE t.created_at >= $1 AND t.created_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?
    {
        let created: i64 = r.try_get("created_at")?;
        let answered: Option<i64> = r.try_get("first_answered_at")?;
        f.tickets.push((place(&r)?, answered.map(|a| a - created)));
    }
    for r in sqlx::query(
        "SELECT t.point_id, p.street, s.line_id, s.outcome, g.level FROM call_sessions s \
         JOIN tickets t ON t.id = s.ticket_id JOIN service_points p ON p.id = t.point_id \
         LEFT JOIN ratings g ON g.session_id = s.id WHERE s.started_at >= $1 AND s.started_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?
    {
        f.sessions.push((place(&r)?, r.try_get("outcome")?, r.try_get("level")?));
    }
    const ORDERS: &str = "SELECT o.point_id, p.street, o.line_id FROM work_orders o \
                          JOIN service_points p ON p.id = o.point_id WHERE ";
    let orders = |cond: &str| format!("{ORDERS}{cond}");
    // Overdue: the deadline fell in the period and has passed (`$3` is the earlier of now and
    // the period's end), and the order was not 办结 by then.
    for (sql, list) in [
        (orders("o.created_at >= $1 AND o.created_at < $2 AND o.created_at < $3"), &mut f.orders_opened),
        (orders("o.closed_at >= $1 AND o.closed_at < $2 AND o.closed_at < $3"), &mut f.orders_closed),
        (
            orders(
                "o.due_at >= $1 AND o.due_at < $2 AND o.due_at < $3 AND (o.closed_at IS NULL OR o.closed_at > o.due_at)",
            ),
            &mut f.orders_overdue,
        ),
    ] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(now.min(to))
            .fetch_all(pool)
            .await?;
        for r in rows {
            list.push(place(&r)?);
        }
    }
    // A call-back belongs where its order or its call was.
    for r in sqlx::query(
        "SELECT COALESCE(o.point_id, t.point_id) AS point_id, p.street, COALESCE(o.line_id, s.line_id) AS line_id \
         FROM callbacks c LEFT JOIN work_orders o ON o.id = c.order_id \
         LEFT JOIN call_sessions s ON s.id = c.session_id LEFT JOIN tickets t ON t.id = s.ticket_id \
         JOIN service_points p ON p.id = COALESCE(o.point_id, t.point_id) \
         WHERE c.status = 'done' AND c.done_at >= $1 AND c.done_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?
    {
        f.callbacks_done.push(place(&r)?);
    }
    Ok(f)
}

/// Builds the report of the period holding `day`.
pub async fn build(
    db: &Db,
    period: ReportPeriod,
    group: ReportGroup,
    day: i64,
    now: i64,
) -> ApiResult<Report> {
    let (first, next) = period_days(period, day);
    let (from, to) = (day_start(first), day_start(next));
    let facts = facts(db, from, to, now).await?;
    let names_sql = match group {
        ReportGroup::Line => "SELECT id, name FROM business_lines",
        _ => "SELECT id, name FROM service_points",
    };
    let mut names = HashMap::new();
    for r in sqlx::query(names_sql).fetch_all(&db.pool).await? {
        names.insert(r.try_get::<String, _>("id")?, r.try_get::<String, _>("name")?);
    }
    let (rows, total) = aggregate(group, &facts, &names);
    let (first_day, last_day) = (date_of(first), date_of(next - 1));
    let title = if first_day == last_day {
        format!("{}（{first_day}，按{}）", period.label_zh(), group.label_zh())
    } else {
        format!("{}（{first_day} 至 {last_day}，按{}）", period.label_zh(), group.label_zh())
    };
    Ok(Report {
        period,
        period_zh: period.label_zh().into(),
        group,
        group_zh: group.label_zh().into(),
        first_day,
        last_day,
        from,
        to,
        title,
        rows,
        total,
    })
}

/// A report for supervisors and admins.
#[utoipa::path(get, path = "/api/v1/reports", tag = "cases", params(ReportQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Report>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let now = now_ms();
    let (period, group, day) = parse_query(&q, now)?;
    Ok(Json(build(&state.db, period, group, day, now).await?))
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The column headers of the sheet, in order.
pub const COLUMNS: [&str; 18] = [
    "名称",
    "取号",
    "已服务",
    "60秒内首次响应",
    "60秒内首次响应率(%)",
    "办理结果",
    "解决",
    "解决率(%)",
    "非常满意",
    "满意",
    "基本满意",
    "不满意",
    "非常不满意",
    "满意率(%)",
    "新增工单",
    "办结工单",
    "超期工单",
    "完成回访",
];

/// The report as an XLSX workbook: a title row, the headers, a row per group and the total.
pub fn to_xlsx(report: &Report) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(&report.period_zh)?;
    let title = Format::new().set_bold().set_font_size(14);
    let head = Format::new()
        .set_bold()
        .set_background_color("#E6EEF8")
        .set_align(FormatAlign::Center)
        .set_text_wrap();
    let bold = Format::new().set_bold();
    let pct_fmt = Format::new().set_num_format("0.0");
    ws.write_string_with_format(0, 0, &report.title, &title)?;
    let mut cols: Vec<&str> = COLUMNS.to_vec();
    cols[0] = match report.group {
        ReportGroup::Point => "服务点",
        ReportGroup::Street => "街道",
        ReportGroup::Line => "条线",
    };
    for (c, h) in cols.iter().enumerate() {
        ws.write_string_with_format(2, c as u16, *h, &head)?;
    }
    ws.set_column_width(0, 24)?;
    ws.set_column_range_width(1, cols.len() as u16 - 1, 11)?;
    ws.set_row_height(2, 32)?;
    let rows = report.rows.iter().chain(std::iter::once(&report.total));
    for (i, r) in rows.enumerate() {
        let row = 3 + i as u32;
        let is_total = i == report.rows.len();
        if is_total {
            ws.write_string_with_format(row, 0, &r.name, &bold)?;
        } else {
            ws.write_string(row, 0, &r.name)?;
        }
        let counts = [
            (1, r.tickets),
            (2, r.served),
            (3, r.first_response_within_60s),
            (5, r.wrapped_up),
            (6, r.resolved),
            (8, r.ratings.very_satisfied),
            (9, r.ratings.satisfied),
            (10, r.ratings.basic),
            (11, r.ratings.dissatisfied),
            (12, r.ratings.very_dissatisfied),
            (14, r.orders_opened),
            (15, r.orders_closed),
            (16, r.orders_overdue),
            (17, r.callbacks_done),
        ];
        for (c, v) in counts {
            ws.write_number(row, c, v as f64)?;
        }
        for (c, v) in
            [(4, r.first_response_within_60s_pct), (7, r.resolution_rate_pct), (13, r.satisfaction_pct)]
        {
            match v {
                Some(v) => ws.write_number_with_format(row, c, v, &pct_fmt)?,
                None => ws.write_string(row, c, "—")?,
            };
        }
    }
    ws.set_freeze_panes(3, 1)?;
    wb.save_to_buffer()
}

/// The same report as an XLSX file (supervisors and admins).
#[utoipa::path(get, path = "/api/v1/reports/export", tag = "cases", params(ReportQuery),
    responses((status = 200, description = "The report as an XLSX workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let now = now_ms();
    let (period, group, day) = parse_query(&q, now)?;
    let report = build(&state.db, period, group, day, now).await?;
    let bytes = to_xlsx(&report).map_err(|e| {
        tracing::error!(error = %e, "cannot write the report workbook");
        ApiError::internal()
    })?;
    let kind = match period {
        ReportPeriod::Daily => "daily",
        ReportPeriod::Weekly => "weekly",
        ReportPeriod::Monthly => "monthly",
    };
    let group_s = match group {
        ReportGroup::Point => "point",
        ReportGroup::Street => "street",
        ReportGroup::Line => "line",
    };
    let filename = format!("bangban-{kind}-{group_s}-{}.xlsx", report.first_day);
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(XLSX));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_china_days_iso_weeks_and_months() {
        let d = parse_date("2026-12-05").expect("date"); // a Saturday
        assert_eq!(period_days(ReportPeriod::Daily, d), (d, d + 1));
        let (a, b) = period_days(ReportPeriod::Weekly, d);
        assert_eq!((date_of(a).as_str(), date_of(b - 1).as_str()), ("2026-11-30", "2026-12-06"));
        let (a, b) = period_days(ReportPeriod::Monthly, parse_date("2026-12-31").expect("date"));
        assert_eq!((date_of(a).as_str(), date_of(b - 1).as_str()), ("2026-12-01", "2026-12-31"));
        let (a, b) = period_days(ReportPeriod::Monthly, parse_date("2026-02-10").expect("date"));
        assert_eq!(b - a, 28);
    }

    #[test]
    fn aggregates_by_street_with_rates() {
        let at = |point: &str, street: &str| Place {
            point_id: point.into(),
            street: street.into(),
            line_id: "L".into(),
        };
        let facts = Facts {
            tickets: vec![
                (at("p1", "静安寺"), Some(30_000)),
                (at("p2", "静安寺"), Some(90_000)),
                (at("p3", "南京西路"), None),
            ],
            sessions: vec![
                (at("p1", "静安寺"), Some("completed".into()), Some("very_satisfied".into())),
                (at("p2", "静安寺"), Some("needs_materials".into()), Some("dissatisfied".into())),
            ],
            orders_opened: vec![at("p2", "静安寺")],
            ..Facts::default()
        };
        let (rows, total) = aggregate(ReportGroup::Street, &facts, &HashMap::new());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "静安寺");
        assert_eq!((rows[0].tickets, rows[0].served, rows[0].first_response_within_60s), (2, 2, 1));
        assert_eq!(rows[0].first_response_within_60s_pct, Some(50.0));
        assert_eq!(rows[0].resolution_rate_pct, Some(50.0));
        assert_eq!(rows[0].satisfaction_pct, Some(50.0));
        assert_eq!(rows[1].first_response_within_60s_pct, None, "nothing answered");
        assert_eq!((total.tickets, total.orders_opened, total.name.as_str()), (3, 1, "合计"));
    }
}
