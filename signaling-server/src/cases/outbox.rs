//! The durable notification outbox: progress messages to residents (受理、需补材料、办结) and
//! escalations go into `outbox` in the same request that causes them and are delivered at
//! least once by [`worker`], through pluggable channels:
//!
//! - `webhook`: an HTTP POST to the district's platform or an SMS gateway, signed with
//!   HMAC-SHA256 (`X-Bangban-Signature: sha256=<hex>` over `<timestamp>.<body>`, with
//!   `X-Bangban-Timestamp` and `X-Bangban-Delivery`, the message ID the receiver deduplicates
//!   on), retried with exponential backoff and dead-lettered after `max_attempts`;
//! - `console`: the console's own task list (`/api/v1/tasks`), delivered when stored.
//!
//! Every attempt is kept in `outbox_attempts` for supervisors. The resident's phone number is
//! never stored in a message: it is read (and decrypted) from the order at delivery time, so
//! the retention purge also covers messages not yet sent. The retry policy is sans-IO
//! ([`after_attempt`]).

use axum::extract::State;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use shared::api::ErrorBody;
use shared::cases::{
    NotificationAttempt, NotificationStatus, NotificationView, TaskView, WebhookSettings, WebhookSettingsView,
};
use shared::protocol::Role;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{Db, new_id, now_ms, parse_id};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::AppState;

/// Longest response body read from a webhook receiver (the rest is ignored).
const MAX_ERROR_CHARS: usize = 200;
const SECRET_CONTEXT: &str = "outbox:webhook:secret";

/// What happens after a failed attempt number `attempts` (1-based), sans-IO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(i64),
    DeadLetter,
}

/// Exponential backoff: `base · 2^(attempts−1)`, capped at an hour; dead after `max`.
pub fn after_attempt(attempts: u32, max: u32, base_ms: i64, now: i64) -> AfterFailure {
    if attempts >= max {
        return AfterFailure::DeadLetter;
    }
    let shift = attempts.saturating_sub(1).min(20);
    AfterFailure::RetryAt(now + (base_ms.saturating_mul(1 << shift)).min(3_600_000))
}

/// `sha256=<hex>` of `<timestamp>.<body>` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Queues a message. `recipient` is a user ID or a role name for the console channel, the
/// order's resident (`resident`), supervisors or a point's inspector (`inspector`, with the
/// point's ID in the payload) for the webhook.
pub async fn enqueue(
    db: &Db,
    channel: &str,
    topic: &str,
    order_id: Option<Uuid>,
    recipient: &str,
    payload: Value,
) -> Result<Uuid, sqlx::Error> {
    insert_message(&db.pool, channel, topic, order_id, recipient, payload).await
}

/// [`enqueue`] inside the caller's transaction: the message exists exactly when the change
/// that caused it committed.
pub async fn enqueue_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    channel: &str,
    topic: &str,
    order_id: Option<Uuid>,
    recipient: &str,
    payload: Value,
) -> Result<Uuid, sqlx::Error> {
    insert_message(&mut **tx, channel, topic, order_id, recipient, payload).await
}

async fn insert_message<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    channel: &str,
    topic: &str,
    order_id: Option<Uuid>,
    recipient: &str,
    payload: Value,
) -> Result<Uuid, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    let delivered = channel == "console";
    sqlx::query(
        "INSERT INTO outbox (id, channel, topic, order_id, recipient, payload, status, attempts, next_attempt_at, \
         created_at, delivered_at, last_error, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8, $9, NULL, NULL)",
    )
    .bind(id.to_string())
    .bind(channel)
    .bind(topic)
    .bind(order_id.map(|o| o.to_string()))
    .bind(recipient)
    .bind(payload.to_string())
    .bind(if delivered { "delivered" } else { "pending" })
    .bind(now)
    .bind(delivered.then_some(now))
    .execute(exec)
    .await?;
    Ok(id)
}

/// A progress message to the resident of an order (webhook) when the resident gave a phone
/// number with consent at the time of delivery; always kept for supervisors to see.
pub async fn notify_resident(db: &Db, order_id: Uuid, topic: &str, text: &str) -> Result<(), sqlx::Error> {
    enqueue(db, "webhook", topic, Some(order_id), "resident", json!({ "text": text })).await.map(|_| ())
}

/// An escalation: a console task for supervisors and a webhook message for the platform.
pub async fn notify_supervisors(db: &Db, order_id: Uuid, topic: &str, text: &str) -> Result<(), sqlx::Error> {
    enqueue(db, "console", topic, Some(order_id), "supervisor", json!({ "text": text })).await?;
    enqueue(db, "webhook", topic, Some(order_id), "supervisor", json!({ "text": text })).await.map(|_| ())
}

struct Webhook {
    url: String,
    secret: Vec<u8>,
    max_attempts: u32,
    retry_base_ms: i64,
}

async fn webhook_settings(state: &AppState) -> ApiResult<Option<Webhook>> {
    let Some(r) = sqlx::query(
        "SELECT url, secret_enc, enabled, max_attempts, retry_base_ms FROM outbox_webhook WHERE id = 1",
    )
    .fetch_optional(&state.db.pool)
    .await?
    else {
        return Ok(None);
    };
    if r.try_get::<i64, _>("enabled")? == 0 {
        return Ok(None);
    }
    let secret = state
        .pii
        .decrypt(&r.try_get::<String, _>("secret_enc")?, SECRET_CONTEXT)
        .map_err(|_| ApiError::internal())?;
    Ok(Some(Webhook {
        url: r.try_get("url")?,
        secret: secret.into_bytes(),
        max_attempts: u32::try_from(r.try_get::<i64, _>("max_attempts")?).unwrap_or(8),
        retry_base_ms: r.try_get("retry_base_ms")?,
    }))
}

/// The body sent for a message: topic, order number, text, and the resident's phone number
/// (decrypted now) for resident messages.
async fn body_of(state: &AppState, r: &AnyRow) -> ApiResult<Value> {
    let id: String = r.try_get("id")?;
    let payload: Value = serde_json::from_str(&r.try_get::<String, _>("payload")?).unwrap_or(Value::Null);
    let order_id: Option<String> = r.try_get("order_id")?;
    let recipient: String = r.try_get("recipient")?;
    let mut body = json!({
        "id": id, "topic": r.try_get::<String, _>("topic")?, "created_at": r.try_get::<i64, _>("created_at")?,
        "recipient": recipient, "text": payload["text"],
    });
    // A message to a point's inspector (巡检负责人) carries the inspector as registered with the
    // point now; the phone number is not stored in the message.
    if let (true, Some(point)) = (recipient == "inspector", payload["point_id"].as_str()) {
        body["point_id"] = json!(point);
        for k in ["due_on", "terminal_id", "kind"] {
            if !payload[k].is_null() {
                body[k] = payload[k].clone();
            }
        }
        let row = sqlx::query(
            "SELECT code, name, inspector_name, inspector_phone FROM service_points WHERE id = $1",
        )
        .bind(point)
        .fetch_optional(&state.db.pool)
        .await?;
        if let Some(row) = row {
            body["point"] = json!({ "code": row.try_get::<String, _>("code")?, "name": row.try_get::<String, _>("name")? });
            body["inspector"] = json!({
                "name": row.try_get::<String, _>("inspector_name")?,
                "phone": row.try_get::<String, _>("inspector_phone")?,
            });
        }
    }
    // An appointment's confirmation or reminder goes to the number given with consent when it
    // was booked, read now; none once it is no longer booked (cancelled, missed, checked in).
    if let (true, Some(a)) = (recipient == "appointment", payload["appointment_id"].as_str()) {
        body["appointment"] =
            json!({ "id": a, "point_id": payload["point_id"], "slot_start": payload["slot_start"] });
        let row = sqlx::query("SELECT phone_enc FROM appointments WHERE id = $1 AND state = 'booked'")
            .bind(a)
            .fetch_optional(&state.db.pool)
            .await?;
        let phone = match row {
            Some(row) => Some(
                state
                    .pii
                    .decrypt(&row.try_get::<String, _>("phone_enc")?, &format!("appointment:{a}:phone"))
                    .map_err(|_| ApiError::internal())?,
            ),
            None => None,
        };
        body["phone"] = json!(phone);
    }
    if let Some(o) = &order_id {
        let row = sqlx::query("SELECT number, phone_enc FROM work_orders WHERE id = $1")
            .bind(o)
            .fetch_optional(&state.db.pool)
            .await?;
        if let Some(row) = row {
            body["order"] = json!({ "id": o, "number": row.try_get::<String, _>("number")? });
            if recipient == "resident" {
                let phone = match row.try_get::<Option<String>, _>("phone_enc")? {
                    Some(enc) => Some(
                        state
                            .pii
                            .decrypt(&enc, &format!("work_order:{o}:phone"))
                            .map_err(|_| ApiError::internal())?,
                    ),
                    None => None,
                };
                body["phone"] = json!(phone);
            }
        }
    }
    Ok(body)
}

/// Delivers every webhook message due at `now`; returns how many attempts were made.
pub async fn deliver_due(state: &AppState, client: &reqwest_s3::Client, now: i64) -> ApiResult<usize> {
    let Some(hook) = webhook_settings(state).await? else { return Ok(0) };
    let rows = sqlx::query(
        "SELECT id, topic, order_id, recipient, payload, attempts, created_at FROM outbox \
         WHERE channel = 'webhook' AND status = 'pending' AND next_attempt_at <= $1 ORDER BY created_at, id LIMIT 50",
    )
    .bind(now)
    .fetch_all(&state.db.pool)
    .await?;
    let mut made = 0;
    for r in &rows {
        let id: String = r.try_get("id")?;
        let attempts = u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0) + 1;
        let body = body_of(state, r).await?;
        // A resident message without a consented phone number has nobody to go to.
        if (body["recipient"] == "resident" || body["recipient"] == "appointment") && body["phone"].is_null()
        {
            sqlx::query("UPDATE outbox SET status = 'skipped', last_error = $1 WHERE id = $2")
                .bind("居民未留联系电话 (no consented phone number)")
                .bind(&id)
                .execute(&state.db.pool)
                .await?;
            continue;
        }
        let text = body.to_string();
        let ts = now_ms();
        let started = std::time::Instant::now();
        let result = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-bangban-timestamp", ts.to_string())
            .header("x-bangban-delivery", &id)
            .header("x-bangban-signature", sign(&hook.secret, ts, text.as_bytes()))
            .body(text)
            .send()
            .await;
        let took = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error): (Option<i64>, Option<String>) = match result {
            Ok(resp) if resp.status().is_success() => (Some(i64::from(resp.status().as_u16())), None),
            Ok(resp) => {
                let code = resp.status().as_u16();
                (Some(i64::from(code)), Some(format!("HTTP {code}")))
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                (None, Some(format!("{kind} error")))
            }
        };
        made += 1;
        let at = now_ms();
        sqlx::query(
            "INSERT INTO outbox_attempts (id, message_id, attempt, at, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id().to_string())
        .bind(&id)
        .bind(i64::from(attempts))
        .bind(at)
        .bind(status_code)
        .bind(error.as_deref().map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>()))
        .bind(took)
        .execute(&state.db.pool)
        .await?;
        match (&error, after_attempt(attempts, hook.max_attempts, hook.retry_base_ms, at)) {
            (None, _) => {
                sqlx::query(
                    "UPDATE outbox SET status = 'delivered', attempts = $1, delivered_at = $2, last_error = NULL WHERE id = $3",
                )
                .bind(i64::from(attempts))
                .bind(at)
                .bind(&id)
                .execute(&state.db.pool)
                .await?;
            }
            (Some(e), AfterFailure::RetryAt(next)) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
                )
                .bind(i64::from(attempts))
                .bind(next)
                .bind(e)
                .bind(&id)
                .execute(&state.db.pool)
                .await?;
            }
            (Some(e), AfterFailure::DeadLetter) => {
                sqlx::query(
                    "UPDATE outbox SET status = 'dead', attempts = $1, last_error = $2 WHERE id = $3",
                )
                .bind(i64::from(attempts))
                .bind(e)
                .bind(&id)
                .execute(&state.db.pool)
                .await?;
                tracing::warn!(message = %id, attempts, "notification dead-lettered");
            }
        }
    }
    Ok(made)
}

/// Delivers due webhook messages every half second (what is pending survives restarts: it
/// is in the database).
pub async fn worker(state: AppState) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest_s3::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client not built; notifications stay queued");
            return;
        }
    };
    let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = deliver_due(&state, &client, now_ms()).await {
            tracing::error!(error = %e.message, "notification delivery failed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST

fn check_url(url: &str) -> ApiResult<String> {
    let u = url.trim();
    let ok = u.len() <= 512
        && (u.starts_with("http://") || u.starts_with("https://"))
        && !u.chars().any(|c| c.is_control() || c.is_whitespace())
        && u.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if ok {
        Ok(u.to_owned())
    } else {
        Err(ApiError::validation("url 须为 http(s) 地址，最长 512 字符 (invalid url)"))
    }
}

/// Set the webhook channel (admin): URL, HMAC secret (16–256 characters, stored encrypted,
/// never shown again), attempts before dead-lettering (1–20) and the first retry delay
/// (100 ms–1 h, doubling each time).
#[utoipa::path(put, path = "/api/v1/notifications/webhook", tag = "cases", request_body = WebhookSettings,
    responses((status = 200, body = WebhookSettingsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_webhook(
    State(state): State<AppState>,
    p: Principal,
    Json(req): Json<WebhookSettings>,
) -> ApiResult<Json<WebhookSettingsView>> {
    p.require(&[Role::Admin])?;
    let url = check_url(&req.url)?;
    let n = req.secret.chars().count();
    if !(16..=256).contains(&n) || req.secret.chars().any(char::is_control) {
        return Err(ApiError::validation("secret 须为 16–256 个字符 (invalid secret)"));
    }
    if !(1..=20).contains(&req.max_attempts) || !(100..=3_600_000).contains(&req.retry_base_ms) {
        return Err(ApiError::validation(
            "max_attempts 须为 1–20，retry_base_ms 须为 100–3600000 (out of range)",
        ));
    }
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM outbox_webhook WHERE id = 1").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO outbox_webhook (id, url, secret_enc, enabled, max_attempts, retry_base_ms, updated_at) \
         VALUES (1, $1, $2, $3, $4, $5, $6)",
    )
    .bind(&url)
    .bind(state.pii.encrypt(&req.secret, SECRET_CONTEXT))
    .bind(i64::from(req.enabled))
    .bind(i64::from(req.max_attempts))
    .bind(req.retry_base_ms)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state
        .audit(AuditRecord::new("notifications.webhook", "outbox").by(&p).detail(json!({
            "url": url, "enabled": req.enabled, "max_attempts": req.max_attempts,
        })))
        .await;
    Ok(Json(WebhookSettingsView {
        url,
        enabled: req.enabled,
        max_attempts: req.max_attempts,
        retry_base_ms: req.retry_base_ms,
    }))
}

fn status_of(s: &str) -> NotificationStatus {
    match s {
        "delivered" => NotificationStatus::Delivered,
        "dead" => NotificationStatus::Dead,
        "skipped" => NotificationStatus::Skipped,
        _ => NotificationStatus::Pending,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    /// `pending`, `delivered`, `dead`, `skipped` or `all` (default).
    #[param(pattern = "^(pending|delivered|dead|skipped|all)$")]
    pub status: Option<String>,
    /// Only this order's messages (empty: all).
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub order_id: Option<String>,
}

/// Outbox messages with every delivery attempt, newest first, at most 500 (supervisor,
/// admin). No phone numbers.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "cases", params(NotificationsQuery),
    responses((status = 200, body = [NotificationView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<NotificationsQuery>,
) -> ApiResult<Json<Vec<NotificationView>>> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let status = q.status.as_deref().unwrap_or("all");
    if !["pending", "delivered", "dead", "skipped", "all"].contains(&status) {
        return Err(ApiError::bad_request("status 无效 (invalid status)"));
    }
    let order = match q.order_id.as_deref().filter(|s| !s.is_empty()) {
        Some(s) if s.len() == 36 => Some(
            Uuid::parse_str(s).map_err(|_| ApiError::bad_request("order_id 须为 UUID (must be a UUID)"))?,
        ),
        Some(_) => return Err(ApiError::bad_request("order_id 须为 UUID (must be a UUID)")),
        None => None,
    };
    let rows = sqlx::query(
        "SELECT id, channel, topic, order_id, recipient, payload, status, attempts, next_attempt_at, created_at, \
         delivered_at, last_error FROM outbox WHERE ($1 = 'all' OR status = $1) AND ($2 = '' OR order_id = $2) \
         ORDER BY created_at DESC, id LIMIT 500",
    )
    .bind(status)
    .bind(order.map(|o| o.to_string()).unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        let attempts = sqlx::query(
            "SELECT attempt, at, status_code, error, duration_ms FROM outbox_attempts WHERE message_id = $1 ORDER BY attempt",
        )
        .bind(&id)
        .fetch_all(&state.db.pool)
        .await?
        .iter()
        .map(|a| {
            Ok(NotificationAttempt {
                attempt: a.try_get("attempt")?,
                at: a.try_get("at")?,
                status_code: a.try_get("status_code")?,
                error: a.try_get("error")?,
                duration_ms: a.try_get("duration_ms")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
        let payload: Value = serde_json::from_str(&r.try_get::<String, _>("payload")?).unwrap_or(Value::Null);
        out.push(NotificationView {
            id: parse_id(&id)?,
            channel: r.try_get("channel")?,
            topic: r.try_get("topic")?,
            order_id: r.try_get::<Option<String>, _>("order_id")?.map(|o| parse_id(&o)).transpose()?,
            recipient: r.try_get("recipient")?,
            text: payload["text"].as_str().unwrap_or_default().to_owned(),
            status: status_of(&r.try_get::<String, _>("status")?),
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            created_at: r.try_get("created_at")?,
            delivered_at: r.try_get("delivered_at")?,
            last_error: r.try_get("last_error")?,
            history: attempts,
        });
    }
    Ok(Json(out))
}

/// Put a dead-lettered message back in the queue (supervisor, admin).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/retry", tag = "cases", params(("id" = Uuid, Path)),
    responses((status = 204, description = "queued again"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::http::StatusCode> {
    p.require(&[Role::Admin, Role::Supervisor])?;
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND status = 'dead' AND channel = 'webhook'",
    )
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if done != 1 {
        let exists = sqlx::query("SELECT 1 AS x FROM outbox WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&state.db.pool)
            .await?
            .is_some();
        return Err(if exists {
            ApiError::conflict("只有已转入死信的消息可以重发 (only dead-lettered messages)")
        } else {
            ApiError::not_found("通知")
        });
    }
    state.audit(AuditRecord::new("notifications.retry", "outbox").by(&p).target(id)).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The console's task list: console messages to the caller or the caller's role, open ones
/// first, at most 200.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "cases",
    responses((status = 200, body = [TaskView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn tasks(State(state): State<AppState>, p: Principal) -> ApiResult<Json<Vec<TaskView>>> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    let role =
        serde_json::to_value(p.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let rows = sqlx::query(
        "SELECT x.id, x.topic, x.order_id, o.number, x.payload, x.created_at, x.done_at FROM outbox x \
         LEFT JOIN work_orders o ON o.id = x.order_id \
         WHERE x.channel = 'console' AND (x.recipient = $1 OR x.recipient = $2) \
         ORDER BY CASE WHEN x.done_at IS NULL THEN 0 ELSE 1 END, x.created_at DESC LIMIT 200",
    )
    .bind(p.id.to_string())
    .bind(role)
    .fetch_all(&state.db.pool)
    .await?;
    let out = rows
        .iter()
        .map(|r| {
            let payload: Value =
                serde_json::from_str(&r.try_get::<String, _>("payload")?).unwrap_or(Value::Null);
            Ok(TaskView {
                id: parse_id(&r.try_get::<String, _>("id")?)?,
                topic: r.try_get("topic")?,
                order_id: r.try_get::<Option<String>, _>("order_id")?.map(|o| parse_id(&o)).transpose()?,
                order_number: r.try_get("number")?,
                text: payload["text"].as_str().unwrap_or_default().to_owned(),
                created_at: r.try_get("created_at")?,
                done_at: r.try_get("done_at")?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(out))
}

/// Mark a task of the caller's done.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/done", tag = "cases", params(("id" = Uuid, Path)),
    responses((status = 204, description = "done"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn task_done(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::http::StatusCode> {
    p.require(&[Role::Admin, Role::Supervisor, Role::Operator, Role::Staff])?;
    let role =
        serde_json::to_value(p.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let done = sqlx::query(
        "UPDATE outbox SET done_at = COALESCE(done_at, $1) WHERE id = $2 AND channel = 'console' \
         AND (recipient = $3 OR recipient = $4)",
    )
    .bind(now_ms())
    .bind(id.to_string())
    .bind(p.id.to_string())
    .bind(role)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(ApiError::not_found("任务"));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_dead_letters() {
        assert_eq!(after_attempt(1, 4, 1000, 0), AfterFailure::RetryAt(1000));
        assert_eq!(after_attempt(2, 4, 1000, 0), AfterFailure::RetryAt(2000));
        assert_eq!(after_attempt(3, 4, 1000, 10), AfterFailure::RetryAt(4010));
        assert_eq!(after_attempt(4, 4, 1000, 0), AfterFailure::DeadLetter);
        assert_eq!(after_attempt(19, 20, 3_600_000, 0), AfterFailure::RetryAt(3_600_000), "capped");
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Computed independently with Python's hmac module.
        let s = sign(b"key-key-key-key-key", 1_700_000_000_000, br#"{"a":1}"#);
        assert_eq!(s, "sha256=c5df87e27e68392089a39a38da188b9a66cfff14f7f675367d767af474c8969f");
        assert_ne!(s, sign(b"key-key-key-key-kez", 1_700_000_000_000, br#"{"a":1}"#));
        assert_ne!(s, sign(b"key-key-key-key-key", 1_700_000_000_001, br#"{"a":1}"#));
    }
}
