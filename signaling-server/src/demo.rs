//! Demo data (`--demo`): accounts, two service points in 静安区, a catalog of 16 items over 5
//! business lines, and one terminal per point. Idempotent: existing rows are left alone; a
//! demo terminal that has not enrolled yet gets a fresh enrollment code at every start, written
//! to `<data-dir>/demo-enrollment.txt` as `POINT_CODE CODE` lines.

use std::path::Path;

use shared::api::{MaterialTransfer, PointKind};
use sqlx::Row;

use crate::api::accounts::role_str;
use crate::api::terminals;
use crate::auth::password;
use crate::db::{Db, flag, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult};
use shared::protocol::Role;

/// (username, display name, role, index of the staff point, skill line codes)
type DemoUser = (&'static str, &'static str, Role, Option<usize>, &'static [&'static str]);

pub const DEMO_PASSWORD: &str = "bangban-demo";

struct DemoPoint {
    code: &'static str,
    name: &'static str,
    street: &'static str,
    committee: &'static str,
    kind: PointKind,
    address: &'static str,
    lng: f64,
    lat: f64,
    hours: &'static str,
    inspector: &'static str,
    phone: &'static str,
    terminal: &'static str,
}

const POINTS: [DemoPoint; 2] = [
    DemoPoint {
        code: "JA-HS01",
        name: "华山居委会静邻帮办点",
        street: "静安寺街道",
        committee: "华山居委会",
        kind: PointKind::Committee,
        address: "上海市静安区华山路 228 弄 3 号 一楼",
        lng: 121.4436,
        lat: 31.2226,
        hours: "周一至周五 9:00–17:00，周六 9:00–12:00",
        inspector: "王建国",
        phone: "021-62480001",
        terminal: "华山居委会一体机 1 号",
    },
    DemoPoint {
        code: "JA-JN01",
        name: "江宁路街道党群服务中心就近办",
        street: "江宁路街道",
        committee: "蒋家巷居委会",
        kind: PointKind::PartyCenter,
        address: "上海市静安区江宁路 1208 号 二楼",
        lng: 121.4492,
        lat: 31.2389,
        hours: "每日 9:00–17:00（节假日照常）",
        inspector: "李秀英",
        phone: "021-62770002",
        terminal: "江宁路党群一体机 1 号",
    },
];

use MaterialTransfer::{Courier, PrintSign, Scan};

type Item = (&'static str, &'static str, bool, &'static [(&'static str, MaterialTransfer)]);

const CATALOG: [(&str, &str, &[Item]); 5] = [
    (
        "MZ",
        "民政",
        &[
            (
                "MZ-001",
                "最低生活保障申请",
                true,
                &[
                    ("申请人身份证", Scan),
                    ("户口簿", Scan),
                    ("家庭收入及财产申报表", PrintSign),
                    ("家庭经济状况核对授权书", PrintSign),
                ],
            ),
            (
                "MZ-002",
                "老年综合津贴申领",
                true,
                &[("申请人身份证", Scan), ("社会保障卡", Scan), ("老年综合津贴申请表", PrintSign)],
            ),
            (
                "MZ-003",
                "临时救助申请",
                true,
                &[("申请人身份证", Scan), ("困难情况说明", PrintSign), ("医疗费用票据等证明原件", Courier)],
            ),
        ],
    ),
    (
        "SB",
        "社会保障",
        &[
            ("SB-001", "灵活就业人员参保登记", true, &[("身份证", Scan), ("灵活就业登记表", PrintSign)]),
            (
                "SB-002",
                "失业保险金申领",
                true,
                &[("身份证", Scan), ("解除或终止劳动合同证明", Scan), ("本人银行卡", Scan)],
            ),
            ("SB-003", "个人参保缴费证明打印", true, &[("身份证", Scan)]),
            ("SB-004", "退休人员基本信息变更", true, &[("身份证", Scan), ("信息变更申请表", PrintSign)]),
        ],
    ),
    (
        "YB",
        "医疗保障",
        &[
            (
                "YB-001",
                "城乡居民基本医疗保险参保登记",
                true,
                &[("身份证", Scan), ("户口簿", Scan), ("参保登记表", PrintSign)],
            ),
            (
                "YB-002",
                "医疗费用零星报销",
                true,
                &[
                    ("身份证", Scan),
                    ("医疗费用发票原件", Courier),
                    ("费用明细清单", Scan),
                    ("门急诊病历", Scan),
                ],
            ),
            (
                "YB-003",
                "长期护理保险评估申请",
                true,
                &[("身份证", Scan), ("长期护理保险需求评估申请表", PrintSign)],
            ),
        ],
    ),
    (
        "WJ",
        "卫生健康",
        &[
            (
                "WJ-001",
                "生育登记",
                true,
                &[("夫妻双方身份证", Scan), ("结婚证", Scan), ("生育登记表", PrintSign)],
            ),
            ("WJ-002", "独生子女父母奖励费申领", true, &[("身份证", Scan), ("独生子女父母光荣证", Scan)]),
            (
                "WJ-003",
                "计划生育特别扶助申请",
                true,
                &[("身份证", Scan), ("户口簿", Scan), ("特别扶助申请表", PrintSign)],
            ),
        ],
    ),
    (
        "CL",
        "残疾人服务",
        &[
            (
                "CL-001",
                "残疾人证新办",
                false,
                &[("身份证", Scan), ("户口簿", Scan), ("近期免冠照片", Scan), ("残疾人证申请表", PrintSign)],
            ),
            (
                "CL-002",
                "残疾人护理补贴申请",
                true,
                &[("残疾人证", Scan), ("身份证", Scan), ("护理补贴申请表", PrintSign)],
            ),
            ("CL-003", "残疾人证换领", true, &[("残疾人证原件", Courier), ("身份证", Scan)]),
        ],
    ),
];

async fn id_by(db: &Db, sql: &'static str, key: &str) -> ApiResult<Option<String>> {
    Ok(sqlx::query(sql)
        .bind(key)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<String, _>("id"))
        .transpose()?)
}

/// Seeds the demo data and returns `(point code, enrollment code or status)` for each terminal.
pub async fn seed(db: &Db, data_dir: &Path) -> ApiResult<Vec<(String, String)>> {
    let now = now_ms();
    let mut point_ids = Vec::new();
    for p in &POINTS {
        let id = match id_by(db, "SELECT id FROM service_points WHERE code = $1", p.code).await? {
            Some(id) => id,
            None => {
                let id = new_id().to_string();
                sqlx::query(
                    "INSERT INTO service_points (id, code, name, street, committee, kind, address, longitude, latitude, \
                     opening_hours, inspector_name, inspector_phone, status, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', $13, $13, 1)",
                )
                .bind(&id).bind(p.code).bind(p.name).bind(p.street).bind(p.committee).bind(p.kind.as_str())
                .bind(p.address).bind(p.lng).bind(p.lat).bind(p.hours).bind(p.inspector).bind(p.phone).bind(now)
                .execute(&db.pool)
                .await?;
                id
            }
        };
        point_ids.push(id);
    }

    let mut line_ids = std::collections::HashMap::new();
    for (order, (code, name, items)) in CATALOG.iter().enumerate() {
        let line_id = match id_by(db, "SELECT id FROM business_lines WHERE code = $1", code).await? {
            Some(id) => id,
            None => {
                let id = new_id().to_string();
                sqlx::query("INSERT INTO business_lines (id, code, name, sort_order, active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
                    .bind(&id).bind(*code).bind(*name).bind(i64::try_from(order).unwrap_or(0) * 10).bind(1_i64).bind(now)
                    .execute(&db.pool).await?;
                id
            }
        };
        line_ids.insert(*code, line_id.clone());
        for (icode, iname, remote, materials) in items.iter() {
            if id_by(db, "SELECT id FROM service_items WHERE code = $1", icode).await?.is_some() {
                continue;
            }
            let item_id = new_id().to_string();
            sqlx::query(
                "INSERT INTO service_items (id, code, name, line_id, remote_allowed, description, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&item_id).bind(*icode).bind(*iname).bind(&line_id).bind(flag(*remote)).bind("").bind(1_i64).bind(now)
            .execute(&db.pool).await?;
            for (pos, (mname, transfer)) in materials.iter().enumerate() {
                sqlx::query("INSERT INTO item_materials (id, item_id, position, name, transfer, required, note) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(new_id().to_string()).bind(&item_id).bind(i64::try_from(pos).unwrap_or(0)).bind(*mname)
                    .bind(transfer.as_str()).bind(1_i64).bind("")
                    .execute(&db.pool).await?;
            }
        }
    }

    let centers = seed_centers(db, now).await?;
    // Every demo account of the acceptance center works at the southern one, which owns both
    // demo points' streets; the northern one owns the rest of Jing'an (`--demo-points`).
    let south = centers.first().cloned();
    let users: [DemoUser; 5] = [
        ("admin", "系统管理员", Role::Admin, None, &[]),
        ("supervisor", "张主管", Role::Supervisor, None, &[]),
        ("operator1", "陈受理员", Role::Operator, None, &["MZ", "SB", "YB"]),
        ("operator2", "刘受理员", Role::Operator, None, &["WJ", "CL", "SB"]),
        ("staff1", "周社工", Role::Staff, Some(0), &[]),
    ];
    for (username, display, role, point, skills) in users {
        if id_by(db, "SELECT id FROM users WHERE username = $1", username).await?.is_some() {
            continue;
        }
        let hash = tokio::task::spawn_blocking(|| password::hash(DEMO_PASSWORD))
            .await
            .map_err(|_| ApiError::internal())??;
        let id = new_id().to_string();
        let center = matches!(role, Role::Operator | Role::Supervisor).then(|| south.clone()).flatten();
        sqlx::query(
            "INSERT INTO users (id, username, display_name, role, point_id, password_hash, active, created_at, updated_at, password_changed_at, center_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $9)",
        )
        .bind(&id).bind(username).bind(display).bind(role_str(role)).bind(point.map(|i| point_ids[i].clone()))
        .bind(hash).bind(1_i64).bind(now).bind(center)
        .execute(&db.pool).await?;
        for s in skills {
            sqlx::query("INSERT INTO operator_skills (user_id, line_id) VALUES ($1, $2)")
                .bind(&id)
                .bind(&line_ids[s])
                .execute(&db.pool)
                .await?;
        }
    }

    let mut codes = Vec::new();
    for (p, point_id) in POINTS.iter().zip(&point_ids) {
        let row = sqlx::query("SELECT id, status FROM terminals WHERE point_id = $1 AND name = $2")
            .bind(point_id)
            .bind(p.terminal)
            .fetch_optional(&db.pool)
            .await?;
        let line = match row {
            None => terminals::register(db, parse_id(point_id)?, p.terminal).await?.1,
            Some(r) => match r.try_get::<String, _>("status")?.as_str() {
                "pending" => terminals::reissue_code(db, parse_id(&r.try_get::<String, _>("id")?)?).await?.0,
                other => format!("({other})"),
            },
        };
        codes.push((p.code.to_owned(), line));
    }
    let text: String = codes.iter().map(|(p, c)| format!("{p} {c}\n")).collect();
    let path = data_dir.join("demo-enrollment.txt");
    std::fs::write(&path, text).map_err(|e| {
        tracing::error!(error = %e, path = %path.display(), "cannot write demo enrollment codes");
        ApiError::internal()
    })?;
    Ok(codes)
}

/// The demo's two acceptance centers and the streets each owns (Jing'an split south / north).
pub const DEMO_CENTERS: [(&str, &[&str]); 2] = [
    (
        "静安南部受理中心",
        &[
            "静安寺街道",
            "南京西路街道",
            "江宁路街道",
            "石门二路街道",
            "曹家渡街道",
            "天目西路街道",
            "北站街道",
        ],
    ),
    (
        "静安北部受理中心",
        &["宝山路街道", "芷江西路街道", "共和新路街道", "大宁路街道", "彭浦新村街道", "临汾路街道", "彭浦镇"],
    ),
];

/// Seeds the demo centers (once each, streets not owned yet); returns their ids in order.
async fn seed_centers(db: &Db, now: i64) -> ApiResult<Vec<String>> {
    let mut ids = Vec::new();
    for (name, streets) in DEMO_CENTERS {
        let id = match id_by(db, "SELECT id FROM centers WHERE name = $1", name).await? {
            Some(id) => id,
            None => {
                let id = new_id().to_string();
                sqlx::query("INSERT INTO centers (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                    .bind(&id)
                    .bind(name)
                    .bind(now)
                    .execute(&db.pool)
                    .await?;
                id
            }
        };
        for street in streets {
            let owned = sqlx::query("SELECT 1 FROM center_streets WHERE street = $1")
                .bind(*street)
                .fetch_optional(&db.pool)
                .await?
                .is_some();
            if !owned {
                sqlx::query("INSERT INTO center_streets (street, center_id) VALUES ($1, $2)")
                    .bind(*street)
                    .bind(&id)
                    .execute(&db.pool)
                    .await?;
            }
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Jing'an's streets and towns (街镇) with a point near each one's middle (longitude, latitude).
pub const JINGAN_STREETS: [(&str, f64, f64); 14] = [
    ("静安寺街道", 121.4450, 31.2230),
    ("南京西路街道", 121.4580, 31.2300),
    ("江宁路街道", 121.4490, 31.2380),
    ("石门二路街道", 121.4610, 31.2370),
    ("曹家渡街道", 121.4350, 31.2300),
    ("天目西路街道", 121.4580, 31.2470),
    ("北站街道", 121.4720, 31.2470),
    ("宝山路街道", 121.4700, 31.2570),
    ("芷江西路街道", 121.4580, 31.2570),
    ("共和新路街道", 121.4520, 31.2670),
    ("大宁路街道", 121.4550, 31.2800),
    ("彭浦新村街道", 121.4480, 31.2980),
    ("临汾路街道", 121.4550, 31.3100),
    ("彭浦镇", 121.4330, 31.2900),
];

/// Fills the demo district up to `total` points (`--demo-points`): the order of size of
/// Jing'an (~270), spread over its streets with real-ish coordinates, each with a terminal.
/// Deterministic by the point's number: every 9th is closed now by its structured hours (a
/// closure over all dates), every 8th terminal (from the 3rd) is enrolled but silent for an hour (the alarm
/// monitor raises its offline alarm), every 5th point's weekly inspection has been overdue
/// since January 2025 and the others' start in 2030 (upcoming). Idempotent: fills only what
/// is missing. Returns how many points it added.
pub async fn fill_district(db: &Db, total: u32) -> ApiResult<usize> {
    let have: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM service_points").fetch_one(&db.pool).await?.try_get("n")?;
    let missing = usize::try_from(i64::from(total) - have).unwrap_or(0);
    let now = now_ms();
    let kinds = [PointKind::Committee, PointKind::PartyCenter, PointKind::Park, PointKind::Building];
    let closed_now = serde_json::to_string(&shared::cases::OpeningHours {
        weekly: vec![shared::cases::WeekdayHours {
            weekdays: vec![1, 2, 3, 4, 5, 6, 7],
            open: "09:00".into(),
            close: "17:00".into(),
        }],
        holiday_rule: shared::cases::HolidayRule::IgnoreCalendar,
        closures: vec![shared::cases::Closure {
            from: "2000-01-01".into(),
            to: "2099-12-31".into(),
            reason: "演示：暂停开放".into(),
        }],
    })
    .map_err(|_| ApiError::internal())?;
    let mut added = 0;
    let mut n: u32 = 0;
    // A small linear congruential generator: the same district at every start.
    let mut seed: u64 = 0x2026_1205;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        f64::from(u32::try_from(seed >> 40).unwrap_or(0)) / f64::from(1_u32 << 24)
    };
    while added < missing {
        n += 1;
        let code = format!("JA-D{n:03}");
        let (dx, dy) = (next() - 0.5, next() - 0.5);
        if id_by(db, "SELECT id FROM service_points WHERE code = $1", &code).await?.is_some() {
            continue;
        }
        let (street, lng, lat) = JINGAN_STREETS[usize::try_from(n).unwrap_or(0) % JINGAN_STREETS.len()];
        let committee = format!("第{}居委会", n.div_ceil(14));
        let kind = kinds[usize::try_from(n).unwrap_or(0) % kinds.len()];
        let name = format!("{}{}{}号就近办点", street.trim_end_matches("街道"), kind.label_zh(), n);
        let id = new_id().to_string();
        sqlx::query(
            "INSERT INTO service_points (id, code, name, street, committee, kind, address, longitude, latitude, \
             opening_hours, inspector_name, inspector_phone, status, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', $13, $13, 1)",
        )
        .bind(&id)
        .bind(&code)
        .bind(&name)
        .bind(street)
        .bind(&committee)
        .bind(kind.as_str())
        .bind(format!("上海市静安区{}{}弄{}号", street, 100 + n, 1 + n % 30))
        .bind(lng + dx * 0.014)
        .bind(lat + dy * 0.012)
        .bind("周一至周五 9:00–17:00")
        .bind(format!("巡检员{n:03}"))
        .bind(format!("0216248{n:04}"))
        .bind(now)
        .execute(&db.pool)
        .await?;
        if n.is_multiple_of(9) {
            sqlx::query(
                "INSERT INTO point_opening_hours (point_id, schedule, updated_at, updated_by) VALUES ($1, $2, $3, NULL)",
            )
            .bind(&id)
            .bind(&closed_now)
            .bind(now)
            .execute(&db.pool)
            .await?;
        }
        let (terminal, _, _) = terminals::register(db, parse_id(&id)?, &format!("{name}一体机")).await?;
        if n % 8 == 3 {
            sqlx::query(
                "UPDATE terminals SET status = 'active', enrollment_code_hash = NULL, enrollment_expires_at = NULL, \
                 enrolled_at = $1, last_seen_at = $1 WHERE id = $2",
            )
            .bind(now - 3_600_000)
            .bind(terminal.to_string())
            .execute(&db.pool)
            .await?;
        }
        let starts_on = if n.is_multiple_of(5) { "2025-01-06" } else { "2030-01-07" };
        sqlx::query(
            "INSERT INTO inspection_schedules (point_id, frequency, weekday, starts_on, grace_working_days, \
             inspector_account_id, flagged_due_on, created_at, updated_at, updated_by) \
             VALUES ($1, 'weekly', 1, $2, 2, NULL, NULL, $3, $3, NULL)",
        )
        .bind(&id)
        .bind(starts_on)
        .bind(now)
        .execute(&db.pool)
        .await?;
        added += 1;
    }
    Ok(added)
}
