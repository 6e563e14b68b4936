//! Persistence of tickets, sessions, events, ratings and rectifications, and the lookups the
//! driver makes before an input enters the core. Every state change of a ticket or session is
//! a [`Write`]; the driver commits a tick's writes in one transaction. Nothing personal goes
//! into `session_events`.

use serde_json::Value;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::lease::Fence;
use crate::db::{Db, new_id};

pub struct NewTicket<'a> {
    pub id: Uuid,
    pub number: &'a str,
    pub service_day: &'a str,
    pub point_id: Uuid,
    pub terminal_id: Uuid,
    pub item_id: Uuid,
    pub line_id: Uuid,
    pub priority: &'a str,
    pub request_id: Uuid,
    pub resident_name_enc: Option<String>,
    pub resident_name_masked: Option<String>,
    pub id_number_enc: Option<String>,
    pub id_number_hash: Option<String>,
    pub id_number_masked: Option<String>,
    /// The staff member who helped, `(user id, display name)`.
    pub assisted_by: Option<(Uuid, &'a str)>,
    pub created_at: i64,
    /// The resident's answer to recording (`None`: not asked).
    pub recording_consent: Option<bool>,
}

pub async fn next_ticket_seq(db: &Db, point: Uuid, day: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM tickets WHERE point_id = $1 AND service_day = $2")
        .bind(point.to_string())
        .bind(day)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get::<i64, _>("n")? + 1)
}

/// Stores a new ticket and its `ticket_taken` event in one transaction.
pub async fn insert_ticket(
    db: &Db,
    fence: Option<&Fence>,
    t: &NewTicket<'_>,
    event: &Write,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    if let Some(f) = fence {
        super::lease::check(&mut tx, f).await?;
    }
    sqlx::query(
        "INSERT INTO tickets (id, number, service_day, point_id, terminal_id, item_id, line_id, priority, request_id, \
         resident_name_enc, resident_name_masked, id_number_enc, id_number_hash, id_number_masked, status, created_at, \
         assisted_by, assisted_by_name, recording_consent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'waiting', $15, $16, $17, $18)",
    )
    .bind(t.id.to_string())
    .bind(t.number)
    .bind(t.service_day)
    .bind(t.point_id.to_string())
    .bind(t.terminal_id.to_string())
    .bind(t.item_id.to_string())
    .bind(t.line_id.to_string())
    .bind(t.priority)
    .bind(t.request_id.to_string())
    .bind(t.resident_name_enc.as_deref())
    .bind(t.resident_name_masked.as_deref())
    .bind(t.id_number_enc.as_deref())
    .bind(t.id_number_hash.as_deref())
    .bind(t.id_number_masked.as_deref())
    .bind(t.created_at)
    .bind(t.assisted_by.map(|(id, _)| id.to_string()))
    .bind(t.assisted_by.map(|(_, name)| name))
    .bind(t.recording_consent.map(i32::from))
    .execute(&mut *tx)
    .await?;
    apply(&mut tx, event).await?;
    tx.commit().await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: Uuid,
    pub ticket: Uuid,
    pub operator: Uuid,
    pub terminal: Uuid,
    pub line: Uuid,
    pub started_at: i64,
    pub wait_ms: i64,
    pub transferred_from: Option<Uuid>,
    /// The ticket was checked in with an appointment not yet marked served.
    pub appointment: bool,
}

/// One change of live state, written by the driver in the batch of its tick (group commit):
/// every change of one tick goes in one transaction, before anything of that tick is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    TicketStatus {
        ticket: Uuid,
        status: &'static str,
        close_reason: Option<&'static str>,
        at: i64,
    },
    InsertSession(NewSession),
    SessionStatus {
        session: Uuid,
        status: &'static str,
    },
    EndSession {
        session: Uuid,
        reason: &'static str,
        at: i64,
        transfer_note: Option<String>,
    },
    WrapUp {
        session: Uuid,
        outcome: Option<&'static str>,
        notes: Option<String>,
        at: i64,
    },
    /// A row of `session_events`, the ticket's history (kinds and IDs, nothing personal).
    Event {
        ticket: Uuid,
        session: Option<Uuid>,
        kind: &'static str,
        detail: Value,
        at: i64,
    },
    Rate {
        session: Uuid,
        ticket: Uuid,
        level: &'static str,
        comment: Option<String>,
        rectification_due: Option<i64>,
        at: i64,
    },
    /// An audit-log entry about a session (a supervisor joining, changing mode, leaving or
    /// ending the call), chained in the same transaction as the turn's other changes.
    Audit {
        actor: Uuid,
        actor_name: String,
        action: &'static str,
        session: Uuid,
        detail: Value,
    },
}

/// Writes `writes` in one transaction; in cluster mode only while the lease carries `fence`.
pub async fn commit(db: &Db, fence: Option<&Fence>, writes: &[Write]) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    if let Some(f) = fence {
        super::lease::check(&mut tx, f).await?;
    }
    for w in writes {
        apply(&mut tx, w).await?;
    }
    tx.commit().await
}

/// Writes one change on `conn` (inside the caller's transaction).
pub async fn apply(conn: &mut AnyConnection, w: &Write) -> Result<(), sqlx::Error> {
    match w {
        Write::TicketStatus { ticket, status, close_reason, at } => {
            let closing = matches!(*status, "served" | "cancelled" | "abandoned");
            sqlx::query(
                "UPDATE tickets SET status = $1, close_reason = COALESCE($2, close_reason), \
                 closed_at = CASE WHEN $3 = 1 THEN $4 ELSE closed_at END WHERE id = $5",
            )
            .bind(*status)
            .bind(*close_reason)
            .bind(i64::from(closing))
            .bind(*at)
            .bind(ticket.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Write::InsertSession(s) => {
            sqlx::query(
                "INSERT INTO call_sessions (id, ticket_id, operator_id, terminal_id, line_id, status, started_at, wait_ms, transferred_from) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8)",
            )
            .bind(s.id.to_string())
            .bind(s.ticket.to_string())
            .bind(s.operator.to_string())
            .bind(s.terminal.to_string())
            .bind(s.line.to_string())
            .bind(s.started_at)
            .bind(s.wait_ms)
            .bind(s.transferred_from.map(|t| t.to_string()))
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE tickets SET status = 'in_call', first_answered_at = COALESCE(first_answered_at, $1) WHERE id = $2",
            )
            .bind(s.started_at)
            .bind(s.ticket.to_string())
            .execute(&mut *conn)
            .await?;
            // The appointment checked in with it is served from the moment an operator takes it
            // (no statement for the tickets without one: the accept's commit is on its path).
            if s.appointment {
                sqlx::query(
                "UPDATE appointments SET state = 'served', closed_at = $1 WHERE ticket_id = $2 AND state = 'checked_in'",
            )
            .bind(s.started_at)
            .bind(s.ticket.to_string())
            .execute(&mut *conn)
            .await?;
            }
        }
        Write::SessionStatus { session, status } => {
            sqlx::query("UPDATE call_sessions SET status = $1 WHERE id = $2")
                .bind(*status)
                .bind(session.to_string())
                .execute(&mut *conn)
                .await?;
        }
        Write::EndSession { session, reason, at, transfer_note } => {
            sqlx::query(
                "UPDATE call_sessions SET status = 'ended', ended_at = COALESCE(ended_at, $1), \
                 end_reason = COALESCE(end_reason, $2), transfer_note = COALESCE($3, transfer_note) WHERE id = $4",
            )
            .bind(*at)
            .bind(*reason)
            .bind(transfer_note.as_deref())
            .bind(session.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Write::WrapUp { session, outcome, notes, at } => {
            sqlx::query(
                "UPDATE call_sessions SET status = 'closed', wrapped_at = $1, outcome = $2, notes = $3 WHERE id = $4",
            )
            .bind(*at)
            .bind(*outcome)
            .bind(notes.as_deref())
            .bind(session.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Write::Event { ticket, session, kind, detail, at } => {
            sqlx::query(
                "INSERT INTO session_events (id, session_id, ticket_id, at, kind, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id().to_string())
            .bind(session.map(|s| s.to_string()))
            .bind(ticket.to_string())
            .bind(*at)
            .bind(*kind)
            .bind(detail.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Write::Audit { actor, actor_name, action, session, detail } => {
            let mut rec =
                crate::audit::AuditRecord::new(action, "session").target(session).detail(detail.clone());
            rec.actor_id = Some(*actor);
            rec.actor_name = actor_name.clone();
            crate::audit::append_on(conn, &rec).await?;
        }
        Write::Rate { session, ticket, level, comment, rectification_due, at } => {
            sqlx::query(
                "INSERT INTO ratings (session_id, ticket_id, level, comment, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session.to_string())
            .bind(ticket.to_string())
            .bind(*level)
            .bind(comment.as_deref())
            .bind(*at)
            .execute(&mut *conn)
            .await?;
            if let Some(due) = rectification_due {
                sqlx::query(
                    "INSERT INTO rectifications (id, session_id, level, status, due_at, created_at) VALUES ($1, $2, $3, 'open', $4, $5)",
                )
                .bind(new_id().to_string())
                .bind(session.to_string())
                .bind(*level)
                .bind(*due)
                .bind(*at)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Item, line and point details needed to open a ticket.
pub struct ItemInfo {
    pub item_name: String,
    pub line_id: Uuid,
    pub line_name: String,
    pub remote_allowed: bool,
    pub active: bool,
}

pub async fn item_info(db: &Db, item: Uuid) -> Result<Option<ItemInfo>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.name, i.line_id, i.remote_allowed, i.active, l.name AS line_name FROM service_items i \
         JOIN business_lines l ON l.id = i.line_id WHERE i.id = $1",
    )
    .bind(item.to_string())
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(ItemInfo {
            item_name: r.try_get("name")?,
            line_id: crate::db::parse_id(&r.try_get::<String, _>("line_id")?)?,
            line_name: r.try_get("line_name")?,
            remote_allowed: crate::db::get_flag(&r, "remote_allowed")?,
            active: crate::db::get_flag(&r, "active")?,
        })
    })
    .transpose()
}

/// The name of a required-material slot of `item`.
pub async fn slot_name(db: &Db, item: Uuid, slot: Uuid) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT name FROM item_materials WHERE id = $1 AND item_id = $2")
        .bind(slot.to_string())
        .bind(item.to_string())
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| r.try_get("name")).transpose()
}

/// `(code, name, open)` of a point.
pub async fn point_info(db: &Db, point: Uuid) -> Result<Option<(String, String, bool)>, sqlx::Error> {
    let row = sqlx::query("SELECT code, name, status FROM service_points WHERE id = $1")
        .bind(point.to_string())
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get("code")?, r.try_get("name")?, r.try_get::<String, _>("status")? == "open")))
        .transpose()
}

/// The acceptance center of an operator's account, if any.
pub async fn operator_center(db: &Db, user: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let row = sqlx::query("SELECT center_id FROM users WHERE id = $1")
        .bind(user.to_string())
        .fetch_optional(&db.pool)
        .await?;
    match row.map(|r| r.try_get::<Option<String>, _>("center_id")).transpose()?.flatten() {
        Some(c) => Ok(Some(crate::db::parse_id(&c)?)),
        None => Ok(None),
    }
}

/// A point's acceptance center (through its street) and whether `item` is offered on its
/// street (an item with no street rows is offered everywhere).
pub async fn point_scope(db: &Db, point: Uuid, item: Uuid) -> Result<(Option<Uuid>, bool), sqlx::Error> {
    let row = sqlx::query(
        "SELECT p.street, cs.center_id FROM service_points p \
         LEFT JOIN center_streets cs ON cs.street = p.street WHERE p.id = $1",
    )
    .bind(point.to_string())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok((None, false)) };
    let street: String = row.try_get("street")?;
    let center = match row.try_get::<Option<String>, _>("center_id")? {
        Some(c) => Some(crate::db::parse_id(&c)?),
        None => None,
    };
    let streets = sqlx::query("SELECT street FROM item_streets WHERE item_id = $1")
        .bind(item.to_string())
        .fetch_all(&db.pool)
        .await?;
    let mut offered = streets.is_empty();
    for r in &streets {
        offered |= r.try_get::<String, _>("street")? == street;
    }
    Ok((center, offered))
}

pub async fn skills(db: &Db, user: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows = sqlx::query("SELECT line_id FROM operator_skills WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| crate::db::parse_id(&r.try_get::<String, _>("line_id")?)).collect()
}

pub async fn line_names(db: &Db) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, name FROM business_lines").fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| Ok((crate::db::parse_id(&r.try_get::<String, _>("id")?)?, r.try_get("name")?)))
        .collect()
}

pub async fn user_name(db: &Db, user: Uuid) -> Result<Option<(String, String, bool)>, sqlx::Error> {
    Ok(user_account(db, user).await?.map(|(name, role, active, _)| (name, role, active)))
}

/// An account's display name, role, whether it is active, and its token generation (tokens
/// issued before the last password, role or status change carry an older one).
pub async fn user_account(db: &Db, user: Uuid) -> Result<Option<(String, String, bool, i64)>, sqlx::Error> {
    let row = sqlx::query("SELECT display_name, role, active, token_gen FROM users WHERE id = $1")
        .bind(user.to_string())
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("display_name")?,
            r.try_get("role")?,
            crate::db::get_flag(&r, "active")?,
            r.try_get::<i64, _>("token_gen")?,
        ))
    })
    .transpose()
}

/// A ticket that was waiting or in a call when the server stopped.
pub struct OpenTicket {
    pub view: shared::protocol::TicketView,
    pub terminal: Uuid,
    pub created_at: i64,
    pub service_day: String,
    pub status: String,
    /// The resident agreed that the call is recorded.
    pub recording: bool,
    /// The acceptance center of the ticket's point.
    pub center: Option<Uuid>,
    /// The slot `(start, end)` of the appointment checked in with it.
    pub appointment: Option<(i64, i64)>,
}

/// Tickets left `waiting` or `in_call` by a previous run, oldest first.
pub async fn open_tickets(db: &Db) -> Result<Vec<OpenTicket>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT t.id, t.number, t.service_day, t.point_id, t.terminal_id, t.item_id, t.line_id, t.priority, \
         t.resident_name_masked, t.id_number_masked, t.status, t.created_at, t.assisted_by_name, t.recording_consent, \
         i.name AS item_name, l.name AS line_name, p.name AS point_name, cs.center_id, a.slot_start, a.slot_end FROM tickets t \
         JOIN service_items i ON i.id = t.item_id JOIN business_lines l ON l.id = t.line_id \
         JOIN service_points p ON p.id = t.point_id LEFT JOIN center_streets cs ON cs.street = p.street \
         LEFT JOIN appointments a ON a.ticket_id = t.id AND a.state = 'checked_in' \
         WHERE t.status IN ('waiting', 'in_call') ORDER BY t.created_at",
    )
    .fetch_all(&db.pool)
    .await?;
    let id = |r: &sqlx::any::AnyRow, c: &str| -> Result<Uuid, sqlx::Error> {
        crate::db::parse_id(&r.try_get::<String, _>(c)?)
    };
    rows.iter()
        .map(|r| {
            let priority = super::wire::priority_from_str(&r.try_get::<String, _>("priority")?);
            Ok(OpenTicket {
                view: shared::protocol::TicketView {
                    ticket_id: id(r, "id")?,
                    number: r.try_get("number")?,
                    item_id: id(r, "item_id")?,
                    item_name: r.try_get("item_name")?,
                    line_id: id(r, "line_id")?,
                    line_name: r.try_get("line_name")?,
                    point_id: id(r, "point_id")?,
                    point_name: r.try_get("point_name")?,
                    priority,
                    resident_name_masked: r.try_get("resident_name_masked")?,
                    id_number_masked: r.try_get("id_number_masked")?,
                    waited_secs: 0,
                    assisted_by: r.try_get("assisted_by_name")?,
                },
                terminal: id(r, "terminal_id")?,
                created_at: r.try_get("created_at")?,
                service_day: r.try_get("service_day")?,
                status: r.try_get("status")?,
                recording: r.try_get::<Option<i32>, _>("recording_consent")?.is_some_and(|v| v == 1),
                center: r
                    .try_get::<Option<String>, _>("center_id")?
                    .map(|c| crate::db::parse_id(&c))
                    .transpose()?,
                appointment: match (r.try_get("slot_start")?, r.try_get("slot_end")?) {
                    (Some(start), Some(end)) => Some((start, end)),
                    _ => None,
                },
            })
        })
        .collect()
}

/// Sessions a previous run left open are closed as interrupted by the restart. With
/// `keep_live` (a cluster's new authority) calls in progress are left to [`live_sessions`] and
/// only those waiting for their wrap-up are closed.
pub async fn close_interrupted_sessions(
    db: &Db,
    fence: Option<&Fence>,
    now: i64,
    keep_live: bool,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    if let Some(f) = fence {
        super::lease::check(&mut tx, f).await?;
    }
    let sql = if keep_live {
        "UPDATE call_sessions SET status = 'closed', ended_at = COALESCE(ended_at, $1), \
         end_reason = COALESCE(end_reason, 'server_restart'), wrapped_at = COALESCE(wrapped_at, $1) \
         WHERE status = 'ended'"
    } else {
        "UPDATE call_sessions SET status = 'closed', ended_at = COALESCE(ended_at, $1), \
         end_reason = COALESCE(end_reason, 'server_restart'), wrapped_at = COALESCE(wrapped_at, $1) \
         WHERE status IN ('active', 'held', 'ended')"
    };
    let n = sqlx::query(sql).bind(now).execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// A call in progress when the previous authority stopped (cluster mode), with what the new
/// one needs to carry it on: its operator's name, skills and center.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub session: Uuid,
    pub ticket: Uuid,
    pub operator: Uuid,
    pub operator_name: String,
    pub terminal: Uuid,
    pub held: bool,
    pub skills: Vec<Uuid>,
    pub center: Option<Uuid>,
}

/// Calls left `active` or `held`, oldest first.
pub async fn live_sessions(db: &Db) -> Result<Vec<LiveSession>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.id, s.ticket_id, s.operator_id, s.terminal_id, s.status, u.display_name FROM call_sessions s \
         JOIN users u ON u.id = s.operator_id WHERE s.status IN ('active', 'held') ORDER BY s.started_at",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = |c: &str| -> Result<Uuid, sqlx::Error> { crate::db::parse_id(&r.try_get::<String, _>(c)?) };
        let operator = id("operator_id")?;
        out.push(LiveSession {
            session: id("id")?,
            ticket: id("ticket_id")?,
            operator,
            operator_name: r.try_get("display_name")?,
            terminal: id("terminal_id")?,
            held: r.try_get::<String, _>("status")? == "held",
            skills: skills(db, operator).await?,
            center: operator_center(db, operator).await?,
        });
    }
    Ok(out)
}

/// A booked appointment that may be checked in now with a ticket for `item` at `point`: booked
/// for today (`day`), not past its slot end plus the no-show grace. Its slot `(start, end)`.
pub async fn bookable_appointment(
    db: &Db,
    id: Uuid,
    point: Uuid,
    item: Uuid,
    day: &str,
    now: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT slot_start, slot_end FROM appointments WHERE id = $1 AND point_id = $2 AND item_id = $3 \
         AND service_day = $4 AND state = 'booked' AND slot_end + $5 > $6",
    )
    .bind(id.to_string())
    .bind(point.to_string())
    .bind(item.to_string())
    .bind(day)
    .bind(crate::appointments::NO_SHOW_GRACE_MS)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| Ok((r.try_get("slot_start")?, r.try_get("slot_end")?))).transpose()
}

/// Marks a booked appointment checked in with `ticket`; `false` if it was no longer booked.
pub async fn check_in_appointment(db: &Db, id: Uuid, ticket: Uuid, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE appointments SET state = 'checked_in', ticket_id = $1, checked_in_at = $2 \
         WHERE id = $3 AND state = 'booked'",
    )
    .bind(ticket.to_string())
    .bind(now)
    .bind(id.to_string())
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}
