//! `/api/v1/tickets`: residents' personal data on tickets. Names and ID numbers are stored
//! encrypted and shown masked everywhere; the full values come only from an explicit reveal by
//! the operator serving the ticket (or a supervisor / admin), and every reveal — allowed or
//! refused — is audited. Retention: personal data of tickets closed more than the configured
//! number of days ago is erased (`purge_personal_data`, audited).

use axum::extract::State;
use serde_json::json;
use shared::api::{ErrorBody, RevealedResident};
use shared::protocol::Role;
use sqlx::Row;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::auth::Principal;
use crate::db::{Db, now_ms};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;

/// Reveal the full name and ID number of a ticket's resident (the serving operator,
/// supervisors, admins). Audited.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/reveal", tag = "tickets", params(("id" = Uuid, Path)),
    responses((status = 200, body = RevealedResident), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reveal(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RevealedResident>> {
    let audit = |outcome: &'static str| {
        AuditRecord::new("resident.reveal", "ticket").by(&p).target(id).outcome(outcome)
    };
    let allowed = match p.role {
        Role::Admin | Role::Supervisor => true,
        Role::Operator => {
            sqlx::query("SELECT 1 FROM call_sessions WHERE ticket_id = $1 AND operator_id = $2")
                .bind(id.to_string())
                .bind(p.id.to_string())
                .fetch_optional(&state.db.pool)
                .await?
                .is_some()
        }
        _ => false,
    };
    if !allowed {
        state.audit(audit("denied")).await;
        return Err(ApiError::forbidden());
    }
    let row = sqlx::query("SELECT resident_name_enc, id_number_enc FROM tickets WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("号票"))?;
    let decrypt = |col: &str, label: &str| -> ApiResult<Option<String>> {
        row.try_get::<Option<String>, _>(col)?
            .map(|enc| {
                state.pii.decrypt(&enc, &format!("ticket:{id}:{label}")).map_err(|e| {
                    tracing::error!(error = %e, "personal data does not decrypt");
                    ApiError::internal()
                })
            })
            .transpose()
    };
    let resident = RevealedResident {
        name: decrypt("resident_name_enc", "name")?,
        id_number: decrypt("id_number_enc", "id_number")?,
    };
    state.audit(audit("success").detail(json!({ "fields": ["name", "id_number"] }))).await;
    Ok(Json(resident))
}

/// Erases the encrypted personal data of tickets closed before `now - days`; returns how many.
pub async fn purge_personal_data(db: &Db, days: u32) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - i64::from(days) * 86_400_000;
    // Free text about the resident goes with their name and ID number.
    let closed_before = "SELECT id FROM tickets WHERE closed_at IS NOT NULL AND closed_at < $1";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE call_sessions SET notes = NULL, transfer_note = NULL WHERE ticket_id IN ({closed_before}) \
         AND (notes IS NOT NULL OR transfer_note IS NOT NULL)"
    )))
    .bind(cutoff)
    .execute(&db.pool)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE ratings SET comment = NULL WHERE ticket_id IN ({closed_before}) AND comment IS NOT NULL"
    )))
    .bind(cutoff)
    .execute(&db.pool)
    .await?;
    Ok(sqlx::query(
        "UPDATE tickets SET resident_name_enc = NULL, id_number_enc = NULL, id_number_hash = NULL \
         WHERE closed_at IS NOT NULL AND closed_at < $1 \
         AND (resident_name_enc IS NOT NULL OR id_number_enc IS NOT NULL OR id_number_hash IS NOT NULL)",
    )
    .bind(cutoff)
    .execute(&db.pool)
    .await?
    .rows_affected())
}
