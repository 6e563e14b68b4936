//! Cluster mode: the switchboard authority's lease in PostgreSQL, with a fencing token.
//!
//! One row (`switchboard_lease`, id 1) names the node that runs the switchboard, until when,
//! and its `epoch`. A node takes the lease only when it has expired (or is already its own),
//! and every take increments the epoch. The authority renews it well before it expires; every
//! write of the switchboard runs [`check`] first in the same transaction, which reads the row
//! with a share lock: a take-over (an `UPDATE` of that row) waits for the write to commit, and a
//! write after the take-over finds another epoch and fails with [`FENCED`]. So a node that lost
//! its lease (paused, cut off from the database for longer than the lease) cannot write, even if
//! it does not know yet. Times are the database's clock, so nodes' clocks do not matter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row;

use crate::db::Db;

/// How long a lease lasts without renewal.
pub const LEASE_MS: i64 = 4_000;
/// How often the authority renews it (and other nodes try to take it).
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_millis(1_000);

/// The error message of a write refused because the lease is no longer ours.
pub const FENCED: &str = "switchboard lease lost (fenced)";

/// The authority's fencing token.
#[derive(Debug, Clone)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
    /// Counts this authority's writes that [`check`] refused (`bangban_switchboard_fenced_writes`).
    pub refused: Arc<AtomicU64>,
}

/// Two fences are the same token: holder and epoch (whatever they counted).
impl PartialEq for Fence {
    fn eq(&self, other: &Self) -> bool {
        self.holder == other.holder && self.epoch == other.epoch
    }
}

impl Eq for Fence {}

/// Who holds the lease now (when not expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub holder: String,
    pub epoch: i64,
    pub expires_at: i64,
}

/// The database's clock, Unix ms (PostgreSQL).
macro_rules! now_ms {
    () => {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    };
}

/// Takes the lease for `holder` if it is free (never taken, expired or released). Returns the
/// new fence, `None` while another node holds it.
pub async fn try_acquire(db: &Db, holder: &str) -> Result<Option<Fence>, sqlx::Error> {
    let sql = concat!(
        "INSERT INTO switchboard_lease (id, holder, epoch, expires_at) VALUES (1, $1, 1, ",
        now_ms!(),
        " + $2) ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, epoch = switchboard_lease.epoch + 1, \
         expires_at = EXCLUDED.expires_at WHERE switchboard_lease.expires_at < ",
        now_ms!(),
        " RETURNING epoch"
    );
    let row = sqlx::query(sql).bind(holder).bind(LEASE_MS).fetch_optional(&db.pool).await?;
    Ok(match row {
        Some(r) => {
            Some(Fence { holder: holder.to_owned(), epoch: r.try_get("epoch")?, refused: Arc::default() })
        }
        None => None,
    })
}

/// Extends the lease; `false` when it is no longer ours (taken over).
pub async fn renew(db: &Db, fence: &Fence) -> Result<bool, sqlx::Error> {
    let sql = concat!(
        "UPDATE switchboard_lease SET expires_at = ",
        now_ms!(),
        " + $1 WHERE id = 1 AND holder = $2 AND epoch = $3"
    );
    let done =
        sqlx::query(sql).bind(LEASE_MS).bind(&fence.holder).bind(fence.epoch).execute(&db.pool).await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease up at once (a clean stop), so that another node takes over without waiting
/// for it to expire.
pub async fn release(db: &Db, fence: &Fence) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE switchboard_lease SET expires_at = 0 WHERE id = 1 AND holder = $1 AND epoch = $2")
        .bind(&fence.holder)
        .bind(fence.epoch)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The current holder, if the lease has not expired.
pub async fn current(db: &Db) -> Result<Option<Holder>, sqlx::Error> {
    let sql = concat!(
        "SELECT holder, epoch, expires_at FROM switchboard_lease WHERE id = 1 AND expires_at >= ",
        now_ms!()
    );
    let row = sqlx::query(sql).fetch_optional(&db.pool).await?;
    row.map(|r| {
        Ok(Holder {
            holder: r.try_get("holder")?,
            epoch: r.try_get("epoch")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// The fencing check, first in every transaction of the authority: the lease still carries
/// `fence`'s epoch (read with a share lock, held until the transaction ends).
pub async fn check(conn: &mut sqlx::AnyConnection, fence: &Fence) -> Result<(), sqlx::Error> {
    let row = sqlx::query("SELECT holder, epoch FROM switchboard_lease WHERE id = 1 FOR SHARE")
        .fetch_optional(&mut *conn)
        .await?;
    let ours = match row {
        Some(r) => {
            r.try_get::<String, _>("holder")? == fence.holder && r.try_get::<i64, _>("epoch")? == fence.epoch
        }
        None => false,
    };
    if ours {
        Ok(())
    } else {
        fence.refused.fetch_add(1, Ordering::Relaxed);
        Err(sqlx::Error::Protocol(FENCED.into()))
    }
}

/// Whether `e` is the refusal of a fenced write.
pub fn is_fenced(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Protocol(m) if m == FENCED)
}
